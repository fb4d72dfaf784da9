"""Pure array code: windows, n-grams and feature vectors (numpy / scipy.sparse)."""

from sysgram.features.ngrams import NgramFeaturizer, NgramVocabulary
from sysgram.features.novelty import NoveltyTracker, novelty_curve
from sysgram.features.sequences import Sequences, decode_ngram, ngram_codes, sliding_windows
from sysgram.features.stream import Cut, ThreadStream
from sysgram.features.windows import Windows, split_at_gaps, window_counts, window_streams

__all__ = [
    "Cut",
    "NgramFeaturizer",
    "NgramVocabulary",
    "NoveltyTracker",
    "Sequences",
    "ThreadStream",
    "Windows",
    "decode_ngram",
    "ngram_codes",
    "novelty_curve",
    "sliding_windows",
    "split_at_gaps",
    "window_counts",
    "window_streams",
]
