//! zoo.cfg parsing (`Config::parse`), and for an ensemble config the myid
//! check (`resolve_quorum`) with a myid taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::config::Config;
use zoocore_fuzz::split_two;

fuzz_target!(|data: &[u8]| {
    let (myid, text) = split_two(data);
    let text = String::from_utf8_lossy(text);
    let Ok((config, _warnings)) = Config::parse(&text, "fuzz.cfg") else { return };
    if !config.servers.is_empty() {
        let myid = String::from_utf8_lossy(myid);
        if let Ok(quorum) = config.resolve_quorum(&myid, "fuzz/myid") {
            assert!(quorum.me().is_some());
        }
    }
});
