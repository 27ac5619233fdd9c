//! Apache's snapshot readers (`storage::apache::snapshot`): the file
//! (`read_snapshot_file`, every layout 3.4-3.9, seals checked), the SNAP
//! stream a leader sends after SNAP (whole and cut into reads: the same
//! answer), and the gzip / snappy-java decompression `zoocore import` and
//! recovery apply first (with the production limit).
//! Selector byte % 4: 0 file, 1 SNAP stream, 2 gzip file, 3 snappy file.
//! A snapshot that reads is written back (as 3.9) and must read back to the
//! same sessions and node count, and writing that again gives the same
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::storage::apache::snapshot::{
    decode_snap_stream, read_snapshot_file, write_snapshot_file, ApacheSnapshot, SnapStreamDecoder,
    SnapshotCompression, SnapshotLayout, SNAPSHOT_DECOMPRESSED_MAX_BYTES,
};
use zoocore_fuzz::{chunks, selector, split_two};

const FILE_ZXID: i64 = 0x1_0000_0005;

fn write(s: &ApacheSnapshot) -> Vec<u8> {
    let mut out = Vec::new();
    write_snapshot_file(&mut out, &s.tree, &s.sessions, SnapshotLayout::V39).expect("write to a Vec");
    out
}

fn file(bytes: &[u8]) {
    let Ok(snapshot) = read_snapshot_file(bytes, FILE_ZXID) else { return };
    let written = write(&snapshot);
    let reread = read_snapshot_file(&written, FILE_ZXID).expect("our own snapshot reads");
    assert_eq!(reread.sessions, snapshot.sessions);
    assert_eq!(reread.tree.node_count(), snapshot.tree.node_count());
    assert!(write(&reread) == written, "write(read(write(x))) differs from write(x)");
}

fn snap_stream(data: &[u8]) {
    let (sizes, stream) = split_two(data);
    let whole = decode_snap_stream(stream, FILE_ZXID).map(|(tree, sessions, used)| (tree.node_count(), sessions, used));
    // As the learner feeds it: keep what was not consumed, append the next read.
    let mut decoder = SnapStreamDecoder::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0;
    let mut failed = false;
    for chunk in chunks(stream, sizes) {
        if decoder.is_done() {
            break;
        }
        pending.extend_from_slice(chunk);
        match decoder.decode(&pending) {
            Ok(n) => {
                assert!(n <= pending.len());
                used += n;
                pending.drain(..n);
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if failed {
        assert!(whole.is_err(), "chunked decoding failed where whole decoding did not");
        return;
    }
    match (whole, decoder.finish(FILE_ZXID)) {
        (Ok((nodes, sessions, whole_used)), Ok((tree, chunked_sessions))) => {
            assert_eq!((nodes, sessions, whole_used), (tree.node_count(), chunked_sessions, used));
        }
        (Ok(_), Err(e)) => panic!("chunked decoding stopped short: {e}"),
        (Err(e), Ok(_)) => panic!("whole decoding failed ({e}) where chunked decoding did not"),
        (Err(_), Err(_)) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = selector(data);
    match mode % 4 {
        0 => file(rest),
        1 => snap_stream(rest),
        2 | 3 => {
            let kind = if mode % 4 == 2 { SnapshotCompression::Gzip } else { SnapshotCompression::Snappy };
            if let Ok(plain) = kind.decompress(rest, SNAPSHOT_DECOMPRESSED_MAX_BYTES) {
                file(&plain);
            }
        }
        _ => unreachable!(),
    }
});
