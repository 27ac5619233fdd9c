//! The data tree: znodes, their stats and ACLs, and ZooKeeper's write
//! semantics (validation order, stat updates, watch triggers). Sans-IO.
//!
//! Only the commit shard mutates a `DataTree`; after each durable batch it
//! publishes a clone to the worker shards, which read it without locks. So
//! the tree is persistent (`imbl`): `Clone` is O(1), a clone never sees later
//! writes, and unshared structure is freed when the last version drops.
//!
//! **Layout and memory per znode.** One ordered map `path -> Arc<Node>`,
//! ordered by (parent, name) so that a node's children are one contiguous
//! key range; there is no per-node child set at all, and each path is
//! stored once (its `Arc<str>` is shared with the ephemeral and
//! container/TTL indexes). Per znode, on 64-bit:
//! * `Node` 120 B inline (data `Option<Bytes>` 32, ACL `Arc<[Acl]>` 16, six
//!   i64 stat fields 48, version/cversion/aversion/numChildren 16, its
//!   digest 4 + 4 padding) plus 16 B Arc header = 136 B;
//! * the map slot (key 16 B + value pointer 8 B) in a B-tree leaf of 16
//!   slots; at the typical ~70 % fill that is ~35 B, plus ~3 B of inner
//!   nodes;
//! * the path string: 16 B Arc header + its bytes;
//! * the data: its bytes (plus the `Bytes` shared header, ~32 B, only when
//!   the buffer was shared rather than an exclusively owned Vec);
//! * the ACL: nothing per node beyond the 16 B pointer, lists are interned.
//!
//! So about **190 B + path + data** per znode (ZooKeeper's Java DataNode
//! costs roughly 250–300 B + path + data). The price is O(log n) string
//! comparisons per lookup instead of a hash, and a write copies one B-tree
//! path (a few hundred bytes) plus one Node.
//!
//! **Digest.** The tree keeps Apache's tree digest (see
//! `storage::apache::digest`) as it changes: each node caches its own
//! digest, and the low-level helpers at the bottom of this file, the only
//! code that changes `nodes`, subtract a node's old digest and add its new
//! one. A stat-only change re-hashes 60 bytes, not the path and data, so
//! `digest()` is O(1) and a write pays well under a microsecond for it.

mod acl_cache;
mod apply;
mod exec;
mod load;
mod path;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use imbl::{OrdMap, OrdSet};

use crate::proto::{read_acl_unsafe, Acl, Stat, CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS, TTL_MASK};
use crate::storage::apache::digest::{self, DigestCheck, DIGEST_VERSION};
use crate::storage::txn::TxnDigest;

use acl_cache::AclCache;
use path::{as_bounds, child_range_bounds, PathKey, TreePath};

pub use exec::{Executed, MultiOpResult, TxnContext, WatchTrigger, WriteOp, WriteResult};
pub use load::{LoadError, TreeLoader};
pub use path::validate_path;

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

/// One znode. Immutable once published; the tree replaces it on change.
#[derive(Debug, Clone)]
pub struct Node {
    /// None = null data (distinct from empty on the wire).
    data: Option<Bytes>,
    acl: Arc<[Acl]>,
    czxid: i64,
    mzxid: i64,
    ctime: i64,
    mtime: i64,
    ephemeral_owner: i64,
    pzxid: i64,
    version: i32,
    /// Stored counter: number of child creates (wraps).
    cversion: i32,
    aversion: i32,
    num_children: i32,
    /// This node's digest (a CRC32; 0 under /zookeeper/), set and kept by
    /// the tree's low-level helpers; meaningless until inserted.
    digest: u32,
}

/// Data kept in the tree gets an allocation of its own: the `Bytes` that
/// arrive are usually zero-copy slices of a whole socket read buffer or log
/// file, and keeping one would keep all of that alive for the node's life.
pub(crate) fn owned_data(data: &Option<Bytes>) -> Option<Bytes> {
    data.as_ref().map(|d| if d.is_empty() { Bytes::new() } else { Bytes::copy_from_slice(d) })
}

impl Node {
    fn new(data: Option<Bytes>, acl: Arc<[Acl]>, stat: StoredStat) -> Node {
        Node {
            data: owned_data(&data),
            acl,
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            ephemeral_owner: stat.ephemeral_owner,
            pzxid: stat.pzxid,
            version: stat.version,
            cversion: stat.cversion,
            aversion: stat.aversion,
            num_children: 0,
            digest: 0,
        }
    }

    /// The data; None if it was set as null.
    pub fn data(&self) -> Option<&Bytes> {
        self.data.as_ref()
    }

    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, Bytes::len)
    }

    pub fn acl(&self) -> &Arc<[Acl]> {
        &self.acl
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.ephemeral_owner)
    }

    pub fn num_children(&self) -> i32 {
        self.num_children
    }

    pub fn version(&self) -> i32 {
        self.version
    }

    pub fn mzxid(&self) -> i64 {
        self.mzxid
    }

    pub fn mtime(&self) -> i64 {
        self.mtime
    }

    pub fn pzxid(&self) -> i64 {
        self.pzxid
    }

    /// The Stat as sent to clients: cversion = 2·stored − numChildren
    /// (creates + deletes), ephemeralOwner 0 for containers and TTL nodes.
    pub fn stat(&self) -> Stat {
        let ephemeral_owner = match self.kind() {
            NodeKind::Ephemeral(session) => session,
            _ => 0,
        };
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(self.num_children),
            aversion: self.aversion,
            ephemeral_owner,
            data_length: self.data_len() as i32,
            num_children: self.num_children,
            pzxid: self.pzxid,
        }
    }

    /// This node's contribution to the tree digest (Apache's nodeDigest).
    pub fn digest(&self) -> i64 {
        self.digest as i64
    }

    /// The fields a snapshot stores (raw ephemeralOwner, stored cversion).
    pub fn stored_stat(&self) -> StoredStat {
        StoredStat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            pzxid: self.pzxid,
        }
    }
}

/// The znode tree. See the module doc for the layout.
#[derive(Clone)]
pub struct DataTree {
    nodes: OrdMap<PathKey, Arc<Node>>,
    /// session id -> its ephemeral paths.
    ephemerals: OrdMap<i64, OrdSet<PathKey>>,
    /// Container and TTL nodes, the reaper's candidates.
    containers: OrdSet<PathKey>,
    ttls: OrdSet<PathKey>,
    acl_cache: AclCache,
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
            nodes: OrdMap::new(),
            ephemerals: OrdMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            acl_cache: AclCache::default(),
            data_size: 0,
            digest: 0,
            last_zxid: 0,
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(TreePath::new(path)).map(|node| &**node)
    }

    /// Names of the children of `path`, sorted; None if no such node.
    pub fn children(&self, path: &str) -> Option<Vec<String>> {
        self.get(path)?;
        let mut names = Vec::new();
        self.for_each_child(path, |name| names.push(name.to_owned()));
        Some(names)
    }

    fn for_each_child(&self, path: &str, mut f: impl FnMut(&str)) {
        let bounds = child_range_bounds(path);
        for (key, _) in self.nodes.range::<_, TreePath>(as_bounds(&bounds)) {
            if let Some((_, name)) = path::split_last(key.as_str()) {
                if !name.is_empty() {
                    f(name);
                }
            }
        }
    }

    /// Full paths of the children of `path` (empty if none or no node).
    fn child_paths(&self, path: &str) -> Vec<PathKey> {
        let bounds = child_range_bounds(path);
        self.nodes
            .range::<_, TreePath>(as_bounds(&bounds))
            .filter(|(key, _)| key.as_str() != "/")
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Number of all descendants of `path` (not counting itself), as
    /// getAllChildrenNumber; None if no such node.
    pub fn all_children_number(&self, path: &str) -> Option<i32> {
        self.get(path)?;
        if path == "/" {
            return Some(self.nodes.len().saturating_sub(1) as i32);
        }
        let mut count: i64 = 0;
        let mut pending = vec![PathKey(Arc::from(path))];
        while let Some(current) = pending.pop() {
            let kids = self.child_paths(current.as_str());
            count += kids.len() as i64;
            pending.extend(kids);
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
            .map(|set| set.iter().map(|key| key.as_str().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Every session that owns ephemerals, with their paths (for `dump`).
    pub fn ephemerals_by_session(&self) -> Vec<(i64, Vec<String>)> {
        self.ephemerals
            .iter()
            .map(|(session, set)| (*session, set.iter().map(|k| k.as_str().to_owned()).collect()))
            .collect()
    }

    /// Every (path, node), each parent before its children (the order a
    /// snapshot must be written in).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter().map(|(key, node)| (key.as_str(), &**node))
    }

    /// Containers and TTL nodes the reaper should delete now, at most
    /// `limit`: containers with no children that once had one (stored
    /// cversion > 0), or that never had one and are older (mtime) than
    /// `max_never_used_ms` when that is > 0; TTL nodes with no children
    /// whose mtime is more than ttl ms ago.
    pub fn reapable(&self, now_ms: i64, max_never_used_ms: i64, limit: usize) -> Vec<String> {
        let mut out = Vec::new();
        for key in self.containers.iter() {
            if out.len() >= limit {
                return out;
            }
            let Some(node) = self.nodes.get(key) else {
                continue;
            };
            if node.num_children != 0 {
                continue;
            }
            let used = node.cversion > 0;
            let stale = max_never_used_ms > 0 && now_ms.saturating_sub(node.mtime) > max_never_used_ms;
            if used || stale {
                out.push(key.as_str().to_owned());
            }
        }
        for key in self.ttls.iter() {
            if out.len() >= limit {
                return out;
            }
            let Some(node) = self.nodes.get(key) else {
                continue;
            };
            if let NodeKind::Ttl(ttl) = node.kind() {
                if node.num_children == 0 && now_ms.saturating_sub(node.mtime) > ttl {
                    out.push(key.as_str().to_owned());
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
        let mut node = Node::new(data, acl, stat);
        let key = PathKey(Arc::from(path));
        if let Some(old) = self.remove_node_entry(&key) {
            node.num_children = old.num_children;
        } else if !is_root {
            self.update_node(parent, |p| p.num_children += 1);
        }
        self.insert_node_entry(key, node);
        true
    }

    // ----- low-level mutation helpers, keeping the indexes in step -----

    fn insert_node_entry(&mut self, key: PathKey, mut node: Node) {
        self.data_size += (key.as_str().len() + node.data_len()) as u64;
        node.digest = digest::digest_of(key.as_str(), node.data.as_deref(), &node.stored_stat()) as u32;
        self.digest = self.digest.wrapping_add(node.digest());
        match node.kind() {
            NodeKind::Ephemeral(session) => {
                self.ephemerals.entry(session).or_default().insert(key.clone());
            }
            NodeKind::Container => {
                self.containers.insert(key.clone());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(key.clone());
            }
            NodeKind::Persistent => {}
        }
        self.nodes.insert(key, Arc::new(node));
    }

    fn remove_node_entry(&mut self, key: &PathKey) -> Option<Arc<Node>> {
        let node = self.nodes.remove(key)?;
        self.data_size = self.data_size.saturating_sub((key.as_str().len() + node.data_len()) as u64);
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

    /// Applies `f` to a copy of the node at `path` and stores the copy.
    /// Must not change the data (see `update_node_data`) or the
    /// ephemeralOwner (the indexes would go stale).
    fn update_node(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Arc<Node>> {
        let slot = self.nodes.get_mut(TreePath::new(path))?;
        let node = Arc::make_mut(slot);
        let before = node.stored_stat();
        let data_id = |n: &Node| n.data.as_ref().map(|d| (d.as_ptr(), d.len()));
        let data_before = cfg!(debug_assertions).then(|| data_id(node));
        f(node);
        debug_assert!(data_before.is_none_or(|before| before == data_id(node)), "update_node changed data");
        let old_digest = node.digest();
        let new_digest = digest::restat_digest(path, old_digest, &before, &node.stored_stat());
        node.digest = new_digest as u32;
        self.digest = self.digest.wrapping_sub(old_digest).wrapping_add(new_digest);
        Some(slot.clone())
    }

    /// Replaces the data of the node at `path` with (an owned copy of)
    /// `data`, then applies `f` as `update_node` does; keeps the data size
    /// and the digest (path and data re-hashed) in step.
    fn update_node_data(&mut self, path: &str, data: &Option<Bytes>, f: impl FnOnce(&mut Node)) -> Option<Arc<Node>> {
        let slot = self.nodes.get_mut(TreePath::new(path))?;
        let node = Arc::make_mut(slot);
        let old_len = node.data_len() as u64;
        node.data = owned_data(data);
        f(node);
        let old_digest = node.digest();
        let new_digest = digest::digest_of(path, node.data.as_deref(), &node.stored_stat());
        node.digest = new_digest as u32;
        let new_len = node.data_len() as u64;
        self.digest = self.digest.wrapping_sub(old_digest).wrapping_add(new_digest);
        self.data_size = self.data_size.saturating_sub(old_len) + new_len;
        Some(slot.clone())
    }
}
