"""numpy mirrors of the kernel ABI in sysgram/bpf/sysgram.h (sizes from sysgram.bpf.sizes).

The sizes are defined beside the C program and reach it as -D flags, so both sides
always agree; they are re-exported here so the collector has one ABI module.
"""

from __future__ import annotations

import numpy as np

from sysgram.bpf.sizes import (  # noqa: F401  (re-exported: the collector's one ABI module)
    BATCH_IDS,
    BATCH_RUNS,
    COMM_LEN,
    EVENTS_PAGES,
    FILENAME_LEN,
    LIFE_EXEC,
    LIFE_EXIT,
    LIFE_FORK,
    LIFE_PAGES,
    LOSSES_PAGES,
    MAX_OWNERS,
    MAX_REQUESTS,
    MAX_TARGETS,
    REQ_MARK,
    REQ_OP_SHIFT,
    REQ_PID_MASK,
    REQ_TARGET_MASK,
    REQ_TARGET_SHIFT,
    REQ_UNMARK,
    RingPages,
    cflags,
    pid_words,
)

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
        ("target", "<u4"),
        ("comm", f"S{COMM_LEN}"),
        ("filename", f"S{FILENAME_LEN}"),
    ]
)
COUNTER_FIELDS = ("lost_events", "lost_batches", "unattributed_events", "lost_lifecycle", "batches",
                  "lost_owners", "skipped_cgroup")


def request_word(op: int, pid: int, target: int = 0) -> int:
    """One mark/unmark request as the kernel reads it (layout in sysgram.h)."""
    return ((op << REQ_OP_SHIFT) | ((target & REQ_TARGET_MASK) << REQ_TARGET_SHIFT)
            | (pid & REQ_PID_MASK))

