"""bench_pooled's hosts (no kernel): a recording cut into time slices, each a dataset whose
threads hold exactly the calls recorded in that slice, with who they were."""

from __future__ import annotations

import numpy as np

from benchmarks.scenarios.slicing import first_event_ns, slice_of, write_slices
from sysgram.datasets import Dataset
from sysgram.datasets.writer import DatasetWriter

S = 1_000_000_000


def test_slice_of_takes_half_open_slices_from_the_first_event():
    assert slice_of(10 * S, 10 * S, 5 * S, 2) == 0
    assert slice_of(15 * S - 1, 10 * S, 5 * S, 2) == 0
    assert slice_of(15 * S, 10 * S, 5 * S, 2) == 1
    assert slice_of(20 * S, 10 * S, 5 * S, 2) is None   # after the last slice
    assert slice_of(9 * S, 10 * S, 5 * S, 2) is None    # before the first
    assert slice_of(0, 10 * S, 5 * S, 2) is None        # no timestamp


def test_slices_hold_each_records_calls_and_mark_threads_found_running(tmp_path):
    src = tmp_path / "train"
    with DatasetWriter(src, arch="x86_64", source="record", target={"comm": "srv"}) as w:
        w.start_thread(1, pid=1, comm="srv", target="srv", start_ns=10 * S, created=True)
        w.append(1, np.array([1, 2, 3], np.uint16), ts_ns=10 * S)
        w.start_thread(2, pid=1, comm="srv", target="srv", start_ns=12 * S, created=True)
        w.append(2, np.array([7, 7], np.uint16), ts_ns=12 * S)
        w.flush()
        w.append(1, np.array([4, 5], np.uint16), ts_ns=16 * S)
        w.touched(1, 1, 16 * S, kind="file", syscall="openat", path="/etc/srv.conf")
        w.flush()
        w.end_thread(1, end_ns=17 * S)
        w.append(2, np.array([8], np.uint16), ts_ns=21 * S)  # after both slices
    first, last = first_event_ns(src)
    assert (first, last) == (10 * S, 21 * S)
    outs = [tmp_path / "h0", tmp_path / "h1"]
    counts = write_slices(src, outs, first, 5 * S)
    assert [c["syscalls"] for c in counts] == [5, 2]

    h0, h1 = (Dataset.open(p) for p in outs)
    assert not h0.warnings and not h1.warnings
    by_tid = {t.tid: t for t in h0.threads}
    assert by_tid[1].ids.tolist() == [1, 2, 3] and by_tid[1].created is True
    assert by_tid[1].end_ns is None                     # still running when h0 ended
    assert by_tid[2].ids.tolist() == [7, 7] and by_tid[2].comm == "srv"
    assert not h0.touched
    [t1] = h1.threads
    assert t1.tid == 1 and t1.ids.tolist() == [4, 5]
    assert t1.created is False and t1.comm == "srv" and t1.target == "srv"
    assert t1.end_ns == 17 * S
    assert [r["path"] for r in h1.touched] == ["/etc/srv.conf"]
    assert h1.meta["extra"]["slice"] == 1
