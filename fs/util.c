/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

int util_log_level = LOG_WARN_LEVEL;

void *xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                abort();
        return p;
}

void *xcalloc(size_t n, size_t m)
{
        void *p = calloc(n ? n : 1, m ? m : 1);
        if (!p)
                abort();
        return p;
}

void *xrealloc(void *p, size_t n)
{
        p = realloc(p, n ? n : 1);
        if (!p)
                abort();
        return p;
}

char *xstrdup(const char *s)
{
        char *p = strdup(s);
        if (!p)
                abort();
        return p;
}

char *xstrndup(const char *s, size_t n)
{
        /* Never reads past s[n - 1]: names and targets in tree files are not NUL-terminated
         * where a corrupt file ends (strndup may scan further under ASan's strict checks). */
        const char *z = memchr(s, '\0', n);
        size_t len = z ? (size_t)(z - s) : n;
        char *p = xmalloc(len + 1);
        memcpy(p, s, len);
        p[len] = '\0';
        return p;
}

char *xasprintf(const char *fmt, ...)
{
        va_list ap;
        char *p;
        va_start(ap, fmt);
        int r = vasprintf(&p, fmt, ap);
        va_end(ap);
        if (r < 0)
                abort();
        return p;
}

void util_error_once(char **slot, const char *fmt, ...)
{
        if (*slot)
                return;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(slot, fmt, ap) < 0)
                *slot = NULL;
        va_end(ap);
}

int util_write_all(int fd, const void *buf, size_t len)
{
        const char *p = buf;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

/* read(2), or pread(2) at off when positional, until len bytes, EOF or an error */
static ssize_t read_until(int fd, void *buf, size_t len, bool positional, off_t off)
{
        char *p = buf;
        size_t got = 0;
        while (got < len) {
                ssize_t n = positional ? pread(fd, p + got, len - got, off + (off_t)got) : read(fd, p + got, len - got);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

ssize_t util_read_all(int fd, void *buf, size_t len) { return read_until(fd, buf, len, false, 0); }

ssize_t util_pread_all(int fd, void *buf, size_t len, off_t off) { return read_until(fd, buf, len, true, off); }

int util_read_fd(int fd, size_t max, char **ret_data, size_t *ret_len)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if ((uint64_t)st.st_size > max)
                return -EFBIG;
        /* Read to EOF rather than trusting st_size: files in /proc and /sys say 0. */
        size_t cap = (size_t)st.st_size + 1 < 4096 ? 4096 : (size_t)st.st_size + 1, len = 0;
        _cleanup_free_ char *data = xmalloc(cap);
        for (;;) {
                if (len + 1 >= cap) {
                        cap *= 2;
                        data = xrealloc(data, cap);
                }
                ssize_t n = util_read_all(fd, data + len, cap - 1 - len);
                if (n < 0)
                        return (int)n;
                len += (size_t)n;
                if (len > max)
                        return -EFBIG;
                if (len + 1 < cap)
                        break; /* a short read: EOF */
        }
        data[len] = '\0';
        *ret_data = TAKE_PTR(data);
        if (ret_len)
                *ret_len = len;
        return 0;
}

int util_read_file_at(int dirfd, const char *path, size_t max, char **ret_data, size_t *ret_len)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        return util_read_fd(fd, max, ret_data, ret_len);
}

static int write_file_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode, bool durable)
{
        _cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
        _cleanup_close_ int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        int r = util_write_all(fd, data, len);
        if (r == 0 && durable && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, path) < 0)
                r = -errno;
        if (r < 0)
                unlinkat(dirfd, tmp, 0);
        return r;
}

int util_write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode)
{
        return write_file_at(dirfd, path, data, len, mode, true);
}

int util_replace_file_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode)
{
        return write_file_at(dirfd, path, data, len, mode, false);
}

int util_openat2(int dirfd, const char *path, int flags, uint64_t resolve)
{
        /* a file O_CREAT makes gets 0755 before the umask, as docker's mount points do */
        struct open_how how = { .flags = (uint64_t)(flags | O_CLOEXEC), .resolve = resolve,
                                .mode = flags & O_CREAT ? 0755 : 0 };
        while (*path == '/')
                path++;
        /* openat2 answers EAGAIN when a rename or mount anywhere on the system raced with a ".."
         * step of the walk (RESOLVE_BENEATH, RESOLVE_IN_ROOT): the walk is safe to repeat. */
        for (int tries = 0;; tries++) {
                int fd = (int)syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof(how));
                if (fd >= 0)
                        return fd;
                if (errno != EAGAIN || tries >= 64)
                        return -errno;
        }
}

int util_mkdir_p_at(int dirfd, const char *path, mode_t mode)
{
        _cleanup_free_ char *p = xstrdup(path);
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdirat(dirfd, p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int rm_rf_children(int fd)
{
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
                        continue;
                if (errno != EISDIR && errno != EPERM) {
                        r = -errno;
                        continue;
                }
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub < 0) {
                        r = -errno;
                        continue;
                }
                int k = rm_rf_children(sub);
                if (k < 0)
                        r = k;
                if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        r = -errno;
        }
        closedir(d);
        return r;
}

int util_rm_rf_at(int dirfd, const char *path)
{
        if (unlinkat(dirfd, path, 0) == 0 || errno == ENOENT)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -errno;
        int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        int r = rm_rf_children(fd);
        if (unlinkat(dirfd, path, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                r = -errno;
        return r;
}

void util_log(int level, const char *fmt, ...)
{
        if (level > util_log_level)
                return;
        va_list ap;
        va_start(ap, fmt);
        fputs("ctfs: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static uint64_t le64(const uint8_t *p)
{
        uint64_t x = 0;
        for (int i = 7; i >= 0; i--)
                x = x << 8 | p[i];
        return x;
}

#define SIP_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND                                                                                  \
        do {                                                                                       \
                v0 += v1;                                                                          \
                v1 = SIP_ROTL(v1, 13);                                                             \
                v1 ^= v0;                                                                          \
                v0 = SIP_ROTL(v0, 32);                                                             \
                v2 += v3;                                                                          \
                v3 = SIP_ROTL(v3, 16);                                                             \
                v3 ^= v2;                                                                          \
                v0 += v3;                                                                          \
                v3 = SIP_ROTL(v3, 21);                                                             \
                v3 ^= v0;                                                                          \
                v2 += v1;                                                                          \
                v1 = SIP_ROTL(v1, 17);                                                             \
                v1 ^= v2;                                                                          \
                v2 = SIP_ROTL(v2, 32);                                                             \
        } while (0)

uint64_t util_siphash(const uint8_t key[16], const void *data, size_t len)
{
        const uint8_t *in = data;
        uint64_t k0 = le64(key), k1 = le64(key + 8);
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
        const uint8_t *end = in + len - len % 8;
        for (; in != end; in += 8) {
                uint64_t m = le64(in);
                v3 ^= m;
                SIP_ROUND;
                SIP_ROUND;
                v0 ^= m;
        }
        uint64_t b = (uint64_t)len << 56;
        for (size_t i = 0; i < len % 8; i++)
                b |= (uint64_t)in[i] << (8 * i);
        v3 ^= b;
        SIP_ROUND;
        SIP_ROUND;
        v0 ^= b;
        v2 ^= 0xff;
        SIP_ROUND;
        SIP_ROUND;
        SIP_ROUND;
        SIP_ROUND;
        return v0 ^ v1 ^ v2 ^ v3;
}
