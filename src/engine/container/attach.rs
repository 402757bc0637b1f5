//! The attach protocol between the monitor and `run`/`attach`/`start -a`
//! over `<run>/containers/<id>/attach.sock`: frames of
//! `[kind u8][len u32 LE][payload]`.

use std::io::{self, Read, Write};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Payload: the exit code, i32 LE. The last frame the monitor sends.
pub const EXIT: u8 = 3;
pub const STDIN_CLOSE: u8 = 4;
/// Payload: rows u16 LE, cols u16 LE.
pub const RESIZE: u8 = 5;
/// Payload: signal number, i32 LE.
pub const SIGNAL: u8 = 6;
/// Client hello: payload byte 1 when the client sends stdin.
pub const HELLO: u8 = 7;

pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + payload.len());
    v.push(kind);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    w.write_all(&frame(kind, payload))
}

/// Blocking read of one frame; `None` at EOF.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; 5];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > 1 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "attach frame too large",
        ));
    }
    let mut p = vec![0u8; len];
    r.read_exact(&mut p)?;
    Ok(Some((h[0], p)))
}

/// Incremental parser for the monitor's non-blocking reads.
#[derive(Default)]
pub struct Parser {
    buf: Vec<u8>,
}

impl Parser {
    pub fn push(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 5 {
                break;
            }
            let len =
                u32::from_le_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > 1 << 20 {
                self.buf.clear();
                break;
            }
            if self.buf.len() < 5 + len {
                break;
            }
            let kind = self.buf[0];
            let payload = self.buf[5..5 + len].to_vec();
            self.buf.drain(..5 + len);
            out.push((kind, payload));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip() {
        let mut all = frame(STDOUT, b"hi");
        all.extend(frame(EXIT, &3i32.to_le_bytes()));
        let mut p = Parser::default();
        let got = p.push(&all[..4]);
        assert!(got.is_empty());
        let got = p.push(&all[4..]);
        assert_eq!(
            got,
            vec![
                (STDOUT, b"hi".to_vec()),
                (EXIT, 3i32.to_le_bytes().to_vec())
            ]
        );
        let mut r = &all[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((STDOUT, b"hi".to_vec())));
    }
}
