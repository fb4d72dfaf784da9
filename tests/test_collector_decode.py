"""Decoding kernel records and restoring per-thread order, without a kernel."""

from __future__ import annotations

import numpy as np

from sysgram.collector import abi
from sysgram.collector.decode import KIND_EVENTS, KIND_GAP, decode_batches, decode_losses
from sysgram.collector.ordering import ReorderBuffer


def batch(runs: list[tuple[int, int, int, list[int]]], dtype=abi.BATCH) -> bytes:
    """One kernel batch record: runs of (ts, tid, tgid, ids)."""
    rec = np.zeros(1, dtype=dtype)
    n = 0
    for r, (ts, tid, tgid, ids) in enumerate(runs):
        rec["runs"][0, r] = (ts, tid, tgid, n, 0)
        if "ids" in dtype.names:
            rec["ids"][0, n:n + len(ids)] = ids
        n += len(ids)
    rec["hdr"]["n_ids"] = n
    rec["hdr"]["n_runs"] = len(runs)
    return rec.tobytes()


def test_decode_splits_batches_into_runs_with_their_ids():
    blob = batch([(10, 7, 7, [1, 2, 3]), (20, 8, 7, [4])]) + batch([(15, 9, 9, [5, 6])])
    runs, ids = decode_batches(blob)
    assert runs.tid.tolist() == [7, 8, 9]
    assert runs.length.tolist() == [3, 1, 2]
    got = [ids[o:o + n].tolist() for o, n in zip(runs.offset, runs.length, strict=True)]
    assert got == [[1, 2, 3], [4], [5, 6]]
    assert (runs.kind == KIND_EVENTS).all()


def test_losses_become_gaps_sized_by_their_runs():
    blob = batch([(10, 7, 7, [1, 2, 3]), (20, 8, 7, [4, 4])])
    # A loss record is a batch's first bytes: header and run table, no ids.
    gaps = decode_losses(blob[: abi.LOSS.itemsize])
    assert gaps.tid.tolist() == [7, 8]
    assert gaps.length.tolist() == [3, 2]
    assert (gaps.kind == KIND_GAP).all()


def test_runs_of_a_migrating_thread_are_released_in_time_order_only_below_the_watermark():
    buf = ReorderBuffer()
    # CPU 1's batch arrives first but holds the thread's later runs.
    cpu1 = batch([(30, 5, 5, [3, 3]), (50, 5, 5, [5])])
    cpu0 = batch([(10, 5, 5, [1]), (40, 5, 5, [4, 4]), (20, 6, 6, [9])])
    for blob in (cpu1, cpu0):
        buf.add(*decode_batches(blob))
    first = buf.release(45)
    assert [(s.tid, s.ids.tolist()) for s in first] == [(5, [1, 3, 3, 4, 4]), (6, [9])]
    # The merged piece starts at its first run and says when its last run started.
    assert [(s.ts, s.end_ts) for s in first] == [(10, 40), (20, 20)]
    assert buf.pending_events == 1               # the run at t=50 waits for the watermark
    later = buf.release(60)
    assert [(s.tid, s.ids.tolist()) for s in later] == [(5, [5])]
    assert len(buf) == 0


def test_a_gap_splits_the_thread_stream_where_it_happened():
    buf = ReorderBuffer()
    buf.add(*decode_batches(batch([(10, 5, 5, [1]), (30, 5, 5, [3])])))
    buf.add(decode_losses(batch([(20, 5, 5, [0, 0, 0])])[: abi.LOSS.itemsize]))
    segs = buf.release(100)
    assert [(s.kind, s.ids.tolist() if s.ids is not None else s.lost) for s in segs] == [
        (KIND_EVENTS, [1]), (KIND_GAP, 3), (KIND_EVENTS, [3])]


def test_long_runs_are_gathered_by_slices_in_the_same_order():
    buf = ReorderBuffer()
    a, b, c = (list(range(start, start + 300)) for start in (0, 1000, 2000))
    buf.add(*decode_batches(batch([(30, 5, 5, c)])))           # CPU 1, arrives first
    buf.add(*decode_batches(batch([(10, 5, 5, a), (20, 5, 5, b)])))
    (segment,) = buf.release(100)
    assert segment.ids.tolist() == a + b + c
    assert segment.ids.dtype == np.uint16


def test_a_process_keeps_the_parent_its_fork_record_named():
    # By the time /proc is read, a child whose parent has exited (a shell's `cmd &`, a
    # double fork) has been handed to init; the fork record still says who started it.
    import os

    from sysgram.collector.threads import ThreadBook

    book = ThreadBook()
    pid = os.getpid()                      # a live process: /proc names its real parent
    book.on_fork(pid, 4242, target=1)
    book.snapshot(pid, pid)
    assert book.start_item(pid, pid, ts_ns=1).ppid == 4242
    other = ThreadBook()                   # without a fork record, /proc's parent
    other.snapshot(pid, pid)
    assert other.start_item(pid, pid, ts_ns=1).ppid == os.getppid()


def test_an_exiting_child_is_placed_in_its_parents_cgroup_not_where_proc_says():
    # A zombie's /proc/PID/cgroup reads `/` on every hierarchy, wherever it ran.
    import os
    from pathlib import Path

    from sysgram.collector.procinfo import read_cgroup
    from sysgram.collector.threads import ThreadBook

    parent = os.getpid()
    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        import time

        deadline = time.monotonic() + 10
        stat = Path(f"/proc/{child}/stat")
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the child never became a zombie"
            time.sleep(0.001)
        book = ThreadBook()
        book.snapshot(parent, parent)
        book.on_fork(child, parent, target=1)
        book.snapshot(child, child)
        assert book.start_item(child, child, ts_ns=1).cgroup == read_cgroup(parent)
    finally:
        os.waitpid(child, 0)


def test_runs_are_ordered_by_thread_time_and_kind_every_other_column_breaking_ties():
    from sysgram.collector.decode import RUN_TABLE
    from sysgram.collector.ordering import _thread_order

    rng = np.random.default_rng(1)
    table = np.zeros(3000, RUN_TABLE)
    for name, high in (("tid", 4), ("ts", 20), ("kind", 3), ("tgid", 2), ("offset", 5),
                       ("length", 3), ("ref", 3)):
        table[name] = rng.integers(0, high, len(table))     # small ranges: many ties
    ordered = table[_thread_order(table)]
    assert (ordered == np.sort(table, order=("tid", "ts", "kind"), kind="stable")).all()
