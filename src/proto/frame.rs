//! Splitting a byte stream into length-prefixed frames, and sniffing the
//! four-letter words a fresh connection may send instead of a frame.

use bytes::{Buf, Bytes, BytesMut};

/// Default `jute.maxbuffer`: the largest frame payload accepted.
pub const DEFAULT_MAX_FRAME_LEN: usize = 0xFFFFF;

/// A length prefix the server must refuse by closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    TooLarge { len: usize, max: usize },
    Negative(i32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max}")
            }
            FrameError::Negative(len) => write!(f, "negative frame length {len}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Cuts `i32 len` + payload frames off the front of a read buffer.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    pub max_frame_len: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder { max_frame_len: DEFAULT_MAX_FRAME_LEN }
    }
}

impl FrameDecoder {
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder { max_frame_len }
    }

    /// Returns the next complete payload (without its prefix), zero-copy,
    /// or `None` when more bytes are needed. The prefix is checked as soon
    /// as it has arrived, so an oversized frame is refused before it is
    /// buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if len < 0 {
            return Err(FrameError::Negative(len));
        }
        let len = len as usize;
        if len > self.max_frame_len {
            return Err(FrameError::TooLarge { len, max: self.max_frame_len });
        }
        if buf.len() < 4 + len {
            // Let the caller's next read land in one allocation.
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Every four-letter word the reference server knows (§10).
pub const FOUR_LETTER_WORDS: [&str; 18] = [
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat", "wchc", "wchp",
    "wchs", "mntr", "isro", "hash",
];

/// If the first four bytes of a not-yet-connected stream spell a known
/// four-letter word, returns it. (They would otherwise be read as a frame
/// length.)
pub fn four_letter_word(first4: [u8; 4]) -> Option<&'static str> {
    FOUR_LETTER_WORDS.iter().copied().find(|w| w.as_bytes() == first4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_frames_across_reads() {
        let mut d = FrameDecoder::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 3, b'a']);
        assert_eq!(d.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"bc\x00\x00\x00\x00\x00\x00");
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::new())));
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn refuses_bad_lengths() {
        let mut d = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::Negative(-1)));
        let mut buf = BytesMut::from(&[0x00, 0x10, 0x00, 0x00][..]);
        assert_eq!(d.decode(&mut buf), Err(FrameError::TooLarge { len: 0x100000, max: 0xFFFFF }));
        let mut buf = BytesMut::from(&[0x00, 0x0F, 0xFF, 0xFF][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
    }

    #[test]
    fn sniffs_four_letter_words() {
        assert_eq!(four_letter_word(*b"ruok"), Some("ruok"));
        assert_eq!(four_letter_word(*b"mntr"), Some("mntr"));
        assert_eq!(four_letter_word([0, 0, 0, 0x2d]), None);
        assert_eq!(four_letter_word(*b"kill"), None);
    }

    proptest! {
        #[test]
        fn any_chunking_yields_the_same_frames(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            cut in 1usize..17,
        ) {
            let mut wire = Vec::new();
            for p in &payloads {
                wire.extend_from_slice(&(p.len() as i32).to_be_bytes());
                wire.extend_from_slice(p);
            }
            let mut d = FrameDecoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(f) = d.decode(&mut buf).unwrap() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, payloads);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = FrameDecoder::new(32);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = d.decode(&mut buf) {}
        }
    }
}
