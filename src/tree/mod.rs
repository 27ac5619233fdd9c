//! The data tree: znodes, their stats and ACLs, and ZooKeeper's write
//! semantics (validation order, stat updates, watch triggers). Sans-IO.
//!
//! Only the commit shard mutates a `DataTree`; after each durable batch it
//! publishes a clone to the worker shards, which read it without locks. So
//! the tree is persistent (`imbl`): `Clone` is O(1), a clone never sees later
//! writes, a write copies only the B-tree path to the node and the node, and
//! unshared structure is freed when the last version drops.
//!
//! **Layout and memory per znode** (`node.rs`). One ordered set of nodes,
//! ordered by (parent, name) so that a node's children are one contiguous
//! range; there is no per-node child set, and each path is stored once.
//! Each node is one heap allocation behind an 8-byte pointer
//! (`thin_arc::ThinArc`); the ephemeral and container/TTL indexes hold the
//! same pointers (replaced together with the node). Per znode, 64-bit, for
//! a fresh 100-byte leaf such as `zoocore-bench memory` makes:
//! * the set slot: the 8-byte pointer in a B-tree leaf of 16 slots (a leaf
//!   is 176 bytes with its chunk indices, Arc and malloc headers); the
//!   vendored `imbl` splits a full leaf where an ascending run of keys
//!   reaches it, else at the median, so runs leave full leaves: ~19 B with
//!   the inner nodes, for the memory test's names and random ones alike (a
//!   tree loaded from a snapshot is built bottom-up with full leaves, ~12 B);
//! * the allocation's fixed part, 24 B: reference count 4, slice length 4,
//!   the shared part pointer 8 (an interned ACL list; see `NodeShared`),
//!   the node's digest 4, the path length 4;
//! * the path's bytes and the value's bytes (up to `INLINE_DATA_MAX_BYTES`
//!   inline; a larger value is a `Bytes` of its own in the shared part);
//! * the stat, packed: 3 control bytes (flags, stat length), then varints:
//!   czxid (5 B for epoch 1) and ctime (6 B); mzxid/pzxid as deltas from
//!   czxid and mtime from ctime, versions, the owner and numChildren only
//!   when not 0 — 14 B for a fresh leaf, ~20 B after a few setData;
//! * malloc's 8-byte header and rounding to 16 (0-15 B, ~8 B on average).
//!
//! So about **68 B + path + data** on the heap, measured by
//! `tests::measure_heap_per_znode` (per field: docs/architecture.md; the
//! raw stat alone would be 68 B, the previous layout cost ~250 B). The price: a write copies the node
//! (path, stat and inline value) whenever another tree version (or an
//! index, or a branch separator) holds it; a node only this version holds
//! (a parent written twice in one batch, every node during replay) gets a
//! stat-only change or a same-sized inline value in place when the packed
//! stat keeps its length (`Node::restat_in_place`). A change to a node is
//! one descent of the set (`OrdSet::get_mut`, a vendored-imbl patch: find
//! the slot, copy the shared path, swap the node in). One more: the B-tree's branch separators are clones of keys,
//! so a separator keeps the node version it was cut from alive (at most one
//! old version per separator, ~1 node in 12) until that branch changes.
//!
//! **Digest.** The tree keeps Apache's tree digest (see
//! `storage::apache::digest`) as it changes: each node caches its own
//! digest, and the low-level helpers at the bottom of this file, the only
//! code that changes `nodes`, subtract a node's old digest and add its new
//! one. A stat-only change re-hashes 60 bytes, not the path and data, so
//! `digest()` is O(1) and a write pays well under a microsecond for it.
//!
//! **Quotas** (`quota.rs`): the tree keeps Apache's quota roots and rewrites
//! each root's `zookeeper_stats` node in apply; `execute` checks hard limits
//! when `TxnContext::enforce_quota` is set.

mod acl_cache;
mod apply;
mod exec;
mod load;
#[cfg(test)]
mod model_tests;
mod node;
mod path;
mod quota;
#[cfg(test)]
mod tests;
mod thin_arc;

use std::sync::Arc;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};

use crate::proto::{read_acl_unsafe, Acl, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS, TTL_MASK};
use crate::storage::apache::digest::{self, DigestCheck, DIGEST_VERSION};
use crate::storage::txn::TxnDigest;

use acl_cache::AclCache;
use node::{NewData, NodeStat};
use path::{as_bounds, child_range_bounds, TreePath};

pub use exec::{Executed, MultiOpResult, TxnContext, WatchTrigger, WriteOp, WriteResult};
pub use load::{LoadError, TreeLoader};
pub use node::KEPT_VALUE_MIN_BYTES;
pub use node::{InternedAcl, Node, NodeShared};
pub use path::validate_path;
pub use quota::{QuotaMetrics, QuotaNote, StatsTrack};

/// The special nodes that always exist and cannot be deleted.
pub const SPECIAL_PATHS: [&str; 4] = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];

/// What a node is, decoded from its stored ephemeralOwner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    /// An ephemeral owned by this session.
    Ephemeral(i64),
    Container,
    /// A TTL node with this ttl in ms.
    Ttl(i64),
}

impl NodeKind {
    pub fn from_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_EPHEMERAL_OWNER {
            NodeKind::Container
        } else if owner & TTL_MASK == TTL_MASK {
            NodeKind::Ttl(owner & MAX_TTL_MS)
        } else {
            NodeKind::Ephemeral(owner)
        }
    }
}

/// The persisted stat fields (StatPersisted, as in snapshots). `cversion`
/// is the stored create counter, not the wire value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

/// A node's stat fields and ACL as `update_node` lets them be changed.
pub(crate) struct NodeFields {
    /// Some: the node gets this (interned) ACL.
    pub acl: Option<Arc<NodeShared>>,
    pub stat: StoredStat,
    pub num_children: i32,
}

/// The znode tree. See the module doc for the layout.
#[derive(Clone)]
pub struct DataTree {
    /// Every node, ordered by path in (parent, name) order.
    nodes: OrdSet<Node>,
    /// session id -> its ephemerals. The index holds the same node
    /// allocations as `nodes` (replaced with them on every change), so it
    /// costs a set slot per entry and keeps no old version alive.
    ephemerals: OrdMap<i64, OrdSet<Node>>,
    /// Container and TTL nodes, the reaper's candidates (same sharing).
    containers: OrdSet<Node>,
    ttls: OrdSet<Node>,
    acl_cache: AclCache,
    /// The quota roots (`quota.rs`), kept in step in apply.
    quotas: quota::QuotaRoots,
    /// Sum of path lengths and data lengths, as Java's approximateDataSize.
    data_size: u64,
    /// Apache's tree digest: the wrapping sum of every node's `digest`.
    digest: i64,
    last_zxid: i64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota`,
    /// `/zookeeper/config` with zero stats; the config node is READ-only.
    pub fn new() -> DataTree {
        let mut tree = DataTree::empty();
        let open = crate::proto::open_acl_unsafe();
        for path in ["/", "/zookeeper", "/zookeeper/quota"] {
            tree.restore_node(path, Some(Bytes::new()), &open, StoredStat::default());
        }
        tree.restore_node("/zookeeper/config", Some(Bytes::new()), &read_acl_unsafe(), StoredStat::default());
        tree
    }

    /// No nodes at all, not even the root (for loaders).
    pub(super) fn empty() -> DataTree {
        DataTree {
            nodes: OrdSet::new(),
            ephemerals: OrdMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            acl_cache: AclCache::default(),
            quotas: quota::QuotaRoots::default(),
            data_size: 0,
            digest: 0,
            last_zxid: 0,
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(TreePath::new(path))
    }

    /// Names of the children of `path`, sorted; None if no such node.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.get(path)?;
        let mut names = Vec::new();
        self.for_each_child(path, |child| {
            if let Some((_, name)) = path::split_last(child.path()) {
                names.push(name.to_owned());
            }
        });
        Some(names)
    }

    /// The children of `path` in name order (the root is never its own child).
    fn for_each_child<'a>(&'a self, path: &str, mut f: impl FnMut(&'a Node)) {
        let bounds = child_range_bounds(path);
        for node in self.nodes.range::<_, TreePath>(as_bounds(&bounds)) {
            if node.path() != "/" {
                f(node);
            }
        }
    }

    /// Number of all descendants of `path` (not counting itself), as
    /// getAllChildrenNumber; None if no such node.
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        self.get(path)?;
        if path == "/" {
            return Some(self.nodes.len().saturating_sub(1) as i32);
        }
        let mut count: i64 = 0;
        let mut pending: Vec<&Node> = Vec::new();
        self.for_each_child(path, |child| pending.push(child));
        while let Some(current) = pending.pop() {
            count += 1;
            if current.num_children() > 0 {
                self.for_each_child(current.path(), |child| pending.push(child));
            }
        }
        Some(count.min(i32::MAX as i64) as i32)
    }

    /// Number of znodes. Java's "Node count" (srvr, mntr) is this + 1,
    /// because it stores the root under both "" and "/".
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum of path lengths and data lengths (Java's approximateDataSize).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// Apache's tree digest (DataTree.getTreeDigest) of the tree as it is
    /// now, O(1). Always equal to `storage::apache::digest::tree_digest`.
    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The `TxnDigest` a txn carries: the tree digest right after applying
    /// it, so call this after `apply_txn` (`execute` already fills
    /// `Executed::digest`).
    pub fn txn_digest(&self) -> TxnDigest {
        TxnDigest { version: DIGEST_VERSION, tree_digest: self.digest }
    }

    /// A follower's (and recovery's) check, right after applying a txn, of
    /// the digest the txn carried against this tree (DataTree.compareDigest):
    /// not carried and other digest versions are not compared. After loading
    /// a fuzzy snapshot use `storage::apache::digest::DigestVerifier`, which
    /// holds comparisons off until the tree is consistent again.
    pub fn check_txn_digest(&self, expected: Option<TxnDigest>) -> DigestCheck {
        DigestCheck::compare(expected, self.digest)
    }

    /// zxid of the last txn applied (0 for a fresh tree).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// Set after restoring a snapshot, or when a txn that touches no node
    /// (createSession, an error txn) is applied.
    pub fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }

    /// Ephemeral paths of a session, sorted by (parent, name).
    pub fn ephemerals_of(&self, session_id: i64) -> Vec<String> {
        self.ephemerals
            .get(&session_id)
            .map(|set| set.iter().map(|node| node.path().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Every session that owns ephemerals, with their paths (for `dump`).
    pub fn ephemerals_by_session(&self) -> Vec<(i64, Vec<String>)> {
        self.ephemerals
            .iter()
            .map(|(session, set)| (*session, set.iter().map(|n| n.path().to_owned()).collect()))
            .collect()
    }

    /// Every (path, node), each parent before its children (the order a
    /// snapshot must be written in).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|node| (node.path(), node))
    }

    /// Containers and TTL nodes the reaper should delete now, at most
    /// `limit`: containers with no children that once had one (stored
    /// cversion > 0), or that never had one and are older (mtime) than
    /// `max_never_used_ms` when that is > 0; TTL nodes with no children
    /// whose mtime is more than ttl ms ago.
    pub fn reapable(&self, now_ms: i64, max_never_used_ms: i64, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for node in self.containers.iter() {
            if out.len() >= limit {
                return out;
            }
            let NodeStat { stat, num_children } = node.node_stat();
            if num_children != 0 {
                continue;
            }
            let used = stat.cversion > 0;
            let stale = max_never_used_ms > 0 && now_ms.saturating_sub(stat.mtime) > max_never_used_ms;
            if used || stale {
                out.push(node.path().to_owned());
            }
        }
        for node in self.ttls.iter() {
            if out.len() >= limit {
                return out;
            }
            let NodeStat { stat, num_children } = node.node_stat();
            if let NodeKind::Ttl(ttl) = NodeKind::from_owner(stat.ephemeral_owner) {
                if num_children == 0 && now_ms.saturating_sub(stat.mtime) > ttl {
                    out.push(node.path().to_owned());
                }
            }
        }
        out
    }

    /// Inserts or replaces a node as read from a snapshot (parents must come
    /// first). Returns false, changing nothing, if the parent is missing or
    /// the path has no '/'. The parent's numChildren is kept in step; its
    /// stored cversion/pzxid are the snapshot's and are left alone.
    pub fn restore_node(&mut self, path: &str, data: Option<Bytes>, acl: &[Acl], stat: StoredStat) -> bool {
        let Some(parent) = path::parent_of(path) else {
            return false;
        };
        let is_root = path == "/";
        if !is_root && self.get(parent).is_none() {
            return false;
        }
        let acl = self.acl_cache.intern(acl);
        let num_children = match self.remove_node_entry(path) {
            Some(old) => old.num_children(),
            None => {
                if !is_root {
                    self.update_node(parent, |p| p.num_children += 1);
                }
                0
            }
        };
        let data = match &data {
            Some(d) => NewData::Copy(d),
            None => NewData::Null,
        };
        self.insert_node_entry(path, data, &acl, NodeStat { stat, num_children });
        true
    }

    // ----- low-level mutation helpers, keeping the indexes in step -----

    /// Adds a node (its data copied in) unless one is at `path` already:
    /// then None and nothing changes. One descent of the set when the path
    /// is new (a second one puts the existing node back otherwise).
    fn insert_node_entry(&mut self, path: &str, data: NewData, acl: &Arc<NodeShared>, stat: NodeStat) -> Option<Node> {
        let data_slice = match &data {
            NewData::Null => None,
            NewData::Copy(d) => Some(*d),
            NewData::Shared(d) => Some(&d[..]),
        };
        let node_digest = digest::digest_of(path, data_slice, &stat.stat) as u32;
        let node = Node::build(path, data, acl, &stat, node_digest);
        self.add_node_entry(node.clone()).then_some(node)
    }

    /// Adds `node` unless one is at its path already (then false and
    /// nothing changes), keeping the data size, digest and indexes in step.
    fn add_node_entry(&mut self, node: Node) -> bool {
        if let Some(existing) = self.nodes.insert(node.clone()) {
            self.nodes.insert(existing);
            return false;
        }
        self.data_size += (node.path().len() + node.data_len()) as u64;
        self.digest = self.digest.wrapping_add(node.digest());
        self.index(&node);
        true
    }

    /// Puts `node` into its kind's index (replacing its older version).
    fn index(&mut self, node: &Node) {
        match node.kind() {
            NodeKind::Ephemeral(session) => {
                self.ephemerals.entry(session).or_default().insert(node.clone());
            }
            NodeKind::Container => {
                self.containers.insert(node.clone());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(node.clone());
            }
            NodeKind::Persistent => {}
        }
    }

    fn remove_node_entry(&mut self, path: &str) -> Option<Node> {
        let key = TreePath::new(path);
        let node = self.nodes.remove(key)?;
        self.data_size = self.data_size.saturating_sub((path.len() + node.data_len()) as u64);
        self.digest = self.digest.wrapping_sub(node.digest());
        match node.kind() {
            NodeKind::Ephemeral(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(key);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            NodeKind::Container => {
                self.containers.remove(key);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(key);
            }
            NodeKind::Persistent => {}
        }
        Some(node)
    }

    /// The node at `path` with `f` applied to its stat fields and ACL (the
    /// data is kept), put in its place in the same descent of the set that
    /// finds it (rewritten in place when no other version holds it), and
    /// returned. `f` must not change the ephemeralOwner (the indexes would
    /// go stale).
    fn update_node(&mut self, path: &str, f: impl FnOnce(&mut NodeFields)) -> Option<Node> {
        let slot = self.nodes.get_mut(TreePath::new(path))?;
        let old_digest = slot.digest();
        let new_digest = restat_slot(slot, f);
        let node = slot.clone();
        self.digest = self.digest.wrapping_sub(old_digest).wrapping_add(new_digest);
        self.index(&node);
        Some(node)
    }

    /// Replaces the data of the node at `path` with (an owned copy of)
    /// `data`, then applies `f` as `update_node` does, in one descent of
    /// the set; keeps the data size and the digest (path and data
    /// re-hashed) in step. Returns the old data length and the new node.
    fn update_node_data(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        keep_large_value: bool,
        f: impl FnOnce(&mut NodeFields),
    ) -> Option<(usize, Node)> {
        let slot = self.nodes.get_mut(TreePath::new(path))?;
        let before = slot.node_stat();
        let old_len = slot.data_len();
        let old_digest = slot.digest();
        let mut fields = NodeFields { acl: None, stat: before.stat, num_children: before.num_children };
        f(&mut fields);
        debug_assert_eq!(
            fields.stat.ephemeral_owner, before.stat.ephemeral_owner,
            "update_node_data changed the owner"
        );
        let new_digest = digest::digest_of(path, data.as_deref(), &fields.stat);
        let after = NodeStat { stat: fields.stat, num_children: fields.num_children };
        // A same-sized value on a node nothing else holds (replay, or a
        // node written twice in one batch) is rewritten where it is.
        let in_place = fields.acl.is_none()
            && data.as_ref().is_some_and(|d| slot.replace_data_in_place(d, &after, new_digest as u32));
        if !in_place {
            let acl = fields.acl.unwrap_or_else(|| slot.shared().clone());
            let new_data = NewData::of(data, keep_large_value);
            // Same path, so the set's order is kept.
            *slot = Node::build(path, new_data, &acl, &after, new_digest as u32);
        }
        let node = slot.clone();
        let new_len = node.data_len();
        self.digest = self.digest.wrapping_sub(old_digest).wrapping_add(new_digest);
        self.data_size = self.data_size.saturating_sub(old_len as u64) + new_len as u64;
        self.index(&node);
        Some((old_len, node))
    }
}

/// Applies `f` to the stat fields and ACL of the node in `slot` (see
/// `DataTree::update_node`); returns the node's new digest. The path stays,
/// so the set's order is kept. A stat-only change to a node nothing else
/// holds (a parent already copied by an earlier write of this batch, or
/// during replay) rewrites its allocation; otherwise a new node replaces it.
fn restat_slot(slot: &mut Node, f: impl FnOnce(&mut NodeFields)) -> i64 {
    let before = slot.node_stat();
    let mut fields = NodeFields { acl: None, stat: before.stat, num_children: before.num_children };
    f(&mut fields);
    debug_assert_eq!(fields.stat.ephemeral_owner, before.stat.ephemeral_owner, "update_node changed the owner");
    let new_digest = digest::restat_digest(slot.path(), slot.digest(), &before.stat, &fields.stat);
    let after = NodeStat { stat: fields.stat, num_children: fields.num_children };
    if fields.acl.is_some() || !slot.restat_in_place(&after, new_digest as u32) {
        *slot = slot.restat(fields.acl.as_ref(), &after, new_digest as u32);
    }
    new_digest
}
