//! A bare socket for tests that send hand-made or broken bytes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::jute::{Reader, Record};
use crate::proto::records::{encode_record_frame, encode_request_frame, ConnectRequest, ConnectResponse, Request};

pub struct RawConnection {
    pub stream: TcpStream,
}

impl RawConnection {
    pub fn connect(addr: SocketAddr) -> io::Result<RawConnection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(RawConnection { stream })
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(d)
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a length-prefixed frame around `payload`.
    pub fn send_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(4 + payload.len());
        out.extend_from_slice(&(payload.len() as i32).to_be_bytes());
        out.extend_from_slice(payload);
        self.send(&out)
    }

    pub fn send_request(&mut self, xid: i32, req: &Request) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode_request_frame(&mut out, xid, req);
        self.send(&out)
    }

    /// Sends a new-session ConnectRequest and reads the ConnectResponse.
    pub fn handshake(&mut self, timeout_ms: i32) -> io::Result<ConnectResponse> {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: Bytes::from(vec![0u8; 16]),
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_record_frame(&mut out, &req);
        self.send(&out)?;
        let frame = self.read_frame()?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        ConnectResponse::decode(&mut Reader::new(frame)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The next frame's payload, or `None` if the server closed cleanly.
    pub fn read_frame(&mut self) -> io::Result<Option<Bytes>> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = i32::from_be_bytes(len);
        if len < 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("negative frame length {len}")));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Some(Bytes::from(buf)))
    }

    /// Everything until the server closes (4lw answers).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.stream.read_to_end(&mut out)?;
        Ok(out)
    }

    /// True once the server has closed its side (reads EOF or reset).
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        match self.stream.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}
