//! Per-shard watch registry: the watches of the sessions connected to one
//! worker shard. Sans-IO; the shard turns `trigger` results into event
//! frames. Rules follow ZooKeeper's WatchManager (reference §7).
//!
//! **Layout** (sized for 10M watches over 1,000 sessions; cost per field in
//! docs/architecture.md):
//! * watched paths are interned as a trie of `/`-separated names: a `Node`
//!   (16 bytes, in a slab indexed by a u32 node id) holds its parent's id,
//!   where its name is in the name arena, a child count and one u32 for its
//!   watchers. A path's ancestors are nodes too, kept while a descendant is
//!   watched, so `/app/s17/p123` stores only `p123` of its own;
//! * names live in one byte arena (`NameArena`, 4-byte header, varint
//!   length + bytes, no
//!   malloc per path); a freed name leaves a hole, and once the holes
//!   outweigh the live names the arena is compacted a bounded step per
//!   change, so a churn of watches cannot grow it without bound;
//! * `node_index` (a hash table of bare node ids, hashed by (parent id,
//!   name) with a per-registry seed) finds a child without storing the
//!   name twice; it never rehashes all ids at once (see `NodeIndex`);
//! * a node's watchers word is either its only watcher (connection index
//!   << 4 | kind bits, inline) or the index of a `Crowd` (a sorted vector
//!   up to `SMALL_WATCHERS_MAX`, a hash table beyond, so adding, finding or
//!   dropping one watcher is O(1) however many share the path);
//! * each connection (session) has a dense index and a list of the node ids
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
//! **Costs.** Triggering a path looks up its names (one hash each) and
//! visits that path's watchers, plus, only while recursive watches exist,
//! the recursive holders of its ancestors (found by parent links);
//! removing a session visits its own list; wchs is O(1) from counters kept
//! on every change; wchc/wchp walk in chunks from a cursor
//! (`write_watches_by_path` / `write_watches_by_session`, and as data for
//! the AdminServer's JSON, `export_watches_by_path` /
//! `export_watches_by_session`) so the shard can yield between chunks. `watchers_visited` counts the entries the
//! registry has touched, so tests can check those bounds by count.

use crate::proto::{watcher_type, EventType};
use hashbrown::HashTable;
use std::collections::{BTreeMap, HashMap};
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
/// Trie nodes one registry can hold: an arena header holds a node id
/// below the dead-entry bit.
pub const REGISTRY_MAX_NODES: usize = (ARENA_DEAD_BIT - 2) as usize;
/// Bytes of names (with their 4-byte headers) the arena can hold: offsets
/// are u32. A watch that would not fit is not registered.
pub const REGISTRY_MAX_NAME_BYTES: usize = u32::MAX as usize;
/// Watchers of one path kept as a sorted vector (binary search, no hash
/// table); more go to a hash table.
const SMALL_WATCHERS_MAX: usize = 8;
/// A connection's lazy path list is compacted once it is longer than
/// twice its live entries plus this slack.
const CONN_LIST_SLACK_ENTRIES: usize = 8;
/// The name arena is compacted once its holes exceed its live bytes and
/// this floor (tiny under test, so the model tests compact all the time).
const ARENA_COMPACT_MIN_BYTES: usize = if cfg!(test) { 64 } else { 64 << 10 };
/// Bytes the compaction moves or skips per change (plus twice the changed
/// name, so it always outpaces the appends; tiny under test, so sweeps
/// stay under way across many changes).
const ARENA_COMPACT_STEP_BYTES: usize = if cfg!(test) { 8 } else { 4 << 10 };
/// Buckets of the old node index moved to the new one per change while a
/// growth is under way (see `NodeIndex`): 64 buckets are ~56 ids, tens of
/// microseconds. The move of a full table of n ids (8n/7 buckets) takes
/// n/56 changes, and the new table has room for n/2 more ids, so it ends
/// long before the next growth (4 is the least that still does). The same
/// under test (a table of more than 64 buckets takes several changes to
/// move), so `measure_heap_per_watch` sees what a server has.
const INDEX_MOVE_BUCKETS_PER_CHANGE: usize = 64;
/// Ids the node index is first made for.
const INDEX_MIN_CAPACITY: usize = if cfg!(test) { 2 } else { 64 };
/// Header word of a freed arena entry: this bit | the entry's bytes.
const ARENA_DEAD_BIT: u32 = 1 << 31;
const ARENA_HEADER_BYTES: usize = 4;

type NodeId = u32;
type ConnIdx = u32;

/// `Node::parent` of a top-level name (the "" before a path's first `/`).
const NO_PARENT: NodeId = u32::MAX;
/// `Node::parent` of a free slab entry.
const FREE_NODE: NodeId = u32::MAX - 1;

/// One watcher of a path: connection index and kind bits (never 0) in one
/// u32.
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

/// A node's watchers in one u32: 0 none; kind bits set: the only watcher;
/// kind bits clear: (crowd index + 1) << KIND_BITS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct WatcherWord(u32);

enum WordForm {
    None,
    One(Watcher),
    Crowd(usize),
}

impl WatcherWord {
    const NONE: WatcherWord = WatcherWord(0);
    fn form(self) -> WordForm {
        if self.0 == 0 {
            WordForm::None
        } else if self.0 & KIND_MASK != 0 {
            WordForm::One(Watcher(self.0))
        } else {
            WordForm::Crowd((self.0 >> KIND_BITS) as usize - 1)
        }
    }
    fn crowd(index: usize) -> WatcherWord {
        WatcherWord(((index as u32) + 1) << KIND_BITS)
    }
}

/// Two or more watchers of one path.
#[derive(Debug, Clone)]
struct Crowd {
    set: CrowdSet,
    /// Watchers with a data-table bit / with the recursive bit.
    data_watchers: u32,
    recursive_watchers: u32,
}

#[derive(Debug, Clone)]
enum CrowdSet {
    /// Sorted by connection.
    Small(Vec<Watcher>),
    Large(HashTable<Watcher>),
}

impl CrowdSet {
    fn len(&self) -> usize {
        match self {
            CrowdSet::Small(list) => list.len(),
            CrowdSet::Large(table) => table.len(),
        }
    }
    fn get(&self, conn: ConnIdx) -> u8 {
        match self {
            CrowdSet::Small(list) => {
                list.binary_search_by_key(&conn, |w| w.conn()).ok().and_then(|i| list.get(i)).map_or(0, |w| w.kinds())
            }
            CrowdSet::Large(table) => table.find(conn_hash(conn), |w| w.conn() == conn).map_or(0, |w| w.kinds()),
        }
    }
    fn for_each(&self, f: impl FnMut(Watcher)) {
        match self {
            CrowdSet::Small(list) => list.iter().copied().for_each(f),
            CrowdSet::Large(table) => table.iter().copied().for_each(f),
        }
    }
    /// Sets the kinds of `conn` (0 removes it).
    fn set(&mut self, conn: ConnIdx, kinds: u8) {
        let entry = Watcher::new(conn, kinds);
        match self {
            CrowdSet::Small(list) => match list.binary_search_by_key(&conn, |w| w.conn()) {
                Ok(at) if kinds != 0 => {
                    if let Some(slot) = list.get_mut(at) {
                        *slot = entry;
                    }
                }
                Ok(at) => {
                    list.remove(at);
                    list.shrink_to(SMALL_WATCHERS_MAX.min(list.len() * 2));
                }
                Err(_) if kinds == 0 => {}
                Err(at) if list.len() < SMALL_WATCHERS_MAX => list.insert(at, entry),
                Err(_) => {
                    let mut table = HashTable::with_capacity(list.len() * 2);
                    for w in list.iter().copied().chain([entry]) {
                        table.insert_unique(conn_hash(w.conn()), w, |w| conn_hash(w.conn()));
                    }
                    *self = CrowdSet::Large(table);
                }
            },
            CrowdSet::Large(table) => {
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
                // Shrunk well below the switch point: back to a vector, so
                // a path that once was popular does not keep a table.
                if table.len() <= SMALL_WATCHERS_MAX / 2 {
                    let mut list: Vec<Watcher> = table.iter().copied().collect();
                    list.sort_unstable_by_key(|w| w.conn());
                    *self = CrowdSet::Small(list);
                }
            }
        }
    }
}

/// The crowds of all nodes with more than one watcher, a slab with a free
/// list (the shared-path case: few crowds, each with many watchers).
#[derive(Debug, Clone, Default)]
struct Crowds {
    slab: Vec<Option<Crowd>>,
    free: Vec<usize>,
}

impl Crowds {
    fn at(&self, index: usize) -> Option<&Crowd> {
        self.slab.get(index).and_then(Option::as_ref)
    }

    fn get(&self, word: WatcherWord, conn: ConnIdx) -> u8 {
        match word.form() {
            WordForm::None => 0,
            WordForm::One(w) => {
                if w.conn() == conn {
                    w.kinds()
                } else {
                    0
                }
            }
            WordForm::Crowd(i) => self.at(i).map_or(0, |c| c.set.get(conn)),
        }
    }

    fn for_each(&self, word: WatcherWord, mut f: impl FnMut(Watcher)) {
        match word.form() {
            WordForm::None => {}
            WordForm::One(w) => f(w),
            WordForm::Crowd(i) => {
                if let Some(c) = self.at(i) {
                    c.set.for_each(f)
                }
            }
        }
    }

    /// Watchers with a data-table bit.
    fn data_watchers(&self, word: WatcherWord) -> u32 {
        match word.form() {
            WordForm::None => 0,
            WordForm::One(w) => u32::from(w.kinds() & DATA_TABLE != 0),
            WordForm::Crowd(i) => self.at(i).map_or(0, |c| c.data_watchers),
        }
    }

    /// Watchers with the recursive bit.
    fn recursive_watchers(&self, word: WatcherWord) -> u32 {
        match word.form() {
            WordForm::None => 0,
            WordForm::One(w) => u32::from(w.kinds() & RECURSIVE != 0),
            WordForm::Crowd(i) => self.at(i).map_or(0, |c| c.recursive_watchers),
        }
    }

    fn insert(&mut self, crowd: Crowd) -> usize {
        match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.slab.get_mut(i) {
                    *slot = Some(crowd);
                }
                i
            }
            None => {
                self.slab.push(Some(crowd));
                self.slab.len() - 1
            }
        }
    }

    /// Sets the kinds of `conn` from `old` to `kinds` (0 removes it),
    /// moving between the inline and crowd forms.
    fn set(&mut self, word: &mut WatcherWord, conn: ConnIdx, old: u8, kinds: u8) {
        let entry = Watcher::new(conn, kinds);
        match word.form() {
            WordForm::None => {
                if kinds != 0 {
                    *word = WatcherWord(entry.0);
                }
            }
            WordForm::One(w) if w.conn() == conn => {
                *word = if kinds == 0 { WatcherWord::NONE } else { WatcherWord(entry.0) };
            }
            WordForm::One(w) => {
                if kinds != 0 {
                    let mut pair = vec![w, entry];
                    pair.sort_unstable_by_key(|w| w.conn());
                    let data = pair.iter().filter(|w| w.kinds() & DATA_TABLE != 0).count() as u32;
                    let recursive = pair.iter().filter(|w| w.kinds() & RECURSIVE != 0).count() as u32;
                    let i = self.insert(Crowd {
                        set: CrowdSet::Small(pair),
                        data_watchers: data,
                        recursive_watchers: recursive,
                    });
                    *word = WatcherWord::crowd(i);
                }
            }
            WordForm::Crowd(i) => {
                let Some(crowd) = self.slab.get_mut(i).and_then(Option::as_mut) else { return };
                crowd.set.set(conn, kinds);
                let flip = |was: bool, is: bool, count: &mut u32| match (was, is) {
                    (false, true) => *count += 1,
                    (true, false) => *count -= 1,
                    _ => {}
                };
                flip(old & DATA_TABLE != 0, kinds & DATA_TABLE != 0, &mut crowd.data_watchers);
                flip(old & RECURSIVE != 0, kinds & RECURSIVE != 0, &mut crowd.recursive_watchers);
                // Down to one: back inline, the crowd freed.
                if crowd.set.len() <= 1 {
                    let mut only = WatcherWord::NONE;
                    crowd.set.for_each(|w| only = WatcherWord(w.0));
                    *word = only;
                    if let Some(slot) = self.slab.get_mut(i) {
                        *slot = None;
                    }
                    self.free.push(i);
                }
            }
        }
    }
}

/// One name of the trie: a path component, or a whole path's last one.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// `NO_PARENT` for a top-level name, `FREE_NODE` for a free entry.
    parent: NodeId,
    /// Where the name's arena entry starts (its length is in the entry).
    name_at: u32,
    /// Live nodes whose parent this is (the node is kept while > 0).
    children: u32,
    watchers: WatcherWord,
}

impl Node {
    fn is_free(&self) -> bool {
        self.parent == FREE_NODE
    }
}

/// Node names, back to back, one entry each: a 4-byte little-endian header
/// (the owning node's id, or `ARENA_DEAD_BIT | entry bytes` once freed),
/// the name's length as a LEB128 varint (one byte below 128) and the
/// bytes. Compaction slides live entries down over the holes, a bounded
/// step per change, and updates their nodes' offsets; names stay readable
/// meanwhile.
#[derive(Debug, Clone, Default)]
struct NameArena {
    bytes: Vec<u8>,
    /// Bytes of live entries, headers included.
    live_bytes: usize,
    /// (read, write) of a compaction under way: [0, write) is compacted,
    /// [write, read) free, [read, len) still to go.
    sweep: Option<(usize, usize)>,
}

impl NameArena {
    /// The varint after the header at entry `at`: (name length, where the
    /// bytes start). A truncated varint reads as an empty name at the end.
    fn length_at(&self, at: usize) -> (usize, usize) {
        let (mut len, mut shift, mut i) = (0usize, 0u32, at + ARENA_HEADER_BYTES);
        while let Some(&b) = self.bytes.get(i) {
            i += 1;
            len |= ((b & 0x7f) as usize) << shift;
            if b & 0x80 == 0 || shift > 28 {
                return (len, i);
            }
            shift += 7;
        }
        (0, self.bytes.len())
    }

    /// The name of the entry at `at`.
    fn name(&self, at: u32) -> &[u8] {
        let (len, start) = self.length_at(at as usize);
        self.bytes.get(start..start + len).unwrap_or_default()
    }

    /// Bytes of the entry at `at`: header, varint and name.
    fn entry_bytes(&self, at: usize) -> usize {
        let (len, start) = self.length_at(at);
        start - at + len
    }

    fn header(&self, at: usize) -> Option<u32> {
        let word = self.bytes.get(at..at + ARENA_HEADER_BYTES)?;
        Some(u32::from_le_bytes(word.try_into().ok()?))
    }

    /// Appends `name` for node `id`; the offset of its entry, None when
    /// the arena is full.
    fn push(&mut self, id: NodeId, name: &[u8]) -> Option<u32> {
        let entry = arena_entry_bytes(name.len());
        if self.bytes.len() + entry > REGISTRY_MAX_NAME_BYTES || entry >= ARENA_DEAD_BIT as usize {
            return None;
        }
        let at = self.bytes.len();
        self.bytes.extend_from_slice(&id.to_le_bytes());
        let mut len = name.len();
        while len >= 0x80 {
            self.bytes.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        self.bytes.push(len as u8);
        self.bytes.extend_from_slice(name);
        self.live_bytes += entry;
        Some(at as u32)
    }

    /// Marks the entry at `at` free; starts a compaction once the holes
    /// outweigh the live names.
    fn free(&mut self, at: u32) {
        let entry = self.entry_bytes(at as usize);
        if let Some(word) = self.bytes.get_mut(at as usize..at as usize + ARENA_HEADER_BYTES) {
            word.copy_from_slice(&(ARENA_DEAD_BIT | entry as u32).to_le_bytes());
        }
        self.live_bytes -= entry;
        let holes = self.bytes.len() - self.live_bytes;
        if self.sweep.is_none() && holes > self.live_bytes.max(ARENA_COMPACT_MIN_BYTES) {
            self.sweep = Some((0, 0));
        }
    }

    /// Moves up to `budget` bytes of a compaction under way.
    fn compact_step(&mut self, nodes: &mut [Node], mut budget: usize) {
        let Some((mut read, mut write)) = self.sweep else { return };
        while budget > 0 && read < self.bytes.len() {
            let Some(header) = self.header(read) else { break };
            if header & ARENA_DEAD_BIT != 0 {
                let entry = (header & !ARENA_DEAD_BIT) as usize;
                read += entry.max(ARENA_HEADER_BYTES);
                budget = budget.saturating_sub(entry);
                continue;
            }
            let Some(node) = nodes.get_mut(header as usize) else {
                // Not ours to move: stop here rather than guess (cannot
                // happen while headers and nodes agree).
                self.sweep = None;
                return;
            };
            let entry = self.entry_bytes(read);
            if read != write {
                self.bytes.copy_within(read..read + entry, write);
                node.name_at = write as u32;
            }
            read += entry;
            write += entry;
            budget = budget.saturating_sub(entry);
        }
        if read >= self.bytes.len() {
            self.bytes.truncate(write);
            if self.bytes.capacity() > 2 * self.bytes.len() + ARENA_COMPACT_MIN_BYTES {
                self.bytes.shrink_to(self.bytes.len() + self.bytes.len() / 4);
            }
            self.sweep = None;
        } else {
            self.sweep = Some((read, write));
        }
    }
}

/// Arena bytes of a name of `len` bytes: header, varint, bytes.
fn arena_entry_bytes(len: usize) -> usize {
    let mut varint = 1;
    while len >> (7 * varint) != 0 {
        varint += 1;
    }
    ARENA_HEADER_BYTES + varint + len
}

/// Node ids hashed by (parent id, name), grown without a stop. A hash
/// table that grows in place rehashes every id at once (at 10M ids, ~10 s
/// of the shard's time, each id's name read from the arena); here a full
/// table becomes `draining`, a table for 1.5 times its ids (at least; the
/// bucket count is a power of two, so a full table doubles, and one full of
/// removal tombstones shrinks) takes its place, and
/// each later change moves `INDEX_MOVE_BUCKETS_PER_CHANGE` buckets of the
/// old one across. A lookup tries both. Making the new table costs one
/// pass over its control bytes (1 per bucket), milliseconds at 10M.
#[derive(Debug, Clone, Default)]
struct NodeIndex {
    table: HashTable<NodeId>,
    /// The table before the last growth, emptied into `table` bucket by
    /// bucket from `drain_at`; freed once empty.
    draining: HashTable<NodeId>,
    drain_at: usize,
}

impl NodeIndex {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len() + self.draining.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes both tables hold.
    #[cfg(test)]
    fn allocation_size(&self) -> usize {
        self.table.allocation_size() + self.draining.allocation_size()
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.table.capacity() + self.draining.capacity()
    }

    fn find(&self, hash: u64, mut eq: impl FnMut(NodeId) -> bool) -> Option<NodeId> {
        self.table.find(hash, |&id| eq(id)).or_else(|| self.draining.find(hash, |&id| eq(id))).copied()
    }

    fn insert(&mut self, hash: u64, id: NodeId, rehash: impl Fn(NodeId) -> u64) {
        self.move_step(&rehash);
        if self.table.len() >= self.table.capacity() {
            // Only if changes outran the moves (cannot at the step above):
            // finish the old move at once, then start the new one.
            while !self.draining.is_empty() {
                self.move_step(&rehash);
            }
            let ids = self.table.len();
            let fresh = HashTable::with_capacity((ids + ids / 2).max(INDEX_MIN_CAPACITY));
            self.draining = std::mem::replace(&mut self.table, fresh);
            self.drain_at = 0;
        }
        self.table.insert_unique(hash, id, |&other| rehash(other));
    }

    /// Removes `id` (found by its hash); false if it was not there.
    fn remove(&mut self, hash: u64, id: NodeId, rehash: impl Fn(NodeId) -> u64) -> bool {
        let found = match self.table.find_entry(hash, |&other| other == id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => match self.draining.find_entry(hash, |&other| other == id) {
                Ok(entry) => {
                    entry.remove();
                    true
                }
                Err(_) => false,
            },
        };
        self.move_step(&rehash);
        found
    }

    /// Moves the ids of the next buckets of `draining` into `table`.
    fn move_step(&mut self, rehash: &impl Fn(NodeId) -> u64) {
        if self.draining.is_empty() {
            if self.draining.allocation_size() > 0 {
                // Emptied by removals.
                self.draining = HashTable::new();
                self.drain_at = 0;
            }
            return;
        }
        let end = (self.drain_at + INDEX_MOVE_BUCKETS_PER_CHANGE).min(self.draining.num_buckets());
        for bucket in self.drain_at..end {
            if self.draining.is_empty() {
                break;
            }
            if let Ok(entry) = self.draining.get_bucket_entry(bucket) {
                let (id, _) = entry.remove();
                self.table.insert_unique(rehash(id), id, |&other| rehash(other));
            }
        }
        self.drain_at = end;
        if self.draining.is_empty() || end >= self.draining.num_buckets() {
            self.draining = HashTable::new();
            self.drain_at = 0;
        }
    }
}

/// One connection's (session's) side.
#[derive(Debug, Clone)]
struct ConnWatches {
    session: SessionId,
    /// Node ids it watches, lazily: may hold ids it no longer watches
    /// (even ids since reused by another path) and repeats.
    paths: Vec<NodeId>,
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

/// Where a chunked wchc / wchp dump goes on (`DumpCursor::default()` to
/// start): a connection or trie node slot, and for wchc the session being
/// written and the node id its next path is at or after (0: its header
/// is still to come).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpCursor {
    slot: u32,
    from: NodeId,
    session: SessionId,
}

/// Paths back to back in one buffer: a listing of millions of paths
/// without a String (and its malloc) per path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathList {
    bytes: Vec<u8>,
    /// Where each path ends in `bytes`.
    ends: Vec<usize>,
}

impl PathList {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Path `i`'s bytes (UTF-8: names are cut from &str), or empty.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends.get(i - 1).copied().unwrap_or(0) };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or_default()
    }

    pub fn push(&mut self, path: &str) {
        self.bytes.extend_from_slice(path.as_bytes());
        self.ends.push(self.bytes.len());
    }
}

/// One registry's data-table watches by session (the AdminServer's
/// `watches`), as `export_watches_by_session` lists them: each session with
/// where its paths end in `paths`. A session may be listed twice if the
/// registry changed between chunks; the merge allows for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionWatchList {
    pub sessions: Vec<(SessionId, usize)>,
    pub paths: PathList,
}

impl SessionWatchList {
    /// The paths of entry `i` (indices into `paths`).
    pub fn path_range(&self, i: usize) -> std::ops::Range<usize> {
        let start = if i == 0 { 0 } else { self.sessions.get(i - 1).map_or(0, |s| s.1) };
        let end = self.sessions.get(i).map_or(start, |s| s.1);
        start..end.max(start)
    }
}

/// One registry's data-table watches by path (the AdminServer's
/// `watches_by_path`): each path with its sorted sessions, which end at
/// `session_ends[i]` in `sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathWatchList {
    pub paths: PathList,
    pub session_ends: Vec<usize>,
    pub sessions: Vec<SessionId>,
}

impl PathWatchList {
    pub fn sessions_of(&self, i: usize) -> &[SessionId] {
        let start = if i == 0 { 0 } else { self.session_ends.get(i - 1).copied().unwrap_or(0) };
        let end = self.session_ends.get(i).copied().unwrap_or(start);
        self.sessions.get(start..end).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct WatchRegistry {
    nodes: Vec<Node>,
    free_nodes: Vec<NodeId>,
    names: NameArena,
    /// Node ids, hashed by (parent id, name).
    node_index: NodeIndex,
    /// Mixed into every name hash: client-chosen paths cannot be aimed at
    /// one bucket without knowing it.
    hash_seed: u64,
    crowds: Crowds,
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

    /// A registry whose name hashing is keyed by `seed` (pass the shard's
    /// seed; `new()` uses 0).
    pub fn with_hash_seed(seed: u64) -> Self {
        WatchRegistry { hash_seed: seed, ..Self::default() }
    }

    fn name_hash(seed: u64, parent: NodeId, name: &[u8]) -> u64 {
        // SipHash-1-3 (std's), seeded by a prefix.
        let mut h = std::hash::DefaultHasher::new();
        h.write_u64(seed);
        h.write_u32(parent);
        h.write(name);
        h.finish()
    }

    fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize).filter(|n| !n.is_free())
    }

    fn name_of(&self, node: &Node) -> &[u8] {
        self.names.name(node.name_at)
    }

    fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let (nodes, names) = (&self.nodes, &self.names);
        self.node_index.find(Self::name_hash(self.hash_seed, parent, name), |id| {
            nodes.get(id as usize).is_some_and(|n| n.parent == parent && names.name(n.name_at) == name)
        })
    }

    /// The node of `path` if interned, else None; with the deepest node of
    /// a proper prefix of its names that is (for ancestor walks).
    fn walk(&self, path: &str) -> (Option<NodeId>, Option<NodeId>) {
        let mut at = NO_PARENT;
        for name in path.split('/') {
            match self.child(at, name.as_bytes()) {
                Some(id) => at = id,
                None => return (None, (at != NO_PARENT).then_some(at)),
            }
        }
        (Some(at), None)
    }

    fn lookup(&self, path: &str) -> Option<NodeId> {
        self.walk(path).0
    }

    /// The node of `path`, made (with its missing ancestors) if new; None
    /// if a limit refuses it.
    fn intern(&mut self, path: &str) -> Option<NodeId> {
        let mut at = NO_PARENT;
        for name in path.split('/') {
            at = match self.child(at, name.as_bytes()) {
                Some(id) => id,
                None => match self.make_node(at, name.as_bytes()) {
                    Some(id) => id,
                    None => {
                        // Drop the ancestors made for this path.
                        if at != NO_PARENT {
                            self.release_if_unused(at);
                        }
                        return None;
                    }
                },
            };
        }
        Some(at)
    }

    fn make_node(&mut self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let id = match self.free_nodes.last() {
            Some(&id) => id,
            None if self.nodes.len() < REGISTRY_MAX_NODES => self.nodes.len() as NodeId,
            None => return None,
        };
        let name_at = self.names.push(id, name)?;
        let node = Node { parent, name_at, children: 0, watchers: WatcherWord::NONE };
        if self.free_nodes.pop().is_some() {
            if let Some(free) = self.nodes.get_mut(id as usize) {
                *free = node;
            }
        } else {
            self.nodes.push(node);
        }
        if let Some(p) = self.nodes.get_mut(parent as usize) {
            p.children += 1;
        }
        let (seed, nodes, names) = (self.hash_seed, &self.nodes, &self.names);
        self.node_index.insert(Self::name_hash(seed, parent, name), id, |other| {
            nodes.get(other as usize).map_or(0, |n| Self::name_hash(seed, n.parent, names.name(n.name_at)))
        });
        self.names.compact_step(&mut self.nodes, ARENA_COMPACT_STEP_BYTES + 2 * arena_entry_bytes(name.len()));
        Some(id)
    }

    /// Frees `id` if nothing watches it and it has no children, then its
    /// parent likewise, up the trie.
    fn release_if_unused(&mut self, mut id: NodeId) {
        loop {
            let Some(&node) = self.node(id) else { return };
            if node.children > 0 || node.watchers != WatcherWord::NONE {
                return;
            }
            let hash = Self::name_hash(self.hash_seed, node.parent, self.name_of(&node));
            let (seed, nodes, names) = (self.hash_seed, &self.nodes, &self.names);
            self.node_index.remove(hash, id, |other| {
                nodes.get(other as usize).map_or(0, |n| Self::name_hash(seed, n.parent, names.name(n.name_at)))
            });
            let entry = self.names.entry_bytes(node.name_at as usize);
            self.names.free(node.name_at);
            self.names.compact_step(&mut self.nodes, ARENA_COMPACT_STEP_BYTES + 2 * entry);
            if let Some(free) = self.nodes.get_mut(id as usize) {
                free.parent = FREE_NODE;
                free.children = 0;
            }
            self.free_nodes.push(id);
            let Some(parent) = self.nodes.get_mut(node.parent as usize).filter(|p| !p.is_free()) else { return };
            parent.children -= 1;
            id = node.parent;
        }
    }

    /// The path of a node, rebuilt from its names.
    fn path_of(&self, id: NodeId) -> String {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut at = id;
        while let Some(node) = self.node(at) {
            names.push(self.name_of(node));
            at = node.parent;
        }
        let mut path = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
        for (i, name) in names.iter().rev().enumerate() {
            if i > 0 {
                path.push('/');
            }
            // Names are cut from &str at '/', so they are UTF-8.
            path.push_str(&String::from_utf8_lossy(name));
        }
        path
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
    /// list and node in step. Returns the old kinds.
    fn update(&mut self, conn: ConnIdx, path: NodeId, f: impl FnOnce(u8) -> u8) -> u8 {
        let Some(node) = self.nodes.get_mut(path as usize).filter(|n| !n.is_free()) else { return 0 };
        let Some(record) = self.conns.get_mut(conn as usize).and_then(Option::as_mut) else { return 0 };
        self.watchers_visited += 1;
        let old = self.crowds.get(node.watchers, conn);
        let new = f(old) & (KIND_MASK as u8);
        if old == new {
            return old;
        }
        let path_had_data = self.crowds.data_watchers(node.watchers) > 0;
        self.crowds.set(&mut node.watchers, conn, old, new);
        let path_has_data = self.crowds.data_watchers(node.watchers) > 0;
        match (path_had_data, path_has_data) {
            (false, true) => self.paths_with_data += 1,
            (true, false) => self.paths_with_data -= 1,
            _ => {}
        }
        let (was_data, is_data) = (old & DATA_TABLE != 0, new & DATA_TABLE != 0);
        if was_data != is_data {
            if is_data {
                self.data_entries += 1;
                record.data_live += 1;
                self.sessions_with_data += usize::from(record.data_live == 1);
            } else {
                self.data_entries -= 1;
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
            (false, true) => self.recursive_entries += 1,
            (true, false) => self.recursive_entries -= 1,
            _ => {}
        }
        let emptied = node.watchers == WatcherWord::NONE;
        if old == 0 {
            record.live += 1;
            record.paths.push(path);
        } else if new == 0 {
            record.live -= 1;
            if record.paths.len() > 2 * record.live as usize + CONN_LIST_SLACK_ENTRIES {
                let mut paths = std::mem::take(&mut record.paths);
                self.compact(conn, &mut paths);
                if let Some(record) = self.conns.get_mut(conn as usize).and_then(Option::as_mut) {
                    record.paths = paths;
                }
            }
        }
        if emptied {
            self.release_if_unused(path);
        }
        old
    }

    /// Drops the ids `conn` no longer watches (and repeats) from its list.
    fn compact(&mut self, conn: ConnIdx, paths: &mut Vec<NodeId>) {
        self.watchers_visited += paths.len() as u64;
        let (nodes, crowds) = (&self.nodes, &self.crowds);
        paths.retain(|&id| {
            nodes.get(id as usize).filter(|n| !n.is_free()).is_some_and(|n| crowds.get(n.watchers, conn) != 0)
        });
        paths.sort_unstable();
        paths.dedup();
        paths.shrink_to(paths.len() * 2);
    }

    fn add(&mut self, session: SessionId, path: &str, kinds: u8) {
        let Some(conn) = self.conn_index(session) else { return };
        let Some(id) = self.intern(path) else {
            // A connection made for this watch alone goes again.
            if self.conns.get(conn as usize).and_then(Option::as_ref).is_some_and(|c| c.live == 0) {
                self.remove_session(session);
            }
            return;
        };
        self.update(conn, id, |old| old | kinds);
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
    fn fire_at(&mut self, path: NodeId, table: u8, once: u8, out: &mut Vec<ConnIdx>) {
        let Some(node) = self.node(path) else { return };
        let mut consumed = Vec::new();
        let mut visited = 0u64;
        self.crowds.for_each(node.watchers, |w| {
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

    /// Appends the recursive holders of node `id` to `out`.
    fn fire_recursive_at(&mut self, id: NodeId, out: &mut Vec<ConnIdx>) {
        let Some(node) = self.node(id) else { return };
        if self.crowds.recursive_watchers(node.watchers) == 0 {
            return;
        }
        let mut visited = 0u64;
        self.crowds.for_each(node.watchers, |w| {
            visited += 1;
            if w.kinds() & RECURSIVE != 0 {
                out.push(w.conn());
            }
        });
        self.watchers_visited += visited;
    }

    /// The sessions (sorted, each once) to notify of `event` at `path`;
    /// one-shot watches that fired are removed.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<SessionId> {
        // Every worker walks every trigger of every batch: with no watch
        // here, not even the path's first name is hashed.
        if self.is_empty() {
            return Vec::new();
        }
        let mut fired: Vec<ConnIdx> = Vec::new();
        let (found, deepest_prefix) = self.walk(path);
        let uses_data = event != EventType::NodeChildrenChanged;
        let uses_child = matches!(event, EventType::NodeChildrenChanged | EventType::NodeDeleted);
        // The proper ancestors of the path, nearest first, by parent links
        // (taken before the one-shots fire: firing may free the node).
        let mut ancestors: Vec<NodeId> = Vec::new();
        if uses_data && self.recursive_entries > 0 {
            let mut at = match found {
                Some(id) => self.node(id).map_or(NO_PARENT, |n| n.parent),
                None => deepest_prefix.unwrap_or(NO_PARENT),
            };
            while let Some(node) = self.node(at) {
                // The top "" is no ZooKeeper path; "/" (its child "") is
                // every absolute path's last ancestor, added below.
                let is_top_empty = node.parent == NO_PARENT && self.name_of(node).is_empty();
                if !is_top_empty {
                    ancestors.push(at);
                }
                at = node.parent;
            }
            if path.starts_with('/') && path != "/" {
                if let Some(root) = self.child(NO_PARENT, b"").and_then(|top| self.child(top, b"")) {
                    if !ancestors.contains(&root) {
                        ancestors.push(root);
                    }
                }
            }
        }
        if let Some(id) = found {
            if uses_data {
                self.fire_at(id, DATA_TABLE, DATA_ONCE, &mut fired);
            }
            if uses_child {
                // The data pass may have freed the node (and nothing can
                // have reused the id since).
                self.fire_at(id, CHILD_TABLE, CHILD_ONCE, &mut fired);
            }
        }
        for id in ancestors {
            // Recursive entries are never consumed, so no ancestor was
            // freed by the firing above.
            self.fire_recursive_at(id, &mut fired);
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
        self.lookup(path).and_then(|id| self.node(id)).map_or(0, |node| self.crowds.get(node.watchers, conn))
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
    fn data_paths_of(&self, record: &ConnWatches, conn: ConnIdx) -> Vec<String> {
        let mut ids = record.paths.clone();
        ids.sort_unstable();
        ids.dedup();
        let mut paths: Vec<String> = ids
            .into_iter()
            .filter(|&id| self.node(id).is_some_and(|n| self.crowds.get(n.watchers, conn) & DATA_TABLE != 0))
            .map(|id| self.path_of(id))
            .collect();
        paths.sort_unstable();
        paths
    }

    /// Data-table sessions of one node, sorted.
    fn data_sessions_of(&self, node: &Node) -> Vec<SessionId> {
        let mut sessions = Vec::new();
        self.crowds.for_each(node.watchers, |w| {
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
            .map(|(conn, r)| (r.session, self.data_paths_of(r, conn)))
            .collect()
    }

    /// wchp: path -> watching sessions (data table, as ZooKeeper reports).
    /// Walks everything; the shard uses `write_watches_by_path`.
    pub fn by_path(&self) -> BTreeMap<String, Vec<SessionId>> {
        (0..self.nodes.len() as NodeId)
            .filter_map(|id| self.node(id).map(|n| (id, n)))
            .filter(|(_, n)| self.crowds.data_watchers(n.watchers) > 0)
            .map(|(id, n)| (self.path_of(id), self.data_sessions_of(n)))
            .collect()
    }

    /// One chunk of wchc's text ("0x<session>\n" then "\t<path>\n" per
    /// data-table path, a session's paths in node-id order), about
    /// `max_entries` lines from `cursor` (start at 0): the chunk may end
    /// inside a session, whose next chunk goes on after the last path
    /// written. Returns the next cursor, None when done. The registry may
    /// change between chunks. A chunk costs O(max_entries) plus one pass
    /// over the lists of the sessions it touches (so a session of L watches
    /// costs O(L) per chunk of it).
    pub fn write_watches_by_session(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        out: &mut impl std::fmt::Write,
    ) -> Option<DumpCursor> {
        let out = std::cell::RefCell::new(out);
        self.walk_watches_by_session(
            cursor,
            max_entries,
            |session| {
                let _ = writeln!(out.borrow_mut(), "0x{session:x}");
            },
            |id| {
                let _ = writeln!(out.borrow_mut(), "\t{}", self.path_of(id));
            },
        )
    }

    /// One chunk of the AdminServer's `watches` as data: as
    /// `write_watches_by_session`, but each session and path appended to
    /// `out` (paths as bytes in one buffer, no String per watch).
    pub fn export_watches_by_session(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        out: &mut SessionWatchList,
    ) -> Option<DumpCursor> {
        let out = std::cell::RefCell::new(out);
        self.walk_watches_by_session(
            cursor,
            max_entries,
            |session| {
                let mut out = out.borrow_mut();
                let end = out.paths.len();
                out.sessions.push((session, end));
            },
            |id| {
                let mut guard = out.borrow_mut();
                let out = &mut **guard;
                self.push_path_bytes(id, &mut out.paths.bytes);
                out.paths.ends.push(out.paths.bytes.len());
                let end = out.paths.len();
                if let Some(last) = out.sessions.last_mut() {
                    last.1 = end;
                }
            },
        )
    }

    /// The walk behind wchc: `on_session` before a session's first path,
    /// `on_path` per data-table path (see `write_watches_by_session`).
    fn walk_watches_by_session(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        mut on_session: impl FnMut(SessionId),
        mut on_path: impl FnMut(NodeId),
    ) -> Option<DumpCursor> {
        let budget = max_entries.max(1);
        let (mut conn, mut from, mut session) = (cursor.slot as usize, cursor.from, cursor.session);
        let mut written = 0usize;
        while conn < self.conns.len() && written < budget {
            let Some(record) = self.conns.get(conn).and_then(Option::as_ref).filter(|r| r.data_live > 0) else {
                (conn, from) = (conn + 1, 0);
                written += 1;
                continue;
            };
            if from > 0 && record.session != session {
                // The slot went to another session since the last chunk.
                from = 0;
            }
            if from == 0 {
                on_session(record.session);
                session = record.session;
                written += 1;
            }
            let room = budget.saturating_sub(written).max(1);
            let mut ids: Vec<NodeId> = record
                .paths
                .iter()
                .copied()
                .filter(|&id| id >= from)
                .filter(|&id| {
                    self.node(id).is_some_and(|n| self.crowds.get(n.watchers, conn as ConnIdx) & DATA_TABLE != 0)
                })
                .collect();
            let more = ids.len() > room;
            if more {
                ids.select_nth_unstable(room);
                ids.truncate(room);
            }
            ids.sort_unstable();
            ids.dedup();
            for &id in &ids {
                on_path(id);
            }
            written += ids.len();
            match ids.last() {
                // Repeats of the last id beyond `room` are written already.
                Some(&last) if more => from = last + 1,
                _ => (conn, from) = (conn + 1, 0),
            }
        }
        (conn < self.conns.len()).then_some(DumpCursor { slot: conn as u32, from, session })
    }

    /// One chunk of wchp's text ("<path>\n" then "\t0x<session>\n" per
    /// data-table watcher), whole paths until about `max_entries` lines
    /// (a path's watchers are never split), from trie node slot `cursor`
    /// (start at 0). Returns the next cursor, None when done.
    pub fn write_watches_by_path(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        out: &mut impl std::fmt::Write,
    ) -> Option<DumpCursor> {
        self.walk_watches_by_path(cursor, max_entries, |id, sessions| {
            let _ = writeln!(out, "{}", self.path_of(id));
            for session in sessions {
                let _ = writeln!(out, "\t0x{session:x}");
            }
        })
    }

    /// One chunk of the AdminServer's `watches_by_path` as data: as
    /// `write_watches_by_path`, each path (bytes, in one buffer) and its
    /// sorted sessions appended to `out`.
    pub fn export_watches_by_path(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        out: &mut PathWatchList,
    ) -> Option<DumpCursor> {
        self.walk_watches_by_path(cursor, max_entries, |id, sessions| {
            self.push_path_bytes(id, &mut out.paths.bytes);
            out.paths.ends.push(out.paths.bytes.len());
            out.sessions.extend_from_slice(sessions);
            out.session_ends.push(out.sessions.len());
        })
    }

    /// The walk behind wchp: `on_path(node, its sorted data-table sessions)`.
    fn walk_watches_by_path(
        &self,
        cursor: DumpCursor,
        max_entries: usize,
        mut on_path: impl FnMut(NodeId, &[SessionId]),
    ) -> Option<DumpCursor> {
        let budget = max_entries.max(1);
        let mut id = cursor.slot as usize;
        let mut written = 0usize;
        while id < self.nodes.len() && written < budget {
            written += 1;
            if let Some(node) = self.node(id as NodeId).filter(|n| self.crowds.data_watchers(n.watchers) > 0) {
                let sessions = self.data_sessions_of(node);
                on_path(id as NodeId, &sessions);
                written += sessions.len();
            }
            id += 1;
        }
        (id < self.nodes.len()).then_some(DumpCursor { slot: id as u32, ..DumpCursor::default() })
    }

    /// Appends the path of a node to `out`, as `path_of` spells it, without
    /// a String or a list of its names: its length first (one walk up),
    /// then its names written from the end (a second walk).
    fn push_path_bytes(&self, id: NodeId, out: &mut Vec<u8>) {
        let mut len = 0usize;
        let mut at = id;
        let mut names = 0usize;
        while let Some(node) = self.node(at) {
            len += self.name_of(node).len();
            names += 1;
            at = node.parent;
        }
        len += names.saturating_sub(1);
        let start = out.len();
        out.resize(start + len, b'/');
        let mut end = start + len;
        let mut at = id;
        while let Some(node) = self.node(at) {
            let name = self.name_of(node);
            let from = end - name.len();
            if let Some(slot) = out.get_mut(from..end) {
                slot.copy_from_slice(name);
            }
            // The separator before this name stays the '/' it was filled with.
            end = from.saturating_sub(1);
            at = node.parent;
        }
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

/// Proper ancestors of an absolute path, nearest first, ending with "/"
/// (the tests' statement of what the trie's parent links give).
#[cfg(test)]
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
    use std::fmt::Write as _;
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

    /// The empty-registry shortcut in `trigger` holds only while nothing is
    /// registered: each kind fires again once added after the registry emptied.
    #[test]
    fn an_emptied_registry_fires_what_is_added_again() {
        let mut w = WatchRegistry::new();
        assert_eq!(w.trigger("/a", NodeCreated), Vec::<SessionId>::new());
        w.add_data_watch(1, "/a");
        assert_eq!(w.trigger("/a", NodeCreated), vec![1]);
        assert!(w.is_empty());
        assert_eq!(w.trigger("/a", NodeCreated), Vec::<SessionId>::new());
        w.add_child_watch(2, "/a");
        assert_eq!(w.trigger("/a", NodeChildrenChanged), vec![2]);
        w.add_persistent_recursive(3, "/");
        assert_eq!(w.trigger("/a/b", NodeCreated), vec![3]);
        w.add_persistent(4, "/a");
        assert_eq!(w.trigger("/a", NodeDataChanged), vec![3, 4]);
        w.remove_session(3);
        w.remove_session(4);
        assert!(w.is_empty());
        assert_eq!(w.trigger("/a", NodeDataChanged), Vec::<SessionId>::new());
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

    fn model_op(sessions: SessionId, paths: usize) -> impl Strategy<Value = ModelOp> {
        let s = 1..=sessions;
        let p = 0usize..paths;
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

    fn run_against_model(paths: &[&str], ops: Vec<ModelOp>) -> Result<(), TestCaseError> {
        let mut w = WatchRegistry::with_hash_seed(7);
        let mut m = Model::default();
        for op in ops {
            match op {
                ModelOp::Add(s, p, k) => {
                    add_kind(&mut w, s, paths[p], k);
                    m.add(s, paths[p], k);
                }
                ModelOp::Trigger(p, e) => {
                    let event = EventType::from_code(e as i32).unwrap();
                    prop_assert_eq!(w.trigger(paths[p], event), m.trigger(paths[p], event));
                }
                ModelOp::Remove(s, p, t) => {
                    let expected = m.clear(s, paths[p], Model::selection(t));
                    prop_assert_eq!(w.remove(s, paths[p], t), expected);
                }
                ModelOp::Check(s, p, t) => {
                    let kinds = m.entries.get(&(paths[p].to_owned(), s)).copied().unwrap_or(0);
                    prop_assert_eq!(w.check(s, paths[p], t), kinds & Model::selection(t) != 0);
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
            let (mut text, mut cursor) = (String::new(), Some(DumpCursor::default()));
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
            prop_assert_eq!(sorted_blocks(&text), sorted_blocks(&expected));
            let (mut text, mut cursor) = (String::new(), Some(DumpCursor::default()));
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
            prop_assert_eq!(sorted_blocks(&text), sorted_blocks(&expected));
        }
        // Every session closed: nothing is left behind, not even a slot.
        for s in 1..=8 {
            w.remove_session(s);
        }
        prop_assert!(w.is_empty());
        prop_assert!(w.node_index.is_empty());
        prop_assert!(w.nodes.iter().all(Node::is_free));
        prop_assert_eq!(w.names.live_bytes, 0);
        prop_assert!(w.crowds.slab.iter().all(Option::is_none));
        prop_assert!(w.conn_of.is_empty());
        Ok(())
    }

    /// Header-plus-tab-lines blocks of a dump, in a canonical order (each
    /// block's lines sorted: wchc writes a session's paths in node-id
    /// order). A header written twice (a block split) would show as a
    /// block of its own and fail the comparison.
    fn sorted_blocks(text: &str) -> Vec<String> {
        let mut blocks: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            if line.starts_with('\t') {
                if let Some(last) = blocks.last_mut() {
                    last.1.push(line.to_owned());
                }
            } else {
                blocks.push((line.to_owned(), Vec::new()));
            }
        }
        let mut canonical: Vec<String> = blocks
            .into_iter()
            .map(|(header, mut lines)| {
                lines.sort();
                format!("{header}\n{}", lines.join("\n"))
            })
            .collect();
        canonical.sort();
        canonical
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        /// Few sessions: paths stay in the inline and slice forms.
        #[test]
        fn matches_model_few_sessions(ops in proptest::collection::vec(model_op(3, MODEL_PATHS.len()), 1..120)) {
            run_against_model(&MODEL_PATHS, ops)?;
        }

        /// Up to 8 sessions on 8 paths: watcher sets cross the slice/table
        /// switch both ways.
        #[test]
        fn matches_model_many_sessions(ops in proptest::collection::vec(model_op(8, MODEL_PATHS.len()), 1..400)) {
            run_against_model(&MODEL_PATHS, ops)?;
        }

        /// Generated paths (shared prefixes, names of many lengths, odd
        /// ones such as "/a//b" and "/a/"): the trie's sharing, parent
        /// links and name arena, with compaction (tiny thresholds under
        /// test) running through the operations.
        #[test]
        fn matches_model_generated_paths(
            (paths, ops) in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(String::new()), "[ab]{1,3}", "[a-z]{4,40}"], 1..5)
                    .prop_map(|names| format!("/{}", names.join("/"))),
                1..24,
            )
            .prop_flat_map(|paths| {
                let n = paths.len();
                (Just(paths), proptest::collection::vec(model_op(6, n), 1..300))
            })
        ) {
            let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
            run_against_model(&paths, ops)?;
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
        let crowd_of = |w: &WatchRegistry| match w.nodes[id as usize].watchers.form() {
            WordForm::Crowd(i) => Some(w.crowds.at(i).unwrap().set.clone()),
            _ => None,
        };
        assert!(matches!(crowd_of(&w), Some(CrowdSet::Large(_))));
        for s in 1..many {
            assert!(w.remove(s, "/hot", watcher_type::DATA));
        }
        assert!(crowd_of(&w).is_none());
        assert!(matches!(w.nodes[id as usize].watchers.form(), WordForm::One(_)));
        assert_eq!(w.trigger("/hot", NodeDataChanged), vec![many]);
        assert!(w.is_empty() && w.node_index.is_empty());
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
    fn a_churn_of_distinct_watches_does_not_grow_memory() {
        let mut w = WatchRegistry::with_hash_seed(3);
        let mut peak = (0, 0, 0);
        for round in 0..300u64 {
            // 100 sessions x 20 paths of their own, then every one fired
            // (odd rounds) or the sessions closed (even rounds).
            let sessions: Vec<SessionId> = (0..100).map(|s| (round * 100 + s) as SessionId + 1).collect();
            for &s in &sessions {
                for i in 0..20 {
                    w.add_data_watch(s, &format!("/churn/r{round}/s{s}/p{i}-{}", "x".repeat((s % 13) as usize)));
                }
            }
            assert_eq!(w.data_watch_count(), 2000);
            if round == 10 {
                peak = (w.nodes.len(), w.node_index.len(), 2 * w.names.live_bytes);
            }
            if round > 10 {
                assert!(w.nodes.len() <= peak.0, "nodes {} > {}", w.nodes.len(), peak.0);
                // The index is remade from its live ids when it fills
                // (tombstones included): at most 3 times them (1.5 times,
                // to a power of two), plus the old table while the move is
                // under way, never growing with the churn.
                assert!(w.node_index.capacity() <= 5 * peak.1, "{} vs {}", w.node_index.capacity(), peak.1);
                // Holes at most the live bytes (plus one compaction's
                // worth of lag), so the arena stays within a bound.
                assert!(w.names.bytes.len() <= 2 * peak.2 + 2 * ARENA_COMPACT_MIN_BYTES, "{}", w.names.bytes.len());
                assert!(w.names.bytes.capacity() <= 4 * peak.2 + 4 * ARENA_COMPACT_MIN_BYTES);
            }
            if round % 2 == 1 {
                for &s in &sessions {
                    for i in 0..20 {
                        let path = format!("/churn/r{round}/s{s}/p{i}-{}", "x".repeat((s % 13) as usize));
                        assert_eq!(w.trigger(&path, NodeDataChanged), vec![s]);
                    }
                }
            } else {
                sessions.iter().for_each(|&s| w.remove_session(s));
            }
            assert!(w.is_empty());
            // Every name went with its watch: only "" is left of the trie.
            assert_eq!(w.node_index.len(), 0, "round {round}");
            assert_eq!(w.names.live_bytes, 0);
        }
        assert!(w.crowds.slab.iter().all(Option::is_none));
    }

    /// 1M watches, each on a path of its own (1,000 sessions x 1,000):
    /// triggering a path visits its one watcher, closing a session its
    /// watches, and the dumps name every path in full.
    #[test]
    fn work_is_bounded_at_a_million_distinct_watches() {
        const SESSIONS: SessionId = 1_000;
        const PATHS: usize = 1_000;
        let mut w = WatchRegistry::with_hash_seed(9);
        let path = |s: SessionId, i: usize| format!("/watch-run/s{s}/p{i}");
        for s in 1..=SESSIONS {
            for i in 0..PATHS {
                w.add_data_watch(s, &path(s, i));
            }
        }
        assert_eq!(w.data_watch_count(), SESSIONS as usize * PATHS);
        assert_eq!(w.watched_path_count(), SESSIONS as usize * PATHS);
        assert_eq!(w.watching_session_count(), SESSIONS as usize);
        // The trie keeps "/watch-run" and "s<N>" once: the leaves' names
        // are all the arena holds besides.
        assert!(w.names.live_bytes < SESSIONS as usize * PATHS * arena_entry_bytes("p999".len()));

        let before = w.watchers_visited();
        assert_eq!(w.trigger(&path(77, 500), NodeDataChanged), vec![77]);
        assert_eq!(w.watchers_visited() - before, 2);
        assert_eq!(w.trigger(&path(77, 500), NodeDataChanged), Vec::<SessionId>::new());

        // A recursive watch on a session's directory sees only its own.
        w.add_persistent_recursive(5, "/watch-run/s6");
        assert_eq!(w.trigger(&path(6, 3), NodeDataChanged), vec![5, 6]);
        assert_eq!(w.trigger(&path(7, 3), NodeDataChanged), vec![7]);

        let before = w.watchers_visited();
        w.remove_session(9);
        let visited = w.watchers_visited() - before;
        assert!((PATHS as u64..=PATHS as u64 + 1).contains(&visited), "{visited}");
        assert!(w.lookup("/watch-run/s9").is_none(), "an emptied directory goes too");
        assert_eq!(w.watching_session_count(), SESSIONS as usize - 1);

        let mut text = String::new();
        let mut cursor = Some(DumpCursor::default());
        let mut chunks = 0;
        while let Some(at) = cursor {
            cursor = w.write_watches_by_path(at, 4096, &mut text);
            chunks += 1;
        }
        assert!(chunks > 200, "{chunks}");
        assert!(text.contains(&format!("{}\n\t0x{:x}\n", path(1000, 999), 1000)));
        assert!(!text.contains("/watch-run/s9/"));

        // wchc in chunks of lines, not of sessions: 999 sessions of ~1,000
        // paths are ~244 chunks of 4,096 lines, each session's header once
        // and every path under it.
        let (mut text, mut cursor, mut chunks) = (String::new(), Some(DumpCursor::default()), 0);
        while let Some(at) = cursor {
            let before = text.lines().count();
            cursor = w.write_watches_by_session(at, 4096, &mut text);
            assert!(text.lines().count() - before <= 4096 + 1);
            chunks += 1;
        }
        assert!(chunks > 240, "{chunks}");
        let mut blocks: HashMap<SessionId, usize> = HashMap::new();
        let mut session = 0;
        for line in text.lines() {
            match line.strip_prefix("\t") {
                Some(p) => {
                    // (Session 5 also holds the recursive watch on s6.)
                    let own = p.starts_with(&format!("/watch-run/s{session}/"));
                    assert!(own || (session == 5 && p == "/watch-run/s6"), "{p} under 0x{session:x}");
                    *blocks.get_mut(&session).unwrap() += 1;
                }
                None => {
                    session = SessionId::from_str_radix(line.trim_start_matches("0x"), 16).unwrap();
                    assert!(blocks.insert(session, 0).is_none(), "0x{session:x} twice");
                }
            }
        }
        assert_eq!(blocks.len(), SESSIONS as usize - 1);
        assert_eq!(blocks.values().sum::<usize>(), w.data_watch_count());
    }

    /// The node index never grows in place (which rehashes every id at
    /// once): a full table is replaced and moved across a few buckets per
    /// change, and every path stays findable while the move is under way.
    #[test]
    fn the_node_index_grows_a_few_buckets_per_change() {
        let mut w = WatchRegistry::with_hash_seed(5);
        let path = |i: usize| format!("/grow/d{}/p{i}", i % 7);
        let (mut moves_seen, mut replaced) = (0, 0);
        for i in 0..20_000 {
            let (table_before, draining_before) =
                (w.node_index.table.num_buckets(), w.node_index.draining.num_buckets());
            let moved_before = w.node_index.draining.len();
            w.add_data_watch(i as SessionId % 3 + 1, &path(i));
            let index = &w.node_index;
            if index.table.num_buckets() != table_before && table_before >= 16 {
                // Replaced: the old table is the one now draining (or was
                // emptied at once, when tiny).
                assert!(
                    index.draining.num_buckets() == table_before || index.draining.is_empty(),
                    "add {i}: table {table_before} -> {}, draining {draining_before} -> {}",
                    index.table.num_buckets(),
                    index.draining.num_buckets()
                );
                replaced += 1;
            } else if draining_before > 0 {
                // An insert (two names at most: "d<k>" is made once) and
                // one bounded step of the move.
                let moved = moved_before.saturating_sub(index.draining.len());
                assert!(moved <= 2 * INDEX_MOVE_BUCKETS_PER_CHANGE, "{moved}");
                moves_seen += 1;
            }
            if !index.draining.is_empty() && i % 97 == 0 {
                for j in (0..=i).step_by(13) {
                    assert!(w.lookup(&path(j)).is_some(), "{} lost mid-move", path(j));
                }
            }
        }
        assert!(replaced >= 10 && moves_seen > 1000, "{replaced} {moves_seen}");
        // The leaves, "d0".."d6", "grow" and the top "".
        assert_eq!(w.node_index.len(), 20_000 + 7 + 2);
        for i in 0..20_000 {
            assert_eq!(w.trigger(&path(i), NodeDataChanged), vec![i as SessionId % 3 + 1]);
        }
        assert!(w.node_index.is_empty());
    }

    /// Heap bytes per watch at scale, both shapes of the `watches` rows of
    /// docs/benchmarks/scale.md (1,000 sessions; shared: every session on
    /// the same paths; distinct: every (session, path) a path of its own,
    /// `/watch-<run>/s<session>/p<i>` as `zoocore-bench watches --distinct`
    /// makes them). Counts malloc's in-use bytes (small and mmapped) and
    /// the process's resident growth. Run with
    /// `cargo test --release --lib watch::tests::measure_heap_per_watch -- --ignored --nocapture`
    /// (`WATCH_MEASURE_PER_SESSION=10000` for 10M watches).
    #[test]
    #[ignore = "a memory measurement run by hand, not a test"]
    fn measure_heap_per_watch() {
        const SESSIONS: SessionId = 1_000;
        let per_session: usize =
            std::env::var("WATCH_MEASURE_PER_SESSION").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
        let heap = || {
            let info = unsafe { libc::mallinfo2() };
            (info.uordblks + info.hblkhd) as f64
        };
        let rss = || {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            pages * 4096.0
        };
        for distinct in [false, true] {
            let (heap_before, rss_before) = (heap(), rss());
            let mut w = WatchRegistry::with_hash_seed(11);
            let mut path = String::new();
            let mut slowest_add = std::time::Duration::ZERO;
            for s in 1..=SESSIONS {
                for i in 0..per_session {
                    path.clear();
                    if distinct {
                        let _ = write!(path, "/watch-1764650000-12345/s{s}/p{i}");
                    } else {
                        let _ = write!(path, "/watch-1764650000-12345/p{i}");
                    }
                    let started = std::time::Instant::now();
                    w.add_data_watch(s, &path);
                    slowest_add = slowest_add.max(started.elapsed());
                }
            }
            let watches = SESSIONS as f64 * per_session as f64;
            assert_eq!(w.data_watch_count() as f64, watches);
            let per_watch = (heap() - heap_before) / watches;
            let rss_per_watch = (rss() - rss_before) / watches;
            let conn_list: usize =
                w.conns.iter().flatten().map(|c| c.paths.capacity() * std::mem::size_of::<NodeId>()).sum();
            let crowds: usize = w
                .crowds
                .slab
                .iter()
                .flatten()
                .map(|c| match &c.set {
                    CrowdSet::Small(v) => v.capacity() * 4,
                    CrowdSet::Large(t) => t.allocation_size(),
                })
                .sum::<usize>()
                + w.crowds.slab.capacity() * std::mem::size_of::<Option<Crowd>>();
            let parts = [
                ("nodes", w.nodes.capacity() * std::mem::size_of::<Node>()),
                ("names", w.names.bytes.capacity()),
                ("node_index", w.node_index.allocation_size()),
                ("crowds", crowds),
                ("conn lists", conn_list),
            ];
            println!(
                "index: table {} ids / {} buckets, draining {} ids / {} buckets from {}",
                w.node_index.table.len(),
                w.node_index.table.num_buckets(),
                w.node_index.draining.len(),
                w.node_index.draining.num_buckets(),
                w.node_index.drain_at
            );
            let detail: Vec<String> =
                parts.iter().map(|(name, bytes)| format!("{name} {:.1}", *bytes as f64 / watches)).collect();
            println!(
                "{} paths, {} watches: heap {per_watch:.1} B per watch, resident {rss_per_watch:.1} B; capacity by part: {}; \
                 slowest add {:.1} ms",
                if distinct { "distinct" } else { "shared" },
                watches,
                detail.join(", "),
                slowest_add.as_secs_f64() * 1e3
            );
            drop(w);
        }
    }

    #[test]
    fn entries_are_small() {
        // The sizes docs/architecture.md charges per path and per watcher.
        assert_eq!(std::mem::size_of::<Watcher>(), 4);
        assert_eq!(std::mem::size_of::<WatcherWord>(), 4);
        assert_eq!(std::mem::size_of::<Node>(), 16);
        for len in [0, 1, 127, 128, 16_383, 16_384, 1 << 21] {
            let mut arena = NameArena::default();
            let name = vec![b'n'; len];
            let at = arena.push(7, &name).unwrap();
            assert_eq!(arena.name(at), &name[..]);
            assert_eq!(arena.entry_bytes(at as usize), arena_entry_bytes(len));
            assert_eq!(arena.bytes.len(), arena_entry_bytes(len));
        }
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
