//! The election port on glommio: zoocore's counterpart of Apache ZooKeeper's
//! `QuorumCnxManager`, and the loop that runs the sans-IO Fast Leader
//! Election (`crate::zab::election`) over it.
//!
//! It owns the election listener, one TCP connection per peer pair, a
//! single-slot outbox per peer (Apache's `SEND_CAPACITY` 1: only the newest
//! notification waits, and the last one sent is sent again on a new
//! connection), the bounded inbound queue, and the dialling with back-off.
//! The bytes on the wire (preamble, frames, notifications) and the rule of
//! which side keeps a connection come from `crate::zab::election_wire`.
//!
//! Connection rules, as Apache's: the dialler sends the preamble; an acceptor
//! whose sid is higher than the dialler's closes the connection and dials
//! back, so only the higher sid keeps an outgoing connection; a newer
//! connection for a sid replaces the older one. With quorum SASL the dialler
//! authenticates right after its preamble and the acceptor checks it before
//! the sids decide (Apache's order). A connection that sends a bad
//! frame or a notification that does not decode is closed with a warning
//! naming the peer; nothing a peer sends can stop the server.
//!
//! API (everything lives on one glommio executor; `ElectionNet` is `!Send`
//! and its tasks are spawned with `glommio::spawn_local`):
//! ```text
//! ElectionPeers { my_sid, listen, peers }                 who we are, where everyone's election port is
//! ElectionNet::start(peers) -> io::Result<ElectionNet>     bind + spawn the accept and dialler tasks
//! ElectionNet::start_with_transport(peers, transport)     the same over quorum TLS / SASL (server::quorum_tls, quorum_sasl)
//! net.send(to, notification)                               never blocks; newest-only per peer
//! net.recv().await -> Result<(Sid, Notification), ElectionNetClosed>
//! net.listen_addr(), net.connected_peers(), net.shutdown()
//! elect(&net, election, initial_actions, &now_ms).await -> Result<(Decision, Election), ElectionNetClosed>
//! answer_while_settled(&net, &mut election, &now_ms, stop).await
//! answer_while_settled_advertising(&net, &mut election, &now_ms, &advertised, stop).await
//! AdvertisedEpoch::default() / .set(epoch) / .get()        the epoch the settled vote reports
//! ```
//! `ElectionNet` is a cheap `Clone` handle (so a spawned task can hold one);
//! dropping the last handle shuts the network down.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use crate::server::quorum_tls::{QuorumStream, QuorumTransport};
use crate::zab::election::{Action, Decision, Election, Sid};
use crate::zab::election_wire::{
    accepted_connection_verdict, decode_preamble, dialled_connection_verdict, encode_preamble, split_frame,
    ConnectionVerdict, HostPort, Notification, Preamble, PreambleVersion, OBSERVER_ID,
};

/// How long a dial may take before it counts as failed (Apache's `cnxTimeout`).
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long an accepted connection may take to send its whole preamble.
pub const PREAMBLE_READ_TIMEOUT_MS: u64 = 5_000;
/// How long one frame write may block before the connection is dropped (a
/// peer that does not read would otherwise hold the connection forever).
pub const SEND_TIMEOUT_MS: u64 = 5_000;
/// First pause between dials to a peer that does not answer; doubles per try.
pub const DIAL_RETRY_MIN_MS: u64 = 100;
/// Cap of the dial back-off.
pub const DIAL_RETRY_MAX_MS: u64 = 3_000;
/// After handing our preamble to a higher sid, how long to wait for it to
/// dial back before dialling again: each dial of ours makes it drop the
/// connection it holds to us and dial anew, so retrying too soon would churn.
pub const DIAL_BACK_WAIT_MS: u64 = 500;
/// Notifications waiting per peer (Apache's `SEND_CAPACITY`): a newer one
/// replaces the one waiting, since only the newest vote matters. (The
/// outbox is an `Option`, so this is what it holds, not a tunable.)
pub const SEND_QUEUE_CAPACITY: usize = 1;
/// Notifications received and not yet taken by `recv` (Apache's
/// `RECV_CAPACITY`); when full the oldest is dropped, as Apache does.
pub const INBOUND_QUEUE_CAPACITY: usize = 100;
/// Accepted connections that may be reading their preamble at once; more are
/// closed at once so a flood of idle sockets cannot pile up.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 32;
/// Pause after a failed accept (e.g. out of file descriptors) before the next.
pub const ACCEPT_ERROR_PAUSE_MS: u64 = 100;
/// Bytes read from a socket per read call.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// Largest possible preamble: three header fields and the address text.
const PREAMBLE_MAX_BYTES: usize = 8 + 8 + 4 + crate::zab::election_wire::PREAMBLE_ADDRESS_MAX_BYTES;

/// Who we are and where every other server's election port is.
#[derive(Debug, Clone)]
pub struct ElectionPeers {
    pub my_sid: Sid,
    /// Our election address; it is bound as given and announced in our preamble.
    pub listen: SocketAddr,
    /// Election addresses of every other server, voters and observers.
    pub peers: BTreeMap<Sid, SocketAddr>,
}

/// The network was shut down; nothing more will be received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionNetClosed;

impl std::fmt::Display for ElectionNetClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the election network is shut down")
    }
}

impl std::error::Error for ElectionNetClosed {}

/// The election port of one server. See the module doc.
#[derive(Clone)]
pub struct ElectionNet {
    shared: Rc<Shared>,
    /// Shared by the handles, not by the tasks: the last handle dropped shuts down.
    _owner: Rc<ShutdownOnDrop>,
}

struct ShutdownOnDrop(Rc<Shared>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl ElectionNet {
    /// Binds the election listener and spawns the accept task and one
    /// dialler task per peer, all plaintext. Must run inside a glommio executor.
    pub fn start(peers: ElectionPeers) -> std::io::Result<ElectionNet> {
        ElectionNet::start_with_transport(peers, QuorumTransport::default())
    }

    /// [`ElectionNet::start`], with connections dialled and accepted as
    /// `transport` says (quorum TLS, `server::quorum_tls`).
    pub fn start_with_transport(peers: ElectionPeers, transport: QuorumTransport) -> std::io::Result<ElectionNet> {
        // std's bind, not glommio's: glommio sets SO_REUSEPORT, which would
        // let a second server silently share the port.
        let std_listener = std::net::TcpListener::bind(peers.listen).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot bind the election port {}: {e}", peers.listen))
        })?;
        let listen = std_listener.local_addr()?;
        // SAFETY: the fd is a bound, listening socket we own; glommio takes it over.
        let listener = unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(std_listener.into_raw_fd()) };
        let (stop_accepting_tx, stop_accepting_rx) = local_channel::new_bounded::<()>(1);
        let shared = Rc::new(Shared {
            my_sid: peers.my_sid,
            listen,
            slots: RefCell::new(BTreeMap::new()),
            inbound: RefCell::new(Inbound::default()),
            closed: Cell::new(false),
            next_connection_id: Cell::new(1),
            next_anonymous_observer_sid: Cell::new(-1),
            handshakes_in_flight: Cell::new(0),
            stop_accepting: RefCell::new(Some(stop_accepting_tx)),
            transport,
        });
        for (sid, addr) in &peers.peers {
            if *sid == peers.my_sid {
                continue;
            }
            let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
            let slot = PeerSlot { address: Some(*addr), dialler: Some(wake_tx), ..PeerSlot::default() };
            shared.slots.borrow_mut().insert(*sid, slot);
            glommio::spawn_local(dial_loop(shared.clone(), *sid, *addr, wake_rx)).detach();
        }
        glommio::spawn_local(accept_loop(shared.clone(), listener, stop_accepting_rx)).detach();
        tracing::info!(sid = peers.my_sid, %listen, peers = peers.peers.len(), "election port listening");
        Ok(ElectionNet { _owner: Rc::new(ShutdownOnDrop(shared.clone())), shared })
    }

    /// The address actually bound (the port is filled in if `listen` had 0).
    pub fn listen_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// Queues `n` for `to`, replacing any notification still waiting for it,
    /// and dials if there is no connection. Never blocks. A sid with no
    /// known address gets it only once it connects to us.
    pub fn send(&self, to: Sid, n: Notification) {
        self.shared.send(to, n);
    }

    /// The next notification from any peer.
    pub async fn recv(&self) -> Result<(Sid, Notification), ElectionNetClosed> {
        futures_lite::future::poll_fn(|cx| self.shared.poll_recv(cx)).await
    }

    /// Sids with an open connection right now (for tests and `mntr`-style stats).
    pub fn connected_peers(&self) -> Vec<Sid> {
        self.shared.slots.borrow().iter().filter(|(_, s)| s.connection.is_some()).map(|(sid, _)| *sid).collect()
    }

    /// Closes the listener and every connection and stops the diallers; the
    /// tasks end the next time the executor polls them. `recv` then fails.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }
}

/// Runs one election round to a decision: sends `initial_actions` (what
/// `Election::start` returned), then feeds every received notification and
/// every timer tick into `election` (times from `now_ms`, a monotonic clock in
/// ms) and sends what it asks for. Returns the decision and the election,
/// which keeps answering LOOKING peers with the settled vote (see
/// [`answer_while_settled`]).
pub async fn elect(
    net: &ElectionNet,
    mut election: Election,
    initial_actions: Vec<Action>,
    now_ms: &dyn Fn() -> u64,
) -> Result<(Decision, Election), ElectionNetClosed> {
    let mut actions = initial_actions;
    loop {
        // What the actions ask is sorted by the shared `Election::step`
        // (the simulator's driver uses it too).
        let step = election.step(std::mem::take(&mut actions));
        for (to, notification) in step.sends {
            net.send(to, notification);
        }
        if let Some(d) = step.decision {
            tracing::info!(sid = net.shared.my_sid, leader = d.leader, role = ?d.role, round = d.vote.election_epoch, "election decided");
            return Ok((d, election));
        }
        let event = match election.next_deadline_ms() {
            Some(deadline) => {
                let now = now_ms();
                if now >= deadline {
                    actions = election.on_tick(now);
                    continue;
                }
                let wait = Duration::from_millis(deadline - now);
                futures_lite::future::or(async { Some(net.recv().await) }, async {
                    glommio::timer::sleep(wait).await;
                    None
                })
                .await
            }
            // Not settled without a deadline cannot happen; wait for a peer.
            None => Some(net.recv().await),
        };
        actions = match event {
            Some(received) => {
                let (from, n) = received?;
                election.on_notification(from, &n, now_ms())
            }
            None => election.on_tick(now_ms()),
        };
    }
}

/// The epoch the settled vote advertises, set by the role once it runs
/// that epoch (Apache's `QuorumPeer.updateElectionVote`, ZOOKEEPER-1732):
/// the leader when established, a learner when UPTODATE. Without it a
/// server that joined a re-elected leader keeps the peer epoch it was
/// elected with, the leader keeps the one before its new epoch, and a
/// LOOKING server, which counts FOLLOWING/LEADING votes as agreeing only
/// on (leader, peer epoch), never sees a quorum and stays LOOKING (found
/// by the simulator, seeds 274 and others in tests/sim_seeds.rs). A cheap
/// `Clone` handle: the role sets it, the answering task reads it.
#[derive(Debug, Clone, Default)]
pub struct AdvertisedEpoch(Rc<Cell<Option<i64>>>);

impl AdvertisedEpoch {
    pub fn set(&self, epoch: i64) {
        self.0.set(Some(epoch));
    }

    pub fn get(&self) -> Option<i64> {
        self.0.get()
    }
}

/// While leading, following or observing: answers LOOKING peers (and
/// observers) with the settled vote, through `Election::on_notification`,
/// until `stop` resolves or the network shuts down. To run it as a task,
/// move a clone of the `ElectionNet` and the election into the task.
/// The vote keeps the epoch it was elected with; a member of an ensemble
/// uses [`answer_while_settled_advertising`].
pub async fn answer_while_settled(
    net: &ElectionNet,
    election: &mut Election,
    now_ms: &dyn Fn() -> u64,
    stop: impl Future<Output = ()>,
) {
    answer_while_settled_advertising(net, election, now_ms, &AdvertisedEpoch::default(), stop).await
}

/// [`answer_while_settled`], with the settled vote's peer epoch taken from
/// `advertised` once the role has set it.
pub async fn answer_while_settled_advertising(
    net: &ElectionNet,
    election: &mut Election,
    now_ms: &dyn Fn() -> u64,
    advertised: &AdvertisedEpoch,
    stop: impl Future<Output = ()>,
) {
    let stop = async {
        stop.await;
        None
    };
    futures_lite::pin!(stop);
    loop {
        let event = futures_lite::future::or(async { Some(net.recv().await) }, &mut stop).await;
        let Some(Ok((from, n))) = event else { return };
        if let (Some(epoch), Some(settled)) = (advertised.get(), election.settled_mut()) {
            settled.set_peer_epoch(epoch);
        }
        for action in election.on_notification(from, &n, now_ms()) {
            if let Action::Send { to, notification } = action {
                net.send(to, notification);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct Shared {
    my_sid: Sid,
    listen: SocketAddr,
    slots: RefCell<BTreeMap<Sid, PeerSlot>>,
    inbound: RefCell<Inbound>,
    closed: Cell<bool>,
    next_connection_id: Cell<u64>,
    /// Apache gives observers that announce no sid private negative ids.
    next_anonymous_observer_sid: Cell<Sid>,
    handshakes_in_flight: Cell<usize>,
    /// Dropped on shutdown, which ends the accept task.
    stop_accepting: RefCell<Option<LocalSender<()>>>,
    /// Plaintext, or quorum TLS on every connection.
    transport: QuorumTransport,
}

#[derive(Default)]
struct PeerSlot {
    address: Option<SocketAddr>,
    /// The newest notification not yet handed to a connection.
    outbox: Option<Notification>,
    /// Sent again when a new connection comes up with the outbox empty: the
    /// old connection may have died with it unread.
    last_sent: Option<Notification>,
    connection: Option<ConnectionHandle>,
    /// Something must reach this peer (or it asked to be dialled back).
    wants_connection: bool,
    /// It dialled us and waits for our dial-back: skip the back-off.
    dial_now: bool,
    dialler: Option<LocalSender<()>>,
}

/// Dropping it closes the connection: the writer's wake channel and the
/// reader's close channel both lose their sender.
struct ConnectionHandle {
    id: u64,
    wake_writer: LocalSender<()>,
    _close_reader: LocalSender<()>,
}

#[derive(Default)]
struct Inbound {
    queue: VecDeque<(Sid, Notification)>,
    waiters: Vec<Waker>,
    dropped_when_full: u64,
}

enum NextSend {
    Frame(BytesMut),
    Idle,
    /// This connection was replaced or closed.
    Gone,
}

impl Shared {
    fn send(&self, to: Sid, n: Notification) {
        if self.closed.get() {
            return;
        }
        if to == self.my_sid {
            // Election records our own vote itself.
            return;
        }
        let mut slots = self.slots.borrow_mut();
        let slot = slots.entry(to).or_default();
        slot.outbox = Some(n);
        if let Some(connection) = &slot.connection {
            let _ = connection.wake_writer.try_send(());
        } else {
            slot.wants_connection = true;
            match &slot.dialler {
                Some(dialler) => {
                    let _ = dialler.try_send(());
                }
                None => tracing::debug!(sid = to, "no election address for this server; held until it connects"),
            }
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Result<(Sid, Notification), ElectionNetClosed>> {
        let mut inbound = self.inbound.borrow_mut();
        if let Some(message) = inbound.queue.pop_front() {
            return Poll::Ready(Ok(message));
        }
        if self.closed.get() {
            return Poll::Ready(Err(ElectionNetClosed));
        }
        if !inbound.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            inbound.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    fn deliver(&self, from: Sid, n: Notification) {
        let waiters = {
            let mut inbound = self.inbound.borrow_mut();
            if inbound.queue.len() >= INBOUND_QUEUE_CAPACITY {
                inbound.queue.pop_front();
                inbound.dropped_when_full += 1;
                tracing::debug!(dropped = inbound.dropped_when_full, "election inbound queue full; dropped the oldest");
            }
            inbound.queue.push_back((from, n));
            std::mem::take(&mut inbound.waiters)
        };
        waiters.into_iter().for_each(Waker::wake);
    }

    fn wants_dial(&self, sid: Sid) -> bool {
        !self.closed.get()
            && self.slots.borrow().get(&sid).is_some_and(|s| s.connection.is_none() && s.wants_connection)
    }

    /// Reads and clears the peer's "dial now" request.
    fn take_dial_now(&self, sid: Sid) -> bool {
        self.slots.borrow_mut().get_mut(&sid).is_some_and(|s| std::mem::take(&mut s.dial_now))
    }

    /// A lower sid dialled us: it has lost its side of any connection we
    /// hold (it restarted, or the network broke), so close ours and dial it
    /// back ourselves.
    fn request_dial_back(&self, sid: Sid) {
        let stale = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(&sid).filter(|s| s.address.is_some()) else {
                tracing::warn!(sid, "a server with no configured election address dialled us; cannot dial it back");
                return;
            };
            slot.wants_connection = true;
            slot.dial_now = true;
            if let Some(dialler) = &slot.dialler {
                let _ = dialler.try_send(());
            }
            slot.connection.take()
        };
        drop(stale);
    }

    /// Makes `stream` the connection to `sid`, replacing any older one, and
    /// starts its writer and reader. `already_read` holds bytes that came
    /// after the preamble.
    fn install(self: &Rc<Self>, sid: Sid, stream: QuorumStream, already_read: BytesMut) {
        if self.closed.get() {
            return;
        }
        let id = self.next_connection_id.get();
        self.next_connection_id.set(id + 1);
        let (wake_tx, wake_rx) = local_channel::new_bounded::<()>(1);
        let (close_tx, close_rx) = local_channel::new_bounded::<()>(1);
        let _ = wake_tx.try_send(());
        let replaced = {
            let mut slots = self.slots.borrow_mut();
            let slot = slots.entry(sid).or_default();
            slot.wants_connection = false;
            slot.dial_now = false;
            slot.connection.replace(ConnectionHandle { id, wake_writer: wake_tx, _close_reader: close_tx })
        };
        if replaced.is_some() {
            tracing::debug!(sid, "newer election connection replaces the old one");
        }
        drop(replaced);
        tracing::debug!(sid, connection = id, "election connection up");
        let tls = stream.is_tls();
        let (reader, writer) = futures_lite::io::split(stream);
        glommio::spawn_local(write_loop(self.clone(), sid, id, writer, wake_rx)).detach();
        glommio::spawn_local(read_loop(self.clone(), sid, id, reader, already_read, close_rx, tls)).detach();
    }

    /// What connection `id` to `sid` should write next. `fresh`: it has
    /// just come up, so it re-sends the last notification if nothing newer waits.
    fn next_to_send(&self, sid: Sid, id: u64, fresh: bool) -> NextSend {
        let mut slots = self.slots.borrow_mut();
        let Some(slot) = slots.get_mut(&sid) else { return NextSend::Gone };
        if slot.connection.as_ref().map(|c| c.id) != Some(id) {
            return NextSend::Gone;
        }
        let next = match slot.outbox.take() {
            Some(n) => n,
            None if fresh => match &slot.last_sent {
                Some(n) => n.clone(),
                None => return NextSend::Idle,
            },
            None => return NextSend::Idle,
        };
        let mut frame = BytesMut::with_capacity(4 + next.encoded_len());
        let encoded = next.encode_frame(&mut frame);
        slot.last_sent = Some(next);
        match encoded {
            Ok(()) => NextSend::Frame(frame),
            Err(e) => {
                tracing::error!(sid, error = %e, "our own notification does not encode; not sent");
                NextSend::Idle
            }
        }
    }

    /// Connection `id` to `sid` ended: forget it (unless already replaced)
    /// and dial again if something is waiting for that peer.
    fn connection_lost(&self, sid: Sid, id: u64) {
        let closed_handle = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.get_mut(&sid) else { return };
            if slot.connection.as_ref().map(|c| c.id) != Some(id) {
                return;
            }
            let handle = slot.connection.take();
            tracing::debug!(sid, connection = id, "election connection closed");
            if slot.address.is_none() {
                // An anonymous or unconfigured peer: nothing to dial, nothing to keep.
                slots.remove(&sid);
            } else if slot.outbox.is_some() && !self.closed.get() {
                slot.wants_connection = true;
                if let Some(dialler) = &slot.dialler {
                    let _ = dialler.try_send(());
                }
            }
            handle
        };
        drop(closed_handle);
    }

    fn shutdown(&self) {
        if self.closed.replace(true) {
            return;
        }
        tracing::info!(sid = self.my_sid, "election port shutting down");
        self.stop_accepting.borrow_mut().take();
        // Dropped outside the borrow: closing wakes the connection tasks.
        let mut connections = Vec::new();
        let mut diallers = Vec::new();
        for slot in self.slots.borrow_mut().values_mut() {
            connections.extend(slot.connection.take());
            diallers.extend(slot.dialler.take());
        }
        drop((connections, diallers));
        let waiters = std::mem::take(&mut self.inbound.borrow_mut().waiters);
        waiters.into_iter().for_each(Waker::wake);
    }

    fn our_preamble(&self) -> Preamble {
        Preamble {
            version: PreambleVersion::V1,
            sid: self.my_sid,
            election_addresses: vec![HostPort::new(self.listen.ip().to_string(), self.listen.port())],
        }
    }
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

async fn accept_loop(shared: Rc<Shared>, listener: TcpListener, stop: LocalReceiver<()>) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => {
                if shared.handshakes_in_flight.get() >= HANDSHAKES_IN_FLIGHT_MAX {
                    tracing::warn!(
                        peer = ?stream.peer_addr().ok(),
                        limit = HANDSHAKES_IN_FLIGHT_MAX,
                        "too many election connections still sending their preamble; closing this one"
                    );
                    continue;
                }
                shared.handshakes_in_flight.set(shared.handshakes_in_flight.get() + 1);
                glommio::spawn_local(handshake(shared.clone(), stream)).detach();
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "election port accept failed");
                glommio::timer::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
            }
        }
    }
}

/// Reads an accepted connection's preamble and keeps it, or closes it and
/// dials back, as the sids decide.
async fn handshake(shared: Rc<Shared>, stream: TcpStream) {
    let peer_addr = stream.peer_addr().ok();
    let transport = shared.transport.clone();
    let secured_then_read = async {
        let mut stream = transport.accept(stream).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
        let (preamble, rest) = read_preamble(&mut stream).await?;
        Ok((stream, preamble, rest))
    };
    let read = futures_lite::future::or(secured_then_read, async {
        glommio::timer::sleep(Duration::from_millis(PREAMBLE_READ_TIMEOUT_MS)).await;
        Err(format!("no complete preamble within {PREAMBLE_READ_TIMEOUT_MS} ms"))
    })
    .await;
    let (mut stream, preamble, mut rest) = match read {
        Ok(done) => done,
        Err(reason) => {
            shared.handshakes_in_flight.set(shared.handshakes_in_flight.get().saturating_sub(1));
            tracing::warn!(peer = ?peer_addr, %reason, "dropping election connection");
            return;
        }
    };
    // Quorum SASL (server::quorum_sasl) comes after the preamble and before
    // the sids decide, as in Apache: a dialler that will be dropped
    // authenticates too. It has its own timeout.
    if let Some(sasl) = transport.sasl() {
        // The address only names the peer in messages; an unknown one must not skip the check.
        let peer = stream.tcp().peer_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        if let Err(reason) = sasl.authenticate_peer(&mut stream, &mut rest, peer).await {
            shared.handshakes_in_flight.set(shared.handshakes_in_flight.get().saturating_sub(1));
            tracing::warn!(%peer, sid = preamble.sid, %reason, "dropping election connection: quorum SASL");
            return;
        }
    }
    shared.handshakes_in_flight.set(shared.handshakes_in_flight.get().saturating_sub(1));
    let mut sid = preamble.sid;
    match accepted_connection_verdict(shared.my_sid, sid) {
        ConnectionVerdict::Keep => {
            if sid == OBSERVER_ID {
                sid = shared.next_anonymous_observer_sid.get();
                shared.next_anonymous_observer_sid.set(sid.saturating_sub(1));
            }
            let _ = stream.tcp().set_nodelay(true);
            let _ = stream.tcp().set_write_timeout(Some(Duration::from_millis(SEND_TIMEOUT_MS)));
            shared.install(sid, stream, rest);
        }
        ConnectionVerdict::DropAndDialBack => {
            drop(stream);
            shared.request_dial_back(sid);
        }
        ConnectionVerdict::Drop => {
            tracing::warn!(peer = ?peer_addr, sid, "a server announced our own sid on the election port; closing");
        }
    }
}

async fn read_preamble(stream: &mut QuorumStream) -> Result<(Preamble, BytesMut), String> {
    let mut buf = BytesMut::new();
    loop {
        match decode_preamble(&buf) {
            Ok(Some((preamble, used))) => {
                buf.advance(used);
                return Ok((preamble, buf));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("bad preamble: {e}")),
        }
        // decode_preamble bounds the address text, so this only guards a
        // peer that keeps sending after a complete preamble was possible.
        if buf.len() > PREAMBLE_MAX_BYTES {
            return Err("preamble too long".into());
        }
        read_some(stream, &mut buf).await?;
    }
}

/// Appends what one read returns to `buf`; end of stream is an error.
async fn read_some<R: futures_lite::AsyncRead + Unpin>(reader: &mut R, buf: &mut BytesMut) -> Result<(), String> {
    let start = buf.len();
    buf.resize(start + READ_CHUNK_BYTES, 0);
    let result = reader.read(&mut buf[start..]).await;
    match result {
        Ok(0) => {
            buf.truncate(start);
            Err("end of stream".into())
        }
        Ok(n) => {
            buf.truncate(start + n);
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(format!("read error: {e}"))
        }
    }
}

async fn write_loop(
    shared: Rc<Shared>,
    sid: Sid,
    id: u64,
    mut writer: WriteHalf<QuorumStream>,
    wake: LocalReceiver<()>,
) {
    let mut fresh = true;
    loop {
        match shared.next_to_send(sid, id, fresh) {
            NextSend::Frame(frame) => {
                if let Err(e) = writer.write_all(&frame).await {
                    tracing::debug!(sid, error = %e, "election connection write failed");
                    break;
                }
            }
            NextSend::Idle => {
                if wake.recv().await.is_none() {
                    break;
                }
            }
            NextSend::Gone => break,
        }
        fresh = false;
    }
    shared.connection_lost(sid, id);
}

async fn read_loop(
    shared: Rc<Shared>,
    sid: Sid,
    id: u64,
    mut reader: ReadHalf<QuorumStream>,
    mut buf: BytesMut,
    close: LocalReceiver<()>,
    tls: bool,
) {
    let reason = loop {
        match take_notifications(&shared, sid, &mut buf) {
            Ok(()) => {}
            Err(reason) => {
                tracing::warn!(sid, %reason, "dropping the election connection to this server");
                break reason;
            }
        }
        let read = futures_lite::future::or(async { Some(read_some(&mut reader, &mut buf).await) }, async {
            let _ = close.recv().await;
            None
        })
        .await;
        match read {
            Some(Ok(())) => {}
            Some(Err(reason)) => {
                // Over TLS a read error is mostly the peer's alert: it refused
                // our certificate (TLS 1.3 tells the dialler only now).
                if tls && reason.starts_with("read error") {
                    tracing::warn!(sid, %reason, "election connection to this server failed");
                }
                break reason;
            }
            None => break "closed by us".to_owned(),
        }
    };
    tracing::debug!(sid, connection = id, %reason, "election reader stopped");
    shared.connection_lost(sid, id);
}

/// Delivers every complete frame in `buf`. A bad frame length or a payload
/// that is not a notification is an error: the connection is dropped.
fn take_notifications(shared: &Shared, sid: Sid, buf: &mut BytesMut) -> Result<(), String> {
    loop {
        let used = match split_frame(buf) {
            Ok(Some((_, used))) => used,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("bad election frame: {e}")),
        };
        let mut frame = buf.split_to(used).freeze();
        frame.advance(4);
        match Notification::decode(frame) {
            Ok(n) => shared.deliver(sid, n),
            Err(e) => return Err(format!("malformed notification: {e}")),
        }
    }
}

async fn dial_loop(shared: Rc<Shared>, sid: Sid, addr: SocketAddr, wake: LocalReceiver<()>) {
    while wake.recv().await.is_some() {
        let mut retry_ms = DIAL_RETRY_MIN_MS;
        let mut failing = false;
        while shared.wants_dial(sid) {
            let mut pause_ms = retry_ms;
            match dial_once(&shared, sid, addr).await {
                Ok(DialOutcome::Kept) => break,
                Ok(DialOutcome::AwaitingDialBack) => {
                    failing = false;
                    pause_ms = pause_ms.max(DIAL_BACK_WAIT_MS);
                }
                Err(reason) => {
                    if failing {
                        tracing::debug!(sid, %addr, %reason, "election dial failed again");
                    } else {
                        tracing::warn!(sid, %addr, %reason, "cannot connect to this server's election port; retrying");
                    }
                    failing = true;
                }
            }
            pause_unless_dialled(&shared, sid, &wake, Duration::from_millis(pause_ms)).await;
            retry_ms = (retry_ms * 2).min(DIAL_RETRY_MAX_MS);
        }
    }
}

/// Sleeps `pause`, cut short when the peer dials us (it is up now and
/// waits for our dial-back: Apache dials back at once, so must we, or a
/// pair of Apache servers decides without us) or on shutdown.
async fn pause_unless_dialled(shared: &Shared, sid: Sid, wake: &LocalReceiver<()>, pause: Duration) {
    let until = std::time::Instant::now() + pause;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || shared.take_dial_now(sid) || shared.closed.get() {
            return;
        }
        let sender_alive = futures_lite::future::or(
            async {
                glommio::timer::sleep(left).await;
                true
            },
            async { wake.recv().await.is_some() },
        )
        .await;
        if !sender_alive {
            return;
        }
    }
}

enum DialOutcome {
    Kept,
    /// The peer has the higher sid: it got our preamble and dials us.
    AwaitingDialBack,
}

async fn dial_once(shared: &Rc<Shared>, sid: Sid, addr: SocketAddr) -> Result<DialOutcome, String> {
    let tcp = TcpStream::connect_timeout(addr, Duration::from_millis(CONNECT_TIMEOUT_MS))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(Duration::from_millis(SEND_TIMEOUT_MS)));
    let mut stream = shared.transport.dial(tcp, addr).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
    let mut preamble = BytesMut::new();
    encode_preamble(&shared.our_preamble(), &mut preamble).map_err(|e| format!("our preamble: {e}"))?;
    stream.write_all(&preamble).await.map_err(|e| format!("sending the preamble: {e}"))?;
    if let Some(sasl) = shared.transport.sasl() {
        // Before the verdict: the peer authenticates us even if it is the
        // one to keep the connection (it dials back only once we pass).
        sasl.authenticate_to(&mut stream, addr).await?;
    }
    match dialled_connection_verdict(shared.my_sid, sid) {
        ConnectionVerdict::Keep => {
            shared.install(sid, stream, BytesMut::new());
            Ok(DialOutcome::Kept)
        }
        ConnectionVerdict::Drop | ConnectionVerdict::DropAndDialBack => Ok(DialOutcome::AwaitingDialBack),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::election_wire::PeerState;

    fn shared() -> Rc<Shared> {
        Rc::new(Shared {
            my_sid: 2,
            listen: SocketAddr::from(([127, 0, 0, 1], 3888)),
            slots: RefCell::new(BTreeMap::new()),
            inbound: RefCell::new(Inbound::default()),
            closed: Cell::new(false),
            next_connection_id: Cell::new(1),
            next_anonymous_observer_sid: Cell::new(-1),
            handshakes_in_flight: Cell::new(0),
            stop_accepting: RefCell::new(None),
            transport: QuorumTransport::default(),
        })
    }

    fn vote(round: i64) -> Notification {
        Notification {
            state: PeerState::Looking,
            leader: 2,
            zxid: 0,
            election_epoch: round,
            peer_epoch: 0,
            version: 2,
            config: None,
        }
    }

    fn connect_slot(shared: &Shared, sid: Sid, id: u64) {
        let (wake_writer, _) = local_channel::new_bounded(1);
        let (close_reader, _) = local_channel::new_bounded(1);
        let mut slots = shared.slots.borrow_mut();
        // As `install` does, without the tasks.
        slots.entry(sid).or_default().wants_connection = false;
        slots.entry(sid).or_default().connection =
            Some(ConnectionHandle { id, wake_writer, _close_reader: close_reader });
    }

    fn sent_round(next: NextSend) -> Option<i64> {
        match next {
            NextSend::Frame(frame) => {
                let (payload, _) = split_frame(&frame).ok()??;
                Notification::decode(bytes::Bytes::copy_from_slice(payload)).ok().map(|n| n.election_epoch)
            }
            NextSend::Idle | NextSend::Gone => None,
        }
    }

    #[test]
    fn only_the_newest_notification_waits_and_the_last_is_resent_on_a_new_connection() {
        let shared = shared();
        shared.slots.borrow_mut().insert(1, PeerSlot { address: Some(shared.listen), ..PeerSlot::default() });
        for round in 1..=3 {
            shared.send(1, vote(round));
        }
        assert!(shared.slots.borrow()[&1].wants_connection);
        connect_slot(&shared, 1, 7);
        assert_eq!(sent_round(shared.next_to_send(1, 7, true)), Some(3));
        assert!(matches!(shared.next_to_send(1, 7, false), NextSend::Idle));
        // A stale connection id gets nothing.
        assert!(matches!(shared.next_to_send(1, 6, true), NextSend::Gone));
        // The connection dies; nothing is waiting, so no dial; the next
        // connection starts by sending the last notification again.
        shared.connection_lost(1, 7);
        assert!(!shared.wants_dial(1));
        connect_slot(&shared, 1, 8);
        assert_eq!(sent_round(shared.next_to_send(1, 8, true)), Some(3));
    }

    #[test]
    fn a_lost_connection_with_a_waiting_notification_asks_for_a_dial() {
        let shared = shared();
        shared.slots.borrow_mut().insert(1, PeerSlot { address: Some(shared.listen), ..PeerSlot::default() });
        connect_slot(&shared, 1, 1);
        shared.send(1, vote(4));
        shared.connection_lost(1, 1);
        assert!(shared.wants_dial(1));
        shared.shutdown();
        assert!(!shared.wants_dial(1), "nothing is dialled after shutdown");
    }

    #[test]
    fn a_full_inbound_queue_drops_the_oldest() {
        let shared = shared();
        for round in 0..(INBOUND_QUEUE_CAPACITY as i64 + 5) {
            shared.deliver(1, vote(round));
        }
        let inbound = shared.inbound.borrow();
        assert_eq!(inbound.queue.len(), INBOUND_QUEUE_CAPACITY);
        assert_eq!(inbound.queue.front().map(|(_, n)| n.election_epoch), Some(5));
        assert_eq!(inbound.dropped_when_full, 5);
    }

    #[test]
    fn messages_to_ourselves_or_after_shutdown_go_nowhere() {
        let shared = shared();
        shared.send(2, vote(1));
        assert!(shared.slots.borrow().is_empty());
        shared.shutdown();
        shared.send(1, vote(1));
        assert!(shared.slots.borrow().is_empty());
    }
}
