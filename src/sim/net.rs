//! The simulated network. ZAB runs on TCP, so within one connection
//! nothing is lost or reordered; what fails is the connection (it breaks,
//! and each end may learn of it late or only by its own timeout), the link
//! (a partition, symmetric or one-way, holds bytes until it heals, as TCP
//! retransmission would), and latency (per link, seeded).
//!
//! Election traffic is modelled as Apache's QuorumCnxManager behaves: per
//! ordered pair of servers a one-slot outbox keeps the newest notification
//! that could not be delivered, and it goes out once the link is back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::zab::ensemble::Sid;

pub type ConnId = u64;

/// A quorum-port connection's two directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToLeader,
    ToLearner,
}

/// What travels on a quorum connection.
#[derive(Debug, Clone)]
pub enum Wire {
    /// One encoded `QuorumPacket`.
    Packet(Bytes),
    /// SNAP: the encoded SNAP packet followed by Apache's SNAP stream.
    Snap { packet: Bytes, stream: Bytes },
}

#[derive(Debug)]
pub struct Conn {
    pub learner: Sid,
    pub learner_incarnation: u64,
    pub leader: Sid,
    pub leader_incarnation: u64,
    /// The leader's number for it (`LearnerConn`).
    pub leader_side_id: u64,
    pub alive: bool,
    to_leader: VecDeque<(u64, Wire)>,
    to_learner: VecDeque<(u64, Wire)>,
    last_at: [u64; 2],
}

impl Conn {
    fn queue(&mut self, dir: Dir) -> &mut VecDeque<(u64, Wire)> {
        match dir {
            Dir::ToLeader => &mut self.to_leader,
            Dir::ToLearner => &mut self.to_learner,
        }
    }

    pub fn ends(&self, dir: Dir) -> (Sid, Sid) {
        match dir {
            Dir::ToLeader => (self.learner, self.leader),
            Dir::ToLearner => (self.leader, self.learner),
        }
    }
}

#[derive(Debug, Default)]
pub struct SimNet {
    /// Base one-way latency per ordered pair, ms.
    pub latency_ms: BTreeMap<(Sid, Sid), u64>,
    /// Blocked ordered pairs (from, to).
    pub blocked: BTreeSet<(Sid, Sid)>,
    pub conns: BTreeMap<ConnId, Conn>,
    next_conn: ConnId,
    /// Newest undelivered notification per (from, to).
    pub election_outbox: BTreeMap<(Sid, Sid), Bytes>,
}

impl SimNet {
    pub fn latency(&self, from: Sid, to: Sid) -> u64 {
        self.latency_ms.get(&(from, to)).copied().unwrap_or(1)
    }

    pub fn is_blocked(&self, from: Sid, to: Sid) -> bool {
        self.blocked.contains(&(from, to))
    }

    pub fn open(
        &mut self,
        learner: Sid,
        learner_incarnation: u64,
        leader: Sid,
        leader_incarnation: u64,
        leader_side_id: u64,
    ) -> ConnId {
        self.next_conn += 1;
        let id = self.next_conn;
        self.conns.insert(
            id,
            Conn {
                learner,
                learner_incarnation,
                leader,
                leader_incarnation,
                leader_side_id,
                alive: true,
                to_leader: VecDeque::new(),
                to_learner: VecDeque::new(),
                last_at: [0, 0],
            },
        );
        id
    }

    /// Queues `wire` on `conn` towards `dir`; returns when its delivery
    /// should be attempted (None if the connection is dead).
    pub fn send(&mut self, conn: ConnId, dir: Dir, wire: Wire, now: u64) -> Option<u64> {
        let c = self.conns.get(&conn)?;
        if !c.alive {
            return None;
        }
        let (from, to) = c.ends(dir);
        let lat = self.latency(from, to);
        let c = self.conns.get_mut(&conn)?;
        let slot = dir as usize;
        // FIFO: never before the previous byte on this direction.
        let at = (now + lat).max(c.last_at[slot]);
        c.last_at[slot] = at;
        c.queue(dir).push_back((at, wire));
        Some(at)
    }

    /// The head of `dir` if it is due and the link lets it through.
    pub fn take_due(&mut self, conn: ConnId, dir: Dir, now: u64) -> Option<Wire> {
        let blocked = {
            let c = self.conns.get(&conn)?;
            let (from, to) = c.ends(dir);
            self.is_blocked(from, to)
        };
        let c = self.conns.get_mut(&conn)?;
        if !c.alive || blocked {
            return None;
        }
        match c.queue(dir).front() {
            Some((at, _)) if *at <= now => c.queue(dir).pop_front().map(|(_, w)| w),
            _ => None,
        }
    }

    /// When the head of `dir` is next due (None if nothing is queued).
    pub fn head_due(&self, conn: ConnId, dir: Dir) -> Option<u64> {
        let c = self.conns.get(&conn)?;
        let q = match dir {
            Dir::ToLeader => &c.to_leader,
            Dir::ToLearner => &c.to_learner,
        };
        q.front().map(|(at, _)| *at)
    }

    /// Breaks a connection: what is in flight is lost.
    pub fn break_conn(&mut self, conn: ConnId) -> Option<(Sid, u64, Sid, u64)> {
        let c = self.conns.get_mut(&conn)?;
        if !c.alive {
            return None;
        }
        c.alive = false;
        c.to_leader.clear();
        c.to_learner.clear();
        Some((c.learner, c.learner_incarnation, c.leader, c.leader_incarnation))
    }

    pub fn live_conns_of(&self, sid: Sid) -> Vec<ConnId> {
        self.conns.iter().filter(|(_, c)| c.alive && (c.learner == sid || c.leader == sid)).map(|(id, _)| *id).collect()
    }

    /// Forgets dead connections with nothing left to deliver.
    pub fn reap(&mut self) {
        self.conns.retain(|_, c| c.alive);
    }
}
