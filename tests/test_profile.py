"""Profiles on two Markov chains: calibrated false alarms on one chain, the other flagged."""

import numpy as np
import pytest
from sklearn.base import clone

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import NotEnoughData, Profile
from sysgram.models.streaming import StreamScorer, ThresholdPolicy

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


def test_streaming_scores_equal_offline_scores(fitted):
    stream = _streams(1, 1, 3000, seed=9)[0]
    scorer = StreamScorer(fitted)
    rng = np.random.default_rng(0)
    pos = 0
    while pos < len(stream):
        step = int(rng.integers(1, 200))
        scorer.push(7, stream[pos : pos + step])
        pos += step
    scorer.end(7)
    live = np.concatenate([s.scores for s in scorer.score_pending()])
    offline = fitted.score_windows(fitted.windows(Sequences.from_list([stream])).seqs)
    assert np.allclose(live, offline)
    assert scorer.stats.windows_scored == len(offline)


def test_gap_closes_the_segment():
    p = Profile(window=8, stride=4, target_far=1e-3).fit(_streams(1, 10, 600, seed=0))
    scorer = StreamScorer(p)
    scorer.push(1, np.zeros(10, dtype=np.uint16))
    scorer.gap(1, lost=5)
    scorer.push(1, np.ones(3, dtype=np.uint16))
    scorer.end(1)
    (scored,) = scorer.score_pending()
    # Windows: [0:8] then the end-aligned [2:10] before the gap. After it, three calls
    # are neither a whole stream nor a full window: counted unscored, never scored as one,
    # like the windows that would have spanned the 5 lost calls ((8 - 1 + 5) / 4 = 3).
    assert scored.windows.lengths.tolist() == [8, 8]
    assert scorer.stats.windows_unscored == 3 + 1
    assert scorer.stats.events_lost == 5


def test_learning_refuses_anomalous_windows(fitted):
    scorer = StreamScorer(fitted, ThresholdPolicy.from_profile(fitted))
    strange = np.array([59, 59, 59, 62] * 16, dtype=np.uint16)  # execve/kill storm
    before = scorer.novelty.size()
    assert scorer.learn_one(strange) is False
    assert scorer.novelty.size() == before
    normal = fitted.windows(_streams(1, 1, 64, seed=11)).seqs[0]
    assert scorer.learn_one(normal) is True
    assert scorer.stats.learning_refused == 1 and scorer.stats.windows_learned == 1


def test_mean_rollup(fitted):
    p = clone(fitted).set_params(rollup="mean").fit(_streams(1, 40, 4000, seed=0))
    normal = p.score_threads(_streams(1, 5, 4000, seed=7))
    other = p.score_threads(_streams(2, 5, 4000, seed=8))
    assert other.min() > normal.max()
    # 8 held-out threads are too few to calibrate a thread threshold for this roll-up:
    # the profile says so with None rather than reuse the window threshold.
    assert p.thread_threshold_ is None


def test_streaming_many_threads_in_one_batch(fitted):
    streams = _streams(1, 3, 700, seed=12)
    scorer = StreamScorer(fitted)
    for pos in range(0, 700, 50):  # interleaved pieces of three threads
        for tid in (30, 10, 20):
            scorer.push(tid, streams[tid // 10 - 1][pos : pos + 50])
    scorer.end(20)
    out = {s.tid: s for s in scorer.score_pending()}
    assert sorted(out) == [10, 20, 30]
    for tid, s in out.items():
        offline = fitted.score_windows(
            fitted.windows(Sequences.from_list([streams[tid // 10 - 1]])).seqs)
        n = len(s.scores)  # threads 10 and 30 are still running: no closing window yet
        assert np.allclose(s.scores, offline[:n])      # in time order, window for window
    assert len(out[20].scores) == len(fitted.windows(
        Sequences.from_list([streams[1]])).seqs)


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


def test_learning_refuses_windows_above_the_threshold_even_when_not_novel(fitted):
    policy = ThresholdPolicy.from_profile(fitted)
    window = fitted.windows(_streams(1, 1, 500, seed=6)).seqs[0]
    scorer = StreamScorer(fitted, policy)
    assert not scorer.learn_one(window, score=fitted.threshold_ + 1.0)
    assert scorer.learn_one(window, score=fitted.threshold_ - 1.0)
