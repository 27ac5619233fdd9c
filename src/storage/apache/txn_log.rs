//! Apache's transaction log file (FileTxnLog), sans-IO.
//!
//! ```text
//! FileHeader  magic i "ZKLG" | version i = 2 | dbid l = 0        16 bytes
//! entry       checksum l | len i | payload (len bytes) | 0x42 'B'
//! ...         zeros to the preallocated end of the file
//! ```
//!
//! The checksum is Adler-32 over the payload only, stored zero-extended in
//! a long. The payload is `TxnHeader{clientId l, cxid i, zxid l, time l,
//! type i}` + the txn record + (3.6+) `TxnDigest{version i, treeDigest l}`;
//! this module reads only the header and hands the payload on untouched.
//!
//! Reading ends, as in Apache, at EOF, at a zero length (the preallocated
//! tail) or at a missing 'B' (a partly written last entry); a checksum that
//! does not match its payload is an error. A file is named `log.<hex>` after
//! the zxid of its first entry.

use bytes::{BufMut, Bytes, BytesMut};

use super::{ApacheFormatError, Cursor, FileHeader, FIELD_MAX_BYTES, FILE_FORMAT_VERSION, FILE_HEADER_BYTES};

/// "ZKLG".
pub const TXN_LOG_MAGIC: i32 = 0x5A4B_4C47;
/// The dbid Apache writes in a log header.
pub const TXN_LOG_DBID: i64 = 0;
/// File name prefix: `log.<hex zxid>`.
pub const LOG_FILE_PREFIX: &str = "log";
/// The byte after every entry's payload.
pub const END_OF_ENTRY: u8 = b'B';
/// Apache's default preallocation step (`preAllocSize`, 65536 KB).
pub const DEFAULT_PREALLOC_BYTES: u64 = 64 * 1024 * 1024;
/// Apache extends the file when the write position comes this close to
/// its known end.
pub const PREALLOC_MARGIN_BYTES: u64 = 4096;

/// `log.<lower-case hex zxid>`, as Util.makeLogName (negative zxids print in
/// two's complement like Long.toHexString).
pub fn log_file_name(first_zxid: i64) -> String {
    format!("{LOG_FILE_PREFIX}.{first_zxid:x}")
}

/// The header of every logged txn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    /// The session that issued the txn.
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    /// Leader's clock, ms.
    pub time_ms: i64,
    /// The opcode (1 create, 2 delete, -10 createSession, 14 multi, ...).
    pub txn_type: i32,
}

impl TxnHeader {
    pub const ENCODED_BYTES: usize = 8 + 4 + 8 + 8 + 4;
    /// Where the zxid sits in a payload.
    pub const ZXID_OFFSET: usize = 12;

    /// Decodes the header at the start of a payload that starts at absolute
    /// offset `base` (used in errors).
    pub fn decode(payload: &[u8], base: u64) -> Result<TxnHeader, ApacheFormatError> {
        let mut c = Cursor::new(payload, base);
        Ok(TxnHeader { client_id: c.i64()?, cxid: c.i32()?, zxid: c.i64()?, time_ms: c.i64()?, txn_type: c.i32()? })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_i64(self.client_id);
        out.put_i32(self.cxid);
        out.put_i64(self.zxid);
        out.put_i64(self.time_ms);
        out.put_i32(self.txn_type);
    }
}

/// One entry of a log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogEntry {
    /// Byte offset of the entry's checksum in the file.
    pub offset: u64,
    pub header: TxnHeader,
    /// The whole payload (header included), a zero-copy slice of the file.
    pub payload: Bytes,
}

impl TxnLogEntry {
    pub fn zxid(&self) -> i64 {
        self.header.zxid
    }
}

/// Why reading stopped without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnLogEnd {
    /// The file ended exactly after the last entry.
    Eof { offset: u64 },
    /// A zero length: the preallocated zero tail starts here.
    ZeroLength { offset: u64 },
    /// An entry starting here is cut short or lacks its 'B': it was being
    /// written when the server stopped. Apache ignores it.
    PartialEntry { offset: u64 },
}

impl TxnLogEnd {
    /// Where the valid part of the file ends.
    pub fn offset(&self) -> u64 {
        match *self {
            TxnLogEnd::Eof { offset } | TxnLogEnd::ZeroLength { offset } | TxnLogEnd::PartialEntry { offset } => offset,
        }
    }
}

/// Reads the entries of one log file held in memory.
pub struct TxnLogReader {
    file: Bytes,
    header: FileHeader,
    pos: usize,
    end: Option<TxnLogEnd>,
    max_entry_bytes: usize,
}

impl TxnLogReader {
    /// Checks the file header (magic only, as Apache does).
    pub fn new(file: Bytes) -> Result<TxnLogReader, ApacheFormatError> {
        let header = FileHeader::decode(&file, TXN_LOG_MAGIC)?;
        Ok(TxnLogReader { file, header, pos: FILE_HEADER_BYTES, end: None, max_entry_bytes: FIELD_MAX_BYTES })
    }

    /// Lowers or raises the largest payload accepted (default
    /// [`FIELD_MAX_BYTES`]); a longer length is an error, not a tail.
    pub fn with_max_entry_bytes(mut self, max: usize) -> TxnLogReader {
        self.max_entry_bytes = max;
        self
    }

    pub fn header(&self) -> FileHeader {
        self.header
    }

    /// Why reading stopped, once `next_entry` has returned `Ok(None)`.
    pub fn end(&self) -> Option<TxnLogEnd> {
        self.end
    }

    /// The next entry; `Ok(None)` at the end (see [`TxnLogReader::end`]).
    pub fn next_entry(&mut self) -> Result<Option<TxnLogEntry>, ApacheFormatError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let at = self.pos;
        let rest = self.file.get(at..).unwrap_or_default();
        let mut c = Cursor::new(rest, at as u64);
        let at64 = at as u64;
        if rest.is_empty() {
            return self.stop(TxnLogEnd::Eof { offset: at64 });
        }
        let (Ok(stored), Ok(len)) = (c.i64(), c.i32()) else {
            return self.stop(TxnLogEnd::PartialEntry { offset: at64 });
        };
        if len == 0 {
            return self.stop(TxnLogEnd::ZeroLength { offset: at64 });
        }
        if len < 0 || len as usize > self.max_entry_bytes {
            // Apache refuses such a length too (jute checkLength), rather
            // than reading it as the end.
            return Err(ApacheFormatError::BadLength {
                offset: at64 + 8,
                len: len as i64,
                limit: self.max_entry_bytes,
            });
        }
        let payload_at = at + 12;
        let Ok(payload) = c.take(len as usize) else {
            return self.stop(TxnLogEnd::PartialEntry { offset: at64 });
        };
        if c.u8() != Ok(END_OF_ENTRY) {
            return self.stop(TxnLogEnd::PartialEntry { offset: at64 });
        }
        let computed = adler32(payload);
        if stored != computed {
            return Err(ApacheFormatError::ChecksumMismatch { offset: at64, stored, computed });
        }
        let header = TxnHeader::decode(payload, payload_at as u64).map_err(|_| {
            ApacheFormatError::malformed(
                payload_at as u64,
                format!("payload of {len} bytes is shorter than a TxnHeader"),
            )
        })?;
        let payload = self.file.slice(payload_at..payload_at + len as usize);
        self.pos = at + c.pos;
        Ok(Some(TxnLogEntry { offset: at64, header, payload }))
    }

    fn stop(&mut self, end: TxnLogEnd) -> Result<Option<TxnLogEntry>, ApacheFormatError> {
        self.end = Some(end);
        Ok(None)
    }
}

/// A whole log file, decoded.
#[derive(Debug, Clone)]
pub struct TxnLog {
    pub header: FileHeader,
    pub entries: Vec<TxnLogEntry>,
    pub end: TxnLogEnd,
}

/// Reads every entry of one log file.
pub fn read_txn_log(file: Bytes) -> Result<TxnLog, ApacheFormatError> {
    let mut reader = TxnLogReader::new(file)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        entries.push(entry);
    }
    let end = reader.end().unwrap_or(TxnLogEnd::Eof { offset: reader.pos as u64 });
    Ok(TxnLog { header: reader.header(), entries, end })
}

/// Apache's checksum value: Adler-32 zero-extended to a long.
pub(crate) fn adler32(bytes: &[u8]) -> i64 {
    adler2::adler32_slice(bytes) as i64
}

/// Appends one entry `{adler32, len, payload, 'B'}`.
pub fn encode_txn_entry(payload: &[u8], out: &mut BytesMut) -> Result<(), ApacheFormatError> {
    let len = i32::try_from(payload.len()).ok().filter(|&len| len > 0).ok_or(ApacheFormatError::BadLength {
        offset: 0,
        len: payload.len() as i64,
        limit: i32::MAX as usize,
    })?;
    out.reserve(payload.len() + 13);
    out.put_i64(adler32(payload));
    out.put_i32(len);
    out.put_slice(payload);
    out.put_u8(END_OF_ENTRY);
    Ok(())
}

/// FilePadding.calculateFileSizeWithPadding: the file size after an append
/// at `position` to a file preallocated to `file_size`.
pub fn padded_file_size(position: u64, file_size: u64, prealloc_bytes: u64) -> u64 {
    if prealloc_bytes == 0 || position + PREALLOC_MARGIN_BYTES < file_size {
        return file_size;
    }
    if position > file_size {
        let grown = position + prealloc_bytes;
        grown - grown % prealloc_bytes
    } else {
        file_size + prealloc_bytes
    }
}

/// Produces a log file's bytes as FileTxnLog does: the header, then each
/// entry, while tracking the preallocated length Apache would give the
/// file. The caller writes the bytes at [`TxnLogWriter::position`] and keeps
/// the file [`TxnLogWriter::file_len`] long (zero-filled or sparse).
///
/// Apache pads using the position of its last flush, so a batch of several
/// entries between flushes can grow the file at a slightly different entry;
/// this writer behaves as if every entry were flushed on its own, which is
/// what one synchronous client produces.
#[derive(Debug, Clone)]
pub struct TxnLogWriter {
    position: u64,
    /// FilePadding's currentSize: the size last preallocated, which a big
    /// entry can overrun without changing it.
    preallocated: u64,
    prealloc_bytes: u64,
}

impl TxnLogWriter {
    /// `prealloc_bytes` = 0 turns preallocation off.
    pub fn new(prealloc_bytes: u64) -> TxnLogWriter {
        TxnLogWriter { position: 0, preallocated: 0, prealloc_bytes }
    }

    /// Appends the file header; call once, first.
    pub fn start(&mut self, out: &mut BytesMut) {
        let header = FileHeader { magic: TXN_LOG_MAGIC, version: FILE_FORMAT_VERSION, dbid: TXN_LOG_DBID };
        out.put_slice(&header.encode());
        self.position += FILE_HEADER_BYTES as u64;
        self.preallocated = self.position;
    }

    /// Appends one entry for `payload` (pre-padding first, as Apache).
    pub fn append(&mut self, payload: &[u8], out: &mut BytesMut) -> Result<(), ApacheFormatError> {
        self.preallocated = padded_file_size(self.position, self.preallocated, self.prealloc_bytes);
        let before = out.len();
        encode_txn_entry(payload, out)?;
        self.position += (out.len() - before) as u64;
        Ok(())
    }

    /// Bytes of header and entries written so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The length Apache's file would have: header and entries, then zeros.
    pub fn file_len(&self) -> u64 {
        self.preallocated.max(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(zxid: i64, body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        TxnHeader { client_id: 0x77, cxid: 3, zxid, time_ms: 1_700_000_000_000, txn_type: 1 }.encode(&mut out);
        out.put_slice(body);
        out.to_vec()
    }

    fn file_of(payloads: &[Vec<u8>], prealloc: u64) -> Vec<u8> {
        let mut writer = TxnLogWriter::new(prealloc);
        let mut out = BytesMut::new();
        writer.start(&mut out);
        for p in payloads {
            writer.append(p, &mut out).unwrap();
        }
        let mut file = out.to_vec();
        file.resize(writer.file_len() as usize, 0);
        file
    }

    #[test]
    fn entry_layout_matches_apache() {
        let p = payload(5, b"xyz");
        let mut out = BytesMut::new();
        encode_txn_entry(&p, &mut out).unwrap();
        // Adler-32 of the payload only, zero-extended.
        assert_eq!(&out[..4], &[0, 0, 0, 0]);
        assert_eq!(i64::from_be_bytes(out[..8].try_into().unwrap()), adler2::adler32_slice(&p) as i64);
        assert_eq!(i32::from_be_bytes(out[8..12].try_into().unwrap()), p.len() as i32);
        assert_eq!(&out[12..12 + p.len()], &p[..]);
        assert_eq!(out[out.len() - 1], b'B');
        assert_eq!(TxnHeader::decode(&p, 0).unwrap().zxid, 5);
        assert_eq!(i64::from_be_bytes(p[12..20].try_into().unwrap()), 5, "zxid at payload offset 12");
        // Known Adler-32 vector.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(log_file_name(0x1_0000_0001), "log.100000001");
        assert_eq!(log_file_name(0), "log.0");
    }

    #[test]
    fn padding_follows_file_padding() {
        // First append right after the header: grow by one block.
        assert_eq!(padded_file_size(16, 16, 65536), 16 + 65536);
        // Far from the end: unchanged.
        assert_eq!(padded_file_size(1000, 16 + 65536, 65536), 16 + 65536);
        // Within 4096 bytes of the end: one more block.
        assert_eq!(padded_file_size(16 + 65536 - 4096, 16 + 65536, 65536), 16 + 2 * 65536);
        // Already past the end: position + block, rounded down to a block.
        assert_eq!(padded_file_size(200_000, 16 + 65536, 65536), 262_144);
        assert_eq!(padded_file_size(5, 0, 0), 0);
    }

    #[test]
    fn an_entry_past_the_preallocated_end_grows_from_its_position() {
        // Checked against a real Apache log: a 100 KB entry overruns the
        // first 64 KiB block; the next append preallocates to
        // position + block, rounded down to a block multiple.
        let mut writer = TxnLogWriter::new(65536);
        let mut out = BytesMut::new();
        writer.start(&mut out);
        writer.append(&payload(1, &[1; 100_000]), &mut out).unwrap();
        assert_eq!(writer.file_len(), writer.position(), "the overrun itself is not padded");
        writer.append(&payload(2, b"x"), &mut out).unwrap();
        assert_eq!(writer.file_len(), 131_072);
        assert_eq!(writer.position(), out.len() as u64);
    }

    #[test]
    fn reads_what_it_writes_and_stops_at_the_zero_tail() {
        let payloads: Vec<_> = (1..=50).map(|z| payload(z, &vec![z as u8; 100 * z as usize])).collect();
        let file = file_of(&payloads, 65536);
        assert_eq!(file.len(), 16 + 2 * 65536, "the log crossed one preallocation boundary");
        let log = read_txn_log(Bytes::from(file.clone())).unwrap();
        assert_eq!(log.header, FileHeader { magic: TXN_LOG_MAGIC, version: 2, dbid: 0 });
        assert_eq!(log.entries.iter().map(TxnLogEntry::zxid).collect::<Vec<_>>(), (1..=50).collect::<Vec<_>>());
        for (entry, p) in log.entries.iter().zip(&payloads) {
            assert_eq!(&entry.payload[..], &p[..]);
        }
        assert!(matches!(log.end, TxnLogEnd::ZeroLength { .. }));
        // Without preallocation the file ends at EOF.
        let log = read_txn_log(Bytes::from(file_of(&payloads[..3], 0))).unwrap();
        assert_eq!(log.entries.len(), 3);
        assert!(matches!(log.end, TxnLogEnd::Eof { .. }));
    }

    #[test]
    fn torn_tail_is_an_end_and_checksum_damage_an_error() {
        let payloads: Vec<_> = (1..=3).map(|z| payload(z, b"data")).collect();
        let file = file_of(&payloads, 0);
        let last = read_txn_log(Bytes::from(file.clone())).unwrap().entries[2].offset as usize;
        for cut in last + 1..file.len() {
            let log = read_txn_log(Bytes::from(file[..cut].to_vec())).unwrap();
            assert_eq!(log.entries.len(), 2, "cut at {cut}");
            assert_eq!(log.end, TxnLogEnd::PartialEntry { offset: last as u64 });
        }
        let mut no_b = file.clone();
        *no_b.last_mut().unwrap() = b'X';
        assert_eq!(read_txn_log(Bytes::from(no_b)).unwrap().end, TxnLogEnd::PartialEntry { offset: last as u64 });
        let mut flipped = file.clone();
        flipped[last + 20] ^= 0x10;
        match read_txn_log(Bytes::from(flipped)) {
            Err(ApacheFormatError::ChecksumMismatch { offset, .. }) => assert_eq!(offset, last as u64),
            other => panic!("{other:?}"),
        }
        let mut huge = file.clone();
        huge[last + 8..last + 12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(read_txn_log(Bytes::from(huge)), Err(ApacheFormatError::BadLength { .. })));
        assert!(matches!(read_txn_log(Bytes::from(file[..10].to_vec())), Err(ApacheFormatError::Truncated { .. })));
        let mut bad_magic = file;
        bad_magic[0] = b'X';
        assert!(matches!(read_txn_log(Bytes::from(bad_magic)), Err(ApacheFormatError::BadMagic { .. })));
    }

    proptest! {
        #[test]
        fn round_trip(bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
                      prealloc in prop_oneof![Just(0u64), Just(4096u64), Just(65536u64)]) {
            let payloads: Vec<_> = bodies.iter().enumerate().map(|(i, b)| payload(i as i64 + 1, b)).collect();
            let file = file_of(&payloads, prealloc);
            let log = read_txn_log(Bytes::from(file)).unwrap();
            prop_assert_eq!(log.entries.len(), payloads.len());
            for (entry, p) in log.entries.iter().zip(&payloads) {
                prop_assert_eq!(&entry.payload[..], &p[..]);
            }
        }

        #[test]
        fn garbage_never_panics(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
            if magic && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(b"ZKLG");
            }
            let _ = read_txn_log(Bytes::from(bytes));
        }
    }
}
