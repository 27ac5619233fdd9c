//! zoocore's tree digest against a real Apache ZooKeeper 3.8's (Debian's
//! jar), txn by txn:
//!
//! 1. Apache runs a workload with every kind of txn: creates of all modes,
//!    setData (the root's too), setACL, deletes, a multi and a failed multi,
//!    refused writes (error txns), and a closeSession that deletes
//!    ephemerals; a small snapCount makes it write snapshots as it goes.
//! 2. Every txn of Apache's log, applied in order to a fresh zoocore tree
//!    with `apply_txn`, is followed by `check_txn_digest` of the TxnDigest
//!    Apache's leader put in it: every one must match, and error txns must
//!    carry none (as `Executed::digest` does).
//! 3. Every snapshot Apache wrote (fuzzy: taken while txns kept being
//!    applied), loaded and replayed forward under `DigestVerifier`, must
//!    reach its own digest and then match every later txn.
//!
//! Skips (with a printed reason) only when the jar is absent and CI is not
//! set. The Java process is killed by PID in a Drop guard.

mod common;

use common::apache as apache_proc;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::create_op;
use zoocore::client::Client;
use zoocore::proto::{op, open_acl_unsafe, perms, Acl, CreateMode, CreateRequest, Id, MultiOp, PathVersion, Request};
use zoocore::storage::apache::digest::{DigestCheck, DigestVerifier};
use zoocore::storage::apache::{self, read_snapshot_file, read_txn_log};
use zoocore::storage::txn::LoggedTxn;
use zoocore::tree::DataTree;

/// Small, so the workload crosses several snapshots.
const SNAP_COUNT: u32 = 16;
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One Apache ZooKeeper JVM; killed by PID on drop.
struct Apache {
    process: apache_proc::ServerProcess,
    addr: SocketAddr,
    log: PathBuf,
}

impl Apache {
    fn start(work: &Path, data_dir: &Path) -> Apache {
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let cfg = work.join("zoo.cfg");
            std::fs::write(
                &cfg,
                format!(
                    "tickTime=2000\ndataDir={}\nadmin.enableServer=false\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                     admin.enableServer=false\nextendedTypesEnabled=true\n4lw.commands.whitelist=*\n",
                    data_dir.display()
                ),
            )
            .unwrap();
            let log = work.join("apache.log");
            // One log per attempt, as before.
            let _ = std::fs::remove_file(&log);
            let snap_count = format!("-Dzookeeper.snapCount={SNAP_COUNT}");
            let jvm_args = [
                "-Dzookeeper.extendedTypesEnabled=true",
                apache_proc::FOUR_LETTER_WORDS_ALL,
                snap_count.as_str(),
                "-Dzookeeper.preAllocSize=64",
                // Keep the container/TTL reaper away from the workload.
                "-Dznode.container.checkIntervalMs=600000",
            ];
            let process = apache_proc::ServerProcess::apache(apache_proc::STANDALONE_MAIN, &cfg, &jvm_args, None, &log);
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut apache = Apache { process, addr, log };
            if apache.wait_ready() {
                return apache;
            }
            last_log = std::fs::read_to_string(&apache.log).unwrap_or_default();
            apache.kill();
        }
        panic!("Apache ZooKeeper did not start; log:\n{last_log}");
    }

    fn wait_ready(&mut self) -> bool {
        self.process.wait_serving(self.addr, START_TIMEOUT)
    }

    fn kill(&mut self) {
        self.process.kill9();
    }
}

fn apache_available() -> bool {
    apache_proc::apache_available("the Apache digest test")
}

/// Every kind of txn, refused ones included.
fn workload(c: &Client, other: Client) {
    let open = open_acl_unsafe();
    let read_only = vec![Acl { perms: perms::READ, id: Id::new("world", "anyone") }];
    c.set_data("/", b"root data", -1).unwrap();
    c.create("/app", b"cfg", &open, CreateMode::Persistent).unwrap();
    c.create2("/app/big", &vec![0x5a; 50_000], &open, CreateMode::Persistent).unwrap();
    c.create("/app/eph", b"e", &open, CreateMode::Ephemeral).unwrap();
    for _ in 0..3 {
        c.create("/app/seq-", b"s", &open, CreateMode::PersistentSequential).unwrap();
        c.create("/app/eseq-", b"es", &open, CreateMode::EphemeralSequential).unwrap();
    }
    c.create_container("/box", b"c", &open).unwrap();
    c.create("/box/kid", b"k", &open, CreateMode::Persistent).unwrap();
    c.delete("/box/kid", -1).unwrap();
    c.create_ttl("/ttl", b"t", &open, CreateMode::PersistentWithTtl, 3_600_000).unwrap();
    c.create("/ttl/child", b"", &open, CreateMode::Persistent).unwrap();
    // Refused writes: error txns.
    assert!(c.create("/app", b"again", &open, CreateMode::Persistent).is_err());
    assert!(c.set_data("/app", b"stale", 42).is_err());
    assert!(c.delete("/app", -1).is_err());
    c.set_data("/app", b"v2", 0).unwrap();
    c.set_data("/app/big", b"small now", -1).unwrap();
    c.set_acl("/app/big", &read_only, -1).unwrap();
    // A multi, and a failed one (a multi txn of error txns).
    c.create("/m", b"", &open, CreateMode::Persistent).unwrap();
    let ok = c
        .multi(vec![
            create_op("/m/a", b"a"),
            MultiOp::Check(PathVersion { path: "/m".into(), version: 0 }),
            MultiOp::Delete(PathVersion { path: "/m/a".into(), version: 0 }),
            create_op("/m/b", b"b"),
        ])
        .unwrap();
    assert_eq!(zoocore::client::first_error(&ok), None);
    let failed = c.multi(vec![create_op("/m/c", b"c"), create_op("/m/b", b"exists")]).unwrap();
    assert!(zoocore::client::first_error(&failed).is_some());
    // Another session's ephemerals, deleted by its closeSession txn.
    other.create("/m/b/eph", b"x", &open, CreateMode::Ephemeral).unwrap();
    other.create("/app/other-", b"y", &open, CreateMode::EphemeralSequential).unwrap();
    other.close().unwrap();
    // A pipelined burst, so Apache applies txns while it writes snapshots
    // (fuzzy ones, whose digest is of a later zxid than their name's).
    let pending: Vec<_> = (0..300)
        .map(|i| {
            let req = CreateRequest {
                path: format!("/app/burst-{i:03}"),
                data: Some(Bytes::from(vec![i as u8; 100])),
                acl: open.clone(),
                flags: 0,
                ttl: None,
            };
            c.submit(Request::Create { op: op::CREATE, req }).unwrap()
        })
        .collect();
    for reply in pending {
        reply.wait().unwrap();
    }
    for i in 0..40 {
        let path = format!("/app/n{i:02}");
        c.create(&path, format!("value {i}").as_bytes(), &open, CreateMode::Persistent).unwrap();
        if i % 3 == 0 {
            c.set_data(&path, &[i as u8; 100], 0).unwrap();
        }
        if i % 5 == 4 {
            c.delete(&path, -1).unwrap();
        }
    }
}

#[test]
fn every_apache_txn_digest_matches_zoocores_tree() {
    if !apache_available() {
        return;
    }
    let work = std::env::temp_dir().join(format!("zoocore-apache-digest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let data = work.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut apache = Apache::start(&work, &data);
    let client = Client::connect(apache.addr, SESSION_TIMEOUT).unwrap();
    let other = Client::connect(apache.addr, SESSION_TIMEOUT).unwrap();
    workload(&client, other);
    let last_zxid = client.last_zxid();
    // Replies follow the log's fsync, so every txn is on disk.
    apache.kill();
    drop(client);

    let version_dir = data.join("version-2");
    let names: Vec<String> = std::fs::read_dir(&version_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut txns = Vec::new();
    for (_, name) in apache::sort_by_zxid(names.iter().map(String::as_str), "log", true) {
        let log = read_txn_log(Bytes::from(std::fs::read(version_dir.join(name)).unwrap())).unwrap();
        for entry in log.entries {
            txns.push(LoggedTxn::decode(entry.payload).unwrap_or_else(|e| panic!("{name}: {e}")));
        }
    }
    assert_eq!(txns.last().map(|t| t.header.zxid), Some(last_zxid), "the log holds every txn");

    // 2. Txn by txn from an empty tree.
    let mut tree = DataTree::new();
    let mut seen_ops = std::collections::BTreeSet::new();
    // The replayed tree's digest after each zxid.
    let mut replay_digests: Vec<(i64, i64)> = Vec::new();
    for txn in &txns {
        let _ = tree.apply_txn(&txn.header, &txn.txn);
        replay_digests.push((txn.header.zxid, tree.digest()));
        seen_ops.insert(txn.header.op);
        let check = tree.check_txn_digest(txn.digest);
        if txn.header.op == op::ERROR {
            assert_eq!(check, DigestCheck::NotCarried, "Apache's error txns carry no digest: {txn:?}");
        } else {
            assert_eq!(check, DigestCheck::Match, "zxid {:#x}: {check} after {txn:?}", txn.header.zxid);
        }
    }
    for wanted in [
        op::CREATE_SESSION,
        op::CLOSE_SESSION,
        op::CREATE,
        op::CREATE2,
        op::CREATE_CONTAINER,
        op::CREATE_TTL,
        op::DELETE,
        op::SET_DATA,
        op::SET_ACL,
        op::MULTI,
        op::ERROR,
    ] {
        assert!(seen_ops.contains(&wanted), "the workload logged no txn of type {wanted}: {seen_ops:?}");
    }
    assert!(tree.get("/m/b/eph").is_none(), "closeSession deleted the other session's ephemerals");
    eprintln!("{} txns, every carried digest matched; final digest {:#x}", txns.len(), tree.digest());
    let final_digest = tree.digest();
    let digest_at =
        |zxid: i64| replay_digests.iter().rev().find(|(z, _)| *z <= zxid).map_or(DataTree::new().digest(), |(_, d)| *d);

    // 3. Each snapshot, replayed forward from its zxid.
    let snapshots = apache::sort_by_zxid(names.iter().map(String::as_str), "snapshot", true);
    assert!(snapshots.len() >= 3, "expected several snapshots: {names:?}");
    let mut fuzzy = 0;
    let newest_snapshot = snapshots.last().map(|(z, _)| *z);
    for (snap_zxid, name) in snapshots {
        let bytes = std::fs::read(version_dir.join(name)).unwrap();
        let snap = match read_snapshot_file(&bytes, snap_zxid) {
            Ok(snap) => snap,
            // Apache writes a snapshot in the background, straight to its
            // final name, and the kill -9 above can land mid-write: the
            // newest one may be cut short. Apache's own restore skips such
            // a file for the one before it; so does this check. (Seen once
            // in CI: Truncated at offset 57146.) Only the newest can be.
            Err(e) if Some(snap_zxid) == newest_snapshot => {
                eprintln!("{name}: cut short by the kill ({e}); skipped, as Apache's restore skips it");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let mut tree = snap.tree;
        let (mut verifier, check) = DigestVerifier::after_snapshot(&tree, snap.digest);
        // Apache serializes a snapshot while txns apply and reads the digest
        // (and lastProcessedZxid) only at the end, so a fuzzy snapshot's
        // stored digest can disagree with its own nodes; Apache's restore
        // would count that too. Such a snapshot (its nodes differ from the
        // log replayed to its zxid) must still converge: replayed to the
        // end it is the same tree as the full replay.
        let fuzzy_content = tree.digest() != digest_at(snap_zxid);
        if check.is_mismatch() && fuzzy_content {
            for txn in txns.iter().filter(|t| t.header.zxid > snap_zxid) {
                let _ = tree.apply_txn(&txn.header, &txn.txn);
            }
            assert_eq!(tree.digest(), final_digest, "{name}: a fuzzy snapshot replayed to the end is the same tree");
            fuzzy += 1;
            eprintln!("{name}: fuzzy, its stored digest {:?} taken mid-apply; converged at the end", snap.digest);
            continue;
        }
        assert!(!check.is_mismatch(), "{name}: {check} ({:?})", snap.digest);
        let mut snapshot_digest_checked = check == DigestCheck::Match;
        for txn in txns.iter().filter(|t| t.header.zxid > snap_zxid) {
            let _ = tree.apply_txn(&txn.header, &txn.txn);
            let was_pending = verifier.pending().is_some();
            let check = verifier.after_apply(&tree, txn.header.zxid, txn.digest);
            assert!(!check.is_mismatch(), "{name}, zxid {:#x}: {check}", txn.header.zxid);
            snapshot_digest_checked |= was_pending && check == DigestCheck::Match;
        }
        assert_eq!(verifier.pending(), None, "{name}: the replay reached the snapshot's digest");
        let zero_digest = snap.digest.is_none_or(|d| d.zxid == 0);
        assert!(snapshot_digest_checked || zero_digest, "{name}: its digest {:?} was compared", snap.digest);
        assert_eq!(tree.digest(), apache::tree_digest(&tree), "{name}");
        let digest_zxid = snap.digest.map_or(0, |d| d.zxid);
        fuzzy += usize::from(digest_zxid > snap_zxid);
        eprintln!("{name}: digest of zxid {digest_zxid:#x}, checked, then replayed to the end");
    }
    // Whether Apache wrote one while applying depends on timing.
    eprintln!("{fuzzy} of the snapshots were fuzzy");
    let _ = std::fs::remove_dir_all(&work);
}
