//! One process-creation path for create, run and exec.
//!
//! The runtime forks; the child joins the container's cgroups and the
//! namespaces given by path, unshares the new ones (the runtime writes the
//! user-namespace id maps when asked), and, when a pid namespace is involved,
//! clones once more with CLONE_PARENT so that init is the runtime's child and
//! pid 1 inside. Init sets up the rootfs and the process, reports `Ready`,
//! then waits on exec.fifo (create) and execs the user's program.
//!
//! CVE-2019-5736: the host's berth binary is never exec'ed inside the
//! container's namespaces; all container-side code runs in the forked copy
//! of the runtime, which marks itself non-dumpable at once, so until it
//! execs the user's program no container process can open its
//! /proc/<pid>/exe (the host binary). No sealed memfd copy is needed.

pub mod channel;
mod exec;
mod init;
pub mod plan;
pub mod rootfs;

pub use plan::Plan;

use std::os::fd::{AsRawFd, RawFd};

use channel::Msg;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("container init: {0}")]
    Init(String),
    #[error("container init exited before it was ready (see its stderr)")]
    InitDied,
    #[error("{what}: {err}")]
    Sys { what: String, err: std::io::Error },
    #[error("hook failed: {0}")]
    Hook(String),
}

pub(crate) fn sys(what: impl Into<String>, err: std::io::Error) -> ProcessError {
    ProcessError::Sys {
        what: what.into(),
        err,
    }
}

/// Start the container's init (or an exec'ed process). `on_hooks` runs in
/// the runtime when init asks for prestart/createRuntime hooks. Returns the
/// pid of the process that will exec the user program (a child of the caller).
pub fn spawn(
    plan: &Plan,
    mut on_hooks: impl FnMut(i32) -> Result<(), ProcessError>,
) -> Result<i32, ProcessError> {
    let (parent_sock, child_sock) = channel::pair().map_err(|e| sys("socketpair", e))?;
    let direct = direct_clone_flags(plan);
    let child = match direct {
        // SAFETY: fork-like clone (no new stack, no shared VM) of a
        // single-threaded process; the child only runs `init::main`.
        Some(flags) => unsafe {
            libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD, 0, 0, 0, 0) as libc::pid_t
        },
        // SAFETY: the child only runs `init::main`, which never returns.
        None => unsafe { libc::fork() },
    };
    if child < 0 {
        return Err(sys("fork", std::io::Error::last_os_error()));
    }
    if child == 0 {
        drop(parent_sock);
        init::main(plan, child_sock.as_raw_fd(), direct.is_some());
    }
    drop(child_sock);
    let fd: RawFd = parent_sock.as_raw_fd();
    // A direct clone is init itself: no intermediate sends a pid.
    let mut init_pid: Option<i32> = direct.map(|_| child);
    // The intermediate process sends the pid and init sends everything else
    // on the same socket, so init's first message may overtake the pid:
    // such messages wait until the pid is known.
    let mut hooks_pending = false;
    let mut ready = false;
    let fail = |init_pid: Option<i32>, e: ProcessError| -> ProcessError {
        if let Some(p) = init_pid {
            // SAFETY: our own child.
            unsafe { libc::kill(p, libc::SIGKILL) };
            reap(p);
        }
        if init_pid != Some(child) {
            // SAFETY: our own child.
            unsafe { libc::kill(child, libc::SIGKILL) };
            reap(child);
        }
        e
    };
    loop {
        if let Some(p) = init_pid {
            if hooks_pending {
                hooks_pending = false;
                if let Err(e) = on_hooks(p) {
                    return Err(fail(init_pid, e));
                }
                let _ = channel::send(fd, &Msg::HooksDone);
            }
            if ready {
                return Ok(p);
            }
        }
        let m = match channel::recv(fd) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(fail(init_pid, ProcessError::InitDied)),
            Err(e) => return Err(fail(init_pid, sys("receive from container init", e))),
        };
        match m {
            Msg::UserNsReady => {
                if let Err(e) = plan.write_id_maps(child) {
                    return Err(fail(init_pid, e));
                }
                let _ = channel::send(fd, &Msg::UserMapsDone);
            }
            Msg::Pid(p) => {
                init_pid = Some(p);
                if p != child {
                    reap(child);
                }
            }
            Msg::HooksPlease => hooks_pending = true,
            Msg::Ready => ready = true,
            Msg::Error(s) => return Err(fail(init_pid, ProcessError::Init(s))),
            Msg::UserMapsDone | Msg::HooksDone => {}
        }
    }
}

/// The clone flags that make init directly, when that is safe: a new pid
/// namespace, no user namespace (its id maps need the intermediate process)
/// and no namespace joined by path that must come before the new ones (pid,
/// user). Then init is created with the namespaces in one clone, and the
/// intermediate process (a fork, an exit and a wait, and one more hand-over
/// between processes) is skipped. The cgroup namespace is still unshared
/// after the cgroups are joined, so its root is the container's cgroup.
/// Only for a single-threaded caller: a raw clone skips libc's fork
/// handlers, which a thread holding the malloc lock would need.
fn direct_clone_flags(plan: &Plan) -> Option<libc::c_int> {
    let fresh_pid = plan.unshare & libc::CLONE_NEWPID != 0;
    let joins_first = plan
        .join
        .iter()
        .any(|(f, _)| *f == libc::CLONE_NEWPID || *f == libc::CLONE_NEWUSER);
    if !plan.pid_ns || !fresh_pid || plan.new_user || joins_first || !single_threaded() {
        return None;
    }
    Some(plan.unshare & !libc::CLONE_NEWCGROUP)
}

/// Whether this process has one thread (field 20 of /proc/self/stat).
fn single_threaded() -> bool {
    let Ok(s) = std::fs::read_to_string("/proc/self/stat") else {
        return false;
    };
    // The command name (field 2) may hold spaces; count after its ')'.
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .is_some_and(|n| n == "1")
}

fn reap(pid: i32) {
    let mut st = 0;
    // SAFETY: waiting on our own child.
    unsafe { libc::waitpid(pid, &mut st, 0) };
}
