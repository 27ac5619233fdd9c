//! Every jute record the client port speaks (reference §2, §3, §4, §7, §8):
//! headers, the connect handshake, one request/response shape per opcode,
//! multi framing and watch events. Sans-IO: reads from a `jute::Reader`,
//! writes into a `BytesMut`.

use bytes::{BufMut, Bytes, BytesMut};

use crate::jute::{DecodeError, DecodeResult, Reader, Record, Writer};
use crate::proto::types::{decode_acl_list, encode_acl_list, op, xid, Acl, CreateMode, Stat};

// ---------------------------------------------------------------------------
// Headers and handshake
// ---------------------------------------------------------------------------

/// `RequestHeader{xid i, type i}`, 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

impl Record for RequestHeader {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.xid).i32(self.op);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(RequestHeader { xid: r.read_i32()?, op: r.read_i32()? })
    }
}

/// `ReplyHeader{xid i, zxid l, err i}`, 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl Record for ReplyHeader {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.xid).i64(self.zxid).i32(self.err);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(ReplyHeader { xid: r.read_i32()?, zxid: r.read_i64()?, err: r.read_i32()? })
    }
}

/// The first client frame. `read_only` is `None` when the frame ended
/// before the optional byte (a 3.3-era client); the server then omits the
/// byte from its answer too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.protocol_version)
            .i64(self.last_zxid_seen)
            .i32(self.timeout_ms)
            .i64(self.session_id)
            .buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?.unwrap_or_default(),
            read_only: if r.is_empty() { None } else { Some(r.read_bool()?) },
        })
    }
}

/// The first server frame. `timeout_ms == 0` means the session is invalid
/// or expired. The readOnly byte is written only when `Some`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    pub read_only: Option<bool>,
}

impl Record for ConnectResponse {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.protocol_version).i32(self.timeout_ms).i64(self.session_id).buffer(Some(&self.passwd));
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout_ms: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?.unwrap_or_default(),
            read_only: if r.is_empty() { None } else { Some(r.read_bool()?) },
        })
    }
}

// ---------------------------------------------------------------------------
// Request records
// ---------------------------------------------------------------------------

/// `CreateRequest` (ops 1, 15, 19) or `CreateTTLRequest` (op 21, the only
/// one with `ttl: Some`). Null data stays distinct from empty data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    pub data: Option<Bytes>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: Option<i64>,
}

impl CreateRequest {
    fn encode_body(&self, w: &mut Writer<'_>) {
        w.string(&self.path).buffer(self.data.as_deref());
        encode_acl_list(w, &self.acl);
        w.i32(self.flags);
        if let Some(ttl) = self.ttl {
            w.i64(ttl);
        }
    }
    fn decode_body(r: &mut Reader, with_ttl: bool) -> DecodeResult<Self> {
        let path = r.read_string()?;
        let data = r.read_buffer()?;
        let acl = decode_acl_list(r)?;
        let flags = r.read_i32()?;
        let ttl = if with_ttl { Some(r.read_i64()?) } else { None };
        Ok(CreateRequest { path, data, acl, flags, ttl })
    }
}

/// `{path s, version i}`: DeleteRequest and CheckVersionRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathVersion {
    pub path: String,
    pub version: i32,
}

impl Record for PathVersion {
    fn encode(&self, w: &mut Writer<'_>) {
        w.string(&self.path).i32(self.version);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(PathVersion { path: r.read_string()?, version: r.read_i32()? })
    }
}

/// `{path s, watch z}`: exists, getData, getChildren, getChildren2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathWatch {
    pub path: String,
    pub watch: bool,
}

impl Record for PathWatch {
    fn encode(&self, w: &mut Writer<'_>) {
        w.string(&self.path).bool(self.watch);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(PathWatch { path: r.read_string()?, watch: r.read_bool()? })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Bytes>,
    pub version: i32,
}

impl Record for SetDataRequest {
    fn encode(&self, w: &mut Writer<'_>) {
        w.string(&self.path).buffer(self.data.as_deref()).i32(self.version);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(SetDataRequest { path: r.read_string()?, data: r.read_buffer()?, version: r.read_i32()? })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

impl Record for SetAclRequest {
    fn encode(&self, w: &mut Writer<'_>) {
        w.string(&self.path);
        encode_acl_list(w, &self.acl);
        w.i32(self.version);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(SetAclRequest { path: r.read_string()?, acl: decode_acl_list(r)?, version: r.read_i32()? })
    }
}

/// `AuthPacket{type i, scheme s, auth b}` (op 100, xid -4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPacket {
    pub auth_type: i32,
    pub scheme: String,
    pub auth: Bytes,
}

impl Record for AuthPacket {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.auth_type).string(&self.scheme).buffer(Some(&self.auth));
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(AuthPacket {
            auth_type: r.read_i32()?,
            scheme: r.read_string()?,
            auth: r.read_buffer()?.unwrap_or_default(),
        })
    }
}

/// SetWatches (op 101) and SetWatches2 (op 105). `v2` records which one
/// was sent; the persistent lists are always empty for op 101.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub v2: bool,
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

impl SetWatches {
    pub fn op(&self) -> i32 {
        if self.v2 {
            op::SET_WATCHES2
        } else {
            op::SET_WATCHES
        }
    }
    fn encode_body(&self, w: &mut Writer<'_>) {
        w.i64(self.relative_zxid).string_vec(&self.data).string_vec(&self.exist).string_vec(&self.child);
        if self.v2 {
            w.string_vec(&self.persistent).string_vec(&self.persistent_recursive);
        }
    }
    fn decode_body(r: &mut Reader, v2: bool) -> DecodeResult<Self> {
        let relative_zxid = r.read_i64()?;
        let data = r.read_string_vec()?;
        let exist = r.read_string_vec()?;
        let child = r.read_string_vec()?;
        let (persistent, persistent_recursive) =
            if v2 { (r.read_string_vec()?, r.read_string_vec()?) } else { (Vec::new(), Vec::new()) };
        Ok(SetWatches { v2, relative_zxid, data, exist, child, persistent, persistent_recursive })
    }
}

/// `ReconfigRequest{joiningServers s, leavingServers s, newMembers s, curConfigId l}`.
/// The strings may be null on the wire; null and empty are kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigRequest {
    pub joining_servers: Option<String>,
    pub leaving_servers: Option<String>,
    pub new_members: Option<String>,
    pub cur_config_id: i64,
}

impl Record for ReconfigRequest {
    fn encode(&self, w: &mut Writer<'_>) {
        w.opt_string(self.joining_servers.as_deref())
            .opt_string(self.leaving_servers.as_deref())
            .opt_string(self.new_members.as_deref())
            .i64(self.cur_config_id);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(ReconfigRequest {
            joining_servers: r.read_opt_string()?,
            leaving_servers: r.read_opt_string()?,
            new_members: r.read_opt_string()?,
            cur_config_id: r.read_i64()?,
        })
    }
}

/// `MultiHeader{type i, done z, err i}`, 9 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    pub const END: MultiHeader = MultiHeader { op: -1, done: true, err: -1 };
}

impl Record for MultiHeader {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.op).bool(self.done).i32(self.err);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(MultiHeader { op: r.read_i32()?, done: r.read_bool()?, err: r.read_i32()? })
    }
}

/// One write inside a multi (op 14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    /// `op` is the create opcode the reference server uses for this entry:
    /// derived from the flags (21 for TTL modes, 19 for container, else 1),
    /// whatever sub-op the client put in the MultiHeader. `req.ttl` is
    /// `Some` only when the sub-op was 21.
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete(PathVersion),
    SetData(SetDataRequest),
    Check(PathVersion),
}

impl MultiOp {
    pub fn op(&self) -> i32 {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::Delete(_) => op::DELETE,
            MultiOp::SetData(_) => op::SET_DATA,
            MultiOp::Check(_) => op::CHECK,
        }
    }
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { req, .. } => &req.path,
            MultiOp::Delete(p) | MultiOp::Check(p) => &p.path,
            MultiOp::SetData(s) => &s.path,
        }
    }
}

/// One read inside a multiRead (op 22). The watch flag is carried but the
/// server ignores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(PathWatch),
    GetChildren(PathWatch),
}

impl ReadOp {
    pub fn op(&self) -> i32 {
        match self {
            ReadOp::GetData(_) => op::GET_DATA,
            ReadOp::GetChildren(_) => op::GET_CHILDREN,
        }
    }
    pub fn path(&self) -> &str {
        match self {
            ReadOp::GetData(p) | ReadOp::GetChildren(p) => &p.path,
        }
    }
}

/// The create opcode Java's multi assigns from the flags. Unknown flags
/// count as PERSISTENT here (op 1) and keep their raw value, so the
/// server's create validation answers -8 inside the multi result, as
/// Apache ZooKeeper 3.8 does (checked on a live server; the reference's
/// "-5 for bad flags" does not match it).
fn multi_create_op(flags: i32) -> i32 {
    match CreateMode::from_flags(flags) {
        Some(mode) if mode.is_ttl() => op::CREATE_TTL,
        Some(mode) if mode.is_container() => op::CREATE_CONTAINER,
        _ => op::CREATE,
    }
}

/// The sub-op written before a multi entry. For a create it must say
/// whether a ttl follows (21 exactly when `req.ttl` is set): `MultiOp::op`
/// comes from the flags, and a client may pair TTL flags with sub-op 1 or
/// sub-op 21 with other flags; writing that op would shift every field
/// after it (found by the `request` fuzz target).
fn multi_header_op(o: &MultiOp) -> i32 {
    match o {
        MultiOp::Create { req, .. } if req.ttl.is_some() => op::CREATE_TTL,
        MultiOp::Create { op: op::CREATE_TTL, .. } => op::CREATE,
        other => other.op(),
    }
}

fn decode_multi(r: &mut Reader) -> DecodeResult<Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::decode(r)?;
        if h.done {
            return Ok(ops);
        }
        let item = match h.op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                let req = CreateRequest::decode_body(r, h.op == op::CREATE_TTL)?;
                MultiOp::Create { op: multi_create_op(req.flags), req }
            }
            op::DELETE => MultiOp::Delete(PathVersion::decode(r)?),
            op::SET_DATA => MultiOp::SetData(SetDataRequest::decode(r)?),
            op::CHECK => MultiOp::Check(PathVersion::decode(r)?),
            op::GET_DATA | op::GET_CHILDREN => return Err(DecodeError::Invalid("read op inside multi")),
            _ => return Err(DecodeError::Invalid("unknown op inside multi")),
        };
        ops.push(item);
    }
}

fn decode_multi_read(r: &mut Reader) -> DecodeResult<Vec<ReadOp>> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::decode(r)?;
        if h.done {
            return Ok(ops);
        }
        let item = match h.op {
            op::GET_DATA => ReadOp::GetData(PathWatch::decode(r)?),
            op::GET_CHILDREN => ReadOp::GetChildren(PathWatch::decode(r)?),
            op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK => return Err(DecodeError::Invalid("write op inside multiRead")),
            _ => return Err(DecodeError::Invalid("unknown op inside multiRead")),
        };
        ops.push(item);
    }
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

/// A decoded client request body, one variant per client opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Ops 1 (create), 15 (create2), 19 (createContainer), 21 (createTTL).
    Create {
        op: i32,
        req: CreateRequest,
    },
    Delete(PathVersion),
    Exists(PathWatch),
    GetData(PathWatch),
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl(SetAclRequest),
    GetChildren(PathWatch),
    GetChildren2(PathWatch),
    Sync {
        path: String,
    },
    Ping,
    /// Only meaningful inside multi; decoding a top-level 13 yields
    /// `RequestError::UnknownOp`. Kept so a client can send one.
    Check(PathVersion),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    Reconfig(ReconfigRequest),
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    Auth(AuthPacket),
    /// Ops 101 and 105; `SetWatches::v2` tells which.
    SetWatches(SetWatches),
    Sasl {
        token: Bytes,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    AddWatch {
        path: String,
        mode: i32,
    },
    WhoAmI,
    CloseSession,
}

/// Why a request body could not become a `Request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Op 0, a top-level check (13), an internal op or an unknown number:
    /// the server answers -6 (Unimplemented) and closes the connection.
    UnknownOp(i32),
    /// The body does not decode, or a multi has an unknown sub-op or mixes
    /// reads and writes: answer -5.
    Malformed(DecodeError),
}

impl From<DecodeError> for RequestError {
    fn from(e: DecodeError) -> Self {
        RequestError::Malformed(e)
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::UnknownOp(op) => write!(f, "unknown or unsupported opcode {op}"),
            RequestError::Malformed(e) => write!(f, "malformed request: {e}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Decodes the record that follows a RequestHeader with opcode `op`.
/// Trailing bytes are ignored, as Java does.
pub fn decode_request(op: i32, r: &mut Reader) -> Result<Request, RequestError> {
    let path_only = |r: &mut Reader| r.read_string();
    Ok(match op {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
            Request::Create { op, req: CreateRequest::decode_body(r, op == op::CREATE_TTL)? }
        }
        op::DELETE => Request::Delete(PathVersion::decode(r)?),
        op::EXISTS => Request::Exists(PathWatch::decode(r)?),
        op::GET_DATA => Request::GetData(PathWatch::decode(r)?),
        op::SET_DATA => Request::SetData(SetDataRequest::decode(r)?),
        op::GET_ACL => Request::GetAcl { path: path_only(r)? },
        op::SET_ACL => Request::SetAcl(SetAclRequest::decode(r)?),
        op::GET_CHILDREN => Request::GetChildren(PathWatch::decode(r)?),
        op::GET_CHILDREN2 => Request::GetChildren2(PathWatch::decode(r)?),
        op::SYNC => Request::Sync { path: path_only(r)? },
        op::PING => Request::Ping,
        op::MULTI => Request::Multi(decode_multi(r)?),
        op::MULTI_READ => Request::MultiRead(decode_multi_read(r)?),
        op::RECONFIG => Request::Reconfig(ReconfigRequest::decode(r)?),
        op::CHECK_WATCHES => Request::CheckWatches { path: r.read_string()?, watcher_type: r.read_i32()? },
        op::REMOVE_WATCHES => Request::RemoveWatches { path: r.read_string()?, watcher_type: r.read_i32()? },
        op::AUTH => Request::Auth(AuthPacket::decode(r)?),
        op::SET_WATCHES => Request::SetWatches(SetWatches::decode_body(r, false)?),
        op::SET_WATCHES2 => Request::SetWatches(SetWatches::decode_body(r, true)?),
        op::SASL => Request::Sasl { token: r.read_buffer()?.unwrap_or_default() },
        op::GET_EPHEMERALS => Request::GetEphemerals { prefix: path_only(r)? },
        op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: path_only(r)? },
        op::ADD_WATCH => Request::AddWatch { path: r.read_string()?, mode: r.read_i32()? },
        op::WHO_AM_I => Request::WhoAmI,
        op::CLOSE_SESSION => Request::CloseSession,
        // 0 (notification), top-level 13 (check), 20 (deleteContainer,
        // internal), -10 (createSession) and anything unknown.
        other => return Err(RequestError::UnknownOp(other)),
    })
}

impl Request {
    /// The opcode that goes into the RequestHeader.
    pub fn op(&self) -> i32 {
        match self {
            Request::Create { op, .. } => *op,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Ping => op::PING,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches { .. } => op::CHECK_WATCHES,
            Request::RemoveWatches { .. } => op::REMOVE_WATCHES,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(s) => s.op(),
            Request::Sasl { .. } => op::SASL,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch { .. } => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// The xid Java clients use for this request, if it is a fixed one.
    pub fn fixed_xid(&self) -> Option<i32> {
        match self {
            Request::Ping => Some(xid::PING),
            Request::Auth(_) => Some(xid::AUTH),
            Request::SetWatches(_) => Some(xid::SET_WATCHES),
            _ => None,
        }
    }

    /// Writes RequestHeader{xid, op} followed by the body (no length prefix).
    pub fn encode(&self, xid: i32, w: &mut Writer<'_>) {
        RequestHeader { xid, op: self.op() }.encode(w);
        self.encode_body(w);
    }

    /// Writes only the record after the header.
    pub fn encode_body(&self, w: &mut Writer<'_>) {
        match self {
            Request::Create { req, .. } => req.encode_body(w),
            Request::Delete(p) | Request::Check(p) => p.encode(w),
            Request::Exists(p) | Request::GetData(p) | Request::GetChildren(p) | Request::GetChildren2(p) => {
                p.encode(w)
            }
            Request::SetData(s) => s.encode(w),
            Request::GetAcl { path }
            | Request::Sync { path }
            | Request::GetEphemerals { prefix: path }
            | Request::GetAllChildrenNumber { path } => {
                w.string(path);
            }
            Request::SetAcl(s) => s.encode(w),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) => {
                for o in ops {
                    MultiHeader { op: multi_header_op(o), done: false, err: -1 }.encode(w);
                    match o {
                        MultiOp::Create { req, .. } => req.encode_body(w),
                        MultiOp::Delete(p) | MultiOp::Check(p) => p.encode(w),
                        MultiOp::SetData(s) => s.encode(w),
                    }
                }
                MultiHeader::END.encode(w);
            }
            Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader { op: o.op(), done: false, err: -1 }.encode(w);
                    match o {
                        ReadOp::GetData(p) | ReadOp::GetChildren(p) => p.encode(w),
                    }
                }
                MultiHeader::END.encode(w);
            }
            Request::Reconfig(rc) => rc.encode(w),
            Request::CheckWatches { path, watcher_type } | Request::RemoveWatches { path, watcher_type } => {
                w.string(path).i32(*watcher_type);
            }
            Request::Auth(a) => a.encode(w),
            Request::SetWatches(s) => s.encode_body(w),
            Request::Sasl { token } => {
                w.buffer(Some(token));
            }
            Request::AddWatch { path, mode } => {
                w.string(path).i32(*mode);
            }
        }
    }
}

/// Writes a whole length-prefixed request frame.
pub fn encode_request_frame(out: &mut BytesMut, xid: i32, req: &Request) {
    let start = begin_frame(out);
    req.encode(xid, &mut Writer::new(out));
    end_frame(out, start);
}

/// Writes a whole length-prefixed ConnectRequest/ConnectResponse frame.
pub fn encode_record_frame<R: Record>(out: &mut BytesMut, rec: &R) {
    let start = begin_frame(out);
    rec.encode(&mut Writer::new(out));
    end_frame(out, start);
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// `ClientInfo{authScheme s, user s}` (whoAmI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

impl Record for ClientInfo {
    fn encode(&self, w: &mut Writer<'_>) {
        w.string(&self.auth_scheme).string(&self.user);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(ClientInfo { auth_scheme: r.read_string()?, user: r.read_string()? })
    }
}

/// One entry of a multi / multiRead response (§8 table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create {
        path: String,
    },
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    Check,
    SetData {
        stat: Stat,
    },
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    /// `ErrorResult(code)`; code 0 marks ops before the failing one.
    Error(i32),
}

impl MultiResult {
    fn result_type(&self) -> i32 {
        match self {
            MultiResult::Create { .. } => op::CREATE,
            MultiResult::Create2 { .. } => op::CREATE2,
            MultiResult::Delete => op::DELETE,
            MultiResult::Check => op::CHECK,
            MultiResult::SetData { .. } => op::SET_DATA,
            MultiResult::GetData { .. } => op::GET_DATA,
            MultiResult::GetChildren { .. } => op::GET_CHILDREN,
            MultiResult::Error(_) => op::ERROR,
        }
    }

    fn encode(&self, w: &mut Writer<'_>) {
        let err = if let MultiResult::Error(code) = self { *code } else { 0 };
        MultiHeader { op: self.result_type(), done: false, err }.encode(w);
        match self {
            MultiResult::Create { path } => {
                w.string(path);
            }
            MultiResult::Create2 { path, stat } => {
                w.string(path);
                stat.encode(w);
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData { stat } => stat.encode(w),
            MultiResult::GetData { data, stat } => {
                w.buffer(data.as_deref());
                stat.encode(w);
            }
            MultiResult::GetChildren { children } => {
                w.string_vec(children);
            }
            MultiResult::Error(code) => {
                w.i32(*code);
            }
        }
    }
}

fn encode_multi_results(w: &mut Writer<'_>, results: &[MultiResult]) {
    for res in results {
        res.encode(w);
    }
    MultiHeader::END.encode(w);
}

fn decode_multi_results(r: &mut Reader) -> DecodeResult<Vec<MultiResult>> {
    let mut out = Vec::new();
    loop {
        let h = MultiHeader::decode(r)?;
        if h.done {
            return Ok(out);
        }
        out.push(match h.op {
            op::CREATE => MultiResult::Create { path: r.read_string()? },
            op::CREATE2 => MultiResult::Create2 { path: r.read_string()?, stat: Stat::decode(r)? },
            op::DELETE => MultiResult::Delete,
            op::CHECK => MultiResult::Check,
            op::SET_DATA => MultiResult::SetData { stat: Stat::decode(r)? },
            op::GET_DATA => MultiResult::GetData { data: r.read_buffer()?, stat: Stat::decode(r)? },
            op::GET_CHILDREN => MultiResult::GetChildren { children: r.read_string_vec()? },
            op::ERROR => MultiResult::Error(r.read_i32()?),
            _ => return Err(DecodeError::Invalid("unknown multi result type")),
        });
    }
}

/// A response record (the part after the ReplyHeader when err == 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// create (op 1).
    Create {
        path: String,
    },
    /// create2, createContainer, createTTL.
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL.
    Stat(Stat),
    /// getData and reconfig.
    GetData {
        data: Option<Bytes>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    MultiRead(Vec<MultiResult>),
    Sasl {
        token: Option<Bytes>,
    },
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    /// addWatch: a 4-byte zero ErrorResponse body.
    AddWatch,
    WhoAmI(Vec<ClientInfo>),
    /// No body: delete, ping, closeSession, auth, setWatches,
    /// checkWatches, removeWatches, check.
    Empty,
}

impl Response {
    pub fn encode_body(&self, w: &mut Writer<'_>) {
        match self {
            Response::Create { path } | Response::Sync { path } => {
                w.string(path);
            }
            Response::Create2 { path, stat } => {
                w.string(path);
                stat.encode(w);
            }
            Response::Stat(stat) => stat.encode(w),
            Response::GetData { data, stat } => {
                w.buffer(data.as_deref());
                stat.encode(w);
            }
            Response::GetAcl { acl, stat } => {
                encode_acl_list(w, acl);
                stat.encode(w);
            }
            Response::GetChildren { children } => {
                w.string_vec(children);
            }
            Response::GetChildren2 { children, stat } => {
                w.string_vec(children);
                stat.encode(w);
            }
            Response::Multi(results) | Response::MultiRead(results) => encode_multi_results(w, results),
            Response::Sasl { token } => {
                w.buffer(token.as_deref());
            }
            Response::GetEphemerals { paths } => {
                w.string_vec(paths);
            }
            Response::GetAllChildrenNumber { total } => {
                w.i32(*total);
            }
            Response::AddWatch => {
                w.i32(0);
            }
            Response::WhoAmI(infos) => {
                w.vec(infos, |w, i| i.encode(w));
            }
            Response::Empty => {}
        }
    }

    /// Client side: decodes the body of a successful (err == 0) reply to a
    /// request with opcode `op`.
    pub fn decode_body(op: i32, r: &mut Reader) -> DecodeResult<Response> {
        Ok(match op {
            op::CREATE => Response::Create { path: r.read_string()? },
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::Create2 { path: r.read_string()?, stat: Stat::decode(r)? }
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::decode(r)?),
            op::GET_DATA | op::RECONFIG => Response::GetData { data: r.read_buffer()?, stat: Stat::decode(r)? },
            op::GET_ACL => Response::GetAcl { acl: decode_acl_list(r)?, stat: Stat::decode(r)? },
            op::GET_CHILDREN => Response::GetChildren { children: r.read_string_vec()? },
            op::GET_CHILDREN2 => Response::GetChildren2 { children: r.read_string_vec()?, stat: Stat::decode(r)? },
            op::SYNC => Response::Sync { path: r.read_string()? },
            op::MULTI => Response::Multi(decode_multi_results(r)?),
            op::MULTI_READ => Response::MultiRead(decode_multi_results(r)?),
            op::SASL => Response::Sasl { token: r.read_buffer()? },
            op::GET_EPHEMERALS => Response::GetEphemerals { paths: r.read_string_vec()? },
            op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber { total: r.read_i32()? },
            op::ADD_WATCH => {
                r.read_i32()?;
                Response::AddWatch
            }
            op::WHO_AM_I => Response::WhoAmI(r.read_vec(ClientInfo::decode)?),
            _ => Response::Empty,
        })
    }
}

// ---------------------------------------------------------------------------
// Watch events and reply frames
// ---------------------------------------------------------------------------

/// `WatcherEvent{type i, state i, path s}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl Record for WatcherEvent {
    fn encode(&self, w: &mut Writer<'_>) {
        w.i32(self.event_type).i32(self.state).string(&self.path);
    }
    fn decode(r: &mut Reader) -> DecodeResult<Self> {
        Ok(WatcherEvent { event_type: r.read_i32()?, state: r.read_i32()?, path: r.read_string()? })
    }
}

/// Reserves the 4-byte length prefix; returns where it starts.
fn begin_frame(out: &mut BytesMut) -> usize {
    let start = out.len();
    out.put_i32(0);
    start
}

/// Patches the length prefix reserved by `begin_frame`.
fn end_frame(out: &mut BytesMut, start: usize) {
    let len = out.len() - start - 4;
    assert!(len <= i32::MAX as usize, "frame larger than 2 GiB");
    out[start..start + 4].copy_from_slice(&(len as i32).to_be_bytes());
}

/// Appends a whole reply frame: length, ReplyHeader and, only when
/// `err == 0`, the response body.
pub fn encode_reply(out: &mut BytesMut, xid: i32, zxid: i64, err: i32, body: Option<&Response>) {
    let start = begin_frame(out);
    let mut w = Writer::new(out);
    ReplyHeader { xid, zxid, err }.encode(&mut w);
    if err == 0 {
        if let Some(body) = body {
            body.encode_body(&mut w);
        }
    }
    end_frame(out, start);
}

/// Appends a whole watch-notification frame: ReplyHeader{-1, zxid, 0} +
/// WatcherEvent{event_type, SyncConnected, path}.
pub fn encode_notification(zxid: i64, event_type: i32, path: &str, out: &mut BytesMut) {
    let start = begin_frame(out);
    let mut w = Writer::new(out);
    ReplyHeader { xid: xid::NOTIFICATION, zxid, err: 0 }.encode(&mut w);
    w.i32(event_type).i32(crate::proto::types::STATE_SYNC_CONNECTED).string(path);
    end_frame(out, start);
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
