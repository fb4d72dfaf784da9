"""Recordings as Parquet: the schema, and a streaming, crash-safe writer (pyarrow only).

A Parquet root holds recordings of many hosts and binaries in a hive layout:

    ROOT/host=<host>/binary_name=<comm>/part-<recording>-<seq>.parquet
    ROOT/_sysgram/<recording>.json      what was recorded, counts and losses (at close)

One row is one *thread piece*: the calls of one thread trace that one flush brought,
in order (`piece` numbers them, `position` is where the first call sits in the trace,
`lost_before` counts events lost just before it). Any Parquet reader (pyarrow, DuckDB,
Dask, Spark) reads it with hive partitioning; `docs/dataset-format.md` documents it.

Crash safety: each data file is written whole to a hidden temporary name, fsynced and
renamed, so a killed recorder leaves only complete files (and at most one hidden
temporary that readers skip). Rows wait in memory until a file's bound is reached
(`max_calls` calls or `max_age_s` seconds): a kill loses at most that much.

This module imports pyarrow only when a writer is made: recording needs no ML stack.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from sysgram.datasets.files import (
    as_write_error,
    fsync_dir,
    make_parent_dirs,
    make_private_dir,
    write_json_atomic,
)
from sysgram.datasets.format import start_fields
from sysgram.datasets.meta import now_iso
from sysgram.errors import UserError

SCHEMA_VERSION = 1
META_DIR = "_sysgram"          # `_` prefix: pyarrow, Dask and Spark skip it when reading
PARTITION_KEYS = ("host", "binary_name")  # `binary` is an SQL keyword
UNKNOWN_BINARY = "unknown"
# Defaults of a file's bounds: a row group of at most this many calls / this old.
MAX_CALLS_PER_FILE = 1 << 20
MAX_AGE_S = 5.0

# The columns stored in each file, in order (host and binary live in the path).
COLUMNS = {
    "recording": "string: the recording's id (one writer, one host); names its meta file",
    "trace": "uint32: the thread trace, numbered within the recording (tids are reused)",
    "piece": "uint32: the row's place in its trace (0, 1, 2, ...)",
    "position": "uint64: index of the row's first call in the trace",
    "lost_before": "uint64: events lost just before the row's first call (0 = none)",
    "tid": "uint32: thread id", "pid": "uint32: process id (tgid)",
    "ppid": "uint32, null = unknown: parent process id",
    "comm": "string: the thread's name when it started (= the binary_name partition)",
    "exe": "string, null = unknown: executable path",
    "binary_sha256": "string, null = unknown: sha256 of the executable",
    "thread_start_ns": "uint64, null = unknown: CLOCK_MONOTONIC ns the trace started",
    "start_ns": "uint64, null = unknown: CLOCK_MONOTONIC ns of the row's first call",
    "thread_end_ns": "uint64, null unless the thread ended with this row",
    "syscalls": "list<uint16>: the syscall numbers, of the table `arch`",
    "arch": "string: syscall table (x86_64, i386, ...)",
    "label": "string, null: normal/attack (imported corpora)",
    "family": "string, null: attack family (imported corpora)",
    "split": "string, null: train/validation/attack (imported corpora)",
    "source": "string, null: the file a corpus trace came from",
    "target": "string, null: the watched binary the thread belongs to (a recording of "
              "several; = the binary_name partition)",
    "cgroup": "string, null: the process's cgroup v2 path",
    "container": "string, null: RUNTIME://ID when the cgroup is a container's",
    "created": "bool, null = unknown: the thread started while recording (true) or was "
               "already running when recording began (false)",
    "watched_parent": "bool, null = unknown: the thread's process was started by a process "
                      "of the same watched binary (a child: a worker, a session) or not (its "
                      "root: a master, a listener)",
    "touched": "list<string>: what the thread touched up to the row's last call (files, "
               "programs, peers): one JSON object each, the dataset's touched records",
}


# A file's key-value metadata: whether its recording captured what threads touched.
TOUCHED_KEY = b"sysgram.touched"


def touched_captured(schema) -> bool:
    """Whether a Parquet file's rows had their touched records captured (files written
    before the mark: when any row holds one, which the caller sees)."""
    return (schema.metadata or {}).get(TOUCHED_KEY) == b"captured"


def arrow_schema():
    """The pyarrow schema of the stored columns (partition keys excluded)."""
    import pyarrow as pa

    string, u32, u64 = pa.string(), pa.uint32(), pa.uint64()
    types = {"recording": string, "trace": u32, "piece": u32, "position": u64,
             "lost_before": u64, "tid": u32, "pid": u32, "ppid": u32, "comm": string,
             "exe": string, "binary_sha256": string, "thread_start_ns": u64, "start_ns": u64,
             "thread_end_ns": u64, "syscalls": pa.list_(pa.uint16()), "arch": string,
             "label": string, "family": string, "split": string, "source": string,
             "target": string, "cgroup": string, "container": string,
             "created": pa.bool_(), "watched_parent": pa.bool_(),
             "touched": pa.list_(string)}
    nullable = {"ppid", "exe", "binary_sha256", "thread_start_ns", "start_ns", "thread_end_ns",
                "label", "family", "split", "source", "target", "cgroup", "container",
                "created", "watched_parent"}
    return pa.schema([pa.field(name, types[name], nullable=name in nullable)
                      for name in COLUMNS],
                     metadata={"sysgram.schema_version": str(SCHEMA_VERSION)})


def partitioning():
    """The hive partitioning with its key types fixed (a host named 42 stays a string)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    return ds.partitioning(pa.schema([(k, pa.string()) for k in PARTITION_KEYS]), flavor="hive")


def partition_dir(host: str, binary: str) -> str:
    """`host=<h>/binary_name=<b>`, values percent-encoded like pyarrow's "uri" encoding."""
    return (f"host={quote(host, safe='')}/"
            f"binary_name={quote(binary or UNKNOWN_BINARY, safe='')}")


def is_parquet_root(path: Path) -> bool:
    return (path / META_DIR).is_dir()


def claim_root(path: Path) -> None:
    """A new, empty or existing Parquet root: recordings of many hosts share one root."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; give a new or empty directory for the Parquet files.")
    if path.is_dir() and any(path.iterdir()) and not is_parquet_root(path):
        raise UserError(f"{path} is not empty and holds no sysgram Parquet recordings; give a "
                        "new or empty directory, or an existing Parquet root.")


@dataclass
class _Trace:
    number: int
    tid: int
    pid: int
    ppid: int | None
    comm: str
    exe: str | None
    sha256: str | None
    start_ns: int | None
    label: str | None = None
    family: str | None = None
    split: str | None = None
    source: str | None = None
    target: str | None = None
    cgroup: str | None = None
    container: str | None = None
    created: bool | None = None
    watched_parent: bool | None = None
    touched: list[str] = field(default_factory=list)  # JSON records since the last row
    pieces: int = 0       # rows emitted
    position: int = 0     # calls emitted
    pending: list[np.ndarray] = field(default_factory=list)
    pending_ts: int | None = None
    lost: int = 0         # lost before the pending calls
    end_ns: int | None = None


class ParquetRecordingWriter:
    """The DatasetWriter's interface (start_thread, append, gap, end_thread, note, flush,
    close), writing rows of thread pieces into a Parquet root. One recorder thread calls it.
    """

    def __init__(self, root: Path, *, arch: str, source: str, target: dict | None = None,
                 meta: dict | None = None, host: str | None = None,
                 max_calls: int = MAX_CALLS_PER_FILE, max_age_s: float = MAX_AGE_S,
                 touched_captured: bool = True) -> None:
        import pyarrow  # noqa: F401  (fail before any directory is made)

        self.root = Path(root)
        claim_root(self.root)
        self.arch, self.host = arch, host or socket.gethostname()
        self.recording = uuid.uuid4().hex[:16]
        self.max_calls, self.max_age_s = max_calls, max_age_s
        # Whether what threads touched was captured: an empty `touched` then means the
        # thread touched nothing, not that nobody looked (each file's metadata says it).
        self.touched_captured = touched_captured
        self.default_comm = (target or {}).get("comm") or UNKNOWN_BINARY
        self._traces: dict[int, _Trace] = {}   # open traces by tid
        self._rows: dict[str, list[dict]] = {}  # partition dir -> rows not yet in a file
        self._buffered_calls = 0
        self._oldest: float | None = None
        self._files = 0
        self._counts = {"threads": 0, "syscalls": 0, "rows": 0, "files": 0, "gaps": 0,
                        "lost_events": 0, "notes": 0, "touched": 0}
        self._meta = {"format": "sysgram-parquet", "schema_version": SCHEMA_VERSION,
                      "recording": self.recording, "created": now_iso(), "host": self.host,
                      "kernel": os.uname().release, "arch": arch, "source": source,
                      "target": target, "status": "recording", "extra": meta or {}}
        try:
            make_parent_dirs(self.root)
            make_private_dir(self.root)
            make_private_dir(self.root / META_DIR)
            write_json_atomic(self._meta_path, self._meta)
        except OSError as exc:
            raise as_write_error(exc, self.root, "the Parquet root") from None

    @property
    def _meta_path(self) -> Path:
        return self.root / META_DIR / f"{self.recording}.json"

    # -- the DatasetWriter interface ------------------------------------------------------
    def start_thread(self, tid: int, *, pid: int, ppid: int | None = None,
                     comm: str | None = None, exe: str | None = None,
                     exe_sha256: str | None = None, start_ns: int | None = None,
                     label: str | None = None, family: str | None = None,
                     split: str | None = None, source: str | None = None,
                     target: str | None = None, cgroup: str | None = None,
                     container: str | None = None, created: bool | None = None,
                     watched_parent: bool | None = None) -> None:
        if tid in self._traces:                      # a reused tid begins a new trace
            self.end_thread(tid)
        # A recording of several binaries partitions each thread by the one it belongs to.
        binary = target or comm or self.default_comm
        self._traces[tid] = _Trace(self._counts["threads"], tid, pid, ppid, binary, exe,
                                   exe_sha256, start_ns, label, family, split, source,
                                   target, cgroup, container, created,
                                   watched_parent)
        self._counts["threads"] += 1

    def append(self, tid: int, ids: np.ndarray, ts_ns: int | None = None) -> None:
        ids = np.asarray(ids, dtype=np.uint16)
        if not len(ids):
            return
        trace = self._trace(tid)
        if not trace.pending:
            trace.pending_ts = ts_ns
        trace.pending.append(ids)
        self._counts["syscalls"] += len(ids)

    def gap(self, tid: int, lost: int, ts_ns: int | None = None) -> None:
        trace = self._trace(tid)
        self._emit(trace)                            # the loss falls after what is pending
        trace.lost += int(lost)
        self._counts["gaps"] += 1
        self._counts["lost_events"] += int(lost)

    def end_thread(self, tid: int, end_ns: int | None = None) -> None:
        trace = self._traces.pop(tid, None)
        if trace is None:
            return
        trace.end_ns = end_ns
        self._emit(trace, last=True)

    def touched(self, tid: int, pid: int, ts_ns: int | None = None, *, path: str | None = None,
                **fields) -> None:
        """What `tid` touched (DatasetWriter.touched's record), kept with the thread's next
        row: after the calls that preceded it."""
        from sysgram.datasets import format as fmt

        record = {"tid": tid, "pid": pid, "ts_ns": ts_ns, **fmt.touched_fields(fields, path)}
        self._trace(tid).touched.append(fmt.encode_json(record).decode())
        self._counts["touched"] += 1

    def note(self, kind: str, **fields) -> None:
        # Exec notes and the like stay out of the rows; they are counted in the meta file.
        self._counts["notes"] += 1

    def flush(self) -> None:
        """Turn pending calls into rows; write files once a bound is reached."""
        for trace in self._traces.values():
            self._emit(trace)
        aged = self._oldest is not None and time.monotonic() - self._oldest >= self.max_age_s
        if self._buffered_calls >= self.max_calls or aged:
            self._write_files()

    def close(self, stats: dict | None = None) -> None:
        for tid in list(self._traces):
            trace = self._traces.pop(tid)
            self._emit(trace, last=True)
        self._write_files()
        self._meta.update(status="complete", closed=now_iso(), counts=dict(self._counts),
                          collector=stats)
        try:
            write_json_atomic(self._meta_path, self._meta)
        except OSError as exc:
            raise as_write_error(exc, self.root, "the Parquet root") from None

    def __enter__(self) -> ParquetRecordingWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def counts(self) -> dict:
        return dict(self._counts)

    # -- rows and files -------------------------------------------------------------------
    def _trace(self, tid: int) -> _Trace:
        if tid not in self._traces:   # events of a thread whose start was not seen
            self.start_thread(tid, pid=0)
        return self._traces[tid]

    def _emit(self, trace: _Trace, last: bool = False) -> None:
        """One row of what the trace has pending (a last row may be empty: an end, a loss)."""
        if not trace.pending and not trace.touched and not (
                last and (trace.lost or trace.pieces == 0 or trace.end_ns is not None)):
            return
        ids = np.concatenate(trace.pending) if trace.pending else np.zeros(0, np.uint16)
        row = {"recording": self.recording, "trace": trace.number, "piece": trace.pieces,
               "position": trace.position, "lost_before": trace.lost, "tid": trace.tid,
               "pid": trace.pid, "ppid": trace.ppid, "comm": trace.comm, "exe": trace.exe,
               "binary_sha256": trace.sha256, "thread_start_ns": trace.start_ns,
               "start_ns": trace.pending_ts, "thread_end_ns": trace.end_ns if last else None,
               "syscalls": ids, "arch": self.arch, "label": trace.label,
               "family": trace.family, "split": trace.split, "source": trace.source,
               "target": trace.target, "cgroup": trace.cgroup, "container": trace.container,
               "created": trace.created, "watched_parent": trace.watched_parent,
               "touched": trace.touched}
        self._rows.setdefault(partition_dir(self.host, trace.comm), []).append(row)
        trace.pieces += 1
        trace.position += len(ids)
        trace.pending, trace.pending_ts, trace.lost, trace.touched = [], None, 0, []
        self._buffered_calls += len(ids)
        self._oldest = self._oldest if self._oldest is not None else time.monotonic()
        self._counts["rows"] += 1

    def _write_files(self) -> None:
        for part, rows in self._rows.items():
            self._write_file(self.root / part, rows)
        self._rows, self._buffered_calls, self._oldest = {}, 0, None

    def _write_file(self, directory: Path, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = rows_to_table(rows, pa)
        table = table.replace_schema_metadata({
            **table.schema.metadata,
            TOUCHED_KEY: b"captured" if self.touched_captured else b"not captured"})
        name = f"part-{self.recording}-{self._files:06d}.parquet"
        self._files += 1
        tmp = directory / f".{name}.tmp"
        try:
            make_private_dir(directory)
            pq.write_table(table, tmp, compression="zstd", row_group_size=len(rows))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, directory / name)
            fsync_dir(directory)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise as_write_error(exc, directory, "a Parquet file") from None
        self._counts["files"] += 1


def rows_to_table(rows: list[dict], pa=None):
    """Rows (dicts of the COLUMNS) -> a pyarrow Table of the schema; syscalls as numpy."""
    if pa is None:
        import pyarrow as pa
    schema = arrow_schema()
    ids = [r["syscalls"] for r in rows]
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum([len(i) for i in ids], out=offsets[1:])
    values = np.concatenate(ids) if ids else np.zeros(0, np.uint16)
    syscalls = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.uint16()))
    columns = [syscalls if name == "syscalls" else
               pa.array([r[name] for r in rows], schema.field(name).type) for name in COLUMNS]
    return pa.Table.from_arrays(columns, schema=schema)


def read_recording_meta(root: Path) -> list[dict]:
    """The meta files of a local Parquet root (one per recording), oldest first."""
    metas = []
    for path in sorted((Path(root) / META_DIR).glob("*.json")):
        try:
            metas.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            metas.append({"recording": path.stem, "status": "unreadable"})
    return metas


# A dataset's touched record's own fields, apart from what the thread touched.
_TOUCHED_OWN = frozenset({"tid", "pid", "ts_ns", "position", "path"})


def _marks(trace, touched: list[dict]) -> list[tuple[int, str, object]]:
    """(position, "gap" | "touched", lost or record) in trace order; a record at a loss's
    position came after the loss (it was recorded after the calls it follows)."""
    gaps = [(int(p), 0, "gap", int(n))
            for p, n in np.asarray(trace.gaps, dtype=np.int64).reshape(-1, 2)]
    marks = [(min(int(r.get("position") or 0), len(trace.ids)), 1, "touched", r)
             for r in touched]
    return [(p, kind, what) for p, _, kind, what in sorted(gaps + marks, key=lambda m: m[:2])]


def export_parquet(dataset, root: Path, host: str | None = None) -> dict:
    """Write a dataset's thread traces as rows of a Parquet root; returns the counts.

    Each trace becomes rows split where it lost events (`lost_before` on the row after
    each loss), through the same writer `record --format parquet` uses; what the thread
    touched goes with the row holding the calls before it, as when recording.
    """
    meta = dataset.meta
    # What the collector's stats say (as `train --from DATASET` reads them): recorded with
    # the touched capture, even when nothing was touched.
    captured = "touched" in (meta.get("collector") or {}) or bool(getattr(dataset, "touched",
                                                                          None))
    writer = ParquetRecordingWriter(
        Path(root), arch=dataset.arch, source=meta.get("source") or "export",
        target=meta.get("target"), host=host or meta.get("host"),
        meta={"exported_from": str(Path(dataset.path).resolve()),
              "created": meta.get("created")}, touched_captured=captured)
    touched_by_tid: dict[int, list[dict]] = {}
    for record in getattr(dataset, "touched", None) or []:
        touched_by_tid.setdefault(record["tid"], []).append(record)
    for trace in dataset.threads:
        writer.start_thread(trace.tid, **start_fields(trace))
        cut = 0
        for position, kind, what in _marks(trace, touched_by_tid.get(trace.tid, [])):
            writer.append(trace.tid, trace.ids[cut:position])
            cut = position
            if kind == "gap":
                writer.gap(trace.tid, what)
            else:
                writer.touched(trace.tid, what["pid"], what.get("ts_ns"), path=what.get("path"),
                               **{k: v for k, v in what.items() if k not in _TOUCHED_OWN})
        writer.append(trace.tid, trace.ids[cut:])
        writer.end_thread(trace.tid, end_ns=trace.end_ns)
        writer.flush()                 # writes a file whenever max_calls are buffered
    writer.close()
    return writer.counts
