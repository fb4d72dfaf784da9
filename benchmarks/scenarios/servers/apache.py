"""Apache httpd (Debian, event MPM) serving a small site, under ApacheBench run in short
paced bursts. Attacks: spawn and in-thread injected into a child process (inject.py:
httpd has no bug to exploit); code loading through a real feature: a `LoadFile` line
slipped into an included config file and a graceful restart (SIGUSR1), so the root
parent itself dlopen()s the payload."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from benchmarks.bench_scenarios import SITE
from benchmarks.scenarios import inject
from benchmarks.scenarios.attacks import CODE_LOADING, Attack, Outcome, build_payload, wait_for
from benchmarks.scenarios.servers.base import (
    Daemon,
    PacedLoop,
    PacedServer,
    first_line,
    free_port,
    pick_child,
    private_copy,
    wait_port,
)

BURSTS_PER_S, REQUESTS_PER_BURST = 1.0, 10
PATHS = ("/", "/index.html", "/style.css", "/app.js", "/logo.png", "/api/items.json",
         "/missing.html")
MODULES = ("mpm_event", "authz_core", "mime", "dir", "alias")

HTTPD_CONF = """\
{modules}
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {work}/httpd.pid
DefaultRuntimeDir {work}/run
Mutex file:{work}/run default
ErrorLog {work}/error.log
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog {work}/access.log common
User www-data
Group www-data
TypesConfig /etc/mime.types
DocumentRoot {work}/www
DirectoryIndex index.html
<Directory {work}/www>
    Require all granted
</Directory>
StartServers 2
ThreadsPerChild 8
MaxRequestWorkers 16
MinSpareThreads 8
MaxSpareThreads 16
IncludeOptional {work}/conf.d/*.conf
"""


class Apache(PacedServer):
    name = "apache"
    comm = "sgs-apache2"
    per_call = REQUESTS_PER_BURST
    debian_packages = ("apache2", "apache2-utils")
    load = (f"ab -n {REQUESTS_PER_BURST} -c 2 bursts, {BURSTS_PER_S:g}/s, over "
            f"{len(PATHS)} paths")

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        self.port = free_port()
        for name, content in SITE.items():
            (work / "www" / name).parent.mkdir(parents=True, exist_ok=True)
            (work / "www" / name).write_bytes(content)
        for d in ("run", "conf.d"):
            (work / d).mkdir(exist_ok=True)
        modules = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so"
                            for m in MODULES)
        self.conf = work / "httpd.conf"
        self.conf.write_text(HTTPD_CONF.format(modules=modules, port=self.port, work=work))
        binary = private_copy("/usr/sbin/apache2", work, self.comm)
        self.server = Daemon([binary, "-f", str(self.conf), "-DFOREGROUND"],
                             work / "apache2.out").start()
        if not wait_port(self.port, 10, self.server.alive):
            raise RuntimeError(f"apache2 did not start; see {work}/apache2.out, error.log")
        self.loop = PacedLoop(self._burst, BURSTS_PER_S, budget_s).start()
        self.payload = build_payload(work / "payload")

    def _burst(self) -> bool:
        url = f"http://127.0.0.1:{self.port}{random.choice(PATHS)}"
        done = subprocess.run(["ab", "-q", "-n", str(REQUESTS_PER_BURST), "-c", "2", "-s", "10",
                               url], capture_output=True, timeout=60)
        return done.returncode == 0

    def attacks(self) -> list[Attack]:
        assert self.server is not None
        parent = self.server.pid
        injected = inject.injected_attacks(lambda: pick_child(parent, self.comm),
                                           self.work / "payload", self.payload,
                                           "an httpd child")
        reload = Attack("loadfile-graceful", CODE_LOADING,
                        "`LoadFile payload.so` added to an included config, then a graceful "
                        "restart: the root parent dlopen()s it", self._load_file,
                        ("memfd_create",))
        return [*injected[:2], reload]

    def _load_file(self) -> Outcome:
        assert self.server is not None
        before = self.payload.loads()
        begins = time.monotonic_ns()
        (self.work / "conf.d" / "zz-extra.conf").write_text(f"LoadFile {self.payload.path}\n")
        os.kill(self.server.pid, signal.SIGUSR1)
        ok = wait_for(lambda: self.payload.loads() > before, 10)
        return Outcome(self.server.pid, begins, begins, ok,
                       "payload constructor ran in the parent" if ok else "no mark")

    def version(self) -> str:
        return first_line(["/usr/sbin/apache2", "-v"]).split(": ", 1)[-1]
