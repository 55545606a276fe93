//! `peerchain::heap::trim` hands memory freed between live allocations back to the system,
//! and `peerchain::heap::keep_freed_memory` keeps large blocks on the heap. Resident memory
//! and the allocator's counters are whole-process figures, so these tests have a process of
//! their own (the other tests map and free no block of 8 MiB or more: their chunks are 4 KiB
//! and their lists about 1 MiB), and they take turns.

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests"
)]

use peerchain::heap::{heap_in_use, keep_freed_memory, resident_bytes, trim, trim_due};

/// Held by each test while it measures resident memory or the allocator's counters, so that
/// another's allocations do not move its figures.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rss_mib() -> u64 {
    peerchain_testkit::mem::rss_bytes().expect("VmRSS") / (1024 * 1024)
}

/// What the node saw: memory freed between live allocations stays resident until trimmed.
#[test]
fn trimming_hands_back_memory_freed_between_live_allocations() {
    let _alone = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    const CHUNK: usize = 4096;
    const CHUNKS: usize = 48 * 1024; // 192 MiB
    let mut chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|i| vec![(i as u8) | 1; CHUNK]).collect();
    let before_free = rss_mib();
    // Keep every 32nd chunk (and the last), so the freed space lies between live ones and
    // cannot shrink the heap from the top.
    let mut kept = Vec::new();
    for (i, chunk) in chunks.drain(..).enumerate() {
        if i % 32 == 0 || i == CHUNKS - 1 {
            kept.push(chunk);
        }
    }
    let freed_untrimmed = rss_mib();
    assert!(
        freed_untrimmed + 64 > before_free,
        "the allocator gave back memory untrimmed ({before_free} -> {freed_untrimmed} MiB): \
         this test no longer sees the behaviour it covers"
    );
    assert!(trim(), "malloc_trim found nothing to hand back");
    let trimmed = rss_mib();
    assert!(
        trimmed + 100 < freed_untrimmed,
        "trimming handed back too little: {freed_untrimmed} -> {trimmed} MiB"
    );
    assert_eq!(kept.len(), CHUNKS / 32 + 1);
    assert!(kept.iter().all(|c| c.len() == CHUNK));
}

/// Bytes the allocator holds in blocks mapped for themselves.
#[allow(unsafe_code)]
fn mapped_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().hblkhd }
}

/// What the node saw: each 5,000-transfer block's buffers (hundreds of KiB) were mapped,
/// faulted in and zeroed anew, because glibc maps every block of 128 KiB or more by default.
#[cfg(target_pointer_width = "64")]
#[test]
fn a_block_of_megabytes_comes_from_the_heap_once_freed_memory_is_kept() {
    let _alone = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(keep_freed_memory(), "glibc refused the thresholds");
    let before = mapped_bytes();
    // 8 MiB: above glibc's default threshold (128 KiB, raised to the size of a mapped block
    // when one is freed, and nothing in this process frees one of 8 MiB), below ours (16 MiB).
    let block = vec![1u8; 8 << 20];
    let during = mapped_bytes();
    assert_eq!(
        block.iter().map(|b| usize::from(*b)).sum::<usize>(),
        8 << 20
    );
    assert!(
        during < before + (8 << 20),
        "an 8 MiB block was mapped for itself: {before} -> {during} bytes mapped"
    );
}

/// The trimming thread's inputs: what the heap has in use, and the resident memory it is
/// compared with ([`trim_due`]). Allocated, 128 MiB show in both; freed between live
/// chunks, they stay resident but leave the heap's count, and the rule asks for a trim.
#[test]
fn the_trim_rule_sees_memory_freed_but_still_resident() {
    const CHUNK: usize = 4096;
    const CHUNKS: usize = 32 * 1024; // 128 MiB
    let _alone = MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let before = heap_in_use().expect("mallinfo2");
    let mut chunks: Vec<Vec<u8>> = (0..CHUNKS).map(|i| vec![(i as u8) | 1; CHUNK]).collect();
    let in_use = heap_in_use().expect("mallinfo2");
    let resident = resident_bytes().expect("VmRSS");
    assert!(
        in_use >= before + (CHUNKS * CHUNK) as u64,
        "128 MiB allocated: {before} -> {in_use} bytes in use"
    );
    assert!(resident >= in_use, "resident {resident} < in use {in_use}");
    let mut kept = Vec::new();
    for (i, chunk) in chunks.drain(..).enumerate() {
        if i % 32 == 0 {
            kept.push(chunk);
        }
    }
    let resident = resident_bytes().expect("VmRSS");
    let in_use = heap_in_use().expect("mallinfo2");
    assert!(
        trim_due(resident, in_use),
        "124 MiB freed between live chunks, still resident: {resident} resident, {in_use} in use"
    );
    assert_eq!(kept.len(), CHUNKS / 32);
}
