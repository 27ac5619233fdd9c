//! The transaction log, on its own thread.
//!
//! The log thread (`zk-log`, a glommio executor of its own) owns the log
//! files: O_DIRECT through glommio's DMA API, one aligned write per write
//! request, then fdatasync as a plain syscall. It does nothing else, so a
//! sync in flight stalls no one: the commit shard, which holds the
//! [`LogHandle`], goes on ordering requests, proposing and counting ACKs,
//! and learns through a report which zxid is durable.
//!
//! Files live in `<dataLogDir>/zoocore/log.<first zxid in hex>`, are
//! preallocated (`preAllocSize`) and extended ahead of need. A write always
//! starts at a block boundary and is padded to the next one, so a block that
//! holds acknowledged records is never written again (see docs/storage.md).
//! Which txns go into the next write is `storage::group_commit`'s policy.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender};
use glommio::io::{DmaFile, OpenOptions};
use hdrhistogram::Histogram;

use crate::storage::group_commit::{GroupCommit, LogWrite};
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

/// What the log thread reports about one durable write.
#[derive(Debug, Clone, Copy)]
pub struct WriteFigures {
    pub through_zxid: i64,
    pub txns: usize,
    /// Bytes written (padded to the block).
    pub bytes: usize,
    /// write + sync.
    pub took: Duration,
    /// Over `fsync.warningthresholdms`.
    pub slow: bool,
}

impl LogMetrics {
    pub fn new() -> Self {
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

    /// One durable write; `arrivals` are when its txns' requests reached the
    /// commit shard.
    fn record(&mut self, f: &WriteFigures, arrivals: &[Instant]) {
        self.batches += 1;
        let _ = self.sync_us.record(f.took.as_micros().max(1) as u64);
        let _ = self.batch_txns.record(f.txns as u64);
        let _ = self.batch_bytes.record(f.bytes as u64);
        let now = Instant::now();
        for t in arrivals {
            let _ = self.queue_us.record(now.duration_since(*t).as_micros().max(1) as u64);
        }
        if f.slow {
            self.slow_syncs += 1;
        }
    }
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics::new()
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
        })
    }

    /// The next append starts a new file (at a snapshot, as ZooKeeper rolls).
    pub fn roll(&mut self) {
        self.roll_pending = true;
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

    /// Appends one write and returns once it is durable. `records` are
    /// (zxid, encoded TxnRecord) in zxid order.
    async fn append(&mut self, records: &[(i64, bytes::Bytes)]) -> io::Result<WriteFigures> {
        let Some((first_zxid, _)) = records.first() else {
            return Ok(WriteFigures { through_zxid: 0, txns: 0, bytes: 0, took: Duration::ZERO, slow: false });
        };
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
            // fdatasync as a plain syscall on this thread, which has nothing
            // else to do: io_uring hands a sync to an io-wq worker thread,
            // which measured ~4x slower per batch here.
            // SAFETY: the fd belongs to `file`, which outlives the call.
            if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::other(format!("fdatasync {}: {e}", path.display())));
            }
        }
        let took = started.elapsed();
        self.write_pos += len as u64;
        let through_zxid = records.last().map(|(z, _)| *z).unwrap_or(*first_zxid);
        self.last_zxid_in_file = Some(through_zxid);
        let slow = took > self.warn_threshold;
        if slow {
            tracing::warn!(
                file = %path.display(),
                took_ms = took.as_millis() as u64,
                threshold_ms = self.warn_threshold.as_millis() as u64,
                txns = records.len(),
                bytes = len,
                "fsync-ing the write ahead log took longer than the threshold"
            );
        }
        Ok(WriteFigures { through_zxid, txns: records.len(), bytes: len, took, slow })
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

// ----------------------------------------------------------------------
// The log thread and the commit shard's handle on it

/// Requests in flight to the log thread: at most one write (the group
/// commit policy) and one close, so the channels never fill.
const LOG_CHANNEL_DEPTH: usize = 4;

/// Txn bytes the commit shard may log ahead of the disk before it stops
/// taking new requests (they wait in the worker channels meanwhile).
pub const LOG_WAITING_MAX_BYTES: usize = 64 << 20;

/// io_uring registered buffer memory of the log thread: its DMA buffers
/// hold whole writes.
pub const LOG_IO_MEMORY_BYTES: usize = 8 << 20;

/// How the log thread opens and syncs its files.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub data_log_dir: PathBuf,
    pub prealloc_bytes: u64,
    pub mode: SyncMode,
    pub warn_threshold: Duration,
}

/// Commit shard to log thread.
pub enum ToLog {
    Write(LogWrite),
    /// Close the open file; the next write opens a new one (after a TRUNC,
    /// a SNAP or a reload rewrote the log directory).
    Close,
    /// The server stops: close the file and end the thread.
    Stop,
}

/// Log thread to commit shard, one per request, in order.
pub enum FromLog {
    Written(WriteFigures),
    Closed,
    /// The write or its sync failed: nothing of it may be taken as durable.
    Failed(String),
}

/// The commit shard's ends of the log thread's channels, before connecting.
pub struct LogEndpoints {
    to_log: SharedSender<ToLog>,
    from_log: SharedReceiver<FromLog>,
}

/// Starts the log thread. It runs until the commit shard drops its handle.
pub fn spawn_log_thread(
    settings: LogSettings,
) -> Result<(glommio::ExecutorJoinHandle<()>, LogEndpoints), glommio::GlommioError<()>> {
    let (to_log, to_log_rx) = shared_channel::new_bounded::<ToLog>(LOG_CHANNEL_DEPTH);
    let (from_log_tx, from_log) = shared_channel::new_bounded::<FromLog>(LOG_CHANNEL_DEPTH);
    // Unbound: it sleeps in fdatasync most of the time, and wakes on
    // whichever core is free rather than preempting a shard's.
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("zk-log")
        .io_memory(LOG_IO_MEMORY_BYTES)
        .spawn(move || async move {
            let requests = super::connect_shared(to_log_rx.connect()).await;
            let reports = super::connect_shared(from_log_tx.connect()).await;
            run_log_thread(settings, requests, reports).await;
        })?;
    Ok((handle, LogEndpoints { to_log, from_log }))
}

async fn run_log_thread(settings: LogSettings, requests: ConnectedReceiver<ToLog>, reports: ConnectedSender<FromLog>) {
    let mut writer =
        match LogWriter::new(&settings.data_log_dir, settings.prealloc_bytes, settings.mode, settings.warn_threshold) {
            Ok(w) => w,
            Err(e) => {
                let _ = reports.send(FromLog::Failed(format!("cannot open the log directory: {e}"))).await;
                return;
            }
        };
    while let Some(request) = requests.recv().await {
        let report = match request {
            ToLog::Write(w) => {
                if w.roll_first {
                    writer.roll();
                }
                match writer.append(&w.records).await {
                    Ok(figures) => FromLog::Written(figures),
                    Err(e) => FromLog::Failed(e.to_string()),
                }
            }
            ToLog::Close => {
                writer.close().await;
                FromLog::Closed
            }
            ToLog::Stop => break,
        };
        // After a failure the thread stops: a failed fsync is never retried
        // as if nothing happened (the commit shard stops the server).
        let failed = matches!(report, FromLog::Failed(_));
        if reports.send(report).await.is_err() || failed {
            break;
        }
    }
    writer.close().await;
}

/// The group-commit state the handle and its report task share (one
/// thread, the commit shard's; never borrowed across an await).
struct LogPipeline {
    group: GroupCommit,
    /// When the requests of the waiting txns reached the commit shard.
    waiting_arrivals: Vec<Instant>,
    in_flight_arrivals: Vec<Instant>,
    metrics: LogMetrics,
    closing: bool,
}

/// The commit shard's side of the log: logs txns without waiting for the
/// disk, and says what is durable.
pub struct LogHandle {
    pipeline: Rc<RefCell<LogPipeline>>,
    to_log: Rc<ConnectedSender<ToLog>>,
    /// Pulsed by the report task after every report.
    progress: LocalReceiver<()>,
    stopped: Rc<Cell<bool>>,
}

impl LogHandle {
    /// Connects to the log thread (on the commit shard's executor). The log
    /// is durable through `durable_through`; `on_durable` is called after
    /// each write becomes durable (it wakes the commit shard's loop).
    pub async fn connect(endpoints: LogEndpoints, durable_through: i64, on_durable: Rc<dyn Fn()>) -> LogHandle {
        let to_log = Rc::new(super::connect_shared(endpoints.to_log.connect()).await);
        let from_log = super::connect_shared(endpoints.from_log.connect()).await;
        let pipeline = Rc::new(RefCell::new(LogPipeline {
            group: GroupCommit::new(durable_through),
            waiting_arrivals: Vec::new(),
            in_flight_arrivals: Vec::new(),
            metrics: LogMetrics::new(),
            closing: false,
        }));
        let (progress_tx, progress) = local_channel::new_bounded::<()>(1);
        let stopped = Rc::new(Cell::new(false));
        {
            let (pipeline, to_log, stopped) = (pipeline.clone(), to_log.clone(), stopped.clone());
            glommio::spawn_local(async move {
                while let Some(report) = from_log.recv().await {
                    match report {
                        FromLog::Written(figures) => {
                            let next = {
                                let mut p = pipeline.borrow_mut();
                                let arrivals = std::mem::take(&mut p.in_flight_arrivals);
                                p.metrics.record(&figures, &arrivals);
                                let next = p.group.write_done();
                                if next.is_some() {
                                    p.in_flight_arrivals = std::mem::take(&mut p.waiting_arrivals);
                                }
                                next
                            };
                            if let Some(w) = next {
                                send_write(&to_log, w);
                            }
                            on_durable();
                        }
                        FromLog::Closed => pipeline.borrow_mut().closing = false,
                        FromLog::Failed(e) => {
                            // The tree is ahead of the log: serving on would
                            // acknowledge writes that are not durable.
                            tracing::error!(error = %e, "transaction log write failed; stopping the server");
                            std::process::exit(2);
                        }
                    }
                    let _ = progress_tx.try_send(());
                }
                stopped.set(true);
                let _ = progress_tx.try_send(());
            })
            .detach();
        }
        LogHandle { pipeline, to_log, progress, stopped }
    }

    /// Logs txns (zxid order, after everything logged before); returns at
    /// once. They are durable when `durable_through` reaches them.
    pub fn log(&mut self, records: Vec<(i64, bytes::Bytes)>, arrivals: &[Instant]) {
        if records.is_empty() {
            return;
        }
        let next = {
            let mut p = self.pipeline.borrow_mut();
            p.waiting_arrivals.extend_from_slice(arrivals);
            let next = p.group.log(records);
            if next.is_some() {
                p.in_flight_arrivals = std::mem::take(&mut p.waiting_arrivals);
            }
            next
        };
        if let Some(w) = next {
            send_write(&self.to_log, w);
        }
    }

    /// The next write starts a new file (at a snapshot, as ZooKeeper rolls).
    pub fn roll(&mut self) {
        self.pipeline.borrow_mut().group.roll();
    }

    pub fn durable_through(&self) -> i64 {
        self.pipeline.borrow().group.durable_through()
    }

    /// The durable zxid, if a write became durable since the last call.
    pub fn take_newly_durable(&mut self) -> Option<i64> {
        self.pipeline.borrow_mut().group.take_newly_durable()
    }

    pub fn is_idle(&self) -> bool {
        self.pipeline.borrow().group.is_idle()
    }

    pub fn with_metrics<R>(&self, f: impl FnOnce(&LogMetrics) -> R) -> R {
        f(&self.pipeline.borrow().metrics)
    }

    pub fn reset_metrics(&mut self) {
        self.pipeline.borrow_mut().metrics.reset();
    }

    async fn await_progress(&self) {
        if self.stopped.get() || self.progress.recv().await.is_none() {
            tracing::error!("the log thread stopped; stopping the server");
            std::process::exit(2);
        }
    }

    /// Waits while more than `LOG_WAITING_MAX_BYTES` of txns wait for the
    /// disk: back-pressure instead of an unbounded queue.
    pub async fn wait_for_room(&self) {
        while self.pipeline.borrow().group.waiting_bytes() > LOG_WAITING_MAX_BYTES {
            self.await_progress().await;
        }
    }

    /// Waits until everything logged is durable.
    pub async fn drain(&self) {
        while !self.is_idle() {
            self.await_progress().await;
        }
    }

    /// Drains, then closes the open file; the next write opens a new one.
    pub async fn close(&mut self) {
        self.drain().await;
        self.pipeline.borrow_mut().closing = true;
        if self.to_log.send(ToLog::Close).await.is_err() {
            tracing::error!("the log thread stopped; stopping the server");
            std::process::exit(2);
        }
        while self.pipeline.borrow().closing {
            self.await_progress().await;
        }
    }

    /// At shutdown: drains, then ends the log thread (its report task ends
    /// with it).
    pub async fn stop(self) {
        self.drain().await;
        let _ = self.to_log.send(ToLog::Stop).await;
    }

    /// After a close and a rewrite of the log directory (TRUNC, SNAP,
    /// reload): the log now ends, durably, at `zxid`.
    pub fn restart_at(&mut self, zxid: i64) {
        self.pipeline.borrow_mut().group.restart_at(zxid);
    }
}

fn send_write(to_log: &ConnectedSender<ToLog>, w: LogWrite) {
    // Never full: one write in flight at a time (LOG_CHANNEL_DEPTH).
    if to_log.try_send(ToLog::Write(w)).is_err() {
        tracing::error!("cannot hand a write to the log thread; stopping the server");
        std::process::exit(2);
    }
}
