/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target: what a registry says when it refuses a request: the WWW-Authenticate challenge
 * parser (a header value from an untrusted server) and the JSON error body reader. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"
#include "util.h"

/* Checks what the parser promises its callers (fs/registry.h); a broken promise aborts. */
static void check(const struct registry_challenge *c, size_t n)
{
        if (n > 16)
                abort();
        for (size_t i = 0; i < n; i++) {
                if (!c[i].scheme || !c[i].scheme[0] || c[i].n_params > 32)
                        abort();
                for (const char *p = c[i].scheme; *p; p++)
                        if (isupper((unsigned char)*p))
                                abort();
                /* a token68 is the only thing after the scheme */
                if (c[i].token68 && c[i].n_params)
                        abort();
                for (size_t k = 0; k < c[i].n_params; k++) {
                        if (!c[i].names[k] || !c[i].names[k][0] || !c[i].values[k])
                                abort();
                        for (const char *p = c[i].names[k]; *p; p++)
                                if (isupper((unsigned char)*p))
                                        abort();
                        /* values are unquoted: no control character but tab reaches a caller
                         * (they end up in URLs and in error lines) */
                        for (const char *p = c[i].values[k]; *p; p++)
                                if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                                        abort();
                        if (registry_challenge_param(&c[i], c[i].names[k]) == NULL)
                                abort();
                }
                registry_challenge_param(&c[i], "realm");
                registry_challenge_param(&c[i], "service");
                registry_challenge_param(&c[i], "scope");
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size > 16384)
                return 0;
        /* a header value is a C string: everything up to the first NUL */
        char *s = xmalloc(size + 1);
        memcpy(s, data, size);
        s[size] = '\0';
        struct registry_challenge *c = NULL;
        size_t n = 0;
        if (registry_parse_challenges(s, &c, &n) == 0) {
                check(c, n);
                registry_challenges_free(c, n);
        }
        free(s);

        /* the same bytes as an error body: one line, no control characters, capped */
        char *m = registry_error_message((const char *)data, size);
        if (m) {
                if (!m[0] || strlen(m) > 300)
                        abort();
                for (const char *p = m; *p; p++)
                        if ((unsigned char)*p < 0x20 || *p == 0x7f)
                                abort();
                free(m);
        }
        return 0;
}
