"""The default live detector: windows judged by a language model, streams by presence-lm.

One object serves both jobs a live profile has (docs/design.md §5):
- **windows** (`score_samples`): the mean surprise per call of a 64-call window under an
  n-gram language model fitted on the training windows, with the window's single most
  surprising call left out. An attack brings calls and transitions of its own, and their
  costs add up; one rare but benign call (a `getrusage` training never saw) is left out,
  so it alone does not make a window anomalous. The score grows with every further odd
  call and never saturates, unlike a kernel machine far from its support;
- **streams** (`score_streams`, and the running form `sysgram.models.running` gives for
  `stream_model_`): the thread's whole stream so far, scored by `PresenceLM` (which calls
  and 3-grams it used, and how likely its order was). On ADFA-LD whole streams separate
  attacks far better than any roll-up of window scores, and a long-lived thread is judged
  as it runs. The stream model learns from the training streams when the profile passes
  them (`fit(windows, streams=...)`) and there are at least `defaults.MIN_STREAMS` of them;
  else from a sample of the windows.
"""

from __future__ import annotations

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.models import defaults
from sysgram.models.distinct import distinct_sample, score_distinct
from sysgram.models.ensemble import MIN_PER_FOLD, PresenceLM
from sysgram.models.estimator import Estimator
from sysgram.models.ngram_lm import NgramLanguageModel

MAX_STREAM_FIT_WINDOWS = 4000  # windows the stream model learns from without streams


class LMStreamDetector(Estimator):
    """Window score: trimmed mean NLL per call; stream score: `PresenceLM` (higher = stranger)."""

    def __init__(self, order: int = 6, trim: int = 1, n_folds: int = 5,
                 random_state: int | None = 0) -> None:
        self.order = order
        self.trim = trim
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, seqs: Sequences, y=None, streams: Sequences | None = None) -> LMStreamDetector:
        if len(seqs) == 0:
            raise ValueError("cannot fit a detector on zero sequences")
        self.window_model_ = NgramLanguageModel(self.order).fit(seqs)
        if streams is not None and len(streams) >= defaults.MIN_STREAMS:
            source, self.stream_source_ = streams, "streams"
        else:
            source, _ = distinct_sample(seqs, MAX_STREAM_FIT_WINDOWS, self.random_state)
            self.stream_source_ = "windows"
        if len(source) < 2 * MIN_PER_FOLD:   # too few distinct sequences for its folds
            self.stream_model_, self.stream_source_ = None, "none"
            return self
        self.stream_model_ = PresenceLM(n_folds=self.n_folds,
                                        random_state=self.random_state).fit(source)
        return self

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        """Each window's mean NLL per call, its `trim` most surprising calls left out."""
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        return score_distinct(seqs, self._trimmed_mean_nll)

    def _trimmed_mean_nll(self, seqs: Sequences) -> np.ndarray:
        nll = -self.window_model_.log_prob(seqs)
        lengths = seqs.lengths
        if len(nll) == len(seqs) * int(lengths[0]):  # equal lengths: sort rows in 2-D
            rows = np.sort(nll.reshape(len(seqs), -1), axis=1)
            kept = rows[:, : max(rows.shape[1] - self.trim, 1)]
            return kept.mean(axis=1)
        out = np.zeros(len(seqs), dtype=np.float64)
        for i in np.flatnonzero(lengths):  # ragged (short streams): one row at a time
            row = np.sort(nll[seqs.offsets[i] : seqs.offsets[i + 1]])
            out[i] = row[: max(len(row) - self.trim, 1)].mean()
        return out

    def score_streams(self, seqs: Sequences) -> np.ndarray:
        """Each sequence scored whole by the stream model (a thread's stream so far); the
        window model's trimmed mean surprise when training had too little for one."""
        if self.stream_model_ is None:
            return score_distinct(seqs, self._trimmed_mean_nll)
        return self.stream_model_.score_samples(seqs)

    def stream_reference_scores(self) -> np.ndarray | None:
        """Out-of-fold scores of the training streams (normal, never seen by the model that
        scored them), or None when the stream model learnt from windows."""
        if self.stream_source_ != "streams":
            return None
        return self.stream_model_.out_of_fold_scores()
