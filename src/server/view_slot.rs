//! What lets the commit shard leave a worker out of a batch that does not
//! concern it (issue #9: an idle worker was woken for every batch, 16 % of
//! the server's CPU at one outstanding create).
//!
//! A batch concerns worker `i` when it carries a reply or a dropped
//! connection of shard `i`, closes a session (the session may be bound on
//! any shard), or has watch triggers while worker `i` may hold a watch
//! (`WorkerGate::watching`). Every other batch only moves the tree on; the
//! commit shard leaves its tree in worker `i`'s slot (`ViewAdvance`, one
//! per worker, overwritten) instead of sending it, and wakes the worker
//! only when a read there waits for it (`WorkerGate::waiting`) or every
//! `NUDGE_AFTER_SKIPPED_BATCHES` skipped batches (so an idle worker's view
//! does not keep an old tree version alive for long).
//!
//! The orderings the worker keeps (`WorkerShard::catch_up`):
//! * every publish is numbered (`ServerStats::publish_seq`); a view is
//!   replaced only by a newer publish, so no tree goes backwards;
//! * a slot entry says which channel batch was the last sent to this worker
//!   before it (`after_batch`) and is installed only once that batch has
//!   been applied: batches with triggers stay in commit order, their events
//!   queued before any view that shows their data;
//! * a worker with no watch registered gets no triggers; before it
//!   registers its first watch it raises `watching` and reads the publish
//!   number (both SeqCst, the commit shard stores the number before it
//!   reads the flag), and registers only on a view at least that new: any
//!   batch the commit shard left out because the flag was down is then
//!   already in the view the watch is registered on.
//! * a read that waits for a newer view raises `waiting` before it looks at
//!   the slot, and the commit shard reads `waiting` after it fills the slot
//!   (both SeqCst): either the worker finds the tree or it is sent a wake.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use crate::server::messages::{BatchEntry, CommitBatch};
use crate::tree::DataTree;

/// A worker left out of this many batches in a row is woken once to take
/// the newest tree: its view otherwise pins every node version those
/// batches replaced. At thousands of batches a second this costs a wake-up
/// every few tens of milliseconds.
pub const NUDGE_AFTER_SKIPPED_BATCHES: u32 = 256;

/// The newest tree a worker was not sent, with where it stands in the
/// commit stream.
pub struct ViewAdvance {
    pub tree: DataTree,
    pub last_zxid: i64,
    /// `ServerStats::publish_seq` of the publish that made it.
    pub publish_seq: u64,
    /// The `publish_seq` of the last batch sent to this worker over its
    /// channel before this publish (0: none): the worker must have applied
    /// it before it may install this tree.
    pub after_batch: u64,
}

/// One worker's side of the commit→worker hand-off that is not a channel
/// message: written by the commit shard (`put`, reads of the flags) and by
/// the worker (`take`, the flags), one writer per field kind.
#[derive(Default)]
pub struct WorkerGate {
    /// The worker may hold a watch: batches with triggers go to it.
    watching: AtomicBool,
    /// A read on the worker waits for a newer view: fill the slot, then wake.
    waiting: AtomicBool,
    /// Owned by whoever swapped it out last: a `Box<ViewAdvance>` or null.
    slot: AtomicPtr<ViewAdvance>,
}

impl WorkerGate {
    /// Commit shard: leaves `advance` for the worker (an older one still
    /// there is dropped; the newer supersedes it).
    pub fn put(&self, advance: ViewAdvance) {
        let new = Box::into_raw(Box::new(advance));
        let old = self.slot.swap(new, Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: every non-null pointer in the slot came from
            // `Box::into_raw` above, and the swap made this side its only owner.
            drop(unsafe { Box::from_raw(old) });
        }
    }

    /// Worker: takes what the commit shard left, if anything.
    pub fn take(&self) -> Option<Box<ViewAdvance>> {
        let got = self.slot.swap(ptr::null_mut(), Ordering::SeqCst);
        // SAFETY: as in `put`: from `Box::into_raw`, owned here after the swap.
        (!got.is_null()).then(|| unsafe { Box::from_raw(got) })
    }

    pub fn watching(&self) -> bool {
        self.watching.load(Ordering::SeqCst)
    }

    pub fn set_watching(&self, on: bool) {
        self.watching.store(on, Ordering::SeqCst);
    }

    pub fn waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn set_waiting(&self, on: bool) {
        self.waiting.store(on, Ordering::SeqCst);
    }
}

impl Drop for WorkerGate {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// Which workers a batch concerns beyond its tree (see the module comment).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchAudience {
    /// Some txn fired watch triggers: workers that may hold watches get it.
    pub triggers: bool,
    /// A session was closed: every worker gets it.
    pub everyone: bool,
}

impl BatchAudience {
    /// One walk of the entries; `addressed[i]` is set for every shard a
    /// reply or a dropped connection is for (shard indexes beyond
    /// `addressed` are ignored: no such worker).
    pub fn of(batch: &CommitBatch, addressed: &mut [bool]) -> BatchAudience {
        addressed.fill(false);
        let mut audience = BatchAudience::default();
        let mut mark = |shard: usize| {
            if let Some(a) = addressed.get_mut(shard) {
                *a = true;
            }
        };
        for entry in &batch.entries {
            match entry {
                BatchEntry::Txn { triggers, reply, closed_session, .. } => {
                    audience.triggers |= !triggers.is_empty();
                    audience.everyone |= closed_session.is_some();
                    if let Some(r) = reply {
                        mark(r.conn.shard);
                    }
                }
                BatchEntry::Reply(r) => mark(r.conn.shard),
                BatchEntry::DropConnection { conn } => mark(conn.shard),
            }
        }
        audience
    }

    /// Whether worker `i` must be sent the batch.
    pub fn concerns(&self, addressed: bool, gate: &WorkerGate) -> bool {
        // `watching` is read only when it matters, after the publish number
        // was stored (the caller's order; see the module comment).
        self.everyone || addressed || (self.triggers && gate.watching())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::messages::{ConnRef, Reply, ReplyKind};
    use std::sync::Arc;

    fn advance(seq: u64) -> ViewAdvance {
        ViewAdvance { tree: DataTree::new(), last_zxid: seq as i64, publish_seq: seq, after_batch: 0 }
    }

    #[test]
    fn the_slot_keeps_only_the_newest() {
        let gate = WorkerGate::default();
        assert!(gate.take().is_none());
        gate.put(advance(1));
        gate.put(advance(2));
        assert_eq!(gate.take().map(|a| a.publish_seq), Some(2));
        assert!(gate.take().is_none(), "taken once");
        gate.put(advance(3));
        drop(gate); // the entry left is freed (miri / leak checkers)
    }

    #[test]
    fn across_threads_the_taker_sees_increasing_entries_and_the_last() {
        let gate = Arc::new(WorkerGate::default());
        let writer = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                for seq in 1..=20_000 {
                    gate.put(advance(seq));
                }
            })
        };
        let mut last = 0;
        while last < 20_000 {
            if let Some(a) = gate.take() {
                assert!(a.publish_seq > last, "{} after {last}", a.publish_seq);
                last = a.publish_seq;
            } else if writer.is_finished() {
                assert_eq!(gate.take().map(|a| a.publish_seq).unwrap_or(last), 20_000);
                break;
            }
        }
        let _ = writer.join();
    }

    fn batch(entries: Vec<BatchEntry>) -> CommitBatch {
        CommitBatch { tree: DataTree::new(), last_zxid: 1, entries, session_changes: Vec::new() }
    }

    fn reply_to(shard: usize) -> Reply {
        Reply { conn: ConnRef { shard, conn_id: 1 }, zxid: 1, kind: ReplyKind::Sync { xid: 1, path: "/".into() } }
    }

    #[test]
    fn a_reply_concerns_its_shard_only_and_triggers_only_watching_ones() {
        let mut addressed = vec![false; 3];
        let b = batch(vec![BatchEntry::Txn {
            zxid: 1,
            triggers: Vec::new(),
            reply: Some(reply_to(1)),
            closed_session: None,
        }]);
        let a = BatchAudience::of(&b, &mut addressed);
        assert_eq!(a, BatchAudience::default());
        assert_eq!(addressed, vec![false, true, false]);

        let trigger = crate::tree::WatchTrigger {
            event: crate::proto::EventType::NodeCreated,
            path: Arc::from("/a"),
            acl: Arc::from(Vec::new()),
        };
        let b = batch(vec![
            BatchEntry::Txn { zxid: 1, triggers: vec![trigger], reply: None, closed_session: None },
            BatchEntry::DropConnection { conn: ConnRef { shard: 7, conn_id: 1 } },
        ]);
        let a = BatchAudience::of(&b, &mut addressed);
        assert!(a.triggers && !a.everyone);
        assert_eq!(addressed, vec![false; 3], "shard 7 does not exist");
        let (quiet, watching) = (WorkerGate::default(), WorkerGate::default());
        watching.set_watching(true);
        assert!(!a.concerns(false, &quiet));
        assert!(a.concerns(false, &watching));

        let b = batch(vec![BatchEntry::Txn { zxid: 1, triggers: Vec::new(), reply: None, closed_session: Some(5) }]);
        assert!(BatchAudience::of(&b, &mut addressed).concerns(false, &quiet), "a closed session goes to all");
    }
}
