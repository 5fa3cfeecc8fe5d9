/* SPDX-License-Identifier: Apache-2.0 */
#include "export.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

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

/* size bytes of fd into the entry just written (what: the source, for the error). */
static int copy_data(struct archive *a, int fd, uint64_t size, const char *path, const char *what, char **ret_error)
{
        char buf[1 << 16];
        uint64_t left = size;
        while (left > 0) {
                ssize_t k = read(fd, buf, left < sizeof(buf) ? left : sizeof(buf));
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        *ret_error = k < 0 ? xasprintf("export %s: read: %s", path, strerror(errno))
                                           : xasprintf("export %s: %s shorter than the file", path, what);
                        return -EIO;
                }
                if (archive_write_data(a, buf, (size_t)k) < 0) {
                        *ret_error = xasprintf("export: %s", archive_error_string(a));
                        return -EIO;
                }
                left -= (uint64_t)k;
        }
        return 0;
}

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
                r = copy_data(c->a, fd, n->size, path, "object", &c->error);
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

/* ---- a directory (a container's view) ---- */

#define XATTR_BUF 65536

struct dir_ctx {
        struct archive *a;
        char *xlist, *xval; /* XATTR_BUF each: one pair for the whole walk, not a frame's worth */
        struct seen_link {
                dev_t dev;
                ino_t ino;
                char *path;
        } *links;
        size_t n_links;
        char *error;
};

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The entry for dfd/name (st its lstat) under path; its data, and for a directory everything
 * below it. */
static int dir_entry(struct dir_ctx *c, int dfd, const char *name, const struct stat *st, const char *path,
                     unsigned depth);

static int dir_walk(struct dir_ctx *c, int dfd, const char *prefix, unsigned depth)
{
        if (depth > 4096)
                return -ELOOP;
        int scan = dup(dfd);
        DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
        if (!d) {
                if (scan >= 0)
                        close(scan);
                int err = errno;
                c->error = xasprintf("export %s: %s", prefix, strerror(err));
                return -err;
        }
        char **names = NULL;
        size_t n = 0;
        errno = 0;
        for (struct dirent *de; (de = readdir(d)); errno = 0) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                names = xrealloc(names, (n + 1) * sizeof(*names));
                names[n++] = xstrdup(de->d_name);
        }
        int rerr = errno;
        closedir(d);
        if (n)
                qsort(names, n, sizeof(*names), name_cmp);
        int r = 0;
        if (rerr) {
                c->error = xasprintf("export %s: %s", prefix, strerror(rerr));
                r = -rerr;
        }
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                _cleanup_free_ char *path = xasprintf("%s%s", prefix, names[i]);
                if (r == 0 && fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = -errno;
                        c->error = xasprintf("export %s: %s", path, strerror(-r));
                }
                if (r == 0 && !S_ISSOCK(st.st_mode)) /* (tar has no sockets, nor does docker export) */
                        r = dir_entry(c, dfd, names[i], &st, path, depth);
                free(names[i]);
        }
        free(names);
        return r;
}

static int dir_entry(struct dir_ctx *c, int dfd, const char *name, const struct stat *st, const char *path,
                     unsigned depth)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_copy_pathname(e, path);
        archive_entry_set_mode(e, st->st_mode);
        archive_entry_set_uid(e, st->st_uid);
        archive_entry_set_gid(e, st->st_gid);
        archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
        /* xattrs by a path that follows nothing but the directory's fd */
        char at[64];
        snprintf(at, sizeof(at), "/proc/self/fd/%d/", dfd);
        _cleanup_free_ char *xpath = xasprintf("%s%s", at, name);
        char *list = c->xlist;
        ssize_t ll = llistxattr(xpath, list, XATTR_BUF);
        for (ssize_t k = 0; k < ll; k += (ssize_t)strlen(list + k) + 1) {
                ssize_t vl = lgetxattr(xpath, list + k, c->xval, XATTR_BUF);
                if (vl >= 0)
                        archive_entry_xattr_add_entry(e, list + k, c->xval, (size_t)vl);
        }
        bool data = false;
        if (S_ISREG(st->st_mode)) {
                const char *first = NULL;
                for (size_t i = 0; st->st_nlink > 1 && i < c->n_links && !first; i++)
                        if (c->links[i].dev == st->st_dev && c->links[i].ino == st->st_ino)
                                first = c->links[i].path;
                if (first) {
                        archive_entry_set_size(e, 0);
                        archive_entry_copy_hardlink(e, first);
                } else {
                        archive_entry_set_size(e, st->st_size);
                        if (st->st_nlink > 1) {
                                c->links = xrealloc(c->links, (c->n_links + 1) * sizeof(*c->links));
                                c->links[c->n_links++] = (struct seen_link){ st->st_dev, st->st_ino, xstrdup(path) };
                        }
                        data = st->st_size > 0;
                }
        } else if (S_ISLNK(st->st_mode)) {
                char target[4097];
                ssize_t tl = readlinkat(dfd, name, target, sizeof(target) - 1);
                if (tl < 0) {
                        c->error = xasprintf("export %s: %s", path, strerror(errno));
                        archive_entry_free(e);
                        return -EIO;
                }
                target[tl] = '\0';
                archive_entry_copy_symlink(e, target);
        } else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
                archive_entry_set_rdev(e, st->st_rdev);
        }
        _cleanup_close_ int fd = -1;
        if (data || S_ISDIR(st->st_mode)) {
                fd = openat(dfd, name, (S_ISDIR(st->st_mode) ? O_DIRECTORY : 0) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        int err = errno;
                        c->error = xasprintf("export %s: %s", path, strerror(err));
                        archive_entry_free(e);
                        return -err;
                }
        }
        int r = 0;
        if (archive_write_header(c->a, e) < ARCHIVE_WARN) {
                c->error = xasprintf("export %s: %s", path, archive_error_string(c->a));
                r = -EIO;
        }
        archive_entry_free(e);
        if (r == 0 && data)
                r = copy_data(c->a, fd, (uint64_t)st->st_size, path, "the file read", &c->error);
        if (r == 0 && S_ISDIR(st->st_mode)) {
                _cleanup_free_ char *sub = xasprintf("%s/", path);
                r = dir_walk(c, fd, sub, depth + 1);
        }
        return r;
}

int export_dir(int dirfd, int out_fd, char **ret_error)
{
        int r = dlib_archive_load(ret_error);
        if (r < 0)
                return r;
        struct dir_ctx c = { 0 };
        c.xlist = xmalloc(XATTR_BUF);
        c.xval = xmalloc(XATTR_BUF);
        c.a = archive_write_new();
        archive_write_set_format_pax_restricted(c.a);
        archive_write_set_bytes_in_last_block(c.a, 1);
        struct stat st;
        if (fstat(dirfd, &st) < 0) {
                r = -errno;
                c.error = xasprintf("export: %s", strerror(errno));
        } else if (archive_write_open_fd(c.a, out_fd) != ARCHIVE_OK) {
                c.error = xasprintf("export: %s", archive_error_string(c.a));
                r = -EIO;
        } else {
                /* the root as "./", then what is in it */
                struct archive_entry *e = archive_entry_new();
                archive_entry_copy_pathname(e, "./");
                archive_entry_set_mode(e, st.st_mode);
                archive_entry_set_uid(e, st.st_uid);
                archive_entry_set_gid(e, st.st_gid);
                archive_entry_set_mtime(e, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
                if (archive_write_header(c.a, e) < ARCHIVE_WARN) {
                        c.error = xasprintf("export: %s", archive_error_string(c.a));
                        r = -EIO;
                }
                archive_entry_free(e);
                if (r == 0)
                        r = dir_walk(&c, dirfd, "./", 0);
                if (archive_write_close(c.a) != ARCHIVE_OK && r >= 0) {
                        c.error = xasprintf("export: %s", archive_error_string(c.a));
                        r = -EIO;
                }
        }
        archive_write_free(c.a);
        for (size_t i = 0; i < c.n_links; i++)
                free(c.links[i].path);
        free(c.links);
        free(c.xlist);
        free(c.xval);
        if (r < 0)
                *ret_error = c.error ? c.error : xasprintf("export: %s", strerror(-r));
        else
                free(c.error);
        return r;
}
