"""Shared fixtures: the `kernel` gate and a builder for the small C workloads in workloads/.

Tests that need the kernel are marked `@pytest.mark.kernel`; they run for real as root
with bcc (as in CI) and are skipped, with the reason, anywhere else.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

WORKLOADS = Path(__file__).resolve().parent / "workloads"


def kernel_unavailable_reason() -> str | None:
    """Why kernel tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root (BPF)"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not importable (run with .venv/bin/python after make install)"
    if shutil.which("gcc") is None:
        return "gcc is missing (make install installs it)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = kernel_unavailable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def kernel() -> None:
    """Skip the test unless BPF tracing can run here (root, bcc, gcc)."""
    reason = kernel_unavailable_reason()
    if reason:
        pytest.skip(reason)


def unique_comm(prefix: str) -> str:
    """A process name no other test or process uses (<= 15 bytes, as the kernel keeps it)."""
    return f"{prefix[:8]}{secrets.token_hex(3)}"[:15]


@pytest.fixture(scope="session")
def _workload_binaries(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workload-bin")


@pytest.fixture
def build_workload(_workload_binaries, tmp_path):
    """build_workload("pattern", comm=None) -> path of tests/workloads/pattern.c, compiled.

    Each call returns a fresh copy named `comm` (default: a unique name), so the kernel
    sees a process name no other test uses.
    """

    def build(source: str, comm: str | None = None) -> Path:
        compiled = _workload_binaries / source
        if not compiled.exists():
            subprocess.run(
                ["gcc", "-O2", "-pthread", "-o", str(compiled), str(WORKLOADS / f"{source}.c")],
                check=True,
            )
        target = tmp_path / (comm or unique_comm(source))
        shutil.copy2(compiled, target)
        return target

    return build
