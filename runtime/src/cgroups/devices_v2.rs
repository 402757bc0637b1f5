//! cgroup v2 device rules: a small eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! assembled by hand from the OCI rules and attached to the container's
//! cgroup, as runc and crun do. Rules are checked last to first; the first
//! match decides; no match denies.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}
const LDX_W: u8 = 0x61;
const AND32_K: u8 = 0x54;
const RSH32_K: u8 = 0x74;
const MOV32_X: u8 = 0xbc;
const MOV64_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

fn access_bits(a: &str) -> i32 {
    let mut m = 0;
    for c in a.chars() {
        m |= match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        };
    }
    m
}

/// Assemble the program. Registers: r2 type, r3 access, r4 major, r5 minor.
pub fn assemble(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let mut body: Vec<Insn> = vec![];
        // Each check jumps to the next rule; `off` is patched below.
        match r.typ() {
            Some(LinuxDeviceType::B) => body.push(insn(JNE_K, 2, 0, -1, DEV_BLOCK)),
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => {
                body.push(insn(JNE_K, 2, 0, -1, DEV_CHAR))
            }
            // Fifos are not checked by the device controller.
            Some(LinuxDeviceType::P) => continue,
            Some(LinuxDeviceType::A) | None => {}
        }
        let acc = access_bits(r.access().as_deref().unwrap_or("rwm"));
        if acc != 7 {
            // Requested access must be a subset of the rule's.
            body.push(insn(MOV32_X, 1, 3, 0, 0));
            body.push(insn(AND32_K, 1, 0, 0, acc));
            body.push(insn(JNE_X, 1, 3, -1, 0));
        }
        if let Some(m) = r.major().filter(|m| *m >= 0) {
            body.push(insn(JNE_K, 4, 0, -1, m as i32));
        }
        if let Some(m) = r.minor().filter(|m| *m >= 0) {
            body.push(insn(JNE_K, 5, 0, -1, m as i32));
        }
        body.push(insn(MOV64_K, 0, 0, 0, i32::from(r.allow())));
        body.push(insn(EXIT, 0, 0, 0, 0));
        let n = body.len();
        for (i, b) in body.iter_mut().enumerate() {
            if b.off == -1 {
                b.off = (n - i - 1) as i16;
            }
        }
        let catch_all = n == 2;
        p.extend(body);
        if catch_all {
            // Nothing after an unconditional rule is reachable, and the
            // verifier refuses unreachable instructions.
            return p;
        }
    }
    p.push(insn(MOV64_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<libc::c_long> {
    // SAFETY: bpf(2) with a zero-padded attribute buffer of the size we pass.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(r)
}

/// Load the program for `rules` and attach it to the cgroup `dir`.
pub fn attach(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = assemble(rules);
    let license = c"Apache";
    let mut log = vec![0u8; 4096];
    let mut a = [0u8; 128];
    let put32 =
        |a: &mut [u8; 128], off: usize, v: u32| a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    let put64 =
        |a: &mut [u8; 128], off: usize, v: u64| a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    put32(&mut a, 0, 15); // BPF_PROG_TYPE_CGROUP_DEVICE
    put32(&mut a, 4, prog.len() as u32);
    put64(&mut a, 8, prog.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 24, 1); // log_level
    put32(&mut a, 28, log.len() as u32);
    put64(&mut a, 32, log.as_mut_ptr() as u64);
    put32(&mut a, 68, 6); // expected_attach_type BPF_CGROUP_DEVICE
    let fd = bpf(5 /* BPF_PROG_LOAD */, &mut a).map_err(|err| {
        let msg = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .to_string();
        CgroupError::Invalid(format!("load the cgroup v2 device filter: {err}: {msg}"))
    })?;
    // SAFETY: bpf returned a new program fd.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cg = std::fs::File::open(dir).map_err(|err| CgroupError::Io {
        what: "open",
        path: dir.into(),
        err,
    })?;
    let mut a = [0u8; 128];
    put32(&mut a, 0, cg.as_raw_fd() as u32);
    put32(&mut a, 4, prog_fd.as_raw_fd() as u32);
    put32(&mut a, 8, 6); // BPF_CGROUP_DEVICE
    put32(&mut a, 12, 2); // BPF_F_ALLOW_MULTI
    bpf(8 /* BPF_PROG_ATTACH */, &mut a).map_err(|err| CgroupError::Io {
        what: "attach the device filter to",
        path: dir.into(),
        err,
    })?;
    Ok(())
}
