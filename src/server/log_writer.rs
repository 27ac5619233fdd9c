//! The transaction log, on its own thread.
//!
//! The log thread (`zk-log`, a plain OS thread) owns the log files: O_DIRECT,
//! one aligned pwrite(2) per write request, then fdatasync(2), all blocking
//! syscalls on a thread that does nothing else, so a sync in flight stalls
//! no one: the commit shard, which holds the [`LogHandle`], goes on ordering
//! requests, proposing and counting ACKs, and learns through a report which
//! zxid is durable.
//!
//! Not a glommio executor: an executor that parks between writes pays for
//! each sleep (a membarrier(2) IPI to every core, timer re-arming, three
//! ring flushes), and at one outstanding write that cost the log thread
//! ~600 µs of CPU per write on the 2-core VM (most of the server's CPU). A
//! plain thread sleeps in a futex. Requests come over a bounded std channel;
//! reports go back over another, with a byte on a socketpair as the doorbell
//! the commit shard's reactor waits on.
//!
//! Files live in `<dataLogDir>/zoocore/log.<first zxid in hex>`, are
//! preallocated (`preAllocSize`) and extended ahead of need. A write always
//! starts at a block boundary and is padded to the next one, so a block that
//! holds acknowledged records is never written again (see docs/storage.md).
//! Which txns go into the next write is `storage::group_commit`'s policy.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use futures_lite::AsyncReadExt as _;
use glommio::channels::local_channel::{self, LocalReceiver};
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
/// How far past the write position the log thread zero-fills the
/// preallocated space. `fallocate` leaves unwritten extents, which ext4
/// converts at the fdatasync of the first write into them: a metadata write
/// per sync, ~50 us of a 4 KiB durable write on the reference VM (116-139
/// us p50 against 85-87 us into written space). So when fewer than
/// `ZERO_LOW_WATER_BYTES` are zeroed ahead, the log thread (after a
/// write's report, so that write does not wait) zeroes up to
/// `ZERO_AHEAD_BYTES` ahead and syncs once: the conversions are paid then,
/// once per step, instead of at every write's sync.
const ZERO_AHEAD_BYTES: u64 = 2 << 20;
const ZERO_LOW_WATER_BYTES: u64 = 256 << 10;
const ZERO_STEP_BYTES: usize = 256 * 1024;

/// One larger buffer, the last one used up to this size, is kept for the
/// next large batch (a large value's record): a fresh one cost a page fault
/// and a kernel zero-fill per 4 KiB page, 7 % of a 10 MiB setData's server
/// CPU. Bounded: at most this much stays held between large writes.
const KEPT_LARGE_BUFFER_MAX_BYTES: usize = 32 * 1024 * 1024;

/// A zeroed heap buffer aligned for O_DIRECT (to `LOG_BLOCK_ALIGN`).
struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

/// O_DIRECT needs buffers, offsets and lengths aligned to the device's
/// logical block; 4 KiB covers every device we write to (and writes start at
/// 4 KiB boundaries anyway, see `LogWriter::block`).
const LOG_BLOCK_ALIGN: usize = 4096;

impl AlignedBuf {
    fn zeroed(len: usize) -> io::Result<AlignedBuf> {
        let layout = std::alloc::Layout::from_size_align(len.max(LOG_BLOCK_ALIGN), LOG_BLOCK_ALIGN)
            .map_err(|e| io::Error::other(format!("log buffer of {len} bytes: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr =
            std::ptr::NonNull::new(raw).ok_or_else(|| io::Error::other(format!("cannot allocate {len} bytes")))?;
        Ok(AlignedBuf { ptr, len })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` initialised (zeroed, then written) bytes we own.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Ok(layout) = std::alloc::Layout::from_size_align(self.len.max(LOG_BLOCK_ALIGN), LOG_BLOCK_ALIGN) {
            // SAFETY: allocated in `zeroed` with this layout.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) }
        }
    }
}

// SAFETY: the buffer is owned memory, moved between threads as a whole.
unsafe impl Send for AlignedBuf {}

pub struct LogWriter {
    /// Spare DMA buffers by length, for small batches.
    spare_buffers: Vec<AlignedBuf>,
    /// The last large DMA buffer (`KEPT_LARGE_BUFFER_MAX_BYTES`); a batch
    /// that fits uses a prefix of it.
    large_spare: Option<AlignedBuf>,
    /// Every block below this offset of the open file has been written
    /// (records, or zeros by `zero_ahead`).
    zeroed_to: u64,
    /// `ZERO_STEP_BYTES` of zeros, allocated at the first step.
    zeros: Option<AlignedBuf>,
    /// A zero-fill that failed: the next append fails with it (the disk
    /// reported an error; nothing after it is taken as durable).
    zero_error: Option<io::Error>,
    dir: PathBuf,
    file: Option<File>,
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

pub use crate::storage::file_names::log_file_name;

fn os_err(path: &Path, what: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// fallocate(2) without KEEP_SIZE: the file's size becomes `size`, its
/// blocks allocated, so later writes into it need no allocation to be
/// committed by fdatasync.
fn pre_allocate(file: &File, path: &Path, size: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, size as libc::off_t) } != 0 {
        return Err(os_err(path, "preallocate"));
    }
    Ok(())
}

/// pwrite(2) of a whole aligned buffer at `offset`; the bytes written.
fn pwrite_all(file: &File, path: &Path, bytes: &[u8], offset: u64) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for its length for the duration of the call.
    let n = unsafe { libc::pwrite(file.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), offset as libc::off_t) };
    if n < 0 {
        return Err(os_err(path, "write"));
    }
    Ok(n as usize)
}

fn fdatasync(file: &File, path: &Path) -> io::Result<()> {
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::fdatasync(file.as_raw_fd()) } != 0 {
        return Err(os_err(path, "fdatasync"));
    }
    Ok(())
}

impl LogWriter {
    pub fn new(data_log_dir: &Path, prealloc_bytes: u64, mode: SyncMode, warn_threshold: Duration) -> io::Result<Self> {
        let dir = log_dir(data_log_dir);
        std::fs::create_dir_all(&dir)?;
        Ok(LogWriter {
            spare_buffers: Vec::new(),
            large_spare: None,
            zeroed_to: 0,
            zeros: None,
            zero_error: None,
            dir,
            file: None,
            path: PathBuf::new(),
            block: LOG_BLOCK_ALIGN as u64,
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

    fn open_new_file(&mut self, first_zxid: i64) -> io::Result<()> {
        self.file = None;
        let path = self.dir.join(log_file_name(first_zxid));
        if path.exists() {
            // Recovery replayed every valid record, and the last one is below
            // first_zxid: a file already named for first_zxid holds none
            // (it was created just before a crash). Start it afresh.
            tracing::warn!(file = %path.display(), "replacing a log file that holds no durable transaction");
            std::fs::remove_file(&path)?;
        }
        let mut flags = libc::O_DIRECT;
        if self.mode == SyncMode::ODsync {
            flags |= libc::O_DSYNC;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(flags)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
        // At least 4 KiB: a smaller logical block can share a physical sector with
        // acknowledged records, and a torn sector write would take them along.
        self.block = LOG_BLOCK_ALIGN as u64;
        let header = encode_file_header(self.block as usize, first_zxid);
        let mut buf = AlignedBuf::zeroed(header.len())?;
        buf.as_mut_slice().copy_from_slice(&header);
        pre_allocate(&file, &path, self.prealloc_bytes)?;
        let n = pwrite_all(&file, &path, buf.as_slice(), 0)?;
        if n != header.len() {
            return Err(io::Error::other(format!(
                "{}: short header write: {n} of {} bytes",
                path.display(),
                header.len()
            )));
        }
        fdatasync(&file, &path)?;
        // The new name must survive a crash too.
        File::open(&self.dir).and_then(|d| d.sync_all())?;
        self.allocated = self.prealloc_bytes;
        self.write_pos = header.len() as u64;
        self.zeroed_to = self.write_pos;
        self.path = path;
        self.file = Some(file);
        self.roll_pending = false;
        self.last_zxid_in_file = None;
        tracing::debug!(path = %self.path.display(), "opened transaction log");
        Ok(())
    }

    /// Appends one write and returns once it is durable. `records` are
    /// (zxid, encoded TxnRecord) in zxid order.
    fn append(&mut self, records: &[(i64, bytes::Bytes)]) -> io::Result<WriteFigures> {
        let Some((first_zxid, _)) = records.first() else {
            return Ok(WriteFigures { through_zxid: 0, txns: 0, bytes: 0, took: Duration::ZERO, slow: false });
        };
        if let Some(e) = self.zero_error.take() {
            return Err(io::Error::new(e.kind(), format!("{}: zero-filling ahead failed: {e}", self.path.display())));
        }
        if self.file.is_none() || self.roll_pending {
            self.open_new_file(*first_zxid)?;
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
        let file = self.file.as_ref().ok_or_else(|| io::Error::other("log file not open"))?;
        let path = &self.path;
        if self.write_pos + len as u64 + self.block > self.allocated {
            // Extend ahead of need, a whole preallocation step at a time.
            let new_size =
                (self.write_pos + len as u64).div_ceil(self.prealloc_bytes) * self.prealloc_bytes + self.prealloc_bytes;
            pre_allocate(file, path, new_size)?;
            self.allocated = new_size;
        }
        let mut buf = match self.spare_buffers.iter().position(|b| b.len == len) {
            Some(i) => self.spare_buffers.swap_remove(i),
            None if len > REUSED_BUFFER_MAX => match self.large_spare.take() {
                Some(kept) if kept.len >= len => kept,
                _ => AlignedBuf::zeroed(len)?,
            },
            None => AlignedBuf::zeroed(len)?,
        };
        // encode_batch overwrites every byte of the `len` it is given
        // (records, then zeros); a kept large buffer's tail is not written.
        let written_len = encode_batch(&refs, block, &mut buf.as_mut_slice()[..len])
            .map_err(|e| io::Error::other(format!("{}: cannot encode a batch: {e}", path.display())))?;
        if written_len != len {
            return Err(io::Error::other(format!(
                "{}: batch encoded to {written_len} bytes, expected {len}",
                path.display()
            )));
        }
        let started = Instant::now();
        let n = pwrite_all(file, path, &buf.as_slice()[..len], self.write_pos)?;
        if len <= REUSED_BUFFER_MAX && buf.len == len {
            if self.spare_buffers.len() < 8 {
                self.spare_buffers.push(buf);
            }
        } else if buf.len <= KEPT_LARGE_BUFFER_MAX_BYTES {
            self.large_spare = Some(buf);
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
            fdatasync(file, path)?;
        }
        let took = started.elapsed();
        self.write_pos += len as u64;
        self.zeroed_to = self.zeroed_to.max(self.write_pos);
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

    pub fn close(&mut self) {
        self.file = None;
    }

    /// Zero-fills the preallocated space ahead of the write position once
    /// less than `ZERO_LOW_WATER_BYTES` is left zeroed (up to
    /// `ZERO_AHEAD_BYTES`), then syncs. Called between writes; an error is
    /// kept for the next append.
    pub fn zero_ahead(&mut self) {
        let Some(file) = self.file.as_ref() else { return };
        if self.zero_error.is_some() || self.roll_pending {
            return;
        }
        let target = (self.write_pos + ZERO_AHEAD_BYTES).min(self.allocated);
        if self.zeroed_to >= (self.write_pos + ZERO_LOW_WATER_BYTES).min(target) {
            return;
        }
        let zeros = match self.zeros.take() {
            Some(z) => z,
            None => match AlignedBuf::zeroed(ZERO_STEP_BYTES) {
                Ok(z) => z,
                Err(e) => {
                    self.zero_error = Some(e);
                    return;
                }
            },
        };
        while self.zeroed_to < target {
            let len = (target - self.zeroed_to).min(ZERO_STEP_BYTES as u64) as usize;
            match pwrite_all(file, &self.path, &zeros.as_slice()[..len], self.zeroed_to) {
                Ok(n) if n == len => self.zeroed_to += len as u64,
                Ok(n) => {
                    self.zero_error = Some(io::Error::other(format!("short zero-fill: {n} of {len} bytes")));
                    break;
                }
                Err(e) => {
                    self.zero_error = Some(e);
                    break;
                }
            }
        }
        if self.zero_error.is_none() {
            if let Err(e) = fdatasync(file, &self.path) {
                self.zero_error = Some(e);
            }
        }
        self.zeros = Some(zeros);
    }
}

// ----------------------------------------------------------------------
// The log thread and the commit shard's handle on it

/// Requests in flight to the log thread: at most one write (the group
/// commit policy) and one close, so the channels never fill.
const LOG_CHANNEL_DEPTH: usize = 4;

/// Txn bytes the commit shard may log ahead of the disk before it stops
/// taking new requests (they wait in the worker channels meanwhile).
pub const LOG_WAITING_MAX_BYTES: usize = 64 << 20;

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

/// The commit shard's ends of the log thread's channels.
pub struct LogEndpoints {
    to_log: SyncSender<ToLog>,
    from_log: Receiver<FromLog>,
    /// One byte per report: what the commit shard's reactor waits on.
    doorbell: StdUnixStream,
}

/// Starts the log thread. It runs until `ToLog::Stop`, or until the commit
/// shard's end of the channels is gone.
pub fn spawn_log_thread(settings: LogSettings) -> io::Result<(std::thread::JoinHandle<()>, LogEndpoints)> {
    let (to_log, requests) = mpsc::sync_channel::<ToLog>(LOG_CHANNEL_DEPTH);
    let (reports, from_log) = mpsc::sync_channel::<FromLog>(LOG_CHANNEL_DEPTH);
    let (doorbell, ring) = StdUnixStream::pair()?;
    // Unpinned: it sleeps in fdatasync most of the time, and wakes on
    // whichever core is free rather than preempting a shard's.
    let handle = std::thread::Builder::new()
        .name("zk-log".into())
        .spawn(move || run_log_thread(settings, requests, reports, ring))?;
    Ok((handle, LogEndpoints { to_log, from_log, doorbell }))
}

fn run_log_thread(
    settings: LogSettings,
    requests: Receiver<ToLog>,
    reports: SyncSender<FromLog>,
    mut ring: StdUnixStream,
) {
    // Reports never exceed LOG_CHANNEL_DEPTH (one per request, and at most
    // one write and one close are in flight), so `send` never waits.
    let mut report = |r: FromLog| -> bool { reports.send(r).is_ok() && ring.write_all(&[1]).is_ok() };
    let mut writer =
        match LogWriter::new(&settings.data_log_dir, settings.prealloc_bytes, settings.mode, settings.warn_threshold) {
            Ok(w) => w,
            Err(e) => {
                report(FromLog::Failed(format!("cannot open the log directory: {e}")));
                return;
            }
        };
    while let Ok(request) = requests.recv() {
        let r = match request {
            ToLog::Write(w) => {
                if w.roll_first {
                    writer.roll();
                }
                match writer.append(&w.records) {
                    Ok(figures) => FromLog::Written(figures),
                    Err(e) => FromLog::Failed(e.to_string()),
                }
            }
            ToLog::Close => {
                writer.close();
                FromLog::Closed
            }
            ToLog::Stop => break,
        };
        // After a failure the thread stops: a failed fsync is never retried
        // as if nothing happened (the commit shard stops the server).
        let failed = matches!(r, FromLog::Failed(_));
        if !report(r) || failed {
            break;
        }
        // With the report sent: the next step of preallocated space.
        writer.zero_ahead();
    }
    writer.close();
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
    to_log: Rc<SyncSender<ToLog>>,
    /// Pulsed by the report task after every report.
    progress: LocalReceiver<()>,
    stopped: Rc<Cell<bool>>,
}

impl LogHandle {
    /// Connects to the log thread (on the commit shard's executor). The log
    /// is durable through `durable_through`; `on_durable` is called after
    /// each write becomes durable (it wakes the commit shard's loop).
    pub async fn connect(endpoints: LogEndpoints, durable_through: i64, on_durable: Rc<dyn Fn()>) -> LogHandle {
        let LogEndpoints { to_log, from_log, doorbell } = endpoints;
        let to_log = Rc::new(to_log);
        let pipeline = Rc::new(RefCell::new(LogPipeline {
            group: GroupCommit::new(durable_through),
            waiting_arrivals: Vec::new(),
            in_flight_arrivals: Vec::new(),
            metrics: LogMetrics::new(),
            closing: false,
        }));
        let (progress_tx, progress) = local_channel::new_bounded::<()>(1);
        let stopped = Rc::new(Cell::new(false));
        // SAFETY: the fd comes from a std UnixStream we own and give up here.
        let mut doorbell = unsafe { glommio::net::UnixStream::from_raw_fd(doorbell.into_raw_fd()) };
        {
            let (pipeline, to_log, stopped) = (pipeline.clone(), to_log.clone(), stopped.clone());
            glommio::spawn_local(async move {
                let mut rings = [0u8; 64];
                'reports: loop {
                    // 0 bytes: the log thread ended (its end of the socket closed).
                    match doorbell.read(&mut rings).await {
                        Ok(0) | Err(_) => break 'reports,
                        Ok(_) => {}
                    }
                    loop {
                        let report = match from_log.try_recv() {
                            Ok(r) => r,
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => break 'reports,
                        };
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
        // Never full: the drain above left no write in flight.
        if self.to_log.try_send(ToLog::Close).is_err() {
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
        let _ = self.to_log.try_send(ToLog::Stop);
    }

    /// After a close and a rewrite of the log directory (TRUNC, SNAP,
    /// reload): the log now ends, durably, at `zxid`.
    pub fn restart_at(&mut self, zxid: i64) {
        self.pipeline.borrow_mut().group.restart_at(zxid);
    }
}

fn send_write(to_log: &SyncSender<ToLog>, w: LogWrite) {
    // Never full: one write in flight at a time (LOG_CHANNEL_DEPTH).
    if to_log.try_send(ToLog::Write(w)).is_err() {
        tracing::error!("cannot hand a write to the log thread; stopping the server");
        std::process::exit(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log_format::{scan_log, Tail};

    fn record(seed: u8, len: usize) -> bytes::Bytes {
        bytes::Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(13) ^ seed).collect::<Vec<_>>())
    }

    /// A writer on a fresh directory of its own (1 MiB preallocation steps).
    fn fresh_writer(name: &str) -> (PathBuf, LogWriter) {
        let dir = std::env::temp_dir().join(format!("zoocore-logwriter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let w = LogWriter::new(&dir, 1 << 20, SyncMode::Fdatasync, Duration::from_secs(10)).expect("log writer");
        (dir, w)
    }

    /// Closes `w`, scans its first file (a clean tail asserted) and returns
    /// every record read back; the directory is removed.
    fn read_back(dir: &Path, mut w: LogWriter) -> Vec<(i64, Vec<u8>)> {
        w.close();
        let bytes = std::fs::read(log_dir(dir).join(log_file_name(1))).expect("log file");
        let scan = scan_log(&bytes, w.block as usize).expect("scan");
        assert!(matches!(scan.tail, Tail::Clean), "{:?}", scan.tail);
        let _ = std::fs::remove_dir_all(dir);
        scan.records.iter().map(|r| (r.zxid, bytes[r.payload.clone()].to_vec())).collect()
    }

    fn as_read(batches: &[(i64, bytes::Bytes)]) -> Vec<(i64, Vec<u8>)> {
        batches.iter().map(|(z, b)| (*z, b.to_vec())).collect()
    }

    /// A large batch after a larger one is written from a prefix of the kept
    /// buffer: what reaches the file is exactly each batch, nothing of the
    /// larger one's tail, and the scan reads every record back.
    #[test]
    fn a_kept_large_buffer_writes_only_the_batch_that_uses_it() {
        let (dir, mut w) = fresh_writer("kept");
        let batches = [vec![(1, record(1, 700 << 10))], vec![(2, record(2, 90 << 10))], vec![(3, record(3, 100))]];
        for b in &batches {
            w.append(b).expect("append");
        }
        assert!(w.large_spare.as_ref().is_some_and(|b| b.len >= 700 << 10), "the largest buffer is kept");
        assert_eq!(read_back(&dir, w), as_read(&batches.concat()));
    }

    /// Zero-filling ahead reaches `ZERO_AHEAD_BYTES` past the write
    /// position (bounded by the preallocation), waits for the low-water
    /// mark before the next step, and leaves a file whose records all read
    /// back with a clean tail.
    #[test]
    fn zero_fill_ahead_stays_a_bounded_step_ahead_and_keeps_the_log_readable() {
        let (dir, mut w) = fresh_writer("zero");
        w.zero_ahead(); // no file yet: nothing to do
        let mut written = Vec::new();
        for zxid in 1..=3 {
            let batch = vec![(zxid, record(zxid as u8, 3000))];
            w.append(&batch).expect("append");
            written.extend(batch);
            w.zero_ahead();
            assert_eq!(w.zeroed_to, (w.write_pos + ZERO_AHEAD_BYTES).min(w.allocated), "zeroed ahead, bounded");
        }
        let zeroed = w.zeroed_to;
        w.zero_ahead();
        assert_eq!(w.zeroed_to, zeroed, "nothing more until below the low-water mark");
        let batch = vec![(4, record(4, 100_000))];
        w.append(&batch).expect("append after the zeroed steps");
        written.extend(batch);
        assert_eq!(read_back(&dir, w), as_read(&written));
    }
}
