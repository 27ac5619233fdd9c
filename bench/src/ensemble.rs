//! What the benchmark needs to know about an ensemble and to do to it:
//! each member's `srvr` Mode and Zxid, waiting until the ensemble has
//! settled (one leader, the rest following, optionally all at one zxid),
//! and the fail-over measurement: kill -9 the leader, then retry writes on
//! the survivors until the first one is acknowledged.
//!
//! The fail-over probe speaks the wire protocol through `RawConnection`
//! (not `Client`) because every step needs a timeout: a member that is
//! electing may accept a connection and never answer it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zoocore::client::{Client, RawConnection};
use zoocore::jute::{Reader, Record};
use zoocore::proto::records::{CreateRequest, ReplyHeader, Request};
use zoocore::proto::types::{op, open_acl_unsafe, CreateMode, ErrorCode};

use crate::workload::{ensure_node, run_id};

/// How long a four-letter word may take before the member counts as silent.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);
/// Session timeout the probe asks for (Apache's minimum at tickTime 2000 is 4 s).
const PROBE_SESSION_TIMEOUT_MS: i32 = 4000;
/// Parent of the probe's znodes.
const PROBE_PARENT: &str = "/bench-failover";

/// One member's `srvr` answer, reduced to what we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// leader, follower, observer, standalone; "" when it does not answer.
    pub mode: String,
    pub zxid: Option<i64>,
}

/// Parses the Mode and Zxid lines of a `srvr` answer.
pub fn parse_srvr(text: &str) -> MemberState {
    let mode = text.lines().find_map(|l| l.strip_prefix("Mode: ")).unwrap_or("").trim().to_string();
    let zxid =
        text.lines().find_map(|l| l.strip_prefix("Zxid: 0x")).and_then(|h| i64::from_str_radix(h.trim(), 16).ok());
    MemberState { mode, zxid }
}

fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    crate::mntr::four_letter(addr, word, FOUR_LETTER_TIMEOUT)
}

pub fn member_state(addr: SocketAddr) -> MemberState {
    parse_srvr(&four_letter(addr, "srvr").unwrap_or_default())
}

/// The index of the single leader when every member answered and all the
/// others follow or observe; None otherwise.
pub fn settled_leader(states: &[MemberState]) -> Option<usize> {
    let leaders: Vec<usize> = states.iter().enumerate().filter(|(_, s)| s.mode == "leader").map(|(i, _)| i).collect();
    let settled = states.iter().all(|s| matches!(s.mode.as_str(), "leader" | "follower" | "observer"));
    match leaders.as_slice() {
        [one] if settled => Some(*one),
        _ => None,
    }
}

/// True when `addr` answers a new-session handshake with a session (and
/// the session is closed again).
fn accepts_session(addr: SocketAddr) -> bool {
    let Ok(mut conn) = RawConnection::connect(addr) else { return false };
    if conn.set_read_timeout(Some(FOUR_LETTER_TIMEOUT)).is_err() {
        return false;
    }
    match conn.handshake(PROBE_SESSION_TIMEOUT_MS) {
        Ok(resp) if resp.timeout_ms > 0 => {
            let _ = conn.send_request(1, &Request::CloseSession);
            let _ = conn.read_frame();
            true
        }
        _ => false,
    }
}

/// Waits until the ensemble has settled (and, with `same_zxid`, every
/// member reports the leader's zxid) and every member accepts a session. Returns the leader's index and the
/// last states read.
pub fn wait_settled(
    servers: &[SocketAddr],
    same_zxid: bool,
    limit: Duration,
) -> Result<(usize, Vec<MemberState>), String> {
    let deadline = Instant::now() + limit;
    loop {
        let states: Vec<MemberState> = servers.iter().map(|&a| member_state(a)).collect();
        if let Some(leader) = settled_leader(&states) {
            let zxid = states[leader].zxid;
            // A member may report its role a moment before it serves clients.
            if (!same_zxid || states.iter().all(|s| s.zxid == zxid)) && servers.iter().all(|&a| accepts_session(a)) {
                return Ok((leader, states));
            }
        }
        if Instant::now() > deadline {
            return Err(format!("the ensemble did not settle within {limit:?}: {states:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// The members' client addresses, in sid order.
    pub servers: Vec<SocketAddr>,
    /// Their PIDs, in the same order (the leader's is killed).
    pub pids: Vec<u32>,
    /// How long a member may take to answer the session handshake.
    pub attempt_timeout: Duration,
    /// Pause after a failed attempt, so the probe does not take the CPU
    /// the election needs (this bounds the measurement's resolution).
    pub retry_pause: Duration,
    /// Give up after this long without an acknowledged write.
    pub give_up: Duration,
}

#[derive(Debug, Clone)]
pub struct FailoverResult {
    /// Index (sid - 1) and PID of the member killed.
    pub killed_index: usize,
    pub killed_pid: u32,
    /// From the kill to the first acknowledged create.
    pub first_write: Duration,
    /// From the kill to the first accepted session (handshake answered).
    pub first_session: Option<Duration>,
    pub attempts: u64,
    /// Index of the member that acknowledged the write.
    pub answered_by: usize,
    /// Failed attempts by reason.
    pub failures: BTreeMap<String, u64>,
}

/// Why one attempt failed, as a short name for the counts.
fn io_name(e: &std::io::Error) -> String {
    format!("Io({:?})", e.kind())
}

/// One attempt on `addr`: a new session, then one create. Ok when the
/// write was acknowledged; the session is then closed (not timed).
///
/// Only the handshake is cut short (`handshake_timeout`): a member that
/// accepted the session serves, and its reply to the create, however late,
/// is the measurement (giving up on it would add the timeout and leave a
/// write that may still commit). The create waits up to `reply_timeout`
/// or until the member drops the connection.
fn attempt(
    addr: SocketAddr,
    path: &str,
    handshake_timeout: Duration,
    reply_timeout: Duration,
    session_accepted: &mut Option<Instant>,
) -> Result<(), String> {
    let mut conn = RawConnection::connect(addr).map_err(|e| io_name(&e))?;
    conn.set_read_timeout(Some(handshake_timeout)).map_err(|e| io_name(&e))?;
    let resp = conn.handshake(PROBE_SESSION_TIMEOUT_MS).map_err(|e| format!("handshake {}", io_name(&e)))?;
    if resp.timeout_ms <= 0 {
        return Err("SessionRefused".into());
    }
    session_accepted.get_or_insert_with(Instant::now);
    conn.set_read_timeout(Some(reply_timeout.max(Duration::from_millis(1)))).map_err(|e| io_name(&e))?;
    let req = Request::Create {
        op: op::CREATE,
        req: CreateRequest {
            path: path.to_string(),
            data: Some(Bytes::from_static(b"failover")),
            acl: open_acl_unsafe(),
            flags: CreateMode::Persistent.flags(),
            ttl: None,
        },
    };
    conn.send_request(1, &req).map_err(|e| io_name(&e))?;
    let frame = conn
        .read_frame()
        .map_err(|e| format!("reply {}", io_name(&e)))?
        .ok_or_else(|| "ConnectionClosed".to_string())?;
    let hdr = ReplyHeader::decode(&mut Reader::new(frame)).map_err(|e| format!("ProtocolError({e})"))?;
    if hdr.err != 0 {
        return Err(ErrorCode::from_code(hdr.err).map_or(format!("Unknown({})", hdr.err), |c| c.to_string()));
    }
    // Not timed: a polite close so the session does not linger.
    let _ = conn.send_request(2, &Request::CloseSession);
    Ok(())
}

/// Kills the leader with SIGKILL and measures until a write on one of the
/// other members is acknowledged.
pub fn run_failover(cfg: &FailoverConfig) -> Result<FailoverResult, String> {
    if cfg.servers.len() != cfg.pids.len() || cfg.servers.len() < 3 {
        return Err("give at least 3 servers and one PID per server, in the same order".into());
    }
    let (leader, _) = wait_settled(&cfg.servers, false, Duration::from_secs(30))?;
    let survivors: Vec<usize> = (0..cfg.servers.len()).filter(|&i| i != leader).collect();
    // The parent must exist before the kill, so the first write cannot fail on it.
    {
        let c = Client::connect(cfg.servers[survivors[0]], Duration::from_secs(10))
            .map_err(|e| format!("connect {}: {e}", cfg.servers[survivors[0]]))?;
        ensure_node(&c, PROBE_PARENT)?;
        let _ = c.close();
    }
    let path = format!("{PROBE_PARENT}/w-{}", run_id());
    let killed_pid = cfg.pids[leader];
    let killed_at = Instant::now();
    // SAFETY: kill has no memory-safety preconditions; the PID is the
    // leader's, given by the caller who started it.
    if unsafe { libc::kill(killed_pid as libc::pid_t, libc::SIGKILL) } != 0 {
        return Err(format!("kill -9 {killed_pid}: {}", std::io::Error::last_os_error()));
    }
    let mut failures: BTreeMap<String, u64> = BTreeMap::new();
    let mut session_accepted: Option<Instant> = None;
    let mut attempts = 0u64;
    let mut next = 0usize;
    loop {
        let i = survivors[next % survivors.len()];
        next += 1;
        attempts += 1;
        // A fresh path each time: an abandoned attempt's create may still commit.
        let path = format!("{path}-{attempts}");
        let reply_timeout = cfg.give_up.saturating_sub(killed_at.elapsed());
        match attempt(cfg.servers[i], &path, cfg.attempt_timeout, reply_timeout, &mut session_accepted) {
            Ok(()) => {
                return Ok(FailoverResult {
                    killed_index: leader,
                    killed_pid,
                    first_write: killed_at.elapsed(),
                    first_session: session_accepted.map(|t| t.saturating_duration_since(killed_at)),
                    attempts,
                    answered_by: i,
                    failures,
                })
            }
            Err(why) => *failures.entry(why).or_insert(0) += 1,
        }
        if killed_at.elapsed() > cfg.give_up {
            return Err(format!("no write acknowledged within {:?} of the kill: {failures:?}", cfg.give_up));
        }
        std::thread::sleep(cfg.retry_pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(mode: &str, zxid: i64) -> MemberState {
        MemberState { mode: mode.into(), zxid: Some(zxid) }
    }

    #[test]
    fn parses_srvr() {
        let text = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nZxid: 0x10000002a\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_srvr(text), state("follower", 0x1_0000_002a));
        assert_eq!(parse_srvr(""), MemberState { mode: String::new(), zxid: None });
    }

    #[test]
    fn settled_needs_one_leader_and_no_silent_member() {
        assert_eq!(settled_leader(&[state("follower", 1), state("leader", 1), state("follower", 1)]), Some(1));
        assert_eq!(settled_leader(&[state("follower", 1), state("leader", 1), state("", 0)]), None);
        assert_eq!(settled_leader(&[state("leader", 1), state("leader", 1), state("follower", 1)]), None);
        assert_eq!(settled_leader(&[state("follower", 1), state("follower", 1)]), None);
    }
}
