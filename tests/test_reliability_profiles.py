"""Hostile input on the profile loader: tampering, planted pickles, odd files, fuzzed bytes.

What is protected, decided with the code (sysgram/models/envelope.py, store.py):
- The payload sha256 proves *integrity* (no corruption, no truncation), not *origin*:
  anyone able to write the file can also rewrite the hash. A pickle whose hash was
  recomputed loads and runs its code. The trust boundary is ownership and modes: the
  file and its directory must be owned by root or the loading user and writable by no
  one else; symlinks that leave the store and non-regular files are refused.
- Headers are read without unpickling (`profiles list/show`), so reading one never
  runs code, whoever wrote it.
Every refusal is one ProfileFileError sentence; nothing else may escape.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgram.cli import main
from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models import envelope
from sysgram.models.envelope import MAGIC, ProfileFileError, write_envelope
from sysgram.models.profile import Profile
from sysgram.models.store import ProfileStore
from sysgram.models.training import TrainedProfile

NOBODY = 65534
FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])


class PlantedCode:
    """A payload that, when unpickled, creates the file `marker` (stands for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@functools.cache
def _profile_bytes() -> bytes:
    """One small real profile file, as bytes (fitted once; not a fixture, so hypothesis
    does not print half a megabyte with each failing example)."""
    rng = np.random.default_rng(0)
    chain = random_chain(np.arange(30), np.random.default_rng(1))
    traces = Sequences.from_list([sample_chain(chain, 600, rng) for _ in range(8)])
    profile = Profile(target_far=1e-2).fit(traces)
    with tempfile.TemporaryDirectory() as tmp:
        store = ProfileStore(Path(tmp) / "store")
        path = store.save(TrainedProfile("demo", profile, None, traces, binary={"name": "demo"}))
        return path.read_bytes()


@pytest.fixture(scope="module")
def profile_bytes() -> bytes:
    return _profile_bytes()


def _store(root: Path) -> ProfileStore:
    store = ProfileStore(root / "store")
    store.root.mkdir(mode=0o700)
    return store


def _plant(store: ProfileStore, name: str, marker: Path, meta: dict | None = None) -> Path:
    """A profile file whose payload runs code; written by write_envelope, so its hash is right."""
    path = store.path(name)
    write_envelope(path, {**(meta or {}), "name": name}, {"profile": PlantedCode(marker)})
    return path


def _split(data: bytes) -> tuple[dict, bytes]:
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "big")
    start = len(MAGIC) + 8
    return json.loads(data[start:start + size]), data[start + size:]


def _join(header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return MAGIC + len(head).to_bytes(8, "big") + head + body


# -- the trust boundary ---------------------------------------------------------------------
def test_a_recomputed_hash_is_integrity_not_origin(tmp_path):
    """Documents the boundary: with trusted ownership and modes, a planted pickle runs."""
    store, marker = _store(tmp_path), tmp_path / "ran"
    _plant(store, "evil", marker)
    store.load("evil")
    assert marker.exists()  # its code ran: file ownership and modes are what protect


def test_reading_headers_never_unpickles(tmp_path, capsys, profile_bytes):
    store, marker = _store(tmp_path), tmp_path / "ran"
    header, _ = _split(profile_bytes)
    _plant(store, "evil", marker, meta=header)
    os.chmod(store.path("evil"), 0o666)  # even a file anyone could have written
    assert store.header("evil")["name"] == "evil"
    for argv in (["profiles", "list"], ["profiles", "show", "evil"],
                 ["profiles", "show", "evil", "--json"]):
        assert main([*argv, "--store", str(store.root)]) == 0
    assert "evil" in capsys.readouterr().out
    assert not marker.exists()


@pytest.mark.parametrize("how", ["group-writable file", "world-writable file",
                                 "file owned by another user", "directory owned by another user",
                                 "world-writable directory", "symlink out of the store",
                                 "store is a symlink to a world-writable directory"])
def test_a_planted_pickle_is_refused_before_it_runs(tmp_path, how):
    store, marker = _store(tmp_path), tmp_path / "ran"
    path = _plant(store, "evil", marker)
    name = "evil"
    if how == "group-writable file":
        os.chmod(path, 0o620)
    elif how == "world-writable file":
        os.chmod(path, 0o602)
    elif how == "file owned by another user":
        os.chown(path, NOBODY, NOBODY)
    elif how == "directory owned by another user":
        os.chown(store.root, NOBODY, NOBODY)
    elif how == "world-writable directory":
        os.chmod(store.root, 0o1777)
    elif how == "symlink out of the store":
        outside = tmp_path / "outside.profile"
        os.replace(path, outside)
        (store.root / "link.profile").symlink_to(outside)
        name = "link"
    elif how == "store is a symlink to a world-writable directory":
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chmod(shared, 0o1777)
        os.replace(path, shared / "evil.profile")
        store = ProfileStore(tmp_path / "linked-store")
        store.root.symlink_to(shared)
    with pytest.raises(ProfileFileError) as err:
        store.load(name)
    assert "\n" not in err.value.message
    assert not marker.exists(), f"{how}: the planted code ran"


def test_the_cli_refuses_a_planted_pickle_with_one_sentence(tmp_path, capsys):
    store, marker = _store(tmp_path), tmp_path / "ran"
    _plant(store, "evil", marker)
    os.chmod(store.path("evil"), 0o646)
    dataset = tmp_path / "ds"
    code = main(["score", str(dataset), "--proc", "evil", "--store", str(store.root)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("sysgram: refusing to load") and err.count("\n") == 1
    assert not marker.exists()


# -- odd files where a profile should be ----------------------------------------------------
def _within(seconds: float, fn) -> object:
    """fn() run in a thread; fails the test if it does not return in time (a hang)."""
    box: list = []

    def run() -> None:
        try:
            box.append(("ok", fn()))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(("err", exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert box, f"no answer in {seconds} s: it hangs"
    kind, value = box[0]
    if kind == "err":
        raise value
    return value


@pytest.mark.parametrize("kind", ["fifo", "empty", "symlink to a fifo", "directory"])
def test_non_regular_files_are_refused_without_hanging(tmp_path, kind):
    store = _store(tmp_path)
    path = store.path("odd")
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        path.mkdir(mode=0o700)
    elif kind == "empty":
        path.write_bytes(b"")
        os.chmod(path, 0o600)
    else:  # a symlink inside the store is followed: the FIFO behind it must not block
        os.mkfifo(path, 0o600)
        path = path.with_name("odd2.profile")
        path.symlink_to(store.path("odd"))
    name = path.name[: -len(".profile")]
    for action in (store.load, store.header):
        with pytest.raises(ProfileFileError):
            _within(5, lambda action=action: action(name))
    assert _within(5, lambda: main(["profiles", "list", "--store", str(store.root)])) == 0


# -- fuzzed bytes ------------------------------------------------------------------------------
def _load_or_refuse(store: ProfileStore, name: str) -> None:
    try:
        loaded = store.load(name)
    except ProfileFileError as err:
        assert "\n" not in err.message
        return
    assert loaded.profile is not None


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**7), st.integers(1, 255)), min_size=1,
                      max_size=4))
def test_flipped_bytes_anywhere_are_refused_or_harmless(tmp_path_factory, flips):
    profile_bytes = _profile_bytes()
    store = _store(tmp_path_factory.mktemp("f"))
    data = bytearray(profile_bytes)
    for where, xor in flips:
        data[where % len(data)] ^= xor
    store.path("demo").write_bytes(bytes(data))
    os.chmod(store.path("demo"), 0o600)
    _load_or_refuse(store, "demo")
    header, body = _split(profile_bytes)
    if bytes(data[-len(body):]) != body:  # the payload was touched: it must be refused
        with pytest.raises(ProfileFileError):
            store.load("demo")


@FUZZ
@given(cut=st.integers(0, 10**7))
def test_any_truncation_is_refused(tmp_path_factory, cut):
    profile_bytes = _profile_bytes()
    store = _store(tmp_path_factory.mktemp("t"))
    store.path("demo").write_bytes(profile_bytes[: cut % len(profile_bytes)])
    os.chmod(store.path("demo"), 0o600)
    with pytest.raises(ProfileFileError):
        store.load("demo")


@FUZZ
@given(garbage=st.binary(max_size=2048), magic=st.booleans())
def test_garbage_files_are_refused(tmp_path_factory, garbage, magic):
    store = _store(tmp_path_factory.mktemp("g"))
    store.path("demo").write_bytes((MAGIC if magic else b"") + garbage)
    os.chmod(store.path("demo"), 0o600)
    with pytest.raises(ProfileFileError):
        store.load("demo")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8)
HEADER_KEYS = ["versions", "name", "binary", "payload_bytes", "payload_sha256", "features",
               "training", "threshold", "calibration", "novelty_curve", "syscall_table"]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(HEADER_KEYS), JSON_VALUES, min_size=1,
                               max_size=4))
def test_a_hostile_header_with_a_valid_payload_never_crashes_load(tmp_path_factory,
                                                                  changes):
    """The header is not covered by the hash: every field must be treated as untrusted."""
    profile_bytes = _profile_bytes()
    store = _store(tmp_path_factory.mktemp("h"))
    header, body = _split(profile_bytes)
    header.update(changes)
    store.path("demo").write_bytes(_join(header, body))
    os.chmod(store.path("demo"), 0o600)
    _load_or_refuse(store, "demo")


@pytest.mark.parametrize("changes", [{"features": None}, {"threshold": None},
                                     {"versions": []}, {"training": 3}])
def test_a_hostile_header_never_crashes_profiles_list_or_show(tmp_path, changes):
    store = _store(tmp_path)
    header, body = _split(_profile_bytes())
    header.update(changes)
    store.path("demo").write_bytes(_join(header, body))
    os.chmod(store.path("demo"), 0o600)
    for argv in (["profiles", "list"], ["profiles", "show", "demo"]):
        assert main([*argv, "--store", str(store.root)]) in (0, 2)


@pytest.mark.parametrize("binary", [1, "x", {"path": 1.5, "sha256": "ab"},
                                    {"path": ["a"], "sha256": "ab"}])
def test_a_hostile_binary_identity_in_the_header_is_refused_or_ignored(tmp_path, binary):
    store = _store(tmp_path)
    header, body = _split(_profile_bytes())
    header["binary"] = binary
    store.path("demo").write_bytes(_join(header, body))
    os.chmod(store.path("demo"), 0o600)
    _load_or_refuse(store, "demo")


def test_hostile_profile_names_are_one_sentence(tmp_path, capsys):
    store = _store(tmp_path)
    for name in ["../../etc/passwd", "a/b", "x" * 300, "$(reboot)", "a;b", "\x1b[2J", "é" * 20,
                 "name\udcff", ".."]:
        with pytest.raises(UserError) as err:
            store.load(name)
        assert "\n" not in err.value.message
    assert envelope.FORMAT_VERSION == 3
