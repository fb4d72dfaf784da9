"""Recordings as Parquet: the schema round-trips, other readers read it, a kill leaves files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from sysgram.cli import main
from sysgram.datasets import Dataset, DatasetWriter
from sysgram.datasets.parquet import (
    COLUMNS,
    ParquetRecordingWriter,
    arrow_schema,
    touched_captured,
)
from sysgram.datasets.parquet_read import TRAINING_COLUMNS, PieceTails, table_pieces


def write_dataset(path):
    """Two threads of one process and one of another; thread 11 lost 5 events at 3."""
    with DatasetWriter(path, arch="x86_64", source="test", target={"comm": "srv"}) as w:
        w.start_thread(10, pid=10, ppid=1, comm="srv", exe="/usr/bin/srv", exe_sha256="aa" * 32,
                       start_ns=100, created=False, watched_parent=False)
        w.start_thread(11, pid=10, comm="srv", exe="/usr/bin/srv", exe_sha256="aa" * 32,
                       created=True, watched_parent=True)
        w.start_thread(20, pid=20, comm="helper")
        w.append(10, np.array([0, 1, 2, 3], np.uint16), ts_ns=110)
        w.touched(10, 10, 120, path="/etc/srv\udcff.conf", kind="open", syscall=257)
        w.append(11, np.array([5, 6, 7], np.uint16))
        w.touched(11, 10, 130, kind="connect", syscall=42, result=0, protocol="tcp",
                  peer={"family": "ipv4", "address": "127.0.0.1", "port": 5432})
        w.gap(11, 5)
        w.append(11, np.array([8, 9], np.uint16))
        w.append(20, np.array([4, 4, 4], np.uint16))
        w.end_thread(10, end_ns=500)
        w.end_thread(11, end_ns=600)
    return Dataset.open(path)


def read_root(root):
    """The root with pyarrow alone (no sysgram code): hive partitioning, strings as keys."""
    import pyarrow as pa

    part = ds.partitioning(pa.schema([("host", pa.string()), ("binary_name", pa.string())]),
                           flavor="hive")
    return ds.dataset(root, format="parquet", partitioning=part).to_table()


def test_export_round_trips_through_pyarrow_alone(tmp_path, capsys):
    dataset = write_dataset(tmp_path / "ds")
    code = main(["export", str(tmp_path / "ds"), "--format", "parquet", "--host", "web-01",
                 str(tmp_path / "pq")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "exported 3 traces, 12 syscalls as 4 rows" in out and "lost_before" in err
    table = read_root(tmp_path / "pq")
    assert set(table.column_names) == set(COLUMNS) | {"host", "binary_name"}
    assert pq.read_schema(next((tmp_path / "pq").rglob("*.parquet"))).remove_metadata().equals(
        arrow_schema().remove_metadata())
    rows = sorted(table.to_pylist(), key=lambda r: (r["tid"], r["piece"]))
    assert {r["host"] for r in rows} == {"web-01"}
    assert [(r["binary_name"], r["tid"], r["piece"], r["lost_before"], r["syscalls"])
            for r in rows] == [("srv", 10, 0, 0, [0, 1, 2, 3]), ("srv", 11, 0, 0, [5, 6, 7]),
                               ("srv", 11, 1, 5, [8, 9]), ("helper", 20, 0, 0, [4, 4, 4])]
    first = rows[0]
    assert (first["pid"], first["ppid"], first["exe"], first["binary_sha256"]) == (
        10, 1, "/usr/bin/srv", "aa" * 32)
    # a dataset keeps no per-piece times: start_ns is unknown after an export
    assert (first["thread_start_ns"], first["start_ns"], first["thread_end_ns"]) == (100, None, 500)
    assert rows[3]["thread_end_ns"] is None and first["arch"] == dataset.arch
    # started while recorded, or already running; unknown when the recording did not say
    assert [dataset.threads[k].created for k in range(3)] == [False, True, None]
    assert [r["created"] for r in rows] == [False, True, True, None]
    # the root process (a master, a listener) or a child of the same binary
    assert [r["watched_parent"] for r in rows] == [False, True, True, None]
    meta = json.loads(next((tmp_path / "pq" / "_sysgram").glob("*.json")).read_text())
    assert meta["status"] == "complete" and meta["counts"]["lost_events"] == 5
    # What the threads touched rides with the row of the calls before it (a record at a
    # loss's position with the row after the loss), the odd path byte as path_hex.
    touched = [[json.loads(t) for t in r["touched"]] for r in rows]
    assert [len(t) for t in touched] == [1, 0, 1, 0] and meta["counts"]["touched"] == 2
    assert touched[0][0]["path_hex"] == "/etc/srv\udcff.conf".encode(
        "utf-8", "surrogateescape").hex()
    assert (touched[0][0]["kind"], touched[0][0]["ts_ns"], touched[0][0]["pid"]) == (
        "open", 120, 10)
    assert touched[2][0]["peer"] == {"family": "ipv4", "address": "127.0.0.1", "port": 5432}
    # Each file says whether its rows' touched records were captured (an empty list is
    # then "touched nothing"); an export of a dataset without any says not.
    files = sorted((tmp_path / "pq").rglob("*.parquet"))
    assert all(touched_captured(pq.read_schema(f)) for f in files)
    with DatasetWriter(tmp_path / "bare", arch="x86_64", source="test") as w:
        w.start_thread(1, pid=1, comm="srv")
        w.append(1, np.array([1, 2], np.uint16))
    assert main(["export", str(tmp_path / "bare"), "--format", "parquet", str(tmp_path / "b")]) == 0
    assert not touched_captured(pq.read_schema(next((tmp_path / "b").rglob("*.parquet"))))


def test_duckdb_reads_the_root_with_hive_partitioning(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    write_dataset(tmp_path / "ds")
    assert main(["export", str(tmp_path / "ds"), "--format", "parquet", "--host", "db-2",
                 str(tmp_path / "pq")]) == 0
    rows = duckdb.sql(
        f"SELECT host, binary_name, sum(len(syscalls)) AS calls, sum(lost_before) AS lost "
        f"FROM read_parquet('{tmp_path}/pq/**/*.parquet', hive_partitioning = true) "
        "GROUP BY ALL ORDER BY binary_name").fetchall()
    assert rows == [("db-2", "helper", 3, 0), ("db-2", "srv", 9, 5)]


def test_rows_of_a_trace_join_across_files_and_cut_at_losses(tmp_path):
    root = tmp_path / "pq"
    w = ParquetRecordingWriter(root, arch="x86_64", source="test", host="h", max_calls=1)
    w.start_thread(7, pid=7, comm="srv")
    w.append(7, np.arange(0, 6))
    w.flush()                                     # file 0: calls 0..5
    w.append(7, np.arange(6, 10))
    w.flush()                                     # file 1: 6..9, continuing the trace
    w.gap(7, 2)
    w.append(7, np.arange(10, 12))
    w.close()                                     # file 2: 10..11 after a loss of 2
    files = sorted((root / "host=h" / "binary_name=srv").glob("*.parquet"))
    assert len(files) == 3
    tails, got = PieceTails(keep=3), []
    for f in files:
        got += [p.tolist() for p in tails.join(table_pieces(pq.read_table(f,
                                                                      columns=TRAINING_COLUMNS)))]
    assert got == [[0, 1, 2, 3, 4, 5], [3, 4, 5, 6, 7, 8, 9], [10, 11]]


def test_a_killed_writer_leaves_readable_files_and_hides_its_temporary(tmp_path):
    root = tmp_path / "pq"
    w = ParquetRecordingWriter(root, arch="x86_64", source="test", host="h", max_calls=4)
    w.start_thread(1, pid=1, comm="srv")
    w.append(1, np.arange(5))
    w.flush()                                     # past max_calls: one file, whole
    w.append(1, np.arange(3))                     # pending, never written: lost with the kill
    part = root / "host=h" / "binary_name=srv"
    (part / ".part-torn.parquet.tmp").write_bytes(b"PAR1 half a file")  # a write cut short
    table = read_root(root)                       # no close(): as after kill -9
    assert table.num_rows == 1 and table["syscalls"].to_pylist() == [[0, 1, 2, 3, 4]]
    meta = json.loads(next((root / "_sysgram").glob("*.json")).read_text())
    assert meta["status"] == "recording"


def test_a_second_recording_joins_an_existing_root_but_not_a_foreign_folder(tmp_path, capsys):
    write_dataset(tmp_path / "ds")
    for host in ("a", "b"):
        assert main(["export", str(tmp_path / "ds"), "--format", "parquet", "--host", host,
                     str(tmp_path / "pq")]) == 0
    assert set(read_root(tmp_path / "pq")["host"].to_pylist()) == {"a", "b"}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "ds"), "--format", "parquet",
                 str(tmp_path / "other")]) == 2
    assert "holds no sysgram Parquet recordings" in capsys.readouterr().err
