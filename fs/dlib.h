/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Libraries that only some commands need, loaded on first use (dlopen) instead of at startup.
 * libcurl brings ~30 libraries of its own (TLS, HTTP/2, IDN, SSH, LDAP, Kerberos, ...) and
 * libarchive brings libxml2 with ICU and libstdc++: mapping and relocating them cost ~11 ms in
 * every ctfs process, half of what a whole `ctfs run --rm IMAGE true` may take. libcrypto
 * (SHA-256 only) is 4.5 MB of relocations and an OpenSSL configuration read at first use, ~1 ms
 * that `run`, `ps` and the daemon do not need. So ctfs does
 * not link them: dlib-curl.h and dlib-archive.h turn their functions into pointers that
 * dlib_*_load() fills, and the code that uses them calls them by their usual names.
 *
 * Call the load function before the first call into the library (the registry client does in
 * reg_init, archive readers and writers where they create their first object). Thread-safe;
 * loading again is free.
 */
#pragma once

/* extern pointer to a function of the same type as name, e.g. dlib_curl_easy_init */
#define DLIB_DECLARE(name) extern __typeof__(name) *dlib_##name;

/* 0, or -ELIBACC with *ret_error (when ret_error is not NULL) naming the library. */
int dlib_curl_load(char **ret_error);
int dlib_archive_load(char **ret_error);
int dlib_crypto_load(char **ret_error);
