/* SPDX-License-Identifier: Apache-2.0 */
/* Images in the store: assemble one from ingested layers, name, untag, remove, prune, usage. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "ingest.h"
#include "store.h"

/*
 * Publish an image whose layers are all in the store: verifies the blobs, merges the layer
 * indexes into the image tree, writes images/<id>/ with one rename and points every name in
 * names (full names, NULL-terminated) at it. *ret_existed tells whether the image was there.
 */
int image_commit(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                 const char *const *names, char ret_id[DIGEST_HEX_LEN + 1], bool *ret_existed, char **ret_error);

/*
 * The same for a pull that staged the layers the store lacked (ingest_layer_stage): they are
 * merged from their work directories and published together with the image under one hold of
 * the store lock, so an image that is refused (a hardlink to nothing, ...) publishes nothing.
 * A layer neither staged nor in the store (a concurrent prune removed it after the caller
 * looked) gives -ENOENT: stage it and call again.
 */
int image_commit_staged(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                        const char *const *names, ingest_staged *const *staged, size_t n_staged,
                        char ret_id[DIGEST_HEX_LEN + 1], bool *ret_existed, char **ret_error);

/* Names: src is any image reference store_resolve_image accepts; dst a name to normalize. */
int image_tag(store *s, const char *src, const char *dst, char **ret_error);

/* docker rmi: a name is untagged, the image goes when no name is left; an id with several
 * names, or an image a container uses, needs force; with force an image a container uses loses
 * its names but stays until the containers are gone. ret_untagged/ret_deleted say what it did. */
int image_remove(store *s, const char *what, bool force, char ***ret_untagged, char **ret_deleted,
                 char **ret_error);

struct prune_result {
        uint64_t images, layers, objects, blobs, bytes; /* blobs: manifests, configs, layer archives */
};
/* Remove images without names that no container uses, then layers and objects no image uses,
 * and abandoned work directories. */
int store_prune(store *s, struct prune_result *ret);

struct df_image {
        char id[DIGEST_HEX_LEN + 1];
        char **names;
        uint64_t size;   /* bytes of file contents the image shows */
        uint64_t shared; /* of those, bytes in objects another image uses too */
        uint64_t unique;
};
struct df_result {
        uint64_t objects, object_bytes; /* on disk, after dedup */
        uint64_t logical_bytes;          /* sum over images of their size */
        uint64_t layers, images, containers;
        uint64_t container_bytes;
        struct df_image *per_image;
        size_t n_images;
};
int store_df(store *s, struct df_result *ret);
void df_result_free(struct df_result *r);

/* The layer diffids of an image, from its image.json. */
int image_layers(store *s, const char *id, uint8_t (**ret_diffids)[DIGEST_LEN], size_t *ret_n);
