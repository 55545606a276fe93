//! Giving freed heap memory back to the operating system.
//!
//! glibc's allocator keeps memory freed inside its arenas for reuse: after a burst of load (a
//! mempool of thousands of transfers, blocks of thousands, batches in the queues) a node's
//! resident memory stayed at its peak although the mempool was empty again. Only the free
//! space at the very top of an arena goes back on its own. `malloc_trim(0)` hands back every
//! whole free page of every arena (`madvise(MADV_DONTNEED)`), so a node calls it from a
//! thread of its own (`heap-trim`), for 4-64 ms of one core each time under load
//! (docs/BENCHMARKS.md section 15 has what it saves).
//!
//! Every [`TRIM_INTERVAL`] that thread compares the resident memory with what the heap has
//! in use, and trims only when more than [`KEEP_RESIDENT_FREE`] is resident beyond it
//! ([`trim_due`]). Memory handed back is faulted in and zeroed again by the allocations
//! that reuse it, and the trim holds each arena's lock while it walks it: trimming every
//! 10 s whatever was free put one of every three or four blocks of a busy node on memory
//! handed back a moment before, and made the slowest blocks of a ten-process network slower
//! (20 rounds, six pairs: p99 163-235 ms, median 194, against 131-234 ms, median 157, with
//! this rule; docs/BENCHMARKS.md section 16). What a burst frees (a drained mempool, a queue
//! emptied) still goes back.
//!
//! Between trims, freed memory stays with the process ([`keep_freed_memory`]): by default
//! glibc hands the free top of a heap back at once (past 128 KiB, or twice the largest
//! block it has mapped), and serves blocks of 128 KiB or more (a 5,000-transfer block's
//! encoding, its transaction list, a compact block's frame) with a fresh `mmap`. Each
//! block then faulted in and zeroed hundreds of fresh pages on every thread that handled
//! it: a profile of ten node processes receiving 5,000-transfer blocks put the kernel's
//! page zeroing at 14% of all CPU while the blocks propagated (docs/BENCHMARKS.md section
//! 16). The trimming thread still bounds what is kept to about [`KEEP_RESIDENT_FREE`].
//!
//! It owns: the allocator's thresholds and the trimming thread, both set once per process by
//! `peerchain node`. It must never touch node state; on a C library other than glibc it does
//! nothing.

use std::time::Duration;

/// How often the trimming thread looks whether a trim is due.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// Resident memory beyond what the heap has in use that is kept for reuse rather than
/// handed back (it includes the binary's pages and the threads' stacks, some 20-30 MiB).
pub const KEEP_RESIDENT_FREE: u64 = 64 << 20;

/// Whether the heap is trimmed, with `resident` bytes resident and `in_use` bytes of the
/// heap allocated.
pub fn trim_due(resident: u64, in_use: u64) -> bool {
    resident.saturating_sub(in_use) > KEEP_RESIDENT_FREE
}

/// Allocations of this size or more get memory of their own from the kernel (`mmap`), and
/// go back to it when freed; smaller ones come from the heap.
pub const MMAP_THRESHOLD: usize = 16 << 20;

/// Free memory at the top of a heap kept for reuse rather than handed back when something is
/// freed (the trimming thread hands it back when it trims, [`trim_due`]).
pub const TRIM_THRESHOLD: usize = 64 << 20;

/// Sets glibc's thresholds to [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] (fixed, instead of
/// its defaults of 128 KiB that move with the largest block freed), so that the memory a
/// block's handling frees is reused by the next block instead of being unmapped and
/// faulted in again. Call it before starting threads. Returns whether glibc took both.
/// Only on 64-bit glibc targets (on 32-bit ones glibc's mmap threshold tops at 512 KiB).
#[cfg(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64"))]
#[allow(unsafe_code)]
pub fn keep_freed_memory() -> bool {
    let as_int = |v: usize| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and only sets the allocator's parameters under its
    // own lock; both values are within glibc's accepted ranges (the mmap threshold's maximum
    // is 32 MiB on 64-bit targets).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(MMAP_THRESHOLD)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(TRIM_THRESHOLD)) == 1
    }
}

/// Elsewhere the allocator keeps its defaults.
#[cfg(not(all(target_os = "linux", target_env = "gnu", target_pointer_width = "64")))]
pub fn keep_freed_memory() -> bool {
    false
}

/// Starts the `heap-trim` thread, which looks every `interval` whether a trim is due
/// ([`trim_due`]), for the life of the process. Without glibc it starts nothing.
pub fn spawn_trimmer(interval: Duration) {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let started = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                match (resident_bytes(), heap_in_use()) {
                    (Some(resident), Some(in_use)) if !trim_due(resident, in_use) => {}
                    // Unknown: trim, as before the rule.
                    _ => {
                        trim();
                    }
                }
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

/// Bytes the heap has allocated: chunks in the arenas and blocks mapped of their own.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 takes no argument and returns a struct of counters it sums over the
    // arenas under their locks; it is safe to call from any thread at any time.
    let info = unsafe { libc::mallinfo2() };
    u64::try_from(info.uordblks.saturating_add(info.hblkhd)).ok()
}

/// Without glibc the heap's figures are unknown.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use() -> Option<u64> {
    None
}

/// The process's resident memory (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_trimmed_only_past_what_is_kept_resident() {
        let mib = 1 << 20;
        assert!(!trim_due(100 * mib, 90 * mib), "10 MiB free: kept");
        assert!(
            !trim_due(100 * mib + KEEP_RESIDENT_FREE, 100 * mib),
            "the bound: kept"
        );
        assert!(
            trim_due(101 * mib + KEEP_RESIDENT_FREE, 100 * mib),
            "past the bound"
        );
        assert!(
            !trim_due(10 * mib, 50 * mib),
            "more in use than resident (swapped, mapped)"
        );
    }
}
