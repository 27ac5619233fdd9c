//! Client tests against a scripted fake server on a loopback socket.

use super::*;
use crate::proto::types::open_acl_unsafe;
use std::net::TcpListener;

/// Accepts one connection, answers the handshake with `timeout_ms`, then
/// hands each decoded request to `serve`, which writes whatever frames it
/// likes.
fn fake_server(
    timeout_ms: i32,
    mut serve: impl FnMut(RequestHeader, Request, &mut BytesMut) + Send + 'static,
) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let frame = read_frame(&mut s, 1 << 20).unwrap();
        let req = ConnectRequest::decode(&mut Reader::new(frame)).unwrap();
        let mut out = BytesMut::new();
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms,
            session_id: if timeout_ms > 0 { 0x1234 } else { 0 },
            passwd: Bytes::from(vec![7u8; 16]),
            // Echoes the flag: a test sees what the client asked for.
            read_only: req.read_only,
        };
        encode_record_frame(&mut out, &resp);
        s.write_all(&out).unwrap();
        loop {
            let Ok(frame) = read_frame(&mut s, 1 << 20) else {
                return;
            };
            let mut r = Reader::new(frame);
            let hdr = RequestHeader::decode(&mut r).unwrap();
            let req = decode_request(hdr.op, &mut r).unwrap();
            let closing = matches!(req, Request::CloseSession);
            let mut out = BytesMut::new();
            serve(hdr, req, &mut out);
            if s.write_all(&out).is_err() || closing {
                return;
            }
        }
    });
    (addr, h)
}

#[test]
fn connect_read_only_asks_for_a_read_only_session() {
    let (addr, h) = fake_server(6000, |hdr, _, out| encode_reply(out, hdr.xid, 1, 0, Some(&Response::Empty)));
    let c = Client::connect_read_only(addr, Duration::from_secs(6)).unwrap();
    assert_eq!(c.read_only(), Some(true));
    c.close().unwrap();
    h.join().unwrap();
}

#[test]
fn handshake_and_simple_calls() {
    let (addr, h) = fake_server(6000, |hdr, req, out| match req {
        Request::Create { req, .. } => encode_reply(out, hdr.xid, 10, 0, Some(&Response::Create { path: req.path })),
        Request::Exists(_) => encode_reply(out, hdr.xid, 10, -101, None),
        Request::GetData(_) => encode_reply(
            out,
            hdr.xid,
            11,
            0,
            Some(&Response::GetData { data: Some(Bytes::from_static(b"v")), stat: Stat::default() }),
        ),
        _ => encode_reply(out, hdr.xid, 11, 0, Some(&Response::Empty)),
    });
    let c = Client::connect(addr, Duration::from_secs(6)).unwrap();
    assert_eq!(c.session_id(), 0x1234);
    assert_eq!(c.negotiated_timeout(), Duration::from_secs(6));
    assert_eq!(c.session_password().len(), 16);
    assert_eq!(c.read_only(), Some(false));
    assert_eq!(c.create("/a", b"x", &open_acl_unsafe(), CreateMode::Persistent).unwrap(), "/a");
    assert_eq!(c.exists("/nope", true).unwrap(), None);
    assert_eq!(c.get_data("/a", false).unwrap().0.as_deref(), Some(&b"v"[..]));
    assert_eq!(c.last_zxid(), 11);
    c.close().unwrap();
    h.join().unwrap();
}

#[test]
fn expired_session_is_reported() {
    let (addr, h) = fake_server(0, |_, _, _| {});
    let err = Client::reconnect(addr, 99, Bytes::from(vec![0u8; 16]), Duration::from_secs(5)).err();
    assert!(matches!(err, Some(ClientError::SessionExpired)), "{err:?}");
    h.join().unwrap();
}

#[test]
fn pipelined_replies_match_in_order_and_events_interleave() {
    let (addr, h) = fake_server(6000, |hdr, req, out| {
        if let Request::Sync { path } = req {
            // An event ahead of every reply, as the server orders them.
            encode_notification(hdr.xid as i64, 3, &path, out);
            encode_reply(out, hdr.xid, hdr.xid as i64, 0, Some(&Response::Sync { path }));
        } else {
            encode_reply(out, hdr.xid, 0, 0, Some(&Response::Empty));
        }
    });
    let c = Client::connect(addr, Duration::from_secs(6)).unwrap();
    let events = c.events().unwrap();
    assert!(c.events().is_none());
    let pending: Vec<_> = (0..100).map(|i| (i, c.submit(Request::Sync { path: format!("/p{i}") }).unwrap())).collect();
    for (i, p) in pending {
        let (hdr, resp) = p.wait_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(resp, Response::Sync { path: format!("/p{i}") });
        assert_eq!(hdr.err, 0);
    }
    for i in 0..100 {
        let ev = events.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(ev.path, format!("/p{i}"));
        assert_eq!(ev.kind(), Some(EventType::NodeDataChanged));
    }
    c.close().unwrap();
    h.join().unwrap();
}

#[test]
fn xid_mismatch_is_a_protocol_error_and_closes() {
    let (addr, h) = fake_server(6000, |hdr, _, out| encode_reply(out, hdr.xid + 5, 0, 0, None));
    let c = Client::connect(addr, Duration::from_secs(6)).unwrap();
    let err = c.submit(Request::Sync { path: "/".into() }).unwrap().wait().err();
    assert!(matches!(err, Some(ClientError::Protocol(_))), "{err:?}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(c.is_closed());
    assert!(matches!(c.submit(Request::Ping).err(), Some(ClientError::ConnectionClosed)));
    drop(c);
    h.join().unwrap();
}

#[test]
fn server_close_fails_pending_requests() {
    let (addr, h) = fake_server(6000, |_, _, _| {});
    let c = Client::connect(addr, Duration::from_secs(6)).unwrap();
    let p = c.submit(Request::CloseSession).unwrap(); // fake server exits without replying
    assert!(matches!(p.wait_timeout(Duration::from_secs(5)), Err(ClientError::ConnectionClosed)));
    h.join().unwrap();
}

#[test]
fn pings_when_idle() {
    let (tx, rx) = mpsc::channel();
    let (addr, h) = fake_server(300, move |hdr, req, out| {
        if matches!(req, Request::Ping) {
            let _ = tx.send(hdr.xid);
        }
        encode_reply(out, hdr.xid, 0, 0, None);
    });
    let c = Client::connect(addr, Duration::from_millis(300)).unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap(), xid::PING);
    c.close().unwrap();
    h.join().unwrap();
}
