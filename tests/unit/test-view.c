/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's namespace without a mount: the images/ and containers/ trees, attributes, stable
 * inode numbers, read-only images, container writes, refresh when the store changes. */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "fs-fixture.h"
#include "tap.h"
#include "view.h"

static view *v;

/* Walk a path from the root, counting lookups like the kernel; returns the node id or 0. */
static uint64_t walk(const char *path, struct view_entry *ret)
{
        uint64_t id = VIEW_ROOT_ID;
        char copy[1024];
        snprintf(copy, sizeof(copy), "%s", path);
        char *save = NULL;
        struct view_entry e = { .id = VIEW_ROOT_ID };
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (view_lookup(v, id, c, &e) < 0)
                        return 0;
                id = e.id;
        }
        if (ret)
                *ret = e;
        return id;
}

static int lstat_v(const char *path, struct stat *st)
{
        struct view_entry e;
        uint64_t id = walk(path, &e);
        if (!id)
                return -1;
        double t;
        return view_getattr(v, id, NULL, st, &t);
}

static char *read_v(const char *path)
{
        uint64_t id = walk(path, NULL);
        view_file *f;
        bool keep;
        if (!id || view_open(v, id, O_RDONLY, &f, &keep) < 0)
                return NULL;
        char *buf = xcalloc(1, 1 << 16);
        ssize_t n = view_read(v, f, buf, (1 << 16) - 1, 0);
        view_release(f);
        if (n < 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

static bool listed(const char *path, const char *name, mode_t type)
{
        uint64_t id = walk(path, NULL);
        view_dir *d;
        if (!id || view_opendir(v, id, &d) < 0)
                return false;
        bool found = false;
        off_t off = 0, next;
        const char *nm;
        struct stat st;
        while (view_readdir(v, d, off, &nm, &st, &next) == 0) {
                if (strcmp(nm, name) == 0 && (st.st_mode & S_IFMT) == type && st.st_ino != 0)
                        found = true;
                off = next;
        }
        view_releasedir(d);
        return found;
}

/* The inode number the listing of path gives name (0: not listed). */
static ino_t listed_ino(const char *path, const char *name)
{
        uint64_t id = walk(path, NULL);
        view_dir *d;
        if (!id || view_opendir(v, id, &d) < 0)
                return 0;
        ino_t ino = 0;
        off_t off = 0, next;
        const char *nm;
        struct stat st;
        while (view_readdir(v, d, off, &nm, &st, &next) == 0) {
                if (strcmp(nm, name) == 0)
                        ino = st.st_ino;
                off = next;
        }
        view_releasedir(d);
        return ino;
}

/* Up to max names of directory id from position off (skipping "." and ".."), each read with a
 * new handle as the FUSE adapter does without OPENDIR (and at the end, as it does after an empty
 * reply, the snapshot is let go); *off is where the next read begins. */
static size_t list_from(uint64_t id, off_t *off, size_t max, char names[][64])
{
        size_t n = 0;
        while (n < max) {
                view_dir *d;
                if (view_opendir(v, id, &d) < 0)
                        break;
                const char *nm;
                struct stat st;
                off_t next;
                int r = view_readdir(v, d, *off, &nm, &st, &next);
                if (r == 0 && strcmp(nm, ".") != 0 && strcmp(nm, "..") != 0)
                        snprintf(names[n++], 64, "%s", nm);
                if (r == -ENOENT)
                        view_readdir_end(v, d); /* the empty reply: the snapshot goes */
                view_releasedir(d);
                if (r < 0)
                        break;
                *off = next;
        }
        return n;
}

/* An empty file in directory dir, made as user 1000 (for listings to change). */
static void touch_v(uint64_t dir, const char *name)
{
        struct view_ctx ctx = { 1000, 1000 };
        struct view_entry e;
        view_file *f;
        if (view_create(v, &ctx, dir, name, 0644, O_WRONLY, &e, &f) == 0)
                view_release(f);
}

static size_t count(char names[][64], size_t n, const char *name)
{
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                k += strcmp(names[i], name) == 0;
        return k;
}

static bool has(char names[][64], size_t n, const char *name) { return count(names, n, name) == 1; }

/* Every name of want but those in skip comes exactly once in got, and nothing else of want
 * more than once. */
static bool each_once(char want[][64], size_t n_want, char got[][64], size_t n_got, const char *skip1,
                      const char *skip2)
{
        for (size_t i = 0; i < n_want; i++) {
                bool skipped = (skip1 && strcmp(want[i], skip1) == 0) || (skip2 && strcmp(want[i], skip2) == 0);
                size_t k = count(got, n_got, want[i]);
                if (skipped ? k > 1 : k != 1)
                        return false;
        }
        return true;
}

/* What view_set_store's function was given (from prefetch threads). */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t rec_ids[64];
static char rec_data[64][16];
static size_t rec_len[64];
static int n_rec;

static void rec_store(void *ud, uint64_t id, const void *data, size_t len)
{
        (void)ud;
        pthread_mutex_lock(&rec_lock);
        if (n_rec < 64) {
                rec_ids[n_rec] = id;
                rec_len[n_rec] = len;
                memcpy(rec_data[n_rec], data, len < 16 ? len : 16);
                n_rec++;
        }
        pthread_mutex_unlock(&rec_lock);
}

static int rec_find(uint64_t id)
{
        pthread_mutex_lock(&rec_lock);
        int k = -1;
        for (int i = 0; i < n_rec; i++)
                if (rec_ids[i] == id)
                        k = i;
        pthread_mutex_unlock(&rec_lock);
        return k;
}

/* A reader going through a container's files still in the image (in inode order) from a
 * cold one: the files after it that the kernel knows (looked up) and nobody has open get their
 * data stored; one held open does not (the kernel could be reading it). Then no more stores. */
static void store_ahead_checks(store *s, const char *cid)
{
        view_set_store(v, rec_store, NULL);
        static const char *files[] = { "bin/sh", "bin/su", "etc/passwd", "etc/shadow", "usr/bin/ping",
                                       "usr/lib/libx.so.1", "data/hl1" };
        enum { N = sizeof(files) / sizeof(files[0]) };
        struct {
                uint64_t id;
                uint32_t tino;
                off_t size;
                char data[16];
        } f[N];
        for (int i = 0; i < N; i++) {
                char p[256];
                snprintf(p, sizeof(p), "containers/%s/%s", cid, files[i]);
                struct view_entry e;
                f[i].id = walk(p, &e);
                f[i].tino = (uint32_t)((e.st.st_ino & 0xffffffffu) - 1);
                f[i].size = e.st.st_size;
                char *d = read_v(p);
                snprintf(f[i].data, sizeof(f[i].data), "%s", d ? d : "");
                free(d);
        }
        /* in inode order, as a reader going through them opens them */
        for (int i = 0; i < N; i++)
                for (int j = i + 1; j < N; j++)
                        if (f[j].tino < f[i].tino) {
                                __typeof__(f[0]) t = f[i];
                                f[i] = f[j];
                                f[j] = t;
                        }
        /* every object out of the page cache (dd: count=0 with nocache drops a whole file's):
         * the first open comes from the disk */
        char objs[600];
        snprintf(objs, sizeof(objs), "%s/objects/sha256", store_root(s));
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "sync; find %s -type f -exec dd of=/dev/null if={} iflag=nocache count=0 status=none \\; "
                 ">/dev/null 2>&1", objs);
        (void)!system(cmd);
        view_file *held;
        bool keep;
        ok(view_open(v, f[N - 1].id, O_RDONLY, &held, &keep) == 0, "store ahead: a container file held open");
        for (int i = 0; i < 3; i++) {
                view_file *vf;
                if (view_open(v, f[i].id, O_RDONLY, &vf, &keep) == 0)
                        view_release(vf);
        }
        int k = -1;
        for (int w = 0; w < 300 && k < 0; w++) {
                k = rec_find(f[3].id);
                if (k < 0)
                        usleep(10000);
        }
        ok(k >= 0 && rec_len[k] == (size_t)f[3].size &&
                   memcmp(rec_data[k], f[3].data, rec_len[k] < 15 ? rec_len[k] : 15) == 0,
           "  the next file's data is stored, whole");
        view_stop_store(v);
        ok(rec_find(f[N - 1].id) < 0, "  not the one held open");
        ok(rec_find(f[0].id) < 0 && rec_find(f[1].id) < 0, "  nor those already read");
        view_release(held);
}

/* Containers made and removed while the view lives: the view keeps a record of each only while
 * the kernel knows inodes of it (a daemon that outlives thousands of containers must not keep
 * them all, nor go through all of them at every change of containers/). */
/* A container record of image_id with its upper dir, as ctfs create makes one; name may be NULL. */
static bool make_container(store *s, const tree *t, const char *image_id, const char *id, const char *name)
{
        char path[200], upath[2048], json[4096], rec[200];
        snprintf(path, sizeof(path), "containers/%.64s", id);
        snprintf(upath, sizeof(upath), "%s/containers/%.64s/upper", store_root(s), id);
        snprintf(rec, sizeof(rec), "containers/%.64s/config.json", id);
        if (name)
                snprintf(json, sizeof(json), "{\"id\":\"%s\",\"name\":\"%s\",\"image\":\"%s\",\"upper\":\"%s\"}", id, name,
                         image_id, upath);
        else
                snprintf(json, sizeof(json), "{\"id\":\"%s\",\"image\":\"%s\",\"upper\":\"%s\"}", id, image_id, upath);
        return util_mkdir_p_at(store_dirfd(s), path, 0700) == 0 && upper_create_dirs(upath, t) == 0 &&
               util_write_file_atomic_at(store_dirfd(s), rec, json, strlen(json), 0644) == 0;
}

static void removed_containers_checks(store *s, const char *image_id)
{
        enum { N = 20 };
        char ids[N][DIGEST_HEX_LEN + 1];
        uint64_t nodes[N][3];
        size_t held0 = view_containers_held(v);
        tree *t = NULL;
        char path[2048];
        snprintf(path, sizeof(path), "images/%s/tree", image_id);
        bool made = tree_open(store_dirfd(s), path, &t) == 0;
        for (int i = 0; made && i < N; i++) {
                char seed[64];
                snprintf(seed, sizeof(seed), "removed container %d", i);
                fx_id(seed, ids[i]);
                made = make_container(s, t, image_id, ids[i], i == 0 ? "churn" : NULL);
        }
        ok(made, "removed containers: 20 made in the store");
        bool all = true;
        for (int i = 0; made && i < N; i++) {
                struct view_entry e;
                snprintf(path, sizeof(path), "containers/%.64s", ids[i]);
                nodes[i][0] = walk(path, &e);
                nodes[i][1] = nodes[i][0] && view_lookup(v, nodes[i][0], "etc", &e) == 0 ? e.id : 0;
                nodes[i][2] = nodes[i][1] && view_lookup(v, nodes[i][1], "passwd", &e) == 0 ? e.id : 0;
                view_file *f;
                bool keep;
                char buf[64];
                all = all && nodes[i][2] && view_open(v, nodes[i][2], O_RDONLY, &f, &keep) == 0;
                if (nodes[i][2] && all) {
                        all = view_read(v, f, buf, sizeof(buf), 0) > 0;
                        view_release(f);
                }
        }
        ok(all && view_containers_held(v) == held0 + N, "  each one's root, a dir and a file looked up and read: %zu held",
           view_containers_held(v));
        ino_t ino_churn0 = listed_ino("containers", "churn");
        /* a file opened while still in the image is current until a copy-up in its container */
        if (made) {
                view_file *f, *w = NULL;
                bool keep;
                snprintf(path, sizeof(path), "containers/%.64s/etc/shadow", ids[0]);
                uint64_t sh = walk(path, NULL);
                bool opened = view_open(v, nodes[0][2], O_RDONLY, &f, &keep) == 0;
                ok(opened && view_file_current(v, f), "a container file still in the image, just opened: current");
                ok(sh && view_open(v, sh, O_WRONLY, &w, &keep) == 0, "  another file of the container copied up");
                if (sh && w)
                        view_release(w);
                ok(opened && !view_file_current(v, f), "  then it is not (its reader must come to the daemon)");
                if (opened)
                        view_release(f);
                if (sh) { /* (the walk's lookups: the file, etc, the root) */
                        view_forget(v, sh, 1);
                        view_forget(v, nodes[0][1], 1);
                        view_forget(v, nodes[0][0], 1);
                }
        }
        for (int i = 0; made && i < N; i++) {
                char from[200], to[200];
                snprintf(from, sizeof(from), "containers/%.64s", ids[i]);
                snprintf(to, sizeof(to), "tmp/removed-%.64s", ids[i]);
                made = renameat(store_dirfd(s), from, store_dirfd(s), to) == 0;
        }
        view_refresh(v, NULL, NULL);
        struct stat st;
        snprintf(path, sizeof(path), "containers/%.64s", ids[0]);
        ok(made && lstat_v(path, &st) < 0 && view_containers_held(v) == held0 + N,
           "  removed from the store: gone from containers/, their records kept while the kernel knows their inodes");
        for (int i = 0; i < N / 2; i++)
                for (int k = 2; k >= 0; k--)
                        view_forget(v, nodes[i][k], 1);
        view_refresh(v, NULL, NULL);
        ok(view_containers_held(v) == held0 + N - N / 2, "  forgotten by the kernel: half of the records go (%zu held)",
           view_containers_held(v));
        /* the others' nodes still answer as removed ones do */
        double tm;
        int r = view_getattr(v, nodes[N - 1][2], NULL, &st, &tm);
        ok(r == -ENOENT, "  a node of one still held answers ENOENT (%d)", r);
        for (int i = N / 2; i < N; i++)
                for (int k = 2; k >= 0; k--)
                        view_forget(v, nodes[i][k], 1);
        ok(view_containers_held(v) == held0, "  the last forget of a removed container's node lets its record go (%zu held)",
           view_containers_held(v));
        /* containers/<name>: a lookup gives the inode the listing gives, and the name made again
         * for another container is another inode (the kernel caches a link's target with it) */
        char again[DIGEST_HEX_LEN + 1];
        fx_id("removed container again", again);
        ok(made && make_container(s, t, image_id, again, "churn"), "the name of a removed container given to a new one");
        view_refresh(v, NULL, NULL);
        ino_t ino_list = listed_ino("containers", "churn");
        ok(lstat_v("containers/churn", &st) == 0 && st.st_ino == ino_list && ino_list != 0,
           "  containers/<name>: the listing's inode is the lookup's");
        ok(ino_list != ino_churn0 && ino_churn0 != 0, "  another inode than the removed one's name had");
        char *target = NULL;
        ok(view_readlink(v, walk("containers/churn", NULL), &target) == 0 && strcmp(target, again) == 0,
           "  pointing at the new one");
        free(target);
        tree_close(t);
        for (int i = 0; i < N; i++) {
                snprintf(path, sizeof(path), "tmp/removed-%.64s", ids[i]);
                util_rm_rf_at(store_dirfd(s), path);
        }
}

int main(void)
{
        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root (container upper dirs use trusted.* xattrs)\n");
                return 0;
        }
        char tmpl[] = "/var/tmp/ctfs-test-view-XXXXXX";
        if (!mkdtemp(tmpl))
                return 1;
        char root[512];
        snprintf(root, sizeof(root), "%s/root", tmpl);
        char id[DIGEST_HEX_LEN + 1], cid[DIGEST_HEX_LEN + 1];
        int r = fx_store(root, id, cid);
        ok(r == 0, "fixture store");
        store *s;
        r = store_open(root, &s);
        ok(r == 0, "open store");
        r = view_new(s, &v);
        ok(r == 0, "view_new");

        {
                /* the reference vectors of SipHash-2-4 (key 00..0f; messages 00.. of 0 and 15 bytes) */
                uint8_t key[16], msg[15];
                for (int i = 0; i < 16; i++)
                        key[i] = (uint8_t)i;
                for (int i = 0; i < 15; i++)
                        msg[i] = (uint8_t)i;
                ok(util_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ULL && util_siphash(key, msg, 15) == 0xa129ca6149be45e5ULL,
                   "SipHash-2-4 reference vectors (directory cookies)");
        }
        store_ahead_checks(s, cid);

        struct stat st;
        ok(lstat_v("", &st) == 0 && S_ISDIR(st.st_mode) && st.st_ino == 1, "root: a directory, inode 1");
        ok(listed("", "images", S_IFDIR) && listed("", "containers", S_IFDIR), "root lists images/ and containers/");
        ok(listed("images", "localhost", S_IFDIR) && listed("images", "docker.io", S_IFDIR),
           "images/ lists the registries");
        ok(listed("images/docker.io/library", "busybox:1", S_IFDIR), "images/docker.io/library/busybox:1");
        ok(listed("images/localhost", "test:v1", S_IFDIR), "images/localhost/test:v1");

        /* exact attributes */
        const char *I = "images/localhost/test:v1";
        char p[512];
#define P(rel) (snprintf(p, sizeof(p), "%s/%s", I, rel), p)
        ok(lstat_v(P("bin/su"), &st) == 0 && st.st_mode == (S_IFREG | 04755) && st.st_size == 9 &&
                   st.st_mtim.tv_sec == 1600000003 && st.st_mtim.tv_nsec == 123456789,
           "setuid file: mode, size, mtime");
        ok(lstat_v(P("etc/shadow"), &st) == 0 && st.st_gid == 42 && (st.st_mode & 07777) == 0640, "owner and mode");
        ok(lstat_v(P("dev/null"), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), "char device");
        ok(lstat_v(P("dev/sda"), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == makedev(8, 0), "block device");
        ok(lstat_v(P("dev/fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "fifo");
        ok(lstat_v(P("tmp"), &st) == 0 && (st.st_mode & 07777) == 01777, "sticky dir");
        ok(lstat_v(P("usr/lib/libx.so"), &st) == 0 && S_ISLNK(st.st_mode) && st.st_size == 9, "symlink size");
        {
                char *target = NULL;
                uint64_t n = walk(P("usr/lib/libx.so"), NULL);
                ok(n && view_readlink(v, n, &target) == 0 && strcmp(target, "libx.so.1") == 0, "symlink target");
                free(target);
        }
        struct stat a, b, c;
        ok(lstat_v(P("data/hl1"), &a) == 0 && lstat_v(P("data/sub/hl2"), &b) == 0 && lstat_v(P("data/hl3"), &c) == 0 &&
                   a.st_ino == b.st_ino && b.st_ino == c.st_ino && a.st_nlink == 3,
           "hardlinks share one inode number, nlink 3");
        ok(walk(P("data/hl1"), NULL) == walk(P("data/sub/hl2"), NULL), "and one node");
        {
                uint64_t n = walk(P("usr/bin/ping"), NULL);
                char buf[64];
                ssize_t len = view_getxattr(v, n, "security.capability", buf, sizeof(buf));
                ok(len == 20, "security.capability");
                ok(view_getxattr(v, n, "security.capability", NULL, 0) == 20, "xattr size query");
                ok(view_getxattr(v, n, "user.none", buf, sizeof(buf)) == -ENODATA, "missing xattr: ENODATA");
                ok(view_getxattr(v, n, "security.capability", buf, 4) == -ERANGE, "small buffer: ERANGE");
                len = view_listxattr(v, n, buf, sizeof(buf));
                ok(len == (ssize_t)sizeof("security.capability") && strcmp(buf, "security.capability") == 0, "listxattr");
        }
        {
                char *data = read_v(P("etc/passwd"));
                ok(data && strncmp(data, "root:x:0:0:root", 15) == 0, "file contents");
                free(data);
                data = read_v(P("data/empty"));
                ok(data && data[0] == '\0', "empty file reads empty");
                free(data);
                uint64_t n = walk(P("data/big"), NULL);
                view_file *f;
                bool keep = false;
                ok(view_open(v, n, O_RDONLY, &f, &keep) == 0 && keep, "image files keep the page cache");
                char buf[8];
                ok(view_read(v, f, buf, 4, FX_BIG_SIZE - 4096) == 4 && buf[0] == 'A' + (FX_BIG_SIZE - 4096) % 26,
                   "read at an offset");
                ok(view_read(v, f, buf, 4, 1 << 20) == 4 && buf[0] == 0, "hole reads zeros");
                ok(view_read(v, f, buf, 8, FX_BIG_SIZE - 2) == 2, "short read at the end");
                view_release(f);
        }

        /* read-only */
        {
                uint64_t dir = walk(P("etc"), NULL), file = walk(P("etc/passwd"), NULL);
                struct view_ctx ctx = { 0, 0 };
                struct view_entry e;
                view_file *f;
                bool keep;
                ok(view_mkdir(v, &ctx, dir, "x", 0755, &e) == -EROFS, "mkdir in an image: EROFS");
                ok(view_create(v, &ctx, dir, "x", 0644, O_RDWR, &e, &f) == -EROFS, "create: EROFS");
                ok(view_open(v, file, O_WRONLY, &f, &keep) == -EROFS, "open for write: EROFS");
                ok(view_unlink(v, dir, "passwd") == -EROFS, "unlink: EROFS");
                ok(view_rename(v, dir, "passwd", dir, "x", 0) == -EROFS, "rename: EROFS");
                struct stat at = { .st_mode = 0600 }, out;
                double t;
                ok(view_setattr(v, file, NULL, &at, VIEW_SET_MODE, &out, &t) == -EROFS, "chmod: EROFS");
                ok(view_setxattr(v, file, "user.x", "1", 1, 0) == -EROFS, "setxattr: EROFS");
                ok(view_mkdir(v, &ctx, VIEW_ROOT_ID, "x", 0755, &e) == -EROFS, "mkdir at the root: EROFS");
                /* every other change, each with its own check in fs/view.c */
                ok(view_open(v, file, O_RDONLY | O_TRUNC, &f, &keep) == -EROFS, "open O_RDONLY|O_TRUNC: EROFS");
                ok(view_link(v, file, dir, "x", &e) == -EROFS, "link into an image: EROFS");
                ok(view_symlink(v, &ctx, dir, "x", "passwd", &e) == -EROFS, "symlink: EROFS");
                ok(view_mknod(v, &ctx, dir, "x", S_IFIFO | 0644, 0, &e) == -EROFS, "mknod: EROFS");
                uint64_t iroot = walk(I, NULL);
                ok(iroot && view_rmdir(v, iroot, "tmp") == -EROFS, "rmdir: EROFS");
                ok(view_removexattr(v, walk(P("usr/bin/ping"), NULL), "security.capability") == -EROFS,
                   "removexattr: EROFS");
                struct stat sz = { .st_size = 0, .st_uid = 1, .st_gid = 1 };
                ok(view_setattr(v, file, NULL, &sz, VIEW_SET_SIZE, &out, &t) == -EROFS, "truncate: EROFS");
                ok(view_setattr(v, file, NULL, &sz, VIEW_SET_UID | VIEW_SET_GID, &out, &t) == -EROFS, "chown: EROFS");
                ok(view_setattr(v, file, NULL, &sz, VIEW_SET_MTIME_NOW | VIEW_SET_ATIME_NOW, &out, &t) == -EROFS,
                   "utimens: EROFS");
                ok(view_create(v, &ctx, walk("images/localhost", NULL), "x", 0644, O_RDWR, &e, &f) == -EROFS,
                   "create in images/: EROFS");
                if (view_open(v, file, O_RDONLY, &f, &keep) == 0) {
                        ok(view_fallocate(f, 0, 0, 4096) == -EROFS, "fallocate of an image file: EROFS");
                        view_release(f);
                } else {
                        ok(0, "fallocate of an image file: EROFS (open failed)");
                }
                /* between an image and a container: the image side is read-only; an image file
                 * cannot be linked into a container (another tree) */
                char cetc[160];
                snprintf(cetc, sizeof(cetc), "containers/%s/etc", cid);
                uint64_t cdir = walk(cetc, NULL);
                ok(cdir && view_rename(v, cdir, "passwd", dir, "x", 0) == -EROFS, "rename from a container into an image: EROFS");
                ok(cdir && view_rename(v, dir, "passwd", cdir, "x", 0) == -EROFS, "rename from an image into a container: EROFS");
                ok(cdir && view_link(v, file, cdir, "x", &e) == -EXDEV, "link of an image file into a container: EXDEV");
                struct view_entry ce;
                ok(cdir && view_lookup(v, cdir, "passwd", &ce) == 0 && view_lookup(v, cdir, "x", &ce) == -ENOENT,
                   "  nothing moved: the container keeps passwd and has no x");
        }

        /* stable inode numbers: forget everything, look again */
        {
                struct view_entry e1, e2;
                uint64_t n1 = walk(P("data/sub/hl2"), &e1);
                view_forget(v, n1, 1000);
                uint64_t n2 = walk(P("data/sub/hl2"), &e2);
                ok(n2 && e1.st.st_ino == e2.st.st_ino, "inode number survives forget + lookup");
        }

        /* the two names of one image are two trees with their own inode numbers */
        {
                struct stat x, y;
                ok(lstat_v("images/docker.io/library/busybox:1/bin/sh", &x) == 0 && lstat_v(P("bin/sh"), &y) == 0 &&
                           x.st_ino != y.st_ino && x.st_size == y.st_size,
                   "each image name is its own tree");
        }

        /* store changes show up without a new view */
        {
                char json[1024];
                snprintf(json, sizeof(json), "{\"%s\":\"%s\",\"127.0.0.1:5000/deb/ian:bookworm\":\"%s\"}", FX_IMAGE_NAME,
                         id, id);
                util_write_file_atomic_at(store_dirfd(s), "refs.json", json, strlen(json), 0644);
                ok(listed("images/127.0.0.1:5000/deb", "ian:bookworm", S_IFDIR), "a new name appears");
                ok(!walk("images/docker.io", NULL), "a removed name disappears");
                ok(lstat_v("images/127.0.0.1:5000/deb/ian:bookworm/etc/passwd", &st) == 0, "and serves the tree");
        }

        /* containers */
        {
                char cpath[128];
                snprintf(cpath, sizeof(cpath), "containers/%s", cid);
                ok(listed("containers", cid, S_IFDIR) && listed("containers", FX_CONTAINER_NAME, S_IFLNK),
                   "containers/ lists the id and the name");
                uint64_t link = walk("containers/" FX_CONTAINER_NAME, NULL);
                char *target = NULL;
                ok(link && view_readlink(v, link, &target) == 0 && strcmp(target, cid) == 0, "name → id symlink");
                free(target);
                snprintf(p, sizeof(p), "%s/etc/passwd", cpath);
                ok(lstat_v(p, &st) == 0 && st.st_size > 0, "container sees the image");
                struct stat img;
                lstat_v(P("etc/passwd"), &img);
                ok(st.st_ino != img.st_ino, "container inode numbers are their own");

                snprintf(p, sizeof(p), "%s/etc", cpath);
                uint64_t etc = walk(p, NULL);
                struct view_ctx ctx = { 1000, 1000 };
                struct view_entry e;
                view_file *f;
                r = view_create(v, &ctx, etc, "hello", 0640, O_WRONLY, &e, &f);
                ok(r == 0 && e.st.st_uid == 1000 && (e.st.st_mode & 07777) == 0640, "create in a container");
                if (r == 0) {
                        ok(view_write(v, f, "hi\n", 3, 0) == 3, "write");
                        view_release(f);
                }
                snprintf(p, sizeof(p), "%s/etc/hello", cpath);
                char *data = read_v(p);
                ok(data && strcmp(data, "hi\n") == 0, "read back");
                free(data);

                snprintf(p, sizeof(p), "%s/etc/passwd", cpath);
                struct stat before, after;
                lstat_v(p, &before);
                uint64_t pw = walk(p, NULL);
                bool keep = false;
                ok(view_open(v, pw, O_RDWR, &f, &keep) == 0 && keep,
                   "open a lower file for writing (the page cache stays: all changes go through the kernel)");
                ok(view_write(v, f, "R", 1, 0) == 1, "write to it (copied up)");
                view_release(f);
                lstat_v(p, &after);
                ok(before.st_ino == after.st_ino, "inode number unchanged by copy-up");
                data = read_v(p);
                ok(data && strncmp(data, "Root:x", 6) == 0, "the change is visible");
                free(data);
                {
                        /* the image's names keep their place in the image's listing (also copied
                         * up, as passwd now is); the container's own come after them */
                        static char cn[64][64], in[64][64];
                        off_t co = 0, io = 0;
                        char cetc[160];
                        snprintf(cetc, sizeof(cetc), "%s/etc", cpath);
                        size_t nc = list_from(walk(cetc, NULL), &co, 64, cn);
                        char ietc[160];
                        snprintf(ietc, sizeof(ietc), "%s/etc", I);
                        size_t ni = list_from(walk(ietc, NULL), &io, 64, in);
                        bool same = ni >= 2 && nc == ni + 1 && strcmp(cn[nc - 1], "hello") == 0;
                        for (size_t k = 0; same && k < ni; k++)
                                same = strcmp(cn[k], in[k]) == 0;
                        nc = list_from(walk(cpath, NULL), &(off_t){ 0 }, 64, cn);
                        ni = list_from(walk(I, NULL), &(off_t){ 0 }, 64, in);
                        same = same && ni >= 6 && nc == ni;
                        for (size_t k = 0; same && k < ni; k++)
                                same = strcmp(cn[k], in[k]) == 0;
                        ok(same, "a container lists its image's entries in the image's order, its own after them");
                        for (size_t k = 0; !same && k < nc; k++)
                                diag("%zu: %s | %s", k, cn[k], k < ni ? in[k] : "");
                }

                ok(view_unlink(v, etc, "passwd") == 0 && lstat_v(p, &st) < 0, "unlink");
                snprintf(p, sizeof(p), "%s/etc", cpath);
                ok(!listed(p, "passwd", S_IFREG) && listed(p, "hello", S_IFREG), "readdir after unlink");

                uint64_t croot = walk(cpath, NULL);
                r = view_mkdir(v, &ctx, croot, "newdir", 02775, &e);
                ok(r == 0 && S_ISDIR(e.st.st_mode), "mkdir");
                r = view_rename(v, croot, "opt", croot, "opt2", 0);
                snprintf(p, sizeof(p), "%s/opt2/app/conf", cpath);
                ok(r == 0 && lstat_v(p, &st) == 0, "rename of an image dir");
                ok(view_rename(v, croot, "usr", etc, "usr", 0) == 0, "rename into another dir");
                snprintf(p, sizeof(p), "%s/etc/usr/lib/libx.so.1", cpath);
                data = read_v(p);
                ok(data && strcmp(data, "ELF-ish") == 0, "reads through the moved dir");
                free(data);
                ok(view_rmdir(v, croot, "etc") == -ENOTEMPTY, "rmdir non-empty: ENOTEMPTY");

                /* listings without la directory handle: la position goes on in the snapshot it
                 * came from, whatever changes meanwhile and however many readers there are */
                {
                        snprintf(p, sizeof(p), "%s/etc", cpath);
                        uint64_t dir = walk(p, NULL);
                        static char all[64][64], la[64][64], lb[64][64];
                        for (int i = 0; i < 5; i++) {
                                char nm[8];
                                snprintf(nm, sizeof(nm), "n%d", i);
                                touch_v(dir, nm);
                        }
                        off_t o = 0;
                        size_t n_all = list_from(dir, &o, 64, all);
                        ok(n_all == 8 && has(all, n_all, "hello") && has(all, n_all, "shadow") && has(all, n_all, "n4"),
                           "a listing read one entry per handle is whole");
                        off_t oa = 0, ob = 0;
                        size_t na = list_from(dir, &oa, 2, la); /* reader A: two entries */
                        char gone[64]; /* a file A listed (positions are random per view: not "usr") */
                        snprintf(gone, sizeof(gone), "%s", strcmp(la[0], "usr") != 0 ? la[0] : la[1]);
                        static char lb2[64][64];
                        off_t ob2 = 0;
                        size_t nb2 = list_from(dir, &ob2, 64, lb2); /* reader B: all, and the end */
                        ok(nb2 == n_all, "another reader lists it all meanwhile (its snapshot goes at the end)");
                        struct view_entry e2;
                        view_file *f2;
                        ok(view_create(v, &ctx, dir, "late", 0644, O_WRONLY, &e2, &f2) == 0, "a file created meanwhile");
                        view_release(f2);
                        ok(view_unlink(v, dir, gone) == 0, "and one A listed removed");
                        na += list_from(dir, &oa, 64, la + na);
                        ok(each_once(all, n_all, la, na, NULL, NULL) && count(la, na, "late") <= 1,
                           "reader A, in a new snapshot: every name it began with exactly once");
                        off_t oend = oa;
                        for (int i = 0; i < 3; i++) {
                                char nm[8];
                                snprintf(nm, sizeof(nm), "m%d", i);
                                touch_v(dir, nm);
                        }
                        static char lx[64][64];
                        size_t nx = list_from(dir, &oend, 64, lx);
                        bool only_new = true;
                        for (size_t i = 0; i < nx; i++)
                                only_new = only_new && lx[i][0] == 'm';
                        ok(only_new, "reading on after the end gives no name again (new ones at most)");
                        size_t nb = list_from(dir, &ob, 64, lb);
                        ok(nb == n_all + 3 && has(lb, nb, "late") && !has(lb, nb, gone) && has(lb, nb, "m2"),
                           "a reader from the start sees the changes");
                        /* six readers, interleaved, while names come and go and readers finish */
                        static char lc[6][64][64];
                        off_t oc[6] = { 0 };
                        size_t nc[6] = { 0 };
                        static char base[64][64];
                        off_t o0 = 0;
                        size_t n_base = list_from(dir, &o0, 64, base);
                        bool open_[6] = { true, true, true, true, true, true };
                        for (int step = 0, left = 6; left > 0; step++) {
                                for (int i = 0; i < 6; i++) {
                                        if (!open_[i] || (i + step) % 3 == 0)
                                                continue;
                                        size_t want = nc[i] + 2 < 64 ? (size_t)(1 + i % 2) : 0;
                                        size_t got = list_from(dir, &oc[i], want, lc[i] + nc[i]);
                                        nc[i] += got;
                                        if (got == 0) {
                                                open_[i] = false;
                                                left--;
                                        }
                                }
                                char nm[16];
                                snprintf(nm, sizeof(nm), "x%d", step);
                                if (step < 16)
                                        touch_v(dir, nm);
                        }
                        bool whole = true;
                        for (int i = 0; i < 6; i++)
                                whole = whole && each_once(base, n_base, lc[i], nc[i], NULL, NULL);
                        ok(whole, "six readers at once in one directory each list every unchanged name once");
                }

                struct statvfs sv;
                ok(view_statfs(v, croot, &sv) == 0 && sv.f_bsize > 0, "statfs");

                /* a hardlink set with names in a directory and in its subdirectory (data/hl1,
                 * data/hl3, data/sub/hl2), forgotten after both directories: each directory is
                 * freed once (the file's forget freed `data` twice: glibc aborted the daemon) */
                {
                        char q[512];
#define CP(rel) (snprintf(q, sizeof(q), "%s/%s", cpath, rel), q)
                        uint64_t dn = walk(CP("data"), NULL), sub = walk(CP("data/sub"), NULL);
                        uint64_t hn = walk(CP("data/hl1"), NULL);
                        ok(dn && sub && hn && walk(CP("data/sub/hl2"), NULL) == hn && walk(CP("data/hl3"), NULL) == hn,
                           "container: hardlink names in data/ and data/sub/ found");
                        view_forget(v, walk(CP("data/empty"), NULL), 1000); /* data's other children */
                        view_forget(v, walk(CP("data/big"), NULL), 1000);
                        view_forget(v, sub, 1000);
                        view_forget(v, dn, 1000);
                        view_forget(v, hn, 1000);
                        struct view_entry fe;
                        ok(walk(CP("data/sub/hl2"), &fe) && fe.st.st_nlink == 3,
                           "  forgotten after its directories, the set frees each of them once");
#undef CP
                }

                /* one node per inode: every name of a hardlink set, before and after copy-up */
                char p2[512];
                snprintf(p, sizeof(p), "%s/data/hl1", cpath);
                snprintf(p2, sizeof(p2), "%s/data/sub/hl2", cpath);
                uint64_t h1 = walk(p, NULL), h2 = walk(p2, NULL);
                ok(h1 && h1 == h2, "container: the names of an image hardlink set are one node");
                snprintf(p, sizeof(p), "%s/data", cpath);
                uint64_t ddir = walk(p, NULL);
                r = view_link(v, h1, ddir, "hl4", &e);
                ok(r == 0 && e.id == h1 && e.st.st_nlink == 4, "link: the new name is the same node, nlink 4");
                snprintf(p, sizeof(p), "%s/data/hl3", cpath);
                ok(walk(p, NULL) == h1, "names looked up after the copy-up: the same node");
                ok(view_unlink(v, ddir, "hl1") == 0, "unlink the name the node was first found by");
                double t;
                ok(view_getattr(v, h1, NULL, &st, &t) == 0 && st.st_nlink == 3, "the node still answers, nlink 3");
                ok(view_rename(v, ddir, "hl3", ddir, "hl4", 0) == 0 && view_getattr(v, h1, NULL, &st, &t) == 0,
                   "rename between two names of the set changes nothing");
                snprintf(p, sizeof(p), "%s/data/hl3", cpath);
                ok(walk(p, NULL) == h1, "  both names still there");
                ok(view_unlink(v, ddir, "hl3") == 0 && view_unlink(v, ddir, "hl4") == 0, "unlink two more names");
                ok(view_getattr(v, h1, NULL, &st, &t) == 0 && st.st_nlink == 1, "the last name: nlink 1");
                snprintf(p, sizeof(p), "%s/data/sub", cpath);
                ok(view_unlink(v, walk(p, NULL), "hl2") == 0 && view_getattr(v, h1, NULL, &st, &t) == -ENOENT,
                   "no name left: ENOENT");

                /* virtual directories: the mtime moves when the listing changes, not else */
                {
                        struct stat m1, m2, m3;
                        ok(lstat_v("containers", &m1) == 0 && lstat_v("containers", &m2) == 0 &&
                                   m1.st_mtim.tv_sec == m2.st_mtim.tv_sec && m1.st_mtim.tv_nsec == m2.st_mtim.tv_nsec,
                           "containers/: the same mtime while nothing changes");
                        char rec[600];
                        snprintf(rec, sizeof(rec), "%s/containers/%s", root, cid);
                        char rec2[600];
                        snprintf(rec2, sizeof(rec2), "%s/containers/%.*s", root, DIGEST_HEX_LEN, "f00d000000000000000000000000000000000000000000000000000000000000");
                        ok(rename(rec, rec2) == 0, "a container's record renamed away in the store");
                        ok(lstat_v("containers", &m3) == 0 && (m3.st_mtim.tv_sec != m2.st_mtim.tv_sec ||
                                                                m3.st_mtim.tv_nsec != m2.st_mtim.tv_nsec),
                           "containers/: the mtime moved");
                        ok(rename(rec2, rec) == 0, "and back");
                        ok(listed("containers", cid, S_IFDIR), "listed again");
                        ok(lstat_v("images", &m1) == 0 && lstat_v("images", &m2) == 0 &&
                                   m1.st_mtim.tv_nsec == m2.st_mtim.tv_nsec && m1.st_mtim.tv_sec == m2.st_mtim.tv_sec,
                           "images/: the same mtime while refs.json is unchanged");
                        char json[1024];
                        snprintf(json, sizeof(json), "{\"%s\":\"%s\",\"127.0.0.1:5000/deb/ian:bookworm\":\"%s\",\"localhost/new:1\":\"%s\"}",
                                 FX_IMAGE_NAME, id, id, id);
                        util_write_file_atomic_at(store_dirfd(s), "refs.json", json, strlen(json), 0644);
                        ok(lstat_v("images", &m3) == 0 && (m3.st_mtim.tv_sec != m2.st_mtim.tv_sec ||
                                                            m3.st_mtim.tv_nsec != m2.st_mtim.tv_nsec),
                           "images/: the mtime moved with refs.json");
                        ok(lstat_v("images/localhost", &m1) == 0 && m1.st_mtim.tv_nsec == m3.st_mtim.tv_nsec, "and its prefix dirs'");
                }
        }

        removed_containers_checks(s, id);
        view_free(v);
        store_close(s);
        util_rm_rf_at(AT_FDCWD, tmpl);
        return tap_done();
}
