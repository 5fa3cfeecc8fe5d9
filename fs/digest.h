/* SPDX-License-Identifier: Apache-2.0 */
/* sha256 digests: streaming hashes and the "sha256:<hex>" text form. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define DIGEST_STR_LEN (7 + DIGEST_HEX_LEN + 1)

typedef struct digest_ctx digest_ctx;

digest_ctx *digest_new(void);
void digest_update(digest_ctx *c, const void *data, size_t len);
/* Finishes and resets the context so it can be reused. */
void digest_final(digest_ctx *c, uint8_t out[DIGEST_LEN]);
void digest_free(digest_ctx *c);
void digest_freep(digest_ctx **c);

void digest_buf(const void *data, size_t len, uint8_t out[DIGEST_LEN]);
void digest_to_hex(const uint8_t d[DIGEST_LEN], char out[DIGEST_HEX_LEN + 1]);
/* "sha256:<hex>" */
void digest_to_str(const uint8_t d[DIGEST_LEN], char out[DIGEST_STR_LEN]);
/* Accepts "sha256:<64 lowercase hex>" only; returns 0 or -EINVAL. */
int digest_parse(const char *s, uint8_t out[DIGEST_LEN]);
int digest_parse_hex(const char *hex, uint8_t out[DIGEST_LEN]);
/* Hash a file's contents through an fd (reads from the current offset to EOF). */
int digest_fd(int fd, uint8_t out[DIGEST_LEN]);
