"""numpy mirrors of the kernel ABI in sysgram/bpf/sysgram.h, and the sizes passed to it.

The sizes live here and reach the C side as -D flags, so both sides always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BATCH_IDS = 4096           # syscall ids per per-CPU batch (power of two)
BATCH_RUNS = 32            # runs per batch (power of two); a full run table flushes
MAX_REQUESTS = 1024        # mark/unmark request queue (power of two)
EVENTS_PAGES = 2048        # 8 MiB: ~930 full batches (3.8 M events), ~1 s at full rate
LOSSES_PAGES = 64
LIFE_PAGES = 1024          # 4 MiB: ~13,000 fork/exec/exit records per drain interval
COMM_LEN = 16
FILENAME_LEN = 256

LIFE_FORK, LIFE_EXEC, LIFE_EXIT = 1, 2, 3
REQ_MARK, REQ_UNMARK = 1, 2
REQ_PID_MASK = 0x3FFFFFFF

BATCH_HDR = np.dtype(
    [("seq", "<u8"), ("cpu", "<u4"), ("n_ids", "<u4"), ("n_runs", "<u4"), ("last_tid", "<u4")]
)
RUN = np.dtype([("ts", "<u8"), ("tid", "<u4"), ("tgid", "<u4"), ("start", "<u4"), ("pad", "<u4")])
LOSS = np.dtype([("hdr", BATCH_HDR), ("runs", RUN, (BATCH_RUNS,))])
BATCH = np.dtype([("hdr", BATCH_HDR), ("runs", RUN, (BATCH_RUNS,)), ("ids", "<u2", (BATCH_IDS,))])
LIFE = np.dtype(
    [
        ("ts", "<u8"),
        ("kind", "<u4"),
        ("tid", "<u4"),
        ("tgid", "<u4"),
        ("other", "<u4"),
        ("group_dead", "<u4"),
        ("pad", "<u4"),
        ("comm", f"S{COMM_LEN}"),
        ("filename", f"S{FILENAME_LEN}"),
    ]
)
COUNTER_FIELDS = ("lost_events", "lost_batches", "unattributed_events", "lost_lifecycle", "batches")


def pid_words(pid_max: int) -> int:
    """Words of the tracked-tgid bitmap for pids below `pid_max`."""
    return (int(pid_max) + 63) // 64


@dataclass(frozen=True)
class RingPages:
    """Ring buffer sizes in pages (powers of two). Tests shrink them to force losses."""

    events: int = EVENTS_PAGES
    losses: int = LOSSES_PAGES
    life: int = LIFE_PAGES


def cflags(pid_max: int, rings: RingPages | None = None) -> list[str]:
    """The -D flags that size the kernel program like the dtypes above."""
    rings = rings or RingPages()
    return [
        f"-DSG_BATCH_IDS={BATCH_IDS}",
        f"-DSG_BATCH_RUNS={BATCH_RUNS}",
        f"-DSG_PID_WORDS={pid_words(pid_max)}",
        f"-DSG_MAX_REQUESTS={MAX_REQUESTS}",
        f"-DSG_EVENTS_PAGES={rings.events}",
        f"-DSG_LOSSES_PAGES={rings.losses}",
        f"-DSG_LIFE_PAGES={rings.life}",
    ]
