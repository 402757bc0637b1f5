//! Capability sets: bounding, effective, permitted, inheritable, ambient.

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("capability {0} is not known to berth; check its spelling (CAP_...)")]
    Unknown(String),
    #[error("capabilities: {op} failed: {err}")]
    Sys {
        op: &'static str,
        err: std::io::Error,
    },
}

/// Capability names in the kernel's order: the index is the number.
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Kernel number of a capability.
pub fn number(c: &Capability) -> Result<u32, CapsError> {
    let name = serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    NAMES
        .iter()
        .position(|n| *n == name)
        .map(|p| p as u32)
        .ok_or(CapsError::Unknown(name))
}

/// Bit mask of a set.
pub fn mask(set: Option<&Capabilities>) -> Result<u64, CapsError> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        m |= 1u64 << number(c)?;
    }
    Ok(m)
}

/// Pre-computed masks, so the child does no lookups.
#[derive(Debug, Clone, Copy, Default)]
pub struct CapMasks {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

impl CapMasks {
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> Result<Self, CapsError> {
        let Some(c) = c else {
            return Ok(Self::default());
        };
        Ok(Self {
            bounding: mask(c.bounding().as_ref())?,
            effective: mask(c.effective().as_ref())?,
            permitted: mask(c.permitted().as_ref())?,
            inheritable: mask(c.inheritable().as_ref())?,
            ambient: mask(c.ambient().as_ref())?,
        })
    }
}

fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn sys(op: &'static str, rc: libc::c_int) -> Result<(), CapsError> {
    if rc < 0 {
        return Err(CapsError::Sys {
            op,
            err: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Drop everything outside the bounding set (needs CAP_SETPCAP, so before setuid).
pub fn drop_bounding(m: &CapMasks, last: u32) -> Result<(), CapsError> {
    for cap in 0..=last {
        if m.bounding & (1u64 << cap) == 0 {
            // SAFETY: plain prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
                return sys("prctl(PR_CAPBSET_DROP)", rc);
            }
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Set effective/permitted/inheritable, then raise the ambient set.
pub fn apply_sets(m: &CapMasks) -> Result<(), CapsError> {
    let hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [
        CapData {
            effective: m.effective as u32,
            permitted: m.permitted as u32,
            inheritable: m.inheritable as u32,
        },
        CapData {
            effective: (m.effective >> 32) as u32,
            permitted: (m.permitted >> 32) as u32,
            inheritable: (m.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data words as _LINUX_CAPABILITY_VERSION_3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) } as libc::c_int;
    sys("capset", rc)?;
    // The kernel only allows ambient caps that are permitted and
    // inheritable; others are skipped, as runc does.
    let ambient = m.ambient & m.permitted & m.inheritable;
    for cap in 0..64u32 {
        if ambient & (1u64 << cap) != 0 {
            // SAFETY: plain prctl with integer arguments.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            sys("prctl(PR_CAP_AMBIENT_RAISE)", rc)?;
        }
    }
    Ok(())
}

pub fn highest() -> u32 {
    last_cap()
}
