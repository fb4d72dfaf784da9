"""The collector against the real kernel: exact per-thread streams, lifecycle, ordering."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import defaultdict

import numpy as np
import pytest
from helpers import collect_items

from sysgram.collector import (
    Collector,
    Exec,
    Gap,
    TargetSpec,
    ThreadEvents,
    ThreadExit,
    ThreadStart,
)
from sysgram.collector.abi import RingPages
from sysgram.collector.collector import FLUSH_INTERVAL_S, IDLE_FLUSH_INTERVAL_S
from sysgram.syscalls import table

pytestmark = pytest.mark.kernel

SYS = table()
GETPPID, BEGIN, END = SYS.number("getppid"), SYS.number("getsid"), SYS.number("getpgid")
GETUID, SETAFFINITY = SYS.number("getuid"), SYS.number("sched_setaffinity")


class Recording:
    """Everything a collector delivered, gathered per thread."""

    def __init__(self, items: list) -> None:
        self.items = items
        self.starts = {i.tid: i for i in items if isinstance(i, ThreadStart)}
        self.exits = {i.tid: i for i in items if isinstance(i, ThreadExit)}
        self.execs = [i for i in items if isinstance(i, Exec)]
        parts: dict[int, list[np.ndarray]] = defaultdict(list)
        for item in items:
            if isinstance(item, ThreadEvents):
                parts[item.tid].append(item.ids)
        self.streams = {tid: np.concatenate(p) for tid, p in parts.items()}
        self.pids = {i.pid for i in items if hasattr(i, "pid")}

    def bracketed(self, tid: int) -> np.ndarray:
        """The ids between the workload's begin and end markers."""
        ids = self.streams[tid]
        begin = np.flatnonzero(ids == BEGIN)
        end = np.flatnonzero(ids == END)
        assert len(begin) == 1 and len(end) == 1, f"markers of {tid}: {ids.tolist()}"
        return ids[begin[0] + 1:end[0]]

    def pattern_threads(self) -> list[int]:
        return [tid for tid, ids in self.streams.items() if (ids == BEGIN).any()]


def record_while(comm: str, action, *, settle: float = 0.3, exe: str | None = None,
                 rings: RingPages | None = None) -> tuple:
    """Run `action()` while collecting `comm`; returns (Recording, stats)."""
    items, stats = collect_items(TargetSpec(comm, exe=exe), action, settle=settle, rings=rings)
    return Recording(items), stats


def test_23_getppid_per_thread_and_forked_child_exactly_in_order(build_workload):
    exe = build_workload("pattern")
    rec, stats = record_while(exe.name, lambda: subprocess.run([exe, "3", "23", "1", "0"],
                                                               check=True))
    threads = rec.pattern_threads()
    assert len(threads) == 4                      # 3 threads + the forked child
    for tid in threads:
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23
        assert int((rec.streams[tid] == GETPPID).sum()) == 23
        assert rec.starts[tid].comm == exe.name
        assert rec.exits[tid].tid == tid          # every thread ends after its events
    child = [t for t in threads if rec.starts[t].pid == t]
    assert len(child) == 1 and rec.starts[child[0]].ppid in rec.pids
    # Every thread was started while traced: the process by its exec, the rest by clones.
    assert all(start.created for start in rec.starts.values())
    # The forked child's parent is the binary's; the exec'd process's parent is ours.
    assert {t: rec.starts[t].watched_parent for t in threads} == {
        t: rec.starts[t].pid == child[0] for t in threads}
    assert {rec.starts[t].exe_sha256 for t in threads} != {None}
    assert stats.lost == 0 and stats.lost_unattributed == 0


def test_idle_rounds_slow_down_and_a_target_that_starts_then_loses_nothing(build_workload):
    """Nothing tracked: a round every IDLE_FLUSH_INTERVAL_S. A target that execs then is
    traced from its first call, and rounds keep their full rate while it lives."""
    exe = build_workload("pattern")
    items: list = []
    with Collector(TargetSpec(exe.name)) as collector:
        time.sleep(3 * IDLE_FLUSH_INTERVAL_S)
        assert collector.round_interval == IDLE_FLUSH_INTERVAL_S
        items += collector.poll(0).items
        proc = subprocess.Popen([exe, "2", "23", "0", "2"], stdin=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 5
            while collector.round_interval != FLUSH_INTERVAL_S and time.monotonic() < deadline:
                items += collector.poll(0.05).items
            busy = collector.round_interval
            proc.communicate(b"go\n", timeout=10)
        finally:
            proc.kill()
        deadline = time.monotonic() + 2
        while collector.round_interval != IDLE_FLUSH_INTERVAL_S and time.monotonic() < deadline:
            items += collector.poll(0.05).items
        idle_again = collector.round_interval
        collector.stop()
        items += collector.poll(0).items
        stats = collector.stats()
    assert busy == FLUSH_INTERVAL_S and idle_again == IDLE_FLUSH_INTERVAL_S
    rec = Recording(items)
    assert len(rec.pattern_threads()) == 2
    for tid in rec.pattern_threads():
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23
    assert set(rec.exits) == set(rec.starts) and stats.lost == 0


def test_running_process_is_seeded_from_proc(build_workload):
    exe = build_workload("pattern")
    proc = subprocess.Popen([exe, "3", "23", "0", "1"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.2)                           # it now waits on stdin, already running

        def release() -> None:
            proc.communicate(b"go\n", timeout=10)

        rec, _ = record_while(exe.name, release)
    finally:
        proc.kill()
    assert len(rec.pattern_threads()) == 3
    for tid in rec.pattern_threads():
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23
        assert rec.starts[tid].pid == proc.pid
    # The process was found running; the threads it started once released were seen start.
    assert rec.starts[proc.pid].created is False
    assert all(rec.starts[tid].created for tid in rec.pattern_threads() if tid != proc.pid)


def test_a_child_found_running_under_an_idle_parent_knows_its_parent_is_watched(tmp_path):
    """An nginx master idle in sigsuspend, an sshd child waiting for its peer: the child's
    first call comes before its parent's, and it is still its parent's child."""
    shell = tmp_path / "sgtree"
    shutil.copy("/bin/bash", shell)
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    proc = subprocess.Popen([shell, "-c", f"( read line < {fifo}; exec /bin/true ) & wait"])
    try:
        time.sleep(0.3)                           # the subshell now blocks opening the fifo

        def release() -> None:
            with open(fifo, "w") as f:
                f.write("go\n")
            proc.wait(timeout=10)

        rec, _ = record_while(shell.name, release)
    finally:
        proc.kill()
    parent = rec.starts[proc.pid]
    children = [s for s in rec.starts.values() if s.pid != proc.pid]
    assert parent.watched_parent is False and parent.created is False
    assert len(children) == 1 and children[0].ppid == proc.pid
    assert children[0].watched_parent is True    # though it was found running, then exec'd
    # The child made its first call before the parent left its wait.
    order = [i.pid for i in rec.items if isinstance(i, ThreadStart)]
    assert order.index(children[0].pid) < order.index(proc.pid)


def test_threads_running_before_the_collector_started_are_recorded(build_workload):
    """Threads that existed before attaching are recorded, not only their process's first."""
    exe = build_workload("pattern")
    proc = subprocess.Popen([exe, "3", "23", "0", "2"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.2)                           # three threads now wait at a barrier

        def release() -> None:
            proc.communicate(b"go\n", timeout=10)

        rec, _ = record_while(exe.name, release)
    finally:
        proc.kill()
    threads = rec.pattern_threads()
    assert len(threads) == 3 and proc.pid not in threads
    for tid in threads:
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23
        assert rec.starts[tid].created is False   # running before: no clone was seen


def test_exec_into_name_and_restart_are_recorded_other_names_are_not(build_workload):
    exe = build_workload("pattern")
    other = build_workload("pattern")             # same program, another name
    pids = []

    def run() -> None:
        bystander = subprocess.Popen([other, "2", "23", "0", "0"])
        for _ in range(2):                         # a shell that execs into the name, twice
            sh = subprocess.Popen(["/bin/sh", "-c", f"exec {exe} 1 23 0 0"])
            sh.wait(timeout=10)
            pids.append(sh.pid)
        bystander.wait(timeout=10)
        pids.append(-bystander.pid)

    rec, _ = record_while(exe.name, run)
    assert [e.pid for e in rec.execs] == pids[:2]
    assert all(e.comm == exe.name and e.filename.endswith(exe.name) for e in rec.execs)
    recorded = {rec.starts[t].pid for t in rec.pattern_threads()}
    assert recorded == set(pids[:2])
    assert -pids[2] not in rec.pids                # the other name left no trace
    for tid in rec.pattern_threads():
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23


def test_thread_hopping_cpus_keeps_its_order(build_workload):
    exe = build_workload("hop")
    rounds = 300
    rec, stats = record_while(exe.name, lambda: subprocess.run([exe, str(rounds)], check=True))
    (tid,) = rec.pattern_threads()
    expected = []
    for i in range(rounds):
        expected += [SETAFFINITY] + [GETPPID] * (i % 7 + 1) + [GETUID]
    got = rec.bracketed(tid).tolist()
    assert len(got) == len(expected)
    assert got == expected
    assert stats.lost == 0


def test_exe_refinement_drops_other_binaries_with_the_name(build_workload, tmp_path):
    exe = build_workload("pattern")
    twin_dir = tmp_path / "twin"
    twin_dir.mkdir()
    twin = twin_dir / exe.name                     # same name, another file
    shutil.copy2(exe, twin)

    def run() -> None:
        subprocess.run([twin, "1", "23", "0", "0"], check=True)
        subprocess.run([exe, "1", "23", "0", "0"], check=True)

    rec, stats = record_while(exe.name, run, exe=str(exe))
    pids = {rec.starts[t].pid for t in rec.pattern_threads()}
    assert len(pids) == 1
    assert {rec.starts[t].exe for t in rec.pattern_threads()} == {str(exe)}
    assert stats.dropped_exe == 1


def test_a_target_that_execs_another_program_stays_tracked(build_workload):
    exe = build_workload("pattern")
    successor = build_workload("pattern")          # another name: not a target by itself
    rec, _ = record_while(exe.name, lambda: subprocess.run(
        [exe, "1", "23", "0", "0", successor, "1", "23", "0", "0"], check=True))
    assert [e.comm for e in rec.execs][-1] == successor.name
    threads = rec.pattern_threads()
    assert len(threads) == 2                        # one thread of each program image
    for tid in threads:
        assert rec.bracketed(tid).tolist() == [GETPPID] * 23


def test_a_full_ring_buffer_loses_events_loudly_and_exactly(build_workload):
    """One-page rings: every full batch (8.9 KB) is refused, small partial ones still fit.

    Every refused event is counted, and those whose run tables got through the small
    losses ring are gaps at their place in the thread's stream; nothing vanishes.
    """
    exe = build_workload("spin")
    calls = 200_000
    rec, stats = record_while(exe.name, lambda: subprocess.run(
        [exe, str(calls)], check=True, capture_output=True), rings=RingPages(1, 1, 64))
    gaps = [i for i in rec.items if isinstance(i, Gap)]
    assert stats.lost_events > 0 and gaps
    assert sum(g.lost for g in gaps) + stats.lost_unattributed == stats.lost_events
    # One thread; on a loaded machine every one of its batches may be refused.
    assert len(rec.streams) <= 1
    delivered = sum(int((ids == GETPPID).sum()) for ids in rec.streams.values())
    assert delivered < calls
    # All getppid calls are either delivered or inside the counted losses.
    assert delivered + stats.lost_events >= calls
    assert stats.lost_events <= calls - delivered + 200   # + the loop's few other syscalls


def test_a_fork_storm_is_followed_whole_and_leaves_no_state_behind(build_workload):
    exe = build_workload("victim_forkstorm")
    items: list = []
    with Collector(TargetSpec(exe.name)) as collector:
        out = subprocess.run([exe, "2000", "32"], check=True, capture_output=True, text=True)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            items += collector.poll(0.05).items
        held = collector.held()
        stats = collector.stats()
    assert out.stdout.strip() == "done 2000"
    rec = Recording(items)
    assert len(rec.starts) == 2001 == len(rec.exits)       # the parent and every child
    assert stats.processes_seen == 2001 and stats.threads_seen == 2001
    assert stats.lost == 0 and stats.lost_lifecycle == 0
    assert (stats.processes, stats.threads) == (0, 0)
    assert set(held.values()) == {0}, held


def test_a_thread_that_execs_ends_its_old_id_and_continues_as_the_process(build_workload):
    exe = build_workload("threadexec")
    rec, _ = record_while(exe.name, lambda: subprocess.run([exe, "23"], check=True))
    (pid,) = {rec.starts[t].pid for t in rec.pattern_threads()}
    old_tid = next(t for t in rec.pattern_threads() if t != pid)
    assert rec.bracketed(old_tid).tolist() == [GETPPID] * 23   # before the exec
    assert rec.bracketed(pid).tolist() == [GETPPID] * 23       # the new image, as the leader
    assert old_tid in rec.exits and rec.exits[old_tid].ts_ns <= rec.execs[-1].ts_ns
    assert rec.execs[-1].pid == pid
