//! Typed messages between the runtime and the container's init, over a
//! SOCK_SEQPACKET socketpair (one datagram per message, EOF when the peer dies).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// The child unshared its user namespace: write its id maps.
    UserNsReady,
    UserMapsDone,
    /// Pid of the container's init in the runtime's pid namespace.
    Pid(i32),
    /// Namespaces are set up: run prestart/createRuntime hooks now.
    HooksPlease,
    HooksDone,
    /// Everything that can fail before the user process is done.
    Ready,
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        match self {
            Msg::UserNsReady => vec![1],
            Msg::UserMapsDone => vec![2],
            Msg::Pid(p) => {
                let mut v = vec![3];
                v.extend_from_slice(&p.to_le_bytes());
                v
            }
            Msg::HooksPlease => vec![4],
            Msg::HooksDone => vec![5],
            Msg::Ready => vec![6],
            Msg::Error(s) => {
                let mut v = vec![7];
                v.extend_from_slice(s.as_bytes());
                v
            }
        }
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        Some(match *b.first()? {
            1 => Msg::UserNsReady,
            2 => Msg::UserMapsDone,
            3 => Msg::Pid(i32::from_le_bytes(b.get(1..5)?.try_into().ok()?)),
            4 => Msg::HooksPlease,
            5 => Msg::HooksDone,
            6 => Msg::Ready,
            7 => Msg::Error(String::from_utf8_lossy(&b[1..]).into_owned()),
            _ => return None,
        })
    }
}

pub fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: socketpair fills two fds we then own.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn send(fd: RawFd, m: &Msg) -> std::io::Result<()> {
    let b = m.encode();
    // SAFETY: sending a buffer we own on a socket fd.
    let n = unsafe { libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `Ok(None)` on EOF: the peer is gone.
pub fn recv(fd: RawFd) -> std::io::Result<Option<Msg>> {
    let mut buf = vec![0u8; 65536];
    loop {
        // SAFETY: receiving into a buffer we own.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Ok(None);
        }
        return Ok(Msg::decode(&buf[..n as usize]));
    }
}

pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}
