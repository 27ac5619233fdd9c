//! The checkers: what every run must uphold, fed by the simulated servers
//! as they commit, apply, recover, establish and serve.
//!
//! * agreement: one txn (by its bytes) and one tree digest per committed zxid;
//! * one leader established per epoch;
//! * no acknowledged write lost on a server that starts serving;
//! * recovery equals live: a state rebuilt from disk (or installed from a
//!   SNAP) has, at every zxid whose history is the committed one, the
//!   digest the live servers reached there;
//! * linearizable sync: a read after a sync that began after a write was
//!   acknowledged sees that write (or a newer one) on the key;
//! * read committed: a plain read sees each node at a version whose txn a
//!   voter already holds as committed;
//! * liveness (decided by the world, which knows when faults healed).

use std::collections::BTreeMap;

use crate::zab::ensemble::Sid;
use crate::zab::packets::epoch_of;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub checker: &'static str,
    pub detail: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CommittedTxn {
    txn_hash: u64,
    /// The tree digest right after it (None for an error txn's carried
    /// digest on the leader; a follower's computed digest fills it in).
    digest: Option<i64>,
    first_by: Sid,
    /// A voter (leader or follower) holds it as committed; an observer's
    /// apply alone does not make a txn committed.
    by_voter: bool,
}

/// One entry of a server's current history: the txn at a zxid in the state
/// it holds, and the digest after applying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub txn_hash: u64,
    pub digest: i64,
}

/// A server's state as the checkers see it: a base (an installed snapshot,
/// or the empty tree at zxid 0) and the txns applied above it. A persistent
/// map: a periodic snapshot keeps a copy of it at O(1).
#[derive(Debug, Clone, Default)]
pub struct History {
    pub base_zxid: i64,
    pub entries: imbl::OrdMap<i64, HistoryEntry>,
}

#[derive(Debug, Default)]
pub struct Oracle {
    committed: BTreeMap<i64, CommittedTxn>,
    leaders: BTreeMap<i64, Sid>,
    /// Acknowledged writes: zxid -> txn hash.
    pub acked: BTreeMap<i64, u64>,
    /// Per key, the zxid of the newest acknowledged write that changed it.
    acked_floor: BTreeMap<String, i64>,
    pub sync_reads_checked: u64,
    pub failure: Option<Failure>,
    pub commits_checked: u64,
    pub recoveries_checked: u64,
    pub serving_checks: u64,
    /// Exits production makes on purpose (a failed log write, a refused
    /// start on a damaged disk): counted, never a finding. `server-exits`
    /// is for the others.
    pub expected_exits: u64,
    pub observer_checks: u64,
    pub plain_reads_checked: u64,
    /// The highest snapshot base an established leader held (see
    /// `established_with_base`).
    established_base: i64,
}

impl Oracle {
    pub fn fail(&mut self, checker: &'static str, detail: String, at_ms: u64) {
        if self.failure.is_none() {
            self.failure = Some(Failure { checker, detail, at_ms });
        }
    }

    pub fn committed_count(&self) -> usize {
        self.committed.len()
    }

    /// The hash of the txn committed at `zxid`, if one is known committed.
    pub fn committed_hash(&self, zxid: i64) -> Option<u64> {
        self.committed.get(&zxid).map(|c| c.txn_hash)
    }

    pub fn committed_digest(&self, zxid: i64) -> Option<i64> {
        self.committed.get(&zxid).and_then(|c| c.digest)
    }

    /// `sid` holds txn `txn_hash` at `zxid` as committed (leader: published
    /// or established; learner: applied on COMMIT or INFORM). `voter`:
    /// `sid` is a voting member.
    pub fn commit(&mut self, sid: Sid, voter: bool, zxid: i64, txn_hash: u64, digest: Option<i64>, now: u64) {
        self.commits_checked += 1;
        match self.committed.get_mut(&zxid) {
            None => {
                self.committed.insert(zxid, CommittedTxn { txn_hash, digest, first_by: sid, by_voter: voter });
            }
            Some(c) => {
                c.by_voter |= voter && c.txn_hash == txn_hash;
                if c.txn_hash != txn_hash {
                    let detail = format!(
                        "zxid 0x{zxid:x}: server {sid} committed txn {txn_hash:016x}, server {} committed {:016x}",
                        c.first_by, c.txn_hash
                    );
                    self.fail("agreement", detail, now);
                    return;
                }
                match (c.digest, digest) {
                    (Some(a), Some(b)) if a != b => {
                        let detail = format!(
                            "zxid 0x{zxid:x}: same txn, but server {sid}'s tree digest is {b:x}, server {}'s {a:x}",
                            c.first_by
                        );
                        self.fail("agreement", detail, now);
                    }
                    (None, Some(_)) => c.digest = digest,
                    _ => {}
                }
            }
        }
    }

    /// A production exit on purpose (`Server::exit_expected`).
    pub fn expected_exit(&mut self) {
        self.expected_exits += 1;
    }

    /// An observer serves (starts to, or answers a sync) at `last_zxid`:
    /// what it applied must be committed by the voters, not just by it.
    pub fn check_observer_state(&mut self, sid: Sid, history: &History, now: u64) {
        self.observer_checks += 1;
        let Some((&zxid, entry)) = history.entries.iter().next_back() else { return };
        match self.committed.get(&zxid) {
            Some(c) if c.by_voter && c.txn_hash == entry.txn_hash => {}
            other if self.in_established_snapshot(zxid, other, Some(entry.txn_hash)) => {}
            other => {
                let detail = format!(
                    "observer {sid} serves state through 0x{zxid:x}, which no voter holds as committed ({})",
                    if other.is_some() {
                        "the txn differs or only observers applied it"
                    } else {
                        "nobody committed it"
                    }
                );
                self.fail("observer-serves-committed", detail, now);
            }
        }
    }

    /// A leader established `epoch` holding a state whose base (an
    /// installed snapshot) reaches `base_zxid`: everything in it is
    /// committed, though the oracle never saw those txns one by one.
    pub fn established_with_base(&mut self, base_zxid: i64) {
        self.established_base = self.established_base.max(base_zxid);
    }

    /// `zxid` is inside a snapshot an established leader held, so it is
    /// committed though no voter reported its txn one by one. An observer
    /// may have reported the same txn first (applied from a DIFF of a
    /// leader that never established, whose log the next one took over in
    /// its SNAP): that report agrees, it does not contradict (seed 588, 5
    /// servers, --no-registers).
    fn in_established_snapshot(&self, zxid: i64, committed: Option<&CommittedTxn>, txn_hash: Option<u64>) -> bool {
        zxid <= self.established_base && committed.is_none_or(|c| Some(c.txn_hash) == txn_hash)
    }

    pub fn established(&mut self, sid: Sid, epoch: i64, now: u64) {
        match self.leaders.get(&epoch) {
            Some(&other) if other != sid => self.fail(
                "one-leader-per-epoch",
                format!("epoch {epoch}: servers {other} and {sid} both established"),
                now,
            ),
            _ => {
                self.leaders.insert(epoch, sid);
            }
        }
    }

    pub fn leader_of(&self, epoch: i64) -> Option<Sid> {
        self.leaders.get(&epoch).copied()
    }

    /// `sid` established the newest epoch any leader has established.
    pub fn is_newest_leader(&self, sid: Sid, epoch: Option<i64>) -> bool {
        epoch.is_some() && self.leaders.last_key_value().map(|(e, s)| (Some(*e), *s)) == Some((epoch, sid))
    }

    pub fn epochs_established(&self) -> usize {
        self.leaders.len()
    }

    pub fn acknowledge(&mut self, zxid: i64, txn_hash: u64) {
        self.acked.insert(zxid, txn_hash);
    }

    /// An acknowledged write at `zxid` changed `path` (created it or set
    /// its data; a failed create or setData changes nothing).
    pub fn acknowledge_change(&mut self, path: &str, zxid: i64) {
        let floor = self.acked_floor.entry(path.to_owned()).or_insert(zxid);
        *floor = (*floor).max(zxid);
    }

    /// What a sync + read of `path` starting now must at least see: the
    /// zxid of the newest acknowledged change (0: none yet).
    pub fn sync_floor(&self, path: &str) -> i64 {
        self.acked_floor.get(path).copied().unwrap_or(0)
    }

    /// The read after sync `id` on `sid` saw `path` last changed at
    /// `observed` (None: no such node); when the sync began, the newest
    /// acknowledged change was at `floor`. Writes only create or set data,
    /// so a state holding the `floor` write has a node changed at or after it.
    pub fn check_sync_read(&mut self, sid: Sid, id: u64, path: &str, floor: i64, observed: Option<i64>, now: u64) {
        self.sync_reads_checked += 1;
        if floor > 0 && observed.is_none_or(|m| m < floor) {
            let detail = format!(
                "server {sid} answered sync #{id} and the read of {path} saw it changed at {}, but a write to it was acknowledged at 0x{floor:x} before the sync began",
                observed.map_or("never".to_owned(), |m| format!("0x{m:x}"))
            );
            self.fail("linearizable-sync", detail, now);
        }
    }

    /// A plain read on `sid` saw `path` last changed by the txn `txn_hash`
    /// at `zxid`: a voter must hold that very txn as committed already (a
    /// server serves reads only from committed state).
    pub fn check_read(&mut self, sid: Sid, path: &str, zxid: i64, txn_hash: Option<u64>, now: u64) {
        self.plain_reads_checked += 1;
        let committed = self.committed.get(&zxid);
        let ok = committed.is_some_and(|c| c.by_voter && Some(c.txn_hash) == txn_hash)
            || self.in_established_snapshot(zxid, committed, txn_hash);
        if !ok {
            let detail = format!(
                "server {sid} answered a read of {path} with its version changed at 0x{zxid:x} (txn {txn_hash:x?}), which no voter holds as committed ({})",
                match committed {
                    Some(c) => format!("committed there: txn {:x}, by a voter: {}", c.txn_hash, c.by_voter),
                    None => "nothing committed there yet".to_owned(),
                }
            );
            self.fail("read-committed", detail, now);
        }
    }

    /// `sid` starts serving in `epoch` with `history`: every write
    /// acknowledged in an earlier epoch must be in it.
    pub fn check_serving(&mut self, sid: Sid, epoch: i64, history: &History, last_zxid: i64, now: u64) {
        let below = crate::zab::packets::make_zxid(epoch, 0);
        self.check_holds_acked(sid, below, &format!("serves epoch {epoch}"), history, last_zxid, now);
    }

    /// A standalone server starts serving with `history`: every write it
    /// ever acknowledged must be in it (no epochs to exempt newer ones).
    pub fn check_serving_all(&mut self, sid: Sid, history: &History, last_zxid: i64, now: u64) {
        self.check_holds_acked(sid, i64::MAX, "serves standalone", history, last_zxid, now);
    }

    fn check_holds_acked(&mut self, sid: Sid, below: i64, what: &str, history: &History, last_zxid: i64, now: u64) {
        self.serving_checks += 1;
        for (&zxid, &hash) in self.acked.range(..below) {
            if zxid <= history.base_zxid {
                continue; // inside an installed snapshot, checked at install
            }
            let held = history.entries.get(&zxid).map(|e| e.txn_hash);
            if held != Some(hash) || last_zxid < zxid {
                let detail = format!(
                    "server {sid} {what} (last zxid 0x{last_zxid:x}) without acknowledged write 0x{zxid:x} (epoch {}): it holds {held:x?}",
                    epoch_of(zxid)
                );
                self.fail("no-acked-write-lost", detail, now);
                return;
            }
        }
    }

    /// A state rebuilt from disk or installed from a SNAP: at the highest
    /// zxid up to which its history is the committed one, its digest must
    /// be the live digest there.
    pub fn check_recovered(&mut self, sid: Sid, what: &str, history: &History, now: u64) {
        self.recoveries_checked += 1;
        let mut checked_at = None;
        for (&zxid, entry) in &history.entries {
            let Some(c) = self.committed.get(&zxid) else { break };
            if c.txn_hash != entry.txn_hash {
                break;
            }
            checked_at = Some((zxid, entry.digest, c.digest));
        }
        if let Some((zxid, mine, Some(live))) = checked_at {
            if mine != live {
                let detail = format!(
                    "server {sid} after {what}: digest {mine:x} at zxid 0x{zxid:x}, the live servers had {live:x} there"
                );
                self.fail("recovery-equals-live", detail, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[(i64, u64)]) -> History {
        History {
            base_zxid: 0,
            entries: entries.iter().map(|&(z, h)| (z, HistoryEntry { txn_hash: h, digest: 0 })).collect(),
        }
    }

    #[test]
    fn an_observer_may_serve_only_what_a_voter_committed() {
        let mut o = Oracle::default();
        o.commit(1, true, 10, 0xA, None, 0);
        o.check_observer_state(4, &history(&[(10, 0xA)]), 1);
        assert!(o.failure.is_none());
        // Applied by the observer alone: not committed.
        o.commit(4, false, 11, 0xB, None, 2);
        o.check_observer_state(4, &history(&[(10, 0xA), (11, 0xB)]), 3);
        assert_eq!(o.failure.as_ref().map(|f| f.checker), Some("observer-serves-committed"));
    }

    #[test]
    fn a_voter_commit_later_counts() {
        let mut o = Oracle::default();
        o.commit(4, false, 11, 0xB, None, 0);
        o.commit(2, true, 11, 0xB, None, 1);
        o.check_observer_state(4, &history(&[(11, 0xB)]), 2);
        assert!(o.failure.is_none());
        o.expected_exit();
        assert_eq!(o.expected_exits, 1);
    }
}
