//! zoocore's snapshot reader (`storage::snapshot_format::read_snapshot`).
//! Selector byte even: the rest is a whole file. Odd: the rest is the body,
//! sealed here with a correct trailer (length, crc32c, end magic) so the
//! fuzzer reaches the body's decoding; a body that loads is written back
//! and must read back to the same sessions and tree (byte for byte).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::storage::snapshot_format::{read_snapshot, write_snapshot, SNAPSHOT_END_MAGIC};
use zoocore_fuzz::selector;

fuzz_target!(|data: &[u8]| {
    let (mode, rest) = selector(data);
    let mut file = rest.to_vec();
    if mode % 2 == 1 {
        let crc = crc32c(&file);
        file.extend_from_slice(&(rest.len() as u64).to_be_bytes());
        file.extend_from_slice(&crc.to_be_bytes());
        file.extend_from_slice(&SNAPSHOT_END_MAGIC.to_be_bytes());
    }
    let Ok(snapshot) = read_snapshot(&file) else { return };
    let mut again = Vec::new();
    write_snapshot(&mut again, snapshot.last_zxid, &snapshot.sessions, &snapshot.tree).expect("write to a Vec");
    let reread = read_snapshot(&again).expect("our own snapshot reads");
    assert_eq!(reread.last_zxid, snapshot.last_zxid);
    assert_eq!(reread.sessions, snapshot.sessions);
    assert_eq!(reread.tree.node_count(), snapshot.tree.node_count());
    // Byte for byte: what we write from what we read is a fixed point.
    let mut third = Vec::new();
    write_snapshot(&mut third, reread.last_zxid, &reread.sessions, &reread.tree).expect("write to a Vec");
    assert!(third == again, "write(read(write(x))) differs from write(x)");
});

/// crc32c (Castagnoli), bitwise: the fuzz crate needs it only for seals.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}
