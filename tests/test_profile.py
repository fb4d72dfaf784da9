"""Profiles on two Markov chains: calibrated false alarms on one chain, the other flagged."""

import numpy as np
import pytest
from sklearn.base import clone

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.policy import AlertPolicy
from sysgram.models.profile import NotEnoughData, Profile

SYMBOLS = np.array([0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 21, 39, 41, 42, 45, 60, 61, 72, 78, 202, 228,
                    230, 231, 232, 257, 262, 270, 281, 288, 293], dtype=np.int64)


def _streams(chain_seed, n, length, seed):
    rng = np.random.default_rng(seed)
    chain = random_chain(SYMBOLS, np.random.default_rng(chain_seed), successors=4)
    return Sequences.from_list([sample_chain(chain, length, rng) for _ in range(n)])


@pytest.fixture(scope="module")
def fitted():
    # 80 threads: enough for the default detector's stream model to learn whole streams
    # and calibrate the thread threshold on them out of fold (defaults.MIN_STREAMS).
    return Profile(target_far=1e-3).fit(_streams(1, 80, 2000, seed=0))


def test_params_and_learned_state(fitted):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not [k for k in vars(fresh) if k.endswith("_")]
    assert fitted.window_ == 64 and fitted.stride_ == 16  # the project defaults
    assert fitted.training_summary_["split"] == "threads"
    assert fitted.calibration_["n_calibration"] >= 50


def test_held_out_normal_windows_alarm_at_about_the_calibrated_rate(fitted):
    normal = fitted.windows(_streams(1, 60, 4000, seed=1)).seqs  # ~14,000 unseen windows
    rate = float(np.mean(fitted.is_anomalous(fitted.score_windows(normal))))
    assert rate <= 5 * fitted.target_far
    # Two-sided where the held-out windows can vouch for the rate (1 in 100 of ~2,000
    # held out): a threshold set too high (say, infinite) alarms far less than asked.
    loose = Profile(target_far=1e-2).fit(_streams(1, 40, 4000, seed=0))
    rate = float(np.mean(loose.is_anomalous(loose.score_windows(normal))))
    assert loose.calibration_["method"] == "empirical"
    assert loose.target_far / 3 <= rate <= 3 * loose.target_far


def test_windows_of_the_other_chain_score_above(fitted):
    other = fitted.windows(_streams(2, 5, 2000, seed=2)).seqs
    assert np.mean(fitted.is_anomalous(fitted.score_windows(other))) > 0.99
    threads = fitted.score_threads(_streams(2, 5, 2000, seed=3))
    assert np.all(threads > fitted.thread_threshold_)


def test_too_little_data_says_how_much_is_needed():
    with pytest.raises(NotEnoughData, match=r"only \d+ windows .* at least \d+"):
        Profile().fit(_streams(1, 1, 500, seed=0))


def test_one_long_thread_is_held_out_by_blocks():
    p = Profile(target_far=1e-3).fit(_streams(1, 1, 20000, seed=4))
    assert p.training_summary_["split"] == "blocks"
    assert p.calibration_["n_calibration"] >= 50


def test_explain_names_new_syscalls_and_unseen_ngrams(fitted):
    window = np.array([0, 1, 2, 59, 59, 0], dtype=np.uint16)  # 59 = execve, never seen
    out = fitted.explain(window)
    assert out["new_syscalls"] == ["execve"]
    assert out["syscalls"][3] == "execve"
    assert ["execve", "execve"] in out["unseen_ngrams"]["2"]
    assert out["unseen_counts"]["1"] == 1


def test_whole_thread_rollup(fitted):
    p = clone(fitted).set_params(rollup="whole").fit(_streams(1, 40, 4000, seed=0))
    normal = p.score_threads(_streams(1, 5, 4000, seed=7))
    other = p.score_threads(_streams(2, 5, 4000, seed=8))
    assert other.min() > normal.max()


def test_mean_rollup(fitted):
    p = clone(fitted).set_params(rollup="mean").fit(_streams(1, 40, 4000, seed=0))
    normal = p.score_threads(_streams(1, 5, 4000, seed=7))
    other = p.score_threads(_streams(2, 5, 4000, seed=8))
    assert other.min() > normal.max()
    # 8 held-out threads are too few to calibrate a thread threshold for this roll-up:
    # the profile says so with None rather than reuse the window threshold.
    assert p.thread_threshold_ is None


def test_the_threshold_stays_below_the_score_of_a_wholly_foreign_window(fitted):
    # A saturating detector gives every far-away window one score; a threshold above it
    # could never alarm, whatever the attack.
    assert fitted.threshold_ < fitted.score_ceiling_
    foreign = np.resize(np.array([100, 101, 102, 103], dtype=np.uint16), fitted.window_)
    seqs = Sequences.from_list([foreign])
    assert fitted.is_anomalous(fitted.score_windows(seqs), seqs).all()


def test_a_high_score_made_only_of_known_ngrams_is_not_an_alert(fitted):
    normal = fitted.windows(_streams(1, 2, 2000, seed=5)).seqs
    scores = fitted.score_windows(normal)
    # Force every window over the threshold: only those holding something new alert.
    forced = np.full(len(normal), fitted.threshold_ + 1.0)
    alerts = fitted.is_anomalous(forced, normal)
    assert np.array_equal(alerts, fitted.novel_windows(normal))
    assert alerts.sum() < len(normal)  # normal windows are mostly made of known n-grams
    # Without the novelty rule the score alone decides.
    plain = clone(fitted).set_params(require_novelty=False)
    plain.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    assert plain.is_anomalous(forced, normal).all()
    assert (scores <= fitted.threshold_).mean() > 0.9


def test_live_scoring_in_pieces_scores_the_offline_windows(fitted):
    """The engine (the one live path) scores a stream fed in random pieces exactly as the
    offline pass does: the same windows, the same highest score."""
    from sysgram.collector.items import ThreadEvents, ThreadExit, ThreadStart
    from sysgram.syscalls import table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine

    stream = _streams(1, 1, 3000, seed=9)[0]
    eng = WatchEngine(ThresholdScorer(fitted), WatchConfig("x", warmup_s=0), table())
    rng = np.random.default_rng(0)
    items, pos = [ThreadStart(7, 7, 1, "x", None, None, 0)], 0
    while pos < len(stream):
        step = int(rng.integers(1, 200))
        items.append(ThreadEvents(7, 7, stream[pos : pos + step], pos))
        pos += step
    eng.ingest(items + [ThreadExit(7, 7, pos, True)])
    offline = fitted.score_windows(fitted.windows(Sequences.from_list([stream])).seqs)
    assert eng.stats.windows_scored == len(offline)
    assert eng.stats.max_score == pytest.approx(offline.max(), rel=1e-5)


def test_learning_refuses_windows_above_the_threshold_or_holding_unseen_ngrams(fitted):
    policy = AlertPolicy.for_windows(fitted)
    normal = fitted.windows(_streams(1, 1, 500, seed=6)).seqs.take(np.arange(4))
    strange = Sequences.from_list([np.array([59, 59, 59, 62] * 16, dtype=np.uint16)])
    batch = Sequences.concat([normal, strange])
    verdicts = policy.classify(fitted, fitted.score_windows(batch), batch)
    assert policy.learnable(fitted, verdicts, batch).tolist() == [0, 1, 2, 3]
    # A window scoring above the threshold is refused even when nothing in it is new.
    forced = policy.classify(fitted, np.full(5, fitted.threshold_ + 1.0), batch)
    assert not forced.anomalous[:4].any() and len(policy.learnable(fitted, forced, batch)) == 0
    # A novel window scoring below the threshold is refused too (it would wear the
    # novelty rule away).
    low = policy.classify(fitted, np.full(5, fitted.threshold_ - 1.0), batch)
    assert policy.learnable(fitted, low, batch).tolist() == [0, 1, 2, 3]


def _with_a_rare_job(seed: int) -> Sequences:
    """20 threads of one program and one thread of a rare normal job (other calls)."""
    rng = np.random.default_rng(seed)
    usual = random_chain(SYMBOLS[:20], np.random.default_rng(1), successors=4)
    rare = random_chain(SYMBOLS[20:], np.random.default_rng(2), successors=4)
    return Sequences.from_list([sample_chain(usual, 3000, rng) for _ in range(20)]
                               + [sample_chain(rare, 3000, rng)])


def test_a_rare_job_held_out_for_calibration_cannot_make_the_profile_blind():
    # random_state 1 holds the rare thread out: its windows score at the detector's
    # ceiling and the tail fit lands above it (seen in 3 of 12 seeds).
    p = Profile(random_state=1).fit(_with_a_rare_job(0))
    lowered = p.calibration_["lowered_to_reach"]
    assert lowered["probe"] == "foreign" and lowered["was"] >= p.score_ceiling_
    foreign = Sequences.from_list([np.resize(np.array([100, 101, 102, 103], np.uint16),
                                             p.window_)])
    assert p.is_anomalous(p.score_windows(foreign), foreign).all()
    assert p.threshold_ < p.score_ceiling_
    # ... and the user is told, by every training path (fleet pooling included)
    from sysgram.models.training import calibration_warnings, pooled_result

    (said,) = [m for m in calibration_warnings(p.calibration_) if "lowered to" in m]
    assert f"{lowered['was']:.6g}" in said and "calls this binary never made" in said
    pooled = pooled_result("demo", p, sources=[], binary={}, fleet={"hosts": 2})
    assert said in pooled.warnings


def test_a_detector_that_scores_everything_alike_is_refused():
    from sysgram.models.threshold import DegenerateScores

    class Flat:
        def fit(self, seqs):
            return self

        def score_samples(self, seqs):
            return np.full(len(seqs), 0.5)

    p = Profile(target_far=1e-3)
    p._new_detector = lambda: Flat()
    with pytest.raises(DegenerateScores, match="no threshold can tell them apart"):
        p.fit(_streams(1, 40, 1000, seed=0))


def test_score_marks_a_thread_only_when_watch_would_alert_on_it(fitted):
    """`sysgram score` and `watch` make one decision: a thread whose windows score above
    the threshold but hold nothing training never saw is not an alert in either."""
    from types import SimpleNamespace

    from sysgram.models.offline import score_threads

    profile = clone(fitted)
    profile.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    stream = _streams(1, 1, 2000, seed=13)[0]
    scores = profile.score_windows(profile.windows(Sequences.from_list([stream])).seqs)
    profile.threshold_ = profile.thread_threshold_ = float(np.median(scores))  # half above
    thread = SimpleNamespace(tid=1, pid=1, ids=stream, gaps=np.zeros((0, 2)), arch="x86_64")
    result = score_threads(profile, [thread])
    windows = profile.windows(Sequences.from_list([stream])).seqs
    watch_would = profile.is_anomalous(profile.score_windows(windows), windows)
    assert result["summary"]["anomalous_windows"] == int(watch_would.sum())
    assert result["threads"][0]["anomalous"] == bool(watch_would.any())


def test_spliced_windows_below_the_threshold_are_recorded_and_said():
    """Four unseen calls in a normal window do not lift a `presence` score over the
    threshold here (its known weakness: tests/test_detectors_splice.py), and lowering it
    under them would alarm on many held-out windows: the calibration record keeps the
    finding and the training service words it."""
    from sysgram.models.training import calibration_warnings

    fitted = Profile(detector="presence", target_far=1e-3).fit(_streams(1, 80, 2000, seed=0))
    record = fitted.calibration_["spliced_below_threshold"]
    assert record["probe_score"] == fitted.spliced_score_ < fitted.threshold_
    assert record["held_out_above"] > max(1, fitted.target_far * fitted.calibration_[
        "n_calibration"])
    (message,) = calibration_warnings(fitted.calibration_)
    assert "a few new calls" in message and f"{fitted.threshold_:.6g}" in message
