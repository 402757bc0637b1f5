//! The per-container monitor: `berth __monitor ROOT RUN ID [--wait-attach]`,
//! detached from the CLI (fork + setsid; the CLI reaps the intermediate).
//!
//! It holds `monitor.lock` for its whole life (readers probe it to tell a
//! live monitor from a killed one), mounts the rootfs, writes config.json,
//! creates and starts the container through the runtime library, owns its
//! stdio (pipes, or the pty master), appends the json-file log, serves
//! attach clients, records the exit, applies the restart policy and cleans
//! up. A plain poll loop: no async runtime, little memory.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use chrono::Utc;

use super::attach::{self, Parser};
use super::logs::{self, LineBuf};
use super::model::{ContainerRecord, Status};
use super::store::ContainerStore;
use crate::engine::fsutil::FileLock;
use crate::engine::paths::Paths;

struct Client {
    sock: UnixStream,
    parser: Parser,
    hello: bool,
}

/// What the monitor reports to the CLI that started it, one line each.
struct StatusPipe(Option<File>);

impl StatusPipe {
    fn say(&mut self, s: &str) {
        if let Some(f) = &mut self.0 {
            let _ = f.write_all(format!("{}\n", s.replace('\n', " ")).as_bytes());
        }
    }
    fn close(&mut self) {
        self.0 = None;
    }
}

pub fn entry(args: &[String]) -> i32 {
    if args.len() < 3 {
        eprintln!("usage: berth __monitor ROOT RUN ID [--wait-attach]");
        return 2;
    }
    let paths = Paths {
        root: PathBuf::from(&args[0]),
        run: PathBuf::from(&args[1]),
    };
    let id = args[2].clone();
    let wait_attach = args.iter().any(|a| a == "--wait-attach");
    // SAFETY: fork in a single-threaded process; the parent only exits.
    match unsafe { libc::fork() } {
        -1 => return 1,
        0 => {}
        _ => {
            // SAFETY: leave without running destructors (the child owns the pipe).
            unsafe { libc::_exit(0) }
        }
    }
    // SAFETY: plain syscalls on ourselves.
    unsafe {
        libc::setsid();
    }
    // SAFETY: fd 1 is the status pipe the CLI gave us; we own it from here.
    let status_file = unsafe { File::from_raw_fd(libc::dup(1)) };
    redirect_stdio_to_null();
    run_detached(paths, id, wait_attach, status_file)
}

/// The monitor proper, in a process already detached from the CLI (its own
/// session, stdio on /dev/null): `__monitor` above, or the monitor parked
/// by `zygote`. `status` carries the reports to the CLI.
pub(crate) fn run_detached(paths: Paths, id: String, wait_attach: bool, status: File) -> i32 {
    // SAFETY: prctl with a static NUL-terminated name.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"berth-monitor".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    let mut status = StatusPipe(Some(status));
    let store = ContainerStore::new(paths);
    match Monitor::new(store, id, wait_attach).and_then(|mut m| m.run(&mut status)) {
        Ok(()) => 0,
        Err(e) => {
            status.say(&format!("err {e:#}"));
            1
        }
    }
}

/// Detached processes (monitors, the name resolver) keep no terminal.
pub(crate) fn redirect_stdio_to_null() {
    // SAFETY: replacing our own stdio with /dev/null.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            libc::dup2(fd, 0);
            libc::dup2(fd, 1);
            libc::dup2(fd, 2);
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}

struct Monitor {
    store: ContainerStore,
    id: String,
    rec: ContainerRecord,
    wait_attach: bool,
    _lock: FileLock,
    listener: UnixListener,
    clients: Vec<Client>,
    log: logs::LogFile,
    /// Host-port reservations of the current run (bridge networks).
    net: Option<crate::engine::network::sandbox::Sandbox>,
}

/// One run of the container's process.
struct Io {
    /// stdin write end, or the pty master (shared with `out`).
    stdin: Option<OwnedFd>,
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    tty: bool,
    out_buf: LineBuf,
    err_buf: LineBuf,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    Ok((r, w))
}

fn set_nonblock(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    // SAFETY: read into our buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n > 0 {
        Some(n as usize)
    } else if n == 0 {
        Some(0)
    } else {
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => None,
            // EIO: the pty's last slave closed.
            _ => Some(0),
        }
    }
}

fn write_all_fd(fd: RawFd, mut b: &[u8]) {
    while !b.is_empty() {
        // SAFETY: write from our buffer.
        let n = unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
        if n > 0 {
            b = &b[n as usize..];
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            return;
        }
    }
}

impl Monitor {
    fn new(store: ContainerStore, id: String, wait_attach: bool) -> Result<Monitor> {
        let rec = store.load(&id)?;
        let run_dir = store.run_dir(&id);
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("cannot create {}", run_dir.display()))?;
        // Blocking: a reader probing liveness holds it shared for an instant.
        let lock = FileLock::exclusive(&store.monitor_lock_path(&id))
            .context("cannot take the monitor lock")?;
        let sock = store.attach_socket(&id);
        let _ = std::fs::remove_file(&sock);
        let (_dirfd, short) = super::store::short_socket_path(&run_dir, "attach.sock")?;
        let listener = UnixListener::bind(&short)
            .with_context(|| format!("cannot listen on {}", sock.display()))?;
        listener.set_nonblocking(true)?;
        let log = logs::LogFile::new(store.log_path(&id));
        Ok(Monitor {
            store,
            id,
            rec,
            wait_attach,
            _lock: lock,
            listener,
            clients: Vec::new(),
            log,
            net: None,
        })
    }

    fn run(&mut self, status: &mut StatusPipe) -> Result<()> {
        let mut first = true;
        let mut delay = Duration::from_millis(100);
        loop {
            let started = Instant::now();
            let result = self.run_once(status, first);
            let code = match result {
                Ok(code) => code,
                Err(e) => {
                    let msg = format!("{e:#}");
                    self.cleanup_runtime();
                    let _ = self.store.update_state(&self.id, |s| {
                        s.status = if first {
                            Status::Created
                        } else {
                            Status::Exited
                        };
                        s.pid = 0;
                        s.exit_code = 128;
                        s.error = msg.clone();
                        s.monitor_pid = 0;
                        s.finished_at = Some(Utc::now());
                    });
                    if first {
                        status.say(&format!("err {msg}"));
                        if self.rec.host_config.auto_remove {
                            self.remove_all();
                        }
                        return Ok(());
                    }
                    self.finish(128);
                    return Ok(());
                }
            };
            first = false;
            status.close();
            // `--rm` never restarts (`run` and `update` refuse a policy with
            // it): its exit is reported without reading the records again.
            if self.rec.host_config.auto_remove {
                self.finish(code);
                return Ok(());
            }
            let st = self.store.load_state(&self.id).unwrap_or_default();
            if !self.should_restart(code, &st) {
                self.finish(code);
                return Ok(());
            }
            self.cleanup_runtime();
            self.broadcast_exit(code);
            if started.elapsed() >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            let _ = self.store.update_state(&self.id, |s| {
                s.status = Status::Restarting;
                s.restart_count += 1;
            });
            // Back-off, cut short by a `stop` / `rm -f`.
            let until = Instant::now() + delay;
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
                if self
                    .store
                    .load_state(&self.id)
                    .map(|s| s.manually_stopped)
                    .unwrap_or(true)
                {
                    let _ = self
                        .store
                        .update_state(&self.id, |s| s.status = Status::Exited);
                    self.finish(code);
                    return Ok(());
                }
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    fn should_restart(&self, code: i32, st: &super::model::State) -> bool {
        if st.manually_stopped {
            return false;
        }
        // `update --restart` changes the policy of a running container.
        let fresh = self.store.load(&self.id).ok();
        let p = fresh
            .as_ref()
            .map_or(&self.rec.host_config.restart_policy, |r| {
                &r.host_config.restart_policy
            });
        match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => {
                code != 0
                    && (p.maximum_retry_count == 0 || st.restart_count < p.maximum_retry_count)
            }
            _ => false,
        }
    }

    /// Last exit: unmount, tell the clients, then release the runtime state
    /// and cgroups (the recorded state already says exited; `ops::release`
    /// waits for this monitor). `--rm` hides the container first: docker's
    /// `run --rm` returns once the container is gone from every listing.
    fn finish(&mut self, code: i32) {
        // Ports, leases and local-driver volumes are free before the exit is
        // reported: a `run -p` of the same port right after must not clash.
        self.release_network();
        crate::engine::volume::mounts::stop(&self.store, &self.id);
        if self.rec.host_config.auto_remove {
            // Lazy unmount: the pid namespace died with its init.
            let _ = super::rootfs::unmount(&self.store.dir(&self.id).join("merged"));
            // Read before the directory moves.
            let mounts =
                crate::engine::volume::mounts::load(&self.store, &self.id).unwrap_or_default();
            match super::removal::hide(&self.store, &self.id) {
                Ok(hidden) => {
                    // docker's `run --rm` returns with the anonymous volumes
                    // gone; a container without any pays nothing here.
                    let _ =
                        crate::engine::volume::mounts::remove_anonymous(&self.store.paths, &mounts);
                    self.broadcast_exit(code);
                    super::removal::finish(&self.store, &self.id, &hidden);
                }
                Err(_) => {
                    self.remove_all();
                    self.broadcast_exit(code);
                }
            }
        } else {
            // The mount goes first: a command run right after the exit
            // (export, commit) may mount the rootfs itself.
            let _ = super::rootfs::unmount(&self.store.dir(&self.id).join("merged"));
            self.broadcast_exit(code);
            self.release_runtime();
        }
    }

    fn broadcast_exit(&mut self, code: i32) {
        let f = attach::frame(attach::EXIT, &code.to_le_bytes());
        for c in &mut self.clients {
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.write_all(&f);
        }
        self.clients.clear();
    }

    fn remove_all(&mut self) {
        self.cleanup_runtime();
        let mounts = crate::engine::volume::mounts::load(&self.store, &self.id).unwrap_or_default();
        let _ = self.store.remove_dirs(&self.id);
        let _ = crate::engine::volume::mounts::remove_anonymous(&self.store.paths, &mounts);
    }

    fn cleanup_runtime(&mut self) {
        self.release_runtime();
        crate::engine::volume::mounts::stop(&self.store, &self.id);
        self.release_network();
    }

    /// The runtime state, cgroups and rootfs mount (`finish` released the
    /// network and volumes before it reported the exit).
    fn release_runtime(&self) {
        let rt = self.store.runtime();
        if rt.state(&self.id).is_ok() {
            let _ = rt.delete(&self.id, true);
        }
        let _ = super::rootfs::unmount(&self.store.dir(&self.id).join("merged"));
    }

    /// Leases, port rules and the namespace handle go when the process does.
    fn release_network(&mut self) {
        self.net = None;
        if let Err(e) = crate::engine::network::sandbox::release(&self.store, &self.id) {
            let _ = self
                .store
                .update_state(&self.id, |s| s.error = format!("{e:#}"));
        }
    }

    fn prepare_io(
        &self,
    ) -> Result<(
        Io,
        runtime::CreateOpts,
        Vec<OwnedFd>,
        Option<super::console::ConsoleReceiver>,
    )> {
        let mut opts = runtime::CreateOpts::default();
        if self.rec.config.tty {
            let (dirfd, cs) =
                super::store::short_socket_path(&self.store.run_dir(&self.id), "console.sock")?;
            let recv = super::console::ConsoleReceiver::listen(&cs, dirfd)?;
            opts.console_socket = Some(cs);
            return Ok((
                Io {
                    stdin: None,
                    out: None,
                    err: None,
                    tty: true,
                    out_buf: LineBuf::default(),
                    err_buf: LineBuf::default(),
                },
                opts,
                vec![],
                Some(recv),
            ));
        }
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if self.rec.config.open_stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            let f = File::open("/dev/null").context("open /dev/null")?;
            (OwnedFd::from(f), None)
        };
        opts.stdio = runtime::Stdio::Fds([in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]);
        set_nonblock(out_r.as_raw_fd());
        set_nonblock(err_r.as_raw_fd());
        Ok((
            Io {
                stdin: in_w,
                out: Some(out_r),
                err: Some(err_r),
                tty: false,
                out_buf: LineBuf::default(),
                err_buf: LineBuf::default(),
            },
            opts,
            vec![in_r, out_w, err_w],
            None,
        ))
    }

    fn write_spec(&self) -> Result<()> {
        let dir = self.store.dir(&self.id);
        let lower: Vec<PathBuf> = self
            .rec
            .layers
            .iter()
            .map(|h| self.store.paths.layers_dir().join(h).join("diff"))
            .collect();
        let mut layout = super::rootfs::Layout::new(&dir, lower);
        layout.volatile = self.rec.host_config.auto_remove;
        super::rootfs::mount(&layout)?;
        let init = if self.rec.host_config.init {
            Some(super::init::install(&dir)?)
        } else {
            None
        };
        let spec = super::spec::build(super::spec::Inputs {
            rec: &self.rec,
            rootfs: &layout.merged,
            dir: &dir,
            init: init.as_ref(),
        })?;
        let spec = crate::engine::network::sandbox::apply(
            &self.store,
            &self.rec,
            self.net.as_ref(),
            &dir,
            spec,
        )?;
        let extra = crate::engine::volume::mounts::start(&self.store, &self.id, &layout.merged)?;
        let spec = crate::engine::volume::mounts::apply(spec, extra)?;
        // Compact: read back at once by the runtime (and by `exec`), 40%
        // smaller than pretty-printed.
        let b = serde_json::to_vec(&spec)?;
        crate::engine::fsutil::write_new_or_replace(&dir.join("config.json"), &b)
            .context("cannot write config.json")?;
        Ok(())
    }

    /// Create, start, serve until the process exits; returns its exit code.
    fn run_once(&mut self, status: &mut StatusPipe, first: bool) -> Result<i32> {
        // A restart applies what `update` changed since; the first start
        // runs on the record `new` just read.
        if !first {
            if let Ok(r) = self.store.load(&self.id) {
                self.rec = r;
            }
        }
        if first && self.wait_attach {
            // The socket is bound: the client connects and says hello while
            // the container is created, not after.
            status.say("listening");
        }
        self.net = Some(crate::engine::network::sandbox::setup(
            &self.store,
            &self.rec,
        )?);
        self.write_spec()?;
        let rt = self.store.runtime();
        if rt.state(&self.id).is_ok() {
            let _ = rt.delete(&self.id, true);
        }
        let (mut io, opts, child_ends, console) = self.prepare_io()?;
        let st = rt
            .create(&self.id, &self.store.dir(&self.id), &opts)
            .map_err(|e| anyhow!("{e}"))?;
        if let Some(n) = self.net.as_mut() {
            n.start_relays();
        }
        drop(child_ends);
        if let Some(c) = console {
            let m = c.master()?;
            set_nonblock(m.as_raw_fd());
            io.stdin = Some(m.try_clone()?);
            io.out = Some(m);
        }
        let pid = st.pid;
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| anyhow!("bad pid {pid}"))?,
            rustix::process::PidfdFlags::empty(),
        )
        .context("pidfd_open")?;
        if first && self.wait_attach {
            self.accept_first(Duration::from_secs(60))?;
        }
        if let Err(e) = rt.start(&self.id) {
            reap(pid);
            return Err(anyhow!("{e}"));
        }
        self.store.update_state(&self.id, |s| {
            s.status = Status::Running;
            s.pid = pid;
            s.started_at = Some(Utc::now());
            s.finished_at = None;
            s.error.clear();
            s.oom_killed = false;
            // SAFETY: getpid has no preconditions.
            s.monitor_pid = unsafe { libc::getpid() };
        })?;
        if first {
            status.say(&format!("ok {pid}"));
            status.close();
        }
        // What creating the container allocated (spec, plan, seccomp
        // program) is free now: hand it back, the monitor lives as long as
        // the container.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        let code = self.serve(&mut io, pidfd.as_raw_fd(), pid);
        // The runtime state and the mount are released after the exit is
        // reported (`finish`, or before a restart).
        let oom = rt.oom_kills(&self.id).map(|n| n > 0).unwrap_or(false);
        self.store.update_state(&self.id, |s| {
            s.status = Status::Exited;
            s.pid = 0;
            s.exit_code = code;
            s.oom_killed = oom;
            s.finished_at = Some(Utc::now());
        })?;
        Ok(code)
    }

    fn accept_first(&mut self, timeout: Duration) -> Result<()> {
        let until = Instant::now() + timeout;
        while self.clients.is_empty() {
            if Instant::now() > until {
                return Err(anyhow!("no client attached within {timeout:?}"));
            }
            let mut pfd = libc::pollfd {
                fd: self.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one descriptor.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            self.accept_clients();
        }
        // Wait for the hello so stdin intentions are known before start.
        let until = Instant::now() + Duration::from_secs(5);
        while !self.clients.iter().any(|c| c.hello) && Instant::now() < until {
            let fd = self.clients[0].sock.as_raw_fd();
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one descriptor.
            unsafe { libc::poll(&mut pfd, 1, 100) };
            let mut dummy = Io {
                stdin: None,
                out: None,
                err: None,
                tty: false,
                out_buf: LineBuf::default(),
                err_buf: LineBuf::default(),
            };
            self.read_client(0, &mut dummy);
            if self.clients.is_empty() {
                return Err(anyhow!("the attaching client went away"));
            }
        }
        Ok(())
    }

    fn accept_clients(&mut self) {
        while let Ok((s, _)) = self.listener.accept() {
            let _ = s.set_nonblocking(true);
            self.clients.push(Client {
                sock: s,
                parser: Parser::default(),
                hello: false,
            });
        }
    }

    fn send(&mut self, kind: u8, data: &[u8]) {
        let f = attach::frame(kind, data);
        self.clients.retain_mut(|c| {
            let _ = c.sock.set_nonblocking(false);
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(5)));
            let ok = c.sock.write_all(&f).is_ok();
            let _ = c.sock.set_nonblocking(true);
            ok
        });
    }

    fn output(&mut self, io: &mut Io, stream: u8, data: &[u8]) {
        let (buf, name) = if stream == attach::STDOUT {
            (&mut io.out_buf, "stdout")
        } else {
            (&mut io.err_buf, "stderr")
        };
        let lines = buf.push(data);
        self.log.append(&lines, name);
        self.send(stream, data);
    }

    /// Handles one client's input; drops it on EOF.
    fn read_client(&mut self, i: usize, io: &mut Io) {
        let mut buf = [0u8; 8192];
        let n = match self.clients[i].sock.read(&mut buf) {
            Ok(0) => {
                self.clients.remove(i);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.clients.remove(i);
                return;
            }
        };
        let frames = self.clients[i].parser.push(&buf[..n]);
        for (kind, p) in frames {
            match kind {
                attach::HELLO => self.clients[i].hello = true,
                attach::STDIN => {
                    if let Some(fd) = &io.stdin {
                        write_all_fd(fd.as_raw_fd(), &p);
                    }
                }
                attach::STDIN_CLOSE => {
                    if io.tty {
                        // ^D ends input on a terminal.
                        if let Some(fd) = &io.stdin {
                            write_all_fd(fd.as_raw_fd(), &[4]);
                        }
                    } else {
                        io.stdin = None;
                    }
                }
                attach::RESIZE if p.len() == 4 => {
                    if let Some(fd) = &io.out {
                        let ws = libc::winsize {
                            ws_row: u16::from_le_bytes([p[0], p[1]]),
                            ws_col: u16::from_le_bytes([p[2], p[3]]),
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        if io.tty {
                            // SAFETY: TIOCSWINSZ on the pty master with a valid struct.
                            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                        }
                    }
                }
                attach::SIGNAL if p.len() == 4 => {
                    let sig = i32::from_le_bytes([p[0], p[1], p[2], p[3]]);
                    let _ = self.store.runtime().kill(&self.id, sig, false);
                }
                _ => {}
            }
        }
    }

    /// The poll loop of one run; returns the exit code once the process is
    /// gone and its output drained.
    fn serve(&mut self, io: &mut Io, pidfd: RawFd, pid: i32) -> i32 {
        let mut code: Option<i32> = None;
        let mut drain_deadline: Option<Instant> = None;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            if let Some(d) = drain_deadline {
                if (io.out.is_none() && io.err.is_none()) || Instant::now() > d {
                    break;
                }
            }
            let mut fds = vec![
                libc::pollfd {
                    fd: if code.is_none() { pidfd } else { -1 },
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: io.out.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: io.err.as_ref().map_or(-1, |f| f.as_raw_fd()),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            for c in &self.clients {
                fds.push(libc::pollfd {
                    fd: c.sock.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let timeout = if drain_deadline.is_some() { 50 } else { 1000 };
            // SAFETY: poll over a vector of pollfds we own.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue;
            }
            if fds[0].revents != 0 && code.is_none() {
                code = Some(reap(pid));
                // What is still buffered in the pipes; a process of the
                // container that keeps them open is killed with its pid ns.
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
            for (slot, stream) in [(1usize, attach::STDOUT), (2, attach::STDERR)] {
                if fds[slot].revents == 0 {
                    continue;
                }
                let fd = fds[slot].fd;
                loop {
                    match read_some(fd, &mut buf) {
                        Some(0) => {
                            if slot == 1 {
                                io.out = None;
                            } else {
                                io.err = None;
                            }
                            break;
                        }
                        Some(k) => {
                            let data = buf[..k].to_vec();
                            self.output(io, stream, &data);
                        }
                        None => break,
                    }
                }
            }
            if fds[3].revents != 0 {
                self.accept_clients();
            }
            let mut i = fds.len();
            while i > 4 {
                i -= 1;
                if fds[i].revents != 0 && i - 4 < self.clients.len() {
                    self.read_client(i - 4, io);
                }
            }
            if code.is_some() && drain_deadline.is_none() {
                break;
            }
        }
        for (b, name) in [(&mut io.out_buf, "stdout"), (&mut io.err_buf, "stderr")] {
            if let Some(rest) = b.flush() {
                self.log.append(&[rest], name);
            }
        }
        code.unwrap_or(255)
    }
}

/// Waits for our child; exit code or 128+signal.
fn reap(pid: i32) -> i32 {
    runtime::wait(pid)
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.store.attach_socket(&self.id));
        if self.store.dir(&self.id).join("state.json").exists() {
            let _ = self.store.update_state(&self.id, |s| s.monitor_pid = 0);
        }
    }
}
