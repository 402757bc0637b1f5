//! Everything the child needs, computed in the runtime before fork, so the
//! child only makes syscalls.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use oci_spec::runtime::{Hook, LinuxIdMapping};

use super::rootfs::RootfsPlan;
use super::{sys, ProcessError};
use crate::caps::CapMasks;
use crate::seccomp::Program;

#[derive(Debug)]
pub struct Plan {
    /// `cgroup.procs` files the child writes "0" to, first thing.
    pub cgroup_procs: Vec<PathBuf>,
    /// Namespaces to join: (CLONE_NEW* flag, fd), user namespace first.
    pub join: Vec<(libc::c_int, OwnedFd)>,
    pub new_user: bool,
    /// Other CLONE_NEW* flags to unshare.
    pub unshare: libc::c_int,
    /// A pid namespace is new or joined: init must be a fresh child.
    pub pid_ns: bool,
    pub uid_maps: Vec<LinuxIdMapping>,
    pub gid_maps: Vec<LinuxIdMapping>,
    pub rootfs: Option<RootfsPlan>,
    pub runtime_hooks: bool,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    pub oom_score_adj: Option<i32>,
    pub caps: Option<CapMasks>,
    pub no_new_privileges: bool,
    pub seccomp: Option<Program>,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// PATH from the process env, for resolving args[0].
    pub path_env: String,
    pub cwd: CString,
    pub terminal: bool,
    /// Connected console socket: the pty master goes there.
    pub console: Option<OwnedFd>,
    /// stdin, stdout, stderr to install; `None` inherits the caller's.
    pub stdio: Option<[RawFd; 3]>,
    /// exec.fifo opened O_PATH: init blocks on it until `start`.
    pub fifo: Option<OwnedFd>,
    /// fds 3..3+N stay open in the container (LISTEN_FDS, --preserve-fds).
    pub preserve_fds: u32,
    /// State JSON given to hooks run from inside (createContainer, startContainer).
    pub hook_state: String,
    pub setsid: bool,
}

impl Plan {
    /// fds the child must keep until exec.
    pub fn keep_fds(&self, sock: RawFd) -> Vec<RawFd> {
        let mut v = vec![sock];
        v.extend(self.join.iter().map(|(_, f)| f.as_raw_fd()));
        v.extend(self.console.iter().map(|f| f.as_raw_fd()));
        v.extend(self.fifo.iter().map(|f| f.as_raw_fd()));
        if let Some(s) = self.stdio {
            v.extend(s);
        }
        v
    }

    pub(super) fn write_id_maps(&self, pid: i32) -> Result<(), ProcessError> {
        let fmt = |maps: &[LinuxIdMapping]| -> String {
            maps.iter()
                .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
                .collect()
        };
        for (file, maps) in [("uid_map", &self.uid_maps), ("gid_map", &self.gid_maps)] {
            if maps.is_empty() {
                continue;
            }
            let p = format!("/proc/{pid}/{file}");
            std::fs::write(&p, fmt(maps)).map_err(|e| sys(format!("write {p}"), e))?;
        }
        Ok(())
    }
}
