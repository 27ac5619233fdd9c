//! Round trips, reference vectors and hostile-input tests for `records`.

use super::*;
use crate::proto::types::Id;
use proptest::collection::vec;
use proptest::prelude::*;

fn frame_payload(out: &BytesMut) -> Bytes {
    let len = i32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
    assert_eq!(len, out.len() - 4, "length prefix must cover the rest");
    Bytes::copy_from_slice(&out[4..])
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

// --- reference vectors (Appendix) ------------------------------------------

#[test]
fn connect_request_vector_49_bytes() {
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        passwd: Bytes::from(vec![0u8; 16]),
        read_only: Some(false),
    };
    let mut out = BytesMut::new();
    encode_record_frame(&mut out, &req);
    let want = hex(
        "0000002D 00000000 0000000000000000 00007530 0000000000000000 00000010 00000000000000000000000000000000 00",
    );
    assert_eq!(&out[..], &want[..]);
    assert_eq!(out.len(), 49);
    let back = ConnectRequest::decode(&mut Reader::new(frame_payload(&out))).unwrap();
    assert_eq!(back, req);

    // Without the readOnly byte: 44-byte payload, read_only None.
    let old = ConnectRequest { read_only: None, ..req };
    let mut out = BytesMut::new();
    encode_record_frame(&mut out, &old);
    assert_eq!(&out[..4], &hex("0000002C")[..]);
    assert_eq!(ConnectRequest::decode(&mut Reader::new(frame_payload(&out))).unwrap(), old);
}

#[test]
fn get_data_frame_vector() {
    let req = Request::GetData(PathWatch { path: "/a".into(), watch: true });
    let mut out = BytesMut::new();
    encode_request_frame(&mut out, 1, &req);
    assert_eq!(&out[..], &hex("0000000F 00000001 00000004 00000002 2F61 01")[..]);
    let mut r = Reader::new(frame_payload(&out));
    let h = RequestHeader::decode(&mut r).unwrap();
    assert_eq!(h, RequestHeader { xid: 1, op: 4 });
    assert_eq!(decode_request(h.op, &mut r).unwrap(), req);
}

#[test]
fn no_node_reply_vector_has_no_body() {
    let body = Response::GetData { data: Some(Bytes::from_static(b"x")), stat: Stat::default() };
    let mut out = BytesMut::new();
    encode_reply(&mut out, 1, 0x1234, crate::proto::types::ErrorCode::NoNode.code(), Some(&body));
    assert_eq!(&out[..], &hex("00000010 00000001 0000000000001234 FFFFFF9B")[..]);
}

#[test]
fn connect_response_read_only_byte_only_when_some() {
    let mut resp = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 6000,
        session_id: 7,
        passwd: Bytes::from(vec![9u8; 16]),
        read_only: None,
    };
    let mut out = BytesMut::new();
    encode_record_frame(&mut out, &resp);
    assert_eq!(out.len(), 4 + 36);
    assert_eq!(ConnectResponse::decode(&mut Reader::new(frame_payload(&out))).unwrap(), resp);
    resp.read_only = Some(true);
    let mut out = BytesMut::new();
    encode_record_frame(&mut out, &resp);
    assert_eq!(out.len(), 4 + 37);
    assert_eq!(ConnectResponse::decode(&mut Reader::new(frame_payload(&out))).unwrap(), resp);
}

#[test]
fn notification_frame_layout() {
    let mut out = BytesMut::new();
    encode_notification(0x55, 3, "/a", &mut out);
    let mut r = Reader::new(frame_payload(&out));
    assert_eq!(ReplyHeader::decode(&mut r).unwrap(), ReplyHeader { xid: -1, zxid: 0x55, err: 0 });
    assert_eq!(WatcherEvent::decode(&mut r).unwrap(), WatcherEvent { event_type: 3, state: 3, path: "/a".into() });
    assert!(r.is_empty());
}

#[test]
fn add_watch_reply_is_four_zero_bytes() {
    let mut out = BytesMut::new();
    encode_reply(&mut out, 5, 9, 0, Some(&Response::AddWatch));
    assert_eq!(out.len(), 4 + 16 + 4);
    assert_eq!(&out[20..], &[0, 0, 0, 0]);
}

// --- unknown ops and multi rules --------------------------------------------

#[test]
fn unknown_ops_are_told_apart_from_malformed() {
    for op in [0, 13, 20, -10, 10, 23, 99, 108, 1000, -1] {
        assert_eq!(decode_request(op, &mut Reader::new(Bytes::new())), Err(RequestError::UnknownOp(op)));
    }
    assert!(matches!(decode_request(1, &mut Reader::new(Bytes::new())), Err(RequestError::Malformed(_))));
}

/// A multi's sub-op: its type and how its body is written.
type SubOpWriter<'a> = (i32, &'a dyn Fn(&mut Writer<'_>));

fn multi_bytes(parts: &[SubOpWriter<'_>]) -> Bytes {
    let mut out = BytesMut::new();
    let mut w = Writer::new(&mut out);
    for (op, body) in parts {
        MultiHeader { op: *op, done: false, err: -1 }.encode(&mut w);
        body(&mut w);
    }
    MultiHeader::END.encode(&mut w);
    out.freeze()
}

fn create_body(flags: i32) -> impl Fn(&mut Writer<'_>) {
    move |w: &mut Writer<'_>| {
        w.string("/x").buffer(Some(b"d"));
        encode_acl_list(w, &crate::proto::types::open_acl_unsafe());
        w.i32(flags);
    }
}

#[test]
fn multi_rules() {
    let get = |w: &mut Writer<'_>| {
        w.string("/x").bool(false);
    };
    let del = |w: &mut Writer<'_>| {
        w.string("/x").i32(-1);
    };
    // Mixing reads and writes, in either container.
    let mixed = multi_bytes(&[(2, &del), (4, &get)]);
    assert!(matches!(decode_request(14, &mut Reader::new(mixed.clone())), Err(RequestError::Malformed(_))));
    assert!(matches!(decode_request(22, &mut Reader::new(mixed)), Err(RequestError::Malformed(_))));
    // Unknown sub-op.
    let unknown = multi_bytes(&[(3, &get)]);
    assert!(matches!(decode_request(14, &mut Reader::new(unknown)), Err(RequestError::Malformed(_))));
    // Bad create flags decode (as op 1, raw flags kept): Apache ZooKeeper
    // answers them with ErrorResult(-8) inside the multi, not -5.
    let bad = create_body(7);
    let bad_flags = multi_bytes(&[(15, &bad)]);
    match decode_request(14, &mut Reader::new(bad_flags)).unwrap() {
        Request::Multi(ops) => {
            assert!(matches!(&ops[..], [MultiOp::Create { op: 1, req }] if req.flags == 7))
        }
        other => panic!("{other:?}"),
    }
    // Missing terminator.
    assert!(matches!(
        decode_request(14, &mut Reader::new(Bytes::from_static(&[0, 0, 0, 2, 0, 0, 0, 0, 0]))),
        Err(RequestError::Malformed(_))
    ));
    // Create opcodes are normalised from the flags, as Java does.
    let container = create_body(4);
    let plain = create_body(0);
    let ok = multi_bytes(&[(15, &plain), (1, &container)]);
    match decode_request(14, &mut Reader::new(ok)).unwrap() {
        Request::Multi(ops) => {
            assert_eq!(ops.iter().map(MultiOp::op).collect::<Vec<_>>(), vec![1, 19]);
        }
        other => panic!("{other:?}"),
    }
    // An empty multi is fine.
    assert_eq!(decode_request(14, &mut Reader::new(multi_bytes(&[]))).unwrap(), Request::Multi(vec![]));
}

/// Found by the `request` fuzz target: sub-op 1 with TTL flags (or 21 with
/// other flags) decodes to a create whose op comes from the flags and whose
/// ttl from the sub-op; re-encoding it must not announce a ttl it lacks.
#[test]
fn multi_create_with_mismatched_sub_op_re_encodes() {
    let ttl_flags_no_ttl = create_body(5);
    let plain_flags_with_ttl = |w: &mut Writer<'_>| {
        create_body(0)(w);
        w.i64(60_000);
    };
    for bytes in [multi_bytes(&[(1, &ttl_flags_no_ttl)]), multi_bytes(&[(21, &plain_flags_with_ttl)])] {
        let req = decode_request(14, &mut Reader::new(bytes)).unwrap();
        let mut out = BytesMut::new();
        req.encode_body(&mut Writer::new(&mut out));
        let mut r = Reader::new(out.freeze());
        assert_eq!(decode_request(14, &mut r).unwrap(), req);
        assert!(r.is_empty());
    }
}

#[test]
fn multi_error_results_carry_the_code_twice() {
    let resp = Response::Multi(vec![MultiResult::Error(0), MultiResult::Error(-101), MultiResult::Error(-2)]);
    let mut out = BytesMut::new();
    resp.encode_body(&mut Writer::new(&mut out));
    // second entry: header {-1, false, -101} + body -101
    let second = &out[13..26];
    assert_eq!(second, &hex("FFFFFFFF 00 FFFFFF9B FFFFFF9B")[..]);
    assert_eq!(&out[out.len() - 9..], &hex("FFFFFFFF 01 FFFFFFFF")[..]);
}

// --- strategies --------------------------------------------------------------

fn s() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn opt_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(vec(any::<u8>(), 0..24).prop_map(Bytes::from))
}

fn bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    vec((any::<i32>(), s(), s()).prop_map(|(perms, scheme, id)| Acl { perms, id: Id { scheme, id } }), 0..3)
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

fn pw() -> impl Strategy<Value = PathWatch> {
    (s(), any::<bool>()).prop_map(|(path, watch)| PathWatch { path, watch })
}

fn pv() -> impl Strategy<Value = PathVersion> {
    (s(), any::<i32>()).prop_map(|(path, version)| PathVersion { path, version })
}

fn create_req(with_ttl: bool) -> impl Strategy<Value = CreateRequest> {
    (s(), opt_bytes(), acl(), any::<i32>(), any::<i64>()).prop_map(move |(path, data, acl, flags, ttl)| CreateRequest {
        path,
        data,
        acl,
        flags,
        ttl: with_ttl.then_some(ttl),
    })
}

fn set_data() -> impl Strategy<Value = SetDataRequest> {
    (s(), opt_bytes(), any::<i32>()).prop_map(|(path, data, version)| SetDataRequest { path, data, version })
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(s(), 0..4)
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (0..7i32, create_req(false)).prop_map(|(flags, mut req)| {
            req.flags = flags;
            let op = multi_create_op(flags);
            if op == op::CREATE_TTL {
                req.ttl = Some(1000);
            }
            MultiOp::Create { op, req }
        }),
        pv().prop_map(MultiOp::Delete),
        set_data().prop_map(MultiOp::SetData),
        pv().prop_map(MultiOp::Check),
    ]
}

fn read_op() -> impl Strategy<Value = ReadOp> {
    prop_oneof![pw().prop_map(ReadOp::GetData), pw().prop_map(ReadOp::GetChildren)]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (prop_oneof![Just(1), Just(15), Just(19), Just(21)], create_req(false)).prop_map(|(op, mut req)| {
            if op == 21 {
                req.ttl = Some(42);
            }
            Request::Create { op, req }
        }),
        pv().prop_map(Request::Delete),
        pw().prop_map(Request::Exists),
        pw().prop_map(Request::GetData),
        set_data().prop_map(Request::SetData),
        s().prop_map(|path| Request::GetAcl { path }),
        (s(), acl(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest {
            path,
            acl,
            version
        })),
        pw().prop_map(Request::GetChildren),
        pw().prop_map(Request::GetChildren2),
        s().prop_map(|path| Request::Sync { path }),
        Just(Request::Ping),
        vec(multi_op(), 0..4).prop_map(Request::Multi),
        vec(read_op(), 0..4).prop_map(Request::MultiRead),
        (proptest::option::of(s()), proptest::option::of(s()), proptest::option::of(s()), any::<i64>()).prop_map(
            |(j, l, n, c)| Request::Reconfig(ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: n,
                cur_config_id: c
            })
        ),
        (s(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type }),
        (s(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type }),
        (any::<i32>(), s(), bytes()).prop_map(|(auth_type, scheme, auth)| Request::Auth(AuthPacket {
            auth_type,
            scheme,
            auth
        })),
        (any::<bool>(), any::<i64>(), strings(), strings(), strings(), strings(), strings()).prop_map(
            |(v2, relative_zxid, data, exist, child, p, pr)| {
                Request::SetWatches(SetWatches {
                    v2,
                    relative_zxid,
                    data,
                    exist,
                    child,
                    persistent: if v2 { p } else { vec![] },
                    persistent_recursive: if v2 { pr } else { vec![] },
                })
            }
        ),
        bytes().prop_map(|token| Request::Sasl { token }),
        s().prop_map(|prefix| Request::GetEphemerals { prefix }),
        s().prop_map(|path| Request::GetAllChildrenNumber { path }),
        (s(), any::<i32>()).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        s().prop_map(|path| MultiResult::Create { path }),
        (s(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        Just(MultiResult::Check),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        (opt_bytes(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        strings().prop_map(|children| MultiResult::GetChildren { children }),
        any::<i32>().prop_map(MultiResult::Error),
    ]
}

/// A response together with an opcode whose reply has that shape.
fn response() -> impl Strategy<Value = (i32, Response)> {
    prop_oneof![
        s().prop_map(|path| (1, Response::Create { path })),
        (prop_oneof![Just(15), Just(19), Just(21)], s(), stat())
            .prop_map(|(op, path, stat)| (op, Response::Create2 { path, stat })),
        (prop_oneof![Just(3), Just(5), Just(7)], stat()).prop_map(|(op, st)| (op, Response::Stat(st))),
        (prop_oneof![Just(4), Just(16)], opt_bytes(), stat())
            .prop_map(|(op, data, stat)| (op, Response::GetData { data, stat })),
        (acl(), stat()).prop_map(|(acl, stat)| (6, Response::GetAcl { acl, stat })),
        strings().prop_map(|children| (8, Response::GetChildren { children })),
        (strings(), stat()).prop_map(|(children, stat)| (12, Response::GetChildren2 { children, stat })),
        s().prop_map(|path| (9, Response::Sync { path })),
        vec(multi_result(), 0..4).prop_map(|r| (14, Response::Multi(r))),
        vec(multi_result(), 0..4).prop_map(|r| (22, Response::MultiRead(r))),
        opt_bytes().prop_map(|token| (102, Response::Sasl { token })),
        strings().prop_map(|paths| (103, Response::GetEphemerals { paths })),
        any::<i32>().prop_map(|total| (104, Response::GetAllChildrenNumber { total })),
        Just((106, Response::AddWatch)),
        vec((s(), s()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }), 0..3)
            .prop_map(|v| (107, Response::WhoAmI(v))),
        prop_oneof![Just(2), Just(11), Just(-11), Just(17), Just(18), Just(100), Just(101), Just(105)]
            .prop_map(|op| (op, Response::Empty)),
    ]
}

const ALL_OPS: &[i32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103, 104, 105, 106,
    107, -10, -11, 999,
];

proptest! {
    #[test]
    fn requests_round_trip(req in request(), xid in any::<i32>()) {
        let mut out = BytesMut::new();
        encode_request_frame(&mut out, xid, &req);
        let mut r = Reader::new(frame_payload(&out));
        let h = RequestHeader::decode(&mut r).unwrap();
        prop_assert_eq!(h, RequestHeader { xid, op: req.op() });
        prop_assert_eq!(decode_request(h.op, &mut r).unwrap(), req);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn responses_round_trip((op, resp) in response(), xid in any::<i32>(), zxid in any::<i64>()) {
        let mut out = BytesMut::new();
        encode_reply(&mut out, xid, zxid, 0, Some(&resp));
        let mut r = Reader::new(frame_payload(&out));
        prop_assert_eq!(ReplyHeader::decode(&mut r).unwrap(), ReplyHeader { xid, zxid, err: 0 });
        prop_assert_eq!(Response::decode_body(op, &mut r).unwrap(), resp);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn handshake_round_trips(
        pv in any::<i32>(), z in any::<i64>(), t in any::<i32>(), sid in any::<i64>(),
        pw in bytes(), ro in proptest::option::of(any::<bool>()),
    ) {
        let req = ConnectRequest { protocol_version: pv, last_zxid_seen: z, timeout_ms: t, session_id: sid,
            passwd: pw.clone(), read_only: ro };
        let mut out = BytesMut::new();
        encode_record_frame(&mut out, &req);
        prop_assert_eq!(ConnectRequest::decode(&mut Reader::new(frame_payload(&out))).unwrap(), req);
        let resp = ConnectResponse { protocol_version: pv, timeout_ms: t, session_id: sid, passwd: pw, read_only: ro };
        let mut out = BytesMut::new();
        encode_record_frame(&mut out, &resp);
        prop_assert_eq!(ConnectResponse::decode(&mut Reader::new(frame_payload(&out))).unwrap(), resp);
    }

    #[test]
    fn watcher_events_round_trip(t in any::<i32>(), st in any::<i32>(), path in s()) {
        let ev = WatcherEvent { event_type: t, state: st, path };
        let mut out = BytesMut::new();
        ev.encode(&mut Writer::new(&mut out));
        prop_assert_eq!(WatcherEvent::decode(&mut Reader::new(out.freeze())).unwrap(), ev);
    }

    /// Every strict prefix of a valid body either decodes to something or
    /// errors; it never panics. Bodies with content must fail when cut.
    #[test]
    fn truncated_requests_error(req in request(), cut in any::<prop::sample::Index>()) {
        let mut out = BytesMut::new();
        req.encode_body(&mut Writer::new(&mut out));
        if !out.is_empty() {
            let n = cut.index(out.len());
            let res = decode_request(req.op(), &mut Reader::new(out.freeze().slice(..n)));
            match req {
                // These read an optional trailing part or nothing at all.
                Request::Ping | Request::WhoAmI | Request::CloseSession => {}
                _ => prop_assert!(res.is_err(), "prefix {} decoded: {:?}", n, res),
            }
        }
    }

    #[test]
    fn garbage_never_panics(bytes in vec(any::<u8>(), 0..96)) {
        let b = Bytes::from(bytes);
        for &op in ALL_OPS {
            let _ = decode_request(op, &mut Reader::new(b.clone()));
            let _ = Response::decode_body(op, &mut Reader::new(b.clone()));
        }
        let _ = ConnectRequest::decode(&mut Reader::new(b.clone()));
        let _ = ConnectResponse::decode(&mut Reader::new(b.clone()));
        let _ = WatcherEvent::decode(&mut Reader::new(b));
    }

    /// Garbage that looks like a multi (valid headers, random bodies).
    #[test]
    fn multi_shaped_garbage_never_panics(
        parts in vec((prop_oneof![Just(1), Just(2), Just(4), Just(5), Just(8), Just(13), Just(21), any::<i32>()],
                      vec(any::<u8>(), 0..20)), 0..5),
    ) {
        let mut out = BytesMut::new();
        for (op, body) in &parts {
            let mut w = Writer::new(&mut out);
            MultiHeader { op: *op, done: false, err: -1 }.encode(&mut w);
            out.extend_from_slice(body);
        }
        MultiHeader::END.encode(&mut Writer::new(&mut out));
        let b = out.freeze();
        let _ = decode_request(14, &mut Reader::new(b.clone()));
        let _ = decode_request(22, &mut Reader::new(b.clone()));
        let _ = Response::decode_body(14, &mut Reader::new(b));
    }
}
