/* SPDX-License-Identifier: Apache-2.0 */
/* Reading ahead across files: see prefetch.h. */
#include "prefetch.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

#define STREAMS 16     /* readers followed at once (the least recently used one goes) */
#define GAP 64         /* an open at most this many inodes past the last continues a stream */
#define START 3        /* ascending opens before reading ahead starts */
#define AHEAD_FILES 32 /* files read ahead of the reader (in two batches)... */
#define AHEAD_SCAN 512 /* ...found among at most this many inodes past it */
#define QUEUE 256      /* jobs waiting; more are dropped (the reader is that far behind) */
#define THREADS 2      /* each open blocks on the object's inode when it is not cached */

struct stream {
        const void *key;
        bool store;
        tree_ino last;  /* the last inode opened */
        tree_ino ahead; /* inodes up to here were looked at for reading ahead */
        tree_ino due;   /* the next batch is queued when the reader opens this one */
        unsigned streak;
        uint64_t used;
};

struct job {
        uint8_t digest[DIGEST_LEN];
        uint64_t size;
        const void *key; /* with store: for the store function */
        tree_ino ino;
        bool store;
};

struct prefetch {
        store *s;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct stream streams[STREAMS];
        uint64_t tick;
        struct job queue[QUEUE];
        unsigned head, len;
        bool stop;
        pthread_t threads[THREADS];
        unsigned n_threads;
        atomic_uint_fast64_t count;
        prefetch_store_fn *store;
        void *store_ud;
};

static void *worker(void *arg)
{
        prefetch *p = arg;
        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->stop && p->len == 0)
                        pthread_cond_wait(&p->cond, &p->lock);
                if (p->stop)
                        break;
                struct job j = p->queue[p->head];
                p->head = (p->head + 1) % QUEUE;
                p->len--;
                prefetch_store_fn *fn = j.store ? p->store : NULL;
                void *fn_ud = p->store_ud;
                pthread_mutex_unlock(&p->lock);
                int fd = store_object_open(p->s, j.digest);
                if (fd >= 0) {
                        /* starts the reads and returns: the pages arrive meanwhile */
                        off_t len = (off_t)(j.size < PREFETCH_FILE_BYTES ? j.size : PREFETCH_FILE_BYTES);
                        (void)posix_fadvise(fd, 0, len, POSIX_FADV_WILLNEED);
                        if (fn)
                                fn(fn_ud, j.key, j.ino, fd, j.size);
                        close(fd);
                        atomic_fetch_add(&p->count, 1);
                }
                pthread_mutex_lock(&p->lock);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int prefetch_new(store *s, prefetch **ret)
{
        prefetch *p = xcalloc(1, sizeof(*p));
        p->s = s;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        for (unsigned i = 0; i < THREADS; i++) {
                pthread_attr_t a;
                pthread_attr_init(&a);
                pthread_attr_setstacksize(&a, 256 * 1024);
                int r = pthread_create(&p->threads[i], &a, worker, p);
                pthread_attr_destroy(&a);
                if (r != 0)
                        break;
                p->n_threads++;
        }
        *ret = p;
        return 0;
}

void prefetch_free(prefetch *p)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        for (unsigned i = 0; i < p->n_threads; i++)
                pthread_join(p->threads[i], NULL);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
}

uint64_t prefetch_count(prefetch *p) { return p ? atomic_load(&p->count) : 0; }

void prefetch_set_store(prefetch *p, prefetch_store_fn *fn, void *ud)
{
        if (!p)
                return;
        pthread_mutex_lock(&p->lock);
        p->store = fn;
        p->store_ud = ud;
        pthread_mutex_unlock(&p->lock);
}

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* Linux 6.5; the same number on every architecture */
#endif

/* Is the start of the file in the page cache? cachestat(2) says without reading; where it is
 * missing, a read that may not wait. (That one is not a reliable test: it starts the page's
 * read, which a fast disk, or a host's cache under a VM's, can finish before the read looks
 * again: then a cold file counts as cached, and its reader never gets a stream.) */
static bool cached(int fd)
{
        struct { uint64_t off, len; } range = { 0, 1 };
        struct { uint64_t cache, dirty, writeback, evicted, recently_evicted; } cs;
        if (syscall(__NR_cachestat, fd, &range, &cs, 0) == 0)
                return cs.cache > 0;
        char c;
        struct iovec iov = { &c, 1 };
        return preadv2(fd, &iov, 1, 0, RWF_NOWAIT) >= 0;
}

/* Queue up to `files` regular files after s->ahead (within AHEAD_SCAN inodes of the reader)
 * for reading ahead; the next batch is due when the reader reaches the first of these (or,
 * with none queued, the end of what was looked at, or its next open when the queue is full).
 * p->lock held. */
static void queue_batch(prefetch *p, struct stream *s, const tree *t, unsigned files)
{
        uint32_t n = tree_count(t);
        tree_ino end = s->last + AHEAD_SCAN < n ? s->last + AHEAD_SCAN : n;
        tree_ino i = (s->ahead > s->last ? s->ahead : s->last) + 1;
        s->due = UINT32_MAX;
        for (; i < end && files > 0 && p->len < QUEUE; i++) {
                const struct tree_inode *ti = tree_get(t, i);
                if (!ti || !S_ISREG(ti->mode) || ti->size == 0 || (ti->flags & TREE_F_HLINK_REF))
                        continue;
                struct job *j = &p->queue[(p->head + p->len) % QUEUE];
                memcpy(j->digest, ti->digest, DIGEST_LEN);
                j->size = ti->size;
                j->key = s->key;
                j->ino = i;
                j->store = s->store;
                p->len++;
                files--;
                if (s->due == UINT32_MAX)
                        s->due = i;
        }
        if (i - 1 > s->ahead)
                s->ahead = i - 1;
        if (s->due == UINT32_MAX) /* nothing queued: try again when the reader gets further */
                s->due = p->len >= QUEUE ? s->last + 1 : i;
        if (p->len)
                pthread_cond_broadcast(&p->cond);
}

void prefetch_opened(prefetch *p, const void *key, const tree *t, tree_ino ino, int fd, bool to_store)
{
        if (!p || p->n_threads == 0)
                return;
        bool cold = !cached(fd); /* (before the lock: it may read) */
        pthread_mutex_lock(&p->lock);
        p->tick++;
        struct stream *s = NULL, *lru = &p->streams[0];
        for (unsigned i = 0; i < STREAMS; i++) {
                struct stream *x = &p->streams[i];
                if (x->key == key && ino > x->last && (ino - x->last <= GAP || ino <= x->ahead)) {
                        s = x;
                        break;
                }
                if (x->used < lru->used)
                        lru = x;
        }
        if (s) {
                s->streak++;
                s->last = ino;
                s->used = p->tick;
                if (s->streak + 1 == START)
                        queue_batch(p, s, t, AHEAD_FILES);
                else if (s->streak + 1 > START && ino >= s->due)
                        queue_batch(p, s, t, AHEAD_FILES / 2);
        } else if (cold) {
                /* a new reader, maybe: followed from a file that had to come from the disk */
                *lru = (struct stream){ .key = key, .store = to_store, .last = ino, .ahead = ino, .due = UINT32_MAX,
                                        .used = p->tick };
        }
        pthread_mutex_unlock(&p->lock);
}
