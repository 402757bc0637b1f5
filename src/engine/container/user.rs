//! `-u` resolution against the image's own `/etc/passwd` and `/etc/group`,
//! read inside the mounted rootfs with `RESOLVE_IN_ROOT`, so a symlinked
//! `/etc` in the image cannot make berth read a host file.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Result};
use rustix::fs::{Mode, OFlags, ResolveFlags};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// $HOME from passwd ("/" when unknown), docker sets HOME from it.
    pub home: String,
}

/// Reads a small file below `root` without leaving it; missing = empty.
pub fn read_in_root(root: &Path, rel: &str) -> String {
    let Ok(dir) = rustix::fs::open(root, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()) else {
        return String::new();
    };
    let Ok(fd) = crate::engine::fsutil::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
    s
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// (name, gid, members)
fn groups(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Docker's rules (moby/sys/user GetExecUser): `user[:group]`, each a name
/// or a number; a numeric uid not in passwd is used as is with gid 0.
pub fn resolve(spec: &str, group_add: &[String], root: &Path) -> Result<Resolved> {
    let pw = passwd(&read_in_root(root, "/etc/passwd"));
    let gr = groups(&read_in_root(root, "/etc/group"));
    let spec = if spec.is_empty() { "0" } else { spec };
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = match u.parse::<u32>() {
        Ok(n) => pw.iter().find(|p| p.uid == n),
        Err(_) => Some(pw.iter().find(|p| p.name == u).ok_or_else(|| {
            anyhow!("unable to find user {u}: no matching entries in passwd file")
        })?),
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry.map(|p| p.uid).unwrap_or(0),
    };
    let name = entry.map(|p| p.name.clone());
    let home = entry.map(|p| p.home.clone()).unwrap_or_else(|| "/".into());
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr.iter().find(|x| x.0 == g).map(|x| x.1).ok_or_else(|| {
                anyhow!("unable to find group {g}: no matching entries in group file")
            })?,
        },
        None => entry.map(|p| p.gid).unwrap_or(0),
    };
    let mut additional = Vec::new();
    if g.is_none() {
        if let Some(n) = &name {
            for (_, gid2, members) in &gr {
                if members.iter().any(|m| m == n) && !additional.contains(gid2) {
                    additional.push(*gid2);
                }
            }
        }
    }
    for a in group_add {
        let gid2 = match a.parse::<u32>() {
            Ok(n) => n,
            Err(_) => gr.iter().find(|x| &x.0 == a).map(|x| x.1).ok_or_else(|| {
                anyhow!("unable to find group {a}: no matching entries in group file")
            })?,
        };
        if !additional.contains(&gid2) {
            additional.push(gid2);
        }
    }
    Ok(Resolved {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_numbers_and_groups() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1001:b:/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nbob:x:1001:\nwheel:x:10:bob\n",
        )
        .unwrap();
        let r = resolve("bob", &[], d.path()).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1001, vec![10])
        );
        assert_eq!(r.home, "/home/bob");
        let r = resolve("4242:wheel", &[], d.path()).unwrap();
        assert_eq!((r.uid, r.gid), (4242, 10));
        assert!(resolve("nobody", &[], d.path()).is_err());
    }

    #[test]
    fn symlinked_etc_stays_inside_root() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("etc")).unwrap();
        // /etc -> /etc resolves to the root's own (missing) etc, not the host's.
        assert_eq!(read_in_root(d.path(), "/etc/passwd"), "");
    }
}
