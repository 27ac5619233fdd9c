//! The logged transaction: what the commit shard appends to the txn log for
//! every zxid it hands out, and what recovery replays.
//!
//! Layout (jute primitives, big-endian): `zxid i64, time_ms i64,
//! session_id i64, body_tag u8, body`. Bodies:
//! * 1 CreateSession: `timeout_ms i32`
//! * 2 CloseSession: nothing
//! * 3 Write: `op i32, auth_ids vector<Id>, err i32, write WriteOp`
//! * 4 DeleteContainer: `path ustring`
//!
//! A `WriteOp` is `tag u8` then its fields; data buffers keep null (-1)
//! distinct from empty; a Multi is `count i32` then nested WriteOps.

use bytes::{Bytes, BytesMut};

use crate::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::{decode_acl_list, encode_acl_list, Id};
use crate::tree::WriteOp;

/// Multi nesting deeper than this is refused on decode, so a corrupt record
/// cannot exhaust the stack (ZooKeeper's multi does not nest at all).
const MAX_MULTI_DEPTH: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub struct TxnRecord {
    pub zxid: i64,
    /// The txn header time, ms since the epoch.
    pub time_ms: i64,
    pub session_id: i64,
    pub body: TxnBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TxnBody {
    CreateSession {
        timeout_ms: i32,
    },
    /// Deletes the session's ephemerals on replay.
    CloseSession,
    /// A client write, with the caller's auth ids so replay makes the same
    /// ACL decisions (ACL fixup of the `auth` scheme depends on them) and the
    /// result code it had.
    Write {
        op: i32,
        auth_ids: Vec<Id>,
        write: WriteOp,
        err: i32,
    },
    /// The reaper's delete of an empty container / expired TTL node.
    DeleteContainer {
        path: String,
    },
}

mod tag {
    pub const CREATE_SESSION: u8 = 1;
    pub const CLOSE_SESSION: u8 = 2;
    pub const WRITE: u8 = 3;
    pub const DELETE_CONTAINER: u8 = 4;

    pub const OP_CREATE: u8 = 1;
    pub const OP_DELETE: u8 = 2;
    pub const OP_SET_DATA: u8 = 3;
    pub const OP_SET_ACL: u8 = 4;
    pub const OP_CHECK: u8 = 5;
    pub const OP_MULTI: u8 = 6;
    pub const OP_DELETE_CONTAINER: u8 = 7;
    pub const OP_CLOSE_SESSION: u8 = 8;
}

/// Encodes a client write's record from borrowed parts — the same bytes as
/// `TxnRecord { body: TxnBody::Write { .. } }.encode(out)` — so the commit
/// shard logs a write without cloning its request.
#[allow(clippy::too_many_arguments)]
pub fn encode_write_txn(
    out: &mut BytesMut,
    zxid: i64,
    time_ms: i64,
    session_id: i64,
    op: i32,
    auth_ids: &[Id],
    write: &WriteOp,
    err: i32,
) {
    let mut w = Writer::new(out);
    w.i64(zxid).i64(time_ms).i64(session_id);
    encode_write_body(&mut w, op, auth_ids, write, err);
}

fn encode_write_body(w: &mut Writer<'_>, op: i32, auth_ids: &[Id], write: &WriteOp, err: i32) {
    w.u8(tag::WRITE).i32(op);
    w.vec(auth_ids, |w, id| {
        w.string(&id.scheme).string(&id.id);
    });
    w.i32(err);
    encode_write_op(w, write);
}

impl TxnRecord {
    /// Appends the encoded record to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = Writer::new(out);
        w.i64(self.zxid).i64(self.time_ms).i64(self.session_id);
        match &self.body {
            TxnBody::CreateSession { timeout_ms } => {
                w.u8(tag::CREATE_SESSION).i32(*timeout_ms);
            }
            TxnBody::CloseSession => {
                w.u8(tag::CLOSE_SESSION);
            }
            TxnBody::Write { op, auth_ids, write, err } => {
                encode_write_body(&mut w, *op, auth_ids, write, *err);
            }
            TxnBody::DeleteContainer { path } => {
                w.u8(tag::DELETE_CONTAINER).string(path);
            }
        }
    }

    /// Decodes one whole record; trailing bytes are an error. Data buffers
    /// are zero-copy slices of `bytes`.
    pub fn decode(bytes: Bytes) -> DecodeResult<TxnRecord> {
        let mut r = Reader::new(bytes);
        let zxid = r.read_i64()?;
        let time_ms = r.read_i64()?;
        let session_id = r.read_i64()?;
        let body = match r.read_u8()? {
            tag::CREATE_SESSION => TxnBody::CreateSession { timeout_ms: r.read_i32()? },
            tag::CLOSE_SESSION => TxnBody::CloseSession,
            tag::WRITE => {
                let op = r.read_i32()?;
                let auth_ids = r.read_vec(|r| Ok(Id { scheme: r.read_string()?, id: r.read_string()? }))?;
                let err = r.read_i32()?;
                let write = decode_write_op(&mut r, 0)?;
                TxnBody::Write { op, auth_ids, write, err }
            }
            tag::DELETE_CONTAINER => TxnBody::DeleteContainer { path: r.read_string()? },
            _ => return Err(DecodeError::Invalid("txn body tag")),
        };
        if !r.is_empty() {
            return Err(DecodeError::Invalid("trailing bytes after txn"));
        }
        Ok(TxnRecord { zxid, time_ms, session_id, body })
    }
}

fn encode_write_op(w: &mut Writer<'_>, op: &WriteOp) {
    match op {
        WriteOp::Create { path, data, acl, flags, ttl, op } => {
            w.u8(tag::OP_CREATE).string(path).buffer(data.as_deref());
            encode_acl_list(w, acl);
            w.i32(*flags);
            match ttl {
                None => w.u8(0),
                Some(ttl) => w.u8(1).i64(*ttl),
            };
            w.i32(*op);
        }
        WriteOp::Delete { path, version } => {
            w.u8(tag::OP_DELETE).string(path).i32(*version);
        }
        WriteOp::SetData { path, data, version } => {
            w.u8(tag::OP_SET_DATA).string(path).buffer(data.as_deref()).i32(*version);
        }
        WriteOp::SetAcl { path, acl, version } => {
            w.u8(tag::OP_SET_ACL).string(path);
            encode_acl_list(w, acl);
            w.i32(*version);
        }
        WriteOp::Check { path, version } => {
            w.u8(tag::OP_CHECK).string(path).i32(*version);
        }
        WriteOp::Multi(ops) => {
            w.u8(tag::OP_MULTI);
            w.vec(ops, encode_write_op);
        }
        WriteOp::DeleteContainer { path } => {
            w.u8(tag::OP_DELETE_CONTAINER).string(path);
        }
        WriteOp::CloseSession => {
            w.u8(tag::OP_CLOSE_SESSION);
        }
    }
}

fn decode_write_op(r: &mut Reader, depth: u32) -> DecodeResult<WriteOp> {
    Ok(match r.read_u8()? {
        tag::OP_CREATE => {
            let path = r.read_string()?;
            let data = r.read_buffer()?;
            let acl = decode_acl_list(r)?;
            let flags = r.read_i32()?;
            let ttl = match r.read_u8()? {
                0 => None,
                1 => Some(r.read_i64()?),
                _ => return Err(DecodeError::Invalid("create ttl flag")),
            };
            let op = r.read_i32()?;
            WriteOp::Create { path, data, acl, flags, ttl, op }
        }
        tag::OP_DELETE => WriteOp::Delete { path: r.read_string()?, version: r.read_i32()? },
        tag::OP_SET_DATA => WriteOp::SetData { path: r.read_string()?, data: r.read_buffer()?, version: r.read_i32()? },
        tag::OP_SET_ACL => WriteOp::SetAcl { path: r.read_string()?, acl: decode_acl_list(r)?, version: r.read_i32()? },
        tag::OP_CHECK => WriteOp::Check { path: r.read_string()?, version: r.read_i32()? },
        tag::OP_MULTI => {
            if depth >= MAX_MULTI_DEPTH {
                return Err(DecodeError::Invalid("multi nested too deep"));
            }
            WriteOp::Multi(r.read_vec(|r| decode_write_op(r, depth + 1))?)
        }
        tag::OP_DELETE_CONTAINER => WriteOp::DeleteContainer { path: r.read_string()? },
        tag::OP_CLOSE_SESSION => WriteOp::CloseSession,
        _ => return Err(DecodeError::Invalid("write op tag")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Acl;
    use proptest::prelude::*;

    fn arb_data() -> impl Strategy<Value = Option<Bytes>> {
        prop_oneof![Just(None), proptest::collection::vec(any::<u8>(), 0..40).prop_map(|v| Some(Bytes::from(v)))]
    }

    fn arb_id() -> impl Strategy<Value = Id> {
        ("[a-z]{0,6}", "\\PC{0,12}").prop_map(|(scheme, id)| Id { scheme, id })
    }

    fn arb_acl() -> impl Strategy<Value = Vec<Acl>> {
        proptest::collection::vec((any::<i32>(), arb_id()).prop_map(|(perms, id)| Acl { perms, id }), 0..4)
    }

    fn arb_path() -> impl Strategy<Value = String> {
        "(/\\PC{0,8}){0,3}"
    }

    fn arb_leaf_op() -> impl Strategy<Value = WriteOp> {
        prop_oneof![
            (arb_path(), arb_data(), arb_acl(), any::<i32>(), proptest::option::of(any::<i64>()), any::<i32>())
                .prop_map(|(path, data, acl, flags, ttl, op)| WriteOp::Create { path, data, acl, flags, ttl, op }),
            (arb_path(), any::<i32>()).prop_map(|(path, version)| WriteOp::Delete { path, version }),
            (arb_path(), arb_data(), any::<i32>()).prop_map(|(path, data, version)| WriteOp::SetData {
                path,
                data,
                version
            }),
            (arb_path(), arb_acl(), any::<i32>()).prop_map(|(path, acl, version)| WriteOp::SetAcl {
                path,
                acl,
                version
            }),
            (arb_path(), any::<i32>()).prop_map(|(path, version)| WriteOp::Check { path, version }),
            arb_path().prop_map(|path| WriteOp::DeleteContainer { path }),
            Just(WriteOp::CloseSession),
        ]
    }

    fn arb_write_op() -> impl Strategy<Value = WriteOp> {
        arb_leaf_op().prop_recursive(3, 24, 6, |inner| proptest::collection::vec(inner, 0..6).prop_map(WriteOp::Multi))
    }

    proptest! {
        #[test]
        fn borrowed_write_encoding_matches_the_record(
            zxid in any::<i64>(), time in any::<i64>(), sid in any::<i64>(), op in any::<i32>(),
            ids in proptest::collection::vec(arb_id(), 0..3), write in arb_write_op(), err in any::<i32>()
        ) {
            let mut borrowed = BytesMut::new();
            encode_write_txn(&mut borrowed, zxid, time, sid, op, &ids, &write, err);
            let mut owned = BytesMut::new();
            TxnRecord { zxid, time_ms: time, session_id: sid, body: TxnBody::Write { op, auth_ids: ids, write, err } }
                .encode(&mut owned);
            prop_assert_eq!(borrowed, owned);
        }
    }

    fn arb_body() -> impl Strategy<Value = TxnBody> {
        prop_oneof![
            any::<i32>().prop_map(|timeout_ms| TxnBody::CreateSession { timeout_ms }),
            Just(TxnBody::CloseSession),
            (any::<i32>(), proptest::collection::vec(arb_id(), 0..3), arb_write_op(), any::<i32>())
                .prop_map(|(op, auth_ids, write, err)| TxnBody::Write { op, auth_ids, write, err }),
            arb_path().prop_map(|path| TxnBody::DeleteContainer { path }),
        ]
    }

    fn round_trip(txn: &TxnRecord) -> DecodeResult<TxnRecord> {
        let mut buf = BytesMut::new();
        txn.encode(&mut buf);
        TxnRecord::decode(buf.freeze())
    }

    proptest! {
        #[test]
        fn txn_round_trip(zxid in any::<i64>(), time_ms in any::<i64>(), session_id in any::<i64>(), body in arb_body()) {
            let txn = TxnRecord { zxid, time_ms, session_id, body };
            prop_assert_eq!(round_trip(&txn).unwrap(), txn);
        }

        #[test]
        fn every_truncation_is_an_error(body in arb_body()) {
            let txn = TxnRecord { zxid: 7, time_ms: 8, session_id: 9, body };
            let mut buf = BytesMut::new();
            txn.encode(&mut buf);
            let bytes = buf.freeze();
            for cut in 0..bytes.len() {
                prop_assert!(TxnRecord::decode(bytes.slice(..cut)).is_err());
            }
        }
    }

    #[test]
    fn null_data_is_distinct_from_empty() {
        for data in [None, Some(Bytes::new())] {
            let txn = TxnRecord {
                zxid: 1,
                time_ms: 2,
                session_id: 3,
                body: TxnBody::Write {
                    op: crate::proto::op::SET_DATA,
                    auth_ids: vec![Id::new("digest", "u:x")],
                    write: WriteOp::SetData { path: "/a".into(), data: data.clone(), version: -1 },
                    err: 0,
                },
            };
            assert_eq!(round_trip(&txn).unwrap(), txn);
        }
    }

    #[test]
    fn trailing_bytes_and_bad_tags_are_refused() {
        let txn = TxnRecord { zxid: 1, time_ms: 2, session_id: 3, body: TxnBody::CloseSession };
        let mut buf = BytesMut::new();
        txn.encode(&mut buf);
        let mut longer = buf.clone();
        longer.extend_from_slice(&[0]);
        assert!(TxnRecord::decode(longer.freeze()).is_err());
        let mut bad_tag = buf.clone();
        bad_tag[24] = 99;
        assert_eq!(TxnRecord::decode(bad_tag.freeze()), Err(DecodeError::Invalid("txn body tag")));
    }

    #[test]
    fn deep_multi_nesting_is_refused() {
        let mut op = WriteOp::CloseSession;
        for _ in 0..20 {
            op = WriteOp::Multi(vec![op]);
        }
        let txn = TxnRecord {
            zxid: 1,
            time_ms: 2,
            session_id: 3,
            body: TxnBody::Write { op: 14, auth_ids: vec![], write: op, err: 0 },
        };
        assert!(round_trip(&txn).is_err());
    }
}
