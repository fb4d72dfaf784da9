"""Fleet training on Dask: a synthetic fleet replayed from real recordings of this machine.

1. **Record** (root): ten real binaries of this machine, each with `sysgram record --format
   parquet` for a few seconds while it works: nginx serving wrk, ab and a curl loop
   (nginx, wrk, ab, curl), the demo server sg-demo-httpd under its load generator, and a
   shell loop of tools (gzip, tar, sort, sha256sum, find). Kept in --base and reused.
2. **Synthesise** a fleet of --hosts hosts x those binaries: each host replays a random
   80 % of each binary's recorded threads (random stretches of them), some hosts add a
   short host-specific call sequence, until the fleet holds --times x the worker memory
   limit of syscall data (2 bytes per call, as a worker would hold it decoded).
3. **Train** every binary's pooled profile on a LocalCluster of 1 worker, then 2
   workers, each with --worker-memory: wall time, speed-up, each worker's peak RSS.
4. **Sampling on ADFA-LD** (--adfa): the fit budget samples windows; AUC and detection of
   the pooled window profile on the dev split with the whole training data and with
   samples of it, to show what sampling costs in detection.

    .venv/bin/python benchmarks/bench_fleet.py [--hosts 50] [--times 5]
        [--worker-memory 1GiB] [--base /var/tmp/sysgram-fleet-base] [--adfa DIR]

Prints one JSON object and Markdown rows for benchmarks/README.md ("fleet").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_scenarios import free_port, start_nginx, start_wrk  # noqa: E402
from sysgram.commands.fleet import parse_size  # noqa: E402
from sysgram.datasets.parquet import (  # noqa: E402
    META_DIR,
    partition_dir,
    rows_to_table,
)
from sysgram.datasets.parquet_read import TRAINING_COLUMNS, table_pieces  # noqa: E402
from sysgram.fleet.partitions import find_partitions  # noqa: E402
from sysgram.fleet.training import FleetOptions, train_fleet  # noqa: E402

SYSGRAM = [sys.executable, "-m", "sysgram"]
TOOLS = ("gzip", "tar", "sort", "sha256sum", "find")
WEB = ("nginx", "wrk", "ab", "curl")
DEMO = "sg-demo-httpd"
FILE_CALLS = 1 << 20          # calls per synthetic Parquet file (the writer's bound)
ROW_CALLS = 1 << 16


# -- 1. real recordings ------------------------------------------------------------------
def start_recorder(comm: str, base: Path) -> subprocess.Popen:
    """`sysgram record` of one binary, returned once attached; it records until `finish`
    (a fixed --duration would start at each recorder's own attach, and the first of a
    group would end before the group's load began)."""
    proc = subprocess.Popen([*SYSGRAM, "record", "--proc", comm, "--format", "parquet",
                             "--out", str(base)],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stderr:
        if line.startswith("attached"):
            return proc
    raise SystemExit(f"recorder for {comm} never attached")


def finish(recorders: list[subprocess.Popen]) -> None:
    """Stop the recorders as Ctrl-C would (each writes its recording out and ends)."""
    for r in recorders:
        r.send_signal(signal.SIGINT)
    for r in recorders:
        _, err = r.communicate(timeout=60)
        if r.returncode != 0:
            raise SystemExit(f"recording failed: {err}")


def record_base(base: Path, seconds: float) -> None:
    """Three groups of real work, each recorded by one recorder per binary at once."""
    (base / META_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="sg-fleet-") as tmp:
        work = Path(tmp)
        port = free_port()
        nginx = start_nginx(work, port)
        try:
            recorders = [start_recorder(c, base) for c in WEB]
            wrk = start_wrk(work, port, seconds, 4, (5, 25))
            loop = subprocess.Popen(
                ["bash", "-c", f"end=$((SECONDS+{int(seconds)})); while [ $SECONDS -lt $end ];"
                 f" do ab -q -n 50 -c 2 http://127.0.0.1:{port}/ >/dev/null 2>&1;"
                 f" curl -s http://127.0.0.1:{port}/api/health >/dev/null; sleep 0.05; done"],
                start_new_session=True)
            loop.wait(timeout=seconds + 30)
            wrk.wait(timeout=seconds + 30)
            finish(recorders)
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
        _record_demo(work, base, seconds)
        _record_tools(work, base, seconds)
    recorded = {p.binary_name for p in find_partitions([str(base)])}
    missing = sorted(set(WEB + TOOLS + (DEMO,)) - recorded)
    if missing:
        raise SystemExit(f"nothing was recorded of {', '.join(missing)}; see {base}")


def _record_demo(work: Path, base: Path, seconds: float) -> None:
    from sysgram.demo.load import LoadGenerator
    from sysgram.demo.target import DemoServer, build_server, write_docroot

    binary = build_server(work / "bin")
    with DemoServer(binary, write_docroot(work / "docroot"), work / "access.log") as server:
        port = server.start()
        recorder = start_recorder(DEMO, base)
        with LoadGenerator(port, rate=80, max_seconds=seconds + 2):
            time.sleep(seconds)
        finish([recorder])


def _record_tools(work: Path, base: Path, seconds: float) -> None:
    data = work / "data"
    data.mkdir()
    for i in range(20):
        (data / f"f{i}.txt").write_text("\n".join(str(x) for x in range(i * 500, i * 900)))
    recorders = [start_recorder(c, base) for c in TOOLS]
    script = (f"cd {data}; end=$((SECONDS+{int(seconds)})); while [ $SECONDS -lt $end ]; do "
              "for f in f*.txt; do gzip -c $f > /dev/null; sort -r $f > /dev/null; "
              "sha256sum $f > /dev/null; done; tar -czf ../a.tgz . ; find . -name '*.txt' "
              "> /dev/null; done")
    loop = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    loop.wait(timeout=seconds + 30)
    finish(recorders)


# -- 2. the synthetic fleet --------------------------------------------------------------
def base_traces(base: Path) -> dict[str, tuple[list[np.ndarray], dict]]:
    """binary name -> (its recorded thread streams, a row template), read with pyarrow."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = {}
    for part in sorted(base.glob("host=*/binary_name=*")):
        files = sorted(part.glob("*.parquet"))
        table = pa.concat_tables([pq.read_table(f, columns=TRAINING_COLUMNS) for f in files])
        pieces = table_pieces(table)
        streams = [pieces.values[a:b] for a, b in zip(pieces.offsets[:-1], pieces.offsets[1:],
                                                      strict=True) if b - a >= 8]
        name = part.name.split("=", 1)[1]
        out[name] = (streams, {"comm": name, "exe": None, "binary_sha256": pieces.sha256[0],
                               "arch": pieces.arch[0]})
    return out


def synthesise(base: dict, out: Path, hosts: int, total_calls: int, seed: int) -> dict:
    """Write the fleet; returns its size. Per host: 80 % of each binary's threads,
    random stretches replayed, and (one host in three) a host-specific call sequence."""
    per_part = total_calls // (hosts * len(base))
    written = files = 0
    for h in range(hosts):
        for b, (name, (streams, template)) in enumerate(sorted(base.items())):
            rng = np.random.default_rng([seed, h, b])
            mine = rng.choice(len(streams), max(1, int(0.8 * len(streams))), replace=False)
            alphabet = np.unique(np.concatenate([streams[i] for i in mine]))
            extra = rng.choice(alphabet, 3) if rng.random() < 1 / 3 else None
            directory = out / partition_dir(f"host-{h:03d}", name)
            directory.mkdir(parents=True, exist_ok=True)
            rows, held, trace, done = [], 0, 0, 0
            while done < per_part:
                ids = _replay(streams[rng.choice(mine)], rng)
                if extra is not None and trace == 0:
                    ids = np.concatenate([ids[: len(ids) // 2], extra, ids[len(ids) // 2:]])
                rows += _rows(ids, trace, template, h)
                held, done, trace = held + len(ids), done + len(ids), trace + 1
                if held >= FILE_CALLS or done >= per_part:
                    _write(directory / f"part-fleet-{h:03d}-{files:06d}.parquet", rows)
                    rows, held, files = [], 0, files + 1
            written += done
    return {"calls": written, "files": files, "bytes_decoded": 2 * written}


def _replay(stream: np.ndarray, rng) -> np.ndarray:
    """A random stretch of a recorded thread (all of it when short)."""
    if len(stream) <= 512:
        return stream
    length = int(rng.integers(256, len(stream) + 1))
    start = int(rng.integers(0, len(stream) - length + 1))
    return stream[start:start + length]


def _rows(ids: np.ndarray, trace: int, template: dict, host: int) -> list[dict]:
    cuts = range(0, len(ids), ROW_CALLS)
    return [{**template, "recording": f"fleet-{host:03d}", "trace": trace, "piece": k,
             "position": c, "lost_before": 0, "tid": trace + 1, "pid": 1, "ppid": None,
             "thread_start_ns": None, "start_ns": None,
             "thread_end_ns": 1 if k == len(cuts) - 1 else None,
             "syscalls": ids[c:c + ROW_CALLS], "label": None, "family": None, "split": None,
             "source": None, "target": template["comm"], "cgroup": None, "container": None,
             "created": True, "watched_parent": None, "touched": []}
            for k, c in enumerate(cuts)]


def _write(path: Path, rows: list[dict]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(rows_to_table(rows), path, compression="zstd")


# -- 3. training on 1 and 2 workers ------------------------------------------------------
def train_on(fleet: Path, workers: int, memory: int) -> dict:
    load_before = os.getloadavg()[0]
    result = train_fleet([str(fleet)], FleetOptions(params={}, workers=workers,
                                                    worker_memory=memory))
    return {
        "workers": workers, "seconds": round(result.seconds, 1),
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "memory_limit": result.memory_limit, "fit_calls": result.fit_calls,
        "peak_rss_mib": sorted(round(v / 2**20) for v in result.peak_rss.values()),
        "worker_cpu_s": sorted(round(v, 1) for v in result.cpu_seconds.values()),
        "binaries": len(result.binaries), "failures": len(result.failures),
        "not_fitted": [b.binary_name for b in result.binaries if b.profile is None],
        "sampled": {b.binary_name: round(b.sampled_calls / max(b.calls, 1), 4)
                    for b in result.binaries},
        "hosts": result.hosts, "partitions": result.partitions,
    }


# -- 4. what sampling costs on ADFA-LD ---------------------------------------------------
def adfa_sampling(adfa: Path, fractions: list[float], hosts: int = 8) -> list[dict]:
    from sysgram.datasets import read_adfa
    from sysgram.datasets.parquet import ParquetRecordingWriter
    from sysgram.evaluation.corpus import load_adfa
    from sysgram.evaluation.harness import measure, trace_scores
    from sysgram.models.profile import Profile

    corpus = load_adfa(adfa)

    def measured(profile) -> dict:
        scores = trace_scores(profile.score_threads(corpus.test), corpus.test_owner,
                              len(corpus.labels))
        overall, _ = measure(corpus, np.nan_to_num(scores, neginf=-1e9), 200)
        return {"auc": round(overall.auc.value, 4),
                "dr_at_5pct": round(overall.dr_at_far["0.05"].value, 4)}

    # The reference: one process, Profile().fit on every training stream.
    rows = [{"fraction": "single process, all", "calls": int(corpus.train.offsets[-1]),
             **measured(Profile(arch="i386").fit(corpus.train))}]
    with tempfile.TemporaryDirectory(prefix="sg-fleet-adfa-") as tmp:
        root = Path(tmp) / "pq"
        train = [t for t in read_adfa(adfa) if t.split == "train"]
        for h in range(hosts):   # the training traces dealt round-robin to `hosts` hosts
            with ParquetRecordingWriter(root, arch="i386", source="adfa-ld",
                                        host=f"adfa-{h}") as w:
                for t in train[h::hosts]:
                    w.start_thread(t.tid, pid=t.pid, comm="adfa")
                    w.append(t.tid, t.ids)
                    w.end_thread(t.tid)
        total = int(sum(len(t.ids) for t in train))
        for fraction in fractions:
            result = train_fleet([str(root)], FleetOptions(
                params={"arch": "i386"}, workers=0, fit_calls=max(1, int(fraction * total))))
            (pooled,) = result.binaries
            rows.append({"fraction": fraction, "sampled_calls": pooled.sampled_calls,
                         "calls": pooled.calls, **measured(pooled.profile),
                         "fit_seconds": round(pooled.fit_seconds, 1)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--times", type=float, default=5.0,
                    help="fleet data as a multiple of one worker's memory limit")
    ap.add_argument("--worker-memory", default="1GiB")
    ap.add_argument("--base", type=Path, default=Path("/var/tmp/sysgram-fleet-base"))
    ap.add_argument("--record-seconds", type=float, default=6.0)
    ap.add_argument("--rerecord", action="store_true")
    ap.add_argument("--adfa", type=Path, default=Path(os.environ.get(
        "SYSGRAM_ADFA_DIR", ROOT.parent / "shared" / "datasets" / "adfa-ld-dev")))
    ap.add_argument("--skip", default="", help="comma-separated: train,adfa")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each cluster size")
    args = ap.parse_args(argv)
    memory = parse_size(args.worker_memory)
    report: dict = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    skip = set(filter(None, args.skip.split(",")))
    if "train" not in skip:
        if args.rerecord and args.base.exists():
            shutil.rmtree(args.base)
        if not args.base.exists():
            started = time.monotonic()
            record_base(args.base, args.record_seconds)
            report["record_seconds"] = round(time.monotonic() - started, 1)
        base = base_traces(args.base)
        report["base"] = {name: {"threads": len(s), "calls": int(sum(map(len, s)))}
                          for name, (s, _) in base.items()}
        with tempfile.TemporaryDirectory(prefix="sg-fleet-", dir="/var/tmp") as tmp:
            fleet = Path(tmp) / "fleet"
            started = time.monotonic()
            total = int(args.times * memory / 2)
            report["fleet"] = synthesise(base, fleet, args.hosts, total, args.seed)
            report["fleet"].update(
                hosts=args.hosts, binaries=len(base), seconds=round(time.monotonic() - started),
                bytes_on_disk=sum(p.stat().st_size for p in fleet.rglob("*.parquet")),
                times_worker_memory=round(report["fleet"]["bytes_decoded"] / memory, 2))
            print(json.dumps(report["fleet"]), file=sys.stderr, flush=True)
            # 1, 2, 1, 2 workers: load from others on a shared machine changes by the
            # minute, so the speed-up is the ratio of the medians of each size's runs.
            runs = [train_on(fleet, n, memory) for n in (1, 2) * args.repeat]
            report["runs"] = runs
            walls = {n: float(np.median([r["seconds"] for r in runs if r["workers"] == n]))
                     for n in (1, 2)}
            report["speedup"] = round(walls[1] / walls[2], 2)
    if "adfa" not in skip and args.adfa.is_dir():
        report["adfa_sampling"] = adfa_sampling(args.adfa, [1.0, 0.5, 0.25, 0.1])
    print(json.dumps(report, indent=1))
    with contextlib.suppress(KeyError):
        f = report["fleet"]
        for r in report["runs"]:
            print(f"| {f['hosts']} hosts x {f['binaries']} binaries, {f['calls']:,} calls "
                  f"({f['times_worker_memory']}x {args.worker_memory}) | {r['workers']} | "
                  f"{r['seconds']} s | {r['worker_cpu_s']} s | {r['peak_rss_mib']} MiB | "
                  f"{r['load_before']} → {r['load_after']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
