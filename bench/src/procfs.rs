//! What the benchmark reads from /proc: a process's CPU time and resident
//! memory, and the CPU time of each of our own threads (to tell when the
//! client, not the server, is the bottleneck).

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/<pid>/stat's utime/stime.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    // 100 is the value on every Linux build we know of; use it if sysconf fails.
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime in seconds from a `/proc/.../stat` line.
fn cpu_seconds_from_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may contain spaces and parentheses; the
    // fields after the last ')' are fixed: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_second())
}

/// CPU time (user + system) a process has used so far, all its threads.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds_from_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Resident set size in bytes (VmRSS).
pub fn process_rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds per thread of this process, keyed by thread id.
pub fn own_thread_cpu_seconds() -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(cpu) = fs::read_to_string(entry.path().join("stat")).ok().and_then(|s| cpu_seconds_from_stat(&s)) {
            out.insert(tid, cpu);
        }
    }
    out
}

/// The largest fraction of `wall_seconds` any single thread spent on CPU
/// between two snapshots (threads that exist in both).
pub fn busiest_thread_fraction(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>, wall_seconds: f64) -> f64 {
    if wall_seconds <= 0.0 {
        return 0.0;
    }
    after.iter().filter_map(|(tid, a)| before.get(tid).map(|b| (a - b) / wall_seconds)).fold(0.0, f64::max)
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_name() {
        let line = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 10";
        let cpu = cpu_seconds_from_stat(line).unwrap();
        assert!((cpu - 300.0 / clock_ticks_per_second()).abs() < 1e-9);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(process_cpu_seconds(pid).is_some());
        assert!(process_rss_bytes(pid).unwrap() > 0);
        assert!(!own_thread_cpu_seconds().is_empty());
    }
}
