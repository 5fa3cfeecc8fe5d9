/* SPDX-License-Identifier: Apache-2.0 */
/* A container's upper dir in the kernel overlayfs format; see upper.h for the format and rules. */
#include "upper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "upper_copy.h"
#include "util.h"

#define OVL_PREFIX "trusted.overlay."
#define OVL_OPAQUE "trusted.overlay.opaque"
#define OVL_REDIRECT "trusted.overlay.redirect"
#define OVL_METACOPY "trusted.overlay.metacopy"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

/* How much of a file a copy-up copies. */
enum copyup_how {
        CU_META,  /* attributes only: a metacopy file for regular files with data */
        CU_DATA,  /* attributes and data */
        CU_DATA_BG, /* the same, big files' data in the background where possible (upper_copy.h) */
        CU_TRUNC, /* attributes, data dropped (open with O_TRUNC, truncate to 0) */
};

/* Lower inodes that several names share, sorted by inode: the lower link sets. */
struct hl_entry {
        tree_ino ino;
        tree_ino dir;
        uint32_t idx;
};

struct upper {
        store *s;
        const tree *t;
        int fd;      /* O_PATH of the upper dir */
        int work_fd; /* O_PATH of the work dir */
        atomic_uint_fast64_t tmp_counter;
        atomic_uint_fast64_t gen;
        pthread_mutex_t hl_lock;
        bool hl_built;
        struct hl_entry *hl;
        size_t n_hl;
        upper_copies *copies;
};

/* ---- small helpers ---- */

static bool name_ok(const char *name)
{
        return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
               strlen(name) <= NAME_MAX;
}

static bool is_whiteout(const struct stat *st) { return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0); }

static bool is_ovl_xattr(const char *x) { return strncmp(x, OVL_PREFIX, strlen(OVL_PREFIX)) == 0; }

/* Open a directory inside the upper dir by its relative path, following no symlink and never
 * leaving the upper dir, whatever the container did to the tree meanwhile. */
static int open_dir(upper *u, const char *path, int flags)
{
        int fd = util_openat2(u->fd, path ? path : "", flags | O_DIRECTORY,
                              RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV);
        return fd == -ELOOP || fd == -EXDEV ? -ENOTDIR : fd;
}

static void procpath(char *buf, size_t n, int fd, const char *name)
{
        if (name)
                snprintf(buf, n, "/proc/self/fd/%d/%s", fd, name);
        else
                snprintf(buf, n, "/proc/self/fd/%d", fd);
}

/* An upper entry addressed as (directory fd, name), or the directory fd itself (name NULL,
 * only for the root, which is a directory: following the magic link is then safe). */
struct tgt {
        int dfd;
        const char *name;
};

/* The *xattrat(2) calls (Linux 6.13, the same numbers on every architecture) address dfd/name
 * without following it, or dfd itself with an empty name; the /proc path they replace costs a
 * procfs lookup each time (the kernel asks for security.capability at every first write, and a
 * copy-up sets several xattrs). Older kernels, or a seccomp filter that does not know them
 * (EPERM), get the /proc path. */
#ifndef SYS_setxattrat
#define SYS_setxattrat 463
#define SYS_getxattrat 464
#define SYS_listxattrat 465
#define SYS_removexattrat 466
#endif
static atomic_bool no_xattrat;

struct xattr_args_at {
        uint64_t value;
        uint32_t size;
        uint32_t flags;
};

static long xattrat_result(long r)
{
        if (r >= 0)
                return r;
        if (errno == ENOSYS)
                atomic_store_explicit(&no_xattrat, true, memory_order_relaxed);
        return errno == ENOSYS || errno == EPERM ? -ENOSYS : -errno;
}

static bool xattrat_ok(void) { return !atomic_load_explicit(&no_xattrat, memory_order_relaxed); }

/* The directory itself as "." (dfd may be an O_PATH fd, which AT_EMPTY_PATH does not take) */
static const char *t_at_name(const struct tgt *t) { return t->name ? t->name : "."; }

static ssize_t t_getxattr(const struct tgt *t, const char *x, void *buf, size_t n)
{
        if (xattrat_ok()) {
                struct xattr_args_at a = { (uint64_t)(uintptr_t)buf, (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n), 0 };
                long r = xattrat_result(
                        syscall(SYS_getxattrat, t->dfd, t_at_name(t), AT_SYMLINK_NOFOLLOW, x, &a, sizeof(a)));
                if (r != -ENOSYS)
                        return r;
        }
        char p[PATH_MAX];
        procpath(p, sizeof(p), t->dfd, t->name);
        ssize_t r = t->name ? lgetxattr(p, x, buf, n) : getxattr(p, x, buf, n);
        return r < 0 ? -errno : r;
}

static ssize_t t_listxattr(const struct tgt *t, char *buf, size_t n)
{
        if (xattrat_ok()) {
                long r = xattrat_result(syscall(SYS_listxattrat, t->dfd, t_at_name(t), AT_SYMLINK_NOFOLLOW, buf, n));
                if (r != -ENOSYS)
                        return r;
        }
        char p[PATH_MAX];
        procpath(p, sizeof(p), t->dfd, t->name);
        ssize_t r = t->name ? llistxattr(p, buf, n) : listxattr(p, buf, n);
        return r < 0 ? -errno : r;
}

static int t_setxattr(const struct tgt *t, const char *x, const void *v, size_t n, int flags)
{
        if (xattrat_ok()) {
                struct xattr_args_at a = { (uint64_t)(uintptr_t)v, (uint32_t)(n > UINT32_MAX ? UINT32_MAX : n),
                                           (uint32_t)flags };
                long r = xattrat_result(
                        syscall(SYS_setxattrat, t->dfd, t_at_name(t), AT_SYMLINK_NOFOLLOW, x, &a, sizeof(a)));
                if (r != -ENOSYS)
                        return (int)r;
        }
        char p[PATH_MAX];
        procpath(p, sizeof(p), t->dfd, t->name);
        int r = t->name ? lsetxattr(p, x, v, n, flags) : setxattr(p, x, v, n, flags);
        return r < 0 ? -errno : 0;
}

static int t_removexattr(const struct tgt *t, const char *x)
{
        if (xattrat_ok()) {
                long r = xattrat_result(syscall(SYS_removexattrat, t->dfd, t_at_name(t), AT_SYMLINK_NOFOLLOW, x));
                if (r != -ENOSYS)
                        return (int)r;
        }
        char p[PATH_MAX];
        procpath(p, sizeof(p), t->dfd, t->name);
        int r = t->name ? lremovexattr(p, x) : removexattr(p, x);
        return r < 0 ? -errno : 0;
}

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6 */
#endif
static atomic_bool no_fchmodat2;

/* chmod of dfd/nm without following it, or of dfd itself (nm NULL; dfd may be O_PATH):
 * -EOPNOTSUPP for a symlink. One fchmodat2(2), else an O_PATH fd and its /proc link. */
static int chmod_at(int dfd, const char *nm, mode_t mode)
{
        if (!atomic_load_explicit(&no_fchmodat2, memory_order_relaxed)) {
                if (syscall(SYS_fchmodat2, dfd, nm ? nm : "", mode, nm ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) == 0)
                        return 0;
                if (errno != ENOSYS && errno != EPERM)
                        return -errno;
                if (errno == ENOSYS)
                        atomic_store_explicit(&no_fchmodat2, true, memory_order_relaxed);
        }
        _cleanup_close_ int fd = nm ? openat(dfd, nm, O_PATH | O_NOFOLLOW | O_CLOEXEC) : dup(dfd);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISLNK(st.st_mode))
                return -EOPNOTSUPP;
        char p[64];
        procpath(p, sizeof(p), fd, NULL);
        return chmod(p, mode) < 0 ? -errno : 0;
}

/* A whole xattr value, NUL-terminated; -ENODATA when absent. */
static int t_getxattr_str(const struct tgt *t, const char *x, char **ret)
{
        char buf[PATH_MAX + 1];
        ssize_t r = t_getxattr(t, x, buf, sizeof(buf) - 1);
        if (r < 0)
                return (int)r;
        buf[r] = '\0';
        *ret = xstrdup(buf);
        return 0;
}

static void stat_from_tree(const struct tree_inode *i, tree_ino ino, struct stat *st)
{
        memset(st, 0, sizeof(*st));
        st->st_ino = ino;
        st->st_mode = i->mode;
        st->st_nlink = S_ISDIR(i->mode) ? (i->nlink ? i->nlink : 2) : (i->nlink ? i->nlink : 1);
        st->st_uid = i->uid;
        st->st_gid = i->gid;
        st->st_rdev = (dev_t)i->rdev;
        st->st_size = S_ISREG(i->mode) || S_ISLNK(i->mode) ? (off_t)i->size : 0;
        if (S_ISLNK(i->mode))
                st->st_size = i->b;
        st->st_blksize = S_ISREG(i->mode) ? TREE_FILE_BLKSIZE : 4096;
        st->st_blocks = (blkcnt_t)((i->size + 511) / 512);
        if (!S_ISREG(i->mode))
                st->st_blocks = 0;
        st->st_mtim.tv_sec = i->mtime_sec;
        st->st_mtim.tv_nsec = i->mtime_nsec;
        st->st_atim = st->st_mtim;
        st->st_ctim = st->st_mtim;
}

static char *join(const char *dir, const char *name)
{
        return *dir ? xasprintf("%s/%s", dir, name) : xstrdup(name);
}

/* ---- the lower tree ---- */

static int lookup_lower(upper *u, const struct upper_dir *d, const char *name, tree_ino *ret)
{
        if (!u->t || !d || !d->merge)
                return -ENOENT;
        int r = tree_lookup(u->t, d->lower, name, strlen(name), ret);
        return r == -ENOTDIR ? -ENOENT : r;
}

/* The path of a lower directory ("" for the root), built from the parent links. */
static int lower_dir_path(upper *u, tree_ino dir, char **ret)
{
        char *path = xstrdup("");
        tree_ino cur = dir;
        for (unsigned depth = 0; cur != TREE_ROOT; depth++) {
                const struct tree_inode *i = tree_get(u->t, cur);
                if (!i || !S_ISDIR(i->mode) || depth > 4096) {
                        free(path);
                        return -EIO;
                }
                tree_ino p = i->parent;
                uint32_t n = tree_dir_count(u->t, p);
                const char *found = NULL;
                size_t flen = 0;
                for (uint32_t k = 0; k < n && !found; k++) {
                        const char *nm;
                        size_t len;
                        tree_ino ino;
                        if (tree_dir_entry(u->t, p, k, &nm, &len, &ino) == 0 && ino == cur) {
                                found = nm;
                                flen = len;
                        }
                }
                if (!found) {
                        free(path);
                        return -EIO;
                }
                char *np = *path ? xasprintf("%.*s/%s", (int)flen, found, path) : xstrndup(found, flen);
                free(path);
                path = np;
                cur = p;
        }
        *ret = path;
        return 0;
}

static int lower_entry_path(upper *u, tree_ino dir, const char *name, char **ret)
{
        _cleanup_free_ char *dp = NULL;
        int r = lower_dir_path(u, dir, &dp);
        if (r < 0)
                return r;
        *ret = join(dp, name);
        return 0;
}

static int resolve_redirect(upper *u, const struct upper_dir *d, const char *redirect, tree_ino *ret)
{
        if (!u->t)
                return -ENOENT;
        if (redirect[0] == '/')
                return tree_resolve(u->t, redirect + 1, ret);
        /* relative: a name in the parent's lower dir */
        if (strchr(redirect, '/'))
                return -EINVAL;
        return lookup_lower(u, d, redirect, ret);
}

static int hl_cmp(const void *a, const void *b)
{
        const struct hl_entry *x = a, *y = b;
        return x->ino < y->ino ? -1 : x->ino > y->ino ? 1 : 0;
}

/* Index the lower names of every inode with nlink > 1, once. */
static void hl_build(upper *u)
{
        pthread_mutex_lock(&u->hl_lock);
        if (!u->hl_built && u->t) {
                size_t cap = 0;
                uint32_t n = tree_count(u->t);
                for (tree_ino dir = 0; dir < n; dir++) {
                        const struct tree_inode *di = tree_get(u->t, dir);
                        if (!di || !S_ISDIR(di->mode))
                                continue;
                        uint32_t cnt = tree_dir_count(u->t, dir);
                        for (uint32_t k = 0; k < cnt; k++) {
                                const char *nm;
                                size_t len;
                                tree_ino ino;
                                if (tree_dir_entry(u->t, dir, k, &nm, &len, &ino) < 0)
                                        continue;
                                const struct tree_inode *i = tree_get(u->t, ino);
                                if (!i || S_ISDIR(i->mode) || i->nlink < 2)
                                        continue;
                                if (u->n_hl == cap) {
                                        cap = cap ? cap * 2 : 64;
                                        u->hl = xrealloc(u->hl, cap * sizeof(*u->hl));
                                }
                                u->hl[u->n_hl++] = (struct hl_entry){ ino, dir, k };
                        }
                }
                qsort(u->hl, u->n_hl, sizeof(*u->hl), hl_cmp);
                u->hl_built = true;
        }
        pthread_mutex_unlock(&u->hl_lock);
}

/* ---- lookups ---- */

static int ent_from_lower(upper *u, tree_ino ino, struct upper_ent *e)
{
        const struct tree_inode *i = tree_get(u->t, ino);
        if (!i)
                return -EIO;
        memset(e, 0, sizeof(*e));
        stat_from_tree(i, ino, &e->st);
        e->has_lower = true;
        e->lower = ino;
        e->merge = S_ISDIR(i->mode);
        return 0;
}

/* Fill e for an upper entry: decode opaque, redirect and metacopy. */
static int ent_from_upper(upper *u, const struct upper_dir *d, const struct tgt *t, const struct stat *st,
                          struct upper_ent *e)
{
        memset(e, 0, sizeof(*e));
        e->st = *st;
        e->in_upper = true;
        tree_ino lo = 0;
        bool found = false;
        if (S_ISDIR(st->st_mode)) {
                char v[4];
                ssize_t r = t_getxattr(t, OVL_OPAQUE, v, sizeof(v));
                bool opaque = r == 1 && v[0] == 'y';
                _cleanup_free_ char *redirect = NULL;
                if (opaque || !u->t)
                        found = false;
                else if (t_getxattr_str(t, OVL_REDIRECT, &redirect) == 0)
                        found = resolve_redirect(u, d, redirect, &lo) == 0;
                else if (!d)
                        found = true, lo = TREE_ROOT;
                else
                        found = lookup_lower(u, d, t->name, &lo) == 0;
                if (found) {
                        const struct tree_inode *i = tree_get(u->t, lo);
                        found = i && S_ISDIR(i->mode);
                }
                e->merge = found;
        } else if (S_ISREG(st->st_mode) && st->st_size > 0) {
                ssize_t r = t_getxattr(t, OVL_METACOPY, NULL, 0);
                if (r >= 0) {
                        e->metacopy = true;
                        _cleanup_free_ char *redirect = NULL;
                        if (t_getxattr_str(t, OVL_REDIRECT, &redirect) == 0)
                                found = resolve_redirect(u, d, redirect, &lo) == 0;
                        else
                                found = lookup_lower(u, d, t->name, &lo) == 0;
                        if (found) {
                                const struct tree_inode *i = tree_get(u->t, lo);
                                found = i && S_ISREG(i->mode);
                                if (found)
                                        e->st.st_blocks = (blkcnt_t)((i->size + 511) / 512);
                        }
                }
        }
        e->has_lower = found;
        e->lower = lo;
        upper_copies_fix_stat(u->copies, &e->st);
        return 0;
}

static int lookup_root(upper *u, struct upper_ent *ret)
{
        struct stat st;
        if (fstat(u->fd, &st) < 0)
                return -errno;
        struct tgt t = { u->fd, NULL };
        return ent_from_upper(u, NULL, &t, &st, ret);
}

/* Where a name of a directory is: in the upper dir (returns 1, with *ret_pfd an O_PATH fd of
 * its parent for the caller to close and *ret_st its stat), only in the image (returns 0, with
 * *ret_ino), or nowhere (-ENOENT: absent, or hidden by a whiteout). */
static int find_entry(upper *u, const struct upper_dir *d, const char *name, int *ret_pfd, struct stat *ret_st,
                      tree_ino *ret_ino)
{
        if (!name_ok(name))
                return -EINVAL;
        _cleanup_close_ int fd = open_dir(u, d->path, O_PATH);
        if (fd >= 0) {
                if (fstatat(fd, name, ret_st, AT_SYMLINK_NOFOLLOW) == 0) {
                        if (is_whiteout(ret_st))
                                return -ENOENT;
                        *ret_pfd = TAKE_FD(fd);
                        return 1;
                }
                if (errno != ENOENT)
                        return -errno;
        } else if (fd != -ENOENT) {
                return fd;
        }
        int r = lookup_lower(u, d, name, ret_ino);
        return r < 0 ? r : 0;
}

int upper_lookup(upper *u, const struct upper_dir *d, const char *name, struct upper_ent *ret)
{
        if (!d)
                return lookup_root(u, ret);
        _cleanup_close_ int fd = -1;
        struct stat st;
        tree_ino ino;
        int r = find_entry(u, d, name, &fd, &st, &ino);
        if (r < 0)
                return r;
        if (r == 0)
                return ent_from_lower(u, ino, ret);
        struct tgt t = { fd, name };
        return ent_from_upper(u, d, &t, &st, ret);
}

int upper_stat(upper *u, const struct upper_dir *d, const char *name, struct stat *ret)
{
        if (!d)
                return fstat(u->fd, ret) < 0 ? -errno : 0;
        _cleanup_close_ int fd = -1;
        struct stat st;
        tree_ino ino;
        int r = find_entry(u, d, name, &fd, &st, &ino);
        if (r < 0)
                return r;
        if (r == 1 && S_ISDIR(st.st_mode)) {
                /* opaque and redirect say which lower dir shows through, not what the dir's
                 * attributes are: not read */
                *ret = st;
                return 0;
        }
        struct upper_ent e;
        struct tgt t = { fd, name };
        r = r == 1 ? ent_from_upper(u, d, &t, &st, &e) : ent_from_lower(u, ino, &e);
        if (r < 0)
                return r;
        *ret = e.st;
        return 0;
}

static struct upper_dir root_dir(upper *u)
{
        struct upper_ent e;
        struct upper_dir d = { .path = "", .merge = false, .lower = TREE_ROOT };
        if (lookup_root(u, &e) == 0) {
                d.merge = e.merge;
                d.lower = e.lower;
        }
        return d;
}

/* Walk a directory path of the merged view from the root (without creating anything). The
 * returned dir's path points into *ret_path. */
static int resolve_dir(upper *u, const char *path, struct upper_dir *ret, char **ret_path)
{
        struct upper_dir cur = root_dir(u);
        _cleanup_free_ char *copy = xstrdup(path);
        _cleanup_free_ char *sofar = xstrdup("");
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                struct upper_ent e;
                int r = upper_lookup(u, &cur, c, &e);
                if (r < 0)
                        return r;
                if (!S_ISDIR(e.st.st_mode))
                        return -ENOTDIR;
                char *next = join(sofar, c);
                free(sofar);
                sofar = next;
                cur.path = sofar;
                cur.merge = e.merge;
                cur.lower = e.lower;
        }
        ret->merge = cur.merge;
        ret->lower = cur.lower;
        *ret_path = TAKE_PTR(sofar);
        ret->path = *ret_path;
        return 0;
}

/* ---- readdir ---- */

static int str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void upper_dirents_free(struct upper_dirent *e, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(e[i].name);
        free(e);
}

int upper_readdir(upper *u, const struct upper_dir *d, struct upper_dirent **ret, size_t *ret_n)
{
        struct upper_dirent *out = NULL;
        size_t n = 0, cap = 0;
        char **seen = NULL; /* every upper name, whiteouts too: they hide lower names */
        size_t n_seen = 0;
        int fd = open_dir(u, d->path, O_RDONLY);
        if (fd < 0 && fd != -ENOENT)
                return fd;
        if (fd >= 0) {
                DIR *dir = fdopendir(fd);
                if (!dir) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                struct dirent *de;
                while ((errno = 0, de = readdir(dir))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        uint8_t type = de->d_type;
                        if (type == DT_CHR || type == DT_UNKNOWN) {
                                struct stat st;
                                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                        continue;
                                type = (uint8_t)IFTODT(st.st_mode);
                                if (is_whiteout(&st)) {
                                        seen = xrealloc(seen, (n_seen + 1) * sizeof(*seen));
                                        seen[n_seen++] = xstrdup(de->d_name);
                                        continue;
                                }
                        }
                        if (n == cap) {
                                cap = cap ? cap * 2 : 32;
                                out = xrealloc(out, cap * sizeof(*out));
                        }
                        out[n].name = xstrdup(de->d_name);
                        out[n].type = type;
                        n++;
                        seen = xrealloc(seen, (n_seen + 1) * sizeof(*seen));
                        seen[n_seen++] = xstrdup(de->d_name);
                }
                int err = errno;
                closedir(dir);
                if (err) {
                        upper_dirents_free(out, n);
                        for (size_t i = 0; i < n_seen; i++)
                                free(seen[i]);
                        free(seen);
                        return -err;
                }
        }
        if (d->merge && u->t) {
                if (n_seen)
                        qsort(seen, n_seen, sizeof(*seen), str_cmp);
                uint32_t cnt = tree_dir_count(u->t, d->lower);
                for (uint32_t k = 0; k < cnt; k++) {
                        const char *nm;
                        size_t len;
                        tree_ino ino;
                        if (tree_dir_entry(u->t, d->lower, k, &nm, &len, &ino) < 0)
                                continue;
                        _cleanup_free_ char *name = xstrndup(nm, len);
                        if (n_seen && bsearch(&name, seen, n_seen, sizeof(*seen), str_cmp))
                                continue;
                        const struct tree_inode *i = tree_get(u->t, ino);
                        if (n == cap) {
                                cap = cap ? cap * 2 : 32;
                                out = xrealloc(out, cap * sizeof(*out));
                        }
                        out[n].name = TAKE_PTR(name);
                        out[n].type = i ? (uint8_t)IFTODT(i->mode) : DT_UNKNOWN;
                        n++;
                }
        }
        for (size_t i = 0; i < n_seen; i++)
                free(seen[i]);
        free(seen);
        *ret = out;
        *ret_n = n;
        return 0;
}

static int merged_is_empty(upper *u, const struct upper_dir *d)
{
        struct upper_dirent *e;
        size_t n;
        int r = upper_readdir(u, d, &e, &n);
        if (r < 0)
                return r;
        upper_dirents_free(e, n);
        return n == 0;
}

/* Remove the whiteouts an upper directory holds (before it is removed or replaced); anything
 * else in it means it is not empty. */
static int clear_whiteouts(upper *u, const char *path)
{
        int fd = open_dir(u, path, O_RDONLY);
        if (fd < 0)
                return fd == -ENOENT ? 0 : fd;
        DIR *dir = fdopendir(fd);
        if (!dir) {
                int r = -errno;
                close(fd);
                return r;
        }
        int r = 0;
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!is_whiteout(&st)) {
                        r = -ENOTEMPTY;
                        break;
                }
                if (unlinkat(dirfd(dir), de->d_name, 0) < 0 && errno != ENOENT) {
                        r = -errno;
                        break;
                }
        }
        closedir(dir);
        return r;
}

/* ---- copy-up ---- */

static void tmpname(upper *u, char buf[64])
{
        snprintf(buf, 64, "#ctfs-%d-%llu", (int)getpid(), (unsigned long long)atomic_fetch_add(&u->tmp_counter, 1));
}

/* Copy a file's data into an empty dst: a reflink (FICLONE) where the upper's filesystem shares
 * blocks with the store's (XFS, btrfs: no data moves, and *ret_cloned says so), else
 * copy_file_range, else read/write; holes stay holes. */
static int copy_data(int src, int dst, off_t size, bool *ret_cloned)
{
        _cleanup_free_ char *buf = NULL;
        *ret_cloned = false;
        /* EXDEV (another filesystem), EOPNOTSUPP/ENOTTY/EINVAL (no reflinks here): copy */
        if (size > 0 && ioctl(dst, FICLONE, src) == 0)
                *ret_cloned = true;
        else {
                int r = upper_copy_range(src, dst, 0, size, &buf);
                if (r < 0)
                        return r;
        }
        if (ftruncate(dst, size) < 0)
                return -errno;
        return 0;
}

static int open_object(upper *u, tree_ino ino)
{
        const struct tree_inode *i = tree_get(u->t, ino);
        if (!i || !S_ISREG(i->mode))
                return -EIO;
        if (i->size == 0) {
                /* empty files may have no object: an empty memfd reads and splices as EOF */
                int fd = memfd_create("ctfs-empty", MFD_CLOEXEC);
                return fd < 0 ? -errno : fd;
        }
        int fd = store_object_open(u->s, i->digest);
        return fd == -ENOENT ? -EIO : fd;
}

static int set_tree_xattrs(upper *u, const struct tgt *t, tree_ino ino)
{
        const struct tree_inode *i = tree_get(u->t, ino);
        for (uint32_t k = 0; i && k < i->xattr_count; k++) {
                const char *xn;
                size_t xl, vl;
                const void *v;
                int r = tree_xattr_at(u->t, ino, k, &xn, &xl, &v, &vl);
                if (r < 0)
                        return r;
                _cleanup_free_ char *name = xstrndup(xn, xl);
                if (is_ovl_xattr(name)) /* never let an image speak the format's own language */
                        continue;
                r = t_setxattr(t, name, v, vl, 0);
                if (r < 0 && r != -EOPNOTSUPP)
                        return r;
        }
        return 0;
}

/* Build a copy of a lower inode in the work dir under tmp. lower_path (regular files with
 * CU_META) is the path the metacopy's redirect names. */
static int make_copy(upper *u, tree_ino ino, const char *lower_path, enum copyup_how how, char tmp[64],
                     struct upper_copy_job *later)
{
        const struct tree_inode *i = tree_get(u->t, ino);
        if (!i)
                return -EIO;
        tmpname(u, tmp);
        mode_t perm = i->mode & 07777;
        _cleanup_close_ int fd = -1, ofd = -1;
        bool cloned = false, bg = false;
        int r = 0;
        later->fd = later->obj = later->work_fd = -1;
        switch (i->mode & S_IFMT) {
        case S_IFDIR:
                if (mkdirat(u->work_fd, tmp, 0700) < 0)
                        return -errno;
                break;
        case S_IFLNK: {
                const char *target;
                size_t len;
                r = tree_readlink(u->t, ino, &target, &len);
                if (r < 0)
                        return r;
                _cleanup_free_ char *tg = xstrndup(target, len);
                if (symlinkat(tg, u->work_fd, tmp) < 0)
                        return -errno;
                break;
        }
        case S_IFREG:
                fd = openat(u->work_fd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0)
                        return -errno;
                if ((how == CU_DATA || how == CU_DATA_BG) && i->size > 0) {
                        ofd = open_object(u, ino);
                        if (ofd < 0) {
                                r = ofd;
                                goto fail;
                        }
                        /* big, and no reflink: holes now, the data once published (the mark
                         * first: chown and the image's xattrs leave trusted.* alone). Not a file
                         * with file capabilities: the copy's writes would drop them. */
                        bg = how == CU_DATA_BG && i->size >= COPY_BG_MIN &&
                             tree_getxattr_buf(u->t, ino, "security.capability", NULL, 0) < 0 &&
                             ioctl(fd, FICLONE, ofd) < 0 && ftruncate(fd, (off_t)i->size) == 0 &&
                             upper_copy_prepare(fd, u->work_fd, i->digest, (off_t)i->size, later->entry) == 0;
                        if (bg) {
                                /* all a copy needs, now: nothing may fail once it is published */
                                struct stat st;
                                later->work_fd = fcntl(u->work_fd, F_DUPFD_CLOEXEC, 3);
                                if (later->work_fd < 0 || fstat(fd, &st) < 0) {
                                        upper_copy_abandon(fd, u->work_fd, later->entry);
                                        if (later->work_fd >= 0)
                                                close(later->work_fd);
                                        later->work_fd = -1;
                                        bg = false;
                                } else {
                                        later->dev = st.st_dev;
                                        later->ino = st.st_ino;
                                }
                        }
                        r = bg ? 0 : copy_data(ofd, fd, (off_t)i->size, &cloned);
                        if (r < 0)
                                goto fail;
                } else if (how == CU_META && i->size > 0) {
                        _cleanup_free_ char *redirect = xasprintf("/%s", lower_path);
                        if (ftruncate(fd, (off_t)i->size) < 0 || fsetxattr(fd, OVL_METACOPY, "", 0, 0) < 0 ||
                            fsetxattr(fd, OVL_REDIRECT, redirect, strlen(redirect), 0) < 0) {
                                r = -errno;
                                goto fail;
                        }
                }
                break;
        case S_IFCHR:
        case S_IFBLK:
        case S_IFIFO:
        case S_IFSOCK:
                if (mknodat(u->work_fd, tmp, (i->mode & S_IFMT) | 0600, (dev_t)i->rdev) < 0)
                        return -errno;
                break;
        default:
                return -EIO;
        }
        /* chown first: it clears setuid/setgid and security.capability */
        if (fchownat(u->work_fd, tmp, i->uid, i->gid, AT_SYMLINK_NOFOLLOW) < 0)
                goto fail_errno;
        /* tmp lives in our private work dir and is not a symlink here, so following is safe */
        if (!S_ISLNK(i->mode) && fchmodat(u->work_fd, tmp, perm, 0) < 0)
                goto fail_errno;
        struct tgt t = { u->work_fd, tmp };
        r = set_tree_xattrs(u, &t, ino);
        if (r < 0)
                goto fail;
        struct timespec ts[2] = { { i->mtime_sec, i->mtime_nsec }, { i->mtime_sec, i->mtime_nsec } };
        if (utimensat(u->work_fd, tmp, ts, AT_SYMLINK_NOFOLLOW) < 0)
                goto fail_errno;
        /* The copy is about to become the file's only data (the rename hides the lower): after
         * a power loss the container must not find its file empty or short though it never
         * wrote to it, so the data must be on disk before the rename is (the kernel's overlayfs
         * fsyncs its copy-ups too; ext4's delayed allocation would otherwise write the rename
         * first). A SIGKILL of the daemon alone loses nothing either way (the page cache
         * stays). A reflink needs no fsync: it shares blocks that are already on disk, and the
         * journal (XFS, btrfs) commits the clone before the rename that follows it. */
        if (fd >= 0 && (how == CU_DATA || how == CU_DATA_BG) && !cloned && !bg && fsync(fd) < 0)
                goto fail_errno;
        if (bg) {
                later->fd = TAKE_FD(fd);
                later->obj = TAKE_FD(ofd);
                later->size = (off_t)i->size;
        }
        return 0;
fail_errno:
        r = -errno;
fail:
        if (bg) {
                upper_copy_abandon(fd, u->work_fd, later->entry);
                close(later->work_fd);
                later->work_fd = -1;
        }
        unlinkat(u->work_fd, tmp, S_ISDIR(i->mode) ? AT_REMOVEDIR : 0);
        return r;
}

/* Adding an entry to a directory during a copy-up must not change the directory's times as the
 * container sees them (the kernel's overlayfs restores them the same way). */
static void restore_times(int dfd, const struct stat *st)
{
        struct timespec ts[2] = { st->st_atim, st->st_mtim };
        utimensat(dfd, ".", ts, AT_SYMLINK_NOFOLLOW); /* dfd: a directory (O_PATH works here) */
}

/* Make sure the upper dir has every directory of path, copying lower dirs up; returns an O_PATH
 * fd of the last one. */
static int copyup_dir_path(upper *u, const char *path)
{
        int fd = open_dir(u, path, O_PATH);
        if (fd != -ENOENT)
                return fd;
        struct upper_dir cur = root_dir(u);
        _cleanup_close_ int cfd = open_dir(u, "", O_PATH);
        if (cfd < 0)
                return cfd;
        _cleanup_free_ char *copy = xstrdup(path);
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (!name_ok(c))
                        return -EINVAL;
                int nfd = openat(cfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                struct stat st;
                if (nfd >= 0) {
                        if (fstat(nfd, &st) < 0) {
                                close(nfd);
                                return -errno;
                        }
                        struct upper_ent e;
                        struct tgt t = { cfd, c };
                        ent_from_upper(u, &cur, &t, &st, &e);
                        cur.merge = e.merge;
                        cur.lower = e.lower;
                } else {
                        if (errno != ENOENT && !(errno == ENOTDIR &&
                                                 fstatat(cfd, c, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout(&st)))
                                return errno == ELOOP ? -ENOTDIR : -errno;
                        if (errno == ENOTDIR)
                                return -ENOENT; /* whited out */
                        tree_ino lo;
                        int r = lookup_lower(u, &cur, c, &lo);
                        if (r < 0)
                                return r;
                        const struct tree_inode *i = tree_get(u->t, lo);
                        if (!i || !S_ISDIR(i->mode))
                                return -ENOTDIR;
                        char tmp[64];
                        struct upper_copy_job none;
                        r = make_copy(u, lo, NULL, CU_META, tmp, &none);
                        if (r < 0)
                                return r;
                        struct stat pst;
                        fstat(cfd, &pst);
                        if (renameat2(u->work_fd, tmp, cfd, c, RENAME_NOREPLACE) < 0) {
                                r = -errno;
                                unlinkat(u->work_fd, tmp, AT_REMOVEDIR);
                                return r;
                        }
                        restore_times(cfd, &pst);
                        nfd = openat(cfd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (nfd < 0)
                                return -errno;
                        /* a directory's own times change when it moves: set them in place */
                        struct timespec ts[2] = { { i->mtime_sec, i->mtime_nsec }, { i->mtime_sec, i->mtime_nsec } };
                        utimensat(nfd, ".", ts, AT_SYMLINK_NOFOLLOW);
                        cur.merge = true;
                        cur.lower = lo;
                }
                close(cfd);
                cfd = nfd;
        }
        return TAKE_FD(cfd);
}

/* Open a regular upper file for I/O: O_PATH without following, check the type, then reopen the
 * exact inode. Never opens a fifo or a device by accident. */
static int open_reg(int dfd, const char *name, int flags)
{
        _cleanup_close_ int pfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (pfd < 0)
                return -errno;
        struct stat st;
        if (fstat(pfd, &st) < 0)
                return -errno;
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        char p[64];
        procpath(p, sizeof(p), pfd, NULL);
        int fd = open(p, (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW | O_TRUNC | O_APPEND | O_DIRECTORY)) | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static int copyup_hardlinked(upper *u, const struct upper_dir *d, const char *name, const struct upper_ent *e,
                             enum copyup_how how);

/* Copy an entry up (parents too) so that the upper dir holds it; how says whether a regular
 * file's data comes along. Updates e. */
static int copyup(upper *u, const struct upper_dir *d, const char *name, struct upper_ent *e, enum copyup_how how)
{
        int r;
        if (!d || (e->in_upper && !(e->metacopy && how != CU_META)))
                return 0;
        if (e->in_upper) {
                /* metacopy → full file, in place: the inode may have several names */
                _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
                if (pfd < 0)
                        return pfd;
                _cleanup_close_ int fd = open_reg(pfd, name, O_WRONLY);
                if (fd < 0)
                        return fd;
                if (how == CU_TRUNC) {
                        if (ftruncate(fd, 0) < 0)
                                return -errno;
                } else {
                        if (!e->has_lower)
                                return -EIO;
                        _cleanup_close_ int ofd = open_object(u, e->lower);
                        if (ofd < 0)
                                return ofd;
                        bool cloned;
                        r = copy_data(ofd, fd, e->st.st_size, &cloned);
                        if (r < 0)
                                return r;
                        /* the data must be durable before the marker that says "data is in the
                         * lower" goes away (see make_copy; a reflink already is) */
                        if (!cloned && fsync(fd) < 0)
                                return -errno;
                }
                if (fremovexattr(fd, OVL_METACOPY) < 0 && errno != ENODATA)
                        return -errno;
                if (fremovexattr(fd, OVL_REDIRECT) < 0 && errno != ENODATA)
                        return -errno;
                atomic_fetch_add(&u->gen, 1);
                return upper_lookup(u, d, name, e);
        }
        if (!e->has_lower)
                return -EIO;
        if (!S_ISDIR(e->st.st_mode) && e->st.st_nlink > 1)
                r = copyup_hardlinked(u, d, name, e, how);
        else {
                _cleanup_free_ char *lpath = NULL;
                if (S_ISREG(e->st.st_mode) && how == CU_META) {
                        r = lower_entry_path(u, d->lower, name, &lpath);
                        if (r < 0)
                                return r;
                }
                _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
                if (pfd < 0)
                        return pfd;
                char tmp[64];
                struct upper_copy_job later;
                r = make_copy(u, e->lower, lpath, how, tmp, &later);
                if (r < 0)
                        return r;
                struct stat pst;
                fstat(pfd, &pst);
                if (renameat2(u->work_fd, tmp, pfd, name, RENAME_NOREPLACE) < 0) {
                        r = -errno;
                        if (later.fd >= 0) {
                                upper_copy_abandon(later.fd, u->work_fd, later.entry);
                                close(later.fd);
                                close(later.obj);
                                close(later.work_fd);
                        }
                        unlinkat(u->work_fd, tmp, S_ISDIR(e->st.st_mode) ? AT_REMOVEDIR : 0);
                        return r;
                }
                restore_times(pfd, &pst);
                if (later.fd >= 0)
                        upper_copy_start(u->copies, &later); /* published: its data follows */
                if (S_ISDIR(e->st.st_mode)) {
                        struct timespec ts[2] = { e->st.st_mtim, e->st.st_mtim };
                        utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW);
                }
        }
        if (r < 0)
                return r;
        /* the data is the upper's now (copied, or truncated: CU_TRUNC): readers of the lower
         * move to it */
        if (how != CU_META && !S_ISDIR(e->st.st_mode))
                atomic_fetch_add(&u->gen, 1);
        return upper_lookup(u, d, name, e);
}

/* Upper directories that carry a redirect (moved lower dirs), with the lower dir each shows:
 * where names of a lower hardlink set went when a directory above them was renamed. */
struct moved_dir {
        char *path;  /* merged path */
        char *lpath; /* lower path of the lower dir it shows */
};

static void moved_dirs_free(struct moved_dir *m, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(m[i].path);
                free(m[i].lpath);
        }
        free(m);
}

/* Walk the upper dir (directories only, never following a link) for redirected directories. */
static void moved_dirs_walk(upper *u, const char *path, unsigned depth, struct moved_dir **m, size_t *n)
{
        if (depth > 256)
                return;
        int fd = open_dir(u, path, O_RDONLY);
        if (fd < 0)
                return;
        DIR *dir = fdopendir(fd);
        if (!dir) {
                close(fd);
                return;
        }
        struct dirent *de;
        while ((de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                _cleanup_free_ char *sub = join(path, de->d_name);
                struct tgt t = { dirfd(dir), de->d_name };
                char probe[1];
                if (t_getxattr(&t, OVL_REDIRECT, probe, 0) >= 0) {
                        struct upper_dir md;
                        _cleanup_free_ char *mpath = NULL;
                        char *lp = NULL;
                        if (resolve_dir(u, sub, &md, &mpath) == 0 && md.merge && lower_dir_path(u, md.lower, &lp) == 0) {
                                *m = xrealloc(*m, (*n + 1) * sizeof(**m));
                                (*m)[(*n)++] = (struct moved_dir){ xstrdup(sub), lp };
                        }
                }
                moved_dirs_walk(u, sub, depth + 1, m, n);
        }
        closedir(dir);
}

/* Is name, in the merged dir at path, still a name of lower inode ino? Then fill md (and
 * md_path, which md.path points into). */
static bool member_at(upper *u, const char *path, const char *name, tree_ino ino, struct upper_dir *md,
                      char **md_path)
{
        struct upper_ent me;
        if (resolve_dir(u, path, md, md_path) < 0)
                return false;
        if (upper_lookup(u, md, name, &me) < 0 || me.in_upper || !me.has_lower || me.lower != ino) {
                free(*md_path);
                *md_path = NULL;
                return false;
        }
        return true;
}

/* A lower inode with several names: copy it up once and link every name of the set that the
 * container still sees (at its lower path, or below a renamed directory), so the set stays one
 * inode (writes through one name show through the others; nlink stays right). */
static int copyup_hardlinked(upper *u, const struct upper_dir *d, const char *name, const struct upper_ent *e,
                             enum copyup_how how)
{
        hl_build(u);
        _cleanup_free_ char *self_lpath = NULL;
        int r = lower_entry_path(u, d->lower, name, &self_lpath);
        if (r < 0)
                return r;
        char tmp[64];
        struct upper_copy_job none;
        r = make_copy(u, e->lower, self_lpath, how == CU_DATA_BG ? CU_DATA : how, tmp, &none);
        if (r < 0)
                return r;
        {
                _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
                if (pfd < 0) {
                        r = pfd;
                        goto out;
                }
                struct stat pst;
                fstat(pfd, &pst);
                if (linkat(u->work_fd, tmp, pfd, name, 0) < 0) {
                        r = -errno;
                        goto out;
                }
                restore_times(pfd, &pst);
        }
        struct hl_entry key = { .ino = e->lower };
        struct hl_entry *m = bsearch(&key, u->hl, u->n_hl, sizeof(*u->hl), hl_cmp);
        while (m && m > u->hl && m[-1].ino == e->lower)
                m--;
        struct moved_dir *moved = NULL;
        size_t n_moved = 0;
        bool walked = false;
        for (; m && m < u->hl + u->n_hl && m->ino == e->lower; m++) {
                const char *nm;
                size_t len;
                tree_ino ino;
                if (tree_dir_entry(u->t, m->dir, m->idx, &nm, &len, &ino) < 0)
                        continue;
                _cleanup_free_ char *mname = xstrndup(nm, len);
                _cleanup_free_ char *dpath = NULL;
                if (lower_dir_path(u, m->dir, &dpath) < 0)
                        continue;
                /* the member as the container sees it at its lower path: still this lower file?
                 * Else, below a directory that was moved: where the lower dir shows now */
                struct upper_dir md;
                _cleanup_free_ char *mdpath = NULL;
                bool found = member_at(u, dpath, mname, e->lower, &md, &mdpath);
                if (!found && !walked) {
                        moved_dirs_walk(u, "", 0, &moved, &n_moved);
                        walked = true;
                }
                for (size_t k = 0; !found && k < n_moved; k++) {
                        size_t l = strlen(moved[k].lpath);
                        const char *rest;
                        if (strcmp(dpath, moved[k].lpath) == 0)
                                rest = "";
                        else if (strncmp(dpath, moved[k].lpath, l) == 0 && (l == 0 || dpath[l] == '/'))
                                rest = dpath + l + (l ? 1 : 0);
                        else
                                continue;
                        _cleanup_free_ char *cand = join(moved[k].path, rest);
                        size_t cl = strlen(cand);
                        if (cl && cand[cl - 1] == '/')
                                cand[cl - 1] = '\0';
                        found = member_at(u, cand, mname, e->lower, &md, &mdpath);
                }
                if (!found)
                        continue;
                _cleanup_close_ int pfd = copyup_dir_path(u, md.path);
                if (pfd < 0)
                        continue;
                struct stat pst;
                fstat(pfd, &pst);
                if (linkat(u->work_fd, tmp, pfd, mname, 0) == 0)
                        restore_times(pfd, &pst);
        }
        moved_dirs_free(moved, n_moved);
        r = 0;
out:
        unlinkat(u->work_fd, tmp, 0);
        return r;
}

/* ---- creating entries ---- */

/* Move a new entry built in the work dir to pfd/name. A whiteout there is replaced (a new
 * directory in its place becomes opaque, so the deleted lower dir's children stay hidden). */
static int publish_new(upper *u, int pfd, const char *name, const char *tmp, bool dir)
{
        struct stat st;
        int r = 0;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                if (!is_whiteout(&st)) {
                        r = -EEXIST;
                        goto fail;
                }
                if (dir) {
                        struct tgt t = { u->work_fd, tmp };
                        r = t_setxattr(&t, OVL_OPAQUE, "y", 1, 0);
                        if (r < 0)
                                goto fail;
                        if (renameat2(u->work_fd, tmp, pfd, name, RENAME_EXCHANGE) < 0)
                                goto fail_errno;
                        unlinkat(u->work_fd, tmp, 0); /* the whiteout, now in the work dir */
                        return 0;
                }
                if (renameat(u->work_fd, tmp, pfd, name) < 0)
                        goto fail_errno;
                return 0;
        }
        if (errno != ENOENT)
                goto fail_errno;
        if (renameat2(u->work_fd, tmp, pfd, name, RENAME_NOREPLACE) < 0)
                goto fail_errno;
        return 0;
fail_errno:
        r = -errno;
fail:
        unlinkat(u->work_fd, tmp, dir ? AT_REMOVEDIR : 0);
        return r;
}

static int check_new(upper *u, const struct upper_dir *d, const char *name)
{
        if (!d)
                return -EEXIST;
        if (!name_ok(name))
                return -EINVAL;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r == 0)
                return -EEXIST;
        return r == -ENOENT ? 0 : r;
}

/* The old way, for upper filesystems without O_TMPFILE: build the file in the work dir, give it
 * its owner and mode there, publish it with one rename. */
static int create_in_work(upper *u, int pfd, const char *name, mode_t mode, uid_t uid, gid_t gid, int *ret_fd)
{
        char tmp[64];
        tmpname(u, tmp);
        _cleanup_close_ int fd = openat(u->work_fd, tmp, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode & 07777) < 0) {
                int r = -errno;
                unlinkat(u->work_fd, tmp, 0);
                return r;
        }
        int r = publish_new(u, pfd, name, tmp, false);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Give an O_TMPFILE inode the name dfd/name (never replacing one). AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH; the /proc link of the fd works without (and follows nothing but the fd). */
static int link_tmpfile(int fd, int dfd, const char *name)
{
        if (linkat(fd, "", dfd, name, AT_EMPTY_PATH) == 0)
                return 0;
        if (errno != ENOENT)
                return -errno;
        char p[64];
        procpath(p, sizeof(p), fd, NULL);
        return linkat(AT_FDCWD, p, dfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* A new regular file is made in its parent, not in the work dir: an O_TMPFILE inode gets its owner
 * and mode while it has no name, then linkat gives it its name (or, over a whiteout, a name in
 * the work dir and one rename replaces the whiteout: linkat cannot replace a name). So the file
 * never shows with root's owner or a wrong mode, even to root, and a crash leaves nothing behind.
 * Why not the work dir: ext4 allocates an inode in its directory's block group, and without a
 * journal it steps over each inode of that group freed in the last ~30 s (recently_deleted(),
 * one inode table lookup each): with every new file born in the work dir, creating 10,000 files
 * after deleting 10,000 cost ~0.5 ms a file there against ~0.05 ms in the parent. */
int upper_create(upper *u, const struct upper_dir *d, const char *name, mode_t mode, uid_t uid, gid_t gid,
                 int flags, int *ret_fd, struct upper_ent *ret)
{
        (void)flags;
        if (!d)
                return -EEXIST;
        if (!name_ok(name))
                return -EINVAL;
        /* Does the name exist in the merged view? (upper_lookup's answer, from one open of the
         * parent, which the create then uses.) */
        bool wh = false;
        _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
        if (pfd >= 0) {
                struct stat st;
                if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                        if (!is_whiteout(&st))
                                return -EEXIST;
                        wh = true;
                } else if (errno != ENOENT) {
                        return -errno;
                }
        } else if (pfd != -ENOENT) {
                return pfd;
        }
        if (!wh) {
                tree_ino ino;
                int r = lookup_lower(u, d, name, &ino);
                if (r == 0)
                        return -EEXIST;
                if (r != -ENOENT)
                        return r;
        }
        if (pfd < 0) {
                pfd = copyup_dir_path(u, d->path);
                if (pfd < 0)
                        return pfd;
        }
        int r;
        _cleanup_close_ int fd = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0) {
                if (errno != EOPNOTSUPP && errno != EISDIR)
                        return -errno;
                r = create_in_work(u, pfd, name, mode, uid, gid, &fd);
                if (r < 0)
                        return r;
        } else {
                if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode & 07777) < 0)
                        return -errno;
                if (!wh) {
                        r = link_tmpfile(fd, pfd, name);
                } else {
                        char tmp[64];
                        tmpname(u, tmp);
                        r = link_tmpfile(fd, u->work_fd, tmp);
                        if (r == 0)
                                r = publish_new(u, pfd, name, tmp, false);
                }
                if (r < 0)
                        return r;
        }
        /* a new empty file: no lower, no xattrs to decode */
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        memset(ret, 0, sizeof(*ret));
        ret->st = st;
        ret->in_upper = true;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int upper_mkdir(upper *u, const struct upper_dir *d, const char *name, mode_t mode, uid_t uid, gid_t gid,
                struct upper_ent *ret)
{
        int r = check_new(u, d, name);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        char tmp[64];
        tmpname(u, tmp);
        if (mkdirat(u->work_fd, tmp, 0700) < 0)
                return -errno;
        if (fchownat(u->work_fd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            fchmodat(u->work_fd, tmp, mode & 07777, 0) < 0) {
                r = -errno;
                unlinkat(u->work_fd, tmp, AT_REMOVEDIR);
                return r;
        }
        r = publish_new(u, pfd, name, tmp, true);
        if (r < 0)
                return r;
        return upper_lookup(u, d, name, ret);
}

int upper_mknod(upper *u, const struct upper_dir *d, const char *name, mode_t mode, dev_t rdev, uid_t uid,
                gid_t gid, struct upper_ent *ret)
{
        if (S_ISREG(mode) || (mode & S_IFMT) == 0) {
                _cleanup_close_ int fd = -1;
                int r = upper_create(u, d, name, mode & 07777, uid, gid, O_RDWR, &fd, ret);
                return r;
        }
        if (!S_ISCHR(mode) && !S_ISBLK(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode))
                return -EINVAL;
        /* a 0/0 character device is how this format spells "deleted": refuse to make one that
         * would read back as a whiteout (the kernel's overlayfs refuses it too) */
        if (S_ISCHR(mode) && rdev == makedev(0, 0))
                return -EPERM;
        int r = check_new(u, d, name);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        char tmp[64];
        tmpname(u, tmp);
        if (mknodat(u->work_fd, tmp, (mode & S_IFMT) | 0600, rdev) < 0)
                return -errno;
        if (fchownat(u->work_fd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            fchmodat(u->work_fd, tmp, mode & 07777, 0) < 0) {
                r = -errno;
                unlinkat(u->work_fd, tmp, 0);
                return r;
        }
        r = publish_new(u, pfd, name, tmp, false);
        if (r < 0)
                return r;
        return upper_lookup(u, d, name, ret);
}

int upper_symlink(upper *u, const struct upper_dir *d, const char *name, const char *target, uid_t uid,
                  gid_t gid, struct upper_ent *ret)
{
        int r = check_new(u, d, name);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        char tmp[64];
        tmpname(u, tmp);
        if (symlinkat(target, u->work_fd, tmp) < 0)
                return -errno;
        if (fchownat(u->work_fd, tmp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
                r = -errno;
                unlinkat(u->work_fd, tmp, 0);
                return r;
        }
        r = publish_new(u, pfd, name, tmp, false);
        if (r < 0)
                return r;
        return upper_lookup(u, d, name, ret);
}

int upper_link(upper *u, const struct upper_dir *sd, const char *sname, const struct upper_dir *d,
               const char *name, struct upper_ent *ret)
{
        if (!sd)
                return -EPERM;
        struct upper_ent s;
        int r = upper_lookup(u, sd, sname, &s);
        if (r < 0)
                return r;
        if (S_ISDIR(s.st.st_mode))
                return -EPERM;
        r = check_new(u, d, name);
        if (r < 0)
                return r;
        r = copyup(u, sd, sname, &s, CU_META);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        _cleanup_close_ int spfd = open_dir(u, sd->path, O_PATH);
        if (spfd < 0)
                return spfd;
        char tmp[64];
        tmpname(u, tmp);
        if (linkat(spfd, sname, u->work_fd, tmp, 0) < 0)
                return -errno;
        r = publish_new(u, pfd, name, tmp, false);
        if (r < 0)
                return r;
        return upper_lookup(u, d, name, ret);
}

/* ---- removing entries ---- */

static bool lower_has(upper *u, const struct upper_dir *d, const char *name)
{
        tree_ino ino;
        return lookup_lower(u, d, name, &ino) == 0;
}

/* Put a whiteout at pfd/name, atomically replacing whatever non-directory is there. */
static int make_whiteout(upper *u, int pfd, const char *name, bool replace)
{
        if (!replace)
                return mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0 ? -errno : 0;
        char tmp[64];
        tmpname(u, tmp);
        if (mknodat(u->work_fd, tmp, S_IFCHR | 0, makedev(0, 0)) < 0)
                return -errno;
        if (renameat(u->work_fd, tmp, pfd, name) < 0) {
                int r = -errno;
                unlinkat(u->work_fd, tmp, 0);
                return r;
        }
        return 0;
}

int upper_unlink(upper *u, const struct upper_dir *d, const char *name)
{
        if (!d)
                return -EBUSY;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (S_ISDIR(e.st.st_mode))
                return -EISDIR;
        if (!e.in_upper && e.st.st_nlink > 1) {
                /* the other names of a lower hardlink set must count one name less: the set
                 * becomes one upper inode (metadata only), and this name leaves it */
                r = copyup(u, d, name, &e, CU_META);
                if (r < 0)
                        return r;
        }
        bool wh = lower_has(u, d, name);
        _cleanup_close_ int pfd = e.in_upper ? open_dir(u, d->path, O_PATH) : copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        if (e.in_upper && !wh)
                return unlinkat(pfd, name, 0) < 0 ? -errno : 0;
        return make_whiteout(u, pfd, name, e.in_upper);
}

int upper_rmdir(upper *u, const struct upper_dir *d, const char *name)
{
        if (!d)
                return -EBUSY;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (!S_ISDIR(e.st.st_mode))
                return -ENOTDIR;
        _cleanup_free_ char *cpath = join(d->path, name);
        struct upper_dir cd = { cpath, e.merge, e.lower };
        r = merged_is_empty(u, &cd);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTEMPTY;
        bool wh = lower_has(u, d, name);
        _cleanup_close_ int pfd = e.in_upper ? open_dir(u, d->path, O_PATH) : copyup_dir_path(u, d->path);
        if (pfd < 0)
                return pfd;
        if (!e.in_upper)
                return make_whiteout(u, pfd, name, false);
        r = clear_whiteouts(u, cpath);
        if (r < 0)
                return r;
        if (!wh)
                return unlinkat(pfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
        /* swap a whiteout in for the directory in one step, then drop the directory */
        char tmp[64];
        tmpname(u, tmp);
        if (mknodat(u->work_fd, tmp, S_IFCHR | 0, makedev(0, 0)) < 0)
                return -errno;
        if (renameat2(u->work_fd, tmp, pfd, name, RENAME_EXCHANGE) < 0) {
                r = -errno;
                unlinkat(u->work_fd, tmp, 0);
                return r;
        }
        if (unlinkat(u->work_fd, tmp, AT_REMOVEDIR) < 0)
                return -errno;
        return 0;
}

/* ---- rename ---- */

static bool same_file(const struct upper_ent *a, const struct upper_ent *b)
{
        if (a->in_upper && b->in_upper)
                return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
        if (!a->in_upper && !b->in_upper)
                return a->has_lower && b->has_lower && a->lower == b->lower;
        return false;
}

/* A merged directory about to leave its lower path records where its lower is. */
static int set_dir_redirect(upper *u, const struct upper_dir *d, const char *name, const struct upper_ent *e)
{
        if (!S_ISDIR(e->st.st_mode) || !e->merge)
                return 0;
        _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
        if (pfd < 0)
                return pfd;
        struct tgt t = { pfd, name };
        _cleanup_free_ char *old = NULL;
        if (t_getxattr_str(&t, OVL_REDIRECT, &old) == 0 && old[0] == '/')
                return 0;
        _cleanup_free_ char *lp = NULL;
        int r = lower_dir_path(u, e->lower, &lp);
        if (r < 0)
                return r;
        _cleanup_free_ char *v = xasprintf("/%s", lp);
        return t_setxattr(&t, OVL_REDIRECT, v, strlen(v), 0);
}

static int set_opaque(int pfd, const char *name)
{
        struct tgt t = { pfd, name };
        return t_setxattr(&t, OVL_OPAQUE, "y", 1, 0);
}

int upper_rename(upper *u, const struct upper_dir *sd, const char *sname, const struct upper_dir *d,
                 const char *name, unsigned flags)
{
        if (!sd || !d)
                return -EBUSY;
        if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
                return -EINVAL;
        if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
                return -EINVAL;
        if (!name_ok(name))
                return -EINVAL;
        struct upper_ent s, t;
        int r = upper_lookup(u, sd, sname, &s);
        if (r < 0)
                return r;
        r = upper_lookup(u, d, name, &t);
        if (r < 0 && r != -ENOENT)
                return r;
        bool t_exists = r == 0;
        bool sdir = S_ISDIR(s.st.st_mode);
        if ((flags & RENAME_EXCHANGE) && !t_exists)
                return -ENOENT;
        if ((flags & RENAME_NOREPLACE) && t_exists)
                return -EEXIST;
        if (strcmp(sd->path, d->path) == 0 && strcmp(sname, name) == 0)
                return 0;
        _cleanup_free_ char *tpath = join(d->path, name);
        if (t_exists && !(flags & RENAME_EXCHANGE)) {
                bool tdir = S_ISDIR(t.st.st_mode);
                if (sdir && !tdir)
                        return -ENOTDIR;
                if (!sdir && tdir)
                        return -EISDIR;
                if (same_file(&s, &t))
                        return 0;
                if (!tdir && !t.in_upper && t.st.st_nlink > 1) {
                        /* as for unlink: the rest of the lower set keeps a true link count */
                        r = copyup(u, d, name, &t, CU_META);
                        if (r < 0)
                                return r;
                }
                if (tdir) {
                        struct upper_dir td = { tpath, t.merge, t.lower };
                        r = merged_is_empty(u, &td);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return -ENOTEMPTY;
                }
        }

        /* the source moves as it is, with no data copied: directories are copied up alone and
         * carry a redirect to their lower, files become metacopies that carry one */
        r = copyup(u, sd, sname, &s, CU_META);
        if (r < 0)
                return r;
        r = set_dir_redirect(u, sd, sname, &s);
        if (r < 0)
                return r;
        if (flags & RENAME_EXCHANGE) {
                r = copyup(u, d, name, &t, CU_META);
                if (r < 0)
                        return r;
                r = set_dir_redirect(u, d, name, &t);
                if (r < 0)
                        return r;
        }
        _cleanup_close_ int npfd = copyup_dir_path(u, d->path);
        if (npfd < 0)
                return npfd;
        _cleanup_close_ int opfd = open_dir(u, sd->path, O_PATH);
        if (opfd < 0)
                return opfd;
        bool src_wh = lower_has(u, sd, sname);
        bool dst_lower = lower_has(u, d, name);

        if (flags & RENAME_EXCHANGE) {
                if (renameat2(opfd, sname, npfd, name, RENAME_EXCHANGE) < 0)
                        return -errno;
                /* a directory without a lower of its own, now over a lower name, must hide it */
                if (sdir && !s.merge && dst_lower)
                        set_opaque(npfd, name);
                if (S_ISDIR(t.st.st_mode) && !t.merge && src_wh)
                        set_opaque(opfd, sname);
                return 0;
        }

        if (sdir && !s.merge && dst_lower) {
                r = set_opaque(opfd, sname);
                if (r < 0)
                        return r;
        }
        struct stat tst;
        bool t_upper = fstatat(npfd, name, &tst, AT_SYMLINK_NOFOLLOW) == 0;
        if (t_upper && S_ISDIR(tst.st_mode)) {
                r = clear_whiteouts(u, tpath);
                if (r < 0)
                        return r;
        }
        if (sdir && t_upper && !S_ISDIR(tst.st_mode)) {
                /* a directory cannot replace the whiteout by rename(2): swap them instead, and
                 * keep the whiteout at the old name if a lower name is to be hidden there */
                if (renameat2(opfd, sname, npfd, name, RENAME_EXCHANGE) < 0)
                        return -errno;
                if (!src_wh && unlinkat(opfd, sname, 0) < 0)
                        return -errno;
                return 0;
        }
        if (src_wh) {
                if (renameat2(opfd, sname, npfd, name, RENAME_WHITEOUT) == 0)
                        return 0;
                if (errno != EINVAL)
                        return -errno;
                /* no RENAME_WHITEOUT on this filesystem: two steps */
                if (renameat(opfd, sname, npfd, name) < 0)
                        return -errno;
                return make_whiteout(u, opfd, sname, false);
        }
        return renameat(opfd, sname, npfd, name) < 0 ? -errno : 0;
}

/* ---- attributes ---- */

static int set_attrs(upper *u, const struct upper_dir *d, const char *name, const struct upper_attr *a);

int upper_setattr(upper *u, const struct upper_dir *d, const char *name, const struct upper_attr *a,
                  struct upper_ent *ret)
{
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (a->valid & UPPER_SET_SIZE) {
                if (S_ISDIR(e.st.st_mode))
                        return -EISDIR;
                if (!S_ISREG(e.st.st_mode))
                        return -EINVAL;
                if (a->size < 0)
                        return -EINVAL;
        }
        enum copyup_how how = CU_META;
        if (a->valid & UPPER_SET_SIZE)
                how = a->size == 0 ? CU_TRUNC : CU_DATA;
        /* a file whose data is being copied (upper_copy.h): a truncation waits for the copy,
         * a change of its mtime must not be undone by it */
        upper_copy *later = e.in_upper && S_ISREG(e.st.st_mode) ? upper_copies_get(u->copies, e.st.st_dev, e.st.st_ino) : NULL;
        r = (a->valid & UPPER_SET_SIZE) ? upper_copy_wait(later) : 0;
        if (r == 0)
                r = copyup(u, d, name, &e, how);
        if (r == 0) {
                upper_copy_lock(later);
                r = set_attrs(u, d, name, a);
                struct timespec omit = { 0, UTIME_OMIT };
                upper_copy_unlock(later, r == 0 && (a->valid & UPPER_SET_MTIME) ? &a->mtime : &omit);
        }
        upper_copy_put(later);
        if (r < 0)
                return r;
        return upper_lookup(u, d, name, ret);
}

/* upper_setattr's changes, once copied up */
static int set_attrs(upper *u, const struct upper_dir *d, const char *name, const struct upper_attr *a)
{
        _cleanup_close_ int pfd = d ? open_dir(u, d->path, O_PATH) : -1;
        if (d && pfd < 0)
                return pfd;
        int dfd = d ? pfd : u->fd;
        const char *nm = d ? name : NULL;
        if (a->valid & UPPER_SET_SIZE) {
                _cleanup_close_ int fd = open_reg(dfd, name, O_WRONLY);
                if (fd < 0)
                        return fd;
                if (ftruncate(fd, a->size) < 0)
                        return -errno;
        }
        if (a->valid & (UPPER_SET_UID | UPPER_SET_GID)) {
                uid_t uid = a->valid & UPPER_SET_UID ? a->uid : (uid_t)-1;
                gid_t gid = a->valid & UPPER_SET_GID ? a->gid : (gid_t)-1;
                if (nm ? fchownat(dfd, nm, uid, gid, AT_SYMLINK_NOFOLLOW) < 0
                       : fchownat(dfd, "", uid, gid, AT_EMPTY_PATH) < 0)
                        return -errno;
        }
        if (a->valid & UPPER_SET_MODE) {
                int cr = chmod_at(dfd, nm, a->mode & 07777);
                if (cr < 0)
                        return cr;
        }
        if (a->valid & (UPPER_SET_ATIME | UPPER_SET_MTIME)) {
                struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
                if (a->valid & UPPER_SET_ATIME)
                        ts[0] = a->atime;
                if (a->valid & UPPER_SET_MTIME)
                        ts[1] = a->mtime;
                if (nm) {
                        if (utimensat(dfd, nm, ts, AT_SYMLINK_NOFOLLOW) < 0)
                                return -errno;
                } else {
                        if (utimensat(dfd, ".", ts, AT_SYMLINK_NOFOLLOW) < 0) /* the root: a directory */
                                return -errno;
                }
        }
        return 0;
}

int upper_readlink(upper *u, const struct upper_dir *d, const char *name, char **ret_target)
{
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (!S_ISLNK(e.st.st_mode))
                return -EINVAL;
        if (!e.in_upper) {
                const char *target;
                size_t len;
                r = tree_readlink(u->t, e.lower, &target, &len);
                if (r < 0)
                        return r;
                *ret_target = xstrndup(target, len);
                return 0;
        }
        _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
        if (pfd < 0)
                return pfd;
        char buf[PATH_MAX + 1];
        ssize_t n = readlinkat(pfd, name, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        *ret_target = xstrdup(buf);
        return 0;
}

/* ---- data ---- */

int upper_open_file(upper *u, const struct upper_dir *d, const char *name, int flags, int *ret_fd,
                    bool *ret_lower)
{
        if (!d)
                return -EISDIR;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (S_ISDIR(e.st.st_mode))
                return -EISDIR;
        if (!S_ISREG(e.st.st_mode))
                return -EINVAL;
        int acc = flags & O_ACCMODE;
        int keep = flags & (O_SYNC | O_DSYNC | O_NOATIME | O_DIRECT);
        if (acc == O_RDONLY && !(flags & O_TRUNC)) {
                if (!e.in_upper || e.metacopy) {
                        if (!e.has_lower)
                                return -EIO;
                        int fd = open_object(u, e.lower);
                        if (fd < 0)
                                return fd;
                        *ret_fd = fd;
                        *ret_lower = true;
                        return 0;
                }
                _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
                if (pfd < 0)
                        return pfd;
                int fd = open_reg(pfd, name, O_RDONLY | keep);
                if (fd < 0)
                        return fd;
                *ret_fd = fd;
                *ret_lower = false;
                return 0;
        }
        bool was_upper = e.in_upper && !e.metacopy;
        r = copyup(u, d, name, &e, flags & O_TRUNC ? CU_TRUNC : CU_DATA_BG);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = open_dir(u, d->path, O_PATH);
        if (pfd < 0)
                return pfd;
        if ((flags & O_TRUNC) && was_upper) {
                /* a copy under way would write the old data back */
                r = upper_copies_wait(u->copies, e.st.st_dev, e.st.st_ino);
                if (r < 0)
                        return r;
                _cleanup_close_ int tfd = open_reg(pfd, name, O_WRONLY);
                if (tfd < 0)
                        return tfd;
                if (ftruncate(tfd, 0) < 0)
                        return -errno;
        }
        int fd = open_reg(pfd, name, (acc == O_RDONLY ? O_RDONLY : acc) | keep);
        if (fd < 0)
                return fd;
        *ret_fd = fd;
        *ret_lower = false;
        return 0;
}

/* ---- extended attributes ---- */

ssize_t upper_getxattr(upper *u, const struct upper_dir *d, const char *name, const char *xname, void *buf,
                       size_t size)
{
        if (is_ovl_xattr(xname))
                return -ENODATA;
        if (!d) {
                struct tgt t = { u->fd, NULL };
                return t_getxattr(&t, xname, buf, size);
        }
        /* asked at every write (the kernel looks for security.capability to drop): one open of
         * the parent, not upper_lookup's and another */
        _cleanup_close_ int pfd = -1;
        struct stat st;
        tree_ino ino;
        int r = find_entry(u, d, name, &pfd, &st, &ino);
        if (r < 0)
                return r;
        if (r == 1) {
                struct tgt t = { pfd, name };
                return t_getxattr(&t, xname, buf, size);
        }
        return tree_getxattr_buf(u->t, ino, xname, buf, size);
}

ssize_t upper_listxattr(upper *u, const struct upper_dir *d, const char *name, char *buf, size_t size)
{
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        _cleanup_free_ char *all = NULL;
        size_t all_len = 0;
        if (!e.in_upper) {
                const struct tree_inode *i = tree_get(u->t, e.lower);
                for (uint32_t k = 0; i && k < i->xattr_count; k++) {
                        const char *xn;
                        size_t xl, vl;
                        const void *v;
                        if (tree_xattr_at(u->t, e.lower, k, &xn, &xl, &v, &vl) < 0)
                                return -EIO;
                        all = xrealloc(all, all_len + xl + 1);
                        memcpy(all + all_len, xn, xl);
                        all[all_len + xl] = '\0';
                        all_len += xl + 1;
                }
        } else {
                _cleanup_close_ int pfd = d ? open_dir(u, d->path, O_PATH) : -1;
                if (d && pfd < 0)
                        return pfd;
                struct tgt t = { d ? pfd : u->fd, d ? name : NULL };
                for (;;) {
                        ssize_t n = t_listxattr(&t, NULL, 0);
                        if (n < 0)
                                return n;
                        free(all);
                        all = xmalloc((size_t)n + 1);
                        ssize_t m = t_listxattr(&t, all, (size_t)n);
                        if (m == -ERANGE)
                                continue;
                        if (m < 0)
                                return m;
                        all_len = (size_t)m;
                        break;
                }
        }
        /* filter out the format's own attributes */
        size_t out = 0;
        for (size_t off = 0; off < all_len;) {
                size_t l = strnlen(all + off, all_len - off);
                if (!is_ovl_xattr(all + off)) {
                        if (size) {
                                if (out + l + 1 > size)
                                        return -ERANGE;
                                memcpy(buf + out, all + off, l);
                                buf[out + l] = '\0';
                        }
                        out += l + 1;
                }
                off += l + 1;
        }
        return (ssize_t)out;
}

int upper_setxattr(upper *u, const struct upper_dir *d, const char *name, const char *xname, const void *value,
                   size_t size, int flags)
{
        if (is_ovl_xattr(xname))
                return -EPERM;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        r = copyup(u, d, name, &e, CU_META);
        if (r < 0)
                return r;
        /* file capabilities set on a file being copied: the copy's writes would drop them */
        if (e.in_upper && strcmp(xname, "security.capability") == 0) {
                r = upper_copies_wait(u->copies, e.st.st_dev, e.st.st_ino);
                if (r < 0)
                        return r;
        }
        _cleanup_close_ int pfd = d ? open_dir(u, d->path, O_PATH) : -1;
        if (d && pfd < 0)
                return pfd;
        struct tgt t = { d ? pfd : u->fd, d ? name : NULL };
        return t_setxattr(&t, xname, value, size, flags);
}

int upper_removexattr(upper *u, const struct upper_dir *d, const char *name, const char *xname)
{
        if (is_ovl_xattr(xname))
                return -EPERM;
        struct upper_ent e;
        int r = upper_lookup(u, d, name, &e);
        if (r < 0)
                return r;
        if (!e.in_upper) {
                /* removing an attribute the file does not have changes nothing: no copy-up */
                const void *v;
                size_t len;
                r = tree_getxattr(u->t, e.lower, xname, &v, &len);
                if (r < 0)
                        return r;
        }
        r = copyup(u, d, name, &e, CU_META);
        if (r < 0)
                return r;
        _cleanup_close_ int pfd = d ? open_dir(u, d->path, O_PATH) : -1;
        if (d && pfd < 0)
                return pfd;
        struct tgt t = { d ? pfd : u->fd, d ? name : NULL };
        return t_removexattr(&t, xname);
}

int upper_statfs(upper *u, struct statvfs *ret) { return fstatvfs(u->fd, ret) < 0 ? -errno : 0; }

int upper_root_stat(upper *u, struct stat *ret) { return fstat(u->fd, ret) < 0 ? -errno : 0; }

uint64_t upper_copyup_gen(const upper *u) { return atomic_load(&((upper *)u)->gen); }

/* ---- setup ---- */

static char *work_path_of(const char *upper_path)
{
        _cleanup_free_ char *copy = xstrdup(upper_path);
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/')
                copy[--len] = '\0';
        char *slash = strrchr(copy, '/');
        if (!slash)
                return xstrdup("work");
        if (slash == copy)
                return xstrdup("/work");
        *slash = '\0';
        return xasprintf("%s/work", copy);
}

int upper_create_dirs(const char *upper_path, const tree *lower)
{
        _cleanup_free_ char *work = work_path_of(upper_path);
        if (mkdir(work, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (mkdir(upper_path, 0755) < 0) {
                if (errno == EEXIST)
                        return 0;
                return -errno;
        }
        const struct tree_inode *i = lower ? tree_get(lower, TREE_ROOT) : NULL;
        if (!i)
                return 0;
        _cleanup_close_ int fd = open(upper_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchownat(fd, "", i->uid, i->gid, AT_EMPTY_PATH) < 0)
                return -errno;
        int r = chmod_at(fd, NULL, i->mode & 07777);
        if (r < 0)
                return r;
        for (uint32_t k = 0; k < i->xattr_count; k++) {
                const char *xn;
                size_t xl, vl;
                const void *v;
                if (tree_xattr_at(lower, TREE_ROOT, k, &xn, &xl, &v, &vl) < 0)
                        return -EIO;
                _cleanup_free_ char *name = xstrndup(xn, xl);
                struct tgt t = { fd, NULL };
                if (!is_ovl_xattr(name) && (r = t_setxattr(&t, name, v, vl, 0)) < 0 && r != -EOPNOTSUPP)
                        return r;
        }
        struct timespec ts[2] = { { i->mtime_sec, i->mtime_nsec }, { i->mtime_sec, i->mtime_nsec } };
        if (utimensat(fd, ".", ts, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        return 0;
}

int upper_open(store *s, const tree *lower, const char *upper_path, upper **ret)
{
        _cleanup_close_ int fd = open(upper_path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        _cleanup_free_ char *work = work_path_of(upper_path);
        if (mkdir(work, 0700) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int wfd = open(work, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (wfd < 0)
                return -errno;
        struct stat a, b;
        if (fstat(fd, &a) < 0 || fstat(wfd, &b) < 0)
                return -errno;
        if (a.st_dev != b.st_dev)
                return -EXDEV; /* renames from work to upper must stay on one filesystem */
        /* leftovers of a daemon that died mid-operation */
        {
                _cleanup_close_ int rfd = openat(wfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *dir = rfd >= 0 ? fdopendir(rfd) : NULL;
                if (dir) {
                        rfd = -1;
                        struct dirent *de;
                        while ((de = readdir(dir)))
                                if (strncmp(de->d_name, "#ctfs-", 6) == 0)
                                        util_rm_rf_at(dirfd(dir), de->d_name);
                        closedir(dir);
                }
        }
        upper *u = xcalloc(1, sizeof(*u));
        u->s = s;
        u->t = lower;
        u->copies = upper_copies_new();
        /* copies of big files a crash interrupted (upper_copy.h) */
        int r = upper_copies_recover(u->copies, s, wfd);
        if (r < 0) {
                upper_copies_free(u->copies);
                free(u);
                return r;
        }
        u->fd = TAKE_FD(fd);
        u->work_fd = TAKE_FD(wfd);
        pthread_mutex_init(&u->hl_lock, NULL);
        *ret = u;
        return 0;
}

void upper_close(upper *u)
{
        if (!u)
                return;
        upper_copies_free(u->copies); /* waits for the copies under way */
        close(u->fd);
        close(u->work_fd);
        pthread_mutex_destroy(&u->hl_lock);
        free(u->hl);
        free(u);
}

void upper_closep(upper **u) { upper_close(*u); }

void upper_stop_copies(upper *u) { upper_copies_stop(u->copies); }

upper_copy *upper_copy_of(upper *u, int fd) { return upper_copy_find(u->copies, fd); }

int upper_finish_copies(upper *u, int64_t deadline_ms) { return upper_copies_finish(u->copies, deadline_ms); }

upper_copy *upper_copy_at(upper *u, const struct upper_dir *d, const char *name)
{
        struct upper_ent e;
        if (!d || !upper_copies_busy(u->copies) || upper_lookup(u, d, name, &e) < 0 || !e.in_upper ||
            !S_ISREG(e.st.st_mode))
                return NULL;
        return upper_copies_get(u->copies, e.st.st_dev, e.st.st_ino);
}
