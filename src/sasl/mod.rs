//! SASL on the client port (op 102), as Apache's ZooKeeperSaslServer with
//! the DigestLoginModule: DIGEST-MD5 (`digest_md5`) against the users of a
//! JAAS file's server section (`jaas`). Between servers, quorum SASL
//! (`quorum`): the same DIGEST-MD5 in Apache's QuorumAuthPacket exchange.
//! Sans-IO: the server reads the file and draws the nonces; see
//! docs/security.md.

pub mod digest_md5;
pub mod jaas;
pub mod quorum;

use std::collections::BTreeMap;
use std::fmt;

/// Apache's login module for DIGEST-MD5 users (`user_NAME="password"`).
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";
/// The default server section (`zookeeper.sasl.serverconfig`).
pub const DEFAULT_SERVER_SECTION: &str = "Server";

/// The users DIGEST-MD5 clients may log in as.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    users: BTreeMap<String, String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of
    /// user `super`, over the JAAS file's.
    super_password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("users", &self.users.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(users: BTreeMap<String, String>, super_password: Option<String>) -> Self {
        Credentials { users, super_password }
    }

    pub fn password_of(&self, user: &str) -> Option<String> {
        if user == "super" {
            if let Some(p) = &self.super_password {
                return Some(p.clone());
            }
        }
        self.users.get(user).cloned()
    }

    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// The users of `section` in a JAAS file's text. `source` names the file
    /// in errors, which carry its line: a syntax error, no such section, a
    /// Kerberos module (GSSAPI is not served), a section without users.
    pub fn from_jaas(
        text: &str,
        source: &str,
        section: &str,
        super_password: Option<String>,
    ) -> Result<Credentials, String> {
        let sections = jaas::parse(text).map_err(|e| format!("{source}:{}: {}", e.line, e.message))?;
        let Some(found) = sections.iter().find(|s| s.name == section) else {
            let names: Vec<&str> = sections.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "{source}: no JAAS section named {section:?} (zookeeper.sasl.serverconfig); the file has {names:?}"
            ));
        };
        let mut users = BTreeMap::new();
        for module in &found.modules {
            if module.class.contains("Krb5LoginModule") {
                return Err(format!(
                    "{source}:{}: {}: SASL mechanism GSSAPI (Kerberos) is not supported by zoocore (only DIGEST-MD5 with {DIGEST_LOGIN_MODULE})",
                    module.line, module.class
                ));
            }
            for (key, value) in &module.options {
                if let Some(user) = key.strip_prefix("user_") {
                    users.insert(user.to_owned(), value.clone());
                }
            }
        }
        if users.is_empty() && super_password.is_none() {
            return Err(format!(
                "{source}:{}: section {section} has no user_NAME=\"password\" option, so no client could log in",
                found.line
            ));
        }
        Ok(Credentials { users, super_password })
    }
}

/// The `-Djava.security.auth.login.config=PATH` in a JVM flags string
/// (`SERVER_JVMFLAGS`, `JVMFLAGS`, as zkServer.sh passes them to Java).
pub fn jaas_path_from_jvm_flags(flags: &str) -> Option<String> {
    flags
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-Djava.security.auth.login.config="))
        .next_back()
        .map(|path| path.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_from_the_server_section() {
        let text = "Client { a.B required username=\"x\" password=\"y\"; };\nServer {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n user_super=\"s\"\n user_bob=\"b\";\n};\n";
        let c = Credentials::from_jaas(text, "/j.conf", "Server", None).unwrap();
        assert_eq!(c.user_names().collect::<Vec<_>>(), ["bob", "super"]);
        assert_eq!(c.password_of("bob").as_deref(), Some("b"));
        assert_eq!(c.password_of("x"), None);
        let c = Credentials::from_jaas(text, "/j.conf", "Server", Some("over".into())).unwrap();
        assert_eq!(c.password_of("super").as_deref(), Some("over"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let e =
            Credentials::from_jaas("Server {\n a.B required\n user_x=\"y\"\n}", "/j.conf", "Server", None).unwrap_err();
        assert!(e.starts_with("/j.conf:4: expected an option name=value or ';'"), "{e}");
        let e = Credentials::from_jaas("Client { a.B required; };", "/j.conf", "Server", None).unwrap_err();
        assert!(e.contains("no JAAS section named \"Server\"") && e.contains("Client"), "{e}");
        let krb = "Server {\n com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;\n};";
        let e = Credentials::from_jaas(krb, "/j.conf", "Server", None).unwrap_err();
        assert!(e.starts_with("/j.conf:2:") && e.contains("GSSAPI"), "{e}");
        let e = Credentials::from_jaas("Server { a.B required; };", "/j.conf", "Server", None).unwrap_err();
        assert!(e.contains("no user_NAME"), "{e}");
    }

    #[test]
    fn jvm_flags() {
        assert_eq!(
            jaas_path_from_jvm_flags("-Xmx1g -Djava.security.auth.login.config=/etc/zk/jaas.conf -Dx=y").as_deref(),
            Some("/etc/zk/jaas.conf")
        );
        assert_eq!(jaas_path_from_jvm_flags("-Xmx1g"), None);
    }
}
