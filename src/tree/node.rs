//! One znode as one heap allocation: a thin (8-byte) reference-counted
//! pointer to `[count | length | header | path | flags | packed stat | data]`
//! (`super::thin_arc::ThinArc`, 32-bit count and length). The tree's ordered set holds these pointers and
//! compares them by the path inside, so the path, the stat, a small value
//! and the node's cached digest share one allocation and one malloc header,
//! and a published version shares the node with every later version until
//! the node itself changes. See the `tree` module doc for the bytes per field.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use super::path::TreePath;
use super::thin_arc::ThinArc;
use super::{NodeKind, StoredStat};
use crate::proto::{Acl, Stat};

/// Values up to this many bytes are kept inside the node's allocation;
/// larger ones in a `Bytes` of their own, so that a change to a node's stat
/// alone (a child created under it, a setACL) copies at most this much data.
pub(crate) const INLINE_DATA_MAX_BYTES: usize = 512;

/// A value at least this long is kept as the request's own bytes instead
/// of copied when the leader executes it (`NewData::of`). Sound because a
/// request this large always has an allocation of its own: a client's
/// frame from `server::connection::LARGE_FRAME_MIN_BYTES` (the same figure)
/// is read into one, and a learner's forwarded body is copied out of the
/// link's buffer (`commit::forwarded`). Replayed and learner-applied txns
/// slice shared buffers (a whole log file, a link's reads) and are copied.
pub const KEPT_VALUE_MIN_BYTES: usize = 256 * 1024;

/// What a node refers to rather than holds: its ACL list and, only when
/// the value is longer than `INLINE_DATA_MAX_BYTES`, the value. Nodes with
/// an inline value share one of these per distinct ACL list (interned by
/// `AclCache`), so the pair costs each of them 8 bytes; a node with a large
/// value has one of its own.
#[derive(Debug)]
pub struct NodeShared {
    pub(crate) acl: Arc<[Acl]>,
    pub(crate) large_data: Option<Bytes>,
}

/// An interned ACL list, as `TreeLoader::intern_acl` hands it out.
pub type InternedAcl = Arc<NodeShared>;

/// The fixed part of a node's allocation (16 bytes).
struct Header {
    shared: Arc<NodeShared>,
    /// This node's digest (a CRC32; 0 under /zookeeper/).
    digest: u32,
    path_len: u32,
}

// Flag bits (u16, little-endian, right after the path). A field whose bit
// is clear has its common value and takes no byte: mzxid and pzxid equal to
// czxid, mtime equal to ctime, the counters and the owner 0, data present.
const HAS_MZXID: u16 = 1 << 0;
const HAS_PZXID: u16 = 1 << 1;
const HAS_MTIME: u16 = 1 << 2;
const HAS_VERSION: u16 = 1 << 3;
const HAS_CVERSION: u16 = 1 << 4;
const HAS_AVERSION: u16 = 1 << 5;
const HAS_OWNER: u16 = 1 << 6;
const HAS_CHILDREN: u16 = 1 << 7;
const DATA_NULL: u16 = 1 << 8;

/// Bytes between the path and the packed stat: flags (2) and the stat's length (1).
const CONTROL_BYTES: usize = 3;
/// Ten varints of at most ten bytes each.
const MAX_STAT_BYTES: usize = 100;
/// Stack room for building a node's bytes without a second allocation.
const STAGING_BYTES: usize = 1024;

/// The stat fields a node stores, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeStat {
    pub stat: StoredStat,
    pub num_children: i32,
}

/// A node's value as the tree is given it.
pub(crate) enum NewData<'a> {
    Null,
    /// Copied into the node (inline, or into a `Bytes` of its own when large).
    Copy(&'a [u8]),
    /// Kept as it is: a large value already owned by a node, or a large
    /// value from a request's own frame (`NewData::of`).
    Shared(Bytes),
}

impl<'a> NewData<'a> {
    /// `data` copied, or kept as it is when `keep_large` and it is large.
    pub(crate) fn of(data: &'a Option<Bytes>, keep_large: bool) -> NewData<'a> {
        match data {
            Some(d) if keep_large && d.len() >= KEPT_VALUE_MIN_BYTES => NewData::Shared(d.clone()),
            Some(d) => NewData::Copy(d),
            None => NewData::Null,
        }
    }
}

/// One znode. Immutable once shared: the tree replaces it on change, or
/// rewrites it only while it holds the sole reference
/// (`restat_in_place`, `replace_data_in_place`). Ordered (and
/// compared) by its path in the tree's (parent, name) order.
#[derive(Clone)]
pub struct Node(ThinArc<Header>);

impl Node {
    /// A node with `acl`'s ACL (an interned list from `AclCache`, or any
    /// node's shared part: only its ACL is taken).
    pub(crate) fn build(path: &str, data: NewData, acl: &Arc<NodeShared>, stat: &NodeStat, digest: u32) -> Node {
        let large = |data: Bytes| Arc::new(NodeShared { acl: acl.acl.clone(), large_data: Some(data) });
        let plain = || match acl.large_data {
            None => acl.clone(),
            // A large value replaced by a small one: a plain part of its own.
            Some(_) => Arc::new(NodeShared { acl: acl.acl.clone(), large_data: None }),
        };
        match data {
            NewData::Null => Node::assemble(path, DATA_NULL, stat, &[], plain(), digest),
            NewData::Copy(d) if d.len() <= INLINE_DATA_MAX_BYTES => Node::assemble(path, 0, stat, d, plain(), digest),
            NewData::Copy(d) => Node::assemble(path, 0, stat, &[], large(Bytes::copy_from_slice(d)), digest),
            NewData::Shared(d) if d.len() <= INLINE_DATA_MAX_BYTES => {
                Node::assemble(path, 0, stat, &d, plain(), digest)
            }
            NewData::Shared(d) => Node::assemble(path, 0, stat, &[], large(d), digest),
        }
    }

    fn assemble(
        path: &str,
        data_flags: u16,
        stat: &NodeStat,
        inline: &[u8],
        shared: Arc<NodeShared>,
        digest: u32,
    ) -> Node {
        let mut packed = [0u8; MAX_STAT_BYTES];
        let (flags, stat_len) = pack_stat(stat, &mut packed);
        let len = path.len() + CONTROL_BYTES + stat_len + inline.len();
        let fill = |bytes: &mut [u8]| {
            let (path_part, rest) = bytes.split_at_mut(path.len());
            path_part.copy_from_slice(path.as_bytes());
            let (control, rest) = rest.split_at_mut(CONTROL_BYTES);
            control[..2].copy_from_slice(&(flags | data_flags).to_le_bytes());
            control[2] = stat_len as u8;
            let (stat_part, data_part) = rest.split_at_mut(stat_len);
            stat_part.copy_from_slice(&packed[..stat_len]);
            data_part.copy_from_slice(inline);
        };
        let header = Header { shared, digest, path_len: path.len() as u32 };
        // Staged on the stack when it fits (every node with a path of up
        // to ~400 bytes), so a write makes one allocation, the node's.
        let mut stack = [0u8; STAGING_BYTES];
        if let Some(bytes) = stack.get_mut(..len) {
            fill(bytes);
            return Node(ThinArc::new(header, bytes));
        }
        let mut bytes = vec![0u8; len];
        fill(&mut bytes);
        Node(ThinArc::new(header, &bytes))
    }

    /// This node with its stat (and its ACL, when `acl` is given) and
    /// digest changed; the value is shared (a large one) or copied (inline).
    pub(crate) fn restat(&self, acl: Option<&Arc<NodeShared>>, stat: &NodeStat, digest: u32) -> Node {
        let shared = &self.header().shared;
        match acl {
            None => {
                let data_flags = self.flags() & DATA_NULL;
                Node::assemble(self.path(), data_flags, stat, self.stat_and_data().1, shared.clone(), digest)
            }
            Some(acl) => {
                let data = match (&shared.large_data, self.data()) {
                    (Some(large), _) => NewData::Shared(large.clone()),
                    (None, Some(inline)) => NewData::Copy(inline),
                    (None, None) => NewData::Null,
                };
                Node::build(self.path(), data, acl, stat, digest)
            }
        }
    }

    /// Rewrites this node's stat and digest in its own allocation when no
    /// other tree version, index or clone holds it (the only reference is
    /// the caller's, typically a set slot just copied by a write) and the
    /// packed stat keeps its length; the node then reads as `restat(None,
    /// stat, digest)` would have built it. False, changing nothing,
    /// otherwise. Saves the allocation, the copy of path and value and the
    /// free of the old node for the parent of a create or delete.
    pub(crate) fn restat_in_place(&mut self, stat: &NodeStat, digest: u32) -> bool {
        self.rewrite_in_place(None, stat, digest)
    }

    /// `restat_in_place` that also replaces an inline value by `data` of
    /// the same length (a setData of a same-sized value, as most are); the
    /// node then reads as `build` with the same ACL would have made it.
    /// False, changing nothing, for a null or large value too.
    pub(crate) fn replace_data_in_place(&mut self, data: &[u8], stat: &NodeStat, digest: u32) -> bool {
        let inline_now = self.header().shared.large_data.is_none() && self.flags() & DATA_NULL == 0;
        inline_now && self.stat_and_data().1.len() == data.len() && self.rewrite_in_place(Some(data), stat, digest)
    }

    /// `new_inline`: None keeps the value; Some must be as long as the
    /// inline value there is (checked by the caller).
    fn rewrite_in_place(&mut self, new_inline: Option<&[u8]>, stat: &NodeStat, digest: u32) -> bool {
        let mut packed = [0u8; MAX_STAT_BYTES];
        let (flags, stat_len) = pack_stat(stat, &mut packed);
        let at = self.header().path_len as usize;
        let Some((header, bytes)) = self.0.get_mut() else {
            return false;
        };
        let Some((control, rest)) = bytes.get_mut(at..).and_then(|b| b.split_at_mut_checked(CONTROL_BYTES)) else {
            return false;
        };
        if control[2] as usize != stat_len || rest.len() < stat_len {
            return false;
        }
        let (stat_part, data_part) = rest.split_at_mut(stat_len);
        if new_inline.is_some_and(|d| d.len() != data_part.len()) {
            return false;
        }
        let data_flags = u16::from_le_bytes([control[0], control[1]]) & DATA_NULL;
        control[..2].copy_from_slice(&(flags | data_flags).to_le_bytes());
        stat_part.copy_from_slice(&packed[..stat_len]);
        if let Some(d) = new_inline {
            data_part.copy_from_slice(d);
        }
        header.digest = digest;
        true
    }

    /// The shared part (ACL, large value), to build another node with this ACL.
    pub(crate) fn shared(&self) -> &Arc<NodeShared> {
        &self.header().shared
    }

    fn header(&self) -> &Header {
        self.0.header()
    }

    fn slice(&self) -> &[u8] {
        self.0.bytes()
    }

    pub fn path(&self) -> &str {
        let bytes = self.slice().get(..self.header().path_len as usize).unwrap_or_default();
        // SAFETY: the first path_len bytes were copied from a `&str` in
        // `build`, and nothing writes them after that (`restat_in_place`
        // writes only past them).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn flags(&self) -> u16 {
        let at = self.header().path_len as usize;
        match self.slice().get(at..at + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]),
            None => 0,
        }
    }

    /// (packed stat, inline data)
    fn stat_and_data(&self) -> (&[u8], &[u8]) {
        let at = self.header().path_len as usize + 2;
        let slice = self.slice();
        let stat_len = slice.get(at).copied().unwrap_or(0) as usize;
        let rest = slice.get(at + 1..).unwrap_or_default();
        rest.split_at(stat_len.min(rest.len()))
    }

    pub(crate) fn node_stat(&self) -> NodeStat {
        unpack_stat(self.flags(), self.stat_and_data().0)
    }

    /// The data; None if it was set as null.
    pub fn data(&self) -> Option<&[u8]> {
        if let Some(large) = &self.header().shared.large_data {
            return Some(large);
        }
        (self.flags() & DATA_NULL == 0).then(|| self.stat_and_data().1)
    }

    /// The data as a `Bytes` to send: a shared reference to a large value,
    /// a copy of an inline one.
    pub fn data_bytes(&self) -> Option<Bytes> {
        match &self.header().shared.large_data {
            Some(large) => Some(large.clone()),
            None => self.data().map(Bytes::copy_from_slice),
        }
    }

    pub fn data_len(&self) -> usize {
        self.data().map_or(0, <[u8]>::len)
    }

    pub fn acl(&self) -> &Arc<[Acl]> {
        &self.header().shared.acl
    }

    #[cfg(test)]
    pub(crate) fn digest_u32(&self) -> u32 {
        self.header().digest
    }

    /// This node's contribution to the tree digest (Apache's nodeDigest).
    pub fn digest(&self) -> i64 {
        self.header().digest as i64
    }

    pub fn kind(&self) -> NodeKind {
        if self.flags() & HAS_OWNER == 0 {
            return NodeKind::Persistent;
        }
        NodeKind::from_owner(self.stored_stat().ephemeral_owner)
    }

    pub fn num_children(&self) -> i32 {
        self.node_stat().num_children
    }

    pub fn version(&self) -> i32 {
        self.stored_stat().version
    }

    pub fn aversion(&self) -> i32 {
        self.stored_stat().aversion
    }

    /// The stored create counter (not the wire cversion).
    pub fn cversion(&self) -> i32 {
        self.stored_stat().cversion
    }

    pub fn mzxid(&self) -> i64 {
        self.stored_stat().mzxid
    }

    pub fn mtime(&self) -> i64 {
        self.stored_stat().mtime
    }

    pub fn pzxid(&self) -> i64 {
        self.stored_stat().pzxid
    }

    /// The fields a snapshot stores (raw ephemeralOwner, stored cversion).
    pub fn stored_stat(&self) -> StoredStat {
        self.node_stat().stat
    }

    /// The Stat as sent to clients: cversion = 2·stored − numChildren
    /// (creates + deletes), ephemeralOwner 0 for containers and TTL nodes.
    pub fn stat(&self) -> Stat {
        let NodeStat { stat: s, num_children } = self.node_stat();
        let ephemeral_owner = match NodeKind::from_owner(s.ephemeral_owner) {
            NodeKind::Ephemeral(session) => session,
            _ => 0,
        };
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner,
            data_length: self.data_len() as i32,
            num_children,
            pzxid: s.pzxid,
        }
    }

    /// Bytes of this node's own allocation (the malloc header and rounding
    /// not counted), for tests and the layout's cost per field.
    #[cfg(test)]
    pub(crate) fn allocation_bytes(&self) -> usize {
        self.0.allocation_bytes()
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("path", &self.path())
            .field("stat", &self.node_stat())
            .field("data_len", &self.data().map(<[u8]>::len))
            .field("acl", self.acl())
            .finish()
    }
}

impl Borrow<TreePath> for Node {
    fn borrow(&self) -> &TreePath {
        TreePath::new(self.path())
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.path() == other.path()
    }
}

impl Eq for Node {}

impl Ord for Node {
    fn cmp(&self, other: &Self) -> Ordering {
        TreePath::new(self.path()).cmp(TreePath::new(other.path()))
    }
}

impl PartialOrd for Node {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// ----- the packed stat: LEB128 varints of zigzagged values -----

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut [u8], at: &mut usize, v: i64) {
    let mut v = zigzag(v);
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if let Some(slot) = out.get_mut(*at) {
            *slot = if v == 0 { byte } else { byte | 0x80 };
        }
        *at += 1;
        if v == 0 {
            return;
        }
    }
}

/// Reads one varint at `*at`; a truncated one (which `build` never writes)
/// reads as what it has.
fn get_varint(bytes: &[u8], at: &mut usize) -> i64 {
    let mut v: u64 = 0;
    let mut shift = 0;
    while let Some(&byte) = bytes.get(*at) {
        *at += 1;
        if shift < 64 {
            v |= ((byte & 0x7f) as u64) << shift;
        }
        shift += 7;
        if byte & 0x80 == 0 {
            break;
        }
    }
    unzigzag(v)
}

/// Packs `stat` into `out`; returns (flags, bytes written).
fn pack_stat(n: &NodeStat, out: &mut [u8; MAX_STAT_BYTES]) -> (u16, usize) {
    let s = &n.stat;
    let mut at = 0;
    let mut flags = 0;
    put_varint(out, &mut at, s.czxid);
    put_varint(out, &mut at, s.ctime);
    let optional = [
        (HAS_MZXID, s.mzxid.wrapping_sub(s.czxid)),
        (HAS_PZXID, s.pzxid.wrapping_sub(s.czxid)),
        (HAS_MTIME, s.mtime.wrapping_sub(s.ctime)),
        (HAS_VERSION, s.version as i64),
        (HAS_CVERSION, s.cversion as i64),
        (HAS_AVERSION, s.aversion as i64),
        (HAS_OWNER, s.ephemeral_owner),
        (HAS_CHILDREN, n.num_children as i64),
    ];
    for (bit, value) in optional {
        if value != 0 {
            flags |= bit;
            put_varint(out, &mut at, value);
        }
    }
    (flags, at)
}

fn unpack_stat(flags: u16, bytes: &[u8]) -> NodeStat {
    let mut at = 0;
    let czxid = get_varint(bytes, &mut at);
    let ctime = get_varint(bytes, &mut at);
    let mut field = |bit: u16| if flags & bit != 0 { get_varint(bytes, &mut at) } else { 0 };
    let mzxid = czxid.wrapping_add(field(HAS_MZXID));
    let pzxid = czxid.wrapping_add(field(HAS_PZXID));
    let mtime = ctime.wrapping_add(field(HAS_MTIME));
    let version = field(HAS_VERSION) as i32;
    let cversion = field(HAS_CVERSION) as i32;
    let aversion = field(HAS_AVERSION) as i32;
    let ephemeral_owner = field(HAS_OWNER);
    let num_children = field(HAS_CHILDREN) as i32;
    NodeStat {
        stat: StoredStat { czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeral_owner, pzxid },
        num_children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::open_acl_unsafe;
    use proptest::prelude::*;

    fn any_stat() -> impl Strategy<Value = NodeStat> {
        let wide = prop_oneof![Just(0i64), Just(i64::MIN), Just(i64::MAX), any::<i64>(), 0i64..1_000_000];
        let narrow = prop_oneof![Just(0i32), Just(-1), Just(i32::MIN), Just(i32::MAX), any::<i32>()];
        (
            (wide.clone(), wide.clone(), wide.clone(), wide.clone(), wide.clone(), wide),
            (narrow.clone(), narrow.clone(), narrow.clone(), narrow),
        )
            .prop_map(
                |((czxid, mzxid, ctime, mtime, owner, pzxid), (version, cversion, aversion, children))| NodeStat {
                    stat: StoredStat {
                        czxid,
                        mzxid,
                        ctime,
                        mtime,
                        version,
                        cversion,
                        aversion,
                        ephemeral_owner: owner,
                        pzxid,
                    },
                    num_children: children,
                },
            )
    }

    proptest! {
        /// Every stat, path and value (null, empty, inline, large) reads
        /// back as it was built.
        #[test]
        fn node_round_trips(
            stat in any_stat(),
            other in any_stat(),
            path in "/[a-z0-9é]{0,12}(/[a-z0-9]{1,5}){0,3}",
            data in prop::option::of(prop::collection::vec(any::<u8>(), 0..1200)),
            digest in any::<u32>(),
        ) {
            let acl = Arc::new(NodeShared { acl: Arc::from(open_acl_unsafe()), large_data: None });
            let new_data = match &data { Some(d) => NewData::Copy(d), None => NewData::Null };
            let node = Node::build(&path, new_data, &acl, &stat, digest);
            prop_assert_eq!(node.path(), path.as_str());
            prop_assert_eq!(node.node_stat(), stat);
            prop_assert_eq!(node.data(), data.as_deref());
            let sent = node.data_bytes();
            prop_assert_eq!(sent.as_deref(), data.as_deref());
            prop_assert_eq!(node.digest_u32(), digest);
            prop_assert!(Arc::ptr_eq(node.acl(), &acl.acl));
            let mut moved = stat;
            moved.stat.mzxid = moved.stat.mzxid.wrapping_add(1);
            let read = Arc::new(NodeShared { acl: Arc::from(crate::proto::read_acl_unsafe()), large_data: None });
            for new_acl in [None, Some(&read)] {
                let restatted = node.restat(new_acl, &moved, digest ^ 1);
                prop_assert_eq!(restatted.node_stat(), moved);
                prop_assert_eq!(restatted.data(), data.as_deref());
                prop_assert_eq!(restatted.path(), path.as_str());
                prop_assert_eq!(restatted.digest_u32(), digest ^ 1);
                prop_assert!(Arc::ptr_eq(restatted.acl(), &new_acl.unwrap_or(&acl).acl));
            }
            // In place: only when unique and the packed stat keeps its
            // length, and then the same node `restat` builds.
            let mut one_more_child = stat;
            one_more_child.num_children = one_more_child.num_children.wrapping_add(1);
            for target in [other, moved, one_more_child] {
                let new_data = match &data { Some(d) => NewData::Copy(d), None => NewData::Null };
                let mut unique = Node::build(&path, new_data, &acl, &stat, digest);
                let held = unique.clone();
                prop_assert!(!unique.restat_in_place(&target, digest ^ 2));
                prop_assert_eq!(unique.node_stat(), stat);
                drop(held);
                let rebuilt = unique.restat(None, &target, digest ^ 2);
                let same_len = rebuilt.allocation_bytes() == unique.allocation_bytes();
                prop_assert_eq!(unique.restat_in_place(&target, digest ^ 2), same_len);
                let expected = if same_len { &rebuilt } else { &node };
                prop_assert_eq!(unique.0.bytes(), expected.0.bytes());
                prop_assert_eq!(unique.digest_u32(), expected.digest_u32());
                prop_assert_eq!(unique.node_stat(), expected.node_stat());
                prop_assert_eq!(unique.data(), data.as_deref());
                prop_assert_eq!(unique.path(), path.as_str());
                // A same-sized inline value too (null and large ones never).
                let replacement: Vec<u8> = data.iter().flatten().map(|b| b ^ 0x5a).collect();
                let new_data = match &data { Some(d) => NewData::Copy(d), None => NewData::Null };
                let mut unique = Node::build(&path, new_data, &acl, &stat, digest);
                let rebuilt = Node::build(&path, NewData::Copy(&replacement), &acl, &target, digest ^ 3);
                let inline = data.as_ref().is_some_and(|d| d.len() <= INLINE_DATA_MAX_BYTES);
                let same_len = inline && rebuilt.allocation_bytes() == unique.allocation_bytes();
                prop_assert_eq!(unique.replace_data_in_place(&replacement, &target, digest ^ 3), same_len);
                let expected = if same_len { &rebuilt } else { &node };
                prop_assert_eq!(unique.0.bytes(), expected.0.bytes());
                prop_assert_eq!(unique.digest_u32(), expected.digest_u32());
                prop_assert_eq!(unique.data(), expected.data());
                prop_assert!(Arc::ptr_eq(unique.shared(), expected.shared()) || !same_len);
            }
        }
    }

    #[test]
    fn a_fresh_leaf_is_small() {
        let stat = NodeStat {
            stat: StoredStat {
                czxid: 0x1_0000_0042,
                mzxid: 0x1_0000_0042,
                ctime: 1_764_650_000_000,
                mtime: 1_764_650_000_000,
                pzxid: 0x1_0000_0042,
                ..StoredStat::default()
            },
            num_children: 0,
        };
        let acl = Arc::new(NodeShared { acl: Arc::from(open_acl_unsafe()), large_data: None });
        let node = Node::build("/mem/123456", NewData::Copy(&[7; 100]), &acl, &stat, 9);
        // count 4 + length 4 + header 16, then the path (11), control bytes
        // (3), czxid (5) and ctime (6) varints, and the value (100).
        assert_eq!(std::mem::size_of::<Header>(), 16);
        assert_eq!(node.allocation_bytes(), 24 + 11 + 3 + 11 + 100);
        assert!(Arc::ptr_eq(node.shared(), &acl));
    }
}
