//! Free TCP ports on loopback for the node processes that the scenario runner, the tests
//! and the benchmarks start. A port found free and then released is not reserved: between
//! the check and the node's bind, any process's outgoing connection can be given it, if it
//! lies in the kernel's ephemeral range (Linux: `/proc/sys/net/ipv4/ip_local_port_range`,
//! 32768-60999 by default), which is where `bind(0)` finds ports too. So ports come from below
//! that range, where only a listener can take them, and each call in a process moves on from
//! the last port it handed out. Owns nothing else; never holds a port open after it returns.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out (below it: ports services commonly listen on).
pub const LOWEST_PORT: u16 = 10_000;

/// Where the next search starts, as an offset above [`LOWEST_PORT`]; 0 until the first call
/// spreads processes apart by their process id.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The first port of the kernel's ephemeral range, when it can be read.
fn ephemeral_low() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `n` distinct TCP ports free on 127.0.0.1 now, below the kernel's ephemeral range (or, when
/// that range is unknown or leaves fewer than 1,000 ports below it, from the kernel's own
/// choice, all held open while choosing so none repeats).
pub fn free_loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    match ephemeral_low().filter(|low| *low >= LOWEST_PORT.saturating_add(1_000)) {
        Some(low) => below(low, n),
        None => kernel_chosen(n),
    }
}

/// One free TCP port on 127.0.0.1 ([`free_loopback_ports`]).
pub fn free_loopback_port() -> std::io::Result<u16> {
    free_loopback_ports(1)?
        .pop()
        .ok_or_else(|| std::io::Error::other("no port chosen"))
}

/// `n` ports in `LOWEST_PORT..high` that bind now, searched from where the last call stopped.
fn below(high: u16, n: usize) -> std::io::Result<Vec<u16>> {
    let span = u32::from(high - LOWEST_PORT);
    let start = std::process::id().wrapping_mul(7_919) % span;
    // Only the first call of a process sets the start; 0 means "not set yet" (a start of 0 is
    // taken as 1, which changes nothing).
    let _ = NEXT.compare_exchange(0, start.max(1), Ordering::Relaxed, Ordering::Relaxed);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        #[allow(clippy::cast_possible_truncation)] // offset < span <= u16::MAX
        let port = LOWEST_PORT + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    if ports.len() < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("fewer than {n} free ports on 127.0.0.1 between {LOWEST_PORT} and {high}"),
        ));
    }
    Ok(ports)
}

/// `n` ports the kernel chooses, all held open while choosing.
fn kernel_chosen(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            for port in free_loopback_ports(8).expect("ports") {
                assert!(seen.insert(port), "{port} handed out twice");
                TcpListener::bind(("127.0.0.1", port)).expect("free");
                if let Some(low) = ephemeral_low().filter(|l| *l >= LOWEST_PORT + 1_000) {
                    assert!(
                        (LOWEST_PORT..low).contains(&port),
                        "{port} (range from {low})"
                    );
                }
            }
        }
        assert_eq!(seen.len(), 32);
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let first = free_loopback_port().expect("port");
        // The next call would try first + 1: take it.
        let held = TcpListener::bind(("127.0.0.1", first + 1));
        let next = free_loopback_port().expect("port");
        if held.is_ok() {
            assert_ne!(next, first + 1, "a port in use is never handed out");
        }
        assert_ne!(next, first);
    }
}
