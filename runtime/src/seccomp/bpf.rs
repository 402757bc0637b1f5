//! Classic BPF instructions, just the ones a seccomp filter needs.

/// Layout-compatible with the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// BPF_LD | BPF_W | BPF_ABS
const BPF_LD_W_ABS: u16 = 0x20;
/// BPF_RET | BPF_K
const BPF_RET_K: u16 = 0x06;
const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
pub const JEQ: u16 = 0x05 | 0x10;
pub const JGT: u16 = 0x05 | 0x20;
pub const JGE: u16 = 0x05 | 0x30;

pub fn ld_abs(off: u32) -> SockFilter {
    SockFilter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: off,
    }
}
pub fn ret(k: u32) -> SockFilter {
    SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k,
    }
}
pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Where a conditional jump goes inside a rule body.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Skip this many following instructions (0 = fall through).
    Rel(u8),
    /// Leave the rule: the first instruction after the body.
    Fail,
}

#[derive(Debug, Clone, Copy)]
pub enum Insn {
    Ld(u32),
    And(u32),
    J(u16, u32, Target, Target),
    Ret(u32),
}

/// Turn a rule body with symbolic `Fail` targets into instructions.
pub fn resolve(body: &[Insn]) -> Vec<SockFilter> {
    let n = body.len();
    body.iter()
        .enumerate()
        .map(|(i, insn)| {
            let off = |t: Target| -> u8 {
                match t {
                    Target::Rel(r) => r,
                    Target::Fail => (n - i - 1) as u8,
                }
            };
            match *insn {
                Insn::Ld(o) => ld_abs(o),
                Insn::And(k) => SockFilter {
                    code: BPF_ALU_AND_K,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Insn::J(code, k, t, f) => jump(code, k, off(t), off(f)),
                Insn::Ret(k) => ret(k),
            }
        })
        .collect()
}
