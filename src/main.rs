//! The `arbiter` binary: everything lives in the library's `cli` module.
#![forbid(unsafe_code)]

/// jemalloc, with its background thread purging freed pages, gives memory a burst took (a `Simulate` of a
/// large set, a reload) back to the system; glibc's malloc kept the peak resident.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    std::process::exit(arbiter::run_cli());
}
