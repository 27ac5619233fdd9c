//! One client connection on a worker shard: a reader task that splits
//! frames and dispatches them, and a writer task that flushes the
//! connection's output buffer in order (events and replies interleaved as
//! the shard queued them). Both run on the shard's executor.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel;
use glommio::net::TcpStream;

use crate::jute::{Reader, Record};
use crate::proto::frame::{four_letter_word, FrameDecoder};
use crate::proto::records::*;
use crate::proto::{op, ErrorCode};
use crate::sasl::digest_md5::{DigestMd5Server, Step};
use crate::server::messages::ToCommit;
use crate::server::stats::ServerMode;
use crate::server::tls;
use crate::server::worker_shard::{Conn, WorkerShard};
use crate::session::session_password;
use crate::tree::WriteOp;

/// Largest socket read. Reads land in a per-connection scratch buffer
/// zeroed once (not a fresh 64 KiB zero-fill of the frame buffer per read),
/// and are copied into the frame buffer: a read costs its own bytes. 16 KiB:
/// the scratch is per connection, and a server holds tens of thousands.
const READ_CHUNK: usize = 16 * 1024;
/// Room left in the frame buffer below which a read may grow it; above it
/// a read takes at most the room, so a large frame the decoder reserved
/// exactly is filled in place and never regrown (copied) at its end.
const READ_MIN_ROOM: usize = 4 * 1024;
/// Frames at least this long are read straight into an allocation of their
/// own, in reads of up to `LARGE_FRAME_READ_BYTES`: no copy through the
/// scratch buffer, a few reads instead of one per `READ_CHUNK`, and the
/// frame owns exactly its bytes, so the value a request slices out of it
/// pins nothing else.
pub const LARGE_FRAME_MIN_BYTES: usize = crate::tree::KEPT_VALUE_MIN_BYTES;
const LARGE_FRAME_READ_BYTES: usize = 1024 * 1024;

pub async fn serve(shard: Rc<WorkerShard>, stream: TcpStream, transport: tls::Transport) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let Some(_slot) = shard.limiter.try_acquire(peer.ip(), shard.config.max_client_cnxns) else {
        tracing::warn!(%peer, limit = shard.config.max_client_cnxns, "too many connections from this address; closing");
        return;
    };
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let accepted = match tls::accept(stream, &transport).await {
        Ok(accepted) => accepted,
        Err(e) => {
            tracing::info!(%peer, error = %e, "TLS handshake failed; closing");
            return;
        }
    };
    let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
    let conn = shard.new_conn(peer, wake_tx);
    match accepted {
        tls::Accepted::Plain(stream) => serve_stream(shard, conn, fd, wake_rx, stream).await,
        tls::Accepted::Tls(stream, identity) => {
            conn.secure.set(true);
            if let Some(identity) = identity {
                tls::grant_x509(&conn, &identity);
            }
            serve_stream(shard, conn, fd, wake_rx, *stream).await
        }
    }
}

/// The connection's reader and writer over `stream` (the bare socket, or
/// the socket under TLS).
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin + 'static>(
    shard: Rc<WorkerShard>,
    conn: Rc<Conn>,
    fd: std::os::fd::RawFd,
    wake_rx: local_channel::LocalReceiver<()>,
    stream: S,
) {
    let (reader, writer) = futures_lite::io::split(stream);

    let writer_task = {
        let conn = conn.clone();
        glommio::spawn_local(async move {
            let mut writer = writer;
            loop {
                let chunk = {
                    let mut out = conn.out.borrow_mut();
                    if out.is_empty() {
                        None
                    } else {
                        Some(out.split().freeze())
                    }
                };
                match chunk {
                    Some(bytes) => {
                        if writer.write_all(&bytes).await.is_err() {
                            // Whoever is still queueing (a long report) stops.
                            conn.closing.set(true);
                            break;
                        }
                    }
                    None if conn.closing.get() => break,
                    None => {
                        if wake_rx.recv().await.is_none() {
                            break;
                        }
                    }
                }
            }
            let _ = writer.flush().await;
            // Ends the reader's pending recv too.
            // SAFETY: fd belongs to the stream, which is still alive (the
            // reader half holds it until serve() returns).
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        })
        .detach()
    };

    if let Err(reason) = read_loop(&shard, &conn, reader).await {
        tracing::debug!(peer = %conn.peer, conn = conn.id, %reason, "closing connection");
    }
    conn.close_after_flush();
    let _ = writer_task.await;
    shard.forget_conn(&conn).await;
}

async fn read_loop<R: futures_lite::AsyncRead + Unpin>(
    shard: &Rc<WorkerShard>,
    conn: &Rc<Conn>,
    mut reader: R,
) -> Result<(), String> {
    let max = shard.config.jute_max_buffer;
    let mut decoder = FrameDecoder::new(max);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut handshaken = false;
    loop {
        if conn.closing.get() {
            return Ok(());
        }
        let room = buf.capacity() - buf.len();
        let want = if room >= READ_MIN_ROOM { room.min(READ_CHUNK) } else { READ_CHUNK };
        let n = match reader.read(&mut scratch[..want]).await {
            Ok(0) => return Err("end of stream".into()),
            Ok(n) => n,
            Err(e) => return Err(format!("read error: {e}")),
        };
        buf.extend_from_slice(scratch.get(..n).unwrap_or_default());

        if !handshaken && buf.len() >= 4 {
            let first = [buf[0], buf[1], buf[2], buf[3]];
            if let Some(cmd) = four_letter_word(first) {
                shard.four_letter_word(conn, cmd).await;
                return Ok(());
            }
        }
        loop {
            let frame = match large_frame_len(&buf, max) {
                Some(len) => read_large_frame(&mut reader, &mut buf, len).await?,
                None => match decoder.decode(&mut buf) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(peer = %conn.peer, error = ?e, max_frame = max, "bad frame length; closing connection (raise jute.maxbuffer if this client is legitimate)");
                        return Err("bad frame".into());
                    }
                },
            };
            conn.stats.received.set(conn.stats.received.get() + 1);
            if !handshaken {
                if !handshake(shard, conn, frame).await? {
                    return Ok(());
                }
                handshaken = true;
                continue;
            }
            // Back-pressure: stop reading once too much is outstanding.
            if conn.permits.acquire(1).await.is_err() {
                return Err("connection closed".into());
            }
            // globalOutstandingLimit: this shard's share of requests in flight.
            if shard.shard_permits.acquire(1).await.is_err() {
                return Err("shard stopping".into());
            }
            conn.shard_permits_held.set(conn.shard_permits_held.get() + 1);
            dispatch(shard, conn, frame).await?;
            if conn.closing.get() {
                return Ok(());
            }
        }
    }
}

/// The length of the frame `buf` starts, when it is a large one
/// (`LARGE_FRAME_MIN_BYTES`, within `max`) not yet whole in `buf`. A bad
/// prefix is left to the decoder to refuse.
fn large_frame_len(buf: &BytesMut, max: usize) -> Option<usize> {
    let prefix: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let len = usize::try_from(i32::from_be_bytes(prefix)).ok()?;
    (len >= LARGE_FRAME_MIN_BYTES && len <= max && buf.len() < 4 + len).then_some(len)
}

/// Reads the rest of a large frame (its prefix and first bytes are all of
/// `buf`) into an allocation of its own; `buf` is left empty. The frame's
/// room is reserved at once but zeroed (so readable into) only
/// `LARGE_FRAME_READ_BYTES` ahead of what has arrived: a peer that
/// announces a large frame and sends little costs what it sent, and every
/// byte is zeroed once.
async fn read_large_frame<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    len: usize,
) -> Result<bytes::Bytes, String> {
    let mut frame: Vec<u8> = Vec::with_capacity(len);
    frame.extend_from_slice(buf.get(4..).unwrap_or_default());
    buf.clear();
    let mut filled = frame.len();
    while filled < len {
        if filled == frame.len() {
            frame.resize(len.min(filled + LARGE_FRAME_READ_BYTES), 0);
        }
        match reader.read(&mut frame[filled..]).await {
            Ok(0) => return Err("end of stream".into()),
            Ok(n) => filled += n,
            Err(e) => return Err(format!("read error: {e}")),
        }
    }
    Ok(bytes::Bytes::from(frame))
}

/// Handles the ConnectRequest. Ok(false) when the connection must close.
async fn handshake(shard: &Rc<WorkerShard>, conn: &Rc<Conn>, frame: bytes::Bytes) -> Result<bool, String> {
    let mut r = Reader::new(frame);
    let req = ConnectRequest::decode(&mut r).map_err(|e| format!("bad ConnectRequest: {e}"))?;
    conn.read_only_flag.set(req.read_only);
    if shard.server_stats.mode() == ServerMode::ReadOnly && req.read_only != Some(true) {
        // As Apache's read-only server: only clients that accept a
        // read-only session may connect (the commit shard checks again,
        // see ReplyKind::ConnectReadOnly).
        tracing::info!(peer = %conn.peer, "refusing session request for not-read-only client");
        return Ok(false);
    }
    if req.last_zxid_seen > shard.server_stats.last_zxid() {
        // The client has seen a newer state than ours: it must try another server.
        tracing::info!(peer = %conn.peer, client_zxid = req.last_zxid_seen, our_zxid = shard.server_stats.last_zxid(), "refusing client that is ahead of this server");
        return Ok(false);
    }
    let cfg = &shard.config;
    let timeout_ms = req.timeout_ms.clamp(cfg.min_session_timeout_ms as i32, cfg.max_session_timeout_ms as i32);
    let (tx, rx) = local_channel::new_bounded::<bool>(1);
    *conn.handshake.borrow_mut() = Some(tx);
    let me = shard.conn_ref(conn);
    if req.session_id == 0 {
        let _ = shard.to_commit.send(ToCommit::CreateSession { conn: me, timeout_ms }).await;
    } else if req.passwd.as_ref() != session_password(req.session_id).as_slice() {
        // Wrong password: the expired-session answer, then close.
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout_ms: 0,
            session_id: 0,
            passwd: bytes::Bytes::from_static(&[0u8; 16]),
            read_only: req.read_only.map(|_| shard.server_stats.mode() == ServerMode::ReadOnly),
        };
        encode_record_frame(&mut conn.out.borrow_mut(), &resp);
        conn.close_after_flush();
        return Ok(false);
    } else {
        let _ = shard.to_commit.send(ToCommit::Revalidate { conn: me, session_id: req.session_id, timeout_ms }).await;
    }
    // Reading pauses until the session is settled; pipelined requests wait
    // in the socket buffer.
    match rx.recv().await {
        Some(true) => {
            shard.touch(conn.session_id.get());
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Routes one request: to the commit shard (writes, sync, close) or to the
/// shard's local executor (reads, watches, auth), keeping per-session order.
async fn dispatch(shard: &Rc<WorkerShard>, conn: &Rc<Conn>, frame: bytes::Bytes) -> Result<(), String> {
    let received = Instant::now();
    let mut r = Reader::new(frame).with_max_field_len(shard.config.jute_max_buffer * 2);
    let header = RequestHeader::decode(&mut r).map_err(|e| format!("bad request header: {e}"))?;
    let sid = conn.session_id.get();
    shard.touch(sid);
    conn.stats.last_cxid.set(header.xid);
    let request = match decode_request(header.op, &mut r) {
        Ok(req) => req,
        Err(RequestError::UnknownOp(_)) => {
            conn.push_reply(header.xid, shard.view_zxid.get(), ErrorCode::Unimplemented, None);
            shard.finish_request(conn, header.op, Some(received));
            conn.close_after_flush();
            return Ok(());
        }
        Err(RequestError::Malformed(e)) => {
            tracing::debug!(peer = %conn.peer, op = header.op, error = %e, "undecodable request");
            conn.push_reply(header.xid, shard.view_zxid.get(), ErrorCode::MarshallingError, None);
            shard.finish_request(conn, header.op, Some(received));
            return Ok(());
        }
    };
    if !authentication_enforced(&shard.config.sasl.enforce_auth_schemes, conn, &request) {
        // As Apache's AuthenticationHelper.enforceAuthentication: answer,
        // then close the connection (the session lives on until it expires).
        tracing::info!(peer = %conn.peer, schemes = ?shard.config.sasl.enforce_auth_schemes, op = header.op, "request from a connection not authenticated by a required scheme; closing");
        conn.push_reply(header.xid, 0, ErrorCode::SessionClosedRequireSaslAuth, None);
        shard.finish_request(conn, header.op, Some(received));
        conn.close_after_flush();
        return Ok(());
    }
    let me = shard.conn_ref(conn);
    match request {
        Request::Auth(auth) => {
            // Answered at once, as ZooKeeper does (not queued behind writes).
            let super_digest = shard.config.super_digest.as_deref();
            let mut authz = (**conn.authz.borrow()).clone();
            let result = authz.add_auth(&auth.scheme, &auth.auth, super_digest);
            *conn.authz.borrow_mut() = Arc::new(authz);
            match result {
                Ok(()) => conn.push_reply(header.xid, 0, ErrorCode::Ok, None),
                Err(e) => {
                    conn.push_reply(header.xid, 0, e, None);
                    conn.close_after_flush();
                }
            }
            shard.finish_request(conn, op::AUTH, Some(received));
        }
        Request::Sasl { token } => {
            // Answered at once, as Apache's processSasl (not queued behind writes).
            sasl_step(shard, conn, header.xid, &token);
            shard.finish_request(conn, header.op, Some(received));
        }
        Request::Reconfig(_) => {
            // reconfigEnabled=false is checked first, as in ZooKeeper.
            conn.push_reply(header.xid, shard.view_zxid.get(), ErrorCode::ReconfigDisabled, None);
            shard.finish_request(conn, header.op, Some(received));
        }
        Request::Sync { path } => {
            let msg = ToCommit::Sync { conn: me, session_id: sid, xid: header.xid, path };
            send_or_hold(shard, conn, header.xid, header.op, received, msg).await?;
        }
        Request::CloseSession => {
            let msg = ToCommit::CloseSession { conn: me, session_id: sid, xid: header.xid };
            send_or_hold(shard, conn, header.xid, header.op, received, msg).await?;
        }
        other => match into_write(header.op, other) {
            Ok(write) => {
                let auth = conn.authz.borrow().clone();
                let msg = ToCommit::Write { conn: me, session_id: sid, xid: header.xid, op: header.op, write, auth };
                send_or_hold(shard, conn, header.xid, header.op, received, msg).await?;
            }
            Err(read) => {
                let behind_own_write = !conn.pending.borrow().is_empty();
                if behind_own_write {
                    conn.pending.borrow_mut().push_read(header.xid, header.op, read, received);
                } else if let Some(zxid) = shard.view_needed() {
                    conn.pending.borrow_mut().push_read(header.xid, header.op, read, received);
                    shard.wait_for(conn, zxid, 0);
                } else if let Some(seq) = shard.watch_gate(&read) {
                    conn.pending.borrow_mut().push_read(header.xid, header.op, read, received);
                    shard.wait_for(conn, i64::MIN, seq);
                } else {
                    shard.answer_local(conn, header.xid, header.op, read);
                    shard.finish_request(conn, header.op, Some(received));
                }
                // Taking the slot's tree may have answered other reads.
                shard.send_released().await;
            }
        },
    }
    Ok(())
}

/// Whether `request` may run: always when no scheme is enforced, always
/// for auth and SASL (the ways to authenticate), otherwise only once the
/// connection holds an id of an enforced scheme.
fn authentication_enforced(schemes: &[String], conn: &Conn, request: &Request) -> bool {
    schemes.is_empty()
        || matches!(request, Request::Auth(_) | Request::Sasl { .. })
        || conn.authz.borrow().ids().iter().any(|id| schemes.contains(&id.scheme))
}

/// One SASL token through the connection's DIGEST-MD5 exchange (started
/// on its first token with a fresh nonce), answered as Apache answers it.
fn sasl_step(shard: &Rc<WorkerShard>, conn: &Rc<Conn>, xid: i32, token: &[u8]) {
    let sasl = &shard.config.sasl;
    let Some(credentials) = sasl.credentials.as_ref() else {
        // No JAAS file: no SASL server, answered as for an unknown op.
        tracing::info!(peer = %conn.peer, "SASL request but no JAAS file is configured (java.security.auth.login.config); closing");
        conn.push_reply(xid, shard.view_zxid.get(), ErrorCode::Unimplemented, None);
        conn.close_after_flush();
        return;
    };
    let result = {
        let mut exchange = conn.sasl.borrow_mut();
        let server = match exchange.as_mut() {
            Some(server) => server,
            None => {
                let mut nonce = [0u8; 24];
                if let Err(e) = getrandom::getrandom(&mut nonce) {
                    tracing::error!(peer = %conn.peer, error = %e, "no random bytes for a SASL nonce; closing");
                    conn.push_reply(xid, 0, ErrorCode::AuthFailed, None);
                    conn.close_after_flush();
                    return;
                }
                exchange.insert(DigestMd5Server::new(&nonce))
            }
        };
        server.step(token, |user| credentials.password_of(user))
    };
    match result {
        Ok(Step::Challenge(challenge)) => {
            conn.push_reply(xid, 0, ErrorCode::Ok, Some(&Response::Sasl { token: Some(challenge.into()) }));
        }
        Ok(Step::Authenticated { token, user }) => {
            let is_super = sasl.super_users.contains(&user);
            let mut authz = (**conn.authz.borrow()).clone();
            authz.add_sasl(&user, is_super);
            *conn.authz.borrow_mut() = Arc::new(authz);
            tracing::info!(peer = %conn.peer, session = format_args!("0x{:x}", conn.session_id.get()), user = %user, is_super, "SASL authenticated");
            conn.push_reply(xid, 0, ErrorCode::Ok, Some(&Response::Sasl { token: Some(token.into()) }));
        }
        Err(e) => {
            tracing::warn!(peer = %conn.peer, error = %e, "SASL authentication failed");
            if sasl.allow_failed_clients && !sasl.sasl_required() {
                // zookeeper.allowSaslFailedClients: the connection stays, unauthenticated.
                conn.push_reply(xid, 0, ErrorCode::Ok, Some(&Response::Sasl { token: None }));
                return;
            }
            let code =
                if sasl.sasl_required() { ErrorCode::SessionClosedRequireSaslAuth } else { ErrorCode::AuthFailed };
            conn.push_reply(xid, 0, code, None);
            conn.close_after_flush();
        }
    }
}

/// Sends a commit-bound request, or holds it behind a queued read of the
/// same connection (see `pending_requests::Pending::Held`).
async fn send_or_hold(
    shard: &Rc<WorkerShard>,
    conn: &Rc<Conn>,
    xid: i32,
    op: i32,
    received: Instant,
    msg: ToCommit,
) -> Result<(), String> {
    if conn.pending.borrow().read_queued() {
        conn.pending.borrow_mut().push_held(xid, op, received, msg);
        return Ok(());
    }
    conn.pending.borrow_mut().push_sent(xid, op, received);
    shard.to_commit.send(msg).await.map_err(|_| "commit shard gone".to_string())
}

/// Turns a write request into the tree's operation; gives back anything
/// that is not a write.
// The Err side hands the request back by value to avoid a copy on the read path.
#[allow(clippy::result_large_err)]
pub(crate) fn into_write(opcode: i32, req: Request) -> Result<WriteOp, Request> {
    Ok(match req {
        Request::Create { req, .. } => create_op(opcode, req),
        Request::Delete(d) => WriteOp::Delete { path: d.path, version: d.version },
        Request::SetData(s) => WriteOp::SetData { path: s.path, data: s.data, version: s.version },
        Request::SetAcl(s) => WriteOp::SetAcl { path: s.path, acl: s.acl, version: s.version },
        Request::Multi(ops) => WriteOp::Multi(ops.into_iter().map(multi_op).collect()),
        other => return Err(other),
    })
}

fn create_op(opcode: i32, c: CreateRequest) -> WriteOp {
    WriteOp::Create { op: opcode, path: c.path, data: c.data, acl: c.acl, flags: c.flags, ttl: c.ttl }
}

fn multi_op(m: MultiOp) -> WriteOp {
    match m {
        MultiOp::Create { op, req } => create_op(op, req),
        MultiOp::Delete(d) => WriteOp::Delete { path: d.path, version: d.version },
        MultiOp::SetData(s) => WriteOp::SetData { path: s.path, data: s.data, version: s.version },
        MultiOp::Check(c) => WriteOp::Check { path: c.path, version: c.version },
    }
}
