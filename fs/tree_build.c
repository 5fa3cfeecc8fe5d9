/* SPDX-License-Identifier: Apache-2.0 */
/* The tree builder: index a layer, merge layers with OCI semantics, serialize a tree file. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "tree.h"
#include "util.h"

struct txattr {
        char *name;
        void *value;
        size_t len;
};

struct tchild {
        struct tchild *next;
        tnode *node;
        size_t len;
        char name[];
};

struct tnode {
        struct tattr a;
        uint32_t flags;
        uint32_t refs; /* directory entries naming this node */
        char *link;    /* symlink target, or the target path of a hardlink reference */
        struct txattr *xattrs;
        size_t n_xattrs;
        /* directories: a chained hash of children */
        struct tchild **buckets;
        size_t n_buckets, n_children;
        /* serialization */
        uint64_t gen;
        uint32_t index;
};

struct tbuild {
        tnode *root;
        size_t n_nodes;
        uint64_t gen;
};

static uint64_t name_hash(const char *s, size_t len)
{
        uint64_t h = 1469598103934665603ULL; /* FNV-1a */
        for (size_t i = 0; i < len; i++) {
                h ^= (uint8_t)s[i];
                h *= 1099511628211ULL;
        }
        return h;
}

static tnode *node_new(tbuild *b, const struct tattr *a, uint32_t flags)
{
        tnode *n = xcalloc(1, sizeof(*n));
        n->a = *a;
        n->flags = flags;
        b->n_nodes++;
        return n;
}

static void node_clear_xattrs(tnode *n)
{
        for (size_t i = 0; i < n->n_xattrs; i++) {
                free(n->xattrs[i].name);
                free(n->xattrs[i].value);
        }
        free(n->xattrs);
        n->xattrs = NULL;
        n->n_xattrs = 0;
}

static void node_unref(tbuild *b, tnode *n);

static void dir_clear(tbuild *b, tnode *d)
{
        for (size_t i = 0; i < d->n_buckets; i++) {
                struct tchild *c = d->buckets[i];
                while (c) {
                        struct tchild *next = c->next;
                        node_unref(b, c->node);
                        free(c);
                        c = next;
                }
                d->buckets[i] = NULL;
        }
        d->n_children = 0;
}

static void node_unref(tbuild *b, tnode *n)
{
        if (!n || --n->refs > 0)
                return;
        dir_clear(b, n);
        free(n->buckets);
        node_clear_xattrs(n);
        free(n->link);
        free(n);
        b->n_nodes--;
}

static bool is_dir(const tnode *n) { return S_ISDIR(n->a.mode) && !(n->flags & TREE_F_WHITEOUT); }

static struct tchild **dir_slot(tnode *d, const char *name, size_t len)
{
        if (!d->n_buckets)
                return NULL;
        struct tchild **pp = &d->buckets[name_hash(name, len) & (d->n_buckets - 1)];
        for (; *pp; pp = &(*pp)->next)
                if ((*pp)->len == len && memcmp((*pp)->name, name, len) == 0)
                        return pp;
        return NULL;
}

static tnode *dir_find(tnode *d, const char *name, size_t len)
{
        struct tchild **pp = dir_slot(d, name, len);
        return pp ? (*pp)->node : NULL;
}

static void dir_grow(tnode *d)
{
        size_t nb = d->n_buckets ? d->n_buckets * 4 : 8;
        struct tchild **buckets = xcalloc(nb, sizeof(*buckets));
        for (size_t i = 0; i < d->n_buckets; i++) {
                struct tchild *c = d->buckets[i];
                while (c) {
                        struct tchild *next = c->next;
                        size_t k = name_hash(c->name, c->len) & (nb - 1);
                        c->next = buckets[k];
                        buckets[k] = c;
                        c = next;
                }
        }
        free(d->buckets);
        d->buckets = buckets;
        d->n_buckets = nb;
}

static void dir_remove(tbuild *b, tnode *d, const char *name, size_t len)
{
        struct tchild **pp = dir_slot(d, name, len);
        if (!pp)
                return;
        struct tchild *c = *pp;
        *pp = c->next;
        d->n_children--;
        node_unref(b, c->node);
        free(c);
}

/* Insert or replace name in d; takes a new reference on n. */
static void dir_set(tbuild *b, tnode *d, const char *name, size_t len, tnode *n)
{
        n->refs++;
        struct tchild **pp = dir_slot(d, name, len);
        if (pp) {
                tnode *old = (*pp)->node;
                (*pp)->node = n;
                node_unref(b, old);
                return;
        }
        if (d->n_children >= d->n_buckets)
                dir_grow(d);
        struct tchild *c = xmalloc(sizeof(*c) + len + 1);
        memcpy(c->name, name, len);
        c->name[len] = '\0';
        c->len = len;
        c->node = n;
        size_t k = name_hash(name, len) & (d->n_buckets - 1);
        c->next = d->buckets[k];
        d->buckets[k] = c;
        d->n_children++;
}

static const struct tattr implicit_dir = { .mode = S_IFDIR | 0755 };

tbuild *tbuild_new(void)
{
        tbuild *b = xcalloc(1, sizeof(*b));
        b->root = node_new(b, &implicit_dir, TREE_F_IMPLICIT);
        b->root->refs = 1;
        return b;
}

void tbuild_free(tbuild *b)
{
        if (!b)
                return;
        node_unref(b, b->root);
        free(b);
}

void tbuild_freep(tbuild **b) { tbuild_free(*b); }

size_t tbuild_count(const tbuild *b) { return b->n_nodes; }

/* Walk to the parent directory of path, creating implicit directories on the way. A parent
 * that exists but is not a directory is refused: within one layer it means an entry below a
 * symlink or a file, which is how hostile layers try to write outside their tree. */
static int walk_parent(tbuild *b, const char *path, bool create, tnode **ret_dir, const char **ret_name,
                       size_t *ret_len)
{
        tnode *cur = b->root;
        const char *p = path;
        for (;;) {
                const char *e = strchr(p, '/');
                if (!e) {
                        *ret_dir = cur;
                        *ret_name = p;
                        *ret_len = strlen(p);
                        return *ret_len ? 0 : -EINVAL;
                }
                size_t len = (size_t)(e - p);
                if (len == 0)
                        return -EINVAL;
                tnode *next = dir_find(cur, p, len);
                if (!next || (next->flags & TREE_F_WHITEOUT)) {
                        if (!create)
                                return -ENOENT;
                        next = node_new(b, &implicit_dir, TREE_F_IMPLICIT);
                        dir_set(b, cur, p, len, next);
                } else if (!is_dir(next))
                        return -ENOTDIR;
                cur = next;
                p = e + 1;
        }
}

static tnode *find_path(tbuild *b, const char *path)
{
        if (!*path)
                return b->root;
        tnode *d;
        const char *name;
        size_t len;
        if (walk_parent(b, path, false, &d, &name, &len) < 0)
                return NULL;
        return dir_find(d, name, len);
}

int tbuild_add(tbuild *b, const char *path, const struct tattr *a, const char *link_target, tnode **ret_node)
{
        tnode *n;
        if (!*path) {
                if (!S_ISDIR(a->mode))
                        return -EINVAL;
                n = b->root;
                n->a = *a;
                n->flags &= ~TREE_F_IMPLICIT;
                node_clear_xattrs(n);
        } else {
                tnode *d;
                const char *name;
                size_t len;
                int r = walk_parent(b, path, true, &d, &name, &len);
                if (r < 0)
                        return r;
                tnode *old = dir_find(d, name, len);
                if (old && is_dir(old) && S_ISDIR(a->mode)) {
                        n = old;
                        n->a = *a;
                        n->flags &= ~TREE_F_IMPLICIT;
                        node_clear_xattrs(n);
                } else {
                        n = node_new(b, a, 0);
                        if (link_target)
                                n->link = xstrdup(link_target);
                        dir_set(b, d, name, len, n);
                }
        }
        if (ret_node)
                *ret_node = n;
        return 0;
}

int tbuild_add_xattr(tbuild *b, tnode *n, const char *name, const void *value, size_t len)
{
        for (size_t i = 0; i < n->n_xattrs; i++)
                if (strcmp(n->xattrs[i].name, name) == 0) {
                        free(n->xattrs[i].value);
                        n->xattrs[i].value = xmalloc(len);
                        memcpy(n->xattrs[i].value, value, len);
                        n->xattrs[i].len = len;
                        return 0;
                }
        n->xattrs = xrealloc(n->xattrs, (n->n_xattrs + 1) * sizeof(*n->xattrs));
        struct txattr *x = &n->xattrs[n->n_xattrs++];
        x->name = xstrdup(name);
        x->value = xmalloc(len);
        memcpy(x->value, value, len);
        x->len = len;
        return 0;
}

int tbuild_add_hardlink(tbuild *b, const char *path, const char *target)
{
        if (!*path)
                return -EINVAL;
        tnode *t = find_path(b, target);
        if (!t || (t->flags & (TREE_F_WHITEOUT | TREE_F_HLINK_REF)))
                return -ENOENT;
        if (is_dir(t))
                return -EPERM;
        tnode *d;
        const char *name;
        size_t len;
        int r = walk_parent(b, path, true, &d, &name, &len);
        if (r < 0)
                return r;
        if (dir_find(d, name, len) == t)
                return 0;
        dir_set(b, d, name, len, t);
        return 0;
}

int tbuild_add_hardlink_ref(tbuild *b, const char *path, const char *target)
{
        struct tattr a = { .mode = S_IFREG };
        tnode *n;
        int r = tbuild_add(b, path, &a, target, &n);
        if (r < 0)
                return r;
        n->flags |= TREE_F_HLINK_REF;
        return 0;
}

int tbuild_add_whiteout(tbuild *b, const char *path)
{
        struct tattr a = { .mode = S_IFCHR };
        tnode *n;
        if (!*path)
                return -EINVAL;
        int r = tbuild_add(b, path, &a, NULL, &n);
        if (r < 0)
                return r;
        n->flags |= TREE_F_WHITEOUT;
        return 0;
}

int tbuild_set_opaque(tbuild *b, const char *dir_path)
{
        tnode *n = find_path(b, dir_path);
        if (!n) {
                tnode *d;
                const char *name;
                size_t len;
                int r = walk_parent(b, dir_path, true, &d, &name, &len);
                if (r < 0)
                        return r;
                n = node_new(b, &implicit_dir, TREE_F_IMPLICIT);
                dir_set(b, d, name, len, n);
        }
        if (!is_dir(n))
                return -ENOTDIR;
        n->flags |= TREE_F_OPAQUE;
        return 0;
}

/* ---- merging a layer index into the builder ---- */

struct apply_ctx {
        tbuild *b;
        const tree *layer;
        tnode **map; /* layer inode -> builder node, so hardlink sets stay sets */
        uint8_t *seen; /* layer directories applied already: each is applied once */
        struct pending {
                tnode *dir;
                char *name;
                size_t len;
                char *target;
        } *pending;
        size_t n_pending;
};

static int copy_xattrs(tbuild *b, tnode *n, const tree *t, tree_ino ino)
{
        const struct tree_inode *li = tree_get(t, ino);
        node_clear_xattrs(n);
        for (uint32_t k = 0; k < li->xattr_count; k++) {
                const char *name;
                size_t nl, vl;
                const void *v;
                int r = tree_xattr_at(t, ino, k, &name, &nl, &v, &vl);
                if (r < 0)
                        return r;
                _cleanup_free_ char *nm = xstrndup(name, nl);
                tbuild_add_xattr(b, n, nm, v, vl);
        }
        return 0;
}

static void attr_from_inode(struct tattr *a, const struct tree_inode *li)
{
        a->mode = li->mode;
        a->uid = li->uid;
        a->gid = li->gid;
        a->size = li->size;
        a->mtime_sec = li->mtime_sec;
        a->mtime_nsec = li->mtime_nsec;
        a->rdev = li->rdev;
        memcpy(a->digest, li->digest, DIGEST_LEN);
}

static int apply_dir(struct apply_ctx *c, tnode *dir, tree_ino ldir, unsigned depth)
{
        const tree *t = c->layer;
        if (depth > 4096)
                return -ELOOP;
        const struct tree_inode *ld = tree_get(t, ldir);
        if (!ld)
                return -EIO;
        if (c->seen[ldir])
                return -EIO; /* a corrupt index naming one directory twice */
        c->seen[ldir] = 1;
        if (ld->flags & TREE_F_OPAQUE)
                dir_clear(c->b, dir);
        uint32_t n = tree_dir_count(t, ldir);
        for (uint32_t i = 0; i < n; i++) {
                const char *name;
                size_t len;
                tree_ino lino;
                int r = tree_dir_entry(t, ldir, i, &name, &len, &lino);
                if (r < 0)
                        return r;
                const struct tree_inode *li = tree_get(t, lino);
                if (li->flags & TREE_F_WHITEOUT) {
                        dir_remove(c->b, dir, name, len);
                        continue;
                }
                tnode *old = dir_find(dir, name, len);
                if (S_ISDIR(li->mode)) {
                        if (lino == ldir || lino == TREE_ROOT)
                                return -EIO; /* a corrupt index naming a directory twice */
                        tnode *d = old;
                        if (!d || !is_dir(d)) {
                                d = node_new(c->b, &implicit_dir, 0);
                                dir_set(c->b, dir, name, len, d);
                        }
                        if (!(li->flags & TREE_F_IMPLICIT)) {
                                attr_from_inode(&d->a, li);
                                d->a.size = 0;
                                r = copy_xattrs(c->b, d, t, lino);
                                if (r < 0)
                                        return r;
                        }
                        r = apply_dir(c, d, lino, depth + 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (li->flags & TREE_F_HLINK_REF) {
                        const char *target;
                        size_t tl;
                        r = tree_readlink(t, lino, &target, &tl);
                        if (r < 0)
                                return r;
                        c->pending = xrealloc(c->pending, (c->n_pending + 1) * sizeof(*c->pending));
                        c->pending[c->n_pending++] = (struct pending){
                                .dir = dir, .name = memcpy(xmalloc(len + 1), name, len), .len = len,
                                .target = xstrndup(target, tl),
                        };
                        dir->refs++; /* keep the directory alive until the pass ends */
                        continue;
                }
                tnode *nn = c->map[lino];
                if (!nn) {
                        struct tattr a;
                        attr_from_inode(&a, li);
                        nn = node_new(c->b, &a, 0);
                        /* The map holds a reference of its own: a corrupt index may name a
                         * node again after a later entry replaced it. */
                        nn->refs = 1;
                        c->map[lino] = nn;
                        if (S_ISLNK(li->mode)) {
                                const char *target;
                                size_t tl;
                                r = tree_readlink(t, lino, &target, &tl);
                                if (r < 0)
                                        return r;
                                nn->link = xstrndup(target, tl);
                        }
                        r = copy_xattrs(c->b, nn, t, lino);
                        if (r < 0)
                                return r;
                }
                dir_set(c->b, dir, name, len, nn);
        }
        return 0;
}

int tbuild_apply_layer(tbuild *b, const tree *layer)
{
        struct apply_ctx c = { .b = b, .layer = layer };
        c.map = xcalloc(tree_count(layer), sizeof(*c.map));
        c.seen = xcalloc(tree_count(layer), 1);
        const struct tree_inode *root = tree_get(layer, TREE_ROOT);
        int r = 0;
        if (!(root->flags & TREE_F_IMPLICIT)) {
                attr_from_inode(&b->root->a, root);
                b->root->a.size = 0;
                b->root->flags &= ~TREE_F_IMPLICIT;
                r = copy_xattrs(b, b->root, layer, TREE_ROOT);
        }
        if (r >= 0)
                r = apply_dir(&c, b->root, TREE_ROOT, 0);
        /* Hardlinks to lower layers resolve against the merged result of this layer. */
        for (size_t i = 0; i < c.n_pending; i++) {
                struct pending *p = &c.pending[i];
                if (r >= 0) {
                        tnode *t = find_path(b, p->target);
                        if (!t || is_dir(t) || (t->flags & TREE_F_HLINK_REF))
                                r = -ENOENT;
                        else
                                dir_set(b, p->dir, p->name, p->len, t);
                }
                node_unref(b, p->dir);
                free(p->name);
                free(p->target);
        }
        free(c.pending);
        for (uint32_t i = 0; i < tree_count(layer); i++)
                if (c.map[i])
                        node_unref(b, c.map[i]);
        free(c.map);
        free(c.seen);
        return r;
}

/* ---- serialization ---- */

struct buf {
        char *data;
        size_t len, cap;
};

static uint32_t buf_add(struct buf *s, const void *p, size_t len, bool nul)
{
        size_t need = s->len + len + (nul ? 1 : 0);
        if (need > s->cap) {
                s->cap = need * 2 + 4096;
                s->data = xrealloc(s->data, s->cap);
        }
        uint32_t off = (uint32_t)s->len;
        if (len)
                memcpy(s->data + s->len, p, len);
        s->len += len;
        if (nul)
                s->data[s->len++] = '\0';
        return off;
}

static int child_cmp(const void *x, const void *y)
{
        const struct tchild *a = *(struct tchild *const *)x, *b = *(struct tchild *const *)y;
        int c = memcmp(a->name, b->name, a->len < b->len ? a->len : b->len);
        if (c)
                return c;
        return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

int tbuild_serialize(tbuild *b, void **ret_data, size_t *ret_len)
{
        b->gen++;
        size_t cap_nodes = b->n_nodes + 1;
        tnode **order = xmalloc(cap_nodes * sizeof(*order));
        struct tree_inode *inodes = xcalloc(cap_nodes, sizeof(*inodes));
        struct buf dirents = { 0 }, xattrs = { 0 }, strings = { 0 };
        size_t n_inodes = 0, n_dirents = 0, n_xattrs = 0;
        int r = 0;

        order[n_inodes++] = b->root;
        b->root->gen = b->gen;
        b->root->index = 0;
        inodes[0].parent = 0;
        /* Breadth first: a directory's entries are written when it is reached, contiguously. */
        for (size_t q = 0; q < n_inodes; q++) {
                tnode *n = order[q];
                if (!is_dir(n))
                        continue;
                struct tchild **kids = xmalloc((n->n_children + 1) * sizeof(*kids));
                size_t k = 0;
                for (size_t i = 0; i < n->n_buckets; i++)
                        for (struct tchild *c = n->buckets[i]; c; c = c->next)
                                kids[k++] = c;
                qsort(kids, k, sizeof(*kids), child_cmp);
                inodes[q].a = (uint32_t)n_dirents;
                inodes[q].b = (uint32_t)k;
                uint32_t subdirs = 0;
                for (size_t i = 0; i < k; i++) {
                        tnode *c = kids[i]->node;
                        if (c->gen != b->gen) {
                                if (n_inodes >= UINT32_MAX || n_inodes >= cap_nodes) {
                                        r = -E2BIG;
                                        free(kids);
                                        goto out;
                                }
                                c->gen = b->gen;
                                c->index = (uint32_t)n_inodes;
                                inodes[n_inodes].parent = (uint32_t)q;
                                order[n_inodes++] = c;
                        }
                        if (is_dir(c))
                                subdirs++;
                        else
                                inodes[c->index].nlink++;
                        struct tree_dirent de = {
                                .name_off = buf_add(&strings, kids[i]->name, kids[i]->len, true),
                                .name_len = (uint32_t)kids[i]->len,
                                .ino = c->index,
                        };
                        buf_add(&dirents, &de, sizeof(de), false);
                        n_dirents++;
                }
                inodes[q].nlink = 2 + subdirs;
                free(kids);
        }
        for (size_t i = 0; i < n_inodes; i++) {
                tnode *n = order[i];
                struct tree_inode *ti = &inodes[i];
                ti->mode = n->a.mode;
                ti->uid = n->a.uid;
                ti->gid = n->a.gid;
                ti->size = is_dir(n) ? 0 : n->a.size;
                ti->mtime_sec = n->a.mtime_sec;
                ti->mtime_nsec = n->a.mtime_nsec;
                ti->flags = n->flags;
                ti->rdev = n->a.rdev;
                memcpy(ti->digest, n->a.digest, DIGEST_LEN);
                if (n->link) {
                        size_t l = strlen(n->link);
                        ti->a = buf_add(&strings, n->link, l, true);
                        ti->b = (uint32_t)l;
                        if (S_ISLNK(n->a.mode))
                                ti->size = l;
                }
                ti->xattr_first = (uint32_t)n_xattrs;
                ti->xattr_count = (uint32_t)n->n_xattrs;
                for (size_t k = 0; k < n->n_xattrs; k++) {
                        struct tree_xattr x;
                        size_t nl = strlen(n->xattrs[k].name);
                        x.name_off = buf_add(&strings, n->xattrs[k].name, nl, true);
                        x.name_len = (uint32_t)nl;
                        x.value_off = buf_add(&strings, n->xattrs[k].value, n->xattrs[k].len, true);
                        x.value_len = (uint32_t)n->xattrs[k].len;
                        buf_add(&xattrs, &x, sizeof(x), false);
                        n_xattrs++;
                }
        }
        if (strings.len > UINT32_MAX) {
                r = -E2BIG;
                goto out;
        }
        /* Keep the whole file 8-byte aligned so every record is naturally aligned. */
        while (strings.len % 8)
                buf_add(&strings, "", 0, true);

        struct tree_header h = { .version = 1 };
        memcpy(h.magic, TREE_MAGIC, 8);
        h.n_inodes = (uint32_t)n_inodes;
        h.n_dirents = (uint32_t)n_dirents;
        h.n_xattrs = (uint32_t)n_xattrs;
        h.strings_size = strings.len;
        size_t total = sizeof(h) + n_inodes * sizeof(*inodes) + dirents.len + xattrs.len + strings.len;
        h.total_size = total;
        char *out = xmalloc(total);
        char *p = out;
        memcpy(p, &h, sizeof(h));
        p += sizeof(h);
        memcpy(p, inodes, n_inodes * sizeof(*inodes));
        p += n_inodes * sizeof(*inodes);
        if (dirents.len)
                memcpy(p, dirents.data, dirents.len);
        p += dirents.len;
        if (xattrs.len)
                memcpy(p, xattrs.data, xattrs.len);
        p += xattrs.len;
        if (strings.len)
                memcpy(p, strings.data, strings.len);
        *ret_data = out;
        *ret_len = total;
out:
        free(order);
        free(inodes);
        free(dirents.data);
        free(xattrs.data);
        free(strings.data);
        return r;
}

int tbuild_write(tbuild *b, int dirfd, const char *path)
{
        _cleanup_free_ void *data = NULL;
        size_t len;
        int r = tbuild_serialize(b, &data, &len);
        if (r < 0)
                return r;
        return util_write_file_atomic_at(dirfd, path, data, len, 0644);
}
