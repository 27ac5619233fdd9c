//! The commit shard's transaction log writer: O_DIRECT files through
//! glommio's DMA API, one aligned write per batch, then the sync.
//!
//! Files live in `<dataLogDir>/zoocore/log.<first zxid in hex>`, are
//! preallocated (`preAllocSize`) and extended ahead of need. A batch always
//! starts at a block boundary and is padded to the next one, so a block that
//! holds acknowledged records is never written again (see docs/storage.md).

use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;

use crate::storage::log_format::{batch_encoded_len, encode_batch, encode_file_header, zxid_follows};

/// How a batch is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// write, then fdatasync: two io_uring operations per batch.
    Fdatasync,
    /// The file is opened O_DSYNC: each write returns once durable.
    ODsync,
}

impl SyncMode {
    pub fn parse(s: &str) -> Option<SyncMode> {
        match s {
            "fdatasync" => Some(SyncMode::Fdatasync),
            "dsync" | "o_dsync" => Some(SyncMode::ODsync),
            _ => None,
        }
    }
}

/// Histograms of the fsync path, for `mntr` and the bench tool.
pub struct LogMetrics {
    /// write + sync of one batch, in microseconds.
    pub sync_us: Histogram<u64>,
    /// Transactions per batch.
    pub batch_txns: Histogram<u64>,
    /// Bytes per batch (padded).
    pub batch_bytes: Histogram<u64>,
    /// From a request reaching the commit shard to its batch being durable, µs.
    pub queue_us: Histogram<u64>,
    pub batches: u64,
    pub slow_syncs: u64,
}

impl LogMetrics {
    fn new() -> Self {
        let h = || {
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
        };
        LogMetrics { sync_us: h(), batch_txns: h(), batch_bytes: h(), queue_us: h(), batches: 0, slow_syncs: 0 }
    }

    pub fn reset(&mut self) {
        self.sync_us.reset();
        self.batch_txns.reset();
        self.batch_bytes.reset();
        self.queue_us.reset();
        self.batches = 0;
        self.slow_syncs = 0;
    }
}

/// Batches up to this size reuse their DMA buffers (most batches are one or
/// two blocks); a fresh buffer per batch cost an allocation and a zero-fill.
const REUSED_BUFFER_MAX: usize = 64 * 1024;

pub struct LogWriter {
    /// Spare DMA buffers by length, for small batches.
    spare_buffers: Vec<glommio::io::DmaBuffer>,
    dir: PathBuf,
    file: Option<DmaFile>,
    path: PathBuf,
    block: u64,
    write_pos: u64,
    allocated: u64,
    prealloc_bytes: u64,
    mode: SyncMode,
    roll_pending: bool,
    /// The last zxid written to the open file: the next batch must follow
    /// it (`zxid_follows`), or the scan would call the file Corrupt.
    last_zxid_in_file: Option<i64>,
    warn_threshold: Duration,
    pub metrics: LogMetrics,
}

pub fn log_dir(data_log_dir: &Path) -> PathBuf {
    data_log_dir.join("zoocore")
}

pub fn log_file_name(first_zxid: i64) -> String {
    format!("log.{:x}", first_zxid)
}

impl LogWriter {
    pub fn new(data_log_dir: &Path, prealloc_bytes: u64, mode: SyncMode, warn_threshold: Duration) -> io::Result<Self> {
        let dir = log_dir(data_log_dir);
        std::fs::create_dir_all(&dir)?;
        Ok(LogWriter {
            spare_buffers: Vec::new(),
            dir,
            file: None,
            path: PathBuf::new(),
            block: 4096,
            write_pos: 0,
            allocated: 0,
            prealloc_bytes: prealloc_bytes.max(1 << 20),
            mode,
            roll_pending: false,
            last_zxid_in_file: None,
            warn_threshold,
            metrics: LogMetrics::new(),
        })
    }

    /// The next append starts a new file (at a snapshot, as ZooKeeper rolls).
    pub fn roll(&mut self) {
        self.roll_pending = true;
    }

    pub fn current_path(&self) -> &Path {
        &self.path
    }

    async fn open_new_file(&mut self, first_zxid: i64) -> io::Result<()> {
        if let Some(old) = self.file.take() {
            let _ = old.close().await;
        }
        let path = self.dir.join(log_file_name(first_zxid));
        if path.exists() {
            // Recovery replayed every valid record, and the last one is below
            // first_zxid: a file already named for first_zxid holds none
            // (it was created just before a crash). Start it afresh.
            tracing::warn!(file = %path.display(), "replacing a log file that holds no durable transaction");
            std::fs::remove_file(&path)?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create_new(true);
        if self.mode == SyncMode::ODsync {
            opts.custom_flags(libc::O_DSYNC);
        }
        let file = opts.dma_open(&path).await.map_err(|e| io_err(&path, "open", e))?;
        // At least 4 KiB: a smaller logical block can share a physical sector with
        // acknowledged records, and a torn sector write would take them along.
        self.block = file.alignment().max(4096);
        let header = encode_file_header(self.block as usize, first_zxid);
        let mut buf = file.alloc_dma_buffer(header.len());
        buf.as_bytes_mut().copy_from_slice(&header);
        file.pre_allocate(self.prealloc_bytes, false).await.map_err(|e| io_err(&path, "preallocate", e))?;
        file.write_at(buf, 0).await.map_err(|e| io_err(&path, "write header", e))?;
        file.fdatasync().await.map_err(|e| io_err(&path, "fdatasync", e))?;
        // The new name must survive a crash too.
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all())?;
        self.allocated = self.prealloc_bytes;
        self.write_pos = header.len() as u64;
        self.path = path;
        self.file = Some(file);
        self.roll_pending = false;
        self.last_zxid_in_file = None;
        tracing::debug!(path = %self.path.display(), "opened transaction log");
        Ok(())
    }

    /// Appends one batch and returns once it is durable. `records` are
    /// (zxid, encoded TxnRecord) in zxid order; `arrivals` are the times the
    /// batch's requests reached the commit shard (for the queueing histogram).
    pub async fn append(&mut self, records: &[(i64, bytes::Bytes)], arrivals: &[Instant]) -> io::Result<()> {
        let Some((first_zxid, _)) = records.first() else { return Ok(()) };
        if self.file.is_none() || self.roll_pending {
            self.open_new_file(*first_zxid).await?;
        }
        if let Some(last) = self.last_zxid_in_file {
            if !zxid_follows(last, *first_zxid) {
                // Refuse before writing: a gap on disk would stop the next start-up.
                return Err(io::Error::other(format!(
                    "{}: zxid 0x{first_zxid:x} does not follow 0x{last:x} (next counter, or counter 1 of a higher epoch)",
                    self.path.display()
                )));
            }
        }
        let block = self.block as usize;
        let refs: Vec<(i64, &[u8])> = records.iter().map(|(z, b)| (*z, b.as_ref())).collect();
        let len = batch_encoded_len(refs.iter().map(|(_, b)| b.len()), block);
        let path = self.path.clone();
        let file = self.file.as_ref().ok_or_else(|| io::Error::other("log file not open"))?;
        if self.write_pos + len as u64 + self.block > self.allocated {
            // Extend ahead of need, a whole preallocation step at a time.
            let new_size =
                (self.write_pos + len as u64).div_ceil(self.prealloc_bytes) * self.prealloc_bytes + self.prealloc_bytes;
            file.pre_allocate(new_size, false).await.map_err(|e| io_err(&path, "preallocate", e))?;
            self.allocated = new_size;
        }
        let mut buf = match self.spare_buffers.iter().position(|b| b.len() == len) {
            Some(i) => self.spare_buffers.swap_remove(i),
            None => file.alloc_dma_buffer(len),
        };
        // encode_batch overwrites every byte of `buf` (records, then zeros).
        let written_len = encode_batch(&refs, block, buf.as_bytes_mut())
            .map_err(|e| io::Error::other(format!("{}: cannot encode a batch: {e}", path.display())))?;
        assert_eq!(written_len, len, "batch length disagrees with batch_encoded_len");
        let started = Instant::now();
        let buf = std::rc::Rc::new(buf);
        let n = file.write_rc_at(buf.clone(), self.write_pos).await.map_err(|e| io_err(&path, "write", e))?;
        if len <= REUSED_BUFFER_MAX && self.spare_buffers.len() < 8 {
            if let Ok(buf) = std::rc::Rc::try_unwrap(buf) {
                self.spare_buffers.push(buf);
            }
        }
        if n != len {
            return Err(io::Error::other(format!(
                "{}: short write at offset {}: {} of {} bytes",
                path.display(),
                self.write_pos,
                n,
                len
            )));
        }
        if self.mode == SyncMode::Fdatasync {
            // fdatasync on the commit shard's own thread: io_uring hands a
            // sync to an io-wq worker thread, which measured ~4x slower per
            // batch here than the direct syscall. The shard has nothing else
            // to do meanwhile; requests that arrive wait in the cross-shard
            // channels and form the next batch.
            // SAFETY: the fd belongs to `file`, which outlives the call.
            if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::other(format!("fdatasync {}: {e}", path.display())));
            }
        }
        let took = started.elapsed();
        self.write_pos += len as u64;
        self.last_zxid_in_file = records.last().map(|(z, _)| *z);
        let m = &mut self.metrics;
        m.batches += 1;
        let _ = m.sync_us.record(took.as_micros().max(1) as u64);
        let _ = m.batch_txns.record(records.len() as u64);
        let _ = m.batch_bytes.record(len as u64);
        let now = Instant::now();
        for t in arrivals {
            let _ = m.queue_us.record(now.duration_since(*t).as_micros().max(1) as u64);
        }
        if took > self.warn_threshold {
            m.slow_syncs += 1;
            tracing::warn!(
                file = %path.display(),
                took_ms = took.as_millis() as u64,
                threshold_ms = self.warn_threshold.as_millis() as u64,
                txns = records.len(),
                bytes = len,
                "fsync-ing the write ahead log took longer than the threshold"
            );
        }
        Ok(())
    }

    pub async fn close(&mut self) {
        if let Some(f) = self.file.take() {
            let _ = f.close().await;
        }
    }
}

fn io_err(path: &Path, what: &str, e: glommio::GlommioError<()>) -> io::Error {
    io::Error::other(format!("{} {}: {e}", what, path.display()))
}
