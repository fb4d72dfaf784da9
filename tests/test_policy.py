"""The alert policy's novelty bar: minimal unseen n-grams counted once, decisive calls."""

import numpy as np

from sysgram.features import NgramVocabulary, Sequences
from sysgram.models.policy import AlertPolicy, Novelty, decisive_syscalls
from sysgram.syscalls import table

NR = table("x86_64")
READ, WRITE, CLOSE, OPENAT, POLL = (NR.number(n) for n in ("read", "write", "close", "openat",
                                                           "epoll_wait"))
GETRUSAGE, EXECVE = NR.number("getrusage"), NR.number("execve")

# Training: a cycle over five calls, so every pair and triple it holds is known.
CYCLE = [POLL, READ, OPENAT, READ, CLOSE, WRITE]
VOCAB = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(CYCLE * 50)]))


def events(calls: list[int]) -> int:
    return int(VOCAB.novel_events(Sequences.from_list([np.array(calls)]))[0][0])


def test_known_windows_hold_no_event():
    assert events(CYCLE * 3) == 0


def test_one_new_transition_is_one_event_however_many_ngrams_it_makes_unseen():
    # WRITE -> READ never happened: the pair, and the triples around it, are unseen.
    assert events([CLOSE, WRITE, READ, OPENAT, READ]) == 1


def test_one_new_call_is_one_event_not_also_its_unseen_pairs():
    assert events([POLL, READ, GETRUSAGE, OPENAT, READ]) == 1
    assert events([POLL, READ, GETRUSAGE, OPENAT, GETRUSAGE, READ]) == 1  # distinct, once


def test_a_new_order_of_known_transitions_is_an_event_of_its_own():
    # POLL -> READ and READ -> CLOSE are known pairs, POLL, READ, CLOSE never happened.
    assert events([POLL, READ, CLOSE]) == 1
    assert events([POLL, READ, CLOSE, WRITE, READ, OPENAT, GETRUSAGE]) == 3


class _Profile:
    threshold_, thread_threshold_, require_novelty, arch_ = 0.0, None, True, "x86_64"

    def novelty(self, seqs):
        counts, rows, calls = VOCAB.novel_events(seqs)
        decisive = np.zeros(len(seqs), dtype=bool)
        decisive[rows[np.isin(calls, decisive_syscalls(self.arch_))]] = True
        return Novelty(counts, decisive)


def test_above_the_threshold_an_alert_needs_two_events_or_one_decisive_call():
    windows = Sequences.from_list([np.array(w) for w in (
        CYCLE * 2,                                          # nothing new
        [CLOSE, WRITE, READ, OPENAT, READ],                 # one new transition
        [POLL, READ, GETRUSAGE, CLOSE, WRITE, READ],        # a new call and a transition
        [POLL, READ, EXECVE, OPENAT, READ, CLOSE],          # a new decisive call alone
    )])
    policy = AlertPolicy(threshold=0.0)
    verdicts = policy.classify(_Profile(), np.ones(len(windows)), windows)
    assert verdicts.anomalous.tolist() == [False, False, True, True]
    assert verdicts.above.all()
    below = policy.classify(_Profile(), -np.ones(len(windows)), windows)
    assert not below.anomalous.any()  # the bar only ever narrows the threshold's verdict
    # Only what holds nothing unseen is learned, below the threshold.
    assert policy.learnable(_Profile(), below, windows).tolist() == [0]


def test_the_decisive_calls_exist_in_the_table():
    found = set(NR.names(decisive_syscalls("x86_64")))
    assert {"execve", "connect", "ptrace", "memfd_create", "setuid"} <= found


SIGRETURN, FUTEX = NR.number("rt_sigreturn"), NR.number("futex")
SPLICED = np.array([SIGRETURN, FUTEX])


def test_ngrams_across_a_signal_return_or_a_futex_are_timing_not_events():
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list(
        [np.array(CYCLE * 50 + [WRITE, SIGRETURN, POLL, FUTEX, POLL] * 3)]))
    # A handler that returned, and a lock that was contended, between new neighbours.
    window = Sequences.from_list([np.array([POLL, READ, SIGRETURN, OPENAT, FUTEX, CLOSE])])
    assert vocab.novel_events(window)[0][0] == 4       # counted without the rule
    assert vocab.novel_events(window, spliced=SPLICED)[0][0] == 0
    # What the program does between them still counts: WRITE -> READ is its own order.
    window = Sequences.from_list([np.array([CLOSE, WRITE, READ, SIGRETURN, OPENAT])])
    assert vocab.novel_events(window, spliced=SPLICED)[0][0] == 1
    # A call never seen is an event even when it is one of them.
    fresh = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(CYCLE * 50)]))
    window = Sequences.from_list([np.array([POLL, READ, SIGRETURN, OPENAT, READ])])
    assert fresh.novel_events(window, spliced=SPLICED)[0][0] == 1


def test_heap_growth_between_known_calls_is_timing_not_an_event():
    """Run E's sshd false alarms: `ps` grew its heap (`brk`) after reading one more /proc
    file than in training, so `read, close, brk` and `brk, openat, read` were unseen. When
    malloc asks for more heap depends on how much was allocated, not on what the program
    does."""
    from sysgram.models.policy import splicing_syscalls

    brk = NR.number("brk")
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list(
        [np.array([brk, POLL] + CYCLE * 50 + [brk, WRITE])]))
    window = Sequences.from_list([np.array([POLL, READ, OPENAT, READ, CLOSE, brk, OPENAT, READ])])
    assert vocab.novel_events(window, spliced=SPLICED)[0][0] == 2    # without brk: an alert
    assert vocab.novel_events(window, spliced=splicing_syscalls("x86_64"))[0][0] == 0
    # A program that never grew its heap in training: the new call itself is an event.
    fresh = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(CYCLE * 50)]))
    assert fresh.novel_events(window, spliced=splicing_syscalls("x86_64"))[0][0] == 1


def test_a_threads_first_memory_maps_between_known_calls_are_timing_not_events():
    """The CI scenario's Apache false alarm: a worker thread's first static file came with
    the allocator mapping memory (`newfstatat, mmap, mmap, mmap, writev`), which training
    had seen only twice, never after `newfstatat`; the thread's later requests reuse the
    memory and go `openat, mmap, writev, munmap, write`. A new mapping call, and what a
    thread does between its known calls, still count."""
    from sysgram.models.policy import splicing_syscalls

    mmap, munmap, writev, fstat = (NR.number(n) for n in ("mmap", "munmap", "writev",
                                                          "newfstatat"))
    serve_file = [POLL, READ, fstat, OPENAT, fstat, OPENAT, mmap, writev, munmap, WRITE, CLOSE]
    serve_small = [POLL, READ, writev, WRITE, CLOSE]
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list(
        [np.array((serve_file + serve_small) * 30)]))
    first = Sequences.from_list([np.array([POLL, READ, fstat, OPENAT, fstat, mmap, mmap,
                                           mmap, writev, WRITE, CLOSE])])
    assert vocab.novel_events(first, spliced=SPLICED)[0][0] >= 2    # without: an alert
    assert vocab.novel_events(first, spliced=splicing_syscalls("x86_64"))[0][0] == 0
    # A new transition between known calls elsewhere in the window still counts...
    odd = Sequences.from_list([np.array([POLL, READ, fstat, OPENAT, fstat, OPENAT, mmap,
                                         writev, munmap, WRITE, READ, CLOSE, OPENAT])])
    assert vocab.novel_events(odd, spliced=splicing_syscalls("x86_64"))[0][0] >= 2
    # ...and so does a mapping call the binary never made in training.
    plain = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(CYCLE * 50)]))
    window = Sequences.from_list([np.array([POLL, READ, mmap, OPENAT, READ])])
    assert plain.novel_events(window, spliced=splicing_syscalls("x86_64"))[0][0] == 1


RT_SIGPROCMASK, MADVISE, EXIT, CLONE3 = (NR.number(n) for n in (
    "rt_sigprocmask", "madvise", "exit", "clone3"))
LIFECYCLE = np.array([RT_SIGPROCMASK, MADVISE, EXIT, CLONE3])


def test_a_threads_start_and_exit_are_known_as_an_idiom_but_what_meets_them_is_not():
    # MariaDB's pool, as the suite saw it: a worker wakes from its futex and ends; the
    # creator blocks signals around clone3. Training saw neither, only the futex waits.
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list(
        [np.array(CYCLE * 50 + [READ, FUTEX, POLL] * 3)]))
    ending = Sequences.from_list([np.array([POLL, READ, FUTEX, RT_SIGPROCMASK, MADVISE, EXIT])])
    creating = Sequences.from_list([np.array([POLL, READ, FUTEX, RT_SIGPROCMASK, CLONE3,
                                              RT_SIGPROCMASK, FUTEX, POLL])])
    for window in (ending, creating):
        assert vocab.novel_events(window, spliced=SPLICED)[0][0] >= 2  # an alert without
        assert vocab.novel_events(window, spliced=SPLICED, idiom=LIFECYCLE)[0][0] == 0
    # Next to the program's own calls an idiom call is a new transition (READ ->
    # rt_sigprocmask), and a new call is still one (getrusage): an alert's two events.
    window = Sequences.from_list([np.array([POLL, READ, RT_SIGPROCMASK, GETRUSAGE, EXIT])])
    assert vocab.novel_events(window, spliced=SPLICED, idiom=LIFECYCLE)[0][0] == 2


ACCEPT4 = NR.number("accept4")


def test_a_known_call_repeated_back_to_back_is_pace_not_an_event():
    # Apache's listener under a loaded CPU (the CI test's false alarm): an epoll_wait that
    # timed out and waited again, then the accept4 it always makes after one.
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list(
        [np.array(CYCLE * 50 + [POLL, ACCEPT4, READ] * 3)]))
    assert vocab.novel_events(Sequences.from_list([np.array(
        [READ, CLOSE, WRITE, POLL, POLL, ACCEPT4, READ])]))[0][0] == 0
    # What meets the repeat is still judged: WRITE -> WRITE is pace, WRITE -> ACCEPT4 new.
    assert vocab.novel_events(Sequences.from_list([np.array(
        [CLOSE, WRITE, WRITE, ACCEPT4, READ])]))[0][0] == 1
    # A new call repeated is one new call, and its repeat nothing more.
    assert vocab.novel_events(Sequences.from_list([np.array(
        [POLL, READ, GETRUSAGE, GETRUSAGE, OPENAT])]))[0][0] == 1


def test_what_reaches_an_event_wait_is_which_events_coincided_not_an_event():
    """The suite's event-loop false alarms: nginx's `accept4 -> epoll_wait` and Apache's
    listener reading a closing connection before its next wait. The call before a wait is
    whichever handler ran last. What a loop does first on waking, and the order of the
    calls between two waits, still count."""
    from sysgram.models.policy import event_wait_syscalls

    waits = event_wait_syscalls("x86_64")
    epoll, accept4 = NR.number("epoll_wait"), ACCEPT4
    loop = [epoll, accept4, READ, WRITE, CLOSE, epoll, READ, WRITE, CLOSE]
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(loop * 40)]))
    coincided = Sequences.from_list([np.array(
        [CLOSE, epoll, READ, WRITE, epoll, accept4, epoll, READ, WRITE, CLOSE])])
    assert vocab.novel_events(coincided, spliced=SPLICED)[0][0] >= 2      # an alert without
    assert vocab.novel_events(coincided, spliced=SPLICED, waits=waits)[0][0] == 0
    # Inside one handler, between two waits: READ -> CLOSE and CLOSE -> WRITE are new.
    handler = Sequences.from_list([np.array([epoll, READ, CLOSE, WRITE, epoll])])
    assert vocab.novel_events(handler, spliced=SPLICED, waits=waits)[0][0] == 2
    # On waking: a loop that writes before it reads or accepts (epoll -> WRITE), and then
    # reads what it never read after a write (WRITE -> READ).
    woken = Sequences.from_list([np.array([CLOSE, epoll, WRITE, READ, WRITE, CLOSE])])
    assert vocab.novel_events(woken, spliced=SPLICED, waits=waits)[0][0] == 2


def test_a_profile_weighs_novelty_with_the_splicing_and_wait_rules():
    """Profile.novelty is what watch, score and eval call: the rules reach it."""
    from sysgram.datasets.trace import ThreadTrace
    from sysgram.models.profile import Profile
    from sysgram.models.training import train_profile

    epoll, accept4, mmap = NR.number("epoll_wait"), ACCEPT4, NR.number("mmap")
    loop = [epoll, accept4, READ, WRITE, CLOSE, epoll, READ, OPENAT, mmap, WRITE, CLOSE]
    threads = [ThreadTrace(tid=tid, pid=tid, comm="server", start_ns=1, end_ns=2,
                           ids=np.array(loop * 300, dtype=np.uint16), arch="x86_64")
               for tid in (10, 11)]
    profile = train_profile("server", threads,
                            Profile(detector="ngram-lm", arch="x86_64")).profile
    benign = Sequences.from_list([np.array(
        [CLOSE, epoll, accept4, READ, WRITE, epoll, READ, mmap, WRITE, CLOSE])])
    # WRITE -> epoll_wait reaches a wait, READ -> mmap maps memory: neither is an event.
    assert profile.novelty(benign).events.tolist() == [0]
    odd = Sequences.from_list([np.array([epoll, READ, CLOSE, WRITE, OPENAT, epoll])])
    assert profile.novelty(odd).events.tolist() == [3]


def test_a_shells_signal_masks_between_known_calls_are_timing_not_events():
    """Run s13's sshd false alarms, on a login's bash: it blocks SIGCHLD around its job
    table, and where those blocks fall depends on which children exited while it worked
    (`rt_sigprocmask, rt_sigprocmask, wait4`, `rt_sigprocmask, close, exit_group`)."""
    from sysgram.models.policy import splicing_syscalls

    mask, wait4, exit_group = (NR.number(n) for n in ("rt_sigprocmask", "wait4", "exit_group"))
    job = [READ, mask, WRITE, mask, wait4, CLOSE, mask, exit_group]
    vocab = NgramVocabulary((1, 2, 3)).fit(Sequences.from_list([np.array(job * 40)]))
    late = Sequences.from_list([np.array([READ, mask, WRITE, mask, CLOSE, mask, wait4, CLOSE,
                                          mask, exit_group])])
    assert vocab.novel_events(late, spliced=SPLICED)[0][0] >= 2      # an alert without
    assert vocab.novel_events(late, spliced=splicing_syscalls("x86_64"))[0][0] == 0
    # What the shell does between its masks still counts: WRITE -> CLOSE, CLOSE -> READ.
    odd = Sequences.from_list([np.array([READ, mask, WRITE, CLOSE, READ, mask, wait4])])
    assert vocab.novel_events(odd, spliced=splicing_syscalls("x86_64"))[0][0] == 2
