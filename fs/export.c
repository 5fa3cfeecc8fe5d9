/* SPDX-License-Identifier: Apache-2.0 */
#include "export.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "dlib-archive.h"
#include "tree.h"
#include "util.h"

struct export_ctx {
        store *s;
        const tree *t;
        struct archive *a;
        char **first_path; /* per inode: the path a hardlink set was first written under */
        uint8_t *seen;     /* directories written already (a corrupt tree may repeat one) */
        char *error;
};

static int write_entry(struct export_ctx *c, const char *path, tree_ino ino)
{
        const struct tree_inode *n = tree_get(c->t, ino);
        if (!n)
                return -EIO;
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_pathname(e, path);
        archive_entry_set_mode(e, n->mode);
        archive_entry_set_uid(e, n->uid);
        archive_entry_set_gid(e, n->gid);
        archive_entry_set_mtime(e, n->mtime_sec, n->mtime_nsec);
        for (uint32_t k = 0; k < n->xattr_count; k++) {
                const char *name;
                size_t nl, vl;
                const void *v;
                if (tree_xattr_at(c->t, ino, k, &name, &nl, &v, &vl) < 0)
                        break;
                _cleanup_free_ char *nm = xstrndup(name, nl);
                archive_entry_xattr_add_entry(e, nm, v, vl);
        }
        int r = 0;
        bool data = false;
        if (S_ISREG(n->mode)) {
                if (c->first_path[ino]) {
                        archive_entry_set_size(e, 0);
                        archive_entry_copy_hardlink(e, c->first_path[ino]);
                } else {
                        archive_entry_set_size(e, (la_int64_t)n->size);
                        if (n->nlink > 1)
                                c->first_path[ino] = xstrdup(path);
                        data = n->size > 0;
                }
        } else if (S_ISLNK(n->mode)) {
                const char *target;
                size_t tl;
                if (tree_readlink(c->t, ino, &target, &tl) < 0) {
                        archive_entry_free(e);
                        return -EIO;
                }
                _cleanup_free_ char *tg = xstrndup(target, tl);
                archive_entry_copy_symlink(e, tg);
        } else if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
                archive_entry_set_rdev(e, n->rdev);
        if (archive_write_header(c->a, e) < ARCHIVE_WARN) {
                if (asprintf(&c->error, "export %s: %s", path, archive_error_string(c->a)) < 0)
                        c->error = NULL;
                archive_entry_free(e);
                return -EIO;
        }
        archive_entry_free(e);
        if (data) {
                _cleanup_close_ int fd = store_object_open(c->s, n->digest);
                if (fd < 0) {
                        if (asprintf(&c->error, "export %s: object missing from the store", path) < 0)
                                c->error = NULL;
                        return fd;
                }
                char buf[1 << 16];
                uint64_t left = n->size;
                while (left > 0) {
                        ssize_t k = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                if (asprintf(&c->error, "export %s: object shorter than the file", path) < 0)
                                        c->error = NULL;
                                return -EIO;
                        }
                        if (archive_write_data(c->a, buf, (size_t)k) < 0) {
                                if (asprintf(&c->error, "export: %s", archive_error_string(c->a)) < 0)
                                        c->error = NULL;
                                return -EIO;
                        }
                        left -= (uint64_t)k;
                }
        }
        return r;
}

static int walk(struct export_ctx *c, tree_ino dir, const char *prefix, unsigned depth)
{
        if (depth > 4096)
                return -ELOOP;
        uint32_t n = tree_dir_count(c->t, dir);
        for (uint32_t i = 0; i < n; i++) {
                const char *name;
                size_t len;
                tree_ino ino;
                int r = tree_dir_entry(c->t, dir, i, &name, &len, &ino);
                if (r < 0)
                        return r;
                _cleanup_free_ char *path = xasprintf("%s%.*s", prefix, (int)len, name);
                r = write_entry(c, path, ino);
                if (r < 0)
                        return r;
                const struct tree_inode *ti = tree_get(c->t, ino);
                if (S_ISDIR(ti->mode)) {
                        if (c->seen[ino])
                                return -EIO;
                        c->seen[ino] = 1;
                        _cleanup_free_ char *sub = xasprintf("%s/", path);
                        r = walk(c, ino, sub, depth + 1);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int export_image(store *s, const char *id, int out_fd, char **ret_error)
{
        int r = dlib_archive_load(ret_error);
        if (r < 0)
                return r;
        _cleanup_(tree_closep) tree *t = NULL;
        r = store_image_open_tree(s, id, &t);
        if (r < 0) {
                *ret_error = xasprintf("export: open image tree %.12s: %s", id, strerror(-r));
                return r;
        }
        struct export_ctx c = { .s = s, .t = t };
        c.first_path = xcalloc(tree_count(t), sizeof(char *));
        c.seen = xcalloc(tree_count(t), 1);
        c.a = archive_write_new();
        /* pax keeps long and non-UTF-8 names, xattrs and big numbers exactly */
        archive_write_set_format_pax_restricted(c.a);
        archive_write_set_bytes_in_last_block(c.a, 1);
        if (archive_write_open_fd(c.a, out_fd) != ARCHIVE_OK) {
                *ret_error = xasprintf("export: %s", archive_error_string(c.a));
                r = -EIO;
        } else {
                r = write_entry(&c, "./", TREE_ROOT);
                if (r >= 0)
                        r = walk(&c, TREE_ROOT, "./", 0);
                if (archive_write_close(c.a) != ARCHIVE_OK && r >= 0) {
                        c.error = xasprintf("export: %s", archive_error_string(c.a));
                        r = -EIO;
                }
                if (r < 0)
                        *ret_error = c.error ? TAKE_PTR(c.error) : xasprintf("export: %s", strerror(-r));
        }
        archive_write_free(c.a);
        for (uint32_t i = 0; i < tree_count(t); i++)
                free(c.first_path[i]);
        free(c.first_path);
        free(c.seen);
        free(c.error);
        return r;
}
