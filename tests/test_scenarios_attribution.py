"""The scenario suite's bookkeeping (no kernel): an alert counts as a detection of an
attack only from the attacked process tree, and only after that attack started."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scenarios.attribution import (
    AttackSpan,
    descends_from,
    sort_alerts,
    upper_rate_95,
)

S = 1_000_000_000
ATTACKS = [AttackSpan("spawn", target_pid=100, begins_ns=50 * S, ends_ns=60 * S,
                      effective_ns=51 * S),
           AttackSpan("in-thread", target_pid=100, begins_ns=60 * S, ends_ns=70 * S)]
# 100 is the attacked worker; 200 another worker; 1 the master of both.
PARENTS = {100: 1, 200: 1, 300: 100, 301: 300}


def alert(id_: int, pid: int, ts_s: float, ppid: int | None = None) -> dict:
    return {"kind": "alert", "id": id_, "pid": pid, "ppid": ppid, "ts_ns": int(ts_s * S)}


def test_descendants_of_the_attacked_process_count_and_others_do_not():
    assert descends_from(301, 100, PARENTS)       # the shell's child
    assert descends_from(100, 100, PARENTS)
    assert not descends_from(200, 100, PARENTS)   # a sibling worker
    assert not descends_from(1, 100, PARENTS)     # the parent of the attacked process
    assert not descends_from(5, 100, {5: 6, 6: 5})  # a cycle of reused pids ends


def test_an_alert_from_another_tree_during_the_attack_is_no_detection():
    v = sort_alerts([alert(1, 200, 52)], ATTACKS, PARENTS)
    assert not v.detections["spawn"].caught
    assert len(v.stray) == 1 and not v.false_alarms


def test_an_alert_from_the_parent_of_the_attacked_process_is_no_detection():
    v = sort_alerts([alert(1, 1, 52)], ATTACKS, PARENTS)
    assert not v.detections["spawn"].caught and len(v.stray) == 1


def test_an_alert_before_the_attack_is_a_false_alarm_not_a_detection():
    v = sort_alerts([alert(1, 100, 49.9)], ATTACKS, PARENTS)
    assert not any(d.caught for d in v.detections.values())
    assert len(v.false_alarms) == 1


def test_an_alert_goes_to_the_attack_whose_span_holds_it():
    v = sort_alerts([alert(1, 100, 65)], ATTACKS, PARENTS)
    assert not v.detections["spawn"].caught
    assert v.detections["in-thread"].caught


def test_a_descendant_known_only_from_its_alert_counts_and_latency_is_from_the_start():
    # 400 never appeared in the recording; its alert names its parent, the shell 300.
    records = [alert(7, 400, 52.0, ppid=300), {"kind": "repeat", "id": 8, "pid": 400,
                                               "ts_ns": 53 * S}]
    v = sort_alerts(records, ATTACKS, PARENTS, seen_at_ns={7: 51 * S + S // 4})
    d = v.detections["spawn"]
    assert d.caught and d.alerts == 1
    assert d.seconds_to_alert == pytest.approx(0.25)


def test_the_rate_bound_follows_the_rule_of_three_and_grows_with_alarms():
    assert upper_rate_95(0, 3600) == pytest.approx(3.0, rel=0.01)
    assert upper_rate_95(2, 3600) > upper_rate_95(1, 3600) > upper_rate_95(0, 3600)


def test_the_recording_counts_only_the_attacked_trees_calls_within_the_attack(tmp_path):
    from benchmarks.scenarios.bookkeeping import read_attack_recording
    from sysgram.datasets import DatasetWriter
    from sysgram.syscalls import table

    nr = table("x86_64").number
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        for tid, pid, ppid in ((100, 100, 1), (200, 200, 1), (300, 300, 100)):
            w.start_thread(tid, pid=pid, ppid=ppid, start_ns=1)
        for tid, ts_s, name, n in ((100, 40, "read", 5),      # before the attack
                                   (100, 55, "connect", 1),   # the attacked worker
                                   (200, 55, "accept4", 7),   # a sibling worker
                                   (300, 56, "execve", 2),    # the shell it started
                                   (300, 75, "write", 3)):    # after the attacks
            w.append(tid, np.full(n, nr(name), dtype=np.uint16), ts_ns=int(ts_s * S))
            w.flush()
    recording = read_attack_recording(tmp_path / "ds", ATTACKS[:1])
    spawn = recording.activity["spawn"]
    assert spawn.events == 3
    assert dict(spawn.syscalls) == {"connect": 1, "execve": 2}
    assert spawn.processes == {100, 300}
    assert recording.parents[300] == 100
