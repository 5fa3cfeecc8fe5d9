/* SPDX-License-Identifier: Apache-2.0 */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "image.h"
#include "tree.h"
#include "util.h"

struct check {
        store *s;
        bool repair;
        check_report_fn report;
        void *userdata;
        struct check_result res;
};

static void problem(struct check *c, bool repaired, const char *fmt, ...) _printf_(3, 4);
static void problem(struct check *c, bool repaired, const char *fmt, ...)
{
        va_list ap;
        char *msg;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
                abort();
        va_end(ap);
        c->res.problems++;
        if (repaired)
                c->res.repaired++;
        if (c->report)
                c->report(msg, repaired, c->userdata);
        free(msg);
}

/* Verifies one object file; with repair a corrupt one is removed (a later pull restores it). */
static void check_object(struct check *c, int dfd, const char *sub, const char *name)
{
        uint8_t want[DIGEST_LEN], got[DIGEST_LEN];
        if (digest_parse_hex(name, want) < 0 || strncmp(name, sub, 2) != 0) {
                bool ok = c->repair && unlinkat(dfd, name, 0) == 0;
                problem(c, ok, "stray file objects/sha256/%s/%s", sub, name);
                return;
        }
        c->res.objects++;
        _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || digest_fd(fd, got) < 0 ||
            memcmp(want, got, DIGEST_LEN) != 0) {
                bool ok = c->repair && unlinkat(dfd, name, 0) == 0;
                problem(c, ok, "object sha256:%s: content does not match its digest", name);
        }
}

static int check_objects(struct check *c)
{
        int fd = openat(store_dirfd(c->s), "objects/sha256", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (sub < 0) {
                        problem(c, false, "stray entry objects/sha256/%s", de->d_name);
                        continue;
                }
                DIR *sd = fdopendir(sub);
                struct dirent *e;
                while ((e = readdir(sd)))
                        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                                check_object(c, dirfd(sd), de->d_name, e->d_name);
                closedir(sd);
        }
        closedir(d);
        return 0;
}

/* Every regular file of a tree must have its object. */
static uint64_t missing_objects(struct check *c, const tree *t, const char *what)
{
        uint64_t missing = 0;
        for (uint32_t i = 0; i < tree_count(t); i++) {
                const struct tree_inode *n = tree_get(t, i);
                if (!S_ISREG(n->mode) || (n->flags & (TREE_F_WHITEOUT | TREE_F_HLINK_REF)))
                        continue;
                if (!store_object_exists(c->s, n->digest)) {
                        char hex[DIGEST_HEX_LEN + 1];
                        digest_to_hex(n->digest, hex);
                        if (missing++ < 3)
                                problem(c, false, "%s: object sha256:%s is missing", what, hex);
                }
        }
        if (missing > 3)
                problem(c, false, "%s: %llu more objects are missing", what, (unsigned long long)(missing - 3));
        return missing;
}

/* A tree must load and its directories must be walkable. */
static int walk_tree(const tree *t, tree_ino dir, unsigned depth)
{
        if (depth > 4096)
                return -ELOOP;
        uint32_t n = tree_dir_count(t, dir);
        for (uint32_t i = 0; i < n; i++) {
                const char *name;
                size_t len;
                tree_ino ino;
                int r = tree_dir_entry(t, dir, i, &name, &len, &ino);
                if (r < 0)
                        return r;
                if (S_ISDIR(tree_get(t, ino)->mode) && (r = walk_tree(t, ino, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static void remove_dir(struct check *c, const char *rel, bool *ok)
{
        *ok = c->repair && util_rm_rf_at(store_dirfd(c->s), rel) >= 0;
}

/* Entries of layers/ and images/ are named by a digest; anything else is stray. */
static bool named_by_digest(struct check *c, const char *rel, const char *name, uint8_t ret_digest[DIGEST_LEN])
{
        if (digest_parse_hex(name, ret_digest) >= 0)
                return true;
        bool ok;
        remove_dir(c, rel, &ok);
        problem(c, ok, "stray entry %s", rel);
        return false;
}

static void check_layer(store *s, int dfd, const char *name, void *u)
{
        struct check *c = u;
        uint8_t dg[DIGEST_LEN];
        _cleanup_free_ char *rel = xasprintf("layers/%s", name);
        bool ok;
        if (!named_by_digest(c, rel, name, dg))
                return;
        c->res.layers++;
        _cleanup_(tree_closep) tree *t = NULL;
        int r = store_layer_open_tree(c->s, dg, &t);
        if (r >= 0)
                r = walk_tree(t, TREE_ROOT, 0);
        if (r < 0) {
                remove_dir(c, rel, &ok);
                problem(c, ok, "layer sha256:%s: index is unreadable (%s)", name, strerror(-r));
                return;
        }
        _cleanup_free_ char *what = xasprintf("layer sha256:%.12s", name);
        if (missing_objects(c, t, what) && c->repair) {
                /* the layer is not whole: remove it so the next pull ingests it again */
                remove_dir(c, rel, &ok);
                if (ok)
                        c->res.repaired++;
        }
}

static void check_image(store *s, int dfd, const char *name, void *u)
{
        struct check *c = u;
        uint8_t dg[DIGEST_LEN];
        _cleanup_free_ char *rel = xasprintf("images/%s", name);
        bool ok;
        if (!named_by_digest(c, rel, name, dg))
                return;
        c->res.images++;
        _cleanup_free_ char *cfg = NULL;
        size_t clen;
        uint8_t got[DIGEST_LEN];
        if (store_blob_get(c->s, dg, &cfg, &clen) < 0) {
                problem(c, false, "image %.12s: its config blob is missing", name);
        } else {
                digest_buf(cfg, clen, got);
                if (memcmp(got, dg, DIGEST_LEN) != 0)
                        problem(c, false, "image %.12s: its config blob does not match its digest", name);
        }
        uint8_t(*diffids)[DIGEST_LEN] = NULL;
        size_t n;
        if (image_layers(c->s, name, &diffids, &n) < 0) {
                remove_dir(c, rel, &ok);
                problem(c, ok, "image %.12s: image.json is unreadable", name);
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (!store_layer_exists(c->s, diffids[i])) {
                        char hex[DIGEST_HEX_LEN + 1];
                        digest_to_hex(diffids[i], hex);
                        problem(c, false, "image %.12s: layer sha256:%.12s is missing (pull the image again to restore it)",
                                name, hex);
                }
        free(diffids);
        _cleanup_(tree_closep) tree *t = NULL;
        int r = store_image_open_tree(c->s, name, &t);
        if (r >= 0)
                r = walk_tree(t, TREE_ROOT, 0);
        if (r < 0) {
                remove_dir(c, rel, &ok);
                problem(c, ok, "image %.12s: tree is unreadable (%s)", name, strerror(-r));
                return;
        }
        _cleanup_free_ char *what = xasprintf("image %.12s", name);
        missing_objects(c, t, what);
}

static int check_refs(struct check *c)
{
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(store_dirfd(c->s), "refs.json", 64 << 20, &data, NULL);
        if (r == -ENOENT)
                return 0;
        json_object *j = r >= 0 ? json_tokener_parse(data) : NULL;
        if (!j || !json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                bool ok = c->repair && util_write_file_atomic_at(store_dirfd(c->s), "refs.json", "{}\n", 3, 0600) >= 0;
                problem(c, ok, "refs.json is not a JSON object");
                return 0;
        }
        json_object_object_foreach(j, name, val)
        {
                c->res.refs++;
                const char *id = json_object_get_string(val);
                uint8_t d[DIGEST_LEN];
                if (!id || digest_parse_hex(id, d) < 0 || !store_image_exists(c->s, id)) {
                        bool ok = c->repair && store_ref_set(c->s, name, NULL) >= 0;
                        problem(c, ok, "name %s points to an image that is not in the store", name);
                }
        }
        json_object_put(j);
        return 0;
}

static int check_containers(struct check *c)
{
        struct store_container *cs;
        size_t n;
        int r = store_list_containers(c->s, NULL, NULL, &cs, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                c->res.containers++;
                if (!store_image_exists(c->s, cs[i].image))
                        problem(c, false, "container %.12s: its image %.12s is not in the store", cs[i].id, cs[i].image);
                struct stat st;
                if (!cs[i].upper || lstat(cs[i].upper, &st) < 0 || !S_ISDIR(st.st_mode))
                        problem(c, false, "container %.12s: its upper directory is missing", cs[i].id);
        }
        store_containers_free(cs, n);
        int bad;
        r = store_names_check(c->s, c->repair, &bad);
        if (r < 0)
                return r;
        if (bad)
                problem(c, c->repair, "the container names index (names/) disagrees with the records in %d place%s", bad,
                        bad == 1 ? "" : "s");
        return 0;
}

int store_check(store *s, bool repair, check_report_fn report, void *userdata, struct check_result *ret)
{
        struct check c = { .s = s, .repair = repair, .report = report, .userdata = userdata };
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        int r = check_objects(&c);
        if (r >= 0)
                r = store_list_dir(s, "layers", check_layer, &c);
        if (r >= 0)
                r = store_list_dir(s, "images", check_image, &c);
        if (r >= 0)
                r = check_refs(&c);
        if (r >= 0)
                r = check_containers(&c);
        if (r >= 0)
                *ret = c.res;
        return r;
}
