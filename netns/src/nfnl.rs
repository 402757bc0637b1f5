//! Deleting rules and chains of berth's table over nf_tables netlink, in
//! process, for the container-exit path.
//!
//! Why not the `nft` binary here: the transaction itself takes ~40 µs, but
//! closing an nfnetlink socket after a commit waits until the kernel has
//! freed the transaction's objects after an RCU grace period (10-20 ms on
//! this machine), and `nft` closes its socket before it exits. Here the
//! socket is closed on a detached thread, so nothing on the release path
//! waits for RCU.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_DELRULE: u16 = 8;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
/// berth's table is `inet` (`firewall::FAMILY`).
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;

/// One step of a deletion transaction in berth's `inet` table.
pub enum Del<'a> {
    /// A rule by handle.
    Rule { chain: &'a str, handle: u64 },
    /// Every rule of a chain (`flush chain`).
    Flush { chain: &'a str },
    /// An empty chain nothing jumps to.
    Chain { chain: &'a str },
}

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg: family, version, res_id (big endian)
    buf.push(family);
    buf.push(0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// Encodes the batch (begin, each step with an ack requested, end).
fn encode(table: &str, steps: &[Del]) -> Vec<u8> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut buf = Vec::new();
    message(
        &mut buf,
        NFNL_MSG_BATCH_BEGIN,
        libc::NLM_F_REQUEST as u16,
        0,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    for (i, step) in steps.iter().enumerate() {
        let mut a = Vec::new();
        let kind = match step {
            Del::Rule { chain, handle } => {
                attr(&mut a, NFTA_RULE_TABLE, &cstr(table));
                attr(&mut a, NFTA_RULE_CHAIN, &cstr(chain));
                attr(&mut a, NFTA_RULE_HANDLE, &handle.to_be_bytes());
                NFT_MSG_DELRULE
            }
            Del::Flush { chain } => {
                attr(&mut a, NFTA_RULE_TABLE, &cstr(table));
                attr(&mut a, NFTA_RULE_CHAIN, &cstr(chain));
                NFT_MSG_DELRULE
            }
            Del::Chain { chain } => {
                attr(&mut a, NFTA_CHAIN_TABLE, &cstr(table));
                attr(&mut a, NFTA_CHAIN_NAME, &cstr(chain));
                NFT_MSG_DELCHAIN
            }
        };
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | kind;
        message(&mut buf, kind, flags, i as u32 + 1, NFPROTO_INET, 0, &a);
    }
    let end = steps.len() as u32 + 1;
    message(
        &mut buf,
        NFNL_MSG_BATCH_END,
        libc::NLM_F_REQUEST as u16,
        end,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    buf
}

/// The first error code in the kernel's answers, and how many acks came.
fn parse_answers(data: &[u8]) -> (Option<i32>, usize) {
    let (mut err, mut acks, mut off) = (None, 0, 0);
    while off + 20 <= data.len() {
        let word = |o: usize| [data[o], data[o + 1], data[o + 2], data[o + 3]];
        let len = u32::from_ne_bytes(word(off)) as usize;
        let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
        if len < 16 || off + len > data.len() {
            break;
        }
        if kind == NLMSG_ERROR {
            match i32::from_ne_bytes(word(off + 16)) {
                0 => acks += 1,
                e => {
                    err.get_or_insert(-e);
                }
            }
        }
        off += (len + 3) & !3;
    }
    (err, acks)
}

fn nl_io(op: &'static str, e: io::Error) -> Error {
    Error::io(op, "nfnetlink socket", e)
}

/// Runs `steps` as one transaction on `inet <table>`: all or nothing. An
/// error names the kernel's errno (ENOENT: a rule or chain is gone;
/// EBUSY: a chain is still jumped to).
pub fn delete(table: &str, steps: &[Del]) -> Result<()> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(nl_io("open", io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let res = transact(&sock, table, steps);
    // The close waits for the kernel to free the transaction after an RCU
    // grace period: let a detached thread pay it (or process exit).
    std::thread::spawn(move || drop(sock));
    res
}

fn transact(sock: &OwnedFd, table: &str, steps: &[Del]) -> Result<()> {
    let buf = encode(table, steps);
    // SAFETY: `buf` is valid for its length; a netlink socket with no
    // address sends to the kernel.
    let sent = unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    if sent < 0 {
        return Err(nl_io("send batch on", io::Error::last_os_error()));
    }
    // The kernel runs the whole batch inside send(): every answer is queued
    // by now, so read without blocking until none is left.
    let mut answers = Vec::new();
    let mut chunk = vec![0u8; 16384];
    loop {
        // SAFETY: `chunk` is valid for its length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                chunk.as_mut_ptr().cast(),
                chunk.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                break;
            }
            return Err(nl_io("receive answers on", e));
        }
        if n == 0 {
            break;
        }
        answers.extend_from_slice(&chunk[..n as usize]);
    }
    let (err, acks) = parse_answers(&answers);
    let stderr = match err {
        None if acks == steps.len() => return Ok(()),
        Some(e) => io::Error::from_raw_os_error(e).to_string(),
        None => format!("{acks} of {} steps acknowledged", steps.len()),
    };
    Err(Error::Nft {
        op: "delete rules over netlink".into(),
        table: table.into(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_framed_and_padded() {
        let b = encode(
            "t",
            &[Del::Rule {
                chain: "ports",
                handle: 7,
            }],
        );
        // begin (20) + rule (16 + 4 + table 8 + chain 12 + handle 12) + end (20)
        assert_eq!(b.len(), 20 + 52 + 20);
        assert_eq!(u32::from_ne_bytes([b[20], b[21], b[22], b[23]]), 52);
        assert_eq!(&b[20 + 48..20 + 52], &[0, 0, 0, 7][..]);
    }

    #[test]
    fn answers_report_the_first_error() {
        let ack = |code: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&36u32.to_ne_bytes());
            m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&code.to_ne_bytes());
            m.extend_from_slice(&[0; 16]);
            m
        };
        let mut d = ack(0);
        d.extend(ack(-libc::EBUSY));
        assert_eq!(parse_answers(&d), (Some(libc::EBUSY), 1));
        assert_eq!(parse_answers(&ack(0)), (None, 1));
    }
}
