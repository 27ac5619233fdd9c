//! Which files a TRUNC to a zxid removes and which it cuts: the decision
//! `server::truncate` carries out with its crash-safe steps and
//! `SimDisk::truncate_after` carries out on simulated files. No IO: the
//! caller lists the files and reads a log file's record zxids when the
//! plan asks for them (only the files the walk reaches are read).

/// A snapshot file as listed: `snapshot.<hex>` (finished) or
/// `snapshot.<hex>.tmp` (unfinished: a snapshot still being written, or
/// one a crash interrupted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedSnapshot {
    pub zxid: i64,
    pub finished: bool,
}

/// What a truncation to `zxid` removes and cuts, as indices into the
/// listings it was given, in the order it decided them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TruncatePlan {
    pub zxid: i64,
    /// Every snapshot named above the zxid, unfinished ones included (a
    /// snapshot thread still writing one could not rename it then).
    pub remove_snapshots: Vec<usize>,
    /// Zxids of the finished snapshots among them.
    pub removed_snapshot_zxids: Vec<i64>,
    /// Log files that start above the zxid (oldest first), then those of
    /// the walk back that hold no txn at or below it (newest first).
    pub remove_logs: Vec<usize>,
    /// Log files to replace by a copy holding only their txns up to the
    /// zxid (newest first; at most one in a well-formed log).
    pub cut_logs: Vec<usize>,
    /// The lowest zxid dropped (a txn, or a removed log file's first zxid).
    pub first_dropped_zxid: Option<i64>,
}

impl TruncatePlan {
    pub fn is_empty(&self) -> bool {
        self.remove_snapshots.is_empty() && self.remove_logs.is_empty() && self.cut_logs.is_empty()
    }

    fn note_dropped(&mut self, zxid: i64) {
        self.first_dropped_zxid = Some(self.first_dropped_zxid.map_or(zxid, |z| z.min(zxid)));
    }
}

/// Plans a truncation to `zxid`. `log_first_zxids` are the log files'
/// first zxids (the names), oldest first; `record_zxids(i)` returns the
/// zxids of log file `i`'s records (its error aborts the plan, which has
/// changed nothing). Log files starting above the zxid go unread; the
/// others are walked back from the newest until one holds nothing above
/// the zxid (older ones are not read: one a snapshot made unnecessary may
/// be damaged, and recovery never reads it either). A file's txns all come
/// before the next file's first zxid, so at most the newest kept file
/// straddles the zxid; the walk makes sure.
pub fn plan_truncation<E>(
    zxid: i64,
    snapshots: &[ListedSnapshot],
    log_first_zxids: &[i64],
    mut record_zxids: impl FnMut(usize) -> Result<Vec<i64>, E>,
) -> Result<TruncatePlan, E> {
    let mut plan = TruncatePlan { zxid, ..TruncatePlan::default() };
    for (index, snapshot) in snapshots.iter().enumerate() {
        if snapshot.zxid > zxid {
            plan.remove_snapshots.push(index);
            if snapshot.finished {
                plan.removed_snapshot_zxids.push(snapshot.zxid);
            }
        }
    }
    let mut kept = Vec::new();
    for (index, first) in log_first_zxids.iter().enumerate() {
        if *first <= zxid {
            kept.push(index);
        } else {
            plan.note_dropped(*first);
            plan.remove_logs.push(index);
        }
    }
    for index in kept.into_iter().rev() {
        let zxids = record_zxids(index)?;
        let holds_kept_txns = zxids.iter().any(|z| *z <= zxid);
        let first_above = zxids.iter().copied().find(|z| *z > zxid);
        if !holds_kept_txns {
            // Nothing at or below the zxid (say a file created for the
            // next zxid whose first batch never became durable).
            if let Some(first) = first_above {
                plan.note_dropped(first);
            }
            plan.remove_logs.push(index);
            continue;
        }
        let Some(first_above) = first_above else { break };
        plan.note_dropped(first_above);
        plan.cut_logs.push(index);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finished(zxid: i64) -> ListedSnapshot {
        ListedSnapshot { zxid, finished: true }
    }

    /// Plans over in-memory files (each a list of record zxids), recording
    /// which files were read.
    fn plan(zxid: i64, snaps: &[ListedSnapshot], logs: &[(i64, Vec<i64>)]) -> (TruncatePlan, Vec<usize>) {
        let firsts: Vec<i64> = logs.iter().map(|(first, _)| *first).collect();
        let mut read = Vec::new();
        let plan = plan_truncation::<()>(zxid, snaps, &firsts, |i| {
            read.push(i);
            Ok(logs[i].1.clone())
        })
        .unwrap();
        (plan, read)
    }

    #[test]
    fn three_files_cut_inside_the_middle_one() {
        // log.1 [1..5] | snapshot.5 | log.6 [6..10] | log.b [11 12] | snapshot.c, snapshot.d.tmp
        let logs = vec![(1, (1..=5).collect()), (6, (6..=10).collect()), (11, vec![11, 12])];
        let snaps = [finished(5), finished(12), ListedSnapshot { zxid: 13, finished: false }];
        let (p, read) = plan(7, &snaps, &logs);
        assert_eq!(p.remove_snapshots, vec![1, 2]);
        assert_eq!(p.removed_snapshot_zxids, vec![12]);
        assert_eq!(p.remove_logs, vec![2]);
        assert_eq!(p.cut_logs, vec![1]);
        assert_eq!(p.first_dropped_zxid, Some(8));
        assert_eq!(read, vec![1, 0], "log.1 is read (it holds nothing above 7: the walk stops there)");
        // At a file's end: nothing cut, the next file goes, log.1 unread.
        let (p, read) = plan(10, &snaps, &logs);
        assert_eq!((p.remove_logs, p.cut_logs, p.first_dropped_zxid), (vec![2], vec![], Some(11)));
        assert_eq!(read, vec![1]);
        // Above everything: an empty plan.
        assert!(plan(13, &snaps[..2], &logs).0.is_empty());
        // Below everything: every file goes unread.
        let (p, read) = plan(0, &snaps, &logs);
        assert_eq!((p.remove_logs, p.first_dropped_zxid, read), (vec![0, 1, 2], Some(1), vec![]));
    }

    #[test]
    fn a_kept_file_without_txns_at_or_below_goes_and_the_walk_goes_on() {
        // log.1 [1 2 3], log.4 created for 4 with no durable batch.
        let (p, read) = plan(5, &[], &[(1, vec![1, 2, 3]), (4, vec![])]);
        assert_eq!((p.remove_logs, p.cut_logs, p.first_dropped_zxid), (vec![1], vec![], None));
        assert_eq!(read, vec![1, 0]);
        // Two files straddling (a malformed log): both cut.
        let (p, _) = plan(5, &[], &[(1, vec![1, 6]), (4, vec![4, 7])]);
        assert_eq!((p.cut_logs, p.first_dropped_zxid), (vec![1, 0], Some(6)));
    }

    #[test]
    fn a_read_error_aborts_the_plan() {
        let r = plan_truncation(3, &[], &[1, 2], |i| if i == 1 { Err(format!("file {i}")) } else { Ok(vec![]) });
        assert_eq!(r, Err("file 1".to_string()));
    }

    proptest! {
        /// Over a well-formed log (files of increasing zxids), carrying
        /// the plan out keeps exactly the txns at or below the zxid, and
        /// the snapshots at or below it.
        #[test]
        fn carrying_out_the_plan_keeps_exactly_the_history_up_to_the_zxid(
            txns in proptest::collection::btree_set(1i64..60, 0..30),
            cuts in proptest::collection::vec(0usize..30, 0..5),
            empty_tail in any::<bool>(),
            snaps in proptest::collection::vec((0i64..70, any::<bool>()), 0..5),
            zxid in 0i64..70,
        ) {
            let txns: Vec<i64> = txns.into_iter().collect();
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|c| *c < txns.len()).collect();
            bounds.push(0);
            bounds.sort_unstable();
            bounds.dedup();
            let mut logs: Vec<(i64, Vec<i64>)> = Vec::new();
            for (i, start) in bounds.iter().enumerate() {
                let end = bounds.get(i + 1).copied().unwrap_or(txns.len());
                if let Some(first) = txns.get(*start) {
                    logs.push((*first, txns[*start..end].to_vec()));
                }
            }
            if empty_tail {
                let next = txns.last().map_or(1, |z| z + 1);
                logs.push((next, vec![]));
            }
            let snaps: Vec<ListedSnapshot> = snaps.into_iter().map(|(zxid, finished)| ListedSnapshot { zxid, finished }).collect();
            let (p, _) = plan(zxid, &snaps, &logs);
            let mut kept_txns = Vec::new();
            for (i, (_, records)) in logs.iter().enumerate() {
                if p.remove_logs.contains(&i) {
                    continue;
                }
                let cut = p.cut_logs.contains(&i);
                kept_txns.extend(records.iter().copied().filter(|z| !cut || *z <= zxid));
            }
            let want: Vec<i64> = txns.iter().copied().filter(|z| *z <= zxid).collect();
            prop_assert_eq!(kept_txns, want);
            let kept_snaps: Vec<i64> = snaps.iter().enumerate().filter(|(i, _)| !p.remove_snapshots.contains(i)).map(|(_, s)| s.zxid).collect();
            prop_assert!(kept_snaps.iter().all(|z| *z <= zxid));
            prop_assert_eq!(kept_snaps.len(), snaps.iter().filter(|s| s.zxid <= zxid).count());
            prop_assert_eq!(p.first_dropped_zxid, txns.iter().copied().find(|z| *z > zxid).or_else(|| logs.iter().map(|l| l.0).find(|f| *f > zxid)));
        }
    }
}
