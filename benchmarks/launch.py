"""Run a command as a fresh fork of this small process; write its wall time and rusage.

    python -S benchmarks/launch.py RESULT.json COMMAND [ARGS...]

Why: Linux counts the memory a process had before `exec` in its peak RSS (exec keeps
the old address space's high-water mark in ru_maxrss), and Python's subprocess starts
children with vfork, whose address space is the parent's. A tap started straight from
the benchmark process (which holds the simulator's rendered files) would report the
benchmark's own peak. Forked from this ~10 MB process instead, the child's peak is
max(about 10 MB, the tap's real peak). Standard library only, run without `site`.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    result_path, command = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: become the command
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(
            {
                "returncode": code,
                "wall_seconds": wall,
                "max_rss_kib": usage.ru_maxrss,
                "user_seconds": usage.ru_utime,
                "system_seconds": usage.ru_stime,
            },
            out,
        )
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
