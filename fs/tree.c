/* SPDX-License-Identifier: Apache-2.0 */
/* Reading tree files. Every accessor checks bounds: a tree file is untrusted input. */
#include "tree.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "util.h"

struct tree {
        const uint8_t *data;
        size_t len;
        bool mapped;
        const struct tree_header *h;
        const struct tree_inode *inodes;
        const struct tree_dirent *dirents;
        const struct tree_xattr *xattrs;
        const char *strings;
        uint64_t strings_size;
};

static int tree_init(tree *t)
{
        if (t->len < sizeof(struct tree_header))
                return -EBADMSG;
        t->h = (const struct tree_header *)t->data;
        if (memcmp(t->h->magic, TREE_MAGIC, 8) != 0 || t->h->version != 1)
                return -EBADMSG;
        if (t->h->total_size != t->len)
                return -EBADMSG;
        uint64_t off = sizeof(struct tree_header);
        uint64_t need = off + (uint64_t)t->h->n_inodes * sizeof(struct tree_inode) +
                        (uint64_t)t->h->n_dirents * sizeof(struct tree_dirent) +
                        (uint64_t)t->h->n_xattrs * sizeof(struct tree_xattr) + t->h->strings_size;
        if (need != t->len || t->h->n_inodes == 0)
                return -EBADMSG;
        t->inodes = (const struct tree_inode *)(t->data + off);
        off += (uint64_t)t->h->n_inodes * sizeof(struct tree_inode);
        t->dirents = (const struct tree_dirent *)(t->data + off);
        off += (uint64_t)t->h->n_dirents * sizeof(struct tree_dirent);
        t->xattrs = (const struct tree_xattr *)(t->data + off);
        off += (uint64_t)t->h->n_xattrs * sizeof(struct tree_xattr);
        t->strings = (const char *)(t->data + off);
        t->strings_size = t->h->strings_size;
        if (!S_ISDIR(t->inodes[0].mode))
                return -EBADMSG;
        return 0;
}

int tree_open(int dirfd, const char *path, tree **ret_tree)
{
        _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(struct tree_header))
                return -EBADMSG;
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        tree *t = xcalloc(1, sizeof(*t));
        t->data = p;
        t->len = (size_t)st.st_size;
        t->mapped = true;
        int r = tree_init(t);
        if (r < 0) {
                tree_close(t);
                return r;
        }
        *ret_tree = t;
        return 0;
}

int tree_open_mem(const void *data, size_t len, tree **ret_tree)
{
        tree *t = xcalloc(1, sizeof(*t));
        t->data = data;
        t->len = len;
        /* The mapped format relies on natural alignment of its records. */
        if (((uintptr_t)data & 7) != 0) {
                free(t);
                return -EINVAL;
        }
        int r = tree_init(t);
        if (r < 0) {
                free(t);
                return r;
        }
        *ret_tree = t;
        return 0;
}

void tree_close(tree *t)
{
        if (!t)
                return;
        if (t->mapped)
                munmap((void *)t->data, t->len);
        free(t);
}

void tree_closep(tree **t) { tree_close(*t); }

uint32_t tree_count(const tree *t) { return t->h->n_inodes; }
size_t tree_size(const tree *t) { return t->len; }

const struct tree_inode *tree_get(const tree *t, tree_ino ino)
{
        if (ino >= t->h->n_inodes)
                return NULL;
        return &t->inodes[ino];
}

static const char *tree_str(const tree *t, uint32_t off, uint32_t len)
{
        if ((uint64_t)off + len > t->strings_size)
                return NULL;
        return t->strings + off;
}

static const struct tree_dirent *dir_entries(const tree *t, tree_ino dir, uint32_t *ret_n, int *ret_err)
{
        const struct tree_inode *d = tree_get(t, dir);
        if (!d) {
                *ret_err = -EIO;
                return NULL;
        }
        if (!S_ISDIR(d->mode)) {
                *ret_err = -ENOTDIR;
                return NULL;
        }
        if ((uint64_t)d->a + d->b > t->h->n_dirents) {
                *ret_err = -EIO;
                return NULL;
        }
        *ret_n = d->b;
        *ret_err = 0;
        return t->dirents + d->a;
}

/* A directory is reachable only from its recorded parent and never is the root: so a corrupt
 * file cannot make a cycle that a walk would follow forever. */
static bool child_ok(const tree *t, tree_ino dir, tree_ino child)
{
        if (child >= t->h->n_inodes)
                return false;
        const struct tree_inode *c = &t->inodes[child];
        if (S_ISDIR(c->mode) && (child == TREE_ROOT || child == dir || c->parent != dir))
                return false;
        return true;
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
        int c = memcmp(a, b, alen < blen ? alen : blen);
        if (c)
                return c;
        return alen < blen ? -1 : alen > blen ? 1 : 0;
}

int tree_lookup_at(const tree *t, tree_ino dir, const char *name, size_t name_len, tree_ino *ret_ino,
                   uint32_t *ret_idx)
{
        uint32_t n;
        int err;
        const struct tree_dirent *de = dir_entries(t, dir, &n, &err);
        if (!de)
                return err;
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                const char *s = tree_str(t, de[mid].name_off, de[mid].name_len);
                if (!s)
                        return -EIO;
                int c = name_cmp(name, name_len, s, de[mid].name_len);
                if (c == 0) {
                        if (!child_ok(t, dir, de[mid].ino))
                                return -EIO;
                        if (ret_ino)
                                *ret_ino = de[mid].ino;
                        if (ret_idx)
                                *ret_idx = mid;
                        return 0;
                }
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -ENOENT;
}

int tree_lookup(const tree *t, tree_ino dir, const char *name, size_t name_len, tree_ino *ret_ino)
{
        return tree_lookup_at(t, dir, name, name_len, ret_ino, NULL);
}

int tree_resolve(const tree *t, const char *path, tree_ino *ret_ino)
{
        tree_ino cur = TREE_ROOT;
        const char *p = path;
        while (*p) {
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                const char *e = strchrnul(p, '/');
                size_t len = (size_t)(e - p);
                if (!(len == 1 && *p == '.')) {
                        int r = tree_lookup(t, cur, p, len, &cur);
                        if (r < 0)
                                return r;
                }
                p = e;
        }
        *ret_ino = cur;
        return 0;
}

int tree_readlink(const tree *t, tree_ino ino, const char **ret_target, size_t *ret_len)
{
        const struct tree_inode *i = tree_get(t, ino);
        if (!i)
                return -EIO;
        if (!S_ISLNK(i->mode) && !(i->flags & TREE_F_HLINK_REF))
                return -EINVAL;
        const char *s = tree_str(t, i->a, i->b);
        if (!s)
                return -EIO;
        *ret_target = s;
        *ret_len = i->b;
        return 0;
}

uint32_t tree_dir_count(const tree *t, tree_ino dir)
{
        uint32_t n;
        int err;
        return dir_entries(t, dir, &n, &err) ? n : 0;
}

int tree_dir_entry(const tree *t, tree_ino dir, uint32_t idx, const char **ret_name, size_t *ret_len,
                   tree_ino *ret_ino)
{
        uint32_t n;
        int err;
        const struct tree_dirent *de = dir_entries(t, dir, &n, &err);
        if (!de)
                return err;
        if (idx >= n)
                return -ENOENT;
        const char *s = tree_str(t, de[idx].name_off, de[idx].name_len);
        if (!s || !child_ok(t, dir, de[idx].ino))
                return -EIO;
        /* names a corrupt file could hold that no directory may show */
        size_t nl = de[idx].name_len;
        if (nl == 0 || memchr(s, '/', nl) || memchr(s, '\0', nl) || (nl == 1 && s[0] == '.') ||
            (nl == 2 && s[0] == '.' && s[1] == '.'))
                return -EIO;
        *ret_name = s;
        *ret_len = de[idx].name_len;
        *ret_ino = de[idx].ino;
        return 0;
}

int tree_xattr_at(const tree *t, tree_ino ino, uint32_t idx, const char **ret_name, size_t *ret_name_len,
                  const void **ret_value, size_t *ret_value_len)
{
        const struct tree_inode *i = tree_get(t, ino);
        if (!i)
                return -EIO;
        if (idx >= i->xattr_count)
                return -ENOENT;
        if ((uint64_t)i->xattr_first + i->xattr_count > t->h->n_xattrs)
                return -EIO;
        const struct tree_xattr *x = &t->xattrs[i->xattr_first + idx];
        const char *name = tree_str(t, x->name_off, x->name_len);
        const char *value = tree_str(t, x->value_off, x->value_len);
        if (!name || !value)
                return -EIO;
        *ret_name = name;
        *ret_name_len = x->name_len;
        *ret_value = value;
        *ret_value_len = x->value_len;
        return 0;
}

int tree_getxattr(const tree *t, tree_ino ino, const char *name, const void **ret_value, size_t *ret_len)
{
        const struct tree_inode *i = tree_get(t, ino);
        if (!i)
                return -EIO;
        size_t nl = strlen(name);
        for (uint32_t k = 0; k < i->xattr_count; k++) {
                const char *xn;
                size_t xl, vl;
                const void *v;
                int r = tree_xattr_at(t, ino, k, &xn, &xl, &v, &vl);
                if (r < 0)
                        return r;
                if (xl == nl && memcmp(xn, name, nl) == 0) {
                        *ret_value = v;
                        *ret_len = vl;
                        return 0;
                }
        }
        return -ENODATA;
}

ssize_t tree_getxattr_buf(const tree *t, tree_ino ino, const char *name, void *buf, size_t size)
{
        const void *v;
        size_t len;
        int r = tree_getxattr(t, ino, name, &v, &len);
        if (r < 0)
                return r;
        if (size == 0)
                return (ssize_t)len;
        if (len > size)
                return -ERANGE;
        memcpy(buf, v, len);
        return (ssize_t)len;
}
