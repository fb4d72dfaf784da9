"""The numpy-only reader snippet in docs/dataset-format.md reads what the writer writes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from sysgram.datasets import Dataset, DatasetWriter

DOC = Path(__file__).resolve().parents[1] / "docs" / "dataset-format.md"


def doc_snippet() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (snippet,) = [b for b in blocks if "def read_streams" in b]
    return snippet


def test_documented_numpy_snippet_matches_the_reader(tmp_path):
    rng = np.random.default_rng(3)
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        for tid in (5, 6, 7):
            w.start_thread(tid, pid=5, comm="x" * tid)  # JSON payloads of odd lengths
        for _ in range(3):
            for tid in (5, 6, 7):
                w.append(tid, rng.integers(0, 450, size=int(rng.integers(1, 999))))
            w.gap(6, 2)
            w.note("exec", tid=7, filename="/bin/true")
            w.flush()
        w.end_thread(5)
    namespace: dict = {}
    exec(compile(doc_snippet(), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    streams = namespace["read_streams"](tmp_path / "ds" / "chunks.log")
    threads = Dataset.open(tmp_path / "ds").threads
    assert sorted(streams) == [t.tid for t in threads]
    for t in threads:
        np.testing.assert_array_equal(streams[t.tid], t.ids)
        assert len(t.ids) > 3


def test_documented_snippet_reads_touched_records_faithfully(tmp_path):
    hostile = os.fsdecode(b"/tmp/\xff\xfe\nx")
    with DatasetWriter(tmp_path / "ds", arch="x86_64", source="record") as w:
        w.start_thread(5, pid=5)
        w.append(5, np.array([257, 3], np.uint16))
        w.touched(5, 5, 100, kind="open", syscall=257, path=hostile, open_flags=0)
        w.touched(5, 5, 101, kind="connect", syscall=42, fd=3, result=0, protocol="tcp",
                  peer={"family": "ipv4", "address": "127.0.0.1", "port": 80})
        w.touched(5, 5, 102, kind="lost", lost=4)
    namespace: dict = {}
    exec(compile(doc_snippet(), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    records = namespace["read_touched"](tmp_path / "ds" / "chunks.log")
    assert [(tid, pos, f["kind"]) for tid, pos, f in records] \
        == [(5, 2, "open"), (5, 2, "connect"), (5, 2, "lost")]
    assert records[0][2]["path"] == b"/tmp/\xff\xfe\nx"
    dataset = Dataset.open(tmp_path / "ds")
    assert [t["path"] for t in dataset.touched][0] == hostile
    assert dataset.touched[1]["peer"]["port"] == 80
    summary = dataset.summary()["touched"]
    assert summary["records"] == 2 and summary["lost"] == 4
    assert summary["peers"] == [{"peer": "connect 127.0.0.1:80 tcp", "count": 1}]
    assert dataset.meta["losses"]["touched"] == 4
