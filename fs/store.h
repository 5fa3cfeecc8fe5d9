/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: one directory tree under the root.
 *
 *   lock                      flock(2) taken for every mutation
 *   tmp/                      work in progress; published by rename(2) only when complete
 *   objects/sha256/ab/<hex>   file contents, keyed by the sha256 of their bytes (mode 0444)
 *   blobs/sha256/<hex>        manifests and configs, verified against their digest
 *   layers/<diffid hex>/      index (tree file), info.json  (keyed by the uncompressed digest)
 *   images/<id hex>/          image.json, tree  (id = the config digest, as docker does)
 *   refs.json                 { "docker.io/library/busybox:1": "<id hex>", ... }
 *   containers/<id>/          config.json (the record), upper/, work/
 *   mount.json                where the daemon is mounted (written by the daemon)
 *   cache/                    derived data that can be rebuilt at any time (the compiled
 *                             seccomp program); never trusted when damaged
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"
#include "tree.h"

typedef struct store store;

#define STORE_DEFAULT_ROOT "/var/lib/ctfs"

/* Open (creating when missing) the store at root; NULL root means $CTFS_ROOT or the default. */
int store_open(const char *root, store **ret_store);
void store_close(store *s);
void store_closep(store **s);
const char *store_root(const store *s);
int store_dirfd(const store *s);

/* Exclusive lock for mutations; returns the lock fd (close it to release). */
int store_lock(store *s);
/* Make a private work directory under tmp/ (removed by the caller or by prune). */
int store_mkdtemp(store *s, char **ret_relpath);
/* The same, flock'ed (shared) through *ret_fd for as long as the fd is open, for work done
 * without the store lock: prune removes only work directories nobody holds. */
int store_mkdtemp_locked(store *s, char **ret_relpath, int *ret_fd);

/* Calls fn for each entry (but . and ..) of a directory below the store root; a missing
 * directory has no entries. dfd is the directory, for *at calls on name. */
int store_list_dir(store *s, const char *rel, void (*fn)(store *s, int dfd, const char *name, void *u), void *u);

/* objects/sha256/ab/<hex> */
void store_object_relpath(const uint8_t digest[DIGEST_LEN], char out[96]);
int store_object_open(store *s, const uint8_t digest[DIGEST_LEN]);
bool store_object_exists(store *s, const uint8_t digest[DIGEST_LEN]);
/* Publish a complete temp file (relative to the store root) as the object for digest. If the
 * object already exists the temp file is removed. */
int store_object_publish(store *s, const char *tmp_relpath, const uint8_t digest[DIGEST_LEN]);

/* Blobs (manifests, configs): stored after their digest was checked. */
int store_blob_put(store *s, const void *data, size_t len, const uint8_t expected[DIGEST_LEN]);
int store_blob_get(store *s, const uint8_t digest[DIGEST_LEN], char **ret_data, size_t *ret_len);

bool store_layer_exists(store *s, const uint8_t diffid[DIGEST_LEN]);
int store_layer_open_tree(store *s, const uint8_t diffid[DIGEST_LEN], tree **ret_tree);

/* References: full names ("docker.io/library/busybox:1") to image ids (hex). */
struct store_ref {
        char *name;
        char id[DIGEST_HEX_LEN + 1];
};
int store_refs_load(store *s, struct store_ref **ret_refs, size_t *ret_n);
void store_refs_free(struct store_ref *refs, size_t n);
/* Caller holds the lock. id NULL removes the name. */
int store_ref_set(store *s, const char *name, const char *id);

/* Images */
struct store_image {
        char id[DIGEST_HEX_LEN + 1];          /* config digest hex */
        char digest[DIGEST_STR_LEN];          /* manifest digest */
        int64_t created;                      /* from the config, seconds since the epoch */
        uint64_t size;                        /* sum of file sizes in the merged tree */
        char **names;                         /* NULL-terminated, from refs.json */
};
int store_list_images(store *s, struct store_image **ret_images, size_t *ret_n);
void store_images_free(struct store_image *imgs, size_t n);
/* Accepts a full or short name ("busybox" → docker.io/library/busybox:latest), a full id,
 * "sha256:<id>", or an unambiguous id prefix of at least 4 characters. */
int store_resolve_image(store *s, const char *what, char ret_id[DIGEST_HEX_LEN + 1]);
int store_image_open_tree(store *s, const char *id, tree **ret_tree);
bool store_image_exists(store *s, const char *id);

/* Containers: only what the filesystem needs; runtime/ keeps the rest of the record. */
struct store_container {
        char *id;       /* 64 hex */
        char *name;     /* may be NULL */
        char image[DIGEST_HEX_LEN + 1];
        char *upper;    /* absolute path of the upper dir */
        bool known;     /* listed by id only (see store_list_containers) */
};
/*
 * Container names: names/<name> is a symlink to the id of the container of that name. A create
 * claims its name with one symlinkat (two creates never get one name), rm releases it, and a
 * lookup reads one link instead of every record. A link whose container is gone (a crash
 * between the two) names nothing and may be claimed again. names/ is built from the records
 * when missing (a store from before it, or after `ctfs check --repair`). Claim and release
 * under the store lock.
 */
int store_name_claim(store *s, const char *name, const char *id); /* -EEXIST: in use */
void store_name_release(store *s, const char *name, const char *id);
/* -ENOENT: no such name; -ENOSYS: no names/ yet (the caller reads the records). */
int store_name_lookup(store *s, const char *name, char ret_id[DIGEST_HEX_LEN + 1]);
/* Links that disagree with the records, counted; repair removes names/ (built again). */
int store_names_check(store *s, bool repair, int *ret_problems);
/* The containers' records. known (may be NULL) names the ids the caller already has: a record
 * never changes once written, so those are listed with their id only, unread. */
int store_list_containers(store *s, bool (*known)(void *ud, const char *id), void *ud, struct store_container **ret,
                          size_t *ret_n);
void store_containers_free(struct store_container *c, size_t n);
