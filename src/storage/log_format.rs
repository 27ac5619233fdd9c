//! The on-disk layout of a transaction log file, and the scan that recovery
//! runs over it. Sans-IO: encoding writes into caller buffers (e.g. an
//! aligned DMA buffer), scanning reads a byte slice of the whole file.
//!
//! All integers are big-endian. `B` is the file's block size (a power of
//! two, at least 512, recorded in the header).
//!
//! ```text
//! block 0        file header: magic "ZCLG" u32 | version u32 | block_size u32 |
//!                first_zxid i64 | crc32c(previous 20 bytes) u32 | zeros to B
//! block k·B      batch:  magic "ZCBT" u32 | record_count u32 | batch_len u32 |
//!                        first_zxid i64 | last_zxid i64 |
//!                        crc32c(the 28 header bytes before it ++ all record bytes) u32
//!                records (batch_len bytes): crc32c(payload_len ++ zxid ++ payload) u32 |
//!                        payload_len u32 | zxid i64 | payload
//!                zeros up to the next multiple of B
//! next batch     at that block boundary
//! ```
//!
//! A batch is written with one write and never touched again, so a block
//! that holds acknowledged records is never rewritten: a torn write can only
//! damage the batch being written, never an earlier one.
//!
//! Zxids follow each other by [`zxid_follows`]: the next counter of the
//! same epoch, or counter 1 of a higher epoch (where ZAB's new leader
//! starts). The encoder refuses anything else within a batch, and the scan
//! reports anything else (within or across batches) as Corrupt.
//!
//! See [`scan_log`] for how the tail is classified. [`truncated_file`]
//! builds the copy of a file that holds only its records up to a zxid
//! (TRUNC; see `server::truncate`).

use std::ops::Range;

pub const LOG_MAGIC: u32 = u32::from_be_bytes(*b"ZCLG");
pub const BATCH_MAGIC: u32 = u32::from_be_bytes(*b"ZCBT");
/// 2: record payloads are Apache ZooKeeper txns (storage::txn). Version 1
/// (zoocore 0.1: request-shaped records) is refused with a clear message.
pub const LOG_VERSION: u32 = 2;
/// magic, version, block_size, first_zxid, crc.
pub const FILE_HEADER_LEN: usize = 4 + 4 + 4 + 8 + 4;
/// magic, record_count, batch_len, first_zxid, last_zxid, crc.
pub const BATCH_HEADER_LEN: usize = 4 + 4 + 4 + 8 + 8 + 4;
/// crc, payload_len, zxid.
pub const RECORD_HEADER_LEN: usize = 4 + 4 + 8;

/// The bytes a txn of `payload_len` bytes takes in the log (its record;
/// batch headers and block padding are not counted).
pub fn record_bytes(payload_len: usize) -> u64 {
    (RECORD_HEADER_LEN + payload_len) as u64
}
pub const MIN_BLOCK_SIZE: usize = 512;
/// Larger blocks would be a configuration mistake; the bound also keeps a
/// corrupt header from steering the scan.
pub const MAX_BLOCK_SIZE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormatError {
    /// The file is shorter than its header block.
    Truncated {
        len: usize,
    },
    /// The whole header block is zeros: the file was created but its header
    /// never reached the disk, so it holds no acknowledged record.
    EmptyHeader,
    BadMagic(u32),
    BadHeaderCrc {
        stored: u32,
        computed: u32,
    },
    UnsupportedVersion(u32),
    BadBlockSize(u32),
    /// The caller's block size differs from the one the file was written with.
    BlockSizeMismatch {
        file: usize,
        expected: usize,
    },
    /// Encoding: the output buffer cannot hold the batch.
    BufferTooSmall {
        needed: usize,
        capacity: usize,
    },
    /// Encoding: each zxid must follow the previous one (see [`zxid_follows`]).
    ZxidDoesNotFollow {
        previous: i64,
        next: i64,
    },
    /// Encoding: a batch needs at least one record.
    EmptyBatch,
    /// Encoding: a payload or batch longer than a u32 can describe.
    TooLarge,
}

impl std::fmt::Display for LogFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogFormatError::Truncated { len } => write!(f, "log file too short for its header ({len} bytes)"),
            LogFormatError::EmptyHeader => write!(f, "log file header block is all zeros"),
            LogFormatError::BadMagic(m) => write!(f, "not a zoocore log file (magic {m:#010x})"),
            LogFormatError::BadHeaderCrc { stored, computed } => {
                write!(f, "log file header crc mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            LogFormatError::UnsupportedVersion(1) => write!(
                f,
                "log format version 1 was written by zoocore 0.1, whose records this version cannot replay; \
                 start that data directory with zoocore 0.1 and export it, or start from an empty directory"
            ),
            LogFormatError::UnsupportedVersion(v) => write!(f, "unsupported log format version {v}"),
            LogFormatError::BadBlockSize(b) => write!(f, "invalid block size {b} in log header"),
            LogFormatError::BlockSizeMismatch { file, expected } => {
                write!(f, "log file written with block size {file}, expected {expected}")
            }
            LogFormatError::BufferTooSmall { needed, capacity } => {
                write!(f, "batch needs {needed} bytes, buffer holds {capacity}")
            }
            LogFormatError::ZxidDoesNotFollow { previous, next } => {
                write!(f, "zxid {next:#x} does not follow {previous:#x} (next counter, or counter 1 of a higher epoch)")
            }
            LogFormatError::EmptyBatch => write!(f, "empty batch"),
            LogFormatError::TooLarge => write!(f, "record or batch too large"),
        }
    }
}

impl std::error::Error for LogFormatError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub version: u32,
    pub block_size: usize,
    /// The first zxid this file was created for (also in its name).
    pub first_zxid: i64,
}

/// The epoch of a zxid: its high 32 bits.
pub fn zxid_epoch(zxid: i64) -> u32 {
    ((zxid as u64) >> 32) as u32
}

/// The counter of a zxid within its epoch: its low 32 bits.
pub fn zxid_counter(zxid: i64) -> u32 {
    zxid as u32
}

/// True when `next` may directly follow `previous` in a log: the next zxid
/// (`previous + 1`; in a standalone server the counter may also carry into
/// the epoch bits, as Apache's standalone server lets it), or counter 1 of
/// a higher epoch, which is where a new ZAB leader's first proposal goes
/// (epochs a leader never proposed in are skipped). Anything else (a gap
/// inside an epoch, a lower epoch, a higher epoch at a counter other than
/// 1) means transactions are missing or out of order.
pub fn zxid_follows(previous: i64, next: i64) -> bool {
    previous.checked_add(1) == Some(next) || (zxid_epoch(next) > zxid_epoch(previous) && zxid_counter(next) == 1)
}

fn is_valid_block_size(block_size: usize) -> bool {
    block_size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size)
}

/// Rounds `n` up to a multiple of `block_size` (a power of two).
pub fn align_up(n: usize, block_size: usize) -> usize {
    (n + block_size - 1) & !(block_size - 1)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The header block of a new log file, `block_size` bytes long.
///
/// Panics if `block_size` is not a power of two in 512..=1 MiB (a
/// configuration invariant the caller checks once at start-up).
pub fn encode_file_header(block_size: usize, first_zxid: i64) -> Vec<u8> {
    assert!(is_valid_block_size(block_size), "invalid log block size {block_size}");
    let mut block = vec![0u8; block_size];
    block[0..4].copy_from_slice(&LOG_MAGIC.to_be_bytes());
    block[4..8].copy_from_slice(&LOG_VERSION.to_be_bytes());
    block[8..12].copy_from_slice(&(block_size as u32).to_be_bytes());
    block[12..20].copy_from_slice(&first_zxid.to_be_bytes());
    let crc = crc32c::crc32c(&block[..20]);
    block[20..24].copy_from_slice(&crc.to_be_bytes());
    block
}

/// Parses and verifies the header at the start of `bytes` (at least the
/// first `FILE_HEADER_LEN` bytes; the whole header block is needed to tell
/// `EmptyHeader`).
pub fn decode_file_header(bytes: &[u8]) -> Result<FileHeader, LogFormatError> {
    if bytes.len() < FILE_HEADER_LEN {
        return Err(LogFormatError::Truncated { len: bytes.len() });
    }
    let magic = be_u32(bytes, 0);
    if magic != LOG_MAGIC {
        let block = &bytes[..bytes.len().min(MIN_BLOCK_SIZE)];
        if magic == 0 && is_zero(block) {
            return Err(LogFormatError::EmptyHeader);
        }
        return Err(LogFormatError::BadMagic(magic));
    }
    let stored = be_u32(bytes, 20);
    let computed = crc32c::crc32c(&bytes[..20]);
    if stored != computed {
        return Err(LogFormatError::BadHeaderCrc { stored, computed });
    }
    let version = be_u32(bytes, 4);
    if version != LOG_VERSION {
        return Err(LogFormatError::UnsupportedVersion(version));
    }
    let block_size = be_u32(bytes, 8);
    if !is_valid_block_size(block_size as usize) {
        return Err(LogFormatError::BadBlockSize(block_size));
    }
    Ok(FileHeader { version, block_size: block_size as usize, first_zxid: be_i64(bytes, 12) })
}

/// Bytes a batch of records with these payload lengths occupies on disk,
/// padding included (a multiple of `block_size`).
pub fn batch_encoded_len(payload_lens: impl IntoIterator<Item = usize>, block_size: usize) -> usize {
    let records: usize = payload_lens.into_iter().map(|len| RECORD_HEADER_LEN + len).sum();
    align_up(BATCH_HEADER_LEN + records, block_size)
}

/// Encodes one batch straight into a caller buffer (e.g. an aligned DMA
/// buffer): push records, then `finish` writes the header and the zero
/// padding and returns the number of bytes to write (a multiple of the
/// block size).
pub struct BatchEncoder<'a> {
    out: &'a mut [u8],
    block_size: usize,
    /// End of the records written so far.
    len: usize,
    count: u32,
    first_zxid: i64,
    last_zxid: i64,
}

impl<'a> BatchEncoder<'a> {
    /// Panics if `block_size` is invalid (see [`encode_file_header`]).
    pub fn new(out: &'a mut [u8], block_size: usize) -> BatchEncoder<'a> {
        assert!(is_valid_block_size(block_size), "invalid log block size {block_size}");
        BatchEncoder { out, block_size, len: BATCH_HEADER_LEN, count: 0, first_zxid: 0, last_zxid: 0 }
    }

    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Bytes `finish` would return now.
    pub fn padded_len(&self) -> usize {
        align_up(self.len, self.block_size)
    }

    /// True if a record with this payload length still fits, padding
    /// included.
    pub fn fits(&self, payload_len: usize) -> bool {
        align_up(self.len + RECORD_HEADER_LEN + payload_len, self.block_size) <= self.out.len()
    }

    /// Appends one record. On error nothing is written.
    pub fn push(&mut self, zxid: i64, payload: &[u8]) -> Result<(), LogFormatError> {
        if self.count > 0 && !zxid_follows(self.last_zxid, zxid) {
            return Err(LogFormatError::ZxidDoesNotFollow { previous: self.last_zxid, next: zxid });
        }
        let payload_len = u32::try_from(payload.len()).map_err(|_| LogFormatError::TooLarge)?;
        let end = self.len + RECORD_HEADER_LEN + payload.len();
        if u32::try_from(end - BATCH_HEADER_LEN).is_err() {
            return Err(LogFormatError::TooLarge);
        }
        let needed = align_up(end, self.block_size);
        if needed > self.out.len() {
            return Err(LogFormatError::BufferTooSmall { needed, capacity: self.out.len() });
        }
        let rec = &mut self.out[self.len..end];
        rec[4..8].copy_from_slice(&payload_len.to_be_bytes());
        rec[8..16].copy_from_slice(&zxid.to_be_bytes());
        rec[16..].copy_from_slice(payload);
        let crc = crc32c::crc32c(&rec[4..]);
        rec[0..4].copy_from_slice(&crc.to_be_bytes());
        if self.count == 0 {
            self.first_zxid = zxid;
        }
        self.last_zxid = zxid;
        self.count += 1;
        self.len = end;
        Ok(())
    }

    /// Writes the batch header and zero padding; returns the padded length
    /// (write `out[..len]` at a block-aligned offset).
    pub fn finish(self) -> Result<usize, LogFormatError> {
        if self.count == 0 {
            return Err(LogFormatError::EmptyBatch);
        }
        let batch_len = (self.len - BATCH_HEADER_LEN) as u32;
        let header = &mut self.out[..BATCH_HEADER_LEN];
        header[0..4].copy_from_slice(&BATCH_MAGIC.to_be_bytes());
        header[4..8].copy_from_slice(&self.count.to_be_bytes());
        header[8..12].copy_from_slice(&batch_len.to_be_bytes());
        header[12..20].copy_from_slice(&self.first_zxid.to_be_bytes());
        header[20..28].copy_from_slice(&self.last_zxid.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&self.out[..28]), &self.out[BATCH_HEADER_LEN..self.len]);
        self.out[28..32].copy_from_slice(&crc.to_be_bytes());
        let padded = align_up(self.len, self.block_size);
        self.out[self.len..padded].fill(0);
        Ok(padded)
    }
}

/// Encodes `records` (zxid, payload) as one batch into `out`; returns the
/// padded length.
pub fn encode_batch(records: &[(i64, &[u8])], block_size: usize, out: &mut [u8]) -> Result<usize, LogFormatError> {
    let mut encoder = BatchEncoder::new(out, block_size);
    for (zxid, payload) in records {
        encoder.push(*zxid, payload)?;
    }
    encoder.finish()
}

/// Like [`encode_batch`] into a fresh Vec of exactly the padded length.
pub fn encode_batch_to_vec(records: &[(i64, &[u8])], block_size: usize) -> Result<Vec<u8>, LogFormatError> {
    let mut out = vec![0u8; batch_encoded_len(records.iter().map(|(_, p)| p.len()), block_size)];
    let len = encode_batch(records, block_size, &mut out)?;
    out.truncate(len);
    Ok(out)
}

/// One valid record found by the scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub zxid: i64,
    /// Where the payload is in the scanned bytes.
    pub payload: Range<usize>,
    /// Offset of the batch that holds the record (its header's first byte).
    pub batch_offset: u64,
}

impl LogRecord {
    /// Offset of the record itself (its crc), for messages naming it.
    pub fn offset(&self) -> u64 {
        (self.payload.start - RECORD_HEADER_LEN) as u64
    }
}

/// What follows the last valid batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Only zeros (preallocated space) or the end of the file.
    Clean,
    /// The batch at `offset` is incomplete or damaged and no valid batch
    /// follows it: it was being written when the server stopped, so none of
    /// its records was acknowledged. Cut the file there.
    Torn { offset: u64, reason: String },
    /// The batch at `offset` is damaged but a valid batch follows it, or a
    /// valid batch breaks zxid order: acknowledged data was lost or the file
    /// was tampered with. Start-up must stop (unless repairing).
    Corrupt { offset: u64, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    pub header: FileHeader,
    /// Every record of every valid batch before the tail, in file order.
    pub records: Vec<LogRecord>,
    /// Offset just after the last valid batch (block-aligned): where the
    /// next batch goes, and where a Torn (or repaired) file is cut.
    pub valid_end: u64,
    pub tail: Tail,
}

impl ScanResult {
    pub fn last_zxid(&self) -> Option<i64> {
        self.records.last().map(|r| r.zxid)
    }
}

/// A batch that passed every check.
struct ValidBatch {
    /// Padded end.
    end: usize,
    first_zxid: i64,
    records: Vec<LogRecord>,
}

/// Why the bytes at an offset are not a valid batch.
enum BatchDefect {
    /// Header + records all zero (preallocated space or a zeroed batch).
    Zeros,
    /// Damaged, incomplete, or not a batch.
    Bad(String),
    /// The batch crc verifies but its contents contradict the header: the
    /// writer produced it that way (a bug) or a collision. Never torn.
    Inconsistent(String),
}

fn is_zero(bytes: &[u8]) -> bool {
    // OR-folding fixed chunks vectorizes; this runs over preallocated space.
    bytes.chunks(4096).all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

fn parse_batch(file: &[u8], at: usize, block_size: usize) -> Result<ValidBatch, BatchDefect> {
    let available = file.len() - at;
    if available < BATCH_HEADER_LEN {
        if is_zero(&file[at..]) {
            return Err(BatchDefect::Zeros);
        }
        return Err(BatchDefect::Bad(format!("batch header cut off by end of file ({available} bytes)")));
    }
    let header = &file[at..at + BATCH_HEADER_LEN];
    let magic = be_u32(header, 0);
    if magic != BATCH_MAGIC {
        if is_zero(header) {
            return Err(BatchDefect::Zeros);
        }
        return Err(BatchDefect::Bad(format!("bad batch magic {magic:#010x}")));
    }
    let record_count = be_u32(header, 4);
    let batch_len = be_u32(header, 8) as usize;
    let first_zxid = be_i64(header, 12);
    let last_zxid = be_i64(header, 20);
    let stored_crc = be_u32(header, 28);
    let records_start = at + BATCH_HEADER_LEN;
    if batch_len > file.len() - records_start {
        return Err(BatchDefect::Bad(format!(
            "batch of {batch_len} bytes runs past end of file ({} bytes left)",
            file.len() - records_start
        )));
    }
    let body = &file[records_start..records_start + batch_len];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..28]), body);
    if crc != stored_crc {
        return Err(BatchDefect::Bad(format!("batch crc mismatch (stored {stored_crc:#010x}, computed {crc:#010x})")));
    }
    // The crc verified: from here on a defect is not a torn write.
    let inconsistent = |what: String| Err(BatchDefect::Inconsistent(what));
    if record_count == 0 || (record_count as usize) > batch_len / RECORD_HEADER_LEN {
        return inconsistent(format!("record count {record_count} does not fit a batch of {batch_len} bytes"));
    }
    let mut records = Vec::with_capacity(record_count as usize);
    let mut pos = 0usize;
    let mut previous: Option<i64> = None;
    for index in 0..record_count {
        if body.len() - pos < RECORD_HEADER_LEN {
            return inconsistent(format!("record {index} header runs past the batch"));
        }
        let rec_crc = be_u32(body, pos);
        let payload_len = be_u32(body, pos + 4) as usize;
        let zxid = be_i64(body, pos + 8);
        let payload_start = pos + RECORD_HEADER_LEN;
        if payload_len > body.len() - payload_start {
            return inconsistent(format!("record {index} payload runs past the batch"));
        }
        let payload_end = payload_start + payload_len;
        let computed = crc32c::crc32c(&body[pos + 4..payload_end]);
        if computed != rec_crc {
            return inconsistent(format!("record {index} crc mismatch"));
        }
        if let Some(previous) = previous {
            if !zxid_follows(previous, zxid) {
                return inconsistent(format!("record {index} zxid {zxid:#x} does not follow {previous:#x}"));
            }
        }
        previous = Some(zxid);
        records.push(LogRecord {
            zxid,
            payload: records_start + payload_start..records_start + payload_end,
            batch_offset: at as u64,
        });
        pos = payload_end;
    }
    if pos != body.len() {
        return inconsistent(format!("{} bytes after the last record", body.len() - pos));
    }
    if records.first().map(|r| r.zxid) != Some(first_zxid) || previous != Some(last_zxid) {
        return inconsistent("batch header zxids differ from its records".to_owned());
    }
    Ok(ValidBatch { end: align_up(records_start + batch_len, block_size), first_zxid, records })
}

/// Scans a whole log file (its bytes as read from disk, preallocated zeros
/// included). Classification of what follows the last valid batch at
/// offset `E` (block-aligned):
///
/// * **Clean**: every byte from `E` to the end of the file is zero (or
///   `E` is the end).
/// * **Corrupt**: the batch at `E` is bad (damaged, incomplete, or zeros)
///   and some later block boundary starts a batch that fully verifies; or
///   a batch whose crc verifies contradicts itself or breaks the zxid
///   order of [`zxid_follows`] (also across batches). Acknowledged data
///   sits behind the damage, so cutting would lose it.
/// * **Torn**: anything else: the bytes at `E` are not zeros, not a valid
///   batch, and nothing valid follows. Since batches are written one at a
///   time and a block with acknowledged records is never rewritten, this
///   can only be the batch that was in flight (or random garbage after
///   it), and none of it was acknowledged.
///
/// Consequence for the writer: it must not start writing a batch before
/// the previous batch's write completed, or a torn batch followed by a
/// whole one would look Corrupt.
///
/// `block_size` must equal the block size in the file header.
pub fn scan_log(file_bytes: &[u8], block_size: usize) -> Result<ScanResult, LogFormatError> {
    scan(file_bytes, block_size, false)
}

/// As [`scan_log`], but a Corrupt tail is reported as Torn at the first bad
/// batch (the operator's explicit repair: everything after it is dropped).
pub fn scan_log_with_repair(file_bytes: &[u8], block_size: usize) -> Result<ScanResult, LogFormatError> {
    scan(file_bytes, block_size, true)
}

fn scan(file: &[u8], block_size: usize, repair: bool) -> Result<ScanResult, LogFormatError> {
    let header = decode_file_header(file)?;
    if header.block_size != block_size {
        return Err(LogFormatError::BlockSizeMismatch { file: header.block_size, expected: block_size });
    }
    if file.len() < block_size {
        return Err(LogFormatError::Truncated { len: file.len() });
    }
    let mut records = Vec::new();
    let mut at = block_size;
    let mut last_zxid: Option<i64> = None;
    let tail = loop {
        if at >= file.len() {
            break Tail::Clean;
        }
        match parse_batch(file, at, block_size) {
            Ok(batch) => {
                if let Some(last) = last_zxid {
                    if !zxid_follows(last, batch.first_zxid) {
                        let reason = format!(
                            "batch first zxid {:#x} does not follow previous zxid {last:#x} \
                             (next counter, or counter 1 of a higher epoch)",
                            batch.first_zxid
                        );
                        break Tail::Corrupt { offset: at as u64, reason };
                    }
                }
                last_zxid = batch.records.last().map(|r| r.zxid);
                records.extend(batch.records);
                at = batch.end;
            }
            Err(BatchDefect::Inconsistent(reason)) => break Tail::Corrupt { offset: at as u64, reason },
            Err(defect) => {
                let later = find_valid_batch_after(file, at, block_size);
                break match (defect, later) {
                    (_, Some(later_at)) => Tail::Corrupt {
                        offset: at as u64,
                        reason: format!("damaged batch followed by a valid batch at offset {later_at}"),
                    },
                    (BatchDefect::Zeros, None) if is_zero(&file[at..]) => Tail::Clean,
                    (BatchDefect::Zeros, None) => {
                        Tail::Torn { offset: at as u64, reason: "non-zero bytes after a zero batch header".into() }
                    }
                    (BatchDefect::Bad(reason), None) | (BatchDefect::Inconsistent(reason), None) => {
                        Tail::Torn { offset: at as u64, reason }
                    }
                };
            }
        }
    };
    let tail = match tail {
        Tail::Corrupt { offset, reason } if repair => Tail::Torn { offset, reason: format!("repair: {reason}") },
        other => other,
    };
    Ok(ScanResult { header, records, valid_end: at as u64, tail })
}

/// The bytes of a copy of a log file that holds exactly the records of
/// `scan` (the scan of `file`) whose zxid is at most `zxid`: the header
/// block and every whole batch before the cut verbatim and, when the cut
/// falls inside a batch, that batch's kept records re-encoded as one new
/// batch. Nothing after the cut is copied (records above `zxid`, a torn
/// tail, preallocated zeros), so the copy scans Clean. If no record is
/// kept the copy is the header block alone.
///
/// The original is never modified: the caller writes the copy under a
/// temporary name and renames it over the original, since rewriting the
/// straddling batch in place would rewrite a block holding acknowledged
/// records (the tail-block rule).
pub fn truncated_file(file: &[u8], scan: &ScanResult, zxid: i64) -> Result<Vec<u8>, LogFormatError> {
    let slice = |range: Range<usize>| file.get(range).ok_or(LogFormatError::Truncated { len: file.len() });
    // Records are in increasing zxid order (the scan checks it).
    let kept = scan.records.partition_point(|r| r.zxid <= zxid);
    let Some(first_dropped) = scan.records.get(kept) else {
        // The last batch's padding may lie past the end of a file cut short
        // mid-block (a torn write-back): keep what is there.
        return Ok(slice(0..(scan.valid_end as usize).min(file.len()))?.to_vec());
    };
    let cut = first_dropped.batch_offset as usize;
    let mut out = slice(0..cut)?.to_vec();
    let kept_records = scan.records.get(..kept).unwrap_or_default();
    let split_from =
        kept_records.iter().rposition(|r| r.batch_offset != first_dropped.batch_offset).map_or(0, |i| i + 1);
    let split = kept_records.get(split_from..).unwrap_or_default();
    if !split.is_empty() {
        let mut records = Vec::with_capacity(split.len());
        for record in split {
            records.push((record.zxid, slice(record.payload.clone())?));
        }
        out.extend_from_slice(&encode_batch_to_vec(&records, scan.header.block_size)?);
    }
    Ok(out)
}

/// The first block boundary after `bad_at` that starts a fully valid batch.
fn find_valid_batch_after(file: &[u8], bad_at: usize, block_size: usize) -> Option<usize> {
    let mut at = bad_at + block_size;
    while at + BATCH_HEADER_LEN <= file.len() {
        // Cheap filter first: most boundaries are zeros or batch interiors.
        if be_u32(file, at) == BATCH_MAGIC && parse_batch(file, at, block_size).is_ok() {
            return Some(at);
        }
        at += block_size;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BS: usize = 512;

    type Batch = Vec<(i64, Vec<u8>)>;

    /// A log file: header, the batches, then `prealloc` zero bytes.
    /// Returns the file and each batch's (start, padded end).
    fn build(batches: &[Batch], prealloc: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut file = encode_file_header(BS, batches.first().and_then(|b| b.first()).map_or(1, |r| r.0));
        let mut extents = Vec::new();
        for batch in batches {
            let records: Vec<(i64, &[u8])> = batch.iter().map(|(z, p)| (*z, p.as_slice())).collect();
            let encoded = encode_batch_to_vec(&records, BS).unwrap();
            assert_eq!(encoded.len() % BS, 0);
            extents.push((file.len(), file.len() + encoded.len()));
            file.extend_from_slice(&encoded);
        }
        file.resize(file.len() + prealloc, 0);
        (file, extents)
    }

    fn payloads(scan: &ScanResult, file: &[u8]) -> Vec<(i64, Vec<u8>)> {
        scan.records.iter().map(|r| (r.zxid, file[r.payload.clone()].to_vec())).collect()
    }

    fn flatten(batches: &[Batch]) -> Vec<(i64, Vec<u8>)> {
        batches.iter().flatten().cloned().collect()
    }

    /// Batches whose zxids follow each other across the whole file: mostly
    /// the next counter, sometimes counter 1 of a higher epoch.
    fn arb_batches(max_batches: usize) -> impl Strategy<Value = Vec<Batch>> {
        proptest::collection::vec(
            proptest::collection::vec(
                (proptest::bool::weighted(0.15), 1i64..3, proptest::collection::vec(any::<u8>(), 0..700)),
                1..5,
            ),
            1..=max_batches,
        )
        .prop_map(|batches| {
            let mut zxid = 0x1_0000_0000i64;
            batches
                .into_iter()
                .map(|batch| {
                    batch
                        .into_iter()
                        .map(|(new_epoch, epochs_on, payload)| {
                            zxid = if new_epoch { ((zxid >> 32) + epochs_on) << 32 | 1 } else { zxid + 1 };
                            (zxid, payload)
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// A batch encoded without the encoder's zxid check (crcs all valid),
    /// for files whose zxids break the order.
    fn unchecked_batch(records: &[(i64, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (zxid, payload) in records {
            let mut rec = Vec::new();
            rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            rec.extend_from_slice(&zxid.to_be_bytes());
            rec.extend_from_slice(payload);
            body.extend_from_slice(&crc32c::crc32c(&rec).to_be_bytes());
            body.extend_from_slice(&rec);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&BATCH_MAGIC.to_be_bytes());
        out.extend_from_slice(&(records.len() as u32).to_be_bytes());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&records[0].0.to_be_bytes());
        out.extend_from_slice(&records[records.len() - 1].0.to_be_bytes());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out), &body);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&body);
        out.resize(align_up(out.len(), BS), 0);
        out
    }

    fn simple_batches() -> Vec<Batch> {
        vec![
            vec![(1, b"one".to_vec()), (2, vec![7; 600])],
            vec![(3, b"three".to_vec())],
            vec![(4, vec![]), (5, vec![1; 1000])],
        ]
    }

    #[test]
    fn file_header_round_trip_and_errors() {
        let block = encode_file_header(4096, 0x5_0000_0001);
        assert_eq!(block.len(), 4096);
        let header = decode_file_header(&block).unwrap();
        assert_eq!(header, FileHeader { version: LOG_VERSION, block_size: 4096, first_zxid: 0x5_0000_0001 });
        assert_eq!(decode_file_header(&block[..10]), Err(LogFormatError::Truncated { len: 10 }));
        assert_eq!(decode_file_header(&[0u8; 4096]), Err(LogFormatError::EmptyHeader));
        let mut bad = block.clone();
        bad[13] ^= 1;
        assert!(matches!(decode_file_header(&bad), Err(LogFormatError::BadHeaderCrc { .. })));
        bad = block.clone();
        bad[0] = b'X';
        assert!(matches!(decode_file_header(&bad), Err(LogFormatError::BadMagic(_))));
        let (file, _) = build(&simple_batches(), 0);
        assert_eq!(scan_log(&file, 4096), Err(LogFormatError::BlockSizeMismatch { file: BS, expected: 4096 }));
    }

    #[test]
    fn encoder_refuses_bad_input() {
        let mut buf = vec![0u8; BS];
        assert_eq!(BatchEncoder::new(&mut buf, BS).finish(), Err(LogFormatError::EmptyBatch));
        let mut enc = BatchEncoder::new(&mut buf, BS);
        enc.push(5, b"a").unwrap();
        assert_eq!(enc.push(5, b"b"), Err(LogFormatError::ZxidDoesNotFollow { previous: 5, next: 5 }));
        assert_eq!(enc.push(7, b"b"), Err(LogFormatError::ZxidDoesNotFollow { previous: 5, next: 7 }));
        assert!(enc.fits(BS - BATCH_HEADER_LEN - 2 * RECORD_HEADER_LEN - 1));
        assert!(!enc.fits(BS));
        assert!(matches!(enc.push(6, &[0; BS]), Err(LogFormatError::BufferTooSmall { .. })));
        assert_eq!(enc.record_count(), 1);
        assert_eq!(enc.finish(), Ok(BS));
        // Stale bytes in a reused buffer are overwritten by the padding.
        let mut dirty = vec![0xAAu8; 2 * BS];
        let len = encode_batch(&[(1, b"x")], BS, &mut dirty).unwrap();
        assert_eq!(len, BS);
        assert!(dirty[BATCH_HEADER_LEN + RECORD_HEADER_LEN + 1..BS].iter().all(|&b| b == 0));
        assert_eq!(batch_encoded_len([1], BS), BS);
        assert_eq!(batch_encoded_len([BS], BS), 2 * BS);
    }

    #[test]
    fn clean_file_with_and_without_preallocation() {
        let batches = simple_batches();
        for prealloc in [0, 64 * BS] {
            let (file, extents) = build(&batches, prealloc);
            let scan = scan_log(&file, BS).unwrap();
            assert_eq!(scan.tail, Tail::Clean);
            assert_eq!(payloads(&scan, &file), flatten(&batches));
            assert_eq!(scan.valid_end as usize, extents.last().unwrap().1);
            assert_eq!(scan.last_zxid(), Some(5));
        }
        // A new file: only the header.
        let file = encode_file_header(BS, 1);
        let scan = scan_log(&file, BS).unwrap();
        assert_eq!((scan.records.len(), scan.valid_end, scan.tail), (0, BS as u64, Tail::Clean));
    }

    #[test]
    fn every_truncation_of_the_last_batch() {
        let batches = simple_batches();
        let (file, extents) = build(&batches, 0);
        let (last_start, last_end) = *extents.last().unwrap();
        let records_end = last_start + BATCH_HEADER_LEN + 2 * RECORD_HEADER_LEN + 1000;
        for cut in last_start..=last_end {
            let scan = scan_log(&file[..cut], BS).unwrap();
            if cut == last_start || cut >= records_end {
                // At the batch boundary, or only padding missing: whole.
                assert_eq!(scan.tail, Tail::Clean, "cut {cut}");
            } else {
                assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset as usize == last_start), "cut {cut}");
                assert_eq!(scan.valid_end as usize, last_start);
                assert_eq!(payloads(&scan, &file), flatten(&batches[..2]));
            }
            // Same with the lost bytes reading as preallocated zeros.
            let mut zeroed = file.clone();
            zeroed[cut..].fill(0);
            zeroed.resize(file.len() + 8 * BS, 0);
            let scan = scan_log(&zeroed, BS).unwrap();
            if cut == last_start {
                assert_eq!(scan.tail, Tail::Clean, "zeroed from {cut}");
            } else if cut < records_end {
                assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset as usize == last_start));
            } else {
                assert_eq!(scan.tail, Tail::Clean);
                assert_eq!(scan.records.len(), 5);
            }
        }
    }

    #[test]
    fn zero_filled_last_batch_is_clean() {
        let batches = simple_batches();
        let (mut file, extents) = build(&batches, 4 * BS);
        let (start, end) = *extents.last().unwrap();
        file[start..end].fill(0);
        let scan = scan_log(&file, BS).unwrap();
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(scan.valid_end as usize, start);
        assert_eq!(scan.records.len(), 3);
    }

    #[test]
    fn zeroed_middle_batch_is_corrupt() {
        let batches = simple_batches();
        let (mut file, extents) = build(&batches, 0);
        let (start, end) = extents[1];
        file[start..end].fill(0);
        let scan = scan_log(&file, BS).unwrap();
        assert!(matches!(scan.tail, Tail::Corrupt { offset, .. } if offset as usize == start));
    }

    #[test]
    fn garbage_tail_is_torn() {
        let batches = simple_batches();
        let (mut file, extents) = build(&batches, 0);
        let end = extents.last().unwrap().1;
        file.extend((0..3 * BS).map(|i| (i * 7 + 1) as u8));
        let scan = scan_log(&file, BS).unwrap();
        assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset as usize == end));
        assert_eq!(scan.records.len(), 5);
        // Zeros, then garbage further on: still nothing valid after, Torn.
        let (mut file, _) = build(&batches, 4 * BS);
        let len = file.len();
        file[len - 10] = 1;
        let scan = scan_log(&file, BS).unwrap();
        assert!(matches!(scan.tail, Tail::Torn { offset, .. } if offset as usize == end));
    }

    #[test]
    fn zxid_order_across_batches_is_checked() {
        let batches = vec![vec![(5, b"a".to_vec())], vec![(5, b"b".to_vec())]];
        let (file, extents) = build(&batches, 0);
        let scan = scan_log(&file, BS).unwrap();
        assert!(matches!(scan.tail, Tail::Corrupt { offset, .. } if offset as usize == extents[1].0));
        assert_eq!(scan.records.len(), 1);
        let repaired = scan_log_with_repair(&file, BS).unwrap();
        assert!(matches!(repaired.tail, Tail::Torn { offset, .. } if offset as usize == extents[1].0));
        assert_eq!(repaired.valid_end as usize, extents[1].0);
    }

    #[test]
    fn zxid_follows_the_next_counter_or_counter_one_of_a_higher_epoch() {
        let e1 = 0x1_0000_0000i64;
        let e2 = 0x2_0000_0000i64;
        let cases = [
            (0, 1, true),
            (e1 | 7, e1 | 8, true),
            (e1 | 7, e2 | 1, true),
            (e1 | 7, 0x5_0000_0001, true),
            (0, e1 | 1, true),
            // Standalone: the counter carries into the epoch bits.
            (e1 | 0xffff_ffff, e2, true),
            (e1 | 7, e1 | 9, false),
            (e1 | 7, e1 | 7, false),
            (e1 | 7, e1 | 6, false),
            (e2 | 3, e1 | 1, false),
            (e1 | 7, e2 | 2, false),
            (e1 | 7, e2, false),
            (i64::MAX, i64::MIN, false),
        ];
        for (previous, next, follows) in cases {
            assert_eq!(zxid_follows(previous, next), follows, "{previous:#x} -> {next:#x}");
        }
        assert_eq!((zxid_epoch(e2 | 5), zxid_counter(e2 | 5)), (2, 5));
    }

    #[test]
    fn epoch_jump_within_and_across_batches_is_clean() {
        let (e1, e2, e3) = (0x1_0000_0000i64, 0x2_0000_0000i64, 0x3_0000_0000i64);
        let batches = vec![
            vec![(e1 | 6, b"a".to_vec()), (e1 | 7, b"b".to_vec())],
            vec![(e2 | 1, b"c".to_vec()), (e3 | 1, vec![])],
        ];
        let (file, extents) = build(&batches, 2 * BS);
        let scan = scan_log(&file, BS).unwrap();
        assert_eq!(scan.tail, Tail::Clean);
        assert_eq!(payloads(&scan, &file), flatten(&batches));
        assert_eq!(scan.records[2].batch_offset as usize, extents[1].0);
        assert_eq!(scan.records[2].offset() as usize, extents[1].0 + BATCH_HEADER_LEN);
    }

    /// A zxid that does not follow (a gap inside an epoch, a lower epoch, a
    /// higher epoch at a counter other than 1) is Corrupt at the batch
    /// that carries it, whether the break is across batches or inside one.
    #[test]
    fn zxid_breaks_are_corrupt() {
        let e1 = 0x1_0000_0000i64;
        let e2 = 0x2_0000_0000i64;
        for bad in [e1 | 9, e1 | 7, (e1 >> 1) | 1, e2 | 2, e2] {
            let (mut file, extents) = build(&[vec![(e1 | 6, b"a".to_vec()), (e1 | 7, b"b".to_vec())]], 0);
            let second = extents[0].1;
            file.extend(unchecked_batch(&[(bad, b"c")]));
            let scan = scan_log(&file, BS).unwrap();
            assert!(matches!(scan.tail, Tail::Corrupt { offset, .. } if offset as usize == second), "{bad:#x}");
            assert_eq!(scan.records.len(), 2);
            // Inside one batch.
            let mut file = encode_file_header(BS, e1 | 6);
            file.extend(unchecked_batch(&[(e1 | 6, b"a"), (e1 | 7, b"b"), (bad, b"c")]));
            file.extend(encode_batch_to_vec(&[(bad + 1, b"d")], BS).unwrap());
            let scan = scan_log(&file, BS).unwrap();
            assert!(matches!(scan.tail, Tail::Corrupt { offset, .. } if offset as usize == BS), "{bad:#x} inside");
            assert!(scan.records.is_empty());
        }
    }

    /// Records of `scan` up to `zxid`, with their payloads.
    fn kept(batches: &[Batch], zxid: i64) -> Vec<(i64, Vec<u8>)> {
        flatten(batches).into_iter().filter(|(z, _)| *z <= zxid).collect()
    }

    /// A file cut short inside its last batch's padding (a torn write-back
    /// that kept every record byte) still scans Clean; a TRUNC above
    /// everything keeps it whole instead of failing (found by the simulator:
    /// the TRUNC before a SNAP install failed, and the learner lost its log).
    #[test]
    fn truncated_file_above_everything_keeps_a_file_cut_inside_padding() {
        let (mut file, extents) = build(&simple_batches(), 0);
        let last_start = extents.last().unwrap().0;
        let scan_whole = scan_log(&file, BS).unwrap();
        let last_payload_end = scan_whole.records.last().unwrap().payload.end;
        file.truncate(last_payload_end + 1);
        assert!(file.len() > last_start && file.len() < extents.last().unwrap().1);
        let scan = scan_log(&file, BS).unwrap();
        assert_eq!((scan.records.len(), scan.tail.clone()), (scan_whole.records.len(), Tail::Clean));
        let copy = truncated_file(&file, &scan, 100).unwrap();
        assert_eq!(copy, file);
    }

    #[test]
    fn truncated_file_at_a_boundary_inside_a_batch_below_and_above_everything() {
        let batches = simple_batches();
        let (file, extents) = build(&batches, 8 * BS);
        let scan = scan_log(&file, BS).unwrap();
        for zxid in [0, 1, 2, 3, 4, 5, 6, 100] {
            let copy = truncated_file(&file, &scan, zxid).unwrap();
            let rescan = scan_log(&copy, BS).unwrap();
            assert_eq!(rescan.tail, Tail::Clean, "zxid {zxid}");
            assert_eq!(rescan.valid_end as usize, copy.len(), "zxid {zxid}: nothing after the last batch");
            assert_eq!(payloads(&rescan, &copy), kept(&batches, zxid), "zxid {zxid}");
            assert_eq!(rescan.header, scan.header);
        }
        // At a batch boundary the copy is a byte prefix of the original.
        let at_boundary = truncated_file(&file, &scan, 3).unwrap();
        assert_eq!(at_boundary, file[..extents[1].1]);
        // Inside a batch: whole batches verbatim, then the split batch anew.
        let inside = truncated_file(&file, &scan, 4).unwrap();
        assert_eq!(inside[..extents[2].0], file[..extents[2].0]);
        assert_eq!(inside.len(), extents[2].0 + BS);
        // Below every record: the header block alone.
        assert_eq!(truncated_file(&file, &scan, 0).unwrap(), file[..BS]);
        // Above every record: the valid prefix without the preallocation.
        assert_eq!(truncated_file(&file, &scan, 100).unwrap(), file[..extents[2].1]);
    }

    #[test]
    fn truncated_file_drops_a_torn_tail() {
        let batches = simple_batches();
        let (mut file, extents) = build(&batches, 0);
        let last = extents[2].0;
        file.truncate(last + 40);
        let scan = scan_log(&file, BS).unwrap();
        assert!(matches!(scan.tail, Tail::Torn { .. }));
        let copy = truncated_file(&file, &scan, 100).unwrap();
        let rescan = scan_log(&copy, BS).unwrap();
        assert_eq!(rescan.tail, Tail::Clean);
        assert_eq!(payloads(&rescan, &copy), flatten(&batches[..2]));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(batches in arb_batches(6), prealloc_blocks in 0usize..4) {
            let (file, extents) = build(&batches, prealloc_blocks * BS);
            let scan = scan_log(&file, BS).unwrap();
            prop_assert_eq!(&scan.tail, &Tail::Clean);
            prop_assert_eq!(payloads(&scan, &file), flatten(&batches));
            prop_assert_eq!(scan.valid_end as usize, extents.last().unwrap().1);
        }

        /// The truncated copy holds exactly the records up to the zxid, and
        /// the bytes before the first batch it changes are the original's.
        #[test]
        fn truncated_file_keeps_exactly_the_records_up_to_the_zxid(
            batches in arb_batches(6), pick in any::<prop::sample::Index>(), prealloc in 0usize..3,
        ) {
            let (file, _) = build(&batches, prealloc * BS);
            let scan = scan_log(&file, BS).unwrap();
            let all = flatten(&batches);
            // Every record's zxid, one below each, and one past the end.
            let mut candidates: Vec<i64> = all.iter().flat_map(|(z, _)| [*z - 1, *z]).collect();
            candidates.push(all.last().unwrap().0 + 1);
            let zxid = candidates[pick.index(candidates.len())];
            let copy = truncated_file(&file, &scan, zxid).unwrap();
            let rescan = scan_log(&copy, BS).unwrap();
            prop_assert_eq!(&rescan.tail, &Tail::Clean);
            prop_assert_eq!(payloads(&rescan, &copy), kept(&batches, zxid));
            let unchanged = scan.records.iter().find(|r| r.zxid > zxid).map_or(scan.valid_end, |r| r.batch_offset);
            prop_assert_eq!(&copy[..unchanged as usize], &file[..unchanged as usize]);
        }

        /// A bit flip in a batch's header or records: Torn if it is the last
        /// batch, Corrupt naming its offset otherwise; repair cuts there.
        #[test]
        fn bit_flip(batches in arb_batches(5), pick in any::<prop::sample::Index>(), bit in 0u8..8, prealloc in 0usize..3) {
            let (mut file, extents) = build(&batches, prealloc * BS);
            let which = pick.index(extents.len());
            let (start, _) = extents[which];
            let used = BATCH_HEADER_LEN
                + batches[which].iter().map(|(_, p)| RECORD_HEADER_LEN + p.len()).sum::<usize>();
            let at = start + (pick.index(used * 31 + 7) % used);
            file[at] ^= 1 << bit;
            let scan = scan_log(&file, BS).unwrap();
            prop_assert_eq!(scan.valid_end as usize, start);
            prop_assert_eq!(payloads(&scan, &file), flatten(&batches[..which]));
            if which + 1 == extents.len() {
                let torn = matches!(scan.tail, Tail::Torn { offset, .. } if offset as usize == start);
                prop_assert!(torn, "{:?}", scan.tail);
            } else {
                let corrupt = matches!(scan.tail, Tail::Corrupt { offset, .. } if offset as usize == start);
                prop_assert!(corrupt, "{:?}", scan.tail);
                let repaired = scan_log_with_repair(&file, BS).unwrap();
                let torn = matches!(repaired.tail, Tail::Torn { offset, .. } if offset as usize == start);
                prop_assert!(torn);
            }
        }

        /// Truncating anywhere keeps every batch that ends before the cut.
        #[test]
        fn truncation_keeps_earlier_batches(batches in arb_batches(5), cut_pick in any::<prop::sample::Index>()) {
            let (file, extents) = build(&batches, 0);
            let cut = BS + cut_pick.index(file.len() - BS + 1);
            let scan = scan_log(&file[..cut], BS).unwrap();
            // Batches whose header and records lie entirely before the cut.
            let complete = (0..extents.len())
                .take_while(|&i| {
                    let used =
                        BATCH_HEADER_LEN + batches[i].iter().map(|(_, p)| RECORD_HEADER_LEN + p.len()).sum::<usize>();
                    extents[i].0 + used <= cut
                })
                .count();
            prop_assert_eq!(payloads(&scan, &file), flatten(&batches[..complete]));
            // The cut lost nothing of the next batch (only padding, or nothing).
            let clean = complete == extents.len() || cut <= extents[complete].0;
            if clean {
                prop_assert_eq!(&scan.tail, &Tail::Clean);
            } else {
                let torn = matches!(scan.tail, Tail::Torn { .. });
                prop_assert!(torn, "{:?}", scan.tail);
            }
        }
    }
}
