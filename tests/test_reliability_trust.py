"""Trust: what root writes (datasets, exports, profiles, alert files) nobody else can change.

Checked under the worst umask (0), because sysgram must not depend on the caller's
umask: a file or directory another user can write is one they can replace, and a
profile someone else can replace is code that root will run.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from sysgram.datasets import Dataset, DatasetWriter, export_adfa, import_adfa
from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models.profile import Profile
from sysgram.models.store import ProfileStore
from sysgram.models.training import TrainedProfile


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _writable_by_others(path: Path) -> bool:
    return bool(path.lstat().st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def _tree(root: Path) -> list[Path]:
    return [root, *sorted(root.rglob("*"))]


def _dataset(path: Path) -> Path:
    with DatasetWriter(path, arch="x86_64", source="record") as writer:
        writer.start_thread(1, pid=1, comm="x", label="normal")
        writer.append(1, np.arange(20, dtype=np.uint16))
        writer.end_thread(1)
    return path


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(20), np.random.default_rng(1))
    traces = Sequences.from_list([sample_chain(chain, 600, rng) for _ in range(8)])
    return Profile(target_far=1e-2).fit(traces), traces


def test_a_recording_is_private_whatever_the_umask(tmp_path):
    with umask(0):
        path = _dataset(tmp_path / "rec")
    for p in _tree(path):
        assert not _writable_by_others(p), f"{p} is {oct(p.stat().st_mode)}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_an_empty_out_directory_is_tightened(tmp_path):
    out = tmp_path / "given"
    out.mkdir()
    os.chmod(out, 0o777)
    _dataset(out)
    assert not _writable_by_others(out)


def test_missing_parents_of_a_recording_are_not_world_writable(tmp_path):
    with umask(0):
        _dataset(tmp_path / "new" / "deeper" / "rec")
    for p in (tmp_path / "new", tmp_path / "new" / "deeper"):
        assert not _writable_by_others(p), f"{p} is {oct(p.stat().st_mode)}"


def test_imports_and_exports_are_private(tmp_path):
    corpus = tmp_path / "corpus" / "Training_Data_Master"
    corpus.mkdir(parents=True)
    (corpus / "UTD-0001.txt").write_text("1 2 3 4 5")
    with umask(0):
        imported = import_adfa(tmp_path / "corpus", tmp_path / "imported")
        export_adfa(imported, tmp_path / "exported")
    for root in (tmp_path / "imported", tmp_path / "exported"):
        for p in _tree(root):
            assert not _writable_by_others(p), f"{p} is {oct(p.stat().st_mode)}"
    assert Dataset.open(tmp_path / "imported").threads[0].ids.tolist() == [1, 2, 3, 4, 5]


def test_a_saved_profile_is_private_and_loads(tmp_path, fitted):
    profile, traces = fitted
    store = ProfileStore(tmp_path / "store")
    with umask(0):
        path = store.save(TrainedProfile("demo", profile, None, traces))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert store.load("demo").profile is not None


def test_saving_into_a_world_writable_store_refuses_or_tightens(tmp_path, fitted):
    profile, traces = fitted
    store = ProfileStore(tmp_path / "store")
    store.root.mkdir()
    os.chmod(store.root, 0o777)
    try:
        store.save(TrainedProfile("demo", profile, None, traces))
    except UserError:
        return
    store.load("demo")


def test_a_profile_write_leaves_no_temporary_file_on_failure(tmp_path, fitted, monkeypatch):
    profile, traces = fitted
    store = ProfileStore(tmp_path / "store")
    store.save(TrainedProfile("demo", profile, None, traces))
    before = store.path("demo").read_bytes()

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.save(TrainedProfile("demo", profile, None, traces))
    monkeypatch.undo()
    assert sorted(p.name for p in store.root.iterdir()) == ["demo.profile"]
    assert store.path("demo").read_bytes() == before  # the old profile is intact


def test_the_alerts_file_is_not_writable_by_others(tmp_path):
    from sysgram.commands.watch import _open_alerts_file

    with umask(0):
        _open_alerts_file(tmp_path / "alerts.jsonl").close()
    assert not _writable_by_others(tmp_path / "alerts.jsonl")
