"""Decode kernel records into run tables with numpy: no Python work per syscall.

A run is one thread's consecutive syscall ids on one CPU, stamped with the time of its
first event. Runs from losses carry a count of missing events instead of ids; lifecycle
records (exec, exit) become zero-length runs so one sort orders everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sysgram.collector import abi

KIND_EVENTS, KIND_GAP, KIND_EXEC, KIND_EXIT = 0, 1, 2, 3


@dataclass
class Runs:
    """Columns of a run table. `offset`/`length` index the ids array that goes with it."""

    tid: np.ndarray      # uint32
    tgid: np.ndarray     # uint32
    ts: np.ndarray       # uint64
    kind: np.ndarray     # uint8
    offset: np.ndarray   # int64
    length: np.ndarray   # int64: ids (events) or lost events (gaps)
    ref: np.ndarray      # int64: lifecycle record index, -1 otherwise

    @classmethod
    def empty(cls) -> Runs:
        return cls(*(np.empty(0, dtype=d) for d in _DTYPES))

    def __len__(self) -> int:
        return len(self.tid)

    def take(self, index: np.ndarray) -> Runs:
        return Runs(*(getattr(self, f)[index] for f in _FIELDS))

    @staticmethod
    def concat(parts: list[Runs]) -> Runs:
        parts = [p for p in parts if len(p)]
        if not parts:
            return Runs.empty()
        return Runs(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("tid", "tgid", "ts", "kind", "offset", "length", "ref")
_DTYPES = (np.uint32, np.uint32, np.uint64, np.uint8, np.int64, np.int64, np.int64)


def _run_lengths(n_ids: np.ndarray, n_runs: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(k, R) lengths of each batch's runs: next run's start (or the batch's end) - start."""
    slots = np.arange(starts.shape[1])
    nxt = np.empty_like(starts)
    nxt[:, :-1] = starts[:, 1:]
    nxt[:, -1] = n_ids
    ends = np.where(slots[None, :] + 1 < n_runs[:, None], nxt, n_ids[:, None])
    return ends.astype(np.int64) - starts.astype(np.int64)


def decode_batches(blob: bytes) -> tuple[Runs, np.ndarray]:
    """Batches (concatenated records) -> their runs and a uint16 array their offsets index."""
    if not blob:
        return Runs.empty(), np.empty(0, np.uint16)
    batches = np.frombuffer(blob, dtype=abi.BATCH)
    n_ids = np.minimum(batches["hdr"]["n_ids"], abi.BATCH_IDS).astype(np.int64)
    n_runs = np.minimum(batches["hdr"]["n_runs"], abi.BATCH_RUNS).astype(np.int64)
    runs = batches["runs"]
    lengths = _run_lengths(n_ids, n_runs, runs["start"])
    valid = np.arange(abi.BATCH_RUNS)[None, :] < n_runs[:, None]
    # One contiguous copy of every batch's id slots (a memcpy); runs index into it, and
    # the unused tail of a partial batch is simply never referenced.
    ids = np.ascontiguousarray(batches["ids"]).reshape(-1)
    batch_offset = np.arange(len(batches), dtype=np.int64) * abi.BATCH_IDS
    offsets = batch_offset[:, None] + runs["start"].astype(np.int64)
    count = int(valid.sum())
    table = Runs(
        tid=runs["tid"][valid],
        tgid=runs["tgid"][valid],
        ts=runs["ts"][valid],
        kind=np.full(count, KIND_EVENTS, np.uint8),
        offset=offsets[valid],
        length=lengths[valid],
        ref=np.full(count, -1, np.int64),
    )
    return table, ids


def decode_losses(blob: bytes) -> Runs:
    """Loss records (header + run table of a batch the kernel could not hand over) -> gaps."""
    if not blob:
        return Runs.empty()
    records = np.frombuffer(blob, dtype=abi.LOSS)
    n_ids = np.minimum(records["hdr"]["n_ids"], abi.BATCH_IDS).astype(np.int64)
    n_runs = np.minimum(records["hdr"]["n_runs"], abi.BATCH_RUNS).astype(np.int64)
    runs = records["runs"]
    lengths = _run_lengths(n_ids, n_runs, runs["start"])
    valid = np.arange(abi.BATCH_RUNS)[None, :] < n_runs[:, None]
    count = int(valid.sum())
    return Runs(
        tid=runs["tid"][valid],
        tgid=runs["tgid"][valid],
        ts=runs["ts"][valid],
        kind=np.full(count, KIND_GAP, np.uint8),
        offset=np.zeros(count, np.int64),
        length=lengths[valid],
        ref=np.full(count, -1, np.int64),
    )


def decode_life(blob: bytes) -> np.ndarray:
    """Lifecycle records -> a structured array (dtype abi.LIFE)."""
    if not blob:
        return np.empty(0, dtype=abi.LIFE)
    return np.frombuffer(blob, dtype=abi.LIFE).copy()
