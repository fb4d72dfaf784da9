"""A labelled corpus for evaluation: normal training streams, and test traces with labels.

Two sources, one shape:
- an ADFA-LD folder, read by `sysgram.datasets.read_adfa` (the same parser as
  `sysgram import`): fit on Training_Data_Master, test on Validation (normal) and
  Attack_Data_Master (attack, family from the folder name);
- sysgram datasets (recordings or imported corpora): either threads that carry their
  own labels and splits, or whole datasets given as training / normal / attack.

Recorded threads can have losses. No piece of a stream that spans a loss is scored as
if it were whole: every thread is cut at its gaps, each piece is scored, and a test
trace's score is its worst piece. Everything skipped or changed is counted in `notes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sysgram.datasets import Dataset, ThreadTrace, read_adfa
from sysgram.errors import UserError
from sysgram.features import Sequences, split_at_gaps
from sysgram.features.sequences import SYMBOL_LIMIT
from sysgram.syscalls import translate

NORMAL, ATTACK = "normal", "attack"
TRAIN_SPLIT = "train"


@dataclass
class EvalCorpus:
    """Training streams (normal only) and test traces, one label per test trace."""

    name: str
    arch: str
    train: Sequences  # loss-free pieces of the training threads
    test: Sequences  # loss-free pieces of the test threads
    test_owner: np.ndarray  # for each test piece, the test trace it belongs to
    labels: np.ndarray  # per test trace: 1 = attack, 0 = normal
    families: list[str]  # per test trace: attack family, "normal" for normals
    n_train_threads: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_normal(self) -> int:
        return int(np.count_nonzero(self.labels == 0))

    @property
    def n_attack(self) -> int:
        return int(np.count_nonzero(self.labels == 1))

    def attack_families(self) -> list[str]:
        return sorted({f for f, y in zip(self.families, self.labels, strict=True) if y == 1})


class _Builder:
    """Collects threads into the corpus, cutting at losses and counting what it drops."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.train: list[ThreadTrace] = []
        self.test: list[tuple[ThreadTrace, int, str]] = []
        self.empty = 0
        self.unlabelled = 0
        self.lossy = 0
        self.translated = 0
        self.unknown_calls = 0

    def add(self, trace: ThreadTrace, role: str, family: str | None = None) -> None:
        if len(trace.ids) == 0:
            self.empty += 1
            return
        if len(trace.gaps):
            self.lossy += 1
        if trace.arch != self.arch:
            self._translate(trace)
        if role == TRAIN_SPLIT:
            self.train.append(trace)
        else:
            label = 1 if role == ATTACK else 0
            self.test.append((trace, label, (family or "unknown") if label else NORMAL))

    def _translate(self, trace: ThreadTrace) -> None:
        ids = translate(trace.ids, trace.arch, self.arch).astype(np.int64)
        # Calls the target table lacks get numbers past it; keep them one shared symbol.
        out_of_range = ids >= SYMBOL_LIMIT
        self.unknown_calls += int(out_of_range.sum())
        ids[out_of_range] = SYMBOL_LIMIT - 1
        trace.ids, trace.arch = ids.astype(np.uint16), self.arch
        self.translated += 1

    def build(self, name: str) -> EvalCorpus:
        if not self.train:
            raise UserError("there are no normal training threads to fit on; give a "
                            "training split or dataset (e.g. --train DATASET).")
        labels = np.array([y for _, y, _ in self.test], dtype=np.int64)
        if not np.any(labels == 0) or not np.any(labels == 1):
            raise UserError("the test set needs both normal and attack threads; give "
                            "--normal and --attack datasets or labelled threads.")
        train, _ = _pieces(self.train)
        test, owner = _pieces([t for t, _, _ in self.test])
        return EvalCorpus(name, self.arch, train, test, owner, labels,
                          [f for _, _, f in self.test], len(self.train), self._notes())

    def _notes(self) -> list[str]:
        notes = []
        if self.empty:
            notes.append(f"{self.empty} empty threads skipped")
        if self.unlabelled:
            notes.append(f"{self.unlabelled} unlabelled test threads ignored")
        if self.lossy:
            notes.append(f"{self.lossy} threads had lost events: cut at each loss, a test "
                         "thread scores as its worst piece")
        if self.translated:
            notes.append(f"{self.translated} threads translated to the {self.arch} table by "
                         f"name ({self.unknown_calls} calls with no {self.arch} counterpart)")
        return notes


def _pieces(traces: list[ThreadTrace]) -> tuple[Sequences, np.ndarray]:
    streams = Sequences.from_list([t.ids for t in traces])
    return split_at_gaps(streams, [t.gaps for t in traces])


def load_adfa(path: Path) -> EvalCorpus:
    """An ADFA-LD folder: fit on the training split, test on validation and attacks."""
    traces = read_adfa(Path(path))
    builder = _Builder(traces[0].arch if traces else "i386")
    for t in traces:
        if t.split == TRAIN_SPLIT:
            builder.add(t, TRAIN_SPLIT)
        elif t.label in (NORMAL, ATTACK) and t.split is not None:
            builder.add(t, t.label, t.family)
    if not any(t.split == "attack" for t in traces):
        raise UserError(f"{path} has no Attack_Data_Master/ folder; eval needs attack "
                        "traces to measure detection.")
    return builder.build(Path(path).name)


def _open(path: Path) -> Dataset:
    return Dataset.open(Path(path))


def load_datasets(
    labelled: Iterable[Path] = (),
    train: Iterable[Path] = (),
    normal: Iterable[Path] = (),
    attack: Iterable[Path] = (),
) -> EvalCorpus:
    """sysgram datasets. `labelled`: threads say their own split/label (train split fits,
    others test). `train`: every thread fits. `normal` / `attack`: every thread tests with
    that label; an attack thread's family is its own, else the dataset's folder name."""
    opened = {role: [_open(p) for p in paths] for role, paths in
              (("labelled", labelled), ("train", train), ("normal", normal),
               ("attack", attack))}
    every = [d for ds in opened.values() for d in ds]
    if not every:
        raise UserError("give at least one dataset to evaluate on.")
    first_train = (opened["train"] or opened["labelled"] or every)[0]
    builder = _Builder(first_train.arch)
    notes = [f"{d.path}: {w}" for d in every for w in d.warnings]
    for d in opened["labelled"]:
        for t in d.threads:
            _add_labelled(builder, t)
    for role in ("train", "normal", "attack"):
        for d in opened[role]:
            for t in d.threads:
                builder.add(t, TRAIN_SPLIT if role == "train" else role,
                            t.family or d.path.name)
    corpus = builder.build(", ".join(str(d.path.name) for d in every))
    corpus.notes = notes + corpus.notes
    return corpus


def _add_labelled(builder: _Builder, t: ThreadTrace) -> None:
    if t.split == TRAIN_SPLIT and t.label in (None, NORMAL):
        builder.add(t, TRAIN_SPLIT)
    elif t.label in (NORMAL, ATTACK):
        builder.add(t, t.label, t.family)
    else:
        builder.unlabelled += 1  # neither training nor labelled: not part of the evaluation
