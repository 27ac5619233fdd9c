//! The project's own blocking ZooKeeper client over `std::net::TcpStream`,
//! for integration tests and the benchmark (not sans-IO: it owns a socket,
//! a reader thread and a ping thread).
//!
//! Replies arrive strictly in request order, so the reader thread matches
//! each one to the oldest pending request (checking the xid); xid -1 frames
//! are watch events and go to the `events()` channel. `submit` lets many
//! requests be outstanding at once.
//!
//! `Client::connect_via` with `Transport::Tls` speaks TLS (a secure client
//! port; see `tls` for how the one rustls connection is shared by the
//! writer and the reader thread). The plaintext path writes and reads the
//! bare socket as before: no lock or copy is added to it.

mod raw;
mod tls;

pub use raw::RawConnection;
pub use rustls::pki_types::ServerName as TlsServerName;
pub use tls::TlsSettings;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::jute::{Reader, Record};
use crate::proto::records::*;
use crate::proto::types::{op, xid, Acl, CreateMode, ErrorCode, EventType, Stat};

/// Largest reply frame the client accepts. Generous on purpose: the
/// benchmark may read large child lists.
const MAX_REPLY_FRAME: usize = 64 << 20;

#[derive(Debug)]
pub enum ClientError {
    /// The server answered with a non-zero error code.
    Keeper(ErrorCode),
    Io(io::Error),
    /// The server sent something this client cannot make sense of.
    Protocol(String),
    /// The connection closed before the reply arrived.
    ConnectionClosed,
    /// The handshake reply had timeout 0: the session is gone.
    SessionExpired,
    /// `Pending::wait_timeout` gave up.
    Timeout,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Keeper(code) => write!(f, "server error {code}"),
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Protocol(s) => write!(f, "protocol error: {s}"),
            ClientError::ConnectionClosed => write!(f, "connection closed"),
            ClientError::SessionExpired => write!(f, "session expired"),
            ClientError::Timeout => write!(f, "timed out waiting for a reply"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl ClientError {
    /// The server error code, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Keeper(c) => Some(*c),
            _ => None,
        }
    }
}

pub type ClientResult<T> = Result<T, ClientError>;

/// A watch notification (xid -1 frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
    pub zxid: i64,
}

impl WatchedEvent {
    pub fn kind(&self) -> Option<EventType> {
        EventType::from_code(self.event_type)
    }
}

type ReplySender = Sender<ClientResult<(ReplyHeader, Response)>>;

struct PendingSlot {
    xid: i32,
    op: i32,
    reply: ReplySender,
}

/// State shared by the caller threads, the reader and the pinger.
struct Shared {
    /// Writes and pushes onto `pending` happen under this lock, so the
    /// pending queue is in wire order.
    send: Mutex<SendState>,
    /// Only ever locked briefly; never while writing to the socket.
    pending: Mutex<VecDeque<PendingSlot>>,
    closed: AtomicBool,
    last_zxid: AtomicI64,
}

struct SendState {
    stream: TcpStream,
    /// Some on a TLS connection: frames go through rustls before `stream`.
    tls: Option<tls::TlsWriter>,
    next_xid: i32,
    last_send: Instant,
    buf: BytesMut,
}

impl SendState {
    fn write_frame(stream: &mut TcpStream, tls: &mut Option<tls::TlsWriter>, bytes: &[u8]) -> io::Result<()> {
        match tls {
            None => stream.write_all(bytes),
            Some(w) => w.write_all(stream, bytes),
        }
    }
}

/// How a client reaches the server.
#[derive(Clone, Debug)]
pub enum Transport {
    Plain,
    /// TLS (a `secureClientPort`, or a port-unified one).
    Tls(TlsSettings),
}

/// The receiving half the reader thread owns.
enum ReadHalf {
    Plain(TcpStream),
    Tls(tls::TlsReader),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One outstanding request.
pub struct Pending {
    rx: Receiver<ClientResult<(ReplyHeader, Response)>>,
}

impl Pending {
    /// Blocks until the reply arrives. A non-zero `err` is returned in the
    /// header, not as an error; the response is then `Response::Empty`.
    pub fn wait(self) -> ClientResult<(ReplyHeader, Response)> {
        self.rx.recv().unwrap_or(Err(ClientError::ConnectionClosed))
    }

    pub fn wait_timeout(self, d: Duration) -> ClientResult<(ReplyHeader, Response)> {
        match self.rx.recv_timeout(d) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(ClientError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::ConnectionClosed),
        }
    }
}

/// A connected session.
pub struct Client {
    shared: Arc<Shared>,
    session_id: i64,
    passwd: Bytes,
    timeout: Duration,
    read_only: Option<bool>,
    /// TLS only: the negotiated protocol and cipher suite.
    tls_session: Option<String>,
    events: Mutex<Option<Receiver<WatchedEvent>>>,
    stop_pinger: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

fn read_frame(stream: &mut impl Read, max: usize) -> io::Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = i32::from_be_bytes(len);
    if len < 0 || len as usize > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("bad frame length {len}")));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

impl Client {
    /// Opens a new session.
    pub fn connect(addr: SocketAddr, session_timeout: Duration) -> ClientResult<Client> {
        Self::handshake(addr, 0, Bytes::from(vec![0u8; 16]), session_timeout, 0)
    }

    /// Opens a new session over `transport` (plaintext or TLS).
    pub fn connect_via(transport: &Transport, addr: SocketAddr, session_timeout: Duration) -> ClientResult<Client> {
        Self::open(transport, addr, 0, Bytes::from(vec![0u8; 16]), session_timeout, 0, false)
    }

    /// Re-attaches to an existing session. `ClientError::SessionExpired`
    /// if the server answers timeout 0.
    pub fn reconnect(addr: SocketAddr, session_id: i64, passwd: Bytes, timeout: Duration) -> ClientResult<Client> {
        Self::handshake(addr, session_id, passwd, timeout, 0)
    }

    /// Opens a new session that accepts a read-only server (the
    /// ConnectRequest's readOnly=true, Java's `canBeReadOnly`): a member
    /// in read-only mode serves it; `read_only()` says which it got.
    pub fn connect_read_only(addr: SocketAddr, session_timeout: Duration) -> ClientResult<Client> {
        Self::handshake_with(addr, 0, Bytes::from(vec![0u8; 16]), session_timeout, 0, true)
    }

    /// Full control over the ConnectRequest fields a test may care about.
    pub fn handshake(
        addr: SocketAddr,
        session_id: i64,
        passwd: Bytes,
        timeout: Duration,
        last_zxid_seen: i64,
    ) -> ClientResult<Client> {
        Self::handshake_with(addr, session_id, passwd, timeout, last_zxid_seen, false)
    }

    /// `handshake` with the ConnectRequest's readOnly flag chosen.
    pub fn handshake_with(
        addr: SocketAddr,
        session_id: i64,
        passwd: Bytes,
        timeout: Duration,
        last_zxid_seen: i64,
        can_be_read_only: bool,
    ) -> ClientResult<Client> {
        Self::open(&Transport::Plain, addr, session_id, passwd, timeout, last_zxid_seen, can_be_read_only)
    }

    fn open(
        transport: &Transport,
        addr: SocketAddr,
        session_id: i64,
        passwd: Bytes,
        timeout: Duration,
        last_zxid_seen: i64,
        can_be_read_only: bool,
    ) -> ClientResult<Client> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let mut tls_conn = match transport {
            Transport::Plain => None,
            Transport::Tls(settings) => {
                // A server that never finishes the handshake must not hang the caller.
                stream.set_read_timeout(Some(timeout.max(Duration::from_secs(1))))?;
                let conn = tls::handshake(settings, &mut stream)?;
                Some(conn)
            }
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            timeout_ms: timeout.as_millis().min(i32::MAX as u128) as i32,
            session_id,
            passwd,
            read_only: Some(can_be_read_only),
        };
        let mut out = BytesMut::new();
        encode_record_frame(&mut out, &req);
        let reply = match &mut tls_conn {
            None => stream.write_all(&out).and_then(|()| read_frame(&mut stream, MAX_REPLY_FRAME)),
            Some(conn) => {
                let mut s = tls::HandshakeStream { conn, sock: &mut stream };
                s.write_all(&out).and_then(|()| read_frame(&mut s, MAX_REPLY_FRAME))
            }
        };
        let frame = match reply {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(ClientError::ConnectionClosed),
            Err(e) => return Err(e.into()),
        };
        let resp = ConnectResponse::decode(&mut Reader::new(frame))
            .map_err(|e| ClientError::Protocol(format!("ConnectResponse: {e}")))?;
        if resp.timeout_ms <= 0 {
            return Err(ClientError::SessionExpired);
        }
        if tls_conn.is_some() {
            stream.set_read_timeout(None)?;
        }
        Ok(Self::start(stream, tls_conn, resp, last_zxid_seen)?)
    }

    fn start(
        stream: TcpStream,
        tls_conn: Option<rustls::ClientConnection>,
        resp: ConnectResponse,
        last_zxid: i64,
    ) -> io::Result<Client> {
        let read_sock = stream.try_clone()?;
        let tls_session = tls_conn.as_ref().map(|c| {
            let version = c.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default();
            let suite = c.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_default();
            format!("{version} {suite}")
        });
        let (tls_writer, read_half) = match tls_conn {
            None => (None, ReadHalf::Plain(read_sock)),
            Some(conn) => {
                let (w, r) = tls::split(conn, read_sock);
                (Some(w), ReadHalf::Tls(r))
            }
        };
        let shared = Arc::new(Shared {
            send: Mutex::new(SendState {
                stream,
                tls: tls_writer,
                next_xid: 1,
                last_send: Instant::now(),
                buf: BytesMut::new(),
            }),
            pending: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            last_zxid: AtomicI64::new(last_zxid),
        });
        let timeout = Duration::from_millis(resp.timeout_ms as u64);
        let (ev_tx, ev_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new().name("zk-client-reader".into()).spawn(move || match read_half {
                ReadHalf::Plain(mut sock) => {
                    reader_loop(&shared, &mut sock, ev_tx);
                    let _ = sock.shutdown(Shutdown::Both);
                }
                ReadHalf::Tls(mut reader) => {
                    reader_loop(&shared, &mut reader, ev_tx);
                    reader.shutdown();
                }
            })?
        };
        let pinger = {
            let shared = shared.clone();
            std::thread::Builder::new().name("zk-client-ping".into()).spawn(move || {
                ping_loop(&shared, timeout / 3, stop_rx);
            })?
        };
        Ok(Client {
            shared,
            session_id: resp.session_id,
            passwd: resp.passwd,
            timeout,
            read_only: resp.read_only,
            tls_session,
            events: Mutex::new(Some(ev_rx)),
            stop_pinger: Some(stop_tx),
            threads: vec![reader, pinger],
        })
    }

    pub fn session_id(&self) -> i64 {
        self.session_id
    }
    pub fn session_password(&self) -> Bytes {
        self.passwd.clone()
    }
    pub fn negotiated_timeout(&self) -> Duration {
        self.timeout
    }
    /// The readOnly byte of the ConnectResponse, if the server sent one.
    pub fn read_only(&self) -> Option<bool> {
        self.read_only
    }
    /// On a TLS connection, the negotiated protocol and cipher suite
    /// (as "TLSv1_3 TLS13_AES_128_GCM_SHA256").
    pub fn tls_session(&self) -> Option<&str> {
        self.tls_session.as_deref()
    }
    /// The largest zxid seen in any reply header.
    pub fn last_zxid(&self) -> i64 {
        self.shared.last_zxid.load(Ordering::Relaxed)
    }
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// The watch-event channel. Can be taken once; later calls get `None`.
    pub fn events(&self) -> Option<Receiver<WatchedEvent>> {
        lock(&self.events).take()
    }

    /// Sends a request without waiting. Ping, auth and setWatches use
    /// their fixed xids; everything else gets the next positive xid.
    pub fn submit(&self, req: Request) -> ClientResult<Pending> {
        let (tx, rx) = mpsc::channel();
        let mut send = lock(&self.shared.send);
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(ClientError::ConnectionClosed);
        }
        let xid = match req.fixed_xid() {
            Some(x) => x,
            None => {
                let x = send.next_xid;
                send.next_xid = if x == i32::MAX { 1 } else { x + 1 };
                x
            }
        };
        let SendState { stream, tls, buf, last_send, .. } = &mut *send;
        buf.clear();
        encode_request_frame(buf, xid, &req);
        lock(&self.shared.pending).push_back(PendingSlot { xid, op: req.op(), reply: tx });
        if let Err(e) = SendState::write_frame(stream, tls, buf) {
            drop(send);
            fail_all(&self.shared);
            return Err(e.into());
        }
        *last_send = Instant::now();
        Ok(Pending { rx })
    }

    /// Writes arbitrary bytes on the session's socket (bad-input tests).
    /// Nothing is queued to receive a reply.
    pub fn write_raw(&self, bytes: &[u8]) -> ClientResult<()> {
        let mut send = lock(&self.shared.send);
        let SendState { stream, tls, .. } = &mut *send;
        SendState::write_frame(stream, tls, bytes)?;
        Ok(())
    }

    /// submit + wait; a non-zero reply error becomes `ClientError::Keeper`.
    pub fn call(&self, req: Request) -> ClientResult<Response> {
        let (hdr, resp) = self.submit(req)?.wait()?;
        if hdr.err != 0 {
            return Err(keeper(hdr.err));
        }
        Ok(resp)
    }

    // --- convenience methods ------------------------------------------------

    /// create (op 1), or op 19 for a container; returns the actual path.
    pub fn create(&self, path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> ClientResult<String> {
        let op = if mode.is_container() { op::CREATE_CONTAINER } else { op::CREATE };
        match self.call(create_req(op, path, data, acl, mode, None))? {
            Response::Create { path } | Response::Create2 { path, .. } => Ok(path),
            other => Err(unexpected(other)),
        }
    }

    /// create2 (op 15), or op 19 for a container.
    pub fn create2(&self, path: &str, data: &[u8], acl: &[Acl], mode: CreateMode) -> ClientResult<(String, Stat)> {
        let op = if mode.is_container() { op::CREATE_CONTAINER } else { op::CREATE2 };
        path_stat(self.call(create_req(op, path, data, acl, mode, None))?)
    }

    /// createTTL (op 21).
    pub fn create_ttl(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
        ttl_ms: i64,
    ) -> ClientResult<(String, Stat)> {
        path_stat(self.call(create_req(op::CREATE_TTL, path, data, acl, mode, Some(ttl_ms)))?)
    }

    /// createContainer (op 19).
    pub fn create_container(&self, path: &str, data: &[u8], acl: &[Acl]) -> ClientResult<(String, Stat)> {
        path_stat(self.call(create_req(op::CREATE_CONTAINER, path, data, acl, CreateMode::Container, None))?)
    }

    pub fn delete(&self, path: &str, version: i32) -> ClientResult<()> {
        self.call(Request::Delete(PathVersion { path: path.into(), version }))?;
        Ok(())
    }

    /// `None` when the node does not exist (the watch is still set).
    pub fn exists(&self, path: &str, watch: bool) -> ClientResult<Option<Stat>> {
        match self.call(Request::Exists(PathWatch { path: path.into(), watch })) {
            Ok(Response::Stat(s)) => Ok(Some(s)),
            Ok(other) => Err(unexpected(other)),
            Err(ClientError::Keeper(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn get_data(&self, path: &str, watch: bool) -> ClientResult<(Option<Bytes>, Stat)> {
        match self.call(Request::GetData(PathWatch { path: path.into(), watch }))? {
            Response::GetData { data, stat } => Ok((data, stat)),
            other => Err(unexpected(other)),
        }
    }

    pub fn set_data(&self, path: &str, data: &[u8], version: i32) -> ClientResult<Stat> {
        let req = SetDataRequest { path: path.into(), data: Some(Bytes::copy_from_slice(data)), version };
        stat_of(self.call(Request::SetData(req))?)
    }

    pub fn get_acl(&self, path: &str) -> ClientResult<(Vec<Acl>, Stat)> {
        match self.call(Request::GetAcl { path: path.into() })? {
            Response::GetAcl { acl, stat } => Ok((acl, stat)),
            other => Err(unexpected(other)),
        }
    }

    pub fn set_acl(&self, path: &str, acl: &[Acl], version: i32) -> ClientResult<Stat> {
        stat_of(self.call(Request::SetAcl(SetAclRequest { path: path.into(), acl: acl.to_vec(), version }))?)
    }

    pub fn get_children(&self, path: &str, watch: bool) -> ClientResult<Vec<String>> {
        match self.call(Request::GetChildren(PathWatch { path: path.into(), watch }))? {
            Response::GetChildren { children } => Ok(children),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_children2(&self, path: &str, watch: bool) -> ClientResult<(Vec<String>, Stat)> {
        match self.call(Request::GetChildren2(PathWatch { path: path.into(), watch }))? {
            Response::GetChildren2 { children, stat } => Ok((children, stat)),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_all_children_number(&self, path: &str) -> ClientResult<i32> {
        match self.call(Request::GetAllChildrenNumber { path: path.into() })? {
            Response::GetAllChildrenNumber { total } => Ok(total),
            other => Err(unexpected(other)),
        }
    }

    pub fn get_ephemerals(&self, prefix: &str) -> ClientResult<Vec<String>> {
        match self.call(Request::GetEphemerals { prefix: prefix.into() })? {
            Response::GetEphemerals { paths } => Ok(paths),
            other => Err(unexpected(other)),
        }
    }

    pub fn sync(&self, path: &str) -> ClientResult<String> {
        match self.call(Request::Sync { path: path.into() })? {
            Response::Sync { path } => Ok(path),
            other => Err(unexpected(other)),
        }
    }

    /// The raw per-op results; a failed multi still has header err 0, so
    /// callers look for `MultiResult::Error` entries (see `first_error`).
    pub fn multi(&self, ops: Vec<MultiOp>) -> ClientResult<Vec<MultiResult>> {
        match self.call(Request::Multi(ops))? {
            Response::Multi(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    pub fn multi_read(&self, ops: Vec<ReadOp>) -> ClientResult<Vec<MultiResult>> {
        match self.call(Request::MultiRead(ops))? {
            Response::MultiRead(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    /// SASL DIGEST-MD5 login (op 102), as Apache's client runs it: an empty
    /// token, the server's challenge, the digest response, the server's
    /// `rspauth`, which is checked. `cnonce` is the client nonce (the
    /// caller's randomness). A refused login is `Keeper(AuthFailed)` (or
    /// SessionClosedRequireSaslAuth) and the server closes the connection.
    pub fn sasl_digest_md5(&self, user: &str, password: &str, cnonce: &str) -> ClientResult<()> {
        let challenge = match self.call(Request::Sasl { token: Bytes::new() })? {
            Response::Sasl { token: Some(t) } => t,
            other => return Err(ClientError::Protocol(format!("expected a SASL challenge, got {other:?}"))),
        };
        let (token, rspauth) = crate::sasl::digest_md5::client_response(&challenge, user, password, cnonce)
            .map_err(|e| ClientError::Protocol(format!("bad SASL challenge: {e}")))?;
        let answer = match self.call(Request::Sasl { token: token.into() })? {
            Response::Sasl { token: Some(t) } => t,
            other => return Err(ClientError::Protocol(format!("expected rspauth, got {other:?}"))),
        };
        if answer.as_ref() != format!("rspauth={rspauth}").as_bytes() {
            return Err(ClientError::Protocol("the server's rspauth does not prove it knows the password".into()));
        }
        Ok(())
    }

    pub fn add_auth(&self, scheme: &str, auth: &[u8]) -> ClientResult<()> {
        self.call(Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.into(),
            auth: Bytes::copy_from_slice(auth),
        }))?;
        Ok(())
    }

    pub fn add_watch(&self, path: &str, mode: i32) -> ClientResult<()> {
        self.call(Request::AddWatch { path: path.into(), mode })?;
        Ok(())
    }

    pub fn remove_watches(&self, path: &str, watcher_type: i32) -> ClientResult<()> {
        self.call(Request::RemoveWatches { path: path.into(), watcher_type })?;
        Ok(())
    }

    pub fn check_watches(&self, path: &str, watcher_type: i32) -> ClientResult<()> {
        self.call(Request::CheckWatches { path: path.into(), watcher_type })?;
        Ok(())
    }

    pub fn set_watches(&self, watches: SetWatches) -> ClientResult<()> {
        self.call(Request::SetWatches(watches))?;
        Ok(())
    }

    pub fn who_am_i(&self) -> ClientResult<Vec<ClientInfo>> {
        match self.call(Request::WhoAmI)? {
            Response::WhoAmI(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    pub fn ping(&self) -> ClientResult<()> {
        self.call(Request::Ping)?;
        Ok(())
    }

    /// Sends closeSession, waits for its reply, and shuts the connection.
    pub fn close(mut self) -> ClientResult<()> {
        let res = self.call(Request::CloseSession).map(|_| ());
        self.shutdown();
        res
    }

    /// Drops the TCP connection without closing the session (it stays
    /// alive on the server until it expires or is reattached).
    pub fn disconnect(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop_pinger.take();
        {
            let mut send = lock(&self.shared.send);
            let SendState { stream, tls, .. } = &mut *send;
            if let Some(w) = tls {
                w.close_notify(stream);
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        fail_all(&self.shared);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// First non-zero error in a multi result list, as Java clients report it.
pub fn first_error(results: &[MultiResult]) -> Option<i32> {
    results.iter().find_map(|r| match r {
        MultiResult::Error(c) if *c != 0 => Some(*c),
        _ => None,
    })
}

fn create_req(op: i32, path: &str, data: &[u8], acl: &[Acl], mode: CreateMode, ttl: Option<i64>) -> Request {
    Request::Create {
        op,
        req: CreateRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: acl.to_vec(),
            flags: mode.flags(),
            ttl,
        },
    }
}

fn keeper(code: i32) -> ClientError {
    match ErrorCode::from_code(code) {
        Some(c) => ClientError::Keeper(c),
        None => ClientError::Protocol(format!("unknown error code {code}")),
    }
}

fn unexpected(r: Response) -> ClientError {
    ClientError::Protocol(format!("unexpected response {r:?}"))
}

fn path_stat(r: Response) -> ClientResult<(String, Stat)> {
    match r {
        Response::Create2 { path, stat } => Ok((path, stat)),
        other => Err(unexpected(other)),
    }
}

fn stat_of(r: Response) -> ClientResult<Stat> {
    match r {
        Response::Stat(s) => Ok(s),
        other => Err(unexpected(other)),
    }
}

/// Marks the connection closed and fails every waiting request.
fn fail_all(shared: &Shared) {
    shared.closed.store(true, Ordering::Release);
    let drained: Vec<_> = lock(&shared.pending).drain(..).collect();
    for slot in drained {
        let _ = slot.reply.send(Err(ClientError::ConnectionClosed));
    }
}

fn reader_loop(shared: &Shared, stream: &mut impl Read, events: Sender<WatchedEvent>) {
    let err = loop {
        let frame = match read_frame(stream, MAX_REPLY_FRAME) {
            Ok(f) => f,
            Err(_) => break None,
        };
        if let Err(e) = handle_reply(shared, frame, &events) {
            break Some(e);
        }
    };
    // A protocol error fails the head request with the reason; the rest
    // see a closed connection.
    if let Some(e) = err {
        if let Some(slot) = lock(&shared.pending).pop_front() {
            let _ = slot.reply.send(Err(e));
        }
    }
    fail_all(shared);
}

fn handle_reply(shared: &Shared, frame: Bytes, events: &Sender<WatchedEvent>) -> ClientResult<()> {
    let mut r = Reader::new(frame);
    let hdr = ReplyHeader::decode(&mut r).map_err(|e| ClientError::Protocol(format!("ReplyHeader: {e}")))?;
    if hdr.zxid > 0 {
        shared.last_zxid.fetch_max(hdr.zxid, Ordering::Relaxed);
    }
    if hdr.xid == xid::NOTIFICATION {
        let ev = WatcherEvent::decode(&mut r).map_err(|e| ClientError::Protocol(format!("WatcherEvent: {e}")))?;
        let _ = events.send(WatchedEvent { event_type: ev.event_type, state: ev.state, path: ev.path, zxid: hdr.zxid });
        return Ok(());
    }
    let slot = lock(&shared.pending).pop_front();
    let Some(slot) = slot else {
        return Err(ClientError::Protocol(format!("reply xid {} with nothing pending", hdr.xid)));
    };
    if slot.xid != hdr.xid {
        let msg = format!("reply xid {} but the oldest pending request has xid {}", hdr.xid, slot.xid);
        let _ = slot.reply.send(Err(ClientError::Protocol(msg.clone())));
        return Err(ClientError::Protocol(msg));
    }
    let body = if hdr.err != 0 {
        Ok(Response::Empty)
    } else {
        Response::decode_body(slot.op, &mut r).map_err(|e| ClientError::Protocol(format!("op {} reply: {e}", slot.op)))
    };
    let _ = slot.reply.send(body.map(|b| (hdr, b)));
    Ok(())
}

fn ping_loop(shared: &Shared, interval: Duration, stop: Receiver<()>) {
    let interval = interval.max(Duration::from_millis(10));
    loop {
        match stop.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            // A message or the sender dropping both mean stop.
            _ => return,
        }
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let mut send = lock(&shared.send);
        if send.last_send.elapsed() < interval {
            continue;
        }
        let (tx, _rx) = mpsc::channel();
        let SendState { stream, tls, buf, last_send, .. } = &mut *send;
        buf.clear();
        encode_request_frame(buf, xid::PING, &Request::Ping);
        lock(&shared.pending).push_back(PendingSlot { xid: xid::PING, op: op::PING, reply: tx });
        if SendState::write_frame(stream, tls, buf).is_err() {
            drop(send);
            fail_all(shared);
            return;
        }
        *last_send = Instant::now();
    }
}

#[cfg(test)]
mod tests;
