"""memcached (Debian), two threads, under a paced Python client speaking its text
protocol (sets, gets, multi-gets, increments, deletes over two long-lived connections).
Attacks: injected into memcached's main thread (inject.py: it has no bug to exploit)."""

from __future__ import annotations

import random
import shutil
import socket
import threading
from pathlib import Path

from benchmarks.scenarios import inject
from benchmarks.scenarios.attacks import Attack, build_payload
from benchmarks.scenarios.servers.base import (
    Daemon,
    PacedLoop,
    PacedServer,
    first_line,
    free_port,
    private_copy,
    wait_port,
)

RATE, CONNECTIONS = 100.0, 2


class Memcached(PacedServer):
    name = "memcached"
    comm = "sgs-memcached"
    debian_packages = ("memcached",)
    load = f"Python text-protocol client, {RATE:g} ops/s over {CONNECTIONS} connections"

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()  # one connection per load thread

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        self.port = free_port()
        binary = private_copy(shutil.which("memcached") or "/usr/bin/memcached", work, self.comm)
        self.server = Daemon([binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                              "-u", "nobody", "-m", "64", "-t", "2"],
                             work / "memcached.out").start()
        if not wait_port(self.port, 10, self.server.alive):
            raise RuntimeError(f"memcached did not start; see {work}/memcached.out")
        self.loop = PacedLoop(self._op, RATE, budget_s, workers=CONNECTIONS).start()
        self.payload = build_payload(work / "payload")

    def _conn(self) -> socket.socket:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = socket.create_connection(("127.0.0.1", self.port), 5)
        return conn

    def _op(self) -> bool:
        conn, key = self._conn(), f"item:{random.randrange(500)}"
        roll = random.random()
        if roll < 0.25:
            value = b"x" * random.choice((16, 100, 1000, 4000))
            cmd = f"set {key} 0 300 {len(value)}\r\n".encode() + value + b"\r\n"
        elif roll < 0.8:
            cmd = f"get {key}\r\n".encode()
        elif roll < 0.9:
            keys = " ".join(f"item:{random.randrange(500)}" for _ in range(5))
            cmd = f"get {keys}\r\n".encode()
        elif roll < 0.95:
            cmd = b"incr counter 1\r\n"
        else:
            cmd = f"delete {key}\r\n".encode()
        conn.sendall(cmd)
        return self._reply_done(conn)

    @staticmethod
    def _reply_done(conn: socket.socket) -> bool:
        data = b""
        ends = (b"END\r\n", b"STORED\r\n", b"DELETED\r\n", b"NOT_FOUND\r\n")
        while not data.endswith(ends) and not (data.endswith(b"\r\n") and data[:1].isdigit()):
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        return True

    def attacks(self) -> list[Attack]:
        assert self.server is not None
        pid = self.server.pid
        return inject.injected_attacks(lambda: pid, self.work / "payload", self.payload,
                                       "memcached's main thread")

    def version(self) -> str:
        return first_line(["memcached", "-V"])
