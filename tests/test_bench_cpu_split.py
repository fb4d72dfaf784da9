"""The CPU-split benchmark files each perf sample under the right group: a sample put in
the wrong one would move sysgram's cost into "everything else" (or the reverse)."""

from __future__ import annotations

from benchmarks.bench_cpu_split import GROUPS, parse_report, us_per_request

USER, BPF, TRACEPOINT, OTHER = GROUPS

# `perf report -q -n -t ';' --sort comm,sym`, as perf 6.x prints it.
REPORT = """\
     9.36%  ; 5986       ;nginx          ;[k] _raw_spin_unlock_irqrestore
     0.83%  ;  530       ;nginx          ;[k] bpf_prog_7039feaca58136d0_raw_tracepoint__sys_enter
     0.44%  ;  281       ;wrk            ;[k] bpf_get_current_pid_tgid
     0.76%  ;  486       ;wrk            ;[k] bpf_trace_run2
     0.43%  ;  275       ;nginx          ;[k] perf_syscall_exit
     0.59%  ;  377       ;nginx          ;[k] syscall_exit_work
     0.17%  ;  109       ;wrk            ;[k] rcu_read_unlock_trace_special
     0.05%  ;   32       ;nginx          ;[k] bpf_lsm_file_alloc_security
     0.62%  ;  396       ;python         ;[.] _PyEval_EvalFrameDefault
     0.21%  ;  134       ;python         ;[k] __bpf_ringbuf_reserve
     1.06%  ;  678       ;wrk            ;[.] http_parser_execute

# a comment line perf may print
"""


def test_each_sample_lands_in_its_group():
    samples, others = parse_report(REPORT)
    assert samples == {USER: 396 + 134, BPF: 530 + 281, TRACEPOINT: 486 + 275 + 377 + 109,
                       OTHER: 5986 + 32 + 678}
    # Kernel symbols of everything else are kept by name; user-space ones are not.
    assert others == {"_raw_spin_unlock_irqrestore": 5986, "bpf_lsm_file_alloc_security": 32}


def test_cpu_per_request_is_the_share_of_every_cpu_over_the_rate(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # Half of 2 CPUs (1 CPU-second a second) over 1,000 requests/s: 1,000 µs a request.
    assert us_per_request(1000.0, {"a": 50, "b": 50}, 100) == {"a": 1000.0, "b": 1000.0}
