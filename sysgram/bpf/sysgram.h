/* sysgram's kernel/user ABI: batch layout, run table, loss and lifecycle records.
 *
 * User space mirrors every struct here with numpy dtypes in sysgram/collector/abi.py
 * and passes the sizes below as -D flags, so the two can never disagree silently.
 * Only fixed-width types; every struct is padded by hand to a multiple of 8 bytes.
 */
#ifndef SYSGRAM_H
#define SYSGRAM_H

#ifndef SG_BATCH_IDS
#define SG_BATCH_IDS 4096      /* syscall ids per per-CPU batch (power of two) */
#endif
#ifndef SG_BATCH_RUNS
#define SG_BATCH_RUNS 128      /* runs (one thread's consecutive ids) per batch (power of two) */
#endif
#ifndef SG_PID_WORDS
#define SG_PID_WORDS 512       /* tracked-tgid bitmap: pid_max / 64 words */
#endif
#ifndef SG_MAX_REQUESTS
#define SG_MAX_REQUESTS 1024   /* user-space mark/unmark requests queue (power of two) */
#endif
#ifndef SG_EVENTS_PAGES
#define SG_EVENTS_PAGES 2048   /* ring buffer for batches (pages) */
#endif
#ifndef SG_LOSSES_PAGES
#define SG_LOSSES_PAGES 128
#endif
#ifndef SG_LIFE_PAGES
#define SG_LIFE_PAGES 256
#endif
#ifndef SG_MAX_TARGETS
#define SG_MAX_TARGETS 64      /* target comms watched at once */
#endif
#ifndef SG_MAX_OWNERS
#define SG_MAX_OWNERS 65536    /* tracked processes and threads with a target id */
#endif

#define SG_COMM_LEN 16
#define SG_FILENAME_LEN 256

/* Lifecycle record kinds. */
#define SG_LIFE_FORK 1
#define SG_LIFE_EXEC 2
#define SG_LIFE_EXIT 3

/* A request word (u64): op in bits 56-63, target id in bits 32-55, pid in bits 0-31.
 * MARK tracks the pid as the target's; UNMARK stops tracking it (target ignored). */
#define SG_REQ_MARK   1u
#define SG_REQ_UNMARK 2u
#define SG_REQ_OP_SHIFT 56
#define SG_REQ_TARGET_SHIFT 32
#define SG_REQ_TARGET_MASK 0xffffffu
#define SG_REQ_PID_MASK 0xffffffffu

/* Config flags. */
#define SG_CFG_ENABLED 1u

/* Key of the `targets` map (comm -> target id, written by user space only): a kernel
 * process name, NUL padded as bpf_get_current_comm() returns it. Target ids start at 1;
 * 0 means "no target known". */
struct sg_comm {
    char comm[SG_COMM_LEN];
};

struct sg_config {                 /* written by user space only */
    __u32 flusher_tid;             /* the collector's flusher thread */
    __u32 self_tgid;               /* the collector's own process: never recorded */
    __u32 flags;
    __u32 req_count;               /* requests written so far */
    __u64 cgroup_id;               /* --cgroup: the cgroup v2 subtree's root id */
    __u32 cgroup_level;            /* its depth (0: no limit, the root holds everything) */
    __u32 pad;
    __u64 open_repeat_ns;          /* fold an open a thread repeats within this (0: never) */
};

struct sg_state {                  /* written by the kernel only */
    __u64 req_done;                /* requests applied so far */
};

struct sg_run {                    /* one thread's consecutive ids inside a batch */
    __u64 ts;                      /* bpf_ktime_get_ns() of the run's first event */
    __u32 tid;
    __u32 tgid;
    __u32 start;                   /* index of the run's first id in ids[] */
    __u32 pad;
};

struct sg_batch_hdr {
    __u64 seq;                     /* per-CPU batch number */
    __u32 cpu;
    __u32 n_ids;
    __u32 n_runs;
    __u32 last_tid;                /* tid of the open run; 0 = next event opens a run */
};

/* A loss record is the first bytes of a batch: header and run table, without ids. */
struct sg_loss {
    struct sg_batch_hdr hdr;
    struct sg_run runs[SG_BATCH_RUNS];
};

struct sg_batch {
    struct sg_batch_hdr hdr;
    struct sg_run runs[SG_BATCH_RUNS];
    __u16 ids[SG_BATCH_IDS];
};

struct sg_counters {               /* per CPU */
    __u64 lost_events;             /* ids in batches the events ring buffer refused */
    __u64 lost_batches;
    __u64 unattributed_events;     /* lost, and the losses ring buffer refused the run table too */
    __u64 lost_lifecycle;          /* lifecycle records the life ring buffer refused */
    __u64 batches;                 /* batches submitted */
    __u64 lost_owners;             /* target ids the owners map had no room for */
    __u64 skipped_cgroup;          /* execs into a target's name outside the --cgroup subtree */
};

struct sg_life {
    __u64 ts;
    __u32 kind;                    /* SG_LIFE_* */
    __u32 tid;                     /* the task the event happened to (exit: the exiting thread) */
    __u32 tgid;
    __u32 other;                   /* fork: child pid; exec: old pid */
    __u32 group_dead;              /* exit: the whole process is gone */
    __u32 target;                  /* the process's target id after the event (0: unknown) */
    char comm[SG_COMM_LEN];
    char filename[SG_FILENAME_LEN]; /* exec only */
};

#endif /* SYSGRAM_H */
