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
ADFA_SPLIT_DIRS = ("Training_Data_Master", "Validation_Data_Master", "Attack_Data_Master")


def adfa_unavailable_reason() -> str | None:
    """Why the ADFA-LD dev split cannot be read here, or None when it can.

    The dataset is never in the repository: `make test` points SYSGRAM_ADFA_DIR at
    ../shared/datasets/adfa-ld-dev, which exists beside this workspace and in CI, not in
    a clone made elsewhere.
    """
    path = os.environ.get("SYSGRAM_ADFA_DIR")
    if not path:
        return "the ADFA-LD dev split is not given (set SYSGRAM_ADFA_DIR to its directory)"
    missing = [d for d in ADFA_SPLIT_DIRS if not (Path(path) / d).is_dir()]
    if missing:
        return (f"the ADFA-LD dev split is not at {path} (no {missing[0]}/); set "
                "SYSGRAM_ADFA_DIR to its directory")
    return None


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
    """Skip, with the reason, the tests whose marker names something this machine lacks."""
    for marker, reason in (("kernel", kernel_unavailable_reason()),
                           ("adfa", adfa_unavailable_reason())):
        if reason is None:
            continue
        skip = pytest.mark.skip(reason=reason)
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def adfa_dev_split() -> Path:
    """The ADFA-LD dev split's directory (tests using it are marked `adfa`)."""
    reason = adfa_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return Path(os.environ["SYSGRAM_ADFA_DIR"])


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
