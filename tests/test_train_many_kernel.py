"""`sysgram train` with several names: one collector, one profile each, each from its own
threads (live, and from one recording that holds both binaries)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import start_recorder

from sysgram.models.store import ProfileStore

pytestmark = [pytest.mark.kernel, pytest.mark.slow]
SYSGRAM = [sys.executable, "-m", "sysgram"]


def _sources(store, comm: str) -> list[dict]:
    return ProfileStore(store).header(comm)["training"]["sources"]


def test_live_and_recorded_training_of_two_binaries(build_workload, tmp_path):
    a, b = build_workload("victim"), build_workload("victim")
    victims = [subprocess.Popen([str(exe), "0", str(tmp_path / f"{exe.name}.stamps")],
                                stdout=subprocess.DEVNULL) for exe in (a, b, b)]
    try:
        live = subprocess.run([*SYSGRAM, "train", "--proc", a.name, "--proc", b.name,
                               "--duration", "8s", "--store", str(tmp_path / "live")],
                              capture_output=True, text=True, timeout=120)
        assert live.returncode == 0, live.stderr
        recorder = start_recorder("--proc", a.name, "--proc", b.name,
                                  "--out", str(tmp_path / "rec"))
        time.sleep(8)                                # enough windows for a profile
        recorder.send_signal(signal.SIGTERM)
        assert recorder.wait(timeout=30) == 0
        offline = subprocess.run([*SYSGRAM, "train", "--proc", a.name, "--proc", b.name,
                                  "--from", str(tmp_path / "rec"), "--store",
                                  str(tmp_path / "offline")],
                                 capture_output=True, text=True, timeout=120)
        assert offline.returncode == 0, offline.stderr
    finally:
        for victim in victims:
            victim.kill()
            victim.wait()
    for store in ("live", "offline"):
        threads = {comm: sum(s["threads"] for s in _sources(tmp_path / store, comm))
                   for comm in (a.name, b.name)}
        # b runs twice as many processes (one thread each): each profile saw only its own.
        assert threads[a.name] >= 1 and threads[b.name] == 2 * threads[a.name], (store, threads)
    assert [s["comm"] for s in _sources(tmp_path / "live", b.name)] == [b.name]
