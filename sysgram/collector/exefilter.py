"""--exe: processes with the target's name that run another executable are not targets.

The kernel matches by name only. User space checks each new process (seeded, exec'd
into the name, or first seen) against the executable's device and inode, asks the
kernel to unmark the ones that differ, and discards whatever they sent meanwhile.
"""

from __future__ import annotations

import numpy as np

from sysgram.collector import abi, procinfo
from sysgram.collector.decode import Runs
from sysgram.collector.items import TargetSpec


class ExeFilter:
    def __init__(self, target: TargetSpec) -> None:
        self.target = target
        self.dropped_count = 0
        self.requests: list[tuple[int, int]] = []   # (REQ_UNMARK, tgid) for the kernel
        self._dropped: set[int] = set()
        self._forget_after_round: list[int] = []

    @property
    def active(self) -> bool:
        return self.target.exe is not None

    def is_dropped(self, tgid: int) -> bool:
        return tgid in self._dropped

    def accepts_seed(self, pid: int) -> bool:
        if not self.active or procinfo.same_executable(pid, self.target.exe):
            return True
        self.dropped_count += 1
        return False

    def on_exec(self, tgid: int, comm: str, filename: str) -> None:
        """A process exec'd: into the name with the right file, or not a target."""
        if not self.active or comm != self.target.comm:
            return    # a target's descendant running something else stays a target
        if procinfo.same_executable(tgid, self.target.exe, fallback_path=filename):
            self._dropped.discard(tgid)
        else:
            self._drop(tgid)

    def check_new_process(self, tgid: int) -> bool:
        """First sight of a process: keep it unless it has the name but another file."""
        if (self.active and procinfo.read_comm(tgid) == self.target.comm
                and not procinfo.same_executable(tgid, self.target.exe)):
            self._drop(tgid)
            return False
        return True

    def on_group_exit(self, tgid: int) -> None:
        """A dropped process is gone: forget it once this round's runs are filtered."""
        if tgid in self._dropped:
            self._forget_after_round.append(tgid)

    def filter(self, runs: Runs) -> Runs:
        if not self._dropped or not len(runs):
            return runs
        dropped = np.fromiter(self._dropped, np.uint32)
        return runs.take(np.flatnonzero(~np.isin(runs.tgid, dropped)))

    def end_round(self) -> None:
        self._dropped.difference_update(self._forget_after_round)
        self._forget_after_round.clear()

    def _drop(self, tgid: int) -> None:
        if tgid not in self._dropped:
            self._dropped.add(tgid)
            self.dropped_count += 1
            self.requests.append((abi.REQ_UNMARK, tgid))
