/* SPDX-License-Identifier: Apache-2.0 */
/* A small fsstress for tests/integration/load.sh, built with `gcc -static` by the test and run
 * inside containers: random creates, writes (whole, partial, appends, holes), truncates,
 * renames, hard links, unlinks, mkdir/rmdir and fsyncs in DIR for SECS seconds, against a model
 * of what every file must hold; each file read back is checked, and at the end every file is.
 *
 *   fsstress DIR SECS SEED
 *
 * Prints "ops N checked M" and exits 0, or names the first mismatch and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 48
#define MAXSIZE (192 * 1024)

struct slot {
        int used;
        char name[64];     /* relative to DIR */
        unsigned char *data;
        size_t size;
};

static struct slot s[SLOTS];
static const char *dir;
static uint64_t rng;
static unsigned long ops, checked;

static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static double now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what, const char *name)
{
        printf("FAIL %s %s: %s (after %lu ops)\n", what, name, strerror(errno), ops);
        exit(1);
}

static void path(char *buf, const char *name)
{
        snprintf(buf, 512, "%s/%s", dir, name);
}

static void fill(unsigned char *b, size_t n)
{
        for (size_t i = 0; i < n; i++)
                b[i] = (unsigned char)(rnd() >> 24);
}

static void check(struct slot *x)
{
        char p[512];
        path(p, x->name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("open", x->name);
        struct stat st;
        if (fstat(fd, &st) < 0)
                die("fstat", x->name);
        if ((size_t)st.st_size != x->size) {
                errno = 0;
                printf("FAIL size %s: %lld, expected %zu (after %lu ops)\n", x->name, (long long)st.st_size, x->size, ops);
                exit(1);
        }
        unsigned char *b = malloc(x->size + 1);
        size_t got = 0;
        while (got < x->size) {
                ssize_t n = pread(fd, b + got, x->size - got, (off_t)got);
                if (n <= 0)
                        die("read", x->name);
                got += (size_t)n;
        }
        if (x->size && memcmp(b, x->data, x->size) != 0) {
                size_t i = 0;
                while (b[i] == x->data[i])
                        i++;
                printf("FAIL content %s: differs at byte %zu of %zu (after %lu ops)\n", x->name, i, x->size, ops);
                exit(1);
        }
        free(b);
        close(fd);
        checked++;
}

static void op(void)
{
        struct slot *x = &s[rnd() % SLOTS];
        char p[512], q[512];
        int fd;
        unsigned k = (unsigned)(rnd() % 10);
        if (!x->used)
                k = 0;
        ops++;
        switch (k) {
        case 0: { /* create (or replace) with random content */
                if (x->used) {
                        path(p, x->name);
                        if (unlink(p) < 0)
                                die("unlink", x->name);
                }
                snprintf(x->name, sizeof(x->name), "%s/f%lu", rnd() % 2 ? "a" : "b/c", ops);
                x->size = (size_t)(rnd() % MAXSIZE);
                x->data = realloc(x->data, MAXSIZE * 2);
                fill(x->data, x->size);
                path(p, x->name);
                fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd < 0)
                        die("create", x->name);
                size_t off = 0;
                while (off < x->size) { /* in uneven chunks */
                        size_t n = 1 + (size_t)(rnd() % 40000);
                        if (n > x->size - off)
                                n = x->size - off;
                        if (write(fd, x->data + off, n) != (ssize_t)n)
                                die("write", x->name);
                        off += n;
                }
                close(fd);
                x->used = 1;
                break;
        }
        case 1: { /* overwrite a range, maybe past the end (a hole in between) */
                size_t at = (size_t)(rnd() % (x->size + 4096)), n = (size_t)(rnd() % 20000);
                if (at + n > MAXSIZE * 2 - 1)
                        break;
                if (at > x->size)
                        memset(x->data + x->size, 0, at - x->size);
                fill(x->data + at, n);
                path(p, x->name);
                fd = open(p, O_WRONLY | O_CLOEXEC);
                if (fd < 0 || pwrite(fd, x->data + at, n, (off_t)at) != (ssize_t)n)
                        die("pwrite", x->name);
                close(fd);
                /* a zero-byte pwrite does not extend the file */
                if (n && at + n > x->size)
                        x->size = at + n;
                break;
        }
        case 2: { /* append */
                size_t n = (size_t)(rnd() % 8192);
                if (x->size + n > MAXSIZE * 2 - 1)
                        break;
                fill(x->data + x->size, n);
                path(p, x->name);
                fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
                if (fd < 0 || write(fd, x->data + x->size, n) != (ssize_t)n)
                        die("append", x->name);
                close(fd);
                x->size += n;
                break;
        }
        case 3: { /* truncate, shorter or longer */
                size_t n = (size_t)(rnd() % MAXSIZE);
                if (n > x->size)
                        memset(x->data + x->size, 0, n - x->size);
                path(p, x->name);
                if (truncate(p, (off_t)n) < 0)
                        die("truncate", x->name);
                x->size = n;
                break;
        }
        case 4: { /* rename, across directories */
                char nn[64];
                snprintf(nn, sizeof(nn), "%s/r%lu", rnd() % 2 ? "a" : "b/c", ops);
                path(p, x->name);
                path(q, nn);
                if (rename(p, q) < 0)
                        die("rename", x->name);
                memcpy(x->name, nn, sizeof(nn));
                break;
        }
        case 5: { /* a hard link, then the old name goes: the data must follow */
                char nn[64];
                snprintf(nn, sizeof(nn), "b/l%lu", ops);
                path(p, x->name);
                path(q, nn);
                if (link(p, q) < 0)
                        die("link", x->name);
                if (unlink(p) < 0)
                        die("unlink old name", x->name);
                memcpy(x->name, nn, sizeof(nn));
                break;
        }
        case 6: /* unlink */
                path(p, x->name);
                if (unlink(p) < 0)
                        die("unlink", x->name);
                x->used = 0;
                break;
        case 7: { /* fsync, and a directory that comes and goes */
                path(p, x->name);
                fd = open(p, O_RDWR | O_CLOEXEC);
                if (fd < 0 || fsync(fd) < 0)
                        die("fsync", x->name);
                close(fd);
                snprintf(q, sizeof(q), "%s/d%lu", dir, ops);
                if (mkdir(q, 0755) < 0 || rmdir(q) < 0)
                        die("mkdir/rmdir", q);
                break;
        }
        default:
                check(x);
        }
}

int main(int argc, char **argv)
{
        if (argc != 4) {
                fprintf(stderr, "usage: fsstress DIR SECS SEED\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        dir = argv[1];
        double end = now() + atof(argv[2]);
        rng = strtoull(argv[3], NULL, 10) * 2654435761u + 1;
        char p[512];
        mkdir(dir, 0755);
        path(p, "a");
        mkdir(p, 0755);
        path(p, "b");
        mkdir(p, 0755);
        path(p, "b/c");
        mkdir(p, 0755);
        while (now() < end)
                op();
        for (int i = 0; i < SLOTS; i++)
                if (s[i].used)
                        check(&s[i]);
        printf("ops %lu checked %lu\n", ops, checked);
        return 0;
}
