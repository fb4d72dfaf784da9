"""Who each traced thread is: /proc snapshots taken at first sight, lifecycle fallbacks.

A thread is snapshotted as soon as the collector first sees it (its ThreadStart waits
for the watermark); a process already gone from /proc is described from its fork and
exec records instead. Everything about a thread is freed when its exit is released, so
memory stays bounded however many threads come and go.

Each process also has an owner: the id of the target it belongs to, as the kernel's
lifecycle records (fork, exec) and the collector's seeds say, else as the kernel's
`owners` map says when first asked.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from sysgram.collector import procinfo
from sysgram.collector.cgroups import container_of
from sysgram.collector.items import ThreadExit, ThreadStart


@dataclass
class _Thread:
    pid: int
    start: ThreadStart | None = None     # snapshot, emitted before the thread's first item
    emitted: bool = False


class ThreadBook:
    """Per-thread and per-process facts, from first sight to the released exit."""

    def __init__(self, *, target_name: Callable[[int], str | None] = lambda _id: None,
                 kernel_owner: Callable[[int], int] = lambda _pid: 0) -> None:
        self._target_name = target_name
        self._kernel_owner = kernel_owner
        self._owner: dict[int, int] = {}             # pid (or thread id) -> target id
        self._threads: dict[int, _Thread] = {}
        self._procs: dict[int, procinfo.ProcessInfo] = {}
        self._parent: dict[int, int] = {}            # child pid (or thread id) -> parent tgid
        self._exec_info: dict[int, tuple[str, str]] = {}   # tgid -> (filename, comm)
        self._exit_comm: dict[int, str] = {}
        self._hashes = procinfo.ExeHashes()
        self.live_threads: set[int] = set()
        self.live_processes: set[int] = set()
        self.threads_seen = 0
        self.processes_seen = 0

    # -- lifecycle records, as they arrive -------------------------------------------
    def on_fork(self, child: int, parent_tgid: int, target: int) -> None:
        self._parent[child] = parent_tgid
        self.set_owner(child, target)

    def on_exec(self, tid: int, tgid: int, filename: str, comm: str, target: int) -> None:
        self._exec_info[tgid] = (filename, comm)
        self.set_owner(tgid, target)
        self.snapshot(tid, tgid, refresh=True)

    def on_exit_record(self, tid: int, comm: str) -> None:
        self._exit_comm[tid] = comm

    def set_owner(self, pid: int, target: int) -> None:
        if target:
            self._owner[pid] = target

    def owner(self, tgid: int) -> int:
        """The process's target id (0: unknown), asking the kernel once if no record said."""
        if tgid not in self._owner:
            self.set_owner(tgid, self._kernel_owner(tgid))
        return self._owner.get(tgid, 0)

    def processes_of(self, target: int) -> list[int]:
        """Processes (and thread ids) owned by a target: seeded, snapshotted or released."""
        return [pid for pid, owner in self._owner.items() if owner == target]

    def note_process(self, tgid: int) -> None:
        """Snapshot a process now (a seed: it may be gone by the time its events arrive)."""
        self._process(tgid, refresh=False)

    def target_of(self, tgid: int) -> str | None:
        return self._target_name(self.owner(tgid))

    # -- first sight -----------------------------------------------------------------
    def knows(self, tid: int) -> bool:
        return tid in self._threads

    def knows_process(self, tgid: int) -> bool:
        return tgid in self._procs

    def snapshot(self, tid: int, tgid: int, refresh: bool = False) -> None:
        """What /proc says about a thread, taken as soon as the thread is first seen."""
        if tid in self._threads and not refresh:
            return
        proc = self._process(tgid, refresh)
        comm = procinfo.read_comm(tgid, tid) or self._exit_comm.get(tid) or proc.comm
        state = self._threads.get(tid) or _Thread(pid=tgid)
        if not state.emitted:
            container = container_of(proc.cgroup)
            state.start = ThreadStart(
                tid=tid, pid=tgid, ppid=proc.ppid, comm=comm, exe=proc.exe,
                exe_sha256=proc.exe_sha256, ts_ns=0, cgroup=proc.cgroup,
                container=f"{container.runtime}://{container.id}" if container else None)
        self._threads[tid] = state

    def _process(self, tgid: int, refresh: bool) -> procinfo.ProcessInfo:
        if refresh or tgid not in self._procs:
            if tgid not in self._procs:
                self.processes_seen += 1
            info = procinfo.process_info(tgid, self._hashes)
            if info is None or info.exe is None:
                # Gone, or exiting (its exe link goes before its comm): fork/exec records.
                # An exiting process's /proc cgroup is no longer where it ran (a zombie
                # reads `/` on every hierarchy): the one it started in is its parent's.
                fallback = self._process_from_life(tgid)
                info = fallback if info is None else procinfo.ProcessInfo(
                    pid=tgid, ppid=info.ppid if info.ppid is not None else fallback.ppid,
                    comm=info.comm, exe=fallback.exe, exe_sha256=fallback.exe_sha256,
                    cgroup=fallback.cgroup)
            parent = self._parent.get(tgid)
            if parent is not None and parent != tgid and info.ppid != parent:
                # The fork record's parent, not /proc's: a child whose parent has already
                # exited (a double fork, `cmd &` in a shell that ended) is init's child
                # by the time /proc is read, and the tree an alert names would break.
                info = dataclasses.replace(info, ppid=parent)
            self._procs[tgid] = info
        return self._procs[tgid]

    def _process_from_life(self, tgid: int) -> procinfo.ProcessInfo:
        """A process already gone from /proc: what its fork and exec records said."""
        parent = self._parent.get(tgid)
        if parent is None and tgid in self._procs:   # an exec keeps the parent a seed read
            parent = self._procs[tgid].ppid
        inherited = self._procs.get(parent) if parent is not None else None
        # A child starts in its parent's cgroup (it may be moved, but rarely at once).
        cgroup = inherited.cgroup if inherited is not None else None
        exec_rec = self._exec_info.get(tgid)
        if exec_rec is not None:
            filename, comm = exec_rec
            return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=comm, exe=filename,
                                        exe_sha256=self._hashes.of_path(filename),
                                        cgroup=cgroup)
        if inherited is not None:     # a forked child runs its parent's executable
            return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=inherited.comm,
                                        exe=inherited.exe, exe_sha256=inherited.exe_sha256,
                                        cgroup=cgroup)
        return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=None, exe=None, exe_sha256=None)

    # -- release ---------------------------------------------------------------------
    def start_item(self, tid: int, tgid: int, ts_ns: int) -> ThreadStart | None:
        """The thread's ThreadStart if it is not out yet (it precedes the thread's items)."""
        state = self._threads.setdefault(tid, _Thread(pid=tgid))
        if state.emitted:
            return None
        # Started while traced: a fork record named it, or it is a process that exec'd
        # into a watched binary (its fork, by an untraced parent, was not followed).
        created = tid in self._parent or (tid == tgid and tgid in self._exec_info)
        snap = state.start or ThreadStart(tid=tid, pid=tgid, ppid=self._parent.get(tgid),
                                          comm=self._exit_comm.get(tid), exe=None,
                                          exe_sha256=None, ts_ns=0)
        state.emitted, state.start = True, None
        self.live_threads.add(tid)
        self.live_processes.add(tgid)
        self.threads_seen += 1
        return ThreadStart(tid=tid, pid=tgid, ppid=snap.ppid, comm=snap.comm, exe=snap.exe,
                           exe_sha256=snap.exe_sha256, ts_ns=ts_ns, target=self.target_of(tgid),
                           cgroup=snap.cgroup, container=snap.container, created=created,
                           watched_parent=self._watched_parent(tgid, snap.ppid))

    def _watched_parent(self, tgid: int, ppid: int | None) -> bool:
        """Whether the process's parent is one of the same target's processes.

        A fork record names a traced parent (its owner may be gone with it: a parent that
        exited first still counts, unless an exec took the child to another target); a
        process found running (or exec'd from outside) asks who owns its parent, which the
        seeds and the kernel's map know even when the parent has made no call yet (an
        idle master's workers).
        """
        mine = self.owner(tgid)
        forked_from = self._parent.get(tgid)
        if forked_from is not None and forked_from != tgid:
            return self.owner(forked_from) in (0, mine)
        if ppid is None or ppid == tgid or not mine:
            return False
        return self.owner(ppid) == mine

    def exit_item(self, tid: int, tgid: int, ts_ns: int, group_dead: bool) -> ThreadExit | None:
        """The thread's ThreadExit (None if it never started), and forget the thread."""
        state = self._threads.pop(tid, None)
        self._exit_comm.pop(tid, None)
        self.live_threads.discard(tid)
        if tid != tgid:
            self._parent.pop(tid, None)    # fork records name threads as children too
            self._owner.pop(tid, None)
        if group_dead:
            self.live_processes.discard(tgid)
            self._owner.pop(tgid, None)
            self._parent.pop(tgid, None)
            self._procs.pop(tgid, None)
            self._exec_info.pop(tgid, None)
        if state is None or not state.emitted:
            return None
        return ThreadExit(tid=tid, pid=tgid, ts_ns=ts_ns, group_dead=group_dead)

    def forget_process(self, tgid: int) -> None:
        """Free everything about a process that stopped being traced (no exits will come)."""
        for tid in [tid for tid, state in self._threads.items() if state.pid == tgid]:
            del self._threads[tid]
            self._exit_comm.pop(tid, None)
            self._owner.pop(tid, None)
            self._parent.pop(tid, None)
            self.live_threads.discard(tid)
        self.live_processes.discard(tgid)
        for table in (self._owner, self._parent, self._procs, self._exec_info):
            table.pop(tgid, None)

    def held(self) -> dict[str, int]:
        """Sizes of what is held (tests check that it returns to zero)."""
        return {"threads": len(self._threads), "processes": len(self._procs),
                "parents": len(self._parent), "execs": len(self._exec_info),
                "exit_comms": len(self._exit_comm), "owners": len(self._owner)}
