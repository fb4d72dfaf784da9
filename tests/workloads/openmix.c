/* Test workload: N rounds, each opening every PATH with O_RDONLY and then with
 * O_RDONLY|O_CLOEXEC (a path that does not exist is still an open the kernel reads).
 * usage: openmix N PATH...
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1;
    for (long i = 0; i < n; i++)
        for (int flags = 0; flags < 2; flags++)
            for (int p = 2; p < argc; p++) {
                int fd = open(argv[p], O_RDONLY | (flags ? O_CLOEXEC : 0));
                if (fd >= 0)
                    close(fd);
            }
    return 0;
}
