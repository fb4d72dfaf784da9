"""The rolling window of one thread's syscall stream, fed piece by piece.

Fed the whole stream in any number of pieces and then closed, a `ThreadStream` yields
exactly the windows `sysgram.features.sliding_windows` cuts from the whole stream at
once (windows every `stride` calls, the last one aligned to the end, one short window
for a stream shorter than `length`), so live scoring sees what training saw.

A loss (a gap in the stream) ends the current segment: the windows that would have
spanned the missing calls are counted as unscored, never scored as if complete, and
windowing starts afresh after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EMPTY = np.zeros(0, dtype=np.uint16)


@dataclass
class Cut:
    """What one feed or close produced: full windows (n, length) and a last window."""

    windows: np.ndarray  # uint16 (n, length); n may be 0
    last: np.ndarray | None = None  # an end-aligned or short window, at end of a segment
    unscored: int = 0  # windows lost to a gap or an incomplete segment


class ThreadStream:
    """Rolling state of one thread: the calls after the last window start, bounded."""

    __slots__ = ("length", "stride", "_buf", "_buf_start", "_seg_len", "_next_start",
                 "_covered_to", "_whole")

    def __init__(self, length: int, stride: int) -> None:
        if length < 1 or stride < 1:
            raise ValueError("window length and stride must be at least 1")
        self.length = length
        self.stride = stride
        self._reset(whole=True)

    def _reset(self, whole: bool) -> None:
        self._buf = _EMPTY
        self._buf_start = 0  # segment position of _buf[0]
        self._seg_len = 0  # calls seen in this segment
        self._next_start = 0  # segment position of the next full window
        self._covered_to = 0  # calls [0, covered_to) are inside some window already
        # A short window stands for a whole stream only when the segment began with the
        # thread (or its exec), not after a loss.
        self._whole = whole

    @property
    def buffered(self) -> int:
        """Calls held in memory for this thread (at most about length + stride)."""
        return len(self._buf)

    def feed(self, ids: np.ndarray) -> Cut:
        """Append calls; return the full windows they complete."""
        ids = np.asarray(ids, dtype=np.uint16)
        if len(ids) == 0:
            return Cut(np.zeros((0, self.length), dtype=np.uint16))
        buf = np.concatenate((self._buf, ids)) if len(self._buf) else ids
        self._seg_len += len(ids)
        last_start = self._seg_len - self.length
        if last_start >= self._next_start:
            starts = np.arange(self._next_start, last_start + 1, self.stride)
            view = np.lib.stride_tricks.sliding_window_view(buf, self.length)
            windows = view[starts - self._buf_start]
            self._next_start = int(starts[-1]) + self.stride
            self._covered_to = max(self._covered_to, int(starts[-1]) + self.length)
        else:
            windows = np.zeros((0, self.length), dtype=np.uint16)
        # Keep what the next full window or an end-aligned last window needs.
        keep_from = max(self._buf_start, min(self._next_start, self._seg_len - self.length))
        self._buf = buf[keep_from - self._buf_start :].copy()
        self._buf_start = keep_from
        return Cut(windows.copy() if len(windows) else windows)

    def tail(self) -> np.ndarray | None:
        """The window that ends at the last call, when calls are not yet in any window
        (the thread went quiet mid-stride); those calls then count as covered, so the
        stream's close does not cut the same window again. Full windows only: a stream
        shorter than a window is judged at its end. The next full windows still come out
        as they would have: this adds a window, never moves one."""
        if self._covered_to >= self._seg_len or self._seg_len < self.length:
            return None
        start = self._seg_len - self.length - self._buf_start
        self._covered_to = self._seg_len
        return self._buf[start:].copy()

    def _close_segment(self, at_gap: bool = False) -> tuple[np.ndarray | None, int]:
        """The last window of the segment (if any calls are not yet in one), unscored count."""
        if self._covered_to >= self._seg_len:
            return None, 0
        if self._seg_len >= self.length:
            start = self._seg_len - self.length - self._buf_start
            return self._buf[start:].copy(), 0
        if self._whole and not at_gap:
            return self._buf.copy(), 0
        return None, 1  # a stub after a loss: not a whole stream, not a full window

    def close(self, restart: bool = False) -> Cut:
        """End of the stream (thread exit, or exec when `restart`): its last window."""
        last, unscored = self._close_segment()
        self._reset(whole=True)
        return Cut(np.zeros((0, self.length), dtype=np.uint16), last, unscored)

    def gap(self, lost: int) -> Cut:
        """`lost` calls are missing here: close the segment, count the windows lost."""
        last, unscored = self._close_segment(at_gap=True)
        # Windows of the full stream that would have overlapped the missing calls.
        unscored += max(1, -(-(self.length - 1 + max(lost, 0)) // self.stride))
        self._reset(whole=False)
        return Cut(np.zeros((0, self.length), dtype=np.uint16), last, unscored)
