"""Touched sets through the CLI: train learns them, profiles show lists them, allow extends."""

from __future__ import annotations

import json

import numpy as np

from sysgram.cli import main
from sysgram.datasets import DatasetWriter
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.store import STORE_ENV, ProfileStore

MINUTE = 60_000_000_000


def _record(path, threads=12, length=1500, seed=0, touched=()):
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(30), np.random.default_rng(1))
    with DatasetWriter(path, arch="x86_64", source="synthetic", target={"comm": "demo"}) as w:
        for i in range(threads):
            w.start_thread(100 + i, pid=100, comm="demo")
            w.append(100 + i, sample_chain(chain, length, rng))
            for ts, fields in touched:
                w.touched(100 + i, 100, ts + i, **fields)
            w.end_thread(100 + i)


NORMAL = [
    (1, {"kind": "open", "syscall": 257, "path": "/proc/4242/stat"}),
    (2, {"kind": "open", "syscall": 257, "path": "/etc/hosts"}),
    (2 * MINUTE, {"kind": "exec", "syscall": 59, "path": "/bin/true", "result": 0}),
    (2 * MINUTE, {"kind": "connect", "syscall": 42, "result": 0, "protocol": "tcp",
                  "peer": {"family": "ipv4", "address": "127.0.0.1", "port": 5432}}),
]


def test_train_learns_the_sets_show_lists_them_and_allow_extends_them(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "normal", touched=NORMAL)
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "normal")]) == 0
    out = capsys.readouterr().out
    assert "learned programs 1, files 2, peers 1, listens 0" in out
    assert "2 2 0 new items per minute" in out        # the last minute brought nothing
    assert "files     2 0 0" in out and "programs  0 1 0" in out    # and per set
    assert main(["profiles", "show", "demo"]) == 0
    shown = capsys.readouterr().out
    assert "    /proc/<pid>/stat" in shown and "connect tcp loopback:5432" in shown
    assert "  files (2, new per minute 2 0 0)" in shown

    sets = ProfileStore().load("demo").touched
    live = [{"kind": "open", "path": "/etc/passwd"},
            {"kind": "connect", "result": 0, "protocol": "tcp",
             "peer": {"family": "ipv4", "address": "10.9.9.9", "port": 22}},
            {"kind": "open", "path": "/proc/7/stat"}]
    assert [k for _, k, _ in sets.new_items(live)] == ["/etc/passwd", "connect tcp 10.9.9.9:22"]

    assert main(["profiles", "allow", "demo", "--file", "/etc/pass*",
                 "--peer", "10.9.9.9:22"]) == 0
    capsys.readouterr()
    assert ProfileStore().load("demo").touched.new_items(live) == []
    assert main(["profiles", "show", "demo", "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["touched"]["allow"] == {"files": ["/etc/pass*"], "peers": ["10.9.9.9:22"],
                                          "execs": []}
    assert main(["profiles", "allow", "demo", "--peer", "not-an-address"]) == 2
    assert "not ADDR[:PORT]" in capsys.readouterr().err
    assert main(["profiles", "allow", "demo"]) == 2


def test_a_profile_trained_without_touched_records_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "plain")
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "plain")]) == 0
    assert "touched    nothing recorded" in capsys.readouterr().out
    assert main(["profiles", "allow", "demo", "--exec", "/bin/sh"]) == 2
    assert "no touched sets" in capsys.readouterr().err


def test_train_learns_what_the_root_process_touched_itself_and_show_says_it(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(30), np.random.default_rng(1))
    with DatasetWriter(tmp_path / "tree", arch="x86_64", source="record",
                       target={"comm": "demo"}) as w:
        for i in range(12):                  # a listener's threads, then its children's
            pid, child = (100, False) if i < 6 else (200 + i, True)
            w.start_thread(pid + i if not child else pid, pid=pid, comm="demo",
                           ppid=100 if child else 1, watched_parent=child)
            w.append(pid + i if not child else pid, sample_chain(chain, 1500, rng))
            path = "/etc/shadow" if child else "/etc/hosts"
            w.touched(pid + i if not child else pid, pid, i + 1, kind="open", syscall=257,
                      path=path)
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "tree")]) == 0
    capsys.readouterr()
    assert main(["profiles", "show", "demo"]) == 0
    shown = capsys.readouterr().out
    assert "the root process (the first: a master, a listener) itself touched 1 of them" in shown
    assert "    files /etc/hosts" in shown
    sets = ProfileStore().load("demo").touched
    shadow = {"kind": "open", "path": "/etc/shadow"}
    assert sets.new_items([{**shadow, "role": "child"}]) == []
    assert [k for _, k, _ in sets.new_items([{**shadow, "role": "root"}])] == ["/etc/shadow"]
