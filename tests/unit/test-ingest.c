/* SPDX-License-Identifier: Apache-2.0 */
/* Layer ingest against tar streams written here with libarchive: compression detection, every
 * entry type, digests, dedup, layer reuse, and hostile layers that must change nothing. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "ingest.h"
#include "store.h"
#include "tap.h"
#include "tree.h"
#include "util.h"

/* ---- writing test tars ---- */

struct tw {
        struct archive *a;
        char *path; /* the tar file */
};

static struct tw tw_new(const char *dir, const char *name, const char *filter)
{
        struct tw w = { .a = archive_write_new(), .path = xasprintf("%s/%s", dir, name) };
        archive_write_set_format_pax_restricted(w.a);
        if (!strcmp(filter, "gzip"))
                archive_write_add_filter_gzip(w.a);
        else if (!strcmp(filter, "zstd"))
                archive_write_add_filter_zstd(w.a);
        archive_write_open_filename(w.a, w.path);
        return w;
}

static void tw_add(struct tw *w, const char *name, mode_t mode, const char *data, const char *link, const char *hardlink)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_pathname(e, name);
        archive_entry_set_mode(e, mode);
        archive_entry_set_uid(e, 1000);
        archive_entry_set_gid(e, 100);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (link)
                archive_entry_copy_symlink(e, link);
        if (hardlink) {
                archive_entry_copy_hardlink(e, hardlink);
                archive_entry_set_size(e, 0);
        } else if (S_ISREG(mode))
                archive_entry_set_size(e, data ? (la_int64_t)strlen(data) : 0);
        if (S_ISCHR(mode))
                archive_entry_set_rdev(e, makedev(1, 3));
        archive_write_header(w->a, e);
        if (data && !hardlink)
                archive_write_data(w->a, data, strlen(data));
        archive_entry_free(e);
}

static void tw_close(struct tw *w)
{
        archive_write_close(w->a);
        archive_write_free(w->a);
}

/* A tar header written by hand: for what libarchive's writer refuses to produce. */
static void raw_tar(const char *path, const char *name, char type, const char *linkname, const char *size_octal)
{
        char h[512] = { 0 };
        snprintf(h, 100, "%s", name);
        memcpy(h + 100, "0000644", 7);
        memcpy(h + 108, "0000000", 7);
        memcpy(h + 116, "0000000", 7);
        snprintf(h + 124, 12, "%s", size_octal);
        memcpy(h + 136, "14614050000", 11);
        h[156] = type;
        if (linkname)
                snprintf(h + 157, 100, "%s", linkname);
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += (unsigned char)h[i];
        snprintf(h + 148, 8, "%06o", sum);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        util_write_all(fd, h, 512);
        char zero[1024] = { 0 };
        if (type == '0')
                util_write_all(fd, "data", 4); /* far less than declared */
        else
                util_write_all(fd, zero, sizeof(zero));
        close(fd);
}

/* ---- store state snapshot: names of everything below the root except tmp/ and lock ---- */

static void snap_walk(int dfd, const char *prefix, char **out, size_t *len)
{
        DIR *d = fdopendir(dup(dfd));
        if (!d)
                return;
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (!*prefix && (!strcmp(de->d_name, "tmp") || !strcmp(de->d_name, "lock")))
                        continue;
                char *p = xasprintf("%s%s\n", prefix, de->d_name);
                *out = xrealloc(*out, *len + strlen(p) + 1);
                strcpy(*out + *len, p);
                *len += strlen(p);
                free(p);
                int sub = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) {
                        char *np = xasprintf("%s%s/", prefix, de->d_name);
                        snap_walk(sub, np, out, len);
                        free(np);
                        close(sub);
                }
        }
        closedir(d);
}

static char *snapshot(store *s)
{
        char *out = xstrdup("");
        size_t len = 0;
        snap_walk(store_dirfd(s), "", &out, &len);
        return out;
}

static int ingest_file(store *s, const char *path, const uint8_t *blob, const uint8_t *diffid,
                       struct ingest_result *res, char **err)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = ingest_layer(s, fd, blob, diffid, res, err);
        close(fd);
        return r;
}

static bool tmp_empty(store *s)
{
        int fd = openat(store_dirfd(s), "tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d = fdopendir(fd);
        struct dirent *de;
        int n = 0;
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
        closedir(d);
        return n == 0;
}

static char dir[] = "/tmp/ctfs-test-ingest-XXXXXX";

static void test_basic(store *s)
{
        const char *filters[] = { "none", "gzip", "zstd" };
        uint8_t diffids[3][DIGEST_LEN];
        for (int i = 0; i < 3; i++) {
                _cleanup_free_ char *name = xasprintf("basic-%s.tar", filters[i]);
                struct tw w = tw_new(dir, name, filters[i]);
                tw_add(&w, "./", S_IFDIR | 0755, NULL, NULL, NULL);
                tw_add(&w, "./bin/", S_IFDIR | 0755, NULL, NULL, NULL);
                tw_add(&w, "./bin/su", S_IFREG | 04755, "setuid program", NULL, NULL);
                tw_add(&w, "./etc/hosts", S_IFREG | 0644, "127.0.0.1 localhost\n", NULL, NULL);
                tw_add(&w, "./usr/hl", S_IFREG | 0644, NULL, NULL, "etc/hosts");
                tw_add(&w, "./lnk", S_IFLNK | 0777, NULL, "/etc/hosts", NULL);
                tw_add(&w, "./dev/null", S_IFCHR | 0666, NULL, NULL, NULL);
                tw_add(&w, "./fifo", S_IFIFO | 0600, NULL, NULL, NULL);
                tw_add(&w, "./tmp", S_IFDIR | 01777, NULL, NULL, NULL);
                tw_add(&w, "./dup", S_IFREG | 0600, "setuid program", NULL, NULL);
                tw_add(&w, "/abs/file", S_IFREG | 0644, "absolute", NULL, NULL);
                tw_close(&w);
                struct ingest_result res;
                char *err = NULL;
                int r = ingest_file(s, w.path, NULL, NULL, &res, &err);
                ok(r == 0, "ingest a %s layer: %s", filters[i], err ? err : "ok");
                free(err);
                memcpy(diffids[i], res.diffid, DIGEST_LEN);
                if (i == 0) {
                        ok(res.files == 4 && res.new_objects == 3, "4 files, 3 distinct contents (%llu, %llu)",
                           (unsigned long long)res.files, (unsigned long long)res.new_objects);
                } else
                        ok(res.new_objects == 0, "%s: same contents, no new objects", filters[i]);
                free(w.path);
        }
        ok(!memcmp(diffids[0], diffids[1], DIGEST_LEN) && !memcmp(diffids[0], diffids[2], DIGEST_LEN),
           "same tar under gzip and zstd gives the same diffid (detected from the data)");
        ok(store_layer_exists(s, diffids[0]), "layer published under its diffid");
        _cleanup_(tree_closep) tree *t = NULL;
        ok(store_layer_open_tree(s, diffids[0], &t) == 0, "layer index opens");
        tree_ino a, b;
        const struct tree_inode *n;
        ok(tree_resolve(t, "bin/su", &a) == 0 && (n = tree_get(t, a)) && n->mode == (S_IFREG | 04755) && n->uid == 1000 &&
                   n->gid == 100 && n->mtime_sec == 1700000000 && n->size == 14,
           "setuid file: mode, owner, mtime, size");
        ok(tree_resolve(t, "etc/hosts", &a) == 0 && tree_resolve(t, "usr/hl", &b) == 0 && a == b &&
                   tree_get(t, a)->nlink == 2,
           "hardlink across directories shares the inode");
        ok(tree_resolve(t, "dev/null", &a) == 0 && S_ISCHR(tree_get(t, a)->mode) &&
                   tree_get(t, a)->rdev == makedev(1, 3),
           "char device with its numbers");
        ok(tree_resolve(t, "fifo", &a) == 0 && S_ISFIFO(tree_get(t, a)->mode), "fifo");
        ok(tree_resolve(t, "tmp", &a) == 0 && tree_get(t, a)->mode == (S_IFDIR | 01777), "sticky dir");
        ok(tree_resolve(t, "abs/file", &a) == 0, "absolute name confined to the image root");
        ok(tree_resolve(t, "bin/su", &a) == 0 && store_object_exists(s, tree_get(t, a)->digest),
           "object stored under the sha256 of the content");
        ok(tmp_empty(s), "no work left in tmp/");
}

static void test_digests(store *s)
{
        struct tw w = tw_new(dir, "d.tar.gz", "gzip");
        tw_add(&w, "unique-file", S_IFREG | 0644, "content only in this layer", NULL, NULL);
        tw_close(&w);
        _cleanup_free_ char *before = snapshot(s);
        uint8_t wrong[DIGEST_LEN] = { 1, 2, 3 };
        char *err = NULL;
        struct ingest_result res;
        int r = ingest_file(s, w.path, wrong, NULL, &res, &err);
        ok(r == -EBADMSG && err && strstr(err, "digest mismatch"), "wrong blob digest refused: %s", err ? err : "");
        free(err);
        err = NULL;
        r = ingest_file(s, w.path, NULL, wrong, &res, &err);
        ok(r == -EBADMSG && err && strstr(err, "digest mismatch"), "wrong diffid refused: %s", err ? err : "");
        free(err);
        _cleanup_free_ char *after = snapshot(s);
        ok(!strcmp(before, after) && tmp_empty(s), "nothing published after a mismatch");
        err = NULL;
        r = ingest_file(s, w.path, NULL, NULL, &res, &err);
        ok(r == 0, "the same layer with no expectations ingests");
        uint8_t blob[DIGEST_LEN], diffid[DIGEST_LEN], zero[DIGEST_LEN] = { 0 };
        ok(!memcmp(res.blob_digest, zero, DIGEST_LEN), "no blob digest without an expected one (not hashed)");
        char *data;
        size_t len;
        util_read_file_at(AT_FDCWD, w.path, 1 << 20, &data, &len);
        digest_ctx *h = digest_new();
        digest_update(h, data, len);
        digest_final(h, blob);
        digest_free(h);
        free(data);
        memcpy(diffid, res.diffid, DIGEST_LEN);
        r = ingest_file(s, w.path, blob, diffid, &res, &err);
        ok(r == 0 && res.new_objects == 0 && !memcmp(res.blob_digest, blob, DIGEST_LEN),
           "and again with the right digests (nothing new)");
        free(w.path);
}

static void test_special(store *s)
{
        /* sparse file, long name, non-UTF-8 name, xattrs */
        _cleanup_free_ char *path = xasprintf("%s/special.tar", dir);
        struct archive *a = archive_write_new();
        archive_write_set_format_pax_restricted(a);
        archive_write_open_filename(a, path);
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_pathname(e, "sparse");
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_size(e, 1 << 20);
        archive_entry_sparse_add_entry(e, 4096, 5);
        archive_entry_sparse_add_entry(e, (1 << 20) - 5, 5);
        archive_write_header(a, e);
        /* the writer takes the whole logical file and keeps only the mapped regions */
        char *full = xcalloc(1, 1 << 20);
        memcpy(full + 4096, "hello", 5);
        memcpy(full + (1 << 20) - 5, "final", 5);
        archive_write_data(a, full, 1 << 20);
        free(full);
        archive_entry_free(e);

        char longname[300];
        memset(longname, 'n', 250);
        longname[250] = '\0';
        e = archive_entry_new();
        archive_entry_copy_pathname(e, longname);
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_size(e, 0);
        archive_entry_xattr_add_entry(e, "user.note", "v1", 2);
        static const char cap[20] = { 1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        archive_entry_xattr_add_entry(e, "security.capability", cap, sizeof(cap));
        archive_write_header(a, e);
        archive_entry_free(e);

        e = archive_entry_new();
        archive_entry_copy_pathname(e, "bad-\xff\xfe-name");
        archive_entry_set_mode(e, S_IFREG | 0644);
        archive_entry_set_size(e, 0);
        archive_write_header(a, e);
        archive_entry_free(e);
        archive_write_close(a);
        archive_write_free(a);

        struct ingest_result res;
        char *err = NULL;
        int r = ingest_file(s, path, NULL, NULL, &res, &err);
        ok(r == 0, "special layer ingests: %s", err ? err : "ok");
        free(err);
        _cleanup_(tree_closep) tree *t = NULL;
        store_layer_open_tree(s, res.diffid, &t);
        tree_ino i;
        ok(t && tree_resolve(t, "sparse", &i) == 0 && tree_get(t, i)->size == 1 << 20, "sparse file keeps its size");
        {
                /* named by the digest of its whole content, holes as zeros */
                char *whole = xcalloc(1, 1 << 20);
                memcpy(whole + 4096, "hello", 5);
                memcpy(whole + (1 << 20) - 5, "final", 5);
                uint8_t want[DIGEST_LEN];
                digest_ctx *h = digest_new();
                digest_update(h, whole, 1 << 20);
                digest_final(h, want);
                digest_free(h);
                free(whole);
                ok(t && tree_resolve(t, "sparse", &i) == 0 && !memcmp(tree_get(t, i)->digest, want, DIGEST_LEN),
                   "sparse file: named by the digest of its content, holes as zeros");
        }
        if (t && tree_resolve(t, "sparse", &i) == 0) {
                int fd = store_object_open(s, tree_get(t, i)->digest);
                char buf[16] = { 0 }, zero[5] = { 0 };
                struct stat st;
                fstat(fd, &st);
                ok(pread(fd, buf, 5, 4096) == 5 && !memcmp(buf, "hello", 5) && pread(fd, buf, 5, 100) == 5 &&
                           !memcmp(buf, zero, 5),
                   "sparse data and hole read back");
                ok(st.st_blocks * 512 < 256 * 1024, "the object stays sparse on disk (%lld blocks)",
                   (long long)st.st_blocks);
                close(fd);
        }
        const void *v;
        size_t vl;
        ok(t && tree_resolve(t, longname, &i) == 0, "250-character name");
        ok(t && tree_getxattr(t, i, "user.note", &v, &vl) == 0 && vl == 2 && !memcmp(v, "v1", 2), "user xattr");
        ok(t && tree_getxattr(t, i, "security.capability", &v, &vl) == 0 && vl == 20 && !memcmp(v, cap, 20),
           "security.capability xattr");
        ok(t && tree_resolve(t, "bad-\xff\xfe-name", &i) == 0, "non-UTF-8 name kept byte for byte");
}

/* Pages of fd in the page cache. */
static size_t resident_pages(int fd, size_t size)
{
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return SIZE_MAX;
        size_t n = (size + 4095) / 4096, res = 0;
        unsigned char *v = xcalloc(n, 1);
        if (mincore(m, size, v) == 0)
                for (size_t i = 0; i < n; i++)
                        res += v[i] & 1;
        else
                res = SIZE_MAX;
        free(v);
        munmap(m, size);
        return res;
}

static void test_large(store *s, const char *root)
{
        /* big files go to the object with O_DIRECT in aligned pieces: sizes around the piece
         * and block borders must come back byte for byte, and under their content's digest */
        static const size_t sizes[] = { (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (3 << 20) + 1234, 5 << 20, 4096 * 300 + 7 };
        const size_t n = sizeof(sizes) / sizeof(sizes[0]);
        struct tw w = tw_new(dir, "large.tar", "gzip");
        char **data = xcalloc(n, sizeof(char *));
        uint64_t x = 0x9e3779b97f4a7c15ull;
        for (size_t k = 0; k < n; k++) {
                data[k] = xmalloc(sizes[k]);
                for (size_t i = 0; i < sizes[k]; i++) {
                        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                        data[k][i] = (char)(x >> 56);
                }
                struct archive_entry *e = archive_entry_new();
                _cleanup_free_ char *name = xasprintf("big%zu", k);
                archive_entry_copy_pathname(e, name);
                archive_entry_set_mode(e, S_IFREG | 0644);
                archive_entry_set_size(e, (la_int64_t)sizes[k]);
                archive_write_header(w.a, e);
                archive_write_data(w.a, data[k], sizes[k]);
                archive_entry_free(e);
        }
        tw_close(&w);
        struct ingest_result res;
        char *err = NULL;
        int r = ingest_file(s, w.path, NULL, NULL, &res, &err);
        ok(r == 0 && res.new_objects == n, "layer of %zu big files ingests into a store on %s: %s", n, root,
           err ? err : "ok");
        free(err);
        free(w.path);
        _cleanup_(tree_closep) tree *t = NULL;
        store_layer_open_tree(s, res.diffid, &t);
        struct statfs sf;
        bool ext4 = statfs(root, &sf) == 0 && sf.f_type == 0xEF53;
        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *name = xasprintf("big%zu", k);
                tree_ino i;
                if (!t || tree_resolve(t, name, &i) < 0) {
                        ok(false, "%s in the layer", name);
                        continue;
                }
                uint8_t want[DIGEST_LEN];
                digest_ctx *h = digest_new();
                digest_update(h, data[k], sizes[k]);
                digest_final(h, want);
                digest_free(h);
                ok(!memcmp(tree_get(t, i)->digest, want, DIGEST_LEN) && tree_get(t, i)->size == sizes[k],
                   "%zu bytes: the object is named by its content's digest", sizes[k]);
                int fd = store_object_open(s, tree_get(t, i)->digest);
                struct stat st;
                ok(fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size == sizes[k], "%zu bytes: the object's size",
                   sizes[k]);
                /* written directly: nothing of it in the page cache until it is read */
                if (ext4 && sizes[k] >= 1 << 20)
                        ok(resident_pages(fd, sizes[k]) == 0, "%zu bytes: written past the page cache (%zu pages in it)",
                           sizes[k], resident_pages(fd, sizes[k]));
                char *back = xmalloc(sizes[k] + 1);
                ok(pread(fd, back, sizes[k] + 1, 0) == (ssize_t)sizes[k] && !memcmp(back, data[k], sizes[k]),
                   "%zu bytes read back", sizes[k]);
                free(back);
                if (fd >= 0)
                        close(fd);
                free(data[k]);
        }
        free(data);
        ok(tmp_empty(s), "no work left in tmp/");
}

static void test_hostile(store *s)
{
        _cleanup_free_ char *before = snapshot(s);
        const struct {
                const char *desc, *name, *link;
                char type;
                const char *size;
                const char *expect;
        } raw[] = {
                { "'..' component", "a/../../etc/passwd", NULL, '0', "00000000004", "'..'" },
                { "leading '..'", "../outside", NULL, '0', "00000000004", "'..'" },
                { "hardlink out of the layer", "x", "../../etc/shadow", '1', "00000000000", "hardlink" },
                { "whiteout with traversal", "a/.wh...", NULL, '0', "00000000000", "" },
                { "gigantic declared size", "big", NULL, '0', "77777777777", "" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(raw); i++) {
                _cleanup_free_ char *p = xasprintf("%s/hostile-%zu.tar", dir, i);
                raw_tar(p, raw[i].name, raw[i].type, raw[i].link, raw[i].size);
                char *err = NULL;
                struct ingest_result res;
                int r = ingest_file(s, p, NULL, NULL, &res, &err);
                ok(r < 0 && err && strstr(err, raw[i].expect), "%s refused: %s", raw[i].desc, err ? err : "(accepted!)");
                free(err);
        }
        /* an entry below a symlink in the same layer */
        struct tw w = tw_new(dir, "symparent.tar", "none");
        tw_add(&w, "etc", S_IFLNK | 0777, NULL, "/etc", NULL);
        tw_add(&w, "etc/passwd", S_IFREG | 0644, "root::0:0::/:/bin/sh\n", NULL, NULL);
        tw_close(&w);
        char *err = NULL;
        struct ingest_result res;
        int r = ingest_file(s, w.path, NULL, NULL, &res, &err);
        ok(r < 0 && err && strstr(err, "below a symlink"), "entry under a symlinked parent refused: %s", err ? err : "");
        free(err);
        free(w.path);
        /* garbage instead of a tar */
        _cleanup_free_ char *g = xasprintf("%s/garbage", dir);
        int fd = open(g, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        util_write_all(fd, "this is not a tar archive at all, not even close..........", 58);
        close(fd);
        err = NULL;
        r = ingest_file(s, g, NULL, NULL, &res, &err);
        ok(r < 0 && err, "garbage refused: %s", err ? err : "");
        free(err);
        _cleanup_free_ char *after = snapshot(s);
        ok(!strcmp(before, after) && tmp_empty(s), "the store is unchanged after every refusal");
}

int main(void)
{
        if (!mkdtemp(dir))
                return 1;
        _cleanup_free_ char *root = xasprintf("%s/root", dir);
        store *s;
        if (store_open(root, &s) < 0) {
                printf("1..0 # SKIP cannot open a store\n");
                return 0;
        }
        test_basic(s);
        test_digests(s);
        test_special(s);
        test_large(s, root);
        test_hostile(s);
        store_close(s);
        /* a file system that refuses O_DIRECT (ramfs): big files are written buffered */
        _cleanup_free_ char *ram = xasprintf("%s/ram", dir);
        if (geteuid() == 0 && mkdir(ram, 0700) == 0 && mount("ramfs", ram, "ramfs", 0, NULL) == 0) {
                _cleanup_free_ char *rroot = xasprintf("%s/root", ram);
                if (store_open(rroot, &s) == 0) {
                        test_large(s, "ramfs");
                        store_close(s);
                }
                umount2(ram, MNT_DETACH);
        } else
                printf("# ramfs: not root or no mount, the buffered fallback is not checked\n");
        util_rm_rf_at(AT_FDCWD, dir);
        return tap_done();
}
