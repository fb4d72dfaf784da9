"""Thread traces (recordings, corpora, live drains) -> the loss-free streams a profile sees.

Every source goes through `to_streams`: syscall numbers are mapped to the profile's arch
by name, each thread is cut where events were lost (no window may span a loss), and the
pieces come back as one `Sequences` batch with the thread each piece belongs to.
`LiveRecording` accumulates a collector's drains into the same thread traces.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from sysgram.features import Sequences, split_at_gaps


@dataclass
class Streams:
    pieces: Sequences  # loss-free pieces of threads, in thread order
    thread_of_piece: np.ndarray  # int64 index into `threads`
    threads: list  # the ThreadTrace-like objects the pieces came from
    lost_events: int  # events known missing (the pieces are cut there)

    @property
    def n_threads(self) -> int:
        return len(self.threads)


def to_streams(threads: list, arch: str) -> Streams:
    """Map to `arch`, cut at gaps. `threads` have ids, gaps and arch (like ThreadTrace)."""
    from sysgram.syscalls import translate

    ids = [translate(np.asarray(t.ids), getattr(t, "arch", arch), arch) for t in threads]
    whole = Sequences.from_list(ids)
    gaps = [np.asarray(getattr(t, "gaps", np.zeros((0, 2))), dtype=np.int64).reshape(-1, 2)
            for t in threads]
    pieces, source = split_at_gaps(whole, gaps)
    lost = int(sum(g[:, 1].sum() for g in gaps if len(g)))
    return Streams(pieces, source, list(threads), lost)


def binary_identity(threads: list, comm: str) -> dict:
    """The binary most of `comm`'s threads ran: name, path and sha256 (when recorded)."""
    mine = [t for t in threads if getattr(t, "comm", None) == comm] or threads
    seen = Counter((getattr(t, "exe", None), getattr(t, "exe_sha256", None)) for t in mine)
    seen.pop((None, None), None)
    if not seen:
        return {"name": comm, "path": None, "sha256": None}
    (path, sha), _ = seen.most_common(1)[0]
    return {"name": comm, "path": path, "sha256": sha, "variants": len(seen)}


@dataclass
class RecordedThread:
    """A thread assembled from drain items (same fields `to_streams` reads)."""

    tid: int
    pid: int
    comm: str | None = None
    exe: str | None = None
    exe_sha256: str | None = None
    arch: str = ""
    chunks: list = field(default_factory=list)
    length: int = 0
    gap_rows: list = field(default_factory=list)

    @property
    def ids(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, dtype=np.uint16)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0]

    @property
    def gaps(self) -> np.ndarray:
        return np.asarray(self.gap_rows, dtype=np.int64).reshape(-1, 2)


class LiveRecording:
    """Collector drain items -> per-thread traces in memory, with counts of what was lost."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.threads: dict[int, RecordedThread] = {}
        self.events = 0
        self.lost = 0

    def add(self, items: list) -> list[tuple[int, np.ndarray]]:
        """Take a drain's items; return the (tid, ids) pieces that arrived, in order."""
        from sysgram.collector import Gap, ThreadEvents, ThreadStart

        arrived = []
        for item in items:  # loop over drain items (batches of calls), not calls
            if isinstance(item, ThreadStart):
                self.threads[item.tid] = RecordedThread(
                    item.tid, item.pid, item.comm, item.exe, item.exe_sha256, self.arch
                )
            elif isinstance(item, ThreadEvents):
                thread = self._thread(item.tid, item.pid)
                thread.chunks.append(item.ids)
                thread.length += len(item.ids)
                self.events += len(item.ids)
                arrived.append((item.tid, item.ids))
            elif isinstance(item, Gap):
                thread = self._thread(item.tid, item.pid)
                thread.gap_rows.append((thread.length, item.lost))
                self.lost += item.lost
        return arrived

    def _thread(self, tid: int, pid: int) -> RecordedThread:
        if tid not in self.threads:
            self.threads[tid] = RecordedThread(tid, pid, arch=self.arch)
        return self.threads[tid]

    def traces(self) -> list[RecordedThread]:
        return [t for t in self.threads.values() if t.length]
