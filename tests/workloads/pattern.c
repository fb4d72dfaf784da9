/* Test workload: in each of THREADS threads (and in a forked child if FORK), make exactly
 * CALLS getppid() calls bracketed by markers: getsid(0) before, getpgid(0) after.
 * usage: pattern THREADS CALLS FORK WAIT [PROGRAM ARGS...]
 *   WAIT=1: read one line from stdin first; PROGRAM: exec it (with ARGS) at the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int calls;

static void pattern(void)
{
    syscall(SYS_getsid, 0);
    for (int i = 0; i < calls; i++)
        syscall(SYS_getppid);
    syscall(SYS_getpgid, 0);
}

static void *thread_main(void *arg)
{
    (void)arg;
    pattern();
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: pattern THREADS CALLS FORK WAIT\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    calls = atoi(argv[2]);
    int do_fork = atoi(argv[3]);
    if (atoi(argv[4])) {
        char line[64];
        if (!fgets(line, sizeof line, stdin))
            return 3;
    }
    pthread_t tids[64];
    for (int i = 0; i < threads && i < 64; i++)
        pthread_create(&tids[i], NULL, thread_main, NULL);
    for (int i = 0; i < threads && i < 64; i++)
        pthread_join(tids[i], NULL);
    if (do_fork) {
        pid_t child = fork();
        if (child == 0) {
            pattern();
            _exit(0);
        }
        waitpid(child, NULL, 0);
    }
    if (argc > 5) {
        execv(argv[5], &argv[5]);
        return 4;
    }
    return 0;
}
