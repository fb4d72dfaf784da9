/* A fork storm for sysgram watch's memory test: forks N short-lived children, at most P
 * alive at once; each child makes a few syscalls and exits.
 *
 * usage: victim_forkstorm [N [P]]    (default N = 10000, P = 64)
 * Prints "done N" when every child has been reaped.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    int parallel = argc > 2 ? atoi(argv[2]) : 64;
    int alive = 0, reaped = 0;
    for (int i = 0; i < n; i++) {
        if (alive >= parallel) {
            if (wait(NULL) > 0) reaped++;
            alive--;
        }
        pid_t child = fork();
        if (child == 0) {
            getppid();
            getpid();
            getuid();
            write(-1, "", 0);
            _exit(0);
        }
        if (child > 0) alive++;
    }
    while (alive-- > 0)
        if (wait(NULL) > 0) reaped++;
    printf("done %d\n", reaped);
    return 0;
}
