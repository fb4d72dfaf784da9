"""What /proc says about processes and threads: names, parents, executables and their hashes."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sysgram.collector.cgroups import cgroup_path, unified_path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int | None
    comm: str | None
    exe: str | None
    exe_sha256: str | None
    cgroup: str | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="surrogateescape")
    except OSError:
        return None


def read_comm(pid: int, tid: int | None = None) -> str | None:
    base = PROC / str(pid) if tid is None else PROC / str(pid) / "task" / str(tid)
    text = _read(base / "comm")
    return text.rstrip("\n") if text is not None else None


def read_ppid(pid: int) -> int | None:
    stat = _read(PROC / str(pid) / "stat")
    if not stat:
        return None
    # The comm field may hold spaces and parentheses: the fields after the last ')' are safe.
    fields = stat[stat.rfind(")") + 2:].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def read_cgroup(pid: int) -> str | None:
    """The process's cgroup path (see cgroups.cgroup_path), None when it is gone."""
    text = _read(PROC / str(pid) / "cgroup")
    return cgroup_path(text) if text else None


def read_unified_cgroup(pid: int) -> str | None:
    """The process's cgroup v2 path (what --cgroup compares), None when it is gone."""
    text = _read(PROC / str(pid) / "cgroup")
    return unified_path(text) if text else None


def read_exe(pid: int) -> str | None:
    try:
        return os.readlink(PROC / str(pid) / "exe")
    except OSError:
        return None


def pids_with_comm(comm: str) -> list[int]:
    """Processes whose kernel name is `comm` right now."""
    found = []
    for entry in os.scandir(PROC):
        if entry.name.isdigit() and read_comm(int(entry.name)) == comm:
            found.append(int(entry.name))
    return found


def pids_by_comm(comms: set[str]) -> dict[str, list[int]]:
    """Processes whose kernel name is one of `comms` right now (one scan of /proc)."""
    found: dict[str, list[int]] = {comm: [] for comm in comms}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            comm = read_comm(int(entry.name))
            if comm in found:
                found[comm].append(int(entry.name))
    return found


def same_executable(pid: int, exe: str, fallback_path: str | None = None) -> bool:
    """Whether process `pid` runs the file at `exe` (same device and inode).

    When the process is already gone, `fallback_path` (the file its exec named, if
    absolute) stands in for it.
    """
    try:
        wanted = os.stat(exe)
    except OSError:
        return False
    for candidate in (PROC / str(pid) / "exe", fallback_path):
        if candidate is None or (isinstance(candidate, str) and not candidate.startswith("/")):
            continue
        try:
            running = os.stat(candidate)
        except OSError:
            continue
        return (running.st_dev, running.st_ino) == (wanted.st_dev, wanted.st_ino)
    return False


class ExeHashes:
    """sha256 of executables, computed once per (device, inode)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], str] = {}

    def of_process(self, pid: int) -> str | None:
        return self.of_path(PROC / str(pid) / "exe")

    def of_path(self, path: Path | str) -> str | None:
        """sha256 of the file at `path` (for /proc/<pid>/exe: the file the process runs)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_dev, st.st_ino)
        if key not in self._cache:
            try:
                self._cache[key] = _sha256_file(path)
            except OSError:
                return None
        return self._cache[key]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def process_info(pid: int, hashes: ExeHashes) -> ProcessInfo | None:
    """A snapshot of `pid`, or None when it is gone."""
    comm = read_comm(pid)
    if comm is None:
        return None
    return ProcessInfo(pid=pid, ppid=read_ppid(pid), comm=comm, exe=read_exe(pid),
                       exe_sha256=hashes.of_process(pid), cgroup=read_cgroup(pid))
