"""The scenario suite's CI part: one real server (Apache httpd under ab) and one attack of
each shape (spawn, in-thread, code loading), through the real sysgram CLI and the real kernel,
with short training and watching. Asserts the harness's bookkeeping (each attack worked
and the attacked process tree's calls were recorded, the calls that make it that attack
among them) and that the default detector catches the spawn attack with no false alarm
in its short watch. The full suite is `python -m benchmarks.scenarios`. Apache, because
in the suite's full run it had no false alarm with the default in 10 minutes (nginx's
worker had one every 150 s or so: a 30-s watch would fail about one run in five)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from benchmarks.scenarios.attacks import SHAPES
from benchmarks.scenarios.harness import Settings, run_scenario
from benchmarks.scenarios.packages import missing
from benchmarks.scenarios.servers import make_server
from sysgram.models.defaults import DEFAULT_DETECTOR

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


@pytest.fixture
def open_dir():
    """A work directory the server's unprivileged workers can reach (pytest's tmp_path
    is closed to other users)."""
    path = Path(tempfile.mkdtemp(prefix="sysgram-scenario-ci-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_apache_attacks_are_recorded_and_the_default_catches_the_spawn(open_dir):
    server = make_server("apache")
    absent = missing(list(server.debian_packages))
    assert not absent, f"make install should have installed {absent} (scripts/install.sh)"
    settings = Settings(train_s=60.0, watch_s=30.0, warmup_s=3.0, alert_wait_s=6.0,
                        settle_s=6.0, models=[DEFAULT_DETECTOR])
    result = run_scenario(server, settings, open_dir / "apache")

    attacks = result["attacks"]
    assert sorted(a["shape"] for a in attacks) == sorted(SHAPES)
    for a in attacks:
        assert a["succeeded"], (a["name"], a["evidence"])
        # The attacked tree's own calls were recorded: events, and the calls that make
        # this attack what it is (execve for the shell, connect, memfd_create).
        assert a["tree"]["events"] > 0, a
        assert a["expected_syscalls_recorded"], (a["name"], a["tree"])
    spawned = next(a for a in attacks if a["shape"] == "spawn")
    assert spawned["tree"]["processes"] >= 2  # the server process and the shell it started

    verdict = result["models"][DEFAULT_DETECTOR]
    assert verdict["false_alarms"] == 0, [
        (e["comm"], e["scope"], e.get("new"), e["new_syscalls"], e["unseen_ngrams"])
        for e in verdict["false_alarm_examples"]]
    assert verdict["attacks"][spawned["name"]]["caught"], verdict["attacks"]
    assert result["load_completed_while_watched"] > 100
