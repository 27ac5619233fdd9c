//! The floors a write latency is compared against: the disk's own
//! 4 KiB O_DIRECT write + fdatasync, the same for one large value
//! (`large_write_floor`), and a loopback TCP round trip.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::new_histogram;

const BLOCK: usize = 4096;
/// The loop rewrites a preallocated 1 MiB region block by block, as a log
/// appends into preallocated space.
const REGION_BLOCKS: u64 = 256;

/// A 4 KiB-aligned buffer, as O_DIRECT requires.
struct AlignedBlock {
    ptr: *mut u8,
    layout: Layout,
}

impl AlignedBlock {
    fn new() -> Result<AlignedBlock, String> {
        let layout = Layout::from_size_align(BLOCK, BLOCK).map_err(|e| e.to_string())?;
        // SAFETY: layout has non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("out of memory".into());
        }
        Ok(AlignedBlock { ptr, layout })
    }
}

impl Drop for AlignedBlock {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

pub struct DiskFloor {
    pub hist: Histogram<u64>,
    /// False when the filesystem refused O_DIRECT (tmpfs) and buffered writes were used.
    pub direct: bool,
}

/// The size of the sparse file `FloorMode::SparseAppend` appends into
/// (the loop wraps to its start when it gets there).
const SPARSE_FILE_BYTES: u64 = 256 << 20;

/// How the measured 4 KiB writes reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorMode {
    /// O_DIRECT rewrites of a preallocated, written region (zoocore's log).
    Direct,
    /// Page-cache rewrites of a preallocated, written region.
    Buffered,
    /// Page-cache appends into a sparse file, as Apache ZooKeeper pads its
    /// log (one byte written at the padded end): each fdatasync must also
    /// commit the block allocation to the filesystem's journal.
    SparseAppend,
}

impl FloorMode {
    pub fn name(self) -> &'static str {
        match self {
            FloorMode::Direct => "direct",
            FloorMode::Buffered => "buffered",
            FloorMode::SparseAppend => "sparse-append",
        }
    }
}

/// Times `pwrite(4 KiB) + fdatasync` on a file in `dir` for `duration`.
pub fn disk_floor(dir: &Path, duration: Duration, mode: FloorMode) -> Result<DiskFloor, String> {
    let buffered = mode != FloorMode::Direct;
    let path = dir.join(format!("zoocore-bench-disk-floor-{}.tmp", std::process::id()));
    let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    let open =
        |flags: libc::c_int| unsafe { libc::open(cpath.as_ptr(), flags | libc::O_WRONLY | libc::O_CREAT, 0o600) };
    let mut direct = !buffered;
    let mut fd = if buffered { open(0) } else { open(libc::O_DIRECT) };
    if fd < 0 && direct {
        direct = false;
        fd = open(0);
    }
    if fd < 0 {
        return Err(format!("open {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    let result = (|| -> Result<Histogram<u64>, String> {
        let block = AlignedBlock::new()?;
        let write_at = |off: u64| -> Result<(), String> {
            // SAFETY: block.ptr is a live 4 KiB buffer; fd is open.
            let n = unsafe { libc::pwrite(fd, block.ptr as *const libc::c_void, BLOCK, off as libc::off_t) };
            if n != BLOCK as isize {
                return Err(format!("pwrite: {}", std::io::Error::last_os_error()));
            }
            Ok(())
        };
        let sync = || -> Result<(), String> {
            // SAFETY: fd is open.
            if unsafe { libc::fdatasync(fd) } != 0 {
                return Err(format!("fdatasync: {}", std::io::Error::last_os_error()));
            }
            Ok(())
        };
        let region_blocks = if mode == FloorMode::SparseAppend {
            // A hole: every block the loop writes is allocated as it goes.
            // SAFETY: fd is open.
            if unsafe { libc::ftruncate(fd, SPARSE_FILE_BYTES as libc::off_t) } != 0 {
                return Err(format!("ftruncate: {}", std::io::Error::last_os_error()));
            }
            SPARSE_FILE_BYTES / BLOCK as u64
        } else {
            // Preallocate, so the measured loop does not extend the file (no metadata to sync).
            for i in 0..REGION_BLOCKS {
                write_at(i * BLOCK as u64)?;
            }
            REGION_BLOCKS
        };
        sync()?;
        let mut hist = new_histogram();
        let end = Instant::now() + duration;
        let mut i = 0u64;
        while Instant::now() < end {
            let t = Instant::now();
            write_at((i % region_blocks) * BLOCK as u64)?;
            sync()?;
            hist.saturating_record(t.elapsed().as_micros().max(1) as u64);
            i += 1;
        }
        Ok(hist)
    })();
    // SAFETY: fd is open and ours.
    unsafe { libc::close(fd) };
    let _ = std::fs::remove_file(&path);
    Ok(DiskFloor { hist: result?, direct })
}

/// Slots the large-write floor rotates over: the file stays at
/// `LARGE_FLOOR_SLOTS` x the value size however many writes are timed.
const LARGE_FLOOR_SLOTS: u64 = 4;

/// Times `repeats` buffered `pwrite(value) + fdatasync` of `value` into a
/// file in `dir`: the disk's floor for one large setData (the bytes a
/// server must make durable before it may reply). The slots are written
/// and synced once before timing, so the timed loop moves data only, no
/// block allocation (as a log appends into preallocated space). Each
/// write's first byte differs so no write repeats the previous one.
pub fn large_write_floor(dir: &Path, value: &[u8], repeats: usize) -> Result<Histogram<u64>, String> {
    use std::os::unix::fs::FileExt;
    let path = dir.join(format!("zoocore-bench-large-floor-{}.tmp", std::process::id()));
    let result = (|| -> Result<Histogram<u64>, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {}: {e}", path.display()))?;
        let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
        let len = value.len() as u64;
        for slot in 0..LARGE_FLOOR_SLOTS {
            file.write_all_at(value, slot * len).map_err(|e| fail("write", e))?;
        }
        file.sync_all().map_err(|e| fail("fsync", e))?;
        let mut buf = value.to_vec();
        let mut hist = new_histogram();
        for i in 0..repeats as u64 {
            if let Some(first) = buf.first_mut() {
                *first = first.wrapping_add(1);
            }
            let t = Instant::now();
            file.write_all_at(&buf, (i % LARGE_FLOOR_SLOTS) * len).map_err(|e| fail("write", e))?;
            file.sync_data().map_err(|e| fail("fdatasync", e))?;
            hist.saturating_record(t.elapsed().as_micros().max(1) as u64);
        }
        Ok(hist)
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Round trips of a 16-byte message over loopback TCP to an echo thread.
pub fn loopback_rtt(duration: Duration) -> Result<Histogram<u64>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 16];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(_) => return Ok(()),
            }
        }
    });
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut hist = new_histogram();
    let mut buf = [7u8; 16];
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let t = Instant::now();
        s.write_all(&buf).map_err(|e| e.to_string())?;
        s.read_exact(&mut buf).map_err(|e| e.to_string())?;
        hist.saturating_record(t.elapsed().as_micros().max(1) as u64);
    }
    drop(s);
    let _ = echo.join();
    Ok(hist)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_floor_runs_in_temp_dir() {
        for mode in [FloorMode::Direct, FloorMode::Buffered, FloorMode::SparseAppend] {
            let f = disk_floor(&std::env::temp_dir(), Duration::from_millis(100), mode).unwrap();
            assert!(!f.hist.is_empty(), "{mode:?}");
            if mode != FloorMode::Direct {
                assert!(!f.direct, "{mode:?}");
            }
        }
    }

    #[test]
    fn large_write_floor_times_every_write() {
        let h = large_write_floor(&std::env::temp_dir(), &[7u8; 65536], 3).unwrap();
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn rtt_runs() {
        let h = loopback_rtt(Duration::from_millis(100)).unwrap();
        assert!(h.len() > 10);
    }
}
