"""The live scoring engine: collector items in, alerts out.

Keeps a rolling window per thread (`ThreadStream`), gathers every window a poll
completes into one batch, scores it once, applies the threshold policy and turns
anomalous windows into alerts that explain themselves, folded per process by the
`Aggregator`. With a thread profile (`ThreadVerdicts`), each thread's stream is also
judged whole when it ends (exit, exec, loss). It follows processes, forks, threads,
execs and exits as the collector reports them (design §2) and frees a thread's state at
its exit. Nothing here prints.

Items are dispatched by their class name (ThreadStart, ThreadEvents, Gap, Exec,
ThreadExit), so the engine needs neither bcc nor the collector to be tested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from sysgram.features.sequences import Sequences
from sysgram.features.stream import ThreadStream
from sysgram.syscalls import SyscallTable
from sysgram.watch.aggregate import Aggregator
from sysgram.watch.alerts import Alert, ProcessContext, Repeat
from sysgram.watch.explain import Explanation, explain_stream, explain_window
from sysgram.watch.scoring import ThresholdScorer
from sysgram.watch.verdicts import ThreadVerdicts


@dataclass
class WatchConfig:
    binary: str  # the watched name (the profile's binary)
    warmup_s: float = 2.0  # after each process start or exec, windows are not scored
    aggregate_s: float = 5.0  # alerts of one process within this period are folded
    burst: int = 20  # distinct-process alerts per period before a binary-wide fold


@dataclass
class WatchStats:
    events: int = 0
    lost_events: int = 0  # calls the collector reported missing (Gap items)
    windows_scored: int = 0
    windows_warmup: int = 0  # not scored: inside a process's warm-up
    windows_unscored_loss: int = 0  # not scored: they would have spanned a loss
    anomalous_windows: int = 0
    alerts: int = 0
    repeats: int = 0
    learned_windows: int = 0
    processes_seen: int = 0
    threads_seen: int = 0
    threads_unannounced: int = 0  # events before any ThreadStart (started lazily)
    threads_reaped: int = 0  # state freed without a ThreadExit (thread gone from /proc)
    streams_judged: int = 0  # thread streams scored whole by the thread profile
    streams_anomalous: int = 0
    streams_too_long: int = 0  # ended without a whole-stream verdict (too long to keep)
    max_score: float = float("-inf")  # highest window score since the last reset

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "max_score"}


@dataclass
class _Process:
    ctx: ProcessContext
    warm_until_ns: int
    threads: int = 0


@dataclass
class _Thread:
    tid: int
    proc: _Process
    stream: ThreadStream
    last_ns: int = 0
    pending: list[np.ndarray] = field(default_factory=list)  # events not yet windowed


@dataclass
class _Cut:
    windows: np.ndarray  # (n, length) full windows, or 1-D: one last window
    ctx: ProcessContext
    tid: int
    ts_ns: int

    @property
    def count(self) -> int:
        return 1 if self.windows.ndim == 1 else len(self.windows)


class WatchEngine:
    def __init__(
        self,
        scorer: ThresholdScorer,
        config: WatchConfig,
        names: SyscallTable,
        explainer: object | None = None,
        verdicts: ThreadVerdicts | None = None,
    ) -> None:
        self.scorer = scorer
        self.verdicts = verdicts
        self.config = config
        self.names = names
        self.explainer = explainer if explainer is not None else scorer.profile
        profile = scorer.profile
        # A fitted Profile keeps its resolved configuration in `window_`/`stride_`.
        self.length = int(getattr(profile, "window_", None) or profile.window)
        self.stride = int(getattr(profile, "stride_", None) or profile.stride)
        self.warmup_ns = int(config.warmup_s * 1e9)
        self.stats = WatchStats()
        self.aggregator = Aggregator(config.aggregate_s, config.burst)
        self._procs: dict[int, _Process] = {}
        self._threads: dict[int, _Thread] = {}
        self._cuts: list[_Cut] = []
        self._dispatch: dict[str, Callable[[object], None]] = {
            "ThreadStart": self._on_start,
            "ThreadEvents": self._on_events,
            "Gap": self._on_gap,
            "Exec": self._on_exec,
            "ThreadExit": self._on_exit,
        }

    # -- state ------------------------------------------------------------------------
    @property
    def processes(self) -> int:
        return len(self._procs)

    @property
    def threads(self) -> int:
        return len(self._threads)

    def buffered_calls(self) -> int:
        """Syscall ids held in per-thread state (bounded by threads × (length + stride),
        plus MAX_STREAM_CALLS per thread with whole-thread verdicts)."""
        held = sum(t.stream.buffered for t in self._threads.values())
        return held + (self.verdicts.buffered if self.verdicts is not None else 0)

    def _new_process(self, pid: int, ppid: int | None, comm, exe, sha, ts_ns: int) -> _Process:
        # A fork of a watched process continues its parent's program: no start-up burst of
        # its own, only what is left of its parent's warm-up.
        parent = self._procs.get(ppid) if ppid is not None else None
        warm_until = parent.warm_until_ns if parent is not None else ts_ns + self.warmup_ns
        root = parent.ctx.group if parent is not None else pid
        proc = _Process(ProcessContext(pid, ppid, comm, exe, sha, root), warm_until)
        self._procs[pid] = proc
        self.stats.processes_seen += 1
        return proc

    def _thread(self, tid: int, pid: int, ts_ns: int) -> _Thread:
        thread = self._threads.get(tid)
        if thread is None:  # events of a thread we were not told about: follow it anyway
            self.stats.threads_unannounced += 1
            proc = self._procs.get(pid) or self._new_process(pid, None, None, None, None, ts_ns)
            thread = self._add_thread(tid, proc)
        return thread

    def _add_thread(self, tid: int, proc: _Process) -> _Thread:
        thread = _Thread(tid, proc, ThreadStream(self.length, self.stride))
        self._threads[tid] = thread
        proc.threads += 1
        self.stats.threads_seen += 1
        return thread

    # -- items ------------------------------------------------------------------------
    def _on_start(self, item) -> None:
        if item.tid in self._threads:  # a reused tid whose exit we missed
            self._end_thread(self._threads[item.tid], item.ts_ns)
        proc = self._procs.get(item.pid)
        if proc is None:
            proc = self._new_process(
                item.pid, item.ppid, item.comm, item.exe, item.exe_sha256, item.ts_ns
            )
        self._add_thread(item.tid, proc)

    def _on_events(self, item) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        thread.pending.append(item.ids)
        thread.last_ns = item.ts_ns
        self.stats.events += len(item.ids)

    def _feed(self, thread: _Thread) -> None:
        if not thread.pending:
            return
        ids = thread.pending[0] if len(thread.pending) == 1 else np.concatenate(thread.pending)
        thread.pending = []
        if self.verdicts is not None:
            self.verdicts.add(thread.tid, ids, thread.proc.ctx, thread.last_ns)
        cut = thread.stream.feed(ids)
        if len(cut.windows):
            self._keep(cut.windows, thread, thread.last_ns)

    def _keep(self, windows: np.ndarray, thread: _Thread, ts_ns: int) -> None:
        count = 1 if windows.ndim == 1 else len(windows)
        if ts_ns < thread.proc.warm_until_ns:
            self.stats.windows_warmup += count
            return
        self._cuts.append(_Cut(windows, thread.proc.ctx, thread.tid, ts_ns))

    def _close(self, thread: _Thread, ts_ns: int, *, gap: int | None = None) -> None:
        self._feed(thread)
        cut = thread.stream.gap(gap) if gap is not None else thread.stream.close()
        self.stats.windows_unscored_loss += cut.unscored
        if cut.last is not None and len(cut.last):
            self._keep(cut.last, thread, max(ts_ns, thread.last_ns))
        if self.verdicts is not None:
            self.verdicts.end(thread.tid, thread.proc.ctx, max(ts_ns, thread.last_ns))

    def _on_gap(self, item) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        self.stats.lost_events += int(item.lost)
        self._close(thread, item.ts_ns, gap=int(item.lost))

    def _on_exec(self, item) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        # The old program's stream ends here; the new one starts with its own warm-up.
        self._close(thread, item.ts_ns)
        proc = thread.proc
        old = proc.ctx
        proc.ctx = ProcessContext(old.pid, old.ppid, item.comm, item.filename, None, old.root_pid)
        # A (re)start of the watched binary gets a warm-up; a descendant that execs
        # another program (the shell an exploited server spawns) is exactly what is
        # watched for, so it gets none.
        restart = item.comm == self.config.binary
        proc.warm_until_ns = item.ts_ns + self.warmup_ns if restart else item.ts_ns

    def _end_thread(self, thread: _Thread, ts_ns: int) -> None:
        self._close(thread, ts_ns)
        del self._threads[thread.tid]
        proc = thread.proc
        proc.threads -= 1
        if proc.threads <= 0 and self._procs.get(proc.ctx.pid) is proc:
            del self._procs[proc.ctx.pid]

    def _on_exit(self, item) -> None:
        thread = self._threads.get(item.tid)
        if thread is not None:
            self._end_thread(thread, item.ts_ns)
        if item.group_dead:
            proc = self._procs.get(item.pid)
            if proc is not None and proc.threads <= 0:
                del self._procs[item.pid]

    # -- the loop ---------------------------------------------------------------------
    def ingest(self, items: Iterable[object]) -> list[Alert]:
        """Apply one drain's items in order; score what they complete; the alerts to emit."""
        dispatch = self._dispatch
        threads = self._threads
        for item in items:
            kind = type(item).__name__
            if kind != "ThreadEvents":
                thread = threads.get(getattr(item, "tid", -1))
                if thread is not None:
                    self._feed(thread)  # this thread's events come before this item
            handler = dispatch.get(kind)
            if handler is not None:
                handler(item)
        for thread in threads.values():
            self._feed(thread)
        return self._score()

    def _score(self) -> list[Alert]:
        return self._score_windows() + self._judge_streams()

    def _judge_streams(self) -> list[Alert]:
        """Whole-thread verdicts on the streams that ended; alerts for the anomalous ones."""
        if self.verdicts is None:
            return []
        flagged = self.verdicts.score()
        vs = self.verdicts.stats
        self.stats.streams_judged = vs.streams_scored
        self.stats.streams_anomalous = vs.streams_anomalous
        self.stats.streams_too_long = vs.streams_too_long
        out = []
        for ended, score in flagged:
            explanation = explain_stream(self.verdicts.profile, ended.ids, self.names)
            alert = Alert(0, ended.ts_ns, self.config.binary, ended.ctx, ended.tid, score,
                          self.verdicts.threshold, explanation, scope="thread",
                          stream_calls=ended.calls)
            emitted = self.aggregator.offer(alert)
            if emitted is not None:
                self.stats.alerts += 1
                out.append(emitted)
        return out

    def _score_windows(self) -> list[Alert]:
        cuts, self._cuts = self._cuts, []
        if not cuts:
            return []
        counts = np.fromiter((c.count for c in cuts), dtype=np.int64, count=len(cuts))
        lengths = np.concatenate(
            [
                np.full(c.count, self.length) if c.windows.ndim == 2 else [len(c.windows)]
                for c in cuts
            ]
        ).astype(np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate([c.windows.reshape(-1) for c in cuts])
        batch = Sequences(values, offsets)
        scores = self.scorer.score(batch)
        anomalous = self.scorer.is_anomalous(scores, batch)
        self.stats.windows_scored += len(batch)
        if len(scores):
            self.stats.max_score = max(self.stats.max_score, float(scores.max()))
        flagged = np.flatnonzero(anomalous)
        if self.scorer.learn_enabled:
            normal = np.flatnonzero(~self.scorer.above(scores))
            self.scorer.learn(batch.take(normal))
            self.stats.learned_windows = self.scorer.learned_windows
        if len(flagged) == 0:
            return []
        self.stats.anomalous_windows += len(flagged)
        cut_of = np.repeat(np.arange(len(cuts)), counts)
        new_calls = self.scorer.new_syscalls(batch, flagged)
        out = []
        for k, index in enumerate(flagged.tolist()):
            cut, window = cuts[cut_of[index]], batch[index]
            if new_calls is not None:  # cheap: names of new syscalls only, full text if emitted
                explanation = Explanation([], new_syscalls=self.names.names(new_calls[k]))
            else:
                explanation = explain_window(self.explainer, window, self.names)
            alert = Alert(0, cut.ts_ns, self.config.binary, cut.ctx, cut.tid,
                          float(scores[index]), self.scorer.threshold, explanation)
            emitted = self.aggregator.offer(alert)
            if emitted is not None:
                if new_calls is not None:
                    emitted.explanation = explain_window(self.explainer, window, self.names)
                self.stats.alerts += 1
                out.append(emitted)
        return out

    def expire(self, now_ns: int) -> list[Repeat]:
        """Close aggregation periods that ended by `now_ns` (kernel monotonic time)."""
        repeats = self.aggregator.expire(now_ns)
        self.stats.repeats += len(repeats)
        return repeats

    def reap(self, now_ns: int, idle_s: float, alive: Callable[[int, int], bool]) -> int:
        """Free threads idle for `idle_s` that `alive(pid, tid)` says are gone (missed exits)."""
        idle_ns = int(idle_s * 1e9)
        stale = [t for t in self._threads.values()
                 if now_ns - t.last_ns > idle_ns and not alive(t.proc.ctx.pid, t.tid)]
        for thread in stale:
            self._end_thread(thread, now_ns)
        self.stats.threads_reaped += len(stale)
        return len(stale)

    def finish(self) -> tuple[list[Alert], list[Repeat]]:
        """At exit: score what is pending and close every aggregation period."""
        for thread in self._threads.values():
            self._feed(thread)
        alerts = self._score()
        repeats = self.aggregator.finish()
        self.stats.repeats += len(repeats)
        return alerts, repeats
