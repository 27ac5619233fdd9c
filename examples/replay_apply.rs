//! Times the tree's side of a restart's log replay alone (no server, no
//! disk): builds a tree of N znodes as a loaded snapshot is (`TreeLoader`,
//! 1,000 children per parent with 100-byte values, as `zoocore-bench
//! restart` fills them), then applies `txns` creates (new children spread
//! over the parents) and `txns` setData (100-byte values on existing
//! nodes) through `apply_txn`, as recovery does, and prints wall and CPU
//! time per txn. For callgrind, `replay_creates` and `replay_set_data`
//! are separate functions to `--toggle-collect` on; timings on a shared
//! machine are only indicative.
//!
//!     cargo run --release --example replay_apply -- 1000000 100000 3

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use zoocore::proto::{op, open_acl_unsafe};
use zoocore::storage::txn::{Txn, TxnHeader};
use zoocore::tree::{DataTree, StoredStat, TreeLoader};

const CHILDREN_PER_PARENT: usize = 1000;

#[path = "support/mod.rs"]
mod support;
use support::cpu_seconds;

fn parent_name(p: usize) -> String {
    format!("/scale/p{p:05}")
}

fn child_name(p: usize, c: usize) -> String {
    format!("{}/n{c:06}", parent_name(p))
}

fn build(n: usize) -> DataTree {
    let mut loader = TreeLoader::new();
    let acl = loader.intern_acl(&open_acl_unsafe());
    let stat = support::stat_at;
    let parents = n.div_ceil(CHILDREN_PER_PARENT);
    let value = [7u8; 100];
    loader.push_slice("/", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    loader.push_slice("/scale", Some(&[]), acl.clone(), stat(1)).unwrap();
    loader.push_slice("/zookeeper", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    let mut z = 3;
    let mut left = n;
    for p in 0..parents {
        loader.push_slice(&parent_name(p), Some(&[]), acl.clone(), stat(2)).unwrap();
    }
    for p in 0..parents {
        let count = CHILDREN_PER_PARENT.min(left);
        left -= count;
        for c in 0..count {
            loader.push_slice(&child_name(p, c), Some(&value), acl.clone(), stat(z)).unwrap();
            z += 1;
        }
    }
    loader.push_slice("/zookeeper/config", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    loader.push_slice("/zookeeper/quota", Some(&[]), acl, StoredStat::default()).unwrap();
    loader.finish(z).unwrap()
}

fn header(zxid: i64, txn_op: i32) -> TxnHeader {
    TxnHeader { session_id: 0x42, cxid: 1, zxid, time_ms: 1_764_650_100_000 + zxid, op: txn_op }
}

/// Creates of new children (past the snapshot's names), one parent after
/// another in turn, as the restart bench's writers spread theirs.
fn create_txns(parents: usize, count: usize, first_zxid: i64) -> Vec<(TxnHeader, Txn)> {
    (0..count)
        .map(|i| {
            let p = i % parents;
            let txn = Txn::Create {
                path: child_name(p, CHILDREN_PER_PARENT + i / parents),
                data: Some(Bytes::from(vec![9u8; 100])),
                acl: open_acl_unsafe(),
                ephemeral: false,
                parent_cversion: -1,
            };
            (header(first_zxid + i as i64, op::CREATE), txn)
        })
        .collect()
}

/// setData of 100-byte values on existing nodes, in a scattered order.
fn set_data_txns(n: usize, count: usize, first_zxid: i64) -> Vec<(TxnHeader, Txn)> {
    (0..count)
        .map(|i| {
            let k = (i * 7919) % n;
            let txn = Txn::SetData {
                path: child_name(k / CHILDREN_PER_PARENT, k % CHILDREN_PER_PARENT),
                data: Some(Bytes::from(vec![(i % 251) as u8; 100])),
                version: 1,
            };
            (header(first_zxid + i as i64, op::SET_DATA), txn)
        })
        .collect()
}

#[inline(never)]
fn replay_creates(tree: &mut DataTree, txns: &[(TxnHeader, Txn)]) {
    for (h, t) in txns {
        let (result, _) = black_box(tree.apply_txn(h, t));
        assert!(result.is_ok(), "{t:?}: {result:?}");
    }
}

#[inline(never)]
fn replay_set_data(tree: &mut DataTree, txns: &[(TxnHeader, Txn)]) {
    for (h, t) in txns {
        let (result, _) = black_box(tree.apply_txn(h, t));
        assert!(result.is_ok(), "{t:?}: {result:?}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let parents = n.div_ceil(CHILDREN_PER_PARENT);
    for _ in 0..runs {
        let mut tree = build(n);
        let first = tree.last_zxid() + 1;
        let creates = create_txns(parents, count, first);
        let sets = set_data_txns(n, count, first + count as i64);
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        replay_creates(&mut tree, &creates);
        let (create_wall, create_cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        replay_set_data(&mut tree, &sets);
        let (set_wall, set_cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        let per = |s: f64| s * 1e9 / count as f64;
        println!(
            "{} nodes after, digest {:x}: {count} creates {:.0} ns/txn wall, {:.0} ns cpu; {count} setData {:.0} ns/txn wall, {:.0} ns cpu",
            tree.node_count(),
            tree.digest(),
            per(create_wall),
            per(create_cpu),
            per(set_wall),
            per(set_cpu),
        );
        std::mem::forget(tree); // the drop is not part of a restart
    }
}
