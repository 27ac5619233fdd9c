//! The `linearizable` checker: is one register's client history
//! linearizable? Wing & Gong's search as Lowe refined it ("Testing for
//! linearizability", 2017: a linked list of call / return entries, lift and
//! unlift, and a cache of (linearized set, state) already explored), with a
//! bound on the work: a search that hits it is *inconclusive*, reported as
//! such, never as a pass.
//!
//! Only what a client observes goes in: the operation, its invocation and
//! response times (simulated ms), the value and version a read returned,
//! the version a write's answer carried, BadVersion. No zxid. The state is
//! ZooKeeper's `(data, dataVersion)`: every setData, blind or conditional,
//! raises the version by one.
//!
//! An operation without an answer (its server died, stepped down, or the
//! answer was lost) is *indeterminate*: it may take effect at any point
//! after its invocation, or never. It has a call entry and no return entry,
//! so the search may linearize it anywhere after its call, or leave it out.

use std::collections::{HashMap, HashSet};

/// A register's state: the value id its data names and its data version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegState {
    pub value: u64,
    pub version: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// setData(value, version -1).
    Write { value: u64 },
    /// setData(value, expected).
    Cas { expected: i32, value: u64 },
    /// sync + getData.
    Read,
}

/// What the client was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// setData succeeded; the answer's stat carried this version.
    Set {
        version: i32,
    },
    BadVersion,
    /// The read returned this value and version (None: no node).
    Read {
        state: Option<RegState>,
    },
    /// No answer: indeterminate.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct RegOp {
    pub id: u64,
    pub client: u32,
    /// The server the client sent it to (for the report only).
    pub server: crate::zab::ensemble::Sid,
    pub kind: OpKind,
    pub call_ms: u64,
    /// None: never answered (indeterminate).
    pub return_ms: Option<u64>,
    pub answer: Answer,
}

impl RegOp {
    fn definite(&self) -> bool {
        self.return_ms.is_some() && self.answer != Answer::Unknown
    }

    /// The state after this op in `s`, or None if it cannot take effect
    /// there with the answer it got.
    fn step(&self, s: RegState) -> Option<RegState> {
        let next = s.version.wrapping_add(1);
        match (self.kind, self.answer) {
            (OpKind::Write { value }, Answer::Set { version }) => {
                (version == next).then_some(RegState { value, version })
            }
            (OpKind::Write { value }, Answer::Unknown) => Some(RegState { value, version: next }),
            (OpKind::Cas { expected, value }, Answer::Set { version }) => {
                (s.version == expected && version == next).then_some(RegState { value, version })
            }
            // An unanswered CAS that failed changed nothing: that is the
            // "never" case, covered by leaving it out.
            (OpKind::Cas { expected, value }, Answer::Unknown) => {
                (s.version == expected).then_some(RegState { value, version: next })
            }
            (OpKind::Cas { expected, .. }, Answer::BadVersion) => (s.version != expected).then_some(s),
            (OpKind::Read, Answer::Read { state }) => (state == Some(s)).then_some(s),
            _ => None,
        }
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            OpKind::Write { value } => format!("write(v{value})"),
            OpKind::Cas { expected, value } => format!("cas(version {expected} -> v{value})"),
            OpKind::Read => "sync+read".to_string(),
        };
        let answer = match self.answer {
            Answer::Set { version } => format!("ok, version {version}"),
            Answer::BadVersion => "BadVersion".to_string(),
            Answer::Read { state: Some(s) } => format!("v{} version {}", s.value, s.version),
            Answer::Read { state: None } => "no node".to_string(),
            Answer::Unknown => "no answer".to_string(),
        };
        let until = match self.return_ms {
            Some(t) => format!("{t}"),
            None => "?".to_string(),
        };
        format!("[{}..{until}] client {} on s{}: {what} -> {answer}", self.call_ms, self.client, self.server)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order explains the history; a readable excerpt of where the
    /// deepest attempt got stuck.
    Violation(String),
    /// The work bound was hit first.
    Inconclusive {
        steps: u64,
    },
}

const NIL: usize = usize::MAX;
/// The state's value after an unanswered write no read saw.
const UNSEEN_VALUE: u64 = u64::MAX - 1;

/// The deepest point a search reached: the ops it placed, in order, as a
/// set, the state there, and the entry that stopped it (NIL: the end).
struct Deepest {
    placed: Vec<usize>,
    set: Vec<u64>,
    state: RegState,
    stuck_at: usize,
}

/// Decides whether `ops` (one register's history) is linearizable from
/// `init`, exploring at most `max_steps` search steps.
pub fn check(ops: &[RegOp], init: RegState, max_steps: u64) -> Verdict {
    // Reads without an answer say nothing: left out.
    let ops: Vec<&RegOp> = ops.iter().filter(|o| o.definite() || o.kind != OpKind::Read).collect();
    let n = ops.len();
    if n == 0 {
        return Verdict::Linearizable;
    }
    // Entries: (time, is_return, op). At equal times calls sort before
    // returns, so ops touching at one instant count as concurrent (the
    // permissive choice: no false alarm from a clock tie).
    let mut entries: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * n);
    for (i, o) in ops.iter().enumerate() {
        entries.push((o.call_ms, false, i));
        if o.definite() {
            if let Some(r) = o.return_ms {
                entries.push((r.max(o.call_ms), true, i));
            }
        }
    }
    entries.sort_by_key(|&(t, ret, i)| (t, ret, i));
    let len = entries.len();
    // A doubly linked list over entries, with a head sentinel at `len`.
    let head = len;
    let mut next = vec![NIL; len + 1];
    let mut prev = vec![NIL; len + 1];
    let mut order = vec![head];
    order.extend(0..len);
    for w in order.windows(2) {
        next[w[0]] = w[1];
        prev[w[1]] = w[0];
    }
    let mut return_of = vec![NIL; n];
    for (e, &(_, ret, i)) in entries.iter().enumerate() {
        if ret {
            return_of[i] = e;
        }
    }
    let definite_total = ops.iter().filter(|o| o.definite()).count();

    // Two exact prunings for unanswered writes (each keeps every valid
    // order it cuts an equivalent of), without which early unanswered ops,
    // open for good, make the search exponential:
    // * Version slots: every effective setData makes the next version, so
    //   each version is made by one op. A version some answer carries, or
    //   a read saw with another value, is not free for an unanswered op;
    //   one whose value a read saw at version k can only make k.
    // * Symmetry: an unanswered op whose value no read saw changes the
    //   state to (UNSEEN, next version) whichever it is; two such blind
    //   writes (or two such CASes, which here expect the same version) both
    //   invoked by now are interchangeable for the rest of the search, so
    //   at each point only one of each is tried.
    let mut observed_at: HashMap<u64, i32> = HashMap::new();
    let mut claimed: HashSet<i32> = HashSet::new();
    for o in &ops {
        match o.answer {
            Answer::Set { version } => {
                claimed.insert(version);
            }
            Answer::Read { state: Some(s) } => {
                observed_at.insert(s.value, s.version);
            }
            _ => {}
        }
    }
    let seen_version_of = |value: u64| observed_at.get(&value).copied();
    // Per op: Some(None) unanswered and unseen; Some(Some(k)) unanswered,
    // seen at version k; None answered.
    let unanswered: Vec<Option<Option<i32>>> = ops
        .iter()
        .map(|o| match (o.definite(), o.kind) {
            (true, _) | (false, OpKind::Read) => None,
            (false, OpKind::Write { value } | OpKind::Cas { value, .. }) => Some(seen_version_of(value)),
        })
        .collect();
    // Versions reads saw, with the value they saw there.
    let mut seen_slots: HashMap<i32, u64> = HashMap::new();
    for (&value, &version) in &observed_at {
        seen_slots.insert(version, value);
    }
    let step = |i: usize, s: RegState| -> Option<RegState> {
        let after = ops[i].step(s)?;
        match unanswered[i] {
            None => Some(after),
            Some(Some(k)) => (after.version == k).then_some(after),
            Some(None) => {
                let free = !claimed.contains(&after.version) && !seen_slots.contains_key(&after.version);
                free.then_some(RegState { value: UNSEEN_VALUE, version: after.version })
            }
        }
    };

    let unlink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = nx;
        if nx != NIL {
            prev[nx] = p;
        }
    };
    let relink = |e: usize, next: &mut Vec<usize>, prev: &mut Vec<usize>| {
        let (p, nx) = (prev[e], next[e]);
        next[p] = e;
        if nx != NIL {
            prev[nx] = e;
        }
    };

    let words = n.div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, RegState)> = HashSet::new();
    // (entry placed, state before it, the unseen kinds already tried at
    // that depth: 1 a blind write, 2 a CAS).
    let mut stack: Vec<(usize, RegState, u8)> = Vec::new();
    let mut unseen_tried = 0u8;
    let mut state = init;
    let mut done_definite = 0usize;
    let mut entry = next[head];
    let mut steps = 0u64;
    // The deepest point reached, for the report.
    let mut deepest = Deepest { placed: Vec::new(), set: vec![0u64; words], state: init, stuck_at: NIL };

    loop {
        if done_definite == definite_total {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > max_steps {
            return Verdict::Inconclusive { steps: max_steps };
        }
        let is_call = entry != NIL && !entries[entry].1;
        if is_call {
            let i = entries[entry].2;
            let unseen_kind = match (unanswered[i], ops[i].kind) {
                (Some(None), OpKind::Write { .. }) => 1,
                (Some(None), _) => 2,
                _ => 0,
            };
            if let Some(after) = step(i, state).filter(|_| unseen_tried & unseen_kind == 0) {
                unseen_tried |= unseen_kind;
                linearized[i / 64] |= 1 << (i % 64);
                if cache.insert((linearized.clone(), after)) {
                    stack.push((entry, state, unseen_tried));
                    unseen_tried = 0;
                    state = after;
                    if ops[i].definite() {
                        done_definite += 1;
                    }
                    unlink(entry, &mut next, &mut prev);
                    if return_of[i] != NIL {
                        unlink(return_of[i], &mut next, &mut prev);
                    }
                    entry = next[head];
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            entry = next[entry];
            continue;
        }
        // A return of an op not yet linearized (or the end): back up.
        if stack.len() >= deepest.placed.len() {
            let placed = stack.iter().map(|&(e, _, _)| entries[e].2).collect();
            deepest = Deepest { placed, set: linearized.clone(), state, stuck_at: entry };
        }
        let Some((e, before, tried)) = stack.pop() else {
            return Verdict::Violation(excerpt(&ops, &entries, &deepest, init));
        };
        let i = entries[e].2;
        if ops[i].definite() {
            done_definite -= 1;
        }
        linearized[i / 64] &= !(1 << (i % 64));
        if return_of[i] != NIL {
            relink(return_of[i], &mut next, &mut prev);
        }
        relink(e, &mut next, &mut prev);
        state = before;
        unseen_tried = tried;
        entry = next[e];
    }
}

/// Where the deepest attempt got stuck: the state it reached, the last ops
/// it had placed, and every op still open at the blocking answer (none of
/// which could come next).
fn excerpt(ops: &[&RegOp], entries: &[(u64, bool, usize)], deepest: &Deepest, init: RegState) -> String {
    let Deepest { placed, set, state, stuck_at } = deepest;
    let mut out = String::new();
    out.push_str(&format!(
        "from v{} version {}, the longest order found places {} ops, ending",
        init.value,
        init.version,
        placed.len()
    ));
    for &i in placed.iter().rev().take(6).rev() {
        out.push_str(&format!("\n    {}", ops[i].describe()));
    }
    let value =
        if state.value == UNSEEN_VALUE { "(an unanswered write's)".to_string() } else { format!("v{}", state.value) };
    out.push_str(&format!("\n  in state {value} version {}; ", state.version));
    let until = if *stuck_at == NIL {
        u64::MAX
    } else {
        let i = entries[*stuck_at].2;
        out.push_str(&format!("next it must place (answered by then) {}", ops[i].describe()));
        entries[*stuck_at].0
    };
    // The ops it could have placed instead: invoked by then, not placed.
    let open: Vec<&&RegOp> = ops
        .iter()
        .enumerate()
        .filter(|(i, o)| o.call_ms <= until && set[i / 64] & (1 << (i % 64)) == 0)
        .map(|(_, o)| o)
        .collect();
    out.push_str(&format!("; open then ({}, at most 8 shown):", open.len()));
    for o in open.iter().rev().take(8).rev() {
        out.push_str(&format!("\n    {}", o.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: RegState = RegState { value: 0, version: 0 };
    const BOUND: u64 = 100_000;

    fn op(id: u64, kind: OpKind, call: u64, ret: Option<u64>, answer: Answer) -> RegOp {
        RegOp { id, client: id as u32, server: 1, kind, call_ms: call, return_ms: ret, answer }
    }
    fn write(id: u64, value: u64, call: u64, ret: u64, version: i32) -> RegOp {
        op(id, OpKind::Write { value }, call, Some(ret), Answer::Set { version })
    }
    fn cas(id: u64, expected: i32, value: u64, call: u64, ret: u64, answer: Answer) -> RegOp {
        op(id, OpKind::Cas { expected, value }, call, Some(ret), answer)
    }
    fn read(id: u64, call: u64, ret: u64, value: u64, version: i32) -> RegOp {
        op(id, OpKind::Read, call, Some(ret), Answer::Read { state: Some(RegState { value, version }) })
    }
    fn lost_write(id: u64, value: u64, call: u64) -> RegOp {
        op(id, OpKind::Write { value }, call, None, Answer::Unknown)
    }

    #[test]
    fn empty_and_sequential_histories_pass() {
        assert_eq!(check(&[], INIT, BOUND), Verdict::Linearizable);
        let h = [
            read(1, 0, 1, 0, 0),
            write(2, 2, 2, 3, 1),
            cas(3, 1, 3, 4, 5, Answer::Set { version: 2 }),
            cas(4, 1, 4, 6, 7, Answer::BadVersion),
            read(5, 8, 9, 3, 2),
        ];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_ops_may_take_effect_in_either_order() {
        // The read overlaps the write: it may see the old or the new value.
        let h = [write(1, 1, 0, 10, 1), read(2, 2, 5, 0, 0), read(3, 3, 12, 1, 1)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // Two overlapping CASes with one expected version: one wins.
        let h = [
            cas(1, 0, 1, 0, 10, Answer::BadVersion),
            cas(2, 0, 2, 1, 9, Answer::Set { version: 1 }),
            read(3, 11, 12, 2, 1),
        ];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // Touching at one instant counts as concurrent.
        let h = [write(1, 1, 0, 5, 1), read(2, 5, 6, 0, 0)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_answered_write_fails() {
        let h = [write(1, 1, 0, 5, 1), read(2, 6, 8, 0, 0)];
        let Verdict::Violation(report) = check(&h, INIT, BOUND) else { panic!("passed a stale read") };
        assert!(report.contains("sync+read -> v0 version 0"), "{report}");
    }

    #[test]
    fn reads_going_back_in_time_fail() {
        // Both reads overlap the write, but the second began after the
        // first saw the new value, so it cannot see the old one.
        let h = [write(1, 1, 0, 100, 1), read(2, 10, 20, 1, 1), read(3, 30, 40, 0, 0)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
    }

    #[test]
    fn two_cases_on_one_version_cannot_both_succeed() {
        // The `stale-cas` plant's signature: both answered ok.
        let h = [cas(1, 0, 1, 0, 10, Answer::Set { version: 1 }), cas(2, 0, 2, 1, 11, Answer::Set { version: 2 })];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
        let h = [cas(1, 0, 1, 0, 10, Answer::Set { version: 1 }), cas(2, 0, 2, 1, 11, Answer::Set { version: 1 })];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
    }

    #[test]
    fn a_bad_version_needs_another_version() {
        let h = [cas(1, 0, 1, 0, 1, Answer::BadVersion)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
        // Unless a concurrent write moved it first.
        let h = [write(2, 2, 0, 5, 1), cas(1, 0, 1, 1, 4, Answer::BadVersion)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn a_write_answer_with_the_wrong_version_fails() {
        let h = [write(1, 1, 0, 1, 1), write(2, 2, 2, 3, 3)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
    }

    #[test]
    fn an_unanswered_write_may_take_effect_late_or_never() {
        // Never: later reads see the initial value.
        let h = [lost_write(1, 1, 0), read(2, 50, 60, 0, 0)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // Late: after other answered ops.
        let h = [lost_write(1, 1, 0), write(2, 2, 10, 20, 1), read(3, 30, 40, 2, 1), read(4, 50, 60, 1, 2)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // But not before it was invoked.
        let h = [read(2, 0, 5, 1, 1), lost_write(1, 1, 10)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
        // And once seen, it cannot be undone.
        let h = [lost_write(1, 1, 0), read(2, 10, 20, 1, 1), read(3, 30, 40, 0, 0)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
    }

    #[test]
    fn several_unanswered_writes_may_all_take_effect() {
        // Two lost writes both committed: the answered one sees version 3.
        let h = [lost_write(1, 1, 0), lost_write(2, 2, 0), write(3, 3, 10, 20, 3)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // Only one was invoked in time to come before it.
        let h = [lost_write(1, 1, 0), lost_write(2, 2, 30), write(3, 3, 10, 20, 3)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
        let h = [lost_write(1, 1, 0), lost_write(2, 2, 30), write(3, 3, 10, 20, 2)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn unanswered_writes_and_cases_are_not_interchangeable() {
        // The lost CAS expects version 0, so it must come before the lost
        // write; the search must not stop at the write-first order.
        let lost_cas = op(1, OpKind::Cas { expected: 0, value: 1 }, 0, None, Answer::Unknown);
        let h = [lost_write(2, 2, 0), lost_cas, write(3, 3, 10, 20, 3)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_an_unanswered_write_pins_its_version() {
        let h = [write(1, 1, 0, 5, 1), lost_write(2, 2, 0), read(3, 10, 20, 2, 2)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
        // Version 1 is the answered write's.
        let h = [write(1, 1, 0, 5, 1), lost_write(2, 2, 0), read(3, 10, 20, 2, 1)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
    }

    #[test]
    fn many_early_unanswered_writes_stay_cheap() {
        // Forty lost writes open for good, then a long answered history
        // around them: the symmetry pruning keeps this linear.
        let mut h: Vec<RegOp> = (1..=40).map(|i| lost_write(i, i, 0)).collect();
        for i in 0..500u64 {
            let t = 100 + i * 10;
            h.push(write(100 + 2 * i, 100 + i, t, t + 3, i as i32 + 1));
            h.push(read(101 + 2 * i, t + 4, t + 6, 100 + i, i as i32 + 1));
        }
        assert_eq!(check(&h, INIT, 200_000), Verdict::Linearizable);
        // And a stale read at the end is still found, not given up on.
        h.push(read(5000, 10_000, 10_001, 100, 1));
        assert!(matches!(check(&h, INIT, 200_000), Verdict::Violation(_)));
    }

    #[test]
    fn an_unanswered_cas_needs_its_version() {
        let lost_cas = op(1, OpKind::Cas { expected: 5, value: 1 }, 0, None, Answer::Unknown);
        let h = [lost_cas.clone(), read(2, 10, 20, 1, 6)];
        assert!(matches!(check(&h, INIT, BOUND), Verdict::Violation(_)));
        let h = [lost_cas, read(2, 10, 20, 0, 0)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn an_unanswered_read_is_left_out() {
        let h = [write(1, 1, 0, 5, 1), op(2, OpKind::Read, 6, None, Answer::Unknown)];
        assert_eq!(check(&h, INIT, BOUND), Verdict::Linearizable);
    }

    #[test]
    fn the_work_bound_reports_inconclusive_not_pass() {
        // Many concurrent unanswered writes, then a read of a value nobody
        // wrote: the search must try many orders to give up.
        let mut h: Vec<RegOp> = (1..=20).map(|i| lost_write(i, i, 0)).collect();
        h.push(read(99, 10, 20, 999, 3));
        assert_eq!(check(&h, INIT, 50), Verdict::Inconclusive { steps: 50 });
    }

    #[test]
    fn long_sequential_histories_are_cheap() {
        let mut h = Vec::new();
        for i in 0..2_000u64 {
            let t = i * 10;
            h.push(write(2 * i + 1, i + 1, t, t + 3, i as i32 + 1));
            h.push(read(2 * i + 2, t + 4, t + 6, i + 1, i as i32 + 1));
        }
        assert_eq!(check(&h, INIT, 20_000), Verdict::Linearizable);
    }
}
