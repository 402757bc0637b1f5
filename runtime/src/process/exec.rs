//! Resolving and exec'ing the user's program with docker's exit codes:
//! 127 when it is not found, 126 when it cannot be executed.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct NotRunnable {
    pub code: i32,
    pub msg: String,
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Find args[0] like Go's exec.LookPath in runc: names with a '/' are used
/// as they are; others are searched in the container's PATH.
pub fn resolve(arg0: &CString, path_env: &str) -> Result<CString, NotRunnable> {
    let name = OsStr::from_bytes(arg0.as_bytes());
    let shown = name.to_string_lossy();
    if name.as_bytes().contains(&b'/') {
        let p = Path::new(name);
        return match std::fs::metadata(p) {
            Err(e) => Err(NotRunnable {
                code: if e.kind() == std::io::ErrorKind::PermissionDenied {
                    126
                } else {
                    127
                },
                msg: format!(
                    "exec: \"{shown}\": stat {shown}: {}",
                    crate::util::errno_text(&e)
                ),
            }),
            Ok(m) if m.is_dir() => Err(NotRunnable {
                code: 126,
                msg: format!("exec: \"{shown}\": is a directory"),
            }),
            Ok(_) => Ok(arg0.clone()),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand: PathBuf = Path::new(dir).join(name);
        if is_executable(&cand) {
            return CString::new(cand.as_os_str().as_bytes()).map_err(|_| NotRunnable {
                code: 127,
                msg: format!("exec: \"{shown}\": invalid path"),
            });
        }
    }
    Err(NotRunnable {
        code: 127,
        msg: format!("exec: \"{shown}\": executable file not found in $PATH"),
    })
}

/// execve; returns only on failure, with the exit code and message to report.
pub fn execve(path: &CString, args: &[CString], env: &[CString]) -> NotRunnable {
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    let e = std::io::Error::last_os_error();
    let shown = String::from_utf8_lossy(args.first().map(|a| a.as_bytes()).unwrap_or(b""));
    let code = match e.raw_os_error() {
        Some(libc::ENOENT) => 127,
        _ => 126,
    };
    NotRunnable {
        code,
        msg: format!("exec: \"{shown}\": {}", crate::util::errno_text(&e)),
    }
}
