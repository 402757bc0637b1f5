//! Resource limits: names, and the check that a request fits the caller's
//! hard limit (raising it needs CAP_SYS_RESOURCE, which may be missing).

use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("rlimit {name}: requested hard limit {requested} is above the allowed maximum {max} (the caller's hard limit; raising it needs CAP_SYS_RESOURCE): lower the limit to at most {max}")]
    AboveHard {
        name: &'static str,
        requested: u64,
        max: u64,
    },
    #[error("rlimit {name}: soft limit {soft} is above the hard limit {hard}")]
    SoftAboveHard {
        name: &'static str,
        soft: u64,
        hard: u64,
    },
    #[error("rlimit {0}: not supported on Linux")]
    Unsupported(String),
}

const TABLE: &[(PosixRlimitType, libc::__rlimit_resource_t, &str)] = &[
    (PosixRlimitType::RlimitCpu, libc::RLIMIT_CPU, "RLIMIT_CPU"),
    (
        PosixRlimitType::RlimitFsize,
        libc::RLIMIT_FSIZE,
        "RLIMIT_FSIZE",
    ),
    (
        PosixRlimitType::RlimitData,
        libc::RLIMIT_DATA,
        "RLIMIT_DATA",
    ),
    (
        PosixRlimitType::RlimitStack,
        libc::RLIMIT_STACK,
        "RLIMIT_STACK",
    ),
    (
        PosixRlimitType::RlimitCore,
        libc::RLIMIT_CORE,
        "RLIMIT_CORE",
    ),
    (PosixRlimitType::RlimitRss, libc::RLIMIT_RSS, "RLIMIT_RSS"),
    (
        PosixRlimitType::RlimitNproc,
        libc::RLIMIT_NPROC,
        "RLIMIT_NPROC",
    ),
    (
        PosixRlimitType::RlimitNofile,
        libc::RLIMIT_NOFILE,
        "RLIMIT_NOFILE",
    ),
    (
        PosixRlimitType::RlimitMemlock,
        libc::RLIMIT_MEMLOCK,
        "RLIMIT_MEMLOCK",
    ),
    (PosixRlimitType::RlimitAs, libc::RLIMIT_AS, "RLIMIT_AS"),
    (
        PosixRlimitType::RlimitLocks,
        libc::RLIMIT_LOCKS,
        "RLIMIT_LOCKS",
    ),
    (
        PosixRlimitType::RlimitSigpending,
        libc::RLIMIT_SIGPENDING,
        "RLIMIT_SIGPENDING",
    ),
    (
        PosixRlimitType::RlimitMsgqueue,
        libc::RLIMIT_MSGQUEUE,
        "RLIMIT_MSGQUEUE",
    ),
    (
        PosixRlimitType::RlimitNice,
        libc::RLIMIT_NICE,
        "RLIMIT_NICE",
    ),
    (
        PosixRlimitType::RlimitRtprio,
        libc::RLIMIT_RTPRIO,
        "RLIMIT_RTPRIO",
    ),
    (
        PosixRlimitType::RlimitRttime,
        libc::RLIMIT_RTTIME,
        "RLIMIT_RTTIME",
    ),
];

pub fn name(res: libc::__rlimit_resource_t) -> &'static str {
    TABLE
        .iter()
        .find(|t| t.1 == res)
        .map(|t| t.2)
        .unwrap_or("RLIMIT_?")
}

/// The caller's current hard limit for a resource.
pub fn current_hard(res: libc::__rlimit_resource_t) -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a struct we own.
    unsafe { libc::getrlimit(res, &mut l) };
    l.rlim_max
}

/// Check and translate `process.rlimits`. A hard limit above the caller's
/// fails here, with a message naming the limit and the allowed maximum, when
/// the caller cannot raise it (no CAP_SYS_RESOURCE).
pub fn plan(
    limits: &[PosixRlimit],
) -> Result<Vec<(libc::__rlimit_resource_t, u64, u64)>, RlimitError> {
    let can_raise = crate::util_caps::has_effective(24 /* CAP_SYS_RESOURCE */);
    let mut out = Vec::new();
    for l in limits {
        let (_, res, name) = TABLE
            .iter()
            .find(|t| t.0 == l.typ())
            .ok_or_else(|| RlimitError::Unsupported(format!("{:?}", l.typ())))?;
        if l.soft() > l.hard() {
            return Err(RlimitError::SoftAboveHard {
                name,
                soft: l.soft(),
                hard: l.hard(),
            });
        }
        let max = current_hard(*res);
        if !can_raise && l.hard() > max {
            return Err(RlimitError::AboveHard {
                name,
                requested: l.hard(),
                max,
            });
        }
        out.push((*res, l.soft(), l.hard()));
    }
    Ok(out)
}
