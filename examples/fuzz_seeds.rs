//! Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*)
//! with zoocore's own encoders, so each target starts from valid inputs:
//!
//!     cargo run --release --example fuzz_seeds -- fuzz/corpus
//!
//! Inputs the fuzzers found are kept beside them as found-* files (see
//! docs/fuzzing.md); this program never touches those. The input layouts
//! (selector bytes, `ff ff` separators, u16-length pieces) are the ones the
//! targets in fuzz/fuzz_targets/ document.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use zoocore::jute::{Record, Writer};
use zoocore::proto::*;
use zoocore::storage::apache::snapshot::{write_snap_stream, write_snapshot_file, SnapshotLayout};
use zoocore::storage::apache::txn_log::{encode_txn_entry, TXN_LOG_DBID, TXN_LOG_MAGIC};
use zoocore::storage::apache::{FileHeader, FILE_FORMAT_VERSION};
use zoocore::storage::log_format::{encode_batch_to_vec, encode_file_header, MIN_BLOCK_SIZE};
use zoocore::storage::snapshot_format::write_snapshot;
use zoocore::storage::txn::{LoggedTxn, Txn, TxnDigest, TxnHeader};
use zoocore::tree::{DataTree, StoredStat};
use zoocore::zab::election_wire::{
    encode_preamble, quorum_config_text, HostPort, LearnerType, Notification, PeerState, Preamble, PreambleVersion,
    QuorumServerSpec,
};
use zoocore::zab::packets::{ForwardedRequest, LearnerInfo, QuorumPacket, ToLeader, ToLearner};

const SEP: [u8; 2] = [0xff, 0xff];

fn record<R: Record>(r: &R) -> Vec<u8> {
    let mut out = BytesMut::new();
    r.encode(&mut Writer::new(&mut out));
    out.to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn requests() -> Vec<(i32, Request)> {
    let acl = vec![Acl { perms: perms::ALL, id: Id::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=") }];
    let create = |op, flags, ttl| Request::Create {
        op,
        req: CreateRequest {
            path: "/app/n".into(),
            data: Some(Bytes::from_static(b"v")),
            acl: open_acl_unsafe(),
            flags,
            ttl,
        },
    };
    let pw = |path: &str| PathWatch { path: path.into(), watch: true };
    let pv = |path: &str| PathVersion { path: path.into(), version: 3 };
    vec![
        (1, create(op::CREATE, 0, None)),
        (2, create(op::CREATE2, 3, None)),
        (3, create(op::CREATE_CONTAINER, 4, None)),
        (4, create(op::CREATE_TTL, 5, Some(60_000))),
        (5, Request::Delete(pv("/app"))),
        (6, Request::Exists(pw("/app"))),
        (7, Request::GetData(pw("/app"))),
        (8, Request::SetData(SetDataRequest { path: "/app".into(), data: None, version: -1 })),
        (9, Request::GetAcl { path: "/app".into() }),
        (10, Request::SetAcl(SetAclRequest { path: "/app".into(), acl: acl.clone(), version: 0 })),
        (11, Request::GetChildren(pw("/"))),
        (12, Request::GetChildren2(pw("/app"))),
        (13, Request::Sync { path: "/".into() }),
        (xid::PING, Request::Ping),
        (
            14,
            Request::Multi(vec![
                MultiOp::Create {
                    op: op::CREATE,
                    req: CreateRequest { path: "/m".into(), data: None, acl, flags: 0, ttl: None },
                },
                MultiOp::SetData(SetDataRequest {
                    path: "/m".into(),
                    data: Some(Bytes::from_static(b"x")),
                    version: 0,
                }),
                MultiOp::Check(pv("/m")),
                MultiOp::Delete(pv("/m")),
            ]),
        ),
        (15, Request::MultiRead(vec![ReadOp::GetData(pw("/a")), ReadOp::GetChildren(pw("/b"))])),
        (
            16,
            Request::Reconfig(ReconfigRequest {
                joining_servers: Some("server.4=127.0.0.1:2888:3888;2181".into()),
                leaving_servers: None,
                new_members: None,
                cur_config_id: -1,
            }),
        ),
        (17, Request::CheckWatches { path: "/app".into(), watcher_type: 3 }),
        (18, Request::RemoveWatches { path: "/app".into(), watcher_type: 1 }),
        (
            xid::AUTH,
            Request::Auth(AuthPacket { auth_type: 0, scheme: "digest".into(), auth: Bytes::from_static(b"alice:pw") }),
        ),
        (
            xid::SET_WATCHES,
            Request::SetWatches(SetWatches {
                v2: true,
                relative_zxid: 0x1_0000_0002,
                data: vec!["/a".into()],
                exist: vec!["/b".into()],
                child: vec!["/".into()],
                persistent: vec!["/p".into()],
                persistent_recursive: vec!["/r".into()],
            }),
        ),
        (
            xid::SET_WATCHES,
            Request::SetWatches(SetWatches {
                v2: false,
                relative_zxid: 5,
                data: vec!["/a".into()],
                ..Default::default()
            }),
        ),
        (19, Request::Sasl { token: Bytes::from_static(b"charset=utf-8,username=\"bob\"") }),
        (20, Request::GetEphemerals { prefix: "/app".into() }),
        (21, Request::GetAllChildrenNumber { path: "/".into() }),
        (22, Request::AddWatch { path: "/app".into(), mode: 1 }),
        (23, Request::WhoAmI),
        (24, Request::CloseSession),
    ]
}

fn request_body(xid: i32, req: &Request) -> Vec<u8> {
    let mut out = BytesMut::new();
    req.encode(xid, &mut Writer::new(&mut out));
    out.to_vec()
}

fn connect(read_only: Option<bool>, session_id: i64) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id,
        passwd: Bytes::from(vec![0u8; 16]),
        read_only,
    }
}

fn client_stream() -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_record_frame(&mut out, &connect(Some(false), 0));
    for (xid, req) in requests().iter().take(8) {
        encode_request_frame(&mut out, *xid, req);
    }
    out.to_vec()
}

fn txns() -> Vec<Vec<u8>> {
    let header = |zxid, op| TxnHeader { session_id: 0x1234, cxid: 7, zxid, time_ms: 1_700_000_000_000, op };
    let digest = Some(TxnDigest { version: 2, tree_digest: 0x0102_0304 });
    let list = vec![
        (header(1, -10), Txn::CreateSession { timeout_ms: 30_000 }, None),
        (
            header(2, 1),
            Txn::Create {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                acl: open_acl_unsafe(),
                ephemeral: false,
                parent_cversion: 1,
            },
            digest,
        ),
        (header(3, 5), Txn::SetData { path: "/a".into(), data: None, version: 1 }, digest),
        (header(4, 7), Txn::SetAcl { path: "/a".into(), acl: read_acl_unsafe(), version: 1 }, None),
        (
            header(5, 14),
            Txn::Multi(vec![
                (13, Txn::Check { path: "/a".into(), version: 1 }),
                (2, Txn::Delete { path: "/a".into() }),
                (-1, Txn::Error { err: -101 }),
            ]),
            digest,
        ),
        (
            header(6, 21),
            Txn::CreateTtl { path: "/t".into(), data: None, acl: open_acl_unsafe(), parent_cversion: 2, ttl_ms: 5_000 },
            None,
        ),
        (header(7, -11), Txn::CloseSession { paths_to_delete: Some(vec!["/e".into()]) }, digest),
    ];
    list.into_iter().map(|(header, txn, digest)| LoggedTxn { header, txn, digest }.to_bytes().to_vec()).collect()
}

fn stat(zxid: i64, owner: i64) -> StoredStat {
    StoredStat {
        czxid: zxid,
        mzxid: zxid,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_000_000,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: owner,
        pzxid: zxid,
    }
}

fn sample_tree() -> (DataTree, BTreeMap<i64, i32>) {
    let mut tree = DataTree::new();
    let digest = vec![Acl { perms: perms::ALL, id: Id::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=") }];
    assert!(tree.restore_node("/a", Some(Bytes::from_static(b"x")), &open_acl_unsafe(), stat(3, 0)));
    assert!(tree.restore_node("/a/null", None, &digest, stat(4, 0)));
    assert!(tree.restore_node("/a/eph", Some(Bytes::from_static(&[0, 255])), &read_acl_unsafe(), stat(5, 0x1234)));
    assert!(tree.restore_node("/c", None, &open_acl_unsafe(), stat(6, i64::MIN)));
    tree.set_last_zxid(6);
    (tree, BTreeMap::from([(0x1234, 30_000)]))
}

fn election_seeds() -> Vec<Vec<u8>> {
    let servers: Vec<QuorumServerSpec> = (1..=3)
        .map(|sid| QuorumServerSpec {
            sid,
            addresses: vec![("127.0.0.1".into(), 2887 + sid as u16, 3887 + sid as u16)],
            learner_type: LearnerType::Participant,
            client_address: Some(HostPort::new("127.0.0.1", 2180 + sid as u16)),
        })
        .collect();
    let config = Bytes::from(quorum_config_text(&servers, 0x1_0000_0000));
    let n = |version, config: Option<Bytes>| Notification {
        state: PeerState::from_wire(0).expect("LOOKING"),
        leader: 3,
        zxid: 0x1_0000_0007,
        election_epoch: 2,
        peer_epoch: 1,
        version,
        config,
    };
    let mut seeds = Vec::new();
    for (version, addresses) in [
        (PreambleVersion::V2, vec![HostPort::new("127.0.0.1", 3888), HostPort::new("::1", 3889)]),
        (PreambleVersion::V1, vec![HostPort::new("zk1", 3888)]),
        (PreambleVersion::LegacyBareSid, vec![]),
    ] {
        let mut out = BytesMut::new();
        encode_preamble(&Preamble { version, sid: 2, election_addresses: addresses }, &mut out).expect("preamble");
        n(2, Some(config.clone())).encode_frame(&mut out).expect("notification");
        n(0, None).encode_frame(&mut out).expect("legacy notification");
        seeds.push(out.to_vec());
    }
    seeds
}

fn quorum_stream() -> Vec<Vec<u8>> {
    let txn = Bytes::from(txns()[1].clone());
    let info = LearnerInfo { sid: 2, protocol_version: 0x10000, config_version: Some(0x1_0000_0000) };
    let learner = [
        ToLeader::FollowerInfo { accepted_epoch: 1 << 32, info },
        ToLeader::AckEpoch { last_logged_zxid: 0x1_0000_0003, current_epoch: 1 },
        ToLeader::Ack { zxid: 0x2_0000_0000 },
        ToLeader::Request(ForwardedRequest {
            session_id: 0x1234,
            cxid: 4,
            op_type: op::CREATE,
            body: Bytes::from(request_body(1, &requests()[0].1)[8..].to_vec()),
            authinfo: vec![Id::anyone()],
        }),
        ToLeader::Revalidate { session_id: 0x1234, timeout_ms: 30_000 },
    ];
    let leader = [
        ToLearner::LeaderInfo { new_epoch: 2, protocol_version: 0x10000 },
        ToLearner::Diff { zxid: 0x1_0000_0003 },
        ToLearner::Proposal { zxid: 0x1_0000_0002, txn: txn.clone() },
        ToLearner::Commit { zxid: 0x1_0000_0002 },
        ToLearner::NewLeader { zxid: 2 << 32, config: None },
        ToLearner::UpToDate,
        ToLearner::Inform { zxid: 0x1_0000_0002, txn },
        ToLearner::Ping { zxid: 0x2_0000_0000 },
    ];
    let encode = |packets: Vec<QuorumPacket>| {
        let mut out = BytesMut::new();
        for p in packets {
            p.encode(&mut out);
        }
        out.to_vec()
    };
    let (tree, sessions) = sample_tree();
    let mut snap = encode(vec![ToLearner::Snap { zxid: 6 }.to_packet()]);
    write_snap_stream(&mut snap, &tree, &sessions).expect("snap stream");
    snap.extend_from_slice(&encode(vec![ToLearner::UpToDate.to_packet()]));
    vec![
        encode(learner.iter().map(|m| m.to_packet()).collect()),
        encode(leader.iter().map(|m| m.to_packet()).collect()),
        cat(&[&[5, 11], &SEP, &snap]),
    ]
}

/// A learner's whole quorum SASL exchange with a server, both directions'
/// packets in one stream each, and an ERROR.
fn quorum_auth_packets() -> Vec<Vec<u8>> {
    use zoocore::sasl::quorum::{
        LearnerExchange, LearnerLogin, LearnerStep, QuorumAuthPacket, ServerExchange, ServerStep, Status,
    };
    let users = zoocore::sasl::Credentials::new([("zk".to_owned(), "zk-secret".to_owned())].into(), None);
    let login = LearnerLogin { username: "zk".into(), password: "zk-secret".into() };
    let (mut learner, first) = LearnerExchange::start(login, &[0x33; 16]);
    let mut server = ServerExchange::new(&[0x5a; 24]);
    let (mut to_server, mut to_learner) = (first.clone(), Vec::new());
    let mut next = first;
    loop {
        let (packet, _) = QuorumAuthPacket::decode(&next).ok().flatten().expect("own packet");
        let reply = match server.on_packet(&packet, &users) {
            ServerStep::Continue { reply }
            | ServerStep::Authenticated { reply, .. }
            | ServerStep::Failed { reply, .. } => reply,
        };
        to_learner.extend_from_slice(&reply);
        let (packet, _) = QuorumAuthPacket::decode(&reply).ok().flatten().expect("own packet");
        match learner.on_packet(&packet) {
            Ok(LearnerStep::Send(bytes)) => {
                to_server.extend_from_slice(&bytes);
                next = bytes;
            }
            _ => break,
        }
    }
    vec![to_server, to_learner, QuorumAuthPacket::new(Status::Error, None).encode()]
}

fn main() -> std::io::Result<()> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    let root = Path::new(&root);
    let mut seeds: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();

    let stream = client_stream();
    seeds.insert("client_frames", vec![cat(&[&[2, 9, 0], &SEP, &stream]), stream.clone(), cat(&[&SEP, &stream[..20]])]);
    seeds.insert(
        "connect_request",
        vec![
            record(&connect(Some(false), 0)),
            record(&connect(None, 0x1234)),
            record(&connect(Some(true), 0x1234)),
            record(&ConnectResponse {
                protocol_version: 0,
                timeout_ms: 30_000,
                session_id: 7,
                passwd: Bytes::from(vec![1u8; 16]),
                read_only: Some(false),
            }),
        ],
    );
    seeds.insert("request", requests().iter().map(|(xid, req)| request_body(*xid, req)).collect());
    seeds.insert(
        "four_letter_words",
        vec![
            cat(&[b"srvr, ruok", &SEP, b"ruok"]),
            cat(&[b"*", &SEP, b"isro"]),
            cat(&[b"stat,gtmk", &SEP, b"gtmk"]),
            cat(&[b"", &SEP, b"stmk\x00\x00\x00\x08"]),
            cat(&[b"ruok", &SEP, &stream[..24]]),
        ],
    );
    seeds.insert(
        "jaas",
        vec![
            b"Server {\n    org.apache.zookeeper.server.auth.DigestLoginModule required\n    user_super=\"super_secret\"\n    user_jaasuser=\"jaas_password\";\n};".to_vec(),
            b"// comment\nClient { a.B optional username=\"u\" password=p; };\n/* block */ Server {\n x.Y REQUIRED user_a=\"q\\\"uote\"; z.W sufficient; };\n".to_vec(),
            b"Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true keyTab=\"/k\" principal=\"zookeeper/127.0.0.1@KAZOOTEST.ORG\";\n};".to_vec(),
        ],
    );
    seeds.insert(
        "sasl_digest_md5",
        vec![
            b"charset=utf-8,username=\"alice\",realm=\"zk-sasl-md5\",nonce=\"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpa\",nc=00000001,cnonce=\"Y25vbmNl\",digest-uri=\"zookeeper/zk-sasl-md5\",maxbuf=65536,response=ac4b27358d9ecea52072334721778c07,qop=auth".to_vec(),
            b" , username=\"b\\\"ob\" ,,realm=zk-sasl-md5, nonce=\"x\",cnonce=\"y\",nc=00000002,qop=auth-conf,digest-uri=\"imap/x\",response=00000000000000000000000000000000,authzid=\"z\"".to_vec(),
        ],
    );
    seeds.insert("quorum_auth_packet", quorum_auth_packets());
    seeds.insert(
        "zoo_cfg",
        vec![
            b"tickTime=2000\ndataDir=/var/lib/zookeeper\nclientPort=2181\n".to_vec(),
            cat(&[
                b"2",
                &SEP,
                b"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/zk\nclientPort=2181\n\
                  server.1=zk1:2888:3888\nserver.2=zk2:2888:3888;2182\nserver.3=[::1]:2889:3889:observer;127.0.0.1:2183\n\
                  4lw.commands.whitelist=stat, ruok\nreadonlymode.enabled=true\n",
            ]),
            b"clientPort 2181\ndataDir: /d\nzookeeper.jute.maxbuffer=0x400000\nsnapCount=1000\n\
              admin.enableServer=true\nadmin.serverPort=8080\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n\
              autopurge.purgeInterval=1\nDigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=\n"
                .to_vec(),
            b"secureClientPort=2281\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
              ssl.keyStore.location=/k.pem\nssl.keyStore.type=PEM\nssl.clientAuth=want\nclient.portUnification=true\ndataDir=/d\n"
                .to_vec(),
        ],
    );
    let txns = txns();
    seeds.insert("txn", txns.clone());

    let txn_refs: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
    let records: Vec<(i64, &[u8])> = txn_refs.iter().enumerate().map(|(i, t)| (i as i64 + 1, *t)).collect();
    let mut log = encode_file_header(MIN_BLOCK_SIZE, 1);
    log.extend_from_slice(&encode_batch_to_vec(&records[..3], MIN_BLOCK_SIZE).expect("batch"));
    log.extend_from_slice(&encode_batch_to_vec(&records[3..], MIN_BLOCK_SIZE).expect("batch"));
    let torn = log[..log.len() - 100].to_vec();
    seeds.insert(
        "zoocore_log",
        vec![cat(&[&[0], &log]), cat(&[&[0], &torn]), cat(&[&[1], &zoocore_fuzz_pieces(&txn_refs)])],
    );

    let (tree, sessions) = sample_tree();
    let session_list: Vec<(i64, i32)> = sessions.iter().map(|(&id, &t)| (id, t)).collect();
    let mut snapshot = Vec::new();
    write_snapshot(&mut snapshot, 6, &session_list, &tree)?;
    let body = snapshot[..snapshot.len() - 16].to_vec();
    let mut empty = Vec::new();
    write_snapshot(&mut empty, 0, &[], &DataTree::new())?;
    seeds.insert("zoocore_snapshot", vec![cat(&[&[0], &snapshot]), cat(&[&[1], &body]), cat(&[&[0], &empty])]);

    let header = FileHeader { magic: TXN_LOG_MAGIC, version: FILE_FORMAT_VERSION, dbid: TXN_LOG_DBID };
    let mut apache_log = BytesMut::new();
    apache_log.extend_from_slice(&header.encode());
    for t in &txns {
        encode_txn_entry(t, &mut apache_log).expect("entry");
    }
    let mut padded = apache_log.to_vec();
    padded.extend_from_slice(&[0u8; 64]);
    seeds.insert(
        "apache_txn_log",
        vec![cat(&[&[0], &apache_log]), cat(&[&[0], &padded]), cat(&[&[1], &zoocore_fuzz_pieces(&txn_refs)])],
    );

    let mut apache_seeds = Vec::new();
    for layout in [SnapshotLayout::V34, SnapshotLayout::V36, SnapshotLayout::V39] {
        let mut file = vec![0u8];
        write_snapshot_file(&mut file, &tree, &sessions, layout)?;
        apache_seeds.push(file);
    }
    let mut stream = vec![1u8, 4, 17, 0xff, 0xff];
    write_snap_stream(&mut stream, &tree, &sessions)?;
    apache_seeds.push(stream);
    let mut gz = vec![2u8];
    {
        use std::io::Write;
        let mut plain = Vec::new();
        write_snapshot_file(&mut plain, &tree, &sessions, SnapshotLayout::V39)?;
        let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
        enc.write_all(&plain)?;
        enc.finish()?;
        // snappy-java: magic, version 1, compatible 1, one chunk.
        let block = snap::raw::Encoder::new().compress_vec(&plain).expect("snappy");
        let mut sn = vec![3u8];
        sn.extend_from_slice(&zoocore::storage::apache::snapshot::SNAPPY_JAVA_MAGIC);
        sn.extend_from_slice(&1i32.to_be_bytes());
        sn.extend_from_slice(&1i32.to_be_bytes());
        sn.extend_from_slice(&(block.len() as i32).to_be_bytes());
        sn.extend_from_slice(&block);
        apache_seeds.push(sn);
    }
    apache_seeds.push(gz);
    seeds.insert("apache_snapshot", apache_seeds);

    seeds.insert("quorum_packet", quorum_stream());
    seeds.insert("election", election_seeds());
    seeds.insert(
        "admin_request",
        vec![
            b"\x00/commands".to_vec(),
            b"\x00/commands/ruok".to_vec(),
            b"\x00/commands/stmk?traceMask=42".to_vec(),
            b"\x00/commands/set_trace_mask?x=1&traceMask=-1".to_vec(),
            b"\x01/commands/mntr".to_vec(),
            b"\x00http://127.0.0.1:8080/commands/srvr?".to_vec(),
            b"\x00/metrics".to_vec(),
        ],
    );

    for (target, inputs) in seeds {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
                std::fs::remove_file(path)?;
            }
        }
        for (i, input) in inputs.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), input)?;
        }
        println!("{target}: {} seeds", inputs.len());
    }
    Ok(())
}

/// The u16-length pieces the storage targets' "build a valid file" mode reads.
fn zoocore_fuzz_pieces(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
