"""`sysgram watch` end to end without a kernel: a scripted collector, a real stored profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sysgram.cli import main
from sysgram.collector import items as ci
from sysgram.features import Sequences
from sysgram.models.profile import Profile
from sysgram.models.store import ProfileStore
from sysgram.models.training import TrainedProfile
from sysgram.syscalls import table

T = table("x86_64")
NORMAL_CALLS = [T.number(n) for n in ("read", "write", "openat", "close", "fstat", "lseek")]
ATTACK = np.array([T.number(n) for n in ("clone", "execve", "socket", "connect")],
                  dtype=np.uint16)


def markov(rng: np.random.Generator, n: int) -> np.ndarray:
    """A stream cycling through the normal calls, with a rare random jump."""
    out = np.empty(n, dtype=np.uint16)
    state = 0
    for k in range(n):  # test data only
        state = (state + 1) % 6 if rng.random() < 0.999 else int(rng.integers(6))
        out[k] = NORMAL_CALLS[state]
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    rng = np.random.default_rng(1)
    traces = Sequences.from_list([markov(rng, 2000) for _ in range(8)])
    profile = Profile(window=16, stride=4).fit(traces)
    ProfileStore(root).save(TrainedProfile("victim", profile, None, traces))
    return root


@pytest.fixture(scope="module")
def cut(store) -> str:
    """A --threshold between this file's normal and attack windows (the verdicts are what
    these tests need fixed; detection quality is the kernel test's and the models' job)."""
    profile = ProfileStore(store).load("victim").profile

    def top(drains) -> float:
        ids = np.concatenate([i.ids for d in drains for i in d if isinstance(i, ci.ThreadEvents)])
        return float(profile.score_windows(profile.windows(Sequences.from_list([ids])).seqs).max())

    normal, attack = top(stream()), top(stream(attack=True))
    assert attack > normal, "test data: the attack must outscore normal windows"
    return repr((normal + attack) / 2)


class FakeCollector:
    """Follows the collector contract (design §2): drains scripted items, then nothing."""

    script: list[list] = []

    def __init__(self, target, **kw) -> None:
        self.target = target
        self.drains = list(self.script)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def poll(self, timeout: float = 0.05) -> ci.Drain:
        return ci.Drain(self.drains.pop(0) if self.drains else [])

    def stats(self) -> ci.CollectorStats:
        return ci.CollectorStats(0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0)


@pytest.fixture
def collector(monkeypatch):
    import sysgram.collector

    monkeypatch.setattr(sysgram.collector, "Collector", FakeCollector)
    return FakeCollector


def stream(comm: str = "victim", attack: bool = False) -> list[list]:
    rng = np.random.default_rng(2)  # the same calls on every call
    start = ci.ThreadStart(50, 50, 1, comm, "/usr/bin/victim", None, 0)
    drains = [[start]]
    for k in range(10):
        drains.append([ci.ThreadEvents(50, 50, markov(rng, 64), 10**9 * (k + 3))])
    if attack:
        piece = np.concatenate([markov(rng, 40), ATTACK, markov(rng, 40)])
        drains.append([ci.ThreadEvents(50, 50, piece, 10**9 * 20)])
    return drains


def run(store, cut: str, *args: str) -> int:
    """The exit status the `sysgram` console script would give."""
    try:
        return main(["watch", "--proc", "victim", "--store", str(store), "--warmup", "0",
                     "--threshold", cut, *args])
    except SystemExit as done:
        return done.code


def test_normal_stream_is_quiet_and_the_summary_counts_it(store, cut, collector, capsys):
    collector.script = stream()
    assert run(store, cut, "--duration", "1s") == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "attached" in err and "windows scored" in err and "3 events lost" in err


def test_exit_on_alert_prints_a_json_alert_and_exits_1(store, cut, collector, capsys, tmp_path):
    collector.script = stream(attack=True)
    alerts = tmp_path / "alerts.jsonl"
    code = run(store, cut, "--json", "--exit-on-alert", "--alerts", str(alerts), "--duration", "5s")
    out, err = capsys.readouterr()
    assert code == 1, err
    first = json.loads(out.splitlines()[0])
    assert first["kind"] == "alert" and first["pid"] == 50
    assert {"clone", "execve"} <= set(first["new_syscalls"])
    assert json.loads(alerts.read_text().splitlines()[0]) == first
    assert "alert seen" in err


def test_text_alerts_escape_a_hostile_process_name(store, cut, collector, capsys):
    collector.script = stream(comm="evil\x1b]0;pwned\x07\x1b[2J", attack=True)
    assert run(store, cut, "--max-alerts", "1", "--duration", "5s") == 1
    out, _ = capsys.readouterr()
    assert "ALERT #1" in out and "\x1b" not in out and "\\x1b]0;pwned\\x07" in out
    assert "new to this binary: clone, execve, socket, connect" in out


def test_missing_profile_is_one_sentence_and_exit_2(tmp_path, collector, capsys):
    assert main(["watch", "--proc", "nosuch", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sysgram: there is no profile for 'nosuch'") and "Traceback" not in err


def test_learn_saves_a_refitted_profile_on_exit(store, cut, collector, capsys):
    before = ProfileStore(store).header("victim")
    collector.script = stream() * 3
    assert run(store, cut, "--learn", "--duration", "1s") == 0
    err = capsys.readouterr().err
    assert "saved the updated profile" in err
    after = ProfileStore(store).header("victim")
    sources = after["training"]["sources"]
    assert sources[-1]["kind"] == "watch --learn" and sources[-1]["windows"] > 0
    assert after["training"]["windows"] > before["training"]["windows"]


def test_the_calibrated_threshold_goes_through_watch(store, collector, capsys):
    """No --threshold: the profile's own calibrated threshold decides, normal traffic is
    quiet and the attack alerts against that threshold."""
    threshold = ProfileStore(store).header("victim")["threshold"]
    collector.script = stream()
    code = main(["watch", "--proc", "victim", "--store", str(store), "--warmup", "0",
                 "--duration", "1s"])
    assert code == 0 and capsys.readouterr().out == ""
    collector.script = stream(attack=True)
    try:
        code = main(["watch", "--proc", "victim", "--store", str(store), "--warmup", "0",
                     "--json", "--exit-on-alert", "--duration", "5s"])
    except SystemExit as done:
        code = done.code
    out, err = capsys.readouterr()
    assert code == 1, err
    # The record rounds the threshold to six decimals.
    assert json.loads(out.splitlines()[0])["threshold"] == pytest.approx(threshold, abs=5e-7)
