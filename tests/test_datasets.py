"""DatasetWriter and Dataset: round trips, metadata, refusals, file modes, crash and disk full."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sysgram.datasets import Dataset, DatasetWriter, DiskFullError, ThreadTrace
from sysgram.datasets import format as fmt
from sysgram.datasets import writer as writer_module
from sysgram.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def write_sample(path: Path) -> dict[int, np.ndarray]:
    """Two processes, three threads, a gap, a note, one thread left running; returns ids."""
    rng = np.random.default_rng(7)
    streams = {tid: rng.integers(0, 450, size=n).astype(np.uint16)
               for tid, n in ((100, 1000), (101, 23), (200, 4097))}
    w = DatasetWriter(path, arch="x86_64", source="record", target={"comm": "demo"},
                      meta={"command": "test"})
    w.start_thread(100, pid=100, ppid=1, comm="demo", exe="/usr/bin/demo",
                   exe_sha256="ab" * 32, start_ns=1_000)
    w.start_thread(101, pid=100, comm="demo", start_ns=1_500)
    w.start_thread(200, pid=200, ppid=100, comm="demo", start_ns=2_000)
    w.append(100, streams[100][:600], ts_ns=1_100)
    w.append(101, streams[101], ts_ns=1_600)
    w.append(200, streams[200][:97].astype(np.int64), ts_ns=2_100)  # any int dtype
    w.flush()
    w.gap(100, 5, ts_ns=3_000)
    w.append(100, streams[100][600:], ts_ns=3_100)
    w.note("exec", tid=200, pid=200, filename="/usr/bin/demo", ts_ns=3_200)
    w.append(200, streams[200][97:], ts_ns=3_300)
    w.end_thread(101, end_ns=4_000)
    w.end_thread(100, end_ns=5_000)
    w.close(stats={"kernel_lost": 5})
    return streams


def by_tid(ds: Dataset) -> dict[int, ThreadTrace]:
    return {t.tid: t for t in ds.threads}


def test_round_trip_keeps_streams_identity_gaps_and_order(tmp_path):
    streams = write_sample(tmp_path / "ds")
    ds = Dataset.open(tmp_path / "ds")
    assert ds.warnings == []
    assert [t.tid for t in ds.threads] == [100, 101, 200]
    threads = by_tid(ds)
    for tid, ids in streams.items():
        assert threads[tid].ids.dtype == np.uint16
        np.testing.assert_array_equal(threads[tid].ids, ids)
    t = threads[100]
    assert (t.pid, t.ppid, t.comm, t.exe, t.exe_sha256) == (100, 1, "demo", "/usr/bin/demo",
                                                            "ab" * 32)
    assert (t.start_ns, t.end_ns, t.arch) == (1_000, 5_000, "x86_64")
    np.testing.assert_array_equal(t.gaps, [[600, 5]])
    assert t.lost == 5
    assert threads[200].end_ns is None  # still running when recording stopped
    assert ds.notes == [{"kind": "exec", "tid": 200, "pid": 200, "filename": "/usr/bin/demo",
                         "ts_ns": 3_200}]


def test_meta_records_host_counts_losses_and_status(tmp_path):
    write_sample(tmp_path / "ds")
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["format"] == "sysgram-dataset" and meta["version"] == 1
    assert meta["status"] == "complete"
    assert meta["kernel"] == os.uname().release and meta["arch"] == "x86_64"
    assert meta["target"] == {"comm": "demo"} and meta["extra"] == {"command": "test"}
    assert meta["counts"]["syscalls"] == 1000 + 23 + 4097
    assert meta["counts"]["threads"] == 3 and meta["counts"]["processes"] == 2
    assert meta["counts"]["bytes"] == (tmp_path / "ds" / "chunks.log").stat().st_size
    assert meta["losses"]["events"] == 5
    assert meta["losses"]["where"] == [{"tid": 100, "pid": 100, "position": 600, "lost": 5,
                                        "ts_ns": 3_000}]
    assert meta["collector"] == {"kernel_lost": 5}
    assert meta["ts_range_ns"] == [1_100, 3_300]


def test_compact_about_two_bytes_per_syscall(tmp_path):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record")
    for tid in range(4):
        w.start_thread(tid + 10, pid=10)
    for _ in range(20):  # 20 flushes of 4 threads x 5000 ids
        for tid in range(4):
            w.append(tid + 10, np.full(5000, 39, dtype=np.uint16))
        w.flush()
    w.close()
    size = (tmp_path / "ds" / "chunks.log").stat().st_size
    assert 2.0 < size / 400_000 < 2.05


def test_summary_counts_names_losses_labels_and_duration(tmp_path):
    write_sample(tmp_path / "ds")
    s = Dataset.open(tmp_path / "ds").summary(top=3)
    assert (s["threads"], s["processes"], s["syscalls"]) == (3, 2, 5120)
    assert s["losses"] == {"events": 5, "gaps": 1, "threads": 1, "share": 5 / 5125}
    assert s["duration_s"] == pytest.approx((5_000 - 1_000) / 1e9)
    assert len(s["top_syscalls"]) == 3
    counts = [t["count"] for t in s["top_syscalls"]]
    assert counts == sorted(counts, reverse=True)
    from sysgram.syscalls import table

    assert all(t["name"] == table("x86_64").name(t["nr"]) for t in s["top_syscalls"])
    assert s["labels"] == {} and s["warnings"] == []


def test_reused_tid_starts_a_new_trace(tmp_path):
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.start_thread(7, pid=7, comm="first")
        w.append(7, np.array([1, 2, 3]))
        w.end_thread(7)
        w.start_thread(7, pid=7, comm="second")
        w.append(7, np.array([4]))
        w.start_thread(7, pid=7, comm="third")  # no end: a new start still splits
        w.append(7, np.array([5, 6]))
    ds = Dataset.open(tmp_path / "ds")
    assert [(t.comm, t.ids.tolist()) for t in ds.threads] == [
        ("first", [1, 2, 3]), ("second", [4]), ("third", [5, 6])]


def test_events_for_an_unannounced_thread_are_kept(tmp_path):
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.append(9, np.array([60, 60]))
        w.gap(9, 3)
    (t,) = Dataset.open(tmp_path / "ds").threads
    assert (t.tid, t.pid, t.ids.tolist(), t.gaps.tolist()) == (9, 0, [60, 60], [[2, 3]])


def test_large_appends_are_split_into_records(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "MAX_IDS_PER_RECORD", 1000)
    ids = (np.arange(3500) % 300).astype(np.uint16)
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.start_thread(1, pid=1)
        w.append(1, ids)
    ds = Dataset.open(tmp_path / "ds")
    np.testing.assert_array_equal(ds.threads[0].ids, ids)
    assert ds.meta["counts"]["records"] == 1 + 4


def test_invalid_ids_are_refused(tmp_path):
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.start_thread(1, pid=1)
        with pytest.raises(ValueError):
            w.append(1, np.array([-1, 3]))
        with pytest.raises(ValueError):
            w.append(1, np.array([70_000]))


def test_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_sample(tmp_path / "ds")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ds").stat().st_mode) == 0o700
    for name in ("meta.json", "chunks.log"):
        assert stat.S_IMODE((tmp_path / "ds" / name).stat().st_mode) == 0o600


def test_an_existing_empty_directory_is_used_and_tightened(tmp_path):
    out = tmp_path / "out"
    out.mkdir(mode=0o777)
    os.chmod(out, 0o777)
    with DatasetWriter(out, arch="x86_64", source="record"):
        pass
    assert stat.S_IMODE(out.stat().st_mode) & 0o022 == 0


@pytest.mark.parametrize("setup, words", [
    (lambda p: p.write_text("x"), "is a file"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "not empty"),
    (lambda p: write_sample(p), "already holds a sysgram dataset"),
])
def test_writer_refuses_files_foreign_dirs_and_existing_datasets(tmp_path, setup, words):
    target = tmp_path / "out"
    setup(target)
    before = sorted(q.name for q in target.iterdir()) if target.is_dir() else None
    with pytest.raises(UserError, match=words):
        DatasetWriter(target, arch="x86_64", source="record")
    after = sorted(q.name for q in target.iterdir()) if target.is_dir() else None
    assert before == after


def test_a_writer_that_never_closed_opens_with_a_warning(tmp_path):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record")
    w.start_thread(1, pid=1)
    w.append(1, np.arange(50))
    w.flush()
    w.append(1, np.arange(50))  # buffered, never flushed: gone, like after kill -9
    ds = Dataset.open(tmp_path / "ds")
    assert ds.threads[0].ids.tolist() == list(range(50))
    assert any("not closed" in m for m in ds.warnings)


def test_torn_tail_is_dropped_with_a_warning(tmp_path):
    streams = write_sample(tmp_path / "ds")
    log = tmp_path / "ds" / "chunks.log"
    data = log.read_bytes()
    log.write_bytes(data[:-30])  # cut into the last record
    ds = Dataset.open(tmp_path / "ds")
    torn = [m for m in ds.warnings if "torn tail" in m]
    assert len(torn) == 1 and "1 incomplete record" in torn[0]
    assert any("meta.json counts" in m for m in ds.warnings)
    for t in ds.threads:
        n = len(t.ids)
        np.testing.assert_array_equal(t.ids, streams[t.tid][:n])


def test_damage_in_the_middle_is_skipped_and_marked_as_a_gap(tmp_path):
    streams = write_sample(tmp_path / "ds")
    log = tmp_path / "ds" / "chunks.log"
    data = bytearray(log.read_bytes())
    # Corrupt the first events record of thread 100 (600 ids) inside its payload.
    offset = 0
    while True:
        h = np.frombuffer(bytes(data), fmt.HEADER_DTYPE, count=1, offset=offset)[0]
        if h["kind"] == fmt.EVENTS and h["tid"] == 100:
            break
        offset += fmt.HEADER_SIZE + fmt.padded(int(h["length"]))
    data[offset + fmt.HEADER_SIZE + 10] ^= 0xFF
    log.write_bytes(bytes(data))
    ds = Dataset.open(tmp_path / "ds")
    t = by_tid(ds)[100]
    np.testing.assert_array_equal(t.ids, streams[100][600:])
    np.testing.assert_array_equal(t.gaps, [[0, 600], [0, 5]])
    assert any("skipped" in m and f"offset {offset}" in m for m in ds.warnings)
    assert any("600 syscall events were in damaged records" in m for m in ds.warnings)
    np.testing.assert_array_equal(by_tid(ds)[200].ids, streams[200])


def test_open_refuses_what_is_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="there is no dataset"):
        Dataset.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no meta.json"):
        Dataset.open(tmp_path / "empty")
    write_sample(tmp_path / "ds")
    meta = tmp_path / "ds" / "meta.json"
    meta.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        Dataset.open(tmp_path / "ds")
    meta.write_text(json.dumps({"format": "sysgram-dataset", "version": 99, "arch": "x86_64"}))
    with pytest.raises(UserError, match="upgrade sysgram"):
        Dataset.open(tmp_path / "ds")


def fill_disk_once(monkeypatch, after_bytes: int) -> None:
    """Make writev fail with ENOSPC once `after_bytes` were written (a partial write first)."""
    budget = {"left": after_bytes}

    def writev(fd, buffers):
        if budget["left"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = b"".join(bytes(b) for b in buffers)[: budget["left"]]
        budget["left"] -= len(data)
        return os.write(fd, data)

    monkeypatch.setattr(os, "writev", writev)


def test_disk_full_raises_a_clear_error_and_keeps_what_was_written(tmp_path, monkeypatch):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record")
    w.start_thread(1, pid=1)
    w.append(1, np.arange(100))
    w.flush()
    size = (tmp_path / "ds" / "chunks.log").stat().st_size
    fill_disk_once(monkeypatch, after_bytes=50)  # the next append is cut mid-record
    w.append(1, np.arange(100, 200))
    with pytest.raises(DiskFullError, match="disk holding .* is full.*last 100 syscall events"):
        w.flush()
    assert (tmp_path / "ds" / "chunks.log").stat().st_size == size  # partial append cut off
    with pytest.raises(DiskFullError):
        w.append(1, np.arange(3))  # stays failed: the recorder stops
    w.close()  # never raises a second time
    ds = Dataset.open(tmp_path / "ds")
    assert ds.threads[0].ids.tolist() == list(range(100))
    assert ds.meta["status"] == "failed"
    assert any("stopped on an error" in m for m in ds.warnings)


def test_disk_full_while_closing_still_marks_the_dataset_failed(tmp_path, monkeypatch):
    w = DatasetWriter(tmp_path / "ds", arch="x86_64", source="record")
    w.start_thread(1, pid=1)
    w.append(1, np.arange(10))
    fill_disk_once(monkeypatch, after_bytes=0)
    with pytest.raises(DiskFullError):
        w.close()
    monkeypatch.undo()
    ds = Dataset.open(tmp_path / "ds")
    assert ds.meta["status"] == "failed" and "full" in ds.meta["error"]
    assert not (tmp_path / "ds" / ".space-reserve").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_on_a_real_small_filesystem(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        w = DatasetWriter(mnt / "ds", arch="x86_64", source="record")
        w.start_thread(1, pid=1)
        written = 0
        with pytest.raises(DiskFullError):
            for _ in range(1000):
                w.append(1, np.full(10_000, 7, dtype=np.uint16))
                w.flush()
                written += 10_000
        w.close()
        ds = Dataset.open(mnt / "ds")
        assert len(ds.threads[0].ids) == written > 0
        assert ds.meta["status"] == "failed"  # the space reserve made room to say so
        assert not any("torn" in m for m in ds.warnings)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    import numpy as np
    from pathlib import Path
    from sysgram.datasets import DatasetWriter
    w = DatasetWriter(Path(sys.argv[1]), arch="x86_64", source="record")
    for tid in (1, 2, 3):
        w.start_thread(tid, pid=1)
    i = 0
    while True:
        for tid in (1, 2, 3):
            w.append(tid, (np.arange(i, i + 997) * tid % 400).astype(np.uint16))
        i += 997
        w.flush()
        if i == 997 * 5:
            print("flushed", flush=True)
        time.sleep(0.002)
""")


def test_kill_9_of_a_writer_leaves_a_readable_dataset(tmp_path):
    path = tmp_path / "ds"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(path)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline().strip() == "flushed"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ds = Dataset.open(path)
    assert any("not closed" in m for m in ds.warnings)
    for t in ds.threads:
        n = len(t.ids)
        assert n >= 997 * 5
        expected = (np.arange(n) * t.tid % 400).astype(np.uint16)
        np.testing.assert_array_equal(t.ids, expected)


def test_every_writer_and_every_thread_record_agree_on_the_start_fields():
    """A thread-start field lives in one list (format.START_FIELDS): the writers take
    exactly those, and a recorded trace and a collector start carry them, so a new field
    cannot be dropped on the way (the last one was, twice: the export and the suite's
    slicer copied the fields by hand)."""
    import dataclasses
    import inspect

    from sysgram.collector.items import ThreadStart
    from sysgram.datasets.format import START_FIELDS, start_fields
    from sysgram.datasets.parquet import ParquetRecordingWriter
    from sysgram.datasets.trace import ThreadTrace

    for writer in (DatasetWriter, ParquetRecordingWriter):
        params = inspect.signature(writer.start_thread).parameters
        assert tuple(p for p in params if p not in ("self", "tid")) == START_FIELDS, writer
    traced = {f.name for f in dataclasses.fields(ThreadTrace)}
    assert set(START_FIELDS) <= traced
    started = {f.name for f in dataclasses.fields(ThreadStart)} - {"tid", "ts_ns"}
    assert started <= set(START_FIELDS)
    item = ThreadStart(7, 7, 1, "srv", "/srv", None, 99, watched_parent=True)
    assert start_fields(item, start_ns="ts_ns") == {
        "pid": 7, "ppid": 1, "comm": "srv", "exe": "/srv", "exe_sha256": None,
        "start_ns": 99, "target": None, "cgroup": None, "container": None, "created": None,
        "watched_parent": True}
