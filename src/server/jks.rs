//! Java KeyStore (JKS) files: `ssl.keyStore.type=JKS` / `ssl.trustStore.type=JKS`,
//! or a `.jks` file name, as Apache ZooKeeper takes them (kazoo's own test
//! harness writes its stores this way, with pyjks).
//!
//! The format (Sun's `JavaKeyStore`): magic `FEEDFEED`, version 1 or 2, an
//! entry count, then private-key entries (an `EncryptedPrivateKeyInfo` under
//! Sun's key protector, and the certificate chain) and trusted-certificate
//! entries, closed by a SHA-1 over the password, the words "Mighty
//! Aphrodite" and everything before it. The key protector is a SHA-1 key
//! stream XORed over the PKCS#8 key, with a SHA-1 check of the plain key.
//! Read only (zoocore never writes stores); plain functions over bytes, no
//! I/O. Hand-written because the one Rust JKS crate (`jks`, 2024, one
//! author) brings its own ASN.1 stack and RNG for what is ~150 lines here;
//! SHA-1 is RustCrypto's `sha1`, already a dependency.

use sha1::{Digest, Sha1};

/// A private-key entry: the PKCS#8 key (decrypted) and its chain, leaf first.
pub struct JksPrivateKey {
    pub alias: String,
    pub pkcs8_der: Vec<u8>,
    pub chain_der: Vec<Vec<u8>>,
}

#[derive(Default)]
pub struct JksStore {
    pub private_keys: Vec<JksPrivateKey>,
    pub trusted_der: Vec<Vec<u8>>,
}

const JKS_MAGIC: u32 = 0xFEED_FEED;
const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
/// Sun's JKS key protector, 1.3.6.1.4.1.42.2.17.1.1, as DER content bytes.
const SUN_KEY_PROTECTOR_OID: [u8; 10] = [0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];
const SHA1_BYTES: usize = 20;

/// Whether `data` is a JKS file (rather than, say, a PKCS12 one under a
/// `.jks` name, which Java's JKS loader also reads).
pub fn looks_like_jks(data: &[u8]) -> bool {
    data.get(..4) == Some(&JKS_MAGIC.to_be_bytes())
}

/// Parses a JKS store, checking its integrity and decrypting its keys with
/// `password` (Apache uses the store password for the keys too). An
/// empty password skips the integrity check, as Java's loader does.
pub fn parse_jks(data: &[u8], password: &str) -> Result<JksStore, String> {
    let mut r = Reader { data, at: 0 };
    match r.u32()? {
        JKS_MAGIC => {}
        JCEKS_MAGIC => return Err("a JCEKS store: zoocore reads JKS, PKCS12 and PEM stores".into()),
        _ => return Err("not a JKS store (no FEEDFEED magic)".into()),
    }
    let version = r.u32()?;
    if version != 1 && version != 2 {
        return Err(format!("JKS version {version}: expected 1 or 2"));
    }
    let count = r.u32()?;
    let pw = password_bytes(password);
    let mut store = JksStore::default();
    for _ in 0..count {
        match r.u32()? {
            TAG_PRIVATE_KEY => {
                let alias = r.utf()?;
                let _created_ms = r.u64()?;
                let protected = r.bytes_u32()?;
                let chain_len = r.u32()?;
                let mut chain_der = Vec::new();
                for _ in 0..chain_len {
                    chain_der.push(r.certificate(version)?);
                }
                let pkcs8_der =
                    unprotect_key(protected, &pw).map_err(|why| format!("the key of entry \"{alias}\": {why}"))?;
                store.private_keys.push(JksPrivateKey { alias, pkcs8_der, chain_der });
            }
            TAG_TRUSTED_CERT => {
                let _alias = r.utf()?;
                let _created_ms = r.u64()?;
                store.trusted_der.push(r.certificate(version)?);
            }
            tag => return Err(format!("unknown JKS entry tag {tag} (a secret-key entry is JCEKS only)")),
        }
    }
    let signed_len = r.at;
    let stored = r.take(SHA1_BYTES)?;
    if !password.is_empty() {
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(b"Mighty Aphrodite");
        h.update(&data[..signed_len]);
        if h.finalize().as_slice() != stored {
            return Err("wrong password (the store's integrity check failed)".into());
        }
    }
    Ok(store)
}

/// A Java password as the JKS digests take it: its UTF-16 code units, big-endian.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(|u| u.to_be_bytes()).collect()
}

/// Sun's KeyProtector: `EncryptedPrivateKeyInfo { algorithm, salt(20) ||
/// key XOR stream || SHA-1(pw || key) }`, the stream SHA-1(pw || salt),
/// then SHA-1(pw || previous block).
fn unprotect_key(der: &[u8], pw: &[u8]) -> Result<Vec<u8>, String> {
    let mut outer = Der { data: der, at: 0 };
    let info = outer.expect(0x30, "EncryptedPrivateKeyInfo")?;
    let mut info = Der { data: info, at: 0 };
    let algorithm = info.expect(0x30, "its algorithm")?;
    let mut algorithm = Der { data: algorithm, at: 0 };
    let oid = algorithm.expect(0x06, "the algorithm's OID")?;
    if oid != SUN_KEY_PROTECTOR_OID {
        return Err("protected by an algorithm other than Sun's JKS key protector".into());
    }
    let encrypted = info.expect(0x04, "the encrypted key")?;
    if encrypted.len() < 2 * SHA1_BYTES {
        return Err("the encrypted key is too short".into());
    }
    let (salt, rest) = encrypted.split_at(SHA1_BYTES);
    let (cipher, check) = rest.split_at(rest.len() - SHA1_BYTES);
    let mut plain = Vec::with_capacity(cipher.len());
    let mut block: Vec<u8> = salt.to_vec();
    for chunk in cipher.chunks(SHA1_BYTES) {
        let mut h = Sha1::new();
        h.update(pw);
        h.update(&block);
        block = h.finalize().to_vec();
        plain.extend(chunk.iter().zip(&block).map(|(c, k)| c ^ k));
    }
    let mut h = Sha1::new();
    h.update(pw);
    h.update(&plain);
    if h.finalize().as_slice() != check {
        return Err("wrong password (the private key does not decrypt)".into());
    }
    Ok(plain)
}

/// The big-endian fields of the store, every read bounds-checked.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| {
            format!("truncated JKS store: {n} bytes wanted at offset {} of {}", self.at, self.data.len())
        })?;
        let out = &self.data[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(((self.u32()? as u64) << 32) | self.u32()? as u64)
    }

    fn bytes_u32(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Java's `writeUTF`: a 16-bit length and modified UTF-8.
    fn utf(&mut self) -> Result<String, String> {
        let b = self.take(2)?;
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }

    /// A certificate: its type (version 2 only; "X.509") and its DER bytes.
    fn certificate(&mut self, version: u32) -> Result<Vec<u8>, String> {
        if version == 2 {
            let kind = self.utf()?;
            if kind != "X.509" {
                return Err(format!("a certificate of type {kind}: expected X.509"));
            }
        }
        Ok(self.bytes_u32()?.to_vec())
    }
}

/// Just enough DER for the key's wrapper: a tag, a length, the contents.
struct Der<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Der<'a> {
    fn expect(&mut self, tag: u8, what: &str) -> Result<&'a [u8], String> {
        let bad = || format!("unreadable protected key ({what})");
        let (&t, rest) = self.data.get(self.at..).and_then(|d| d.split_first()).ok_or_else(bad)?;
        if t != tag {
            return Err(bad());
        }
        let (&first, rest) = rest.split_first().ok_or_else(bad)?;
        let (len, header) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7F) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            (rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize), 2 + n)
        };
        let start = self.at + header;
        let end = start.checked_add(len).filter(|&e| e <= self.data.len()).ok_or_else(bad)?;
        self.at = end;
        Ok(&self.data[start..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store as keytool / pyjks write it, built here with the format's
    /// own rules (the encoder half of what `parse_jks` reads).
    fn build_store(password: &str, key: &[u8], chain: &[&[u8]], trusted: &[&[u8]]) -> Vec<u8> {
        let pw = password_bytes(password);
        let salt = [7u8; SHA1_BYTES];
        let mut cipher = Vec::new();
        let mut block = salt.to_vec();
        for chunk in key.chunks(SHA1_BYTES) {
            let mut h = Sha1::new();
            h.update(&pw);
            h.update(&block);
            block = h.finalize().to_vec();
            cipher.extend(chunk.iter().zip(&block).map(|(c, k)| c ^ k));
        }
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(key);
        let mut encrypted = salt.to_vec();
        encrypted.extend(&cipher);
        encrypted.extend(h.finalize());
        let der = |tag: u8, body: &[u8]| -> Vec<u8> {
            let mut out = vec![tag];
            if body.len() < 0x80 {
                out.push(body.len() as u8);
            } else {
                out.push(0x82);
                out.extend((body.len() as u16).to_be_bytes());
            }
            out.extend(body);
            out
        };
        let mut algorithm = der(0x06, &SUN_KEY_PROTECTOR_OID);
        algorithm.extend([0x05, 0x00]);
        let mut info = der(0x30, &algorithm);
        info.extend(der(0x04, &encrypted));
        let protected = der(0x30, &info);

        let utf = |s: &str, out: &mut Vec<u8>| {
            out.extend((s.len() as u16).to_be_bytes());
            out.extend(s.as_bytes());
        };
        let mut out = Vec::new();
        out.extend(JKS_MAGIC.to_be_bytes());
        out.extend(2u32.to_be_bytes());
        out.extend((1 + trusted.len() as u32).to_be_bytes());
        out.extend(TAG_PRIVATE_KEY.to_be_bytes());
        utf("server cert", &mut out);
        out.extend(0u64.to_be_bytes());
        out.extend((protected.len() as u32).to_be_bytes());
        out.extend(&protected);
        out.extend((chain.len() as u32).to_be_bytes());
        for c in chain {
            utf("X.509", &mut out);
            out.extend((c.len() as u32).to_be_bytes());
            out.extend(*c);
        }
        for c in trusted {
            out.extend(TAG_TRUSTED_CERT.to_be_bytes());
            utf("kazoo ca", &mut out);
            out.extend(0u64.to_be_bytes());
            utf("X.509", &mut out);
            out.extend((c.len() as u32).to_be_bytes());
            out.extend(*c);
        }
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(b"Mighty Aphrodite");
        h.update(&out);
        out.extend(h.finalize());
        out
    }

    #[test]
    fn reads_keys_chains_and_trusted_certificates() {
        let key: Vec<u8> = (0..=200u8).collect();
        let data = build_store("apassword", &key, &[b"leaf", b"ca"], &[b"root"]);
        assert!(looks_like_jks(&data));
        let store = parse_jks(&data, "apassword").unwrap();
        assert_eq!(store.private_keys.len(), 1);
        assert_eq!(store.private_keys[0].alias, "server cert");
        assert_eq!(store.private_keys[0].pkcs8_der, key);
        assert_eq!(store.private_keys[0].chain_der, vec![b"leaf".to_vec(), b"ca".to_vec()]);
        assert_eq!(store.trusted_der, vec![b"root".to_vec()]);
    }

    #[test]
    fn a_wrong_password_is_named_and_an_empty_one_skips_only_the_integrity_check() {
        let data = build_store("apassword", b"0123456789abcdefghijklmnopqrstuvwxyz", &[b"leaf"], &[]);
        let err = parse_jks(&data, "other").err().unwrap();
        assert!(err.contains("wrong password"), "{err}");
        let err = parse_jks(&data, "").err().unwrap();
        assert!(err.contains("the key of entry \"server cert\": wrong password"), "{err}");
    }

    #[test]
    fn damaged_and_truncated_stores_are_errors_never_panics() {
        let data = build_store("pw", &[1u8; 300], &[b"leaf"], &[b"root"]);
        for cut in 0..data.len() {
            assert!(parse_jks(&data[..cut], "pw").is_err(), "cut at {cut}");
        }
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x41;
            assert!(parse_jks(&bad, "pw").is_err(), "byte {i} flipped");
        }
        assert!(parse_jks(&JCEKS_MAGIC.to_be_bytes(), "pw").err().unwrap().contains("JCEKS"));
    }
}
