/* SPDX-License-Identifier: Apache-2.0 */
/* Layer ingest: one pass over a layer blob (gzip, zstd or plain tar, detected from the data)
 * that hashes the blob (unless its caller does) and its uncompressed stream, files every regular
 * file's bytes as an object (big ones with O_DIRECT) and builds the layer index. Nothing is
 * published until both digests check out. */
#pragma once

#include <stdint.h>

#include "digest.h"
#include "store.h"
#include "tree.h"

struct ingest_result {
        uint8_t blob_digest[DIGEST_LEN];   /* sha256 of the bytes as read (zeros without expected_blob) */
        uint8_t diffid[DIGEST_LEN];        /* sha256 of the uncompressed tar stream */
        uint64_t blob_size, tar_size;
        uint64_t entries, files, new_objects, new_bytes;
};

/*
 * Read a layer from fd to EOF and, when it checks out, publish its objects and
 * layers/<diffid>/index. expected_blob and expected_diffid may be NULL (without expected_blob
 * the blob is not hashed: for a caller that hashes it as it arrives). On failure *ret_error
 * (when given) holds a one-line description and nothing is published.
 */
int ingest_layer(store *s, int fd, const uint8_t *expected_blob, const uint8_t *expected_diffid,
                 struct ingest_result *ret_result, char **ret_error);

/*
 * The same in two steps, so that a pull can verify every layer of an image before it publishes
 * any: ingest_layer_stage reads and checks a layer and leaves its objects and index in a
 * locked work directory under tmp/ (prune leaves it alone; a killed process leaves it for
 * prune); ingest_staged_publish, called with the store lock held, moves them into the store.
 * ingest_staged_free removes whatever was not published.
 */
typedef struct ingest_staged ingest_staged;
int ingest_layer_stage(store *s, int fd, const uint8_t *expected_blob, const uint8_t *expected_diffid,
                       struct ingest_result *ret_result, ingest_staged **ret_staged, char **ret_error);
const uint8_t *ingest_staged_diffid(const ingest_staged *st);
int ingest_staged_open_tree(const ingest_staged *st, tree **ret_tree);
int ingest_staged_publish(ingest_staged *st, char **ret_error);
void ingest_staged_free(ingest_staged *st);
void ingest_staged_freep(ingest_staged **st);
