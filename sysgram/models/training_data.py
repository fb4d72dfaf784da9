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

from sysgram.features import Sequences, ThreadStream, split_at_gaps
from sysgram.features.sequences import SYMBOL_LIMIT


@dataclass
class Streams:
    pieces: Sequences  # loss-free pieces of threads, in thread order
    thread_of_piece: np.ndarray  # int64 index into `threads`
    threads: list  # the ThreadTrace-like objects the pieces came from
    lost_events: int  # events known missing (the pieces are cut there)
    unencodable: int = 0  # calls numbered beyond the n-gram alphabet, folded into one symbol

    @property
    def n_threads(self) -> int:
        return len(self.threads)


def to_profile_ids(ids: np.ndarray, src_arch: str, arch: str) -> tuple[np.ndarray, int]:
    """Syscall numbers of `src_arch` as the numbers of a profile's `arch` (by name), and how
    many could not be encoded. The one translation `train`, `score`, `eval` and `watch`
    share: a profile trained on another table (an imported i386 corpus) must be fed its
    own numbers, and name them with its own table."""
    from sysgram.syscalls import translate

    out = np.asarray(translate(np.asarray(ids), src_arch, arch), dtype=np.uint16)
    if len(out) == 0 or int(out.max()) < SYMBOL_LIMIT:
        return out, 0
    out = out.copy()
    # Calls with no counterpart on `arch` (or unknown numbers) can land beyond what an
    # n-gram code holds: fold them into the last symbol, and count them.
    beyond = out >= SYMBOL_LIMIT
    unencodable = int(np.count_nonzero(beyond))
    if unencodable:
        out[beyond] = SYMBOL_LIMIT - 1
    return out, unencodable


def unencodable_warning(count: int, arch: str) -> str:
    """What to tell the user about calls `to_profile_ids` folded into one symbol."""
    return (f"{count:,} calls have numbers beyond the {arch} table and count as one "
            "'unknown' syscall.")


def to_streams(threads: list, arch: str) -> Streams:
    """Map to `arch`, cut at gaps. `threads` have ids, gaps and arch (like ThreadTrace)."""
    whole = Sequences.from_list([np.asarray(t.ids) for t in threads])
    src = {getattr(t, "arch", arch) or arch for t in threads}
    unencodable = 0
    if src != {arch}:  # per source table, not per thread: one lookup each
        values = whole.values.astype(np.uint16)
        arch_of = np.array([getattr(t, "arch", arch) or arch for t in threads])
        for name in src:
            at = np.flatnonzero(np.repeat(arch_of == name, whole.lengths))
            values[at], lost = to_profile_ids(values[at], name, arch)
            unencodable += lost
        whole = Sequences(values, whole.offsets)
    else:
        values, unencodable = to_profile_ids(whole.values, arch, arch)
        whole = Sequences(values, whole.offsets)
    gaps = [np.asarray(getattr(t, "gaps", np.zeros((0, 2))), dtype=np.int64).reshape(-1, 2)
            for t in threads]
    pieces, source = split_at_gaps(whole, gaps)
    lost = int(sum(g[:, 1].sum() for g in gaps if len(g)))
    return Streams(pieces, source, list(threads), lost, unencodable)


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
    start_ns: int | None = None  # CLOCK_MONOTONIC: its start, else its first calls
    end_ns: int | None = None    # its exit, else its last calls seen
    created: bool | None = None  # started while traced (ThreadStart.created)

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
        self.ended: list[RecordedThread] = []  # earlier threads of a tid the kernel reused
        self.events = 0
        self.lost = 0
        self._unattributed = 0  # the collector's count of unattributed losses, last seen

    def add(self, items: list) -> list[tuple[int, np.ndarray]]:
        """Take a drain's items; return the (tid, ids) pieces that arrived, in order."""
        from sysgram.collector import Gap, ThreadEvents, ThreadExit, ThreadStart

        arrived = []
        for item in items:  # loop over drain items (batches of calls), not calls
            if isinstance(item, ThreadStart):
                earlier = self.threads.get(item.tid)
                if earlier is not None and earlier.length:  # a reused tid: keep the first
                    self.ended.append(earlier)
                self.threads[item.tid] = RecordedThread(
                    item.tid, item.pid, item.comm, item.exe, item.exe_sha256, self.arch,
                    start_ns=item.ts_ns or None, created=item.created,
                )
            elif isinstance(item, ThreadEvents):
                thread = self._thread(item.tid, item.pid)
                thread.start_ns = thread.start_ns or item.ts_ns or None
                thread.end_ns = max(thread.end_ns or 0, item.ts_ns) or None
                thread.chunks.append(item.ids)
                thread.length += len(item.ids)
                self.events += len(item.ids)
                arrived.append((item.tid, item.ids))
            elif isinstance(item, Gap):
                thread = self._thread(item.tid, item.pid)
                thread.gap_rows.append((thread.length, item.lost))
                self.lost += item.lost
            elif isinstance(item, ThreadExit) and item.tid in self.threads:
                self.threads[item.tid].end_ns = item.ts_ns or self.threads[item.tid].end_ns
        return arrived

    def lose_everywhere(self, unattributed: int) -> bool:
        """The collector's count of losses no thread can be named for (`CollectorStats.
        unattributed`): when it rose, every thread is cut here (a gap of 0 known calls), so
        no training window spans what it may have lost. Whether it rose."""
        if unattributed <= self._unattributed:
            return False
        self.lost += unattributed - self._unattributed
        self._unattributed = unattributed
        for thread in self.threads.values():  # per thread, not per call
            if thread.length:
                thread.gap_rows.append((thread.length, 0))
        return True

    def _thread(self, tid: int, pid: int) -> RecordedThread:
        if tid not in self.threads:
            self.threads[tid] = RecordedThread(tid, pid, arch=self.arch)
        return self.threads[tid]

    def traces(self) -> list[RecordedThread]:
        return self.ended + [t for t in self.threads.values() if t.length]


class LiveLearning:
    """A live recording plus its novelty rate and the --until-stable decision (no terminal).

    Novelty is measured on the windows the profile will learn from: new n-grams per 1,000
    windows over the last `span` seconds. Stable = that rate stayed below `stable_rate`
    for `stable_for` seconds, after at least `min_windows` windows. Memory is bounded:
    past `max_calls` recorded calls, `full` turns true and the caller stops recording.
    """

    def __init__(self, arch: str, window: int, stride: int, orders: tuple[int, ...], *,
                 stable_rate: float = 1.0, stable_for: float = 60.0, min_windows: int = 1000,
                 span: float = 10.0, max_calls: int = 50_000_000) -> None:
        from sysgram.features import NoveltyTracker

        self.recording = LiveRecording(arch)
        self.novelty = NoveltyTracker(tuple(orders))
        self.window, self.stride = window, stride
        self.stable_rate, self.stable_for = stable_rate, stable_for
        self.min_windows, self.span, self.max_calls = min_windows, span, max_calls
        self._streams: dict[int, ThreadStream] = {}
        self._points: list[tuple[float, int, int]] = []  # (time, windows, new n-grams)
        self._low_since: float | None = None

    def add(self, items: list, now: float, unattributed: int = 0) -> None:
        """Take a drain's items at time `now` (seconds, monotonic); `unattributed` is the
        collector's count of losses no thread can be named for, read before the poll."""
        if self.recording.lose_everywhere(unattributed):
            for stream in self._streams.values():  # novelty windows never span it either
                stream.gap(0)
        batches = []
        for tid, ids in self.recording.add(items):  # per piece of a thread, not per call
            stream = self._streams.setdefault(tid, ThreadStream(self.window, self.stride))
            windows = stream.feed(ids).windows
            if len(windows):
                batches.append(windows)
        if batches:
            batch = Sequences.from_windows(np.concatenate(batches))
            self._points.append((now, len(batch), self.novelty.update(batch)))
        self._points = [p for p in self._points if now - p[0] <= self.span]

    def rate(self) -> float | None:
        """New n-grams per 1,000 windows over the last `span` seconds (None: no windows)."""
        windows = sum(p[1] for p in self._points)
        return 1000.0 * sum(p[2] for p in self._points) / windows if windows else None

    def stable(self, now: float) -> bool:
        rate = self.rate()
        if self.novelty.windows < self.min_windows or rate is None or rate >= self.stable_rate:
            self._low_since = None
            return False
        self._low_since = self._low_since if self._low_since is not None else now
        return now - self._low_since >= self.stable_for

    @property
    def full(self) -> bool:
        return self.recording.events >= self.max_calls
