//! zoo.cfg parsing (Java properties syntax) into a typed `Config`.
//! Sans-IO except `Config::load`, which only reads the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A zoo.cfg problem, naming the file and (when there is one) the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source_name: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.source_name, line, self.message),
            None => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which four-letter words are enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(BTreeSet<String>),
}

/// Whether a server votes (`participant`) or only follows (`observer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnerRole {
    Participant,
    Observer,
}

impl LearnerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            LearnerRole::Participant => "participant",
            LearnerRole::Observer => "observer",
        }
    }
}

/// A `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: LearnerRole,
    /// The client address after ';': host (None = all interfaces) and port.
    pub client: Option<(Option<IpAddr>, u16)>,
    /// The value as written.
    pub raw: String,
    /// Where it was written (for error messages).
    pub line_no: usize,
}

/// The ensemble this server is a member of: present when zoo.cfg makes it
/// a quorum member as Apache's QuorumPeerConfig decides (more than one
/// voting server, or any server line with `standaloneEnabled=false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// From `dataDir/myid`.
    pub my_id: u64,
    /// Every `server.N` line, sorted by id.
    pub servers: Vec<ServerEntry>,
    /// In ticks: time for a learner to connect to and sync with the leader.
    pub init_limit_ticks: u32,
    /// In ticks: how far a learner may fall behind before it is dropped.
    pub sync_limit_ticks: u32,
    /// `readonlymode.enabled`: serve read-only clients while partitioned.
    pub read_only_enabled: bool,
}

impl QuorumConfig {
    pub fn me(&self) -> Option<&ServerEntry> {
        self.servers.iter().find(|s| s.id == self.my_id)
    }

    pub fn voting_members(&self) -> impl Iterator<Item = &ServerEntry> {
        self.servers.iter().filter(|s| s.role == LearnerRole::Participant)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub tick_time_ms: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_port: u16,
    pub client_port_address: IpAddr,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub jute_max_buffer: usize,
    /// Worker shards; None = one per available core.
    pub shards: Option<usize>,
    pub super_digest: Option<String>,
    pub extended_types_enabled: bool,
    /// `enforceQuota` (`zookeeper.enforceQuota`): hard quota limits refuse
    /// creates and setData with QuotaExceeded.
    pub enforce_quota: bool,
    pub global_outstanding_limit: u32,
    pub snap_count: u64,
    /// `snapshotSizeFactor` (`zookeeper.snapshotSizeFactor`): a leader
    /// DIFFs a learner from its on-disk log only while the txns to replay
    /// are smaller than this fraction of its newest snapshot; negative
    /// turns DIFF from disk off (Apache's rule and default, 0.33).
    pub snapshot_size_factor: f64,
    /// `zookeeper.commitLogCount`: committed txns a leader keeps in memory
    /// to DIFF learners from (at least 500, as Apache).
    pub commit_log_count: usize,
    pub pre_alloc_size_kb: u64,
    /// `fsync.warningthresholdms`: log a warning when a log sync takes longer.
    pub fsync_warning_threshold_ms: u64,
    /// `zoocore.logSync`: `fdatasync` (write, then fdatasync) or `dsync`
    /// (O_DSYNC writes). See docs/storage.md for the measurement behind the default.
    pub log_sync: String,
    pub autopurge_snap_retain_count: u32,
    /// 0 = autopurge disabled.
    pub autopurge_purge_interval_ms: u64,
    pub container_check_interval_ms: u64,
    pub container_max_never_used_interval_ms: u64,
    pub container_max_per_minute: u32,
    pub init_limit: Option<u32>,
    pub sync_limit: Option<u32>,
    pub servers: Vec<ServerEntry>,
    /// `peerType` as written (`participant` or `observer`), if given.
    pub peer_type: Option<LearnerRole>,
    /// `standaloneEnabled` (default true): one server line alone runs standalone.
    pub standalone_enabled: bool,
    /// `readonlymode.enabled` (also `zookeeper.readonlymode.enabled`).
    pub read_only_enabled: bool,
    /// Set by `Config::load` (which reads `dataDir/myid`) when zoo.cfg
    /// describes an ensemble member; None = standalone.
    pub quorum: Option<QuorumConfig>,
    /// Whether zoo.cfg had a `clientPort` line (a server line may give it).
    pub client_port_set: bool,
    /// Whether zoo.cfg had a `clientPortAddress` line.
    pub client_port_address_set: bool,
    /// The file the config came from, for messages.
    pub source_name: String,
    /// Keys zoocore does not interpret, as written (last one wins).
    pub other: BTreeMap<String, String>,
    /// `admin.*`: the AdminServer (HTTP commands), as Apache's JettyAdminServer.
    pub admin: AdminConfig,
    /// `metricsProvider.*`: Some when `metricsProvider.className` names
    /// Apache's PrometheusMetricsProvider.
    pub prometheus: Option<PrometheusConfig>,
    /// The zoo.cfg text as read (the admin command `initial_configuration`);
    /// empty for the embedded default.
    pub initial_text: String,
    /// TLS on the client port and x509 auth (`secureClientPort`, `ssl.*`,
    /// `client.portUnification`); server::tls loads the stores.
    pub client_tls: ClientTlsConfig,
    /// SASL on the client port and auth enforcement (docs/security.md).
    pub sasl: SaslConfig,
    /// TLS on the election and quorum ports (`sslQuorum`, `portUnification`,
    /// `ssl.quorum.*`); server::quorum_tls loads the stores.
    pub quorum_tls: QuorumTlsConfig,
    /// SASL between the servers (`quorum.auth.*`); server::quorum_sasl
    /// reads the JAAS sections.
    pub quorum_sasl: QuorumSaslConfig,
}

/// Apache's quorum SASL keys (QuorumPeerConfig, QuorumAuth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSaslConfig {
    /// `quorum.auth.enableSasl`: authenticate election and learner
    /// connections (as far as the two flags below ask).
    pub enable_sasl: bool,
    /// `quorum.auth.learnerRequireSasl`: when dialling, authenticate (Apache's
    /// learner skips the exchange entirely when this is false).
    pub learner_require_sasl: bool,
    /// `quorum.auth.serverRequireSasl`: an accepted peer that does not
    /// authenticate, or fails to, is dropped; false lets it through.
    pub server_require_sasl: bool,
    /// `quorum.auth.learner.saslLoginContext` (default QuorumLearner).
    pub learner_login_context: String,
    /// `quorum.auth.server.saslLoginContext` (default QuorumServer).
    pub server_login_context: String,
    /// `quorum.auth.kerberos.servicePrincipal`: GSSAPI only, which zoocore
    /// does not have; set with `enableSasl=true` it is refused.
    pub kerberos_service_principal: Option<String>,
    /// `quorum.cnxn.threads.size`: accepted; zoocore's exchanges run as tasks.
    pub cnxn_threads_size: Option<u32>,
}

impl Default for QuorumSaslConfig {
    fn default() -> Self {
        QuorumSaslConfig {
            enable_sasl: false,
            learner_require_sasl: false,
            server_require_sasl: false,
            learner_login_context: crate::sasl::quorum::DEFAULT_LEARNER_LOGIN_CONTEXT.to_owned(),
            server_login_context: crate::sasl::quorum::DEFAULT_SERVER_LOGIN_CONTEXT.to_owned(),
            kerberos_service_principal: None,
            cnxn_threads_size: None,
        }
    }
}

impl QuorumSaslConfig {
    /// Applies one `quorum.auth.*` / `quorum.cnxn.threads.size` key:
    /// Ok(false) when `key` is none of them.
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let flag = || parse_bool(value).ok_or_else(|| "expected true or false".to_owned());
        let context = || {
            if value.is_empty() {
                Err("a JAAS section name".to_owned())
            } else {
                Ok(value.to_owned())
            }
        };
        match key {
            "quorum.auth.enableSasl" => self.enable_sasl = flag()?,
            "quorum.auth.learnerRequireSasl" => self.learner_require_sasl = flag()?,
            "quorum.auth.serverRequireSasl" => self.server_require_sasl = flag()?,
            // Apache's names; the `loginContext` spellings are accepted too.
            "quorum.auth.learner.saslLoginContext" | "quorum.auth.learner.loginContext" => {
                self.learner_login_context = context()?
            }
            "quorum.auth.server.saslLoginContext" | "quorum.auth.server.loginContext" => {
                self.server_login_context = context()?
            }
            "quorum.auth.kerberos.servicePrincipal" => {
                self.kerberos_service_principal = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "quorum.cnxn.threads.size" => {
                self.cnxn_threads_size = Some(parse_num(value).ok_or_else(|| "expected a number".to_owned())?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Apache's QuorumPeerConfig checks, and GSSAPI refused.
    fn check(&self) -> Result<(), String> {
        if !self.enable_sasl && self.server_require_sasl {
            return Err("quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.serverRequireSasl".into());
        }
        if !self.enable_sasl && self.learner_require_sasl {
            return Err("quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.learnerRequireSasl".into());
        }
        if !self.learner_require_sasl && self.server_require_sasl {
            return Err(
                "quorum.auth.learnerRequireSasl is disabled, so cannot enable quorum.auth.serverRequireSasl".into()
            );
        }
        if let (true, Some(principal)) = (self.enable_sasl, &self.kerberos_service_principal) {
            return Err(format!(
                "quorum.auth.kerberos.servicePrincipal={principal}: quorum SASL mechanism GSSAPI (Kerberos) is not supported by zoocore (only DIGEST-MD5); remove the key"
            ));
        }
        Ok(())
    }
}

/// Apache's SASL provider class (`authProvider.N=` this; zoocore's is built in).
pub const SASL_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
/// The schemes zoocore has a provider for (`enforce.auth.schemes` may name these).
pub const AUTH_SCHEMES: &[&str] = &["digest", "ip", "sasl", "x509"];

/// The SASL keys as written; `server::run` reads the JAAS file into
/// `credentials` before the shards start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConfig {
    /// `java.security.auth.login.config`: the JAAS file. Also taken from
    /// `-Djava.security.auth.login.config=` in `SERVER_JVMFLAGS` / `JVMFLAGS`.
    pub jaas_path: Option<String>,
    /// `zookeeper.sasl.serverconfig` (default `Server`): the JAAS section.
    pub server_section: String,
    /// `zookeeper.superUser` and `zookeeper.superUser.*`: SASL ids that get `super`.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`.
    pub super_password: Option<Secret>,
    /// `zookeeper.allowSaslFailedClients`: a failed exchange keeps the connection.
    pub allow_failed_clients: bool,
    /// From `zookeeper.sessionRequireClientSASLAuth=true` (means `sasl`) or
    /// `enforce.auth.enabled=true` + `enforce.auth.schemes`: a connection
    /// holding no id of these schemes gets SessionClosedRequireSaslAuth.
    /// Empty: no enforcement.
    pub enforce_auth_schemes: Vec<String>,
    /// The users, once `server::run` has read the JAAS file.
    pub credentials: Option<std::sync::Arc<crate::sasl::Credentials>>,
}

impl Default for SaslConfig {
    fn default() -> Self {
        SaslConfig {
            jaas_path: None,
            server_section: crate::sasl::DEFAULT_SERVER_SECTION.to_owned(),
            super_users: Vec::new(),
            super_password: None,
            allow_failed_clients: false,
            enforce_auth_schemes: Vec::new(),
            credentials: None,
        }
    }
}

impl SaslConfig {
    /// Whether a failed exchange or a missing one closes the connection
    /// with SessionClosedRequireSaslAuth (Apache's isSaslAuthRequired).
    pub fn sasl_required(&self) -> bool {
        self.enforce_auth_schemes.iter().any(|s| s == "sasl")
    }

    /// Reads the JAAS file (when one is named) into `credentials`. The
    /// error names the file, and the line when it is a syntax error.
    /// `section_optional` (quorum SASL uses the file): a file without the
    /// server section means no SASL on the client port, as in Apache,
    /// rather than an error.
    pub fn load_credentials(&mut self, section_optional: bool) -> Result<(), String> {
        let Some(path) = self.jaas_path.clone() else {
            if self.sasl_required() {
                return Err("SASL authentication is required (sessionRequireClientSASLAuth or enforce.auth.schemes=sasl) but no JAAS file is set (java.security.auth.login.config)".into());
            }
            return Ok(());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("java.security.auth.login.config {path}: cannot read: {e}"))?;
        let has_section = crate::sasl::jaas::parse(&text)
            .map(|sections| sections.iter().any(|s| s.name == self.server_section))
            .unwrap_or(true);
        if section_optional && !has_section && !self.sasl_required() {
            return Ok(());
        }
        let credentials = crate::sasl::Credentials::from_jaas(
            &text,
            &path,
            &self.server_section,
            self.super_password.as_ref().map(|s| s.0.clone()),
        )?;
        self.credentials = Some(std::sync::Arc::new(credentials));
        Ok(())
    }
}

/// `ssl.clientAuth`, as Apache's X509Util.ClientAuth: whether a TLS client
/// must (`need`, Apache's default), may (`want`) or may not (`none`) show a
/// certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Want,
    Need,
}

/// A password from zoo.cfg: compared and passed on, never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "Secret(empty)" } else { "Secret(..)" })
    }
}

/// `ssl.keyStore.*` or `ssl.trustStore.*` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    pub location: Option<String>,
    pub password: Secret,
    /// `*.passwordPath`: a file holding the password (wins over `password`).
    pub password_path: Option<String>,
    /// `*.type` (PEM, PKCS12; JKS and BCFKS are refused when loaded);
    /// None = from the file's extension, as Apache does.
    pub store_type: Option<String>,
}

/// The TLS protocol versions zoocore speaks (rustls has nothing older).
pub const TLS_PROTOCOLS: &[&str] = &["TLSv1.2", "TLSv1.3"];
/// Apache's x509 provider class (`authProvider.N=` this).
pub const X509_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.X509AuthenticationProvider";

/// The client-port TLS keys, with Apache's names and defaults
/// (ClientX509Util, X509Util, NettyServerCnxnFactory). docs/security.md
/// says what each does in zoocore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsConfig {
    /// `secureClientPort`: a second, TLS-only client listener.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress` (default: all interfaces, as Apache).
    pub secure_client_port_address: Option<IpAddr>,
    /// `client.portUnification`: the plain client port takes TLS too.
    pub port_unification: bool,
    pub key_store: StoreSettings,
    pub trust_store: StoreSettings,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`: TLSv1.2 alone, or TLSv1.3 (and TLS) for 1.3 + 1.2.
    pub protocol: Option<String>,
    /// `ssl.enabledProtocols`, split at ','; wins over `protocol`.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites`, Java (IANA) names split at ','.
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.hostnameVerification` (default true): Apache checks server names
    /// only on the client side; the server side accepts it.
    pub hostname_verification: bool,
    /// `ssl.clientHostnameVerification` (default false).
    pub client_hostname_verification: bool,
    /// `ssl.crl` / `ssl.ocsp`: revocation checks (refused when true).
    pub crl: bool,
    pub ocsp: bool,
    /// `ssl.authProvider` (default x509): the scheme TLS clients get.
    pub ssl_auth_provider: Option<String>,
    /// `ssl.context.supplier.class`: a Java class; refused when set.
    pub context_supplier_class: Option<String>,
    /// `X509AuthenticationProvider.superUser`: this subject DN is super.
    pub x509_super_user: Option<String>,
    /// `serverCnxnFactory` as written (zoocore has one connection layer).
    pub server_cnxn_factory: Option<String>,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        ClientTlsConfig {
            secure_client_port: None,
            secure_client_port_address: None,
            port_unification: false,
            key_store: StoreSettings::default(),
            trust_store: StoreSettings::default(),
            client_auth: ClientAuth::Need,
            protocol: None,
            enabled_protocols: None,
            cipher_suites: None,
            hostname_verification: true,
            client_hostname_verification: false,
            crl: false,
            ocsp: false,
            ssl_auth_provider: None,
            context_supplier_class: None,
            x509_super_user: None,
            server_cnxn_factory: None,
        }
    }
}

impl ClientTlsConfig {
    /// Whether any client listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.secure_client_port.is_some() || self.port_unification
    }

    /// Applies one `ssl.*` / TLS key: Ok(false) when `key` is not one of
    /// them, Err with the reason when the value is bad (the caller names
    /// key and line).
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let flag = || parse_bool(value).ok_or_else(|| "expected true or false".to_owned());
        let text = || (!value.is_empty()).then(|| value.to_owned());
        let list = || value.split(',').map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        match key {
            "secureClientPort" => {
                self.secure_client_port = Some(parse_num(value).ok_or_else(|| "expected a port number".to_owned())?)
            }
            "secureClientPortAddress" => {
                self.secure_client_port_address =
                    Some(parse_ip(value).ok_or_else(|| "expected an IP address".to_owned())?)
            }
            "client.portUnification" => self.port_unification = flag()?,
            "serverCnxnFactory" => self.server_cnxn_factory = text(),
            "ssl.keyStore.location" => self.key_store.location = text(),
            "ssl.keyStore.password" => self.key_store.password = Secret(value.to_owned()),
            "ssl.keyStore.passwordPath" => self.key_store.password_path = text(),
            "ssl.keyStore.type" => self.key_store.store_type = text(),
            "ssl.trustStore.location" => self.trust_store.location = text(),
            "ssl.trustStore.password" => self.trust_store.password = Secret(value.to_owned()),
            "ssl.trustStore.passwordPath" => self.trust_store.password_path = text(),
            "ssl.trustStore.type" => self.trust_store.store_type = text(),
            "ssl.clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    // Apache: unset or empty means NEED.
                    "" | "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err("expected none, want or need".to_owned()),
                }
            }
            "ssl.protocol" => {
                if !matches!(value, "TLSv1.2" | "TLSv1.3" | "TLS") {
                    return Err("zoocore speaks TLSv1.2 and TLSv1.3 (TLS means both)".to_owned());
                }
                self.protocol = Some(value.to_owned());
            }
            "ssl.enabledProtocols" => {
                let protocols = list();
                if let Some(p) = protocols.iter().find(|p| !TLS_PROTOCOLS.contains(&p.as_str())) {
                    return Err(format!("{p} is not one zoocore speaks (TLSv1.2, TLSv1.3)"));
                }
                if protocols.is_empty() {
                    return Err("expected a comma list of TLSv1.2, TLSv1.3".to_owned());
                }
                self.enabled_protocols = Some(protocols);
            }
            // Checked against rustls's suites when the stores load (server::tls).
            "ssl.ciphersuites" => self.cipher_suites = Some(list()),
            "ssl.hostnameVerification" => self.hostname_verification = flag()?,
            "ssl.clientHostnameVerification" => self.client_hostname_verification = flag()?,
            "ssl.crl" => self.crl = flag()?,
            "ssl.ocsp" => self.ocsp = flag()?,
            "ssl.authProvider" => self.ssl_auth_provider = text(),
            "ssl.context.supplier.class" => self.context_supplier_class = text(),
            "X509AuthenticationProvider.superUser" => self.x509_super_user = text(),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// The `ssl.quorum.*` keys Apache's QuorumX509Util reads for the election
/// and quorum ports, without the prefix (the rest of the prefix's keys are
/// accepted and ignored).
pub const QUORUM_TLS_KEYS: &[&str] = &[
    "keyStore.location",
    "keyStore.password",
    "keyStore.passwordPath",
    "keyStore.type",
    "trustStore.location",
    "trustStore.password",
    "trustStore.passwordPath",
    "trustStore.type",
    "clientAuth",
    "protocol",
    "enabledProtocols",
    "ciphersuites",
    "hostnameVerification",
    "crl",
    "ocsp",
    "context.supplier.class",
];

/// TLS between the servers (Apache's QuorumPeerConfig `sslQuorum`,
/// `portUnification` and QuorumX509Util's `ssl.quorum.*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumTlsConfig {
    /// `sslQuorum`: election and learner connections are dialled with TLS
    /// and accepted only with TLS (unless `port_unification`).
    pub ssl_quorum: bool,
    /// `portUnification`: the election and quorum listeners take TLS and
    /// plaintext (Apache's UnifiedServerSocket, for rolling upgrades).
    pub port_unification: bool,
    /// The `ssl.quorum.*` settings, in the client port's shape (the same
    /// names after the prefix, with Apache's defaults: clientAuth need,
    /// hostnameVerification true). Its client-port-only fields stay unset.
    pub keys: ClientTlsConfig,
}

impl QuorumTlsConfig {
    /// Whether a quorum listener or dialler speaks TLS (the stores are needed).
    pub fn enabled(&self) -> bool {
        self.ssl_quorum || self.port_unification
    }

    /// Applies `sslQuorum`, `portUnification` or one of [`QUORUM_TLS_KEYS`]:
    /// Ok(false) when `key` is none of them.
    fn apply(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let flag = || parse_bool(value).ok_or_else(|| "expected true or false".to_owned());
        match key {
            "sslQuorum" => self.ssl_quorum = flag()?,
            "portUnification" => self.port_unification = flag()?,
            k => match k.strip_prefix("ssl.quorum.") {
                Some(rest) if QUORUM_TLS_KEYS.contains(&rest) => {
                    return self.keys.apply(&format!("ssl.{rest}"), value);
                }
                _ => return Ok(false),
            },
        }
        Ok(true)
    }
}

/// Apache's AdminServer defaults (JettyAdminServer).
pub const ADMIN_DEFAULT_PORT: u16 = 8080;
pub const ADMIN_DEFAULT_COMMAND_URL: &str = "/commands";
pub const ADMIN_DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
/// Apache's PrometheusMetricsProvider default port.
pub const PROMETHEUS_DEFAULT_PORT: u16 = 7000;
/// The `metricsProvider.className` that turns the Prometheus endpoint on.
pub const PROMETHEUS_PROVIDER_CLASS: &str = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";
/// Apache's own default provider (no endpoint): accepted silently.
const DEFAULT_PROVIDER_CLASSES: &[&str] = &[
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider",
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider",
];

/// `admin.enableServer`, `admin.serverAddress`, `admin.serverPort`,
/// `admin.commandURL`, `admin.idleTimeout` (also with the `zookeeper.`
/// prefix of their Java system property names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub enabled: bool,
    pub address: IpAddr,
    pub port: u16,
    /// Always starts with '/' and has no trailing '/'.
    pub command_url: String,
    /// How long one HTTP connection may stay open (Jetty's idle timeout).
    pub idle_timeout_ms: u64,
}

/// `metricsProvider.httpHost` / `metricsProvider.httpPort` /
/// `metricsProvider.exportJvmInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusConfig {
    pub host: IpAddr,
    pub port: u16,
    /// Apache exports the JVM's figures; zoocore exports the process's
    /// (`process_*`, as Prometheus clients name them) when this is true.
    pub export_process_info: bool,
}

const DEFAULT_JUTE_MAX_BUFFER: usize = 0xFFFFF;
/// ZooKeeper's tickTime when a zoo.cfg does not set one.
const ZOO_CFG_DEFAULT_TICK_MS: u32 = 3000;
const MIN_SNAP_RETAIN_COUNT: u32 = 3;

/// Keys Apache ZooKeeper 3.9's administrator guide documents that zoocore
/// accepts and ignores, each with the reason logged at start-up (the key as
/// written, or under its `zookeeper.` system-property name). Keys zoocore
/// honours are matched in `Config::parse` before this table is consulted;
/// keys whose silent loss would weaken safety or security (`sslQuorum=true`,
/// `group.x`, `weight.x`) are refused there instead.
const IGNORED_APACHE_KEYS: &[(&str, &str)] = &[
    // Disk and log.
    ("forceSync", "zoocore always fdatasyncs a txn before acknowledging it"),
    ("syncEnabled", "observers log and fsync what they apply, always"),
    ("observer.syncEnabled", "observers log and fsync what they apply, always"),
    ("snapSizeLimitInKb", "snapshots are taken by txn count (snapCount) alone"),
    ("txnLogSizeLimitInKb", "log files roll by preAllocSize, not by a size limit"),
    ("snapshot.trust.empty", "zoocore's own store never lacks a snapshot; `zoocore import` reads Apache data dirs"),
    ("datadir.autocreate", "zoocore always creates its data dir"),
    ("db.autocreate", "zoocore always creates its store"),
    ("digest.enabled", "zoocore always keeps the tree digest"),
    // Request pipeline and threads (thread-per-core shards instead).
    ("flushDelay", "the commit shard group-commits each turn; no flush delay"),
    ("maxWriteQueuePollTime", "the commit shard group-commits each turn; no write queue poll"),
    ("maxBatchSize", "a log batch takes what is ready, bounded in bytes"),
    ("nio.numSelectorThreads", "connections run on the worker shards (zoocore.shards)"),
    ("nio.numWorkerThreads", "requests run on the worker shards (zoocore.shards)"),
    ("commitProcessor.numWorkerThreads", "reads run on the worker shards (zoocore.shards)"),
    ("commitProcessor.maxReadBatchSize", "reads never wait behind commits on a worker shard"),
    ("commitProcessor.maxCommitBatchSize", "commits are published to shards a batch at a time"),
    ("advancedFlowControlEnabled", "a Netty setting; zoocore reads a connection only while it has permits"),
    ("netty.advancedFlowControl.enabled", "a Netty setting; zoocore reads a connection only while it has permits"),
    ("outstandingHandshake.limit", "a Netty setting; TLS handshakes run on the worker shards"),
    ("netty.server.outstandingHandshake.limit", "a Netty setting; TLS handshakes run on the worker shards"),
    ("serverCnxnFactory", "zoocore has one connection layer (io_uring)"),
    ("enableEagerACLCheck", "ACLs are checked when a request is prepared, as Apache's default"),
    ("maxResponseCacheSize", "replies are encoded from the shared tree without a cache"),
    ("maxGetChildrenResponseCacheSize", "replies are encoded from the shared tree without a cache"),
    ("largeRequestMaxBytes", "requests are bounded by jute.maxbuffer and globalOutstandingLimit"),
    ("largeRequestThreshold", "requests are bounded by jute.maxbuffer and globalOutstandingLimit"),
    ("jute.maxbuffer.extrasize", "a txn may carry jute.maxbuffer of data plus its metadata"),
    ("requestThrottleLimit", "throttled by globalOutstandingLimit per shard"),
    ("request_throttle_max_requests", "throttled by globalOutstandingLimit per shard"),
    ("requestThrottleStallTime", "throttled by globalOutstandingLimit per shard"),
    ("request_throttle_stall_time", "throttled by globalOutstandingLimit per shard"),
    ("requestThrottleDropStale", "throttled by globalOutstandingLimit per shard"),
    ("request_throttle_drop_stale", "throttled by globalOutstandingLimit per shard"),
    ("requestStaleLatencyCheck", "no stale-request dropping"),
    ("request_stale_latency_check", "no stale-request dropping"),
    ("requestStaleConnectionCheck", "a closed connection's requests are dropped always"),
    ("request_stale_connection_check", "a closed connection's requests are dropped always"),
    ("request_throttler.shutdownTimeout", "no request throttler thread"),
    ("throttledOpWaitTime", "no per-op throttling"),
    ("throttled_op_wait_time", "no per-op throttling"),
    // Connections.
    ("maxCnxns", "not enforced: connections are limited per address (maxClientCnxns)"),
    ("clientPortListenBacklog", "the listen backlog is the kernel's"),
    ("clientTcpKeepAlive", "client sessions are kept by their pings"),
    ("connectionMaxTokens", "no connection-rate throttling"),
    ("connection_throttle_tokens", "no connection-rate throttling"),
    ("connectionTokenFillTime", "no connection-rate throttling"),
    ("connection_throttle_fill_time", "no connection-rate throttling"),
    ("connectionTokenFillCount", "no connection-rate throttling"),
    ("connection_throttle_fill_count", "no connection-rate throttling"),
    ("connectionFreezeTime", "no connection-rate throttling"),
    ("connection_throttle_freeze_time", "no connection-rate throttling"),
    ("connectionDropIncrease", "no connection-rate throttling"),
    ("connection_throttle_drop_increase", "no connection-rate throttling"),
    ("connectionDropDecrease", "no connection-rate throttling"),
    ("connection_throttle_drop_decrease", "no connection-rate throttling"),
    ("connectionDecreaseRatio", "no connection-rate throttling"),
    ("connection_throttle_decrease_ratio", "no connection-rate throttling"),
    ("connection_throttle_weight_enabled", "no connection-rate throttling"),
    ("connection_throttle_global_session_weight", "no connection-rate throttling"),
    ("connection_throttle_local_session_weight", "no connection-rate throttling"),
    ("connection_throttle_renew_session_weight", "no connection-rate throttling"),
    // Watches.
    ("watchManaggerName", "zoocore has one watch registry"),
    ("watchManagerName", "zoocore has one watch registry"),
    ("watcherCleanThreadsNum", "a session's watches are removed at once, in O(its watches)"),
    ("watcherCleanThreshold", "a session's watches are removed at once, in O(its watches)"),
    ("watcherCleanIntervalInSeconds", "a session's watches are removed at once, in O(its watches)"),
    ("maxInProcessingDeadWatchers", "a session's watches are removed at once, in O(its watches)"),
    ("bitHashCacheSize", "zoocore has one watch registry"),
    // Nodes and sessions.
    ("emulate353TTLNodes", "TTL nodes use the 3.5.4+ encoding (extendedTypesEnabled)"),
    ("localSessionsEnabled", "every session is global"),
    ("localSessionsUpgradingEnabled", "every session is global"),
    ("skipACL", "ACLs are always checked"),
    // Ensemble.
    ("observerMasterPort", "zoocore followers serve no observers; observers sync from the leader"),
    ("fastleader.minNotificationInterval", "zoocore's election resends on its own fixed schedule"),
    ("fastleader.maxNotificationInterval", "zoocore's election resends on its own fixed schedule"),
    ("maxTimeToWaitForEpoch", "a leader waits for a quorum's epochs for initLimit ticks"),
    ("leader.maxTimeToWaitForEpoch", "a leader waits for a quorum's epochs for initLimit ticks"),
    ("connectToLearnerMasterLimit", "a learner retries its leader until initLimit"),
    ("leaderServes", "the leader always serves clients"),
    ("maxConcurrentSnapSyncs", "a leader sends each learner's SNAP on its own thread, unbounded in number"),
    ("leader.maxConcurrentSnapSyncs", "a leader sends each learner's SNAP on its own thread, unbounded in number"),
    ("maxConcurrentDiffSyncs", "DIFFs are not limited in number"),
    ("leader.maxConcurrentDiffSyncs", "DIFFs are not limited in number"),
    ("cnxTimeout", "election connections use zoocore's own connect timeout"),
    ("quorumCnxnTimeoutMs", "election connections use zoocore's own read timeout"),
    ("tcpKeepAlive", "quorum links are kept by PINGs within syncLimit"),
    ("electionPortBindRetry", "a failed election-port bind stops start-up, naming the port"),
    ("observer.reconnectDelayMs", "an observer reconnects at once"),
    ("observer.election.DelayMs", "an observer looks for the leader at once"),
    ("learner.closeSocketAsync", "quorum sockets are closed on their shard, without blocking"),
    ("leader.closeSocketAsync", "quorum sockets are closed on their shard, without blocking"),
    ("reconfigEnabled", "dynamic reconfiguration is not supported; reconfig requests get ReconfigDisabled"),
    ("dynamicConfigFile", "dynamic reconfiguration is not supported; the server.N lines of zoo.cfg are the ensemble"),
    ("multiAddress.enabled", "one address per server"),
    ("multiAddress.reachabilityCheckTimeoutMs", "one address per server"),
    ("multiAddress.reachabilityCheckEnabled", "one address per server"),
    ("quorumListenOnAllIPs", "quorum and election ports bind the address their server.N line names"),
    ("messageTracker.BufferSize", "no quorum message tracker"),
    ("messageTracker.Enabled", "no quorum message tracker"),
    // Security.
    ("sslQuorumReloadCertFiles", "the quorum key and trust stores are read at start-up; restart to load new ones"),
    (
        "ssl.quorum.handshakeDetectionTimeoutMillis",
        "a unified quorum port tells TLS from its first byte, as it arrives",
    ),
    ("ssl.handshakeDetectionTimeoutMillis", "a unified port tells TLS from its first bytes, as they arrive"),
    ("authProvider", "the digest, ip and x509 providers are built in; other providers are not supported"),
    ("ensembleAuthName", "no ensemble authentication provider"),
    ("kerberos.removeHostFromPrincipal", "Kerberos (GSSAPI) is not supported"),
    ("kerberos.removeRealmFromPrincipal", "Kerberos (GSSAPI) is not supported"),
    // Audit and admin.
    ("audit.enable", "no audit log"),
    ("audit.impl.class", "no audit log"),
    ("admin.portUnification", "the AdminServer speaks plain HTTP only"),
];

/// The reason `key` (without its `zookeeper.` prefix) is accepted and
/// ignored, or None for a key ZooKeeper does not document.
fn ignored_key_reason(key: &str) -> Option<&'static str> {
    if let Some((_, why)) = IGNORED_APACHE_KEYS.iter().find(|(k, _)| *k == key) {
        return Some(why);
    }
    if key.starts_with("ssl.quorum.") {
        return Some("Apache's quorum TLS does not read this ssl.quorum key either");
    }
    if key.starts_with("authProvider.") {
        return Some("the digest, ip and x509 providers are built in; other providers are not supported");
    }
    if key.starts_with("ssl.") || key.starts_with("admin.") || key.starts_with("metricsProvider.") {
        return Some("not supported by zoocore");
    }
    None
}

impl Config {
    /// zoocore's settings when started without a zoo.cfg.
    pub fn embedded_default() -> Config {
        Self::defaults(2000, PathBuf::from("./zoocore-data"), IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    fn defaults(tick_time_ms: u32, data_dir: PathBuf, client_port_address: IpAddr) -> Config {
        Config {
            tick_time_ms,
            data_log_dir: data_dir.clone(),
            data_dir,
            client_port: 2181,
            client_port_address,
            max_client_cnxns: 60,
            min_session_timeout_ms: tick_time_ms.saturating_mul(2),
            max_session_timeout_ms: tick_time_ms.saturating_mul(20),
            four_letter_whitelist: FourLetterWhitelist::Only(BTreeSet::from(["srvr".to_owned()])),
            jute_max_buffer: DEFAULT_JUTE_MAX_BUFFER,
            shards: None,
            super_digest: None,
            extended_types_enabled: false,
            enforce_quota: false,
            global_outstanding_limit: 1000,
            snap_count: 100_000,
            snapshot_size_factor: crate::zab::sync_plan::DEFAULT_SNAPSHOT_SIZE_FACTOR,
            commit_log_count: crate::zab::leader::COMMITTED_WINDOW_TXNS,
            pre_alloc_size_kb: 65536,
            fsync_warning_threshold_ms: 1000,
            log_sync: "fdatasync".to_string(),
            autopurge_snap_retain_count: MIN_SNAP_RETAIN_COUNT,
            autopurge_purge_interval_ms: 0,
            container_check_interval_ms: 60_000,
            container_max_never_used_interval_ms: 0,
            container_max_per_minute: 10_000,
            init_limit: None,
            sync_limit: None,
            servers: Vec::new(),
            peer_type: None,
            standalone_enabled: true,
            read_only_enabled: false,
            quorum: None,
            client_port_set: false,
            client_port_address_set: false,
            source_name: "embedded default".to_owned(),
            other: BTreeMap::new(),
            admin: AdminConfig {
                enabled: true,
                // Like the client port: zoo.cfg listens on all interfaces,
                // the embedded default on loopback only.
                address: client_port_address,
                port: ADMIN_DEFAULT_PORT,
                command_url: ADMIN_DEFAULT_COMMAND_URL.to_owned(),
                idle_timeout_ms: ADMIN_DEFAULT_IDLE_TIMEOUT_MS,
            },
            prometheus: None,
            initial_text: String::new(),
            client_tls: ClientTlsConfig::default(),
            quorum_tls: QuorumTlsConfig::default(),
            quorum_sasl: QuorumSaslConfig::default(),
            sasl: SaslConfig::default(),
        }
    }

    /// Whether the four-letter word `cmd` may be served.
    pub fn fourlw_enabled(&self, cmd: &str) -> bool {
        match &self.four_letter_whitelist {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(set) => set.contains(cmd),
        }
    }

    /// Reads and parses a zoo.cfg file.
    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        let (mut config, warnings) = Config::parse(&text, &name)?;
        if config.is_distributed() {
            let myid_path = config.data_dir.join("myid");
            let myid = std::fs::read_to_string(&myid_path).map_err(|e| ConfigError {
                source_name: myid_path.display().to_string(),
                line: None,
                message: format!(
                    "cannot read the myid file ({e}); an ensemble member needs dataDir/myid holding its server id"
                ),
            })?;
            let quorum = config.resolve_quorum(&myid, &myid_path.display().to_string())?;
            // As Apache: a client address on the server line is used when
            // zoo.cfg has no clientPort / clientPortAddress of its own.
            if let Some((host, port)) = quorum.me().and_then(|me| me.client) {
                if !config.client_port_set {
                    config.client_port = port;
                    config.client_port_set = true;
                }
                if let (Some(host), false) = (host, config.client_port_address_set) {
                    config.client_port_address = host;
                }
            }
            config.quorum = Some(quorum);
        }
        Ok((config, warnings))
    }

    /// Whether zoo.cfg makes this server an ensemble member, by Apache's
    /// rule (QuorumPeerConfig.isDistributed): more than one voting server,
    /// or any server line at all when `standaloneEnabled=false`.
    pub fn is_distributed(&self) -> bool {
        let voters = self.servers.iter().filter(|s| s.role == LearnerRole::Participant).count();
        !self.servers.is_empty() && (voters > 1 || !self.standalone_enabled)
    }

    /// Checks the ensemble part of the config against `myid_text` (the
    /// contents of dataDir/myid, read from `myid_source`).
    pub fn resolve_quorum(&self, myid_text: &str, myid_source: &str) -> Result<QuorumConfig, ConfigError> {
        let cfg_err =
            |line: Option<usize>, message: String| ConfigError { source_name: self.source_name.clone(), line, message };
        let my_id: u64 = myid_text.trim().parse().map_err(|_| ConfigError {
            source_name: myid_source.to_owned(),
            line: None,
            message: format!("expected a server id (a whole number), found {:?}", myid_text.trim()),
        })?;
        let me = self.servers.iter().find(|s| s.id == my_id).ok_or_else(|| ConfigError {
            source_name: myid_source.to_owned(),
            line: None,
            message: format!(
                "myid is {my_id} but {} has no server.{my_id} line (servers: {})",
                self.source_name,
                self.servers.iter().map(|s| format!("server.{}", s.id)).collect::<Vec<_>>().join(", ")
            ),
        })?;
        let init_limit_ticks =
            self.init_limit.ok_or_else(|| cfg_err(None, "initLimit is not set (an ensemble needs it)".into()))?;
        let sync_limit_ticks =
            self.sync_limit.ok_or_else(|| cfg_err(None, "syncLimit is not set (an ensemble needs it)".into()))?;
        if init_limit_ticks == 0 || sync_limit_ticks == 0 {
            return Err(cfg_err(None, "initLimit and syncLimit must be at least 1 tick".into()));
        }
        if let Some(peer_type) = self.peer_type {
            if peer_type != me.role {
                return Err(cfg_err(
                    Some(me.line_no),
                    format!(
                        "peerType={} but server.{my_id} is declared {}: make them agree",
                        peer_type.as_str(),
                        me.role.as_str()
                    ),
                ));
            }
        }
        // Two endpoints on one host:port would make one server answer for two.
        let mut seen: BTreeMap<(String, u16), (u64, &str, usize)> = BTreeMap::new();
        for s in &self.servers {
            let host = s.host.to_ascii_lowercase();
            let mut endpoints =
                vec![(host.clone(), s.quorum_port, "quorum port"), (host, s.election_port, "election port")];
            if let Some((client_host, port)) = s.client {
                let h = client_host.map(|h| h.to_string()).unwrap_or_else(|| s.host.to_ascii_lowercase());
                endpoints.push((h, port, "client port"));
            }
            for (host, port, what) in endpoints {
                if let Some((other_id, other_what, other_line)) =
                    seen.insert((host.clone(), port), (s.id, what, s.line_no))
                {
                    return Err(cfg_err(
                        Some(s.line_no),
                        format!(
                            "port clash: server.{} {what} {host}:{port} is already server.{other_id}'s {other_what} (line {other_line})",
                            s.id
                        ),
                    ));
                }
            }
        }
        if [me.quorum_port, me.election_port].contains(&self.client_port) {
            return Err(cfg_err(
                Some(me.line_no),
                format!("port clash: clientPort {} is also server.{my_id}'s quorum or election port", self.client_port),
            ));
        }
        if let Some((_, port)) = me.client {
            if self.client_port_set && port != self.client_port {
                return Err(cfg_err(
                    Some(me.line_no),
                    format!(
                        "server.{my_id} gives client port {port} but clientPort is {}: make them agree",
                        self.client_port
                    ),
                ));
            }
        }
        let mut servers = self.servers.clone();
        servers.sort_by_key(|s| s.id);
        Ok(QuorumConfig {
            my_id,
            servers,
            init_limit_ticks,
            sync_limit_ticks,
            read_only_enabled: self.read_only_enabled,
        })
    }

    /// Parses zoo.cfg text. Returns the config and warnings (unknown or
    /// ignored keys, adjusted values).
    pub fn parse(text: &str, source_name: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let err =
            |line: Option<usize>, message: String| ConfigError { source_name: source_name.to_owned(), line, message };
        let mut cfg = Self::defaults(ZOO_CFG_DEFAULT_TICK_MS, PathBuf::new(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut warnings = Vec::new();
        let mut data_dir: Option<PathBuf> = None;
        let mut data_log_dir: Option<PathBuf> = None;
        let mut min_timeout: Option<i64> = None;
        let mut max_timeout: Option<i64> = None;
        let mut provider_class: Option<(String, usize)> = None;
        let mut require_sasl = false;
        let mut enforce_enabled = false;
        let mut enforce_schemes: Option<(String, usize)> = None;
        let mut prometheus = PrometheusConfig {
            host: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: PROMETHEUS_DEFAULT_PORT,
            export_process_info: true,
        };

        for entry in logical_lines(text) {
            let line_no = Some(entry.line_no);
            let (key, value) = split_key_value(&entry.text)
                .ok_or_else(|| err(line_no, format!("expected key=value: {:?}", entry.text)))?;
            let value = value.trim();
            let bad = |what: &str| err(line_no, format!("bad value for {key}: {value:?}{what}"));
            let normalized = key.strip_prefix("zookeeper.").unwrap_or(&key);
            let is_tls_key = cfg
                .client_tls
                .apply(normalized, value)
                .and_then(|client| Ok(client || cfg.quorum_tls.apply(normalized, value)?))
                .map_err(|why| err(line_no, format!("bad value for {key}: {value:?} ({why})")))?;
            if is_tls_key {
                continue;
            }
            let is_quorum_sasl_key = cfg
                .quorum_sasl
                .apply(&key, value)
                .map_err(|why| err(line_no, format!("bad value for {key}: {value:?} ({why})")))?;
            if is_quorum_sasl_key {
                continue;
            }
            match normalized {
                "tickTime" => cfg.tick_time_ms = parse_num::<u32>(value).filter(|&t| t > 0).ok_or_else(|| bad(""))?,
                "dataDir" => data_dir = Some(non_empty_path(value).ok_or_else(|| bad(""))?),
                "dataLogDir" => data_log_dir = Some(non_empty_path(value).ok_or_else(|| bad(""))?),
                "clientPort" => {
                    cfg.client_port = parse_num(value).ok_or_else(|| bad(""))?;
                    cfg.client_port_set = true;
                }
                "clientPortAddress" => {
                    cfg.client_port_address = parse_ip(value).ok_or_else(|| bad(" (an IP address)"))?;
                    cfg.client_port_address_set = true;
                }
                "maxClientCnxns" => cfg.max_client_cnxns = parse_num(value).ok_or_else(|| bad(""))?,
                "minSessionTimeout" => min_timeout = Some(parse_timeout(value).ok_or_else(|| bad(""))?),
                "maxSessionTimeout" => max_timeout = Some(parse_timeout(value).ok_or_else(|| bad(""))?),
                "4lw.commands.whitelist" => cfg.four_letter_whitelist = parse_whitelist(value),
                "jute.maxbuffer" => {
                    cfg.jute_max_buffer = parse_num(value).filter(|&n: &usize| n > 0).ok_or_else(|| bad(""))?
                }
                "zoocore.shards" => {
                    cfg.shards = Some(parse_num(value).filter(|&n: &usize| n > 0).ok_or_else(|| bad(""))?)
                }
                "DigestAuthenticationProvider.superDigest" => {
                    cfg.super_digest = if value.is_empty() { None } else { Some(value.to_owned()) }
                }
                "extendedTypesEnabled" => cfg.extended_types_enabled = parse_bool(value).ok_or_else(|| bad(""))?,
                "enforceQuota" => cfg.enforce_quota = parse_bool(value).ok_or_else(|| bad(""))?,
                "snapshotSizeFactor" => {
                    let factor: f64 = value.parse().ok().filter(|f: &f64| f.is_finite()).ok_or_else(|| bad(""))?;
                    cfg.snapshot_size_factor = if factor > 1.0 {
                        // Apache's rule: above 1 means the default.
                        warnings.push(format!(
                            "{source_name}:{}: {key}={value} is above 1; using the default {}",
                            entry.line_no,
                            crate::zab::sync_plan::DEFAULT_SNAPSHOT_SIZE_FACTOR
                        ));
                        crate::zab::sync_plan::DEFAULT_SNAPSHOT_SIZE_FACTOR
                    } else {
                        factor
                    };
                }
                "commitLogCount" => {
                    use crate::zab::leader::{COMMITTED_WINDOW_MAX_TXNS, COMMITTED_WINDOW_TXNS};
                    let here = format!("{source_name}:{}: {key}={value}", entry.line_no);
                    cfg.commit_log_count = match value.parse::<i64>() {
                        Ok(n) if n < COMMITTED_WINDOW_TXNS as i64 => {
                            // Apache's rule: below the default means the default.
                            warnings.push(format!(
                                "{here} is below {COMMITTED_WINDOW_TXNS}; using {COMMITTED_WINDOW_TXNS}"
                            ));
                            COMMITTED_WINDOW_TXNS
                        }
                        Ok(n) if n > COMMITTED_WINDOW_MAX_TXNS as i64 => {
                            warnings.push(format!(
                                "{here} is above {COMMITTED_WINDOW_MAX_TXNS}; using {COMMITTED_WINDOW_MAX_TXNS}"
                            ));
                            COMMITTED_WINDOW_MAX_TXNS
                        }
                        Ok(n) => n as usize,
                        Err(_) => {
                            warnings.push(format!("{here} is not a number; using {COMMITTED_WINDOW_TXNS}"));
                            COMMITTED_WINDOW_TXNS
                        }
                    };
                }
                "globalOutstandingLimit" => {
                    cfg.global_outstanding_limit = parse_num(value).filter(|&n| n > 0).ok_or_else(|| bad(""))?
                }
                "snapCount" => cfg.snap_count = parse_num(value).filter(|&n| n > 1).ok_or_else(|| bad(""))?,
                "preAllocSize" => cfg.pre_alloc_size_kb = parse_num(value).ok_or_else(|| bad(""))?,
                "fsync.warningthresholdms" => {
                    cfg.fsync_warning_threshold_ms = parse_num(value).ok_or_else(|| bad(""))?
                }
                "zoocore.logSync" => {
                    if value != "fdatasync" && value != "dsync" {
                        return Err(bad(" (expected fdatasync or dsync)"));
                    }
                    cfg.log_sync = value.to_owned();
                }
                "autopurge.snapRetainCount" => {
                    let n: u32 = parse_num(value).ok_or_else(|| bad(""))?;
                    if n < MIN_SNAP_RETAIN_COUNT {
                        warnings.push(format!(
                            "{source_name}:{}: autopurge.snapRetainCount {n} raised to {MIN_SNAP_RETAIN_COUNT}",
                            entry.line_no
                        ));
                    }
                    cfg.autopurge_snap_retain_count = n.max(MIN_SNAP_RETAIN_COUNT);
                }
                "autopurge.purgeInterval" => {
                    cfg.autopurge_purge_interval_ms = parse_purge_interval(value).ok_or_else(|| bad(""))?
                }
                "znode.container.checkIntervalMs" => {
                    cfg.container_check_interval_ms = parse_num(value).filter(|&n| n > 0).ok_or_else(|| bad(""))?
                }
                "znode.container.maxNeverUsedIntervalMs" => {
                    cfg.container_max_never_used_interval_ms = parse_num(value).ok_or_else(|| bad(""))?
                }
                "znode.container.maxPerMinute" => {
                    cfg.container_max_per_minute = parse_num(value).filter(|&n| n > 0).ok_or_else(|| bad(""))?
                }
                "initLimit" => cfg.init_limit = Some(parse_num(value).ok_or_else(|| bad(""))?),
                "syncLimit" => cfg.sync_limit = Some(parse_num(value).ok_or_else(|| bad(""))?),
                "peerType" => {
                    cfg.peer_type = Some(match value {
                        "participant" => LearnerRole::Participant,
                        "observer" => LearnerRole::Observer,
                        _ => return Err(bad(" (expected participant or observer)")),
                    })
                }
                "electionAlg" => {
                    if value != "3" {
                        return Err(bad(" (only 3, fast leader election, exists since ZooKeeper 3.6)"));
                    }
                }
                "standaloneEnabled" => cfg.standalone_enabled = parse_bool(value).ok_or_else(|| bad(""))?,
                "readonlymode.enabled" => cfg.read_only_enabled = parse_bool(value).ok_or_else(|| bad(""))?,
                "admin.enableServer" => cfg.admin.enabled = parse_bool(value).ok_or_else(|| bad(""))?,
                "admin.serverAddress" => {
                    cfg.admin.address = parse_ip(value).ok_or_else(|| bad(" (an IP address)"))?;
                }
                "admin.serverPort" => cfg.admin.port = parse_num(value).ok_or_else(|| bad(""))?,
                "admin.commandURL" => {
                    let url = value.trim_end_matches('/');
                    if !url.starts_with('/') {
                        return Err(bad(" (a path starting with '/')"));
                    }
                    cfg.admin.command_url = url.to_owned();
                }
                "admin.idleTimeout" => {
                    cfg.admin.idle_timeout_ms = parse_num(value).filter(|&n| n > 0).ok_or_else(|| bad(""))?
                }
                "metricsProvider.className" => provider_class = Some((value.to_owned(), entry.line_no)),
                "metricsProvider.httpHost" => {
                    prometheus.host = parse_ip(value).ok_or_else(|| bad(" (an IP address)"))?;
                }
                "metricsProvider.httpPort" => prometheus.port = parse_num(value).ok_or_else(|| bad(""))?,
                "metricsProvider.exportJvmInfo" => {
                    prometheus.export_process_info = parse_bool(value).ok_or_else(|| bad(""))?
                }
                k if k.starts_with("authProvider.") && value == X509_PROVIDER_CLASS => {
                    // zoocore's x509 provider is built in: it serves every TLS client.
                }
                k if k.starts_with("authProvider.") && value == SASL_PROVIDER_CLASS => {
                    // Built in too: serves every connection once a JAAS file is set.
                }
                "java.security.auth.login.config" => {
                    cfg.sasl.jaas_path = if value.is_empty() { None } else { Some(value.to_owned()) }
                }
                "sasl.serverconfig" => {
                    if value.is_empty() {
                        return Err(bad(" (a JAAS section name)"));
                    }
                    cfg.sasl.server_section = value.to_owned();
                }
                k if k == "superUser" || k.starts_with("superUser.") => {
                    if !value.is_empty() {
                        cfg.sasl.super_users.push(value.to_owned());
                    }
                }
                "SASLAuthenticationProvider.superPassword" => cfg.sasl.super_password = Some(Secret(value.to_owned())),
                "allowSaslFailedClients" => cfg.sasl.allow_failed_clients = parse_bool(value).ok_or_else(|| bad(""))?,
                "sessionRequireClientSASLAuth" => require_sasl = parse_bool(value).ok_or_else(|| bad(""))?,
                "enforce.auth.enabled" => enforce_enabled = parse_bool(value).ok_or_else(|| bad(""))?,
                "enforce.auth.schemes" => enforce_schemes = Some((value.to_owned(), entry.line_no)),
                k if k.starts_with("server.") => {
                    let entry = parse_server(k, value, entry.line_no).map_err(|why| {
                        err(
                            line_no,
                            format!(
                                "bad {key} line {value:?}: {why} (expected host:quorumPort:electionPort[:participant|observer][;[clientHost:]clientPort])"
                            ),
                        )
                    })?;
                    if let Some(previous) = cfg.servers.iter().find(|s| s.id == entry.id) {
                        return Err(err(
                            line_no,
                            format!("server.{} is declared twice (first on line {})", entry.id, previous.line_no),
                        ));
                    }
                    cfg.servers.push(entry);
                }
                k if k.starts_with("group.") || k.starts_with("weight.") => {
                    return Err(err(
                        line_no,
                        format!(
                            "{key}: hierarchical quorums (group.x / weight.x) are not supported by zoocore; \
                             refusing to start with a different quorum rule"
                        ),
                    ));
                }
                k => {
                    let why = match ignored_key_reason(k) {
                        Some(reason) => format!("accepted and ignored: {reason}"),
                        None => "unknown key, ignored".to_owned(),
                    };
                    warnings.push(format!("{source_name}:{}: {key}: {why}", entry.line_no));
                    cfg.other.insert(key.clone(), value.to_owned());
                }
            }
        }

        match provider_class {
            Some((class, _)) if class == PROMETHEUS_PROVIDER_CLASS => cfg.prometheus = Some(prometheus),
            Some((class, _)) if DEFAULT_PROVIDER_CLASSES.contains(&class.as_str()) => {}
            Some((class, line)) => warnings.push(format!(
                "{source_name}:{line}: metricsProvider.className={class}: zoocore has only {PROMETHEUS_PROVIDER_CLASS}; no metrics endpoint"
            )),
            None => {}
        }
        // As Apache's AuthenticationHelper: sessionRequireClientSASLAuth
        // wins and means exactly `sasl`.
        if require_sasl {
            cfg.sasl.enforce_auth_schemes = vec!["sasl".to_owned()];
        } else if enforce_enabled {
            let Some((schemes, line)) = enforce_schemes else {
                return Err(err(None, "enforce.auth.enabled is true but enforce.auth.schemes is not set".to_owned()));
            };
            let schemes: Vec<String> =
                schemes.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            if schemes.is_empty() {
                return Err(err(Some(line), "enforce.auth.schemes is empty".to_owned()));
            }
            if let Some(unknown) = schemes.iter().find(|s| !AUTH_SCHEMES.contains(&s.as_str())) {
                return Err(err(
                    Some(line),
                    format!("enforce.auth.schemes: authentication scheme {unknown} is not available (zoocore has {AUTH_SCHEMES:?})"),
                ));
            }
            cfg.sasl.enforce_auth_schemes = schemes;
        }
        cfg.quorum_sasl.check().map_err(|why| err(None, why))?;
        let tls = &cfg.client_tls;
        if tls.secure_client_port_address.is_some() && tls.secure_client_port.is_none() {
            return Err(err(None, "secureClientPortAddress is set but secureClientPort is not set".to_owned()));
        }
        if tls.secure_client_port.is_some_and(|p| p == cfg.client_port) && cfg.client_port_set {
            return Err(err(
                None,
                format!(
                    "secureClientPort and clientPort are both {}: use client.portUnification=true to serve TLS and plaintext on one port",
                    cfg.client_port
                ),
            ));
        }
        cfg.initial_text = text.to_owned();
        cfg.source_name = source_name.to_owned();
        cfg.data_dir = data_dir.ok_or_else(|| err(None, "dataDir is not set".to_owned()))?;
        cfg.data_log_dir = data_log_dir.unwrap_or_else(|| cfg.data_dir.clone());
        // -1 (or absent) means "derive from tickTime", as in ZooKeeper.
        let derive = |v: Option<i64>, factor: u32| match v {
            Some(v) if v >= 0 => u32::try_from(v).ok(),
            _ => Some(cfg.tick_time_ms.saturating_mul(factor)),
        };
        cfg.min_session_timeout_ms =
            derive(min_timeout, 2).ok_or_else(|| err(None, "minSessionTimeout out of range".to_owned()))?;
        cfg.max_session_timeout_ms =
            derive(max_timeout, 20).ok_or_else(|| err(None, "maxSessionTimeout out of range".to_owned()))?;
        if cfg.min_session_timeout_ms > cfg.max_session_timeout_ms {
            return Err(err(
                None,
                format!(
                    "minSessionTimeout ({}) must not be larger than maxSessionTimeout ({})",
                    cfg.min_session_timeout_ms, cfg.max_session_timeout_ms
                ),
            ));
        }
        Ok((cfg, warnings))
    }
}

struct LogicalLine {
    line_no: usize,
    text: String,
}

/// Java properties lines: skips blanks and `#`/`!` comments, joins lines
/// ending in an odd number of backslashes, and resolves escapes.
fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut out = Vec::new();
    let mut pending: Option<LogicalLine> = None;
    for (idx, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if pending.is_none() && (trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!')) {
            continue;
        }
        let trailing_backslashes = trimmed.chars().rev().take_while(|&c| c == '\\').count();
        let continues = trailing_backslashes % 2 == 1;
        let body = if continues { &trimmed[..trimmed.len() - 1] } else { trimmed };
        let current = pending.get_or_insert_with(|| LogicalLine { line_no: idx + 1, text: String::new() });
        current.text.push_str(body);
        if !continues {
            if let Some(done) = pending.take() {
                out.push(done);
            }
        }
    }
    out.extend(pending);
    out
}

/// Splits at the first unescaped `=`, `:` or whitespace (whitespace around
/// the separator is skipped). None if there is no separator at all.
fn split_key_value(line: &str) -> Option<(String, String)> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let mut key_end = None;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '=' | ':' => {
                key_end = Some((i, true));
                break;
            }
            c if c.is_whitespace() => {
                key_end = Some((i, false));
                break;
            }
            _ => i += 1,
        }
    }
    let (end, hard_separator) = key_end?;
    let key = unescape(&chars[..end]);
    let mut j = end + 1;
    if !hard_separator {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if j < chars.len() && (chars[j] == '=' || chars[j] == ':') {
            j += 1;
        }
    }
    let value = unescape(&chars[j.min(chars.len())..]);
    if key.is_empty() {
        return None;
    }
    Some((key, value))
}

fn unescape(chars: &[char]) -> String {
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        i += 2;
        match next {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' if i + 4 <= chars.len() => {
                let hex: String = chars[i..i + 4].iter().collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => {
                        out.push(c);
                        i += 4;
                    }
                    None => out.push('u'),
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Decimal, or hex with `0x` (as Java's Integer.decode allows).
fn parse_num<T: TryFrom<u64>>(value: &str) -> Option<T> {
    let v = value.trim();
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => v.parse::<u64>().ok()?,
    };
    T::try_from(n).ok()
}

/// A session timeout bound; -1 means "derive from tickTime".
fn parse_timeout(value: &str) -> Option<i64> {
    if value == "-1" {
        return Some(-1);
    }
    parse_num(value)
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

fn parse_ip(value: &str) -> Option<IpAddr> {
    if value.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    value.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn non_empty_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// `*` = all; otherwise a comma list. srvr is always enabled.
fn parse_whitelist(value: &str) -> FourLetterWhitelist {
    let words: BTreeSet<String> =
        value.split(',').map(str::trim).filter(|w| !w.is_empty()).map(str::to_owned).collect();
    if words.contains("*") {
        return FourLetterWhitelist::All;
    }
    let mut words = words;
    words.insert("srvr".to_owned());
    FourLetterWhitelist::Only(words)
}

/// Hours when bare, or a number with an `ms`/`s`/`m`/`h`/`d` suffix.
fn parse_purge_interval(value: &str) -> Option<u64> {
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "" | "h" => 3_600_000,
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// `server.N=host:quorumPort:electionPort[:role][;[clientHost:]clientPort]`;
/// the error says what is wrong with it.
fn parse_server(key: &str, value: &str, line_no: usize) -> Result<ServerEntry, String> {
    let id: u64 = key
        .strip_prefix("server.")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{key:?} is not server.<id> with a whole-number id"))?;
    let (addresses, client) = match value.split_once(';') {
        Some((a, c)) => (a.trim(), Some(parse_client_address(c.trim())?)),
        None => (value.trim(), None),
    };
    if addresses.contains('|') {
        return Err("several addresses per server (multiAddress) are not supported".into());
    }
    let (host, rest) = if let Some(after) = addresses.strip_prefix('[') {
        let (h, r) = after.split_once(']').ok_or("unclosed '[' in the host")?;
        (h.to_owned(), r.strip_prefix(':').ok_or("expected ':' after the host")?)
    } else {
        let (h, r) = addresses.split_once(':').ok_or("no ports")?;
        (h.to_owned(), r)
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let mut parts = rest.split(':');
    let port = |p: Option<&str>, what: &str| -> Result<u16, String> {
        let p = p.ok_or_else(|| format!("missing {what}"))?.trim();
        p.parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(|| format!("bad {what} {p:?}"))
    };
    let quorum_port = port(parts.next(), "quorum port")?;
    let election_port = port(parts.next(), "election port")?;
    let role = match parts.next().map(str::trim) {
        None | Some("participant") => LearnerRole::Participant,
        Some("observer") => LearnerRole::Observer,
        Some(other) => return Err(format!("unknown role {other:?} (participant or observer)")),
    };
    if parts.next().is_some() {
        return Err("too many ':' fields".into());
    }
    if quorum_port == election_port {
        return Err("the quorum and election ports must differ".into());
    }
    Ok(ServerEntry { id, host, quorum_port, election_port, role, client, raw: value.to_owned(), line_no })
}

/// `[clientHost:]clientPort` after a server line's ';'.
fn parse_client_address(text: &str) -> Result<(Option<IpAddr>, u16), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (Some(h), p),
        None => (None, text),
    };
    let port = port.trim().parse::<u16>().ok().filter(|&n| n > 0).ok_or_else(|| format!("bad client port {port:?}"))?;
    let host = match host {
        None => None,
        Some(h) => Some(parse_ip(h.trim()).ok_or_else(|| format!("client host {h:?} is not an IP address"))?),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_EXAMPLE: &str = "# The number of milliseconds of each tick\ntickTime=2000\n\
        # The number of ticks that the initial \n# synchronization phase can take\ninitLimit=10\n\
        syncLimit=5\ndataDir=/tmp/zookeeper\n# the port at which the clients will connect\n\
        clientPort=2181\n#maxClientCnxns=60\n#\n#autopurge.snapRetainCount=3\n#autopurge.purgeInterval=1\n\n\
        ## Metrics Providers\n#metricsProvider.httpHost=0.0.0.0\n";

    #[test]
    fn enforce_quota_with_or_without_the_prefix() {
        let parse = |line: &str| Config::parse(&format!("dataDir=/tmp/x\n{line}\n"), "zoo.cfg");
        for line in ["enforceQuota=true", "zookeeper.enforceQuota=TRUE"] {
            assert!(parse(line).unwrap().0.enforce_quota, "{line}");
        }
        assert!(!parse("enforceQuota=false").unwrap().0.enforce_quota);
        assert!(parse("enforceQuota=maybe").is_err());
    }

    #[test]
    fn embedded_default() {
        let c = Config::embedded_default();
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.data_dir, PathBuf::from("./zoocore-data"));
        assert_eq!(c.data_log_dir, c.data_dir);
        assert_eq!((c.min_session_timeout_ms, c.max_session_timeout_ms), (4000, 40000));
        assert!(c.fourlw_enabled("srvr"));
        assert!(!c.fourlw_enabled("stat"));
        assert_eq!(c.jute_max_buffer, 0xFFFFF);
    }

    #[test]
    fn client_tls_keys_with_apaches_names_and_defaults() {
        let (c, warnings) = Config::parse("dataDir=/tmp/x\n", "zoo.cfg").unwrap();
        assert!(!c.client_tls.enabled() && warnings.is_empty());
        assert_eq!(c.client_tls.client_auth, ClientAuth::Need, "Apache's default");
        let text = "dataDir=/tmp/x\nclientPort=2181\nsecureClientPort=2281\nsecureClientPortAddress=127.0.0.1\n\
            serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
            authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider\n\
            ssl.keyStore.location=/k.p12\nssl.keyStore.password=pw\nssl.keyStore.type=PKCS12\n\
            zookeeper.ssl.trustStore.location=/t.pem\nssl.clientAuth=WANT\nssl.protocol=TLSv1.2\n\
            ssl.enabledProtocols=TLSv1.2, TLSv1.3\nssl.ciphersuites=TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384\n\
            ssl.hostnameVerification=false\nzookeeper.X509AuthenticationProvider.superUser=CN=admin,O=x\n\
            client.portUnification=true\nssl.quorum.keyStore.location=/q.p12\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        let t = &c.client_tls;
        assert!(t.enabled() && t.port_unification);
        assert_eq!(t.secure_client_port, Some(2281));
        assert_eq!(t.secure_client_port_address, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(t.key_store.location.as_deref(), Some("/k.p12"));
        assert_eq!(t.key_store.password, Secret("pw".into()));
        assert_eq!(format!("{:?}", t.key_store.password), "Secret(..)", "passwords are never printed");
        assert_eq!(t.trust_store.location.as_deref(), Some("/t.pem"));
        assert_eq!(t.client_auth, ClientAuth::Want);
        assert_eq!(t.enabled_protocols, Some(vec!["TLSv1.2".to_owned(), "TLSv1.3".to_owned()]));
        assert_eq!(t.cipher_suites.as_ref().map(Vec::len), Some(2));
        assert!(!t.hostname_verification);
        assert_eq!(t.x509_super_user.as_deref(), Some("CN=admin,O=x"));
        // Quorum TLS has its own settings; the client port's do not leak into them.
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.quorum_tls.keys.key_store.location.as_deref(), Some("/q.p12"));
        assert!(!c.quorum_tls.enabled());
        assert_eq!(c.quorum_tls.keys.trust_store.location, None);
    }

    #[test]
    fn quorum_sasl_keys_with_apaches_names_defaults_and_checks() {
        let (c, warnings) = Config::parse("dataDir=/d\n", "zoo.cfg").unwrap();
        assert_eq!(c.quorum_sasl, QuorumSaslConfig::default());
        assert!(!c.quorum_sasl.enable_sasl && warnings.is_empty());
        assert_eq!(c.quorum_sasl.learner_login_context, "QuorumLearner");
        assert_eq!(c.quorum_sasl.server_login_context, "QuorumServer");
        let text = "dataDir=/d\nquorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\n\
                    quorum.auth.serverRequireSasl=true\nquorum.auth.learner.saslLoginContext=L\n\
                    quorum.auth.server.saslLoginContext=S\nquorum.cnxn.threads.size=20\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        let q = &c.quorum_sasl;
        assert!(q.enable_sasl && q.learner_require_sasl && q.server_require_sasl, "{q:?}");
        assert_eq!((q.learner_login_context.as_str(), q.server_login_context.as_str()), ("L", "S"));
        assert_eq!(q.cnxn_threads_size, Some(20));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (c, _) = Config::parse("dataDir=/d\nquorum.auth.learner.loginContext=L2\n", "zoo.cfg").unwrap();
        assert_eq!(c.quorum_sasl.learner_login_context, "L2");
        // Apache's QuorumPeerConfig refusals.
        for (lines, expected) in [
            ("quorum.auth.serverRequireSasl=true\n", "cannot enable quorum.auth.serverRequireSasl"),
            ("quorum.auth.learnerRequireSasl=true\n", "cannot enable quorum.auth.learnerRequireSasl"),
            (
                "quorum.auth.enableSasl=true\nquorum.auth.serverRequireSasl=true\n",
                "quorum.auth.learnerRequireSasl is disabled",
            ),
            ("quorum.auth.enableSasl=maybe\n", "quorum.auth.enableSasl"),
            ("quorum.cnxn.threads.size=many\n", "quorum.cnxn.threads.size"),
            ("quorum.auth.enableSasl=true\nquorum.auth.kerberos.servicePrincipal=zkquorum/localhost\n", "GSSAPI"),
        ] {
            let e = Config::parse(&format!("dataDir=/d\n{lines}"), "zoo.cfg").unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        // Without enableSasl the principal is only kept.
        let (c, _) = Config::parse("dataDir=/d\nquorum.auth.kerberos.servicePrincipal=zk/h\n", "zoo.cfg").unwrap();
        assert_eq!(c.quorum_sasl.kerberos_service_principal.as_deref(), Some("zk/h"));
    }

    #[test]
    fn sasl_keys() {
        let (c, warnings) = Config::parse(
            "dataDir=/d\njava.security.auth.login.config=/etc/zk/jaas.conf\n\
             authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n\
             zookeeper.superUser=admin\nzookeeper.superUser.2=ops\nzookeeper.sasl.serverconfig=ZkServer\n\
             zookeeper.enforce.auth.enabled=true\nzookeeper.enforce.auth.schemes=sasl, digest\n",
            "zoo.cfg",
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.sasl.jaas_path.as_deref(), Some("/etc/zk/jaas.conf"));
        assert_eq!(c.sasl.server_section, "ZkServer");
        assert_eq!(c.sasl.super_users, ["admin", "ops"]);
        assert_eq!(c.sasl.enforce_auth_schemes, ["sasl", "digest"]);
        assert!(c.sasl.sasl_required());
        // sessionRequireClientSASLAuth wins and means exactly sasl.
        let (c, _) = Config::parse(
            "dataDir=/d\nsessionRequireClientSASLAuth=true\nenforce.auth.enabled=true\nenforce.auth.schemes=ip\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(c.sasl.enforce_auth_schemes, ["sasl"]);
        let (c, _) = Config::parse("dataDir=/d\nenforce.auth.schemes=sasl\n", "zoo.cfg").unwrap();
        assert!(c.sasl.enforce_auth_schemes.is_empty(), "schemes alone enforce nothing");
        let e = Config::parse("dataDir=/d\nenforce.auth.enabled=true\n", "zoo.cfg").unwrap_err();
        assert!(e.to_string().contains("enforce.auth.schemes is not set"), "{e}");
        let e = Config::parse("dataDir=/d\nenforce.auth.enabled=true\nenforce.auth.schemes=kerberos\n", "zoo.cfg")
            .unwrap_err();
        assert!(e.to_string().contains("kerberos is not available"), "{e}");
        // SASL required without a JAAS file: refused when the credentials load.
        let (mut c, _) = Config::parse("dataDir=/d\nsessionRequireClientSASLAuth=true\n", "zoo.cfg").unwrap();
        assert!(c.sasl.load_credentials(false).unwrap_err().contains("no JAAS file"));
    }

    #[test]
    fn client_tls_bad_values_name_the_key() {
        let bad = |line: &str| {
            let e = Config::parse(&format!("dataDir=/tmp/x\n{line}\n"), "zoo.cfg").unwrap_err();
            assert_eq!(e.line, Some(2), "{e}");
            e.message
        };
        assert!(bad("ssl.clientAuth=sometimes").starts_with("bad value for ssl.clientAuth"));
        assert!(bad("ssl.protocol=TLSv1.1").starts_with("bad value for ssl.protocol"));
        assert!(bad("ssl.enabledProtocols=TLSv1.2,SSLv3").contains("SSLv3 is not one zoocore speaks"));
        assert!(bad("secureClientPort=http").starts_with("bad value for secureClientPort"));
        assert!(bad("client.portUnification=maybe").starts_with("bad value for client.portUnification"));
        let e = Config::parse("dataDir=/tmp/x\nsecureClientPortAddress=127.0.0.1\n", "zoo.cfg").unwrap_err();
        assert!(e.message.contains("secureClientPort is not set"), "{e}");
        let e = Config::parse("dataDir=/tmp/x\nclientPort=2181\nsecureClientPort=2181\n", "zoo.cfg").unwrap_err();
        assert!(e.message.contains("client.portUnification"), "{e}");
    }

    #[test]
    fn admin_server_defaults_are_apaches_and_the_embedded_default_is_loopback() {
        let (c, _) = Config::parse("dataDir=/tmp/x\n", "zoo.cfg").unwrap();
        let admin = &c.admin;
        assert!(admin.enabled);
        assert_eq!((admin.address, admin.port), (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080));
        assert_eq!((admin.command_url.as_str(), admin.idle_timeout_ms), ("/commands", 30_000));
        assert_eq!(c.prometheus, None, "no metricsProvider.className, no endpoint");
        assert_eq!(c.initial_text, "dataDir=/tmp/x\n");
        let e = Config::embedded_default();
        assert_eq!((e.admin.address, e.admin.port), (IpAddr::V4(Ipv4Addr::LOCALHOST), 8080));
    }

    #[test]
    fn admin_and_metrics_keys_with_or_without_the_system_property_prefix() {
        let text = "dataDir=/tmp/x\nadmin.serverAddress=127.0.0.2\nzookeeper.admin.serverPort=9090\n\
                    admin.commandURL=/cmds/\nadmin.idleTimeout=500\nzookeeper.admin.enableServer=false\n\
                    metricsProvider.httpPort=7070\nmetricsProvider.httpHost=127.0.0.3\n\
                    metricsProvider.exportJvmInfo=false\n\
                    metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            c.admin,
            AdminConfig {
                enabled: false,
                address: "127.0.0.2".parse().unwrap(),
                port: 9090,
                command_url: "/cmds".into(),
                idle_timeout_ms: 500
            }
        );
        assert_eq!(
            c.prometheus,
            Some(PrometheusConfig { host: "127.0.0.3".parse().unwrap(), port: 7070, export_process_info: false })
        );
        let (c, _) = Config::parse(
            "dataDir=/x\nmetricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n",
            "zoo.cfg",
        )
        .unwrap();
        assert_eq!(c.prometheus.map(|p| (p.host, p.port)), Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 7000)));
    }

    #[test]
    fn other_metrics_providers_and_bad_admin_values() {
        let (c, warnings) =
            Config::parse("dataDir=/x\nmetricsProvider.className=com.example.Other\n", "zoo.cfg").unwrap();
        assert_eq!(c.prometheus, None);
        assert!(warnings.iter().any(|w| w.contains("zoo.cfg:2") && w.contains("com.example.Other")), "{warnings:?}");
        let (_, warnings) = Config::parse(
            "dataDir=/x\nmetricsProvider.className=org.apache.zookeeper.metrics.impl.DefaultMetricsProvider\n",
            "zoo.cfg",
        )
        .unwrap();
        assert!(warnings.is_empty(), "Apache's default provider is accepted silently: {warnings:?}");
        for bad in [
            "admin.serverPort=http",
            "admin.commandURL=commands",
            "admin.serverAddress=nowhere",
            "admin.enableServer=maybe",
        ] {
            let err = Config::parse(&format!("dataDir=/x\n{bad}\n"), "zoo.cfg").unwrap_err();
            assert_eq!(err.line, Some(2), "{bad}: {err}");
        }
    }

    #[test]
    fn debian_example_parses() {
        let (c, warnings) = Config::parse(DEBIAN_EXAMPLE, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.init_limit, Some(10));
        assert_eq!(c.sync_limit, Some(5));
        assert_eq!(c.data_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.data_log_dir, PathBuf::from("/tmp/zookeeper"));
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!((c.min_session_timeout_ms, c.max_session_timeout_ms), (4000, 40000));
    }

    #[test]
    fn installed_debian_example_parses_if_present() {
        let path = Path::new("/etc/zookeeper/conf_example/zoo.cfg");
        if path.exists() {
            let (c, _) = Config::load(path).unwrap();
            assert_eq!(c.client_port, 2181);
        }
    }

    #[test]
    fn commit_log_count_as_apache_reads_it() {
        let count = |line: &str| {
            Config::parse(&format!("dataDir=/d\n{line}\n"), "zoo.cfg").map(|(c, w)| (c.commit_log_count, w.len()))
        };
        assert_eq!(count("").unwrap(), (500, 0), "Apache's default");
        assert_eq!(count("zookeeper.commitLogCount=2000").unwrap(), (2000, 0));
        assert_eq!(count("commitLogCount=100").unwrap(), (500, 1), "below 500: 500, with a warning");
        assert_eq!(count("commitLogCount=x").unwrap(), (500, 1), "not a number: the default, with a warning");
        assert_eq!(count("commitLogCount=999999999999").unwrap(), (1_000_000, 1), "bounded");
    }

    #[test]
    fn snapshot_size_factor_as_apache_reads_it() {
        let factor = |line: &str| {
            Config::parse(&format!("dataDir=/d\n{line}\n"), "zoo.cfg").map(|(c, w)| (c.snapshot_size_factor, w.len()))
        };
        assert_eq!(factor("tickTime=2000").unwrap(), (0.33, 0));
        assert_eq!(factor("zookeeper.snapshotSizeFactor=0.5").unwrap(), (0.5, 0));
        assert_eq!(factor("snapshotSizeFactor=-1").unwrap(), (-1.0, 0), "negative: no DIFF from disk");
        assert_eq!(factor("snapshotSizeFactor=2").unwrap(), (0.33, 1), "above 1: the default, with a warning");
        let err = factor("snapshotSizeFactor=lots").unwrap_err().to_string();
        assert!(err.contains("zoo.cfg:2") && err.contains("snapshotSizeFactor"), "{err}");
    }

    #[test]
    fn apache_standalone_sample() {
        let text = "tickTime=2000\ndataDir=/var/lib/zookeeper\nclientPort=2181\n\
            dataLogDir = /var/log/zk\nclientPortAddress: 127.0.0.1\nmaxClientCnxns 0\n\
            4lw.commands.whitelist=stat, ruok, conf\nautopurge.snapRetainCount=5\n\
            autopurge.purgeInterval=1\nzookeeper.DigestAuthenticationProvider.superDigest=super:xQJmxLMiHGwaqBvst5y6rkB6HQs=\n\
            extendedTypesEnabled=true\nzookeeper.jute.maxbuffer=0x400000\nzoocore.shards=2\n\
            znode.container.checkIntervalMs=100\nsnapCount=1000\nstandaloneEnabled=true\nfoo.bar=1\n\
            server.1=zk1:2888:3888\nserver.2=[::1]:2889:3889:observer;2182\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        assert_eq!(c.data_log_dir, PathBuf::from("/var/log/zk"));
        assert_eq!(c.client_port_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.max_client_cnxns, 0);
        assert!(c.fourlw_enabled("stat") && c.fourlw_enabled("srvr") && c.fourlw_enabled("conf"));
        assert!(!c.fourlw_enabled("dump"));
        assert_eq!(c.autopurge_snap_retain_count, 5);
        assert_eq!(c.autopurge_purge_interval_ms, 3_600_000);
        assert_eq!(c.super_digest.as_deref(), Some("super:xQJmxLMiHGwaqBvst5y6rkB6HQs="));
        assert!(c.extended_types_enabled);
        assert!(!c.enforce_quota, "off unless set");
        assert_eq!(c.jute_max_buffer, 0x400000);
        assert_eq!(c.shards, Some(2));
        assert_eq!(c.container_check_interval_ms, 100);
        assert_eq!(c.snap_count, 1000);
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[0].host, "zk1");
        assert_eq!((c.servers[0].quorum_port, c.servers[0].election_port), (2888, 3888));
        assert_eq!(c.servers[1].host, "::1");
        assert_eq!(c.servers[1].role, LearnerRole::Observer);
        assert_eq!(c.servers[1].client, Some((None, 2182)));
        assert_eq!(c.servers[1].line_no, 19);
        assert!(c.standalone_enabled);
        // One voter with standaloneEnabled: standalone, as Apache.
        assert!(!c.is_distributed());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("foo.bar") && warnings[0].contains("unknown") && warnings[0].contains("zoo.cfg:17")
        );
        assert_eq!(c.other.get("foo.bar").map(String::as_str), Some("1"));
    }

    #[test]
    fn whitelist_star_and_timeouts() {
        let (c, _) =
            Config::parse("dataDir=/d\n4lw.commands.whitelist=*\ntickTime=1000\nmaxSessionTimeout=5000\n", "z")
                .unwrap();
        assert!(c.fourlw_enabled("wchp"));
        assert_eq!((c.min_session_timeout_ms, c.max_session_timeout_ms), (2000, 5000));
        let e = Config::parse("dataDir=/d\nminSessionTimeout=9000\nmaxSessionTimeout=5000\n", "z").unwrap_err();
        assert!(e.to_string().contains("minSessionTimeout"));
    }

    #[test]
    fn minus_one_timeout_means_default() {
        let (c, _) = Config::parse("dataDir=/d\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n", "z").unwrap();
        assert_eq!((c.min_session_timeout_ms, c.max_session_timeout_ms), (6000, 60000));
    }

    #[test]
    fn properties_syntax() {
        let text = "  ! comment\n\tdataDir = /a\\\n   /b\nclientPort:\t2182\n";
        let (c, _) = Config::parse(text, "z").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/a/b"));
        assert_eq!(c.client_port, 2182);
        assert_eq!(c.tick_time_ms, 3000);
    }

    #[test]
    fn errors_name_the_line() {
        let text = "# c\ndataDir=/d\n\n\n\n\ntickTime=abc\n";
        let e = Config::parse(text, "zoo.cfg").unwrap_err();
        assert_eq!(e.to_string(), "zoo.cfg:7: bad value for tickTime: \"abc\"");
        let e = Config::parse("dataDir=/d\ngarbage\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.to_string(), "zoo.cfg:2: expected key=value: \"garbage\"");
        let e = Config::parse("dataDir=/d\nclientPort=70000\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = Config::parse("dataDir=/d\nserver.1=host\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = Config::parse("tickTime=2000\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.to_string(), "zoo.cfg: dataDir is not set");
        let e = Config::parse("dataDir=/d\nextendedTypesEnabled=maybe\n", "zoo.cfg").unwrap_err();
        assert_eq!(e.line, Some(2));
    }

    const ENSEMBLE: &str = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/d\nclientPort=2181\n\
        server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888:participant;2181\n";

    #[test]
    fn ensemble_config_resolves_with_myid() {
        let (c, warnings) = Config::parse(ENSEMBLE, "zoo.cfg").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(c.is_distributed());
        let q = c.resolve_quorum("2\n", "/d/myid").unwrap();
        assert_eq!(q.my_id, 2);
        assert_eq!((q.init_limit_ticks, q.sync_limit_ticks), (10, 5));
        assert_eq!(q.me().map(|m| m.host.as_str()), Some("127.0.0.2"));
        assert_eq!(q.voting_members().count(), 3);
        assert!(!q.read_only_enabled);
    }

    #[test]
    fn ensemble_errors_name_the_file_or_line() {
        let (c, _) = Config::parse(ENSEMBLE, "zoo.cfg").unwrap();
        let e = c.resolve_quorum("7", "/d/myid").unwrap_err();
        assert!(e.to_string().starts_with("/d/myid: myid is 7 but zoo.cfg has no server.7"), "{e}");
        let e = c.resolve_quorum("one", "/d/myid").unwrap_err();
        assert!(e.to_string().starts_with("/d/myid: expected a server id"), "{e}");

        let no_limits = ENSEMBLE.replace("initLimit=10\n", "");
        let (c, _) = Config::parse(&no_limits, "zoo.cfg").unwrap();
        assert_eq!(
            c.resolve_quorum("1", "m").unwrap_err().to_string(),
            "zoo.cfg: initLimit is not set (an ensemble needs it)"
        );

        let clash = ENSEMBLE.replace("server.2=127.0.0.2:2888:3888", "server.2=127.0.0.1:3888:3999");
        let (c, _) = Config::parse(&clash, "zoo.cfg").unwrap();
        let e = c.resolve_quorum("1", "m").unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("port clash") && e.message.contains("server.1's election port"), "{e}");

        let client_clash = ENSEMBLE.replace("clientPort=2181", "clientPort=2888");
        let (c, _) = Config::parse(&client_clash, "zoo.cfg").unwrap();
        assert!(c.resolve_quorum("1", "m").unwrap_err().message.contains("port clash"));

        let client_mismatch = ENSEMBLE.replace("clientPort=2181", "clientPort=2182");
        let (c, _) = Config::parse(&client_mismatch, "zoo.cfg").unwrap();
        assert_eq!(c.resolve_quorum("3", "m").unwrap_err().line, Some(8));

        let peer_type = format!("{ENSEMBLE}peerType=observer\n");
        let (c, _) = Config::parse(&peer_type, "zoo.cfg").unwrap();
        assert!(c.resolve_quorum("1", "m").unwrap_err().message.contains("peerType=observer"));

        for (bad, why) in [
            ("server.4=h:1", "missing election port"),
            ("server.4=h:1:1", "must differ"),
            ("server.4=h:1:2:leader", "unknown role"),
            ("server.x=h:1:2", "server.<id>"),
            ("server.4=h:1:2;host:9", "not an IP address"),
            ("server.4=:1:2", "empty host"),
            ("server.1=h:4:5", "declared twice"),
            ("electionAlg=1", "only 3"),
            ("peerType=leader", "participant or observer"),
        ] {
            let text = format!("{ENSEMBLE}{bad}\n");
            let e = Config::parse(&text, "zoo.cfg").unwrap_err();
            assert_eq!(e.line, Some(9), "{bad}: {e}");
            assert!(e.message.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn when_a_config_is_an_ensemble() {
        let one = "dataDir=/d\nserver.1=127.0.0.1:2888:3888\n";
        assert!(!Config::parse(one, "z").unwrap().0.is_distributed());
        let one_not_standalone = format!("{one}standaloneEnabled=false\n");
        assert!(Config::parse(&one_not_standalone, "z").unwrap().0.is_distributed());
        let voter_and_observer = format!("{one}server.2=127.0.0.2:2888:3888:observer\n");
        assert!(!Config::parse(&voter_and_observer, "z").unwrap().0.is_distributed());
        let ro = format!("{ENSEMBLE}zookeeper.readonlymode.enabled=true\n");
        let (c, _) = Config::parse(&ro, "z").unwrap();
        assert!(c.resolve_quorum("1", "m").unwrap().read_only_enabled);
    }

    /// Every key Apache ZooKeeper 3.9's administrator guide documents (as
    /// the guide spells it; `server.x`, `group.x`, `weight.x` as `.1`) is
    /// honoured, accepted and ignored with a reason, or refused naming the
    /// line: none is "unknown".
    const APACHE_DOCUMENTED_KEYS: &[&str] = &[
        "clientPort",
        "secureClientPort",
        "observerMasterPort",
        "dataDir",
        "tickTime",
        "dataLogDir",
        "globalOutstandingLimit",
        "preAllocSize",
        "snapCount",
        "commitLogCount",
        "snapSizeLimitInKb",
        "txnLogSizeLimitInKb",
        "maxCnxns",
        "maxClientCnxns",
        "clientPortAddress",
        "minSessionTimeout",
        "maxSessionTimeout",
        "fsync.warningthresholdms",
        "maxResponseCacheSize",
        "maxGetChildrenResponseCacheSize",
        "autopurge.snapRetainCount",
        "autopurge.purgeInterval",
        "syncEnabled",
        "extendedTypesEnabled",
        "emulate353TTLNodes",
        "watchManaggerName",
        "watcherCleanThreadsNum",
        "watcherCleanThreshold",
        "watcherCleanIntervalInSeconds",
        "maxInProcessingDeadWatchers",
        "bitHashCacheSize",
        "fastleader.minNotificationInterval",
        "fastleader.maxNotificationInterval",
        "connectionMaxTokens",
        "connectionTokenFillTime",
        "connectionTokenFillCount",
        "connectionFreezeTime",
        "connectionDropIncrease",
        "connectionDropDecrease",
        "connectionDecreaseRatio",
        "zookeeper.connection_throttle_weight_enabled",
        "zookeeper.connection_throttle_global_session_weight",
        "zookeeper.connection_throttle_local_session_weight",
        "zookeeper.connection_throttle_renew_session_weight",
        "clientPortListenBacklog",
        "serverCnxnFactory",
        "flushDelay",
        "maxWriteQueuePollTime",
        "maxBatchSize",
        "requestThrottleLimit",
        "requestThrottleStallTime",
        "requestThrottleDropStale",
        "requestStaleLatencyCheck",
        "requestStaleConnectionCheck",
        "zookeeper.request_throttler.shutdownTimeout",
        "advancedFlowControlEnabled",
        "enableEagerACLCheck",
        "maxConcurrentSnapSyncs",
        "maxConcurrentDiffSyncs",
        "digest.enabled",
        "snapshot.trust.empty",
        "audit.enable",
        "audit.impl.class",
        "largeRequestMaxBytes",
        "largeRequestThreshold",
        "outstandingHandshake.limit",
        "throttledOpWaitTime",
        "learner.closeSocketAsync",
        "electionAlg",
        "maxTimeToWaitForEpoch",
        "initLimit",
        "connectToLearnerMasterLimit",
        "leaderServes",
        "server.x",
        "syncLimit",
        "group.x",
        "weight.x",
        "cnxTimeout",
        "quorumCnxnTimeoutMs",
        "quorum.auth.enableSasl",
        "quorum.auth.learnerRequireSasl",
        "quorum.auth.serverRequireSasl",
        "quorum.auth.learner.saslLoginContext",
        "quorum.auth.server.saslLoginContext",
        "quorum.auth.kerberos.servicePrincipal",
        "quorum.cnxn.threads.size",
        "standaloneEnabled",
        "reconfigEnabled",
        "4lw.commands.whitelist",
        "tcpKeepAlive",
        "clientTcpKeepAlive",
        "electionPortBindRetry",
        "observer.reconnectDelayMs",
        "observer.election.DelayMs",
        "localSessionsEnabled",
        "localSessionsUpgradingEnabled",
        "DigestAuthenticationProvider.superDigest",
        "X509AuthenticationProvider.superUser",
        "zookeeper.superUser",
        "ssl.authProvider",
        "zookeeper.ensembleAuthName",
        "zookeeper.sessionRequireClientSASLAuth",
        "sslQuorum",
        "ssl.keyStore.location",
        "ssl.quorum.keyStore.location",
        "ssl.keyStore.password",
        "ssl.quorum.keyStore.password",
        "ssl.keyStore.type",
        "ssl.quorum.keyStore.type",
        "ssl.trustStore.location",
        "ssl.quorum.trustStore.location",
        "ssl.trustStore.password",
        "ssl.quorum.trustStore.password",
        "ssl.trustStore.type",
        "ssl.quorum.trustStore.type",
        "ssl.protocol",
        "ssl.quorum.protocol",
        "ssl.enabledProtocols",
        "ssl.quorum.enabledProtocols",
        "ssl.ciphersuites",
        "ssl.quorum.ciphersuites",
        "ssl.context.supplier.class",
        "ssl.quorum.context.supplier.class",
        "ssl.hostnameVerification",
        "ssl.quorum.hostnameVerification",
        "ssl.crl",
        "ssl.quorum.crl",
        "ssl.ocsp",
        "ssl.quorum.ocsp",
        "ssl.clientAuth",
        "ssl.quorum.clientAuth",
        "ssl.handshakeDetectionTimeoutMillis",
        "ssl.quorum.handshakeDetectionTimeoutMillis",
        "portUnification",
        "sslQuorumReloadCertFiles",
        "client.portUnification",
        "authProvider",
        "kerberos.removeHostFromPrincipal",
        "kerberos.removeRealmFromPrincipal",
        "multiAddress.enabled",
        "multiAddress.reachabilityCheckTimeoutMs",
        "readonlymode.enabled",
        "forceSync",
        "jute.maxbuffer",
        "jute.maxbuffer.extrasize",
        "skipACL",
        "quorumListenOnAllIPs",
        "multiAddress.reachabilityCheckEnabled",
        "zookeeper.datadir.autocreate",
        "zookeeper.db.autocreate",
        "zookeeper.nio.numSelectorThreads",
        "zookeeper.nio.numWorkerThreads",
        "zookeeper.commitProcessor.numWorkerThreads",
        "zookeeper.commitProcessor.maxReadBatchSize",
        "zookeeper.commitProcessor.maxCommitBatchSize",
        "znode.container.checkIntervalMs",
        "znode.container.maxPerMinute",
        "znode.container.maxNeverUsedIntervalMs",
        "zookeeper.messageTracker.BufferSize",
        "zookeeper.messageTracker.Enabled",
        "admin.portUnification",
        "admin.enableServer",
        "admin.serverAddress",
        "admin.serverPort",
        "admin.idleTimeout",
        "admin.commandURL",
        "metricsProvider.className",
        "metricsProvider.httpPort",
        "metricsProvider.exportJvmInfo",
    ];

    /// A value each honoured key accepts (the ignored ones take anything).
    fn sample_value(key: &str) -> &'static str {
        let key = key.strip_prefix("zookeeper.").unwrap_or(key);
        // ssl.quorum.X takes what ssl.X takes.
        let quorum_key = key.strip_prefix("ssl.quorum.").map(|rest| format!("ssl.{rest}"));
        match quorum_key.as_deref().unwrap_or(key) {
            "dataDir" | "dataLogDir" => "/var/lib/zk",
            "clientPortAddress" | "admin.serverAddress" => "127.0.0.1",
            "standaloneEnabled"
            | "readonlymode.enabled"
            | "admin.enableServer"
            | "extendedTypesEnabled"
            | "client.portUnification"
            | "ssl.hostnameVerification"
            | "ssl.crl"
            | "ssl.ocsp"
            | "metricsProvider.exportJvmInfo"
            | "sslQuorum"
            | "portUnification"
            | "sessionRequireClientSASLAuth"
            | "quorum.auth.enableSasl"
            | "quorum.auth.learnerRequireSasl"
            | "quorum.auth.serverRequireSasl" => "false",
            "quorum.auth.learner.saslLoginContext" => "QuorumLearner",
            "quorum.auth.server.saslLoginContext" => "QuorumServer",
            "quorum.auth.kerberos.servicePrincipal" => "zkquorum/localhost",
            "4lw.commands.whitelist" => "srvr",
            "ssl.protocol" => "TLSv1.3",
            "ssl.enabledProtocols" => "TLSv1.2,TLSv1.3",
            "ssl.clientAuth" => "want",
            "ssl.keyStore.type" | "ssl.trustStore.type" => "PEM",
            "admin.commandURL" => "/commands",
            "metricsProvider.className" => PROMETHEUS_PROVIDER_CLASS,
            "metricsProvider.httpHost" => "127.0.0.1",
            "electionAlg" => "3",
            "server.1" => "127.0.0.1:2888:3888",
            "DigestAuthenticationProvider.superDigest" => "super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
            "autopurge.purgeInterval" => "0",
            "maxSessionTimeout" => "60000",
            "snapshotSizeFactor" => "0.33",
            _ => "10",
        }
    }

    #[test]
    fn every_key_apache_documents_is_honoured_ignored_with_a_reason_or_refused() {
        const REFUSED: &[&str] = &["group.1", "weight.1"];
        for documented in APACHE_DOCUMENTED_KEYS {
            let key = match *documented {
                "server.x" => "server.1",
                "group.x" => "group.1",
                "weight.x" => "weight.1",
                k => k,
            };
            let text = format!("dataDir=/var/lib/zk\nclientPort=2181\n{key}={}\n", sample_value(key));
            match Config::parse(&text, "zoo.cfg") {
                Ok((_, warnings)) => {
                    assert!(!REFUSED.contains(&key), "{key} should be refused: {warnings:?}");
                    assert!(!warnings.iter().any(|w| w.contains("unknown key")), "{key}: {warnings:?}");
                    for w in warnings.iter().filter(|w| w.contains(key)) {
                        assert!(w.contains("zoo.cfg:3"), "names the line: {w}");
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    assert!(REFUSED.contains(&key), "{key}={}: {message}", sample_value(key));
                    assert!(message.contains("zoo.cfg") && message.contains(key), "{message}");
                }
            }
        }
        // sslQuorum=true is honoured (server::quorum_tls), not refused.
        let (c, warnings) = Config::parse("dataDir=/var/lib/zk\nsslQuorum=true\n", "zoo.cfg").unwrap();
        assert!(c.quorum_tls.ssl_quorum && warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn quorum_tls_keys_with_apaches_names_and_defaults() {
        let (c, _) = Config::parse("dataDir=/d\n", "zoo.cfg").unwrap();
        let q = &c.quorum_tls;
        assert!(!q.enabled());
        assert_eq!(q.keys.client_auth, ClientAuth::Need, "Apache's default");
        assert!(q.keys.hostname_verification, "Apache verifies quorum peers' names by default");
        let text = "dataDir=/d\nsslQuorum=true\nzookeeper.portUnification=true\n\
            ssl.quorum.keyStore.location=/q.pem\nssl.quorum.keyStore.password=kp\nssl.quorum.keyStore.type=PEM\n\
            ssl.quorum.trustStore.location=/ca.p12\nssl.quorum.trustStore.passwordPath=/pw\n\
            zookeeper.ssl.quorum.hostnameVerification=false\nssl.quorum.clientAuth=want\n\
            ssl.quorum.enabledProtocols=TLSv1.3\nssl.quorum.ciphersuites=TLS_AES_128_GCM_SHA256\n\
            ssl.quorum.handshakeDetectionTimeoutMillis=5000\nsslQuorumReloadCertFiles=true\n\
            ssl.keyStore.location=/client.pem\n";
        let (c, warnings) = Config::parse(text, "zoo.cfg").unwrap();
        let q = &c.quorum_tls;
        assert!(q.ssl_quorum && q.port_unification && q.enabled());
        assert_eq!(q.keys.key_store.location.as_deref(), Some("/q.pem"));
        assert_eq!(q.keys.key_store.password, Secret("kp".into()));
        assert_eq!(q.keys.key_store.store_type.as_deref(), Some("PEM"));
        assert_eq!(q.keys.trust_store.location.as_deref(), Some("/ca.p12"));
        assert_eq!(q.keys.trust_store.password_path.as_deref(), Some("/pw"));
        assert!(!q.keys.hostname_verification);
        assert_eq!(q.keys.client_auth, ClientAuth::Want);
        assert_eq!(q.keys.enabled_protocols, Some(vec!["TLSv1.3".to_owned()]));
        assert_eq!(q.keys.cipher_suites, Some(vec!["TLS_AES_128_GCM_SHA256".to_owned()]));
        assert_eq!(c.client_tls.key_store.location.as_deref(), Some("/client.pem"), "kept apart");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("ssl.quorum.handshakeDetectionTimeoutMillis")));
        assert!(warnings.iter().any(|w| w.contains("sslQuorumReloadCertFiles")));
        let e = Config::parse("dataDir=/d\nssl.quorum.clientAuth=sometimes\n", "zoo.cfg").unwrap_err().to_string();
        assert!(e.contains("zoo.cfg:2") && e.contains("ssl.quorum.clientAuth"), "{e}");
        let e = Config::parse("dataDir=/d\nsslQuorum=yes please\n", "zoo.cfg").unwrap_err().to_string();
        assert!(e.contains("sslQuorum"), "{e}");
    }
}
