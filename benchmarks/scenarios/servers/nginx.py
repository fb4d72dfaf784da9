"""nginx (Debian) serving a small site and a JSON location, under wrk with a paced Lua mix
(the configuration and mix of benchmarks/bench_scenarios.py). Attacks: injected
into one worker process (inject.py: nginx has no bug to exploit)."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks.bench_scenarios import NGINX_CONF, SITE, WRK_SCRIPT
from benchmarks.scenarios import inject
from benchmarks.scenarios.attacks import Attack, build_payload
from benchmarks.scenarios.servers.base import (
    Daemon,
    first_line,
    free_port,
    pick_child,
    private_copy,
    wait_port,
)

CONNECTIONS, DELAY_MS = 2, (20, 60)


class Nginx:
    name = "nginx"
    comm = "sgs-nginx"
    debian_packages = ("nginx", "wrk")
    load = (f"wrk -t1 -c{CONNECTIONS}, {DELAY_MS[0]}-{DELAY_MS[1]} ms pause per request "
            "(pages, assets, JSON, 404s)")

    def __init__(self) -> None:
        self.server: Daemon | None = None
        self.wrk_daemon: Daemon | None = None
        self.work: Path | None = None

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        work.chmod(0o755)  # workers run as nobody and read the site
        for name, content in SITE.items():
            (work / "www" / name).parent.mkdir(parents=True, exist_ok=True)
            (work / "www" / name).write_bytes(content)
        (work / "tmp").mkdir(exist_ok=True)
        self.port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(work=work, port=self.port))
        nginx = private_copy(shutil.which("nginx") or "/usr/sbin/nginx", work, self.comm)
        self.server = Daemon([nginx, "-c", str(conf), "-p", str(work), "-g", "daemon off;"],
                             work / "nginx.out").start()
        if not wait_port(self.port, 10, self.server.alive):
            raise RuntimeError(f"nginx did not start; see {work}/nginx.out")
        script = work / "mix.lua"
        script.write_text(WRK_SCRIPT.format(min_ms=DELAY_MS[0], max_ms=DELAY_MS[1]))
        self.wrk_daemon = Daemon(["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(budget_s)}s",
                                  "-s", str(script), f"http://127.0.0.1:{self.port}/"],
                                 work / "wrk.out").start()
        self.payload = build_payload(work / "payload")

    def trouble(self) -> str | None:
        if self.server is None or not self.server.alive():
            return "nginx exited"
        if self.wrk_daemon is None or not self.wrk_daemon.alive():
            return "wrk exited"
        return None

    def load_done(self) -> int:
        assert self.work is not None
        with open(self.work / "access.log", "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def attacks(self) -> list[Attack]:
        assert self.server is not None
        master = self.server.pid
        return inject.injected_attacks(lambda: pick_child(master, self.comm),
                                       self.work / "payload", self.payload, "an nginx worker")

    def version(self) -> str:
        return "nginx " + first_line(["nginx", "-v"]).rsplit("/", 1)[-1]

    def stop(self) -> None:
        for d in (self.wrk_daemon, self.server):
            if d is not None:
                d.stop()

