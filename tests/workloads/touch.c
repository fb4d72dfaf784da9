/* Test workload: touches known files, peers and a program, once each, when told to.
 * usage: touch DIR UNIXPATH    waits for a line on stdin, then:
 *   - opens DIR/plain, DIR/"new\nline", DIR/"esc\x1b[31m", DIR/<0xff 0xfe> (non-UTF-8)
 *     with O_CREAT|O_WRONLY, then DIR/<4000-byte name> with O_RDONLY (it fails: too long
 *     for one component, the path is still read);
 *   - TCP: listens on 127.0.0.1 and ::1 (ephemeral ports), connects to each, accepts;
 *   - Unix stream: listens on UNIXPATH, connects, accepts;
 *   - UDP: sendto 127.0.0.1:9 (discard) once;
 *   - forks and execs /bin/true with argv {"true", "", "a2", "a3", "a4"} and waits for it.
 * Prints "ports <tcp4 port> <tcp6 port> <udp source irrelevant>" and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void open_in(const char *dir, const char *name, int flags)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, flags, 0600);
    if (fd >= 0)
        close(fd);
}

static int tcp_pair(int family)
{
    int l = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    }
    if (bind(l, (struct sockaddr *)&ss, len) || listen(l, 4))
        return -1;
    getsockname(l, (struct sockaddr *)&ss, &len);
    int c = socket(family, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&ss, len))
        return -1;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int a = accept4(l, (struct sockaddr *)&peer, &plen, 0);
    close(a);
    close(c);
    close(l);
    return ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                   : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void unix_pair(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    unlink(path);
    if (bind(l, (struct sockaddr *)&a, len) || listen(l, 4))
        exit(3);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, len))
        exit(4);
    int s = accept(l, NULL, NULL);
    close(s);
    close(c);
    close(l);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    char line[16];
    if (!fgets(line, sizeof(line), stdin))
        return 2;
    const char *dir = argv[1];
    open_in(dir, "plain", O_CREAT | O_WRONLY);
    open_in(dir, "new\nline", O_CREAT | O_WRONLY);
    open_in(dir, "esc\x1b[31m", O_CREAT | O_WRONLY);
    open_in(dir, "\xff\xfe", O_CREAT | O_WRONLY);
    char longname[4001];
    memset(longname, 'L', 4000);
    longname[4000] = 0;
    open_in(dir, longname, O_RDONLY);

    int p4 = tcp_pair(AF_INET);
    int p6 = tcp_pair(AF_INET6);
    unix_pair(argv[2]);

    int u = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(9)};
    d.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sendto(u, "x", 1, 0, (struct sockaddr *)&d, sizeof(d));
    close(u);

    pid_t child = fork();
    if (child == 0) {
        char *args[] = {"true", "", "a2", "a3", "a4", NULL};   /* an empty one too */
        execv("/bin/true", args);
        _exit(127);
    }
    waitpid(child, NULL, 0);
    printf("ports %d %d\n", p4, p6);
    fflush(stdout);
    return 0;
}
