//! The resolver's process loop: one per state dir (an flock says which),
//! listening on UDP and TCP port 53 of every user-defined network's
//! gateway, reloading the state files when they change, and returning by
//! itself once no container is left on a user-defined network.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, UNIX_EPOCH};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::socket::{self as sock, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::answer::{answer, fit_udp, servfail, Outcome};
use super::records::{Records, Rotor};
use super::upstream::{forward, UpstreamSource, Upstreams, SERVER_TIMEOUT};
use crate::error::{Error, Result};
use crate::types::NetEnv;

/// The gateway port the resolver listens on. Containers ask gateway:53,
/// which berth's nft table redirects here (per network, in prerouting):
/// host port 53 stays free to publish, as with docker.
pub const RESOLVER_PORT: u16 = 15353;

/// How the resolver runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The state dir whose `networks/*.json` it serves.
    pub state_dir: PathBuf,
    pub upstream: UpstreamSource,
    /// [`RESOLVER_PORT`] in production.
    pub port: u16,
    /// How often the state files are checked without an inotify event,
    /// and how soon an idle resolver notices it has nothing left to do.
    pub poll: Duration,
}

impl Config {
    pub fn new(state_dir: impl Into<PathBuf>) -> Config {
        Config {
            state_dir: state_dir.into(),
            upstream: UpstreamSource::ResolvConf(super::upstream::HOST_RESOLV_CONF.into()),
            port: RESOLVER_PORT,
            poll: Duration::from_secs(1),
        }
    }
}

/// Why [`run`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// No container is left on a user-defined network.
    Idle,
    /// Another resolver holds this state dir's lock.
    AlreadyRunning,
    /// The caller's stop flag was set.
    Stopped,
}

/// What the first pass bound: reported once through `ready`.
#[derive(Debug, Default)]
pub struct Ready {
    pub listening: Vec<SocketAddrV4>,
    /// Addresses that could not be bound (retried every poll), with why.
    pub failed: Vec<(SocketAddrV4, String)>,
}

/// The lock file: held by the running resolver for its whole life.
pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("networks").join(".dns.lock")
}

fn open_lock(state_dir: &Path) -> Result<File> {
    let path = lock_path(state_dir);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))
}

/// Takes the lock without waiting; `None` when another resolver has it.
fn try_lock(f: &File, path: &Path) -> Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", path, e)),
    }
}

/// True when a resolver holds the state dir's lock. One open and one
/// non-blocking flock: a few microseconds.
pub fn is_running(state_dir: &Path) -> Result<bool> {
    let f = open_lock(state_dir)?;
    Ok(!try_lock(&f, &lock_path(state_dir))?)
}

/// Exists while the lock holder listens on its networks: created after its
/// first pass bound the gateways, removed before it lets go of the lock.
pub fn ready_path(state_dir: &Path) -> PathBuf {
    state_dir.join("networks").join(".dns.ready")
}

/// What [`probe`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// A resolver holds the lock and listens.
    Ready,
    /// A resolver holds the lock but is starting, or handing over on its
    /// way out: ask again in a moment.
    Starting,
    /// No resolver: start one.
    Stopped,
}

/// One open, one non-blocking flock and one stat (microseconds): what
/// the engine asks on every container start on a user-defined network.
pub fn probe(state_dir: &Path) -> Result<Probe> {
    if !is_running(state_dir)? {
        return Ok(Probe::Stopped);
    }
    Ok(if ready_path(state_dir).exists() {
        Probe::Ready
    } else {
        Probe::Starting
    })
}

fn set_ready(state_dir: &Path, on: bool) {
    let p = ready_path(state_dir);
    // Best effort: a missing marker only makes `probe` callers wait, and a
    // stale one (a killed resolver) is ignored once the lock is free.
    if on {
        let _ = std::fs::write(&p, std::process::id().to_string());
    } else {
        let _ = std::fs::remove_file(&p);
    }
}

/// Runs the resolver on the calling thread until it is idle (or `stop` is
/// set). `ready` is called once, after the first pass bound its sockets.
pub fn run(
    cfg: &Config,
    ready: impl FnOnce(&Ready),
    stop: Option<Arc<AtomicBool>>,
) -> Result<Exit> {
    let lock = open_lock(&cfg.state_dir)?;
    let lock_file = lock_path(&cfg.state_dir);
    if !try_lock(&lock, &lock_file)? {
        return Ok(Exit::AlreadyRunning);
    }
    // A killed predecessor's marker.
    set_ready(&cfg.state_dir, false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("start the resolver's runtime for", &cfg.state_dir, e))?;
    rt.block_on(Loop::new(cfg, lock, lock_file).run(ready, stop))
}

/// Everything a query handler needs, swapped whole on reload.
struct Shared {
    records: RwLock<Arc<Records>>,
    rotor: Mutex<Rotor>,
    servers: RwLock<Arc<Vec<SocketAddr>>>,
    /// Bounds concurrent upstream queries; beyond it a client gets SERVFAIL.
    forwards: Arc<Semaphore>,
}

const MAX_FORWARDS: usize = 256;
/// How long a starting resolver retries a taken port before it reports.
const READY_WAIT: Duration = Duration::from_secs(1);
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

impl Shared {
    fn records(&self) -> Arc<Records> {
        self.records
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn servers(&self) -> Arc<Vec<SocketAddr>> {
        self.servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The answer, and the servers to forward to when it says so: the
    /// asker's own (`--dns`) or the host's.
    fn handle(
        &self,
        net: &str,
        src: Ipv4Addr,
        query: &[u8],
        udp: bool,
    ) -> (Outcome, Arc<Vec<SocketAddr>>) {
        let records = self.records();
        let asker = records.asker(net, src);
        let out = {
            let mut rotor = self.rotor.lock().unwrap_or_else(|e| e.into_inner());
            answer(&records, &mut rotor, &asker, query, udp)
        };
        if asker.upstream.is_empty() {
            return (out, self.servers());
        }
        let ours: Vec<Ipv4Addr> = records.served().iter().map(|n| n.gateway).collect();
        let own = asker
            .upstream
            .iter()
            .filter(|s| !matches!(s.ip(), std::net::IpAddr::V4(v4) if ours.contains(&v4)))
            .copied()
            .collect();
        (out, Arc::new(own))
    }
}

/// The sockets of one network, keyed by what they were bound for.
struct Listener {
    id: String,
    addr: SocketAddrV4,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Loop<'a> {
    cfg: &'a Config,
    env: NetEnv,
    lock: File,
    lock_file: PathBuf,
    shared: Arc<Shared>,
    upstreams: Upstreams,
    listeners: HashMap<String, Listener>,
    failed: HashMap<String, (SocketAddrV4, String)>,
    stamp: Vec<(String, u64, i128)>,
}

impl<'a> Loop<'a> {
    fn new(cfg: &'a Config, lock: File, lock_file: PathBuf) -> Loop<'a> {
        Loop {
            cfg,
            env: NetEnv::new(&cfg.state_dir),
            lock,
            lock_file,
            shared: Arc::new(Shared {
                records: RwLock::new(Arc::new(Records::default())),
                rotor: Mutex::new(Rotor::default()),
                servers: RwLock::new(Arc::new(Vec::new())),
                forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
            }),
            upstreams: Upstreams::new(cfg.upstream.clone()),
            listeners: HashMap::new(),
            failed: HashMap::new(),
            stamp: Vec::new(),
        }
    }

    async fn run(
        mut self,
        ready: impl FnOnce(&Ready),
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Exit> {
        let dir = self.env.state_dir.join("networks");
        let mut watch = Watch::new(&dir);
        let mut ready = Some(ready);
        loop {
            if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                set_ready(&self.env.state_dir, false);
                return Ok(Exit::Stopped);
            }
            self.reload(false);
            self.sync_listeners();
            if let Some(f) = ready.take() {
                // A resolver that is handing over (idle, unlocked, about to
                // exit) may hold the ports for a moment: wait a little
                // rather than report a failure the next poll would fix.
                let until = tokio::time::Instant::now() + READY_WAIT;
                while !self.failed.is_empty() && tokio::time::Instant::now() < until {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.sync_listeners();
                }
                set_ready(&self.env.state_dir, true);
                f(&Ready {
                    listening: self.listeners.values().map(|l| l.addr).collect(),
                    failed: self.failed.values().cloned().collect(),
                });
            }
            if !self.shared.records().has_leases() && self.quit_if_idle()? {
                return Ok(Exit::Idle);
            }
            self.upstreams.refresh();
            self.publish_servers();
            if watch.is_none() {
                watch = Watch::new(&dir);
            }
            // Failed binds are retried sooner: a resolver that is exiting
            // may still hold the port for a moment.
            let wait = if self.failed.is_empty() {
                self.cfg.poll
            } else {
                self.cfg.poll.min(Duration::from_millis(200))
            };
            match &mut watch {
                Some(w) => {
                    tokio::select! {
                        r = w.changed() => if r.is_err() { watch = None },
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }

    /// The idle hand-over: `ensure_running` starts a resolver only when it
    /// can take the lock. Unlocking first and then looking once more means
    /// a container that attached before our unlock is seen here, and one
    /// that attaches after it finds the lock free and starts a new
    /// resolver; none is ever left without one.
    fn quit_if_idle(&mut self) -> Result<bool> {
        set_ready(&self.env.state_dir, false);
        self.lock
            .unlock()
            .map_err(|e| Error::io("unlock", &self.lock_file, e))?;
        self.reload(true);
        if self.shared.records().has_leases() && try_lock(&self.lock, &self.lock_file)? {
            set_ready(&self.env.state_dir, true);
            return Ok(false);
        }
        Ok(true)
    }

    /// Re-reads the state files when their names, inodes or mtimes moved
    /// (every write is a rename, so a new inode each time).
    fn reload(&mut self, force: bool) {
        let stamp = stamp(&self.env.state_dir.join("networks"));
        if !force && stamp == self.stamp {
            return;
        }
        // A corrupt file keeps the previous view instead of dropping names.
        let Ok(states) = crate::network::list(&self.env) else {
            return;
        };
        self.stamp = stamp;
        let records = Arc::new(Records::new(&states));
        *self
            .shared
            .records
            .write()
            .unwrap_or_else(|e| e.into_inner()) = records;
        self.publish_servers();
    }

    fn publish_servers(&self) {
        let records = self.shared.records();
        let ours: Vec<Ipv4Addr> = records.served().iter().map(|n| n.gateway).collect();
        let servers = Arc::new(self.upstreams.servers(&ours));
        *self
            .shared
            .servers
            .write()
            .unwrap_or_else(|e| e.into_inner()) = servers;
    }

    /// Binds the gateway of every served network not yet bound, and drops
    /// the sockets of networks that are gone or were re-created.
    fn sync_listeners(&mut self) {
        let records = self.shared.records();
        let want: HashMap<&str, (&str, SocketAddrV4)> = records
            .served()
            .iter()
            .map(|n| {
                (
                    n.name.as_str(),
                    (n.id.as_str(), SocketAddrV4::new(n.gateway, self.cfg.port)),
                )
            })
            .collect();
        self.listeners.retain(|name, l| {
            want.get(name.as_str())
                .is_some_and(|(id, a)| *id == l.id && *a == l.addr)
        });
        self.failed.clear();
        for (name, (id, addr)) in want {
            if self.listeners.contains_key(name) {
                continue;
            }
            match listen(addr, name, &self.shared) {
                Ok(tasks) => {
                    self.listeners.insert(
                        name.to_string(),
                        Listener {
                            id: id.to_string(),
                            addr,
                            tasks,
                        },
                    );
                }
                Err(e) => {
                    self.failed.insert(name.to_string(), (addr, e.to_string()));
                }
            }
        }
    }
}

/// Names, inodes and mtimes of `networks/*.json`.
fn stamp(dir: &Path) -> Vec<(String, u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let mut out: Vec<(String, u64, i128)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if name.starts_with('.') || !name.ends_with(".json") {
                return None;
            }
            let m = e.metadata().ok()?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Some((name, m.ino(), mtime))
        })
        .collect();
    out.sort();
    out
}

/// A socket bound to `addr` even before the bridge has that address
/// (`IP_FREEBIND`: a network's state file is written before its bridge
/// exists, and the socket then works as soon as the address appears).
fn bound_socket(addr: SocketAddrV4, ty: SockType) -> nix::Result<OwnedFd> {
    let fd = sock::socket(
        AddressFamily::Inet,
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    sock::setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if ty == SockType::Stream {
        sock::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    sock::bind(fd.as_raw_fd(), &SockaddrIn::from(addr))?;
    if ty == SockType::Stream {
        sock::listen(&fd, sock::Backlog::new(128)?)?;
    }
    Ok(fd)
}

fn listen(
    addr: SocketAddrV4,
    net: &str,
    shared: &Arc<Shared>,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let udp = UdpSocket::from_std(std::net::UdpSocket::from(bound_socket(
        addr,
        SockType::Datagram,
    )?))?;
    let tcp = TcpListener::from_std(std::net::TcpListener::from(bound_socket(
        addr,
        SockType::Stream,
    )?))?;
    let (n1, s1) = (net.to_string(), shared.clone());
    let (n2, s2) = (net.to_string(), shared.clone());
    Ok(vec![
        tokio::spawn(serve_udp(Arc::new(udp), n1, s1)),
        tokio::spawn(serve_tcp(tcp, n2, s2)),
    ])
}

async fn serve_udp(sock: Arc<UdpSocket>, net: String, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, src)) = sock.recv_from(&mut buf).await else {
            // Not expected on an unconnected socket; never spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let SocketAddr::V4(src4) = src else { continue };
        let query = &buf[..n];
        let (outcome, servers) = shared.handle(&net, *src4.ip(), query, true);
        match outcome {
            Outcome::Reply(r) => {
                let _ = sock.send_to(&r, src).await;
            }
            Outcome::Drop => {}
            Outcome::Forward => {
                let query = query.to_vec();
                let Ok(permit) = shared.forwards.clone().try_acquire_owned() else {
                    if let Some(r) = servfail(&query) {
                        let _ = sock.send_to(&r, src).await;
                    }
                    continue;
                };
                let sock = sock.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let resp = match forward(&servers, &query, false, SERVER_TIMEOUT).await {
                        Some(r) => Some(fit_udp(&query, r)),
                        None => servfail(&query),
                    };
                    if let Some(r) = resp {
                        let _ = sock.send_to(&r, src).await;
                    }
                });
            }
        }
    }
}

async fn serve_tcp(l: TcpListener, net: String, shared: Arc<Shared>) {
    loop {
        let Ok((conn, src)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let SocketAddr::V4(src4) = src else { continue };
        let (net, shared) = (net.clone(), shared.clone());
        tokio::spawn(async move {
            let _ = serve_tcp_conn(conn, &net, *src4.ip(), &shared).await;
        });
    }
}

/// One TCP client: length-prefixed queries until it closes or idles.
async fn serve_tcp_conn(
    mut conn: TcpStream,
    net: &str,
    src: Ipv4Addr,
    shared: &Shared,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, conn.read_u16()).await {
            Ok(Ok(len)) => len,
            _ => return Ok(()),
        };
        let mut query = vec![0u8; len as usize];
        tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut query))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        let (outcome, servers) = shared.handle(net, src, &query, false);
        let resp = match outcome {
            Outcome::Reply(r) => Some(r),
            Outcome::Drop => None,
            Outcome::Forward => match forward(&servers, &query, true, SERVER_TIMEOUT).await {
                Some(r) => Some(r),
                None => servfail(&query),
            },
        };
        let Some(resp) = resp else { return Ok(()) };
        let Ok(n) = u16::try_from(resp.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(resp.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&resp);
        conn.write_all(&framed).await?;
    }
}

/// inotify on the networks directory, so a new network or lease is served
/// within milliseconds rather than at the next poll.
struct Watch(AsyncFd<InotifyFd>);

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Watch {
    fn new(dir: &Path) -> Option<Watch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        ino.add_watch(
            dir,
            AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM,
        )
        .ok()?;
        // SAFETY: InotifyFd owns the inotify fd and always returns it.
        unsafe { AsyncFd::register_with_interest(InotifyFd(ino), Interest::READABLE) }
            .ok()
            .map(Watch)
    }

    /// Waits for events on `*.json` and drains them.
    async fn changed(&mut self) -> std::io::Result<()> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.get_inner().0.read_events() {
                Ok(events) => {
                    let relevant = events.iter().any(|e| {
                        e.name
                            .as_ref()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"))
                    });
                    if relevant {
                        return Ok(());
                    }
                }
                Err(nix::Error::EAGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
