//! The transaction, in Apache ZooKeeper's own serialization: what the
//! commit shard logs for every zxid, what a ZAB PROPOSAL carries, and what
//! recovery and a follower apply. Sans-IO.
//!
//! A payload is `TxnHeader{clientId i64, cxid i32, zxid i64, time i64,
//! type i32}`, then the record for `type` (zookeeper.jute's txn module),
//! then an optional `TxnDigest{version i32, treeDigest i64}`: exactly the
//! bytes of an entry of Apache's txn log and of a PROPOSAL's data, so a txn
//! goes from zoocore's log to an Apache peer (and back) without re-encoding.
//!
//! A txn records the *outcome* of a request, decided once by the leader
//! (the real path of a sequential node, the parent's new cversion, the
//! fixed-up ACL, the new version): applying it needs no ACL check and no
//! auth, so every server that applies it reaches the same tree.

use bytes::{Bytes, BytesMut};

use crate::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::{decode_acl_list, encode_acl_list, op, Acl};

/// Apache's current TxnDigest version (DigestCalculator.DIGEST_VERSION).
pub const TXN_DIGEST_VERSION: i32 = 2;

/// TxnHeader: who, which request, which zxid, when (the leader's wall
/// clock, ms since the epoch) and the txn type (an opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    /// The session (Apache: clientId); 0 for server-made txns.
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
    /// The opcode that decides how `Txn` is encoded and applied: 1 and 15
    /// (CreateTxn), 19, 21, 2 and 20 (DeleteTxn), 5, 7, 14, -10, -11, -1.
    pub op: i32,
}

/// The time stamp (ms) of an encoded txn, read from its header without
/// decoding the rest; None if the bytes are too short.
pub fn header_time_ms(encoded: &[u8]) -> Option<i64> {
    // session_id (8) + cxid (4) + zxid (8), then time (8).
    let bytes: [u8; 8] = encoded.get(20..28)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

impl TxnHeader {
    pub const ENCODED_LEN: usize = 8 + 4 + 8 + 8 + 4;
}

/// The txn record that follows the header (zookeeper.jute's txn module).
#[derive(Debug, Clone, PartialEq)]
pub enum Txn {
    /// CreateTxn, for header types 1 (create) and 15 (create2).
    Create { path: String, data: Option<Bytes>, acl: Vec<Acl>, ephemeral: bool, parent_cversion: i32 },
    /// CreateContainerTxn (19).
    CreateContainer { path: String, data: Option<Bytes>, acl: Vec<Acl>, parent_cversion: i32 },
    /// CreateTTLTxn (21).
    CreateTtl { path: String, data: Option<Bytes>, acl: Vec<Acl>, parent_cversion: i32, ttl_ms: i64 },
    /// DeleteTxn, for 2 (delete) and 20 (deleteContainer).
    Delete { path: String },
    /// SetDataTxn (5); `version` is the node's new version.
    SetData { path: String, data: Option<Bytes>, version: i32 },
    /// SetACLTxn (7); `version` is the node's new aversion.
    SetAcl { path: String, acl: Vec<Acl>, version: i32 },
    /// CheckVersionTxn (13), only inside a multi.
    Check { path: String, version: i32 },
    /// MultiTxn (14): `(sub type, sub txn)`. A failed multi keeps the txns
    /// of the ops before the failing one and has ErrorTxns from it on.
    Multi(Vec<(i32, Txn)>),
    /// CreateSessionTxn (-10).
    CreateSession { timeout_ms: i32 },
    /// CloseSessionTxn (-11) with the ephemerals to delete; None for the
    /// pre-3.6 form without a body.
    CloseSession { paths_to_delete: Option<Vec<String>> },
    /// ErrorTxn (-1): a failed write, which still consumes its zxid.
    Error { err: i32 },
}

/// TxnDigest: Apache's tree digest after the txn was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnDigest {
    pub version: i32,
    pub tree_digest: i64,
}

/// One whole payload.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedTxn {
    pub header: TxnHeader,
    pub txn: Txn,
    pub digest: Option<TxnDigest>,
}

impl LoggedTxn {
    /// Appends the payload's bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        encode_txn(out, &self.header, &self.txn, self.digest);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128);
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes a whole payload; trailing bytes after the digest are an
    /// error. Buffers are zero-copy slices of `bytes`.
    pub fn decode(bytes: Bytes) -> DecodeResult<LoggedTxn> {
        let mut r = Reader::new(bytes);
        let header = TxnHeader {
            session_id: r.read_i64()?,
            cxid: r.read_i32()?,
            zxid: r.read_i64()?,
            time_ms: r.read_i64()?,
            op: r.read_i32()?,
        };
        let txn = decode_record(&mut r, header.op, Nesting::TopLevel)?;
        let digest =
            if r.is_empty() { None } else { Some(TxnDigest { version: r.read_i32()?, tree_digest: r.read_i64()? }) };
        if !r.is_empty() {
            return Err(DecodeError::Invalid("bytes after the txn digest"));
        }
        Ok(LoggedTxn { header, txn, digest })
    }
}

/// Encodes header + record (+ digest) from borrowed parts.
pub fn encode_txn(out: &mut BytesMut, header: &TxnHeader, txn: &Txn, digest: Option<TxnDigest>) {
    let mut w = Writer::new(out);
    w.i64(header.session_id).i32(header.cxid).i64(header.zxid).i64(header.time_ms).i32(header.op);
    encode_record(&mut w, txn);
    if let Some(d) = digest {
        w.i32(d.version).i64(d.tree_digest);
    }
}

fn encode_record(w: &mut Writer<'_>, txn: &Txn) {
    match txn {
        Txn::Create { path, data, acl, ephemeral, parent_cversion } => {
            w.string(path).buffer(data.as_deref());
            encode_acl_list(w, acl);
            w.bool(*ephemeral).i32(*parent_cversion);
        }
        Txn::CreateContainer { path, data, acl, parent_cversion } => {
            w.string(path).buffer(data.as_deref());
            encode_acl_list(w, acl);
            w.i32(*parent_cversion);
        }
        Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms } => {
            w.string(path).buffer(data.as_deref());
            encode_acl_list(w, acl);
            w.i32(*parent_cversion).i64(*ttl_ms);
        }
        Txn::Delete { path } => {
            w.string(path);
        }
        Txn::SetData { path, data, version } => {
            w.string(path).buffer(data.as_deref()).i32(*version);
        }
        Txn::SetAcl { path, acl, version } => {
            w.string(path);
            encode_acl_list(w, acl);
            w.i32(*version);
        }
        Txn::Check { path, version } => {
            w.string(path).i32(*version);
        }
        Txn::Multi(subs) => {
            // Txn{type, data}: each sub-record serialized into a buffer.
            w.vec(subs, |w, (sub_op, sub)| {
                let mut inner = BytesMut::with_capacity(64);
                encode_record(&mut Writer::new(&mut inner), sub);
                w.i32(*sub_op).buffer(Some(&inner));
            });
        }
        Txn::CreateSession { timeout_ms } => {
            w.i32(*timeout_ms);
        }
        Txn::CloseSession { paths_to_delete } => {
            if let Some(paths) = paths_to_delete {
                w.string_vec(paths);
            }
        }
        Txn::Error { err } => {
            w.i32(*err);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Nesting {
    TopLevel,
    InMulti,
}

/// The record for txn type `op`. Inside a multi only the sub-types Apache
/// allows are accepted (a multi never nests).
fn decode_record(r: &mut Reader, txn_op: i32, nesting: Nesting) -> DecodeResult<Txn> {
    let in_multi = nesting == Nesting::InMulti;
    Ok(match txn_op {
        op::CREATE | op::CREATE2 => Txn::Create {
            path: r.read_string()?,
            data: r.read_buffer()?,
            acl: decode_acl_list(r)?,
            ephemeral: r.read_bool()?,
            // The pre-3.3 CreateTxnV0 has no parentCVersion; -1 tells the
            // apply step to derive it, as Apache does.
            parent_cversion: if r.is_empty() && txn_op == op::CREATE { -1 } else { r.read_i32()? },
        },
        op::CREATE_CONTAINER => Txn::CreateContainer {
            path: r.read_string()?,
            data: r.read_buffer()?,
            acl: decode_acl_list(r)?,
            parent_cversion: r.read_i32()?,
        },
        op::CREATE_TTL => Txn::CreateTtl {
            path: r.read_string()?,
            data: r.read_buffer()?,
            acl: decode_acl_list(r)?,
            parent_cversion: r.read_i32()?,
            ttl_ms: r.read_i64()?,
        },
        op::DELETE | op::DELETE_CONTAINER => Txn::Delete { path: r.read_string()? },
        op::SET_DATA => Txn::SetData { path: r.read_string()?, data: r.read_buffer()?, version: r.read_i32()? },
        op::SET_ACL if !in_multi => {
            Txn::SetAcl { path: r.read_string()?, acl: decode_acl_list(r)?, version: r.read_i32()? }
        }
        op::CHECK if in_multi => Txn::Check { path: r.read_string()?, version: r.read_i32()? },
        op::ERROR => Txn::Error { err: r.read_i32()? },
        op::MULTI if !in_multi => {
            let subs = r.read_vec(|r| {
                let sub_op = r.read_i32()?;
                let data = r.read_buffer()?.ok_or(DecodeError::Invalid("null multi sub-txn"))?;
                let mut inner = Reader::new(data);
                let sub = decode_record(&mut inner, sub_op, Nesting::InMulti)?;
                if !inner.is_empty() {
                    return Err(DecodeError::Invalid("bytes after a multi sub-txn"));
                }
                Ok((sub_op, sub))
            })?;
            Txn::Multi(subs)
        }
        op::CREATE_SESSION if !in_multi => Txn::CreateSession { timeout_ms: r.read_i32()? },
        op::CLOSE_SESSION if !in_multi => {
            Txn::CloseSession { paths_to_delete: if r.is_empty() { None } else { Some(r.read_string_vec()?) } }
        }
        _ => return Err(DecodeError::Invalid("unknown txn type")),
    })
}

/// The zxid of a payload without decoding it (TxnHeader bytes 12..20).
pub fn payload_zxid(payload: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = payload.get(12..20)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Id;
    use proptest::prelude::*;

    #[test]
    fn header_time_is_read_without_decoding_the_record() {
        let header = TxnHeader { session_id: 7, cxid: 3, zxid: 0x1_0000_0002, time_ms: 1_700_000_123_456, op: 5 };
        let bytes = LoggedTxn { header, txn: Txn::CreateSession { timeout_ms: 4000 }, digest: None }.to_bytes();
        assert_eq!(header_time_ms(&bytes), Some(1_700_000_123_456));
        assert_eq!(header_time_ms(&bytes[..27]), None);
    }

    fn arb_data() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from))
    }

    fn arb_acl() -> impl Strategy<Value = Vec<Acl>> {
        proptest::collection::vec(
            (0..32i32, "[a-z]{1,6}", "[a-z:]{0,10}")
                .prop_map(|(perms, scheme, id)| Acl { perms, id: Id { scheme, id } }),
            0..3,
        )
    }

    fn arb_path() -> impl Strategy<Value = String> {
        "(/[a-z0-9]{1,5}){1,3}"
    }

    /// (txn type, txn) pairs that may stand inside a multi.
    fn arb_sub_txn() -> impl Strategy<Value = (i32, Txn)> {
        prop_oneof![
            (arb_path(), arb_data(), arb_acl(), any::<bool>(), any::<i32>(), prop_oneof![Just(1), Just(15)]).prop_map(
                |(path, data, acl, ephemeral, parent_cversion, t)| {
                    (t, Txn::Create { path, data, acl, ephemeral, parent_cversion })
                }
            ),
            (arb_path(), arb_data(), arb_acl(), any::<i32>()).prop_map(|(path, data, acl, parent_cversion)| {
                (op::CREATE_CONTAINER, Txn::CreateContainer { path, data, acl, parent_cversion })
            }),
            (arb_path(), arb_data(), arb_acl(), any::<i32>(), any::<i64>()).prop_map(
                |(path, data, acl, parent_cversion, ttl_ms)| {
                    (op::CREATE_TTL, Txn::CreateTtl { path, data, acl, parent_cversion, ttl_ms })
                }
            ),
            (arb_path(), prop_oneof![Just(2), Just(20)]).prop_map(|(path, t)| (t, Txn::Delete { path })),
            (arb_path(), arb_data(), any::<i32>())
                .prop_map(|(path, data, version)| (op::SET_DATA, Txn::SetData { path, data, version })),
            (arb_path(), any::<i32>()).prop_map(|(path, version)| (op::CHECK, Txn::Check { path, version })),
            any::<i32>().prop_map(|err| (op::ERROR, Txn::Error { err })),
        ]
    }

    fn arb_top_txn() -> impl Strategy<Value = (i32, Txn)> {
        prop_oneof![
            arb_sub_txn().prop_filter("check is multi-only", |(t, _)| *t != op::CHECK),
            (arb_path(), arb_acl(), any::<i32>())
                .prop_map(|(path, acl, version)| (op::SET_ACL, Txn::SetAcl { path, acl, version })),
            proptest::collection::vec(arb_sub_txn(), 0..4).prop_map(|subs| (op::MULTI, Txn::Multi(subs))),
            any::<i32>().prop_map(|timeout_ms| (op::CREATE_SESSION, Txn::CreateSession { timeout_ms })),
            proptest::option::of(proptest::collection::vec(arb_path(), 0..3))
                .prop_map(|paths_to_delete| (op::CLOSE_SESSION, Txn::CloseSession { paths_to_delete })),
        ]
    }

    fn arb_logged() -> impl Strategy<Value = LoggedTxn> {
        (
            arb_top_txn(),
            any::<i64>(),
            any::<i32>(),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of((any::<i32>(), any::<i64>())),
        )
            .prop_map(|((t, txn), session_id, cxid, zxid, time_ms, digest)| {
                // The body-less closeSession is pre-3.6, from before digests.
                let digest = match txn {
                    Txn::CloseSession { paths_to_delete: None } => None,
                    _ => digest.map(|(version, tree_digest)| TxnDigest { version, tree_digest }),
                };
                LoggedTxn { header: TxnHeader { session_id, cxid, zxid, time_ms, op: t }, txn, digest }
            })
    }

    proptest! {
        #[test]
        fn round_trip(t in arb_logged()) {
            let bytes = t.to_bytes();
            prop_assert_eq!(payload_zxid(&bytes), Some(t.header.zxid));
            prop_assert_eq!(LoggedTxn::decode(bytes).unwrap(), t);
        }

        #[test]
        fn truncations_are_errors_or_shorter_forms(t in arb_logged()) {
            let bytes = t.to_bytes();
            for cut in 0..bytes.len() {
                // A cut can only decode when it lands on a shorter legal form
                // (a digest-less txn, a body-less closeSession, a V0 create).
                if let Ok(decoded) = LoggedTxn::decode(bytes.slice(..cut)) {
                    let v0_create = matches!(decoded.txn, Txn::Create { parent_cversion: -1, .. });
                    prop_assert!(v0_create || decoded.to_bytes().len() == cut);
                }
            }
        }
    }

    /// The bytes of an Apache CreateTxn entry, field by field.
    #[test]
    fn create_txn_layout_is_apaches() {
        let t = LoggedTxn {
            header: TxnHeader { session_id: 0x11, cxid: 2, zxid: 0x1_0000_0003, time_ms: 4, op: op::CREATE },
            txn: Txn::Create {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                acl: vec![Acl { perms: 31, id: Id::anyone() }],
                ephemeral: true,
                parent_cversion: 5,
            },
            digest: Some(TxnDigest { version: TXN_DIGEST_VERSION, tree_digest: 7 }),
        };
        let mut expected = Vec::new();
        expected.extend_from_slice(&0x11i64.to_be_bytes());
        expected.extend_from_slice(&2i32.to_be_bytes());
        expected.extend_from_slice(&0x1_0000_0003i64.to_be_bytes());
        expected.extend_from_slice(&4i64.to_be_bytes());
        expected.extend_from_slice(&1i32.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 2, b'/', b'a', 0, 0, 0, 1, b'x']);
        expected.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 5]);
        expected.extend_from_slice(b"world");
        expected.extend_from_slice(&[0, 0, 0, 6]);
        expected.extend_from_slice(b"anyone");
        expected.extend_from_slice(&[1, 0, 0, 0, 5]);
        expected.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&t.to_bytes()[..], &expected[..]);
    }

    #[test]
    fn null_data_is_distinct_from_empty() {
        for data in [None, Some(Bytes::new())] {
            let t = LoggedTxn {
                header: TxnHeader { session_id: 1, cxid: 1, zxid: 1, time_ms: 1, op: op::SET_DATA },
                txn: Txn::SetData { path: "/a".into(), data: data.clone(), version: 1 },
                digest: None,
            };
            let back = LoggedTxn::decode(t.to_bytes()).unwrap();
            assert_eq!(back.txn, Txn::SetData { path: "/a".into(), data, version: 1 });
        }
    }

    #[test]
    fn v0_create_and_bodyless_close_session_decode() {
        let mut v0 = BytesMut::new();
        let mut w = Writer::new(&mut v0);
        w.i64(1).i32(1).i64(9).i64(1).i32(op::CREATE).string("/v0").buffer(None);
        encode_acl_list(&mut w, &[]);
        w.bool(false);
        let back = LoggedTxn::decode(v0.freeze()).unwrap();
        assert!(matches!(back.txn, Txn::Create { parent_cversion: -1, .. }));

        let mut close = BytesMut::new();
        Writer::new(&mut close).i64(1).i32(1).i64(9).i64(1).i32(op::CLOSE_SESSION);
        let back = LoggedTxn::decode(close.freeze()).unwrap();
        assert_eq!(back.txn, Txn::CloseSession { paths_to_delete: None });
    }

    #[test]
    fn nested_or_foreign_types_are_refused() {
        let inner_multi = LoggedTxn {
            header: TxnHeader { session_id: 1, cxid: 1, zxid: 1, time_ms: 1, op: op::MULTI },
            txn: Txn::Multi(vec![(op::MULTI, Txn::Multi(vec![]))]),
            digest: None,
        };
        assert!(LoggedTxn::decode(inner_multi.to_bytes()).is_err());
        let mut unknown = BytesMut::new();
        Writer::new(&mut unknown).i64(1).i32(1).i64(9).i64(1).i32(77);
        assert!(LoggedTxn::decode(unknown.freeze()).is_err());
    }
}
