/* SPDX-License-Identifier: Apache-2.0 */
/* OCI / Docker documents: indexes, manifests, configs, docker save, platforms (TAP). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"
#include "manifest.h"
#include "tap.h"
#include "util.h"

static bool streq_null(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool digest_is(const uint8_t d[DIGEST_LEN], const char *s)
{
        char buf[DIGEST_STR_LEN];
        digest_to_str(d, buf);
        return strcmp(buf, s) == 0;
}

static bool all_bytes(const void *p, size_t n, unsigned char b)
{
        for (size_t i = 0; i < n; i++)
                if (((const unsigned char *)p)[i] != b)
                        return false;
        return true;
}

/* Distinct, well-formed digests: 8 hex characters repeated 8 times. */
#define DG(x) "sha256:" x x x x x x x x

/* ---- sample documents, modelled on Docker Hub's ----------------------------------------- */

/* busybox:1.37 as Docker Hub serves it: an OCI index with buildkit attestations. */
static const char busybox_index[] =
        "{\n"
        "  \"manifests\": [\n"
        "    {\"annotations\": {\"com.docker.official-images.bashbrew.arch\": \"amd64\",\n"
        "       \"org.opencontainers.image.base.name\": \"scratch\",\n"
        "       \"org.opencontainers.image.created\": \"2024-09-26T21:31:42Z\",\n"
        "       \"org.opencontainers.image.source\": \"https://github.com/docker-library/busybox.git\",\n"
        "       \"org.opencontainers.image.url\": \"https://hub.docker.com/_/busybox\",\n"
        "       \"org.opencontainers.image.version\": \"1.37.0-glibc\"},\n"
        "     \"digest\": \"" DG("a0a0a0a0") "\",\n"
        "     \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}, \"size\": 610},\n"
        "    {\"annotations\": {\"com.docker.official-images.bashbrew.arch\": \"amd64\",\n"
        "       \"vnd.docker.reference.digest\": \"" DG("a0a0a0a0") "\",\n"
        "       \"vnd.docker.reference.type\": \"attestation-manifest\"},\n"
        "     \"digest\": \"" DG("a1a1a1a1") "\",\n"
        "     \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"unknown\", \"os\": \"unknown\"}, \"size\": 840},\n"
        "    {\"digest\": \"" DG("b5b5b5b5") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v5\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("b6b6b6b6") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v6\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("b7b7b7b7") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v7\"}, \"size\": 610},\n"
        "    {\"annotations\": {\"vnd.docker.reference.digest\": \"" DG("b7b7b7b7") "\",\n"
        "       \"vnd.docker.reference.type\": \"attestation-manifest\"},\n"
        "     \"digest\": \"" DG("c7c7c7c7") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"unknown\", \"os\": \"unknown\"}, \"size\": 566},\n"
        "    {\"digest\": \"" DG("b8b8b8b8") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"arm64\", \"os\": \"linux\", \"variant\": \"v8\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("03860386") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"386\", \"os\": \"linux\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("64646464") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"mips64le\", \"os\": \"linux\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("9c9c9c9c") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"ppc64le\", \"os\": \"linux\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("5c5c5c5c") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"riscv64\", \"os\": \"linux\"}, \"size\": 610},\n"
        "    {\"digest\": \"" DG("39039039") "\", \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "     \"platform\": {\"architecture\": \"s390x\", \"os\": \"linux\"}, \"size\": 610}\n"
        "  ],\n"
        "  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n"
        "  \"schemaVersion\": 2\n"
        "}\n";

/* alpine as served before OCI indexes: a Docker manifest list (compact, as registries send it). */
static const char alpine_list[] =
        "{\"manifests\":["
        "{\"digest\":\"" DG("11111111") "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"},\"size\":528},"
        "{\"digest\":\"" DG("22222222") "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\"},\"size\":528},"
        "{\"digest\":\"" DG("33333333") "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"},\"size\":528},"
        "{\"digest\":\"" DG("44444444") "\",\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"windows\",\"os.version\":\"10.0.17763.5458\"},\"size\":528}"
        "],\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\",\"schemaVersion\":2}";

/* index.json of an OCI layout written by skopeo/umoci: no mediaType on old versions, ref.name. */
static const char layout_index[] =
        "{\"schemaVersion\":2,\"manifests\":["
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("deadbeef") "\","
        "\"size\":405,\"annotations\":{\"org.opencontainers.image.ref.name\":\"latest\"}},"
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("feedface") "\","
        "\"size\":406,\"annotations\":{\"org.opencontainers.image.ref.name\":\"1.36\"}},"
        "{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"" DG("c0ffee00") "\","
        "\"size\":1609,\"annotations\":{\"org.opencontainers.image.ref.name\":\"multi\"}}]}";

static const char oci_manifest[] =
        "{\n"
        "  \"schemaVersion\": 2,\n"
        "  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
        "  \"config\": {\n"
        "    \"mediaType\": \"application/vnd.oci.image.config.v1+json\",\n"
        "    \"digest\": \"" DG("c0c0c0c0") "\",\n"
        "    \"size\": 372\n"
        "  },\n"
        "  \"layers\": [\n"
        "    {\n"
        "      \"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\",\n"
        "      \"digest\": \"" DG("1a1a1a1a") "\",\n"
        "      \"size\": 2152262\n"
        "    },\n"
        "    {\n"
        "      \"mediaType\": \"application/vnd.oci.image.layer.v1.tar+zstd\",\n"
        "      \"digest\": \"" DG("2b2b2b2b") "\",\n"
        "      \"size\": 93\n"
        "    }\n"
        "  ],\n"
        "  \"annotations\": {\n"
        "    \"com.docker.official-images.bashbrew.arch\": \"amd64\",\n"
        "    \"org.opencontainers.image.base.name\": \"scratch\"\n"
        "  }\n"
        "}\n";

/* As umoci writes it: no mediaType at all (OCI allows that). */
static const char oci_manifest_nomt[] =
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
        "\"digest\":\"" DG("c1c1c1c1") "\",\"size\":600},\"layers\":[{\"mediaType\":"
        "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" DG("3c3c3c3c") "\",\"size\":10240}]}";

static const char docker_manifest[] =
        "{\n"
        "   \"schemaVersion\": 2,\n"
        "   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n"
        "   \"config\": {\n"
        "      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n"
        "      \"size\": 1457,\n"
        "      \"digest\": \"" DG("d0d0d0d0") "\"\n"
        "   },\n"
        "   \"layers\": [\n"
        "      {\n"
        "         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n"
        "         \"size\": 772788,\n"
        "         \"digest\": \"" DG("d1d1d1d1") "\"\n"
        "      },\n"
        "      {\n"
        "         \"mediaType\": \"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\n"
        "         \"size\": 1654603,\n"
        "         \"digest\": \"" DG("d2d2d2d2") "\",\n"
        "         \"urls\": [\"https://mcr.microsoft.com/v2/windows/nanoserver/blobs/x\"]\n"
        "      }\n"
        "   ]\n"
        "}";

static const char schema1_manifest[] =
        "{\n"
        "   \"schemaVersion\": 1,\n"
        "   \"name\": \"library/busybox\",\n"
        "   \"tag\": \"latest\",\n"
        "   \"architecture\": \"amd64\",\n"
        "   \"fsLayers\": [{\"blobSum\": \"" DG("a3a3a3a3") "\"}],\n"
        "   \"history\": [{\"v1Compatibility\": \"{}\"}],\n"
        "   \"signatures\": [{\"header\": {\"alg\": \"ES256\"}, \"signature\": \"abc\", \"protected\": \"def\"}]\n"
        "}";

/* A Docker-built config, with the long legacy field set. */
static const char docker_config[] =
        "{\"architecture\":\"amd64\",\"config\":{\"Hostname\":\"\",\"Domainname\":\"\",\"User\":\"\","
        "\"AttachStdin\":false,\"AttachStdout\":false,\"AttachStderr\":false,\"ExposedPorts\":{\"80/tcp\":{}},"
        "\"Tty\":false,\"OpenStdin\":false,\"StdinOnce\":false,"
        "\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\"NGINX_VERSION=1.25.4\","
        "\"NJS_VERSION=0.8.3\",\"PKG_RELEASE=1~bookworm\"],\"Cmd\":[\"nginx\",\"-g\",\"daemon off;\"],"
        "\"Image\":\"sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\","
        "\"Volumes\":null,\"WorkingDir\":\"\",\"Entrypoint\":[\"/docker-entrypoint.sh\"],\"OnBuild\":null,"
        "\"Labels\":{\"maintainer\":\"NGINX Docker Maintainers <docker-maint@nginx.com>\"},"
        "\"StopSignal\":\"SIGQUIT\"},"
        "\"container\":\"3e4c1a2b\",\"created\":\"2024-02-14T22:38:13.364297186Z\",\"docker_version\":\"20.10.23\","
        "\"history\":[{\"created\":\"2024-02-13T00:38:49.157562498Z\",\"created_by\":\"/bin/sh -c #(nop) ADD file:x in / \"},"
        "{\"created\":\"2024-02-14T22:38:13.364297186Z\",\"created_by\":\"/bin/sh -c #(nop)  CMD [\\\"nginx\\\"]\","
        "\"empty_layer\":true}],"
        "\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DG("e1e1e1e1") "\",\"" DG("e2e2e2e2") "\"]}}";

/* An OCI config as buildkit / umoci write it. */
static const char oci_config[] =
        "{\n"
        "  \"created\": \"2023-12-01T10:20:30+02:00\",\n"
        "  \"architecture\": \"arm64\",\n"
        "  \"variant\": \"v8\",\n"
        "  \"os\": \"linux\",\n"
        "  \"config\": {\n"
        "    \"User\": \"1000:1000\",\n"
        "    \"Env\": [\"PATH=/bin\", \"LANG=C.UTF-8\"],\n"
        "    \"Entrypoint\": \"/bin/app --serve\",\n"
        "    \"WorkingDir\": \"/srv/app\",\n"
        "    \"Labels\": {\"org.opencontainers.image.title\": \"app\", \"dropped\": null, \"version\": \"1\"}\n"
        "  },\n"
        "  \"rootfs\": {\"type\": \"layers\", \"diff_ids\": [\"" DG("f1f1f1f1") "\"]},\n"
        "  \"history\": [{\"created\": \"2023-12-01T08:20:30Z\", \"created_by\": \"COPY app /bin/app\"}]\n"
        "}\n";

/* FROM scratch with nothing: no config section at all, zero layers. */
static const char minimal_config[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";

static const char save_classic[] =
        "[{\"Config\":\"4a0bd4c07cd6e3a6b0ab6a1c0a5f2b8c4a0bd4c07cd6e3a6b0ab6a1c0a5f2b8c.json\","
        "\"RepoTags\":[\"busybox:latest\",\"busybox:1.36\"],"
        "\"Layers\":[\"0e7d2f9e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e/layer.tar\"]},"
        "{\"Config\":\"5b1ce5d18de7f4b7c1bc7b2d1b6f3c9d5b1ce5d18de7f4b7c1bc7b2d1b6f3c9d.json\","
        "\"RepoTags\":null,\"Layers\":[\"a/layer.tar\",\"b/layer.tar\"]}]\n";

/* docker 25+: an OCI layout inside, manifest.json kept for compatibility. */
static const char save_oci[] =
        "[{\"Config\":\"blobs/sha256/" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\","
        "\"RepoTags\":[\"localhost:5000/team/app:v1\"],"
        "\"Layers\":[\"blobs/sha256/" "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"],"
        "\"LayerSources\":{\"sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\":"
        "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"size\":4590080,"
        "\"digest\":\"sha256:1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}}}]";

/* ---- helpers to build documents ---------------------------------------------------------- */

struct buf {
        char *p;
        size_t len, cap;
};

static void buf_add(struct buf *b, const char *s)
{
        size_t n = strlen(s);
        if (b->len + n + 1 > b->cap) {
                b->cap = (b->len + n + 1) * 2;
                b->p = xrealloc(b->p, b->cap);
        }
        memcpy(b->p + b->len, s, n + 1);
        b->len += n;
}

static char *manifest_with_layers(size_t n)
{
        struct buf b = { 0 };
        buf_add(&b, "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                    "\"digest\":\"" DG("c0c0c0c0") "\",\"size\":1},\"layers\":[");
        for (size_t i = 0; i < n; i++)
                buf_add(&b, i ? ",{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" DG(
                                        "1a1a1a1a") "\",\"size\":1}"
                              : "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" DG(
                                        "1a1a1a1a") "\",\"size\":1}");
        buf_add(&b, "]}");
        return b.p;
}

static char *config_with_env(size_t n)
{
        struct buf b = { 0 };
        buf_add(&b, "{\"config\":{\"Env\":[");
        for (size_t i = 0; i < n; i++)
                buf_add(&b, i ? ",\"A=1\"" : "\"A=1\"");
        buf_add(&b, "]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}");
        return b.p;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_sniff(void)
{
        static const struct {
                const char *name, *doc;
                int want;
        } cases[] = {
                { "busybox OCI index", busybox_index, MANIFEST_DOC_INDEX },
                { "docker manifest list", alpine_list, MANIFEST_DOC_INDEX },
                { "layout index.json without mediaType", layout_index, MANIFEST_DOC_INDEX },
                { "OCI manifest", oci_manifest, MANIFEST_DOC_MANIFEST },
                { "OCI manifest without mediaType", oci_manifest_nomt, MANIFEST_DOC_MANIFEST },
                { "docker schema2", docker_manifest, MANIFEST_DOC_MANIFEST },
                { "schema1", schema1_manifest, -EPROTONOSUPPORT },
                { "schema1 signed media type",
                  "{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
                  -EPROTONOSUPPORT },
                { "OCI artifact manifest", "{\"mediaType\":\"application/vnd.oci.artifact.manifest.v1+json\"}",
                  -EPROTONOSUPPORT },
                { "both shapes without mediaType",
                  "{\"schemaVersion\":2,\"manifests\":[],\"layers\":[],\"config\":{}}", -EINVAL },
                { "neither shape", "{\"schemaVersion\":2}", -EINVAL },
                { "unknown mediaType", "{\"schemaVersion\":2,\"mediaType\":\"text/plain\",\"manifests\":[]}", -EINVAL },
                { "mediaType not a string", "{\"schemaVersion\":2,\"mediaType\":7,\"manifests\":[]}", -EINVAL },
                { "array", "[]", -EINVAL },
                { "not JSON", "hello", -EINVAL },
                { "empty object", "{}", -EINVAL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                int k = manifest_sniff(cases[i].doc, strlen(cases[i].doc));
                ok(k == cases[i].want, "sniff %s: %d (got %d)", cases[i].name, cases[i].want, k);
        }
        ok(manifest_sniff("", 0) == -EINVAL, "sniff empty input");
        ok(manifest_sniff(NULL, 10) == -EINVAL, "sniff NULL input");
}

static void test_index(void)
{
        _cleanup_(manifest_index_free) struct manifest_index idx = { 0 };
        int k = manifest_parse_index(busybox_index, strlen(busybox_index), &idx);
        ok(k == 0 && idx.n_manifests == 12, "busybox index parses, 12 entries (got %d, %zu)", k, idx.n_manifests);
        if (k < 0)
                return;
        ok(streq_null(idx.media_type, MEDIA_TYPE_OCI_INDEX), "index media type kept");
        const struct manifest_desc *d = &idx.manifests[0];
        ok(streq_null(d->media_type, MEDIA_TYPE_OCI_MANIFEST) && digest_is(d->digest, DG("a0a0a0a0")) &&
                   d->size == 610 && streq_null(d->platform_os, "linux") && streq_null(d->platform_arch, "amd64") &&
                   !d->platform_variant && !d->ref_name,
           "first descriptor: media type, digest, size, platform");
        ok(streq_null(idx.manifests[1].platform_os, "unknown"), "attestation entry kept in the index");
        ok(streq_null(idx.manifests[4].platform_variant, "v7"), "arm/v7 variant");
        ok(manifest_media_type_is_manifest(idx.manifests[6].media_type), "media type helper on entry");

        _cleanup_(manifest_index_free) struct manifest_index list = { 0 };
        k = manifest_parse_index(alpine_list, strlen(alpine_list), &list);
        ok(k == 0 && list.n_manifests == 4 && streq_null(list.media_type, MEDIA_TYPE_DOCKER_MANIFEST_LIST) &&
                   streq_null(list.manifests[3].platform_os, "windows") &&
                   streq_null(list.manifests[1].platform_variant, "v6"),
           "docker manifest list parses (got %d)", k);

        _cleanup_(manifest_index_free) struct manifest_index layout = { 0 };
        k = manifest_parse_index(layout_index, strlen(layout_index), &layout);
        ok(k == 0 && layout.n_manifests == 3 && !layout.media_type && !layout.manifests[0].platform_os &&
                   streq_null(layout.manifests[1].ref_name, "1.36"),
           "OCI layout index.json parses, ref names (got %d)", k);

        size_t i = 99;
        ok(manifest_index_find_ref(&layout, "1.36", &i) == 0 && i == 1, "find ref 1.36");
        ok(manifest_index_find_ref(&layout, "latest", &i) == 0 && i == 0, "find ref latest");
        ok(manifest_index_find_ref(&layout, "multi", &i) == 0 && i == 2, "find ref of a nested index");
        i = 99;
        ok(manifest_index_find_ref(&layout, "nope", &i) == -ENOENT && i == 99, "missing ref -> -ENOENT");
        ok(manifest_index_find_ref(&layout, NULL, &i) == -ENOTUNIQ, "no ref, several entries -> -ENOTUNIQ");

        static const char single[] =
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("abcdef01") "\","
                "\"size\":3}]}";
        _cleanup_(manifest_index_free) struct manifest_index one = { 0 };
        ok(manifest_parse_index(single, strlen(single), &one) == 0 && manifest_index_find_ref(&one, NULL, &i) == 0 &&
                   i == 0,
           "no ref, one entry -> that entry");
        static const char none[] = "{\"schemaVersion\":2,\"manifests\":[]}";
        _cleanup_(manifest_index_free) struct manifest_index zero = { 0 };
        ok(manifest_parse_index(none, strlen(none), &zero) == 0 && zero.n_manifests == 0 &&
                   manifest_index_find_ref(&zero, NULL, &i) == -ENOENT,
           "empty index parses; find -> -ENOENT");

        /* A manifest is not an index. */
        struct manifest_index bad;
        memset(&bad, 0x5a, sizeof(bad));
        k = manifest_parse_index(oci_manifest, strlen(oci_manifest), &bad);
        ok(k == -EINVAL && all_bytes(&bad, sizeof(bad), 0x5a), "manifest given as index -> -EINVAL, untouched");
        k = manifest_parse_index(schema1_manifest, strlen(schema1_manifest), &bad);
        ok(k == -EPROTONOSUPPORT, "schema1 given as index -> -EPROTONOSUPPORT");
}

static void test_manifest(void)
{
        _cleanup_(manifest_free) struct manifest m = { 0 };
        int k = manifest_parse(oci_manifest, strlen(oci_manifest), &m);
        ok(k == 0 && m.kind == MANIFEST_KIND_OCI && streq_null(m.media_type, MEDIA_TYPE_OCI_MANIFEST),
           "OCI manifest parses (got %d)", k);
        ok(streq_null(m.config.media_type, MEDIA_TYPE_OCI_CONFIG) && digest_is(m.config.digest, DG("c0c0c0c0")) &&
                   m.config.size == 372 && manifest_media_type_is_config(m.config.media_type),
           "OCI manifest config descriptor");
        ok(m.n_layers == 2 && streq_null(m.layers[0].media_type, MEDIA_TYPE_OCI_LAYER_GZIP) &&
                   m.layers[0].size == 2152262 && digest_is(m.layers[1].digest, DG("2b2b2b2b")) &&
                   manifest_media_type_is_layer(m.layers[1].media_type),
           "OCI manifest layers (gzip, zstd)");

        _cleanup_(manifest_free) struct manifest n = { 0 };
        k = manifest_parse(oci_manifest_nomt, strlen(oci_manifest_nomt), &n);
        ok(k == 0 && n.kind == MANIFEST_KIND_OCI && !n.media_type && n.n_layers == 1 &&
                   streq_null(n.layers[0].media_type, MEDIA_TYPE_OCI_LAYER),
           "OCI manifest without mediaType parses as OCI (got %d)", k);

        _cleanup_(manifest_free) struct manifest dm = { 0 };
        k = manifest_parse(docker_manifest, strlen(docker_manifest), &dm);
        ok(k == 0 && dm.kind == MANIFEST_KIND_DOCKER_V2 && streq_null(dm.config.media_type, MEDIA_TYPE_DOCKER_CONFIG) &&
                   dm.config.size == 1457 && dm.n_layers == 2 &&
                   streq_null(dm.layers[0].media_type, MEDIA_TYPE_DOCKER_LAYER) &&
                   streq_null(dm.layers[1].media_type, MEDIA_TYPE_DOCKER_LAYER_FOREIGN) &&
                   digest_is(dm.layers[0].digest, DG("d1d1d1d1")),
           "docker schema2 manifest parses (got %d)", k);

        struct manifest bad;
        memset(&bad, 0x5a, sizeof(bad));
        k = manifest_parse(schema1_manifest, strlen(schema1_manifest), &bad);
        ok(k == -EPROTONOSUPPORT && all_bytes(&bad, sizeof(bad), 0x5a), "schema1 -> -EPROTONOSUPPORT (got %d)", k);
        k = manifest_parse(busybox_index, strlen(busybox_index), &bad);
        ok(k == -EINVAL && all_bytes(&bad, sizeof(bad), 0x5a), "index given as manifest -> -EINVAL (got %d)", k);

        /* Whitespace around the document is fine. */
        static const char spaced[] = "\n\t {\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" DG(
                "c0c0c0c0") "\",\"size\":0},\"layers\":[]} \r\n";
        _cleanup_(manifest_free) struct manifest s = { 0 };
        k = manifest_parse(spaced, strlen(spaced), &s);
        ok(k == 0 && s.n_layers == 0 && s.config.size == 0, "surrounding whitespace, zero layers, size 0 (got %d)", k);

        /* Cap on layers: 4096 is fine, 4097 is not. */
        _cleanup_free_ char *at_cap = manifest_with_layers(MANIFEST_MAX_LAYERS);
        _cleanup_free_ char *over_cap = manifest_with_layers(MANIFEST_MAX_LAYERS + 1);
        _cleanup_(manifest_free) struct manifest big = { 0 };
        ok(manifest_parse(at_cap, strlen(at_cap), &big) == 0 && big.n_layers == MANIFEST_MAX_LAYERS,
           "%d layers accepted", MANIFEST_MAX_LAYERS);
        ok(manifest_parse(over_cap, strlen(over_cap), &bad) == -EINVAL, "%d layers refused", MANIFEST_MAX_LAYERS + 1);
}

#define CFG_OK "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" DG("c0c0c0c0") "\",\"size\":1}"
#define LAYER_OK "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"" DG("1a1a1a1a") "\",\"size\":1}"
#define M(config, layers) "{\"schemaVersion\":2," config ",\"layers\":[" layers "]}"
#define DESC(mt, dg, size) "{\"mediaType\":" mt ",\"digest\":" dg ",\"size\":" size "}"
#define MT_LAYER "\"application/vnd.oci.image.layer.v1.tar\""
#define DG_OK "\"" DG("1a1a1a1a") "\""

static void test_malformed_manifests(void)
{
        static const struct {
                const char *name, *doc;
        } cases[] = {
                { "truncated", "{\"schemaVersion\":2,\"config\":{" },
                { "trailing garbage", M(CFG_OK, LAYER_OK) "x" },
                { "two documents", M(CFG_OK, LAYER_OK) M(CFG_OK, LAYER_OK) },
                { "trailing comma", "{\"schemaVersion\":2," CFG_OK ",\"layers\":[" LAYER_OK ",]}" },
                { "no schemaVersion", "{" CFG_OK ",\"layers\":[]}" },
                { "schemaVersion 3", "{\"schemaVersion\":3," CFG_OK ",\"layers\":[]}" },
                { "schemaVersion string", "{\"schemaVersion\":\"2\"," CFG_OK ",\"layers\":[]}" },
                { "schemaVersion float", "{\"schemaVersion\":2.0," CFG_OK ",\"layers\":[]}" },
                { "no config", "{\"schemaVersion\":2,\"layers\":[" LAYER_OK "]}" },
                { "config null", "{\"schemaVersion\":2,\"config\":null,\"layers\":[]}" },
                { "config is a string", "{\"schemaVersion\":2,\"config\":\"x\",\"layers\":[]}" },
                { "no layers", "{\"schemaVersion\":2," CFG_OK "}" },
                { "layers null", "{\"schemaVersion\":2," CFG_OK ",\"layers\":null}" },
                { "layers is an object", "{\"schemaVersion\":2," CFG_OK ",\"layers\":{}}" },
                { "layer is a string", M(CFG_OK, "\"layer\"") },
                { "layer is null", M(CFG_OK, "null") },
                { "negative size", M(CFG_OK, DESC(MT_LAYER, DG_OK, "-1")) },
                { "float size", M(CFG_OK, DESC(MT_LAYER, DG_OK, "1.5")) },
                { "exponent size", M(CFG_OK, DESC(MT_LAYER, DG_OK, "1e3")) },
                { "string size", M(CFG_OK, DESC(MT_LAYER, DG_OK, "\"12\"")) },
                { "size over int64", M(CFG_OK, DESC(MT_LAYER, DG_OK, "9223372036854775808")) },
                { "size over uint64", M(CFG_OK, DESC(MT_LAYER, DG_OK, "99999999999999999999999")) },
                { "huge negative size", M(CFG_OK, DESC(MT_LAYER, DG_OK, "-99999999999999999999999")) },
                { "missing size", M(CFG_OK, "{\"mediaType\":" MT_LAYER ",\"digest\":" DG_OK "}") },
                { "missing digest", M(CFG_OK, "{\"mediaType\":" MT_LAYER ",\"size\":1}") },
                { "missing mediaType", M(CFG_OK, "{\"digest\":" DG_OK ",\"size\":1}") },
                { "mediaType number", M(CFG_OK, DESC("5", DG_OK, "1")) },
                { "mediaType without slash", M(CFG_OK, DESC("\"tar\"", DG_OK, "1")) },
                { "mediaType with escape", M(CFG_OK, DESC("\"a/b\\u001b[31m\"", DG_OK, "1")) },
                { "mediaType empty", M(CFG_OK, DESC("\"\"", DG_OK, "1")) },
                { "digest sha512",
                  M(CFG_OK, DESC(MT_LAYER, "\"sha512:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                                           "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
                                 "1")) },
                { "digest uppercase", M(CFG_OK, DESC(MT_LAYER, "\"sha256:" "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\"", "1")) },
                { "digest short", M(CFG_OK, DESC(MT_LAYER, "\"sha256:abcd\"", "1")) },
                { "digest without algorithm", M(CFG_OK, DESC(MT_LAYER, "\"" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" "\"", "1")) },
                { "digest with NUL", M(CFG_OK, DESC(MT_LAYER, "\"" DG("1a1a1a1a") "\\u0000x\"", "1")) },
                { "digest number", M(CFG_OK, DESC(MT_LAYER, "1", "1")) },
                { "platform string", M(CFG_OK, "{\"mediaType\":" MT_LAYER ",\"digest\":" DG_OK ",\"size\":1,\"platform\":\"linux\"}") },
                { "ref.name number", M(CFG_OK, "{\"mediaType\":" MT_LAYER ",\"digest\":" DG_OK ",\"size\":1,\"annotations\":{\"org.opencontainers.image.ref.name\":1}}") },
                { "annotations array", M(CFG_OK, "{\"mediaType\":" MT_LAYER ",\"digest\":" DG_OK ",\"size\":1,\"annotations\":[]}") },
                { "invalid UTF-8", M(CFG_OK, DESC("\"a/\xff\"", DG_OK, "1")) },
                { "mediaType of a list", "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.list.v2+json\"," CFG_OK ",\"layers\":[]}" },
                { "top-level array", "[" M(CFG_OK, LAYER_OK) "]" },
                { "top-level string", "\"manifest\"" },
                { "top-level null", "null" },
                { "leading zero", M(CFG_OK, DESC(MT_LAYER, DG_OK, "01")) },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct manifest m;
                memset(&m, 0x5a, sizeof(m));
                int k = manifest_parse(cases[i].doc, strlen(cases[i].doc), &m);
                ok(k == -EINVAL && all_bytes(&m, sizeof(m), 0x5a), "manifest with %s -> -EINVAL (got %d)", cases[i].name, k);
        }

        /* Control: the pieces above are fine when put together correctly. */
        static const char good[] = M(CFG_OK, LAYER_OK "," DESC(MT_LAYER, DG_OK, "9223372036854775807"));
        _cleanup_(manifest_free) struct manifest m = { 0 };
        int k = manifest_parse(good, strlen(good), &m);
        ok(k == 0 && m.n_layers == 2 && m.layers[1].size == INT64_MAX, "control document parses, INT64_MAX size (got %d)", k);

        /* A NUL after the document and bytes beyond it: the parsed bytes must be all bytes. */
        static const char nul[] = M(CFG_OK, LAYER_OK) "\0garbage";
        struct manifest x;
        ok(manifest_parse(nul, sizeof(nul) - 1, &x) == -EINVAL, "NUL and bytes after the document -> -EINVAL");
        _cleanup_(manifest_free) struct manifest upto = { 0 };
        ok(manifest_parse(nul, strlen(nul), &upto) == 0 && upto.n_layers == 1, "the same bytes up to the NUL parse");

        /* Deep nesting. */
        struct buf b = { 0 };
        buf_add(&b, "{\"schemaVersion\":2," CFG_OK ",\"layers\":[");
        for (int i = 0; i < 200; i++)
                buf_add(&b, "[");
        for (int i = 0; i < 200; i++)
                buf_add(&b, "]");
        buf_add(&b, "]}");
        ok(manifest_parse(b.p, b.len, &x) == -EINVAL, "200-deep nesting -> -EINVAL");
        free(b.p);

        /* Oversized document. */
        size_t big = MANIFEST_MAX_SIZE + 1;
        _cleanup_free_ char *huge = xmalloc(big);
        memset(huge, ' ', big);
        huge[0] = '{';
        huge[big - 1] = '}';
        ok(manifest_parse(huge, big, &x) == -EFBIG, "document over %zu bytes -> -EFBIG", MANIFEST_MAX_SIZE);
        ok(manifest_sniff(huge, big) == -EFBIG, "sniff over the limit -> -EFBIG");
}

static void test_malformed_index(void)
{
        static const struct {
                const char *name, *doc;
        } cases[] = {
                { "no manifests", "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\"}" },
                { "manifests null", "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":null}" },
                { "manifests object", "{\"schemaVersion\":2,\"manifests\":{}}" },
                { "entry a number", "{\"schemaVersion\":2,\"manifests\":[1]}" },
                { "platform without os",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"architecture\":\"amd64\"}}]}" },
                { "platform without architecture",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}" },
                { "platform os number",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"os\":1,\"architecture\":\"amd64\"}}]}" },
                { "platform arch with slash",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm/v7\"}}]}" },
                { "platform variant with escape",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\\u001b\"}}]}" },
                { "platform empty os",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                  ",\"size\":1,\"platform\":{\"os\":\"\",\"architecture\":\"amd64\"}}]}" },
                { "schemaVersion 3", "{\"schemaVersion\":3,\"manifests\":[]}" },
                { "entry with negative size",
                  "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK ",\"size\":-5}]}" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                struct manifest_index idx;
                memset(&idx, 0x5a, sizeof(idx));
                int k = manifest_parse_index(cases[i].doc, strlen(cases[i].doc), &idx);
                ok(k == -EINVAL && all_bytes(&idx, sizeof(idx), 0x5a), "index with %s -> -EINVAL (got %d)", cases[i].name,
                   k);
        }

        /* Control: the base the cases above were cut from is valid. */
        static const char control[] = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"digest\":" DG_OK
                                      ",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\","
                                      "\"variant\":\"v7\"}}]}";
        _cleanup_(manifest_index_free) struct manifest_index c = { 0 };
        ok(manifest_parse_index(control, strlen(control), &c) == 0 && c.n_manifests == 1 &&
                   streq_null(c.manifests[0].platform_variant, "v7"),
           "control index parses");

        /* Cap on entries. */
        for (size_t n = MANIFEST_MAX_ENTRIES; n <= MANIFEST_MAX_ENTRIES + 1; n++) {
                struct buf b = { 0 };
                buf_add(&b, "{\"schemaVersion\":2,\"manifests\":[");
                for (size_t i = 0; i < n; i++) {
                        if (i)
                                buf_add(&b, ",");
                        buf_add(&b, LAYER_OK);
                }
                buf_add(&b, "]}");
                _cleanup_(manifest_index_free) struct manifest_index idx = { 0 };
                int k = manifest_parse_index(b.p, b.len, &idx);
                ok(n == MANIFEST_MAX_ENTRIES ? (k == 0 && idx.n_manifests == n) : k == -EINVAL, "index with %zu entries: %s",
                   n, n == MANIFEST_MAX_ENTRIES ? "accepted" : "refused");
                free(b.p);
        }
}

static void test_config(void)
{
        _cleanup_(image_config_free) struct image_config c = { 0 };
        int k = image_config_parse(docker_config, strlen(docker_config), &c);
        ok(k == 0, "docker (nginx-like) config parses (got %d)", k);
        if (k == 0) {
                ok(streq_null(c.architecture, "amd64") && streq_null(c.os, "linux") && !c.variant,
                   "architecture/os/variant");
                ok(c.has_created && c.created == 1707950293, "created 2024-02-14T22:38:13.364297186Z (got %lld)",
                   (long long)c.created);
                ok(!c.user && !c.working_dir, "empty User and WorkingDir are NULL");
                ok(streq_null(c.stop_signal, "SIGQUIT"), "StopSignal");
                ok(c.n_env == 4 && streq_null(c.env[1], "NGINX_VERSION=1.25.4") && c.env[4] == NULL, "Env, NULL-terminated");
                ok(c.n_entrypoint == 1 && streq_null(c.entrypoint[0], "/docker-entrypoint.sh") && !c.entrypoint[1],
                   "Entrypoint");
                ok(c.n_cmd == 3 && streq_null(c.cmd[2], "daemon off;") && !c.cmd[3], "Cmd");
                ok(c.n_labels == 1 && streq_null(c.label_keys[0], "maintainer") &&
                           streq_null(c.label_values[0], "NGINX Docker Maintainers <docker-maint@nginx.com>"),
                   "Labels");
                ok(c.n_diff_ids == 2 && digest_is(c.diff_ids[0], DG("e1e1e1e1")) && digest_is(c.diff_ids[1], DG("e2e2e2e2")),
                   "rootfs.diff_ids");
        }

        _cleanup_(image_config_free) struct image_config o = { 0 };
        k = image_config_parse(oci_config, strlen(oci_config), &o);
        ok(k == 0, "OCI config parses (got %d)", k);
        if (k == 0) {
                ok(streq_null(o.architecture, "arm64") && streq_null(o.variant, "v8"), "arm64/v8");
                ok(o.created == 1701418830, "created with +02:00 offset (got %lld)", (long long)o.created);
                ok(streq_null(o.user, "1000:1000") && streq_null(o.working_dir, "/srv/app") && !o.stop_signal,
                   "User, WorkingDir");
                ok(o.n_entrypoint == 1 && streq_null(o.entrypoint[0], "/bin/app --serve"),
                   "Entrypoint given as a single string");
                ok(o.n_cmd == 0 && !o.cmd, "absent Cmd is NULL");
                ok(o.n_labels == 2 && streq_null(o.label_keys[0], "org.opencontainers.image.title") &&
                           streq_null(o.label_keys[1], "version") && streq_null(o.label_values[1], "1") &&
                           !o.label_keys[2],
                   "Labels in order, null value dropped");
                ok(o.n_diff_ids == 1, "one diff_id");
        }

        _cleanup_(image_config_free) struct image_config m = { 0 };
        k = image_config_parse(minimal_config, strlen(minimal_config), &m);
        ok(k == 0 && !m.has_created && !m.env && !m.entrypoint && !m.cmd && m.n_labels == 0 && m.n_diff_ids == 0,
           "minimal config: no config section, zero layers (got %d)", k);

        static const char nulls[] = "{\"config\":{\"Env\":null,\"Entrypoint\":null,\"Cmd\":[],\"Labels\":null,"
                                    "\"User\":null},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
        _cleanup_(image_config_free) struct image_config nc = { 0 };
        k = image_config_parse(nulls, strlen(nulls), &nc);
        ok(k == 0 && !nc.env && !nc.entrypoint && nc.cmd && nc.n_cmd == 0 && !nc.cmd[0] && !nc.user,
           "null fields are absent; [] Cmd is an empty vector (got %d)", k);

        static const struct {
                const char *name, *doc;
        } bad[] = {
                { "no rootfs", "{\"architecture\":\"amd64\",\"os\":\"linux\"}" },
                { "rootfs type", "{\"rootfs\":{\"type\":\"layer\",\"diff_ids\":[]}}" },
                { "rootfs without diff_ids", "{\"rootfs\":{\"type\":\"layers\"}}" },
                { "diff_id malformed", "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:1234\"]}}" },
                { "diff_id number", "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[5]}}" },
                { "diff_ids string", "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":\"" DG("e1e1e1e1") "\"}}" },
                { "Env string", "{\"config\":{\"Env\":\"A=1\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Env number entry", "{\"config\":{\"Env\":[\"A=1\",2]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Env with NUL", "{\"config\":{\"Env\":[\"A=1\\u0000B=2\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Cmd object", "{\"config\":{\"Cmd\":{}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Entrypoint number", "{\"config\":{\"Entrypoint\":1},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Labels array", "{\"config\":{\"Labels\":[]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "Label value number", "{\"config\":{\"Labels\":{\"a\":1}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "User number", "{\"config\":{\"User\":0},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "config array", "{\"config\":[],\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "architecture number", "{\"architecture\":64,\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "created garbage", "{\"created\":\"yesterday\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "created number", "{\"created\":1700000000,\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "created empty", "{\"created\":\"\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}" },
                { "top-level array", "[]" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct image_config x;
                memset(&x, 0x5a, sizeof(x));
                k = image_config_parse(bad[i].doc, strlen(bad[i].doc), &x);
                ok(k == -EINVAL && all_bytes(&x, sizeof(x), 0x5a), "config with %s -> -EINVAL (got %d)", bad[i].name, k);
        }

        _cleanup_free_ char *env_cap = config_with_env(IMAGE_CONFIG_MAX_STRV);
        _cleanup_free_ char *env_over = config_with_env(IMAGE_CONFIG_MAX_STRV + 1);
        _cleanup_(image_config_free) struct image_config e = { 0 };
        struct image_config x;
        ok(image_config_parse(env_cap, strlen(env_cap), &e) == 0 && e.n_env == IMAGE_CONFIG_MAX_STRV,
           "%d Env entries accepted", IMAGE_CONFIG_MAX_STRV);
        ok(image_config_parse(env_over, strlen(env_over), &x) == -EINVAL, "%d Env entries refused",
           IMAGE_CONFIG_MAX_STRV + 1);
}

static void test_time(void)
{
        static const struct {
                const char *in;
                int64_t want;
        } good[] = {
                { "1970-01-01T00:00:00Z", 0 },
                { "1970-01-01T00:00:01z", 1 },
                { "1970-01-01t00:00:00.999999999Z", 0 },
                { "2024-02-14T22:38:13.364297186Z", 1707950293 },
                { "2023-12-01T10:20:30+02:00", 1701418830 },
                { "2023-12-01T08:20:30-00:00", 1701418830 },
                { "2023-12-01T03:50:30-04:30", 1701418830 },
                { "2000-02-29T12:00:00Z", 951825600 },
                { "1969-12-31T23:59:59Z", -1 },
                { "0001-01-01T00:00:00Z", -62135596800LL }, /* Go's zero time */
                { "9999-12-31T23:59:59Z", 253402300799LL },
                { "2016-12-31T23:59:60Z", 1483228800 }, /* leap second */
                { "2038-01-19T03:14:08Z", 2147483648LL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
                int64_t t = 42;
                int k = manifest_parse_time(good[i].in, &t);
                ok(k == 0 && t == good[i].want, "time '%s' = %lld (got %d, %lld)", good[i].in, (long long)good[i].want, k,
                   (long long)t);
        }
        static const char *const bad[] = {
                "",
                "2024-02-14",
                "2024-02-14T22:38:13",
                "2024-02-14 22:38:13Z",
                "2024-02-14T22:38:13.Z",
                "2024-02-14T22:38:13ZZ",
                "2024-02-14T22:38:13+0200",
                "2024-02-14T22:38:13+02",
                "2024-02-14T22:38:13+24:00",
                "2024-13-01T00:00:00Z",
                "2024-00-01T00:00:00Z",
                "2023-02-29T00:00:00Z",
                "1900-02-29T00:00:00Z",
                "2024-04-31T00:00:00Z",
                "2024-01-01T24:00:00Z",
                "2024-01-01T00:60:00Z",
                "2024-01-01T00:00:61Z",
                "+2024-01-01T00:00:00Z",
                "20240-01-01T00:00:00Z",
                "2024-1-01T00:00:00Z",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                int64_t t = 42;
                int k = manifest_parse_time(bad[i], &t);
                ok(k == -EINVAL && t == 42, "time '%s' refused (got %d)", bad[i], k);
        }
}

static void test_docker_save(void)
{
        struct docker_save_entry *e = NULL;
        size_t n = 0;
        int k = docker_save_manifest_parse(save_classic, strlen(save_classic), &e, &n);
        ok(k == 0 && n == 2, "classic docker save manifest.json parses (got %d, %zu)", k, n);
        if (k == 0) {
                ok(streq_null(e[0].config, "4a0bd4c07cd6e3a6b0ab6a1c0a5f2b8c4a0bd4c07cd6e3a6b0ab6a1c0a5f2b8c.json"),
                   "Config path");
                ok(e[0].n_repo_tags == 2 && streq_null(e[0].repo_tags[1], "busybox:1.36") && !e[0].repo_tags[2],
                   "RepoTags");
                ok(e[0].n_layers == 1 && streq_null(e[0].layers[0],
                                                    "0e7d2f9e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e4b3c7f0e/layer.tar"),
                   "Layers");
                ok(e[1].n_repo_tags == 0 && !e[1].repo_tags && e[1].n_layers == 2, "untagged image: RepoTags null");
                docker_save_entries_free(e, n);
        }

        k = docker_save_manifest_parse(save_oci, strlen(save_oci), &e, &n);
        ok(k == 0 && n == 1 && streq_null(e[0].repo_tags[0], "localhost:5000/team/app:v1") &&
                   streq_null(e[0].layers[0], "blobs/sha256/1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
           "docker 25 (OCI layout) manifest.json parses (got %d)", k);
        if (k == 0)
                docker_save_entries_free(e, n);

        k = docker_save_manifest_parse("[]", 2, &e, &n);
        ok(k == 0 && n == 0, "empty manifest.json parses to zero images");
        if (k == 0)
                docker_save_entries_free(e, n);

        static const struct {
                const char *name, *doc;
        } bad[] = {
                { "object", "{\"Config\":\"a.json\",\"Layers\":[]}" },
                { "entry string", "[\"a\"]" },
                { "no Config", "[{\"Layers\":[\"a/layer.tar\"]}]" },
                { "Config number", "[{\"Config\":1,\"Layers\":[]}]" },
                { "no Layers", "[{\"Config\":\"a.json\"}]" },
                { "Layers string", "[{\"Config\":\"a.json\",\"Layers\":\"a/layer.tar\"}]" },
                { "layer number", "[{\"Config\":\"a.json\",\"Layers\":[1]}]" },
                { "RepoTags string", "[{\"Config\":\"a.json\",\"RepoTags\":\"a:b\",\"Layers\":[]}]" },
                { "RepoTags number entry", "[{\"Config\":\"a.json\",\"RepoTags\":[1],\"Layers\":[]}]" },
                { "absolute Config", "[{\"Config\":\"/etc/passwd\",\"Layers\":[]}]" },
                { "Config with ..", "[{\"Config\":\"../../x.json\",\"Layers\":[]}]" },
                { "layer with ..", "[{\"Config\":\"a.json\",\"Layers\":[\"a/../../layer.tar\"]}]" },
                { "layer trailing ..", "[{\"Config\":\"a.json\",\"Layers\":[\"a/..\"]}]" },
                { "absolute layer", "[{\"Config\":\"a.json\",\"Layers\":[\"/a/layer.tar\"]}]" },
                { "empty layer", "[{\"Config\":\"a.json\",\"Layers\":[\"\"]}]" },
                { "empty Config", "[{\"Config\":\"\",\"Layers\":[]}]" },
                { "layer with NUL", "[{\"Config\":\"a.json\",\"Layers\":[\"a\\u0000/../b\"]}]" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct docker_save_entry *x = (void *)0x1;
                size_t xn = 77;
                k = docker_save_manifest_parse(bad[i].doc, strlen(bad[i].doc), &x, &xn);
                ok(k == -EINVAL && x == (void *)0x1 && xn == 77, "docker save manifest with %s -> -EINVAL (got %d)",
                   bad[i].name, k);
        }
        static const char control[] = "[{\"Config\":\"a.json\",\"RepoTags\":[\"a:b\"],\"Layers\":[\"a/layer.tar\",\"./b/..c/layer.tar\"]}]";
        k = docker_save_manifest_parse(control, strlen(control), &e, &n);
        ok(k == 0 && n == 1 && e[0].n_layers == 2, "control docker save manifest parses (got %d)", k);
        if (k == 0)
                docker_save_entries_free(e, n);
        docker_save_entries_free(NULL, 0);
        ok(true, "free of NULL entries");
}

static void test_platforms(void)
{
        static const struct {
                const char *machine, *arch, *variant;
        } machines[] = {
                { "x86_64", "amd64", NULL }, { "aarch64", "arm64", "v8" }, { "armv7l", "arm", "v7" },
                { "armv6l", "arm", "v6" },   { "armv5tel", "arm", "v5" },  { "i686", "386", NULL },
                { "ppc64le", "ppc64le", NULL }, { "s390x", "s390x", NULL }, { "riscv64", "riscv64", NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(machines); i++) {
                const char *arch = NULL, *variant = "x";
                int k = platform_from_machine(machines[i].machine, &arch, &variant);
                ok(k == 0 && streq_null(arch, machines[i].arch) && streq_null(variant, machines[i].variant),
                   "machine %s -> %s%s%s", machines[i].machine, machines[i].arch, machines[i].variant ? "/" : "",
                   machines[i].variant ? machines[i].variant : "");
        }
        const char *a = NULL, *v = NULL;
        ok(platform_from_machine("pdp11", &a, &v) == -ENOENT && !a, "unknown machine -> -ENOENT");

        const char *hos = NULL, *harch = NULL, *hvar = NULL;
        platform_host(&hos, &harch, &hvar);
        ok(streq_null(hos, "linux") && harch && *harch, "host platform: %s/%s%s%s", hos, harch ? harch : "-",
           hvar ? "/" : "", hvar ? hvar : "");

        char *os = NULL, *arch = NULL, *variant = NULL;
        ok(platform_parse("linux/arm64/v8", &os, &arch, &variant) == 0 && streq_null(os, "linux") &&
                   streq_null(arch, "arm64") && streq_null(variant, "v8"),
           "parse linux/arm64/v8");
        free(os), free(arch), free(variant);
        os = arch = variant = NULL;
        ok(platform_parse("linux/amd64", &os, &arch, &variant) == 0 && streq_null(arch, "amd64") && !variant,
           "parse linux/amd64");
        free(os), free(arch), free(variant);
        static const char *const badp[] = { "linux", "linux/", "/amd64", "linux//v7", "linux/arm/v7/x", "linux/arm/",
                                            "linux/am d64", "" };
        for (size_t i = 0; i < ARRAY_SIZE(badp); i++) {
                os = (char *)0x1;
                ok(platform_parse(badp[i], &os, &arch, &variant) == -EINVAL && os == (char *)0x1,
                   "platform '%s' refused", badp[i]);
        }

        /* platform_match ordering */
        ok(platform_match("linux", "arm", "v7", "linux", "arm", "v7") >
                   platform_match("linux", "arm", "v7", "linux", "arm", "v6"),
           "arm v7 prefers v7 over v6");
        ok(platform_match("linux", "arm", "v7", "linux", "arm", "v6") >
                   platform_match("linux", "arm", "v7", "linux", "arm", "v5"),
           "arm v7 prefers v6 over v5");
        ok(platform_match("linux", "arm", "v6", "linux", "arm", "v7") == 0, "arm v6 cannot run v7");
        ok(platform_match("linux", "arm", NULL, "linux", "arm", NULL) > 0, "arm without variants matches (v7)");
        ok(platform_match("linux", "arm64", NULL, "linux", "arm64", "v8") ==
                   platform_match("linux", "arm64", "v8", "linux", "arm64", NULL),
           "arm64: missing variant is v8");
        ok(platform_match("linux", "arm64", "v9", "linux", "arm64", "v8") > 0, "arm64 v9 runs v8");
        ok(platform_match("linux", "arm64", "v8", "linux", "arm64", "v9") == 0, "arm64 v8 cannot run v9");
        ok(platform_match("linux", "arm64", NULL, "linux", "arm", "v7") == 0, "arm64 does not take 32-bit arm");
        ok(platform_match("linux", "aarch64", NULL, "linux", "arm64", "v8") > 0, "aarch64 alias");
        ok(platform_match("linux", "x86_64", NULL, "linux", "amd64", NULL) > 0, "x86_64 alias");
        ok(platform_match("linux", "armhf", NULL, "linux", "arm", "v7") > 0 &&
                   platform_match("linux", "armhf", NULL, "linux", "arm", "v8") == 0,
           "armhf alias is arm/v7");
        ok(platform_match("Linux", "amd64", NULL, "linux", "amd64", NULL) > 0, "os compared case-insensitively");
        ok(platform_match("linux", "amd64", NULL, "windows", "amd64", NULL) == 0, "os must match");
        ok(platform_match("linux", "ppc64le", NULL, "linux", "ppc64le", "power9") > 0 &&
                   platform_match("linux", "ppc64le", "power10", "linux", "ppc64le", "power9") == 0,
           "other arches: variant only when asked");
        ok(platform_match(NULL, "amd64", NULL, "linux", "amd64", NULL) == 0, "NULL os never matches");

        _cleanup_(manifest_index_free) struct manifest_index idx = { 0 };
        if (manifest_parse_index(busybox_index, strlen(busybox_index), &idx) < 0) {
                ok(false, "busybox index for picking");
                return;
        }
        static const struct {
                const char *os, *arch, *variant;
                const char *want; /* digest, NULL for -ENOENT */
        } picks[] = {
                { "linux", "amd64", NULL, DG("a0a0a0a0") },
                { "linux", "amd64", "v2", DG("a0a0a0a0") },
                { "linux", "arm64", NULL, DG("b8b8b8b8") },
                { "linux", "arm64", "v8", DG("b8b8b8b8") },
                { "linux", "aarch64", NULL, DG("b8b8b8b8") },
                { "linux", "arm", NULL, DG("b7b7b7b7") },
                { "linux", "arm", "v7", DG("b7b7b7b7") },
                { "linux", "arm", "v8", DG("b7b7b7b7") },
                { "linux", "arm", "v6", DG("b6b6b6b6") },
                { "linux", "arm", "v5", DG("b5b5b5b5") },
                { "linux", "armel", NULL, DG("b6b6b6b6") },
                { "linux", "386", NULL, DG("03860386") },
                { "linux", "mips64le", NULL, DG("64646464") },
                { "linux", "ppc64le", NULL, DG("9c9c9c9c") },
                { "linux", "riscv64", NULL, DG("5c5c5c5c") },
                { "linux", "s390x", NULL, DG("39039039") },
                { "windows", "amd64", NULL, NULL },
                { "linux", "mips", NULL, NULL },
                { "linux", "arm", "v4", NULL },
                { "unknown", "unknown", NULL, NULL },
                { "linux", "s390x", "z15", NULL },
        };
        for (size_t i = 0; i < ARRAY_SIZE(picks); i++) {
                size_t at = 999;
                int k = manifest_index_pick(&idx, picks[i].os, picks[i].arch, picks[i].variant, &at);
                bool good = picks[i].want ? (k == 0 && at < idx.n_manifests && digest_is(idx.manifests[at].digest, picks[i].want))
                                          : (k == -ENOENT && at == 999);
                ok(good, "busybox pick %s/%s%s%s -> %s (got %d, %zu)", picks[i].os, picks[i].arch,
                   picks[i].variant ? "/" : "", picks[i].variant ? picks[i].variant : "",
                   picks[i].want ? "found" : "-ENOENT", k, at);
        }

        /* The host's own platform: busybox has every arch a CI machine plausibly runs on. */
        size_t at = 999;
        int k = manifest_index_pick(&idx, NULL, NULL, NULL, &at);
        ok(k == 0 && streq_null(idx.manifests[at].platform_arch, harch), "host platform picked (%s)", harch);

        _cleanup_free_ char *plats = manifest_index_platforms(&idx);
        ok(streq_null(plats, "linux/amd64, linux/arm/v5, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/386, "
                             "linux/mips64le, linux/ppc64le, linux/riscv64, linux/s390x"),
           "platforms on offer: %s", plats);

        /* arm fallback down when the exact variant is absent; amd64 levels. */
        static const char arm_amd64[] =
                "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":["
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("00000005") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v5\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("00000006") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("000000a3") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v3\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("000000a1") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("000000a2") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\",\"variant\":\"v2\"}},"
                "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DG("000000a1") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
                "{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"" DG("0000eeee") "\",\"size\":1,"
                "\"platform\":{\"os\":\"linux\",\"architecture\":\"riscv64\"}}"
                "]}";
        _cleanup_(manifest_index_free) struct manifest_index aa = { 0 };
        k = manifest_parse_index(arm_amd64, strlen(arm_amd64), &aa);
        ok(k == 0, "arm/amd64 variant index parses (got %d)", k);
        static const struct {
                const char *arch, *variant, *want;
        } picks2[] = {
                { "arm", NULL, DG("00000006") },        { "arm", "v7", DG("00000006") },
                { "arm", "v6", DG("00000006") },        { "arm", "v5", DG("00000005") },
                { "amd64", NULL, DG("000000a1") },      { "amd64", "v1", DG("000000a1") },
                { "amd64", "v2", DG("000000a2") },      { "amd64", "v3", DG("000000a3") },
                { "amd64", "v4", DG("000000a3") },      { "riscv64", NULL, NULL },
        };
        for (size_t i = 0; k == 0 && i < ARRAY_SIZE(picks2); i++) {
                size_t j = 999;
                int r = manifest_index_pick(&aa, "linux", picks2[i].arch, picks2[i].variant, &j);
                bool good = picks2[i].want ? (r == 0 && digest_is(aa.manifests[j].digest, picks2[i].want)) : r == -ENOENT;
                ok(good, "pick linux/%s%s%s (got %d, %zu)", picks2[i].arch, picks2[i].variant ? "/" : "",
                   picks2[i].variant ? picks2[i].variant : "", r, j);
        }
        _cleanup_free_ char *p2 = manifest_index_platforms(&aa);
        ok(streq_null(p2, "linux/arm/v5, linux/arm/v6, linux/amd64/v3, linux/amd64, linux/amd64/v2, linux/riscv64"),
           "platforms deduplicated: %s", p2);

        /* amd64 with only a v3 build: ignored variant still matches; an explicit lower one does not. */
        static const char only_v3[] =
                "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
                "\"digest\":\"" DG("000000a3") "\",\"size\":1,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\","
                "\"variant\":\"v3\"}}]}";
        _cleanup_(manifest_index_free) struct manifest_index v3 = { 0 };
        size_t j = 999;
        ok(manifest_parse_index(only_v3, strlen(only_v3), &v3) == 0 &&
                   manifest_index_pick(&v3, "linux", "amd64", NULL, &j) == 0 && j == 0 &&
                   manifest_index_pick(&v3, "linux", "amd64", "v2", &j) == -ENOENT,
           "amd64/v3 only: no variant matches, v2 does not");

        /* The layout index has no platforms at all. */
        _cleanup_(manifest_index_free) struct manifest_index lay = { 0 };
        j = 999;
        ok(manifest_parse_index(layout_index, strlen(layout_index), &lay) == 0 &&
                   manifest_index_pick(&lay, "linux", "amd64", NULL, &j) == -ENOENT && j == 999,
           "index without platforms -> -ENOENT");
        _cleanup_free_ char *p3 = manifest_index_platforms(&lay);
        ok(streq_null(p3, ""), "no platforms on offer -> \"\"");
}

/* Run every parser over a document; the results do not matter, surviving them does (ASan). */
static void parse_all(const char *doc, size_t len)
{
        struct manifest_index idx;
        struct manifest m;
        struct image_config c;
        struct docker_save_entry *e;
        size_t n;

        (void)manifest_sniff(doc, len);
        if (manifest_parse_index(doc, len, &idx) == 0)
                manifest_index_free(&idx);
        if (manifest_parse(doc, len, &m) == 0)
                manifest_free(&m);
        if (image_config_parse(doc, len, &c) == 0)
                image_config_free(&c);
        if (docker_save_manifest_parse(doc, len, &e, &n) == 0)
                docker_save_entries_free(e, n);
}

/* Every truncation and byte substitutions at every position of each sample. */
static void test_mutations(void)
{
        static const char *const docs[] = { busybox_index, alpine_list, layout_index, oci_manifest, docker_manifest,
                                            schema1_manifest, docker_config, oci_config, save_classic, save_oci };
        static const char subst[] = { '"', '{', '}', '[', ']', ',', ':', '0', '-', '\\', '\0', (char)0xff };
        for (size_t d = 0; d < ARRAY_SIZE(docs); d++) {
                size_t len = strlen(docs[d]);
                _cleanup_free_ char *copy = xmalloc(len + 1);
                size_t runs = 0;
                for (size_t cut = 0; cut <= len; cut++) {
                        memcpy(copy, docs[d], cut);
                        parse_all(copy, cut);
                        runs++;
                }
                /* Two substitutions per position, rotating through the set: cheap enough
                 * for an ASan run, and every byte sees a structural character. */
                for (size_t pos = 0; pos < len; pos++)
                        for (size_t s = 0; s < 2; s++) {
                                memcpy(copy, docs[d], len + 1);
                                copy[pos] = subst[(pos * 5 + s * 7) % sizeof(subst)];
                                parse_all(copy, len);
                                runs++;
                        }
                ok(true, "sample %zu survives %zu truncated and mutated variants", d, runs);
        }
}

int main(void)
{
        test_sniff();
        test_index();
        test_manifest();
        test_malformed_manifests();
        test_malformed_index();
        test_config();
        test_time();
        test_docker_save();
        test_platforms();
        test_mutations();
        return tap_done();
}
