//! The leader<->learner half of ZAB on the quorum port, sans-IO, byte for
//! byte as Apache ZooKeeper writes it.
//!
//! Owns: the bare jute `QuorumPacket {type i, zxid l, data b, authinfo v<Id>}`
//! and its streaming decoder, the typed messages of each direction
//! ([`ToLeader`], [`ToLearner`]), the zxid helpers, and a scanner that finds
//! the end of the snapshot stream that follows a SNAP packet.
//!
//! Framing: there is none. Apache's `Learner` and `LearnerHandler` call
//! `BinaryOutputArchive.writeRecord(packet)` on a `BufferedOutputStream`
//! (flushed after each handshake step and whenever the send queue drains)
//! and read with `readRecord` from a `BufferedInputStream`, field by field.
//! So a packet's end is only known by walking its length fields, which is
//! what [`measure_packet`] does before anything is allocated.
//!
//! Type-specific payloads (PING's session list, REQUEST's header, LEADERINFO's
//! protocol version, ...) are plain `DataOutputStream` bytes inside `data`.

use bytes::{Bytes, BytesMut};

use crate::jute::{DecodeError, Reader, Record, Writer};
use crate::proto::types::Id;

/// Largest `data` buffer accepted. Apache's reader refuses a buffer longer
/// than `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize`, both 0xFFFFF
/// by default, so this is the largest packet a default Apache peer can
/// exchange: anything Apache accepts, we accept, and no more. A SNAP body is
/// not a packet and is not bound by this (see [`SnapStreamScanner`]).
pub const QUORUM_PACKET_DATA_MAX_BYTES: usize = 2 * 0xF_FFFF;

/// Largest total size of the `authinfo` ids (their length prefixes and
/// bytes). Apache does not bound the vector itself; these are the client's
/// auth ids (`digest:user:hash`, `ip:addr`, a SASL or x509 name), a few
/// hundred bytes in practice. 64 KiB keeps the decoder's buffer bounded.
pub const QUORUM_PACKET_AUTHINFO_MAX_BYTES: usize = 64 * 1024;

/// type + zxid + data length + authinfo count.
const QUORUM_PACKET_FIXED_BYTES: usize = 4 + 8 + 4 + 4;

/// The largest encoded packet the decoder will ever wait for.
pub const QUORUM_PACKET_MAX_BYTES: usize =
    QUORUM_PACKET_FIXED_BYTES + QUORUM_PACKET_DATA_MAX_BYTES + QUORUM_PACKET_AUTHINFO_MAX_BYTES;

/// LearnerInfo.protocolVersion and LEADERINFO's data: ZAB 1.0 (Apache 3.4+).
pub const PROTOCOL_VERSION_ZAB_1_0: i32 = 0x10000;

/// What Apache assumes for a learner whose FOLLOWERINFO carries no version.
pub const PROTOCOL_VERSION_PRE_ZAB_1_0: i32 = 0x1;

/// ACKEPOCH's current epoch when the learner had already accepted the
/// proposed epoch: the reply then does not count as an epoch ack.
pub const ACKEPOCH_ALREADY_ACCEPTED: i32 = -1;

/// Apache's `Leader` packet type constants.
pub mod packet_type {
    pub const REQUEST: i32 = 1;
    pub const PROPOSAL: i32 = 2;
    pub const ACK: i32 = 3;
    pub const COMMIT: i32 = 4;
    pub const PING: i32 = 5;
    pub const REVALIDATE: i32 = 6;
    pub const SYNC: i32 = 7;
    pub const INFORM: i32 = 8;
    pub const COMMITANDACTIVATE: i32 = 9;
    pub const NEWLEADER: i32 = 10;
    pub const FOLLOWERINFO: i32 = 11;
    pub const UPTODATE: i32 = 12;
    pub const DIFF: i32 = 13;
    pub const TRUNC: i32 = 14;
    pub const SNAP: i32 = 15;
    pub const OBSERVERINFO: i32 = 16;
    pub const LEADERINFO: i32 = 17;
    pub const ACKEPOCH: i32 = 18;
    pub const INFORMANDACTIVATE: i32 = 19;

    /// The name Apache logs for a type.
    pub fn name(t: i32) -> &'static str {
        match t {
            REQUEST => "REQUEST",
            PROPOSAL => "PROPOSAL",
            ACK => "ACK",
            COMMIT => "COMMIT",
            PING => "PING",
            REVALIDATE => "REVALIDATE",
            SYNC => "SYNC",
            INFORM => "INFORM",
            COMMITANDACTIVATE => "COMMITANDACTIVATE",
            NEWLEADER => "NEWLEADER",
            FOLLOWERINFO => "FOLLOWERINFO",
            UPTODATE => "UPTODATE",
            DIFF => "DIFF",
            TRUNC => "TRUNC",
            SNAP => "SNAP",
            OBSERVERINFO => "OBSERVERINFO",
            LEADERINFO => "LEADERINFO",
            ACKEPOCH => "ACKEPOCH",
            INFORMANDACTIVATE => "INFORMANDACTIVATE",
            _ => "UNKNOWN",
        }
    }
}

// ---------------------------------------------------------------------------
// zxids

/// The epoch half of a zxid (arithmetic shift, as Java's `>>`).
pub fn epoch_of(zxid: i64) -> i64 {
    zxid >> 32
}

/// The counter half of a zxid.
pub fn counter_of(zxid: i64) -> i64 {
    zxid & 0xFFFF_FFFF
}

/// `(epoch << 32) | (counter & 0xFFFFFFFF)`.
pub fn make_zxid(epoch: i64, counter: i64) -> i64 {
    (epoch << 32) | (counter & 0xFFFF_FFFF)
}

// ---------------------------------------------------------------------------
// Errors

/// Why bytes from a peer are not a packet we accept. The driver closes the
/// quorum connection; nothing here is fatal to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    /// `data`'s length prefix is negative (other than null) or above
    /// [`QUORUM_PACKET_DATA_MAX_BYTES`].
    BadDataLength(i32),
    /// The authinfo vector's count or one of its strings is negative, or
    /// the ids together exceed [`QUORUM_PACKET_AUTHINFO_MAX_BYTES`].
    BadAuthInfo(&'static str),
    /// A field inside a complete packet failed to decode.
    Decode(DecodeError),
    /// A packet type this direction never carries.
    UnexpectedType { packet_type: i32, direction: &'static str },
    /// The packet's `data` does not have the layout its type requires.
    BadPayload { packet_type: i32, what: &'static str },
    /// The snapshot stream after SNAP is malformed.
    BadSnapStream(&'static str),
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::BadDataLength(n) => {
                write!(f, "quorum packet data length {n} outside -1..={QUORUM_PACKET_DATA_MAX_BYTES}")
            }
            PacketError::BadAuthInfo(what) => write!(f, "quorum packet authinfo: {what}"),
            PacketError::Decode(e) => write!(f, "quorum packet: {e}"),
            PacketError::UnexpectedType { packet_type, direction } => {
                write!(f, "unexpected {} ({packet_type}) {direction}", packet_type::name(*packet_type))
            }
            PacketError::BadPayload { packet_type, what } => {
                write!(f, "{} ({packet_type}) payload: {what}", packet_type::name(*packet_type))
            }
            PacketError::BadSnapStream(what) => write!(f, "snapshot stream after SNAP: {what}"),
        }
    }
}

impl std::error::Error for PacketError {}

impl From<DecodeError> for PacketError {
    fn from(e: DecodeError) -> Self {
        PacketError::Decode(e)
    }
}

// ---------------------------------------------------------------------------
// The raw packet

/// One `QuorumPacket` as it crosses the wire. `data` and `authinfo` keep
/// null (-1) distinct from empty, as Java does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    pub packet_type: i32,
    pub zxid: i64,
    pub data: Option<Bytes>,
    pub authinfo: Option<Vec<Id>>,
}

impl QuorumPacket {
    /// A packet with null data and null authinfo, as most of Apache's are.
    pub fn bare(packet_type: i32, zxid: i64) -> Self {
        QuorumPacket { packet_type, zxid, data: None, authinfo: None }
    }

    fn with_data(packet_type: i32, zxid: i64, data: Bytes) -> Self {
        QuorumPacket { packet_type, zxid, data: Some(data), authinfo: None }
    }

    /// Appends the packet's bytes (no length prefix: the jute record is the
    /// whole frame).
    pub fn encode(&self, out: &mut BytesMut) {
        let mut w = Writer::new(out);
        w.i32(self.packet_type).i64(self.zxid).buffer(self.data.as_deref());
        match &self.authinfo {
            None => {
                w.i32(-1);
            }
            Some(ids) => {
                w.vec(ids, |w, id| id.encode(w));
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(QUORUM_PACKET_FIXED_BYTES + self.data.as_ref().map_or(0, |d| d.len()));
        self.encode(&mut out);
        out.freeze()
    }

    /// Decodes exactly one complete packet occupying all of `frame` (use
    /// [`measure_packet`] to find its end first).
    pub fn decode(frame: Bytes) -> Result<QuorumPacket, PacketError> {
        let mut r = Reader::new(frame);
        let packet_type = r.read_i32()?;
        let zxid = r.read_i64()?;
        let data = r.read_buffer()?;
        let count = r.read_i32()?;
        let authinfo = if count == -1 {
            None
        } else {
            if count < 0 {
                return Err(PacketError::BadAuthInfo("negative id count"));
            }
            // measure_packet bounded the count by the bytes present.
            let mut ids = Vec::with_capacity((count as usize).min(r.remaining() / 8));
            for _ in 0..count {
                ids.push(Id::decode(&mut r)?);
            }
            Some(ids)
        };
        if !r.is_empty() {
            return Err(PacketError::Decode(DecodeError::Invalid("bytes after the quorum packet")));
        }
        Ok(QuorumPacket { packet_type, zxid, data, authinfo })
    }
}

/// Where a partial buffer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// The first `len` bytes are one whole packet.
    Complete { len: usize },
    /// Not enough bytes yet; at least this many (in total, from the start
    /// of the packet) are needed before measuring can go further.
    NeedMore { at_least: usize },
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at.checked_add(4)?)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Walks the length fields of the packet at the start of `buf` without
/// allocating, checking every length against its limit as soon as it is
/// seen, so a hostile length is refused before we wait for its bytes.
pub fn measure_packet(buf: &[u8]) -> Result<Measured, PacketError> {
    let need = |at_least: usize| Ok(Measured::NeedMore { at_least });
    let data_len_at = 4 + 8;
    let Some(data_len) = be_i32(buf, data_len_at) else { return need(data_len_at + 4) };
    let data_bytes = match data_len {
        -1 => 0,
        n if n < 0 || n as usize > QUORUM_PACKET_DATA_MAX_BYTES => return Err(PacketError::BadDataLength(n)),
        n => n as usize,
    };
    let count_at = data_len_at + 4 + data_bytes;
    let Some(count) = be_i32(buf, count_at) else { return need(count_at + 4) };
    let mut pos = count_at + 4;
    if count == -1 {
        return Ok(Measured::Complete { len: pos });
    }
    if count < 0 {
        return Err(PacketError::BadAuthInfo("negative id count"));
    }
    // Every id is at least two 4-byte length prefixes.
    if (count as usize).saturating_mul(8) > QUORUM_PACKET_AUTHINFO_MAX_BYTES {
        return Err(PacketError::BadAuthInfo("too many ids"));
    }
    let authinfo_start = pos;
    for _ in 0..(count as usize) * 2 {
        let Some(len) = be_i32(buf, pos) else { return need(pos + 4) };
        let len = match len {
            -1 => 0,
            n if n < 0 => return Err(PacketError::BadAuthInfo("negative string length")),
            n => n as usize,
        };
        pos = pos + 4 + len;
        if pos - authinfo_start > QUORUM_PACKET_AUTHINFO_MAX_BYTES {
            return Err(PacketError::BadAuthInfo("ids exceed QUORUM_PACKET_AUTHINFO_MAX_BYTES"));
        }
        if buf.len() < pos {
            return need(pos);
        }
    }
    Ok(Measured::Complete { len: pos })
}

/// Accumulates bytes read from a quorum socket in whatever chunks arrive
/// and yields whole packets. Bounded: a packet longer than
/// [`QUORUM_PACKET_MAX_BYTES`] is refused as soon as its length fields are
/// seen, so a driver that calls [`next_packet`](Self::next_packet) after
/// every [`feed`](Self::feed) never buffers more than that plus one chunk.
/// After SNAP the stream carries a snapshot instead of packets: the driver
/// hands [`buffered`](Self::buffered) to a [`SnapStreamScanner`] and drops
/// what it consumed with [`consume`](Self::consume).
#[derive(Debug, Default)]
pub struct PacketDecoder {
    buf: BytesMut,
}

impl PacketDecoder {
    pub fn new() -> Self {
        PacketDecoder { buf: BytesMut::new() }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, or `None` when more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<QuorumPacket>, PacketError> {
        match measure_packet(&self.buf)? {
            Measured::NeedMore { .. } => Ok(None),
            Measured::Complete { len } => {
                let frame = self.buf.split_to(len).freeze();
                QuorumPacket::decode(frame).map(Some)
            }
        }
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` buffered bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        let _ = self.buf.split_to(n);
    }
}

// ---------------------------------------------------------------------------
// Typed payloads

/// FOLLOWERINFO / OBSERVERINFO's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub sid: i64,
    pub protocol_version: i32,
    /// Absent in packets from learners older than 3.5.
    pub config_version: Option<i64>,
}

/// One entry of a learner's PING reply: a session it saw traffic on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTouch {
    pub session_id: i64,
    pub timeout_ms: i32,
}

/// A client write (or sync, or session op) a learner forwards to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    pub session_id: i64,
    pub cxid: i32,
    /// The client's opcode.
    pub op_type: i32,
    /// The request record's bytes as the client sent them (may be empty).
    pub body: Bytes,
    /// The client's authenticated ids.
    pub authinfo: Vec<Id>,
}

/// Bytes after the fixed part of a payload; `what` names the layout.
fn payload_reader(p: &QuorumPacket, what: &'static str) -> Result<(Bytes, Reader), PacketError> {
    match &p.data {
        Some(d) => Ok((d.clone(), Reader::new(d.clone()))),
        None => Err(PacketError::BadPayload { packet_type: p.packet_type, what }),
    }
}

fn bad(p: &QuorumPacket, what: &'static str) -> PacketError {
    PacketError::BadPayload { packet_type: p.packet_type, what }
}

/// The unread tail of `data` as a zero-copy slice.
fn rest_of(data: &Bytes, r: &Reader) -> Bytes {
    data.slice(data.len() - r.remaining()..)
}

fn data_bytes(f: impl FnOnce(&mut Writer<'_>)) -> Bytes {
    let mut out = BytesMut::new();
    f(&mut Writer::new(&mut out));
    out.freeze()
}

fn txn_of(p: &QuorumPacket) -> Result<Bytes, PacketError> {
    p.data.clone().ok_or_else(|| bad(p, "missing txn bytes"))
}

fn i64_then_rest(p: &QuorumPacket, what: &'static str) -> Result<(i64, Bytes), PacketError> {
    let (data, mut r) = payload_reader(p, what)?;
    let v = r.read_i64().map_err(|_| bad(p, what))?;
    Ok((v, rest_of(&data, &r)))
}

fn exact_i64(p: &QuorumPacket, what: &'static str) -> Result<i64, PacketError> {
    let (v, rest) = i64_then_rest(p, what)?;
    if !rest.is_empty() {
        return Err(bad(p, what));
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// Learner -> leader

/// Every packet a follower or observer sends to its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLeader {
    /// 1: a forwarded client request. zxid is -1 on the wire.
    Request(ForwardedRequest),
    /// 3: the proposal (or NEWLEADER / UPTODATE) with this zxid is logged.
    Ack { zxid: i64 },
    /// 5: the answer to the leader's PING, echoing its zxid, with the
    /// sessions this learner saw since the last one.
    Ping { zxid: i64, sessions: Vec<SessionTouch> },
    /// 6: a reconnecting client asks whether its session is still alive.
    /// zxid is -1 on the wire.
    Revalidate { session_id: i64, timeout_ms: i32 },
    /// 11: the first packet of a follower; zxid = acceptedEpoch << 32.
    FollowerInfo { accepted_epoch: i64, info: LearnerInfo },
    /// 16: the same for an observer.
    ObserverInfo { accepted_epoch: i64, info: LearnerInfo },
    /// 18: answer to LEADERINFO. `current_epoch` is
    /// [`ACKEPOCH_ALREADY_ACCEPTED`] when the learner had accepted the new
    /// epoch before; the reply then does not count as an epoch ack.
    AckEpoch { last_logged_zxid: i64, current_epoch: i32 },
}

fn learner_info_bytes(info: &LearnerInfo) -> Bytes {
    data_bytes(|w| {
        w.i64(info.sid).i32(info.protocol_version);
        if let Some(v) = info.config_version {
            w.i64(v);
        }
    })
}

/// Apache reads as much of LearnerInfo as is present: 8 bytes give the sid,
/// 12 the protocol version, 20 the config version. A null payload makes
/// Apache invent a sid; zoocore refuses it (pre-3.4 learners only).
fn decode_learner_info(p: &QuorumPacket) -> Result<LearnerInfo, PacketError> {
    const WHAT: &str = "LearnerInfo {sid l, protocolVersion i, configVersion l}";
    let (_, mut r) = payload_reader(p, WHAT)?;
    let sid = r.read_i64().map_err(|_| bad(p, WHAT))?;
    let protocol_version = if r.remaining() >= 4 { r.read_i32()? } else { PROTOCOL_VERSION_PRE_ZAB_1_0 };
    let config_version = if r.remaining() >= 8 { Some(r.read_i64()?) } else { None };
    Ok(LearnerInfo { sid, protocol_version, config_version })
}

impl ToLeader {
    pub fn to_packet(&self) -> QuorumPacket {
        use packet_type as t;
        match self {
            ToLeader::Request(req) => QuorumPacket {
                packet_type: t::REQUEST,
                zxid: -1,
                data: Some(data_bytes(|w| {
                    w.i64(req.session_id).i32(req.cxid).i32(req.op_type);
                    w.buf.extend_from_slice(&req.body);
                })),
                authinfo: Some(req.authinfo.clone()),
            },
            ToLeader::Ack { zxid } => QuorumPacket::bare(t::ACK, *zxid),
            ToLeader::Ping { zxid, sessions } => QuorumPacket::with_data(
                t::PING,
                *zxid,
                data_bytes(|w| {
                    for s in sessions {
                        w.i64(s.session_id).i32(s.timeout_ms);
                    }
                }),
            ),
            ToLeader::Revalidate { session_id, timeout_ms } => QuorumPacket::with_data(
                t::REVALIDATE,
                -1,
                data_bytes(|w| {
                    w.i64(*session_id).i32(*timeout_ms);
                }),
            ),
            ToLeader::FollowerInfo { accepted_epoch, info } => {
                QuorumPacket::with_data(t::FOLLOWERINFO, make_zxid(*accepted_epoch, 0), learner_info_bytes(info))
            }
            ToLeader::ObserverInfo { accepted_epoch, info } => {
                QuorumPacket::with_data(t::OBSERVERINFO, make_zxid(*accepted_epoch, 0), learner_info_bytes(info))
            }
            ToLeader::AckEpoch { last_logged_zxid, current_epoch } => QuorumPacket::with_data(
                t::ACKEPOCH,
                *last_logged_zxid,
                data_bytes(|w| {
                    w.i32(*current_epoch);
                }),
            ),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        self.to_packet().encode(out);
    }

    /// Fields Apache ignores on receipt (REQUEST's zxid, FOLLOWERINFO's
    /// counter bits) are ignored here too.
    pub fn from_packet(p: &QuorumPacket) -> Result<ToLeader, PacketError> {
        use packet_type as t;
        Ok(match p.packet_type {
            t::REQUEST => {
                const WHAT: &str = "{sessionId l, cxid i, type i} + request bytes";
                let (data, mut r) = payload_reader(p, WHAT)?;
                let (session_id, cxid, op_type) = match (r.read_i64(), r.read_i32(), r.read_i32()) {
                    (Ok(s), Ok(c), Ok(o)) => (s, c, o),
                    _ => return Err(bad(p, WHAT)),
                };
                let body = rest_of(&data, &r);
                ToLeader::Request(ForwardedRequest {
                    session_id,
                    cxid,
                    op_type,
                    body,
                    authinfo: p.authinfo.clone().unwrap_or_default(),
                })
            }
            t::ACK => ToLeader::Ack { zxid: p.zxid },
            t::PING => {
                // Apache reads {l, i} pairs while bytes remain; a partial
                // pair is an EOF error that drops the learner.
                let data = p.data.clone().unwrap_or_default();
                if !data.len().is_multiple_of(12) {
                    return Err(bad(p, "not a whole number of {sessionId l, timeout i}"));
                }
                let mut r = Reader::new(data);
                let mut sessions = Vec::with_capacity(r.remaining() / 12);
                while !r.is_empty() {
                    sessions.push(SessionTouch { session_id: r.read_i64()?, timeout_ms: r.read_i32()? });
                }
                ToLeader::Ping { zxid: p.zxid, sessions }
            }
            t::REVALIDATE => {
                const WHAT: &str = "{sessionId l, timeout i}";
                let (_, mut r) = payload_reader(p, WHAT)?;
                match (r.read_i64(), r.read_i32(), r.is_empty()) {
                    (Ok(session_id), Ok(timeout_ms), true) => ToLeader::Revalidate { session_id, timeout_ms },
                    _ => return Err(bad(p, WHAT)),
                }
            }
            t::FOLLOWERINFO => {
                ToLeader::FollowerInfo { accepted_epoch: epoch_of(p.zxid), info: decode_learner_info(p)? }
            }
            t::OBSERVERINFO => {
                ToLeader::ObserverInfo { accepted_epoch: epoch_of(p.zxid), info: decode_learner_info(p)? }
            }
            t::ACKEPOCH => {
                const WHAT: &str = "{currentEpoch i}";
                let (_, mut r) = payload_reader(p, WHAT)?;
                let current_epoch = r.read_i32().map_err(|_| bad(p, WHAT))?;
                ToLeader::AckEpoch { last_logged_zxid: p.zxid, current_epoch }
            }
            other => return Err(PacketError::UnexpectedType { packet_type: other, direction: "from a learner" }),
        })
    }
}

// ---------------------------------------------------------------------------
// Leader -> learner

/// Every packet a leader sends to a follower or observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToLearner {
    /// 2: a txn to log; `txn` is the txn-log payload (TxnHeader + txn +
    /// digest), opaque here.
    Proposal { zxid: i64, txn: Bytes },
    /// 4: the proposal with this zxid is committed.
    Commit { zxid: i64 },
    /// 5: liveness probe; zxid = the leader's last proposed zxid. Null data.
    Ping { zxid: i64 },
    /// 6: the answer to a learner's REVALIDATE. Apache echoes the request's
    /// zxid (-1) and authinfo (null).
    Revalidate { session_id: i64, valid: bool },
    /// 7: a forwarded sync has reached the leader's commit point. zxid 0.
    Sync,
    /// 8: a committed txn, for observers (they get no PROPOSAL/COMMIT).
    Inform { zxid: i64, txn: Bytes },
    /// 9: commit of a reconfig; data = the designated leader's sid.
    CommitAndActivate { zxid: i64, designated_leader: i64 },
    /// 10: sync is sent; zxid = newEpoch << 32; data = the leader's config
    /// text for ZAB 1.0 learners (null for older ones).
    NewLeader { zxid: i64, config: Option<Bytes> },
    /// 12: the learner may serve. Apache sends zxid -1.
    UpToDate,
    /// 13: the proposals and commits that follow bring the learner up to date.
    Diff { zxid: i64 },
    /// 14: truncate the log to this zxid, then apply what follows.
    Trunc { zxid: i64 },
    /// 15: a full snapshot follows (not a packet; see [`SnapStreamScanner`]);
    /// zxid = the leader's last processed zxid.
    Snap { zxid: i64 },
    /// 17: the epoch the leader proposes; zxid = newEpoch << 32.
    LeaderInfo { new_epoch: i64, protocol_version: i32 },
    /// 19: INFORM of a reconfig; data = designated leader l + txn bytes.
    InformAndActivate { zxid: i64, designated_leader: i64, txn: Bytes },
}

impl ToLearner {
    pub fn to_packet(&self) -> QuorumPacket {
        use packet_type as t;
        match self {
            ToLearner::Proposal { zxid, txn } => QuorumPacket::with_data(t::PROPOSAL, *zxid, txn.clone()),
            ToLearner::Commit { zxid } => QuorumPacket::bare(t::COMMIT, *zxid),
            ToLearner::Ping { zxid } => QuorumPacket::bare(t::PING, *zxid),
            ToLearner::Revalidate { session_id, valid } => QuorumPacket::with_data(
                t::REVALIDATE,
                -1,
                data_bytes(|w| {
                    w.i64(*session_id).bool(*valid);
                }),
            ),
            ToLearner::Sync => QuorumPacket::bare(t::SYNC, 0),
            ToLearner::Inform { zxid, txn } => QuorumPacket::with_data(t::INFORM, *zxid, txn.clone()),
            ToLearner::CommitAndActivate { zxid, designated_leader } => QuorumPacket::with_data(
                t::COMMITANDACTIVATE,
                *zxid,
                data_bytes(|w| {
                    w.i64(*designated_leader);
                }),
            ),
            ToLearner::NewLeader { zxid, config } => {
                QuorumPacket { packet_type: t::NEWLEADER, zxid: *zxid, data: config.clone(), authinfo: None }
            }
            ToLearner::UpToDate => QuorumPacket::bare(t::UPTODATE, -1),
            ToLearner::Diff { zxid } => QuorumPacket::bare(t::DIFF, *zxid),
            ToLearner::Trunc { zxid } => QuorumPacket::bare(t::TRUNC, *zxid),
            ToLearner::Snap { zxid } => QuorumPacket::bare(t::SNAP, *zxid),
            ToLearner::LeaderInfo { new_epoch, protocol_version } => QuorumPacket::with_data(
                t::LEADERINFO,
                make_zxid(*new_epoch, 0),
                data_bytes(|w| {
                    w.i32(*protocol_version);
                }),
            ),
            ToLearner::InformAndActivate { zxid, designated_leader, txn } => QuorumPacket::with_data(
                t::INFORMANDACTIVATE,
                *zxid,
                data_bytes(|w| {
                    w.i64(*designated_leader);
                    w.buf.extend_from_slice(txn);
                }),
            ),
        }
    }

    pub fn encode(&self, out: &mut BytesMut) {
        self.to_packet().encode(out);
    }

    /// Fields Apache ignores on receipt (UPTODATE's zxid, COMMIT's data,
    /// LEADERINFO's counter bits) are ignored here too.
    pub fn from_packet(p: &QuorumPacket) -> Result<ToLearner, PacketError> {
        use packet_type as t;
        Ok(match p.packet_type {
            t::PROPOSAL => ToLearner::Proposal { zxid: p.zxid, txn: txn_of(p)? },
            t::COMMIT => ToLearner::Commit { zxid: p.zxid },
            t::PING => ToLearner::Ping { zxid: p.zxid },
            t::REVALIDATE => {
                const WHAT: &str = "{sessionId l, valid z}";
                let (_, mut r) = payload_reader(p, WHAT)?;
                match (r.read_i64(), r.read_bool(), r.is_empty()) {
                    (Ok(session_id), Ok(valid), true) => ToLearner::Revalidate { session_id, valid },
                    _ => return Err(bad(p, WHAT)),
                }
            }
            t::SYNC => ToLearner::Sync,
            t::INFORM => ToLearner::Inform { zxid: p.zxid, txn: txn_of(p)? },
            t::COMMITANDACTIVATE => {
                ToLearner::CommitAndActivate { zxid: p.zxid, designated_leader: exact_i64(p, "{designatedLeader l}")? }
            }
            t::NEWLEADER => ToLearner::NewLeader { zxid: p.zxid, config: p.data.clone() },
            t::UPTODATE => ToLearner::UpToDate,
            t::DIFF => ToLearner::Diff { zxid: p.zxid },
            t::TRUNC => ToLearner::Trunc { zxid: p.zxid },
            t::SNAP => ToLearner::Snap { zxid: p.zxid },
            t::LEADERINFO => {
                const WHAT: &str = "{protocolVersion i}";
                let (_, mut r) = payload_reader(p, WHAT)?;
                let protocol_version = r.read_i32().map_err(|_| bad(p, WHAT))?;
                ToLearner::LeaderInfo { new_epoch: epoch_of(p.zxid), protocol_version }
            }
            t::INFORMANDACTIVATE => {
                let (designated_leader, txn) = i64_then_rest(p, "{designatedLeader l} + txn bytes")?;
                ToLearner::InformAndActivate { zxid: p.zxid, designated_leader, txn }
            }
            other => return Err(PacketError::UnexpectedType { packet_type: other, direction: "from a leader" }),
        })
    }
}

// ---------------------------------------------------------------------------
// The snapshot stream after SNAP

/// The string Apache writes after the snapshot body of a SNAP sync.
pub const SNAP_SIGNATURE: &str = "BenWasHere";

/// Largest path, ACL id string or node data in the SNAP stream: the same
/// field limit as a packet's data (Apache reads them with the same archive).
pub const SNAP_FIELD_MAX_BYTES: usize = QUORUM_PACKET_DATA_MAX_BYTES;

/// StatPersisted: czxid, mzxid, ctime, mtime (l), version, cversion,
/// aversion (i), ephemeralOwner, pzxid (l).
const STAT_PERSISTED_BYTES: usize = 6 * 8 + 3 * 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SnapPhase {
    SessionCount,
    Sessions {
        left: u32,
    },
    AclCount,
    AclEntry {
        left: u32,
    },
    /// Inside an ACL cache entry's list; `left` counts the entries after it.
    AclItems {
        left: u32,
        acls_left: u32,
    },
    Node,
    Signature,
    Done,
}

/// What [`SnapStreamScanner::scan`] did with a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapScanStep {
    /// Bytes at the front of the buffer that were whole items; the caller
    /// drops (or loads) them and passes the rest next time.
    pub consumed: usize,
    /// The signature has been read: the stream after it is packets again.
    pub finished: bool,
}

/// Counts of what the snapshot held, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapStreamSummary {
    pub sessions: u64,
    pub acl_entries: u64,
    pub nodes: u64,
}

/// Finds the end of the snapshot that follows a SNAP packet, item by item
/// and without holding it: `count i` + `{sessionId l, timeout i}` × count,
/// the ACL cache (`count i` + `{ref l, v<ACL>}` × count), nodes as
/// `{path s, data b, aclRef l, StatPersisted}` until the path "/", then
/// `s "BenWasHere"` (Apache's SerializeUtils.serializeSnapshot and
/// DataTree.serialize). Loading the tree is a separate step; this only
/// validates the layout and the limits. An item that spans reads is
/// rescanned from its start next time; items are small except a node,
/// whose data is at most [`SNAP_FIELD_MAX_BYTES`].
#[derive(Debug, Clone)]
pub struct SnapStreamScanner {
    phase: SnapPhase,
    summary: SnapStreamSummary,
}

impl Default for SnapStreamScanner {
    fn default() -> Self {
        Self::new()
    }
}

/// A cursor over a borrowed slice that reports "incomplete" as `None`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// A length-prefixed field; `Err` if the length is out of bounds.
    fn field(&mut self, null_ok: bool, what: &'static str) -> Result<Option<&'a [u8]>, PacketError> {
        let Some(n) = self.i32() else { return Ok(None) };
        if n == -1 && null_ok {
            return Ok(Some(&[]));
        }
        if n < 0 || n as usize > SNAP_FIELD_MAX_BYTES {
            return Err(PacketError::BadSnapStream(what));
        }
        Ok(self.take(n as usize))
    }
}

impl SnapStreamScanner {
    pub fn new() -> Self {
        SnapStreamScanner { phase: SnapPhase::SessionCount, summary: SnapStreamSummary::default() }
    }

    pub fn summary(&self) -> SnapStreamSummary {
        self.summary
    }

    pub fn is_finished(&self) -> bool {
        self.phase == SnapPhase::Done
    }

    /// Consumes every whole item at the front of `buf`. Call again with the
    /// unconsumed rest plus new bytes; stops at the end of the signature.
    pub fn scan(&mut self, buf: &[u8]) -> Result<SnapScanStep, PacketError> {
        let mut consumed = 0;
        while self.phase != SnapPhase::Done {
            let mut c = Cursor { buf, pos: consumed };
            let advanced = self.scan_item(&mut c)?;
            if !advanced {
                break;
            }
            consumed = c.pos;
        }
        Ok(SnapScanStep { consumed, finished: self.phase == SnapPhase::Done })
    }

    /// Reads one item; `Ok(false)` if the buffer ends inside it.
    fn scan_item(&mut self, c: &mut Cursor<'_>) -> Result<bool, PacketError> {
        let count = |n: i32, what| u32::try_from(n).map_err(|_| PacketError::BadSnapStream(what));
        match self.phase {
            SnapPhase::SessionCount => {
                let Some(n) = c.i32() else { return Ok(false) };
                self.phase = SnapPhase::Sessions { left: count(n, "negative session count")? };
            }
            SnapPhase::Sessions { left: 0 } => self.phase = SnapPhase::AclCount,
            SnapPhase::Sessions { left } => {
                if c.skip(8 + 4).is_none() {
                    return Ok(false);
                }
                self.summary.sessions += 1;
                self.phase = SnapPhase::Sessions { left: left - 1 };
            }
            SnapPhase::AclCount => {
                let Some(n) = c.i32() else { return Ok(false) };
                self.phase = SnapPhase::AclEntry { left: count(n, "negative ACL cache size")? };
            }
            SnapPhase::AclEntry { left: 0 } => self.phase = SnapPhase::Node,
            SnapPhase::AclEntry { left } => {
                if c.skip(8).is_none() {
                    return Ok(false);
                }
                // Apache refuses a null ACL list here.
                let Some(acls) = c.i32() else { return Ok(false) };
                let acls_left = count(acls, "ACL cache entry without an ACL list")?;
                self.summary.acl_entries += 1;
                self.phase = SnapPhase::AclItems { left: left - 1, acls_left };
            }
            SnapPhase::AclItems { left, acls_left: 0 } => self.phase = SnapPhase::AclEntry { left },
            SnapPhase::AclItems { left, acls_left } => {
                // One ACL per item, so a long list split across reads is
                // never rescanned from its start.
                if c.skip(4).is_none() {
                    return Ok(false);
                }
                for _ in 0..2 {
                    if c.field(true, "ACL id string length")?.is_none() {
                        return Ok(false);
                    }
                }
                self.phase = SnapPhase::AclItems { left, acls_left: acls_left - 1 };
            }
            SnapPhase::Node => {
                let Some(path) = c.field(false, "node path length")? else { return Ok(false) };
                if path == b"/" {
                    self.phase = SnapPhase::Signature;
                    return Ok(true);
                }
                if c.field(true, "node data length")?.is_none() || c.skip(8 + STAT_PERSISTED_BYTES).is_none() {
                    return Ok(false);
                }
                self.summary.nodes += 1;
            }
            SnapPhase::Signature => {
                let Some(sig) = c.field(false, "signature length")? else { return Ok(false) };
                if sig != SNAP_SIGNATURE.as_bytes() {
                    return Err(PacketError::BadSnapStream("missing BenWasHere signature"));
                }
                self.phase = SnapPhase::Done;
            }
            SnapPhase::Done => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn bytes_of(p: &QuorumPacket) -> Vec<u8> {
        p.to_bytes().to_vec()
    }

    fn decode_one(bytes: &[u8]) -> QuorumPacket {
        let mut d = PacketDecoder::new();
        d.feed(bytes);
        let p = d.next_packet().unwrap().expect("a whole packet");
        assert!(d.buffered().is_empty());
        p
    }

    #[test]
    fn zxid_helpers_split_and_join_like_java() {
        assert_eq!(make_zxid(1, 5), 0x1_0000_0005);
        assert_eq!(epoch_of(0x1_0000_0005), 1);
        assert_eq!(counter_of(0x1_0000_0005), 5);
        // The counter is masked, not added: a negative counter cannot borrow from the epoch.
        assert_eq!(make_zxid(2, -1), 0x2_FFFF_FFFF);
        // -1 (Apache's "no zxid") has epoch -1 under an arithmetic shift.
        assert_eq!(epoch_of(-1), -1);
        assert_eq!(counter_of(-1), 0xFFFF_FFFF);
    }

    #[test]
    fn followerinfo_fixed_bytes() {
        let m = ToLeader::FollowerInfo {
            accepted_epoch: 1,
            info: LearnerInfo { sid: 3, protocol_version: PROTOCOL_VERSION_ZAB_1_0, config_version: Some(0) },
        };
        let want = hex("0000000B 0000000100000000 00000014 0000000000000003 00010000 0000000000000000 FFFFFFFF");
        assert_eq!(bytes_of(&m.to_packet()), want);
        assert_eq!(ToLeader::from_packet(&decode_one(&want)).unwrap(), m);
    }

    #[test]
    fn leaderinfo_ackepoch_and_newleader_fixed_bytes() {
        let li = ToLearner::LeaderInfo { new_epoch: 2, protocol_version: PROTOCOL_VERSION_ZAB_1_0 };
        assert_eq!(bytes_of(&li.to_packet()), hex("00000011 0000000200000000 00000004 00010000 FFFFFFFF"));
        let ack = ToLeader::AckEpoch { last_logged_zxid: 0x1_0000_0005, current_epoch: 1 };
        assert_eq!(bytes_of(&ack.to_packet()), hex("00000012 0000000100000005 00000004 00000001 FFFFFFFF"));
        let again = ToLeader::AckEpoch { last_logged_zxid: 0, current_epoch: ACKEPOCH_ALREADY_ACCEPTED };
        assert_eq!(bytes_of(&again.to_packet()), hex("00000012 0000000000000000 00000004 FFFFFFFF FFFFFFFF"));
        let nl = ToLearner::NewLeader { zxid: 0x2_0000_0000, config: Some(Bytes::from_static(b"v=0")) };
        assert_eq!(bytes_of(&nl.to_packet()), hex("0000000A 0000000200000000 00000003 763D30 FFFFFFFF"));
    }

    #[test]
    fn ping_both_directions_fixed_bytes() {
        // Leader -> learner: null data, null authinfo.
        let from_leader = ToLearner::Ping { zxid: 0x1_0000_0003 };
        assert_eq!(bytes_of(&from_leader.to_packet()), hex("00000005 0000000100000003 FFFFFFFF FFFFFFFF"));
        // Learner -> leader: an empty (not null) buffer when no session was touched.
        let empty = ToLeader::Ping { zxid: 0x1_0000_0003, sessions: vec![] };
        assert_eq!(bytes_of(&empty.to_packet()), hex("00000005 0000000100000003 00000000 FFFFFFFF"));
        let one = ToLeader::Ping {
            zxid: 7,
            sessions: vec![SessionTouch { session_id: 0x0100_0000_0000_0001, timeout_ms: 4000 }],
        };
        let want = hex("00000005 0000000000000007 0000000C 0100000000000001 00000FA0 FFFFFFFF");
        assert_eq!(bytes_of(&one.to_packet()), want);
        assert_eq!(ToLeader::from_packet(&decode_one(&want)).unwrap(), one);
    }

    #[test]
    fn uptodate_request_and_revalidate_fixed_bytes() {
        assert_eq!(bytes_of(&ToLearner::UpToDate.to_packet()), hex("0000000C FFFFFFFFFFFFFFFF FFFFFFFF FFFFFFFF"));
        let req = ToLeader::Request(ForwardedRequest {
            session_id: 0x10,
            cxid: 2,
            op_type: 1,
            body: Bytes::from_static(&[0xAB]),
            authinfo: vec![Id::new("ip", "1")],
        });
        let want = hex("00000001 FFFFFFFFFFFFFFFF 00000011 0000000000000010 00000002 00000001 AB \
             00000001 00000002 6970 00000001 31");
        assert_eq!(bytes_of(&req.to_packet()), want);
        assert_eq!(ToLeader::from_packet(&decode_one(&want)).unwrap(), req);
        let reval = ToLearner::Revalidate { session_id: 0x10, valid: true };
        assert_eq!(
            bytes_of(&reval.to_packet()),
            hex("00000006 FFFFFFFFFFFFFFFF 00000009 0000000000000010 01 FFFFFFFF")
        );
    }

    #[test]
    fn null_data_is_distinct_from_empty() {
        let null = QuorumPacket::bare(packet_type::NEWLEADER, 1);
        let empty = QuorumPacket { data: Some(Bytes::new()), ..null.clone() };
        assert_ne!(bytes_of(&null), bytes_of(&empty));
        assert_eq!(decode_one(&bytes_of(&null)).data, None);
        assert_eq!(decode_one(&bytes_of(&empty)).data, Some(Bytes::new()));
        let no_ids = QuorumPacket { authinfo: Some(vec![]), ..null.clone() };
        assert_eq!(decode_one(&bytes_of(&no_ids)).authinfo, Some(vec![]));
    }

    #[test]
    fn decoder_waits_for_every_byte_then_yields_back_to_back_packets() {
        let a = ToLearner::Proposal { zxid: 9, txn: Bytes::from_static(b"txn-bytes") }.to_packet();
        let b = ToLearner::Commit { zxid: 9 }.to_packet();
        let mut wire = bytes_of(&a);
        wire.extend(bytes_of(&b));
        let mut d = PacketDecoder::new();
        let mut got = vec![];
        for byte in &wire {
            d.feed(&[*byte]);
            while let Some(p) = d.next_packet().unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got, vec![a, b]);
    }

    #[test]
    fn measure_reports_how_much_it_needs() {
        assert_eq!(measure_packet(&[]).unwrap(), Measured::NeedMore { at_least: 16 });
        let p = bytes_of(&ToLearner::Proposal { zxid: 1, txn: Bytes::from_static(&[0; 10]) }.to_packet());
        assert_eq!(measure_packet(&p[..16]).unwrap(), Measured::NeedMore { at_least: 30 });
        assert_eq!(measure_packet(&p).unwrap(), Measured::Complete { len: 30 });
    }

    #[test]
    fn oversized_or_negative_lengths_are_refused_before_their_bytes_arrive() {
        let mut head = hex("00000002 0000000000000001");
        let mut too_long = head.clone();
        too_long.extend(((QUORUM_PACKET_DATA_MAX_BYTES + 1) as i32).to_be_bytes());
        assert_eq!(measure_packet(&too_long), Err(PacketError::BadDataLength(QUORUM_PACKET_DATA_MAX_BYTES as i32 + 1)));
        let mut negative = head.clone();
        negative.extend((-2i32).to_be_bytes());
        assert_eq!(measure_packet(&negative), Err(PacketError::BadDataLength(-2)));
        // A huge authinfo count.
        head.extend(hex("FFFFFFFF 7FFFFFFF"));
        assert!(matches!(measure_packet(&head), Err(PacketError::BadAuthInfo(_))));
        // Ids whose strings add up past the bound.
        let mut ids = hex("00000002 0000000000000001 FFFFFFFF 00000001");
        ids.extend((QUORUM_PACKET_AUTHINFO_MAX_BYTES as i32).to_be_bytes());
        assert!(matches!(measure_packet(&ids), Err(PacketError::BadAuthInfo(_))));
    }

    #[test]
    fn payloads_with_the_wrong_layout_are_named_errors() {
        let half_ping = QuorumPacket::with_data(packet_type::PING, 1, Bytes::from_static(&[0; 13]));
        assert!(matches!(ToLeader::from_packet(&half_ping), Err(PacketError::BadPayload { packet_type: 5, .. })));
        let short_request = QuorumPacket::with_data(packet_type::REQUEST, -1, Bytes::from_static(&[0; 15]));
        assert!(ToLeader::from_packet(&short_request).is_err());
        let no_txn = QuorumPacket::bare(packet_type::PROPOSAL, 1);
        assert!(ToLearner::from_packet(&no_txn).is_err());
        let no_version = QuorumPacket::bare(packet_type::LEADERINFO, 1 << 32);
        assert!(ToLearner::from_packet(&no_version).is_err());
        // Direction matters: a learner never sends PROPOSAL, a leader never sends ACK.
        let proposal = ToLearner::Proposal { zxid: 1, txn: Bytes::new() }.to_packet();
        assert_eq!(
            ToLeader::from_packet(&proposal),
            Err(PacketError::UnexpectedType { packet_type: 2, direction: "from a learner" })
        );
        assert!(ToLearner::from_packet(&QuorumPacket::bare(packet_type::ACK, 1)).is_err());
        assert!(ToLearner::from_packet(&QuorumPacket::bare(99, 1)).is_err());
    }

    #[test]
    fn learner_info_is_read_as_far_as_present() {
        let sid_only =
            QuorumPacket::with_data(packet_type::FOLLOWERINFO, 0, Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 7]));
        assert_eq!(
            ToLeader::from_packet(&sid_only).unwrap(),
            ToLeader::FollowerInfo {
                accepted_epoch: 0,
                info: LearnerInfo { sid: 7, protocol_version: PROTOCOL_VERSION_PRE_ZAB_1_0, config_version: None }
            }
        );
    }

    /// A synthetic SNAP body laid out as Apache's serializeSnapshot writes it.
    fn snap_stream(sessions: usize, nodes: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut out = BytesMut::new();
        let mut w = Writer::new(&mut out);
        w.i32(sessions as i32);
        for s in 0..sessions {
            w.i64(s as i64 + 1).i32(4000);
        }
        // Two ACL cache entries, the second with two ACLs.
        w.i32(2).i64(1).i32(1).i32(31).string("world").string("anyone");
        w.i64(2).i32(2).i32(1).string("digest").string("u:x").i32(31).string("ip").string("127.0.0.1");
        for (path, data) in nodes {
            w.string(path).buffer(*data).i64(-1);
            w.buf.extend_from_slice(&[0u8; STAT_PERSISTED_BYTES]);
        }
        w.string("/").string(SNAP_SIGNATURE);
        out.to_vec()
    }

    #[test]
    fn snap_scanner_finds_the_signature_across_chunks() {
        let mut body = snap_stream(2, &[("", Some(b"")), ("/zookeeper", None), ("/a", Some(b"xyz"))]);
        let body_len = body.len();
        body.extend(bytes_of(&ToLearner::NewLeader { zxid: 1 << 32, config: None }.to_packet()));
        let mut d = PacketDecoder::new();
        let mut scanner = SnapStreamScanner::new();
        for chunk in body.chunks(7) {
            d.feed(chunk);
            if !scanner.is_finished() {
                let step = scanner.scan(d.buffered()).unwrap();
                d.consume(step.consumed);
            }
        }
        assert!(scanner.is_finished());
        assert_eq!(scanner.summary(), SnapStreamSummary { sessions: 2, acl_entries: 2, nodes: 3 });
        assert_eq!(d.buffered().len(), body.len() - body_len);
        assert!(matches!(ToLearner::from_packet(&d.next_packet().unwrap().unwrap()), Ok(ToLearner::NewLeader { .. })));
    }

    #[test]
    fn snap_scanner_refuses_a_wrong_signature_and_bad_counts() {
        let mut body = snap_stream(0, &[("", None)]);
        let n = body.len();
        body[n - 1] = b'X';
        assert_eq!(
            SnapStreamScanner::new().scan(&body),
            Err(PacketError::BadSnapStream("missing BenWasHere signature"))
        );
        assert!(SnapStreamScanner::new().scan(&hex("FFFFFFFE")).is_err());
        // ACL cache entry with a null list.
        assert!(SnapStreamScanner::new().scan(&hex("00000000 00000001 0000000000000001 FFFFFFFF")).is_err());
    }

    fn arb_id() -> impl Strategy<Value = Id> {
        ("[a-z]{0,8}", "[a-z0-9:]{0,16}").prop_map(|(s, i)| Id::new(&s, &i))
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        vec(any::<u8>(), 0..64).prop_map(Bytes::from)
    }

    fn arb_packet() -> impl Strategy<Value = QuorumPacket> {
        (any::<i32>(), any::<i64>(), proptest::option::of(arb_bytes()), proptest::option::of(vec(arb_id(), 0..4)))
            .prop_map(|(packet_type, zxid, data, authinfo)| QuorumPacket { packet_type, zxid, data, authinfo })
    }

    fn arb_learner_info() -> impl Strategy<Value = LearnerInfo> {
        (any::<i64>(), any::<i32>(), proptest::option::of(any::<i64>()))
            .prop_map(|(sid, protocol_version, config_version)| LearnerInfo { sid, protocol_version, config_version })
    }

    /// Epochs as Apache has them: zxid >> 32 fits in 32 signed bits.
    fn arb_epoch() -> impl Strategy<Value = i64> {
        any::<i32>().prop_map(i64::from)
    }

    fn arb_to_leader() -> impl Strategy<Value = ToLeader> {
        prop_oneof![
            (any::<i64>(), any::<i32>(), any::<i32>(), arb_bytes(), vec(arb_id(), 0..3)).prop_map(
                |(session_id, cxid, op_type, body, authinfo)| ToLeader::Request(ForwardedRequest {
                    session_id,
                    cxid,
                    op_type,
                    body,
                    authinfo
                })
            ),
            any::<i64>().prop_map(|zxid| ToLeader::Ack { zxid }),
            (any::<i64>(), vec((any::<i64>(), any::<i32>()), 0..5)).prop_map(|(zxid, s)| ToLeader::Ping {
                zxid,
                sessions: s
                    .into_iter()
                    .map(|(session_id, timeout_ms)| SessionTouch { session_id, timeout_ms })
                    .collect()
            }),
            (any::<i64>(), any::<i32>())
                .prop_map(|(session_id, timeout_ms)| ToLeader::Revalidate { session_id, timeout_ms }),
            (arb_epoch(), arb_learner_info())
                .prop_map(|(accepted_epoch, info)| ToLeader::FollowerInfo { accepted_epoch, info }),
            (arb_epoch(), arb_learner_info())
                .prop_map(|(accepted_epoch, info)| ToLeader::ObserverInfo { accepted_epoch, info }),
            (any::<i64>(), any::<i32>())
                .prop_map(|(last_logged_zxid, current_epoch)| ToLeader::AckEpoch { last_logged_zxid, current_epoch }),
        ]
    }

    fn arb_to_learner() -> impl Strategy<Value = ToLearner> {
        prop_oneof![
            (any::<i64>(), arb_bytes()).prop_map(|(zxid, txn)| ToLearner::Proposal { zxid, txn }),
            any::<i64>().prop_map(|zxid| ToLearner::Commit { zxid }),
            any::<i64>().prop_map(|zxid| ToLearner::Ping { zxid }),
            (any::<i64>(), any::<bool>()).prop_map(|(session_id, valid)| ToLearner::Revalidate { session_id, valid }),
            Just(ToLearner::Sync),
            (any::<i64>(), arb_bytes()).prop_map(|(zxid, txn)| ToLearner::Inform { zxid, txn }),
            (any::<i64>(), any::<i64>())
                .prop_map(|(zxid, designated_leader)| ToLearner::CommitAndActivate { zxid, designated_leader }),
            (any::<i64>(), proptest::option::of(arb_bytes()))
                .prop_map(|(zxid, config)| ToLearner::NewLeader { zxid, config }),
            Just(ToLearner::UpToDate),
            any::<i64>().prop_map(|zxid| ToLearner::Diff { zxid }),
            any::<i64>().prop_map(|zxid| ToLearner::Trunc { zxid }),
            any::<i64>().prop_map(|zxid| ToLearner::Snap { zxid }),
            (arb_epoch(), any::<i32>())
                .prop_map(|(new_epoch, protocol_version)| ToLearner::LeaderInfo { new_epoch, protocol_version }),
            (any::<i64>(), any::<i64>(), arb_bytes()).prop_map(|(zxid, designated_leader, txn)| {
                ToLearner::InformAndActivate { zxid, designated_leader, txn }
            }),
        ]
    }

    /// Feeds `wire` in chunks of the given sizes (cycled) and collects packets.
    fn decode_chunked(wire: &[u8], chunk_sizes: &[usize]) -> Vec<QuorumPacket> {
        let mut d = PacketDecoder::new();
        let mut out = vec![];
        let mut pos = 0;
        let mut i = 0;
        while pos < wire.len() {
            let n = chunk_sizes[i % chunk_sizes.len()].min(wire.len() - pos);
            d.feed(&wire[pos..pos + n]);
            pos += n;
            i += 1;
            while let Some(p) = d.next_packet().unwrap() {
                out.push(p);
            }
        }
        assert!(d.buffered().is_empty());
        out
    }

    proptest! {
        #[test]
        fn raw_packets_round_trip_through_any_chunking(
            packets in vec(arb_packet(), 1..6),
            chunks in vec(1usize..40, 1..8),
        ) {
            let mut wire = BytesMut::new();
            for p in &packets {
                p.encode(&mut wire);
            }
            prop_assert_eq!(decode_chunked(&wire, &chunks), packets);
        }

        #[test]
        fn learner_messages_round_trip(m in arb_to_leader()) {
            let p = decode_one(&bytes_of(&m.to_packet()));
            prop_assert_eq!(ToLeader::from_packet(&p).unwrap(), m);
        }

        #[test]
        fn leader_messages_round_trip(m in arb_to_learner()) {
            let p = decode_one(&bytes_of(&m.to_packet()));
            prop_assert_eq!(ToLearner::from_packet(&p).unwrap(), m);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in vec(any::<u8>(), 0..200)) {
            let mut d = PacketDecoder::new();
            d.feed(&bytes);
            while let Ok(Some(p)) = d.next_packet() {
                let _ = ToLeader::from_packet(&p);
                let _ = ToLearner::from_packet(&p);
            }
            let _ = SnapStreamScanner::new().scan(&bytes);
        }

        #[test]
        fn snap_scanner_ends_at_the_signature_whatever_the_chunking(
            sessions in 0usize..4,
            data in vec(proptest::option::of(vec(any::<u8>(), 0..40)), 1..6),
            chunk in 1usize..50,
        ) {
            let paths: Vec<String> = (0..data.len()).map(|i| if i == 0 { String::new() } else { format!("/n{i}") }).collect();
            let nodes: Vec<(&str, Option<&[u8]>)> =
                paths.iter().zip(&data).map(|(p, d)| (p.as_str(), d.as_deref())).collect();
            let body = snap_stream(sessions, &nodes);
            let mut scanner = SnapStreamScanner::new();
            let mut pending: Vec<u8> = Vec::new();
            let mut total = 0;
            for piece in body.chunks(chunk) {
                pending.extend_from_slice(piece);
                let step = scanner.scan(&pending).unwrap();
                total += step.consumed;
                pending.drain(..step.consumed);
            }
            prop_assert!(scanner.is_finished());
            prop_assert_eq!(total, body.len());
            prop_assert_eq!(scanner.summary().nodes, data.len() as u64);
            prop_assert_eq!(scanner.summary().sessions, sessions as u64);
        }

        #[test]
        fn zxid_halves_recombine(epoch in arb_epoch(), counter in any::<u32>()) {
            let z = make_zxid(epoch, i64::from(counter));
            prop_assert_eq!(epoch_of(z), epoch);
            prop_assert_eq!(counter_of(z), i64::from(counter));
        }
    }
}
