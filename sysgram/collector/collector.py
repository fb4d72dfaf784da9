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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sysgram.collector import abi, procinfo
from sysgram.collector.decode import (
    KIND_EVENTS,
    KIND_EXEC,
    KIND_EXIT,
    KIND_GAP,
    Runs,
    decode_batches,
    decode_life,
    decode_losses,
)
from sysgram.collector.items import (
    CollectorStats,
    Drain,
    Exec,
    Gap,
    TargetSpec,
    ThreadEvents,
    ThreadExit,
    ThreadStart,
)
from sysgram.collector.ordering import ReorderBuffer, Segment
from sysgram.collector.program import Program
from sysgram.errors import UserError


@dataclass
class _Thread:
    pid: int
    start: ThreadStart | None = None     # snapshot; emitted before the thread's first item
    emitted: bool = False


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


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
    """Records the syscall ids of every thread of the processes named `target.comm`."""

    def __init__(self, target: TargetSpec, *, flush_interval: float = 0.02,
                 pid_limit: int | None = None) -> None:
        if not target.comm or len(target.comm.encode("utf-8", "surrogateescape")) > 15:
            raise UserError(f"'{target.comm}' is not a kernel process name (1-15 bytes).")
        self.target = target
        self.flush_interval = flush_interval
        self._pid_limit = pid_limit
        self._program: Program | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._go = threading.Event()
        self._first_round = threading.Event()
        self._cond = threading.Condition()
        self._error: BaseException | None = None
        self._cpus = online_cpus()
        # Filled by ring-buffer callbacks (flusher thread only).
        self._batch_blobs: list[bytes] = []
        self._loss_blobs: list[bytes] = []
        self._life_blobs: list[bytes] = []
        # Shared state, under self._cond.
        self._buffer = ReorderBuffer()
        self._watermark = 0
        self._rounds = 0
        self._polled_rounds = 0
        self._life: dict[int, np.void] = {}
        self._next_ref = 0
        self._threads: dict[int, _Thread] = {}
        self._exit_comm: dict[int, str] = {}
        self._parent: dict[int, int] = {}
        self._procs: dict[int, procinfo.ProcessInfo] = {}
        self._exec_info: dict[int, tuple[str, str]] = {}
        self._dropped: set[int] = set()
        self._undrop_after_round: list[int] = []
        self._requests: list[tuple[int, int]] = []
        self._hashes = procinfo.ExeHashes()
        self._live_threads: set[int] = set()
        self._live_procs: set[int] = set()
        self._seen_threads = 0
        self._procs_seen = 0
        self._unvisited_cpus: set[int] = set()
        self._events = 0
        self._batches = 0
        self._dropped_exe = 0
        self._counters = dict.fromkeys(abi.COUNTER_FIELDS, 0)
        self._misses = 0
        self._detached = False

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
        """Compile, load and attach the program, then seed it with the running targets."""
        self._program = Program(self.target.comm, pid_limit=self._pid_limit)
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
        self._program.configure(flusher_tid=tid_box[0], self_tgid=os.getpid())
        self._program.open_ring_buffers(self._batch_blobs.append, self._loss_blobs.append,
                                        self._life_blobs.append)
        self._seed()
        self._go.set()
        # The first round applies the seed marks: after it, the running targets are traced.
        self._first_round.wait(timeout=5.0)
        if self._error is not None:
            raise UserError(f"the collector failed while starting ({self._error}).")

    def _seed(self) -> None:
        for pid in procinfo.pids_with_comm(self.target.comm):
            if pid == os.getpid():
                continue
            if self.target.exe and not procinfo.same_executable(pid, self.target.exe):
                self._dropped_exe += 1
                continue
            self._requests.append((abi.REQ_MARK, pid))

    def stop(self) -> None:
        """Stop tracing after one last flush round; `poll` still returns what was held."""
        if self._thread is not None and self._thread.is_alive():
            self._stop.set()
            self._go.set()
            self._thread.join()
        if self._program is not None and not self._detached:
            self._counters = self._program.counters()
            self._misses = self._program.recursion_misses()
            self._program.close()
            self._detached = True

    def close(self) -> None:
        self.stop()
        self._program = None

    # -- flusher thread --------------------------------------------------------------
    def _flusher_loop(self) -> None:
        while True:
            started = time.monotonic()
            self._round()
            if self._stop.is_set():
                return
            self._stop.wait(max(0.0, self.flush_interval - (time.monotonic() - started)))

    def _round(self) -> None:
        program = self._program
        watermark = time.monotonic_ns()
        for cpu in self._cpus:
            try:
                os.sched_setaffinity(0, (cpu,))
            except OSError:   # a cpuset keeps us off this CPU: its batches wait until full
                self._unvisited_cpus.add(cpu)
                continue
            os.getppid()      # the program sees the flusher and hands this CPU's batch over
        self._apply_requests(program)
        program.consume()
        life, losses, batches = self._take_blobs()
        with self._cond:
            if life or losses or batches:
                self._ingest(life, losses, batches)
            self._watermark = watermark
            self._rounds += 1
            self._cond.notify_all()
        self._first_round.set()

    def _apply_requests(self, program: Program) -> None:
        if not self._requests and not program.requests_outstanding:
            return
        with self._cond:
            todo, self._requests = self._requests, []
        written = program.queue_requests(todo)
        if written < len(todo):
            with self._cond:
                self._requests[:0] = todo[written:]
        # Each flusher syscall applies up to 32 requests; a few more rounds finish the rest.
        for _ in range(8):
            if not program.requests_pending():
                break
            os.getppid()

    def _take_blobs(self) -> tuple[bytes, bytes, bytes]:
        life = b"".join(self._life_blobs)
        losses = b"".join(self._loss_blobs)
        batches = b"".join(self._batch_blobs)
        self._life_blobs.clear()
        self._loss_blobs.clear()
        self._batch_blobs.clear()
        return life, losses, batches

    def _ingest(self, life_blob: bytes, loss_blob: bytes, batch_blob: bytes) -> None:
        life_runs = self._ingest_life(decode_life(life_blob))
        gaps = decode_losses(loss_blob)
        runs, ids = decode_batches(batch_blob)
        self._batches += len(batch_blob) // abi.BATCH.itemsize
        self._snapshot_new_threads(np.concatenate([runs.tid, gaps.tid]),
                                   np.concatenate([runs.tgid, gaps.tgid]))
        if self._dropped:
            dropped = np.fromiter(self._dropped, np.uint32)
            runs = runs.take(np.flatnonzero(~np.isin(runs.tgid, dropped)))
            gaps = gaps.take(np.flatnonzero(~np.isin(gaps.tgid, dropped)))
        self._dropped.difference_update(self._undrop_after_round)
        self._undrop_after_round.clear()
        self._events += int(runs.length.sum())
        self._buffer.add(Runs.concat([life_runs, gaps]))
        self._buffer.add(runs, ids)

    def _ingest_life(self, records: np.ndarray) -> Runs:
        kept_ts, kept_kind, kept_tid, kept_tgid, kept_ref = [], [], [], [], []
        for rec in records:
            kind, tid, tgid = int(rec["kind"]), int(rec["tid"]), int(rec["tgid"])
            if kind == abi.LIFE_FORK:
                self._parent[int(rec["other"])] = tgid
                continue
            if kind == abi.LIFE_EXEC:
                self._exec_info[tgid] = (_text(rec["filename"]), _text(rec["comm"]))
                self._on_exec(tgid, _text(rec["comm"]), _text(rec["filename"]))
                if tgid in self._dropped:
                    continue
                self._snapshot(tid, tgid, refresh=True)
                run_kind = KIND_EXEC
            else:
                self._exit_comm[tid] = _text(rec["comm"])
                if tgid in self._dropped:
                    if rec["group_dead"]:     # forget it once this round's runs are filtered
                        self._undrop_after_round.append(tgid)
                    continue
                run_kind = KIND_EXIT
            ref = self._next_ref
            self._next_ref += 1
            self._life[ref] = rec
            kept_ts.append(int(rec["ts"]))
            kept_kind.append(run_kind)
            kept_tid.append(tid)
            kept_tgid.append(tgid)
            kept_ref.append(ref)
        return Runs.build(tid=np.array(kept_tid, np.uint32), tgid=np.array(kept_tgid, np.uint32),
                          ts=np.array(kept_ts, np.uint64), kind=np.array(kept_kind, np.uint8),
                          ref=np.array(kept_ref, np.int64))

    def _on_exec(self, tgid: int, comm: str, filename: str) -> None:
        """--exe: a process that execs into the name but runs another file is not a target."""
        if not self.target.exe or comm != self.target.comm:
            return
        if procinfo.same_executable(tgid, self.target.exe, fallback_path=filename):
            self._dropped.discard(tgid)
        else:
            self._drop(tgid)

    def _drop(self, tgid: int) -> None:
        if tgid not in self._dropped:
            self._dropped.add(tgid)
            self._dropped_exe += 1
            self._requests.append((abi.REQ_UNMARK, tgid))

    def _snapshot_new_threads(self, tids: np.ndarray, tgids: np.ndarray) -> None:
        if not len(tids):
            return
        unique_tids, first = np.unique(tids, return_index=True)
        for tid, tgid in zip(unique_tids.tolist(), tgids[first].tolist(), strict=True):
            if tid in self._threads or tgid in self._dropped:
                continue
            if (self.target.exe and tgid not in self._procs
                    and procinfo.read_comm(tgid) == self.target.comm
                    and not procinfo.same_executable(tgid, self.target.exe)):
                self._drop(tgid)
                continue
            self._snapshot(tid, tgid)

    def _snapshot(self, tid: int, tgid: int, refresh: bool = False) -> None:
        """What /proc says about a thread, taken as soon as the thread is first seen."""
        if tid in self._threads and not refresh:
            return
        proc = self._process(tgid, refresh)
        comm = procinfo.read_comm(tgid, tid) or self._exit_comm.get(tid) or proc.comm
        state = self._threads.get(tid) or _Thread(pid=tgid)
        if not state.emitted:
            state.start = ThreadStart(tid=tid, pid=tgid, ppid=proc.ppid, comm=comm,
                                      exe=proc.exe, exe_sha256=proc.exe_sha256, ts_ns=0)
        self._threads[tid] = state

    def _process(self, tgid: int, refresh: bool = False) -> procinfo.ProcessInfo:
        if refresh or tgid not in self._procs:
            if tgid not in self._procs:
                self._procs_seen += 1
            info = procinfo.process_info(tgid, self._hashes) or self._process_from_life(tgid)
            self._procs[tgid] = info
        return self._procs[tgid]

    def _process_from_life(self, tgid: int) -> procinfo.ProcessInfo:
        """A process already gone from /proc: what its fork and exec records said."""
        parent = self._parent.get(tgid)
        inherited = self._procs.get(parent) if parent is not None else None
        exec_rec = self._exec_info.get(tgid)
        if exec_rec is not None:
            filename, comm = exec_rec
            return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=comm, exe=filename,
                                        exe_sha256=self._hashes.of_path(filename))
        if inherited is not None:     # a forked child runs its parent's executable
            return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=inherited.comm,
                                        exe=inherited.exe, exe_sha256=inherited.exe_sha256)
        return procinfo.ProcessInfo(pid=tgid, ppid=parent, comm=None, exe=None, exe_sha256=None)

    # -- draining --------------------------------------------------------------------
    def poll(self, timeout: float = 0.05) -> Drain:
        """What is safe to release now (waits up to `timeout` for a flush round), in order."""
        with self._cond:
            if self._rounds == self._polled_rounds and not self._stop.is_set():
                self._cond.wait(timeout)
            if self._error is not None:
                raise UserError(f"the collector stopped: {self._error}")
            self._polled_rounds = self._rounds
            segments = self._buffer.release(self._watermark)
            return Drain(items=self._items(segments), watermark_ns=self._watermark)

    def _items(self, segments: list[Segment]) -> list:
        items: list = []
        for seg in segments:
            state = self._threads.get(seg.tid)
            if seg.kind == KIND_EXIT:
                self._on_exit_released(seg, state, items)
                continue
            if state is None:       # a thread that was never snapshotted (gone at once)
                state = _Thread(pid=seg.tgid)
                self._threads[seg.tid] = state
            if not state.emitted:
                items.append(self._start_item(seg, state))
            if seg.kind == KIND_EVENTS:
                items.append(ThreadEvents(tid=seg.tid, pid=seg.tgid, ids=seg.ids, ts_ns=seg.ts))
            elif seg.kind == KIND_GAP:
                items.append(Gap(tid=seg.tid, pid=seg.tgid, lost=seg.lost, ts_ns=seg.ts))
            elif seg.kind == KIND_EXEC:
                rec = self._life.pop(seg.ref)
                items.append(Exec(tid=seg.tid, pid=seg.tgid, filename=_text(rec["filename"]),
                                  comm=_text(rec["comm"]), ts_ns=seg.ts))
        return items

    def _start_item(self, seg: Segment, state: _Thread) -> ThreadStart:
        snap = state.start
        if snap is None:
            snap = ThreadStart(tid=seg.tid, pid=seg.tgid, ppid=self._parent.get(seg.tgid),
                               comm=self._exit_comm.get(seg.tid), exe=None, exe_sha256=None,
                               ts_ns=0)
        start = ThreadStart(tid=snap.tid, pid=snap.pid, ppid=snap.ppid, comm=snap.comm,
                            exe=snap.exe, exe_sha256=snap.exe_sha256, ts_ns=seg.ts)
        state.emitted = True
        state.start = None
        self._live_threads.add(seg.tid)
        self._live_procs.add(seg.tgid)
        self._seen_threads += 1
        return start

    def _on_exit_released(self, seg: Segment, state: _Thread | None, items: list) -> None:
        rec = self._life.pop(seg.ref)
        group_dead = bool(rec["group_dead"])
        if state is not None and state.emitted:
            items.append(ThreadExit(tid=seg.tid, pid=seg.tgid, ts_ns=seg.ts,
                                    group_dead=group_dead))
        # Free per-thread state: memory stays bounded however many threads come and go.
        self._threads.pop(seg.tid, None)
        self._exit_comm.pop(seg.tid, None)
        self._live_threads.discard(seg.tid)
        if seg.tid != seg.tgid:
            self._parent.pop(seg.tid, None)   # fork records name threads as children too
        if group_dead:
            self._live_procs.discard(seg.tgid)
            self._parent.pop(seg.tgid, None)
            self._procs.pop(seg.tgid, None)
            self._exec_info.pop(seg.tgid, None)

    # -- statistics ------------------------------------------------------------------
    def stats(self) -> CollectorStats:
        if self._program is not None and not self._detached:
            try:
                self._counters = self._program.counters()
                self._misses = self._program.recursion_misses()
            except Exception:  # maps gone while closing: keep the last reading
                pass
        c = self._counters
        with self._cond:
            return CollectorStats(
                events=self._events, batches=self._batches,
                lost_events=c["lost_events"], lost_unattributed=c["unattributed_events"],
                lost_lifecycle=c["lost_lifecycle"], recursion_misses=self._misses,
                dropped_exe=self._dropped_exe, processes=len(self._live_procs),
                threads=len(self._live_threads), processes_seen=self._procs_seen,
                cpus_unvisited=len(self._unvisited_cpus),
                threads_seen=self._seen_threads,
            )
