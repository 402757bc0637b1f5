//! Code that runs in the forked child: it never returns.

use std::ffi::CString;
use std::os::fd::{AsRawFd, RawFd};

use super::channel::{self, Msg};
use super::exec;
use super::plan::Plan;
use super::rootfs;
use crate::util::raw_write;

type R<T> = Result<T, String>;

fn last(what: impl std::fmt::Display) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn check(rc: libc::c_long, what: impl std::fmt::Display) -> R<()> {
    if rc < 0 {
        Err(last(what))
    } else {
        Ok(())
    }
}

/// `direct`: this process was cloned with the plan's new namespaces (all
/// but cgroup) and is init already (see `direct_clone_flags`).
pub fn main(plan: &Plan, sock: RawFd, direct: bool) -> ! {
    let code = match run(plan, sock, direct) {
        Ok(never) => match never {},
        Err(Fail::Setup(msg)) => {
            let _ = channel::send(sock, &Msg::Error(msg));
            1
        }
        Err(Fail::Exec(code, msg)) => {
            raw_write(2, format!("{msg}\n").as_bytes());
            code
        }
    };
    // SAFETY: leave the forked child without running the parent's atexit handlers.
    unsafe { libc::_exit(code) }
}

enum Fail {
    /// Before `Ready`: reported to the runtime.
    Setup(String),
    /// After `Ready`: printed to the container's stderr, with an exit code.
    Exec(i32, String),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Setup(s)
    }
}

enum Never {}

/// Close every fd from 3 up, except `keep` and the preserved range.
fn close_others(keep: &[RawFd], preserve: u32) {
    let mut keep: Vec<u32> = keep.iter().map(|&f| f as u32).collect();
    keep.sort_unstable();
    let mut from = 3 + preserve;
    for k in keep {
        if k < from {
            continue;
        }
        if k > from {
            // SAFETY: closing fds of this (single-threaded) child.
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
        }
        from = k + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

fn run(plan: &Plan, sock: RawFd, direct: bool) -> Result<Never, Fail> {
    // Until execve replaces this image, /proc/<pid>/exe is the host's
    // binary; a non-dumpable process keeps container processes (which lack
    // CAP_SYS_PTRACE on the host) from opening it (CVE-2019-5736).
    // execve of the user program makes the process dumpable again.
    // SAFETY: prctl with integer args.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Fds of the caller (other threads' sockets, the engine's files) must not
    // reach the container; close them now, not only at exec.
    close_others(&plan.keep_fds(sock), plan.preserve_fds);

    for f in &plan.cgroup_procs {
        std::fs::write(f, "0").map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
    }
    for (flag, fd) in &plan.join {
        // SAFETY: setns with an fd of /proc/<pid>/ns/* or a bind-mounted ns file.
        check(
            unsafe { libc::setns(fd.as_raw_fd(), *flag) } as _,
            format!("join namespace {}", ns_name(*flag)),
        )?;
    }
    if plan.new_user {
        // SAFETY: unshare in a single-threaded child.
        check(
            unsafe { libc::unshare(libc::CLONE_NEWUSER) } as _,
            "unshare user namespace",
        )?;
        channel::send(sock, &Msg::UserNsReady).map_err(|e| format!("send: {e}"))?;
        match channel::recv(sock) {
            Ok(Some(Msg::UserMapsDone)) => {}
            _ => return Err(Fail::Setup("runtime did not write the id maps".into())),
        }
        // SAFETY: become root of the new user namespace.
        check(
            unsafe { libc::setresgid(0, 0, 0) } as _,
            "setresgid in user namespace",
        )?;
        check(
            unsafe { libc::setresuid(0, 0, 0) } as _,
            "setresuid in user namespace",
        )?;
    }
    if direct {
        if plan.unshare & libc::CLONE_NEWCGROUP != 0 {
            // SAFETY: unshare in a single-threaded child.
            check(
                unsafe { libc::unshare(libc::CLONE_NEWCGROUP) } as _,
                "unshare cgroup namespace",
            )?;
        }
        return init(plan, sock);
    }
    if plan.unshare != 0 {
        // SAFETY: unshare in a single-threaded child.
        check(
            unsafe { libc::unshare(plan.unshare) } as _,
            "unshare namespaces",
        )?;
    }
    if plan.pid_ns {
        // A raw clone with CLONE_PARENT makes init a child of the runtime (so
        // `run` can wait for it) and the first process of the pid namespace.
        // SAFETY: fork-like clone (no new stack, no shared VM).
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                libc::CLONE_PARENT | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            )
        };
        if pid < 0 {
            return Err(Fail::Setup(last("clone init")));
        }
        if pid > 0 {
            let _ = channel::send(sock, &Msg::Pid(pid as i32));
            // SAFETY: the intermediate process is done.
            unsafe { libc::_exit(0) };
        }
    } else {
        // SAFETY: getpid has no failure mode.
        let _ = channel::send(sock, &Msg::Pid(unsafe { libc::getpid() }));
    }
    init(plan, sock)
}

fn ns_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "network",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWCGROUP => "cgroup",
        _ => "time",
    }
}

fn init(plan: &Plan, sock: RawFd) -> Result<Never, Fail> {
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
            format!("set oom_score_adj {adj}: {e} (lowering it needs CAP_SYS_RESOURCE)")
        })?;
    }
    for &(res, soft, hard) in &plan.rlimits {
        let l = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit with a valid struct.
        if unsafe { libc::setrlimit(res, &l) } != 0 {
            return Err(Fail::Setup(last(format!(
                "setrlimit {} {soft}:{hard}",
                crate::rlimit::name(res)
            ))));
        }
    }
    if plan.setsid {
        // SAFETY: new session for the container's terminal.
        unsafe { libc::setsid() };
    }
    if let Some(r) = &plan.rootfs {
        let root = rootfs::prepare(r)?;
        if plan.runtime_hooks {
            channel::send(sock, &Msg::HooksPlease).map_err(|e| format!("send: {e}"))?;
            match channel::recv(sock) {
                Ok(Some(Msg::HooksDone)) => {}
                _ => return Err(Fail::Setup("runtime hooks did not complete".into())),
            }
        }
        for h in &plan.create_container_hooks {
            crate::hooks::run(h, &plan.hook_state)
                .map_err(|e| format!("createContainer hook: {e}"))?;
        }
        rootfs::pivot(&root, r)?;
        drop(root);
        if plan.terminal {
            // devpts lives in the new root, so the pty is made after pivot.
        }
        rootfs::finish(r)?;
    }
    if let Some(h) = &plan.hostname {
        // SAFETY: valid C string and length.
        check(
            unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) } as _,
            "sethostname",
        )?;
    }
    if let Some(d) = &plan.domainname {
        // SAFETY: valid C string and length.
        check(
            unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) } as _,
            "setdomainname",
        )?;
    }
    if plan.terminal {
        setup_tty(plan)?;
    } else if let Some(s) = plan.stdio {
        install_stdio(s)?;
    }
    let mut cwd_verified = false;
    if !plan.no_new_privileges {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN: load it now.
        if let Some(p) = &plan.seccomp {
            // The filter may deny getcwd (runtime-tools' linux_seccomp
            // does), so the CVE-2024-21626 check runs before it.
            cwd_verified = verify_cwd_before_seccomp(plan)?;
            crate::seccomp::load(p).map_err(|e| e.to_string())?;
        }
    }
    set_user(plan, cwd_verified)?;
    let resolved = plan
        .args
        .first()
        .ok_or_else(|| "process.args is empty".to_string())
        .map(|a0| exec::resolve(a0, &plan.path_env));

    channel::send(sock, &Msg::Ready).map_err(|e| format!("send: {e}"))?;
    // SAFETY: our copy of the socket is no longer needed.
    unsafe { libc::close(sock) };

    // With startContainer hooks, `start` waits for their verdict on the
    // fifo: "!" and the error, or the end of file that exec (close-on-exec)
    // or our exit makes.
    let verdict = match &plan.fifo {
        Some(fifo) => wait_fifo(
            fifo.as_raw_fd(),
            (!plan.start_container_hooks.is_empty()).then_some(plan.preserve_fds),
        )?,
        None => None,
    };
    for h in &plan.start_container_hooks {
        if let Err(e) = crate::hooks::run(h, &plan.hook_state) {
            let msg = format!("startContainer hook: {e}");
            if let Some(w) = verdict {
                raw_write(w, format!("!{msg}").as_bytes());
            }
            return Err(Fail::Exec(1, msg));
        }
    }
    let resolved = match resolved {
        Ok(Ok(p)) => p,
        Ok(Err(nr)) => return Err(Fail::Exec(nr.code, nr.msg)),
        Err(m) => return Err(Fail::Exec(127, m)),
    };
    // Every fd but stdio and the preserved ones is closed on exec (CVE-2024-21626).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC.
    unsafe { libc::syscall(libc::SYS_close_range, 3 + plan.preserve_fds, u32::MAX, 4u32) };
    for fd in 3..3 + plan.preserve_fds as RawFd {
        // SAFETY: clear FD_CLOEXEC on a preserved fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    reset_signals();
    if plan.no_new_privileges {
        // SAFETY: prctl with integer args.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Fail::Exec(1, last("set no_new_privs")));
        }
        if let Some(p) = &plan.seccomp {
            crate::seccomp::load(p).map_err(|e| Fail::Exec(1, e.to_string()))?;
        }
    }
    let nr = exec::execve(&resolved, &plan.args, &plan.env);
    Err(Fail::Exec(nr.code, nr.msg))
}

fn install_stdio(s: [RawFd; 3]) -> R<()> {
    // Move them out of the way first so a source fd in 0..2 is not clobbered.
    let mut high = [0; 3];
    for (i, fd) in s.iter().enumerate() {
        // SAFETY: duplicating an fd we were given.
        high[i] = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3) };
        if high[i] < 0 {
            return Err(last(format!("dup stdio fd {fd}")));
        }
    }
    for (i, fd) in high.iter().enumerate() {
        // SAFETY: dup2 onto 0..2.
        check(unsafe { libc::dup2(*fd, i as RawFd) } as _, "dup2 stdio")?;
        // SAFETY: closing our temporary copy.
        unsafe { libc::close(*fd) };
    }
    Ok(())
}

/// Make a pty in the container's devpts, give the master to the console
/// socket (SCM_RIGHTS, as runc does) and make the slave our terminal.
fn setup_tty(plan: &Plan) -> R<()> {
    let Some(console) = &plan.console else {
        return Err(
            "process.terminal is true but no console socket was given (--console-socket)".into(),
        );
    };
    let ptmx = if std::path::Path::new("/dev/pts/ptmx").exists() {
        c"/dev/pts/ptmx"
    } else {
        c"/dev/ptmx"
    };
    // SAFETY: open of a NUL-terminated path.
    let master = unsafe {
        libc::open(
            ptmx.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(last("open /dev/pts/ptmx"));
    }
    let mut n: libc::c_uint = 0;
    let mut unlock: libc::c_int = 0;
    // SAFETY: pty ioctls on the master.
    unsafe {
        if libc::ioctl(master, libc::TIOCSPTLCK, &mut unlock) != 0
            || libc::ioctl(master, libc::TIOCGPTN, &mut n) != 0
        {
            return Err(last("unlock pty"));
        }
    }
    let name = format!("/dev/pts/{n}");
    let cname = CString::new(name.clone()).map_err(|_| "pty name".to_string())?;
    // SAFETY: open the slave side.
    let slave = unsafe { libc::open(cname.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if slave < 0 {
        return Err(last(format!("open {name}")));
    }
    // SAFETY: fchown of the slave to the container user.
    unsafe { libc::fchown(slave, plan.uid, plan.gid) };
    send_fd(console.as_raw_fd(), master, &name)?;
    // SAFETY: closing and installing fds of this child.
    unsafe {
        libc::close(master);
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) != 0 {
            return Err(last("set controlling terminal"));
        }
        for i in 0..3 {
            libc::dup2(slave, i);
        }
        if slave > 2 {
            libc::close(slave);
        }
    }
    Ok(())
}

fn send_fd(sock: RawFd, fd: RawFd, name: &str) -> R<()> {
    let mut iov = libc::iovec {
        iov_base: name.as_ptr() as *mut _,
        iov_len: name.len(),
    };
    // SAFETY: building a cmsg buffer for one fd, per cmsg(3).
    unsafe {
        let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let mut buf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = buf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(last("send pty master to the console socket"));
        }
    }
    Ok(())
}

/// chdir to process.cwd with init's credentials and check that it lies
/// inside the root; false when init cannot enter it (the chdir as the
/// container user in `set_user` then reports the error, and checks).
fn verify_cwd_before_seccomp(plan: &Plan) -> R<bool> {
    // SAFETY: chdir to a C string.
    if unsafe { libc::chdir(plan.cwd.as_ptr()) } != 0 {
        return Ok(false);
    }
    check_cwd_inside_root(plan)?;
    Ok(true)
}

/// CVE-2024-21626: a cwd reached through a leaked fd lies outside the
/// root, and getcwd(2) then fails with ENOENT or answers "(unreachable)".
fn check_cwd_inside_root(plan: &Plan) -> R<()> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: getcwd into a buffer we own.
    let p = unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
    if p.is_null() || buf[0] != b'/' {
        return Err(format!(
            "current working directory {:?} is outside of the container's root filesystem",
            plan.cwd
        ));
    }
    Ok(())
}

fn set_user(plan: &Plan, cwd_verified: bool) -> R<()> {
    if let Some(c) = &plan.caps {
        // SAFETY: prctl with integer args.
        check(
            unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } as _,
            "keep capabilities",
        )?;
        crate::caps::drop_bounding(c, crate::caps::highest()).map_err(|e| e.to_string())?;
    }
    // SAFETY: credential syscalls with plain integers / a live array.
    unsafe {
        check(
            libc::setgroups(plan.additional_gids.len(), plan.additional_gids.as_ptr()) as _,
            "setgroups",
        )
        .or_else(|e| {
            if plan.additional_gids.is_empty() {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        check(
            libc::setresgid(plan.gid, plan.gid, plan.gid) as _,
            format!("setgid {}", plan.gid),
        )?;
        check(
            libc::setresuid(plan.uid, plan.uid, plan.uid) as _,
            format!("setuid {}", plan.uid),
        )?;
    }
    // SAFETY: chdir to a C string.
    if unsafe { libc::chdir(plan.cwd.as_ptr()) } != 0 {
        return Err(last(format!(
            "chdir to cwd {:?} set in config.json",
            plan.cwd
        )));
    }
    // The same path in the same root as the check before seccomp: checked
    // once is enough, and a filter may deny getcwd now.
    if !cwd_verified {
        check_cwd_inside_root(plan)?;
    }
    if let Some(c) = &plan.caps {
        crate::caps::apply_sets(c).map_err(|e| e.to_string())?;
        // SAFETY: prctl with integer args.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    }
    if let Some(m) = plan.umask {
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(m) };
    }
    Ok(())
}

/// Block until `start` opens exec.fifo for reading, then tell it we go on.
/// Blocks until `start` opens the exec fifo, then tells it so. With
/// `keep` (the number of preserved fds) the write end stays open and is
/// returned, for a verdict: close-on-exec, and above the preserved fds,
/// whose close-on-exec flag is cleared before exec.
fn wait_fifo(fd: RawFd, keep: Option<u32>) -> Result<Option<RawFd>, Fail> {
    let p = CString::new(format!("/proc/self/fd/{fd}")).map_err(|_| Fail::Setup("fifo".into()))?;
    // SAFETY: open through our own O_PATH fd.
    let w = unsafe { libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if w < 0 {
        return Err(Fail::Exec(1, last("open exec fifo")));
    }
    raw_write(w, b"0");
    // SAFETY: closing fds we own.
    unsafe { libc::close(fd) };
    if let Some(preserved) = keep {
        // SAFETY: duplicating an fd we own, then closing the original.
        let high = unsafe { libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 3 + preserved as RawFd) };
        unsafe { libc::close(w) };
        if high < 0 {
            return Err(Fail::Exec(1, last("duplicate exec fifo")));
        }
        return Ok(Some(high));
    }
    // SAFETY: closing an fd we own.
    unsafe { libc::close(w) };
    Ok(None)
}

fn reset_signals() {
    // SAFETY: restoring default dispositions and an empty mask before exec.
    unsafe {
        for s in 1..32 {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}
