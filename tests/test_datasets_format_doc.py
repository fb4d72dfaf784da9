"""The numpy-only reader snippet in docs/dataset-format.md reads what the writer writes."""

from __future__ import annotations

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
