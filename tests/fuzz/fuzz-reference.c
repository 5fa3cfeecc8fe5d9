/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: image reference parsing and normalization. */
#include <string.h>

#include "reference.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 4096)
                return 0;
        /* a copy with a terminator: the input is not NUL-terminated */
        char *s = xmalloc(size + 1);
        memcpy(s, data, size);
        s[size] = '\0';
        struct reference r;
        if (reference_parse(s, &r) == 0) {
                char *str = r.transport == REF_DOCKER ? reference_to_string(&r) : NULL;
                free(str);
                reference_free(&r);
        }
        char *full = NULL;
        if (reference_normalize(s, &full) == 0) {
                /* normalizing a normalized name is the identity (or fails: "ostree:5000/x" read
                 * bare names a transport skopeo knows, while "docker://ostree:5000/x" does not) */
                char *again = NULL;
                if (reference_normalize(full, &again) == 0 && strcmp(full, again) != 0)
                        abort();
                free(again);
                free(full);
        }
        free(s);
        return 0;
}
