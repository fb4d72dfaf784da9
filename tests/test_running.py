"""Running whole-stream scores equal the whole-stream score, however the stream is cut."""

import numpy as np
import pytest

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.detectors import IForestDetector, OCSVMDetector
from sysgram.models.ensemble import FisherEnsemble, PresenceLM
from sysgram.models.ngram_lm import NgramLanguageModel
from sysgram.models.presence import PresenceOCSVM
from sysgram.models.running import running_scores


def _training(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(20), np.random.default_rng(1))
    return chain, Sequences.from_list([sample_chain(chain, 150, rng) for _ in range(60)])


@pytest.mark.parametrize("detector", [NgramLanguageModel(4), PresenceOCSVM(), PresenceLM(),
                                      IForestDetector(), OCSVMDetector()],
                         ids=["ngram-lm", "presence", "presence-lm", "iforest", "ocsvm"])
def test_running_score_equals_the_whole_stream_score_at_every_cut(detector):
    chain, train = _training()
    det = detector.fit(train)
    rng = np.random.default_rng(5)
    other = random_chain(np.arange(10, 40), np.random.default_rng(2))
    streams = {  # a normal stream, and one that turns into another program half-way
        "normal": sample_chain(chain, 700, rng),
        "turned": np.concatenate([sample_chain(chain, 300, rng), sample_chain(other, 300, rng)]),
    }
    running = running_scores(det)
    for key, ids in streams.items():
        cuts = np.sort(rng.choice(np.arange(1, len(ids)), 12, replace=False))
        pieces = np.split(ids, cuts)
        for k, piece in enumerate(pieces):
            running.add(key, piece)
            if k % 3 == 2 or k == len(pieces) - 1:  # fold in several pieces at once too
                assert running.update() == [key]
                so_far = np.concatenate(pieces[: k + 1])
                whole = det.score_samples(Sequences.from_list([so_far]))[0]  # as one sequence
                assert running.calls(key) == len(so_far)
                assert running.score([key])[0] == pytest.approx(whole, rel=1e-9, abs=1e-9)
    turned, normal = running.score(["turned", "normal"])
    assert turned > normal
    running.discard("normal")
    assert running.streams == 1


def test_a_detector_without_a_running_form_has_none():
    from sysgram.evaluation.baselines import Stide

    _, train = _training()
    assert running_scores(Stide(4).fit(train)) is None
    with_stide = FisherEnsemble(members=(NgramLanguageModel(3), Stide(4))).fit(train)
    assert running_scores(with_stide) is None


def test_a_long_lived_thread_is_judged_while_it_runs_and_alerts_once():
    """A server thread that never exits, longer than the verdicts keep: normal work passes;
    when it turns into another program, its running whole-stream score alerts before it
    ends, once, with the stream's length so far."""
    from sysgram.collector.items import ThreadEvents, ThreadExit, ThreadStart
    from sysgram.models.defaults import thread_profile_params
    from sysgram.models.profile import Profile
    from sysgram.syscalls import table
    from sysgram.watch import ThresholdScorer, WatchConfig, WatchEngine
    from sysgram.watch.verdicts import RUNNING_MIN_CALLS, ThreadVerdicts

    rng = np.random.default_rng(0)
    trained = random_chain(np.arange(30), np.random.default_rng(1))
    other = random_chain(np.arange(30, 60), np.random.default_rng(2))
    thread_profile = Profile(**thread_profile_params(), arch="x86_64").fit(
        Sequences.from_list([sample_chain(trained, 2000, rng) for _ in range(300)]))
    window_profile = Profile(detector="ngram-lm", arch="x86_64").fit(
        Sequences.from_list([sample_chain(trained, 2000, rng) for _ in range(20)]))
    window_profile.threshold_ = np.inf  # no window alerts: thread verdicts only
    verdicts = ThreadVerdicts(thread_profile, max_calls=3000)
    eng = WatchEngine(ThresholdScorer(window_profile), WatchConfig("victim", warmup_s=0),
                      table("x86_64"), verdicts=verdicts)
    assert eng.ingest([ThreadStart(7, 7, 1, "victim", None, None, 0)]) == []
    for k in range(10):  # 10 x 1,000 normal calls: judged as it runs, never alerts
        assert eng.ingest([ThreadEvents(7, 7, sample_chain(trained, 1000, rng), k + 1)]) == []
    assert verdicts.stats.running_checks == 10 * 1000 // RUNNING_MIN_CALLS
    assert eng.buffered_calls() <= 3000 + 1000 + 2 * 64  # verdicts + the window stream
    alerts = []
    for k in range(3):
        alerts += eng.ingest([ThreadEvents(7, 7, sample_chain(other, 300, rng), 20 + k)])
    assert [(a.scope, a.tid) for a in alerts] == [("thread", 7)]
    assert 10_000 < alerts[0].stream_calls <= 10_900
    assert eng.ingest([ThreadExit(7, 7, 30, True)]) == []  # no second alert at its end
    assert verdicts.stats.running_anomalous == 1 and verdicts.stats.streams_too_long == 0
