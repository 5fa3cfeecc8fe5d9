/* SPDX-License-Identifier: Apache-2.0 */
/* Reading ahead across files (fs/prefetch.h), on real object files and the real page cache:
 * opens going up through a directory's files from one that had to come from the disk make
 * the next files' objects resident before they are opened; opens in another order, or from
 * cached files, read nothing ahead. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs-fixture.h"
#include "prefetch.h"
#include "tap.h"

#define FILES 80
#define FILE_SIZE (64 * 1024)

static store *s;
static tree *t;
static uint8_t digests[FILES][DIGEST_LEN];
static tree_ino inos[FILES];

static int object_fd(int i) { return store_object_open(s, digests[i]); }

/* Is the first page of file i's object in the page cache? */
static bool resident(int i)
{
        int fd = object_fd(i);
        if (fd < 0)
                return false;
        void *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (m == MAP_FAILED)
                return false;
        unsigned char vec = 0;
        int r = mincore(m, 4096, &vec);
        munmap(m, 4096);
        return r == 0 && (vec & 1);
}

/* Drop every object from the page cache (they are written: clean pages can go). */
static void evict(void)
{
        for (int i = 0; i < FILES; i++) {
                int fd = object_fd(i);
                if (fd < 0)
                        continue;
                (void)fdatasync(fd);
                (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                close(fd);
        }
}

/* evict() until file i is out of the page cache: reads started before (the previous reader's)
 * may still be bringing it in */
static void evict_cold(int i)
{
        for (int k = 0; k < 100; k++) {
                evict();
                if (!resident(i))
                        return;
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}

/* The reader opens file i (and keeps nothing open, as cat does). */
static void opened(prefetch *p, int i)
{
        int fd = object_fd(i);
        prefetch_opened(p, t, t, inos[i], fd, false);
        close(fd);
}

/* Wait up to 5 s for file i's object to become resident. */
static bool becomes_resident(int i)
{
        for (int k = 0; k < 500; k++) {
                if (resident(i))
                        return true;
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        return false;
}

/* the store function's calls */
static int n_stored;
static int stored_ok = 1;

static void stored_fn(void *ud, const void *key, tree_ino ino, int fd, uint64_t size)
{
        (void)ud;
        bool known = false;
        for (int i = 53; i < FILES; i++)
                known |= inos[i] == ino;
        char c;
        if (!(key != NULL && known && size == FILE_SIZE && pread(fd, &c, 1, 0) == 1))
                __atomic_store_n(&stored_ok, 0, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&n_stored, 1, __ATOMIC_SEQ_CST);
}

static void settle_short(void)
{
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
}

static void settle(void)
{
        struct timespec ts = { 0, 300 * 1000 * 1000 };
        nanosleep(&ts, NULL);
}

int main(void)
{
        char tmpl[] = "/var/tmp/ctfs-test-prefetch-XXXXXX";
        if (!mkdtemp(tmpl))
                return 1;
        char root[512];
        snprintf(root, sizeof(root), "%s/root", tmpl);
        ok(store_open(root, &s) == 0, "store");

        /* d/ holds FILES files (distinct contents), a subdirectory and a symlink among them */
        tbuild *b = tbuild_new();
        fx_node(b, "d", S_IFDIR | 0755, 0, 0, 0, NULL, 1, NULL);
        fx_node(b, "d/f40-sub", S_IFDIR | 0755, 0, 0, 0, NULL, 1, NULL);
        fx_node(b, "d/f20-link", S_IFLNK | 0777, 0, 0, 0, "f20", 1, NULL);
        char *data = xmalloc(FILE_SIZE);
        bool made = true;
        for (int i = 0; i < FILES; i++) {
                char path[64];
                snprintf(path, sizeof(path), "d/f%02d", i);
                memset(data, 'a' + i % 26, FILE_SIZE);
                snprintf(data, 32, "file %d", i);
                tnode *n;
                made &= fx_file(s, b, path, 0644, 0, 0, data, FILE_SIZE, 1, &n) == 0;
        }
        free(data);
        void *buf;
        size_t len;
        made &= tbuild_serialize(b, &buf, &len) == 0 && tree_open_mem(buf, len, &t) == 0;
        ok(made, "a tree of %d files with their objects", FILES);
        for (int i = 0; i < FILES; i++) {
                char path[64];
                snprintf(path, sizeof(path), "d/f%02d", i);
                tree_resolve(t, path, &inos[i]);
                memcpy(digests[i], tree_get(t, inos[i])->digest, DIGEST_LEN);
        }
        bool ascending = true;
        for (int i = 1; i < FILES; i++)
                ascending &= inos[i] > inos[i - 1];
        ok(ascending, "a directory's files have ascending inode numbers, in listing order");

        evict();
        if (resident(10) || resident(50)) {
                /* (a filesystem that keeps its pages, tmpfs: nothing to measure) */
                diag("SKIP the rest: the page cache of %s cannot be dropped", tmpl);
                return tap_done();
        }
        prefetch *p;
        ok(prefetch_new(s, &p) == 0, "prefetch_new");

        /* opens out of order: nothing read ahead */
        opened(p, 50);
        opened(p, 10);
        opened(p, 30);
        opened(p, 5);
        settle();
        ok(prefetch_count(p) == 0 && !resident(51) && !resident(11) && !resident(31) && !resident(6),
           "opens out of order read nothing ahead");

        /* going up from a file that came from the disk (a new reader: no stream left from above) */
        prefetch_free(p);
        prefetch_new(s, &p);
        evict_cold(60);
        opened(p, 60);
        opened(p, 61);
        settle();
        ok(prefetch_count(p) == 0 && !resident(62), "two opens in order: not yet");
        opened(p, 62);
        ok(becomes_resident(63) && becomes_resident(70), "the third starts reading the next files ahead");
        ok(becomes_resident(79), "  up to the directory's end (%llu read ahead)", (unsigned long long)prefetch_count(p));

        evict_cold(0);
        for (int i = 0; i < 3; i++)
                opened(p, i);
        ok(becomes_resident(3) && becomes_resident(20), "a second reader, from d/f00: the files after it");
        settle();
        ok(!resident(45) && !resident(60), "  but not the whole directory at once (%llu read ahead)",
           (unsigned long long)prefetch_count(p));
        for (int i = 3; i < 40; i++)
                opened(p, i);
        ok(becomes_resident(45) && becomes_resident(60), "  more as the reader goes on");

        /* a reader of cached files: nothing */
        prefetch *q;
        prefetch_new(s, &q);
        evict();
        for (int i = 0; i < 10; i++) { /* cached before they are opened */
                int fd = object_fd(i);
                char c;
                ok(pread(fd, &c, 1, 0) == 1, "read d/f%02d", i);
                close(fd);
        }
        for (int i = 0; i < 10; i++)
                opened(q, i);
        settle();
        ok(prefetch_count(q) == 0 && !resident(10) && !resident(20), "opens of cached files read nothing ahead");
        prefetch_free(q);

        /* a reader that asks for it: each file read ahead goes to the store function too */
        {
                prefetch *r;
                prefetch_new(s, &r);
                prefetch_set_store(r, stored_fn, NULL);
                evict_cold(0);
                n_stored = 0;
                opened(r, 0); /* (opened asks for no store: nothing given) */
                opened(r, 1);
                opened(r, 2);
                settle();
                ok(prefetch_count(r) > 0 && n_stored == 0, "a reader that does not ask: nothing stored");
                prefetch_free(r);
                /* (files the reader above did not reach: its reads may still be under way) */
                prefetch_new(s, &r);
                prefetch_set_store(r, stored_fn, NULL);
                evict_cold(50);
                for (int i = 50; i < 53; i++) {
                        int fd = object_fd(i);
                        prefetch_opened(r, &r, t, inos[i], fd, true);
                        close(fd);
                }
                for (int k = 0; k < 500 && __atomic_load_n(&n_stored, __ATOMIC_SEQ_CST) < 20; k++)
                        settle_short();
                prefetch_free(r);
                ok(n_stored >= 20 && stored_ok, "one that asks: the files after it, with their key, inode and size (%d)",
                   n_stored);
        }

        /* stopping with work queued */
        evict();
        for (int i = 0; i < FILES; i++)
                opened(p, i);
        prefetch_free(p);
        ok(true, "prefetch_free with jobs queued returns");

        tree_close(t);
        free(buf);
        tbuild_free(b);
        store_close(s);
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
        (void)!system(cmd);
        return tap_done();
}
