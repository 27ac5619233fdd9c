//! Apache's tree digest (DigestCalculator, digest version 2), which every
//! 3.6+ txn carries (`TxnDigest`) and every 3.6+ snapshot ends with
//! (`ZxidDigest`), so replicas can detect divergence; and how a replica
//! compares the digest it is given with its own (DataTree.compareDigest).
//!
//! A node's digest is the CRC32 of, in order: its path as UTF-8 (the root
//! as "", since Apache keys it under both "" and "/"), its data (nothing for
//! null), then 60 big-endian bytes: czxid, mzxid, pzxid, ctime, mtime (i64),
//! version, cversion, aversion (i32), ephemeralOwner (i64). cversion is the
//! stored create counter and ephemeralOwner the raw value, as in
//! StatPersisted. Nodes whose path starts with "/zookeeper/" count as 0
//! (quota nodes are updated locally); "/zookeeper" itself and the root
//! count. The tree digest is the wrapping i64 sum of all node digests.
//!
//! `DataTree` keeps that sum up to date on every change (`DataTree::digest`
//! is O(1)); [`tree_digest`] recomputes it from scratch and is the
//! reference the incremental one is tested against.

use std::fmt;

use crate::storage::txn::TxnDigest;
use crate::tree::{DataTree, Node, StoredStat};

use super::snapshot::ZxidDigest;

/// DigestCalculator.DIGEST_VERSION.
pub const DIGEST_VERSION: i32 = 2;
/// Paths under this prefix are left out of the digest.
pub const DIGEST_EXCLUDED_PREFIX: &str = "/zookeeper/";
const STAT_DIGEST_BYTES: usize = 6 * 8 + 3 * 4;
/// CRC32 of `STAT_DIGEST_BYTES` zero bytes (see [`restat_digest`]).
const CRC32_OF_ZERO_STAT: u32 = 0x0412_8908;

/// Whether the node at `path` counts in the tree digest.
pub fn counts_in_digest(path: &str) -> bool {
    !path.starts_with(DIGEST_EXCLUDED_PREFIX)
}

/// The stat as DigestCalculator feeds it to CRC32.
fn stat_bytes(stat: &StoredStat) -> [u8; STAT_DIGEST_BYTES] {
    let mut fields = [0u8; STAT_DIGEST_BYTES];
    let mut slot = &mut fields[..];
    for long in [stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.mtime] {
        slot = put(slot, &long.to_be_bytes());
    }
    for int in [stat.version, stat.cversion, stat.aversion] {
        slot = put(slot, &int.to_be_bytes());
    }
    put(slot, &stat.ephemeral_owner.to_be_bytes());
    fields
}

/// The digest of one node's path, data and stat (a CRC32, so 0..2^32).
pub fn digest_of(path: &str, data: Option<&[u8]>, stat: &StoredStat) -> i64 {
    if !counts_in_digest(path) {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let data = data.unwrap_or_default();
    let stat = stat_bytes(stat);
    // One CRC call over the three parts laid end to end when they fit a
    // stack buffer (the common small node): each call pays a fold and a
    // final reduction, which for ~15 + 100 + 60 bytes was most of the cost
    // (9 % of a 1M-znode restart, perf). Same bytes, same CRC.
    let len = path.len() + data.len() + STAT_DIGEST_BYTES;
    if len <= DIGEST_STACK_BUFFER_BYTES {
        let mut buffer = [0u8; DIGEST_STACK_BUFFER_BYTES];
        let rest = put(&mut buffer, path.as_bytes());
        let rest = put(rest, data);
        put(rest, &stat);
        return crc32fast::hash(buffer.get(..len).unwrap_or_default()) as i64;
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    crc.update(data);
    crc.update(&stat);
    crc.finalize() as i64
}

/// Nodes whose path, data and stat fit this many bytes are hashed in one
/// CRC call from a stack copy (`digest_of`).
const DIGEST_STACK_BUFFER_BYTES: usize = 256;

/// The digest of the node at `path` after only its stat changed from `old`
/// to `new`, given its digest before: O(60 bytes) whatever the path and
/// data. CRC32 is affine over messages of one length, and the stat is the
/// message's tail, so crc(p‖new) = crc(p‖old) ⊕ crc(old⊕new) ⊕ crc(0⁶⁰) for
/// any prefix p (the path and data need not be hashed again).
pub fn restat_digest(path: &str, old_digest: i64, old: &StoredStat, new: &StoredStat) -> i64 {
    if !counts_in_digest(path) {
        return 0;
    }
    if old == new {
        return old_digest;
    }
    let mut delta = stat_bytes(old);
    for (byte, new_byte) in delta.iter_mut().zip(stat_bytes(new)) {
        *byte ^= new_byte;
    }
    (old_digest as u32 ^ crc32fast::hash(&delta) ^ CRC32_OF_ZERO_STAT) as i64
}

/// Copies `bytes` to the front of `slot` and returns the rest of it.
fn put<'a>(slot: &'a mut [u8], bytes: &[u8]) -> &'a mut [u8] {
    let (head, rest) = slot.split_at_mut(bytes.len().min(slot.len()));
    head.copy_from_slice(&bytes[..head.len()]);
    rest
}

/// The digest of the node at `path`, computed from scratch.
pub fn node_digest(path: &str, node: &Node) -> i64 {
    digest_of(path, node.data(), &node.stored_stat())
}

/// The whole tree's digest recomputed from scratch (O(n)): the wrapping
/// sum of every node's digest. `DataTree::digest` is the same, kept
/// incrementally.
pub fn tree_digest(tree: &DataTree) -> i64 {
    tree.iter().fold(0i64, |sum, (path, node)| sum.wrapping_add(node_digest(path, node)))
}

/// The outcome of comparing a digest a replica was given with its own tree
/// (DataTree.compareDigest). Only `Mismatch` is a divergence; Apache
/// treats every other outcome as "nothing to compare" and goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestCheck {
    Match,
    /// The replicas diverged: report it loudly (Apache logs the first
    /// mismatching txn at ERROR and counts every one in a metric).
    Mismatch {
        expected: i64,
        actual: i64,
    },
    /// The txn carried no digest (a pre-3.6 peer, digests disabled, or an
    /// error txn, which Apache's leader sends without one).
    NotCarried,
    /// Computed with another digest version (a peer on another release):
    /// not comparable, so not compared; Apache only logs it, rate-limited.
    UnknownVersion {
        version: i32,
    },
    /// Still replaying the txns a fuzzy snapshot may already partly hold,
    /// so the tree is not comparable yet (see [`DigestVerifier`]).
    SnapshotPending,
}

impl DigestCheck {
    /// Compares `expected`, as carried by a txn, with `actual`, the tree's
    /// digest after that txn was applied.
    pub fn compare(expected: Option<TxnDigest>, actual: i64) -> DigestCheck {
        match expected {
            None => DigestCheck::NotCarried,
            Some(carried) if carried.version != DIGEST_VERSION => {
                DigestCheck::UnknownVersion { version: carried.version }
            }
            Some(carried) if carried.tree_digest == actual => DigestCheck::Match,
            Some(carried) => DigestCheck::Mismatch { expected: carried.tree_digest, actual },
        }
    }

    /// True only for a real divergence.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, DigestCheck::Mismatch { .. })
    }
}

impl fmt::Display for DigestCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DigestCheck::Match => write!(f, "tree digest matches"),
            DigestCheck::Mismatch { expected, actual } => {
                write!(f, "TREE DIGEST MISMATCH: expected {expected:#x}, this replica has {actual:#x}")
            }
            DigestCheck::NotCarried => write!(f, "no digest carried"),
            DigestCheck::UnknownVersion { version } => {
                write!(f, "digest version {version} is not ours ({DIGEST_VERSION}); not compared")
            }
            DigestCheck::SnapshotPending => write!(f, "replaying a fuzzy snapshot's txns; not compared yet"),
        }
    }
}

/// When to compare, after loading a snapshot (FileTxnSnapLog.restore and
/// DataTree.compareSnapshotDigests). An Apache snapshot is fuzzy: written
/// while txns kept being applied, it ends with the digest of the tree at
/// the last zxid applied when it was finished, which may be past the zxid
/// it is named after. Until the replay reaches that zxid the tree holds
/// some txns and not others and no digest can be compared; at that zxid the
/// tree is compared with the snapshot's digest, and from then on with the
/// digest each txn carries. Sans-IO: the caller feeds it every txn applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestVerifier {
    /// The snapshot digest still to be reached, if any.
    pending: Option<ZxidDigest>,
}

impl DigestVerifier {
    /// For a tree that is consistent as it is (a fresh tree, a zoocore
    /// snapshot, a replica that has been comparing all along): compare
    /// every txn.
    pub fn new() -> DigestVerifier {
        DigestVerifier { pending: None }
    }

    /// After loading a snapshot (the tree's last zxid is the one the
    /// snapshot is named after) that ended with `digest`; also returns the
    /// check of the loaded tree itself. A digest with zxid 0 means none;
    /// one older than the snapshot cannot describe it (Apache: a new
    /// leader's snapshot at epoch+0) and is ignored. A digest at the
    /// snapshot's own zxid (a snapshot nothing was applied during) is
    /// compared now, as ZKDatabase does for a restored snapshot; a later one
    /// when the replay reaches its zxid.
    pub fn after_snapshot(tree: &DataTree, digest: Option<ZxidDigest>) -> (DigestVerifier, DigestCheck) {
        let loaded_zxid = tree.last_zxid();
        let mut verifier = DigestVerifier { pending: digest.filter(|d| d.zxid != 0 && d.zxid >= loaded_zxid) };
        let check = match verifier.pending {
            Some(d) if d.zxid == loaded_zxid => verifier.after_apply(tree, loaded_zxid, None),
            Some(_) => DigestCheck::SnapshotPending,
            None => DigestCheck::NotCarried,
        };
        (verifier, check)
    }

    /// The snapshot digest not reached yet, if any. Still pending once the
    /// replay is done means the log did not cover the snapshot (Apache
    /// warns: "might lead to inconsistent state").
    pub fn pending(&self) -> Option<ZxidDigest> {
        self.pending
    }

    /// Call after applying the txn at `zxid` that carried `carried`.
    pub fn after_apply(&mut self, tree: &DataTree, zxid: i64, carried: Option<TxnDigest>) -> DigestCheck {
        let Some(pending) = self.pending else {
            return DigestCheck::compare(carried, tree.digest());
        };
        if zxid < pending.zxid {
            return DigestCheck::SnapshotPending;
        }
        if zxid > pending.zxid {
            // The txn the snapshot's digest belongs to never came: nothing
            // to compare it with, and (as Apache) no txn is compared either.
            return DigestCheck::SnapshotPending;
        }
        self.pending = None;
        let snapshot = TxnDigest { version: pending.version, tree_digest: pending.digest };
        DigestCheck::compare(Some(snapshot), tree.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn stat() -> StoredStat {
        StoredStat {
            czxid: 2,
            mzxid: 3,
            ctime: 1_000,
            mtime: 2_000,
            version: 1,
            cversion: 4,
            aversion: 5,
            ephemeral_owner: 0x77,
            pzxid: 6,
        }
    }

    /// The bytes DigestCalculator feeds to CRC32, spelled out by hand.
    #[test]
    fn field_order_and_encoding() {
        let mut expected = Vec::new();
        expected.extend_from_slice(b"/a");
        expected.extend_from_slice(b"hi");
        for long in [2i64, 3, 6, 1_000, 2_000] {
            expected.extend_from_slice(&long.to_be_bytes());
        }
        for int in [1i32, 4, 5] {
            expected.extend_from_slice(&int.to_be_bytes());
        }
        expected.extend_from_slice(&0x77i64.to_be_bytes());
        assert_eq!(expected.len(), 2 + 2 + 60);
        assert_eq!(digest_of("/a", Some(b"hi"), &stat()), crc32fast::hash(&expected) as i64);
        // Null and empty data hash alike; the root hashes as "".
        assert_eq!(digest_of("/a", None, &stat()), digest_of("/a", Some(b""), &stat()));
        assert_eq!(digest_of("/", None, &stat()), crc32fast::hash(&expected[4..]) as i64);
        assert_eq!(digest_of("/zookeeper/quota", None, &stat()), 0);
        assert_ne!(digest_of("/zookeeper", None, &stat()), 0);
    }

    /// The one-call path (small nodes) and the streamed one (larger ones)
    /// hash the same bytes: checked on both sides of the buffer's size.
    #[test]
    fn small_and_large_nodes_hash_their_bytes_end_to_end() {
        for data_len in [0, 1, 100, 190, 191, 192, 193, 194, 300, 4096] {
            let data: Vec<u8> = (0..data_len).map(|i| (i * 7 + 3) as u8).collect();
            let mut expected = b"/a/b".to_vec();
            expected.extend_from_slice(&data);
            expected.extend_from_slice(&stat_bytes(&stat()));
            let fits = expected.len() <= DIGEST_STACK_BUFFER_BYTES;
            assert_eq!(
                digest_of("/a/b", Some(&data), &stat()),
                crc32fast::hash(&expected) as i64,
                "data_len {data_len} (one call: {fits})"
            );
        }
    }

    #[test]
    fn zero_stat_constant_is_the_crc_of_zeros() {
        assert_eq!(CRC32_OF_ZERO_STAT, crc32fast::hash(&[0u8; STAT_DIGEST_BYTES]));
    }

    fn any_stat() -> impl Strategy<Value = StoredStat> {
        (any::<[i64; 6]>(), any::<[i32; 3]>()).prop_map(|(l, i)| StoredStat {
            czxid: l[0],
            mzxid: l[1],
            ctime: l[2],
            mtime: l[3],
            ephemeral_owner: l[4],
            pzxid: l[5],
            version: i[0],
            cversion: i[1],
            aversion: i[2],
        })
    }

    proptest! {
        /// Restat from the old digest = hashing everything again, for any
        /// path (root, excluded ones included), data and pair of stats.
        #[test]
        fn restat_equals_a_fresh_digest(
            path in prop_oneof![Just("/".to_owned()), Just("/zookeeper".to_owned()),
                Just("/zookeeper/quota".to_owned()), "/[a-z]{1,12}(/[a-z0-9]{1,8}){0,3}"],
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
            old in any_stat(),
            new in any_stat(),
            fields in any::<u16>(),
        ) {
            // Also stats that differ in a few fields only, as real changes do.
            let partial = StoredStat {
                mzxid: if fields & 1 != 0 { new.mzxid } else { old.mzxid },
                pzxid: if fields & 2 != 0 { new.pzxid } else { old.pzxid },
                cversion: if fields & 4 != 0 { new.cversion } else { old.cversion },
                aversion: if fields & 8 != 0 { new.aversion } else { old.aversion },
                ..old
            };
            let data = data.as_deref();
            for target in [new, partial, old] {
                let before = digest_of(&path, data, &old);
                prop_assert_eq!(restat_digest(&path, before, &old, &target), digest_of(&path, data, &target));
            }
        }
    }

    #[test]
    fn compare_follows_apache() {
        let ours = TxnDigest { version: DIGEST_VERSION, tree_digest: 42 };
        assert_eq!(DigestCheck::compare(Some(ours), 42), DigestCheck::Match);
        assert_eq!(DigestCheck::compare(Some(ours), 41), DigestCheck::Mismatch { expected: 42, actual: 41 });
        assert_eq!(DigestCheck::compare(None, 41), DigestCheck::NotCarried);
        let old = TxnDigest { version: 1, tree_digest: 1 };
        assert_eq!(DigestCheck::compare(Some(old), 41), DigestCheck::UnknownVersion { version: 1 });
        assert!(!DigestCheck::UnknownVersion { version: 1 }.is_mismatch());
        assert!(DigestCheck::Mismatch { expected: 1, actual: 2 }.is_mismatch());
    }

    fn tree_at(zxid: i64, data: &'static [u8]) -> DataTree {
        let mut tree = DataTree::new();
        tree.restore_node("/x", Some(Bytes::from_static(data)), &crate::proto::open_acl_unsafe(), stat());
        tree.set_last_zxid(zxid);
        tree
    }

    fn zxid_digest(zxid: i64, tree: &DataTree) -> ZxidDigest {
        ZxidDigest { zxid, version: DIGEST_VERSION, digest: tree.digest() }
    }

    /// A snapshot named 10 whose digest is of zxid 12: txns 11 and 12 are
    /// not compared, the tree after 12 is compared with the snapshot's
    /// digest, and every txn after that with its own.
    #[test]
    fn verifier_waits_out_a_fuzzy_snapshot() {
        let at_10 = tree_at(10, b"fuzzy");
        let at_12 = tree_at(12, b"final");
        let (mut verifier, check) = DigestVerifier::after_snapshot(&at_10, Some(zxid_digest(12, &at_12)));
        assert_eq!(check, DigestCheck::SnapshotPending);
        let wrong = Some(TxnDigest { version: DIGEST_VERSION, tree_digest: 1 });
        assert_eq!(verifier.after_apply(&at_10, 11, wrong), DigestCheck::SnapshotPending);
        assert_eq!(verifier.after_apply(&at_12, 12, wrong), DigestCheck::Match);
        assert_eq!(verifier.pending(), None);
        assert_eq!(
            verifier.after_apply(&at_12, 13, wrong),
            DigestCheck::Mismatch { expected: 1, actual: at_12.digest() }
        );
        assert_eq!(verifier.after_apply(&at_12, 14, Some(at_12.txn_digest())), DigestCheck::Match);

        // Reaching the snapshot's zxid with another tree is a divergence.
        let (mut verifier, _) = DigestVerifier::after_snapshot(&at_10, Some(zxid_digest(12, &at_12)));
        assert!(verifier.after_apply(&at_10, 12, None).is_mismatch());

        // The txn of the snapshot's digest never came: nothing is compared.
        let (mut verifier, _) = DigestVerifier::after_snapshot(&at_10, Some(zxid_digest(12, &at_12)));
        assert_eq!(verifier.after_apply(&at_12, 13, wrong), DigestCheck::SnapshotPending);
        assert!(verifier.pending().is_some());
    }

    #[test]
    fn verifier_on_consistent_and_digestless_snapshots() {
        let tree = tree_at(10, b"v");
        // Digest at the snapshot's own zxid: compared at once.
        let (verifier, check) = DigestVerifier::after_snapshot(&tree, Some(zxid_digest(10, &tree)));
        assert_eq!((check, verifier.pending()), (DigestCheck::Match, None));
        let other = tree_at(10, b"w");
        let (_, check) = DigestVerifier::after_snapshot(&other, Some(zxid_digest(10, &tree)));
        assert!(check.is_mismatch());
        // Another digest version: not compared, and not pending.
        let (verifier, check) =
            DigestVerifier::after_snapshot(&other, Some(ZxidDigest { zxid: 10, version: 1, digest: 5 }));
        assert_eq!((check, verifier.pending()), (DigestCheck::UnknownVersion { version: 1 }, None));
        // No digest, zxid 0, or one older than the snapshot: compare txns.
        for digest in [None, Some(zxid_digest(0, &tree)), Some(zxid_digest(9, &other))] {
            let (mut verifier, check) = DigestVerifier::after_snapshot(&tree, digest);
            assert_eq!((check, verifier.pending()), (DigestCheck::NotCarried, None));
            assert_eq!(verifier.after_apply(&tree, 11, Some(tree.txn_digest())), DigestCheck::Match);
        }
        assert_eq!(DigestVerifier::new().after_apply(&tree, 11, None), DigestCheck::NotCarried);
    }

    #[test]
    fn tree_digest_is_the_wrapping_sum() {
        let mut tree = DataTree::new();
        let fresh = tree_digest(&tree);
        // A fresh tree: root and /zookeeper count, quota and config do not.
        let zero = StoredStat::default();
        let expected = digest_of("/", Some(b""), &zero) + digest_of("/zookeeper", Some(b""), &zero);
        assert_eq!(fresh, expected);
        let open = crate::proto::open_acl_unsafe();
        tree.restore_node("/x", Some(Bytes::from_static(b"v")), &open, stat());
        let node = tree.get("/x").unwrap();
        assert_eq!(tree_digest(&tree), fresh.wrapping_add(node_digest("/x", node)));
        assert_eq!(tree.digest(), tree_digest(&tree));
    }
}
