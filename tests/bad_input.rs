//! Broken, hostile or odd input on the wire. After each case the server
//! must still answer `ruok` and serve a second, healthy client.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer};
use zoocore::client::{Client, RawConnection};
use zoocore::jute::{Reader, Record};
use zoocore::proto::records::*;
use zoocore::proto::types::{op, open_acl_unsafe, CreateMode, ErrorCode};

fn assert_healthy(s: &TestServer) {
    assert_eq!(s.four_letter("ruok"), "imok");
    let c = Client::connect(s.addr, Duration::from_secs(10)).expect("a healthy client connects");
    let path = format!("/healthy-{}", c.session_id());
    c.create(&path, b"ok", &open_acl_unsafe(), CreateMode::Ephemeral).unwrap();
    assert_eq!(c.get_data(&path, false).unwrap().0.as_deref(), Some(&b"ok"[..]));
}

fn session(s: &TestServer) -> RawConnection {
    let mut raw = RawConnection::connect(s.addr).unwrap();
    let resp = raw.handshake(10_000).unwrap();
    assert!(resp.timeout_ms > 0);
    raw
}

/// Header (xid, op) followed by `body`, as one frame payload.
fn request_payload(xid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&xid.to_be_bytes());
    p.extend_from_slice(&opcode.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn read_reply(raw: &mut RawConnection) -> ReplyHeader {
    let frame = raw.read_frame().expect("read").expect("a reply, not a close");
    ReplyHeader::decode(&mut Reader::new(frame)).unwrap()
}

fn assert_closed(raw: &mut RawConnection) {
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(raw.is_closed_by_peer(), "the server should have closed the connection");
}

fn jute_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

#[test]
fn garbage_before_handshake() {
    let s = TestServer::start();
    // A plausible length with nonsense inside.
    let mut raw = RawConnection::connect(s.addr).unwrap();
    raw.send(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]).unwrap();
    assert_closed(&mut raw);
    // Pure noise that is no four-letter word.
    let mut raw = RawConnection::connect(s.addr).unwrap();
    raw.send(b"\xff\xfe\xfd\xfcGET / HTTP/1.1\r\n\r\n").unwrap();
    assert_closed(&mut raw);
    assert_healthy(&s);
}

#[test]
fn truncated_connect_request_then_close() {
    let s = TestServer::start();
    let mut raw = RawConnection::connect(s.addr).unwrap();
    // Declares 44 bytes but sends 10, then hangs up.
    raw.send(&[0, 0, 0, 44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    raw.shutdown_write().unwrap();
    assert_closed(&mut raw);
    drop(raw);
    // A complete frame whose ConnectRequest is cut short.
    let mut raw = RawConnection::connect(s.addr).unwrap();
    raw.send_frame(&[0, 0, 0, 0, 0, 0]).unwrap();
    assert_closed(&mut raw);
    assert_healthy(&s);
}

#[test]
fn oversized_and_negative_frame_lengths() {
    let s = TestServer::start();
    // Before the handshake.
    let mut raw = RawConnection::connect(s.addr).unwrap();
    raw.send(&(0x7fff_fff0i32).to_be_bytes()).unwrap();
    raw.send(&[0u8; 64]).unwrap();
    assert_closed(&mut raw);
    // After the handshake: > the default jute.maxbuffer (1 MiB + slack).
    let mut raw = session(&s);
    raw.send(&(64i32 << 20).to_be_bytes()).unwrap();
    assert_closed(&mut raw);
    // Negative length.
    let mut raw = session(&s);
    raw.send(&(-5i32).to_be_bytes()).unwrap();
    assert_closed(&mut raw);
    assert_healthy(&s);
}

#[test]
fn small_jute_maxbuffer_rejects_big_set_data() {
    let s = TestServer::start_with(ServerOptions { extra_config: "jute.maxbuffer=2048".into(), ..Default::default() });
    let c = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    c.create("/big", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    // Small writes pass.
    c.set_data("/big", &[7u8; 512], -1).unwrap();
    let res = c.set_data("/big", &[7u8; 4096], -1);
    assert!(res.is_err(), "a 4 KiB setData must not succeed with jute.maxbuffer=2048");
    assert!(res.unwrap_err().code().is_none(), "the connection is closed, not answered");
    assert!(c.is_closed());
    assert_healthy(&s);
    let other = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    assert_eq!(other.get_data("/big", false).unwrap().1.data_length, 512);
}

#[test]
fn truncated_body_is_marshalling_error_and_connection_stays() {
    let s = TestServer::start();
    let mut raw = session(&s);
    // getData with a path length that runs past the frame.
    let mut body = 100i32.to_be_bytes().to_vec();
    body.extend_from_slice(b"/ab");
    raw.send_frame(&request_payload(7, op::GET_DATA, &body)).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (7, ErrorCode::MarshallingError.code()));
    // create with no body at all.
    raw.send_frame(&request_payload(8, op::CREATE, &[])).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (8, ErrorCode::MarshallingError.code()));
    // Still open and working.
    raw.send_request(9, &Request::Exists(PathWatch { path: "/".into(), watch: false })).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (9, 0));
    assert_healthy(&s);
}

#[test]
fn unknown_opcode_is_unimplemented_then_close() {
    let s = TestServer::start();
    for opcode in [999, 0, op::CHECK, op::DELETE_CONTAINER] {
        let mut raw = session(&s);
        raw.send_frame(&request_payload(3, opcode, &jute_string(b"/"))).unwrap();
        let hdr = read_reply(&mut raw);
        assert_eq!((hdr.xid, hdr.err), (3, ErrorCode::Unimplemented.code()), "opcode {opcode}");
        assert_closed(&mut raw);
    }
    assert_healthy(&s);
}

#[test]
fn invalid_paths_are_bad_arguments() {
    let s = TestServer::start();
    let c = Client::connect(s.addr, Duration::from_secs(10)).unwrap();
    c.create("/a", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap();
    for path in ["a", "/a/", "/a/.", "/a/..", "/a\0b", ""] {
        let err = c.create(path, b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BadArguments), "create {path:?}");
    }
    // ZooKeeper looks the parent ("/a/") up before validating the full path.
    let err = c.create("/a//b", b"", &open_acl_unsafe(), CreateMode::Persistent).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoNode));
    for path in ["a", "/a/", "/a//b", "/a/.", "/a\0b"] {
        assert_eq!(c.set_data(path, b"", -1).unwrap_err().code(), Some(ErrorCode::BadArguments), "setData {path:?}");
        let err = c.set_acl(path, &open_acl_unsafe(), -1).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BadArguments), "setACL {path:?}");
    }
    // Reads do not validate the path; exists rejects only NUL.
    assert_eq!(c.get_data("/a//b", false).unwrap_err().code(), Some(ErrorCode::NoNode));
    assert_eq!(c.exists("/a\0b", false).unwrap_err().code(), Some(ErrorCode::BadArguments));
    assert_eq!(c.delete("/zookeeper", -1).unwrap_err().code(), Some(ErrorCode::BadArguments));
    assert_eq!(c.delete("/", -1).unwrap_err().code(), Some(ErrorCode::BadArguments));
    // The session survived every one of them.
    c.ping().unwrap();
    assert!(c.exists("/zookeeper", false).unwrap().is_some());
    assert_healthy(&s);
}

#[test]
fn huge_vector_counts() {
    let s = TestServer::start();
    let mut raw = session(&s);
    // multi: one create whose ACL vector claims 2^31-1 entries.
    let mut body = Vec::new();
    body.extend_from_slice(&op::CREATE.to_be_bytes());
    body.push(0); // done = false
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&jute_string(b"/huge"));
    body.extend_from_slice(&(-1i32).to_be_bytes()); // null data
    body.extend_from_slice(&i32::MAX.to_be_bytes()); // acl count
    body.extend_from_slice(&[0u8; 16]);
    raw.send_frame(&request_payload(4, op::MULTI, &body)).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (4, ErrorCode::MarshallingError.code()));
    // setWatches with a huge data-watch count.
    let mut body = 0i64.to_be_bytes().to_vec();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    raw.send_frame(&request_payload(-8, op::SET_WATCHES, &body)).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (-8, ErrorCode::MarshallingError.code()));
    // A string longer than the frame.
    let mut body = i32::MAX.to_be_bytes().to_vec();
    body.push(0);
    raw.send_frame(&request_payload(5, op::EXISTS, &body)).unwrap();
    let hdr = read_reply(&mut raw);
    assert_eq!((hdr.xid, hdr.err), (5, ErrorCode::MarshallingError.code()));
    assert_healthy(&s);
}

#[test]
fn many_connections_opened_and_closed_rapidly() {
    let s = TestServer::start();
    for i in 0..200 {
        let mut raw = RawConnection::connect(s.addr).unwrap();
        match i % 4 {
            // Just connect and drop.
            0 => {}
            // Half a handshake.
            1 => raw.send(&[0, 0, 0, 44, 0, 0]).unwrap(),
            // A full handshake, then drop without closeSession.
            2 => {
                raw.handshake(4000).unwrap();
            }
            // A four-letter word.
            _ => {
                raw.send(b"ruok").unwrap();
                assert_eq!(raw.read_to_end().unwrap(), b"imok");
            }
        }
    }
    assert_healthy(&s);
    // The dropped sessions are still counted until they expire; the server
    // keeps track of them without trouble.
    assert!(s.four_letter("srvr").contains("Zookeeper version"));
}
