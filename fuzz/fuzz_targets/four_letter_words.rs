//! The four-letter words: the whitelist as zoo.cfg gives it (first part of
//! the input) and the sniffing of a fresh connection's first bytes (the
//! rest), then the answers that need no shard state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoocore::config::Config;
use zoocore::proto::frame::{four_letter_word, FOUR_LETTER_WORDS};
use zoocore::server::fourlw::local_answer;
use zoocore::server::stats::ServerMode;
use zoocore_fuzz::split_two;

fuzz_target!(|data: &[u8]| {
    let (whitelist, stream) = split_two(data);
    let whitelist = String::from_utf8_lossy(whitelist);
    // One logical line: a newline would start another key.
    let whitelist: String = whitelist.chars().filter(|c| *c != '\n' && *c != '\r' && *c != '\\').collect();
    let config = match Config::parse(&format!("4lw.commands.whitelist={whitelist}\n"), "fuzz.cfg") {
        Ok((config, _)) => config,
        Err(_) => return,
    };
    let Some(first) = stream.get(..4) else { return };
    let Some(word) = four_letter_word([first[0], first[1], first[2], first[3]]) else {
        assert!(!FOUR_LETTER_WORDS.iter().any(|w| w.as_bytes() == first));
        return;
    };
    assert_eq!(word.as_bytes(), first);
    if !config.fourlw_enabled(word) {
        return;
    }
    // conf, dirs and envi walk directories or read /proc: not decoders.
    if matches!(word, "ruok" | "isro" | "gtmk" | "stmk") {
        for mode in [ServerMode::Standalone, ServerMode::ReadOnly] {
            assert!(local_answer(word, &config, mode).is_some());
        }
    }
});
