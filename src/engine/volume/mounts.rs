//! A container's mounts: planned from the flags and the image at create
//! (docker's `registerMountPoints` order: `--volumes-from`, then `-v`
//! binds and named volumes, then `--mount`, then anonymous `-v /x` and
//! image `VOLUME`s not already covered), recorded in
//! `containers/<id>/mounts.json`, turned into OCI mounts at every start
//! (bind sources created, local-driver devices mounted, copy-up), released
//! at stop, and their anonymous volumes removed by `rm -v` / `--rm`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::parse::{self, Kind, Recursive, Request};
use super::store::VolumeStore;
use crate::engine::container::ContainerStore;
use crate::engine::paths::Paths;

/// One mount of a container, in docker's `MountPoint` shape plus what
/// berth needs to set it up again at each start.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub ty: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub source: String,
    pub destination: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    #[serde(default)]
    pub propagation: String,
    /// Copy the image's directory into the volume when it is empty.
    #[serde(default)]
    pub copy_up: bool,
    #[serde(default)]
    pub anonymous: bool,
    /// docker's bind-recursive: enabled, disabled, writable, readonly.
    #[serde(default)]
    pub recursive: String,
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
    /// `-v`: a missing host directory is created at start.
    #[serde(default)]
    pub create_source: bool,
}

/// `containers/<id>/mounts.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerMounts {
    /// docker's `HostConfig.Binds` (the `-v` values with a source).
    #[serde(default)]
    pub binds: Vec<String>,
    /// docker's `HostConfig.Mounts` (the `--mount` values).
    #[serde(default)]
    pub mounts: Vec<Value>,
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// docker's `Config.Volumes` (anonymous `-v /x`).
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub mount_points: Vec<MountPoint>,
}

/// The mount flags of `create`/`run`.
pub struct Flags<'a> {
    pub volumes: &'a [String],
    pub mounts: &'a [String],
    pub volumes_from: &'a [String],
    /// `--tmpfs` destinations (kept in HostConfig.Tmpfs), for conflicts.
    pub tmpfs: Vec<String>,
}

/// What `commit` still has to create.
struct Planned {
    mp: MountPoint,
    labels: BTreeMap<String, String>,
    opts: BTreeMap<String, String>,
}

pub struct Plan {
    record: ContainerMounts,
    points: Vec<Planned>,
}

fn file(cs: &ContainerStore, id: &str) -> PathBuf {
    cs.dir(id).join("mounts.json")
}

/// The record (empty for a container without mounts).
pub fn load(cs: &ContainerStore, id: &str) -> Result<ContainerMounts> {
    let p = file(cs, id);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).with_context(|| format!("cannot decode {}", p.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ContainerMounts::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

fn daemon(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("Error response from daemon: {e}")
}

fn clean(p: &str) -> String {
    parse::lexical_clean(Path::new(p)).display().to_string()
}

fn point_of(r: &Request) -> MountPoint {
    let kind = r.kind();
    let mut mp = MountPoint {
        ty: kind.as_str().into(),
        destination: clean(&r.target),
        rw: !r.read_only,
        mode: r.mode.clone(),
        recursive: r.recursive.as_str().into(),
        ..Default::default()
    };
    match kind {
        Kind::Bind => {
            mp.source = clean(&r.source);
            mp.propagation = r.propagation.clone().unwrap_or_else(|| "rprivate".into());
            mp.create_source = r.from_v;
        }
        Kind::Volume => {
            mp.name = r.source.clone();
            mp.driver = "local".into();
            mp.copy_up = r.nocopy != Some(true);
            mp.anonymous = r.source.is_empty();
            // moby's setBindModeIfNull: a named local volume from `-v` shows Mode "z".
            if r.from_v && !r.source.is_empty() && mp.mode.is_empty() {
                mp.mode = "z".into();
            }
        }
        Kind::Tmpfs => {
            mp.tmpfs_options = parse::tmpfs_options(r.tmpfs_size, r.tmpfs_mode, r.read_only);
        }
    }
    mp
}

/// docker's `HostConfig.Mounts` entry for a `--mount` value.
fn api_mount(r: &Request) -> Value {
    let mut m = json!({"Type": r.kind().as_str(), "Target": r.target});
    if !r.source.is_empty() {
        m["Source"] = json!(r.source);
    }
    if r.read_only {
        m["ReadOnly"] = json!(true);
    }
    match r.kind() {
        Kind::Bind if r.propagation.is_some() || r.recursive != Recursive::Enabled => {
            let mut b = json!({});
            if let Some(p) = &r.propagation {
                b["Propagation"] = json!(p);
            }
            match r.recursive {
                Recursive::Disabled => b["NonRecursive"] = json!(true),
                Recursive::Writable => b["ReadOnlyNonRecursive"] = json!(true),
                Recursive::Readonly => b["ReadOnlyForceRecursive"] = json!(true),
                Recursive::Enabled => {}
            }
            m["BindOptions"] = b;
        }
        Kind::Volume
            if r.nocopy.is_some() || !r.volume_labels.is_empty() || !r.volume_opts.is_empty() =>
        {
            let mut v = json!({});
            if r.nocopy == Some(true) {
                v["NoCopy"] = json!(true);
            }
            if !r.volume_labels.is_empty() {
                v["Labels"] = json!(r.volume_labels);
            }
            if !r.volume_opts.is_empty() {
                v["DriverConfig"] = json!({"Name": "local", "Options": r.volume_opts});
            }
            m["VolumeOptions"] = v;
        }
        Kind::Tmpfs if r.tmpfs_size.is_some() || r.tmpfs_mode.is_some() => {
            let mut t = json!({});
            if let Some(s) = r.tmpfs_size {
                t["SizeBytes"] = json!(s);
            }
            if let Some(md) = r.tmpfs_mode {
                t["Mode"] = json!(md);
            }
            m["TmpfsOptions"] = t;
        }
        _ => {}
    }
    m
}

fn image_volumes(image_config: &Value) -> Vec<String> {
    let mut v: Vec<String> = image_config
        .get("config")
        .and_then(|c| c.get("Volumes"))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Parses and checks every mount flag; nothing is created yet. Errors are
/// docker's texts, ready to print.
pub fn plan(cs: &ContainerStore, f: &Flags<'_>, image_config: &Value, cwd: &Path) -> Result<Plan> {
    let mut record = ContainerMounts::default();
    // destination -> planned mount; later sources override earlier ones as in docker.
    let mut points: BTreeMap<String, Planned> = BTreeMap::new();
    for vf in f.volumes_from {
        let (name, rw) = parse::parse_volumes_from(vf).map_err(daemon)?;
        let id = cs
            .resolve(&name)
            .map_err(|_| daemon(format!("No such container: {name}")))?;
        let theirs = load(cs, &id)?;
        for m in theirs.mount_points {
            let mut mp = m.clone();
            mp.rw = m.rw && rw.unwrap_or(true);
            mp.copy_up = false;
            // Their anonymous volumes stay theirs: `rm -v` of this container keeps them.
            mp.anonymous = false;
            mp.create_source = false;
            points.insert(
                mp.destination.clone(),
                Planned {
                    mp,
                    labels: BTreeMap::new(),
                    opts: BTreeMap::new(),
                },
            );
        }
        record.volumes_from.push(vf.clone());
    }
    let mut bound: HashMap<String, ()> = HashMap::new();
    let mut anonymous: Vec<String> = Vec::new();
    for raw in f.volumes {
        let r = parse::parse_volume(raw, cwd).map_err(daemon)?;
        if r.kind() == Kind::Volume && r.source.is_empty() {
            anonymous.push(clean(&r.target));
            record.volumes.push(r.target.clone());
            continue;
        }
        let mp = point_of(&r);
        if bound.insert(mp.destination.clone(), ()).is_some() {
            return Err(daemon(format!("Duplicate mount point: {}", mp.destination)));
        }
        record.binds.push(raw.clone());
        points.insert(
            mp.destination.clone(),
            Planned {
                mp,
                labels: BTreeMap::new(),
                opts: BTreeMap::new(),
            },
        );
    }
    for raw in f.mounts {
        let r = match parse::parse_mount(raw, cwd) {
            Ok(r) => r,
            Err(parse::MountFlagError::Flag(e)) => {
                bail!(
                    "invalid argument \"{raw}\" for \"--mount\" flag: {e}\nSee 'berth run --help'."
                )
            }
            Err(parse::MountFlagError::Daemon(e)) => return Err(daemon(e)),
        };
        if r.kind() == Kind::Bind && std::fs::symlink_metadata(&r.source).is_err() && !r.from_v {
            return Err(daemon(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                r.source
            )));
        }
        let mp = point_of(&r);
        if bound.insert(mp.destination.clone(), ()).is_some() {
            return Err(daemon(format!("Duplicate mount point: {}", r.target)));
        }
        record.mounts.push(api_mount(&r));
        points.insert(
            mp.destination.clone(),
            Planned {
                mp,
                labels: r.volume_labels.clone(),
                opts: r.volume_opts.clone(),
            },
        );
    }
    for t in &f.tmpfs {
        let c = clean(t);
        if bound.contains_key(&c) {
            return Err(daemon(format!("Duplicate mount point: {t}")));
        }
        // --tmpfs wins over an inherited (--volumes-from) mount of the same place.
        points.remove(&c);
    }
    anonymous.extend(image_volumes(image_config).iter().map(|v| clean(v)));
    for dest in anonymous {
        if points.contains_key(&dest) || f.tmpfs.iter().any(|t| clean(t) == dest) {
            continue;
        }
        let r = Request {
            kind: Some(Kind::Volume),
            target: dest.clone(),
            ..Default::default()
        };
        parse::validate(&r).map_err(daemon)?;
        points.insert(
            dest,
            Planned {
                mp: point_of(&r),
                labels: BTreeMap::new(),
                opts: BTreeMap::new(),
            },
        );
    }
    for p in points.values() {
        if p.mp.ty == "volume" && !p.opts.is_empty() {
            super::store::validate_options(&p.opts).map_err(daemon)?;
        }
    }
    Ok(Plan {
        record,
        points: points.into_values().collect(),
    })
}

/// After the container record exists: creates the named (on demand) and
/// anonymous volumes and writes `mounts.json`, holding each volume's lock
/// until the record names it (so `volume rm` sees the use).
pub fn commit(cs: &ContainerStore, id: &str, plan: Plan) -> Result<()> {
    let vs = VolumeStore::new(cs.paths.clone());
    let mut record = plan.record;
    let mut points = plan.points;
    points.sort_by(|a, b| a.mp.name.cmp(&b.mp.name));
    let mut held = Vec::new();
    for p in &mut points {
        if p.mp.ty != "volume" {
            continue;
        }
        let name = (!p.mp.name.is_empty()).then_some(p.mp.name.as_str());
        if held
            .iter()
            .any(|(n, _)| Some(n) == name.map(str::to_string).as_ref())
        {
            p.mp.source = vs.data_dir(&p.mp.name).display().to_string();
            continue;
        }
        let (meta, _, lock) = vs
            .create_held(
                name,
                std::mem::take(&mut p.labels),
                std::mem::take(&mut p.opts),
            )
            .map_err(daemon)?;
        p.mp.name = meta.name.clone();
        p.mp.source = vs.data_dir(&meta.name).display().to_string();
        held.push((meta.name, lock));
    }
    let mut mps: Vec<MountPoint> = points.into_iter().map(|p| p.mp).collect();
    mps.sort_by(|a, b| {
        depth(&a.destination)
            .cmp(&depth(&b.destination))
            .then(a.destination.cmp(&b.destination))
    });
    record.mount_points = mps;
    // No mounts: `load` reads a missing file as this empty record, and a
    // `run` saves a file creation and two fsyncs (1-100+ ms on a busy disk).
    if record == ContainerMounts::default() {
        return Ok(());
    }
    let b = serde_json::to_vec_pretty(&record)?;
    let p = file(cs, id);
    crate::engine::fsutil::atomic_write(&p, &b)
        .with_context(|| format!("cannot write {}", p.display()))?;
    drop(held);
    Ok(())
}

fn depth(p: &str) -> usize {
    Path::new(p).components().count()
}

/// Whether this kernel has mount_setattr(2) (Linux 5.12+), which makes a
/// read-only bind read-only in its submounts too.
pub fn recursive_ro_supported() -> bool {
    runtime::mount_attr::supported()
}

/// At each start, with the rootfs mounted: sets up what the container's
/// mounts need and returns them as OCI mounts (parents before children).
pub fn start(cs: &ContainerStore, id: &str, rootfs: &Path) -> Result<Vec<Value>> {
    let rec = load(cs, id)?;
    let vs = VolumeStore::new(cs.paths.clone());
    let mut out = Vec::new();
    let r = (|| {
        for mp in &rec.mount_points {
            out.push(oci_mount(cs, &vs, id, rootfs, mp)?);
        }
        Ok(())
    })();
    if let Err(e) = r {
        stop(cs, id);
        return Err(e);
    }
    Ok(out)
}

fn ro_options(mp: &MountPoint, opts: &mut Vec<String>) -> Result<()> {
    if mp.rw {
        opts.push("rw".into());
        return Ok(());
    }
    opts.push("ro".into());
    match mp.recursive.as_str() {
        "writable" | "disabled" => {}
        "readonly" => {
            if !recursive_ro_supported() {
                bail!("mount {} on {}: bind-recursive=readonly needs mount_setattr (Linux 5.12 or later)", mp.source, mp.destination);
            }
            opts.push("rro".into());
        }
        _ => {
            if recursive_ro_supported() {
                opts.push("rro".into());
            }
        }
    }
    Ok(())
}

fn oci_mount(
    cs: &ContainerStore,
    vs: &VolumeStore,
    id: &str,
    rootfs: &Path,
    mp: &MountPoint,
) -> Result<Value> {
    match mp.ty.as_str() {
        "bind" => {
            if std::fs::symlink_metadata(&mp.source).is_err() {
                if !mp.create_source {
                    bail!("invalid mount config for type \"bind\": bind source path does not exist: {}", mp.source);
                }
                std::fs::create_dir_all(&mp.source).with_context(|| {
                    format!("error while creating mount source path '{}'", mp.source)
                })?;
            }
            let mut opts = vec![if mp.recursive == "disabled" {
                "bind"
            } else {
                "rbind"
            }
            .to_string()];
            ro_options(mp, &mut opts)?;
            opts.push(effective_propagation(&mp.source, &mp.propagation)?);
            Ok(
                json!({"destination": mp.destination, "type": "bind", "source": mp.source, "options": opts}),
            )
        }
        "volume" => {
            vs.get(&mp.name)
                .map_err(|e| anyhow!("{e}: it was removed while container {id} used it"))?;
            super::localdrv::acquire(vs, cs, &mp.name, id)?;
            let data = vs.data_dir(&mp.name);
            if mp.copy_up {
                // Two containers starting on one new volume copy once.
                let _l = vs.lock(&mp.name).map_err(|e| anyhow!("{e}"))?;
                super::copyup::copy_up(rootfs, &mp.destination, &data, &mp.name)?;
            }
            let mut opts = vec!["rbind".to_string()];
            ro_options(mp, &mut opts)?;
            opts.push("rprivate".into());
            Ok(
                json!({"destination": mp.destination, "type": "bind", "source": data, "options": opts}),
            )
        }
        "tmpfs" => {
            let mut o: Vec<String> = vec![
                "noexec".into(),
                "nosuid".into(),
                "nodev".into(),
                "rprivate".into(),
            ];
            o.extend(mp.tmpfs_options.iter().cloned());
            Ok(
                json!({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs", "options": o}),
            )
        }
        t => bail!(
            "container {id}: mount on {} has unknown type {t:?}",
            mp.destination
        ),
    }
}

/// The host mount holding `path` and whether it is shared / a slave
/// (mountinfo's optional fields `shared:N`, `master:N`).
fn host_propagation(path: &Path) -> (PathBuf, bool, bool) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut best: (PathBuf, bool, bool) = (PathBuf::from("/"), false, false);
    let mut best_len = 0;
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(mp) = f.get(4) else { continue };
        let mp = PathBuf::from(mp.replace("\\040", " "));
        let n = mp.as_os_str().len();
        if path.starts_with(&mp) && n >= best_len {
            let opt = f.iter().skip(6).take_while(|x| **x != "-");
            let (mut shared, mut slave) = (false, false);
            for o in opt {
                shared |= o.starts_with("shared:");
                slave |= o.starts_with("master:");
            }
            best = (mp, shared, slave);
            best_len = n;
        }
    }
    best
}

/// docker's rules: shared propagation needs a shared source mount (else an
/// error); slave propagation on a source that is neither shared nor a slave
/// falls back to private, as docker does for compatibility.
fn effective_propagation(source: &str, want: &str) -> Result<String> {
    let want = if want.is_empty() { "rprivate" } else { want };
    match want {
        "shared" | "rshared" => {
            let (mnt, shared, _) = host_propagation(Path::new(source));
            if !shared {
                bail!(
                    "path {source} is mounted on {} but it is not a shared mount",
                    mnt.display()
                );
            }
            Ok(want.to_string())
        }
        "slave" | "rslave" => {
            let (_, shared, slave) = host_propagation(Path::new(source));
            if shared || slave {
                Ok(want.to_string())
            } else if want == "slave" {
                Ok("private".into())
            } else {
                Ok("rprivate".into())
            }
        }
        w => Ok(w.to_string()),
    }
}

/// Puts the container's mounts into the spec: a user mount replaces a
/// default one at the same place (docker: `-v x:/dev/shm`), and mounts are
/// applied in depth order.
pub fn apply(spec: oci_spec::runtime::Spec, extra: Vec<Value>) -> Result<oci_spec::runtime::Spec> {
    if extra.is_empty() {
        return Ok(spec);
    }
    let mut v = serde_json::to_value(&spec)?;
    let dests: Vec<String> = extra
        .iter()
        .filter_map(|m| m.get("destination").and_then(Value::as_str).map(clean))
        .collect();
    let mut mounts: Vec<Value> = v
        .get("mounts")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.get("destination")
                .and_then(Value::as_str)
                .is_none_or(|d| !dests.contains(&clean(d)))
        })
        .collect();
    // A shared or slave mount only propagates if the container's root is
    // not private (docker raises rootfsPropagation the same way).
    let props: Vec<String> = extra
        .iter()
        .filter_map(|m| m.get("options").and_then(Value::as_array))
        .flatten()
        .filter_map(|o| o.as_str().map(str::to_string))
        .collect();
    let root = v["linux"]["rootfsPropagation"]
        .as_str()
        .unwrap_or("rprivate")
        .to_string();
    if props.iter().any(|p| p == "shared" || p == "rshared") && !root.ends_with("shared") {
        v["linux"]["rootfsPropagation"] = json!("rshared");
    } else if props.iter().any(|p| p == "slave" || p == "rslave") && root.ends_with("private") {
        v["linux"]["rootfsPropagation"] = json!("rslave");
    }
    mounts.extend(extra);
    // Parents before children across berth's own mounts (--tmpfs, /etc
    // files) and the user's, as docker sorts them; stable, so berth's
    // defaults keep their order among equals.
    mounts.sort_by_key(|m| {
        m.get("destination")
            .and_then(Value::as_str)
            .map(|d| depth(&clean(d)))
            .unwrap_or(0)
    });
    v["mounts"] = Value::Array(mounts);
    serde_json::from_value(v).context("the OCI spec with the container's mounts is invalid")
}

/// After the container stopped: local-driver volumes it mounted are released.
pub fn stop(cs: &ContainerStore, id: &str) {
    let Ok(rec) = load(cs, id) else { return };
    let vs = VolumeStore::new(cs.paths.clone());
    for mp in rec.mount_points.iter().filter(|m| m.ty == "volume") {
        super::localdrv::release(&vs, cs, &mp.name, id);
    }
}

/// Containers (IDs) whose mounts name volume `name`.
pub fn users(cs: &ContainerStore, name: &str) -> Vec<String> {
    usage(cs).remove(name).unwrap_or_default()
}

/// Volume name -> the containers using it.
pub fn usage(cs: &ContainerStore) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    let Ok(rd) = std::fs::read_dir(cs.containers_dir()) else {
        return m;
    };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let Ok(rec) = load(cs, &id) else { continue };
        for mp in rec.mount_points.iter().filter(|p| p.ty == "volume") {
            let v = m.entry(mp.name.clone()).or_default();
            if !v.contains(&id) {
                v.push(id.clone());
            }
        }
    }
    m
}

/// `rm -v` / `--rm`: after the container is gone, its anonymous volumes
/// that no other container uses. Named volumes stay, as in docker.
pub fn remove_anonymous(paths: &Paths, rec: &ContainerMounts) -> Result<()> {
    let cs = ContainerStore::new(paths.clone());
    let vs = VolumeStore::new(paths.clone());
    for mp in rec
        .mount_points
        .iter()
        .filter(|m| m.ty == "volume" && m.anonymous)
    {
        match vs.remove(&mp.name, |n| users(&cs, n)) {
            Ok(())
            | Err(super::store::VolumeError::NotFound(_))
            | Err(super::store::VolumeError::InUse { .. }) => {}
            Err(e) => return Err(anyhow!("{e}")),
        }
    }
    Ok(())
}

/// `Mounts`, `HostConfig.Binds`, `HostConfig.Mounts`, `HostConfig.VolumesFrom`
/// and `Config.Volumes` of `inspect`.
pub fn inspect(cs: &ContainerStore, id: &str) -> (Value, Value, Value, Value, Value) {
    let rec = load(cs, id).unwrap_or_default();
    let mounts: Vec<Value> = rec
        .mount_points
        .iter()
        .map(|m| {
            let mut v = json!({"Type": m.ty});
            if !m.name.is_empty() {
                v["Name"] = json!(m.name);
            }
            v["Source"] = json!(m.source);
            v["Destination"] = json!(m.destination);
            if !m.driver.is_empty() {
                v["Driver"] = json!(m.driver);
            }
            v["Mode"] = json!(m.mode);
            v["RW"] = json!(m.rw);
            v["Propagation"] = json!(m.propagation);
            v
        })
        .collect();
    let opt = |v: Value, empty: bool| if empty { Value::Null } else { v };
    let vols: serde_json::Map<String, Value> =
        rec.volumes.iter().map(|v| (v.clone(), json!({}))).collect();
    (
        Value::Array(mounts),
        opt(json!(rec.binds), rec.binds.is_empty()),
        opt(json!(rec.mounts), rec.mounts.is_empty()),
        opt(json!(rec.volumes_from), rec.volumes_from.is_empty()),
        opt(Value::Object(vols), rec.volumes.is_empty()),
    )
}
