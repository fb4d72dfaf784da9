"""The loaded kernel program: compile, configure, mark requests, ring buffers, counters.

bcc attaches RAW_TRACEPOINT_PROBE / TRACEPOINT_PROBE functions as it loads them. That is
safe here: until the config map is written the program tracks nothing (empty bitmap, no
target comm); target comms are added to and removed from the `targets` map while it runs.
After that the bitmap is changed only by the kernel: user space queues
mark/unmark requests that the program applies on the flusher thread's next syscall, so
no read-modify-write from user space can race with a fork or exec.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable

import numpy as np

from sysgram.bpf.loader import compile_program
from sysgram.bpf.sizes import pid_max
from sysgram.collector import abi

RingCallback = Callable[[bytes], None]

# The syscall-exit tracepoints touched.bpf.c attaches (a held call's result is read there).
RESULT_TRACEPOINTS = (b"sys_exit_execve", b"sys_exit_execveat", b"sys_exit_connect",
                      b"sys_exit_accept", b"sys_exit_accept4", b"sys_exit_socket")

_PROG_INFO_SIZE = 232          # sizeof(struct bpf_prog_info) in the uapi this was written for
_RECURSION_MISSES_OFFSET = 208
_BPF_OBJ_GET_INFO_BY_FD = 15


class Program:
    """sysgram.bpf.c, loaded and attached, with typed access to its maps."""

    def __init__(self, *, pid_limit: int | None = None,
                 rings: abi.RingPages | None = None) -> None:
        self.pid_limit = pid_limit or pid_max()
        self.bpf = compile_program(self.pid_limit, rings)
        self._requests_written = 0
        self._known_done = 0
        self._bpf_nr = _bpf_syscall_number()

    # -- configuration ---------------------------------------------------------------
    def configure(self, *, flusher_tid: int, self_tgid: int,
                  cgroup: tuple[int, int] = (0, 0), open_repeat_ns: int = 0) -> None:
        """Mark the collector's own process and start applying requests.

        `cgroup` is (id, level) of the cgroup v2 subtree execs must be in to become
        targets ((0, 0): anywhere). An open a thread repeats within `open_repeat_ns` of
        the last one handed over is folded and counted (0: every open handed over).
        """
        # Config first: once our bit is set, our syscalls must already be recognised as ours.
        self._flusher_tid = flusher_tid
        self._self_tgid = self_tgid
        self._cgroup = cgroup
        self._open_repeat_ns = open_repeat_ns
        self._write_config()
        word = self_tgid >> 6
        self.bpf[b"tracked"][ctypes.c_int(word)] = ctypes.c_uint64(1 << (self_tgid & 63))

    def _write_config(self) -> None:
        table = self.bpf[b"config"]
        leaf = table.Leaf()
        leaf.flusher_tid = self._flusher_tid
        leaf.self_tgid = self._self_tgid
        leaf.flags = 0
        leaf.req_count = self._requests_written
        leaf.cgroup_id, leaf.cgroup_level = self._cgroup
        leaf.open_repeat_ns = self._open_repeat_ns
        table[ctypes.c_int(0)] = leaf

    # -- targets: comm -> target id (a process execing into the comm becomes that target) --
    def _comm_key(self, comm: str):
        key = self.bpf[b"targets"].Key()
        key.comm = comm.encode("utf-8", "surrogateescape")[: abi.COMM_LEN - 1]
        return key

    def set_target(self, comm: str, target_id: int) -> None:
        self.bpf[b"targets"][self._comm_key(comm)] = ctypes.c_uint32(target_id)

    def clear_target(self, comm: str) -> None:
        with contextlib.suppress(KeyError):    # never set, or already gone
            del self.bpf[b"targets"][self._comm_key(comm)]

    def owner_of(self, pid: int) -> int:
        """The target id the kernel holds for a tracked pid (0: none)."""
        try:
            return int(self.bpf[b"owners"][ctypes.c_uint32(pid)].value)
        except KeyError:
            return 0

    # -- mark / unmark requests (applied by the kernel on the flusher's syscalls) -------
    def requests_done(self) -> int:
        return int(self.bpf[b"state"][ctypes.c_int(0)].req_done)

    def queue_requests(self, requests: list[tuple[int, int, int]]) -> int:
        """Write (op, pid, target id) requests; returns how many fitted (the rest wait)."""
        room = abi.MAX_REQUESTS - (self._requests_written - self.requests_done())
        todo = requests[: max(0, room)]
        table = self.bpf[b"requests"]
        for op, pid, target in todo:
            slot = self._requests_written % abi.MAX_REQUESTS
            table[ctypes.c_int(slot)] = ctypes.c_uint64(abi.request_word(op, pid, target))
            self._requests_written += 1
        if todo:
            self._write_config()
        return len(todo)

    def requests_pending(self) -> int:
        self._known_done = self.requests_done()
        return self._requests_written - self._known_done

    @property
    def requests_outstanding(self) -> bool:
        """Whether requests may still be unapplied (without asking the kernel)."""
        return self._requests_written > self._known_done

    def tracks_anything(self) -> bool:
        """Whether the kernel holds a target id for any process or thread (one lookup)."""
        try:
            self.bpf[b"owners"].next(None)
        except StopIteration:
            return False
        return True

    def is_marked(self, pid: int) -> bool:
        value = self.bpf[b"tracked"][ctypes.c_int(pid >> 6)].value
        return bool(value & (1 << (pid & 63)))

    # -- the syscall hook (benchmarks measure its cost by taking it off and on) ----------
    def set_syscall_hook(self, attached: bool) -> None:
        """Attach or detach the sys_enter program; fork/exec/exit tracking stays on.

        While detached nothing is recorded and partial batches wait; runs released across
        a detach may leave per-thread order to chance, so only benchmarks use this.
        """
        fds = self.bpf.raw_tracepoint_fds
        if attached and b"sys_enter" not in fds:
            self.bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"raw_tracepoint__sys_enter")
        elif not attached and b"sys_enter" in fds:
            self.bpf.detach_raw_tracepoint(tp=b"sys_enter")

    def set_result_hooks(self, attached: bool) -> None:
        """Attach or detach the syscalls:sys_exit_* programs that read a held call's result.

        Any program on a syscall-exit tracepoint makes *every* syscall of the host pass the
        kernel's exit-side probe, whichever call it is for; benchmarks take these off to
        measure that share. Held calls get no record while they are off.
        """
        fds = self.bpf.tracepoint_fds
        for tp in RESULT_TRACEPOINTS:
            name = b"syscalls:" + tp
            if attached and name not in fds:
                self.bpf.attach_tracepoint(tp=name, fn_name=b"tracepoint__syscalls__" + tp)
            elif not attached and name in fds:
                self.bpf.detach_tracepoint(tp=name)

    # -- delivery --------------------------------------------------------------------
    def open_ring_buffers(self, on_batch: RingCallback, on_loss: RingCallback,
                          on_life: RingCallback, on_touched: RingCallback | None = None) -> None:
        def wrap(sink: RingCallback, record_size: int):
            def callback(_ctx, data, size):
                record = ctypes.string_at(data, size)
                if size < record_size:
                    # A partial batch comes without its unused id slots: pad it back to
                    # the fixed layout so one numpy view decodes every record.
                    record += bytes(record_size - size)
                sink(record)
                return 0
            return callback

        # Keep references: bcc holds only a ctypes pointer to each callback.
        self._callbacks = (wrap(on_batch, abi.BATCH.itemsize), wrap(on_loss, abi.LOSS.itemsize),
                           wrap(on_life, abi.LIFE.itemsize))
        self.bpf[b"events"].open_ring_buffer(self._callbacks[0])
        self.bpf[b"losses"].open_ring_buffer(self._callbacks[1])
        self.bpf[b"life"].open_ring_buffer(self._callbacks[2])
        if on_touched is not None:
            # Touched records differ in size by kind: handed over as they are.
            def touched(_ctx, data, size):
                on_touched(ctypes.string_at(data, size))
                return 0

            self._callbacks += (touched,)
            self.bpf[b"touched"].open_ring_buffer(touched)

    def consume(self) -> None:
        """Read everything the ring buffers hold now (never blocks)."""
        self.bpf.ring_buffer_consume()

    # -- counters --------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        per_cpu = self.bpf[b"counters"][ctypes.c_int(0)]
        return {f: int(sum(getattr(c, f) for c in per_cpu)) for f in abi.COUNTER_FIELDS}

    def touched_counters(self) -> dict[str, int]:
        """Touched records handed over, lost, lost with no thread to charge them to, and
        repeated opens folded."""
        per_cpu = self.bpf[b"touch_counters"][ctypes.c_int(0)]
        return {f: int(sum(getattr(c, f) for c in per_cpu))
                for f in ("records", "lost", "lost_unattributed", "repeats")}

    def take_touched_losses(self) -> list[tuple[int, int, int]]:
        """(tid, tgid, lost) of each thread that lost touched records since the last call."""
        table = self.bpf[b"touch_lost"]
        out = []
        for key, value in list(table.items()):
            table.__delitem__(key)
            out.append((key.value & 0xFFFFFFFF, key.value >> 32, int(value.value)))
        return out

    def recursion_misses(self) -> int:
        """Program runs the kernel skipped because the program was already running on a CPU."""
        total = 0
        for fn in self.bpf.funcs.values():
            total += _prog_recursion_misses(fn.fd, self._bpf_nr)
        return total

    def close(self) -> None:
        self.bpf.cleanup()


def _bpf_syscall_number() -> int | None:
    try:
        from sysgram.syscalls import table

        return table().number("bpf")
    except Exception:  # no table: recursion misses are simply not read
        return None


class _InfoAttr(ctypes.Structure):
    """The `info` member of union bpf_attr (BPF_OBJ_GET_INFO_BY_FD)."""

    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


_LIBC = ctypes.CDLL(None, use_errno=True)


def _prog_recursion_misses(prog_fd: int, bpf_nr: int | None) -> int:
    if bpf_nr is None:
        return 0
    buf = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    attr = _InfoAttr(prog_fd, _PROG_INFO_SIZE, ctypes.addressof(buf))
    rc = _LIBC.syscall(bpf_nr, _BPF_OBJ_GET_INFO_BY_FD, ctypes.byref(attr), ctypes.sizeof(attr))
    if rc != 0 or attr.info_len < _RECURSION_MISSES_OFFSET + 8:
        return 0
    return int(np.frombuffer(buf.raw, dtype="<u8", count=1, offset=_RECURSION_MISSES_OFFSET)[0])

