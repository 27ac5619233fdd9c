//! Per-shard watch registry: the watches of the sessions connected to one
//! worker shard. Sans-IO; the shard turns `trigger` results into event
//! frames. Rules follow ZooKeeper's WatchManager (reference §7).
//!
//! **Layout** (sized for 10M watches over 1,000 sessions; cost per field in
//! docs/architecture.md):
//! * each watched path is interned once: a `PathSlot` in a slab (`slots`,
//!   indexed by a u32 path id) holds the path string, its watchers and two
//!   counters; `path_index` (a hash table of bare path ids, hashed by the
//!   path string) finds the slot of a path without storing the string twice;
//! * a path's watchers are packed u32s, connection index << 4 | kind bits,
//!   inline when there is one, a sorted boxed slice up to
//!   `SMALL_WATCHERS_MAX`, a hash table beyond (so adding, finding or
//!   dropping one watcher is O(1) however many share the path);
//! * each connection (session) has a dense index and a list of the path ids
//!   it watches. The list is lazy: a one-shot watch that fires or a removed
//!   watch leaves its id behind, and the list is compacted once it holds
//!   more than twice its live entries, so it stays O(its watches).
//!
//! One (path, session) entry carries all of that session's kinds on the
//! path in four bits: one-shot data (getData/exists), one-shot child
//! (getChildren), persistent (both of ZooKeeper's tables) and
//! persistent-recursive (data table). ZooKeeper's two tables are views:
//! the data table is the entries with a data, persistent or recursive bit,
//! the child table those with a child or persistent bit.
//!
//! **Costs.** Triggering a path visits that path's watchers, plus, only
//! while recursive watches exist, the recursive holders of its ancestors;
//! removing a session visits its own list; wchs is O(1) from counters kept
//! on every change; wchc/wchp walk in chunks from a cursor
//! (`write_watches_by_path` / `write_watches_by_session`) so the shard can
//! yield between chunks. `watchers_visited` counts the entries the
//! registry has touched, so tests can check those bounds by count.

use crate::proto::{watcher_type, EventType};
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

pub type SessionId = i64;

/// Kind bits of one (path, session) entry; an entry can hold several at
/// once (e.g. a getData watch plus a persistent watch).
const DATA_ONCE: u8 = 1;
const CHILD_ONCE: u8 = 2;
const PERSISTENT: u8 = 4;
const RECURSIVE: u8 = 8;
/// The bits that make an entry part of ZooKeeper's data / child table.
const DATA_TABLE: u8 = DATA_ONCE | PERSISTENT | RECURSIVE;
const CHILD_TABLE: u8 = CHILD_ONCE | PERSISTENT;
const KIND_BITS: u32 = 4;
const KIND_MASK: u32 = (1 << KIND_BITS) - 1;

/// Connections one registry can index: the index shares a u32 with the
/// kind bits. A shard holds far fewer (every one is a socket).
pub const REGISTRY_MAX_CONNECTIONS: usize = 1 << (32 - KIND_BITS);
/// Watchers of one path kept as a sorted slice (binary search, one exact
/// allocation, no hash table); more go to a hash table.
const SMALL_WATCHERS_MAX: usize = 8;
/// A connection's lazy path list is compacted once it is longer than
/// twice its live entries plus this slack.
const CONN_LIST_SLACK_ENTRIES: usize = 8;

type PathId = u32;
type ConnIdx = u32;

/// One watcher of a path: connection index and kind bits in one u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Watcher(u32);

impl Watcher {
    fn new(conn: ConnIdx, kinds: u8) -> Watcher {
        Watcher((conn << KIND_BITS) | (kinds as u32 & KIND_MASK))
    }
    fn conn(self) -> ConnIdx {
        self.0 >> KIND_BITS
    }
    fn kinds(self) -> u8 {
        (self.0 & KIND_MASK) as u8
    }
}

/// Connection indexes are dense and ours, not a client's: a multiply mix
/// spreads them over the buckets.
fn conn_hash(conn: ConnIdx) -> u64 {
    (conn as u64 | 1 << 40).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The watchers of one path, sized for the common case of one.
#[derive(Debug, Clone)]
enum Watchers {
    One(Watcher),
    /// Sorted by connection; empty when the path has none.
    Small(Box<[Watcher]>),
    Large(Box<HashTable<Watcher>>),
}

impl Watchers {
    fn len(&self) -> usize {
        match self {
            Watchers::One(_) => 1,
            Watchers::Small(list) => list.len(),
            Watchers::Large(table) => table.len(),
        }
    }

    fn get(&self, conn: ConnIdx) -> u8 {
        match self {
            Watchers::One(w) => {
                if w.conn() == conn {
                    w.kinds()
                } else {
                    0
                }
            }
            Watchers::Small(list) => {
                list.binary_search_by_key(&conn, |w| w.conn()).ok().and_then(|i| list.get(i)).map_or(0, |w| w.kinds())
            }
            Watchers::Large(table) => table.find(conn_hash(conn), |w| w.conn() == conn).map_or(0, |w| w.kinds()),
        }
    }

    fn for_each(&self, mut f: impl FnMut(Watcher)) {
        match self {
            Watchers::One(w) => f(*w),
            Watchers::Small(list) => list.iter().copied().for_each(f),
            Watchers::Large(table) => table.iter().copied().for_each(f),
        }
    }

    /// Sets the kinds of `conn` (0 removes it).
    fn set(&mut self, conn: ConnIdx, kinds: u8) {
        let entry = Watcher::new(conn, kinds);
        match self {
            Watchers::One(w) if w.conn() == conn => {
                *self = if kinds == 0 { Watchers::Small(Box::default()) } else { Watchers::One(entry) };
            }
            Watchers::One(w) => {
                if kinds != 0 {
                    let mut pair = [*w, entry];
                    pair.sort_unstable_by_key(|w| w.conn());
                    *self = Watchers::Small(Box::new(pair));
                }
            }
            Watchers::Small(list) => match list.binary_search_by_key(&conn, |w| w.conn()) {
                Ok(at) if kinds != 0 => {
                    if let Some(slot) = list.get_mut(at) {
                        *slot = entry;
                    }
                }
                Ok(at) => {
                    let rest: Vec<Watcher> =
                        list.iter().enumerate().filter(|&(i, _)| i != at).map(|(_, w)| *w).collect();
                    *self = match rest.as_slice() {
                        [only] => Watchers::One(*only),
                        _ => Watchers::Small(rest.into_boxed_slice()),
                    };
                }
                Err(_) if kinds == 0 => {}
                Err(_) if list.is_empty() => *self = Watchers::One(entry),
                Err(at) if list.len() < SMALL_WATCHERS_MAX => {
                    let mut grown = Vec::with_capacity(list.len() + 1);
                    grown.extend_from_slice(list.get(..at).unwrap_or_default());
                    grown.push(entry);
                    grown.extend_from_slice(list.get(at..).unwrap_or_default());
                    *self = Watchers::Small(grown.into_boxed_slice());
                }
                Err(_) => {
                    let mut table = HashTable::with_capacity(list.len() * 2);
                    for w in list.iter().copied().chain([entry]) {
                        table.insert_unique(conn_hash(w.conn()), w, |w| conn_hash(w.conn()));
                    }
                    *self = Watchers::Large(Box::new(table));
                }
            },
            Watchers::Large(table) => {
                match table.find_entry(conn_hash(conn), |w| w.conn() == conn) {
                    Ok(mut found) if kinds != 0 => *found.get_mut() = entry,
                    Ok(found) => {
                        found.remove();
                    }
                    Err(_) if kinds == 0 => {}
                    Err(_) => {
                        table.insert_unique(conn_hash(conn), entry, |w| conn_hash(w.conn()));
                    }
                }
                // Shrunk well below the switch point: back to a slice, so a
                // path that once was popular does not keep a table.
                if table.len() <= SMALL_WATCHERS_MAX / 2 {
                    let mut list: Vec<Watcher> = table.iter().copied().collect();
                    list.sort_unstable_by_key(|w| w.conn());
                    *self = match list.as_slice() {
                        [only] => Watchers::One(*only),
                        _ => Watchers::Small(list.into_boxed_slice()),
                    };
                }
            }
        }
    }
}

/// One watched path.
#[derive(Debug, Clone)]
struct PathSlot {
    path: Box<str>,
    watchers: Watchers,
    /// Watchers with a data-table bit (wchs "watching M paths").
    data_watchers: u32,
    /// Watchers with the recursive bit (ancestor walks look only here).
    recursive_watchers: u32,
}

/// One connection's (session's) side.
#[derive(Debug, Clone)]
struct ConnWatches {
    session: SessionId,
    /// Path ids it watches, lazily: may hold ids it no longer watches
    /// (even ids since reused by another path) and repeats.
    paths: Vec<PathId>,
    /// Paths it has an entry on.
    live: u32,
    /// Of those, paths with a data-table bit.
    data_live: u32,
}

/// Hasher for session ids in the session -> connection map: ids are made
/// by the server, so a multiply mix is enough.
#[derive(Default)]
struct SessionIdHasher(u64);

impl Hasher for SessionIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (v as u64 ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

#[derive(Debug, Clone, Default)]
pub struct WatchRegistry {
    slots: Vec<Option<PathSlot>>,
    free_slots: Vec<PathId>,
    /// Path ids, hashed by their slot's path.
    path_index: HashTable<PathId>,
    /// Mixed into every path hash: client-chosen paths cannot be aimed at
    /// one bucket without knowing it.
    hash_seed: u64,
    conns: Vec<Option<ConnWatches>>,
    free_conns: Vec<ConnIdx>,
    conn_of: HashMap<SessionId, ConnIdx, BuildHasherDefault<SessionIdHasher>>,
    /// (path, session) entries in ZooKeeper's data / child table.
    data_entries: usize,
    child_entries: usize,
    /// Entries holding the recursive bit; ancestor walks are skipped at 0.
    recursive_entries: usize,
    sessions_with_data: usize,
    paths_with_data: usize,
    watchers_visited: u64,
}

impl WatchRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry whose path hashing is keyed by `seed` (pass the shard's
    /// seed; `new()` uses 0).
    pub fn with_hash_seed(seed: u64) -> Self {
        WatchRegistry { hash_seed: seed, ..Self::default() }
    }

    fn path_hash(seed: u64, path: &str) -> u64 {
        // SipHash-1-3 (std's), seeded by a prefix.
        let mut h = std::hash::DefaultHasher::new();
        h.write_u64(seed);
        h.write(path.as_bytes());
        h.finish()
    }

    fn lookup(&self, path: &str) -> Option<PathId> {
        let slots = &self.slots;
        self.path_index
            .find(Self::path_hash(self.hash_seed, path), |&id| {
                slots.get(id as usize).and_then(Option::as_ref).is_some_and(|s| &*s.path == path)
            })
            .copied()
    }

    /// The slot of `path`, made if new.
    fn intern(&mut self, path: &str) -> PathId {
        if let Some(id) = self.lookup(path) {
            return id;
        }
        let slot = PathSlot {
            path: path.into(),
            watchers: Watchers::Small(Box::default()),
            data_watchers: 0,
            recursive_watchers: 0,
        };
        let id = match self.free_slots.pop() {
            Some(id) => {
                if let Some(free) = self.slots.get_mut(id as usize) {
                    *free = Some(slot);
                }
                id
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as PathId
            }
        };
        let (seed, slots) = (self.hash_seed, &self.slots);
        self.path_index.insert_unique(Self::path_hash(seed, path), id, |&other| {
            slots.get(other as usize).and_then(Option::as_ref).map_or(0, |s| Self::path_hash(seed, &s.path))
        });
        id
    }

    fn release_slot(&mut self, id: PathId) {
        let Some(slot) = self.slots.get_mut(id as usize).and_then(Option::take) else { return };
        if let Ok(found) = self.path_index.find_entry(Self::path_hash(self.hash_seed, &slot.path), |&other| other == id)
        {
            found.remove();
        }
        self.free_slots.push(id);
    }

    fn conn_index(&mut self, session: SessionId) -> Option<ConnIdx> {
        if let Some(&conn) = self.conn_of.get(&session) {
            return Some(conn);
        }
        let record = ConnWatches { session, paths: Vec::new(), live: 0, data_live: 0 };
        let conn = match self.free_conns.pop() {
            Some(conn) => {
                if let Some(free) = self.conns.get_mut(conn as usize) {
                    *free = Some(record);
                }
                conn
            }
            None if self.conns.len() < REGISTRY_MAX_CONNECTIONS => {
                self.conns.push(Some(record));
                (self.conns.len() - 1) as ConnIdx
            }
            None => return None,
        };
        self.conn_of.insert(session, conn);
        Some(conn)
    }

    /// Changes the kinds of one entry to `f(old)`, keeping every counter,
    /// list and slot in step. Returns the old kinds.
    fn update(&mut self, conn: ConnIdx, path: PathId, f: impl FnOnce(u8) -> u8) -> u8 {
        let Some(slot) = self.slots.get_mut(path as usize).and_then(Option::as_mut) else { return 0 };
        let Some(record) = self.conns.get_mut(conn as usize).and_then(Option::as_mut) else { return 0 };
        self.watchers_visited += 1;
        let old = slot.watchers.get(conn);
        let new = f(old) & (KIND_MASK as u8);
        if old == new {
            return old;
        }
        slot.watchers.set(conn, new);
        let (was_data, is_data) = (old & DATA_TABLE != 0, new & DATA_TABLE != 0);
        if was_data != is_data {
            if is_data {
                self.data_entries += 1;
                slot.data_watchers += 1;
                self.paths_with_data += usize::from(slot.data_watchers == 1);
                record.data_live += 1;
                self.sessions_with_data += usize::from(record.data_live == 1);
            } else {
                self.data_entries -= 1;
                slot.data_watchers -= 1;
                self.paths_with_data -= usize::from(slot.data_watchers == 0);
                record.data_live -= 1;
                self.sessions_with_data -= usize::from(record.data_live == 0);
            }
        }
        match (old & CHILD_TABLE != 0, new & CHILD_TABLE != 0) {
            (false, true) => self.child_entries += 1,
            (true, false) => self.child_entries -= 1,
            _ => {}
        }
        match (old & RECURSIVE != 0, new & RECURSIVE != 0) {
            (false, true) => {
                self.recursive_entries += 1;
                slot.recursive_watchers += 1;
            }
            (true, false) => {
                self.recursive_entries -= 1;
                slot.recursive_watchers -= 1;
            }
            _ => {}
        }
        let emptied = slot.watchers.len() == 0;
        if old == 0 {
            record.live += 1;
            record.paths.push(path);
        } else if new == 0 {
            record.live -= 1;
            if record.paths.len() > 2 * record.live as usize + CONN_LIST_SLACK_ENTRIES {
                let mut paths = std::mem::take(&mut record.paths);
                self.compact(conn, &mut paths, if emptied { Some(path) } else { None });
                if let Some(record) = self.conns.get_mut(conn as usize).and_then(Option::as_mut) {
                    record.paths = paths;
                }
            }
        }
        if emptied {
            self.release_slot(path);
        }
        old
    }

    /// Drops the ids `conn` no longer watches (and repeats) from its list.
    /// `dropping` is a slot about to be released (it has no watchers).
    fn compact(&mut self, conn: ConnIdx, paths: &mut Vec<PathId>, dropping: Option<PathId>) {
        self.watchers_visited += paths.len() as u64;
        let slots = &self.slots;
        paths.retain(|&id| {
            Some(id) != dropping
                && slots.get(id as usize).and_then(Option::as_ref).is_some_and(|s| s.watchers.get(conn) != 0)
        });
        paths.sort_unstable();
        paths.dedup();
        paths.shrink_to(paths.len() * 2);
    }

    fn add(&mut self, session: SessionId, path: &str, kinds: u8) {
        let Some(conn) = self.conn_index(session) else { return };
        let id = self.intern(path);
        self.update(conn, id, |old| old | kinds);
        // A new slot nobody ended up in (only when the connection table is
        // full, which returns above) would be released by `update`.
    }

    /// getData / exists watch: one-shot, data table.
    pub fn add_data_watch(&mut self, session: SessionId, path: &str) {
        self.add(session, path, DATA_ONCE);
    }

    /// getChildren watch: one-shot, child table.
    pub fn add_child_watch(&mut self, session: SessionId, path: &str) {
        self.add(session, path, CHILD_ONCE);
    }

    /// addWatch PERSISTENT: persistent in both tables.
    pub fn add_persistent(&mut self, session: SessionId, path: &str) {
        self.add(session, path, PERSISTENT);
    }

    /// addWatch PERSISTENT_RECURSIVE: recursive, data table.
    pub fn add_persistent_recursive(&mut self, session: SessionId, path: &str) {
        self.add(session, path, RECURSIVE);
    }

    /// Fires the entries of `path` with a bit in `table`, consuming the
    /// `once` bit; fired connections are appended to `out`.
    fn fire_at(&mut self, path: PathId, table: u8, once: u8, out: &mut Vec<ConnIdx>) {
        let Some(slot) = self.slots.get(path as usize).and_then(Option::as_ref) else { return };
        let mut consumed = Vec::new();
        let mut visited = 0u64;
        slot.watchers.for_each(|w| {
            visited += 1;
            if w.kinds() & table != 0 {
                out.push(w.conn());
                if w.kinds() & once != 0 {
                    consumed.push(w.conn());
                }
            }
        });
        self.watchers_visited += visited;
        for conn in consumed {
            self.update(conn, path, |kinds| kinds & !once);
        }
    }

    /// The sessions (sorted, each once) to notify of `event` at `path`;
    /// one-shot watches that fired are removed.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<SessionId> {
        let mut fired: Vec<ConnIdx> = Vec::new();
        let id = self.lookup(path);
        let uses_data = event != EventType::NodeChildrenChanged;
        let uses_child = matches!(event, EventType::NodeChildrenChanged | EventType::NodeDeleted);
        if let Some(id) = id {
            if uses_data {
                self.fire_at(id, DATA_TABLE, DATA_ONCE, &mut fired);
            }
            if uses_child {
                // The data pass may have released the slot (and nothing can
                // have reused the id since).
                self.fire_at(id, CHILD_TABLE, CHILD_ONCE, &mut fired);
            }
        }
        if uses_data && self.recursive_entries > 0 {
            for ancestor in ancestors(path) {
                let Some(slot) =
                    self.lookup(ancestor).and_then(|a| self.slots.get(a as usize)).and_then(Option::as_ref)
                else {
                    continue;
                };
                if slot.recursive_watchers == 0 {
                    continue;
                }
                let mut visited = 0u64;
                slot.watchers.for_each(|w| {
                    visited += 1;
                    if w.kinds() & RECURSIVE != 0 {
                        fired.push(w.conn());
                    }
                });
                self.watchers_visited += visited;
            }
        }
        let mut sessions: Vec<SessionId> = fired
            .into_iter()
            .filter_map(|conn| self.conns.get(conn as usize).and_then(Option::as_ref).map(|c| c.session))
            .collect();
        sessions.sort_unstable();
        sessions.dedup();
        sessions
    }

    /// The kind bits a checkWatches/removeWatches type selects.
    fn selection(watcher_type: i32) -> Option<u8> {
        Some(match watcher_type {
            watcher_type::CHILDREN => CHILD_ONCE,
            watcher_type::DATA => DATA_ONCE,
            watcher_type::ANY => DATA_ONCE | CHILD_ONCE | PERSISTENT | RECURSIVE,
            watcher_type::PERSISTENT => PERSISTENT,
            watcher_type::PERSISTENT_RECURSIVE => RECURSIVE,
            _ => return None,
        })
    }

    fn kinds_of(&self, session: SessionId, path: &str) -> u8 {
        let Some(&conn) = self.conn_of.get(&session) else { return 0 };
        self.lookup(path)
            .and_then(|id| self.slots.get(id as usize))
            .and_then(Option::as_ref)
            .map_or(0, |slot| slot.watchers.get(conn))
    }

    /// checkWatches: does `session` hold a watch of this type on `path`?
    /// Unknown types never match.
    pub fn check(&self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        Self::selection(watcher_type).is_some_and(|bits| self.kinds_of(session, path) & bits != 0)
    }

    /// removeWatches: drops matching watches; false (NoWatcher) if none.
    pub fn remove(&mut self, session: SessionId, path: &str, watcher_type: i32) -> bool {
        let Some(bits) = Self::selection(watcher_type) else { return false };
        let (Some(&conn), Some(id)) = (self.conn_of.get(&session), self.lookup(path)) else { return false };
        self.update(conn, id, |kinds| kinds & !bits) & bits != 0
    }

    /// Connection closed: forget all of its watches, visiting only them.
    pub fn remove_session(&mut self, session: SessionId) {
        let Some(conn) = self.conn_of.remove(&session) else { return };
        let paths = self.conns.get_mut(conn as usize).and_then(Option::as_mut).map(|c| std::mem::take(&mut c.paths));
        for id in paths.unwrap_or_default() {
            self.update(conn, id, |_| 0);
        }
        if let Some(record) = self.conns.get_mut(conn as usize) {
            *record = None;
            self.free_conns.push(conn);
        }
    }

    /// Data-table paths of one connection, sorted.
    fn data_paths_of(&self, record: &ConnWatches, conn: ConnIdx) -> Vec<&str> {
        let mut ids = record.paths.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut paths: Vec<&str> = ids
            .into_iter()
            .filter_map(|id| self.slots.get(id as usize).and_then(Option::as_ref))
            .filter(|slot| slot.watchers.get(conn) & DATA_TABLE != 0)
            .map(|slot| &*slot.path)
            .collect();
        paths.sort_unstable();
        paths
    }

    /// Data-table sessions of one path, sorted.
    fn data_sessions_of(&self, slot: &PathSlot) -> Vec<SessionId> {
        let mut sessions = Vec::new();
        slot.watchers.for_each(|w| {
            if w.kinds() & DATA_TABLE != 0 {
                if let Some(record) = self.conns.get(w.conn() as usize).and_then(Option::as_ref) {
                    sessions.push(record.session);
                }
            }
        });
        sessions.sort_unstable();
        sessions
    }

    /// wchc: session -> watched paths (data table, as ZooKeeper reports).
    /// Walks everything: for tests and small registries; the shard uses
    /// `write_watches_by_session`.
    pub fn by_session(&self) -> BTreeMap<SessionId, Vec<String>> {
        self.conns
            .iter()
            .enumerate()
            .filter_map(|(conn, record)| record.as_ref().map(|r| (conn as ConnIdx, r)))
            .filter(|(_, r)| r.data_live > 0)
            .map(|(conn, r)| (r.session, self.data_paths_of(r, conn).into_iter().map(str::to_owned).collect()))
            .collect()
    }

    /// wchp: path -> watching sessions (data table, as ZooKeeper reports).
    /// Walks everything; the shard uses `write_watches_by_path`.
    pub fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
        self.slots
            .iter()
            .flatten()
            .filter(|slot| slot.data_watchers > 0)
            .map(|slot| (slot.path.to_string(), self.data_sessions_of(slot)))
            .collect()
    }

    /// One chunk of wchc's text ("0x<session>\n" then "\t<path>\n" per
    /// data-table path), for at most `max_sessions` connections from
    /// `cursor` (start at 0). Returns the next cursor, None when done. The
    /// registry may change between chunks; each session's lines are from
    /// one moment.
    pub fn write_watches_by_session(&self, cursor: usize, max_sessions: usize, out: &mut String) -> Option<usize> {
        let end = cursor.saturating_add(max_sessions.max(1)).min(self.conns.len());
        for conn in cursor..end {
            let Some(record) = self.conns.get(conn).and_then(Option::as_ref) else { continue };
            if record.data_live == 0 {
                continue;
            }
            let _ = writeln!(out, "0x{:x}", record.session);
            for path in self.data_paths_of(record, conn as ConnIdx) {
                let _ = writeln!(out, "\t{path}");
            }
        }
        (end < self.conns.len()).then_some(end)
    }

    /// One chunk of wchp's text ("<path>\n" then "\t0x<session>\n" per
    /// data-table watcher), for at most `max_paths` path slots from
    /// `cursor` (start at 0). Returns the next cursor, None when done.
    pub fn write_watches_by_path(&self, cursor: usize, max_paths: usize, out: &mut String) -> Option<usize> {
        let end = cursor.saturating_add(max_paths.max(1)).min(self.slots.len());
        for slot in self.slots.get(cursor..end).unwrap_or_default().iter().flatten() {
            if slot.data_watchers == 0 {
                continue;
            }
            let _ = writeln!(out, "{}", slot.path);
            for session in self.data_sessions_of(slot) {
                let _ = writeln!(out, "\t0x{session:x}");
            }
        }
        (end < self.slots.len()).then_some(end)
    }

    /// wchs "Total watches": (session, path) entries in the data table.
    pub fn data_watch_count(&self) -> usize {
        self.data_entries
    }

    /// mntr zk_watch_count: data plus child entries.
    pub fn total_watch_count(&self) -> usize {
        self.data_entries + self.child_entries
    }

    /// wchs "<N> connections": sessions with a data-table watch.
    pub fn watching_session_count(&self) -> usize {
        self.sessions_with_data
    }

    /// wchs "watching <M> paths": paths in the data table.
    pub fn watched_path_count(&self) -> usize {
        self.paths_with_data
    }

    /// True when nothing is registered (for tests and shard bookkeeping).
    pub fn is_empty(&self) -> bool {
        self.data_entries == 0 && self.child_entries == 0
    }

    /// Entries (watchers of a path, or a connection's list) the registry
    /// has visited since it was made: the work triggers and removals did.
    pub fn watchers_visited(&self) -> u64 {
        self.watchers_visited
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, HashSet};
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

    /// The model: (path, session) -> kind bits, with ZooKeeper's rules
    /// written out as plainly as possible.
    #[derive(Default)]
    struct Model {
        entries: HashMap<(String, SessionId), u8>,
    }

    impl Model {
        fn add(&mut self, s: SessionId, p: &str, kinds: u8) {
            *self.entries.entry((p.to_owned(), s)).or_insert(0) |= kinds;
        }
        fn clear(&mut self, s: SessionId, p: &str, bits: u8) -> bool {
            let key = (p.to_owned(), s);
            let Some(kinds) = self.entries.get_mut(&key) else { return false };
            let had = *kinds & bits != 0;
            *kinds &= !bits;
            if *kinds == 0 {
                self.entries.remove(&key);
            }
            had
        }
        fn covers(watched: &str, path: &str) -> bool {
            watched == path || watched == "/" || path.starts_with(&format!("{watched}/"))
        }
        fn trigger(&mut self, path: &str, event: EventType) -> Vec<SessionId> {
            let uses_data = event != NodeChildrenChanged;
            let uses_child = matches!(event, NodeChildrenChanged | NodeDeleted);
            let mut out = BTreeSet::new();
            for ((p, s), &kinds) in &self.entries {
                let here = p == path;
                let fires = (here && uses_data && kinds & (DATA_ONCE | PERSISTENT) != 0)
                    || (here && uses_child && kinds & (CHILD_ONCE | PERSISTENT) != 0)
                    || (uses_data && kinds & RECURSIVE != 0 && Self::covers(p, path));
                if fires {
                    out.insert(*s);
                }
            }
            let sessions: Vec<SessionId> = self.entries.keys().filter(|(p, _)| p == path).map(|(_, s)| *s).collect();
            for s in sessions {
                if uses_data {
                    self.clear(s, path, DATA_ONCE);
                }
                if uses_child {
                    self.clear(s, path, CHILD_ONCE);
                }
            }
            out.into_iter().collect()
        }
        fn selection(t: i32) -> u8 {
            WatchRegistry::selection(t).unwrap_or(0)
        }
        fn data_entries(&self) -> usize {
            self.entries.values().filter(|&&k| k & DATA_TABLE != 0).count()
        }
        fn child_entries(&self) -> usize {
            self.entries.values().filter(|&&k| k & CHILD_TABLE != 0).count()
        }
        fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
            let mut out: BTreeMap<String, Vec<SessionId>> = BTreeMap::new();
            for ((p, s), &k) in &self.entries {
                if k & DATA_TABLE != 0 {
                    out.entry(p.clone()).or_default().push(*s);
                }
            }
            out.values_mut().for_each(|v| v.sort_unstable());
            out
        }
        fn by_session(&self) -> BTreeMap<SessionId, Vec<String>> {
            let mut out: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
            for ((p, s), &k) in &self.entries {
                if k & DATA_TABLE != 0 {
                    out.entry(*s).or_default().push(p.clone());
                }
            }
            out.values_mut().for_each(|v| v.sort_unstable());
            out
        }
    }

    #[derive(Debug, Clone)]
    enum ModelOp {
        Add(SessionId, usize, u8),
        Trigger(usize, u8),
        Remove(SessionId, usize, i32),
        Check(SessionId, usize, i32),
        Close(SessionId),
    }

    /// Deep enough for ancestor walks, and few enough that paths collide.
    const MODEL_PATHS: [&str; 8] = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/d", "/d/e", "/zookeeper"];

    fn model_op(sessions: SessionId) -> impl Strategy<Value = ModelOp> {
        let s = 1..=sessions;
        let p = 0usize..MODEL_PATHS.len();
        prop_oneof![
            4 => (s.clone(), p.clone(), 0u8..4).prop_map(|(s, p, k)| ModelOp::Add(s, p, 1 << k)),
            2 => (p.clone(), 1u8..5).prop_map(|(p, e)| ModelOp::Trigger(p, e)),
            1 => (s.clone(), p.clone(), 0i32..7).prop_map(|(s, p, t)| ModelOp::Remove(s, p, t)),
            1 => (s.clone(), p, 0i32..7).prop_map(|(s, p, t)| ModelOp::Check(s, p, t)),
            1 => s.prop_map(ModelOp::Close),
        ]
    }

    fn add_kind(w: &mut WatchRegistry, s: SessionId, p: &str, kinds: u8) {
        match kinds {
            DATA_ONCE => w.add_data_watch(s, p),
            CHILD_ONCE => w.add_child_watch(s, p),
            PERSISTENT => w.add_persistent(s, p),
            _ => w.add_persistent_recursive(s, p),
        }
    }

    fn run_against_model(ops: Vec<ModelOp>) -> Result<(), TestCaseError> {
        let mut w = WatchRegistry::with_hash_seed(7);
        let mut m = Model::default();
        for op in ops {
            match op {
                ModelOp::Add(s, p, k) => {
                    add_kind(&mut w, s, MODEL_PATHS[p], k);
                    m.add(s, MODEL_PATHS[p], k);
                }
                ModelOp::Trigger(p, e) => {
                    let event = EventType::from_code(e as i32).unwrap();
                    prop_assert_eq!(w.trigger(MODEL_PATHS[p], event), m.trigger(MODEL_PATHS[p], event));
                }
                ModelOp::Remove(s, p, t) => {
                    let expected = m.clear(s, MODEL_PATHS[p], Model::selection(t));
                    prop_assert_eq!(w.remove(s, MODEL_PATHS[p], t), expected);
                }
                ModelOp::Check(s, p, t) => {
                    let kinds = m.entries.get(&(MODEL_PATHS[p].to_owned(), s)).copied().unwrap_or(0);
                    prop_assert_eq!(w.check(s, MODEL_PATHS[p], t), kinds & Model::selection(t) != 0);
                }
                ModelOp::Close(s) => {
                    w.remove_session(s);
                    m.entries.retain(|(_, owner), _| *owner != s);
                }
            }
            prop_assert_eq!(w.data_watch_count(), m.data_entries());
            prop_assert_eq!(w.total_watch_count(), m.data_entries() + m.child_entries());
            prop_assert_eq!(w.is_empty(), m.entries.is_empty());
            let by_path = m.by_path();
            let by_session = m.by_session();
            prop_assert_eq!(w.watched_path_count(), by_path.len());
            prop_assert_eq!(w.watching_session_count(), by_session.len());
            prop_assert_eq!(w.by_path(), by_path);
            prop_assert_eq!(w.by_session(), by_session);
        }
        // The chunked dumps say the same as the maps, however chunked.
        for chunk in [1, 3, 1000] {
            let (mut text, mut cursor) = (String::new(), Some(0));
            while let Some(at) = cursor {
                cursor = w.write_watches_by_path(at, chunk, &mut text);
            }
            let mut expected = String::new();
            for (p, sessions) in w.by_path() {
                expected.push_str(&format!("{p}\n"));
                for s in sessions {
                    expected.push_str(&format!("\t0x{s:x}\n"));
                }
            }
            prop_assert_eq!(sorted_blocks(&text, false), sorted_blocks(&expected, false));
            let (mut text, mut cursor) = (String::new(), Some(0));
            while let Some(at) = cursor {
                cursor = w.write_watches_by_session(at, chunk, &mut text);
            }
            let mut expected = String::new();
            for (s, paths) in w.by_session() {
                expected.push_str(&format!("0x{s:x}\n"));
                for p in paths {
                    expected.push_str(&format!("\t{p}\n"));
                }
            }
            prop_assert_eq!(sorted_blocks(&text, true), sorted_blocks(&expected, true));
        }
        // Every session closed: nothing is left behind, not even a slot.
        for s in 1..=8 {
            w.remove_session(s);
        }
        prop_assert!(w.is_empty());
        prop_assert!(w.path_index.is_empty());
        prop_assert!(w.slots.iter().all(Option::is_none));
        prop_assert!(w.conn_of.is_empty());
        Ok(())
    }

    /// Header-plus-tab-lines blocks of a dump, in a canonical order.
    fn sorted_blocks(text: &str, _by_session: bool) -> Vec<String> {
        let mut blocks: Vec<String> = Vec::new();
        for line in text.lines() {
            if line.starts_with('\t') {
                if let Some(last) = blocks.last_mut() {
                    last.push_str(line);
                    last.push('\n');
                }
            } else {
                blocks.push(format!("{line}\n"));
            }
        }
        blocks.sort();
        blocks
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Few sessions: paths stay in the inline and slice forms.
        #[test]
        fn matches_model_few_sessions(ops in proptest::collection::vec(model_op(3), 1..120)) {
            run_against_model(ops)?;
        }

        /// Up to 8 sessions on 8 paths: watcher sets cross the slice/table
        /// switch both ways.
        #[test]
        fn matches_model_many_sessions(ops in proptest::collection::vec(model_op(8), 1..400)) {
            run_against_model(ops)?;
        }
    }

    #[test]
    fn watcher_sets_grow_into_a_table_and_back() {
        let mut w = WatchRegistry::new();
        let many = (SMALL_WATCHERS_MAX * 3) as SessionId;
        for s in 1..=many {
            w.add_data_watch(s, "/hot");
        }
        let id = w.lookup("/hot").unwrap();
        assert!(matches!(w.slots[id as usize].as_ref().unwrap().watchers, Watchers::Large(_)));
        for s in 1..many {
            assert!(w.remove(s, "/hot", watcher_type::DATA));
        }
        assert!(matches!(w.slots[id as usize].as_ref().unwrap().watchers, Watchers::One(_)));
        assert_eq!(w.trigger("/hot", NodeDataChanged), vec![many]);
        assert!(w.is_empty() && w.path_index.is_empty());
    }

    #[test]
    fn re_armed_one_shot_watches_keep_the_session_list_bounded() {
        let mut w = WatchRegistry::new();
        for _ in 0..10_000 {
            w.add_data_watch(1, "/a");
            w.add_data_watch(1, "/b");
            assert_eq!(w.trigger("/a", NodeDataChanged), vec![1]);
        }
        let record = w.conns[w.conn_of[&1] as usize].as_ref().unwrap();
        assert!(record.paths.len() <= 2 * record.live as usize + CONN_LIST_SLACK_ENTRIES, "{}", record.paths.len());
        assert_eq!(w.by_session().get(&1), Some(&vec!["/b".to_owned()]));
    }

    #[test]
    fn entries_are_small() {
        // The sizes docs/architecture.md charges per path and per watcher.
        assert_eq!(std::mem::size_of::<Watcher>(), 4);
        assert!(std::mem::size_of::<Watchers>() <= 24, "{}", std::mem::size_of::<Watchers>());
        assert!(std::mem::size_of::<Option<PathSlot>>() <= 48, "{}", std::mem::size_of::<Option<PathSlot>>());
    }

    /// 1M watches (1,000 sessions x 1,000 shared paths): triggering one
    /// path visits exactly its watchers, closing a session exactly its
    /// watches, and wchs's counts come from counters.
    #[test]
    fn work_is_bounded_at_a_million_watches() {
        const SESSIONS: SessionId = 1_000;
        const PATHS: usize = 1_000;
        let mut w = WatchRegistry::with_hash_seed(42);
        let paths: Vec<String> = (0..PATHS).map(|i| format!("/app/config/{i:04}")).collect();
        for s in 1..=SESSIONS {
            for p in &paths {
                w.add_data_watch(s, p);
            }
        }
        // Three sessions on a path of its own, one of them twice over.
        for s in [5, 6, 7] {
            w.add_data_watch(s, "/lonely");
        }
        w.add_child_watch(7, "/lonely");
        assert_eq!(w.data_watch_count(), SESSIONS as usize * PATHS + 3);
        assert_eq!(w.watched_path_count(), PATHS + 1);
        assert_eq!(w.watching_session_count(), SESSIONS as usize);

        let before = w.watchers_visited();
        assert_eq!(w.trigger("/lonely", NodeDataChanged), vec![5, 6, 7]);
        // three watchers seen, three one-shots consumed
        assert_eq!(w.watchers_visited() - before, 6);

        let before = w.watchers_visited();
        let fired = w.trigger(&paths[17], NodeDataChanged);
        assert_eq!(fired.len(), SESSIONS as usize);
        assert_eq!(w.watchers_visited() - before, 2 * SESSIONS as u64);

        let before = w.watchers_visited();
        assert_eq!(w.trigger("/nobody/watches/this", NodeCreated), Vec::<SessionId>::new());
        assert_eq!(w.watchers_visited(), before);

        // Session 9 watches PATHS - 1 paths now (one fired); its list may
        // still name the fired one.
        let before = w.watchers_visited();
        w.remove_session(9);
        let visited = w.watchers_visited() - before;
        assert!((PATHS as u64 - 1..=PATHS as u64).contains(&visited), "{visited}");
        assert_eq!(w.data_watch_count(), (SESSIONS as usize - 1) * (PATHS - 1));
        assert_eq!(w.watching_session_count(), SESSIONS as usize - 1);

        // A recursive watch high up: only its holder's path is walked.
        w.add_persistent_recursive(3, "/app");
        let before = w.watchers_visited();
        let fired = w.trigger(&paths[18], NodeDataChanged);
        assert_eq!(fired.len(), SESSIONS as usize - 1);
        // watchers of the path, their consumed one-shots, the one on /app
        assert_eq!(w.watchers_visited() - before, 2 * (SESSIONS as u64 - 1) + 1);
    }
}
