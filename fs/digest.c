/* SPDX-License-Identifier: Apache-2.0 */
#include "digest.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dlib-crypto.h"
#include "util.h"

struct digest_ctx {
        EVP_MD_CTX *md;
};

/* libcrypto is a dependency of the package: not finding it is a broken installation */
static void load(void)
{
        char *err = NULL;
        if (dlib_crypto_load(&err) < 0) {
                fprintf(stderr, "ctfs: %s\n", err);
                abort();
        }
}

digest_ctx *digest_new(void)
{
        load();
        digest_ctx *c = xmalloc(sizeof(*c));
        c->md = EVP_MD_CTX_new();
        if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1)
                abort();
        return c;
}

void digest_update(digest_ctx *c, const void *data, size_t len)
{
        if (len)
                EVP_DigestUpdate(c->md, data, len);
}

void digest_final(digest_ctx *c, uint8_t out[DIGEST_LEN])
{
        unsigned int n = DIGEST_LEN;
        EVP_DigestFinal_ex(c->md, out, &n);
        EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
}

void digest_free(digest_ctx *c)
{
        if (!c)
                return;
        EVP_MD_CTX_free(c->md);
        free(c);
}

void digest_freep(digest_ctx **c) { digest_free(*c); }

void digest_buf(const void *data, size_t len, uint8_t out[DIGEST_LEN])
{
        load();
        unsigned int n = DIGEST_LEN;
        EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void digest_to_hex(const uint8_t d[DIGEST_LEN], char out[DIGEST_HEX_LEN + 1])
{
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < DIGEST_LEN; i++) {
                out[2 * i] = hex[d[i] >> 4];
                out[2 * i + 1] = hex[d[i] & 15];
        }
        out[DIGEST_HEX_LEN] = '\0';
}

void digest_to_str(const uint8_t d[DIGEST_LEN], char out[DIGEST_STR_LEN])
{
        memcpy(out, "sha256:", 7);
        digest_to_hex(d, out + 7);
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

int digest_parse_hex(const char *hex, uint8_t out[DIGEST_LEN])
{
        uint8_t d[DIGEST_LEN];
        if (strlen(hex) != DIGEST_HEX_LEN)
                return -EINVAL;
        for (int i = 0; i < DIGEST_LEN; i++) {
                int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                d[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(out, d, DIGEST_LEN);
        return 0;
}

int digest_parse(const char *s, uint8_t out[DIGEST_LEN])
{
        if (!s || strncmp(s, "sha256:", 7) != 0)
                return -EINVAL;
        return digest_parse_hex(s + 7, out);
}

int digest_fd(int fd, uint8_t out[DIGEST_LEN])
{
        _cleanup_(digest_freep) digest_ctx *c = digest_new();
        char buf[65536];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                digest_update(c, buf, (size_t)n);
        }
        digest_final(c, out);
        return 0;
}
