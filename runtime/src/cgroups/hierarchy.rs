//! Finding the cgroup filesystems and computing a container's directories.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::fsutil;
use super::{CgroupError, CgroupRecord};

/// v1 controllers berth places containers in.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "blkio",
    "pids",
    "hugetlb",
    "net_cls",
    "net_prio",
    "perf_event",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// controller -> (mountpoint, root of the mount inside the hierarchy)
    V1(BTreeMap<String, (PathBuf, String)>),
    /// Mountpoint of the unified hierarchy.
    V2(PathBuf),
}

impl Hierarchy {
    /// Read /proc/self/mountinfo. A host with v1 controllers mounted is
    /// treated as v1 even when a cgroup2 mount exists beside them (hybrid).
    pub fn detect() -> Result<Self, CgroupError> {
        let mi =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|err| CgroupError::Io {
                what: "read",
                path: "/proc/self/mountinfo".into(),
                err,
            })?;
        Self::from_mountinfo(&mi)
    }

    pub fn from_mountinfo(mi: &str) -> Result<Self, CgroupError> {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for line in mi.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let (root, mnt) = (pre[3], pre[4]);
            match post[0] {
                "cgroup" => {
                    for opt in post[2].split(',') {
                        if V1_CONTROLLERS.contains(&opt) {
                            v1.entry(opt.to_string())
                                .or_insert_with(|| (PathBuf::from(mnt), root.to_string()));
                        }
                    }
                }
                "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(mnt)),
                _ => {}
            }
        }
        if !v1.is_empty() {
            Ok(Hierarchy::V1(v1))
        } else if let Some(m) = v2 {
            Ok(Hierarchy::V2(m))
        } else {
            Err(CgroupError::NoCgroupFs)
        }
    }

    /// Directories for a container. `self_cgroup` is the text of
    /// /proc/self/cgroup: relative `cgroups_path`s nest under the caller's
    /// own cgroup on v1 and under its parent on v2, as runc does; absolute
    /// ones are taken as given.
    pub fn resolve(
        &self,
        cgroups_path: &str,
        self_cgroup: &str,
    ) -> Result<CgroupRecord, CgroupError> {
        if Path::new(cgroups_path)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return Err(CgroupError::BadPath(cgroups_path.into()));
        }
        let absolute = cgroups_path.starts_with('/');
        let rel = cgroups_path.trim_start_matches('/');
        let own = parse_self_cgroup(self_cgroup);
        let mut dirs = BTreeMap::new();
        match self {
            Hierarchy::V1(ctrls) => {
                for (c, (mnt, mroot)) in ctrls {
                    let base = if absolute {
                        mnt.clone()
                    } else {
                        let mine = own.get(c.as_str()).map(String::as_str).unwrap_or("/");
                        let inside = mine.strip_prefix(mroot.as_str()).unwrap_or(mine);
                        mnt.join(inside.trim_start_matches('/'))
                    };
                    dirs.insert(c.clone(), base.join(rel));
                }
                Ok(CgroupRecord {
                    version: 1,
                    dirs,
                    created: vec![],
                })
            }
            Hierarchy::V2(mnt) => {
                let base = if absolute {
                    mnt.clone()
                } else {
                    // The caller's own cgroup holds the caller, so v2's
                    // no-internal-process rule forbids enabling controllers
                    // in it (outside the root): nest under its parent, as
                    // runc's fs2 driver does for relative paths.
                    let mine = own.get("").map(String::as_str).unwrap_or("/");
                    let parent = Path::new(mine).parent().unwrap_or(Path::new("/"));
                    mnt.join(parent.strip_prefix("/").unwrap_or(parent))
                };
                dirs.insert(String::new(), base.join(rel));
                Ok(CgroupRecord {
                    version: 2,
                    dirs,
                    created: vec![],
                })
            }
        }
    }

    /// Make the directories (recording which ones are new) and prepare them
    /// so a process may join: v1 cpuset needs cpus/mems copied from the
    /// parent; v2 needs the controllers enabled in every ancestor.
    ///
    /// `persist` stores the record before the first directory exists, with
    /// every directory about to be made, and again without any that another
    /// process made meanwhile (not ours to remove). Were the record written
    /// after the `mkdir`s, a caller killed in between (kill -9 of a monitor)
    /// would leave directories that no record names and no delete removes.
    pub fn create<E: From<CgroupError>>(
        &self,
        rec: &mut CgroupRecord,
        mut persist: impl FnMut(&CgroupRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        for dir in rec.unique_dirs() {
            let mut missing = vec![];
            let mut p = dir.as_path();
            while !p.exists() {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(pp) => p = pp,
                    None => break,
                }
            }
            for m in missing.into_iter().rev() {
                if !rec.created.contains(&m) {
                    rec.created.push(m);
                }
            }
        }
        persist(rec)?;
        let mut made = Vec::with_capacity(rec.created.len());
        let mut failed = None;
        for m in &rec.created {
            match std::fs::create_dir(m) {
                Ok(()) => made.push(m.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    failed = Some(CgroupError::Io {
                        what: "create",
                        path: m.clone(),
                        err,
                    });
                    break;
                }
            }
        }
        if made.len() != rec.created.len() {
            rec.created = made;
            match failed {
                // The caller's cleanup removes what `made` names.
                Some(e) => return Err(e.into()),
                None => persist(rec)?,
            }
        }
        match self {
            Hierarchy::V1(_) => {
                if let Some(cs) = rec.dirs.get("cpuset").cloned() {
                    for d in rec.created.iter().filter(|d| cs.starts_with(d)) {
                        for f in ["cpuset.cpus", "cpuset.mems"] {
                            let cur = fsutil::read(d, f).unwrap_or_default();
                            if cur.trim().is_empty() {
                                if let Some(parent) = d.parent() {
                                    let v = fsutil::read(parent, f).unwrap_or_default();
                                    fsutil::write(d, f, v.trim())?;
                                }
                            }
                        }
                    }
                }
            }
            Hierarchy::V2(mnt) => {
                if let Some(d) = rec.dirs.get("").cloned() {
                    enable_v2_controllers(mnt, &d);
                }
            }
        }
        Ok(())
    }
}

/// Enable every available controller from the hierarchy root down to the
/// parent of `dir`. A cgroup that has processes of its own refuses
/// (no-internal-process rule); that is logged, and writes that need the
/// controller fail later with a precise error.
fn enable_v2_controllers(mnt: &Path, dir: &Path) {
    let Ok(rel) = dir.strip_prefix(mnt) else {
        return;
    };
    let mut cur = mnt.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let avail = fsutil::read(&cur, "cgroup.controllers").unwrap_or_default();
        let enabled = fsutil::read(&cur, "cgroup.subtree_control").unwrap_or_default();
        let want: Vec<String> = avail
            .split_whitespace()
            .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !want.is_empty() {
            if let Err(e) = fsutil::write(&cur, "cgroup.subtree_control", &want.join(" ")) {
                tracing::warn!("{e}");
            }
        }
        if i + 1 < comps.len() {
            cur.push(c);
        }
    }
}

/// controller -> path, from /proc/self/cgroup ("" is the v2 entry).
fn parse_self_cgroup(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            m.insert(String::new(), path.to_string());
        }
        for c in ctrls.split(',') {
            if !c.is_empty() {
                m.insert(c.to_string(), path.to_string());
            }
        }
    }
    m
}
