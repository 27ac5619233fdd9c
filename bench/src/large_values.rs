//! `zoocore-bench large-values`: large setData (10 MiB by default, one
//! session, one outstanding) on a server run with a large jute.maxbuffer,
//! against the disk's floor for the same bytes, with the server's RSS read
//! before, after the first few writes and after all of them (so growth
//! that does not stop shows as growth over the last writes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

use crate::report::new_histogram;
use crate::{floors, procfs, workload};

pub struct LargeValuesConfig {
    pub server: SocketAddr,
    pub server_pid: Option<u32>,
    /// A directory on the server's data disk, for the floor's file.
    pub dir: PathBuf,
    pub value_bytes: usize,
    /// setData of the value, one at a time.
    pub writes: usize,
    /// RSS is read after this many writes too (the "first" reading).
    pub first_writes: usize,
    /// getData of the value after the writes, one at a time.
    pub reads: usize,
    /// write + fdatasync of the value in `dir`, one at a time.
    pub floor_writes: usize,
    /// Pause before each RSS reading (lets the server free what it will).
    pub settle: Duration,
}

pub struct LargeValuesResult {
    pub path: String,
    /// Microseconds.
    pub set: Histogram<u64>,
    pub get: Histogram<u64>,
    pub floor: Histogram<u64>,
    pub rss_before: Option<u64>,
    pub rss_after_first: Option<u64>,
    pub rss_after_all: Option<u64>,
}

impl LargeValuesResult {
    /// RSS growth over the writes after the first reading, bytes (may be negative).
    pub fn rss_growth_after_first(&self) -> Option<i64> {
        Some(self.rss_after_all? as i64 - self.rss_after_first? as i64)
    }
}

/// A value whose every 4 KiB page differs and which differs from the value
/// of any other seed, so no write repeats the previous one.
fn value(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 4096) as u8 ^ (i as u8).wrapping_mul(31) ^ seed).collect()
}

pub fn run(cfg: &LargeValuesConfig) -> Result<LargeValuesResult, String> {
    if cfg.writes == 0 || cfg.first_writes >= cfg.writes {
        return Err(format!("--writes ({}) must be more than --first-writes ({})", cfg.writes, cfg.first_writes));
    }
    let rss = || {
        std::thread::sleep(cfg.settle);
        cfg.server_pid.and_then(procfs::process_rss_bytes)
    };
    let client =
        Client::connect(cfg.server, Duration::from_secs(30)).map_err(|e| format!("connect {}: {e}", cfg.server))?;
    let path = format!("/large-values-{}", workload::run_id());
    client.create(&path, b"", &open_acl_unsafe(), CreateMode::Persistent).map_err(|e| format!("create {path}: {e}"))?;
    let rss_before = rss();
    let mut set = new_histogram();
    let mut rss_after_first = if cfg.first_writes == 0 { rss_before } else { None };
    let mut last = Vec::new();
    for i in 0..cfg.writes {
        // Made before the clock starts: the client's own work is not the server's.
        last = value(i as u8, cfg.value_bytes);
        let started = Instant::now();
        client
            .set_data(&path, &last, -1)
            .map_err(|e| format!("setData {path} ({} bytes, write {}): {e}", cfg.value_bytes, i + 1))?;
        set.saturating_record(started.elapsed().as_micros().max(1) as u64);
        if i + 1 == cfg.first_writes {
            rss_after_first = rss();
        }
    }
    let rss_after_all = rss();
    let mut get = new_histogram();
    for i in 0..cfg.reads {
        let started = Instant::now();
        let (data, _) = client.get_data(&path, false).map_err(|e| format!("getData {path} (read {}): {e}", i + 1))?;
        get.saturating_record(started.elapsed().as_micros().max(1) as u64);
        if data.as_deref() != Some(&last[..]) {
            return Err(format!("getData {path}: the value read back is not the last one written"));
        }
    }
    let _ = client.delete(&path, -1);
    let _ = client.close();
    let floor = floors::large_write_floor(&cfg.dir, &last, cfg.floor_writes)?;
    Ok(LargeValuesResult { path, set, get, floor, rss_before, rss_after_first, rss_after_all })
}
