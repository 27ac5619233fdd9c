//! Apache's transaction log reader (`storage::apache::txn_log`), as
//! `zoocore import` and recovery from an Apache dataDir use it, with each
//! entry's payload decoded as a txn.
//! Selector byte even: the rest is a whole file. Odd: the rest is a list of
//! payloads (each after a u16 length; those shorter than a TxnHeader are
//! skipped) written by our encoder as a valid file (header, Adler-32 per
//! entry), which must read back to those payloads.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zoocore::storage::apache::txn_log::{
    encode_txn_entry, read_txn_log, TxnHeader, TxnLogReader, TXN_LOG_DBID, TXN_LOG_MAGIC,
};
use zoocore::storage::apache::{FileHeader, FILE_FORMAT_VERSION};
use zoocore::storage::txn::LoggedTxn;
use zoocore_fuzz::{length_prefixed, selector};

fn read(file: Bytes) -> Vec<Bytes> {
    let Ok(reader) = TxnLogReader::new(file.clone()) else { return Vec::new() };
    // A small entry limit, so that the limit check is reached too.
    let mut reader = reader.with_max_entry_bytes(1 << 16);
    let mut payloads = Vec::new();
    while let Ok(Some(entry)) = reader.next_entry() {
        assert!(entry.offset < file.len() as u64);
        let _ = LoggedTxn::decode(entry.payload.clone());
        payloads.push(entry.payload);
    }
    if let Some(end) = reader.end() {
        assert!(end.offset() <= file.len() as u64);
    }
    if let Ok(log) = read_txn_log(file.clone()) {
        assert!(log.end.offset() <= file.len() as u64);
    }
    payloads
}

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = selector(data);
    if mode % 2 == 0 {
        read(Bytes::copy_from_slice(rest));
        return;
    }
    let header = FileHeader { magic: TXN_LOG_MAGIC, version: FILE_FORMAT_VERSION, dbid: TXN_LOG_DBID };
    let mut file = BytesMut::new();
    file.extend_from_slice(&header.encode());
    let mut written = Vec::new();
    for payload in length_prefixed(rest, 64).into_iter().filter(|p| p.len() >= TxnHeader::ENCODED_BYTES) {
        encode_txn_entry(payload, &mut file).expect("a non-empty payload encodes");
        written.push(payload);
    }
    let got = read(file.freeze());
    let got: Vec<&[u8]> = got.iter().map(|p| &p[..]).collect();
    assert_eq!(got, written, "the reader did not give back what was written");
});
