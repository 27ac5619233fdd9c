//! Which snapshot and log files autopurge removes (`purge_old_files` in
//! production, `SimDisk::purge` in the simulator): a decision over the
//! zxids in the files' names, no IO.

/// Production's floor for snapRetainCount (as Apache's autopurge).
pub const MIN_SNAP_RETAIN_COUNT: usize = 3;

/// Index of the first log file recovery reads to replay the txns after a
/// snapshot at `snapshot_zxid`: the newest file starting at or before the
/// next zxid (it may hold it), else the oldest. `log_first_zxids` are the
/// files' first zxids, oldest first; every later file is needed too.
pub fn first_log_needed(log_first_zxids: &[i64], snapshot_zxid: i64) -> usize {
    log_first_zxids.iter().rposition(|first| *first <= snapshot_zxid.saturating_add(1)).unwrap_or(0)
}

/// What an autopurge removes, as indices into the listings it was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PurgePlan {
    /// The snapshots older than the oldest kept one.
    pub remove_snapshots: Vec<usize>,
    /// The logs that hold nothing after the oldest kept snapshot.
    pub remove_logs: Vec<usize>,
    /// The oldest kept snapshot's zxid, when any is removed.
    pub oldest_kept_snapshot_zxid: Option<i64>,
}

/// Keeps the newest `retain` (at least [`MIN_SNAP_RETAIN_COUNT`])
/// snapshots and the logs needed to replay from the oldest of them; with
/// no more snapshots than that, removes nothing. Both listings are sorted
/// by zxid, oldest first, one entry per name.
pub fn plan_purge(snapshot_zxids: &[i64], log_first_zxids: &[i64], retain: usize) -> PurgePlan {
    let retain = retain.max(MIN_SNAP_RETAIN_COUNT);
    if snapshot_zxids.len() <= retain {
        return PurgePlan::default();
    }
    let keep_from = snapshot_zxids.len() - retain;
    let oldest_kept = snapshot_zxids[keep_from];
    PurgePlan {
        remove_snapshots: (0..keep_from).collect(),
        remove_logs: (0..first_log_needed(log_first_zxids, oldest_kept)).collect(),
        oldest_kept_snapshot_zxid: Some(oldest_kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_three_snapshots_and_the_logs_the_oldest_needs() {
        // Snapshots 2 4 6 8; logs starting at 1 3 5 7: replaying from 4 needs log.5.
        let plan = plan_purge(&[2, 4, 6, 8], &[1, 3, 5, 7], 3);
        assert_eq!(
            plan,
            PurgePlan { remove_snapshots: vec![0], remove_logs: vec![0, 1], oldest_kept_snapshot_zxid: Some(4) }
        );
        // A log starting right after the snapshot is the first needed; one
        // starting at it may hold the next txn and is needed too.
        assert_eq!(plan_purge(&[2, 4, 6, 8], &[1, 5, 7], 3).remove_logs, vec![0]);
        assert_eq!(plan_purge(&[2, 4, 6, 8], &[1, 4, 7], 3).remove_logs, vec![0]);
        // Retain below the floor counts as the floor; at most that many: nothing.
        assert_eq!(plan_purge(&[2, 4, 6], &[1], 1), PurgePlan::default());
        assert_eq!(plan_purge(&[2, 4, 6, 8, 10], &[1, 3, 5, 7, 9], 4).remove_snapshots, vec![0]);
        // Every log starts after the oldest kept snapshot: all are kept.
        assert!(plan_purge(&[2, 4, 6, 8], &[9], 3).remove_logs.is_empty());
        assert!(plan_purge(&[2, 4, 6, 8], &[], 3).remove_logs.is_empty());
    }

    proptest! {
        /// Whatever the layout, what is kept lets recovery replay from the
        /// oldest kept snapshot exactly as before the purge: the first log
        /// it reads is unchanged, and exactly `retain` snapshots are kept.
        #[test]
        fn recovery_from_every_kept_snapshot_reads_the_same_logs(
            snaps in proptest::collection::btree_set(0i64..200, 0..8),
            logs in proptest::collection::btree_set(0i64..200, 0..8),
            retain in 0usize..6,
        ) {
            let snaps: Vec<i64> = snaps.into_iter().collect();
            let logs: Vec<i64> = logs.into_iter().collect();
            let plan = plan_purge(&snaps, &logs, retain);
            let kept_snaps: Vec<i64> = snaps.iter().enumerate().filter(|(i, _)| !plan.remove_snapshots.contains(i)).map(|(_, z)| *z).collect();
            let kept_logs: Vec<i64> = logs.iter().enumerate().filter(|(i, _)| !plan.remove_logs.contains(i)).map(|(_, z)| *z).collect();
            prop_assert_eq!(kept_snaps.len(), snaps.len().min(retain.max(MIN_SNAP_RETAIN_COUNT)));
            prop_assert_eq!(&kept_snaps[..], &snaps[snaps.len() - kept_snaps.len()..]);
            // Removed logs are a prefix.
            prop_assert_eq!(&kept_logs[..], &logs[logs.len() - kept_logs.len()..]);
            for snap in &kept_snaps {
                let before = &logs[first_log_needed(&logs, *snap)..];
                let after = &kept_logs[first_log_needed(&kept_logs, *snap)..];
                prop_assert_eq!(before, after, "snapshot {}", snap);
            }
        }
    }
}
