//! X.509 v1 certificates on the client port.
//!
//! webpki, rustls's certificate verifier, takes only v3 end-entity
//! certificates; Java takes v1 too, and kazoo's own test harness signs v1
//! server and client certificates (pyOpenSSL without `set_version(2)`). This
//! module lets a v1 certificate through where Java would, and changes nothing
//! for v3 ones:
//! - the server's own certificate (`certified_key`): rustls checks that the
//!   key and the certificate belong together by parsing the certificate with
//!   webpki, which refuses v1; for a v1 certificate the public keys are
//!   compared here instead, byte for byte, as rustls compares them.
//! - a client's v1 certificate (`V1TolerantClientVerifier`): accepted only
//!   when a trust anchor signed it directly, inside its validity period. A v1
//!   certificate has no extensions, so it cannot be a CA and cannot name its
//!   uses; Java treats it as a leaf, and so does this. Trust anchors with
//!   name constraints never accept a v1 certificate (it has no names to
//!   check against them). Every other certificate goes to webpki unchanged.
//!
//! The handshake's own signature (CertificateVerify) is checked with the
//! certificate's public key through webpki's raw-public-key path, with the
//! same algorithms as the v3 path.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use x509_parser::asn1_rs::{Any, FromDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::time::ASN1Time;
use x509_parser::x509::X509Version;

/// The parts of a v1 certificate the checks need, borrowed from its DER.
struct V1Certificate<'a> {
    /// The whole TBSCertificate: what the issuer signed.
    signed: &'a [u8],
    /// The signatureAlgorithm's contents (OID and parameters), as webpki
    /// names algorithms (`signature_alg_id`).
    signature_algorithm: &'a [u8],
    signature: &'a [u8],
    /// The issuer Name's contents, as webpki keeps a trust anchor's subject.
    issuer: &'a [u8],
    spki: &'a [u8],
    parsed: X509Certificate<'a>,
}

impl<'a> V1Certificate<'a> {
    /// The certificate's parts when it is a well-formed X.509 v1
    /// certificate; None for anything else (v3 ones included).
    fn parse(der: &'a [u8]) -> Option<V1Certificate<'a>> {
        let (rest, parsed) = X509Certificate::from_der(der).ok()?;
        if !rest.is_empty() || parsed.version() != X509Version::V1 {
            return None;
        }
        // The algorithm inside what was signed must be the one outside it
        // (RFC 5280 4.1.1.2), or the signature could be read as another's.
        if parsed.tbs_certificate.signature != parsed.signature_algorithm {
            return None;
        }
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
        let (_, outer) = Any::from_der(der).ok()?;
        let contents = outer.data;
        let (after_tbs, _) = Any::from_der(contents).ok()?;
        let signed = &contents[..contents.len() - after_tbs.len()];
        let (_, algorithm) = Any::from_der(after_tbs).ok()?;
        let (_, issuer) = Any::from_der(parsed.tbs_certificate.issuer.as_raw()).ok()?;
        let spki = parsed.tbs_certificate.subject_pki.raw;
        // A BIT STRING with unused bits is no signature any algorithm makes.
        if parsed.signature_value.unused_bits != 0 {
            return None;
        }
        let signature = parsed.signature_value.data.as_ref();
        // Borrow the slices from `der`, not from `parsed`.
        let signature = slice_of(der, signature)?;
        let signature_algorithm = slice_of(der, algorithm.data)?;
        let issuer = slice_of(der, issuer.data)?;
        let spki = slice_of(der, spki)?;
        Some(V1Certificate { signed, signature_algorithm, signature, issuer, spki, parsed })
    }
}

/// `part` as a slice of `whole` (the parser hands out sub-slices of its
/// input, or copies for some encodings; a copy is refused).
fn slice_of<'a>(whole: &'a [u8], part: &[u8]) -> Option<&'a [u8]> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    whole.get(start..start.checked_add(part.len())?)
}

/// The server's certificate chain and key as rustls serves them, checked to
/// belong together. A v3 leaf is checked by rustls (`keys_match`); a v1 leaf,
/// which rustls cannot parse, by comparing its SubjectPublicKeyInfo with the
/// key's. A key whose public half rustls cannot tell is taken, as
/// `CertifiedKey::from_der` (`with_single_cert`) takes it.
pub(crate) fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let signing_key = provider.key_provider.load_private_key(key).map_err(|e| e.to_string())?;
    let certified = CertifiedKey::new(chain, signing_key);
    let leaf = certified.end_entity_cert().map_err(|e| e.to_string())?;
    match V1Certificate::parse(leaf.as_ref()) {
        Some(v1) => match certified.key.public_key() {
            Some(key_spki) if key_spki.as_ref() != v1.spki => {
                return Err("the private key does not belong to the (X.509 v1) certificate".into())
            }
            _ => {}
        },
        None => match certified.keys_match() {
            Ok(()) | Err(Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(e) => return Err(e.to_string()),
        },
    }
    Ok(Arc::new(certified))
}

/// webpki's client verifier, with X.509 v1 client certificates signed
/// directly by a trust anchor accepted as Java accepts them.
#[derive(Debug)]
pub(crate) struct V1TolerantClientVerifier {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: Vec<TrustAnchor<'static>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl V1TolerantClientVerifier {
    pub(crate) fn new(
        webpki: Arc<dyn ClientCertVerifier>,
        anchors: Vec<TrustAnchor<'static>>,
        provider: &CryptoProvider,
    ) -> V1TolerantClientVerifier {
        V1TolerantClientVerifier { webpki, anchors, algorithms: provider.signature_verification_algorithms }
    }

    fn verify_v1(&self, cert: &V1Certificate<'_>, now: UnixTime) -> Result<ClientCertVerified, Error> {
        let now = ASN1Time::from_timestamp(now.as_secs().min(i64::MAX as u64) as i64)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = cert.parsed.validity();
        if now < validity.not_before {
            return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if now > validity.not_after {
            return Err(Error::InvalidCertificate(CertificateError::Expired));
        }
        let algorithms: Vec<_> = self
            .algorithms
            .all
            .iter()
            .filter(|alg| alg.signature_alg_id().as_ref() == cert.signature_algorithm)
            .collect();
        if algorithms.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: cert.signature_algorithm.to_vec(),
                supported_algorithms: self.algorithms.all.iter().map(|alg| alg.signature_alg_id()).collect(),
            }));
        }
        let mut issuer_known = false;
        for anchor in self.anchors.iter().filter(|a| a.subject.as_ref() == cert.issuer) {
            issuer_known = true;
            if anchor.name_constraints.is_some() {
                continue;
            }
            let spki = webpki::spki_for_anchor(anchor);
            let Ok(key) = webpki::RawPublicKeyEntity::try_from(&spki) else { continue };
            if algorithms.iter().any(|alg| key.verify_signature(**alg, cert.signed, cert.signature).is_ok()) {
                return Ok(ClientCertVerified::assertion());
            }
        }
        Err(Error::InvalidCertificate(if issuer_known {
            CertificateError::BadSignature
        } else {
            CertificateError::UnknownIssuer
        }))
    }
}

impl ClientCertVerifier for V1TolerantClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        match V1Certificate::parse(end_entity.as_ref()) {
            // Only anchors are trusted to sign a v1 certificate: whatever
            // else the client sent is not needed and not used.
            Some(v1) => self.verify_v1(&v1, now),
            None => self.webpki.verify_client_cert(end_entity, intermediates, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let Some(v1) = V1Certificate::parse(cert.as_ref()) else {
            return self.webpki.verify_tls12_signature(message, cert, dss);
        };
        let spki = SubjectPublicKeyInfoDer::from(v1.spki);
        let key = webpki::RawPublicKeyEntity::try_from(&spki)
            .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        // TLS 1.2 schemes may map to several algorithms (as rustls's own
        // verify_tls12_signature tries each).
        let candidates = self
            .algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algs)| *algs)
            .ok_or(Error::PeerMisbehaved(rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme))?;
        if candidates.iter().any(|alg| key.verify_signature(*alg, message, dss.signature()).is_ok()) {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        match V1Certificate::parse(cert.as_ref()) {
            Some(v1) => rustls::crypto::verify_tls13_signature_with_raw_key(
                message,
                &SubjectPublicKeyInfoDer::from(v1.spki),
                dss,
                &self.algorithms,
            ),
            None => self.webpki.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;

    use super::*;

    /// 2027-01-01, 2026-01-01 and 2127-01-01: inside, before and after the
    /// fixtures' validity (testdata/x509_v1/README.md).
    const INSIDE_S: u64 = 1_798_761_600;
    const BEFORE_S: u64 = 1_767_225_600;
    const AFTER_S: u64 = 4_954_435_200;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/src/server/testdata/x509_v1/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        crate::server::tls::pem_blocks(&text).unwrap().remove(0).der
    }

    fn cert(name: &str) -> CertificateDer<'static> {
        CertificateDer::from(fixture(name))
    }

    fn key(name: &str) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(fixture(name)))
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn verifier(trusted: &[&str]) -> V1TolerantClientVerifier {
        let mut roots = RootCertStore::empty();
        for name in trusted {
            roots.add(cert(name)).unwrap();
        }
        let anchors = roots.roots.clone();
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build().unwrap();
        V1TolerantClientVerifier::new(webpki, anchors, &provider())
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    fn verdict(v: &V1TolerantClientVerifier, leaf: &CertificateDer<'_>, secs: u64) -> Result<(), Error> {
        v.verify_client_cert(leaf, &[], at(secs)).map(|_| ())
    }

    #[test]
    fn the_fixture_leaf_is_v1_and_the_ca_is_not() {
        assert!(V1Certificate::parse(cert("leaf.pem").as_ref()).is_some());
        assert!(V1Certificate::parse(cert("ca.pem").as_ref()).is_none());
        assert!(V1Certificate::parse(b"not a certificate").is_none());
    }

    #[test]
    fn a_v1_leaf_signed_by_a_trusted_ca_is_accepted_only_inside_its_validity() {
        let v = verifier(&["ca.pem"]);
        let leaf = cert("leaf.pem");
        assert_eq!(verdict(&v, &leaf, INSIDE_S), Ok(()));
        assert_eq!(verdict(&v, &leaf, BEFORE_S), Err(Error::InvalidCertificate(CertificateError::NotValidYet)));
        assert_eq!(verdict(&v, &leaf, AFTER_S), Err(Error::InvalidCertificate(CertificateError::Expired)));
    }

    #[test]
    fn a_v1_leaf_is_refused_by_a_ca_of_the_same_name_with_another_key() {
        let v = verifier(&["other.pem"]);
        assert_eq!(
            verdict(&v, &cert("leaf.pem"), INSIDE_S),
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        );
        // With both trusted, the right one is found.
        assert_eq!(verdict(&verifier(&["other.pem", "ca.pem"]), &cert("leaf.pem"), INSIDE_S), Ok(()));
    }

    #[test]
    fn a_v1_leaf_from_an_untrusted_ca_is_refused() {
        let v = verifier(&["stranger.pem"]);
        assert_eq!(
            verdict(&v, &cert("leaf.pem"), INSIDE_S),
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
        );
    }

    #[test]
    fn a_tampered_v1_leaf_is_refused() {
        let v = verifier(&["ca.pem"]);
        let original = cert("leaf.pem").as_ref().to_vec();
        // The subject's CN, changed after signing.
        let at_name = original.windows(9).position(|w| w == b"v1 client").unwrap();
        let mut renamed = original.clone();
        renamed[at_name + 8] = b'T';
        assert_eq!(
            verdict(&v, &CertificateDer::from(renamed), INSIDE_S),
            Err(Error::InvalidCertificate(CertificateError::BadSignature))
        );
        // The signature's last byte changed.
        let mut resigned = original.clone();
        *resigned.last_mut().unwrap() ^= 0x01;
        assert!(verdict(&v, &CertificateDer::from(resigned), INSIDE_S).is_err());
        // Trailing bytes after the certificate: not a v1 certificate at all,
        // so webpki judges (and refuses) it.
        let mut longer = original;
        longer.push(0);
        assert!(verdict(&v, &CertificateDer::from(longer), INSIDE_S).is_err());
    }

    #[test]
    fn v3_certificates_go_to_webpki() {
        // A CA certificate presented as a client's: webpki refuses it; the v1
        // path never sees it.
        let v = verifier(&["ca.pem"]);
        assert!(verdict(&v, &cert("ca.pem"), INSIDE_S).is_err());
    }

    #[test]
    fn the_server_v1_certificate_must_match_its_key() {
        let p = provider();
        assert!(certified_key(vec![cert("leaf.pem")], key("leaf.pk8"), &p).is_ok());
        let wrong = certified_key(vec![cert("leaf.pem")], key("wrong.pk8"), &p).err().unwrap();
        assert!(wrong.contains("does not belong"), "{wrong}");
    }
}
