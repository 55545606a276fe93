//! `peerchain::heap::trim` hands memory freed between live allocations back to the system.
//! Resident memory is a whole-process figure, so this test has a process of its own.

#![cfg(all(target_os = "linux", target_env = "gnu"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    reason = "tests"
)]

use peerchain::heap::trim;

fn rss_mib() -> u64 {
    peerchain_testkit::mem::rss_bytes().expect("VmRSS") / (1024 * 1024)
}

/// What the node saw: memory freed between live allocations stays resident until trimmed.
#[test]
fn trimming_hands_back_memory_freed_between_live_allocations() {
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
