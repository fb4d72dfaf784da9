"""OpenSSH sshd (Debian) on 127.0.0.1 with its own host key and config, under scripted
key-auth logins as root, each running one command. Attacks: injected into the listening
sshd (inject.py: it has no bug to exploit). The attacked tree of the listener also holds
every login it forks, as it would on a real host."""

from __future__ import annotations

import random
import subprocess
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

RATE = 0.5  # logins per second
COMMANDS = ("uptime", "cat /etc/hostname", "ls /tmp | head -3", "df -h / | tail -1",
            "ps -e | wc -l", "date -u", "id -un")

SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {work}/host_ed25519
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
"""


class Sshd(PacedServer):
    name = "sshd"
    comm = "sgs-sshd"
    debian_packages = ("openssh-server", "openssh-client")
    load = f"ssh key logins as root, {RATE:g}/s, one command each ({', '.join(COMMANDS[:3])}…)"

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        self.port = free_port()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        for key in ("host_ed25519", "client_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / key)],
                           check=True)
        (work / "authorized_keys").write_text((work / "client_ed25519.pub").read_text())
        conf = work / "sshd_config"
        conf.write_text(SSHD_CONFIG.format(port=self.port, work=work))
        sshd = private_copy("/usr/sbin/sshd", work, self.comm)
        self.server = Daemon([sshd, "-D", "-e", "-f", str(conf)], work / "sshd.out").start()
        if not wait_port(self.port, 10, self.server.alive):
            raise RuntimeError(f"sshd did not start; see {work}/sshd.out")
        self.loop = PacedLoop(self._login, RATE, budget_s).start()
        self.payload = build_payload(work / "payload")

    def _login(self) -> bool:
        cmd = ["ssh", "-q", "-i", str(self.work / "client_ed25519"), "-p", str(self.port),
               "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "root@127.0.0.1", random.choice(COMMANDS)]
        done = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        return done.returncode == 0

    def attacks(self) -> list[Attack]:
        assert self.server is not None
        pid = self.server.pid
        return inject.injected_attacks(lambda: pid, self.work / "payload", self.payload,
                                       "the listening sshd")

    def version(self) -> str:
        return first_line(["ssh", "-V"]).split(",")[0]
