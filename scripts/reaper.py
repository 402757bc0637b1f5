#!/usr/bin/env python3
# Runs a command as the child subreaper of its descendants and reaps every
# one of them, so berth's monitors (which outlive the command that started
# them) do not stay zombies on a host whose pid 1 reaps nothing. Used to
# time berth with hyperfine:
#   python3 scripts/reaper.py hyperfine -N "berth run --rm --network none busybox true"
import ctypes
import os
import sys

ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
while True:
    p, st = os.wait()
    if p == pid:
        sys.exit(os.waitstatus_to_exitcode(st))
