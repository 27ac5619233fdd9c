//! Times `read_snapshot` alone (no server): writes a snapshot of N znodes
//! with 100-byte values (1,000 per parent, as `zoocore-bench restart`
//! fills them) once, then loads it `--runs` times and prints wall and CPU
//! time (user + sys) per load. For profiling the load under perf or
//! callgrind; timings on a shared machine are only indicative.
//!
//!     cargo run --release --example snapshot_load -- 1000000 /tmp/snap 3

use std::time::Instant;

use zoocore::storage::snapshot_format::{read_snapshot, write_snapshot};
use zoocore::tree::{DataTree, StoredStat, TreeLoader};

#[path = "support/mod.rs"]
mod support;
use support::cpu_seconds;

fn build(n: usize) -> DataTree {
    let mut loader = TreeLoader::new();
    let acl = loader.intern_acl(&zoocore::proto::open_acl_unsafe());
    let stat = support::stat_at;
    let parents = n.div_ceil(1000);
    let value = [7u8; 100];
    loader.push_slice("/", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    loader.push_slice("/scale", Some(&[]), acl.clone(), stat(1)).unwrap();
    loader.push_slice("/zookeeper", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    let mut names: Vec<String> = (0..parents).map(|p| format!("/scale/p{p:05}")).collect();
    names.sort();
    for p in &names {
        loader.push_slice(p, Some(&[]), acl.clone(), stat(2)).unwrap();
    }
    let mut z = 3;
    let mut left = n;
    for p in &names {
        let mut kids: Vec<String> = (0..1000.min(left)).map(|c| format!("{p}/n{c:06}")).collect();
        kids.sort();
        left -= kids.len();
        for k in &kids {
            loader.push_slice(k, Some(&value), acl.clone(), stat(z)).unwrap();
            z += 1;
        }
    }
    loader.push_slice("/zookeeper/config", Some(&[]), acl.clone(), StoredStat::default()).unwrap();
    loader.push_slice("/zookeeper/quota", Some(&[]), acl, StoredStat::default()).unwrap();
    loader.finish(z).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let file = args.get(2).cloned().unwrap_or_else(|| "/tmp/zoocore-snapshot-load".into());
    let runs: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    if !std::path::Path::new(&file).exists() {
        let tree = build(n);
        let out = std::fs::File::create(&file).unwrap();
        write_snapshot(out, tree.last_zxid(), &[], &tree).unwrap();
    }
    let bytes = std::fs::read(&file).unwrap();
    for _ in 0..runs {
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let snap = read_snapshot(&bytes).unwrap();
        let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
        println!(
            "{} nodes, digest {:x}: load {:.0} ms wall, {:.0} ms cpu",
            snap.tree.node_count(),
            snap.tree.digest(),
            wall * 1e3,
            cpu * 1e3
        );
        std::mem::forget(snap); // the drop is not part of a restart
    }
}
