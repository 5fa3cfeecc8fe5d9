/* SPDX-License-Identifier: Apache-2.0 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "dlib-archive.h"
#include "path.h"
#include "tree.h"
#include "util.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"

/* Files of DIRECT_MIN bytes or more are written with O_DIRECT, in DIRECT_BUF pieces: a pull
 * writes hundreds of MiB that nothing reads soon, and a buffered write of them costs the page
 * cache's new pages (which, on a VM whose host took back the guest's free memory, is a fault
 * on the host per page: 0.9 s for 256 MiB against 0.09 s when the pages were used just before;
 * O_DIRECT: 0.17 s either way, and no CPU). */
#define DIRECT_MIN (1 << 20)
#define DIRECT_BUF (1 << 20)
#define DIRECT_ALIGN 4096

struct ingest {
        store *s;
        int fd;
        int workfd;
        char *work; /* relative to the store root */
        digest_ctx *blob_hash; /* NULL: the caller checks the blob */
        digest_ctx *tar_hash;
        uint64_t blob_size, tar_size;
        struct archive *raw, *tar;
        char inbuf[1 << 17];
        char midbuf[1 << 17];
        char *dbuf; /* DIRECT_BUF bytes, aligned: what an O_DIRECT file gets next */
        tbuild *b;
        char **staged; /* hex names of objects staged in work/ */
        uint64_t n_tmp; /* temp file names used in work/ */
        size_t n_staged;
        char *error;
        struct ingest_result res;
};


/* Outer reader: the blob as it comes, hashed on the way in. */
static la_ssize_t raw_read(struct archive *a, void *data, const void **buf)
{
        struct ingest *g = data;
        for (;;) {
                ssize_t n = read(g->fd, g->inbuf, sizeof(g->inbuf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        archive_set_error(a, errno, "read layer: %s", strerror(errno));
                        return -1;
                }
                if (g->blob_hash)
                        digest_update(g->blob_hash, g->inbuf, (size_t)n);
                g->blob_size += (uint64_t)n;
                *buf = g->inbuf;
                return n;
        }
}

/* Inner reader: the decompressed stream, hashed for the diffid. */
static la_ssize_t tar_read(struct archive *a, void *data, const void **buf)
{
        struct ingest *g = data;
        la_ssize_t n = archive_read_data(g->raw, g->midbuf, sizeof(g->midbuf));
        if (n < 0) {
                archive_set_error(a, archive_errno(g->raw) ? archive_errno(g->raw) : EIO, "%s",
                                  archive_error_string(g->raw) ? archive_error_string(g->raw) : "decompress");
                return -1;
        }
        digest_update(g->tar_hash, g->midbuf, (size_t)n);
        g->tar_size += (uint64_t)n;
        *buf = g->midbuf;
        return n;
}

/* Where an entry's data goes: fd, directly (whole aligned pieces from g->dbuf) or not. */
struct out {
        int fd;
        bool direct;
        size_t fill; /* bytes in g->dbuf, written at off */
        off_t off;
};

/* Write g->dbuf's len bytes at o->off. A file system that refuses O_DIRECT writes (EINVAL)
 * gets them buffered. */
static int out_flush(struct ingest *g, struct out *o, size_t len)
{
        const char *p = g->dbuf;
        off_t at = o->off;
        while (len) {
                ssize_t w = pwrite(o->fd, p, len, at);
                if (w < 0 && errno == EINVAL && o->direct) {
                        int fl = fcntl(o->fd, F_GETFL);
                        if (fl < 0 || fcntl(o->fd, F_SETFL, fl & ~O_DIRECT) < 0)
                                return -EINVAL;
                        o->direct = false;
                        continue;
                }
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0)
                        return -errno;
                p += w;
                at += w;
                len -= (size_t)w;
        }
        o->off += (off_t)o->fill;
        o->fill = 0;
        return 0;
}

/* Append len bytes at pos; p NULL: a hole (zeros in a direct file, which are never sparse). */
static int out_put(struct ingest *g, struct out *o, const char *p, size_t len, int64_t pos)
{
        while (len) {
                if (!o->direct && !p)
                        return 0; /* (also after a fallback to buffered writes) */
                size_t k;
                if (o->direct) {
                        k = len < DIRECT_BUF - o->fill ? len : DIRECT_BUF - o->fill;
                        if (p)
                                memcpy(g->dbuf + o->fill, p, k);
                        else
                                memset(g->dbuf + o->fill, 0, k);
                        o->fill += k;
                        if (o->fill == DIRECT_BUF) {
                                int r = out_flush(g, o, DIRECT_BUF);
                                if (r < 0)
                                        return r;
                        }
                } else {
                        ssize_t w = pwrite(o->fd, p, len, (off_t)pos);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w < 0)
                                return -errno;
                        k = (size_t)w;
                }
                if (p)
                        p += k;
                pos += (int64_t)k;
                len -= k;
        }
        return 0;
}

/* Hash n zero bytes (a hole's). */
static void hash_zeros(digest_ctx *h, int64_t n)
{
        static const char zeros[65536];
        for (; n > 0; n -= (int64_t)sizeof(zeros))
                digest_update(h, zeros, n < (int64_t)sizeof(zeros) ? (size_t)n : sizeof(zeros));
}

/* Write the entry's data to fd (a new file), hashing it. */
static int stage_data(struct ingest *g, const char *path, struct out *o, int64_t size, uint8_t ret_digest[DIGEST_LEN])
{
        _cleanup_(digest_freep) digest_ctx *h = digest_new();
        int64_t pos = 0;
        int r;
        for (;;) {
                const void *buf;
                size_t len;
                la_int64_t off;
                r = archive_read_data_block(g->tar, &buf, &len, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        util_error_once(&g->error, "layer entry %s: %s", path, archive_error_string(g->tar));
                        return -EIO;
                }
                if (off < pos || off + (int64_t)len > size) {
                        util_error_once(&g->error, "layer entry %s: data beyond its declared size", path);
                        return -EINVAL;
                }
                /* A hole in a sparse file: hash the zeros, leave the hole in the object. */
                r = out_put(g, o, NULL, (size_t)(off - pos), pos);
                hash_zeros(h, off - pos);
                digest_update(h, buf, len);
                if (r == 0)
                        r = out_put(g, o, buf, len, off);
                if (r < 0) {
                        util_error_once(&g->error, "layer entry %s: write: %s", path, strerror(-r));
                        return r;
                }
                pos = off + (int64_t)len;
        }
        hash_zeros(h, size - pos);
        /* the last piece, whole blocks (the zeros past the end go with the truncate) */
        if (o->fill) {
                size_t len = o->fill;
                if (o->direct) {
                        len = (len + DIRECT_ALIGN - 1) & ~(size_t)(DIRECT_ALIGN - 1);
                        memset(g->dbuf + o->fill, 0, len - o->fill);
                }
                r = out_flush(g, o, len);
                if (r < 0) {
                        util_error_once(&g->error, "layer entry %s: write: %s", path, strerror(-r));
                        return r;
                }
        }
        if (ftruncate(o->fd, (off_t)size) < 0)
                return -errno;
        digest_final(h, ret_digest);
        return 0;
}

static int stage_regular(struct ingest *g, struct archive_entry *e, const char *path, uint8_t ret_digest[DIGEST_LEN])
{
        int64_t size = archive_entry_size(e);
        if (size < 0) {
                util_error_once(&g->error, "layer entry %s: negative size", path);
                return -EINVAL;
        }
        /* Refuse before writing what cannot fit (a sparse file's holes take no space). */
        if (size > (int64_t)1 << 20 && archive_entry_sparse_count(e) == 0) {
                struct statvfs sv;
                /* (a file system that reports no size at all, as ramfs, is not full) */
                if (fstatvfs(g->workfd, &sv) == 0 && sv.f_blocks > 0 &&
                    (uint64_t)size > (uint64_t)sv.f_bavail * sv.f_frsize) {
                        util_error_once(&g->error, "layer entry %s: no space left on device (%lld bytes, more than the store's "
                                  "free space)", path, (long long)size);
                        return -ENOSPC;
                }
        }
        /* A named temp file in the work directory, renamed to its digest: O_TMPFILE + linkat
         * costs far more on ext4 (orphan list updates, ~0.5 ms a file), which adds up over a
         * layer's thousands of small files. */
        char tmpname[32];
        snprintf(tmpname, sizeof(tmpname), "t.%llu", (unsigned long long)g->n_tmp++);
        _cleanup_close_ int fd = openat(g->workfd, tmpname, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (fd < 0)
                return -errno;
        bool direct = size >= DIRECT_MIN && archive_entry_sparse_count(e) == 0;
        if (direct && !g->dbuf && posix_memalign((void **)&g->dbuf, DIRECT_ALIGN, DIRECT_BUF) != 0) {
                g->dbuf = NULL;
                direct = false; /* (no aligned buffer: buffered writes need none) */
        }
        /* (a file system without O_DIRECT refuses it here: then buffered) */
        direct = direct && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) == 0;
        struct out o = { .fd = fd, .direct = direct };
        int r = stage_data(g, path, &o, size, ret_digest);
        if (r < 0) {
                unlinkat(g->workfd, tmpname, 0);
                return r;
        }
        g->res.files++;

        char hex[DIGEST_HEX_LEN + 1];
        digest_to_hex(ret_digest, hex);
        if (faccessat(g->workfd, hex, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                unlinkat(g->workfd, tmpname, 0);
                return 0;
        }
        /* Staged even when the store has the object now: until the layer is published under
         * the lock, nothing uses that object, and a concurrent prune may remove it. Publishing
         * an object that exists is a no-op. */
        if (!store_object_exists(g->s, ret_digest)) {
                g->res.new_objects++;
                g->res.new_bytes += (uint64_t)size;
        }
        if (renameat(g->workfd, tmpname, g->workfd, hex) < 0) {
                r = -errno;
                unlinkat(g->workfd, tmpname, 0);
                return r;
        }
        g->staged = xrealloc(g->staged, (g->n_staged + 1) * sizeof(char *));
        g->staged[g->n_staged++] = xstrdup(hex);
        return 0;
}

static int add_xattrs(struct ingest *g, struct archive_entry *e, tnode *n)
{
        archive_entry_xattr_reset(e);
        const char *name;
        const void *value;
        size_t len;
        while (archive_entry_xattr_next(e, &name, &value, &len) == ARCHIVE_OK) {
                if (!name || !*name)
                        continue;
                tbuild_add_xattr(g->b, n, name, value ? value : "", value ? len : 0);
        }
        return 0;
}

static int ingest_entry(struct ingest *g, struct archive_entry *e)
{
        const char *raw = archive_entry_pathname(e);
        if (!raw)
                raw = archive_entry_pathname_utf8(e);
        if (!raw) {
                util_error_once(&g->error, "layer entry without a usable name");
                return -EINVAL;
        }
        _cleanup_free_ char *path = NULL;
        if (path_normalize(raw, &path) < 0) {
                util_error_once(&g->error, "layer entry %s: refusing a path with '..'", raw);
                return -EINVAL;
        }
        g->res.entries++;
        const char *base = path_basename(path);
        /* A whiteout name is only meaningful as the last component. As a directory it could
         * not be represented in an overlay upper dir, and a layer exported from the image
         * would turn it into a whiteout (".wh..." would delete ".."): refuse it. */
        for (const char *c = path; c < base; c = strchr(c, '/') + 1)
                if (strncmp(c, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
                        util_error_once(&g->error, "layer entry %s: a whiteout name used as a directory", raw);
                        return -EINVAL;
                }
        if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)) == 0) {
                _cleanup_free_ char *dir = path_dirname(path);
                int r;
                if (strcmp(base, WH_OPAQUE) == 0)
                        r = tbuild_set_opaque(g->b, dir);
                else if (strncmp(base, ".wh..wh.", 8) == 0)
                        return 0; /* aufs bookkeeping (.wh..wh.plnk and friends): not content */
                else {
                        const char *victim = base + strlen(WH_PREFIX);
                        if (!*victim || !strcmp(victim, ".") || !strcmp(victim, "..") || strchr(victim, '/')) {
                                util_error_once(&g->error, "layer entry %s: invalid whiteout", raw);
                                return -EINVAL;
                        }
                        _cleanup_free_ char *target = *dir ? xasprintf("%s/%s", dir, victim) : xstrdup(victim);
                        r = tbuild_add_whiteout(g->b, target);
                        /* umoci writes whiteouts below an entry that replaced a directory by a
                         * file or symlink in the same layer: the lower directory is gone whole,
                         * so they delete nothing. Ignore them; never follow the link. */
                        if (r == -ENOTDIR)
                                return 0;
                }
                if (r < 0)
                        util_error_once(&g->error, "layer entry %s: %s", raw,
                                  r == -ENOTDIR ? "lies below a symlink or file" : strerror(-r));
                return r;
        }

        const char *hl = archive_entry_hardlink(e);
        if (hl) {
                _cleanup_free_ char *target = NULL;
                if (path_normalize(hl, &target) < 0 || !*target) {
                        util_error_once(&g->error, "layer entry %s: refusing a hardlink to %s", raw, hl);
                        return -EINVAL;
                }
                if (!*path) {
                        util_error_once(&g->error, "layer entry %s: hardlink at the root", raw);
                        return -EINVAL;
                }
                int r = tbuild_add_hardlink(g->b, path, target);
                if (r == -ENOENT)
                        r = tbuild_add_hardlink_ref(g->b, path, target);
                if (r < 0)
                        util_error_once(&g->error, "layer entry %s: hardlink to %s: %s", raw, hl,
                                  r == -ENOTDIR ? "lies below a symlink or file"
                                  : r == -EPERM ? "target is a directory" : strerror(-r));
                return r;
        }

        struct tattr a = {
                .mode = archive_entry_mode(e),
                .uid = (uint32_t)archive_entry_uid(e),
                .gid = (uint32_t)archive_entry_gid(e),
                .mtime_sec = archive_entry_mtime(e),
                .mtime_nsec = (uint32_t)archive_entry_mtime_nsec(e),
        };
        const char *link = NULL;
        int r = 0;
        switch (archive_entry_filetype(e)) {
        case AE_IFREG:
                a.size = (uint64_t)archive_entry_size(e);
                r = stage_regular(g, e, raw, a.digest);
                if (r < 0) {
                        if (!g->error)
                                util_error_once(&g->error, "layer entry %s: %s", raw, strerror(-r));
                        return r;
                }
                if (!*path) {
                        util_error_once(&g->error, "layer entry %s: a file at the root", raw);
                        return -EINVAL;
                }
                break;
        case AE_IFDIR:
                break;
        case AE_IFLNK:
                link = archive_entry_symlink(e);
                if (!link)
                        link = archive_entry_symlink_utf8(e);
                if (!link) {
                        util_error_once(&g->error, "layer entry %s: symlink without a target", raw);
                        return -EINVAL;
                }
                break;
        case AE_IFCHR:
        case AE_IFBLK:
                a.rdev = archive_entry_rdev(e);
                break;
        case AE_IFIFO:
                break;
        default:
                return 0; /* sockets and the like carry nothing */
        }
        if (!*path && !S_ISDIR(a.mode)) {
                util_error_once(&g->error, "layer entry %s: not a directory at the root", raw);
                return -EINVAL;
        }
        tnode *n;
        r = tbuild_add(g->b, path, &a, link, &n);
        if (r < 0) {
                util_error_once(&g->error, "layer entry %s: %s", raw, r == -ENOTDIR ? "lies below a symlink or file" : strerror(-r));
                return r;
        }
        return add_xattrs(g, e, n);
}

static void ingest_cleanup(struct ingest *g)
{
        if (g->tar)
                archive_read_free(g->tar);
        if (g->raw)
                archive_read_free(g->raw);
        digest_free(g->blob_hash);
        digest_free(g->tar_hash);
        tbuild_free(g->b);
        free(g->dbuf);
        for (size_t i = 0; i < g->n_staged; i++)
                free(g->staged[i]);
        free(g->staged);
        /* Remove the work directory while it is still locked, then let go of it. */
        if (g->work)
                util_rm_rf_at(store_dirfd(g->s), g->work);
        if (g->workfd >= 0)
                close(g->workfd);
        free(g->work);
        free(g->error);
}

static int drain(struct ingest *g)
{
        /* The diffid covers the whole uncompressed stream, the trailing zero blocks included. */
        for (;;) {
                la_ssize_t n = archive_read_data(g->raw, g->midbuf, sizeof(g->midbuf));
                if (n < 0) {
                        util_error_once(&g->error, "decompress layer: %s", archive_error_string(g->raw));
                        return -EIO;
                }
                if (n == 0)
                        break;
                digest_update(g->tar_hash, g->midbuf, (size_t)n);
                g->tar_size += (uint64_t)n;
        }
        for (;;) {
                ssize_t n = read(g->fd, g->inbuf, sizeof(g->inbuf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                if (g->blob_hash)
                        digest_update(g->blob_hash, g->inbuf, (size_t)n);
                g->blob_size += (uint64_t)n;
        }
        return 0;
}

struct ingest_staged {
        store *s;
        int workfd; /* flock'ed: prune leaves the work directory alone while we hold it */
        char *work; /* relative to the store root: objects by hex name, layer/index */
        char **objects;
        size_t n_objects;
        uint8_t diffid[DIGEST_LEN];
};

int ingest_layer_stage(store *s, int fd, const uint8_t *expected_blob, const uint8_t *expected_diffid,
                       struct ingest_result *ret_result, ingest_staged **ret_staged, char **ret_error)
{
        struct ingest g = { .s = s, .fd = fd, .workfd = -1 };
        _cleanup_free_ char *ldir = NULL, *idx = NULL;
        int r = dlib_archive_load(&g.error);
        if (r < 0)
                goto out;
        r = store_mkdtemp_locked(s, &g.work, &g.workfd);
        if (r < 0)
                goto out;
        g.blob_hash = expected_blob ? digest_new() : NULL;
        g.tar_hash = digest_new();
        g.b = tbuild_new();

        g.raw = archive_read_new();
        archive_read_support_filter_all(g.raw);
        archive_read_support_format_raw(g.raw);
        if (archive_read_open(g.raw, &g, NULL, raw_read, NULL) != ARCHIVE_OK) {
                util_error_once(&g.error, "open layer: %s", archive_error_string(g.raw));
                r = -EIO;
                goto out;
        }
        struct archive_entry *re;
        if (archive_read_next_header(g.raw, &re) != ARCHIVE_OK) {
                util_error_once(&g.error, "read layer: %s", archive_error_string(g.raw));
                r = -EIO;
                goto out;
        }
        g.tar = archive_read_new();
        archive_read_support_format_tar(g.tar);
        archive_read_support_format_gnutar(g.tar);
        if (archive_read_open(g.tar, &g, NULL, tar_read, NULL) != ARCHIVE_OK) {
                util_error_once(&g.error, "layer is not a tar archive: %s", archive_error_string(g.tar));
                r = -EINVAL;
                goto out;
        }
        for (;;) {
                struct archive_entry *e;
                int ar = archive_read_next_header(g.tar, &e);
                if (ar == ARCHIVE_EOF)
                        break;
                if (ar < ARCHIVE_WARN) {
                        util_error_once(&g.error, "read layer: %s", archive_error_string(g.tar));
                        r = -EIO;
                        goto out;
                }
                r = ingest_entry(&g, e);
                if (r < 0)
                        goto out;
        }
        r = drain(&g);
        if (r < 0)
                goto out;
        if (g.blob_hash)
                digest_final(g.blob_hash, g.res.blob_digest);
        digest_final(g.tar_hash, g.res.diffid);
        g.res.blob_size = g.blob_size;
        g.res.tar_size = g.tar_size;
        char want[DIGEST_STR_LEN], got[DIGEST_STR_LEN];
        if (expected_blob && memcmp(expected_blob, g.res.blob_digest, DIGEST_LEN) != 0) {
                digest_to_str(expected_blob, want);
                digest_to_str(g.res.blob_digest, got);
                util_error_once(&g.error, "digest mismatch for %s: expected %s, got %s", want, want, got);
                r = -EBADMSG;
                goto out;
        }
        if (expected_diffid && memcmp(expected_diffid, g.res.diffid, DIGEST_LEN) != 0) {
                digest_to_str(expected_diffid, want);
                digest_to_str(g.res.diffid, got);
                util_error_once(&g.error, "digest mismatch for layer %s: expected %s, got %s", want, want, got);
                r = -EBADMSG;
                goto out;
        }
        ldir = xasprintf("%s/layer", g.work);
        if (mkdirat(store_dirfd(s), ldir, 0700) < 0) {
                r = -errno;
                util_error_once(&g.error, "make layer directory: %s", strerror(errno));
                goto out;
        }
        idx = xasprintf("%s/index", ldir);
        r = tbuild_write(g.b, store_dirfd(s), idx);
        if (r < 0) {
                util_error_once(&g.error, "write layer index: %s", strerror(-r));
                goto out;
        }
        ingest_staged *st = xcalloc(1, sizeof(*st));
        st->s = s;
        st->workfd = TAKE_FD(g.workfd);
        st->work = TAKE_PTR(g.work);
        st->objects = TAKE_PTR(g.staged);
        st->n_objects = g.n_staged;
        g.n_staged = 0;
        memcpy(st->diffid, g.res.diffid, DIGEST_LEN);
        if (ret_result)
                *ret_result = g.res;
        *ret_staged = st;
out:
        if (r < 0 && ret_error)
                *ret_error = g.error ? TAKE_PTR(g.error) : xasprintf("ingest layer: %s", strerror(-r));
        ingest_cleanup(&g);
        return r;
}

const uint8_t *ingest_staged_diffid(const ingest_staged *st) { return st->diffid; }

int ingest_staged_open_tree(const ingest_staged *st, tree **ret_tree)
{
        _cleanup_free_ char *idx = xasprintf("%s/layer/index", st->work);
        return tree_open(store_dirfd(st->s), idx, ret_tree);
}

int ingest_staged_publish(ingest_staged *st, char **ret_error)
{
        store *s = st->s;
        int dfd = store_dirfd(s);
        char hex[DIGEST_HEX_LEN + 1];
        for (size_t i = 0; i < st->n_objects; i++) {
                uint8_t d[DIGEST_LEN];
                if (digest_parse_hex(st->objects[i], d) < 0)
                        continue;
                _cleanup_free_ char *rel = xasprintf("%s/%s", st->work, st->objects[i]);
                /* Published already (by an earlier call that failed later): nothing to move. */
                if (faccessat(dfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT && store_object_exists(s, d))
                        continue;
                int r = store_object_publish(s, rel, d);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = xasprintf("publish object %s: %s", st->objects[i], strerror(-r));
                        return r;
                }
        }
        digest_to_hex(st->diffid, hex);
        _cleanup_free_ char *final = xasprintf("layers/%s", hex);
        _cleanup_free_ char *ldir = xasprintf("%s/layer", st->work);
        if (renameat2(dfd, ldir, dfd, final, RENAME_NOREPLACE) < 0 && errno != EEXIST && errno != ENOTEMPTY &&
            !(errno == ENOENT && store_layer_exists(s, st->diffid))) {
                int r = -errno;
                if (ret_error)
                        *ret_error = xasprintf("publish layer sha256:%s: %s", hex, strerror(errno));
                return r;
        }
        return 0;
}

void ingest_staged_free(ingest_staged *st)
{
        if (!st)
                return;
        for (size_t i = 0; i < st->n_objects; i++)
                free(st->objects[i]);
        free(st->objects);
        if (st->work)
                util_rm_rf_at(store_dirfd(st->s), st->work);
        free(st->work);
        if (st->workfd >= 0)
                close(st->workfd);
        free(st);
}

void ingest_staged_freep(ingest_staged **st) { ingest_staged_free(*st); }

int ingest_layer(store *s, int fd, const uint8_t *expected_blob, const uint8_t *expected_diffid,
                 struct ingest_result *ret_result, char **ret_error)
{
        _cleanup_(ingest_staged_freep) ingest_staged *st = NULL;
        struct ingest_result res;
        int r = ingest_layer_stage(s, fd, expected_blob, expected_diffid, &res, &st, ret_error);
        if (r < 0)
                return r;
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0) {
                if (ret_error)
                        *ret_error = xasprintf("lock store: %s", strerror(-lock));
                return lock;
        }
        r = ingest_staged_publish(st, ret_error);
        if (r >= 0 && ret_result)
                *ret_result = res;
        return r;
}
