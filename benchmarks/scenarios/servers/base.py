"""What a scenario server is, and the pieces every server module shares: a process in
its own session that dies with the suite, ports, paced load loops, pid lookups."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchmarks.scenarios.attacks import Attack
from sysgram.demo.target import dies_with_us, processes, stop_session


class Server(Protocol):
    """A real server under its own benchmark client, with its attacks."""

    name: str        # the suite's name for it (--servers)
    comm: str        # the process name sysgram records, trains and watches
    load: str        # the load, in words, for the README
    debian_packages: tuple[str, ...]   # what it needs installed (packages.py installs them)

    def start(self, work: Path, budget_s: float) -> None:
        """Start the server (bound to 127.0.0.1) and its load, both ending by themselves
        within budget_s; returns once the server answers."""

    def trouble(self) -> str | None:
        """Why the run is no longer valid (server or load died), or None."""

    def attacks(self) -> list[Attack]:
        """The attacks, in the order the harness runs them (after start)."""

    def version(self) -> str: ...

    def load_done(self) -> int:
        """Requests (or logins, transactions) the load has completed so far."""

    def stop(self) -> None:
        """Stop the load and the server and everything they started."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.1)
    return False


class Daemon:
    """A process we start in its own session, stopped with all it spawned."""

    def __init__(self, cmd: list[str], log: Path, *, env: dict | None = None,
                 cwd: Path | None = None) -> None:
        self.cmd, self.log, self.env, self.cwd = cmd, log, env, cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> Daemon:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                dies_with_us(self.cmd), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=self.env, cwd=self.cwd)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_session(self.process)
            self.process = None


@dataclass
class PacedLoop:
    """Calls `action()` at about `rate` per second (Poisson arrivals) from `workers`
    threads until `seconds` have passed or `max_calls` were made; counts outcomes."""

    action: Callable[[], bool]
    rate: float
    seconds: float
    workers: int = 1
    max_calls: int = 10_000_000
    done: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> PacedLoop:
        deadline = time.monotonic() + self.seconds
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(deadline,), daemon=True,
                                 name=f"sg-scen-load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def _run(self, deadline: float) -> None:
        per_worker = self.rate / self.workers
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self.done + self.failed >= self.max_calls:
                    return
            try:
                ok = self.action()
            except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
                ok = False
            with self._lock:
                if ok:
                    self.done += 1
                else:
                    self.failed += 1
            self._stop.wait(random.expovariate(per_worker))


class PacedServer:
    """The lifecycle shared by servers whose load is a PacedLoop: one server process
    (`self.server`) and its load (`self.loop`), each `per_call` requests a call."""

    name = "server"
    per_call = 1

    def __init__(self) -> None:
        self.server: Daemon | None = None
        self.loop: PacedLoop | None = None

    @property
    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def trouble(self) -> str | None:
        if self.server is None or not self.server.alive():
            return f"{self.name} exited"
        if self.loop is None or not self.loop.running():
            return f"{self.name}'s load stopped"
        return None

    def load_done(self) -> int:
        return (self.loop.done if self.loop else 0) * self.per_call

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        if self.server is not None:
            self.server.stop()


def children_named(ppid: int, comm: str) -> list[int]:
    """Live children of ppid whose comm is `comm`."""
    return sorted(p.pid for p in processes() if p.ppid == ppid and p.comm == comm and p.live)


def pick_child(ppid: int, comm: str) -> int:
    """One live child of ppid named comm (the server's worker an attack hits)."""
    pids = children_named(ppid, comm)
    if not pids:
        raise RuntimeError(f"no live {comm} child of pid {ppid}")
    return pids[0]


def private_copy(binary: str, work: Path, name: str) -> str:
    """A copy of a server's binary named `name` (its kernel comm): sysgram follows
    processes by name, and another nginx or sshd on this machine must not mix into the
    suite's profiles and alerts. The copy runs exactly the distribution's code."""
    directory = work / "bin"
    directory.mkdir(exist_ok=True)
    directory.chmod(0o755)
    target = directory / name
    shutil.copy2(binary, target)
    return str(target)


def first_line(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def make_world_readable(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
