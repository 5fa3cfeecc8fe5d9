/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE passthrough on top of libfuse 3.14: see passthrough.h. */
#include "passthrough.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "uring.h"
#include "util.h"

/* The kernel ABI (include/uapi/linux/fuse.h, protocol 7.40), which Debian 12's headers and
 * libfuse 3.14 do not have yet. */
#define PT_FUSE_INIT 26
#define PT_FUSE_INIT_EXT (1u << 30)
#define PT_FUSE_HANDLE_KILLPRIV_V2 (1u << 28)
#define PT_FUSE_PASSTHROUGH_FLAGS2 (1u << 5) /* FUSE_PASSTHROUGH is bit 37: bit 5 of flags2 */
#define PT_FUSE_OVER_IO_URING_FLAGS2 (1u << 9) /* FUSE_OVER_IO_URING: bit 41 */
#define PT_FUSE_MAX_PAGES (1u << 22)
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
static atomic_bool offered, enabled, killpriv_offered, killpriv, uring_offered;
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
                killpriv_offered = in->flags & PT_FUSE_HANDLE_KILLPRIV_V2;
                uring_offered = (in->flags & PT_FUSE_INIT_EXT) && (in->flags2 & PT_FUSE_OVER_IO_URING_FLAGS2);
                init_unique = h->unique;
        }
        return n;
}

ssize_t pt_io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned flags, void *ud)
{
        (void)ud;
        marked = 0; /* a mark is for the reply that follows it, never a later one */
        if (fdout == device) { /* a reply (libfuse's splice_send) */
                ssize_t n = uring_reply_splice(fdin, len);
                if (n != -1)
                        return n < 0 ? (errno = (int)-n, -1) : n;
        }
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
        /* a mark is for the next reply written by this thread; notifications (unique 0)
         * leave it */
        int32_t backing = 0;
        if (count >= 1 && iov[0].iov_len == sizeof(struct pt_out_header) &&
            ((const struct pt_out_header *)iov[0].iov_base)->unique != 0) {
                backing = marked;
                marked = 0;
        }
        uint64_t iu = init_unique;
        if (iu != UINT64_MAX && is_reply(iov, count, iu, sizeof(struct pt_init_out))) {
                init_unique = UINT64_MAX;
                char *out = iov[1].iov_base;
                uint32_t flags;
                memcpy(&flags, out + offsetof(struct pt_init_out, flags), sizeof(flags));
                if (killpriv_offered) {
                        /* the daemon kills suid/sgid/capabilities (see pt_killpriv): the kernel
                         * then marks the superblock SB_NOSEC, and a file found without them
                         * is written with no GETXATTR round trip per write(2) */
                        flags |= PT_FUSE_HANDLE_KILLPRIV_V2;
                        memcpy(out + offsetof(struct pt_init_out, flags), &flags, sizeof(flags));
                        killpriv = true;
                }
                uint32_t flags2 = 0;
                if (flags & PT_FUSE_INIT_EXT)
                        memcpy(&flags2, out + offsetof(struct pt_init_out, flags2), sizeof(flags2));
                if (offered && (flags & PT_FUSE_INIT_EXT)) {
                        /* backing files on a plain filesystem: the mount stacks one deep, so
                         * the kernel's overlayfs may still use it as a layer */
                        uint32_t depth = 1;
                        flags2 |= PT_FUSE_PASSTHROUGH_FLAGS2;
                        memcpy(out + offsetof(struct pt_init_out, max_stack_depth), &depth, sizeof(depth));
                        enabled = true; /* before the kernel can send an OPEN */
                }
                bool uring = false;
                if (uring_offered && (flags & PT_FUSE_INIT_EXT)) {
                        /* the largest request argument, as the kernel computes it */
                        uint32_t max_write;
                        uint16_t max_pages = 32;
                        memcpy(&max_write, out + offsetof(struct pt_init_out, max_write), sizeof(max_write));
                        if (flags & PT_FUSE_MAX_PAGES)
                                memcpy(&max_pages, out + offsetof(struct pt_init_out, max_pages), sizeof(max_pages));
                        size_t page = (size_t)sysconf(_SC_PAGESIZE), payload = 8192;
                        if (max_write > payload)
                                payload = max_write;
                        if ((size_t)max_pages * page > payload)
                                payload = (size_t)max_pages * page;
                        uring = uring_prepare(payload);
                        if (uring)
                                flags2 |= PT_FUSE_OVER_IO_URING_FLAGS2;
                }
                if (flags & PT_FUSE_INIT_EXT)
                        memcpy(out + offsetof(struct pt_init_out, flags2), &flags2, sizeof(flags2));
                ssize_t n = writev(fd, iov, count);
                if (n < 0)
                        enabled = false;
                if (uring)
                        uring_start(n >= 0);
                return n;
        }
        if (backing > 0 && is_reply(iov, count, UINT64_MAX, sizeof(struct pt_open_out))) {
                /* OPEN: the argument is fuse_open_out; CREATE: fuse_entry_out then it */
                char *o = (char *)iov[1].iov_base + iov[1].iov_len - sizeof(struct pt_open_out);
                uint32_t open_flags;
                memcpy(&open_flags, o + offsetof(struct pt_open_out, open_flags), sizeof(open_flags));
                open_flags |= PT_FOPEN_PASSTHROUGH;
                memcpy(o + offsetof(struct pt_open_out, open_flags), &open_flags, sizeof(open_flags));
                memcpy(o + offsetof(struct pt_open_out, backing_id), &backing, sizeof(backing));
        }
        ssize_t n = uring_reply(iov, count);
        return n >= 0 ? n : writev(fd, iov, count);
}

void pt_set_device(int fd) { device = fd; }

bool pt_enabled(void) { return enabled; }

bool pt_killpriv(void) { return killpriv; }

void pt_mark(int32_t backing) { marked = backing; }

/* ---- per-node modes ---- */

struct pt_node {
        struct pt_node *next;
        uint64_t id;
        uint32_t cached;      /* open files in PT_CACHED mode */
        uint32_t passthrough; /* open files in PT_PASSTHROUGH mode, all with backing */
        uint32_t changing;    /* data changes under way (pt_change_begin) */
        uint32_t registering; /* an open registering the backing file (at most one) */
        int32_t backing;
        enum pt_data data;    /* what backing is */
        dev_t dev;
        ino_t ino;
};

#define PT_BUCKETS 4096
static struct pt_node *buckets[PT_BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* A node's last passthrough open was released (pt_change_begin waits for that a moment). */
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
/* A node's backing file was registered, or failed to (opens that came meanwhile wait for it). */
static pthread_cond_t registered = PTHREAD_COND_INITIALIZER;
/* How long a change waits for the RELEASE of passthrough opens of the image's copy: the kernel
 * sends it in the background after close(2) has returned, maybe to another thread, so a write
 * right after a read-only open was closed would find it still open. */
#define RELEASE_WAIT_MS 100

static struct pt_node **slot(uint64_t id)
{
        struct pt_node **p = &buckets[(id * 0x9e3779b97f4a7c15ULL) >> 52];
        while (*p && (*p)->id != id)
                p = &(*p)->next;
        return p;
}

static struct pt_node *node_get(uint64_t id)
{
        struct pt_node **p = slot(id);
        if (!*p) {
                *p = xcalloc(1, sizeof(**p));
                (*p)->id = id;
        }
        return *p;
}

static void node_put(uint64_t id)
{
        struct pt_node **p = slot(id);
        struct pt_node *n = *p;
        if (n && !n->cached && !n->passthrough && !n->changing && !n->registering) {
                *p = n->next;
                free(n);
        }
}

/* A backing id for fd's file. The kernel opens the backing file anew for each open that uses
 * it, with that open's flags, so fd's own access mode does not matter. */
static int32_t backing_open(int fd)
{
        struct pt_backing_map map = { .fd = fd };
        int id = ioctl(device, PT_IOC_BACKING_OPEN, &map);
        if (id < 0) {
                int e = errno;
                /* not for this daemon (no CAP_SYS_ADMIN, an old kernel) or not for this store
                 * (on a stacked filesystem such as overlayfs: ELOOP): every file would fail */
                if (e == EPERM || e == ENOTTY || e == EOPNOTSUPP || e == ELOOP || e == EINVAL)
                        enabled = false;
                return -e;
        }
        return id;
}

static void backing_close(int32_t id)
{
        uint32_t b = (uint32_t)id;
        ioctl(device, PT_IOC_BACKING_CLOSE, &b);
}

/* The mode for an open of n as the file st, given whether it may start passthrough; lock held.
 * PT_PASSTHROUGH with backing 0: a backing must be registered first. */
static enum pt_mode choose(struct pt_node *n, const struct stat *st, bool usable, bool start, enum pt_data data)
{
        if (n->passthrough)
                /* the kernel holds one backing file per inode, and every open of the inode
                 * must use it: the same file joins; another (a copy-up made since) cannot */
                return usable && n->dev == st->st_dev && n->ino == st->st_ino ? PT_PASSTHROUGH : PT_BUSY;
        /* no passthrough start while cached opens exist (the kernel refuses the mix), nor for
         * a container file still in the image while its data is being changed */
        if (start && usable && !n->cached && !(data == PT_LOWER && n->changing))
                return PT_PASSTHROUGH;
        return PT_CACHED;
}

enum pt_mode pt_open(uint64_t id, int fd, bool want, enum pt_data data, int32_t *ret_backing)
{
        struct stat st;
        bool usable = enabled && fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                      (data == PT_UPPER || st.st_size > 0); /* empty image files are memfds */
        pthread_mutex_lock(&lock);
        /* while another open registers the node's backing file, wait and join it: decided in
         * between, this open would start cached mode and keep the node's opens out of
         * passthrough for as long as it lives (two processes of a pipeline opening libc at
         * once) */
        struct pt_node *n;
        while ((n = node_get(id))->registering)
                pthread_cond_wait(&registered, &lock);
        enum pt_mode m = choose(n, &st, usable, want, data);
        if (m == PT_PASSTHROUGH && !n->passthrough) {
                /* register outside the lock (an ioctl); then look again: a change of the
                 * node's data may have begun meanwhile */
                n->registering++; /* keeps n */
                pthread_mutex_unlock(&lock);
                int32_t b = backing_open(fd);
                pthread_mutex_lock(&lock);
                n->registering--;
                pthread_cond_broadcast(&registered);
                m = choose(n, &st, usable && b > 0, want, data);
                if (m == PT_PASSTHROUGH && !n->passthrough) {
                        n->backing = b;
                        n->data = data;
                        n->dev = st.st_dev;
                        n->ino = st.st_ino;
                        b = 0;
                }
                if (b > 0)
                        backing_close(b); /* not needed after all: another open won */
        }
        if (m == PT_PASSTHROUGH) {
                n->passthrough++;
                *ret_backing = n->backing;
        } else if (m == PT_CACHED) {
                n->cached++;
        }
        node_put(id);
        pthread_mutex_unlock(&lock);
        return m;
}

void pt_close(uint64_t id, enum pt_mode m)
{
        if (m == PT_BUSY)
                return;
        int32_t b = 0;
        pthread_mutex_lock(&lock);
        struct pt_node *n = *slot(id);
        if (n) {
                if (m == PT_PASSTHROUGH && n->passthrough && --n->passthrough == 0) {
                        b = n->backing;
                        n->backing = 0;
                        pthread_cond_broadcast(&released);
                }
                if (m == PT_CACHED && n->cached)
                        n->cached--;
                node_put(id);
        }
        pthread_mutex_unlock(&lock);
        /* the kernel ended its use before it sent the RELEASE that brought us here */
        if (b > 0)
                backing_close(b);
}

int pt_change_begin(uint64_t id)
{
        int r = 0;
        pthread_mutex_lock(&lock);
        struct pt_node *n = node_get(id);
        n->changing++; /* keeps n; and no passthrough to the image's copy starts meanwhile */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += RELEASE_WAIT_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        while (n->passthrough && n->data == PT_LOWER)
                if (pthread_cond_clockwait(&released, &lock, CLOCK_MONOTONIC, &until) == ETIMEDOUT) {
                        if (n->passthrough && n->data == PT_LOWER)
                                r = -ETXTBSY;
                        break;
                }
        if (r < 0) {
                n->changing--;
                node_put(id);
        }
        pthread_mutex_unlock(&lock);
        return r;
}

void pt_change_end(uint64_t id)
{
        pthread_mutex_lock(&lock);
        struct pt_node *n = *slot(id);
        if (n && n->changing) {
                n->changing--;
                node_put(id);
        }
        pthread_mutex_unlock(&lock);
}
