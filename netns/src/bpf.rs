//! The few `bpf(2)` commands berth needs, and an assembler for the two
//! dozen instructions of its programs ([`crate::redirect`]).
//!
//! Why by hand: aya and libbpf load programs from ELF objects that a BPF
//! compiler (clang, or rustc nightly with bpf-linker) builds, and neither
//! toolchain is part of berth's build. The programs are small enough to
//! write as instructions, and these commands are fixed kernel ABI
//! (`include/uapi/linux/bpf.h`).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const MAP_CREATE: u32 = 0;
const MAP_LOOKUP_ELEM: u32 = 1;
const MAP_UPDATE_ELEM: u32 = 2;
const MAP_DELETE_ELEM: u32 = 3;
const MAP_GET_NEXT_KEY: u32 = 4;
const PROG_LOAD: u32 = 5;
const PROG_ATTACH: u32 = 8;
const PROG_DETACH: u32 = 9;
const PROG_GET_FD_BY_ID: u32 = 13;
const MAP_GET_FD_BY_ID: u32 = 14;
const OBJ_GET_INFO_BY_FD: u32 = 15;
const PROG_QUERY: u32 = 16;

pub const MAP_TYPE_HASH: u32 = 1;
pub const MAP_TYPE_LRU_HASH: u32 = 9;
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const ATTACH_INET4_CONNECT: u32 = 10;
pub const ATTACH_INET6_CONNECT: u32 = 11;
pub const ATTACH_INET4_GETPEERNAME: u32 = 29;
pub const ATTACH_INET6_GETPEERNAME: u32 = 30;
const F_ALLOW_MULTI: u32 = 1 << 1;

pub const FN_MAP_LOOKUP_ELEM: i32 = 1;
pub const FN_MAP_UPDATE_ELEM: i32 = 2;
pub const FN_GET_SOCKET_COOKIE: i32 = 46;
pub const FN_GET_NETNS_COOKIE: i32 = 122;

/// `union bpf_attr`, as the 144 bytes of this kernel's uapi; each command
/// fills the fields it reads (offsets from `include/uapi/linux/bpf.h`).
#[repr(C, align(8))]
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Self {
        let b = name.as_bytes();
        let n = b.len().min(15);
        self.0[off..off + n].copy_from_slice(&b[..n]);
        self
    }
    fn read_u32(&self, off: usize) -> u32 {
        let mut b = [0; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn sys(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: `attr` is a live, writable 144-byte buffer, the size given;
    // every pointer stored in it points to memory the caller keeps alive
    // for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            attr.0.len() as libc::c_long,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sys_fd(cmd: u32, attr: &mut Attr) -> io::Result<OwnedFd> {
    let fd = sys(cmd, attr)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_F_NO_PREALLOC`: entries are allocated as they are added (hash
/// maps only; an LRU map is always preallocated).
pub const F_NO_PREALLOC: u32 = 1;

pub fn map_create(
    kind: u32,
    key: u32,
    value: u32,
    max_entries: u32,
    flags: u32,
    name: &str,
) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, kind)
        .u32(4, key)
        .u32(8, value)
        .u32(12, max_entries)
        .u32(16, flags)
        .name(28, name);
    sys_fd(MAP_CREATE, &mut a)
}

pub fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, value.as_ptr() as u64);
    sys(MAP_UPDATE_ELEM, &mut a).map(drop)
}

/// Deletes `key`; a key that is not there is no error.
pub fn map_delete(map: &OwnedFd, key: &[u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32).u64(8, key.as_ptr() as u64);
    match sys(MAP_DELETE_ELEM, &mut a) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map(drop),
    }
}

/// Every key of a hash map (`key_len` bytes each).
pub fn map_keys(map: &OwnedFd, key_len: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut next = vec![0u8; key_len];
        let mut a = Attr::new();
        a.u32(0, map.as_raw_fd() as u32)
            .u64(8, out.last().map_or(0, |k| k.as_ptr() as u64))
            .u64(16, next.as_mut_ptr() as u64);
        match sys(MAP_GET_NEXT_KEY, &mut a) {
            Ok(_) => out.push(next),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
    }
}

pub fn map_lookup(map: &OwnedFd, key: &[u8], value_len: usize) -> io::Result<Option<Vec<u8>>> {
    let mut v = vec![0u8; value_len];
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, key.as_ptr() as u64)
        .u64(16, v.as_mut_ptr() as u64);
    match sys(MAP_LOOKUP_ELEM, &mut a) {
        Ok(_) => Ok(Some(v)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Loads a program; the verifier's log is the error text on refusal.
pub fn prog_load(
    kind: u32,
    attach: u32,
    name: &str,
    insns: &[Insn],
) -> Result<OwnedFd, (io::Error, String)> {
    let license = c"GPL";
    let mut log = vec![0u8; 16 * 1024];
    let mut a = Attr::new();
    a.u32(0, kind)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .name(48, name)
        .u32(68, attach);
    sys_fd(PROG_LOAD, &mut a).map_err(|e| {
        let text = CStr::from_bytes_until_nul(&log)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        (e, text)
    })
}

/// Adds `prog` to the cgroup's programs for `attach` (after any others).
pub fn prog_attach(cgroup: &OwnedFd, prog: &OwnedFd, attach: u32) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, attach)
        .u32(12, F_ALLOW_MULTI);
    sys(PROG_ATTACH, &mut a).map(drop)
}

pub fn prog_detach(cgroup: &OwnedFd, prog: &OwnedFd, attach: u32) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, prog.as_raw_fd() as u32)
        .u32(8, attach);
    match sys(PROG_DETACH, &mut a) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map(drop),
    }
}

/// Ids of the programs attached to the cgroup itself for `attach`.
pub fn prog_query(cgroup: &OwnedFd, attach: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.u32(0, cgroup.as_raw_fd() as u32)
        .u32(4, attach)
        .u64(16, ids.as_mut_ptr() as u64)
        .u32(24, ids.len() as u32);
    sys(PROG_QUERY, &mut a)?;
    ids.truncate(a.read_u32(24) as usize);
    Ok(ids)
}

pub fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    sys_fd(PROG_GET_FD_BY_ID, &mut a)
}

pub fn map_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, id);
    sys_fd(MAP_GET_FD_BY_ID, &mut a)
}

fn obj_info(fd: &OwnedFd, info: &mut [u8]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys(OBJ_GET_INFO_BY_FD, &mut a).map(drop)
}

fn name_at(info: &[u8], off: usize) -> String {
    let raw = &info[off..off + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(16);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A program's name and the ids of the maps it uses.
pub fn prog_info(prog: &OwnedFd) -> io::Result<(String, Vec<u32>)> {
    let mut maps = vec![0u32; 8];
    // struct bpf_prog_info: nr_map_ids at 52, map_ids at 56, name at 64.
    let mut info = vec![0u8; 232];
    info[52..56].copy_from_slice(&(maps.len() as u32).to_ne_bytes());
    info[56..64].copy_from_slice(&(maps.as_mut_ptr() as u64).to_ne_bytes());
    obj_info(prog, &mut info)?;
    let mut n = [0; 4];
    n.copy_from_slice(&info[52..56]);
    maps.truncate((u32::from_ne_bytes(n) as usize).min(8));
    Ok((name_at(&info, 64), maps))
}

/// A map's name (struct bpf_map_info: name at 24).
pub fn map_name(map: &OwnedFd) -> io::Result<String> {
    let mut info = vec![0u8; 88];
    obj_info(map, &mut info)?;
    Ok(name_at(&info, 24))
}

/// The cookie of the network namespace `sock` lives in (`SO_NETNS_COOKIE`,
/// Linux 5.14), the value `bpf_get_netns_cookie` gives programs there.
pub fn netns_cookie(sock: &OwnedFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and sized for the option's u64.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            71, // SO_NETNS_COOKIE
            (&mut v as *mut u64).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(v)
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
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

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
/// The read-only frame pointer; the stack lies below it.
pub const R10: u8 = 10;

/// A forward jump target, placed with [`Asm::label`].
#[derive(Clone, Copy)]
pub struct Label(usize);

/// Builds a program; jumps name labels and are resolved by [`Asm::finish`].
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    jumps: Vec<(usize, Label)>,
}

impl Asm {
    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    pub fn label(&mut self, l: Label) {
        self.labels[l.0] = Some(self.insns.len());
    }
    fn push(&mut self, i: Insn) -> &mut Self {
        self.insns.push(i);
        self
    }
    pub fn mov_reg(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(insn(0xbf, dst, src, 0, 0))
    }
    pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(insn(0xb7, dst, 0, 0, imm))
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(insn(0x07, dst, 0, 0, imm))
    }
    /// `dst = *(u32 *)(src + off)`
    pub fn load32(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(insn(0x61, dst, src, off, 0))
    }
    /// `*(u32 *)(dst + off) = src`
    pub fn store32(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(insn(0x63, dst, src, off, 0))
    }
    /// `*(u64 *)(dst + off) = src`
    pub fn store64(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(insn(0x7b, dst, src, off, 0))
    }
    /// `dst = imm` for a 64-bit constant (two instruction slots).
    pub fn load_imm64(&mut self, dst: u8, imm: u64) -> &mut Self {
        self.push(insn(0x18, dst, 0, 0, imm as u32 as i32));
        self.push(insn(0, 0, 0, 0, (imm >> 32) as u32 as i32))
    }
    /// `dst = map` (`BPF_PSEUDO_MAP_FD`: the verifier swaps the fd for
    /// the map's address).
    pub fn load_map(&mut self, dst: u8, map: &OwnedFd) -> &mut Self {
        self.push(insn(0x18, dst, 1, 0, map.as_raw_fd()));
        self.push(insn(0, 0, 0, 0, 0))
    }
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.push(insn(0x85, 0, 0, 0, helper))
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) -> &mut Self {
        self.jumps.push((self.insns.len(), to));
        self.push(insn(code, dst, src, 0, imm))
    }
    pub fn jeq_imm(&mut self, dst: u8, imm: i32, to: Label) -> &mut Self {
        self.jump(0x15, dst, 0, imm, to)
    }
    pub fn jne_imm(&mut self, dst: u8, imm: i32, to: Label) -> &mut Self {
        self.jump(0x55, dst, 0, imm, to)
    }
    pub fn jne_reg(&mut self, dst: u8, src: u8, to: Label) -> &mut Self {
        self.jump(0x5d, dst, src, 0, to)
    }
    pub fn exit(&mut self) -> &mut Self {
        self.push(insn(0x95, 0, 0, 0, 0))
    }

    /// The instructions, with every jump pointed at its label. A label
    /// never placed is a bug in the program's builder: `None`.
    pub fn finish(mut self) -> Option<Vec<Insn>> {
        for (at, l) in std::mem::take(&mut self.jumps) {
            let target = self.labels.get(l.0).copied().flatten()?;
            let off = i16::try_from(target as isize - at as isize - 1).ok()?;
            self.insns[at].off = off;
        }
        Some(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_relative_to_the_next_instruction() {
        let mut a = Asm::default();
        let out = a.new_label();
        a.mov_imm(R2, 5).jne_imm(R2, 1, out).load_imm64(R1, 7);
        a.label(out);
        a.mov_imm(R0, 1).exit();
        let insns = a.finish().unwrap();
        // jne at 1 skips the two slots of the 64-bit load
        assert_eq!(insns[1], insn(0x55, R2, 0, 2, 1));
        assert_eq!(insns.len(), 6);
        assert_eq!(insns[2].imm, 7);
        assert_eq!(insns[3], insn(0, 0, 0, 0, 0));
    }

    #[test]
    fn a_label_never_placed_is_refused() {
        let mut a = Asm::default();
        let l = a.new_label();
        a.jeq_imm(R0, 0, l).exit();
        assert!(a.finish().is_none());
    }

    #[test]
    fn registers_pack_source_high() {
        assert_eq!(insn(0x63, R10, R2, -8, 0).regs, 0x2a);
    }
}
