//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps memory freed inside its arenas for reuse: after a burst of load (a
//! mempool of thousands of transfers, blocks of thousands, batches in the queues) a node's
//! resident memory stayed at its peak although the mempool was empty again. Only the free
//! space at the very top of an arena goes back on its own. `malloc_trim(0)` hands back every
//! whole free page of every arena (`madvise(MADV_DONTNEED)`), so a node calls it every
//! [`TRIM_INTERVAL`] from a thread of its own (`heap-trim`), for 4-64 ms of one core each time
//! under load (docs/BENCHMARKS.md section 15 has what it saves).
//!
//! It owns: the trimming thread, started once per process by `peerchain node`. It must never
//! touch node state; on a C library other than glibc it does nothing.

use std::time::Duration;

/// How often the heap is trimmed.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Starts the `heap-trim` thread, which trims every `interval` for the life of the process.
/// Without glibc it starts nothing.
pub fn spawn_trimmer(interval: Duration) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                trim();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start the heap-trim thread; freed memory stays with the process");
    }
}

/// Hands the free pages of every arena back to the operating system; whether any were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn trim() -> bool {
    // SAFETY: malloc_trim takes an integer and only walks the allocator's own free lists under
    // the allocator's locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Without glibc there is nothing to trim.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}
