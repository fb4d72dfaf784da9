"""DatasetWriter: append-only, crash-safe recording of per-thread syscall streams.

Calls are buffered in memory and written by `flush()` as one append: one EVENTS record
per thread with new ids, so the per-chunk overhead stays small (40 bytes per thread per
flush). Whatever `flush()` has written survives a kill -9 of the writer; `close()` also
fsyncs it and rewrites meta.json (status, counts, losses) atomically.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sysgram.datasets import format as fmt
from sysgram.datasets.files import (
    DatasetWriteError,
    as_write_error,
    fsync_dir,
    make_private_dir,
    open_private_append,
    release_space,
    reserve_space,
    write_all_vectored,
    write_json_atomic,
)
from sysgram.datasets.meta import (
    STATUS_COMPLETE,
    STATUS_FAILED,
    initial_meta,
    is_dataset_dir,
    now_iso,
)
from sysgram.errors import UserError

# Buffered ids beyond this many bytes trigger a flush, bounding the writer's memory.
MAX_BUFFERED_BYTES = 8 << 20
# meta.json lists at most this many losses one by one (all are counted).
MAX_LISTED_LOSSES = 1000
MAX_LISTED_LOSSES_WHEN_FAILED = 20
# Space held back while recording so meta.json can still say "failed" on a full disk.
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 8192
MAX_IDS_PER_RECORD = fmt.MAX_PAYLOAD // fmt.IDS_DTYPE.itemsize
_U16 = fmt.IDS_DTYPE


@dataclass
class _Thread:
    pid: int
    position: int = 0  # ids written or pending for this trace so far
    pending: list[np.ndarray] = field(default_factory=list)
    pending_ts: int = 0


def claim_directory(path: Path) -> None:
    """Refuse a path that is a file, a non-empty foreign directory, or an existing dataset."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; give a new or empty directory for the dataset.")
    if path.is_dir() and any(path.iterdir()):
        if is_dataset_dir(path):
            raise UserError(
                f"{path} already holds a sysgram dataset and sysgram does not append to one; "
                "give a new directory (or remove the old dataset first)."
            )
        raise UserError(
            f"{path} is not empty and is not a sysgram dataset; give a new or empty directory."
        )


class DatasetWriter:
    """Writes one dataset directory. Not thread-safe: one recorder thread calls it."""

    def __init__(
        self,
        path: Path,
        *,
        arch: str,
        source: str,
        target: dict | None = None,
        meta: dict | None = None,
    ) -> None:
        self.path = Path(path)
        claim_directory(self.path)
        self._threads: dict[int, _Thread] = {}
        self._out: list = []  # buffers (bytes, id arrays) of whole records, in order
        self._out_events = 0  # syscall ids in self._out
        self._buffered = 0
        self._size = 0
        self._failed: UserError | None = None
        self._closed = False
        self._counts = {"threads": 0, "records": 0, "gaps": 0, "notes": 0, "touched": 0}
        self._lost_touched = 0
        self._syscalls = 0
        self._pids: set[int] = set()
        self._losses: list[dict] = []
        self._lost_events = 0
        self._lost_tids: set[int] = set()
        self._ts_first = 0  # first and last event time seen (0 = none yet)
        self._ts_last = 0
        self._fd = -1
        try:
            make_private_dir(self.path)
            self._fd = open_private_append(self.path / fmt.LOG_FILE)
            reserve_space(self.path / RESERVE_FILE, RESERVE_BYTES)
            self._meta = initial_meta(arch, source, target, meta)
            write_json_atomic(self.path / fmt.META_FILE, self._meta)
            fsync_dir(self.path)
        except OSError as exc:
            if self._fd >= 0:
                os.close(self._fd)
            raise as_write_error(exc, self.path, "a new dataset") from None

    # -- recording ---------------------------------------------------------------------
    def start_thread(
        self,
        tid: int,
        *,
        pid: int,
        ppid: int | None = None,
        comm: str | None = None,
        exe: str | None = None,
        exe_sha256: str | None = None,
        start_ns: int | None = None,
        label: str | None = None,
        family: str | None = None,
        split: str | None = None,
        source: str | None = None,
        target: str | None = None,
        cgroup: str | None = None,
        container: str | None = None,
        created: bool | None = None,
        watched_parent: bool | None = None,
    ) -> None:
        """Begin a new trace for `tid` (a reused tid starts a new trace)."""
        self._check_usable()
        if tid in self._threads:
            self._emit_pending(tid)
        self._threads[tid] = _Thread(pid=pid)
        self._counts["threads"] += 1
        self._pids.add(pid)
        fields = dict(tid=tid, pid=pid, ppid=ppid, comm=comm, exe=exe, exe_sha256=exe_sha256,
                      start_ns=start_ns, label=label, family=family, split=split, source=source)
        # Recording fields only when known: imported corpora's records stay as they were.
        fields.update({k: v for k, v in (("target", target), ("cgroup", cgroup),
                                          ("container", container),
                                          ("created", created),
                                          ("watched_parent", watched_parent))
                       if v is not None})
        self._emit(fmt.THREAD_START, tid, pid, fmt.encode_json(fields), ts_ns=start_ns)

    def append(self, tid: int, ids: np.ndarray, ts_ns: int | None = None) -> None:
        """Add the next syscall ids of `tid`'s stream (`ts_ns`: time of the first one)."""
        # The recorder's hot path (one call per run of a thread): kept lean on purpose.
        if self._failed is not None or self._closed:
            self._check_usable()
        if type(ids) is np.ndarray and ids.dtype == _U16 and ids.ndim == 1:
            ids = ids.copy()  # private: the caller may reuse its buffer
        else:
            ids = _as_ids(ids)
        count = len(ids)
        if not count:
            return
        thread = self._threads.get(tid) or self._implicit_start(tid)
        if not thread.pending:
            thread.pending_ts = ts_ns or 0
        thread.pending.append(ids)
        thread.position += count
        self._syscalls += count
        self._buffered += count + count
        if ts_ns:
            if ts_ns > self._ts_last:
                self._ts_last = ts_ns
            if ts_ns < self._ts_first or not self._ts_first:
                self._ts_first = ts_ns
        if self._buffered >= MAX_BUFFERED_BYTES:
            self.flush()

    def gap(self, tid: int, lost: int, ts_ns: int | None = None) -> None:
        """`lost` events of `tid` are missing at this point of its stream."""
        self._check_usable()
        if lost <= 0:
            return
        thread = self._threads.get(tid) or self._implicit_start(tid)
        self._emit_pending(tid)
        payload = np.array([lost], dtype=fmt.GAP_DTYPE).tobytes()
        self._emit(fmt.GAP, tid, thread.pid, payload, ts_ns=ts_ns, position=thread.position)
        self._counts["gaps"] += 1
        self._lost_events += int(lost)
        self._lost_tids.add(tid)
        if len(self._losses) < MAX_LISTED_LOSSES:
            self._losses.append(dict(tid=tid, pid=thread.pid, position=thread.position,
                                     lost=int(lost), ts_ns=ts_ns))
        self._note_ts(ts_ns)

    def end_thread(self, tid: int, end_ns: int | None = None) -> None:
        """`tid`'s trace is over (its thread exited)."""
        self._check_usable()
        thread = self._threads.get(tid)
        if thread is None:
            return  # never seen (or already ended): nothing to close
        self._emit_pending(tid)
        # The trace's length lets a reader notice events lost to a damaged record.
        payload = fmt.encode_json(dict(tid=tid, end_ns=end_ns, syscalls=thread.position))
        self._emit(fmt.THREAD_END, tid, thread.pid, payload, ts_ns=end_ns)
        del self._threads[tid]

    def note(self, kind: str, **fields) -> None:
        """A timestamped fact beside the streams, e.g. note("exec", tid=.., filename=..)."""
        self._check_usable()
        tid = int(fields.get("tid") or 0)
        pid = int(fields.get("pid") or 0)
        if tid in self._threads:
            self._emit_pending(tid)  # keep the note after the events that preceded it
        ts_ns = fields.get("ts_ns")
        payload = fmt.encode_json({**fields, "kind": kind})
        self._emit(fmt.NOTE, tid, pid, payload, ts_ns=ts_ns if isinstance(ts_ns, int) else None)
        self._counts["notes"] += 1

    def touched(self, tid: int, pid: int, ts_ns: int | None = None, *, path: str | None = None,
                **fields) -> None:
        """What `tid` touched at this point of its stream (a file, a program, a peer).

        `fields` are the collector's (kind, syscall, argv, peer, ...); `path` is kept
        faithfully (see format.encode_path). kind "lost" with `lost=N` records touched
        records the kernel could not hand over.
        """
        self._check_usable()
        thread = self._threads.get(tid)
        if thread is not None:
            self._emit_pending(tid)  # after the events that preceded it
        clean = fmt.touched_fields(fields, path)
        if clean.get("kind") == "lost":
            self._lost_touched += int(clean.get("lost") or 0)
        self._emit(fmt.TOUCHED, tid, pid, fmt.encode_json(clean), ts_ns=ts_ns,
                   position=thread.position if thread else 0)
        self._counts["touched"] += 1
        self._note_ts(ts_ns)

    def flush(self) -> None:
        """Write everything buffered; afterwards it survives a crash of this process."""
        self._check_usable()
        for tid in list(self._threads):
            self._emit_pending(tid)
        if not self._out:
            return
        out, size, events = self._out, self._buffered, self._out_events
        self._out, self._buffered, self._out_events = [], 0, 0
        try:
            write_all_vectored(self._fd, out)
        except OSError as exc:
            self._fail(exc, events)
        # No fsync here: a kill -9 loses nothing written, and an fsync of seconds of data
        # would stall the recorder's drain loop long enough for the kernel buffers to
        # overflow. close() fsyncs once.
        self._size += size

    def close(self, stats: dict | None = None) -> None:
        """Flush, fsync, and mark the dataset complete in meta.json (idempotent).

        A write error while closing still leaves meta.json saying `failed` (the space
        reserve makes room for it on a full disk), then raises. After an earlier write
        error, close() only records that and never raises a second time.
        """
        if self._closed:
            return
        error = None
        if self._failed is None:
            try:
                self.flush()
                self._fsync()
            except UserError as exc:
                error = exc
        self._closed = True
        os.close(self._fd)
        release_space(self.path / RESERVE_FILE)
        try:
            write_json_atomic(self.path / fmt.META_FILE, self._final_meta(stats))
        except OSError as exc:
            if self._failed is None:
                raise as_write_error(exc, self.path, fmt.META_FILE) from None
        if error is not None:
            raise error

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    def syscalls(self) -> int:
        """Syscall ids accepted so far (written or buffered)."""
        return self._syscalls

    # -- internals ---------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise ValueError("DatasetWriter is closed")

    def _implicit_start(self, tid: int) -> _Thread:
        # Events for a thread nobody announced: keep them, with the pid unknown (0).
        self.start_thread(tid, pid=0)
        return self._threads[tid]

    def _emit(self, kind: int, tid: int, pid: int, payload: bytes, *,
              ts_ns: int | None = None, position: int = 0) -> None:
        self._emit_parts(kind, tid, pid, [payload], ts_ns=ts_ns, position=position)

    def _emit_parts(self, kind: int, tid: int, pid: int, parts: list, *,
                    ts_ns: int | None = None, position: int = 0) -> None:
        buffers = fmt.encode_record_parts(kind, tid, pid, parts, ts_ns=max(ts_ns or 0, 0),
                                          position=position)
        self._out += buffers
        # Buffered id arrays were counted by append(); count the header and padding here.
        self._buffered += len(buffers[0]) + len(buffers[-1])
        if kind != fmt.EVENTS:
            self._buffered += sum(len(p) for p in parts)
        self._counts["records"] += 1

    def _emit_pending(self, tid: int) -> None:
        """The thread's buffered ids as EVENTS records (one unless it exceeds the maximum)."""
        thread = self._threads[tid]
        if not thread.pending:
            return
        pending, thread.pending = thread.pending, []
        # One C-level concatenation beats handling many small runs one by one in Python.
        ids = np.concatenate(pending) if len(pending) > 1 else pending[0]
        position = thread.position - len(ids)
        ts_ns = thread.pending_ts
        for start in range(0, len(ids), MAX_IDS_PER_RECORD):
            piece = ids[start : start + MAX_IDS_PER_RECORD]
            self._emit_parts(fmt.EVENTS, tid, thread.pid, [piece], ts_ns=ts_ns,
                             position=position + start)
            self._out_events += len(piece)
            ts_ns = 0  # only the first record's first event has a known time

    def _fail(self, exc: OSError, lost: int) -> None:
        # Cut the half-written append off so the log ends on a whole record, then stay
        # failed: further calls raise the same error so the recorder stops.
        with contextlib.suppress(OSError):  # if it fails, the reader reports a torn tail
            os.ftruncate(self._fd, self._size)
        self._failed = as_write_error(exc, self.path, f"the last {lost} syscall events")
        self._meta["error"] = self._failed.message
        raise self._failed from None

    def _fsync(self) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = as_write_error(exc, self.path, fmt.LOG_FILE)
            self._meta["error"] = self._failed.message
            raise self._failed from None

    def _note_ts(self, ts_ns: int | None) -> None:
        if ts_ns:
            self._ts_first = min(self._ts_first or ts_ns, ts_ns)
            self._ts_last = max(self._ts_last, ts_ns)

    def _final_meta(self, stats: dict | None) -> dict:
        meta = dict(self._meta)
        meta["status"] = STATUS_FAILED if self._failed else STATUS_COMPLETE
        meta["closed"] = now_iso()
        meta["counts"] = {
            **self._counts,
            "syscalls": self._syscalls,
            "processes": len(self._pids - {0}),
            "bytes": self._size,
        }
        # On a full disk the final meta.json must fit in the reserve: list fewer losses.
        where = self._losses[:MAX_LISTED_LOSSES_WHEN_FAILED] if self._failed else self._losses
        meta["losses"] = {
            "events": self._lost_events,
            "gaps": self._counts["gaps"],
            "threads": len(self._lost_tids),
            "where": where,
            "unlisted": self._counts["gaps"] - len(where),
            "touched": self._lost_touched,
        }
        if self._ts_first:
            meta["ts_range_ns"] = [self._ts_first, self._ts_last]
        if stats is not None:
            meta["collector"] = stats
        return meta


def _as_ids(ids: np.ndarray) -> np.ndarray:
    """A private little-endian u16 copy (callers may reuse their buffers)."""
    ids = np.asarray(ids)
    if ids.dtype != fmt.IDS_DTYPE:
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() > 0xFFFF):
            raise ValueError("syscall ids must be integers in 0..65535")
        return ids.astype(fmt.IDS_DTYPE).reshape(-1)
    return ids.reshape(-1).copy()


__all__ = ["DatasetWriter", "DatasetWriteError", "claim_directory"]
