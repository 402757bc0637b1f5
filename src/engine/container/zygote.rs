//! A monitor forked at the start of `berth run`, before the command line is
//! parsed, so the monitor need not exec the berth binary again.
//!
//! Exec'ing the 15 MB binary for `__monitor` costs about 0.7 ms of CPU and
//! a hundred page faults per container, on the critical path of a `run`
//! (the CLI waits for the monitor's report). Forked at the top of `main`,
//! the process is small (the command-line parser has not allocated yet) and
//! single-threaded; it detaches (fork, setsid) at once, parks on a socket,
//! and while the CLI parses flags and writes the records it is already
//! there. The CLI sends `ROOT RUN ID WAIT` over the socket and reads the
//! monitor's one-line reports back from it, as from `__monitor`'s stdout.
//! A CLI that ends without a container (a flag error, a failed pull)
//! closes the socket and the parked process exits.
//!
//! If the parked process is gone (killed before it was asked), `spawn`
//! starts `__monitor` as before.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::engine::paths::Paths;

/// The CLI's end of the socket to the parked monitor, and the pid of the
/// intermediate child to reap.
struct Parked {
    sock: OwnedFd,
    intermediate: libc::pid_t,
}

static PARKED: Mutex<Option<Parked>> = Mutex::new(None);

/// Forks the parked monitor when argv is a `run` (global flags first, as
/// clap accepts them); any other command pays nothing. Call before any
/// thread exists.
pub fn prefork(args: &[String]) {
    if !is_run(args) {
        return;
    }
    let mut sv = [0; 2];
    // SAFETY: socketpair into a local array.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    } != 0
    {
        return;
    }
    // SAFETY: both fds were just created and are ours.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
    // SAFETY: fork of a single-threaded process (top of main).
    match unsafe { libc::fork() } {
        -1 => {}
        0 => {
            drop(ours);
            intermediate(theirs);
        }
        pid => {
            drop(theirs);
            if let Ok(mut p) = PARKED.lock() {
                *p = Some(Parked {
                    sock: ours,
                    intermediate: pid,
                });
            }
        }
    }
}

/// `[--root DIR|--config DIR|-l LEVEL|--log-level LEVEL|-D|--flag=value]... run ...`
/// or `container run`.
fn is_run(args: &[String]) -> bool {
    match command_index(args) {
        Some(i) if args[i] == "run" => true,
        Some(i) if args[i] == "container" => args.get(i + 1).is_some_and(|s| s == "run"),
        _ => false,
    }
}

/// Where the command starts in argv, past berth's global flags (`--root
/// DIR`, `--config DIR`, `-l LEVEL`, `--log-level LEVEL`, `-D`,
/// `--flag=value`), as clap would read them.
pub fn command_index<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Option<usize> {
    let mut i = 1;
    while let Some(a) = args.get(i) {
        match a.as_ref().to_str() {
            Some("--root" | "--config" | "-l" | "--log-level") => i += 2,
            Some(s) if s.starts_with('-') => i += 1,
            Some(_) => return Some(i),
            None => return None,
        }
    }
    None
}

/// The child of the CLI: forks the parked monitor and exits, so the monitor
/// is nobody's child but its reaper's (as `__monitor`'s double fork does).
fn intermediate(sock: OwnedFd) -> ! {
    // SAFETY: plain syscalls in a single-threaded child; the name makes
    // test harnesses that reap `berth-monitor` zombies reap this one too.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"berth-monitor".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        match libc::fork() {
            0 => parked(sock),
            _ => libc::_exit(0),
        }
    }
}

/// Waits for the CLI's request; runs the monitor, or exits on EOF.
fn parked(sock: OwnedFd) -> ! {
    // SAFETY: new session for the detached monitor.
    unsafe { libc::setsid() };
    super::monitor::redirect_stdio_to_null();
    let mut f = File::from(sock);
    let mut req = Vec::new();
    // The CLI shuts its write side down after the request.
    let code = match f.read_to_end(&mut req) {
        Ok(_) if !req.is_empty() => match parse(&req) {
            Some((paths, id, wait)) => super::monitor::run_detached(paths, id, wait, f),
            None => 2,
        },
        _ => 0,
    };
    std::process::exit(code)
}

fn parse(req: &[u8]) -> Option<(Paths, String, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let parts: Vec<&[u8]> = req.split(|&b| b == 0).collect();
    let [root, run, id, wait, ..] = parts.as_slice() else {
        return None;
    };
    let path = |b: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(b));
    Some((
        Paths {
            root: path(root),
            run: path(run),
        },
        String::from_utf8(id.to_vec()).ok()?,
        *wait == b"1",
    ))
}

/// For a CLI that ends without using the parked monitor: closing the socket
/// lets it exit, and the intermediate child is reaped (no zombie is left).
pub fn release() {
    let Some(parked) = PARKED.lock().ok().and_then(|mut p| p.take()) else {
        return;
    };
    drop(parked.sock);
    let mut st = 0;
    // SAFETY: reaping our own child (it exits right after its fork).
    unsafe { libc::waitpid(parked.intermediate, &mut st, 0) };
}

/// Hands the container to the parked monitor; returns the socket that
/// carries its reports, or `None` when there is no parked monitor (or it
/// is gone), and the caller starts `__monitor`.
pub fn take(paths: &Paths, id: &str, wait_attach: bool) -> Option<File> {
    use std::os::unix::ffi::OsStrExt;
    let parked = PARKED.lock().ok()?.take()?;
    let mut st = 0;
    // SAFETY: reaping our own child (it exits right after its fork).
    unsafe { libc::waitpid(parked.intermediate, &mut st, 0) };
    let mut req = Vec::new();
    for part in [
        paths.root.as_os_str().as_bytes(),
        paths.run.as_os_str().as_bytes(),
        id.as_bytes(),
        if wait_attach { b"1" } else { b"0" },
    ] {
        req.extend_from_slice(part);
        req.push(0);
    }
    let mut f = File::from(parked.sock);
    f.write_all(&req).ok()?;
    // SAFETY: half-close of our socket: the request is complete.
    if unsafe { libc::shutdown(f.as_raw_fd(), libc::SHUT_WR) } != 0 {
        return None;
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_is_found_after_global_flags() {
        assert!(is_run(&v(&["berth", "run", "busybox"])));
        assert!(is_run(&v(&[
            "berth", "--root", "/r", "-D", "run", "-d", "x"
        ])));
        assert!(is_run(&v(&["berth", "--root=/r", "container", "run", "x"])));
        assert!(is_run(&v(&["berth", "-l", "debug", "run", "x"])));
        assert!(!is_run(&v(&["berth", "--root", "run", "ps"])));
        assert!(!is_run(&v(&["berth", "ps"])));
        assert!(!is_run(&v(&["berth", "container", "ls"])));
        assert!(!is_run(&v(&["berth"])));
    }

    #[test]
    fn request_round_trips() {
        let (p, id, w) = parse(b"/r\0/r/run\0abc\x001\0").unwrap();
        assert_eq!(p.root, PathBuf::from("/r"));
        assert_eq!(p.run, PathBuf::from("/r/run"));
        assert_eq!(id, "abc");
        assert!(w);
        assert!(parse(b"/r\0/x\0").is_none());
    }
}
