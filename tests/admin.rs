//! The AdminServer and the Prometheus endpoint, over real HTTP (ureq, a
//! browser-free client), against Apache ZooKeeper's names:
//! - every Apache 3.9 command zoocore serves, under every name Apache
//!   registers, answers JSON with Apache's fields (listed below from
//!   Commands.java / ServerCnxn / ServerStats / WatchesSummary of 3.9.3);
//! - when Debian's Apache ZooKeeper 3.8 and its Jetty jars are installed,
//!   the same commands are asked of a live Apache AdminServer and the field
//!   names compared (in CI this part must run);
//! - `/metrics` is parsed, every line, by the Prometheus project's own
//!   text-format parser (Python's prometheus_client, installed by
//!   scripts/setup-test-deps.sh) and holds Apache's metric names with
//!   Apache's types (ServerMetrics / PrometheusMetricsProvider of 3.9.3:
//!   Debian's 3.8 has no Prometheus provider jar to compare with live),
//!   plus zoocore's histograms;
//! - a port that cannot be bound leaves the server serving clients, and an
//!   electing server answers "not currently serving requests".

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::apache;
use common::ports::unused_port;
use common::{ServerOptions, TestServer};
use serde_json::Value;
use zoocore::client::Client;
use zoocore::proto::types::{open_acl_unsafe, CreateMode};

/// (primary name, the short names Apache registers, the data fields of the
/// answer besides `command` and `error`), for a standalone server with a
/// client connected. `None`: checked separately (monitor, system
/// properties, environment).
type CommandSpec = (&'static str, &'static [&'static str], Option<&'static [&'static str]>);
const APACHE_COMMANDS: &[CommandSpec] = &[
    (
        "configuration",
        &["conf", "config"],
        Some(&[
            "client_port",
            "data_dir",
            "data_log_dir",
            "tick_time",
            "max_client_cnxns",
            "min_session_timeout",
            "max_session_timeout",
            "server_id",
            "client_port_listen_backlog",
        ]),
    ),
    ("connection_stat_reset", &["crst"], Some(&[])),
    ("connections", &["cons"], Some(&["connections", "secure_connections"])),
    ("dirs", &[], Some(&["datadir_size", "logdir_size"])),
    ("dump", &[], Some(&["expiry_time_to_session_ids", "session_id_to_ephemeral_paths"])),
    ("environment", &["env", "envi"], None),
    ("get_trace_mask", &["gtmk"], Some(&["tracemask"])),
    ("hash", &[], Some(&["digests"])),
    ("initial_configuration", &["icfg"], Some(&["initial_configuration"])),
    ("is_read_only", &["isro"], Some(&["read_only"])),
    ("last_snapshot", &["lsnp"], Some(&["zxid", "timestamp"])),
    // Standalone: only an error, "server is not initialized".
    ("leader", &["lead"], Some(&[])),
    ("monitor", &["mntr"], None),
    ("observer_connection_stat_reset", &["orst"], Some(&[])),
    ("observers", &["obsr"], Some(&["synced_observers", "observers"])),
    ("ruok", &[], Some(&[])),
    ("server_stats", &["srvr"], Some(&["version", "read_only", "server_stats", "client_response", "node_count"])),
    // Without its traceMask argument: only an error.
    ("set_trace_mask", &["stmk"], Some(&[])),
    ("stat_reset", &["srst"], Some(&[])),
    (
        "stats",
        &["stat"],
        Some(&[
            "version",
            "read_only",
            "server_stats",
            "client_response",
            "node_count",
            "connections",
            "secure_connections",
        ]),
    ),
    ("system_properties", &["sysp"], None),
    ("voting_view", &[], Some(&["current_config"])),
    ("watch_summary", &["wchs"], Some(&["num_connections", "num_paths", "num_total_watches"])),
    ("watches", &["wchc"], Some(&["session_id_to_watched_paths"])),
    ("watches_by_path", &["wchp"], Some(&["path_to_session_ids"])),
    // Standalone: not a quorum peer.
    ("zabstate", &[], Some(&["voting", "zabstate"])),
];

/// Environment.list (3.9.3).
const ENVIRONMENT_KEYS: &[&str] = &[
    "zookeeper.version",
    "host.name",
    "java.version",
    "java.vendor",
    "java.home",
    "java.class.path",
    "java.library.path",
    "java.io.tmpdir",
    "java.compiler",
    "os.name",
    "os.arch",
    "os.version",
    "user.name",
    "user.home",
    "user.dir",
    "os.memory.free",
    "os.memory.max",
    "os.memory.total",
];

/// ServerCnxn.getConnectionInfo(false); the brief form is its first five.
const CONNECTION_INFO_KEYS: &[&str] = &[
    "remote_socket_address",
    "interest_ops",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "session_id",
    "last_operation",
    "established",
    "session_timeout",
    "last_cxid",
    "last_zxid",
    "last_response_time",
    "last_latency",
    "min_latency",
    "avg_latency",
    "max_latency",
];

/// ServerStats as Jackson writes it (snake_case of its getters).
const SERVER_STATS_KEYS: &[&str] = &[
    "packets_sent",
    "packets_received",
    "fsync_threshold_exceed_count",
    "client_response_stats",
    "data_dir_size",
    "log_dir_size",
    "provider_null",
    "server_state",
    "last_processed_zxid",
    "outstanding_requests",
    "avg_latency",
    "max_latency",
    "min_latency",
    "num_alive_client_connections",
    "uptime",
    "auth_failed_count",
    "non_mtlsremote_conn_count",
    "non_mtlslocal_conn_count",
];
const BUFFER_STATS_KEYS: &[&str] = &["last_buffer_size", "min_buffer_size", "max_buffer_size"];

/// mntr / monitor figures every dashboard reads (ZooKeeperServer's
/// registered gauges and dumpMonitorValues, and the fsynctime summary).
const MONITOR_CORE_KEYS: &[&str] = &[
    "version",
    "server_state",
    "avg_latency",
    "max_latency",
    "min_latency",
    "packets_received",
    "packets_sent",
    "num_alive_connections",
    "outstanding_requests",
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "uptime",
    "global_sessions",
    "local_sessions",
    "auth_failed_count",
    "digest_mismatches_count",
    "avg_fsynctime",
    "min_fsynctime",
    "max_fsynctime",
    "cnt_fsynctime",
    "sum_fsynctime",
];

/// Apache's Prometheus names and types for a standalone server (gauges from
/// ZooKeeperServer.registerMetrics, counters and summaries from
/// ServerMetrics), as PrometheusMetricsProvider (simpleclient 0.9) exposes
/// them: counters without `_total`, summaries as name{quantile}, _count, _sum.
const APACHE_GAUGES: &[&str] = &[
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "num_alive_connections",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "avg_latency",
    "max_latency",
    "min_latency",
    "uptime",
    "global_sessions",
    "local_sessions",
    "open_file_descriptor_count",
    "max_file_descriptor_count",
    "auth_failed_count",
];
const APACHE_COUNTERS: &[&str] = &["digest_mismatches_count"];
const APACHE_SUMMARIES: &[&str] = &["fsynctime"];
/// zoocore's own, real histograms (with the labels they carry).
const ZOOCORE_HISTOGRAMS: &[&str] = &[
    "zoocore_log_fsync_seconds",
    "zoocore_commit_queue_seconds",
    "zoocore_log_batch_txns",
    "zoocore_log_batch_bytes",
    "zoocore_shard_request_latency_seconds",
];
const PROCESS_METRICS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_open_fds",
    "process_max_fds",
];

/// The jars Apache's AdminServer needs besides zookeeper.jar (Debian's
/// libjetty9-java, libservlet-api-java, libjackson2-*-java: dependencies of
/// its libzookeeper-java).
const APACHE_ADMIN_JARS: &[&str] = &[
    "/usr/share/java/jetty9-server.jar",
    "/usr/share/java/jetty9-servlet.jar",
    "/usr/share/java/jetty9-security.jar",
    "/usr/share/java/jetty9-http.jar",
    "/usr/share/java/jetty9-io.jar",
    "/usr/share/java/jetty9-util.jar",
    "/usr/share/java/jetty9-util-ajax.jar",
    "/usr/share/java/servlet-api.jar",
    "/usr/share/java/jackson-databind.jar",
    "/usr/share/java/jackson-core.jar",
    "/usr/share/java/jackson-annotations.jar",
];

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

/// GET `url`: (status, content type, body).
fn get(url: &str) -> (u16, String, String) {
    let mut r = agent().get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = r.body_mut().read_to_string().unwrap_or_else(|e| panic!("GET {url}: body: {e}"));
    (status, content_type, body)
}

fn get_json(url: &str) -> serde_json::Map<String, Value> {
    let (status, content_type, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    assert_eq!(content_type, "application/json", "GET {url}");
    match serde_json::from_str(&body) {
        Ok(Value::Object(m)) => m,
        other => panic!("GET {url}: not a JSON object ({other:?}): {body}"),
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The data fields: everything but the envelope.
fn data_keys(m: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    m.keys().filter(|k| *k != "command" && *k != "error").cloned().collect()
}

/// A client session with an ephemeral node and watches, so that the
/// connection, dump and watch commands have something to list.
fn workload(addr: SocketAddr) -> Client {
    let c = Client::connect(addr, Duration::from_secs(10)).expect("connect");
    let open = open_acl_unsafe();
    c.create("/e", b"x", &open, CreateMode::Ephemeral).expect("create /e");
    c.create("/p", b"y", &open, CreateMode::Persistent).expect("create /p");
    // Past zxid 128, where the digest history (`hash`) keeps its first entry.
    for i in 0..130 {
        c.set_data("/p", format!("y{i}").as_bytes(), -1).expect("set /p");
    }
    c.get_data("/p", true).expect("get /p");
    assert!(c.exists("/q", true).expect("exists /q").is_none());
    c.get_children("/", true).expect("children /");
    c
}

fn admin_config(admin_port: u16, metrics_port: u16) -> String {
    format!(
        "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n\
         metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
         metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort={metrics_port}\n"
    )
}

/// Every command's answer from the AdminServer at `base` (…/commands), by
/// primary name, asked under the primary name.
fn answers(base: &str) -> BTreeMap<&'static str, serde_json::Map<String, Value>> {
    APACHE_COMMANDS.iter().map(|(primary, _, _)| (*primary, get_json(&format!("{base}/{primary}")))).collect()
}

#[test]
fn every_admin_command_answers_with_apaches_fields() {
    let (admin_port, metrics_port) = (unused_port(), unused_port());
    let s = TestServer::start_with(ServerOptions {
        extra_config: admin_config(admin_port, metrics_port),
        ..Default::default()
    });
    let base = format!("http://127.0.0.1:{admin_port}/commands");
    let _client = workload(s.addr);

    // The listing: a link per primary name, sorted (as Jetty's servlet).
    for listing in [base.clone(), format!("{base}/")] {
        let (status, _, body) = get(&listing);
        assert_eq!(status, 200);
        let listed: Vec<&str> = body.lines().filter_map(|l| l.split('>').nth(1)?.strip_suffix("</a")).collect();
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(listed, sorted, "{body}");
        for (primary, _, _) in APACHE_COMMANDS {
            assert!(listed.contains(primary), "{primary} not listed:\n{body}");
        }
    }

    // Before `stat_reset` runs (below) and starts the figures afresh.
    let log = get_json(&format!("{base}/zoocore_log"));
    assert!(log["fsync_us"]["count"].as_u64().is_some_and(|n| n >= 1), "{log:?}");

    // Before `connection_stat_reset` (asked below, before `connections`)
    // zeroes them: the workload's connection answered requests, its last
    // response after it was established, and not in the future.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let cons = get_json(&format!("{base}/connections"));
    let answered =
        cons["connections"].as_array().and_then(|a| a.iter().find(|c| c["packets_sent"].as_u64() > Some(100)));
    let answered = answered.unwrap_or_else(|| panic!("the workload's connection: {cons:?}"));
    let (established, last) =
        (answered["established"].as_i64().unwrap(), answered["last_response_time"].as_i64().unwrap());
    assert!(established <= last && last <= now_ms, "{answered}");
    let zoocore = answers(&base);
    for (primary, shorts, fields) in APACHE_COMMANDS {
        let answer = &zoocore[primary];
        assert_eq!(answer.get("command"), Some(&Value::from(*primary)), "{primary}: {answer:?}");
        let expected_error = match *primary {
            "leader" => Value::from("server is not initialized"),
            "set_trace_mask" => Value::from("setTraceMask requires long traceMask argument"),
            _ => Value::Null,
        };
        assert_eq!(answer.get("error"), Some(&expected_error), "{primary}: {answer:?}");
        if let Some(fields) = fields {
            assert_eq!(data_keys(answer), set(fields), "{primary}: {answer:?}");
        }
        // Every short name Apache registers answers as the primary.
        for short in *shorts {
            let m = get_json(&format!("{base}/{short}"));
            assert_eq!(m.get("command"), Some(&Value::from(*primary)), "{short}: {m:?}");
        }
    }

    // Nested objects and the values the workload put there.
    let cons = &zoocore["connections"]["connections"];
    assert!(cons.as_array().is_some_and(|a| !a.is_empty()), "{cons}");
    assert_eq!(keys(&cons[0]), set(CONNECTION_INFO_KEYS), "{cons}");

    let brief = &zoocore["stats"]["connections"][0];
    assert_eq!(keys(brief), set(&CONNECTION_INFO_KEYS[..5]), "{brief}");
    for cmd in ["server_stats", "stats"] {
        let stats = &zoocore[cmd]["server_stats"];
        assert_eq!(keys(stats), set(SERVER_STATS_KEYS), "{cmd}: {stats}");
        assert_eq!(keys(&stats["client_response_stats"]), set(BUFFER_STATS_KEYS));
        assert_eq!(keys(&zoocore[cmd]["client_response"]), set(BUFFER_STATS_KEYS));
        // The workload's replies were measured (`stats` is asked after
        // `stat_reset`, which starts them afresh): a getData reply carries
        // its data, so the largest is larger than the smallest (a bare header).
        let sizes = &stats["client_response_stats"];
        let (min, max) = (sizes["min_buffer_size"].as_i64(), sizes["max_buffer_size"].as_i64());
        if cmd == "server_stats" {
            assert!(min.is_some_and(|m| m >= 16) && max > min, "{cmd}: {sizes}");
        } else {
            assert_eq!((min, max), (Some(-1), Some(-1)), "{cmd}: {sizes}");
        }
        assert!(stats["data_dir_size"].as_u64().is_some_and(|n| n > 0), "{cmd}: the data dir holds a log: {stats}");
        assert_eq!(stats["server_state"], "standalone");
    }
    let ephemerals = &zoocore["dump"]["session_id_to_ephemeral_paths"];
    assert!(
        ephemerals.as_object().is_some_and(|m| m.values().any(|p| p == &serde_json::json!(["/e"]))),
        "{ephemerals}"
    );
    let expiry = &zoocore["dump"]["expiry_time_to_session_ids"];
    assert!(expiry.as_object().is_some_and(|m| m.len() == 1), "one session: {expiry}");
    let watched = &zoocore["watches"]["session_id_to_watched_paths"];
    assert!(
        watched.as_object().is_some_and(|m| m.values().any(|p| p == &serde_json::json!(["/p", "/q"]))),
        "{watched}"
    );
    let by_path = &zoocore["watches_by_path"]["path_to_session_ids"];
    assert_eq!(keys(by_path), set(&["/p", "/q"]), "data watches, as Apache lists them: {by_path}");
    assert_eq!(zoocore["watch_summary"]["num_total_watches"], 2);
    assert_eq!(zoocore["watch_summary"]["num_paths"], 2);
    assert_eq!(zoocore["watch_summary"]["num_connections"], 1);
    assert_eq!(zoocore["hash"]["digests"][0]["digest_version"], 2, "{:?}", zoocore["hash"]);
    // One entry: zxid 128 (every 128th zxid is kept, and the workload
    // stops before 256).
    assert_eq!(zoocore["hash"]["digests"].as_array().map(|d| d.len()), Some(1), "{:?}", zoocore["hash"]);
    assert_eq!(zoocore["hash"]["digests"][0]["zxid"], 128, "{:?}", zoocore["hash"]);
    let expiry_times: Vec<i64> = expiry.as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect();
    let tick_ms = i64::from(ServerOptions::default().tick_ms);
    assert!(expiry_times.iter().all(|t| t % tick_ms == 0), "deadlines are tick buckets: {expiry_times:?}");
    assert!(zoocore["initial_configuration"]["initial_configuration"]
        .as_str()
        .is_some_and(|t| t.contains(&format!("admin.serverPort={admin_port}"))));
    assert_eq!(zoocore["is_read_only"]["read_only"], false);
    assert_eq!(zoocore["configuration"]["client_port"], s.addr.port());
    // Hex without 0x; ffffffffffffffff (-1) before any snapshot, as Apache.
    assert!(zoocore["last_snapshot"]["zxid"].as_str().is_some_and(|z| u64::from_str_radix(z, 16).is_ok()));
    let env = &zoocore["environment"];
    for key in ENVIRONMENT_KEYS {
        assert!(env.get(*key).is_some(), "environment lacks {key}: {env:?}");
    }
    assert!(zoocore["system_properties"].values().all(|v| v.is_string() || v.is_null()));
    let monitor = &zoocore["monitor"];
    for key in MONITOR_CORE_KEYS {
        assert!(monitor.get(*key).is_some(), "monitor lacks {key}: {monitor:?}");
    }
    assert_eq!(monitor["server_state"], "standalone");
    assert!(monitor["znode_count"].as_u64().is_some_and(|n| n >= 6), "numbers are numbers: {monitor:?}");
    assert_eq!(get_json(&format!("{base}/stmk?traceMask=306"))["tracemask"], 306);

    // zoocore's own commands.
    let shards = get_json(&format!("{base}/zoocore_shards"));
    assert_eq!(shards["shards"].as_array().map(Vec::len), Some(2), "{shards:?}");

    // Apache's error answers: an unknown command is a 200 with an error.
    let unknown = get_json(&format!("{base}/no_such_command"));
    assert_eq!(
        Value::Object(unknown),
        serde_json::json!({ "command": "no_such_command", "error": "Unknown command: no_such_command" })
    );
    assert_eq!(get(&format!("http://127.0.0.1:{admin_port}/elsewhere")).0, 404);
    let post = agent().post(&format!("{base}/ruok")).send("").expect("POST");
    assert_eq!(post.status().as_u16(), 405);

    compare_with_live_apache(&zoocore);
}

/// The same commands asked of Apache ZooKeeper 3.8's own AdminServer: the
/// field names must agree (zoocore's `monitor` keys are Apache's, or its
/// own with a `zoocore_` prefix).
fn compare_with_live_apache(zoocore: &BTreeMap<&'static str, serde_json::Map<String, Value>>) {
    if !apache::apache_available("the live Apache AdminServer comparison") {
        return;
    }
    let missing: Vec<&str> = APACHE_ADMIN_JARS.iter().copied().filter(|j| !Path::new(j).exists()).collect();
    if !missing.is_empty() {
        assert!(!apache::in_ci(), "Apache's AdminServer needs {missing:?} (Debian's libjetty9-java); CI is set");
        println!("skipped the live Apache AdminServer comparison: {missing:?} missing; names checked against 3.9.3's source only");
        return;
    }
    let (client_port, admin_port) = (unused_port(), unused_port());
    let dir = std::env::temp_dir().join(format!("zoocore-admin-apache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).expect("apache dir");
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={admin_port}\n",
            dir.join("data").display()
        ),
    )
    .expect("apache zoo.cfg");
    let classpath = std::iter::once(apache::classpath())
        .chain(APACHE_ADMIN_JARS.iter().map(|j| (*j).to_owned()))
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = Command::new(apache::java());
    // The last -D wins: BASE_JVM_ARGS turns the AdminServer off.
    cmd.args(apache::BASE_JVM_ARGS)
        .arg("-Dzookeeper.admin.enableServer=true")
        .arg("-cp")
        .arg(classpath)
        .arg(apache::STANDALONE_MAIN)
        .arg(&cfg)
        .current_dir(&dir)
        .stdin(Stdio::null());
    let mut server = apache::ServerProcess::spawn(cmd, &dir.join("apache.log"));
    let client_addr: SocketAddr = format!("127.0.0.1:{client_port}").parse().expect("addr");
    assert!(
        server.wait_serving(client_addr, Duration::from_secs(60)),
        "Apache did not start:\n{}",
        apache::tail(&server.log(), 40)
    );
    let base = format!("http://127.0.0.1:{admin_port}/commands");
    assert!(
        common::wait_until(Duration::from_secs(30), || agent().get(&format!("{base}/ruok")).call().is_ok()),
        "Apache's AdminServer did not answer:\n{}",
        apache::tail(&server.log(), 40)
    );
    let _client = workload(client_addr);
    let apache_answers = answers(&base);
    for (primary, _, _) in APACHE_COMMANDS {
        let (ours, theirs) = (&zoocore[primary], &apache_answers[primary]);
        match *primary {
            "system_properties" => continue, // a JVM's properties
            "environment" => {
                let missing: Vec<String> = data_keys(theirs).difference(&data_keys(ours)).cloned().collect();
                assert!(missing.is_empty(), "environment lacks Apache's {missing:?}");
            }
            "monitor" => {
                let foreign: Vec<String> = data_keys(ours)
                    .into_iter()
                    .filter(|k| !k.starts_with("zoocore_") && !theirs.contains_key(k))
                    .collect();
                assert!(foreign.is_empty(), "monitor keys Apache does not have: {foreign:?}");
                for key in MONITOR_CORE_KEYS {
                    assert!(theirs.contains_key(*key), "Apache's monitor lacks {key}: the list in this test is wrong");
                }
            }
            _ => assert_eq!(data_keys(ours), data_keys(theirs), "{primary}: zoocore {ours:?}\nApache {theirs:?}"),
        }
        assert_eq!(ours.get("error"), theirs.get("error"), "{primary}: the error answers differ");
    }
    assert_eq!(keys(&zoocore["connections"]["connections"][0]), keys(&apache_answers["connections"]["connections"][0]));
    assert_eq!(keys(&zoocore["stats"]["connections"][0]), keys(&apache_answers["stats"]["connections"][0]));
    assert_eq!(keys(&zoocore["server_stats"]["server_stats"]), keys(&apache_answers["server_stats"]["server_stats"]));
    assert_eq!(data_keys(&zoocore["watch_summary"]), data_keys(&apache_answers["watch_summary"]));
    let unknown = get_json(&format!("{base}/no_such_command"));
    assert_eq!(unknown.get("error"), Some(&Value::from("Unknown command: no_such_command")), "Apache's own answer");
    println!("compared {} commands with Apache's live AdminServer", apache_answers.len());
    server.terminate(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parses a Prometheus text exposition with prometheus_client's parser:
/// every sample as (family type, sample name, labels, value), and the
/// number of sample lines in the text. None (after printing why) when the
/// parser is not installed outside CI.
type Sample = (String, String, BTreeMap<String, String>, f64);

fn parse_with_prometheus_client(text: &str) -> Option<(Vec<Sample>, usize)> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
text = sys.stdin.read()
out = []
for family in text_string_to_metric_families(text):
    for s in family.samples:
        out.append([family.type, s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let probe = Command::new("python3").args(["-c", "import prometheus_client.parser"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(
            !apache::in_ci(),
            "python3 with prometheus_client is missing and CI is set (scripts/setup-test-deps.sh installs it)"
        );
        println!("skipped the Prometheus parse: python3 -c 'import prometheus_client' failed (run scripts/setup-test-deps.sh)");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write metrics");
    }
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).expect("parser output");
    let sample_lines = text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count();
    Some((samples, sample_lines))
}

#[test]
fn metrics_scrape_parses_with_the_prometheus_parser_and_has_apaches_names() {
    let (admin_port, metrics_port) = (unused_port(), unused_port());
    let s = TestServer::start_with(ServerOptions {
        extra_config: admin_config(admin_port, metrics_port),
        ..Default::default()
    });
    let _client = workload(s.addr);
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (status, content_type, text) = get(&url);
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    assert_eq!(get(&format!("http://127.0.0.1:{metrics_port}/other")).0, 404);
    let Some((samples, sample_lines)) = parse_with_prometheus_client(&text) else { return };
    assert_eq!(samples.len(), sample_lines, "every sample line parsed:\n{text}");

    fn typed<'a>(samples: &'a [Sample], kind: &'a str, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        samples.iter().filter(move |(t, n, _, _)| t == kind && n == name)
    }
    let typed =
        |kind: &'static str, name: &str| typed(&samples, kind, name).cloned().collect::<Vec<Sample>>().into_iter();
    for name in APACHE_GAUGES {
        assert_eq!(typed("gauge", name).count(), 1, "gauge {name}:\n{text}");
    }
    for name in APACHE_COUNTERS {
        // The parser's model is OpenMetrics' (it names a counter's sample
        // `_total`); on the wire, Apache's counters keep their names.
        assert_eq!(typed("counter", &format!("{name}_total")).count(), 1, "counter {name}:\n{text}");
        assert!(
            text.lines().any(|l| l.strip_prefix(name).is_some_and(|v| v.starts_with(' '))),
            "{name} as Apache names it:\n{text}"
        );
    }
    for name in APACHE_SUMMARIES {
        assert_eq!(typed("summary", &format!("{name}_count")).count(), 1, "summary {name}:\n{text}");
        assert_eq!(typed("summary", &format!("{name}_sum")).count(), 1, "summary {name}:\n{text}");
        assert!(typed("summary", name).any(|(_, _, l, _)| l.get("quantile").map(String::as_str) == Some("0.5")));
    }
    let value = |kind: &'static str, name: &str| typed(kind, name).map(|s| s.3).next();
    assert!(value("gauge", "znode_count").is_some_and(|v| v >= 6.0));
    assert_eq!(value("gauge", "ephemerals_count"), Some(1.0));
    assert!(value("summary", "fsynctime_count").is_some_and(|v| v >= 1.0), "the workload wrote");

    for name in ZOOCORE_HISTOGRAMS {
        let buckets: Vec<Sample> = typed("histogram", &format!("{name}_bucket")).collect();
        assert!(buckets.len() > 3, "histogram {name} has buckets:\n{text}");
        let infinite: Vec<f64> = buckets
            .iter()
            .filter(|(_, _, l, _)| l.get("le").map(String::as_str) == Some("+Inf"))
            .map(|s| s.3)
            .collect();
        let counts: Vec<f64> = typed("histogram", &format!("{name}_count")).map(|s| s.3).collect();
        assert_eq!(infinite, counts, "{name}: the +Inf bucket is the count");
    }
    let shards: BTreeSet<String> = typed("histogram", "zoocore_shard_request_latency_seconds_count")
        .filter_map(|(_, _, l, _)| l.get("shard").cloned())
        .collect();
    assert_eq!(shards, set(&["0", "1"]), "one histogram per worker shard");
    let served: f64 = typed("histogram", "zoocore_shard_request_latency_seconds_count").map(|s| s.3).sum();
    assert!(served >= 5.0, "the workload's requests were timed: {served}");
    for name in PROCESS_METRICS {
        assert!(samples.iter().any(|(_, n, _, _)| n == name), "{name}:\n{text}");
    }
    dashboard_uses_only_exposed_names(&text);
}

/// Names docs/grafana/zoocore.json may use that a standalone server does
/// not expose (an ensemble member or a leader does).
const ENSEMBLE_ONLY_METRICS: &[&str] =
    &["quorum_size", "synced_followers", "synced_observers", "pending_syncs", "quorum_ack_latency", "election_time"];
/// PromQL functions, keywords and label names in the dashboard's queries.
const PROMQL_WORDS: &[&str] =
    &["rate", "increase", "sum", "by", "histogram_quantile", "le", "instance", "shard", "quantile", "__rate_interval"];

/// Every metric the Grafana dashboard queries is one /metrics exposes.
fn dashboard_uses_only_exposed_names(text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/zoocore.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("dashboard JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.extend(target["expr"].as_str().map(str::to_owned));
        }
    }
    assert!(exprs.len() > 10, "the dashboard has queries");
    let exposed = |name: &str| text.lines().any(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with([' ', '{'])));
    for expr in &exprs {
        let tokens = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        for token in tokens.filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')) {
            if PROMQL_WORDS.contains(&token) || ENSEMBLE_ONLY_METRICS.contains(&token) {
                continue;
            }
            assert!(
                exposed(token),
                "docs/grafana/zoocore.json queries {token}, which /metrics does not expose ({expr})"
            );
        }
    }
}

#[test]
fn a_port_taken_leaves_the_server_serving_clients() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let s = TestServer::start_with(ServerOptions { extra_config: admin_config(port, port), ..Default::default() });
    let c = Client::connect(s.addr, Duration::from_secs(10)).expect("clients are served");
    c.create("/still-serving", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    let log = common::strip_ansi(&s.log());
    assert!(log.contains("problem starting AdminServer"), "{log}");
    assert!(log.contains("cannot start /metrics server"), "{log}");
    drop(taken);
}

#[test]
fn an_electing_server_says_it_is_not_serving() {
    // A lone ensemble member elects forever: Apache's "not serving" answer
    // for the commands that need a server, answers for the others.
    let (client, quorum, election, admin) = (unused_port(), unused_port(), unused_port(), unused_port());
    let dir = std::env::temp_dir().join(format!("zoocore-admin-looking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("myid"), "2\n").expect("myid");
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\nclientPortAddress=127.0.0.1\n\
             admin.serverAddress=127.0.0.1\nadmin.serverPort={admin}\n\
             server.1=127.0.0.1:{quorum}:{election}\nserver.2=127.0.0.2:{quorum}:{election}\nserver.3=127.0.0.3:{quorum}:{election}\n",
            data.display()
        ),
    )
    .expect("zoo.cfg");
    let cmd = {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zoocore"));
        c.args(["server", "--config"]).arg(&cfg);
        c
    };
    let _server = apache::ServerProcess::spawn(cmd, &dir.join("server.log"));
    let base = format!("http://127.0.0.1:{admin}/commands");
    assert!(
        common::wait_until(Duration::from_secs(20), || agent().get(&format!("{base}/ruok")).call().is_ok()),
        "the AdminServer did not answer"
    );
    let stats = get_json(&format!("{base}/stats"));
    assert_eq!(stats.get("error"), Some(&Value::from("This ZooKeeper instance is not currently serving requests")));
    assert_eq!(data_keys(&stats), BTreeSet::new());
    let zab = get_json(&format!("{base}/zabstate"));
    assert_eq!(zab["zabstate"], "election", "{zab:?}");
    assert_eq!(zab["myid"], 2);
    assert_eq!(zab["voting"], true);
    let monitor = get_json(&format!("{base}/monitor"));
    assert_eq!(monitor["server_state"], "looking", "{monitor:?}");
    let view = get_json(&format!("{base}/voting_view"));
    assert_eq!(view.get("error"), stats.get("error"), "voting_view needs a running server, as Apache's");
    drop(_server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `observers` on a leader lists each observer as Apache's LearnerHandler
/// info; `observer_connection_stat_reset` zeroes its counters; a follower
/// lists none; the leader reports its proposal sizes.
#[test]
fn a_leader_lists_its_observers_and_proposal_sizes() {
    use common::ensemble::Ensemble;
    let admin_ports: Vec<u16> = (0..4).map(|_| unused_port()).collect();
    let mut e = Ensemble::start_with(4, &[4], 200, "", |sid| {
        format!(
            "admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={}\n",
            admin_ports[(sid - 1) as usize]
        )
    });
    let leader = e.wait_for_quorum(Duration::from_secs(30));
    let base = |sid: u64| format!("http://127.0.0.1:{}/commands", admin_ports[(sid - 1) as usize]);

    let c = Client::connect(e.member(4).client, Duration::from_secs(10)).expect("connect to the observer");
    for i in 0..5 {
        c.create(&format!("/o{i}"), &[7u8; 300], &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    }
    c.sync("/").expect("sync");
    let last_zxid = c.exists("/o4", false).expect("exists").expect("/o4").mzxid;

    // The leader refreshes the list each turn; its pings make turns.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let info = loop {
        let obs = get_json(&format!("{}/observers", base(leader)));
        let list = obs["observers"].as_array().cloned().unwrap_or_default();
        if obs["synced_observers"] == 1 && list.len() == 1 && list[0]["last_zxid"].as_i64() >= Some(last_zxid) {
            break list[0].clone();
        }
        assert!(std::time::Instant::now() < deadline, "observer not listed: {obs:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        keys(&info),
        set(&[
            "remote_socket_address",
            "sid",
            "established",
            "queued_packets",
            "queued_packets_size",
            "packets_received",
            "packets_sent",
            "requests",
            "last_zxid",
        ]),
        "{info}"
    );
    assert_eq!(info["sid"], 4, "{info}");
    assert!(info["requests"].as_u64() >= Some(5), "five creates and a sync forwarded: {info}");
    assert!(info["packets_sent"].as_u64() >= Some(5), "{info}");
    assert!(info["remote_socket_address"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{info}");

    get_json(&format!("{}/orst", base(leader)));
    let after = get_json(&format!("{}/observers", base(leader)));
    assert_eq!(after["observers"][0]["requests"], 0, "reset: {after:?}");

    let follower = (1..=3).find(|s| *s != leader).unwrap();
    let none = get_json(&format!("{}/observers", base(follower)));
    assert_eq!((none["synced_observers"].clone(), none["observers"].clone()), (Value::from(0), serde_json::json!([])));

    // The creates' proposals (300 bytes of data each) were measured.
    let stats = get_json(&format!("{}/server_stats", base(leader)));
    let max = stats["proposal_stats"]["max_buffer_size"].as_i64();
    assert!(max.is_some_and(|m| m > 300), "{stats:?}");
    let mntr = get_json(&format!("{}/monitor", base(leader)));
    assert!(mntr["max_proposal_size"].as_i64() == max, "{mntr:?}");
    let stat = common::four_letter(e.member(leader).client, "stat").expect("stat");
    assert!(stat.contains("Proposal sizes last/min/max: "), "{stat}");
}

/// Watches enough for a `watches` answer of ~`sessions * paths * 210`
/// bytes: exists watches (set through setWatches, as a reconnecting
/// client does) on long paths that do not exist.
fn many_watches(addr: SocketAddr, paths: usize) -> Client {
    let c = Client::connect(addr, Duration::from_secs(30)).expect("connect");
    let prefix = "x".repeat(190);
    let names: Vec<String> = (0..paths).map(|i| format!("/w/{prefix}/{i:08}")).collect();
    // ~600 KiB per request, under jute.maxbuffer.
    for batch in names.chunks(3_000) {
        c.set_watches(zoocore::proto::records::SetWatches {
            relative_zxid: c.last_zxid(),
            exist: batch.to_vec(),
            ..Default::default()
        })
        .expect("setWatches");
    }
    c
}

/// The server's threads named `name` (Linux truncates names to 15 bytes).
fn threads_named(pid: u32, name: &str) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// A `watches` GET whose body is read only `first` bytes: the rest waits
/// on the server, the listing at the client's pace.
fn listing_read_partly(url: &str, first: usize) -> impl std::io::Read {
    use std::io::Read;
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(120))).build().into();
    let response = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.into_body().into_reader();
    let mut head = vec![0u8; first];
    body.read_exact(&mut head).expect("the answer's first bytes");
    assert!(head.starts_with(b"{\n  \"session_id_to_watched_paths\": {"), "{:?}", String::from_utf8_lossy(&head[..64]));
    std::io::Cursor::new(head).chain(body)
}

/// 300k watches on 200-byte paths: a ~63 MB answer, far more than the
/// listing pipe, socket buffers and hyper's buffer hold, so while the
/// client reads nothing the listing cannot have ended.
const SLOW_LISTING_WATCHES: usize = 300_000;

#[test]
fn other_commands_answer_while_a_listing_is_sent() {
    use std::io::Read;
    let (admin_port, metrics_port) = (unused_port(), unused_port());
    let s = TestServer::start_with(ServerOptions {
        extra_config: admin_config(admin_port, metrics_port),
        ..Default::default()
    });
    let base = format!("http://127.0.0.1:{admin_port}/commands");
    let watcher = many_watches(s.addr, SLOW_LISTING_WATCHES);
    let mut listing = listing_read_partly(&format!("{base}/watches"), 64 * 1024);
    // The listing is under way: its merge thread waits for the client.
    assert_eq!(threads_named(s.pid(), "zk-admin-json"), 1, "the listing is running");
    let stats = get_json(&format!("{base}/server_stats"));
    assert!(stats["server_stats"]["data_dir_size"].as_u64().is_some(), "{stats:?}");
    let dirs = get_json(&format!("{base}/dirs"));
    assert!(dirs["datadir_size"].as_u64().is_some(), "{dirs:?}");
    assert_eq!(get_json(&format!("{base}/ruok"))["error"], Value::Null);
    assert_eq!(get_json(&format!("{base}/stat"))["command"], "stats");
    assert_eq!(threads_named(s.pid(), "zk-admin-json"), 1, "the listing was still running");
    // The rest of the answer, whole and in order.
    let mut text = Vec::new();
    listing.read_to_end(&mut text).expect("the rest of the listing");
    assert!(text.len() > 60_000_000, "{} bytes", text.len());
    let parsed: Value = serde_json::from_slice(&text).expect("the listing is one JSON document");
    let session = format!("{}", watcher.session_id());
    let paths = parsed["session_id_to_watched_paths"][&session].as_array().map_or(0, Vec::len);
    assert_eq!(paths, SLOW_LISTING_WATCHES);
    assert_eq!(parsed["command"], "watches");
    assert!(common::wait_until(Duration::from_secs(10), || threads_named(s.pid(), "zk-admin-json") == 0));
}

#[test]
fn a_client_leaving_mid_listing_stops_the_merge() {
    let (admin_port, metrics_port) = (unused_port(), unused_port());
    let s = TestServer::start_with(ServerOptions {
        extra_config: admin_config(admin_port, metrics_port),
        ..Default::default()
    });
    let base = format!("http://127.0.0.1:{admin_port}/commands");
    let _watcher = many_watches(s.addr, SLOW_LISTING_WATCHES);
    let listing = listing_read_partly(&format!("{base}/watches"), 64 * 1024);
    assert_eq!(threads_named(s.pid(), "zk-admin-json"), 1, "the listing is running");
    drop(listing);
    assert!(
        common::wait_until(Duration::from_secs(20), || threads_named(s.pid(), "zk-admin-json") == 0),
        "the merge thread ends once the client is gone"
    );
    // Its turn is free again: a listing after it is answered in full.
    let (status, _, body) = get(&format!("{base}/watch_summary"));
    assert_eq!(status, 200, "{body}");
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(120))).build().into();
    let mut r = agent.get(&format!("{base}/watches_by_path")).call().expect("GET watches_by_path");
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut r.body_mut().as_reader(), &mut text).expect("body");
    let parsed: Value = serde_json::from_slice(&text).expect("JSON");
    assert_eq!(parsed["path_to_session_ids"].as_object().map_or(0, |m| m.len()), SLOW_LISTING_WATCHES);
}
