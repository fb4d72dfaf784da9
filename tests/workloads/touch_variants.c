/* Test workload: the other spellings of the calls touch.c makes, once each, when told to.
 * usage: touch_variants DIR    waits for a line on stdin, then:
 *   - open(2) itself (not openat) DIR/legacy with O_CREAT|O_WRONLY;
 *   - openat2(2) DIR/two with O_RDONLY|O_CLOEXEC (skipped where the kernel has none);
 *   - UDP: sendmsg to 127.0.0.1:9 (discard) with the address in msg_name, once;
 *   - forks and execveat(AT_FDCWD, "/bin/true", {"true", "v1"}) and waits for it.
 * Prints "openat2 1" or "openat2 0" (whether the kernel had it) and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    char line[16];
    if (!fgets(line, sizeof(line), stdin))
        return 2;
    char path[4096];

    snprintf(path, sizeof(path), "%s/legacy", argv[1]);
    int fd = (int)syscall(SYS_open, path, O_CREAT | O_WRONLY, 0600);
    if (fd >= 0)
        close(fd);

    snprintf(path, sizeof(path), "%s/two", argv[1]);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = O_RDONLY | O_CLOEXEC;
    fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
    int had_openat2 = fd >= 0;
    if (fd >= 0)
        close(fd);

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(9)};
    d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    struct msghdr msg = {.msg_name = &d, .msg_namelen = sizeof(d), .msg_iov = &iov,
                         .msg_iovlen = 1};
    sendmsg(u, &msg, 0);
    close(u);

    pid_t child = fork();
    if (child == 0) {
        char *args[] = {"true", "v1", NULL};
        char *env[] = {NULL};
        syscall(SYS_execveat, AT_FDCWD, "/bin/true", args, env, 0);
        _exit(127);
    }
    waitpid(child, NULL, 0);
    printf("openat2 %d\n", had_openat2);
    fflush(stdout);
    return 0;
}
