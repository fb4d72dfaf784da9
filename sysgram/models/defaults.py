"""Defaults shared by `train`, `Profile()` and `eval`: what sysgram uses unless told otherwise.

Set by the detector research on ADFA-LD (docs/evaluation.md; every variant tried is in
the "Detectors on ADFA-LD" table of benchmarks/README.md).

Two jobs, two profiles of the same threads:
- **Windows** (live alerts, `watch`): a detector fast enough for >= 60 k windows/s scores
  every window of DEFAULT_WINDOW calls, DEFAULT_STRIDE apart. The default (`lm-stream`)
  also keeps a model of whole streams, and its "running" roll-up judges each thread's
  stream so far as the live verdicts do: one detector path for windows and threads.
- **Threads** (one score per thread stream: `eval`, per-thread verdicts): the research
  found that learning and scoring *whole* streams beats any roll-up of window scores by
  far (AUC 0.89 against 0.81 for the max over 64-call windows on ADFA-LD), so the thread
  profile sees each stream as one window (STREAM_WINDOW calls, longer streams are cut)
  and scores it whole with THREAD_DETECTOR. `thread_profile_params()` gives the
  `Profile(**params)` for it.
"""

DEFAULT_DETECTOR = "lm-stream"
DEFAULT_WINDOW = 64
DEFAULT_STRIDE = 16
DEFAULT_ORDERS = (1, 2, 3)
DEFAULT_ROLLUP = "running"

# A running stream (a long-lived thread) is judged whole once it holds this many calls,
# and again as it grows; shorter streams are judged at their end (short prefixes are
# noisy). The live verdicts and the "running" roll-up `eval` measures both use it.
RUNNING_CHECK_CALLS = 1024

# A detector learns a separate model of whole streams only from at least this many
# training streams (out-of-fold scores of 50 calibrate a thread threshold); with fewer,
# streams are judged by a model of windows.
MIN_STREAMS = 50

# The alert's novelty bar (models/policy.py): a window (or stream) that scores above the
# threshold alerts when it holds at least this many distinct minimal unseen n-grams (a
# new call, a new transition between known calls, ...: features/ngrams.novel_events), or
# one new call of DECISIVE_SYSCALLS. One unseen transition between calls the binary
# makes all the time is what a short training leaves unseen on every busy server (the
# suite's false alarms: `write -> setsockopt` in nginx, `read -> accept4` in Apache);
# an attack does several new things at once.
MIN_NOVEL_EVENTS = 2

# Calls whose place in a thread's order is timing, not behaviour: a signal handler runs
# wherever the signal lands and returns through `rt_sigreturn`; a `futex` wait or wake
# appears between two calls only when another thread held the lock just then. Unseen
# n-grams across them say when, not what (the suite's bash, sh and sshd false alarms were
# SIGCHLD and SIGALRM handlers landing between new neighbours; memcached's, lock
# contention between its worker's reads and sends). A `brk` is malloc growing the heap:
# it comes when the allocations so far cross a boundary, which the sizes of the data
# decide, not the program's logic (run E's sshd false alarms: `ps` growing its heap one
# /proc file later than in training). `mmap` and `munmap` are the same allocator for big
# blocks and for a thread's own arena: a worker thread's first requests map memory its
# later ones reuse (Apache's `newfstatat, mmap, mmap` on a thread's first static file,
# the CI scenario's false alarm). Not `mprotect`: making memory executable is an
# exploit's step. What a mapped file is, the touched sets judge by its path. A
# `rt_sigprocmask` blocks or unblocks signals around what a handler must not interrupt;
# a shell does it around its job table, and whether it does so again depends on which
# children exited while it worked (run s13's sshd false alarms, all on the `bash` of a
# login: `rt_sigprocmask, rt_sigprocmask, wait4`, `rt_sigprocmask, close, exit_group`).
SPLICING_SYSCALLS = ("rt_sigreturn", "sigreturn", "futex", "brk", "mmap", "mmap2", "munmap",
                     "rt_sigprocmask", "sigprocmask")

# An event loop's wait (`epoll_wait`, `poll`, `select`, ...) returns whatever became
# ready at once, and the handlers run in turn. The call *before* a wait is whichever
# handler happened to run last, and it ends by one of many paths (a write, a close, a
# keep-alive, an EAGAIN): n-grams that reach a wait after their first call say which
# clients' events coincided, not what the program does (the suite's nginx
# `accept4 -> epoll_wait` and Apache listener `accept4, epoll_wait, read` false alarms).
# What a loop does *first* on waking (`epoll_wait -> socket`: a listener that connects
# out before it accepts) is still counted, as is every order between two waits and a
# wait call the binary never made.
EVENT_WAIT_SYSCALLS = ("epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
                       "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64")

# The calls with which glibc starts and ends a thread: the creator blocks signals around
# `clone3`, the new thread registers `rseq` and its robust list, an ending thread blocks
# signals, gives its stack back with `madvise` and calls `exit`. A binary that ran several
# threads in one process while training has shown it starts threads, even when training
# caught none starting (a database's pool already full: the suite's MariaDB false alarms
# were its pool growing and shrinking). For such a binary these calls, and n-grams made
# only of them, are not novel; what a new thread goes on to do still is.
THREAD_LIFECYCLE_SYSCALLS = (
    "clone", "clone3", "exit", "rseq", "set_robust_list", "rt_sigprocmask", "madvise",
)

# Calls that change what a process is, whom it talks to or what it may do: one of them,
# new to the binary, is evidence enough on its own (as Falco's and Tetragon's default
# rules single out exec, outbound connects, module loads and privilege changes).
DECISIVE_SYSCALLS = (
    "execve", "execveat",                                   # another program
    # A new network role; not accept: a listening server may accept nothing while it
    # trains on pooled connections, and a bind shell has bound and listened first.
    "connect", "bind", "listen",
    "ptrace", "process_vm_writev", "process_vm_readv",      # another process's memory
    "memfd_create", "init_module", "finit_module",          # code from nowhere on disk
    "kexec_load", "kexec_file_load", "bpf",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "capset",
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
)

# Thread streams: the detector, and the "window" that makes a stream one sequence.
THREAD_DETECTOR = "presence-lm"
THREAD_ROLLUP = "whole"
STREAM_WINDOW = 1 << 20

# Extra detectors the registry loads lazily: name -> "module:Class".
EXTRA_DETECTORS: dict[str, str] = {
    "lm-stream": "sysgram.models.lm_stream:LMStreamDetector",
    "presence-lm": "sysgram.models.ensemble:PresenceLM",
    "presence": "sysgram.models.presence:PresenceOCSVM",
    "ngram-lm": "sysgram.models.ngram_lm:NgramLanguageModel",
}

# Extra thread roll-ups: name -> "module:function".
EXTRA_ROLLUPS: dict[str, str] = {}


def thread_profile_params(detector: str | None = None) -> dict:
    """`Profile(**thread_profile_params())`: the profile that scores whole thread streams."""
    return {
        "detector": detector or THREAD_DETECTOR,
        "window": STREAM_WINDOW,
        "stride": STREAM_WINDOW,
        "rollup": THREAD_ROLLUP,
    }
