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

from sysgram.errors import UserError
from sysgram.features import NgramVocabulary, Sequences, Windows, window_streams
from sysgram.features.novelty import novelty_curve_of_streams
from sysgram.features.sequences import SYMBOL_LIMIT, decode_ngram, max_by_group
from sysgram.models import defaults
from sysgram.models.estimator import Estimator
from sysgram.models.policy import (
    AlertPolicy,
    Novelty,
    decisive_syscalls,
    event_wait_syscalls,
    splicing_syscalls,
    thread_lifecycle_syscalls,
)
from sysgram.models.registry import detector_class, get_detector, get_rollup
from sysgram.models.threshold import MIN_CALIBRATION, calibrate, keep_reachable

MIN_FIT_WINDOWS = 200
MIN_SPLIT_THREADS = 5  # fewer threads than this: hold out blocks of windows instead
BLOCK_WINDOWS = 32  # consecutive windows held out together in the block split
MAX_LISTED = 20  # unseen n-grams listed per order in an explanation
PROBES = 64  # held-out windows probed with unseen calls spliced in
SPLICED = 4  # unseen calls spliced into each probe window


class NotEnoughData(UserError):
    """Too few windows to fit and calibrate; says how many there are and are needed."""

    def __init__(self, have: int, need: int, window: int, stride: int) -> None:
        super().__init__(
            f"only {have} windows of {window} calls (every {stride}) to learn from, and a "
            f"profile needs at least {need}; record for longer or add more recordings."
        )
        self.have, self.need = have, need


class Profile(Estimator):
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

    def fit(self, traces: Sequences, y=None, *, threaded: bool = False) -> Profile:
        """Learn from normal thread streams; returns self. `threaded`: the recordings show
        the binary running several threads in one process (models.roles.multithreaded),
        so starting and ending a thread is known to it (defaults.THREAD_LIFECYCLE_SYSCALLS)."""
        self._resolve_config()
        self.threaded_ = bool(threaded)
        windows = self.windows(traces)
        need = self.min_windows()
        if len(windows) < need:
            raise NotEnoughData(len(windows), need, self.window_, self.stride_)
        rng = np.random.default_rng(self.random_state)
        held, split = self._holdout(windows, len(traces), rng)
        detector = self._new_detector()
        self.detector_ = detector.fit(windows.seqs.take(np.flatnonzero(~held)),
                                      **self._stream_fit_params(detector, traces, windows, held))
        cal_windows = windows.seqs.take(np.flatnonzero(held))
        cal_scores = np.asarray(self.detector_.score_samples(cal_windows), dtype=np.float64)
        self.calibration_ = calibrate(cal_scores, self.target_far).as_dict()
        self.threshold_ = float(self.calibration_["threshold"])
        self.vocabulary_ = NgramVocabulary(self.orders_).fit(traces)
        probes = self._reachability_probes(cal_windows, rng)
        self._keep_threshold_reachable(probes, cal_scores)
        self.thread_threshold_ = self._thread_threshold(
            traces, windows, held, split, cal_scores, probes)
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
            "threaded": self.threaded_,
        }
        return self

    def _keep_threshold_reachable(self, probes: Sequences, cal_scores: np.ndarray) -> None:
        """Probe the window threshold with what an attack looks like (`keep_reachable` in
        threshold.py): a window of calls the binary never made (`score_ceiling_`) and
        held-out windows with SPLICED such calls (`spliced_score_`, the median)."""
        probe_scores = self.score_windows(probes)
        self.score_ceiling_ = float(probe_scores[0])
        self.spliced_score_ = float(np.median(probe_scores[1:] if len(probe_scores) > 1
                                              else probe_scores))
        self.threshold_, self.calibration_ = keep_reachable(
            self.threshold_, self.calibration_, cal_scores, self.score_ceiling_,
            self.spliced_score_, self.detector_name_)

    def _reachability_probes(self, cal_windows: Sequences, rng: np.random.Generator) -> Sequences:
        """A wholly foreign window, then held-out windows with SPLICED unseen calls each
        (whole streams, for a thread profile, are as long as the held-out ones)."""
        unseen = np.setdiff1d(np.arange(SYMBOL_LIMIT - 1), self.vocabulary_.symbols_)
        lengths = cal_windows.lengths
        foreign = np.resize(unseen, min(self.window_, int(lengths.max()))).astype(np.uint16)
        room = np.flatnonzero(lengths >= SPLICED)
        picked = room[np.linspace(0, len(room) - 1, min(PROBES, len(room))).astype(int)]
        rows = []
        for k in picked.tolist():  # a few dozen probes, not per call
            window = np.array(cal_windows[k], dtype=np.uint16)
            at = int(rng.integers(0, len(window) - SPLICED + 1))
            window[at : at + SPLICED] = rng.choice(unseen, SPLICED)
            rows.append(window)
        return Sequences.from_list([foreign, *rows])

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

    def _stream_fit_params(self, detector, traces: Sequences, windows: Windows,
                           held: np.ndarray) -> dict:
        """`streams=`: the training streams none of whose windows were held out, for a
        detector that also judges whole streams (its `fit` takes them)."""
        import inspect

        if "streams" not in inspect.signature(detector.fit).parameters:
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
        cal_scores: np.ndarray, probes: Sequences,
    ) -> float | None:
        """Threshold for thread scores: calibrated on held-out threads when there are enough.

        With too few held-out threads: the detector's out-of-fold stream scores when it has
        them (`stream_reference_scores`), else with the "max" roll-up the window threshold
        (a thread alarms when any of its windows does), else none. A calibrated one is
        probed like the window threshold (`keep_reachable`), the probes scored as threads.
        """
        held_streams = np.unique(windows.source[held])
        if split == "threads" and len(held_streams) >= MIN_CALIBRATION:
            if self.rollup_name_ == "max":  # the held-out windows' scores already say it
                scores = max_by_group(cal_scores, windows.source[held], len(traces))
                scores = scores[held_streams]
            else:
                scores = self.score_threads(traces.take(held_streams))
            calibration = calibrate(scores, self.target_far).as_dict()
            return self._reachable_thread_threshold(calibration, scores, probes)
        reference = getattr(self.detector_, "stream_reference_scores", lambda: None)()
        if reference is not None and len(reference) >= MIN_CALIBRATION:
            # Too few held-out threads, but the detector scored every training stream out
            # of fold: those are held-out normal streams too.
            calibration = {**calibrate(reference, self.target_far).as_dict(),
                           "source": "out-of-fold training streams"}
            return self._reachable_thread_threshold(calibration, reference, probes)
        self.thread_calibration_ = None
        return self.threshold_ if self.rollup_name_ == "max" else None

    def _reachable_thread_threshold(self, calibration: dict, scores: np.ndarray,
                                    probes: Sequences) -> float:
        """The calibrated thread threshold, kept below what the probes (scored as threads)
        reach; sets `thread_calibration_`."""
        probe_scores = self.score_threads(probes)
        spliced = probe_scores[1:] if len(probe_scores) > 1 else probe_scores
        threshold, self.thread_calibration_ = keep_reachable(
            float(calibration["threshold"]), calibration, np.asarray(scores, dtype=np.float64),
            float(probe_scores[0]), float(np.median(spliced)), self.detector_name_)
        return threshold

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

    def novelty(self, seqs: Sequences) -> Novelty:
        """What each window holds that training never saw: its distinct minimal unseen
        n-grams, and whether one of its new calls is decisive (the policy weighs both)."""
        # Profiles saved before the lifecycle idiom existed carry no `threaded_`.
        idiom = thread_lifecycle_syscalls(self.arch_) if getattr(self, "threaded_", False) \
            else None
        events, new_rows, new_calls = self.vocabulary_.novel_events(
            seqs, spliced=splicing_syscalls(self.arch_), idiom=idiom,
            waits=event_wait_syscalls(self.arch_))
        decisive_rows = new_rows[np.isin(new_calls, decisive_syscalls(self.arch_))]
        decisive = np.zeros(len(seqs), dtype=bool)
        decisive[decisive_rows] = True
        return Novelty(events, decisive)

    def novel_windows(self, seqs: Sequences) -> np.ndarray:
        """Whether each window holds anything at all that training never saw."""
        return self.novelty(seqs).events > 0

    def new_syscalls(self, seqs: Sequences) -> list[list[int]]:
        """Per sequence: the syscall numbers training never saw, in order of appearance."""
        novel = ~np.isin(seqs.values, self.vocabulary_.symbols_)
        out: list[list[int]] = [[] for _ in range(len(seqs))]
        rows = seqs.row_of_position()[novel].tolist()
        for row, nr in zip(rows, seqs.values[novel].tolist(), strict=True):  # novel calls only
            if nr not in out[row]:
                out[row].append(nr)
        return out

    def is_anomalous(
        self, window_scores: np.ndarray, seqs: Sequences | None = None,
        threshold: float | None = None,
    ) -> np.ndarray:
        """The window alert decision of `AlertPolicy` (models/policy.py) for this profile."""
        policy = AlertPolicy.for_windows(self, threshold)
        return policy.classify(self, window_scores, seqs).anomalous

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
        out = {
            "syscalls": names.names(ids),
            "new_syscalls": [names.name(s) for s in new],
            "unseen_ngrams": unseen,
            "unseen_counts": counts,
        }
        if hasattr(self.vocabulary_, "rarest"):  # a fleet's pooled vocabulary
            out["fleet"] = self._fleet_context(seqs, names)
        return out

    def _fleet_context(self, seqs: Sequences, names) -> dict:
        """How many of the fleet's hosts saw the window's rarest n-grams (longest order):
        an n-gram seen on 1 of 40 hosts is not "never seen", and not common either."""
        vocab, n = self.vocabulary_, max(self.orders_)
        codes, hosts = vocab.rarest(seqs, n)
        seen = hosts > 0
        return {
            "hosts": int(vocab.n_hosts_),
            "rarest_seen": [
                {"ngram": [names.name(c) for c in decode_ngram(int(code), n)],
                 "hosts": int(k)}
                for code, k in zip(codes[seen][:3], hosts[seen][:3], strict=True)],
        }
