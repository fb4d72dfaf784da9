/* Test workload: in each of THREADS threads (and in a forked child if FORK), make exactly
 * CALLS getppid() calls bracketed by markers: getsid(0) before, getpgid(0) after.
 * usage: pattern THREADS CALLS FORK WAIT [PROGRAM ARGS...]
 *   WAIT=1: read one line from stdin first; WAIT=2: start the threads first, and let
 *   them run their pattern once a line arrives on stdin; PROGRAM: exec it (with ARGS) at
 *   the end.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int calls;
static pthread_barrier_t release;   /* WAIT=2: the threads wait here for stdin's line */
static int wait_mode;

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
    if (wait_mode == 2)
        pthread_barrier_wait(&release);
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
    wait_mode = atoi(argv[4]);
    if (threads > 64)
        threads = 64;
    char line[64];
    if (wait_mode == 1 && !fgets(line, sizeof line, stdin))
        return 3;
    pthread_t tids[64];
    if (wait_mode == 2)
        pthread_barrier_init(&release, NULL, threads + 1);
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, thread_main, NULL);
    if (wait_mode == 2) {
        if (!fgets(line, sizeof line, stdin))
            return 3;
        pthread_barrier_wait(&release);
    }
    for (int i = 0; i < threads; i++)
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
