/* SPDX-License-Identifier: Apache-2.0 */
/* libcrypto (SHA-256), loaded on first use (dlib.h): include this instead of <openssl/evp.h>. */
#pragma once

#include <openssl/evp.h>

#include "dlib.h"

#define DLIB_CRYPTO_SYMBOLS(X) \
        X(EVP_Digest) \
        X(EVP_DigestFinal_ex) \
        X(EVP_DigestInit_ex) \
        X(EVP_DigestUpdate) \
        X(EVP_MD_CTX_free) \
        X(EVP_MD_CTX_new) \
        X(EVP_sha256)

DLIB_CRYPTO_SYMBOLS(DLIB_DECLARE)

#define EVP_Digest dlib_EVP_Digest
#define EVP_DigestFinal_ex dlib_EVP_DigestFinal_ex
#define EVP_DigestInit_ex dlib_EVP_DigestInit_ex
#define EVP_DigestUpdate dlib_EVP_DigestUpdate
#define EVP_MD_CTX_free dlib_EVP_MD_CTX_free
#define EVP_MD_CTX_new dlib_EVP_MD_CTX_new
#define EVP_sha256 dlib_EVP_sha256
