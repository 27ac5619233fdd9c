//! The data tree's write path alone, in this process: no server, no
//! socket, no disk. 100k creates of 100-byte znodes under one parent (each
//! also restats the parent) and 100k setData of 100 bytes through
//! `DataTree::execute`, as the commit shard runs them, best of five rounds;
//! then the incremental digest's pieces alone. It tells how much of a
//! server's CPU per write is the tree's.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use zoocore::acl::ServerIdentity;
use zoocore::proto::types::{op, open_acl_unsafe};
use zoocore::storage::apache::digest::{digest_of, restat_digest};
use zoocore::tree::{DataTree, StoredStat, TxnContext, WriteOp};

/// Best-of-rounds nanoseconds per operation.
pub struct TreeWrites {
    pub nodes: usize,
    pub create_ns: f64,
    pub set_data_ns: f64,
    pub digest_node_ns: f64,
    pub digest_restat_ns: f64,
    pub digest_rehash_parent_ns: f64,
    pub digest_rehash_1mib_us: f64,
}

const ROUNDS: usize = 5;
const SESSION_ID: i64 = 0x100;

fn ctx(zxid: i64) -> TxnContext<'static> {
    TxnContext {
        session_id: SESSION_ID,
        cxid: 1,
        zxid,
        time_ms: 1_764_650_000_000 + zxid,
        auth: &ServerIdentity,
        extended_types_enabled: true,
        enforce_quota: false,
    }
}

fn execute(tree: &mut DataTree, zxid: i64, write: &WriteOp) -> Result<(), String> {
    tree.execute(&ctx(zxid), write).result.map(|_| ()).map_err(|e| format!("zxid {zxid}: {e:?}"))
}

/// Best of `ROUNDS` of `calls` calls of `f`, in ns per call.
fn per_call(calls: usize, f: &mut dyn FnMut(i64) -> i64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut sink = 0i64;
        for i in 0..calls as i64 {
            sink = sink.wrapping_add(f(i));
        }
        black_box(sink);
        best = best.min(start.elapsed().as_secs_f64() * 1e9 / calls as f64);
    }
    best
}

pub fn run(nodes: usize) -> Result<TreeWrites, String> {
    let nodes = nodes.max(1);
    let mut create_ns = f64::MAX;
    let mut set_data_ns = f64::MAX;
    let data = Bytes::from(vec![7u8; 100]);
    let paths: Vec<String> = (0..nodes).map(|i| format!("/bench/node-{i:08}")).collect();
    for _ in 0..ROUNDS {
        let mut tree = DataTree::new();
        let parent = WriteOp::Create {
            path: "/bench".into(),
            data: None,
            acl: open_acl_unsafe(),
            flags: 0,
            ttl: None,
            op: op::CREATE,
        };
        execute(&mut tree, 1, &parent)?;
        let start = Instant::now();
        for (i, path) in paths.iter().enumerate() {
            let write = WriteOp::Create {
                path: path.clone(),
                data: Some(data.clone()),
                acl: open_acl_unsafe(),
                flags: 0,
                ttl: None,
                op: op::CREATE2,
            };
            execute(&mut tree, i as i64 + 2, &write)?;
        }
        create_ns = create_ns.min(start.elapsed().as_secs_f64() * 1e9 / nodes as f64);
        let start = Instant::now();
        for (i, path) in paths.iter().enumerate() {
            let write = WriteOp::SetData { path: path.clone(), data: Some(data.clone()), version: -1 };
            execute(&mut tree, (nodes + i) as i64 + 2, &write)?;
        }
        set_data_ns = set_data_ns.min(start.elapsed().as_secs_f64() * 1e9 / nodes as f64);
        black_box(&tree);
    }

    // A create hashes the new node and restats its parent; a setData
    // re-hashes the node. Re-hashing the parent instead of restating it
    // would cost its data's length each time.
    let small = vec![7u8; 100];
    let big = vec![7u8; 1 << 20];
    let path = "/bench/node-00012345";
    let stat = |i: i64| StoredStat { czxid: 3, mzxid: i, pzxid: i, cversion: i as i32, ..StoredStat::default() };
    let digest_node_ns = per_call(nodes, &mut |i| digest_of(path, Some(&small), &stat(i)));
    let digest_restat_ns = per_call(nodes, &mut |i| restat_digest("/bench", i, &stat(i), &stat(i + 1)));
    let digest_rehash_parent_ns = per_call(nodes, &mut |i| digest_of("/bench", Some(&small), &stat(i)));
    let digest_rehash_1mib_us = per_call(100, &mut |i| digest_of("/bench", Some(&big), &stat(i))) / 1000.0;
    Ok(TreeWrites {
        nodes,
        create_ns,
        set_data_ns,
        digest_node_ns,
        digest_restat_ns,
        digest_rehash_parent_ns,
        digest_rehash_1mib_us,
    })
}
