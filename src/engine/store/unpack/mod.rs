//! The secure layer extractor.
//!
//! The `tar` crate only parses headers; every filesystem change goes through
//! a directory fd of the layer root: parents are opened with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`), final
//! names are created with `*at` calls that never follow a symlink, and
//! hardlink targets are resolved the same way. Later entries replace earlier
//! ones, as tar semantics say. See docs/architecture.md "Layer safety".

mod entry;
mod safe_fs;
mod whiteout;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, XattrFlags};
use rustix::io::Errno;

use entry::{EntryMeta, Kind, Time};
use whiteout::Whiteout;

/// Per-layer choices of the caller.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// `trusted.overlay.` as root; `user.overlay.` for rootless overlay
    /// (`userxattr`). Whiteout markers are written under this prefix and a
    /// tar may never carry xattrs under it (nor under `trusted.overlay.`).
    pub overlay_xattr_prefix: String,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            overlay_xattr_prefix: "trusted.overlay.".to_string(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    /// Sum of regular file sizes: the layer's unpacked size.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("tar entry {entry:?}: {reason}")]
    Entry { entry: String, reason: String },
    #[error("reading the tar stream: {0}")]
    Archive(#[source] io::Error),
    #[error("cannot open layer directory {path}: {source}")]
    Root {
        path: String,
        #[source]
        source: io::Error,
    },
}

const COPY_BUF: usize = 1 << 20;

/// Unpacks `reader` into the existing, empty directory `root`, then reads
/// the stream to its end so trailing bytes are consumed.
pub fn unpack<R: Read>(
    reader: R,
    root: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root_fd = rfs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Root {
        path: root.display().to_string(),
        source: e.into(),
    })?;
    unpack_at(reader, root_fd, opts)
}

/// `unpack` into a directory the caller opened (`cp` into a container
/// resolves its destination inside the container's root first).
pub fn unpack_at<R: Read>(
    reader: R,
    root_fd: OwnedFd,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let mut u = Unpacker {
        root: root_fd,
        cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; COPY_BUF],
        opts,
        stats: UnpackStats::default(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Archive)? {
        let mut entry = entry.map_err(UnpackError::Archive)?;
        let meta = entry::read_meta(&mut entry)
            .map_err(|(entry, reason)| UnpackError::Entry { entry, reason })?;
        u.apply(&meta, &mut entry)?;
    }
    u.finish_dir_times();
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Archive)?;
    Ok(u.stats)
}

struct Unpacker<'o> {
    root: OwnedFd,
    /// The last parent directory used: consecutive entries share it.
    cache: Option<(Vec<u8>, OwnedFd)>,
    dir_times: Vec<(Vec<u8>, Time, Option<Time>)>,
    buf: Vec<u8>,
    opts: &'o UnpackOptions,
    stats: UnpackStats,
}

fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn entry_err(meta: &EntryMeta, reason: impl Into<String>) -> UnpackError {
    UnpackError::Entry {
        entry: meta.raw_path.clone(),
        reason: reason.into(),
    }
}

fn sys_err(meta: &EntryMeta, what: &str, e: Errno) -> UnpackError {
    entry_err(meta, format!("{what}: {}", safe_fs::describe(e)))
}

/// Returns the fd of `path` (created if missing), reusing the cached one.
fn parent_fd<'a>(
    cache: &'a mut Option<(Vec<u8>, OwnedFd)>,
    root: &'a OwnedFd,
    path: &[u8],
) -> Result<BorrowedFd<'a>, Errno> {
    if path.is_empty() {
        return Ok(root.as_fd());
    }
    let hit = matches!(cache, Some((p, _)) if p.as_slice() == path);
    if !hit {
        let fd = safe_fs::open_or_create_dir(root.as_fd(), path)?;
        *cache = Some((path.to_vec(), fd));
    }
    let cache: &'a Option<(Vec<u8>, OwnedFd)> = cache;
    match cache {
        Some((_, fd)) => Ok(fd.as_fd()),
        None => Err(Errno::NOENT),
    }
}

impl Unpacker<'_> {
    fn apply<R: Read>(&mut self, meta: &EntryMeta, content: &mut R) -> Result<(), UnpackError> {
        if meta.kind == Kind::Skip {
            return Ok(());
        }
        self.stats.entries += 1;
        for (name, _) in &meta.xattrs {
            if name.starts_with(b"trusted.overlay.")
                || name.starts_with(self.opts.overlay_xattr_prefix.as_bytes())
            {
                return Err(entry_err(
                    meta,
                    format!(
                        "carries the overlay xattr {:?}, which only the engine may set",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        if meta.path.is_empty() {
            return self.apply_root(meta);
        }
        let (parent_path, name) = split_last(&meta.path);

        if let Some(w) = whiteout::classify(name) {
            return self.apply_whiteout(meta, parent_path, w);
        }

        let parent = parent_fd(&mut self.cache, &self.root, parent_path)
            .map_err(|e| sys_err(meta, "cannot open parent directory", e))?;
        let removed_dir = match &meta.kind {
            Kind::File => {
                let (removed, bytes) = write_file(parent, name, meta, content, &mut self.buf)?;
                self.stats.bytes += bytes;
                removed
            }
            Kind::Dir => {
                let removed = make_dir(parent, name, meta, self.opts)?;
                self.dir_times
                    .push((meta.path.clone(), meta.mtime, meta.atime));
                removed
            }
            Kind::Symlink(target) => make_symlink(parent, name, target, meta)?,
            Kind::Hardlink(target) => make_hardlink(self.root.as_fd(), parent, name, target, meta)?,
            Kind::Char(maj, min) => make_node(
                parent,
                name,
                FileType::CharacterDevice,
                rfs::makedev(*maj, *min),
                meta,
            )?,
            Kind::Block(maj, min) => make_node(
                parent,
                name,
                FileType::BlockDevice,
                rfs::makedev(*maj, *min),
                meta,
            )?,
            Kind::Fifo => make_node(parent, name, FileType::Fifo, 0, meta)?,
            Kind::Skip => false,
        };
        if removed_dir {
            // A removed directory may be the cached one or hold it.
            self.cache = None;
        }
        Ok(())
    }

    fn apply_root(&mut self, meta: &EntryMeta) -> Result<(), UnpackError> {
        if meta.kind != Kind::Dir {
            return Err(entry_err(meta, "the layer root can only be a directory"));
        }
        let fd = self.root.as_fd();
        set_owner_mode_fd(fd, meta)?;
        set_xattrs_fd(fd, meta)?;
        self.dir_times.push((Vec::new(), meta.mtime, meta.atime));
        Ok(())
    }

    fn apply_whiteout(
        &mut self,
        meta: &EntryMeta,
        parent_path: &[u8],
        w: Whiteout<'_>,
    ) -> Result<(), UnpackError> {
        let parent = parent_fd(&mut self.cache, &self.root, parent_path)
            .map_err(|e| sys_err(meta, "cannot open parent directory", e))?;
        match w {
            Whiteout::AufsMeta => Ok(()),
            Whiteout::Opaque => {
                let name = format!("{}opaque", self.opts.overlay_xattr_prefix);
                rfs::fsetxattr(parent, name.as_str(), b"y", XattrFlags::empty())
                    .map_err(|e| sys_err(meta, "cannot mark the directory opaque", e))
            }
            Whiteout::Remove(target) => {
                if target.is_empty() || target == b"." || target == b".." {
                    return Err(entry_err(meta, "whiteout of an invalid name"));
                }
                let removed = safe_fs::remove_any(parent, target)
                    .map_err(|e| sys_err(meta, "cannot remove the whited-out name", e))?;
                rfs::mknodat(
                    parent,
                    target,
                    FileType::CharacterDevice,
                    Mode::empty(),
                    rfs::makedev(0, 0),
                )
                .map_err(|e| sys_err(meta, "cannot create the whiteout device", e))?;
                rfs::chownat(
                    parent,
                    target,
                    Some(rfs::Uid::from_raw(meta.uid)),
                    Some(rfs::Gid::from_raw(meta.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| sys_err(meta, "cannot chown the whiteout", e))?;
                if removed {
                    self.cache = None;
                }
                Ok(())
            }
        }
    }

    /// Directory times last, deepest first, since creating children changes them.
    fn finish_dir_times(&mut self) {
        self.cache = None;
        let mut times = std::mem::take(&mut self.dir_times);
        times.sort_by_key(|(p, _, _)| {
            std::cmp::Reverse(p.iter().filter(|&&b| b == b'/').count() + usize::from(!p.is_empty()))
        });
        for (path, mtime, atime) in times {
            let ts = safe_fs::timestamps(mtime, atime);
            if path.is_empty() {
                let _ = rfs::futimens(&self.root, &ts);
                continue;
            }
            let (pp, name) = split_last(&path);
            let parent = if pp.is_empty() {
                None
            } else {
                match safe_fs::open_dir_beneath(self.root.as_fd(), pp) {
                    Ok(fd) => Some(fd),
                    // Replaced later in the layer by something else: nothing to date.
                    Err(_) => continue,
                }
            };
            let dir = parent.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let _ = rfs::utimensat(dir, name, &ts, AtFlags::SYMLINK_NOFOLLOW);
        }
    }
}

fn set_owner_mode_fd(fd: BorrowedFd<'_>, meta: &EntryMeta) -> Result<(), UnpackError> {
    // chown clears setuid/setgid, so the mode comes after it.
    rfs::fchown(
        fd,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
    )
    .map_err(|e| sys_err(meta, "cannot chown", e))?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode)).map_err(|e| sys_err(meta, "cannot chmod", e))
}

fn xattr_failed(meta: &EntryMeta, name: &[u8], e: Errno) -> Result<(), UnpackError> {
    // As docker does: a filesystem without xattr support (or a namespace the
    // kernel refuses) costs the attribute, not the pull.
    if e == Errno::OPNOTSUPP || e == Errno::PERM {
        tracing::warn!(
            entry = %meta.raw_path,
            xattr = %String::from_utf8_lossy(name),
            "ignoring xattr: {}",
            io::Error::from(e)
        );
        Ok(())
    } else {
        Err(sys_err(
            meta,
            &format!("cannot set xattr {:?}", String::from_utf8_lossy(name)),
            e,
        ))
    }
}

fn set_xattrs_fd(fd: BorrowedFd<'_>, meta: &EntryMeta) -> Result<(), UnpackError> {
    for (name, value) in &meta.xattrs {
        if let Err(e) = rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty()) {
            xattr_failed(meta, name, e)?;
        }
    }
    Ok(())
}

fn set_xattrs_at(parent: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> Result<(), UnpackError> {
    if meta.xattrs.is_empty() {
        return Ok(());
    }
    let path = safe_fs::proc_path(parent, name);
    for (xname, value) in &meta.xattrs {
        if let Err(e) = rfs::lsetxattr(
            path.as_slice(),
            xname.as_slice(),
            value,
            XattrFlags::empty(),
        ) {
            xattr_failed(meta, xname, e)?;
        }
    }
    Ok(())
}

/// Creates `name` with `create`, replacing an existing entry once.
fn create_replacing(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &EntryMeta,
    mut create: impl FnMut() -> Result<(), Errno>,
) -> Result<bool, UnpackError> {
    match create() {
        Ok(()) => Ok(false),
        Err(Errno::EXIST) => {
            let removed = safe_fs::remove_any(parent, name)
                .map_err(|e| sys_err(meta, "cannot replace the existing entry", e))?;
            create().map_err(|e| sys_err(meta, "cannot create", e))?;
            Ok(removed)
        }
        Err(e) => Err(sys_err(meta, "cannot create", e)),
    }
}

fn write_file<R: Read>(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &EntryMeta,
    content: &mut R,
    buf: &mut [u8],
) -> Result<(bool, u64), UnpackError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = None;
    let removed = create_replacing(parent, name, meta, || {
        fd = Some(rfs::openat(
            parent,
            name,
            flags,
            Mode::from_raw_mode(0o600),
        )?);
        Ok(())
    })?;
    let Some(fd) = fd else {
        return Err(entry_err(meta, "file was not created"));
    };
    let mut file = File::from(fd);
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match content.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(UnpackError::Archive(io::Error::new(
                        e.kind(),
                        format!("reading content of {:?}: {e}", meta.raw_path),
                    )))
                }
            }
        }
        if filled == 0 {
            break;
        }
        file.write_all(&buf[..filled])
            .map_err(|e| entry_err(meta, format!("cannot write: {e}")))?;
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if total != meta.size {
        return Err(entry_err(
            meta,
            format!("archive ended after {total} of {} content bytes", meta.size),
        ));
    }
    set_owner_mode_fd(file.as_fd(), meta)?;
    set_xattrs_fd(file.as_fd(), meta)?;
    rfs::futimens(&file, &safe_fs::timestamps(meta.mtime, meta.atime))
        .map_err(|e| sys_err(meta, "cannot set times", e))?;
    Ok((removed, total))
}

fn make_dir(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &EntryMeta,
    _opts: &UnpackOptions,
) -> Result<bool, UnpackError> {
    let mut removed = false;
    match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        Err(Errno::EXIST) => {
            let is_dir = safe_fs::is_dir_at(parent, name)
                .map_err(|e| sys_err(meta, "cannot inspect the existing entry", e))?;
            if is_dir != Some(true) {
                removed = safe_fs::remove_any(parent, name)
                    .map_err(|e| sys_err(meta, "cannot replace the existing entry", e))?;
                rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| sys_err(meta, "cannot create directory", e))?;
            }
        }
        Err(e) => return Err(sys_err(meta, "cannot create directory", e)),
    }
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys_err(meta, "cannot open the new directory", e))?;
    set_owner_mode_fd(fd.as_fd(), meta)?;
    set_xattrs_fd(fd.as_fd(), meta)?;
    Ok(removed)
}

fn chown_at(parent: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> Result<(), UnpackError> {
    rfs::chownat(
        parent,
        name,
        Some(rfs::Uid::from_raw(meta.uid)),
        Some(rfs::Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys_err(meta, "cannot chown", e))
}

fn times_at(parent: BorrowedFd<'_>, name: &[u8], meta: &EntryMeta) -> Result<(), UnpackError> {
    rfs::utimensat(
        parent,
        name,
        &safe_fs::timestamps(meta.mtime, meta.atime),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys_err(meta, "cannot set times", e))
}

fn make_symlink(
    parent: BorrowedFd<'_>,
    name: &[u8],
    target: &[u8],
    meta: &EntryMeta,
) -> Result<bool, UnpackError> {
    // The target is stored as text and never resolved here.
    let removed = create_replacing(parent, name, meta, || rfs::symlinkat(target, parent, name))?;
    chown_at(parent, name, meta)?;
    set_xattrs_at(parent, name, meta)?;
    times_at(parent, name, meta)?;
    Ok(removed)
}

fn make_hardlink(
    root: BorrowedFd<'_>,
    parent: BorrowedFd<'_>,
    name: &[u8],
    target: &[u8],
    meta: &EntryMeta,
) -> Result<bool, UnpackError> {
    let shown = String::from_utf8_lossy(target).into_owned();
    let (tp, tn) = split_last(target);
    let tparent_owned = if tp.is_empty() {
        None
    } else {
        Some(
            safe_fs::open_dir_beneath(root, tp)
                .map_err(|e| sys_err(meta, &format!("hardlink target {shown:?}"), e))?,
        )
    };
    let tparent = tparent_owned.as_ref().map_or(root, |f| f.as_fd());
    let tstat = match rfs::statat(tparent, tn, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => {
            return Err(entry_err(
                meta,
                format!("hardlink target {shown:?} does not exist earlier in this layer"),
            ))
        }
        Err(e) => return Err(sys_err(meta, &format!("hardlink target {shown:?}"), e)),
    };
    if FileType::from_raw_mode(tstat.st_mode) == FileType::Directory {
        return Err(entry_err(
            meta,
            format!("hardlink target {shown:?} is a directory"),
        ));
    }
    if let Ok(st) = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        if st.st_dev == tstat.st_dev && st.st_ino == tstat.st_ino {
            return Ok(false);
        }
    }
    // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
    create_replacing(parent, name, meta, || {
        rfs::linkat(tparent, tn, parent, name, AtFlags::empty())
    })
}

fn make_node(
    parent: BorrowedFd<'_>,
    name: &[u8],
    ft: FileType,
    dev: rfs::Dev,
    meta: &EntryMeta,
) -> Result<bool, UnpackError> {
    let removed = create_replacing(parent, name, meta, || {
        rfs::mknodat(
            parent,
            name,
            ft,
            Mode::from_raw_mode(meta.mode & 0o777),
            dev,
        )
    })?;
    chown_at(parent, name, meta)?;
    // The name was just created as a node by us in a directory only this
    // unpack writes, so fchmodat's following of a final symlink cannot occur.
    rfs::chmodat(
        parent,
        name,
        Mode::from_raw_mode(meta.mode),
        AtFlags::empty(),
    )
    .map_err(|e| sys_err(meta, "cannot chmod", e))?;
    set_xattrs_at(parent, name, meta)?;
    times_at(parent, name, meta)?;
    Ok(removed)
}

#[cfg(test)]
mod tests;
