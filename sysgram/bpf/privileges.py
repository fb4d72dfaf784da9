"""Whether this process may load and attach BPF tracing programs."""

from __future__ import annotations

import os
from pathlib import Path

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def effective_capabilities() -> int:
    """The CapEff bit mask of this process (0 when it cannot be read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def can_trace() -> bool:
    """Root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN, which implies both)."""
    if os.geteuid() == 0:
        return True
    caps = effective_capabilities()
    has = lambda cap: bool(caps & (1 << cap))  # noqa: E731
    return has(CAP_SYS_ADMIN) or (has(CAP_BPF) and has(CAP_PERFMON))


PRIVILEGE_FIX = "run it as root (sudo) or grant CAP_BPF and CAP_PERFMON"
