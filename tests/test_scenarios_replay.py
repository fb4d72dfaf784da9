"""The suite's offline replay judges touched records as watch does (by role, once each)."""

from __future__ import annotations

from types import SimpleNamespace

from benchmarks.scenarios.replay import touched_flagged
from sysgram.models.policy import AlertPolicy, Novelty
from sysgram.models.touched import TouchedSets


def test_touched_records_new_to_the_sets_are_flagged_by_pid_and_time_by_role():
    train = [{"kind": "open", "path": "/etc/srv.conf", "pid": 10, "ts_ns": 1, "role": "root"},
             {"kind": "open", "path": "/etc/shadow", "pid": 11, "ts_ns": 2, "role": "child"}]
    sets = TouchedSets(networks=()).fit(train)
    threads = [SimpleNamespace(pid=10, watched_parent=False),
               SimpleNamespace(pid=11, watched_parent=True)]
    touched = [{"kind": "open", "path": "/etc/srv.conf", "pid": 10, "tid": 10, "ts_ns": 5},
               {"kind": "open", "path": "/etc/shadow", "pid": 11, "tid": 11, "ts_ns": 6},
               # the listener reading what only a child read in training: new for the root
               {"kind": "open", "path": "/etc/shadow", "pid": 10, "tid": 10, "ts_ns": 7},
               {"kind": "open", "path": "/etc/shadow", "pid": 10, "tid": 12, "ts_ns": 8}]
    flagged = touched_flagged(sets, SimpleNamespace(touched=touched, threads=threads))
    assert (flagged.scope, flagged.pid.tolist(), flagged.ts_ns.tolist()) == (
        "touched", [10, 10], [7, 8])
    # Each is an alert whatever the bar: a new item is one on its own.
    policy = AlertPolicy(0.0, min_events=99)
    assert policy.novel_enough(Novelty(flagged.events, flagged.decisive)).all()
