//! `diff`: the container's changes read from its overlay upper directory:
//! a 0/0 character device is a deletion (whiteout), an entry that a lower
//! layer also has is a change, anything else an addition (with everything
//! below an added directory). Paths are resolved in each lower layer with
//! `RESOLVE_IN_ROOT`, so a layer's absolute symlink is never looked up on
//! the host.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Changed,
    Added,
    Deleted,
}

impl Kind {
    /// docker's letters (and its numeric `Kind`: 0 C, 1 A, 2 D).
    pub fn letter(self) -> char {
        match self {
            Kind::Changed => 'C',
            Kind::Added => 'A',
            Kind::Deleted => 'D',
        }
    }
}

/// Files the engine itself puts in the container's filesystem for its
/// mounts (docker keeps them in a separate init layer, so its `diff` and
/// `commit` never show them).
pub const ENGINE_PATHS: &[&str] = &[
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
    "/.dockerenv",
    "/dev",
    "/proc",
    "/sys",
];

pub fn is_engine_path(p: &str) -> bool {
    ENGINE_PATHS
        .iter()
        .any(|e| p == *e || (p.starts_with(e) && p.as_bytes().get(e.len()) == Some(&b'/')))
}

/// What a lower layer has at a path: nothing, a whiteout, or an entry.
fn in_lowers(lowers: &[OwnedFd], rel: &str) -> bool {
    for l in lowers {
        let Ok(fd) = crate::engine::fsutil::openat2(
            l.as_fd(),
            rel,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        let Ok(st) = rfs::fstat(&fd) else { continue };
        let ft = FileType::from_raw_mode(st.st_mode);
        return !(ft == FileType::CharacterDevice && st.st_rdev == 0);
    }
    false
}

fn walk(
    upper: &Path,
    rel: &str,
    lowers: &[OwnedFd],
    parent_added: bool,
    out: &mut Vec<(String, Kind)>,
) -> Result<()> {
    let dir = upper.join(rel.trim_start_matches('/'));
    let rd = std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = e.file_name();
        let path = format!("{rel}/{}", name.to_string_lossy());
        let m = e
            .path()
            .symlink_metadata()
            .with_context(|| format!("cannot stat {}", e.path().display()))?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            out.push((path, Kind::Deleted));
            continue;
        }
        let kind = if !parent_added && in_lowers(lowers, &path) {
            Kind::Changed
        } else {
            Kind::Added
        };
        out.push((path.clone(), kind));
        if ft.is_dir() {
            walk(upper, &path, lowers, kind == Kind::Added, out)?;
        }
    }
    Ok(())
}

/// The changes, sorted by path, without the engine's own files.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(String, Kind)>> {
    let fds = lowers
        .iter()
        .map(|l| {
            rfs::open(
                l,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .with_context(|| format!("cannot open layer {}", l.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all = Vec::new();
    if upper.is_dir() {
        walk(upper, "", &fds, false, &mut all)?;
    }
    let kept: Vec<(String, Kind)> = all
        .iter()
        .filter(|(p, _)| !is_engine_path(p))
        .cloned()
        .collect();
    // A directory copied up only for the engine's files is no change.
    let mut out: Vec<(String, Kind)> = kept
        .iter()
        .filter(|(p, k)| {
            if *k != Kind::Changed {
                return true;
            }
            let had_engine_child = all
                .iter()
                .any(|(c, _)| is_engine_path(c) && c.starts_with(&format!("{p}/")));
            let has_own_child = kept.iter().any(|(c, _)| c.starts_with(&format!("{p}/")));
            !had_engine_child || has_own_child
        })
        .cloned()
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_to_changes() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        for d in ["etc", "bin", "usr/lib"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/passwd"), "x").unwrap();
        std::fs::write(lower.join("bin/ls"), "x").unwrap();
        std::os::unix::fs::symlink("/", lower.join("abs")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("new/sub")).unwrap();
        std::fs::create_dir_all(upper.join("bin")).unwrap();
        std::fs::write(upper.join("etc/passwd"), "y").unwrap();
        std::fs::write(upper.join("etc/hosts"), "engine").unwrap();
        std::fs::write(upper.join("new/sub/f"), "y").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("bin/ls"),
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let got = changes(&upper, &[lower]).unwrap();
        let text: Vec<String> = got
            .iter()
            .map(|(p, k)| format!("{} {p}", k.letter()))
            .collect();
        assert_eq!(
            text,
            [
                "C /bin",
                "D /bin/ls",
                "C /etc",
                "C /etc/passwd",
                "A /new",
                "A /new/sub",
                "A /new/sub/f"
            ]
        );
    }

    #[test]
    fn engine_only_dirs_hidden() {
        let t = tempfile::tempdir().unwrap();
        let lower = t.path().join("lower");
        let upper = t.path().join("upper");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/resolv.conf"), "x").unwrap();
        assert!(changes(&upper, &[lower]).unwrap().is_empty());
    }
}
