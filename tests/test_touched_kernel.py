"""What a target touched, read in the kernel: files, peers and programs, once each, exact."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest
from helpers import collect_items

from sysgram import syscalls
from sysgram.collector import TargetSpec, Touched, TouchedGap
from sysgram.collector.items import Peer
from sysgram.sanitize import for_terminal

pytestmark = pytest.mark.kernel

HOSTILE = ["plain", "new\nline", "esc\x1b[31m", os.fsdecode(b"\xff\xfe")]


def run_touch(build_workload, tmp_path, *, comm: str | None = None) -> tuple[list, dict, str]:
    """tests/workloads/touch.c under the collector; (items, ports, comm)."""
    binary = build_workload("touch", comm)
    sock = tmp_path / "listener.sock"
    box: dict = {}

    def action() -> None:
        proc = subprocess.Popen([str(binary), str(tmp_path), str(sock)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, _ = proc.communicate(b"go\n", timeout=30)
        assert proc.returncode == 0
        _, p4, p6 = out.split()
        box.update(tcp4=int(p4), tcp6=int(p6))

    items, stats = collect_items(TargetSpec(binary.name), action)
    assert stats.lost_touched == 0
    assert not [i for i in items if isinstance(i, TouchedGap)]
    return [i for i in items if isinstance(i, Touched)], box, str(sock)


def test_every_file_peer_and_program_arrives_once_with_its_values(build_workload, tmp_path):
    touched, ports, sock = run_touch(build_workload, tmp_path)
    opens = Counter(t.path for t in touched if t.kind == "open")
    for name in HOSTILE:
        assert opens[f"{tmp_path}/{name}"] == 1, opens
    assert {t.open_flags for t in touched if t.kind == "open" and t.path.endswith("/plain")} \
        == {os.O_CREAT | os.O_WRONLY}

    def net(kind: str) -> list[tuple]:
        return sorted((t.peer.family, t.peer.address, t.protocol) + (
            (t.peer.port,) if kind != "accept" else ())
            for t in touched if t.kind == kind and t.peer is not None)

    assert net("connect") == sorted([("ipv4", "127.0.0.1", "tcp", ports["tcp4"]),
                                     ("ipv6", "::1", "tcp", ports["tcp6"]),
                                     ("unix", sock, "unix-stream", 0)])
    assert net("bind") == sorted([("ipv4", "127.0.0.1", "tcp", 0), ("ipv6", "::1", "tcp", 0),
                                  ("unix", sock, "unix-stream", 0)])
    assert net("accept") == sorted([("ipv4", "127.0.0.1", "tcp"), ("ipv6", "::1", "tcp")])
    accepts = [t for t in touched if t.kind == "accept"]
    assert len(accepts) == 3 and all(t.result >= 0 for t in accepts)   # unix: no address asked
    assert all(t.result == 0 for t in touched if t.kind == "connect")
    assert [(t.peer, t.protocol) for t in touched if t.kind == "send"] \
        == [(Peer("ipv4", "127.0.0.1", 9), "udp")]
    execs = [t for t in touched if t.kind == "exec"]
    assert [(t.path, t.argv, t.more_args, t.result) for t in execs] \
        == [("/bin/true", ("true", "", "a2", "a3"), True, 0)]


def test_hostile_paths_are_kept_faithfully_and_printed_escaped(build_workload, tmp_path):
    touched, _, _ = run_touch(build_workload, tmp_path)
    paths = [t for t in touched if t.kind == "open" and t.path.startswith(str(tmp_path))]
    by_name = {os.fsencode(t.path)[len(os.fsencode(str(tmp_path))) + 1:]: t for t in paths}
    assert b"\xff\xfe" in by_name and b"new\nline" in by_name and b"esc\x1b[31m" in by_name
    long = [t for t in paths if t.path.endswith("LLLL")]
    assert len(long) == 1 and long[0].cut and len(os.fsencode(long[0].path)) == 255
    assert not any(t.cut for t in paths if t is not long[0])
    shown = [for_terminal(t.path, limit=None) for t in paths]
    assert all("\n" not in s and "\x1b" not in s for s in shown)
    assert f"{tmp_path}/new\\x0aline" in shown and f"{tmp_path}/esc\\x1b[31m" in shown


def test_the_other_spellings_of_open_send_and_exec_arrive_with_their_values(build_workload,
                                                                           tmp_path):
    """open(2), openat2(2), sendmsg(2) and execveat(2): their arguments sit in other
    registers (or in a struct) than openat's, sendto's and execve's."""
    binary = build_workload("touch_variants")
    box: dict = {}

    def action() -> None:
        out = subprocess.run([str(binary), str(tmp_path)], input=b"go\n", check=True,
                             capture_output=True, timeout=30).stdout
        box["openat2"] = out.split() == [b"openat2", b"1"]

    items, stats = collect_items(TargetSpec(binary.name), action)
    assert stats.lost_touched == 0
    touched = [i for i in items if isinstance(i, Touched)]
    name = syscalls.table().name
    opens = {(name(t.syscall), t.path, t.open_flags) for t in touched if t.kind == "open"}
    assert ("open", f"{tmp_path}/legacy", os.O_CREAT | os.O_WRONLY) in opens
    if box["openat2"]:
        assert ("openat2", f"{tmp_path}/two", os.O_RDONLY | os.O_CLOEXEC) in opens
    assert [(name(t.syscall), t.peer, t.protocol) for t in touched if t.kind == "send"] \
        == [("sendmsg", Peer("ipv4", "127.0.0.1", 9), "udp")]
    assert [(name(t.syscall), t.path, t.dirfd, t.argv, t.result)
            for t in touched if t.kind == "exec"] \
        == [("execveat", "/bin/true", -100, ("true", "v1"), 0)]


def test_an_untargeted_process_sends_no_touched_records(build_workload, tmp_path):
    other = build_workload("touch")
    items, stats = collect_items(TargetSpec("sgnobodyhere"), lambda: subprocess.run(
        [str(other), str(tmp_path), str(tmp_path / "s")], input=b"go\n", check=True,
        capture_output=True, timeout=30))
    assert not [i for i in items if isinstance(i, Touched)] and stats.touched == 0


def test_a_recording_keeps_what_was_touched_and_info_lists_it(build_workload, tmp_path):
    from sysgram.commands.datasets import format_summary
    from sysgram.commands.record import write_items
    from sysgram.datasets import Dataset, DatasetWriter

    binary = build_workload("touch")
    items, _ = collect_items(TargetSpec(binary.name), lambda: subprocess.run(
        [str(binary), str(tmp_path), str(tmp_path / "l.sock")], input=b"go\n", check=True,
        capture_output=True, timeout=30))
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as writer:
        write_items(writer, items)
    dataset = Dataset.open(tmp_path / "ds")
    paths = [t["path"] for t in dataset.touched if t["kind"] == "open"]
    assert paths.count(f"{tmp_path}/{HOSTILE[3]}") == 1          # non-UTF-8, faithful
    assert [t["argv"] for t in dataset.touched if t["kind"] == "exec"] \
        == [["true", "", "a2", "a3"]]
    lines = "\n".join(format_summary(dataset.summary(top=50)))
    assert "touched " in lines and "/bin/true" in lines and "\\x0a" in lines
    assert "\n" not in "".join(line for line in lines.splitlines())


def test_record_train_then_new_files_and_peers_of_a_second_run_are_flagged(build_workload,
                                                                          tmp_path):
    """sysgram record -> train --from -> the sets flag what only the second run touched."""
    import signal
    import sys
    import time

    from helpers import start_recorder

    from sysgram.collector.touched import touched_records
    from sysgram.models.store import ProfileStore
    from sysgram.models.touched import cut_key, path_template

    binary = build_workload("touch")
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    recorder = start_recorder("--proc", binary.name, "--out", str(tmp_path / "rec"))
    for _ in range(80):          # enough windows for the n-gram profile trained beside
        subprocess.run([str(binary), str(first), str(first / "l.sock")], input=b"go\n",
                       check=True, capture_output=True, timeout=30)
    time.sleep(0.5)
    recorder.send_signal(signal.SIGINT)
    _, err = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, err
    assert "touched records (files, programs, peers): " in err and ", lost 0" in err
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    train = subprocess.run([sys.executable, "-m", "sysgram", "train", "--proc", binary.name,
                            "--from", str(tmp_path / "rec"), "--store", str(store)],
                           capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert "learned programs 1" in train.stdout
    sets = ProfileStore(store).load(binary.name).touched

    items, _ = collect_items(TargetSpec(binary.name), lambda: subprocess.run(
        [str(binary), str(second), str(second / "l.sock")], input=b"go\n", check=True,
        capture_output=True, timeout=30))
    new = {(name, key) for name, key, _ in sets.new_items(touched_records(items))}
    files = {key for name, key in new if name == "files"}
    names = ("plain", "new\nline", "esc\x1b[31m", "\udcff\udcfe")
    assert files == {path_template(f"{second}/{n}") for n in names} | {
        cut_key(f"{second}/{'L' * (255 - len(str(second)) - 1)}")}   # cut at 255 bytes: a
    # key of its own, which no learned dir/* can match
    programs = {key for name, key in new if name == "programs"}
    assert programs == set()                                  # /bin/true was learned
    peers = {key for name, key in new if name in ("peers", "listens")}
    # The listeners' ports are ephemeral (new each run); the unix socket moved; UDP to :9,
    # accepts (any client) and binds to port 0 were learned.
    tcp = [k for k in peers if k.startswith("connect tcp")]
    assert 1 <= len(tcp) <= 2 and all(k.startswith("connect tcp loopback:") for k in tcp)
    sock = path_template(f"{second}/l.sock")
    assert f"unix-stream {sock}" in peers and f"connect unix-stream {sock}" in peers
    assert not any(k.startswith(("accept", "send")) for k in peers)

    # The same through `sysgram watch --json`: touched alerts name the second run's files.
    third = tmp_path / "c"
    third.mkdir()
    watch = subprocess.Popen([sys.executable, "-m", "sysgram", "watch", "--proc", binary.name,
                              "--store", str(store), "--json", "--duration", "6s"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = iter(watch.stderr.readline, "")
        assert any(line.strip() == "attached" for line in lines), "watch never attached"
        subprocess.run([str(binary), str(third), str(third / "l.sock")], input=b"go\n",
                       check=True, capture_output=True, timeout=30)
        out, err = watch.communicate(timeout=60)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    # One file alert per process tree and period; the other new files are counted, by key,
    # in the period's repeat.
    alerted = [r["new"]["key"] for r in records if r.get("scope") == "touched"
               and r["kind"] == "alert" and r["new"]["set"] == "files"]
    folded = {k[len("files "):] for r in records if r.get("scope") == "touched"
              and r["kind"] == "repeat" for k in r["keys"] if k.startswith("files ")}
    assert len(alerted) == 1
    flagged = set(alerted) | folded
    assert flagged == {path_template(f"{third}/{n}") for n in names} | {
        cut_key(f"{third}/{'L' * (255 - len(str(third)) - 1)}")}
    assert all(r["new_syscalls"] == [] for r in records if r.get("scope") == "touched")
    assert "touched records outside the learned sets; 0 touched records lost" in err


def test_repeated_opens_are_folded_and_every_one_is_counted(build_workload, tmp_path):
    """5,000 opens of one file: each arrives or is counted as a folded repeat, exactly."""
    loop, target = build_workload("openloop"), tmp_path / "same-file"
    target.write_text("x")
    items, stats = collect_items(TargetSpec(loop.name), lambda: subprocess.run(
        [str(loop), "5000", str(target)], check=True, capture_output=True, timeout=60))
    assert stats.lost_touched == 0
    delivered = [i for i in items if isinstance(i, Touched) and i.path == str(target)]
    assert 1 <= len(delivered) <= 5          # once a second at most: the loop takes < 1 s
    assert len(delivered) + stats.touched_repeats == 5000
