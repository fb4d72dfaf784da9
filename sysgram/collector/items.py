"""What the collector hands out: targets, drain items and statistics (docs/design.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TargetSpec:
    comm: str                 # kernel form, <= 15 bytes
    exe: str | None = None    # optional executable path refinement


@dataclass(frozen=True)
class ThreadStart:
    tid: int
    pid: int
    ppid: int | None
    comm: str | None
    exe: str | None
    exe_sha256: str | None
    ts_ns: int
    target: str | None = None  # the watched binary (TargetSpec.comm) the process belongs to
    cgroup: str | None = None  # the process's cgroup path (/proc/PID/cgroup)
    container: str | None = None  # "RUNTIME://ID" when the cgroup is a container's


@dataclass(frozen=True)
class ThreadEvents:
    tid: int
    pid: int
    ids: np.ndarray           # uint16 syscall numbers, in the thread's order
    ts_ns: int                # time of the first event


@dataclass(frozen=True)
class Gap:
    tid: int
    pid: int
    lost: int
    ts_ns: int


@dataclass(frozen=True)
class Exec:
    tid: int
    pid: int
    filename: str
    comm: str
    ts_ns: int
    target: str | None = None  # the process's target after the exec (it may change)


@dataclass(frozen=True)
class ThreadExit:
    tid: int
    pid: int
    ts_ns: int
    group_dead: bool


DrainItem = ThreadStart | ThreadEvents | Gap | Exec | ThreadExit


@dataclass
class Drain:
    items: list[DrainItem] = field(default_factory=list)
    watermark_ns: int = 0     # everything that happened before this is in this or an earlier drain

    @property
    def events(self) -> int:
        return sum(len(i.ids) for i in self.items if isinstance(i, ThreadEvents))


@dataclass(frozen=True)
class CollectorStats:
    events: int               # syscall ids delivered to user space
    batches: int              # batches received
    lost_events: int          # ids in batches the kernel could not hand over
    lost_unattributed: int    # of those, events whose threads are unknown
    lost_lifecycle: int       # fork/exec/exit records the kernel could not hand over
    recursion_misses: int     # program runs the kernel skipped (re-entry on a CPU)
    dropped_exe: int          # processes with the name but another executable (--exe)
    processes: int            # tracked processes alive now
    threads: int              # tracked threads alive now
    processes_seen: int
    threads_seen: int
    cpus_unvisited: int = 0   # CPUs the flusher may not run on: their batches wait until full
    lost_owners: int = 0      # processes the kernel could not give a target id (map full)
    targets: int = 1          # binaries watched now
    dropped_cgroup: int = 0   # processes outside the --cgroup subtree skipped

    @property
    def lost(self) -> int:
        """Every event known to be missing, whatever the cause."""
        return self.lost_events + self.recursion_misses

    @property
    def unattributed(self) -> int:
        """Events known missing that no thread can be named for: any open stream may miss
        some (consumers cut every stream when this rises)."""
        return self.lost_unattributed + self.recursion_misses

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["lost"] = self.lost
        return out
