/* SPDX-License-Identifier: Apache-2.0 */
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "manifest.h"
#include "reference.h"
#include "tree.h"
#include "util.h"

/* ---- a set of digests (open addressing), for marking what is in use ---- */

struct dset {
        uint8_t (*keys)[DIGEST_LEN];
        uint32_t *counts;
        size_t cap, n;
};

static size_t dset_slot(const struct dset *s, const uint8_t d[DIGEST_LEN])
{
        uint64_t h;
        memcpy(&h, d, sizeof(h)); /* sha256 bytes are uniformly distributed already */
        size_t i = h & (s->cap - 1);
        static const uint8_t zero[DIGEST_LEN];
        while (memcmp(s->keys[i], zero, DIGEST_LEN) != 0 && memcmp(s->keys[i], d, DIGEST_LEN) != 0)
                i = (i + 1) & (s->cap - 1);
        return i;
}

/* Returns the count of d after adding it once. */
static uint32_t dset_add(struct dset *s, const uint8_t d[DIGEST_LEN])
{
        if ((s->n + 1) * 2 > s->cap) {
                struct dset g = { .cap = s->cap ? s->cap * 2 : 1024 };
                g.keys = xcalloc(g.cap, DIGEST_LEN);
                g.counts = xcalloc(g.cap, sizeof(uint32_t));
                static const uint8_t zero[DIGEST_LEN];
                for (size_t i = 0; i < s->cap; i++)
                        if (memcmp(s->keys[i], zero, DIGEST_LEN) != 0) {
                                size_t k = dset_slot(&g, s->keys[i]);
                                memcpy(g.keys[k], s->keys[i], DIGEST_LEN);
                                g.counts[k] = s->counts[i];
                                g.n++;
                        }
                free(s->keys);
                free(s->counts);
                *s = g;
        }
        size_t k = dset_slot(s, d);
        if (s->counts[k] == 0) {
                memcpy(s->keys[k], d, DIGEST_LEN);
                s->n++;
        }
        return ++s->counts[k];
}

static uint32_t dset_count(const struct dset *s, const uint8_t d[DIGEST_LEN])
{
        if (!s->cap)
                return 0;
        size_t k = dset_slot(s, d);
        return s->counts[k];
}

static void dset_free(struct dset *s)
{
        free(s->keys);
        free(s->counts);
}

/* Every distinct object a tree references, once per tree. */
static void tree_mark_objects(const tree *t, struct dset *set)
{
        struct dset seen = { 0 };
        for (uint32_t i = 0; i < tree_count(t); i++) {
                const struct tree_inode *n = tree_get(t, i);
                if (!S_ISREG(n->mode) || (n->flags & (TREE_F_WHITEOUT | TREE_F_HLINK_REF)))
                        continue;
                if (dset_add(&seen, n->digest) == 1)
                        dset_add(set, n->digest);
        }
        dset_free(&seen);
}

static uint64_t tree_content_size(const tree *t)
{
        uint64_t sum = 0;
        for (uint32_t i = 0; i < tree_count(t); i++) {
                const struct tree_inode *n = tree_get(t, i);
                if (S_ISREG(n->mode))
                        sum += n->size;
        }
        return sum;
}

/* ---- commit ---- */

int image_layers(store *s, const char *id, uint8_t (**ret_diffids)[DIGEST_LEN], size_t *ret_n)
{
        _cleanup_free_ char *rel = xasprintf("images/%s/image.json", id);
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(store_dirfd(s), rel, 16 << 20, &data, NULL);
        if (r < 0)
                return r;
        json_object *j = json_tokener_parse(data), *layers;
        if (!j || !json_object_object_get_ex(j, "layers", &layers) || !json_object_is_type(layers, json_type_array)) {
                json_object_put(j);
                return -EBADMSG;
        }
        size_t n = json_object_array_length(layers);
        uint8_t(*d)[DIGEST_LEN] = xcalloc(n + 1, DIGEST_LEN);
        for (size_t i = 0; i < n; i++)
                if (digest_parse(json_object_get_string(json_object_array_get_idx(layers, i)), d[i]) < 0) {
                        free(d);
                        json_object_put(j);
                        return -EBADMSG;
                }
        json_object_put(j);
        *ret_diffids = d;
        *ret_n = n;
        return 0;
}

static int set_names(store *s, const char *const *names, const char *id)
{
        for (const char *const *n = names; n && *n; n++) {
                int r = store_ref_set(s, *n, id);
                if (r < 0)
                        return r;
        }
        return 0;
}

int image_commit(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                 const char *const *names, char ret_id[DIGEST_HEX_LEN + 1], bool *ret_existed, char **ret_error)
{
        return image_commit_staged(s, manifest, manifest_len, config, config_len, names, NULL, 0, ret_id, ret_existed,
                                   ret_error);
}

static ingest_staged *find_staged(ingest_staged *const *staged, size_t n, const uint8_t diffid[DIGEST_LEN])
{
        for (size_t i = 0; i < n; i++)
                if (staged[i] && memcmp(ingest_staged_diffid(staged[i]), diffid, DIGEST_LEN) == 0)
                        return staged[i];
        return NULL;
}

int image_commit_staged(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                        const char *const *names, ingest_staged *const *staged, size_t n_staged,
                        char ret_id[DIGEST_HEX_LEN + 1], bool *ret_existed, char **ret_error)
{
        uint8_t config_digest[DIGEST_LEN], manifest_digest[DIGEST_LEN];
        digest_buf(config, config_len, config_digest);
        digest_buf(manifest, manifest_len, manifest_digest);
        char id[DIGEST_HEX_LEN + 1], mdig[DIGEST_STR_LEN];
        digest_to_hex(config_digest, id);
        digest_to_str(manifest_digest, mdig);

        struct image_config cfg;
        int r = image_config_parse(config, config_len, &cfg);
        if (r < 0) {
                *ret_error = xasprintf("image config sha256:%s: invalid", id);
                return r;
        }
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0) {
                image_config_free(&cfg);
                *ret_error = xasprintf("lock store: %s", strerror(-lock));
                return lock;
        }
        if (store_image_exists(s, id)) {
                image_config_free(&cfg);
                /* Layers staged for an image that is here: a pull repairing a layer that
                 * `check --repair` removed, or one racing another pull of the same image. */
                for (size_t i = 0; i < n_staged; i++)
                        if (staged[i] && (r = ingest_staged_publish(staged[i], ret_error)) < 0)
                                return r;
                r = set_names(s, names, id);
                if (r < 0) {
                        *ret_error = xasprintf("write references: %s", strerror(-r));
                        return r;
                }
                memcpy(ret_id, id, sizeof(id));
                *ret_existed = true;
                return 0;
        }

        _cleanup_(tbuild_freep) tbuild *b = tbuild_new();
        _cleanup_free_ char *work = NULL, *tpath = NULL, *ipath = NULL, *final = NULL;
        int dfd = store_dirfd(s);
        json_object *layers = json_object_new_array();
        for (size_t i = 0; i < cfg.n_diff_ids; i++) {
                char dstr[DIGEST_STR_LEN];
                digest_to_str(cfg.diff_ids[i], dstr);
                json_object_array_add(layers, json_object_new_string(dstr));
                _cleanup_(tree_closep) tree *lt = NULL;
                ingest_staged *st = find_staged(staged, n_staged, cfg.diff_ids[i]);
                r = st ? ingest_staged_open_tree(st, &lt) : store_layer_open_tree(s, cfg.diff_ids[i], &lt);
                if (r < 0) {
                        /* -ENOENT: the caller may stage the layer (again) and retry. */
                        *ret_error = r == -ENOENT ? xasprintf("layer %s is not in the store", dstr)
                                                  : xasprintf("open layer %s: %s", dstr, strerror(-r));
                        goto fail;
                }
                r = tbuild_apply_layer(b, lt);
                if (r < 0) {
                        /* The only name a merge looks up is a hardlink's target in the layers below. */
                        *ret_error = r == -ENOENT ? xasprintf("merge layer %s: a hardlink names a file the layers below do not have", dstr)
                                                  : xasprintf("merge layer %s: %s", dstr, strerror(-r));
                        r = r == -ENOENT ? -EINVAL : r;
                        goto fail;
                }
        }
        r = store_mkdtemp(s, &work);
        if (r < 0) {
                *ret_error = xasprintf("make work directory: %s", strerror(-r));
                goto fail;
        }
        tpath = xasprintf("%s/tree", work);
        r = tbuild_write(b, dfd, tpath);
        uint64_t size = 0;
        if (r >= 0) {
                _cleanup_(tree_closep) tree *t = NULL;
                r = tree_open(dfd, tpath, &t);
                if (r >= 0)
                        size = tree_content_size(t);
        }
        if (r < 0) {
                *ret_error = xasprintf("write image tree: %s", strerror(-r));
                goto fail_work;
        }
        json_object *info = json_object_new_object();
        json_object_object_add(info, "id", json_object_new_string(id));
        json_object_object_add(info, "digest", json_object_new_string(mdig));
        json_object_object_add(info, "created", json_object_new_int64(cfg.created));
        json_object_object_add(info, "size", json_object_new_int64((int64_t)size));
        json_object_object_add(info, "os", json_object_new_string(cfg.os ? cfg.os : ""));
        json_object_object_add(info, "architecture", json_object_new_string(cfg.architecture ? cfg.architecture : ""));
        json_object_object_add(info, "layers", json_object_get(layers));
        const char *text = json_object_to_json_string_ext(info, JSON_C_TO_STRING_PRETTY);
        ipath = xasprintf("%s/image.json", work);
        r = util_write_file_atomic_at(dfd, ipath, text, strlen(text), 0644);
        json_object_put(info);
        if (r < 0) {
                *ret_error = xasprintf("write image metadata: %s", strerror(-r));
                goto fail_work;
        }
        /* Everything checked out: publish the layers this pull staged, then the image. */
        for (size_t i = 0; i < n_staged; i++) {
                if (!staged[i])
                        continue;
                r = ingest_staged_publish(staged[i], ret_error);
                if (r < 0)
                        goto fail_work;
        }
        r = store_blob_put(s, manifest, manifest_len, manifest_digest);
        if (r >= 0)
                r = store_blob_put(s, config, config_len, config_digest);
        if (r < 0) {
                *ret_error = xasprintf("write image metadata: %s", strerror(-r));
                goto fail_work;
        }
        final = xasprintf("images/%s", id);
        if (renameat(dfd, work, dfd, final) < 0) {
                r = -errno;
                *ret_error = xasprintf("publish image %s: %s", id, strerror(errno));
                goto fail_work;
        }
        r = set_names(s, names, id);
        if (r < 0) {
                *ret_error = xasprintf("write references: %s", strerror(-r));
                goto fail;
        }
        json_object_put(layers);
        image_config_free(&cfg);
        memcpy(ret_id, id, sizeof(id));
        *ret_existed = false;
        return 0;
fail_work:
        util_rm_rf_at(dfd, work);
fail:
        json_object_put(layers);
        image_config_free(&cfg);
        return r;
}

/* ---- names ---- */

int image_tag(store *s, const char *src, const char *dst, char **ret_error)
{
        char id[DIGEST_HEX_LEN + 1];
        _cleanup_free_ char *full = NULL;
        if (reference_normalize(dst, &full) < 0 || strchr(full, '@')) {
                *ret_error = xasprintf("tag: invalid reference format: %s", dst);
                return -EINVAL;
        }
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        int r = store_resolve_image(s, src, id);
        if (r < 0) {
                *ret_error = xasprintf("tag: no such image: %s", src);
                return r;
        }
        r = store_ref_set(s, full, id);
        if (r < 0)
                *ret_error = xasprintf("tag: write references: %s", strerror(-r));
        return r;
}

static int containers_using(store *s, const char *id, size_t *ret_n)
{
        struct store_container *cs;
        size_t n, k = 0;
        int r = store_list_containers(s, NULL, NULL, &cs, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (strcmp(cs[i].image, id) == 0)
                        k++;
        store_containers_free(cs, n);
        *ret_n = k;
        return 0;
}

int image_remove(store *s, const char *what, bool force, char ***ret_untagged, char **ret_deleted, char **ret_error)
{
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        char id[DIGEST_HEX_LEN + 1];
        int r = store_resolve_image(s, what, id);
        if (r < 0) {
                *ret_error = r == -EEXIST ? xasprintf("rmi: ambiguous image id prefix: %s", what)
                                          : xasprintf("rmi: no such image: %s", what);
                return r;
        }
        struct store_ref *refs;
        size_t n_refs, n_names = 0;
        r = store_refs_load(s, &refs, &n_refs);
        if (r < 0)
                return r;
        _cleanup_free_ char *full = NULL;
        bool by_name = false;
        if (reference_normalize(what, &full) >= 0)
                for (size_t i = 0; i < n_refs; i++) {
                        if (strcmp(refs[i].id, id) == 0)
                                n_names++;
                        if (strcmp(refs[i].name, full) == 0)
                                by_name = true;
                }
        else
                for (size_t i = 0; i < n_refs; i++)
                        n_names += strcmp(refs[i].id, id) == 0;
        char **untagged = xcalloc(n_refs + 1, sizeof(char *));
        size_t nu = 0;
        bool delete_image;
        if (by_name && n_names > 1) {
                /* Untag only: other names keep the image. */
                r = store_ref_set(s, full, NULL);
                untagged[nu++] = xstrdup(full);
                delete_image = false;
        } else {
                if (!by_name && n_names > 1 && !force) {
                        *ret_error = xasprintf("rmi: image %.12s is referenced by %zu names; untag them or use -f", id,
                                          n_names);
                        r = -EBUSY;
                        goto out;
                }
                size_t users;
                r = containers_using(s, id, &users);
                if (r < 0)
                        goto out;
                if (users && !force) {
                        *ret_error = xasprintf("rmi: image %.12s is used by %zu container%s; remove %s or use -f", id, users,
                                          users == 1 ? "" : "s", users == 1 ? "it" : "them");
                        r = -EBUSY;
                        goto out;
                }
                for (size_t i = 0; i < n_refs && r >= 0; i++)
                        if (strcmp(refs[i].id, id) == 0) {
                                r = store_ref_set(s, refs[i].name, NULL);
                                untagged[nu++] = xstrdup(refs[i].name);
                        }
                /* As docker does: -f on an image containers use untags it, and the data stays
                 * (unnamed) for as long as a container needs it; prune removes it after. */
                delete_image = users == 0;
        }
        if (r >= 0 && delete_image) {
                /* Move it out of sight with one rename, then delete at leisure. */
                _cleanup_free_ char *src = xasprintf("images/%s", id);
                _cleanup_free_ char *work = NULL;
                r = store_mkdtemp(s, &work);
                if (r >= 0) {
                        _cleanup_free_ char *dst = xasprintf("%s/image", work);
                        if (renameat(store_dirfd(s), src, store_dirfd(s), dst) < 0)
                                r = -errno;
                        util_rm_rf_at(store_dirfd(s), work);
                }
                if (r >= 0)
                        *ret_deleted = xstrdup(id);
        }
        if (r < 0 && !*ret_error)
                *ret_error = xasprintf("rmi: %s: %s", what, strerror(-r));
out:
        store_refs_free(refs, n_refs);
        if (r >= 0)
                *ret_untagged = untagged;
        else {
                for (size_t i = 0; i < nu; i++)
                        free(untagged[i]);
                free(untagged);
        }
        return r;
}

/* ---- prune and usage ---- */

static int for_each_image_id(store *s, int (*fn)(store *s, const char *id, void *u), void *u)
{
        int fd = openat(store_dirfd(s), "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        struct dirent *de;
        int r = 0;
        while ((de = readdir(d)) && r >= 0) {
                uint8_t dg[DIGEST_LEN];
                if (digest_parse_hex(de->d_name, dg) < 0 || !store_image_exists(s, de->d_name))
                        continue;
                r = fn(s, de->d_name, u);
        }
        closedir(d);
        return r;
}

struct prune_ctx {
        struct dset layers, objects, blobs;
        struct prune_result res;
        struct store_ref *refs;
        size_t n_refs;
};

static int prune_image(store *s, const char *id, void *u)
{
        struct prune_ctx *c = u;
        _cleanup_(tree_closep) tree *t = NULL;
        bool named = false;
        for (size_t i = 0; i < c->n_refs; i++)
                named |= strcmp(c->refs[i].id, id) == 0;
        size_t users = 0;
        int r = containers_using(s, id, &users);
        if (r < 0)
                return r;
        if (!named && !users) {
                /* Out of sight with one rename (a prune killed halfway must not leave an image
                 * that looks present but lacks its tree), then removed. */
                _cleanup_free_ char *rel = xasprintf("images/%s", id), *work = NULL;
                r = store_mkdtemp(s, &work);
                if (r < 0)
                        return r;
                _cleanup_free_ char *dst = xasprintf("%s/image", work);
                if (renameat(store_dirfd(s), rel, store_dirfd(s), dst) < 0)
                        r = -errno;
                util_rm_rf_at(store_dirfd(s), work);
                if (r >= 0)
                        c->res.images++;
                return r;
        }
        /* Its config (the id) and manifest stay. */
        uint8_t d[DIGEST_LEN];
        if (digest_parse_hex(id, d) == 0)
                dset_add(&c->blobs, d);
        {
                _cleanup_free_ char *rel = xasprintf("images/%s/image.json", id), *data = NULL;
                json_object *j = NULL, *v;
                if (util_read_file_at(store_dirfd(s), rel, 16 << 20, &data, NULL) >= 0 && (j = json_tokener_parse(data)) &&
                    json_object_object_get_ex(j, "digest", &v) && digest_parse(json_object_get_string(v), d) == 0)
                        dset_add(&c->blobs, d);
                json_object_put(j);
        }
        uint8_t(*diffids)[DIGEST_LEN];
        size_t n;
        r = image_layers(s, id, &diffids, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                dset_add(&c->layers, diffids[i]);
        free(diffids);
        /* An image's own tree keeps its objects, also while one of its layers is missing. */
        if (store_image_open_tree(s, id, &t) >= 0)
                tree_mark_objects(t, &c->objects);
        return 0;
}


static void prune_layer(store *s, int dfd, const char *name, void *u)
{
        struct prune_ctx *c = u;
        uint8_t d[DIGEST_LEN];
        if (digest_parse_hex(name, d) < 0)
                return;
        if (dset_count(&c->layers, d)) {
                _cleanup_(tree_closep) tree *t = NULL;
                if (store_layer_open_tree(s, d, &t) >= 0)
                        tree_mark_objects(t, &c->objects);
                return;
        }
        if (util_rm_rf_at(dfd, name) >= 0)
                c->res.layers++;
}

static void prune_object(store *s, int dfd, const char *name, void *u)
{
        struct prune_ctx *c = u;
        uint8_t d[DIGEST_LEN];
        struct stat st;
        if (digest_parse_hex(name, d) < 0 || dset_count(&c->objects, d))
                return;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && unlinkat(dfd, name, 0) == 0) {
                c->res.objects++;
                c->res.bytes += (uint64_t)st.st_blocks * 512;
        }
}

static void prune_objdir(store *s, int dfd, const char *name, void *u)
{
        _cleanup_free_ char *rel = xasprintf("objects/sha256/%s", name);
        store_list_dir(s, rel, prune_object, u);
}

static void prune_blob(store *s, int dfd, const char *name, void *u)
{
        struct prune_ctx *c = u;
        uint8_t d[DIGEST_LEN];
        struct stat st;
        /* Blobs are written under the store lock, which prune holds: a temp file of
         * store_blob_put ("<hex>.tmp.<pid>") is what a killed writer left. */
        if (strstr(name, ".tmp.")) {
                unlinkat(dfd, name, 0);
                return;
        }
        if (digest_parse_hex(name, d) < 0 || dset_count(&c->blobs, d))
                return;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && unlinkat(dfd, name, 0) == 0) {
                c->res.blobs++;
                c->res.bytes += (uint64_t)st.st_blocks * 512;
        }
}

static void prune_tmp(store *s, int dfd, const char *name, void *u)
{
        /* A work directory in use is flock'ed by its owner; skip those. */
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
                return;
        util_rm_rf_at(dfd, name);
}

int store_prune(store *s, struct prune_result *ret)
{
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        struct prune_ctx c = { 0 };
        int r = store_refs_load(s, &c.refs, &c.n_refs);
        if (r >= 0)
                r = for_each_image_id(s, prune_image, &c);
        /* Objects of layers that stay are kept: the layer may serve a later pull. */
        if (r >= 0)
                r = store_list_dir(s, "layers", prune_layer, &c);
        if (r >= 0)
                r = store_list_dir(s, "objects/sha256", prune_objdir, &c);
        /* Manifests and configs of images that are gone. */
        if (r >= 0)
                r = store_list_dir(s, "blobs/sha256", prune_blob, &c);
        if (r >= 0)
                r = store_list_dir(s, "tmp", prune_tmp, &c);
        if (c.refs)
                store_refs_free(c.refs, c.n_refs);
        dset_free(&c.layers);
        dset_free(&c.objects);
        dset_free(&c.blobs);
        if (r >= 0)
                *ret = c.res;
        return r;
}

struct df_ctx {
        struct df_result *res;
        struct dset objects; /* object -> number of images using it */
};

static void df_object(store *s, int dfd, const char *name, void *u)
{
        struct df_ctx *c = u;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                c->res->objects++;
                c->res->object_bytes += (uint64_t)st.st_blocks * 512;
        }
}

static void df_objdir(store *s, int dfd, const char *name, void *u)
{
        _cleanup_free_ char *rel = xasprintf("objects/sha256/%s", name);
        store_list_dir(s, rel, df_object, u);
}

static void df_count(store *s, int dfd, const char *name, void *u) { (*(uint64_t *)u)++; }

static int df_mark(store *s, const char *id, void *u)
{
        struct df_ctx *c = u;
        _cleanup_(tree_closep) tree *t = NULL;
        if (store_image_open_tree(s, id, &t) < 0)
                return 0;
        tree_mark_objects(t, &c->objects);
        struct df_image *im = &c->res->per_image[c->res->n_images];
        c->res->per_image = xrealloc(c->res->per_image, (c->res->n_images + 1) * sizeof(*im));
        im = &c->res->per_image[c->res->n_images++];
        memset(im, 0, sizeof(*im));
        memcpy(im->id, id, sizeof(im->id));
        return 0;
}

int store_df(store *s, struct df_result *ret)
{
        struct df_result res = { 0 };
        struct df_ctx c = { .res = &res };
        res.per_image = xmalloc(sizeof(*res.per_image));
        int r = store_list_dir(s, "objects/sha256", df_objdir, &c);
        if (r >= 0)
                r = store_list_dir(s, "layers", df_count, &res.layers);
        if (r >= 0)
                r = for_each_image_id(s, df_mark, &c);
        /* Second pass: split each image's bytes into shared and unique. */
        for (size_t i = 0; r >= 0 && i < res.n_images; i++) {
                struct df_image *im = &res.per_image[i];
                _cleanup_(tree_closep) tree *t = NULL;
                if (store_image_open_tree(s, im->id, &t) < 0)
                        continue;
                struct dset seen = { 0 };
                for (uint32_t k = 0; k < tree_count(t); k++) {
                        const struct tree_inode *n = tree_get(t, k);
                        if (!S_ISREG(n->mode))
                                continue;
                        im->size += n->size;
                        if (dset_add(&seen, n->digest) > 1)
                                continue;
                        if (dset_count(&c.objects, n->digest) > 1)
                                im->shared += n->size;
                        else
                                im->unique += n->size;
                }
                dset_free(&seen);
                res.logical_bytes += im->size;
        }
        res.images = res.n_images;
        struct store_container *cs;
        size_t nc;
        if (r >= 0 && store_list_containers(s, NULL, NULL, &cs, &nc) >= 0) {
                res.containers = nc;
                store_containers_free(cs, nc);
        }
        struct store_ref *refs;
        size_t n_refs;
        if (r >= 0 && store_refs_load(s, &refs, &n_refs) >= 0) {
                for (size_t i = 0; i < res.n_images; i++) {
                        size_t k = 0;
                        res.per_image[i].names = xcalloc(n_refs + 1, sizeof(char *));
                        for (size_t j = 0; j < n_refs; j++)
                                if (!strcmp(refs[j].id, res.per_image[i].id))
                                        res.per_image[i].names[k++] = xstrdup(refs[j].name);
                }
                store_refs_free(refs, n_refs);
        }
        dset_free(&c.objects);
        if (r < 0) {
                df_result_free(&res);
                return r;
        }
        *ret = res;
        return 0;
}

void df_result_free(struct df_result *r)
{
        for (size_t i = 0; i < r->n_images; i++) {
                for (char **p = r->per_image[i].names; p && *p; p++)
                        free(*p);
                free(r->per_image[i].names);
        }
        free(r->per_image);
}
