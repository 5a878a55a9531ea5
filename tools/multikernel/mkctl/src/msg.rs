// SPDX-License-Identifier: GPL-2.0

//! Messages on a message device (`/dev/mk-NAME` on the host, `/dev/mk-host` in an instance):
//! each write(2) sends one, a `struct mk_ikc_msg` header (port, flags, length, little-endian)
//! and the payload; each read(2) returns one.

use crate::abi::{MAX_PAYLOAD, MSG_HEADER};
use std::fs::File;
use std::io::{self, Read, Write};

/// The ports of `mkctl run` (user ports: the kernel passes them to user space).
pub mod port {
    /// The program's standard output, instance to host.
    pub const STDOUT: u16 = 64;
    /// Its standard error.
    pub const STDERR: u16 = 65;
    /// Its exit status (4 bytes, little-endian: the code, or 128 + the signal); the host
    /// answers on the same port once it has everything, and the instance powers off.
    pub const STATUS: u16 = 66;
}

/// Sends one message (at most [`MAX_PAYLOAD`] bytes).
pub fn send(dev: &File, port: u16, payload: &[u8]) -> io::Result<()> {
    let mut m = Vec::with_capacity(MSG_HEADER + payload.len());
    m.extend_from_slice(&port.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    m.extend_from_slice(payload);
    let n = (&*dev).write(&m)?;
    if n != m.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short message write",
        ));
    }
    Ok(())
}

/// Sends `data` as messages of at most [`MAX_PAYLOAD`] bytes.
pub fn send_all(dev: &File, port: u16, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(MAX_PAYLOAD) {
        send(dev, port, chunk)?;
    }
    Ok(())
}

/// Receives one message: its port and payload.
pub fn recv(dev: &File) -> io::Result<(u16, Vec<u8>)> {
    let mut buf = vec![0u8; MSG_HEADER + MAX_PAYLOAD];
    let n = (&*dev).read(&mut buf)?;
    parse(&buf[..n])
}

/// Splits a message read from a device into port and payload, checking its length.
pub fn parse(m: &[u8]) -> io::Result<(u16, Vec<u8>)> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed message");
    if m.len() < MSG_HEADER {
        return Err(bad());
    }
    let port = u16::from_le_bytes([m[0], m[1]]);
    let len = u32::from_le_bytes([m[4], m[5], m[6], m[7]]) as usize;
    if m.len() != MSG_HEADER + len {
        return Err(bad());
    }
    Ok((port, m[MSG_HEADER..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_messages() {
        let m = [66, 0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0];
        assert_eq!(parse(&m).unwrap(), (66, vec![7, 0, 0, 0]));
        assert!(parse(&m[..11]).is_err());
        assert!(parse(&m[..5]).is_err());
    }
}
