//! The ZAB learner (follower or observer) as a sans-IO state machine
//! (Apache's Learner, Follower and Observer, without threads and sockets).
//!
//! Inputs: packets from the leader, "the log is durable up to zxid" from the
//! driver's group commit, "the snapshot stream has been read", ticks.
//! Output: an ordered list of [`LearnerAction`]s: persist an epoch, log
//! txns, truncate the log, apply committed txns, send packets, start
//! serving, or give up (back to election).
//!
//! A follower acks a proposal only once its own log holds it durably; it
//! applies txns only when the leader commits them, in zxid order. During
//! sync (before UPTODATE), what the leader sends is logged at NEWLEADER and
//! NEWLEADER is acked only once that is durable (ZOOKEEPER-3911); proposals
//! that arrive between NEWLEADER and UPTODATE are acked after UPTODATE.

use std::collections::VecDeque;

use bytes::Bytes;

use super::ensemble::Sid;
use super::packets::{epoch_of, make_zxid, LearnerInfo, ToLeader, ToLearner, PROTOCOL_VERSION_ZAB_1_0};
use crate::storage::txn::payload_zxid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// FOLLOWERINFO sent; waiting for LEADERINFO.
    AwaitLeaderInfo,
    /// ACKEPOCH sent; waiting for DIFF / TRUNC / SNAP.
    AwaitSyncMode,
    /// SNAP received; the driver is reading the snapshot stream.
    ReadingSnapshot,
    /// Receiving the sync's proposals and commits, up to NEWLEADER.
    Syncing,
    /// NEWLEADER received; its txns are being made durable.
    AwaitNewLeaderDurable,
    /// NEWLEADER acked; waiting for UPTODATE.
    AwaitUpToDate,
    Broadcast,
    GaveUp,
}

/// One thing for the driver to do; carried out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnerAction {
    Send(ToLeader),
    PersistAcceptedEpoch(i64),
    PersistCurrentEpoch(i64),
    /// Cut the log (and any snapshot) after this zxid and rebuild the
    /// state from disk before anything that follows.
    Truncate {
        zxid: i64,
    },
    /// Read the snapshot stream that follows SNAP from the socket, replace
    /// the state with it (it is at `zxid`), make it durable, then call
    /// `snapshot_installed`.
    ReadSnapshot {
        zxid: i64,
    },
    /// Append these txns to the log (group commit); report `durable`.
    Log(Vec<(i64, Bytes)>),
    /// Apply these committed txns to the tree, in order, and publish them.
    Apply(Vec<(i64, Bytes)>),
    /// A forwarded sync is answered (FIFO with the syncs sent).
    SyncDone,
    /// Answer the leader's PING: `ToLeader::Ping { zxid, sessions }` with
    /// the sessions the server saw since the last reply.
    PingReply {
        zxid: i64,
    },
    /// The answer to a REVALIDATE.
    Revalidated {
        session_id: i64,
        valid: bool,
    },
    /// UPTODATE: serve clients.
    Serving {
        epoch: i64,
    },
    /// Leave the leader: back to election.
    GiveUp {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct LearnerSettings {
    pub my_sid: Sid,
    pub observer: bool,
    pub tick_ms: u64,
    pub init_limit_ticks: u64,
    pub sync_limit_ticks: u64,
}

pub struct LearnerCore {
    settings: LearnerSettings,
    phase: Phase,
    accepted_epoch: i64,
    current_epoch: i64,
    /// Highest zxid in the log (or installed snapshot).
    last_logged: i64,
    durable: i64,
    new_epoch: i64,
    /// Received during sync: (zxid, txn, committed by the leader yet).
    sync_txns: Vec<(i64, Bytes, bool)>,
    /// Logged (or being logged), not yet committed, in zxid order.
    uncommitted: VecDeque<(i64, Bytes)>,
    /// Proposals logged (or being logged) and not yet acked, in zxid order:
    /// each is acked once durable, even if its COMMIT came first (the log
    /// is written while the follower goes on reading the leader; Apache's
    /// follower acks every logged proposal too).
    to_ack: VecDeque<i64>,
    last_heard_ms: u64,
    phase_started_ms: u64,
}

impl LearnerCore {
    /// Connected to the leader: sends FOLLOWERINFO / OBSERVERINFO.
    pub fn new(
        settings: LearnerSettings,
        accepted_epoch: i64,
        current_epoch: i64,
        last_logged_zxid: i64,
        now_ms: u64,
        out: &mut Vec<LearnerAction>,
    ) -> LearnerCore {
        let info =
            LearnerInfo { sid: settings.my_sid, protocol_version: PROTOCOL_VERSION_ZAB_1_0, config_version: Some(0) };
        out.push(LearnerAction::Send(if settings.observer {
            ToLeader::ObserverInfo { accepted_epoch, info }
        } else {
            ToLeader::FollowerInfo { accepted_epoch, info }
        }));
        LearnerCore {
            settings,
            phase: Phase::AwaitLeaderInfo,
            accepted_epoch,
            current_epoch,
            last_logged: last_logged_zxid,
            durable: last_logged_zxid,
            new_epoch: -1,
            sync_txns: Vec::new(),
            uncommitted: VecDeque::new(),
            to_ack: VecDeque::new(),
            last_heard_ms: now_ms,
            phase_started_ms: now_ms,
        }
    }

    pub fn is_serving(&self) -> bool {
        self.phase == Phase::Broadcast
    }

    pub fn epoch(&self) -> i64 {
        self.new_epoch
    }

    pub fn is_observer(&self) -> bool {
        self.settings.observer
    }

    fn give_up(&mut self, reason: String, out: &mut Vec<LearnerAction>) {
        if self.phase != Phase::GaveUp {
            self.phase = Phase::GaveUp;
            out.push(LearnerAction::GiveUp { reason });
        }
    }

    fn enter(&mut self, phase: Phase, now_ms: u64) {
        self.phase = phase;
        self.phase_started_ms = now_ms;
    }

    pub fn packet(&mut self, packet: ToLearner, now_ms: u64, out: &mut Vec<LearnerAction>) {
        if self.phase == Phase::GaveUp {
            return;
        }
        self.last_heard_ms = now_ms;
        match (self.phase, packet) {
            (Phase::AwaitLeaderInfo, ToLearner::LeaderInfo { new_epoch, .. }) => {
                if new_epoch < self.accepted_epoch {
                    let reason = format!(
                        "the leader's epoch {new_epoch} is below the epoch {} this server accepted",
                        self.accepted_epoch
                    );
                    self.give_up(reason, out);
                    return;
                }
                // -1: this epoch was accepted before (so this ack is no vote).
                let reported = if new_epoch > self.accepted_epoch {
                    self.accepted_epoch = new_epoch;
                    out.push(LearnerAction::PersistAcceptedEpoch(new_epoch));
                    i32::try_from(self.current_epoch).unwrap_or(i32::MAX)
                } else {
                    -1
                };
                self.new_epoch = new_epoch;
                out.push(LearnerAction::Send(ToLeader::AckEpoch {
                    last_logged_zxid: self.last_logged,
                    current_epoch: reported,
                }));
                self.enter(Phase::AwaitSyncMode, now_ms);
            }
            (Phase::AwaitSyncMode, ToLearner::Diff { .. }) => self.enter(Phase::Syncing, now_ms),
            (Phase::AwaitSyncMode, ToLearner::Trunc { zxid }) => {
                out.push(LearnerAction::Truncate { zxid });
                self.last_logged = zxid;
                self.durable = zxid;
                self.to_ack.clear();
                self.enter(Phase::Syncing, now_ms);
            }
            (Phase::AwaitSyncMode, ToLearner::Snap { zxid }) => {
                out.push(LearnerAction::ReadSnapshot { zxid });
                self.enter(Phase::ReadingSnapshot, now_ms);
            }
            (Phase::Syncing, ToLearner::Proposal { zxid, txn }) => {
                if payload_zxid(&txn) != Some(zxid) || zxid <= self.last_logged {
                    self.give_up(format!("sync proposal 0x{zxid:x} out of order or mislabelled"), out);
                    return;
                }
                self.last_logged = zxid;
                self.sync_txns.push((zxid, txn, false));
            }
            (Phase::Syncing, ToLearner::Commit { zxid }) => {
                match self.sync_txns.iter_mut().find(|(z, _, _)| *z == zxid) {
                    Some(entry) => entry.2 = true,
                    None => self.give_up(format!("sync commit of unknown proposal 0x{zxid:x}"), out),
                }
            }
            (Phase::Syncing, ToLearner::Inform { zxid, txn }) if self.settings.observer => {
                if zxid <= self.last_logged {
                    self.give_up(format!("inform 0x{zxid:x} out of order"), out);
                    return;
                }
                self.last_logged = zxid;
                self.sync_txns.push((zxid, txn, true));
            }
            (Phase::Syncing, ToLearner::NewLeader { zxid, .. }) => {
                if epoch_of(zxid) != self.new_epoch {
                    self.give_up(
                        format!("NEWLEADER for epoch {} but LEADERINFO said {}", epoch_of(zxid), self.new_epoch),
                        out,
                    );
                    return;
                }
                // Log everything the sync brought, apply what is committed
                // (in order: a commit never overtakes an earlier proposal).
                let txns = std::mem::take(&mut self.sync_txns);
                let logged: Vec<(i64, Bytes)> = txns.iter().map(|(z, t, _)| (*z, t.clone())).collect();
                if !logged.is_empty() {
                    out.push(LearnerAction::Log(logged));
                }
                let mut apply = Vec::new();
                let mut tail_uncommitted = false;
                for (z, t, committed) in txns {
                    if committed && !tail_uncommitted {
                        apply.push((z, t));
                    } else {
                        tail_uncommitted = true;
                        if !self.settings.observer {
                            self.to_ack.push_back(z);
                        }
                        self.uncommitted.push_back((z, t));
                    }
                }
                if !apply.is_empty() {
                    out.push(LearnerAction::Apply(apply));
                }
                self.enter(Phase::AwaitNewLeaderDurable, now_ms);
                self.try_ack_new_leader(out);
            }
            (
                Phase::AwaitNewLeaderDurable | Phase::AwaitUpToDate | Phase::Broadcast,
                ToLearner::Proposal { zxid, txn },
            ) => {
                if payload_zxid(&txn) != Some(zxid) || zxid <= self.last_logged {
                    self.give_up(
                        format!("proposal 0x{zxid:x} out of order (last logged 0x{:x})", self.last_logged),
                        out,
                    );
                    return;
                }
                self.last_logged = zxid;
                self.uncommitted.push_back((zxid, txn.clone()));
                if !self.settings.observer {
                    self.to_ack.push_back(zxid);
                }
                out.push(LearnerAction::Log(vec![(zxid, txn)]));
            }
            (Phase::AwaitNewLeaderDurable | Phase::AwaitUpToDate | Phase::Broadcast, ToLearner::Commit { zxid }) => {
                match self.uncommitted.front() {
                    Some((head, _)) if *head == zxid => {
                        if let Some(entry) = self.uncommitted.pop_front() {
                            out.push(LearnerAction::Apply(vec![entry]));
                        }
                    }
                    _ => {
                        let head = self.uncommitted.front().map(|(z, _)| *z);
                        self.give_up(
                            format!("commit of 0x{zxid:x} but the next uncommitted proposal is {head:x?}"),
                            out,
                        );
                    }
                }
            }
            (
                Phase::AwaitNewLeaderDurable | Phase::AwaitUpToDate | Phase::Broadcast,
                ToLearner::Inform { zxid, txn },
            ) if self.settings.observer => {
                if zxid <= self.last_logged {
                    self.give_up(format!("inform 0x{zxid:x} out of order"), out);
                    return;
                }
                self.last_logged = zxid;
                out.push(LearnerAction::Log(vec![(zxid, txn.clone())]));
                out.push(LearnerAction::Apply(vec![(zxid, txn)]));
            }
            (Phase::AwaitUpToDate, ToLearner::UpToDate) => {
                out.push(LearnerAction::Send(ToLeader::Ack { zxid: make_zxid(self.new_epoch, 0) }));
                self.enter(Phase::Broadcast, now_ms);
                out.push(LearnerAction::Serving { epoch: self.new_epoch });
                self.send_acks(out);
            }
            (Phase::Broadcast, ToLearner::Ping { zxid }) => {
                out.push(LearnerAction::PingReply { zxid });
            }
            // Apache's leader pings a learner as soon as its sync packets
            // are queued, so PINGs arrive between the sync's packets and
            // before UPTODATE. Apache's learner ignores them until then; so
            // must we: its LearnerHandler reads the NEWLEADER ACK as the
            // next packet and drops a learner that sends anything else.
            (_, ToLearner::Ping { .. }) => {}
            (Phase::Broadcast, ToLearner::Sync) => out.push(LearnerAction::SyncDone),
            (Phase::Broadcast, ToLearner::Revalidate { session_id, valid }) => {
                out.push(LearnerAction::Revalidated { session_id, valid })
            }
            (phase, packet) => {
                let reason = format!("unexpected {packet:?} from the leader while {phase:?}");
                self.give_up(reason, out);
            }
        }
    }

    /// The driver has read and durably installed the SNAP stream at `zxid`.
    pub fn snapshot_installed(&mut self, zxid: i64, now_ms: u64) {
        if self.phase == Phase::ReadingSnapshot {
            self.last_logged = zxid;
            self.durable = zxid;
            self.to_ack.clear();
            self.enter(Phase::Syncing, now_ms);
        }
    }

    /// The log is durable up to `zxid`.
    pub fn durable(&mut self, zxid: i64, out: &mut Vec<LearnerAction>) {
        self.durable = self.durable.max(zxid);
        match self.phase {
            Phase::AwaitNewLeaderDurable => self.try_ack_new_leader(out),
            Phase::Broadcast => self.send_acks(out),
            _ => {}
        }
    }

    fn try_ack_new_leader(&mut self, out: &mut Vec<LearnerAction>) {
        if self.durable < self.last_logged {
            return;
        }
        if self.current_epoch != self.new_epoch {
            self.current_epoch = self.new_epoch;
            out.push(LearnerAction::PersistCurrentEpoch(self.new_epoch));
        }
        out.push(LearnerAction::Send(ToLeader::Ack { zxid: make_zxid(self.new_epoch, 0) }));
        // The sync's still-uncommitted proposals are acked one by one after
        // UPTODATE, as Apache's learner does; the leader needs those acks.
        self.phase = Phase::AwaitUpToDate;
    }

    /// One ACK per durable proposal (Apache's leader counts them one by one).
    fn send_acks(&mut self, out: &mut Vec<LearnerAction>) {
        while let Some(&zxid) = self.to_ack.front() {
            if zxid > self.durable {
                break;
            }
            self.to_ack.pop_front();
            out.push(LearnerAction::Send(ToLeader::Ack { zxid }));
        }
    }

    /// The ZAB phase this learner is in.
    pub fn zab_phase(&self) -> crate::zab::ZabPhase {
        use crate::zab::ZabPhase;
        match self.phase {
            Phase::AwaitLeaderInfo | Phase::AwaitSyncMode | Phase::GaveUp => ZabPhase::Discovery,
            Phase::ReadingSnapshot | Phase::Syncing | Phase::AwaitNewLeaderDurable | Phase::AwaitUpToDate => {
                ZabPhase::Synchronization
            }
            Phase::Broadcast => ZabPhase::Broadcast,
        }
    }

    /// Gives up on a silent leader: initLimit while syncing, syncLimit in
    /// the broadcast.
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<LearnerAction>) {
        let tick = self.settings.tick_ms.max(1);
        let (limit, since) = match self.phase {
            Phase::GaveUp => return,
            Phase::Broadcast => (tick * self.settings.sync_limit_ticks, self.last_heard_ms),
            _ => (tick * self.settings.init_limit_ticks, self.phase_started_ms.max(self.last_heard_ms)),
        };
        if now_ms.saturating_sub(since) > limit {
            let reason =
                format!("nothing from the leader for {} ms (limit {limit} ms) while {:?}", now_ms - since, self.phase);
            self.give_up(reason, out);
        }
    }
}
