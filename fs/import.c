/* SPDX-License-Identifier: Apache-2.0 */
#include "import.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dlib-archive.h"
#include "image.h"
#include "ingest.h"
#include "manifest.h"
#include "path.h"
#include "util.h"

void import_result_free(struct import_result *r)
{
        for (size_t i = 0; i < r->n_images; i++) {
                for (char **p = r->images[i].names; p && *p; p++)
                        free(*p);
                free(r->images[i].names);
        }
        free(r->images);
        r->images = NULL;
        r->n_images = 0;
}

static char **strv_one(const char *s)
{
        char **v = xcalloc(2, sizeof(char *));
        v[0] = xstrdup(s);
        return v;
}

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

/* A blob of an OCI layout, checked against its digest. */
static int read_blob(int dirfd, const uint8_t d[DIGEST_LEN], size_t max, char **ret, size_t *ret_len, char **ret_error)
{
        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(d, hex);
        _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = util_read_file_at(dirfd, rel, max, &data, &len);
        if (r < 0) {
                *ret_error = xasprintf("read blob sha256:%s: %s", hex, strerror(-r));
                return r;
        }
        uint8_t got[DIGEST_LEN];
        digest_buf(data, len, got);
        if (memcmp(got, d, DIGEST_LEN) != 0) {
                char g[DIGEST_HEX_LEN + 1];
                digest_to_hex(got, g);
                *ret_error = xasprintf("digest mismatch for sha256:%s: expected sha256:%s, got sha256:%s", hex, hex, g);
                return -EBADMSG;
        }
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

int import_image(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                 char **names, const struct import_layers *layers, struct import_result *res, char **ret_error)
{
        struct image_config cfg;
        int r = image_config_parse(config, config_len, &cfg);
        if (r < 0) {
                *ret_error = xasprintf("invalid image config");
                strv_free(names);
                return r;
        }
        struct import_image im = { .names = names };
        uint8_t cd[DIGEST_LEN];
        digest_buf(config, config_len, cd);
        digest_to_hex(cd, im.id);
        im.layers = (unsigned)cfg.n_diff_ids;
        _cleanup_free_ size_t *which = NULL;
        ingest_staged **staged = NULL;
        size_t n_staged = 0;
        if (layers->n != cfg.n_diff_ids) {
                *ret_error = xasprintf("image %.12s: manifest has %zu layers, config %zu", im.id, layers->n, cfg.n_diff_ids);
                r = -EINVAL;
                goto out;
        }
        staged = xcalloc(cfg.n_diff_ids + 1, sizeof(*staged));
        which = xcalloc(cfg.n_diff_ids + 1, sizeof(size_t));
        /* Only layers the store lacks are fetched; for an image already in the store that is
         * none, unless `check --repair` removed a damaged one: then a pull restores it. */
        for (int attempt = 0;; attempt++) {
                size_t n_which = 0;
                for (size_t i = 0; i < cfg.n_diff_ids; i++) {
                        bool dup = false;
                        for (size_t k = 0; k < n_staged && !dup; k++)
                                dup = !memcmp(ingest_staged_diffid(staged[k]), cfg.diff_ids[i], DIGEST_LEN);
                        for (size_t k = 0; k < n_which && !dup; k++)
                                dup = !memcmp(cfg.diff_ids[which[k]], cfg.diff_ids[i], DIGEST_LEN);
                        if (!dup && !store_layer_exists(s, cfg.diff_ids[i]))
                                which[n_which++] = i;
                }
                if (n_which && layers->stage) {
                        /* Staged layers are published with the image, or not at all. */
                        ingest_staged **got = xcalloc(n_which, sizeof(*got));
                        r = layers->stage(layers->userdata, s, which, n_which,
                                          (const uint8_t(*)[DIGEST_LEN])cfg.diff_ids, got, ret_error);
                        for (size_t k = 0; k < n_which; k++)
                                if (got[k])
                                        staged[n_staged++] = got[k];
                        free(got);
                        if (r < 0)
                                goto out;
                } else if (n_which) {
                        r = layers->fetch(layers->userdata, s, which, n_which, (const uint8_t(*)[DIGEST_LEN])cfg.diff_ids,
                                          ret_error);
                        if (r < 0)
                                goto out;
                }
                im.layers_ingested += (unsigned)n_which;
                char *err = NULL;
                r = image_commit_staged(s, manifest, manifest_len, config, config_len, (const char *const *)names,
                                        staged, n_staged, im.id, &im.existed, &err);
                /* A layer that was in the store when we looked was pruned since: fetch it. */
                if (r == -ENOENT && attempt < 3) {
                        free(err);
                        continue;
                }
                if (r < 0) {
                        *ret_error = err;
                        goto out;
                }
                break;
        }
        if (im.layers_ingested)
                im.existed = false;
        res->images = xrealloc(res->images, (res->n_images + 1) * sizeof(im));
        res->images[res->n_images++] = im;
        names = NULL;
out:
        for (size_t k = 0; k < n_staged; k++)
                ingest_staged_free(staged[k]);
        free(staged);
        if (r < 0)
                strv_free(names);
        image_config_free(&cfg);
        return r;
}

/* Local layers: files relative to a directory, ingested by up to one thread per CPU (a layer
 * is one thread's work: decompressing and hashing it is what takes the time). */
#define LOCAL_PARALLEL_MAX 8

struct local_layers {
        int dirfd;
        const char *const *paths;
};

struct local_job {
        const struct local_layers *l;
        store *s;
        const size_t *which;
        size_t n_which;
        const uint8_t (*diffids)[DIGEST_LEN];
        ingest_staged **staged;
        pthread_mutex_t lock;
        size_t next;
        int error; /* the first failure's; the others stop taking layers */
        char *error_msg;
};

static int local_stage_one(const struct local_job *j, size_t k, char **ret_error)
{
        const char *path = j->l->paths[j->which[k]];
        /* paths are "blobs/sha256/<hex>" (checked against that digest) or a docker-archive
         * member (checked against the diffid only). */
        uint8_t blob[DIGEST_LEN];
        const uint8_t *want_blob = NULL;
        if (strncmp(path, "blobs/sha256/", 13) == 0 && digest_parse_hex(path + 13, blob) == 0)
                want_blob = blob;
        _cleanup_close_ int fd = openat(j->l->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                int r = -errno;
                *ret_error = xasprintf("open layer %s: %s", path, strerror(errno));
                return r;
        }
        struct ingest_result ir;
        return ingest_layer_stage(j->s, fd, want_blob, j->diffids[j->which[k]], &ir, &j->staged[k], ret_error);
}

static void *local_worker(void *p)
{
        struct local_job *j = p;
        for (;;) {
                pthread_mutex_lock(&j->lock);
                size_t k = j->next < j->n_which && !j->error ? j->next++ : SIZE_MAX;
                pthread_mutex_unlock(&j->lock);
                if (k == SIZE_MAX)
                        return NULL;
                char *err = NULL;
                int r = local_stage_one(j, k, &err); /* each worker writes its own slots */
                if (r < 0) {
                        pthread_mutex_lock(&j->lock);
                        if (!j->error) {
                                j->error = r;
                                j->error_msg = TAKE_PTR(err);
                        }
                        pthread_mutex_unlock(&j->lock);
                }
                free(err);
        }
}

static int local_stage(void *userdata, store *s, const size_t *which, size_t n_which, const uint8_t (*diffids)[DIGEST_LEN],
                       ingest_staged **ret_staged, char **ret_error)
{
        struct local_job j = { .l = userdata, .s = s, .which = which, .n_which = n_which, .diffids = diffids,
                               .staged = ret_staged };
        pthread_mutex_init(&j.lock, NULL);
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t par = cpus < 1 ? 1 : cpus > LOCAL_PARALLEL_MAX ? LOCAL_PARALLEL_MAX : (size_t)cpus;
        if (par > n_which)
                par = n_which;
        pthread_t th[LOCAL_PARALLEL_MAX];
        size_t started = 0;
        /* this thread is one of the workers */
        while (started + 1 < par && pthread_create(&th[started], NULL, local_worker, &j) == 0)
                started++;
        local_worker(&j);
        for (size_t i = 0; i < started; i++)
                pthread_join(th[i], NULL);
        pthread_mutex_destroy(&j.lock);
        if (j.error < 0) {
                *ret_error = j.error_msg ? j.error_msg : xasprintf("ingest layer: %s", strerror(-j.error));
                return j.error;
        }
        return 0;
}

/* An image whose layers are files below dirfd. */
static int import_local_image(store *s, const char *manifest, size_t manifest_len, const char *config,
                              size_t config_len, int dirfd, const char *const *layer_paths, char **names,
                              struct import_result *res, char **ret_error)
{
        struct local_layers l = { .dirfd = dirfd, .paths = layer_paths };
        struct import_layers layers = { .stage = local_stage, .userdata = &l };
        while (layer_paths[layers.n])
                layers.n++;
        return import_image(s, manifest, manifest_len, config, config_len, names, &layers, res, ret_error);
}

static char *basename_noext(const char *path)
{
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        size_t len = strlen(b);
        while (len > 1 && path[0] && b[len - 1] == '/')
                len--;
        char *s = xstrndup(b, len);
        char *dot = strrchr(s, '.');
        if (dot && dot != s && (!strcmp(dot, ".tar") || !strcmp(dot, ".oci")))
                *dot = '\0';
        /* repository names are lowercase [a-z0-9._-] */
        for (char *p = s; *p; p++) {
                if (*p >= 'A' && *p <= 'Z')
                        *p = (char)(*p - 'A' + 'a');
                else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' || *p == '_'))
                        *p = '-';
        }
        return s;
}

/* One image from an OCI layout directory: by TAG, or the only manifest there is. */
static int import_oci_one(store *s, int dirfd, const struct manifest_desc *desc, char **names, struct import_result *res,
                          char **ret_error)
{
        _cleanup_free_ char *mdata = NULL, *cdata = NULL, *offer = NULL;
        size_t mlen, clen;
        int r = read_blob(dirfd, desc->digest, MANIFEST_MAX_SIZE, &mdata, &mlen, ret_error);
        if (r < 0)
                goto fail;
        if (manifest_sniff(mdata, mlen) == MANIFEST_DOC_INDEX) {
                /* A multi-platform image: take the host's platform. */
                struct manifest_index idx;
                r = manifest_parse_index(mdata, mlen, &idx);
                if (r < 0) {
                        *ret_error = xasprintf("invalid image index");
                        goto fail;
                }
                const char *os, *arch, *variant;
                platform_host(&os, &arch, &variant);
                size_t k;
                r = manifest_index_pick(&idx, os, arch, variant, &k);
                if (r < 0) {
                        offer = manifest_index_platforms(&idx);
                        *ret_error = xasprintf("no image for platform %s/%s in the index (it has: %s)", os, arch, offer);
                        manifest_index_free(&idx);
                        goto fail;
                }
                r = import_oci_one(s, dirfd, &idx.manifests[k], names, res, ret_error);
                manifest_index_free(&idx);
                return r;
        }
        struct manifest m;
        r = manifest_parse(mdata, mlen, &m);
        if (r < 0) {
                *ret_error = xasprintf("invalid image manifest");
                goto fail;
        }
        r = read_blob(dirfd, m.config.digest, IMAGE_CONFIG_MAX_SIZE, &cdata, &clen, ret_error);
        if (r < 0) {
                manifest_free(&m);
                goto fail;
        }
        char **paths = xcalloc(m.n_layers + 1, sizeof(char *));
        for (size_t i = 0; i < m.n_layers; i++) {
                char hex[DIGEST_HEX_LEN + 1];
                digest_to_hex(m.layers[i].digest, hex);
                paths[i] = xasprintf("blobs/sha256/%s", hex);
        }
        r = import_local_image(s, mdata, mlen, cdata, clen, dirfd, (const char *const *)paths, names, res, ret_error);
        strv_free(paths);
        manifest_free(&m);
        return r;
fail:
        strv_free(names);
        return r;
}

/* Name for an image in an OCI layout: a full reference in the annotation is kept (skopeo and
 * podman write those), a bare tag becomes localhost/<base>:<tag>. */
static char *oci_name(const char *base, const char *tag)
{
        char *full = NULL;
        if (tag && (strchr(tag, '/') || strchr(tag, ':')) && reference_normalize(tag, &full) >= 0)
                return full;
        _cleanup_free_ char *ref = xasprintf("localhost/%s:%s", base, tag ? tag : "latest");
        if (reference_normalize(ref, &full) < 0)
                return NULL;
        return full;
}

static int import_oci_dir(store *s, int dirfd, const char *tag, const char *base, bool all, struct import_result *res,
                          char **ret_error)
{
        _cleanup_free_ char *layout = NULL;
        if (util_read_file_at(dirfd, "oci-layout", 4096, &layout, NULL) < 0) {
                *ret_error = xasprintf("not an OCI image layout (no oci-layout file)");
                return -EINVAL;
        }
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = util_read_file_at(dirfd, "index.json", MANIFEST_MAX_SIZE, &data, &len);
        if (r < 0) {
                *ret_error = xasprintf("read index.json: %s", strerror(-r));
                return r;
        }
        struct manifest_index idx;
        r = manifest_parse_index(data, len, &idx);
        if (r < 0) {
                *ret_error = xasprintf("invalid index.json");
                return r;
        }
        if (all) {
                for (size_t i = 0; i < idx.n_manifests && r >= 0; i++) {
                        char *name = oci_name(base, idx.manifests[i].ref_name);
                        r = import_oci_one(s, dirfd, &idx.manifests[i], name ? strv_one(name) : xcalloc(1, sizeof(char *)),
                                           res, ret_error);
                        free(name);
                }
                manifest_index_free(&idx);
                return r;
        }
        size_t k = 0;
        if (tag) {
                r = manifest_index_find_ref(&idx, tag, &k);
                if (r < 0) {
                        *ret_error = xasprintf("no image tagged %s in the layout", tag);
                        manifest_index_free(&idx);
                        return -ENOENT;
                }
        } else if (idx.n_manifests != 1) {
                *ret_error = xasprintf("the layout holds %zu images: name one with :TAG", idx.n_manifests);
                manifest_index_free(&idx);
                return -EINVAL;
        }
        _cleanup_free_ char *name = oci_name(base, tag ? tag : idx.manifests[k].ref_name);
        if (!name) {
                *ret_error = xasprintf("cannot make an image name from %s and %s", base, tag ? tag : "latest");
                manifest_index_free(&idx);
                return -EINVAL;
        }
        r = import_oci_one(s, dirfd, &idx.manifests[k], strv_one(name), res, ret_error);
        manifest_index_free(&idx);
        return r;
}

/* ---- archives: unpacked into a work directory first, regular files and dirs only ---- */

static int extract_archive(int fd, int dirfd, char **ret_error)
{
        int r = dlib_archive_load(ret_error);
        if (r < 0)
                return r;
        struct archive *a = archive_read_new();
        archive_read_support_filter_all(a);
        archive_read_support_format_tar(a);
        archive_read_support_format_gnutar(a);
        if (archive_read_open_fd(a, fd, 1 << 17) != ARCHIVE_OK) {
                *ret_error = xasprintf("read archive: %s", archive_error_string(a));
                archive_read_free(a);
                return -EINVAL;
        }
        struct archive_entry *e;
        char buf[1 << 16];
        for (;;) {
                int ar = archive_read_next_header(a, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        *ret_error = xasprintf("read archive: %s", archive_error_string(a));
                        r = -EINVAL;
                        break;
                }
                _cleanup_free_ char *path = NULL;
                const char *name = archive_entry_pathname(e);
                if (!name || path_normalize(name, &path) < 0) {
                        *ret_error = xasprintf("archive member %s: refusing a path with '..'", name ? name : "?");
                        r = -EINVAL;
                        break;
                }
                if (!*path)
                        continue;
                mode_t type = archive_entry_filetype(e);
                if (type == AE_IFDIR) {
                        r = util_mkdir_p_at(dirfd, path, 0700);
                        if (r < 0)
                                break;
                        continue;
                }
                if (type == AE_IFLNK && archive_entry_symlink(e)) {
                        /* docker save links identical layers ("../<id>/layer.tar"): keep it as a
                         * copy-free hardlink when the target is inside the archive. */
                        _cleanup_free_ char *dir = path_dirname(path);
                        _cleanup_free_ char *joined = *dir ? xasprintf("%s/%s", dir, archive_entry_symlink(e))
                                                           : xstrdup(archive_entry_symlink(e));
                        _cleanup_free_ char *target = NULL;
                        /* resolve ".." lexically within the archive */
                        char *segs[256];
                        size_t ns = 0;
                        /* an absolute target names the host, not the archive */
                        bool bad = archive_entry_symlink(e)[0] == '/';
                        for (char *save, *tok = strtok_r(joined, "/", &save); tok && !bad; tok = strtok_r(NULL, "/", &save)) {
                                if (!strcmp(tok, "."))
                                        continue;
                                if (!strcmp(tok, "..")) {
                                        if (ns == 0)
                                                bad = true;
                                        else
                                                ns--;
                                } else if (ns < ARRAY_SIZE(segs))
                                        segs[ns++] = tok;
                                else
                                        bad = true;
                        }
                        if (bad || ns == 0)
                                continue;
                        size_t tl = 0;
                        for (size_t i = 0; i < ns; i++)
                                tl += strlen(segs[i]) + 1;
                        target = xmalloc(tl + 1);
                        target[0] = '\0';
                        for (size_t i = 0; i < ns; i++) {
                                if (i)
                                        strcat(target, "/");
                                strcat(target, segs[i]);
                        }
                        _cleanup_free_ char *pdir = path_dirname(path);
                        if (*pdir)
                                util_mkdir_p_at(dirfd, pdir, 0700);
                        /* The target may come later in the archive; record it and link after. */
                        _cleanup_free_ char *linkfile = xasprintf("%s", path);
                        if (symlinkat(target, dirfd, linkfile) < 0 && errno != EEXIST) {
                                r = -errno;
                                break;
                        }
                        continue;
                }
                if (type != AE_IFREG)
                        continue;
                if (archive_entry_hardlink(e))
                        continue;
                _cleanup_free_ char *pdir = path_dirname(path);
                if (*pdir && (r = util_mkdir_p_at(dirfd, pdir, 0700)) < 0)
                        break;
                _cleanup_close_ int out = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (out < 0) {
                        r = -errno;
                        *ret_error = xasprintf("archive member %s: %s", path, strerror(errno));
                        break;
                }
                for (;;) {
                        la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
                        if (n < 0) {
                                *ret_error = xasprintf("read archive member %s: %s", path, archive_error_string(a));
                                r = -EIO;
                                break;
                        }
                        if (n == 0)
                                break;
                        r = util_write_all(out, buf, (size_t)n);
                        if (r < 0) {
                                *ret_error = xasprintf("write %s: %s", path, strerror(-r));
                                break;
                        }
                }
                if (r < 0)
                        break;
        }
        archive_read_free(a);
        if (r < 0 && !*ret_error)
                *ret_error = xasprintf("extract archive: %s", strerror(-r));
        return r;
}

/* Opens a member, following the in-archive symlinks extract_archive made (they never leave the
 * work directory: their targets were resolved lexically inside it). */
static int open_member(int dirfd, const char *path)
{
        char target[4096];
        ssize_t n = readlinkat(dirfd, path, target, sizeof(target) - 1);
        if (n > 0) {
                target[n] = '\0';
                return openat(dirfd, target, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        }
        return openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
}

static int read_member(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open_member(dirfd, path);
        if (fd < 0)
                return -errno;
        return util_read_fd(fd, max, ret, ret_len);
}

/* The OCI manifest we keep for an image from a docker archive, which has none of its own. */
static char *synth_manifest(const char *config, size_t config_len, int dirfd, char *const *layers, size_t n)
{
        json_object *m = json_object_new_object();
        json_object_object_add(m, "schemaVersion", json_object_new_int(2));
        json_object_object_add(m, "mediaType", json_object_new_string(MEDIA_TYPE_OCI_MANIFEST));
        json_object *c = json_object_new_object();
        uint8_t d[DIGEST_LEN];
        char ds[DIGEST_STR_LEN];
        digest_buf(config, config_len, d);
        digest_to_str(d, ds);
        json_object_object_add(c, "mediaType", json_object_new_string(MEDIA_TYPE_OCI_CONFIG));
        json_object_object_add(c, "digest", json_object_new_string(ds));
        json_object_object_add(c, "size", json_object_new_int64((int64_t)config_len));
        json_object_object_add(m, "config", c);
        json_object *ls = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
                json_object *l = json_object_new_object();
                _cleanup_close_ int fd = open_member(dirfd, layers[i]);
                struct stat st = { 0 };
                if (fd >= 0)
                        fstat(fd, &st);
                if (fd >= 0 && digest_fd(fd, d) == 0)
                        digest_to_str(d, ds);
                else
                        ds[0] = '\0';
                json_object_object_add(l, "mediaType", json_object_new_string(MEDIA_TYPE_OCI_LAYER));
                json_object_object_add(l, "digest", json_object_new_string(ds));
                json_object_object_add(l, "size", json_object_new_int64((int64_t)st.st_size));
                json_object_array_add(ls, l);
        }
        json_object_object_add(m, "layers", ls);
        char *out = xstrdup(json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN));
        json_object_put(m);
        return out;
}

static int import_docker_dir(store *s, int dirfd, const char *want, struct import_result *res, char **ret_error)
{
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_member(dirfd, "manifest.json", DOCKER_SAVE_MANIFEST_MAX_SIZE, &data, &len);
        if (r < 0) {
                *ret_error = xasprintf("not a docker archive (no manifest.json)");
                return -EINVAL;
        }
        struct docker_save_entry *es;
        size_t n;
        r = docker_save_manifest_parse(data, len, &es, &n);
        if (r < 0) {
                *ret_error = xasprintf("invalid manifest.json in the archive");
                return r;
        }
        _cleanup_free_ char *want_full = NULL;
        if (want && reference_normalize(want, &want_full) < 0) {
                *ret_error = xasprintf("invalid reference format: %s", want);
                docker_save_entries_free(es, n);
                return -EINVAL;
        }
        if (!want && n == 0) {
                *ret_error = xasprintf("the archive holds no image");
                docker_save_entries_free(es, n);
                return -EINVAL;
        }
        bool found = false;
        for (size_t i = 0; i < n && r >= 0; i++) {
                char **names = xcalloc(es[i].n_repo_tags + 2, sizeof(char *));
                size_t k = 0;
                bool match = false;
                for (size_t t = 0; t < es[i].n_repo_tags; t++) {
                        char *full;
                        if (reference_normalize(es[i].repo_tags[t], &full) < 0)
                                continue;
                        if (want_full && !strcmp(full, want_full))
                                match = true;
                        names[k++] = full;
                }
                if (want_full && !match) {
                        strv_free(names);
                        continue;
                }
                found = true;
                /* the config: "<hex>.json" (docker < 25) or "blobs/sha256/<hex>" */
                _cleanup_free_ char *cdata = NULL;
                size_t clen;
                r = read_member(dirfd, es[i].config, IMAGE_CONFIG_MAX_SIZE, &cdata, &clen);
                if (r < 0) {
                        *ret_error = xasprintf("read image config %s: %s", es[i].config, strerror(-r));
                        strv_free(names);
                        break;
                }
                const char *base = path_basename(es[i].config);
                char hex[DIGEST_HEX_LEN + 1];
                snprintf(hex, sizeof(hex), "%s", base);
                uint8_t want_d[DIGEST_LEN], got[DIGEST_LEN];
                digest_buf(cdata, clen, got);
                if (digest_parse_hex(hex, want_d) == 0 && memcmp(want_d, got, DIGEST_LEN) != 0) {
                        char g[DIGEST_HEX_LEN + 1];
                        digest_to_hex(got, g);
                        *ret_error = xasprintf("digest mismatch for sha256:%s: expected sha256:%s, got sha256:%s", hex, hex, g);
                        strv_free(names);
                        r = -EBADMSG;
                        break;
                }
                _cleanup_free_ char *manifest = synth_manifest(cdata, clen, dirfd, es[i].layers, es[i].n_layers);
                /* layers may be symlinks to other members: open through open_member's rule */
                char **paths = xcalloc(es[i].n_layers + 1, sizeof(char *));
                for (size_t l = 0; l < es[i].n_layers; l++) {
                        char target[4096];
                        ssize_t tl = readlinkat(dirfd, es[i].layers[l], target, sizeof(target) - 1);
                        if (tl > 0) {
                                target[tl] = '\0';
                                paths[l] = xstrdup(target);
                        } else
                                paths[l] = xstrdup(es[i].layers[l]);
                }
                if (want_full) {
                        strv_free(names);
                        names = strv_one(want_full);
                }
                r = import_local_image(s, manifest, strlen(manifest), cdata, clen, dirfd, (const char *const *)paths, names,
                                 res, ret_error);
                strv_free(paths);
        }
        docker_save_entries_free(es, n);
        if (r >= 0 && want_full && !found) {
                *ret_error = xasprintf("no image named %s in the archive", want);
                return -ENOENT;
        }
        return r;
}

static int unpack_to_work(store *s, int fd, char **ret_work, int *ret_dirfd, char **ret_error)
{
        _cleanup_free_ char *work = NULL;
        int dirfd;
        /* Locked for as long as dirfd is open: a concurrent prune leaves it alone. */
        int r = store_mkdtemp_locked(s, &work, &dirfd);
        if (r < 0) {
                *ret_error = xasprintf("make work directory: %s", strerror(-r));
                return r;
        }
        r = extract_archive(fd, dirfd, ret_error);
        if (r < 0) {
                close(dirfd);
                util_rm_rf_at(store_dirfd(s), work);
                return r;
        }
        *ret_work = TAKE_PTR(work);
        *ret_dirfd = dirfd;
        return 0;
}

int import_pull(store *s, const struct reference *ref, struct import_result *ret, char **ret_error)
{
        struct import_result res = { 0 };
        int r;
        if (ref->transport == REF_OCI) {
                _cleanup_close_ int dirfd = open(ref->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dirfd < 0) {
                        r = -errno;
                        *ret_error = xasprintf("open %s: %s", ref->path, strerror(errno));
                        return r;
                }
                _cleanup_free_ char *base = basename_noext(ref->path);
                r = import_oci_dir(s, dirfd, ref->name, base, false, &res, ret_error);
        } else if (ref->transport == REF_OCI_ARCHIVE || ref->transport == REF_DOCKER_ARCHIVE) {
                _cleanup_close_ int fd = open(ref->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        r = -errno;
                        *ret_error = xasprintf("open %s: %s", ref->path, strerror(errno));
                        return r;
                }
                _cleanup_free_ char *work = NULL;
                int dirfd;
                r = unpack_to_work(s, fd, &work, &dirfd, ret_error);
                if (r < 0)
                        return r;
                if (ref->transport == REF_OCI_ARCHIVE) {
                        _cleanup_free_ char *base = basename_noext(ref->path);
                        r = import_oci_dir(s, dirfd, ref->name, base, false, &res, ret_error);
                } else
                        r = import_docker_dir(s, dirfd, ref->name, &res, ret_error);
                util_rm_rf_at(store_dirfd(s), work);
                close(dirfd);
        } else {
                *ret_error = xasprintf("not a local transport");
                return -EINVAL;
        }
        if (r < 0) {
                import_result_free(&res);
                return r;
        }
        *ret = res;
        return 0;
}

int import_load(store *s, int fd, struct import_result *ret, char **ret_error)
{
        struct import_result res = { 0 };
        _cleanup_free_ char *work = NULL;
        int dirfd;
        int r = unpack_to_work(s, fd, &work, &dirfd, ret_error);
        if (r < 0)
                return r;
        if (faccessat(dirfd, "manifest.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                r = import_docker_dir(s, dirfd, NULL, &res, ret_error);
        else if (faccessat(dirfd, "index.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                r = import_oci_dir(s, dirfd, NULL, "loaded", true, &res, ret_error);
        else {
                *ret_error = xasprintf("load: the archive is neither a docker archive nor an OCI archive");
                r = -EINVAL;
        }
        util_rm_rf_at(store_dirfd(s), work);
        close(dirfd);
        if (r < 0) {
                import_result_free(&res);
                return r;
        }
        *ret = res;
        return 0;
}
