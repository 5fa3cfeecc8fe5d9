/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI distribution client (libcurl): pulls images from registries into the store.
 *
 * - /v2/ ping; plain HTTP only for loopback registries (127.0.0.0/8, ::1, localhost: docker's
 *   rule) or with insecure set, and then only after HTTPS failed; TLS verified otherwise, with
 *   extra CAs (and client certificates) from a certs.d-style directory.
 * - Auth: anonymous, Basic, and the Bearer token flow (WWW-Authenticate challenge, token request
 *   with service and scope, tokens reused per scope until they expire). Credentials from the
 *   options, else from the auth files (auth.h).
 * - Manifests by tag or digest; an index picks a platform. Every manifest, config and layer is
 *   checked against its digest; nothing unverified is published.
 * - Layers missing from the store download in parallel (6 at once by default), each streamed
 *   through a socketpair straight into ingest_layer in its own thread, so hashing,
 *   decompressing and ingesting happen while the bytes arrive.
 * - 429 and 5xx are retried with backoff (Retry-After honoured); a dropped or stalled
 *   connection resumes with a Range request into the same ingest stream; redirects are followed
 *   by hand, and Authorization is never sent to another origin.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "import.h"
#include "reference.h"
#include "store.h"

/* ---- WWW-Authenticate (RFC 7235): untrusted input, parsed without allocating surprises ---- */

struct registry_challenge {
        char *scheme;  /* lowercased: "bearer", "basic", ... */
        char *token68; /* NULL unless the challenge is "Scheme token68" */
        char **names;  /* lowercased parameter names */
        char **values; /* values, unquoted and unescaped */
        size_t n_params;
};

/* All challenges of one header value ("Bearer realm=\"x\",service=\"y\", Basic realm=z").
 * -EINVAL when it is malformed (then nothing is returned). At most 16 challenges and 32
 * parameters each. */
int registry_parse_challenges(const char *header, struct registry_challenge **ret, size_t *ret_n);
void registry_challenges_free(struct registry_challenge *c, size_t n);
/* A parameter by name (case-insensitive), or NULL. */
const char *registry_challenge_param(const struct registry_challenge *c, const char *name);

/* What a registry's JSON error body says: errors[0].message (with .detail when it is a
 * string), else "details", "error_description", "error" or "message" (token servers). NULL
 * when there is nothing usable. Control characters are replaced, the length capped. */
char *registry_error_message(const char *body, size_t len);

/* ---- pulling ---- */

enum registry_layer_state {
        REGISTRY_LAYER_WAITING,     /* queued for download */
        REGISTRY_LAYER_EXISTS,      /* in the store already */
        REGISTRY_LAYER_DOWNLOADING, /* bytes is what arrived so far */
        REGISTRY_LAYER_RETRYING,    /* a request failed; trying again */
        REGISTRY_LAYER_DONE,        /* downloaded, verified and ingested */
        REGISTRY_LAYER_FAILED,
};

struct registry_progress {
        size_t layer;       /* index in the manifest */
        size_t n_layers;
        const char *digest; /* "sha256:<hex>" of the blob */
        enum registry_layer_state state;
        uint64_t bytes, total;
};

struct registry_options {
        bool insecure;        /* --tls-verify=false: no TLS verification, plain HTTP allowed */
        const char *cert_dir; /* *.crt: CAs; *.cert + *.key: client certificate. NULL: the
                               * registry's dir in /etc/containers/certs.d or /etc/docker/certs.d */
        const char *username, *password; /* NULL: from the auth files */
        const char *auth_file;           /* NULL: $REGISTRY_AUTH_FILE or the defaults */
        const char *os, *arch, *variant; /* platform; NULL: the host's */
        unsigned parallel;               /* layer downloads at once; 0 means 6 */
        /* Called from several threads, one call at a time. */
        void (*progress)(void *userdata, const struct registry_progress *p);
        void *userdata;
};

/*
 * Pull a REF_DOCKER reference into the store and name it (registry/repository:tag, or
 * @digest when pulled by digest only). The result is like import_pull's: one image, existed
 * set when it was in the store already (then only the manifest was fetched). On failure
 * *ret_error is one line (without the "pull NAME: " prefix) and the store is unchanged.
 */
int registry_pull(store *s, const struct reference *ref, const struct registry_options *o, struct import_result *ret,
                  char **ret_error);

/*
 * Check credentials (o->username and o->password) against registry ("quay.io",
 * "127.0.0.1:5000"): Basic registries must accept them on /v2/, token registries must issue a
 * token for them. 0 when they work (or the registry needs none: *ret_needs_auth false).
 */
int registry_login(const char *registry, const struct registry_options *o, bool *ret_needs_auth, char **ret_error);

/* Whether plain HTTP is allowed for a registry without --tls-verify=false. */
bool registry_is_loopback(const char *registry);
