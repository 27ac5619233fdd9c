//! The ZAB leader as a sans-IO state machine (Apache's Leader and
//! LearnerHandler, without their threads and sockets).
//!
//! Inputs: learner connections coming and going, their packets, the
//! leader's own log becoming durable, proposals the commit shard makes, and
//! ticks (time passed in, in ms). Output: an ordered list of
//! [`LeaderAction`]s the driver carries out in order — persist an epoch
//! (fsync) before anything after it is sent, send packets, stream a
//! snapshot, publish commits, hand forwarded requests over, or step down.
//!
//! Phases, as Apache: **discovery** (a quorum of voters, the leader
//! included, sends FOLLOWERINFO; the new epoch is one more than every
//! accepted epoch seen; LEADERINFO; a quorum ACKEPOCHs, and a follower
//! whose history is newer than the leader's makes it step down),
//! **synchronization** (each learner gets DIFF / TRUNC / SNAP as
//! `sync_plan` decides, then NEWLEADER; a quorum acking NEWLEADER
//! establishes the leader and UPTODATE goes out), **broadcast** (PROPOSAL,
//! ACK, COMMIT in zxid order, INFORM to observers, PING every half tick).
//!
//! **Syncs are linearizable** (beyond Apache, ZOOKEEPER-1675): a sync is
//! answered only once everything proposed before it is committed *and* a
//! quorum of voters has answered a PING round sent after it arrived. A
//! leader that was paused and replaced without knowing it cannot find such
//! a quorum, so a read after its sync never misses a write another leader
//! acknowledged before the sync began. The round number rides in the PING's
//! zxid field, which learners (Apache's too) echo and otherwise ignore.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::ensemble::{Ensemble, Sid};
use super::packets::{
    epoch_of, make_zxid, ForwardedRequest, SessionTouch, ToLeader, ToLearner, PROTOCOL_VERSION_ZAB_1_0,
};
use super::sync_plan::{self, DiskLogIndex, LeaderHistory, Lookup, SyncPlan, SyncPolicy, ZxidWindow};

/// A learner connection, numbered by the driver.
pub type LearnerConn = u64;

/// How many recently committed txns the leader keeps to DIFF learners
/// from: Apache's `zookeeper.commitLogCount` default, and its minimum.
pub const COMMITTED_WINDOW_TXNS: usize = 500;

/// The most `zookeeper.commitLogCount` may ask for (Apache sets no bound;
/// each txn in the window stays in memory).
pub const COMMITTED_WINDOW_MAX_TXNS: usize = 1_000_000;

/// The counter half of a zxid may not reach this: a new epoch is forced
/// first (Apache's rollover rule).
pub const ZXID_COUNTER_MAX: i64 = 0xFFFF_FFFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerKind {
    Follower,
    Observer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LearnerPhase {
    /// Connected; FOLLOWERINFO / OBSERVERINFO not yet received.
    AwaitInfo,
    /// Its info is in; the new epoch is not decided yet.
    AwaitEpoch,
    /// LEADERINFO sent.
    AwaitAckEpoch,
    /// ACKEPOCH in; a quorum of epoch acks is not yet.
    AwaitSync,
    /// Sync and NEWLEADER sent.
    AwaitNewLeaderAck,
    /// NEWLEADER acked; the leader is not established yet.
    AwaitEstablished,
    /// UPTODATE sent: in the broadcast.
    Synced,
}

#[derive(Debug)]
struct Learner {
    sid: Sid,
    kind: LearnerKind,
    phase: LearnerPhase,
    accepted_epoch: i64,
    /// From ACKEPOCH.
    last_logged_zxid: i64,
    current_epoch: i32,
    last_heard_ms: u64,
    /// Gets PROPOSAL/COMMIT (followers) or INFORM (observers) for zxids
    /// above the point its sync ended.
    forwarding: bool,
    connected_ms: u64,
    /// The newest PING round this learner has answered.
    echoed_round: u64,
}

/// Who asked for a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRequester {
    /// A learner's client: answered with a SYNC packet to that learner.
    Learner(LearnerConn),
    /// A client of the leader itself, numbered by the driver: answered with
    /// `LeaderAction::LocalSyncReady`.
    Local(u64),
}

#[derive(Debug)]
struct PendingSync {
    requester: SyncRequester,
    /// Everything up to here (proposed, or assigned by the driver, before
    /// the sync) must be committed first.
    after_zxid: i64,
    /// A PING round sent after the sync arrived, which a quorum must answer.
    round: u64,
}

/// One thing for the driver to do; carried out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaderAction {
    /// Write acceptedEpoch (fsync) before anything that follows.
    PersistAcceptedEpoch(i64),
    /// Write currentEpoch (fsync) before anything that follows.
    PersistCurrentEpoch(i64),
    Send(LearnerConn, ToLearner),
    /// Send SNAP with this zxid, then the committed tree as of this zxid
    /// (which is the leader's last committed zxid at this point).
    SendSnapshot {
        conn: LearnerConn,
        zxid: i64,
    },
    /// Send, here among this learner's packets, PROPOSAL + COMMIT for every
    /// txn of the leader's on-disk log with `after_zxid < zxid <=
    /// through_zxid`, in zxid order (a DIFF from disk, Apache's txnlog
    /// replay). `through_zxid` is durable and committed; the driver must
    /// send every one of them or drop the connection.
    SendLoggedTxns {
        conn: LearnerConn,
        after_zxid: i64,
        through_zxid: i64,
    },
    /// How a learner is being synced, and why (for the operator's log).
    SyncChosen {
        conn: LearnerConn,
        sid: Sid,
        plan: SyncPlan,
        reason: sync_plan::SyncReason,
    },
    /// A quorum acked NEWLEADER: proposals may start at `epoch << 32 | 1`.
    Established {
        epoch: i64,
    },
    /// Every txn up to this zxid is committed: publish it to clients.
    Committed {
        zxid: i64,
    },
    /// A learner forwarded a client request (write, sync or session op).
    Forwarded {
        conn: LearnerConn,
        sid: Sid,
        request: ForwardedRequest,
    },
    /// A learner asks whether a reconnecting client's session is alive;
    /// answer with `LeaderCore::revalidated`.
    Revalidate {
        conn: LearnerConn,
        session_id: i64,
        timeout_ms: i32,
    },
    /// A sync of a client of this leader may be answered now (after every
    /// commit published so far).
    LocalSyncReady {
        token: u64,
    },
    /// Sessions a learner saw traffic on (from its PING reply).
    SessionsTouched(Vec<SessionTouch>),
    /// Drop this learner's connection.
    Close {
        conn: LearnerConn,
        reason: String,
    },
    /// Stop leading: go back to election.
    StepDown {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct LeaderSettings {
    pub tick_ms: u64,
    pub init_limit_ticks: u64,
    pub sync_limit_ticks: u64,
    /// Sent in NEWLEADER (the ensemble's config text).
    pub config_text: Bytes,
    pub sync_policy: SyncPolicy,
    /// Committed txns kept in memory for DIFFs (`zookeeper.commitLogCount`).
    pub committed_window_txns: usize,
}

/// The leader's own history when it starts leading.
#[derive(Debug, Clone)]
pub struct LeaderStart {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    /// Everything logged is committed once the leader is established.
    pub last_logged_zxid: i64,
    /// The tail of its log, oldest first (at most COMMITTED_WINDOW_TXNS).
    pub recent_txns: Vec<(i64, Bytes)>,
    /// What its on-disk log holds (and the newest snapshot's size), for
    /// DIFFs older than the window; kept current with `disk_logged` and
    /// `disk_files_changed`. An empty index: learners below the window get
    /// a snapshot.
    pub disk_log: DiskLogIndex,
}

pub struct LeaderCore {
    ensemble: Ensemble,
    settings: LeaderSettings,
    started_ms: u64,
    start: LeaderStart,
    /// Accepted epochs of learners that sent their info before the epoch
    /// was decided (voters only count towards the quorum).
    epoch_candidates: BTreeMap<Sid, i64>,
    new_epoch: Option<i64>,
    epoch_acks: BTreeSet<Sid>,
    epoch_acked: bool,
    newleader_acks: BTreeSet<Sid>,
    established: bool,
    stepped_down: bool,
    learners: BTreeMap<LearnerConn, Learner>,
    /// Proposed, not yet committed: zxid -> (txn bytes, who acked).
    outstanding: BTreeMap<i64, (Bytes, BTreeSet<Sid>)>,
    last_proposed: i64,
    last_committed: i64,
    local_durable: i64,
    window: VecDeque<(i64, Bytes)>,
    /// The on-disk log, as the driver reports it.
    disk_log: DiskLogIndex,
    /// Syncs in arrival order, waiting for their commits and their round.
    pending_syncs: VecDeque<PendingSync>,
    /// The last PING round sent (0: none yet).
    ping_round: u64,
    /// A sync arrived since the last round: send one at the next tick.
    round_wanted: bool,
    next_ping_ms: u64,
}

impl LeaderCore {
    pub fn new(ensemble: Ensemble, settings: LeaderSettings, mut start: LeaderStart, now_ms: u64) -> LeaderCore {
        let disk_log = std::mem::take(&mut start.disk_log);
        let mut window: VecDeque<(i64, Bytes)> = start.recent_txns.iter().cloned().collect();
        while window.len() > settings.committed_window_txns {
            window.pop_front();
        }
        let mut epoch_candidates = BTreeMap::new();
        epoch_candidates.insert(ensemble.my_sid, start.accepted_epoch);
        LeaderCore {
            started_ms: now_ms,
            epoch_candidates,
            new_epoch: None,
            epoch_acks: BTreeSet::from([ensemble.my_sid]),
            epoch_acked: false,
            newleader_acks: BTreeSet::from([ensemble.my_sid]),
            established: false,
            stepped_down: false,
            learners: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            last_proposed: start.last_logged_zxid,
            last_committed: start.last_logged_zxid,
            local_durable: start.last_logged_zxid,
            window,
            disk_log,
            pending_syncs: VecDeque::new(),
            ping_round: 0,
            round_wanted: false,
            next_ping_ms: now_ms,
            ensemble,
            settings,
            start,
        }
    }

    /// Discovery until the new epoch is chosen, then synchronization until
    /// a quorum has acked NEWLEADER.
    pub fn zab_phase(&self) -> crate::zab::ZabPhase {
        use crate::zab::ZabPhase;
        match (self.established, self.new_epoch) {
            (true, _) => ZabPhase::Broadcast,
            (false, Some(_)) => ZabPhase::Synchronization,
            (false, None) => ZabPhase::Discovery,
        }
    }

    pub fn is_established(&self) -> bool {
        self.established
    }

    pub fn epoch(&self) -> Option<i64> {
        self.new_epoch
    }

    pub fn last_committed(&self) -> i64 {
        self.last_committed
    }

    pub fn last_proposed(&self) -> i64 {
        self.last_proposed
    }

    /// Sids of learners in the broadcast, by kind (for `mntr` / `srvr`).
    pub fn synced_learners(&self) -> Vec<(Sid, LearnerKind)> {
        self.learners.values().filter(|l| l.phase == LearnerPhase::Synced).map(|l| (l.sid, l.kind)).collect()
    }

    /// The connections of the observers in the broadcast, with their sids
    /// (the AdminServer's `observers`).
    pub fn synced_observers(&self) -> impl Iterator<Item = (LearnerConn, Sid)> + '_ {
        self.learners
            .iter()
            .filter(|(_, l)| l.phase == LearnerPhase::Synced && l.kind == LearnerKind::Observer)
            .map(|(conn, l)| (*conn, l.sid))
    }

    pub fn learner_count(&self) -> usize {
        self.learners.len()
    }

    /// The sid a learner connection announced (after its FOLLOWERINFO).
    pub fn learner_sid(&self, conn: LearnerConn) -> Option<Sid> {
        self.learners.get(&conn).map(|l| l.sid).filter(|sid| *sid >= 0)
    }

    /// Syncs not yet answered (mntr's zk_pending_syncs).
    pub fn pending_sync_count(&self) -> usize {
        self.pending_syncs.len()
    }

    /// The zxid for the next proposal, or None when the counter would roll
    /// over (the leader must step down so a new epoch starts) or the leader
    /// is not established.
    pub fn next_zxid(&self) -> Option<i64> {
        let epoch = self.new_epoch.filter(|_| self.established)?;
        let next = self.last_proposed + 1;
        (epoch_of(next) == epoch && next & ZXID_COUNTER_MAX != ZXID_COUNTER_MAX).then_some(next)
    }

    /// The driver made these txns (zxid, bytes on disk) durable in its log,
    /// in zxid order.
    pub fn disk_logged(&mut self, records: impl IntoIterator<Item = (i64, u64)>) {
        for (zxid, bytes) in records {
            self.disk_log.logged(zxid, bytes);
        }
    }

    /// The driver's log files now start at `oldest_log_zxid` (older ones
    /// were purged; `None`: no log files) and the newest snapshot has
    /// `latest_snapshot_bytes` bytes.
    pub fn disk_files_changed(&mut self, oldest_log_zxid: Option<i64>, latest_snapshot_bytes: u64) {
        self.disk_log.forget_below(oldest_log_zxid);
        self.disk_log.latest_snapshot_bytes = latest_snapshot_bytes;
    }

    pub fn disk_log(&self) -> &DiskLogIndex {
        &self.disk_log
    }

    pub fn learner_connected(&mut self, conn: LearnerConn, now_ms: u64) {
        self.learners.insert(
            conn,
            Learner {
                sid: -1,
                kind: LearnerKind::Follower,
                phase: LearnerPhase::AwaitInfo,
                accepted_epoch: -1,
                last_logged_zxid: -1,
                current_epoch: -1,
                last_heard_ms: now_ms,
                forwarding: false,
                connected_ms: now_ms,
                echoed_round: 0,
            },
        );
    }

    pub fn learner_disconnected(&mut self, conn: LearnerConn) {
        self.learners.remove(&conn);
        self.pending_syncs.retain(|p| p.requester != SyncRequester::Learner(conn));
    }

    /// A sync: answered once everything up to `after_zxid` (the driver's
    /// newest assigned zxid when the sync reached it, so requests before it
    /// come first) is committed and a quorum answered a PING round sent
    /// after now. Learners forward syncs as REQUESTs, which come out as
    /// `LeaderAction::Forwarded` so the driver calls this in request order.
    pub fn sync(&mut self, requester: SyncRequester, after_zxid: i64, out: &mut Vec<LeaderAction>) {
        if self.stepped_down {
            return;
        }
        self.pending_syncs.push_back(PendingSync {
            requester,
            after_zxid: after_zxid.max(self.last_proposed),
            round: self.ping_round + 1,
        });
        self.round_wanted = true;
        self.answer_syncs(out);
    }

    /// Whether a quorum of voters, this leader included, answered `round`.
    fn round_confirmed(&self, round: u64) -> bool {
        let answered = self
            .learners
            .values()
            .filter(|l| l.phase == LearnerPhase::Synced && l.echoed_round >= round)
            .map(|l| &l.sid);
        self.ensemble.is_quorum(answered.chain(std::iter::once(&self.ensemble.my_sid)))
    }

    /// Answers, in order, the syncs whose commits and round are in.
    fn answer_syncs(&mut self, out: &mut Vec<LeaderAction>) {
        while let Some(front) = self.pending_syncs.front() {
            // Once established, everything up to (epoch, 0) is committed.
            let committed = match self.new_epoch.filter(|_| self.established) {
                Some(epoch) => self.last_committed.max(make_zxid(epoch, 0)),
                None => self.last_committed,
            };
            if front.after_zxid > committed || !self.round_confirmed(front.round) {
                break;
            }
            let requester = front.requester;
            self.pending_syncs.pop_front();
            match requester {
                SyncRequester::Learner(conn) => out.push(LeaderAction::Send(conn, ToLearner::Sync)),
                SyncRequester::Local(token) => out.push(LeaderAction::LocalSyncReady { token }),
            }
        }
    }

    /// One packet from a learner.
    pub fn learner_packet(&mut self, conn: LearnerConn, packet: ToLeader, now_ms: u64, out: &mut Vec<LeaderAction>) {
        if self.stepped_down {
            return;
        }
        let Some(learner) = self.learners.get_mut(&conn) else { return };
        learner.last_heard_ms = now_ms;
        match packet {
            ToLeader::FollowerInfo { accepted_epoch, info } => {
                self.on_learner_info(conn, LearnerKind::Follower, accepted_epoch, info.sid, out)
            }
            ToLeader::ObserverInfo { accepted_epoch, info } => {
                self.on_learner_info(conn, LearnerKind::Observer, accepted_epoch, info.sid, out)
            }
            ToLeader::AckEpoch { last_logged_zxid, current_epoch } => {
                self.on_ack_epoch(conn, last_logged_zxid, current_epoch, out)
            }
            ToLeader::Ack { zxid } => self.on_ack(conn, zxid, out),
            ToLeader::Ping { zxid, sessions } => {
                // The echo of a round we sent (anything else is not ours).
                if zxid > 0 && zxid as u64 <= self.ping_round {
                    learner.echoed_round = learner.echoed_round.max(zxid as u64);
                }
                if !sessions.is_empty() {
                    out.push(LeaderAction::SessionsTouched(sessions));
                }
                self.answer_syncs(out);
            }
            ToLeader::Request(request) => {
                if learner.phase != LearnerPhase::Synced {
                    out.push(LeaderAction::Close { conn, reason: "REQUEST before UPTODATE".into() });
                    return;
                }
                let sid = learner.sid;
                out.push(LeaderAction::Forwarded { conn, sid, request });
            }
            ToLeader::Revalidate { session_id, timeout_ms } => {
                out.push(LeaderAction::Revalidate { conn, session_id, timeout_ms })
            }
        }
    }

    /// The answer to a `LeaderAction::Revalidate`.
    pub fn revalidated(&self, conn: LearnerConn, session_id: i64, valid: bool, out: &mut Vec<LeaderAction>) {
        if self.learners.contains_key(&conn) {
            out.push(LeaderAction::Send(conn, ToLearner::Revalidate { session_id, valid }));
        }
    }

    fn on_learner_info(
        &mut self,
        conn: LearnerConn,
        kind: LearnerKind,
        accepted_epoch: i64,
        sid: Sid,
        out: &mut Vec<LeaderAction>,
    ) {
        let known = match kind {
            LearnerKind::Follower => self.ensemble.is_voter(sid),
            LearnerKind::Observer => self.ensemble.is_observer(sid),
        };
        let phase = self.learners.get(&conn).map(|l| l.phase);
        if !known || sid == self.ensemble.my_sid || phase != Some(LearnerPhase::AwaitInfo) {
            let reason =
                format!("{kind:?}INFO from sid {sid}, which is not a {kind:?} of this ensemble (or not first)");
            self.close(conn, reason, out);
            return;
        }
        // A reconnecting learner replaces its old connection.
        let stale: Vec<LearnerConn> =
            self.learners.iter().filter(|(c, l)| **c != conn && l.sid == sid).map(|(c, _)| *c).collect();
        for old in stale {
            self.close(old, format!("sid {sid} connected again"), out);
        }
        if let Some(l) = self.learners.get_mut(&conn) {
            l.sid = sid;
            l.kind = kind;
            l.accepted_epoch = accepted_epoch;
            l.phase = LearnerPhase::AwaitEpoch;
        }
        match self.new_epoch {
            Some(epoch) => self.send_leader_info(conn, epoch, out),
            None => {
                self.epoch_candidates.insert(sid, accepted_epoch);
                if self.ensemble.is_quorum(self.epoch_candidates.keys()) {
                    let epoch = self.epoch_candidates.values().copied().max().unwrap_or(0) + 1;
                    self.new_epoch = Some(epoch);
                    out.push(LeaderAction::PersistAcceptedEpoch(epoch));
                    let waiting: Vec<LearnerConn> = self
                        .learners
                        .iter()
                        .filter(|(_, l)| l.phase == LearnerPhase::AwaitEpoch)
                        .map(|(c, _)| *c)
                        .collect();
                    for c in waiting {
                        self.send_leader_info(c, epoch, out);
                    }
                }
            }
        }
    }

    fn send_leader_info(&mut self, conn: LearnerConn, epoch: i64, out: &mut Vec<LeaderAction>) {
        if let Some(l) = self.learners.get_mut(&conn) {
            l.phase = LearnerPhase::AwaitAckEpoch;
            out.push(LeaderAction::Send(
                conn,
                ToLearner::LeaderInfo { new_epoch: epoch, protocol_version: PROTOCOL_VERSION_ZAB_1_0 },
            ));
        }
    }

    fn on_ack_epoch(
        &mut self,
        conn: LearnerConn,
        last_logged_zxid: i64,
        current_epoch: i32,
        out: &mut Vec<LeaderAction>,
    ) {
        let Some(l) = self.learners.get_mut(&conn) else { return };
        if l.phase != LearnerPhase::AwaitAckEpoch {
            let reason = format!("ACKEPOCH from sid {} out of order", l.sid);
            self.close(conn, reason, out);
            return;
        }
        l.last_logged_zxid = last_logged_zxid;
        l.current_epoch = current_epoch;
        l.phase = LearnerPhase::AwaitSync;
        let (sid, kind) = (l.sid, l.kind);
        if !self.epoch_acked {
            // A voter whose history is newer than ours would lose it if we led.
            let mine = (self.start.current_epoch, self.start.last_logged_zxid);
            if current_epoch != -1 && (current_epoch as i64, last_logged_zxid) > mine && kind == LearnerKind::Follower {
                self.step_down(
                    format!(
                        "follower {sid} is ahead of the leader (its epoch {current_epoch}, zxid 0x{last_logged_zxid:x}; ours {}, 0x{:x})",
                        mine.0, mine.1
                    ),
                    out,
                );
                return;
            }
            self.epoch_acks.insert(sid);
            if self.ensemble.is_quorum(self.epoch_acks.iter()) {
                self.epoch_acked = true;
                if let Some(epoch) = self.new_epoch {
                    out.push(LeaderAction::PersistCurrentEpoch(epoch));
                }
                let waiting: Vec<LearnerConn> =
                    self.learners.iter().filter(|(_, l)| l.phase == LearnerPhase::AwaitSync).map(|(c, _)| *c).collect();
                for c in waiting {
                    self.sync_learner(c, out);
                }
            }
        } else {
            self.sync_learner(conn, out);
        }
    }

    /// DIFF / TRUNC / SNAP, the proposals still outstanding, NEWLEADER.
    fn sync_learner(&mut self, conn: LearnerConn, out: &mut Vec<LeaderAction>) {
        let Some(epoch) = self.new_epoch else { return };
        let Some(l) = self.learners.get(&conn) else { return };
        // The snapshot size the rule compares with is the newest one on disk.
        let policy =
            SyncPolicy { latest_snapshot_bytes: self.disk_log.latest_snapshot_bytes, ..self.settings.sync_policy };
        let decision = sync_plan::plan_sync(l.last_logged_zxid, &WindowHistory(self), &policy);
        out.push(LeaderAction::SyncChosen { conn, sid: l.sid, plan: decision.plan, reason: decision.reason });
        match decision.plan {
            SyncPlan::Diff { from, through, packet_zxid, .. } => {
                out.push(LeaderAction::Send(conn, ToLearner::Diff { zxid: packet_zxid }));
                self.queue_history(conn, from, through, out);
            }
            SyncPlan::TruncThenDiff { truncate_to, diff_from, through } => {
                out.push(LeaderAction::Send(conn, ToLearner::Trunc { zxid: truncate_to }));
                self.queue_history(conn, diff_from, through, out);
            }
            SyncPlan::Trunc { to } => out.push(LeaderAction::Send(conn, ToLearner::Trunc { zxid: to })),
            SyncPlan::Snap { zxid } => out.push(LeaderAction::SendSnapshot { conn, zxid }),
        }
        let forward_from = decision.forward_from();
        let is_follower = l.kind == LearnerKind::Follower;
        if is_follower {
            for (&zxid, (txn, _)) in self.outstanding.range(forward_from + 1..) {
                out.push(LeaderAction::Send(conn, ToLearner::Proposal { zxid, txn: txn.clone() }));
            }
        }
        out.push(LeaderAction::Send(
            conn,
            ToLearner::NewLeader { zxid: make_zxid(epoch, 0), config: Some(self.settings.config_text.clone()) },
        ));
        if let Some(l) = self.learners.get_mut(&conn) {
            l.forwarding = true;
            l.phase = LearnerPhase::AwaitNewLeaderAck;
        }
    }

    /// PROPOSAL + COMMIT for committed txns in (from, through]: from the
    /// on-disk log up to the window's first txn when `from` is older than
    /// the window (the plan checked the log reaches it), then the window.
    /// With no window at all (a leader that recovered from a snapshot with
    /// no txn after it) the plan took the window as holding only `through`
    /// (as Apache's minCommittedLog = maxCommittedLog = lastProcessedZxid),
    /// so all of (from, through] comes from the log: the simulator's seed
    /// 317 (`--snap-count 20`) found this DIFF sent nothing, and the
    /// follower served without the txns.
    fn queue_history(&self, conn: LearnerConn, from: i64, through: i64, out: &mut Vec<LeaderAction>) {
        match self.window.front() {
            Some(&(window_min, _)) if from < window_min && window_min <= through => {
                out.push(LeaderAction::SendLoggedTxns { conn, after_zxid: from, through_zxid: window_min });
                self.queue_committed(conn, window_min, through, out);
            }
            Some(_) => self.queue_committed(conn, from, through, out),
            None if from < through => {
                out.push(LeaderAction::SendLoggedTxns { conn, after_zxid: from, through_zxid: through })
            }
            None => {}
        }
    }

    /// PROPOSAL + COMMIT for committed txns of the window in (from, through]; observers
    /// get the same pairs during sync, as Apache sends them (INFORM is for
    /// the broadcast).
    fn queue_committed(&self, conn: LearnerConn, from: i64, through: i64, out: &mut Vec<LeaderAction>) {
        for (zxid, txn) in self.window.iter().filter(|(z, _)| *z > from && *z <= through) {
            out.push(LeaderAction::Send(conn, ToLearner::Proposal { zxid: *zxid, txn: txn.clone() }));
            out.push(LeaderAction::Send(conn, ToLearner::Commit { zxid: *zxid }));
        }
    }

    fn on_ack(&mut self, conn: LearnerConn, zxid: i64, out: &mut Vec<LeaderAction>) {
        let Some(l) = self.learners.get_mut(&conn) else { return };
        let Some(epoch) = self.new_epoch else { return };
        let sid = l.sid;
        if l.phase == LearnerPhase::AwaitNewLeaderAck && zxid == make_zxid(epoch, 0) {
            l.phase = LearnerPhase::AwaitEstablished;
            self.newleader_acks.insert(sid);
            if self.established {
                self.send_up_to_date(conn, out);
            } else if self.ensemble.is_quorum(self.newleader_acks.iter()) {
                self.established = true;
                out.push(LeaderAction::Established { epoch });
                self.last_proposed = self.last_proposed.max(make_zxid(epoch, 0));
                let waiting: Vec<LearnerConn> = self
                    .learners
                    .iter()
                    .filter(|(_, l)| l.phase == LearnerPhase::AwaitEstablished)
                    .map(|(c, _)| *c)
                    .collect();
                for c in waiting {
                    self.send_up_to_date(c, out);
                }
            }
            return;
        }
        // Acks of NEWLEADER/UPTODATE (counter 0) carry no proposal.
        if zxid & ZXID_COUNTER_MAX == 0 || l.kind != LearnerKind::Follower {
            return;
        }
        // A follower logs in order, so an ack covers every zxid below it.
        for (_, (_, acks)) in self.outstanding.range_mut(..=zxid) {
            acks.insert(sid);
        }
        self.try_commit(out);
    }

    fn send_up_to_date(&mut self, conn: LearnerConn, out: &mut Vec<LeaderAction>) {
        if let Some(l) = self.learners.get_mut(&conn) {
            l.phase = LearnerPhase::Synced;
            out.push(LeaderAction::Send(conn, ToLearner::UpToDate));
        }
    }

    /// A new proposal (zxid from `next_zxid`), in zxid order.
    pub fn propose(&mut self, zxid: i64, txn: Bytes, out: &mut Vec<LeaderAction>) {
        debug_assert!(self.established && zxid > self.last_proposed);
        self.last_proposed = zxid;
        for (conn, l) in &self.learners {
            if l.forwarding && l.kind == LearnerKind::Follower {
                out.push(LeaderAction::Send(*conn, ToLearner::Proposal { zxid, txn: txn.clone() }));
            }
        }
        self.outstanding.insert(zxid, (txn, BTreeSet::new()));
        self.try_commit(out);
    }

    /// The leader's own log is durable up to `zxid` (its own ack).
    pub fn local_durable(&mut self, zxid: i64, out: &mut Vec<LeaderAction>) {
        self.local_durable = self.local_durable.max(zxid);
        self.try_commit(out);
    }

    fn try_commit(&mut self, out: &mut Vec<LeaderAction>) {
        let me = self.ensemble.my_sid;
        let mut committed_any = false;
        while let Some(entry) = self.outstanding.first_entry() {
            let zxid = *entry.key();
            let (_, acks) = entry.get();
            let self_ack = (self.local_durable >= zxid).then_some(&me);
            if !self.ensemble.is_quorum(acks.iter().chain(self_ack)) {
                break;
            }
            let (txn, _) = entry.remove();
            self.last_committed = zxid;
            committed_any = true;
            for (conn, l) in &self.learners {
                if !l.forwarding {
                    continue;
                }
                match l.kind {
                    LearnerKind::Follower => out.push(LeaderAction::Send(*conn, ToLearner::Commit { zxid })),
                    LearnerKind::Observer => {
                        out.push(LeaderAction::Send(*conn, ToLearner::Inform { zxid, txn: txn.clone() }))
                    }
                }
            }
            self.window.push_back((zxid, txn));
            if self.window.len() > self.settings.committed_window_txns {
                self.window.pop_front();
            }
        }
        if committed_any {
            out.push(LeaderAction::Committed { zxid: self.last_committed });
            self.answer_syncs(out);
        }
    }

    /// Pings, learner timeouts, and the leader's own liveness rules.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<LeaderAction>) {
        if self.stepped_down {
            return;
        }
        let tick = self.settings.tick_ms.max(1);
        let init_ms = tick * self.settings.init_limit_ticks;
        let sync_ms = tick * self.settings.sync_limit_ticks;
        if !self.established {
            if now_ms.saturating_sub(self.started_ms) > init_ms {
                let reason = format!(
                    "not established within initLimit ({init_ms} ms): {} of {} voters synced",
                    self.newleader_acks.len(),
                    self.ensemble.voters.len()
                );
                self.step_down(reason, out);
            }
            return;
        }
        let silent: Vec<(LearnerConn, Sid)> = self
            .learners
            .iter()
            .filter(|(_, l)| {
                let limit = if l.phase == LearnerPhase::Synced { sync_ms } else { init_ms };
                let since =
                    if l.phase == LearnerPhase::Synced { l.last_heard_ms } else { l.connected_ms.max(l.last_heard_ms) };
                now_ms.saturating_sub(since) > limit
            })
            .map(|(c, l)| (*c, l.sid))
            .collect();
        for (conn, sid) in silent {
            self.close(conn, format!("learner {sid} silent for more than its limit"), out);
        }
        let mut live: BTreeSet<Sid> = self
            .learners
            .values()
            .filter(|l| l.phase == LearnerPhase::Synced && now_ms.saturating_sub(l.last_heard_ms) <= sync_ms)
            .map(|l| l.sid)
            .collect();
        live.insert(self.ensemble.my_sid);
        if !self.ensemble.is_quorum(live.iter()) {
            self.step_down(
                format!("lost the quorum: only {live:?} of voters {:?} are synced and live", self.ensemble.voters),
                out,
            );
            return;
        }
        // Every PING is a numbered round; a waiting sync brings the next
        // one forward instead of waiting for half a tick.
        if now_ms >= self.next_ping_ms || self.round_wanted {
            self.next_ping_ms = now_ms + (tick / 2).max(1);
            self.round_wanted = false;
            self.ping_round += 1;
            for (conn, l) in &self.learners {
                if l.phase == LearnerPhase::Synced {
                    out.push(LeaderAction::Send(*conn, ToLearner::Ping { zxid: self.ping_round as i64 }));
                }
            }
            self.answer_syncs(out);
        }
    }

    /// Leaves leadership: speculative (uncommitted) proposals are dropped
    /// by the driver; this core ignores all further input.
    pub fn step_down(&mut self, reason: String, out: &mut Vec<LeaderAction>) {
        if !self.stepped_down {
            self.stepped_down = true;
            out.push(LeaderAction::StepDown { reason });
        }
    }

    fn close(&mut self, conn: LearnerConn, reason: String, out: &mut Vec<LeaderAction>) {
        if self.learners.remove(&conn).is_some() {
            self.pending_syncs.retain(|p| p.requester != SyncRequester::Learner(conn));
            out.push(LeaderAction::Close { conn, reason });
        }
    }
}

/// The leader's committed history as `sync_plan` sees it: the in-memory
/// window, then the on-disk log as the driver reported it.
struct WindowHistory<'a>(&'a LeaderCore);

impl LeaderHistory for WindowHistory<'_> {
    fn last_processed_zxid(&self) -> i64 {
        self.0.last_committed
    }

    fn committed_window(&self) -> Option<ZxidWindow> {
        let (first, last) = (self.0.window.front()?, self.0.window.back()?);
        Some(ZxidWindow { min: first.0, max: last.0 })
    }

    fn window_lookup(&self, zxid: i64) -> Lookup {
        let zxids: Vec<i64> = self.0.window.iter().map(|(z, _)| *z).collect();
        sync_plan::lookup_sorted(&zxids, zxid)
    }

    fn disk_log_contains(&self, zxid: i64) -> bool {
        self.0.disk_log.contains(zxid)
    }

    fn disk_log_reaches_back_to(&self, zxid: i64) -> bool {
        self.0.disk_log.oldest().is_some_and(|oldest| oldest <= zxid)
    }

    fn disk_log_neighbours(&self, zxid: i64) -> (Option<i64>, Option<i64>) {
        match self.0.disk_log.lookup(zxid) {
            Lookup::Present => (Some(zxid), Some(zxid)),
            Lookup::Absent { previous, next } => (previous, next),
        }
    }

    fn disk_log_bytes_from(&self, zxid: i64) -> u64 {
        self.0.disk_log.bytes_from(zxid)
    }
}
