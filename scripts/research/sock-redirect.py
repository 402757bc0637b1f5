#!/usr/bin/env python3
# Measurement prototype, not part of berth: how fast would a published port
# on 127.0.0.1 be if connections were redirected at the socket (an eBPF
# cgroup/connect4 program, Cilium's way) instead of DNAT'ed per packet?
# docs/benchmarks.md ("Socket-level redirection, measured") has the method
# and the result. Attaches to the cgroup v2 directory given (a test one:
# never the root, which would act on every process of the host); removing
# that directory detaches it.
# usage: sock-redirect.py HOST_PORT CONTAINER_IP CONTAINER_PORT CGROUP2_DIR
import ctypes, os, struct, sys, socket
libc = ctypes.CDLL(None, use_errno=True)
SYS_bpf = 321
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
PROG_TYPE_CGROUP_SOCK_ADDR = 18
ATTACH_INET4_CONNECT = 10
def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack('<BBhi', code, (src << 4) | dst, off, imm)
hp, ctr, cp = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lo = struct.unpack('<I', socket.inet_aton('127.0.0.1'))[0]
cip = struct.unpack('<i', socket.inet_aton(ctr))[0]
nhp = socket.htons(hp); ncp = socket.htons(cp)
LDXW, JNE_IMM, STW, MOV_IMM, EXIT = 0x61, 0x55, 0x62, 0xb7, 0x95
prog = b''.join([
    insn(LDXW, 2, 1, 4),            # r2 = ctx->user_ip4
    insn(JNE_IMM, 2, 0, 4, lo),     # != 127.0.0.1 -> out
    insn(LDXW, 2, 1, 24),           # r2 = ctx->user_port
    insn(JNE_IMM, 2, 0, 2, nhp),    # != hp -> out
    insn(STW, 1, 0, 4, cip),        # user_ip4 = ctr
    insn(STW, 1, 0, 24, ncp),       # user_port = cp
    insn(MOV_IMM, 0, 0, 0, 1),      # out: r0 = 1
    insn(EXIT),
])
pbuf = ctypes.create_string_buffer(prog)
lic = ctypes.create_string_buffer(b'GPL')
log = ctypes.create_string_buffer(65536)
# union bpf_attr for PROG_LOAD: prog_type, insn_cnt, insns, license, log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16], prog_ifindex, expected_attach_type
attr = struct.pack('<IIQQIIQII16sII', PROG_TYPE_CGROUP_SOCK_ADDR, len(prog)//8, ctypes.addressof(pbuf), ctypes.addressof(lic), 1, 65536, ctypes.addressof(log), 0, 0, b'', 0, ATTACH_INET4_CONNECT)
abuf = ctypes.create_string_buffer(attr, 128)
fd = libc.syscall(SYS_bpf, BPF_PROG_LOAD, abuf, 128)
if fd < 0:
    print('load failed', os.strerror(ctypes.get_errno()), log.value.decode()); sys.exit(1)
cg = os.open(sys.argv[4], os.O_RDONLY | os.O_DIRECTORY)
attr = struct.pack('<IIII', cg, fd, ATTACH_INET4_CONNECT, 0)
abuf = ctypes.create_string_buffer(attr, 128)
r = libc.syscall(SYS_bpf, BPF_PROG_ATTACH, abuf, 128)
if r < 0:
    print('attach failed', os.strerror(ctypes.get_errno())); sys.exit(1)
print('attached')
