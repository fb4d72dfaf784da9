"""ScoreMemo: a window's score is computed once per content over a whole watch."""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.watch.scoring import ScoreMemo


class CountingScore:
    """A score that depends on content only (as every profile's does), counting what it saw."""

    def __init__(self) -> None:
        self.scored = 0

    def __call__(self, windows: Sequences) -> np.ndarray:
        self.scored += len(windows)
        rows = windows.values.reshape(len(windows), -1).astype(np.float64)
        return rows @ np.arange(1, rows.shape[1] + 1)


def windows(rows: list[list[int]]) -> Sequences:
    return Sequences.from_list([np.array(r, np.uint16) for r in rows])


def test_a_window_seen_in_an_earlier_batch_is_not_scored_again():
    score = CountingScore()
    memo = ScoreMemo(score)
    first = windows([[1, 2, 3], [4, 5, 6], [1, 2, 3]])
    second = windows([[4, 5, 6], [7, 8, 9], [1, 2, 3]])
    assert memo(first).tolist() == score(first).tolist()
    score.scored = 0
    assert memo(second).tolist() == [32.0, 50.0, 14.0]
    assert score.scored == 1                      # only [7, 8, 9] was new
    # scored: 2 distinct of the first batch, 1 of the second; the other 3 were remembered
    assert (memo.hits, memo.misses) == (3, 3)


def test_the_memo_stays_bounded_and_forgets_what_did_not_recur():
    score = CountingScore()
    memo = ScoreMemo(score, size=2)
    memo(windows([[1, 1], [2, 2]]))
    memo(windows([[3, 3]]))          # the current generation was full: [1,1] and [2,2] age
    memo(windows([[1, 1]]))          # recalled from the old generation, so kept
    memo(windows([[4, 4], [5, 5]]))  # ages again: [2, 2] recurred in neither, and is gone
    assert len(memo._current) + len(memo._old) <= 2 * 2
    score.scored = 0
    memo(windows([[2, 2]]))
    assert score.scored == 1
    score.scored = 0
    memo(windows([[5, 5]]))
    assert score.scored == 0
