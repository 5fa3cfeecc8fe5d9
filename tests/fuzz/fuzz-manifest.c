/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: every JSON document ctfs reads from an image or a registry. */
#include "manifest.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *json = (const char *)data;
        manifest_sniff(json, size);
        struct manifest_index idx;
        if (manifest_parse_index(json, size, &idx) == 0) {
                size_t k;
                manifest_index_pick(&idx, "linux", "amd64", NULL, &k);
                manifest_index_pick(&idx, "linux", "arm", "v7", &k);
                free(manifest_index_platforms(&idx));
                manifest_index_find_ref(&idx, "latest", &k);
                manifest_index_free(&idx);
        }
        struct manifest m;
        if (manifest_parse(json, size, &m) == 0)
                manifest_free(&m);
        struct image_config c;
        if (image_config_parse(json, size, &c) == 0)
                image_config_free(&c);
        struct docker_save_entry *e;
        size_t n;
        if (docker_save_manifest_parse(json, size, &e, &n) == 0)
                docker_save_entries_free(e, n);
        return 0;
}
