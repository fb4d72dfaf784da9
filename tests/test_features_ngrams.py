"""N-gram features: a vocabulary fixed at fit, unseen n-grams counted, both paths agree."""

import numpy as np
import pytest
import scipy.sparse as sp

from sysgram.features import NgramFeaturizer, NoveltyTracker, Sequences, novelty_curve
from sysgram.features.synthetic import random_chain, sample_chain


def _windows(n, length, symbols=20, seed=0):
    rng = np.random.default_rng(seed)
    return Sequences.from_windows(rng.integers(0, symbols, (n, length)).astype(np.uint16))


def test_presence_and_unseen_fraction_by_hand():
    f = NgramFeaturizer(orders=(1, 2), normalize=False).fit(
        Sequences.from_list([np.array([1, 2, 3], dtype=np.uint16)]))
    # vocabulary: 1-grams {1,2,3} + unseen; 2-grams {(1,2),(2,3)} + unseen.
    assert f.n_features_ == 4 + 3
    x = f.transform(Sequences.from_list([np.array([1, 2, 2, 9], dtype=np.uint16)])).toarray()[0]
    assert x[:4].tolist() == [1.0, 1.0, 0.0, 0.25]  # 1 and 2 present; 1 of 4 calls unseen
    # 2-grams: (1,2) seen; (2,2), (2,9) unseen -> 2 of 3
    assert x[4:].tolist() == pytest.approx([1.0, 0.0, 2 / 3])


@pytest.mark.parametrize("weighting", ["binary", "count", "log"])
def test_fast_equal_length_path_matches_general_path(weighting):
    train = _windows(300, 32, symbols=15)
    test = _windows(200, 32, symbols=18, seed=1)
    f = NgramFeaturizer(weighting=weighting).fit(train)
    fast = f.transform(test)
    # The same windows as a ragged batch with one longer sequence forces the general path.
    extra = np.arange(40, dtype=np.uint16) % 15
    ragged = Sequences.from_list([test[i] for i in range(len(test))] + [extra])
    general = f.transform(ragged)[:-1]
    assert fast.shape == general.shape
    assert abs(fast - general).max() < 1e-12
    assert fast.has_canonical_format


@pytest.mark.parametrize("weighting", ["binary", "count", "log"])
def test_blocks_are_unit_norm(weighting):
    train = _windows(100, 40)
    f = NgramFeaturizer(weighting=weighting, unseen_weight=0.0).fit(train)
    x = f.transform(train)
    assert isinstance(x, sp.csr_matrix)
    for n in f.orders_:
        lo = f.block_starts_[n]
        block = x[:, lo : lo + len(f.vocabulary_.codes_[n])]
        assert np.allclose(np.sqrt(block.multiply(block).sum(axis=1)).A1, 1.0)


def test_training_rows_have_no_unseen_and_new_symbols_do():
    train = _windows(50, 30, symbols=10)
    f = NgramFeaturizer().fit(train)
    cols = f.unseen_columns()
    assert f.transform(train)[:, cols].nnz == 0
    novel = Sequences.from_list([np.array([500, 501, 502, 503], dtype=np.uint16)])
    assert f.transform(novel)[:, cols].toarray().tolist() == [[1.0, 1.0, 1.0]]
    assert np.allclose(f.unseen_fractions(novel), 1.0)


def test_large_alphabet_uses_searchsorted_path():
    rng = np.random.default_rng(3)
    train = Sequences.from_windows(rng.integers(0, 1000, (400, 64)).astype(np.uint16))
    f = NgramFeaturizer().fit(train)
    assert f.luts_[3] is None  # 1000^3 slots: no dense table
    x = f.transform(train)
    assert x[:, f.unseen_columns()].nnz == 0
    assert x.shape == (400, f.n_features_)


def test_novelty_curve_counts_first_appearances():
    seqs = Sequences.from_list([np.array([1, 2], dtype=np.uint16)] * 3
                               + [np.array([3], dtype=np.uint16)])
    # orders (1,): window 0 brings 1 and 2, window 3 brings 3.
    assert novelty_curve(seqs, (1,), per=2).tolist() == [2, 1]
    tracker = NoveltyTracker((1, 2))
    assert tracker.update(seqs) == 4  # 1, 2, 3 and (1,2)
    assert tracker.update(seqs) == 0


def test_sample_chain_follows_the_chain():
    rng = np.random.default_rng(0)
    symbols, p = random_chain(np.arange(10) * 7, rng, successors=2)
    x = sample_chain((symbols, p), 5000, rng)
    index = {int(s): i for i, s in enumerate(symbols)}
    states = np.array([index[int(v)] for v in x])
    # every transition taken has positive probability
    assert np.all(p[states[:-1], states[1:]] > 0)


def test_novelty_curve_of_streams_equals_the_curve_of_their_windows():
    from sysgram.features import window_streams
    from sysgram.features.novelty import novelty_curve_of_streams

    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 300, 30)
    streams = Sequences.from_list([rng.integers(0, 8, int(n)).astype(np.uint16) for n in lengths])
    windows = window_streams(streams, 16, 4)
    expected = novelty_curve(windows.seqs, (1, 2, 3), per=50)
    assert np.array_equal(novelty_curve_of_streams(streams, 16, 4, (1, 2, 3), per=50), expected)
