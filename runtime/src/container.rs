//! The runtime's operations on containers (OCI runtime.md lifecycle).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci_spec::runtime::{Process, Spec};

use crate::build::{self, CreateInputs, ProcessInputs};
use crate::cgroups::{CgroupRecord, Hierarchy, Stats};
use crate::state::{self, ContainerDir, Record, State, Status};
use crate::Error;

/// Where the container's stdio comes from.
#[derive(Debug, Clone, Copy, Default)]
pub enum Stdio {
    /// The caller's own 0, 1, 2.
    #[default]
    Inherit,
    /// These fds (stdin, stdout, stderr), owned by the caller and open during the call.
    Fds([RawFd; 3]),
}

#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    pub console_socket: Option<PathBuf>,
    /// Move the rootfs to / and chroot instead of pivot_root (for ramfs roots).
    pub no_pivot: bool,
    pub stdio: Stdio,
    /// Keep fds 3..3+N open in the container (LISTEN_FDS style).
    pub preserve_fds: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub stdio: Stdio,
    pub preserve_fds: u32,
}

/// A state root holding containers.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub state_root: PathBuf,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn status_of(dir: &Path, rec: &Record) -> Status {
    if rec.state.pid <= 0 || state::proc_start_time(rec.state.pid) != Some(rec.pid_start_time) {
        return Status::Stopped;
    }
    if dir.join("exec.fifo").exists() {
        return Status::Created;
    }
    if rec.cgroup.is_frozen() {
        return Status::Paused;
    }
    Status::Running
}

fn connect_console(p: &Path) -> Result<OwnedFd, Error> {
    UnixStream::connect(p)
        .map(OwnedFd::from)
        .map_err(|e| Error::Config(format!("connect to console socket {}: {e}", p.display())))
}

fn write_pid_file(p: &Path, pid: i32) -> Result<(), Error> {
    crate::util::write_atomic(p, pid.to_string().as_bytes())
        .map_err(|e| Error::Io(format!("write pid file {}", p.display()), e))
}

impl Runtime {
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
        }
    }

    /// Create the container: everything up to, not including, the user
    /// process, which waits until `start`.
    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOpts) -> Result<State, Error> {
        let dir = ContainerDir::create(&self.state_root, id)?;
        let mut cg = CgroupRecord::default();
        match self.create_inner(&dir, bundle, opts, &mut cg) {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Err(ce) = cg.destroy() {
                    tracing::warn!("cleanup after failed create: {ce}");
                }
                let hook_failed = match &e {
                    Error::Process(crate::process::ProcessError::Hook(_)) => true,
                    // createContainer hooks run in init, which reports them so.
                    Error::Process(crate::process::ProcessError::Init(m)) => {
                        m.starts_with("createContainer hook")
                    }
                    _ => false,
                };
                if hook_failed {
                    // A failed prestart/createRuntime/createContainer hook
                    // stops the container and the lifecycle goes on with
                    // delete, whose poststop hooks run (runtime spec, lifecycle).
                    if let Ok(rec) = dir.load() {
                        let mut st = rec.state.clone();
                        st.status = Status::Stopped;
                        let js = serde_json::to_string(&st).unwrap_or_default();
                        let hooks = rec.hooks.unwrap_or_default();
                        crate::hooks::run_all_warn(hooks.poststop().as_ref(), &js, "poststop");
                    }
                }
                let _ = dir.remove();
                Err(e)
            }
        }
    }

    fn create_inner(
        &self,
        dir: &ContainerDir,
        bundle: &Path,
        opts: &CreateOpts,
        cg: &mut CgroupRecord,
    ) -> Result<State, Error> {
        let id = dir.id.as_str();
        let bundle = std::fs::canonicalize(bundle)
            .map_err(|e| Error::Io(format!("bundle {}", bundle.display()), e))?;
        let cfg = bundle.join("config.json");
        let spec =
            Spec::load(&cfg).map_err(|e| Error::Config(format!("load {}: {e}", cfg.display())))?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::Config("config.json has no root".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let rootfs = std::fs::canonicalize(&rootfs)
            .map_err(|e| Error::Io(format!("rootfs {}", rootfs.display()), e))?;
        crate::version::check(spec.version())?;
        // The spec allows a bundle without a process: create succeeds and
        // `start` is the operation that must fail. Init still needs a
        // process to plan, one it never reaches (it waits for `start`).
        let has_process = spec.process().is_some();
        let process = spec
            .process()
            .clone()
            .unwrap_or_else(crate::version::placeholder_process);
        let linux = spec.linux().clone().unwrap_or_default();

        // Cgroups first: init joins them before it unshares anything.
        let hier = Hierarchy::detect()?;
        let self_cg = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| Error::Io("read /proc/self/cgroup".into(), e))?;
        let cg_path = linux
            .cgroups_path()
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| id.to_string());
        *cg = hier.resolve(&cg_path, &self_cg)?;
        let mut rec = Record {
            state: State {
                oci_version: spec.version().clone(),
                id: id.to_string(),
                status: Status::Creating,
                pid: 0,
                bundle: bundle.clone(),
                annotations: spec.annotations().clone().unwrap_or_default(),
            },
            pid_start_time: 0,
            rootfs: rootfs.clone(),
            created: now(),
            hooks: spec.hooks().clone(),
            cgroup: CgroupRecord::default(),
            no_process: !has_process,
        };
        // The record names each cgroup before it exists: a creator killed
        // from here on (kill -9 of a monitor) leaves state that `delete
        // --force` cleans up completely.
        hier.create(cg, |planned| {
            rec.cgroup = planned.clone();
            dir.save(&rec).map_err(Error::from)
        })?;
        if let Some(r) = linux.resources() {
            cg.apply(&crate::cgroups::with_default_devices(
                r,
                linux.devices().as_deref().unwrap_or(&[]),
            ))?;
        }

        let fifo_path = dir.fifo();
        let c = CString::new(fifo_path.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Config("state path has NUL".into()))?;
        // SAFETY: mkfifo/open of a NUL-terminated path.
        let fifo = unsafe {
            if libc::mkfifo(c.as_ptr(), 0o622) != 0 {
                return Err(Error::Io(
                    format!("mkfifo {}", fifo_path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            // The umask cleared the write bits that a container user (or
            // root of a user namespace) needs to open it.
            libc::chmod(c.as_ptr(), 0o622);
            let fd = libc::fcntl(
                libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC),
                libc::F_DUPFD_CLOEXEC,
                3 + opts.preserve_fds as RawFd,
            );
            if fd < 0 {
                return Err(Error::Io(
                    format!("open {}", fifo_path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            OwnedFd::from_raw_fd(fd)
        };
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;

        let hook_state = serde_json::to_string(&rec.state).unwrap_or_default();
        let plan = build::create_plan(
            CreateInputs {
                spec: &spec,
                bundle: &bundle,
                rootfs: &rootfs,
                cgroup: cg,
                fifo,
                no_pivot: opts.no_pivot,
            },
            ProcessInputs {
                process: &process,
                spec: &spec,
                console,
                stdio: match opts.stdio {
                    Stdio::Inherit => None,
                    Stdio::Fds(f) => Some(f),
                },
                preserve_fds: opts.preserve_fds,
                hook_state,
            },
        )?;
        let hooks = spec.hooks().clone().unwrap_or_default();
        let base_state = rec.state.clone();
        let pid = crate::process::spawn(&plan, |pid| {
            let mut st = base_state.clone();
            st.pid = pid;
            let js = serde_json::to_string(&st).unwrap_or_default();
            // runtime-tools (hooks_stdin) wants prestart to see "created";
            // createRuntime runs during create, so "creating".
            st.status = Status::Created;
            let js_prestart = serde_json::to_string(&st).unwrap_or_default();
            crate::hooks::run_all(hooks.prestart().as_ref(), &js_prestart, "prestart")
                .and_then(|_| {
                    crate::hooks::run_all(hooks.create_runtime().as_ref(), &js, "createRuntime")
                })
                .map_err(crate::process::ProcessError::Hook)
        })?;
        drop(plan);
        rec.state.pid = pid;
        rec.state.status = Status::Created;
        rec.pid_start_time = state::proc_start_time(pid).unwrap_or(0);
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        dir.save(&rec)?;
        Ok(rec.state)
    }

    /// Let the created container's process exec the user program.
    pub fn start(&self, id: &str) -> Result<(), Error> {
        let dir = ContainerDir::open(&self.state_root, id)?;
        let mut rec = dir.load()?;
        let st = status_of(&dir.dir, &rec);
        if st != Status::Created {
            return Err(Error::BadState {
                id: id.into(),
                status: st,
                op: "start",
            });
        }
        if rec.no_process {
            return Err(Error::NoProcess(id.into()));
        }
        let fifo = dir.fifo();
        let c = CString::new(fifo.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Config("state path has NUL".into()))?;
        // SAFETY: open of a NUL-terminated path; nonblocking so a dead init cannot hang us.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(Error::Io(
                format!("open {}", fifo.display()),
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        loop {
            let mut pfd = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one fd we own.
            let n = unsafe { libc::poll(&mut pfd, 1, 100) };
            if n > 0 {
                let mut b = [0u8; 1];
                // SAFETY: read into a local buffer.
                let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
                if r == 1 {
                    break;
                }
                if r == 0 || pfd.revents & libc::POLLHUP != 0 {
                    return Err(Error::Start(id.into()));
                }
            }
            if state::proc_start_time(rec.state.pid) != Some(rec.pid_start_time) {
                return Err(Error::Start(id.into()));
            }
        }
        let starts = rec
            .hooks
            .as_ref()
            .and_then(|h| h.start_container().as_ref())
            .is_some_and(|v| !v.is_empty());
        let verdict = if starts {
            start_container_verdict(&fd)
        } else {
            Ok(())
        };
        let _ = std::fs::remove_file(&fifo);
        if let Err(msg) = verdict {
            // The spec: a failed startContainer hook is an error of start;
            // init exits, the container is stopped and waits for delete.
            return Err(Error::StartHook(id.into(), msg));
        }
        // No state write: "running" is derived from the fifo being gone.
        rec.state.status = Status::Running;
        let js = serde_json::to_string(&rec.state).unwrap_or_default();
        let hooks = rec.hooks.clone().unwrap_or_default();
        crate::hooks::run_all_warn(hooks.poststart().as_ref(), &js, "poststart");
        Ok(())
    }

    /// The OCI state, with the status as it is now.
    pub fn state(&self, id: &str) -> Result<State, Error> {
        state::validate_id(id)?;
        let d = self.state_root.join(id);
        let rec = state::load(&d, id)?;
        let mut s = rec.state.clone();
        s.status = status_of(&d, &rec);
        // A record still "creating" with a creator alive (it holds the
        // container's lock until create returns) is "creating", not a
        // stopped container; a creator that died left it stopped.
        if rec.state.status == Status::Creating && state::lock_held(&d) {
            s.status = Status::Creating;
        }
        if s.status == Status::Stopped {
            s.pid = 0;
        }
        Ok(s)
    }

    /// All containers under the state root.
    pub fn list(&self) -> Result<Vec<State>, Error> {
        let rd = match std::fs::read_dir(&self.state_root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::Io(format!("read {}", self.state_root.display()), e)),
        };
        let mut out = vec![];
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(s) = self.state(&name) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Created time (unix seconds) for `list`.
    pub fn created_at(&self, id: &str) -> Result<u64, Error> {
        Ok(state::load(&self.state_root.join(id), id)?.created)
    }

    fn record(&self, id: &str) -> Result<(ContainerDir, Record), Error> {
        let dir = ContainerDir::open(&self.state_root, id)?;
        let rec = dir.load()?;
        Ok((dir, rec))
    }

    /// Send `signal` to the container's init, or with `all` to every process in its cgroup.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), Error> {
        let (dir, rec) = self.record(id)?;
        let st = status_of(&dir.dir, &rec);
        if st == Status::Stopped && !all {
            return Err(Error::BadState {
                id: id.into(),
                status: st,
                op: "kill",
            });
        }
        let pids = if all {
            rec.cgroup.pids()?
        } else {
            vec![rec.state.pid]
        };
        for p in pids {
            // SAFETY: signalling a process of this container.
            if unsafe { libc::kill(p, signal) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(Error::Io(format!("kill {p} with signal {signal}"), e));
                }
            }
        }
        if all && st == Status::Paused && (signal == libc::SIGKILL) {
            let _ = rec.cgroup.set_frozen(false);
        }
        Ok(())
    }

    /// Delete a stopped container (or any, with `force`: it is killed first).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        if force && state::ContainerDir::remove_abandoned(&self.state_root, id)? {
            return Ok(());
        }
        let (dir, rec) = self.record(id)?;
        let st = status_of(&dir.dir, &rec);
        if st != Status::Stopped {
            if !force {
                return Err(Error::NotStopped {
                    id: id.into(),
                    status: st,
                });
            }
            if st == Status::Paused {
                let _ = rec.cgroup.set_frozen(false);
            }
            // SAFETY: killing our container's init.
            unsafe { libc::kill(rec.state.pid, libc::SIGKILL) };
            for _ in 0..500 {
                let mut s = 0;
                // SAFETY: reap it if it is our child; harmless otherwise.
                unsafe { libc::waitpid(rec.state.pid, &mut s, libc::WNOHANG) };
                if status_of(&dir.dir, &rec) == Status::Stopped {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        rec.cgroup.destroy()?;
        if rec.pid_start_time != 0 {
            let mut s = rec.state.clone();
            s.status = Status::Stopped;
            let js = serde_json::to_string(&s).unwrap_or_default();
            let hooks = rec.hooks.clone().unwrap_or_default();
            crate::hooks::run_all_warn(hooks.poststop().as_ref(), &js, "poststop");
        }
        dir.remove()?;
        Ok(())
    }

    pub fn pause(&self, id: &str) -> Result<(), Error> {
        self.freeze(id, Status::Running, true, "pause")
    }

    pub fn resume(&self, id: &str) -> Result<(), Error> {
        self.freeze(id, Status::Paused, false, "resume")
    }

    /// Freezes or thaws the cgroup of a container that is in state `from`.
    fn freeze(&self, id: &str, from: Status, frozen: bool, op: &'static str) -> Result<(), Error> {
        let (dir, rec) = self.record(id)?;
        let st = status_of(&dir.dir, &rec);
        if st != from {
            return Err(Error::BadState {
                id: id.into(),
                status: st,
                op,
            });
        }
        Ok(rec.cgroup.set_frozen(frozen)?)
    }

    /// Pids of the container's processes (host pid namespace).
    pub fn ps(&self, id: &str) -> Result<Vec<i32>, Error> {
        let (_, rec) = self.record(id)?;
        Ok(rec.cgroup.pids()?)
    }

    pub fn stats(&self, id: &str) -> Result<Stats, Error> {
        let (_, rec) = self.record(id)?;
        Ok(rec.cgroup.stats()?)
    }

    /// OOM kills in the container's cgroup so far (the engine reports OOMKilled when > 0).
    pub fn oom_kills(&self, id: &str) -> Result<u64, Error> {
        let (_, rec) = self.record(id)?;
        Ok(rec.cgroup.oom_kills())
    }

    /// The container's cgroup directories.
    pub fn cgroup(&self, id: &str) -> Result<CgroupRecord, Error> {
        Ok(self.record(id)?.1.cgroup)
    }

    /// Run `process` in the running container's namespaces and cgroup.
    /// Returns its pid, a child of the caller (see `wait`).
    pub fn exec(&self, id: &str, process: &Process, opts: &ExecOpts) -> Result<i32, Error> {
        let (dir, rec) = self.record(id)?;
        let st = status_of(&dir.dir, &rec);
        if st != Status::Running && st != Status::Created {
            return Err(Error::BadState {
                id: id.into(),
                status: st,
                op: "exec",
            });
        }
        let cfg = rec.state.bundle.join("config.json");
        let spec =
            Spec::load(&cfg).map_err(|e| Error::Config(format!("load {}: {e}", cfg.display())))?;
        let console = opts
            .console_socket
            .as_deref()
            .map(connect_console)
            .transpose()?;
        let plan = build::exec_plan(
            rec.state.pid,
            &rec.cgroup,
            ProcessInputs {
                process,
                spec: &spec,
                console,
                stdio: match opts.stdio {
                    Stdio::Inherit => None,
                    Stdio::Fds(f) => Some(f),
                },
                preserve_fds: opts.preserve_fds,
                hook_state: String::new(),
            },
        )?;
        drop(dir);
        let pid = crate::process::spawn(&plan, |_| Ok(()))?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        Ok(pid)
    }

    /// Create, start, wait for the exit, delete: returns the exit code
    /// (128+signal when killed), as `runc run` does.
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOpts) -> Result<i32, Error> {
        let st = self.create(id, bundle, opts)?;
        if let Err(e) = self.start(id) {
            let _ = self.delete(id, true);
            return Err(e);
        }
        let code = wait(st.pid);
        self.delete(id, true)?;
        Ok(code)
    }
}

/// After init's first byte: read the exec fifo to its end, which init's
/// exec (close-on-exec) or exit makes; "!" and a message mean a
/// startContainer hook failed.
fn start_container_verdict(fd: &OwnedFd) -> Result<(), String> {
    let mut got = vec![];
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one fd we own.
        unsafe { libc::poll(&mut pfd, 1, 100) };
        let mut b = [0u8; 4096];
        // SAFETY: read into a local buffer.
        let r = unsafe { libc::read(fd.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        match r {
            0 => break,
            n if n > 0 => got.extend_from_slice(&b[..n as usize]),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EAGAIN) && e.raw_os_error() != Some(libc::EINTR) {
                    return Err(format!("read exec fifo: {e}"));
                }
            }
        }
    }
    match got.split_first() {
        Some((b'!', msg)) => Err(String::from_utf8_lossy(msg).into_owned()),
        _ => Ok(()),
    }
}

/// Wait for a child of this process; exit code, or 128+signal.
pub fn wait(pid: i32) -> i32 {
    let mut st = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 255;
        }
    }
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    }
}
