use std::collections::HashSet;

use oci_spec::runtime::Capability;

use super::*;

fn docker_caps() -> HashSet<Capability> {
    crate::defaults::DOCKER_CAPABILITIES
        .iter()
        .copied()
        .collect()
}

fn rules_for<'a>(s: &'a LinuxSeccomp, name: &str) -> Vec<&'a oci_spec::runtime::LinuxSyscall> {
    s.syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect()
}

#[test]
fn docker_profile_resolves_caps_like_moby() {
    let p = docker_default("amd64", &docker_caps());
    assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(p.default_errno_ret(), Some(1));
    // Without CAP_SYS_ADMIN: clone3 answers ENOSYS, clone is masked, mount is absent.
    let c3 = rules_for(&p, "clone3");
    assert_eq!(c3.len(), 1);
    assert_eq!(c3[0].errno_ret(), Some(38));
    assert!(rules_for(&p, "mount").is_empty());
    assert_eq!(
        rules_for(&p, "clone")[0].args().as_ref().unwrap()[0].value(),
        2114060288
    );
    assert!(!rules_for(&p, "arch_prctl").is_empty());
    assert!(rules_for(&p, "s390_runtime_instr").is_empty());
    // chroot comes with CAP_SYS_CHROOT, which docker grants.
    assert!(!rules_for(&p, "chroot").is_empty());

    let mut all = docker_caps();
    all.insert(Capability::SysAdmin);
    let p = docker_default("amd64", &all);
    assert!(!rules_for(&p, "mount").is_empty());
    assert!(rules_for(&p, "clone3")
        .iter()
        .all(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
}

#[test]
fn compiles_within_kernel_limits_and_skips_unknown_names() {
    let p = docker_default("amd64", &docker_caps());
    let prog = compile(&p).unwrap();
    assert!(prog.filter.len() < 4096);
    assert!(syscall_number("s390_runtime_instr").is_none());
    assert_eq!(syscall_number("clone3"), Some(435));
}

/// Load the docker profile in a forked child and check real syscall answers.
#[test]
fn loaded_filter_answers_like_docker() {
    let prog = compile(&docker_default("amd64", &docker_caps())).unwrap();
    // SAFETY: the child only makes raw syscalls and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if load(&prog).is_err() {
                libc::_exit(10);
            }
            let errno = || *libc::__errno_location();
            let mut code = 0;
            if libc::syscall(libc::SYS_clone3, 0, 0) != -1 || errno() != libc::ENOSYS {
                code |= 1;
            }
            if libc::syscall(libc::SYS_unshare, 0) != -1 || errno() != libc::EPERM {
                code |= 2;
            }
            // personality(0xffffffff) is allowed (query), personality(1) is not.
            if libc::syscall(libc::SYS_personality, 0xffff_ffffu64) == -1 {
                code |= 4;
            }
            if libc::syscall(libc::SYS_personality, 1u64) != -1 || errno() != libc::EPERM {
                code |= 8;
            }
            // socket(AF_VSOCK) is refused, AF_UNIX allowed.
            if libc::socket(40, libc::SOCK_STREAM, 0) != -1 || errno() != libc::EPERM {
                code |= 16;
            }
            if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                code |= 32;
            }
            if libc::getpid() <= 0 {
                code |= 64;
            }
            code
        };
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert!(libc::WIFEXITED(st));
    assert_eq!(libc::WEXITSTATUS(st), 0, "bitmask of failed checks");
}

#[test]
fn comparison_operators_on_64_bit_args() {
    use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};
    // Allow getpriority only when arg1 (who) > 5 or == 0 (an alternative on the same arg);
    // setpriority only when arg0 masked with 0xf0 == 0.
    let rule = |name: &str, args: Vec<oci_spec::runtime::LinuxSeccompArg>| {
        LinuxSyscallBuilder::default()
            .names(vec![name.to_string()])
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(99u32)
            .args(args)
            .build()
            .unwrap()
    };
    let a = |i: usize, v: u64, op, v2: Option<u64>| {
        let mut b = LinuxSeccompArgBuilder::default().index(i).value(v).op(op);
        if let Some(v2) = v2 {
            b = b.value_two(v2);
        }
        b.build().unwrap()
    };
    let spec = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![
            rule(
                "getpriority",
                vec![
                    a(1, 5, LinuxSeccompOperator::ScmpCmpGt, None),
                    a(1, 0, LinuxSeccompOperator::ScmpCmpEq, None),
                ],
            ),
            rule(
                "setpriority",
                vec![a(
                    0,
                    0xf0,
                    LinuxSeccompOperator::ScmpCmpMaskedEq,
                    Some(0x10),
                )],
            ),
            rule(
                "getpgid",
                vec![a(0, 1 << 40, LinuxSeccompOperator::ScmpCmpGe, None)],
            ),
        ])
        .build()
        .unwrap();
    let prog = compile(&spec).unwrap();
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if load(&prog).is_err() {
                libc::_exit(100);
            }
            let errno = || *libc::__errno_location();
            let denied = |r: libc::c_long| r == -1 && errno() == 99;
            let mut code = 0;
            if !denied(libc::syscall(libc::SYS_getpriority, 0, 6)) {
                code |= 1;
            }
            if !denied(libc::syscall(libc::SYS_getpriority, 0, 0)) {
                code |= 2;
            }
            if denied(libc::syscall(libc::SYS_getpriority, 0, 3)) {
                code |= 4;
            }
            if !denied(libc::syscall(libc::SYS_setpriority, 0x1fu64, 0, 0)) {
                code |= 8;
            }
            if denied(libc::syscall(libc::SYS_setpriority, 0x20u64, 0, 0)) {
                code |= 16;
            }
            if !denied(libc::syscall(libc::SYS_getpgid, 1u64 << 41)) {
                code |= 32;
            }
            if denied(libc::syscall(libc::SYS_getpgid, 0u64)) {
                code |= 64;
            }
            code
        };
        unsafe { libc::_exit(code) };
    }
    let mut st = 0;
    unsafe { libc::waitpid(pid, &mut st, 0) };
    assert_eq!(libc::WEXITSTATUS(st), 0, "bitmask of failed checks");
}

#[test]
fn syscall_tables_match_the_kernels_numbers() {
    // x86_64 (asm/unistd_64.h) and aarch64 (asm-generic/unistd.h).
    for (name, x86, arm) in [
        ("read", Some(0), Some(63)),
        ("write", Some(1), Some(64)),
        ("openat", Some(257), Some(56)),
        ("execve", Some(59), Some(221)),
        ("clone", Some(56), Some(220)),
        ("clone3", Some(435), Some(435)),
        ("mkdirat", Some(258), Some(34)),
        ("exit_group", Some(231), Some(94)),
        ("getrlimit", Some(97), Some(163)),
        ("newfstatat", Some(262), Some(79)),
        ("memfd_secret", Some(447), Some(447)),
        ("mseal", Some(462), Some(462)),
        ("open", Some(2), None),
        ("fork", Some(57), None),
        ("arch_prctl", Some(158), None),
    ] {
        assert_eq!(syscall_number_for("x86_64", name), x86, "x86_64 {name}");
        assert_eq!(syscall_number_for("aarch64", name), arm, "aarch64 {name}");
    }
    assert_eq!(syscall_number_for("s390x", "read"), None);
    // The native table agrees with libc's constants.
    assert_eq!(syscall_number("getpid"), Some(libc::SYS_getpid));
    assert_eq!(syscall_number("openat"), Some(libc::SYS_openat));
    assert_eq!(syscall_number("mkdirat"), Some(libc::SYS_mkdirat));
}

#[test]
fn syscall_tables_are_sorted_and_aarch64_names_are_known_on_x86_64() {
    // Both tables are compiled on every host (only their use depends on the
    // build arch), so this runs on x86_64 too.
    for (arch, t) in [
        ("x86_64", super::table_x86_64::SYSCALLS),
        ("aarch64", super::table_aarch64::SYSCALLS),
    ] {
        for w in t.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "{arch}: {} before {} (binary search needs order)",
                w[0].0,
                w[1].0
            );
        }
        let mut nrs: Vec<i64> = t.iter().map(|(_, n)| *n).collect();
        nrs.sort_unstable();
        nrs.dedup();
        assert_eq!(nrs.len(), t.len(), "{arch}: two names share a number");
    }
    // asm-generic has no syscall that x86_64 lacks: each aarch64 name is
    // one the x86_64 table knows (the reverse does not hold: open, fork...).
    for (name, _) in super::table_aarch64::SYSCALLS {
        assert!(
            syscall_number_for("x86_64", name).is_some(),
            "aarch64 {name} missing from the x86_64 table"
        );
    }
}
