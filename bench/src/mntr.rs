//! Reads the server's own log metrics with the `mntr` four-letter word, so a
//! run can print the server-side fsync / batch / commit-queue histograms
//! beside the client-side latencies.
//!
//! zoocore exports `zk_fsync_us_*`, `zk_batch_txns_*`, `zk_batch_bytes_*`,
//! `zk_commit_queue_us_*` (microseconds / counts, cumulative since start) and
//! `zk_log_batches`; Apache ZooKeeper exports only the `*_fsynctime` summary
//! (milliseconds). Keys a server lacks are simply absent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::report::json_str;

/// Key prefixes kept from the mntr output.
const KEPT: [&str; 9] = [
    "zk_fsync_us_",
    "zk_batch_txns_",
    "zk_batch_bytes_",
    "zk_commit_queue_us_",
    "zk_log_batches",
    "zk_fsync_slow_count",
    "zk_cnt_fsynctime",
    "zk_avg_fsynctime",
    "zk_max_fsynctime",
];

/// The kept mntr keys, in the server's order.
#[derive(Debug, Clone, Default)]
pub struct LogMetrics(pub Vec<(String, String)>);

impl LogMetrics {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| match v.parse::<f64>() {
                Ok(n) if n.is_finite() => format!("{}:{v}", json_str(k)),
                _ => format!("{}:{}", json_str(k), json_str(v)),
            })
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// One human line: fsync p50/p99, txns per batch p50/p99, queue p50/p99.
    pub fn summary(&self) -> String {
        let g = |k: &str| self.get(k).unwrap_or("-");
        if self.get("zk_fsync_us_p50").is_some() {
            format!(
                "fsync us p50 {} p99 {} max {} | txns/batch p50 {} p99 {} | commit queue us p50 {} p99 {} | batches {}",
                g("zk_fsync_us_p50"),
                g("zk_fsync_us_p99"),
                g("zk_fsync_us_max"),
                g("zk_batch_txns_p50"),
                g("zk_batch_txns_p99"),
                g("zk_commit_queue_us_p50"),
                g("zk_commit_queue_us_p99"),
                g("zk_log_batches"),
            )
        } else if self.get("zk_cnt_fsynctime").is_some() {
            format!(
                "fsync ms avg {} max {} count {}",
                g("zk_avg_fsynctime"),
                g("zk_max_fsynctime"),
                g("zk_cnt_fsynctime")
            )
        } else {
            "(server exports no log metrics)".to_string()
        }
    }
}

/// Parses `key<TAB>value` lines, keeping the log-related keys.
pub fn parse(text: &str) -> LogMetrics {
    let kept = text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(k, _)| KEPT.iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    LogMetrics(kept)
}

/// Sends `mntr` and parses the reply; None if the server does not answer
/// (the run goes on without server-side metrics).
pub fn read(server: SocketAddr) -> Option<LogMetrics> {
    four_letter(server, "mntr", Duration::from_secs(2)).map(|text| parse(&text))
}

/// Sends a four-letter word and reads the reply to the end; None if the
/// server does not answer within `timeout`.
pub fn four_letter(addr: SocketAddr, word: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_log_keys_only() {
        let m = parse("zk_version\t3.9\nzk_fsync_us_p50\t120\nzk_batch_txns_p99\t64\nzk_avg_fsynctime\t0.1\n");
        assert_eq!(m.get("zk_fsync_us_p50"), Some("120"));
        assert_eq!(m.get("zk_version"), None);
        assert_eq!(m.to_json(), r#"{"zk_fsync_us_p50":120,"zk_batch_txns_p99":64,"zk_avg_fsynctime":0.1}"#);
        assert!(m.summary().starts_with("fsync us p50 120"));
    }

    #[test]
    fn apache_summary_and_garbage() {
        let m = parse("zk_avg_fsynctime\t0.5\nzk_max_fsynctime\t3\nzk_cnt_fsynctime\t10\nno tab here\n");
        assert_eq!(m.summary(), "fsync ms avg 0.5 max 3 count 10");
        assert_eq!(parse("").summary(), "(server exports no log metrics)");
    }
}
