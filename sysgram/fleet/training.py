"""Fleet training, start to end: find partitions, summarise them in parallel, fit per binary.

`train_fleet` decides where the work runs (in exactly one place: `choose_runner`), how
much of each binary's data a fit may hold (`fit_budget`, from the worker memory limit),
and returns every pooled profile with what it was made of. Saving and printing belong
to the caller (sysgram/commands/fleet.py).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field

from sysgram.fleet.cluster import InProcess, dask_runner
from sysgram.fleet.partitions import Partition, find_partitions
from sysgram.fleet.pooling import PooledBinary, fit_binary_name
from sysgram.fleet.summarize import Plan, summarize_partition
from sysgram.models.defaults import DEFAULT_DETECTOR

# Data on disk above which, with no cluster named, a LocalCluster is started.
LOCAL_CLUSTER_BYTES = 64 << 20
# What a fit costs in a worker: the worker itself (Dask, numpy, the task's partition
# summaries), a detector's fixed share, and bytes per call learnt. Peak RSS growth of
# `Profile(detector=...).fit` measured on replayed nginx recordings of 0.5-3 M calls
# (2026-12-06): the default lm-stream ~220 bytes a call and no fixed share to speak of
# (its language model's n-gram codes of every order, sorted); ocsvm ~150 MB fixed (its
# kernel map) and ~48 bytes a call (~280 MB for 1 M calls of a synthetic chain).
# Budgeted with a fifth to a third more, so a 1 GiB worker fits 2.3 M calls with
# lm-stream (2.8 M, on the old one-size budget, got the worker killed at its limit).
# tests/test_fleet.py checks a fit against these costs.
FIT_WORKER_BYTES = 352 << 20
FIT_COSTS = {"ocsvm": (256 << 20, 96)}      # detector -> (fixed bytes, bytes per call)
FIT_COST_DEFAULT = (16 << 20, 300)          # the language-model detectors (the default)
MAX_FIT_CALLS = 8_000_000     # beyond this a fit learns little more (the detector samples)
MIN_FIT_CALLS = 200_000
# Each partition keeps this many times its even share of the budget, so that partitions
# holding more than their share still contribute in proportion to their size.
OVERSAMPLE = 4


@dataclass
class FleetOptions:
    params: dict                        # Profile(**params): detector, window, stride, ...
    cluster: str | None = None          # a Dask scheduler address
    workers: int | None = None          # LocalCluster size (0: in this process)
    worker_memory: int | None = None    # bytes per LocalCluster worker
    fit_calls: int | None = None        # calls a fit may hold (default: from memory)
    binary_name: str | None = None      # only this binary name
    processes: bool = True              # LocalCluster workers as processes (else threads)
    seed: int = 0


@dataclass
class FleetResult:
    binaries: list[PooledBinary]
    failures: list[tuple[str, str]]     # (file, why) of partitions' unreadable files
    partitions: int
    hosts: int
    bytes: int
    runner: str
    workers: int
    fit_calls: int
    seconds: float
    lost: int = 0
    attack_rows: int = 0
    peak_rss: dict = field(default_factory=dict)
    cpu_seconds: dict = field(default_factory=dict)   # per worker (or this process)
    memory_limit: int | None = None


def fit_cost(detector: str | None) -> tuple[int, int]:
    """(fixed bytes, bytes per call) a fit of `detector` (the default when None) takes."""
    return FIT_COSTS.get(detector or DEFAULT_DETECTOR, FIT_COST_DEFAULT)


def fit_budget(memory_limit: int | None, detector: str | None = None) -> int:
    """Calls one binary's fit of `detector` may hold so that it stays within a worker's
    memory (the default detector when None)."""
    if not memory_limit:
        return MAX_FIT_CALLS
    fixed, per_call = fit_cost(detector)
    calls = (memory_limit - FIT_WORKER_BYTES - fixed) // per_call
    return int(min(MAX_FIT_CALLS, max(MIN_FIT_CALLS, calls)))


def choose_runner(options: FleetOptions, data_bytes: int):
    """The one place deciding where tasks run: a named cluster, a LocalCluster, or here."""
    import os

    if options.cluster:
        return dask_runner(options.cluster, 0, None)
    workers = options.workers
    if workers is None:
        workers = min(os.cpu_count() or 1, 4) if data_bytes > LOCAL_CLUSTER_BYTES else 0
    if workers == 0:
        return contextlib.nullcontext(InProcess())
    return dask_runner(None, workers, options.worker_memory, options.processes)


def train_fleet(sources: list[str], options: FleetOptions) -> FleetResult:
    started = time.perf_counter()
    parts = find_partitions(sources)
    if options.binary_name is not None:
        parts = [p for p in parts if p.binary_name == options.binary_name]
    data_bytes = sum(p.bytes for p in parts)
    with choose_runner(options, data_bytes) as runner:
        budget = options.fit_calls or fit_budget(runner.memory_limit,
                                                     options.params.get("detector"))
        outcomes = runner.gather([
            runner.submit(_fit_group, name, [runner.submit(summarize_partition, p, plan)
                                             for p in group], options.params, budget,
                          priority=1)
            for name, group, plan in _plans(parts, options, budget)])
        peak, cpu = runner.peak_rss(), runner.cpu_seconds()
        memory_limit = runner.memory_limit
        description, workers = runner.description, runner.workers
    return FleetResult(
        binaries=sorted((b for o in outcomes for b in o.binaries),
                        key=lambda b: (b.binary_name, b.sha256 or "")),
        failures=[f for o in outcomes for f in o.failures],
        partitions=len(parts), hosts=len({p.host for p in parts}), bytes=data_bytes,
        runner=description, workers=workers, fit_calls=budget,
        seconds=time.perf_counter() - started, lost=sum(o.lost for o in outcomes),
        attack_rows=sum(o.attack_rows for o in outcomes), peak_rss=peak, cpu_seconds=cpu,
        memory_limit=memory_limit)


def _plans(parts: list[Partition], options: FleetOptions, budget: int):
    """(binary name, its partitions, their plan): the sample each partition keeps."""
    from sysgram.models import defaults

    groups: dict[str, list[Partition]] = defaultdict(list)
    for p in parts:
        groups[p.binary_name].append(p)
    orders = tuple(options.params.get("orders") or defaults.DEFAULT_ORDERS)
    window = int(options.params.get("window") or defaults.DEFAULT_WINDOW)
    # Largest binary first, and a fit (priority 1) before any waiting summary: the fits
    # are the long tasks, so the longest starts earliest and the last one to finish is
    # a short one (otherwise one worker idles while the other fits the biggest binary).
    for name, group in sorted(groups.items(), key=lambda kv: (-sum(p.bytes for p in kv[1]),
                                                                kv[0])):
        share = min(budget, math.ceil(OVERSAMPLE * budget / len(group)))
        yield name, group, Plan(orders, window, share, seed=options.seed)


@dataclass
class _Outcome:
    binaries: list[PooledBinary]
    failures: list
    lost: int
    attack_rows: int


def _fit_group(name: str, summaries: list, params: dict, budget: int) -> _Outcome:
    """The per-binary-name task: fit, and carry the partitions' failures and losses back."""
    usable = [s for s in summaries if s.slices]
    return _Outcome(fit_binary_name(name, usable, params, budget) if usable else [],
                    [f for s in summaries for f in s.failures],
                    sum(s.lost for s in summaries), sum(s.attack_rows for s in summaries))
