//! The Prometheus text of `/metrics` (`metricsProvider.className=
//! org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider`).
//!
//! Apache's metrics keep Apache's names and types, as its provider
//! (simpleclient 0.9, text format 0.0.4) exposes them: gauges and counters
//! under their bare ServerMetrics names (no `_total` added), summaries as
//! `name{quantile=..}`, `name_count`, `name_sum`, in Apache's units (ms).
//! So existing ZooKeeper dashboards and alerts keep working. zoocore's own
//! figures follow Prometheus' conventions (base units, `zoocore_` prefix)
//! and are real histograms with buckets: the log's fsync, batch sizes and
//! commit-queue time, and each worker shard's request latency.
//!
//! Rendered on the commit shard from the report parts and `CommitView`
//! (`admin_report::render`); encoded with the `prometheus` crate's
//! TextEncoder. Reads /proc/self for the `process_*` figures.

use std::collections::BTreeMap;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType, Quantile, Summary,
};
use prometheus::{Encoder, TextEncoder};

use crate::server::fourlw::{self, CommitView};
use crate::server::messages::{ShardReport, LATENCY_BUCKET_BOUNDS_US};
use crate::server::stats::ServerMode;

/// The content type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket bounds of the batch-size histograms.
const BATCH_TXNS_BOUNDS: [u64; 13] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000];
const BATCH_BYTES_BOUNDS: [u64; 10] =
    [4_096, 8_192, 16_384, 32_768, 65_536, 131_072, 262_144, 1 << 20, 4 << 20, 16 << 20];

/// Families in the order they are added; the encoder writes them so.
#[derive(Default)]
struct Families {
    list: Vec<MetricFamily>,
}

fn labels(pairs: &[(&str, String)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut l = LabelPair::default();
            l.set_name((*name).to_owned());
            l.set_value(value.clone());
            l
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut f = MetricFamily::default();
        f.set_name(name.to_owned());
        f.set_help(help.to_owned());
        f.set_field_type(kind);
        f.set_metric(metrics);
        self.list.push(f);
    }

    /// An Apache gauge: its help text is its name, as Apache registers it.
    fn apache_gauge(&mut self, name: &str, value: f64) {
        self.gauge(name, name, value);
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, MetricType::GAUGE, vec![gauge_metric(&[], value)]);
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        let mut c = Counter::default();
        c.set_value(value);
        let mut m = Metric::default();
        m.set_counter(c);
        self.family(name, help, MetricType::COUNTER, vec![m]);
    }
}

fn gauge_metric(label_pairs: &[(&str, String)], value: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(value);
    let mut m = Metric::default();
    m.set_label(labels(label_pairs));
    m.set_gauge(g);
    m
}

fn summary_metric(label_pairs: &[(&str, String)], quantiles: &[(f64, f64)], count: u64, sum: f64) -> Metric {
    let mut s = Summary::default();
    s.set_sample_count(count);
    s.set_sample_sum(sum);
    s.set_quantile(
        quantiles
            .iter()
            .map(|&(q, v)| {
                let mut quantile = Quantile::default();
                quantile.set_quantile(q);
                quantile.set_value(v);
                quantile
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_label(labels(label_pairs));
    m.set_summary(s);
    m
}

/// `cumulative` holds (upper bound, count of values at or below it).
fn histogram_metric(label_pairs: &[(&str, String)], cumulative: &[(f64, u64)], count: u64, sum: f64) -> Metric {
    let mut h = Histogram::default();
    h.set_sample_count(count);
    h.set_sample_sum(sum);
    h.set_bucket(
        cumulative
            .iter()
            .map(|&(le, c)| {
                let mut b = Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(c);
                b
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_label(labels(label_pairs));
    m.set_histogram(h);
    m
}

/// An HdrHistogram as Prometheus buckets at `bounds` (in the histogram's
/// unit), scaled by `scale` into the exposed unit.
fn hdr_histogram(h: &hdrhistogram::Histogram<u64>, bounds: &[u64], scale: f64) -> Metric {
    let cumulative: Vec<(f64, u64)> =
        bounds.iter().map(|&b| (b as f64 * scale, if h.is_empty() { 0 } else { h.count_between(0, b) })).collect();
    let sum = if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 * scale };
    histogram_metric(&[], &cumulative, h.len(), sum)
}

/// Apache's AvgMinMaxPercentileCounter figures a QuorumMetrics mntr dump
/// gives (`zk_cnt_x`, `zk_sum_x`, `zk_p50_x`, ...), by key without `zk_`.
fn parse_mntr(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t')?;
            Some((k.strip_prefix("zk_").unwrap_or(k).to_owned(), v.parse::<f64>().ok()?))
        })
        .collect()
}

pub fn render(parts: &[ShardReport], view: &CommitView<'_>) -> String {
    let mut f = Families::default();
    apache_metrics(&mut f, parts, view);
    zoocore_metrics(&mut f, parts, view);
    if view.config.prometheus.as_ref().is_none_or(|p| p.export_process_info) {
        process_metrics(&mut f);
    }
    let mut out = Vec::new();
    // Every family has a name and at least one metric (Families::family
    // skips empty ones), the only two things the encoder checks.
    if let Err(e) = TextEncoder::new().encode(&f.list, &mut out) {
        tracing::warn!(error = %e, "cannot encode the Prometheus metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Apache's names (ServerMetrics, ZooKeeperServer.registerMetrics and the
/// leader's gauges), for what zoocore measures.
fn apache_metrics(f: &mut Families, parts: &[ShardReport], view: &CommitView<'_>) {
    let t = fourlw::totals(parts);
    let ephemerals: usize = view.sessions.iter().map(|(sid, _)| view.tree.ephemerals_of(*sid).len()).sum();
    let (open_fds, max_fds) = fourlw::fd_counts();
    f.apache_gauge("znode_count", fourlw::java_node_count(view.tree) as f64);
    f.apache_gauge("watch_count", t.watches as f64);
    f.apache_gauge("ephemerals_count", ephemerals as f64);
    f.apache_gauge("approximate_data_size", view.tree.approximate_data_size() as f64);
    f.apache_gauge("num_alive_connections", t.connections as f64);
    f.apache_gauge("outstanding_requests", t.outstanding as f64);
    f.apache_gauge("packets_received", t.received as f64);
    f.apache_gauge("packets_sent", t.sent as f64);
    f.apache_gauge("avg_latency", t.lat_avg);
    f.apache_gauge("max_latency", t.lat_max as f64);
    f.apache_gauge("min_latency", t.lat_min as f64);
    f.apache_gauge("uptime", view.uptime_ms as f64);
    f.apache_gauge("global_sessions", view.sessions.len() as f64);
    f.apache_gauge("local_sessions", 0.0);
    f.apache_gauge("open_file_descriptor_count", open_fds as f64);
    f.apache_gauge("max_file_descriptor_count", max_fds as f64);
    let responses = crate::server::fourlw::totals(parts).response_sizes;
    f.apache_gauge("last_client_response_size", responses.last as f64);
    f.apache_gauge("max_client_response_size", responses.max as f64);
    f.apache_gauge("min_client_response_size", responses.min as f64);
    f.apache_gauge("auth_failed_count", 0.0);
    if view.quorum_size > 0 {
        f.apache_gauge("quorum_size", view.quorum_size as f64);
    }
    if view.mode == ServerMode::Leader {
        let (learners, followers, observers) = view.leader_view;
        f.apache_gauge("learners", learners as f64);
        f.apache_gauge("synced_followers", followers as f64);
        f.apache_gauge("synced_non_voting_followers", 0.0);
        f.apache_gauge("synced_observers", observers as f64);
        f.apache_gauge("pending_syncs", view.pending_syncs as f64);
        f.apache_gauge("last_proposal_size", view.proposal_sizes.last as f64);
        f.apache_gauge("max_proposal_size", view.proposal_sizes.max as f64);
        f.apache_gauge("min_proposal_size", view.proposal_sizes.min as f64);
    }
    f.counter("digest_mismatches_count", "digest_mismatches_count", view.digest_mismatches as f64);
    quota_metrics(f, view);

    // fsynctime: a BASIC summary (median only), in ms.
    let sync = &view.log.sync_us;
    let p50_ms = if sync.is_empty() { 0.0 } else { sync.value_at_quantile(0.5) as f64 / 1000.0 };
    let sum_ms = if sync.is_empty() { 0.0 } else { sync.mean() * sync.len() as f64 / 1000.0 };
    f.family(
        "fsynctime",
        "fsynctime",
        MetricType::SUMMARY,
        vec![summary_metric(&[], &[(0.5, p50_ms)], sync.len(), sum_ms)],
    );

    if let Some(q) = view.quorum_metrics {
        let mut text = String::new();
        q.write_mntr(&mut text);
        quorum_summaries(f, &parse_mntr(&text));
    }
}

/// QuotaMetricsUtils' gauge sets and the quota-exceeded counter set, one
/// metric per namespace labelled `key` (Apache's Prometheus label).
fn quota_metrics(f: &mut Families, view: &CommitView<'_>) {
    let m = view.tree.quota_metrics();
    for (name, map) in m.gauge_sets() {
        let metrics = map.iter().map(|(ns, v)| gauge_metric(&[("key", ns.clone())], *v as f64)).collect();
        f.family(name, name, MetricType::GAUGE, metrics);
    }
    let exceeded = view
        .quota_exceeded
        .iter()
        .map(|(ns, count)| {
            let mut c = Counter::default();
            c.set_value(*count as f64);
            let mut metric = Metric::default();
            metric.set_label(labels(&[("key", ns.clone())]));
            metric.set_counter(c);
            metric
        })
        .collect();
    let name = "quota_exceeded_error_per_namespace";
    f.family(name, name, MetricType::COUNTER, exceeded);
}

/// The ensemble's summaries, from QuorumMetrics' figures: election_time
/// (BASIC), quorum_ack_latency and proposal_latency (ADVANCED: 0.5, 0.9,
/// 0.99 where zoocore has them) and ack_latency per follower (`key` = sid).
fn quorum_summaries(f: &mut Families, m: &BTreeMap<String, f64>) {
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let summary = |name: &str, quantiles: Vec<(f64, f64)>, labels: &[(&str, String)]| {
        summary_metric(labels, &quantiles, get(&format!("cnt_{name}")) as u64, get(&format!("sum_{name}")))
    };
    f.family(
        "election_time",
        "election_time",
        MetricType::SUMMARY,
        vec![summary("election_time", vec![(0.5, get("p50_election_time"))], &[])],
    );
    // zoocore times commits in µs, with p90: the ADVANCED quantiles.
    let commit_ms = |label: &str| get(&format!("proposal_commit_us_{label}")) / 1000.0;
    f.family(
        "quorum_ack_latency",
        "quorum_ack_latency",
        MetricType::SUMMARY,
        vec![summary(
            "quorum_ack_latency",
            vec![(0.5, commit_ms("p50")), (0.9, commit_ms("p90")), (0.99, commit_ms("p99"))],
            &[],
        )],
    );
    f.family(
        "proposal_latency",
        "proposal_latency",
        MetricType::SUMMARY,
        vec![summary(
            "proposal_latency",
            vec![(0.5, get("p50_proposal_latency")), (0.99, get("p99_proposal_latency"))],
            &[],
        )],
    );
    let followers: Vec<String> = m
        .keys()
        .filter_map(|k| k.strip_prefix("cnt_").and_then(|r| r.strip_suffix("_ack_latency")))
        .filter(|sid| sid.parse::<u64>().is_ok())
        .map(str::to_owned)
        .collect();
    let per_follower: Vec<Metric> = followers
        .iter()
        .map(|sid| {
            let us = |label: &str| get(&format!("ack_us_{sid}_{label}")) / 1000.0;
            summary(&format!("{sid}_ack_latency"), vec![(0.5, us("p50")), (0.99, us("p99"))], &[("key", sid.clone())])
        })
        .collect();
    f.family("ack_latency", "ack_latency", MetricType::SUMMARY, per_follower);
}

/// zoocore's own figures, as real histograms.
fn zoocore_metrics(f: &mut Families, parts: &[ShardReport], view: &CommitView<'_>) {
    let log = view.log;
    let us_to_s = 1e-6;
    f.family(
        "zoocore_log_fsync_seconds",
        "Write + sync of one log batch (group commit)",
        MetricType::HISTOGRAM,
        vec![hdr_histogram(&log.sync_us, &LATENCY_BUCKET_BOUNDS_US, us_to_s)],
    );
    f.family(
        "zoocore_commit_queue_seconds",
        "From a request reaching the commit shard to its batch being durable",
        MetricType::HISTOGRAM,
        vec![hdr_histogram(&log.queue_us, &LATENCY_BUCKET_BOUNDS_US, us_to_s)],
    );
    f.family(
        "zoocore_log_batch_txns",
        "Transactions per log batch",
        MetricType::HISTOGRAM,
        vec![hdr_histogram(&log.batch_txns, &BATCH_TXNS_BOUNDS, 1.0)],
    );
    f.family(
        "zoocore_log_batch_bytes",
        "Bytes per log batch (block-padded)",
        MetricType::HISTOGRAM,
        vec![hdr_histogram(&log.batch_bytes, &BATCH_BYTES_BOUNDS, 1.0)],
    );
    f.counter("zoocore_log_batches_total", "Log batches written since start or srst", log.batches as f64);
    f.counter(
        "zoocore_log_slow_fsyncs_total",
        "Log syncs slower than fsync.warningthresholdms since start or srst",
        log.slow_syncs as f64,
    );
    f.gauge("zoocore_last_zxid", "The newest zxid applied by the commit shard", view.last_zxid as f64);

    let mut sorted: Vec<&ShardReport> = parts.iter().collect();
    sorted.sort_by_key(|p| p.shard);
    let per_shard = |value: &dyn Fn(&ShardReport) -> f64| -> Vec<Metric> {
        sorted.iter().map(|p| gauge_metric(&[("shard", p.shard.to_string())], value(p))).collect()
    };
    f.family(
        "zoocore_shard_connections",
        "Client connections on the worker shard",
        MetricType::GAUGE,
        per_shard(&|p| p.connections as f64),
    );
    f.family(
        "zoocore_shard_outstanding_requests",
        "Requests in flight on the worker shard's connections",
        MetricType::GAUGE,
        per_shard(&|p| p.outstanding as f64),
    );
    f.family(
        "zoocore_shard_packets_received",
        "Packets received on the worker shard's open connections",
        MetricType::GAUGE,
        per_shard(&|p| p.packets_received as f64),
    );
    f.family(
        "zoocore_shard_packets_sent",
        "Packets sent on the worker shard's open connections",
        MetricType::GAUGE,
        per_shard(&|p| p.packets_sent as f64),
    );
    f.family(
        "zoocore_shard_watches",
        "Watches registered on the worker shard",
        MetricType::GAUGE,
        per_shard(&|p| p.watch_count as f64),
    );
    let latency: Vec<Metric> = sorted
        .iter()
        .map(|p| {
            let h = &p.request_latency;
            let cumulative: Vec<(f64, u64)> =
                h.cumulative().into_iter().map(|(le, c)| (le as f64 * us_to_s, c)).collect();
            histogram_metric(&[("shard", p.shard.to_string())], &cumulative, h.count, h.sum_us as f64 * us_to_s)
        })
        .collect();
    f.family(
        "zoocore_shard_request_latency_seconds",
        "Request latency on the worker shard, from receipt to reply queued",
        MetricType::HISTOGRAM,
        latency,
    );
}

/// The process figures Prometheus clients export under these names
/// (Apache's provider adds the JVM's; zoocore has a process, not a JVM).
fn process_metrics(f: &mut Families) {
    let Some(stat) = ProcessStat::read() else { return };
    f.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", stat.cpu_seconds);
    f.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        stat.start_time_seconds,
    );
    f.gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", stat.virtual_memory_bytes);
    f.gauge("process_resident_memory_bytes", "Resident memory size in bytes.", stat.resident_memory_bytes);
    let (open, max) = fourlw::fd_counts();
    f.gauge("process_open_fds", "Number of open file descriptors.", open as f64);
    f.gauge("process_max_fds", "Maximum number of open file descriptors.", max as f64);
}

struct ProcessStat {
    cpu_seconds: f64,
    start_time_seconds: f64,
    virtual_memory_bytes: f64,
    resident_memory_bytes: f64,
}

impl ProcessStat {
    fn read() -> Option<ProcessStat> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        ProcessStat::parse(&stat, boot_time, ticks as f64, page as f64)
    }

    /// /proc/<pid>/stat: the command name may hold spaces and parentheses,
    /// so fields are counted after the last ')'.
    fn parse(stat: &str, boot_time_s: f64, ticks_per_s: f64, page_bytes: f64) -> Option<ProcessStat> {
        if ticks_per_s <= 0.0 {
            return None;
        }
        let after_name = &stat[stat.rfind(')')? + 1..];
        // Field 3 (state) is the first after the name.
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let field = |n: usize| fields.get(n.checked_sub(3)?)?.parse::<f64>().ok();
        Some(ProcessStat {
            cpu_seconds: (field(14)? + field(15)?) / ticks_per_s,
            start_time_seconds: boot_time_s + field(22)? / ticks_per_s,
            virtual_memory_bytes: field(23)?,
            resident_memory_bytes: field(24)? * page_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        let stat =
            "4242 (zoo core) (x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 9 0 1000 123456789 300 18446744073709551615";
        let p = ProcessStat::parse(stat, 1_700_000_000.0, 100.0, 4096.0).expect("parsed");
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.start_time_seconds, 1_700_000_010.0);
        assert_eq!(p.virtual_memory_bytes, 123_456_789.0);
        assert_eq!(p.resident_memory_bytes, 300.0 * 4096.0);
        assert!(ProcessStat::parse("garbage", 0.0, 100.0, 4096.0).is_none());
        assert!(ProcessStat::parse("1 (x) S 1", 0.0, 100.0, 4096.0).is_none(), "too few fields");
    }

    #[test]
    fn families_encode_as_text_format_with_apache_names_unchanged() {
        let mut f = Families::default();
        f.counter("digest_mismatches_count", "digest_mismatches_count", 3.0);
        f.family("fsynctime", "fsynctime", MetricType::SUMMARY, vec![summary_metric(&[], &[(0.5, 1.5)], 4, 6.0)]);
        f.family(
            "zoocore_shard_request_latency_seconds",
            "h",
            MetricType::HISTOGRAM,
            vec![histogram_metric(&[("shard", "0".into())], &[(0.001, 2), (0.01, 3)], 3, 0.012)],
        );
        f.family("empty", "skipped", MetricType::GAUGE, Vec::new());
        let mut out = Vec::new();
        TextEncoder::new().encode(&f.list, &mut out).expect("encodes");
        let text = String::from_utf8(out).expect("utf-8");
        // A counter keeps Apache's name: no `_total` is appended.
        assert!(text.contains("# TYPE digest_mismatches_count counter\ndigest_mismatches_count 3\n"), "{text}");
        assert!(text.contains("fsynctime{quantile=\"0.5\"} 1.5\nfsynctime_sum 6\nfsynctime_count 4\n"), "{text}");
        assert!(text.contains("zoocore_shard_request_latency_seconds_bucket{shard=\"0\",le=\"0.001\"} 2\n"), "{text}");
        assert!(text.contains("zoocore_shard_request_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 3\n"), "{text}");
        assert!(!text.contains("empty"), "{text}");
    }

    #[test]
    fn quorum_summaries_come_from_the_mntr_figures() {
        let mntr = "zk_cnt_election_time\t2\nzk_sum_election_time\t30\nzk_p50_election_time\t12\n\
                    zk_cnt_3_ack_latency\t5\nzk_sum_3_ack_latency\t10\nzk_ack_us_3_p50\t1500\nzk_ack_us_3_p99\t4000\n";
        let mut f = Families::default();
        quorum_summaries(&mut f, &parse_mntr(mntr));
        let election = f.list.iter().find(|m| m.name() == "election_time").expect("election_time");
        let s = election.get_metric()[0].get_summary();
        assert_eq!((s.sample_count(), s.sample_sum()), (2, 30.0));
        let acks = f.list.iter().find(|m| m.name() == "ack_latency").expect("ack_latency");
        assert_eq!(acks.get_metric().len(), 1);
        assert_eq!(acks.get_metric()[0].get_label()[0].value(), "3");
        assert_eq!(acks.get_metric()[0].get_summary().get_quantile()[0].value(), 1.5);
    }
}
