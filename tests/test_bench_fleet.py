"""The fleet benchmark's synthetic fleet is written in the recording schema of today and
reads back as what it replayed (a benchmark that cannot start measures nothing)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from benchmarks.bench_fleet import synthesise
from sysgram.datasets.parquet import arrow_schema
from sysgram.datasets.parquet_read import TRAINING_COLUMNS, table_pieces


def test_the_synthetic_fleet_has_the_recording_schema_and_every_call_it_claims(tmp_path):
    rng = np.random.default_rng(0)
    streams = [rng.integers(0, 40, 600).astype(np.uint16) for _ in range(5)]
    base = {"nginx": (streams, {"comm": "nginx", "exe": None, "binary_sha256": "ab" * 32,
                                "arch": "x86_64"})}
    size = synthesise(base, tmp_path, hosts=2, total_calls=6000, seed=1)

    files = sorted(tmp_path.rglob("*.parquet"))
    assert {f.parent.parent.name for f in files} == {"host=host-000", "host=host-001"}
    calls = 0
    for f in files:
        table = pq.read_table(f)
        assert table.schema.remove_metadata().equals(arrow_schema())
        pieces = table_pieces(pq.read_table(f, columns=TRAINING_COLUMNS))
        assert set(np.unique(pieces.values)) <= set(np.unique(np.concatenate(streams)))
        calls += len(pieces.values)
    assert calls == size["calls"] >= 6000
