//! Server-wide figures the commit shard publishes for anyone to read
//! (atomics written by one owner, read without locks).

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};

/// What this server is doing, as `srvr`'s `Mode:` and mntr's
/// `zk_server_state` say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    Standalone = 0,
    Looking = 1,
    Leader = 2,
    Follower = 3,
    Observer = 4,
    /// An ensemble member with `readonlymode.enabled` that is not in a
    /// quorum: it serves reads to read-only clients (Apache's
    /// ReadOnlyZooKeeperServer, whose state name is "read-only").
    ReadOnly = 5,
}

impl ServerMode {
    pub fn name(self) -> &'static str {
        match self {
            ServerMode::Standalone => "standalone",
            ServerMode::Looking => "looking",
            ServerMode::Leader => "leader",
            ServerMode::Follower => "follower",
            ServerMode::Observer => "observer",
            ServerMode::ReadOnly => "read-only",
        }
    }

    /// What `isro` answers, as Apache's IsroCommand: "null" while no
    /// server runs (electing, syncing), "ro" in read-only mode, else "rw".
    pub fn isro_answer(self) -> &'static str {
        match self {
            ServerMode::Looking => "null",
            ServerMode::ReadOnly => "ro",
            ServerMode::Standalone | ServerMode::Leader | ServerMode::Follower | ServerMode::Observer => "rw",
        }
    }

    fn from_u8(v: u8) -> ServerMode {
        match v {
            1 => ServerMode::Looking,
            2 => ServerMode::Leader,
            3 => ServerMode::Follower,
            4 => ServerMode::Observer,
            5 => ServerMode::ReadOnly,
            _ => ServerMode::Standalone,
        }
    }
}

#[derive(Default)]
pub struct ServerStats {
    last_zxid: AtomicI64,
    /// How many batches the commit shard has published (`view_slot`).
    publish_seq: AtomicU64,
    node_count: AtomicU64,
    sessions: AtomicU64,
    mode: AtomicU8,
    digest_mismatches: AtomicU64,
    /// Leader only: learners connected, and those in the broadcast.
    learners: AtomicU64,
    synced_followers: AtomicU64,
    synced_observers: AtomicU64,
    pending_syncs: AtomicU64,
    quorum_size: AtomicU64,
    /// The elected leader's sid, or 0 (no member has sid 0) while electing.
    leader_sid: AtomicU64,
    zab_phase: AtomicU8,
}

impl ServerStats {
    pub fn set_last_zxid(&self, zxid: i64) {
        // Release/Acquire: a worker that reads this zxid knows a batch up to
        // it has been sent or is being left in its slot (see
        // WorkerShard::view_needed and server::view_slot).
        self.last_zxid.store(zxid, Ordering::Release);
    }
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Acquire)
    }
    /// SeqCst, as `WorkerGate`'s flags: the commit shard stores this before
    /// it reads a worker's `watching`, the worker raises `watching` before
    /// it reads this (see `server::view_slot`).
    pub fn set_publish_seq(&self, seq: u64) {
        self.publish_seq.store(seq, Ordering::SeqCst);
    }
    pub fn publish_seq(&self) -> u64 {
        self.publish_seq.load(Ordering::SeqCst)
    }
    pub fn set_node_count(&self, n: u64) {
        self.node_count.store(n, Ordering::Relaxed);
    }
    pub fn node_count(&self) -> u64 {
        self.node_count.load(Ordering::Relaxed)
    }
    pub fn sessions_changed(&self, n: u64) {
        self.sessions.store(n, Ordering::Relaxed);
    }
    /// A txn from the leader left this replica with another tree digest.
    pub fn digest_mismatch(&self) {
        self.digest_mismatches.fetch_add(1, Ordering::Relaxed);
    }
    pub fn digest_mismatches(&self) -> u64 {
        self.digest_mismatches.load(Ordering::Relaxed)
    }
    /// What a leader reports in mntr (zk_learners, zk_synced_followers, ...).
    pub fn set_leader_view(&self, learners: u64, synced_followers: u64, synced_observers: u64) {
        self.learners.store(learners, Ordering::Relaxed);
        self.synced_followers.store(synced_followers, Ordering::Relaxed);
        self.synced_observers.store(synced_observers, Ordering::Relaxed);
    }
    /// Leader only: syncs waiting for their commits and quorum round.
    pub fn set_pending_syncs(&self, n: u64) {
        self.pending_syncs.store(n, Ordering::Relaxed);
    }
    pub fn pending_syncs(&self) -> u64 {
        self.pending_syncs.load(Ordering::Relaxed)
    }
    /// (learners, synced followers, synced observers).
    pub fn leader_view(&self) -> (u64, u64, u64) {
        (
            self.learners.load(Ordering::Relaxed),
            self.synced_followers.load(Ordering::Relaxed),
            self.synced_observers.load(Ordering::Relaxed),
        )
    }
    pub fn set_quorum_size(&self, voters: u64) {
        self.quorum_size.store(voters, Ordering::Relaxed);
    }
    pub fn quorum_size(&self) -> u64 {
        self.quorum_size.load(Ordering::Relaxed)
    }
    /// An ensemble member's view of ZAB: the leader it serves under (None
    /// while electing) and its phase.
    pub fn set_zab_view(&self, leader_sid: Option<u64>, phase: crate::zab::ZabPhase) {
        self.leader_sid.store(leader_sid.unwrap_or(0), Ordering::Relaxed);
        self.zab_phase.store(phase as u8, Ordering::Relaxed);
    }
    pub fn leader_sid(&self) -> Option<u64> {
        Some(self.leader_sid.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }
    pub fn zab_phase(&self) -> crate::zab::ZabPhase {
        use crate::zab::ZabPhase;
        match self.zab_phase.load(Ordering::Relaxed) {
            x if x == ZabPhase::Discovery as u8 => ZabPhase::Discovery,
            x if x == ZabPhase::Synchronization as u8 => ZabPhase::Synchronization,
            x if x == ZabPhase::Broadcast as u8 => ZabPhase::Broadcast,
            _ => ZabPhase::Election,
        }
    }
    pub fn set_mode(&self, mode: ServerMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }
    pub fn mode(&self) -> ServerMode {
        ServerMode::from_u8(self.mode.load(Ordering::Relaxed))
    }
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
}
