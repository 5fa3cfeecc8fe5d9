/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE passthrough on top of libfuse 3.14: see passthrough.h. */
#include "passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* The kernel ABI (include/uapi/linux/fuse.h, protocol 7.40), which Debian 12's headers and
 * libfuse 3.14 do not have yet. */
#define PT_FUSE_INIT 26
#define PT_FUSE_INIT_EXT (1u << 30)
#define PT_FUSE_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH is bit 37: bit 5 of flags2 */
#define PT_FOPEN_PASSTHROUGH (1u << 7)
struct pt_in_header {
        uint32_t len, opcode;
        uint64_t unique, nodeid;
        uint32_t uid, gid, pid;
        uint16_t total_extlen, padding;
};
struct pt_out_header {
        uint32_t len;
        int32_t error;
        uint64_t unique;
};
struct pt_init_in {
        uint32_t major, minor, max_readahead, flags, flags2;
        uint32_t unused[11];
};
struct pt_init_out { /* up to flags2 and max_stack_depth */
        uint32_t major, minor, max_readahead, flags;
        uint16_t max_background, congestion_threshold;
        uint32_t max_write, time_gran;
        uint16_t max_pages, map_alignment;
        uint32_t flags2, max_stack_depth;
};
struct pt_open_out {
        uint64_t fh;
        uint32_t open_flags;
        int32_t backing_id;
};
struct pt_backing_map {
        int32_t fd;
        uint32_t flags;
        uint64_t padding;
};
#define PT_IOC_BACKING_OPEN _IOW(229, 1, struct pt_backing_map)
#define PT_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

static atomic_uint_fast64_t init_unique = UINT64_MAX; /* the INIT request's, while unanswered */
static atomic_bool offered, enabled;
static atomic_int device = -1;
static _Thread_local int32_t marked;

/* ---- the session's I/O ---- */

ssize_t pt_io_read(int fd, void *buf, size_t len, void *ud)
{
        (void)ud;
        ssize_t n = read(fd, buf, len);
        const struct pt_in_header *h = buf;
        if (n >= (ssize_t)(sizeof(*h) + sizeof(struct pt_init_in)) && h->opcode == PT_FUSE_INIT) {
                const struct pt_init_in *in = (const void *)(h + 1);
                offered = (in->flags & PT_FUSE_INIT_EXT) && (in->flags2 & PT_FUSE_PASSTHROUGH_FLAGS2);
                init_unique = h->unique;
        }
        return n;
}

ssize_t pt_io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned flags, void *ud)
{
        (void)ud;
        return splice(fdin, offin, fdout, offout, len, flags);
}

/* Whether iov is the successful reply to the request unique, with an argument of at least
 * min bytes; the header is iov[0], the argument iov[1] (libfuse's send_reply_ok). */
static bool is_reply(const struct iovec *iov, int count, uint64_t unique, size_t min)
{
        if (count != 2 || iov[0].iov_len != sizeof(struct pt_out_header) || iov[1].iov_len < min)
                return false;
        const struct pt_out_header *h = iov[0].iov_base;
        return h->error == 0 && (unique == UINT64_MAX || h->unique == unique);
}

ssize_t pt_io_writev(int fd, struct iovec *iov, int count, void *ud)
{
        (void)ud;
        int32_t backing = marked;
        marked = 0;
        uint64_t iu = init_unique;
        if (iu != UINT64_MAX && is_reply(iov, count, iu, sizeof(struct pt_init_out))) {
                init_unique = UINT64_MAX;
                struct pt_init_out *out = iov[1].iov_base;
                if (offered && (out->flags & PT_FUSE_INIT_EXT)) {
                        /* backing files on a plain filesystem: the mount stacks one deep, so
                         * the kernel's overlayfs may still use it as a layer */
                        out->flags2 |= PT_FUSE_PASSTHROUGH_FLAGS2;
                        out->max_stack_depth = 1;
                        ssize_t n = writev(fd, iov, count);
                        enabled = n >= 0;
                        return n;
                }
        }
        if (backing > 0 && is_reply(iov, count, UINT64_MAX, sizeof(struct pt_open_out))) {
                /* OPEN: the argument is fuse_open_out; CREATE: fuse_entry_out then it */
                struct pt_open_out *o = (void *)((char *)iov[1].iov_base + iov[1].iov_len - sizeof(*o));
                o->open_flags |= PT_FOPEN_PASSTHROUGH;
                o->backing_id = backing;
        }
        return writev(fd, iov, count);
}

void pt_set_device(int fd) { device = fd; }

bool pt_enabled(void) { return enabled; }

void pt_mark(int32_t backing) { marked = backing; }

/* ---- per-node modes ---- */

struct pt_node {
        struct pt_node *next;
        uint64_t id;
        uint32_t cached;      /* open files in PT_CACHED mode */
        uint32_t passthrough; /* open files in PT_PASSTHROUGH mode, all with backing */
        int32_t backing;
        bool writable;
        dev_t dev;
        ino_t ino;
};

#define PT_BUCKETS 4096
static struct pt_node *buckets[PT_BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct pt_node **slot(uint64_t id)
{
        struct pt_node **p = &buckets[(id * 0x9e3779b97f4a7c15ULL) >> 52];
        while (*p && (*p)->id != id)
                p = &(*p)->next;
        return p;
}

/* A backing id for fd's file; writable: opened read-write whatever fd's own mode. */
static int32_t backing_open(int fd, bool writable)
{
        _cleanup_close_ int rw = -1;
        if (writable && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR) {
                /* the same inode, through the fd's magic link: nothing is looked up by name */
                char path[64];
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
                rw = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY);
                if (rw < 0)
                        return -errno;
                fd = rw;
        }
        struct pt_backing_map map = { .fd = fd };
        int id = ioctl(device, PT_IOC_BACKING_OPEN, &map);
        if (id < 0) {
                int e = errno;
                if (e == EPERM || e == ENOTTY || e == EOPNOTSUPP)
                        enabled = false; /* not for us (no CAP_SYS_ADMIN, old kernel): stop trying */
                return -e;
        }
        return id;
}

enum pt_mode pt_open(uint64_t id, int fd, bool want, bool writable, int32_t *ret_backing)
{
        struct stat st;
        bool usable = enabled && fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                      (writable || st.st_size > 0); /* empty image files are memfds */
        pthread_mutex_lock(&lock);
        struct pt_node **p = slot(id);
        struct pt_node *n = *p;
        enum pt_mode m = PT_CACHED;
        if (n && n->passthrough) {
                /* the kernel holds one backing file per inode, and every open of the inode
                 * must use it: the same file joins; another (a copy-up made since) cannot */
                m = usable && n->dev == st.st_dev && n->ino == st.st_ino ? PT_PASSTHROUGH : PT_BUSY;
        } else if (want && usable && !(n && n->cached)) {
                int32_t b = backing_open(fd, writable);
                if (b > 0) {
                        if (!n) {
                                n = xcalloc(1, sizeof(*n));
                                n->id = id;
                                *p = n;
                        }
                        n->backing = b;
                        n->writable = writable;
                        n->dev = st.st_dev;
                        n->ino = st.st_ino;
                        m = PT_PASSTHROUGH;
                }
        }
        if (m == PT_PASSTHROUGH) {
                n->passthrough++;
                *ret_backing = n->backing;
        } else if (m == PT_CACHED) {
                if (!n) {
                        n = xcalloc(1, sizeof(*n));
                        n->id = id;
                        *p = n;
                }
                n->cached++;
        }
        pthread_mutex_unlock(&lock);
        return m;
}

bool pt_lower_busy(uint64_t id)
{
        pthread_mutex_lock(&lock);
        struct pt_node *n = *slot(id);
        bool busy = n && n->passthrough && !n->writable;
        pthread_mutex_unlock(&lock);
        return busy;
}

void pt_close(uint64_t id, enum pt_mode m)
{
        if (m == PT_BUSY)
                return;
        pthread_mutex_lock(&lock);
        struct pt_node **p = slot(id);
        struct pt_node *n = *p;
        if (n) {
                if (m == PT_PASSTHROUGH && n->passthrough && --n->passthrough == 0) {
                        uint32_t b = (uint32_t)n->backing;
                        ioctl(device, PT_IOC_BACKING_CLOSE, &b);
                        n->backing = 0;
                }
                if (m == PT_CACHED && n->cached)
                        n->cached--;
                if (!n->cached && !n->passthrough) {
                        *p = n->next;
                        free(n);
                }
        }
        pthread_mutex_unlock(&lock);
}
