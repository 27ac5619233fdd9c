//! Four-letter words. Words that need only the configuration are answered
//! by the worker that received them (`local_answer`); the others gather
//! one `ShardReport` from every worker through the commit shard, which adds
//! its own figures and formats the text (`format_report`).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use bytes::Bytes;

use crate::config::Config;
use crate::server::messages::ShardReport;
use crate::server::stats::ServerMode;
use crate::server::worker_shard::Conn;
use crate::tree::DataTree;

/// The ZooKeeper release whose protocol zoocore implements. Clients read it
/// from `envi`/`srvr` to pick features, so it comes first; zoocore's own
/// version follows it.
pub const ZOOKEEPER_LEVEL: &str = "3.9.3";

pub fn version_string() -> String {
    format!("{ZOOKEEPER_LEVEL}-zoocore-{}, built on zoocore {}", env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_VERSION"))
}

/// What the commit shard contributes to a report.
pub struct CommitView<'a> {
    pub config: &'a Config,
    pub tree: &'a DataTree,
    pub last_zxid: i64,
    pub sessions: Vec<(i64, i32)>,
    /// When each session (of `sessions`) expires unless heard from, on the
    /// commit shard's monotonic session clock (ms since it started): the
    /// tick-rounded buckets of its expiry queue, as Apache's dump lists
    /// its ExpiryQueue on `Time.currentElapsedTime()`. Absent for a session
    /// the queue does not hold (a learner's view of the leader's sessions).
    pub session_deadlines_ms: HashMap<i64, i64>,
    /// The session clock now.
    pub session_clock_ms: i64,
    /// The digest history (the AdminServer's `hash`).
    pub digest_log: &'a crate::server::commit_shard::DigestLog,
    pub uptime_ms: u64,
    pub log: &'a crate::server::log_writer::LogMetrics,
    pub mode: crate::server::stats::ServerMode,
    pub digest_mismatches: u64,
    /// (learners, synced followers, synced observers) when leading.
    pub leader_view: (u64, u64, u64),
    pub pending_syncs: u64,
    /// Voting members of the ensemble; 0 standalone.
    pub quorum_size: u64,
    /// The ensemble's latency figures; None standalone.
    pub quorum_metrics: Option<&'a crate::server::quorum_metrics::QuorumMetrics>,
    /// Leader only: sizes of the proposals sent (Apache's proposalStats).
    pub proposal_sizes: crate::server::messages::BufferSizes,
    /// Leader only: the observers in the broadcast.
    pub observers: &'a [crate::server::messages::ObserverInfo],
    /// Writes refused for a hard quota, per top namespace.
    pub quota_exceeded: &'a std::collections::BTreeMap<String, u64>,
}

/// Answers the words that need no shard state; None for the others.
pub fn local_answer(cmd: &str, config: &Config, mode: ServerMode) -> Option<String> {
    Some(match cmd {
        "ruok" => "imok".to_string(),
        "isro" => mode.isro_answer().to_string(),
        "envi" => envi(),
        "conf" => conf(config),
        "dirs" => {
            format!("datadir_size: {}\nlogdir_size: {}\n", dir_size(&config.data_dir), dir_size(&config.data_log_dir))
        }
        "gtmk" => "0".to_string(),
        "stmk" => "0".to_string(),
        _ => return None,
    })
}

fn envi() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
    let user = std::env::var("USER").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut s = String::from("Environment:\n");
    let _ = writeln!(s, "zookeeper.version={}", version_string());
    let _ = writeln!(s, "zoocore.version={}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "host.name={}", host.trim());
    let _ = writeln!(s, "os.name={}", std::env::consts::OS);
    let _ = writeln!(s, "os.arch={}", std::env::consts::ARCH);
    let _ = writeln!(s, "user.name={user}");
    let _ = writeln!(s, "user.home={home}");
    let _ = writeln!(s, "user.dir={cwd}");
    s
}

fn conf(c: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "clientPort={}", c.client_port);
    let _ = writeln!(s, "secureClientPort=-1");
    let _ = writeln!(s, "dataDir={}", c.data_dir.join("version-2").display());
    let _ = writeln!(s, "dataDirSize={}", dir_size(&c.data_dir));
    let _ = writeln!(s, "dataLogDir={}", c.data_log_dir.join("version-2").display());
    let _ = writeln!(s, "dataLogSize={}", dir_size(&c.data_log_dir));
    let _ = writeln!(s, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(s, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(s, "minSessionTimeout={}", c.min_session_timeout_ms);
    let _ = writeln!(s, "maxSessionTimeout={}", c.max_session_timeout_ms);
    let _ = writeln!(s, "clientPortListenBacklog=-1");
    match &c.quorum {
        None => {
            let _ = writeln!(s, "serverId=0");
        }
        Some(q) => {
            // As Apache's quorum peer adds them, then the membership.
            let _ = writeln!(s, "serverId={}", q.my_id);
            let _ = writeln!(s, "initLimit={}", q.init_limit_ticks);
            let _ = writeln!(s, "syncLimit={}", q.sync_limit_ticks);
            let _ = writeln!(s, "electionAlg=3");
            if let Some(me) = q.me() {
                let _ = writeln!(s, "electionPort={}", me.election_port);
                let _ = writeln!(s, "quorumPort={}", me.quorum_port);
                let peer_type = if me.role == crate::config::LearnerRole::Observer { 1 } else { 0 };
                let _ = writeln!(s, "peerType={peer_type}");
            }
            let _ = writeln!(s, "membership: ");
            let _ = writeln!(s, "{}", crate::server::quorum_peer::ensemble_config_text(q));
        }
    }
    s
}

pub(crate) fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One ` /ip:port[...](...)` line for `cons` (long) or `stat` (short).
pub fn connection_line(c: &Conn, long: bool, _shard_started: Instant) -> String {
    let s = &c.stats;
    let mut line = format!(
        " /{}[1](queued={},recved={},sent={}",
        c.peer,
        c.pending.borrow().len(),
        s.received.get(),
        s.sent.get()
    );
    let sid = c.session_id.get();
    if long && sid != 0 {
        let count = s.count_latency.get();
        let avg = s.sum_latency_ms.get().checked_div(count).unwrap_or(0);
        let _ = write!(
            line,
            ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
            sid,
            op_name(s.last_op.get()),
            c.established_ms,
            c.timeout_ms.get(),
            s.last_cxid.get(),
            s.last_zxid.get(),
            s.last_response_ms.get(),
            s.last_latency_ms.get(),
            s.min_latency_ms.get(),
            avg,
            s.max_latency_ms.get()
        );
    }
    line.push_str(")\n");
    line
}

pub(crate) fn op_name(op: i32) -> &'static str {
    use crate::proto::op::*;
    match op {
        CREATE => "CREA",
        DELETE => "DELE",
        EXISTS => "EXIS",
        GET_DATA => "GETD",
        SET_DATA => "SETD",
        GET_ACL => "GETA",
        SET_ACL => "SETA",
        GET_CHILDREN => "GETC",
        SYNC => "SYNC",
        PING => "PING",
        GET_CHILDREN2 => "GETC",
        MULTI => "MULT",
        CREATE2 => "CREA",
        MULTI_READ => "MLTR",
        SET_WATCHES | SET_WATCHES2 => "SETW",
        ADD_WATCH => "ADDW",
        CLOSE_SESSION => "CLOS",
        _ => "NA",
    }
}

pub(crate) struct Totals {
    pub(crate) connections: u64,
    pub(crate) received: u64,
    pub(crate) sent: u64,
    pub(crate) outstanding: u64,
    pub(crate) lat_min: u64,
    pub(crate) lat_max: u64,
    pub(crate) lat_avg: f64,
    pub(crate) watches: u64,
    pub(crate) data_watches: u64,
    pub(crate) watched_paths: u64,
    pub(crate) watching_sessions: u64,
    /// Apache's clientResponseStats, over every shard.
    pub(crate) response_sizes: crate::server::messages::BufferSizes,
}

pub(crate) fn totals(parts: &[ShardReport]) -> Totals {
    let mut t = Totals {
        connections: 0,
        received: 0,
        sent: 0,
        outstanding: 0,
        lat_min: 0,
        lat_max: 0,
        lat_avg: 0.0,
        watches: 0,
        data_watches: 0,
        watched_paths: 0,
        watching_sessions: 0,
        response_sizes: Default::default(),
    };
    let (mut sum, mut count) = (0u64, 0u64);
    for p in parts {
        t.connections += p.connections;
        t.response_sizes.merge(&p.response_sizes);
        t.received += p.packets_received;
        t.sent += p.packets_sent;
        t.outstanding += p.outstanding;
        if p.latency_count > 0 {
            if count == 0 || p.latency_min_ms < t.lat_min {
                t.lat_min = p.latency_min_ms;
            }
            t.lat_max = t.lat_max.max(p.latency_max_ms);
            sum += p.latency_sum_ms;
            count += p.latency_count;
        }
        t.watches += p.watch_count;
        t.data_watches += p.data_watch_count;
        t.watched_paths += p.watched_paths;
        t.watching_sessions += p.watching_sessions;
    }
    if count > 0 {
        t.lat_avg = sum as f64 / count as f64;
    }
    t
}

/// Java prints doubles with at least one decimal.
pub(crate) fn java_double(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The answer to `cmd` in the pieces it is sent in. wchc and wchp move each
/// shard's dump out of `parts` as they are (no copy on the commit shard);
/// every other answer is one piece.
pub fn report_chunks(cmd: &str, parts: &mut [ShardReport], view: &CommitView<'_>) -> Vec<Bytes> {
    match cmd {
        "wchc" | "wchp" => {
            let mut chunks: Vec<Bytes> =
                parts.iter_mut().flat_map(|p| std::mem::take(&mut p.dump)).filter(|b| !b.is_empty()).collect();
            chunks.push(Bytes::from_static(b"\n"));
            chunks
        }
        _ => vec![Bytes::from(format_report(cmd, parts, view))],
    }
}

pub fn format_report(cmd: &str, parts: &[ShardReport], view: &CommitView<'_>) -> String {
    // The AdminServer's and Prometheus' reports (JSON, metrics text).
    if let Some(text) = crate::server::admin_report::render(cmd, parts, view) {
        return text;
    }
    let t = totals(parts);
    let mut s = String::new();
    match cmd {
        // As Apache answers while its quorum peer is electing.
        "srvr" | "stat" if view.mode == crate::server::stats::ServerMode::Looking => {
            s.push_str("This ZooKeeper instance is not currently serving requests\n");
        }
        "srvr" | "stat" => {
            let _ = writeln!(s, "Zookeeper version: {}", version_string());
            if view.mode == ServerMode::ReadOnly {
                s.push_str("READ-ONLY mode; serving only read-only clients\n");
            }
            if cmd == "stat" {
                s.push_str("Clients:\n");
                for p in parts {
                    s.push_str(&p.lines);
                }
                s.push('\n');
            }
            let _ = writeln!(s, "Latency min/avg/max: {}/{}/{}", t.lat_min, java_double(t.lat_avg), t.lat_max);
            let _ = writeln!(s, "Received: {}", t.received);
            let _ = writeln!(s, "Sent: {}", t.sent);
            let _ = writeln!(s, "Connections: {}", t.connections);
            let _ = writeln!(s, "Outstanding: {}", t.outstanding);
            let _ = writeln!(s, "Zxid: 0x{:x}", view.last_zxid);
            let _ = writeln!(s, "Mode: {}", view.mode.name());
            let _ = writeln!(s, "Node count: {}", java_node_count(view.tree));
            if cmd == "stat" && view.mode == ServerMode::Leader {
                let _ = writeln!(s, "Proposal sizes last/min/max: {}", view.proposal_sizes.display());
            }
        }
        "cons" => {
            for p in parts {
                s.push_str(&p.lines);
            }
            s.push('\n');
        }
        "crst" => s.push_str("Connection stats reset.\n"),
        "srst" => s.push_str("Server stats reset.\n"),
        // The AdminServer's observer_connection_stat_reset (no word of its own).
        "orst" => s.push_str("Observer connection stats reset.\n"),
        "wchs" => {
            let _ = writeln!(s, "{} connections watching {} paths", t.watching_sessions, t.watched_paths);
            let _ = writeln!(s, "Total watches:{}", t.data_watches);
        }
        "wchc" | "wchp" => {
            for p in parts {
                s.push_str(&p.lines);
            }
            s.push('\n');
        }
        "dump" => {
            s.push_str("SessionTracker dump:\n");
            let _ = writeln!(s, "Global Sessions({}):", view.sessions.len());
            let mut sessions = view.sessions.clone();
            sessions.sort();
            for (sid, to) in &sessions {
                let _ = writeln!(s, "0x{sid:x}\t{to}ms");
            }
            s.push_str("ephemeral nodes dump:\n");
            let with_ephemerals: Vec<(i64, Vec<String>)> = sessions
                .iter()
                .map(|(sid, _)| (*sid, view.tree.ephemerals_of(*sid)))
                .filter(|(_, e)| !e.is_empty())
                .collect();
            let _ = writeln!(s, "Sessions with Ephemerals ({}):", with_ephemerals.len());
            for (sid, mut paths) in with_ephemerals {
                paths.sort();
                let _ = writeln!(s, "0x{sid:x}:");
                for p in paths {
                    let _ = writeln!(s, "\t{p}");
                }
            }
            s.push_str("Connections dump:\n");
            let _ = writeln!(s, "Connections Sets ({})", t.connections);
        }
        "mntr" => {
            let kv = |s: &mut String, k: &str, v: &dyn std::fmt::Display| {
                let _ = writeln!(s, "zk_{k}\t{v}");
            };
            kv(&mut s, "version", &version_string());
            kv(&mut s, "avg_latency", &java_double(t.lat_avg));
            kv(&mut s, "max_latency", &t.lat_max);
            kv(&mut s, "min_latency", &t.lat_min);
            kv(&mut s, "packets_received", &t.received);
            kv(&mut s, "packets_sent", &t.sent);
            kv(&mut s, "num_alive_connections", &t.connections);
            kv(&mut s, "outstanding_requests", &t.outstanding);
            kv(&mut s, "server_state", &view.mode.name());
            kv(&mut s, "digest_mismatches_count", &view.digest_mismatches);
            if view.quorum_size > 0 {
                // Apache's QuorumPeer state name and ZAB phase.
                let state = match view.mode {
                    crate::server::stats::ServerMode::Leader => "leading - broadcast",
                    crate::server::stats::ServerMode::Follower => "following - broadcast",
                    crate::server::stats::ServerMode::Observer => "observing - broadcast",
                    _ => "looking - election",
                };
                kv(&mut s, "peer_state", &state);
                kv(&mut s, "quorum_size", &view.quorum_size);
            }
            if view.mode == crate::server::stats::ServerMode::Leader {
                let (learners, followers, observers) = view.leader_view;
                kv(&mut s, "learners", &learners);
                kv(&mut s, "synced_followers", &followers);
                kv(&mut s, "synced_non_voting_followers", &0);
                kv(&mut s, "synced_observers", &observers);
                kv(&mut s, "pending_syncs", &view.pending_syncs);
            }
            kv(&mut s, "znode_count", &java_node_count(view.tree));
            kv(&mut s, "watch_count", &t.watches);
            let ephemerals: usize = view.sessions.iter().map(|(sid, _)| view.tree.ephemerals_of(*sid).len()).sum();
            kv(&mut s, "ephemerals_count", &ephemerals);
            kv(&mut s, "approximate_data_size", &view.tree.approximate_data_size());
            let (open, max) = fd_counts();
            kv(&mut s, "open_file_descriptor_count", &open);
            kv(&mut s, "max_file_descriptor_count", &max);
            kv(&mut s, "last_client_response_size", &t.response_sizes.last);
            kv(&mut s, "max_client_response_size", &t.response_sizes.max);
            kv(&mut s, "min_client_response_size", &t.response_sizes.min);
            kv(&mut s, "uptime", &view.uptime_ms);
            kv(&mut s, "global_sessions", &view.sessions.len());
            kv(&mut s, "local_sessions", &0);
            if view.mode == crate::server::stats::ServerMode::Leader {
                kv(&mut s, "last_proposal_size", &view.proposal_sizes.last);
                kv(&mut s, "max_proposal_size", &view.proposal_sizes.max);
                kv(&mut s, "min_proposal_size", &view.proposal_sizes.min);
            }
            kv(&mut s, "auth_failed_count", &0);
            quota_mntr(&mut s, view);
            log_metrics(&mut s, view.log);
            if let Some(q) = view.quorum_metrics {
                q.write_mntr(&mut s);
            }
        }
        other => {
            let _ = writeln!(s, "Unknown command: {other}");
        }
    }
    s
}

/// Apache's quota gauge sets and counter set as its DefaultMetricsProvider
/// dumps them: `zk_<namespace>_<metric>`.
fn quota_mntr(s: &mut String, view: &CommitView<'_>) {
    let m = view.tree.quota_metrics();
    for (name, map) in m.gauge_sets() {
        for (namespace, value) in map {
            let _ = writeln!(s, "zk_{namespace}_{name}\t{value}");
        }
    }
    for (namespace, count) in view.quota_exceeded {
        let _ = writeln!(s, "zk_{namespace}_quota_exceeded_error_per_namespace\t{count}");
    }
}

pub(crate) fn fd_counts() -> (u64, u64) {
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 { lim.rlim_cur } else { 0 };
    (open, max)
}

/// ZooKeeper's node count includes the root twice (it is stored under both
/// "" and "/"); tools compare against that figure.
pub(crate) fn java_node_count(tree: &DataTree) -> usize {
    tree.node_count() + 1
}

/// The fsync path, for performance engineers: ZooKeeper's `fsynctime`
/// summary (ms) plus zoocore's percentiles (µs), batch sizes and queueing.
fn log_metrics(s: &mut String, m: &crate::server::log_writer::LogMetrics) {
    use hdrhistogram::Histogram;
    let h = &m.sync_us;
    let count = h.len();
    let ms = |us: f64| us / 1000.0;
    let _ = writeln!(s, "zk_avg_fsynctime\t{}", java_double(if count == 0 { 0.0 } else { ms(h.mean()) }));
    let _ = writeln!(s, "zk_min_fsynctime\t{}", if count == 0 { 0 } else { h.min() / 1000 });
    let _ = writeln!(s, "zk_max_fsynctime\t{}", h.max() / 1000);
    let _ = writeln!(s, "zk_cnt_fsynctime\t{count}");
    let _ = writeln!(s, "zk_sum_fsynctime\t{}", (h.mean() * count as f64 / 1000.0) as u64);
    let mut pct = |name: &str, h: &Histogram<u64>| {
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            let _ = writeln!(s, "zk_{name}_{label}\t{}", h.value_at_quantile(q));
        }
        let _ = writeln!(s, "zk_{name}_max\t{}", h.max());
    };
    pct("fsync_us", &m.sync_us);
    pct("batch_txns", &m.batch_txns);
    pct("batch_bytes", &m.batch_bytes);
    pct("commit_queue_us", &m.queue_us);
    let _ = writeln!(s, "zk_log_batches\t{}", m.batches);
    let _ = writeln!(s, "zk_fsync_slow_count\t{}", m.slow_syncs);
}
