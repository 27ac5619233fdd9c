//! The running server: glommio executors and the channels between them.
//!
//! Shape (see docs/architecture.md):
//! - `worker_shard`: N executors, each pinned to a core, each with its own
//!   SO_REUSEPORT listener; they own connections, sessions bound to them,
//!   watches, and a tree view.
//! - `commit_shard`: one executor that owns the tree, zxids, sessions and
//!   the order of the log; it may share a core with a worker.
//! - `log_writer`: the log thread, which owns the log files and makes each
//!   write durable while the commit shard goes on.
//! - `messages`: everything that crosses between them.
//! - `admin` (+ `admin_report`, `admin_watches`, `prometheus`): the AdminServer and the
//!   Prometheus endpoint, as tasks on worker 0.

pub mod admin;
pub mod admin_report;
pub mod admin_watches;
pub mod commit_shard;
pub mod conn_limit;
pub mod connection;
pub mod disk_log;
pub mod dump_pieces;
pub mod election_net;
pub mod fourlw;
pub mod jks;
pub mod log_writer;
pub mod messages;
pub mod pending_requests;
pub mod prometheus;
pub mod quorum_metrics;
pub mod quorum_net;
pub mod quorum_peer;
pub mod quorum_sasl;
pub mod quorum_tls;
pub mod read_only;
pub mod recovery;
pub mod snapshots;
pub mod stats;
pub mod sync_bench;
pub mod tls;
pub mod truncate;
pub mod view_slot;
pub mod worker_shard;
pub mod x509_v1;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::{local_channel, shared_channel};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use commit_shard::CommitShard;
use conn_limit::ConnectionLimiter;
use messages::{FromCommit, ToCommit};
use stats::ServerStats;
use worker_shard::WorkerShard;

/// Depth of each cross-shard channel; a full channel makes the sender wait.
const SHARD_CHANNEL_DEPTH: usize = 4096;
/// io_uring registered buffer memory per executor: glommio's default
/// (10 MiB) is more than the server needs for sockets.
const EXECUTOR_IO_MEMORY: usize = 1 << 20;
/// Profiling only (scripts/profile-instructions.sh): executors poll instead
/// of parking in io_uring_enter. Valgrind 3.19 holds its big lock across that
/// syscall, so a parked executor would stall every other thread under callgrind.
const SPIN_INSTEAD_OF_PARK_ENV: &str = "ZOOCORE_PROFILE_SPIN_INSTEAD_OF_PARK";

/// A shard's executor, pinned to `core`.
fn executor_builder(core: usize, name: &str) -> LocalExecutorBuilder {
    let builder = LocalExecutorBuilder::new(Placement::Fixed(core)).name(name).io_memory(EXECUTOR_IO_MEMORY);
    if std::env::var_os(SPIN_INSTEAD_OF_PARK_ENV).is_some() {
        builder.spin_before_park(Duration::from_secs(3600))
    } else {
        builder
    }
}

/// Milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `ulimit -l` in effect, for error messages about io_uring start-up.
pub fn memlock_limit_description() -> String {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 {
        return "unknown".into();
    }
    let fmt =
        |v: libc::rlim_t| if v == libc::RLIM_INFINITY { "unlimited".to_string() } else { format!("{} KiB", v / 1024) };
    format!("soft {}, hard {}", fmt(lim.rlim_cur), fmt(lim.rlim_max))
}

/// Fails if another process listens on `addr`. The shards bind with
/// SO_REUSEPORT, which lingering connections of a previous run (killed
/// or not) do not block; so does this check. A listener without
/// SO_REUSEPORT fails the bind; a live listener with it (another zoocore,
/// which would silently share the port) answers a connect.
fn port_is_free(addr: SocketAddr) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    drop(socket);
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
            addr.port(),
        )
    } else {
        addr
    };
    // A process killed while an io_uring accept was pending leaves its
    // listener answering until the kernel tears the ring down, a few ms
    // after the process is reaped (up to ~20 ms measured): a listener that
    // keeps answering for this long belongs to a live server.
    let deadline = std::time::Instant::now() + DYING_LISTENER_WAIT;
    loop {
        let Ok(stream) = std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200)) else {
            return Ok(());
        };
        // A connect to a free port in the ephemeral range can land on itself
        // (TCP simultaneous open); that is no listener.
        if stream.local_addr().ok() == stream.peer_addr().ok() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!(
                    "another server is listening there (probe {:?} -> {:?})",
                    stream.local_addr().ok(),
                    stream.peer_addr().ok()
                ),
            ));
        }
        drop(stream);
        std::thread::sleep(DYING_LISTENER_PROBE_INTERVAL);
    }
}

/// How long start-up waits for a listener that answers to go away before
/// taking it for another server's (see `port_is_free`).
const DYING_LISTENER_WAIT: Duration = Duration::from_millis(500);
const DYING_LISTENER_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// A shard's SO_REUSEPORT client listener (as glommio's `TcpListener::bind`
/// makes it, plus SO_REUSEADDR) and a second handle on the same socket, kept
/// to shut the listener down at stop: glommio's listener does not expose its fd.
///
/// SO_REUSEADDR because accepted connections inherit it, and so do their
/// TIME-WAIT remains after we close them: without it, a server that binds
/// with SO_REUSEADDR only (Apache ZooKeeper, most servers) gets "Address
/// already in use" on this port for up to 60 s after zoocore stops.
fn bind_client_listener(addr: SocketAddr) -> std::io::Result<(glommio::net::TcpListener, socket2::Socket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    const LISTEN_BACKLOG: i32 = 1024;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let handle = socket.try_clone()?;
    // SAFETY: `into_raw_fd` hands over a listening socket's fd that nothing
    // else owns; the glommio listener closes it when dropped.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok((listener, handle))
}

/// How often an executor re-polls a shared-channel connect in progress.
const SHARED_CHANNEL_CONNECT_POLL: Duration = Duration::from_millis(5);

/// Awaits a glommio shared-channel `connect()`. glommio re-polls a pending
/// connect only when its executor runs a loop iteration, and the peer's
/// connect does not wake it: an executor with nothing else to do (the commit
/// shard at start-up) could sleep through its peer connecting and never
/// start (seen: an ensemble member stuck before its election port opened).
/// A short timer keeps the executor turning until the connect completes.
async fn connect_shared<T>(connect: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::or(connect, async {
        loop {
            glommio::timer::sleep(SHARED_CHANNEL_CONNECT_POLL).await;
        }
    })
    .await
}

/// How long a clean shutdown may take before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Set by SIGTERM/SIGINT; shards poll it.
pub static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Reads the JAAS file into `config.sasl.credentials`. zoo.cfg's
/// `java.security.auth.login.config` wins; otherwise the
/// `-Djava.security.auth.login.config=` of `SERVER_JVMFLAGS` or `JVMFLAGS`,
/// the variables zkServer.sh passes to Java, so a setup written for Apache
/// finds its file.
pub fn load_sasl_credentials(config: &mut Config) -> Result<(), String> {
    if config.sasl.jaas_path.is_none() {
        config.sasl.jaas_path = ["SERVER_JVMFLAGS", "JVMFLAGS"]
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find_map(|flags| crate::sasl::jaas_path_from_jvm_flags(&flags));
    }
    // A file written for quorum SASL alone need not have a client section.
    config.sasl.load_credentials(config.quorum_sasl.enable_sasl)?;
    if let Some(credentials) = &config.sasl.credentials {
        let users: Vec<&str> = credentials.user_names().collect();
        tracing::info!(jaas = config.sasl.jaas_path.as_deref().unwrap_or(""), section = %config.sasl.server_section, ?users, "SASL DIGEST-MD5 enabled");
    }
    Ok(())
}

/// Starts the shards and blocks until the server stops.
pub fn run(mut config: Config, repair: bool) -> Result<(), StartError> {
    // SASL (sasl::): the JAAS file is read now, so a bad one stops start-up.
    load_sasl_credentials(&mut config).map_err(StartError)?;
    let config = Arc::new(config);
    let cores: Vec<usize> =
        core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect()).unwrap_or_default();
    let cores = if cores.is_empty() { vec![0] } else { cores };
    let shard_count = config.shards.unwrap_or(cores.len()).max(1);
    let addr = SocketAddr::new(config.client_port_address, config.client_port);

    // Bind once up front so a busy port fails start-up with a clear message
    // (the shards bind their own SO_REUSEPORT listeners).
    port_is_free(addr).map_err(|e| StartError(format!("cannot listen on {addr}: {e}")))?;
    // TLS (server::tls): the stores are read now, so a bad one stops start-up.
    let client_tls = tls::ClientTls::load(&config.client_tls).map_err(StartError)?;
    // Quorum TLS (server::quorum_tls): likewise, for an ensemble member.
    if config.quorum.is_some() {
        quorum_tls::QuorumTransport::load(&config.quorum_tls).map_err(StartError)?;
        quorum_sasl::QuorumSasl::load(&config.quorum_sasl, config.sasl.jaas_path.as_deref()).map_err(StartError)?;
    }
    let secure_addr = match (&client_tls, config.client_tls.secure_client_port) {
        (Some(tls), Some(port)) => {
            let ip = config.client_tls.secure_client_port_address.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
            let secure = SocketAddr::new(ip, port);
            port_is_free(secure)
                .map_err(|e| StartError(format!("cannot listen on {secure} (secureClientPort): {e}")))?;
            Some((secure, tls.clone()))
        }
        _ => None,
    };
    let plain_transport = match (&client_tls, config.client_tls.port_unification) {
        (Some(tls), true) => tls::Transport::Unified(tls.clone()),
        _ => tls::Transport::Plain,
    };

    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError(format!("cannot create dataDir {}: {e}", config.data_dir.display())))?;
    let recovered = recovery::recover(&config.data_dir, &config.data_log_dir, repair)
        .map_err(|e| StartError(format!("recovery failed: {e}")))?;
    let sync_mode = log_writer::SyncMode::parse(&config.log_sync).unwrap_or(log_writer::SyncMode::Fdatasync);
    std::fs::create_dir_all(log_writer::log_dir(&config.data_log_dir)).map_err(|e| {
        StartError(format!("cannot create the log directory under {}: {e}", config.data_log_dir.display()))
    })?;
    let snapshotter = snapshots::Snapshotter::new(
        &config.data_dir,
        &config.data_log_dir,
        config.autopurge_snap_retain_count as usize,
        config.autopurge_purge_interval_ms > 0,
    )
    .map_err(|e| {
        StartError(format!("cannot create the snapshot directory under {}: {e}", config.data_dir.display()))
    })?;

    tracing::info!(
        %addr,
        shards = shard_count,
        cores = cores.len(),
        data_dir = %config.data_dir.display(),
        tick_ms = config.tick_time_ms,
        mode = match &config.quorum {
            Some(q) => format!("ensemble member server.{} of {}", q.my_id, q.servers.len()),
            None => "standalone".to_owned(),
        },
        "zoocore starting"
    );

    let stats = Arc::new(ServerStats::default());
    stats.set_last_zxid(recovered.last_zxid);
    // As the commit shard will set it: the workers (and the AdminServer on
    // worker 0) may answer before the commit shard has started.
    stats.set_mode(if config.quorum.is_some() { stats::ServerMode::Looking } else { stats::ServerMode::Standalone });
    let (initial_view, initial_zxid) = (recovered.tree.clone(), recovered.last_zxid);
    let limiter = Arc::new(ConnectionLimiter::default());
    let mut to_commit_rx = Vec::new();
    let mut from_commit_tx = Vec::new();
    let mut worker_ends = Vec::new();
    // Each worker's slot and flags beside its channel (`view_slot`).
    let gates: Vec<Arc<view_slot::WorkerGate>> = (0..shard_count).map(|_| Arc::default()).collect();
    for gate in &gates {
        let (tx, rx) = shared_channel::new_bounded::<ToCommit>(SHARD_CHANNEL_DEPTH);
        let (ftx, frx) = shared_channel::new_bounded::<FromCommit>(SHARD_CHANNEL_DEPTH);
        to_commit_rx.push(rx);
        from_commit_tx.push(ftx);
        worker_ends.push((tx, frx, gate.clone()));
    }

    let start_error = |what: &str, e: glommio::GlommioError<()>| {
        StartError(format!(
            "cannot start the {what} executor: {e} (io_uring needs locked memory; ulimit -l is {})",
            memlock_limit_description()
        ))
    };

    // The log thread owns the log files; the commit shard holds its handle.
    let (log_thread, log_endpoints) = log_writer::spawn_log_thread(log_writer::LogSettings {
        data_log_dir: config.data_log_dir.clone(),
        prealloc_bytes: config.pre_alloc_size_kb * 1024,
        mode: sync_mode,
        warn_threshold: Duration::from_millis(config.fsync_warning_threshold_ms),
    })
    .map_err(|e| StartError(format!("cannot start the log thread: {e}")))?;

    // The commit shard shares the last core: workers fill cores from 0.
    let commit_core = cores[cores.len() - 1];
    let commit_config = config.clone();
    let commit_stats = stats.clone();
    let commit = executor_builder(commit_core, "zk-commit")
        .spawn(move || async move {
            // Same order as the workers (ToCommit first, then FromCommit):
            // each connect waits for the peer's.
            let mut ins = Vec::new();
            for rx in to_commit_rx {
                ins.push(connect_shared(rx.connect()).await);
            }
            let mut outs = Vec::new();
            for tx in from_commit_tx {
                outs.push(connect_shared(tx.connect()).await);
            }
            tracing::debug!(workers = outs.len(), "commit shard connected to its workers");
            let events = commit_shard::EventQueue::start(ins);
            let wake: Rc<dyn Fn()> = {
                let events = events.clone();
                Rc::new(move || events.push(commit_shard::Event::LogDurable))
            };
            let log = log_writer::LogHandle::connect(log_endpoints, recovered.last_zxid, wake).await;
            CommitShard::new(commit_config, outs, gates, commit_stats, recovered, log, snapshotter).run(events).await;
        })
        .map_err(|e| start_error("commit shard", e))?;

    let mut workers = Vec::new();
    for (index, (tx, frx, gate)) in worker_ends.into_iter().enumerate() {
        let core = cores[index % cores.len()];
        let config = config.clone();
        let limiter = limiter.clone();
        let stats = stats.clone();
        let view = initial_view.clone();
        let plain_transport = plain_transport.clone();
        let secure_addr = secure_addr.clone();
        let handle = executor_builder(core, &format!("zk-worker-{index}"))
            .spawn(move || async move {
                let (listener, listening_socket) = match bind_client_listener(addr) {
                    Ok(pair) => pair,
                    Err(e) => {
                        // A server with a shard not listening would be half deaf.
                        tracing::error!(%addr, error = %e, shard = index, "cannot listen; stopping");
                        std::process::exit(1);
                    }
                };
                let mut listeners = vec![(listener, plain_transport)];
                let mut listening_sockets = vec![listening_socket];
                if let Some((secure, tls)) = secure_addr {
                    match bind_client_listener(secure) {
                        Ok((listener, socket)) => {
                            listeners.push((listener, tls::Transport::Tls(tls)));
                            listening_sockets.push(socket);
                        }
                        Err(e) => {
                            tracing::error!(addr = %secure, error = %e, shard = index, "cannot listen on secureClientPort; stopping");
                            std::process::exit(1);
                        }
                    }
                }
                let to_commit = connect_shared(tx.connect()).await;
                let from_commit = connect_shared(frx.connect()).await;
                let (stop_tx, stop_rx) = local_channel::new_bounded::<()>(1);
                glommio::spawn_local(async move {
                    while !STOP.load(Ordering::Relaxed) {
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                    }
                    let _ = stop_tx.try_send(());
                })
                .detach();
                let shard = WorkerShard::new(index, config, to_commit, gate, limiter, stats, shard_count);
                shard.install_view(view, initial_zxid);
                // The AdminServer and /metrics live on worker 0 (server::admin).
                let http = if index == 0 { admin::start(&shard) } else { admin::HttpEndpoints::default() };
                shard.run(listeners, from_commit, Rc::new(stop_rx)).await;
                http.shutdown();
                // The glommio listener is closed, but the accept still in
                // flight on io_uring holds the socket until the kernel tears
                // the ring down, asynchronously, after the process is gone:
                // for milliseconds the port would still take connections
                // (and a restart's probe would see "another server").
                // shutdown(2) takes it out of LISTEN now.
                for socket in listening_sockets {
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                }
            })
            .map_err(|e| start_error("worker shard", e))?;
        workers.push(handle);
    }
    match &secure_addr {
        Some((secure, _)) => tracing::info!(%addr, secure_addr = %secure, "serving clients (TLS on secureClientPort)"),
        None => tracing::info!(%addr, "serving clients"),
    }

    for w in workers {
        let _ = w.join();
    }
    tracing::debug!("worker shards stopped");
    let _ = commit.join();
    let _ = log_thread.join();
    tracing::info!("zoocore stopped");
    Ok(())
}

/// Installs SIGTERM/SIGINT handlers that ask the shards to stop.
pub fn install_signal_handlers() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new().name("zk-signals".into()).spawn(move || {
        if let Some(sig) = signals.forever().next() {
            tracing::info!(signal = sig, "shutting down");
            STOP.store(true, Ordering::Relaxed);
            // Every acknowledged write is already durable, so a shutdown that
            // hangs (an executor waiting on a stuck io_uring operation) is
            // cut short rather than left running.
            std::thread::sleep(SHUTDOWN_GRACE);
            tracing::warn!(grace_ms = SHUTDOWN_GRACE.as_millis() as u64, "shutdown did not finish in time; exiting");
            std::process::exit(0);
        }
    })?;
    Ok(())
}
