"""Profile persistence: round trip, and every refusal the issue asks for, one sentence each."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from sysgram.cli import main
from sysgram.errors import UserError
from sysgram.features import Sequences
from sysgram.features.synthetic import random_chain, sample_chain
from sysgram.models import envelope
from sysgram.models.envelope import ProfileFileError
from sysgram.models.profile import Profile
from sysgram.models.store import STORE_ENV, ProfileStore, store_path
from sysgram.models.training import TrainedProfile


def _streams(chain_seed, n, length, seed):
    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(30), np.random.default_rng(chain_seed))
    return Sequences.from_list([sample_chain(chain, length, rng) for _ in range(n)])


@pytest.fixture(scope="module")
def trained():
    traces = _streams(1, 10, 1500, seed=0)
    return Profile(target_far=1e-3).fit(traces), traces


@pytest.fixture()
def store(tmp_path, trained):
    profile, traces = trained
    s = ProfileStore(tmp_path / "profiles")
    s.save(TrainedProfile("demo", profile, None, traces, binary={"name": "demo"}))
    return s


def test_round_trip_scores_identically(store, trained):
    profile, traces = trained
    loaded = store.load("demo")
    windows = profile.windows(traces).seqs
    assert np.array_equal(loaded.profile.score_windows(windows), profile.score_windows(windows))
    assert np.array_equal(loaded.traces.values, traces.values)
    assert loaded.header["features"]["window"] == profile.window_
    assert loaded.header["syscall_table"]["arch"] == profile.arch_
    assert len(loaded.header["payload_sha256"]) == 64
    path = store.path("demo")
    assert path.stat().st_mode & 0o777 == 0o600
    assert store.names() == ["demo"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_flipped_byte_is_refused(store):
    path = store.path("demo")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ProfileFileError, match="corrupt or was modified"):
        store.load("demo")


def test_truncated_file_is_refused(store):
    path = store.path("demo")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ProfileFileError, match="corrupt"):
        store.load("demo")


def test_world_writable_file_is_refused(store):
    os.chmod(store.path("demo"), 0o666)
    with pytest.raises(ProfileFileError, match="other than root or its owner can write"):
        store.load("demo")


def test_group_writable_directory_is_refused(store):
    os.chmod(store.root, 0o770)
    with pytest.raises(ProfileFileError, match="can write that directory"):
        store.load("demo")


def test_other_format_version_is_refused(store, monkeypatch):
    written = envelope.FORMAT_VERSION
    monkeypatch.setattr(envelope, "FORMAT_VERSION", 99)
    with pytest.raises(ProfileFileError, match=f"format version {written} .* reads version 99"):
        store.load("demo")


def test_a_hashed_payload_that_does_not_decompress_is_refused(store):
    """The hash matches (it was recomputed) but the payload is no compressed pickle."""
    path = store.path("demo")
    raw = path.read_bytes()
    start = len(envelope.MAGIC) + 8
    header = json.loads(raw[start:start + int.from_bytes(raw[len(envelope.MAGIC):start], "big")])
    body = b"not zlib at all"
    header.update(payload_sha256=hashlib.sha256(body).hexdigest(), payload_bytes=len(body))
    head = json.dumps(header).encode()
    path.write_bytes(envelope.MAGIC + len(head).to_bytes(8, "big") + head + body)
    with pytest.raises(ProfileFileError, match="damaged payload; retrain"):
        store.load("demo")


def test_not_a_profile_is_refused(store):
    store.path("demo").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ProfileFileError, match="not a sysgram profile"):
        store.load("demo")


def test_symlink_leaving_the_store_is_refused(store, tmp_path):
    outside = tmp_path / "elsewhere.profile"
    outside.write_bytes(store.path("demo").read_bytes())
    os.chmod(outside, 0o600)
    (store.root / "evil.profile").symlink_to(outside)
    with pytest.raises(ProfileFileError, match="outside the profile store"):
        store.load("evil")
    (store.root / "alias.profile").symlink_to(store.path("demo"))
    assert store.load("alias").header["name"] == "demo"


def test_changed_binary_warns(tmp_path, trained):
    profile, _ = trained
    binary = tmp_path / "prog"
    binary.write_bytes(b"v1")
    s = ProfileStore(tmp_path / "p")
    from sysgram.models.store import file_sha256

    s.save(TrainedProfile("prog", profile, None, None, binary={
        "name": "prog", "path": str(binary), "sha256": file_sha256(binary)}))
    assert s.load("prog").warnings == []
    binary.write_bytes(b"v2")
    (warning,) = s.load("prog").warnings
    assert "changed since this profile was trained" in warning


def test_bad_names_and_missing_profiles(tmp_path, monkeypatch):
    s = ProfileStore(tmp_path)
    for bad in ["../x", "a/b", "", ".hidden"]:
        with pytest.raises(UserError):
            s.path(bad)
    with pytest.raises(UserError, match="no profile for 'ghost'"):
        s.load("ghost")
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "env"))
    assert store_path() == tmp_path / "env"
    assert store_path("/x") == Path("/x")


# -- the CLI, end to end on synthetic recordings ----------------------------------------------


def _record(path, chain_seed, n, length, seed, gap=False):
    from sysgram.datasets import DatasetWriter

    rng = np.random.default_rng(seed)
    chain = random_chain(np.arange(30), np.random.default_rng(chain_seed))
    with DatasetWriter(path, arch="x86_64", source="synthetic", target={"comm": "demo"}) as w:
        for i in range(n):
            ids = sample_chain(chain, length, rng)
            w.start_thread(100 + i, pid=100, comm="demo")
            w.append(100 + i, ids[: length // 2])
            if gap:
                w.gap(100 + i, 3)
            w.append(100 + i, ids[length // 2 :])
            w.end_thread(100 + i)


def test_cli_train_show_score_append_rm(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "normal", 1, 12, 1500, seed=0)
    _record(tmp_path / "more", 1, 4, 1500, seed=1, gap=True)
    _record(tmp_path / "other", 2, 3, 800, seed=2)
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "normal")]) == 0
    assert "threshold" in capsys.readouterr().out
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "more"), "--append"]) == 0
    capsys.readouterr()
    assert main(["profiles", "show", "demo", "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert [s["path"] for s in header["training"]["sources"]] == [
        str(tmp_path / "normal"), str(tmp_path / "more")]
    assert header["training"]["threads"] == 12 + 4 * 2  # the gap cuts 4 threads in two
    assert main(["score", "--proc", "demo", str(tmp_path / "other"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["anomalous_threads"] == 3
    assert result["processes"] == [{"pid": 100, "threads": 3, "windows": result["summary"][
        "windows"], "anomalous_threads": 3, "score": max(t["score"] for t in result["threads"]),
        "anomalous": True}]
    assert all(w["anomalous"] for w in result["windows"])
    assert "explain" in result["windows"][0]
    assert main(["score", "--proc", "demo", str(tmp_path / "more"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["summary"]["lost_events"] == 12
    assert result["summary"]["anomalous_windows"] <= 1
    assert main(["profiles", "list"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["profiles", "rm", "demo"]) == 0
    assert main(["profiles", "show", "demo"]) == 2
    assert "no profile for 'demo'" in capsys.readouterr().err


def test_cli_too_little_data(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "tiny", 1, 1, 300, seed=0)
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "tiny")]) == 2
    err = capsys.readouterr().err
    assert "only 16 windows" in err and "needs at least 250" in err


def test_cli_refuses_bad_options_with_one_sentence(tmp_path, capsys):
    for option in (["--window", "0"], ["--stride", "0"], ["--target-far", "2"]):
        assert main(["train", "--proc", "demo", "--from", str(tmp_path), *option,
                     "--store", str(tmp_path / "s")]) == 2
        assert "out of range" in capsys.readouterr().err


def test_cli_train_fits_the_thread_profile_when_threads_suffice(tmp_path, capsys, monkeypatch):
    """Enough threads: `train` also fits the whole-thread profile `eval` measures, and
    `score` gives each thread its whole-stream verdict; too few: it says so."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "many", 1, 300, 200, seed=0)
    _record(tmp_path / "same", 1, 40, 200, seed=5)
    _record(tmp_path / "other", 2, 10, 200, seed=2)
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "many")]) == 0
    assert "thread profile: presence-lm on 300 whole thread streams" in capsys.readouterr().err
    assert main(["profiles", "show", "demo", "--json"]) == 0
    header = json.loads(capsys.readouterr().out)
    assert header["thread_profile"]["detector"] == "presence-lm"
    assert header["thread_profile"]["threads"] == 300
    assert header["thread_profile"]["threshold"] is not None
    assert main(["profiles", "show", "demo"]) == 0
    assert "threads    presence-lm on 300 whole streams" in capsys.readouterr().out

    assert main(["score", "--proc", "demo", str(tmp_path / "other"), "--json"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["thread_profile"]["anomalous_threads"] == 10
    assert all(t["stream_anomalous"] for t in other["threads"])
    assert main(["score", "--proc", "demo", str(tmp_path / "same"), "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["thread_profile"]["anomalous_threads"] <= 2     # ~1e-4 target, 40 threads
    assert min(t["stream_score"] for t in other["threads"]) > max(
        t["stream_score"] for t in same["threads"])
    assert main(["score", "--proc", "demo", str(tmp_path / "other")]) == 0
    assert "each thread scored whole by presence-lm" in capsys.readouterr().out

    _record(tmp_path / "few", 1, 12, 1500, seed=0)
    assert main(["train", "--proc", "few", "--from", str(tmp_path / "few")]) == 0
    assert "thread profile: not fitted, 12 thread streams" in capsys.readouterr().err
    assert main(["profiles", "show", "few"]) == 0
    assert "no thread profile" in capsys.readouterr().out


# -- directories above the store: whoever can rename one can swap the whole store ----------
def _store_below(parent: Path, trained) -> ProfileStore:
    profile, traces = trained
    s = ProfileStore(parent / "deeper" / "profiles")
    s.save(TrainedProfile("demo", profile, None, traces, binary={"name": "demo"}))
    return s


def test_a_store_below_a_directory_others_can_write_is_refused(tmp_path, trained):
    s = _store_below(tmp_path / "shared", trained)
    os.chmod(tmp_path / "shared", 0o777)
    with pytest.raises(ProfileFileError, match=f"{tmp_path / 'shared'} above it"):
        s.load("demo")
    with pytest.raises(ProfileFileError, match="above it"):       # and nothing new saved there
        _store_below(tmp_path / "shared", trained)
    os.chmod(tmp_path / "shared", 0o755)
    assert s.load("demo").header["name"] == "demo"


def test_a_sticky_directory_above_the_store_is_fine(tmp_path, trained):
    s = _store_below(tmp_path / "tmpish", trained)
    os.chmod(tmp_path / "tmpish", 0o1777)                         # like /tmp
    assert s.load("demo").header["name"] == "demo"


def test_a_directory_above_the_store_owned_by_another_user_is_refused(tmp_path, trained):
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory to another user")
    s = _store_below(tmp_path / "theirs", trained)
    os.chown(tmp_path / "theirs", 65534, 65534)                   # nobody
    with pytest.raises(ProfileFileError, match="above it"):
        s.load("demo")


def test_a_store_reached_through_a_symlink_is_checked_where_it_resolves(tmp_path, trained):
    real = _store_below(tmp_path / "shared", trained)
    os.chmod(tmp_path / "shared", 0o777)
    (tmp_path / "safe").mkdir(mode=0o755)
    (tmp_path / "safe" / "link").symlink_to(real.root)
    with pytest.raises(ProfileFileError, match="above it"):
        ProfileStore(tmp_path / "safe" / "link").load("demo")


def test_cli_train_honours_or_refuses_every_option_it_is_given(tmp_path, capsys, monkeypatch):
    """No option is silently ignored: --target-far recalibrates an --append, and it and the
    thread profile follow it; live-only options are refused with --from."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    _record(tmp_path / "normal", 1, 300, 200, seed=0)
    _record(tmp_path / "more", 1, 20, 200, seed=1)
    for live_only in (["--duration", "5s"], ["--until-stable"]):
        assert main(["train", "--proc", "demo", "--from", str(tmp_path / "normal"),
                     *live_only]) == 2
        assert "drop them" in capsys.readouterr().err
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "normal"),
                 "--target-far", "0.01"]) == 0
    capsys.readouterr()
    header = ProfileStore(tmp_path / "store").header("demo")
    assert header["calibration"]["target_far"] == 0.01
    assert main(["profiles", "show", "demo"]) == 0  # what the probes found, in words
    shown = capsys.readouterr().out
    probed = [line for line in shown.splitlines() if line.startswith("probed")]
    assert len(probed) == ("lowered_to_reach" in header["calibration"]) + (
        "spliced_below_threshold" in header["calibration"])
    assert header["thread_profile"]["calibration"]["target_far"] == 0.01
    assert main(["train", "--proc", "demo", "--from", str(tmp_path / "more"), "--append",
                 "--target-far", "0.02"]) == 0
    header = ProfileStore(tmp_path / "store").header("demo")
    assert header["calibration"]["target_far"] == 0.02


def test_cli_train_refuses_options_its_source_kind_would_ignore(tmp_path, capsys, monkeypatch):
    """The Parquet path returned before the live-only and --append checks, and the cluster
    options did nothing without Parquet: each is now one sentence, exit 2."""
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "store"))
    parquet = tmp_path / "fleet"
    (parquet / "host=a").mkdir(parents=True)   # a Parquet root (its layout, no file needed)
    _record(tmp_path / "normal", 1, 30, 200, seed=0)
    refused = {
        "drop them": [["--from", str(parquet), "--duration", "5s"],
                      ["--from", str(parquet), "--until-stable"],
                      ["--from", str(tmp_path / "normal"), "--cluster", "tcp://127.0.0.1:1"],
                      ["--duration", "5s", "--workers", "2"],
                      ["--from", str(tmp_path / "normal"), "--worker-memory", "1GiB"]],
        "drop --append": [["--from", str(parquet), "--append"]],
    }
    for fix, cases in refused.items():
        for options in cases:
            assert main(["train", "--proc", "demo", *options]) == 2, options
            err = capsys.readouterr().err
            assert fix in err and err.count("\n") == 1, (options, err)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").iterdir())


def test_a_profile_trained_with_another_syscall_table_is_refused(tmp_path, trained, monkeypatch):
    profile, traces = trained
    s = ProfileStore(tmp_path / "p")
    s.save(TrainedProfile("demo", profile, None, traces))
    import sysgram.models.store as store_module

    monkeypatch.setattr(store_module, "syscall_table_digest", lambda arch: "0" * 64)
    with pytest.raises(UserError, match="another x86_64 syscall table"):
        s.load("demo")
