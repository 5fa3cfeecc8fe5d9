/* SPDX-License-Identifier: Apache-2.0 */
/* Images from local sources: oci:DIR[:TAG], oci-archive:FILE[:TAG],
 * docker-archive:FILE[:NAME:TAG], and `load` (either archive, from a file or a stream). */
#pragma once

#include <stdbool.h>

#include "digest.h"
#include "ingest.h"
#include "reference.h"
#include "store.h"

struct import_image {
        char id[DIGEST_HEX_LEN + 1];
        char **names;       /* NULL-terminated full names it was given */
        bool existed;       /* it was in the store already: nothing was done */
        unsigned layers, layers_ingested;
};

struct import_result {
        struct import_image *images;
        size_t n_images;
};
void import_result_free(struct import_result *r);

/* The layers of an image for import_image: n of them, in manifest order. fetch must ingest
 * (ingest_layer) the layers at the indexes which[0..n_which), whose diffids it is given; the
 * list leaves out layers in the store already and repeats of a diffid. It may work on them in
 * any order or in parallel. On failure it sets *ret_error (one line). */
struct import_layers {
        size_t n;
        int (*fetch)(void *userdata, store *s, const size_t *which, size_t n_which,
                     const uint8_t (*diffids)[DIGEST_LEN], char **ret_error);
        /* Preferred to fetch when set: the same, but each layer is left staged
         * (ingest_layer_stage) in ret_staged[k] for which[k], and import_image publishes them
         * together with the image, so a refused image (or a failed or killed pull) leaves the
         * store as it was. What it staged before failing, import_image frees. */
        int (*stage)(void *userdata, store *s, const size_t *which, size_t n_which,
                     const uint8_t (*diffids)[DIGEST_LEN], ingest_staged **ret_staged, char **ret_error);
        void *userdata;
};

/* Ingest what an image lacks (nothing when the image is in the store), commit it with its
 * names (a NULL-terminated vector this call takes over) and append it to res. Shared by the
 * local transports and the registry client. */
int import_image(store *s, const char *manifest, size_t manifest_len, const char *config, size_t config_len,
                 char **names, const struct import_layers *layers, struct import_result *res, char **ret_error);

/* Pull from a local transport (not REF_DOCKER). */
int import_pull(store *s, const struct reference *ref, struct import_result *ret, char **ret_error);
/* `load`: an archive (docker-archive or oci-archive, detected) read from fd; every image in it. */
int import_load(store *s, int fd, struct import_result *ret, char **ret_error);
