/* SPDX-License-Identifier: Apache-2.0 */
/* Layer ingest: one pass over a layer blob (gzip, zstd or plain tar, detected from the data)
 * that hashes the blob and its uncompressed stream, files every regular file's bytes as an
 * object and builds the layer index. Nothing is published until both digests check out. */
#pragma once

#include <stdint.h>

#include "digest.h"
#include "store.h"

struct ingest_result {
        uint8_t blob_digest[DIGEST_LEN];   /* sha256 of the bytes as read */
        uint8_t diffid[DIGEST_LEN];        /* sha256 of the uncompressed tar stream */
        uint64_t blob_size, tar_size;
        uint64_t entries, files, new_objects, new_bytes;
};

/*
 * Read a layer from fd to EOF and, when it checks out, publish its objects and
 * layers/<diffid>/index. expected_blob and expected_diffid may be NULL. On failure *ret_error
 * (when given) holds a one-line description and nothing is published.
 */
int ingest_layer(store *s, int fd, const uint8_t *expected_blob, const uint8_t *expected_diffid,
                 struct ingest_result *ret_result, char **ret_error);
