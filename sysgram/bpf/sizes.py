"""Sizes and constants shared with the kernel program, and the -D flags that pass them.

They live here, beside sysgram.bpf.c, and reach the C side as -D flags, so both sides
always agree; `sysgram.collector.abi` builds its numpy mirrors from them. Nothing here
imports numpy: a command can start compiling the program before the rest loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BATCH_IDS = 4096           # syscall ids per per-CPU batch (power of two)
BATCH_RUNS = 32            # runs per batch (power of two); a full run table flushes
MAX_REQUESTS = 1024        # mark/unmark request queue (power of two)
EVENTS_PAGES = 2048        # 8 MiB: ~930 full batches (3.8 M events), ~1 s at full rate
LOSSES_PAGES = 64
LIFE_PAGES = 1024          # 4 MiB: ~13,000 fork/exec/exit records per drain interval
MAX_TARGETS = 64           # target comms one program watches at once
MAX_OWNERS = 65536         # tracked processes and threads with a target id
COMM_LEN = 16
FILENAME_LEN = 256

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
    ]
