"""The language model's window path (2-D, a trie gather or one search per order) equals
its general path."""

import numpy as np
import pytest

from sysgram.features import Sequences, window_streams
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models import ngram_lm
from sysgram.models.ngram_lm import NgramLanguageModel


@pytest.mark.parametrize("trie", [True, False], ids=["trie", "searched"])
@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_equal_length_windows_get_the_same_log_probabilities_as_ragged_sequences(
        order, trie, monkeypatch):
    if not trie:  # every order too big for its dense table: the searched fallback
        monkeypatch.setattr(ngram_lm, "CHILD_TABLE_LIMIT", 0)
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(17), np.random.default_rng(1))
    other = random_chain(np.arange(10, 30), np.random.default_rng(2))
    lm = NgramLanguageModel(order).fit(
        Sequences.from_list([sample_chain(chain, 500, rng) for _ in range(8)]))
    mixed = np.concatenate([sample_chain(chain, 300, rng), sample_chain(other, 300, rng)])
    windows = window_streams(Sequences.from_list([mixed]), 64, 16).seqs
    # The same windows, plus an empty sequence: no longer equal lengths, the general path.
    ragged = Sequences.from_list([windows[i] for i in range(len(windows))] + [mixed[:0]])
    fast = lm.log_prob(windows)
    assert np.array_equal(fast, lm.log_prob(ragged))
    assert np.isfinite(fast).all() and fast.min() < np.log(1e-3)  # unseen calls are priced
