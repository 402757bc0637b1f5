//! `--init`: berth itself as a tiny pid 1 (`/sbin/docker-init __init -- CMD`)
//! that runs CMD, forwards signals to it and reaps every zombie.
//!
//! The binary the container sees is a private copy in `containers/<id>/init/`,
//! bind-mounted read-only at `/.berth-init`, never the host's berth
//! (CVE-2019-5736). A dynamically linked berth brings its loader and the
//! libraries it has mapped (read from /proc/self/maps) and is started
//! through that loader, since the image may have no (or another) libc.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Where the init directory appears inside the container.
pub const MOUNT_POINT: &str = "/.berth-init";

/// The host directory to bind-mount and the argv prefix that starts the
/// init (the user's command follows).
pub struct Installed {
    pub dir: PathBuf,
    pub argv: Vec<String>,
}

fn mapped_libraries() -> Vec<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut out: Vec<PathBuf> = Vec::new();
    for l in maps.lines() {
        if let Some(p) = l.split_whitespace().nth(5) {
            if p.starts_with('/') && p.contains(".so") && !out.iter().any(|o| o == Path::new(p)) {
                out.push(PathBuf::from(p));
            }
        }
    }
    out
}

fn copy_once(src: &Path, dst: &Path) -> Result<()> {
    if dst.exists() {
        return Ok(());
    }
    let tmp = dst.with_extension("tmp");
    std::fs::copy(src, &tmp)
        .with_context(|| format!("cannot copy {} for --init", src.display()))?;
    std::fs::rename(&tmp, dst).with_context(|| format!("cannot install {}", dst.display()))
}

/// Copies the running binary (and its loader and libraries when it is
/// dynamically linked) to `dir/init/`.
pub fn install(dir: &Path) -> Result<Installed> {
    let idir = dir.join("init");
    std::fs::create_dir_all(&idir).with_context(|| format!("cannot create {}", idir.display()))?;
    copy_once(Path::new("/proc/self/exe"), &idir.join("docker-init"))?;
    let exe = format!("{MOUNT_POINT}/docker-init");
    let libs = mapped_libraries();
    let loader = libs.iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ld-linux") || n.starts_with("ld-musl"))
    });
    let mut argv = Vec::new();
    if let Some(loader) = loader {
        for l in &libs {
            if let Some(name) = l.file_name() {
                copy_once(l, &idir.join(name))?;
            }
        }
        let lname = loader
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ld.so");
        argv.push(format!("{MOUNT_POINT}/{lname}"));
        argv.push("--library-path".into());
        argv.push(MOUNT_POINT.into());
    }
    argv.push(exe);
    argv.push("__init".into());
    argv.push("--".into());
    Ok(Installed { dir: idir, argv })
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
