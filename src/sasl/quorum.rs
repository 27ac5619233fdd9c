//! Quorum SASL, as Apache's `org.apache.zookeeper.server.quorum.auth`
//! (SaslQuorumAuthLearner / SaslQuorumAuthServer) runs it with DIGEST-MD5:
//! the exchange on an election connection (after the dialler's preamble)
//! and on a learner's connection to its leader (before anything else).
//! Sans-IO: the glue (`server::quorum_sasl`) reads and writes the bytes,
//! draws the nonces and keeps the clock.
//!
//! The wire: jute's `QuorumAuthPacket { long magic; int status; buffer
//! token; }`, big-endian, the token an int length (-1: null) and its bytes.
//! ```text
//! learner (dialler)                         server (acceptor)
//!   IN_PROGRESS, empty token        ->
//!                                   <-      IN_PROGRESS, challenge
//!   IN_PROGRESS, digest-response    ->
//!                                   <-      SUCCESS, rspauth   (or ERROR, empty)
//! ```
//! A learner that does not authenticate sends its protocol bytes at once;
//! the server tells them apart by the first 8 bytes (the magic).

use std::collections::BTreeMap;
use std::fmt;

use super::digest_md5::{self, DigestMd5Server, SaslError, Service, Step};
use super::{jaas, Credentials, DIGEST_LOGIN_MODULE};

/// Apache's `QUORUM_AUTH_MAGIC_NUMBER`, written there as
/// `-0xa0dbcafecafe1234L`: that hex literal is already a negative long, so
/// the negation makes this positive.
pub const QUORUM_AUTH_MAGIC: i64 = 0x5f24_3501_3501_edcc;
/// magic (8) + status (4) + token length (4).
pub const PACKET_HEADER_BYTES: usize = 16;
/// The largest token taken. DIGEST-MD5's are a few hundred bytes (RFC 2831
/// caps a response at 4096); the bound keeps a hostile length from costing memory.
pub const TOKEN_MAX_BYTES: usize = 64 * 1024;
/// The JAAS sections Apache reads by default.
pub const DEFAULT_LEARNER_LOGIN_CONTEXT: &str = "QuorumLearner";
pub const DEFAULT_SERVER_LOGIN_CONTEXT: &str = "QuorumServer";

/// `QuorumAuth.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Success,
    Error,
}

impl Status {
    pub fn to_wire(self) -> i32 {
        match self {
            Status::InProgress => 0,
            Status::Success => 1,
            Status::Error => -1,
        }
    }

    /// Apache's getStatus: anything unknown counts as ERROR.
    pub fn from_wire(status: i32) -> Status {
        match status {
            0 => Status::InProgress,
            1 => Status::Success,
            _ => Status::Error,
        }
    }
}

/// One `QuorumAuthPacket` (its magic is checked when decoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumAuthPacket {
    /// As sent: [`Status::from_wire`] reads it.
    pub status: i32,
    /// None: jute's null buffer (length -1).
    pub token: Option<Vec<u8>>,
}

/// Why a packet does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketError {
    BadMagic(i64),
    BadTokenLength(i32),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketError::BadMagic(m) => write!(f, "not a quorum auth packet (magic {m:#x})"),
            PacketError::BadTokenLength(n) => {
                write!(f, "quorum auth token length {n} (must be -1..={TOKEN_MAX_BYTES})")
            }
        }
    }
}

impl QuorumAuthPacket {
    pub fn new(status: Status, token: Option<Vec<u8>>) -> Self {
        QuorumAuthPacket { status: status.to_wire(), token }
    }

    pub fn status(&self) -> Status {
        Status::from_wire(self.status)
    }

    pub fn encode(&self) -> Vec<u8> {
        let token = self.token.as_deref();
        let mut out = Vec::with_capacity(PACKET_HEADER_BYTES + token.map_or(0, <[u8]>::len));
        out.extend_from_slice(&QUORUM_AUTH_MAGIC.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        match token {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(t) => {
                // Tokens we make are far below TOKEN_MAX_BYTES.
                out.extend_from_slice(&(t.len().min(i32::MAX as usize) as i32).to_be_bytes());
                out.extend_from_slice(t);
            }
        }
        out
    }

    /// The packet at the start of `buf` and the bytes it took; Ok(None)
    /// while `buf` holds only part of one.
    pub fn decode(buf: &[u8]) -> Result<Option<(QuorumAuthPacket, usize)>, PacketError> {
        let Some(header) = buf.get(..PACKET_HEADER_BYTES) else {
            // A wrong magic is told as soon as its 8 bytes are in.
            if let Some(false) = starts_with_auth_magic(buf) {
                return Err(PacketError::BadMagic(read_i64(buf)));
            }
            return Ok(None);
        };
        let magic = read_i64(header);
        if magic != QUORUM_AUTH_MAGIC {
            return Err(PacketError::BadMagic(magic));
        }
        let status = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let len = i32::from_be_bytes([header[12], header[13], header[14], header[15]]);
        let token = match len {
            -1 => return Ok(Some((QuorumAuthPacket { status, token: None }, PACKET_HEADER_BYTES))),
            n if n < -1 || n as usize > TOKEN_MAX_BYTES => return Err(PacketError::BadTokenLength(n)),
            n => n as usize,
        };
        match buf.get(PACKET_HEADER_BYTES..PACKET_HEADER_BYTES + token) {
            Some(t) => Ok(Some((QuorumAuthPacket { status, token: Some(t.to_vec()) }, PACKET_HEADER_BYTES + token))),
            None => Ok(None),
        }
    }
}

fn read_i64(buf: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(buf) {
        *d = *s;
    }
    i64::from_be_bytes(b)
}

/// Apache's `nextPacketIsAuth`: whether the connection's next bytes are a
/// quorum auth packet. None until 8 bytes are in.
pub fn starts_with_auth_magic(buf: &[u8]) -> Option<bool> {
    buf.get(..8).map(|m| read_i64(m) == QUORUM_AUTH_MAGIC)
}

/// Why an exchange failed, for the log (the peer only sees ERROR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumAuthError {
    /// The other side's bytes are no quorum auth packet.
    Packet(PacketError),
    /// The server answered ERROR (a wrong password, an unknown user, ...).
    Refused,
    /// The DIGEST-MD5 exchange itself failed (our side's check).
    Sasl(String),
    /// A packet the exchange did not expect now.
    OutOfSequence(&'static str),
    /// The learner did not start an exchange and the server requires one.
    NotAttempted,
}

impl fmt::Display for QuorumAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumAuthError::Packet(e) => write!(f, "{e}"),
            QuorumAuthError::Refused => {
                f.write_str("the server refused our quorum SASL credentials (status ERROR): check the QuorumLearner username/password against its QuorumServer users")
            }
            QuorumAuthError::Sasl(why) => f.write_str(why),
            QuorumAuthError::OutOfSequence(what) => write!(f, "quorum SASL protocol error: {what}"),
            QuorumAuthError::NotAttempted => f.write_str(
                "the learner did not try to authenticate and quorum.auth.serverRequireSasl is true",
            ),
        }
    }
}

impl From<PacketError> for QuorumAuthError {
    fn from(e: PacketError) -> Self {
        QuorumAuthError::Packet(e)
    }
}

/// The QuorumLearner section's `username` / `password`.
#[derive(Clone, PartialEq, Eq)]
pub struct LearnerLogin {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for LearnerLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LearnerLogin").field("username", &self.username).finish_non_exhaustive()
    }
}

/// What the learner does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnerStep {
    /// Send these bytes and feed the next packet.
    Send(Vec<u8>),
    /// The server accepted us and proved it knows the password.
    Authenticated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LearnerState {
    /// Sent the empty first token; the challenge comes next.
    AwaitingChallenge,
    /// Sent the digest-response; SUCCESS with this rspauth comes next.
    AwaitingSuccess {
        rspauth: String,
    },
    Done,
}

/// The dialler's side (SaslQuorumAuthLearner).
#[derive(Debug, Clone)]
pub struct LearnerExchange {
    login: LearnerLogin,
    cnonce: String,
    state: LearnerState,
}

impl LearnerExchange {
    /// `cnonce_bytes`: fresh random bytes, sent as base64. Returns the
    /// exchange and the first packet to send (DIGEST-MD5 has no initial
    /// response: an empty token).
    pub fn start(login: LearnerLogin, cnonce_bytes: &[u8]) -> (LearnerExchange, Vec<u8>) {
        use base64::Engine;
        let cnonce = base64::engine::general_purpose::STANDARD.encode(cnonce_bytes);
        let first = QuorumAuthPacket::new(Status::InProgress, Some(Vec::new())).encode();
        (LearnerExchange { login, cnonce, state: LearnerState::AwaitingChallenge }, first)
    }

    pub fn on_packet(&mut self, packet: &QuorumAuthPacket) -> Result<LearnerStep, QuorumAuthError> {
        let state = std::mem::replace(&mut self.state, LearnerState::Done);
        let token = packet.token.as_deref().unwrap_or_default();
        match (state, packet.status()) {
            (_, Status::Error) => Err(QuorumAuthError::Refused),
            (LearnerState::AwaitingChallenge, Status::InProgress) => {
                let (response, rspauth) = digest_md5::client_response_for(
                    Service::QUORUM,
                    token,
                    &self.login.username,
                    &self.login.password,
                    &self.cnonce,
                )
                .map_err(|e| QuorumAuthError::Sasl(format!("DIGEST-MD5: the server's challenge: {e}")))?;
                self.state = LearnerState::AwaitingSuccess { rspauth };
                Ok(LearnerStep::Send(QuorumAuthPacket::new(Status::InProgress, Some(response)).encode()))
            }
            (LearnerState::AwaitingChallenge, Status::Success) => {
                // Java's client would have a response to send: a protocol error there too.
                Err(QuorumAuthError::OutOfSequence("SUCCESS before the DIGEST-MD5 challenge"))
            }
            (LearnerState::AwaitingSuccess { rspauth }, Status::Success) => {
                digest_md5::check_rspauth(token, &rspauth)
                    .map_err(|e| QuorumAuthError::Sasl(format!("DIGEST-MD5: {e}")))?;
                Ok(LearnerStep::Authenticated)
            }
            (LearnerState::AwaitingSuccess { .. }, Status::InProgress) => {
                Err(QuorumAuthError::OutOfSequence("IN_PROGRESS after our DIGEST-MD5 response"))
            }
            (LearnerState::Done, _) => Err(QuorumAuthError::OutOfSequence("a packet after the exchange ended")),
        }
    }
}

/// What the server does with one learner packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Send `reply` (IN_PROGRESS) and feed the next packet.
    Continue { reply: Vec<u8> },
    /// Send `reply` (SUCCESS); the learner is authenticated as `user`.
    Authenticated { reply: Vec<u8>, user: String },
    /// Send `reply` (ERROR); the exchange failed.
    Failed { reply: Vec<u8>, error: SaslError },
}

/// The acceptor's side (SaslQuorumAuthServer) of one connection.
#[derive(Debug, Clone)]
pub struct ServerExchange {
    digest: DigestMd5Server,
}

impl ServerExchange {
    /// `nonce_bytes`: fresh random bytes (16 or more).
    pub fn new(nonce_bytes: &[u8]) -> Self {
        ServerExchange { digest: DigestMd5Server::for_service(nonce_bytes, Service::QUORUM) }
    }

    pub fn on_packet(&mut self, packet: &QuorumAuthPacket, users: &Credentials) -> ServerStep {
        let error = |error: SaslError| ServerStep::Failed {
            reply: QuorumAuthPacket::new(Status::Error, Some(Vec::new())).encode(),
            error,
        };
        // Apache reads only the token; a null one fails in Java's evaluateResponse.
        let Some(token) = &packet.token else { return error(SaslError::Malformed("a null token".into())) };
        match self.digest.step(token, |user| users.password_of(user)) {
            Ok(Step::Challenge(challenge)) => {
                ServerStep::Continue { reply: QuorumAuthPacket::new(Status::InProgress, Some(challenge)).encode() }
            }
            Ok(Step::Authenticated { token, user }) => {
                ServerStep::Authenticated { reply: QuorumAuthPacket::new(Status::Success, Some(token)).encode(), user }
            }
            Err(e) => error(e),
        }
    }
}

/// A JAAS section's login modules, or an error naming the file, the
/// zoo.cfg key that picked the section and what the file has.
fn section<'a>(
    sections: &'a [jaas::Section],
    source: &str,
    name: &str,
    key: &str,
) -> Result<&'a jaas::Section, String> {
    let Some(found) = sections.iter().find(|s| s.name == name) else {
        let names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("{source}: no JAAS section named {name:?} ({key}); the file has {names:?}"));
    };
    if let Some(module) = found.modules.iter().find(|m| m.class.contains("Krb5LoginModule")) {
        return Err(format!(
            "{source}:{}: {}: quorum SASL mechanism GSSAPI (Kerberos) is not supported by zoocore (only DIGEST-MD5 with {DIGEST_LOGIN_MODULE})",
            module.line, module.class
        ));
    }
    Ok(found)
}

/// The learner's `username` and `password` from section `name` of a JAAS
/// file's text (`quorum.auth.learner.saslLoginContext`).
pub fn learner_login_from_jaas(text: &str, source: &str, name: &str) -> Result<LearnerLogin, String> {
    let sections = jaas::parse(text).map_err(|e| format!("{source}:{}: {}", e.line, e.message))?;
    let found = section(&sections, source, name, "quorum.auth.learner.saslLoginContext")?;
    let option =
        |key: &str| found.modules.iter().flat_map(|m| m.options.iter()).find(|(k, _)| k == key).map(|(_, v)| v.clone());
    match (option("username"), option("password")) {
        (Some(username), Some(password)) if !username.is_empty() => Ok(LearnerLogin { username, password }),
        _ => Err(format!(
            "{source}:{}: section {name} needs username=\"...\" and password=\"...\" for quorum SASL",
            found.line
        )),
    }
}

/// The `user_NAME="password"` users of section `name`
/// (`quorum.auth.server.saslLoginContext`).
pub fn server_users_from_jaas(text: &str, source: &str, name: &str) -> Result<Credentials, String> {
    let sections = jaas::parse(text).map_err(|e| format!("{source}:{}: {}", e.line, e.message))?;
    let found = section(&sections, source, name, "quorum.auth.server.saslLoginContext")?;
    let users: BTreeMap<String, String> = found
        .modules
        .iter()
        .flat_map(|m| m.options.iter())
        .filter_map(|(k, v)| k.strip_prefix("user_").map(|user| (user.to_owned(), v.clone())))
        .collect();
    if users.is_empty() {
        return Err(format!(
            "{source}:{}: section {name} has no user_NAME=\"password\" option, so no learner could authenticate",
            found.line
        ));
    }
    Ok(Credentials::new(users, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAAS: &str = "QuorumServer {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_zk=\"zk-secret\";\n};\n\
                        QuorumLearner {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n username=\"zk\"\n password=\"zk-secret\";\n};\n";

    fn decode_one(bytes: &[u8]) -> QuorumAuthPacket {
        let (p, used) = QuorumAuthPacket::decode(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        p
    }

    /// Runs a learner against a server; the learner's outcome and the server's.
    fn exchange(login: LearnerLogin, users: &Credentials) -> (Result<LearnerStep, QuorumAuthError>, ServerStep) {
        let (mut learner, mut to_server) = LearnerExchange::start(login, &[9u8; 16]);
        let mut server = ServerExchange::new(&[4u8; 24]);
        loop {
            let step = server.on_packet(&decode_one(&to_server), users);
            let reply = match &step {
                ServerStep::Continue { reply }
                | ServerStep::Authenticated { reply, .. }
                | ServerStep::Failed { reply, .. } => reply.clone(),
            };
            let learner_step = learner.on_packet(&decode_one(&reply));
            match (learner_step, step) {
                (Ok(LearnerStep::Send(next)), ServerStep::Continue { .. }) => to_server = next,
                (outcome, step) => return (outcome, step),
            }
        }
    }

    #[test]
    fn the_magic_is_apaches_negated_literal() {
        assert_eq!(QUORUM_AUTH_MAGIC, (0xa0db_cafe_cafe_1234u64 as i64).wrapping_neg());
        assert_eq!(
            &QuorumAuthPacket::new(Status::InProgress, None).encode()[..8],
            &[0x5f, 0x24, 0x35, 0x01, 0x35, 0x01, 0xed, 0xcc]
        );
    }

    #[test]
    fn packets_round_trip_and_partial_input_waits() {
        for p in [
            QuorumAuthPacket::new(Status::InProgress, Some(Vec::new())),
            QuorumAuthPacket::new(Status::Success, Some(b"rspauth=00".to_vec())),
            QuorumAuthPacket::new(Status::Error, None),
            QuorumAuthPacket { status: 7, token: Some(vec![1, 2, 3]) },
        ] {
            let bytes = p.encode();
            assert_eq!(decode_one(&bytes), p);
            for cut in 0..bytes.len() {
                assert_eq!(QuorumAuthPacket::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
            }
            let mut two = bytes.clone();
            two.extend_from_slice(&bytes);
            assert_eq!(QuorumAuthPacket::decode(&two).unwrap().unwrap().1, bytes.len());
        }
        assert_eq!(Status::from_wire(7), Status::Error);
    }

    #[test]
    fn bad_magic_and_lengths_are_refused() {
        // A QuorumPacket (FOLLOWERINFO = 11) is no auth packet, told by its first 8 bytes.
        let follower_info = [0, 0, 0, 11, 0, 0, 0, 0];
        assert_eq!(starts_with_auth_magic(&follower_info), Some(false));
        assert_eq!(starts_with_auth_magic(&follower_info[..7]), None);
        assert!(matches!(QuorumAuthPacket::decode(&follower_info), Err(PacketError::BadMagic(_))));
        let mut p = QuorumAuthPacket::new(Status::InProgress, None).encode();
        for len in [-2i32, (TOKEN_MAX_BYTES + 1) as i32, i32::MAX, i32::MIN] {
            p[12..16].copy_from_slice(&len.to_be_bytes());
            assert_eq!(QuorumAuthPacket::decode(&p), Err(PacketError::BadTokenLength(len)));
        }
    }

    #[test]
    fn right_credentials_authenticate_both_ways() {
        let login = learner_login_from_jaas(JAAS, "/j.conf", "QuorumLearner").unwrap();
        let users = server_users_from_jaas(JAAS, "/j.conf", "QuorumServer").unwrap();
        let (learner, server) = exchange(login, &users);
        assert_eq!(learner, Ok(LearnerStep::Authenticated));
        assert!(matches!(server, ServerStep::Authenticated { ref user, .. } if user == "zk"), "{server:?}");
    }

    #[test]
    fn a_wrong_password_or_unknown_user_is_refused_with_error() {
        let users = server_users_from_jaas(JAAS, "/j.conf", "QuorumServer").unwrap();
        for (user, password) in [("zk", "wrong"), ("nobody", "zk-secret")] {
            let (learner, server) = exchange(LearnerLogin { username: user.into(), password: password.into() }, &users);
            assert_eq!(learner, Err(QuorumAuthError::Refused), "{user}");
            assert!(matches!(server, ServerStep::Failed { .. }), "{server:?}");
        }
    }

    #[test]
    fn the_learner_checks_rspauth_and_the_order() {
        let login = LearnerLogin { username: "zk".into(), password: "zk-secret".into() };
        let users = server_users_from_jaas(JAAS, "/j.conf", "QuorumServer").unwrap();
        let (mut learner, first) = LearnerExchange::start(login.clone(), &[1u8; 16]);
        let mut server = ServerExchange::new(&[2u8; 24]);
        let ServerStep::Continue { reply } = server.on_packet(&decode_one(&first), &users) else { panic!() };
        let LearnerStep::Send(response) = learner.on_packet(&decode_one(&reply)).unwrap() else { panic!() };
        assert!(String::from_utf8_lossy(&response).contains("digest-uri=\"zookeeper-quorum/zk-quorum-sasl-md5\""));
        let forged = QuorumAuthPacket::new(Status::Success, Some(b"rspauth=0123456789abcdef0123456789abcdef".to_vec()));
        assert!(matches!(learner.on_packet(&forged), Err(QuorumAuthError::Sasl(_))));
        let (mut early, _) = LearnerExchange::start(login, &[1u8; 16]);
        let success = QuorumAuthPacket::new(Status::Success, Some(Vec::new()));
        assert!(matches!(early.on_packet(&success), Err(QuorumAuthError::OutOfSequence(_))));
        assert!(matches!(early.on_packet(&success), Err(QuorumAuthError::OutOfSequence(_))));
        // A client-port challenge (realm zk-sasl-md5) is answered with the
        // quorum's digest-uri, which the client-port server refuses.
        let mut client_port = DigestMd5Server::new(&[3u8; 24]);
        let Ok(Step::Challenge(challenge)) = client_port.step(b"", |_| None) else { panic!() };
        let (response, _) =
            digest_md5::client_response_for(Service::QUORUM, &challenge, "zk", "zk-secret", "c").unwrap();
        assert!(client_port.step(&response, |_| Some("zk-secret".into())).is_err());
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn packet() -> impl Strategy<Value = QuorumAuthPacket> {
            (any::<i32>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)))
                .prop_map(|(status, token)| QuorumAuthPacket { status, token })
        }

        proptest! {
            /// A stream of packets cut anywhere decodes to the same packets,
            /// each taken whole once its last byte is in.
            #[test]
            fn any_chunking_of_a_packet_stream_decodes_the_same(
                packets in proptest::collection::vec(packet(), 0..6),
                cuts in proptest::collection::vec(1usize..64, 0..40),
            ) {
                let stream: Vec<u8> = packets.iter().flat_map(QuorumAuthPacket::encode).collect();
                let (mut buf, mut got, mut at) = (Vec::new(), Vec::new(), 0);
                let mut cuts = cuts.into_iter().chain(std::iter::repeat(7));
                while at < stream.len() {
                    let n = cuts.next().unwrap_or(7).min(stream.len() - at);
                    buf.extend_from_slice(&stream[at..at + n]);
                    at += n;
                    while let Some((p, used)) = QuorumAuthPacket::decode(&buf).unwrap() {
                        buf.drain(..used);
                        got.push(p);
                    }
                }
                prop_assert!(buf.is_empty());
                prop_assert_eq!(got, packets);
            }

            /// Arbitrary bytes never panic; what decodes is byte-exact.
            #[test]
            fn garbage_never_panics_and_what_decodes_round_trips(
                magic in any::<bool>(),
                bytes in proptest::collection::vec(any::<u8>(), 0..64),
            ) {
                let mut input = if magic { QUORUM_AUTH_MAGIC.to_be_bytes().to_vec() } else { Vec::new() };
                input.extend_from_slice(&bytes);
                if let Ok(Some((p, used))) = QuorumAuthPacket::decode(&input) {
                    prop_assert_eq!(p.encode(), input[..used].to_vec());
                }
                let users = Credentials::new([("zk".to_owned(), "zk-secret".to_owned())].into(), None);
                let mut server = ServerExchange::new(&[1u8; 16]);
                let p = QuorumAuthPacket { status: 0, token: Some(bytes.clone()) };
                let _ = server.on_packet(&p, &users);
                let _ = server.on_packet(&p, &users);
                let (mut learner, _) = LearnerExchange::start(LearnerLogin { username: "zk".into(), password: "p".into() }, &[2u8; 16]);
                let _ = learner.on_packet(&p);
                let _ = learner.on_packet(&QuorumAuthPacket { status: 1, token: Some(bytes) });
            }
        }
    }

    #[test]
    fn jaas_sections_and_their_errors() {
        let e = learner_login_from_jaas(JAAS, "/j.conf", "Learner2").unwrap_err();
        assert!(e.contains("no JAAS section named \"Learner2\"") && e.contains("saslLoginContext"), "{e}");
        let e = learner_login_from_jaas("QuorumLearner { a.B required username=\"x\"; };", "/j.conf", "QuorumLearner")
            .unwrap_err();
        assert!(e.starts_with("/j.conf:1:") && e.contains("password"), "{e}");
        let e = server_users_from_jaas("QuorumServer { a.B required; };", "/j.conf", "QuorumServer").unwrap_err();
        assert!(e.contains("no user_NAME"), "{e}");
        let krb = "QuorumServer {\n com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};";
        let e = server_users_from_jaas(krb, "/j.conf", "QuorumServer").unwrap_err();
        assert!(e.starts_with("/j.conf:2:") && e.contains("GSSAPI"), "{e}");
    }
}
