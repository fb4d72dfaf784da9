/* What a targeted process touched: files it opens, programs it executes, network peers.
 *
 * Included by sysgram.bpf.c after its target check helpers (the loader writes it in
 * place: bcc rewrites map calls only in the text it is given). The sys_enter hook calls
 * `touched_enter` once, after it has decided the thread belongs to a target, so an
 * untargeted process pays nothing more at enter. Arguments are read from the raw
 * tracepoint's pt_regs (no other kernel structure) with the user-memory helpers,
 * bounded.
 * Calls whose result matters (execve/execveat, connect, accept/accept4, socket) keep
 * their arguments per thread until the call's own sys_exit tracepoint and are reported
 * there, once, with the result. Those tracepoints are a host-wide cost all the same:
 * the kernel builds every syscall tracepoint on the one sys_exit probe, so once any is
 * attached every syscall of the host passes it (about 30-50 ns a call here, as much as
 * an empty raw_syscalls:sys_exit program; benchmarks/README.md, "daemon"). Records
 * leave through their own ring buffer without waking the reader; a refused record is
 * counted per CPU and per thread.
 */
#include "touched.h"

/* The user-memory helpers, called by number under names of their own. bcc's rewriter
 * checks each call spelled bpf_probe_read_user(_str) against /proc/kallsyms, loading a
 * fresh symbol table for every call site (~60 ms each here, most of the compile), to
 * fall back to bpf_probe_read on kernels before 5.5. sysgram needs ring buffers (5.8),
 * where both helpers always exist. */
static long (*sg_read_user)(void *dst, u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user;
static long (*sg_read_user_str)(void *dst, u32 size, const void *src) =
    (void *)BPF_FUNC_probe_read_user_str;

BPF_RINGBUF_OUTPUT(touched, SG_TOUCHED_PAGES);
BPF_PERCPU_ARRAY(touch_counters, struct sg_touch_counters, 1);
BPF_HASH(touch_lost, u64, u64, SG_TOUCH_LOST_THREADS);   /* pid_tgid -> records lost */
BPF_TABLE("lru_hash", u32, struct sg_touch_pending, touch_pending, 4096);
BPF_TABLE("lru_hash", u32, struct sg_touch_exec, touch_exec, 1024);
BPF_PERCPU_ARRAY(touch_exec_scratch, struct sg_touch_exec, 1);

/* The six syscall arguments from the registers the syscall entry saved (struct pt_regs),
 * in one read of the block that holds them: one helper call instead of one per argument.
 * The offsets are the entry code's register frame, fixed ABI on both architectures
 * (x86-64: the order of ptrace's user_regs_struct; arm64: user_pt_regs, regs[0..30]
 * then sp). They are spelled out instead of taken from <linux/ptrace.h>: that header
 * pulls in the kernel's header tree, ~0.9 s of bcc's compile, which is on the critical
 * path to `attached` (benchmarks/README.md, "daemon"). The kernel tests that read
 * arguments (paths, peers, argv) fail if an offset is wrong. */
#if defined(__TARGET_ARCH_arm64)
#define SG_ARGS_FROM 0                     /* regs[0] */
#define SG_ARG_AT(n) (8 * (n))             /* regs[n] */
#define SG_ARGS_WORDS 6
#define SG_REGS_SP (8 * 31)
#else
#define SG_REGS_R10 56                     /* r15 r14 r13 r12 bp bx r11, then: */
#define SG_ARGS_FROM SG_REGS_R10           /* r10 r9 r8 ax cx dx si di */
#define SG_ARG_AT(n) ((n) == 0 ? 112 /* di */ : (n) == 1 ? 104 /* si */ :      \
                      (n) == 2 ? 96 /* dx */ : (n) == 3 ? SG_REGS_R10 :           \
                      (n) == 4 ? 72 /* r8 */ : 64 /* r9 */)
#define SG_ARGS_WORDS 8
#define SG_REGS_SP 152                     /* after di: orig_ax ip cs flags, then sp */
#endif
#define SG_ARG_SLOT(n) ((SG_ARG_AT(n) - SG_ARGS_FROM) / 8)

struct sg_args {
    u64 a[6];
};

static __always_inline void read_args(u64 regs, struct sg_args *args)
{
    u64 block[SG_ARGS_WORDS] = {};
    _Static_assert(SG_ARG_SLOT(0) < SG_ARGS_WORDS && SG_ARG_SLOT(1) < SG_ARGS_WORDS &&
                   SG_ARG_SLOT(2) < SG_ARGS_WORDS && SG_ARG_SLOT(3) < SG_ARGS_WORDS &&
                   SG_ARG_SLOT(4) < SG_ARGS_WORDS && SG_ARG_SLOT(5) < SG_ARGS_WORDS,
                   "the argument registers lie inside the block read");
    bpf_probe_read_kernel(block, sizeof(block), (void *)(regs + SG_ARGS_FROM));
    args->a[0] = block[SG_ARG_SLOT(0)];
    args->a[1] = block[SG_ARG_SLOT(1)];
    args->a[2] = block[SG_ARG_SLOT(2)];
    args->a[3] = block[SG_ARG_SLOT(3)];
    args->a[4] = block[SG_ARG_SLOT(4)];
    args->a[5] = block[SG_ARG_SLOT(5)];
}

/* Whether the call is one whose arguments are read: the others return before any read. */
static __always_inline int touched_call(long id)
{
    return id == SG_NR_OPENAT || id == SG_NR_OPEN || id == SG_NR_OPENAT2 ||
           id == SG_NR_EXECVE || id == SG_NR_EXECVEAT || id == SG_NR_CONNECT ||
           id == SG_NR_ACCEPT || id == SG_NR_ACCEPT4 || id == SG_NR_SOCKET ||
           id == SG_NR_BIND || id == SG_NR_SENDTO || id == SG_NR_SENDMSG;
}

static __always_inline void touch_count_loss(void)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u32 zero = 0;
    struct sg_touch_counters *c = touch_counters.lookup(&zero);
    if (c)
        c->lost++;
    u64 none = 0;
    u64 *n = touch_lost.lookup_or_try_init(&pid_tgid, &none);
    if (n)
        __sync_fetch_and_add(n, 1);
    else if (c)
        c->lost_unattributed++;
}

static __always_inline void touch_count_record(void)
{
    u32 zero = 0;
    struct sg_touch_counters *c = touch_counters.lookup(&zero);
    if (c)
        c->records++;
}

static __always_inline void touch_hdr(struct sg_touch_hdr *h, u16 kind, u16 nr, u32 tid,
                                      u32 tgid, u64 ts)
{
    h->ts = ts;
    h->tid = tid;
    h->tgid = tgid;
    h->kind = kind;
    h->nr = nr;
    h->ret = 0;
    h->flags = 0;
    h->addr_len = 0;
    h->arg0 = 0;
    h->arg1 = 0;
}

/* A user string into `dst` (NUL terminated); flags a cut or an unreadable pointer. */
static __always_inline u32 touch_str_len(char *dst, u32 size, u64 src, u32 cut_flag,
                                         long *len)
{
    long n = sg_read_user_str(dst, size, (void *)src);
    *len = n;                               /* bytes read with the NUL; < 0: unreadable */
    if (n < 0) {
        dst[0] = 0;
        return SG_TF_UNREADABLE;
    }
    return n >= size ? cut_flag : 0;
}

static __always_inline u32 touch_str(char *dst, u32 size, u64 src, u32 cut_flag)
{
    long len;
    return touch_str_len(dst, size, src, cut_flag, &len);
}

/* A user sockaddr of `len` bytes into `dst` (the bytes past what was read are zero). */
static __always_inline u32 touch_addr(u8 *dst, u64 src, u32 len)
{
    u64 *words = (u64 *)dst;                /* 8-aligned in every record */
#pragma unroll
    for (int i = 0; i < SG_TOUCH_ADDR_LEN / 8; i++)
        words[i] = 0;
    if (!src || len == 0)
        return 0;                           /* no address given (accept(fd, NULL, NULL)) */
    u64 n = len;
    if (n > SG_TOUCH_ADDR_LEN)
        n = SG_TOUCH_ADDR_LEN;
    asm volatile("" : "+r"(n));             /* keep the bound where the verifier sees it */
    n &= 0x7f;
    if (sg_read_user(dst, n, (void *)src) != 0)
        return SG_TF_UNREADABLE;
    return 0;
}

/* Opens handed over lately, to fold repeats: a web server opens the same file for every
 * request, tens of thousands of identical records a second that would each cost user
 * space far more than the syscalls around them. */
BPF_TABLE("lru_hash", struct sg_touch_recent_key, struct sg_touch_open, touch_recent,
          SG_TOUCH_RECENT);
BPF_PERCPU_ARRAY(touch_open_scratch, struct sg_touch_open, 1);

#define SG_PATH_WORDS (SG_TOUCH_PATH_LEN / 8)

/* A mix of the open's directory fd, flags, path length and the path's first and last
 * two words: it only picks the table slot (so one file opened with two sets of flags
 * takes two), and paths differ most at their ends. Cheap on purpose: a repeat is decided
 * by comparing everything, so a shared slot only costs a record. */
static __always_inline u32 open_mix(const struct sg_touch_open *r, long n)
{
    const u64 *w = (const u64 *)r->path;
    u32 last = ((u32)(n - 1) >> 3) & (SG_PATH_WORDS - 1);
    u64 mix = (u64)r->hdr.arg0 ^ ((u64)r->hdr.arg1 << 20) ^ ((u64)n << 44);
    mix = (mix ^ w[0]) * 0x9E3779B97F4A7C15ull;
    mix = (mix ^ w[1]) * 0x9E3779B97F4A7C15ull;
    mix = (mix ^ w[last]) * 0x9E3779B97F4A7C15ull;
    mix = (mix ^ w[(last - 1) & (SG_PATH_WORDS - 1)]) * 0x9E3779B97F4A7C15ull;
    return (u32)(mix >> 32);
}

/* Whether `last` is the same open as `r`: every field and every path word (both zero past
 * the NUL), never a hash, so no path can be made to pass for another. */
static __always_inline int same_open(const struct sg_touch_open *last,
                                     const struct sg_touch_open *r)
{
    if (last->hdr.tgid != r->hdr.tgid || last->hdr.nr != r->hdr.nr ||
        last->hdr.arg0 != r->hdr.arg0 || last->hdr.arg1 != r->hdr.arg1 ||
        last->hdr.flags != r->hdr.flags)
        return 0;
    const u64 *a = (const u64 *)last->path, *b = (const u64 *)r->path;
    u64 diff = 0;
#pragma unroll
    for (int i = 0; i < SG_PATH_WORDS; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

/* An open: handed over, unless the thread made the same one (call, directory fd, flags,
 * path) within `repeat_ns` of the last one handed over; that repeat is only counted.
 * Every file still arrives the first time and at least once per period after that. A
 * path cut at the buffer's end or unreadable is never folded (its tail is unknown).
 * `run_ts` is when the thread's current run began (no later than now): the fold decides
 * on it, so a folded open reads no clock (a clock read costs ~70 ns here, a sixth of an
 * open's cost; benchmarks/bench_open_steps.py). A run ends at every reschedule and every
 * flush round, so the period is kept to within one round (50 ms) of a second. */
static __always_inline void touch_open(u32 tid, u32 tgid, u16 nr, s64 dirfd, u64 path,
                                       s64 flags, u64 repeat_ns, u64 run_ts)
{
    u32 zero = 0;
    struct sg_touch_open *r = touch_open_scratch.lookup(&zero);
    if (!r)
        return;
    u64 *w = (u64 *)r->path;
#pragma unroll
    for (int i = 0; i < SG_PATH_WORDS; i++)
        w[i] = 0;                           /* equal paths are equal words to the end */
    touch_hdr(&r->hdr, SG_TOUCH_OPEN, nr, tid, tgid, 0);   /* timed if handed over */
    r->hdr.arg0 = dirfd;
    r->hdr.arg1 = flags;
    long n;
    r->hdr.flags = touch_str_len(r->path, sizeof(r->path), path, SG_TF_PATH_CUT, &n);
    struct sg_touch_recent_key key = {.tid = tid};
    int foldable = repeat_ns && r->hdr.flags == 0;
    if (foldable) {
        key.mix = open_mix(r, n);
        struct sg_touch_open *last = touch_recent.lookup(&key);
        /* Signed: the last one handed over may lie inside this very run. */
        if (last && (s64)(run_ts - last->hdr.ts) < (s64)repeat_ns && same_open(last, r)) {
            struct sg_touch_counters *c = touch_counters.lookup(&zero);
            if (c)
                c->repeats++;
            return;
        }
    }
    r->hdr.ts = bpf_ktime_get_ns();         /* what is handed over carries its own time */
    if (touched.ringbuf_output(r, sizeof(*r), BPF_RB_NO_WAKEUP) != 0) {
        touch_count_loss();
        return;
    }
    touch_count_record();
    /* Remembered only once handed over: a lost open is never the reason a repeat is folded. */
    if (foldable)
        touch_recent.update(&key, r);
}

/* A net record made at enter (bind, sendto/sendmsg with an address). */
static __always_inline void touch_net_now(u32 tid, u32 tgid, u16 kind, u16 nr, s64 fd,
                                          u64 addr, u32 len)
{
    struct sg_touch_net *r = touched.ringbuf_reserve(sizeof(*r));
    if (!r) {
        touch_count_loss();
        return;
    }
    touch_hdr(&r->hdr, kind, nr, tid, tgid, bpf_ktime_get_ns());
    r->hdr.arg0 = fd;
    r->hdr.addr_len = len;
    r->hdr.flags = touch_addr(r->addr, addr, len);
    touched.ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    touch_count_record();
}

/* argv[0..SG_TOUCH_ARGS-1] from a user array of string pointers; hdr.arg1 = how many. */
static __always_inline u32 touch_argv(struct sg_touch_exec *e, u64 argv)
{
    u32 flags = 0;
    e->hdr.arg1 = 0;
#pragma unroll
    for (int i = 0; i < SG_TOUCH_ARGS; i++)
        e->argv[i][0] = 0;
    if (!argv)
        return 0;
#pragma unroll
    for (int i = 0; i < SG_TOUCH_ARGS; i++) {
        u64 p = 0;
        if (sg_read_user(&p, sizeof(p), (void *)(argv + 8 * i)) != 0)
            return flags | SG_TF_UNREADABLE;
        if (!p)
            return flags;
        flags |= touch_str(e->argv[i], SG_TOUCH_ARG_LEN, p, SG_TF_ARG_CUT);
        e->hdr.arg1 = i + 1;
    }
    u64 more = 0;
    sg_read_user(&more, sizeof(more), (void *)(argv + 8 * SG_TOUCH_ARGS));
    return more ? flags | SG_TF_MORE_ARGS : flags;
}

/* execve/execveat: the strings must be read now (a successful exec replaces them). */
static __always_inline void touch_exec_enter(u32 tid, u32 tgid, u16 nr, s64 dirfd, u64 path,
                                             u64 argv)
{
    u32 zero = 0;
    struct sg_touch_exec *e = touch_exec_scratch.lookup(&zero);
    if (!e)
        return;
    touch_hdr(&e->hdr, SG_TOUCH_EXEC, nr, tid, tgid, bpf_ktime_get_ns());
    e->hdr.arg0 = dirfd;
    u32 flags = touch_str(e->path, sizeof(e->path), path, SG_TF_PATH_CUT);
    flags |= touch_argv(e, argv);
    e->hdr.flags = flags;
    touch_exec.update(&tid, e);
}

static __always_inline void touch_hold(u32 tid, u16 nr, u64 ptr, u64 len_ptr, u32 len,
                                       s64 arg0, s64 arg1)
{
    struct sg_touch_pending p = {};
    p.ptr = ptr;
    p.len_ptr = len_ptr;
    p.len = len;
    p.arg0 = arg0;
    p.arg1 = arg1;
    p.nr = nr;
    touch_pending.update(&tid, &p);
}

/* Called by the sys_enter hook for a targeted thread (never for the collector itself). */
static __always_inline void touched_enter(struct bpf_raw_tracepoint_args *ctx,
                                          struct sg_config *cfg, u32 tgid, u32 tid,
                                          u64 run_ts)
{
    long id = (long)ctx->args[1];
    if (!touched_call(id))
        return;
    u64 repeat_ns = cfg->open_repeat_ns;
    u16 nr = (u16)id;
    struct sg_args args;
    read_args(ctx->args[0] /* struct pt_regs * */, &args);
    u64 *a = args.a;
    /* One call site per reader: each is inlined once (a copy per call number would
     * multiply the program's size, its compile and its verification). */
    if (id == SG_NR_OPENAT || id == SG_NR_OPEN || id == SG_NR_OPENAT2) {
        s64 dirfd = (s32)a[0];
        u64 path = a[1];
        s64 flags = (s32)a[2];
        if (id == SG_NR_OPEN) {
            dirfd = -100;                   /* AT_FDCWD */
            path = a[0];
            flags = (s32)a[1];
        } else if (id == SG_NR_OPENAT2) {
            flags = 0;                      /* struct open_how starts with u64 flags */
            sg_read_user(&flags, sizeof(flags), (void *)a[2]);
        }
        touch_open(tid, tgid, nr, dirfd, path, flags, repeat_ns, run_ts);
    } else if (id == SG_NR_EXECVE || id == SG_NR_EXECVEAT) {
        s64 dirfd = -100;                   /* AT_FDCWD */
        u64 path = a[0];
        u64 argv = a[1];
        if (id == SG_NR_EXECVEAT) {         /* execveat(dirfd, path, argv, ...) */
            dirfd = (s32)a[0];
            path = a[1];
            argv = a[2];
        }
        touch_exec_enter(tid, tgid, nr, dirfd, path, argv);
    } else if (id == SG_NR_CONNECT) {
        touch_hold(tid, nr, a[1], 0, (u32)a[2], (s32)a[0], 0);
    } else if (id == SG_NR_ACCEPT || id == SG_NR_ACCEPT4) {
        touch_hold(tid, nr, a[1], a[2], 0, (s32)a[0], 0);
    } else if (id == SG_NR_SOCKET) {
        touch_hold(tid, nr, 0, 0, 0, (s32)a[0], (s32)a[1]);
    } else if (id == SG_NR_BIND || id == SG_NR_SENDTO || id == SG_NR_SENDMSG) {
        u16 kind = SG_TOUCH_SEND;
        u64 addr = a[4];                    /* sendto(fd, buf, len, flags, addr, addrlen) */
        u32 len = (u32)a[5];
        if (id == SG_NR_BIND) {
            kind = SG_TOUCH_BIND;
            addr = a[1];
            len = (u32)a[2];
        } else if (id == SG_NR_SENDMSG) {   /* struct msghdr: msg_name, then msg_namelen */
            addr = 0;
            len = 0;
            sg_read_user(&addr, sizeof(addr), (void *)a[1]);
            sg_read_user(&len, sizeof(len), (void *)(a[1] + 8));
        }
        /* A send without an address goes to a connected socket's peer, seen before. */
        if (addr || kind == SG_TOUCH_BIND)
            touch_net_now(tid, tgid, kind, nr, (s32)a[0], addr, len);
    }
}

/* The exit of a call held at enter: the caller's thread, if it belongs to a target. */
static __always_inline int touch_exit_thread(u32 *tid, u32 *tgid)
{
    u64 pid_tgid = bpf_get_current_pid_tgid();
    *tgid = pid_tgid >> 32;
    *tid = (u32)pid_tgid;
    if (!is_tracked(*tgid))
        return 0;
    u32 zero = 0;
    struct sg_config *cfg = config.lookup(&zero);
    return cfg && *tgid != cfg->self_tgid;
}

static __always_inline void touch_exec_exit(long ret)
{
    u32 tid, tgid;
    if (!touch_exit_thread(&tid, &tgid))
        return;
    struct sg_touch_exec *e = touch_exec.lookup(&tid);
    if (!e)
        return;
    if (ret == 0 && (e->hdr.flags & SG_TF_UNREADABLE)) {
        /* The caller's strings were not paged in at enter (a child after fork has not
         * touched them yet) and are gone now; the new program's argv is on its fresh
         * stack: argc at the user stack pointer, then the argv pointers. The file
         * name comes from sched_process_exec (user space joins them). */
        u64 regs = bpf_task_pt_regs(bpf_get_current_task_btf());
        u64 sp = 0;
        bpf_probe_read_kernel(&sp, sizeof(sp), (void *)(regs + SG_REGS_SP));
        e->hdr.flags = SG_TF_UNREADABLE | touch_argv(e, sp + 8);
    }
    e->hdr.ts = bpf_ktime_get_ns();
    e->hdr.ret = (s32)ret;
    e->hdr.tgid = tgid;
    if (touched.ringbuf_output(e, sizeof(*e), BPF_RB_NO_WAKEUP) == 0)
        touch_count_record();
    else
        touch_count_loss();
    touch_exec.delete(&tid);
}

/* The record of a call held at enter whose number is `nr_a` or `nr_b`, now it returns. */
static __always_inline void touch_net_exit(long ret, u16 kind, long nr_a, long nr_b)
{
    u32 tid, tgid;
    if (!touch_exit_thread(&tid, &tgid))
        return;
    struct sg_touch_pending *p = touch_pending.lookup(&tid);
    if (!p)
        return;
    if (p->nr != (u16)nr_a && p->nr != (u16)nr_b) {
        touch_pending.delete(&tid);         /* a call whose exit we never saw: stale */
        return;
    }
    struct sg_touch_net *r = touched.ringbuf_reserve(sizeof(*r));
    if (!r) {
        touch_count_loss();
        touch_pending.delete(&tid);
        return;
    }
    touch_hdr(&r->hdr, kind, p->nr, tid, tgid, bpf_ktime_get_ns());
    r->hdr.ret = (s32)ret;
    r->hdr.arg0 = p->arg0;
    r->hdr.arg1 = p->arg1;
    if (kind == SG_TOUCH_SOCKET) {
        __builtin_memset(r->addr, 0, sizeof(r->addr));
    } else {
        u32 len = p->len;
        if (kind == SG_TOUCH_ACCEPT) {      /* the kernel filled *addrlen on success */
            len = 0;
            if (ret >= 0 && p->len_ptr)
                sg_read_user(&len, sizeof(len), (void *)p->len_ptr);
        }
        r->hdr.addr_len = len;
        r->hdr.flags = touch_addr(r->addr, p->ptr, len);
    }
    touched.ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    touch_count_record();
    touch_pending.delete(&tid);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    touch_exec_exit(args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    touch_exec_exit(args->ret);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_connect)
{
    touch_net_exit(args->ret, SG_TOUCH_CONNECT, SG_NR_CONNECT, SG_NR_CONNECT);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept)
{
    touch_net_exit(args->ret, SG_TOUCH_ACCEPT, SG_NR_ACCEPT, SG_NR_ACCEPT4);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_accept4)
{
    touch_net_exit(args->ret, SG_TOUCH_ACCEPT, SG_NR_ACCEPT, SG_NR_ACCEPT4);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_socket)
{
    touch_net_exit(args->ret, SG_TOUCH_SOCKET, SG_NR_SOCKET, SG_NR_SOCKET);
    return 0;
}
