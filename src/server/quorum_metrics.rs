//! The ensemble's latency figures, owned by the commit shard, printed by
//! `mntr` under Apache's ServerMetrics names (so dashboards built on Apache
//! keep working) plus zoocore's own microsecond percentiles:
//!
//! * `election_time` (ms): LOOKING until the election decided (Apache
//!   records it when leading or following starts).
//! * `quorum_ack_latency` (ms), leader: a proposal until a quorum, the
//!   leader's own fsync included, holds it (its commit). zoocore's
//!   `proposal_commit_us_*` percentiles are the same span in µs.
//! * `ack_latency` per follower sid (ms), leader: a proposal until that
//!   follower's ACK (Apache's `avg_<sid>_ack_latency`, ...).
//! * `proposal_latency` (ms), follower: the txn's time stamp (the leader's
//!   wall clock when it made the txn) until the PROPOSAL is logged here,
//!   as Apache's Follower measures it (negative spans from clock drift are
//!   skipped, as Apache skips them).
//!
//! Apache prints each summary as avg/min/max/cnt/sum and its percentiles as
//! p50/p95/p99/p999 (AvgMinMaxPercentileCounter's keys).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::zab::ensemble::Sid;

/// Recent proposals whose start time is kept, so that a slow follower's
/// late ACK is still timed; past this many the oldest are forgotten.
pub const TIMED_PROPOSALS_MAX: usize = 10_000;
/// Followers with their own ack histogram (an ensemble has a handful).
const ACK_HISTOGRAMS_MAX: usize = 64;
/// Histogram range: 1 µs .. 1 hour.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

fn histogram() -> Histogram<u64> {
    // The bounds are constants known to be valid; `new(3)` cannot fail.
    Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3).unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

fn record_us(h: &mut Histogram<u64>, us: u64) {
    let _ = h.record(us.clamp(1, HISTOGRAM_MAX_US));
}

pub struct QuorumMetrics {
    election_us: Histogram<u64>,
    proposal_commit_us: Histogram<u64>,
    ack_us: BTreeMap<Sid, Histogram<u64>>,
    follower_proposal_us: Histogram<u64>,
    /// (zxid, when proposed), oldest first; leader only.
    proposed_at: VecDeque<(i64, Instant)>,
    /// Commits are timed up to here.
    commit_timed_through: i64,
    /// Each follower's newest timed ACK (an ACK covers all below it).
    ack_timed_through: BTreeMap<Sid, i64>,
}

impl Default for QuorumMetrics {
    fn default() -> Self {
        QuorumMetrics {
            election_us: histogram(),
            proposal_commit_us: histogram(),
            ack_us: BTreeMap::new(),
            follower_proposal_us: histogram(),
            proposed_at: VecDeque::new(),
            commit_timed_through: i64::MIN,
            ack_timed_through: BTreeMap::new(),
        }
    }
}

impl QuorumMetrics {
    pub fn election_took(&mut self, took: std::time::Duration) {
        record_us(&mut self.election_us, took.as_micros() as u64);
    }

    /// The leader proposed `zxid` (in zxid order).
    pub fn proposed(&mut self, zxid: i64, at: Instant) {
        while self.proposed_at.len() >= TIMED_PROPOSALS_MAX {
            self.proposed_at.pop_front();
        }
        self.proposed_at.push_back((zxid, at));
    }

    /// A follower acked everything up to `zxid`: its latency is that of
    /// the newest proposal it covers.
    pub fn acked(&mut self, sid: Sid, zxid: i64, now: Instant) {
        let Some((proposal, at)) = self.proposed_time(zxid) else { return };
        if self.ack_timed_through.get(&sid).is_some_and(|through| *through >= proposal) {
            return;
        }
        if !self.ack_us.contains_key(&sid) && self.ack_us.len() >= ACK_HISTOGRAMS_MAX {
            return;
        }
        self.ack_timed_through.insert(sid, proposal);
        record_us(self.ack_us.entry(sid).or_insert_with(histogram), now.duration_since(at).as_micros() as u64);
    }

    /// Everything up to `zxid` is committed.
    pub fn committed(&mut self, zxid: i64, now: Instant) {
        let from = self.proposed_at.partition_point(|(z, _)| *z <= self.commit_timed_through);
        for &(z, at) in self.proposed_at.iter().skip(from) {
            if z > zxid {
                break;
            }
            record_us(&mut self.proposal_commit_us, now.duration_since(at).as_micros() as u64);
        }
        self.commit_timed_through = self.commit_timed_through.max(zxid);
    }

    /// Leadership ended: what was in flight will never be timed.
    pub fn role_ended(&mut self) {
        self.proposed_at.clear();
        self.commit_timed_through = i64::MIN;
        self.ack_timed_through.clear();
    }

    /// A follower logged a proposal stamped `txn_time_ms` (wall clock).
    pub fn follower_received(&mut self, txn_time_ms: i64, now_wall_ms: i64) {
        let latency_ms = now_wall_ms - txn_time_ms;
        if latency_ms >= 0 {
            record_us(&mut self.follower_proposal_us, latency_ms as u64 * 1000);
        }
    }

    /// The newest timed proposal at or below `zxid`.
    fn proposed_time(&self, zxid: i64) -> Option<(i64, Instant)> {
        let i = self.proposed_at.partition_point(|(z, _)| *z <= zxid);
        i.checked_sub(1).and_then(|i| self.proposed_at.get(i).copied())
    }

    /// `srst`: start the figures afresh.
    pub fn reset(&mut self) {
        self.election_us.reset();
        self.proposal_commit_us.reset();
        self.ack_us.clear();
        self.follower_proposal_us.reset();
    }

    /// mntr lines: Apache's summaries (ms) and zoocore's µs percentiles.
    pub fn write_mntr(&self, s: &mut String) {
        summary(s, "election_time", &self.election_us);
        summary(s, "quorum_ack_latency", &self.proposal_commit_us);
        summary(s, "proposal_latency", &self.follower_proposal_us);
        for (sid, h) in &self.ack_us {
            summary(s, &format!("{sid}_ack_latency"), h);
        }
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            let _ = writeln!(s, "zk_proposal_commit_us_{label}\t{}", self.proposal_commit_us.value_at_quantile(q));
        }
        let _ = writeln!(s, "zk_proposal_commit_us_max\t{}", self.proposal_commit_us.max());
        for (sid, h) in &self.ack_us {
            for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
                let _ = writeln!(s, "zk_ack_us_{sid}_{label}\t{}", h.value_at_quantile(q));
            }
        }
    }
}

/// Apache's AvgMinMaxPercentileCounter keys, in ms (rounded as Apache
/// rounds: avg a double, the rest whole ms).
fn summary(s: &mut String, name: &str, h: &Histogram<u64>) {
    let n = h.len();
    let ms = |us: u64| us / 1000;
    let avg = if n == 0 { 0.0 } else { h.mean() / 1000.0 };
    let _ = writeln!(s, "zk_avg_{name}\t{}", crate::server::fourlw::java_double(avg));
    let _ = writeln!(s, "zk_min_{name}\t{}", if n == 0 { 0 } else { ms(h.min()) });
    let _ = writeln!(s, "zk_max_{name}\t{}", if n == 0 { 0 } else { ms(h.max()) });
    let _ = writeln!(s, "zk_cnt_{name}\t{n}");
    let _ = writeln!(s, "zk_sum_{name}\t{}", (h.mean() * n as f64 / 1000.0) as u64);
    for (label, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
        let _ = writeln!(s, "zk_{label}_{name}\t{}", if n == 0 { 0 } else { ms(h.value_at_quantile(q)) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn value(text: &str, key: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .unwrap_or_else(|| panic!("{key} missing in\n{text}"))
            .parse::<f64>()
            .map(|v| v as u64)
            .unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    #[test]
    fn commit_and_ack_latencies_are_timed_from_the_proposal() {
        let mut m = QuorumMetrics::default();
        let t0 = Instant::now();
        m.proposed(1, t0);
        m.proposed(2, t0 + Duration::from_millis(10));
        m.committed(2, t0 + Duration::from_millis(30));
        m.committed(1, t0 + Duration::from_millis(31));
        // One ACK of zxid 2 covers 1 too; its latency is 2's.
        m.acked(5, 2, t0 + Duration::from_millis(14));
        let mut s = String::new();
        m.write_mntr(&mut s);
        assert_eq!(value(&s, "zk_cnt_quorum_ack_latency"), 2);
        assert_eq!(value(&s, "zk_max_quorum_ack_latency"), 30);
        assert_eq!(value(&s, "zk_cnt_5_ack_latency"), 1);
        assert_eq!(value(&s, "zk_max_5_ack_latency"), 4);
        assert_eq!(value(&s, "zk_cnt_election_time"), 0);
        // A slow follower's ack after the commit is still timed, once.
        m.acked(6, 2, t0 + Duration::from_millis(40));
        m.acked(6, 2, t0 + Duration::from_millis(41));
        let mut s = String::new();
        m.write_mntr(&mut s);
        assert_eq!(value(&s, "zk_cnt_6_ack_latency"), 1);
        assert_eq!(value(&s, "zk_max_6_ack_latency"), 30);
        assert_eq!(value(&s, "zk_cnt_quorum_ack_latency"), 2, "commits are timed once");
    }

    #[test]
    fn the_timed_window_is_bounded_and_cleared_with_the_role() {
        let mut m = QuorumMetrics::default();
        let t0 = Instant::now();
        for z in 0..(TIMED_PROPOSALS_MAX as i64 + 10) {
            m.proposed(z, t0);
        }
        assert_eq!(m.proposed_at.len(), TIMED_PROPOSALS_MAX);
        m.role_ended();
        assert!(m.proposed_at.is_empty());
    }

    #[test]
    fn follower_latency_skips_clock_drift() {
        let mut m = QuorumMetrics::default();
        m.follower_received(1_000, 1_007);
        m.follower_received(1_000, 990);
        let mut s = String::new();
        m.write_mntr(&mut s);
        assert_eq!(value(&s, "zk_cnt_proposal_latency"), 1);
        assert_eq!(value(&s, "zk_max_proposal_latency"), 7);
    }
}
