"""The live scoring engine: collector items in, alerts out.

Keeps a rolling window per thread (`ThreadStream`), gathers every window a poll
completes into one batch, scores it once, applies the threshold policy and turns
anomalous windows into alerts that explain themselves, folded per process by the
`Aggregator`. With a thread profile (`ThreadVerdicts`), each thread's stream is also
judged whole when it ends (exit, exec, loss). It follows processes, forks, threads,
execs and exits as the collector reports them (design §2) and frees a thread's state at
its exit. Nothing here prints.

Items are the collector's item classes (`sysgram.collector.items`, plain dataclasses:
no bcc needed to test the engine), dispatched in one `match`. Syscall numbers arrive in
the host's table (`WatchConfig.arch`) and are translated to the profile's by name.
Every decision on a scored window is `AlertPolicy`'s (through `ThresholdScorer`). With a
`TouchedWatch`, every item is also shown to it (files, programs and peers: alerts of
their own, and listed in each window alert).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from sysgram.collector.items import Exec, Gap, ThreadEvents, ThreadExit, ThreadStart
from sysgram.features.sequences import Sequences
from sysgram.features.stream import ThreadStream
from sysgram.models.touched import process_role
from sysgram.models.training_data import to_profile_ids
from sysgram.syscalls import SyscallTable
from sysgram.watch.aggregate import Aggregator
from sysgram.watch.alerts import Alert, ProcessContext, Repeat
from sysgram.watch.explain import Explanation, explain_stream, explain_window
from sysgram.watch.scoring import ThresholdScorer
from sysgram.watch.touched import TouchedWatch
from sysgram.watch.verdicts import ThreadVerdicts

# Items after which a thread's stream is cut or restarted: its calls before them are
# windowed first. Other items (touched records) leave the stream alone, so a server's
# calls between its opens are windowed once per drain, not once per request.
_ENDS_SEGMENT = (ThreadStart, Gap, Exec, ThreadExit)


@dataclass
class WatchConfig:
    binary: str  # the watched name (the profile's binary)
    # The watched binary's file (the profile's). An exec of exactly this file is a restart
    # and gets a warm-up; the exec'd name (comm) is the file name, which anyone can choose.
    binary_path: str | None = None
    arch: str | None = None  # syscall table of the items (the host's); None: the profile's
    warmup_s: float = 2.0  # after each process start or exec, windows are not scored
    aggregate_s: float = 5.0  # alerts of one process within this period are folded
    burst: int = 20  # distinct-process alerts per period before a binary-wide fold
    # A thread quiet this long with calls in no window yet gets the window ending at its
    # last call scored (`flush_idle`): an attack's last calls must not wait for calls
    # that may come seconds later (a worker blocked on the peer it just connected to).
    idle_flush_s: float = 0.1
    # Training saw no thread start (the profile's roles say so): an alert on the first
    # window of a thread started while watched says that its start-up is what is new.
    thread_start_unseen: bool = False


@dataclass
class WatchStats:
    events: int = 0
    lost_events: int = 0  # calls the collector reported missing (Gap items)
    lost_unattributed: int = 0  # losses no thread could be named for: every stream cut
    unencodable_calls: int = 0  # host calls with no number in the profile's table
    windows_scored: int = 0
    windows_remembered: int = 0  # of those, scored before (same content): score reused
    windows_warmup: int = 0  # not scored: inside a process's warm-up
    windows_unscored_loss: int = 0  # not scored: they would have spanned a loss
    windows_idle: int = 0  # scored early: the window ending at a quiet thread's last call
    anomalous_windows: int = 0
    alerts: int = 0
    repeats: int = 0
    learned_windows: int = 0
    learning_refused: int = 0  # learnable no more: above the threshold or holding unseen
    processes_seen: int = 0
    threads_seen: int = 0
    threads_unannounced: int = 0  # events before any ThreadStart (started lazily)
    threads_reaped: int = 0  # state freed without a ThreadExit (thread gone from /proc)
    streams_judged: int = 0  # thread streams scored whole by the thread profile
    streams_anomalous: int = 0
    streams_too_long: int = 0  # ended without a whole-stream verdict (too long to keep)
    touched_new: int = 0  # touched records outside the learned sets (alerted or folded)
    touched_lost: int = 0  # touched records the kernel could not hand over
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
    starting: bool = False  # started while watched, and no window of it kept yet


@dataclass
class _Cut:
    windows: np.ndarray  # (n, length) full windows, or 1-D: one last window
    ctx: ProcessContext
    tid: int
    ts_ns: int
    holds_start: bool = False  # its first window holds the first calls of a new thread

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
        touched: TouchedWatch | None = None,
    ) -> None:
        self.scorer = scorer
        self.touched = touched  # what processes touch: its own alerts, listed in window alerts
        self.verdicts = verdicts
        self.config = config
        self.names = names
        self.explainer = explainer if explainer is not None else scorer.profile
        profile = scorer.profile
        self.length, self.stride = int(profile.window_), int(profile.stride_)
        self.arch = profile.arch_
        self.host_arch = config.arch or profile.arch_
        self.warmup_ns = int(config.warmup_s * 1e9)
        self.stats = WatchStats()
        self.aggregator = Aggregator(config.aggregate_s, config.burst)
        if touched is not None:  # one id sequence for every alert and repeat of the run
            touched.next_id = self.aggregator.next_id
        self._procs: dict[int, _Process] = {}
        self._threads: dict[int, _Thread] = {}
        self._cuts: list[_Cut] = []

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

    def _new_process(self, pid: int, ppid: int | None, comm, exe, sha, ts_ns: int,
                     cgroup: str | None = None, container: str | None = None,
                     watched_parent: bool | None = None) -> _Process:
        # A fork of a watched process continues its parent's program: no start-up burst of
        # its own, only what is left of its parent's warm-up.
        parent = self._procs.get(ppid) if ppid is not None else None
        warm_until = parent.warm_until_ns if parent is not None else ts_ns + self.warmup_ns
        root = parent.ctx.group if parent is not None else pid
        if watched_parent is None and parent is not None:
            watched_parent = True                # a fork the collector did not mark
        proc = _Process(ProcessContext(pid, ppid, comm, exe, sha, root, cgroup, container,
                                       process_role(watched_parent)), warm_until)
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
    def _on_start(self, item: ThreadStart) -> None:
        if item.tid in self._threads:  # a reused tid whose exit we missed
            self._end_thread(self._threads[item.tid], item.ts_ns)
        proc = self._procs.get(item.pid)
        if proc is None:
            proc = self._new_process(
                item.pid, item.ppid, item.comm, item.exe, item.exe_sha256, item.ts_ns,
                item.cgroup, item.container, item.watched_parent,
            )
        thread = self._add_thread(item.tid, proc)
        thread.starting = bool(item.created)

    def _on_events(self, item: ThreadEvents) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        ids = item.ids
        if self.host_arch != self.arch:  # the usual case needs no lookup per batch
            ids, unencodable = to_profile_ids(ids, self.host_arch, self.arch)
            self.stats.unencodable_calls += unencodable
        thread.pending.append(ids)
        thread.last_ns = item.last_ts_ns or item.ts_ns
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
        starting, thread.starting = thread.starting, False
        if ts_ns < thread.proc.warm_until_ns:
            self.stats.windows_warmup += count
            return
        self._cuts.append(_Cut(windows, thread.proc.ctx, thread.tid, ts_ns, starting))

    def _close(self, thread: _Thread, ts_ns: int, *, gap: int | None = None) -> None:
        self._feed(thread)
        cut = thread.stream.gap(gap) if gap is not None else thread.stream.close()
        self.stats.windows_unscored_loss += cut.unscored
        if cut.last is not None and len(cut.last):
            self._keep(cut.last, thread, max(ts_ns, thread.last_ns))
        if self.verdicts is not None:
            self.verdicts.end(thread.tid, thread.proc.ctx, max(ts_ns, thread.last_ns))

    def _on_gap(self, item: Gap) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        self.stats.lost_events += int(item.lost)
        self._close(thread, item.ts_ns, gap=int(item.lost))

    def lose_everywhere(self, lost: int, ts_ns: int) -> None:
        """Calls were lost that no thread can be named for (unattributed losses, recursion
        misses): any open stream may miss some, so every segment ends here and no window
        spans the loss (docs/alerts.md)."""
        for thread in self._threads.values():
            self._close(thread, ts_ns, gap=0)
        self.stats.lost_events += int(lost)
        self.stats.lost_unattributed += int(lost)

    def _is_restart(self, item: Exec) -> bool:
        """An exec of the watched binary's own file (by path, not by the chosen name)."""
        path = self.config.binary_path
        return bool(path) and os.path.normpath(item.filename) == os.path.normpath(path)

    def _on_exec(self, item: Exec) -> None:
        thread = self._threads.get(item.tid) or self._thread(item.tid, item.pid, item.ts_ns)
        # The old program's stream ends here; the new one starts with its own warm-up.
        self._close(thread, item.ts_ns)
        proc = thread.proc
        old = proc.ctx
        proc.ctx = ProcessContext(old.pid, old.ppid, item.comm, item.filename, None, old.root_pid,
                                  old.cgroup, old.container, old.role)
        # A restart of the watched binary gets a warm-up; a descendant that execs another
        # program (the shell an exploited server spawns, or a copy of anything named like
        # the binary) is exactly what is watched for, so it gets none.
        restart = self._is_restart(item)
        proc.warm_until_ns = item.ts_ns + self.warmup_ns if restart else item.ts_ns

    def _end_thread(self, thread: _Thread, ts_ns: int) -> None:
        self._close(thread, ts_ns)
        del self._threads[thread.tid]
        proc = thread.proc
        proc.threads -= 1
        if proc.threads <= 0 and self._procs.get(proc.ctx.pid) is proc:
            del self._procs[proc.ctx.pid]

    def _on_exit(self, item: ThreadExit) -> None:
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
        threads = self._threads
        for item in items:
            if isinstance(item, _ENDS_SEGMENT):
                thread = threads.get(item.tid)
                if thread is not None:
                    self._feed(thread)  # this thread's events come before this item
            match item:
                case ThreadEvents():
                    self._on_events(item)
                case ThreadStart():
                    self._on_start(item)
                case Gap():
                    self._on_gap(item)
                case Exec():
                    self._on_exec(item)
                case ThreadExit():
                    self._on_exit(item)
            if self.touched is not None:
                proc = self._procs.get(item.pid)
                self.touched.observe(item, proc.ctx if proc is not None else None)
        for thread in threads.values():
            self._feed(thread)
        return self._score() + self._touched_alerts()

    def _touched_alerts(self) -> list:
        if self.touched is None:
            return []
        alerts = self.touched.take_alerts()
        self.stats.alerts += len(alerts)
        self.stats.touched_new = self.touched.new_items
        self.stats.touched_lost = self.touched.lost
        return alerts

    def _with_touched(self, alert: Alert, calls: int) -> Alert:
        """The alert, listing what its thread touched over its last `calls` calls."""
        if self.touched is not None:
            alert.touched = self.touched.window_items(alert.tid, calls)
        return alert

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
            explanation = explain_stream(self.verdicts.profile, ended.ids)
            alert = Alert(0, ended.ts_ns, self.config.binary, ended.ctx, ended.tid, score,
                          self.verdicts.threshold, explanation, scope="thread",
                          stream_calls=ended.calls)
            emitted = self.aggregator.offer(alert)
            if emitted is not None:
                self.stats.alerts += 1
                out.append(self._with_touched(emitted, len(ended.ids)))
        return out

    def _score_windows(self) -> list[Alert]:
        cuts, self._cuts = self._cuts, []
        if not cuts:
            return []
        counts = np.fromiter((c.count for c in cuts), dtype=np.int64, count=len(cuts))
        batch = Sequences.concat([c.windows for c in cuts])
        verdicts = self.scorer.classify(batch)
        scores = verdicts.scores
        self.stats.windows_scored += len(batch)
        self.stats.windows_remembered = self.scorer.memo.hits
        if len(scores):
            self.stats.max_score = max(self.stats.max_score, float(scores.max()))
        cut_of = np.repeat(np.arange(len(cuts)), counts)
        if self.scorer.learner is not None:
            tids = np.array([c.tid for c in cuts], dtype=np.int64)[cut_of]
            self.scorer.learn(batch, verdicts, tids)
            self.stats.learned_windows = self.scorer.learned_windows
            self.stats.learning_refused = self.scorer.learning_refused
        flagged = verdicts.flagged
        if len(flagged) == 0:
            return []
        self.stats.anomalous_windows += len(flagged)
        new_calls = self.scorer.profile.new_syscalls(batch.take(flagged))
        out = []
        for k, index in enumerate(flagged.tolist()):
            cut, window = cuts[cut_of[index]], batch[index]
            # Cheap: names of new syscalls only (for folding); the full text if emitted.
            explanation = Explanation([], new_syscalls=self.names.names(new_calls[k]))
            alert = Alert(0, cut.ts_ns, self.config.binary, cut.ctx, cut.tid,
                          float(scores[index]), self.scorer.threshold, explanation)
            emitted = self.aggregator.offer(alert)
            if emitted is not None:
                emitted.explanation = explain_window(self.explainer, window)
                first_in_cut = index == 0 or cut_of[index - 1] != cut_of[index]
                if self.config.thread_start_unseen and cut.holds_start and first_in_cut:
                    emitted.explanation = replace(emitted.explanation, thread_start=True)
                self.stats.alerts += 1
                out.append(self._with_touched(emitted, self.length + self.stride))
        return out

    def flush_idle(self, now_ns: int) -> list[Alert]:
        """Score the last window of every thread quiet since `now_ns - idle_flush_s` whose
        latest calls are in no window yet; the alerts that gives."""
        quiet_since = now_ns - int(self.config.idle_flush_s * 1e9)
        for thread in self._threads.values():
            if thread.last_ns > quiet_since or thread.pending:
                continue
            window = thread.stream.tail()
            if window is not None:
                self.stats.windows_idle += 1
                self._keep(window, thread, thread.last_ns)
        return self._score_windows()

    def expire(self, now_ns: int) -> list[Repeat]:
        """Close aggregation periods that ended by `now_ns` (kernel monotonic time)."""
        repeats = self.aggregator.expire(now_ns)
        if self.touched is not None:
            repeats += self.touched.expire(now_ns)
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
        alerts = self._score() + self._touched_alerts()
        repeats = self.aggregator.finish()
        if self.touched is not None:
            repeats += self.touched.expire(2**63 - 1)
        self.stats.repeats += len(repeats)
        return alerts, repeats
