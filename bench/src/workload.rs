//! The load generator proper: sessions spread over worker threads, each
//! session keeping `outstanding` requests pipelined (closed loop), or
//! requests sent on a fixed schedule (open loop, `--rate`) with latency
//! measured from the intended send time so a stalled server cannot hide
//! its stall (coordinated-omission correction).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use zoocore::client::{first_error, Client, ClientError, Pending, Transport};
use zoocore::proto::records::{
    CreateRequest, MultiOp, PathVersion, PathWatch, ReplyHeader, Request, Response, SetDataRequest,
};
use zoocore::proto::types::{op, open_acl_unsafe, CreateMode, ErrorCode};

use crate::procfs;
use crate::report::{new_histogram, LatencySummary};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// create of a fresh persistent znode per op
    Create,
    /// setData on a random preloaded key
    Set,
    /// getData on a random preloaded key
    Get,
    /// exists on a random preloaded key
    Exists,
    /// getChildren of the parent of the preloaded keys
    Children,
    /// delete of preloaded keys, one per op (stops when --keys are used up)
    Delete,
    /// multi {create fresh, delete it}
    Multi,
    /// getData (--read-pct) or setData on random preloaded keys
    Mixed,
    /// create ephemeral + exists with watch + delete (the watch fires); one op = the three requests
    EphemeralWatch,
    /// connect a new session + closeSession; one op per pair, --threads at a time
    ConnectStorm,
    /// ping (xid -2): the server's minimal round trip
    Ping,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Exists => "exists",
            Workload::Children => "children",
            Workload::Delete => "delete",
            Workload::Multi => "multi",
            Workload::Mixed => "mixed",
            Workload::EphemeralWatch => "ephemeral-watch",
            Workload::ConnectStorm => "connect-storm",
            Workload::Ping => "ping",
        }
    }

    fn needs_keys(self) -> bool {
        matches!(
            self,
            Workload::Set | Workload::Get | Workload::Exists | Workload::Children | Workload::Delete | Workload::Mixed
        )
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Plaintext or TLS, for every session of the run.
    pub transport: Transport,
    /// Load sessions are spread round-robin over these (an ensemble's
    /// members); the setup session (preload) uses the first.
    pub servers: Vec<SocketAddr>,
    pub workload: Workload,
    pub value_size: usize,
    pub keys: u64,
    pub sessions: usize,
    pub outstanding: usize,
    /// Length of the measured window (after warm-up); the run also stops at `ops`.
    pub duration: Duration,
    pub ops: Option<u64>,
    pub warmup: Duration,
    /// Total target rate in ops/s (open loop); `None` = closed loop.
    pub rate: Option<f64>,
    pub threads: usize,
    pub read_pct: u32,
    /// Server processes whose CPU time is summed over the measured window
    /// (all members of an ensemble).
    pub server_pids: Vec<u32>,
    pub session_timeout: Duration,
    pub progress: bool,
    /// Work around a zoocore bug (reads pipelined behind writes on one
    /// session get their replies out of order and the server drops the
    /// connection): a session never has reads and writes in flight at once.
    pub read_write_barrier: bool,
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub ops: u64,
    pub errors: BTreeMap<String, u64>,
    pub window: Duration,
    pub latency: LatencySummary,
    /// Successful measured ops completed in each second of the window.
    pub timeline: Vec<u64>,
    pub server_cpu_seconds: Option<f64>,
    /// Client process CPU over the window, in cores (1.0 = one core busy).
    pub client_cpu_cores: f64,
    /// Highest single-thread CPU share of the client over the window.
    pub client_busiest_thread: f64,
    /// Open loop: sends that left more than 1 ms after their intended time.
    pub late_sends: u64,
    pub sent: u64,
    pub max_send_lag: Duration,
    pub watch_events: u64,
    pub threads_used: usize,
    /// TLS runs: the protocol and cipher suite the setup session negotiated.
    pub tls_session: Option<String>,
}

impl RunResult {
    pub fn throughput(&self) -> f64 {
        let s = self.window.as_secs_f64();
        if s > 0.0 {
            self.ops as f64 / s
        } else {
            0.0
        }
    }

    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.ops > 0).then(|| cpu * 1e6 / self.ops as f64)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Why the numbers may describe the client rather than the server.
    pub fn saturation_notes(&self, cfg: &RunConfig) -> Vec<String> {
        let mut notes = Vec::new();
        if self.client_busiest_thread > 0.9 {
            notes.push(format!(
                "a client thread was on CPU {:.0}% of the window (client-bound; try more --threads/--sessions)",
                self.client_busiest_thread * 100.0
            ));
        }
        if self.client_cpu_cores > 0.9 * procfs::nproc() as f64 {
            notes.push(format!("the client used {:.2} of {} cores", self.client_cpu_cores, procfs::nproc()));
        }
        if let Some(rate) = cfg.rate {
            if self.sent > 0 && self.late_sends * 100 > self.sent {
                notes.push(format!(
                    "open loop fell behind schedule: {} of {} sends more than 1 ms late (max lag {:.1} ms)",
                    self.late_sends,
                    self.sent,
                    self.max_send_lag.as_secs_f64() * 1e3
                ));
            }
            if self.throughput() < 0.95 * rate {
                notes.push(format!("achieved {:.0} ops/s of the {:.0} ops/s target", self.throughput(), rate));
            }
        }
        notes
    }
}

/// Decides, for each op about to be sent, whether it is warm-up, measured,
/// or past the end of the run.
struct RunClock {
    measure_start: Instant,
    end: Instant,
    ops_quota: Option<u64>,
    claimed: AtomicU64,
    stop: AtomicBool,
    /// Measured completions, for the progress line.
    completed: AtomicU64,
    delete_next: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    Warmup,
    Measured,
    Stop,
}

impl RunClock {
    fn claim(&self, at: Instant) -> Claim {
        if self.stop.load(Ordering::Relaxed) || at >= self.end {
            return Claim::Stop;
        }
        if at < self.measure_start {
            return Claim::Warmup;
        }
        if let Some(q) = self.ops_quota {
            if self.claimed.fetch_add(1, Ordering::Relaxed) >= q {
                self.stop.store(true, Ordering::Relaxed);
                return Claim::Stop;
            }
        }
        Claim::Measured
    }
}

/// Per-thread random numbers (xorshift64*): cheap and good enough to pick keys.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Builds the request(s) of one op.
struct OpGen {
    workload: Workload,
    base: String,
    keys: u64,
    read_pct: u32,
    value: Bytes,
    thread: usize,
    counter: u64,
    rng: Rng,
}

fn create_request(path: String, data: Bytes, mode: CreateMode) -> CreateRequest {
    CreateRequest { path, data: Some(data), acl: open_acl_unsafe(), flags: mode.flags(), ttl: None }
}

impl OpGen {
    fn key(&mut self) -> String {
        format!("{}/k{}", self.base, self.rng.below(self.keys))
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{}/{}{}-{}", self.base, prefix, self.thread, self.counter)
    }

    /// The requests of the next op, or `None` when the workload has run out
    /// (delete: all preloaded keys deleted).
    fn next(&mut self, clock: &RunClock) -> Option<Vec<Request>> {
        let value = self.value.clone();
        Some(match self.workload {
            Workload::Create => {
                let path = self.fresh("c");
                vec![Request::Create { op: op::CREATE, req: create_request(path, value, CreateMode::Persistent) }]
            }
            Workload::Set => {
                let path = self.key();
                vec![Request::SetData(SetDataRequest { path, data: Some(value), version: -1 })]
            }
            Workload::Get => vec![Request::GetData(PathWatch { path: self.key(), watch: false })],
            Workload::Exists => vec![Request::Exists(PathWatch { path: self.key(), watch: false })],
            Workload::Children => vec![Request::GetChildren(PathWatch { path: self.base.clone(), watch: false })],
            Workload::Delete => {
                let i = clock.delete_next.fetch_add(1, Ordering::Relaxed);
                if i >= self.keys {
                    return None;
                }
                vec![Request::Delete(PathVersion { path: format!("{}/k{}", self.base, i), version: -1 })]
            }
            Workload::Multi => {
                let path = self.fresh("m");
                vec![Request::Multi(vec![
                    MultiOp::Create {
                        op: op::CREATE,
                        req: create_request(path.clone(), value, CreateMode::Persistent),
                    },
                    MultiOp::Delete(PathVersion { path, version: -1 }),
                ])]
            }
            Workload::Mixed => {
                let path = self.key();
                if self.rng.below(100) < self.read_pct as u64 {
                    vec![Request::GetData(PathWatch { path, watch: false })]
                } else {
                    vec![Request::SetData(SetDataRequest { path, data: Some(value), version: -1 })]
                }
            }
            Workload::EphemeralWatch => {
                let path = self.fresh("e");
                vec![
                    Request::Create { op: op::CREATE, req: create_request(path.clone(), value, CreateMode::Ephemeral) },
                    Request::Exists(PathWatch { path: path.clone(), watch: true }),
                    Request::Delete(PathVersion { path, version: -1 }),
                ]
            }
            Workload::Ping => vec![Request::Ping],
            Workload::ConnectStorm => return None,
        })
    }
}

/// Whether a request changes the tree (for the read/write barrier).
fn is_write(r: &Request) -> bool {
    !matches!(r, Request::GetData(_) | Request::Exists(_) | Request::GetChildren(_) | Request::Ping)
}

/// 0 = reads only, 1 = writes only, 2 = both (must run alone under the barrier).
fn op_class(reqs: &[Request]) -> u8 {
    let writes = reqs.iter().filter(|r| is_write(r)).count();
    if writes == 0 {
        0
    } else if writes == reqs.len() {
        1
    } else {
        2
    }
}

/// Requests of one op in flight.
struct InFlight {
    pendings: Vec<Pending>,
    /// Requests sent one at a time after `pendings` complete (barrier mode).
    rest: Vec<Request>,
    class: u8,
    intended: Instant,
    measured: bool,
}

/// Statistics one thread collects; merged at the end.
struct Stats {
    measure_start: Instant,
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ops: u64,
    last_done: Option<Instant>,
    timeline: Vec<u64>,
    late_sends: u64,
    sent: u64,
    max_send_lag: Duration,
    watch_events: u64,
}

impl Stats {
    fn new(measure_start: Instant) -> Stats {
        Stats {
            measure_start,
            hist: new_histogram(),
            errors: BTreeMap::new(),
            ops: 0,
            last_done: None,
            timeline: Vec::new(),
            late_sends: 0,
            sent: 0,
            max_send_lag: Duration::ZERO,
            watch_events: 0,
        }
    }

    /// Errors are counted in warm-up too: a run that lost its sessions
    /// early must not look clean.
    fn error(&mut self, name: String) {
        *self.errors.entry(name).or_insert(0) += 1;
    }

    fn complete(&mut self, clock: &RunClock, intended: Instant, measured: bool, outcome: Result<(), String>) {
        if !measured {
            if let Err(name) = outcome {
                self.error(name);
            }
            return;
        }
        let now = Instant::now();
        match outcome {
            Ok(()) => {
                let us = now.saturating_duration_since(intended).as_micros().max(1) as u64;
                self.hist.saturating_record(us);
                self.ops += 1;
                let second = now.saturating_duration_since(self.measure_start).as_secs() as usize;
                if self.timeline.len() <= second {
                    self.timeline.resize(second + 1, 0);
                }
                self.timeline[second] += 1;
                clock.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(name) => self.error(name),
        }
        self.last_done = Some(self.last_done.map_or(now, |t| t.max(now)));
    }

    fn merge(&mut self, other: Stats) {
        let _ = self.hist.add(&other.hist);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        self.ops += other.ops;
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (i, v) in other.timeline.into_iter().enumerate() {
            self.timeline[i] += v;
        }
        self.late_sends += other.late_sends;
        self.sent += other.sent;
        self.max_send_lag = self.max_send_lag.max(other.max_send_lag);
        self.watch_events += other.watch_events;
    }
}

fn code_name(code: i32) -> String {
    match ErrorCode::from_code(code) {
        Some(c) => c.to_string(),
        None => format!("Unknown({code})"),
    }
}

fn client_error_name(e: &ClientError) -> String {
    match e {
        ClientError::Keeper(c) => c.to_string(),
        ClientError::Io(e) => format!("Io({:?})", e.kind()),
        ClientError::Protocol(_) => "ProtocolError".into(),
        ClientError::ConnectionClosed => "ConnectionClosed".into(),
        ClientError::SessionExpired => "SessionExpired".into(),
        ClientError::Timeout => "Timeout".into(),
    }
}

fn reply_outcome(reply: Result<(ReplyHeader, Response), ClientError>) -> Result<(), String> {
    match reply {
        Ok((hdr, _)) if hdr.err != 0 => Err(code_name(hdr.err)),
        Ok((_, Response::Multi(results))) => match first_error(&results) {
            Some(code) => Err(code_name(code)),
            None => Ok(()),
        },
        Ok(_) => Ok(()),
        Err(e) => Err(client_error_name(&e)),
    }
}

/// Waits for every request of an op, then sends and waits for the `rest`
/// one by one; the first failure names the outcome.
fn wait_op(client: &Client, pendings: Vec<Pending>, rest: Vec<Request>) -> Result<(), String> {
    let mut outcome = Ok(());
    for p in pendings {
        let r = reply_outcome(p.wait());
        if outcome.is_ok() {
            outcome = r;
        }
    }
    for req in rest {
        let r = client.submit(req).map_err(|e| client_error_name(&e)).and_then(|p| reply_outcome(p.wait()));
        if outcome.is_ok() {
            outcome = r;
        }
    }
    outcome
}

fn submit_op(client: &Client, reqs: Vec<Request>) -> Result<Vec<Pending>, String> {
    reqs.into_iter().map(|r| client.submit(r).map_err(|e| client_error_name(&e))).collect()
}

/// A counting semaphore: the open-loop sender takes a permit per request
/// in flight, the collector returns it when the reply is in.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    fn new(n: usize) -> Permits {
        Permits { free: Mutex::new(n), cv: Condvar::new() }
    }
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
    }
}

struct Session {
    client: Arc<Client>,
    events: Option<mpsc::Receiver<zoocore::client::WatchedEvent>>,
}

impl Session {
    fn drain_events(&self, stats: &mut Stats) {
        if let Some(rx) = &self.events {
            stats.watch_events += rx.try_iter().count() as u64;
        }
    }
}

/// Closed loop: every session keeps `outstanding` ops in flight; the thread
/// waits for each session's oldest op in turn (replies come in order).
fn closed_loop_worker(
    sessions: Vec<Session>,
    mut gen: OpGen,
    outstanding: usize,
    barrier: bool,
    clock: &RunClock,
) -> Stats {
    let mut stats = Stats::new(clock.measure_start);
    let mut queues: Vec<VecDeque<InFlight>> = sessions.iter().map(|_| VecDeque::new()).collect();
    // Barrier mode: an op whose class differs from what is in flight waits here.
    let mut held: Vec<Option<(Vec<Request>, u8)>> = sessions.iter().map(|_| None).collect();
    // Fills the session's pipeline; false once the run is over for it.
    let fill = |session: &Session,
                queue: &mut VecDeque<InFlight>,
                held: &mut Option<(Vec<Request>, u8)>,
                gen: &mut OpGen,
                stats: &mut Stats| {
        while queue.len() < outstanding {
            let (mut reqs, class) = match held.take() {
                Some(h) => h,
                None => {
                    let Some(reqs) = gen.next(clock) else { return };
                    let class = op_class(&reqs);
                    (reqs, class)
                }
            };
            if barrier && queue.back().is_some_and(|f| f.class != class || class == 2) {
                *held = Some((reqs, class));
                return;
            }
            let now = Instant::now();
            let measured = match clock.claim(now) {
                Claim::Stop => return,
                Claim::Warmup => false,
                Claim::Measured => true,
            };
            let rest = if barrier && class == 2 { reqs.split_off(1) } else { Vec::new() };
            match submit_op(&session.client, reqs) {
                Ok(pendings) => queue.push_back(InFlight { pendings, rest, class, intended: now, measured }),
                Err(name) => {
                    stats.error(name);
                    return;
                }
            }
        }
    };
    for ((s, q), h) in sessions.iter().zip(queues.iter_mut()).zip(held.iter_mut()) {
        fill(s, q, h, &mut gen, &mut stats);
    }
    loop {
        let mut any = false;
        for ((s, q), h) in sessions.iter().zip(queues.iter_mut()).zip(held.iter_mut()) {
            if let Some(f) = q.pop_front() {
                any = true;
                let outcome = wait_op(&s.client, f.pendings, f.rest);
                stats.complete(clock, f.intended, f.measured, outcome);
                s.drain_events(&mut stats);
                fill(s, q, h, &mut gen, &mut stats);
            }
        }
        if !any {
            break;
        }
    }
    stats
}

/// Open loop: this thread sends its share of the rate on a fixed schedule,
/// round-robin over its sessions; one collector thread per session waits
/// for replies and records latency from the intended send time.
fn open_loop_worker(sessions: Vec<Session>, mut gen: OpGen, outstanding: usize, rate: f64, clock: &RunClock) -> Stats {
    let mut stats = Stats::new(clock.measure_start);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    std::thread::scope(|scope| {
        let mut lanes = Vec::new();
        let mut collectors = Vec::new();
        for s in &sessions {
            let permits = Arc::new(Permits::new(outstanding.max(1)));
            let (tx, rx) = mpsc::channel::<InFlight>();
            let p = permits.clone();
            let client = s.client.clone();
            collectors.push(scope.spawn(move || {
                let mut st = Stats::new(clock.measure_start);
                for f in rx {
                    let outcome = wait_op(&client, f.pendings, f.rest);
                    p.release();
                    st.complete(clock, f.intended, f.measured, outcome);
                }
                st
            }));
            lanes.push((s, permits, tx));
        }
        let mut next = Instant::now();
        let mut lane = 0usize;
        'send: loop {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            let measured = match clock.claim(next) {
                Claim::Stop => break,
                Claim::Warmup => false,
                Claim::Measured => true,
            };
            let (session, permits, tx) = &lanes[lane];
            lane = (lane + 1) % lanes.len();
            let Some(reqs) = gen.next(clock) else { break };
            permits.acquire();
            let lag = Instant::now().saturating_duration_since(next);
            if measured {
                stats.sent += 1;
                if lag > Duration::from_millis(1) {
                    stats.late_sends += 1;
                }
                stats.max_send_lag = stats.max_send_lag.max(lag);
            }
            match submit_op(&session.client, reqs) {
                Ok(pendings) => {
                    let f = InFlight { pendings, rest: Vec::new(), class: 0, intended: next, measured };
                    if tx.send(f).is_err() {
                        break 'send;
                    }
                }
                Err(name) => {
                    permits.release();
                    stats.error(name);
                }
            }
            session.drain_events(&mut stats);
            next += interval;
        }
        drop(lanes);
        for c in collectors {
            if let Ok(st) = c.join() {
                stats.merge(st);
            }
        }
    });
    for s in &sessions {
        s.drain_events(&mut stats);
    }
    stats
}

/// Connection storm: each op opens a session and closes it.
fn connect_storm_worker(transport: &Transport, server: SocketAddr, timeout: Duration, clock: &RunClock) -> Stats {
    let mut stats = Stats::new(clock.measure_start);
    loop {
        let now = Instant::now();
        let measured = match clock.claim(now) {
            Claim::Stop => break,
            Claim::Warmup => false,
            Claim::Measured => true,
        };
        let outcome =
            Client::connect_via(transport, server, timeout).and_then(|c| c.close()).map_err(|e| client_error_name(&e));
        stats.complete(clock, now, measured, outcome);
    }
    stats
}

/// Creates `path`; an existing node is fine.
pub fn ensure_node(client: &Client, path: &str) -> Result<(), String> {
    match client.create(path, b"", &open_acl_unsafe(), CreateMode::Persistent) {
        Ok(_) | Err(ClientError::Keeper(ErrorCode::NodeExists)) => Ok(()),
        Err(e) => Err(format!("create {path}: {e}")),
    }
}

/// Creates `count` znodes named by `name(i)` with `value`, keeping `window`
/// requests in flight on `client`. Returns the number of failures.
pub fn pipelined_create(
    client: &Client,
    count: u64,
    window: usize,
    value: &Bytes,
    name: impl Fn(u64) -> String,
) -> Result<u64, String> {
    let mut inflight = VecDeque::with_capacity(window);
    let mut failures = 0u64;
    for i in 0..count {
        if inflight.len() >= window {
            if let Some(p) = inflight.pop_front() {
                failures += reply_outcome(Pending::wait(p)).is_err() as u64;
            }
        }
        let req =
            Request::Create { op: op::CREATE, req: create_request(name(i), value.clone(), CreateMode::Persistent) };
        inflight.push_back(client.submit(req).map_err(|e| format!("create: {e}"))?);
    }
    for p in inflight {
        failures += reply_outcome(p.wait()).is_err() as u64;
    }
    Ok(failures)
}

/// A name unique to this run, so runs can share a server.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

fn usage_cpu_seconds() -> f64 {
    procfs::process_cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// CPU seconds used so far by all of `pids`; None when any cannot be read
/// (a partial sum would understate the cost).
fn servers_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| procfs::process_cpu_seconds(p)).sum()
}

pub fn run(cfg: &RunConfig) -> Result<RunResult, String> {
    let first = *cfg.servers.first().ok_or("no server address")?;
    let connect = |what: &str, server: SocketAddr| {
        Client::connect_via(&cfg.transport, server, cfg.session_timeout)
            .map_err(|e| format!("{what}: connect {server}: {e}"))
    };
    let setup = connect("setup session", first)?;
    let tls_session = setup.tls_session().map(str::to_owned);
    let base = format!("/bench/{}", run_id());
    ensure_node(&setup, "/bench")?;
    ensure_node(&setup, &base)?;
    let value = Bytes::from(vec![b'x'; cfg.value_size]);
    if cfg.workload.needs_keys() {
        let failures = pipelined_create(&setup, cfg.keys, 512, &value, |i| format!("{base}/k{i}"))?;
        if failures > 0 {
            return Err(format!("preloading {} keys: {failures} creates failed", cfg.keys));
        }
    }

    let storm = cfg.workload == Workload::ConnectStorm;
    let threads = if storm { cfg.threads.max(1) } else { cfg.threads.clamp(1, cfg.sessions.max(1)) };
    let mut per_thread: Vec<Vec<Session>> = (0..threads).map(|_| Vec::new()).collect();
    if !storm {
        for i in 0..cfg.sessions.max(1) {
            let server = cfg.servers[i % cfg.servers.len()];
            let client = connect("load session", server)?;
            // On another ensemble member the preloaded keys may not have
            // arrived yet: catch up with the leader before the first read.
            if server != first {
                client.sync(&base).map_err(|e| format!("sync on {server}: {e}"))?;
            }
            let events = client.events();
            per_thread[i % threads].push(Session { client: Arc::new(client), events });
        }
    }
    let mut all_clients: Vec<Arc<Client>> =
        per_thread.iter().flat_map(|v| v.iter().map(|s| s.client.clone())).collect();

    let start = Instant::now();
    let measure_start = start + cfg.warmup;
    let clock = Arc::new(RunClock {
        measure_start,
        end: measure_start + cfg.duration,
        ops_quota: cfg.ops,
        claimed: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        completed: AtomicU64::new(0),
        delete_next: AtomicU64::new(0),
    });

    let mut handles: Vec<JoinHandle<Stats>> = Vec::new();
    for (t, sessions) in per_thread.into_iter().enumerate() {
        let clock = clock.clone();
        let gen = OpGen {
            workload: cfg.workload,
            base: base.clone(),
            keys: cfg.keys,
            read_pct: cfg.read_pct,
            value: value.clone(),
            thread: t,
            counter: 0,
            rng: Rng::new(t as u64 + 1 + start.elapsed().subsec_nanos() as u64),
        };
        let cfg = cfg.clone();
        let h = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                if cfg.workload == Workload::ConnectStorm {
                    connect_storm_worker(&cfg.transport, first, cfg.session_timeout, &clock)
                } else if let Some(rate) = cfg.rate {
                    open_loop_worker(sessions, gen, cfg.outstanding, rate / threads as f64, &clock)
                } else {
                    closed_loop_worker(sessions, gen, cfg.outstanding, cfg.read_write_barrier, &clock)
                }
            })
            .map_err(|e| format!("spawn worker: {e}"))?;
        handles.push(h);
    }

    // Warm-up, then snapshot CPU counters at the start of the measured window.
    while Instant::now() < measure_start && !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(5).min(measure_start.saturating_duration_since(Instant::now())));
    }
    let server_cpu_before = servers_cpu_seconds(&cfg.server_pids);
    let threads_before = procfs::own_thread_cpu_seconds();
    let client_cpu_before = usage_cpu_seconds();
    let window_start = Instant::now();

    let mut last_report = window_start;
    let mut last_count = 0u64;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        if cfg.progress && last_report.elapsed() >= Duration::from_secs(1) {
            let done = clock.completed.load(Ordering::Relaxed);
            let dt = last_report.elapsed().as_secs_f64();
            eprintln!(
                "[{:>5.1}s] {} {:>10.0} ops/s  ({} ops measured)",
                window_start.elapsed().as_secs_f64(),
                cfg.workload.name(),
                (done - last_count) as f64 / dt,
                done
            );
            last_report = Instant::now();
            last_count = done;
        }
    }
    let server_cpu_after = servers_cpu_seconds(&cfg.server_pids);
    let threads_after = procfs::own_thread_cpu_seconds();
    let client_cpu_after = usage_cpu_seconds();
    let window_wall = window_start.elapsed().as_secs_f64();

    let mut total = Stats::new(measure_start);
    for h in handles {
        match h.join() {
            Ok(st) => total.merge(st),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    // Closing sessions is not measured; a failure here does not change the figures.
    let _ = setup.close();
    for c in all_clients.drain(..) {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.close();
        }
    }

    let window = total.last_done.map(|t| t.saturating_duration_since(measure_start)).unwrap_or(Duration::ZERO);
    Ok(RunResult {
        ops: total.ops,
        errors: total.errors,
        window,
        latency: LatencySummary::of(&total.hist),
        timeline: total.timeline,
        server_cpu_seconds: match (server_cpu_before, server_cpu_after) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        },
        client_cpu_cores: if window_wall > 0.0 { (client_cpu_after - client_cpu_before) / window_wall } else { 0.0 },
        client_busiest_thread: procfs::busiest_thread_fraction(&threads_before, &threads_after, window_wall),
        late_sends: total.late_sends,
        sent: total.sent,
        max_send_lag: total.max_send_lag,
        watch_events: total.watch_events,
        threads_used: threads,
        tls_session,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(7);
        for _ in 0..10_000 {
            assert!(r.below(13) < 13);
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn clock_quota_stops_after_n_measured_ops() {
        let now = Instant::now();
        let clock = RunClock {
            measure_start: now,
            end: now + Duration::from_secs(60),
            ops_quota: Some(3),
            claimed: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            completed: AtomicU64::new(0),
            delete_next: AtomicU64::new(0),
        };
        let t = now + Duration::from_millis(1);
        assert!((0..3).all(|_| clock.claim(t) == Claim::Measured));
        assert!(clock.claim(t) == Claim::Stop);
        let before = now.checked_sub(Duration::from_millis(1));
        if let Some(b) = before {
            // Stop wins once set, even during warm-up.
            assert!(clock.claim(b) == Claim::Stop);
        }
    }
}
