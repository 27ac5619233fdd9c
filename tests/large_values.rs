//! Values up to jute.maxbuffer over TCP with the project's client, on a
//! server run with `jute.maxbuffer=16777216` (as Pulsar and others do):
//! 10 MiB values round trip through create, setData, getData and multi; a
//! request over the limit closes the connection (as Apache's server does:
//! "Len error" on the length prefix) and leaves the node as it was; and
//! many large writes to one node do not grow the server's RSS without
//! bound.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{ServerOptions, TestServer};
use zoocore::client::Client;
use zoocore::proto::records::{CreateRequest, MultiOp, SetDataRequest};
use zoocore::proto::types::{op, open_acl_unsafe, CreateMode};

const T: Duration = Duration::from_secs(30);
const MAX_BUFFER: usize = 16 << 20;
const TEN_MIB: usize = 10 << 20;

fn start() -> TestServer {
    TestServer::start_with(ServerOptions {
        extra_config: format!("jute.maxbuffer={MAX_BUFFER}\n"),
        ..ServerOptions::default()
    })
}

/// A value whose every 4 KiB page differs, so a misplaced copy shows.
fn value(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 4096) as u8 ^ (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn ten_mib_values_round_trip() {
    let server = start();
    let c = Client::connect(server.addr, T).expect("connect");
    let acl = open_acl_unsafe();

    let first = value(1, TEN_MIB);
    c.create("/big", &first, &acl, CreateMode::Persistent).expect("create 10 MiB");
    let (data, stat) = c.get_data("/big", false).expect("get");
    assert_eq!(stat.data_length as usize, TEN_MIB);
    assert!(data.as_deref() == Some(&first[..]), "create's value came back changed");

    let second = value(2, TEN_MIB);
    let stat = c.set_data("/big", &second, 0).expect("setData 10 MiB");
    assert_eq!((stat.version, stat.data_length as usize), (1, TEN_MIB));
    let (data, _) = c.get_data("/big", false).expect("get");
    assert!(data.as_deref() == Some(&second[..]), "setData's value came back changed");

    // A multi carrying two 10 MiB values (a 20 MiB frame would be over the
    // limit, so one each side of the limit: 10 MiB create + 5 MiB setData).
    let third = value(3, TEN_MIB);
    let fourth = value(4, TEN_MIB / 2);
    c.multi(vec![
        MultiOp::Create {
            op: op::CREATE,
            req: CreateRequest {
                path: "/big-multi".into(),
                data: Some(Bytes::from(third.clone())),
                acl: acl.clone(),
                flags: 0,
                ttl: None,
            },
        },
        MultiOp::SetData(SetDataRequest { path: "/big".into(), data: Some(Bytes::from(fourth.clone())), version: 1 }),
    ])
    .expect("multi with large values");
    let (data, _) = c.get_data("/big-multi", false).expect("get");
    assert!(data.as_deref() == Some(&third[..]), "multi create's value came back changed");
    let (data, stat) = c.get_data("/big", false).expect("get");
    assert!(data.as_deref() == Some(&fourth[..]), "multi setData's value came back changed");
    assert_eq!(stat.version, 2);

    // A second session reads them too (another connection, maybe another shard).
    let other = Client::connect(server.addr, T).expect("connect");
    let (data, _) = other.get_data("/big-multi", false).expect("get");
    assert_eq!(data.map(|d| d.len()), Some(TEN_MIB));
}

#[test]
fn a_request_over_jute_maxbuffer_closes_the_connection() {
    let server = start();
    let acl = open_acl_unsafe();
    let c = Client::connect(server.addr, T).expect("connect");
    c.create("/n", b"small", &acl, CreateMode::Persistent).expect("create");
    // The setData frame (header, path, value, version) is over the limit.
    let err = c.set_data("/n", &value(5, MAX_BUFFER), -1).expect_err("a frame over jute.maxbuffer must fail");
    assert!(err.code().is_none(), "Apache closes the connection, it sends no error code: {err}");
    // The server is still serving, and the node was not changed.
    let fresh = Client::connect(server.addr, T).expect("connect after the refusal");
    let (data, stat) = fresh.get_data("/n", false).expect("get");
    assert_eq!((data.as_deref(), stat.version), (Some(&b"small"[..]), 0));
    // Just under the limit is fine.
    let under = MAX_BUFFER - 1024;
    fresh.set_data("/n", &value(6, under), -1).expect("a value just under the limit");
    assert_eq!(fresh.get_data("/n", false).expect("get").1.data_length as usize, under);
}

#[test]
fn many_large_writes_keep_rss_bounded() {
    let server = start();
    let acl = open_acl_unsafe();
    let c = Client::connect(server.addr, T).expect("connect");
    c.create("/churn", b"", &acl, CreateMode::Persistent).expect("create");
    let values = [value(7, TEN_MIB), value(8, TEN_MIB)];
    let mut warm = 0;
    for i in 0..200 {
        c.set_data("/churn", &values[i % 2], -1).expect("setData 10 MiB");
        if i == 19 {
            warm = rss_kib(server.pid());
        }
    }
    let after = rss_kib(server.pid());
    // 180 more writes of 10 MiB (1.8 GB through the server): the RSS may
    // move by a few values' worth (buffers, the allocator), not by the
    // writes' sum.
    assert!(after <= warm + 80 * 1024, "RSS grew from {warm} KiB to {after} KiB over 180 x 10 MiB setData");
    let (data, stat) = c.get_data("/churn", false).expect("get");
    assert_eq!(stat.version, 200);
    assert!(data.as_deref() == Some(&values[1][..]));
}

/// Large frames are read into an allocation of their own (from 256 KiB):
/// pipelined with small ones in one stream and cut at awkward places, every
/// request is answered in order and every value arrives whole.
#[test]
fn large_and_small_frames_pipelined_in_odd_pieces_arrive_whole_and_in_order() {
    use zoocore::client::RawConnection;
    use zoocore::jute::{Reader, Record};
    use zoocore::proto::records::{encode_request_frame, PathWatch, ReplyHeader, Request};

    let server = start();
    let c = Client::connect(server.addr, T).expect("connect");
    c.create("/pipe", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");

    let mut raw = RawConnection::connect(server.addr).expect("raw connect");
    raw.handshake(10_000).expect("handshake");
    let sizes = [256 << 10, 100, (256 << 10) - 8, 3 << 20, 0, 1 << 20];
    let mut stream = bytes::BytesMut::new();
    let mut xid = 1;
    for (i, &size) in sizes.iter().enumerate() {
        let set = SetDataRequest { path: "/pipe".into(), data: Some(Bytes::from(value(i as u8, size))), version: -1 };
        encode_request_frame(&mut stream, xid, &Request::SetData(set));
        xid += 1;
        encode_request_frame(&mut stream, xid, &Request::GetData(PathWatch { path: "/pipe".into(), watch: false }));
        xid += 1;
    }
    // Pieces of 1, 3, 7 ... bytes and larger, so prefixes and bodies are cut
    // everywhere; flushed with pauses so the server reads them apart.
    let mut rest = &stream[..];
    let mut piece = 1usize;
    while !rest.is_empty() {
        let n = piece.min(rest.len());
        raw.send(&rest[..n]).expect("send");
        rest = &rest[n..];
        piece = if piece > 200_000 { 1 } else { piece * 7 + 3 };
        std::thread::sleep(Duration::from_millis(1));
    }
    raw.set_read_timeout(Some(T)).expect("timeout");
    let mut expected_xid = 1;
    for (i, &size) in sizes.iter().enumerate() {
        let frame = raw.read_frame().expect("read").expect("a setData reply");
        let header = ReplyHeader::decode(&mut Reader::new(frame)).expect("reply header");
        assert_eq!((header.xid, header.err), (expected_xid, 0), "setData #{i} of {size} bytes");
        let frame = raw.read_frame().expect("read").expect("a getData reply");
        let mut r = Reader::new(frame).with_max_field_len(MAX_BUFFER);
        let header = ReplyHeader::decode(&mut r).expect("reply header");
        assert_eq!((header.xid, header.err), (expected_xid + 1, 0), "getData after #{i}");
        let got = r.read_buffer().expect("getData's value").unwrap_or_default();
        let want = value(i as u8, size);
        assert!(got[..] == want[..], "value #{i} of {size} bytes came back changed");
        expected_xid += 2;
    }
}

/// A client that announces a large frame and sends little of it costs the
/// server what it sent, not the announced size: twenty connections that
/// each announce 15 MiB and send 100 KiB (and some of the large frames
/// done before, so the allocator holds freed large chunks) grow the RSS by
/// far less than 20 x 15 MiB; the server goes on serving.
#[test]
fn announced_but_unsent_large_frames_cost_what_was_sent() {
    use zoocore::client::RawConnection;
    let server = start();
    let c = Client::connect(server.addr, T).expect("connect");
    c.create("/warm", b"", &open_acl_unsafe(), CreateMode::Persistent).expect("create");
    for i in 0..3 {
        c.set_data("/warm", &value(i, 15 << 20), -1).expect("a large write");
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(server.pid());
    let announced: usize = 15 << 20;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut raw = RawConnection::connect(server.addr).expect("raw connect");
        raw.handshake(10_000).expect("handshake");
        raw.send(&(announced as i32).to_be_bytes()).expect("prefix");
        raw.send(&vec![0u8; 100 << 10]).expect("a little of the body");
        stalled.push(raw);
    }
    std::thread::sleep(Duration::from_millis(1000));
    let grown_kib = rss_kib(server.pid()).saturating_sub(before);
    let limit_kib = (20 * announced / 1024) as u64 / 5;
    assert!(grown_kib < limit_kib, "RSS grew {grown_kib} KiB for 20 stalled large frames (limit {limit_kib} KiB)");
    let (data, _) = c.get_data("/warm", false).expect("still serving");
    assert_eq!(data.map(|d| d.len()), Some(15 << 20));
    drop(stalled);
}
