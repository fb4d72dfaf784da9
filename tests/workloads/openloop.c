/* Benchmark workload: N open()+close() pairs of one path; prints ns per pair.
 * usage: openloop N PATH [RATE]    prints "<wall ns per pair> <thread CPU ns per pair>"
 * RATE > 0: at most RATE pairs per second (paced in steps of 100 pairs).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    const char *path = argc > 2 ? argv[2] : "/etc/hostname";
    double rate = argc > 3 ? atof(argv[3]) : 0;
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ca);
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd >= 0)
            close(fd);
        if (rate > 0 && i % 100 == 99) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            double due = (i + 1) / rate * 1e9;
            double spent = (now.tv_sec - a.tv_sec) * 1e9 + (now.tv_nsec - a.tv_nsec);
            if (due > spent) {
                struct timespec wait = {0, (long)(due - spent)};
                while (wait.tv_nsec >= 1000000000L) {
                    wait.tv_sec++;
                    wait.tv_nsec -= 1000000000L;
                }
                nanosleep(&wait, NULL);
            }
        }
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cb);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
    double cpu = (cb.tv_sec - ca.tv_sec) * 1e9 + (cb.tv_nsec - ca.tv_nsec);
    printf("%.2f %.2f\n", ns / (double)n, cpu / (double)n);
    return 0;
}
