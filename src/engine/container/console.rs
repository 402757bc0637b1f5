//! Receiving a pty master from the runtime over a console socket (the
//! runtime's init sends it with SCM_RIGHTS, as runc does).

use std::io::IoSliceMut;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

/// A listener whose first connection's fd is received on a thread, so the
/// caller can run `runtime.create` (which connects) at the same time.
pub struct ConsoleReceiver {
    path: PathBuf,
    /// Keeps `path` (a /proc/self/fd name) valid.
    _dir: OwnedFd,
    rx: mpsc::Receiver<Result<OwnedFd>>,
}

impl ConsoleReceiver {
    pub fn listen(path: &Path, dir: OwnedFd) -> Result<ConsoleReceiver> {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)
            .map_err(|e| anyhow!("cannot listen on console socket {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = (|| -> Result<OwnedFd> {
                let (s, _) = l.accept()?;
                receive_fd(&s)
            })();
            let _ = tx.send(r);
        });
        Ok(ConsoleReceiver {
            path: path.to_path_buf(),
            _dir: dir,
            rx,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn master(self) -> Result<OwnedFd> {
        let r = self
            .rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("the runtime sent no pty master"))?;
        let _ = std::fs::remove_file(&self.path);
        drop(self._dir);
        r
    }
}

pub fn receive_fd(s: &std::os::unix::net::UnixStream) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| anyhow!("receive pty master: {e}"))?;
    for c in msg
        .cmsgs()
        .map_err(|e| anyhow!("receive pty master: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just gave us this descriptor.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(anyhow!("the console socket message carried no descriptor"))
}
