//! The name resolver for user-defined networks as a process: `berth __dns
//! STATE_DIR`, started on demand by [`ensure_running`] when a container
//! starts on a user-defined network, and gone by itself shortly after the
//! last such container leaves (tens of milliseconds: it watches the state
//! files with inotify, with a 1 s poll as fallback). No daemon stays behind.
//!
//! It double-forks and setsids like the container monitor, names itself
//! `berth-dns`, and holds `STATE_DIR/networks/.dns.lock` for its life, so
//! one runs per state dir; the serving itself is `netns::dns`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use netns::dns::{self, Exit, Probe, UpstreamSource};

use super::config::BerthConfig;

/// Makes sure the resolver for `state_dir` runs and listens. When it does,
/// this is one open, one non-blocking flock and one stat (microseconds),
/// so every container start on a user-defined network can call it. When
/// none runs it starts one and returns once it listens on every network's
/// gateway, so the container's first query is answered; when one is just
/// starting (another container's start won the race) or handing over on
/// its way out, it waits for that.
pub fn ensure_running(state_dir: &Path) -> Result<()> {
    let until = Instant::now() + READY_TIMEOUT;
    let mut spawns = 0;
    loop {
        match dns::probe(state_dir)? {
            Probe::Ready => return Ok(()),
            // A few tries: a resolver we lost the start race to may have
            // found nothing to do and left before we looked again.
            Probe::Stopped if spawns < 3 => {
                spawns += 1;
                if spawn(state_dir)? {
                    return Ok(());
                }
            }
            Probe::Stopped | Probe::Starting => {}
        }
        if Instant::now() > until {
            return Err(anyhow!(
                "the name resolver for {} did not get ready within {}s; run `berth __dns {}` by hand to see why",
                state_dir.display(),
                READY_TIMEOUT.as_secs(),
                state_dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Starting (binding every gateway, at most ~1 s when a leaving resolver
/// still holds a port) takes milliseconds; this only bounds a stuck one.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts `berth __dns`; `Ok(true)` once it reported that it listens,
/// `Ok(false)` when another resolver won the lock (wait for that one).
fn spawn(state_dir: &Path) -> Result<bool> {
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let mut child = Command::new(exe)
        .arg("__dns")
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the name resolver (berth __dns)")?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("the name resolver has no status pipe"))?;
    // The intermediate exits at once; reaping it leaves no zombie.
    let _ = child.wait();
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .context("reading the name resolver's report")?;
    let line = line.trim_end();
    match line.split_once(' ').unwrap_or((line, "")) {
        ("ok", _) => Ok(true),
        ("running", _) => Ok(false),
        ("warn", w) => {
            tracing::warn!("name resolver: {w}");
            Ok(true)
        }
        ("err", e) => Err(anyhow!("the name resolver failed to start: {e}")),
        _ => Err(anyhow!(
            "the name resolver exited before it was ready (run `berth __dns {}` by hand to see why)",
            state_dir.display()
        )),
    }
}

/// The upstream servers: berth config's `dns` (docker's daemon.json key),
/// else the host's resolv.conf.
fn upstream() -> Result<UpstreamSource> {
    let cfg = BerthConfig::load()?;
    if cfg.dns.is_empty() {
        return Ok(UpstreamSource::ResolvConf(
            dns::upstream::HOST_RESOLV_CONF.into(),
        ));
    }
    Ok(UpstreamSource::Fixed(
        cfg.dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect(),
    ))
}

/// `berth __dns STATE_DIR`: the resolver process.
pub fn entry(args: &[String]) -> i32 {
    let [state_dir] = args else {
        eprintln!("usage: berth __dns STATE_DIR");
        return 2;
    };
    // SAFETY: fork in a single-threaded process (the hidden entry runs
    // before anything starts a thread); the parent only exits.
    match unsafe { libc::fork() } {
        -1 => return 1,
        0 => {}
        // SAFETY: leave without running destructors (the child owns stdout).
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: plain syscalls on ourselves. Every fd above stdio is closed:
    // whoever started us (a container monitor) may hold pipes and locks
    // that must not live as long as the resolver.
    unsafe {
        libc::setsid();
        libc::prctl(
            libc::PR_SET_NAME,
            c"berth-dns".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::chdir(c"/".as_ptr());
    }
    // SAFETY: fd 1 is the status pipe; we own the duplicate from here.
    let status = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    crate::engine::container::monitor::redirect_stdio_to_null();
    let mut status = Status(status);
    let cfg = match upstream() {
        Ok(u) => {
            let mut c = dns::Config::new(state_dir);
            c.upstream = u;
            c
        }
        Err(e) => {
            status.say(&format!("err {e:#}"));
            return 1;
        }
    };
    let res = dns::run(
        &cfg,
        |ready| {
            if ready.failed.is_empty() {
                status.say("ok");
            } else {
                let why: Vec<String> = ready
                    .failed
                    .iter()
                    .map(|(a, e)| format!("cannot listen on {a}: {e}"))
                    .collect();
                status.say(&format!("warn {}", why.join("; ")));
            }
            status.close();
        },
        None,
    );
    match res {
        Ok(Exit::AlreadyRunning) => {
            status.say("running");
            0
        }
        Ok(_) => 0,
        Err(e) => {
            status.say(&format!("err {e}"));
            1
        }
    }
}

/// The pipe to the process that started us; one line, then closed.
struct Status(i32);

impl Status {
    fn say(&mut self, s: &str) {
        if self.0 < 0 {
            return;
        }
        let line = format!("{}\n", s.replace('\n', " "));
        // SAFETY: writing our own fd.
        unsafe {
            libc::write(self.0, line.as_ptr().cast(), line.len());
        }
    }

    fn close(&mut self) {
        if self.0 >= 0 {
            // SAFETY: closing our own fd once.
            unsafe { libc::close(self.0) };
            self.0 = -1;
        }
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        self.close();
    }
}
