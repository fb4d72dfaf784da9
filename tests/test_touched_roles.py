"""Roles in the touched sets: what a binary's root process (a listener, a master) touched
itself is learned apart from what its children touched."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sysgram.collector.items import ThreadEvents, ThreadStart, Touched
from sysgram.collector.threads import ThreadBook
from sysgram.datasets import Dataset, DatasetWriter
from sysgram.models.touched import (
    FirstSeen,
    TouchedSets,
    extend_sets,
    fit_touched,
    process_roles,
    touched_meta,
    with_roles,
)
from sysgram.watch.alerts import to_json_line
from sysgram.watch.touched import TouchedWatch, touched_text

S = 1_000_000_000
OPENAT = 257


def opened(path: str, role: str | None, ts: int = 1) -> dict:
    record = {"kind": "open", "path": path, "ts_ns": ts}
    return {**record, "role": role} if role else record


ACCEPT = {"kind": "accept", "protocol": "tcp", "result": 5, "ts_ns": 1, "role": "root"}


def listener_sets() -> TouchedSets:
    """sshd as it trains: the listener only accepts; each connection's child reads
    /etc/shadow and /etc/passwd."""
    train = [ACCEPT, opened("/etc/shadow", "child"), opened("/etc/passwd", "child"),
             opened("/etc/passwd", "root", ts=2)]
    return TouchedSets(networks=()).fit(train)


def test_the_root_touching_what_only_children_touched_is_new_for_it():
    sets = listener_sets()
    assert sets.root_sets_["files"] == {"/etc/passwd"}
    assert sets.root_sets_["peers"] == {"accept tcp any-client"}
    shadow = ("files", "/etc/shadow")
    assert sets.known(shadow, opened("/etc/shadow", "child"))
    assert not sets.known(shadow, opened("/etc/shadow", "root"))
    assert sets.known_to_children(shadow, opened("/etc/shadow", "root"))
    # Unknown role: judged against the binary's sets.
    assert sets.known(shadow, opened("/etc/shadow", None))
    assert sets.known(("files", "/etc/passwd"), opened("/etc/passwd", "root"))
    # Never seen anywhere: new for every role, and not "known to children".
    assert [k for _, k, _ in sets.new_items([opened("/etc/sudoers", "child")])] == ["/etc/sudoers"]
    assert not sets.known_to_children(("files", "/etc/sudoers"), opened("/etc/sudoers", "root"))


def test_without_roles_in_training_the_root_is_judged_by_the_binarys_sets():
    sets = TouchedSets(networks=()).fit([opened("/etc/shadow", None)])
    assert sets.root_sets_ is None
    assert sets.known(("files", "/etc/shadow"), opened("/etc/shadow", "root"))
    assert touched_meta(sets)["root_sets"] is None
    del sets.root_sets_                              # a profile from before roles
    assert sets.known(("files", "/etc/shadow"), opened("/etc/shadow", "root"))


def test_a_web_root_the_children_serve_collapses_for_the_root_where_it_served_too():
    train = [opened(f"/srv/www/page-{chr(97 + k // 26)}{chr(97 + k % 26)}.html", "child")
             for k in range(40)]
    train += [opened("/srv/www/page-ad.html", "root"), opened("/var/log/x.log", "root")]
    sets = TouchedSets(networks=(), collapse_after=32).fit(train)
    assert "/srv/www/*" in sets.sets_["files"]
    assert sets.root_sets_["files"] == {"/srv/www/*", "/var/log/x.log"}
    assert sets.known(("files", "/srv/www/other.html"), opened("/srv/www/other.html", "root"))
    # A directory the root never touched stays the children's.
    child_only = TouchedSets(networks=(), collapse_after=32).fit(
        [*train[:40], opened("/var/log/x.log", "root")])
    assert child_only.root_sets_["files"] == {"/var/log/x.log"}


def test_first_seen_keeps_the_roots_record_of_a_key_a_child_touched_first():
    first_seen = FirstSeen(())
    first_seen.add([opened("/etc/passwd", "child", ts=1), opened("/etc/passwd", "root", ts=2),
                    opened("/etc/shadow", "child", ts=3)])
    assert len(first_seen.first_records()) == 3      # passwd twice: the child's and the root's
    sets = fit_touched(first_seen)
    assert sets.root_sets_["files"] == {"/etc/passwd"}
    assert sets.sets_["files"] == {"/etc/passwd", "/etc/shadow"}
    assert sets.records_ == 3
    assert sum(sets.novelty_curve_) == 2              # keys, each counted once


def test_append_merges_root_sets_and_a_roleless_training_vouches_for_the_root():
    old = listener_sets()
    new = TouchedSets(networks=()).fit([opened("/run/x.pid", "root"), opened("/tmp/a", "child")])
    merged = extend_sets(new, old)
    assert merged.root_sets_["files"] == {"/etc/passwd", "/run/x.pid"}
    roleless = TouchedSets(networks=()).fit([opened("/var/cache/y", None)])
    merged = extend_sets(roleless, listener_sets())
    assert "/var/cache/y" in merged.root_sets_["files"]
    assert "/etc/shadow" not in merged.root_sets_["files"]


def test_roles_come_from_thread_starts_and_label_records_by_pid():
    starts = [ThreadStart(10, 10, 1, "srv", None, None, 0, watched_parent=False),
              ThreadStart(11, 11, 10, "srv", None, None, 0, watched_parent=True),
              ThreadStart(12, 12, 10, "srv", None, None, 0)]           # unknown
    roles = process_roles(starts)
    assert roles == {10: "root", 11: "child"}
    records = list(with_roles([{"pid": 10}, {"pid": 11}, {"pid": 12}], roles))
    assert [r.get("role") for r in records] == ["root", "child", None]


def test_a_watched_root_touching_a_childrens_file_alerts_and_says_so():
    from sysgram.watch.alerts import ProcessContext

    watch = TouchedWatch(listener_sets(), "sshd")
    root = ProcessContext(10, 1, "sshd", "/usr/sbin/sshd", None, 10, role="root")
    child = ProcessContext(11, 10, "sshd", "/usr/sbin/sshd", None, 10, role="child")
    item = Touched(tid=11, pid=11, ts_ns=1 * S, kind="open", syscall=OPENAT, path="/etc/shadow")
    watch.observe(item, child)
    assert watch.take_alerts() == []
    item = Touched(tid=10, pid=10, ts_ns=2 * S, kind="open", syscall=OPENAT, path="/etc/shadow")
    watch.observe(item, root)
    alerts = watch.take_alerts()
    assert [(a.set_name, a.key, a.children_only) for a in alerts] == [
        ("files", "/etc/shadow", True)]
    record = json.loads(to_json_line(alerts[0].record()))
    assert record["new"]["role"] == "root" and record["new"]["learned_from"] == "children"
    assert "only its child processes touched it" in touched_text(alerts[0])


def test_a_recording_keeps_whether_a_parent_was_watched(tmp_path):
    with DatasetWriter(tmp_path / "d", arch="x86_64", source="record") as writer:
        writer.start_thread(10, pid=10, comm="srv", watched_parent=False)
        writer.start_thread(11, pid=11, ppid=10, comm="srv", watched_parent=True)
        writer.start_thread(12, pid=12, comm="srv")
        for tid in (10, 11, 12):
            writer.append(tid, np.array([0, 1], np.uint16))
    dataset = Dataset.open(tmp_path / "d")
    assert [t.watched_parent for t in dataset.threads] == [False, True, None]
    assert process_roles(dataset.threads) == {10: "root", 11: "child"}


@pytest.mark.parametrize("parent_owner, expected", [(1, True), (2, False), (0, False)])
def test_a_process_found_running_is_a_child_when_its_parent_is_the_same_targets(
        parent_owner, expected):
    owners = {os.getpid(): 1, os.getppid(): parent_owner}
    book = ThreadBook(kernel_owner=lambda pid: owners.get(pid, 0))
    book.snapshot(os.getpid(), os.getpid())          # /proc says our parent
    start = book.start_item(os.getpid(), os.getpid(), 5)
    assert start.ppid == os.getppid() and start.watched_parent is expected


def test_a_forked_child_is_a_child_even_when_its_parent_is_gone():
    book = ThreadBook(kernel_owner=lambda pid: 0)
    book.set_owner(100, 1)
    book.on_fork(200, 100, 1)
    assert book.start_item(200, 200, 5).watched_parent is True
    book.on_fork(300, 999, 1)                        # the parent's owner is unknown now
    assert book.start_item(300, 300, 5).watched_parent is True
    # Exec'd from the other target's child into this one: the first process of its binary.
    book.set_owner(100, 2)
    assert book.start_item(200, 200, 5) is None      # one start per thread
    book.on_fork(400, 100, 1)
    assert book.start_item(400, 400, 5).watched_parent is False


def test_thread_events_do_not_change_roles():
    assert process_roles([ThreadEvents(1, 1, np.zeros(0, np.uint16), 0)]) == {}
