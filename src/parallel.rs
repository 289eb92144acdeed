//! Order-preserving parallel map over a slice, on scoped threads, one per core.
//!
//! Used where the work is independent and CPU-bound: parsing the files of a policy set, reading and replaying
//! logged requests. Never on the decision path of the sidecar, which stays single-threaded per call.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The cores this process may use, asked of the system once (the answer reads cgroup files, which costs more
/// than the work of a small rebuild).
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Applies `each` to every item on up to one thread per core (each with `stack_bytes` of stack when given),
/// claiming `chunk` items at a time. Results come back in the order of `items`. When no thread can be spawned
/// the work is done on the calling thread.
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    chunk: usize,
    stack_bytes: Option<usize>,
    each: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let chunk = chunk.max(1);
    let workers = cores().min(items.len().div_ceil(chunk));
    if workers <= 1 && stack_bytes.is_none() {
        return items.iter().map(&each).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done: Vec<(usize, Vec<R>)> = Vec::new();
        loop {
            let start = next.fetch_add(chunk, Ordering::Relaxed);
            if start >= items.len() {
                return done;
            }
            let end = (start + chunk).min(items.len());
            done.push((start, items[start..end].iter().map(&each).collect()));
        }
    };
    let mut parts: Vec<(usize, Vec<R>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1))
            .filter_map(|n| {
                let mut builder = std::thread::Builder::new().name(format!("arbiter-work-{n}"));
                if let Some(bytes) = stack_bytes {
                    builder = builder.stack_size(bytes);
                }
                builder.spawn_scoped(scope, work).ok()
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    if parts.is_empty() && !items.is_empty() {
        return items.iter().map(&each).collect();
    }
    parts.sort_unstable_by_key(|(start, _)| *start);
    parts.into_iter().flat_map(|(_, part)| part).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_covers_every_item() {
        for len in [0usize, 1, 7, 1000] {
            let items: Vec<usize> = (0..len).collect();
            for chunk in [1, 3, 64] {
                let out = map_in_order(&items, chunk, None, |x| x * 2);
                assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
                let out = map_in_order(&items, chunk, Some(256 * 1024), |x| x + 1);
                assert_eq!(out, items.iter().map(|x| x + 1).collect::<Vec<_>>());
            }
        }
    }
}
