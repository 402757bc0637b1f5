//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`),
//! kept as data and resolved the way moby does: rules are included or
//! excluded by architecture, capability and minimum kernel.

use std::collections::HashSet;

use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

struct Rule {
    names: &'static [&'static str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    /// (index, value, op)
    args: &'static [(usize, u64, LinuxSeccompOperator)],
    inc_arches: &'static [&'static str],
    inc_caps: &'static [&'static str],
    min_kernel: Option<(u32, u32)>,
    exc_arches: &'static [&'static str],
    exc_caps: &'static [&'static str],
}

use LinuxSeccompAction::{ScmpActAllow as ALLOW, ScmpActErrno as ERRNO};
use LinuxSeccompOperator::{ScmpCmpEq as EQ, ScmpCmpMaskedEq as MASKED_EQ, ScmpCmpNe as NE};

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: ALLOW,
        errno: None,
        args: &[],
        inc_arches: &[],
        inc_caps: &[],
        min_kernel: None,
        exc_arches: &[],
        exc_caps: &[],
    }
}
const fn arches(names: &'static [&'static str], a: &'static [&'static str]) -> Rule {
    Rule {
        inc_arches: a,
        ..allow(names)
    }
}
const fn cap(names: &'static [&'static str], c: &'static [&'static str]) -> Rule {
    Rule {
        inc_caps: c,
        ..allow(names)
    }
}
const fn personality(v: u64) -> Rule {
    Rule {
        args: personality_arg(v),
        ..allow(&["personality"])
    }
}
const fn personality_arg(v: u64) -> &'static [(usize, u64, LinuxSeccompOperator)] {
    match v {
        0 => &[(0, 0, EQ)],
        8 => &[(0, 8, EQ)],
        131072 => &[(0, 131072, EQ)],
        131080 => &[(0, 131080, EQ)],
        _ => &[(0, 4294967295, EQ)],
    }
}

/// CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET
const CLONE_NS_MASK: u64 = 2114060288;

const RULES: &[Rule] = &[
    allow(ALLOWED),
    Rule {
        min_kernel: Some((4, 8)),
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    },
    Rule {
        args: &[(0, 40, NE)],
        ..allow(&["socket"])
    },
    personality(0),
    personality(8),
    personality(131072),
    personality(131080),
    personality(4294967295),
    arches(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    arches(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        &["arm", "arm64"],
    ),
    arches(&["arch_prctl"], &["amd64", "x32"]),
    arches(&["modify_ldt"], &["amd64", "x32", "x86"]),
    arches(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        &["s390", "s390x"],
    ),
    arches(&["riscv_flush_icache"], &["riscv64"]),
    cap(&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    cap(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        &["CAP_SYS_ADMIN"],
    ),
    Rule {
        args: &[(0, CLONE_NS_MASK, MASKED_EQ)],
        exc_caps: &["CAP_SYS_ADMIN"],
        exc_arches: &["s390", "s390x"],
        ..allow(&["clone"])
    },
    Rule {
        args: &[(1, CLONE_NS_MASK, MASKED_EQ)],
        inc_arches: &["s390", "s390x"],
        exc_caps: &["CAP_SYS_ADMIN"],
        ..allow(&["clone"])
    },
    Rule {
        action: ERRNO,
        errno: Some(38),
        exc_caps: &["CAP_SYS_ADMIN"],
        ..allow(&["clone3"])
    },
    cap(&["reboot"], &["CAP_SYS_BOOT"]),
    cap(&["chroot"], &["CAP_SYS_CHROOT"]),
    cap(
        &["delete_module", "init_module", "finit_module"],
        &["CAP_SYS_MODULE"],
    ),
    cap(&["acct"], &["CAP_SYS_PACCT"]),
    cap(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        &["CAP_SYS_PTRACE"],
    ),
    cap(&["iopl", "ioperm"], &["CAP_SYS_RAWIO"]),
    cap(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        &["CAP_SYS_TIME"],
    ),
    cap(&["vhangup"], &["CAP_SYS_TTY_CONFIG"]),
    cap(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        &["CAP_SYS_NICE"],
    ),
    cap(&["syslog"], &["CAP_SYSLOG"]),
    cap(&["bpf"], &["CAP_BPF"]),
    cap(&["perf_event_open"], &["CAP_PERFMON"]),
];

const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_time64",
    "futex_waitv",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// moby's archMap: the native arch and the compat arches it may run.
fn arch_map(arch: &str) -> Vec<Arch> {
    match arch {
        "amd64" | "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "arm64" | "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "s390x" => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => vec![],
    }
}

/// (major, minor) of the running kernel, (0, 0) when uname fails.
pub fn kernel_version() -> (u32, u32) {
    let Ok(u) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let rel = u.release().to_string_lossy().into_owned();
    let mut it = rel
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn cap_name(c: &Capability) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Docker's default seccomp profile for `arch` (docker/Go names: amd64,
/// arm64, x86, x32, s390x, riscv64...) with the capability-conditional rules
/// resolved against `caps` (the container's bounding set), as moby does.
pub fn docker_default(arch: &str, caps: &HashSet<Capability>) -> LinuxSeccomp {
    let arch = match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let names: HashSet<String> = caps.iter().map(cap_name).collect();
    let kernel = kernel_version();
    let mut syscalls = Vec::new();
    for r in RULES {
        if !r.inc_arches.is_empty() && !r.inc_arches.contains(&arch) {
            continue;
        }
        if !r.inc_caps.iter().all(|c| names.contains(*c)) {
            continue;
        }
        if r.min_kernel.is_some_and(|min| kernel < min) {
            continue;
        }
        if r.exc_arches.contains(&arch) || r.exc_caps.iter().any(|c| names.contains(*c)) {
            continue;
        }
        let mut sc = LinuxSyscall::default();
        sc.set_names(r.names.iter().map(|s| s.to_string()).collect());
        sc.set_action(r.action);
        sc.set_errno_ret(r.errno);
        if !r.args.is_empty() {
            let args = r
                .args
                .iter()
                .map(|&(index, value, op)| {
                    LinuxSeccompArgBuilder::default()
                        .index(index)
                        .value(value)
                        .op(op)
                        .build()
                        .unwrap_or_default()
                })
                .collect();
            sc.set_args(Some(args));
        }
        syscalls.push(sc);
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(ERRNO);
    s.set_default_errno_ret(Some(1));
    let archs = arch_map(arch);
    if !archs.is_empty() {
        s.set_architectures(Some(archs));
    }
    s.set_syscalls(Some(syscalls));
    s
}
