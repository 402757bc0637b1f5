//! OCI `linux.seccomp` -> classic BPF, loaded with seccomp(2).
//!
//! The compiler is small on purpose: one linear pass over the rules, each rule
//! a `jeq nr` guard, its argument checks (64-bit compares done word by word)
//! and a `ret action`. Syscall names unknown on this architecture are skipped,
//! as runc does, so one profile serves every kernel.

mod bpf;
mod docker;
pub mod profile;
mod table_aarch64;
mod table_x86_64;

pub use bpf::SockFilter;
pub use docker::{docker_default, kernel_version};

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

use bpf::{Insn, Target};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: action {0:?} is not supported by berth (no seccomp agent); use ERRNO, KILL, TRAP, LOG, TRACE or ALLOW")]
    UnsupportedAction(LinuxSeccompAction),
    #[error("seccomp: syscall {syscall}: argument index {index} is out of range (0-5)")]
    BadArgIndex { syscall: String, index: usize },
    #[error("seccomp: the filter needs {0} instructions, above the kernel's limit of 4096; simplify the profile")]
    TooLong(usize),
    #[error("seccomp: this build knows the syscall tables of x86_64 and aarch64 only")]
    UnsupportedArch,
    #[error("seccomp: loading the filter failed: {0}")]
    Load(std::io::Error),
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH_NATIVE: u32 = 0;
/// x32 syscalls share the x86_64 audit arch but set this bit in `nr`.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Number of a syscall in the table of `arch` (Rust or Go name), `None`
/// when that arch lacks it or berth has no table for the arch.
pub fn syscall_number_for(arch: &str, name: &str) -> Option<i64> {
    let table = match arch {
        "x86_64" | "amd64" => table_x86_64::SYSCALLS,
        "aarch64" | "arm64" => table_aarch64::SYSCALLS,
        _ => return None,
    };
    table
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table[i].1)
}

/// Number of a syscall on the build architecture, `None` when this arch lacks it.
pub fn syscall_number(name: &str) -> Option<i64> {
    syscall_number_for(std::env::consts::ARCH, name)
}

fn action_value(action: LinuxSeccompAction, errno: Option<u32>) -> Result<u32, SeccompError> {
    Ok(match action {
        LinuxSeccompAction::ScmpActNotify => return Err(SeccompError::UnsupportedAction(action)),
        LinuxSeccompAction::ScmpActErrno => {
            0x0005_0000 | (errno.unwrap_or(libc::EPERM as u32) & 0xffff)
        }
        LinuxSeccompAction::ScmpActTrace => 0x7ff0_0000 | (errno.unwrap_or(0) & 0xffff),
        other => other.as_u32(None),
    })
}

/// A compiled filter, ready for `load`.
#[derive(Debug, Clone)]
pub struct Program {
    pub filter: Vec<SockFilter>,
    pub flags: u32,
}

/// Translate an OCI seccomp section into a BPF program for this architecture.
pub fn compile(spec: &LinuxSeccomp) -> Result<Program, SeccompError> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err(SeccompError::UnsupportedArch);
    }
    let default = action_value(spec.default_action(), spec.default_errno_ret())?;
    let mut out: Vec<SockFilter> = Vec::with_capacity(1024);
    // Foreign architectures and the x32 ABI get the default action: their
    // syscall numbers differ and no rule here was written for them.
    out.push(bpf::ld_abs(4));
    out.push(bpf::jump(bpf::JEQ, AUDIT_ARCH_NATIVE, 1, 0));
    out.push(bpf::ret(default));
    out.push(bpf::ld_abs(0));
    if cfg!(target_arch = "x86_64") {
        out.push(bpf::jump(bpf::JGE, X32_SYSCALL_BIT, 0, 1));
        out.push(bpf::ret(default));
    }

    for sc in spec.syscalls().iter().flatten() {
        let action = action_value(sc.action(), sc.errno_ret())?;
        if action == default {
            continue;
        }
        let args = sc.args().clone().unwrap_or_default();
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                tracing::debug!(syscall = %name, "seccomp: unknown on this arch, skipped");
                continue;
            };
            for a in &args {
                if a.index() > 5 {
                    return Err(SeccompError::BadArgIndex {
                        syscall: name.clone(),
                        index: a.index(),
                    });
                }
            }
            // libseccomp semantics: several conditions on the same argument are
            // alternatives (separate rules); on distinct arguments they all apply.
            let mut seen = [false; 6];
            let repeated = args
                .iter()
                .any(|a| std::mem::replace(&mut seen[a.index()], true));
            if repeated {
                for a in &args {
                    emit_rule(&mut out, nr as u32, std::slice::from_ref(a), action);
                }
            } else {
                emit_rule(&mut out, nr as u32, &args, action);
            }
        }
    }
    out.push(bpf::ret(default));
    if out.len() > 4096 {
        return Err(SeccompError::TooLong(out.len()));
    }
    let mut flags = 0u32;
    for f in spec.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            #[allow(unreachable_patterns)]
            _ => 0,
        };
    }
    Ok(Program { filter: out, flags })
}

/// Emit one rule. The accumulator holds `nr` on entry and on exit.
fn emit_rule(out: &mut Vec<SockFilter>, nr: u32, args: &[LinuxSeccompArg], action: u32) {
    if args.is_empty() {
        out.push(bpf::jump(bpf::JEQ, nr, 0, 1));
        out.push(bpf::ret(action));
        return;
    }
    let mut body: Vec<Insn> = Vec::new();
    for a in args {
        cond(&mut body, a);
    }
    body.push(Insn::Ret(action));
    // A failed check lands on the reload of `nr` right after the body.
    let body = bpf::resolve(&body);
    out.push(bpf::jump(bpf::JEQ, nr, 0, (body.len() + 1) as u8));
    out.extend(body);
    out.push(bpf::ld_abs(0));
}

fn cond(b: &mut Vec<Insn>, a: &LinuxSeccompArg) {
    let lo_off = 16 + 8 * a.index() as u32;
    let hi_off = lo_off + 4;
    let v = a.value();
    let (vhi, vlo) = ((v >> 32) as u32, v as u32);
    use bpf::{JEQ, JGE, JGT};
    use Target::{Fail, Rel};
    match a.op() {
        LinuxSeccompOperator::ScmpCmpEq => b.extend([
            Insn::Ld(hi_off),
            Insn::J(JEQ, vhi, Rel(0), Fail),
            Insn::Ld(lo_off),
            Insn::J(JEQ, vlo, Rel(0), Fail),
        ]),
        LinuxSeccompOperator::ScmpCmpNe => b.extend([
            Insn::Ld(hi_off),
            Insn::J(JEQ, vhi, Rel(0), Rel(2)),
            Insn::Ld(lo_off),
            Insn::J(JEQ, vlo, Fail, Rel(0)),
        ]),
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            let want = a.value_two().unwrap_or(0);
            let (whi, wlo) = ((want >> 32) as u32, want as u32);
            b.extend([
                Insn::Ld(hi_off),
                Insn::And(vhi),
                Insn::J(JEQ, whi, Rel(0), Fail),
                Insn::Ld(lo_off),
                Insn::And(vlo),
                Insn::J(JEQ, wlo, Rel(0), Fail),
            ])
        }
        LinuxSeccompOperator::ScmpCmpGt | LinuxSeccompOperator::ScmpCmpGe => {
            let last = if a.op() == LinuxSeccompOperator::ScmpCmpGt {
                JGT
            } else {
                JGE
            };
            b.extend([
                Insn::Ld(hi_off),
                Insn::J(JGT, vhi, Rel(3), Rel(0)),
                Insn::J(JEQ, vhi, Rel(0), Fail),
                Insn::Ld(lo_off),
                Insn::J(last, vlo, Rel(0), Fail),
            ])
        }
        LinuxSeccompOperator::ScmpCmpLt | LinuxSeccompOperator::ScmpCmpLe => {
            // lo < v  <=> !(lo >= v);  lo <= v <=> !(lo > v)
            let last = if a.op() == LinuxSeccompOperator::ScmpCmpLt {
                JGE
            } else {
                JGT
            };
            b.extend([
                Insn::Ld(hi_off),
                Insn::J(JGE, vhi, Rel(0), Rel(3)),
                Insn::J(JEQ, vhi, Rel(0), Fail),
                Insn::Ld(lo_off),
                Insn::J(last, vlo, Fail, Rel(0)),
            ])
        }
    }
}

/// Install the filter on the calling thread. Needs no_new_privs or CAP_SYS_ADMIN.
pub fn load(p: &Program) -> Result<(), SeccompError> {
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points to a live, correctly sized array of sock_filter.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1u32, /* SECCOMP_SET_MODE_FILTER */
            p.flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SeccompError::Load(std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
