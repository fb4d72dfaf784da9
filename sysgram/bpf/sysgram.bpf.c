/* sysgram's kernel program: the syscall ids of every thread of the target processes.
 *
 * - raw_syscalls:sys_enter (raw tracepoint, the cheapest hook): untargeted processes pay
 *   one array lookup in a tgid bitmap (and, at exit, the kernel's syscall-exit probe
 *   that touched.bpf.c's result tracepoints switch on for every process). Targeted ids
 *   go into a per-CPU batch with a run table; a full batch is handed over whole through
 *   the `events` ring buffer without waking the reader (a wake-up costs ~5.5 us on the
 *   traced CPU); user space drains on a timer.
 * - The collector's flusher thread visits every CPU and makes one syscall there; the
 *   program then flushes that CPU's partial batch and applies queued mark/unmark
 *   requests (so the bitmap is only ever changed by the kernel, atomically).
 * - sched_switch / exec close the open run, so a run never spans a reschedule: user
 *   space restores each thread's order across CPUs by sorting runs by their start time.
 * - sched_process_fork/exec/exit keep the bitmap current and report lifecycle events.
 * - Many binaries share the one program: `targets` maps each watched comm to a target
 *   id, and `owners` gives every tracked process (and thread) its target id: set at an
 *   exec into a target comm, inherited at fork, carried in every lifecycle record. The
 *   syscall hook never looks at either, so it costs the same for 1 or 64 targets.
 * - touched.bpf.c (included): the arguments of a few calls (paths, exec names, peers) of
 *   targeted threads only, through their own ring buffer.
 * No kernel structure is read but the syscall entry's saved registers (pt_regs, a stable
 * layout): only tracepoint fields and helpers (the headers on the build machine may not
 * match the running kernel).
 */
#include "sysgram.h"

BPF_ARRAY(tracked, u64, SG_PID_WORDS);
BPF_ARRAY(config, struct sg_config, 1);
BPF_ARRAY(state, struct sg_state, 1);
BPF_ARRAY(requests, u64, SG_MAX_REQUESTS);
BPF_HASH(targets, struct sg_comm, u32, SG_MAX_TARGETS);
BPF_HASH(owners, u32, u32, SG_MAX_OWNERS);
BPF_PERCPU_ARRAY(batch, struct sg_batch, 1);
BPF_PERCPU_ARRAY(counters, struct sg_counters, 1);
BPF_RINGBUF_OUTPUT(events, SG_EVENTS_PAGES);
BPF_RINGBUF_OUTPUT(losses, SG_LOSSES_PAGES);
BPF_RINGBUF_OUTPUT(life, SG_LIFE_PAGES);

static __always_inline u64 *bitmap_word(u32 pid)
{
    u32 w = pid >> 6;
    return tracked.lookup(&w);
}

static __always_inline int is_tracked(u32 pid)
{
    u64 *word = bitmap_word(pid);
    return word && (*word & (1ULL << (pid & 63)));
}

static __always_inline void mark(u32 pid)
{
    u64 *word = bitmap_word(pid);
    if (word)
        __sync_fetch_and_or(word, 1ULL << (pid & 63));
}

static __always_inline void unmark(u32 pid)
{
    u64 *word = bitmap_word(pid);
    if (word)
        __sync_fetch_and_and(word, ~(1ULL << (pid & 63)));
}

static __always_inline u32 owner_of(u32 pid)
{
    u32 *id = owners.lookup(&pid);
    return id ? *id : 0;
}

static __always_inline void set_owner(u32 pid, u32 id)
{
    if (id == 0)
        return;
    if (owners.update(&pid, &id) != 0) {
        u32 zero = 0;
        struct sg_counters *c = counters.lookup(&zero);
        if (c)
            c->lost_owners++;
    }
}

/* Stop tracking a pid: its bit and its target id. */
static __always_inline void forget(u32 pid)
{
    unmark(pid);
    owners.delete(&pid);
}

/* --cgroup: whether the current task is in the subtree (cgroup v2; forks inherit). */
static __always_inline int in_cgroup(struct sg_config *cfg)
{
    if (cfg->cgroup_level == 0)
        return 1;
    return bpf_get_current_ancestor_cgroup_id(cfg->cgroup_level) == cfg->cgroup_id;
}

/* Hand this CPU's batch over; on failure count the loss and report its run table. */
static __always_inline void flush(struct sg_batch *b)
{
    u32 n = b->hdr.n_ids;
    if (n == 0)
        return;
    u32 zero = 0;
    struct sg_counters *c = counters.lookup(&zero);
    b->hdr.cpu = bpf_get_smp_processor_id();
    /* Hand over only the used ids: partial batches (flush rounds, thread exits) stay small. */
    if (n > SG_BATCH_IDS)
        n = SG_BATCH_IDS;
    u64 size = offsetof(struct sg_batch, ids) + (u64)n * sizeof(b->ids[0]);
    if (events.ringbuf_output(b, size, BPF_RB_NO_WAKEUP) == 0) {
        if (c)
            c->batches++;
    } else if (c) {
        c->lost_events += n;
        c->lost_batches++;
        if (losses.ringbuf_output(b, sizeof(struct sg_loss), BPF_RB_NO_WAKEUP) != 0)
            c->unattributed_events += n;
    }
    b->hdr.seq++;
    b->hdr.n_ids = 0;
    b->hdr.n_runs = 0;
    b->hdr.last_tid = 0;
}

static __always_inline void flush_this_cpu(void)
{
    u32 zero = 0;
    struct sg_batch *b = batch.lookup(&zero);
    if (b)
        flush(b);
}

/* Close the open run on this CPU: the next event starts a new one with a fresh time. */
static __always_inline void close_run(void)
{
    u32 zero = 0;
    struct sg_batch *b = batch.lookup(&zero);
    if (b)
        b->hdr.last_tid = 0;
}

/* Apply mark/unmark requests user space queued (a few per flusher syscall). */
static __always_inline void apply_requests(struct sg_config *cfg)
{
    u32 zero = 0;
    struct sg_state *st = state.lookup(&zero);
    if (!st)
        return;
    for (int i = 0; i < 32; i++) {
        u64 done = st->req_done;
        if (done >= cfg->req_count)
            break;
        u32 slot = done & (SG_MAX_REQUESTS - 1);
        u64 *req = requests.lookup(&slot);
        if (req) {
            u32 pid = *req & SG_REQ_PID_MASK;
            if ((*req >> SG_REQ_OP_SHIFT) == SG_REQ_MARK) {
                set_owner(pid, (*req >> SG_REQ_TARGET_SHIFT) & SG_REQ_TARGET_MASK);
                mark(pid);
            } else {
                forget(pid);
            }
        }
        st->req_done = done + 1;
    }
}

#include "touched.bpf.c"          /* what targets touch: its own maps, ring and exits */

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    u32 tid = (u32)pid_tgid;
    if (!is_tracked(tgid))
        return 0;

    u32 zero = 0;
    struct sg_config *cfg = config.lookup(&zero);
    if (!cfg)
        return 0;
    if (tgid == cfg->self_tgid) {          /* the collector itself: never recorded */
        if (tid == cfg->flusher_tid) {
            flush_this_cpu();
            apply_requests(cfg);
        }
        return 0;
    }
    struct sg_batch *b = batch.lookup(&zero);
    if (!b)
        return 0;
    if (tid != b->hdr.last_tid) {
        if (b->hdr.n_runs >= SG_BATCH_RUNS)
            flush(b);
        u32 r = b->hdr.n_runs & (SG_BATCH_RUNS - 1);
        b->runs[r].ts = bpf_ktime_get_ns();
        b->runs[r].tid = tid;
        b->runs[r].tgid = tgid;
        b->runs[r].start = b->hdr.n_ids;
        b->hdr.n_runs++;
        b->hdr.last_tid = tid;
    }
    /* When this thread's run began: no later than now, and read without a clock. */
    u64 run_ts = b->runs[(b->hdr.n_runs - 1) & (SG_BATCH_RUNS - 1)].ts;
    u32 n = b->hdr.n_ids;
    b->ids[n & (SG_BATCH_IDS - 1)] = (u16)ctx->args[1];
    b->hdr.n_ids = n + 1;
    if (n + 1 >= SG_BATCH_IDS)
        flush(b);
    touched_enter(ctx, cfg, tgid, tid, run_ts);
    return 0;
}

/* A thread switched out: its next events on this CPU start a new run. */
RAW_TRACEPOINT_PROBE(sched_switch)
{
    close_run();
    return 0;
}

static __always_inline void send_life(u32 kind, u32 tid, u32 tgid, u32 other, u32 group_dead,
                                      u32 target, void *filename_src, int with_filename)
{
    struct sg_life *e = life.ringbuf_reserve(sizeof(struct sg_life));
    if (!e) {
        u32 zero = 0;
        struct sg_counters *c = counters.lookup(&zero);
        if (c)
            c->lost_lifecycle++;
        return;
    }
    e->ts = bpf_ktime_get_ns();
    e->kind = kind;
    e->tid = tid;
    e->tgid = tgid;
    e->other = other;
    e->group_dead = group_dead;
    e->target = target;
    bpf_get_current_comm(&e->comm, sizeof(e->comm));
    e->filename[0] = 0;
    if (with_filename)
        bpf_probe_read_kernel_str(&e->filename, sizeof(e->filename), filename_src);
    life.ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    if (!is_tracked(tgid))
        return 0;
    u32 zero = 0;
    struct sg_config *cfg = config.lookup(&zero);
    if (!cfg || tgid == cfg->self_tgid)    /* processes the collector spawns are not targets */
        return 0;
    u32 child = args->child_pid;
    /* A new process, or a thread of this one; marking a thread id is harmless while the
     * thread lives (no process can have that pid) and is undone at its exit. */
    u32 target = owner_of(tgid);
    set_owner(child, target);
    mark(child);
    send_life(SG_LIFE_FORK, (u32)pid_tgid, tgid, child, 0, target, 0, 0);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    u32 zero = 0;
    struct sg_config *cfg = config.lookup(&zero);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    struct sg_comm comm = {};
    bpf_get_current_comm(&comm.comm, sizeof(comm.comm));
    u32 *target = targets.lookup(&comm);
    if (target && !is_tracked(tgid) && !in_cgroup(cfg)) {
        u32 zero = 0;
        struct sg_counters *c = counters.lookup(&zero);
        if (c)
            c->skipped_cgroup++;
        return 0;
    }
    if (target) {
        /* Into a target's name: the process is that target's from now on. */
        set_owner(tgid, *target);
        mark(tgid);
    } else if (!is_tracked(tgid)) {
        return 0;
    }
    /* A tracked process that execs something else stays tracked, as the same target:
     * what the target's descendants do is its behaviour. */
    close_run();
    /* A non-leader thread that execs takes over the process id: its old thread id, marked
     * when the thread was created, gets no exit record, so clear it here. */
    if (args->old_pid != tgid)
        forget(args->old_pid);
    unsigned short off = args->data_loc_filename & 0xFFFF;
    send_life(SG_LIFE_EXEC, (u32)pid_tgid, tgid, args->old_pid, 0, owner_of(tgid),
              (char *)args + off, 1);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 tgid = pid_tgid >> 32;
    u32 tid = (u32)pid_tgid;
    u32 group_dead = args->group_dead;
    if (!is_tracked(tgid)) {
        /* A thread id marked at fork whose process was unmarked since: clean it up. */
        if (tid != tgid && is_tracked(tid))
            forget(tid);
        return 0;
    }
    u32 zero = 0;
    struct sg_config *cfg = config.lookup(&zero);
    if (!cfg || tgid == cfg->self_tgid)
        return 0;
    flush_this_cpu();                      /* the thread's last events leave with it */
    send_life(SG_LIFE_EXIT, tid, tgid, 0, group_dead, owner_of(tgid), 0, 0);
    if (tid != tgid)
        forget(tid);
    if (group_dead)
        forget(tgid);
    return 0;
}
