//! Apache ZooKeeper's own on-disk and on-wire data formats, sans-IO, so that
//! zoocore can replicate with Apache servers (the SNAP stream, the tree
//! digest checked on every txn) and import/export an Apache data directory.
//!
//! * [`txn_log`]: `log.<hex zxid>` files (FileTxnLog): FileHeader "ZKLG",
//!   entries `{adler32 l, len i, payload, 'B'}`, zero-filled preallocation.
//! * [`snapshot`]: the serialized DataTree, as a `snapshot.<hex zxid>` file
//!   (FileHeader "ZKSN", Adler-32 seals, the 3.6+ digest and 3.9+
//!   lastProcessedZxid sections) and as the quorum SNAP stream body.
//! * [`digest`]: DigestCalculator's per-node CRC32 and the tree digest.
//!
//! This module owns only byte layouts: no files are opened here. Decoders
//! take byte slices, bound every length before allocating and never panic;
//! every error names the byte offset it was found at.

pub mod digest;
pub mod snapshot;
pub mod txn_log;

pub use digest::{node_digest, tree_digest, DIGEST_VERSION};
pub use snapshot::{
    decode_snap_stream, is_valid_snapshot, read_snapshot_file, snapshot_file_name, write_snap_stream,
    write_snapshot_file, ApacheSnapshot, SnapStreamDecoder, SnapshotCompression, SnapshotLayout, ZxidDigest,
};
pub use txn_log::{
    encode_txn_entry, log_file_name, padded_file_size, read_txn_log, TxnHeader, TxnLog, TxnLogEnd, TxnLogEntry,
    TxnLogReader, TxnLogWriter,
};

/// Version field of both file headers (FileTxnLog.VERSION, FileSnap.VERSION).
pub const FILE_FORMAT_VERSION: i32 = 2;
/// Encoded size of a [`FileHeader`].
pub const FILE_HEADER_BYTES: usize = 4 + 4 + 8;
/// Largest string or buffer field (path, znode data, txn payload) a decoder
/// accepts: well above jute.maxbuffer's default (1 MiB) for operators who
/// raised it, small enough that a corrupt length cannot exhaust memory.
pub const FIELD_MAX_BYTES: usize = 64 * 1024 * 1024;

/// `FileHeader{magic i, version i, dbid l}` (zookeeper.jute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub magic: i32,
    pub version: i32,
    pub dbid: i64,
}

impl FileHeader {
    pub fn encode(&self) -> [u8; FILE_HEADER_BYTES] {
        let mut out = [0u8; FILE_HEADER_BYTES];
        out[0..4].copy_from_slice(&self.magic.to_be_bytes());
        out[4..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..16].copy_from_slice(&self.dbid.to_be_bytes());
        out
    }

    /// Reads a header and checks its magic. Like Apache, the version and
    /// dbid are returned but not checked.
    pub fn decode(bytes: &[u8], expected_magic: i32) -> Result<FileHeader, ApacheFormatError> {
        let mut cursor = Cursor::new(bytes, 0);
        let header = FileHeader { magic: cursor.i32()?, version: cursor.i32()?, dbid: cursor.i64()? };
        if header.magic != expected_magic {
            return Err(ApacheFormatError::BadMagic { offset: 0, found: header.magic, expected: expected_magic });
        }
        Ok(header)
    }
}

/// Why Apache-format bytes could not be decoded. Every variant names the
/// byte offset (from the start of the file or stream) where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApacheFormatError {
    /// The input ends inside a field that starts at `offset`. For a stream
    /// decoder this only means "feed more bytes".
    Truncated { offset: u64, needed: usize, remaining: usize },
    /// A file header with the wrong magic number.
    BadMagic { offset: u64, found: i32, expected: i32 },
    /// A stored Adler-32 does not match the bytes it covers.
    ChecksumMismatch { offset: u64, stored: i64, computed: i64 },
    /// A length prefix above the decoder's limit (or negative).
    BadLength { offset: u64, len: i64, limit: usize },
    /// Anything else that is not what Apache writes.
    Malformed { offset: u64, what: String },
}

impl ApacheFormatError {
    pub fn offset(&self) -> u64 {
        match self {
            ApacheFormatError::Truncated { offset, .. }
            | ApacheFormatError::BadMagic { offset, .. }
            | ApacheFormatError::ChecksumMismatch { offset, .. }
            | ApacheFormatError::BadLength { offset, .. }
            | ApacheFormatError::Malformed { offset, .. } => *offset,
        }
    }

    pub(crate) fn malformed(offset: u64, what: impl Into<String>) -> ApacheFormatError {
        ApacheFormatError::Malformed { offset, what: what.into() }
    }
}

impl std::fmt::Display for ApacheFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApacheFormatError::Truncated { offset, needed, remaining } => {
                write!(f, "truncated at byte {offset}: needed {needed} bytes, {remaining} left")
            }
            ApacheFormatError::BadMagic { offset, found, expected } => {
                write!(f, "bad magic at byte {offset}: {found:#010x}, expected {expected:#010x}")
            }
            ApacheFormatError::ChecksumMismatch { offset, stored, computed } => {
                write!(f, "checksum mismatch at byte {offset}: stored {stored:#x}, computed {computed:#x}")
            }
            ApacheFormatError::BadLength { offset, len, limit } => {
                write!(f, "bad length {len} at byte {offset} (limit {limit})")
            }
            ApacheFormatError::Malformed { offset, what } => write!(f, "malformed at byte {offset}: {what}"),
        }
    }
}

impl std::error::Error for ApacheFormatError {}

/// The zxid in an Apache file name `<prefix>.<hex>[.<ext>]`, as
/// Util.getZxidFromName: `None` when the prefix differs or the hex does not
/// parse as a signed 64-bit number.
pub fn zxid_from_file_name(name: &str, prefix: &str) -> Option<i64> {
    let mut parts = name.split('.');
    if parts.next()? != prefix {
        return None;
    }
    i64::from_str_radix(parts.next()?, 16).ok()
}

/// The names among `names` that carry `prefix`, with their zxids, sorted by
/// zxid (ascending or newest first), as Util.sortDataDir. Names that do not
/// parse are left out.
pub fn sort_by_zxid<'a>(
    names: impl IntoIterator<Item = &'a str>,
    prefix: &str,
    ascending: bool,
) -> Vec<(i64, &'a str)> {
    let mut found: Vec<(i64, &str)> =
        names.into_iter().filter_map(|name| zxid_from_file_name(name, prefix).map(|zxid| (zxid, name))).collect();
    found.sort_by_key(|&(zxid, _)| zxid);
    if !ascending {
        found.reverse();
    }
    found
}

/// A bounds-checked big-endian jute cursor over a slice that starts at
/// absolute offset `base` of its file or stream.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor { bytes, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ApacheFormatError> {
        let remaining = self.remaining();
        if remaining < n {
            return Err(ApacheFormatError::Truncated { offset: self.offset(), needed: n, remaining });
        }
        let slice = self.bytes.get(self.pos..self.pos + n).unwrap_or_default();
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ApacheFormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ApacheFormatError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn i32(&mut self) -> Result<i32, ApacheFormatError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, ApacheFormatError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A jute buffer (`len i` + bytes, -1 = null) of at most `max` bytes.
    pub(crate) fn buffer(&mut self, max: usize) -> Result<Option<&'a [u8]>, ApacheFormatError> {
        let at = self.offset();
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > max {
            return Err(ApacheFormatError::BadLength { offset: at, len: len as i64, limit: max });
        }
        self.take(len as usize).map(Some)
    }

    /// A jute ustring that must not be null.
    pub(crate) fn string(&mut self, max: usize, what: &str) -> Result<&'a str, ApacheFormatError> {
        let at = self.offset();
        let Some(bytes) = self.buffer(max)? else {
            return Err(ApacheFormatError::malformed(at, format!("{what} is null")));
        };
        std::str::from_utf8(bytes).map_err(|_| ApacheFormatError::malformed(at, format!("{what} is not UTF-8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_and_sort_like_apache() {
        assert_eq!(zxid_from_file_name("log.100000001", "log"), Some(0x1_0000_0001));
        assert_eq!(zxid_from_file_name("snapshot.1a.gz", "snapshot"), Some(0x1a));
        assert_eq!(zxid_from_file_name("snapshot.0", "snapshot"), Some(0));
        assert_eq!(zxid_from_file_name("snapshot.0", "log"), None);
        assert_eq!(zxid_from_file_name("log.", "log"), None);
        assert_eq!(zxid_from_file_name("log.xyz", "log"), None);
        assert_eq!(zxid_from_file_name("log.ffffffffffffffff", "log"), None, "Long.parseLong overflows too");
        let names = ["log.10", "snapshot.5", "log.9", "log.100000000", "log.zzz", "acceptedEpoch"];
        assert_eq!(
            sort_by_zxid(names, "log", true),
            vec![(9, "log.9"), (0x10, "log.10"), (0x1_0000_0000, "log.100000000")]
        );
        assert_eq!(sort_by_zxid(names, "log", false)[0], (0x1_0000_0000, "log.100000000"));
    }

    #[test]
    fn header_round_trip_and_bad_magic() {
        let header = FileHeader { magic: 0x5A4B4C47, version: 2, dbid: 0 };
        let bytes = header.encode();
        assert_eq!(&bytes[..4], b"ZKLG");
        assert_eq!(FileHeader::decode(&bytes, 0x5A4B4C47), Ok(header));
        assert!(matches!(FileHeader::decode(&bytes, 0x5A4B534E), Err(ApacheFormatError::BadMagic { offset: 0, .. })));
        assert!(matches!(
            FileHeader::decode(&bytes[..10], 0x5A4B4C47),
            Err(ApacheFormatError::Truncated { offset: 8, .. })
        ));
    }
}
