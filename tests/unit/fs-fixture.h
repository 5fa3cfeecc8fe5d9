/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hand-made store for the filesystem tests: one image (two names) whose tree holds every kind
 * of entry, its objects, and one container over it. Built with the tree builder and plain file
 * writes, no import, so the daemon's tests do not depend on the ingest code.
 */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "digest.h"
#include "store.h"
#include "tree.h"
#include "upper.h"
#include "util.h"

#define FX_IMAGE_NAME "localhost/test:v1"
#define FX_IMAGE_NAME2 "docker.io/library/busybox:1"
#define FX_CONTAINER_NAME "web"
#define FX_BIG_SIZE (4u << 20)

/* Write an object for content (holes where the content is zero in whole 4 KiB blocks). */
static inline int fx_object(store *s, const void *data, size_t len, uint8_t out[DIGEST_LEN])
{
        digest_buf(data, len, out);
        char rel[96];
        store_object_relpath(out, rel);
        char dir[32];
        memcpy(dir, rel, 17);
        dir[17] = '\0';
        if (mkdirat(store_dirfd(s), dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        int fd = openat(store_dirfd(s), rel, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0444);
        if (fd < 0)
                return -errno;
        static const char zero[4096];
        for (size_t off = 0; off < len; off += 4096) {
                size_t n = len - off < 4096 ? len - off : 4096;
                if (n == 4096 && memcmp((const char *)data + off, zero, 4096) == 0)
                        continue;
                if (pwrite(fd, (const char *)data + off, n, (off_t)off) != (ssize_t)n) {
                        close(fd);
                        return -EIO;
                }
        }
        if (ftruncate(fd, (off_t)len) < 0) {
                close(fd);
                return -errno;
        }
        close(fd);
        return 0;
}

static inline int fx_file(store *s, tbuild *b, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
                          const void *data, size_t len, int64_t mtime, tnode **ret)
{
        struct tattr a = { .mode = S_IFREG | mode, .uid = uid, .gid = gid, .size = len, .mtime_sec = mtime,
                           .mtime_nsec = 123456789 };
        int r = fx_object(s, data, len, a.digest);
        if (r < 0)
                return r;
        return tbuild_add(b, path, &a, NULL, ret);
}

static inline int fx_node(tbuild *b, const char *path, uint32_t mode, uint32_t uid, uint32_t gid, uint64_t rdev,
                          const char *target, int64_t mtime, tnode **ret)
{
        struct tattr a = { .mode = mode, .uid = uid, .gid = gid, .rdev = rdev, .mtime_sec = mtime,
                           .mtime_nsec = 500 };
        if (target)
                a.size = strlen(target);
        return tbuild_add(b, path, &a, target, ret);
}

/* The image's tree (also used alone by tests that need no store objects). */
static inline int fx_build(store *s, tbuild **ret)
{
        tbuild *b = tbuild_new();
        tnode *n;
        int r = 0;
        static const char sh[] = "#!/bin/sh\necho hello\n";
        static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n";
        static const char cap[] = { 0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 };
        r |= fx_node(b, "", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000000, NULL);
        r |= fx_node(b, "bin", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000001, NULL);
        r |= fx_file(s, b, "bin/sh", 0755, 0, 0, sh, sizeof(sh) - 1, 1600000002, NULL);
        r |= fx_file(s, b, "bin/su", 04755, 0, 0, "su-binary", 9, 1600000003, NULL);
        r |= fx_node(b, "etc", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000004, NULL);
        r |= fx_file(s, b, "etc/passwd", 0644, 0, 0, passwd, sizeof(passwd) - 1, 1600000005, &n);
        if (r == 0)
                r = tbuild_add_xattr(b, n, "user.comment", "hello", 5);
        r |= fx_file(s, b, "etc/shadow", 0640, 0, 42, "root:*:1::::::\n", 15, 1600000006, NULL);
        r |= fx_node(b, "usr", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000007, NULL);
        r |= fx_node(b, "usr/bin", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000008, NULL);
        r |= fx_file(s, b, "usr/bin/ping", 0755, 0, 0, "ping-binary", 11, 1600000009, &n);
        if (r == 0)
                r = tbuild_add_xattr(b, n, "security.capability", cap, sizeof(cap));
        r |= fx_node(b, "usr/lib", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000010, NULL);
        r |= fx_file(s, b, "usr/lib/libx.so.1", 0644, 0, 0, "ELF-ish", 7, 1600000011, NULL);
        r |= fx_node(b, "usr/lib/libx.so", S_IFLNK | 0777, 0, 0, 0, "libx.so.1", 1600000012, NULL);
        r |= fx_node(b, "usr/lib/abs", S_IFLNK | 0777, 0, 0, 0, "/etc/passwd", 1600000012, NULL);
        r |= fx_node(b, "data", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000013, NULL);
        r |= fx_node(b, "data/sub", S_IFDIR | 0750, 0, 0, 0, NULL, 1600000014, NULL);
        r |= fx_file(s, b, "data/hl1", 0644, 0, 0, "hardlinked\n", 11, 1600000015, NULL);
        if (r == 0)
                r = tbuild_add_hardlink(b, "data/sub/hl2", "data/hl1");
        if (r == 0)
                r = tbuild_add_hardlink(b, "data/hl3", "data/hl1");
        r |= fx_file(s, b, "data/empty", 0644, 0, 0, "", 0, 1600000016, NULL);
        {
                char *big = xcalloc(1, FX_BIG_SIZE);
                for (size_t i = 0; i < 65536; i++)
                        big[i] = (char)('a' + i % 26);
                for (size_t i = FX_BIG_SIZE - 4096; i < FX_BIG_SIZE; i++)
                        big[i] = (char)('A' + i % 26);
                r |= fx_file(s, b, "data/big", 0644, 0, 0, big, FX_BIG_SIZE, 1600000017, NULL);
                free(big);
        }
        r |= fx_node(b, "dev", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000018, NULL);
        r |= fx_node(b, "dev/null", S_IFCHR | 0666, 0, 0, makedev(1, 3), NULL, 1600000019, NULL);
        r |= fx_node(b, "dev/sda", S_IFBLK | 0660, 0, 6, makedev(8, 0), NULL, 1600000020, NULL);
        r |= fx_node(b, "dev/fifo", S_IFIFO | 0644, 0, 0, 0, NULL, 1600000021, NULL);
        r |= fx_node(b, "home", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000022, NULL);
        r |= fx_node(b, "home/user", S_IFDIR | 0700, 1000, 1000, 0, NULL, 1600000023, NULL);
        r |= fx_file(s, b, "home/user/notes", 0600, 1000, 1000, "private\n", 8, 1600000024, NULL);
        r |= fx_node(b, "tmp", S_IFDIR | 01777, 0, 0, 0, NULL, 1600000025, NULL);
        r |= fx_node(b, "deep/a/b/c", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000026, NULL);
        r |= fx_file(s, b, "deep/a/b/c/leaf", 0644, 0, 0, "leaf\n", 5, 1600000027, NULL);
        r |= fx_file(s, b, "deep/a/sibling", 0644, 0, 0, "sib\n", 4, 1600000028, NULL);
        r |= fx_node(b, "opt", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000029, NULL);
        r |= fx_node(b, "opt/app", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000030, NULL);
        r |= fx_file(s, b, "opt/app/conf", 0644, 0, 0, "conf=1\n", 7, 1600000031, NULL);
        r |= fx_node(b, "opt/app/lib", S_IFDIR | 0755, 0, 0, 0, NULL, 1600000032, NULL);
        r |= fx_file(s, b, "opt/app/lib/mod", 0644, 0, 0, "mod\n", 4, 1600000033, NULL);
        if (r != 0) {
                tbuild_free(b);
                return r < 0 ? r : -EIO;
        }
        *ret = b;
        return 0;
}

static inline void fx_id(const char *seed, char out[DIGEST_HEX_LEN + 1])
{
        uint8_t d[DIGEST_LEN];
        digest_buf(seed, strlen(seed), d);
        digest_to_hex(d, out);
}

/* Fill the store at root: the image under both names, and a container named "web" with an
 * empty upper dir. ret_image / ret_container (may be NULL) get the ids. */
static inline int fx_store(const char *root, char ret_image[DIGEST_HEX_LEN + 1],
                           char ret_container[DIGEST_HEX_LEN + 1])
{
        store *s;
        int r = store_open(root, &s);
        if (r < 0)
                return r;
        tbuild *b;
        r = fx_build(s, &b);
        if (r < 0)
                goto out;
        char id[DIGEST_HEX_LEN + 1], cid[DIGEST_HEX_LEN + 1];
        fx_id("ctfs test image", id);
        fx_id("ctfs test container", cid);
        char path[512];
        snprintf(path, sizeof(path), "images/%s", id);
        r = util_mkdir_p_at(store_dirfd(s), path, 0700);
        if (r < 0)
                goto out_b;
        snprintf(path, sizeof(path), "images/%s/tree", id);
        r = tbuild_write(b, store_dirfd(s), path);
        if (r < 0)
                goto out_b;
        char json[4096];
        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"digest\":\"sha256:%s\",\"created\":1600000000,\"size\":1}", id, id);
        snprintf(path, sizeof(path), "images/%s/image.json", id);
        r = util_write_file_atomic_at(store_dirfd(s), path, json, strlen(json), 0644);
        if (r < 0)
                goto out_b;
        snprintf(json, sizeof(json), "{\"%s\":\"%s\",\"%s\":\"%s\"}", FX_IMAGE_NAME, id, FX_IMAGE_NAME2, id);
        r = util_write_file_atomic_at(store_dirfd(s), "refs.json", json, strlen(json), 0644);
        if (r < 0)
                goto out_b;
        snprintf(path, sizeof(path), "containers/%s", cid);
        r = util_mkdir_p_at(store_dirfd(s), path, 0700);
        if (r < 0)
                goto out_b;
        char upper_path[2048];
        snprintf(upper_path, sizeof(upper_path), "%s/containers/%s/upper", store_root(s), cid);
        {
                tree *t;
                snprintf(path, sizeof(path), "images/%s/tree", id);
                r = tree_open(store_dirfd(s), path, &t);
                if (r < 0)
                        goto out_b;
                r = upper_create_dirs(upper_path, t);
                tree_close(t);
                if (r < 0)
                        goto out_b;
        }
        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"name\":\"%s\",\"image\":\"%s\",\"upper\":\"%s\"}", cid,
                 FX_CONTAINER_NAME, id, upper_path);
        snprintf(path, sizeof(path), "containers/%s/config.json", cid);
        r = util_write_file_atomic_at(store_dirfd(s), path, json, strlen(json), 0644);
        if (r < 0)
                goto out_b;
        if (ret_image)
                memcpy(ret_image, id, sizeof(id));
        if (ret_container)
                memcpy(ret_container, cid, sizeof(cid));
out_b:
        tbuild_free(b);
out:
        store_close(s);
        return r;
}
