//! Jute, ZooKeeper's binary encoding: big-endian integers, length-prefixed
//! strings, buffers and vectors (-1 = null). Sans-IO: it reads from a byte
//! slice and writes into a `BytesMut`; framing lives in `proto::frame`.

use bytes::{BufMut, Bytes, BytesMut};

/// Why a record could not be decoded. Never fatal to the server: the caller
/// answers MarshallingError or closes the one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside a field.
    Truncated { needed: usize, remaining: usize },
    /// A length prefix is negative (other than null) or larger than allowed.
    BadLength(i32),
    /// A ustring is not valid UTF-8.
    BadUtf8,
    /// A field holds a value the record does not allow.
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { needed, remaining } => {
                write!(f, "truncated record: needed {needed} bytes, {remaining} left")
            }
            DecodeError::BadLength(n) => write!(f, "bad length prefix {n}"),
            DecodeError::BadUtf8 => write!(f, "string is not valid UTF-8"),
            DecodeError::Invalid(what) => write!(f, "invalid field: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// Reads jute fields from a frame payload. Buffers are returned as
/// zero-copy slices of the frame (`Bytes::slice`).
pub struct Reader {
    buf: Bytes,
    pos: usize,
    /// Largest string/buffer length accepted (jute.maxbuffer + extrasize).
    max_field_len: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        let max = buf.len();
        Reader { buf, pos: 0, max_field_len: max }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize) -> DecodeResult<&[u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated { needed: n, remaining: self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn read_u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    /// Java reads any non-zero byte as true.
    pub fn read_bool(&mut self) -> DecodeResult<bool> {
        Ok(self.read_u8()? != 0)
    }

    pub fn read_i32(&mut self) -> DecodeResult<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn read_i64(&mut self) -> DecodeResult<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// Reads a length prefix; `None` for null (-1).
    fn read_len(&mut self) -> DecodeResult<Option<usize>> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 || n as usize > self.max_field_len {
            return Err(DecodeError::BadLength(n));
        }
        Ok(Some(n as usize))
    }

    /// A buffer; null is kept distinct from empty as Java does.
    pub fn read_buffer(&mut self) -> DecodeResult<Option<Bytes>> {
        match self.read_len()? {
            None => Ok(None),
            Some(n) => {
                if self.remaining() < n {
                    return Err(DecodeError::Truncated { needed: n, remaining: self.remaining() });
                }
                let b = self.buf.slice(self.pos..self.pos + n);
                self.pos += n;
                Ok(Some(b))
            }
        }
    }

    /// A ustring; null is returned as `None`.
    pub fn read_opt_string(&mut self) -> DecodeResult<Option<String>> {
        match self.read_len()? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n)?;
                std::str::from_utf8(b).map(|s| Some(s.to_owned())).map_err(|_| DecodeError::BadUtf8)
            }
        }
    }

    /// A ustring where null is read as the empty string (Java callers treat
    /// a null path like an invalid one; validation catches it later).
    pub fn read_string(&mut self) -> DecodeResult<String> {
        Ok(self.read_opt_string()?.unwrap_or_default())
    }

    /// A vector; null is read as empty.
    pub fn read_vec<T>(&mut self, mut item: impl FnMut(&mut Self) -> DecodeResult<T>) -> DecodeResult<Vec<T>> {
        let n = self.read_i32()?;
        if n == -1 {
            return Ok(Vec::new());
        }
        if n < 0 || n as usize > self.remaining() {
            // Every element is at least one byte, so a count above the bytes
            // left is a lie; refusing it bounds the allocation.
            return Err(DecodeError::BadLength(n));
        }
        let mut v = Vec::with_capacity(n as usize);
        for _ in 0..n {
            v.push(item(self)?);
        }
        Ok(v)
    }

    pub fn read_string_vec(&mut self) -> DecodeResult<Vec<String>> {
        self.read_vec(|r| r.read_string())
    }
}

/// Writes jute fields.
pub struct Writer<'a> {
    pub buf: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut BytesMut) -> Self {
        Writer { buf }
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.put_u8(v);
        self
    }
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.put_u8(v as u8);
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.put_i32(v);
        self
    }
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.put_i64(v);
        self
    }
    pub fn buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.buf.put_i32(-1),
            Some(b) => {
                self.buf.put_i32(b.len() as i32);
                self.buf.put_slice(b);
            }
        }
        self
    }
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.buf.put_i32(s.len() as i32);
        self.buf.put_slice(s.as_bytes());
        self
    }
    pub fn opt_string(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            None => {
                self.buf.put_i32(-1);
                self
            }
            Some(s) => self.string(s),
        }
    }
    pub fn vec<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.buf.put_i32(items.len() as i32);
        for it in items {
            f(self, it);
        }
        self
    }
    pub fn string_vec<S: AsRef<str>>(&mut self, items: &[S]) -> &mut Self {
        self.vec(items, |w, s| {
            w.string(s.as_ref());
        })
    }
}

/// Records that know their jute layout.
pub trait Record: Sized {
    fn encode(&self, w: &mut Writer<'_>);
    fn decode(r: &mut Reader) -> DecodeResult<Self>;
}

impl Reader {
    pub fn with_max_field_len(mut self, max: usize) -> Self {
        self.max_field_len = max;
        self
    }
    pub fn read<T: Record>(&mut self) -> DecodeResult<T> {
        T::decode(self)
    }
}
