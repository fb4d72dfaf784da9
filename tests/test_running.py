"""Running whole-stream scores equal the whole-stream score, however the stream is cut."""

import numpy as np
import pytest

from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.ensemble import PresenceLM
from sysgram.models.ngram_lm import NgramLanguageModel
from sysgram.models.presence import PresenceOCSVM
from sysgram.models.running import running_scores


def _training(seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(20), np.random.default_rng(1))
    return chain, Sequences.from_list([sample_chain(chain, 150, rng) for _ in range(60)])


@pytest.mark.parametrize("detector", [NgramLanguageModel(4), PresenceOCSVM(),
                                      PresenceLM()], ids=["ngram-lm", "presence", "presence-lm"])
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
                whole = det.score_samples(Sequences.from_list([so_far]))[0]
                assert running.calls(key) == len(so_far)
                assert running.score([key])[0] == pytest.approx(whole, rel=1e-9, abs=1e-9)
    turned, normal = running.score(["turned", "normal"])
    assert turned > normal
    running.discard("normal")
    assert running.streams == 1


def test_a_detector_without_a_running_form_has_none():
    from sysgram.models.detectors import OCSVMDetector

    _, train = _training()
    assert running_scores(OCSVMDetector(n_components=16).fit(train)) is None
