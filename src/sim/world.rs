//! The simulated world: one thread, one seed, one clock (u64 ms). A
//! time-ordered event queue drives the servers (`peer`), the network
//! (`net`), the disks' completions, the clients and the faults, and the
//! checkers (`oracle`) watch everything. Same seed, same events, same
//! trace.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::linearize::OpKind;
use super::net::{ConnId, Dir, SimNet};
use super::oracle::{Failure, Oracle};
use super::peer::{Server, SIM_CLIENT_SESSION};
use super::registers::{self, Registers, WriteAnswer};
use super::rng::{fnv1a, SimRng};
use super::sessions::{ClientState, SessionClient, SessionOracle, SessionReply};
use crate::tree::WriteOp;
use crate::zab::election_wire::{quorum_config_text, LearnerType, QuorumServerSpec};
use crate::zab::ensemble::{Ensemble, Sid};

/// How many trace lines a failure report shows.
pub const TRACE_TAIL_LINES: usize = 60;
/// How often a held (partitioned) direction is retried, ms.
const BLOCKED_RETRY_MS: u64 = 50;
/// Keys the clients write.
const CLIENT_KEYS: u64 = 6;
/// How often a session client's ephemeral create is followed at once by a
/// move to another server (`SimConfig::moves`), percent.
const SESSION_MOVE_PERCENT: u64 = 30;
/// Chance that a learner's packet to a leader still establishing has a
/// client write right behind it.
const EARLY_WRITE_PERCENT: u64 = 25;

/// Everything a run is made of; `SimConfig::from_seed` draws the knobs.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub servers: usize,
    /// The run stops at this simulated time.
    pub duration_ms: u64,
    /// Faults are injected before this time; at it everything heals.
    pub fault_end_ms: u64,
    /// After healing, a write submitted then must be acknowledged within this.
    pub liveness_bound_ms: u64,
    /// Clients stop writing this long before the end (so servers converge).
    pub quiet_tail_ms: u64,
    pub faults: bool,
    /// Clients also sync + read (on any serving server), and one leader is
    /// paused long enough to be replaced and gets a sync as it resumes.
    /// Drawn from a separate random stream, so turning it off replays the
    /// runs of before it existed.
    pub sync_reads: bool,
    /// Clients also read without a sync (on any serving, running server),
    /// from their own random stream; off replays the runs from before.
    pub plain_reads: bool,
    /// Clients also set watches (exists with watch) and re-read the key,
    /// from their own random stream; off replays the runs from before.
    pub watches: bool,
    /// Session clients (createSession, pings, an ephemeral, close or walk
    /// away), from their own random stream; off replays the runs from before.
    pub sessions: bool,
    /// A session client that loses its connection reconnects (with its
    /// session id, as a real client does: revalidation) in most runs, from
    /// its own random stream; off replays the runs from before.
    pub reconnects: bool,
    /// A reconnecting workload's session client now and then moves to
    /// another server right after sending its ephemeral create, which may
    /// still be in flight on the old one: forwarded after the move is
    /// validated, it must be refused with SESSIONMOVED. From its own random
    /// stream; off leaves every other stream's draws as before moves.
    pub moves: bool,
    /// Clients also write to a leader that is still establishing, as a
    /// production client does (it connects to any server of its connect
    /// string): now and then a write arrives right behind a learner's
    /// packet, in the same turn as the NEWLEADER ACK that establishes the
    /// leader, and must be refused or given a zxid of the new epoch. From
    /// its own random stream.
    pub early_writes: bool,
    /// Register clients (write, compare-and-set, sync + read of `/r0`..)
    /// whose histories the `linearizable` checker judges, from their own
    /// random stream; off replays the runs from before.
    pub registers: bool,
    /// Log writes and fsyncs fail (the server exits), restarts read damaged
    /// logs and snapshots (a refused start is wiped by the operator).
    /// Drawn from their own stream, so turning them off (with
    /// `clock_jumps` off and no observers) replays the runs from before.
    pub disk_faults: bool,
    /// A server's clock jumps forward now and then.
    pub clock_jumps: bool,
    /// Observers beside the `servers` voters (sids after the voters').
    pub observers: usize,
    /// Periodic snapshots (production's `SnapshotPolicy`, snapCount drawn
    /// from the seed) and crashes while one is being written, all from
    /// their own stream: off replays the runs from before.
    pub snapshots: bool,
    pub knobs: Knobs,
}

/// Seeded parameters of the world.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub tick_ms: u64,
    pub init_limit_ticks: u64,
    pub sync_limit_ticks: u64,
    pub fsync_ms: (u64, u64),
    /// Chance (percent) that an fsync is slow, and how slow.
    pub slow_fsync_percent: u64,
    pub slow_fsync_ms: u64,
    pub net_latency_ms: (u64, u64),
    /// The leader's DIFF window as recovery fills it (production: 500).
    pub recent_window_txns: usize,
    /// Chance that a crash finds some unsynced log bytes written back.
    pub writeback_percent: u64,
    /// Chance that a crashed process's peers see its connections reset.
    pub crash_reset_percent: u64,
    pub write_gap_ms: (u64, u64),
    pub fault_gap_ms: (u64, u64),
    /// Per mille of log writes that fail (EIO / ENOSPC, on the write or
    /// its fsync) while faults are on.
    pub log_fault_permille: u64,
    /// Chance (percent) that a restart while faults are on reads a damaged
    /// log or snapshot (only when losing that disk is tolerable).
    pub read_fault_percent: u64,
    /// Gap between clock jumps (0: none) and the largest jump, ms.
    pub clock_jump_gap_ms: (u64, u64),
    pub clock_jump_max_ms: u64,
    /// How long the operator takes to wipe a server that refused to start.
    pub operator_wipe_ms: (u64, u64),
    /// A damaged read may hit the snapshot (its seal stops verifying).
    pub snapshot_damage: bool,
    /// Recovery checks every replayed txn's carried digest against the
    /// tree it was applied to, and refuses a jump past a snapshot it could
    /// not read, or refuses to start, as production's `recovery::recover`
    /// does. Off only to show the finding they fixed.
    pub recovery_checks_digests: bool,
    /// snapCount of production's `SnapshotPolicy` (0: no periodic snapshots).
    pub snap_count: u64,
    /// autopurge.snapRetainCount (production's minimum, 3).
    pub snap_retain: usize,
    /// Chance (percent) that a snapshot started while faults are on gets its
    /// server crashed at a random instant of its writing.
    pub snap_crash_percent: u64,
    /// Chance (percent) that a snapshot started while disk faults are on
    /// fails at one of its steps: EIO or ENOSPC on the temp file's write,
    /// its fsync, or the directory's fsync after the rename.
    pub snap_fault_percent: u64,
    /// A bug planted in the simulator's glue (never in production code),
    /// to show the checkers catch it.
    pub plant: Option<Plant>,
}

/// Known bugs the simulator can plant in its own glue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plant {
    /// The log writer reports each write durable as soon as it is appended,
    /// and never syncs it: leader and learners ack what only the page cache
    /// holds.
    AckBeforeFsync,
    /// The leader's glue answers syncs as Apache does (ZOOKEEPER-1675):
    /// once everything before them is committed, without
    /// `LeaderCore::sync`'s quorum round, so a leader that was replaced
    /// without knowing it answers from its stale state.
    SyncWithoutRound,
    /// The log treats a failed fdatasync as done (PostgreSQL's
    /// "fsyncgate"): it reports the write durable and goes on; the bytes
    /// never reach the device.
    IgnoreFsyncError,
    /// The leader's glue publishes (acknowledges) a batch once a minority
    /// of the voters hold it durably (itself and the learners whose ACKs
    /// reached it: `voters / 2` in all, so the leader alone of 3), ahead of
    /// `LeaderCore`'s quorum count.
    CommitOnMinority,
    /// A learner takes the leader's TRUNC as done without truncating: it
    /// keeps the txns the new leader's history does not have.
    SkipTrunc,
    /// Recovery's replay reads the first record of each log file after the
    /// first without applying it (an off-by-one at the file boundary): the
    /// zxid advances, the tree does not.
    ReplaySkipsRecord,
    /// A follower answers plain reads from the state it has logged, proposals
    /// it has not seen committed included.
    ReadPastCommit,
    /// A server fires a change's watch events only with the next change it
    /// makes visible: a reader can see the data before the event.
    EventAfterData,
    /// The session expiry deadline is a quarter of the session's timeout:
    /// a client pinging every third of it is expired while pinging.
    ExpireEarly,
    /// A SNAP carries the leader's live session table with its published
    /// tree (zoocore before session 7): the table runs ahead of the tree
    /// by the batches in flight, so a learner can keep a session whose
    /// createSession never commits, and learners never expire sessions.
    SnapLiveSessions,
    /// Revalidation knows only the sessions this server allocated (its id
    /// in the session id's top byte): a client reconnecting with a session
    /// another server created is told it expired.
    RevalidateOwnOnly,
    /// A periodic snapshot is renamed to its final name, and the log files
    /// it makes unnecessary are purged, before its bytes are fsynced.
    SnapshotBeforeDurable,
    /// The leader's glue checks a conditional setData's expected version
    /// against the published (committed) tree instead of the tree with the
    /// pending batches: two CASes in flight on one version both succeed.
    StaleCas,
    /// The leader's glue executes a session's write that the shared core
    /// refused with SESSIONMOVED (the simulator before `commit::Sequencer`:
    /// no holder tracking), so a stale request from the server a client
    /// left is applied.
    IgnoreSessionMoved,
    /// The leader takes client requests once its core is established
    /// (`LeaderCore::is_established`, which flips while the quorum's
    /// NEWLEADER ACK is read, mid-turn) instead of once the `Established`
    /// action raised `last_zxid` to the new epoch (`LeaderTerm::
    /// takes_client_requests`): a write right behind that ACK gets the old
    /// epoch's next zxid (production before 2026-12-04).
    RequestsBeforeEstablished,
}

impl Plant {
    pub const NAMES: &'static str =
        "ack-before-fsync, sync-without-round, ignore-fsync-error, commit-on-minority, skip-trunc, replay-skips-record, read-past-commit, event-after-data, expire-early, snap-live-sessions, revalidate-own-only, snapshot-before-durable, stale-cas, ignore-session-moved, requests-before-established";

    pub fn parse(name: &str) -> Option<Plant> {
        match name {
            "ack-before-fsync" => Some(Plant::AckBeforeFsync),
            "sync-without-round" => Some(Plant::SyncWithoutRound),
            "ignore-fsync-error" => Some(Plant::IgnoreFsyncError),
            "commit-on-minority" => Some(Plant::CommitOnMinority),
            "skip-trunc" => Some(Plant::SkipTrunc),
            "replay-skips-record" => Some(Plant::ReplaySkipsRecord),
            "read-past-commit" => Some(Plant::ReadPastCommit),
            "event-after-data" => Some(Plant::EventAfterData),
            "expire-early" => Some(Plant::ExpireEarly),
            "snap-live-sessions" => Some(Plant::SnapLiveSessions),
            "revalidate-own-only" => Some(Plant::RevalidateOwnOnly),
            "snapshot-before-durable" => Some(Plant::SnapshotBeforeDurable),
            "stale-cas" => Some(Plant::StaleCas),
            "ignore-session-moved" => Some(Plant::IgnoreSessionMoved),
            "requests-before-established" => Some(Plant::RequestsBeforeEstablished),
            _ => None,
        }
    }
}

impl SimConfig {
    /// The same world run for `duration_ms` (`zoocore-sim --duration-ms`):
    /// faults stop a third of the way in, clients go quiet at most a third
    /// before the end.
    pub fn with_duration(mut self, duration_ms: u64) -> SimConfig {
        self.duration_ms = duration_ms;
        self.fault_end_ms = duration_ms / 3;
        self.quiet_tail_ms = self.quiet_tail_ms.min(duration_ms / 3);
        self
    }

    /// Swarm mode: the server count too is drawn from the seed (from its
    /// own stream: 1, 3 or 5 voters), then `from_seed`.
    pub fn swarm(seed: u64) -> SimConfig {
        let mut r = SimRng::new(seed ^ 0x5A_4A53_0000_0005);
        let servers = *[1usize, 3, 3, 5].get(r.range(0, 3) as usize).unwrap_or(&3);
        SimConfig::from_seed(seed, servers)
    }

    pub fn from_seed(seed: u64, servers: usize) -> SimConfig {
        let mut r = SimRng::new(seed ^ 0x5EED_C0F1_6000_0001);
        let knobs = Knobs {
            tick_ms: 200,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            fsync_ms: (1, r.range(2, 15)),
            slow_fsync_percent: r.range(0, 5),
            slow_fsync_ms: r.range(50, 600),
            net_latency_ms: (1, r.range(2, 20)),
            recent_window_txns: *[3usize, 10, 40, 500].get(r.range(0, 3) as usize).unwrap_or(&500),
            writeback_percent: r.range(0, 60),
            crash_reset_percent: 70,
            write_gap_ms: (5, r.range(20, 120)),
            fault_gap_ms: (r.range(100, 500), r.range(800, 3000)),
            log_fault_permille: 0,
            read_fault_percent: 0,
            clock_jump_gap_ms: (0, 0),
            clock_jump_max_ms: 0,
            operator_wipe_ms: (500, 3_000),
            snapshot_damage: true,
            recovery_checks_digests: true,
            snap_count: 0,
            snap_retain: 3,
            snap_crash_percent: 0,
            snap_fault_percent: 0,
            plant: None,
        };
        // The faults added later draw from their own stream, so the knobs
        // above (and the runs without these faults) stay as they were.
        let mut r = SimRng::new(seed ^ 0xD15C_FA17_0000_0003);
        let observers = r.range(0, 2) as usize;
        // A standalone server has no quorum to observe.
        let observers = if servers == 1 { 0 } else { observers };
        let mut knobs = knobs;
        knobs.log_fault_permille = if r.chance(60) { r.range(1, 8) } else { 0 };
        knobs.read_fault_percent = if r.chance(60) { r.range(10, 60) } else { 0 };
        if r.chance(50) {
            knobs.clock_jump_gap_ms = (r.range(1_000, 3_000), r.range(3_000, 8_000));
            knobs.clock_jump_max_ms = r.range(500, 10_000);
        }
        // Periodic snapshots: their own stream again.
        let mut r = SimRng::new(seed ^ 0x5A95_0700_0000_0009);
        knobs.snap_count = r.range(20, 500);
        knobs.snap_crash_percent = *[0u64, 5, 15, 30].get(r.range(0, 3) as usize).unwrap_or(&5);
        // Failed snapshot writes: a stream of their own, so the runs from
        // before them replay with them off.
        let mut r = SimRng::new(seed ^ 0x5A95_FA17_0000_000B);
        knobs.snap_fault_percent = *[0u64, 10, 30].get(r.range(0, 2) as usize).unwrap_or(&10);
        SimConfig {
            seed,
            servers,
            duration_ms: 45_000,
            fault_end_ms: 15_000,
            liveness_bound_ms: 20_000,
            quiet_tail_ms: 8_000,
            faults: true,
            sync_reads: true,
            plain_reads: true,
            watches: true,
            sessions: true,
            reconnects: true,
            moves: true,
            early_writes: true,
            registers: true,
            disk_faults: true,
            clock_jumps: true,
            observers,
            snapshots: true,
            knobs,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Ev {
    Run(Sid, u64),
    Wake(Sid, u64),
    ElectionTimer(Sid, u64),
    Notify {
        from: Sid,
        to: Sid,
        bytes: Bytes,
    },
    ConnDeliver(ConnId, Dir),
    ConnClosed {
        conn: ConnId,
        sid: Sid,
        incarnation: u64,
        why: &'static str,
    },
    DialArrive {
        from: Sid,
        incarnation: u64,
        to: Sid,
    },
    DialResult {
        sid: Sid,
        incarnation: u64,
        conn: Option<ConnId>,
    },
    DialRetry(Sid, u64),
    DiskDone(Sid, u64, u64),
    /// The snapshot thread's current step (write, fsync, rename + directory
    /// fsync) completed: (server, incarnation, snapshot token).
    SnapshotStep(Sid, u64, u64),
    /// The crash-mid-snapshot fault: (server, incarnation).
    CrashMidSnapshot(Sid, u64),
    /// The operator looks at a server that refused to start, and wipes its
    /// data directory once the rest of the ensemble can spare it.
    OperatorWipe(Sid),
    /// Some server's clock jumps forward.
    ClockJump,
    ClientWrite,
    /// A client syncs then reads a key on a random serving server.
    ClientSyncRead,
    /// A client reads a key, without a sync, on a random serving server.
    ClientRead,
    /// A client sets a watch (exists, watch=true) on a random serving server.
    ClientWatch,
    /// A new session client connects to a random serving server.
    SessionClientStart,
    /// A session client pings its server (every third of its timeout).
    SessionPing(u64),
    /// A reconnecting session client tries again (if still unanswered).
    SessionReconnect(u64),
    /// A session client's next step (ephemeral, close, walk away).
    SessionStep(u64),
    /// The register workload's next op(s).
    RegisterOp,
    /// A register client's plain read on the server it stays on.
    RegisterPlainRead,
    /// The watching client re-reads its key (`left` more times).
    WatchReread {
        session: i64,
        left: u32,
    },
    /// Pause the established leader long enough for the others to replace it.
    PauseLeaderForSync,
    /// A client syncs then reads `path` on `sid` (the resumed leader).
    SyncReadAt {
        sid: Sid,
        path: String,
    },
    FaultTick,
    Restart(Sid),
    Resume(Sid),
    Heal(Vec<(Sid, Sid)>),
    HealAll,
}

/// The last lines of what happened, and a hash of all of it.
#[derive(Debug, Default)]
pub struct Trace {
    tail: VecDeque<String>,
    pub hash: u64,
    pub lines: u64,
    /// Keep every line (for `--trace`).
    pub keep_all: bool,
    pub all: Vec<String>,
}

impl Trace {
    fn push(&mut self, line: String) {
        self.hash = fnv1a(format!("{:016x}{line}", self.hash).as_bytes());
        self.lines += 1;
        if self.keep_all {
            self.all.push(line.clone());
        }
        self.tail.push_back(line);
        while self.tail.len() > TRACE_TAIL_LINES {
            self.tail.pop_front();
        }
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }
}

/// A client that set a one-shot data watch on `sid`.
#[derive(Debug, Clone)]
pub struct Watcher {
    pub sid: Sid,
    /// The server's `client_generation` when it was set.
    pub generation: u64,
    pub path: String,
    /// The key's version (mzxid, 0: absent) the client saw when setting it.
    pub set_at: i64,
    /// The zxid of the change its event announced.
    pub fired: Option<i64>,
}

/// Everything but the servers: what a server's glue may touch.
pub struct Ctx {
    pub now: u64,
    pub rng: SimRng,
    pub net: SimNet,
    pub oracle: Oracle,
    pub trace: Trace,
    pub knobs: Knobs,
    events: BTreeMap<(u64, u64), Ev>,
    seq: u64,
    next_token: u64,
    /// Client write id -> submit time, until acknowledged.
    writes_in_flight: BTreeMap<u64, u64>,
    pub heal_ms: Option<u64>,
    pub first_ack_after_heal_ms: Option<u64>,
    pub writes_submitted: u64,
    pub writes_acked: u64,
    pub events_run: u64,
    /// The sync workload's own random stream (see `SimConfig::sync_reads`).
    pub sync_rng: SimRng,
    /// Sync + read id -> (server, path, floor zxid, start time).
    syncs_in_flight: BTreeMap<u64, (Sid, String, i64, u64)>,
    pub syncs_submitted: u64,
    pub syncs_answered: u64,
    /// The plain-read workload's own random stream.
    pub read_rng: SimRng,
    pub plain_reads: u64,
    /// The watch workload's own random stream.
    pub watch_rng: SimRng,
    /// Watching clients: session -> what they set and saw.
    pub watchers: BTreeMap<i64, Watcher>,
    /// Per key, every (set at, event zxid) a client saw: one order for all.
    watch_events: BTreeMap<String, Vec<(i64, i64)>>,
    pub watch_events_seen: u64,
    /// The later faults' own random stream (disk faults, clock jumps).
    pub fault_rng: SimRng,
    /// Disk faults happen before this time (0: never).
    pub disk_faults_until_ms: u64,
    pub read_faults: u64,
    pub wipes: u64,
    pub clock_jumps: u64,
    /// The session workload's own random stream.
    pub session_rng: SimRng,
    /// The reconnecting clients' own random stream (None: clients that
    /// lose their connection stop, as before reconnects existed).
    pub reconnect_rng: Option<SimRng>,
    /// The moving clients' own random stream (None: no moves).
    pub move_rng: Option<SimRng>,
    /// The early-write workload's own stream (`SimConfig::early_writes`).
    pub early_write_rng: Option<SimRng>,
    /// Writes sent to a leader still establishing.
    pub early_writes: u64,
    pub session_clients: BTreeMap<u64, SessionClient>,
    /// Session id -> the client it was allocated for.
    pub session_of: BTreeMap<i64, u64>,
    pub sessions: SessionOracle,
    pub sessions_established: u64,
    /// The register workload's own random stream.
    pub reg_rng: SimRng,
    pub registers: Registers,
    /// The register clients' plain reads' own random stream.
    pub sticky_rng: SimRng,
    /// The last fault or role change anywhere (the session expiry check
    /// only judges quiet windows).
    pub last_disturbance_ms: u64,
    /// The periodic snapshots' own random stream (policy jitter seeds,
    /// write and fsync times, crashes mid-snapshot, what a crash leaves).
    pub snap_rng: SimRng,
    /// Failed snapshot steps (own stream: off replays the runs from before).
    pub snap_fault_rng: SimRng,
    pub snapshot_failures: u64,
    pub snapshots_taken: u64,
    pub snapshot_crashes: u64,
    /// Learners synced by a DIFF read from the leader's log files.
    pub diffs_from_disk: u64,
    /// Crashes mid-snapshot are scheduled before this time (0: never).
    pub snap_crashes_until_ms: u64,
}

impl Ctx {
    /// A fault or a role change happened now.
    pub fn disturbed(&mut self) {
        self.last_disturbance_ms = self.now;
    }

    /// A server allocated `session_id` for `client`'s createSession.
    pub fn session_allocated(&mut self, client: u64, session_id: i64) {
        self.session_of.insert(session_id, client);
    }

    /// What a server tells a session client.
    pub fn session_reply(&mut self, sid: Sid, reply: SessionReply) {
        let now = self.now;
        let Some(c) = self.session_clients.get_mut(&reply.client()) else { return };
        if c.sid != sid {
            return;
        }
        let line = match &reply {
            SessionReply::Connected { client, session_id } => {
                if c.state == ClientState::Connecting {
                    c.state = ClientState::Live;
                    c.session_id = Some(*session_id);
                    self.sessions_established += 1;
                    let at = now + self.session_rng.range(100, 1_500);
                    self.schedule(at, Ev::SessionStep(*client));
                }
                format!("session client {client} connected: session 0x{session_id:x}")
            }
            SessionReply::Closed { client, session_id } => {
                c.state = ClientState::Done;
                format!("session client {client} closed session 0x{session_id:x}")
            }
            SessionReply::Created { client, path, ok, .. } => {
                if *ok {
                    c.ephemeral = Some(path.clone());
                }
                format!("session client {client} created ephemeral {path}: {}", if *ok { "ok" } else { "refused" })
            }
            SessionReply::Refused { client } => {
                if c.state == ClientState::Connecting {
                    c.state = ClientState::Done;
                }
                format!("session client {client} turned away")
            }
            SessionReply::Reconnected { client, session_id, valid } => {
                if !matches!(c.state, ClientState::Reconnecting(_)) {
                    return;
                }
                if *valid {
                    c.state = ClientState::Live;
                    let ping_at = now + (c.timeout_ms / 3).max(1);
                    self.schedule(ping_at, Ev::SessionPing(*client));
                    let delay = self.reconnect_rng.as_mut().map_or(100, |r| r.range(100, 1_500));
                    let at = now + delay;
                    self.schedule(at, Ev::SessionStep(*client));
                    format!("session client {client} reconnected: session 0x{session_id:x} lives")
                } else {
                    c.state = ClientState::Done;
                    format!("session client {client} reconnected: session 0x{session_id:x} expired")
                }
            }
        };
        self.trace(sid, line);
    }

    /// The sessions checker's expiry rule: `sid`, leading (or standalone),
    /// expires `session` now. A client still pinging its connected server
    /// through a window of the timeout plus slack in which nothing was
    /// disturbed must not lose its session.
    pub fn session_expiring(&mut self, sid: Sid, session: i64) {
        self.sessions.expiries += 1;
        let Some(c) = self.session_of.get(&session).and_then(|client| self.session_clients.get(client)) else { return };
        let slack = super::sessions::EXPIRY_SLACK_TICKS * self.knobs.tick_ms + super::sessions::EXPIRY_SLACK_NET_MS;
        let window = c.timeout_ms + slack;
        if c.pinging() && c.state == ClientState::Live && self.last_disturbance_ms + window < self.now {
            let detail = format!(
                "server {sid} expired session 0x{session:x} (timeout {} ms) while its client kept pinging server {} and nothing was disturbed for {} ms",
                c.timeout_ms,
                c.sid,
                self.now - self.last_disturbance_ms
            );
            let now = self.now;
            self.oracle.fail("sessions", detail, now);
        }
    }

    /// `sid` applied (or published) the close of `session` at `zxid`.
    pub fn session_closed(&mut self, sid: Sid, session: i64, zxid: i64, left: &[String]) {
        if let Some(detail) = self.sessions.closed(sid, session, zxid, left) {
            let now = self.now;
            self.oracle.fail("sessions", detail, now);
        }
    }

    /// `sid` applied (or published) an ephemeral create of `session`.
    pub fn ephemeral_created(&mut self, sid: Sid, session: i64, path: &str, zxid: i64, live_here: bool) {
        if let Some(detail) = self.sessions.ephemeral_created(sid, session, path, zxid, live_here) {
            let now = self.now;
            self.oracle.fail("sessions", detail, now);
        }
    }

    pub fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert((at.max(self.now), self.seq), ev);
    }

    pub fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    pub fn trace(&mut self, sid: Sid, what: String) {
        let line = format!("t={:>6} s{sid} {what}", self.now);
        self.trace.push(line);
    }

    pub fn fsync_latency(&mut self) -> u64 {
        let (lo, hi) = self.knobs.fsync_ms;
        let base = self.rng.range(lo, hi);
        if self.rng.chance(self.knobs.slow_fsync_percent) {
            base + self.knobs.slow_fsync_ms
        } else {
            base
        }
    }

    /// Whether this log write is to fail, and how.
    pub fn draw_log_fault(&mut self) -> Option<super::disk::LogFault> {
        if self.now >= self.disk_faults_until_ms || self.knobs.log_fault_permille == 0 {
            return None;
        }
        if self.fault_rng.range(0, 999) >= self.knobs.log_fault_permille {
            return None;
        }
        self.fault_rng.pick(&super::disk::LogFault::ALL)
    }

    pub fn send_election(&mut self, from: Sid, to: Sid, bytes: Bytes) {
        if self.net.is_blocked(from, to) {
            self.net.election_outbox.insert((from, to), bytes);
            return;
        }
        let at = self.now + self.net.latency(from, to);
        self.schedule(at, Ev::Notify { from, to, bytes });
    }

    pub fn conn_send(&mut self, conn: ConnId, dir: Dir, wire: super::net::Wire) {
        if let Some(at) = self.net.send(conn, dir, wire, self.now) {
            self.schedule(at, Ev::ConnDeliver(conn, dir));
        }
    }

    /// Breaks `conn`; with `notify` each live end learns of it after the
    /// link's latency (if the link lets the FIN / RST through).
    pub fn break_conn(&mut self, conn: ConnId, notify: bool, why: &'static str) {
        let Some((learner, li, leader, lei)) = self.net.break_conn(conn) else { return };
        if !notify {
            return;
        }
        for (sid, inc, other) in [(learner, li, leader), (leader, lei, learner)] {
            if !self.net.is_blocked(other, sid) {
                let at = self.now + self.net.latency(other, sid);
                self.schedule(at, Ev::ConnClosed { conn, sid, incarnation: inc, why });
            }
        }
    }

    pub fn dial(&mut self, from: Sid, incarnation: u64, to: Sid) {
        let at = self.now + self.net.latency(from, to);
        self.schedule(at, Ev::DialArrive { from, incarnation, to });
    }

    /// The read after sync `id`, on `sid`, from `tree` (the state the
    /// client sees when the sync's answer reaches it).
    pub fn sync_answered(&mut self, sid: Sid, id: u64, tree: &crate::tree::DataTree) {
        if registers::is_register_op(id) {
            if let Some(line) = self.registers.read_answered(id, tree, self.now) {
                self.trace(sid, line);
            }
            return;
        }
        let Some((target, path, floor, started)) = self.syncs_in_flight.remove(&id) else { return };
        self.syncs_answered += 1;
        let observed = tree.get(&path).map(|n| n.mzxid());
        self.trace(
            sid,
            format!(
                "sync #{id} answered after {} ms; read {path} changed at {observed:x?} (acknowledged floor 0x{floor:x})",
                self.now - started
            ),
        );
        let now = self.now;
        self.oracle.check_sync_read(target, id, &path, floor, observed, now);
    }

    /// The server turned sync `id` away (the client would retry elsewhere).
    pub fn sync_refused(&mut self, sid: Sid, id: u64, why: &str) {
        if registers::is_register_op(id) {
            self.registers.read_refused(id);
            return;
        }
        if self.syncs_in_flight.remove(&id).is_some() {
            self.trace(sid, format!("refuses sync #{id} ({why})"));
        }
    }

    /// A watch event for the change at `zxid` of `path` reaches the client
    /// of `session` on `sid`. Checks the watch rules: one event per
    /// one-shot watch, for a change the client had not seen, and all
    /// clients see one order (two watches whose set points both precede a
    /// change announce, as their first, the same change).
    pub fn watch_fired(&mut self, session: i64, sid: Sid, zxid: i64, path: &str) {
        let Some(w) = self.watchers.get_mut(&session) else { return };
        if w.sid != sid || w.path != path {
            return;
        }
        let set_at = w.set_at;
        let already = w.fired.replace(zxid);
        self.watch_events_seen += 1;
        let line = format!(
            "t={:>6} s{sid} watch event for {path} changed at 0x{zxid:x} (watch set at 0x{set_at:x})",
            self.now
        );
        self.trace.push(line);
        let now = self.now;
        if let Some(first) = already {
            let detail = format!("server {sid}: a one-shot watch on {path} fired twice (0x{first:x}, 0x{zxid:x})");
            self.oracle.fail("watch-order", detail, now);
            return;
        }
        if zxid <= set_at {
            let detail = format!(
                "server {sid}: a watch set on {path} at version 0x{set_at:x} announced the older change 0x{zxid:x}"
            );
            self.oracle.fail("watch-order", detail, now);
            return;
        }
        let seen = self.watch_events.entry(path.to_owned()).or_default();
        for &(other_set, other_event) in seen.iter() {
            let both_before_mine = other_set <= set_at && set_at < other_event;
            let both_before_theirs = set_at <= other_set && other_set < zxid;
            if (both_before_mine || both_before_theirs) && other_event != zxid {
                let detail = format!(
                    "clients disagree on the order of changes to {path}: a watch set at 0x{set_at:x} announced 0x{zxid:x}, one set at 0x{other_set:x} announced 0x{other_event:x}"
                );
                self.oracle.fail("watch-order", detail, now);
                return;
            }
        }
        if seen.len() < 256 {
            seen.push((set_at, zxid));
        }
    }

    /// The leader executed client write `id` (answered once published).
    pub fn write_executed(&mut self, id: u64, answer: WriteAnswer) {
        if registers::is_register_op(id) {
            self.registers.executed(id, answer);
        }
    }

    /// A server turned client write `id` away without executing it.
    pub fn write_refused(&mut self, id: u64) {
        if registers::is_register_op(id) {
            self.registers.write_refused(id);
        }
    }

    pub fn write_acked(&mut self, id: u64, zxid: i64) {
        if registers::is_register_op(id) {
            if let Some(line) = self.registers.write_answered(id, self.now) {
                self.trace(0, format!("{line} at 0x{zxid:x}"));
            }
            return;
        }
        self.writes_acked += 1;
        if let Some(submitted) = self.writes_in_flight.remove(&id) {
            self.trace(0, format!("client write #{id} acknowledged at 0x{zxid:x}"));
            if self.heal_ms.is_some_and(|h| submitted >= h) && self.first_ack_after_heal_ms.is_none() {
                self.first_ack_after_heal_ms = Some(self.now);
            }
        }
    }
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct SimOutcome {
    pub seed: u64,
    pub servers: usize,
    pub failure: Option<Failure>,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub trace_tail: Vec<String>,
    pub full_trace: Vec<String>,
    pub simulated_ms: u64,
    pub events: u64,
    pub writes_submitted: u64,
    pub writes_acked: u64,
    pub syncs_submitted: u64,
    pub syncs_answered: u64,
    pub plain_reads: u64,
    pub committed_zxids: usize,
    pub epochs: usize,
    pub final_states: Vec<String>,
    pub observers: usize,
    pub expected_exits: u64,
    pub read_faults: u64,
    pub wipes: u64,
    pub clock_jumps: u64,
    /// Session clients that got a session, and sessions expired.
    pub sessions_established: u64,
    pub sessions_expired: u64,
    pub session_closes_checked: u64,
    pub ephemerals_checked: u64,
    /// SNAP installs whose session table the oracle judged.
    pub snapshot_session_tables_checked: u64,
    /// Reconnects answered: the session lives / expired.
    pub reconnects_valid: u64,
    pub reconnects_expired: u64,
    /// Forwarded writes refused with SESSIONMOVED.
    pub moved_refused: u64,
    pub snapshots_taken: u64,
    pub snapshot_crashes: u64,
    /// Snapshots that failed at a step (EIO / ENOSPC) and were given up.
    pub snapshot_failures: u64,
    /// Learners synced by a DIFF read from the leader's log files.
    pub diffs_from_disk: u64,
    /// Client writes sent to a leader still establishing.
    pub early_writes: u64,
    /// Register ops invoked and answered, keys the `linearizable` checker
    /// judged, and those it could not decide within its work bound.
    pub register_ops: u64,
    pub register_ops_answered: u64,
    /// Register clients' plain reads checked by `monotonic-reads`.
    pub register_plain_reads: u64,
    pub linearizable_keys: u64,
    pub linearizable_inconclusive: u64,
    /// A register history that is not linearizable, even when another
    /// checker failed the run first (so a plant's every catcher shows).
    pub linearizable_violation: Option<String>,
}

impl SimOutcome {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// The failure report: seed, checker, and the trace's last lines.
    pub fn report(&self) -> String {
        self.report_with_flags("")
    }

    /// The report, its replay line carrying `flags` (the command line's
    /// other options, so the line replays this very world).
    pub fn report_with_flags(&self, flags: &str) -> String {
        let mut out = String::new();
        match &self.failure {
            None => out.push_str(&format!(
                "seed {} ({} servers, {} observers): ok — {} events, {} writes submitted, {} acknowledged, {} syncs submitted, {} answered, {} plain reads, {} zxids committed, {} epochs, {} expected exits, {} damaged reads, {} wipes, {} clock jumps, {} sessions ({} expired, {} closes, {} ephemerals and {} SNAP session tables checked, {} reconnects ({} expired), {} writes refused as moved), {} snapshots ({} crashes mid-snapshot, {} failed), {} DIFFs from disk, {} early writes, {} register ops ({} answered, {} keys linearizable, {} inconclusive, {} plain reads on one connection), trace {:016x}\n",
                self.seed, self.servers, self.observers, self.events, self.writes_submitted, self.writes_acked, self.syncs_submitted, self.syncs_answered, self.plain_reads, self.committed_zxids, self.epochs, self.expected_exits, self.read_faults, self.wipes, self.clock_jumps, self.sessions_established, self.sessions_expired, self.session_closes_checked, self.ephemerals_checked, self.snapshot_session_tables_checked, self.reconnects_valid + self.reconnects_expired, self.reconnects_expired, self.moved_refused, self.snapshots_taken, self.snapshot_crashes, self.snapshot_failures, self.diffs_from_disk, self.early_writes, self.register_ops, self.register_ops_answered, self.linearizable_keys - self.linearizable_inconclusive, self.linearizable_inconclusive, self.register_plain_reads, self.trace_hash
            )),
            Some(f) => {
                out.push_str(&format!(
                    "seed {} ({} servers, {} observers): FAILED checker `{}` at t={} ms: {}\nreplay: zoocore-sim --seed {} --servers {}{}\nlast {} trace lines:\n",
                    self.seed, self.servers, self.observers, f.checker, f.at_ms, f.detail, self.seed, self.servers, flags, self.trace_tail.len()
                ));
                if let (Some(also), true) = (&self.linearizable_violation, f.checker != "linearizable") {
                    out.push_str(&format!("also failed `linearizable` at the end: {also}\n"));
                }
                for l in &self.trace_tail {
                    out.push_str("  ");
                    out.push_str(l);
                    out.push('\n');
                }
                for s in &self.final_states {
                    out.push_str("  final: ");
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
        out
    }
}

pub struct World {
    pub ctx: Ctx,
    pub servers: Vec<Server>,
    config: SimConfig,
    next_write: u64,
    /// The leader `pause_leader_for_sync` paused, until it resumes: clients
    /// send it no writes, so the sync is what it meets first.
    paused_for_sync: Option<Sid>,
}

impl World {
    pub fn new(mut config: SimConfig) -> World {
        if !config.faults || !config.disk_faults {
            config.knobs.log_fault_permille = 0;
            config.knobs.read_fault_percent = 0;
            config.knobs.snap_fault_percent = 0;
        }
        if !config.faults || !config.clock_jumps {
            config.knobs.clock_jump_gap_ms = (0, 0);
        }
        if !config.snapshots {
            config.knobs.snap_count = 0;
        }
        let voters: Vec<Sid> = (1..=config.servers as Sid).collect();
        let observers: Vec<Sid> = (1..=config.observers as Sid).map(|i| config.servers as Sid + i).collect();
        let sids: Vec<Sid> = voters.iter().chain(&observers).copied().collect();
        let specs: Vec<QuorumServerSpec> = sids
            .iter()
            .map(|&sid| QuorumServerSpec {
                sid,
                addresses: vec![("127.0.0.1".into(), 2888 + sid as u16, 3888 + sid as u16)],
                learner_type: if observers.contains(&sid) { LearnerType::Observer } else { LearnerType::Participant },
                client_address: None,
            })
            .collect();
        let config_text = Bytes::from(quorum_config_text(&specs, 0));
        let mut rng = SimRng::new(config.seed);
        let mut net = SimNet::default();
        for &a in &sids {
            for &b in &sids {
                if a != b {
                    let (lo, hi) = config.knobs.net_latency_ms;
                    net.latency_ms.insert((a, b), rng.range(lo, hi));
                }
            }
        }
        let servers = sids
            .iter()
            .map(|&sid| Server::new(sid, Ensemble::new(sid, voters.clone(), observers.clone()), config_text.clone()))
            .collect();
        let ctx = Ctx {
            now: 0,
            rng,
            net,
            oracle: Oracle::default(),
            trace: Trace::default(),
            knobs: config.knobs.clone(),
            events: BTreeMap::new(),
            seq: 0,
            next_token: 0,
            writes_in_flight: BTreeMap::new(),
            heal_ms: None,
            first_ack_after_heal_ms: None,
            writes_submitted: 0,
            writes_acked: 0,
            events_run: 0,
            sync_rng: SimRng::new(config.seed ^ 0x5C_5EAD_0000_0002),
            syncs_in_flight: BTreeMap::new(),
            syncs_submitted: 0,
            syncs_answered: 0,
            read_rng: SimRng::new(config.seed ^ 0x2EAD_0000_0000_0006),
            plain_reads: 0,
            watch_rng: SimRng::new(config.seed ^ 0x3A7C_0000_0000_0007),
            watchers: BTreeMap::new(),
            watch_events: BTreeMap::new(),
            watch_events_seen: 0,
            fault_rng: SimRng::new(config.seed ^ 0xFA_17ED_0000_0004),
            disk_faults_until_ms: if config.faults { config.fault_end_ms } else { 0 },
            read_faults: 0,
            wipes: 0,
            clock_jumps: 0,
            session_rng: SimRng::new(config.seed ^ 0x5E55_1011_0000_0008),
            reconnect_rng: config.reconnects.then(|| SimRng::new(config.seed ^ 0x2EC0_4417_0000_0009)),
            move_rng: (config.reconnects && config.moves).then(|| SimRng::new(config.seed ^ 0x3073_E500_0000_000A)),
            early_write_rng: config.early_writes.then(|| SimRng::new(config.seed ^ 0xEA21_0000_0000_000C)),
            early_writes: 0,
            session_clients: BTreeMap::new(),
            session_of: BTreeMap::new(),
            sessions: SessionOracle::default(),
            sessions_established: 0,
            reg_rng: SimRng::new(config.seed ^ 0x2E61_57E2_0000_0009),
            registers: Registers::default(),
            sticky_rng: SimRng::new(config.seed ^ 0x571C_4EAD_0000_000A),
            last_disturbance_ms: 0,
            snap_rng: SimRng::new(config.seed ^ 0x5A95_0700_0000_000A),
            snap_fault_rng: SimRng::new(config.seed ^ 0x5A95_FA17_0000_000C),
            snapshot_failures: 0,
            snapshots_taken: 0,
            snapshot_crashes: 0,
            diffs_from_disk: 0,
            snap_crashes_until_ms: if config.faults { config.fault_end_ms } else { 0 },
        };
        World { ctx, servers, config, next_write: 0, paused_for_sync: None }
    }

    fn current(&self, sid: Sid, incarnation: u64) -> bool {
        self.servers.get((sid - 1) as usize).is_some_and(|s| s.up && s.incarnation == incarnation)
    }

    fn paused_until(&self, sid: Sid) -> Option<u64> {
        let s = self.servers.get((sid - 1) as usize)?;
        (s.up && s.paused_until > self.ctx.now).then_some(s.paused_until)
    }

    pub fn run(mut self) -> SimOutcome {
        for i in 0..self.servers.len() {
            // Staggered starts, as processes never start at once.
            let at = self.ctx.rng.range(0, 300);
            self.ctx.schedule(at, Ev::Restart((i + 1) as Sid));
        }
        self.ctx.schedule(500, Ev::ClientWrite);
        if self.config.faults {
            let first = self.ctx.rng.range(1_000, 3_000);
            self.ctx.schedule(first, Ev::FaultTick);
        }
        self.ctx.schedule(self.config.fault_end_ms, Ev::HealAll);
        if self.ctx.knobs.clock_jump_gap_ms.0 > 0 {
            let (lo, hi) = self.ctx.knobs.clock_jump_gap_ms;
            let first = self.ctx.fault_rng.range(lo, hi);
            self.ctx.schedule(first, Ev::ClockJump);
        }
        if self.config.plain_reads {
            let first = self.ctx.read_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::ClientRead);
        }
        if self.config.watches {
            let first = self.ctx.watch_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::ClientWatch);
        }
        if self.config.sessions {
            let first = self.ctx.session_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::SessionClientStart);
        }
        if self.config.registers {
            let first = self.ctx.reg_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::RegisterOp);
            let first = self.ctx.sticky_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::RegisterPlainRead);
        }
        if self.config.sync_reads {
            let first = self.ctx.sync_rng.range(500, 1_500);
            self.ctx.schedule(first, Ev::ClientSyncRead);
            // (A lone server has nobody to replace it while paused.)
            if self.config.faults && self.config.servers > 1 {
                let at = self.ctx.sync_rng.range(3_000, self.config.fault_end_ms.saturating_sub(4_000).max(3_001));
                self.ctx.schedule(at, Ev::PauseLeaderForSync);
            }
        }
        while let Some((&(at, seq), _)) = self.ctx.events.iter().next() {
            if at > self.config.duration_ms || self.ctx.oracle.failure.is_some() {
                break;
            }
            let Some(ev) = self.ctx.events.remove(&(at, seq)) else { break };
            self.ctx.now = at;
            self.ctx.events_run += 1;
            self.dispatch(ev);
        }
        if self.ctx.oracle.failure.is_none() {
            self.ctx.now = self.config.duration_ms;
            self.final_checks();
        }
        // Judged even after another checker failed the run (the histories
        // recorded so far; ops answered after the stop are indeterminate),
        // so a plant shows every checker that catches it.
        let linearizable_violation = self.final_linearizable_check();
        let final_states = self
            .servers
            .iter()
            .map(|s| format!("s{} {} zxid 0x{:x} digest {:x}", s.sid, s.role_name(), s.last_zxid(), s.tree().digest()))
            .collect();
        SimOutcome {
            seed: self.config.seed,
            servers: self.config.servers,
            failure: self.ctx.oracle.failure.clone(),
            trace_hash: self.ctx.trace.hash,
            trace_lines: self.ctx.trace.lines,
            trace_tail: self.ctx.trace.tail(),
            full_trace: std::mem::take(&mut self.ctx.trace.all),
            simulated_ms: self.ctx.now,
            events: self.ctx.events_run,
            writes_submitted: self.ctx.writes_submitted,
            writes_acked: self.ctx.writes_acked,
            syncs_submitted: self.ctx.syncs_submitted,
            syncs_answered: self.ctx.syncs_answered,
            plain_reads: self.ctx.plain_reads,
            committed_zxids: self.ctx.oracle.committed_count(),
            epochs: self.ctx.oracle.epochs_established(),
            final_states,
            observers: self.config.observers,
            expected_exits: self.ctx.oracle.expected_exits,
            read_faults: self.ctx.read_faults,
            wipes: self.ctx.wipes,
            clock_jumps: self.ctx.clock_jumps,
            sessions_established: self.ctx.sessions_established,
            sessions_expired: self.ctx.sessions.expiries,
            session_closes_checked: self.ctx.sessions.closes_checked,
            ephemerals_checked: self.ctx.sessions.ephemerals_checked,
            snapshot_session_tables_checked: self.ctx.sessions.snapshot_tables_checked,
            reconnects_valid: self.ctx.sessions.reconnects_valid,
            reconnects_expired: self.ctx.sessions.reconnects_expired,
            moved_refused: self.ctx.sessions.moved_refused,
            snapshots_taken: self.ctx.snapshots_taken,
            snapshot_crashes: self.ctx.snapshot_crashes,
            snapshot_failures: self.ctx.snapshot_failures,
            diffs_from_disk: self.ctx.diffs_from_disk,
            early_writes: self.ctx.early_writes,
            register_ops: self.ctx.registers.ops_invoked,
            register_ops_answered: self.ctx.registers.ops_answered,
            register_plain_reads: self.ctx.registers.sticky_reads,
            linearizable_keys: self.ctx.registers.keys_checked,
            linearizable_inconclusive: self.ctx.registers.inconclusive,
            linearizable_violation,
        }
    }

    /// Keeps the trace of every event (slower; for `zoocore-sim --trace`).
    pub fn keep_full_trace(&mut self) {
        self.ctx.trace.keep_all = true;
    }

    fn dispatch(&mut self, ev: Ev) {
        // A paused (SIGSTOPped) process runs nothing until it resumes;
        // the kernel still buffers what reaches its sockets.
        let target = match &ev {
            Ev::Run(s, _)
            | Ev::Wake(s, _)
            | Ev::ElectionTimer(s, _)
            | Ev::DialRetry(s, _)
            | Ev::DiskDone(s, _, _)
            | Ev::SnapshotStep(s, _, _) => Some(*s),
            Ev::Notify { to, .. } => Some(*to),
            Ev::DialResult { sid, .. } => Some(*sid),
            _ => None,
        };
        if let Some(until) = target.and_then(|s| self.paused_until(s)) {
            self.ctx.schedule(until, ev);
            return;
        }
        match ev {
            Ev::Run(sid, inc) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.run(&mut self.ctx);
                    }
                }
            }
            Ev::Wake(sid, inc) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        let next = s.next_wake_at(&self.ctx);
                        self.ctx.schedule(next, Ev::Wake(sid, inc));
                        s.run(&mut self.ctx);
                    }
                }
            }
            Ev::ElectionTimer(sid, inc) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.on_election_timer(&mut self.ctx);
                    }
                }
            }
            Ev::Notify { from, to, bytes } => {
                let up = self.servers.get((to - 1) as usize).is_some_and(|s| s.up);
                if !up || self.ctx.net.is_blocked(from, to) {
                    self.ctx.net.election_outbox.entry((from, to)).or_insert(bytes);
                } else if let Some(s) = self.servers.get_mut((to - 1) as usize) {
                    s.on_notification(&mut self.ctx, from, bytes);
                }
            }
            Ev::ConnDeliver(conn, dir) => self.conn_deliver(conn, dir),
            Ev::ConnClosed { conn, sid, incarnation, why } => {
                if self.current(sid, incarnation) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.conn_closed(&mut self.ctx, conn, why);
                    }
                }
            }
            Ev::DialArrive { from, incarnation, to } => {
                let back = self.ctx.net.latency(to, from);
                let reachable = !self.ctx.net.is_blocked(from, to) && !self.ctx.net.is_blocked(to, from);
                let leader_inc = self.servers.get((to - 1) as usize).map(|s| s.incarnation).unwrap_or(0);
                let listening = self.servers.get((to - 1) as usize).is_some_and(|s| s.is_listening());
                let conn = if reachable && listening {
                    let conn = self.ctx.net.open(from, incarnation, to, leader_inc, 0);
                    let accepted = self.servers.get_mut((to - 1) as usize).and_then(|s| s.accept(conn));
                    if let (Some(id), Some(c)) = (accepted, self.ctx.net.conns.get_mut(&conn)) {
                        c.leader_side_id = id;
                    }
                    if let Some(s) = self.servers.get_mut((to - 1) as usize) {
                        s.schedule_run(&mut self.ctx);
                    }
                    Some(conn)
                } else {
                    None
                };
                // A refused dial answers fast; an unreachable one times out.
                let delay = if reachable { back } else { self.ctx.knobs.tick_ms * self.ctx.knobs.sync_limit_ticks };
                let at = self.ctx.now + delay;
                self.ctx.schedule(at, Ev::DialResult { sid: from, incarnation, conn });
            }
            Ev::DialResult { sid, incarnation, conn } => {
                if self.current(sid, incarnation) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.on_dial_result(&mut self.ctx, conn);
                    }
                } else if let Some(c) = conn {
                    self.ctx.break_conn(c, true, "dialler is gone");
                }
            }
            Ev::DialRetry(sid, inc) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.on_dial_retry(&mut self.ctx);
                    }
                }
            }
            Ev::DiskDone(sid, inc, token) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.on_disk_done(&mut self.ctx, token);
                    }
                }
            }
            Ev::SnapshotStep(sid, inc, token) => {
                if self.current(sid, inc) {
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.on_snapshot_step(&mut self.ctx, token);
                    }
                }
            }
            Ev::CrashMidSnapshot(sid, inc) => {
                if self.current(sid, inc) && self.ctx.now < self.config.fault_end_ms {
                    self.ctx.snapshot_crashes += 1;
                    if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                        s.crash(&mut self.ctx);
                    }
                    let back = self.ctx.snap_rng.range(100, 4_000);
                    self.ctx.schedule(self.ctx.now + back, Ev::Restart(sid));
                }
            }
            Ev::ClientWrite => self.client_write(),
            Ev::ClientSyncRead => self.client_sync_read(),
            Ev::ClientRead => self.client_read(),
            Ev::ClientWatch => self.client_watch(),
            Ev::WatchReread { session, left } => self.watch_reread(session, left),
            Ev::SessionClientStart => self.session_client_start(),
            Ev::SessionPing(client) => self.session_ping(client),
            Ev::SessionReconnect(client) => self.session_reconnect(client),
            Ev::SessionStep(client) => self.session_step(client),
            Ev::RegisterOp => self.register_op(),
            Ev::RegisterPlainRead => self.register_plain_read(),
            Ev::PauseLeaderForSync => self.pause_leader_for_sync(),
            Ev::SyncReadAt { sid, path } => {
                self.paused_for_sync = None;
                self.sync_read(sid, path)
            }
            Ev::FaultTick => {
                if self.ctx.now < self.config.fault_end_ms {
                    self.ctx.disturbed();
                }
                self.fault_tick()
            }
            Ev::Restart(sid) => self.restart(sid),
            Ev::OperatorWipe(sid) => self.operator_wipe(sid),
            Ev::ClockJump => self.clock_jump(),
            Ev::Resume(sid) => {
                self.ctx.disturbed();
                let now = self.ctx.now;
                if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                    if s.up && s.paused_until <= now && s.paused_until > 0 {
                        s.paused_until = 0;
                        self.ctx.trace(sid, "resumes".into());
                        s.schedule_run(&mut self.ctx);
                    }
                }
            }
            Ev::Heal(pairs) => {
                self.ctx.disturbed();
                for p in &pairs {
                    self.ctx.net.blocked.remove(p);
                }
                self.ctx.trace(0, format!("heal {pairs:?}"));
                self.after_heal();
            }
            Ev::HealAll => {
                self.ctx.disturbed();
                self.ctx.net.blocked.clear();
                self.ctx.heal_ms = Some(self.ctx.now);
                self.ctx.trace(0, "HEAL ALL: partitions healed, every server up and running".into());
                for s in &mut self.servers {
                    s.paused_until = 0;
                    if !s.up && !s.awaiting_wipe {
                        s.boot(&mut self.ctx);
                    } else {
                        s.schedule_run(&mut self.ctx);
                    }
                }
                self.after_heal();
            }
        }
        self.ctx.net.reap();
    }

    /// A process (re)starts. While disk faults are on, what its recovery
    /// reads may be damaged, but only when losing this disk's contents is
    /// tolerable (`disk_loss_tolerable`): ZAB survives the loss of a copy
    /// only while a quorum of other disks holds every acknowledged write.
    fn restart(&mut self, sid: Sid) {
        let Some(s) = self.servers.get((sid - 1) as usize) else { return };
        if s.up || s.awaiting_wipe {
            return;
        }
        let now = self.ctx.now;
        if now < self.ctx.disk_faults_until_ms
            && self.ctx.knobs.read_fault_percent > 0
            && self.ctx.fault_rng.chance(self.ctx.knobs.read_fault_percent)
            && self.disk_loss_tolerable(sid)
        {
            if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
                let snapshot_too = self.ctx.knobs.snapshot_damage;
                if let Some(what) = s.disk.damage(&mut self.ctx.fault_rng, snapshot_too) {
                    s.disk_damaged = true;
                    self.ctx.read_faults += 1;
                    self.ctx.trace(sid, format!("DISK DAMAGE read at restart: {what}"));
                }
            }
        }
        if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
            s.boot(&mut self.ctx);
            if s.awaiting_wipe {
                let (lo, hi) = self.ctx.knobs.operator_wipe_ms;
                let at = now + self.ctx.fault_rng.range(lo, hi);
                self.ctx.schedule(at, Ev::OperatorWipe(sid));
            }
        }
        self.flush_outboxes();
    }

    /// The operator of a server that refused to start (a corrupt log)
    /// wipes its data directory so it syncs from the leader, once the rest
    /// of the ensemble can spare that disk; until then they look again.
    fn operator_wipe(&mut self, sid: Sid) {
        let Some(s) = self.servers.get((sid - 1) as usize) else { return };
        if s.up || !s.awaiting_wipe {
            return;
        }
        if !self.disk_loss_tolerable(sid) {
            let at = self.ctx.now + 500;
            self.ctx.schedule(at, Ev::OperatorWipe(sid));
            return;
        }
        self.ctx.wipes += 1;
        if let Some(s) = self.servers.get_mut((sid - 1) as usize) {
            s.wipe(&mut self.ctx);
            s.boot(&mut self.ctx);
        }
        self.flush_outboxes();
    }

    /// May `victim`'s disk lose what it holds, with ZAB's guarantees
    /// intact? Only if every acknowledged write is durably held by a quorum
    /// of the *other* voters (so any quorum still meets a copy), and a
    /// quorum of them has promised the newest epoch any disk has accepted
    /// (so no second leader can be elected in it). An observer's disk
    /// always may.
    pub fn disk_loss_tolerable(&self, victim: Sid) -> bool {
        let voters: Vec<&Server> = self.servers.iter().filter(|s| s.is_voter()).collect();
        let quorum = voters.len() / 2 + 1;
        let others: Vec<super::disk::DurableHoldings> =
            voters.iter().filter(|s| s.sid != victim).map(|s| s.disk.durable_holdings()).collect();
        for (&zxid, &hash) in &self.ctx.oracle.acked {
            if others.iter().filter(|h| h.holds(zxid, hash)).count() < quorum {
                return false;
            }
        }
        let newest_promise = voters.iter().map(|s| s.disk.accepted_epoch.unwrap_or(0)).max().unwrap_or(0);
        others.iter().filter(|h| h.accepted_epoch >= newest_promise).count() >= quorum
    }

    /// A server's clock jumps forward (a VM paused and resumed, its clock
    /// catching up at once): the cores see the time leap, the world does not.
    fn clock_jump(&mut self) {
        let now = self.ctx.now;
        if now >= self.config.fault_end_ms {
            return;
        }
        let (lo, hi) = self.ctx.knobs.clock_jump_gap_ms;
        let gap = self.ctx.fault_rng.range(lo, hi);
        self.ctx.schedule(now + gap, Ev::ClockJump);
        let up: Vec<Sid> = self.servers.iter().filter(|s| s.up).map(|s| s.sid).collect();
        let Some(victim) = self.ctx.fault_rng.pick(&up) else { return };
        let jump = self.ctx.fault_rng.range(100, self.ctx.knobs.clock_jump_max_ms.max(100));
        self.ctx.clock_jumps += 1;
        if let Some(s) = self.servers.get_mut((victim - 1) as usize) {
            s.jump_clock(&mut self.ctx, jump);
        }
    }

    fn conn_deliver(&mut self, conn: ConnId, dir: Dir) {
        let Some(c) = self.ctx.net.conns.get(&conn) else { return };
        let (from, to) = c.ends(dir);
        let inc = match dir {
            Dir::ToLeader => c.leader_incarnation,
            Dir::ToLearner => c.learner_incarnation,
        };
        if !self.current(to, inc) {
            return;
        }
        while let Some(wire) = self.ctx.net.take_due(conn, dir, self.ctx.now) {
            let to_conn = conn;
            let establishing = dir == Dir::ToLeader
                && self.servers.get((to - 1) as usize).is_some_and(|s| s.is_leading() && !s.is_established_leader());
            if let Some(s) = self.servers.get_mut((to - 1) as usize) {
                s.deliver_wire(&mut self.ctx, to_conn, dir, wire);
            }
            if establishing && self.ctx.early_write_rng.as_mut().is_some_and(|r| r.chance(EARLY_WRITE_PERCENT)) {
                self.early_write(to);
            }
        }
        if let Some(due) = self.ctx.net.head_due(conn, dir) {
            let at = if self.ctx.net.is_blocked(from, to) { self.ctx.now + BLOCKED_RETRY_MS } else { due };
            self.ctx.schedule(at, Ev::ConnDeliver(conn, dir));
        }
    }

    fn after_heal(&mut self) {
        self.flush_outboxes();
        let conns: Vec<ConnId> = self.ctx.net.conns.keys().copied().collect();
        for c in conns {
            for dir in [Dir::ToLeader, Dir::ToLearner] {
                if self.ctx.net.head_due(c, dir).is_some() {
                    self.ctx.schedule(self.ctx.now, Ev::ConnDeliver(c, dir));
                }
            }
        }
    }

    fn flush_outboxes(&mut self) {
        let ready: Vec<(Sid, Sid)> = self
            .ctx
            .net
            .election_outbox
            .keys()
            .copied()
            .filter(|(f, t)| {
                !self.ctx.net.is_blocked(*f, *t) && self.servers.get((*t - 1) as usize).is_some_and(|s| s.up)
            })
            .collect();
        for pair in ready {
            if let Some(bytes) = self.ctx.net.election_outbox.remove(&pair) {
                let at = self.ctx.now + self.ctx.net.latency(pair.0, pair.1);
                self.ctx.schedule(at, Ev::Notify { from: pair.0, to: pair.1, bytes });
            }
        }
    }

    /// A client write right behind a learner's packet to a leader still
    /// establishing (`SimConfig::early_writes`): in the same turn's events.
    fn early_write(&mut self, target: Sid) {
        if self.ctx.now + self.config.quiet_tail_ms >= self.config.duration_ms {
            return;
        }
        let Some(r) = self.ctx.early_write_rng.as_mut() else { return };
        let key = r.range(0, CLIENT_KEYS - 1);
        self.next_write += 1;
        let id = self.next_write;
        let path = format!("/k{key}");
        let write = WriteOp::SetData { path: path.clone(), data: Some(Bytes::from(format!("w{id}"))), version: -1 };
        self.ctx.early_writes += 1;
        self.ctx.writes_submitted += 1;
        self.ctx.writes_in_flight.insert(id, self.ctx.now);
        self.ctx.trace(target, format!("client write #{id} to {path} (to a leader still establishing)"));
        if let Some(s) = self.servers.get_mut((target - 1) as usize) {
            s.push_input(&mut self.ctx, super::peer::Input::ClientWrite { id, write });
        }
    }

    fn client_write(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let (lo, hi) = self.ctx.knobs.write_gap_ms;
            let gap = self.ctx.rng.range(lo, hi);
            self.ctx.schedule(now + gap, Ev::ClientWrite);
        }
        let leaders = self.write_targets();
        let Some(target) = self.ctx.rng.pick(&leaders) else { return };
        self.next_write += 1;
        let id = self.next_write;
        let key = self.ctx.rng.range(0, CLIENT_KEYS - 1);
        let path = format!("/k{key}");
        let data = Some(Bytes::from(format!("w{id}")));
        let write = if self.ctx.rng.chance(30) {
            WriteOp::Create {
                path: path.clone(),
                data,
                acl: open_acl(),
                flags: 0,
                ttl: None,
                op: crate::proto::op::CREATE,
            }
        } else {
            WriteOp::SetData { path: path.clone(), data, version: -1 }
        };
        let _ = SIM_CLIENT_SESSION;
        self.ctx.writes_submitted += 1;
        self.ctx.writes_in_flight.insert(id, now);
        self.ctx.trace(target, format!("client write #{id} to {path}"));
        if let Some(s) = self.servers.get_mut((target - 1) as usize) {
            s.push_input(&mut self.ctx, super::peer::Input::ClientWrite { id, write });
        }
    }

    /// Where clients send writes: established leaders that are up (the
    /// leader paused for the sync fault gets none meanwhile).
    fn write_targets(&self) -> Vec<Sid> {
        let leaders = self.servers.iter().filter(|s| s.up && s.is_established_leader());
        leaders.filter(|s| Some(s.sid) != self.paused_for_sync).map(|s| s.sid).collect()
    }

    /// Servers that serve and can run now (not paused): where clients
    /// connect and read.
    fn serving_and_running(&self, now: u64) -> Vec<Sid> {
        self.servers.iter().filter(|s| s.can_run(now) && s.is_serving()).map(|s| s.sid).collect()
    }

    fn client_sync_read(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.sync_rng.range(30, 300);
            self.ctx.schedule(now + gap, Ev::ClientSyncRead);
        }
        // Any server that thinks it serves, paused or stale ones included.
        let serving: Vec<Sid> = self.servers.iter().filter(|s| s.up && s.is_serving()).map(|s| s.sid).collect();
        let Some(target) = self.ctx.sync_rng.pick(&serving) else { return };
        let key = self.ctx.sync_rng.range(0, CLIENT_KEYS - 1);
        self.sync_read(target, format!("/k{key}"));
    }

    /// A plain read (no sync) of a key on a serving server that is running:
    /// what it sees must be committed (`Oracle::check_read`).
    fn client_read(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.read_rng.range(20, 200);
            self.ctx.schedule(now + gap, Ev::ClientRead);
        }
        let serving: Vec<Sid> = self.serving_and_running(now);
        let Some(target) = self.ctx.read_rng.pick(&serving) else { return };
        let key = self.ctx.read_rng.range(0, CLIENT_KEYS - 1);
        let path = format!("/k{key}");
        self.ctx.plain_reads += 1;
        if let Some(s) = self.servers.get((target - 1) as usize) {
            s.plain_read(&mut self.ctx, &path);
        }
    }

    /// The register workload's next step: a create of a key not yet known
    /// to exist; otherwise a blind write, a CAS on the version the client
    /// last saw, a sync + read, or a burst of 2-3 CASes from different
    /// clients on one version (contention: exactly one may win).
    fn register_op(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.reg_rng.range(25, 150);
            self.ctx.schedule(now + gap, Ev::RegisterOp);
        }
        let key = self.ctx.reg_rng.range(0, registers::REGISTER_KEYS - 1);
        let path = registers::register_path(key);
        let leaders = self.write_targets();
        if !self.ctx.registers.exists(key) {
            let Some(target) = self.ctx.reg_rng.pick(&leaders) else { return };
            let id = self.ctx.registers.invoke_create(key);
            let write = WriteOp::Create {
                path: path.clone(),
                data: Some(registers::value_data(0)),
                acl: open_acl(),
                flags: 0,
                ttl: None,
                op: crate::proto::op::CREATE,
            };
            self.ctx.trace(target, format!("register client creates {path}"));
            if let Some(s) = self.servers.get_mut((target - 1) as usize) {
                s.push_input(&mut self.ctx, super::peer::Input::ClientWrite { id, write });
            }
            return;
        }
        let client = self.ctx.reg_rng.range(0, registers::REGISTER_CLIENTS - 1);
        let roll = self.ctx.reg_rng.range(0, 99);
        if roll < 40 {
            let serving: Vec<Sid> = self.servers.iter().filter(|s| s.up && s.is_serving()).map(|s| s.sid).collect();
            let Some(target) = self.ctx.reg_rng.pick(&serving) else { return };
            let id = self.ctx.registers.invoke(key, client, target, OpKind::Read, now);
            self.ctx.trace(target, format!("register client {client} sync #{id} then read {path}"));
            if let Some(s) = self.servers.get_mut((target - 1) as usize) {
                s.push_input(&mut self.ctx, super::peer::Input::ClientSync { id, path });
            }
            return;
        }
        let Some(target) = self.ctx.reg_rng.pick(&leaders) else { return };
        // (client, expected version; -1 = a blind write)
        let mut ops: Vec<(u64, i32)> = Vec::new();
        if roll < 60 {
            ops.push((client, -1));
        } else if roll < 85 {
            ops.push((client, self.ctx.registers.seen_version(client, key)));
        } else {
            let expected = self.ctx.registers.seen_version(client, key);
            let n = self.ctx.reg_rng.range(2, 3);
            for i in 0..n {
                ops.push(((client + i) % registers::REGISTER_CLIENTS, expected));
            }
        }
        for (client, expected) in ops {
            let kind = if expected < 0 { OpKind::Write { value: 0 } } else { OpKind::Cas { expected, value: 0 } };
            let id = self.ctx.registers.invoke(key, client, target, kind, now);
            let value = id - registers::REGISTER_OP_ID_BASE;
            let write =
                WriteOp::SetData { path: path.clone(), data: Some(registers::value_data(value)), version: expected };
            self.ctx
                .trace(target, format!("register client {client} #{id} sets {path} to r{value} (version {expected})"));
            if let Some(s) = self.servers.get_mut((target - 1) as usize) {
                s.push_input(&mut self.ctx, super::peer::Input::ClientWrite { id, write });
            }
        }
    }

    /// A register client reads a key without a sync on the server its
    /// connection stays on (connecting to a serving, running one when it
    /// has none or that server dropped its clients), answered at once
    /// from that server's read view. ZooKeeper promises per connection:
    /// its reads never go back in version, and after its own write was
    /// answered there, they see it or newer. Changes no state and adds no
    /// trace line (the details are in a failure's report).
    fn register_plain_read(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.sticky_rng.range(20, 200);
            self.ctx.schedule(now + gap, Ev::RegisterPlainRead);
        }
        let client = self.ctx.sticky_rng.range(0, registers::REGISTER_CLIENTS - 1);
        let key = self.ctx.sticky_rng.range(0, registers::REGISTER_KEYS - 1);
        let connected = self.ctx.registers.sticky.get(&client).is_some_and(|c| {
            self.servers
                .get((c.sid - 1) as usize)
                .is_some_and(|s| s.up && s.client_generation == c.generation && s.is_serving())
        });
        if !connected {
            let serving: Vec<Sid> = self.serving_and_running(now);
            let Some(target) = self.ctx.sticky_rng.pick(&serving) else { return };
            let Some(s) = self.servers.get((target - 1) as usize) else { return };
            let conn = registers::StickyConn::new(target, s.client_generation);
            self.ctx.registers.sticky.insert(client, conn);
        }
        let Some(sid) = self.ctx.registers.sticky.get(&client).map(|c| c.sid) else { return };
        let Some(s) = self.servers.get((sid - 1) as usize) else { return };
        if !s.can_run(now) || !self.ctx.registers.exists(key) {
            return; // paused: this read waits out the pause; or not created yet
        }
        let version = s.read_view_version(&registers::register_path(key)).unwrap_or(-1);
        if let Some(detail) = self.ctx.registers.sticky_read(client, key, version, now) {
            self.ctx.oracle.fail("monotonic-reads", detail, now);
        }
    }

    /// The end of a run: every register's history must be linearizable.
    /// Fails the run (if nothing failed it before) and returns the report.
    fn final_linearizable_check(&mut self) -> Option<String> {
        let (key, excerpt) = self.ctx.registers.check()?;
        let detail = format!(
            "seed {}: the history of {} is not linearizable: {excerpt}",
            self.config.seed,
            registers::register_path(key)
        );
        if self.ctx.oracle.failure.is_none() {
            let now = self.ctx.now;
            self.ctx.oracle.fail("linearizable", detail.clone(), now);
        }
        Some(detail)
    }

    /// A client sets a one-shot watch (exists, watch=true) on a key at a
    /// serving, running server, then re-reads the key there a few times.
    fn client_watch(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.watch_rng.range(50, 400);
            self.ctx.schedule(now + gap, Ev::ClientWatch);
        }
        let serving: Vec<Sid> = self.serving_and_running(now);
        let Some(target) = self.ctx.watch_rng.pick(&serving) else { return };
        let key = self.ctx.watch_rng.range(0, CLIENT_KEYS - 1);
        let path = format!("/k{key}");
        let session = 0x5700_0000_0000_0000 + self.ctx.token() as i64;
        let Some(s) = self.servers.get_mut((target - 1) as usize) else { return };
        let set_at = s.read_view_mzxid(&path).unwrap_or(0);
        s.set_watch(session, &path);
        let generation = s.client_generation;
        self.ctx.trace(target, format!("client watches {path} (version 0x{set_at:x})"));
        self.ctx.watchers.insert(session, Watcher { sid: target, generation, path, set_at, fired: None });
        let at = now + self.ctx.watch_rng.range(5, 100);
        self.ctx.schedule(at, Ev::WatchReread { session, left: 5 });
    }

    /// A new session client connects to a serving, running server
    /// (createSession), with a timeout of 1.2-4 s.
    fn session_client_start(&mut self) {
        let now = self.ctx.now;
        if now + self.config.quiet_tail_ms < self.config.duration_ms {
            let gap = self.ctx.session_rng.range(200, 1_200);
            self.ctx.schedule(now + gap, Ev::SessionClientStart);
        }
        let serving: Vec<Sid> = self.serving_and_running(now);
        let Some(target) = self.ctx.session_rng.pick(&serving) else { return };
        let timeout_ms = self.ctx.session_rng.range(12, 40) * 100;
        let client = self.ctx.token();
        let Some(s) = self.servers.get_mut((target - 1) as usize) else { return };
        let generation = s.client_generation;
        self.ctx.session_clients.insert(
            client,
            SessionClient {
                sid: target,
                generation,
                timeout_ms,
                session_id: None,
                state: ClientState::Connecting,
                ephemeral: None,
            },
        );
        self.ctx.trace(target, format!("session client {client} connects (timeout {timeout_ms} ms)"));
        s.push_input(&mut self.ctx, super::peer::Input::ClientConnect { client, timeout_ms: timeout_ms as i32 });
        self.ctx.schedule(now + timeout_ms / 3, Ev::SessionPing(client));
    }

    /// A session client pings its server while the connection lives (a
    /// paused server's socket buffers the ping); a lost connection ends
    /// the client (it stops pinging; its session must then expire).
    fn session_ping(&mut self, client: u64) {
        let now = self.ctx.now;
        let Some(c) = self.ctx.session_clients.get(&client).cloned() else { return };
        if !c.pinging() {
            return;
        }
        if now + self.config.quiet_tail_ms >= self.config.duration_ms {
            // The quiet tail: clients walk away, so their sessions expire
            // (and commit everywhere) well before convergence is judged.
            if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                c.state = ClientState::Quiet(now);
            }
            return;
        }
        let connected =
            self.servers.get((c.sid - 1) as usize).is_some_and(|s| s.up && s.client_generation == c.generation);
        if !connected {
            // A client with a session reconnects with it (most do, from
            // the reconnect stream); one still connecting gives up.
            let reconnects = c.session_id.is_some()
                && c.state == ClientState::Live
                && self.ctx.reconnect_rng.as_mut().is_some_and(|r| r.chance(70));
            if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                c.state = if reconnects { ClientState::Reconnecting(now) } else { ClientState::Quiet(now) };
            }
            if reconnects {
                self.ctx.trace(c.sid, format!("session client {client} lost its connection; reconnects"));
                self.session_reconnect(client);
            } else {
                self.ctx.trace(c.sid, format!("session client {client} lost its connection; stops pinging"));
            }
            return;
        }
        if let (Some(session_id), Some(s)) = (c.session_id, self.servers.get_mut((c.sid - 1) as usize)) {
            s.push_input(&mut self.ctx, super::peer::Input::ClientPing { session_id });
        }
        self.ctx.schedule(now + c.timeout_ms / 3, Ev::SessionPing(client));
    }

    /// A reconnecting client tries a serving, running server with its
    /// session id (production: a ConnectRequest with the id and password,
    /// revalidated by the leader), again every third of its timeout while
    /// no answer comes, until the timeout has passed since it lost its
    /// connection (then it gives up: its session must expire).
    fn session_reconnect(&mut self, client: u64) {
        let now = self.ctx.now;
        let Some(c) = self.ctx.session_clients.get(&client).cloned() else { return };
        let (ClientState::Reconnecting(since), Some(session_id)) = (c.state, c.session_id) else { return };
        if now >= since + c.timeout_ms || now + self.config.quiet_tail_ms >= self.config.duration_ms {
            if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                c.state = ClientState::Quiet(since);
            }
            self.ctx.trace(c.sid, format!("session client {client} gives up reconnecting"));
            return;
        }
        let serving: Vec<Sid> = self.serving_and_running(now);
        let target = self.ctx.reconnect_rng.as_mut().and_then(|r| r.pick(&serving));
        if let Some(target) = target {
            if let Some(s) = self.servers.get_mut((target - 1) as usize) {
                let generation = s.client_generation;
                if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                    c.sid = target;
                    c.generation = generation;
                }
                self.ctx.trace(target, format!("session client {client} reconnects with session 0x{session_id:x}"));
                let timeout_ms = c.timeout_ms as i32;
                s.push_input(&mut self.ctx, super::peer::Input::ClientReconnect { client, session_id, timeout_ms });
            }
        }
        self.ctx.schedule(now + (c.timeout_ms / 3).max(1), Ev::SessionReconnect(client));
    }

    /// A live client moves to another serving server with its session (a
    /// reconnect, revalidated by the leader) while the create it just sent
    /// may still be on its way through the old one.
    fn session_move(&mut self, client: u64) {
        let now = self.ctx.now;
        let Some(c) = self.ctx.session_clients.get(&client).cloned() else { return };
        let Some(session_id) = c.session_id else { return };
        let others: Vec<Sid> = self.serving_and_running(now).into_iter().filter(|&sid| sid != c.sid).collect();
        let Some(target) = self.ctx.move_rng.as_mut().and_then(|r| r.pick(&others)) else { return };
        let Some(s) = self.servers.get_mut((target - 1) as usize) else { return };
        let generation = s.client_generation;
        if let Some(moving) = self.ctx.session_clients.get_mut(&client) {
            moving.sid = target;
            moving.generation = generation;
            moving.state = ClientState::Reconnecting(now);
        }
        self.ctx.trace(
            target,
            format!("session client {client} moves from server {} with session 0x{session_id:x}", c.sid),
        );
        let timeout_ms = c.timeout_ms as i32;
        s.push_input(&mut self.ctx, super::peer::Input::ClientReconnect { client, session_id, timeout_ms });
        self.ctx.schedule(now + (c.timeout_ms / 3).max(1), Ev::SessionReconnect(client));
    }

    /// A live session client's next step: create its ephemeral, or end
    /// (close the session, or walk away and stop pinging).
    fn session_step(&mut self, client: u64) {
        let now = self.ctx.now;
        let Some(c) = self.ctx.session_clients.get(&client).cloned() else { return };
        let Some(session_id) = c.session_id else { return };
        if c.state != ClientState::Live {
            return;
        }
        let Some(s) = self.servers.get_mut((c.sid - 1) as usize) else { return };
        if !s.up || s.client_generation != c.generation {
            return; // the next ping notices
        }
        if c.ephemeral.is_none() && self.ctx.session_rng.chance(70) {
            let path = format!("/e{client}");
            self.ctx.trace(c.sid, format!("session client {client} creates ephemeral {path}"));
            s.push_input(&mut self.ctx, super::peer::Input::ClientEphemeral { client, session_id, path });
            let at = now + self.ctx.session_rng.range(300, 4_000);
            self.ctx.schedule(at, Ev::SessionStep(client));
            if self.ctx.move_rng.as_mut().is_some_and(|r| r.chance(SESSION_MOVE_PERCENT)) {
                self.session_move(client);
            }
            return;
        }
        if self.ctx.session_rng.chance(50) {
            self.ctx.trace(c.sid, format!("session client {client} closes session 0x{session_id:x}"));
            if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                c.state = ClientState::Closing;
            }
            s.push_input(&mut self.ctx, super::peer::Input::ClientClose { client, session_id });
        } else {
            self.ctx.trace(c.sid, format!("session client {client} walks away from session 0x{session_id:x}"));
            if let Some(c) = self.ctx.session_clients.get_mut(&client) {
                c.state = ClientState::Quiet(now);
            }
        }
    }

    /// The end of a run, sessions: a session whose client stopped pinging
    /// (or asked to close) long enough ago, with the world quiet since, is
    /// gone on every server; every ephemeral's owner is a session its
    /// server holds.
    fn final_session_checks(&mut self) {
        let now = self.ctx.now;
        for s in &self.servers {
            for (owner, paths) in s.tree().ephemerals_by_session() {
                if !s.holds_session(owner) {
                    let detail = format!(
                        "server {} holds ephemerals {paths:?} of session 0x{owner:x}, which it does not hold",
                        s.sid
                    );
                    self.ctx.oracle.fail("sessions", detail, now);
                    return;
                }
            }
            // Every server that serves: an established leader or a
            // standalone server expires sessions itself; a learner drops
            // them as it applies the leader's closes, and a SNAP gives it
            // the table of the snapshot's moment (the `snap-live-sessions`
            // plant sends the leader's live table, ahead of the tree, and a
            // learner then keeps a session that never committed for good).
            if !s.up || !s.is_serving() {
                continue;
            }
            for session in s.session_ids_held() {
                let Some(c) = self.ctx.session_of.get(&session).and_then(|client| self.ctx.session_clients.get(client))
                else {
                    let detail = format!("server {} holds session 0x{session:x}, which no client asked for", s.sid);
                    self.ctx.oracle.fail("sessions", detail, now);
                    return;
                };
                let stopped = c.stopped_at();
                let bound = c.timeout_ms + super::sessions::GONE_BY_MS;
                if let Some(at) = stopped {
                    let since = at.max(self.ctx.last_disturbance_ms);
                    if since + bound < now {
                        let detail = format!(
                            "server {} still holds session 0x{session:x} (timeout {} ms) {} ms after its client stopped pinging or closed it (quiet since t={since})",
                            s.sid,
                            c.timeout_ms,
                            now - at.max(1)
                        );
                        self.ctx.oracle.fail("sessions", detail, now);
                        return;
                    }
                }
            }
        }
    }

    /// The watching client reads its key again: if the data shows a change
    /// after the version it watched, its event must have come first.
    fn watch_reread(&mut self, session: i64, left: u32) {
        let now = self.ctx.now;
        let Some(w) = self.ctx.watchers.get(&session).cloned() else { return };
        let Some(s) = self.servers.get((w.sid - 1) as usize) else { return };
        if !s.up || s.client_generation != w.generation || w.fired.is_some() {
            // Disconnected (its watch went with the connection), or done.
            self.ctx.watchers.remove(&session);
            return;
        }
        if !s.can_run(now) {
            self.ctx.schedule(s.paused_until, Ev::WatchReread { session, left });
            return;
        }
        let seen = s.read_view_mzxid(&w.path).unwrap_or(0);
        if seen > w.set_at {
            let detail = format!(
                "server {}: a client watching {} (set at version 0x{:x}) read it changed at 0x{seen:x} before any watch event",
                w.sid, w.path, w.set_at
            );
            self.ctx.oracle.fail("watch-order", detail, now);
            return;
        }
        if left == 0 {
            // Stops looking; a later event still counts for the order check.
            return;
        }
        let at = now + self.ctx.watch_rng.range(5, 100);
        self.ctx.schedule(at, Ev::WatchReread { session, left: left - 1 });
    }

    /// A client's sync then read of `path` on `target`, starting now.
    fn sync_read(&mut self, target: Sid, path: String) {
        let id = self.ctx.token();
        let floor = self.ctx.oracle.sync_floor(&path);
        self.ctx.syncs_submitted += 1;
        self.ctx.syncs_in_flight.insert(id, (target, path.clone(), floor, self.ctx.now));
        self.ctx.trace(target, format!("client sync #{id} then read {path} (acknowledged floor 0x{floor:x})"));
        if let Some(s) = self.servers.get_mut((target - 1) as usize) {
            s.push_input(&mut self.ctx, super::peer::Input::ClientSync { id, path });
        }
    }

    /// The fault that makes syncs interesting: the established leader is
    /// SIGSTOPped for longer than syncLimit, so the others give up on it,
    /// elect a new leader and commit writes; it resumes believing it still
    /// leads, and a sync reaches it in the same turn its tick would notice.
    fn pause_leader_for_sync(&mut self) {
        let now = self.ctx.now;
        // A leader with nothing uncommitted: a sync with commits still to
        // come would wait for them, which a replaced leader never gets.
        let leaders: Vec<Sid> = self
            .servers
            .iter()
            .filter(|s| s.up && s.paused_until <= now && s.is_quiescent_leader())
            .map(|s| s.sid)
            .collect();
        let Some(victim) = self.ctx.sync_rng.pick(&leaders) else {
            // None right now: look again in a moment.
            if now + 4_000 < self.config.fault_end_ms {
                self.ctx.schedule(now + 1, Ev::PauseLeaderForSync);
            }
            return;
        };
        self.paused_for_sync = Some(victim);
        self.ctx.disturbed();
        let sync_ms = self.ctx.knobs.tick_ms * self.ctx.knobs.sync_limit_ticks;
        let pause = sync_ms + self.ctx.sync_rng.range(1_500, 3_000);
        if let Some(s) = self.servers.get_mut((victim - 1) as usize) {
            s.paused_until = now + pause;
        }
        self.ctx.trace(victim, format!("PAUSED for {pause} ms (leader; a sync will meet it as it resumes)"));
        self.ctx.schedule(now + pause, Ev::Resume(victim));
        // Any key: with a write every 5-120 ms over six keys, each one is
        // changed by the new leader during the pause.
        let key = self.ctx.sync_rng.range(0, CLIENT_KEYS - 1);
        self.ctx.schedule(now + pause, Ev::SyncReadAt { sid: victim, path: format!("/k{key}") });
    }

    fn fault_tick(&mut self) {
        let now = self.ctx.now;
        if now >= self.config.fault_end_ms {
            return;
        }
        let (lo, hi) = self.ctx.knobs.fault_gap_ms;
        let gap = self.ctx.rng.range(lo, hi);
        self.ctx.schedule(now + gap, Ev::FaultTick);
        let sids: Vec<Sid> = self.servers.iter().map(|s| s.sid).collect();
        let up: Vec<Sid> = self.servers.iter().filter(|s| s.up).map(|s| s.sid).collect();
        let heal_after = self.ctx.rng.range(200, 5_000);
        match self.ctx.rng.range(0, 5) {
            0 => {
                // Crash; prefer the leader half of the time (it is where bugs hide).
                let leaders: Vec<Sid> =
                    self.servers.iter().filter(|s| s.is_established_leader()).map(|s| s.sid).collect();
                let victim = if self.ctx.rng.chance(50) { self.ctx.rng.pick(&leaders) } else { None };
                let Some(victim) = victim.or_else(|| self.ctx.rng.pick(&up)) else { return };
                if let Some(s) = self.servers.get_mut((victim - 1) as usize) {
                    s.crash(&mut self.ctx);
                }
                let back = self.ctx.rng.range(100, 4_000);
                self.ctx.schedule(now + back, Ev::Restart(victim));
            }
            1 => {
                let Some(victim) = self.ctx.rng.pick(&sids) else { return };
                let pairs: Vec<(Sid, Sid)> =
                    sids.iter().filter(|&&o| o != victim).flat_map(|&o| [(o, victim), (victim, o)]).collect();
                self.partition(pairs, heal_after, format!("isolates s{victim}"));
            }
            2 => {
                let (Some(a), Some(b)) = (self.ctx.rng.pick(&sids), self.ctx.rng.pick(&sids)) else { return };
                if a != b {
                    self.partition(vec![(a, b)], heal_after, format!("one-way partition s{a} -> s{b}"));
                }
            }
            3 => {
                let Some(victim) = self.ctx.rng.pick(&up) else { return };
                let pause = self.ctx.rng.range(100, 3_000);
                if let Some(s) = self.servers.get_mut((victim - 1) as usize) {
                    s.paused_until = now + pause;
                }
                self.ctx.trace(victim, format!("PAUSED for {pause} ms"));
                self.ctx.schedule(now + pause, Ev::Resume(victim));
            }
            4 => {
                let conns: Vec<ConnId> = self.ctx.net.conns.keys().copied().collect();
                if let Some(c) = self.ctx.rng.pick(&conns) {
                    self.ctx.trace(0, format!("breaks connection {c}"));
                    let notify = self.ctx.rng.chance(80);
                    self.ctx.break_conn(c, notify, "connection reset");
                }
            }
            _ => {
                // Split into two groups.
                let mut a = Vec::new();
                let mut b = Vec::new();
                for &s in &sids {
                    if self.ctx.rng.chance(50) {
                        a.push(s)
                    } else {
                        b.push(s)
                    }
                }
                let pairs: Vec<(Sid, Sid)> =
                    a.iter().flat_map(|&x| b.iter().flat_map(move |&y| [(x, y), (y, x)])).collect();
                if !pairs.is_empty() {
                    self.partition(pairs, heal_after, format!("splits {a:?} | {b:?}"));
                }
            }
        }
    }

    fn partition(&mut self, pairs: Vec<(Sid, Sid)>, heal_after: u64, what: String) {
        self.ctx.trace(0, format!("PARTITION {what} for {heal_after} ms"));
        for p in &pairs {
            self.ctx.net.blocked.insert(*p);
        }
        let at = self.ctx.now + heal_after;
        self.ctx.schedule(at, Ev::Heal(pairs));
    }

    fn final_checks(&mut self) {
        let now = self.ctx.now;
        if let Some(heal) = self.ctx.heal_ms {
            match self.ctx.first_ack_after_heal_ms {
                Some(t) if t - heal <= self.config.liveness_bound_ms => {}
                other => {
                    let detail = format!(
                        "faults healed at t={heal} with every server up; first write submitted after that acknowledged at {other:?} (bound {} ms)",
                        self.config.liveness_bound_ms
                    );
                    self.ctx.oracle.fail("liveness", detail, now);
                    return;
                }
            }
        }
        // Quiet tail: every server serves, at one zxid and one digest.
        let states: Vec<(Sid, bool, i64, i64)> =
            self.servers.iter().map(|s| (s.sid, s.is_serving(), s.last_zxid(), s.tree().digest())).collect();
        let Some(first) = states.first().copied() else { return };
        for s in &states {
            if !s.1 || (s.2, s.3) != (first.2, first.3) {
                let detail = format!(
                    "after {} ms without faults or writes the servers differ (sid, serving, zxid, digest): {states:x?}",
                    self.config.quiet_tail_ms
                );
                self.ctx.oracle.fail("convergence", detail, now);
                return;
            }
        }
        self.final_session_checks();
    }
}

fn open_acl() -> Vec<crate::proto::Acl> {
    vec![crate::proto::Acl {
        perms: crate::proto::perms::ALL,
        id: crate::proto::Id { scheme: "world".into(), id: "anyone".into() },
    }]
}
