//! The pieces a wchc / wchp answer is handed on in, each in an anonymous
//! mapping of its own.
//!
//! A 10M-watch answer is hundreds of MiB. Held in heap Strings, its pieces
//! came from glibc's heap (the dynamic mmap threshold rises past the piece
//! size after the first large free), and once the last of them was sent and
//! freed, one free() trimmed the whole top of the heap: a single brk(2) of
//! 13-15 ms under strace, and gets on that shard waited 29-41 ms while a
//! 10M-watch dump was sent (docs/benchmarks/scale-notes.md). A mapping per
//! piece is unmapped on its own, about a millisecond of kernel work at most
//! per piece, between the shard's other tasks.

use bytes::Bytes;
use memmap2::MmapMut;

/// The bytes of a piece: a mapping and how much of it was written.
struct FilledMapping {
    map: MmapMut,
    len: usize,
}

impl AsRef<[u8]> for FilledMapping {
    fn as_ref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

/// Collects text into pieces of `piece_bytes` (the last one shorter).
pub struct DumpPieces {
    piece_bytes: usize,
    current: Option<FilledMapping>,
    done: Vec<Bytes>,
}

impl DumpPieces {
    pub fn new(piece_bytes: usize) -> DumpPieces {
        DumpPieces { piece_bytes: piece_bytes.max(1), current: None, done: Vec::new() }
    }

    /// Appends `text`, closing each piece that fills up. Without a mapping
    /// (mmap failed: out of address space or map count), the rest of this
    /// text becomes a heap piece of its own; the answer stays whole.
    pub fn push(&mut self, mut text: &[u8]) {
        while !text.is_empty() {
            if self.current.is_none() {
                match MmapMut::map_anon(self.piece_bytes) {
                    Ok(map) => self.current = Some(FilledMapping { map, len: 0 }),
                    Err(e) => {
                        tracing::debug!(error = %e, "no mapping for a dump piece; using the heap");
                        self.done.push(Bytes::copy_from_slice(text));
                        return;
                    }
                }
            }
            let Some(piece) = self.current.as_mut() else { return };
            let n = (self.piece_bytes - piece.len).min(text.len());
            piece.map[piece.len..piece.len + n].copy_from_slice(&text[..n]);
            piece.len += n;
            text = &text[n..];
            if piece.len == self.piece_bytes {
                self.close_current();
            }
        }
    }

    fn close_current(&mut self) {
        if let Some(piece) = self.current.take().filter(|p| p.len > 0) {
            self.done.push(Bytes::from_owner(piece));
        }
    }

    /// The pieces, in order.
    pub fn finish(mut self) -> Vec<Bytes> {
        self.close_current();
        self.done
    }
}

/// The registry formats its dump straight into the pieces.
impl std::fmt::Write for DumpPieces {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_hold_the_text_in_order_and_only_the_last_is_short() {
        let mut pieces = DumpPieces::new(4096);
        let mut expected = Vec::new();
        for i in 0..5000u32 {
            let line = format!("/path/{i}\n\t0x{i:x}\n");
            expected.extend_from_slice(line.as_bytes());
            pieces.push(line.as_bytes());
        }
        let done = pieces.finish();
        assert!(done.len() > 1);
        for piece in &done[..done.len() - 1] {
            assert_eq!(piece.len(), 4096);
        }
        assert!(!done.last().unwrap().is_empty() && done.last().unwrap().len() <= 4096);
        assert_eq!(done.concat(), expected);
    }

    #[test]
    fn an_empty_dump_has_no_pieces_and_a_text_larger_than_a_piece_spans_several() {
        assert!(DumpPieces::new(4096).finish().is_empty());
        let mut pieces = DumpPieces::new(4096);
        let text = vec![b'x'; 3 * 4096 + 5];
        pieces.push(&text);
        let done = pieces.finish();
        assert_eq!(done.iter().map(Bytes::len).collect::<Vec<_>>(), vec![4096, 4096, 4096, 5]);
    }
}
