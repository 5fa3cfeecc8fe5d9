/* SPDX-License-Identifier: Apache-2.0 */
/* The daemon's namespace: images and containers as one tree of nodes. See view.h. */
#include "view.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "prefetch.h"
#include "tree.h"
#include "upper.h"
#include "util.h"

/* Image trees never change: the kernel may cache them for long. Names under images/ and
 * containers/ change when the store does (no notification reaches us: a short timeout). */
#define IMAGE_TIMEOUT 86400.0
#define VIRT_TIMEOUT 1.0
/* Every change to a container goes through the mount, so the kernel's caches stay right (it
 * updates or drops what an operation changes); a removed container is dropped by the store
 * watcher (view_refresh). */
#define CONT_TIMEOUT 86400.0

/* st_ino spaces: virtual nodes are small numbers; the top two bits say which space */
#define INO_IMAGE (1ULL << 62)
#define INO_CLOWER (2ULL << 62)
#define INO_CUPPER (3ULL << 62)

enum vkind { VK_ROOT, VK_IMAGES, VK_CONTAINERS, VK_IPREFIX, VK_IMAGE, VK_CLINK, VK_CNODE };

struct vimage {
        struct vimage *next;
        uint32_t slot;
        char *name;
        char id[DIGEST_HEX_LEN + 1];
        tree *t;
        int err;
        bool tried;
        bool in_refs;   /* named by refs.json as last read */
        uint64_t nodes; /* live VK_IMAGE nodes of this image: its tree stays mapped while > 0 */
};

struct vcont {
        struct vcont *next;
        uint32_t slot;
        char id[DIGEST_HEX_LEN + 1];
        char *name;
        char image[DIGEST_HEX_LEN + 1];
        char *upper_path;
        atomic_bool gone;
        bool gone_told; /* v->lock: its names were reported gone (view_refresh) */
        bool listed;    /* v->lock: in containers/ since its record was read */
        atomic_uint_fast64_t wgen; /* counts operations that may change it (cont_begin for writing) */
        pthread_rwlock_t rw; /* write: anything that changes the upper dir */
        pthread_mutex_t open_lock;
        bool tried;
        int err;
        tree *t;
        upper *u;
        dev_t udev; /* the upper dir opened (open_lock): a new container under a reused id */
        ino_t uino; /* is another one */
        bool released; /* open_lock: gone for good, its fds given back (cont_release) */
        bool imap_dropped; /* v->lock: its inode numbers forgotten once released */
        bool fresh; /* v->lock: appeared while mounted, not yet opened by view_refresh */
        uint32_t holds; /* v->lock: nodes that name it, and view_refresh while it opens it */
        /* v->lock: the inode number of containers/<name> while it points at this container
         * under this name: a name that comes back for another container, or another name, is
         * another inode (the kernel caches a symlink's target with its inode). Numbered when
         * the name is first seen, so that a daemon outliving many containers keeps no table of
         * every name it ever listed. */
        uint64_t clink_ino;
};

/*
 * Container nodes. A node is an inode of the container as the kernel knows it (one FUSE node
 * id), and it has names: (directory node, name) pairs, hashed in the name table. A directory has
 * one name; the names of a hardlink set all belong to one node, so the kernel shares one inode
 * (attributes, nlink, page cache) between them, as a local filesystem does. Non-directories
 * are also hashed by their inode number (stable for the view's life, also across copy-up),
 * which is how a lookup of another name of the set finds the node. The path of a node, which
 * is how upper.c addresses it, is built from its (first live) name and its directory's names.
 */
typedef struct vnode vnode;
struct cname {
        struct cname *hnext; /* name table chain */
        struct cname *nnext; /* the node's next name */
        vnode *dir;          /* holds a count in dir->children */
        vnode *node;
        char *name;
        bool hashed;
};

struct vnode {
        vnode *hnext;
        bool hashed;
        bool detached; /* CNODE: no name left (unlinked or replaced): only open files use it */
        bool croot;    /* CNODE: a container's root */
        enum vkind kind;
        uint64_t nlookup;
        uint32_t children; /* CNODE: names whose directory is this node */
        uint64_t ino;
        mode_t type; /* CNODE: S_IFMT bits */
        char *name;  /* IPREFIX: the prefix path; CLINK: the container name */
        struct vimage *img;
        tree_ino tino;
        struct vcont *c;
        struct cname *names; /* CNODE; NULL for a container's root. A removed directory keeps
                              * its (unhashed) name so that its children see it is gone */
        bool dmerge;         /* CNODE directories: what their children merge with */
        tree_ino dlower;
        view_file *files; /* CNODE: open files, for operations on an unlinked inode */
        bool storing;     /* CNODE: store_ahead is giving the kernel its data (v->lock) */
        struct listing *listing; /* directories other than an image's: see view_readdir */
        vnode *anext, *aprev; /* every dynamic node, so that view_free finds them */
};

struct vref {
        char *name;
        struct vimage *img;
};

struct imap {
        struct imap *next;
        uint32_t slot;
        dev_t dev;
        ino_t ino;
        uint64_t val;
};

struct vname {
        struct vname *next;
        enum vkind kind;
        char *name;
        uint64_t ino;
};

struct view {
        store *s;
        pthread_mutex_t lock; /* nodes, hash, lists, maps below */
        vnode root, images, containers;
        vnode **buckets;
        size_t n_buckets, n_nodes;
        struct vimage *imgs;
        uint32_t img_slots;
        struct vref *refs;
        size_t n_refs;
        char **told_refs; /* the names view_refresh last saw: lookups refresh refs too */
        size_t n_told_refs;
        bool refs_loaded;
        struct stat refs_st;
        struct vcont *conts;
        uint32_t cont_slots;
        bool conts_loaded;
        struct stat conts_st;
        /* mtimes of the virtual directories, moved on whenever their listing changes */
        struct timespec refs_mtime, conts_mtime;
        uint8_t cookie_key[16]; /* directory cookies: see view_readdir */
        struct imap **imap;
        size_t n_imap_buckets, n_imap;
        uint64_t upper_ino_next;
        struct vname *vnames;
        uint64_t vino_next;
        struct timespec started;
        vnode *all;
        struct cname **cn_buckets;
        size_t n_cn_buckets, n_cn;
        prefetch *pf; /* reading image files ahead of a reader going through a directory */
        view_store_fn *store; /* view_set_store */
        void *store_ud;
        atomic_uint_fast64_t stored; /* files store_ahead gave to it */
        /* v->lock: stores under way, none from now on (view_stop_store); signalled when a store
         * ends */
        unsigned n_storing;
        bool store_off;
        pthread_cond_t store_cond;
        /* v->lock: what removed containers gave back, closed outside the lock (see
         * cont_release) */
        struct dead *dead;
};

struct dead {
        struct dead *next;
        upper *u;
        tree *t;
};

struct view_file {
        view *v;
        vnode *n;
        view_file *next, *prev;
        int fd;
        int old_fd; /* replaced by a reopen after a copy-up; closed on release */
        bool lower;
        bool image;
        uint64_t gen;
        upper_copy *copy; /* the upper file's data is still being copied (upper_copy.h) */
        pthread_mutex_t lock;
};

struct dent {
        char *name;
        uint64_t ino;
        mode_t type;
        uint64_t cookie; /* its position: see view_readdir */
};

/* A snapshot of a directory's entries in cookie order (see view_readdir). */
struct listing {
        struct dent *e;
        size_t n_e;
        bool current; /* a container directory's, still good while wgen is */
        uint64_t wgen;
};

struct view_dir {
        view *v;
        vnode *n;
        char *name; /* image dirs: the current entry's name, NUL-terminated */
        size_t name_size;
};

static void listing_free(struct listing *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n_e; i++)
                free(l->e[i].name);
        free(l->e);
        free(l);
}

static void listings_free(vnode *n)
{
        listing_free(n->listing);
        n->listing = NULL;
}

/* ---- node table ---- */

static uint64_t hash_mix(uint64_t h, uint64_t x)
{
        h ^= x + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
        return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
        for (; s && *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        return h;
}

static uint64_t node_key_hash(enum vkind kind, const void *k1, uint64_t k2, const char *name)
{
        uint64_t h = hash_mix(1469598103934665603ULL, kind);
        h = hash_mix(h, (uint64_t)(uintptr_t)k1);
        h = hash_mix(h, k2);
        return hash_str(h, name);
}

static const void *node_k1(const vnode *n)
{
        switch (n->kind) {
        case VK_IMAGE:
                return n->img;
        case VK_CNODE:
        case VK_CLINK:
                return n->c;
        default:
                return NULL;
        }
}

/* Keys: images (img, tree ino); container roots (c, 0) and non-directories (c, ino); the
 * virtual kinds by name. Container directories are found through their name only. */
static uint64_t node_k2(const vnode *n)
{
        switch (n->kind) {
        case VK_IMAGE:
                return n->tino;
        case VK_CNODE:
                return n->croot ? 0 : n->ino;
        default:
                return 0;
        }
}

static uint64_t node_hash(const vnode *n)
{
        return node_key_hash(n->kind, node_k1(n), node_k2(n), n->kind == VK_CNODE ? NULL : n->name);
}

static bool node_match(const vnode *n, enum vkind kind, const void *k1, uint64_t k2, const char *name)
{
        if (n->kind != kind || node_k1(n) != k1 || node_k2(n) != k2)
                return false;
        if (kind == VK_IMAGE || kind == VK_CNODE)
                return true;
        /* VK_CLINK: (container, name); the other virtual kinds: name */
        if (!n->name || !name)
                return n->name == name;
        return strcmp(n->name, name) == 0;
}

static void table_insert(view *v, vnode *n)
{
        if (v->n_nodes + 1 > v->n_buckets) {
                size_t nb = v->n_buckets ? v->n_buckets * 2 : 1024;
                vnode **b = xcalloc(nb, sizeof(*b));
                for (size_t i = 0; i < v->n_buckets; i++)
                        for (vnode *x = v->buckets[i], *next; x; x = next) {
                                next = x->hnext;
                                size_t k = node_hash(x) & (nb - 1);
                                x->hnext = b[k];
                                b[k] = x;
                        }
                free(v->buckets);
                v->buckets = b;
                v->n_buckets = nb;
        }
        size_t k = node_hash(n) & (v->n_buckets - 1);
        n->hnext = v->buckets[k];
        v->buckets[k] = n;
        n->hashed = true;
        v->n_nodes++;
}

static void table_remove(view *v, vnode *n)
{
        if (!n->hashed)
                return;
        size_t k = node_hash(n) & (v->n_buckets - 1);
        for (vnode **p = &v->buckets[k]; *p; p = &(*p)->hnext)
                if (*p == n) {
                        *p = n->hnext;
                        break;
                }
        n->hashed = false;
        v->n_nodes--;
}

static vnode *table_find(view *v, enum vkind kind, const void *k1, uint64_t k2, const char *name)
{
        if (!v->n_buckets)
                return NULL;
        size_t k = node_key_hash(kind, k1, k2, name) & (v->n_buckets - 1);
        for (vnode *n = v->buckets[k]; n; n = n->hnext)
                if (node_match(n, kind, k1, k2, name))
                        return n;
        return NULL;
}

static bool node_static(view *v, vnode *n) { return n == &v->root || n == &v->images || n == &v->containers; }

/* ---- container names ---- */

static uint64_t cname_key(const vnode *dir, const char *name)
{
        return hash_str(hash_mix(0x5bd1e995ULL, (uint64_t)(uintptr_t)dir), name);
}

static struct cname *cname_find(view *v, const vnode *dir, const char *name)
{
        if (!v->n_cn_buckets)
                return NULL;
        for (struct cname *cn = v->cn_buckets[cname_key(dir, name) & (v->n_cn_buckets - 1)]; cn; cn = cn->hnext)
                if (cn->dir == dir && strcmp(cn->name, name) == 0)
                        return cn;
        return NULL;
}

static void cname_hash(view *v, struct cname *cn)
{
        if (v->n_cn + 1 > v->n_cn_buckets) {
                size_t nb = v->n_cn_buckets ? v->n_cn_buckets * 2 : 1024;
                struct cname **b = xcalloc(nb, sizeof(*b));
                for (size_t i = 0; i < v->n_cn_buckets; i++)
                        for (struct cname *x = v->cn_buckets[i], *next; x; x = next) {
                                next = x->hnext;
                                size_t k = cname_key(x->dir, x->name) & (nb - 1);
                                x->hnext = b[k];
                                b[k] = x;
                        }
                free(v->cn_buckets);
                v->cn_buckets = b;
                v->n_cn_buckets = nb;
        }
        size_t k = cname_key(cn->dir, cn->name) & (v->n_cn_buckets - 1);
        cn->hnext = v->cn_buckets[k];
        v->cn_buckets[k] = cn;
        cn->hashed = true;
        v->n_cn++;
}

static void cname_unhash(view *v, struct cname *cn)
{
        if (!cn->hashed)
                return;
        size_t k = cname_key(cn->dir, cn->name) & (v->n_cn_buckets - 1);
        for (struct cname **p = &v->cn_buckets[k]; *p; p = &(*p)->hnext)
                if (*p == cn) {
                        *p = cn->hnext;
                        break;
                }
        cn->hashed = false;
        v->n_cn--;
}

/* Give node n the name (dir, name). v->lock held. */
static void cname_add(view *v, vnode *n, vnode *dir, const char *name)
{
        struct cname *cn = xcalloc(1, sizeof(*cn));
        cn->dir = dir;
        cn->node = n;
        cn->name = xstrdup(name);
        dir->children++;
        /* append: the first name stays the one the node was found by */
        struct cname **p = &n->names;
        while (*p)
                p = &(*p)->nnext;
        *p = cn;
        cname_hash(v, cn);
        n->detached = false;
}

/* Move an unhashed name to (dir, name) and hash it. v->lock held; the old directory is not
 * freed here (the kernel holds it: it is a request's parent). */
static void cname_move(view *v, struct cname *cn, vnode *dir, const char *name)
{
        cname_unhash(v, cn);
        if (cn->dir != dir) {
                dir->children++;
                cn->dir->children--;
                cn->dir = dir;
        }
        free(cn->name);
        cn->name = xstrdup(name);
        cname_hash(v, cn);
}

static void node_maybe_free(view *v, vnode *n);

/* A name is gone (unlink, rmdir, replaced by a rename). A node left without names is
 * detached: only the kernel's references and open files keep it. v->lock held. */
static void cname_remove(view *v, struct cname *cn)
{
        vnode *n = cn->node;
        cname_unhash(v, cn);
        if (S_ISDIR(n->type)) {
                /* keep the name unhashed: nodes below see that their directory is gone */
                n->detached = true;
                return;
        }
        for (struct cname **p = &n->names; *p; p = &(*p)->nnext)
                if (*p == cn) {
                        *p = cn->nnext;
                        break;
                }
        vnode *dir = cn->dir;
        free(cn->name);
        free(cn);
        dir->children--;
        if (!n->names) {
                n->detached = true;
                table_remove(v, n); /* its inode number may name another file from now on */
        }
        node_maybe_free(v, dir);
        node_maybe_free(v, n);
}

static void all_add(view *v, vnode *n)
{
        n->aprev = NULL;
        n->anext = v->all;
        if (v->all)
                v->all->aprev = n;
        v->all = n;
}

static void all_remove(view *v, vnode *n)
{
        if (n->aprev)
                n->aprev->anext = n->anext;
        else
                v->all = n->anext;
        if (n->anext)
                n->anext->aprev = n->aprev;
}

static void image_release(view *v, struct vimage *img);
static void cont_maybe_free(view *v, struct vcont *c);

/* Free a node nobody refers to any more, and the directories that only it kept. Called with
 * v->lock held. A hardlinked file has names in several directories, one of which may hold
 * another (data/f and data/sub/f): the directories to look at go on a list, each once (when
 * its last child goes), so none is freed twice. */
static void node_maybe_free(view *v, vnode *n)
{
        vnode *small[8], **todo = small;
        size_t len = 0, cap = 8;
        while (n) {
                if (!node_static(v, n) && n->nlookup == 0 && n->children == 0) {
                        table_remove(v, n);
                        all_remove(v, n);
                        if (n->kind == VK_IMAGE) {
                                n->img->nodes--;
                                image_release(v, n->img);
                        }
                        for (struct cname *cn = n->names, *nn; cn; cn = nn) {
                                nn = cn->nnext;
                                vnode *dir = cn->dir;
                                cname_unhash(v, cn);
                                free(cn->name);
                                free(cn);
                                if (--dir->children > 0)
                                        continue;
                                if (len == cap) {
                                        cap *= 2;
                                        todo = todo == small ? memcpy(xcalloc(cap, sizeof(*todo)), small, sizeof(small))
                                                             : xrealloc(todo, cap * sizeof(*todo));
                                }
                                todo[len++] = dir;
                        }
                        listings_free(n);
                        free(n->name);
                        struct vcont *c = n->kind == VK_CNODE || n->kind == VK_CLINK ? n->c : NULL;
                        free(n);
                        if (c) {
                                c->holds--;
                                cont_maybe_free(v, c);
                        }
                }
                n = len ? todo[--len] : NULL;
        }
        if (todo != small)
                free(todo);
}

static vnode *node_of(view *v, uint64_t id)
{
        if (id == VIEW_ROOT_ID)
                return &v->root;
        return (vnode *)(uintptr_t)id;
}

static uint64_t id_of(view *v, vnode *n) { return n == &v->root ? VIEW_ROOT_ID : (uint64_t)(uintptr_t)n; }

/* A stable inode number for a virtual name (prefix dirs, container name links). */
static uint64_t vname_ino(view *v, enum vkind kind, const char *name)
{
        for (struct vname *x = v->vnames; x; x = x->next)
                if (x->kind == kind && strcmp(x->name, name) == 0)
                        return x->ino;
        struct vname *x = xcalloc(1, sizeof(*x));
        x->kind = kind;
        x->name = xstrdup(name);
        x->ino = v->vino_next++;
        x->next = v->vnames;
        v->vnames = x;
        return x->ino;
}


/* Find or make a node and count one lookup. Called with v->lock held. */
static vnode *node_get(view *v, enum vkind kind, const void *k1, uint64_t k2, const char *name, bool *ret_new)
{
        vnode *n = table_find(v, kind, k1, k2, name);
        if (n) {
                n->nlookup++;
                if (ret_new)
                        *ret_new = false;
                return n;
        }
        n = xcalloc(1, sizeof(*n));
        n->kind = kind;
        n->nlookup = 1;
        n->name = name ? xstrdup(name) : NULL;
        if (kind == VK_IMAGE) {
                n->img = (struct vimage *)k1;
                n->img->nodes++;
                n->tino = (tree_ino)k2;
                n->ino = INO_IMAGE | ((uint64_t)n->img->slot << 32) | (k2 + 1ULL);
        } else if (kind == VK_CNODE) {
                /* only container roots come here; the other container nodes: cont_entry */
                n->c = (struct vcont *)k1;
                n->c->holds++;
                n->croot = true;
                n->type = S_IFDIR;
        } else if (kind == VK_CLINK) {
                n->c = (struct vcont *)k1;
                n->c->holds++;
        }
        table_insert(v, n);
        all_add(v, n);
        if (ret_new)
                *ret_new = true;
        return n;
}

/* ---- images and containers from the store ---- */

static bool ref_name_ok(const char *name)
{
        /* every component becomes a directory name */
        const char *p = name;
        if (!*p)
                return false;
        for (;;) {
                const char *e = strchrnul(p, '/');
                size_t len = (size_t)(e - p);
                if (len == 0 || len > 255 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
                        return false;
                if (!*e)
                        return true;
                p = e + 1;
        }
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
        return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
               a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static int vref_cmp(const void *a, const void *b)
{
        return strcmp(((const struct vref *)a)->name, ((const struct vref *)b)->name);
}

static void image_free(struct vimage *img)
{
        tree_close(img->t);
        free(img->name);
        free(img);
}

/* An image no name shows any more and no node uses: unmap its tree (rmi frees the space
 * only once nobody maps it) and forget it. A later name for the same id gets a new slot, so
 * inode numbers are never reused within the view. v->lock held. */
static void image_release(view *v, struct vimage *img)
{
        if (img->in_refs || img->nodes > 0)
                return;
        for (struct vimage **p = &v->imgs; *p; p = &(*p)->next)
                if (*p == img) {
                        *p = img->next;
                        image_free(img);
                        return;
                }
}

/* A virtual directory's listing changed: its mtime moves on (never back, never in place), as
 * `ls -ld` users expect of a directory that changed. */
static void mtime_bump(struct timespec *t)
{
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec < t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec <= t->tv_nsec)) {
                now = *t;
                if (++now.tv_nsec == 1000000000L) {
                        now.tv_sec++;
                        now.tv_nsec = 0;
                }
        }
        *t = now;
}

/* Re-read refs.json when it changed. Called with v->lock held. */
static void refs_refresh(view *v)
{
        struct stat st;
        if (fstatat(store_dirfd(v->s), "refs.json", &st, 0) < 0)
                memset(&st, 0, sizeof(st));
        if (v->refs_loaded && stat_same(&st, &v->refs_st))
                return;
        struct store_ref *refs;
        size_t n;
        if (store_refs_load(v->s, &refs, &n) < 0)
                return; /* keep what we had: a torn read is not the store changing */
        for (size_t i = 0; i < v->n_refs; i++)
                free(v->refs[i].name);
        free(v->refs);
        for (struct vimage *x = v->imgs; x; x = x->next)
                x->in_refs = false;
        v->refs = xcalloc(n + 1, sizeof(*v->refs));
        v->n_refs = 0;
        for (size_t i = 0; i < n; i++) {
                if (!ref_name_ok(refs[i].name))
                        continue;
                struct vimage *img = NULL;
                for (struct vimage *x = v->imgs; x && !img; x = x->next)
                        if (strcmp(x->name, refs[i].name) == 0 && strcmp(x->id, refs[i].id) == 0)
                                img = x;
                if (!img) {
                        img = xcalloc(1, sizeof(*img));
                        img->slot = ++v->img_slots;
                        img->name = xstrdup(refs[i].name);
                        memcpy(img->id, refs[i].id, sizeof(img->id));
                        img->next = v->imgs;
                        v->imgs = img;
                }
                img->in_refs = true;
                v->refs[v->n_refs].name = xstrdup(refs[i].name);
                v->refs[v->n_refs].img = img;
                v->n_refs++;
        }
        for (struct vimage *x = v->imgs, *next; x; x = next) {
                next = x->next;
                image_release(v, x);
        }
        qsort(v->refs, v->n_refs, sizeof(*v->refs), vref_cmp);
        store_refs_free(refs, n);
        v->refs_st = st;
        v->refs_loaded = true;
        mtime_bump(&v->refs_mtime);
}

/* The image's tree, opened once. Called with v->lock held. */
static tree *image_tree(view *v, struct vimage *img)
{
        if (!img->tried) {
                img->tried = true;
                img->err = store_image_open_tree(v->s, img->id, &img->t);
        }
        return img->t;
}

/* The tree of an image node's image, opened on first use (takes v->lock). */
static tree *node_tree(view *v, vnode *n)
{
        pthread_mutex_lock(&v->lock);
        tree *t = image_tree(v, n->img);
        pthread_mutex_unlock(&v->lock);
        return t;
}

/* Is the listed container the one c serves? A removed container's view holds fds of its
 * deleted upper dir and must never serve a new one that took its id. v->lock held. */
static bool cont_same(struct vcont *c, const struct store_container *sc)
{
        if (!atomic_load(&c->gone))
                return true;
        if (strcmp(c->upper_path, sc->upper) != 0)
                return false;
        pthread_mutex_lock(&c->open_lock);
        /* Released: its upper dir's inode may have been reused by a new directory already, so
         * dev/ino can no longer tell; a container that comes back gets a fresh view. */
        if (c->released) {
                pthread_mutex_unlock(&c->open_lock);
                return false;
        }
        bool opened = c->u != NULL;
        dev_t dev = c->udev;
        ino_t ino = c->uino;
        pthread_mutex_unlock(&c->open_lock);
        struct stat st;
        return !opened || (stat(sc->upper, &st) == 0 && st.st_dev == dev && st.st_ino == ino);
}

/* A removed container gives back its upper and work dir fds and its image tree: nothing can
 * use them any more (cont_begin refuses a gone container; open files hold fds of their own).
 * Operations that began before it went away hold its lock: if one still does, the next
 * refresh releases it. Never blocks, so a refresh may run inside any operation. The fds and
 * the tree go to v->dead (v->lock held) for dead_free: closing the last fd of a removed
 * directory makes the filesystem free its inode then (up to a millisecond each here), which
 * must not hold up every lookup waiting for v->lock. */
static void cont_release(view *v, struct vcont *c)
{
        if (pthread_rwlock_trywrlock(&c->rw) != 0)
                return;
        pthread_mutex_lock(&c->open_lock);
        if (c->u)
                upper_stop_copies(c->u);
        if (c->u || c->t) {
                struct dead *d = xcalloc(1, sizeof(*d));
                d->u = c->u;
                d->t = c->t;
                d->next = v->dead;
                v->dead = d;
        }
        c->u = NULL;
        c->t = NULL;
        c->tried = true;
        c->err = -ENOENT;
        c->released = true;
        pthread_mutex_unlock(&c->open_lock);
        pthread_rwlock_unlock(&c->rw);
}

/* Close what removed containers gave back (without v->lock). */
static void dead_free(view *v)
{
        pthread_mutex_lock(&v->lock);
        struct dead *d = v->dead;
        v->dead = NULL;
        pthread_mutex_unlock(&v->lock);
        while (d) {
                struct dead *next = d->next;
                upper_close(d->u);
                tree_close(d->t);
                free(d);
                d = next;
        }
}

static void cont_free(struct vcont *c)
{
        upper_close(c->u);
        tree_close(c->t);
        free(c->name);
        free(c->upper_path);
        pthread_rwlock_destroy(&c->rw);
        pthread_mutex_destroy(&c->open_lock);
        free(c);
}

static bool cont_unused(struct vcont *c) { return atomic_load(&c->gone) && c->imap_dropped && c->holds == 0; }

/* Forget the removed containers that gave back their fds and inode numbers (conts_refresh) and
 * that no node names any more, or a daemon that outlives many containers keeps a record of
 * each and goes through all of them at every change of containers/. Nothing else holds one:
 * cont_find skips removed containers, the prefetcher knows them by slot (cont_key), and one
 * that comes back gets a new record anyway (cont_same). v->lock held. */
static void conts_free_unused(view *v)
{
        for (struct vcont **p = &v->conts; *p;) {
                struct vcont *c = *p;
                if (cont_unused(c)) {
                        *p = c->next;
                        cont_free(c);
                } else {
                        p = &c->next;
                }
        }
}

/* c lost a hold: forget it if it was the last of a removed container's. v->lock held. */
static void cont_maybe_free(view *v, struct vcont *c)
{
        if (cont_unused(c))
                conts_free_unused(v);
}

/* The prefetcher's key for container c's readers: its slot (never reused within the view),
 * not its address, which a later container may get once c is freed. Odd: never an image's
 * (an address). */
static const void *cont_key(const struct vcont *c) { return (const void *)(uintptr_t)(((uint64_t)c->slot << 1) | 1); }

static struct vcont *cont_of_key(view *v, const void *key)
{
        uint32_t slot = (uint32_t)((uintptr_t)key >> 1);
        for (struct vcont *c = v->conts; c; c = c->next)
                if (c->slot == slot)
                        return c;
        return NULL;
}

/* The ids of the live containers, sorted: store_list_containers need not read their records
 * again. */
struct live_ids {
        const char **ids;
        size_t n;
};

static int cmp_id(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static bool cont_known(void *ud, const char *id)
{
        const struct live_ids *l = ud;
        return l->n && bsearch(&id, l->ids, l->n, sizeof(*l->ids), cmp_id);
}

static void imap_drop_slot(view *v, uint32_t slot);

static void conts_refresh(view *v, bool force)
{
        struct stat st;
        if (fstatat(store_dirfd(v->s), "containers", &st, 0) < 0)
                memset(&st, 0, sizeof(st));
        if (v->conts_loaded && !force && stat_same(&st, &v->conts_st))
                return;
        struct live_ids live = { 0 };
        for (struct vcont *c = v->conts; c; c = c->next)
                if (!atomic_load(&c->gone)) {
                        live.ids = xrealloc(live.ids, (live.n + 1) * sizeof(*live.ids));
                        live.ids[live.n++] = c->id;
                }
        if (live.n)
                qsort(live.ids, live.n, sizeof(*live.ids), cmp_id);
        struct store_container *cs;
        size_t n;
        int r = store_list_containers(v->s, cont_known, &live, &cs, &n);
        free(live.ids);
        if (r < 0)
                return;
        bool changed = false;
        for (struct vcont *c = v->conts; c; c = c->next) {
                bool found = false;
                for (size_t i = 0; i < n && !found; i++)
                        found = strcmp(cs[i].id, c->id) == 0;
                if (!found && !atomic_load(&c->gone)) {
                        atomic_store(&c->gone, true);
                        changed = true;
                }
                if (atomic_load(&c->gone)) {
                        cont_release(v, c);
                        pthread_mutex_lock(&c->open_lock);
                        bool released = c->released;
                        pthread_mutex_unlock(&c->open_lock);
                        if (released && !c->imap_dropped) {
                                imap_drop_slot(v, c->slot); /* nothing asks for them any more */
                                c->imap_dropped = true;
                        }
                }
        }
        conts_free_unused(v);
        for (size_t i = 0; i < n; i++) {
                if (cs[i].known)
                        continue; /* live, and its record has not changed */
                if (strlen(cs[i].id) != DIGEST_HEX_LEN || !cs[i].upper || cs[i].upper[0] != '/')
                        continue;
                struct vcont *c = NULL;
                for (struct vcont *x = v->conts; x && !c; x = x->next)
                        if (strcmp(x->id, cs[i].id) == 0 && cont_same(x, &cs[i]))
                                c = x;
                if (!c) {
                        c = xcalloc(1, sizeof(*c));
                        c->slot = ++v->cont_slots;
                        memcpy(c->id, cs[i].id, sizeof(c->id));
                        memcpy(c->image, cs[i].image, sizeof(c->image));
                        c->upper_path = xstrdup(cs[i].upper);
                        pthread_rwlock_init(&c->rw, NULL);
                        pthread_mutex_init(&c->open_lock, NULL);
                        c->fresh = v->conts_loaded;
                        c->next = v->conts;
                        v->conts = c;
                }
                char *name = cs[i].name && ref_name_ok(cs[i].name) && !strchr(cs[i].name, '/') &&
                                             strlen(cs[i].name) != DIGEST_HEX_LEN
                                     ? xstrdup(cs[i].name)
                                     : NULL;
                if (atomic_load(&c->gone) || !c->listed || (c->name == NULL) != (name == NULL) ||
                    (name && strcmp(c->name, name) != 0))
                        changed = true;
                atomic_store(&c->gone, false);
                c->gone_told = false;
                c->listed = true;
                if (name && (!c->name || strcmp(c->name, name) != 0))
                        c->clink_ino = v->vino_next++;
                free(c->name);
                c->name = name;
        }
        store_containers_free(cs, n);
        v->conts_st = st;
        v->conts_loaded = true;
        if (changed)
                mtime_bump(&v->conts_mtime);
}

/* Lock a container for an operation and make sure its upper is open. */
static int cont_begin(view *v, struct vcont *c, bool write)
{
        if (write) {
                pthread_rwlock_wrlock(&c->rw);
                atomic_fetch_add(&c->wgen, 1);
        } else {
                pthread_rwlock_rdlock(&c->rw);
        }
        if (atomic_load(&c->gone)) {
                pthread_rwlock_unlock(&c->rw);
                return -ENOENT;
        }
        pthread_mutex_lock(&c->open_lock);
        if (!c->tried) {
                c->tried = true;
                if (store_image_open_tree(v->s, c->image, &c->t) < 0)
                        c->t = NULL; /* image gone: the container shows its upper only */
                c->err = upper_open(v->s, c->t, c->upper_path, &c->u);
                struct stat st;
                if (c->err == 0 && upper_root_stat(c->u, &st) == 0) {
                        c->udev = st.st_dev;
                        c->uino = st.st_ino;
                }
        }
        int r = c->err;
        pthread_mutex_unlock(&c->open_lock);
        if (r < 0) {
                pthread_rwlock_unlock(&c->rw);
                return r;
        }
        return 0;
}

static void cont_end(struct vcont *c) { pthread_rwlock_unlock(&c->rw); }

/* ---- container nodes ---- */

static uint64_t ino_clower(struct vcont *c, tree_ino t) { return INO_CLOWER | ((uint64_t)c->slot << 32) | (t + 1ULL); }

/* The tree inode of c's inode number ino, when ino is one ino_clower made for c. */
static bool clower_tino(struct vcont *c, uint64_t ino, tree_ino *ret)
{
        if ((ino & ~0xffffffffULL) != (INO_CLOWER | ((uint64_t)c->slot << 32)) || (ino & 0xffffffffu) == 0)
                return false;
        *ret = (tree_ino)((ino & 0xffffffffu) - 1);
        return true;
}

static struct imap *imap_find(view *v, uint32_t slot, dev_t dev, ino_t ino)
{
        if (!v->n_imap_buckets)
                return NULL;
        size_t k = hash_mix(hash_mix(slot, dev), ino) & (v->n_imap_buckets - 1);
        for (struct imap *m = v->imap[k]; m; m = m->next)
                if (m->slot == slot && m->dev == dev && m->ino == ino)
                        return m;
        return NULL;
}

static void imap_add(view *v, uint32_t slot, dev_t dev, ino_t ino, uint64_t val)
{
        if (v->n_imap + 1 > v->n_imap_buckets) {
                size_t nb = v->n_imap_buckets ? v->n_imap_buckets * 2 : 1024;
                struct imap **b = xcalloc(nb, sizeof(*b));
                for (size_t i = 0; i < v->n_imap_buckets; i++)
                        for (struct imap *m = v->imap[i], *next; m; m = next) {
                                next = m->next;
                                size_t k = hash_mix(hash_mix(m->slot, m->dev), m->ino) & (nb - 1);
                                m->next = b[k];
                                b[k] = m;
                        }
                free(v->imap);
                v->imap = b;
                v->n_imap_buckets = nb;
        }
        struct imap *m = xcalloc(1, sizeof(*m));
        *m = (struct imap){ .slot = slot, .dev = dev, .ino = ino, .val = val };
        size_t k = hash_mix(hash_mix(slot, dev), ino) & (v->n_imap_buckets - 1);
        m->next = v->imap[k];
        v->imap[k] = m;
        v->n_imap++;
}

/* Take *p out of its chain and free it. v->lock held. */
static void imap_unlink(view *v, struct imap **p)
{
        struct imap *m = *p;
        *p = m->next;
        free(m);
        v->n_imap--;
}

/* A removed container's entries. v->lock held. */
static void imap_drop_slot(view *v, uint32_t slot)
{
        for (size_t b = 0; b < v->n_imap_buckets; b++)
                for (struct imap **p = &v->imap[b]; *p;) {
                        if ((*p)->slot == slot)
                                imap_unlink(v, p);
                        else
                                p = &(*p)->next;
                }
}

/* An upper inode that goes with the name about to be removed: its number may be reused by
 * the next file the upper dir gets, which must not inherit the number (and node) shown for this
 * one. Fills *ret (dev 0: none) before the removal; imap_forget after it. Container lock held. */
struct upper_key {
        dev_t dev;
        ino_t ino;
};

static void upper_key_of(upper *u, const struct upper_dir *d, const char *name, struct upper_key *ret)
{
        struct upper_ent e;
        ret->dev = 0;
        ret->ino = 0;
        if (upper_lookup(u, d, name, &e) == 0 && e.in_upper && (S_ISDIR(e.st.st_mode) || e.st.st_nlink <= 1)) {
                ret->dev = e.st.st_dev;
                ret->ino = e.st.st_ino;
        }
}

/* v->lock held */
static void imap_forget(view *v, uint32_t slot, const struct upper_key *k)
{
        if (!k->dev || !v->n_imap_buckets)
                return;
        size_t b = hash_mix(hash_mix(slot, k->dev), k->ino) & (v->n_imap_buckets - 1);
        for (struct imap **p = &v->imap[b]; *p; p = &(*p)->next)
                if ((*p)->slot == slot && (*p)->dev == k->dev && (*p)->ino == k->ino) {
                        imap_unlink(v, p);
                        return;
                }
}

/* The inode number the container shows for an entry: the lower origin's while the entry is
 * the lower's (also merged dirs and metacopies), the first number an upper inode was shown
 * with for the rest of the view's life (so copy-up does not change it). v->lock held. */
static uint64_t cont_ino(view *v, struct vcont *c, const struct upper_ent *e)
{
        if (!e->in_upper || (S_ISDIR(e->st.st_mode) && e->merge))
                return ino_clower(c, e->lower);
        struct imap *m = imap_find(v, c->slot, e->st.st_dev, e->st.st_ino);
        if (m)
                return m->val;
        uint64_t val = !S_ISDIR(e->st.st_mode) && e->has_lower ? ino_clower(c, e->lower) : INO_CUPPER | v->upper_ino_next++;
        imap_add(v, c->slot, e->st.st_dev, e->st.st_ino, val);
        return val;
}

/* After an operation that may have copied the node's file up: keep its number. */
static void cont_note(view *v, vnode *n, const struct upper_ent *e)
{
        if (!e->in_upper || S_ISDIR(e->st.st_mode))
                return;
        pthread_mutex_lock(&v->lock);
        /* (not for a container removed meanwhile: its numbers are dropped, and would not be again) */
        if (!n->c->imap_dropped && !imap_find(v, n->c->slot, e->st.st_dev, e->st.st_ino))
                imap_add(v, n->c->slot, e->st.st_dev, e->st.st_ino, n->ino);
        pthread_mutex_unlock(&v->lock);
}

/* Path of a container directory node relative to the container root. Container lock held
 * (directory names change only under its write lock). */
static char *cnode_path(vnode *n)
{
        size_t len = 0;
        for (vnode *x = n; x->names; x = x->names->dir)
                len += strlen(x->names->name) + 1;
        if (len)
                len--; /* no separator before the first component */
        char *p = xmalloc(len + 1);
        p[len] = '\0';
        size_t pos = len;
        for (vnode *x = n; x->names; x = x->names->dir) {
                size_t l = strlen(x->names->name);
                pos -= l;
                memcpy(p + pos, x->names->name, l);
                if (pos > 0)
                        p[--pos] = '/';
        }
        return p;
}

static bool dir_gone(vnode *dir)
{
        for (vnode *x = dir; x; x = x->names ? x->names->dir : NULL)
                if (x->detached)
                        return true;
        return false;
}

/* How upper.c addresses a node: its parent dir and name (NULL dir for the container root). */
struct cref {
        struct upper_dir d;
        char *path;
        const char *name;
        bool root;
};

/* Container lock held: names cannot change meanwhile (v->lock is not needed to read them). */
static int cref_entry(vnode *n, struct cref *r)
{
        memset(r, 0, sizeof(*r));
        if (n->detached)
                return -ENOENT;
        if (n->croot) {
                r->root = true;
                return 0;
        }
        /* any live name of the inode will do */
        for (struct cname *cn = n->names; cn; cn = cn->nnext) {
                if (!cn->hashed || dir_gone(cn->dir))
                        continue;
                r->path = cnode_path(cn->dir);
                r->d = (struct upper_dir){ r->path, cn->dir->dmerge, cn->dir->dlower };
                r->name = cn->name;
                return 0;
        }
        return -ENOENT;
}

static int cref_dir(vnode *dir, struct cref *r)
{
        memset(r, 0, sizeof(*r));
        if (dir_gone(dir))
                return -ENOENT;
        r->path = cnode_path(dir);
        r->d = (struct upper_dir){ r->path, dir->dmerge, dir->dlower };
        return 0;
}

static const struct upper_dir *cref_d(const struct cref *r) { return r->root ? NULL : &r->d; }

static void cref_done(struct cref *r) { free(r->path); }

/* The node of a container entry, found by its name or (other names of a hardlink set) by its
 * inode number, made when new; counts one lookup. Container lock and v->lock held. */
static vnode *cont_node(view *v, vnode *parent, const char *name, const struct upper_ent *e)
{
        struct vcont *c = parent->c;
        uint64_t ino = cont_ino(v, c, e);
        mode_t type = e->st.st_mode & S_IFMT;
        struct cname *cn = cname_find(v, parent, name);
        if (cn && (cn->node->ino != ino || cn->node->type != type)) {
                /* not the inode the name had (cannot happen through us; be safe) */
                cname_remove(v, cn);
                cn = NULL;
        }
        vnode *n = cn ? cn->node : NULL;
        if (!n && !S_ISDIR(type)) {
                n = table_find(v, VK_CNODE, c, ino, NULL);
                if (n)
                        cname_add(v, n, parent, name);
        }
        if (!n) {
                n = xcalloc(1, sizeof(*n));
                n->kind = VK_CNODE;
                n->c = c;
                c->holds++;
                n->ino = ino;
                n->type = type;
                n->dmerge = e->merge;
                n->dlower = e->lower;
                if (!S_ISDIR(type))
                        table_insert(v, n);
                all_add(v, n);
                cname_add(v, n, parent, name);
        }
        n->nlookup++;
        return n;
}

/* Make the reply entry for a container entry. Container lock held. */
static void cont_entry(view *v, vnode *parent, const char *name, const struct upper_ent *e, struct view_entry *ret)
{
        pthread_mutex_lock(&v->lock);
        vnode *n = cont_node(v, parent, name, e);
        pthread_mutex_unlock(&v->lock);
        ret->id = id_of(v, n);
        ret->st = e->st;
        ret->st.st_ino = n->ino;
        ret->st.st_dev = 0;
        ret->entry_timeout = CONT_TIMEOUT;
        ret->attr_timeout = CONT_TIMEOUT;
}

/* ---- attributes ---- */

/* The store is re-read first: the mtime tells the kernel whether its listing is still good.
 * v->lock held. */
static void virt_dir_stat(view *v, vnode *n, struct stat *st)
{
        memset(st, 0, sizeof(*st));
        st->st_ino = n->ino;
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        st->st_blksize = 4096;
        switch (n->kind) {
        case VK_IMAGES:
        case VK_IPREFIX:
                refs_refresh(v);
                st->st_mtim = v->refs_mtime;
                break;
        case VK_CONTAINERS:
                conts_refresh(v, false); /* containers come and go with their directories */
                st->st_mtim = v->conts_mtime;
                break;
        default:
                st->st_mtim = v->started;
                break;
        }
        st->st_atim = st->st_ctim = st->st_mtim;
}

static void image_stat(struct vimage *img, tree_ino t, const struct tree_inode *i, struct stat *st)
{
        memset(st, 0, sizeof(*st));
        st->st_ino = INO_IMAGE | ((uint64_t)img->slot << 32) | (t + 1ULL);
        st->st_mode = i->mode;
        st->st_nlink = i->nlink ? i->nlink : (S_ISDIR(i->mode) ? 2 : 1);
        st->st_uid = i->uid;
        st->st_gid = i->gid;
        st->st_rdev = (dev_t)i->rdev;
        st->st_size = S_ISREG(i->mode) ? (off_t)i->size : S_ISLNK(i->mode) ? (off_t)i->b : 0;
        st->st_blksize = S_ISREG(i->mode) ? TREE_FILE_BLKSIZE : 4096;
        st->st_blocks = S_ISREG(i->mode) ? (blkcnt_t)((i->size + 511) / 512) : 0;
        st->st_mtim.tv_sec = i->mtime_sec;
        st->st_mtim.tv_nsec = i->mtime_nsec;
        st->st_atim = st->st_ctim = st->st_mtim;
}

static int image_node_stat(view *v, vnode *n, struct stat *st)
{
        pthread_mutex_lock(&v->lock);
        tree *t = image_tree(v, n->img);
        int err = n->img->err;
        pthread_mutex_unlock(&v->lock);
        if (!t)
                return err < 0 ? err : -EIO;
        const struct tree_inode *i = tree_get(t, n->tino);
        if (!i)
                return -EIO;
        image_stat(n->img, n->tino, i, st);
        return 0;
}

static int node_stat(view *v, vnode *n, struct stat *st, double *timeout)
{
        switch (n->kind) {
        case VK_ROOT:
        case VK_IMAGES:
        case VK_CONTAINERS:
        case VK_IPREFIX:
                pthread_mutex_lock(&v->lock);
                virt_dir_stat(v, n, st);
                pthread_mutex_unlock(&v->lock);
                *timeout = VIRT_TIMEOUT;
                return 0;
        case VK_CLINK:
                memset(st, 0, sizeof(*st));
                st->st_ino = n->ino;
                st->st_mode = S_IFLNK | 0777;
                st->st_nlink = 1;
                st->st_size = DIGEST_HEX_LEN;
                st->st_mtim = st->st_atim = st->st_ctim = v->started;
                *timeout = IMAGE_TIMEOUT;
                return 0;
        case VK_IMAGE:
                *timeout = IMAGE_TIMEOUT;
                return image_node_stat(v, n, st);
        case VK_CNODE: {
                int r = cont_begin(v, n->c, false);
                if (r < 0)
                        return r;
                struct cref cr;
                r = cref_entry(n, &cr);
                if (r == 0)
                        r = upper_stat(n->c->u, cref_d(&cr), cr.name, st);
                cref_done(&cr);
                cont_end(n->c);
                if (r < 0)
                        return r;
                st->st_ino = n->ino;
                st->st_dev = 0;
                *timeout = CONT_TIMEOUT;
                return 0;
        }
        }
        return -EIO;
}

static int node_fd(view *v, vnode *n, bool wait, upper_copy **ret_copy);
static int wait_copy(view *v, vnode *n);

/* ---- lookup ---- */

static int lookup_prefix(view *v, const char *prefix, const char *name, struct view_entry *ret)
{
        _cleanup_free_ char *full = *prefix ? xasprintf("%s/%s", prefix, name) : xstrdup(name);
        _cleanup_free_ char *dirp = xasprintf("%s/", full);
        pthread_mutex_lock(&v->lock);
        refs_refresh(v);
        struct vref key = { .name = full };
        struct vref *exact = v->n_refs ? bsearch(&key, v->refs, v->n_refs, sizeof(*v->refs), vref_cmp) : NULL;
        vnode *n = NULL;
        if (exact) {
                struct vimage *img = exact->img;
                tree *t = image_tree(v, img);
                const struct tree_inode *i = t ? tree_get(t, TREE_ROOT) : NULL;
                if (i) {
                        n = node_get(v, VK_IMAGE, img, TREE_ROOT, NULL, NULL);
                        image_stat(img, TREE_ROOT, i, &ret->st);
                        ret->entry_timeout = VIRT_TIMEOUT;
                        ret->attr_timeout = IMAGE_TIMEOUT;
                }
        }
        if (!n) {
                size_t dl = strlen(dirp);
                for (size_t i = 0; i < v->n_refs && !n; i++)
                        if (strncmp(v->refs[i].name, dirp, dl) == 0) {
                                bool is_new;
                                n = node_get(v, VK_IPREFIX, NULL, 0, full, &is_new);
                                if (is_new)
                                        n->ino = vname_ino(v, VK_IPREFIX, full);
                                virt_dir_stat(v, n, &ret->st);
                                ret->entry_timeout = ret->attr_timeout = VIRT_TIMEOUT;
                        }
        }
        pthread_mutex_unlock(&v->lock);
        if (!n)
                return -ENOENT;
        ret->id = id_of(v, n);
        return 0;
}

static struct vcont *cont_find(view *v, const char *name, bool *ret_by_name)
{
        for (struct vcont *c = v->conts; c; c = c->next)
                if (!atomic_load(&c->gone) && strcmp(c->id, name) == 0) {
                        *ret_by_name = false;
                        return c;
                }
        for (struct vcont *c = v->conts; c; c = c->next)
                if (!atomic_load(&c->gone) && c->name && strcmp(c->name, name) == 0) {
                        *ret_by_name = true;
                        return c;
                }
        return NULL;
}

static int lookup_containers(view *v, const char *name, struct view_entry *ret)
{
        pthread_mutex_lock(&v->lock);
        conts_refresh(v, false);
        bool by_name = false;
        struct vcont *c = cont_find(v, name, &by_name);
        if (!c) {
                /* a container record may have been completed after the directory appeared */
                conts_refresh(v, true);
                c = cont_find(v, name, &by_name);
        }
        if (!c) {
                pthread_mutex_unlock(&v->lock);
                return -ENOENT;
        }
        vnode *n;
        if (by_name) {
                bool is_new;
                /* one node per (name, container): the name made again for a new container is
                 * another inode, not the old one with its cached target */
                n = node_get(v, VK_CLINK, c, 0, name, &is_new);
                if (is_new)
                        n->ino = c->clink_ino;
                pthread_mutex_unlock(&v->lock);
                double t;
                node_stat(v, n, &ret->st, &t);
                /* the name is asked for at every path walk (rm and create under the same name
                 * may be quicker than the store watcher); the node's target never changes */
                ret->entry_timeout = 0;
                ret->attr_timeout = IMAGE_TIMEOUT;
                ret->id = id_of(v, n);
                return 0;
        }
        bool is_new;
        n = node_get(v, VK_CNODE, c, 0, NULL, &is_new);
        if (is_new) {
                n->ino = ino_clower(c, TREE_ROOT);
                n->dmerge = false;
        }
        pthread_mutex_unlock(&v->lock);
        int r = cont_begin(v, c, false);
        struct upper_ent e;
        if (r == 0) {
                r = upper_lookup(c->u, NULL, NULL, &e);
                cont_end(c);
        }
        if (r < 0) {
                view_forget(v, id_of(v, n), 1);
                return r;
        }
        pthread_mutex_lock(&v->lock);
        n->dmerge = e.merge;
        n->dlower = e.lower;
        pthread_mutex_unlock(&v->lock);
        ret->id = id_of(v, n);
        ret->st = e.st;
        ret->st.st_ino = n->ino;
        ret->st.st_dev = 0;
        ret->entry_timeout = ret->attr_timeout = CONT_TIMEOUT;
        return 0;
}

int view_lookup(view *v, uint64_t parent, const char *name, struct view_entry *ret)
{
        vnode *p = node_of(v, parent);
        memset(ret, 0, sizeof(*ret));
        if (!*name || strchr(name, '/') || strlen(name) > 255)
                return -EINVAL;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return -ENOENT;
        switch (p->kind) {
        case VK_ROOT: {
                vnode *n = strcmp(name, "images") == 0       ? &v->images
                           : strcmp(name, "containers") == 0 ? &v->containers
                                                             : NULL;
                if (!n)
                        return -ENOENT;
                ret->id = id_of(v, n);
                pthread_mutex_lock(&v->lock);
                virt_dir_stat(v, n, &ret->st);
                pthread_mutex_unlock(&v->lock);
                ret->entry_timeout = ret->attr_timeout = VIRT_TIMEOUT;
                return 0;
        }
        case VK_IMAGES:
                return lookup_prefix(v, "", name, ret);
        case VK_IPREFIX:
                return lookup_prefix(v, p->name, name, ret);
        case VK_CONTAINERS:
                return lookup_containers(v, name, ret);
        case VK_CLINK:
                return -ENOTDIR;
        case VK_IMAGE: {
                pthread_mutex_lock(&v->lock);
                tree *t = image_tree(v, p->img);
                pthread_mutex_unlock(&v->lock);
                if (!t)
                        return -EIO;
                tree_ino ino;
                int r = tree_lookup(t, p->tino, name, strlen(name), &ino);
                if (r == -ENOENT) {
                        ret->entry_timeout = IMAGE_TIMEOUT; /* negative entries never change either */
                        return r;
                }
                if (r < 0)
                        return r;
                const struct tree_inode *i = tree_get(t, ino);
                if (!i)
                        return -EIO;
                pthread_mutex_lock(&v->lock);
                vnode *n = node_get(v, VK_IMAGE, p->img, ino, NULL, NULL);
                pthread_mutex_unlock(&v->lock);
                ret->id = id_of(v, n);
                image_stat(p->img, ino, i, &ret->st);
                ret->entry_timeout = ret->attr_timeout = IMAGE_TIMEOUT;
                return 0;
        }
        case VK_CNODE: {
                int r = cont_begin(v, p->c, false);
                if (r < 0)
                        return r;
                struct cref cr;
                struct upper_ent e;
                r = cref_dir(p, &cr);
                if (r == 0)
                        r = upper_lookup(p->c->u, &cr.d, name, &e);
                if (r == 0)
                        cont_entry(v, p, name, &e, ret);
                else if (r == -ENOENT && cr.path)
                        ret->entry_timeout = CONT_TIMEOUT; /* a name appears only through us */
                cref_done(&cr);
                cont_end(p->c);
                return r;
        }
        }
        return -EIO;
}

void view_forget(view *v, uint64_t id, uint64_t nlookup)
{
        vnode *n = node_of(v, id);
        pthread_mutex_lock(&v->lock);
        if (!node_static(v, n)) {
                n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
                node_maybe_free(v, n);
        }
        pthread_mutex_unlock(&v->lock);
}

int view_getattr(view *v, uint64_t id, view_file *f, struct stat *ret, double *ret_timeout)
{
        vnode *n = node_of(v, id);
        if (f && n->kind == VK_CNODE && !f->lower) {
                /* also after unlink: the open file is what the kernel asks about */
                pthread_mutex_lock(&f->lock);
                int r = fstat(f->fd, ret);
                pthread_mutex_unlock(&f->lock);
                if (r < 0)
                        return -errno;
                upper_copy_fix_stat(f->copy, ret);
                ret->st_ino = n->ino;
                ret->st_dev = 0;
                *ret_timeout = CONT_TIMEOUT;
                return 0;
        }
        if (n->kind == VK_CNODE && n->detached) {
                upper_copy *copy = NULL;
                _cleanup_close_ int fd = node_fd(v, n, false, &copy);
                if (fd < 0)
                        return fd;
                int r = fstat(fd, ret) < 0 ? -errno : 0;
                upper_copy_fix_stat(copy, ret);
                upper_copy_put(copy);
                if (r < 0)
                        return r;
                ret->st_ino = n->ino;
                ret->st_dev = 0;
                *ret_timeout = CONT_TIMEOUT;
                return 0;
        }
        return node_stat(v, n, ret, ret_timeout);
}

/* ---- changes to container trees ---- */

static bool writable(vnode *n) { return n->kind == VK_CNODE; }

/* view_setattr's changes on an unlinked file that is still open (fd: its data). A copy under
 * way into it keeps the mtime given here. */
static int set_fd_attrs(int fd, upper_copy *copy, const struct stat *attr, unsigned valid, const struct upper_attr *a)
{
        if ((valid & VIEW_SET_SIZE) && ftruncate(fd, attr->st_size) < 0)
                return -errno;
        if ((valid & (VIEW_SET_UID | VIEW_SET_GID)) &&
            fchown(fd, valid & VIEW_SET_UID ? attr->st_uid : (uid_t)-1, valid & VIEW_SET_GID ? attr->st_gid : (gid_t)-1) < 0)
                return -errno;
        if ((valid & VIEW_SET_MODE) && fchmod(fd, attr->st_mode & 07777) < 0)
                return -errno;
        if (a->valid & (UPPER_SET_ATIME | UPPER_SET_MTIME)) {
                struct timespec omit = { 0, UTIME_OMIT };
                struct timespec ts[2] = { a->valid & UPPER_SET_ATIME ? a->atime : omit,
                                          a->valid & UPPER_SET_MTIME ? a->mtime : omit };
                upper_copy_lock(copy);
                int r = futimens(fd, ts) < 0 ? -errno : 0;
                upper_copy_unlock(copy, r == 0 ? &ts[1] : &omit);
                if (r < 0)
                        return r;
        }
        return 0;
}

int view_setattr(view *v, uint64_t id, view_file *f, const struct stat *attr, unsigned valid, struct stat *ret,
                 double *ret_timeout)
{
        vnode *n = node_of(v, id);
        if (!writable(n))
                return -EROFS;
        if ((valid & VIEW_SET_SIZE) && f && !f->lower && valid == VIEW_SET_SIZE) {
                /* ftruncate on an open, writable file: no path needed (it may be unlinked) */
                int r = upper_copy_wait(f->copy);
                if (r < 0)
                        return r;
                if (ftruncate(f->fd, attr->st_size) < 0)
                        return -errno;
                return view_getattr(v, id, f, ret, ret_timeout);
        }
        struct upper_attr a = { 0 };
        if (valid & VIEW_SET_MODE)
                a.valid |= UPPER_SET_MODE, a.mode = attr->st_mode;
        if (valid & VIEW_SET_UID)
                a.valid |= UPPER_SET_UID, a.uid = attr->st_uid;
        if (valid & VIEW_SET_GID)
                a.valid |= UPPER_SET_GID, a.gid = attr->st_gid;
        if (valid & VIEW_SET_SIZE)
                a.valid |= UPPER_SET_SIZE, a.size = attr->st_size;
        if (valid & (VIEW_SET_ATIME | VIEW_SET_ATIME_NOW)) {
                a.valid |= UPPER_SET_ATIME;
                a.atime = valid & VIEW_SET_ATIME_NOW ? (struct timespec){ 0, UTIME_NOW } : attr->st_atim;
        }
        if (valid & (VIEW_SET_MTIME | VIEW_SET_MTIME_NOW)) {
                a.valid |= UPPER_SET_MTIME;
                a.mtime = valid & VIEW_SET_MTIME_NOW ? (struct timespec){ 0, UTIME_NOW } : attr->st_mtim;
        }
        int r = valid & VIEW_SET_SIZE ? wait_copy(v, n) : 0;
        if (r == 0)
                r = cont_begin(v, n->c, true);
        if (r < 0)
                return r;
        struct cref cr;
        struct upper_ent e;
        r = cref_entry(n, &cr);
        if (r == 0)
                r = upper_setattr(n->c->u, cref_d(&cr), cr.name, &a, &e);
        cref_done(&cr);
        cont_end(n->c);
        if (r < 0) {
                /* an unlinked file that is still open: apply what we can to the open fd */
                upper_copy *copy = NULL;
                _cleanup_close_ int fd = r == -ENOENT && n->detached ? node_fd(v, n, valid & VIEW_SET_SIZE, &copy) : -1;
                int fr = fd >= 0 ? set_fd_attrs(fd, copy, attr, valid, &a) : 0;
                upper_copy_put(copy);
                if (fr < 0)
                        return fr;
                if (fd >= 0)
                        return view_getattr(v, id, f, ret, ret_timeout);
                return r;
        }
        cont_note(v, n, &e);
        *ret = e.st;
        ret->st_ino = n->ino;
        ret->st_dev = 0;
        *ret_timeout = CONT_TIMEOUT;
        return 0;
}

int view_readlink(view *v, uint64_t id, char **ret_target)
{
        vnode *n = node_of(v, id);
        switch (n->kind) {
        case VK_CLINK:
                *ret_target = xstrdup(n->c->id);
                return 0;
        case VK_IMAGE: {
                tree *t = node_tree(v, n);
                if (!t)
                        return -EIO;
                const char *target;
                size_t len;
                int r = tree_readlink(t, n->tino, &target, &len);
                if (r < 0)
                        return r;
                *ret_target = xstrndup(target, len);
                return 0;
        }
        case VK_CNODE: {
                int r = cont_begin(v, n->c, false);
                if (r < 0)
                        return r;
                struct cref cr;
                r = cref_entry(n, &cr);
                if (r == 0)
                        r = cref_d(&cr) ? upper_readlink(n->c->u, cref_d(&cr), cr.name, ret_target) : -EINVAL;
                cref_done(&cr);
                cont_end(n->c);
                return r;
        }
        default:
                return -EINVAL;
        }
}

/* Owner of a new entry: the caller, or the directory's group under a setgid directory. */
static void new_owner(const struct stat *pst, const struct view_ctx *c, mode_t *mode, uid_t *uid, gid_t *gid)
{
        *uid = c->uid;
        *gid = c->gid;
        if (pst->st_mode & S_ISGID) {
                *gid = pst->st_gid;
                if (S_ISDIR(*mode))
                        *mode |= S_ISGID;
        } else if (!S_ISDIR(*mode) && (*mode & S_ISGID) && c->uid != 0 && *gid != c->gid) {
                *mode &= ~(mode_t)S_ISGID;
        }
}

enum mk { MK_NOD, MK_DIR, MK_LNK, MK_REG };

static int make_entry(view *v, const struct view_ctx *ctx, uint64_t parent, const char *name, enum mk what,
                      mode_t mode, dev_t rdev, const char *target, int flags, struct view_entry *ret, int *ret_fd)
{
        vnode *p = node_of(v, parent);
        if (!writable(p))
                return -EROFS;
        if (!*name || strchr(name, '/') || strlen(name) > 255)
                return -EINVAL;
        int r = cont_begin(v, p->c, true);
        if (r < 0)
                return r;
        struct cref cr, pcr;
        struct upper_ent e;
        struct stat pst;
        r = cref_dir(p, &cr);
        if (r == 0)
                r = cref_entry(p, &pcr);
        else
                memset(&pcr, 0, sizeof(pcr));
        if (r == 0)
                r = upper_stat(p->c->u, cref_d(&pcr), pcr.name, &pst);
        if (r == 0) {
                uid_t uid;
                gid_t gid;
                mode_t m = what == MK_DIR ? (S_IFDIR | (mode & 07777)) : mode;
                new_owner(&pst, ctx, &m, &uid, &gid);
                switch (what) {
                case MK_NOD:
                        r = upper_mknod(p->c->u, &cr.d, name, m, rdev, uid, gid, &e);
                        break;
                case MK_DIR:
                        r = upper_mkdir(p->c->u, &cr.d, name, m, uid, gid, &e);
                        break;
                case MK_LNK:
                        r = upper_symlink(p->c->u, &cr.d, name, target, uid, gid, &e);
                        break;
                case MK_REG:
                        r = upper_create(p->c->u, &cr.d, name, m, uid, gid, flags, ret_fd, &e);
                        break;
                }
        }
        if (r == 0)
                cont_entry(v, p, name, &e, ret);
        cref_done(&cr);
        cref_done(&pcr);
        cont_end(p->c);
        return r;
}

int view_mknod(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
               struct view_entry *ret)
{
        return make_entry(v, c, parent, name, MK_NOD, mode, rdev, NULL, 0, ret, NULL);
}

int view_mkdir(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode,
               struct view_entry *ret)
{
        return make_entry(v, c, parent, name, MK_DIR, mode, 0, NULL, 0, ret, NULL);
}

int view_symlink(view *v, const struct view_ctx *c, uint64_t parent, const char *name, const char *target,
                 struct view_entry *ret)
{
        return make_entry(v, c, parent, name, MK_LNK, S_IFLNK | 0777, 0, target, 0, ret, NULL);
}

int view_link(view *v, uint64_t id, uint64_t newparent, const char *newname, struct view_entry *ret)
{
        vnode *n = node_of(v, id), *p = node_of(v, newparent);
        if (!writable(p))
                return -EROFS;
        if (!writable(n))
                return n->kind == VK_IMAGE ? -EXDEV : -EPERM;
        if (n->c != p->c)
                return -EXDEV;
        int r = cont_begin(v, p->c, true);
        if (r < 0)
                return r;
        struct cref sr, dr;
        struct upper_ent e;
        memset(&dr, 0, sizeof(dr));
        r = cref_entry(n, &sr);
        if (r == 0)
                r = cref_dir(p, &dr);
        if (r == 0)
                r = sr.root ? -EPERM : upper_link(p->c->u, &sr.d, sr.name, &dr.d, newname, &e);
        if (r == 0) {
                cont_note(v, n, &e);
                cont_entry(v, p, newname, &e, ret);
        }
        cref_done(&sr);
        cref_done(&dr);
        cont_end(p->c);
        return r;
}

/* An entry is gone from its name. v->lock held. */
static void detach_name(view *v, vnode *parent, const char *name)
{
        struct cname *cn = cname_find(v, parent, name);
        if (cn)
                cname_remove(v, cn);
}

static int remove_entry(view *v, uint64_t parent, const char *name, bool dir)
{
        vnode *p = node_of(v, parent);
        if (!writable(p))
                return -EROFS;
        int r = cont_begin(v, p->c, true);
        if (r < 0)
                return r;
        struct cref cr;
        struct upper_key k = { 0 };
        r = cref_dir(p, &cr);
        if (r == 0) {
                upper_key_of(p->c->u, &cr.d, name, &k);
                r = dir ? upper_rmdir(p->c->u, &cr.d, name) : upper_unlink(p->c->u, &cr.d, name);
        }
        if (r == 0) {
                pthread_mutex_lock(&v->lock);
                detach_name(v, p, name);
                imap_forget(v, p->c->slot, &k);
                pthread_mutex_unlock(&v->lock);
        }
        cref_done(&cr);
        cont_end(p->c);
        return r;
}

int view_unlink(view *v, uint64_t parent, const char *name) { return remove_entry(v, parent, name, false); }
int view_rmdir(view *v, uint64_t parent, const char *name) { return remove_entry(v, parent, name, true); }

/* After a rename (which may copy an entry up without data): the entry keeps its number. */
static void note_name(view *v, vnode *n, const struct upper_dir *d, const char *name)
{
        struct upper_ent e;
        if (n && upper_lookup(n->c->u, d, name, &e) == 0)
                cont_note(v, n, &e);
}

int view_rename(view *v, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
                unsigned flags)
{
        vnode *p = node_of(v, parent), *np = node_of(v, newparent);
        if (!writable(p) || !writable(np))
                return -EROFS;
        if (p->c != np->c)
                return -EXDEV;
        if (!*newname || strchr(newname, '/') || strlen(newname) > 255)
                return -EINVAL;
        int r = cont_begin(v, p->c, true);
        if (r < 0)
                return r;
        struct cref sr, dr;
        struct upper_key k = { 0 };
        memset(&dr, 0, sizeof(dr));
        r = cref_dir(p, &sr);
        if (r == 0)
                r = cref_dir(np, &dr);
        if (r == 0) {
                if (!(flags & RENAME_EXCHANGE))
                        upper_key_of(p->c->u, &dr.d, newname, &k); /* the file it replaces */
                r = upper_rename(p->c->u, &sr.d, name, &dr.d, newname, flags);
        }
        if (r == 0) {
                pthread_mutex_lock(&v->lock);
                struct cname *s = cname_find(v, p, name);
                struct cname *t = cname_find(v, np, newname);
                vnode *sn = s ? s->node : NULL, *tn = t ? t->node : NULL;
                if (s && t && sn == tn) {
                        /* two names of one inode: rename(2) does nothing */
                } else if (flags & RENAME_EXCHANGE) {
                        if (s)
                                cname_unhash(v, s);
                        if (t)
                                cname_unhash(v, t);
                        if (s)
                                cname_move(v, s, np, newname);
                        if (t)
                                cname_move(v, t, p, name);
                } else {
                        if (t)
                                cname_remove(v, t);
                        if (s)
                                cname_move(v, s, np, newname);
                        /* (a target with one link is not another name of the source) */
                        imap_forget(v, p->c->slot, &k);
                }
                node_maybe_free(v, p);
                pthread_mutex_unlock(&v->lock);
                note_name(v, sn, &dr.d, newname);
                if (flags & RENAME_EXCHANGE)
                        note_name(v, tn, &sr.d, name);
        }
        cref_done(&sr);
        cref_done(&dr);
        cont_end(p->c);
        return r;
}

/* ---- files ---- */

static view_file *file_new(view *v, vnode *n, int fd, bool lower, bool image)
{
        view_file *f = xcalloc(1, sizeof(*f));
        f->v = v;
        f->n = n;
        f->fd = fd;
        f->old_fd = -1;
        f->lower = lower;
        f->image = image;
        pthread_mutex_init(&f->lock, NULL);
        if (n->kind == VK_CNODE) {
                pthread_mutex_lock(&v->lock);
                f->next = n->files;
                if (n->files)
                        n->files->prev = f;
                n->files = f;
                /* the kernel reads only once the open is answered: a store of the node's data
                 * ends before (store_ahead starts none on a node with open files) */
                while (n->storing)
                        pthread_cond_wait(&v->store_cond, &v->lock);
                pthread_mutex_unlock(&v->lock);
        }
        return f;
}

/* Wait, without the container's lock, for a copy under way into n's upper file (upper_copy.h):
 * for a truncation, which would wait for it holding the lock. */
static int wait_copy(view *v, vnode *n)
{
        int r = cont_begin(v, n->c, false);
        if (r < 0)
                return r;
        struct cref cr;
        upper_copy *copy = NULL;
        if (cref_entry(n, &cr) == 0)
                copy = upper_copy_at(n->c->u, cref_d(&cr), cr.name);
        cref_done(&cr);
        cont_end(n->c);
        r = upper_copy_wait(copy);
        upper_copy_put(copy);
        return r;
}

/* An fd of the node's data, for operations on an unlinked inode that the kernel sends without
 * a file handle (fchmod, fchown, futimens, fstat of an unlinked file): a dup of an open file's
 * upper fd, or -ENOENT. wait: for a change of the data (a truncation), after a copy under way
 * into it. */
static int node_fd(view *v, vnode *n, bool wait, upper_copy **ret_copy)
{
        int fd = -ENOENT;
        upper_copy *copy = NULL;
        pthread_mutex_lock(&v->lock);
        for (view_file *f = n->files; f; f = f->next)
                if (!f->lower) {
                        fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
                        if (fd < 0)
                                fd = -errno;
                        copy = upper_copy_ref(f->copy);
                        break;
                }
        pthread_mutex_unlock(&v->lock);
        int r = wait ? upper_copy_wait(copy) : 0;
        if (r < 0 && fd >= 0) {
                close(fd);
                fd = r;
        }
        if (ret_copy && fd >= 0)
                *ret_copy = copy;
        else
                upper_copy_put(copy);
        return fd;
}

int view_open(view *v, uint64_t id, int flags, view_file **ret, bool *ret_keep_cache)
{
        vnode *n = node_of(v, id);
        int acc = flags & O_ACCMODE;
        switch (n->kind) {
        case VK_IMAGE: {
                if (acc != O_RDONLY || (flags & O_TRUNC))
                        return -EROFS;
                tree *t = node_tree(v, n);
                const struct tree_inode *i = t ? tree_get(t, n->tino) : NULL;
                if (!i)
                        return -EIO;
                if (S_ISDIR(i->mode))
                        return -EISDIR;
                if (!S_ISREG(i->mode))
                        return -EINVAL;
                int fd;
                if (i->size == 0)
                        fd = memfd_create("ctfs-empty", MFD_CLOEXEC);
                else
                        fd = store_object_open(v->s, i->digest);
                if (fd < 0)
                        return fd == -1 ? -errno : fd == -ENOENT ? -EIO : fd;
                if (i->size > 0)
                        prefetch_opened(v->pf, n->img, t, n->tino, fd, false);
                *ret = file_new(v, n, fd, true, true);
                *ret_keep_cache = true;
                return 0;
        }
        case VK_CNODE: {
                bool w = acc != O_RDONLY || (flags & O_TRUNC);
                int r = flags & O_TRUNC ? wait_copy(v, n) : 0;
                if (r == 0)
                        r = cont_begin(v, n->c, w);
                if (r < 0)
                        return r;
                uint64_t gen = upper_copyup_gen(n->c->u);
                struct cref cr;
                int fd = -1;
                bool lower = false;
                upper_copy *copy = NULL;
                r = cref_entry(n, &cr);
                if (r == 0)
                        r = upper_open_file(n->c->u, cref_d(&cr), cr.name, flags, &fd, &lower);
                if (r == 0 && !lower)
                        copy = upper_copy_of(n->c->u, fd);
                if (r == 0 && w) {
                        struct upper_ent e;
                        if (upper_lookup(n->c->u, cref_d(&cr), cr.name, &e) == 0)
                                cont_note(v, n, &e);
                }
                cref_done(&cr);
                /* a file still in the image (its number is its tree inode's): read ahead as in
                 * the image's own view, one reader per container */
                tree_ino tino;
                if (r == 0 && lower && n->c->t && clower_tino(n->c, n->ino, &tino))
                        prefetch_opened(v->pf, cont_key(n->c), n->c->t, tino, fd, v->store != NULL);
                cont_end(n->c);
                if (r < 0)
                        return r;
                *ret = file_new(v, n, fd, lower, false);
                (*ret)->gen = gen;
                (*ret)->copy = copy;
                /* every change reaches the file through the kernel, which keeps its cache in
                 * step (writes, O_TRUNC, truncate, fallocate); a copy-up copies the data the
                 * cache holds; all names of a hardlink set are one node, one cache */
                *ret_keep_cache = true;
                return 0;
        }
        case VK_CLINK:
                return -ELOOP;
        default:
                return acc == O_RDONLY ? -EISDIR : -EROFS;
        }
}

int view_create(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode, int flags,
                struct view_entry *ret, view_file **ret_file)
{
        int fd = -1;
        int r = make_entry(v, c, parent, name, MK_REG, S_IFREG | (mode & 07777), 0, NULL, flags, ret, &fd);
        if (r == -EEXIST && !(flags & O_EXCL)) {
                /* the name appeared since the kernel looked: open it, as open(2) would */
                r = view_lookup(v, parent, name, ret);
                if (r < 0)
                        return r;
                bool keep;
                r = view_open(v, ret->id, flags & ~(O_CREAT | O_EXCL), ret_file, &keep);
                if (r < 0)
                        view_forget(v, ret->id, 1);
                return r;
        }
        if (r < 0)
                return r;
        *ret_file = file_new(v, node_of(v, ret->id), fd, false, false);
        return 0;
}

/* A reader that opened a lower file before a copy-up must see the copy's data from then on. */
static void file_refresh(view *v, view_file *f)
{
        vnode *n = f->n;
        struct vcont *c = n->c;
        if (cont_begin(v, c, false) < 0)
                return;
        uint64_t gen = upper_copyup_gen(c->u);
        if (gen != f->gen) {
                struct cref cr;
                int fd = -1;
                bool lower = true;
                if (cref_entry(n, &cr) == 0 &&
                    upper_open_file(c->u, cref_d(&cr), cr.name, O_RDONLY, &fd, &lower) == 0) {
                        if (lower)
                                close(fd);
                        else {
                                if (f->old_fd >= 0)
                                        close(f->old_fd);
                                f->old_fd = f->fd;
                                f->fd = fd;
                                f->lower = false;
                                f->copy = upper_copy_of(c->u, fd);
                        }
                }
                cref_done(&cr);
                f->gen = gen;
        }
        cont_end(c);
}

int view_read_fd(view *v, view_file *f, off_t off, size_t size, int *ret_fd)
{
        pthread_mutex_lock(&f->lock);
        if (f->lower && !f->image)
                file_refresh(v, f);
        *ret_fd = f->fd;
        int r = 0;
        off_t end;
        int obj;
        if (upper_copy_reading(f->copy, off, &end, &obj)) {
                /* the object holds what the copy has yet to write */
                if (obj < 0)
                        r = -EIO; /* a copy a crash interrupted, whose object is gone */
                else if (off + (off_t)size <= end)
                        *ret_fd = obj;
                else
                        r = 1;
        } else if (off + (off_t)size > end) {
                r = 1; /* then from the object */
        }
        pthread_mutex_unlock(&f->lock);
        return r;
}

ssize_t view_read(view *v, view_file *f, void *buf, size_t size, off_t off)
{
        int fd;
        int r = view_read_fd(v, f, off, size, &fd);
        if (r < 0)
                return r;
        if (r == 0) {
                ssize_t n = pread(fd, buf, size, off);
                return n < 0 ? -errno : n;
        }
        /* across parts of a copy under way: each from the object or the upper file */
        size_t done = 0;
        while (done < size) {
                off_t pos = off + (off_t)done, end;
                int obj;
                bool from_obj = upper_copy_reading(f->copy, pos, &end, &obj);
                if (from_obj && obj < 0)
                        return done ? (ssize_t)done : -EIO;
                size_t want = end - pos < (off_t)(size - done) ? (size_t)(end - pos) : size - done;
                ssize_t n = util_pread_all(from_obj ? obj : f->fd, (char *)buf + done, want, pos);
                if (n < 0)
                        return done ? (ssize_t)done : n;
                done += (size_t)n;
                if ((size_t)n < want)
                        break; /* the end of the file */
        }
        return (ssize_t)done;
}

int view_write_begin(view_file *f, off_t off, size_t size)
{
        if (f->lower)
                return -EBADF;
        /* a change of what a copy under way writes: once its chunks are copied (and opened) */
        int r = upper_copy_open(f->copy, off, (off_t)size);
        if (r < 0)
                return r;
        upper_copy_lock(f->copy);
        return f->fd;
}

void view_write_end(view_file *f) { upper_copy_unlock(f->copy, NULL); }

ssize_t view_write(view *v, view_file *f, const void *buf, size_t size, off_t off)
{
        (void)v;
        int fd = view_write_begin(f, off, size);
        if (fd < 0)
                return fd;
        ssize_t n = pwrite(fd, buf, size, off);
        int e = errno;
        view_write_end(f);
        return n < 0 ? -e : n;
}

int view_fsync(view_file *f, bool datasync)
{
        if (f->lower)
                return 0;
        /* (not after a copy under way: the container's writes are in the upper file, in chunks
         * whose copy is on disk, and a crash's recovery copies only the others) */
        int r = datasync ? fdatasync(f->fd) : fsync(f->fd);
        return r < 0 ? -errno : 0;
}

int view_fallocate(view_file *f, int mode, off_t off, off_t len)
{
        if (f->lower)
                return f->image ? -EROFS : -EBADF;
        int r = upper_copy_wait(f->copy);
        if (r < 0)
                return r;
        return fallocate(f->fd, mode, off, len) < 0 ? -errno : 0;
}

off_t view_lseek(view_file *f, off_t off, int whence)
{
        int w = upper_copy_wait(f->copy); /* holes and data as they will be */
        if (w < 0)
                return w;
        off_t r = lseek(f->fd, off, whence);
        return r < 0 ? -errno : r;
}

bool view_file_current(view *v, view_file *f)
{
        pthread_mutex_lock(&f->lock);
        bool lower = f->lower && !f->image;
        uint64_t gen = f->gen;
        pthread_mutex_unlock(&f->lock);
        if (!lower || cont_begin(v, f->n->c, false) < 0)
                return false;
        bool current = upper_copyup_gen(f->n->c->u) == gen;
        cont_end(f->n->c);
        return current;
}

int view_file_data(view_file *f, enum view_data *ret_kind)
{
        *ret_kind = f->image                      ? VIEW_DATA_IMAGE
                    : f->lower                    ? VIEW_DATA_LOWER
                    : upper_copy_active(f->copy) ? VIEW_DATA_COPYING
                                                  : VIEW_DATA_UPPER;
        return f->fd;
}

void view_release(view_file *f)
{
        if (!f)
                return;
        if (f->n->kind == VK_CNODE) {
                pthread_mutex_lock(&f->v->lock);
                if (f->prev)
                        f->prev->next = f->next;
                else
                        f->n->files = f->next;
                if (f->next)
                        f->next->prev = f->prev;
                pthread_mutex_unlock(&f->v->lock);
        }
        close(f->fd);
        if (f->old_fd >= 0)
                close(f->old_fd);
        upper_copy_put(f->copy);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

/* ---- directories ---- */

int view_opendir(view *v, uint64_t id, view_dir **ret)
{
        vnode *n = node_of(v, id);
        if (n->kind == VK_CLINK)
                return -ENOTDIR;
        if (n->kind == VK_IMAGE) {
                struct stat st;
                int r = image_node_stat(v, n, &st);
                if (r < 0)
                        return r;
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        view_dir *d = xcalloc(1, sizeof(*d));
        d->v = v;
        d->n = n;
        *ret = d;
        return 0;
}

uint64_t view_dir_id(view_dir *d) { return id_of(d->v, d->n); }

bool view_dir_cacheable(view_dir *d) { return d->n->kind == VK_IMAGE || d->n->kind == VK_CNODE || d->n->kind == VK_ROOT; }

/* Cookies of listed entries: 0 starts, 1 and 2 follow "." and ".."; a name's is a keyed hash
 * of it, in 3 .. 2^62-1. */
#define COOKIE_FIRST 3

static uint64_t name_cookie(const view *v, const char *name, size_t len)
{
        uint64_t c = util_siphash(v->cookie_key, name, len) >> 2;
        return c < COOKIE_FIRST ? c + COOKIE_FIRST : c;
}

/* In a container directory over an image directory, the names the image has take their place
 * in the image's listing as cookie (fixed for the container's life: the tree never changes,
 * and a name keeps it through copy-up, deletion and re-creation), the others a hash above all
 * of these. So a container lists its image's entries in the image's order, which is inode
 * order (prefetch.h: a reader going through them is read ahead) and the order of the image's
 * own view. */
#define COOKIE_UPPER (1ULL << 61)

/* (lower: the image's directory, or NULL; container lock held, which keeps c->t mapped) */
static uint64_t cont_cookie(const view *v, const tree *t, const tree_ino *lower, const char *name)
{
        size_t len = strlen(name);
        uint32_t idx;
        if (t && lower && tree_lookup_at(t, *lower, name, len, NULL, &idx) == 0)
                return COOKIE_FIRST + idx;
        return COOKIE_UPPER + (name_cookie(v, name, len) >> 3);
}

/* cookie 0: the name's hash (listing_build) */
static void dir_add_at(struct listing *l, const char *name, size_t len, uint64_t ino, mode_t type, uint64_t cookie)
{
        l->e = xrealloc(l->e, (l->n_e + 1) * sizeof(*l->e));
        l->e[l->n_e++] = (struct dent){ xstrndup(name, len), ino, type, cookie };
}

static void dir_add(struct listing *l, const char *name, size_t len, uint64_t ino, mode_t type)
{
        dir_add_at(l, name, len, ino, type, 0);
}

static int dent_cmp(const void *a, const void *b)
{
        const struct dent *x = a, *y = b;
        if (x->cookie != y->cookie)
                return x->cookie < y->cookie ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* Snapshot a directory's entries (all kinds but image dirs, which are read in place). */
static int dir_build(view *v, vnode *n, struct listing *d)
{
        switch (n->kind) {
        case VK_ROOT:
                dir_add(d, "images", 6, v->images.ino, S_IFDIR);
                dir_add(d, "containers", 10, v->containers.ino, S_IFDIR);
                return 0;
        case VK_IMAGES:
        case VK_IPREFIX: {
                const char *prefix = n->kind == VK_IMAGES ? "" : n->name;
                _cleanup_free_ char *dirp = *prefix ? xasprintf("%s/", prefix) : xstrdup("");
                size_t dl = strlen(dirp);
                pthread_mutex_lock(&v->lock);
                refs_refresh(v);
                const char *last = NULL;
                size_t last_len = 0;
                for (size_t i = 0; i < v->n_refs; i++) {
                        const char *nm = v->refs[i].name;
                        if (strncmp(nm, dirp, dl) != 0)
                                continue;
                        const char *rest = nm + dl;
                        const char *slash = strchr(rest, '/');
                        size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
                        if (last && last_len == len && memcmp(last, rest, len) == 0)
                                continue;
                        last = rest;
                        last_len = len;
                        if (slash) {
                                _cleanup_free_ char *full = xstrndup(nm, dl + len);
                                dir_add(d, rest, len, vname_ino(v, VK_IPREFIX, full), S_IFDIR);
                        } else {
                                dir_add(d, rest, len, INO_IMAGE | ((uint64_t)v->refs[i].img->slot << 32) | 1ULL,
                                        S_IFDIR);
                        }
                }
                pthread_mutex_unlock(&v->lock);
                return 0;
        }
        case VK_CONTAINERS:
                pthread_mutex_lock(&v->lock);
                conts_refresh(v, true);
                for (struct vcont *c = v->conts; c; c = c->next) {
                        if (atomic_load(&c->gone))
                                continue;
                        dir_add(d, c->id, strlen(c->id), ino_clower(c, TREE_ROOT), S_IFDIR);
                        if (c->name)
                                dir_add(d, c->name, strlen(c->name), c->clink_ino, S_IFLNK);
                }
                pthread_mutex_unlock(&v->lock);
                return 0;
        case VK_CNODE: {
                int r = cont_begin(v, n->c, false);
                if (r < 0)
                        return r;
                d->current = true;
                d->wgen = atomic_load(&n->c->wgen);
                struct cref cr;
                struct upper_dirent *ents = NULL;
                size_t cnt = 0;
                r = cref_dir(n, &cr);
                if (r == 0)
                        r = upper_readdir(n->c->u, &cr.d, &ents, &cnt);
                pthread_mutex_lock(&v->lock);
                tree_ino lower = n->dlower;
                bool merge = n->dmerge;
                pthread_mutex_unlock(&v->lock);
                for (size_t i = 0; r == 0 && i < cnt; i++) {
                        struct upper_ent e;
                        uint64_t ino = 0;
                        mode_t type = (mode_t)DTTOIF(ents[i].type);
                        if (upper_lookup(n->c->u, &cr.d, ents[i].name, &e) == 0) {
                                pthread_mutex_lock(&v->lock);
                                struct cname *x = cname_find(v, n, ents[i].name);
                                ino = x ? x->node->ino : cont_ino(v, n->c, &e);
                                pthread_mutex_unlock(&v->lock);
                                type = e.st.st_mode & S_IFMT;
                        } else {
                                continue;
                        }
                        dir_add_at(d, ents[i].name, strlen(ents[i].name), ino, type,
                                   cont_cookie(v, n->c->t, merge ? &lower : NULL, ents[i].name));
                }
                upper_dirents_free(ents, cnt);
                cref_done(&cr);
                cont_end(n->c);
                return r;
        }
        default:
                return -ENOTDIR;
        }
}

/* A new snapshot of n, sorted by cookie, or a negative errno. */
static int listing_build(view *v, vnode *n, struct listing **ret)
{
        struct listing *l = xcalloc(1, sizeof(*l));
        int r = dir_build(v, n, l);
        if (r < 0) {
                listing_free(l);
                return r;
        }
        for (size_t i = 0; i < l->n_e; i++)
                if (!l->e[i].cookie)
                        l->e[i].cookie = name_cookie(v, l->e[i].name, strlen(l->e[i].name));
        if (l->n_e > 1)
                qsort(l->e, l->n_e, sizeof(*l->e), dent_cmp);
        *ret = l;
        return 0;
}

/* The node's snapshot: a new one from the start (fresh) unless the one kept is of a container
 * directory that no operation changed since (readers that start together share one), else the
 * one kept, else a new one. Returns 0 with v->lock held, or a negative errno. */
static int listing_get(view *v, vnode *n, bool fresh, struct listing **ret)
{
        pthread_mutex_lock(&v->lock);
        struct listing *l = n->listing;
        if (l && (!fresh || (l->current && n->kind == VK_CNODE && !atomic_load(&n->c->gone) &&
                             l->wgen == atomic_load(&n->c->wgen)))) {
                *ret = l;
                return 0;
        }
        pthread_mutex_unlock(&v->lock);
        int r = listing_build(v, n, &l);
        if (r < 0)
                return r;
        pthread_mutex_lock(&v->lock);
        listing_free(n->listing);
        n->listing = l;
        *ret = l;
        return 0;
}

void view_readdir_end(view *v, view_dir *d)
{
        pthread_mutex_lock(&v->lock);
        listings_free(d->n);
        pthread_mutex_unlock(&v->lock);
}

/* An entry's name, copied into the cursor's buffer with a NUL: valid until the next entry. */
static const char *dir_name(view_dir *d, const char *name, size_t len)
{
        if (len + 1 > d->name_size) {
                d->name_size = len + 1 > 256 ? len + 1 : 256;
                d->name = xrealloc(d->name, d->name_size);
        }
        memcpy(d->name, name, len);
        d->name[len] = '\0';
        return d->name;
}

int view_readdir(view *v, view_dir *d, off_t off, const char **ret_name, struct stat *ret_st, off_t *ret_next)
{
        vnode *n = d->n;
        memset(ret_st, 0, sizeof(*ret_st));
        if (off < 0)
                return -EINVAL;
        if (n->kind == VK_IMAGE) {
                if (off == 0 || off == 1) {
                        *ret_name = off == 0 ? "." : "..";
                        ret_st->st_mode = S_IFDIR;
                        ret_st->st_ino = off == 0 ? n->ino : 1;
                        *ret_next = off + 1;
                        return 0;
                }
                size_t idx = (size_t)off - 2;
                tree *t = node_tree(v, n);
                if (!t)
                        return -EIO;
                const char *nm;
                size_t len;
                tree_ino ino;
                int r = idx > UINT32_MAX ? -ENOENT : tree_dir_entry(t, n->tino, (uint32_t)idx, &nm, &len, &ino);
                if (r < 0)
                        return -ENOENT;
                const struct tree_inode *i = tree_get(t, ino);
                if (!i)
                        return -EIO;
                /* names in the tree are not NUL-terminated */
                *ret_name = dir_name(d, nm, len);
                ret_st->st_ino = INO_IMAGE | ((uint64_t)n->img->slot << 32) | (ino + 1ULL);
                ret_st->st_mode = i->mode & S_IFMT;
                *ret_next = off + 1;
                return 0;
        }
        /*
         * Other directories are listed from a snapshot, kept on the node between requests (the
         * kernel lists without a handle of ours) and made anew at position 0. Positions are
         * cookies (keyed hashes of the names; in a container, an image name's place in the
         * image's listing: cont_cookie), and the snapshot is in cookie order: a reader goes
         * on after the last cookie it got, in whatever snapshot is there, or a new one, so that
         * every entry that did not change meanwhile comes exactly once, however the readers
         * of a directory interleave (a name that comes or goes meanwhile may or may not show,
         * as POSIX allows). The key is random per view: a container cannot choose names whose
         * cookies collide (and an image's places are distinct). A gone directory (its container
         * removed) fails at position 0 rather than list "." and "..".
         */
        if (off == 0 || off == 1) {
                if (off == 0) {
                        struct listing *l;
                        int r = listing_get(v, n, true, &l);
                        if (r < 0)
                                return r;
                        pthread_mutex_unlock(&v->lock);
                }
                *ret_name = off == 0 ? "." : "..";
                ret_st->st_mode = S_IFDIR;
                ret_st->st_ino = off == 0 ? (n == &v->root ? 1 : n->ino) : 1;
                *ret_next = off + 1;
                return 0;
        }
        struct listing *l;
        int r = listing_get(v, n, false, &l);
        if (r < 0)
                return r;
        /* the first entry after cookie off */
        size_t lo = 0, hi = l->n_e;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (l->e[mid].cookie <= (uint64_t)off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo >= l->n_e) {
                pthread_mutex_unlock(&v->lock);
                return -ENOENT;
        }
        /* a copy: another reader may replace the snapshot once the lock is let go */
        const struct dent *e = &l->e[lo];
        *ret_name = dir_name(d, e->name, strlen(e->name));
        ret_st->st_ino = e->ino;
        ret_st->st_mode = e->type;
        *ret_next = (off_t)e->cookie;
        pthread_mutex_unlock(&v->lock);
        return 0;
}

void view_releasedir(view_dir *d)
{
        if (!d)
                return;
        free(d->name);
        free(d);
}

/* ---- xattrs, statfs ---- */

ssize_t view_getxattr(view *v, uint64_t id, const char *name, void *buf, size_t size)
{
        vnode *n = node_of(v, id);
        if (n->kind == VK_IMAGE) {
                tree *t = node_tree(v, n);
                if (!t)
                        return -EIO;
                return tree_getxattr_buf(t, n->tino, name, buf, size);
        }
        if (n->kind != VK_CNODE)
                return -ENODATA;
        int r = cont_begin(v, n->c, false);
        if (r < 0)
                return r;
        struct cref cr;
        ssize_t res = cref_entry(n, &cr);
        if (res == 0)
                res = upper_getxattr(n->c->u, cref_d(&cr), cr.name, name, buf, size);
        cref_done(&cr);
        cont_end(n->c);
        return res;
}

ssize_t view_listxattr(view *v, uint64_t id, char *buf, size_t size)
{
        vnode *n = node_of(v, id);
        if (n->kind == VK_IMAGE) {
                tree *t = node_tree(v, n);
                if (!t)
                        return -EIO;
                const struct tree_inode *i = tree_get(t, n->tino);
                size_t out = 0;
                for (uint32_t k = 0; i && k < i->xattr_count; k++) {
                        const char *xn;
                        size_t xl, vl;
                        const void *val;
                        if (tree_xattr_at(t, n->tino, k, &xn, &xl, &val, &vl) < 0)
                                return -EIO;
                        if (size) {
                                if (out + xl + 1 > size)
                                        return -ERANGE;
                                memcpy(buf + out, xn, xl);
                                buf[out + xl] = '\0';
                        }
                        out += xl + 1;
                }
                return (ssize_t)out;
        }
        if (n->kind != VK_CNODE)
                return 0;
        int r = cont_begin(v, n->c, false);
        if (r < 0)
                return r;
        struct cref cr;
        ssize_t res = cref_entry(n, &cr);
        if (res == 0)
                res = upper_listxattr(n->c->u, cref_d(&cr), cr.name, buf, size);
        cref_done(&cr);
        cont_end(n->c);
        return res;
}

static int xattr_change(view *v, uint64_t id, const char *name, const void *value, size_t size, int flags,
                        bool remove)
{
        vnode *n = node_of(v, id);
        if (n->kind != VK_CNODE)
                return -EROFS;
        /* file capabilities set on a file being copied wait for the copy: not holding the lock */
        int r = !remove && strcmp(name, "security.capability") == 0 ? wait_copy(v, n) : 0;
        if (r == 0)
                r = cont_begin(v, n->c, true);
        if (r < 0)
                return r;
        struct cref cr;
        r = cref_entry(n, &cr);
        if (r == 0)
                r = remove ? upper_removexattr(n->c->u, cref_d(&cr), cr.name, name)
                           : upper_setxattr(n->c->u, cref_d(&cr), cr.name, name, value, size, flags);
        if (r == 0) {
                struct upper_ent e;
                if (upper_lookup(n->c->u, cref_d(&cr), cr.name, &e) == 0)
                        cont_note(v, n, &e);
        }
        cref_done(&cr);
        cont_end(n->c);
        return r;
}

int view_setxattr(view *v, uint64_t id, const char *name, const void *value, size_t size, int flags)
{
        return xattr_change(v, id, name, value, size, flags, false);
}

int view_kill_priv(view *v, uint64_t id)
{
        vnode *n = node_of(v, id);
        if (n->kind != VK_CNODE)
                return 0;
        struct stat st;
        double t;
        int r = view_getattr(v, id, NULL, &st, &t);
        if (r < 0 || !S_ISREG(st.st_mode))
                return r < 0 ? r : 0;
        /* what the kernel's should_remove_suid() kills */
        mode_t kill = st.st_mode & S_ISUID;
        if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
                kill |= S_ISGID;
        bool changed = false;
        if (kill) {
                struct stat a = { .st_mode = st.st_mode & ~kill };
                struct stat out;
                r = view_setattr(v, id, NULL, &a, VIEW_SET_MODE, &out, &t);
                if (r < 0)
                        return r;
                changed = true;
        }
        if (view_getxattr(v, id, "security.capability", NULL, 0) >= 0) {
                r = view_removexattr(v, id, "security.capability");
                if (r < 0 && r != -ENODATA)
                        return r;
                changed = r == 0;
        }
        return changed;
}

int view_removexattr(view *v, uint64_t id, const char *name)
{
        return xattr_change(v, id, name, NULL, 0, 0, true);
}

int view_statfs(view *v, uint64_t id, struct statvfs *ret)
{
        vnode *n = node_of(v, id);
        if (n->kind == VK_CNODE) {
                int r = cont_begin(v, n->c, false);
                if (r < 0)
                        return r;
                r = upper_statfs(n->c->u, ret);
                cont_end(n->c);
                return r;
        }
        return fstatvfs(store_dirfd(v->s), ret) < 0 ? -errno : 0;
}

/* ---- store changes ---- */

struct gone_name {
        uint64_t parent;
        char *name;
};

static void gone_add(struct gone_name **g, size_t *n, uint64_t parent, const char *name, size_t len)
{
        *g = xrealloc(*g, (*n + 1) * sizeof(**g));
        (*g)[(*n)++] = (struct gone_name){ parent, xstrndup(name, len) };
}

static bool ref_named(view *v, const char *name)
{
        struct vref key = { .name = (char *)name };
        return v->n_refs && bsearch(&key, v->refs, v->n_refs, sizeof(*v->refs), vref_cmp);
}

void view_refresh(view *v, void (*gone)(void *ud, uint64_t parent, const char *name), void *ud)
{
        struct gone_name *g = NULL;
        size_t n_g = 0;
        pthread_mutex_lock(&v->lock);
        /* Compare with what the last refresh saw, not with v->refs: a lookup or a listing may
         * have re-read the store since, and the kernel may still cache a name that went then. */
        refs_refresh(v);
        for (size_t i = 0; i < v->n_told_refs; i++) {
                const char *old = v->told_refs[i];
                if (ref_named(v, old))
                        continue;
                /* every component: a prefix dir may be gone with it (dropping a live one only
                 * costs the kernel a lookup) */
                vnode *parent = &v->images;
                for (const char *c = old; parent;) {
                        const char *e = strchrnul(c, '/');
                        gone_add(&g, &n_g, id_of(v, parent), c, (size_t)(e - c));
                        if (!*e)
                                break;
                        _cleanup_free_ char *prefix = xstrndup(old, (size_t)(e - old));
                        parent = table_find(v, VK_IPREFIX, NULL, 0, prefix);
                        c = e + 1;
                }
        }
        for (size_t i = 0; i < v->n_told_refs; i++)
                free(v->told_refs[i]);
        free(v->told_refs);
        v->told_refs = xcalloc(v->n_refs + 1, sizeof(*v->told_refs));
        for (size_t i = 0; i < v->n_refs; i++)
                v->told_refs[i] = xstrdup(v->refs[i].name);
        v->n_told_refs = v->n_refs;
        conts_refresh(v, true);
        for (struct vcont *c = v->conts; c; c = c->next) {
                if (!atomic_load(&c->gone) || c->gone_told)
                        continue;
                c->gone_told = true;
                gone_add(&g, &n_g, id_of(v, &v->containers), c->id, strlen(c->id));
                if (c->name)
                        gone_add(&g, &n_g, id_of(v, &v->containers), c->name, strlen(c->name));
        }
        /* Containers made while mounted are opened now, so that the first lookup of one (ctfs
         * run, or a user's cd right after ctfs create) does not wait for it; those there at
         * mount time are opened when first used. Each held meanwhile (cont_maybe_free). */
        struct vcont **fresh = NULL;
        size_t n_fresh = 0;
        for (struct vcont *c = v->conts; c; c = c->next)
                if (c->fresh && !atomic_load(&c->gone)) {
                        c->fresh = false;
                        c->holds++;
                        fresh = xrealloc(fresh, (n_fresh + 1) * sizeof(*fresh));
                        fresh[n_fresh++] = c;
                }
        pthread_mutex_unlock(&v->lock);
        for (size_t i = 0; i < n_g; i++) {
                if (gone)
                        gone(ud, g[i].parent, g[i].name);
                free(g[i].name);
        }
        free(g);
        dead_free(v);
        for (size_t i = 0; i < n_fresh; i++)
                if (cont_begin(v, fresh[i], false) == 0)
                        cont_end(fresh[i]);
        pthread_mutex_lock(&v->lock);
        for (size_t i = 0; i < n_fresh; i++) {
                fresh[i]->holds--;
                cont_maybe_free(v, fresh[i]);
        }
        pthread_mutex_unlock(&v->lock);
        free(fresh);
}

/* ---- setup ---- */

int view_new(store *s, view **ret)
{
        view *v = xcalloc(1, sizeof(*v));
        v->s = s;
        pthread_mutex_init(&v->lock, NULL);
        clock_gettime(CLOCK_REALTIME, &v->started);
        v->refs_mtime = v->conts_mtime = v->started;
        if (getrandom(v->cookie_key, sizeof(v->cookie_key), 0) != (ssize_t)sizeof(v->cookie_key)) {
                /* no entropy yet: the time and address still differ per view */
                uint64_t t = (uint64_t)v->started.tv_nsec ^ ((uint64_t)v->started.tv_sec << 20) ^ (uint64_t)(uintptr_t)v;
                memcpy(v->cookie_key, &t, sizeof(t));
        }
        v->root.kind = VK_ROOT;
        v->root.ino = 1;
        v->images.kind = VK_IMAGES;
        v->images.ino = 2;
        v->containers.kind = VK_CONTAINERS;
        v->containers.ino = 3;
        v->vino_next = 16;
        v->upper_ino_next = 1;
        pthread_cond_init(&v->store_cond, NULL);
        prefetch_new(s, &v->pf);
        *ret = v;
        return 0;
}

uint64_t view_prefetched(view *v) { return prefetch_count(v->pf); }

uint64_t view_stored(view *v) { return atomic_load(&v->stored); }

size_t view_containers_held(view *v)
{
        pthread_mutex_lock(&v->lock);
        size_t n = 0;
        for (struct vcont *c = v->conts; c; c = c->next)
                n++;
        pthread_mutex_unlock(&v->lock);
        return n;
}

/* A container file still in the image, read ahead (prefetch.h): the kernel reads such files
 * through us, so their data goes into the kernel's cache of the file now, before the reader
 * asks (view_set_store). Only while every name of it still is that image file, with the
 * container's read lock held: no copy-up can come between the check and the store. Only for a
 * node without open files (the kernel reads through open files only, so none can hold a page
 * the store must wait for while it waits on us), and the node is held meanwhile: its id cannot
 * name another file, and an open of it waits for the store to end (file_new). */
#define STORE_MAX (128u * 1024)

static bool still_image_file(struct vcont *c, vnode *n, tree_ino tino, uint64_t size)
{
        bool any = false;
        for (struct cname *cn = n->names; cn; cn = cn->nnext) {
                if (!cn->hashed || dir_gone(cn->dir))
                        continue;
                _cleanup_free_ char *path = cnode_path(cn->dir);
                struct upper_dir d = { path, cn->dir->dmerge, cn->dir->dlower };
                struct upper_ent e;
                if (upper_lookup(c->u, &d, cn->name, &e) < 0 || e.in_upper || !e.has_lower || e.lower != tino ||
                    (uint64_t)e.st.st_size != size)
                        return false;
                any = true;
        }
        return any;
}

static void store_ahead(void *ud, const void *key, tree_ino tino, int fd, uint64_t size)
{
        view *v = ud;
        if (size == 0 || size > STORE_MAX)
                return;
        /* (the object never changes: read before any lock) */
        _cleanup_free_ char *buf = xmalloc(size);
        if (pread(fd, buf, size, 0) != (ssize_t)size)
                return;
        pthread_mutex_lock(&v->lock);
        /* (the container may be gone, and its record freed, since the reader opened a file:
         * the node found holds it from here on) */
        struct vcont *c = v->store_off ? NULL : cont_of_key(v, key);
        vnode *n = c ? table_find(v, VK_CNODE, c, ino_clower(c, tino), NULL) : NULL;
        if (n && (n->files || n->storing))
                n = NULL;
        if (n) {
                n->nlookup++;
                n->storing = true;
                v->n_storing++;
        }
        pthread_mutex_unlock(&v->lock);
        if (!n)
                return; /* the kernel does not know the file, or reads it already */
        if (cont_begin(v, c, false) == 0) {
                if (still_image_file(c, n, tino, size)) {
                        v->store(v->store_ud, id_of(v, n), buf, size);
                        atomic_fetch_add(&v->stored, 1);
                }
                cont_end(c);
        }
        pthread_mutex_lock(&v->lock);
        n->storing = false;
        v->n_storing--;
        pthread_cond_broadcast(&v->store_cond);
        n->nlookup--;
        node_maybe_free(v, n);
        pthread_mutex_unlock(&v->lock);
}

void view_stop_store(view *v)
{
        pthread_mutex_lock(&v->lock);
        v->store_off = true;
        while (v->n_storing)
                pthread_cond_wait(&v->store_cond, &v->lock);
        pthread_mutex_unlock(&v->lock);
}

void view_stop_prefetch(view *v)
{
        prefetch_free(v->pf);
        v->pf = NULL;
}

void view_set_store(view *v, view_store_fn *fn, void *ud)
{
        v->store = fn;
        v->store_ud = ud;
        prefetch_set_store(v->pf, fn ? store_ahead : NULL, v);
}

void view_free(view *v)
{
        if (!v)
                return;
        prefetch_free(v->pf);
        for (vnode *n = v->all, *next; n; n = next) {
                next = n->anext;
                for (struct cname *cn = n->names, *nn; cn; cn = nn) {
                        nn = cn->nnext;
                        free(cn->name);
                        free(cn);
                }
                listings_free(n);
                free(n->name);
                free(n);
        }
        listings_free(&v->root);
        listings_free(&v->images);
        listings_free(&v->containers);
        free(v->buckets);
        free(v->cn_buckets); /* every name is on its node's list: freed with the nodes above */
        for (size_t i = 0; i < v->n_refs; i++)
                free(v->refs[i].name);
        free(v->refs);
        for (size_t i = 0; i < v->n_told_refs; i++)
                free(v->told_refs[i]);
        free(v->told_refs);
        for (struct vimage *x = v->imgs, *next; x; x = next) {
                next = x->next;
                image_free(x);
        }
        dead_free(v);
        /* copies of big files under way get three seconds more, all together (ctfs umount
         * insists after five); the rest stop, for the next mount to finish (upper_copy.h) */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t deadline = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 3000;
        int stopped = 0;
        for (struct vcont *c = v->conts; c; c = c->next)
                if (c->u)
                        stopped += upper_finish_copies(c->u, deadline);
        if (stopped)
                fprintf(stderr, "ctfs: %d copy-up(s) of big files stopped at exit: the next mount finishes them\n", stopped);
        for (struct vcont *c = v->conts, *next; c; c = next) {
                next = c->next;
                cont_free(c);
        }
        for (size_t i = 0; i < v->n_imap_buckets; i++)
                for (struct imap *m = v->imap[i], *next; m; m = next) {
                        next = m->next;
                        free(m);
                }
        free(v->imap);
        for (struct vname *x = v->vnames, *next; x; x = next) {
                next = x->next;
                free(x->name);
                free(x);
        }
        pthread_cond_destroy(&v->store_cond);
        pthread_mutex_destroy(&v->lock);
        free(v);
}
