//! The scale benchmarks of issue #9, for zoocore and Apache ZooKeeper alike:
//! server RSS per watch (`watches`) and the time from kill -9 to serving a
//! large tree again (`restart`).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zoocore::client::{Client, Pending};
use zoocore::proto::records::{PathWatch, Request, SetDataRequest};

use crate::procfs;
use crate::report::{new_histogram, LatencySummary};
use crate::workload::{ensure_node, pipelined_create};

const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight per session while registering watches or writing.
const WINDOW_REQUESTS: usize = 256;
/// Watchless exists requests each session sends, pipelined as the
/// registration is, before the "before" RSS: a burst of `WINDOW_REQUESTS`
/// grows the server's per-connection buffers (~20 KiB a connection on
/// zoocore, allocated at connect but first touched by such a burst), and
/// that memory is the connection's, not the watches'.
const WARMUP_REQUESTS: u64 = 4 * WINDOW_REQUESTS as u64;
/// How long one read of a wchc / wchp reply may wait for the next bytes
/// (the server formats the whole dump before the first byte is sent).
const DUMP_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the get probe runs before the dumps, for its baseline.
const GET_BASELINE: Duration = Duration::from_secs(2);
/// How often the server's RSS is sampled while a dump runs.
const RSS_SAMPLE_INTERVAL: Duration = Duration::from_millis(20);
/// How long one "serving again?" attempt may take before the next.
const PROBE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    crate::mntr::four_letter(addr, word, FOUR_LETTER_TIMEOUT)
}

/// "Total watches:N" from wchs.
fn wchs_total(addr: SocketAddr) -> Option<u64> {
    let text = four_letter(addr, "wchs")?;
    text.lines().find_map(|l| l.strip_prefix("Total watches:")).and_then(|n| n.trim().parse().ok())
}

fn srvr_zxid(addr: SocketAddr) -> Option<i64> {
    let text = four_letter(addr, "srvr")?;
    text.lines().find_map(|l| l.strip_prefix("Zxid: 0x")).and_then(|h| i64::from_str_radix(h.trim(), 16).ok())
}

/// Keeps `window` requests in flight on `client`, made by `make(i)`.
fn pipelined(client: &Client, count: u64, window: usize, make: impl Fn(u64) -> Request) -> Result<(), String> {
    let mut inflight: VecDeque<Pending> = VecDeque::with_capacity(window);
    for i in 0..count {
        if inflight.len() >= window {
            if let Some(p) = inflight.pop_front() {
                p.wait().map_err(|e| e.to_string())?;
            }
        }
        inflight.push_back(client.submit(make(i)).map_err(|e| e.to_string())?);
    }
    for p in inflight {
        p.wait().map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub struct WatchConfig {
    pub server: SocketAddr,
    pub server_pid: u32,
    pub sessions: usize,
    pub paths: u64,
    /// Each session watches paths of its own instead of the shared set.
    pub distinct: bool,
    /// Send `WARMUP_REQUESTS` watchless requests per session before the
    /// "before" RSS (off: the first runs' method, buffers counted in).
    pub warmup: bool,
    pub settle: Duration,
    pub threads: usize,
    /// After the RSS readings, run wchc and wchp of all the watches while
    /// another session times gets (`WatchResult::dumps`).
    pub dump_probe: bool,
    /// What the dump probe reads: four-letter words (`wchc`, `wchp`) and
    /// AdminServer commands (`admin:watches`, `admin:watches_by_path`, ...).
    pub dump_words: Vec<String>,
    /// The AdminServer's address, for `admin:` dump words.
    pub admin: Option<SocketAddr>,
}

/// One wchc or wchp of the registered watches, read to the end, with the
/// get latency another session saw meanwhile.
pub struct DumpProbe {
    pub word: String,
    pub bytes: u64,
    /// Lines starting with a tab: one per (path, session) watch.
    pub entries: u64,
    pub first_byte: Duration,
    pub total: Duration,
    /// Highest server VmRSS sampled while the dump ran.
    pub rss_peak: u64,
    pub gets: LatencySummary,
    /// When the slowest of those gets was sent, from the dump's request.
    pub slowest_get_at: Duration,
    /// setData of one znode, one at a time from a third session, meanwhile
    /// (every write goes through the commit shard).
    pub sets: LatencySummary,
    pub slowest_set_at: Duration,
}

pub struct WatchResult {
    pub watches: u64,
    pub distinct_paths: u64,
    pub mean_path_len: f64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub server_reported: Option<u64>,
    pub elapsed: Duration,
    /// Gets timed for `GET_BASELINE` before the dumps (dump_probe only).
    pub get_baseline: Option<LatencySummary>,
    pub dumps: Vec<DumpProbe>,
}

impl WatchResult {
    pub fn bytes_per_watch(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.watches.max(1) as f64
    }
}

/// Connects `sessions` sessions, reads the server's RSS, has each set an
/// exists watch on `paths` paths that do not exist (so no znode memory is
/// added), reads the RSS again. Shared: every session watches the same
/// paths (many watchers per path, ZooKeeper's ZOOKEEPER-1177 shape);
/// distinct: every (session, path) pair has a path of its own. With
/// `warmup`, each session first sends the same burst of exists requests
/// without a watch, so the server's connection buffers are already in the
/// "before" RSS.
pub fn run_watches(cfg: &WatchConfig) -> Result<WatchResult, String> {
    let setup = Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect {}: {e}", cfg.server))?;
    let parent = format!("/watch-{}", crate::workload::run_id());
    let mut sessions = Vec::with_capacity(cfg.sessions);
    for _ in 0..cfg.sessions.max(1) {
        sessions.push(Arc::new(Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect: {e}"))?));
    }
    // Connected before the "before" RSS, so its buffers are not counted.
    let get_probe = match cfg.dump_probe {
        true => Some(Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect: {e}"))?),
        false => None,
    };
    let set_probe = match cfg.dump_probe {
        true => Some(Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect: {e}"))?),
        false => None,
    };
    let set_path = format!("{parent}-set-probe");
    if let Some(c) = &set_probe {
        ensure_node(c, &set_path)?;
    }
    let threads = cfg.threads.clamp(1, sessions.len());
    let path_of = |session: usize, i: u64| {
        if cfg.distinct {
            format!("{parent}/s{session}/p{i}")
        } else {
            format!("{parent}/p{i}")
        }
    };
    // Every session sends `count` exists requests (with or without the
    // watch), `WINDOW_REQUESTS` in flight, from `threads` client threads.
    let exists_burst = |count: u64, watch: bool| {
        std::thread::scope(|scope| -> Result<(), String> {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let sessions = &sessions;
                    let path_of = &path_of;
                    scope.spawn(move || -> Result<(), String> {
                        for (s, client) in sessions.iter().enumerate().skip(t).step_by(threads) {
                            pipelined(client, count, WINDOW_REQUESTS, |i| {
                                Request::Exists(PathWatch { path: path_of(s, i), watch })
                            })?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| "watch thread panicked".to_string())??;
            }
            Ok(())
        })
    };
    if cfg.warmup {
        exists_burst(WARMUP_REQUESTS, false)?;
    }
    std::thread::sleep(cfg.settle);
    let rss_before = procfs::process_rss_bytes(cfg.server_pid).ok_or("cannot read the server's VmRSS")?;
    let started = Instant::now();
    exists_burst(cfg.paths, true)?;
    let elapsed = started.elapsed();
    std::thread::sleep(cfg.settle);
    let rss_after = procfs::process_rss_bytes(cfg.server_pid).ok_or("cannot read the server's VmRSS")?;
    let server_reported = wchs_total(cfg.server);
    let watches = cfg.paths * sessions.len() as u64;
    let distinct_paths = if cfg.distinct { watches } else { cfg.paths };
    let sample: Vec<usize> = (0..distinct_paths.min(1000))
        .map(|i| if cfg.distinct { path_of((i % 7) as usize, i).len() } else { path_of(0, i).len() })
        .collect();
    let mean_path_len = sample.iter().sum::<usize>() as f64 / sample.len().max(1) as f64;
    let (get_baseline, dumps) = match (&get_probe, &set_probe) {
        (Some(probe), Some(setter)) => {
            let (baseline, _) = time_gets(probe, &AtomicBool::new(false), Some(GET_BASELINE))?;
            let mut dumps = Vec::new();
            for word in &cfg.dump_words {
                let target = match word.strip_prefix("admin:") {
                    Some(command) => DumpTarget::Admin(cfg.admin.ok_or("admin: dump words need --admin")?, command),
                    None => DumpTarget::FourLetter(cfg.server, word),
                };
                dumps.push(probe_dump(target, cfg.server_pid, probe, (setter, &set_path))?);
            }
            (Some(baseline), dumps)
        }
        _ => (None, Vec::new()),
    };
    for probe in [get_probe, set_probe].into_iter().flatten() {
        let _ = probe.close();
    }
    for c in sessions {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.close();
        }
    }
    let _ = setup.close();
    Ok(WatchResult {
        watches,
        distinct_paths,
        mean_path_len,
        rss_before,
        rss_after,
        server_reported,
        elapsed,
        get_baseline,
        dumps,
    })
}

/// Gets of "/" one at a time on `client` until `stop` is set (or `limit`
/// has passed): their latencies in microseconds, and when the slowest was
/// sent (from the start).
fn time_gets(
    client: &Client,
    stop: &AtomicBool,
    limit: Option<Duration>,
) -> Result<(LatencySummary, Duration), String> {
    let mut hist = new_histogram();
    let started = Instant::now();
    let (mut slowest, mut slowest_at) = (Duration::ZERO, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) && limit.is_none_or(|l| started.elapsed() < l) {
        let t = Instant::now();
        client.get_data("/", false).map_err(|e| format!("get / during the dump probe: {e}"))?;
        let took = t.elapsed();
        if took > slowest {
            (slowest, slowest_at) = (took, t - started);
        }
        let _ = hist.record((took.as_micros() as u64).max(1));
    }
    Ok((LatencySummary::of(&hist), slowest_at))
}

/// setData of `path` one at a time on `client` until `stop` is set, as `time_gets`.
fn time_sets(client: &Client, path: &str, stop: &AtomicBool) -> Result<(LatencySummary, Duration), String> {
    let mut hist = new_histogram();
    let started = Instant::now();
    let (mut slowest, mut slowest_at) = (Duration::ZERO, Duration::ZERO);
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        client.set_data(path, b"x", -1).map_err(|e| format!("set {path} during the dump probe: {e}"))?;
        let took = t.elapsed();
        if took > slowest {
            (slowest, slowest_at) = (took, t - started);
        }
        let _ = hist.record((took.as_micros() as u64).max(1));
    }
    Ok((LatencySummary::of(&hist), slowest_at))
}

/// What a dump probe reads.
enum DumpTarget<'a> {
    FourLetter(SocketAddr, &'a str),
    /// An AdminServer command, by GET `/commands/<name>`.
    Admin(SocketAddr, &'a str),
}

/// Asks for a dump and reads the reply to the end, counting its bytes and
/// watch lines, while `probe` times gets, `setter` times setData of its
/// path and the server's RSS is sampled.
fn probe_dump(
    target: DumpTarget<'_>,
    server_pid: u32,
    probe: &Client,
    setter: (&Client, &str),
) -> Result<DumpProbe, String> {
    let stop = AtomicBool::new(false);
    let word = match &target {
        DumpTarget::FourLetter(_, w) => (*w).to_owned(),
        DumpTarget::Admin(_, c) => format!("admin:{c}"),
    };
    std::thread::scope(|scope| {
        let gets = scope.spawn(|| time_gets(probe, &stop, None));
        let sets = scope.spawn(|| time_sets(setter.0, setter.1, &stop));
        let rss = scope.spawn(|| {
            let mut peak = 0u64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(procfs::process_rss_bytes(server_pid).unwrap_or(0));
                std::thread::sleep(RSS_SAMPLE_INTERVAL);
            }
            peak
        });
        let read = match target {
            DumpTarget::FourLetter(server, w) => read_dump(server, w.as_bytes(), b"\t", &word),
            DumpTarget::Admin(admin, command) => {
                let request = format!("GET /commands/{command} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
                // Pretty JSON: an array element is a line indented 6 spaces.
                read_dump(admin, request.as_bytes(), b"      ", &word)
            }
        };
        stop.store(true, Ordering::Relaxed);
        let gets = gets.join().map_err(|_| "get probe thread panicked".to_string())?;
        let sets = sets.join().map_err(|_| "set probe thread panicked".to_string())?;
        let rss_peak = rss.join().map_err(|_| "RSS sampler thread panicked".to_string())?;
        let (bytes, entries, first_byte, total) = read?;
        let (gets, slowest_get_at) = gets?;
        let (sets, slowest_set_at) = sets?;
        Ok(DumpProbe { word, bytes, entries, first_byte, total, rss_peak, gets, slowest_get_at, sets, slowest_set_at })
    })
}

/// Sends `request`, reads to the end: (bytes, lines starting with
/// `entry_prefix`, time to the first byte, time to the end).
fn read_dump(
    server: SocketAddr,
    request: &[u8],
    entry_prefix: &[u8],
    word: &str,
) -> Result<(u64, u64, Duration, Duration), String> {
    let mut s = TcpStream::connect_timeout(&server, FOUR_LETTER_TIMEOUT).map_err(|e| format!("{word}: {e}"))?;
    s.set_read_timeout(Some(DUMP_READ_TIMEOUT)).map_err(|e| format!("{word}: {e}"))?;
    let started = Instant::now();
    s.write_all(request).map_err(|e| format!("{word}: {e}"))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut bytes, mut entries, mut first_byte) = (0u64, 0u64, None);
    // How much of `entry_prefix` the current line starts with (None: not it).
    let mut matched = Some(0usize);
    loop {
        let n = s.read(&mut buf).map_err(|e| format!("{word} after {bytes} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        first_byte.get_or_insert_with(|| started.elapsed());
        for &b in &buf[..n] {
            if b == b'\n' {
                matched = Some(0);
                continue;
            }
            matched = match matched {
                Some(m) if m < entry_prefix.len() && entry_prefix.get(m) == Some(&b) => {
                    if m + 1 == entry_prefix.len() {
                        entries += 1;
                    }
                    Some(m + 1)
                }
                Some(m) if m >= entry_prefix.len() => Some(m),
                _ => None,
            };
        }
        bytes += n as u64;
    }
    let total = started.elapsed();
    Ok((bytes, entries, first_byte.unwrap_or(total), total))
}

pub struct RestartConfig {
    pub server: SocketAddr,
    pub server_pid: u32,
    /// Where the server writes its snapshots (zoocore: <dataDir>/zoocore,
    /// Apache: <dataDir>/version-2).
    pub snapshot_dir: PathBuf,
    pub znodes: u64,
    pub tail_txns: u64,
    pub value_size: usize,
    /// Shell command that starts the server again (run with `sh -c exec`).
    pub start_cmd: String,
    pub log: PathBuf,
    pub give_up: Duration,
}

pub struct RestartResult {
    pub snapshot_zxid: i64,
    pub zxid: i64,
    pub tail_txns: u64,
    pub restart: Duration,
    pub new_pid: u32,
    pub create_s: f64,
}

/// Newest `snapshot.<hex>` in `dir` by zxid (ignores `.tmp` and others).
fn newest_snapshot(dir: &Path) -> Option<(i64, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let zxid = i64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()?;
            Some((zxid, e.path()))
        })
        .max()
}

/// A `snapshot.*.tmp` in `dir`: zoocore is writing a snapshot (Apache
/// writes its snapshot under the final name).
fn snapshot_in_progress(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("snapshot.") && name.ends_with(".tmp")
        })
    })
}

fn process_gone(pid: u32) -> bool {
    // A killed child of another process stays a zombie until reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Fills the server with `znodes` znodes, then writes until the log holds
/// `tail_txns` (to +10 %) after the newest snapshot, kill -9s it, starts it
/// again and times until the last znode written reads back with its data.
pub fn run_restart(cfg: &RestartConfig) -> Result<RestartResult, String> {
    let parent = "/restart";
    let setup = Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect {}: {e}", cfg.server))?;
    ensure_node(&setup, parent)?;
    let value = Bytes::from(vec![b'v'; cfg.value_size]);
    let started = Instant::now();
    let writers: Vec<Client> = (0..4)
        .map(|_| Client::connect(cfg.server, SESSION_TIMEOUT).map_err(|e| format!("connect: {e}")))
        .collect::<Result<_, _>>()?;
    let k = writers.len() as u64;
    std::thread::scope(|scope| -> Result<(), String> {
        let handles: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(s, client)| {
                let value = &value;
                let count = (cfg.znodes + k - 1 - s as u64) / k;
                scope.spawn(move || {
                    pipelined_create(client, count, WINDOW_REQUESTS, value, |i| {
                        format!("{parent}/{}", i * k + s as u64)
                    })
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "create thread panicked".to_string())??;
        }
        Ok(())
    })?;
    let create_s = started.elapsed().as_secs_f64();

    // Top the log tail up to the target; past it, write until a snapshot
    // starts, then top up from there.
    let mut writes = 0u64;
    let set = |client: &Client, n: u64, from: u64| {
        pipelined(client, n, WINDOW_REQUESTS, |i| {
            Request::SetData(SetDataRequest {
                path: format!("{parent}/{}", (from + i) % cfg.znodes.max(1)),
                data: Some(value.clone()),
                version: -1,
            })
        })
    };
    let deadline = Instant::now() + cfg.give_up;
    let (snapshot_zxid, zxid) = loop {
        if Instant::now() > deadline {
            return Err("gave up waiting for a snapshot and the wanted log tail".into());
        }
        // At 10M znodes a snapshot takes seconds to write and its zxid is
        // that of its start: writing on meanwhile would overshoot the tail
        // every time, so wait until it is on disk.
        if snapshot_in_progress(&cfg.snapshot_dir) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        let zxid = srvr_zxid(cfg.server).ok_or("srvr gave no Zxid")?;
        let snap = newest_snapshot(&cfg.snapshot_dir).map_or(0, |(z, _)| z);
        let tail = (zxid - snap).max(0) as u64;
        if snap > 0 && tail >= cfg.tail_txns && tail <= cfg.tail_txns + cfg.tail_txns / 10 {
            break (snap, zxid);
        }
        let n = if snap > 0 && tail < cfg.tail_txns { cfg.tail_txns - tail } else { 10_000 };
        set(&writers[(writes % k) as usize], n, writes)?;
        writes += n;
        // A snapshot file appears when its write starts (Apache) or ends
        // (zoocore): let a started one finish before reading the tail.
        std::thread::sleep(Duration::from_millis(200));
    };
    // The snapshot being written at this zxid must be complete on disk.
    std::thread::sleep(Duration::from_secs(3));
    if newest_snapshot(&cfg.snapshot_dir).map(|(z, _)| z) != Some(snapshot_zxid)
        || snapshot_in_progress(&cfg.snapshot_dir)
    {
        return Err("a new snapshot started while settling; run again".into());
    }
    let probe = format!("{parent}/{}", cfg.znodes.saturating_sub(1));
    drop(writers);
    let _ = setup.close();

    // kill -9, wait until the process and its listener are gone.
    // SAFETY: kill(2) with a PID the caller gave us; no memory is touched.
    if unsafe { libc::kill(cfg.server_pid as i32, libc::SIGKILL) } != 0 {
        return Err(format!("kill -9 {}: {}", cfg.server_pid, std::io::Error::last_os_error()));
    }
    let gone_by = Instant::now() + Duration::from_secs(30);
    while !process_gone(cfg.server_pid) || TcpStream::connect_timeout(&cfg.server, Duration::from_millis(100)).is_ok() {
        if Instant::now() > gone_by {
            return Err("the killed server did not go away".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cfg.log)
        .map_err(|e| format!("{}: {e}", cfg.log.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {}", cfg.start_cmd))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("start: {e}"))?;
    let new_pid = child.id();
    // Serving again: a new session reads the last-created znode back, and
    // the server reports the zxid it had before the kill.
    loop {
        if t0.elapsed() > cfg.give_up {
            return Err(format!("server (pid {new_pid}) not serving after {:?}", cfg.give_up));
        }
        // Apache accepts connections while it still loads its data and
        // leaves an early handshake unanswered: each attempt runs on its own
        // thread and is abandoned (the thread left blocked) after a second.
        let (tx, rx) = std::sync::mpsc::channel();
        let (server, probe_path, value_size) = (cfg.server, probe.clone(), cfg.value_size);
        std::thread::spawn(move || {
            let served = Client::connect(server, SESSION_TIMEOUT).is_ok_and(|c| {
                let read = c.get_data(&probe_path, false);
                let _ = c.close();
                matches!(&read, Ok((Some(data), _)) if data.len() == value_size)
            });
            let _ = tx.send(served);
        });
        if rx.recv_timeout(PROBE_ATTEMPT_TIMEOUT).unwrap_or(false) && srvr_zxid(cfg.server).is_some_and(|z| z >= zxid) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let restart = t0.elapsed();
    Ok(RestartResult { snapshot_zxid, zxid, tail_txns: (zxid - snapshot_zxid) as u64, restart, new_pid, create_s })
}
