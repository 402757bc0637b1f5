//! docker's `local` driver with options (`-o type= -o device= -o o=`): the
//! device is mounted on the volume's `_data` when the first container using
//! it starts and unmounted when the last one stops. Without a daemon the
//! reference count is a file, `<run>/volumes/<name>.users` (container IDs),
//! changed under the volume's lock; IDs whose monitor is gone are dropped,
//! so a killed container does not pin the mount forever.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

use super::store::VolumeStore;
use crate::engine::container::{liveness, ContainerStore};

fn users_file(vs: &VolumeStore, name: &str) -> PathBuf {
    vs.paths.run.join("volumes").join(format!("{name}.users"))
}

fn read_users(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn write_users(p: &Path, ids: &[String]) -> Result<()> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut s = ids.join("\n");
    s.push('\n');
    crate::engine::fsutil::atomic_write(p, s.as_bytes())
        .with_context(|| format!("cannot write {}", p.display()))
}

/// Mount points (unescaped) from /proc/self/mountinfo.
fn mount_points() -> Vec<PathBuf> {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    s.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn is_mounted_under(dir: &Path) -> bool {
    mount_points().iter().any(|m| m.starts_with(dir))
}

fn is_mount_point(p: &Path) -> bool {
    mount_points().iter().any(|m| m == p)
}

/// mount(2) flags and data from the `o=` option, as moby's `mount.Mount`.
fn parse_o(o: &str) -> (libc::c_ulong, Vec<String>) {
    let mut flags = 0;
    let mut data = Vec::new();
    for opt in o.split(',').filter(|x| !x.is_empty()) {
        match opt {
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => flags &= !libc::MS_RDONLY,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            "noatime" => flags |= libc::MS_NOATIME,
            "sync" => flags |= libc::MS_SYNCHRONOUS,
            "defaults" | "suid" | "dev" | "exec" | "async" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data)
}

fn cstr(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{what} contains a NUL byte"))
}

fn sys_mount(
    src: &str,
    target: &Path,
    ty: &str,
    flags: libc::c_ulong,
    data: &str,
) -> std::io::Result<()> {
    let inval = |_| std::io::Error::from_raw_os_error(libc::EINVAL);
    let s = CString::new(src).map_err(inval)?;
    let t = CString::new(target.as_os_str().as_encoded_bytes()).map_err(inval)?;
    let ty = CString::new(ty).map_err(inval)?;
    let d = CString::new(data).map_err(inval)?;
    let tp = if ty.is_empty() {
        std::ptr::null()
    } else {
        ty.as_ptr()
    };
    let dp = if data.is_empty() {
        std::ptr::null()
    } else {
        d.as_ptr()
    };
    // SAFETY: valid NUL-terminated strings or null.
    let rc = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), tp, flags, dp.cast()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn mount_device(target: &Path, opts: &BTreeMap<String, String>) -> Result<()> {
    let ty = opts.get("type").map(String::as_str).unwrap_or("");
    let dev = opts.get("device").map(String::as_str).unwrap_or("");
    let (flags, data) = parse_o(opts.get("o").map(String::as_str).unwrap_or(""));
    cstr(dev, "device")?;
    let data = data.join(",");
    let err = |e: std::io::Error| {
        anyhow!(
            "error while mounting volume '{}': failed to mount local volume: mount {dev}:{} (type {ty}): {e}",
            target.display(),
            target.display()
        )
    };
    if flags & libc::MS_BIND != 0 {
        sys_mount(dev, target, "", flags & (libc::MS_BIND | libc::MS_REC), "").map_err(err)?;
        let extra = flags & !(libc::MS_BIND | libc::MS_REC);
        if extra != 0 {
            sys_mount("", target, "", libc::MS_REMOUNT | libc::MS_BIND | extra, "").map_err(
                |e| {
                    umount(target);
                    err(e)
                },
            )?;
        }
        return Ok(());
    }
    sys_mount(dev, target, ty, flags, &data).map_err(err)
}

fn umount(p: &Path) {
    if let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) {
        // SAFETY: a valid path string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn alive(cs: &ContainerStore, ids: Vec<String>, except: &str) -> Vec<String> {
    ids.into_iter()
        .filter(|i| i != except && liveness::monitor_alive(cs, i))
        .collect()
}

/// Before container `id` starts: mount the volume's device unless another
/// running container already did.
pub fn acquire(vs: &VolumeStore, cs: &ContainerStore, name: &str, id: &str) -> Result<()> {
    let meta = vs.get(name).map_err(|e| anyhow!("{e}"))?;
    if meta.options.is_empty() {
        return Ok(());
    }
    let _lock = vs.lock(name).map_err(|e| anyhow!("{e}"))?;
    let uf = users_file(vs, name);
    let mut users = alive(cs, read_users(&uf), id);
    let data = vs.data_dir(name);
    if users.is_empty() {
        // Nobody alive uses it: a mount still there was left by a killed
        // container; start from a fresh one.
        while is_mount_point(&data) {
            umount(&data);
        }
        mount_device(&data, &meta.options)?;
    }
    users.push(id.to_string());
    write_users(&uf, &users)
}

/// After container `id` stopped: unmount when nobody else uses it.
pub fn release(vs: &VolumeStore, cs: &ContainerStore, name: &str, id: &str) {
    let Ok(meta) = vs.get(name) else { return };
    if meta.options.is_empty() {
        return;
    }
    let Ok(_lock) = vs.lock(name) else { return };
    let uf = users_file(vs, name);
    let before = read_users(&uf);
    if !before.iter().any(|u| u == id) {
        return;
    }
    let users = alive(cs, before, id);
    if users.is_empty() {
        let data = vs.data_dir(name);
        while is_mount_point(&data) {
            umount(&data);
        }
        let _ = std::fs::remove_file(&uf);
    } else {
        let _ = write_users(&uf, &users);
    }
}

/// For `volume rm`: whatever is mounted on the volume's `_data` (the caller
/// holds the lock and checked that no container uses it).
pub fn unmount_all(vs: &VolumeStore, name: &str) {
    let data = vs.data_dir(name);
    for _ in 0..16 {
        if !is_mount_point(&data) {
            break;
        }
        umount(&data);
    }
    let _ = std::fs::remove_file(users_file(vs, name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o_option_and_escapes() {
        let (f, d) = parse_o("size=1m,uid=1000,ro");
        assert_eq!(f, libc::MS_RDONLY);
        assert_eq!(d, vec!["size=1m", "uid=1000"]);
        let (f, _) = parse_o("bind");
        assert_eq!(f, libc::MS_BIND);
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
