"""--exe, --cgroup and removed targets: processes the kernel tracks that are not targets.

The kernel matches by name (and, with --cgroup, checks the cgroup subtree at exec).
User space checks each new process (seeded, exec'd into a target's name, or first seen)
against that target's executable (device and inode) when it has one, asks the kernel to
unmark the ones that differ, and discards whatever they sent meanwhile. Seeds (processes
running before the target was added) are checked against the cgroup subtree here.
Processes of a target removed while running are dropped the same way.
"""

from __future__ import annotations

import numpy as np

from sysgram.collector import abi, cgroups, procinfo
from sysgram.collector.decode import Runs
from sysgram.collector.items import TargetSpec
from sysgram.collector.targets import TargetSet


class ProcessFilter:
    def __init__(self, targets: TargetSet, subtree: cgroups.Subtree | None = None) -> None:
        self.targets = targets
        self.subtree = subtree
        self.dropped_count = 0
        self.dropped_cgroup = 0           # seeds outside the --cgroup subtree
        self.requests: list[tuple[int, int, int]] = []   # (REQ_UNMARK, tgid, 0) for the kernel
        self._dropped: set[int] = set()
        self._forget_after_round: list[int] = []

    def _refined(self, comm: str | None) -> TargetSpec | None:
        """The target named `comm` if it is refined by an executable path."""
        target_id = self.targets.id_of(comm) if comm else None
        spec = self.targets.spec_of(target_id) if target_id is not None else None
        return spec if spec is not None and spec.exe is not None else None

    def is_dropped(self, tgid: int) -> bool:
        return tgid in self._dropped

    def _outside(self, pid: int) -> bool:
        """Whether the process runs outside the cgroup subtree watching is limited to."""
        if self.subtree is None:
            return False
        return not cgroups.is_within(procinfo.read_unified_cgroup(pid), self.subtree.path)

    def accepts_seed(self, pid: int, spec: TargetSpec) -> bool:
        if self._outside(pid):
            self.dropped_cgroup += 1
            return False
        if spec.exe is None or procinfo.same_executable(pid, spec.exe):
            return True
        self.dropped_count += 1
        return False

    def on_exec(self, tgid: int, comm: str, filename: str) -> None:
        """A process exec'd: into a name with the right file, or not a target."""
        target_id = self.targets.id_of(comm)
        spec = self.targets.spec_of(target_id) if target_id is not None else None
        if spec is None:
            return    # a target's descendant running something else stays a target
        if spec.exe is None or procinfo.same_executable(tgid, spec.exe, fallback_path=filename):
            self._dropped.discard(tgid)    # (a reused pid of a dropped process)
        else:
            self.drop(tgid)

    def on_fork(self, child: int) -> None:
        """A target's child is a target, even under the pid of a dropped process."""
        self._dropped.discard(child)

    def check_new_process(self, tgid: int) -> bool:
        """First sight of a process: keep it unless it has a name but another file."""
        spec = self._refined(procinfo.read_comm(tgid))
        if spec is not None and not procinfo.same_executable(tgid, spec.exe):
            self.drop(tgid)
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

    def drop(self, tgid: int, *, wrong_exe: bool = True) -> None:
        """Not a target: unmark it in the kernel and discard what it sends meanwhile."""
        if tgid not in self._dropped:
            self._dropped.add(tgid)
            self.dropped_count += int(wrong_exe)
            self.requests.append((abi.REQ_UNMARK, tgid, 0))
