"""Why a window is anomalous, in names: a profile's `explain` in the alert's shape.

The profile knows its vocabulary (which n-grams and syscalls it saw in training) and its
syscall table; `explain(ids)` returns {"syscalls": [name], "new_syscalls": [name],
"unseen_ngrams": {order: [[name]]}} (`Profile.explain`); this module marks where the
unseen n-grams sit in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Explainer(Protocol):
    def explain(self, window_ids: np.ndarray) -> dict: ...


@dataclass(frozen=True)
class Explanation:
    syscalls: list[str]  # the window's calls by name, in order
    unseen_ngrams: list[list[str]] = field(default_factory=list)  # never seen in training
    unseen_spans: list[tuple[int, int]] = field(default_factory=list)  # (start, order)
    new_syscalls: list[str] = field(default_factory=list)  # new to this binary
    # A pooled (fleet) profile: {"hosts": M, "rarest_seen": [{"ngram", "hosts"}]}: the
    # window's rarest n-grams that some hosts saw, and on how many (unseen: on none).
    fleet: dict | None = None
    # The window holds the first calls of a thread started while watched, and the profile's
    # training saw no thread start (models/roles.py): its start-up calls are new to it.
    thread_start: bool = False

    def marked(self) -> list[bool]:
        """Per call: is it inside an n-gram never seen in training?"""
        marks = [False] * len(self.syscalls)
        for start, order in self.unseen_spans:
            for k in range(max(start, 0), min(start + order, len(marks))):
                marks[k] = True
        return marks


def _spans_of(ngrams: list[list[str]], calls: list[str]) -> list[tuple[int, int]]:
    """Where each unseen n-gram occurs in the window (every occurrence)."""
    spans = set()
    for gram in ngrams:
        n = len(gram)
        for start in range(len(calls) - n + 1):
            if calls[start : start + n] == gram:
                spans.add((start, n))
    return sorted(spans)


def _unseen_grams(by_order: dict) -> list[list[str]]:
    """The unseen n-grams of `explain`'s {order: [n-gram, ...]}: orders >= 2 (they say
    more) unless there are none; each once, first occurrence first."""
    orders = sorted((int(n), grams) for n, grams in by_order.items())
    longer = [g for n, grams in orders if n >= 2 for g in grams]
    grams = longer or [g for _, grams in orders for g in grams]
    return [list(g) for g in dict.fromkeys(tuple(g) for g in grams)]


def explain_window(profile: Explainer, window: np.ndarray) -> Explanation:
    """The explanation of one window: its calls, marked where an unseen n-gram sits."""
    raw = profile.explain(np.asarray(window))
    calls, unseen = list(raw["syscalls"]), _unseen_grams(raw["unseen_ngrams"])
    return Explanation(calls, unseen, _spans_of(unseen, calls), list(raw["new_syscalls"]),
                       raw.get("fleet"))


def explain_stream(profile: Explainer, ids: np.ndarray) -> Explanation:
    """A whole thread stream's explanation: its distinct calls in order of first use,
    the n-grams (orders >= 2 first) and syscalls training never saw. No per-call marks:
    a stream can be tens of thousands of calls."""
    raw = profile.explain(np.asarray(ids))
    return Explanation(list(dict.fromkeys(raw["syscalls"])), _unseen_grams(raw["unseen_ngrams"]),
                       [], list(raw["new_syscalls"]), raw.get("fleet"))
