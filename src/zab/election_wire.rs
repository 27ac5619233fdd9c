//! The election port's wire format, as Apache ZooKeeper 3.8/3.9 speaks it
//! (`QuorumCnxManager` + `FastLeaderElection`): the connection preamble the
//! dialler sends, the length-prefixed message framing, the notification
//! payload (current form and the legacy 28/40-byte forms Apache still
//! accepts), the quorum-config text that rides in every notification, and the
//! rule that decides which of two peers keeps a connection.
//!
//! Sans-IO: functions read byte slices and write into a `BytesMut`; stream
//! decoders return `Ok(None)` when more bytes are needed.

use bytes::{BufMut, Bytes, BytesMut};

use crate::jute::{DecodeError, DecodeResult, Reader};

/// First long of a preamble from a peer without multi-address support.
pub const PROTOCOL_VERSION_V1: i64 = -65536;
/// First long of a preamble that may list several `|`-separated addresses.
pub const PROTOCOL_VERSION_V2: i64 = -65535;
/// Apache's bound on the address text of a preamble (`QuorumCnxManager.maxBuffer`).
pub const PREAMBLE_ADDRESS_MAX_BYTES: usize = 2048;
/// Apache's bound on one election message (`QuorumCnxManager.PACKETMAXSIZE`).
pub const ELECTION_FRAME_MAX_BYTES: usize = 512 * 1024;
/// The sid an observer without an id announces; the acceptor substitutes a
/// private negative id for the connection.
pub const OBSERVER_ID: i64 = i64::MAX;

/// Notification format that carries the quorum config (3.5+).
pub const NOTIFICATION_VERSION_WITH_CONFIG: i32 = 2;
/// Before ZOOKEEPER-107: no peerEpoch, no version.
pub const NOTIFICATION_LEGACY_NO_PEER_EPOCH_BYTES: usize = 28;
/// 3.4 before 3.4.6: Apache reads peerEpoch and treats the message as version 0.
pub const NOTIFICATION_LEGACY_NO_VERSION_BYTES: usize = 40;
/// Fixed part of a current notification: the fields up to the config length.
pub const NOTIFICATION_HEADER_BYTES: usize = 44;

/// Why something could not be encoded (only oversize fields can fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    TooLong { what: &'static str, len: usize, max: usize },
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLong { what, len, max } => write!(f, "{what} is {len} bytes, at most {max} allowed"),
        }
    }
}

impl std::error::Error for EncodeError {}

// ---------------------------------------------------------------------------
// Connection preamble
// ---------------------------------------------------------------------------

/// Which preamble form a peer sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreambleVersion {
    /// A bare non-negative sid and nothing else (pre-3.5 peers).
    LegacyBareSid,
    V1,
    V2,
}

/// A host and port as the preamble and the config text spell them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        HostPort { host: host.into(), port }
    }
}

impl std::fmt::Display for HostPort {
    /// `host:port`, with IPv6 literals in brackets (Apache's `formatInetAddr`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", delimited_host(&self.host), self.port)
    }
}

fn delimited_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// What a dialling peer announced about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preamble {
    pub version: PreambleVersion,
    /// The dialler's sid ([`OBSERVER_ID`] for an anonymous observer).
    pub sid: i64,
    /// Its election address(es); empty for the legacy form. Wildcard hosts
    /// (0.0.0.0, ::) are kept: Apache drops them, the driver may too.
    pub election_addresses: Vec<HostPort>,
}

/// Writes the preamble a dialler sends. V1 carries only the first address
/// (as Apache does when multi-address is off); V2 joins them with `|`.
pub fn encode_preamble(preamble: &Preamble, out: &mut BytesMut) -> Result<(), EncodeError> {
    match preamble.version {
        PreambleVersion::LegacyBareSid => {
            out.put_i64(preamble.sid);
            return Ok(());
        }
        PreambleVersion::V1 | PreambleVersion::V2 => {}
    }
    let addresses: &[HostPort] = match preamble.version {
        PreambleVersion::V1 => preamble.election_addresses.get(..1).unwrap_or(&[]),
        _ => &preamble.election_addresses,
    };
    let text = addresses.iter().map(HostPort::to_string).collect::<Vec<_>>().join("|");
    if text.is_empty() || text.len() > PREAMBLE_ADDRESS_MAX_BYTES {
        return Err(EncodeError::TooLong {
            what: "preamble address text",
            len: text.len(),
            max: PREAMBLE_ADDRESS_MAX_BYTES,
        });
    }
    out.put_i64(if preamble.version == PreambleVersion::V1 { PROTOCOL_VERSION_V1 } else { PROTOCOL_VERSION_V2 });
    out.put_i64(preamble.sid);
    out.put_i32(text.len() as i32);
    out.put_slice(text.as_bytes());
    Ok(())
}

/// Decodes a preamble from the start of an accepted connection's bytes.
/// `Ok(None)`: not all of it has arrived yet. `Ok(Some((preamble, used)))`:
/// `used` bytes belong to the preamble; framed messages follow.
pub fn decode_preamble(buf: &[u8]) -> DecodeResult<Option<(Preamble, usize)>> {
    let Some(first) = peek_i64(buf, 0) else { return Ok(None) };
    if first >= 0 {
        let preamble = Preamble { version: PreambleVersion::LegacyBareSid, sid: first, election_addresses: Vec::new() };
        return Ok(Some((preamble, 8)));
    }
    let version = match first {
        PROTOCOL_VERSION_V1 => PreambleVersion::V1,
        PROTOCOL_VERSION_V2 => PreambleVersion::V2,
        _ => return Err(DecodeError::Invalid("unrecognised election protocol version")),
    };
    let Some(sid) = peek_i64(buf, 8) else { return Ok(None) };
    let Some(text_len) = peek_i32(buf, 16) else { return Ok(None) };
    if text_len <= 0 || text_len as usize > PREAMBLE_ADDRESS_MAX_BYTES {
        return Err(DecodeError::BadLength(text_len));
    }
    let end = 20 + text_len as usize;
    let Some(text) = buf.get(20..end) else { return Ok(None) };
    let text = std::str::from_utf8(text).map_err(|_| DecodeError::BadUtf8)?;
    let election_addresses = text.split('|').map(parse_host_port).collect::<DecodeResult<Vec<_>>>()?;
    Ok(Some((Preamble { version, sid, election_addresses }, end)))
}

/// `host:port` or `[v6]:port`, as Apache's `ConfigUtils.getHostAndPort` reads it.
fn parse_host_port(text: &str) -> DecodeResult<HostPort> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(DecodeError::Invalid("unclosed '[' in address"))?;
        let port = after.strip_prefix(':').ok_or(DecodeError::Invalid("no port after IPv6 address"))?;
        (host, port)
    } else {
        let mut parts = text.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(host), Some(port), None) => (host, port),
            _ => return Err(DecodeError::Invalid("address is not host:port")),
        }
    };
    // No host name or IP literal holds a bracket; one left inside (from
    // "[[h]:1", say) could not be written back unambiguously, and dialling
    // it would fail anyway (found by the `election` fuzz target).
    if host.contains(['[', ']']) {
        return Err(DecodeError::Invalid("bracket inside the host of an address"));
    }
    let port = port.parse::<u16>().map_err(|_| DecodeError::Invalid("bad port number in address"))?;
    Ok(HostPort::new(host, port))
}

fn peek_i64(buf: &[u8], at: usize) -> Option<i64> {
    let bytes: [u8; 8] = buf.get(at..at + 8)?.try_into().ok()?;
    Some(i64::from_be_bytes(bytes))
}

fn peek_i32(buf: &[u8], at: usize) -> Option<i32> {
    let bytes: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(bytes))
}

// ---------------------------------------------------------------------------
// Which side keeps a connection
// ---------------------------------------------------------------------------

/// What to do with an election connection once the remote sid is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionVerdict {
    Keep,
    /// Close it; the remote will dial us (it has the higher sid).
    Drop,
    /// Close it and dial the remote ourselves (we have the higher sid).
    DropAndDialBack,
}

/// A connection we accepted whose preamble named `remote_sid`: only the
/// higher sid keeps an outgoing connection, so a lower dialler is dialled back.
pub fn accepted_connection_verdict(my_sid: i64, remote_sid: i64) -> ConnectionVerdict {
    use std::cmp::Ordering::*;
    match remote_sid.cmp(&my_sid) {
        Less => ConnectionVerdict::DropAndDialBack,
        // Same sid: a configuration error (Apache logs and ignores it).
        Equal => ConnectionVerdict::Drop,
        Greater => ConnectionVerdict::Keep,
    }
}

/// A connection we dialled (after sending our preamble) to `remote_sid`.
pub fn dialled_connection_verdict(my_sid: i64, remote_sid: i64) -> ConnectionVerdict {
    if remote_sid < my_sid {
        ConnectionVerdict::Keep
    } else {
        ConnectionVerdict::Drop
    }
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// Writes `int len` + payload.
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
    if payload.is_empty() || payload.len() > ELECTION_FRAME_MAX_BYTES {
        return Err(EncodeError::TooLong { what: "election frame", len: payload.len(), max: ELECTION_FRAME_MAX_BYTES });
    }
    out.put_i32(payload.len() as i32);
    out.put_slice(payload);
    Ok(())
}

/// Splits one frame off the front of `buf`: `Ok(Some((payload, used)))`, or
/// `Ok(None)` until the whole frame has arrived. A length outside
/// `1..=ELECTION_FRAME_MAX_BYTES` is an error (Apache closes the connection).
pub fn split_frame(buf: &[u8]) -> DecodeResult<Option<(&[u8], usize)>> {
    let Some(len) = peek_i32(buf, 0) else { return Ok(None) };
    if len <= 0 || len as usize > ELECTION_FRAME_MAX_BYTES {
        return Err(DecodeError::BadLength(len));
    }
    let end = 4 + len as usize;
    Ok(buf.get(4..end).map(|payload| (payload, end)))
}

// ---------------------------------------------------------------------------
// Notification
// ---------------------------------------------------------------------------

/// A peer's state as notifications carry it (`QuorumPeer.ServerState` ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl PeerState {
    pub fn from_wire(v: i32) -> Option<PeerState> {
        match v {
            0 => Some(PeerState::Looking),
            1 => Some(PeerState::Following),
            2 => Some(PeerState::Leading),
            3 => Some(PeerState::Observing),
            _ => None,
        }
    }
}

/// One election notification: the sender's state and the vote it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: PeerState,
    /// Proposed (or established) leader sid.
    pub leader: i64,
    /// That leader's last zxid.
    pub zxid: i64,
    /// The sender's logical clock (election round).
    pub election_epoch: i64,
    /// The proposed leader's epoch.
    pub peer_epoch: i64,
    /// Format version; > 1 carries `config`. Legacy forms decode as 0.
    pub version: i32,
    /// Quorum-config text (see [`quorum_config_text`]); `None` below version 2.
    pub config: Option<Bytes>,
}

impl Notification {
    /// Length of the payload [`Notification::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        if self.version > 1 {
            NOTIFICATION_HEADER_BYTES + self.config.as_ref().map_or(0, |c| c.len())
        } else {
            NOTIFICATION_LEGACY_NO_VERSION_BYTES
        }
    }

    /// Writes the payload (no frame length). Version > 1 writes the current
    /// form with the config (empty when `None`); otherwise the 40-byte form.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let max_config = ELECTION_FRAME_MAX_BYTES - NOTIFICATION_HEADER_BYTES;
        let config: &[u8] = self.config.as_deref().unwrap_or(&[]);
        if self.version > 1 && config.len() > max_config {
            return Err(EncodeError::TooLong { what: "notification config", len: config.len(), max: max_config });
        }
        out.put_i32(self.state as i32);
        out.put_i64(self.leader);
        out.put_i64(self.zxid);
        out.put_i64(self.election_epoch);
        out.put_i64(self.peer_epoch);
        out.put_i32(self.version);
        if self.version > 1 {
            out.put_i32(config.len() as i32);
            out.put_slice(config);
        }
        Ok(())
    }

    /// Encodes the payload inside a frame, ready for the socket.
    pub fn encode_frame(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut payload = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut payload)?;
        encode_frame(&payload, out)
    }

    /// Decodes a frame payload exactly as Apache's `WorkerReceiver` does:
    /// 28 bytes = no peerEpoch (taken from the zxid's high half), 40 bytes =
    /// no usable version (version 0), otherwise version at offset 36 and,
    /// above version 1, the config. Bytes after what the version needs are
    /// ignored. A 36-byte message fails here as it does in Apache, which
    /// reads the version field past its end.
    pub fn decode(payload: Bytes) -> DecodeResult<Notification> {
        let len = payload.len();
        if len < NOTIFICATION_LEGACY_NO_PEER_EPOCH_BYTES {
            return Err(DecodeError::Truncated { needed: NOTIFICATION_LEGACY_NO_PEER_EPOCH_BYTES, remaining: len });
        }
        let mut r = Reader::new(payload.clone());
        let state_wire = r.read_i32()?;
        let leader = r.read_i64()?;
        let zxid = r.read_i64()?;
        let election_epoch = r.read_i64()?;
        let state = PeerState::from_wire(state_wire).ok_or(DecodeError::Invalid("notification state"))?;
        let mut n =
            Notification { state, leader, zxid, election_epoch, peer_epoch: zxid >> 32, version: 0, config: None };
        if len == NOTIFICATION_LEGACY_NO_PEER_EPOCH_BYTES {
            return Ok(n);
        }
        n.peer_epoch = r.read_i64()?;
        if len == NOTIFICATION_LEGACY_NO_VERSION_BYTES {
            return Ok(n);
        }
        n.version = r.read_i32()?;
        if n.version > 1 {
            let config_len = r.read_i32()?;
            if config_len < 0 || config_len as usize > len {
                return Err(DecodeError::BadLength(config_len));
            }
            let config_len = config_len as usize;
            if r.remaining() < config_len {
                return Err(DecodeError::Truncated { needed: config_len, remaining: r.remaining() });
            }
            // Zero-copy: the config is a slice of the frame.
            let start = len - r.remaining();
            n.config = Some(payload.slice(start..start + config_len));
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Quorum-config text
// ---------------------------------------------------------------------------

/// Whether a server votes (participant) or only follows (observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LearnerType {
    Participant,
    Observer,
}

/// One quorum member's line in the config text (`server.N=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumServerSpec {
    pub sid: i64,
    /// `(host, quorum port, election port)`; several only with multi-address.
    pub addresses: Vec<(String, u16, u16)>,
    pub learner_type: LearnerType,
    /// The `;[host:]port` client part, only when the `server.N` line itself
    /// gave one (a client port from `clientPort=` is not written: Apache
    /// marks it "from static" and leaves it out).
    pub client_address: Option<HostPort>,
}

/// The config text Apache's `QuorumMaj.toString()` produces and every
/// notification carries, e.g. for a static three-server zoo.cfg:
///
/// ```text
/// server.1=127.0.0.1:2888:3888:participant
/// server.2=127.0.0.1:2889:3889:participant
/// server.3=127.0.0.1:2890:3890:participant
/// version=0
/// ```
///
/// (no newline after the version). A static zoo.cfg has version 0; after the
/// first leader establishes itself the ensemble's version becomes that
/// leader's NEWLEADER zxid. A receiver that is LOOKING treats a *higher*
/// version than its own as a reconfiguration, so zoocore must send the
/// version it has actually committed (0 until a leader told it otherwise),
/// never one ahead. Lines come in Java `HashMap<Long,_>` iteration order
/// (bucket order of the final table; for sids below the table size that is
/// ascending) so the bytes match Apache's; collisions fall back to ascending sid.
pub fn quorum_config_text(servers: &[QuorumServerSpec], version: u64) -> String {
    let mut ordered: Vec<&QuorumServerSpec> = servers.iter().collect();
    let capacity = java_hashmap_capacity(servers.len());
    ordered.sort_by_key(|s| (java_long_bucket(s.sid, capacity), s.sid));
    let mut text = String::new();
    for server in ordered {
        text.push_str(&format!("server.{}={}\n", server.sid, quorum_server_value(server)));
    }
    text.push_str(&format!("version={version:x}"));
    text
}

/// `QuorumServer.toString()`: addresses sorted by host, learner type, client part.
fn quorum_server_value(server: &QuorumServerSpec) -> String {
    let mut quorum: Vec<(&str, u16)> = server.addresses.iter().map(|(h, q, _)| (h.as_str(), *q)).collect();
    let mut election: Vec<(&str, u16)> = server.addresses.iter().map(|(h, _, e)| (h.as_str(), *e)).collect();
    // Apache sorts the two lists independently by host string (stable sort).
    quorum.sort_by(|a, b| a.0.cmp(b.0));
    election.sort_by(|a, b| a.0.cmp(b.0));
    let mut value = quorum
        .iter()
        .zip(election.iter())
        .map(|((host, qport), (_, eport))| format!("{}:{qport}:{eport}", delimited_host(host)))
        .collect::<Vec<_>>()
        .join("|");
    value.push_str(match server.learner_type {
        LearnerType::Participant => ":participant",
        LearnerType::Observer => ":observer",
    });
    if let Some(client) = &server.client_address {
        value.push(';');
        value.push_str(&client.to_string());
    }
    value
}

/// Table size of a Java `HashMap` after `n` puts into a default one.
fn java_hashmap_capacity(n: usize) -> u32 {
    let mut capacity: u32 = 16;
    while n as u64 * 4 > capacity as u64 * 3 && capacity < (1 << 30) {
        capacity *= 2;
    }
    capacity
}

/// The bucket `Long.hashCode` + `HashMap.hash` put `sid` in.
fn java_long_bucket(sid: i64, capacity: u32) -> u32 {
    let h = (sid ^ ((sid as u64) >> 32) as i64) as i32 as u32;
    (h ^ (h >> 16)) & (capacity - 1)
}

/// The `version=<hex>` of a config text, if it has one that parses.
pub fn config_version(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("version="))
        .find_map(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn three_servers() -> Vec<QuorumServerSpec> {
        (1..=3)
            .map(|sid| QuorumServerSpec {
                sid,
                addresses: vec![("127.0.0.1".to_owned(), 2887 + sid as u16, 3887 + sid as u16)],
                learner_type: LearnerType::Participant,
                client_address: None,
            })
            .collect()
    }

    #[test]
    fn static_three_server_config_text_is_apaches() {
        assert_eq!(
            quorum_config_text(&three_servers(), 0),
            "server.1=127.0.0.1:2888:3888:participant\n\
             server.2=127.0.0.1:2889:3889:participant\n\
             server.3=127.0.0.1:2890:3890:participant\n\
             version=0"
        );
    }

    #[test]
    fn config_text_writes_observers_client_parts_ipv6_and_hex_version() {
        let servers = vec![
            QuorumServerSpec {
                sid: 7,
                addresses: vec![("::1".to_owned(), 1, 2)],
                learner_type: LearnerType::Observer,
                client_address: Some(HostPort::new("0.0.0.0", 2181)),
            },
            QuorumServerSpec {
                sid: 2,
                addresses: vec![("b".to_owned(), 10, 11), ("a".to_owned(), 20, 21)],
                learner_type: LearnerType::Participant,
                client_address: None,
            },
        ];
        assert_eq!(
            quorum_config_text(&servers, 0x1_0000_0000),
            "server.2=a:20:21|b:10:11:participant\nserver.7=[::1]:1:2:observer;0.0.0.0:2181\nversion=100000000"
        );
        assert_eq!(config_version(quorum_config_text(&servers, 0x1_0000_0000).as_bytes()), Some(0x1_0000_0000));
    }

    #[test]
    fn config_lines_follow_java_hashmap_order() {
        // Capacity 16: sid 17 lands in bucket 1 with sid 1, after sid 16's bucket 0.
        let servers: Vec<QuorumServerSpec> = [17, 3, 16, 1]
            .into_iter()
            .map(|sid| QuorumServerSpec {
                sid,
                addresses: vec![("h".to_owned(), 1, 2)],
                learner_type: LearnerType::Participant,
                client_address: None,
            })
            .collect();
        let text = quorum_config_text(&servers, 0);
        let sids: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap_or("")).collect();
        assert_eq!(sids, ["server.16", "server.1", "server.17", "server.3", "version"]);
    }

    #[test]
    fn known_notification_bytes() {
        let n = Notification {
            state: PeerState::Looking,
            leader: 3,
            zxid: 0x1_0000_0002,
            election_epoch: 1,
            peer_epoch: 1,
            version: NOTIFICATION_VERSION_WITH_CONFIG,
            config: Some(Bytes::from_static(b"version=0")),
        };
        let mut out = BytesMut::new();
        n.encode_frame(&mut out).unwrap();
        assert_eq!(
            hex(&out),
            concat!(
                "00000035",         // frame length 53
                "00000000",         // LOOKING
                "0000000000000003", // leader
                "0000000100000002", // zxid
                "0000000000000001", // electionEpoch
                "0000000000000001", // peerEpoch
                "00000002",         // version
                "00000009",         // config length
                "76657273696f6e3d30"
            )
        );
        let (payload, used) = split_frame(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        assert_eq!(Notification::decode(Bytes::copy_from_slice(payload)).unwrap(), n);
    }

    fn legacy_header(state: i32) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_i32(state);
        b.put_i64(5);
        b.put_i64(0x0000_0003_0000_0010);
        b.put_i64(9);
        b
    }

    #[test]
    fn legacy_28_byte_form_takes_peer_epoch_from_zxid() {
        let n = Notification::decode(legacy_header(2).freeze()).unwrap();
        assert_eq!((n.state, n.leader, n.election_epoch, n.peer_epoch, n.version), (PeerState::Leading, 5, 9, 3, 0));
        assert_eq!(n.config, None);
    }

    #[test]
    fn legacy_40_byte_form_reads_peer_epoch_and_ignores_its_version() {
        let mut b = legacy_header(1);
        b.put_i64(4);
        b.put_i32(1);
        let n = Notification::decode(b.freeze()).unwrap();
        assert_eq!((n.state, n.peer_epoch, n.version, n.config), (PeerState::Following, 4, 0, None));
    }

    #[test]
    fn version_one_with_trailing_bytes_has_no_config() {
        let mut b = legacy_header(0);
        b.put_i64(4);
        b.put_i32(1);
        b.put_slice(b"junk");
        let n = Notification::decode(b.freeze()).unwrap();
        assert_eq!((n.version, n.config), (1, None));
    }

    #[test]
    fn malformed_notifications_are_errors() {
        // Shorter than every form.
        assert!(Notification::decode(Bytes::from_static(&[0; 27])).is_err());
        // 36 bytes: Apache reads the version past the end and drops it.
        let mut b = legacy_header(0);
        b.put_i64(4);
        assert!(Notification::decode(b.freeze()).is_err());
        // Unknown state.
        assert_eq!(Notification::decode(legacy_header(4).freeze()), Err(DecodeError::Invalid("notification state")));
        // Config length negative, beyond the message, or beyond the bytes left.
        for config_len in [-1, 1000, 5] {
            let mut b = legacy_header(0);
            b.put_i64(4);
            b.put_i32(2);
            b.put_i32(config_len);
            b.put_slice(b"abc");
            assert!(Notification::decode(b.freeze()).is_err(), "config_len {config_len}");
        }
    }

    #[test]
    fn frames_out_of_bounds_are_errors_and_partial_frames_wait() {
        assert_eq!(split_frame(&[0, 0, 0]), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 2, 9]), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 0]), Err(DecodeError::BadLength(0)));
        assert_eq!(split_frame(&[0xff, 0xff, 0xff, 0xff]), Err(DecodeError::BadLength(-1)));
        assert_eq!(split_frame(&[0, 8, 0, 1]), Err(DecodeError::BadLength(512 * 1024 + 1)));
        let mut max = BytesMut::new();
        max.put_i32(512 * 1024);
        assert_eq!(split_frame(&max), Ok(None));
        assert!(encode_frame(&[], &mut BytesMut::new()).is_err());
        assert!(encode_frame(&vec![0; ELECTION_FRAME_MAX_BYTES + 1], &mut BytesMut::new()).is_err());
    }

    #[test]
    fn known_v1_preamble_bytes() {
        let p = Preamble {
            version: PreambleVersion::V1,
            sid: 3,
            election_addresses: vec![HostPort::new("127.0.0.1", 3890)],
        };
        let mut out = BytesMut::new();
        encode_preamble(&p, &mut out).unwrap();
        assert_eq!(
            hex(&out),
            concat!("ffffffffffff0000", "0000000000000003", "0000000e", "3132372e302e302e313a33383930")
        );
        assert_eq!(decode_preamble(&out), Ok(Some((p, out.len()))));
        for cut in 0..out.len() {
            assert_eq!(decode_preamble(&out[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn v2_preamble_carries_several_addresses_and_v6() {
        let p = Preamble {
            version: PreambleVersion::V2,
            sid: 1,
            election_addresses: vec![HostPort::new("10.0.0.1", 1), HostPort::new("::1", 2)],
        };
        let mut out = BytesMut::new();
        encode_preamble(&p, &mut out).unwrap();
        assert!(out.ends_with(b"10.0.0.1:1|[::1]:2"));
        assert_eq!(decode_preamble(&out), Ok(Some((p, out.len()))));
    }

    #[test]
    fn bare_non_negative_sid_is_an_old_style_preamble() {
        let mut out = BytesMut::new();
        out.put_i64(42);
        out.put_slice(b"rest");
        let (p, used) = decode_preamble(&out).unwrap().unwrap();
        assert_eq!((p.version, p.sid, p.election_addresses.len(), used), (PreambleVersion::LegacyBareSid, 42, 0, 8));
    }

    #[test]
    fn bad_preambles_are_errors() {
        let with = |version: i64, len: i32, text: &[u8]| {
            let mut b = BytesMut::new();
            b.put_i64(version);
            b.put_i64(1);
            b.put_i32(len);
            b.put_slice(text);
            decode_preamble(&b)
        };
        assert!(with(-7, 3, b"a:1").is_err());
        assert_eq!(with(PROTOCOL_VERSION_V1, 0, b""), Err(DecodeError::BadLength(0)));
        assert_eq!(with(PROTOCOL_VERSION_V1, 2049, b""), Err(DecodeError::BadLength(2049)));
        assert!(with(PROTOCOL_VERSION_V1, 3, b"a:x").is_err());
        assert!(with(PROTOCOL_VERSION_V1, 5, b"a:1:2").is_err());
        assert!(with(PROTOCOL_VERSION_V1, 1, b"a").is_err());
        assert!(with(PROTOCOL_VERSION_V1, 2, &[0xff, 0xfe]).is_err());
        // Found by the fuzzer: a host keeping a bracket decoded, but its
        // re-encoding ("[[h:8") did not.
        assert!(with(PROTOCOL_VERSION_V2, 7, b"[[h]:88").is_err());
        assert!(with(PROTOCOL_VERSION_V2, 5, b"h]:88").is_err());
        assert!(with(PROTOCOL_VERSION_V2, 9, b"[::1]:388").is_ok());
    }

    #[test]
    fn only_the_higher_sid_keeps_an_outgoing_connection() {
        assert_eq!(accepted_connection_verdict(3, 1), ConnectionVerdict::DropAndDialBack);
        assert_eq!(accepted_connection_verdict(1, 3), ConnectionVerdict::Keep);
        assert_eq!(accepted_connection_verdict(2, 2), ConnectionVerdict::Drop);
        assert_eq!(dialled_connection_verdict(3, 1), ConnectionVerdict::Keep);
        assert_eq!(dialled_connection_verdict(1, 3), ConnectionVerdict::Drop);
    }

    fn peer_state() -> impl Strategy<Value = PeerState> {
        prop_oneof![
            Just(PeerState::Looking),
            Just(PeerState::Following),
            Just(PeerState::Leading),
            Just(PeerState::Observing)
        ]
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9.-]{1,20}", Just("::1".to_owned()), Just("fe80::1".to_owned())]
    }

    proptest! {
        #[test]
        fn notifications_round_trip(
            state in peer_state(),
            leader in any::<i64>(),
            zxid in any::<i64>(),
            election_epoch in any::<i64>(),
            peer_epoch in any::<i64>(),
            version in 2i32..=i32::MAX,
            config in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let n = Notification { state, leader, zxid, election_epoch, peer_epoch, version, config: Some(Bytes::from(config)) };
            let mut out = BytesMut::new();
            n.encode_frame(&mut out).unwrap();
            let (payload, used) = split_frame(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(payload.len(), n.encoded_len());
            prop_assert_eq!(Notification::decode(Bytes::copy_from_slice(payload)).unwrap(), n);
        }

        #[test]
        fn preambles_round_trip(
            v2 in any::<bool>(),
            sid in any::<i64>(),
            addresses in proptest::collection::vec((host(), any::<u16>()), 1..4),
        ) {
            let mut p = Preamble {
                version: if v2 { PreambleVersion::V2 } else { PreambleVersion::V1 },
                sid,
                election_addresses: addresses.into_iter().map(|(h, port)| HostPort::new(h, port)).collect(),
            };
            let mut out = BytesMut::new();
            encode_preamble(&p, &mut out).unwrap();
            if !v2 {
                p.election_addresses.truncate(1);
            }
            prop_assert_eq!(decode_preamble(&out), Ok(Some((p, out.len()))));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = Notification::decode(Bytes::from(bytes.clone()));
            let _ = decode_preamble(&bytes);
            let _ = split_frame(&bytes);
            let _ = config_version(&bytes);
        }
    }
}
