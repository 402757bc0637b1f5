//! Parsing of `-v/--volume`, `--mount`, `--volumes-from` and `--tmpfs` with
//! docker's rules and error texts (moby's `volume/mounts/linux_parser.go`
//! for `-v` and the daemon-side checks, docker/cli's `opts/mount.go` for
//! `--mount`). Pure: nothing here touches the filesystem, so it can be fuzzed.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// What kind of mount a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bind,
    Volume,
    Tmpfs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Volume => "volume",
            Kind::Tmpfs => "tmpfs",
        }
    }
}

/// docker's `bind-recursive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recursive {
    /// rbind; read-only is recursive where the kernel can (mount_setattr).
    #[default]
    Enabled,
    /// A plain bind: submounts are not carried over.
    Disabled,
    /// rbind, read-only only at the top (docker 24's behaviour).
    Writable,
    /// rbind, recursively read-only or fail.
    Readonly,
}

impl Recursive {
    pub fn as_str(self) -> &'static str {
        match self {
            Recursive::Enabled => "enabled",
            Recursive::Disabled => "disabled",
            Recursive::Writable => "writable",
            Recursive::Readonly => "readonly",
        }
    }
}

/// One mount as the user asked for it, before volumes are created.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub kind: Option<Kind>,
    /// Host path (bind), volume name (empty: anonymous), empty for tmpfs.
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// docker's `Mode`: the `-v` mode text as given; empty for `--mount`.
    pub mode: String,
    pub propagation: Option<String>,
    /// `Some(true)`: `nocopy` / `volume-nocopy`.
    pub nocopy: Option<bool>,
    pub recursive: Recursive,
    pub volume_labels: BTreeMap<String, String>,
    pub volume_driver: Option<String>,
    pub volume_opts: BTreeMap<String, String>,
    pub volume_subpath: Option<String>,
    pub tmpfs_size: Option<i64>,
    pub tmpfs_mode: Option<u32>,
    /// From `-v`: a missing bind source is created (docker); `--mount` refuses.
    pub from_v: bool,
    /// `z`/`Z` given (SELinux relabel; a no-op without SELinux).
    pub relabel: Option<String>,
}

impl Request {
    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Volume)
    }
}

const RW_MODES: &[&str] = &["rw", "ro"];
const LABEL_MODES: &[&str] = &["z", "Z"];
const CONSISTENCY_MODES: &[&str] = &["consistent", "cached", "delegated"];
pub const PROPAGATION_MODES: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];
const COPY_MODES: &[&str] = &["nocopy"];

/// moby's `ValidMountMode`: each kind of option at most once, nothing else.
pub fn valid_mount_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0usize; 5];
    for o in mode.split(',') {
        let i = if RW_MODES.contains(&o) {
            0
        } else if LABEL_MODES.contains(&o) {
            1
        } else if PROPAGATION_MODES.contains(&o) {
            2
        } else if COPY_MODES.contains(&o) {
            3
        } else if CONSISTENCY_MODES.contains(&o) {
            4
        } else {
            return false;
        };
        counts[i] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

fn mode_has(mode: &str, set: &[&str]) -> Option<String> {
    mode.split(',')
        .find(|o| set.contains(o))
        .map(str::to_string)
}

/// docker/cli turns `./x` and `.` into absolute paths before sending them.
fn absolutize_dot(p: &str, cwd: &Path) -> String {
    if p == "." || p.starts_with("./") {
        lexical_clean(&cwd.join(p)).display().to_string()
    } else {
        p.to_string()
    }
}

/// Go's `filepath.Clean` for absolute paths: no `.`, `..` resolved lexically.
pub fn lexical_clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
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

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

/// `-v`/`--volume`: `[SRC:]DST[:MODE]`. `cwd` resolves `./x` as docker's
/// client does.
pub fn parse_volume(raw: &str, cwd: &Path) -> Result<Request, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid_spec(raw));
    }
    let mut r = Request {
        from_v: true,
        ..Default::default()
    };
    let mode = match parts.as_slice() {
        [dst] => {
            r.target = dst.to_string();
            String::new()
        }
        [src, dst] => {
            if valid_mount_mode(dst) {
                // `/foo:rw`: a destination with a mode is not a volume.
                return Err(invalid_spec(raw));
            }
            r.source = absolutize_dot(src, cwd);
            r.target = dst.to_string();
            String::new()
        }
        [src, dst, mode] => {
            r.source = absolutize_dot(src, cwd);
            r.target = dst.to_string();
            mode.to_string()
        }
        _ => return Err(invalid_spec(raw)),
    };
    if !valid_mount_mode(&mode) {
        return Err(format!("invalid mode: {mode}"));
    }
    r.kind = Some(if r.source.starts_with('/') {
        Kind::Bind
    } else {
        Kind::Volume
    });
    r.read_only = mode.split(',').any(|o| o == "ro");
    if let Some(c) = mode_has(&mode, COPY_MODES) {
        r.nocopy = Some(c == "nocopy");
    }
    r.propagation = mode_has(&mode, PROPAGATION_MODES);
    r.relabel = mode_has(&mode, LABEL_MODES);
    validate(&r)?;
    r.mode = mode;
    Ok(r)
}

/// Go's `encoding/csv` for one record: fields split on `,`, `"` quoting
/// with `""` as an escaped quote; a bare `"` inside a field is an error.
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some('"') => return Err("bare \" in non-quoted-field".into()),
                    Some(c) => field.push(c),
                }
            }
            out.push(field);
        }
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {v}")),
    }
}

fn set_kv(m: &mut BTreeMap<String, String>, v: &str) {
    match v.split_once('=') {
        Some((k, v)) => m.insert(k.to_string(), v.to_string()),
        None => m.insert(v.to_string(), String::new()),
    };
}

/// `--mount`: docker/cli's parser. The error is the text docker puts after
/// `invalid argument "..." for "--mount" flag: `; the daemon-side checks
/// (`validate`) run too, their errors start with `invalid mount config`.
pub fn parse_mount(raw: &str, cwd: &Path) -> Result<Request, MountFlagError> {
    parse_mount_flag(raw, cwd)
        .map_err(MountFlagError::Flag)
        .and_then(|r| validate(&r).map(|()| r).map_err(MountFlagError::Daemon))
}

/// Which side of docker reports a `--mount` error (the exit code and the
/// prefix differ).
#[derive(Debug, Clone, PartialEq)]
pub enum MountFlagError {
    /// The client's flag parser (`invalid argument ... for "--mount" flag`).
    Flag(String),
    /// The daemon's mount validation (`Error response from daemon: ...`).
    Daemon(String),
}

fn parse_mount_flag(raw: &str, cwd: &Path) -> Result<Request, String> {
    let fields = csv_fields(raw)?;
    let mut r = Request::default();
    let mut kind = String::from("volume");
    let (mut bind_opts, mut vol_opts, mut tmpfs_opts) = (false, false, false);
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => r.read_only = true,
                "volume-nocopy" => {
                    vol_opts = true;
                    r.nocopy = Some(true);
                }
                "bind-nonrecursive" => {
                    bind_opts = true;
                    r.recursive = Recursive::Disabled;
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        match key.as_str() {
            "type" => kind = val.to_ascii_lowercase(),
            "source" | "src" => r.source = absolutize_dot(val, cwd),
            "target" | "dst" | "destination" => r.target = val.to_string(),
            "readonly" | "ro" => r.read_only = parse_bool(&key, val)?,
            "consistency" => {}
            "bind-propagation" => {
                bind_opts = true;
                r.propagation = Some(val.to_ascii_lowercase());
            }
            "bind-nonrecursive" => {
                bind_opts = true;
                if parse_bool(&key, val)? {
                    r.recursive = Recursive::Disabled;
                }
            }
            "bind-recursive" => {
                bind_opts = true;
                r.recursive = match val.to_ascii_lowercase().as_str() {
                    "enabled" => Recursive::Enabled,
                    "disabled" => Recursive::Disabled,
                    "writable" => Recursive::Writable,
                    "readonly" => Recursive::Readonly,
                    _ => return Err(format!("invalid value for {key}: {val} (must \"enabled\", \"disabled\", \"writable\", or \"readonly\")")),
                };
            }
            "bind-create-src" => {
                bind_opts = true;
                r.from_v = parse_bool(&key, val)?;
            }
            "volume-subpath" => {
                vol_opts = true;
                r.volume_subpath = Some(val.to_string());
            }
            "volume-nocopy" => {
                vol_opts = true;
                r.nocopy = Some(
                    parse_bool(&key, val)
                        .map_err(|_| format!("invalid value for volume-nocopy: {val}"))?,
                );
            }
            "volume-label" => {
                vol_opts = true;
                set_kv(&mut r.volume_labels, val);
            }
            "volume-driver" => {
                vol_opts = true;
                r.volume_driver = Some(val.to_string());
            }
            "volume-opt" => {
                vol_opts = true;
                set_kv(&mut r.volume_opts, val);
            }
            "tmpfs-size" => {
                tmpfs_opts = true;
                let n = crate::engine::volume::parse::ram_in_bytes(val)
                    .ok_or_else(|| format!("invalid value for {key}: {val}"))?;
                r.tmpfs_size = Some(n);
            }
            "tmpfs-mode" => {
                tmpfs_opts = true;
                let m = u32::from_str_radix(val, 8)
                    .map_err(|_| format!("invalid value for {key}: {val}"))?;
                r.tmpfs_mode = Some(m);
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if kind.is_empty() {
        return Err("type is required".into());
    }
    if r.target.is_empty() {
        return Err("target is required".into());
    }
    r.kind = match kind.as_str() {
        "bind" => Some(Kind::Bind),
        "volume" => Some(Kind::Volume),
        "tmpfs" => Some(Kind::Tmpfs),
        // The daemon refuses it (validate); keep the kind unknown until then.
        _ => None,
    };
    if vol_opts && kind != "volume" {
        return Err(format!(
            "cannot mix 'volume-*' options with mount type '{kind}'"
        ));
    }
    if bind_opts && kind != "bind" {
        return Err(format!(
            "cannot mix 'bind-*' options with mount type '{kind}'"
        ));
    }
    if tmpfs_opts && kind != "tmpfs" {
        return Err(format!(
            "cannot mix 'tmpfs-*' options with mount type '{kind}'"
        ));
    }
    match r.recursive {
        Recursive::Writable if !r.read_only => {
            return Err("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction".into())
        }
        Recursive::Readonly if !r.read_only => {
            return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into())
        }
        Recursive::Readonly if r.propagation.as_deref() != Some("rprivate") => {
            return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into())
        }
        _ => {}
    }
    if r.kind.is_none() {
        return Err(format!(
            "invalid mount config for type \"{kind}\": mount type unknown"
        ));
    }
    Ok(r)
}

/// docker's `RAMInBytes` (binary suffixes b, k, m, g, t, p).
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|x| x.ends_with(|c: char| c.is_ascii_alphabetic()))
        .unwrap_or(&t);
    let (num, mult): (&str, f64) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1024.0),
        'm' => (&t[..t.len() - 1], 1048576.0),
        'g' => (&t[..t.len() - 1], 1073741824.0),
        't' => (&t[..t.len() - 1], 1099511627776.0),
        'p' => (&t[..t.len() - 1], 1125899906842624.0),
        'b' => (&t[..t.len() - 1], 1.0),
        _ => (t, 1.0),
    };
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 || v * mult > i64::MAX as f64 {
        return None;
    }
    Some((v * mult) as i64)
}

fn mount_config(r: &Request, e: impl std::fmt::Display) -> String {
    format!(
        "invalid mount config for type \"{}\": {e}",
        r.kind().as_str()
    )
}

fn validate_absolute(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{p}' mount path must be absolute"
        ));
    }
    Ok(())
}

/// The daemon's `validateMountConfig` (without the filesystem check for a
/// `--mount` bind source, which `mounts` does).
pub fn validate(r: &Request) -> Result<(), String> {
    if r.target.is_empty() {
        return Err(mount_config(r, "field Target must not be empty"));
    }
    if lexical_clean(Path::new(&r.target)) == Path::new("/") && r.target.starts_with('/') {
        return Err(mount_config(
            r,
            "invalid specification: destination can't be '/'",
        ));
    }
    validate_absolute(&r.target).map_err(|e| mount_config(r, e))?;
    if r.target.contains('\0') || r.source.contains('\0') {
        return Err(mount_config(r, "paths must not contain NUL bytes"));
    }
    match r.kind() {
        Kind::Bind => {
            if r.source.is_empty() {
                return Err(mount_config(r, "field Source must not be empty"));
            }
            if let Some(p) = &r.propagation {
                if !PROPAGATION_MODES.contains(&p.as_str()) {
                    return Err(mount_config(r, format!("invalid propagation mode: {p}")));
                }
            }
            if r.nocopy.is_some() {
                return Err(mount_config(r, "field VolumeOptions must not be specified"));
            }
            validate_absolute(&r.source).map_err(|e| mount_config(r, e))?;
        }
        Kind::Volume => {
            if r.propagation.is_some() || r.recursive != Recursive::Enabled {
                return Err(mount_config(r, "field BindOptions must not be specified"));
            }
            if r.source.is_empty() && r.read_only {
                return Err(mount_config(
                    r,
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            if !r.source.is_empty() && !valid_volume_name(&r.source) {
                return Err(invalid_name_message(&r.source));
            }
            if let Some(d) = &r.volume_driver {
                if d != "local" {
                    return Err(format!(
                        "error looking up volume plugin {d}: plugin \"{d}\" not found"
                    ));
                }
            }
            if r.volume_subpath.is_some() {
                return Err(mount_config(r, "volume-subpath is not supported by berth"));
            }
        }
        Kind::Tmpfs => {
            if !r.source.is_empty() {
                return Err(mount_config(r, "field Source must not be specified"));
            }
        }
    }
    Ok(())
}

/// docker's local driver: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (two characters at
/// least), so a name can never be `.`, `..` or contain `/`.
pub fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub fn invalid_name_message(name: &str) -> String {
    format!("create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")
}

/// `--volumes-from NAME[:ro|rw]`: the container and the forced RW, if any.
pub fn parse_volumes_from(raw: &str) -> Result<(String, Option<bool>), String> {
    let (name, mode) = match raw.split_once(':') {
        Some((n, m)) => (n, Some(m)),
        None => (raw, None),
    };
    if name.is_empty() {
        return Err(format!("invalid volume specification: '{raw}'"));
    }
    match mode {
        None => Ok((name.to_string(), None)),
        Some(m) if valid_mount_mode(m) && !m.is_empty() => {
            Ok((name.to_string(), Some(!m.split(',').any(|o| o == "ro"))))
        }
        Some(m) => Err(format!("invalid mode: {m}")),
    }
}

/// docker's `ConvertTmpfsOptions`: size with the largest exact suffix, mode
/// in octal, `ro`.
pub fn tmpfs_options(size: Option<i64>, mode: Option<u32>, read_only: bool) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(mut s) = size.filter(|s| *s != 0) {
        let mut suffix = "";
        for (suf, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
            if s % div == 0 {
                s /= div;
                suffix = suf;
                break;
            }
        }
        o.push(format!("size={s}{suffix}"));
    }
    if let Some(m) = mode.filter(|m| *m != 0) {
        o.push(format!("mode={m:o}"));
    }
    if read_only {
        o.push("ro".into());
    }
    o
}

/// `--tmpfs PATH[:OPTIONS]`.
pub fn parse_tmpfs(raw: &str) -> Result<(String, String), String> {
    let (d, o) = raw.split_once(':').unwrap_or((raw, ""));
    validate_absolute(d)?;
    if lexical_clean(Path::new(d)) == Path::new("/") {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if o.split(',').any(|x| x.contains('\0')) || d.contains('\0') {
        return Err(format!("invalid tmpfs specification: '{raw}'"));
    }
    Ok((d.to_string(), o.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Result<Request, String> {
        parse_volume(s, Path::new("/work/dir"))
    }
    fn m(s: &str) -> Result<Request, MountFlagError> {
        parse_mount(s, Path::new("/work/dir"))
    }

    #[test]
    fn volume_bind_forms() {
        let r = v("/host:/ctr").unwrap();
        assert_eq!(
            (r.kind(), r.source.as_str(), r.target.as_str(), r.read_only),
            (Kind::Bind, "/host", "/ctr", false)
        );
        let r = v("/host:/ctr:ro").unwrap();
        assert!(r.read_only);
        assert_eq!(r.mode, "ro");
        let r = v("/host:/ctr:rw,Z,rshared").unwrap();
        assert!(!r.read_only);
        assert_eq!(r.propagation.as_deref(), Some("rshared"));
        assert_eq!(r.relabel.as_deref(), Some("Z"));
        let r = v("/host:/ctr:z,slave,ro").unwrap();
        assert_eq!(r.propagation.as_deref(), Some("slave"));
        assert!(r.read_only);
        let r = v("./data:/ctr").unwrap();
        assert_eq!(r.source, "/work/dir/data");
        let r = v(".:/ctr").unwrap();
        assert_eq!(r.source, "/work/dir");
        let r = v("/host:/ctr:cached").unwrap();
        assert_eq!(r.mode, "cached");
    }

    #[test]
    fn volume_named_and_anonymous() {
        let r = v("data:/ctr").unwrap();
        assert_eq!((r.kind(), r.source.as_str()), (Kind::Volume, "data"));
        let r = v("data:/ctr:ro,nocopy").unwrap();
        assert!(r.read_only);
        assert_eq!(r.nocopy, Some(true));
        let r = v("/ctr").unwrap();
        assert_eq!(
            (r.kind(), r.source.as_str(), r.target.as_str()),
            (Kind::Volume, "", "/ctr")
        );
    }

    #[test]
    fn volume_errors() {
        assert_eq!(v("/a:").unwrap_err(), "invalid volume specification: '/a:'");
        assert_eq!(v(":/a").unwrap_err(), "invalid volume specification: ':/a'");
        assert_eq!(
            v("/a:/b:ro:x").unwrap_err(),
            "invalid volume specification: '/a:/b:ro:x'"
        );
        assert_eq!(
            v("/foo:rw").unwrap_err(),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(v("/a:/b:rx").unwrap_err(), "invalid mode: rx");
        assert_eq!(v("/a:/b:ro,rw").unwrap_err(), "invalid mode: ro,rw");
        assert_eq!(
            v("/a:/b:shared,slave").unwrap_err(),
            "invalid mode: shared,slave"
        );
        assert_eq!(v("/a:/").unwrap_err(), "invalid mount config for type \"bind\": invalid specification: destination can't be '/'");
        assert_eq!(v("/a:rel").unwrap_err(), "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute");
        assert_eq!(
            v("vol:/x:shared").unwrap_err(),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert!(v("../x:/y")
            .unwrap_err()
            .contains("includes invalid characters for a local volume name"));
        assert!(v("a/b:/y")
            .unwrap_err()
            .contains("includes invalid characters"));
        assert!(v("x:/y")
            .unwrap_err()
            .contains("includes invalid characters"));
        assert_eq!(v("rel").unwrap_err(), "invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute");
        assert_eq!(v("").unwrap_err(), "invalid volume specification: ''");
    }

    #[test]
    fn mount_forms() {
        let r = m("type=bind,source=/h,target=/c,readonly,bind-propagation=rslave").unwrap();
        assert_eq!(
            (r.kind(), r.source.as_str(), r.target.as_str()),
            (Kind::Bind, "/h", "/c")
        );
        assert!(r.read_only && !r.from_v);
        assert_eq!(r.propagation.as_deref(), Some("rslave"));
        let r = m("type=bind,src=./x,dst=/c,ro=true,bind-recursive=disabled").unwrap();
        assert_eq!(r.source, "/work/dir/x");
        assert_eq!(r.recursive, Recursive::Disabled);
        let r = m(
            "type=bind,src=/x,destination=/c,ro,bind-recursive=readonly,bind-propagation=rprivate",
        )
        .unwrap();
        assert_eq!(r.recursive, Recursive::Readonly);
        let r = m("src=data,dst=/c,volume-nocopy,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b,volume-driver=local").unwrap();
        assert_eq!(r.kind(), Kind::Volume);
        assert_eq!(r.nocopy, Some(true));
        assert_eq!(r.volume_opts.get("type").map(String::as_str), Some("tmpfs"));
        assert_eq!(r.volume_labels.get("a").map(String::as_str), Some("b"));
        let r = m("type=volume,target=/anon").unwrap();
        assert_eq!(r.source, "");
        let r = m("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!((r.tmpfs_size, r.tmpfs_mode), (Some(64 << 20), Some(0o1770)));
        assert_eq!(
            tmpfs_options(r.tmpfs_size, r.tmpfs_mode, false),
            vec!["size=64m", "mode=1770"]
        );
        assert_eq!(
            tmpfs_options(Some(1000), None, true),
            vec!["size=1000", "ro"]
        );
        let r = m("\"type=bind\",\"src=/a,b\",dst=/c").unwrap();
        assert_eq!(r.source, "/a,b");
        let r = m("TYPE=BIND,Source=/h,Target=/c").unwrap();
        assert_eq!(r.kind(), Kind::Bind);
    }

    #[test]
    fn mount_errors() {
        let f = |s: &str| match m(s).unwrap_err() {
            MountFlagError::Flag(e) => e,
            MountFlagError::Daemon(e) => format!("daemon: {e}"),
        };
        assert_eq!(f("type=bind,src=/a"), "target is required");
        assert_eq!(
            f("type=bind,src=/a,dst=/b,foo"),
            "invalid field 'foo' must be a key=value pair"
        );
        assert_eq!(
            f("type=bind,src=/a,dst=/b,foo=1"),
            "unexpected key 'foo' in 'foo=1'"
        );
        assert_eq!(
            f("type=bind,src=/a,dst=/b,ro=maybe"),
            "invalid value for ro: maybe"
        );
        assert_eq!(
            f("type=bind,src=/a,dst=/b,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            f("type=volume,dst=/b,bind-propagation=shared"),
            "cannot mix 'bind-*' options with mount type 'volume'"
        );
        assert_eq!(
            f("type=bind,src=/a,dst=/b,tmpfs-size=1m"),
            "cannot mix 'tmpfs-*' options with mount type 'bind'"
        );
        assert_eq!(
            f("type=tmpfs,dst=/b,tmpfs-size=lots"),
            "invalid value for tmpfs-size: lots"
        );
        assert_eq!(
            f("type=tmpfs,dst=/b,tmpfs-mode=999"),
            "invalid value for tmpfs-mode: 999"
        );
        assert!(f("type=bind,src=/a,dst=/b,bind-recursive=sometimes")
            .starts_with("invalid value for bind-recursive: sometimes"));
        assert_eq!(
            f("type=bind,src=/a,dst=/b,bind-recursive=writable"),
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
        );
        assert_eq!(f("type=bind,src=/a,dst=/b,ro,bind-recursive=readonly"), "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction");
        assert_eq!(
            f("type=nfs,dst=/b"),
            "invalid mount config for type \"nfs\": mount type unknown"
        );
        assert_eq!(
            f("type=bind,src=/a\"b,dst=/c"),
            "bare \" in non-quoted-field"
        );
        assert_eq!(
            f("type=bind,dst=/c"),
            "daemon: invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(f("type=bind,src=rel,dst=/c"), "daemon: invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute");
        assert_eq!(
            f("type=bind,src=/a,dst=/b,bind-propagation=weird"),
            "daemon: invalid mount config for type \"bind\": invalid propagation mode: weird"
        );
        assert_eq!(f("type=volume,dst=/b,ro"), "daemon: invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes");
        assert_eq!(
            f("type=tmpfs,src=x,dst=/b"),
            "daemon: invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            f("type=volume,src=v1,dst=/b,volume-driver=nfsplug"),
            "daemon: error looking up volume plugin nfsplug: plugin \"nfsplug\" not found"
        );
        assert_eq!(f("type=tmpfs,dst=/"), "daemon: invalid mount config for type \"tmpfs\": invalid specification: destination can't be '/'");
    }

    #[test]
    fn names_and_from_and_tmpfs() {
        assert!(valid_volume_name("data"));
        assert!(valid_volume_name("a.b_c-d"));
        for bad in ["", "a", "..", ".x", "-x", "a/b", "../x", "a b", "é1"] {
            assert!(!valid_volume_name(bad), "{bad}");
        }
        assert_eq!(parse_volumes_from("web").unwrap(), ("web".into(), None));
        assert_eq!(
            parse_volumes_from("web:ro").unwrap(),
            ("web".into(), Some(false))
        );
        assert_eq!(
            parse_volumes_from("web:rw").unwrap(),
            ("web".into(), Some(true))
        );
        assert_eq!(
            parse_volumes_from("web:xx").unwrap_err(),
            "invalid mode: xx"
        );
        assert!(parse_volumes_from(":ro").is_err());
        assert_eq!(
            parse_tmpfs("/t:size=1m").unwrap(),
            ("/t".into(), "size=1m".into())
        );
        assert!(parse_tmpfs("t").is_err());
        assert!(parse_tmpfs("/").is_err());
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("-1"), None);
        assert_eq!(
            lexical_clean(Path::new("/a/../../b/./c")),
            PathBuf::from("/b/c")
        );
    }
}
