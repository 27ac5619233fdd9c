//! Keeps the benchmark from rotting: starts the zoocore binary, runs ~2 s of
//! mixed load and a small memory run, and checks the JSON lines; and a
//! short load over TLS (`--tls-ca`, client certificates made here with
//! tests/common/pki.rs) against a server with a secureClientPort.
//!
//! The zoocore binary is the root package's; it sits in the same target
//! profile directory as this test's `zoocore-bench` (cargo builds both for
//! `cargo test --workspace`). ZOOCORE_BIN overrides the path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ensemble tests run one at a time (three servers each on a 2-core
/// machine) and each in its own directory: two of them once shared one
/// directory (named by the process id alone) and each other's ports.
static ONE_ENSEMBLE_AT_A_TIME: Mutex<()> = Mutex::new(());
static ENSEMBLE_COUNTER: AtomicU32 = AtomicU32::new(0);
/// Each standalone server gets a directory of its own (tests run in parallel).
static SERVER_COUNTER: AtomicU32 = AtomicU32::new(0);

#[path = "../../tests/common/pki.rs"]
mod pki;

fn zoocore_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ZOOCORE_BIN") {
        return PathBuf::from(p);
    }
    // <target>/<profile>/zoocore-bench -> <target>/<profile>/zoocore
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_zoocore-bench"));
    bench.with_file_name("zoocore")
}

struct Server {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ruok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut out = String::new();
    s.write_all(b"ruok").is_ok() && s.read_to_string(&mut out).is_ok() && out == "imok"
}

fn start_server() -> Server {
    start_server_with(|_| String::new())
}

fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `extra(dir)`: more zoo.cfg lines (files they name can go in `dir`).
fn start_server_with(extra: impl Fn(&std::path::Path) -> String) -> Server {
    let bin = zoocore_binary();
    assert!(bin.exists(), "zoocore binary not found at {} (build the workspace or set ZOOCORE_BIN)", bin.display());
    let k = SERVER_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zoocore-bench-smoke-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for _attempt in 0..5 {
        let port = unused_port();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nadmin.enableServer=false\nclientPort={port}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n{}",
                dir.join("data").display(),
                extra(&dir)
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(&bin)
            .args(["server", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut server = Server { child, addr, dir: dir.clone() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            if ruok(addr) {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
        std::mem::forget(server); // keep the dir for the next attempt
    }
    panic!("zoocore did not start: {}", std::fs::read_to_string(dir.join("server.log")).unwrap_or_default());
}

fn bench(args: &[&str]) -> String {
    let out = bench_output(args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "zoocore-bench {args:?} failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().last().unwrap_or_default().to_string();
    assert!(line.starts_with('{') && line.ends_with('}'), "not a JSON line: {line}");
    line
}

fn bench_output(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zoocore-bench")).args(args).output().unwrap()
}

/// The number after `"key":` in a flat JSON line (enough for our own output).
fn field(line: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("no {key} in {line}")) + pat.len();
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

#[test]
fn mixed_load_and_memory_run_cleanly() {
    let server = start_server();
    let addr = server.addr.to_string();
    let pid = server.child.id().to_string();

    let line = bench(&[
        "run",
        "mixed",
        "--server",
        &addr,
        "--server-pid",
        &pid,
        "--sessions",
        "4",
        "--outstanding",
        "8",
        "--duration",
        "2",
        "--warmup",
        "0.5",
        "--keys",
        "500",
        "--read-write-barrier",
        "--json",
        "--quiet",
    ]);
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
    assert!(field(&line, "ops") > 100.0, "{line}");
    assert!(field(&line, "throughput") > 0.0, "{line}");
    assert!(field(&line, "server_cpu_us_per_op") > 0.0, "{line}");
    assert!(field(&line, "p99") >= field(&line, "p50"), "{line}");

    let line =
        bench(&["memory", "--server", &addr, "--server-pid", &pid, "--znodes", "2000", "--settle", "0.2", "--json"]);
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
    assert!(field(&line, "rss_after") > 0.0, "{line}");
    assert_eq!(field(&line, "znodes"), 2000.0, "{line}");
}

/// `zoocore-bench run --tls-ca ... --tls-cert ... --tls-key ...` against a
/// secureClientPort with ssl.clientAuth=need: creates and then gets with
/// values larger than a TLS record, all answered; without the client
/// certificate the run fails, so the load really went over TLS.
#[test]
fn load_over_tls_with_a_client_certificate() {
    let (ca, issuer) = pki::new_ca("bench smoke CA");
    let server_id = pki::leaf(&issuer, "zoocore server", &["127.0.0.1"]);
    let client_id = pki::leaf(&issuer, "bench client", &[]);
    let secure_port = unused_port();
    let server = start_server_with(|dir| {
        std::fs::write(dir.join("server.pem"), format!("{}{}{}", server_id.key_pem, server_id.cert_pem, ca.cert_pem))
            .unwrap();
        std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();
        format!(
            "secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\nssl.keyStore.location={}\n\
             ssl.keyStore.type=PEM\nssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
            dir.join("server.pem").display(),
            dir.join("ca.pem").display()
        )
    });
    std::fs::write(server.dir.join("client.crt"), &client_id.cert_pem).unwrap();
    std::fs::write(server.dir.join("client.key"), &client_id.key_pem).unwrap();
    let path = |name: &str| server.dir.join(name).to_str().unwrap().to_owned();
    let (ca_pem, cert, key) = (path("ca.pem"), path("client.crt"), path("client.key"));
    let secure = format!("127.0.0.1:{secure_port}");
    let pid = server.child.id().to_string();
    let tls = ["--tls-ca", &ca_pem, "--tls-cert", &cert, "--tls-key", &key].map(String::from);
    let run = |workload: &str, value_size: &str, extra: &[String]| -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            workload,
            "--server",
            secure.as_str(),
            "--server-pid",
            pid.as_str(),
            "--sessions",
            "3",
            "--outstanding",
            "16",
            "--keys",
            "40",
            "--value-size",
            value_size,
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--json",
            "--quiet",
        ]
        .map(String::from)
        .to_vec();
        args.extend_from_slice(extra);
        args
    };
    let bench_strs = |args: Vec<String>| bench(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let line = bench_strs(run("create", "100", &tls));
    assert!(line.contains("\"tls\":true"), "{line}");
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
    assert!(field(&line, "ops") > 50.0, "{line}");
    assert!(field(&line, "server_cpu_us_per_op") > 0.0, "{line}");
    // 40 KiB values: each reply spans several TLS records.
    let line = bench_strs(run("get", "40000", &tls));
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
    assert!(field(&line, "ops") > 50.0, "{line}");

    // ssl.clientAuth=need: no client certificate, no session, a failed run.
    let args = run("create", "100", &tls[..2]);
    let out = bench_output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!out.status.success(), "a run without a client certificate succeeded on a need port");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("connect"), "{err}");
}

#[test]
fn large_values_and_snapshot_tail_run_cleanly() {
    let server = start_server();
    let addr = server.addr.to_string();
    let pid = server.child.id().to_string();
    let data = server.dir.join("data");
    let line = bench(&[
        "large-values",
        "--server",
        &addr,
        "--server-pid",
        &pid,
        "--dir",
        data.to_str().unwrap(),
        "--size",
        "65536",
        "--writes",
        "4",
        "--first-writes",
        "2",
        "--reads",
        "2",
        "--floor-writes",
        "3",
        "--settle",
        "0",
        "--json",
    ]);
    assert_eq!(field(&line, "value_size"), 65536.0, "{line}");
    assert!(line.contains("\"set_latency_us\":{\"count\":4,"), "{line}");
    assert!(line.contains("\"get_latency_us\":{\"count\":2,"), "{line}");
    assert!(line.contains("\"floor_latency_us\":{\"count\":3,"), "{line}");
    assert!(field(&line, "set_p50_over_floor_p50") > 0.0, "{line}");
    assert!(field(&line, "rss_after_all") > 0.0 && field(&line, "rss_after_first") > 0.0, "{line}");

    let snapshots = data.join("zoocore");
    let line = bench(&[
        "snapshot-tail",
        "--server",
        &addr,
        "--snapshot-dir",
        snapshots.to_str().unwrap(),
        "--znodes",
        "2000",
        "--rate",
        "200",
        "--duration",
        "1",
        "--json",
    ]);
    // Every write lands in one of the two windows.
    assert!(field(&line, "during_n") + field(&line, "without_n") > 50.0, "{line}");
    assert_eq!(field(&line, "znodes"), 2000.0, "{line}");
}

#[test]
fn floors_report_json() {
    let dir = std::env::temp_dir();
    let line = bench(&["disk-floor", "--dir", dir.to_str().unwrap(), "--duration", "0.2", "--json"]);
    assert!(field(&line, "count") > 0.0, "{line}");
    let line = bench(&["rtt", "--duration", "0.2", "--json"]);
    assert!(field(&line, "p50") > 0.0, "{line}");
    // The tree's write path alone: every figure measured (a failed write
    // would have ended the command with an error instead).
    let line = bench(&["tree-writes", "--nodes", "2000", "--json"]);
    for key in ["create_ns", "set_data_ns", "digest_node_ns", "digest_restat_ns"] {
        assert!(field(&line, key) > 0.0, "{key}: {line}");
    }
}

/// Three zoocore members on loopback, each killed by PID on drop.
struct Ensemble {
    members: Vec<Child>,
    addrs: Vec<String>,
    dir: PathBuf,
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for c in &mut self.members {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("ensemble logs kept in {}", self.dir.display());
        }
    }
}

/// Distinct ports below the ephemeral range (a leader binds its quorum
/// port only once elected; an ephemeral port could be taken meanwhile).
fn ports_below_ephemeral(n: usize) -> Vec<u16> {
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768);
    let mut state = (std::process::id() as u64) << 16 ^ 0x9E37_79B9;
    let mut held: Vec<(u16, TcpListener)> = Vec::new();
    while held.len() < n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let port = (10_000 + ((state >> 33) as u32) % (low.max(10_001) - 10_000)) as u16;
        if held.iter().any(|(p, _)| *p == port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push((port, l));
        }
    }
    held.into_iter().map(|(p, _)| p).collect()
}

fn start_ensemble() -> Ensemble {
    let bin = zoocore_binary();
    assert!(bin.exists(), "zoocore binary not found at {} (build the workspace or set ZOOCORE_BIN)", bin.display());
    let k = ENSEMBLE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("zoocore-bench-smoke-ens-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ports = ports_below_ephemeral(9);
    let servers: String =
        (0..3).map(|i| format!("server.{}=127.0.0.1:{}:{}\n", i + 1, ports[3 * i + 1], ports[3 * i + 2])).collect();
    let mut ens = Ensemble { members: Vec::new(), addrs: Vec::new(), dir: dir.clone() };
    for i in 0..3 {
        let mdir = dir.join(format!("s{}", i + 1));
        std::fs::create_dir_all(mdir.join("data")).unwrap();
        std::fs::write(mdir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
        std::fs::write(
            mdir.join("zoo.cfg"),
            format!(
                "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nadmin.enableServer=false\nclientPort={}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nmaxClientCnxns=0\n{servers}",
                mdir.join("data").display(),
                ports[3 * i]
            ),
        )
        .unwrap();
        let log = std::fs::File::create(mdir.join("server.log")).unwrap();
        let child = Command::new(&bin)
            .args(["server", "--config"])
            .arg(mdir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        ens.members.push(child);
        ens.addrs.push(format!("127.0.0.1:{}", ports[3 * i]));
    }
    ens
}

/// tickTime 2000: a zoocore follower does not answer pings while its own
/// fsync is in flight (docs/replication.md), so a short syncLimit can drop
/// it under load and turn a smoke test into an election test.
#[test]
fn ensemble_load_spread_over_members() {
    let _serial = ONE_ENSEMBLE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let ens = start_ensemble();
    let all = ens.addrs.join(",");
    let pids: Vec<String> = ens.members.iter().map(|c| c.id().to_string()).collect();
    let pids = pids.join(",");

    let line = bench(&["ensemble-wait", "--server", &all, "--timeout", "30", "--json"]);
    assert!(field(&line, "leader_index") < 3.0, "{line}");

    let line = bench(&[
        "run",
        "create",
        "--server",
        &all,
        "--server-pid",
        &pids,
        "--sessions",
        "3",
        "--outstanding",
        "4",
        "--duration",
        "1",
        "--warmup",
        "0.3",
        "--json",
        "--quiet",
    ]);
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
    assert_eq!(field(&line, "server_processes"), 3.0, "{line}");
    assert!(field(&line, "ops") > 10.0, "{line}");
    assert!(field(&line, "server_cpu_us_per_op") > 0.0, "{line}");

    // Reads spread over all members see the keys preloaded through the first.
    let line = bench(&[
        "run",
        "get",
        "--server",
        &all,
        "--sessions",
        "3",
        "--keys",
        "100",
        "--duration",
        "0.5",
        "--warmup",
        "0",
        "--json",
        "--quiet",
    ]);
    assert_eq!(field(&line, "errors"), 0.0, "{line}");
}

/// Kill -9 of the leader, then the first acknowledged write. (It once
/// failed about one run in ten: a member that led twice kept its first
/// term's accept loop on the quorum port, which took and dropped learners;
/// fixed in quorum_peer::lead, see docs/benchmarks/ensemble.md.)
#[test]
fn ensemble_failover() {
    let _serial = ONE_ENSEMBLE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let ens = start_ensemble();
    let all = ens.addrs.join(",");
    let pids: Vec<String> = ens.members.iter().map(|c| c.id().to_string()).collect();
    let pids = pids.join(",");
    bench(&["ensemble-wait", "--server", &all, "--timeout", "30", "--json"]);
    let line = bench(&["failover", "--server", &all, "--server-pid", &pids, "--give-up", "30", "--json"]);
    let ms = field(&line, "first_write_ms");
    assert!(ms > 0.0 && ms < 30_000.0, "{line}");
    assert_ne!(field(&line, "answered_by"), field(&line, "killed_index"), "{line}");
}
