//! `exec -d`: the exec'd process needs a parent that reaps it. If the CLI
//! were its parent and exited, it would be reparented to pid 1 (or a
//! subreaper) and, on a host whose pid 1 does not reap, stay a zombie; the
//! container's pid-namespace init then cannot finish exiting when the
//! container is killed. So a small reaper process (setsid, stdio on
//! /dev/null) starts the exec, reports the result over a pipe, and waits
//! for the process; the CLI returns as soon as the exec has started.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{bail, Result};

use super::Reported;

pub fn run(start: impl FnOnce() -> Result<i32>) -> Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("cannot create a pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just returned by pipe2.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: the CLI is single-threaded here; the child only runs the
    // exec path and exits with _exit.
    match unsafe { libc::fork() } {
        -1 => bail!("cannot fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(r);
            reaper(w, start)
        }
        _ => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            match msg.strip_prefix("err ") {
                None if msg == "ok" => Ok(()),
                Some(e) => {
                    eprintln!("{e}");
                    Err(Reported { code: 1 }.into())
                }
                None => bail!("exec -d: the process starting the command died"),
            }
        }
    }
}

fn reaper(w: OwnedFd, start: impl FnOnce() -> Result<i32>) -> ! {
    // SAFETY: setsid/open/dup2 on our own process and fds.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    let res = start();
    let msg = match &res {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("err {}", super::errors::line(e)),
    };
    let mut f = std::fs::File::from(w);
    let _ = f.write_all(msg.as_bytes());
    drop(f);
    if let Ok(pid) = res {
        loop {
            let mut st = 0;
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, 0) };
            if r == pid
                || (r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
            {
                break;
            }
        }
    }
    // SAFETY: leave without running the parent's atexit handlers twice.
    unsafe { libc::_exit(0) }
}
