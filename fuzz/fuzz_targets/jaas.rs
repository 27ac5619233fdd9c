//! JAAS login configuration parsing (`sasl::jaas::parse`) and the users of
//! its server section (`sasl::Credentials::from_jaas`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::sasl::{jaas, Credentials};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match jaas::parse(&text) {
        Ok(sections) => {
            for section in &sections {
                assert!(section.line >= 1);
            }
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count().max(1) + 1, "{e}"),
    }
    let _ = Credentials::from_jaas(&text, "fuzz/jaas.conf", "Server", None);
});
