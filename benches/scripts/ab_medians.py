#!/usr/bin/env python3
"""Medians of `wire_ratio_ab.sh`'s alternated rounds, per build (A = OLD, B = NEW): the median of the rounds'
`Authorize` / `Health/Check` ratios (with their range), of the calls per second, and of the server CPU per call of
each call. Reads the script's round lines from the file given, or from standard input."""
import re
import statistics
import sys

ROUND = re.compile(
    r"round \d+ (?P<who>[AB]) \S+ load \S+: call (?P<rps>\S+)/s \((?P<cpu>\S+) us\) "
    r"health (?P<hrps>\S+)/s \((?P<hcpu>\S+) us\) ratio (?P<ratio>\S+)"
)


def main() -> None:
    lines = open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin
    rounds: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for line in lines:
        m = ROUND.match(line)
        if m:
            rounds[m["who"]].append({k: float(v) for k, v in m.groupdict().items() if k != "who"})
    for who, rs in rounds.items():
        if not rs:
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        ratios = [r["ratio"] for r in rs]
        print(
            f"{who}: {len(rs)} rounds, ratio median {med['ratio']:.3f} ({min(ratios):.3f} to {max(ratios):.3f}), "
            f"calls/s {med['rps']:.0f}, health/s {med['hrps']:.0f}, "
            f"CPU per call {med['cpu']:.2f} us, per health call {med['hcpu']:.2f} us"
        )


if __name__ == "__main__":
    main()
