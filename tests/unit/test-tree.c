/* SPDX-License-Identifier: Apache-2.0 */
/* The tree builder and reader: layer merge rules, hardlinks, round trips, corruption. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tap.h"
#include "tree.h"
#include "util.h"

static struct tattr A(uint32_t mode) { return (struct tattr){ .mode = mode, .uid = 0, .gid = 0 }; }

static struct tattr F(const char *content)
{
        struct tattr a = { .mode = S_IFREG | 0644, .size = strlen(content) };
        digest_buf(content, strlen(content), a.digest);
        return a;
}

/* Serialize into an aligned buffer and open it. */
static tree *freeze(tbuild *b, void **ret_buf)
{
        void *data;
        size_t len;
        if (tbuild_serialize(b, &data, &len) < 0)
                return NULL;
        tree *t;
        if (tree_open_mem(data, len, &t) < 0) {
                free(data);
                return NULL;
        }
        *ret_buf = data;
        return t;
}

static bool has(const tree *t, const char *path)
{
        tree_ino i;
        return tree_resolve(t, path, &i) == 0;
}

static const struct tree_inode *get(const tree *t, const char *path, tree_ino *ret)
{
        tree_ino i;
        if (tree_resolve(t, path, &i) < 0)
                return NULL;
        if (ret)
                *ret = i;
        return tree_get(t, i);
}

static void test_merge(void)
{
        /* layer 1 */
        tbuild *l1 = tbuild_new();
        struct tattr d = A(S_IFDIR | 0755), f1 = F("one"), f2 = F("two");
        tbuild_add(l1, "", &d, NULL, NULL);
        tbuild_add(l1, "etc", &d, NULL, NULL);
        tbuild_add(l1, "etc/passwd", &f1, NULL, NULL);
        tbuild_add(l1, "etc/group", &f2, NULL, NULL);
        tbuild_add(l1, "opq/a", &f1, NULL, NULL);
        tbuild_add(l1, "opq/sub/b", &f1, NULL, NULL);
        tbuild_add(l1, "dir2file/x", &f1, NULL, NULL);
        tbuild_add(l1, "file2dir", &f1, NULL, NULL);
        tbuild_add(l1, "hl/a", &f2, NULL, NULL);
        tbuild_add_hardlink(l1, "hl/b", "hl/a");
        tbuild_add_hardlink(l1, "other/c", "hl/a");
        struct tattr ln = A(S_IFLNK | 0777);
        tbuild_add(l1, "bin", &ln, "usr/bin", NULL);
        void *buf1;
        tree *t1 = freeze(l1, &buf1);
        ok(t1 != NULL, "layer 1 serializes and loads");

        const struct tree_inode *a = get(t1, "hl/a", NULL), *b = get(t1, "hl/b", NULL);
        tree_ino ia, ib, ic;
        get(t1, "hl/a", &ia);
        get(t1, "hl/b", &ib);
        get(t1, "other/c", &ic);
        ok(a && b && ia == ib && ib == ic && a->nlink == 3, "hardlinks across dirs share one inode, nlink 3");
        const char *target;
        size_t tl;
        tree_ino il;
        get(t1, "bin", &il);
        ok(tree_readlink(t1, il, &target, &tl) == 0 && tl == 7 && !memcmp(target, "usr/bin", 7),
           "symlink target kept");
        ok(get(t1, "opq", NULL)->flags & TREE_F_IMPLICIT, "parent without its own entry is implicit");

        /* layer 2: whiteouts, opaque, replacements */
        tbuild *l2 = tbuild_new();
        tbuild_add_whiteout(l2, "etc/group");
        tbuild_set_opaque(l2, "opq");
        tbuild_add(l2, "opq/new", &f2, NULL, NULL);
        tbuild_add(l2, "dir2file", &f2, NULL, NULL);
        tbuild_add(l2, "file2dir", &d, NULL, NULL);
        tbuild_add(l2, "file2dir/inside", &f2, NULL, NULL);
        tbuild_add_whiteout(l2, "hl/a");
        tbuild_add_hardlink_ref(l2, "hl/d", "hl/b");
        struct tattr dperm = A(S_IFDIR | 01777);
        dperm.uid = 42;
        tbuild_add(l2, "etc", &dperm, NULL, NULL);
        void *buf2;
        tree *t2 = freeze(l2, &buf2);
        ok(t2 != NULL, "layer 2 with whiteouts serializes");
        ok(get(t2, "etc/group", NULL) && (get(t2, "etc/group", NULL)->flags & TREE_F_WHITEOUT),
           "whiteout recorded in the layer index");

        tbuild *m = tbuild_new();
        ok(tbuild_apply_layer(m, t1) == 0, "apply layer 1");
        ok(tbuild_apply_layer(m, t2) == 0, "apply layer 2");
        void *bufm;
        tree *tm = freeze(m, &bufm);
        ok(tm != NULL, "merged tree loads");
        ok(has(tm, "etc/passwd") && !has(tm, "etc/group"), ".wh.group deletes group, passwd stays");
        ok(!has(tm, "opq/a") && !has(tm, "opq/sub") && has(tm, "opq/new"), "opaque dir hides lower entries only");
        const struct tree_inode *x = get(tm, "dir2file", NULL);
        ok(x && S_ISREG(x->mode) && !has(tm, "dir2file/x"), "a dir replaced by a file");
        x = get(tm, "file2dir", NULL);
        ok(x && S_ISDIR(x->mode) && has(tm, "file2dir/inside"), "a file replaced by a dir");
        tree_ino hb, hd, hc;
        ok(!has(tm, "hl/a") && get(tm, "hl/b", &hb) && get(tm, "hl/d", &hd) && get(tm, "other/c", &hc) && hb == hd &&
                   hd == hc,
           "hardlink set survives deletion of one name and gains a link from a later layer");
        ok(get(tm, "hl/b", NULL)->nlink == 3, "nlink recounted after the deletion (3)");
        x = get(tm, "etc", NULL);
        ok(x && x->mode == (S_IFDIR | 01777) && x->uid == 42, "a dir entry in a later layer updates attributes");
        ok(!(get(tm, "etc", NULL)->flags & TREE_F_OPAQUE) && !(get(tm, "opq", NULL)->flags & TREE_F_OPAQUE),
           "no layer flags leak into the merged tree");
        tree_close(t1);
        tree_close(t2);
        tree_close(tm);
        free(buf1);
        free(buf2);
        free(bufm);
        tbuild_free(l1);
        tbuild_free(l2);
        tbuild_free(m);
}

static void test_hostile(void)
{
        tbuild *b = tbuild_new();
        struct tattr ln = A(S_IFLNK | 0777), f = F("x");
        tbuild_add(b, "evil", &ln, "/etc", NULL);
        ok(tbuild_add(b, "evil/passwd", &f, NULL, NULL) == -ENOTDIR, "an entry below a symlink is refused");
        ok(tbuild_add_hardlink(b, "h", "nope") == -ENOENT, "hardlink to a missing target is not invented");
        struct tattr d = A(S_IFDIR | 0755);
        tbuild_add(b, "d", &d, NULL, NULL);
        ok(tbuild_add_hardlink(b, "h", "d") == -EPERM, "hardlink to a directory is refused");
        tbuild_free(b);

        /* corrupt tree files give errors, never crashes */
        tbuild *g = tbuild_new();
        tbuild_add(g, "a/b/c", &f, NULL, NULL);
        void *data;
        size_t len;
        tbuild_serialize(g, &data, &len);
        tree *t;
        ok(tree_open_mem(data, len - 8, &t) == -EBADMSG, "truncated tree refused");
        struct tree_inode *ino = (struct tree_inode *)((char *)data + sizeof(struct tree_header));
        ino[0].a = 0xfffffff0;
        ok(tree_open_mem(data, len, &t) == 0, "corrupt dirent range loads lazily");
        tree_ino r;
        ok(tree_lookup(t, TREE_ROOT, "a", 1, &r) == -EIO, "lookup in a corrupt directory is -EIO");
        tree_close(t);
        free(data);
        tbuild_free(g);
}

static void test_scale(void)
{
        /* 11k entries, the shape of a distro image: measure size and load cost */
        tbuild *b = tbuild_new();
        char path[128];
        for (int i = 0; i < 11000; i++) {
                snprintf(path, sizeof(path), "usr/share/pkg%03d/file-%05d", i % 300, i);
                char content[32];
                snprintf(content, sizeof(content), "%d", i);
                struct tattr f = F(content);
                tbuild_add(b, path, &f, NULL, NULL);
        }
        void *data;
        size_t len;
        ok(tbuild_serialize(b, &data, &len) == 0, "11k-entry tree serializes");
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tree *t;
        int rr = tree_open_mem(data, len, &t);
        tree_ino ino;
        int lr = tree_resolve(t, "usr/share/pkg123/file-00123", &ino);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ok(rr == 0 && lr == 0, "load + one lookup");
        diag("tree of %u inodes: %zu bytes (%.1f bytes/inode); load + lookup %.1f us", tree_count(t), len,
             (double)len / tree_count(t), ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3);
        tree_close(t);
        free(data);
        tbuild_free(b);
}

int main(void)
{
        test_merge();
        test_hostile();
        test_scale();
        return tap_done();
}
