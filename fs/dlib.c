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

static int result(struct lib *l, char **ret_error)
{
        if (l->result < 0 && ret_error)
                *ret_error = xstrdup(l->error);
        return l->result;
}

/* load_NAME() opens NAME_lib and looks up every symbol of SYMBOLS; dlib_NAME_load() runs it
 * once. */
#define DLIB_LOADER(name, SYMBOLS)                                                                 \
        static void load_##name(void)                                                              \
        {                                                                                          \
                void *h = open_lib(&name##_lib);                                                   \
                if (!h)                                                                            \
                        return;                                                                    \
                const char *missing = NULL;                                                        \
                SYMBOLS(DLIB_LOOKUP)                                                               \
                check(&name##_lib, missing);                                                       \
        }                                                                                          \
        int dlib_##name##_load(char **ret_error)                                                   \
        {                                                                                          \
                pthread_once(&name##_lib.once, load_##name);                                       \
                return result(&name##_lib, ret_error);                                             \
        }
DLIB_LOADER(curl, DLIB_CURL_SYMBOLS)
DLIB_LOADER(archive, DLIB_ARCHIVE_SYMBOLS)
DLIB_LOADER(crypto, DLIB_CRYPTO_SYMBOLS)
