//! `--init`: berth itself as a tiny pid 1 (`/sbin/docker-init __init -- CMD`)
//! that runs CMD, forwards signals to it and reaps every zombie.
//!
//! The binary the container sees is a private copy in `containers/<id>/`,
//! bind-mounted read-only, never the host's berth (CVE-2019-5736).

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Copies the running binary to `dir/docker-init` (once) and returns it.
pub fn install(dir: &Path) -> Result<PathBuf> {
    let dst = dir.join("docker-init");
    if !dst.exists() {
        let tmp = dir.join(".docker-init.tmp");
        std::fs::copy("/proc/self/exe", &tmp).context("cannot copy berth for --init")?;
        std::fs::rename(&tmp, &dst).context("cannot install docker-init")?;
    }
    Ok(dst)
}

pub fn entry(args: &[OsString]) -> i32 {
    let cmd: Vec<&OsString> = args.iter().skip_while(|a| *a != "--").skip(1).collect();
    if cmd.is_empty() {
        eprintln!("berth-init: no command given");
        return 1;
    }
    let argv: Vec<CString> = match cmd.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => return 1,
    };
    // Block the forwarded signals so none is lost between fork and wait.
    // SAFETY: signal mask manipulation and fork/exec with valid arguments.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        let child = libc::fork();
        if child < 0 {
            return 1;
        }
        if child == 0 {
            libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            libc::setpgid(0, 0);
            let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
            ptrs.push(std::ptr::null());
            libc::execvp(ptrs[0], ptrs.as_ptr());
            let e = std::io::Error::last_os_error();
            eprintln!("berth-init: exec {}: {e}", argv[0].to_string_lossy());
            libc::_exit(if e.raw_os_error() == Some(libc::ENOENT) {
                127
            } else {
                126
            });
        }
        loop {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let ts = libc::timespec {
                tv_sec: 1,
                tv_nsec: 0,
            };
            let sig = libc::sigtimedwait(&all, &mut info, &ts);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
            loop {
                let mut st = 0;
                let r = libc::waitpid(-1, &mut st, libc::WNOHANG);
                if r <= 0 {
                    break;
                }
                if r == child {
                    return if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        128 + libc::WTERMSIG(st)
                    };
                }
            }
        }
    }
}
