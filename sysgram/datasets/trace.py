"""One thread's syscall stream with who it was: the unit every later stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgram.syscalls import host_arch


def _no_ids() -> np.ndarray:
    return np.zeros(0, dtype=np.uint16)


def _no_gaps() -> np.ndarray:
    return np.zeros((0, 2), dtype=np.int64)


@dataclass
class ThreadTrace:
    """A thread's syscall numbers in order, its identity, and where events were lost.

    `gaps` rows are [position in `ids`, events lost there]: the loss happened between
    ids[position - 1] and ids[position]. Imported corpora carry `label` ("normal" /
    "attack"), `family` (e.g. "Adduser") and `split` ("train" / "validation" / "attack");
    `source` is the file a trace was imported from, relative to the corpus root.
    """

    tid: int
    pid: int
    ppid: int | None = None
    comm: str | None = None
    exe: str | None = None
    exe_sha256: str | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    ids: np.ndarray = field(default_factory=_no_ids)
    gaps: np.ndarray = field(default_factory=_no_gaps)
    label: str | None = None
    family: str | None = None
    split: str | None = None
    arch: str = field(default_factory=host_arch)
    source: str | None = None
    target: str | None = None     # recorded: the watched binary the process belonged to
    cgroup: str | None = None     # recorded: the process's cgroup path
    container: str | None = None  # recorded: "RUNTIME://ID" when that cgroup is a container's
    created: bool | None = None   # recorded: started while recording (else already running)
    # recorded: its parent process belonged to the same watched binary (a worker, a
    # connection handler) or not (the binary's first process: a master, a listener)
    watched_parent: bool | None = None

    @property
    def lost(self) -> int:
        """Events known to be missing from this trace."""
        return int(self.gaps[:, 1].sum()) if len(self.gaps) else 0

    def __len__(self) -> int:
        return len(self.ids)
