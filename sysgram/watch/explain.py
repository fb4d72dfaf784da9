"""Why a window is anomalous, in names: adapts a profile's `explain` to the alert schema.

The profile knows its vocabulary (which n-grams and syscalls it saw in training); this
module only turns what `Profile.explain(window_ids)` says into one plain shape, and
falls back to naming the window's calls when a profile cannot explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sysgram.syscalls import SyscallTable


@dataclass(frozen=True)
class Explanation:
    syscalls: list[str]  # the window's calls by name, in order
    unseen_ngrams: list[list[str]] = field(default_factory=list)  # never seen in training
    unseen_spans: list[tuple[int, int]] = field(default_factory=list)  # (start, order)
    new_syscalls: list[str] = field(default_factory=list)  # new to this binary

    def marked(self) -> list[bool]:
        """Per call: is it inside an n-gram never seen in training?"""
        marks = [False] * len(self.syscalls)
        for start, order in self.unseen_spans:
            for k in range(max(start, 0), min(start + order, len(marks))):
                marks[k] = True
        return marks


def _get(obj: object, key: str, default: object = None) -> object:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _as_names(items: object, names: SyscallTable) -> list[str]:
    return [names.name(x) if isinstance(x, int | np.integer) else str(x) for x in (items or [])]


def _spans_of(ngrams: list[list[str]], calls: list[str]) -> list[tuple[int, int]]:
    """Where each unseen n-gram occurs in the window (every occurrence)."""
    spans = set()
    for gram in ngrams:
        n = len(gram)
        for start in range(len(calls) - n + 1):
            if calls[start : start + n] == gram:
                spans.add((start, n))
    return sorted(spans)


def _unseen_grams(raw: object) -> list:
    """The unseen n-grams a profile reported; from {order: [n-gram, ...]}, orders >= 2
    (they say more) unless there are none."""
    raw_unseen = _get(raw, "unseen_ngrams", None) or []
    if isinstance(raw_unseen, dict):
        by_order = {int(n): grams for n, grams in raw_unseen.items()}
        longer = [g for n, grams in sorted(by_order.items()) if n >= 2 for g in grams]
        raw_unseen = longer or [g for grams in by_order.values() for g in grams]
    return list(raw_unseen)


def explain_window(profile: object, window: np.ndarray, names: SyscallTable) -> Explanation:
    """The explanation of one window, whatever shape the profile's `explain` returns."""
    calls = names.names(window)
    explain = getattr(profile, "explain", None)
    if explain is None:
        return Explanation(calls)
    raw = explain(np.asarray(window))
    raw_calls = _get(raw, "syscalls")
    if raw_calls:
        calls = _as_names(raw_calls, names)
    unseen = []
    spans: list[tuple[int, int]] = []
    for gram in _unseen_grams(raw):
        # An entry may be a list of names/numbers or a dict/obj with `ngram` and `start`.
        seq = _get(gram, "ngram", gram) if not isinstance(gram, list | tuple) else gram
        names_of = _as_names(list(seq) if not isinstance(seq, str) else seq.split(), names)
        unseen.append(names_of)
        start = None if isinstance(gram, list | tuple) else _get(gram, "start", None)
        if start is not None:
            spans.append((int(start), len(names_of)))
    if not spans:
        spans = _spans_of(unseen, calls)
    new = _as_names(_get(raw, "new_syscalls", None), names)
    unique_unseen = list(dict.fromkeys(tuple(g) for g in unseen))
    return Explanation(calls, [list(g) for g in unique_unseen], sorted(set(spans)), new)


def explain_stream(profile: object, ids: np.ndarray, names: SyscallTable) -> Explanation:
    """A whole thread stream's explanation: its distinct calls in order of first use,
    the n-grams (orders >= 2 first) and syscalls training never saw. No per-call marks:
    a stream can be tens of thousands of calls."""
    calls = list(dict.fromkeys(names.names(ids)))
    raw = profile.explain(np.asarray(ids)) if hasattr(profile, "explain") else {}
    unique = list(dict.fromkeys(tuple(_as_names(list(g), names)) for g in _unseen_grams(raw)))
    return Explanation(calls, [list(g) for g in unique], [],
                       _as_names(_get(raw, "new_syscalls", None), names))
