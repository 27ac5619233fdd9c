//! Quorum SASL on the wire (`quorum.auth.*`): runs `sasl::quorum`'s
//! exchanges over an election or learner connection, as Apache's
//! SaslQuorumAuthLearner (the dialler, after its preamble on the election
//! port, first thing on the quorum port) and SaslQuorumAuthServer (the
//! acceptor) do.
//!
//! Owns nothing but the loaded credentials; `QuorumTransport` carries them
//! to `election_net` and `quorum_net`, which call [`QuorumSasl::authenticate_to`]
//! on a dialled connection and [`QuorumSasl::authenticate_peer`] on an
//! accepted one. Nonces come from the OS here; every exchange is bounded
//! by [`QUORUM_SASL_TIMEOUT`]; nothing a peer sends can do more than close
//! its own connection.
//!
//! As Apache: with `learnerRequireSasl=false` the dialler does not try at
//! all; with `serverRequireSasl=false` an acceptor lets through a peer that
//! does not try (its first 8 bytes are not the magic) and one that fails
//! (after telling it ERROR, which makes an Apache or zoocore learner close).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::QuorumSaslConfig;
use crate::sasl::quorum::{
    learner_login_from_jaas, server_users_from_jaas, starts_with_auth_magic, LearnerExchange, LearnerLogin,
    LearnerStep, QuorumAuthError, QuorumAuthPacket, ServerExchange, ServerStep, PACKET_HEADER_BYTES,
};
use crate::sasl::Credentials;

/// How long one quorum SASL exchange may take before the connection is dropped.
pub const QUORUM_SASL_TIMEOUT: Duration = Duration::from_secs(10);
/// Random bytes in a nonce (base64 on the wire).
const NONCE_BYTES: usize = 24;
/// Bytes read from the socket per call during an exchange.
const READ_CHUNK_BYTES: usize = 4096;

/// The quorum SASL settings and credentials, shared by every quorum connection.
pub struct QuorumSasl {
    learner_require_sasl: bool,
    server_require_sasl: bool,
    login: LearnerLogin,
    users: Credentials,
}

impl std::fmt::Debug for QuorumSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumSasl")
            .field("learner_require_sasl", &self.learner_require_sasl)
            .field("server_require_sasl", &self.server_require_sasl)
            .field("login", &self.login)
            .field("users", &self.users)
            .finish()
    }
}

/// How an accepted peer got through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAuth {
    /// It authenticated as this user.
    Authenticated(String),
    /// It did not try, or failed, and `serverRequireSasl` is false.
    LetThrough(String),
}

impl QuorumSasl {
    /// None unless `quorum.auth.enableSasl`; otherwise reads both JAAS
    /// sections (Apache needs both at start-up too). Errors name the file,
    /// line and key.
    pub fn load(cfg: &QuorumSaslConfig, jaas_path: Option<&str>) -> Result<Option<Arc<QuorumSasl>>, String> {
        if !cfg.enable_sasl {
            return Ok(None);
        }
        let Some(path) = jaas_path else {
            return Err("quorum.auth.enableSasl is true but no JAAS file is set (java.security.auth.login.config in zoo.cfg, or -Djava.security.auth.login.config= in SERVER_JVMFLAGS)".into());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("java.security.auth.login.config {path}: cannot read: {e}"))?;
        let login = learner_login_from_jaas(&text, path, &cfg.learner_login_context)?;
        let users = server_users_from_jaas(&text, path, &cfg.server_login_context)?;
        tracing::info!(
            jaas = path,
            learner_require_sasl = cfg.learner_require_sasl,
            server_require_sasl = cfg.server_require_sasl,
            learner_user = %login.username,
            users = ?users.user_names().collect::<Vec<_>>(),
            "quorum SASL (DIGEST-MD5) enabled"
        );
        Ok(Some(Arc::new(QuorumSasl {
            learner_require_sasl: cfg.learner_require_sasl,
            server_require_sasl: cfg.server_require_sasl,
            login,
            users,
        })))
    }

    /// The dialler's side, right after its preamble (election port) or
    /// first thing (quorum port): authenticates to `peer`, or does nothing
    /// when `learnerRequireSasl` is false. Reads no byte past the server's
    /// last packet.
    pub async fn authenticate_to<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        peer: SocketAddr,
    ) -> Result<(), String> {
        if !self.learner_require_sasl {
            return Ok(());
        }
        with_timeout(self.learn_exchange(stream))
            .await
            .map_err(|e| format!("quorum SASL authentication to {peer} failed: {e}"))?;
        tracing::debug!(%peer, user = %self.login.username, "authenticated to this server (quorum SASL)");
        Ok(())
    }

    async fn learn_exchange<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: &mut S) -> Result<(), String> {
        let cnonce = random_bytes()?;
        let (mut learner, first) = LearnerExchange::start(self.login.clone(), &cnonce);
        send(stream, &first).await?;
        loop {
            let packet = read_packet_exactly(stream).await?;
            match learner.on_packet(&packet).map_err(|e| e.to_string())? {
                LearnerStep::Send(bytes) => send(stream, &bytes).await?,
                LearnerStep::Authenticated => return Ok(()),
            }
        }
    }

    /// The acceptor's side, after the peer's preamble (election port) or
    /// first thing (quorum port). `pending` holds bytes already read from
    /// the connection; it is left holding the bytes after the exchange,
    /// which belong to the protocol. Err: drop the connection (the reason
    /// names the peer).
    pub async fn authenticate_peer<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        pending: &mut BytesMut,
        peer: SocketAddr,
    ) -> Result<PeerAuth, String> {
        let require = self.server_require_sasl;
        let outcome = with_timeout(self.serve_exchange(stream, pending)).await;
        match outcome {
            Ok(user) => {
                tracing::debug!(%peer, %user, "quorum peer authenticated (quorum SASL)");
                Ok(PeerAuth::Authenticated(user))
            }
            Err(e) if require => Err(format!("quorum SASL authentication of {peer} failed: {e}")),
            Err(e) => {
                tracing::warn!(
                    %peer,
                    reason = %e,
                    "quorum SASL authentication of this peer failed or was not attempted; letting it through (quorum.auth.serverRequireSasl=false)"
                );
                Ok(PeerAuth::LetThrough(e))
            }
        }
    }

    /// Ok(user) when the peer authenticated. A peer that sent no auth
    /// packet leaves `pending` as read; one that failed was sent ERROR.
    async fn serve_exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        pending: &mut BytesMut,
    ) -> io::Result<String> {
        loop {
            match starts_with_auth_magic(pending) {
                Some(true) => break,
                Some(false) => return Err(other(QuorumAuthError::NotAttempted)),
                None => {
                    if read_more(stream, pending).await? == 0 {
                        return Err(other("the connection ended before the learner said whether it authenticates"));
                    }
                }
            }
        }
        let mut server = ServerExchange::new(&random_bytes().map_err(other)?);
        loop {
            let packet = loop {
                match QuorumAuthPacket::decode(pending) {
                    Ok(Some((packet, used))) => {
                        let _ = pending.split_to(used);
                        break packet;
                    }
                    Ok(None) => {
                        if read_more(stream, pending).await? == 0 {
                            return Err(other("the connection ended in the middle of the exchange"));
                        }
                    }
                    Err(e) => {
                        let _ = send(stream, &error_packet()).await;
                        return Err(other(e));
                    }
                }
            };
            match server.on_packet(&packet, &self.users) {
                ServerStep::Continue { reply } => send(stream, &reply).await.map_err(other)?,
                ServerStep::Authenticated { reply, user } => {
                    send(stream, &reply).await.map_err(other)?;
                    return Ok(user);
                }
                ServerStep::Failed { reply, error } => {
                    let _ = send(stream, &reply).await;
                    return Err(other(error));
                }
            }
        }
    }
}

fn error_packet() -> Vec<u8> {
    use crate::sasl::quorum::Status;
    QuorumAuthPacket::new(Status::Error, Some(Vec::new())).encode()
}

fn other(e: impl ToString) -> io::Error {
    io::Error::other(e.to_string())
}

fn random_bytes() -> Result<[u8; NONCE_BYTES], String> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::getrandom(&mut nonce).map_err(|e| format!("cannot draw a nonce from the OS: {e}"))?;
    Ok(nonce)
}

async fn with_timeout<T, E: ToString>(work: impl std::future::Future<Output = Result<T, E>>) -> Result<T, String> {
    futures_lite::future::or(async { work.await.map_err(|e| e.to_string()) }, async {
        glommio::timer::sleep(QUORUM_SASL_TIMEOUT).await;
        Err(format!("no complete exchange within {} s", QUORUM_SASL_TIMEOUT.as_secs()))
    })
    .await
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), String> {
    stream.write_all(bytes).await.map_err(|e| format!("write: {e}"))?;
    stream.flush().await.map_err(|e| format!("write: {e}"))
}

/// Appends what one read returns; 0 at the end of the stream. Reads into
/// its own chunk, so a read cut short by the timeout leaves `buf` as it was
/// (with `serverRequireSasl=false` it goes on to the protocol).
async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> io::Result<usize> {
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// One packet, reading exactly its bytes (the header, then the token), so
/// nothing the peer sends after it is taken from the protocol.
async fn read_packet_exactly<S: AsyncRead + Unpin>(stream: &mut S) -> Result<QuorumAuthPacket, String> {
    let mut buf = vec![0u8; PACKET_HEADER_BYTES];
    let eof = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            "the server closed the connection (does it have quorum.auth.enableSasl=true?)".to_owned()
        } else {
            format!("read: {e}")
        }
    };
    stream.read_exact(&mut buf).await.map_err(eof)?;
    loop {
        match QuorumAuthPacket::decode(&buf) {
            Ok(Some((packet, _))) => return Ok(packet),
            Ok(None) => {
                let len = i32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
                // decode checked the length's range before asking for more.
                let want = PACKET_HEADER_BYTES + usize::try_from(len).map_err(|_| "bad token length".to_owned())?;
                let have = buf.len();
                buf.resize(want, 0);
                stream.read_exact(&mut buf[have..]).await.map_err(eof)?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sasl(learner_require: bool, server_require: bool, password: &str) -> QuorumSasl {
        let users = Credentials::new([("zk".to_owned(), "zk-secret".to_owned())].into(), None);
        QuorumSasl {
            learner_require_sasl: learner_require,
            server_require_sasl: server_require,
            login: LearnerLogin { username: "zk".into(), password: password.into() },
            users,
        }
    }

    /// A learner and a server over a real loopback TCP pair; the server's
    /// outcome and the bytes it had left after the exchange.
    fn run(
        learner: QuorumSasl,
        server: QuorumSasl,
        after: &'static [u8],
    ) -> (Result<(), String>, Result<PeerAuth, String>, Vec<u8>) {
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let dial = glommio::spawn_local(async move {
                    let mut s = glommio::net::TcpStream::connect(addr).await.unwrap();
                    let r = learner.authenticate_to(&mut s, addr).await;
                    if r.is_ok() {
                        s.write_all(after).await.unwrap();
                    }
                    r
                });
                let mut accepted = listener.accept().await.unwrap();
                let mut pending = BytesMut::new();
                let outcome = server.authenticate_peer(&mut accepted, &mut pending, addr).await;
                let learner = dial.await;
                if outcome.is_ok() {
                    while pending.len() < after.len() && read_more(&mut accepted, &mut pending).await.unwrap_or(0) > 0 {
                    }
                }
                (learner, outcome, pending.to_vec())
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn over_tcp_the_right_password_authenticates_and_later_bytes_are_kept() {
        let (learner, server, rest) =
            run(sasl(true, true, "zk-secret"), sasl(true, true, ""), b"\0\0\0\x0bfollowerinfo");
        assert_eq!(learner, Ok(()));
        assert_eq!(server, Ok(PeerAuth::Authenticated("zk".into())));
        assert_eq!(rest, b"\0\0\0\x0bfollowerinfo");
    }

    #[test]
    fn over_tcp_a_wrong_password_is_refused_both_sides() {
        let (learner, server, _) = run(sasl(true, true, "nope"), sasl(true, true, ""), b"");
        assert!(learner.as_ref().is_err_and(|e| e.contains("refused")), "{learner:?}");
        assert!(server.as_ref().is_err_and(|e| e.contains("wrong password")), "{server:?}");
        // serverRequireSasl=false lets it through, but the learner was told ERROR.
        let (learner, server, _) = run(sasl(true, true, "nope"), sasl(true, false, ""), b"");
        assert!(learner.is_err());
        assert!(matches!(server, Ok(PeerAuth::LetThrough(_))), "{server:?}");
    }

    #[test]
    fn over_tcp_a_learner_that_does_not_try_is_let_through_only_when_not_required() {
        // learnerRequireSasl=false: no exchange at all; its bytes stay for the protocol.
        let (learner, server, rest) = run(sasl(false, false, ""), sasl(true, false, ""), b"\0\0\0\x0bfollowerinfo");
        assert_eq!(learner, Ok(()));
        assert!(matches!(server, Ok(PeerAuth::LetThrough(_))), "{server:?}");
        assert_eq!(rest, b"\0\0\0\x0bfollowerinfo");
        let (_, server, _) = run(sasl(false, false, ""), sasl(true, true, ""), b"\0\0\0\x0bfollowerinfo");
        assert!(server.as_ref().is_err_and(|e| e.contains("did not try")), "{server:?}");
    }
}
