//! Every request record: a `RequestHeader` and the body `decode_request`
//! reads for its opcode, as `server::connection::dispatch` does, with the
//! reader limit the server uses; what decodes must re-encode to the same
//! request.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zoocore::jute::{Reader, Record, Writer};
use zoocore::proto::frame::DEFAULT_MAX_FRAME_LEN;
use zoocore::proto::{decode_request, RequestHeader};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    let mut r = Reader::new(frame).with_max_field_len(DEFAULT_MAX_FRAME_LEN * 2);
    let Ok(header) = RequestHeader::decode(&mut r) else { return };
    let Ok(req) = decode_request(header.op, &mut r) else { return };
    assert_eq!(req.op(), header.op);
    let mut out = BytesMut::new();
    req.encode(header.xid, &mut Writer::new(&mut out));
    let mut r = Reader::new(out.freeze());
    let header2 = RequestHeader::decode(&mut r).expect("header re-decodes");
    assert_eq!(header2, header);
    let again = decode_request(header.op, &mut r).expect("re-encoded request decodes");
    assert_eq!(again, req);
    assert!(r.is_empty(), "re-encoded request has trailing bytes");
});
