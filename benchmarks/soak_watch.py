"""Soak: `sysgram watch` for minutes on a busy target plus a churn of same-name processes.

usage: .venv/bin/python benchmarks/soak_watch.py [--duration 10m] [--sample 5]
       [--churn-per-s 20] [--attack-every 60] [--train 20s]

Not part of `make bench` (it takes the whole duration) nor of the test run. As root:
1. builds a target (C, written here) named `sgsoak`: `loop` mode makes getppid/getuid
   calls in a tight loop (≥ 1 M syscalls/s untraced); on SIGUSR1 it runs an "attack"
   (opens /etc/passwd, a socket and a connect, fork + exec /bin/true) and appends the
   CLOCK_MONOTONIC ns of the attack's first syscall to a stamp file; `burst N` makes N
   calls and exits (the churn);
2. trains the profile live (`sysgram train --proc sgsoak --duration 20s`) on the loop plus
   the churn;
3. runs `sysgram watch --proc sgsoak --json` for the duration under the same load, samples
   its resident memory every few seconds, sends one attack every minute and measures
   alert latency (stamp → the alert line read from watch's stdout, both CLOCK_MONOTONIC);
4. SIGTERMs watch and prints the curve, the latencies, the losses and the summary as
   Markdown (paste into benchmarks/README.md, section "Reliability").
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sysgram.commands.common import parse_duration  # noqa: E402

COMM = "sgsoak"
SYSGRAM = [sys.executable, "-m", "sysgram"]

TARGET_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t attacks, stopping;
static void on_usr1(int s) { (void)s; attacks++; }
static void on_term(int s) { (void)s; stopping = 1; }

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void attack(const char *stamp) {
    long long t0 = mono_ns();
    char buf[256];
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd >= 0) { read(fd, buf, sizeof buf); close(fd); }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET; a.sin_port = htons(1); a.sin_addr.s_addr = htonl(0x7f000001);
    if (s >= 0) { connect(s, (struct sockaddr *)&a, sizeof a); close(s); }
    pid_t c = fork();
    if (c == 0) { execl("/bin/true", "true", (char *)NULL); _exit(1); }
    if (c > 0) waitpid(c, NULL, 0);
    FILE *f = fopen(stamp, "a");
    if (f) { fprintf(f, "%lld\n", t0); fclose(f); }
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "burst")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        return 0;
    }
    const char *stamp = argc > 2 ? argv[2] : "/dev/null";
    signal(SIGUSR1, on_usr1);
    signal(SIGTERM, on_term);
    unsigned long long n = 0;
    while (!stopping) {
        for (int i = 0; i < 1000; i++) {
            syscall(SYS_getppid);
            if (i % 10 == 0) syscall(SYS_getuid);
        }
        n += 1100;
        while (attacks > 0) { attacks--; attack(stamp); }
    }
    printf("%llu\n", n);
    return 0;
}
"""


def build(work: Path) -> Path:
    source = work / "sgsoak.c"
    source.write_text(TARGET_C)
    exe = work / COMM
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(source)], check=True)
    return exe


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Churn(threading.Thread):
    """Short-lived processes with the target's name, `rate` per second."""

    def __init__(self, exe: Path, rate: float) -> None:
        super().__init__(daemon=True)
        self.exe, self.rate, self.started = exe, rate, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            subprocess.run([self.exe, "burst", "2000"], check=False)
            self.started += 1
            self.stop.wait(1.0 / self.rate)


def lines_of(stream, sink: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        sink.put((time.monotonic_ns(), line))
    sink.put((time.monotonic_ns(), None))


def untraced_rate(exe: Path, work: Path) -> float:
    """Syscalls per second of the loop with nothing attached (2 s)."""
    proc = subprocess.Popen([exe, "loop", str(work / "none")], stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return int(out.strip() or 0) / 2.0


def train(exe: Path, store: Path, seconds: float, churn_rate: float, work: Path) -> None:
    loop = subprocess.Popen([exe, "loop", str(work / "train-stamps")], stdout=subprocess.DEVNULL)
    churn = Churn(exe, churn_rate)
    churn.start()
    try:
        subprocess.run([*SYSGRAM, "train", "--proc", COMM, "--duration", f"{seconds:g}s",
                        "--store", str(store)], check=True, stdout=subprocess.DEVNULL)
    finally:
        churn.stop.set()
        loop.send_signal(signal.SIGTERM)
        loop.wait(timeout=10)


def soak(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sgsoak-"))
    exe = build(work)
    store = work / "store"
    base_rate = untraced_rate(exe, work)
    print(f"untraced loop: {base_rate / 1e6:.2f} M syscalls/s", file=sys.stderr, flush=True)
    train(exe, store, parse_duration(args.train), args.churn_per_s, work)
    print("trained; watching", file=sys.stderr, flush=True)

    stamps = work / "stamps"
    watch = subprocess.Popen([*SYSGRAM, "watch", "--proc", COMM, "--store", str(store), "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_lines: queue.Queue = queue.Queue()
    err_lines: queue.Queue = queue.Queue()
    threading.Thread(target=lines_of, args=(watch.stdout, out_lines), daemon=True).start()
    threading.Thread(target=lines_of, args=(watch.stderr, err_lines), daemon=True).start()
    while True:  # wait for `attached`
        _, line = err_lines.get(timeout=60)
        if line is None:
            raise SystemExit("watch exited before attaching")
        if line.startswith("attached"):
            break
    loop = subprocess.Popen([exe, "loop", str(stamps)], stdout=subprocess.PIPE, text=True)
    churn = Churn(exe, args.churn_per_s)
    churn.start()
    started = time.monotonic()
    duration = parse_duration(args.duration)
    samples: list[tuple[float, int]] = []
    alerts: list[tuple[int, dict]] = []
    attacks_sent = 0
    next_sample = next_attack = started + 10.0
    while (now := time.monotonic()) - started < duration and watch.poll() is None:
        if now >= next_sample:
            samples.append((now - started, rss_kib(watch.pid)))
            next_sample += args.sample
        if now >= next_attack:
            loop.send_signal(signal.SIGUSR1)
            attacks_sent += 1
            next_attack += args.attack_every
        while not out_lines.empty():
            at, line = out_lines.get_nowait()
            if line and line.startswith("{"):
                record = json.loads(line)
                if record.get("kind") == "alert":
                    alerts.append((at, record))
        time.sleep(0.05)
    samples.append((time.monotonic() - started, rss_kib(watch.pid)))
    watch.send_signal(signal.SIGTERM)
    code = watch.wait(timeout=120)
    churn.stop.set()
    loop.send_signal(signal.SIGTERM)
    loop_calls = int((loop.communicate(timeout=10)[0] or "0").strip() or 0)
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    summary = []
    while not err_lines.empty():
        _, line = err_lines.get_nowait()
        if line and not line.startswith("attached"):
            summary.append(line.rstrip())
    while not out_lines.empty():
        at, line = out_lines.get_nowait()
        if line and line.startswith("{") and json.loads(line).get("kind") == "alert":
            alerts.append((at, json.loads(line)))
    attack_ns = [int(x) for x in stamps.read_text().split()] if stamps.exists() else []
    latencies = []
    for t0 in attack_ns:
        after = [at for at, rec in alerts if at >= t0]
        if after:
            latencies.append((min(after) - t0) / 1e9)
    return {"base_rate": base_rate, "loop_rate": loop_calls / elapsed, "elapsed": elapsed,
            "samples": samples, "attacks": attacks_sent, "attack_stamps": len(attack_ns),
            "alerts": len(alerts), "latencies": latencies, "churn": churn.started,
            "exit": code, "summary": summary}


def report(r: dict) -> str:
    rss = [kib for _, kib in r["samples"]]
    lines = [
        f"watch for {r['elapsed']:.0f} s; target loop {r['loop_rate'] / 1e6:.2f} M syscalls/s "
        f"traced (untraced {r['base_rate'] / 1e6:.2f} M/s), churn {r['churn']:,} short-lived "
        f"processes of the same name; watch exit {r['exit']}.",
        "",
        "| t (s) | watch RSS (MiB) |",
        "|---:|---:|",
    ]
    step = max(1, len(r["samples"]) // 15)
    for t, kib in r["samples"][::step] + ([r["samples"][-1]] if len(r["samples"]) % step else []):
        lines.append(f"| {t:.0f} | {kib / 1024:.1f} |")
    if rss:
        lines += ["", f"RSS min {min(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB, "
                      f"last {rss[-1] / 1024:.1f} MiB."]
    lat = sorted(r["latencies"])
    if lat:
        lines.append(f"Attacks: {r['attack_stamps']} sent, {len(lat)} alerted; latency median "
                     f"{statistics.median(lat):.2f} s, max {lat[-1]:.2f} s.")
    else:
        lines.append(f"Attacks: {r['attack_stamps']} sent, none alerted.")
    lines += ["", "watch's own summary:", "```", *r["summary"], "```"]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between RSS samples")
    parser.add_argument("--churn-per-s", type=float, default=20.0)
    parser.add_argument("--attack-every", type=float, default=60.0)
    parser.add_argument("--train", default="20s")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("soak_watch needs root (BPF).", file=sys.stderr)
        return 2
    print(report(soak(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
