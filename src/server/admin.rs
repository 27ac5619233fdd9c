//! The HTTP endpoints: Apache's AdminServer (`admin.*` in zoo.cfg; GET
//! `<commandURL>` lists the commands, GET `<commandURL>/<name>` answers a
//! command as JSON with Apache's field names) and the Prometheus endpoint
//! (`metricsProvider.*`; GET `/metrics`).
//!
//! Both run as glommio tasks on worker shard 0, served by hyper (HTTP/1.1,
//! one request per connection, a bounded number of connections, each cut
//! after `admin.idleTimeout`). A handler never blocks the shard: what only
//! the commit shard knows comes through the four-letter-word report path
//! (`WorkerShard::admin_report`, rendered by `admin_report`), directory
//! walks run on glommio's blocking pool, the watch listings (`watches`,
//! `watches_by_path`) are merged on a thread of their own and streamed to
//! the client through a bounded pipe as they are written (`watch_listing`),
//! and the rest comes from the configuration and `ServerStats`.
//!
//! As Apache: an unknown command answers 200 with
//! `{"command": <name>, "error": "Unknown command: <name>"}`; a command that
//! needs a running server answers "This ZooKeeper instance is not currently
//! serving requests" while the server is electing; a port that cannot be
//! bound is logged as an error and the server goes on serving clients.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::sync::Semaphore;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::server::admin_report::report;
use crate::server::stats::ServerMode;
use crate::server::worker_shard::WorkerShard;

/// HTTP connections served at once per endpoint; more wait in the backlog.
const HTTP_CONNECTIONS_MAX: u64 = 32;
/// hyper's read buffer per connection (its minimum is 8 KiB): a request
/// line and headers larger than this are refused.
const HTTP_REQUEST_HEAD_MAX_BYTES: usize = 16 * 1024;
const HTTP_LISTEN_BACKLOG: i32 = 64;
/// Bytes moved from the socket per read into hyper's buffer.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// How long a command waits for the commit shard's report.
const REPORT_WAIT: Duration = Duration::from_secs(10);
/// How long `watches` / `watches_by_path` wait for every shard's list: each
/// shard lists its registry in chunks between its other work, seconds at
/// 10M watches.
const LISTING_WAIT: Duration = Duration::from_secs(120);
/// The AdminServer's watch listings merged at once (each holds every
/// shard's list, GiBs at 10M watches, until its answer is sent); more wait
/// their turn.
const LISTINGS_AT_ONCE: u64 = 1;
/// JSON a listing's merge may have written ahead of the client: the pipe
/// from the `zk-admin-json` thread to the HTTP body takes pieces
/// (`admin_watches::PIECE_BYTES`, ~1 MiB) while it holds less than this,
/// so at most this plus one piece waits, whatever the answer's size.
const LISTING_PIPE_BYTES: usize = 2 << 20;
/// The listing thread's nice value: as the snapshot thread's, a tenth of a
/// shard's CPU weight when they compete, yet it finishes under load.
const LISTING_THREAD_NICE: libc::c_int = 10;
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// Where a command's answer comes from.
#[derive(Clone, Copy)]
enum Source {
    /// The configuration and ServerStats, on worker 0.
    Local,
    /// A report from every shard through the commit shard.
    Report(&'static str),
    /// A four-letter word whose effect is the answer (crst, srst).
    Reset(&'static str),
    /// Every shard's watch list, merged and written as JSON on a helper
    /// thread (`admin_watches`), sent in pieces.
    Listing(&'static str),
}

struct Command {
    /// Primary name first, then the short names Apache registers.
    names: &'static [&'static str],
    /// Apache's `isServerRequired`: refused while the server is electing.
    server_required: bool,
    source: Source,
}

const fn cmd(names: &'static [&'static str], server_required: bool, source: Source) -> Command {
    Command { names, server_required, source }
}

/// Every Apache 3.9 command zoocore can mean (Commands.java), then
/// zoocore's own. Not here: `snapshot` and `restore` (they stream
/// Apache-format snapshots and need HTTP auth), `shed_connections`.
const COMMANDS: &[Command] = &[
    cmd(&["configuration", "conf", "config"], true, Source::Local),
    cmd(&["connection_stat_reset", "crst"], true, Source::Reset("crst")),
    cmd(&["connections", "cons"], true, Source::Report(report::CONNECTIONS)),
    cmd(&["dirs"], true, Source::Local),
    cmd(&["dump"], true, Source::Report(report::DUMP)),
    cmd(&["environment", "env", "envi"], false, Source::Local),
    cmd(&["get_trace_mask", "gtmk"], false, Source::Local),
    cmd(&["hash"], true, Source::Report(report::HASH)),
    cmd(&["initial_configuration", "icfg"], true, Source::Local),
    cmd(&["is_read_only", "isro"], true, Source::Local),
    cmd(&["last_snapshot", "lsnp"], true, Source::Local),
    cmd(&["leader", "lead"], true, Source::Local),
    cmd(&["monitor", "mntr"], false, Source::Report(report::MONITOR)),
    cmd(&["observer_connection_stat_reset", "orst"], true, Source::Reset("orst")),
    cmd(&["observers", "obsr"], true, Source::Report(report::OBSERVERS)),
    cmd(&["ruok"], true, Source::Local),
    cmd(&["server_stats", "srvr"], true, Source::Report(report::SERVER_STATS)),
    cmd(&["set_trace_mask", "stmk"], false, Source::Local),
    cmd(&["stat_reset", "srst"], true, Source::Reset("srst")),
    cmd(&["stats", "stat"], true, Source::Report(report::STATS)),
    cmd(&["system_properties", "sysp"], false, Source::Local),
    cmd(&["voting_view"], true, Source::Local),
    cmd(&["watch_summary", "wchs"], true, Source::Report(report::WATCH_SUMMARY)),
    cmd(&["watches", "wchc"], true, Source::Listing(report::WATCHES)),
    cmd(&["watches_by_path", "wchp"], true, Source::Listing(report::WATCHES_BY_PATH)),
    cmd(&["zabstate"], false, Source::Local),
    cmd(&["zoocore_log"], false, Source::Report(report::ZOOCORE_LOG)),
    cmd(&["zoocore_shards"], false, Source::Report(report::ZOOCORE_SHARDS)),
];

fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// The primary name of the command `name` (primary or short) means.
pub fn command_primary_name(name: &str) -> Option<&'static str> {
    lookup(name).and_then(|c| c.names.first().copied())
}

/// Every name a command answers to (primary and short), for tests and docs.
pub fn command_names() -> Vec<(&'static str, &'static [&'static str])> {
    COMMANDS.iter().filter_map(|c| Some((*c.names.first()?, c.names))).collect()
}

/// The listening sockets of the endpoints that started; shut them down when
/// the shard stops, so that the ports are free at once (an accept pending
/// on io_uring would otherwise hold them until the ring is torn down).
#[derive(Default)]
pub struct HttpEndpoints {
    sockets: Vec<socket2::Socket>,
}

impl HttpEndpoints {
    pub fn shutdown(&self) {
        for s in &self.sockets {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Starts the AdminServer and the Prometheus endpoint that the config turns
/// on, as tasks of this shard's executor (worker 0). A port that cannot be
/// bound is logged and skipped.
pub fn start(shard: &Rc<WorkerShard>) -> HttpEndpoints {
    let config = shard.config.clone();
    let mut endpoints = HttpEndpoints::default();
    let idle = Duration::from_millis(config.admin.idle_timeout_ms);
    if config.admin.enabled {
        let a = &config.admin;
        let addr = SocketAddr::new(a.address, a.port);
        match bind(addr) {
            Ok((listener, socket)) => {
                tracing::info!(address = %a.address, port = a.port, command_url = %a.command_url, "started AdminServer");
                endpoints.sockets.push(socket);
                let shard = shard.clone();
                let listings = Rc::new(Semaphore::new(LISTINGS_AT_ONCE));
                glommio::spawn_local(serve_http(listener, idle, move |req| {
                    admin_request(shard.clone(), listings.clone(), req)
                }))
                .detach();
            }
            Err(e) => tracing::error!(
                address = %a.address,
                port = a.port,
                command_url = %a.command_url,
                error = %e,
                "problem starting AdminServer; serving clients without it"
            ),
        }
    }
    if let Some(p) = &config.prometheus {
        let addr = SocketAddr::new(p.host, p.port);
        match bind(addr) {
            Ok((listener, socket)) => {
                tracing::info!(host = %p.host, port = p.port, "started /metrics HTTP endpoint");
                endpoints.sockets.push(socket);
                let shard = shard.clone();
                glommio::spawn_local(serve_http(listener, idle, move |req| metrics_request(shard.clone(), req)))
                    .detach();
            }
            Err(e) => tracing::error!(
                host = %p.host,
                port = p.port,
                error = %e,
                "cannot start /metrics server; serving clients without it"
            ),
        }
    }
    endpoints
}

/// A listener with SO_REUSEADDR (a restart binds at once despite
/// connections in TIME-WAIT), and a second handle to shut it down.
fn bind(addr: SocketAddr) -> io::Result<(glommio::net::TcpListener, socket2::Socket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(HTTP_LISTEN_BACKLOG)?;
    let handle = socket.try_clone()?;
    // SAFETY: `into_raw_fd` hands over a listening socket's fd that nothing
    // else owns; the glommio listener closes it when dropped.
    let listener = unsafe { glommio::net::TcpListener::from_raw_fd(socket.into_raw_fd()) };
    Ok((listener, handle))
}

/// hyper's I/O traits over a glommio stream.
struct HyperIo(glommio::net::TcpStream);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // Through an initialized buffer: no unsafe view of hyper's.
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        let want = buf.remaining().min(READ_CHUNK_BYTES);
        let Some(target) = chunk.get_mut(..want) else { return Poll::Ready(Ok(())) };
        match Pin::new(&mut self.0).poll_read(cx, target) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(chunk.get(..n).unwrap_or_default());
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// A response body sent as the pieces it was made in: one for most
/// answers (never joined into one copy).
pub struct PiecesBody {
    pieces: std::collections::VecDeque<Bytes>,
    remaining: u64,
}

impl PiecesBody {
    fn new(pieces: Vec<Bytes>) -> Self {
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        PiecesBody { pieces: pieces.into_iter().filter(|p| !p.is_empty()).collect(), remaining }
    }
}

/// The bounded pipe of a watch listing's JSON pieces, from the
/// `zk-admin-json` thread (`ListingWriter`, blocks while the pipe is full)
/// to the HTTP body on worker 0 (`ListingBody`, woken across threads).
#[derive(Default)]
struct ListingPipe {
    state: std::sync::Mutex<PipeState>,
    /// Signalled when the body took a piece or went away.
    space: std::sync::Condvar,
}

#[derive(Default)]
struct PipeState {
    pieces: std::collections::VecDeque<Bytes>,
    queued_bytes: usize,
    /// The body's task, to wake when a piece or the end arrives.
    body_waker: Option<std::task::Waker>,
    /// The body was dropped (the client left, or the connection was cut):
    /// the merge stops at its next piece.
    body_gone: bool,
    /// Set by the writer when it ends: Some(true) all written, Some(false)
    /// the merge did not finish (the body then fails, so the client sees a
    /// cut answer, not a short one).
    writer_finished: Option<bool>,
}

impl ListingPipe {
    fn lock(&self) -> std::sync::MutexGuard<'_, PipeState> {
        // A poisoned lock only means the other side panicked between two
        // plain field updates; the state is still whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `zk-admin-json` thread's end of the pipe.
struct ListingWriter {
    pipe: std::sync::Arc<ListingPipe>,
    finished: bool,
}

impl ListingWriter {
    fn finish(mut self, completed: bool) {
        self.end(completed);
    }

    fn end(&mut self, completed: bool) {
        self.finished = true;
        let waker = {
            let mut state = self.pipe.lock();
            state.writer_finished = Some(completed);
            state.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ListingWriter {
    fn drop(&mut self) {
        // A merge that panicked: the body must not wait for ever.
        if !self.finished {
            self.end(false);
        }
    }
}

impl crate::server::admin_watches::PieceSink for ListingWriter {
    fn send_piece(&mut self, piece: Bytes) -> bool {
        let waker = {
            let mut state = self.pipe.lock();
            while state.queued_bytes >= LISTING_PIPE_BYTES && !state.body_gone {
                state = self.pipe.space.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            if state.body_gone {
                return false;
            }
            state.queued_bytes += piece.len();
            state.pieces.push_back(piece);
            state.body_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }
}

/// A watch listing's body: the pieces as the merge writes them (chunked
/// transfer: the length is not known before the end). Holds the listing's
/// turn until the answer is sent or the client is gone.
pub struct ListingBody {
    pipe: std::sync::Arc<ListingPipe>,
    _turn: glommio::sync::StaticPermit,
}

impl Drop for ListingBody {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.pipe.lock();
            state.body_gone = true;
            state.pieces.clear();
            state.queued_bytes = 0;
            state.body_waker.take()
        };
        // Dropped here, on the executor that made it.
        drop(waker);
        self.pipe.space.notify_all();
    }
}

/// Either kind of answer.
pub enum AnswerBody {
    Whole(PiecesBody),
    Listing(ListingBody),
}

impl hyper::body::Body for AnswerBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            AnswerBody::Whole(body) => match body.pieces.pop_front() {
                Some(piece) => {
                    body.remaining = body.remaining.saturating_sub(piece.len() as u64);
                    Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))))
                }
                None => Poll::Ready(None),
            },
            AnswerBody::Listing(body) => {
                let mut state = body.pipe.lock();
                if let Some(piece) = state.pieces.pop_front() {
                    state.queued_bytes = state.queued_bytes.saturating_sub(piece.len());
                    drop(state);
                    body.pipe.space.notify_one();
                    return Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))));
                }
                match state.writer_finished {
                    Some(true) => Poll::Ready(None),
                    Some(false) => Poll::Ready(Some(Err(io::Error::other("the watch listing stopped before its end")))),
                    None => {
                        state.body_waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnswerBody::Whole(body) => body.pieces.is_empty(),
            AnswerBody::Listing(_) => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            AnswerBody::Whole(body) => hyper::body::SizeHint::with_exact(body.remaining),
            AnswerBody::Listing(_) => hyper::body::SizeHint::default(),
        }
    }
}

type HttpResponse = Response<AnswerBody>;

async fn serve_http<H, F>(listener: glommio::net::TcpListener, idle: Duration, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + 'static,
    F: std::future::Future<Output = HttpResponse> + 'static,
{
    let permits = Rc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.acquire_static_permit(1).await else { return };
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "HTTP accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handler = handler.clone();
        glommio::spawn_local(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let answer = handler(req);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.keep_alive(false).max_buf_size(HTTP_REQUEST_HEAD_MAX_BYTES).header_read_timeout(None);
            let connection = builder.serve_connection(HyperIo(stream), service);
            futures_lite::future::or(
                async {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                },
                glommio::timer::sleep(idle),
            )
            .await;
        })
        .detach();
    }
}

fn response(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    response_with(status, content_type, AnswerBody::Whole(PiecesBody::new(vec![body.into()])))
}

fn response_with(status: StatusCode, content_type: &'static str, body: AnswerBody) -> HttpResponse {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn method_not_allowed() -> HttpResponse {
    let mut r = response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET is served\n");
    r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET"));
    r
}

async fn metrics_request(shard: Rc<WorkerShard>, req: Request<Incoming>) -> HttpResponse {
    if req.uri().path() != "/metrics" {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found: the metrics are at /metrics\n");
    }
    if req.method() != Method::GET {
        return method_not_allowed();
    }
    match shard.admin_report(report::METRICS, REPORT_WAIT).await {
        Some(text) => response(StatusCode::OK, crate::server::prometheus::CONTENT_TYPE, text),
        None => response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "the commit shard did not answer in time\n"),
    }
}

/// What an AdminServer request asks for, decided from its method and URL
/// alone: sans-IO, so the fuzz target `admin_request` drives it without a
/// server (hyper has parsed the request line by then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRoute<'a> {
    /// The path is not under `admin.commandURL`.
    NotFound,
    /// Under it, but not GET.
    MethodNotAllowed,
    /// `admin.commandURL` itself (or with a trailing `/`): the list of links.
    CommandLinks,
    /// `<commandURL>/<name>`; the name may be unknown (answered 200 with an
    /// error, as Apache does) and the query is the raw one, or "".
    Command { name: &'a str, query: &'a str },
}

pub fn route_admin_request<'a>(base: &str, is_get: bool, path: &'a str, query: Option<&'a str>) -> AdminRoute<'a> {
    let Some(rest) = path.strip_prefix(base) else { return AdminRoute::NotFound };
    if !is_get {
        return AdminRoute::MethodNotAllowed;
    }
    if rest.is_empty() || rest == "/" {
        return AdminRoute::CommandLinks;
    }
    match rest.strip_prefix('/') {
        Some(name) => AdminRoute::Command { name, query: query.unwrap_or("") },
        None => AdminRoute::NotFound,
    }
}

async fn admin_request(shard: Rc<WorkerShard>, listings: Rc<Semaphore>, req: Request<Incoming>) -> HttpResponse {
    let base = shard.config.admin.command_url.as_str();
    let not_found =
        || response(StatusCode::NOT_FOUND, "text/plain", format!("not found: the commands are at {base}\n"));
    match route_admin_request(base, req.method() == Method::GET, req.uri().path(), req.uri().query()) {
        AdminRoute::NotFound => not_found(),
        AdminRoute::MethodNotAllowed => method_not_allowed(),
        AdminRoute::CommandLinks => response(StatusCode::OK, "text/html", command_links(base)),
        AdminRoute::Command { name, query } => {
            let serving = shard.server_stats.mode() != ServerMode::Looking;
            if let Some(Command { names, source: Source::Listing(cmd), server_required }) = lookup(name) {
                if serving || !server_required {
                    let primary = names.first().copied().unwrap_or(name);
                    return watch_listing(&shard, &listings, primary, cmd).await;
                }
            }
            let (status, body) = run_command(&shard, name, query).await;
            json_response(status, body)
        }
    }
}

fn json_response(status: StatusCode, body: Map<String, Value>) -> HttpResponse {
    let text = serde_json::to_string_pretty(&Value::Object(body)).unwrap_or_default();
    response(status, "application/json", text)
}

/// `watches` / `watches_by_path`: every shard lists its watches in chunks
/// (its dump task), the commit shard passes the lists on untouched, and
/// their k-way merge and JSON run on a thread of their own, unpinned and at
/// a lower priority, so that no executor (the commit shard orders every
/// write; worker 0 serves clients too) spends the seconds a 10M-watch
/// listing takes. The pieces go out as the merge writes them, through a
/// pipe of at most `LISTING_PIPE_BYTES`: the merge runs at the client's
/// pace, stops when the client leaves, and nothing here waits on glommio's
/// one blocking-pool thread (which `dirs` and `server_stats` need).
async fn watch_listing(
    shard: &WorkerShard,
    listings: &Rc<Semaphore>,
    primary: &str,
    cmd: &'static str,
) -> HttpResponse {
    let Ok(turn) = listings.acquire_static_permit(1).await else {
        let (status, body) = report_timed_out(primary);
        return json_response(status, body);
    };
    let Some(parts) = shard.admin_report_parts(cmd, LISTING_WAIT).await else {
        let (status, body) = report_timed_out(primary);
        return json_response(status, body);
    };
    let pipe = std::sync::Arc::new(ListingPipe::default());
    let writer = ListingWriter { pipe: pipe.clone(), finished: false };
    let command = primary.to_owned();
    let spawned = std::thread::Builder::new().name("zk-admin-json".into()).spawn(move || {
        unpin_and_lower_priority();
        let mut writer = writer;
        let completed = crate::server::admin_watches::write_parts_json(cmd, &command, parts, &mut writer);
        if !completed {
            tracing::debug!(command = %command, "watch listing stopped: the client is gone");
        }
        writer.finish(completed);
        // The parts are dropped here, off the executor.
    });
    match spawned {
        Ok(_detached) => {
            response_with(StatusCode::OK, "application/json", AnswerBody::Listing(ListingBody { pipe, _turn: turn }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the AdminServer's listing thread");
            let error = "the watch listing could not be made";
            json_response(StatusCode::INTERNAL_SERVER_ERROR, envelope(primary, Some(error), Map::new()))
        }
    }
}

/// For a thread started from an executor: it inherited the executor's core,
/// so it gets the process's (the main thread's) CPUs instead, and
/// `LISTING_THREAD_NICE`. A failure only costs latency.
fn unpin_and_lower_priority() {
    // SAFETY: plain syscalls; the set is plain bits filled by the kernel,
    // and both calls act on the calling thread's own id.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(libc::getpid(), size, &mut set) == 0 {
            let _ = libc::sched_setaffinity(0, size, &set);
        }
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, LISTING_THREAD_NICE);
    }
}

/// As Apache's command servlet lists them: one link per primary name, sorted.
fn command_links(base: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().filter_map(|c| c.names.first().copied()).collect();
    names.sort_unstable();
    names.iter().map(|n| format!("<a href=\"{base}/{n}\">{n}</a>\n<br/>\n")).collect()
}

/// Apache's CommandResponse.toMap: the data, then `command` (the primary
/// name, or the name asked for when unknown), then `error` unless the data
/// carries one.
fn envelope(command: &str, error: Option<&str>, mut data: Map<String, Value>) -> Map<String, Value> {
    data.insert("command".into(), json!(command));
    if !data.contains_key("error") {
        data.insert("error".into(), json!(error));
    }
    data
}

async fn run_command(shard: &Rc<WorkerShard>, name: &str, query: &str) -> (StatusCode, Map<String, Value>) {
    let Some(command) = lookup(name) else {
        return (StatusCode::OK, envelope(name, Some(&format!("Unknown command: {name}")), Map::new()));
    };
    let primary = command.names.first().copied().unwrap_or(name);
    if command.server_required && shard.server_stats.mode() == ServerMode::Looking {
        return (StatusCode::OK, envelope(primary, Some(NOT_SERVING), Map::new()));
    }
    let data = match command.source {
        Source::Local => local_command(shard, primary, query).await,
        // Answered by `watch_listing` before this (unless not serving).
        Source::Listing(_) => Map::new(),
        Source::Reset(word) => match shard.admin_report(word, REPORT_WAIT).await {
            Some(_) => Map::new(),
            None => return report_timed_out(primary),
        },
        Source::Report(cmd) => {
            let Some(text) = shard.admin_report(cmd, REPORT_WAIT).await else { return report_timed_out(primary) };
            let mut data: Map<String, Value> = serde_json::from_slice(&text).unwrap_or_default();
            if cmd == report::SERVER_STATS || cmd == report::STATS {
                let (data_dir, log_dir) = dir_sizes(&shard.config).await;
                if let Some(Value::Object(stats)) = data.get_mut("server_stats") {
                    stats.insert("data_dir_size".into(), json!(data_dir));
                    stats.insert("log_dir_size".into(), json!(log_dir));
                }
            }
            data
        }
    };
    (StatusCode::OK, envelope(primary, None, data))
}

fn report_timed_out(primary: &str) -> (StatusCode, Map<String, Value>) {
    let error = "the server did not answer in time (its commit shard is busy or stuck)";
    (StatusCode::SERVICE_UNAVAILABLE, envelope(primary, Some(error), Map::new()))
}

/// (dataDir size, dataLogDir size) in bytes, walked on the blocking pool.
async fn dir_sizes(config: &Config) -> (u64, u64) {
    let (data_dir, log_dir) = (config.data_dir.clone(), config.data_log_dir.clone());
    glommio::executor()
        .spawn_blocking(move || (crate::server::fourlw::dir_size(&data_dir), crate::server::fourlw::dir_size(&log_dir)))
        .await
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn local_command(shard: &Rc<WorkerShard>, primary: &str, query: &str) -> Map<String, Value> {
    let config = &shard.config;
    let mode = shard.server_stats.mode();
    match primary {
        "configuration" => configuration(config),
        "dirs" => {
            let (data_dir, log_dir) = dir_sizes(config).await;
            object(json!({ "datadir_size": data_dir, "logdir_size": log_dir }))
        }
        "environment" => environment(),
        "get_trace_mask" => object(json!({ "tracemask": 0 })),
        "set_trace_mask" => set_trace_mask(query),
        "initial_configuration" => object(json!({ "initial_configuration": config.initial_text })),
        "is_read_only" => object(json!({ "read_only": mode == ServerMode::ReadOnly })),
        "last_snapshot" => {
            let data_dir = config.data_dir.clone();
            glommio::executor().spawn_blocking(move || last_snapshot(&data_dir)).await
        }
        "leader" => leader(config, mode, shard.server_stats.leader_sid()),
        "system_properties" => system_properties(config),
        "voting_view" => voting_view(config),
        "zabstate" => zabstate(config, mode, shard.server_stats.zab_phase(), shard.server_stats.last_zxid()),
        // ruok: an empty answer.
        _ => Map::new(),
    }
}

/// ZooKeeperServerConf.toMap.
fn configuration(c: &Config) -> Map<String, Value> {
    object(json!({
        "client_port": c.client_port,
        "data_dir": c.data_dir.join("version-2").display().to_string(),
        "data_log_dir": c.data_log_dir.join("version-2").display().to_string(),
        "tick_time": c.tick_time_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout_ms,
        "max_session_timeout": c.max_session_timeout_ms,
        "server_id": c.quorum.as_ref().map_or(0, |q| q.my_id),
        "client_port_listen_backlog": -1,
    }))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_else(|_| "<NA>".to_owned())
}

/// /proc/meminfo `key` in MB, as Apache prints its memory figures.
fn meminfo_mb(key: &str) -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        })
        .map_or_else(|| "<NA>".to_owned(), |kb| format!("{}MB", kb / 1024))
}

/// Environment.list's keys. There is no JVM: its keys say `<NA>`, as
/// Apache says for a property it lacks; `os.memory.*` are the machine's.
fn environment() -> Map<String, Value> {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "<NA>".to_owned());
    let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_else(|_| "<NA>".to_owned());
    let na = "<NA>";
    object(json!({
        "zookeeper.version": crate::server::fourlw::version_string(),
        "host.name": read_trimmed("/proc/sys/kernel/hostname"),
        "java.version": na,
        "java.vendor": na,
        "java.home": na,
        "java.class.path": na,
        "java.library.path": na,
        "java.io.tmpdir": std::env::temp_dir().display().to_string(),
        "java.compiler": na,
        "os.name": "Linux",
        "os.arch": std::env::consts::ARCH,
        "os.version": read_trimmed("/proc/sys/kernel/osrelease"),
        "user.name": env("USER"),
        "user.home": env("HOME"),
        "user.dir": cwd,
        "os.memory.free": meminfo_mb("MemAvailable:"),
        "os.memory.max": meminfo_mb("MemTotal:"),
        "os.memory.total": meminfo_mb("MemTotal:"),
        "zoocore.version": env!("CARGO_PKG_VERSION"),
    }))
}

/// SetTraceMaskCommand's argument checks. zoocore has no trace levels: the
/// mask is echoed, as its `stmk` accepts and ignores it.
pub fn set_trace_mask(query: &str) -> Map<String, Value> {
    let arg = query.split('&').find_map(|pair| pair.strip_prefix("traceMask="));
    match arg {
        None => object(json!({ "error": "setTraceMask requires long traceMask argument" })),
        Some(v) => match v.parse::<i64>() {
            Ok(mask) => object(json!({ "tracemask": mask })),
            Err(_) => object(json!({ "error": format!("setTraceMask requires long traceMask argument, got {v}") })),
        },
    }
}

/// LastSnapshotCommand: the newest snapshot in dataDir (the one loaded at
/// start-up until a new one is written), its zxid in hex and mtime in s.
fn last_snapshot(data_dir: &std::path::Path) -> Map<String, Value> {
    let dir = crate::server::recovery::snapshot_dir(data_dir);
    let newest = crate::server::recovery::list_by_zxid(&dir, "snapshot").pop();
    let Some((zxid, path)) = newest else {
        return object(json!({ "zxid": format!("{:x}", -1i64), "timestamp": -1 }));
    };
    let timestamp = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(-1, |d| d.as_secs() as i64);
    object(json!({ "zxid": format!("{zxid:x}"), "timestamp": timestamp }))
}

/// LeaderCommand: the leader this member serves under (-1 and "" while
/// electing, as Apache's when it has no leader).
fn leader(config: &Config, mode: ServerMode, leader_sid: Option<u64>) -> Map<String, Value> {
    let Some(q) = &config.quorum else {
        return object(json!({ "error": "server is not initialized" }));
    };
    let is_leader = mode == ServerMode::Leader;
    let server = leader_sid.and_then(|sid| q.servers.iter().find(|s| s.id == sid));
    let (id, ip) = match server {
        Some(s) => (s.id as i64, s.host.clone()),
        None => (-1, String::new()),
    };
    object(json!({ "is_leader": is_leader, "leader_id": id, "leader_ip": ip }))
}

/// The Java system properties have no counterpart in a Rust process; what
/// does: the platform's, and (as Apache's QuorumPeerConfig turns zoo.cfg
/// keys it does not know into `zookeeper.<key>` properties) every zoo.cfg
/// key zoocore does not interpret.
fn system_properties(config: &Config) -> Map<String, Value> {
    let mut props = std::collections::BTreeMap::new();
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    props.insert("file.separator".to_owned(), "/".to_owned());
    props.insert("line.separator".to_owned(), "\n".to_owned());
    props.insert("path.separator".to_owned(), ":".to_owned());
    props.insert("os.name".to_owned(), "Linux".to_owned());
    props.insert("os.arch".to_owned(), std::env::consts::ARCH.to_owned());
    props.insert("os.version".to_owned(), read_trimmed("/proc/sys/kernel/osrelease"));
    props.insert("user.name".to_owned(), env("USER"));
    props.insert("user.home".to_owned(), env("HOME"));
    props.insert("user.dir".to_owned(), std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default());
    props.insert("java.io.tmpdir".to_owned(), std::env::temp_dir().display().to_string());
    props.insert("zoocore.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    for (k, v) in &config.other {
        let key = if k.starts_with("zookeeper.") { k.clone() } else { format!("zookeeper.{k}") };
        props.insert(key, v.clone());
    }
    props.into_iter().map(|(k, v)| (k, json!(v))).collect()
}

/// VotingViewCommand: the voting members, as QuorumServerView.
fn voting_view(config: &Config) -> Map<String, Value> {
    let mut view = Map::new();
    if let Some(q) = &config.quorum {
        for s in q.voting_members() {
            let client = s.client.map_or(String::new(), |(host, port)| {
                format!("{}:{port}", host.map_or_else(|| config.client_port_address.to_string(), |h| h.to_string()))
            });
            view.insert(
                s.id.to_string(),
                json!({
                    "server_addresses": [format!("{}:{}", s.host, s.quorum_port)],
                    "election_addresses": [format!("{}:{}", s.host, s.election_port)],
                    "client_address": client,
                    "learner_type": s.role.as_str(),
                }),
            );
        }
    }
    object(json!({ "current_config": view }))
}

/// ZabStateCommand, with the phase the commit shard publishes.
fn zabstate(config: &Config, mode: ServerMode, phase: crate::zab::ZabPhase, last_zxid: i64) -> Map<String, Value> {
    let Some(q) = &config.quorum else {
        return object(json!({ "voting": false, "zabstate": "" }));
    };
    let me = q.me();
    let addr = |port: Option<u16>| me.zip(port).map_or(String::new(), |(m, p)| format!("{}:{p}", m.host));
    let phase = phase.as_str();
    object(json!({
        "myid": q.my_id,
        "is_leader": mode == ServerMode::Leader,
        "quorum_address": addr(me.map(|m| m.quorum_port)),
        "election_address": addr(me.map(|m| m.election_port)),
        "client_address": format!("{}:{}", config.client_port_address, config.client_port),
        "voting": me.is_some_and(|m| m.role == crate::config::LearnerRole::Participant),
        "last_zxid": format!("0x{last_zxid:x}"),
        "zab_epoch": last_zxid >> 32,
        "zab_counter": last_zxid & 0xffff_ffff,
        "zabstate": phase,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_apaches_short_names_are_registered() {
        let mut all: Vec<&str> = COMMANDS.iter().flat_map(|c| c.names.iter().copied()).collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "a name is registered twice");
        for (short, primary) in [
            ("conf", "configuration"),
            ("config", "configuration"),
            ("crst", "connection_stat_reset"),
            ("cons", "connections"),
            ("env", "environment"),
            ("envi", "environment"),
            ("gtmk", "get_trace_mask"),
            ("icfg", "initial_configuration"),
            ("isro", "is_read_only"),
            ("lsnp", "last_snapshot"),
            ("lead", "leader"),
            ("mntr", "monitor"),
            ("orst", "observer_connection_stat_reset"),
            ("obsr", "observers"),
            ("srvr", "server_stats"),
            ("stmk", "set_trace_mask"),
            ("srst", "stat_reset"),
            ("stat", "stats"),
            ("sysp", "system_properties"),
            ("wchs", "watch_summary"),
            ("wchc", "watches"),
            ("wchp", "watches_by_path"),
        ] {
            assert_eq!(lookup(short).and_then(|c| c.names.first().copied()), Some(primary), "{short}");
        }
    }

    #[test]
    fn the_envelope_is_apaches() {
        let unknown = envelope("nope", Some("Unknown command: nope"), Map::new());
        assert_eq!(Value::Object(unknown), json!({ "command": "nope", "error": "Unknown command: nope" }));
        let leader = envelope("leader", None, object(json!({ "error": "server is not initialized" })));
        assert_eq!(leader["error"], json!("server is not initialized"), "the data's error stands");
        let keys: Vec<String> = envelope("dirs", None, object(json!({ "datadir_size": 1 }))).keys().cloned().collect();
        assert_eq!(keys, ["datadir_size", "command", "error"]);
    }

    #[test]
    fn routes_by_path_then_method_as_the_servlet() {
        let route = |get, path, query| route_admin_request("/commands", get, path, query);
        assert_eq!(route(true, "/metrics", None), AdminRoute::NotFound);
        assert_eq!(route(true, "/commandsx", None), AdminRoute::NotFound);
        assert_eq!(route(false, "/commands/ruok", None), AdminRoute::MethodNotAllowed);
        assert_eq!(route(true, "/commands", None), AdminRoute::CommandLinks);
        assert_eq!(route(true, "/commands/", None), AdminRoute::CommandLinks);
        assert_eq!(
            route(true, "/commands/stmk", Some("traceMask=3")),
            AdminRoute::Command { name: "stmk", query: "traceMask=3" }
        );
        assert_eq!(route(true, "/commands/no/such", None), AdminRoute::Command { name: "no/such", query: "" });
        assert_eq!(command_primary_name("stmk"), Some("set_trace_mask"));
        assert_eq!(command_primary_name("no/such"), None);
    }

    #[test]
    fn set_trace_mask_checks_its_argument_as_apache() {
        assert_eq!(set_trace_mask("")["error"], json!("setTraceMask requires long traceMask argument"));
        assert_eq!(
            set_trace_mask("traceMask=x")["error"],
            json!("setTraceMask requires long traceMask argument, got x")
        );
        assert_eq!(set_trace_mask("a=b&traceMask=306")["tracemask"], json!(306));
    }

    #[test]
    fn links_list_primary_names_sorted() {
        let links = command_links("/commands");
        assert!(links.starts_with("<a href=\"/commands/configuration\">configuration</a>\n<br/>\n"), "{links}");
        assert!(!links.contains("/commands/conf\""), "short names are not listed");
    }

    fn ensemble_member() -> Config {
        let text = "dataDir=/tmp/x\ninitLimit=5\nsyncLimit=2\nclientPort=2181\nclientPortAddress=127.0.0.1\n\
                    server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888;2181\nserver.3=10.0.0.3:2888:3888:observer\n";
        let (mut cfg, _) = Config::parse(text, "t").expect("config");
        cfg.quorum = Some(cfg.resolve_quorum("2", "myid").expect("quorum"));
        cfg
    }

    use crate::zab::ZabPhase;

    #[test]
    fn zabstate_splits_the_zxid_into_epoch_and_counter() {
        let (cfg, _) = Config::parse("dataDir=/tmp/x\n", "t").expect("config");
        let standalone = zabstate(&cfg, ServerMode::Standalone, ZabPhase::Election, 0x5_0000_0007);
        assert_eq!(Value::Object(standalone), json!({ "voting": false, "zabstate": "" }));
        let member = zabstate(&ensemble_member(), ServerMode::Follower, ZabPhase::Broadcast, 0x5_0000_0007);
        assert_eq!(member["zab_epoch"], 5);
        assert_eq!(member["zab_counter"], 7);
        assert_eq!(member["last_zxid"], "0x500000007");
        assert_eq!(member["quorum_address"], "10.0.0.2:2888");
        assert_eq!(member["voting"], true);
        assert_eq!(member["zabstate"], "broadcast");
        let syncing = zabstate(&ensemble_member(), ServerMode::Follower, ZabPhase::Synchronization, 0);
        assert_eq!(syncing["zabstate"], "synchronization");
    }

    #[test]
    fn voting_view_lists_the_voting_members_as_quorum_server_views() {
        let view = voting_view(&ensemble_member());
        let members = view["current_config"].as_object().expect("object");
        assert_eq!(members.keys().collect::<Vec<_>>(), ["1", "2"], "the observer does not vote");
        assert_eq!(
            members["2"],
            json!({
                "server_addresses": ["10.0.0.2:2888"],
                "election_addresses": ["10.0.0.2:3888"],
                "client_address": "127.0.0.1:2181",
                "learner_type": "participant",
            })
        );
        assert_eq!(members["1"]["client_address"], "");
    }

    #[test]
    fn leader_says_who_leads_when_it_knows() {
        let (standalone, _) = Config::parse("dataDir=/tmp/x\n", "t").expect("config");
        assert_eq!(leader(&standalone, ServerMode::Standalone, None)["error"], "server is not initialized");
        let lead = leader(&ensemble_member(), ServerMode::Leader, Some(2));
        assert_eq!(Value::Object(lead), json!({ "is_leader": true, "leader_id": 2, "leader_ip": "10.0.0.2" }));
        let follow = leader(&ensemble_member(), ServerMode::Follower, Some(1));
        assert_eq!(follow["is_leader"], false);
        assert_eq!(follow["leader_id"], 1, "a follower names its leader");
        let electing = leader(&ensemble_member(), ServerMode::Looking, None);
        assert_eq!(electing["leader_id"], -1);
    }
}
