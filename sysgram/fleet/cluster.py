"""Where the fleet's tasks run: a Dask cluster (given, or a LocalCluster) or this process.

Both runners offer `submit(fn, *args, priority=)` and `gather(items)` in Dask's futures shape: with
Dask, futures passed as arguments are resolved on the worker that runs the task, so a
partition's summary moves once, to the worker fitting its binary.
"""

from __future__ import annotations

import contextlib
import logging
import resource
from dataclasses import dataclass

from sysgram.errors import UserError


class InProcess:
    """Runs each task at once, here (small data: no cluster to start)."""

    description = "in this process"
    memory_limit: int | None = None
    workers = 1

    def submit(self, fn, *args, priority: int = 0, **kwargs):
        return fn(*args, **kwargs)

    def gather(self, items: list) -> list:
        return items

    def peak_rss(self) -> dict[str, int]:
        return {"this process": _peak_rss()}

    def cpu_seconds(self) -> dict[str, float]:
        return {"this process": _cpu_seconds()}


@dataclass
class DaskRunner:
    client: object
    description: str

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info(n_workers=-1)["workers"])

    @property
    def memory_limit(self) -> int | None:
        limits = [w.get("memory_limit") or 0
                  for w in self.client.scheduler_info(n_workers=-1)["workers"].values()]
        return min(limits) if limits and min(limits) > 0 else None

    def submit(self, fn, *args, priority: int = 0, **kwargs):
        """Higher `priority` runs first among ready tasks; equal ones in submission order."""
        return self.client.submit(fn, *args, pure=False, priority=priority, **kwargs)

    def gather(self, items: list) -> list:
        return self.client.gather(items)

    def peak_rss(self) -> dict[str, int]:
        """Each worker process's peak resident memory since it started (bytes)."""
        return self.client.run(_peak_rss)

    def cpu_seconds(self) -> dict[str, float]:
        """Each worker process's CPU time (user + system) since it started."""
        return self.client.run(_cpu_seconds)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def dask_runner(address: str | None, workers: int, memory_limit: int | str | None,
                processes: bool = True):
    """A runner on the cluster at `address`, else on a new LocalCluster of `workers`."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError("fleet training needs Dask; install it with "
                        "`pip install 'dask[distributed]'` (make install does).") from None
    quiet = logging.ERROR   # Dask's own log lines would interleave with sysgram's output
    if address:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise UserError(f"cannot reach the Dask scheduler at {address} ({exc}); check the "
                            "address (tcp://HOST:8786) and that the scheduler runs.") from None
        with client:
            yield DaskRunner(client, f"Dask cluster {address}")
        return
    import dask

    # A fit holds most of a worker's memory for a while, by design (its budget is set from
    # the limit): Dask's default pause at 80 % would stop the worker from taking the next
    # task for as long as the allocator keeps the pages. Terminate at 95 % stays.
    with dask.config.set({"distributed.worker.memory.pause": False}), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                         memory_limit=memory_limit or "auto", dashboard_address=None,
                         silence_logs=quiet) as cluster, Client(cluster) as client:
        yield DaskRunner(client, f"LocalCluster of {workers} workers")
