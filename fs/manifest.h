/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI and Docker image documents (json-c): indexes / manifest lists, image manifests, image
 * configs, the manifest.json of `docker save`, and choosing a platform from an index.
 *
 * Everything here parses untrusted bytes. Documents larger than the *_MAX_SIZE limits, wrong
 * JSON types, missing required fields, negative sizes, malformed digests (only sha256 is
 * accepted), strings with embedded NULs, invalid UTF-8, nesting deeper than 64 and arrays over
 * the caps below all give -EINVAL (-EFBIG for an oversized document) and never a partial
 * result. JSON null is treated like an absent field.
 *
 * Every free function accepts a zeroed struct and leaves one behind, so
 *   _cleanup_(manifest_free) struct manifest m = {0};
 * works; ret_* outputs are written only on success.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define MEDIA_TYPE_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MEDIA_TYPE_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_TYPE_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MEDIA_TYPE_OCI_LAYER "application/vnd.oci.image.layer.v1.tar"
#define MEDIA_TYPE_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MEDIA_TYPE_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"
#define MEDIA_TYPE_OCI_LAYER_NONDIST "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
#define MEDIA_TYPE_OCI_EMPTY "application/vnd.oci.empty.v1+json"
#define MEDIA_TYPE_DOCKER_MANIFEST_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MEDIA_TYPE_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MEDIA_TYPE_DOCKER_MANIFEST_V1 "application/vnd.docker.distribution.manifest.v1+json"
#define MEDIA_TYPE_DOCKER_MANIFEST_V1_SIGNED "application/vnd.docker.distribution.manifest.v1+prettyjws"
#define MEDIA_TYPE_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MEDIA_TYPE_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MEDIA_TYPE_DOCKER_LAYER_FOREIGN "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/* The Accept header for manifest requests, most preferred first. */
#define MANIFEST_ACCEPT                                                                            \
        MEDIA_TYPE_OCI_INDEX ", " MEDIA_TYPE_DOCKER_MANIFEST_LIST ", " MEDIA_TYPE_OCI_MANIFEST    \
                             ", " MEDIA_TYPE_DOCKER_MANIFEST

#define ANNOTATION_REF_NAME "org.opencontainers.image.ref.name"

/* Size limits of the documents (skopeo's, with room): enforce them while downloading too. */
#define MANIFEST_MAX_SIZE ((size_t)4 << 20)
#define IMAGE_CONFIG_MAX_SIZE ((size_t)8 << 20)
#define DOCKER_SAVE_MANIFEST_MAX_SIZE ((size_t)4 << 20)
/* Caps on arrays. */
#define MANIFEST_MAX_LAYERS 4096  /* layers, rootfs.diff_ids, docker save Layers */
#define MANIFEST_MAX_ENTRIES 4096 /* index entries, docker save images, RepoTags */
#define IMAGE_CONFIG_MAX_STRV 65536 /* Env, Entrypoint, Cmd, Labels */

bool manifest_media_type_is_index(const char *media_type);    /* OCI index, Docker list */
bool manifest_media_type_is_manifest(const char *media_type); /* OCI manifest, schema2 */
bool manifest_media_type_is_config(const char *media_type);   /* OCI / Docker image config */
/* tar, tar+gzip, tar+zstd in their OCI, OCI non-distributable and Docker spellings. */
bool manifest_media_type_is_layer(const char *media_type);

struct manifest_desc {
        char *media_type; /* never NULL after a successful parse */
        uint8_t digest[DIGEST_LEN];
        int64_t size; /* >= 0 */
        /* NULL when the descriptor has no platform; os and arch are both set or both NULL;
         * variant NULL when absent or empty. */
        char *platform_os;
        char *platform_arch;
        char *platform_variant;
        char *ref_name; /* annotation org.opencontainers.image.ref.name, or NULL */
};

struct manifest_index {
        char *media_type; /* as given; NULL when absent (allowed by OCI) */
        struct manifest_desc *manifests;
        size_t n_manifests;
};

enum manifest_kind { MANIFEST_KIND_OCI = 1, MANIFEST_KIND_DOCKER_V2 = 2 };

struct manifest {
        enum manifest_kind kind;
        char *media_type; /* as given; NULL when absent (then kind is OCI) */
        struct manifest_desc config;
        struct manifest_desc *layers;
        size_t n_layers;
};

enum manifest_doc { MANIFEST_DOC_INDEX = 1, MANIFEST_DOC_MANIFEST = 2 };

/*
 * What a document is: MANIFEST_DOC_INDEX or MANIFEST_DOC_MANIFEST, from mediaType, or when it
 * is absent from the shape ("manifests" vs "config"/"layers"; both or neither is -EINVAL).
 * -EPROTONOSUPPORT for Docker schema 1 (and the OCI artifact manifest), -EINVAL otherwise.
 */
int manifest_sniff(const char *json, size_t len);

/* OCI image index or Docker manifest list (schemaVersion 2). */
int manifest_parse_index(const char *json, size_t len, struct manifest_index *ret);
void manifest_index_free(struct manifest_index *idx);

/* OCI image manifest or Docker schema2 manifest; -EPROTONOSUPPORT for schema 1. An index
 * given here is -EINVAL. Config and layer media types are not restricted (see the
 * manifest_media_type_is_* helpers): whether an artifact is a runnable image is the caller's
 * decision. */
int manifest_parse(const char *json, size_t len, struct manifest *ret);
void manifest_free(struct manifest *m);

/*
 * An entry of an OCI layout's index.json by its ref.name annotation (exact match, the first
 * one wins). name NULL: the only entry (-ENOTUNIQ when there are several, as skopeo refuses
 * to guess). -ENOENT when nothing matches.
 */
int manifest_index_find_ref(const struct manifest_index *idx, const char *name, size_t *ret_i);

struct image_config {
        char *architecture; /* NULL when absent */
        char *os;
        char *variant; /* NULL when absent or empty */
        bool has_created;
        int64_t created; /* seconds since the epoch (may be negative: Go's zero time) */
        /* config.*: NULL when absent, null or empty */
        char *user;
        char *working_dir;
        char *stop_signal;
        /* NULL-terminated string vectors (n_* excludes the NULL); NULL when absent or null.
         * Entrypoint and Cmd may also be a single string in Docker configs. */
        char **env;
        size_t n_env;
        char **entrypoint;
        size_t n_entrypoint;
        char **cmd;
        size_t n_cmd;
        /* config.Labels as parallel NULL-terminated vectors, in document order */
        char **label_keys;
        char **label_values;
        size_t n_labels;
        /* rootfs.diff_ids (rootfs is required, type "layers") */
        uint8_t (*diff_ids)[DIGEST_LEN];
        size_t n_diff_ids;
};

int image_config_parse(const char *json, size_t len, struct image_config *ret);
void image_config_free(struct image_config *c);

/* RFC 3339 ("2024-01-02T03:04:05.123456789Z", "...+02:00", lowercase t/z too) to seconds
 * since the epoch; fractions are dropped; years 0000-9999. -EINVAL when malformed. */
int manifest_parse_time(const char *s, int64_t *ret_seconds);

/* One image of a `docker save` archive's manifest.json. Paths are as given, relative to the
 * archive root, and checked: not empty, not absolute, no ".." component. */
struct docker_save_entry {
        char *config;      /* "<hex>.json" or "blobs/sha256/<hex>" */
        char **repo_tags;  /* NULL-terminated as given ("busybox:latest"), NULL when none */
        size_t n_repo_tags;
        char **layers;     /* NULL-terminated, base layer first */
        size_t n_layers;
};

int docker_save_manifest_parse(const char *json, size_t len, struct docker_save_entry **ret, size_t *ret_n);
void docker_save_entries_free(struct docker_save_entry *e, size_t n);

/*
 * Platforms use GOOS/GOARCH names ("linux", "amd64", "arm64", "arm", "386", "ppc64le",
 * "s390x", "riscv64", ...). Aliases are understood on both sides: aarch64 = arm64,
 * x86_64 = x86-64 = amd64, i386 = i686 = 386, armhf = arm/v7, armel = arm/v6; "8" = "v8".
 */

/* The host's platform, from uname(2) machine (the compile-time arch when unknown). Static
 * strings; variant NULL unless the arch has one (arm64 "v8", arm "v5".."v8"). */
void platform_host(const char **ret_os, const char **ret_arch, const char **ret_variant);
/* uname machine ("x86_64", "aarch64", "armv7l", ...) to GOARCH and variant; -ENOENT when
 * the machine is unknown. */
int platform_from_machine(const char *machine, const char **ret_arch, const char **ret_variant);

/* "os/arch[/variant]" (e.g. from --platform); components [A-Za-z0-9._-]+. */
int platform_parse(const char *s, char **ret_os, char **ret_arch, char **ret_variant);

/*
 * How well a descriptor's platform (os, arch, variant) serves the wanted one: 0 no match,
 * > 0 a match, higher is better. os and arch must be equal (after aliases). Variants:
 *   arm64: wanted default v8, a missing variant is v8; lower versions run (v9 takes v8).
 *   arm:   wanted default v7, a missing variant is v7; falls back down to v5 (v7, v6, v5).
 *   amd64: without a wanted variant any variant matches, lowest level (v1, none) preferred;
 *          with one (e.g. v3), that level and lower ones, closest first.
 *   other: without a wanted variant any matches (none preferred); with one, only that one.
 */
int platform_match(const char *want_os, const char *want_arch, const char *want_variant, const char *os,
                   const char *arch, const char *variant);

/*
 * Choose the entry of idx for a platform. os/arch NULL mean the host's; variant NULL means
 * the host's variant when arch is the host's too, else "not specified". Only entries with a
 * platform and a manifest or index media type are considered; the best match wins and ties go
 * to the earlier entry. -ENOENT when nothing matches.
 */
int manifest_index_pick(const struct manifest_index *idx, const char *os, const char *arch, const char *variant,
                        size_t *ret_i);
/* "linux/amd64, linux/arm/v7, linux/arm64/v8": the distinct platforms on offer, in index
 * order, without "unknown" ones (attestations) — for the no-match error message. Never NULL;
 * "" when there are none. */
char *manifest_index_platforms(const struct manifest_index *idx);
