//! ACL fixup and checks, auth schemes (world, auth, digest, ip, sasl, x509, super).
//! Sans-IO.

use crate::proto::{Acl, ErrorCode};

/// What the data tree needs to know about the caller of a write: whether an
/// ACL grants a permission, and how to expand/validate a requested ACL.
/// Implemented by `acl::Authz` (the caller's auth ids plus the super digest).
pub trait AuthContext {
    /// True if `acl` grants `perm` to the caller (super always passes; an
    /// empty ACL allows everything).
    fn allowed(&self, acl: &[Acl], perm: i32) -> bool;
    /// ACL fixup for create / setACL: drops duplicates, expands `auth`,
    /// validates schemes and ids. Err(InvalidAcl) as ZooKeeper returns it.
    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode>;
}

/// The identity of transactions the server itself issues (session expiry,
/// the container/TTL reaper) and of their replay: it may do anything.
pub struct ServerIdentity;

impl AuthContext for ServerIdentity {
    fn allowed(&self, _acl: &[Acl], _perm: i32) -> bool {
        true
    }
    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        Ok(acl.to_vec())
    }
}

use crate::proto::Id;
use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::{IpAddr, Ipv6Addr};

/// The digest ACL id for `user:password`: `user:` + base64(SHA1(whole
/// string)). Like ZooKeeper, a string without ':' uses itself as the user.
pub fn digest_id(user_colon_password: &str) -> String {
    let user = user_colon_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_colon_password.as_bytes());
    let encoded = base64::engine::general_purpose::STANDARD.encode(hash);
    format!("{user}:{encoded}")
}

/// Java's `String.split(":")` part count: trailing empty parts are dropped,
/// except that an input with no separator is always one part.
fn java_split_colon_count(s: &str) -> usize {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() == 1 {
        return 1;
    }
    let trailing_empty = parts.iter().rev().take_while(|p| p.is_empty()).count();
    parts.len() - trailing_empty
}

/// Digest ids are valid when `split(":")` yields exactly two parts.
fn valid_digest_id(id: &str) -> bool {
    java_split_colon_count(id) == 2
}

/// Address bytes of a dotted IPv4 (4 bytes) or IPv6 (16 bytes) literal.
fn addr_to_bytes(addr: &str) -> Option<Vec<u8>> {
    if addr.contains(':') {
        let v6: Ipv6Addr = addr.parse().ok()?;
        return Some(v6.octets().to_vec());
    }
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    parts.iter().map(|p| p.parse::<u8>().ok()).collect()
}

/// Splits `addr[/bits]` into address bytes and prefix length, checking range.
fn parse_ip_expr(expr: &str) -> Option<(Vec<u8>, usize)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let bytes = addr_to_bytes(addr)?;
    let max_bits = bytes.len() * 8;
    let bits = match bits {
        Some(b) => b.parse::<usize>().ok().filter(|&b| b <= max_bits)?,
        None => max_bits,
    };
    Some((bytes, bits))
}

fn mask_bytes(bytes: &mut [u8], bits: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        let byte_start = i * 8;
        if byte_start >= bits {
            *b = 0;
        } else if bits - byte_start < 8 {
            *b &= !(0xFFu8 >> (bits - byte_start));
        }
    }
}

/// Whether `id` is an acceptable `sasl` ACL id: Apache's rule (a
/// KerberosName can be built from it): a name with an `@` must have the
/// shape `primary[/instance]@REALM` with no further `/` or `@`.
pub fn valid_kerberos_name(id: &str) -> bool {
    let Some((name, realm)) = id.split_once('@') else { return true };
    if realm.contains(['@', '/']) {
        return false;
    }
    match name.split_once('/') {
        Some((primary, instance)) => !primary.contains('@') && !instance.contains('/'),
        None => true,
    }
}

/// Whether `id` is an acceptable `ip` ACL id (`a.b.c.d[/bits]`, IPv6[/bits]).
pub fn valid_ip_id(id: &str) -> bool {
    parse_ip_expr(id).is_some()
}

/// Whether the caller address `addr` falls inside the ACL expression
/// `acl_expr` (masked prefix compare). IPv4 never matches IPv6.
pub fn ip_matches(addr: &str, acl_expr: &str) -> bool {
    let Some((mut acl_bytes, bits)) = parse_ip_expr(acl_expr) else {
        return false;
    };
    let Some(mut caller) = addr_to_bytes(addr) else {
        return false;
    };
    if caller.len() != acl_bytes.len() {
        return false;
    }
    mask_bytes(&mut acl_bytes, bits);
    mask_bytes(&mut caller, bits);
    caller == acl_bytes
}

/// Schemes whose ids count as "authenticated" for `auth` ACL expansion.
fn is_authenticated_scheme(scheme: &str) -> bool {
    matches!(scheme, "digest" | "sasl" | "x509")
}

/// Schemes with a server-side provider (the ones an ACL entry may name).
fn has_provider(scheme: &str) -> bool {
    matches!(scheme, "digest" | "ip" | "sasl" | "x509")
}

/// One connection's auth identity: the ids it holds, in the order added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authz {
    ids: Vec<Id>,
    remote_ip: String,
}

impl Authz {
    /// A fresh connection from `remote`: holds `ip:<addr>`. IPv4-mapped IPv6
    /// addresses are shown as IPv4, as the JVM does.
    pub fn new(remote: IpAddr) -> Self {
        let remote_ip = remote.to_canonical().to_string();
        Authz { ids: vec![Id::new("ip", &remote_ip)], remote_ip }
    }

    /// A caller rebuilt from its logged ids, so replaying a transaction makes
    /// the same ACL decisions it made when it ran.
    pub fn from_ids(ids: Vec<Id>) -> Self {
        let remote_ip = ids.iter().find(|i| i.scheme == "ip").map(|i| i.id.clone()).unwrap_or_default();
        Authz { ids, remote_ip }
    }

    fn add_id(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
    }

    /// An AuthPacket. `digest` always succeeds (adding `super` first when the
    /// id equals `super_digest`); `ip` succeeds and re-adds the remote
    /// address; anything else is AuthFailed (the caller then closes).
    pub fn add_auth(&mut self, scheme: &str, auth: &[u8], super_digest: Option<&str>) -> Result<(), ErrorCode> {
        match scheme {
            "digest" => {
                let id = digest_id(&String::from_utf8_lossy(auth));
                if super_digest == Some(id.as_str()) {
                    self.add_id(Id::new("super", ""));
                }
                self.add_id(Id::new("digest", &id));
                Ok(())
            }
            "ip" => {
                let ip = self.remote_ip.clone();
                self.add_id(Id::new("ip", &ip));
                Ok(())
            }
            _ => Err(ErrorCode::AuthFailed),
        }
    }

    /// A TLS client's certificate identity: `x509:<subject DN>` (Apache's
    /// X509AuthenticationProvider), and `super` first when the DN is
    /// `X509AuthenticationProvider.superUser`.
    pub fn add_x509(&mut self, subject_dn: &str, is_super: bool) {
        if is_super {
            self.add_id(Id::new("super", subject_dn));
        }
        self.add_id(Id::new("x509", subject_dn));
    }

    /// A completed SASL exchange: `sasl:<user>`, after `super` when the
    /// user is one of `zookeeper.superUser` (Apache's processSasl).
    pub fn add_sasl(&mut self, user: &str, is_super: bool) {
        self.add_id(Id::new("sasl", user));
        if is_super {
            self.add_id(Id::new("super", ""));
        }
    }

    pub fn is_super(&self) -> bool {
        self.ids.iter().any(|id| id.scheme == "super")
    }

    pub fn ids(&self) -> &[Id] {
        &self.ids
    }

    /// whoAmI entries: (scheme, user). digest user is the part before ':',
    /// ip user is the address, schemes without a provider get "".
    pub fn who_am_i(&self) -> Vec<(String, String)> {
        self.ids
            .iter()
            .map(|id| {
                let user = match id.scheme.as_str() {
                    "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
                    "ip" | "sasl" | "x509" => id.id.clone(),
                    _ => String::new(),
                };
                (id.scheme.clone(), user)
            })
            .collect()
    }

    fn holds_match(&self, acl_id: &Id) -> bool {
        self.ids.iter().filter(|mine| mine.scheme == acl_id.scheme).any(|mine| match acl_id.scheme.as_str() {
            "ip" => ip_matches(&mine.id, &acl_id.id),
            "digest" | "x509" => mine.id == acl_id.id,
            // Apache's SASLAuthenticationProvider.matches: the sasl id
            // `super` matches every sasl ACL id.
            "sasl" => mine.id == "super" || mine.id == acl_id.id,
            _ => false,
        })
    }
}

impl AuthContext for Authz {
    fn allowed(&self, acl: &[Acl], perm: i32) -> bool {
        if acl.is_empty() || self.is_super() {
            return true;
        }
        acl.iter()
            .filter(|entry| entry.perms & perm != 0)
            .any(|entry| (entry.id.scheme == "world" && entry.id.id == "anyone") || self.holds_match(&entry.id))
    }

    fn fixup_acl(&self, acl: &[Acl]) -> Result<Vec<Acl>, ErrorCode> {
        let mut unique: Vec<&Acl> = Vec::with_capacity(acl.len());
        for entry in acl {
            if !unique.contains(&entry) {
                unique.push(entry);
            }
        }
        if unique.is_empty() {
            return Err(ErrorCode::InvalidAcl);
        }
        let mut fixed = Vec::with_capacity(unique.len());
        for entry in unique {
            let id = &entry.id;
            if id.scheme == "world" && id.id == "anyone" {
                fixed.push(entry.clone());
            } else if id.scheme == "auth" {
                let before = fixed.len();
                for mine in self.ids.iter().filter(|m| is_authenticated_scheme(&m.scheme)) {
                    fixed.push(Acl { perms: entry.perms, id: mine.clone() });
                }
                if fixed.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
            } else {
                let valid = has_provider(&id.scheme)
                    && match id.scheme.as_str() {
                        "digest" => valid_digest_id(&id.id),
                        "ip" => valid_ip_id(&id.id),
                        "sasl" => valid_kerberos_name(&id.id),
                        _ => true,
                    };
                if !valid {
                    return Err(ErrorCode::InvalidAcl);
                }
                fixed.push(entry.clone());
            }
        }
        Ok(fixed)
    }
}

/// getACL for a caller without ADMIN on the node: every digest id loses
/// everything from its first ':' on, replaced by ":x" (`alice:x`).
pub fn redact_for_get_acl(acl: &[Acl], caller_has_admin: bool) -> Vec<Acl> {
    if caller_has_admin {
        return acl.to_vec();
    }
    acl.iter()
        .map(|entry| {
            if entry.id.scheme != "digest" {
                return entry.clone();
            }
            let id = match entry.id.id.split_once(':') {
                Some((user, _)) => format!("{user}:x"),
                None => entry.id.id.clone(),
            };
            Acl { perms: entry.perms, id: Id { scheme: "digest".into(), id } }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms;
    use std::net::Ipv4Addr;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, id: Id::new(scheme, id) }
    }

    fn local() -> Authz {
        Authz::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))
    }

    #[test]
    fn sasl_ids_as_apache() {
        let mut alice = local();
        alice.add_sasl("alice", false);
        assert!(alice.allowed(&[acl(perms::READ, "sasl", "alice")], perms::READ));
        assert!(!alice.allowed(&[acl(perms::READ, "sasl", "bob")], perms::READ));
        assert!(!alice.is_super());
        assert_eq!(alice.fixup_acl(&[acl(perms::ALL, "auth", "")]).unwrap(), vec![acl(perms::ALL, "sasl", "alice")]);
        // SASLAuthenticationProvider.matches: the sasl id "super" matches any sasl id.
        let mut sasl_super = local();
        sasl_super.add_sasl("super", false);
        assert!(sasl_super.allowed(&[acl(perms::READ, "sasl", "bob")], perms::READ));
        assert!(!sasl_super.allowed(&[acl(perms::READ, "digest", "bob:x")], perms::READ));
        let mut admin = local();
        admin.add_sasl("admin", true);
        assert!(admin.is_super() && admin.allowed(&[acl(perms::READ, "digest", "bob:x")], perms::READ));
        // KerberosName validity.
        for (id, ok) in [("alice", true), ("zk/host@REALM", true), ("a@R", true), ("a@b@c", false), ("a/b/c@R", false)]
        {
            assert_eq!(local().fixup_acl(&[acl(perms::ALL, "sasl", id)]).is_ok(), ok, "{id}");
        }
    }

    #[test]
    fn digest_vectors() {
        assert_eq!(digest_id("alice:secret"), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        assert_eq!(digest_id("super:admin"), "super:xQJmxLMiHGwaqBvst5y6rkB6HQs=");
    }

    #[test]
    fn ip_ids_and_matching() {
        assert!(valid_ip_id("10.0.0.1"));
        assert!(valid_ip_id("10.0.0.0/8"));
        assert!(valid_ip_id("::1"));
        assert!(valid_ip_id("fe80::/10"));
        assert!(!valid_ip_id("10.0.0.0/33"));
        assert!(!valid_ip_id("10.0.0"));
        assert!(!valid_ip_id("256.0.0.1"));
        assert!(!valid_ip_id("host.example"));
        assert!(!valid_ip_id("10.0.0.1/x"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("10.1.2.3", "10.1.2.3"));
        assert!(!ip_matches("10.1.2.4", "10.1.2.3"));
        assert!(ip_matches("10.1.2.3", "10.1.2.0/23"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("10.1.2.3", "0.0.0.0/0"));
        assert!(ip_matches("fe80::1", "fe80::/16"));
        assert!(!ip_matches("10.1.2.3", "::/0"));
        assert!(!ip_matches("::1", "0.0.0.0/0"));
    }

    #[test]
    fn auth_digest_super_and_failures() {
        let mut a = local();
        assert_eq!(a.ids(), &[Id::new("ip", "10.1.2.3")]);
        let sup = digest_id("super:admin");
        a.add_auth("digest", b"alice:secret", Some(&sup)).unwrap();
        assert!(!a.is_super());
        a.add_auth("digest", b"super:admin", Some(&sup)).unwrap();
        assert!(a.is_super());
        assert_eq!(a.add_auth("world", b"anyone", None), Err(ErrorCode::AuthFailed));
        assert_eq!(a.add_auth("kerberos", b"x", None), Err(ErrorCode::AuthFailed));
        assert_eq!(a.add_auth("ip", b"", None), Ok(()));
        assert_eq!(
            a.who_am_i(),
            vec![
                ("ip".to_owned(), "10.1.2.3".to_owned()),
                ("digest".to_owned(), "alice".to_owned()),
                ("super".to_owned(), String::new()),
                ("digest".to_owned(), "super".to_owned()),
            ]
        );
    }

    #[test]
    fn x509_ids_match_exactly_and_super_passes() {
        let dn = "CN=alice,O=Acme";
        let mut a = local();
        a.add_x509(dn, false);
        assert!(!a.is_super());
        assert!(a.allowed(&[acl(perms::READ, "x509", dn)], perms::READ));
        assert!(!a.allowed(&[acl(perms::READ, "x509", "CN=bob,O=Acme")], perms::READ));
        // x509 counts as authenticated for `auth` ACLs
        assert_eq!(a.fixup_acl(&[acl(31, "auth", "")]), Ok(vec![acl(31, "x509", dn)]));
        let mut s = local();
        s.add_x509("CN=admin", true);
        assert!(s.is_super());
        assert!(s.allowed(&[acl(perms::READ, "x509", dn)], perms::ADMIN));
    }

    #[test]
    fn mapped_ipv6_shows_as_ipv4() {
        let a = Authz::new("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(a.ids()[0].id, "127.0.0.1");
    }

    #[test]
    fn acl_checks() {
        let mut a = local();
        assert!(a.allowed(&[], perms::ADMIN));
        assert!(a.allowed(&[acl(perms::READ, "world", "anyone")], perms::READ));
        assert!(!a.allowed(&[acl(perms::READ, "world", "anyone")], perms::WRITE));
        assert!(a.allowed(&[acl(perms::ALL, "ip", "10.0.0.0/8")], perms::WRITE));
        assert!(!a.allowed(&[acl(perms::ALL, "ip", "192.168.0.0/16")], perms::WRITE));
        let alice = acl(perms::ALL, "digest", &digest_id("alice:secret"));
        assert!(!a.allowed(std::slice::from_ref(&alice), perms::READ));
        a.add_auth("digest", b"alice:secret", None).unwrap();
        assert!(a.allowed(std::slice::from_ref(&alice), perms::READ));
        // a "super" ACL entry has no provider and never matches
        assert!(!local().allowed(&[acl(perms::ALL, "super", "")], perms::READ));
        let mut s = local();
        s.add_auth("digest", b"super:admin", Some(&digest_id("super:admin"))).unwrap();
        assert!(s.allowed(&[acl(perms::READ, "ip", "1.2.3.4")], perms::ADMIN));
    }

    #[test]
    fn fixup() {
        let mut a = local();
        assert_eq!(a.fixup_acl(&[]), Err(ErrorCode::InvalidAcl));
        let open = acl(perms::ALL, "world", "anyone");
        assert_eq!(a.fixup_acl(&[open.clone(), open.clone()]), Ok(vec![open.clone()]));
        assert_eq!(a.fixup_acl(&[acl(31, "world", "someone")]), Err(ErrorCode::InvalidAcl));
        // ip alone is not "authenticated"
        assert_eq!(a.fixup_acl(&[acl(31, "auth", "")]), Err(ErrorCode::InvalidAcl));
        a.add_auth("digest", b"alice:secret", None).unwrap();
        a.add_auth("digest", b"bob:pw", None).unwrap();
        assert_eq!(
            a.fixup_acl(&[acl(5, "auth", "ignored")]),
            Ok(vec![acl(5, "digest", &digest_id("alice:secret")), acl(5, "digest", &digest_id("bob:pw")),])
        );
        assert!(a.fixup_acl(&[acl(1, "digest", "u:h")]).is_ok());
        assert!(a.fixup_acl(&[acl(1, "digest", "u:h:")]).is_ok()); // Java drops trailing ""
        assert_eq!(a.fixup_acl(&[acl(1, "digest", "u")]), Err(ErrorCode::InvalidAcl));
        assert_eq!(a.fixup_acl(&[acl(1, "digest", "u:h:z")]), Err(ErrorCode::InvalidAcl));
        assert!(a.fixup_acl(&[acl(1, "ip", "10.0.0.0/8")]).is_ok());
        assert_eq!(a.fixup_acl(&[acl(1, "ip", "nope")]), Err(ErrorCode::InvalidAcl));
        assert_eq!(a.fixup_acl(&[acl(1, "foo", "x")]), Err(ErrorCode::InvalidAcl));
        assert_eq!(a.fixup_acl(&[acl(1, "super", "")]), Err(ErrorCode::InvalidAcl));
    }

    #[test]
    fn get_acl_redaction() {
        let list = vec![
            acl(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
            acl(1, "ip", "10.0.0.1"),
            acl(1, "digest", "nocolon"),
        ];
        assert_eq!(redact_for_get_acl(&list, true), list);
        let r = redact_for_get_acl(&list, false);
        assert_eq!(r[0], acl(31, "digest", "alice:x"));
        assert_eq!(r[1], list[1]);
        assert_eq!(r[2], list[2]);
    }
}
