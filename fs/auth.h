/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Registry credentials, kept in the files podman and docker use:
 *
 *   { "auths": { "quay.io": { "auth": "<base64 of user:password>" }, ... } }
 *
 * Files read, in order (containers/image's rule): the file given (--authfile) or
 * $REGISTRY_AUTH_FILE alone when either is set; otherwise the containers auth.json
 * ($XDG_RUNTIME_DIR/containers/auth.json, or /run/containers/<uid>/auth.json without
 * XDG_RUNTIME_DIR), ~/.config/containers/auth.json, then ~/.docker/config.json. The first file
 * with an entry for the registry wins.
 *
 * Keys: "registry[:port]" or podman's "registry/namespace[/repo]" (the most specific match
 * wins); docker's legacy "https://index.docker.io/v1/" form is read as its host, and
 * index.docker.io / registry-1.docker.io mean docker.io. Credential helpers (credsStore,
 * credHelpers) and identity tokens are not supported; such entries are skipped.
 */
#pragma once

#include <stddef.h>

/* Credentials for registry (as in a reference: "docker.io", "127.0.0.1:5000") and repository
 * ("library/busybox", or NULL) from one auth file's contents. 0 and both strings, -ENOENT when
 * the file has no entry that applies, -EINVAL when it is not a valid auth file. */
int auth_parse(const char *json, size_t len, const char *registry, const char *repository, char **ret_user,
               char **ret_pass);

/* The same over the files listed above. auth_file may be NULL. A file that exists but does not
 * parse is an error (-EINVAL, with *ret_path naming it when ret_path is given). */
int auth_lookup(const char *auth_file, const char *registry, const char *repository, char **ret_user, char **ret_pass,
                char **ret_path);

/* The file login and logout write: auth_file, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/
 * auth.json, else /run/containers/<uid>/auth.json. */
char *auth_default_path(const char *auth_file);

/* A key as podman writes it: scheme and trailing '/' dropped, docker.io aliases folded.
 * NULL when key is empty. */
char *auth_normalize_key(const char *key);

/* Set or replace key's entry in the file at path, keeping every other entry and field; the
 * file is written atomically with mode 0600 (its directory is created 0700). */
int auth_save(const char *path, const char *key, const char *user, const char *pass);
/* Remove key's entry (-ENOENT when there is none), or every entry when key is NULL. */
int auth_remove(const char *path, const char *key);

/* Standard base64 with padding (RFC 4648 §4). decode: whitespace is not allowed; -EINVAL on
 * malformed input; the result is NUL-terminated (ret_len excludes the NUL). */
char *auth_base64_encode(const void *data, size_t len);
int auth_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);
