/*
 * sg-demo-httpd: the small HTTP service that `make demo` protects and then attacks.
 *
 * It behaves like a typical internal web tool: static files, a JSON API and a
 * "ping" diagnostic. It carries a DELIBERATE command-injection bug, so it binds to
 * 127.0.0.1 only and must never be run outside the demo:
 *
 *   GET /api/ping?host=H pings H natively (ICMP over a raw socket) when H is an IPv4
 *   address or "localhost". Anything else falls back to the system ping tool through
 *   popen("ping -c 1 -W 1 <H>") without validating H, so `?host=x;any shell command`
 *   runs that command. Normal traffic never takes the fallback, so spawning a shell is
 *   not part of the server's normal behaviour: exactly what sysgram should notice.
 *
 * Usage: sg-demo-httpd --root DIR --log FILE [--port N] [--workers N]
 * Prints "listening 127.0.0.1:<port>" on stdout once it accepts connections; exits
 * on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 8192
#define BODY_MAX 8192

static const char *docroot = ".";
static int listen_fd = -1;
static int log_fd = -1;
static time_t started_at;
static atomic_ulong requests_served;
static int worker_count = 4;

/* The JSON API's data: a fixed catalogue, as a small inventory service would have. */
static const struct {
    int id;
    const char *name;
    int stock;
} catalogue[] = {
    {1, "keyboard", 12}, {2, "mouse", 40},    {3, "monitor", 5},
    {4, "cable", 230},   {5, "headset", 17},  {6, "webcam", 9},
};
#define CATALOGUE_LEN ((int)(sizeof(catalogue) / sizeof(catalogue[0])))

struct request {
    char method[8];
    char path[1600];
    char query[1600];
};

static void send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

static void respond(int fd, int status, const char *type, const char *body, size_t len)
{
    char head[256];
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %d %s\r\nServer: sg-demo-httpd\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, type, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static void respond_text(int fd, int status, const char *type, const char *body)
{
    respond(fd, status, type, body, strlen(body));
}

/* Reads until the end of the request head; returns 0 on a parsable request line. */
static int read_request(int fd, struct request *req)
{
    char buf[REQ_MAX];
    size_t used = 0;
    while (used < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + used, sizeof buf - 1 - used, 0);
        if (n <= 0)
            return -1;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            break;
    }
    char target[1600];
    if (sscanf(buf, "%7s %1599s", req->method, target) != 2)
        return -1;
    char *q = strchr(target, '?');
    req->query[0] = '\0';
    if (q) {
        *q = '\0';
        snprintf(req->query, sizeof req->query, "%s", q + 1);
    }
    snprintf(req->path, sizeof req->path, "%s", target);
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies the percent-decoded value of `key` from a query string into out. */
static int query_param(const char *query, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, key, klen) != 0 || p[klen] != '=')
            continue;
        const char *v = p + klen + 1;
        size_t o = 0;
        while (*v && *v != '&' && o + 1 < cap) {
            if (*v == '%' && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                out[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                v += 3;
            } else {
                out[o++] = *v == '+' ? ' ' : *v;
                v++;
            }
        }
        out[o] = '\0';
        return 0;
    }
    return -1;
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html";
    if (!strcmp(dot, ".css"))
        return "text/css";
    if (!strcmp(dot, ".js"))
        return "application/javascript";
    if (!strcmp(dot, ".json"))
        return "application/json";
    if (!strcmp(dot, ".png"))
        return "image/png";
    return "application/octet-stream";
}

static int not_found(int fd)
{
    respond_text(fd, 404, "text/plain", "not found\n");
    return 404;
}

static int serve_file(int fd, const char *name)
{
    char path[1024];
    if (strstr(name, "..") || name[0] == '/')
        return not_found(fd);
    snprintf(path, sizeof path, "%s/%s", docroot, name);
    int file = open(path, O_RDONLY | O_CLOEXEC);
    if (file < 0)
        return not_found(fd);
    struct stat st;
    if (fstat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(file);
        return not_found(fd);
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 200 OK\r\nServer: sg-demo-httpd\r\nContent-Type: %s\r\n"
                     "Content-Length: %lld\r\nConnection: close\r\n\r\n",
                     content_type(name), (long long)st.st_size);
    send_all(fd, head, (size_t)n);
    off_t off = 0;
    while (off < st.st_size) {
        if (sendfile(fd, file, &off, (size_t)(st.st_size - off)) <= 0)
            break;
    }
    close(file);
    return 200;
}

static int api_status(int fd)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"service\":\"sg-demo-httpd\",\"uptime_s\":%ld,\"requests\":%lu,"
                     "\"workers\":%d}\n",
                     (long)(time(NULL) - started_at), atomic_load(&requests_served),
                     worker_count);
    respond(fd, 200, "application/json", body, (size_t)n);
    return 200;
}

static int api_items(int fd, const char *query)
{
    char idtext[16];
    char body[BODY_MAX];
    size_t used = 0;
    int want = query_param(query, "id", idtext, sizeof idtext) == 0 ? atoi(idtext) : 0;
    used += (size_t)snprintf(body + used, sizeof body - used, "[");
    for (int i = 0; i < CATALOGUE_LEN; i++) {
        if (want && catalogue[i].id != want)
            continue;
        used += (size_t)snprintf(body + used, sizeof body - used,
                                 "%s{\"id\":%d,\"name\":\"%s\",\"stock\":%d}",
                                 used > 1 ? "," : "", catalogue[i].id, catalogue[i].name,
                                 catalogue[i].stock);
    }
    int found = used > 1;
    used += (size_t)snprintf(body + used, sizeof body - used, "]\n");
    if (want && !found)
        return not_found(fd);
    respond(fd, 200, "application/json", body, used);
    return 200;
}

static unsigned short icmp_checksum(const void *data, size_t len)
{
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2)
        sum += *p++;
    if (len)
        sum += *(const unsigned char *)p;
    sum = (sum >> 16) + (sum & 0xffff);
    sum += sum >> 16;
    return (unsigned short)~sum;
}

/* One ICMP echo over a raw socket; returns the round trip in µs, or -1. */
static long icmp_echo(struct in_addr addr)
{
    static atomic_ushort next_seq;
    int sock = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (sock < 0)
        return -1;
    struct icmphdr echo = {.type = ICMP_ECHO};
    echo.un.echo.id = htons((unsigned short)gettid());
    echo.un.echo.sequence = htons(atomic_fetch_add(&next_seq, 1));
    echo.checksum = icmp_checksum(&echo, sizeof echo);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = addr};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long rtt = -1;
    if (sendto(sock, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0)
        goto out;
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        if (poll(&pfd, 1, 1000) <= 0)
            break;
        unsigned char pkt[256];
        ssize_t n = recv(sock, pkt, sizeof pkt, 0);
        if (n < (ssize_t)sizeof(struct iphdr))
            continue;
        size_t ihl = (size_t)(((struct iphdr *)pkt)->ihl) * 4;
        if ((size_t)n < ihl + sizeof(struct icmphdr))
            continue;
        struct icmphdr *reply = (struct icmphdr *)(pkt + ihl);
        /* A raw socket sees every ICMP packet: keep only the reply to this echo. */
        if (reply->type == ICMP_ECHOREPLY && reply->un.echo.id == echo.un.echo.id &&
            reply->un.echo.sequence == echo.un.echo.sequence) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            rtt = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000;
            break;
        }
    }
out:
    close(sock);
    return rtt;
}

/*
 * THE BUG: hosts the native code cannot parse go to the system ping tool, pasted
 * unescaped into a shell command line.
 */
static int ping_fallback(int fd, const char *host)
{
    char cmd[1200];
    char body[BODY_MAX];
    size_t used = 0;
    snprintf(cmd, sizeof cmd, "ping -c 1 -W 1 %s 2>&1", host);
    FILE *out = popen(cmd, "r");
    if (!out) {
        respond_text(fd, 400, "text/plain", "ping failed\n");
        return 400;
    }
    size_t n;
    while ((n = fread(body + used, 1, sizeof body - 1 - used, out)) > 0)
        used += n;
    pclose(out);
    respond(fd, 200, "text/plain", body, used);
    return 200;
}

static int api_ping(int fd, const char *query)
{
    char host[1024];
    char body[256];
    struct in_addr addr;
    if (query_param(query, "host", host, sizeof host) != 0 || !host[0]) {
        respond_text(fd, 400, "application/json", "{\"error\":\"host is required\"}\n");
        return 400;
    }
    const char *numeric = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    if (inet_pton(AF_INET, numeric, &addr) != 1)
        return ping_fallback(fd, host);
    long rtt = icmp_echo(addr);
    int n = snprintf(body, sizeof body, "{\"host\":\"%s\",\"alive\":%s,\"rtt_us\":%ld}\n",
                     numeric, rtt >= 0 ? "true" : "false", rtt);
    respond(fd, 200, "application/json", body, (size_t)n);
    return 200;
}

static int route(int fd, const struct request *req)
{
    if (strcmp(req->method, "GET") != 0) {
        respond_text(fd, 400, "text/plain", "only GET is supported\n");
        return 400;
    }
    if (!strcmp(req->path, "/"))
        return serve_file(fd, "index.html");
    if (!strncmp(req->path, "/static/", 8))
        return serve_file(fd, req->path + 8);
    if (!strcmp(req->path, "/api/status"))
        return api_status(fd);
    if (!strcmp(req->path, "/api/items"))
        return api_items(fd, req->query);
    if (!strcmp(req->path, "/api/ping"))
        return api_ping(fd, req->query);
    return not_found(fd);
}

static void log_access(const struct request *req, int status)
{
    char line[700];
    int n = snprintf(line, sizeof line, "%ld \"%s %.400s\" %d\n", (long)time(NULL), req->method,
                     req->path, status);
    if (log_fd >= 0)
        send_all(log_fd, line, (size_t)n);
}

static void handle(int fd)
{
    struct request req;
    if (read_request(fd, &req) != 0)
        return;
    int status = route(fd, &req);
    atomic_fetch_add(&requests_served, 1);
    log_access(&req, status);
}

static void *worker(void *unused)
{
    (void)unused;
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        handle(fd);
        close(fd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *log_path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--root"))
            docroot = argv[i + 1];
        else if (!strcmp(argv[i], "--log"))
            log_path = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers"))
            worker_count = atoi(argv[i + 1]);
    }
    if (worker_count < 1 || worker_count > 64)
        worker_count = 4;
    started_at = time(NULL);
    if (log_path)
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

    /* Block the stop signals in every thread; main waits for them with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t salen = sizeof sa;
    if (bind(listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(listen_fd, 128) < 0 ||
        getsockname(listen_fd, (struct sockaddr *)&sa, &salen) < 0) {
        perror("sg-demo-httpd: bind/listen");
        return 1;
    }
    for (int i = 0; i < worker_count; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, NULL) != 0) {
            perror("sg-demo-httpd: pthread_create");
            return 1;
        }
    }
    printf("listening 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    int sig;
    sigwait(&stop, &sig);
    return 0;
}
