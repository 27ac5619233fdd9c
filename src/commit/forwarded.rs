//! A learner's forwarded client request as the leader reads it, sans-IO:
//! production's `quorum_peer::execute_forwarded` and the simulator's
//! `execute_forwarded` both decide with `read_forwarded` what a REQUEST's
//! body asks for, then carry it out with the shared `Sequencer`.

use bytes::Bytes;

use crate::jute::Reader;
use crate::proto::{decode_request, op};
use crate::server::connection::into_write;
use crate::tree::WriteOp;

/// What a forwarded request asks the leader to execute.
#[derive(Debug)]
pub enum ForwardedOp {
    /// createSession with the timeout the learner negotiated.
    CreateSession { timeout_ms: i32 },
    /// closeSession: its ephemerals go with it.
    CloseSession,
    /// Any other write, admitted by the session checks first.
    Write(WriteOp),
    /// A createSession without a timeout: nothing to execute, and no
    /// client to answer (the learner's own connect times out).
    CreateSessionWithoutTimeout,
    /// The body does not decode as the op's request: an error txn tells
    /// the learner's client MARSHALLINGERROR when it commits.
    Undecodable,
}

/// Reads the body of a forwarded request of `op_type` (any op but SYNC,
/// which the leader answers with a round, not a txn). `max_field_len`
/// bounds a field as the server's `jute.maxbuffer` does.
pub fn read_forwarded(op_type: i32, body: Bytes, max_field_len: usize) -> ForwardedOp {
    match op_type {
        op::CREATE_SESSION => match Reader::new(body).read_i32() {
            Ok(timeout_ms) => ForwardedOp::CreateSession { timeout_ms },
            Err(_) => ForwardedOp::CreateSessionWithoutTimeout,
        },
        op::CLOSE_SESSION => ForwardedOp::CloseSession,
        _ => {
            // The body slices the link's read buffer, which other packets
            // share; a large one is copied out first, so the value the
            // tree keeps (`tree::node::KEPT_VALUE_MIN_BYTES`) pins nothing else.
            let body =
                if body.len() >= crate::tree::KEPT_VALUE_MIN_BYTES { Bytes::copy_from_slice(&body) } else { body };
            let mut r = Reader::new(body).with_max_field_len(max_field_len);
            match decode_request(op_type, &mut r).ok().and_then(|req| into_write(op_type, req).ok()) {
                Some(write) => ForwardedOp::Write(write),
                None => ForwardedOp::Undecodable,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::jute::Writer;

    #[test]
    fn the_body_decides_what_is_executed() {
        let mut timeout = BytesMut::new();
        Writer::new(&mut timeout).i32(30_000);
        assert!(matches!(
            read_forwarded(op::CREATE_SESSION, timeout.freeze(), 1024),
            ForwardedOp::CreateSession { timeout_ms: 30_000 }
        ));
        assert!(matches!(
            read_forwarded(op::CREATE_SESSION, Bytes::new(), 1024),
            ForwardedOp::CreateSessionWithoutTimeout
        ));
        assert!(matches!(read_forwarded(op::CLOSE_SESSION, Bytes::new(), 1024), ForwardedOp::CloseSession));
        // delete("/a", version -1)
        let mut delete = BytesMut::new();
        Writer::new(&mut delete).string("/a").i32(-1);
        match read_forwarded(op::DELETE, delete.freeze(), 1024) {
            ForwardedOp::Write(WriteOp::Delete { path, version }) => assert_eq!((path.as_str(), version), ("/a", -1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(read_forwarded(op::DELETE, Bytes::from_static(b"\x00"), 1024), ForwardedOp::Undecodable));
        // A path longer than the field limit does not decode.
        let mut long = BytesMut::new();
        Writer::new(&mut long).string(&"/x".repeat(600)).i32(-1);
        assert!(matches!(read_forwarded(op::DELETE, long.freeze(), 1024), ForwardedOp::Undecodable));
    }
}
