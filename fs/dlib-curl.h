/* SPDX-License-Identifier: Apache-2.0 */
/* libcurl, loaded on first use (dlib.h): include this instead of <curl/curl.h>. */
#pragma once

#include <curl/curl.h>

#include "dlib.h"

#define DLIB_CURL_SYMBOLS(X)                                                                       \
        X(curl_easy_cleanup)                                                                       \
        X(curl_easy_escape)                                                                        \
        X(curl_easy_getinfo)                                                                       \
        X(curl_easy_init)                                                                          \
        X(curl_easy_perform)                                                                       \
        X(curl_easy_setopt)                                                                        \
        X(curl_easy_strerror)                                                                      \
        X(curl_free)                                                                               \
        X(curl_global_init)                                                                        \
        X(curl_slist_append)                                                                       \
        X(curl_slist_free_all)                                                                     \
        X(curl_version_info)

DLIB_CURL_SYMBOLS(DLIB_DECLARE)

/* curl's type-checking wrappers (typecheck-gcc.h) would call the linked functions */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_cleanup dlib_curl_easy_cleanup
#define curl_easy_escape dlib_curl_easy_escape
#define curl_easy_getinfo dlib_curl_easy_getinfo
#define curl_easy_init dlib_curl_easy_init
#define curl_easy_perform dlib_curl_easy_perform
#define curl_easy_setopt dlib_curl_easy_setopt
#define curl_easy_strerror dlib_curl_easy_strerror
#define curl_free dlib_curl_free
#define curl_global_init dlib_curl_global_init
#define curl_slist_append dlib_curl_slist_append
#define curl_slist_free_all dlib_curl_slist_free_all
#define curl_version_info dlib_curl_version_info
