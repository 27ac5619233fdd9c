//! The commit shard as an ensemble member: the thin glommio driver around
//! the sans-IO ZAB cores (`zab::election`, `zab::leader`, `zab::follower`).
//!
//! A member loops: elect (election port, `election_net`), then lead or
//! follow/observe (quorum port, `quorum_net`) until that ends, then drop
//! every client connection, rebuild its state from disk (which discards a
//! leader's speculative tree) and elect again. The cores decide; this file
//! only moves their actions to files, sockets and workers, in order.
//!
//! * Leading: worker writes and learners' forwarded requests are prepared
//!   against the leader's tree (speculative: it holds proposals not yet
//!   committed), each txn is proposed to the followers *before* the
//!   leader's own write + fdatasync of the batch, and a batch is published
//!   to clients only when the leader core says a quorum (itself included
//!   once its fsync is done) has it. Each published batch carries the tree
//!   as of its end, so workers only ever see committed state.
//! * Following / observing: client writes, syncs and session operations go
//!   to the leader as REQUEST / REVALIDATE; proposals are logged with group
//!   commit and acked after the fsync; commits are applied to the
//!   (committed-only) tree with `DataTree::apply_txn` and published with the
//!   watch events and replies they complete.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::acl::Authz;
use crate::commit::forwarded::{read_forwarded, ForwardedOp};
use crate::commit::{
    BetweenRoles, BetweenRolesStep, ElectionCarry, Intake, LeaderInput, LeaderStep, LeaderTurn, SessionHolder,
    TxnWaiter,
};
use crate::config::{LearnerRole, QuorumConfig};
use crate::jute::Writer;
use crate::proto::records::{CreateRequest, MultiOp, PathVersion, Request, SetAclRequest, SetDataRequest};
use crate::proto::{op, ErrorCode};
use crate::server::commit_shard::{wall_clock_ms, write_response, BatchBuilder, CommitShard, Event, EventQueue};
use crate::server::disk_log;
use crate::server::election_net::{self, AdvertisedEpoch, ElectionNet, ElectionPeers};
use crate::server::messages::*;
use crate::server::quorum_net::{FromLeader, LeaderLink, LearnerLink, LearnerListener, LinkStats};
use crate::server::quorum_sasl::QuorumSasl;
use crate::server::quorum_tls::QuorumTransport;
use crate::server::recovery;
use crate::server::stats::ServerMode;
use crate::storage::epoch_files::{self, ACCEPTED_EPOCH_FILE_NAME, CURRENT_EPOCH_FILE_NAME};
use crate::storage::txn::Txn;
use crate::tree::{DataTree, WriteOp};
use crate::zab::election::{Decision, Election, ElectionConfig, Role};
use crate::zab::election_wire::{quorum_config_text, HostPort, LearnerType, QuorumServerSpec};
use crate::zab::ensemble::{Ensemble, Sid};
use crate::zab::follower::{LearnerAction, LearnerCore, LearnerSettings};
use crate::zab::leader::{LeaderAction, LeaderCore, LeaderSettings, LeaderStart, LearnerConn, SyncRequester};
use crate::zab::packets::{make_zxid, ForwardedRequest, SessionTouch, ToLeader};
use crate::zab::sync_plan::SyncPolicy;

/// How long a learner keeps dialling its leader before electing again.
const LEADER_CONNECT_RETRY_MS: u64 = 200;

/// Which stint in a role (lead or follow) a network event belongs to. A
/// link's reader task may still push an event after its role ended (the
/// close it saw, a packet read just before); the next role must not take
/// it for its own, nor confuse a stale learner number with a new one.
pub type RoleTerm = u64;

/// Network events for the commit shard's loop (see `commit_shard::Event`).
pub enum QuorumEvent {
    LearnerUp(LearnerConn),
    Learner(LearnerConn, ToLeader),
    LearnerDown(LearnerConn, String),
    Leader(FromLeader),
    LeaderDown(String),
}

/// The ensemble as this member sees it, resolved from zoo.cfg.
struct Members {
    ensemble: Ensemble,
    role: LearnerRole,
    election_listen: SocketAddr,
    election_peers: BTreeMap<Sid, SocketAddr>,
    quorum_addrs: BTreeMap<Sid, SocketAddr>,
    config_text: Bytes,
    tick_ms: u64,
    init_limit_ticks: u64,
    sync_limit_ticks: u64,
    /// Plaintext, or quorum TLS (`sslQuorum`, `portUnification`) on the
    /// election and quorum connections.
    transport: QuorumTransport,
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))
}

impl Members {
    fn from_config(q: &QuorumConfig, tick_ms: u64) -> Result<Members, String> {
        let mut election_peers = BTreeMap::new();
        let mut quorum_addrs = BTreeMap::new();
        let mut election_listen = None;
        let mut role = LearnerRole::Participant;
        for s in &q.servers {
            let sid = s.id as Sid;
            let election = resolve(&s.host, s.election_port).map_err(|e| format!("server.{}: {e}", s.id))?;
            let quorum = resolve(&s.host, s.quorum_port).map_err(|e| format!("server.{}: {e}", s.id))?;
            quorum_addrs.insert(sid, quorum);
            if s.id == q.my_id {
                election_listen = Some(election);
                role = s.role;
            } else {
                election_peers.insert(sid, election);
            }
        }
        Ok(Members {
            ensemble: Ensemble::from_config(q),
            role,
            election_listen: election_listen.ok_or("this server has no server.N line")?,
            election_peers,
            quorum_addrs,
            config_text: Bytes::from(ensemble_config_text(q)),
            tick_ms,
            init_limit_ticks: q.init_limit_ticks as u64,
            sync_limit_ticks: q.sync_limit_ticks as u64,
            transport: QuorumTransport::default(),
        })
    }

    fn election_config(&self) -> ElectionConfig {
        ElectionConfig {
            my_sid: self.ensemble.my_sid,
            voters: self.ensemble.voters.iter().map(|s| (*s, 1)).collect(),
            my_learner_type: match self.role {
                LearnerRole::Participant => LearnerType::Participant,
                LearnerRole::Observer => LearnerType::Observer,
            },
            quorum_config_text: self.config_text.clone(),
        }
    }
}

/// The ensemble as Apache's QuorumVerifier prints it (NEWLEADER, election
/// notifications, `conf`): `server.N=host:quorum:election:role[;client]`
/// lines and `version=0` for a static config.
pub fn ensemble_config_text(q: &QuorumConfig) -> String {
    let specs: Vec<QuorumServerSpec> = q
        .servers
        .iter()
        .map(|s| QuorumServerSpec {
            sid: s.id as Sid,
            addresses: vec![(s.host.clone(), s.quorum_port, s.election_port)],
            learner_type: match s.role {
                LearnerRole::Participant => LearnerType::Participant,
                LearnerRole::Observer => LearnerType::Observer,
            },
            client_address: s.client.map(|(host, port)| HostPort {
                host: host.map(|h| h.to_string()).unwrap_or_else(|| "0.0.0.0".to_owned()),
                port,
            }),
        })
        .collect();
    quorum_config_text(&specs, 0)
}

/// acceptedEpoch / currentEpoch, kept in dataDir/zoocore.
struct Epochs {
    dir: std::path::PathBuf,
    accepted: i64,
    current: i64,
    /// The epoch the settled election vote reports, set once the role runs
    /// it (ZOOKEEPER-1732; see `election_net::AdvertisedEpoch`).
    advertised: AdvertisedEpoch,
}

impl Epochs {
    fn load(dir: &std::path::Path, last_zxid: i64) -> Result<Epochs, String> {
        let reconciled = epoch_files::load_epochs(dir, last_zxid).map_err(|e| e.to_string())?;
        for (name, value) in &reconciled.writes {
            epoch_files::write_epoch_file(dir, name, *value).map_err(|e| e.to_string())?;
        }
        Ok(Epochs {
            dir: dir.to_owned(),
            accepted: reconciled.accepted_epoch,
            current: reconciled.current_epoch,
            advertised: AdvertisedEpoch::default(),
        })
    }

    fn persist_accepted(&mut self, epoch: i64) -> Result<(), String> {
        epoch_files::write_epoch_file(&self.dir, ACCEPTED_EPOCH_FILE_NAME, epoch).map_err(|e| e.to_string())?;
        self.accepted = epoch;
        Ok(())
    }

    fn persist_current(&mut self, epoch: i64) -> Result<(), String> {
        epoch_files::write_epoch_file(&self.dir, CURRENT_EPOCH_FILE_NAME, epoch).map_err(|e| e.to_string())?;
        self.current = epoch;
        Ok(())
    }
}

/// A monotonic ms clock for the cores.
fn clock(started: Instant) -> impl Fn() -> u64 {
    move || started.elapsed().as_millis() as u64
}

/// What a learner has asked the leader on behalf of its own clients.
#[derive(Default)]
struct LearnerPending {
    /// This learner's clients' forwarded requests, by the shared rules
    /// (`commit::LearnerPending`): connects and revalidations as
    /// (connection, timeout asked), closes as (connection, xid), syncs as
    /// (connection, xid, path).
    requests: ForwardedRequests,
    /// The role ended for a reason that leaves tree, sessions and log in
    /// step (the leader went away or went silent), not an error midway.
    left_cleanly: bool,
}

type ForwardedRequests =
    crate::commit::LearnerPending<(ConnRef, i32), (ConnRef, i32), PendingWrite, (ConnRef, i32), (ConnRef, i32, String)>;

/// What one leadership term keeps beside its `LeaderCore` (shared with
/// the simulator): sealed batches, the commit floor, the records not yet
/// durable, and local syncs as (connection, xid, path).
type LeaderTerm = crate::commit::LeaderTerm<Arc<CommitBatch>, (ConnRef, i32, String)>;

struct PendingWrite {
    conn: ConnRef,
    xid: i32,
    op: i32,
    write: WriteOp,
}

impl CommitShard {
    /// Ensemble mode: elect, serve in the role won, repeat.
    pub(super) async fn run_quorum(&mut self, events: &Rc<EventQueue>) {
        let Some(quorum) = self.config.quorum.clone() else { return };
        let mut members = match Members::from_config(&quorum, self.config.tick_time_ms as u64) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("cannot start as an ensemble member: {e}");
                std::process::exit(1);
            }
        };
        // server::run read these stores already; read again here, so only a
        // store changed in between can fail now.
        members.transport = match QuorumTransport::load(&self.config.quorum_tls) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("cannot set up quorum TLS: {e}");
                std::process::exit(1);
            }
        };
        // Likewise the JAAS file for quorum SASL.
        match QuorumSasl::load(&self.config.quorum_sasl, self.config.sasl.jaas_path.as_deref()) {
            Ok(sasl) => members.transport = members.transport.clone().with_sasl(sasl),
            Err(e) => {
                tracing::error!("cannot set up quorum SASL: {e}");
                std::process::exit(1);
            }
        }
        tracing::debug!(sid = members.ensemble.my_sid, "starting the election port");
        let peers = ElectionPeers {
            my_sid: members.ensemble.my_sid,
            listen: members.election_listen,
            peers: members.election_peers.clone(),
        };
        let net = match ElectionNet::start_with_transport(peers, members.transport.clone()) {
            Ok(n) => Rc::new(n),
            Err(e) => {
                tracing::error!(addr = %members.election_listen, error = %e, "cannot listen on the election port");
                std::process::exit(1);
            }
        };
        let snap_dir = recovery::snapshot_dir(&self.config.data_dir);
        let mut epochs = match Epochs::load(&snap_dir, self.seq.last_zxid()) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("cannot read the epoch files: {e}");
                std::process::exit(1);
            }
        };
        self.stats.set_quorum_size(members.ensemble.voters.len() as u64);
        let now = clock(self.started);
        let mut carry = ElectionCarry::default();
        let mut term: RoleTerm = 0;
        while !events.stopping() {
            self.stats.set_mode(ServerMode::Looking);
            self.stats.set_zab_view(None, crate::zab::ZabPhase::Election);
            let looking_since = Instant::now();
            let basis = carry.basis(self.seq.last_zxid(), epochs.current);
            let (election, actions) = Election::start(members.election_config(), basis, carry.logical_clock, now());
            let (decision, election) = futures_lite::future::or(
                async { election_net::elect(&net, election, actions, &now).await.ok() },
                async {
                    // Clients are turned away, or served read-only (server::read_only).
                    self.serve_while_looking(events).await;
                    None
                },
            )
            .await
            .unwrap_or_else(|| {
                // Stopping: leave with what we have.
                std::process::exit(0)
            });
            self.leave_read_only().await;
            carry.decided(&election);
            let Decision { leader, role, .. } = decision;
            self.quorum_metrics.election_took(looking_since.elapsed());
            tracing::info!(
                leader,
                role = ?role,
                election_ms = looking_since.elapsed().as_millis() as u64,
                "election decided"
            );
            // Keep answering LOOKING peers with the settled vote while in the role.
            let (stop_tx, stop_rx) = glommio::channels::local_channel::new_bounded::<()>(1);
            epochs.advertised = AdvertisedEpoch::default();
            let responder = {
                let net = net.clone();
                let started = self.started;
                let advertised = epochs.advertised.clone();
                glommio::spawn_local(async move {
                    let mut election = election;
                    let stop = async move {
                        let _ = stop_rx.recv().await;
                    };
                    election_net::answer_while_settled_advertising(
                        &net,
                        &mut election,
                        &clock(started),
                        &advertised,
                        stop,
                    )
                    .await;
                })
            };
            term += 1;
            let (why, left_cleanly) = match role {
                Role::Leading => (self.lead(events, &members, &mut epochs, term).await, false),
                Role::Following => self.follow(events, &members, &mut epochs, leader, false, term).await,
                Role::Observing => self.follow(events, &members, &mut epochs, leader, true, term).await,
            };
            tracing::warn!(reason = %why, "left the {role:?} role; electing again");
            // The order of what happens before the next election is the
            // shared `BetweenRoles`'s.
            let mut between = BetweenRoles::after_role(left_cleanly);
            let mut responder = Some(responder);
            loop {
                match between.next_step() {
                    BetweenRolesStep::StopAnsweringElection => {
                        let _ = stop_tx.try_send(());
                        if let Some(responder) = responder.take() {
                            responder.await;
                        }
                    }
                    BetweenRolesStep::DrainLog => self.log.drain().await,
                    BetweenRolesStep::DropClientConnections => {
                        self.stats.set_mode(ServerMode::Looking);
                        self.drop_all_connections().await;
                    }
                    BetweenRolesStep::CatchUpToLog => between.caught_up(self.catch_up_to_log()),
                    BetweenRolesStep::ReloadFromDisk => {
                        if let Err(e) = self.reload_from_disk().await {
                            tracing::error!("cannot reload the state from disk: {e}");
                            std::process::exit(1);
                        }
                    }
                    BetweenRolesStep::LoadEpochs => match Epochs::load(&snap_dir, self.seq.last_zxid()) {
                        Ok(e) => epochs = e,
                        Err(e) => {
                            tracing::error!("cannot read the epoch files: {e}");
                            std::process::exit(1);
                        }
                    },
                    BetweenRolesStep::Elect => break,
                }
            }
        }
    }

    /// While not serving: connects and requests are turned away (the
    /// connection closes, as Apache closes it); four-letter words work.
    pub(super) async fn refuse_all(&mut self, items: Vec<Event>) {
        let mut batch = BatchBuilder::default();
        for event in items {
            if let Event::Worker(_, msg) = event {
                self.refuse(msg, &mut batch).await;
            }
        }
        if !batch.entries.is_empty() {
            let shared = self.seal(batch);
            self.publish(shared).await;
        }
    }

    async fn refuse(&mut self, msg: ToCommit, batch: &mut BatchBuilder) {
        match msg {
            ToCommit::CreateSession { conn, .. }
            | ToCommit::Revalidate { conn, .. }
            | ToCommit::Write { conn, .. }
            | ToCommit::Sync { conn, .. }
            | ToCommit::CloseSession { conn, .. } => batch.entries.push(BatchEntry::DropConnection { conn }),
            ToCommit::Touch { .. } | ToCommit::Disconnected { .. } => {}
            report @ (ToCommit::Report { .. } | ToCommit::ReportPart { .. }) => self.handle(report, batch).await,
        }
    }

    /// After a learner role that ended cleanly: applies the txns it logged
    /// but was never told to commit (they are its history, as a reload
    /// would replay them), from the in-memory tail of its log, and re-arms
    /// the sessions as a reload does. False (nothing changed) when that
    /// tail does not reach back to the applied state: reload instead.
    /// Saves the snapshot + log replay, most of a fail-over's time.
    fn catch_up_to_log(&mut self) -> bool {
        let Some(tail) = self.seq.logged_tail_to_keep(self.log.durable_through()) else { return false };
        let applied = self.seq.last_zxid();
        for (zxid, txn) in tail {
            // No client waits (connections are gone): replies and events go nowhere.
            let mut nobody = LearnerPending::default();
            if let Err(e) = self.apply_committed(zxid, txn, &mut nobody, &mut BatchBuilder::default()) {
                tracing::warn!(error = %e, "cannot apply the logged tail; reloading from disk");
                return false;
            }
        }
        let now = self.now_ms();
        self.seq.release_sessions(now);
        self.published_tree = self.seq.tree().clone();
        self.reset_published_sessions();
        self.stats.set_last_zxid(self.seq.last_zxid());
        self.stats.sessions_changed(self.seq.session_count() as u64);
        tracing::info!(
            applied_from = format_args!("0x{applied:x}"),
            zxid = format_args!("0x{:x}", self.seq.last_zxid()),
            "kept the learner's state for the election (no reload)"
        );
        true
    }

    /// Where the whole state is the published one (no batch in flight):
    /// the published session table is the live one.
    fn reset_published_sessions(&mut self) {
        self.published_sessions.reset(self.seq.sessions());
    }

    /// Rebuilds tree, sessions and zxid from the log and snapshots: after a
    /// role ends (dropping a leader's uncommitted speculation) or a TRUNC.
    async fn reload_from_disk(&mut self) -> Result<(), String> {
        self.log.close().await;
        let recovered =
            recovery::recover(&self.config.data_dir, &self.config.data_log_dir, false).map_err(|e| e.to_string())?;
        self.log.restart_at(recovered.last_zxid);
        // Every session gets a fresh deadline: a client may reconnect.
        let now = self.now_ms();
        let sessions = recovered.sessions.iter().map(|(id, t)| (*id, *t));
        self.seq.reset(recovered.tree, recovered.last_zxid, sessions, recovered.recent_txns, now);
        // Between roles no client is served; a leader's first SNAPs (before
        // it is established) must carry exactly this state, its last zxid's.
        self.published_tree = self.seq.tree().clone();
        self.reset_published_sessions();
        // What it held may include txns the reload dropped (TRUNC).
        self.digest_log.clear();
        self.stats.set_last_zxid(self.seq.last_zxid());
        self.stats.sessions_changed(self.seq.session_count() as u64);
        Ok(())
    }

    // ------------------------------------------------------------------
    // Leading

    async fn lead(
        &mut self,
        events: &Rc<EventQueue>,
        members: &Members,
        epochs: &mut Epochs,
        term: RoleTerm,
    ) -> String {
        let my_quorum = members.quorum_addrs[&members.ensemble.my_sid];
        let listener = match LearnerListener::bind_with(my_quorum, members.transport.clone()) {
            Ok(l) => Rc::new(l),
            Err(e) => return format!("cannot listen on the quorum port {my_quorum}: {e}"),
        };
        let links: Rc<RefCell<BTreeMap<LearnerConn, Rc<LearnerLink>>>> = Rc::new(RefCell::new(BTreeMap::new()));
        let leading = Rc::new(Cell::new(true));
        // Not detached: dropped (cancelled) when the role ends, so a later
        // term's listener on the same port (SO_REUSEPORT) is the only one
        // accepting; a stale accept loop would take learners and drop them.
        let acceptor = {
            let (listener, links, events, leading) = (listener.clone(), links.clone(), events.clone(), leading.clone());
            glommio::spawn_local(async move {
                let mut next_conn: LearnerConn = 1;
                while leading.get() {
                    let link = match listener.accept().await {
                        Ok(l) => Rc::new(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "accepting a learner failed");
                            glommio::timer::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let conn = next_conn;
                    next_conn += 1;
                    links.borrow_mut().insert(conn, link.clone());
                    events.push(Event::Quorum(term, QuorumEvent::LearnerUp(conn)));
                    let (events, leading) = (events.clone(), leading.clone());
                    glommio::spawn_local(async move {
                        while leading.get() {
                            let event = match link.recv().await {
                                Ok(p) => QuorumEvent::Learner(conn, p),
                                Err(e) => QuorumEvent::LearnerDown(conn, e.to_string()),
                            };
                            let down = matches!(event, QuorumEvent::LearnerDown(..));
                            if leading.get() {
                                events.push(Event::Quorum(term, event));
                            }
                            if down {
                                break;
                            }
                        }
                    })
                    .detach();
                }
            })
        };
        let now = clock(self.started);
        let settings = LeaderSettings {
            tick_ms: members.tick_ms,
            init_limit_ticks: members.init_limit_ticks,
            sync_limit_ticks: members.sync_limit_ticks,
            config_text: members.config_text.clone(),
            sync_policy: SyncPolicy {
                snapshot_size_factor: self.config.snapshot_size_factor,
                ..SyncPolicy::with_snapshot_bytes(0)
            },
            committed_window_txns: self.config.commit_log_count,
        };
        let start = LeaderStart {
            accepted_epoch: epochs.accepted,
            current_epoch: epochs.current,
            last_logged_zxid: self.seq.last_zxid(),
            recent_txns: self.seq.recent_txns().iter().cloned().collect(),
            disk_log: disk_log::index_disk_log(&self.config.data_dir, &self.config.data_log_dir),
        };
        let mut leader = LeaderCore::new(members.ensemble.clone(), settings, start, now());
        let mut held = LeaderTerm::default();
        let mut turn = LeaderTurn::default();
        let result = loop {
            let Some(items) = events.next_batch().await else { break "stopping".to_owned() };
            let mut batch = BatchBuilder::default();
            let mut actions = Vec::new();
            // Which events the turn takes, and in which order, is the
            // shared `LeaderTerm::intake`; this loop carries out its answer.
            for event in items {
                let input = match event {
                    Event::Worker(_, ToCommit::Sync { conn, xid, path, .. }) => LeaderInput::Sync((conn, xid, path)),
                    Event::Worker(arrived, msg) => LeaderInput::Request((arrived, msg)),
                    Event::Quorum(t, _) if t != term => continue,
                    Event::Quorum(_, QuorumEvent::LearnerUp(conn)) => LeaderInput::LearnerUp {
                        conn,
                        disk_files: disk_log::disk_files(&self.config.data_dir, &self.config.data_log_dir),
                    },
                    Event::Quorum(_, QuorumEvent::Learner(conn, p)) => {
                        if let (ToLeader::Ack { zxid }, Some(sid)) = (&p, leader.learner_sid(conn)) {
                            self.quorum_metrics.acked(sid, *zxid, Instant::now());
                        }
                        LeaderInput::Learner(conn, p)
                    }
                    Event::Quorum(_, QuorumEvent::LearnerDown(conn, why)) => {
                        tracing::info!(conn, reason = %why, "learner connection closed");
                        links.borrow_mut().remove(&conn);
                        LeaderInput::LearnerDown(conn)
                    }
                    Event::Quorum(..) | Event::LogDurable => continue,
                };
                match held.intake(&mut leader, input, now(), self.seq.last_zxid(), &mut actions) {
                    Intake::Execute((arrived, msg)) => self.handle_worker_message(arrived, msg, &mut batch).await,
                    Intake::Refuse((_, msg)) => self.refuse(msg, &mut batch).await,
                    Intake::RefuseSync((conn, _, _)) => batch.entries.push(BatchEntry::DropConnection { conn }),
                    Intake::Taken => {}
                }
            }
            turn.begin(&mut leader, now(), actions);
            self.stats.set_zab_view(Some(members.ensemble.my_sid as u64), leader.zab_phase());
            let synced = leader.synced_learners();
            let observers =
                synced.iter().filter(|(_, k)| *k == crate::zab::leader::LearnerKind::Observer).count() as u64;
            self.stats.set_leader_view(leader.learner_count() as u64, synced.len() as u64 - observers, observers);
            self.leader_report.refresh_observers(&leader, &links.borrow());
            // The turn's order is the shared `LeaderTurn`'s; this loop
            // carries out each step.
            let ended = loop {
                match turn.next(&mut leader, &mut held, &batch) {
                    LeaderStep::Act { action, batch_open } => {
                        let open = if batch_open { Some(&mut batch) } else { None };
                        let led = self.leader_action(&mut leader, action, &links, open, &mut held, &mut turn, epochs);
                        if let Err(why) = led.await {
                            break Some(why);
                        }
                    }
                    LeaderStep::ExpireSessions => {
                        self.expire_sessions(&mut batch);
                        self.reap(&mut batch);
                    }
                    LeaderStep::HandToLog => {
                        let proposed_at = Instant::now();
                        for (zxid, txn) in &batch.logged {
                            self.leader_report.proposal_sizes.record(txn.len(), proposed_at);
                            self.quorum_metrics.proposed(*zxid, proposed_at);
                        }
                        let logged_txns = batch.logged.len() as u64;
                        self.remember_recent(&batch);
                        self.log_txns(&mut batch);
                        let sealed = self.seal(std::mem::take(&mut batch));
                        held.pending.push(sealed.last_zxid, sealed);
                        self.maybe_snapshot(logged_txns);
                    }
                    LeaderStep::ReportDurable => turn.durable(&mut leader, &mut held, self.log.take_newly_durable()),
                    LeaderStep::Publish(visible) => self.publish_through(&mut held.pending, visible).await,
                    LeaderStep::StepDown(why) => break Some(why),
                    LeaderStep::Done => break None,
                }
            };
            self.stats.set_pending_syncs(leader.pending_sync_count() as u64);
            if let Some(why) = ended {
                break why;
            }
        };
        leading.set(false);
        drop(acceptor);
        self.quorum_metrics.role_ended();
        self.stats.set_leader_view(0, 0, 0);
        self.leader_report = LeaderReport::default();
        self.stats.set_pending_syncs(0);
        for (_, link) in std::mem::take(&mut *links.borrow_mut()) {
            link.close();
        }
        result
    }

    /// Carries out one of the core's actions. `batch` is the batch being
    /// built this turn (None once it is closed); follow-up actions go back
    /// to the turn's queue.
    #[allow(clippy::too_many_arguments)]
    async fn leader_action(
        &mut self,
        leader: &mut LeaderCore,
        action: LeaderAction,
        links: &Rc<RefCell<BTreeMap<LearnerConn, Rc<LearnerLink>>>>,
        batch: Option<&mut BatchBuilder>,
        held: &mut LeaderTerm,
        turn: &mut LeaderTurn,
        epochs: &mut Epochs,
    ) -> Result<(), String> {
        match action {
            LeaderAction::PersistAcceptedEpoch(e) => epochs.persist_accepted(e)?,
            LeaderAction::PersistCurrentEpoch(e) => epochs.persist_current(e)?,
            LeaderAction::Send(conn, p) => {
                if let Some(link) = links.borrow().get(&conn) {
                    let _ = link.send(p);
                }
            }
            LeaderAction::SendSnapshot { conn, zxid } => {
                // The sessions of the published tree's moment, not the
                // live table (ahead of it by the batches in flight).
                let sessions = self.published_sessions.timeouts_ms().clone();
                if let Some(link) = links.borrow().get(&conn) {
                    tracing::info!(conn, zxid = format_args!("0x{zxid:x}"), "syncing a learner by SNAP");
                    let _ = link.send_snapshot(zxid, self.published_tree.clone(), sessions);
                }
            }
            LeaderAction::SendLoggedTxns { conn, after_zxid, through_zxid } => {
                if let Some(link) = links.borrow().get(&conn) {
                    // Opened here, read on the link's helper thread.
                    match disk_log::LoggedTxnFiles::open(&self.config.data_log_dir, after_zxid, through_zxid) {
                        Ok(files) => {
                            tracing::info!(
                                conn,
                                after = format_args!("0x{after_zxid:x}"),
                                through = format_args!("0x{through_zxid:x}"),
                                "DIFF: sending logged txns from the on-disk log"
                            );
                            let _ = link.send_logged_txns(move |out| files.write_pairs(out));
                        }
                        Err(e) => {
                            tracing::warn!(conn, error = %e, "cannot open the log for a DIFF; dropping the learner");
                            link.close();
                        }
                    }
                }
            }
            LeaderAction::SyncChosen { conn, sid, plan, reason } => {
                tracing::info!(conn, sid, ?plan, ?reason, "syncing a learner");
            }
            LeaderAction::Established { epoch } => {
                self.seq.raise_last_zxid(make_zxid(epoch, 0));
                held.established(self.seq.last_zxid());
                epochs.advertised.set(epoch);
                self.stats.set_mode(ServerMode::Leader);
                let synced = leader.synced_learners();
                tracing::info!(epoch, learners = ?synced, "leading: established with a quorum");
                let view = self.seal(BatchBuilder::default());
                self.publish(view).await;
            }
            LeaderAction::Committed { zxid } => {
                self.quorum_metrics.committed(zxid, Instant::now());
                let visible = held.visible_through(zxid);
                self.publish_through(&mut held.pending, visible).await
            }
            LeaderAction::Forwarded { conn, request, .. } if request.op_type == op::SYNC => {
                // In request order: after the writes forwarded before it.
                let mut more = Vec::new();
                leader.sync(SyncRequester::Learner(conn), self.seq.last_zxid(), &mut more);
                turn.queue(more);
            }
            LeaderAction::Forwarded { conn, request, sid } => match batch {
                Some(b) => self.execute_forwarded(conn, sid, request, b),
                None => tracing::warn!(sid, "a forwarded request outside a batch was dropped"),
            },
            LeaderAction::LocalSyncReady { token } => {
                let Some((conn, xid, path)) = held.take_local_sync(token) else { return Ok(()) };
                let reply =
                    BatchEntry::Reply(Reply { conn, zxid: self.seq.last_zxid(), kind: ReplyKind::Sync { xid, path } });
                match batch {
                    // Published with this round's batch, after its commits.
                    Some(b) => b.entries.push(reply),
                    // The round's batch is sealed: the tree is exactly the
                    // proposed state, so a batch of its own queues behind.
                    None => {
                        let shared = self.seal(BatchBuilder { entries: vec![reply], ..Default::default() });
                        held.pending.push(shared.last_zxid, shared);
                    }
                }
            }
            LeaderAction::Revalidate { conn, session_id, timeout_ms } => {
                // The session lives on that learner now: writes from
                // anywhere else get SESSIONMOVED. A local connection it
                // had here stays open (its writes are refused).
                let now = self.now_ms();
                let holder = SessionHolder::Learner(conn);
                let valid = self.seq.revalidate(session_id, timeout_ms, None, holder, now).valid;
                let mut more = Vec::new();
                leader.revalidated(conn, session_id, valid, &mut more);
                turn.queue(more);
            }
            LeaderAction::SessionsTouched(touches) => {
                let now = self.now_ms();
                for SessionTouch { session_id, .. } in touches {
                    self.seq.touch(session_id, now);
                }
            }
            LeaderAction::Close { conn, reason } => {
                tracing::info!(conn, %reason, "dropping a learner");
                if let Some(link) = links.borrow_mut().remove(&conn) {
                    link.close();
                }
                leader.learner_disconnected(conn);
            }
            LeaderAction::StepDown { reason } => return Err(reason),
        }
        Ok(())
    }

    /// A learner's client request, prepared here like a local one; its
    /// reply goes out from the learner when the txn commits.
    fn execute_forwarded(&mut self, conn: LearnerConn, sid: Sid, request: ForwardedRequest, batch: &mut BatchBuilder) {
        let ForwardedRequest { session_id, cxid, op_type, body, authinfo } = request;
        let now = self.now_ms();
        match read_forwarded(op_type, body, self.config.jute_max_buffer * 2) {
            ForwardedOp::CreateSessionWithoutTimeout => {
                tracing::warn!(sid, "createSession without a timeout from a learner");
            }
            ForwardedOp::CreateSession { timeout_ms } => {
                let holder = SessionHolder::Learner(conn);
                let time_ms = wall_clock_ms();
                let zxid = self.seq.create_session(batch, session_id, cxid, timeout_ms, None, holder, now, time_ms);
                self.stats.sessions_changed(self.seq.session_count() as u64);
                batch.entries.push(BatchEntry::Txn { zxid, triggers: Vec::new(), reply: None, closed_session: None });
            }
            ForwardedOp::CloseSession => self.close_session(batch, session_id, None),
            ForwardedOp::Undecodable => {
                tracing::warn!(sid, op = op_type, "undecodable forwarded request");
                self.execute_error(batch, session_id, cxid, ErrorCode::MarshallingError);
            }
            ForwardedOp::Write(write) => {
                if let Err(code) = self.seq.admit_write(session_id, SessionHolder::Learner(conn), now) {
                    self.execute_error(batch, session_id, cxid, code);
                    return;
                }
                let auth = Authz::from_ids(authinfo);
                let (zxid, _result, triggers) = self.execute(batch, session_id, cxid, &write, &auth);
                batch.entries.push(BatchEntry::Txn { zxid, triggers, reply: None, closed_session: None });
            }
        }
    }

    /// An error txn: the learner's client is told `code` when it commits.
    fn execute_error(&mut self, batch: &mut BatchBuilder, session_id: i64, cxid: i32, code: ErrorCode) {
        let zxid = self.seq.execute_error(batch, session_id, cxid, code, wall_clock_ms());
        batch.entries.push(BatchEntry::Txn { zxid, triggers: Vec::new(), reply: None, closed_session: None });
    }

    /// Keeps the tail of the log in memory, for DIFFs when leading.
    pub(super) fn remember_recent(&mut self, batch: &BatchBuilder) {
        self.seq.remember_recent(&batch.logged, self.config.commit_log_count);
    }

    // ------------------------------------------------------------------
    // Following and observing

    async fn follow(
        &mut self,
        events: &Rc<EventQueue>,
        members: &Members,
        epochs: &mut Epochs,
        leader_sid: Sid,
        observer: bool,
        term: RoleTerm,
    ) -> (String, bool) {
        let Some(&addr) = members.quorum_addrs.get(&leader_sid) else {
            return (format!("the elected leader {leader_sid} is not in the configuration"), true);
        };
        let now = clock(self.started);
        let give_up_at = now() + members.tick_ms * members.init_limit_ticks;
        let link = loop {
            let timeout = Duration::from_millis(members.tick_ms * members.sync_limit_ticks);
            match LeaderLink::connect_with(addr, timeout, &members.transport).await {
                Ok(l) => break Rc::new(l),
                Err(e) if now() < give_up_at => {
                    tracing::debug!(%addr, error = %e, "leader not reachable yet");
                    glommio::timer::sleep(Duration::from_millis(LEADER_CONNECT_RETRY_MS)).await;
                }
                Err(e) => return (format!("cannot reach the leader {leader_sid} at {addr}: {e}"), true),
            }
        };
        let following = Rc::new(Cell::new(true));
        {
            let (link, events, following) = (link.clone(), events.clone(), following.clone());
            glommio::spawn_local(async move {
                while following.get() {
                    let event = match link.recv().await {
                        Ok(msg) => QuorumEvent::Leader(msg),
                        Err(e) => QuorumEvent::LeaderDown(e.to_string()),
                    };
                    let down = matches!(event, QuorumEvent::LeaderDown(_));
                    if following.get() {
                        events.push(Event::Quorum(term, event));
                    }
                    if down {
                        break;
                    }
                }
            })
            .detach();
        }
        let settings = LearnerSettings {
            my_sid: members.ensemble.my_sid,
            observer,
            tick_ms: members.tick_ms,
            init_limit_ticks: members.init_limit_ticks,
            sync_limit_ticks: members.sync_limit_ticks,
        };
        let mut first_actions = Vec::new();
        let mut learner = LearnerCore::new(
            settings,
            epochs.accepted,
            epochs.current,
            self.seq.last_zxid(),
            now(),
            &mut first_actions,
        );
        // The turn's order (inputs, durable report, tick, actions, publish,
        // log) is the shared `LearnerTurn`'s; this loop carries it out.
        let mut turn = crate::commit::LearnerTurn::connected(first_actions);
        let mut pend = LearnerPending::default();
        let result = loop {
            if let Err(why) = self.learner_actions(&mut turn, &learner, &link, &mut pend, epochs, leader_sid).await {
                break why;
            }
            let Some(items) = events.next_batch().await else { break "stopping".to_owned() };
            let mut batch = BatchBuilder::default();
            let mut leader_down = None;
            for event in items {
                match event {
                    Event::Worker(_, msg) if learner.is_serving() => {
                        self.forward(msg, &link, &mut pend, &mut batch).await
                    }
                    Event::Worker(_, msg) => self.refuse(msg, &mut batch).await,
                    Event::Quorum(t, _) if t != term => {}
                    Event::Quorum(_, QuorumEvent::Leader(FromLeader::Packet(p))) => turn.packet(&mut learner, p, now()),
                    Event::Quorum(_, QuorumEvent::Leader(FromLeader::Snapshot { zxid, tree, sessions })) => {
                        // The link has read the SNAP packet and its stream
                        // whole: tell the core about the packet, then install.
                        turn.snapshot_read(&mut learner, zxid, now());
                        if let Err(e) = self.install_snapshot(zxid, tree, sessions, epochs).await {
                            leader_down = Some(format!("cannot install the leader's snapshot: {e}"));
                            break;
                        }
                        turn.snapshot_installed(&mut learner, zxid, now());
                    }
                    Event::Quorum(_, QuorumEvent::LeaderDown(why)) => {
                        pend.left_cleanly = true;
                        leader_down = Some(format!("lost the leader {leader_sid}: {why}"));
                        break;
                    }
                    Event::Quorum(..) | Event::LogDurable => {}
                }
            }
            if !batch.entries.is_empty() {
                let shared = self.seal(batch);
                self.publish(shared).await;
            }
            if let Some(why) = leader_down {
                turn.leader_lost();
                break why;
            }
            turn.begin(&mut learner, self.log.take_newly_durable(), now());
            self.stats.set_zab_view(Some(leader_sid as u64), learner.zab_phase());
        };
        following.set(false);
        link.close();
        (result, pend.left_cleanly)
    }

    /// A client request on a learner: to the leader, remembered so the
    /// commit that answers it can be matched.
    async fn forward(&mut self, msg: ToCommit, link: &LeaderLink, pend: &mut LearnerPending, batch: &mut BatchBuilder) {
        let request = |session_id, cxid, op_type, body: Bytes, authinfo| {
            ToLeader::Request(ForwardedRequest { session_id, cxid, op_type, body, authinfo })
        };
        match msg {
            ToCommit::CreateSession { conn, timeout_ms } => {
                let session_id = self.seq.next_session_id();
                pend.requests.forwarded_connect(session_id, (conn, timeout_ms));
                let body = Bytes::copy_from_slice(&timeout_ms.to_be_bytes());
                let _ = link.send(request(session_id, 0, op::CREATE_SESSION, body, Vec::new()));
            }
            ToCommit::Revalidate { conn, session_id, timeout_ms } => {
                pend.requests.forwarded_revalidate(session_id, (conn, timeout_ms));
                let _ = link.send(ToLeader::Revalidate { session_id, timeout_ms });
            }
            ToCommit::Write { conn, session_id, xid, op: opcode, write, auth } => {
                let body = encode_write_request(opcode, &write);
                pend.requests.forwarded_write(session_id, xid, PendingWrite { conn, xid, op: opcode, write });
                let _ = link.send(request(session_id, xid, opcode, body, auth.ids().to_vec()));
            }
            ToCommit::Sync { conn, session_id, xid, path } => {
                let mut body = BytesMut::new();
                Writer::new(&mut body).string(&path);
                pend.requests.forwarded_sync((conn, xid, path));
                let _ = link.send(request(session_id, xid, op::SYNC, body.freeze(), Vec::new()));
            }
            ToCommit::CloseSession { conn, session_id, xid } => {
                pend.requests.forwarded_close(session_id, (conn, xid));
                let _ = link.send(request(session_id, xid, op::CLOSE_SESSION, Bytes::new(), Vec::new()));
            }
            ToCommit::Touch { sessions } => {
                for (sid, _) in sessions {
                    pend.requests.touched(sid);
                }
            }
            ToCommit::Disconnected { conn, session_id } => self.seq.disconnected(session_id, conn),
            report @ (ToCommit::Report { .. } | ToCommit::ReportPart { .. }) => self.handle(report, batch).await,
        }
    }

    /// Carries out the learner turn's steps, in the order `LearnerTurn`
    /// yields them, until the turn is done. An error ends the role at once:
    /// what the turn applied is not published (its connections are dropped
    /// with the role) and its txns do not reach the log.
    async fn learner_actions(
        &mut self,
        turn: &mut crate::commit::LearnerTurn,
        learner: &LearnerCore,
        link: &LeaderLink,
        pend: &mut LearnerPending,
        epochs: &mut Epochs,
        leader_sid: Sid,
    ) -> Result<(), String> {
        use crate::commit::LearnerStep;
        let mut batch = BatchBuilder::default();
        loop {
            let action = match turn.next() {
                LearnerStep::Act(action) => action,
                LearnerStep::Publish => {
                    if !batch.entries.is_empty() {
                        let shared = self.seal(std::mem::take(&mut batch));
                        self.publish(shared).await;
                    }
                    continue;
                }
                LearnerStep::Log(txns) => {
                    if learner.is_serving() {
                        let now_ms = wall_clock_ms();
                        for (_, txn) in &txns {
                            if let Some(stamp) = crate::storage::txn::header_time_ms(txn) {
                                self.quorum_metrics.follower_received(stamp, now_ms);
                            }
                        }
                    }
                    // To the log thread; the ACKs go out once `follow` hears
                    // they are durable (group commit: what arrives meanwhile
                    // goes into the next write).
                    let arrivals = vec![Instant::now(); txns.len()];
                    let mut logged = BatchBuilder::of_logged(txns, arrivals);
                    let logged_txns = logged.logged.len() as u64;
                    self.remember_recent(&logged);
                    self.log_txns(&mut logged);
                    self.maybe_snapshot(logged_txns);
                    continue;
                }
                LearnerStep::Done => return Ok(()),
            };
            match action {
                LearnerAction::Send(p) => {
                    let _ = link.send(p);
                }
                LearnerAction::PingReply { zxid } => {
                    let sessions = pend.requests.take_ping_sessions(|id| self.seq.session(id).map(|e| e.timeout_ms));
                    let _ = link.send(ToLeader::Ping { zxid, sessions });
                }
                LearnerAction::PersistAcceptedEpoch(e) => epochs.persist_accepted(e)?,
                LearnerAction::PersistCurrentEpoch(e) => epochs.persist_current(e)?,
                LearnerAction::Truncate { zxid } => {
                    tracing::info!(zxid = format_args!("0x{zxid:x}"), "the leader truncates this server's log (TRUNC)");
                    self.log.close().await;
                    if let Err(e) =
                        crate::server::truncate::truncate_after(&self.config.data_dir, &self.config.data_log_dir, zxid)
                    {
                        stop_after_failed_truncation(zxid, &e);
                    }
                    self.reload_from_disk().await?;
                    if self.seq.last_zxid() != zxid {
                        return Err(format!(
                            "after TRUNC to 0x{zxid:x} the log ends at 0x{:x}; this server lacks history the leader assumes",
                            self.seq.last_zxid()
                        ));
                    }
                }
                LearnerAction::ReadSnapshot { zxid } => {
                    tracing::info!(zxid = format_args!("0x{zxid:x}"), "receiving a snapshot from the leader (SNAP)");
                }
                // `LearnerTurn` gathers these into `LearnerStep::Log`.
                LearnerAction::Log(_) => {}
                LearnerAction::Apply(txns) => {
                    for (zxid, txn) in txns {
                        self.apply_committed(zxid, txn, pend, &mut batch)?;
                    }
                }
                LearnerAction::SyncDone => {
                    if let Some((conn, xid, path)) = pend.requests.take_sync() {
                        batch.entries.push(BatchEntry::Reply(Reply {
                            conn,
                            zxid: self.seq.last_zxid(),
                            kind: ReplyKind::Sync { xid, path },
                        }));
                    }
                }
                LearnerAction::Revalidated { session_id, valid } => {
                    let Some((conn, timeout_ms)) = pend.requests.take_revalidation(session_id) else {
                        continue;
                    };
                    if valid {
                        if let Some(previous) = self.seq.learner_revalidated(session_id, timeout_ms, conn) {
                            batch.entries.push(BatchEntry::DropConnection { conn: previous });
                        }
                    }
                    batch.entries.push(BatchEntry::Reply(Reply {
                        conn,
                        zxid: self.seq.last_zxid(),
                        kind: ReplyKind::connect(session_id, timeout_ms, valid),
                    }));
                }
                LearnerAction::Serving { epoch } => {
                    epochs.advertised.set(epoch);
                    let mode = if learner.is_observer() { ServerMode::Observer } else { ServerMode::Follower };
                    self.stats.set_mode(mode);
                    tracing::info!(
                        leader = leader_sid,
                        epoch,
                        zxid = format_args!("0x{:x}", self.seq.last_zxid()),
                        "synced with the leader; serving"
                    );
                }
                LearnerAction::GiveUp { reason } => {
                    pend.left_cleanly = true;
                    return Err(reason);
                }
            }
        }
    }

    /// A committed txn on a learner: applied with the same code as the
    /// leader and recovery, answering the local client that sent it.
    fn apply_committed(
        &mut self,
        zxid: i64,
        payload: Bytes,
        pend: &mut LearnerPending,
        batch: &mut BatchBuilder,
    ) -> Result<(), String> {
        let commit = crate::commit::learner_turn::apply_commit(
            &mut self.seq,
            &mut pend.requests,
            zxid,
            payload,
            |(conn, _): &(ConnRef, i32)| *conn,
        )?;
        let (h, waiter, check) = (commit.header, commit.waiter, commit.digest_check);
        let (result, triggers) = (commit.applied.result, commit.applied.triggers);
        if let Some(change) = commit.applied.session_change {
            batch.session_changes.push(change);
        }
        self.digest_log.note(zxid, self.seq.tree().digest());
        if check.is_mismatch() {
            // Apache only counts this; a replica that differs from its
            // leader is a bug to be seen at once.
            self.stats.digest_mismatch();
            tracing::error!(zxid = format_args!("0x{zxid:x}"), "{check}: this replica diverged from the leader");
        }
        let closed_session = matches!(commit.txn, Txn::CloseSession { .. }).then_some(h.session_id);
        let reply = waiter.map(|waiter| match waiter {
            TxnWaiter::Connect((conn, timeout_ms)) => {
                Reply { conn, zxid, kind: ReplyKind::connect(h.session_id, timeout_ms, true) }
            }
            TxnWaiter::Close((conn, xid)) => Reply { conn, zxid, kind: ReplyKind::CloseSession { xid } },
            TxnWaiter::Write(p) => Reply {
                conn: p.conn,
                zxid,
                kind: ReplyKind::Write {
                    xid: p.xid,
                    op: p.op,
                    result: result.map(|r| write_response(p.op, &p.write, &r)),
                },
            },
        });
        self.stats.sessions_changed(self.seq.session_count() as u64);
        batch.entries.push(BatchEntry::Txn { zxid, triggers, reply, closed_session });
        Ok(())
    }

    /// Replaces this server's state by the leader's snapshot at `zxid`:
    /// first every logged txn after `zxid` goes (a divergent tail must not
    /// come back at a restart), then the snapshot is written and synced.
    async fn install_snapshot(
        &mut self,
        zxid: i64,
        tree: DataTree,
        sessions: BTreeMap<i64, i32>,
        epochs: &mut Epochs,
    ) -> Result<(), String> {
        self.log.close().await;
        // The snapshot is committed state of its zxid's epoch; currentEpoch
        // must never be older than the data on disk (start-up refuses that).
        let data_epoch = crate::zab::packets::epoch_of(zxid);
        if data_epoch > epochs.current {
            epochs.persist_current(data_epoch)?;
        }
        if let Err(e) = crate::server::truncate::truncate_after(&self.config.data_dir, &self.config.data_log_dir, zxid)
        {
            stop_after_failed_truncation(zxid, &e);
        }
        let mut tree = tree;
        tree.set_last_zxid(zxid);
        let list: Vec<(i64, i32)> = sessions.iter().map(|(a, b)| (*a, *b)).collect();
        crate::server::snapshots::write_snapshot_file(
            &recovery::snapshot_dir(&self.config.data_dir),
            &tree,
            &list,
            zxid,
        )
        .map_err(|e| format!("cannot write the snapshot: {e}"))?;
        self.log.restart_at(zxid);
        // Every session gets a fresh deadline: a client may reconnect.
        let now = self.now_ms();
        self.seq.reset(tree, zxid, sessions, VecDeque::new(), now);
        self.published_tree = self.seq.tree().clone();
        self.reset_published_sessions();
        self.stats.set_last_zxid(zxid);
        Ok(())
    }
}

/// A learner whose log cannot be cut back to `zxid` (TRUNC, or the cut
/// above a SNAP) stops, as Apache's learner exits when truncateLog fails:
/// the next sync would cut again and fail again for good (the simulator's
/// seed 3234 looped so, and no quorum established). The operator moves the
/// data directories aside; the restarted server resyncs by SNAP.
fn stop_after_failed_truncation(zxid: i64, error: &dyn std::fmt::Display) -> ! {
    tracing::error!(
        zxid = format_args!("0x{zxid:x}"),
        %error,
        "cannot cut this server's log back to the leader's history; stopping. Move dataDir (and dataLogDir) aside and restart the server to resync it from the leader by SNAP"
    );
    std::process::exit(1)
}

/// The request record a write came from, for forwarding it to the leader
/// (REQUEST carries the client's bytes; the leader decodes them again).
fn encode_write_request(opcode: i32, write: &WriteOp) -> Bytes {
    let create = |w: &WriteOp| match w {
        WriteOp::Create { path, data, acl, flags, ttl, .. } => {
            Some(CreateRequest { path: path.clone(), data: data.clone(), acl: acl.clone(), flags: *flags, ttl: *ttl })
        }
        _ => None,
    };
    let request = match write {
        WriteOp::Create { op, .. } => create(write).map(|req| Request::Create { op: *op, req }),
        WriteOp::Delete { path, version } => {
            Some(Request::Delete(PathVersion { path: path.clone(), version: *version }))
        }
        WriteOp::SetData { path, data, version } => {
            Some(Request::SetData(SetDataRequest { path: path.clone(), data: data.clone(), version: *version }))
        }
        WriteOp::SetAcl { path, acl, version } => {
            Some(Request::SetAcl(SetAclRequest { path: path.clone(), acl: acl.clone(), version: *version }))
        }
        WriteOp::Multi(ops) => Some(Request::Multi(
            ops.iter()
                .filter_map(|o| match o {
                    WriteOp::Create { op, .. } => create(o).map(|req| MultiOp::Create { op: *op, req }),
                    WriteOp::Delete { path, version } => {
                        Some(MultiOp::Delete(PathVersion { path: path.clone(), version: *version }))
                    }
                    WriteOp::SetData { path, data, version } => Some(MultiOp::SetData(SetDataRequest {
                        path: path.clone(),
                        data: data.clone(),
                        version: *version,
                    })),
                    WriteOp::Check { path, version } => {
                        Some(MultiOp::Check(PathVersion { path: path.clone(), version: *version }))
                    }
                    _ => None,
                })
                .collect(),
        )),
        _ => None,
    };
    let mut out = BytesMut::new();
    if let Some(r) = request {
        debug_assert_eq!(r.op(), opcode);
        r.encode_body(&mut Writer::new(&mut out));
    }
    out.freeze()
}

/// What a leader keeps for the AdminServer's `observers` and the proposal
/// sizes of `mntr` / `stat` (Apache's proposalStats); owned by the commit
/// shard, emptied when the role ends.
#[derive(Default)]
pub struct LeaderReport {
    pub proposal_sizes: crate::server::messages::BufferSizes,
    /// The observers in the broadcast, refreshed each turn while there are any.
    pub observers: Vec<crate::server::messages::ObserverInfo>,
    /// Each observer link's counters at the last `orst`, subtracted from
    /// what it reports.
    observer_baselines: std::collections::HashMap<crate::zab::leader::LearnerConn, LinkStats>,
    /// Set by `orst`; the next refresh takes new baselines.
    pub reset_observer_stats: bool,
}

impl LeaderReport {
    fn refresh_observers(
        &mut self,
        leader: &crate::zab::leader::LeaderCore,
        links: &BTreeMap<crate::zab::leader::LearnerConn, Rc<LearnerLink>>,
    ) {
        self.observers.clear();
        let reset = std::mem::take(&mut self.reset_observer_stats);
        for (conn, sid) in leader.synced_observers() {
            let Some(link) = links.get(&conn) else { continue };
            let now = link.stats();
            if reset {
                self.observer_baselines.insert(conn, now);
            }
            let base = self.observer_baselines.get(&conn).copied().unwrap_or_default();
            self.observers.push(crate::server::messages::ObserverInfo {
                remote_socket_address: link.peer(),
                sid,
                established_ms: link.established_ms(),
                queued_packets: now.packets_waiting,
                queued_packets_bytes: now.bytes_waiting,
                packets_received: now.messages_received.saturating_sub(base.messages_received),
                packets_sent: now.packets_queued.saturating_sub(base.packets_queued),
                requests: now.requests_received.saturating_sub(base.requests_received),
                last_zxid: now.last_zxid_queued,
            });
        }
        if self.observer_baselines.len() > self.observers.len() {
            let live: std::collections::HashSet<_> = leader.synced_observers().map(|(c, _)| c).collect();
            self.observer_baselines.retain(|c, _| live.contains(c));
        }
    }
}
