//! Apache's serialized DataTree, sans-IO: as a `snapshot.<hex>` file
//! (FileSnap) and as the body of the quorum SNAP stream (LearnerHandler).
//!
//! The tree body (SerializeUtils.serializeSnapshot), all jute:
//!
//! ```text
//! sessions   count i | count × {sessionId l, timeoutMs i}
//! ACL cache  count i | count × {aclRef l, vector<ACL{perms i, scheme s, id s}>}
//! nodes      pre-order DFS from the root, each {path s, data b, aclRef l,
//!            StatPersisted{czxid l, mzxid l, ctime l, mtime l, version i,
//!            cversion i, aversion i, ephemeralOwner l, pzxid l}}
//!            the root's path is "", every other path is absolute;
//!            /zookeeper, /zookeeper/quota and /zookeeper/config are written too
//! end        s "/"
//! ```
//!
//! aclRef -1 stands for OPEN_ACL_UNSAFE (world:anyone ALL) and is never in
//! the map; our writer uses it for every open list and numbers the other
//! distinct lists from 1.
//!
//! The file: `FileHeader{"ZKSN", 2, dbid -1}`, the body, then a seal
//! `{adler32 of every preceding byte l, s "/"}`. 3.6-3.8 add
//! `ZxidDigest{zxid l, digestVersion i, digest l}` + a seal (version < 2
//! stored the digest as a hex string); 3.9 adds `lastProcessedZxid l` + a
//! seal. Each seal's checksum is cumulative from byte 0 (Apache checksums
//! the whole stream, seals included). Older readers ignore what follows the
//! sections they know, so one reader takes 3.4-3.9 files.
//!
//! The SNAP stream: the body alone (no header, no seals, no digest), then
//! `s "BenWasHere"`. The QuorumPacket before it carries the zxid.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufWriter, Read, Write};

use bytes::{Bytes, BytesMut};

use super::digest::{node_digest, DIGEST_VERSION};
use super::{ApacheFormatError, Cursor, FileHeader, FIELD_MAX_BYTES, FILE_FORMAT_VERSION, FILE_HEADER_BYTES};
use crate::jute::Writer;
use crate::proto::{open_acl_unsafe, Acl, Id};
use crate::tree::{validate_path, DataTree, StoredStat};

/// "ZKSN".
pub const SNAPSHOT_MAGIC: i32 = 0x5A4B_534E;
/// The dbid Apache writes in a snapshot header.
pub const SNAPSHOT_DBID: i64 = -1;
/// File name prefix: `snapshot.<hex zxid>[.gz|.snappy]`.
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot";
/// The string that ends a SNAP stream.
pub const SNAP_SIGNATURE: &str = "BenWasHere";
/// aclRef of OPEN_ACL_UNSAFE.
pub const OPEN_ACL_REF: i64 = -1;
/// The path that ends the node list (and follows every seal checksum).
pub const END_OF_NODES: &str = "/";
/// Most entries accepted in one ACL list.
pub const ACL_LIST_MAX_ENTRIES: usize = 65_536;
/// Largest decompressed snapshot accepted by default.
pub const SNAPSHOT_DECOMPRESSED_MAX_BYTES: u64 = 16 * 1024 * 1024 * 1024;
/// snappy-java's stream header magic (SnappyCodec.MAGIC_HEADER).
pub const SNAPPY_JAVA_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// A seal: checksum l, then s "/".
const SEAL_BYTES: usize = 8 + 4 + 1;
/// A 3.9 lastProcessedZxid section: the zxid, then a seal.
const LAST_ZXID_SECTION_BYTES: usize = 8 + SEAL_BYTES;

/// `snapshot.<lower-case hex zxid>` (uncompressed).
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("{SNAPSHOT_FILE_PREFIX}.{zxid:x}")
}

/// Which trailing sections a snapshot file carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SnapshotLayout {
    /// 3.4 and 3.5: body and one seal.
    V34,
    /// 3.6 to 3.8: plus the ZxidDigest section.
    V36,
    /// 3.9 and later: plus the lastProcessedZxid section.
    V39,
}

/// The tree digest a snapshot ends with (DataTree.ZxidDigest). zxid 0
/// means "no digest" to Apache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// A decoded snapshot file.
pub struct ApacheSnapshot {
    pub header: FileHeader,
    /// session id -> timeout ms.
    pub sessions: BTreeMap<i64, i32>,
    /// Its last zxid is the one passed to [`read_snapshot_file`] (the file
    /// name's, as Apache uses).
    pub tree: DataTree,
    /// The 3.6+ digest section, if present.
    pub digest: Option<ZxidDigest>,
    /// The 3.9+ lastProcessedZxid section, if present.
    pub last_processed_zxid: Option<i64>,
}

// ---------------------------------------------------------------- writing

/// Counts and checksums (Adler-32, cumulative) every byte on its way out.
struct ChecksummedSink<W: Write> {
    out: BufWriter<W>,
    adler: adler2::Adler32,
    written: u64,
    scratch: BytesMut,
}

impl<W: Write> ChecksummedSink<W> {
    fn new(out: W) -> Self {
        ChecksummedSink {
            out: BufWriter::with_capacity(256 * 1024, out),
            adler: adler2::Adler32::new(),
            written: 0,
            scratch: BytesMut::with_capacity(4096),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.adler.write_slice(bytes);
        self.written += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Encodes with jute into the scratch buffer, then writes it.
    fn record(&mut self, encode: impl FnOnce(&mut Writer<'_>)) -> io::Result<()> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        encode(&mut Writer::new(&mut scratch));
        let result = self.put(&scratch);
        self.scratch = scratch;
        result
    }

    fn seal(&mut self) -> io::Result<()> {
        let checksum = self.adler.checksum() as i64;
        self.record(|w| {
            w.i64(checksum).string(END_OF_NODES);
        })
    }

    fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        Ok(self.written)
    }
}

fn too_long(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{what} longer than a jute length allows"))
}

fn is_open_acl(acl: &[Acl]) -> bool {
    acl == open_acl_unsafe().as_slice()
}

/// Writes the tree body; returns the tree digest of what it wrote.
fn write_body<W: Write>(
    sink: &mut ChecksummedSink<W>,
    tree: &DataTree,
    sessions: &BTreeMap<i64, i32>,
) -> io::Result<i64> {
    let session_count = i32::try_from(sessions.len()).map_err(|_| too_long("session table"))?;
    sink.record(|w| {
        w.i32(session_count);
    })?;
    for (&id, &timeout_ms) in sessions {
        sink.record(|w| {
            w.i64(id).i32(timeout_ms);
        })?;
    }

    // The ACL cache: every distinct non-open list, numbered from 1.
    let mut acl_refs: HashMap<&[Acl], i64> = HashMap::new();
    let mut acl_lists: Vec<&[Acl]> = Vec::new();
    for (_, node) in tree.iter() {
        let acl: &[Acl] = node.acl();
        if !is_open_acl(acl) && !acl_refs.contains_key(acl) {
            acl_lists.push(acl);
            acl_refs.insert(acl, acl_lists.len() as i64);
        }
    }
    let acl_count = i32::try_from(acl_lists.len()).map_err(|_| too_long("ACL cache"))?;
    sink.record(|w| {
        w.i32(acl_count);
    })?;
    for (index, list) in acl_lists.iter().enumerate() {
        sink.record(|w| {
            w.i64(index as i64 + 1);
            crate::proto::encode_acl_list(w, list);
        })?;
    }

    // Nodes, pre-order depth first, children in name order.
    let mut digest = 0i64;
    let mut pending = vec![String::from("/")];
    while let Some(path) = pending.pop() {
        let Some(node) = tree.get(&path) else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("child {path:?} vanished from the tree")));
        };
        let data = node.data();
        if data.is_some_and(|d| i32::try_from(d.len()).is_err()) {
            return Err(too_long("znode data"));
        }
        let acl: &[Acl] = node.acl();
        let acl_ref = if is_open_acl(acl) { OPEN_ACL_REF } else { acl_refs.get(acl).copied().unwrap_or(OPEN_ACL_REF) };
        let stat = node.stored_stat();
        let wire_path = if path == "/" { "" } else { path.as_str() };
        sink.record(|w| {
            w.string(wire_path).buffer(data).i64(acl_ref);
            w.i64(stat.czxid).i64(stat.mzxid).i64(stat.ctime).i64(stat.mtime);
            w.i32(stat.version).i32(stat.cversion).i32(stat.aversion);
            w.i64(stat.ephemeral_owner).i64(stat.pzxid);
        })?;
        digest = digest.wrapping_add(node_digest(&path, node));
        let children = tree.children(&path).unwrap_or_default();
        for name in children.iter().rev() {
            pending.push(format!("{wire_path}/{name}"));
        }
    }
    sink.record(|w| {
        w.string(END_OF_NODES);
    })?;
    Ok(digest)
}

/// Writes `tree` and `sessions` as an Apache snapshot file (uncompressed)
/// with the sections of `layout`; the digest section carries
/// `tree.last_zxid()`. Returns the bytes written. Name the file
/// [`snapshot_file_name`]`(tree.last_zxid())`.
pub fn write_snapshot_file<W: Write>(
    out: W,
    tree: &DataTree,
    sessions: &BTreeMap<i64, i32>,
    layout: SnapshotLayout,
) -> io::Result<u64> {
    let mut sink = ChecksummedSink::new(out);
    let header = FileHeader { magic: SNAPSHOT_MAGIC, version: FILE_FORMAT_VERSION, dbid: SNAPSHOT_DBID };
    sink.put(&header.encode())?;
    let digest = write_body(&mut sink, tree, sessions)?;
    sink.seal()?;
    if layout >= SnapshotLayout::V36 {
        sink.record(|w| {
            w.i64(tree.last_zxid()).i32(DIGEST_VERSION).i64(digest);
        })?;
        sink.seal()?;
    }
    if layout >= SnapshotLayout::V39 {
        sink.record(|w| {
            w.i64(tree.last_zxid());
        })?;
        sink.seal()?;
    }
    sink.finish()
}

/// Writes the SNAP stream that follows a SNAP QuorumPacket: the body, then
/// "BenWasHere". Returns the bytes written.
pub fn write_snap_stream<W: Write>(out: W, tree: &DataTree, sessions: &BTreeMap<i64, i32>) -> io::Result<u64> {
    let mut sink = ChecksummedSink::new(out);
    write_body(&mut sink, tree, sessions)?;
    sink.record(|w| {
        w.string(SNAP_SIGNATURE);
    })?;
    sink.finish()
}

// ---------------------------------------------------------------- reading

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    SessionCount,
    Sessions { left: u32 },
    AclCount,
    Acls { left: u32 },
    Nodes,
    Signature,
    Done,
}

/// Decodes a tree body incrementally: each call consumes only whole items
/// (a session, an ACL list, a node), so a caller can feed a socket's bytes
/// as they come and keep the unconsumed rest.
struct BodyDecoder {
    stage: Stage,
    /// Absolute offset of the next byte to decode.
    offset: u64,
    expect_signature: bool,
    sessions: BTreeMap<i64, i32>,
    acl_cache: HashMap<i64, Vec<Acl>>,
    open_acl: Vec<Acl>,
    tree: DataTree,
    root_seen: bool,
    max_field_bytes: usize,
    /// Why the last call stopped short, for a caller with no more input.
    short: Option<ApacheFormatError>,
}

impl BodyDecoder {
    fn new(offset: u64, expect_signature: bool) -> BodyDecoder {
        BodyDecoder {
            stage: Stage::SessionCount,
            offset,
            expect_signature,
            sessions: BTreeMap::new(),
            acl_cache: HashMap::new(),
            open_acl: open_acl_unsafe(),
            tree: DataTree::new(),
            root_seen: false,
            max_field_bytes: FIELD_MAX_BYTES,
            short: None,
        }
    }

    fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    fn decode(&mut self, input: &[u8]) -> Result<usize, ApacheFormatError> {
        let mut used = 0;
        while self.stage != Stage::Done {
            let mut c = Cursor::new(input.get(used..).unwrap_or_default(), self.offset);
            match self.step(&mut c) {
                Ok(()) => {
                    used += c.pos;
                    self.offset += c.pos as u64;
                    self.short = None;
                }
                Err(short @ ApacheFormatError::Truncated { .. }) => {
                    self.short = Some(short);
                    break;
                }
                Err(error) => return Err(error),
            }
        }
        Ok(used)
    }

    /// Not finished: the truncation that stopped it.
    fn unfinished(&self) -> ApacheFormatError {
        self.short.clone().unwrap_or(ApacheFormatError::Truncated { offset: self.offset, needed: 1, remaining: 0 })
    }

    fn count(c: &mut Cursor<'_>, what: &str) -> Result<u32, ApacheFormatError> {
        let at = c.offset();
        let n = c.i32()?;
        u32::try_from(n).map_err(|_| ApacheFormatError::malformed(at, format!("{what} count {n}")))
    }

    /// Parses one item; state changes only once the whole item was read.
    fn step(&mut self, c: &mut Cursor<'_>) -> Result<(), ApacheFormatError> {
        match self.stage {
            Stage::SessionCount => {
                let left = Self::count(c, "session")?;
                self.stage = if left == 0 { Stage::AclCount } else { Stage::Sessions { left } };
            }
            Stage::Sessions { left } => {
                let (id, timeout_ms) = (c.i64()?, c.i32()?);
                self.sessions.insert(id, timeout_ms);
                self.stage = if left == 1 { Stage::AclCount } else { Stage::Sessions { left: left - 1 } };
            }
            Stage::AclCount => {
                let left = Self::count(c, "ACL cache")?;
                self.stage = if left == 0 { Stage::Nodes } else { Stage::Acls { left } };
            }
            Stage::Acls { left } => {
                let acl_ref = c.i64()?;
                let at = c.offset();
                let entries = c.i32()?;
                if entries < 0 || entries as usize > ACL_LIST_MAX_ENTRIES {
                    return Err(ApacheFormatError::malformed(at, format!("ACL list of {entries} entries")));
                }
                // Each entry takes at least 12 bytes: bound the allocation.
                let mut list = Vec::with_capacity((entries as usize).min(c.remaining() / 12));
                for _ in 0..entries {
                    let perms = c.i32()?;
                    let scheme = c.string(self.max_field_bytes, "ACL scheme")?.to_owned();
                    let id = c.string(self.max_field_bytes, "ACL id")?.to_owned();
                    list.push(Acl { perms, id: Id { scheme, id } });
                }
                self.acl_cache.insert(acl_ref, list);
                self.stage = if left == 1 { Stage::Nodes } else { Stage::Acls { left: left - 1 } };
            }
            Stage::Nodes => self.node(c)?,
            Stage::Signature => {
                let at = c.offset();
                let signature = c.string(self.max_field_bytes, "signature")?;
                if signature != SNAP_SIGNATURE {
                    return Err(ApacheFormatError::malformed(at, format!("SNAP signature {signature:?}")));
                }
                self.stage = Stage::Done;
            }
            Stage::Done => {}
        }
        Ok(())
    }

    fn node(&mut self, c: &mut Cursor<'_>) -> Result<(), ApacheFormatError> {
        let node_at = c.offset();
        let path = c.string(self.max_field_bytes, "path")?;
        if path == END_OF_NODES {
            if !self.root_seen {
                return Err(ApacheFormatError::malformed(node_at, "node list ends without a root"));
            }
            self.stage = if self.expect_signature { Stage::Signature } else { Stage::Done };
            return Ok(());
        }
        let data = c.buffer(self.max_field_bytes)?;
        let acl_at = c.offset();
        let acl_ref = c.i64()?;
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
        // The whole node is read: now check and apply it.
        let acl = if acl_ref == OPEN_ACL_REF {
            &self.open_acl
        } else {
            self.acl_cache.get(&acl_ref).ok_or_else(|| {
                ApacheFormatError::malformed(acl_at, format!("aclRef {acl_ref} is not in the ACL cache"))
            })?
        };
        let data = data.map(Bytes::copy_from_slice);
        let tree_path = if path.is_empty() {
            if self.root_seen {
                return Err(ApacheFormatError::malformed(node_at, "a second root"));
            }
            self.root_seen = true;
            "/"
        } else {
            if !self.root_seen {
                return Err(ApacheFormatError::malformed(node_at, format!("{path:?} comes before the root")));
            }
            validate_path(path).map_err(|_| ApacheFormatError::malformed(node_at, format!("invalid path {path:?}")))?;
            path
        };
        if !self.tree.restore_node(tree_path, data, acl, stat) {
            return Err(ApacheFormatError::malformed(node_at, format!("parent of {path:?} not loaded before it")));
        }
        Ok(())
    }
}

/// Decodes the SNAP stream that follows a SNAP QuorumPacket. Feed bytes as
/// they arrive; each call consumes whole items only and returns how many
/// bytes it used (keep the rest and append more). Once
/// [`SnapStreamDecoder::is_done`], the bytes after "BenWasHere" belong to
/// the next packet.
pub struct SnapStreamDecoder {
    body: BodyDecoder,
}

impl Default for SnapStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapStreamDecoder {
    pub fn new() -> SnapStreamDecoder {
        SnapStreamDecoder { body: BodyDecoder::new(0, true) }
    }

    /// Lowers or raises the largest path/data/ACL field accepted (default
    /// [`FIELD_MAX_BYTES`]). A caller buffering a partial item holds at
    /// most about twice this.
    pub fn with_max_field_bytes(mut self, max: usize) -> SnapStreamDecoder {
        self.body.max_field_bytes = max;
        self
    }

    pub fn decode(&mut self, input: &[u8]) -> Result<usize, ApacheFormatError> {
        self.body.decode(input)
    }

    pub fn is_done(&self) -> bool {
        self.body.is_done()
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.body.offset
    }

    /// The tree (its last zxid set to `zxid`, the SNAP packet's) and the
    /// session table; an error if the stream did not reach its signature.
    pub fn finish(self, zxid: i64) -> Result<(DataTree, BTreeMap<i64, i32>), ApacheFormatError> {
        if !self.body.is_done() {
            return Err(self.body.unfinished());
        }
        let mut tree = self.body.tree;
        tree.set_last_zxid(zxid);
        tree.rebuild_quotas();
        Ok((tree, self.body.sessions))
    }
}

/// Decodes a whole SNAP stream held in memory: the tree, the sessions and
/// how many bytes it took.
pub fn decode_snap_stream(bytes: &[u8], zxid: i64) -> Result<(DataTree, BTreeMap<i64, i32>, usize), ApacheFormatError> {
    let mut decoder = SnapStreamDecoder::new();
    let used = decoder.decode(bytes)?;
    let (tree, sessions) = decoder.finish(zxid)?;
    Ok((tree, sessions, used))
}

/// Reads a seal at `c`: the stored checksum must equal `computed`, the
/// Adler-32 of every byte before it.
fn check_seal(c: &mut Cursor<'_>, computed: i64) -> Result<(), ApacheFormatError> {
    let at = c.offset();
    let stored = c.i64()?;
    if stored != computed {
        return Err(ApacheFormatError::ChecksumMismatch { offset: at, stored, computed });
    }
    let slash_at = c.offset();
    let slash = c.string(FIELD_MAX_BYTES, "seal path")?;
    if slash != END_OF_NODES {
        return Err(ApacheFormatError::malformed(slash_at, format!("seal ends with {slash:?}, not \"/\"")));
    }
    Ok(())
}

/// Reads an uncompressed snapshot file of any version 3.4-3.9 (see the
/// module doc), checking every seal. `file_zxid` is the zxid in its name,
/// which Apache takes as the tree's last zxid.
pub fn read_snapshot_file(bytes: &[u8], file_zxid: i64) -> Result<ApacheSnapshot, ApacheFormatError> {
    let header = FileHeader::decode(bytes, SNAPSHOT_MAGIC)?;
    let mut body = BodyDecoder::new(FILE_HEADER_BYTES as u64, false);
    let body_bytes = bytes.get(FILE_HEADER_BYTES..).unwrap_or_default();
    let used = body.decode(body_bytes)?;
    if !body.is_done() {
        return Err(body.unfinished());
    }
    let mut pos = FILE_HEADER_BYTES + used;
    let mut adler = adler2::Adler32::new();
    let mut checked = 0;
    // Checks the seal at `pos` against everything before it.
    let mut seal_at = |pos: &mut usize| -> Result<(), ApacheFormatError> {
        adler.write_slice(bytes.get(checked..*pos).unwrap_or_default());
        let mut c = Cursor::new(bytes.get(*pos..).unwrap_or_default(), *pos as u64);
        check_seal(&mut c, adler.checksum() as i64)?;
        checked = *pos;
        *pos += c.pos;
        Ok(())
    };
    seal_at(&mut pos)?;

    let mut digest = None;
    let mut last_processed_zxid = None;
    let remaining = bytes.len() - pos.min(bytes.len());
    // A 3.9 server with digests off writes only the lastProcessedZxid
    // section, whose length no digest section can have.
    if remaining != 0 && remaining != LAST_ZXID_SECTION_BYTES {
        let mut c = Cursor::new(bytes.get(pos..).unwrap_or_default(), pos as u64);
        let zxid = c.i64()?;
        let version = c.i32()?;
        let value = if version < 2 {
            let at = c.offset();
            let hex = c.string(FIELD_MAX_BYTES, "digest")?;
            u64::from_str_radix(hex, 16)
                .map_err(|_| ApacheFormatError::malformed(at, format!("digest {hex:?} is not hex")))? as i64
        } else {
            c.i64()?
        };
        digest = Some(ZxidDigest { zxid, version, digest: value });
        pos += c.pos;
        seal_at(&mut pos)?;
    }
    if pos < bytes.len() {
        let mut c = Cursor::new(bytes.get(pos..).unwrap_or_default(), pos as u64);
        last_processed_zxid = Some(c.i64()?);
        pos += c.pos;
        seal_at(&mut pos)?;
    }
    if pos != bytes.len() {
        return Err(ApacheFormatError::malformed(pos as u64, "bytes after the last section"));
    }
    let mut tree = body.tree;
    tree.set_last_zxid(file_zxid);
    tree.rebuild_quotas();
    Ok(ApacheSnapshot { header, sessions: body.sessions, tree, digest, last_processed_zxid })
}

/// How a snapshot file is compressed, chosen (as Apache does) by the file
/// name's last extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotCompression {
    None,
    Gzip,
    /// snappy-java's SnappyOutputStream framing.
    Snappy,
}

impl SnapshotCompression {
    pub fn from_file_name(name: &str) -> SnapshotCompression {
        match name.rsplit('.').next() {
            Some(ext) if name.contains('.') && ext.eq_ignore_ascii_case("gz") => SnapshotCompression::Gzip,
            Some(ext) if name.contains('.') && ext.eq_ignore_ascii_case("snappy") => SnapshotCompression::Snappy,
            _ => SnapshotCompression::None,
        }
    }

    /// The uncompressed file contents, at most `max_bytes` long.
    pub fn decompress(self, bytes: &[u8], max_bytes: u64) -> Result<Vec<u8>, ApacheFormatError> {
        match self {
            SnapshotCompression::None => Ok(bytes.to_vec()),
            SnapshotCompression::Gzip => {
                let mut out = Vec::new();
                flate2::read::MultiGzDecoder::new(bytes)
                    .take(max_bytes.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| ApacheFormatError::malformed(0, format!("gzip: {e}")))?;
                if out.len() as u64 > max_bytes {
                    return Err(ApacheFormatError::malformed(0, format!("decompresses past {max_bytes} bytes")));
                }
                Ok(out)
            }
            SnapshotCompression::Snappy => snappy_java_decompress(bytes, max_bytes),
        }
    }
}

/// The most bytes one byte of a raw snappy block can stand for: its densest
/// element is a 3-byte copy of 64 bytes. A block whose header claims more
/// than this times its own length is malformed; without the check a few
/// bytes could make the reader allocate (and zero) gigabytes before the
/// decoder finds the block short.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// snappy-java's stream: the 8-byte magic, version i, compatible version i,
/// then chunks `{compressed length i, raw snappy block}`.
fn snappy_java_decompress(bytes: &[u8], max_bytes: u64) -> Result<Vec<u8>, ApacheFormatError> {
    let mut c = Cursor::new(bytes, 0);
    if c.take(SNAPPY_JAVA_MAGIC.len())? != SNAPPY_JAVA_MAGIC {
        return Err(ApacheFormatError::malformed(0, "not a snappy-java stream"));
    }
    let (_version, _compatible) = (c.i32()?, c.i32()?);
    let mut out = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    while c.remaining() > 0 {
        let at = c.offset();
        let len = c.i32()?;
        if len < 0 || len as usize > FIELD_MAX_BYTES {
            return Err(ApacheFormatError::BadLength { offset: at, len: len as i64, limit: FIELD_MAX_BYTES });
        }
        let block = c.take(len as usize)?;
        let plain_len =
            snap::raw::decompress_len(block).map_err(|e| ApacheFormatError::malformed(at, format!("snappy: {e}")))?;
        if plain_len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
            return Err(ApacheFormatError::malformed(
                at,
                format!("snappy: a {}-byte block claims {plain_len} bytes, more than it can hold", block.len()),
            ));
        }
        if out.len() as u64 + plain_len as u64 > max_bytes {
            return Err(ApacheFormatError::malformed(at, format!("decompresses past {max_bytes} bytes")));
        }
        let start = out.len();
        out.resize(start + plain_len, 0);
        decoder
            .decompress(block, &mut out[start..])
            .map_err(|e| ApacheFormatError::malformed(at, format!("snappy: {e}")))?;
    }
    Ok(out)
}

/// SnapStream.isValidSnapshot: the name must carry a zxid; an uncompressed
/// file must be at least 10 bytes and end with `s "/"` (00 00 00 01 2F); a
/// compressed one must start with its format's magic.
pub fn is_valid_snapshot(file_name: &str, contents: &[u8]) -> bool {
    if super::zxid_from_file_name(file_name, SNAPSHOT_FILE_PREFIX).is_none() {
        return false;
    }
    match SnapshotCompression::from_file_name(file_name) {
        SnapshotCompression::Gzip => contents.starts_with(&GZIP_MAGIC),
        SnapshotCompression::Snappy => contents.starts_with(&SNAPPY_JAVA_MAGIC),
        SnapshotCompression::None => contents.len() >= 10 && contents.ends_with(&[0, 0, 0, 1, b'/']),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms;
    use crate::storage::apache::digest::tree_digest;
    use proptest::prelude::*;

    fn stat(zxid: i64, owner: i64) -> StoredStat {
        StoredStat {
            czxid: zxid,
            mzxid: zxid + 1,
            ctime: 1_700_000_000_000 + zxid,
            mtime: 1_700_000_000_500 + zxid,
            version: 2,
            cversion: 3,
            aversion: 1,
            ephemeral_owner: owner,
            pzxid: zxid + 2,
        }
    }

    fn sample() -> (DataTree, BTreeMap<i64, i32>) {
        let mut tree = DataTree::new();
        let open = open_acl_unsafe();
        let digest = vec![
            Acl { perms: perms::ALL, id: Id::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=") },
            Acl { perms: perms::READ, id: Id::new("ip", "127.0.0.1") },
        ];
        let read = vec![Acl { perms: perms::READ, id: Id::anyone() }];
        assert!(tree.restore_node("/a", Some(Bytes::from_static(b"x")), &open, stat(3, 0)));
        assert!(tree.restore_node("/a/null", None, &digest, stat(4, 0)));
        assert!(tree.restore_node("/a/empty", Some(Bytes::new()), &read, stat(5, 0)));
        assert!(tree.restore_node("/a/eph", Some(Bytes::from_static(&[0, 255, 7])), &open, stat(6, 0x1234)));
        assert!(tree.restore_node("/c", None, &digest, stat(7, i64::MIN)));
        assert!(tree.restore_node("/c/t", None, &open, stat(8, crate::proto::TTL_MASK | 5_000)));
        assert!(tree.restore_node("/b", Some(Bytes::from_static(b"bb")), &read, stat(9, 0)));
        tree.set_last_zxid(0x1_0000_0009);
        let sessions = BTreeMap::from([(0x1234, 30_000), (0x99, 4_000)]);
        (tree, sessions)
    }

    fn file_bytes(tree: &DataTree, sessions: &BTreeMap<i64, i32>, layout: SnapshotLayout) -> Vec<u8> {
        let mut out = Vec::new();
        let n = write_snapshot_file(&mut out, tree, sessions, layout).unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    fn assert_same(a: &DataTree, b: &DataTree) {
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
        assert_eq!(a.ephemerals_by_session(), b.ephemerals_by_session());
        assert_eq!(a.reapable(i64::MAX, 1, 100), b.reapable(i64::MAX, 1, 100));
    }

    #[test]
    fn layout_of_a_fresh_tree_by_hand() {
        // A fresh tree, no sessions, V34: header, counts, four nodes in DFS
        // order with the root as "", the end mark and one seal.
        let tree = DataTree::new();
        let bytes = file_bytes(&tree, &BTreeMap::new(), SnapshotLayout::V34);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"ZKSN");
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(&(-1i64).to_be_bytes());
        expected.extend_from_slice(&0i32.to_be_bytes()); // sessions
        expected.extend_from_slice(&1i32.to_be_bytes()); // one ACL list: READ for /zookeeper/config
        expected.extend_from_slice(&1i64.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&perms::READ.to_be_bytes());
        for s in ["world", "anyone"] {
            expected.extend_from_slice(&(s.len() as i32).to_be_bytes());
            expected.extend_from_slice(s.as_bytes());
        }
        for (path, acl_ref) in [("", -1i64), ("/zookeeper", -1), ("/zookeeper/config", 1), ("/zookeeper/quota", -1)] {
            expected.extend_from_slice(&(path.len() as i32).to_be_bytes());
            expected.extend_from_slice(path.as_bytes());
            expected.extend_from_slice(&0i32.to_be_bytes()); // empty data
            expected.extend_from_slice(&acl_ref.to_be_bytes());
            expected.extend_from_slice(&[0u8; 60]);
        }
        expected.extend_from_slice(&[0, 0, 0, 1, b'/']);
        let checksum = adler2::adler32_slice(&expected) as i64;
        expected.extend_from_slice(&checksum.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 1, b'/']);
        assert_eq!(bytes, expected);
        assert!(is_valid_snapshot("snapshot.0", &bytes));
    }

    #[test]
    fn every_layout_round_trips_with_its_sections() {
        let (tree, sessions) = sample();
        for layout in [SnapshotLayout::V34, SnapshotLayout::V36, SnapshotLayout::V39] {
            let bytes = file_bytes(&tree, &sessions, layout);
            let snap = read_snapshot_file(&bytes, tree.last_zxid()).unwrap();
            assert_eq!(snap.header, FileHeader { magic: SNAPSHOT_MAGIC, version: 2, dbid: -1 });
            assert_eq!(snap.sessions, sessions);
            assert_same(&tree, &snap.tree);
            let digest = ZxidDigest { zxid: tree.last_zxid(), version: 2, digest: tree_digest(&tree) };
            assert_eq!(snap.digest, (layout >= SnapshotLayout::V36).then_some(digest), "{layout:?}");
            assert_eq!(snap.last_processed_zxid, (layout >= SnapshotLayout::V39).then_some(tree.last_zxid()));
            assert!(is_valid_snapshot(&snapshot_file_name(tree.last_zxid()), &bytes));
        }
        assert_eq!(snapshot_file_name(0x1_0000_0009), "snapshot.100000009");
    }

    /// The node paths of a SNAP stream, in stream order.
    fn stream_paths(stream: &[u8]) -> Vec<String> {
        let mut c = Cursor::new(stream, 0);
        for _ in 0..c.i32().unwrap() {
            c.take(12).unwrap();
        }
        for _ in 0..c.i32().unwrap() {
            c.i64().unwrap();
            for _ in 0..c.i32().unwrap() {
                c.i32().unwrap();
                c.string(100, "").unwrap();
                c.string(100, "").unwrap();
            }
        }
        let mut paths = Vec::new();
        loop {
            let path = c.string(100, "").unwrap().to_owned();
            if path == "/" {
                return paths;
            }
            c.buffer(1000).unwrap();
            c.take(8 + 60).unwrap();
            paths.push(path);
        }
    }

    #[test]
    fn nodes_are_written_depth_first_with_the_root_as_empty() {
        let (tree, sessions) = sample();
        let mut out = Vec::new();
        write_snap_stream(&mut out, &tree, &sessions).unwrap();
        let expected = [
            "",
            "/a",
            "/a/empty",
            "/a/eph",
            "/a/null",
            "/b",
            "/c",
            "/c/t",
            "/zookeeper",
            "/zookeeper/config",
            "/zookeeper/quota",
        ];
        assert_eq!(stream_paths(&out), expected);
    }

    #[test]
    fn snap_stream_round_trip_in_pieces_and_signature() {
        let (tree, sessions) = sample();
        let mut out = Vec::new();
        write_snap_stream(&mut out, &tree, &sessions).unwrap();
        assert!(out.ends_with(b"\0\0\0\x0aBenWasHere"));
        // Whole, with the next packet's bytes behind it.
        let mut with_more = out.clone();
        with_more.extend_from_slice(b"next packet");
        let (loaded, loaded_sessions, used) = decode_snap_stream(&with_more, 77).unwrap();
        assert_eq!(used, out.len());
        assert_eq!(loaded.last_zxid(), 77);
        assert_eq!(loaded_sessions, sessions);
        assert_same(&tree, &loaded);
        // Fed in 7-byte pieces, keeping what was not consumed.
        let mut decoder = SnapStreamDecoder::new();
        let mut buffered = Vec::new();
        for piece in out.chunks(7) {
            buffered.extend_from_slice(piece);
            let used = decoder.decode(&buffered).unwrap();
            buffered.drain(..used);
        }
        assert!(decoder.is_done() && buffered.is_empty());
        assert_eq!(decoder.consumed(), out.len() as u64);
        assert_same(&tree, &decoder.finish(0).unwrap().0);
        // A wrong signature is an error naming its offset.
        let mut bad = out.clone();
        let at = bad.len() - 10;
        bad[at] = b'X';
        assert_eq!(decode_snap_stream(&bad, 0).err().map(|e| e.offset()), Some(at as u64 - 4));
    }

    #[test]
    fn every_truncation_and_flip_is_an_error_or_harmless() {
        let (tree, sessions) = sample();
        let bytes = file_bytes(&tree, &sessions, SnapshotLayout::V39);
        for cut in 0..bytes.len() {
            // A cut at a section boundary is a valid older layout.
            let older = read_snapshot_file(&bytes[..cut], 0);
            if let Ok(snap) = older {
                assert!(snap.last_processed_zxid.is_none(), "cut at {cut}");
            }
        }
        assert!(read_snapshot_file(&bytes[..bytes.len() - 1], 0).is_err());
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << (at % 8);
            // Must not panic; a flip before the first seal must be caught.
            let result = read_snapshot_file(&bad, 0);
            if at < bytes.len() - 2 * SEAL_BYTES - 20 - LAST_ZXID_SECTION_BYTES {
                assert!(result.is_err(), "flip at {at} not caught");
            }
        }
    }

    #[test]
    fn reads_the_3_9_digest_less_and_old_hex_digest_sections() {
        let (tree, sessions) = sample();
        let v34 = file_bytes(&tree, &sessions, SnapshotLayout::V34);
        // 3.9 with digests off: lastProcessedZxid + seal only.
        let mut v39_no_digest = v34.clone();
        v39_no_digest.extend_from_slice(&42i64.to_be_bytes());
        let checksum = adler2::adler32_slice(&v39_no_digest) as i64;
        v39_no_digest.extend_from_slice(&checksum.to_be_bytes());
        v39_no_digest.extend_from_slice(&[0, 0, 0, 1, b'/']);
        let snap = read_snapshot_file(&v39_no_digest, 1).unwrap();
        assert_eq!((snap.digest, snap.last_processed_zxid), (None, Some(42)));
        // Digest version 1: the digest as a hex string.
        let mut v1 = v34;
        v1.extend_from_slice(&5i64.to_be_bytes());
        v1.extend_from_slice(&1i32.to_be_bytes());
        v1.extend_from_slice(&3i32.to_be_bytes());
        v1.extend_from_slice(b"abc");
        let checksum = adler2::adler32_slice(&v1) as i64;
        v1.extend_from_slice(&checksum.to_be_bytes());
        v1.extend_from_slice(&[0, 0, 0, 1, b'/']);
        let snap = read_snapshot_file(&v1, 1).unwrap();
        assert_eq!(snap.digest, Some(ZxidDigest { zxid: 5, version: 1, digest: 0xabc }));
    }

    #[test]
    fn structural_errors_name_their_offset() {
        // A node whose aclRef is not in the cache.
        let (tree, sessions) = sample();
        let mut stream = Vec::new();
        write_snap_stream(&mut stream, &tree, &sessions).unwrap();
        let needle = b"\0\0\0\x02/b";
        let at = stream.windows(needle.len()).position(|w| w == needle).unwrap();
        let acl_at = at + 6 + 4 + 2;
        stream[acl_at..acl_at + 8].copy_from_slice(&99i64.to_be_bytes());
        match decode_snap_stream(&stream, 0) {
            Err(ApacheFormatError::Malformed { offset, what }) => {
                assert_eq!(offset, acl_at as u64);
                assert!(what.contains("aclRef 99"), "{what}");
            }
            other => panic!("{:?}", other.err()),
        }
        // A child before its parent.
        let mut stream = Vec::new();
        let mut w = BytesMut::new();
        {
            let mut jw = Writer::new(&mut w);
            jw.i32(0).i32(0);
            for path in ["", "/x/y"] {
                jw.string(path).buffer(None).i64(-1);
                for _ in 0..6 {
                    jw.i64(0);
                }
                jw.i32(0).i32(0).i32(0);
            }
        }
        stream.extend_from_slice(&w);
        assert!(matches!(decode_snap_stream(&stream, 0), Err(ApacheFormatError::Malformed { offset: 84, .. })));
    }

    #[test]
    fn compressed_files_and_quick_validity() {
        let (tree, sessions) = sample();
        let plain = file_bytes(&tree, &sessions, SnapshotLayout::V36);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        assert!(is_valid_snapshot("snapshot.1a.gz", &gz));
        assert!(!is_valid_snapshot("snapshot.1a.gz", &plain));
        let compression = SnapshotCompression::from_file_name("snapshot.1a.gz");
        assert_eq!(compression, SnapshotCompression::Gzip);
        assert_eq!(compression.decompress(&gz, 1 << 20).unwrap(), plain);
        assert!(compression.decompress(&gz, 100).is_err(), "the size bound holds");
        // snappy-java framing, two chunks.
        let mut snappy = SNAPPY_JAVA_MAGIC.to_vec();
        snappy.extend_from_slice(&1i32.to_be_bytes());
        snappy.extend_from_slice(&1i32.to_be_bytes());
        for chunk in plain.chunks(plain.len() / 2 + 1) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            snappy.extend_from_slice(&(block.len() as i32).to_be_bytes());
            snappy.extend_from_slice(&block);
        }
        assert!(is_valid_snapshot("snapshot.1a.snappy", &snappy));
        assert_eq!(
            SnapshotCompression::from_file_name("snapshot.1a.snappy").decompress(&snappy, 1 << 20).unwrap(),
            plain
        );
        // The densest block snappy makes (one byte repeated) stays inside
        // the expansion bound; a block claiming far more than its bytes can
        // hold is refused before anything is allocated for it.
        let zeros = vec![0u8; 1 << 20];
        let dense = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(zeros.len() <= dense.len() * SNAPPY_MAX_EXPANSION, "{} from {}", zeros.len(), dense.len());
        let framed = |block: &[u8]| {
            let mut s = SNAPPY_JAVA_MAGIC.to_vec();
            s.extend_from_slice(&1i32.to_be_bytes());
            s.extend_from_slice(&1i32.to_be_bytes());
            s.extend_from_slice(&(block.len() as i32).to_be_bytes());
            s.extend_from_slice(block);
            s
        };
        assert_eq!(SnapshotCompression::Snappy.decompress(&framed(&dense), 1 << 21).unwrap(), zeros);
        // A varint header of 0xFFFFFFFF (4 GiB) and one literal byte.
        let bomb = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00, b'x'];
        let err = SnapshotCompression::Snappy.decompress(&framed(&bomb), u64::MAX).unwrap_err().to_string();
        assert!(err.contains("more than it can hold"), "{err}");
        assert_eq!(SnapshotCompression::from_file_name("snapshot.1a"), SnapshotCompression::None);
        assert!(!is_valid_snapshot("snapshot.1a", &plain[..plain.len() - 1]));
        assert!(!is_valid_snapshot("snapshot.zz", &plain));
        assert!(!is_valid_snapshot("snapshot.1a", b"\0\0\0\x01/"));
    }

    fn path_name() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,6}"
    }

    fn acl_list() -> impl Strategy<Value = Vec<Acl>> {
        prop_oneof![
            Just(open_acl_unsafe()),
            Just(vec![Acl { perms: perms::READ, id: Id::anyone() }]),
            (1..=31i32, "[a-z]{1,8}")
                .prop_map(|(p, u)| vec![Acl { perms: p, id: Id::new("digest", &format!("{u}:x=")) }]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_trees_round_trip(
            nodes in proptest::collection::vec(
                (0usize..8, path_name(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                 acl_list(), any::<[i64; 6]>(), any::<[i32; 3]>(), 0u8..4),
                0..40),
            sessions in proptest::collection::btree_map(any::<i64>(), any::<i32>(), 0..5),
            layout in prop_oneof![Just(SnapshotLayout::V34), Just(SnapshotLayout::V36), Just(SnapshotLayout::V39)],
            zxid in any::<i64>(),
        ) {
            let mut tree = DataTree::new();
            let mut paths = vec![String::from("/")];
            for (parent, name, data, acl, longs, ints, kind) in nodes {
                let parent = paths[parent % paths.len()].clone();
                if tree.get(&parent).is_some_and(|n| matches!(n.kind(), crate::tree::NodeKind::Ephemeral(_))) {
                    continue;
                }
                let path = if parent == "/" { format!("/{name}") } else { format!("{parent}/{name}") };
                let owner = match kind { 0 => 0, 1 => longs[5] & 0x00FF_FFFF_FFFF_FFFF | 1, 2 => i64::MIN, _ => crate::proto::TTL_MASK | 1000 };
                let stat = StoredStat { czxid: longs[0], mzxid: longs[1], ctime: longs[2], mtime: longs[3],
                    version: ints[0], cversion: ints[1], aversion: ints[2], ephemeral_owner: owner, pzxid: longs[4] };
                tree.restore_node(&path, data.map(Bytes::from), &acl, stat);
                paths.push(path);
            }
            tree.set_last_zxid(zxid);
            let bytes = file_bytes(&tree, &sessions, layout);
            let snap = read_snapshot_file(&bytes, zxid).unwrap();
            prop_assert_eq!(&snap.sessions, &sessions);
            assert_same(&tree, &snap.tree);
            prop_assert_eq!(snap.tree.last_zxid(), zxid);
            if layout >= SnapshotLayout::V36 {
                prop_assert_eq!(snap.digest.map(|d| d.digest), Some(tree_digest(&tree)));
            }
            let mut stream = Vec::new();
            write_snap_stream(&mut stream, &tree, &sessions).unwrap();
            let (loaded, loaded_sessions, used) = decode_snap_stream(&stream, zxid).unwrap();
            prop_assert_eq!(used, stream.len());
            prop_assert_eq!(loaded_sessions, sessions);
            assert_same(&tree, &loaded);
        }

        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..600), magic in any::<bool>()) {
            if magic && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(b"ZKSN");
            }
            let _ = read_snapshot_file(&bytes, 0);
            let _ = decode_snap_stream(&bytes, 0);
            let _ = SnapshotCompression::Snappy.decompress(&bytes, 1 << 16);
            let _ = SnapshotCompression::Gzip.decompress(&bytes, 1 << 16);
        }

        #[test]
        fn mutated_snapshots_never_panic(at in any::<prop::sample::Index>(), value in any::<u8>(), cut in any::<prop::sample::Index>()) {
            let (tree, sessions) = sample();
            let mut bytes = file_bytes(&tree, &sessions, SnapshotLayout::V39);
            let i = at.index(bytes.len());
            bytes[i] = value;
            let cut = cut.index(bytes.len() + 1);
            let _ = read_snapshot_file(&bytes[..cut], 0);
            let _ = decode_snap_stream(bytes.get(16..cut).unwrap_or_default(), 0);
        }
    }
}
