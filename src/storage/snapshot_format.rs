//! The snapshot file: the session table and the whole tree as of
//! `last_zxid`, sealed with a crc32c. Sans-IO: written to any
//! `std::io::Write` (streamed through a buffer, never built in memory),
//! read from a byte slice.
//!
//! All integers big-endian; `str` = `len u32` + UTF-8 bytes.
//!
//! ```text
//! header   magic "ZCSN" u32 | version u32 | last_zxid i64 |
//!          session_count u32 | acl_list_count u32 | node_count u64
//! sessions session_count × { id i64 | timeout_ms i32 }
//! acls     acl_list_count × { entry_count u32 | entry_count × { perms i32 | scheme str | id str } }
//! nodes    node_count × { path str | data_len i32 (-1 = null) | data |
//!          acl_index u32 | czxid i64 | mzxid i64 | ctime i64 | mtime i64 |
//!          version i32 | cversion i32 | aversion i32 | ephemeral_owner i64 | pzxid i64 }
//!          in DataTree::iter order (parent before child)
//! trailer  body_len u64 (bytes before the trailer) | crc32c(every byte before the trailer) u32 |
//!          end magic "ZCSE" u32
//! ```
//!
//! ACL lists are stored once in a table and referenced by index, as
//! ZooKeeper's ACL cache does; `cversion` is the stored create counter and
//! `ephemeral_owner` the raw value (it also marks containers and TTL nodes),
//! so loading rebuilds the ephemeral/container/TTL indexes from it.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use crate::proto::{Acl, Id};
use crate::tree::{DataTree, LoadError, StoredStat, TreeLoader};

pub const SNAPSHOT_MAGIC: u32 = u32::from_be_bytes(*b"ZCSN");
pub const SNAPSHOT_END_MAGIC: u32 = u32::from_be_bytes(*b"ZCSE");
pub const SNAPSHOT_VERSION: u32 = 1;
pub const SNAPSHOT_HEADER_LEN: usize = 4 + 4 + 8 + 4 + 4 + 8;
pub const SNAPSHOT_TRAILER_LEN: usize = 8 + 4 + 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    /// The file is shorter than a header and trailer.
    TooShort { len: usize },
    /// The last 4 bytes are not the end marker: the file was cut short (or
    /// is not a snapshot).
    NoEndMarker { found: u32 },
    /// The trailer's length does not match the file's.
    LengthMismatch { recorded: u64, actual: u64 },
    /// The seal does not verify: some byte before `trailer_offset` changed.
    BadSeal { stored: u32, computed: u32, trailer_offset: u64 },
    /// Sealed but malformed (a writer bug): what, at which byte offset.
    Malformed { offset: u64, what: String },
    /// Sealed but the nodes do not form a tree.
    Tree { offset: u64, error: LoadError },
}

impl std::fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotError::TooShort { len } => write!(f, "snapshot too short ({len} bytes)"),
            SnapshotError::NoEndMarker { found } => {
                write!(f, "snapshot end marker missing (found {found:#010x}): truncated or not a snapshot")
            }
            SnapshotError::LengthMismatch { recorded, actual } => {
                write!(f, "snapshot trailer records {recorded} body bytes, file has {actual}")
            }
            SnapshotError::BadSeal { stored, computed, trailer_offset } => write!(
                f,
                "snapshot seal mismatch over bytes 0..{trailer_offset} (stored {stored:#010x}, computed {computed:#010x})"
            ),
            SnapshotError::Malformed { offset, what } => write!(f, "snapshot malformed at byte {offset}: {what}"),
            SnapshotError::Tree { offset, error } => write!(f, "snapshot tree invalid at byte {offset}: {error}"),
        }
    }
}

impl std::error::Error for SnapshotError {}

/// A loaded snapshot.
pub struct Snapshot {
    pub last_zxid: i64,
    /// (session id, timeout ms), in file order.
    pub sessions: Vec<(i64, i32)>,
    pub tree: DataTree,
}

/// Counts and checksums every byte on its way to the buffered writer.
struct SealingWriter<W: Write> {
    inner: BufWriter<W>,
    crc: u32,
    len: u64,
}

impl<W: Write> SealingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.len += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
    fn u32(&mut self, v: u32) -> io::Result<()> {
        self.put(&v.to_be_bytes())
    }
    fn i32(&mut self, v: i32) -> io::Result<()> {
        self.put(&v.to_be_bytes())
    }
    fn i64(&mut self, v: i64) -> io::Result<()> {
        self.put(&v.to_be_bytes())
    }
    fn str(&mut self, s: &str) -> io::Result<()> {
        self.u32(len_u32(s.len())?)?;
        self.put(s.as_bytes())
    }
}

fn len_u32(len: usize) -> io::Result<u32> {
    u32::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "field longer than 4 GiB"))
}

/// Writes a snapshot of `tree` and `sessions` as of `last_zxid`; returns
/// the number of bytes written. The caller fsyncs and renames.
pub fn write_snapshot<W: Write>(out: W, last_zxid: i64, sessions: &[(i64, i32)], tree: &DataTree) -> io::Result<u64> {
    // First pass: number the distinct ACL lists (by their shared storage;
    // equal lists in different allocations just get two entries).
    let mut acl_index: HashMap<*const Acl, u32> = HashMap::new();
    let mut acl_lists: Vec<&Arc<[Acl]>> = Vec::new();
    for (_, node) in tree.iter() {
        let acl = node.acl();
        acl_index.entry(acl.as_ptr()).or_insert_with(|| {
            acl_lists.push(acl);
            (acl_lists.len() - 1) as u32
        });
    }

    let mut w = SealingWriter { inner: BufWriter::with_capacity(256 * 1024, out), crc: 0, len: 0 };
    w.u32(SNAPSHOT_MAGIC)?;
    w.u32(SNAPSHOT_VERSION)?;
    w.i64(last_zxid)?;
    w.u32(len_u32(sessions.len())?)?;
    w.u32(len_u32(acl_lists.len())?)?;
    w.i64(tree.node_count() as i64)?;
    for &(id, timeout_ms) in sessions {
        w.i64(id)?;
        w.i32(timeout_ms)?;
    }
    for list in &acl_lists {
        w.u32(len_u32(list.len())?)?;
        for acl in list.iter() {
            w.i32(acl.perms)?;
            w.str(&acl.id.scheme)?;
            w.str(&acl.id.id)?;
        }
    }
    let mut written_nodes = 0u64;
    for (path, node) in tree.iter() {
        w.str(path)?;
        match node.data() {
            None => w.i32(-1)?,
            Some(data) => {
                w.i32(
                    i32::try_from(data.len())
                        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "znode data longer than 2 GiB"))?,
                )?;
                w.put(data)?;
            }
        }
        w.u32(acl_index[&node.acl().as_ptr()])?;
        let s = node.stored_stat();
        w.i64(s.czxid)?;
        w.i64(s.mzxid)?;
        w.i64(s.ctime)?;
        w.i64(s.mtime)?;
        w.i32(s.version)?;
        w.i32(s.cversion)?;
        w.i32(s.aversion)?;
        w.i64(s.ephemeral_owner)?;
        w.i64(s.pzxid)?;
        written_nodes += 1;
    }
    assert_eq!(written_nodes, tree.node_count() as u64, "tree iteration disagrees with its node count");

    let body_len = w.len;
    let crc = w.crc;
    let mut inner = w.inner;
    inner.write_all(&body_len.to_be_bytes())?;
    inner.write_all(&crc.to_be_bytes())?;
    inner.write_all(&SNAPSHOT_END_MAGIC.to_be_bytes())?;
    inner.flush()?;
    Ok(body_len + SNAPSHOT_TRAILER_LEN as u64)
}

/// A bounds-checked big-endian cursor over the sealed body.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn malformed(&self, what: impl Into<String>) -> SnapshotError {
        SnapshotError::Malformed { offset: self.pos as u64, what: what.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.bytes.len() - self.pos < n {
            return Err(self.malformed(format!("needs {n} bytes, {} left", self.bytes.len() - self.pos)));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        let len = self.u32()? as usize;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map_err(|_| SnapshotError::Malformed { offset: start as u64, what: "string is not UTF-8".into() })
    }
    /// A count of items each at least `min_item_len` bytes: bounded by what
    /// is left, so a bad count cannot force a huge allocation.
    fn count(&mut self, raw: u64, min_item_len: usize) -> Result<usize, SnapshotError> {
        let left = (self.bytes.len() - self.pos) as u64;
        if raw > left / min_item_len as u64 {
            return Err(self.malformed(format!("count {raw} exceeds the bytes left")));
        }
        Ok(raw as usize)
    }
}

/// Verifies the seal, then rebuilds the session table and the tree
/// (ephemeral, container and TTL indexes included, from each node's stored
/// ephemeralOwner).
pub fn read_snapshot(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    if bytes.len() < SNAPSHOT_HEADER_LEN + SNAPSHOT_TRAILER_LEN {
        return Err(SnapshotError::TooShort { len: bytes.len() });
    }
    let trailer_at = bytes.len() - SNAPSHOT_TRAILER_LEN;
    let trailer = &bytes[trailer_at..];
    let end = u32::from_be_bytes([trailer[12], trailer[13], trailer[14], trailer[15]]);
    if end != SNAPSHOT_END_MAGIC {
        return Err(SnapshotError::NoEndMarker { found: end });
    }
    let mut recorded = [0u8; 8];
    recorded.copy_from_slice(&trailer[..8]);
    let recorded = u64::from_be_bytes(recorded);
    if recorded != trailer_at as u64 {
        return Err(SnapshotError::LengthMismatch { recorded, actual: trailer_at as u64 });
    }
    let stored = u32::from_be_bytes([trailer[8], trailer[9], trailer[10], trailer[11]]);
    let body = &bytes[..trailer_at];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(SnapshotError::BadSeal { stored, computed, trailer_offset: trailer_at as u64 });
    }

    let mut c = Cursor { bytes: body, pos: 0 };
    let magic = c.u32()?;
    if magic != SNAPSHOT_MAGIC {
        return Err(SnapshotError::Malformed { offset: 0, what: format!("bad magic {magic:#010x}") });
    }
    let version = c.u32()?;
    if version != SNAPSHOT_VERSION {
        return Err(SnapshotError::Malformed { offset: 4, what: format!("unsupported version {version}") });
    }
    let last_zxid = c.i64()?;
    let session_count = c.u32()?;
    let acl_count = c.u32()?;
    let node_count = c.i64()?;
    let session_count = c.count(session_count as u64, 12)?;
    let mut sessions = Vec::with_capacity(session_count);
    for _ in 0..session_count {
        sessions.push((c.i64()?, c.i32()?));
    }

    let mut loader = TreeLoader::new();
    let acl_count = c.count(acl_count as u64, 4)?;
    let mut acls: Vec<crate::tree::InternedAcl> = Vec::with_capacity(acl_count);
    for _ in 0..acl_count {
        let raw = c.u32()?;
        let entries = c.count(raw as u64, 12)?;
        let mut list = Vec::with_capacity(entries);
        for _ in 0..entries {
            let perms = c.i32()?;
            let scheme = c.str()?.to_owned();
            let id = c.str()?.to_owned();
            list.push(Acl { perms, id: Id { scheme, id } });
        }
        acls.push(loader.intern_acl(&list));
    }

    if node_count < 0 {
        return Err(c.malformed(format!("node count {node_count}")));
    }
    // path len, data len, acl index, stat: 4 + 4 + 4 + 60.
    let node_count = c.count(node_count as u64, 72)?;
    loader.reserve(node_count);
    for _ in 0..node_count {
        let node_at = c.pos as u64;
        let path = c.str()?;
        let data_len = c.i32()?;
        let data = match data_len {
            -1 => None,
            n if n >= 0 => Some(c.take(n as usize)?),
            n => return Err(c.malformed(format!("data length {n}"))),
        };
        let index = c.u32()? as usize;
        let Some(acl) = acls.get(index) else {
            return Err(c.malformed(format!("acl index {index} of {}", acls.len())));
        };
        let stat = StoredStat {
            czxid: c.i64()?,
            mzxid: c.i64()?,
            ctime: c.i64()?,
            mtime: c.i64()?,
            version: c.i32()?,
            cversion: c.i32()?,
            aversion: c.i32()?,
            ephemeral_owner: c.i64()?,
            pzxid: c.i64()?,
        };
        loader
            .push_slice(path, data, acl.clone(), stat)
            .map_err(|error| SnapshotError::Tree { offset: node_at, error })?;
    }
    if c.pos != body.len() {
        return Err(c.malformed("bytes after the last node"));
    }
    let tree = loader.finish(last_zxid).map_err(|error| SnapshotError::Tree { offset: c.pos as u64, error })?;
    Ok(Snapshot { last_zxid, sessions, tree })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::AuthContext;
    use crate::proto::{op, open_acl_unsafe, perms, CreateMode, ErrorCode};
    use crate::tree::{TxnContext, WriteOp};
    use bytes::Bytes;

    struct AllowAll;

    impl AuthContext for AllowAll {
        fn allowed(&self, _acl: &[Acl], _perm: i32) -> bool {
            true
        }
        fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
            Ok(acl.to_vec())
        }
    }

    fn apply(tree: &mut DataTree, session_id: i64, op: WriteOp) {
        let zxid = tree.last_zxid() + 1;
        let ctx = TxnContext {
            session_id,
            cxid: 1,
            zxid,
            time_ms: 1_000 + zxid,
            auth: &AllowAll,
            extended_types_enabled: true,
            enforce_quota: false,
        };
        let result = tree.execute(&ctx, &op).result;
        assert!(result.is_ok(), "{op:?}: {result:?}");
        tree.set_last_zxid(zxid);
    }

    fn create(path: &str, data: Option<&[u8]>, acl: Vec<Acl>, mode: CreateMode, ttl: Option<i64>) -> WriteOp {
        let opcode = match (mode, ttl) {
            (_, Some(_)) => op::CREATE_TTL,
            (CreateMode::Container, _) => op::CREATE_CONTAINER,
            _ => op::CREATE2,
        };
        WriteOp::Create {
            path: path.into(),
            data: data.map(Bytes::copy_from_slice),
            acl,
            flags: mode as i32,
            ttl,
            op: opcode,
        }
    }

    /// Every node kind, two sessions' ephemerals, sequential names, null
    /// and empty data, several ACLs, a used container and setData/setACL.
    fn sample_tree() -> DataTree {
        let mut tree = DataTree::new();
        let read_only = vec![Acl { perms: perms::READ, id: Id::anyone() }];
        let two = vec![
            Acl { perms: perms::ALL, id: Id::new("digest", "alice:abc=") },
            Acl { perms: perms::READ, id: Id::new("ip", "10.0.0.0/8") },
        ];
        apply(&mut tree, 1, create("/app", Some(b"cfg"), open_acl_unsafe(), CreateMode::Persistent, None));
        apply(&mut tree, 1, create("/app/null", None, read_only.clone(), CreateMode::Persistent, None));
        apply(&mut tree, 1, create("/app/empty", Some(b""), two.clone(), CreateMode::Persistent, None));
        apply(&mut tree, 0x11, create("/app/e1", Some(b"x"), open_acl_unsafe(), CreateMode::Ephemeral, None));
        apply(&mut tree, 0x22, create("/app/e2", None, two.clone(), CreateMode::Ephemeral, None));
        apply(&mut tree, 0x22, create("/app/q-", Some(b"s"), open_acl_unsafe(), CreateMode::EphemeralSequential, None));
        apply(&mut tree, 1, create("/app/q-", Some(b"s"), open_acl_unsafe(), CreateMode::PersistentSequential, None));
        apply(&mut tree, 1, create("/c", None, open_acl_unsafe(), CreateMode::Container, None));
        apply(&mut tree, 1, create("/c/kid", None, open_acl_unsafe(), CreateMode::Persistent, None));
        apply(&mut tree, 1, WriteOp::Delete { path: "/c/kid".into(), version: -1 });
        apply(&mut tree, 1, create("/c2", None, open_acl_unsafe(), CreateMode::Container, None));
        apply(&mut tree, 1, create("/t", Some(b"ttl"), open_acl_unsafe(), CreateMode::PersistentWithTtl, Some(500)));
        apply(
            &mut tree,
            1,
            WriteOp::SetData { path: "/app".into(), data: Some(Bytes::from_static(b"v2")), version: 0 },
        );
        apply(&mut tree, 1, WriteOp::SetAcl { path: "/app/null".into(), acl: two, version: -1 });
        tree.set_last_zxid(tree.last_zxid() + 3);
        tree
    }

    fn assert_same_tree(a: &DataTree, b: &DataTree) {
        let left: Vec<_> = a.iter().collect();
        let right: Vec<_> = b.iter().collect();
        assert_eq!(left.len(), right.len());
        for ((pa, na), (pb, nb)) in left.iter().zip(&right) {
            assert_eq!(pa, pb);
            assert_eq!(na.data(), nb.data(), "{pa}");
            assert_eq!(na.acl(), nb.acl(), "{pa}");
            assert_eq!(na.stored_stat(), nb.stored_stat(), "{pa}");
            assert_eq!(na.stat(), nb.stat(), "{pa}");
        }
        assert_eq!(a.last_zxid(), b.last_zxid());
        assert_eq!(a.node_count(), b.node_count());
        assert_eq!(a.approximate_data_size(), b.approximate_data_size());
        assert_eq!(a.ephemerals_by_session(), b.ephemerals_by_session());
        for now in [0, 10_000] {
            assert_eq!(a.reapable(now, 1, 100), b.reapable(now, 1, 100));
        }
    }

    fn snapshot_bytes(tree: &DataTree, sessions: &[(i64, i32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let len = write_snapshot(&mut out, tree.last_zxid(), sessions, tree).unwrap();
        assert_eq!(len as usize, out.len());
        out
    }

    #[test]
    fn round_trip_every_node_kind() {
        let tree = sample_tree();
        let sessions = [(0x11, 30_000), (0x22, 4_000), (0x33, 10_000)];
        let bytes = snapshot_bytes(&tree, &sessions);
        let snap = read_snapshot(&bytes).unwrap();
        assert_eq!(snap.last_zxid, tree.last_zxid());
        assert_eq!(snap.sessions, sessions);
        assert_same_tree(&tree, &snap.tree);
        // Spot checks that the sample really has what it claims.
        let loaded = &snap.tree;
        assert_eq!(loaded.ephemerals_of(0x11), vec!["/app/e1"]);
        assert_eq!(loaded.ephemerals_of(0x22).len(), 2);
        assert_eq!(loaded.get("/app/null").unwrap().data(), None);
        assert_eq!(loaded.get("/app/empty").unwrap().data(), Some(&b""[..]));
        assert!(loaded.get("/app/q-0000000004").is_some() && loaded.get("/app/q-0000000005").is_some());
        assert_eq!(loaded.reapable(10_000, 0, 10), vec!["/c", "/t"]);
        // The loaded tree keeps working: a write, then the session closes.
        let mut loaded = snap.tree;
        apply(&mut loaded, 0x11, create("/app/more", None, open_acl_unsafe(), CreateMode::Persistent, None));
        apply(&mut loaded, 0x22, WriteOp::CloseSession);
        assert!(loaded.ephemerals_of(0x22).is_empty());
        assert_eq!(loaded.get("/app").unwrap().num_children(), 5);
    }

    #[test]
    fn fresh_tree_round_trip() {
        let tree = DataTree::new();
        let snap = read_snapshot(&snapshot_bytes(&tree, &[])).unwrap();
        assert_same_tree(&tree, &snap.tree);
        assert!(snap.sessions.is_empty());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = snapshot_bytes(&sample_tree(), &[(1, 2)]);
        for cut in 0..bytes.len() {
            assert!(read_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let bytes = snapshot_bytes(&sample_tree(), &[(1, 2)]);
        let trailer_at = bytes.len() - SNAPSHOT_TRAILER_LEN;
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << (at % 8);
            let err = read_snapshot(&bad).err().unwrap_or_else(|| panic!("flip at {at} not caught"));
            if at < trailer_at || (trailer_at + 8..trailer_at + 12).contains(&at) {
                assert!(matches!(err, SnapshotError::BadSeal { .. }), "flip at {at}: {err}");
            }
        }
    }

    #[test]
    fn sealed_but_malformed_is_reported_with_offset() {
        // A node whose parent is missing, sealed correctly.
        let tree = sample_tree();
        let mut bytes = snapshot_bytes(&tree, &[]);
        let needle = b"/app/e1";
        let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
        bytes[at + 1] = b'x'; // "/xpp/e1": parent "/xpp" was never loaded.
        let trailer_at = bytes.len() - SNAPSHOT_TRAILER_LEN;
        let crc = crc32c::crc32c(&bytes[..trailer_at]);
        bytes[trailer_at + 8..trailer_at + 12].copy_from_slice(&crc.to_be_bytes());
        match read_snapshot(&bytes) {
            Err(SnapshotError::Tree { offset, error: LoadError::OutOfOrder(_) | LoadError::MissingParent(_) }) => {
                assert_eq!(offset as usize, at - 4)
            }
            other => panic!("{:?}", other.err()),
        }
    }

    /// Load speed: a flat-ish tree of 50k nodes (1000 parents × 50
    /// children), 32-byte data, one shared ACL. Prints the per-node time.
    #[test]
    fn load_speed_50k_nodes() {
        let mut tree = DataTree::new();
        for p in 0..1000 {
            let parent = format!("/p{p:04}");
            tree.restore_node(&parent, Some(Bytes::from_static(&[7; 32])), &open_acl_unsafe(), StoredStat::default());
            for c in 0..49 {
                let child = format!("{parent}/c{c:03}");
                let stat = StoredStat {
                    czxid: 5,
                    mzxid: 6,
                    ephemeral_owner: if c == 0 { 0x77 } else { 0 },
                    ..StoredStat::default()
                };
                tree.restore_node(&child, Some(Bytes::from_static(&[7; 32])), &open_acl_unsafe(), stat);
            }
        }
        tree.set_last_zxid(99);
        let bytes = snapshot_bytes(&tree, &[(0x77, 30_000)]);
        let started = std::time::Instant::now();
        let snap = read_snapshot(&bytes).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(snap.tree.node_count(), tree.node_count());
        assert_eq!(snap.tree.ephemerals_of(0x77).len(), 1000);
        eprintln!(
            "snapshot load: {} nodes, {} bytes in {:?} = {:.0} ns/node",
            tree.node_count(),
            bytes.len(),
            elapsed,
            elapsed.as_nanos() as f64 / tree.node_count() as f64
        );
    }
}
