//! One simulated ensemble member: the production sans-IO cores
//! (`zab::election::Election`, `zab::leader::LeaderCore`,
//! `zab::follower::LearnerCore`, `tree::DataTree`) driven the way
//! `server::quorum_peer` drives them — elect, lead or follow until the role
//! ends, rebuild the state from disk, elect again — with the simulated
//! disk and network in place of glommio's.
//!
//! The glue in this file MIRRORS production code that lives only in glommio
//! code (`quorum_peer.rs`, `commit_shard.rs`, `recovery.rs`); docs/simulation.md
//! lists each mirrored piece. Where the production loop awaits its own
//! fdatasync or an epoch-file write inline, this one stops too: the role's
//! `stage` remembers where the loop is, and the disk completion resumes it.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};

use super::disk::{self, EpochFile, LogFault, SimDisk, SnapshotInProgress, SnapshotStage};
use super::net::{ConnId, Dir, Wire};
use super::oracle::{History, HistoryEntry};
use super::rng::fnv1a;
use super::sessions::SessionReply;
use super::world::{Ctx, Ev};
use crate::acl::ServerIdentity;
use crate::commit::{
    forwarded::ForwardedOp, BetweenRoles, BetweenRolesStep, ElectionCarry, ExecSettings, Intake, LeaderInput,
    LeaderStep, LeaderTerm, LeaderTurn, LearnerPending, PendingBatches, Sequencer, SessionHolder, StandaloneStep,
    StandaloneTurn, TurnBatch, TxnSink, TxnWaiter,
};
use crate::server::snapshots::SnapshotPolicy;
use crate::session::{PublishedSessions, SessionChange, SessionIdAllocator};
use crate::storage::epoch_files::{reconcile_epochs, StoredEpochs};
use crate::storage::group_commit::{GroupCommit, LogWrite};
use crate::storage::recovery::{
    recover_from, LoadedSnapshot, Recovered, RecoveryNote, RecoveryOptions, RecoveryStore, SnapshotSkip,
};
use crate::storage::txn::{encode_txn, LoggedTxn, Txn, TxnDigest, TxnHeader};
use crate::tree::{DataTree, WriteOp};
use crate::zab::election::{Action, Decision, Election, ElectionConfig, Notification, Role};
use crate::zab::election_wire::LearnerType;
use crate::zab::ensemble::{Ensemble, Sid};
use crate::zab::follower::{LearnerAction, LearnerCore, LearnerSettings};
use crate::zab::leader::{LeaderAction, LeaderCore, LeaderSettings, LeaderStart, LearnerConn, SyncRequester};
use crate::zab::packets::{epoch_of, make_zxid, ForwardedRequest, QuorumPacket, ToLeader, ToLearner};
use crate::zab::sync_plan::{DiskLogIndex, SyncPolicy};

/// Mirrors `quorum_peer::LEADER_CONNECT_RETRY_MS`.
pub const LEADER_CONNECT_RETRY_MS: u64 = 200;

/// Txn header times are the simulated clock plus this (a fixed "wall
/// clock" so replays are byte-identical).
pub const SIM_WALL_CLOCK_BASE_MS: i64 = 1_700_000_000_000;

/// The session the simulated clients write under (the server identity).
pub const SIM_CLIENT_SESSION: i64 = 0;

/// What reaches a server's loop (production: `commit_shard::Event`).
#[derive(Debug)]
pub enum Input {
    LearnerUp(ConnId),
    Learner(ConnId, ToLeader),
    LearnerDown(ConnId, String),
    LeaderPacket(ConnId, ToLearner),
    LeaderSnapshot {
        conn: ConnId,
        zxid: i64,
        stream: Bytes,
    },
    LeaderDown(ConnId, String),
    /// A log write became durable (production's `Event::LogDurable`).
    LogDurable,
    ClientWrite {
        id: u64,
        write: WriteOp,
    },
    /// A client's sync, then a read of `path` once it is answered.
    ClientSync {
        id: u64,
        path: String,
    },
    /// A session client connects (production's `ToCommit::CreateSession`).
    ClientConnect {
        client: u64,
        timeout_ms: i32,
    },
    /// A session client's ping (production's `ToCommit::Touch`).
    ClientPing {
        session_id: i64,
    },
    /// A session client creates its ephemeral.
    ClientEphemeral {
        client: u64,
        session_id: i64,
        path: String,
    },
    /// A session client closes its session.
    ClientClose {
        client: u64,
        session_id: i64,
    },
    /// A session client that lost its connection reconnects with its
    /// session (production's `ToCommit::Revalidate`).
    ClientReconnect {
        client: u64,
        session_id: i64,
        timeout_ms: i32,
    },
}

impl Input {
    /// A session client's request (executed by the leader / standalone,
    /// forwarded by a learner).
    fn is_session_op(&self) -> bool {
        matches!(
            self,
            Input::ClientConnect { .. }
                | Input::ClientPing { .. }
                | Input::ClientEphemeral { .. }
                | Input::ClientClose { .. }
                | Input::ClientReconnect { .. }
        )
    }

    /// The reply when the server turns this session op away.
    fn session_refusal(&self) -> Option<SessionReply> {
        match self {
            Input::ClientConnect { client, .. }
            | Input::ClientEphemeral { client, .. }
            | Input::ClientClose { client, .. }
            | Input::ClientReconnect { client, .. } => Some(SessionReply::Refused { client: *client }),
            _ => None,
        }
    }
}

/// A batch the leader logged; published once committed (kept in the
/// shared `commit::PendingBatches` with the last zxid it holds).
struct PendingBatch {
    tree: DataTree,
    txns: Vec<(i64, u64, i64)>,
    writes: Vec<ClientWriteDone>,
    /// Local syncs answered with this batch: (sync id, path read).
    syncs: Vec<u64>,
    /// Session txns (createSession, ephemeral creates, closes, expiries).
    session_txns: Vec<SessionTxnDone>,
    /// Production's `CommitBatch::session_changes`.
    session_changes: Vec<SessionChange>,
}

/// A session txn the leader (or standalone server) executed.
struct SessionTxnDone {
    zxid: i64,
    triggers: Vec<crate::tree::WatchTrigger>,
    /// The session this txn closed (closeSession or expiry).
    closed: Option<i64>,
    /// An ephemeral of this session it created: (session, path).
    ephemeral: Option<(i64, String)>,
    reply: Option<SessionReply>,
}

/// A client write the leader executed.
struct ClientWriteDone {
    id: u64,
    zxid: i64,
    /// The key, if the write changed it (a create of an existing node or a
    /// setData of a missing one does not).
    changed: Option<String>,
    /// The watch events the write fires (`Executed::triggers`).
    triggers: Vec<crate::tree::WatchTrigger>,
}

impl TurnBatch for LeaderBatch {
    fn logged(&self) -> &[(i64, Bytes)] {
        &self.logged
    }

    fn has_entries(&self) -> bool {
        !self.logged.is_empty() || !self.writes.is_empty() || !self.syncs.is_empty() || !self.session_txns.is_empty()
    }
}

#[derive(Default)]
struct LeaderBatch {
    logged: Vec<(i64, Bytes)>,
    /// (zxid, txn hash, digest after).
    txns: Vec<(i64, u64, i64)>,
    writes: Vec<ClientWriteDone>,
    /// Local syncs whose answer rides on this batch (sync ids).
    syncs: Vec<u64>,
    session_txns: Vec<SessionTxnDone>,
    session_changes: Vec<SessionChange>,
    /// For the oracle: (session, zxid, opened) of each createSession /
    /// close executed into this batch.
    session_events: Vec<(i64, i64, bool)>,
}

/// A sync the planted `SyncWithoutRound` glue holds until the commits
/// before it are in.
#[derive(Debug, Clone, Copy)]
enum PlantedSync {
    Local(u64),
    Learner(LearnerConn),
}

pub struct Leading {
    pub core: LeaderCore,
    links: BTreeMap<LearnerConn, ConnId>,
    next_conn: LearnerConn,
    /// Production's `LeaderTerm` (shared): sealed batches, the commit
    /// floor, records not yet durable, local syncs by token (sync ids).
    term: LeaderTerm<PendingBatch, u64>,
    /// Production's `LeaderTurn` (shared): the turn's order and its queue
    /// of actions, kept while an action waits on the simulated disk.
    turn: LeaderTurn,
    batch: LeaderBatch,
    /// Plant only: syncs waiting for `after_zxid` to be committed.
    planted_syncs: VecDeque<(PlantedSync, i64)>,
    /// Plant only (`CommitOnMinority`): the newest zxid each learner
    /// connection ACKed.
    planted_acks: BTreeMap<ConnId, i64>,
}

impl Leading {
    fn conn_of(&self, id: ConnId) -> Option<LearnerConn> {
        self.links.iter().find(|(_, c)| **c == id).map(|(l, _)| *l)
    }
}

pub struct Following {
    pub core: LearnerCore,
    pub leader: Sid,
    conn: ConnId,
    /// Production's turn order (shared `commit::LearnerTurn`): the action
    /// queue, the txns for the log after it, whether a turn is under way.
    turn: crate::commit::LearnerTurn,
    /// Production's `LearnerPending::requests` (shared): connects and
    /// closes by client, revalidations as (client, timeout asked), the
    /// session clients' ephemeral creates as (client, path), syncs by id,
    /// sessions heard from since the last ping reply.
    requests: ForwardedRequests,
    /// (zxid, txn hash, digest) of the txns the sync applied before UPTODATE
    /// (the learner core applies a DIFF's committed txns at NEWLEADER):
    /// committed only once the leader establishes, so reported to the
    /// oracle at UPTODATE, and never if the leader is lost first.
    applied_before_uptodate: Vec<(i64, u64, i64)>,
}

/// Mirrors `CommitShard::run_standalone`: no election, no quorum; a batch
/// is executed, handed to the log and published once the log says durable.
pub struct Standalone {
    /// Batches logged, waiting for the log to report them durable.
    pending: PendingBatches<PendingBatch>,
}

pub enum PeerRole {
    Down,
    Standalone(Box<Standalone>),
    Looking(Box<Election>),
    Connecting { leader: Sid, give_up_at: u64 },
    Leading(Box<Leading>),
    Following(Box<Following>),
}

/// What the loop is blocked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    Epoch(u64),
    /// Mirrors `LogHandle::drain`: until everything logged is durable.
    LogDrain,
}

/// What waits for a log drain to finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterDrain {
    /// The learner action at the head of its queue (a TRUNC).
    LearnerAction,
    /// Between roles (`BetweenRolesStep::DrainLog`: the state is judged
    /// once the log is drained).
    BetweenRoles,
}

pub struct Server {
    pub sid: Sid,
    pub ensemble: Ensemble,
    pub disk: SimDisk,
    pub up: bool,
    pub incarnation: u64,
    started_at: u64,
    pub paused_until: u64,
    pub inbox: VecDeque<Input>,
    pub run_scheduled: bool,
    blocked: Option<Blocked>,
    /// Production's `CommitShard::seq`: tree, zxid counter, session table
    /// with holders, expiry (on this process's clock; only an established
    /// leader or a standalone server expires), session ids, log tail.
    /// A session's local owner is the session client's id.
    seq: Sequencer<u64>,
    /// The group-commit state (production's `LogHandle`): what is durable.
    log: GroupCommit,
    /// The fsync token of the log write in flight.
    log_write: Option<u64>,
    after_drain: Option<AfterDrain>,
    /// The learner core gave up on a silent leader (a clean end of the role).
    gave_up: bool,
    pub history: History,
    accepted: i64,
    current: i64,
    /// Production's `ElectionCarry` (shared): the logical clock and held
    /// vote one election hands the next.
    carry: ElectionCarry,
    /// Production's `BetweenRoles` (shared) while a role's end is cleaned
    /// up (kept while the log drains).
    between: Option<BetweenRoles>,
    /// The decided election, answering LOOKING peers while in a role.
    settled: Option<Election>,
    pub role: PeerRole,
    published_tree: DataTree,
    /// Production's `CommitShard::published_sessions`.
    published_sessions: PublishedSessions,
    config_text: Bytes,
    /// The log write in flight is to fail this way (a seeded disk fault).
    log_fault: Option<LogFault>,
    /// A restart read damaged bytes from this disk: a refused start is
    /// expected (production's Corrupt log), until the operator wipes it.
    pub disk_damaged: bool,
    /// Refused to start on a damaged disk; down until the operator wipes it.
    pub awaiting_wipe: bool,
    /// How far this process's clock has jumped ahead of the world's.
    clock_offset_ms: u64,
    /// Client watches on this server (production's `WatchRegistry`, one per
    /// worker): cleared whenever its clients are dropped.
    watches: crate::watch::WatchRegistry,
    /// Bumped whenever this server drops its clients (restart, a role
    /// ends): a client's watch lives only while this is unchanged.
    pub client_generation: u64,
    /// Plant only (`EventAfterData`): events held back to the next change.
    planted_events: Vec<(i64, crate::tree::WatchTrigger)>,
    /// Production's `CommitShard::snapshot_policy` (None: no periodic
    /// snapshots in this run); a new jitter seed at each start.
    snapshot_policy: Option<SnapshotPolicy>,
}

enum Flow {
    Continue,
    Blocked,
}

/// How fast the simulated snapshot thread writes (64 MB/s).
const SIM_SNAPSHOT_BYTES_PER_MS: u64 = 64 * 1024;

fn describe(n: &Notification) -> String {
    format!("{:?} leader {} zxid 0x{:x} round {} epoch {}", n.state, n.leader, n.zxid, n.election_epoch, n.peer_epoch)
}

fn hash_txn(bytes: &[u8]) -> u64 {
    fnv1a(bytes)
}

/// What an applied txn was, for a learner's session replies and checks.
struct Applied {
    session_id: i64,
    kind: AppliedKind,
    /// This learner's client that waits for the txn (`take_txn_waiter`).
    waiter: Option<TxnWaiter<u64, u64, (u64, String)>>,
}

/// See `Following::requests`.
type ForwardedRequests = LearnerPending<u64, (u64, i32), (u64, String), u64, u64>;

enum AppliedKind {
    CreateSession,
    CloseSession,
    /// Any other txn; `ephemeral`: the path of an ephemeral it created.
    Write {
        ok: bool,
        ephemeral: Option<String>,
    },
}

/// CreateMode::Ephemeral.
const EPHEMERAL_FLAGS: i32 = 1;

/// A session client's ephemeral create.
fn ephemeral_create(path: &str) -> WriteOp {
    WriteOp::Create {
        path: path.to_owned(),
        data: None,
        acl: crate::proto::types::open_acl_unsafe(),
        flags: EPHEMERAL_FLAGS,
        ttl: None,
        op: crate::proto::op::CREATE,
    }
}

/// The cxid a session client's request carries.
fn client_cxid(client: u64) -> i32 {
    (client & 0x7FFF_FFFF) as i32
}

/// The simulated txn wall time (production's `wall_clock_ms`).
fn sim_wall_ms(ctx: &Ctx) -> i64 {
    SIM_WALL_CLOCK_BASE_MS + ctx.now as i64
}

/// A process's commit core before recovery: empty, the run's tick.
fn empty_sequencer(tick_ms: i64) -> Sequencer<u64> {
    let ids = SessionIdAllocator::starting_at(1);
    Sequencer::new(DataTree::new(), 0, [], VecDeque::new(), tick_ms, ids, ExecSettings::default(), 0)
}

/// Where the shared core's txns go in the simulator: the batch being
/// built (encoded, as the log and the proposals carry them) and this
/// server's history for the oracle.
struct SimSink<'a> {
    batch: &'a mut LeaderBatch,
    history: &'a mut History,
}

impl TxnSink for SimSink<'_> {
    fn log(&mut self, header: &TxnHeader, txn: &Txn, digest: Option<TxnDigest>, tree_digest: i64) {
        let mut buf = BytesMut::with_capacity(128);
        encode_txn(&mut buf, header, txn, digest);
        let bytes = buf.freeze();
        let hash = hash_txn(&bytes);
        self.history.entries.insert(header.zxid, HistoryEntry { txn_hash: hash, digest: tree_digest });
        self.batch.logged.push((header.zxid, bytes));
        self.batch.txns.push((header.zxid, hash, tree_digest));
    }

    fn session_changed(&mut self, change: SessionChange) {
        self.batch.session_changes.push(change);
    }
}

impl Server {
    pub fn new(sid: Sid, ensemble: Ensemble, config_text: Bytes) -> Server {
        Server {
            sid,
            ensemble,
            disk: SimDisk::default(),
            up: false,
            incarnation: 0,
            started_at: 0,
            paused_until: 0,
            inbox: VecDeque::new(),
            run_scheduled: false,
            blocked: None,
            seq: empty_sequencer(1),
            log: GroupCommit::new(0),
            log_write: None,
            after_drain: None,
            gave_up: false,
            history: History::default(),
            accepted: 0,
            current: 0,
            carry: ElectionCarry::default(),
            between: None,
            settled: None,
            role: PeerRole::Down,
            published_tree: DataTree::new(),
            published_sessions: PublishedSessions::default(),
            config_text,
            log_fault: None,
            disk_damaged: false,
            awaiting_wipe: false,
            clock_offset_ms: 0,
            watches: crate::watch::WatchRegistry::new(),
            client_generation: 0,
            planted_events: Vec::new(),
            snapshot_policy: None,
        }
    }

    /// The connections are gone, and with them their watches.
    fn drop_clients(&mut self) {
        self.client_generation += 1;
        self.watches = crate::watch::WatchRegistry::new();
        self.planted_events.clear();
    }

    /// The version (mzxid) of `path` in what this server serves reads
    /// from: the published tree (leader, standalone) or the applied one.
    pub fn read_view_mzxid(&self, path: &str) -> Option<i64> {
        match &self.role {
            PeerRole::Following(_) => self.seq.tree().get(path).map(|n| n.mzxid()),
            PeerRole::Leading(_) | PeerRole::Standalone(_) => self.published_tree.get(path).map(|n| n.mzxid()),
            _ => None,
        }
    }

    /// The data version of `path` in the same read view (None: no node,
    /// or not serving).
    pub fn read_view_version(&self, path: &str) -> Option<i32> {
        match &self.role {
            PeerRole::Following(_) => self.seq.tree().get(path).map(|n| n.version()),
            PeerRole::Leading(_) | PeerRole::Standalone(_) => self.published_tree.get(path).map(|n| n.version()),
            _ => None,
        }
    }

    /// Whether this server's session table holds `session`.
    pub fn holds_session(&self, session: i64) -> bool {
        self.seq.holds_session(session)
    }

    /// The tree as this server has it (a leader's runs ahead of what it
    /// published).
    pub fn tree(&self) -> &DataTree {
        self.seq.tree()
    }

    pub fn last_zxid(&self) -> i64 {
        self.seq.last_zxid()
    }

    /// The sessions in this server's table.
    pub fn session_ids_held(&self) -> Vec<i64> {
        self.seq.session_timeouts().into_keys().collect()
    }

    /// exists(path, watch=true) from a client on this server.
    pub fn set_watch(&mut self, session: i64, path: &str) {
        self.watches.add_data_watch(session, path);
    }

    /// Fires the watch events of changes now visible to this server's
    /// readers, as the worker does before the batch's replies (production:
    /// `WatchRegistry::trigger` per `WatchTrigger`).
    fn fire_watches(&mut self, ctx: &mut Ctx, mut fired: Vec<(i64, crate::tree::WatchTrigger)>) {
        if ctx.knobs.plant == Some(super::world::Plant::EventAfterData) {
            // Planted bug: a change's events go out with the next change,
            // after its data was readable.
            std::mem::swap(&mut fired, &mut self.planted_events);
        }
        for (zxid, t) in fired {
            for session in self.watches.trigger(&t.path, t.event) {
                ctx.watch_fired(session, self.sid, zxid, &t.path);
            }
        }
    }

    /// The cores' clock: ms since this process started (production's
    /// `clock(self.started)`), plus any jump its clock made.
    fn now(&self, ctx: &Ctx) -> u64 {
        ctx.now.saturating_sub(self.started_at) + self.clock_offset_ms
    }

    /// The world time at which this process's clock reads `local_ms`.
    fn world_time(&self, local_ms: u64) -> u64 {
        (local_ms + self.started_at).saturating_sub(self.clock_offset_ms)
    }

    /// A voting member (not an observer).
    pub fn is_voter(&self) -> bool {
        !self.ensemble.is_observer(self.sid)
    }

    /// This process's clock leaps `jump_ms` ahead (a VM pause whose guest
    /// clock catches up at once). Timers set on the old reading fire on the
    /// new one: the election's is re-armed now, the role's tick runs at its
    /// next wake.
    pub fn jump_clock(&mut self, ctx: &mut Ctx, jump_ms: u64) {
        self.clock_offset_ms += jump_ms;
        ctx.disturbed();
        ctx.trace(self.sid, format!("CLOCK JUMPS {jump_ms} ms ahead while {}", self.role_name()));
        if matches!(self.role, PeerRole::Looking(_)) {
            ctx.schedule(ctx.now, Ev::ElectionTimer(self.sid, self.incarnation));
        }
    }

    pub fn is_serving(&self) -> bool {
        match &self.role {
            PeerRole::Standalone(_) => true,
            PeerRole::Leading(l) => l.core.is_established(),
            PeerRole::Following(f) => f.core.is_serving(),
            _ => false,
        }
    }

    /// An established leader with nothing proposed that is not committed
    /// and published (so a sync it gets needs no further commit).
    pub fn is_quiescent_leader(&self) -> bool {
        match &self.role {
            PeerRole::Leading(l) => {
                l.core.is_established()
                    && l.turn.is_idle()
                    && l.term.is_quiescent(&l.core, self.seq.last_zxid())
                    && self.log.is_idle()
            }
            _ => false,
        }
    }

    pub fn is_leading(&self) -> bool {
        matches!(self.role, PeerRole::Leading(_))
    }

    /// Takes client writes: an established leader, or a standalone server.
    pub fn is_established_leader(&self) -> bool {
        match &self.role {
            PeerRole::Leading(l) => l.core.is_established(),
            PeerRole::Standalone(_) => true,
            _ => false,
        }
    }

    /// A lone server with no quorum configuration (`--servers 1`).
    pub fn is_standalone_member(&self) -> bool {
        self.ensemble.voters.len() == 1 && self.ensemble.observers.is_empty()
    }

    pub fn role_name(&self) -> String {
        match &self.role {
            PeerRole::Down => "down".into(),
            PeerRole::Standalone(_) => "standalone".into(),
            PeerRole::Looking(_) => "looking".into(),
            PeerRole::Connecting { leader, .. } => format!("connecting to {leader}"),
            PeerRole::Leading(l) => format!(
                "leading epoch {:?}{}",
                l.core.epoch(),
                if l.core.is_established() { " (established)" } else { "" }
            ),
            PeerRole::Following(f) => {
                format!("following {}{}", f.leader, if f.core.is_serving() { " (serving)" } else { "" })
            }
        }
    }

    pub fn can_run(&self, now: u64) -> bool {
        self.up && now >= self.paused_until
    }

    // ------------------------------------------------------------------
    // Process lifecycle

    /// Starts the process: recovery from disk, then election.
    pub fn boot(&mut self, ctx: &mut Ctx) {
        self.up = true;
        self.incarnation += 1;
        self.started_at = ctx.now;
        self.paused_until = 0;
        self.inbox.clear();
        self.run_scheduled = false;
        self.blocked = None;
        self.log_write = None;
        self.after_drain = None;
        self.carry = ElectionCarry::default();
        self.between = None;
        self.settled = None;
        self.log_fault = None;
        self.clock_offset_ms = 0;
        self.drop_clients();
        // A new process: a new commit shard.
        self.seq = empty_sequencer(ctx.knobs.tick_ms as i64);
        ctx.trace(self.sid, format!("boots (incarnation {})", self.incarnation));
        ctx.disturbed();
        if let Err(e) = self.reload_from_disk(ctx, "restart") {
            self.cannot_load(ctx, format!("cannot start: {e}"));
            return;
        }
        // Mirrors `CommitShard::new` (the jitter seed comes from the seed).
        self.snapshot_policy =
            (ctx.knobs.snap_count > 0).then(|| SnapshotPolicy::new(ctx.knobs.snap_count, ctx.snap_rng.next_u64()));
        // As `CommitShard::new`: ids carry the server id, and continue
        // after the newest restored one this server handed out.
        self.seq.start_session_ids(self.sid as u8, SIM_WALL_CLOCK_BASE_MS + ctx.now as i64);
        if self.is_standalone_member() {
            self.start_standalone(ctx);
        } else {
            self.start_election(ctx);
        }
        ctx.schedule(self.next_wake_at(ctx), Ev::Wake(self.sid, self.incarnation));
    }

    /// The world time of this process's next wake: production's ticker
    /// (`commit::wake`), on this process's own clock.
    pub fn next_wake_at(&self, ctx: &Ctx) -> u64 {
        let interval = crate::commit::wake::wake_interval_ms(ctx.knobs.tick_ms as i64, !self.is_standalone_member());
        let local = crate::commit::wake::next_wake_ms(interval, self.now(ctx) as i64);
        self.world_time(local.max(0) as u64).max(ctx.now + 1)
    }

    /// kill -9 / power loss: only the disk's durable state survives.
    pub fn crash(&mut self, ctx: &mut Ctx) {
        if !self.up {
            return;
        }
        let mut what = self.disk.crash(&mut ctx.rng, ctx.knobs.writeback_percent);
        if let Some(snapshots) = self.disk.crash_snapshots(&mut ctx.snap_rng) {
            what = format!("{what}; {snapshots}");
        }
        ctx.disturbed();
        ctx.trace(self.sid, format!("CRASH ({what}) while {}", self.role_name()));
        self.stop_process();
        for conn in ctx.net.live_conns_of(self.sid) {
            // The kernel resets the dead process's sockets; a dead machine
            // tells nobody.
            let notify = ctx.rng.chance(ctx.knobs.crash_reset_percent);
            ctx.break_conn(conn, notify, "peer crashed");
        }
        ctx.net.election_outbox.retain(|(from, _), _| *from != self.sid);
    }

    /// Whatever the process held in memory is gone.
    fn stop_process(&mut self) {
        self.up = false;
        self.role = PeerRole::Down;
        self.settled = None;
        self.inbox.clear();
        self.blocked = None;
        self.log_write = None;
        self.log_fault = None;
        self.after_drain = None;
        self.between = None;
    }

    /// Production exits where this is called; an exit it makes on purpose
    /// is `exit_expected`. Here the server stays down and the run fails
    /// (every unexpected exit is a finding).
    fn die(&mut self, ctx: &mut Ctx, why: String) {
        ctx.trace(self.sid, format!("EXITS: {why}"));
        ctx.disturbed();
        ctx.oracle.fail("server-exits", format!("server {}: {why}", self.sid), ctx.now);
        self.up = false;
        self.role = PeerRole::Down;
        for conn in ctx.net.live_conns_of(self.sid) {
            ctx.break_conn(conn, true, "peer exited");
        }
    }

    /// An exit production makes on purpose (a failed log write: code 2;
    /// a refused start on a corrupt disk). The process is gone; the kernel
    /// closes its sockets. The world restarts it (or the operator wipes it).
    fn exit_expected(&mut self, ctx: &mut Ctx, why: String) {
        ctx.trace(self.sid, format!("EXITS (expected): {why}"));
        ctx.disturbed();
        ctx.oracle.expected_exit();
        self.stop_process();
        for conn in ctx.net.live_conns_of(self.sid) {
            ctx.break_conn(conn, true, "peer exited");
        }
        ctx.net.election_outbox.retain(|(from, _), _| *from != self.sid);
    }

    /// The state cannot be loaded from disk. Expected when a restart read
    /// damaged bytes (production refuses a Corrupt log and the operator
    /// must step in); a finding otherwise.
    fn cannot_load(&mut self, ctx: &mut Ctx, why: String) {
        if self.disk_damaged {
            self.awaiting_wipe = true;
            self.exit_expected(ctx, format!("{why} (the disk was damaged; waiting for the operator)"));
        } else {
            self.die(ctx, why);
        }
    }

    /// A refusal outside a restart (a reload when a role ends) waits for the
    /// operator too (`World::restart` calls it for refused starts): with
    /// periodic snapshots a restart may never read an old damaged log that
    /// a later reload does.
    fn call_the_operator(&mut self, ctx: &mut Ctx) {
        if self.awaiting_wipe {
            let (lo, hi) = ctx.knobs.operator_wipe_ms;
            let at = ctx.now + ctx.fault_rng.range(lo, hi);
            ctx.schedule(at, Ev::OperatorWipe(self.sid));
        }
    }

    /// The operator wipes the data directories (log, snapshots, epoch files).
    pub fn wipe(&mut self, ctx: &mut Ctx) {
        ctx.trace(self.sid, "OPERATOR WIPES the data directory".into());
        self.disk = SimDisk::default();
        self.disk_damaged = false;
        self.awaiting_wipe = false;
    }

    /// Production's `storage::recovery::recover_from` (on the simulated
    /// disk: `SimRecoveryStore`) followed by
    /// `quorum_peer::reload_from_disk` and `Epochs::load` (at a restart and
    /// after a TRUNC; between roles the epochs are `BetweenRoles`' own step).
    fn reload_from_disk(&mut self, ctx: &mut Ctx, what: &str) -> Result<(), String> {
        self.reload(ctx, what, true)
    }

    /// `quorum_peer::reload_from_disk` alone: the epoch files untouched.
    fn reload_state_from_disk(&mut self, ctx: &mut Ctx, what: &str) -> Result<(), String> {
        self.reload(ctx, what, false)
    }

    fn reload(&mut self, ctx: &mut Ctx, what: &str, with_epochs: bool) -> Result<(), String> {
        let options = RecoveryOptions {
            repair: false,
            recent_window_txns: ctx.knobs.recent_window_txns,
            check_txn_digests: ctx.knobs.recovery_checks_digests,
        };
        let planted_skip = ctx.knobs.plant == Some(super::world::Plant::ReplaySkipsRecord);
        let mut store = SimRecoveryStore {
            sid: self.sid,
            disk: &mut self.disk,
            ctx,
            history: History::default(),
            planted_skip,
            logs_read: 0,
            planted_originals: BTreeMap::new(),
        };
        let recovered = recover_from(&mut store, options);
        let history = std::mem::take(&mut store.history);
        let recovered = recovered.map_err(|e| e.0)?;
        self.disk.roll();
        let Recovered { tree, last_zxid, sessions, snapshot_zxid, recent_txns, .. } = recovered;
        // A standalone server keeps no epoch files (they are the quorum's).
        let epochs = if self.is_standalone_member() {
            Some(crate::storage::epoch_files::ReconciledEpochs {
                accepted_epoch: 0,
                current_epoch: 0,
                writes: Vec::new(),
            })
        } else if with_epochs {
            Some(self.load_epochs(last_zxid)?)
        } else {
            None
        };
        let epochs_read = match &epochs {
            Some(e) => format!(", epochs accepted {} current {}", e.accepted_epoch, e.current_epoch),
            None => String::new(),
        };
        ctx.trace(
            self.sid,
            format!(
                "{what}: recovered zxid 0x{last_zxid:x} digest {:x} (snapshot 0x{snapshot_zxid:x}){epochs_read}",
                tree.digest(),
            ),
        );
        ctx.oracle.check_recovered(self.sid, what, &history, ctx.now);
        self.published_tree = tree.clone();
        let now = self.now(ctx) as i64;
        self.seq.reset(tree, last_zxid, sessions, recent_txns, now);
        self.published_sessions.reset(self.seq.sessions());
        self.plant_expire_early_all(ctx);
        self.log.restart_at(last_zxid);
        self.history = history;
        if let Some(epochs) = epochs {
            self.accepted = epochs.accepted_epoch;
            self.current = epochs.current_epoch;
        }
        Ok(())
    }

    /// Mirrors `CommitShard::maybe_snapshot`: called after each batch is
    /// handed to the log, with the state as of `last_zxid` between batches.
    fn maybe_snapshot(&mut self, ctx: &mut Ctx, logged_txns: u64) {
        let Some(policy) = self.snapshot_policy.as_mut() else { return };
        if policy.logged(logged_txns) && self.disk.snapshot_writing.is_none() {
            self.start_snapshot(ctx);
            // `log.roll()`: the next write starts a new log file.
            self.log.roll();
            if let Some(policy) = self.snapshot_policy.as_mut() {
                policy.taken();
            }
        }
    }

    /// Mirrors `Snapshotter::start` + `write_snapshot_file`: the bytes are
    /// the production writer's; writing them takes a seeded time
    /// proportional to their size, then the temp file's fsync, the rename
    /// and the directory's fsync (`on_snapshot_step`).
    fn start_snapshot(&mut self, ctx: &mut Ctx) {
        let zxid = self.seq.last_zxid();
        let sessions: Vec<(i64, i32)> = self.seq.session_timeouts().into_iter().collect();
        let mut bytes = Vec::new();
        if let Err(e) = crate::storage::snapshot_format::write_snapshot(&mut bytes, zxid, &sessions, self.seq.tree()) {
            ctx.trace(self.sid, format!("snapshot 0x{zxid:x} failed: {e}"));
            return;
        }
        let token = ctx.token();
        let write_ms = ctx.snap_rng.range(2, 20) + bytes.len() as u64 / SIM_SNAPSHOT_BYTES_PER_MS;
        ctx.trace(
            self.sid,
            format!("snapshot 0x{zxid:x} started ({} bytes, {} sessions)", bytes.len(), sessions.len()),
        );
        self.disk.snapshot_writing = Some(SnapshotInProgress {
            token,
            zxid,
            bytes,
            history: self.history.clone(),
            stage: SnapshotStage::Writing,
            fails_at: Self::draw_snapshot_failure(ctx),
        });
        ctx.schedule(ctx.now + write_ms, Ev::SnapshotStep(self.sid, self.incarnation, token));
        if ctx.knobs.plant == Some(super::world::Plant::SnapshotBeforeDurable) {
            // Planted bug: visible, and the older logs dropped, at once.
            self.disk.make_snapshot_visible_early();
            let (snaps, logs) = self.disk.purge(ctx.knobs.snap_retain, true);
            ctx.trace(
                self.sid,
                format!("snapshot.{zxid:x} visible before it is durable; purged {snaps} snapshots, {logs} logs (planted bug)"),
            );
        }
        if ctx.now < ctx.snap_crashes_until_ms && ctx.snap_rng.chance(ctx.knobs.snap_crash_percent) {
            // Crash mid-snapshot: any instant of the write and its two fsyncs.
            let (_, fsync_hi) = ctx.knobs.fsync_ms;
            let at = ctx.now + ctx.snap_rng.range(0, write_ms + 2 * fsync_hi);
            ctx.schedule(at, Ev::CrashMidSnapshot(self.sid, self.incarnation));
        }
    }

    /// Whether a snapshot started now fails, at which step and with which
    /// error (while disk faults are on).
    fn draw_snapshot_failure(ctx: &mut Ctx) -> Option<(SnapshotStage, &'static str)> {
        if ctx.now >= ctx.disk_faults_until_ms || !ctx.snap_fault_rng.chance(ctx.knobs.snap_fault_percent) {
            return None;
        }
        let stage = ctx.snap_fault_rng.pick(&[
            SnapshotStage::Writing,
            SnapshotStage::SyncingFile,
            SnapshotStage::SyncingDir,
        ])?;
        let error = ctx.snap_fault_rng.pick(&["EIO", "ENOSPC"])?;
        Some((stage, error))
    }

    /// The snapshot thread finished its current step.
    pub fn on_snapshot_step(&mut self, ctx: &mut Ctx, token: u64) {
        let Some((zxid, stage, fails_at)) =
            self.disk.snapshot_writing.as_ref().filter(|w| w.token == token).map(|w| (w.zxid, w.stage, w.fails_at))
        else {
            return; // cancelled by a TRUNC
        };
        if let Some((_, error)) = fails_at.filter(|(at, _)| *at == stage) {
            // `write_snapshot_file` returned the error: production logs
            // "snapshot failed" and goes on (no purge; the next snapshot
            // comes with the policy's next trigger). The log still holds
            // every txn, so nothing is lost.
            let Some(what) = self.disk.fail_snapshot_step(token, error) else { return };
            ctx.trace(self.sid, format!("snapshot 0x{zxid:x} failed: {what}"));
            ctx.snapshot_failures += 1;
            return;
        }
        match self.disk.snapshot_step(token) {
            Some(_) => {
                let (lo, hi) = ctx.knobs.fsync_ms;
                let mut latency = ctx.snap_rng.range(lo, hi);
                if ctx.snap_rng.chance(ctx.knobs.slow_fsync_percent) {
                    latency += ctx.knobs.slow_fsync_ms;
                }
                ctx.schedule(ctx.now + latency, Ev::SnapshotStep(self.sid, self.incarnation, token));
            }
            None => {
                ctx.snapshots_taken += 1;
                // `purge_old_files` runs once the snapshot is durable.
                let (snaps, logs) = self.disk.purge(ctx.knobs.snap_retain, false);
                ctx.trace(
                    self.sid,
                    format!("snapshot.{zxid:x} durable; autopurge removed {snaps} snapshots, {logs} logs"),
                );
            }
        }
    }

    /// Mirrors `Epochs::load`: the epoch files, reconciled with the data.
    fn load_epochs(&mut self, last_zxid: i64) -> Result<crate::storage::epoch_files::ReconciledEpochs, String> {
        let stored = StoredEpochs {
            current: self.disk.current_epoch,
            current_tmp: self.disk.current_epoch_tmp,
            accepted: self.disk.accepted_epoch,
        };
        let epochs = reconcile_epochs(last_zxid, stored).map_err(|e| format!("epoch files refused: {e}"))?;
        for (name, value) in &epochs.writes {
            let file = if *name == crate::storage::epoch_files::ACCEPTED_EPOCH_FILE_NAME {
                EpochFile::Accepted
            } else {
                EpochFile::Current
            };
            self.disk.write_epoch_now(file, *value);
        }
        Ok(epochs)
    }

    /// Mirrors `quorum_peer::catch_up_to_log`: a learner
    /// that lost its leader cleanly applies the tail it logged but never
    /// saw committed, from its in-memory log tail, instead of reloading.
    /// The oracle checks the kept history as it checks a recovered one.
    fn catch_up_to_log(&mut self, ctx: &mut Ctx) -> bool {
        let applied = self.seq.last_zxid();
        let Some(tail) = self.seq.logged_tail_to_keep(self.log.durable_through()) else { return false };
        for (zxid, txn) in tail {
            if let Err(e) = self.apply_logged(ctx, zxid, txn) {
                ctx.trace(self.sid, format!("cannot apply the logged tail ({e}); reloading"));
                return false;
            }
        }
        // As `catch_up_to_log`: connections and holders gone, every
        // session re-armed (its client may reconnect anywhere).
        let now = self.now(ctx) as i64;
        self.seq.release_sessions(now);
        self.plant_expire_early_all(ctx);
        self.published_tree = self.seq.tree().clone();
        self.published_sessions.reset(self.seq.sessions());
        ctx.trace(
            self.sid,
            format!(
                "keeps its state: applied 0x{applied:x}..0x{:x}, digest {:x}",
                self.seq.last_zxid(),
                self.seq.tree().digest()
            ),
        );
        ctx.oracle.check_recovered(self.sid, "keeping state", &self.history, ctx.now);
        true
    }

    // ------------------------------------------------------------------
    // Election (mirrors `election_net::elect` and `answer_while_settled`)

    fn election_config(&self) -> ElectionConfig {
        ElectionConfig {
            my_sid: self.sid,
            voters: self.ensemble.voters.iter().map(|s| (*s, 1)).collect(),
            my_learner_type: if self.is_voter() { LearnerType::Participant } else { LearnerType::Observer },
            quorum_config_text: self.config_text.clone(),
        }
    }

    fn start_election(&mut self, ctx: &mut Ctx) {
        let basis = self.carry.basis(self.seq.last_zxid(), self.current);
        let now = self.now(ctx);
        let (election, actions) = Election::start(self.election_config(), basis, self.carry.logical_clock, now);
        ctx.trace(self.sid, format!("LOOKING (round {}, zxid 0x{:x})", election.logical_clock(), self.seq.last_zxid()));
        self.role = PeerRole::Looking(Box::new(election));
        self.settled = None;
        self.election_actions(ctx, actions);
    }

    /// Carries out what the election asked (`Election::step`, as
    /// production's `election_net::elect`): sends, then the decision, or
    /// a timer at the next deadline.
    fn election_actions(&mut self, ctx: &mut Ctx, actions: Vec<Action>) {
        let step = match &self.role {
            PeerRole::Looking(e) => e.step(actions),
            _ => return,
        };
        for (to, notification) in &step.sends {
            self.send_notification(ctx, *to, notification);
        }
        if let Some(d) = step.decision {
            self.decided(ctx, d);
        } else if let PeerRole::Looking(e) = &self.role {
            if let Some(deadline) = e.next_deadline_ms() {
                ctx.schedule(self.world_time(deadline), Ev::ElectionTimer(self.sid, self.incarnation));
            }
        }
    }

    fn send_notification(&mut self, ctx: &mut Ctx, to: Sid, n: &Notification) {
        let mut buf = BytesMut::new();
        ctx.trace(self.sid, format!("notify -> s{to}: {}", describe(n)));
        match n.encode(&mut buf) {
            Ok(()) => ctx.send_election(self.sid, to, buf.freeze()),
            Err(e) => ctx.oracle.fail("codec", format!("notification does not encode: {e}"), ctx.now),
        }
    }

    pub fn on_notification(&mut self, ctx: &mut Ctx, from: Sid, bytes: Bytes) {
        let n = match Notification::decode(bytes) {
            Ok(n) => n,
            Err(e) => {
                ctx.oracle.fail("codec", format!("notification from {from} does not decode: {e}"), ctx.now);
                return;
            }
        };
        ctx.trace(self.sid, format!("notify <- s{from}: {} (while {})", describe(&n), self.role_name()));
        let now = self.now(ctx);
        if let PeerRole::Looking(e) = &mut self.role {
            let actions = e.on_notification(from, &n, now);
            self.election_actions(ctx, actions);
        } else if let Some(e) = &mut self.settled {
            let actions = e.on_notification(from, &n, now);
            for a in actions {
                if let Action::Send { to, notification } = a {
                    self.send_notification(ctx, to, &notification);
                }
            }
        }
    }

    pub fn on_election_timer(&mut self, ctx: &mut Ctx) {
        let now = self.now(ctx);
        if let PeerRole::Looking(e) = &mut self.role {
            let actions = e.on_tick(now);
            self.election_actions(ctx, actions);
        }
    }

    fn decided(&mut self, ctx: &mut Ctx, d: Decision) {
        let PeerRole::Looking(election) = std::mem::replace(&mut self.role, PeerRole::Down) else { return };
        self.carry.decided(&election);
        ctx.trace(self.sid, format!("decided: leader {} ({:?}, round {})", d.leader, d.role, d.vote.election_epoch));
        self.settled = Some(*election);
        match d.role {
            Role::Leading => self.lead(ctx),
            Role::Following | Role::Observing => {
                let give_up_at = ctx.now + ctx.knobs.tick_ms * ctx.knobs.init_limit_ticks;
                self.role = PeerRole::Connecting { leader: d.leader, give_up_at };
                ctx.dial(self.sid, self.incarnation, d.leader);
            }
        }
    }

    /// Mirrors Apache's `QuorumPeer.updateElectionVote` (ZOOKEEPER-1732),
    /// called where Apache calls it (leader established, learner up to
    /// date): the settled vote advertises the epoch this server now runs,
    /// not the one it was elected with. Without it a server that joined a
    /// re-elected leader reports an older epoch than the leader, and a
    /// LOOKING server never sees a quorum agree on (leader, epoch).
    fn advertise_epoch(&mut self, epoch: i64) {
        if let Some(settled) = self.settled.as_mut().and_then(|e| e.settled_mut()) {
            settled.set_peer_epoch(epoch);
        }
    }

    /// Whatever ends a role: its links close, then the shared
    /// `BetweenRoles` order (as production's `run_quorum`): the settled
    /// vote stops answering, the log drains, clients are dropped, the state
    /// is kept (a learner that lost its leader cleanly catches up to its
    /// log) or rebuilt from disk, the epochs are re-read, and the election
    /// starts again.
    fn leave_role(&mut self, ctx: &mut Ctx, why: String) {
        self.leave_role_as(ctx, why, false);
    }

    fn leave_role_as(&mut self, ctx: &mut Ctx, why: String, left_cleanly: bool) {
        ctx.trace(self.sid, format!("leaves {}: {why}", self.role_name()));
        ctx.disturbed();
        let was_learner = matches!(self.role, PeerRole::Following(_) | PeerRole::Connecting { .. });
        match std::mem::replace(&mut self.role, PeerRole::Down) {
            PeerRole::Leading(l) => {
                for (_, conn) in l.links {
                    ctx.break_conn(conn, true, "leader left its role");
                }
            }
            PeerRole::Following(f) => ctx.break_conn(f.conn, true, "learner left its role"),
            _ => {}
        }
        self.blocked = None;
        self.between = Some(BetweenRoles::after_role(was_learner && left_cleanly));
        self.continue_between_roles(ctx);
    }

    /// Carries out the `BetweenRoles` steps until the election starts, the
    /// log must drain first (`log_write_done` resumes here), or the state
    /// cannot be loaded (the process stops).
    fn continue_between_roles(&mut self, ctx: &mut Ctx) {
        while let Some(between) = self.between.as_mut() {
            match between.next_step() {
                BetweenRolesStep::StopAnsweringElection => self.settled = None,
                BetweenRolesStep::DrainLog => {
                    if !self.log.is_idle() {
                        self.blocked = Some(Blocked::LogDrain);
                        self.after_drain = Some(AfterDrain::BetweenRoles);
                        return;
                    }
                }
                BetweenRolesStep::DropClientConnections => self.drop_clients(),
                BetweenRolesStep::CatchUpToLog => {
                    let kept = self.catch_up_to_log(ctx);
                    if let Some(between) = self.between.as_mut() {
                        between.caught_up(kept);
                    }
                }
                BetweenRolesStep::ReloadFromDisk => {
                    if let Err(e) = self.reload_state_from_disk(ctx, "leaving a role") {
                        self.between = None;
                        self.cannot_load(ctx, format!("cannot reload the state from disk: {e}"));
                        self.call_the_operator(ctx);
                        return;
                    }
                }
                BetweenRolesStep::LoadEpochs => match self.load_epochs(self.seq.last_zxid()) {
                    Ok(epochs) => {
                        self.accepted = epochs.accepted_epoch;
                        self.current = epochs.current_epoch;
                        ctx.trace(self.sid, format!("epochs accepted {} current {}", self.accepted, self.current));
                    }
                    Err(e) => {
                        self.between = None;
                        self.cannot_load(ctx, e);
                        self.call_the_operator(ctx);
                        return;
                    }
                },
                BetweenRolesStep::Elect => {
                    self.between = None;
                    self.start_election(ctx);
                }
            }
        }
    }

    // ------------------------------------------------------------------
    // The loop

    pub fn push_input(&mut self, ctx: &mut Ctx, input: Input) {
        if !self.up {
            return;
        }
        self.inbox.push_back(input);
        self.schedule_run(ctx);
    }

    pub fn schedule_run(&mut self, ctx: &mut Ctx) {
        if !self.run_scheduled {
            self.run_scheduled = true;
            ctx.schedule(ctx.now, Ev::Run(self.sid, self.incarnation));
        }
    }

    /// One turn of the loop: production's `events.next_batch()` returning.
    pub fn run(&mut self, ctx: &mut Ctx) {
        self.run_scheduled = false;
        if !self.up || self.blocked.is_some() {
            return;
        }
        match &self.role {
            PeerRole::Standalone(_) => self.standalone_turn(ctx),
            PeerRole::Leading(l) if l.turn.is_idle() => self.leader_turn(ctx),
            PeerRole::Following(f) if f.turn.is_between_turns() => self.learner_turn(ctx),
            PeerRole::Leading(_) | PeerRole::Following(_) => {}
            PeerRole::Looking(_) | PeerRole::Connecting { .. } | PeerRole::Down => {
                // Clients are turned away while not serving.
                for input in std::mem::take(&mut self.inbox) {
                    match input {
                        Input::ClientWrite { id, .. } => {
                            ctx.write_refused(id);
                            ctx.trace(self.sid, format!("refuses client write #{id} (not serving)"))
                        }
                        Input::ClientSync { id, .. } => ctx.sync_refused(self.sid, id, "not serving"),
                        other => {
                            if let Some(r) = other.session_refusal() {
                                ctx.session_reply(self.sid, r);
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn on_dial_result(&mut self, ctx: &mut Ctx, conn: Option<ConnId>) {
        let PeerRole::Connecting { leader, give_up_at } = self.role else {
            if let Some(c) = conn {
                ctx.break_conn(c, true, "dialler moved on");
            }
            return;
        };
        match conn {
            Some(conn) => {
                let k = &ctx.knobs;
                let settings = LearnerSettings {
                    my_sid: self.sid,
                    observer: !self.is_voter(),
                    tick_ms: k.tick_ms,
                    init_limit_ticks: k.init_limit_ticks,
                    sync_limit_ticks: k.sync_limit_ticks,
                };
                let mut actions = Vec::new();
                let core = LearnerCore::new(
                    settings,
                    self.accepted,
                    self.current,
                    self.seq.last_zxid(),
                    self.now(ctx),
                    &mut actions,
                );
                ctx.trace(self.sid, format!("connected to leader {leader}"));
                ctx.disturbed();
                self.role = PeerRole::Following(Box::new(Following {
                    core,
                    leader,
                    conn,
                    turn: crate::commit::LearnerTurn::connected(actions),
                    requests: ForwardedRequests::default(),
                    applied_before_uptodate: Vec::new(),
                }));
                self.continue_learner(ctx);
            }
            None if ctx.now < give_up_at => {
                ctx.schedule(ctx.now + LEADER_CONNECT_RETRY_MS, Ev::DialRetry(self.sid, self.incarnation));
            }
            None => self.leave_role_as(ctx, format!("cannot reach the leader {leader}"), true),
        }
    }

    pub fn on_dial_retry(&mut self, ctx: &mut Ctx) {
        if let PeerRole::Connecting { leader, .. } = self.role {
            ctx.dial(self.sid, self.incarnation, leader);
        }
    }

    /// Accepting a learner's connection (the leader's listener).
    pub fn accept(&mut self, conn: ConnId) -> Option<LearnerConn> {
        let PeerRole::Leading(l) = &mut self.role else { return None };
        let id = l.next_conn;
        l.next_conn += 1;
        l.links.insert(id, conn);
        self.inbox.push_back(Input::LearnerUp(conn));
        Some(id)
    }

    pub fn is_listening(&self) -> bool {
        self.up && matches!(self.role, PeerRole::Leading(_))
    }

    pub fn on_disk_done(&mut self, ctx: &mut Ctx, token: u64) {
        if self.log_write == Some(token) {
            if let Some(fault) = self.log_fault.take() {
                self.log_write_failed(ctx, fault, token);
                return;
            }
            self.log_write_done(ctx, token);
            return;
        }
        match self.blocked {
            Some(Blocked::Epoch(t)) if t == token => {
                if let Some((file, value)) = self.disk.complete_epoch_write(token) {
                    match file {
                        EpochFile::Accepted => self.accepted = value,
                        EpochFile::Current => self.current = value,
                    }
                }
            }
            _ => return,
        }
        self.blocked = None;
        self.resume_role(ctx);
    }

    fn resume_role(&mut self, ctx: &mut Ctx) {
        match &self.role {
            PeerRole::Leading(_) => self.continue_leader(ctx),
            PeerRole::Following(_) => self.continue_learner(ctx),
            _ => {}
        }
        if !self.inbox.is_empty() {
            self.schedule_run(ctx);
        }
    }

    /// Mirrors `LogHandle::log`: to the log, never waiting for the disk.
    fn log_txns(&mut self, ctx: &mut Ctx, records: Vec<(i64, Bytes)>) {
        if records.is_empty() {
            return;
        }
        if let Some(w) = self.log.log(records) {
            self.start_log_write(ctx, w);
        }
    }

    /// Mirrors the log thread: one write + fsync, completing after a seeded
    /// latency while the server goes on.
    fn start_log_write(&mut self, ctx: &mut Ctx, w: LogWrite) {
        if w.roll_first {
            self.disk.roll();
        }
        if let Err(e) = self.disk.append(&w.records) {
            self.die(ctx, format!("log append failed: {e}"));
            return;
        }
        let token = ctx.token();
        let fault = ctx.draw_log_fault();
        let latency = if ctx.knobs.plant == Some(super::world::Plant::AckBeforeFsync) {
            // Planted bug: the write is reported durable at once and never
            // synced (only the page cache's write-back may keep it).
            0
        } else {
            let latency = ctx.fsync_latency();
            if fault.is_none() {
                // A failing write or fsync makes nothing durable.
                self.disk.start_fsync(token);
            }
            latency
        };
        let latency = match fault {
            Some(f) if f.on_write() => ctx.fault_rng.range(0, latency),
            _ => latency,
        };
        self.log_fault = fault;
        ctx.schedule(ctx.now + latency, Ev::DiskDone(self.sid, self.incarnation, token));
        self.log_write = Some(token);
    }

    /// Mirrors `LogHandle`'s report task on `FromLog::Failed`: the tree is
    /// ahead of the log, so the process exits (code 2) and never retries.
    /// What reached the device of the failed write is whatever did: as at
    /// a crash, the durable prefix and perhaps some of the rest (none of it
    /// for ENOSPC on the write).
    fn log_write_failed(&mut self, ctx: &mut Ctx, fault: LogFault, token: u64) {
        if ctx.knobs.plant == Some(super::world::Plant::IgnoreFsyncError) && !fault.on_write() {
            // Planted bug: the failed sync is taken as done. As on Linux
            // after a failed fsync, the pages are marked clean without
            // reaching the device: what is there is the preallocated zeros,
            // and a later sync will not write them again.
            ctx.trace(self.sid, format!("{} ignored (planted bug)", fault.describe()));
            self.disk.lose_unsynced();
            self.log_write_done(ctx, token);
            return;
        }
        let writeback = if fault.may_leave_bytes() { ctx.knobs.writeback_percent } else { 0 };
        let mut what = self.disk.crash(&mut ctx.fault_rng, writeback);
        if let Some(snapshots) = self.disk.crash_snapshots(&mut ctx.snap_rng) {
            what = format!("{what}; {snapshots}");
        }
        self.exit_expected(ctx, format!("{}; the log stops the server with exit code 2 ({what})", fault.describe()));
        let back = ctx.fault_rng.range(100, 4_000);
        ctx.schedule(ctx.now + back, Ev::Restart(self.sid));
    }

    /// Mirrors `LogHandle`'s report task: the write is durable, the next
    /// starts at once, and the loop hears of it as an input.
    fn log_write_done(&mut self, ctx: &mut Ctx, token: u64) {
        self.disk.complete_fsync(token);
        self.log_write = None;
        if let Some(w) = self.log.write_done() {
            self.start_log_write(ctx, w);
        }
        if !self.up {
            return;
        }
        if self.blocked == Some(Blocked::LogDrain) && self.log.is_idle() {
            self.blocked = None;
            match self.after_drain.take() {
                Some(AfterDrain::BetweenRoles) => {
                    self.continue_between_roles(ctx);
                    return;
                }
                // The TRUNC was put back at the head of the turn's queue.
                Some(AfterDrain::LearnerAction) => self.resume_role(ctx),
                None => {}
            }
        }
        self.push_input(ctx, Input::LogDurable);
    }

    fn persist_epoch(&mut self, ctx: &mut Ctx, file: EpochFile, value: i64) {
        let token = ctx.token();
        self.disk.start_epoch_write(token, file, value);
        let latency = ctx.fsync_latency();
        ctx.schedule(ctx.now + latency, Ev::DiskDone(self.sid, self.incarnation, token));
        self.blocked = Some(Blocked::Epoch(token));
    }

    fn send_to_leader(&mut self, ctx: &mut Ctx, conn: ConnId, p: &ToLeader) {
        ctx.conn_send(conn, Dir::ToLeader, Wire::Packet(p.to_packet().to_bytes()));
    }

    // ------------------------------------------------------------------
    // Leading (mirrors `quorum_peer::lead` and `leader_action`; the turn order is the shared `LeaderTurn`)

    fn lead(&mut self, ctx: &mut Ctx) {
        let k = &ctx.knobs;
        let settings = LeaderSettings {
            tick_ms: k.tick_ms,
            init_limit_ticks: k.init_limit_ticks,
            sync_limit_ticks: k.sync_limit_ticks,
            config_text: self.config_text.clone(),
            sync_policy: SyncPolicy::with_snapshot_bytes(0),
            committed_window_txns: crate::zab::leader::COMMITTED_WINDOW_TXNS,
        };
        // Production's `index_disk_log`, over the simulated files: DIFFs
        // older than the window are served from the log (SendLoggedTxns).
        let (_, snapshot_bytes) = self.disk.sync_index_files();
        let files = self.disk.logs.iter().map(|f| (format!("log.{:x}", f.first_zxid), Ok::<_, String>(&f.bytes)));
        let snapshot_zxids: Vec<i64> =
            self.disk.snapshots.iter().map(|f| f.zxid).chain(self.disk.snapshot.iter().map(|(z, _)| *z)).collect();
        let (disk_log, unusable) = DiskLogIndex::from_log_files(snapshot_bytes, &snapshot_zxids, files);
        for (file, why) in unusable {
            ctx.trace(self.sid, format!("log file {file} not usable for DIFFs: {why}"));
        }
        let start = LeaderStart {
            accepted_epoch: self.accepted,
            current_epoch: self.current,
            last_logged_zxid: self.seq.last_zxid(),
            recent_txns: self.seq.recent_txns().iter().cloned().collect(),
            disk_log,
        };
        let core = LeaderCore::new(self.ensemble.clone(), settings, start, self.now(ctx));
        ctx.trace(
            self.sid,
            format!(
                "LEADING (accepted {}, current {}, zxid 0x{:x})",
                self.accepted,
                self.current,
                self.seq.last_zxid()
            ),
        );
        self.role = PeerRole::Leading(Box::new(Leading {
            core,
            links: BTreeMap::new(),
            next_conn: 1,
            term: LeaderTerm::default(),
            turn: LeaderTurn::default(),
            batch: LeaderBatch::default(),
            planted_syncs: VecDeque::new(),
            planted_acks: BTreeMap::new(),
        }));
        self.schedule_run(ctx);
    }

    fn leader_turn(&mut self, ctx: &mut Ctx) {
        let now = self.now(ctx);
        let items: Vec<Input> = self.inbox.drain(..).collect();
        let mut actions = Vec::new();
        let mut batch = LeaderBatch::default();
        // The shared `LeaderTerm::intake` decides, event by event in arrival
        // order as production's `lead()`; a request it takes is executed
        // before the next event (`handle_worker_message`), so a sync is
        // ordered after the writes before it.
        for input in items {
            let Some(step) = self.leader_intake(ctx, input, now, &mut actions) else { continue };
            match step {
                Intake::Execute(Input::ClientWrite { id, write }) => self.execute(ctx, id, &write, &mut batch),
                Intake::Execute(input) => self.local_session_op(ctx, input, &mut batch),
                Intake::Refuse(Input::ClientWrite { id, .. }) => {
                    ctx.write_refused(id);
                    ctx.trace(self.sid, format!("refuses client write #{id} (not established)"));
                }
                Intake::Refuse(input) => {
                    if let Some(r) = input.session_refusal() {
                        ctx.session_reply(self.sid, r);
                    }
                }
                Intake::RefuseSync(id) => ctx.sync_refused(self.sid, id, "not established"),
                Intake::Taken => {}
            }
        }
        if let PeerRole::Leading(l) = &mut self.role {
            l.batch = batch;
            l.turn.begin(&mut l.core, now, actions);
        }
        self.continue_leader(ctx);
    }

    /// One inbox event through the shared `LeaderTerm::intake` (None: not
    /// one a leader takes, or a link this term does not know). The planted
    /// bugs are applied around the call: `requests-before-established`
    /// takes requests once the core is established (it flips while this
    /// very intake reads the NEWLEADER ACK), `sync-without-round` keeps a
    /// taken sync out of the core's rounds.
    fn leader_intake(
        &mut self,
        ctx: &mut Ctx,
        input: Input,
        now: u64,
        actions: &mut Vec<LeaderAction>,
    ) -> Option<Intake<Input, u64>> {
        let plant = ctx.knobs.plant;
        let last_zxid = self.seq.last_zxid();
        let sid = self.sid;
        let PeerRole::Leading(l) = &mut self.role else { return None };
        let input = match input {
            Input::ClientSync { id, .. } => LeaderInput::Sync(id),
            input @ Input::ClientWrite { .. } => LeaderInput::Request(input),
            input if input.is_session_op() => LeaderInput::Request(input),
            Input::LearnerUp(conn) => {
                LeaderInput::LearnerUp { conn: l.conn_of(conn)?, disk_files: self.disk.sync_index_files() }
            }
            Input::Learner(conn, p) => {
                if let (ToLeader::Ack { zxid }, Some(super::world::Plant::CommitOnMinority)) = (&p, plant) {
                    let acked = l.planted_acks.entry(conn).or_insert(*zxid);
                    *acked = (*acked).max(*zxid);
                }
                LeaderInput::Learner(l.conn_of(conn)?, p)
            }
            Input::LearnerDown(conn, why) => {
                let c = l.conn_of(conn)?;
                ctx.trace(sid, format!("learner conn {c} closed: {why}"));
                l.links.remove(&c);
                LeaderInput::LearnerDown(c)
            }
            _ => return None,
        };
        let planted_early = plant == Some(super::world::Plant::RequestsBeforeEstablished)
            && l.core.is_established()
            && !l.term.takes_client_requests();
        let takes_syncs = planted_early || l.term.takes_client_requests();
        match input {
            LeaderInput::Request(request) if planted_early => Some(Intake::Execute(request)),
            LeaderInput::Sync(id) if takes_syncs && plant == Some(super::world::Plant::SyncWithoutRound) => {
                l.planted_syncs.push_back((PlantedSync::Local(id), last_zxid));
                self.flush_planted_syncs(ctx);
                Some(Intake::Taken)
            }
            LeaderInput::Sync(id) if planted_early => {
                l.term.sync_local(&mut l.core, id, last_zxid, actions);
                Some(Intake::Taken)
            }
            input => Some(l.term.intake(&mut l.core, input, now, last_zxid, actions)),
        }
    }

    /// Planted bug (`Plant::SyncWithoutRound`): syncs answered as soon as
    /// what came before them is committed, a local one at once from the
    /// published state, without a quorum round.
    fn flush_planted_syncs(&mut self, ctx: &mut Ctx) {
        let PeerRole::Leading(l) = &mut self.role else { return };
        let committed = l.term.commit_point(&l.core);
        while l.planted_syncs.front().is_some_and(|(_, after)| *after <= committed) {
            let Some((sync, _)) = l.planted_syncs.pop_front() else { break };
            match sync {
                PlantedSync::Local(id) => ctx.sync_answered(self.sid, id, &self.published_tree),
                PlantedSync::Learner(conn) => {
                    if let Some(&id) = l.links.get(&conn) {
                        ctx.conn_send(id, Dir::ToLearner, Wire::Packet(ToLearner::Sync.to_packet().to_bytes()));
                    }
                }
            }
        }
    }

    /// A local client's write (`CommitShard::execute`, through the shared core).
    fn execute(&mut self, ctx: &mut Ctx, id: u64, write: &WriteOp, batch: &mut LeaderBatch) {
        let planted;
        let write = match write {
            WriteOp::SetData { path, data, version }
                if *version >= 0
                    && ctx.knobs.plant == Some(super::world::Plant::StaleCas)
                    && self.published_tree.get(path).is_some_and(|n| n.version() == *version) =>
            {
                // Planted bug: the expected version is checked against the
                // published tree, not the one with the pending batches; a
                // match there executes unconditionally.
                planted = WriteOp::SetData { path: path.clone(), data: data.clone(), version: -1 };
                &planted
            }
            other => other,
        };
        let (zxid, result, triggers) =
            self.execute_for(ctx, SIM_CLIENT_SESSION, (id & 0x7FFF_FFFF) as i32, write, batch);
        ctx.write_executed(id, super::registers::WriteAnswer::of(&result));
        let path = match write {
            WriteOp::Create { path, .. } | WriteOp::SetData { path, .. } => Some(path),
            _ => None,
        };
        let changed = path.filter(|p| self.seq.tree().get(p).is_some_and(|n| n.mzxid() == zxid)).cloned();
        batch.writes.push(ClientWriteDone { id, zxid, changed, triggers });
    }

    /// `CommitShard::execute`: one write at the next zxid, its txn into the
    /// batch. (zxid, its result, its watch triggers.)
    fn execute_for(
        &mut self,
        ctx: &Ctx,
        session_id: i64,
        cxid: i32,
        write: &WriteOp,
        batch: &mut LeaderBatch,
    ) -> (i64, Result<crate::tree::WriteResult, crate::proto::ErrorCode>, Vec<crate::tree::WatchTrigger>) {
        let mut sink = SimSink { batch, history: &mut self.history };
        let done = self.seq.execute(&mut sink, session_id, cxid, write, &ServerIdentity, sim_wall_ms(ctx));
        (done.zxid, done.result, done.triggers)
    }

    // ------------------------------------------------------------------
    // Sessions: `CommitShard::handle`'s session arms and `execute_forwarded`
    // around the shared `commit::Sequencer`; the planted session bugs are
    // applied here, around its calls, never inside it.

    /// The session was heard from now (`Sequencer::touch`); nothing for an
    /// unknown one.
    fn touch_session(&mut self, ctx: &Ctx, session_id: i64) {
        let now = self.now(ctx) as i64;
        self.seq.touch(session_id, now);
        self.plant_expire_early(ctx, session_id);
    }

    /// Planted bug (`Plant::ExpireEarly`): after each of the core's
    /// touches, the deadline is re-set from a quarter of the timeout, so a
    /// client pinging every third of it is expired anyway.
    fn plant_expire_early(&mut self, ctx: &Ctx, session_id: i64) {
        if ctx.knobs.plant != Some(super::world::Plant::ExpireEarly) {
            return;
        }
        let Some(timeout_ms) = self.seq.session(session_id).map(|e| e.timeout_ms) else { return };
        let now = self.now(ctx) as i64;
        self.seq.reschedule_expiry(session_id, timeout_ms as i64 / 4, now);
    }

    /// `plant_expire_early` for every session, after the core re-armed
    /// them all (a reload, a SNAP, catching up).
    fn plant_expire_early_all(&mut self, ctx: &Ctx) {
        if ctx.knobs.plant != Some(super::world::Plant::ExpireEarly) {
            return;
        }
        let ids: Vec<i64> = self.seq.session_timeouts().into_keys().collect();
        for id in ids {
            self.plant_expire_early(ctx, id);
        }
    }

    /// A createSession txn (`Sequencer::create_session`), for the oracle too.
    fn execute_create_session(
        &mut self,
        ctx: &Ctx,
        session_id: i64,
        cxid: i32,
        timeout_ms: i32,
        holder: (Option<u64>, SessionHolder),
        batch: &mut LeaderBatch,
    ) -> i64 {
        let (now, time_ms) = (self.now(ctx) as i64, sim_wall_ms(ctx));
        let (owner, holder) = holder;
        let mut sink = SimSink { batch, history: &mut self.history };
        let zxid = self.seq.create_session(&mut sink, session_id, cxid, timeout_ms, owner, holder, now, time_ms);
        batch.session_events.push((session_id, zxid, true));
        self.plant_expire_early(ctx, session_id);
        zxid
    }

    /// An error txn (`Sequencer::execute_error`): the learner's client is
    /// told `code` when it commits.
    fn execute_error(
        &mut self,
        ctx: &Ctx,
        session_id: i64,
        cxid: i32,
        code: crate::proto::ErrorCode,
        batch: &mut LeaderBatch,
    ) -> i64 {
        let mut sink = SimSink { batch, history: &mut self.history };
        self.seq.execute_error(&mut sink, session_id, cxid, code, sim_wall_ms(ctx))
    }

    /// `close_session`: out of the table and the queue, and a closeSession
    /// txn that deletes its ephemerals.
    fn close_session(&mut self, ctx: &Ctx, session_id: i64, reply: Option<SessionReply>, batch: &mut LeaderBatch) {
        let mut sink = SimSink { batch, history: &mut self.history };
        let done = self.seq.close_session(&mut sink, session_id, sim_wall_ms(ctx));
        batch.session_events.push((session_id, done.zxid, false));
        let (zxid, triggers) = (done.zxid, done.triggers);
        batch.session_txns.push(SessionTxnDone { zxid, triggers, closed: Some(session_id), ephemeral: None, reply });
    }

    /// `expire_sessions`: every session whose bucket is due on this
    /// process's clock is closed.
    fn expire_sessions(&mut self, ctx: &mut Ctx, batch: &mut LeaderBatch) {
        let now = self.now(ctx) as i64;
        for id in self.seq.take_expired(now) {
            ctx.trace(self.sid, format!("session 0x{id:x} expires"));
            ctx.session_expiring(self.sid, id);
            self.close_session(ctx, id, None, batch);
        }
    }

    /// A session client's request on an established leader or standalone
    /// server (`CommitShard::handle`).
    fn local_session_op(&mut self, ctx: &mut Ctx, input: Input, batch: &mut LeaderBatch) {
        match input {
            Input::ClientConnect { client, timeout_ms } => {
                let session_id = self.seq.next_session_id();
                ctx.session_allocated(client, session_id);
                let holder = (Some(client), SessionHolder::Here);
                let zxid = self.execute_create_session(ctx, session_id, 0, timeout_ms, holder, batch);
                let reply = Some(SessionReply::Connected { client, session_id });
                batch.session_txns.push(SessionTxnDone {
                    zxid,
                    triggers: Vec::new(),
                    closed: None,
                    ephemeral: None,
                    reply,
                });
            }
            Input::ClientPing { session_id } => self.touch_session(ctx, session_id),
            Input::ClientEphemeral { client, session_id, path } => {
                // `ToCommit::Write`: SESSIONEXPIRED / SESSIONMOVED answered
                // at once, without a txn.
                let now = self.now(ctx) as i64;
                if let Err(code) = self.seq.admit_write(session_id, SessionHolder::Here, now) {
                    ctx.trace(self.sid, format!("refuses session 0x{session_id:x}'s create of {path}: {code:?}"));
                    ctx.session_reply(self.sid, SessionReply::Created { client, session_id, path, ok: false });
                    return;
                }
                self.plant_expire_early(ctx, session_id);
                let write = ephemeral_create(&path);
                let (zxid, result, triggers) = self.execute_for(ctx, session_id, client_cxid(client), &write, batch);
                self.note_admitted(ctx, session_id, self.sid, zxid);
                let ok = result.is_ok();
                let ephemeral = ok.then(|| (session_id, path.clone()));
                let reply = Some(SessionReply::Created { client, session_id, path, ok });
                batch.session_txns.push(SessionTxnDone { zxid, triggers, closed: None, ephemeral, reply });
            }
            Input::ClientClose { client, session_id } => {
                let reply = SessionReply::Closed { client, session_id };
                if self.seq.holds_session(session_id) {
                    self.close_session(ctx, session_id, Some(reply), batch);
                } else {
                    ctx.session_reply(self.sid, reply);
                }
            }
            // `CommitShard::handle`'s Revalidate arm: valid while the live
            // table holds it (a close in flight is out of it), touched.
            // Production's reply rides on the turn's batch; no txn comes
            // before it that could change the answer, so it goes now.
            Input::ClientReconnect { client, session_id, timeout_ms } => {
                let valid = self.revalidate(ctx, session_id, timeout_ms, (Some(client), SessionHolder::Here));
                ctx.session_reply(self.sid, SessionReply::Reconnected { client, session_id, valid });
            }
            _ => {}
        }
    }

    /// The leader's (and standalone's) revalidation of a session
    /// (`Sequencer::revalidate`): valid while the live table holds it; then
    /// it lives where the client reconnected, with the timeout asked and a
    /// fresh deadline.
    fn revalidate(
        &mut self,
        ctx: &mut Ctx,
        session_id: i64,
        timeout_ms: i32,
        (owner, holder): (Option<u64>, SessionHolder),
    ) -> bool {
        // Planted bug (`RevalidateOwnOnly`): only sessions this server
        // handed out are valid; the core is not asked about the others.
        let planted_refusal =
            ctx.knobs.plant == Some(super::world::Plant::RevalidateOwnOnly) && (session_id >> 56) != self.sid;
        let valid = !planted_refusal && {
            let now = self.now(ctx) as i64;
            self.seq.revalidate(session_id, timeout_ms, owner, holder, now).valid
        };
        if valid {
            self.plant_expire_early(ctx, session_id);
            self.note_move(ctx, session_id, holder);
        }
        let current_leader = match &self.role {
            PeerRole::Standalone(_) => true,
            PeerRole::Leading(l) => l.core.is_established() && ctx.oracle.is_newest_leader(self.sid, l.core.epoch()),
            _ => false,
        };
        if current_leader {
            if let Some(detail) = ctx.sessions.revalidation_finding(self.sid, session_id, valid) {
                ctx.oracle.fail("sessions", detail, ctx.now);
            }
        }
        valid
    }

    /// For the sessions checker: as a leader, this server validated that
    /// `session_id` now lives on the server behind `holder`.
    fn note_move(&self, ctx: &mut Ctx, session_id: i64, holder: SessionHolder) {
        let PeerRole::Leading(l) = &self.role else { return };
        let Some(epoch) = l.core.epoch() else { return };
        let to = match holder {
            SessionHolder::Here => Some(self.sid),
            SessionHolder::Learner(conn) => l.core.learner_sid(conn),
            SessionHolder::Unclaimed => None,
        };
        if let Some(to) = to {
            let after_zxid = self.seq.last_zxid();
            let m = super::sessions::SessionMove { leader: self.sid, epoch, after_zxid, to };
            ctx.sessions.moved(session_id, m);
        }
    }

    /// For the sessions checker: as a leader, this server executed a write
    /// of `session_id` from server `from` as txn `zxid`.
    fn note_admitted(&self, ctx: &mut Ctx, session_id: i64, from: Sid, zxid: i64) {
        let PeerRole::Leading(l) = &self.role else { return };
        let Some(epoch) = l.core.epoch() else { return };
        if let Some(detail) = ctx.sessions.write_admitted(self.sid, epoch, session_id, from, zxid) {
            ctx.oracle.fail("sessions", detail, ctx.now);
        }
    }

    /// `execute_forwarded` for the session workload's requests, from the
    /// learner on link `conn`.
    fn execute_forwarded(
        &mut self,
        ctx: &mut Ctx,
        from: Sid,
        conn: LearnerConn,
        request: ForwardedRequest,
        batch: &mut LeaderBatch,
    ) {
        let ForwardedRequest { session_id, cxid, op_type, body, .. } = request;
        let plain = |zxid, triggers, ephemeral| SessionTxnDone { zxid, triggers, closed: None, ephemeral, reply: None };
        // The body read as production's leader reads it (the sim's bodies
        // are small: no field limit beyond the body's own length).
        match crate::commit::forwarded::read_forwarded(op_type, body, usize::MAX) {
            ForwardedOp::CreateSessionWithoutTimeout => {
                ctx.trace(self.sid, format!("createSession without a timeout from {from}"));
            }
            ForwardedOp::CreateSession { timeout_ms } => {
                let holder = (None, SessionHolder::Learner(conn));
                let zxid = self.execute_create_session(ctx, session_id, cxid, timeout_ms, holder, batch);
                batch.session_txns.push(plain(zxid, Vec::new(), None));
            }
            ForwardedOp::CloseSession => self.close_session(ctx, session_id, None, batch),
            ForwardedOp::Undecodable => {
                let zxid = self.execute_error(ctx, session_id, cxid, crate::proto::ErrorCode::MarshallingError, batch);
                batch.session_txns.push(plain(zxid, Vec::new(), None));
            }
            ForwardedOp::Write(write) => {
                let now = self.now(ctx) as i64;
                let admitted = match self.seq.admit_write(session_id, SessionHolder::Learner(conn), now) {
                    // Planted bug: the refusal is ignored (the write still
                    // touches the session, as an admitted one does).
                    Err(crate::proto::ErrorCode::SessionMoved)
                        if ctx.knobs.plant == Some(super::world::Plant::IgnoreSessionMoved) =>
                    {
                        self.seq.touch(session_id, now);
                        ctx.trace(self.sid, format!("executes session 0x{session_id:x}'s moved write (planted bug)"));
                        Ok(())
                    }
                    other => other,
                };
                if let Err(code) = admitted {
                    ctx.trace(self.sid, format!("refuses session 0x{session_id:x}'s write from {from}: {code:?}"));
                    if code == crate::proto::ErrorCode::SessionMoved {
                        ctx.sessions.moved_refused += 1;
                    }
                    let zxid = self.execute_error(ctx, session_id, cxid, code, batch);
                    batch.session_txns.push(plain(zxid, Vec::new(), None));
                    return;
                }
                self.plant_expire_early(ctx, session_id);
                let (zxid, result, triggers) = self.execute_for(ctx, session_id, cxid, &write, batch);
                self.note_admitted(ctx, session_id, from, zxid);
                let ok = result.is_ok();
                let ephemeral = match &write {
                    WriteOp::Create { path, flags: EPHEMERAL_FLAGS, .. } if ok => Some((session_id, path.clone())),
                    _ => None,
                };
                batch.session_txns.push(plain(zxid, triggers, ephemeral));
            }
        }
    }

    /// Carries out the shared `LeaderTurn`'s steps (production's `lead()`
    /// loop carries out the same ones) until the turn is done or an action
    /// waits on the simulated disk (`on_disk_done` resumes it here).
    fn continue_leader(&mut self, ctx: &mut Ctx) {
        loop {
            let step = match &mut self.role {
                PeerRole::Leading(l) => l.turn.next(&mut l.core, &mut l.term, &l.batch),
                _ => return,
            };
            match step {
                LeaderStep::Act { action, batch_open } => match self.leader_action(ctx, action, batch_open) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Blocked) => return,
                    Err(why) => {
                        self.leave_role(ctx, why);
                        return;
                    }
                },
                LeaderStep::ExpireSessions => {
                    let mut batch = match &mut self.role {
                        PeerRole::Leading(l) => std::mem::take(&mut l.batch),
                        _ => return,
                    };
                    self.expire_sessions(ctx, &mut batch);
                    if let PeerRole::Leading(l) = &mut self.role {
                        l.batch = batch;
                    }
                }
                LeaderStep::HandToLog => {
                    // The proposals went out first; our own write + fsync
                    // runs beside the loop (production's log thread).
                    let batch = match &mut self.role {
                        PeerRole::Leading(l) => std::mem::take(&mut l.batch),
                        _ => return,
                    };
                    let logged_txns = batch.logged.len() as u64;
                    // `remember_recent`.
                    self.seq.remember_recent(&batch.logged, ctx.knobs.recent_window_txns);
                    note_session_events(ctx, &batch.session_events, &batch.txns);
                    self.log_txns(ctx, batch.logged);
                    let PeerRole::Leading(l) = &mut self.role else { return };
                    l.term.pending.push(
                        self.seq.last_zxid(),
                        PendingBatch {
                            tree: self.seq.tree().clone(),
                            txns: batch.txns,
                            writes: batch.writes,
                            syncs: batch.syncs,
                            session_txns: batch.session_txns,
                            session_changes: batch.session_changes,
                        },
                    );
                    self.maybe_snapshot(ctx, logged_txns);
                }
                LeaderStep::ReportDurable => {
                    let PeerRole::Leading(l) = &mut self.role else { return };
                    l.turn.durable(&mut l.core, &mut l.term, self.log.take_newly_durable());
                }
                LeaderStep::Publish(commit_point) => {
                    let committed = commit_point.max(self.planted_minority_point(ctx));
                    self.publish_committed(ctx, committed);
                }
                LeaderStep::StepDown(why) => {
                    self.leave_role(ctx, why);
                    return;
                }
                LeaderStep::Done => return,
            }
        }
    }

    fn leader_action(&mut self, ctx: &mut Ctx, action: LeaderAction, batch_open: bool) -> Result<Flow, String> {
        match action {
            LeaderAction::PersistAcceptedEpoch(e) => {
                self.persist_epoch(ctx, EpochFile::Accepted, e);
                return Ok(Flow::Blocked);
            }
            LeaderAction::PersistCurrentEpoch(e) => {
                self.persist_epoch(ctx, EpochFile::Current, e);
                return Ok(Flow::Blocked);
            }
            LeaderAction::Send(conn, p) => {
                if let Some(id) = self.leader_link(conn) {
                    ctx.conn_send(id, Dir::ToLearner, Wire::Packet(p.to_packet().to_bytes()));
                }
            }
            LeaderAction::SendSnapshot { conn, zxid } => {
                if let Some(id) = self.leader_link(conn) {
                    let mut stream = Vec::new();
                    let live;
                    let sessions = if ctx.knobs.plant == Some(super::world::Plant::SnapLiveSessions) {
                        live = self.seq.session_timeouts();
                        &live
                    } else {
                        self.published_sessions.timeouts_ms()
                    };
                    if let Err(e) =
                        crate::storage::apache::write_snap_stream(&mut stream, &self.published_tree, sessions)
                    {
                        ctx.oracle.fail("codec", format!("SNAP stream does not encode: {e}"), ctx.now);
                    }
                    ctx.trace(self.sid, format!("SNAP 0x{zxid:x} to conn {conn} ({} bytes)", stream.len()));
                    let packet = ToLearner::Snap { zxid }.to_packet().to_bytes();
                    ctx.conn_send(id, Dir::ToLearner, Wire::Snap { packet, stream: Bytes::from(stream) });
                }
            }
            LeaderAction::SendLoggedTxns { conn, after_zxid, through_zxid } => {
                // Served from the simulated log files, as production's
                // `disk_log::LoggedTxnFiles::write_pairs` reads the real ones.
                if let Some(id) = self.leader_link(conn) {
                    let mut cursor = crate::server::disk_log::LoggedTxnCursor::new(after_zxid, through_zxid);
                    let mut packets = Vec::new();
                    let mut result = Ok(());
                    for file in &self.disk.logs {
                        let bytes = Bytes::from(file.bytes.clone());
                        result = crate::server::disk_log::pairs_in_file(&bytes, &mut cursor, |zxid, txn| {
                            packets.push(ToLearner::Proposal { zxid, txn });
                            packets.push(ToLearner::Commit { zxid });
                        });
                        if result.is_err() || cursor.is_done() {
                            break;
                        }
                    }
                    match result.and_then(|()| cursor.finish()) {
                        Ok(()) => {
                            ctx.diffs_from_disk += 1;
                            ctx.trace(
                                self.sid,
                                format!("DIFF from disk 0x{after_zxid:x}..=0x{through_zxid:x} to conn {conn}"),
                            );
                            for p in packets {
                                ctx.conn_send(id, Dir::ToLearner, Wire::Packet(p.to_packet().to_bytes()));
                            }
                        }
                        Err(e) => {
                            ctx.trace(self.sid, format!("cannot DIFF conn {conn} from disk: {e}; dropping it"));
                            if let PeerRole::Leading(l) = &mut self.role {
                                l.links.remove(&conn);
                                l.core.learner_disconnected(conn);
                            }
                            ctx.break_conn(id, true, "leader could not read its log for a DIFF");
                        }
                    }
                }
            }
            LeaderAction::SyncChosen { conn, sid, plan, reason } => {
                ctx.trace(self.sid, format!("syncs {sid} (conn {conn}): {plan:?} because {reason:?}"));
            }
            LeaderAction::Established { epoch } => {
                self.seq.raise_last_zxid(make_zxid(epoch, 0));
                if let PeerRole::Leading(l) = &mut self.role {
                    l.term.established(self.seq.last_zxid());
                }
                self.published_tree = self.seq.tree().clone();
                ctx.trace(self.sid, format!("ESTABLISHED epoch {epoch} at zxid 0x{:x}", self.seq.last_zxid()));
                ctx.disturbed();
                self.advertise_epoch(epoch);
                ctx.oracle.established(self.sid, epoch, ctx.now);
                ctx.oracle.established_with_base(self.history.base_zxid);
                // Everything this leader logged is committed from now on.
                for (&zxid, e) in &self.history.entries {
                    ctx.oracle.commit(self.sid, true, zxid, e.txn_hash, Some(e.digest), ctx.now);
                }
                ctx.oracle.check_serving(self.sid, epoch, &self.history, self.seq.last_zxid(), ctx.now);
            }
            LeaderAction::Committed { zxid } => {
                let visible = match &self.role {
                    PeerRole::Leading(l) => l.term.visible_through(zxid),
                    _ => zxid,
                };
                let visible = visible.max(self.planted_minority_point(ctx));
                self.publish_committed(ctx, visible);
                self.flush_planted_syncs(ctx);
            }
            LeaderAction::Forwarded { conn, request, .. } if request.op_type == crate::proto::op::SYNC => {
                // In request order: after the writes forwarded before it.
                let last_zxid = self.seq.last_zxid();
                let plant = ctx.knobs.plant == Some(super::world::Plant::SyncWithoutRound);
                if let PeerRole::Leading(l) = &mut self.role {
                    if plant {
                        l.planted_syncs.push_back((PlantedSync::Learner(conn), last_zxid));
                    } else {
                        let mut more = Vec::new();
                        l.core.sync(SyncRequester::Learner(conn), last_zxid, &mut more);
                        l.turn.queue(more);
                    }
                }
                if plant {
                    self.flush_planted_syncs(ctx);
                }
            }
            LeaderAction::Forwarded { conn, sid, request }
                if matches!(
                    request.op_type,
                    crate::proto::op::CREATE_SESSION | crate::proto::op::CLOSE_SESSION | crate::proto::op::CREATE
                ) =>
            {
                // Into the batch being built (production: `leader_action`
                // with `Some(batch)`); later lists never carry a REQUEST.
                let mut batch = match &mut self.role {
                    PeerRole::Leading(l) if batch_open => std::mem::take(&mut l.batch),
                    _ => {
                        ctx.trace(
                            self.sid,
                            format!("forwarded request from {sid} after the batch was sealed; dropped"),
                        );
                        return Ok(Flow::Continue);
                    }
                };
                self.execute_forwarded(ctx, sid, conn, request, &mut batch);
                if let PeerRole::Leading(l) = &mut self.role {
                    l.batch = batch;
                }
            }
            LeaderAction::Forwarded { sid, .. } => {
                ctx.trace(
                    self.sid,
                    format!("forwarded request from {sid} ignored (the sim's clients write to the leader)"),
                );
            }
            LeaderAction::Revalidate { conn, session_id, timeout_ms } => {
                // The session lives on that learner now (a local owner it
                // had here is forgotten, as production's leader does).
                let valid = self.revalidate(ctx, session_id, timeout_ms, (None, SessionHolder::Learner(conn)));
                let mut more = Vec::new();
                if let PeerRole::Leading(l) = &mut self.role {
                    l.core.revalidated(conn, session_id, valid, &mut more);
                    l.turn.queue(more);
                }
            }
            LeaderAction::SessionsTouched(touches) => {
                for t in touches {
                    self.touch_session(ctx, t.session_id);
                }
            }
            LeaderAction::LocalSyncReady { token } => {
                // Mirrors `leader_action`: the answer rides on this turn's
                // batch, published after its commits; once that batch is
                // sealed, on a batch of its own holding the proposed state.
                let last_zxid = self.seq.last_zxid();
                if let PeerRole::Leading(l) = &mut self.role {
                    if let Some(id) = l.term.take_local_sync(token) {
                        if batch_open {
                            l.batch.syncs.push(id);
                        } else {
                            l.term.pending.push(
                                last_zxid,
                                PendingBatch {
                                    tree: self.seq.tree().clone(),
                                    txns: Vec::new(),
                                    writes: Vec::new(),
                                    syncs: vec![id],
                                    session_txns: Vec::new(),
                                    session_changes: Vec::new(),
                                },
                            );
                        }
                    }
                }
            }
            LeaderAction::Close { conn, reason } => {
                ctx.trace(self.sid, format!("drops learner conn {conn}: {reason}"));
                if let PeerRole::Leading(l) = &mut self.role {
                    if let Some(id) = l.links.remove(&conn) {
                        ctx.break_conn(id, true, "leader dropped the learner");
                    }
                    l.core.learner_disconnected(conn);
                }
            }
            LeaderAction::StepDown { reason } => return Err(reason),
        }
        Ok(Flow::Continue)
    }

    /// Planted bug (`Plant::CommitOnMinority`): the zxid a minority of the
    /// voters (`voters / 2`: the leader's durable log and the newest ACKs
    /// of its learners) hold. `i64::MIN` without the plant.
    fn planted_minority_point(&self, ctx: &Ctx) -> i64 {
        let PeerRole::Leading(l) = &self.role else { return i64::MIN };
        if ctx.knobs.plant != Some(super::world::Plant::CommitOnMinority) || !l.core.is_established() {
            return i64::MIN;
        }
        let mut held: Vec<i64> = l
            .links
            .values()
            .filter_map(|c| l.planted_acks.get(c).copied())
            .chain(std::iter::once(self.log.durable_through()))
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        let minority = (self.ensemble.voters.len() / 2).max(1);
        held.get(minority - 1).copied().unwrap_or(i64::MIN)
    }

    fn leader_link(&self, conn: LearnerConn) -> Option<ConnId> {
        match &self.role {
            PeerRole::Leading(l) => l.links.get(&conn).copied(),
            _ => None,
        }
    }

    /// Mirrors `publish_committed`: batches a quorum holds go to clients.
    fn publish_committed(&mut self, ctx: &mut Ctx, committed: i64) {
        let PeerRole::Leading(l) = &mut self.role else { return };
        let due: Vec<PendingBatch> = l.term.pending.take_through(committed).collect();
        for b in due {
            self.publish(ctx, b);
        }
    }

    /// Mirrors `CommitShard::publish`: the batch's tree becomes what
    /// clients read; its writes and syncs are answered.
    fn publish(&mut self, ctx: &mut Ctx, mut b: PendingBatch) {
        let mut fired: Vec<(i64, crate::tree::WatchTrigger)> = b
            .writes
            .iter_mut()
            .flat_map(|w| std::mem::take(&mut w.triggers).into_iter().map(|t| (w.zxid, t)))
            .collect();
        if !b.session_txns.is_empty() {
            fired.extend(
                b.session_txns
                    .iter_mut()
                    .flat_map(|st| std::mem::take(&mut st.triggers).into_iter().map(|t| (st.zxid, t))),
            );
            fired.sort_by_key(|(zxid, _)| *zxid);
        }
        self.fire_watches(ctx, fired);
        self.published_tree = b.tree;
        self.published_sessions.apply(&b.session_changes);
        for (zxid, hash, digest) in &b.txns {
            ctx.oracle.commit(self.sid, true, *zxid, *hash, Some(*digest), ctx.now);
        }
        for w in &b.writes {
            if let Some((_, hash, _)) = b.txns.iter().find(|(z, _, _)| *z == w.zxid) {
                ctx.oracle.acknowledge(w.zxid, *hash);
            }
            if let Some(path) = &w.changed {
                ctx.oracle.acknowledge_change(path, w.zxid);
            }
            ctx.write_acked(w.id, w.zxid);
        }
        for st in b.session_txns {
            if let Some(session) = st.closed {
                let left = self.published_tree.ephemerals_of(session);
                ctx.session_closed(self.sid, session, st.zxid, &left);
            }
            if let Some((session, path)) = &st.ephemeral {
                // Executed only while the session was in the table.
                ctx.ephemeral_created(self.sid, *session, path, st.zxid, true);
            }
            if let Some(reply) = st.reply {
                if let Some((_, hash, _)) = b.txns.iter().find(|(z, _, _)| *z == st.zxid) {
                    ctx.oracle.acknowledge(st.zxid, *hash);
                }
                ctx.session_reply(self.sid, reply);
            }
        }
        for id in &b.syncs {
            ctx.sync_answered(self.sid, *id, &self.published_tree);
        }
    }

    /// A client's plain read of `path` (no sync), answered at once from
    /// what this server serves reads from (production's workers read the
    /// published batch's tree: the leader's or standalone's published
    /// state, a learner's applied one); the oracle checks that the node's
    /// version is a committed txn.
    pub fn plain_read(&self, ctx: &mut Ctx, path: &str) {
        let planted = ctx.knobs.plant == Some(super::world::Plant::ReadPastCommit);
        let (node_zxid, txn_hash) = match &self.role {
            PeerRole::Following(_) if planted => {
                // Planted bug: the read sees the logged tail too.
                let mut view = self.seq.tree().clone();
                let mut hashes = BTreeMap::new();
                for (zxid, payload) in self.seq.recent_txns().iter().filter(|(z, _)| *z > self.seq.last_zxid()) {
                    if let Ok(logged) = LoggedTxn::decode(payload.clone()) {
                        let _ = view.apply_txn(&logged.header, &logged.txn);
                        hashes.insert(*zxid, hash_txn(payload));
                    }
                }
                let Some(zxid) = view.get(path).map(|n| n.mzxid()) else { return };
                (zxid, hashes.get(&zxid).copied().or_else(|| self.history.entries.get(&zxid).map(|e| e.txn_hash)))
            }
            PeerRole::Following(_) => {
                let Some(zxid) = self.seq.tree().get(path).map(|n| n.mzxid()) else { return };
                (zxid, self.history.entries.get(&zxid).map(|e| e.txn_hash))
            }
            PeerRole::Leading(_) | PeerRole::Standalone(_) => {
                let Some(zxid) = self.published_tree.get(path).map(|n| n.mzxid()) else { return };
                (zxid, self.history.entries.get(&zxid).map(|e| e.txn_hash))
            }
            _ => return,
        };
        if node_zxid <= self.history.base_zxid {
            return; // from an installed snapshot: checked when installed
        }
        ctx.trace(self.sid, format!("client read {path}: changed at 0x{node_zxid:x}"));
        let now = ctx.now;
        ctx.oracle.check_read(self.sid, path, node_zxid, txn_hash, now);
    }

    // ------------------------------------------------------------------
    // Standalone (mirrors `CommitShard::run_standalone`)

    /// A lone server serves as soon as recovery is done: everything it
    /// recovered is its committed state, and must hold every write it
    /// acknowledged before.
    fn start_standalone(&mut self, ctx: &mut Ctx) {
        ctx.trace(self.sid, format!("STANDALONE serving at zxid 0x{:x}", self.seq.last_zxid()));
        for (&zxid, e) in &self.history.entries {
            ctx.oracle.commit(self.sid, true, zxid, e.txn_hash, Some(e.digest), ctx.now);
        }
        ctx.oracle.check_serving_all(self.sid, &self.history, self.seq.last_zxid(), ctx.now);
        self.role = PeerRole::Standalone(Box::new(Standalone { pending: PendingBatches::default() }));
    }

    /// One turn of `run_standalone`: the turn's writes and syncs, in
    /// arrival order, into one batch; the batch to the log; then every
    /// batch the log reports durable is published (the durability point:
    /// nothing of a batch reaches a client first).
    fn standalone_turn(&mut self, ctx: &mut Ctx) {
        let items: Vec<Input> = self.inbox.drain(..).collect();
        let mut batch = LeaderBatch::default();
        for input in items {
            match input {
                Input::ClientWrite { id, write } => self.execute(ctx, id, &write, &mut batch),
                // `ToCommit::Sync`: a reply entry in the batch, after the
                // writes before it.
                Input::ClientSync { id, .. } => batch.syncs.push(id),
                input if input.is_session_op() => self.local_session_op(ctx, input, &mut batch),
                _ => {}
            }
        }
        // The turn's order is the shared `StandaloneTurn`'s (production's
        // `run_standalone` drives the same).
        let mut turn = StandaloneTurn::default();
        turn.begin();
        loop {
            match turn.next(&batch) {
                StandaloneStep::ExpireSessions => self.expire_sessions(ctx, &mut batch),
                StandaloneStep::HandToLog => {
                    let batch = std::mem::take(&mut batch);
                    let last_zxid = self.seq.last_zxid();
                    let tree = self.seq.tree().clone();
                    note_session_events(ctx, &batch.session_events, &batch.txns);
                    let (logged, txns, writes, syncs, session_txns, session_changes) = (
                        batch.logged,
                        batch.txns,
                        batch.writes,
                        batch.syncs,
                        batch.session_txns,
                        batch.session_changes,
                    );
                    let logged_txns = logged.len() as u64;
                    self.log_txns(ctx, logged);
                    if let PeerRole::Standalone(s) = &mut self.role {
                        s.pending
                            .push(last_zxid, PendingBatch { tree, txns, writes, syncs, session_txns, session_changes });
                    }
                    self.maybe_snapshot(ctx, logged_txns);
                }
                StandaloneStep::ReportDurable => turn.durable(self.log.durable_through()),
                StandaloneStep::Publish(durable) => {
                    let mut due = Vec::new();
                    if let PeerRole::Standalone(s) = &mut self.role {
                        due.extend(s.pending.take_through(durable));
                    }
                    for b in due {
                        self.publish(ctx, b);
                    }
                }
                StandaloneStep::Done => return,
            }
        }
    }

    // ------------------------------------------------------------------
    // Following (drives the shared `commit::LearnerTurn`, as
    // `quorum_peer::follow` and `learner_actions` do)

    fn learner_turn(&mut self, ctx: &mut Ctx) {
        let now = self.now(ctx);
        let items: Vec<Input> = self.inbox.drain(..).collect();
        let mut leader_down = None;
        let mut left_cleanly = false;
        let my_conn = match &self.role {
            PeerRole::Following(f) => f.conn,
            _ => return,
        };
        for input in items {
            match input {
                Input::LeaderPacket(conn, p) if conn == my_conn => {
                    if let PeerRole::Following(f) = &mut self.role {
                        f.turn.packet(&mut f.core, p, now);
                    }
                }
                Input::LeaderSnapshot { conn, zxid, stream } if conn == my_conn => {
                    if let PeerRole::Following(f) = &mut self.role {
                        f.turn.snapshot_read(&mut f.core, zxid, now);
                    }
                    if let Err(e) = self.install_snapshot(ctx, zxid, &stream) {
                        if !self.up {
                            return; // it stopped: the process is gone
                        }
                        leader_down = Some(format!("cannot install the leader's snapshot: {e}"));
                        break;
                    }
                    if let PeerRole::Following(f) = &mut self.role {
                        f.turn.snapshot_installed(&mut f.core, zxid, now);
                    }
                }
                Input::LeaderDown(conn, why) if conn == my_conn => {
                    leader_down = Some(format!("lost the leader: {why}"));
                    left_cleanly = true;
                    break;
                }
                Input::ClientWrite { id, .. } => {
                    ctx.write_refused(id);
                    ctx.trace(self.sid, format!("client write #{id} reached a follower; dropped"));
                }
                input if input.is_session_op() => {
                    if let Some(packet) = self.learner_session_op(ctx, input) {
                        self.send_to_leader(ctx, my_conn, &packet);
                    }
                }
                Input::ClientSync { id, path } => {
                    // Mirrors `forward`'s `ToCommit::Sync` arm.
                    let PeerRole::Following(f) = &mut self.role else { continue };
                    if !f.core.is_serving() {
                        ctx.sync_refused(self.sid, id, "not serving");
                        continue;
                    }
                    f.requests.forwarded_sync(id);
                    let mut body = BytesMut::new();
                    crate::jute::Writer::new(&mut body).string(&path);
                    let request = ForwardedRequest {
                        session_id: SIM_CLIENT_SESSION,
                        cxid: (id & 0x7FFF_FFFF) as i32,
                        op_type: crate::proto::op::SYNC,
                        body: body.freeze(),
                        authinfo: Vec::new(),
                    };
                    self.send_to_leader(ctx, my_conn, &ToLeader::Request(request));
                }
                _ => {}
            }
        }
        if let Some(why) = leader_down {
            if let PeerRole::Following(f) = &mut self.role {
                f.turn.leader_lost();
            }
            self.leave_role_as(ctx, why, left_cleanly);
            return;
        }
        if let PeerRole::Following(f) = &mut self.role {
            f.turn.begin(&mut f.core, self.log.take_newly_durable(), now);
        }
        self.continue_learner(ctx);
    }

    /// Carries out the turn's steps in `LearnerTurn`'s order until it is
    /// done, or an action waits on the simulated disk (resumed from
    /// `resume_role`).
    fn continue_learner(&mut self, ctx: &mut Ctx) {
        use crate::commit::LearnerStep;
        loop {
            let step = match &mut self.role {
                PeerRole::Following(f) => f.turn.next(),
                _ => return,
            };
            match step {
                LearnerStep::Act(action) => match self.learner_action(ctx, action) {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Blocked) => return,
                    Err(why) => {
                        let left_cleanly = std::mem::take(&mut self.gave_up);
                        self.leave_role_as(ctx, why, left_cleanly);
                        return;
                    }
                },
                // The simulator publishes each txn as it applies it
                // (`apply_logged`) and answers syncs and reconnects as the
                // actions come; production publishes its batch here.
                LearnerStep::Publish => {}
                LearnerStep::Log(to_log) => {
                    // To the log (production's log thread); the ACKs go out
                    // when it reports them durable (`learner_turn`).
                    // `remember_recent` after a learner's append (shared).
                    self.seq.remember_recent(&to_log, ctx.knobs.recent_window_txns);
                    let logged_txns = to_log.len() as u64;
                    self.log_txns(ctx, to_log);
                    self.maybe_snapshot(ctx, logged_txns);
                }
                LearnerStep::Done => return,
            }
        }
    }

    fn learner_action(&mut self, ctx: &mut Ctx, action: LearnerAction) -> Result<Flow, String> {
        let PeerRole::Following(f) = &mut self.role else { return Ok(Flow::Continue) };
        let conn = f.conn;
        match action {
            LearnerAction::Send(p) => self.send_to_leader(ctx, conn, &p),
            LearnerAction::PingReply { zxid } => {
                // Mirrors `learner_actions`: the sessions heard from since
                // the last reply ride on it.
                let sessions = f.requests.take_ping_sessions(|id| self.seq.session(id).map(|e| e.timeout_ms));
                self.send_to_leader(ctx, conn, &ToLeader::Ping { zxid, sessions })
            }
            LearnerAction::PersistAcceptedEpoch(e) => {
                self.persist_epoch(ctx, EpochFile::Accepted, e);
                return Ok(Flow::Blocked);
            }
            LearnerAction::PersistCurrentEpoch(e) => {
                self.persist_epoch(ctx, EpochFile::Current, e);
                return Ok(Flow::Blocked);
            }
            LearnerAction::Truncate { zxid } => {
                if !self.log.is_idle() {
                    // Production closes the log first, which drains it.
                    f.turn.put_back(LearnerAction::Truncate { zxid });
                    self.blocked = Some(Blocked::LogDrain);
                    self.after_drain = Some(AfterDrain::LearnerAction);
                    return Ok(Flow::Blocked);
                }
                if ctx.knobs.plant == Some(super::world::Plant::SkipTrunc) {
                    // Planted bug: the TRUNC is taken as done; the log and
                    // the tree keep what the leader's history lacks.
                    ctx.trace(self.sid, format!("TRUNC to 0x{zxid:x} skipped (planted bug)"));
                    return Ok(Flow::Continue);
                }
                ctx.trace(self.sid, format!("TRUNC to 0x{zxid:x}"));
                if let Err(e) = self.disk.truncate_after(zxid) {
                    // Production stops the process (as Apache's learner
                    // does; `stop_after_failed_truncation`): its log cannot
                    // be cut back, and every later sync would TRUNC again.
                    self.cannot_load(ctx, format!("TRUNC to 0x{zxid:x} failed: {e}"));
                    self.call_the_operator(ctx);
                    return Ok(Flow::Blocked);
                }
                self.reload_from_disk(ctx, "TRUNC")?;
                if self.seq.last_zxid() != zxid {
                    return Err(format!(
                        "after TRUNC to 0x{zxid:x} the log ends at 0x{:x}; this server lacks history the leader assumes",
                        self.seq.last_zxid()
                    ));
                }
            }
            LearnerAction::ReadSnapshot { zxid } => ctx.trace(self.sid, format!("reads SNAP 0x{zxid:x}")),
            // `LearnerTurn` gathers these into `LearnerStep::Log`.
            LearnerAction::Log(_) => {}
            LearnerAction::Apply(txns) => {
                for (zxid, txn) in txns {
                    self.apply_committed(ctx, zxid, txn)?;
                }
            }
            LearnerAction::SyncDone => {
                // The SYNC came after the COMMITs of everything before it:
                // the tree holds them (`learner_actions`' SyncDone arm).
                if let Some(id) = f.requests.take_sync() {
                    if !self.is_voter() {
                        ctx.oracle.check_observer_state(self.sid, &self.history, ctx.now);
                    }
                    ctx.sync_answered(self.sid, id, self.seq.tree());
                }
            }
            // `learner_actions`' Revalidated arm: a valid session enters
            // this learner's table (with the timeout asked) if absent.
            LearnerAction::Revalidated { session_id, valid } => {
                if let Some((client, timeout_ms)) = f.requests.take_revalidation(session_id) {
                    if valid {
                        self.seq.learner_revalidated(session_id, timeout_ms, client);
                    }
                    ctx.session_reply(self.sid, SessionReply::Reconnected { client, session_id, valid });
                }
            }
            LearnerAction::Serving { epoch } => {
                // The leader established: what the sync applied is committed.
                let voter = !self.ensemble.is_observer(self.sid);
                for (zxid, hash, digest) in std::mem::take(&mut f.applied_before_uptodate) {
                    ctx.oracle.commit(self.sid, voter, zxid, hash, Some(digest), ctx.now);
                }
                ctx.trace(self.sid, format!("SERVING epoch {epoch} at zxid 0x{:x}", self.seq.last_zxid()));
                ctx.disturbed();
                self.advertise_epoch(epoch);
                ctx.oracle.check_serving(self.sid, epoch, &self.history, self.seq.last_zxid(), ctx.now);
                if !self.is_voter() {
                    ctx.oracle.check_observer_state(self.sid, &self.history, ctx.now);
                }
            }
            LearnerAction::GiveUp { reason } => {
                self.gave_up = true;
                return Err(reason);
            }
        }
        Ok(Flow::Continue)
    }

    /// Mirrors `quorum_peer::apply_committed` (without client replies).
    fn apply_committed(&mut self, ctx: &mut Ctx, zxid: i64, payload: Bytes) -> Result<(), String> {
        let (hash, digest, applied) = self.apply_logged(ctx, zxid, payload)?;
        match &mut self.role {
            PeerRole::Following(f) if !f.core.is_serving() => f.applied_before_uptodate.push((zxid, hash, digest)),
            _ => ctx.oracle.commit(self.sid, self.is_voter(), zxid, hash, Some(digest), ctx.now),
        }
        self.learner_session_effects(ctx, zxid, hash, applied);
        Ok(())
    }

    /// A session client's request on a learner: the REQUEST (or
    /// REVALIDATE) to send the leader (`forward`'s session arms), or None
    /// (a ping, or turned away).
    fn learner_session_op(&mut self, ctx: &mut Ctx, input: Input) -> Option<ToLeader> {
        let PeerRole::Following(f) = &mut self.role else { return None };
        if !f.core.is_serving() {
            if let Some(r) = input.session_refusal() {
                ctx.session_reply(self.sid, r);
            }
            return None;
        }
        let request = |session_id, cxid, op_type, body| {
            ToLeader::Request(ForwardedRequest { session_id, cxid, op_type, body, authinfo: Vec::new() })
        };
        match input {
            Input::ClientConnect { client, timeout_ms } => {
                let session_id = self.seq.next_session_id();
                ctx.session_allocated(client, session_id);
                f.requests.forwarded_connect(session_id, client);
                let body = Bytes::copy_from_slice(&timeout_ms.to_be_bytes());
                Some(request(session_id, 0, crate::proto::op::CREATE_SESSION, body))
            }
            Input::ClientPing { session_id } => {
                f.requests.touched(session_id);
                None
            }
            Input::ClientEphemeral { client, session_id, path } => {
                let cxid = client_cxid(client);
                let mut body = BytesMut::new();
                let WriteOp::Create { op, path: p, data, acl, flags, ttl } = ephemeral_create(&path) else {
                    return None;
                };
                let create = crate::proto::Request::Create {
                    op,
                    req: crate::proto::CreateRequest { path: p, data, acl, flags, ttl },
                };
                create.encode_body(&mut crate::jute::Writer::new(&mut body));
                f.requests.forwarded_write(session_id, cxid, (client, path));
                Some(request(session_id, cxid, op, body.freeze()))
            }
            Input::ClientClose { client, session_id } => {
                f.requests.forwarded_close(session_id, client);
                Some(request(session_id, 0, crate::proto::op::CLOSE_SESSION, Bytes::new()))
            }
            // `ToCommit::Revalidate` on a learner: asked of the leader,
            // answered in order per session (`LearnerPending::revalidations`).
            Input::ClientReconnect { client, session_id, timeout_ms } => {
                f.requests.forwarded_revalidate(session_id, (client, timeout_ms));
                Some(ToLeader::Revalidate { session_id, timeout_ms })
            }
            _ => None,
        }
    }

    /// Mirrors `apply_committed`'s session replies on a learner, and feeds
    /// the sessions checker.
    fn learner_session_effects(&mut self, ctx: &mut Ctx, zxid: i64, hash: u64, applied: Applied) {
        let session = applied.session_id;
        match &applied.kind {
            AppliedKind::CreateSession => {}
            AppliedKind::CloseSession => {
                let left = self.seq.tree().ephemerals_of(session);
                ctx.session_closed(self.sid, session, zxid, &left);
            }
            AppliedKind::Write { ephemeral, .. } => {
                if let Some(path) = ephemeral {
                    let live = self.seq.holds_session(session);
                    ctx.ephemeral_created(self.sid, session, path, zxid, live);
                }
            }
        }
        let ok = matches!(applied.kind, AppliedKind::Write { ok: true, .. });
        let reply = applied.waiter.map(|waiter| match waiter {
            TxnWaiter::Connect(client) => SessionReply::Connected { client, session_id: session },
            TxnWaiter::Close(client) => SessionReply::Closed { client, session_id: session },
            TxnWaiter::Write((client, path)) => SessionReply::Created { client, session_id: session, path, ok },
        });
        if let Some(reply) = reply {
            ctx.oracle.acknowledge(zxid, hash);
            ctx.session_reply(self.sid, reply);
        }
    }

    /// Applies one logged txn to tree, sessions and history: (hash, digest,
    /// what it was).
    fn apply_logged(&mut self, ctx: &mut Ctx, zxid: i64, payload: Bytes) -> Result<(u64, i64, Applied), String> {
        let hash = hash_txn(&payload);
        // Shared with `quorum_peer::apply_committed`: the table follows the
        // session txns; a createSession is attached to the client that
        // asked here. Outside a role (a caught-up tail) nobody waits.
        let mut nobody = ForwardedRequests::default();
        let pending = match &mut self.role {
            PeerRole::Following(f) => &mut f.requests,
            _ => &mut nobody,
        };
        let commit =
            crate::commit::learner_turn::apply_commit(&mut self.seq, pending, zxid, payload, |client| *client)?;
        let (h, waiter, check) = (commit.header, commit.waiter, commit.digest_check);
        let crate::commit::AppliedTxn { result, triggers, session_change } = commit.applied;
        let kind = match &commit.txn {
            Txn::CreateSession { .. } => AppliedKind::CreateSession,
            Txn::CloseSession { .. } => AppliedKind::CloseSession,
            Txn::Create { path, ephemeral: true, .. } => {
                AppliedKind::Write { ok: result.is_ok(), ephemeral: result.is_ok().then(|| path.clone()) }
            }
            _ => AppliedKind::Write { ok: result.is_ok() && h.op != crate::proto::op::ERROR, ephemeral: None },
        };
        let applied = Applied { session_id: h.session_id, kind, waiter };
        if !triggers.is_empty() {
            self.fire_watches(ctx, triggers.into_iter().map(|t| (zxid, t)).collect());
        }
        if check.is_mismatch() {
            ctx.oracle.fail("agreement", format!("server {} at 0x{zxid:x}: {check}", self.sid), ctx.now);
        }
        // A learner publishes each batch it applies (production's
        // `apply_committed` pushes the change into the batch it publishes).
        if let Some(change) = session_change {
            self.published_sessions.apply(&[change]);
        }
        let digest = self.seq.tree().digest();
        self.history.entries.insert(zxid, HistoryEntry { txn_hash: hash, digest });
        Ok((hash, digest, applied))
    }

    /// Mirrors `quorum_peer::install_snapshot`. The snapshot write and the
    /// currentEpoch raise take no simulated time here.
    fn install_snapshot(&mut self, ctx: &mut Ctx, zxid: i64, stream: &Bytes) -> Result<(), String> {
        if !self.log.is_idle() {
            // Production drains the log here (`LogHandle::close`); a SNAP
            // only ever comes before this role logged anything.
            return Err(
                "a SNAP arrived while the log was still writing (the simulator does not model waiting here)".into()
            );
        }
        let (mut tree, sessions, _) = crate::storage::apache::decode_snap_stream(stream, zxid)
            .map_err(|e| format!("SNAP stream does not decode: {e}"))?;
        let oracle = &ctx.oracle;
        if let Some(detail) =
            ctx.sessions.snapshot_table_finding(self.sid, zxid, &sessions, |z| oracle.committed_hash(z))
        {
            ctx.oracle.fail("sessions", detail, ctx.now);
        }
        let data_epoch = epoch_of(zxid);
        if data_epoch > self.current {
            self.disk.write_epoch_now(EpochFile::Current, data_epoch);
            self.current = data_epoch;
        }
        if let Err(e) = self.disk.truncate_after(zxid) {
            // Production stops the process (`stop_after_failed_truncation`).
            self.cannot_load(ctx, format!("the cut above the SNAP at 0x{zxid:x} failed: {e}"));
            self.call_the_operator(ctx);
            return Err("the process stopped".into());
        }
        tree.set_last_zxid(zxid);
        self.disk.snapshot = Some((zxid, stream.clone()));
        self.disk.snapshot_unreadable = false;
        let digest = tree.digest();
        ctx.trace(self.sid, format!("installed SNAP 0x{zxid:x} digest {digest:x}"));
        if let Some(live) = ctx.oracle.committed_digest(zxid) {
            if live != digest {
                ctx.oracle.fail(
                    "recovery-equals-live",
                    format!(
                        "server {} installed a SNAP labelled 0x{zxid:x} with digest {digest:x}; the committed state there has {live:x}",
                        self.sid
                    ),
                    ctx.now,
                );
            }
        }
        let now = self.now(ctx) as i64;
        self.seq.reset(tree, zxid, sessions, VecDeque::new(), now);
        self.published_sessions.reset(self.seq.sessions());
        self.plant_expire_early_all(ctx);
        self.log.restart_at(zxid);
        self.history = History { base_zxid: zxid, entries: Default::default() };
        Ok(())
    }

    /// A quorum-port packet arriving for this server (decoded with the
    /// production codecs).
    pub fn deliver_wire(&mut self, ctx: &mut Ctx, conn: ConnId, dir: Dir, wire: Wire) {
        match (dir, wire) {
            (Dir::ToLeader, Wire::Packet(bytes)) => {
                match QuorumPacket::decode(bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|p| ToLeader::from_packet(&p).map_err(|e| e.to_string()))
                {
                    Ok(p) => self.push_input(ctx, Input::Learner(conn, p)),
                    Err(e) => {
                        ctx.oracle.fail("codec", format!("packet to leader {} does not decode: {e}", self.sid), ctx.now)
                    }
                }
            }
            (Dir::ToLearner, Wire::Packet(bytes)) => {
                match QuorumPacket::decode(bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|p| ToLearner::from_packet(&p).map_err(|e| e.to_string()))
                {
                    Ok(p) => self.push_input(ctx, Input::LeaderPacket(conn, p)),
                    Err(e) => ctx.oracle.fail(
                        "codec",
                        format!("packet to learner {} does not decode: {e}", self.sid),
                        ctx.now,
                    ),
                }
            }
            (Dir::ToLearner, Wire::Snap { packet, stream }) => {
                let decoded = QuorumPacket::decode(packet)
                    .map_err(|e| e.to_string())
                    .and_then(|p| ToLearner::from_packet(&p).map_err(|e| e.to_string()));
                match decoded {
                    Ok(ToLearner::Snap { zxid }) => self.push_input(ctx, Input::LeaderSnapshot { conn, zxid, stream }),
                    other => ctx.oracle.fail("codec", format!("SNAP packet decodes as {other:?}"), ctx.now),
                }
            }
            (Dir::ToLeader, Wire::Snap { .. }) => {}
        }
    }

    /// The connection `conn` broke, as this end learns it.
    pub fn conn_closed(&mut self, ctx: &mut Ctx, conn: ConnId, why: &str) {
        match &self.role {
            PeerRole::Leading(_) => self.push_input(ctx, Input::LearnerDown(conn, why.to_owned())),
            PeerRole::Following(f) if f.conn == conn => self.push_input(ctx, Input::LeaderDown(conn, why.to_owned())),
            _ => {}
        }
    }
}

/// Tells the session oracle which createSession / close txns a leader or
/// standalone server executed into a batch (with their txn hashes).
fn note_session_events(ctx: &mut Ctx, events: &[(i64, i64, bool)], txns: &[(i64, u64, i64)]) {
    for &(session, zxid, opened) in events {
        if let Some(&(_, hash, _)) = txns.iter().find(|t| t.0 == zxid) {
            ctx.sessions.executed(session, zxid, hash, opened);
        }
    }
}

/// Id of the SNAP-installed snapshot among `SimRecoveryStore::snapshots`.
const INSTALLED_SNAPSHOT_ID: usize = usize::MAX;

/// The simulated disk as production's recovery core reads it: the same
/// snapshot choice, replay, checks, cuts and removals, run on `SimDisk`.
/// Besides, it builds the history the checkers see (the chosen snapshot's,
/// then each replayed txn) and hosts the `replay-skips-record` plant.
struct SimRecoveryStore<'a> {
    sid: Sid,
    disk: &'a mut SimDisk,
    ctx: &'a mut Ctx,
    history: History,
    /// Planted bug: the first record of each log file after the first one
    /// read is handed to recovery as an error txn with its zxid (counted,
    /// never applied: the zxid advances, the tree does not).
    planted_skip: bool,
    logs_read: usize,
    /// The skipped records' own hashes, for the history.
    planted_originals: BTreeMap<i64, u64>,
}

impl SimRecoveryStore<'_> {
    /// `bytes` (a log file) with its first record replaced by an error txn.
    fn skip_first_record(&mut self, first_zxid: i64, bytes: &[u8]) -> Option<Vec<u8>> {
        let scan = disk::scan(bytes).ok()?;
        let first = scan.records.first()?;
        let original = LoggedTxn::decode(Bytes::copy_from_slice(&bytes[first.payload.clone()])).ok()?;
        let mut replaced = BytesMut::new();
        encode_txn(&mut replaced, &original.header, &Txn::Error { err: 0 }, None);
        self.planted_originals.insert(first.zxid, hash_txn(&bytes[first.payload.clone()]));
        self.ctx.trace(self.sid, format!("replay skips txn 0x{:x} (planted bug)", first.zxid));
        let mut out = crate::storage::log_format::encode_file_header(disk::SIM_LOG_BLOCK_BYTES, first_zxid);
        for (i, record) in scan.records.iter().enumerate() {
            let payload: &[u8] = if i == 0 { &replaced } else { &bytes[record.payload.clone()] };
            let batch =
                crate::storage::log_format::encode_batch_to_vec(&[(record.zxid, payload)], disk::SIM_LOG_BLOCK_BYTES)
                    .ok()?;
            out.extend(batch);
        }
        Some(out)
    }
}

impl RecoveryStore for SimRecoveryStore<'_> {
    fn snapshots(&mut self) -> Vec<(i64, usize)> {
        let mut out: Vec<(i64, usize)> = self.disk.snapshots.iter().enumerate().map(|(i, f)| (f.zxid, i)).collect();
        // The SNAP-installed one is tried before a periodic one of the same zxid.
        if let Some((zxid, _)) = &self.disk.snapshot {
            let at = out.partition_point(|(z, _)| z < zxid);
            out.insert(at, (*zxid, INSTALLED_SNAPSHOT_ID));
        }
        out.reverse();
        out
    }

    fn snapshot_name(&self, id: usize) -> String {
        match id {
            INSTALLED_SNAPSHOT_ID => {
                format!("snapshot 0x{:x} (installed)", self.disk.snapshot.as_ref().map_or(0, |(z, _)| *z))
            }
            _ => format!("snapshot.{:x}", self.disk.snapshots.get(id).map_or(0, |f| f.zxid)),
        }
    }

    fn load_snapshot(&mut self, id: usize) -> Result<LoadedSnapshot, (SnapshotSkip, String)> {
        let bad = |why: String| (SnapshotSkip::DoesNotVerify, why);
        if id == INSTALLED_SNAPSHOT_ID {
            let (zxid, stream) =
                self.disk.snapshot.as_ref().ok_or((SnapshotSkip::Unreadable, "no installed snapshot".into()))?;
            if self.disk.snapshot_unreadable {
                return Err(bad("its seal".into()));
            }
            let (tree, sessions, _) =
                crate::storage::apache::decode_snap_stream(stream, *zxid).map_err(|e| bad(e.to_string()))?;
            return Ok(LoadedSnapshot { last_zxid: *zxid, tree, sessions });
        }
        let file = self.disk.snapshots.get(id).ok_or((SnapshotSkip::Unreadable, "no such snapshot".into()))?;
        let snap = crate::storage::snapshot_format::read_snapshot(&file.bytes).map_err(|e| bad(e.to_string()))?;
        Ok(LoadedSnapshot { last_zxid: snap.last_zxid, tree: snap.tree, sessions: snap.sessions.into_iter().collect() })
    }

    fn snapshot_chosen(&mut self, id: usize, tree: &DataTree) {
        self.history = match self.disk.snapshots.get(id) {
            // The history the snapshot was taken with (the checkers' view),
            // with the digest of the tree actually read back.
            Some(file) if id != INSTALLED_SNAPSHOT_ID => {
                let mut history = file.history.clone();
                if let Some(e) = history.entries.get_mut(&file.zxid) {
                    e.digest = tree.digest();
                }
                history
            }
            _ => History { base_zxid: self.disk.snapshot.as_ref().map_or(0, |(z, _)| *z), entries: Default::default() },
        };
    }

    fn logs(&mut self) -> Vec<i64> {
        self.disk.logs.iter().map(|f| f.first_zxid).collect()
    }

    fn log_name(&self, index: usize) -> String {
        format!("log {index}")
    }

    fn read_log(&mut self, index: usize) -> Result<Bytes, String> {
        let file = self.disk.logs.get(index).ok_or("no such log")?;
        let (first_zxid, bytes) = (file.first_zxid, file.bytes.clone());
        self.logs_read += 1;
        if self.planted_skip && self.logs_read > 1 {
            if let Some(planted) = self.skip_first_record(first_zxid, &bytes) {
                return Ok(Bytes::from(planted));
            }
        }
        Ok(Bytes::from(bytes))
    }

    fn cut_log(&mut self, index: usize, offset: u64) -> Result<(), String> {
        self.disk.cut_log(index, offset as usize);
        Ok(())
    }

    fn remove_log(&mut self, index: usize) -> Result<(), String> {
        self.disk.remove_log(index);
        Ok(())
    }

    fn set_log_aside(&mut self, _index: usize) -> Result<String, String> {
        Err("the simulator never repairs".into())
    }

    fn note(&mut self, note: RecoveryNote<'_>) {
        let line = match note {
            RecoveryNote::SnapshotSkipped { name, skip, why, older_left } => {
                let what = match skip {
                    SnapshotSkip::Unreadable => "cannot be read",
                    SnapshotSkip::DoesNotVerify => "does not verify",
                    SnapshotSkip::NameMismatch => "holds another zxid than its name",
                };
                let next = if older_left { "trying an older one" } else { "no older one" };
                format!("{name} {what} ({why}); {next}")
            }
            RecoveryNote::TornTailCut { name, offset, .. } => {
                format!("recovery cuts a torn tail of {name} at byte {offset}")
            }
            RecoveryNote::LogNeverWritten { name, why } => {
                format!("recovery removes {name}: its header never reached the disk ({why})")
            }
            RecoveryNote::SnapshotLoaded { .. }
            | RecoveryNote::EmptyNewestRemoved { .. }
            | RecoveryNote::RepairCut { .. }
            | RecoveryNote::RepairSetAside { .. } => return,
        };
        self.ctx.trace(self.sid, line);
    }

    fn replayed(&mut self, zxid: i64, payload: &Bytes, tree: &DataTree) {
        let txn_hash = self.planted_originals.get(&zxid).copied().unwrap_or_else(|| hash_txn(payload));
        self.history.entries.insert(zxid, HistoryEntry { txn_hash, digest: tree.digest() });
    }
}
