"""A binary's profile: windows -> detector -> calibrated threshold -> thread roll-up.

`Profile` is a scikit-learn-style estimator over thread streams (a `Sequences` batch,
one item per thread, or per loss-free piece of a thread). Parameters left at None take
the project defaults from `sysgram.models.defaults` at fit time, so `train`, `eval` and
`Profile()` agree.

Fitting holds out normal windows for calibration, by whole threads where there are
enough threads (windows of one thread overlap and look alike, so a random split of
windows would flatter the threshold), else by blocks of consecutive windows. The
detector is fitted on the rest and kept as is: refitting on everything after
calibrating would make the calibrated false-alarm rate a promise it no longer keeps.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from sysgram.errors import UserError
from sysgram.features import NgramVocabulary, Sequences, Windows, window_streams
from sysgram.features.novelty import novelty_curve_of_streams
from sysgram.features.sequences import SYMBOL_LIMIT, decode_ngram
from sysgram.models import defaults
from sysgram.models.registry import detector_class, get_detector, get_rollup
from sysgram.models.threshold import MIN_CALIBRATION, calibrate

MIN_FIT_WINDOWS = 200
MIN_SPLIT_THREADS = 5  # fewer threads than this: hold out blocks of windows instead
BLOCK_WINDOWS = 32  # consecutive windows held out together in the block split
MAX_LISTED = 20  # unseen n-grams listed per order in an explanation


class NotEnoughData(UserError):
    """Too few windows to fit and calibrate; says how many there are and are needed."""

    def __init__(self, have: int, need: int, window: int, stride: int) -> None:
        super().__init__(
            f"only {have} windows of {window} calls (every {stride}) to learn from, and a "
            f"profile needs at least {need}; record for longer or add more recordings."
        )
        self.have, self.need = have, need


class Profile(BaseEstimator):
    def __init__(
        self,
        detector: str | None = None,
        detector_params: dict | None = None,
        window: int | None = None,
        stride: int | None = None,
        orders: tuple[int, ...] | None = None,
        target_far: float = 1e-4,
        calibration_fraction: float = 0.2,
        rollup: str | None = None,
        arch: str | None = None,
        require_novelty: bool = True,
        random_state: int | None = 0,
    ) -> None:
        self.detector = detector
        self.detector_params = detector_params
        self.window = window
        self.stride = stride
        self.orders = orders
        self.target_far = target_far
        self.calibration_fraction = calibration_fraction
        self.rollup = rollup
        self.arch = arch
        self.require_novelty = require_novelty
        self.random_state = random_state

    # --- fitting --------------------------------------------------------------------------

    def min_windows(self) -> int:
        """Windows needed to fit and calibrate with this calibration fraction."""
        frac = self.calibration_fraction
        return max(MIN_FIT_WINDOWS + MIN_CALIBRATION, int(np.ceil(MIN_CALIBRATION / frac)),
                   int(np.ceil(MIN_FIT_WINDOWS / (1 - frac))))

    def fit(self, traces: Sequences, y=None) -> Profile:
        """Learn from normal thread streams; returns self."""
        self._resolve_config()
        windows = self.windows(traces)
        need = self.min_windows()
        if len(windows) < need:
            raise NotEnoughData(len(windows), need, self.window_, self.stride_)
        rng = np.random.default_rng(self.random_state)
        held, split = self._holdout(windows, len(traces), rng)
        self.detector_ = self._new_detector().fit(windows.seqs.take(np.flatnonzero(~held)),
                                                  **self._stream_fit_params(traces, windows, held))
        cal_scores = self.detector_.score_samples(windows.seqs.take(np.flatnonzero(held)))
        self.calibration_ = calibrate(cal_scores, self.target_far).as_dict()
        self.threshold_ = float(self.calibration_["threshold"])
        self.vocabulary_ = NgramVocabulary(self.orders_).fit(traces)
        self._keep_threshold_reachable(cal_scores)
        self.thread_threshold_ = self._thread_threshold(traces, windows, held, split, cal_scores)
        self.novelty_curve_ = novelty_curve_of_streams(
            traces, self.window_, self.stride_, self.orders_
        )
        self.training_summary_ = {
            "threads": len(traces),
            "syscalls": int(traces.offsets[-1]),
            "windows": len(windows),
            "fit_windows": int(np.count_nonzero(~held)),
            "calibration_windows": int(np.count_nonzero(held)),
            "split": split,
            "distinct_syscalls": len(self.vocabulary_.symbols_),
            "distinct_ngrams": {str(n): len(c) for n, c in self.vocabulary_.codes_.items()},
        }
        return self

    def _keep_threshold_reachable(self, cal_scores: np.ndarray) -> None:
        """Cap the threshold below the score of a window made only of unseen calls.

        Kernel detectors saturate: every window far from training scores the same
        (`score_ceiling_`). A tail extrapolated from few held-out windows can land above
        that ceiling, and then no window, however foreign, could ever alarm. Capped, the
        threshold sits halfway between the highest held-out score and the ceiling.
        """
        unseen = np.setdiff1d(np.arange(SYMBOL_LIMIT), self.vocabulary_.symbols_)
        foreign = np.resize(unseen, self.window_).astype(np.uint16)
        self.score_ceiling_ = float(self.detector_.score_samples(Sequences.from_list([foreign]))[0])
        top = float(np.max(cal_scores))
        if self.threshold_ >= self.score_ceiling_ and top < self.score_ceiling_:
            self.threshold_ = (top + self.score_ceiling_) / 2
            self.calibration_ = {**self.calibration_, "threshold": self.threshold_,
                                 "capped_below_ceiling": self.score_ceiling_}

    def _resolve_config(self) -> None:
        from sysgram.syscalls import host_arch

        self.detector_name_ = self.detector or defaults.DEFAULT_DETECTOR
        self.window_ = int(self.window or defaults.DEFAULT_WINDOW)
        self.stride_ = int(self.stride or defaults.DEFAULT_STRIDE)
        self.orders_ = tuple(int(n) for n in (self.orders or defaults.DEFAULT_ORDERS))
        self.rollup_name_ = self.rollup or defaults.DEFAULT_ROLLUP
        self.arch_ = self.arch or host_arch()
        if not 0 < self.calibration_fraction < 1:
            raise ValueError("calibration_fraction must be in (0, 1)")
        get_rollup(self.rollup_name_)  # unknown names fail before any work

    def _new_detector(self):
        params = dict(self.detector_params or {})
        accepted = detector_class(self.detector_name_)().get_params()
        if "orders" in accepted and "orders" not in params:
            params["orders"] = self.orders_
        if "random_state" in accepted and "random_state" not in params:
            params["random_state"] = self.random_state
        return get_detector(self.detector_name_, **params)

    def _stream_fit_params(self, traces: Sequences, windows: Windows, held: np.ndarray) -> dict:
        """`streams=`: the training streams none of whose windows were held out, for a
        detector that also judges whole streams (its `fit` takes them)."""
        import inspect

        if "streams" not in inspect.signature(detector_class(self.detector_name_).fit).parameters:
            return {}
        keep = np.setdiff1d(np.arange(len(traces)), windows.source[held])
        return {"streams": traces.take(keep)}

    def _holdout(
        self, windows: Windows, n_streams: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, str]:
        """Mask of held-out windows and how they were chosen ("threads" or "blocks")."""
        n, frac = len(windows), self.calibration_fraction
        per_stream = np.bincount(windows.source, minlength=n_streams)
        streams = np.flatnonzero(per_stream)
        if len(streams) >= MIN_SPLIT_THREADS:
            order = rng.permutation(streams)
            taken = np.cumsum(per_stream[order])
            chosen = order[: int(np.searchsorted(taken, frac * n)) + 1]
            held = np.isin(windows.source, chosen)
            n_held = int(held.sum())
            balanced = n_held <= 2 * frac * n and n - n_held >= MIN_FIT_WINDOWS
            if n_held >= MIN_CALIBRATION and balanced:
                return held, "threads"
        # Blocks of consecutive windows of one stream; a group never spans two streams.
        first_of_stream = np.searchsorted(windows.source, windows.source)
        group = windows.source * (n // BLOCK_WINDOWS + 1) + (
            np.arange(n) - first_of_stream
        ) // BLOCK_WINDOWS
        groups, group_of = np.unique(group, return_inverse=True)
        order = rng.permutation(len(groups))
        sizes = np.bincount(group_of)[order]
        target = max(MIN_CALIBRATION, int(np.ceil(frac * n)))
        chosen = order[: int(np.searchsorted(np.cumsum(sizes), target)) + 1]
        return np.isin(group_of, chosen), "blocks"

    def _thread_threshold(
        self, traces: Sequences, windows: Windows, held: np.ndarray, split: str,
        cal_scores: np.ndarray,
    ) -> float | None:
        """Threshold for thread scores: calibrated on held-out threads when there are enough.

        With too few held-out threads: the detector's out-of-fold stream scores when it has
        them (`stream_reference_scores`), else with the "max" roll-up the window threshold
        (a thread alarms when any of its windows does), else none.
        """
        held_streams = np.unique(windows.source[held])
        if split == "threads" and len(held_streams) >= MIN_CALIBRATION:
            if self.rollup_name_ == "max":  # the held-out windows' scores already say it
                scores = np.full(len(traces), -np.inf)
                np.maximum.at(scores, windows.source[held], cal_scores)
                scores = scores[held_streams]
            else:
                scores = self.score_threads(traces.take(held_streams))
            self.thread_calibration_ = calibrate(scores, self.target_far).as_dict()
            return float(self.thread_calibration_["threshold"])
        reference = getattr(self.detector_, "stream_reference_scores", lambda: None)()
        if reference is not None and len(reference) >= MIN_CALIBRATION:
            # Too few held-out threads, but the detector scored every training stream out
            # of fold: those are held-out normal streams too.
            self.thread_calibration_ = {**calibrate(reference, self.target_far).as_dict(),
                                        "source": "out-of-fold training streams"}
            return float(self.thread_calibration_["threshold"])
        self.thread_calibration_ = None
        return self.threshold_ if self.rollup_name_ == "max" else None

    # --- scoring --------------------------------------------------------------------------

    def windows(self, traces: Sequences) -> Windows:
        """The windows this profile scores, with the stream each comes from."""
        return window_streams(traces, self.window_, self.stride_)

    def score_windows(self, seqs: Sequences) -> np.ndarray:
        """Detector score of each window (higher = more anomalous)."""
        if len(seqs) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(self.detector_.score_samples(seqs), dtype=np.float64)

    def score_samples(self, seqs: Sequences) -> np.ndarray:
        """Alias of `score_windows`, so a profile is itself a detector."""
        return self.score_windows(seqs)

    def score_threads(self, traces: Sequences) -> np.ndarray:
        """One score per thread stream, through the configured roll-up."""
        if len(traces) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.asarray(get_rollup(self.rollup_name_)(self, traces), dtype=np.float64)

    def novel_windows(self, seqs: Sequences) -> np.ndarray:
        """Whether each window holds a call or an n-gram (of the profile's orders) that
        training never saw."""
        novel = np.zeros(len(seqs), dtype=bool)
        for n in self.orders_:
            _, rows = self.vocabulary_.unseen(seqs, n)
            novel[rows] = True
        return novel

    def is_anomalous(
        self, window_scores: np.ndarray, seqs: Sequences | None = None,
        threshold: float | None = None,
    ) -> np.ndarray:
        """The alert decision, in one place: score above the threshold and, when
        `require_novelty` (the default), something in the window training never saw.

        Windows made only of known n-grams that score high are rare mixes of normal
        behaviour: on live servers they were nearly all the false alarms, and an attack
        brings calls or sequences of its own. `seqs` (the scored windows) is needed for
        the novelty test; without it only the score decides.
        """
        cut = self.threshold_ if threshold is None else threshold
        above = np.asarray(window_scores) > cut
        if getattr(self, "require_novelty", False) and seqs is not None and above.any():
            rows = np.flatnonzero(above)
            above[rows] = self.novel_windows(seqs.take(rows))
        return above

    # --- explanations ---------------------------------------------------------------------

    def explain(self, window_ids: np.ndarray) -> dict:
        """What in a window training never saw: new syscalls and unseen n-grams, by name."""
        from sysgram.syscalls import table

        ids = np.asarray(window_ids, dtype=np.int64)
        names = table(self.arch_)
        seqs = Sequences.from_list([ids])
        known = self.vocabulary_.symbols_
        new = [int(s) for s in dict.fromkeys(ids.tolist()) if not np.isin(s, known)]
        unseen, counts = {}, {}
        for n in self.orders_:
            codes, _ = self.vocabulary_.unseen(seqs, n)
            first = np.sort(np.unique(codes, return_index=True)[1])
            ordered = codes[first]  # distinct, in order of appearance
            counts[str(n)] = int(len(ordered))
            unseen[str(n)] = [
                [names.name(s) for s in decode_ngram(c, n)] for c in ordered[:MAX_LISTED]
            ]
        return {
            "syscalls": names.names(ids),
            "new_syscalls": [names.name(s) for s in new],
            "unseen_ngrams": unseen,
            "unseen_counts": counts,
        }
