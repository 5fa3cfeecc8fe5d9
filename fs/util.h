/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers every layer uses: cleanup attributes, ownership transfer, safe I/O. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(util_freep)
#define _cleanup_close_ _cleanup_(util_closep)
#define _cleanup_fclose_ _cleanup_(util_fclosep)
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

static inline void util_freep(void *p) { free(*(void **)p); }
static inline void util_closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
static inline void util_fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

/* Hand ownership over: returns the value and resets the variable so cleanup skips it. */
#define TAKE_PTR(p)                                                                                \
        ({                                                                                         \
                __typeof__(p) _tp = (p);                                                           \
                (p) = NULL;                                                                        \
                _tp;                                                                               \
        })
#define TAKE_FD(fd)                                                                                \
        ({                                                                                         \
                int _tf = (fd);                                                                    \
                (fd) = -1;                                                                         \
                _tf;                                                                               \
        })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation failure is not something a container tool can recover from sensibly. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
/* The first error wins: *slot is set from fmt unless it holds a message already. */
void util_error_once(char **slot, const char *fmt, ...) _printf_(2, 3);

/* Full read/write, retrying on EINTR and short transfers. Return 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);
ssize_t util_read_all(int fd, void *buf, size_t len);
/* The same at an offset (pread): the bytes read, fewer at EOF, or -errno. */
ssize_t util_pread_all(int fd, void *buf, size_t len, off_t off);
/* Read a whole regular file from an open fd (at most max bytes), NUL-terminated. */
int util_read_fd(int fd, size_t max, char **ret_data, size_t *ret_len);
/* Read a whole file (at most max bytes) relative to dirfd, never following a final symlink. */
int util_read_file_at(int dirfd, const char *path, size_t max, char **ret_data, size_t *ret_len);
/* Write data to dirfd/path atomically: temp file in the same dir, fsync, rename. */
int util_write_file_atomic_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode);
/* The same without the fsync: readers see the old or the new content, never a mix, but after a
 * crash the file may be empty. For files that are regenerated, or whose loss is harmless
 * (an fsync costs 1-6 ms on a rotating disk). */
int util_replace_file_at(int dirfd, const char *path, const void *data, size_t len, mode_t mode);
/* openat2(2) of path below dirfd with the given RESOLVE_* flags ("" and "/" mean dirfd
 * itself; leading slashes are dropped); O_CLOEXEC is added, and O_CREAT makes a file of mode
 * 0755 (before the umask). Returns the fd or -errno. */
int util_openat2(int dirfd, const char *path, int flags, uint64_t resolve);
/* mkdir -p relative to dirfd (components must not be symlinks). */
int util_mkdir_p_at(int dirfd, const char *path, mode_t mode);
/* rm -rf relative to dirfd, never following symlinks. */
int util_rm_rf_at(int dirfd, const char *path);

/* Logging for the CLI and daemon; library code returns errors instead of printing. */
enum { LOG_ERR_LEVEL = 0, LOG_WARN_LEVEL = 1, LOG_INFO_LEVEL = 2, LOG_DEBUG_LEVEL = 3 };
extern int util_log_level;
void util_log(int level, const char *fmt, ...) _printf_(2, 3);
#define log_debug(...) util_log(LOG_DEBUG_LEVEL, __VA_ARGS__)
#define log_info(...) util_log(LOG_INFO_LEVEL, __VA_ARGS__)
#define log_warn(...) util_log(LOG_WARN_LEVEL, __VA_ARGS__)

/* SipHash-2-4 of data under a 16-byte key: a hash no one can aim collisions at without the key
 * (directory cookies of names a container chooses). */
uint64_t util_siphash(const uint8_t key[16], const void *data, size_t len);
