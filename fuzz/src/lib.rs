//! Helpers the fuzz targets share: how one fuzz input is cut into the
//! pieces a decoder sees (a selector byte, read chunks).

/// Splits `data` into the chunks a socket might deliver: each chunk's length
/// comes from the next byte of `sizes` (1..=256), cycling; the last chunk
/// takes what is left. Decoders must give the same answer for any chunking.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = if sizes.is_empty() { rest.len() } else { sizes[i % sizes.len()] as usize + 1 };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
        i += 1;
    }
    out
}

/// The first byte (0 when empty) and the rest.
pub fn selector(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&b, rest)) => (b, rest),
        None => (0, data),
    }
}

/// Cuts `data` at the first `0xff 0xff` pair: (before, after). Lets a seed
/// carry two independent parts (chunk sizes and the stream, say).
pub fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == [0xff, 0xff]) {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (&[], data),
    }
}

/// Reads `data` as pieces each prefixed by a big-endian u16 length (a short
/// last piece takes what is left): how the "build a valid file" modes of
/// the storage targets take their payloads, so any byte may occur in one.
pub fn length_prefixed(data: &[u8], max_pieces: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= 2 && out.len() < max_pieces {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let (piece, tail) = body.split_at(len.min(body.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// The inverse of [`length_prefixed`], for making seeds.
pub fn join_length_prefixed(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}
