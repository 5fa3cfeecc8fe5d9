/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references, parsed the way docker (distribution/reference), podman and skopeo do.
 *
 * Accepted forms:
 *   NAME[:TAG][@DIGEST]            a docker reference (no transport)
 *   docker://NAME[:TAG][@DIGEST]   the same, skopeo style
 *   oci:DIR[:TAG]                  an OCI image layout directory
 *   oci-archive:FILE[:TAG]         a tar of an OCI image layout
 *   docker-archive:FILE[:NAME[:TAG]]  a `docker save` tar; NAME:TAG is a docker reference
 *
 * Where the path ends:
 *   oci:, oci-archive:  at the first ':' after the last '/', so directory components may
 *                       contain ':' but the last component of the path may not, and TAG may
 *                       not contain '/' ("oci:/srv/a:b/layout:v1" is "/srv/a:b/layout" + "v1").
 *   docker-archive:     at the first ':' (skopeo's rule): the optional NAME may itself contain
 *                       '/' and a registry port, so no '/'-based rule can tell a path's ':' from
 *                       a name's; FILE therefore cannot contain ':'.
 *
 * Docker names: the first '/'-separated component is a registry iff it contains '.' or ':', is
 * "localhost", or has an uppercase letter (docker's rule); otherwise the registry is docker.io,
 * and a single-component docker.io repository gets "library/". "index.docker.io" is
 * "docker.io". Repositories are lowercase; "registry/repository" is at most 255 characters;
 * tags match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}; digests are "sha256:" + 64 lowercase hex (no
 * other algorithm). Registries: DNS names or IPv4 with an optional :port (1-65535), or
 * "[IPv6]" with an optional :port. A bare 64-hex name is refused (docker: it is an image id).
 *
 * "docker:NAME" without "//" is not a transport: it is the docker reference "docker:NAME"
 * (the official image "docker", e.g. docker:dind), as docker itself reads it.
 */
#pragma once

#include <stdbool.h>

enum reference_transport { REF_DOCKER, REF_OCI, REF_OCI_ARCHIVE, REF_DOCKER_ARCHIVE };

struct reference {
        enum reference_transport transport;
        /* REF_DOCKER always; REF_DOCKER_ARCHIVE when a NAME was given (normalized, NULL
         * otherwise); NULL for oci and oci-archive. */
        char *registry;   /* "docker.io", "127.0.0.1:5000", "localhost", "[::1]:5000" */
        char *repository; /* "library/busybox" */
        char *tag;        /* NULL when only a digest was given; "latest" when neither was */
        char *digest;     /* "sha256:<hex>" or NULL (never set for docker-archive) */
        /* oci, oci-archive, docker-archive: the DIR or FILE; NULL for REF_DOCKER. */
        char *path;
        /* oci, oci-archive: the TAG as given; docker-archive: the NAME[:TAG] as given; NULL
         * when absent and always for REF_DOCKER. */
        char *name;
};

/*
 * Parse s into ret. Returns 0, -EINVAL for a malformed reference, or -EPROTONOSUPPORT for a
 * transport skopeo knows but ctfs does not ("dir:", "containers-storage:", "docker-daemon:",
 * "ostree:", "sif:", "tarball:"). ret is written only on success; free it with
 * reference_free() (which also accepts a zeroed struct, so _cleanup_(reference_free) works).
 */
int reference_parse(const char *s, struct reference *ret);
void reference_free(struct reference *r);

/*
 * The full docker name of a docker reference (bare or docker://):
 *   "busybox"            -> "docker.io/library/busybox:latest"
 *   "busybox:1"          -> "docker.io/library/busybox:1"
 *   "quay.io/a/b"        -> "quay.io/a/b:latest"
 *   "localhost/x:v1"     -> "localhost/x:v1"
 *   "name@sha256:..."    -> "docker.io/library/name@sha256:..."
 *   "name:t@sha256:..."  -> "docker.io/library/name:t@sha256:..."
 * -EINVAL for a malformed name or one with another transport.
 */
int reference_normalize(const char *name, char **ret_full);

/*
 * Display string, never NULL: "registry/repository[:tag][@digest]" for REF_DOCKER;
 * "oci:PATH[:TAG]", "oci-archive:PATH[:TAG]", "docker-archive:PATH[:NAME]" for the others.
 */
char *reference_to_string(const struct reference *r);

/* Syntax checks, exposed for callers that validate pieces (e.g. `ctfs tag`, RepoTags). */
bool reference_tag_is_valid(const char *tag);
bool reference_digest_is_valid(const char *digest);
