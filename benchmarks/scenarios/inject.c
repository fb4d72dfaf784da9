/* sg-inject: make one thread of a running process call libc functions, as an exploit's
 * payload would. gdb would do it (`call (int)system("...")`), but gdb 13 cannot write
 * back the register state of CPUs with AMX ("Couldn't write extended state status"), so
 * the suite uses this small ptrace injector instead.
 *
 *   sg-inject TID < calls      one call per line: FUNC<TAB>ARG<TAB>ARG...
 *   ARG: i:<integer>  s:<string>  x:<hex bytes>  m:<size> (zeroed buffer)  r:<n> (result
 *        of call n, counted from 0)
 * Prints "attached" once the thread is stopped, then FUNC=RESULT per call.
 *
 * How: PTRACE_SEIZE + PTRACE_INTERRUPT stop only that thread; its general and legacy FP
 * registers are saved; data goes to its stack far below the red zone; each call sets
 * rip to the function (resolved in the target through the same library file mapped
 * there), pushes a return address of 0 and continues until the SIGSEGV of that return;
 * then the registers are restored and the thread detached, so an interrupted system
 * call restarts as after any signal. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CALLS 32
#define MAX_ARGS 6

static pid_t tid;
static void die(const char *what) { fprintf(stderr, "sg-inject: %s: %s\n", what, strerror(errno)); exit(2); }

static uintptr_t remote_base(const char *path_in_us, uintptr_t *local_base)
{
    /* the library holding a symbol in us, found in the target by device and inode */
    struct stat st;
    if (stat(path_in_us, &st) != 0) die("stat library");
    char maps[64], line[4096];
    snprintf(maps, sizeof maps, "/proc/%d/maps", (int)tid);
    FILE *f = fopen(maps, "r");
    if (!f) die("open maps");
    uintptr_t base = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end, off, ino;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &start, &end, perms, &off, &maj, &min, &ino) == 7
            && ino == st.st_ino && off == 0) { base = start; break; }
    }
    fclose(f);
    (void)local_base;
    return base;
}

static uintptr_t resolve(const char *name)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (!sym || !dladdr(sym, &info)) { fprintf(stderr, "sg-inject: no symbol %s\n", name); exit(2); }
    uintptr_t base = remote_base(info.dli_fname, NULL);
    if (!base) { fprintf(stderr, "sg-inject: %s is not mapped in %d\n", info.dli_fname, (int)tid); exit(2); }
    return base + ((uintptr_t)sym - (uintptr_t)info.dli_fbase);
}

static void poke(uintptr_t addr, const void *data, size_t len)
{
    for (size_t i = 0; i < len; i += sizeof(long)) {
        long word = 0;
        size_t n = len - i < sizeof(long) ? len - i : sizeof(long);
        if (n < sizeof(long)) {
            errno = 0;
            word = ptrace(PTRACE_PEEKDATA, tid, addr + i, 0);
            if (errno) die("peek");
        }
        memcpy(&word, (const char *)data + i, n);
        if (ptrace(PTRACE_POKEDATA, tid, addr + i, word) != 0) die("poke");
    }
}

static int wait_stop(void)
{
    int status;
    for (;;) {
        if (waitpid(tid, &status, __WALL) < 0) die("waitpid");
        if (WIFEXITED(status) || WIFSIGNALED(status)) { fprintf(stderr, "sg-inject: target died\n"); exit(3); }
        if (WIFSTOPPED(status)) return status;
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) { fprintf(stderr, "usage: sg-inject TID < calls\n"); return 2; }
    tid = (pid_t)atoi(argv[1]);
    char *lines[MAX_CALLS];
    size_t ncalls = 0, cap = 0;
    char *line = NULL;
    while (ncalls < MAX_CALLS && getline(&line, &cap, stdin) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (*line) lines[ncalls++] = strdup(line);
    }
    uintptr_t funcs[MAX_CALLS];
    for (size_t c = 0; c < ncalls; c++) {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(lines[c], "\t"), lines[c]);
        funcs[c] = resolve(name);
    }
    if (ptrace(PTRACE_SEIZE, tid, 0, 0) != 0) die("PTRACE_SEIZE");
    if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) != 0) die("PTRACE_INTERRUPT");
    wait_stop();
    printf("attached\n");
    fflush(stdout);
    struct user_regs_struct saved, regs;
    struct user_fpregs_struct fpsaved;
    if (ptrace(PTRACE_GETREGS, tid, 0, &saved) != 0) die("GETREGS");
    if (ptrace(PTRACE_GETFPREGS, tid, 0, &fpsaved) != 0) die("GETFPREGS");
    uintptr_t data = (saved.rsp - 65536) & ~(uintptr_t)15;   /* our data grows up from here */
    uintptr_t stack_top = data - 4096;                        /* the calls' stack below it */
    long long results[MAX_CALLS];
    for (size_t c = 0; c < ncalls; c++) {
        unsigned long long args[MAX_ARGS] = {0};
        int nargs = 0;
        char *save = NULL, *field = strtok_r(lines[c], "\t", &save);
        while ((field = strtok_r(NULL, "\t", &save)) && nargs < MAX_ARGS) {
            char kind = field[0];
            const char *val = field + 2;
            if (kind == 'i') args[nargs++] = (unsigned long long)strtoll(val, NULL, 0);
            else if (kind == 'r') args[nargs++] = (unsigned long long)results[atoi(val)];
            else if (kind == 's' || kind == 'x' || kind == 'm') {
                size_t len;
                char *buf;
                if (kind == 's') { len = strlen(val) + 1; buf = strdup(val); }
                else if (kind == 'm') { len = (size_t)atol(val); buf = calloc(1, len); }
                else {
                    len = strlen(val) / 2;
                    buf = malloc(len);
                    for (size_t i = 0; i < len; i++) sscanf(val + 2 * i, "%2hhx", (unsigned char *)&buf[i]);
                }
                poke(data, buf, len);
                free(buf);
                args[nargs++] = data;
                data += (len + 15) & ~(size_t)15;
            }
        }
        if (data >= saved.rsp - 4096) { fprintf(stderr, "sg-inject: too much data\n"); return 2; }
        regs = saved;
        regs.rip = funcs[c];
        regs.rdi = args[0]; regs.rsi = args[1]; regs.rdx = args[2];
        regs.rcx = args[3]; regs.r8 = args[4]; regs.r9 = args[5];
        regs.rax = 0;
        regs.orig_rax = (unsigned long long)-1;   /* no syscall restart on this resume */
        regs.rsp = (stack_top & ~(uintptr_t)15) - 8;
        unsigned long long zero = 0;
        poke(regs.rsp, &zero, sizeof zero);      /* return address 0: a SIGSEGV ends it */
        if (ptrace(PTRACE_SETREGS, tid, 0, &regs) != 0) die("SETREGS");
        if (ptrace(PTRACE_CONT, tid, 0, 0) != 0) die("CONT");
        for (;;) {
            int status = wait_stop();
            int sig = WSTOPSIG(status);
            if (sig == SIGSEGV) break;
            /* another signal or a ptrace event while calling: pass signals on */
            int pass = (status >> 16) == 0 && sig != SIGSTOP && sig != SIGTRAP ? sig : 0;
            if (ptrace(PTRACE_CONT, tid, 0, pass) != 0) die("CONT");
        }
        if (ptrace(PTRACE_GETREGS, tid, 0, &regs) != 0) die("GETREGS");
        results[c] = (long long)regs.rax;
        char name[128];
        snprintf(name, sizeof name, "%s", lines[c]);
        printf("%s=%lld\n", name, results[c]);
        fflush(stdout);
    }
    if (ptrace(PTRACE_SETFPREGS, tid, 0, &fpsaved) != 0) die("SETFPREGS");
    if (ptrace(PTRACE_SETREGS, tid, 0, &saved) != 0) die("SETREGS");
    if (ptrace(PTRACE_DETACH, tid, 0, 0) != 0) die("DETACH");
    return 0;
}
