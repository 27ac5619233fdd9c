//! The session workload's clients and the `sessions` checker.
//!
//! A client connects to one serving server (createSession: executed by a
//! leader or standalone server, forwarded to the leader by a learner, as
//! production does), pings it every third of its timeout while the
//! connection lives, maybe creates one ephemeral, and then either closes
//! its session or walks away (stops pinging). The servers run the
//! production session table and `session::ExpiryQueue` on their own clock.
//!
//! The checker (`sessions`):
//! * an ephemeral's create commits only while its owner session is live on
//!   the server that applies it, and never after the session's close;
//! * once the closeSession / expiry txn of a session is applied (leader's
//!   publish, learner's apply), that server holds no ephemeral of it (and,
//!   by `agreement`, every server closes it at the same zxid);
//! * no session expires while its client keeps pinging a connected server
//!   and nothing disturbed the world (fault, role change) for the session's
//!   timeout plus `EXPIRY_SLACK_TICKS` ticks and 50 ms of network;
//! * at the end, a session whose client stopped pinging long enough ago is
//!   gone everywhere, and every ephemeral's owner is a live session there.

use std::collections::BTreeMap;

use crate::zab::ensemble::Sid;

/// What the expiry checker allows beyond a session's timeout, in ticks:
/// one for the expiry queue's rounding up to a tick boundary, one for a
/// learner's touches riding on its next reply to the leader's ping.
pub const EXPIRY_SLACK_TICKS: u64 = 2;
/// And for the network between a learner and its leader, ms.
pub const EXPIRY_SLACK_NET_MS: u64 = 50;
/// At the end, a session abandoned (or left quiet) longer ago than its
/// timeout plus this must be gone everywhere.
pub const GONE_BY_MS: u64 = 3_000;

/// What a server tells a session client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionReply {
    Connected {
        client: u64,
        session_id: i64,
    },
    Closed {
        client: u64,
        session_id: i64,
    },
    /// The ephemeral create committed (`ok`) or was refused.
    Created {
        client: u64,
        session_id: i64,
        path: String,
        ok: bool,
    },
    /// Turned away (not serving, or the session is gone).
    Refused {
        client: u64,
    },
    /// The answer to a reconnect with the session's id and password
    /// (production's revalidation): the session lives (`valid`) or expired.
    Reconnected {
        client: u64,
        session_id: i64,
        valid: bool,
    },
}

impl SessionReply {
    pub fn client(&self) -> u64 {
        match self {
            SessionReply::Connected { client, .. }
            | SessionReply::Closed { client, .. }
            | SessionReply::Created { client, .. }
            | SessionReply::Refused { client }
            | SessionReply::Reconnected { client, .. } => *client,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Connecting,
    Live,
    /// Sent closeSession; no more pings.
    Closing,
    /// Stopped pinging at this time (walked away, or lost its connection).
    Quiet(u64),
    /// Lost its connection at this time and is reconnecting (to any
    /// serving server, with its session id), until told the session
    /// expired or its timeout has passed.
    Reconnecting(u64),
    Done,
}

#[derive(Debug, Clone)]
pub struct SessionClient {
    pub sid: Sid,
    /// The server's `client_generation` when the client connected: the
    /// connection lives while it is unchanged.
    pub generation: u64,
    pub timeout_ms: u64,
    pub session_id: Option<i64>,
    pub state: ClientState,
    pub ephemeral: Option<String>,
}

impl SessionClient {
    pub fn pinging(&self) -> bool {
        matches!(self.state, ClientState::Connecting | ClientState::Live)
    }

    /// When it stopped keeping its session alive (None: it still does).
    pub fn stopped_at(&self) -> Option<u64> {
        match self.state {
            ClientState::Quiet(at) | ClientState::Reconnecting(at) => Some(at),
            ClientState::Closing | ClientState::Done => Some(0),
            ClientState::Connecting | ClientState::Live => None,
        }
    }
}

/// A leader validated a reconnect of a session through server `to`: from
/// then on, in the same leader term, its writes from any other server are
/// refused (SESSIONMOVED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionMove {
    pub leader: Sid,
    pub epoch: i64,
    /// The leader's last zxid when it validated the move: writes it
    /// executes later get higher zxids.
    pub after_zxid: i64,
    pub to: Sid,
}

/// The sessions checker's memory.
#[derive(Debug, Default)]
pub struct SessionOracle {
    /// session -> the zxid of the txn that closed it (close or expiry).
    pub closed_at: BTreeMap<i64, i64>,
    /// session -> every createSession / close a leader or standalone
    /// server executed for it: (zxid, txn hash, opened). Some never commit.
    pub executed: BTreeMap<i64, Vec<(i64, u64, bool)>>,
    pub snapshot_tables_checked: u64,
    pub reconnects_valid: u64,
    pub reconnects_expired: u64,
    /// Forwarded writes a leader refused with SESSIONMOVED (the session had
    /// moved to another server by a reconnect).
    pub moved_refused: u64,
    /// session -> the newest move to another server a leader validated.
    pub moves: BTreeMap<i64, SessionMove>,
    pub expiries: u64,
    pub closes_checked: u64,
    pub ephemerals_checked: u64,
}

impl SessionOracle {
    /// The current leader (established in the newest epoch any leader
    /// established) or a standalone server answers a reconnect of
    /// `session`, a session its client was told was created: it may call it
    /// expired only if some leader executed a close of it (the close may be
    /// in flight). A deposed leader that does not know it yet may answer
    /// from its stale table, as Apache's does; that is not judged.
    pub fn revalidation_finding(&mut self, sid: Sid, session: i64, valid: bool) -> Option<String> {
        if valid {
            self.reconnects_valid += 1;
            return None;
        }
        self.reconnects_expired += 1;
        let closed = self.executed.get(&session).is_some_and(|events| events.iter().any(|e| !e.2));
        (!closed).then(|| {
            format!(
                "server {sid}, leading, told a reconnecting client that session 0x{session:x} expired, but no server ever closed it"
            )
        })
    }

    /// A leader validated a reconnect of `session` through server `to`.
    pub fn moved(&mut self, session: i64, to_server: SessionMove) {
        self.moves.insert(session, to_server);
    }

    /// Leader `leader` in `epoch` executed (did not refuse) a write of
    /// `session` coming from server `from` as txn `zxid`: after a move to
    /// another server that leader validated, that is a stale request from
    /// the old server, which must have been refused with SESSIONMOVED.
    pub fn write_admitted(&mut self, leader: Sid, epoch: i64, session: i64, from: Sid, zxid: i64) -> Option<String> {
        let m = self.moves.get(&session)?;
        (m.leader == leader && m.epoch == epoch && m.after_zxid < zxid && m.to != from).then(|| {
            format!(
                "server {leader}, leading epoch {epoch}, executed session 0x{session:x}'s write from server {from} as 0x{zxid:x}, after it validated the session's move to server {} at 0x{:x} (SESSIONMOVED expected)",
                m.to, m.after_zxid
            )
        })
    }

    /// A leader (or standalone server) executed a createSession (`opened`)
    /// or a close of `session` as txn `hash` at `zxid`.
    pub fn executed(&mut self, session: i64, zxid: i64, hash: u64, opened: bool) {
        self.executed.entry(session).or_default().push((zxid, hash, opened));
    }

    /// `sid` installed a snapshot of the committed state at `zxid` with
    /// session table `table`: it must hold exactly the sessions whose
    /// newest committed createSession / close at or below `zxid` opened
    /// them. A session whose newest txn at or below `zxid` is not known to
    /// be committed yet (a new leader's SNAP before it is established
    /// carries its whole log) is not judged. `committed_hash`: the txn
    /// committed at a zxid, when one is known.
    pub fn snapshot_table_finding(
        &mut self,
        sid: Sid,
        zxid: i64,
        table: &BTreeMap<i64, i32>,
        committed_hash: impl Fn(i64) -> Option<u64>,
    ) -> Option<String> {
        self.snapshot_tables_checked += 1;
        let judged = |events: &Vec<(i64, u64, bool)>| -> Option<bool> {
            let mut at_or_below: Vec<&(i64, u64, bool)> = events.iter().filter(|e| e.0 <= zxid).collect();
            at_or_below.sort_by_key(|e| e.0);
            for &&(z, hash, opened) in at_or_below.iter().rev() {
                match committed_hash(z) {
                    Some(h) if h == hash => return Some(opened),
                    // Another txn committed there: this one was discarded.
                    Some(_) => continue,
                    None => return None,
                }
            }
            Some(false)
        };
        for (session, events) in &self.executed {
            let Some(open) = judged(events) else { continue };
            if open != table.contains_key(session) {
                let what = if open { "lacks" } else { "holds" };
                return Some(format!(
                    "server {sid} installed a snapshot at 0x{zxid:x} whose session table {what} session 0x{session:x}; its txns (zxid, opened): {:?}",
                    events.iter().map(|e| (format!("0x{:x}", e.0), e.2)).collect::<Vec<_>>()
                ));
            }
        }
        if let Some(session) = table.keys().find(|s| !self.executed.contains_key(s)) {
            return Some(format!(
                "server {sid} installed a snapshot at 0x{zxid:x} holding session 0x{session:x}, which no server created"
            ));
        }
        None
    }

    /// `sid` applied (or published) the close of `session` at `zxid`,
    /// leaving `left` ephemerals of it: None when all is well.
    pub fn closed(&mut self, sid: Sid, session: i64, zxid: i64, left: &[String]) -> Option<String> {
        self.closes_checked += 1;
        if !left.is_empty() {
            return Some(format!(
                "server {sid} closed session 0x{session:x} at 0x{zxid:x} and still holds its ephemerals {left:?}"
            ));
        }
        // The first close counts (a session may be closed twice: its
        // client's close and an expiry both in flight); agreement makes the
        // zxids the same on every server.
        let first = self.closed_at.entry(session).or_insert(zxid);
        *first = (*first).min(zxid);
        None
    }

    /// `sid` applied the create of an ephemeral of `session` at `zxid`;
    /// `live_here`: the session is in that server's table.
    pub fn ephemeral_created(
        &mut self,
        sid: Sid,
        session: i64,
        path: &str,
        zxid: i64,
        live_here: bool,
    ) -> Option<String> {
        self.ephemerals_checked += 1;
        if let Some(&closed) = self.closed_at.get(&session) {
            if closed < zxid {
                return Some(format!(
                    "server {sid} created ephemeral {path} of session 0x{session:x} at 0x{zxid:x}, after the session closed at 0x{closed:x}"
                ));
            }
        }
        if !live_here {
            return Some(format!(
                "server {sid} created ephemeral {path} of session 0x{session:x} at 0x{zxid:x}, a session it does not hold"
            ));
        }
        None
    }
}
