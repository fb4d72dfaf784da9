"""The demo target: build `sg-demo-httpd` from its C source, give it content, run it.

The server is a real binary under its own name, so sysgram profiles it like any other
service (its kernel comm is `sg-demo-httpd`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sysgram.errors import UserError

DEMO_COMM = "sg-demo-httpd"
SOURCE = Path(__file__).with_name("httpd.c")

# What a small internal web tool serves; the load generator asks for these names.
STATIC_FILES: dict[str, bytes] = {
    "index.html": b"<!doctype html><html><head><title>inventory</title>"
    b'<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js"></script>'
    b"</head><body><h1>Inventory</h1><div id=items></div></body></html>\n",
    "style.css": b"body{font-family:sans-serif;margin:2em}h1{color:#235}\n" * 20,
    "app.js": b"fetch('/api/items').then(r=>r.json()).then(show);\n" * 40,
    "logo.png": bytes(range(256)) * 24,
    "data.json": b'{"region":"eu-west","racks":[1,2,3,4],"owner":"ops"}\n',
}


@dataclass(frozen=True)
class ProcStat:
    """What /proc/PID/stat says about a process that matters here."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int

    @property
    def live(self) -> bool:
        """Running, not a zombie (orphans reparented to a pid 1 that never reaps them)."""
        return self.state != "Z"


def processes() -> Iterator[ProcStat]:
    """Every process in /proc now (those that vanish while read are skipped)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        fields = rest.split()
        yield ProcStat(int(entry.name), name, fields[0], int(fields[1]), int(fields[2]))


def live_pids_named(comm: str) -> list[int]:
    """Pids of running (not zombie) processes whose kernel comm is `comm`."""
    return [p.pid for p in processes() if p.comm == comm and p.live]


def pick_comm(preferred: str = DEMO_COMM) -> str:
    """`preferred`, unless a process already has that name (another demo or test running
    on this machine would share its profile and alerts): then a fresh name of the form
    sg-demo-XXXXX (kernel names keep 15 bytes)."""
    if not live_pids_named(preferred):
        return preferred
    while True:
        name = f"sg-demo-{secrets.token_hex(3)[:5]}"
        if not live_pids_named(name):
            return name


def build_server(out_dir: Path, name: str = DEMO_COMM) -> Path:
    """Compile the demo server into out_dir/name; returns the binary's path."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise UserError("no C compiler found to build the demo server; run 'make install'.")
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / name
    cmd = [compiler, "-O2", "-Wall", "-pthread", "-o", str(binary), str(SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise UserError(
            f"building the demo server failed ({done.stderr.strip()[:300]}); "
            "check that gcc and libc6-dev are installed ('make install')."
        )
    return binary


def write_docroot(root: Path) -> Path:
    """Write the server's static content under root; returns root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in STATIC_FILES.items():
        (root / name).write_bytes(content)
    return root


class DemoServer:
    """One running sg-demo-httpd, in its own session so every child it spawns can be
    stopped with it (the attack leaves a shell behind)."""

    def __init__(self, binary: Path, docroot: Path, log: Path, *, workers: int = 4,
                 env: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.env = env
        self.docroot = docroot
        self.log = log
        self.workers = workers
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 5.0) -> int:
        """Start the server; returns its port once it accepts connections."""
        cmd = dies_with_us([str(self.binary), "--root", str(self.docroot), "--log",
                            str(self.log), "--workers", str(self.workers)])
        # stderr goes next to the access log: nobody reads a pipe once the server runs.
        with open(self.log.with_suffix(".stderr"), "ab") as errors:
            self.process = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=errors, start_new_session=True,
                env=self.env,
            )
        line = _read_line(self.process, timeout)
        if not line.startswith("listening "):
            self.stop()
            raise UserError(
                f"the demo server did not start ({line or 'no output'}); "
                f"see {self.log.with_suffix('.stderr')}."
            )
        self.port = int(line.rsplit(":", 1)[1])
        return self.port

    def stop(self) -> None:
        """Stop the server and everything left in its session."""
        if self.process is None:
            return
        stop_session(self.process)
        self.process = None

    def __enter__(self) -> DemoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dies_with_us(cmd: list[str]) -> list[str]:
    """cmd, made to receive SIGTERM if the demo itself dies (even by SIGKILL, when no
    cleanup code can run): util-linux's setpriv sets the parent-death signal, which
    survives the exec. Without setpriv, cmd unchanged."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *cmd] if setpriv else cmd


def stop_session(process: subprocess.Popen, grace: float = 3.0) -> None:
    """SIGTERM a process we started in its own session (and its session), SIGKILL after grace."""
    pgid = process.pid  # start_new_session=True: the leader's pid is the group id
    _signal_group(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(pgid, signal.SIGKILL)
        process.wait(timeout=grace)
    # Children that outlived the leader (a reverse shell) share its process group.
    _signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.02)


def group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process is left in the group. Orphans are reparented
    to pid 1, which in containers may never reap them: zombies do not count."""
    return any(p.pgid == pgid and p.live for p in processes())


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first stdout line of process, waiting at most timeout seconds."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                return process.stdout.readline().decode(errors="replace").strip()
            if process.poll() is not None:
                break
    return ""
