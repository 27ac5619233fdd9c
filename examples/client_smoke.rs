//! Manual check: runs every client operation against a server and prints
//! what came back. `cargo run --example client_smoke -- 127.0.0.1:2181`
//! Used to verify the client (and codec) against Apache ZooKeeper.

use std::net::SocketAddr;
use std::time::Duration;

use zoocore::client::{first_error, Client, ClientError, RawConnection};
use zoocore::jute::{Reader, Record};
use zoocore::proto::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:2181".into()).parse()?;
    let open = open_acl_unsafe();
    let c = Client::connect(addr, Duration::from_secs(10))?;
    println!("session {:#x} timeout {:?} ro {:?}", c.session_id(), c.negotiated_timeout(), c.read_only());
    let events = c.events().ok_or("events taken")?;
    let root = format!("/smoke{}", std::process::id());

    println!("exists(watch) absent: {:?}", c.exists(&root, true)?);
    println!("create: {}", c.create(&root, b"hello", &open, CreateMode::Persistent)?);
    println!("event: {:?}", events.recv_timeout(Duration::from_secs(2))?);
    let (p, st) = c.create2(&format!("{root}/seq-"), b"", &open, CreateMode::PersistentSequential)?;
    println!("create2 seq: {p} {st:?}");
    println!("create container: {:?}", c.create_container(&format!("{root}/cont"), b"", &open));
    println!(
        "create ttl: {:?}",
        c.create_ttl(&format!("{root}/ttl"), b"", &open, CreateMode::PersistentWithTtl, 60_000)
    );
    println!("create ephemeral: {:?}", c.create(&format!("{root}/eph"), b"e", &open, CreateMode::Ephemeral));
    println!("get_data(watch): {:?}", c.get_data(&root, true)?);
    println!("set_data: {:?}", c.set_data(&root, b"world", -1)?);
    println!("event: {:?}", events.recv_timeout(Duration::from_secs(2))?);
    println!("set_data bad version: {:?}", c.set_data(&root, b"x", 42).err());
    println!("get_acl: {:?}", c.get_acl(&root)?);
    println!("set_acl: {:?}", c.set_acl(&root, &open, 0));
    println!("get_children(watch): {:?}", c.get_children(&root, true)?);
    println!("get_children2: {:?}", c.get_children2(&root, false)?);
    println!("all children number: {}", c.get_all_children_number(&root)?);
    println!("ephemerals: {:?}", c.get_ephemerals(&root)?);
    println!("sync: {}", c.sync(&root)?);
    println!("add_auth digest: {:?}", c.add_auth("digest", b"alice:secret"));
    println!("who_am_i: {:?}", c.who_am_i()?);
    println!("add_watch recursive: {:?}", c.add_watch(&root, add_watch_mode::PERSISTENT_RECURSIVE));
    println!("check_watches data: {:?}", c.check_watches(&root, watcher_type::DATA));
    println!("remove_watches any: {:?}", c.remove_watches(&root, watcher_type::ANY));
    println!("check_watches after remove: {:?}", c.check_watches(&root, watcher_type::DATA).err());
    println!(
        "set_watches v1: {:?}",
        c.set_watches(SetWatches { relative_zxid: 1, data: vec![root.clone()], ..Default::default() })
    );
    println!(
        "set_watches v2: {:?}",
        c.set_watches(SetWatches {
            v2: true,
            relative_zxid: c.last_zxid(),
            persistent: vec![root.clone()],
            ..Default::default()
        })
    );
    while let Ok(ev) = events.recv_timeout(Duration::from_millis(300)) {
        println!("event: {ev:?}");
    }

    let ok = c.multi(vec![
        MultiOp::Create {
            op: op::CREATE,
            req: CreateRequest {
                path: format!("{root}/m1"),
                data: Some("a".into()),
                acl: open.clone(),
                flags: 0,
                ttl: None,
            },
        },
        MultiOp::SetData(SetDataRequest { path: format!("{root}/m1"), data: None, version: 0 }),
        MultiOp::Check(PathVersion { path: format!("{root}/m1"), version: 1 }),
        MultiOp::Create {
            op: op::CREATE_CONTAINER,
            req: CreateRequest { path: format!("{root}/m2"), data: None, acl: open.clone(), flags: 4, ttl: None },
        },
        MultiOp::Delete(PathVersion { path: format!("{root}/m1"), version: -1 }),
    ])?;
    println!("multi ok: {ok:?}");
    let bad = c.multi(vec![
        MultiOp::Create {
            op: op::CREATE,
            req: CreateRequest { path: format!("{root}/m3"), data: None, acl: open.clone(), flags: 0, ttl: None },
        },
        MultiOp::Delete(PathVersion { path: format!("{root}/none"), version: -1 }),
        MultiOp::Check(PathVersion { path: root.clone(), version: 0 }),
    ])?;
    println!("multi failing: {bad:?} first_error {:?}", first_error(&bad));
    println!(
        "multi_read: {:?}",
        c.multi_read(vec![
            ReadOp::GetData(PathWatch { path: root.clone(), watch: false }),
            ReadOp::GetChildren(PathWatch { path: root.clone(), watch: false }),
            ReadOp::GetData(PathWatch { path: format!("{root}/none"), watch: false }),
        ])?
    );

    // Pipelining.
    let pend: Vec<_> = (0..200)
        .map(|_| c.submit(Request::Exists(PathWatch { path: root.clone(), watch: false })))
        .collect::<Result<_, _>>()?;
    for p in pend {
        p.wait()?;
    }
    println!("200 pipelined exists ok");

    // Raw-level checks: top-level check (13) and an undecodable body.
    for (name, op, body) in [
        ("top-level check", 13, vec![0, 0, 0, 1, b'/', 0, 0, 0, 0]),
        ("garbage getData", 4, vec![0xff, 0xff, 0]),
        ("unknown op 99", 99, vec![]),
        ("op 0", 0, vec![]),
        // multi: getData sub-op inside a write multi, then the terminator
        (
            "read inside multi",
            14,
            vec![
                0, 0, 0, 4, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'/', 0, 0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff,
                0xff, 0xff,
            ],
        ),
        (
            "bad flags inside multi",
            14,
            vec![
                0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, b'/', b'q', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0,
                0, 0, 9, 0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff,
            ],
        ),
    ] {
        let mut raw = RawConnection::connect(addr)?;
        raw.handshake(10_000)?;
        raw.set_read_timeout(Some(Duration::from_secs(3)))?;
        let mut payload = vec![0, 0, 0, 1];
        payload.extend_from_slice(&i32::to_be_bytes(op));
        payload.extend_from_slice(&body);
        raw.send_frame(&payload)?;
        let reply = raw.read_frame();
        let hdr = reply.map(|f| {
            f.map(|f| {
                let mut r = Reader::new(f);
                let h = ReplyHeader::decode(&mut r);
                let body = if op == 14 && matches!(h, Ok(ReplyHeader { err: 0, .. })) {
                    format!("{:?}", Response::decode_body(14, &mut r))
                } else {
                    String::new()
                };
                (h, body)
            })
        });
        println!("{name}: reply {hdr:?}, then closed: {}", raw.is_closed_by_peer());
    }

    // Reconnect with the session credentials, then with a wrong password.
    let (sid, pw) = (c.session_id(), c.session_password());
    let c2 = Client::reconnect(addr, sid, pw, Duration::from_secs(10))?;
    println!("reconnect ok: {:#x}; old connection closed: {}", c2.session_id(), {
        std::thread::sleep(Duration::from_millis(300));
        c.is_closed()
    });
    // Clean up through the new connection.
    for child in c2.get_children(&root, false)? {
        let _ = c2.delete(&format!("{root}/{child}"), -1);
    }
    c2.delete(&root, -1)?;
    match Client::reconnect(addr, sid, vec![1u8; 16].into(), Duration::from_secs(10)) {
        Err(ClientError::SessionExpired) => println!("wrong password -> SessionExpired"),
        other => println!("wrong password -> {:?}", other.map(|c| c.session_id())),
    }
    // Java drops the other connection of a session before checking the password.
    std::thread::sleep(Duration::from_millis(300));
    println!("connection closed by the failed reconnect: {}", c2.is_closed());
    match Client::reconnect(addr, sid, c2.session_password(), Duration::from_secs(10)) {
        Ok(c3) => c3.close()?,
        Err(e) => println!("final reconnect: {e}"),
    }
    drop(c);

    // A 3.3-style ConnectRequest without the readOnly byte.
    let mut raw = RawConnection::connect(addr)?;
    let mut out = bytes::BytesMut::new();
    let old = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 10_000,
        session_id: 0,
        passwd: vec![0u8; 16].into(),
        read_only: None,
    };
    encode_record_frame(&mut out, &old);
    raw.send(&out)?;
    let frame = raw.read_frame()?.ok_or("closed")?;
    println!(
        "old-style handshake: response payload {} bytes: {:?}",
        frame.len(),
        ConnectResponse::decode(&mut Reader::new(frame.clone()))
    );
    drop(raw);

    let mut raw = RawConnection::connect(addr)?;
    raw.send(b"ruok")?;
    println!("ruok -> {:?}", String::from_utf8_lossy(&raw.read_to_end()?));
    Ok(())
}
