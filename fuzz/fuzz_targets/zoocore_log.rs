//! zoocore's log file reader (`storage::log_format`): the scan start-up and
//! TRUNC run, its repair form, `truncated_file`, and each record's payload
//! as a txn.
//!
//! Selector byte 0 (even): the rest is a whole file, read as found on disk.
//! Odd: the rest is a list of payloads (each after a u16 length) that our
//! encoder writes as a valid file first, so the fuzzer gets past the crcs;
//! the scan must then give back exactly those payloads (the round trip).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zoocore::storage::log_format::{
    align_up, decode_file_header, encode_batch_to_vec, encode_file_header, scan_log, scan_log_with_repair,
    truncated_file, ScanResult, Tail, MIN_BLOCK_SIZE,
};
use zoocore::storage::txn::LoggedTxn;
use zoocore_fuzz::{length_prefixed, selector};

fn check_scan(file: &[u8], scan: &ScanResult) {
    // The last batch's padding may be missing from a file cut short (by a
    // copy, say): its end is still where the next batch goes.
    assert!(scan.valid_end as usize <= align_up(file.len(), scan.header.block_size));
    let mut previous = None;
    for record in &scan.records {
        assert!(record.payload.end <= scan.valid_end as usize);
        if let Some(p) = previous {
            assert!(record.zxid > p, "records out of zxid order");
        }
        previous = Some(record.zxid);
        let _ = LoggedTxn::decode(Bytes::copy_from_slice(&file[record.payload.clone()]));
    }
}

fn read(file: &[u8], cut_at: i64) {
    let block_size = decode_file_header(file).map_or(MIN_BLOCK_SIZE, |h| h.block_size);
    if let Ok(scan) = scan_log(file, block_size) {
        check_scan(file, &scan);
        if let Ok(cut) = truncated_file(file, &scan, cut_at) {
            let rescan = scan_log(&cut, block_size).expect("a truncated file scans");
            assert!(rescan.records.iter().all(|r| r.zxid <= cut_at));
            assert!(rescan.records.len() <= scan.records.len());
        }
    }
    if let Ok(scan) = scan_log_with_repair(file, block_size) {
        check_scan(file, &scan);
        assert!(!matches!(scan.tail, Tail::Corrupt { .. }), "repair left a Corrupt tail");
    }
}

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = selector(data);
    if mode % 2 == 0 {
        let cut_at = rest.get(..8).map_or(0, |b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])));
        read(rest, cut_at);
        return;
    }
    let block_size = MIN_BLOCK_SIZE << (mode as usize / 2 % 4);
    let payloads = length_prefixed(rest, 64);
    let records: Vec<(i64, &[u8])> = payloads.iter().enumerate().map(|(i, p)| (i as i64 + 1, *p)).collect();
    let mut file = encode_file_header(block_size, 1);
    if !records.is_empty() {
        let Ok(batch) = encode_batch_to_vec(&records, block_size) else { return };
        file.extend_from_slice(&batch);
    }
    let scan = scan_log(&file, block_size).expect("our own file scans");
    assert_eq!(scan.tail, Tail::Clean);
    let got: Vec<(i64, &[u8])> = scan.records.iter().map(|r| (r.zxid, &file[r.payload.clone()])).collect();
    assert_eq!(got, records, "the scan did not give back what was written");
    read(&file, records.len() as i64 / 2);
});
