//! Server-wide figures the commit shard publishes for anyone to read
//! (atomics written by one owner, read without locks).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[derive(Default)]
pub struct ServerStats {
    last_zxid: AtomicI64,
    node_count: AtomicU64,
    sessions: AtomicU64,
}

impl ServerStats {
    pub fn set_last_zxid(&self, zxid: i64) {
        // Release/Acquire: a worker that reads this zxid knows a batch up to
        // it has been sent (see WorkerShard::view_is_behind).
        self.last_zxid.store(zxid, Ordering::Release);
    }
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Acquire)
    }
    pub fn set_node_count(&self, n: u64) {
        self.node_count.store(n, Ordering::Relaxed);
    }
    pub fn node_count(&self) -> u64 {
        self.node_count.load(Ordering::Relaxed)
    }
    pub fn sessions_changed(&self, n: u64) {
        self.sessions.store(n, Ordering::Relaxed);
    }
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
}
