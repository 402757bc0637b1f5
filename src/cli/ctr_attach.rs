//! `berth attach`: joins a running container's monitor over its attach
//! socket, as a late client. Output, input (unless `--no-stdin`), window
//! size, forwarded signals (`--sig-proxy`, not with a tty), and docker's
//! detach keys (default ctrl-p,ctrl-q; "read escape sequence", exit 1).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};

use super::attach_client::winsize;
use super::ctr_more_args::AttachArgs;
use super::{Ctx, Reported};
use crate::engine::container::{attach, liveness, Status};

/// Docker's default `--detach-keys`.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// docker's `term.ToBytes`: comma-separated keys, each a single character
/// or `ctrl-X` with X one of a-z, @, [, \, ], ^, _.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>> {
    let bad = || anyhow!("Invalid detach keys ({s}) provided");
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad()),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(bad());
        }
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

/// Docker's escape proxy: bytes matching a prefix of the key sequence are
/// held back; a full match detaches, a mismatch releases what was held.
pub struct EscapeProxy {
    keys: Vec<u8>,
    held: usize,
}

pub enum Scan {
    Forward(Vec<u8>),
    Detach(Vec<u8>),
}

impl EscapeProxy {
    pub fn new(keys: Vec<u8>) -> EscapeProxy {
        EscapeProxy { keys, held: 0 }
    }

    pub fn scan(&mut self, input: &[u8]) -> Scan {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return Scan::Detach(out);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    self.held = 0;
                    return Scan::Detach(out);
                }
            } else {
                out.push(b);
            }
        }
        Scan::Forward(out)
    }
}

struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(t) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = t.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        RawMode(Some(t))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// What ends an attach session besides the container's exit.
enum Event {
    Detached,
}

pub fn attach_cmd(ctx: &Ctx, a: AttachArgs) -> Result<()> {
    let configured = configured_detach_keys(ctx);
    let keys = parse_detach_keys(
        a.detach_keys
            .as_deref()
            .or(configured.as_deref())
            .unwrap_or(DEFAULT_DETACH_KEYS),
    )?;
    let cs = super::containers::containers(ctx);
    let id = cs.resolve(&a.container)?;
    let st = liveness::current(&cs, &id)?;
    match st.status {
        Status::Paused => {
            bail!("Error response from daemon: You cannot attach to a paused container, unpause it first")
        }
        s if s != Status::Running => {
            bail!("Error response from daemon: You cannot attach to a stopped container, start it first")
        }
        _ => {}
    }
    let rec = cs.load(&id)?;
    let tty = rec.config.tty;
    let stdin = !a.no_stdin && rec.config.open_stdin;
    if tty && stdin && !rustix::termios::isatty(std::io::stdin()) {
        bail!("the input device is not a TTY");
    }
    let (_dirfd, short) =
        crate::engine::container::store::short_socket_path(&cs.run_dir(&id), "attach.sock")?;
    let sock = UnixStream::connect(&short).with_context(|| {
        format!("cannot attach to container {id}: its monitor is not listening")
    })?;
    let writer = Arc::new(Mutex::new(sock.try_clone()?));
    {
        let mut w = writer
            .lock()
            .map_err(|_| anyhow!("attach writer poisoned"))?;
        attach::write_frame(&mut *w, attach::HELLO, &[stdin as u8])?;
        if tty {
            if let Some(ws) = winsize() {
                attach::write_frame(&mut *w, attach::RESIZE, &ws)?;
            }
        }
    }
    let _raw = (tty && stdin && rustix::termios::isatty(std::io::stdin())).then(RawMode::enter);
    if tty || a.sig_proxy {
        forward_signals(writer.clone(), tty, a.sig_proxy && !tty);
    }
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    if stdin {
        let w = writer.clone();
        let reader_sock = sock.try_clone()?;
        std::thread::spawn(move || {
            let mut proxy = EscapeProxy::new(keys);
            let mut buf = [0u8; 8192];
            let mut input = std::io::stdin();
            loop {
                // docker keeps the container's stdin open when ours ends
                // (a container created with -i is not StdinOnce): output
                // keeps coming until the container exits.
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (data, detach) = match proxy.scan(&buf[..n]) {
                    Scan::Forward(d) => (d, false),
                    Scan::Detach(d) => (d, true),
                };
                let Ok(mut s) = w.lock() else { return };
                if !data.is_empty() && attach::write_frame(&mut *s, attach::STDIN, &data).is_err() {
                    return;
                }
                if detach {
                    let _ = tx.send(Event::Detached);
                    // Unblocks the output loop's read.
                    let _ = reader_sock.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        });
    }
    let mut r = sock;
    if let Some(code) = super::attach_client::copy_output(&mut r) {
        return exit_with(code);
    }
    if rx.try_recv().is_ok() {
        drop(_raw);
        eprintln!("read escape sequence");
        return Err(Reported { code: 1 }.into());
    }
    let st = liveness::current(&cs, &id)?;
    exit_with(st.exit_code)
}

/// `detachKeys` of the client's `config.json` (`--config`, `DOCKER_CONFIG`
/// or `~/.docker`), docker's default for `--detach-keys`.
fn configured_detach_keys(ctx: &Ctx) -> Option<String> {
    let dir = ctx.docker_config.clone().or_else(|| {
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".docker"))
    })?;
    let b = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v.get("detachKeys")?.as_str().map(str::to_string)
}

fn exit_with(code: i32) -> Result<()> {
    if code != 0 {
        return Err(Reported { code }.into());
    }
    Ok(())
}

/// Window changes always go to a tty; other signals only with sig-proxy
/// (docker does not proxy signals to a tty container: the tty does).
fn forward_signals(w: Arc<Mutex<UnixStream>>, tty: bool, proxy: bool) {
    let mut sigs = vec![libc::SIGWINCH];
    if proxy {
        sigs.extend([
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ]);
    }
    super::attach_client::spawn_signal_forwarder(w, tty, &sigs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_like_docker() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_").unwrap(),
            vec![b'a', 0, 31]
        );
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        assert_eq!(
            parse_detach_keys("ctrl-").unwrap_err().to_string(),
            "Invalid detach keys (ctrl-) provided"
        );
    }

    #[test]
    fn escape_proxy_holds_and_releases() {
        let mut p = EscapeProxy::new(vec![16, 17]);
        match p.scan(b"ab\x10") {
            Scan::Forward(d) => assert_eq!(d, b"ab"),
            Scan::Detach(_) => panic!("early detach"),
        }
        // A mismatch after a held ctrl-p releases it.
        match p.scan(b"c") {
            Scan::Forward(d) => assert_eq!(d, b"\x10c"),
            Scan::Detach(_) => panic!("wrong detach"),
        }
        match p.scan(b"x\x10\x10\x11") {
            Scan::Detach(d) => assert_eq!(d, b"x\x10"),
            Scan::Forward(_) => panic!("no detach"),
        }
    }
}
