//! The DIGEST-MD5 digest-response parser (`sasl::digest_md5::parse_response`)
//! and the server's second step on it, as a client's SASL token reaches it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::sasl::digest_md5::{parse_response, DigestMd5Server, Step};

fuzz_target!(|data: &[u8]| {
    let _ = parse_response(data);
    let mut server = DigestMd5Server::new(&[0x5a; 24]);
    let users = |name: &str| (name == "alice").then(|| "alice-secret".to_owned());
    let Ok(Step::Challenge(_)) = server.step(b"", users) else { panic!("no challenge for an empty token") };
    if let Ok(Step::Authenticated { user, .. }) = server.step(data, users) {
        // Only a response computed from the password gets this far.
        assert_eq!(user, "alice");
    }
    assert!(server.step(data, users).is_err(), "a token after the exchange must fail");
});
