//! How a leader brings one learner up to date after ACKEPOCH: the pure
//! decision Apache's `LearnerHandler.syncFollower` and
//! `queueCommittedProposals` make, without the queueing.
//!
//! Inputs: the learner's last logged zxid (from ACKEPOCH), what the leader
//! holds (its last processed zxid, the in-memory window of recently committed
//! proposals, what its on-disk txn log can replay: [`LeaderHistory`]) and the
//! policy ([`SyncPolicy`]: Apache's `zookeeper.snapshotSizeFactor` rule and
//! its test-only forced snapshot). Output: a [`SyncDecision`], the packet to
//! send first (DIFF, TRUNC or SNAP), which committed proposals follow it,
//! the zxid forwarding resumes from, and why.
//!
//! The order of the checks is Apache's, because it decides ties:
//! 1. forced snapshot;
//! 2. learner at the leader's last processed zxid: empty DIFF;
//! 3. learner above the window's newest zxid (and not at an epoch start,
//!    `counter == 0`, which never names a txn): TRUNC to that newest zxid;
//! 4. learner inside the window: DIFF from it, or, if its zxid is not in
//!    the window, TRUNC to the window's previous zxid then the proposals
//!    after it, but only when the window's next zxid is in the learner's
//!    epoch (a TRUNC never crosses an epoch boundary: Apache sends a
//!    snapshot instead);
//! 5. learner below the window: replay from the on-disk log (then the
//!    window) if the log starts at or before the learner's zxid, what a
//!    replay reads is not larger than `snapshot size × snapshotSizeFactor`,
//!    the log holds the learner's zxid (or it is an epoch start; or TRUNC
//!    then replay, by the window's rule, when it is absent but the log's
//!    next txn is in its epoch) and the log reaches the window's first txn;
//!    otherwise SNAP.
//!
//! [`DiskLogIndex`] is the leader's view of its on-disk log that the
//! driver keeps current (segments of consecutive zxids with their bytes).

/// The in-memory committed-proposal window (Apache's committedLog), by zxid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidWindow {
    pub min: i64,
    pub max: i64,
}

/// Where a zxid sits among the window's committed proposals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Present,
    /// Not a committed proposal; the committed zxids either side of it.
    Absent {
        previous: Option<i64>,
        next: Option<i64>,
    },
}

/// What the leader can answer about its own history. Implemented by the
/// leader's state (and by scripted fakes in tests); all answers are about
/// committed txns only.
pub trait LeaderHistory {
    /// The leader's data tree's last processed zxid.
    fn last_processed_zxid(&self) -> i64;
    /// Min and max zxid of the in-memory committed window; `None` if empty.
    fn committed_window(&self) -> Option<ZxidWindow>;
    /// Asked only for `min <= zxid <= max` of the window.
    fn window_lookup(&self, zxid: i64) -> Lookup;
    /// Whether the on-disk txn log holds a txn with exactly this zxid.
    fn disk_log_contains(&self, zxid: i64) -> bool;
    /// Whether the on-disk log's oldest txn is at or before `zxid` (Apache
    /// reads the log from the file holding `zxid`, and gives up when that
    /// file's first txn is after it). Default: it holds `zxid` itself.
    fn disk_log_reaches_back_to(&self, zxid: i64) -> bool {
        self.disk_log_contains(zxid)
    }
    /// For a zxid the log does not hold, inside its range: its previous
    /// and next txns on disk. Default: unknown, which plans a snapshot.
    fn disk_log_neighbours(&self, _zxid: i64) -> (Option<i64>, Option<i64>) {
        (None, None)
    }
    /// Bytes of txn log a replay from `zxid` reads (Apache: the sizes of the
    /// log files from the one holding `zxid` to the newest; zoocore: the
    /// records of the index segments from the one holding `zxid`).
    fn disk_log_bytes_from(&self, zxid: i64) -> u64;
}

/// How coarse [`DiskLogIndex`] is: a segment is closed once its records
/// reach this size, so `bytes_from` over-counts by at most this much.
pub const DISK_LOG_SEGMENT_MAX_BYTES: u64 = 1 << 20;

/// Segments the index keeps (64 GiB of log at full segments); past it the
/// oldest are forgotten, which only makes a learner that far behind get a
/// snapshot.
pub const DISK_LOG_INDEX_MAX_SEGMENTS: usize = 65_536;

/// A run of txns on disk with consecutive zxids inside one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLogSegment {
    pub first_zxid: i64,
    pub last_zxid: i64,
    /// Bytes of the runs' log records (header + txn).
    pub bytes: u64,
}

/// What the leader's on-disk txn log holds, as its driver reports it: the
/// zxids the log can replay without a gap up to its newest durable txn, how
/// many bytes a replay from a zxid reads, and the size of the newest
/// snapshot (for `snapshotSizeFactor`). Sans-IO: the driver scans its log
/// files when it starts leading, reports each durable append, and reports
/// files purged and snapshots written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskLogIndex {
    /// Oldest first; each segment's first zxid follows the previous one's
    /// last (`log_format::zxid_follows`), segments never span an epoch.
    segments: std::collections::VecDeque<DiskLogSegment>,
    /// Size of the newest snapshot file, in bytes (0: none).
    pub latest_snapshot_bytes: u64,
}

impl DiskLogIndex {
    pub fn new(latest_snapshot_bytes: u64) -> DiskLogIndex {
        DiskLogIndex { segments: Default::default(), latest_snapshot_bytes }
    }

    /// The index of the log files' bytes, oldest file first, as the driver
    /// read them: (name, contents or the read error). A file that does not
    /// scan (unreadable, corrupt) is a gap: only what follows it is
    /// indexed. So is a snapshot (`snapshot_zxids`, any order) that falls
    /// strictly between two consecutive logged txns: the log does not hold
    /// its zxid, so its state came from elsewhere (a SNAP from a leader,
    /// whose txns before it this log never had), and a replay across it
    /// would skip them even when the zxids look consecutive (counter 1 of a
    /// later epoch); the simulator's seed 754 (5 servers, `--snap-count 20`)
    /// found a DIFF from disk that skipped a whole epoch so. Also returns
    /// the files not used, with why, for the driver to report. Production
    /// runs it over the real files when it starts leading, the simulator
    /// over its simulated ones.
    pub fn from_log_files<T: AsRef<[u8]>>(
        latest_snapshot_bytes: u64,
        snapshot_zxids: &[i64],
        files: impl IntoIterator<Item = (String, Result<T, String>)>,
    ) -> (DiskLogIndex, Vec<(String, String)>) {
        use crate::storage::log_format::{decode_file_header, record_bytes, scan_log};
        let mut snapshots = snapshot_zxids.to_vec();
        snapshots.sort_unstable();
        let mut index = DiskLogIndex::new(latest_snapshot_bytes);
        let mut unusable = Vec::new();
        for (name, contents) in files {
            let scanned = contents.and_then(|bytes| {
                let bytes = bytes.as_ref();
                let header = decode_file_header(bytes).map_err(|e| e.to_string())?;
                let scan = scan_log(bytes, header.block_size).map_err(|e| e.to_string())?;
                Ok(scan.records.iter().map(|r| (r.zxid, record_bytes(r.payload.len()))).collect::<Vec<_>>())
            });
            match scanned {
                Ok(records) => {
                    for (zxid, bytes) in records {
                        if let Some(previous) = index.newest() {
                            let between = snapshots.partition_point(|s| *s <= previous);
                            if snapshots.get(between).is_some_and(|s| *s < zxid) {
                                index = DiskLogIndex::new(latest_snapshot_bytes);
                            }
                        }
                        index.logged(zxid, bytes);
                    }
                }
                Err(e) => {
                    unusable.push((name, e));
                    index = DiskLogIndex::new(latest_snapshot_bytes);
                }
            }
        }
        (index, unusable)
    }

    /// One more durable txn of `bytes` bytes. A zxid that does not follow
    /// the newest one (a gap: the log was cut or files are missing) starts
    /// the index afresh, as nothing before the gap can be replayed past it.
    pub fn logged(&mut self, zxid: i64, bytes: u64) {
        if let Some(last) = self.segments.back_mut() {
            if zxid <= last.last_zxid {
                return; // already indexed (a replayed or repeated report)
            }
            let same_run = zxid == last.last_zxid + 1
                && crate::zab::packets::epoch_of(zxid) == crate::zab::packets::epoch_of(last.last_zxid);
            if same_run && last.bytes < DISK_LOG_SEGMENT_MAX_BYTES {
                last.last_zxid = zxid;
                last.bytes += bytes;
                return;
            }
            if !crate::storage::log_format::zxid_follows(last.last_zxid, zxid) {
                self.segments.clear();
            }
        }
        self.segments.push_back(DiskLogSegment { first_zxid: zxid, last_zxid: zxid, bytes });
        while self.segments.len() > DISK_LOG_INDEX_MAX_SEGMENTS {
            self.segments.pop_front();
        }
    }

    /// The log files now start at `oldest_zxid` (older ones were purged);
    /// `None`: there are no log files at all.
    pub fn forget_below(&mut self, oldest_zxid: Option<i64>) {
        let Some(oldest) = oldest_zxid else {
            self.segments.clear();
            return;
        };
        while self.segments.front().is_some_and(|s| s.last_zxid < oldest) {
            self.segments.pop_front();
        }
        if let Some(front) = self.segments.front_mut() {
            // Its bytes stay as they were: an over-estimate, never an under one.
            front.first_zxid = front.first_zxid.max(oldest);
        }
    }

    pub fn contains(&self, zxid: i64) -> bool {
        self.lookup(zxid) == Lookup::Present
    }

    pub fn oldest(&self) -> Option<i64> {
        self.segments.front().map(|s| s.first_zxid)
    }

    pub fn newest(&self) -> Option<i64> {
        self.segments.back().map(|s| s.last_zxid)
    }

    pub fn segments(&self) -> impl Iterator<Item = &DiskLogSegment> {
        self.segments.iter()
    }

    /// Where `zxid` sits among the indexed txns.
    pub fn lookup(&self, zxid: i64) -> Lookup {
        // The first segment ending at or after zxid.
        let i = self.segments.partition_point(|s| s.last_zxid < zxid);
        match self.segments.get(i) {
            Some(s) if s.first_zxid <= zxid => Lookup::Present,
            next => Lookup::Absent {
                previous: i.checked_sub(1).and_then(|p| self.segments.get(p)).map(|s| s.last_zxid),
                next: next.map(|s| s.first_zxid),
            },
        }
    }

    /// Bytes of the segments from the one holding (or following) `zxid`.
    pub fn bytes_from(&self, zxid: i64) -> u64 {
        let i = self.segments.partition_point(|s| s.last_zxid < zxid);
        self.segments.iter().skip(i).map(|s| s.bytes).sum()
    }
}

/// The leader's sync policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncPolicy {
    /// Apache's `zookeeper.snapshotSizeFactor` (default
    /// [`DEFAULT_SNAPSHOT_SIZE_FACTOR`]): replay from disk only while the log
    /// to read is at most this fraction of the newest snapshot's size.
    /// Negative turns replay from disk off. As in Apache, a limit that
    /// truncates to 0 bytes (factor 0, or no snapshot yet) means no limit.
    pub snapshot_size_factor: f64,
    /// Size of the newest snapshot file, in bytes (0 if there is none).
    pub latest_snapshot_bytes: u64,
    /// Always send a snapshot (Apache's `forceSnapSync`, for tests).
    pub force_snap: bool,
}

/// Apache's default `zookeeper.snapshotSizeFactor`.
pub const DEFAULT_SNAPSHOT_SIZE_FACTOR: f64 = 0.33;

impl SyncPolicy {
    pub fn with_snapshot_bytes(latest_snapshot_bytes: u64) -> Self {
        SyncPolicy { snapshot_size_factor: DEFAULT_SNAPSHOT_SIZE_FACTOR, latest_snapshot_bytes, force_snap: false }
    }

    /// `None`: replay from disk disabled; `Some(0)`: unlimited.
    fn disk_replay_limit_bytes(&self) -> Option<u64> {
        if self.snapshot_size_factor < 0.0 {
            return None;
        }
        // Java's (long) cast truncates toward zero and saturates; so does `as`.
        Some((self.latest_snapshot_bytes as f64 * self.snapshot_size_factor) as u64)
    }
}

/// Where a DIFF's proposals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffSource {
    /// No proposals follow: the learner is already in sync.
    Nothing,
    CommittedWindow,
    /// The on-disk log up to the window's first zxid, then the window.
    DiskLogThenWindow,
}

/// The first packet the leader sends and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPlan {
    /// DIFF with zxid `packet_zxid`, then PROPOSAL + COMMIT for every
    /// committed txn with `from < zxid <= through`.
    Diff { from: i64, through: i64, packet_zxid: i64, source: DiffSource },
    /// TRUNC to `truncate_to`, then PROPOSAL + COMMIT for every committed txn
    /// with `diff_from < zxid <= through` (no DIFF packet: Apache sends the
    /// proposals straight after the TRUNC). `diff_from == truncate_to`: the
    /// learner keeps exactly the leader's history up to there.
    TruncThenDiff { truncate_to: i64, diff_from: i64, through: i64 },
    /// TRUNC to `to`; nothing follows from the committed history.
    Trunc { to: i64 },
    /// SNAP with zxid `zxid` (the leader's last processed zxid), then the
    /// snapshot stream.
    Snap { zxid: i64 },
}

/// Why the plan was chosen, for the log line and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncReason {
    ForcedSnap,
    /// The learner is at the leader's last processed zxid.
    InSync,
    /// The learner has txns past the window's newest one.
    LearnerAhead,
    /// The learner's zxid is a committed proposal in the window (or an
    /// epoch-start zxid inside its range).
    WithinWindow,
    /// The learner's zxid is inside the window's range but not in it; the
    /// window's next txn is in the same epoch.
    DivergentWithinEpoch,
    /// As above, but the window's next txn is from a later epoch, and a
    /// TRUNC may not cross an epoch boundary.
    DivergentAcrossEpochs,
    /// An epoch-start zxid above the window: no TRUNC target, no DIFF base.
    EpochStartAboveWindow,
    /// Below the window; the disk log holds the learner's zxid (or, for an
    /// epoch-start zxid, a txn before it) and reaches the window.
    FromDiskLog,
    /// Below the window; the learner's zxid is inside the disk log's range
    /// but not in it, and the log's next txn is in the same epoch: TRUNC to
    /// the log's previous txn, then the txns after it from disk.
    DivergentWithinEpochInDiskLog,
    /// Below the window, and `snapshot_size_factor` is negative.
    DiskReplayDisabled,
    /// Below the window, and the log to replay is too large.
    DiskLogTooLarge {
        log_bytes: u64,
        limit_bytes: u64,
    },
    /// Below the window, and the disk log starts after the learner's zxid
    /// (or holds nothing; a fresh learner's zxid 0 is before every log).
    NotInDiskLog,
    /// Below the window; the disk log holds the learner's zxid but not the
    /// window's first one, so replay would leave a hole.
    DiskLogGap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncDecision {
    pub plan: SyncPlan,
    pub reason: SyncReason,
}

impl SyncDecision {
    /// The zxid the learner holds once the plan's packets are applied: the
    /// leader forwards its outstanding proposals after this one (Apache's
    /// `startForwarding(handler, currentZxid)`).
    pub fn forward_from(&self) -> i64 {
        match self.plan {
            SyncPlan::Diff { through, .. } => through,
            SyncPlan::TruncThenDiff { through, .. } => through,
            SyncPlan::Trunc { to } => to,
            SyncPlan::Snap { zxid } => zxid,
        }
    }
}

/// A zxid whose counter is 0 marks an epoch start; no txn carries it.
fn is_epoch_start(zxid: i64) -> bool {
    crate::zab::packets::counter_of(zxid) == 0
}

/// Decides how to sync a learner whose last logged zxid is `peer_last_zxid`.
pub fn plan_sync(peer_last_zxid: i64, leader: &impl LeaderHistory, policy: &SyncPolicy) -> SyncDecision {
    let peer = peer_last_zxid;
    let last_processed = leader.last_processed_zxid();
    let snap = |reason| SyncDecision { plan: SyncPlan::Snap { zxid: last_processed }, reason };
    // An empty window behaves as a window holding only the last processed
    // zxid; that folds the empty case into the ones below, as Apache does.
    let window = leader.committed_window().unwrap_or(ZxidWindow { min: last_processed, max: last_processed });

    if policy.force_snap {
        return snap(SyncReason::ForcedSnap);
    }
    if peer == last_processed {
        return SyncDecision {
            plan: SyncPlan::Diff { from: peer, through: peer, packet_zxid: peer, source: DiffSource::Nothing },
            reason: SyncReason::InSync,
        };
    }
    if peer > window.max {
        if is_epoch_start(peer) {
            return snap(SyncReason::EpochStartAboveWindow);
        }
        return SyncDecision { plan: SyncPlan::Trunc { to: window.max }, reason: SyncReason::LearnerAhead };
    }
    let diff = |source, reason| SyncDecision {
        plan: SyncPlan::Diff { from: peer, through: window.max, packet_zxid: window.max, source },
        reason,
    };
    if peer >= window.min {
        // An empty window here means min == max == last_processed != peer,
        // so the window is real and window_lookup may be asked.
        return match leader.window_lookup(peer) {
            Lookup::Present => diff(DiffSource::CommittedWindow, SyncReason::WithinWindow),
            Lookup::Absent { .. } if is_epoch_start(peer) => {
                diff(DiffSource::CommittedWindow, SyncReason::WithinWindow)
            }
            Lookup::Absent { previous: Some(previous), next: Some(next) }
                if crate::zab::packets::epoch_of(next) == crate::zab::packets::epoch_of(peer) =>
            {
                SyncDecision {
                    plan: SyncPlan::TruncThenDiff { truncate_to: previous, diff_from: previous, through: window.max },
                    reason: SyncReason::DivergentWithinEpoch,
                }
            }
            // Next txn from a later epoch; or no previous (Apache would send
            // TRUNC to -1, which only arises from an inconsistent window).
            Lookup::Absent { .. } => snap(SyncReason::DivergentAcrossEpochs),
        };
    }

    // Below the window: the on-disk log is the only way short of a snapshot.
    let Some(limit_bytes) = policy.disk_replay_limit_bytes() else {
        return snap(SyncReason::DiskReplayDisabled);
    };
    // Apache reads the log from the file holding the learner's zxid: a log
    // whose oldest txn is after it says nothing about the learner's history.
    if !leader.disk_log_reaches_back_to(peer) {
        return snap(SyncReason::NotInDiskLog);
    }
    let log_bytes = leader.disk_log_bytes_from(peer);
    if limit_bytes > 0 && log_bytes > limit_bytes {
        return snap(SyncReason::DiskLogTooLarge { log_bytes, limit_bytes });
    }
    // queueCommittedProposals over the log, as over the window above.
    let decision = if leader.disk_log_contains(peer) || is_epoch_start(peer) {
        diff(DiffSource::DiskLogThenWindow, SyncReason::FromDiskLog)
    } else {
        match leader.disk_log_neighbours(peer) {
            (Some(previous), Some(next))
                if crate::zab::packets::epoch_of(next) == crate::zab::packets::epoch_of(peer) =>
            {
                SyncDecision {
                    plan: SyncPlan::TruncThenDiff { truncate_to: previous, diff_from: previous, through: window.max },
                    reason: SyncReason::DivergentWithinEpochInDiskLog,
                }
            }
            // Apache: "Cannot send TRUNC to peer sid ... different epoch",
            // then the gap check sends a snapshot.
            _ => return snap(SyncReason::DivergentAcrossEpochs),
        }
    };
    // The log must reach the window's first txn, or replay leaves a hole
    // (Apache: "Detected gap between end of txnlog and start of committedLog").
    if !leader.disk_log_contains(window.min) {
        return snap(SyncReason::DiskLogGap);
    }
    decision
}

/// [`LeaderHistory::window_lookup`] over an ascending slice of zxids.
pub fn lookup_sorted(zxids: &[i64], zxid: i64) -> Lookup {
    match zxids.binary_search(&zxid) {
        Ok(_) => Lookup::Present,
        Err(i) => Lookup::Absent {
            previous: i.checked_sub(1).and_then(|p| zxids.get(p).copied()),
            next: zxids.get(i).copied(),
        },
    }
}

#[cfg(test)]
mod tests {
    //! One scripted scenario per situation `syncFollower` handles. Zxids are
    //! written `z(epoch, counter)`.
    use super::*;
    use crate::zab::packets::make_zxid as z;

    /// A leader: its committed window, its disk log (zxid and the bytes a
    /// replay from it reads) and its last processed zxid.
    struct Leader {
        last_processed: i64,
        window: Vec<i64>,
        disk: Vec<(i64, u64)>,
    }

    impl Leader {
        /// A leader whose disk log holds `disk` and whose window holds the
        /// last `window_len` of them; last processed = the newest.
        fn with_log(disk: &[i64], window_len: usize) -> Leader {
            let n = disk.len();
            Leader {
                last_processed: disk.last().copied().unwrap_or(0),
                window: disk[n - window_len.min(n)..].to_vec(),
                // Each txn is 100 bytes on disk; a replay from zxid i reads
                // everything from i on.
                disk: disk.iter().enumerate().map(|(i, zx)| (*zx, 100 * (n - i) as u64)).collect(),
            }
        }
    }

    impl LeaderHistory for Leader {
        fn last_processed_zxid(&self) -> i64 {
            self.last_processed
        }
        fn committed_window(&self) -> Option<ZxidWindow> {
            Some(ZxidWindow { min: *self.window.first()?, max: *self.window.last()? })
        }
        fn window_lookup(&self, zxid: i64) -> Lookup {
            let w = self.committed_window().expect("asked about an empty window");
            assert!(w.min <= zxid && zxid <= w.max, "window_lookup outside the window");
            lookup_sorted(&self.window, zxid)
        }
        fn disk_log_contains(&self, zxid: i64) -> bool {
            self.disk.iter().any(|(zx, _)| *zx == zxid)
        }
        fn disk_log_reaches_back_to(&self, zxid: i64) -> bool {
            self.disk.first().is_some_and(|(oldest, _)| *oldest <= zxid)
        }
        fn disk_log_neighbours(&self, zxid: i64) -> (Option<i64>, Option<i64>) {
            let zxids: Vec<i64> = self.disk.iter().map(|(zx, _)| *zx).collect();
            match lookup_sorted(&zxids, zxid) {
                Lookup::Present => panic!("asked for the neighbours of a txn the log holds"),
                Lookup::Absent { previous, next } => (previous, next),
            }
        }
        fn disk_log_bytes_from(&self, zxid: i64) -> u64 {
            self.disk.iter().find(|(zx, _)| *zx == zxid).map_or(0, |(_, b)| *b)
        }
    }

    fn policy() -> SyncPolicy {
        SyncPolicy::with_snapshot_bytes(10_000)
    }

    fn epoch1(counters: std::ops::RangeInclusive<i64>) -> Vec<i64> {
        counters.map(|c| z(1, c)).collect()
    }

    #[test]
    fn learner_up_to_date_gets_an_empty_diff_at_its_own_zxid() {
        let leader = Leader::with_log(&epoch1(1..=10), 5);
        let d = plan_sync(z(1, 10), &leader, &policy());
        assert_eq!(
            d.plan,
            SyncPlan::Diff { from: z(1, 10), through: z(1, 10), packet_zxid: z(1, 10), source: DiffSource::Nothing }
        );
        assert_eq!(d.reason, SyncReason::InSync);
        assert_eq!(d.forward_from(), z(1, 10));
    }

    #[test]
    fn learner_behind_within_the_window_gets_a_diff_from_memory() {
        let leader = Leader::with_log(&epoch1(1..=10), 5);
        let d = plan_sync(z(1, 7), &leader, &policy());
        assert_eq!(
            d.plan,
            SyncPlan::Diff {
                from: z(1, 7),
                through: z(1, 10),
                packet_zxid: z(1, 10),
                source: DiffSource::CommittedWindow
            }
        );
        assert_eq!(d.reason, SyncReason::WithinWindow);
        // At the window's oldest entry exactly: still from memory.
        assert_eq!(plan_sync(z(1, 6), &leader, &policy()).reason, SyncReason::WithinWindow);
    }

    #[test]
    fn learner_ahead_of_the_leader_is_truncated_to_the_newest_committed() {
        let leader = Leader::with_log(&epoch1(1..=10), 5);
        let d = plan_sync(z(1, 12), &leader, &policy());
        assert_eq!(d.plan, SyncPlan::Trunc { to: z(1, 10) });
        assert_eq!(d.reason, SyncReason::LearnerAhead);
        assert_eq!(d.forward_from(), z(1, 10));
        // Ahead from an old leader's later epoch: Apache still TRUNCs (this
        // check has no epoch rule).
        let d = plan_sync(z(2, 1), &leader, &policy());
        assert_eq!(d.plan, SyncPlan::Trunc { to: z(1, 10) });
    }

    #[test]
    fn divergent_txn_in_the_same_epoch_truncates_to_the_last_common_zxid_then_diffs() {
        // The leader's history skips z(1,5): the learner logged a txn there
        // that was never committed.
        let mut log = epoch1(1..=4);
        log.extend(epoch1(6..=9));
        let leader = Leader::with_log(&log, 8);
        let d = plan_sync(z(1, 5), &leader, &policy());
        assert_eq!(d.plan, SyncPlan::TruncThenDiff { truncate_to: z(1, 4), diff_from: z(1, 4), through: z(1, 9) });
        assert_eq!(d.reason, SyncReason::DivergentWithinEpoch);
        assert_eq!(d.forward_from(), z(1, 9));
    }

    #[test]
    fn divergent_uncommitted_txns_from_an_old_epoch_get_a_snapshot_not_a_cross_epoch_trunc() {
        // Epoch 1's leader logged z(1,5)..z(1,7) on this learner and died;
        // the new leader committed up to z(1,4), then epoch 2's txns.
        let mut log = epoch1(1..=4);
        log.extend([z(2, 1), z(2, 2), z(2, 3)]);
        let leader = Leader::with_log(&log, 7);
        let d = plan_sync(z(1, 7), &leader, &policy());
        // Truncating to z(1,4) would cross into epoch 2's history, which
        // Apache refuses ("the learner will crash"): it sends a snapshot.
        assert_eq!(d.plan, SyncPlan::Snap { zxid: z(2, 3) });
        assert_eq!(d.reason, SyncReason::DivergentAcrossEpochs);
        assert_eq!(d.forward_from(), z(2, 3));
    }

    #[test]
    fn learner_at_an_epoch_start_inside_the_window_gets_a_diff() {
        // The learner synced with this leader (zxid z(2,0), no txn) and
        // reconnects after the leader committed z(2,1..3).
        let mut log = epoch1(1..=4);
        log.extend([z(2, 1), z(2, 2), z(2, 3)]);
        let leader = Leader::with_log(&log, 7);
        let d = plan_sync(z(2, 0), &leader, &policy());
        assert_eq!(
            d.plan,
            SyncPlan::Diff {
                from: z(2, 0),
                through: z(2, 3),
                packet_zxid: z(2, 3),
                source: DiffSource::CommittedWindow
            }
        );
    }

    #[test]
    fn epoch_start_above_the_window_gets_a_snapshot_not_a_trunc() {
        let leader = Leader::with_log(&epoch1(1..=10), 5);
        let d = plan_sync(z(3, 0), &leader, &policy());
        assert_eq!(d.plan, SyncPlan::Snap { zxid: z(1, 10) });
        assert_eq!(d.reason, SyncReason::EpochStartAboveWindow);
    }

    #[test]
    fn learner_behind_the_window_but_in_the_disk_log_gets_a_diff_from_disk() {
        let leader = Leader::with_log(&epoch1(1..=100), 10);
        let d = plan_sync(z(1, 80), &leader, &policy());
        assert_eq!(
            d.plan,
            SyncPlan::Diff {
                from: z(1, 80),
                through: z(1, 100),
                packet_zxid: z(1, 100),
                source: DiffSource::DiskLogThenWindow
            }
        );
        assert_eq!(d.reason, SyncReason::FromDiskLog);
    }

    #[test]
    fn learner_too_far_behind_gets_a_snapshot() {
        let leader = Leader::with_log(&epoch1(1..=100), 10);
        // 61 txns × 100 B = 6100 B to replay > 10 000 B × 0.33.
        let d = plan_sync(z(1, 40), &leader, &policy());
        assert_eq!(d.plan, SyncPlan::Snap { zxid: z(1, 100) });
        assert_eq!(d.reason, SyncReason::DiskLogTooLarge { log_bytes: 6100, limit_bytes: 3300 });
        // The log was purged below z(1,50): the zxid is not on disk at all.
        let mut purged = Leader::with_log(&epoch1(1..=100), 10);
        purged.disk.retain(|(zx, _)| *zx >= z(1, 50));
        assert_eq!(plan_sync(z(1, 40), &purged, &policy()).reason, SyncReason::NotInDiskLog);
        // Replay from disk switched off.
        let off = SyncPolicy { snapshot_size_factor: -1.0, ..policy() };
        assert_eq!(plan_sync(z(1, 80), &leader, &off).reason, SyncReason::DiskReplayDisabled);
        // Factor 0 (or no snapshot yet) means no size limit, as in Apache.
        let unlimited = SyncPolicy { snapshot_size_factor: 0.0, ..policy() };
        assert_eq!(plan_sync(z(1, 40), &leader, &unlimited).reason, SyncReason::FromDiskLog);
    }

    #[test]
    fn disk_log_that_stops_short_of_the_window_means_a_snapshot() {
        let mut leader = Leader::with_log(&epoch1(1..=100), 10);
        // The log files between z(1,60) and the window (z(1,91)..) are gone.
        leader.disk.retain(|(zx, _)| *zx <= z(1, 60));
        let big_snapshot = SyncPolicy::with_snapshot_bytes(1_000_000);
        let d = plan_sync(z(1, 55), &leader, &big_snapshot);
        assert_eq!(d.reason, SyncReason::DiskLogGap);
        assert!(matches!(d.plan, SyncPlan::Snap { .. }));
    }

    #[test]
    fn fresh_learner_at_zxid_zero_against_a_leader_with_data_gets_a_snapshot() {
        let leader = Leader::with_log(&epoch1(1..=10), 10);
        let d = plan_sync(0, &leader, &policy());
        // Zxid 0 names no txn, so no log can serve a DIFF from it.
        assert_eq!(d.plan, SyncPlan::Snap { zxid: z(1, 10) });
        assert_eq!(d.reason, SyncReason::NotInDiskLog);
    }

    #[test]
    fn leader_with_nothing_sends_an_empty_diff_to_a_fresh_learner() {
        let leader = Leader { last_processed: 0, window: vec![], disk: vec![] };
        let d = plan_sync(0, &leader, &policy());
        assert_eq!(d.plan, SyncPlan::Diff { from: 0, through: 0, packet_zxid: 0, source: DiffSource::Nothing });
    }

    #[test]
    fn empty_window_behaves_as_a_window_of_the_last_processed_zxid() {
        // A leader that restarted from a snapshot at z(1,10) with no log.
        let leader = Leader { last_processed: z(1, 10), window: vec![], disk: vec![] };
        assert_eq!(plan_sync(z(1, 12), &leader, &policy()).plan, SyncPlan::Trunc { to: z(1, 10) });
        assert_eq!(plan_sync(z(1, 3), &leader, &policy()).reason, SyncReason::NotInDiskLog);
        // A new leader at z(2,0) with no txns yet, learner from epoch 1.
        let fresh_epoch = Leader { last_processed: z(2, 0), window: vec![], disk: vec![] };
        assert!(matches!(plan_sync(z(1, 10), &fresh_epoch, &policy()).plan, SyncPlan::Snap { .. }));
    }

    #[test]
    fn forced_snapshot_wins_over_everything() {
        let leader = Leader::with_log(&epoch1(1..=10), 5);
        let forced = SyncPolicy { force_snap: true, ..policy() };
        assert_eq!(plan_sync(z(1, 10), &leader, &forced).reason, SyncReason::ForcedSnap);
    }

    #[test]
    fn epoch_start_below_the_window_gets_a_diff_from_disk() {
        // The learner was synced to z(2,0) by epoch 2's leader, which then
        // committed z(2,1..=100); the window holds only the last 10.
        let mut log = epoch1(1..=50);
        log.extend((1..=100).map(|c| z(2, c)));
        let leader = Leader::with_log(&log, 10);
        let d = plan_sync(z(2, 0), &leader, &SyncPolicy::with_snapshot_bytes(1_000_000));
        assert_eq!(
            d.plan,
            SyncPlan::Diff {
                from: z(2, 0),
                through: z(2, 100),
                packet_zxid: z(2, 100),
                source: DiffSource::DiskLogThenWindow
            }
        );
        assert_eq!(d.reason, SyncReason::FromDiskLog);
        // An epoch start before the whole log: Apache finds no txn at or
        // before it on disk and sends a snapshot.
        let later = Leader::with_log(&log[50..], 10);
        assert_eq!(plan_sync(z(2, 0), &later, &policy()).reason, SyncReason::NotInDiskLog);
    }

    #[test]
    fn divergent_txn_below_the_window_in_the_same_epoch_truncates_then_diffs_from_disk() {
        // The leader's history skips z(1,5) (never committed), the learner
        // logged it; the window holds only the last 3.
        let mut log = epoch1(1..=4);
        log.extend(epoch1(6..=20));
        let leader = Leader::with_log(&log, 3);
        let d = plan_sync(z(1, 5), &leader, &SyncPolicy::with_snapshot_bytes(1_000_000));
        assert_eq!(d.plan, SyncPlan::TruncThenDiff { truncate_to: z(1, 4), diff_from: z(1, 4), through: z(1, 20) });
        assert_eq!(d.reason, SyncReason::DivergentWithinEpochInDiskLog);
        assert_eq!(d.forward_from(), z(1, 20));
    }

    #[test]
    fn divergent_txns_of_an_old_epoch_below_the_window_get_a_snapshot() {
        // The learner has z(1,5..=7), which epoch 1's leader never got
        // committed; the leader's log goes z(1,1..=4) then epoch 2.
        let mut log = epoch1(1..=4);
        log.extend((1..=30).map(|c| z(2, c)));
        let leader = Leader::with_log(&log, 5);
        let d = plan_sync(z(1, 7), &leader, &SyncPolicy::with_snapshot_bytes(1_000_000));
        assert_eq!(d.plan, SyncPlan::Snap { zxid: z(2, 30) });
        assert_eq!(d.reason, SyncReason::DivergentAcrossEpochs);
    }

    #[test]
    fn disk_log_index_keeps_runs_and_restarts_at_a_gap() {
        let mut index = DiskLogIndex::new(0);
        for c in 1..=10 {
            index.logged(z(1, c), 100);
        }
        index.logged(z(3, 1), 100);
        index.logged(z(3, 2), 100);
        assert_eq!(index.oldest(), Some(z(1, 1)));
        assert_eq!(index.newest(), Some(z(3, 2)));
        assert_eq!(index.segments().count(), 2, "a new epoch opens a segment");
        assert_eq!(index.lookup(z(1, 4)), Lookup::Present);
        assert_eq!(index.lookup(z(3, 2)), Lookup::Present);
        assert_eq!(index.lookup(z(1, 11)), Lookup::Absent { previous: Some(z(1, 10)), next: Some(z(3, 1)) });
        assert_eq!(index.lookup(z(3, 0)), Lookup::Absent { previous: Some(z(1, 10)), next: Some(z(3, 1)) });
        assert_eq!(index.lookup(z(3, 3)), Lookup::Absent { previous: Some(z(3, 2)), next: None });
        assert_eq!(index.bytes_from(z(1, 4)), 1200, "the whole segment holding the zxid counts");
        assert_eq!(index.bytes_from(z(3, 1)), 200);
        assert_eq!(index.bytes_from(z(3, 9)), 0);
        // A repeated report changes nothing; a gap starts afresh.
        index.logged(z(3, 2), 100);
        assert_eq!(index.bytes_from(z(1, 1)), 1200);
        index.logged(z(3, 5), 100);
        assert_eq!((index.oldest(), index.newest()), (Some(z(3, 5)), Some(z(3, 5))));
    }

    #[test]
    fn disk_log_index_closes_full_segments_and_forgets_purged_files() {
        let mut index = DiskLogIndex::new(0);
        let txn_bytes = DISK_LOG_SEGMENT_MAX_BYTES / 4;
        for c in 1..=10 {
            index.logged(z(1, c), txn_bytes);
        }
        // Segments of 4, 4 and 2 txns.
        assert_eq!(index.segments().count(), 3);
        assert_eq!(index.bytes_from(z(1, 10)), 2 * txn_bytes);
        assert_eq!(index.bytes_from(z(1, 5)), 6 * txn_bytes);
        // Files before z(1,6) were purged: z(1,5) is gone, z(1,6) stays.
        index.forget_below(Some(z(1, 6)));
        assert_eq!(index.oldest(), Some(z(1, 6)));
        assert_eq!(index.lookup(z(1, 6)), Lookup::Present);
        assert_eq!(index.bytes_from(z(1, 6)), 6 * txn_bytes, "an over-estimate, never an under one");
        index.forget_below(None);
        assert_eq!(index.oldest(), None);
    }

    #[test]
    fn lookup_sorted_names_both_neighbours() {
        let zx = [z(1, 1), z(1, 3), z(2, 1)];
        assert_eq!(lookup_sorted(&zx, z(1, 3)), Lookup::Present);
        assert_eq!(lookup_sorted(&zx, z(1, 2)), Lookup::Absent { previous: Some(z(1, 1)), next: Some(z(1, 3)) });
        assert_eq!(lookup_sorted(&zx, z(1, 4)), Lookup::Absent { previous: Some(z(1, 3)), next: Some(z(2, 1)) });
        assert_eq!(lookup_sorted(&zx, 0), Lookup::Absent { previous: None, next: Some(z(1, 1)) });
        assert_eq!(lookup_sorted(&zx, z(3, 0)), Lookup::Absent { previous: Some(z(2, 1)), next: None });
    }
}
