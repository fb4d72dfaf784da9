/* Test workload: a non-leader thread execs. It runs the marker pattern (getsid, CALLS x
 * getppid, getpgid), then execs this program again with "after", which runs the pattern
 * once more as the (new) leader and exits. The main thread just waits meanwhile.
 * usage: threadexec CALLS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int calls;
static char *self;

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
    char count[16];
    snprintf(count, sizeof count, "%d", calls);
    char *argv[] = {self, count, "after", NULL};
    execv("/proc/self/exe", argv);
    return NULL;
}

int main(int argc, char **argv)
{
    calls = argc > 1 ? atoi(argv[1]) : 23;
    self = argv[0];
    if (argc > 2 && strcmp(argv[2], "after") == 0) {
        pattern();
        return 0;
    }
    pthread_t tid;
    pthread_create(&tid, NULL, thread_main, NULL);
    pthread_join(tid, NULL);   /* never returns: the exec replaces the whole process */
    return 1;
}
