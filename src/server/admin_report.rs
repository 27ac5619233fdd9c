//! The AdminServer's and the Prometheus endpoint's reports: what the HTTP
//! tasks of `server::admin` ask the commit shard for, through the same
//! report path as the four-letter words (ToCommit::Report → every worker's
//! ShardReport → `fourlw::format_report` on the commit shard).
//!
//! Two halves:
//! - `fill_shard_part` runs on each worker shard when it collects its part
//!   of an `admin.*` report: the connections, watches and latency figures
//!   that only that shard has.
//! - `render` runs on the commit shard, with every part and the commit
//!   shard's `CommitView`: it returns the JSON object of a command's data,
//!   with Apache's field names (Commands.java, ServerCnxn.getConnectionInfo,
//!   ServerStats as Jackson writes it), or the Prometheus text.
//!   Except `watches` / `watches_by_path` (`merged_by_requester`): their
//!   parts are listed in chunks by each shard's dump task and go to the
//!   requester unrendered, which merges them off the executors
//!   (`admin_watches`).
//!
//! Nothing here blocks: directory sizes (a directory walk) are added by the
//! HTTP task on worker 0, off the commit shard.

use serde_json::{json, Map, Value};

use crate::server::fourlw::{self, CommitView};
use crate::server::messages::{BufferSizes, ConnectionInfo, ShardReport};
use crate::server::stats::ServerMode;
use crate::server::worker_shard::WorkerShard;

/// Every report name this module answers starts with it.
pub const ADMIN_REPORT_PREFIX: &str = "admin.";

/// The report names (`ToCommit::Report.cmd`) the HTTP tasks send.
pub mod report {
    pub const CONNECTIONS: &str = "admin.connections";
    pub const SERVER_STATS: &str = "admin.server_stats";
    pub const STATS: &str = "admin.stats";
    pub const DUMP: &str = "admin.dump";
    pub const HASH: &str = "admin.hash";
    pub const MONITOR: &str = "admin.monitor";
    pub const OBSERVERS: &str = "admin.observers";
    pub const WATCHES: &str = "admin.watches";
    pub const WATCHES_BY_PATH: &str = "admin.watches_by_path";
    pub const WATCH_SUMMARY: &str = "admin.watch_summary";
    pub const ZOOCORE_LOG: &str = "admin.zoocore_log";
    pub const ZOOCORE_SHARDS: &str = "admin.zoocore_shards";
    /// The Prometheus text of `/metrics` (not JSON).
    pub const METRICS: &str = "admin.metrics";
}

/// Apache's tree digest version (DigestCalculator.DIGEST_VERSION), the one
/// zoocore's digest implements.
const TREE_DIGEST_VERSION: i64 = 2;

/// mntr keys that are zoocore's own (not Apache's): the AdminServer's
/// `monitor` prefixes them with `zoocore_` so that every unprefixed key is
/// one Apache also has.
const ZOOCORE_MNTR_KEYS: &[&str] = &[
    "fsync_us_",
    "batch_txns_",
    "batch_bytes_",
    "commit_queue_us_",
    "log_batches",
    "fsync_slow_count",
    "proposal_commit_us_",
    "ack_us_",
];

/// Reports the commit shard does not render but hands, part by part, to
/// the requester (`FromCommit::ReportParts`): their merge is O(watches),
/// so worker 0's AdminServer does it on a helper thread
/// (`admin_watches`).
pub fn merged_by_requester(cmd: &str) -> bool {
    cmd == report::WATCHES || cmd == report::WATCHES_BY_PATH
}

/// A worker's contribution to an `admin.*` report, beyond the totals every
/// report part carries.
pub fn fill_shard_part(shard: &WorkerShard, cmd: &str, part: &mut ShardReport) {
    if !cmd.starts_with(ADMIN_REPORT_PREFIX) {
        return;
    }
    part.shard = shard.index;
    *part.request_latency = shard.request_latency.borrow().clone();
    match cmd {
        report::CONNECTIONS | report::STATS => {
            for c in shard.conns.borrow().values() {
                let s = &c.stats;
                let count = s.count_latency.get();
                part.connections_info.push(ConnectionInfo {
                    remote_socket_address: c.peer.to_string(),
                    outstanding_requests: c.pending.borrow().len() as u64,
                    packets_received: s.received.get(),
                    packets_sent: s.sent.get(),
                    session_id: c.session_id.get(),
                    last_operation: fourlw::op_name(s.last_op.get()),
                    established_ms: c.established_ms,
                    session_timeout_ms: c.timeout_ms.get(),
                    last_cxid: s.last_cxid.get(),
                    last_zxid: s.last_zxid.get(),
                    last_response_time_ms: s.last_response_ms.get(),
                    secure: c.secure.get(),
                    last_latency_ms: s.last_latency_ms.get(),
                    min_latency_ms: s.min_latency_ms.get(),
                    avg_latency_ms: s.sum_latency_ms.get().checked_div(count).unwrap_or(0),
                    max_latency_ms: s.max_latency_ms.get(),
                });
            }
        }
        report::WATCH_SUMMARY => {
            // The registry's counters: O(1) per shard.
            let w = shard.watches.borrow();
            part.watched_paths = w.watched_path_count() as u64;
            part.watching_sessions = w.watching_session_count() as u64;
        }
        // `watches` / `watches_by_path` are listed by the shard's dump task
        // (`WorkerShard::watch_dump`), in chunks.
        _ => {}
    }
}

/// The commit shard's half: None for a report that is not an `admin.*` one.
pub fn render(cmd: &str, parts: &[ShardReport], view: &CommitView<'_>) -> Option<String> {
    let data = match cmd {
        report::CONNECTIONS => connections(parts, false),
        report::SERVER_STATS => server_stats(parts, view),
        report::STATS => {
            let mut m = server_stats(parts, view);
            m.extend(connections(parts, true));
            m
        }
        report::DUMP => dump(view),
        report::HASH => hash(view),
        report::MONITOR => monitor(parts, view),
        report::OBSERVERS => observers(view),
        report::WATCH_SUMMARY => watch_summary(parts),
        report::ZOOCORE_LOG => zoocore_log(view),
        report::ZOOCORE_SHARDS => zoocore_shards(parts),
        report::METRICS => return Some(crate::server::prometheus::render(parts, view)),
        _ => return None,
    };
    Some(Value::Object(data).to_string())
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// ServerCnxn.getConnectionInfo(brief): `stats` lists the brief form,
/// `connections` the full one; TLS connections (the secure client port, or
/// TLS on a unified port) go under `secure_connections`, as Apache lists
/// its secure connection factory's.
fn connections(parts: &[ShardReport], brief: bool) -> Map<String, Value> {
    let (mut list, mut secure) = (Vec::new(), Vec::new());
    for c in parts.iter().flat_map(|p| p.connections_info.iter()) {
        let mut m = object(json!({
            "remote_socket_address": c.remote_socket_address,
            // Apache's NIO interest set: 1 = reading (zoocore always reads,
            // but for back-pressure on one connection).
            "interest_ops": 1,
            "outstanding_requests": c.outstanding_requests,
            "packets_received": c.packets_received,
            "packets_sent": c.packets_sent,
        }));
        if !brief {
            m.extend(object(json!({
                "session_id": c.session_id,
                "last_operation": c.last_operation,
                "established": c.established_ms,
                "session_timeout": c.session_timeout_ms,
                "last_cxid": c.last_cxid,
                "last_zxid": c.last_zxid,
                "last_response_time": c.last_response_time_ms,
                "last_latency": c.last_latency_ms,
                "min_latency": c.min_latency_ms,
                "avg_latency": c.avg_latency_ms,
                "max_latency": c.max_latency_ms,
            })));
        }
        if c.secure {
            secure.push(Value::Object(m));
        } else {
            list.push(Value::Object(m));
        }
    }
    object(json!({ "connections": list, "secure_connections": secure }))
}

/// Apache's BufferStats as Jackson writes it.
fn buffer_stats(sizes: &BufferSizes) -> Value {
    json!({ "last_buffer_size": sizes.last, "min_buffer_size": sizes.min, "max_buffer_size": sizes.max })
}

/// SrvrCommand: `server_stats` is Apache's ServerStats bean as Jackson
/// writes it (snake_case getters). `data_dir_size` / `log_dir_size` are 0
/// here: the HTTP task fills them in off the commit shard.
fn server_stats(parts: &[ShardReport], view: &CommitView<'_>) -> Map<String, Value> {
    let t = fourlw::totals(parts);
    let mut m = object(json!({
        "version": fourlw::version_string(),
        "read_only": view.mode == ServerMode::ReadOnly,
        "server_stats": {
            "packets_sent": t.sent,
            "packets_received": t.received,
            "fsync_threshold_exceed_count": view.log.slow_syncs,
            "client_response_stats": buffer_stats(&t.response_sizes),
            "data_dir_size": 0,
            "log_dir_size": 0,
            "provider_null": false,
            "server_state": view.mode.name(),
            "last_processed_zxid": view.last_zxid,
            "outstanding_requests": t.outstanding,
            "avg_latency": t.lat_avg,
            "max_latency": t.lat_max,
            "min_latency": t.lat_min,
            "num_alive_client_connections": t.connections,
            "uptime": view.uptime_ms,
            "auth_failed_count": 0,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
        },
        "client_response": buffer_stats(&t.response_sizes),
    }));
    if view.mode == ServerMode::Leader {
        m.insert("proposal_stats".into(), buffer_stats(&view.proposal_sizes));
    }
    m.insert("node_count".into(), json!(fourlw::java_node_count(view.tree)));
    m
}

/// DumpCommand. `expiry_time_to_session_ids` is keyed, as Apache's
/// ExpiryQueue, by tick-rounded deadlines on a monotonic clock of arbitrary
/// origin (Apache's `Time.currentElapsedTime()`, zoocore's session clock):
/// the buckets of the commit shard's expiry queue. A session the queue does
/// not hold (a learner lists the leader's sessions) is listed at the latest
/// it can expire if it stays silent from now.
fn dump(view: &CommitView<'_>) -> Map<String, Value> {
    let tick = i64::from(view.config.tick_time_ms).max(1);
    let mut sessions = view.sessions.clone();
    sessions.sort();
    let mut by_deadline: std::collections::BTreeMap<i64, Vec<i64>> = std::collections::BTreeMap::new();
    let mut ephemerals = Map::new();
    for (sid, timeout_ms) in &sessions {
        let deadline = view.session_deadlines_ms.get(sid).copied().unwrap_or_else(|| {
            (view.session_clock_ms + i64::from(*timeout_ms)).div_euclid(tick).saturating_add(1).saturating_mul(tick)
        });
        by_deadline.entry(deadline).or_default().push(*sid);
        let mut paths = view.tree.ephemerals_of(*sid);
        if !paths.is_empty() {
            paths.sort();
            ephemerals.insert(sid.to_string(), json!(paths));
        }
    }
    let expiry: Map<String, Value> = by_deadline.into_iter().map(|(t, sids)| (t.to_string(), json!(sids))).collect();
    object(json!({ "expiry_time_to_session_ids": expiry, "session_id_to_ephemeral_paths": ephemerals }))
}

/// DigestCommand: the digest history (`DigestLog`: every 128th zxid, the
/// newest 1,024), oldest first, as Apache lists its DataTree digestLog.
fn hash(view: &CommitView<'_>) -> Map<String, Value> {
    let digests: Vec<Value> = view
        .digest_log
        .entries()
        .map(|(zxid, digest)| json!({ "zxid": zxid, "digest_version": TREE_DIGEST_VERSION, "digest": digest }))
        .collect();
    object(json!({ "digests": digests }))
}

/// MonitorCommand: the mntr figures under their Apache names (without the
/// `zk_` prefix), numbers as numbers; zoocore's own keys get `zoocore_`.
fn monitor(parts: &[ShardReport], view: &CommitView<'_>) -> Map<String, Value> {
    let text = fourlw::format_report("mntr", parts, view);
    let mut m = Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('\t') else { continue };
        let key = key.strip_prefix("zk_").unwrap_or(key);
        let key = if ZOOCORE_MNTR_KEYS.iter().any(|own| key.starts_with(own)) {
            format!("zoocore_{key}")
        } else {
            key.to_owned()
        };
        m.insert(key, mntr_value(value));
    }
    m
}

fn mntr_value(value: &str) -> Value {
    if let Ok(n) = value.parse::<i64>() {
        return json!(n);
    }
    match value.parse::<f64>() {
        Ok(f) if f.is_finite() => json!(f),
        _ => json!(value),
    }
}

/// SyncedObserverConsCommand: a leader lists its observers as Apache's
/// `LearnerHandler.getLearnerHandlerInfo`. A follower lists none (zoocore
/// followers are never an observer master), as Apache's without one.
fn observers(view: &CommitView<'_>) -> Map<String, Value> {
    if view.mode != ServerMode::Leader {
        return object(json!({ "synced_observers": 0, "observers": [] }));
    }
    let list: Vec<Value> = view
        .observers
        .iter()
        .map(|o| {
            json!({
                "remote_socket_address": o.remote_socket_address.to_string(),
                "sid": o.sid,
                "established": o.established_ms,
                "queued_packets": o.queued_packets,
                "queued_packets_size": o.queued_packets_bytes,
                "packets_received": o.packets_received,
                "packets_sent": o.packets_sent,
                "requests": o.requests,
                "last_zxid": o.last_zxid,
            })
        })
        .collect();
    object(json!({ "synced_observers": view.leader_view.2, "observers": list }))
}

/// WatchesSummary.toMap: data watches, as Apache's DataTree counts them,
/// summed over the shards' registry counters (O(shards), on the commit
/// shard). A session's watches are all on its connection's shard, so
/// `num_connections` and `num_total_watches` are exact; a path watched from
/// sessions on k shards counts k times in `num_paths` (Apache counts it
/// once), as in the four-letter wchs.
fn watch_summary(parts: &[ShardReport]) -> Map<String, Value> {
    let t = fourlw::totals(parts);
    object(json!({
        "num_connections": t.watching_sessions,
        "num_paths": t.watched_paths,
        "num_total_watches": t.data_watches,
    }))
}

fn histogram_summary(h: &hdrhistogram::Histogram<u64>) -> Value {
    let q = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
    json!({
        "count": h.len(),
        "min": if h.is_empty() { 0 } else { h.min() },
        "mean": if h.is_empty() { 0.0 } else { h.mean() },
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "p999": q(0.999),
        "max": h.max(),
    })
}

/// zoocore's own: the transaction log's histograms (fsync, batch sizes,
/// time from a request reaching the commit shard to its batch being durable).
fn zoocore_log(view: &CommitView<'_>) -> Map<String, Value> {
    let m = view.log;
    object(json!({
        "fsync_us": histogram_summary(&m.sync_us),
        "batch_txns": histogram_summary(&m.batch_txns),
        "batch_bytes": histogram_summary(&m.batch_bytes),
        "commit_queue_us": histogram_summary(&m.queue_us),
        "batches": m.batches,
        "slow_fsyncs": m.slow_syncs,
        "fsync_warning_threshold_ms": view.config.fsync_warning_threshold_ms,
        "log_sync": view.config.log_sync,
    }))
}

/// zoocore's own: one entry per worker shard.
fn zoocore_shards(parts: &[ShardReport]) -> Map<String, Value> {
    let mut sorted: Vec<&ShardReport> = parts.iter().collect();
    sorted.sort_by_key(|p| p.shard);
    let shards: Vec<Value> = sorted
        .into_iter()
        .map(|p| {
            let h = &p.request_latency;
            let buckets: Vec<Value> =
                h.cumulative().into_iter().map(|(le, count)| json!({ "le_us": le, "count": count })).collect();
            json!({
                "shard": p.shard,
                "connections": p.connections,
                "outstanding_requests": p.outstanding,
                "packets_received": p.packets_received,
                "packets_sent": p.packets_sent,
                "watches": p.watch_count,
                "request_latency": { "count": h.count, "sum_us": h.sum_us, "buckets": buckets },
            })
        })
        .collect();
    object(json!({ "shards": shards }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mntr_values_keep_their_json_types() {
        assert_eq!(mntr_value("42"), json!(42));
        assert_eq!(mntr_value("-1"), json!(-1));
        assert_eq!(mntr_value("2.5"), json!(2.5));
        assert_eq!(mntr_value("standalone"), json!("standalone"));
        assert_eq!(mntr_value("NaN"), json!("NaN"), "JSON has no NaN");
    }

    #[test]
    fn connection_info_has_apaches_fields_brief_and_full() {
        let part = ShardReport {
            connections_info: vec![ConnectionInfo {
                remote_socket_address: "127.0.0.1:5".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let brief = connections(std::slice::from_ref(&part), true);
        let first = &brief["connections"][0];
        let keys: Vec<&String> = first.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        assert_eq!(
            keys,
            ["remote_socket_address", "interest_ops", "outstanding_requests", "packets_received", "packets_sent"]
        );
        let full = connections(&[part], false);
        assert_eq!(full["connections"][0].as_object().map(|o| o.len()), Some(16));
        assert_eq!(full["secure_connections"], json!([]));
    }
}
