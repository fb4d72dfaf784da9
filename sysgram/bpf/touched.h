/* What a targeted process touched: the kernel/user ABI of the `touched` ring buffer.
 *
 * Mirrored by numpy dtypes in sysgram/collector/touched.py; sizes and syscall numbers
 * reach the program as -D flags from sysgram/bpf/sizes.py (the host's syscall table),
 * so nothing here is typed in twice. Every record starts with struct sg_touch_hdr; its
 * `kind` says which layout follows. Fixed-width types, padded by hand to 8 bytes.
 */
#ifndef SYSGRAM_TOUCHED_H
#define SYSGRAM_TOUCHED_H

#ifndef SG_TOUCHED_PAGES
#define SG_TOUCHED_PAGES 2048
#endif
#ifndef SG_TOUCH_PATH_LEN
#define SG_TOUCH_PATH_LEN 256      /* bytes of a path or exec file name (with its NUL) */
#endif
#ifndef SG_TOUCH_ARG_LEN
#define SG_TOUCH_ARG_LEN 64        /* bytes of each of argv[0..SG_TOUCH_ARGS-1] */
#endif
#ifndef SG_TOUCH_ARGS
#define SG_TOUCH_ARGS 4
#endif
#ifndef SG_TOUCH_ADDR_LEN
#define SG_TOUCH_ADDR_LEN 112      /* bytes of a sockaddr: sockaddr_un is 110 */
#endif
#ifndef SG_TOUCH_LOST_THREADS
#define SG_TOUCH_LOST_THREADS 4096
#endif
#ifndef SG_TOUCH_RECENT
#define SG_TOUCH_RECENT 8192       /* opens remembered to fold repeats (LRU) */
#endif

/* Syscall numbers of the host table (-1 = this table has no such call). */
#ifndef SG_NR_OPEN
#define SG_NR_OPEN -1
#endif
#ifndef SG_NR_OPENAT
#define SG_NR_OPENAT -1
#endif
#ifndef SG_NR_OPENAT2
#define SG_NR_OPENAT2 -1
#endif
#ifndef SG_NR_EXECVE
#define SG_NR_EXECVE -1
#endif
#ifndef SG_NR_EXECVEAT
#define SG_NR_EXECVEAT -1
#endif
#ifndef SG_NR_CONNECT
#define SG_NR_CONNECT -1
#endif
#ifndef SG_NR_ACCEPT
#define SG_NR_ACCEPT -1
#endif
#ifndef SG_NR_ACCEPT4
#define SG_NR_ACCEPT4 -1
#endif
#ifndef SG_NR_BIND
#define SG_NR_BIND -1
#endif
#ifndef SG_NR_SENDTO
#define SG_NR_SENDTO -1
#endif
#ifndef SG_NR_SENDMSG
#define SG_NR_SENDMSG -1
#endif
#ifndef SG_NR_SOCKET
#define SG_NR_SOCKET -1
#endif

/* Record kinds. */
#define SG_TOUCH_OPEN    1         /* at enter: arg0 = dirfd, arg1 = flags, path */
#define SG_TOUCH_EXEC    2         /* at exit: ret, arg0 = dirfd, arg1 = argv read, path, argv */
#define SG_TOUCH_CONNECT 3         /* at exit: ret, arg0 = fd, addr */
#define SG_TOUCH_ACCEPT  4         /* at exit: ret = new fd, arg0 = listening fd, addr */
#define SG_TOUCH_BIND    5         /* at enter: arg0 = fd, addr */
#define SG_TOUCH_SEND    6         /* at enter (sendto/sendmsg with an address): arg0 = fd */
#define SG_TOUCH_SOCKET  7         /* at exit: ret = fd, arg0 = domain, arg1 = type */

/* Flags. */
#define SG_TF_PATH_CUT   1u        /* the path filled its buffer: it may be longer */
#define SG_TF_ARG_CUT    2u        /* some argv[i] filled its buffer */
#define SG_TF_MORE_ARGS  4u        /* argv has more than SG_TOUCH_ARGS entries */
#define SG_TF_UNREADABLE 8u        /* the user pointer could not be read */

struct sg_touch_hdr {
    __u64 ts;                      /* bpf_ktime_get_ns() when the record was made */
    __u32 tid;
    __u32 tgid;
    __u16 kind;                    /* SG_TOUCH_* */
    __u16 nr;                      /* the syscall number (host table) */
    __s32 ret;                     /* the call's result, for records made at exit */
    __u32 flags;                   /* SG_TF_* */
    __u32 addr_len;                /* net records: the sockaddr length the caller gave */
    __s64 arg0;
    __s64 arg1;
};

struct sg_touch_open {
    struct sg_touch_hdr hdr;
    char path[SG_TOUCH_PATH_LEN];
};

struct sg_touch_exec {
    struct sg_touch_hdr hdr;
    char path[SG_TOUCH_PATH_LEN];
    char argv[SG_TOUCH_ARGS][SG_TOUCH_ARG_LEN];
};

struct sg_touch_net {
    struct sg_touch_hdr hdr;
    __u8 addr[SG_TOUCH_ADDR_LEN];
};

/* Enter-side arguments held until the call's exit (per thread). */
struct sg_touch_pending {
    __u64 ptr;                     /* connect: sockaddr; accept: sockaddr out; 0 = none */
    __u64 len_ptr;                 /* accept: the socklen_t the kernel fills */
    __s64 arg0;
    __s64 arg1;
    __u32 len;                     /* connect: the caller's addrlen */
    __u16 nr;
    __u16 pad;
};

/* Key of the table of opens handed over lately: the thread, and a mix of the open's
 * fields and path that only picks the slot (a repeat is decided by comparing every field
 * and path word). */
struct sg_touch_recent_key {
    __u32 tid;
    __u32 mix;
};

struct sg_touch_counters {         /* per CPU */
    __u64 records;                 /* records handed over */
    __u64 lost;                    /* records the touched ring buffer refused */
    __u64 lost_unattributed;       /* lost, and the per-thread loss table was full */
    __u64 repeats;                 /* opens folded: a repeat of one handed over lately */
};

#endif /* SYSGRAM_TOUCHED_H */
