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
    # True: started while traced (its fork/clone or exec record was seen); False: already
    # running when first seen (found in /proc at attach, or its record was lost).
    created: bool | None = None
    # True: its parent process is one of the same target's processes (a worker, a
    # connection handler, a shell it spawned); False: the target's first process (a
    # master, a listener); None: unknown. A process's role, for the touched sets.
    watched_parent: bool | None = None


@dataclass(frozen=True)
class ThreadEvents:
    tid: int
    pid: int
    ids: np.ndarray           # uint16 syscall numbers, in the thread's order
    ts_ns: int                # time of the first event
    # Start of the last run merged into this piece (0: one run, ts_ns): a piece spans a
    # drain, so the windows it completes are stamped by this, not by its first event.
    last_ts_ns: int = 0


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


@dataclass(frozen=True)
class Peer:
    """A socket address: family ("ipv4", "ipv6", "unix"), address text, port (0: none)."""

    family: str
    address: str
    port: int

    def __str__(self) -> str:
        if self.family == "ipv6":
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}" if self.family == "ipv4" else self.address


@dataclass(frozen=True)
class Touched:
    """One call whose arguments the kernel read: a file, a program, a network peer.

    kind: open | exec | connect | accept | bind | send. Paths are faithful text
    (surrogate escapes for non-UTF-8 bytes); `cut` marks one that filled its buffer.
    """

    tid: int
    pid: int
    ts_ns: int
    kind: str
    syscall: int                       # its number in the host table
    path: str | None = None            # open, exec
    dirfd: int | None = None           # open, exec(at): -100 = the working directory
    open_flags: int | None = None      # open
    argv: tuple[str, ...] = ()         # exec: argv[0..3]
    more_args: bool = False            # exec: argv had more entries
    fd: int | None = None              # net calls: the socket
    peer: Peer | None = None           # net calls (accept: the client)
    protocol: str | None = None        # tcp, udp, unix-stream, ...; None = not known
    result: int | None = None          # exec, connect, accept: the call's return value
    cut: bool = False                  # a path or argument filled its buffer
    unreadable: bool = False           # the user memory could not be read


@dataclass(frozen=True)
class TouchedGap:
    """`lost` touched records of a thread that the kernel could not hand over."""

    tid: int
    pid: int
    lost: int
    ts_ns: int


DrainItem = ThreadStart | ThreadEvents | Gap | Exec | ThreadExit | Touched | TouchedGap


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
    touched: int = 0          # touched records (paths, programs, peers) delivered
    lost_touched: int = 0     # touched records the kernel could not hand over
    touched_repeats: int = 0  # opens a thread repeated within the period, folded (not lost)

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
