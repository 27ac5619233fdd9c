//! The client port's frame splitter (`proto::frame::FrameDecoder`) over a
//! stream cut into arbitrary reads: no panic, every frame within the limit,
//! and the same frames whatever the chunking.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use zoocore::proto::frame::FrameDecoder;
use zoocore_fuzz::{chunks, split_two};

/// Small enough that the fuzzer reaches the limit, large enough for seeds.
const MAX_FRAME_LEN: usize = 4096;

fn frames(parts: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX_FRAME_LEN);
                    got.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(_) => return (got, true),
            }
        }
        // Never more buffered than one frame and its prefix (plus the read).
        assert!(buf.len() <= 4 + MAX_FRAME_LEN + part.len());
    }
    (got, false)
}

fuzz_target!(|data: &[u8]| {
    let (sizes, stream) = split_two(data);
    let whole = frames(&[stream]);
    let cut = frames(&chunks(stream, sizes));
    assert_eq!(whole, cut, "chunking changed the frames");
});
