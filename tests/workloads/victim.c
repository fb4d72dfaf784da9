/* sysgram watch's test program.
 *
 * Normal mode (from the start): a loop of file writes and reads, a socket round trip
 * over a socketpair, a short sleep, and a SIGUSR2 to itself (handled, ignored).
 * Attack mode, switched on by SIGUSR1 (once per signal): runs `/bin/sh -c CMD`, reads
 * /etc/passwd, connects to a loopback TCP listener on PORT, then returns to normal.
 *
 * usage: victim [PORT [STAMP_FILE [CMD]]]
 *   PORT        loopback port to connect to in attack mode (0: skip the connect)
 *   STAMP_FILE  appended with the CLOCK_MONOTONIC ns of each attack's first syscall
 *               (written after the attack, so it is not part of it)
 *   CMD         the shell command (default "id >/dev/null")
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t attacks_pending, stopping;

static void on_usr1(int sig) { (void)sig; attacks_pending++; }
static void on_term(int sig) { (void)sig; stopping = 1; }
static void on_usr2(int sig) { (void)sig; }

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: not a syscall */
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void normal_round(const char *path, int sv[2], int round) {
    char buf[512];
    memset(buf, 'a' + round % 26, sizeof buf);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        write(fd, buf, 64 + round % 128);
        close(fd);
    }
    fd = open(path, O_RDONLY);
    if (fd >= 0) {
        while (read(fd, buf, sizeof buf) > 0) {}
        close(fd);
    }
    write(sv[0], "ping", 4);
    read(sv[1], buf, sizeof buf);
    write(sv[1], "pong", 4);
    read(sv[0], buf, sizeof buf);
    struct timespec nap = {0, 10 * 1000 * 1000};
    nanosleep(&nap, NULL);
    /* Normal mode handles a signal too (its own SIGUSR2), so signal delivery itself
     * (rt_sigreturn) is not what makes the attack stand out. */
    kill(getpid(), SIGUSR2);
    /* A round is 15 calls (openat write close openat read read close, 2 x write read,
     * clock_nanosleep getpid kill rt_sigreturn): prime to the default window stride of
     * 16, so a short training run sees windows starting at every phase of the loop. */
}

static void attack(int port, const char *cmd) {
    pid_t child = fork();
    if (child == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    if (child > 0) waitpid(child, NULL, 0);
    char buf[4096];
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd >= 0) {
        while (read(fd, buf, sizeof buf) > 0) {}
        close(fd);
    }
    if (port > 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (s >= 0) {
            connect(s, (struct sockaddr *)&addr, sizeof addr);
            close(s);
        }
    }
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    const char *stamp = argc > 2 ? argv[2] : NULL;
    const char *cmd = argc > 3 ? argv[3] : "id >/dev/null";
    char path[64];
    snprintf(path, sizeof path, "/tmp/sysgram-victim-%d", (int)getpid());

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("ready %d\n", (int)getpid());

    for (int round = 0; !stopping; round++) {
        if (attacks_pending) {
            attacks_pending--;
            long long t0 = mono_ns();
            attack(port, cmd);
            if (stamp) {
                FILE *f = fopen(stamp, "a");
                if (f) {
                    fprintf(f, "%lld\n", t0);
                    fclose(f);
                }
            }
            continue;
        }
        normal_round(path, sv, round);
    }
    unlink(path);
    return 0;
}
