//! Deleting rules and chains of berth's table over nf_tables netlink, in
//! process, for the container-exit path.
//!
//! Why not the `nft` binary here: the transaction itself takes ~40 µs, but
//! closing an nfnetlink socket after a commit waits until the kernel has
//! freed the transaction's objects after an RCU grace period (10-20 ms on
//! this machine), and `nft` closes its socket before it exits. Here the
//! socket is closed on a detached thread, so nothing on the release path
//! waits for RCU; that thread waits out a grace period before the close, so
//! the close does not hold the commit mutex while it waits (see `commit`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const NETLINK_NETFILTER: i32 = 12;
/// `MEMBARRIER_CMD_GLOBAL` (formerly `_SHARED`): returns after an RCU grace
/// period.
const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_DELRULE: u16 = 8;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFTA_RULE_TABLE: u16 = 1;
pub(crate) const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
pub(crate) const NFTA_CHAIN_TABLE: u16 = 1;
pub(crate) const NFTA_CHAIN_NAME: u16 = 3;
#[cfg(test)]
const NFPROTO_IPV4: u8 = 2;
pub(crate) const NLM_F_ACK: u16 = libc::NLM_F_ACK as u16;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
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

pub(crate) fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

pub(crate) fn cstr(s: &str) -> Vec<u8> {
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

/// One request of a batch: an `NFT_MSG_*` type, its netlink flags besides
/// NLM_F_REQUEST, and its encoded attributes. The kernel reports an error
/// for any message; a success only for one with NLM_F_ACK (each answer is
/// a separate buffer on the socket, so a large batch asks for few).
pub(crate) struct Msg {
    pub kind: u16,
    pub flags: u16,
    pub attrs: Vec<u8>,
}

/// A rule the kernel echoed back (NLM_F_ECHO) after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Echoed {
    pub chain: String,
    pub handle: u64,
}

fn del_msgs(table: &str, steps: &[Del]) -> Vec<Msg> {
    steps
        .iter()
        .map(|step| {
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
            Msg {
                kind,
                flags: NLM_F_ACK,
                attrs: a,
            }
        })
        .collect()
}

/// Encodes the batch (begin, the messages, end);
/// `family` is the table's (`NFPROTO_IPV4` for `ip`, `NFPROTO_INET`).
fn encode(family: u8, msgs: &[Msg]) -> Vec<u8> {
    let flags = libc::NLM_F_REQUEST as u16;
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
    for (i, m) in msgs.iter().enumerate() {
        let kind = (NFNL_SUBSYS_NFTABLES << 8) | m.kind;
        message(
            &mut buf,
            kind,
            flags | m.flags,
            i as u32 + 1,
            family,
            0,
            &m.attrs,
        );
    }
    let end = msgs.len() as u32 + 1;
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

/// What the kernel answered to a batch.
#[derive(Debug, Default, PartialEq)]
struct Answers {
    /// The first error code (positive errno).
    err: Option<i32>,
    acks: usize,
    /// Echoed NEWRULE messages, in commit order.
    rules: Vec<Echoed>,
}

/// The chain and handle attributes of an echoed NEWRULE message body
/// (after the netlink and nfgen headers).
fn echoed_rule(mut body: &[u8]) -> Option<Echoed> {
    let (mut chain, mut handle) = (None, None);
    while body.len() >= 4 {
        let len = u16::from_ne_bytes([body[0], body[1]]) as usize;
        let kind = u16::from_ne_bytes([body[2], body[3]]) & 0x3fff;
        if len < 4 || len > body.len() {
            break;
        }
        let data = &body[4..len];
        match kind {
            NFTA_RULE_CHAIN => {
                let s = data.split(|&b| b == 0).next().unwrap_or_default();
                chain = Some(String::from_utf8_lossy(s).into_owned());
            }
            NFTA_RULE_HANDLE if data.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(data);
                handle = Some(u64::from_be_bytes(b));
            }
            _ => {}
        }
        body = &body[((len + 3) & !3).min(body.len())..];
    }
    Some(Echoed {
        chain: chain?,
        handle: handle?,
    })
}

fn parse_answers(data: &[u8]) -> Answers {
    let mut a = Answers::default();
    let mut off = 0;
    while off + 20 <= data.len() {
        let word = |o: usize| [data[o], data[o + 1], data[o + 2], data[o + 3]];
        let len = u32::from_ne_bytes(word(off)) as usize;
        let kind = u16::from_ne_bytes([data[off + 4], data[off + 5]]);
        if len < 16 || off + len > data.len() {
            break;
        }
        if kind == NLMSG_ERROR {
            match i32::from_ne_bytes(word(off + 16)) {
                0 => a.acks += 1,
                e => {
                    a.err.get_or_insert(-e);
                }
            }
        } else if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE && len >= 20 {
            a.rules.extend(echoed_rule(&data[off + 20..off + len]));
        }
        off += (len + 3) & !3;
    }
    a
}

fn nl_io(op: &'static str, e: io::Error) -> Error {
    Error::io(op, "nfnetlink socket", e)
}

/// Runs `steps` as one transaction on `inet <table>`: all or nothing. An
/// error names the kernel's errno (ENOENT: a rule or chain is gone;
/// EBUSY: a chain is still jumped to).
pub fn delete(table: &str, steps: &[Del]) -> Result<()> {
    commit(
        crate::nfnl_rule::TableFamily::Inet.nfproto(),
        table,
        "delete rules over netlink",
        &del_msgs(table, steps),
    )
    .map(drop)
}

/// Sends `msgs` as one nf_tables transaction (all or nothing) and returns
/// the rules the kernel echoed (messages sent with `NLM_F_ECHO`). `op`
/// names the change in errors.
pub(crate) fn commit(family: u8, table: &str, op: &str, msgs: &[Msg]) -> Result<Vec<Echoed>> {
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
    let res = transact(&sock, family, msgs);
    // The close waits for the kernel to free the transaction after an RCU
    // grace period: let a detached thread pay it (or process exit). That
    // wait (`nft_rcv_nl_event` flushing the destroy work) holds the
    // table's commit mutex, so the next container's rules would wait behind
    // it: back-to-back `run --rm -p` paid 2-4 ms each for it. So the thread
    // first waits out a grace period of its own, with no lock held
    // (membarrier's global command is a synchronize_rcu); by then the
    // kernel has freed the transaction and the close has nothing to flush.
    std::thread::spawn(move || {
        // SAFETY: membarrier(2) takes no pointers; an error (e.g. nohz_full
        // kernels refuse the command) only means the close waits instead.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
        drop(sock)
    });
    let a = res?;
    let want = msgs.iter().filter(|m| m.flags & NLM_F_ACK != 0).count();
    let stderr = match a.err {
        None if a.acks == want => return Ok(a.rules),
        Some(e) => io::Error::from_raw_os_error(e).to_string(),
        None => format!("{} of {want} steps acknowledged", a.acks),
    };
    Err(Error::Nft {
        op: op.into(),
        table: table.into(),
        stderr,
    })
}

fn setsockopt(sock: &OwnedFd, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: `v` is a live c_int for the call's duration.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            opt,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn transact(sock: &OwnedFd, family: u8, msgs: &[Msg]) -> Result<Answers> {
    let buf = encode(family, msgs);
    // Answers carry only the failing header, not a copy of each request.
    // Best effort: without it an error answer is just longer.
    let _ = setsockopt(sock, SOL_NETLINK, NETLINK_CAP_ACK, 1);
    // A batch goes in one send(), refused when larger than the send buffer
    // (~208 KiB by default; a published range of a few hundred ports).
    if buf.len() > 64 * 1024 {
        let len = i32::try_from(buf.len() + 4096).unwrap_or(i32::MAX);
        setsockopt(sock, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, len)
            .or_else(|_| setsockopt(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, len))
            .map_err(|e| nl_io("size the send buffer of", e))?;
    }
    // SAFETY: `buf` is valid for its length; a netlink socket with no
    // address sends to the kernel.
    let sent = unsafe { libc::send(sock.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    if sent < 0 {
        return Err(nl_io("send batch on", io::Error::last_os_error()));
    }
    // The kernel runs the whole batch, commit and echoes included, inside
    // send(): every answer is queued by now, so read without blocking
    // until none is left.
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
    Ok(parse_answers(&answers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_framed_and_padded() {
        let b = encode(
            NFPROTO_IPV4,
            &del_msgs(
                "t",
                &[Del::Rule {
                    chain: "ports",
                    handle: 7,
                }],
            ),
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
        let a = parse_answers(&d);
        assert_eq!((a.err, a.acks), (Some(libc::EBUSY), 1));
        let a = parse_answers(&ack(0));
        assert_eq!((a.err, a.acks), (None, 1));
    }

    #[test]
    fn echoed_rules_give_chain_and_handle() {
        let mut body = Vec::new();
        attr(&mut body, NFTA_RULE_TABLE, &cstr("t"));
        attr(&mut body, NFTA_RULE_CHAIN, &cstr("ports_local"));
        attr(&mut body, NFTA_RULE_HANDLE, &42u64.to_be_bytes());
        let mut d = Vec::new();
        message(
            &mut d,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
            0,
            3,
            NFPROTO_IPV4,
            0,
            &body,
        );
        // A message without a handle is not a rule the caller can use.
        let mut no_handle = Vec::new();
        attr(&mut no_handle, NFTA_RULE_CHAIN, &cstr("ports"));
        message(
            &mut d,
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE,
            0,
            4,
            NFPROTO_IPV4,
            0,
            &no_handle,
        );
        let a = parse_answers(&d);
        assert_eq!(
            a.rules,
            vec![Echoed {
                chain: "ports_local".into(),
                handle: 42
            }]
        );
        assert_eq!((a.err, a.acks), (None, 0));
    }
}
