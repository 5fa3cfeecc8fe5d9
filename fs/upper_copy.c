/* SPDX-License-Identifier: Apache-2.0 */
/* Copy-ups of big files in the background: see upper_copy.h. */
#include "upper_copy.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"

/* A copy goes a chunk at a time: between chunks it puts back the mtime the container last gave
 * the file, and stops if asked; a write below the image size waits for its chunks only */
#define CHUNK COPY_CHUNK
#define ENTRY_PREFIX "copying-"
/* a handle's bytes in hex, with the prefix and its type, must fit in a file name */
#define HANDLE_MAX 112

struct upper_copy {
        struct upper_copy *next; /* cs->list (cs->lock) */
        atomic_uint refs;        /* the list's, and one per upper_copies_get */
        dev_t dev;
        ino_t ino;
        int fd;      /* the upper file */
        int obj;     /* the object: what reads of [0, size) get meanwhile */
        int work_fd; /* for the entry */
        char entry[COPY_ENTRY_MAX];
        off_t size;
        pthread_t thread;
        bool threaded;
        pthread_mutex_t mtime_lock; /* held by changes of the mtime (and by a chunk's end) */
        struct timespec mtime;      /* mtime_lock: the mtime as the container last made it */
        pthread_mutex_t mark_lock;  /* held by changes of the mark (open_chunks, the end) */
        bool marked;                /* mark_lock: the mark is there (it goes at the end) */
        char mark_head[DIGEST_HEX_LEN + 32]; /* the mark's "<digest> <size>" ("": unknown) */
        size_t n;                   /* chunks */
        pthread_mutex_t lock;       /* what follows */
        pthread_cond_t ended;
        pthread_cond_t moved;       /* a chunk's state changed */
        uint8_t *chunks;            /* enum chunk, per chunk */
        bool done, stop;
        bool unreachable; /* stopped because its file was removed and open nowhere */
        int err;
        pid_t tid; /* the copying thread, once it runs */
};

/*
 * A chunk's state. Reads of an OPEN chunk come from the upper file, of the others from the object
 * (the upper file holds no change of the container there: a COPIED chunk has the same bytes).
 * Writes land only in OPEN chunks: copied, the copy's data on disk, and named in the mark, so that
 * a crash's recovery copies around them (open_chunks).
 */
enum chunk { CH_TODO, CH_BUSY, CH_COPIED, CH_OPEN };

struct upper_copies {
        pthread_mutex_t lock;
        upper_copy *list;
};

union handle {
        struct file_handle fh;
        char space[sizeof(struct file_handle) + HANDLE_MAX];
};

upper_copies *upper_copies_new(void)
{
        upper_copies *cs = xcalloc(1, sizeof(*cs));
        pthread_mutex_init(&cs->lock, NULL);
        return cs;
}

void upper_copy_put(upper_copy *c)
{
        if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        close(c->fd);
        if (c->obj >= 0)
                close(c->obj);
        if (c->work_fd >= 0)
                close(c->work_fd);
        pthread_mutex_destroy(&c->mtime_lock);
        pthread_mutex_destroy(&c->mark_lock);
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->ended);
        pthread_cond_destroy(&c->moved);
        free(c->chunks);
        free(c);
}

static bool droppable(upper_copy *c)
{
        pthread_mutex_lock(&c->lock);
        bool r = c->done && (c->err == 0 || c->unreachable);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Join the threads of a list of copies and drop the list's references. */
static void drop_all(upper_copy *c)
{
        while (c) {
                upper_copy *next = c->next;
                if (c->threaded)
                        pthread_join(c->thread, NULL);
                upper_copy_put(c);
                c = next;
        }
}

/* Join and drop the copies that ended well, or whose file nobody can reach any more (its fd
 * would keep a removed file's space); those that failed stay: reads keep going to their
 * objects. */
static void reap(upper_copies *cs)
{
        upper_copy *gone = NULL;
        pthread_mutex_lock(&cs->lock);
        for (upper_copy **p = &cs->list; *p;) {
                upper_copy *c = *p;
                if (droppable(c)) {
                        *p = c->next;
                        c->next = gone;
                        gone = c;
                } else {
                        p = &c->next;
                }
        }
        pthread_mutex_unlock(&cs->lock);
        drop_all(gone);
}

void upper_copies_stop(upper_copies *cs)
{
        pthread_mutex_lock(&cs->lock);
        for (upper_copy *c = cs->list; c; c = c->next) {
                pthread_mutex_lock(&c->lock);
                c->stop = true;
                pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&cs->lock);
}

void upper_copies_free(upper_copies *cs)
{
        if (!cs)
                return;
        drop_all(cs->list);
        cs->list = NULL;
        pthread_mutex_destroy(&cs->lock);
        free(cs);
}

int upper_copy_range(int src, int dst, off_t from, off_t to, char **buf)
{
        off_t off = from;
        while (off < to) {
                off_t data = lseek(src, off, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO)
                                break;
                        data = off; /* no SEEK_DATA: copy everything */
                }
                if (data >= to)
                        break;
                off_t hole = lseek(src, data, SEEK_HOLE);
                if (hole < 0 || hole > to)
                        hole = to;
                off_t pos = data;
                while (pos < hole) {
                        loff_t in = pos, out = pos;
                        ssize_t n = copy_file_range(src, &in, dst, &out, (size_t)(hole - pos), 0);
                        if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
                                      errno == EOPNOTSUPP || errno == EBADF)) {
                                if (!*buf)
                                        *buf = xmalloc(1 << 20);
                                size_t want = (size_t)(hole - pos) < (1u << 20) ? (size_t)(hole - pos) : (1u << 20);
                                n = pread(src, *buf, want, pos);
                                for (ssize_t done = 0; n > 0 && done < n;) {
                                        ssize_t w = pwrite(dst, *buf + done, (size_t)(n - done), pos + done);
                                        if (w < 0 && errno != EINTR)
                                                return -errno;
                                        done += w > 0 ? w : 0;
                                }
                        }
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                return -errno;
                        }
                        if (n == 0)
                                break; /* the object is shorter than the tree says */
                        pos += n;
                }
                off = hole;
        }
        return 0;
}

static size_t chunks_of(off_t size) { return (size_t)((size + CHUNK - 1) / CHUNK); }

/* The open chunks of a mark's third field (a bitmap in hex, chunk k at bit k % 8 of byte k / 8),
 * as chunk states (n of them): 0, or -EINVAL when it is not one. */
static int hexval(char ch) { return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1; }

static int parse_open(const char *hex, uint8_t *chunks, size_t n)
{
        size_t len = strlen(hex);
        if (len % 2 || len / 2 != (n + 7) / 8)
                return -EINVAL;
        for (size_t k = 0; k < n; k++) {
                int hi = hexval(hex[k / 8 * 2]), lo = hexval(hex[k / 8 * 2 + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                if ((hi << 4 | lo) >> (k % 8) & 1)
                        chunks[k] = CH_OPEN;
        }
        return 0;
}

/* Copy the chunks of [0, size) that are not open (after a crash: those the container never
 * wrote), keeping the mtime the file had before: the copy is not a change the container made. */
static int copy_closed(int obj, int fd, off_t size, const uint8_t *chunks, char **buf)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        int r = 0;
        for (size_t k = 0; k < chunks_of(size) && r == 0; k++)
                if (chunks[k] != CH_OPEN)
                        r = upper_copy_range(obj, fd, (off_t)k * CHUNK,
                                             size - (off_t)k * CHUNK > CHUNK ? (off_t)(k + 1) * CHUNK : size, buf);
        struct timespec ts[2] = { { 0, UTIME_OMIT }, st.st_mtim };
        if (futimens(fd, ts) < 0 && r == 0)
                r = -errno;
        return r;
}

/* Put back the mtime the container last gave the file (the copy's writes move it): 0 or -errno. */
static int put_back_mtime(upper_copy *c)
{
        pthread_mutex_lock(&c->mtime_lock);
        struct timespec ts[2] = { { 0, UTIME_OMIT }, c->mtime };
        int r = futimens(c->fd, ts) < 0 ? -errno : 0;
        pthread_mutex_unlock(&c->mtime_lock);
        return r;
}

/* Someone waits for the copy: its thread is not background work any more. */
static void foreground(upper_copy *c)
{
        pthread_mutex_lock(&c->lock);
        if (!c->done && c->tid > 0)
                setpriority(PRIO_PROCESS, (id_t)c->tid, 0);
        pthread_mutex_unlock(&c->lock);
}

/* Copy chunk k unless it is copied (after whoever copies it now): 0 or -errno (the chunk is
 * left to copy again). */
static int copy_chunk(upper_copy *c, size_t k, char **buf)
{
        pthread_mutex_lock(&c->lock);
        while (c->chunks[k] == CH_BUSY)
                pthread_cond_wait(&c->moved, &c->lock);
        bool todo = c->chunks[k] == CH_TODO;
        if (todo)
                c->chunks[k] = CH_BUSY;
        pthread_mutex_unlock(&c->lock);
        if (!todo)
                return 0;
        off_t from = (off_t)k * CHUNK, to = c->size - from > CHUNK ? from + CHUNK : c->size;
        int r = upper_copy_range(c->obj, c->fd, from, to, buf);
        if (r == 0)
                /* on the disk before the next: the file never has more than a chunk not yet
                 * written out, so the fsync that opens chunks for a write (open_chunks, which
                 * flushes the whole file's) waits for a chunk at most, not for the whole copy
                 * (copied from the page cache far faster than the disk takes it) */
                if (sync_file_range(c->fd, from, to - from,
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0 &&
                    errno != ENOSYS)
                        r = -errno; /* (a write-out error is reported once: here, not to the last fsync) */
        pthread_mutex_lock(&c->lock);
        c->chunks[k] = r == 0 ? CH_COPIED : CH_TODO;
        pthread_cond_broadcast(&c->moved);
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Whether chunks first..last are open (c->lock held). */
static bool all_open(upper_copy *c, size_t first, size_t last)
{
        for (size_t k = first; k <= last; k++)
                if (c->chunks[k] != CH_OPEN)
                        return false;
        return true;
}

/*
 * Open chunks first..last (copied) for writes, and every other chunk copied by then: their data
 * on disk, then the mark naming them, also on disk, before any write lands there. 0, -errno, or
 * -E2BIG when the filesystem refuses a mark that long (writes wait for the whole copy then).
 */
static int open_chunks(upper_copy *c, size_t first, size_t last)
{
        pthread_mutex_lock(&c->mark_lock);
        if (!c->marked) {
                pthread_mutex_unlock(&c->mark_lock);
                /* the copy is ending: all there, the mark gone; but until it is done, reads of
                 * chunks not opened still go to the object, and would miss the write */
                return upper_copy_wait(c);
        }
        size_t nb = (c->n + 7) / 8;
        _cleanup_free_ uint8_t *bits = xcalloc(nb, 1);
        pthread_mutex_lock(&c->lock);
        bool open = all_open(c, first, last);
        for (size_t k = 0; k < c->n; k++)
                if (c->chunks[k] == CH_COPIED || c->chunks[k] == CH_OPEN)
                        bits[k / 8] |= (uint8_t)(1u << (k % 8));
        pthread_mutex_unlock(&c->lock);
        int r = 0;
        if (!open) {
                _cleanup_free_ char *mark = xmalloc(strlen(c->mark_head) + 2 * nb + 2);
                size_t len = (size_t)sprintf(mark, "%s ", c->mark_head);
                for (size_t i = 0; i < nb; i++)
                        len += (size_t)sprintf(mark + len, "%02x", bits[i]);
                if (fdatasync(c->fd) < 0)
                        r = -errno;
                else if (fsetxattr(c->fd, COPY_MARK, mark, len, XATTR_REPLACE) < 0)
                        r = errno == ENOSPC || errno == E2BIG || errno == ERANGE ? -E2BIG : -errno;
                else if (fsync(c->fd) < 0)
                        r = -errno;
        }
        if (r == 0 && !open) {
                pthread_mutex_lock(&c->lock);
                for (size_t k = 0; k < c->n; k++)
                        if (bits[k / 8] >> (k % 8) & 1)
                                c->chunks[k] = CH_OPEN; /* (copied stays copied) */
                pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&c->mark_lock);
        return r;
}

/* The end of a copy: its data on disk, then the mark gone, also on disk before the container
 * may write where the copy did (a crash must not find the mark and copy the image's bytes over
 * such a write: an fdatasync of the write would not commit the xattr change), then the entry.
 * (Chunks the container opened before are named in the mark: a crash's copy leaves them.) */
static int finish(int fd, int work_fd, const char *entry)
{
        if (fsync(fd) < 0)
                return -errno;
        if (fremovexattr(fd, COPY_MARK) < 0 && errno != ENODATA)
                return -errno;
        if (fsync(fd) < 0)
                return -errno;
        unlinkat(work_fd, entry, 0);
        return 0;
}

static void *copy_main(void *arg)
{
        upper_copy *c = arg;
        _cleanup_free_ char *buf = NULL;
        int r = 0;
        if (c->threaded) {
                /* Background work: the container's own requests first (on two CPUs, a copy at
                 * full speed made an append wait milliseconds for a CPU). upper_copy_wait gives
                 * it its priority back when someone waits for it. */
                pthread_mutex_lock(&c->lock);
                c->tid = gettid();
                pthread_mutex_unlock(&c->lock);
                setpriority(PRIO_PROCESS, (id_t)c->tid, 19);
        }
        /* held while copying: a next mount's recovery waits for it (upper_copies_recover) */
        flock(c->fd, LOCK_EX);
        for (off_t pos = 0; pos < c->size && r == 0; pos += CHUNK) {
                pthread_mutex_lock(&c->lock);
                bool stop = c->stop;
                pthread_mutex_unlock(&c->lock);
                struct stat st;
                if (!stop && atomic_load(&c->refs) == 1 && fstat(c->fd, &st) == 0 && st.st_nlink == 0) {
                        /* removed, and no open file holds it (only the list does): no data
                         * anyone can reach */
                        unlinkat(c->work_fd, c->entry, 0);
                        pthread_mutex_lock(&c->lock);
                        c->unreachable = true;
                        pthread_mutex_unlock(&c->lock);
                        stop = true;
                }
                if (stop) {
                        r = -ECANCELED;
                        break;
                }
                /* not under mtime_lock: a write past the copied part does not wait for a chunk
                 * (read from the disk, it takes tens of milliseconds) */
                r = copy_chunk(c, (size_t)(pos / CHUNK), &buf);
                int m = put_back_mtime(c);
                if (r == 0)
                        r = m;
        }
        pthread_mutex_lock(&c->lock);
        if (r == 0 && c->stop)
                r = -ECANCELED; /* nor the fsync: the container is gone, or the next mount ends it */
        pthread_mutex_unlock(&c->lock);
        if (r == 0) {
                for (size_t k = 0; k < c->n && r == 0; k++)
                        r = copy_chunk(c, k, &buf); /* (after a writer copying one; again if its copy failed) */
                int m = put_back_mtime(c);
                if (r == 0)
                        r = m;
        }
        if (r == 0) {
                pthread_mutex_lock(&c->mark_lock);
                r = finish(c->fd, c->work_fd, c->entry);
                if (r == 0)
                        c->marked = false;
                pthread_mutex_unlock(&c->mark_lock);
        }
        if (r == -ECANCELED)
                fprintf(stderr, "ctfs: stopped the background copy-up of %s (its container was removed, or the daemon "
                                "is exiting: the next mount finishes it)\n",
                        c->entry);
        else if (r < 0)
                fprintf(stderr, "ctfs: the background copy-up of %s failed (%s): the file reads as the image's and "
                                "refuses writes below %" PRId64 " bytes (but in the chunks already opened for writes) "
                                "until the next mount copies it\n",
                        c->entry, strerror(-r), (int64_t)c->size);
        flock(c->fd, LOCK_UN);
        pthread_mutex_lock(&c->lock);
        c->done = true;
        c->err = r;
        pthread_cond_broadcast(&c->ended);
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int upper_copy_prepare(int fd, int work_fd, const uint8_t digest[DIGEST_LEN], off_t size,
                       char entry[COPY_ENTRY_MAX])
{
        union handle h;
        h.fh.handle_bytes = HANDLE_MAX;
        int mount_id;
        if (name_to_handle_at(fd, "", &h.fh, &mount_id, AT_EMPTY_PATH) < 0)
                return -errno;
        size_t n = (size_t)snprintf(entry, COPY_ENTRY_MAX, ENTRY_PREFIX "%d-", h.fh.handle_type);
        for (unsigned i = 0; i < h.fh.handle_bytes; i++)
                n += (size_t)snprintf(entry + n, COPY_ENTRY_MAX - n, "%02x", h.fh.f_handle[i]);
        char hex[DIGEST_HEX_LEN + 1], mark[DIGEST_HEX_LEN + 32];
        digest_to_hex(digest, hex);
        snprintf(mark, sizeof(mark), "%s %" PRId64, hex, (int64_t)size);
        if (fsetxattr(fd, COPY_MARK, mark, strlen(mark), 0) < 0)
                return -errno;
        int e = openat(work_fd, entry, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (e < 0) {
                int r = -errno;
                fremovexattr(fd, COPY_MARK);
                return r;
        }
        close(e);
        return 0;
}

void upper_copy_abandon(int fd, int work_fd, const char *entry)
{
        fremovexattr(fd, COPY_MARK);
        unlinkat(work_fd, entry, 0);
}

static upper_copy *copy_new(int obj, int fd, int work_fd, const char *entry, off_t size, dev_t dev, ino_t ino)
{
        upper_copy *c = xcalloc(1, sizeof(*c));
        c->n = chunks_of(size);
        c->chunks = xcalloc(c->n ? c->n : 1, 1);
        c->marked = true;
        pthread_mutex_init(&c->mark_lock, NULL);
        pthread_cond_init(&c->moved, NULL);
        atomic_init(&c->refs, 1);
        c->dev = dev;
        c->ino = ino;
        c->fd = fd;
        c->obj = obj;
        c->work_fd = work_fd;
        snprintf(c->entry, sizeof(c->entry), "%s", entry);
        c->size = size;
        pthread_mutex_init(&c->mtime_lock, NULL);
        pthread_mutex_init(&c->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&c->ended, &ca);
        pthread_condattr_destroy(&ca);
        return c;
}

static void add(upper_copies *cs, upper_copy *c)
{
        pthread_mutex_lock(&cs->lock);
        c->next = cs->list;
        cs->list = c;
        pthread_mutex_unlock(&cs->lock);
}

void upper_copy_start(upper_copies *cs, const struct upper_copy_job *j)
{
        reap(cs);
        upper_copy *c = copy_new(j->obj, j->fd, j->work_fd, j->entry, j->size, j->dev, j->ino);
        struct stat st;
        if (fstat(c->fd, &st) == 0)
                c->mtime = st.st_mtim;
        /* what open_chunks writes the mark from (without it, writes below the size wait for the
         * whole copy) */
        ssize_t n = fgetxattr(c->fd, COPY_MARK, c->mark_head, sizeof(c->mark_head) - 1);
        c->mark_head[n > 0 ? n : 0] = '\0';
        c->threaded = true; /* (read by the thread) */
        if (pthread_create(&c->thread, NULL, copy_main, c) != 0) {
                c->threaded = false;
                copy_main(c); /* no thread to be had: the open waits for the copy after all */
        }
        add(cs, c);
}

int upper_copies_finish(upper_copies *cs, int64_t deadline_ms)
{
        struct timespec until = { (time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000L };
        int left = 0;
        pthread_mutex_lock(&cs->lock);
        for (upper_copy *c = cs->list; c; c = c->next) {
                pthread_mutex_lock(&c->lock);
                while (!c->done && pthread_cond_timedwait(&c->ended, &c->lock, &until) == 0)
                        ;
                if (!c->done) {
                        c->stop = true;
                        left++;
                }
                pthread_mutex_unlock(&c->lock);
        }
        pthread_mutex_unlock(&cs->lock);
        return left;
}

bool upper_copies_busy(upper_copies *cs)
{
        pthread_mutex_lock(&cs->lock);
        bool r = cs->list != NULL;
        pthread_mutex_unlock(&cs->lock);
        return r;
}

upper_copy *upper_copies_get(upper_copies *cs, dev_t dev, ino_t ino)
{
        upper_copy *found = NULL;
        pthread_mutex_lock(&cs->lock);
        for (upper_copy *c = cs->list; c && !found; c = c->next)
                if (c->dev == dev && c->ino == ino && !droppable(c)) {
                        atomic_fetch_add(&c->refs, 1);
                        found = c;
                }
        pthread_mutex_unlock(&cs->lock);
        return found;
}

upper_copy *upper_copy_find(upper_copies *cs, int fd)
{
        struct stat st;
        if (!cs || !upper_copies_busy(cs))
                return NULL; /* (the usual case: no copy under way, no fstat) */
        reap(cs); /* (copies that ended: their threads joined, their fds closed) */
        if (fstat(fd, &st) < 0)
                return NULL;
        return upper_copies_get(cs, st.st_dev, st.st_ino);
}

upper_copy *upper_copy_ref(upper_copy *c)
{
        if (c)
                atomic_fetch_add(&c->refs, 1);
        return c;
}

bool upper_copy_active(upper_copy *c)
{
        if (!c)
                return false;
        pthread_mutex_lock(&c->lock);
        bool r = !c->done || c->err != 0;
        pthread_mutex_unlock(&c->lock);
        return r;
}

bool upper_copy_reading(upper_copy *c, off_t off, off_t *ret_end, int *ret_obj)
{
        *ret_end = INT64_MAX;
        *ret_obj = -1;
        if (!c || off < 0)
                return false;
        pthread_mutex_lock(&c->lock);
        bool active = !c->done || c->err != 0;
        bool obj = false;
        if (active && off < c->size) {
                size_t k = (size_t)(off / CHUNK), j = k + 1;
                obj = c->chunks[k] != CH_OPEN;
                while (j < c->n && (c->chunks[j] != CH_OPEN) == obj)
                        j++;
                *ret_end = j < c->n ? (off_t)j * CHUNK : obj ? c->size : INT64_MAX;
        } else if (active) {
                *ret_end = INT64_MAX;
        }
        pthread_mutex_unlock(&c->lock);
        *ret_obj = c->obj;
        return obj;
}

int upper_copy_open(upper_copy *c, off_t off, off_t len)
{
        if (!c || off >= c->size || len <= 0)
                return 0;
        off_t end = len > c->size - off ? c->size : off + len;
        size_t first = (size_t)(off / CHUNK), last = (size_t)((end - 1) / CHUNK);
        pthread_mutex_lock(&c->lock);
        bool open = all_open(c, first, last), done = c->done, head = c->mark_head[0] != '\0';
        int err = c->err;
        pthread_mutex_unlock(&c->lock);
        if (open || (done && err == 0))
                return 0;
        if (done)
                return -EIO; /* a copy that failed, or stopped: not there */
        if (!head)
                return upper_copy_wait(c);
        foreground(c);
        _cleanup_free_ char *buf = NULL;
        int r = 0;
        /* (the copy's writes move the file's mtime: the write that follows sets it, and the
         * copy puts back the container's after its next chunk) */
        for (size_t k = first; k <= last && r == 0; k++)
                r = copy_chunk(c, k, &buf);
        if (r == 0)
                r = open_chunks(c, first, last);
        if (r < 0 && r != -E2BIG)
                put_back_mtime(c); /* no write follows to set it */
        return r == -E2BIG ? upper_copy_wait(c) : r;
}

int upper_copy_wait(upper_copy *c)
{
        if (!c)
                return 0;
        foreground(c);
        pthread_mutex_lock(&c->lock);
        while (!c->done)
                pthread_cond_wait(&c->ended, &c->lock);
        int r = c->err;
        pthread_mutex_unlock(&c->lock);
        return r == -ECANCELED ? -EIO : r;
}

int upper_copies_wait(upper_copies *cs, dev_t dev, ino_t ino)
{
        upper_copy *c = cs ? upper_copies_get(cs, dev, ino) : NULL;
        int r = upper_copy_wait(c);
        upper_copy_put(c);
        return r;
}

void upper_copy_lock(upper_copy *c)
{
        if (c)
                pthread_mutex_lock(&c->mtime_lock);
}

void upper_copy_unlock(upper_copy *c, const struct timespec *mtime)
{
        if (!c)
                return;
        /* not read back with fstat: the copy moves the mtime as it writes */
        struct timespec now;
        if (!mtime || mtime->tv_nsec == UTIME_NOW) {
                clock_gettime(CLOCK_REALTIME, &now);
                mtime = &now;
        }
        pthread_mutex_lock(&c->lock);
        bool copying = !c->done;
        pthread_mutex_unlock(&c->lock);
        if (copying && mtime->tv_nsec != UTIME_OMIT) {
                c->mtime = *mtime;
                struct timespec ts[2] = { { 0, UTIME_OMIT }, c->mtime };
                futimens(c->fd, ts);
        }
        pthread_mutex_unlock(&c->mtime_lock);
}

void upper_copy_fix_stat(upper_copy *c, struct stat *st)
{
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        bool copying = !c->done;
        pthread_mutex_unlock(&c->lock);
        if (!copying)
                return;
        pthread_mutex_lock(&c->mtime_lock);
        st->st_mtim = c->mtime;
        pthread_mutex_unlock(&c->mtime_lock);
        /* the blocks the file will have (its holes are being filled) */
        if (st->st_blocks < (blkcnt_t)((c->size + 511) / 512))
                st->st_blocks = (blkcnt_t)((c->size + 511) / 512);
}

void upper_copies_fix_stat(upper_copies *cs, struct stat *st)
{
        if (!cs || !S_ISREG(st->st_mode))
                return;
        upper_copy *c = upper_copies_get(cs, st->st_dev, st->st_ino);
        upper_copy_fix_stat(c, st);
        upper_copy_put(c);
}

/* ---- after a crash ---- */

/* A copy that could not be done after a crash: reads of [0, size) come from obj (-1: none,
 * they fail), writes there are refused (upper_copy.h), but in the chunks the container had
 * opened (open: chunk states, or NULL). Takes obj and fd. */
static int add_failed(upper_copies *cs, int obj, int fd, const char *entry, off_t size, const uint8_t *open,
                      size_t n_open, const char *why)
{
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                if (obj >= 0)
                        close(obj);
                return r;
        }
        if (size <= 0)
                size = st.st_size; /* (its size in the image is not known: all of it) */
        fprintf(stderr, "ctfs: the copy-up a crash interrupted (%s) cannot be done (%s): the file %s until the next try\n",
                entry, why, obj >= 0 ? "reads as the image's and refuses writes below its image size" : "fails reads");
        upper_copy *c = copy_new(obj, fd, -1, entry, size, st.st_dev, st.st_ino);
        if (open)
                memcpy(c->chunks, open, n_open < c->n ? n_open : c->n);
        c->mtime = st.st_mtim;
        c->done = true;
        c->err = -EIO;
        add(cs, c);
        return 0;
}

/* 0 when the entry's file is copied, gone, or registered as a failed copy; -errno when the
 * file may be marked but could not be looked at (the container must not be served then: its
 * holes would read as zeros and take writes that a later copy would overwrite). */
static int recover_one(upper_copies *cs, store *s, int mount_fd, int work_fd, const char *name)
{
        union handle h;
        int type, used = 0;
        if (sscanf(name, ENTRY_PREFIX "%d-%n", &type, &used) != 1 || used == 0)
                return 0; /* not ours */
        const char *hex = name + used;
        size_t len = strlen(hex);
        if (len % 2 || len / 2 > HANDLE_MAX)
                return 0;
        for (size_t i = 0; i < len / 2; i++) {
                int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
                if (a < 0 || b < 0)
                        return 0;
                h.fh.f_handle[i] = (unsigned char)(a << 4 | b);
        }
        h.fh.handle_bytes = (unsigned)(len / 2);
        h.fh.handle_type = type;
        _cleanup_close_ int pfd = open_by_handle_at(mount_fd, &h.fh, O_PATH | O_CLOEXEC);
        if (pfd < 0) {
                if (errno != ESTALE && errno != ENOENT)
                        return -errno;
                unlinkat(work_fd, name, 0); /* the file is gone (removed since) */
                return 0;
        }
        struct stat st;
        if (fstat(pfd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode)) {
                unlinkat(work_fd, name, 0);
                return 0;
        }
        char p[64];
        snprintf(p, sizeof(p), "/proc/self/fd/%d", pfd);
        int fd = open(p, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return add_failed(cs, -1, TAKE_FD(pfd), name, 0, NULL, 0, strerror(errno));
        /* a daemon still ending (it gives its copies a few seconds) holds the file's lock */
        flock(fd, LOCK_EX);
        ssize_t n = fgetxattr(fd, COPY_MARK, NULL, 0);
        _cleanup_free_ char *mark = n >= 0 && n < (1 << 20) ? xmalloc((size_t)n + 1) : NULL;
        if (mark)
                n = fgetxattr(fd, COPY_MARK, mark, (size_t)n);
        else if (n >= 0)
                n = -1, errno = E2BIG;
        if (n < 0) {
                if (errno == ENODATA) {
                        unlinkat(work_fd, name, 0); /* done, but for this name */
                        close(fd);
                        return 0;
                }
                return add_failed(cs, -1, fd, name, 0, NULL, 0, strerror(errno));
        }
        mark[n] = '\0';
        /* "<digest> <size>", then the chunks the container opened for writes, if any */
        char dhex[DIGEST_HEX_LEN + 1];
        int64_t size;
        int rest = 0;
        uint8_t digest[DIGEST_LEN];
        if (sscanf(mark, "%64s %" SCNd64 "%n", dhex, &size, &rest) != 2 || size < 0 || size > ((int64_t)1 << 50) ||
            digest_parse_hex(dhex, digest) < 0)
                return add_failed(cs, -1, fd, name, 0, NULL, 0, "its mark is not readable");
        _cleanup_free_ uint8_t *open = xcalloc(chunks_of((off_t)size) + 1, 1);
        if (mark[rest] == ' ' && parse_open(mark + rest + 1, open, chunks_of((off_t)size)) < 0)
                return add_failed(cs, -1, fd, name, 0, NULL, 0, "its mark is not readable");
        int obj = store_object_open(s, digest);
        if (obj < 0)
                return add_failed(cs, -1, fd, name, (off_t)size, open, chunks_of((off_t)size), "the image's object is gone");
        _cleanup_free_ char *buf = NULL;
        int r = copy_closed(obj, fd, (off_t)size, open, &buf);
        if (r == 0)
                r = finish(fd, work_fd, name);
        if (r < 0)
                return add_failed(cs, obj, fd, name, (off_t)size, open, chunks_of((off_t)size), strerror(-r));
        close(obj);
        close(fd);
        return 0;
}

int upper_copies_recover(upper_copies *cs, store *s, int work_fd)
{
        int dfd = openat(work_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
        if (!dir) {
                int r = -errno;
                if (dfd >= 0)
                        close(dfd);
                return r;
        }
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(dir)))
                if (strncmp(de->d_name, ENTRY_PREFIX, strlen(ENTRY_PREFIX)) == 0) {
                        names = xrealloc(names, (n + 1) * sizeof(*names));
                        names[n++] = xstrdup(de->d_name);
                }
        int r = 0;
        for (size_t i = 0; i < n; i++) {
                int q = recover_one(cs, s, dirfd(dir), work_fd, names[i]);
                if (q < 0 && r == 0) {
                        fprintf(stderr, "ctfs: cannot look at the copy-up a crash interrupted (%s): %s\n", names[i],
                                strerror(-q));
                        r = q;
                }
                free(names[i]);
        }
        free(names);
        closedir(dir);
        return r;
}
