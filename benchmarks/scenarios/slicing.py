"""A recording cut into disjoint time slices, each written as a sysgram dataset of its own:
the "hosts" of benchmarks/bench_pooled.py, each one's recording short.

An events record goes to the slice holding its timestamp (the time of its first call;
the recorder flushes at least every 0.5 s, so slice edges are that fine); gaps, touched
records and notes likewise. A thread already running when a slice begins gets a thread
start in that slice marked `created: false` (what `sysgram record` writes for a thread it
found running); its thread end goes only to the slice it fell in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sysgram.datasets import format as fmt
from sysgram.datasets.log import scan
from sysgram.datasets.meta import read_meta
from sysgram.datasets.writer import DatasetWriter
from sysgram.errors import UserError


def slice_of(ts_ns: int, t0_ns: int, slice_ns: int, hosts: int) -> int | None:
    """The slice (host) a record stamped `ts_ns` belongs to, or None outside every slice."""
    if ts_ns <= 0 or ts_ns < t0_ns:
        return None
    k = (ts_ns - t0_ns) // slice_ns
    return int(k) if k < hosts else None


def first_event_ns(path: Path) -> tuple[int, int]:
    """(first, last) timestamps of the recording's events records."""
    buf = (path / fmt.LOG_FILE).read_bytes()
    ts = [r.ts_ns for r in scan(buf).records if r.kind == fmt.EVENTS and r.ts_ns]
    if not ts:
        raise UserError(f"{path} holds no timestamped events to slice.")
    return min(ts), max(ts)


@dataclass
class _Open:
    """A trace of the source recording being copied into the slices."""

    info: dict
    start_slice: int | None
    in_slices: set = field(default_factory=set)


def write_slices(src: Path, outs: list[Path], t0_ns: int, slice_ns: int) -> list[dict]:
    """Write the records of `src` (a sysgram dataset) into len(outs) datasets, one per time
    slice [t0 + k*slice, t0 + (k+1)*slice); returns each slice's counts."""
    meta = read_meta(src)
    buf = (src / fmt.LOG_FILE).read_bytes()
    hosts = len(outs)
    writers = [DatasetWriter(out, arch=meta["arch"], source="slice", target=meta.get("target"),
                             meta={"sliced_from": str(src.resolve()), "slice": k,
                                   "from_ns": t0_ns + k * slice_ns,
                                   "to_ns": t0_ns + (k + 1) * slice_ns})
               for k, out in enumerate(outs)]
    traces: dict[int, _Open] = {}

    def ensure(k: int, tid: int, pid: int) -> None:
        trace = traces.get(tid)
        if trace is None:                  # events before any thread start: anonymous
            trace = traces[tid] = _Open({"tid": tid, "pid": pid}, None)
        if k in trace.in_slices:
            return
        trace.in_slices.add(k)
        fields = {key: value for key, value in trace.info.items() if key != "tid"}
        fields.setdefault("pid", pid)
        if trace.start_slice != k:         # running when this slice's recording began
            fields["created"] = False
        writers[k].start_thread(tid, **fields)

    for rec in scan(buf).records:
        k = slice_of(rec.ts_ns, t0_ns, slice_ns, hosts)
        if rec.kind == fmt.THREAD_START:
            info = _json(buf, rec)
            traces[rec.tid] = _Open({key: value for key, value in info.items()
                                     if key in fmt.START_FIELDS}, k)
            if k is not None:
                ensure(k, rec.tid, rec.pid)
        elif rec.kind == fmt.EVENTS and k is not None:
            ensure(k, rec.tid, rec.pid)
            ids = np.frombuffer(buf, fmt.IDS_DTYPE, count=rec.length // 2, offset=rec.offset)
            writers[k].append(rec.tid, ids, ts_ns=rec.ts_ns)
        elif rec.kind == fmt.GAP and k is not None:
            ensure(k, rec.tid, rec.pid)
            lost = int(np.frombuffer(buf, fmt.GAP_DTYPE, count=1, offset=rec.offset)[0])
            writers[k].gap(rec.tid, lost, ts_ns=rec.ts_ns)
        elif rec.kind == fmt.THREAD_END:
            trace = traces.pop(rec.tid, None)
            if trace is not None and k in trace.in_slices:
                writers[k].end_thread(rec.tid, end_ns=_json(buf, rec).get("end_ns"))
        elif rec.kind == fmt.TOUCHED and k is not None:
            fields = _json(buf, rec)
            path = fmt.decode_path(fields)
            fields = {key: value for key, value in fields.items()
                      if key not in ("path", "path_hex", "tid", "pid", "ts_ns")}
            if rec.tid in traces:
                ensure(k, rec.tid, rec.pid)
            writers[k].touched(rec.tid, rec.pid, rec.ts_ns, path=path, **fields)
        elif rec.kind == fmt.NOTE and k is not None:
            note = _json(buf, rec)
            kind = note.pop("kind", "note")
            writers[k].note(str(kind), **note)
    collector = meta.get("collector")
    counts = []
    for writer in writers:
        writer.close(collector)       # the recorder's stats: says touched was captured
        counts.append(read_meta(writer.path)["counts"])
    return counts




def _json(buf: bytes, rec) -> dict:
    try:
        value = json.loads(bytes(buf[rec.offset:rec.offset + rec.length]))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
