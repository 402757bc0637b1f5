//! config.json -> `Plan`: everything is checked and computed here, in the
//! runtime, so that errors are precise and the child does only syscalls.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Process, Spec};

use crate::cgroups::CgroupRecord;
use crate::process::plan::Plan;
use crate::process::rootfs::{parse_options, DevicePlan, MountPlan, RootfsPlan};
use crate::Error;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, Error> {
    CString::new(s.as_ref()).map_err(|_| Error::Config(format!("{what} contains a NUL byte")))
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    t as libc::c_int
}

pub fn ns_proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Options of the process that are common to init and exec.
pub struct ProcessInputs<'a> {
    pub process: &'a Process,
    pub spec: &'a Spec,
    pub console: Option<OwnedFd>,
    pub stdio: Option<[i32; 3]>,
    pub preserve_fds: u32,
    pub hook_state: String,
}

fn fill_process(plan: &mut Plan, inp: ProcessInputs<'_>) -> Result<(), Error> {
    let p = inp.process;
    if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::Config(
            "process.apparmorProfile is set but AppArmor is not supported by berth on this host; remove it".into(),
        ));
    }
    if p.selinux_label().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::Config(
            "process.selinuxLabel is set but SELinux is not supported by berth on this host; remove it".into(),
        ));
    }
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(Error::Config("process.args must not be empty".into()));
    }
    plan.args = args
        .iter()
        .map(|a| cstring(a, "process.args"))
        .collect::<Result<_, _>>()?;
    let env = p.env().clone().unwrap_or_default();
    plan.path_env = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_string();
    plan.env = env
        .iter()
        .map(|e| cstring(e, "process.env"))
        .collect::<Result<_, _>>()?;
    plan.cwd = cstring(p.cwd().as_os_str().as_encoded_bytes(), "process.cwd")?;
    if !p.cwd().is_absolute() {
        return Err(Error::Config(format!(
            "process.cwd {:?} must be an absolute path",
            p.cwd()
        )));
    }
    plan.uid = p.user().uid();
    plan.gid = p.user().gid();
    plan.additional_gids = p.user().additional_gids().clone().unwrap_or_default();
    plan.umask = p.user().umask();
    plan.terminal = p.terminal().unwrap_or(false);
    plan.setsid = plan.terminal;
    plan.rlimits = crate::rlimit::plan(p.rlimits().as_deref().unwrap_or(&[]))?;
    plan.oom_score_adj = p.oom_score_adj();
    plan.caps = match p.capabilities() {
        Some(c) => Some(crate::caps::CapMasks::from_spec(Some(c))?),
        None => None,
    };
    plan.no_new_privileges = p.no_new_privileges().unwrap_or(false);
    if let Some(s) = inp.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        plan.seccomp = Some(crate::seccomp::compile(s)?);
    }
    if plan.terminal && inp.console.is_none() {
        return Err(Error::Config(
            "process.terminal is true: give a console socket (--console-socket) to receive the pty"
                .into(),
        ));
    }
    plan.console = inp.console;
    plan.stdio = inp.stdio;
    plan.preserve_fds = inp.preserve_fds;
    plan.hook_state = inp.hook_state;
    Ok(())
}

fn empty_plan() -> Plan {
    Plan {
        cgroup_procs: vec![],
        join: vec![],
        new_user: false,
        unshare: 0,
        pid_ns: false,
        uid_maps: vec![],
        gid_maps: vec![],
        rootfs: None,
        runtime_hooks: false,
        create_container_hooks: vec![],
        start_container_hooks: vec![],
        hostname: None,
        domainname: None,
        rlimits: vec![],
        oom_score_adj: None,
        caps: None,
        no_new_privileges: false,
        seccomp: None,
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        umask: None,
        args: vec![],
        env: vec![],
        path_env: String::new(),
        cwd: CString::default(),
        terminal: false,
        console: None,
        stdio: None,
        fifo: None,
        preserve_fds: 0,
        hook_state: String::new(),
        setsid: false,
    }
}

fn open_ns(path: &Path) -> Result<OwnedFd, Error> {
    File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::Config(format!("open namespace {}: {e}", path.display())))
}

pub struct CreateInputs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub cgroup: &'a CgroupRecord,
    pub fifo: OwnedFd,
    pub no_pivot: bool,
}

/// Fields berth does not implement are refused, never silently ignored.
fn reject_unsupported(linux: &oci_spec::runtime::Linux, p: Option<&Process>) -> Result<(), Error> {
    let mut bad = vec![];
    if linux.intel_rdt().is_some() {
        bad.push("linux.intelRdt");
    }
    if linux.memory_policy().is_some() {
        bad.push("linux.memoryPolicy");
    }
    if linux.personality().is_some() {
        bad.push("linux.personality");
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        bad.push("linux.timeOffsets");
    }
    if linux.net_devices().as_ref().is_some_and(|t| !t.is_empty()) {
        bad.push("linux.netDevices");
    }
    if let Some(p) = p {
        if p.io_priority().is_some() {
            bad.push("process.ioPriority");
        }
        if p.scheduler().is_some() {
            bad.push("process.scheduler");
        }
        if p.exec_cpu_affinity().is_some() {
            bad.push("process.execCPUAffinity");
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let what = if bad.len() == 1 { "it" } else { "them" };
    Err(Error::Config(format!(
        "{} not supported by berth's runtime; remove {what}",
        bad.join(", ")
    )))
}

/// Plan for a container's init.
pub fn create_plan(c: CreateInputs<'_>, p: ProcessInputs<'_>) -> Result<Plan, Error> {
    let spec = c.spec;
    let mut plan = empty_plan();
    let linux = spec.linux().clone().unwrap_or_default();
    if linux.mount_label().as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::Config(
            "linux.mountLabel is set but SELinux is not supported by berth on this host; remove it"
                .into(),
        ));
    }
    reject_unsupported(&linux, spec.process().as_ref())?;
    let mut joins = vec![];
    let mut has_mnt = false;
    let mut has_uts = false;
    let mut join_user = false;
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        has_mnt |= t == LinuxNamespaceType::Mount;
        has_uts |= t == LinuxNamespaceType::Uts;
        if t == LinuxNamespaceType::Pid {
            plan.pid_ns = true;
        }
        match ns.path() {
            Some(path) if !path.as_os_str().is_empty() => {
                join_user |= t == LinuxNamespaceType::User;
                joins.push((ns_flag(t), open_ns(path)?));
            }
            _ if t == LinuxNamespaceType::User => plan.new_user = true,
            _ => plan.unshare |= ns_flag(t),
        }
    }
    joins.sort_by_key(|(f, _)| *f != libc::CLONE_NEWUSER);
    plan.join = joins;
    // The rootfs is set up (and pivoted to) inside the container's mount
    // namespace: a new one, or the one at `path` (as runc, this then also
    // moves the root of that namespace's other processes). Never the
    // runtime's own, whose root would be the one pivoted.
    if !has_mnt {
        return Err(Error::Config(
            "linux.namespaces must contain a mount namespace (new, or joined by path)".into(),
        ));
    }
    plan.uid_maps = linux.uid_mappings().clone().unwrap_or_default();
    plan.gid_maps = linux.gid_mappings().clone().unwrap_or_default();
    if plan.new_user && plan.uid_maps.is_empty() {
        return Err(Error::Config(
            "a new user namespace needs linux.uidMappings and gidMappings".into(),
        ));
    }
    if let Some(h) = spec.hostname() {
        if !has_uts {
            return Err(Error::Config(
                "hostname is set but there is no uts namespace".into(),
            ));
        }
        plan.hostname = Some(cstring(h, "hostname")?);
    }
    if let Some(d) = spec.domainname() {
        plan.domainname = Some(cstring(d, "domainname")?);
    }
    plan.cgroup_procs = c.cgroup.procs_files();
    let hooks = spec.hooks().clone().unwrap_or_default();
    plan.runtime_hooks = hooks.prestart().as_ref().is_some_and(|v| !v.is_empty())
        || hooks
            .create_runtime()
            .as_ref()
            .is_some_and(|v| !v.is_empty());
    plan.create_container_hooks = hooks.create_container().clone().unwrap_or_default();
    plan.start_container_hooks = hooks.start_container().clone().unwrap_or_default();
    plan.fifo = Some(c.fifo);

    let in_userns = plan.new_user || join_user;
    let mut mounts = vec![];
    for m in spec.mounts().iter().flatten() {
        let (flags, propagation, bind, data) = parse_options(m.options().as_deref().unwrap_or(&[]));
        let ty = m.typ().clone().unwrap_or_default();
        let bind = bind || ty == "bind";
        let source = m.source().as_ref().map(|s| {
            if bind && s.is_relative() {
                c.bundle.join(s)
            } else {
                s.clone()
            }
        });
        let source_is_file = bind
            && source
                .as_ref()
                .is_some_and(|s| s.metadata().is_ok_and(|m| !m.is_dir()));
        let data: Vec<String> = data
            .into_iter()
            .filter(|d| !matches!(d.as_str(), "tmpcopyup" | "idmap" | "ridmap"))
            .collect();
        mounts.push(MountPlan {
            destination: m.destination().clone(),
            source: source
                .map(|s| cstring(s.as_os_str().as_encoded_bytes(), "mount source"))
                .transpose()?,
            fstype: if ty.is_empty() || ty == "bind" {
                None
            } else {
                Some(cstring(&ty, "mount type")?)
            },
            flags: if bind { flags | libc::MS_BIND } else { flags },
            propagation,
            data: if data.is_empty() {
                None
            } else {
                Some(cstring(data.join(","), "mount options")?)
            },
            bind,
            source_is_file,
        });
    }
    let mut devices = vec![];
    for d in linux.devices().iter().flatten() {
        let ty = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::Config(format!(
                    "device {}: type 'a' is not a device",
                    d.path().display()
                )))
            }
        };
        devices.push(DevicePlan {
            path: d.path().clone(),
            mode: ty | d.file_mode().unwrap_or(0o666),
            major: d.major() as u64,
            minor: d.minor() as u64,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let prop = match linux.rootfs_propagation().as_deref() {
        Some("private") | Some("rprivate") => libc::MS_PRIVATE,
        Some("shared") | Some("rshared") => libc::MS_PRIVATE,
        Some("slave") | Some("rslave") | None | Some("") => libc::MS_SLAVE,
        Some("unbindable") | Some("runbindable") => libc::MS_SLAVE,
        Some(o) => return Err(Error::Config(format!("linux.rootfsPropagation {o:?} is not one of private, rprivate, slave, rslave, shared, rshared, unbindable, runbindable"))),
    };
    // Paths inside the container: a relative one has no meaning there (it
    // would land wherever init's cwd is), so it is an error, not a guess.
    let path_list = |v: &Option<Vec<String>>, field: &str| -> Result<Vec<CString>, Error> {
        v.iter()
            .flatten()
            .map(|s| {
                if !s.starts_with('/') {
                    return Err(Error::Config(format!(
                        "linux.{field} entry {s:?} must be an absolute path inside the container"
                    )));
                }
                cstring(s, field)
            })
            .collect()
    };
    let mut sysctls = vec![];
    for (k, v) in linux.sysctl().iter().flatten() {
        if k.contains("..") || k.contains('/') {
            return Err(Error::Config(format!("sysctl {k:?} is not a valid key")));
        }
        crate::sysctl::check(k, linux.namespaces().as_deref().unwrap_or_default())
            .map_err(Error::Config)?;
        sysctls.push((
            cstring(format!("/proc/sys/{}", k.replace('.', "/")), "sysctl")?,
            v.clone(),
        ));
    }
    plan.rootfs = Some(RootfsPlan {
        rootfs: cstring(c.rootfs.as_os_str().as_encoded_bytes(), "rootfs")?,
        root_propagation: prop,
        root_after_pivot: match linux.rootfs_propagation().as_deref() {
            Some("shared") | Some("rshared") => libc::MS_SHARED,
            Some("unbindable") | Some("runbindable") => libc::MS_UNBINDABLE,
            _ => 0,
        },
        mounts,
        devices,
        default_dev: true,
        masked: path_list(linux.masked_paths(), "maskedPaths")?,
        readonly: path_list(linux.readonly_paths(), "readonlyPaths")?,
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        no_pivot: c.no_pivot,
        in_userns,
        cgroup_binds: if c.cgroup.version == 1 {
            c.cgroup
                .dirs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            vec![]
        },
        cgroup_v2: c.cgroup.version == 2,
        sysctls,
    });
    fill_process(&mut plan, p)?;
    Ok(plan)
}

/// Plan for a process exec'ed into the running container `pid`.
pub fn exec_plan(pid: i32, cgroup: &CgroupRecord, p: ProcessInputs<'_>) -> Result<Plan, Error> {
    let mut plan = empty_plan();
    let linux = p.spec.linux().clone().unwrap_or_default();
    reject_unsupported(&Default::default(), Some(p.process))?;
    let mut joins = vec![];
    for ns in linux.namespaces().iter().flatten() {
        let t = ns.typ();
        let path = PathBuf::from(format!("/proc/{pid}/ns/{}", ns_proc_name(t)));
        joins.push((ns_flag(t), open_ns(&path)?));
        if t == LinuxNamespaceType::Pid {
            plan.pid_ns = true;
        }
    }
    joins.sort_by_key(|(f, _)| *f != libc::CLONE_NEWUSER);
    plan.join = joins;
    plan.cgroup_procs = cgroup.procs_files();
    fill_process(&mut plan, p)?;
    Ok(plan)
}
