//! Helpers the measuring examples share (included with `#[path]`: a
//! directory without a `main.rs` is not an example of its own).

/// This process's user + system CPU time so far, in seconds.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The stat of a node created and last changed at `zxid` (a fixed time).
pub fn stat_at(zxid: i64) -> zoocore::tree::StoredStat {
    zoocore::tree::StoredStat {
        czxid: zxid,
        mzxid: zxid,
        pzxid: zxid,
        ctime: 1_764_650_000_000,
        mtime: 1_764_650_000_000,
        ..zoocore::tree::StoredStat::default()
    }
}
