"""Helpers shared by the kernel tests (importable: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sysgram.collector import Collector, TargetSpec

SYSGRAM = [sys.executable, "-m", "sysgram"]


def start_recorder(*args: str, timeout: float = 30.0) -> subprocess.Popen:
    """`sysgram record ...`, returned once it printed its `attached` line."""
    proc = subprocess.Popen([*SYSGRAM, "record", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("attached"):
            return proc
    proc.kill()
    pytest.fail(f"recorder never attached: {''.join(lines)}")


def collect_items(target: TargetSpec, action, settle: float = 0.5, rings=None,
                  **options) -> tuple:
    """Run `action()` while collecting `target`; returns (items, collector stats)."""
    items: list = []
    with Collector(target, rings=rings, **options) as collector:
        action()
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            items += collector.poll(0.05).items
        collector.stop()
        items += collector.poll(0).items
        stats = collector.stats()
    return items, stats
