//! Per-shard watch registry: the watches of the sessions connected to one
//! worker shard. Sans-IO; the shard turns `trigger` results into event
//! frames. Rules follow ZooKeeper's WatchManager (reference §7).

use crate::proto::{watcher_type, EventType};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub type SessionId = i64;

/// Mode bits of one (session, path) entry in a table; an entry can hold
/// several at once (e.g. a getData watch plus a persistent watch).
const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// One table (data or child): path -> session -> mode bits, plus the
/// reverse index for connection close.
#[derive(Debug, Default, Clone)]
struct Table {
    by_path: HashMap<String, HashMap<SessionId, u8>>,
    by_session: HashMap<SessionId, HashSet<String>>,
    /// Entries holding the RECURSIVE bit; ancestor walks are skipped at 0.
    recursive: usize,
    /// (session, path) entries.
    entries: usize,
}

impl Table {
    fn add(&mut self, session: SessionId, path: &str, mode: u8) {
        let bits = self.by_path.entry(path.to_owned()).or_default().entry(session).or_insert(0);
        if *bits == 0 {
            self.entries += 1;
            self.by_session.entry(session).or_default().insert(path.to_owned());
        }
        if mode & RECURSIVE != 0 && *bits & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *bits |= mode;
    }

    fn has(&self, session: SessionId, path: &str, mode: u8) -> bool {
        self.by_path.get(path).and_then(|m| m.get(&session)).is_some_and(|bits| bits & mode != 0)
    }

    /// Clears `mode` bits of one entry; true if any were set.
    fn clear(&mut self, session: SessionId, path: &str, mode: u8) -> bool {
        let Some(sessions) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(bits) = sessions.get_mut(&session) else {
            return false;
        };
        let removed = *bits & mode;
        if removed == 0 {
            return false;
        }
        if removed & RECURSIVE != 0 {
            self.recursive -= 1;
        }
        *bits &= !mode;
        if *bits == 0 {
            sessions.remove(&session);
            if sessions.is_empty() {
                self.by_path.remove(path);
            }
            self.entries -= 1;
            if let Some(paths) = self.by_session.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        }
        true
    }

    /// Fires the table for an event at `path`: every entry on `path` (its
    /// STANDARD bit is consumed) and, when `with_ancestors`, RECURSIVE
    /// entries on ancestors. Sessions are appended to `out` if not in `seen`.
    fn fire(&mut self, path: &str, with_ancestors: bool, seen: &mut HashSet<SessionId>, out: &mut Vec<SessionId>) {
        let mut fired: Vec<SessionId> = self.by_path.get(path).map(|m| m.keys().copied().collect()).unwrap_or_default();
        fired.sort_unstable();
        for session in fired {
            self.clear(session, path, STANDARD);
            if seen.insert(session) {
                out.push(session);
            }
        }
        if !with_ancestors || self.recursive == 0 {
            return;
        }
        for ancestor in ancestors(path) {
            let Some(sessions) = self.by_path.get(ancestor) else {
                continue;
            };
            let mut hits: Vec<SessionId> =
                sessions.iter().filter(|(_, &bits)| bits & RECURSIVE != 0).map(|(&s, _)| s).collect();
            hits.sort_unstable();
            for session in hits {
                if seen.insert(session) {
                    out.push(session);
                }
            }
        }
    }

    fn remove_session(&mut self, session: SessionId) {
        let Some(paths) = self.by_session.get(&session).cloned() else {
            return;
        };
        for path in paths {
            self.clear(session, &path, STANDARD | PERSISTENT | RECURSIVE);
        }
    }
}

/// Proper ancestors of an absolute path, nearest first, ending with "/".
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = if path == "/" { None } else { Some(path) };
    std::iter::from_fn(move || {
        let current = rest?;
        let cut = current.rfind('/')?;
        let parent = if cut == 0 { "/" } else { &current[..cut] };
        rest = if parent == "/" { None } else { Some(parent) };
        Some(parent)
    })
}

#[derive(Debug, Default, Clone)]
pub struct WatchRegistry {
    data: Table,
    child: Table,
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// getData / exists watch: one-shot, data table.
    pub fn add_data_watch(&mut self, session: SessionId, path: &str) {
        self.data.add(session, path, STANDARD);
    }

    /// getChildren watch: one-shot, child table.
    pub fn add_child_watch(&mut self, session: SessionId, path: &str) {
        self.child.add(session, path, STANDARD);
    }

    /// addWatch PERSISTENT: persistent in both tables.
    pub fn add_persistent(&mut self, session: SessionId, path: &str) {
        self.data.add(session, path, PERSISTENT);
        self.child.add(session, path, PERSISTENT);
    }

    /// addWatch PERSISTENT_RECURSIVE: recursive, data table.
    pub fn add_persistent_recursive(&mut self, session: SessionId, path: &str) {
        self.data.add(session, path, RECURSIVE);
    }

    /// The sessions (sorted, each once) to notify of `event` at `path`;
    /// one-shot watches that fired are removed.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<SessionId> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        match event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.data.fire(path, true, &mut seen, &mut out);
            }
            EventType::NodeChildrenChanged => {
                self.child.fire(path, false, &mut seen, &mut out);
            }
            EventType::NodeDeleted => {
                self.data.fire(path, true, &mut seen, &mut out);
                self.child.fire(path, false, &mut seen, &mut out);
            }
        }
        out.sort_unstable();
        out
    }

    /// The (table, bits) pairs a checkWatches/removeWatches type selects.
    fn selection(watcher_type: i32) -> Option<[(bool, u8); 2]> {
        // (is_data_table, bits); a zero-bit slot selects nothing.
        Some(match watcher_type {
            watcher_type::CHILDREN => [(false, STANDARD), (true, 0)],
            watcher_type::DATA => [(true, STANDARD), (false, 0)],
            watcher_type::ANY => [(true, STANDARD | PERSISTENT | RECURSIVE), (false, STANDARD | PERSISTENT)],
            watcher_type::PERSISTENT => [(true, PERSISTENT), (false, PERSISTENT)],
            watcher_type::PERSISTENT_RECURSIVE => [(true, RECURSIVE), (false, 0)],
            _ => return None,
        })
    }

    /// checkWatches: does `session` hold a watch of this type on `path`?
    /// Unknown types never match.
    pub fn check(&self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        let Some(selection) = Self::selection(watcher_type) else {
            return false;
        };
        selection.iter().any(|&(is_data, bits)| {
            bits != 0 && if is_data { &self.data } else { &self.child }.has(session, path, bits)
        })
    }

    /// removeWatches: drops matching watches; false (NoWatcher) if none.
    pub fn remove(&mut self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        let Some(selection) = Self::selection(watcher_type) else {
            return false;
        };
        let mut removed = false;
        for (is_data, bits) in selection {
            if bits != 0 {
                let table = if is_data { &mut self.data } else { &mut self.child };
                removed |= table.clear(session, path, bits);
            }
        }
        removed
    }

    /// Connection closed: forget all of its watches.
    pub fn remove_session(&mut self, session: SessionId) {
        self.data.remove_session(session);
        self.child.remove_session(session);
    }

    /// wchc: session -> watched paths (data table, as ZooKeeper reports).
    pub fn by_session(&self) -> BTreeMap<SessionId, Vec<String>> {
        self.data
            .by_session
            .iter()
            .map(|(&s, paths)| {
                let sorted: BTreeSet<&String> = paths.iter().collect();
                (s, sorted.into_iter().cloned().collect())
            })
            .collect()
    }

    /// wchp: path -> watching sessions (data table, as ZooKeeper reports).
    pub fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
        self.data
            .by_path
            .iter()
            .map(|(p, sessions)| {
                let mut ids: Vec<SessionId> = sessions.keys().copied().collect();
                ids.sort_unstable();
                (p.clone(), ids)
            })
            .collect()
    }

    /// wchs "Total watches": (session, path) entries in the data table.
    pub fn data_watch_count(&self) -> usize {
        self.data.entries
    }

    /// mntr zk_watch_count: data plus child entries.
    pub fn total_watch_count(&self) -> usize {
        self.data.entries + self.child.entries
    }

    /// wchs "<N> connections": sessions with a data-table watch.
    pub fn watching_session_count(&self) -> usize {
        self.data.by_session.len()
    }

    /// wchs "watching <M> paths": paths in the data table.
    pub fn watched_path_count(&self) -> usize {
        self.data.by_path.len()
    }

    /// True when nothing is registered (for tests and shard bookkeeping).
    pub fn is_empty(&self) -> bool {
        self.data.entries == 0 && self.child.entries == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use EventType::*;

    #[test]
    fn ancestors_walk() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), vec!["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), vec!["/"]);
        assert_eq!(ancestors("/").count(), 0);
    }

    #[test]
    fn one_shot_data_watch_fires_once() {
        let mut w = WatchRegistry::new();
        w.add_data_watch(1, "/a");
        w.add_data_watch(1, "/a");
        assert_eq!(w.data_watch_count(), 1);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![1]);
        assert_eq!(w.trigger("/a", NodeDataChanged), Vec::<SessionId>::new());
        assert!(w.is_empty());
    }

    #[test]
    fn children_changed_only_child_table() {
        let mut w = WatchRegistry::new();
        w.add_data_watch(1, "/p");
        w.add_child_watch(2, "/p");
        w.add_persistent_recursive(3, "/");
        w.add_persistent(4, "/p");
        assert_eq!(w.trigger("/p", NodeChildrenChanged), vec![2, 4]);
        assert!(w.check(1, "/p", watcher_type::DATA));
        assert!(!w.check(2, "/p", watcher_type::CHILDREN));
        assert!(w.check(4, "/p", watcher_type::PERSISTENT));
    }

    #[test]
    fn recursive_and_persistent() {
        let mut w = WatchRegistry::new();
        w.add_persistent_recursive(1, "/a");
        w.add_persistent(2, "/a/b");
        w.add_data_watch(3, "/a/b");
        assert_eq!(w.trigger("/a/b", NodeCreated), vec![1, 2, 3]);
        assert_eq!(w.trigger("/a/b", NodeDataChanged), vec![1, 2]);
        assert_eq!(w.trigger("/a/b/c/d", NodeDataChanged), vec![1]);
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![1]);
        assert_eq!(w.trigger("/x", NodeCreated), Vec::<SessionId>::new());
        // a persistent (non-recursive) watch does not cover descendants
        assert_eq!(w.trigger("/a/b/c", NodeCreated), vec![1]);
    }

    #[test]
    fn delete_notifies_each_session_once() {
        let mut w = WatchRegistry::new();
        w.add_data_watch(1, "/n");
        w.add_child_watch(1, "/n");
        w.add_child_watch(2, "/n");
        w.add_persistent_recursive(3, "/");
        w.add_child_watch(3, "/n");
        assert_eq!(w.trigger("/n", NodeDeleted), vec![1, 2, 3]);
        // all one-shot watches consumed, both tables
        assert_eq!(w.total_watch_count(), 1);
        assert!(w.check(3, "/", watcher_type::PERSISTENT_RECURSIVE));
    }

    #[test]
    fn check_and_remove_by_type() {
        let mut w = WatchRegistry::new();
        w.add_data_watch(1, "/a");
        w.add_persistent(1, "/a");
        w.add_child_watch(1, "/a");
        assert!(w.check(1, "/a", watcher_type::DATA));
        assert!(!w.check(1, "/a", watcher_type::PERSISTENT_RECURSIVE));
        assert!(!w.check(1, "/a", 99));
        assert!(w.remove(1, "/a", watcher_type::DATA));
        assert!(!w.remove(1, "/a", watcher_type::DATA));
        assert!(w.check(1, "/a", watcher_type::CHILDREN));
        assert!(w.remove(1, "/a", watcher_type::PERSISTENT));
        assert!(!w.check(1, "/a", watcher_type::PERSISTENT));
        assert_eq!(w.trigger("/a", NodeDataChanged), Vec::<SessionId>::new());
        assert!(w.remove(1, "/a", watcher_type::ANY));
        assert!(w.is_empty());
        assert!(!w.remove(1, "/a", watcher_type::ANY));
        w.add_persistent_recursive(2, "/r");
        assert!(w.remove(2, "/r", watcher_type::PERSISTENT_RECURSIVE));
        assert_eq!(w.trigger("/r/x", NodeCreated), Vec::<SessionId>::new());
    }

    #[test]
    fn remove_session_and_introspection() {
        let mut w = WatchRegistry::new();
        w.add_data_watch(1, "/a");
        w.add_data_watch(1, "/b");
        w.add_data_watch(2, "/a");
        w.add_child_watch(2, "/c");
        w.add_persistent_recursive(2, "/r");
        assert_eq!(w.watching_session_count(), 2);
        assert_eq!(w.watched_path_count(), 3);
        assert_eq!(w.data_watch_count(), 4);
        assert_eq!(w.total_watch_count(), 5);
        assert_eq!(w.by_path().get("/a"), Some(&vec![1, 2]));
        assert_eq!(w.by_session().get(&1), Some(&vec!["/a".to_owned(), "/b".to_owned()]));
        w.remove_session(2);
        assert_eq!(w.total_watch_count(), 2);
        assert_eq!(w.trigger("/r/x", NodeCreated), Vec::<SessionId>::new());
        assert_eq!(w.trigger("/c", NodeChildrenChanged), Vec::<SessionId>::new());
        assert_eq!(w.by_path().get("/a"), Some(&vec![1]));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Data(SessionId, usize),
        Child(SessionId, usize),
        Persistent(SessionId, usize),
        Recursive(SessionId, usize),
        Trigger(usize, u8),
        Remove(SessionId, usize, i32),
        Close(SessionId),
    }

    const PATHS: [&str; 5] = ["/", "/a", "/a/b", "/a/b/c", "/d"];

    fn op() -> impl Strategy<Value = Op> {
        let s = 1i64..4;
        let p = 0usize..PATHS.len();
        prop_oneof![
            (s.clone(), p.clone()).prop_map(|(s, p)| Op::Data(s, p)),
            (s.clone(), p.clone()).prop_map(|(s, p)| Op::Child(s, p)),
            (s.clone(), p.clone()).prop_map(|(s, p)| Op::Persistent(s, p)),
            (s.clone(), p.clone()).prop_map(|(s, p)| Op::Recursive(s, p)),
            (p.clone(), 1u8..5).prop_map(|(p, e)| Op::Trigger(p, e)),
            (s.clone(), p, 1i32..6).prop_map(|(s, p, t)| Op::Remove(s, p, t)),
            s.prop_map(Op::Close),
        ]
    }

    proptest! {
        #[test]
        fn never_double_delivers(ops in proptest::collection::vec(op(), 1..80)) {
            let mut w = WatchRegistry::new();
            // model: live one-shot (session, path, is_data) and persistent sets
            let mut one_shot: HashSet<(SessionId, usize, bool)> = HashSet::new();
            let mut persistent: HashSet<(SessionId, usize)> = HashSet::new();
            let mut recursive: HashSet<(SessionId, usize)> = HashSet::new();
            for op in ops {
                match op {
                    Op::Data(s, p) => { w.add_data_watch(s, PATHS[p]); one_shot.insert((s, p, true)); }
                    Op::Child(s, p) => { w.add_child_watch(s, PATHS[p]); one_shot.insert((s, p, false)); }
                    Op::Persistent(s, p) => { w.add_persistent(s, PATHS[p]); persistent.insert((s, p)); }
                    Op::Recursive(s, p) => { w.add_persistent_recursive(s, PATHS[p]); recursive.insert((s, p)); }
                    Op::Close(s) => {
                        w.remove_session(s);
                        one_shot.retain(|e| e.0 != s);
                        persistent.retain(|e| e.0 != s);
                        recursive.retain(|e| e.0 != s);
                    }
                    Op::Remove(s, p, t) => {
                        let _ = w.remove(s, PATHS[p], t);
                        if t == watcher_type::DATA || t == watcher_type::ANY { one_shot.remove(&(s, p, true)); }
                        if t == watcher_type::CHILDREN || t == watcher_type::ANY { one_shot.remove(&(s, p, false)); }
                        if t == watcher_type::PERSISTENT || t == watcher_type::ANY { persistent.remove(&(s, p)); }
                        if t == watcher_type::PERSISTENT_RECURSIVE || t == watcher_type::ANY { recursive.remove(&(s, p)); }
                    }
                    Op::Trigger(p, e) => {
                        let event = EventType::from_code(e as i32).unwrap();
                        let path = PATHS[p];
                        let got = w.trigger(path, event);
                        let unique: BTreeSet<_> = got.iter().copied().collect();
                        prop_assert_eq!(unique.len(), got.len(), "double delivery");
                        let uses_data = event != NodeChildrenChanged;
                        let uses_child = matches!(event, NodeChildrenChanged | NodeDeleted);
                        let mut expected = BTreeSet::new();
                        for &(s, wp, is_data) in &one_shot {
                            if wp == p && ((is_data && uses_data) || (!is_data && uses_child)) { expected.insert(s); }
                        }
                        for &(s, wp) in &persistent {
                            if wp == p { expected.insert(s); }
                        }
                        if uses_data {
                            for &(s, wp) in &recursive {
                                let wpath = PATHS[wp];
                                let covers = wpath == path || wpath == "/" || path.starts_with(&format!("{wpath}/"));
                                if covers { expected.insert(s); }
                            }
                        }
                        prop_assert_eq!(&unique, &expected);
                        one_shot.retain(|&(_, wp, is_data)| {
                            !(wp == p && ((is_data && uses_data) || (!is_data && uses_child)))
                        });
                    }
                }
            }
        }
    }
}
