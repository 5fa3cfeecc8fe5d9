/* SPDX-License-Identifier: Apache-2.0 */
#include "dlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include "dlib-archive.h"
#include "dlib-crypto.h"
#include "dlib-curl.h"
#include "util.h"

/* The pointers; ## and # keep the names from being replaced by the headers' macros. */
#define DLIB_DEFINE(name) __typeof__(dlib_##name) dlib_##name;
DLIB_CURL_SYMBOLS(DLIB_DEFINE)
DLIB_ARCHIVE_SYMBOLS(DLIB_DEFINE)
DLIB_CRYPTO_SYMBOLS(DLIB_DEFINE)

struct lib {
        const char *soname; /* the ABI the headers describe (libcurl 4 since 2006, libarchive 13 since 2011) */
        pthread_once_t once;
        int result;
        char error[512];
};

#define DLIB_LOOKUP(name)                                                                          \
        if (!(dlib_##name = (__typeof__(dlib_##name))dlsym(h, #name)))                            \
                missing = #name;

static struct lib curl_lib = { .soname = "libcurl.so.4", .once = PTHREAD_ONCE_INIT };
static struct lib archive_lib = { .soname = "libarchive.so.13", .once = PTHREAD_ONCE_INIT };
static struct lib crypto_lib = { .soname = "libcrypto.so.3", .once = PTHREAD_ONCE_INIT };

static void *open_lib(struct lib *l)
{
        /* RTLD_NODELETE: the pointers stay valid for the life of the process */
        void *h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
        if (!h) {
                const char *e = dlerror();
                snprintf(l->error, sizeof(l->error), "load %s: %s", l->soname, e ? e : "unknown error");
                l->result = -ELIBACC;
        }
        return h;
}

static void check(struct lib *l, const char *missing)
{
        if (missing) {
                snprintf(l->error, sizeof(l->error), "load %s: it has no %s", l->soname, missing);
                l->result = -ELIBACC;
        }
}

static void load_curl(void)
{
        void *h = open_lib(&curl_lib);
        if (!h)
                return;
        const char *missing = NULL;
        DLIB_CURL_SYMBOLS(DLIB_LOOKUP)
        check(&curl_lib, missing);
}

static void load_archive(void)
{
        void *h = open_lib(&archive_lib);
        if (!h)
                return;
        const char *missing = NULL;
        DLIB_ARCHIVE_SYMBOLS(DLIB_LOOKUP)
        check(&archive_lib, missing);
}

static void load_crypto(void)
{
        void *h = open_lib(&crypto_lib);
        if (!h)
                return;
        const char *missing = NULL;
        DLIB_CRYPTO_SYMBOLS(DLIB_LOOKUP)
        check(&crypto_lib, missing);
}

static int result(struct lib *l, char **ret_error)
{
        if (l->result < 0 && ret_error)
                *ret_error = xstrdup(l->error);
        return l->result;
}

int dlib_curl_load(char **ret_error)
{
        pthread_once(&curl_lib.once, load_curl);
        return result(&curl_lib, ret_error);
}

int dlib_archive_load(char **ret_error)
{
        pthread_once(&archive_lib.once, load_archive);
        return result(&archive_lib, ret_error);
}

int dlib_crypto_load(char **ret_error)
{
        pthread_once(&crypto_lib.once, load_crypto);
        return result(&crypto_lib, ret_error);
}
