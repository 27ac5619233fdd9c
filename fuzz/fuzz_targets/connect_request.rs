//! The connect handshake: the first frame's `ConnectRequest` (and the
//! `ConnectResponse` a client reads), decoded and round-tripped.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zoocore::jute::{Reader, Record, Writer};
use zoocore::proto::{ConnectRequest, ConnectResponse};

fn round_trip<R: Record + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let Ok(rec) = R::decode(&mut Reader::new(Bytes::copy_from_slice(data))) else { return };
    let mut out = BytesMut::new();
    rec.encode(&mut Writer::new(&mut out));
    let again = R::decode(&mut Reader::new(out.freeze())).expect("re-encoded record decodes");
    assert_eq!(rec, again);
}

fuzz_target!(|data: &[u8]| {
    round_trip::<ConnectRequest>(data);
    round_trip::<ConnectResponse>(data);
});
