"""One collector, many binaries: target ids in the kernel, added and removed while running."""

from __future__ import annotations

import subprocess
import time

import pytest

from sysgram.collector import Collector, Exec, TargetSpec, ThreadEvents, ThreadStart
from sysgram.syscalls import table

pytestmark = pytest.mark.kernel

GETPPID = table().number("getppid")


def _run(exe, *args: str) -> None:
    subprocess.run([str(exe), *args], check=True, timeout=30)


def _drain(collector: Collector, settle: float = 0.4) -> list:
    items: list = []
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        items += collector.poll(0.05).items
    return items


def _getppids_by_target(items: list) -> dict[str | None, int]:
    """getppid calls per target, attributed through each thread's ThreadStart."""
    target_of = {i.tid: i.target for i in items if isinstance(i, ThreadStart)}
    counts: dict[str | None, int] = {}
    for item in items:
        if isinstance(item, ThreadEvents):
            target = target_of[item.tid]
            counts[target] = counts.get(target, 0) + int((item.ids == GETPPID).sum())
    return counts


def test_two_binaries_one_collector_every_thread_carries_its_target(build_workload):
    a, b = build_workload("pattern"), build_workload("pattern")
    with Collector([TargetSpec(a.name), TargetSpec(b.name)]) as collector:
        _run(a, "2", "31", "1", "0")      # 2 threads + a forked child: 3 x 31
        _run(b, "1", "17", "0", "0")
        items = _drain(collector)
        stats = collector.stats()
    starts = [i for i in items if isinstance(i, ThreadStart)]
    assert {s.target for s in starts} == {a.name, b.name}
    for start in starts:
        assert start.target == start.comm          # neither execs: target is its own name
    assert _getppids_by_target(items) == {a.name: 3 * 31, b.name: 17}
    assert stats.targets == 2 and stats.lost == 0 and stats.lost_owners == 0


def test_exec_into_another_target_changes_the_process_target(build_workload):
    a, b = build_workload("pattern"), build_workload("pattern")
    with Collector([TargetSpec(a.name), TargetSpec(b.name)]) as collector:
        _run(a, "1", "5", "0", "0", str(b), "1", "7", "0", "0")
        items = _drain(collector)
    execs = [i for i in items if isinstance(i, Exec)]
    # The exec that started it (into a), then its exec into b: one pid, two targets.
    assert [e.target for e in execs] == [a.name, b.name]
    assert execs[0].pid == execs[1].pid


def test_a_target_added_while_running_is_seeded_and_followed(build_workload):
    a, b = build_workload("pattern"), build_workload("pattern")
    waiting = subprocess.Popen([str(b), "1", "11", "0", "1"], stdin=subprocess.PIPE)
    try:
        with Collector(TargetSpec(a.name)) as collector:
            _run(b, "1", "13", "0", "0")              # not a target yet
            before = _drain(collector, 0.3)
            collector.add_target(TargetSpec(b.name))
            _drain(collector, 0.2)                    # the seed is applied
            waiting.communicate(b"go\n", timeout=10)  # seeded: was running before the add
            _run(b, "1", "13", "0", "0")              # exec'd after the add
            after = _drain(collector)
    finally:
        waiting.kill()
    assert _getppids_by_target(before) == {}
    assert _getppids_by_target(after) == {b.name: 11 + 13}
    assert {i.pid for i in after if isinstance(i, ThreadStart)} >= {waiting.pid}


def test_a_removed_target_is_dropped_and_the_others_keep_going(build_workload):
    a, b = build_workload("pattern"), build_workload("pattern")
    waiting = subprocess.Popen([str(b), "1", "11", "0", "1"], stdin=subprocess.PIPE)
    try:
        with Collector([TargetSpec(a.name), TargetSpec(b.name)]) as collector:
            time.sleep(0.2)
            collector.remove_target(b.name)
            _drain(collector, 0.2)                    # the unmark is applied
            waiting.communicate(b"go\n", timeout=10)
            _run(b, "1", "13", "0", "0")
            _run(a, "1", "19", "0", "0")
            items = _drain(collector)
            held = collector.held()
            stats = collector.stats()
    finally:
        waiting.kill()
    assert _getppids_by_target(items) == {a.name: 19}
    assert held["owners"] == 0 and held["threads"] == 0
    assert stats.targets == 1

