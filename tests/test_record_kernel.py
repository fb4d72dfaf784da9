"""`sysgram record` end to end: attached line, dataset contents, SIGTERM, kill -9, bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import start_recorder

from sysgram.datasets import Dataset
from sysgram.syscalls import table

SYSGRAM = [sys.executable, "-m", "sysgram"]
GETPPID, BEGIN, END = (table().number(n) for n in ("getppid", "getsid", "getpgid"))


def pattern_traces(dataset: Dataset) -> list:
    return [t for t in dataset.threads if (t.ids == BEGIN).any()]


def bracketed(ids: np.ndarray) -> list[int]:
    return ids[int(np.flatnonzero(ids == BEGIN)[0]) + 1:int(np.flatnonzero(ids == END)[0])].tolist()


@pytest.mark.kernel
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_record_writes_every_thread_and_stops_cleanly_on_a_signal(build_workload, tmp_path,
                                                                  stop_signal):
    exe = build_workload("pattern")
    out = tmp_path / "rec"
    recorder = start_recorder("--proc", exe.name, "--out", str(out))
    subprocess.run([exe, "3", "23", "1", "0"], check=True)
    time.sleep(0.5)
    recorder.send_signal(stop_signal)
    _, err = recorder.communicate(timeout=20)
    assert recorder.returncode == 0, err
    assert f"stopped by {stop_signal.name}" in err and "recorded " in err
    dataset = Dataset.open(out)
    assert not dataset.warnings
    collector = dataset.meta["collector"]             # the kernel's loss counters, kept
    assert collector["lost"] == 0 and collector["threads_seen"] >= 5
    assert dataset.meta["target"]["comm"] == exe.name
    traces = pattern_traces(dataset)
    assert len(traces) == 4
    for trace in traces:
        assert bracketed(trace.ids) == [GETPPID] * 23
        assert trace.comm == exe.name and trace.exe == str(exe) and trace.exe_sha256
        assert trace.end_ns is not None and trace.lost == 0


@pytest.mark.kernel
def test_record_duration_ends_it_and_a_long_name_is_cut_with_a_warning(tmp_path):
    long_name = "a-name-longer-than-fifteen"
    recorder = subprocess.Popen([*SYSGRAM, "record", "--proc", long_name, "--duration", "1s",
                                 "--out", str(tmp_path / "rec")], stderr=subprocess.PIPE,
                                text=True)
    _, err = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, err
    assert "first 15 bytes" in err
    assert f"no process is named '{long_name[:15]}' yet" in err
    assert Dataset.open(tmp_path / "rec").meta["target"]["comm"] == long_name[:15]


@pytest.mark.kernel
def test_kill_9_of_the_recorder_leaves_a_readable_dataset(build_workload, tmp_path):
    exe = build_workload("pattern")
    out = tmp_path / "rec"
    recorder = start_recorder("--proc", exe.name, "--out", str(out))
    subprocess.run([exe, "2", "23", "0", "0"], check=True)
    time.sleep(1.5)                               # older than ~1 s must have reached the disk
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait(timeout=10)
    dataset = Dataset.open(out)
    traces = pattern_traces(dataset)
    assert len(traces) == 2
    assert all(bracketed(t.ids) == [GETPPID] * 23 for t in traces)


def test_record_refuses_a_non_empty_foreign_directory(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    result = subprocess.run([*SYSGRAM, "record", "--proc", "x", "--out", str(out),
                             "--duration", "1s"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "not empty" in result.stderr and "Traceback" not in result.stderr
    assert (out / "precious.txt").read_text() == "keep me"


def test_record_rejects_a_bad_duration_and_a_missing_exe(tmp_path):
    for args, words in ((["--duration", "soon"], "not a duration"),
                        (["--exe", str(tmp_path / "nope")], "is not a file")):
        result = subprocess.run([*SYSGRAM, "record", "--proc", "x", *args], capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 2 and words in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.kernel
def test_record_stops_cleanly_when_the_disk_is_full(build_workload, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        exe = build_workload("spin")
        recorder = start_recorder("--proc", exe.name, "--out", str(small / "rec"))
        subprocess.run([exe, "300000"], check=True, capture_output=True)
        _, err = recorder.communicate(timeout=30)
        assert recorder.returncode == 2, err
        assert "full" in err and "Traceback" not in err
        dataset = Dataset.open(small / "rec")     # still readable
        assert dataset.meta.get("status") == "failed"
    finally:
        subprocess.run(["umount", str(small)], check=False)



@pytest.mark.kernel
def test_record_without_privileges_says_so_in_one_sentence(tmp_path):
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         sys.executable, "-m", "sysgram", "record", "--proc", "x", "--out",
         str(tmp_path / "rec")],
        capture_output=True, text=True, timeout=60, cwd="/",
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin"},
    )
    assert result.returncode == 2, result.stderr
    assert "privileges" in result.stderr and "root" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr   # that sentence only


@pytest.fixture
def cgroup_dir():
    """A cgroup v2 directory of the test's own (removed at the end)."""
    base = Path("/sys/fs/cgroup/unified")
    if not (base / "cgroup.procs").exists():
        base = Path("/sys/fs/cgroup")
    if not (base / "cgroup.procs").exists():
        pytest.skip("no cgroup v2 hierarchy to make a test cgroup in")
    path = base / f"sysgram-test-{os.getpid()}"
    path.mkdir()
    yield path
    for _ in range(50):                    # its processes are gone once they are reaped
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.1)


@pytest.mark.kernel
def test_record_two_binaries_into_one_dataset_limited_to_a_cgroup(build_workload, tmp_path,
                                                                  cgroup_dir):
    a, b = build_workload("pattern"), build_workload("pattern")
    inside_a, outside_a, inside_b = (
        subprocess.Popen([str(exe), "2", "13", "0", "1"], stdin=subprocess.PIPE)
        for exe in (a, a, b))
    try:
        for proc in (inside_a, inside_b):
            (cgroup_dir / "cgroup.procs").write_text(str(proc.pid))
        out = tmp_path / "rec"
        recorder = start_recorder("--proc", a.name, "--proc", b.name, "--cgroup",
                                  str(cgroup_dir), "--out", str(out))
        for proc in (inside_a, outside_a, inside_b):
            proc.communicate(b"go\n", timeout=10)
        # Started after attaching: the kernel checks the subtree at the exec.
        subprocess.run([str(a), "1", "7", "0", "0"], check=True)
        late = subprocess.Popen(["sh", "-c", f"echo $$ > {cgroup_dir}/cgroup.procs && "
                                 f"exec {a} 1 7 0 0"])
        assert late.wait(timeout=10) == 0
        time.sleep(0.5)
        recorder.send_signal(signal.SIGTERM)
        _, err = recorder.communicate(timeout=20)
    finally:
        for proc in (inside_a, outside_a, inside_b):
            proc.kill()
            proc.wait()
    assert recorder.returncode == 0, err
    dataset = Dataset.open(out)
    assert dataset.meta["target"]["comms"] == [a.name, b.name]
    traces = pattern_traces(dataset)
    assert sorted((t.pid, t.target) for t in traces) == sorted(
        [(inside_a.pid, a.name)] * 2 + [(inside_b.pid, b.name)] * 2 + [(late.pid, a.name)])
    cgroup = "/" + cgroup_dir.name
    seeded = [t for t in traces if t.pid != late.pid]
    assert {t.cgroup for t in seeded} == {cgroup} and {t.container for t in traces} == {None}
    for trace in traces:
        assert bracketed(trace.ids) == [GETPPID] * (7 if trace.pid == late.pid else 13)
    # Outside the subtree: one running before (a seed), one exec'd after.
    assert dataset.meta["collector"]["dropped_cgroup"] == 2
