/* SPDX-License-Identifier: Apache-2.0 */
/* Images from local sources: oci:DIR[:TAG], oci-archive:FILE[:TAG],
 * docker-archive:FILE[:NAME:TAG], and `load` (either archive, from a file or a stream). */
#pragma once

#include <stdbool.h>

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

/* Pull from a local transport (not REF_DOCKER). */
int import_pull(store *s, const struct reference *ref, struct import_result *ret, char **ret_error);
/* `load`: an archive (docker-archive or oci-archive, detected) read from fd; every image in it. */
int import_load(store *s, int fd, struct import_result *ret, char **ret_error);
