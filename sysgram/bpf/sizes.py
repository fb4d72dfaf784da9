"""Sizes and constants shared with the kernel program, and the -D flags that pass them.

They live here, beside sysgram.bpf.c, and reach the C side as -D flags, so both sides
always agree; `sysgram.collector.abi` builds its numpy mirrors from them. Nothing here
imports numpy: a command can start compiling the program before the rest loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BATCH_IDS = 4096           # syscall ids per per-CPU batch (power of two)
# Runs per batch (power of two); a full run table flushes. A server switching threads
# often (nginx: ~13 calls a run) fills 32 runs long before 4,096 ids, and each batch
# costs user space a callback and a decode. 128 runs cut nginx's batches 3.4x; the run
# table (3 KiB) is handed over whole with every batch, so more would tax every other
# workload's batches for little (benchmarks/README.md, "daemon").
BATCH_RUNS = 128
MAX_REQUESTS = 1024        # mark/unmark request queue (power of two)
EVENTS_PAGES = 2048        # 8 MiB: ~750 full batches (3.1 M events), ~1 s at full rate
LOSSES_PAGES = 128         # 512 KiB: ~170 loss records (3 KiB run tables)
LIFE_PAGES = 1024          # 4 MiB: ~13,000 fork/exec/exit records per drain interval
MAX_TARGETS = 64           # target comms one program watches at once
MAX_OWNERS = 65536         # tracked processes and threads with a target id
COMM_LEN = 16
FILENAME_LEN = 256

TOUCHED_PAGES = 2048       # 8 MiB: ~29,000 open records (288 B) per drain interval
TOUCH_PATH_LEN = 256       # bytes of a path or exec file name kept (with its NUL)
TOUCH_ARG_LEN = 64         # bytes of each argv[i] kept
TOUCH_ARGS = 4             # argv[0..3]
TOUCH_ADDR_LEN = 112       # bytes of a sockaddr kept (sockaddr_un is 110)
TOUCH_LOST_THREADS = 4096  # threads the per-thread loss table of the touched ring holds
TOUCH_RECENT = 8192        # opens the kernel remembers, to fold repeats (an LRU table)

# The calls whose arguments touched.bpf.c reads: their -D name -> the syscall's name.
TOUCHED_SYSCALLS = {
    "SG_NR_OPEN": "open", "SG_NR_OPENAT": "openat", "SG_NR_OPENAT2": "openat2",
    "SG_NR_EXECVE": "execve", "SG_NR_EXECVEAT": "execveat", "SG_NR_CONNECT": "connect",
    "SG_NR_ACCEPT": "accept", "SG_NR_ACCEPT4": "accept4", "SG_NR_BIND": "bind",
    "SG_NR_SENDTO": "sendto", "SG_NR_SENDMSG": "sendmsg", "SG_NR_SOCKET": "socket",
}

LIFE_FORK, LIFE_EXEC, LIFE_EXIT = 1, 2, 3
REQ_MARK, REQ_UNMARK = 1, 2
REQ_OP_SHIFT, REQ_TARGET_SHIFT = 56, 32
REQ_TARGET_MASK, REQ_PID_MASK = 0xFFFFFF, 0xFFFFFFFF


@dataclass(frozen=True)
class RingPages:
    """Ring buffer sizes in pages (powers of two). Tests shrink them to force losses."""

    events: int = EVENTS_PAGES
    losses: int = LOSSES_PAGES
    life: int = LIFE_PAGES
    touched: int = TOUCHED_PAGES


def pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 4 * 1024 * 1024     # the kernel's upper bound


def pid_words(pid_limit: int) -> int:
    """Words of the tracked-tgid bitmap for pids below `pid_limit`."""
    return (int(pid_limit) + 63) // 64


def cflags(pid_limit: int, rings: RingPages | None = None) -> list[str]:
    """The -D flags that size the kernel program like the dtypes in collector/abi.py."""
    rings = rings or RingPages()
    return [
        f"-DSG_BATCH_IDS={BATCH_IDS}",
        f"-DSG_BATCH_RUNS={BATCH_RUNS}",
        f"-DSG_PID_WORDS={pid_words(pid_limit)}",
        f"-DSG_MAX_REQUESTS={MAX_REQUESTS}",
        f"-DSG_EVENTS_PAGES={rings.events}",
        f"-DSG_LOSSES_PAGES={rings.losses}",
        f"-DSG_LIFE_PAGES={rings.life}",
        f"-DSG_MAX_TARGETS={MAX_TARGETS}",
        f"-DSG_MAX_OWNERS={MAX_OWNERS}",
        f"-DSG_TOUCHED_PAGES={rings.touched}",
        f"-DSG_TOUCH_PATH_LEN={TOUCH_PATH_LEN}",
        f"-DSG_TOUCH_ARG_LEN={TOUCH_ARG_LEN}",
        f"-DSG_TOUCH_ARGS={TOUCH_ARGS}",
        f"-DSG_TOUCH_ADDR_LEN={TOUCH_ADDR_LEN}",
        f"-DSG_TOUCH_LOST_THREADS={TOUCH_LOST_THREADS}",
        f"-DSG_TOUCH_RECENT={TOUCH_RECENT}",
        *(f"-D{flag}={nr}" for flag, nr in touched_syscall_numbers().items()),
    ]


def touched_syscall_numbers() -> dict[str, int]:
    """The host table's numbers of the calls touched.bpf.c reads (-1: not on this host).

    Asked of libseccomp directly (sysgram.syscalls would pull numpy in before the early
    compile could start); without libseccomp nothing is read (every number -1).
    """
    try:
        import seccomp
    except ImportError:
        return dict.fromkeys(TOUCHED_SYSCALLS, -1)
    numbers = {}
    for flag, name in TOUCHED_SYSCALLS.items():
        try:
            numbers[flag] = int(seccomp.resolve_syscall(seccomp.Arch.NATIVE, name))
        except (ValueError, RuntimeError):
            numbers[flag] = -1
    return numbers
