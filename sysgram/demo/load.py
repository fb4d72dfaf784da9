"""Normal traffic for the demo server: a realistic request mix over loopback.

Bounded by construction: it stops by itself after `max_seconds` or `max_requests`,
whichever comes first, and paces requests (Poisson arrivals at `rate` per second) so it
never saturates the machine.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

# (path, weight): what a browser and a monitoring script ask of a small inventory tool.
REQUEST_MIX: tuple[tuple[str, int], ...] = (
    ("/", 15),
    ("/static/style.css", 10),
    ("/static/app.js", 10),
    ("/static/logo.png", 8),
    ("/static/data.json", 5),
    ("/api/status", 12),
    ("/api/items", 10),
    ("/api/items?id=1", 2),
    ("/api/items?id=2", 2),
    ("/api/items?id=3", 2),
    ("/api/items?id=4", 2),
    ("/api/items?id=5", 2),
    ("/api/items?id=6", 2),
    ("/api/items?id=99", 2),
    ("/api/ping?host=127.0.0.1", 6),
    ("/api/ping?host=localhost", 4),
    ("/static/missing.css", 2),
    ("/favicon.ico", 2),
)


@dataclass
class LoadStats:
    requests: int = 0
    errors: int = 0
    statuses: Counter = field(default_factory=Counter)
    paths: Counter = field(default_factory=Counter)


def http_get(port: int, path: str, timeout: float = 5.0,
             host: str = "127.0.0.1") -> tuple[int, bytes]:
    """One HTTP/1.0 GET; returns (status, body). Raises OSError on connection trouble."""
    request = f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: sg-demo-load\r\n\r\n"
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(request.encode())
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        raise OSError(f"malformed HTTP response to {path}") from None
    return status, body


class LoadGenerator:
    """Background clients sending REQUEST_MIX to the server until stopped or bounded."""

    def __init__(self, port: int, *, rate: float = 60.0, clients: int = 3,
                 max_seconds: float = 300.0, max_requests: int = 100_000, seed: int = 1) -> None:
        self.port = port
        self.rate = rate
        self.clients = clients
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.seed = seed
        self.stats = LoadStats()
        self._lock = threading.Lock()
        self._issued = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._paths = [p for p, _ in REQUEST_MIX]
        self._weights = [w for _, w in REQUEST_MIX]

    def start(self) -> LoadGenerator:
        deadline = time.monotonic() + self.max_seconds
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i, deadline), daemon=True,
                                 name=f"sg-demo-load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        return self.stats

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def __enter__(self) -> LoadGenerator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self, index: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + index)
        per_client_rate = self.rate / self.clients
        while not self._stop.is_set() and time.monotonic() < deadline:
            if not self._reserve():
                return
            path = rng.choices(self._paths, self._weights)[0]
            self._record(path, self._get(path))
            self._stop.wait(rng.expovariate(per_client_rate))

    def _reserve(self) -> bool:
        """Claim one of the max_requests (clients race for the last ones)."""
        with self._lock:
            if self._issued >= self.max_requests:
                return False
            self._issued += 1
            return True

    def _get(self, path: str) -> int | None:
        try:
            return http_get(self.port, path)[0]
        except OSError:
            return None

    def _record(self, path: str, status: int | None) -> None:
        with self._lock:
            if status is None:
                self.stats.errors += 1
                return
            self.stats.requests += 1
            self.stats.statuses[status] += 1
            self.stats.paths[path] += 1
