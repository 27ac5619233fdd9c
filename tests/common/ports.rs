//! Loopback ports for tests, chosen below the kernel's ephemeral range.
//!
//! A port taken from the ephemeral range (`bind(0)`) and released can be
//! grabbed at any moment as the local port of an outgoing connection (a
//! learner's quorum link, a client), and an ensemble member binds its quorum
//! port only once it is elected leader, long after the test chose it: then
//! the leader cannot listen ("Address already in use") and the ensemble
//! never settles. Ports below that range are only ever taken by listeners.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
static DRAWS: AtomicU64 = AtomicU64::new(0);

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768)
}

/// A port that is free now, below the ephemeral range, and not handed out
/// before by this test process.
pub fn unused_port() -> u16 {
    let (low, high) = (10_000u64, u64::from(ephemeral_low()).max(10_001) - 1);
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let n = DRAWS.fetch_add(1, Ordering::Relaxed);
        // A per-process sequence, so concurrent test binaries rarely collide.
        let x = (u64::from(std::process::id()) << 24 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let port = (low + (x >> 40) % (high - low)) as u16;
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return port;
        }
    }
}
