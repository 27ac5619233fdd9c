//! A logged transaction in Apache's serialization (`storage::txn`): what
//! zoocore's log, Apache's log and a PROPOSAL's data carry. What decodes
//! re-encodes to bytes that decode to the same transaction.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zoocore::storage::txn::LoggedTxn;

fuzz_target!(|data: &[u8]| {
    let Ok(txn) = LoggedTxn::decode(Bytes::copy_from_slice(data)) else { return };
    let again = LoggedTxn::decode(txn.to_bytes()).expect("re-encoded txn decodes");
    assert_eq!(again, txn);
});
