"""Windows over many streams: same placement as the one-stream reference, cut at losses."""

import numpy as np
import pytest

from sysgram.features import (
    Sequences,
    sliding_windows,
    split_at_gaps,
    window_counts,
    window_streams,
)


def _streams(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return Sequences.from_list([rng.integers(0, 300, n).astype(np.uint16) for n in lengths])


@pytest.mark.parametrize("lengths", [[0, 5, 63, 64, 65, 80, 100, 1000, 1001], [200, 300], [3]])
def test_window_streams_matches_per_stream_reference(lengths):
    streams = _streams(lengths)
    got = window_streams(streams, 64, 16)
    expected, sources = [], []
    for i in range(len(streams)):
        ref = sliding_windows(streams[i], 64, 16)
        expected += [ref[k] for k in range(len(ref))]
        sources += [i] * len(ref)
    assert len(got) == len(expected)
    assert got.source.tolist() == sources
    for k, window in enumerate(expected):
        assert np.array_equal(got.seqs[k], window)
        # `start` locates the window inside its stream.
        s = streams[got.source[k]]
        assert np.array_equal(s[got.start[k] : got.start[k] + len(window)], window)


def test_window_counts():
    assert window_counts(np.array([0, 1, 64, 65, 80, 81]), 64, 16).tolist() == [0, 1, 1, 2, 2, 3]


def test_split_at_gaps_cuts_streams_and_keeps_order():
    streams = Sequences.from_list([np.arange(10, dtype=np.uint16), np.arange(5, dtype=np.uint16)])
    gaps = [np.array([[3, 7], [3, 1], [8, 2]]), np.zeros((0, 2), dtype=np.int64)]
    pieces, source = split_at_gaps(streams, gaps)
    assert [pieces[i].tolist() for i in range(len(pieces))] == [
        [0, 1, 2], [3, 4, 5, 6, 7], [8, 9], [0, 1, 2, 3, 4]]
    assert source.tolist() == [0, 0, 0, 1]


def test_no_window_spans_a_gap():
    ids = np.arange(200, dtype=np.uint16) % 50
    pieces, _ = split_at_gaps(Sequences.from_list([ids]), [np.array([[100, 5]])])
    windows = window_streams(pieces, 64, 16)
    for k in range(len(windows)):
        pos = windows.start[k] + (0 if windows.source[k] == 0 else 100)
        assert pos + len(windows.seqs[k]) <= 100 or pos >= 100
