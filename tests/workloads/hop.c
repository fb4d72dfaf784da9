/* Test workload for ordering: one thread hops between CPUs while numbering its syscalls.
 * Round i: sched_setaffinity(cpu i % ncpu), then (i % 7 + 1) getppid() calls, then one
 * getuid(). Any reordering of the recorded stream breaks the known pattern.
 * usage: hop ROUNDS
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
    syscall(SYS_getsid, 0);
    for (int i = 0; i < rounds; i++) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(i % ncpu, &set);
        syscall(SYS_sched_setaffinity, 0, sizeof set, &set);
        for (int k = 0; k < i % 7 + 1; k++)
            syscall(SYS_getppid);
        syscall(SYS_getuid);
    }
    syscall(SYS_getpgid, 0);
    return 0;
}
