//! Quorum SASL's `QuorumAuthPacket` decoder (`sasl::quorum`), over a stream
//! of packets as an election or learner connection carries them, and both
//! exchanges (`ServerExchange`, `LearnerExchange`) fed what decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::sasl::quorum::{
    LearnerExchange, LearnerLogin, QuorumAuthPacket, ServerExchange, ServerStep, PACKET_HEADER_BYTES, TOKEN_MAX_BYTES,
};
use zoocore::sasl::Credentials;

fuzz_target!(|data: &[u8]| {
    let users = Credentials::new([("zk".to_owned(), "zk-secret".to_owned())].into(), None);
    let mut server = ServerExchange::new(&[0x5a; 24]);
    let login = LearnerLogin { username: "zk".into(), password: "zk-secret".into() };
    let (mut learner, _) = LearnerExchange::start(login, &[0x33; 16]);
    let mut rest = data;
    loop {
        match QuorumAuthPacket::decode(rest) {
            Ok(Some((packet, used))) => {
                assert!((PACKET_HEADER_BYTES..=rest.len()).contains(&used));
                // Byte-exact: what decodes encodes back to the same bytes.
                assert_eq!(packet.encode(), rest[..used]);
                if let ServerStep::Authenticated { user, .. } = server.on_packet(&packet, &users) {
                    assert_eq!(user, "zk", "only a response made from the password authenticates");
                }
                let _ = learner.on_packet(&packet);
                rest = &rest[used..];
            }
            Ok(None) => {
                assert!(rest.len() < PACKET_HEADER_BYTES + TOKEN_MAX_BYTES, "a whole packet was not taken");
                break;
            }
            Err(_) => break,
        }
    }
});
