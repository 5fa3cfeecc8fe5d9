/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: the tree loader. A corrupt tree file in the store must give errors, never a
 * crash of the daemon: load it and touch every record the way the daemon and export do. */
#include <string.h>
#include <sys/stat.h>

#include "tree.h"
#include "util.h"

static void walk(const tree *t, tree_ino dir, unsigned depth, unsigned *budget)
{
        if (depth > 64)
                return;
        uint32_t n = tree_dir_count(t, dir);
        for (uint32_t i = 0; i < n && *budget; i++, (*budget)--) {
                const char *name;
                size_t len;
                tree_ino ino;
                if (tree_dir_entry(t, dir, i, &name, &len, &ino) < 0)
                        continue;
                tree_ino found;
                tree_lookup(t, dir, name, len, &found);
                const struct tree_inode *ti = tree_get(t, ino);
                if (!ti)
                        continue;
                const char *target;
                size_t tl;
                tree_readlink(t, ino, &target, &tl);
                for (uint32_t k = 0; k < ti->xattr_count && k < 64; k++) {
                        const char *xn;
                        size_t xl, vl;
                        const void *v;
                        if (tree_xattr_at(t, ino, k, &xn, &xl, &v, &vl) < 0)
                                break;
                }
                const void *v;
                size_t vl;
                tree_getxattr(t, ino, "security.capability", &v, &vl);
                if (S_ISDIR(ti->mode) && ino != dir)
                        walk(t, ino, depth + 1, budget);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        /* the store maps tree files page-aligned; give the loader the same alignment */
        void *copy = xmalloc(size ? size : 1);
        memcpy(copy, data, size);
        tree *t;
        if (tree_open_mem(copy, size, &t) == 0) {
                unsigned budget = 100000;
                walk(t, TREE_ROOT, 0, &budget);
                tree_ino ino;
                tree_resolve(t, "a/b/c", &ino);
                /* merging a corrupt layer index must fail cleanly too */
                tbuild *b = tbuild_new();
                tbuild_apply_layer(b, t);
                void *out;
                size_t len;
                if (tbuild_serialize(b, &out, &len) == 0)
                        free(out);
                tbuild_free(b);
                tree_close(t);
        }
        free(copy);
        return 0;
}
