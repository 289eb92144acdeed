//! Instants: the time a request carries, instant values in attributes and conditions, and the timeline the
//! simulator walks.
//!
//! RFC 3339 accepts every instant of years 1 to 9999 in UTC, up to `9999-12-31T23:59:59.999999999Z`. The time
//! library's own timestamp stops 26 hours earlier (at `9999-12-30T22:00:00.999999999Z`, so that any instant has
//! a civil time in every UTC offset), so instants are kept here as whole seconds since the Unix epoch (floored)
//! and nanoseconds, and the library is asked only what it can answer: a zone's UTC offset, and its next offset
//! change. Past the library's last timestamp a zone keeps the offset it has there; no zone changes its offset in
//! those last hours of year 9999.

use std::fmt;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// An instant, from the time library's first timestamp to the last nanosecond of year 9999 in UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment {
    /// Seconds since 1970-01-01T00:00:00Z, floored (so also for instants before 1970).
    second: i64,
    /// Nanoseconds after `second`, `0..1_000_000_000`.
    nanosecond: u32,
}

/// Seconds of `9999-12-31T23:59:59Z`, the last whole second of RFC 3339.
const LAST_SECOND: i64 = 253_402_300_799;
/// Seconds of `0001-01-01T00:00:00Z`, the first instant of RFC 3339.
const FIRST_RFC3339_SECOND: i64 = -62_135_596_800;
const NANOS: i64 = 1_000_000_000;

/// An instant's place in a time zone: its local second of the day and weekday.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Local {
    /// Days since 1970-01-01 in local time.
    pub(crate) day: i64,
    /// `0..86_400`.
    pub(crate) second_of_day: u32,
    /// Monday is 0, Sunday 6.
    pub(crate) weekday: u8,
}

/// `YYYY-MM-DDTHH:MM:SS Mon`: the local date (the proleptic Gregorian calendar, so the day after
/// 9999-12-31 is 10000-01-01), time of day and weekday.
impl fmt::Display for Local {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Howard Hinnant's civil_from_days.
        let z = self.day + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let s = self.second_of_day;
        let weekday = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][usize::from(self.weekday)];
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02} {weekday}",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }
}

impl Moment {
    /// The first instant of RFC 3339, `0001-01-01T00:00:00Z`.
    pub const FIRST_RFC3339: Moment = Moment {
        second: FIRST_RFC3339_SECOND,
        nanosecond: 0,
    };
    /// The last instant of RFC 3339, `9999-12-31T23:59:59.999999999Z`.
    pub const LAST: Moment = Moment {
        second: LAST_SECOND,
        nanosecond: 999_999_999,
    };

    /// The instant `second` seconds and `nanosecond` nanoseconds after the epoch (`nanosecond` may be negative,
    /// as the time library's timestamps have it before 1970), if in range.
    pub fn new(second: i64, nanosecond: i32) -> Option<Moment> {
        if !(-999_999_999..=999_999_999).contains(&nanosecond) {
            return None;
        }
        let total = i128::from(second) * i128::from(NANOS) + i128::from(nanosecond);
        Moment::from_nanos(total)
    }

    /// The instant at a whole second, if in range.
    pub fn from_second(second: i64) -> Option<Moment> {
        Moment::new(second, 0)
    }

    /// The current instant.
    pub fn now() -> Moment {
        Timestamp::now().into()
    }

    fn from_nanos(total: i128) -> Option<Moment> {
        let second = i64::try_from(total.div_euclid(i128::from(NANOS))).ok()?;
        let nanosecond = total.rem_euclid(i128::from(NANOS)) as u32;
        let t = Moment { second, nanosecond };
        (t >= Moment::from(Timestamp::MIN) && t <= Moment::LAST).then_some(t)
    }

    fn as_nanos(self) -> i128 {
        i128::from(self.second) * i128::from(NANOS) + i128::from(self.nanosecond)
    }

    /// Seconds since the epoch, floored.
    pub fn as_second(self) -> i64 {
        self.second
    }

    /// Nanoseconds after [`Moment::as_second`].
    pub fn subsec_nanosecond(self) -> u32 {
        self.nanosecond
    }

    /// `nanos` nanoseconds later (or earlier), if still in range.
    pub fn checked_add_nanos(self, nanos: i64) -> Option<Moment> {
        Moment::from_nanos(self.as_nanos() + i128::from(nanos))
    }

    /// `seconds` seconds later (or earlier), if still in range.
    pub fn checked_add_seconds(self, seconds: i64) -> Option<Moment> {
        Moment::from_nanos(self.as_nanos() + i128::from(seconds) * i128::from(NANOS))
    }

    /// The instant as the time library's timestamp, clamped to the library's range.
    fn clamped(self) -> Timestamp {
        Timestamp::new(self.second, self.nanosecond as i32).unwrap_or(if self.second < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        })
    }

    /// The instant as the time library's timestamp, if it has one.
    pub fn to_timestamp(self) -> Option<Timestamp> {
        Timestamp::new(self.second, self.nanosecond as i32).ok()
    }

    /// The UTC offset of `zone` at this instant, in seconds.
    pub(crate) fn offset_in(self, zone: &TimeZone) -> i64 {
        i64::from(zone.to_offset(self.clamped()).seconds())
    }

    /// The first instant after this one at which `zone` changes its UTC offset, if any.
    pub(crate) fn next_offset_change(self, zone: &TimeZone) -> Option<Moment> {
        zone.following(self.clamped())
            .map(|t| Moment::from(t.timestamp()))
            .find(|t| *t > self)
    }

    /// The local day, second of the day and weekday in `zone`.
    pub(crate) fn local(self, zone: &TimeZone) -> Local {
        let local = self.second + self.offset_in(zone);
        let day = local.div_euclid(86_400);
        Local {
            day,
            second_of_day: local.rem_euclid(86_400) as u32,
            // 1970-01-01 was a Thursday.
            weekday: (day + 3).rem_euclid(7) as u8,
        }
    }
}

impl From<Timestamp> for Moment {
    fn from(t: Timestamp) -> Moment {
        let (second, nanosecond) = (t.as_second(), t.subsec_nanosecond());
        if nanosecond < 0 {
            Moment {
                second: second - 1,
                nanosecond: (nanosecond + NANOS as i32) as u32,
            }
        } else {
            Moment {
                second,
                nanosecond: nanosecond as u32,
            }
        }
    }
}

/// RFC 3339 in UTC, as the time library writes its timestamps (`Z`, and a fraction only when there is one).
impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ts) = self.to_timestamp() {
            return fmt::Display::fmt(&ts, f);
        }
        // Past the library's last timestamp (the only instants it cannot hold): its civil time in UTC, plus
        // the rest, which the civil calendar reaches (through 9999-12-31T23:59:59.999999999).
        let past = self.as_nanos() - Moment::from(Timestamp::MAX).as_nanos();
        let civil = i64::try_from(past).ok().and_then(|past| {
            let last: DateTime = Timestamp::MAX.to_zoned(TimeZone::UTC).datetime();
            last.checked_add(SignedDuration::from_nanos(past)).ok()
        });
        match civil {
            Some(civil) => write!(f, "{civil}Z"),
            None => write!(f, "{}s{}ns", self.second, self.nanosecond),
        }
    }
}

impl fmt::Debug for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Strict RFC 3339 (see [`parse_rfc3339`]).
impl std::str::FromStr for Moment {
    type Err = String;

    fn from_str(s: &str) -> Result<Moment, String> {
        parse_rfc3339(s).ok_or_else(|| format!("{s:?} is not an RFC 3339 instant of years 1 to 9999"))
    }
}

/// Strict RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `T` and `Z` in either case.
///
/// - the fraction takes any number of digits after a `.` (never a `,`); digits past nanoseconds are dropped;
/// - a leap second `:60` reads as `:59`;
/// - offsets are `Z` or `±HH:MM` with hours 00 to 23 and minutes 00 to 59;
/// - the instant must fall in years 1 to 9999 in UTC (through `9999-12-31T23:59:59.999999999Z`).
pub fn parse_rfc3339(s: &str) -> Option<Moment> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, mut second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    second = second.min(59);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let magnitude = h * 3600 + m * 60;
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    // Years 1 to 9999 in UTC.
    const FIRST: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const AFTER_LAST: i64 = 253_402_300_800; // 10000-01-01T00:00:00Z
    if !(FIRST..AFTER_LAST).contains(&seconds) {
        return None;
    }
    Moment::new(seconds, nanos as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_hours_of_year_9999_are_instants() {
        let last = Moment::LAST;
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999999999Z");
        assert!(last.to_timestamp().is_none());
        assert_eq!(last.checked_add_nanos(1), None);
        let t = Moment::from_second(LAST_SECOND).unwrap();
        assert_eq!(t.to_string(), "9999-12-31T23:59:59Z");
        let local = t.local(&TimeZone::UTC);
        assert_eq!(local.second_of_day, 86_399);
        assert_eq!(local.weekday, 4); // 9999-12-31 is a Friday.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let local = t.local(&tokyo);
        assert_eq!(local.second_of_day, 9 * 3600 - 1);
        assert_eq!(local.weekday, 5); // 10000-01-01, a Saturday, in Tokyo
        assert_eq!(local.to_string(), "10000-01-01T08:59:59 Sat");
        let ny = TimeZone::get("America/New_York").unwrap();
        assert_eq!(t.local(&ny).to_string(), "9999-12-31T18:59:59 Fri");
    }

    #[test]
    fn agrees_with_the_time_library_where_it_reaches() {
        let zones = ["UTC", "Europe/Paris", "America/St_Johns", "Australia/Lord_Howe", "Asia/Kathmandu"];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let second = (x % 400_000_000_000) as i64 - 70_000_000_000;
            let nanos = ((x >> 20) % 1_000_000_000) as i32;
            let Ok(ts) = Timestamp::new(second, if second < 0 { -nanos } else { nanos }) else {
                continue;
            };
            let t = Moment::from(ts);
            assert_eq!(t.to_string(), ts.to_string());
            assert_eq!(t.to_timestamp(), Some(ts));
            for name in zones {
                let zone = TimeZone::get(name).unwrap();
                let civil = zone.to_datetime(ts);
                let local = t.local(&zone);
                let second_of_day =
                    civil.hour() as u32 * 3600 + civil.minute() as u32 * 60 + civil.second() as u32;
                assert_eq!(local.second_of_day, second_of_day, "{ts} in {name}");
                assert_eq!(local.weekday, civil.weekday().to_monday_zero_offset() as u8);
                assert_eq!(
                    local.to_string(),
                    format!("{} {}", civil.strftime("%Y-%m-%dT%H:%M:%S"), civil.strftime("%a"))
                );
            }
        }
    }

    #[test]
    fn order_and_arithmetic_follow_the_timeline() {
        let a = Moment::new(-1, -1).unwrap();
        let b = Moment::new(-1, 0).unwrap();
        assert!(a < b);
        assert_eq!(a.as_second(), -2);
        assert_eq!(a.subsec_nanosecond(), 999_999_999);
        assert_eq!(a.checked_add_nanos(1), Some(b));
        assert_eq!(b.checked_add_seconds(1), Moment::from_second(0));
        assert_eq!(Moment::new(0, 1_000_000_000), None);
        assert_eq!(Moment::from_second(LAST_SECOND + 1), None);
        assert!(Moment::FIRST_RFC3339 > Moment::from(Timestamp::MIN));
    }

    #[test]
    fn prints_alike_on_both_sides_of_the_time_library_s_last_timestamp() {
        let max = Moment::from(Timestamp::MAX);
        assert_eq!(max.to_string(), "9999-12-30T22:00:00.999999999Z");
        assert_eq!(max.checked_add_nanos(1).unwrap().to_string(), "9999-12-30T22:00:01Z");
        assert_eq!(
            max.checked_add_nanos(500_000_001).unwrap().to_string(),
            "9999-12-30T22:00:01.5Z"
        );
        assert_eq!(Moment::from(Timestamp::MAX), parse_rfc3339("9999-12-30T22:00:00.999999999Z").unwrap());
    }
}
