/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "reference.h"
#include "util.h"

struct store {
        char *root;
        int dirfd;
};

static const char *const store_dirs[] = { "tmp", "objects", "objects/sha256", "blobs", "blobs/sha256",
                                          "layers", "images", "containers" };

int store_open(const char *root, store **ret_store)
{
        if (!root || !*root)
                root = getenv("CTFS_ROOT");
        if (!root || !*root)
                root = STORE_DEFAULT_ROOT;
        int r = util_mkdir_p_at(AT_FDCWD, root, 0700);
        if (r < 0)
                return r;
        _cleanup_free_ char *abs = realpath(root, NULL);
        if (!abs)
                return -errno;
        _cleanup_close_ int fd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < ARRAY_SIZE(store_dirs); i++)
                if (mkdirat(fd, store_dirs[i], 0700) < 0 && errno != EEXIST)
                        return -errno;
        store *s = xcalloc(1, sizeof(*s));
        s->root = TAKE_PTR(abs);
        s->dirfd = TAKE_FD(fd);
        *ret_store = s;
        return 0;
}

void store_close(store *s)
{
        if (!s)
                return;
        close(s->dirfd);
        free(s->root);
        free(s);
}

void store_closep(store **s) { store_close(*s); }
const char *store_root(const store *s) { return s->root; }
int store_dirfd(const store *s) { return s->dirfd; }

int store_lock(store *s)
{
        int fd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0) {
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        }
        return fd;
}

int store_mkdtemp(store *s, char **ret_relpath)
{
        _cleanup_free_ char *abs = xasprintf("%s/tmp/work-XXXXXX", s->root);
        if (!mkdtemp(abs))
                return -errno;
        *ret_relpath = xstrdup(abs + strlen(s->root) + 1);
        return 0;
}

int store_mkdtemp_locked(store *s, char **ret_relpath, int *ret_fd)
{
        for (int attempt = 0;; attempt++) {
                _cleanup_free_ char *rel = NULL;
                int r = store_mkdtemp(s, &rel);
                if (r < 0)
                        return r;
                _cleanup_close_ int fd = openat(s->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 && errno != ENOENT)
                        return -errno;
                if (fd >= 0) {
                        while (flock(fd, LOCK_SH) < 0)
                                if (errno != EINTR)
                                        return -errno;
                        /* A prune may have taken the directory for abandoned between mkdtemp
                         * and flock, and removed it: then it has no links left. */
                        struct stat st;
                        if (fstat(fd, &st) < 0)
                                return -errno;
                        if (st.st_nlink > 0) {
                                *ret_relpath = TAKE_PTR(rel);
                                *ret_fd = TAKE_FD(fd);
                                return 0;
                        }
                }
                if (attempt >= 100)
                        return -EAGAIN;
        }
}

void store_object_relpath(const uint8_t digest[DIGEST_LEN], char out[96])
{
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(digest, hex);
        snprintf(out, 96, "objects/sha256/%.2s/%s", hex, hex);
}

int store_object_open(store *s, const uint8_t digest[DIGEST_LEN])
{
        char rel[96];
        store_object_relpath(digest, rel);
        int fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

bool store_object_exists(store *s, const uint8_t digest[DIGEST_LEN])
{
        char rel[96];
        store_object_relpath(digest, rel);
        return faccessat(s->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_object_publish(store *s, const char *tmp_relpath, const uint8_t digest[DIGEST_LEN])
{
        char rel[96];
        store_object_relpath(digest, rel);
        char dir[32];
        memcpy(dir, rel, 17);
        dir[17] = '\0'; /* "objects/sha256/ab" */
        if (mkdirat(s->dirfd, dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        /* renameat2(NOREPLACE): an object that exists is already right (same digest, immutable) */
        if (renameat2(s->dirfd, tmp_relpath, s->dirfd, rel, RENAME_NOREPLACE) < 0) {
                int r = -errno;
                unlinkat(s->dirfd, tmp_relpath, 0);
                return r == -EEXIST ? 0 : r;
        }
        return 1;
}

int store_blob_put(store *s, const void *data, size_t len, const uint8_t expected[DIGEST_LEN])
{
        uint8_t got[DIGEST_LEN];
        digest_buf(data, len, got);
        if (memcmp(got, expected, DIGEST_LEN) != 0)
                return -EBADMSG;
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(got, hex);
        _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
        if (faccessat(s->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                return 0;
        return util_write_file_atomic_at(s->dirfd, rel, data, len, 0444);
}

int store_blob_get(store *s, const uint8_t digest[DIGEST_LEN], char **ret_data, size_t *ret_len)
{
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(digest, hex);
        _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
        return util_read_file_at(s->dirfd, rel, 64 << 20, ret_data, ret_len);
}

bool store_layer_exists(store *s, const uint8_t diffid[DIGEST_LEN])
{
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(diffid, hex);
        _cleanup_free_ char *rel = xasprintf("layers/%s/index", hex);
        return faccessat(s->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_layer_open_tree(store *s, const uint8_t diffid[DIGEST_LEN], tree **ret_tree)
{
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(diffid, hex);
        _cleanup_free_ char *rel = xasprintf("layers/%s/index", hex);
        return tree_open(s->dirfd, rel, ret_tree);
}

int store_list_dir(store *s, const char *rel, void (*fn)(store *s, int dfd, const char *name, void *u), void *u)
{
        int fd = openat(s->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                close(fd);
                return r;
        }
        struct dirent *de;
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                        fn(s, dirfd(d), de->d_name, u);
        closedir(d);
        return 0;
}

/* ---- references ---- */

static int refs_read(store *s, json_object **ret)
{
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(s->dirfd, "refs.json", 64 << 20, &data, NULL);
        if (r == -ENOENT) {
                *ret = json_object_new_object();
                return 0;
        }
        if (r < 0)
                return r;
        json_object *j = json_tokener_parse(data);
        if (!j || !json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

static int ref_cmp(const void *a, const void *b)
{
        return strcmp(((const struct store_ref *)a)->name, ((const struct store_ref *)b)->name);
}

int store_refs_load(store *s, struct store_ref **ret_refs, size_t *ret_n)
{
        json_object *j;
        int r = refs_read(s, &j);
        if (r < 0)
                return r;
        size_t n = 0, cap = (size_t)json_object_object_length(j);
        struct store_ref *refs = xcalloc(cap + 1, sizeof(*refs));
        json_object_object_foreach(j, key, val)
        {
                const char *id = json_object_get_string(val);
                uint8_t d[DIGEST_LEN];
                if (!id || digest_parse_hex(id, d) < 0)
                        continue;
                refs[n].name = xstrdup(key);
                memcpy(refs[n].id, id, DIGEST_HEX_LEN + 1);
                n++;
        }
        json_object_put(j);
        qsort(refs, n, sizeof(*refs), ref_cmp);
        *ret_refs = refs;
        *ret_n = n;
        return 0;
}

void store_refs_free(struct store_ref *refs, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(refs[i].name);
        free(refs);
}

int store_ref_set(store *s, const char *name, const char *id)
{
        json_object *j;
        int r = refs_read(s, &j);
        if (r < 0)
                return r;
        json_object *cur = NULL;
        bool had = json_object_object_get_ex(j, name, &cur);
        /* Unchanged: leave the file alone, so a repeated pull changes nothing at all. */
        if ((!id && !had) || (id && had && !strcmp(json_object_get_string(cur), id))) {
                json_object_put(j);
                return 0;
        }
        if (id)
                json_object_object_add(j, name, json_object_new_string(id));
        else
                json_object_object_del(j, name);
        const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        r = util_write_file_atomic_at(s->dirfd, "refs.json", text, strlen(text), 0600);
        json_object_put(j);
        return r;
}

/* ---- images ---- */

bool store_image_exists(store *s, const char *id)
{
        _cleanup_free_ char *rel = xasprintf("images/%s/image.json", id);
        return faccessat(s->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int store_image_open_tree(store *s, const char *id, tree **ret_tree)
{
        uint8_t d[DIGEST_LEN];
        if (digest_parse_hex(id, d) < 0)
                return -EINVAL;
        _cleanup_free_ char *rel = xasprintf("images/%s/tree", id);
        return tree_open(s->dirfd, rel, ret_tree);
}

static int image_info_load(store *s, const char *id, struct store_image *img)
{
        _cleanup_free_ char *rel = xasprintf("images/%s/image.json", id);
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(s->dirfd, rel, 16 << 20, &data, NULL);
        if (r < 0)
                return r;
        json_object *j = json_tokener_parse(data);
        if (!j)
                return -EBADMSG;
        json_object *v;
        memset(img, 0, sizeof(*img));
        memcpy(img->id, id, DIGEST_HEX_LEN);
        if (json_object_object_get_ex(j, "digest", &v))
                snprintf(img->digest, sizeof(img->digest), "%s", json_object_get_string(v));
        if (json_object_object_get_ex(j, "created", &v))
                img->created = json_object_get_int64(v);
        if (json_object_object_get_ex(j, "size", &v))
                img->size = (uint64_t)json_object_get_int64(v);
        json_object_put(j);
        return 0;
}

void store_images_free(struct store_image *imgs, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                for (char **p = imgs[i].names; p && *p; p++)
                        free(*p);
                free(imgs[i].names);
        }
        free(imgs);
}

int store_list_images(store *s, struct store_image **ret_images, size_t *ret_n)
{
        struct store_ref *refs;
        size_t n_refs;
        int r = store_refs_load(s, &refs, &n_refs);
        if (r < 0)
                return r;
        int fd = openat(s->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                store_refs_free(refs, n_refs);
                return r;
        }
        DIR *d = fdopendir(fd);
        struct store_image *imgs = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                uint8_t dg[DIGEST_LEN];
                if (digest_parse_hex(de->d_name, dg) < 0)
                        continue;
                struct store_image img;
                if (strlen(de->d_name) != DIGEST_HEX_LEN || image_info_load(s, de->d_name, &img) < 0)
                        continue;
                size_t k = 0;
                img.names = xcalloc(n_refs + 1, sizeof(char *));
                for (size_t i = 0; i < n_refs; i++)
                        if (strcmp(refs[i].id, img.id) == 0)
                                img.names[k++] = xstrdup(refs[i].name);
                imgs = xrealloc(imgs, (n + 1) * sizeof(*imgs));
                imgs[n++] = img;
        }
        closedir(d);
        store_refs_free(refs, n_refs);
        *ret_images = imgs;
        *ret_n = n;
        return 0;
}

int store_resolve_image(store *s, const char *what, char ret_id[DIGEST_HEX_LEN + 1])
{
        struct store_ref *refs;
        size_t n_refs;
        int r = store_refs_load(s, &refs, &n_refs);
        if (r < 0)
                return r;
        _cleanup_free_ char *full = NULL;
        if (reference_normalize(what, &full) >= 0) {
                for (size_t i = 0; i < n_refs; i++)
                        if (strcmp(refs[i].name, full) == 0) {
                                memcpy(ret_id, refs[i].id, DIGEST_HEX_LEN + 1);
                                store_refs_free(refs, n_refs);
                                return 0;
                        }
        }
        store_refs_free(refs, n_refs);
        const char *hex = strncmp(what, "sha256:", 7) == 0 ? what + 7 : what;
        size_t len = strlen(hex);
        if (len < 4 || len > DIGEST_HEX_LEN || strspn(hex, "0123456789abcdef") != len)
                return -ENOENT;
        _cleanup_close_ int fd = openat(s->dirfd, "images", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(TAKE_FD(fd));
        struct dirent *de;
        int found = 0;
        char id[DIGEST_HEX_LEN + 1] = "";
        while ((de = readdir(d)))
                if (strlen(de->d_name) == DIGEST_HEX_LEN && strncmp(de->d_name, hex, len) == 0 &&
                    store_image_exists(s, de->d_name)) {
                        found++;
                        memcpy(id, de->d_name, DIGEST_HEX_LEN + 1);
                }
        closedir(d);
        if (found == 0)
                return -ENOENT;
        if (found > 1)
                return -EEXIST; /* ambiguous prefix */
        memcpy(ret_id, id, DIGEST_HEX_LEN + 1);
        return 0;
}

/* ---- containers ---- */

void store_containers_free(struct store_container *c, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(c[i].id);
                free(c[i].name);
                free(c[i].upper);
        }
        free(c);
}

/* ---- container names ---- */

static bool container_exists(store *s, const char *id)
{
        uint8_t d[DIGEST_LEN];
        if (digest_parse_hex(id, d) < 0)
                return false;
        _cleanup_free_ char *rel = xasprintf("containers/%s/config.json", id);
        struct stat st;
        return fstatat(s->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* A name that can be a file name in names/ (container names are [a-zA-Z0-9][a-zA-Z0-9_.-]*). */
static bool name_file_ok(const char *name) { return *name && *name != '.' && !strchr(name, '/') && strlen(name) < 256; }

/* The names/ directory; built from the records when it is missing and build is set. */
static int names_open(store *s, bool build)
{
        int fd = openat(s->dirfd, "names", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 || errno != ENOENT || !build)
                return fd >= 0 ? fd : -errno;
        struct store_container *cs = NULL;
        size_t n = 0;
        int r = store_list_containers(s, NULL, NULL, &cs, &n);
        if (r < 0 && r != -ENOENT)
                return r;
        _cleanup_free_ char *tmp = NULL;
        r = store_mkdtemp(s, &tmp);
        if (r == 0) {
                _cleanup_close_ int tfd = openat(s->dirfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (tfd < 0)
                        r = -errno;
                for (size_t i = 0; r == 0 && i < n; i++)
                        if (cs[i].name && name_file_ok(cs[i].name) && symlinkat(cs[i].id, tfd, cs[i].name) < 0 &&
                            errno != EEXIST)
                                r = -errno;
                if (r == 0 && renameat(s->dirfd, tmp, s->dirfd, "names") < 0)
                        r = -errno;
                if (r < 0)
                        util_rm_rf_at(s->dirfd, tmp);
        }
        store_containers_free(cs, n);
        if (r < 0)
                return r;
        fd = openat(s->dirfd, "names", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        return fd >= 0 ? fd : -errno;
}

/* The id names/name points to, in id (65 bytes); -ENOENT when there is none. */
static int name_target(int fd, const char *name, char id[DIGEST_HEX_LEN + 1])
{
        char buf[DIGEST_HEX_LEN + 2];
        ssize_t k = readlinkat(fd, name, buf, sizeof(buf));
        if (k < 0)
                return errno == EINVAL ? -ENOENT : -errno; /* not a link: names nothing */
        if (k != DIGEST_HEX_LEN)
                return -ENOENT;
        memcpy(id, buf, DIGEST_HEX_LEN);
        id[DIGEST_HEX_LEN] = '\0';
        return 0;
}

int store_name_claim(store *s, const char *name, const char *id)
{
        if (!name_file_ok(name))
                return -EINVAL;
        _cleanup_close_ int fd = names_open(s, true);
        if (fd < 0)
                return fd;
        for (int tries = 0; tries < 3; tries++) {
                if (symlinkat(id, fd, name) == 0)
                        return 0;
                if (errno != EEXIST)
                        return -errno;
                char old[DIGEST_HEX_LEN + 1];
                if (name_target(fd, name, old) == 0 && container_exists(s, old))
                        return -EEXIST;
                /* stale: its container is gone (a crash between the two) */
                if (unlinkat(fd, name, 0) < 0 && errno != ENOENT)
                        return -errno;
        }
        return -EEXIST;
}

void store_name_release(store *s, const char *name, const char *id)
{
        if (!name_file_ok(name))
                return;
        _cleanup_close_ int fd = names_open(s, false);
        char cur[DIGEST_HEX_LEN + 1];
        if (fd >= 0 && name_target(fd, name, cur) == 0 && strcmp(cur, id) == 0)
                unlinkat(fd, name, 0);
}

int store_name_lookup(store *s, const char *name, char ret_id[DIGEST_HEX_LEN + 1])
{
        if (!name_file_ok(name))
                return -ENOENT;
        _cleanup_close_ int fd = names_open(s, false);
        if (fd < 0)
                return fd == -ENOENT ? -ENOSYS : fd;
        char id[DIGEST_HEX_LEN + 1];
        int r = name_target(fd, name, id);
        if (r < 0)
                return r;
        if (!container_exists(s, id))
                return -ENOENT;
        memcpy(ret_id, id, sizeof(id));
        return 0;
}

int store_names_check(store *s, bool repair, int *ret_problems)
{
        *ret_problems = 0;
        _cleanup_close_ int fd = names_open(s, false);
        if (fd == -ENOENT)
                return 0; /* built when first needed */
        if (fd < 0)
                return fd;
        struct store_container *cs;
        size_t n;
        int r = store_list_containers(s, NULL, NULL, &cs, &n);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r < 0)
                n = 0, cs = NULL;
        int problems = 0;
        for (size_t i = 0; i < n; i++) {
                char id[DIGEST_HEX_LEN + 1];
                if (cs[i].name && name_file_ok(cs[i].name) &&
                    (name_target(fd, cs[i].name, id) < 0 || strcmp(id, cs[i].id) != 0))
                        problems++; /* a named container without its link */
        }
        DIR *d = fdopendir(dup(fd));
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                char id[DIGEST_HEX_LEN + 1];
                bool ok = name_target(fd, de->d_name, id) == 0;
                size_t i = 0;
                while (ok && i < n && strcmp(cs[i].id, id) != 0)
                        i++;
                if (!ok || i == n || !cs[i].name || strcmp(cs[i].name, de->d_name) != 0)
                        problems++; /* a link to nothing, or to a container of another name */
        }
        if (d)
                closedir(d);
        store_containers_free(cs, n);
        if (problems && repair) {
                close(fd);
                fd = -1;
                r = util_rm_rf_at(s->dirfd, "names"); /* built again from the records on next use */
                if (r < 0)
                        return r;
        }
        *ret_problems = problems;
        return 0;
}

int store_list_containers(store *s, bool (*known)(void *ud, const char *id), void *ud, struct store_container **ret,
                          size_t *ret_n)
{
        int fd = openat(s->dirfd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct store_container *cs = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                uint8_t dg[DIGEST_LEN];
                if (digest_parse_hex(de->d_name, dg) < 0)
                        continue;
                struct store_container c = { .id = xstrdup(de->d_name) };
                if (known && known(ud, de->d_name)) {
                        c.known = true; /* a record never changes once written */
                } else {
                        _cleanup_free_ char *rel = xasprintf("containers/%s/config.json", de->d_name);
                        _cleanup_free_ char *data = NULL;
                        json_object *j = NULL;
                        if (util_read_file_at(s->dirfd, rel, 16 << 20, &data, NULL) < 0 ||
                            !(j = json_tokener_parse(data))) {
                                free(c.id);
                                continue;
                        }
                        json_object *v;
                        if (json_object_object_get_ex(j, "name", &v) && json_object_get_string(v) &&
                            *json_object_get_string(v))
                                c.name = xstrdup(json_object_get_string(v));
                        if (json_object_object_get_ex(j, "image", &v) && json_object_get_string(v))
                                snprintf(c.image, sizeof(c.image), "%s", json_object_get_string(v));
                        if (json_object_object_get_ex(j, "upper", &v) && json_object_get_string(v))
                                c.upper = xstrdup(json_object_get_string(v));
                        else
                                c.upper = xasprintf("%s/containers/%s/upper", s->root, de->d_name);
                        json_object_put(j);
                }
                cs = xrealloc(cs, (n + 1) * sizeof(*cs));
                cs[n++] = c;
        }
        closedir(d);
        *ret = cs;
        *ret_n = n;
        return 0;
}
