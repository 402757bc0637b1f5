//! The client side of attach: foreground `run` and `start -a`. Streams the
//! monitor's frames to our stdout/stderr, sends stdin, window sizes and
//! forwarded signals, and returns the container's exit code.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};

use crate::engine::container::attach;
use crate::engine::container::spawn::Started;
use crate::engine::container::ContainerStore;

/// Signals `run` forwards to the container (docker's sig-proxy).
const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(t) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = t.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        RawMode { saved: Some(t) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

pub(super) fn winsize() -> Option<[u8; 4]> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&ws.ws_row.to_le_bytes());
    b[2..].copy_from_slice(&ws.ws_col.to_le_bytes());
    Some(b)
}

pub struct Options {
    pub stdin: bool,
    pub tty: bool,
    pub sig_proxy: bool,
}

/// Connects while the monitor waits, lets it start the container, then
/// streams until the exit frame.
pub fn run_attached(cs: &ContainerStore, id: &str, started: Started, o: Options) -> Result<i32> {
    let Started::Listening(next) = started else {
        return Err(anyhow!("container {id} started without waiting for attach"));
    };
    let sock_path = cs.attach_socket(id);
    let connected =
        crate::engine::container::store::short_socket_path(&cs.run_dir(id), "attach.sock")
            .and_then(|(dirfd, short)| {
                let s = UnixStream::connect(&short)
                    .with_context(|| format!("cannot attach to {}", sock_path.display()))?;
                Ok((dirfd, s))
            });
    let (_dirfd, sock) = match connected {
        Ok(c) => c,
        Err(e) => {
            // The monitor said "listening", then failed (a network setup
            // error, say) and removed the run directory before we
            // connected: its report says why, not the missing directory.
            if !cs.run_dir(id).exists() {
                next()?;
            }
            return Err(e);
        }
    };
    let writer = Arc::new(Mutex::new(sock.try_clone()?));
    {
        let mut w = writer
            .lock()
            .map_err(|_| anyhow!("attach writer poisoned"))?;
        attach::write_frame(&mut *w, attach::HELLO, &[o.stdin as u8])?;
        if o.tty {
            if let Some(ws) = winsize() {
                attach::write_frame(&mut *w, attach::RESIZE, &ws)?;
            }
        }
    }
    next()?;
    let _raw = if o.tty && o.stdin && rustix::termios::isatty(std::io::stdin()) {
        Some(RawMode::enter())
    } else {
        None
    };
    if o.sig_proxy || o.tty {
        spawn_signal_forwarder(writer.clone(), o.tty, FORWARDED);
    }
    if o.stdin {
        let w = writer.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            let mut input = std::io::stdin();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        if let Ok(mut s) = w.lock() {
                            let _ = attach::write_frame(&mut *s, attach::STDIN_CLOSE, &[]);
                        }
                        return;
                    }
                    Ok(n) => {
                        let Ok(mut s) = w.lock() else { return };
                        if attach::write_frame(&mut *s, attach::STDIN, &buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    let mut r = sock;
    match copy_output(&mut r) {
        Some(code) => Ok(code),
        // The monitor died: report what the state says.
        None => Ok(crate::engine::container::liveness::current(cs, id)?.exit_code),
    }
}

/// Copies the monitor's output frames to our stdout and stderr until the
/// exit frame (its code) or the end of the connection (`None`).
pub(super) fn copy_output(r: &mut UnixStream) -> Option<i32> {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        match attach::read_frame(r) {
            Ok(Some((attach::STDOUT, d))) => {
                let _ = out.write_all(&d);
                let _ = out.flush();
            }
            Ok(Some((attach::STDERR, d))) => {
                let _ = err.write_all(&d);
            }
            Ok(Some((attach::EXIT, d))) if d.len() == 4 => {
                return Some(i32::from_le_bytes([d[0], d[1], d[2], d[3]]));
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => return None,
        }
    }
}

/// Sends `sigs` to the monitor (window changes as resizes, on a tty) from
/// a thread that alone receives them.
pub(super) fn spawn_signal_forwarder(w: Arc<Mutex<UnixStream>>, tty: bool, sigs: &[i32]) {
    // SAFETY: building and installing a signal mask; the thread spawned
    // after this inherits it and is the only one that takes these signals.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: waiting on the set built above.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let Ok(mut s) = w.lock() else { return };
        let r = if sig == libc::SIGWINCH {
            match (tty, winsize()) {
                (true, Some(ws)) => attach::write_frame(&mut *s, attach::RESIZE, &ws),
                _ => Ok(()),
            }
        } else {
            attach::write_frame(&mut *s, attach::SIGNAL, &sig.to_le_bytes())
        };
        if r.is_err() {
            return;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::paths::Paths;

    /// The monitor said "listening", then failed and removed the run
    /// directory before the client connected: the client reports the
    /// monitor's error, not the missing directory.
    #[test]
    fn a_monitor_gone_before_the_connect_is_reported_by_its_own_error() {
        let t = tempfile::tempdir().unwrap();
        let cs = ContainerStore::new(Paths {
            root: t.path().to_path_buf(),
            run: t.path().join("run"),
        });
        let next = Box::new(|| -> Result<i32> {
            Err(anyhow!(
                "network n3 is internal: ports cannot be published on it"
            ))
        });
        let o = Options {
            stdin: false,
            tty: false,
            sig_proxy: false,
        };
        let err = run_attached(&cs, &"ab".repeat(32), Started::Listening(next), o).unwrap_err();
        assert!(err.to_string().contains("is internal"), "{err:#}");
    }
}
