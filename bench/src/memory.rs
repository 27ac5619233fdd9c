//! The memory benchmark: server RSS before and after creating N znodes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zoocore::client::Client;

use crate::procfs;
use crate::workload::{ensure_node, pipelined_create};

pub struct MemoryConfig {
    pub server: SocketAddr,
    pub server_pid: u32,
    pub znodes: u64,
    pub value_size: usize,
    pub sessions: usize,
    pub outstanding: usize,
    pub parent: String,
    pub settle: Duration,
}

pub struct MemoryResult {
    pub parent: String,
    pub rss_before: u64,
    pub rss_after: u64,
    pub failures: u64,
    pub elapsed: Duration,
    /// Mean length of the full paths created, in bytes.
    pub mean_path_len: f64,
}

impl MemoryResult {
    pub fn bytes_per_znode(&self, n: u64) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / n.max(1) as f64
    }
    /// RSS growth per znode beyond the bytes of its path and data.
    pub fn overhead_per_znode(&self, n: u64, value_size: usize) -> f64 {
        self.bytes_per_znode(n) - self.mean_path_len - value_size as f64
    }
}

pub fn run(cfg: &MemoryConfig) -> Result<MemoryResult, String> {
    let timeout = Duration::from_secs(30);
    let setup = Client::connect(cfg.server, timeout).map_err(|e| format!("connect {}: {e}", cfg.server))?;
    // A fresh parent per run, so repeated runs against one server do not collide.
    let mut parent = cfg.parent.clone();
    let mut attempt = 1;
    while setup.exists(&parent, false).map_err(|e| e.to_string())?.is_some() {
        attempt += 1;
        parent = format!("{}-{attempt}", cfg.parent);
    }
    ensure_node(&setup, &parent)?;
    let sessions: Vec<Arc<Client>> = (0..cfg.sessions.max(1))
        .map(|_| Client::connect(cfg.server, timeout).map(Arc::new).map_err(|e| format!("connect: {e}")))
        .collect::<Result<_, _>>()?;
    std::thread::sleep(cfg.settle);
    let rss_before = procfs::process_rss_bytes(cfg.server_pid).ok_or("cannot read the server's VmRSS")?;

    let value = Bytes::from(vec![b'v'; cfg.value_size]);
    let started = Instant::now();
    let n = cfg.znodes;
    let k = sessions.len() as u64;
    // Session s creates indexes s, s+k, s+2k, ...
    let failures = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(s, client)| {
                let (value, parent) = (&value, &parent);
                let count = (n + k - 1 - s as u64) / k;
                scope.spawn(move || {
                    pipelined_create(client, count, cfg.outstanding.max(1), value, |i| {
                        format!("{parent}/{}", i * k + s as u64)
                    })
                })
            })
            .collect();
        let mut failures = 0u64;
        for h in handles {
            failures += match h.join() {
                Ok(Ok(f)) => f,
                Ok(Err(_)) | Err(_) => n / k,
            };
        }
        failures
    });
    let elapsed = started.elapsed();
    std::thread::sleep(cfg.settle);
    let rss_after = procfs::process_rss_bytes(cfg.server_pid).ok_or("cannot read the server's VmRSS")?;
    for c in sessions {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.close();
        }
    }
    let _ = setup.close();

    let digits: u64 = (0..n).map(|i| i.max(1).ilog10() as u64 + 1).sum();
    let mean_path_len = (parent.len() as u64 + 1) as f64 + digits as f64 / n.max(1) as f64;
    Ok(MemoryResult { parent, rss_before, rss_after, failures, elapsed, mean_path_len })
}
