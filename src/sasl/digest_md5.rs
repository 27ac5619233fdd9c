//! DIGEST-MD5 (RFC 2831), server side, as Java's SaslServer runs it for
//! ZooKeeper: protocol `zookeeper`, server name and realm `zk-sasl-md5`,
//! qop `auth` only (no integrity or confidentiality layer), algorithm
//! md5-sess. Sans-IO: the nonce comes in from the caller (the connection
//! draws it from the OS), passwords through a lookup function.
//!
//! The exchange over ZooKeeper's SASL request (op 102):
//! 1. client: empty token; server: the challenge (realm, nonce, qop, ...).
//! 2. client: the digest response; server: `rspauth=...` and the exchange is
//!    complete, the client authenticated as its username.

use std::fmt;

use md5::{Digest, Md5};

pub const REALM: &str = "zk-sasl-md5";
pub const PROTOCOL: &str = "zookeeper";
/// The digest-uri a ZooKeeper client must send (`protocol/server-name`).
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";

/// The protocol and server name an exchange runs under: they make the
/// realm the server offers and the digest-uri a client must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub protocol: &'static str,
    /// Also the realm (Java's DIGEST-MD5 server offers its server name).
    pub server_name: &'static str,
}

impl Service {
    /// The client port (Apache's ZooKeeperSaslServer).
    pub const CLIENT_PORT: Service = Service { protocol: PROTOCOL, server_name: REALM };
    /// Between servers (Apache's QuorumAuth: `zookeeper-quorum`, `zk-quorum-sasl-md5`).
    pub const QUORUM: Service = Service { protocol: "zookeeper-quorum", server_name: "zk-quorum-sasl-md5" };

    /// `protocol/server-name`, the digest-uri a client sends.
    pub fn digest_uri(&self) -> String {
        format!("{}/{}", self.protocol, self.server_name)
    }
}
/// A response longer than this is refused before parsing (RFC 2831 caps it
/// at 4096 bytes).
pub const MAX_RESPONSE_LEN: usize = 4096;

/// Why an exchange failed. The client is told only AuthFailed; this goes to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// A first token that is not DIGEST-MD5's empty one: `mechanism` is our
    /// guess at what the client speaks.
    UnsupportedMechanism {
        mechanism: &'static str,
    },
    Malformed(String),
    UnknownUser(String),
    WrongPassword(String),
    /// A token after the exchange finished or failed.
    OutOfSequence,
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::UnsupportedMechanism { mechanism } => {
                write!(f, "SASL mechanism {mechanism} is not supported by zoocore (it serves DIGEST-MD5 only)")
            }
            SaslError::Malformed(why) => write!(f, "DIGEST-MD5: malformed response: {why}"),
            SaslError::UnknownUser(user) => write!(f, "DIGEST-MD5: no such user {user:?} in the JAAS Server section"),
            SaslError::WrongPassword(user) => write!(f, "DIGEST-MD5: wrong password for user {user:?}"),
            SaslError::OutOfSequence => write!(f, "DIGEST-MD5: token after the exchange ended"),
        }
    }
}

impl std::error::Error for SaslError {}

/// What one client token yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this token and wait for the next one.
    Challenge(Vec<u8>),
    /// Send this token (`rspauth`); the client is authenticated as `user`.
    Authenticated { token: Vec<u8>, user: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Start,
    ChallengeSent,
    Done,
}

/// One connection's DIGEST-MD5 exchange.
#[derive(Debug, Clone)]
pub struct DigestMd5Server {
    nonce: String,
    state: State,
    service: Service,
}

impl DigestMd5Server {
    /// `nonce_bytes`: fresh random bytes (16 or more); they become the
    /// nonce as base64, which has no character that needs quoting.
    pub fn new(nonce_bytes: &[u8]) -> Self {
        DigestMd5Server::for_service(nonce_bytes, Service::CLIENT_PORT)
    }

    /// [`DigestMd5Server::new`] under another protocol and server name.
    pub fn for_service(nonce_bytes: &[u8], service: Service) -> Self {
        use base64::Engine;
        let nonce = base64::engine::general_purpose::STANDARD.encode(nonce_bytes);
        DigestMd5Server { nonce, state: State::Start, service }
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the client's next token. `password_of(user)` gives the
    /// password a user must prove, None for an unknown user. After an
    /// error the exchange is over (the connection closes).
    pub fn step(&mut self, token: &[u8], password_of: impl Fn(&str) -> Option<String>) -> Result<Step, SaslError> {
        match self.state {
            State::Start => {
                if !token.is_empty() {
                    self.state = State::Done;
                    return Err(SaslError::UnsupportedMechanism { mechanism: guess_mechanism(token) });
                }
                self.state = State::ChallengeSent;
                Ok(Step::Challenge(self.challenge().into_bytes()))
            }
            State::ChallengeSent => {
                self.state = State::Done;
                let response = parse_response(token)?;
                self.verify(&response, password_of)
            }
            State::Done => Err(SaslError::OutOfSequence),
        }
    }

    fn challenge(&self) -> String {
        format!(
            "realm=\"{}\",nonce=\"{}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess",
            self.service.server_name, self.nonce
        )
    }

    fn verify(&self, r: &DigestResponse, password_of: impl Fn(&str) -> Option<String>) -> Result<Step, SaslError> {
        let bad = |why: String| Err(SaslError::Malformed(why));
        if r.nonce != self.nonce {
            return bad("nonce is not the one this server sent".into());
        }
        if r.nc != 1 {
            return bad(format!("nc is {:08x}, expected 00000001 (subsequent authentication is not supported)", r.nc));
        }
        if r.qop != "auth" {
            return bad(format!("qop {:?} was not offered (only auth)", r.qop));
        }
        let digest_uri = self.service.digest_uri();
        if !r.digest_uri.eq_ignore_ascii_case(&digest_uri) {
            return bad(format!("digest-uri {:?} is not {digest_uri:?}", r.digest_uri));
        }
        let realm = self.service.server_name;
        if !r.realm.is_empty() && r.realm != realm {
            return bad(format!("realm {:?} was not offered ({realm:?})", r.realm));
        }
        let Some(password) = password_of(&r.username) else {
            return Err(SaslError::UnknownUser(r.username.clone()));
        };
        let expected = response_value(r, &password, "AUTHENTICATE");
        if !constant_time_eq(expected.as_bytes(), r.response.as_bytes()) {
            return Err(SaslError::WrongPassword(r.username.clone()));
        }
        let rspauth = response_value(r, &password, "");
        Ok(Step::Authenticated { token: format!("rspauth={rspauth}").into_bytes(), user: r.username.clone() })
    }
}

/// A non-empty first token: GSS-API tokens start with the ASN.1
/// application tag 0x60 (RFC 2743 3.1); anything else is unknown.
fn guess_mechanism(token: &[u8]) -> &'static str {
    if token.first() == Some(&0x60) {
        "GSSAPI (Kerberos)"
    } else {
        "other than DIGEST-MD5 (a non-empty first token)"
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Strings in the hash are UTF-8 when the client said charset=utf-8,
/// otherwise ISO 8859-1 (RFC 2831 2.1.2.1); a character outside 8859-1
/// falls back to UTF-8.
fn encode(text: &str, utf8: bool) -> Vec<u8> {
    if !utf8 && text.chars().all(|c| (c as u32) < 256) {
        text.chars().map(|c| c as u8).collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// The `response` value (a2_prefix "AUTHENTICATE") or the `rspauth` value
/// (a2_prefix ""), RFC 2831 2.1.2.1 with qop=auth.
fn response_value(r: &DigestResponse, password: &str, a2_prefix: &str) -> String {
    let mut user_key = Md5::new();
    user_key.update(encode(&r.username, r.utf8));
    user_key.update(b":");
    user_key.update(encode(&r.realm, r.utf8));
    user_key.update(b":");
    user_key.update(encode(password, r.utf8));
    let mut a1 = user_key.finalize().to_vec();
    a1.extend_from_slice(format!(":{}:{}", r.nonce, r.cnonce).as_bytes());
    if let Some(authzid) = &r.authzid {
        a1.push(b':');
        a1.extend_from_slice(authzid.as_bytes());
    }
    let ha1 = hex(&Md5::digest(&a1));
    let ha2 = hex(&Md5::digest(format!("{a2_prefix}:{}", r.digest_uri).as_bytes()));
    let kd = format!("{ha1}:{}:{:08x}:{}:{}:{ha2}", r.nonce, r.nc, r.cnonce, r.qop);
    hex(&Md5::digest(kd.as_bytes()))
}

/// The directives of a client's digest-response that the server uses.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    /// Empty when the client sent none.
    pub realm: String,
    pub nonce: String,
    pub cnonce: String,
    pub nc: u32,
    /// `auth` when the client sent none.
    pub qop: String,
    pub digest_uri: String,
    /// 32 lower-case hex digits.
    pub response: String,
    pub authzid: Option<String>,
    pub utf8: bool,
}

impl fmt::Debug for DigestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestResponse")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .field("digest_uri", &self.digest_uri)
            .field("qop", &self.qop)
            .finish_non_exhaustive()
    }
}

/// Splits `key=value, key="quoted \" value", ...` (RFC 2831 7.1: empty
/// list elements and linear white space allowed) into raw pairs.
pub fn parse_directives(input: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if input.len() > MAX_RESPONSE_LEN {
        return Err(format!("{} bytes, more than {MAX_RESPONSE_LEN}", input.len()));
    }
    let mut out = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < input.len() && matches!(input[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i == input.len() {
            return Ok(out);
        }
        if input[i] == b',' {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < input.len() && is_token_byte(input[i]) {
            i += 1;
        }
        if i == key_start {
            return Err(format!("expected a directive name at byte {i}"));
        }
        let key = String::from_utf8_lossy(&input[key_start..i]).to_ascii_lowercase();
        skip_space(&mut i);
        if input.get(i) != Some(&b'=') {
            return Err(format!("expected '=' after {key}"));
        }
        i += 1;
        skip_space(&mut i);
        let mut value = Vec::new();
        if input.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match input.get(i) {
                    None => return Err(format!("unterminated quoted value of {key}")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => match input.get(i + 1) {
                        Some(&c) => {
                            value.push(c);
                            i += 2;
                        }
                        None => return Err(format!("unterminated quoted value of {key}")),
                    },
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            let start = i;
            while i < input.len() && is_token_byte(input[i]) {
                i += 1;
            }
            value.extend_from_slice(&input[start..i]);
        }
        out.push((key, value));
        skip_space(&mut i);
        match input.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => {
                return Err(format!("expected ',' after the value of {}", out.last().map_or("", |p| p.0.as_str())))
            }
        }
    }
}

/// RFC 2616 token characters.
fn is_token_byte(b: u8) -> bool {
    b > 32 && b < 127 && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

/// Parses a client's digest-response (RFC 2831 2.1.2).
pub fn parse_response(input: &[u8]) -> Result<DigestResponse, SaslError> {
    let bad = |why: String| SaslError::Malformed(why);
    let pairs = parse_directives(input).map_err(bad)?;
    let mut seen: Vec<&str> = Vec::new();
    for (key, _) in &pairs {
        if seen.contains(&key.as_str()) {
            return Err(bad(format!("directive {key} given twice")));
        }
        seen.push(key);
    }
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
    let utf8 = match get("charset") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case(b"utf-8") => true,
        Some(v) => return Err(bad(format!("charset {:?} (only utf-8 may be named)", String::from_utf8_lossy(v)))),
    };
    let text = |name: &str, value: &[u8]| -> Result<String, SaslError> {
        if utf8 {
            String::from_utf8(value.to_vec()).map_err(|_| bad(format!("{name} is not UTF-8")))
        } else {
            Ok(value.iter().map(|&b| b as char).collect())
        }
    };
    let required = |name: &str| -> Result<String, SaslError> {
        let value = get(name).ok_or_else(|| bad(format!("no {name}")))?;
        text(name, value)
    };
    let nc_text = required("nc")?;
    if nc_text.len() != 8 {
        return Err(bad(format!("nc {nc_text:?} is not 8 hex digits")));
    }
    let nc = u32::from_str_radix(&nc_text, 16).map_err(|_| bad(format!("nc {nc_text:?} is not 8 hex digits")))?;
    let response = required("response")?.to_ascii_lowercase();
    if response.len() != 32 || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("response is not 32 hex digits".into()));
    }
    let authzid = match get("authzid") {
        Some(v) => Some(text("authzid", v)?),
        None => None,
    };
    let username = required("username")?;
    if username.is_empty() {
        return Err(bad("empty username".into()));
    }
    Ok(DigestResponse {
        username,
        realm: match get("realm") {
            Some(v) => text("realm", v)?,
            None => String::new(),
        },
        nonce: required("nonce")?,
        cnonce: required("cnonce")?,
        nc,
        qop: match get("qop") {
            Some(v) => text("qop", v)?,
            None => "auth".into(),
        },
        digest_uri: required("digest-uri")?,
        response,
        authzid,
        utf8,
    })
}

/// The client side, for tests and the project's client: the response to
/// `challenge` for `user`/`password` with the client nonce `cnonce`, and
/// the `rspauth` value the server must answer with.
pub fn client_response(
    challenge: &[u8],
    user: &str,
    password: &str,
    cnonce: &str,
) -> Result<(Vec<u8>, String), String> {
    client_response_for(Service::CLIENT_PORT, challenge, user, password, cnonce)
}

/// [`client_response`] under `service` (its digest-uri). Refuses a
/// challenge that offers no qop `auth` or another algorithm than md5-sess,
/// as Java's DIGEST-MD5 client does.
pub fn client_response_for(
    service: Service,
    challenge: &[u8],
    user: &str,
    password: &str,
    cnonce: &str,
) -> Result<(Vec<u8>, String), String> {
    let pairs = parse_directives(challenge)?;
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let nonce = get("nonce").ok_or("challenge has no nonce")?;
    let realm = get("realm").unwrap_or_default();
    if get("algorithm").as_deref() != Some("md5-sess") {
        return Err("challenge has no algorithm=md5-sess".into());
    }
    if let Some(qop) = get("qop") {
        if !qop.split(',').any(|q| q.trim() == "auth") {
            return Err(format!("challenge offers qop {qop:?}, not auth"));
        }
    }
    let digest_uri = service.digest_uri();
    let r = DigestResponse {
        username: user.into(),
        realm,
        nonce,
        cnonce: cnonce.into(),
        nc: 1,
        qop: "auth".into(),
        digest_uri: digest_uri.clone(),
        response: String::new(),
        authzid: None,
        utf8: true,
    };
    let response = response_value(&r, password, "AUTHENTICATE");
    let rspauth = response_value(&r, password, "");
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let token = format!(
        "charset=utf-8,username=\"{}\",realm=\"{}\",nonce=\"{}\",nc=00000001,cnonce=\"{}\",digest-uri=\"{digest_uri}\",maxbuf=65536,response={response},qop=auth",
        quote(user),
        quote(&r.realm),
        quote(&r.nonce),
        quote(cnonce)
    );
    Ok((token.into_bytes(), rspauth))
}

/// The client's last step: the server's `rspauth=...` token must carry
/// `expected` (from [`client_response_for`]), which proves the server knows
/// the password too.
pub fn check_rspauth(token: &[u8], expected: &str) -> Result<(), String> {
    let pairs = parse_directives(token)?;
    let Some((_, got)) = pairs.iter().find(|(k, _)| k == "rspauth") else {
        return Err("the server's last token has no rspauth".into());
    };
    if !constant_time_eq(got, expected.as_bytes()) {
        return Err("the server's rspauth is wrong (it does not know this user's password)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Option<String> {
        match name {
            "alice" => Some("alice-secret".into()),
            "jöe" => Some("pässword".into()),
            _ => None,
        }
    }

    fn run(user: &str, password: &str) -> Result<Step, SaslError> {
        let mut server = DigestMd5Server::new(&[7u8; 24]);
        let Step::Challenge(challenge) = server.step(b"", users).unwrap() else { panic!("no challenge") };
        let (token, _) = client_response(&challenge, user, password, "Q2xpZW50Tm9uY2U").unwrap();
        server.step(&token, users)
    }

    /// RFC 2831 section 4's example, with its imap digest-uri: the expected
    /// response value is the one printed there.
    #[test]
    fn rfc_2831_example_response() {
        let r = DigestResponse {
            username: "chris".into(),
            realm: "elwood.innosoft.com".into(),
            nonce: "OA6MG9tEQGm2hh".into(),
            cnonce: "OA6MHXh6VqTrRk".into(),
            nc: 1,
            qop: "auth".into(),
            digest_uri: "imap/elwood.innosoft.com".into(),
            response: String::new(),
            authzid: None,
            utf8: false,
        };
        assert_eq!(response_value(&r, "secret", "AUTHENTICATE"), "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(response_value(&r, "secret", ""), "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn right_password_authenticates_and_rspauth_matches() {
        let mut server = DigestMd5Server::new(&[1u8; 24]);
        let Step::Challenge(challenge) = server.step(b"", users).unwrap() else { panic!() };
        let text = String::from_utf8(challenge.clone()).unwrap();
        assert!(text.starts_with("realm=\"zk-sasl-md5\",nonce=\""), "{text}");
        assert!(text.contains("qop=\"auth\"") && text.contains("algorithm=md5-sess"));
        let (token, rspauth) = client_response(&challenge, "alice", "alice-secret", "abc").unwrap();
        let step = server.step(&token, users).unwrap();
        assert_eq!(
            step,
            Step::Authenticated { token: format!("rspauth={rspauth}").into_bytes(), user: "alice".into() }
        );
        assert!(server.is_complete());
        assert_eq!(server.step(b"", users), Err(SaslError::OutOfSequence));
        assert!(matches!(run("jöe", "pässword"), Ok(Step::Authenticated { .. })));
    }

    #[test]
    fn wrong_password_and_unknown_user_fail() {
        assert_eq!(run("alice", "nope"), Err(SaslError::WrongPassword("alice".into())));
        assert_eq!(run("mallory", "x"), Err(SaslError::UnknownUser("mallory".into())));
    }

    #[test]
    fn gssapi_first_token_is_named() {
        let mut server = DigestMd5Server::new(&[0u8; 16]);
        let e = server.step(&[0x60, 0x82, 0x01], users).unwrap_err();
        assert!(e.to_string().contains("GSSAPI"), "{e}");
    }

    #[test]
    fn checks_nonce_uri_qop_and_nc() {
        let mut server = DigestMd5Server::new(&[2u8; 24]);
        let Step::Challenge(challenge) = server.step(b"", users).unwrap() else { panic!() };
        let (token, _) = client_response(&challenge, "alice", "alice-secret", "c").unwrap();
        let token = String::from_utf8(token).unwrap();
        for (from, to) in [
            ("nc=00000001", "nc=00000002"),
            ("qop=auth", "qop=auth-conf"),
            ("zookeeper/zk-sasl-md5", "imap/zk-sasl-md5"),
            ("realm=\"zk-sasl-md5\"", "realm=\"other\""),
        ] {
            let mut s = server.clone();
            let e = s.step(token.replace(from, to).as_bytes(), users).unwrap_err();
            assert!(matches!(e, SaslError::Malformed(_)), "{to}: {e}");
        }
        let mut other_nonce = DigestMd5Server::new(&[3u8; 24]);
        other_nonce.step(b"", users).unwrap();
        assert!(matches!(other_nonce.step(token.as_bytes(), users), Err(SaslError::Malformed(_))));
    }

    #[test]
    fn directive_syntax() {
        let pairs = parse_directives(b" , a=b ,c=\"d,\\\"e\" ,,f = g").unwrap();
        assert_eq!(
            pairs,
            vec![("a".into(), b"b".to_vec()), ("c".into(), b"d,\"e".to_vec()), ("f".into(), b"g".to_vec())]
        );
        for bad in [&b"a"[..], b"a=\"b", b"=b", b"a=b c=d", b"a=\"b\\"] {
            assert!(parse_directives(bad).is_err(), "{bad:?}");
        }
        assert!(parse_directives(&vec![b'a'; MAX_RESPONSE_LEN + 1]).is_err());
        assert!(matches!(parse_response(b"username=a,username=b"), Err(SaslError::Malformed(_))));
    }
}
