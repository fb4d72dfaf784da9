"""`make demo` end to end, for real: train on the demo server, watch, attack, judge.

Runs `python -m sysgram.demo` exactly as `make demo` does (about 100 s): the attack must
be caught, within a second, with no false alarm during normal traffic, and every process
the demo started must be gone after.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys

import pytest

from sysgram.demo.target import live_pids_named

pytestmark = [pytest.mark.kernel, pytest.mark.slow]


def test_make_demo_catches_the_attack_without_false_alarms(tmp_path):
    # A name of its own, so a `make demo` running at the same time cannot interfere.
    name = f"sg-test-{secrets.token_hex(3)}"
    workdir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "sysgram.demo", "--workdir", str(workdir), "--name", name],
        capture_output=True, text=True, timeout=240,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    assert "ALERT" in out
    assert "false alarms during normal traffic: 0" in out
    assert "secret stolen" in out  # the attack really worked
    latency = re.search(r"time from attack to alert: ([\d.]+) s", out)
    assert latency and float(latency.group(1)) <= 1.0, out[-2000:]
    windows = re.search(r"windows scored by sysgram watch: (\d+)", out)
    assert windows and int(windows.group(1)) > 100, out[-2000:]
    assert (workdir / "alerts.jsonl").stat().st_size > 0
    assert not live_pids_named(name), "the demo left its server running"
