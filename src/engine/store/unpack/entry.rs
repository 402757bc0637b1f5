//! One tar entry turned into plain data: a normalised path, a kind and the
//! metadata to apply, read from the header and its PAX extensions.

use std::io::Read;

/// What the entry creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    /// Normalised target path inside the layer.
    Hardlink(Vec<u8>),
    Char(u32, u32),
    Block(u32, u32),
    Fifo,
    /// PAX global headers carry nothing a layer needs.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Time {
    pub sec: i64,
    pub nsec: u32,
}

#[derive(Debug)]
pub(crate) struct EntryMeta {
    /// The path as the archive spells it, for error messages.
    pub raw_path: String,
    /// Components joined by '/', no '.', '..' or empty parts; empty = root.
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Time,
    pub atime: Option<Time>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub size: u64,
}

/// Normalises an archive path: leading "/" and "./" go, "." parts go,
/// ".." and NUL are refused. Returns the reason on refusal.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    if raw.contains(&0) {
        return Err("path contains a NUL byte");
    }
    let mut out = Vec::with_capacity(raw.len());
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => return Err("path contains a '..' component"),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(comp);
            }
        }
    }
    Ok(out)
}

/// "1700000000.5" -> (1700000000, 500000000); PAX allows negative times.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<Time> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = int.parse().ok()?;
    let mut nsec: u32 = 0;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nsec = digits.parse().ok()?;
    }
    if neg {
        // -1.5 is 1.5 s before the epoch: sec -2, nsec 0.5e9.
        if nsec == 0 {
            Some(Time { sec: -sec, nsec: 0 })
        } else {
            Some(Time {
                sec: -sec - 1,
                nsec: 1_000_000_000 - nsec,
            })
        }
    } else {
        Some(Time { sec, nsec })
    }
}

fn to_u32(v: u64, what: &str) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
}

/// Reads everything but the content out of an entry.
pub(crate) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<EntryMeta, (String, String)> {
    let raw = entry.path_bytes().into_owned();
    let raw_path = String::from_utf8_lossy(&raw).into_owned();
    let fail = |reason: String| (raw_path.clone(), reason);

    let mut xattrs = Vec::new();
    let mut pax_mtime = None;
    let mut pax_atime = None;
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| fail(format!("bad PAX header: {e}")))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| fail(format!("bad PAX record: {e}")))?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
            } else if key == b"mtime" {
                pax_mtime = parse_pax_time(ext.value_bytes());
            } else if key == b"atime" {
                pax_atime = parse_pax_time(ext.value_bytes());
            }
        }
    }

    let header = entry.header();
    let path = normalize(&raw).map_err(|r| fail(r.to_string()))?;
    let et = header.entry_type();
    let dev = |h: &tar::Header| -> Result<(u32, u32), (String, String)> {
        let maj = h
            .device_major()
            .map_err(|e| fail(format!("bad device major: {e}")))?
            .unwrap_or(0);
        let min = h
            .device_minor()
            .map_err(|e| fail(format!("bad device minor: {e}")))?
            .unwrap_or(0);
        Ok((maj, min))
    };
    let kind = match et {
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            Kind::File
        }
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| fail("symlink without a target".to_string()))?;
            if target.contains(&0) {
                return Err(fail("symlink target contains a NUL byte".to_string()));
            }
            Kind::Symlink(target.into_owned())
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| fail("hardlink without a target".to_string()))?;
            let norm = normalize(&target).map_err(|r| {
                fail(format!(
                    "hardlink target {:?}: {r}",
                    String::from_utf8_lossy(&target)
                ))
            })?;
            if norm.is_empty() {
                return Err(fail("hardlink to the layer root".to_string()));
            }
            Kind::Hardlink(norm)
        }
        tar::EntryType::Char => {
            let (a, b) = dev(header)?;
            Kind::Char(a, b)
        }
        tar::EntryType::Block => {
            let (a, b) = dev(header)?;
            Kind::Block(a, b)
        }
        tar::EntryType::Fifo => Kind::Fifo,
        tar::EntryType::XGlobalHeader => Kind::Skip,
        other => {
            return Err(fail(format!(
                "unsupported tar entry type {:?} (byte {:#04x})",
                other,
                other.as_byte()
            )))
        }
    };
    let mode = header
        .mode()
        .map_err(|e| fail(format!("bad mode field: {e}")))?
        & 0o7777;
    let uid = header
        .uid()
        .map_err(|e| fail(format!("bad uid field: {e}")))
        .and_then(|v| to_u32(v, "uid").map_err(fail))?;
    let gid = header
        .gid()
        .map_err(|e| fail(format!("bad gid field: {e}")))
        .and_then(|v| to_u32(v, "gid").map_err(fail))?;
    let mtime = match pax_mtime {
        Some(t) => t,
        None => {
            let secs = header
                .mtime()
                .map_err(|e| fail(format!("bad mtime field: {e}")))?;
            Time {
                sec: i64::try_from(secs).unwrap_or(i64::MAX),
                nsec: 0,
            }
        }
    };
    Ok(EntryMeta {
        raw_path,
        path,
        kind,
        mode,
        uid,
        gid,
        mtime,
        atime: pax_atime,
        xattrs,
        size: entry.size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        assert_eq!(normalize(b"./a/b/").unwrap(), b"a/b");
        assert_eq!(normalize(b"/abs//x/./y").unwrap(), b"abs/x/y");
        assert_eq!(normalize(b"./").unwrap(), b"");
        assert!(normalize(b"../x").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert!(normalize(b"a\0b").is_err());
        assert_eq!(normalize(b"..a/b..").unwrap(), b"..a/b..");
    }

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000.123456789"),
            Some(Time {
                sec: 1700000000,
                nsec: 123456789
            })
        );
        assert_eq!(
            parse_pax_time(b"12.5"),
            Some(Time {
                sec: 12,
                nsec: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.5"),
            Some(Time {
                sec: -2,
                nsec: 500_000_000
            })
        );
        assert_eq!(parse_pax_time(b"7"), Some(Time { sec: 7, nsec: 0 }));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
