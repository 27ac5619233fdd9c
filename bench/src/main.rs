//! zoocore-bench: a load generator for any ZooKeeper-protocol server
//! (zoocore or Apache ZooKeeper), built on zoocore's own client.

mod ensemble;
mod floors;
mod large_values;
mod memory;
mod mntr;
mod procfs;
mod report;
mod scale;
mod tree_writes;
mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use report::{json_str, JsonObject, LatencySummary};
use workload::{RunConfig, Workload};
use zoocore::client::{TlsServerName, TlsSettings, Transport};

#[derive(Parser)]
#[command(name = "zoocore-bench", version, about = "Load generator for ZooKeeper-protocol servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one workload and report throughput, latency and errors.
    Run(RunArgs),
    /// Create N znodes and report the server's RSS growth per znode.
    Memory(MemoryArgs),
    /// Connect sessions, set exists watches, report the server's RSS growth per watch.
    Watches(WatchesArgs),
    /// Fill the server, kill -9 it with a log tail after the last snapshot, time the restart.
    Restart(RestartArgs),
    /// Time 4 KiB O_DIRECT (or --buffered) write + fdatasync in a directory (the disk's floor).
    DiskFloor(FloorArgs),
    /// Time a loopback TCP round trip (16-byte echo).
    Rtt(RttArgs),
    /// Time large setData (default 10 MiB, one outstanding) and getData
    /// against the disk's floor for the same bytes (write + fdatasync in
    /// --dir); the server's RSS before, after the first writes and after all.
    LargeValues(LargeValuesArgs),
    /// Write p99 while a snapshot is being written vs without: preloads
    /// znodes, runs a fixed-rate setData load, watches the snapshot
    /// directory for a snapshot being written (a `snapshot.*.tmp`, or a
    /// `snapshot.*` still growing) and splits the samples by it.
    SnapshotTail(SnapshotTailArgs),
    /// Wait until an ensemble has one leader and the rest follow; print each member's Mode and Zxid.
    EnsembleWait(EnsembleWaitArgs),
    /// kill -9 an ensemble's leader and time until a write on another member is acknowledged.
    Failover(FailoverArgs),
    /// Time the data tree's write path in this process (no server): creates,
    /// setData and the incremental digest's pieces, best of five rounds.
    TreeWrites(TreeWritesArgs),
}

#[derive(Args)]
struct TreeWritesArgs {
    /// Znodes created (then each set once) per round.
    #[arg(long, default_value_t = 100_000)]
    nodes: usize,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct EnsembleWaitArgs {
    /// The members' client addresses, comma-separated, in sid order.
    #[arg(long, value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// Also wait until every member reports the leader's zxid (caught up).
    #[arg(long)]
    same_zxid: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct FailoverArgs {
    /// The members' client addresses, comma-separated, in sid order.
    #[arg(long, value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// The members' PIDs, comma-separated, in the same order.
    #[arg(long, value_delimiter = ',', required = true)]
    server_pid: Vec<u32>,
    /// Milliseconds a member may take to answer the session handshake
    /// (once it has, the create's reply is awaited until --give-up).
    #[arg(long, default_value_t = 300)]
    attempt_timeout_ms: u64,
    /// Milliseconds to pause after a failed attempt.
    #[arg(long, default_value_t = 5)]
    retry_pause_ms: u64,
    /// Give up after this many seconds without an acknowledged write.
    #[arg(long, default_value_t = 60.0)]
    give_up: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args, Clone)]
struct CommonOut {
    /// Print one JSON line on stdout instead of the human table.
    #[arg(long)]
    json: bool,
    /// A label copied into the JSON (e.g. the server's name).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Args)]
struct RunArgs {
    #[arg(value_enum)]
    workload: Workload,
    /// Server address host:port; a comma-separated list (an ensemble's
    /// members) spreads the load sessions round-robin over them.
    #[arg(long, default_value = "127.0.0.1:2181", value_delimiter = ',')]
    server: Vec<String>,
    /// Bytes of data per create/setData.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Preloaded keys for set/get/exists/children/delete/mixed.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Sessions (one TCP connection each).
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Requests pipelined per session.
    #[arg(long, default_value_t = 1)]
    outstanding: usize,
    /// Measured seconds (after warm-up).
    #[arg(long)]
    duration: Option<f64>,
    /// Stop after this many measured ops.
    #[arg(long)]
    ops: Option<u64>,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Target total rate in ops/s: open loop, latency from the intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Load threads (sessions are spread over them); default one per session.
    #[arg(long)]
    threads: Option<usize>,
    /// Read share of the mixed workload, percent.
    #[arg(long, default_value_t = 90)]
    read_pct: u32,
    /// The server's PID, to report its CPU time per operation; a
    /// comma-separated list sums the CPU of all of them (an ensemble).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Session timeout requested, milliseconds.
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: u64,
    /// Never pipeline reads and writes together on one session (works
    /// around a zoocore bug; closed loop only). Applied to any server.
    #[arg(long)]
    read_write_barrier: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    tls: TlsArgs,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args, Clone)]
struct TlsArgs {
    /// Speak TLS (a secureClientPort): the PEM file of the CA(s) the
    /// server's certificate must lead to. The certificate is checked
    /// against the server's IP address (an IP SAN), or --tls-server-name.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM), for ssl.clientAuth=need/want.
    #[arg(long, requires = "tls_ca", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM, unencrypted).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// DNS name to check the server's certificate against instead of its IP.
    #[arg(long, requires = "tls_ca")]
    tls_server_name: Option<String>,
}

impl TlsArgs {
    /// The transport for servers at `first` (every --server shares the
    /// settings; the default name is the first server's IP).
    fn transport(&self, first: SocketAddr) -> Result<Transport, String> {
        let Some(ca) = &self.tls_ca else { return Ok(Transport::Plain) };
        let name = match &self.tls_server_name {
            Some(n) => TlsServerName::try_from(n.clone()).map_err(|e| format!("--tls-server-name {n}: {e}"))?,
            None => TlsSettings::ip_name(first.ip()),
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        Ok(Transport::Tls(TlsSettings::from_pem_files(ca, identity, name)?))
    }
}

#[derive(Args)]
struct MemoryArgs {
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: String,
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value_t = 1_000_000)]
    znodes: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    #[arg(long, default_value_t = 4)]
    sessions: usize,
    #[arg(long, default_value_t = 256)]
    outstanding: usize,
    /// Parent znode; a suffix is added if it already exists.
    #[arg(long, default_value = "/mem")]
    parent: String,
    /// Seconds to wait before each RSS reading.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct WatchesArgs {
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: String,
    #[arg(long)]
    server_pid: u32,
    #[arg(long, default_value_t = 1000)]
    sessions: usize,
    /// Paths each session watches.
    #[arg(long, default_value_t = 1000)]
    paths: u64,
    /// Every (session, path) on a path of its own (default: all sessions
    /// watch the same paths).
    #[arg(long)]
    distinct: bool,
    /// Client threads registering the watches.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Skip the watchless warm-up burst before the "before" RSS (the
    /// first runs' method: the server's connection buffers, first touched
    /// by the registration burst, are then counted as watch memory).
    #[arg(long)]
    no_warmup: bool,
    /// After the RSS readings, read a wchc and a wchp of all the watches
    /// (bytes, watch lines, time) while another session times gets of "/".
    #[arg(long)]
    dump_probe: bool,
    /// What the dump probe reads, comma-separated: four-letter words (wchc,
    /// wchp) and AdminServer commands (admin:watches, admin:watches_by_path).
    #[arg(long, default_value = "wchc,wchp", value_delimiter = ',')]
    dump_words: Vec<String>,
    /// The AdminServer (host:port) for admin: dump words.
    #[arg(long)]
    admin: Option<String>,
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct RestartArgs {
    #[arg(long, default_value = "127.0.0.1:2181")]
    server: String,
    #[arg(long)]
    server_pid: u32,
    /// The server's snapshot directory (zoocore: <dataDir>/zoocore, Apache: <dataDir>/version-2).
    #[arg(long)]
    snapshot_dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    znodes: u64,
    /// Transactions in the log after the newest snapshot at the kill (+10 %).
    #[arg(long, default_value_t = 100_000)]
    tail: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Starts the server again (run as `sh -c "exec CMD"`; its PID is printed).
    #[arg(long)]
    start_cmd: String,
    /// The restarted server's stdout and stderr are appended here.
    #[arg(long)]
    log: PathBuf,
    #[arg(long, default_value_t = 600.0)]
    give_up: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct FloorArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Buffered writes (page cache) + fdatasync instead of O_DIRECT.
    #[arg(long)]
    buffered: bool,
    /// Buffered appends into a sparse file + fdatasync (Apache ZooKeeper's
    /// padded log: each sync also commits a block allocation).
    #[arg(long, conflicts_with = "buffered")]
    sparse_append: bool,
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct LargeValuesArgs {
    #[arg(long)]
    server: String,
    /// The server's PID, for its RSS (without it no RSS is reported).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A directory on the server's data disk for the floor's file.
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per value (the server needs a jute.maxbuffer above it).
    #[arg(long, default_value_t = 10 << 20)]
    size: usize,
    /// setData of the value, one outstanding, each value different.
    #[arg(long, default_value_t = 50)]
    writes: usize,
    /// RSS is also read after this many writes; the growth after it is the
    /// "grows without bound" figure.
    #[arg(long, default_value_t = 5)]
    first_writes: usize,
    /// getData of the value afterwards, one outstanding.
    #[arg(long, default_value_t = 10)]
    reads: usize,
    /// write + fdatasync of the same bytes in --dir (the floor).
    #[arg(long, default_value_t = 20)]
    floor_writes: usize,
    /// Seconds to wait before each RSS reading.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct SnapshotTailArgs {
    #[arg(long)]
    server: String,
    /// The server's snapshot directory (zoocore: <dataDir>/zoocore, Apache: <dataDir>/version-2).
    #[arg(long)]
    snapshot_dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    znodes: u64,
    /// setData per second, one outstanding.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds of fixed-rate load after the preload.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// A snapshot written in place (Apache) counts as in progress until
    /// its file has not grown for this many milliseconds.
    #[arg(long, default_value_t = 50)]
    quiet_ms: u64,
    #[command(flatten)]
    out: CommonOut,
}

#[derive(Args)]
struct RttArgs {
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    #[command(flatten)]
    out: CommonOut,
}

fn resolve(server: &str) -> Result<SocketAddr, String> {
    server
        .to_socket_addrs()
        .map_err(|e| format!("--server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server {server}: no address"))
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{what} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Memory(a) => cmd_memory(a),
        Command::Watches(a) => cmd_watches(a),
        Command::Restart(a) => cmd_restart(a),
        Command::DiskFloor(a) => cmd_disk_floor(a),
        Command::Rtt(a) => cmd_rtt(a),
        Command::LargeValues(a) => cmd_large_values(a),
        Command::SnapshotTail(a) => cmd_snapshot_tail(a),
        Command::EnsembleWait(a) => cmd_ensemble_wait(a),
        Command::Failover(a) => cmd_failover(a),
        Command::TreeWrites(a) => cmd_tree_writes(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zoocore-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn latency_table(l: &LatencySummary) -> String {
    format!(
        "latency us   p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  (mean {:.1}, n {})",
        l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean, l.count
    )
}

fn cmd_run(a: RunArgs) -> Result<(), String> {
    if a.sessions == 0 || a.outstanding == 0 {
        return Err("--sessions and --outstanding must be at least 1".into());
    }
    if a.read_pct > 100 {
        return Err("--read-pct is a percentage (0..=100)".into());
    }
    if matches!(a.rate, Some(r) if r.is_nan() || r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    // Neither given: 10 s. Only --ops: run until that many ops (capped at a day).
    let duration = match (a.duration, a.ops) {
        (Some(d), _) => seconds(d, "--duration")?,
        (None, Some(_)) => Duration::from_secs(86_400),
        (None, None) => Duration::from_secs(10),
    };
    if a.server.is_empty() {
        return Err("--server needs at least one address".into());
    }
    let servers = a.server.iter().map(|s| resolve(s)).collect::<Result<Vec<_>, _>>()?;
    let server_list = a.server.join(",");
    let transport = a.tls.transport(servers[0])?;
    let tls = matches!(transport, Transport::Tls(_));
    let cfg = RunConfig {
        transport,
        servers,
        workload: a.workload,
        value_size: a.value_size,
        keys: a.keys.max(1),
        sessions: a.sessions,
        outstanding: a.outstanding,
        duration,
        ops: a.ops,
        // Delete consumes its preloaded keys: a warm-up would eat them.
        warmup: if a.workload == Workload::Delete { Duration::ZERO } else { seconds(a.warmup, "--warmup")? },
        rate: a.rate,
        threads: a.threads.unwrap_or(a.sessions).max(1),
        read_pct: a.read_pct,
        server_pids: a.server_pid.clone(),
        session_timeout: Duration::from_millis(a.session_timeout_ms),
        read_write_barrier: a.read_write_barrier,
        progress: !a.quiet && (duration + seconds(a.warmup, "--warmup")?) > Duration::from_secs(3),
    };
    // The server's own log histograms (cumulative since it started), read
    // before the warm-up and after the run.
    // The first server's only (in an ensemble: the member named first).
    // Not over TLS: `mntr` is plaintext, and a secure port refuses it.
    let read_mntr = || if tls { None } else { mntr::read(cfg.servers[0]) };
    let log_before = read_mntr();
    let r = workload::run(&cfg)?;
    let log_after = read_mntr();
    let notes = r.saturation_notes(&cfg);
    if a.out.json {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
        let timeline: Vec<String> = r.timeline.iter().map(|v| v.to_string()).collect();
        let notes_json: Vec<String> = notes.iter().map(|n| json_str(n)).collect();
        let line = JsonObject::default()
            .str("kind", "run")
            .str("label", &a.out.label)
            .str("workload", cfg.workload.name())
            .str("server", &server_list)
            .bool("tls", tls)
            .str("tls_session", r.tls_session.as_deref().unwrap_or(""))
            .int("server_processes", cfg.server_pids.len() as u64)
            .int("sessions", cfg.sessions as u64)
            .int("outstanding", cfg.outstanding as u64)
            .int("threads", r.threads_used as u64)
            .int("value_size", cfg.value_size as u64)
            .int("keys", cfg.keys)
            .int("read_pct", cfg.read_pct)
            .bool("read_write_barrier", cfg.read_write_barrier)
            .num("rate", cfg.rate)
            .num("window_s", Some(r.window.as_secs_f64()))
            .num("warmup_s", Some(cfg.warmup.as_secs_f64()))
            .int("ops", r.ops)
            .num("throughput", Some(r.throughput()))
            .int("errors", r.error_count())
            .raw("errors_by_code", format!("{{{}}}", errors.join(",")))
            .raw("latency_us", r.latency.to_json())
            .num("server_cpu_s", r.server_cpu_seconds)
            .num("server_cpu_us_per_op", r.server_cpu_us_per_op())
            .num("client_cpu_cores", Some(r.client_cpu_cores))
            .num("client_busiest_thread", Some(r.client_busiest_thread))
            .int("late_sends", r.late_sends)
            .num("max_send_lag_ms", Some(r.max_send_lag.as_secs_f64() * 1e3))
            .int("watch_events", r.watch_events)
            .bool("client_saturated", !notes.is_empty())
            .raw("saturation_notes", format!("[{}]", notes_json.join(",")))
            .raw("timeline", format!("[{}]", timeline.join(",")))
            .raw("server_log_before", log_before.as_ref().map_or("null".into(), |m| m.to_json()))
            .raw("server_log_after", log_after.as_ref().map_or("null".into(), |m| m.to_json()))
            .build();
        println!("{line}");
    } else {
        println!(
            "{} on {}: {} sessions x {} outstanding, {} threads, {} B values{}",
            cfg.workload.name(),
            server_list,
            cfg.sessions,
            cfg.outstanding,
            r.threads_used,
            cfg.value_size,
            cfg.rate.map(|r| format!(", open loop at {r:.0} ops/s")).unwrap_or_default()
        );
        println!("ops          {} in {:.2} s", r.ops, r.window.as_secs_f64());
        println!("throughput   {:.0} ops/s", r.throughput());
        println!("{}", latency_table(&r.latency));
        match r.server_cpu_us_per_op() {
            Some(us) => println!("server CPU   {us:.1} us/op ({:.2} s total)", r.server_cpu_seconds.unwrap_or(0.0)),
            None => println!("server CPU   (give --server-pid)"),
        }
        println!(
            "client CPU   {:.2} cores, busiest thread {:.0}%",
            r.client_cpu_cores,
            r.client_busiest_thread * 100.0
        );
        if let Some(t) = &r.tls_session {
            println!("tls          {t}");
        }
        if let Some(m) = &log_before {
            println!("server log   before: {}", m.summary());
        }
        if let Some(m) = &log_after {
            println!("server log   after:  {}", m.summary());
        }
        if cfg.workload == Workload::EphemeralWatch {
            println!("watch events {}", r.watch_events);
        }
        if r.errors.is_empty() {
            println!("errors       none");
        } else {
            for (k, v) in &r.errors {
                println!("errors       {k}: {v}");
            }
        }
        for n in &notes {
            println!("WARNING      client saturated: {n}");
        }
    }
    Ok(())
}

fn cmd_memory(a: MemoryArgs) -> Result<(), String> {
    let cfg = memory::MemoryConfig {
        server: resolve(&a.server)?,
        server_pid: a.server_pid,
        znodes: a.znodes,
        value_size: a.value_size,
        sessions: a.sessions,
        outstanding: a.outstanding,
        parent: a.parent.clone(),
        settle: seconds(a.settle, "--settle")?,
    };
    let r = memory::run(&cfg)?;
    let per = r.bytes_per_znode(cfg.znodes);
    let over = r.overhead_per_znode(cfg.znodes, cfg.value_size);
    if a.out.json {
        let line = JsonObject::default()
            .str("kind", "memory")
            .str("label", &a.out.label)
            .str("server", &a.server)
            .int("znodes", cfg.znodes)
            .int("value_size", cfg.value_size as u64)
            .str("parent", &r.parent)
            .int("rss_before", r.rss_before)
            .int("rss_after", r.rss_after)
            .num("bytes_per_znode", Some(per))
            .num("mean_path_len", Some(r.mean_path_len))
            .num("overhead_per_znode", Some(over))
            .int("errors", r.failures)
            .num("create_s", Some(r.elapsed.as_secs_f64()))
            .build();
        println!("{line}");
    } else {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!("{} znodes of {} B under {} on {}", cfg.znodes, cfg.value_size, r.parent, a.server);
        println!("created in   {:.2} s ({} failures)", r.elapsed.as_secs_f64(), r.failures);
        println!("server RSS   {:.1} MiB before, {:.1} MiB after", mib(r.rss_before), mib(r.rss_after));
        println!("per znode    {per:.1} B, of which path {:.1} B + data {} B", r.mean_path_len, cfg.value_size);
        println!("overhead     {over:.1} B per znode beyond path and data");
    }
    Ok(())
}

fn cmd_watches(a: WatchesArgs) -> Result<(), String> {
    let cfg = scale::WatchConfig {
        server: resolve(&a.server)?,
        server_pid: a.server_pid,
        sessions: a.sessions,
        paths: a.paths,
        distinct: a.distinct,
        warmup: !a.no_warmup,
        settle: seconds(a.settle, "--settle")?,
        threads: a.threads,
        dump_probe: a.dump_probe,
        dump_words: a.dump_words.clone(),
        admin: a.admin.as_deref().map(resolve).transpose()?,
    };
    let r = scale::run_watches(&cfg)?;
    let get_json = |l: &LatencySummary| {
        format!("{{\"count\":{},\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{}}}", l.count, l.p50, l.p99, l.p999, l.max)
    };
    let dumps_json: Vec<String> = r
        .dumps
        .iter()
        .map(|d| {
            JsonObject::default()
                .str("word", &d.word)
                .int("bytes", d.bytes)
                .int("entries", d.entries)
                .num("first_byte_ms", Some(d.first_byte.as_secs_f64() * 1e3))
                .num("total_ms", Some(d.total.as_secs_f64() * 1e3))
                .int("rss_peak", d.rss_peak)
                .raw("get_us", get_json(&d.gets))
                .num("slowest_get_at_ms", Some(d.slowest_get_at.as_secs_f64() * 1e3))
                .raw("set_us", get_json(&d.sets))
                .num("slowest_set_at_ms", Some(d.slowest_set_at.as_secs_f64() * 1e3))
                .build()
        })
        .collect();
    if a.out.json {
        let line = JsonObject::default()
            .str("kind", "watches")
            .str("label", &a.out.label)
            .str("server", &a.server)
            .str("shape", if a.distinct { "distinct" } else { "shared" })
            .raw("warmup", (!a.no_warmup).to_string())
            .int("sessions", a.sessions as u64)
            .int("watches", r.watches)
            .int("distinct_paths", r.distinct_paths)
            .num("mean_path_len", Some(r.mean_path_len))
            .int("rss_before", r.rss_before)
            .int("rss_after", r.rss_after)
            .num("bytes_per_watch", Some(r.bytes_per_watch()))
            .raw("server_reported", r.server_reported.map_or("null".into(), |n| n.to_string()))
            .num("register_s", Some(r.elapsed.as_secs_f64()));
        let line = match &r.get_baseline {
            Some(b) => line.raw("get_baseline_us", get_json(b)).raw("dumps", format!("[{}]", dumps_json.join(","))),
            None => line,
        };
        println!("{}", line.build());
    } else {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "{} watches ({} sessions, {} distinct paths) on {}",
            r.watches, a.sessions, r.distinct_paths, a.server
        );
        println!("registered in {:.2} s; wchs reports {:?}", r.elapsed.as_secs_f64(), r.server_reported);
        println!("server RSS   {:.1} MiB before, {:.1} MiB after", mib(r.rss_before), mib(r.rss_after));
        println!("per watch    {:.1} B (mean path {:.1} B)", r.bytes_per_watch(), r.mean_path_len);
        if let Some(b) = &r.get_baseline {
            println!("get / before the dumps: {}", latency_table(b));
        }
        for d in &r.dumps {
            println!(
                "{}: {} bytes, {} watch lines, first byte {:.0} ms, end {:.0} ms, server RSS peak {:.1} MiB",
                d.word,
                d.bytes,
                d.entries,
                d.first_byte.as_secs_f64() * 1e3,
                d.total.as_secs_f64() * 1e3,
                mib(d.rss_peak)
            );
            println!(
                "  get / meanwhile: {} (slowest sent at {:.0} ms)",
                latency_table(&d.gets),
                d.slowest_get_at.as_secs_f64() * 1e3
            );
            println!(
                "  setData meanwhile: {} (slowest sent at {:.0} ms)",
                latency_table(&d.sets),
                d.slowest_set_at.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

fn cmd_restart(a: RestartArgs) -> Result<(), String> {
    let cfg = scale::RestartConfig {
        server: resolve(&a.server)?,
        server_pid: a.server_pid,
        snapshot_dir: a.snapshot_dir.clone(),
        znodes: a.znodes,
        tail_txns: a.tail,
        value_size: a.value_size,
        start_cmd: a.start_cmd.clone(),
        log: a.log.clone(),
        give_up: seconds(a.give_up, "--give-up")?,
    };
    let r = scale::run_restart(&cfg)?;
    if a.out.json {
        let line = JsonObject::default()
            .str("kind", "restart")
            .str("label", &a.out.label)
            .str("server", &a.server)
            .int("znodes", a.znodes)
            .int("value_size", a.value_size as u64)
            .int("snapshot_zxid", r.snapshot_zxid)
            .int("zxid", r.zxid)
            .int("tail_txns", r.tail_txns)
            .num("restart_ms", Some(r.restart.as_secs_f64() * 1000.0))
            .int("new_pid", r.new_pid)
            .num("create_s", Some(r.create_s))
            .build();
        println!("{line}");
    } else {
        println!("{} znodes, snapshot at 0x{:x}, {} txns after it", a.znodes, r.snapshot_zxid, r.tail_txns);
        println!("kill -9 to serving again: {:.0} ms (new pid {})", r.restart.as_secs_f64() * 1000.0, r.new_pid);
    }
    Ok(())
}

fn floor_output(kind: &str, out: &CommonOut, l: &LatencySummary, extra: JsonObject) {
    if out.json {
        println!("{}", extra.str("kind", kind).str("label", &out.label).raw("latency_us", l.to_json()).build());
    } else {
        println!("{kind}: {}", latency_table(l));
    }
}

fn cmd_disk_floor(a: FloorArgs) -> Result<(), String> {
    let mode = match (a.buffered, a.sparse_append) {
        (_, true) => floors::FloorMode::SparseAppend,
        (true, false) => floors::FloorMode::Buffered,
        (false, false) => floors::FloorMode::Direct,
    };
    let f = floors::disk_floor(&a.dir, seconds(a.duration, "--duration")?, mode)?;
    if !f.direct && mode == floors::FloorMode::Direct {
        eprintln!("zoocore-bench: O_DIRECT refused in {}; measured buffered writes + fdatasync", a.dir.display());
    }
    let extra = JsonObject::default()
        .str("dir", &a.dir.display().to_string())
        .bool("o_direct", f.direct)
        .str("mode", mode.name());
    floor_output("disk-floor", &a.out, &LatencySummary::of(&f.hist), extra);
    Ok(())
}

fn cmd_tree_writes(a: TreeWritesArgs) -> Result<(), String> {
    let t = tree_writes::run(a.nodes)?;
    if a.out.json {
        let row = JsonObject::default()
            .str("kind", "tree-writes")
            .str("label", &a.out.label)
            .int("nodes", t.nodes as u64)
            .num("create_ns", Some(t.create_ns))
            .num("set_data_ns", Some(t.set_data_ns))
            .num("digest_node_ns", Some(t.digest_node_ns))
            .num("digest_restat_ns", Some(t.digest_restat_ns))
            .num("digest_rehash_parent_ns", Some(t.digest_rehash_parent_ns))
            .num("digest_rehash_1mib_us", Some(t.digest_rehash_1mib_us));
        println!("{}", row.build());
    } else {
        println!(
            "tree writes ({} znodes, best of 5): create 100 B {:.0} ns, setData 100 B {:.0} ns; digest of a \
             100 B node {:.0} ns, parent restat {:.0} ns, re-hashing the parent instead {:.0} ns (100 B data), \
             {:.1} us (1 MiB)",
            t.nodes,
            t.create_ns,
            t.set_data_ns,
            t.digest_node_ns,
            t.digest_restat_ns,
            t.digest_rehash_parent_ns,
            t.digest_rehash_1mib_us
        );
    }
    Ok(())
}

fn cmd_rtt(a: RttArgs) -> Result<(), String> {
    let h = floors::loopback_rtt(seconds(a.duration, "--duration")?)?;
    floor_output("rtt", &a.out, &LatencySummary::of(&h), JsonObject::default());
    Ok(())
}

fn cmd_large_values(a: LargeValuesArgs) -> Result<(), String> {
    let cfg = large_values::LargeValuesConfig {
        server: resolve(&a.server)?,
        server_pid: a.server_pid,
        dir: a.dir.clone(),
        value_bytes: a.size,
        writes: a.writes,
        first_writes: a.first_writes,
        reads: a.reads,
        floor_writes: a.floor_writes.max(1),
        settle: seconds(a.settle, "--settle")?,
    };
    let r = large_values::run(&cfg)?;
    let (set, get, floor) = (LatencySummary::of(&r.set), LatencySummary::of(&r.get), LatencySummary::of(&r.floor));
    let ratio = set.p50 as f64 / floor.p50.max(1) as f64;
    let growth = r.rss_growth_after_first();
    if a.out.json {
        let opt_int = |v: Option<u64>| v.map_or("null".to_string(), |b| b.to_string());
        let line = JsonObject::default()
            .str("kind", "large_values")
            .str("label", &a.out.label)
            .str("server", &a.server)
            .int("value_size", a.size as u64)
            .int("writes", a.writes as u64)
            .int("first_writes", a.first_writes as u64)
            .raw("set_latency_us", set.to_json())
            .raw("get_latency_us", get.to_json())
            .raw("floor_latency_us", floor.to_json())
            .num("set_p50_over_floor_p50", Some(ratio))
            .raw("rss_before", opt_int(r.rss_before))
            .raw("rss_after_first", opt_int(r.rss_after_first))
            .raw("rss_after_all", opt_int(r.rss_after_all))
            .raw("rss_growth_after_first", growth.map_or("null".to_string(), |g| g.to_string()))
            .build();
        println!("{line}");
    } else {
        let mib = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        println!("{} writes of {} bytes to {} on {}, one outstanding", a.writes, a.size, r.path, a.server);
        println!("setData      {}", latency_table(&set));
        println!("getData      {}", latency_table(&get));
        println!("floor        {} (write + fdatasync of the same bytes)", latency_table(&floor));
        println!("setData p50 / floor p50: {ratio:.2}");
        println!(
            "server RSS   {} before, {} after {} writes, {} after all ({} over the last {})",
            mib(r.rss_before),
            mib(r.rss_after_first),
            a.first_writes,
            mib(r.rss_after_all),
            growth.map_or("-".to_string(), |g| format!("{:+.1} MiB", g as f64 / 1048576.0)),
            a.writes - a.first_writes
        );
    }
    Ok(())
}

/// p50 / p99 / max of latencies in microseconds.
fn percentiles_us(mut samples: Vec<u64>) -> (u64, u64, u64, usize) {
    samples.sort_unstable();
    let at = |q: f64| samples.get(((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1))).copied();
    (at(0.5).unwrap_or(0), at(0.99).unwrap_or(0), samples.last().copied().unwrap_or(0), samples.len())
}

/// Tells, poll by poll, whether a snapshot is being written into a
/// directory. zoocore writes `snapshot.<zxid>.tmp` and renames it when
/// done. Apache ZooKeeper 3.8 writes `snapshot.<zxid>` in place (its
/// snapshot thread calls `takeSnapshot()`, i.e. syncSnap false, and
/// `SnapStream.getOutputStream` then opens a plain `FileOutputStream` on
/// the final name; only a synced snapshot goes through a `.tmp`). So a
/// snapshot is in progress while a `.tmp` exists, or while a `snapshot.*`
/// file is new or has grown within the last `quiet` (so a GC pause or a
/// stalled write inside one snapshot does not end it early; the cost is
/// that `quiet` after each snapshot also counts as during).
struct SnapshotWatch {
    dir: PathBuf,
    quiet: Duration,
    sizes: std::collections::HashMap<std::ffi::OsString, u64>,
    primed: bool,
    last_growth: Option<std::time::Instant>,
    tmp_polls: u64,
    growth_polls: u64,
}

impl SnapshotWatch {
    fn new(dir: PathBuf, quiet: Duration) -> SnapshotWatch {
        SnapshotWatch {
            dir,
            quiet,
            sizes: Default::default(),
            primed: false,
            last_growth: None,
            tmp_polls: 0,
            growth_polls: 0,
        }
    }

    fn poll(&mut self, now: std::time::Instant) -> bool {
        let mut tmp = false;
        let mut grew = false;
        let mut seen = std::collections::HashMap::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let text = name.to_string_lossy();
            if !text.starts_with("snapshot.") {
                continue;
            }
            if text.ends_with(".tmp") {
                tmp = true;
                continue;
            }
            // A file renamed or deleted between the listing and here is skipped.
            let Ok(meta) = e.metadata() else { continue };
            let len = meta.len();
            if self.primed && self.sizes.get(&name).is_none_or(|&before| len > before) {
                grew = true;
            }
            seen.insert(name, len);
        }
        self.sizes = seen;
        self.primed = true;
        if grew {
            self.last_growth = Some(now);
            self.growth_polls += 1;
        }
        if tmp {
            self.tmp_polls += 1;
        }
        tmp || self.last_growth.is_some_and(|t| now.duration_since(t) <= self.quiet)
    }
}

fn cmd_snapshot_tail(a: SnapshotTailArgs) -> Result<(), String> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Instant;
    let server = resolve(&a.server)?;
    let timeout = Duration::from_secs(30);
    let loader = zoocore::client::Client::connect(server, timeout).map_err(|e| format!("connect {server}: {e}"))?;
    let parent = format!("/snaptail-{}", workload::run_id());
    workload::ensure_node(&loader, &parent)?;
    let value = bytes::Bytes::from(vec![b'v'; 100]);
    let started = Instant::now();
    let failures = workload::pipelined_create(&loader, a.znodes, 256, &value, |i| format!("{parent}/n{i}"))?;
    let preload_s = started.elapsed().as_secs_f64();
    if failures > 0 {
        return Err(format!("{failures} creates of the preload failed"));
    }
    // A poller marks the moments a snapshot file is being written; a
    // sample is "during" if a snapshot was in progress when it was sent
    // or when it completed (or any poll between).
    let epoch = Instant::now();
    let snap_epoch = AtomicU64::new(0); // bumped at every poll that sees a snapshot in progress
    let snapshotting = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let snapshots_seen = AtomicU64::new(0);
    let mut during = Vec::new();
    let mut without = Vec::new();
    let quiet = Duration::from_millis(a.quiet_ms);
    let mut poll_stats = (Vec::new(), 0, 0);
    std::thread::scope(|scope| -> Result<(), String> {
        let poller = scope.spawn(|| {
            let mut watch = SnapshotWatch::new(a.snapshot_dir.clone(), quiet);
            let mut began: Option<Instant> = None;
            let mut windows_ms = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let now = watch.poll(t);
                if now {
                    snap_epoch.fetch_add(1, Ordering::Relaxed);
                }
                match (now, began) {
                    (true, None) => {
                        snapshots_seen.fetch_add(1, Ordering::Relaxed);
                        began = Some(t);
                    }
                    (false, Some(b)) => {
                        windows_ms.push(t.duration_since(b).as_secs_f64() * 1e3);
                        began = None;
                    }
                    _ => {}
                }
                snapshotting.store(now, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            (windows_ms, watch.tmp_polls, watch.growth_polls)
        });
        let writer = zoocore::client::Client::connect(server, timeout).map_err(|e| format!("connect: {e}"))?;
        let interval = Duration::from_secs_f64(1.0 / a.rate.max(1) as f64);
        let end = Duration::from_secs_f64(a.duration.max(1.0));
        let mut next = Duration::ZERO;
        let mut i = 0u64;
        let result = loop {
            let now = epoch.elapsed();
            if now >= end {
                break Ok(());
            }
            if next > now {
                std::thread::sleep(next - now);
            }
            let (busy_before, epoch_before) =
                (snapshotting.load(Ordering::Relaxed), snap_epoch.load(Ordering::Relaxed));
            let sent = Instant::now();
            if let Err(e) = writer.set_data(&format!("{parent}/n{}", i % 1000), &value, -1) {
                break Err(format!("setData: {e}"));
            }
            let us = sent.elapsed().as_micros() as u64;
            let busy = busy_before
                || snapshotting.load(Ordering::Relaxed)
                || snap_epoch.load(Ordering::Relaxed) != epoch_before;
            if busy {
                during.push(us);
            } else {
                without.push(us);
            }
            i += 1;
            next += interval;
        };
        stop.store(true, Ordering::Relaxed);
        poll_stats = poller.join().map_err(|_| "the snapshot poller panicked".to_string())?;
        result
    })?;
    let (windows_ms, tmp_polls, growth_polls) = poll_stats;
    let (d50, d99, dmax, dn) = percentiles_us(during);
    let (w50, w99, wmax, wn) = percentiles_us(without);
    let seen = snapshots_seen.load(Ordering::Relaxed);
    let windows: Vec<String> = windows_ms.iter().map(|ms| format!("{ms:.0}")).collect();
    if a.out.json {
        let line = JsonObject::default()
            .str("kind", "snapshot_tail")
            .str("label", &a.out.label)
            .str("server", &a.server)
            .int("znodes", a.znodes)
            .int("rate", a.rate)
            .num("duration_s", Some(a.duration.max(1.0)))
            .num("preload_s", Some(preload_s))
            .int("snapshots_seen", seen)
            .raw("snapshot_windows_ms", format!("[{}]", windows.join(",")))
            .int("tmp_polls", tmp_polls)
            .int("growth_polls", growth_polls)
            .int("quiet_ms", a.quiet_ms)
            .int("during_n", dn as u64)
            .int("during_p50_us", d50)
            .int("during_p99_us", d99)
            .int("during_max_us", dmax)
            .int("without_n", wn as u64)
            .int("without_p50_us", w50)
            .int("without_p99_us", w99)
            .int("without_max_us", wmax)
            .build();
        println!("{line}");
    } else {
        println!("preload {} znodes in {preload_s:.1} s; {seen} snapshot(s) seen during the load", a.znodes);
        println!(
            "snapshot windows ms [{}] ({tmp_polls} polls saw a .tmp, {growth_polls} a growing snapshot file)",
            windows.join(", ")
        );
        println!("without a snapshot: n {wn}  p50 {w50} us  p99 {w99} us  max {wmax} us");
        println!("during a snapshot:  n {dn}  p50 {d50} us  p99 {d99} us  max {dmax} us");
    }
    Ok(())
}

fn resolve_all(servers: &[String]) -> Result<Vec<SocketAddr>, String> {
    servers.iter().map(|s| resolve(s)).collect()
}

fn cmd_ensemble_wait(a: EnsembleWaitArgs) -> Result<(), String> {
    let servers = resolve_all(&a.server)?;
    let started = std::time::Instant::now();
    let (leader, states) = ensemble::wait_settled(&servers, a.same_zxid, seconds(a.timeout, "--timeout")?)?;
    let modes: Vec<String> = states.iter().map(|s| json_str(&s.mode)).collect();
    let zxids: Vec<String> = states.iter().map(|s| s.zxid.map_or("null".into(), |z| z.to_string())).collect();
    if a.out.json {
        let line = JsonObject::default()
            .str("kind", "ensemble")
            .str("label", &a.out.label)
            .str("server", &a.server.join(","))
            .int("leader_index", leader as u64)
            .raw("modes", format!("[{}]", modes.join(",")))
            .raw("zxids", format!("[{}]", zxids.join(",")))
            .num("waited_s", Some(started.elapsed().as_secs_f64()))
            .build();
        println!("{line}");
    } else {
        for (addr, s) in a.server.iter().zip(&states) {
            println!("{addr}  {}  zxid {}", s.mode, s.zxid.map_or("-".into(), |z| format!("0x{z:x}")));
        }
        println!("leader: {} (index {leader})", a.server[leader]);
    }
    Ok(())
}

fn cmd_failover(a: FailoverArgs) -> Result<(), String> {
    let cfg = ensemble::FailoverConfig {
        servers: resolve_all(&a.server)?,
        pids: a.server_pid.clone(),
        attempt_timeout: Duration::from_millis(a.attempt_timeout_ms.max(1)),
        retry_pause: Duration::from_millis(a.retry_pause_ms),
        give_up: seconds(a.give_up, "--give-up")?,
    };
    let r = ensemble::run_failover(&cfg)?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if a.out.json {
        let failures: Vec<String> = r.failures.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
        let line = JsonObject::default()
            .str("kind", "failover")
            .str("label", &a.out.label)
            .str("server", &a.server.join(","))
            .int("killed_index", r.killed_index as u64)
            .int("killed_pid", r.killed_pid)
            .num("first_write_ms", Some(ms(r.first_write)))
            .num("first_session_ms", r.first_session.map(ms))
            .int("attempts", r.attempts)
            .int("answered_by", r.answered_by as u64)
            .int("attempt_timeout_ms", a.attempt_timeout_ms)
            .int("retry_pause_ms", a.retry_pause_ms)
            .raw("failures", format!("{{{}}}", failures.join(",")))
            .build();
        println!("{line}");
    } else {
        println!("killed       {} (pid {}, the leader)", a.server[r.killed_index], r.killed_pid);
        println!("first write  {:.1} ms after the kill, on {}", ms(r.first_write), a.server[r.answered_by]);
        if let Some(s) = r.first_session {
            println!("first session {:.1} ms after the kill", ms(s));
        }
        println!("attempts     {} (failures: {:?})", r.attempts, r.failures);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_watch_sees_tmp_files_and_growing_snapshots() {
        let dir = std::env::temp_dir().join(format!("zoocore-bench-snapwatch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let quiet = Duration::from_millis(50);
        let mut watch = SnapshotWatch::new(dir.clone(), quiet);
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // A snapshot already there at the first poll is not one in progress.
        std::fs::write(dir.join("snapshot.1"), b"old").unwrap();
        assert!(!watch.poll(at(0)));
        assert!(!watch.poll(at(10)));
        // Written in place (Apache): new, then growing, then quiet.
        std::fs::write(dir.join("snapshot.2"), b"a").unwrap();
        assert!(watch.poll(at(20)));
        std::fs::write(dir.join("snapshot.2"), b"ab").unwrap();
        assert!(watch.poll(at(30)));
        assert!(watch.poll(at(70)), "within the quiet window after the last growth");
        assert!(!watch.poll(at(81)), "quiet for longer than the window");
        // zoocore's temporary file, whatever its size does.
        std::fs::write(dir.join("snapshot.3.tmp"), b"x").unwrap();
        assert!(watch.poll(at(200)));
        assert!(watch.poll(at(400)));
        std::fs::remove_file(dir.join("snapshot.3.tmp")).unwrap();
        assert!(!watch.poll(at(600)));
        assert_eq!((watch.tmp_polls, watch.growth_polls), (2, 2));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
