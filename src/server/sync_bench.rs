//! `zoocore sync-bench`: measures the two ways the log can make a batch
//! durable on a given directory — O_DIRECT write + fdatasync, and O_DIRECT
//! write on an O_DSYNC file — with the same io_uring path the server uses,
//! so docs/storage.md can quote numbers from the machine at hand.

use std::path::{Path, PathBuf};
use std::time::Instant;

use glommio::io::OpenOptions;
use glommio::{LocalExecutorBuilder, Placement};
use hdrhistogram::Histogram;

pub struct SyncBenchResult {
    pub mode: &'static str,
    pub block_bytes: usize,
    pub iterations: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

async fn measure(dir: &Path, dsync: bool, block_bytes: usize, iterations: usize) -> std::io::Result<SyncBenchResult> {
    let path: PathBuf = dir.join(format!("zoocore-sync-bench-{}.tmp", if dsync { "dsync" } else { "fdatasync" }));
    let _ = std::fs::remove_file(&path);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true);
    if dsync {
        opts.custom_flags(libc::O_DSYNC);
    }
    let file = opts.dma_open(&path).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let prealloc = (block_bytes * (iterations + 1)) as u64;
    file.pre_allocate(prealloc, false).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    file.fdatasync().await.map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut h = Histogram::<u64>::new(3).map_err(|e| std::io::Error::other(e.to_string()))?;
    for i in 0..iterations {
        let mut buf = file.alloc_dma_buffer(block_bytes);
        buf.as_bytes_mut().fill((i % 251) as u8);
        let t = Instant::now();
        file.write_at(buf, (i * block_bytes) as u64).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        if !dsync {
            file.fdatasync().await.map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
    }
    let _ = file.close().await;
    let _ = std::fs::remove_file(&path);
    Ok(SyncBenchResult {
        mode: if dsync { "O_DIRECT|O_DSYNC write" } else { "O_DIRECT write + fdatasync" },
        block_bytes,
        iterations,
        p50_us: h.value_at_quantile(0.5),
        p90_us: h.value_at_quantile(0.9),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    })
}

/// Runs both modes (alternating, `rounds` times each) and returns every result.
pub fn run(dir: &Path, block_bytes: usize, iterations: usize, rounds: usize) -> std::io::Result<Vec<SyncBenchResult>> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.to_path_buf();
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("zk-sync-bench")
        .spawn(move || async move {
            let mut out = Vec::new();
            for _ in 0..rounds {
                for dsync in [false, true] {
                    out.push(measure(&dir, dsync, block_bytes, iterations).await?);
                }
            }
            Ok::<_, std::io::Error>(out)
        })
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot start an executor: {e} (ulimit -l: {})",
                super::memlock_limit_description()
            ))
        })?;
    handle.join().map_err(|e| std::io::Error::other(format!("{e:?}")))?
}
