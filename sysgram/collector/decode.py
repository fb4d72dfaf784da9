"""Decode kernel records into run tables with numpy: no Python work per syscall.

A run is one thread's consecutive syscall ids on one CPU, stamped with the time of its
first event. Runs from losses carry a count of missing events instead of ids; lifecycle
records (exec, exit) become zero-length runs so one sort orders everything.
"""

from __future__ import annotations

import numpy as np

from sysgram.collector import abi

KIND_EVENTS, KIND_GAP, KIND_EXEC, KIND_EXIT, KIND_TOUCHED = 0, 1, 2, 3, 4


RUN_TABLE = np.dtype([
    ("ts", "<u8"), ("tid", "<u4"), ("tgid", "<u4"), ("kind", "u1"),
    ("offset", "<i8"),   # events: index of the run's first id in its ids array
    ("length", "<i8"),   # ids (events) or lost events (gaps)
    ("ref", "<i8"),      # lifecycle or touched record index, -1 otherwise
])


class Runs:
    """A run table: one structured array, so taking or joining tables is one numpy call."""

    __slots__ = ("table",)

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    @classmethod
    def empty(cls) -> Runs:
        return cls(np.empty(0, RUN_TABLE))

    @classmethod
    def build(cls, **columns: np.ndarray) -> Runs:
        table = np.empty(len(columns["tid"]), RUN_TABLE)
        table["ref"] = -1
        table["offset"] = 0
        for name, values in columns.items():
            table[name] = values
        return cls(table)

    def __len__(self) -> int:
        return len(self.table)

    def take(self, index: np.ndarray) -> Runs:
        return Runs(self.table[index])

    @staticmethod
    def concat(parts: list[Runs]) -> Runs:
        tables = [p.table for p in parts if len(p)]
        if not tables:
            return Runs.empty()
        return Runs(tables[0] if len(tables) == 1 else np.concatenate(tables))

    tid = property(lambda self: self.table["tid"])
    tgid = property(lambda self: self.table["tgid"])
    ts = property(lambda self: self.table["ts"])
    kind = property(lambda self: self.table["kind"])
    length = property(lambda self: self.table["length"])
    ref = property(lambda self: self.table["ref"])

    @property
    def offset(self) -> np.ndarray:
        return self.table["offset"]

    @offset.setter
    def offset(self, values: np.ndarray) -> None:
        self.table["offset"] = values


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
    runs = batches["runs"]
    valid, lengths = _used_runs(batches)
    # One contiguous copy of every batch's id slots (a memcpy); runs index into it, and
    # the unused tail of a partial batch is simply never referenced.
    ids = np.ascontiguousarray(batches["ids"]).reshape(-1)
    batch_offset = np.arange(len(batches), dtype=np.int64) * abi.BATCH_IDS
    offsets = batch_offset[:, None] + runs["start"].astype(np.int64)
    picked = runs[valid]
    table = Runs.build(tid=picked["tid"], tgid=picked["tgid"], ts=picked["ts"],
                       kind=KIND_EVENTS, offset=offsets[valid], length=lengths)
    return table, ids


def decode_losses(blob: bytes) -> Runs:
    """Loss records (header + run table of a batch the kernel could not hand over) -> gaps."""
    if not blob:
        return Runs.empty()
    records = np.frombuffer(blob, dtype=abi.LOSS)
    valid, lengths = _used_runs(records)
    picked = records["runs"][valid]
    return Runs.build(tid=picked["tid"], tgid=picked["tgid"], ts=picked["ts"], kind=KIND_GAP,
                      length=lengths)


def _used_runs(records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the used run slots of each batch (or loss record), and their lengths.

    Batches and loss records share the header and run table; counts are clamped to the
    table sizes so a corrupt header cannot index past them.
    """
    n_ids = np.minimum(records["hdr"]["n_ids"], abi.BATCH_IDS).astype(np.int64)
    n_runs = np.minimum(records["hdr"]["n_runs"], abi.BATCH_RUNS).astype(np.int64)
    lengths = _run_lengths(n_ids, n_runs, records["runs"]["start"])
    valid = np.arange(abi.BATCH_RUNS)[None, :] < n_runs[:, None]
    return valid, lengths[valid]


def decode_life(blob: bytes) -> np.ndarray:
    """Lifecycle records -> a structured array (dtype abi.LIFE)."""
    if not blob:
        return np.empty(0, dtype=abi.LIFE)
    return np.frombuffer(blob, dtype=abi.LIFE).copy()
