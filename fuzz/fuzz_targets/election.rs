//! The election port (`zab::election_wire`): the connection preamble, then
//! frames of notifications, with the config text's version. A preamble or
//! notification that decodes is re-encoded and must decode the same.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use zoocore::zab::election_wire::{
    config_version, decode_preamble, encode_preamble, split_frame, Notification, PreambleVersion,
};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((preamble, used))) = decode_preamble(data) else { return };
    assert!(used <= data.len());
    // V1 sends only the first address; the legacy form only the sid.
    let comparable = match preamble.version {
        PreambleVersion::V2 => true,
        PreambleVersion::V1 => preamble.election_addresses.len() == 1,
        PreambleVersion::LegacyBareSid => true,
    };
    let mut out = BytesMut::new();
    if comparable && encode_preamble(&preamble, &mut out).is_ok() {
        let again = decode_preamble(&out).expect("a re-encoded preamble decodes").expect("whole");
        assert_eq!(again, (preamble, out.len()));
    }
    let mut rest = &data[used..];
    while let Ok(Some((payload, used))) = split_frame(rest) {
        rest = &rest[used..];
        let Ok(n) = Notification::decode(Bytes::copy_from_slice(payload)) else { continue };
        if let Some(config) = &n.config {
            let _ = config_version(config);
        }
        let mut out = BytesMut::new();
        if n.encode(&mut out).is_ok() {
            assert_eq!(out.len(), n.encoded_len());
            // A version of 1 or below (negative too) is written in the
            // legacy layout, which carries none and decodes as 0.
            let expected = if n.version <= 1 { Notification { version: 0, ..n.clone() } } else { n.clone() };
            assert_eq!(Notification::decode(out.freeze()), Ok(expected), "notification round trip");
        }
    }
});
