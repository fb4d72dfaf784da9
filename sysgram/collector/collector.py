"""The collector: the kernel program, a flusher thread, and ordered drains of what it saw.

The flusher thread owns every conversation with the kernel. Each round it notes the
monotonic time, visits every CPU (pinning itself there and making one cheap syscall, so
the program hands over that CPU's partial batch), applies queued mark/unmark requests,
reads the ring buffers without blocking and decodes what they held. When the round
completes, everything that happened before its start time has been handed over: that
time becomes the watermark up to which `poll` releases runs, in each thread's order.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from sysgram.bpf.memory import release_compiler_memory
from sysgram.collector import abi, cgroups, procinfo
from sysgram.collector.decode import (
    KIND_EVENTS,
    KIND_EXEC,
    KIND_EXIT,
    KIND_GAP,
    KIND_TOUCHED,
    Runs,
    decode_batches,
    decode_life,
    decode_losses,
)
from sysgram.collector.items import (
    CollectorStats,
    Drain,
    DrainItem,
    Exec,
    Gap,
    TargetSpec,
    ThreadEvents,
    Touched,
    TouchedGap,
)
from sysgram.collector.ordering import ReorderBuffer, Segment
from sysgram.collector.procfilter import ProcessFilter
from sysgram.collector.program import Program
from sysgram.collector.targets import TargetSet
from sysgram.collector.threads import ThreadBook
from sysgram.collector.touched import SocketTypes
from sysgram.collector.touched import decode_all as decode_touched
from sysgram.errors import UserError

# Each flusher syscall applies up to 32 queued requests; this many extra syscalls per
# round finish a large seed at once.
_REQUEST_SYSCALLS_PER_ROUND = 8
# Flush rounds: no event waits much longer than this. Each round has a fixed cost (visiting
# every CPU, reading three rings, ~100 numpy calls), so at 20 ms rounds that cost was most
# of the collector's CPU per event (20 ns at 3 M events/s); at 50 ms it halves, and the
# worst wait stays well inside the ~100 ms the design allows.
FLUSH_INTERVAL_S = 0.05
# While the kernel tracks no process, rounds (and the polls waiting on them) come this
# often instead: an idle daemon then costs about half. Nothing is reordered by it: a
# process that execs into a target meanwhile is marked by the kernel at once, and only
# its first events wait up to this long. It is bounded by the losses ring: should a burst
# that starts while idle overflow the events ring before the next round, every failed
# batch leaves a ~3 KiB loss record, and 512 KiB hold ~170 of them (~690 k events, 150 ms
# of both CPUs at full rate); past that, losses are counted but no longer attributed.
IDLE_FLUSH_INTERVAL_S = 0.1
# An open a thread repeats (same file, flags) within this long of the last one handed on
# is folded in the kernel and counted, not handed on: a server opening one file per
# request would otherwise cost the watcher more per request than everything else it
# does (bpf/touched.bpf.c, touch_open).
OPEN_REPEAT_S = 1.0


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _exit_record(exec_rec: np.void, tid: int) -> np.void:
    """The exit a thread that disappeared into an exec would have reported (just before it)."""
    rec = np.zeros(1, dtype=abi.LIFE)[0]
    rec["ts"], rec["kind"] = int(exec_rec["ts"]) - 1, abi.LIFE_EXIT
    rec["tid"], rec["tgid"], rec["comm"] = tid, exec_rec["tgid"], exec_rec["comm"]
    return rec


def online_cpus() -> list[int]:
    """Online CPUs (the flusher must visit each one: targets may run anywhere)."""
    try:
        text = Path("/sys/devices/system/cpu/online").read_text().strip()
    except OSError:
        return sorted(os.sched_getaffinity(0))
    cpus: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


class Collector:
    """Records the syscall ids of every thread of the processes of its targets.

    One kernel program serves every target; targets can be added and removed while it
    runs (`add_target`, `remove_target`), and each ThreadStart / Exec names the target
    its process belongs to.
    """

    def __init__(self, targets: TargetSpec | Iterable[TargetSpec], *,
                 flush_interval: float = FLUSH_INTERVAL_S, pid_limit: int | None = None,
                 rings: abi.RingPages | None = None, cgroup: str | None = None,
                 open_repeat_s: float = OPEN_REPEAT_S) -> None:
        self.targets = TargetSet([targets] if isinstance(targets, TargetSpec) else targets)
        self.flush_interval = flush_interval
        self._pid_limit = pid_limit
        self._rings = rings
        self._program: Program | None = None
        self._cpus = online_cpus()
        self._unvisited_cpus: set[int] = set()
        # The flusher thread and its hand-shakes.
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()           # ends the flusher's wait: stop, new marks
        self.round_interval = flush_interval     # the flusher's current period (idle: longer)
        self._go = threading.Event()
        self._first_round = threading.Event()
        self._error: BaseException | None = None
        # Filled by ring-buffer callbacks (flusher thread only).
        self._batch_blobs: list[bytes] = []
        self._loss_blobs: list[bytes] = []
        self._life_blobs: list[bytes] = []
        self._touched_blobs: list[bytes] = []    # one record each (sizes differ by kind)
        # Shared between the flusher and poll(), under self._cond.
        self._cond = threading.Condition()
        self._buffer = ReorderBuffer()
        self._watermark = 0
        self._rounds = 0
        self._polled_rounds = 0
        self._life: dict[int, np.void] = {}      # lifecycle records waiting for release
        self._touched: dict[int, Touched] = {}   # touched records waiting for release
        self._sockets = SocketTypes()
        self._open_repeat_ns = int(open_repeat_s * 1e9)   # 0: every open handed on
        self._exec_files: dict[int, str] = {}    # pid -> file of its last exec (until joined)
        self._gone: list[int] = []               # processes that exited this round
        self._touched_gaps: list[TouchedGap] = []
        self._touched_count = 0
        self._touched_counters = {"records": 0, "lost": 0, "lost_unattributed": 0,
                                  "repeats": 0}
        self._next_ref = 0
        self._book = ThreadBook(target_name=self.targets.name_of, kernel_owner=self._kernel_owner)
        self._subtree = cgroups.resolve_subtree(cgroup) if cgroup else None
        self._exe = ProcessFilter(self.targets, self._subtree)
        self._marks: list[tuple[int, int, int]] = []  # (REQ_MARK, pid, target) seeds
        self._events = 0
        self._batches = 0
        self._counters = dict.fromkeys(abi.COUNTER_FIELDS, 0)
        self._misses = 0
        self._detached = False
        self.flusher_tid = 0        # the flusher thread's kernel id (its CPU time is metered)

    @property
    def program(self) -> Program | None:
        """The loaded kernel program (for diagnostics and benchmarks)."""
        return self._program

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self) -> Collector:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Compile, load and attach the program, then seed it with the running targets.

        On any failure the probes are detached before the error propagates: a caller's
        `with Collector(...)` never reaches `__exit__` when `start` raises, and a
        half-started collector must not leave a hook on every syscall of the host.
        """
        self._program = Program(pid_limit=self._pid_limit, rings=self._rings)
        # The compiler has done its work: a watcher runs for months, its pages need not stay.
        release_compiler_memory()
        try:
            self._start_tracing()
        except BaseException:
            self.close()
            raise

    def _start_tracing(self) -> None:
        flusher_tid = self.flusher_tid = self._start_flusher()
        subtree = self._subtree
        self._program.configure(flusher_tid=flusher_tid, self_tgid=os.getpid(),
                                cgroup=(subtree.id, subtree.level) if subtree else (0, 0),
                                open_repeat_ns=self._open_repeat_ns)
        self._program.open_ring_buffers(self._batch_blobs.append, self._loss_blobs.append,
                                        self._life_blobs.append, self._touched_blobs.append)
        with self._cond:
            for spec in self.targets.specs():
                self._program.set_target(spec.comm, self.targets.id_of(spec.comm))
            self._seed(self.targets.specs())
        self._go.set()
        # The first round applies the seed marks: after it, the running targets are traced.
        self._first_round.wait(timeout=5.0)
        if self._error is not None:
            raise UserError(f"the collector failed while starting ({self._error}).")

    def _start_flusher(self) -> int:
        """Start the flusher thread (it waits for `_go`); returns its kernel thread id."""
        tid_box: list[int] = []
        ready = threading.Event()

        def run() -> None:
            tid_box.append(threading.get_native_id())
            ready.set()
            self._go.wait()
            try:
                self._flusher_loop()
            except BaseException as exc:  # surfaced by poll()
                self._error = exc
                with self._cond:
                    self._cond.notify_all()

        self._thread = threading.Thread(target=run, name="sysgram-flusher", daemon=True)
        self._thread.start()
        ready.wait()
        return tid_box[0]

    def _seed(self, specs: list[TargetSpec]) -> None:
        """Mark the processes that already run under the names (threads share the tgid).

        Called under self._cond, after the names are in the kernel's map: a process that
        execs into a name meanwhile is marked by the kernel, and marking twice is harmless.
        """
        running = procinfo.pids_by_comm({spec.comm for spec in specs})
        for spec in specs:
            target_id = self.targets.id_of(spec.comm)
            for pid in running[spec.comm]:
                if pid != os.getpid() and self._exe.accepts_seed(pid, spec):
                    self._marks.append((abi.REQ_MARK, pid, target_id))
                    self._book.set_owner(pid, target_id)
                    self._book.note_process(pid)

    def _kernel_owner(self, pid: int) -> int:
        program = self._program
        return program.owner_of(pid) if program is not None and not self._detached else 0

    # -- targets while running ---------------------------------------------------------
    def add_target(self, spec: TargetSpec) -> None:
        """Start watching another binary: its running processes and every later exec."""
        with self._cond:
            if self.targets.id_of(spec.comm) is not None:
                return
            target_id = self.targets.add(spec)
            if self._program is not None and not self._detached:
                self._program.set_target(spec.comm, target_id)
                self._seed([spec])
        self._wake.set()                  # its running processes are marked at once

    def remove_target(self, comm: str) -> None:
        """Stop watching a binary: its processes are unmarked and their items dropped.

        Items of its processes already released stay released; a consumer that routes by
        target discards them with the target (no ThreadExit follows for those threads).
        """
        with self._cond:
            target_id = self.targets.remove(comm)
            if target_id is None:
                return
            if self._program is not None and not self._detached:
                self._program.clear_target(comm)
            self._marks = [m for m in self._marks if m[2] != target_id]
            for pid in self._book.processes_of(target_id):
                self._drop_process(pid)
        self._wake.set()

    def _drop_process(self, tgid: int) -> None:
        """A process of a removed target: unmark it, discard and forget what it sent."""
        self._exe.drop(tgid, wrong_exe=False)
        self._book.forget_process(tgid)

    def _owned_elsewhere(self, tgid: int, target_id: int) -> bool:
        """Whether a process belongs to a target that is no longer watched."""
        return target_id != 0 and not self.targets.is_active(target_id)

    def stop(self) -> None:
        """Stop tracing after one last flush round; `poll` still returns what was held."""
        if self._thread is not None and self._thread.is_alive():
            self._stop.set()
            self._wake.set()
            self._go.set()
            self._thread.join()
        if self._program is not None and not self._detached:
            self._counters = self._program.counters()
            self._touched_counters = self._program.touched_counters()
            self._misses = self._program.recursion_misses()
            self._program.close()
            self._detached = True

    def close(self) -> None:
        """Stop tracing (stop() detaches every probe); safe to call more than once."""
        self.stop()
        self._program = None

    # -- flusher thread --------------------------------------------------------------
    def _flusher_loop(self) -> None:
        while True:
            started = time.monotonic()
            self._round()
            if self._stop.is_set():
                return
            self.round_interval = (self.flush_interval if self._busy()
                                   else max(self.flush_interval, IDLE_FLUSH_INTERVAL_S))
            self._wake.wait(max(0.0, self.round_interval - (time.monotonic() - started)))
            self._wake.clear()

    def _busy(self) -> bool:
        """Whether rounds keep their full rate: a process is tracked or marks are queued."""
        with self._cond:
            queued = bool(self._marks or self._exe.requests)
        program = self._program
        return queued or program.requests_outstanding or program.tracks_anything()

    def _round(self) -> None:
        program = self._program
        watermark = time.monotonic_ns()
        self._visit_cpus()
        self._apply_requests(program)
        program.consume()
        life, losses, batches = self._take_blobs()
        touched, self._touched_blobs[:] = list(self._touched_blobs), []
        touched_losses = program.take_touched_losses()
        with self._cond:
            if life or losses or batches:
                self._ingest(life, losses, batches)
            if touched or touched_losses:
                self._ingest_touched(touched, touched_losses, watermark)
            for pid in self._gone:       # after its last touched records were decoded
                self._sockets.forget(pid)
            self._gone.clear()
            self._watermark = watermark
            self._rounds += 1
            self._cond.notify_all()
        self._first_round.set()

    def _visit_cpus(self) -> None:
        for cpu in self._cpus:
            try:
                os.sched_setaffinity(0, (cpu,))
            except OSError:   # a cpuset keeps us off this CPU: its batches wait until full
                self._unvisited_cpus.add(cpu)
                continue
            os.getppid()      # the program sees the flusher and hands this CPU's batch over

    def _apply_requests(self, program: Program) -> None:
        with self._cond:
            todo = self._marks + self._exe.requests
            self._marks, self._exe.requests = [], []
        if not todo and not program.requests_outstanding:
            return
        written = program.queue_requests(todo)
        if written < len(todo):            # the kernel's queue is full: next round
            with self._cond:
                self._marks[:0] = todo[written:]
        for _ in range(_REQUEST_SYSCALLS_PER_ROUND):
            if not program.requests_pending():
                break
            os.getppid()

    def _take_blobs(self) -> tuple[bytes, bytes, bytes]:
        blobs = (b"".join(self._life_blobs), b"".join(self._loss_blobs),
                 b"".join(self._batch_blobs))
        self._life_blobs.clear()
        self._loss_blobs.clear()
        self._batch_blobs.clear()
        return blobs

    def _ingest(self, life_blob: bytes, loss_blob: bytes, batch_blob: bytes) -> None:
        """Decode one round's records into the reorder buffer (lifecycle first)."""
        life_runs = self._ingest_life(decode_life(life_blob))
        gaps = decode_losses(loss_blob)
        runs, ids = decode_batches(batch_blob)
        self._batches += len(batch_blob) // abi.BATCH.itemsize
        self._first_sight(np.concatenate([runs.tid, gaps.tid]),
                          np.concatenate([runs.tgid, gaps.tgid]))
        runs, gaps = self._exe.filter(runs), self._exe.filter(gaps)
        self._exe.end_round()
        self._events += int(runs.length.sum())
        self._buffer.add(Runs.concat([life_runs, gaps]))
        self._buffer.add(runs, ids)

    def _ingest_touched(self, records: list[bytes], losses: list[tuple[int, int, int]],
                        watermark: int) -> None:
        """Touched records become zero-length runs, ordered with the syscalls around them."""
        kept: list[tuple[int, int, int, int]] = []          # ts, tid, tgid, ref
        for item in decode_touched(records, self._sockets):
            if self._exe.is_dropped(item.pid):
                continue
            ref = self._next_ref
            self._next_ref += 1
            self._touched[ref] = item
            kept.append((item.ts_ns, item.tid, item.pid, ref))
        self._touched_count += len(kept)
        # Lost records are known only by thread: they are released at this round's start.
        self._touched_gaps += [TouchedGap(tid=tid, pid=tgid, lost=lost, ts_ns=watermark)
                               for tid, tgid, lost in losses]
        if kept:
            ts, tids, tgids, refs = zip(*kept, strict=True)
            self._buffer.add(Runs.build(
                tid=np.array(tids, np.uint32), tgid=np.array(tgids, np.uint32),
                ts=np.array(ts, np.uint64), kind=np.full(len(kept), KIND_TOUCHED, np.uint8),
                ref=np.array(refs, np.int64)))

    def _ingest_life(self, records: np.ndarray) -> Runs:
        """Fork/exec/exit records: update the books; exec and exit become runs to order."""
        kept: list[tuple[int, int, int, int, int]] = []     # ts, kind, tid, tgid, ref
        for rec in records:
            kind, tid, tgid = int(rec["kind"]), int(rec["tid"]), int(rec["tgid"])
            target = int(rec["target"])
            if kind == abi.LIFE_FORK:
                self._exe.on_fork(int(rec["other"]))
                self._book.on_fork(int(rec["other"]), tgid, target)
                continue
            if kind == abi.LIFE_EXEC:
                filename, comm = _text(rec["filename"]), _text(rec["comm"])
                self._exe.on_exec(tgid, comm, filename)
                if self._owned_elsewhere(tgid, target):
                    self._drop_process(tgid)
                if self._exe.is_dropped(tgid):
                    continue
                self._book.on_exec(tid, tgid, filename, comm, target)
                run_kind = KIND_EXEC
                old_tid = int(rec["other"])
                if old_tid != tgid:
                    # A non-leader thread exec'd and took over the process id: its old
                    # thread id gets no exit record of its own, so end it here.
                    kept.append(self._keep_life(_exit_record(rec, old_tid), KIND_EXIT))
            else:
                self._book.on_exit_record(tid, _text(rec["comm"]))
                if rec["group_dead"]:
                    self._gone.append(tgid)
                if self._exe.is_dropped(tgid):
                    if rec["group_dead"]:
                        self._exe.on_group_exit(tgid)
                    continue
                run_kind = KIND_EXIT
            kept.append(self._keep_life(rec, run_kind))
        ts, kinds, tids, tgids, refs = zip(*kept, strict=True) if kept else ((),) * 5
        return Runs.build(tid=np.array(tids, np.uint32), tgid=np.array(tgids, np.uint32),
                          ts=np.array(ts, np.uint64), kind=np.array(kinds, np.uint8),
                          ref=np.array(refs, np.int64))

    def _keep_life(self, rec: np.void, run_kind: int) -> tuple[int, int, int, int, int]:
        """Hold a lifecycle record until its run is released; returns the run's columns."""
        ref = self._next_ref
        self._next_ref += 1
        self._life[ref] = rec
        return int(rec["ts"]), run_kind, int(rec["tid"]), int(rec["tgid"]), ref

    def _first_sight(self, tids: np.ndarray, tgids: np.ndarray) -> None:
        """Snapshot threads seen for the first time (and check new processes' executable)."""
        if not len(tids):
            return
        unique_tids, first = np.unique(tids, return_index=True)
        for tid, tgid in zip(unique_tids.tolist(), tgids[first].tolist(), strict=True):
            if self._book.knows(tid) or self._exe.is_dropped(tgid):
                continue
            if not self._book.knows_process(tgid) and not self._exe.check_new_process(tgid):
                continue
            if self._owned_elsewhere(tgid, self._book.owner(tgid)):
                self._drop_process(tgid)
                continue
            self._book.snapshot(tid, tgid)

    # -- draining --------------------------------------------------------------------
    def poll(self, timeout: float = 0.05) -> Drain:
        """What is safe to release now, in order. Waits up to `timeout` for a flush round;
        while rounds are idle (nothing tracked), up to the idle round period instead, so
        an idle watcher's loop slows down with its collector."""
        with self._cond:
            if self._rounds == self._polled_rounds and not self._stop.is_set():
                idle = self.round_interval > self.flush_interval
                self._cond.wait(max(timeout, self.round_interval) if idle else timeout)
            if self._error is not None:
                raise UserError(f"the collector stopped: {self._error}")
            self._polled_rounds = self._rounds
            segments = self._buffer.release(self._watermark)
            items = self._items(segments)
            if self._touched_gaps:
                items += self._touched_gaps
                self._touched_gaps = []
            return Drain(items=items, watermark_ns=self._watermark)

    def _items(self, segments: list[Segment]) -> list[DrainItem]:
        items: list[DrainItem] = []
        for seg in segments:
            if self._exe.is_dropped(seg.tgid):    # dropped after its runs were queued
                if seg.ref >= 0:
                    self._life.pop(seg.ref, None)
                continue
            if seg.kind == KIND_EXIT:
                rec = self._life.pop(seg.ref)
                if rec["group_dead"]:
                    self._exec_files.pop(seg.tgid, None)
                end = self._book.exit_item(seg.tid, seg.tgid, seg.ts, bool(rec["group_dead"]))
                if end is not None:
                    items.append(end)
                continue
            start = self._book.start_item(seg.tid, seg.tgid, seg.ts)
            if start is not None:
                items.append(start)
            if seg.kind == KIND_EVENTS:
                items.append(ThreadEvents(tid=seg.tid, pid=seg.tgid, ids=seg.ids, ts_ns=seg.ts,
                                          last_ts_ns=seg.end_ts))
            elif seg.kind == KIND_GAP:
                items.append(Gap(tid=seg.tid, pid=seg.tgid, lost=seg.lost, ts_ns=seg.ts))
            elif seg.kind == KIND_TOUCHED:
                items.append(self._with_exec_file(self._touched.pop(seg.ref)))
            elif seg.kind == KIND_EXEC:
                rec = self._life.pop(seg.ref)
                items.append(Exec(tid=seg.tid, pid=seg.tgid, filename=_text(rec["filename"]),
                                  comm=_text(rec["comm"]), ts_ns=seg.ts,
                                  target=self.targets.name_of(int(rec["target"]))
                                  or self._book.target_of(seg.tgid)))
                self._exec_files[seg.tgid] = items[-1].filename
        return items

    def _with_exec_file(self, item: Touched) -> Touched:
        """A successful exec whose file name was not paged in at enter: the kernel's name.

        The program's sched_process_exec record (released before it, as an Exec item)
        carries the name the kernel resolved.
        """
        if item.kind != "exec" or item.result != 0:
            return item
        filename = self._exec_files.pop(item.pid, None)
        if item.path or filename is None:
            return item
        return replace(item, path=filename, unreadable=False)

    def held(self) -> dict[str, int]:
        """Sizes of the per-thread state held now (bounded: freed as threads exit)."""
        with self._cond:
            return {**self._book.held(), "lifecycle_records": len(self._life),
                    "touched_records": len(self._touched), "sockets": len(self._sockets),
                    "exec_files": len(self._exec_files),
                    "pending_runs": len(self._buffer)}

    # -- statistics ------------------------------------------------------------------
    def stats(self) -> CollectorStats:
        if self._program is not None and not self._detached:
            try:
                self._counters = self._program.counters()
                self._touched_counters = self._program.touched_counters()
                self._misses = self._program.recursion_misses()
            except Exception:  # maps gone while closing: keep the last reading
                pass
        c, book = self._counters, self._book
        with self._cond:
            return CollectorStats(
                events=self._events, batches=self._batches,
                lost_events=c["lost_events"], lost_unattributed=c["unattributed_events"],
                lost_lifecycle=c["lost_lifecycle"], recursion_misses=self._misses,
                dropped_exe=self._exe.dropped_count, processes=len(book.live_processes),
                threads=len(book.live_threads), processes_seen=book.processes_seen,
                threads_seen=book.threads_seen, cpus_unvisited=len(self._unvisited_cpus),
                lost_owners=c["lost_owners"], targets=len(self.targets),
                dropped_cgroup=self._exe.dropped_cgroup + c["skipped_cgroup"],
                touched=self._touched_count, lost_touched=self._touched_counters["lost"],
                touched_repeats=self._touched_counters["repeats"],
            )
