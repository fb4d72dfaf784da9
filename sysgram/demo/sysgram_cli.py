"""Drive the real `sysgram` command line, as a user would: `train`, then `watch`.

The demo never calls sysgram's Python API directly: what it shows is what the
commands do. Each command runs in its own session so the demo can stop it (and
anything it started) whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sysgram.demo.target import dies_with_us, stop_session
from sysgram.errors import UserError


def sysgram_command(*args: str) -> list[str]:
    """The argv that runs this checkout's sysgram CLI with this interpreter."""
    return [sys.executable, "-m", "sysgram", *args]


def require_commands(*names: str) -> None:
    """Refuse to start when this sysgram has no such commands (yet)."""
    for name in names:
        probe = subprocess.run(sysgram_command(name, "--help"), capture_output=True, text=True)
        if probe.returncode != 0:
            raise UserError(
                f"this sysgram has no '{name}' command yet ({probe.stderr.strip()[:120]}); "
                "update the checkout and run 'make install'."
            )


def train(comm: str, store: Path, duration: float, extra: list[str] | None = None) -> int:
    """`sysgram train --proc COMM --duration Ns --store STORE`, output straight to the terminal
    (its progress bar and novelty rate are part of the show). Returns its exit code."""
    cmd = sysgram_command("train", "--proc", comm, "--duration", f"{duration:g}s",
                          "--store", str(store), *(extra or []))
    process = subprocess.Popen(dies_with_us(cmd), start_new_session=True)
    try:
        return process.wait()
    finally:
        if process.poll() is None:
            stop_session(process)


class Watch:
    """A running `sysgram watch --proc COMM --json --alerts FILE`."""

    def __init__(self, comm: str, store: Path, alerts: Path, *, log: Path,
                 extra: list[str] | None = None) -> None:
        self.alerts_path = alerts
        self.log_path = log
        self.cmd = sysgram_command("watch", "--proc", comm, "--store", str(store), "--json",
                                   "--alerts", str(alerts), *(extra or []))
        self.process: subprocess.Popen[str] | None = None
        self.stderr_lines: list[str] = []
        self.attached = threading.Event()
        self._offset = 0
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 15.0) -> None:
        """Start watching; returns once it printed `attached`, or raises UserError."""
        self.alerts_path.touch()
        with open(self.log_path, "w") as stdout:
            self.process = subprocess.Popen(
                dies_with_us(self.cmd), stdout=stdout, stderr=subprocess.PIPE, text=True,
                start_new_session=True,
            )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True,
                                        name="sg-demo-watch-stderr")
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.attached.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = " ".join(self.stderr_lines[-3:]) or "no output"
                raise UserError(f"'sysgram watch' did not attach ({tail}).")

    def new_records(self) -> list[dict]:
        """Alert records appended to the alerts file since the last call."""
        try:
            with open(self.alerts_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]  # a line being written waits for next time
        self._offset += len(complete)
        records = []
        for line in complete.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"kind": "unreadable", "raw": line.decode(errors="replace")})
        return records

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM (watch then prints its summary); returns its exit code."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        stop_session(process)
        if self._reader is not None:
            self._reader.join(2)
        return process.returncode

    def summary_lines(self) -> list[str]:
        """watch's closing summary as it printed it (from its 'sysgram watch' line on)."""
        starts = [i for i, line in enumerate(self.stderr_lines)
                  if line.startswith("sysgram watch")]
        return self.stderr_lines[starts[-1]:] if starts else []

    def summary_counts(self) -> dict[str, int]:
        """Numbers from watch's closing summary, e.g. {'windows scored': 1234, 'alerts': 1}."""
        return parse_counts("\n".join(self.stderr_lines))

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            line = line.rstrip("\n")
            self.stderr_lines.append(line)
            if line.startswith("attached"):
                self.attached.set()


_COUNT = re.compile(r"(\d[\d,]*)\s+([a-z][a-z ]*[a-z])|([a-z][a-z ]*[a-z])\s*[:=]\s*(\d[\d,]*)")


def parse_counts(text: str) -> dict[str, int]:
    """'1,234 windows scored, 0 alerts' or 'windows scored: 1234' -> {'windows scored': 1234, …}.
    Later mentions win (the closing summary comes last)."""
    counts: dict[str, int] = {}
    for m in _COUNT.finditer(text.lower()):
        number, label = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        counts[label.strip()] = int(number.replace(",", ""))
    return counts
