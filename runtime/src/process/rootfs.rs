//! Root filesystem setup inside the container's mount namespace.
//!
//! Every mount target is resolved under an O_PATH fd of the rootfs with
//! openat2(RESOLVE_IN_ROOT), and the mount is made onto /proc/self/fd/N of
//! that fd, so a symlink in the rootfs can never redirect a mount (or a
//! created file) onto the host.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

pub type R<T> = Result<T, String>;

fn errno_msg(what: impl std::fmt::Display) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

#[derive(Debug, Clone)]
pub struct MountPlan {
    pub destination: PathBuf,
    pub source: Option<CString>,
    pub fstype: Option<CString>,
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
    pub data: Option<CString>,
    pub bind: bool,
    /// The bind source is a file, so the target is created as a file.
    pub source_is_file: bool,
}

#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub path: PathBuf,
    /// S_IFCHR / S_IFBLK / S_IFIFO | permission bits
    pub mode: u32,
    pub major: u64,
    pub minor: u64,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone)]
pub struct RootfsPlan {
    pub rootfs: CString,
    pub root_propagation: libc::c_ulong,
    /// What `rootfsPropagation` asks of the container's `/` once it is
    /// the root (MS_SHARED or MS_UNBINDABLE, 0 for nothing more): applied
    /// after pivot_root, as the rootfs bind itself needs a bindable source.
    pub root_after_pivot: libc::c_ulong,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    /// /dev/* symlinks and the standard devices only when /dev is a fresh tmpfs.
    pub default_dev: bool,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub readonly_root: bool,
    pub no_pivot: bool,
    pub in_userns: bool,
    /// v1: (controller, host directory of the container's cgroup) for a `cgroup` mount.
    pub cgroup_binds: Vec<(String, PathBuf)>,
    pub cgroup_v2: bool,
    pub sysctls: Vec<(CString, String)>,
}

/// Translate OCI mount options into mount(2) flags, propagation and data.
pub fn parse_options(opts: &[String]) -> (libc::c_ulong, libc::c_ulong, bool, Vec<String>) {
    let mut flags: libc::c_ulong = 0;
    let mut prop: libc::c_ulong = 0;
    let mut rec = false;
    let mut data = Vec::new();
    for o in opts {
        let (set, clear): (libc::c_ulong, libc::c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => {
                rec = true;
                (libc::MS_BIND | libc::MS_REC, 0)
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let r = if o.starts_with('r') { libc::MS_REC } else { 0 };
                prop |= r | match o.trim_start_matches('r') {
                    "private" => libc::MS_PRIVATE,
                    "shared" => libc::MS_SHARED,
                    "slave" => libc::MS_SLAVE,
                    _ => libc::MS_UNBINDABLE,
                };
                (0, 0)
            }
            // runc extensions berth does not implement: refuse loudly elsewhere.
            other => {
                data.push(other.to_string());
                (0, 0)
            }
        };
        flags = (flags | set) & !clear;
    }
    let _ = rec;
    (flags, prop, flags & libc::MS_BIND != 0, data)
}

fn cstr(p: &Path) -> R<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| format!("path {p:?} contains NUL"))
}

fn fd_path(fd: &OwnedFd) -> CString {
    // Infallible: digits only.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> std::io::Result<()> {
    let p = |c: Option<&CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: all pointers are valid NUL-terminated strings or null.
    let rc = unsafe { libc::mount(p(src), target.as_ptr(), p(fstype), flags, p(data).cast()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Open `rel` under `root` without leaving it.
fn open_in_root(root: &OwnedFd, rel: &Path) -> std::io::Result<OwnedFd> {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    // EAGAIN: a rename or mount anywhere on the host during a `..` step;
    // routine on a busy host, so try again.
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(
            root.as_fd(),
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) if tries < 1000 => tries += 1,
            other => return other.map_err(std::io::Error::from),
        }
    }
}

/// `mkdir -p` (or create a file for the last component) under `root`,
/// returning an O_PATH fd of the result.
pub fn ensure_in_root(root: &OwnedFd, rel: &Path, file: bool) -> R<OwnedFd> {
    ensure_in_root_depth(root, rel, file, 0)
}

/// The path a symlink at `link` (inside the root) points to, made
/// lexically absolute within the root: `..` never climbs above `/`.
fn symlink_target_in_root(link: &Path, target: &Path) -> PathBuf {
    let joined = if target.is_absolute() {
        target.to_path_buf()
    } else {
        link.parent().unwrap_or(Path::new("/")).join(target)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn ensure_in_root_depth(root: &OwnedFd, rel: &Path, file: bool, depth: u32) -> R<OwnedFd> {
    match open_in_root(root, rel) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(format!("resolve {} in the rootfs: {e}", rel.display())),
    }
    let name = match rel.components().next_back() {
        Some(Component::Normal(n)) => n.to_owned(),
        _ => {
            return Err(format!(
                "resolve {} in the rootfs: not found",
                rel.display()
            ))
        }
    };
    let parent = rel.parent().unwrap_or(Path::new("/"));
    let pfd = ensure_in_root_depth(root, parent, false, depth)?;
    // O_PATH fds do not allow *at creation on all kernels; reopen as a dir.
    let dfd = rustix::fs::openat(
        pfd.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open {} in the rootfs: {e}", parent.display()))?;
    let r = if file {
        rustix::fs::openat(
            dfd.as_fd(),
            name.as_os_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(drop)
    } else {
        rustix::fs::mkdirat(dfd.as_fd(), name.as_os_str(), Mode::from_raw_mode(0o755))
    };
    match r {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {
            // A dangling symlink (an image's /etc/resolv.conf pointing into
            // /run, say): create what it points to, inside the root, as
            // docker does; the target is resolved in the root like any path.
            if let Ok(t) = rustix::fs::readlinkat(dfd.as_fd(), name.as_os_str(), Vec::new()) {
                if depth >= 16 {
                    return Err(format!(
                        "resolve {} in the rootfs: too many levels of symbolic links",
                        rel.display()
                    ));
                }
                let t = Path::new(std::ffi::OsStr::from_bytes(t.as_bytes()));
                let target = symlink_target_in_root(rel, t);
                ensure_in_root_depth(root, &target, file, depth + 1)?;
            }
        }
        Err(e) => return Err(format!("create {} in the rootfs: {e}", rel.display())),
    }
    open_in_root(root, rel).map_err(|e| {
        format!(
            "resolve {} in the rootfs: {e} (a symlink pointing outside the rootfs is never followed there)",
            rel.display()
        )
    })
}

/// Before pivot_root: propagation, the rootfs bind, mounts, devices.
pub fn prepare(p: &RootfsPlan) -> R<OwnedFd> {
    mount(None, c"/", None, libc::MS_REC | p.root_propagation, None)
        .map_err(|e| format!("make / {}: {e}", prop_name(p.root_propagation)))?;
    mount(
        Some(&p.rootfs),
        &p.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| format!("bind rootfs {:?} onto itself: {e}", p.rootfs))?;
    // SAFETY: open(2) of a NUL-terminated path.
    let fd = unsafe {
        libc::open(
            p.rootfs.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(errno_msg(format!("open rootfs {:?}", p.rootfs)));
    }
    // SAFETY: fd was just returned by open(2).
    let root = unsafe { OwnedFd::from_raw_fd(fd) };
    for m in &p.mounts {
        mount_one(&root, p, m)?;
    }
    if p.default_dev {
        default_devices(&root, p)?;
    }
    for d in &p.devices {
        make_device(&root, p, d)?;
    }
    Ok(root)
}

fn prop_name(f: libc::c_ulong) -> &'static str {
    if f & libc::MS_PRIVATE != 0 {
        "rprivate"
    } else if f & libc::MS_SHARED != 0 {
        "rshared"
    } else {
        "rslave"
    }
}

fn mount_one(root: &OwnedFd, p: &RootfsPlan, m: &MountPlan) -> R<()> {
    let dest = &m.destination;
    let ty = m
        .fstype
        .as_deref()
        .and_then(|t| t.to_str().ok())
        .unwrap_or("");
    if ty == "cgroup" || ty == "cgroup2" {
        return mount_cgroup(root, p, m);
    }
    let target = ensure_in_root(root, dest, m.bind && m.source_is_file)?;
    let tpath = fd_path(&target);
    let what = |e: std::io::Error| {
        format!(
            "mount {} ({ty}) on {}: {e}",
            display(&m.source),
            dest.display()
        )
    };
    if m.bind {
        mount(
            m.source.as_deref(),
            &tpath,
            None,
            m.flags & (libc::MS_BIND | libc::MS_REC),
            None,
        )
        .map_err(what)?;
        let extra = m.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            // The fd still names the covered directory: reopen to reach the new mount.
            let t2 = ensure_in_root(root, dest, m.source_is_file)?;
            remount(&fd_path(&t2), extra, true).map_err(what)?;
        }
    } else {
        let data = m.data.as_deref();
        mount(
            m.source.as_deref(),
            &tpath,
            m.fstype.as_deref(),
            m.flags,
            data,
        )
        .map_err(what)?;
    }
    if m.propagation != 0 {
        let t2 = ensure_in_root(root, dest, m.bind && m.source_is_file)?;
        mount(None, &fd_path(&t2), None, m.propagation, None).map_err(what)?;
    }
    if m.bind && has_data_opt(m, b"rro") {
        let t3 = ensure_in_root(root, dest, m.source_is_file)?;
        readonly_recursive(&t3).map_err(|e| {
            format!(
                "make {} recursively read-only (rro, mount_setattr): {e}",
                dest.display()
            )
        })?;
    }
    Ok(())
}

fn has_data_opt(m: &MountPlan, opt: &[u8]) -> bool {
    m.data
        .as_ref()
        .is_some_and(|d| d.to_bytes().split(|b| *b == b',').any(|o| o == opt))
}

/// runc's `rro`: MOUNT_ATTR_RDONLY on the mount and every submount
/// (mount_setattr with AT_RECURSIVE, Linux 5.12+).
fn readonly_recursive(target: &OwnedFd) -> std::io::Result<()> {
    crate::mount_attr::set_recursive(target.as_fd(), crate::mount_attr::MOUNT_ATTR_RDONLY, 0)
}

fn display(c: &Option<CString>) -> String {
    c.as_ref()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|| "none".into())
}

/// Remount a bind mount with `flags`, keeping the locked flags it already has
/// (nosuid/nodev/noexec/atime), which an unprivileged remount may not drop.
fn remount(path: &CStr, flags: libc::c_ulong, bind: bool) -> std::io::Result<()> {
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs into a zeroed struct.
    let keep = if unsafe { libc::statvfs(path.as_ptr(), &mut st) } == 0 {
        let f = st.f_flag;
        let mut k = 0;
        for (s, m) in [
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f & s != 0 {
                k |= m;
            }
        }
        k
    } else {
        0
    };
    let b = if bind { libc::MS_BIND } else { 0 };
    mount(None, path, None, libc::MS_REMOUNT | b | flags | keep, None)
}

/// v1: a tmpfs with each controller's directory bound read-only beneath it
/// (only the container's own cgroup is visible); v2: cgroup2 itself.
fn mount_cgroup(root: &OwnedFd, p: &RootfsPlan, m: &MountPlan) -> R<()> {
    let dest = &m.destination;
    let ro = m.flags & libc::MS_RDONLY;
    let base = m.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
    let target = ensure_in_root(root, dest, false)?;
    if p.cgroup_v2 {
        mount(
            Some(c"cgroup2"),
            &fd_path(&target),
            Some(c"cgroup2"),
            base | ro,
            None,
        )
        .map_err(|e| format!("mount cgroup2 on {}: {e}", dest.display()))?;
        return Ok(());
    }
    mount(
        Some(c"tmpfs"),
        &fd_path(&target),
        Some(c"tmpfs"),
        base,
        Some(c"mode=755"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", dest.display()))?;
    let mut done: Vec<&PathBuf> = vec![];
    for (ctrl, host) in &p.cgroup_binds {
        if done.contains(&host) {
            continue;
        }
        done.push(host);
        let sub = dest.join(ctrl);
        let t = ensure_in_root(root, &sub, false)?;
        let src = cstr(host)?;
        let err =
            |e: std::io::Error| format!("bind cgroup {} on {}: {e}", host.display(), sub.display());
        mount(Some(&src), &fd_path(&t), None, libc::MS_BIND, None).map_err(err)?;
        let t2 = ensure_in_root(root, &sub, false)?;
        remount(&fd_path(&t2), base | ro, true).map_err(err)?;
    }
    if ro != 0 {
        let t2 = ensure_in_root(root, dest, false)?;
        remount(&fd_path(&t2), base | ro, false)
            .map_err(|e| format!("remount {} read-only: {e}", dest.display()))?;
    }
    Ok(())
}

const STD_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn default_devices(root: &OwnedFd, p: &RootfsPlan) -> R<()> {
    for (path, major, minor) in STD_DEVICES {
        if p.devices.iter().any(|d| d.path == Path::new(path)) {
            continue;
        }
        let d = DevicePlan {
            path: PathBuf::from(path),
            mode: libc::S_IFCHR | 0o666,
            major: *major,
            minor: *minor,
            uid: 0,
            gid: 0,
        };
        make_device(root, p, &d)?;
    }
    let dev = ensure_in_root(root, Path::new("/dev"), false)?;
    let dfd = rustix::fs::openat(
        dev.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open /dev in the rootfs: {e}"))?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        if name == "ptmx" {
            let _ = rustix::fs::unlinkat(dfd.as_fd(), name, rustix::fs::AtFlags::empty());
        }
        match rustix::fs::symlinkat(target, dfd.as_fd(), name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(format!("symlink /dev/{name} -> {target}: {e}")),
        }
    }
    Ok(())
}

fn make_device(root: &OwnedFd, p: &RootfsPlan, d: &DevicePlan) -> R<()> {
    let parent = d.path.parent().unwrap_or(Path::new("/dev"));
    let Some(name) = d.path.file_name() else {
        return Err(format!("device path {} has no name", d.path.display()));
    };
    let pfd = ensure_in_root(root, parent, false)?;
    let dfd = rustix::fs::openat(
        pfd.as_fd(),
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("open {} in the rootfs: {e}", parent.display()))?;
    let cname =
        CString::new(name.as_encoded_bytes()).map_err(|_| "device name has NUL".to_string())?;
    if p.in_userns {
        // mknod is not allowed in a user namespace: bind the host's node.
        let t = ensure_in_root(root, &d.path, true)?;
        let src = cstr(&d.path)?;
        mount(Some(&src), &fd_path(&t), None, libc::MS_BIND, None)
            .map_err(|e| format!("bind device {}: {e}", d.path.display()))?;
        return Ok(());
    }
    let _ = rustix::fs::unlinkat(dfd.as_fd(), name, rustix::fs::AtFlags::empty());
    let dev = libc::makedev(d.major as u32, d.minor as u32);
    // SAFETY: mknodat relative to a directory fd we own.
    let rc = unsafe { libc::mknodat(dfd.as_raw_fd(), cname.as_ptr(), d.mode, dev) };
    if rc != 0 {
        return Err(errno_msg(format!("mknod {}", d.path.display())));
    }
    // SAFETY: fchownat/fchmodat on the node just created, not following symlinks.
    unsafe {
        libc::fchownat(
            dfd.as_raw_fd(),
            cname.as_ptr(),
            d.uid,
            d.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        );
        libc::fchmodat(dfd.as_raw_fd(), cname.as_ptr(), d.mode & 0o7777, 0);
    }
    Ok(())
}

/// pivot_root into the prepared rootfs and detach the old root.
pub fn pivot(root: &OwnedFd, p: &RootfsPlan) -> R<()> {
    rustix::process::fchdir(root.as_fd()).map_err(|e| format!("chdir to rootfs: {e}"))?;
    if p.no_pivot {
        mount(Some(c"."), c"/", None, libc::MS_MOVE, None)
            .map_err(|e| format!("move rootfs to /: {e}"))?;
        // SAFETY: chroot to ".".
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(errno_msg("chroot"));
        }
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // unmounting "." then removes exactly the old root.
        // SAFETY: raw pivot_root with valid strings.
        if unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) } != 0 {
            return Err(errno_msg("pivot_root"));
        }
        mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
            .map_err(|e| format!("make old root rslave: {e}"))?;
        // SAFETY: umount2 of ".".
        if unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(errno_msg("detach old root"));
        }
    }
    rustix::process::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if p.root_after_pivot == libc::MS_SHARED {
        mount(None, c"/", None, libc::MS_SHARED | libc::MS_REC, None)
            .map_err(|e| format!("make / rshared: {e}"))?;
    }
    Ok(())
}

/// After pivot_root: sysctls, masked and read-only paths, read-only root.
pub fn finish(p: &RootfsPlan) -> R<()> {
    for (file, val) in &p.sysctls {
        std::fs::write(Path::new(file.to_str().unwrap_or("")), val.as_bytes())
            .map_err(|e| format!("sysctl {}: {e}", file.to_string_lossy()))?;
    }
    for m in &p.masked {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: stat into a zeroed struct.
        if unsafe { libc::stat(m.as_ptr(), &mut st) } != 0 {
            continue;
        }
        let r = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            mount(Some(c"tmpfs"), m, Some(c"tmpfs"), libc::MS_RDONLY, None)
        } else {
            mount(Some(c"/dev/null"), m, None, libc::MS_BIND, None)
        };
        r.map_err(|e| format!("mask {}: {e}", m.to_string_lossy()))?;
    }
    for r in &p.readonly {
        if let Err(e) = mount(Some(r), r, None, libc::MS_BIND | libc::MS_REC, None) {
            if e.raw_os_error() == Some(libc::ENOENT) {
                continue;
            }
            return Err(format!("bind {} read-only: {e}", r.to_string_lossy()));
        }
        remount(r, libc::MS_RDONLY | libc::MS_REC, true)
            .map_err(|e| format!("remount {} read-only: {e}", r.to_string_lossy()))?;
    }
    if p.readonly_root {
        remount(c"/", libc::MS_RDONLY, true).map_err(|e| format!("remount / read-only: {e}"))?;
    }
    if p.root_after_pivot == libc::MS_UNBINDABLE {
        // Last, and `/` alone: the masks above bind from submounts, which
        // an unbindable tree would refuse.
        mount(None, c"/", None, libc::MS_UNBINDABLE, None)
            .map_err(|e| format!("make / unbindable: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod symlink_target_tests {
    use super::*;

    #[test]
    fn targets_stay_under_the_root() {
        let t = |l: &str, x: &str| symlink_target_in_root(Path::new(l), Path::new(x));
        assert_eq!(
            t("/etc/resolv.conf", "../run/r.conf"),
            Path::new("/run/r.conf")
        );
        assert_eq!(t("/etc", "/tmp/x"), Path::new("/tmp/x"));
        assert_eq!(t("/a/b", "../../../../x"), Path::new("/x"));
        assert_eq!(t("/a/b", "c/./d"), Path::new("/a/c/d"));
    }
}
