/* SPDX-License-Identifier: Apache-2.0 */
/* Image references: docker names, every transport, normalization (TAP). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "reference.h"
#include "tap.h"
#include "util.h"

static bool streq_null(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

/* Inputs with control characters must not break the TAP stream. */
static const char *printable(const char *s)
{
        static char buf[256];
        size_t i = 0;
        for (; s[i] && i < sizeof(buf) - 1; i++)
                buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == '#') ? '?' : s[i];
        buf[i] = '\0';
        return buf;
}

#define D64 "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Valid docker references and what they parse to. */
static const struct {
        const char *in;
        const char *registry, *repository, *tag, *digest;
} valid_docker[] = {
        { "busybox", "docker.io", "library/busybox", "latest", NULL },
        { "busybox:1", "docker.io", "library/busybox", "1", NULL },
        { "busybox:1.36.1-musl", "docker.io", "library/busybox", "1.36.1-musl", NULL },
        { "busybox:_x", "docker.io", "library/busybox", "_x", NULL },
        { "busybox:Latest_UP", "docker.io", "library/busybox", "Latest_UP", NULL },
        { "library/busybox", "docker.io", "library/busybox", "latest", NULL },
        { "docker.io/busybox", "docker.io", "library/busybox", "latest", NULL },
        { "docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", NULL },
        { "index.docker.io/busybox", "docker.io", "library/busybox", "latest", NULL },
        { "index.docker.io/user/app:2", "docker.io", "user/app", "2", NULL },
        { "user/app", "docker.io", "user/app", "latest", NULL },
        { "user/app/sub/deeper", "docker.io", "user/app/sub/deeper", "latest", NULL },
        { "quay.io/a/b", "quay.io", "a/b", "latest", NULL },
        { "ghcr.io/owner/repo:v1.2.3", "ghcr.io", "owner/repo", "v1.2.3", NULL },
        { "localhost/x:v1", "localhost", "x", "v1", NULL },
        { "localhost:5000/x", "localhost:5000", "x", "latest", NULL },
        { "127.0.0.1:5000/test/busybox:1", "127.0.0.1:5000", "test/busybox", "1", NULL },
        { "registry.example.com:443/team/app:rc", "registry.example.com:443", "team/app", "rc", NULL },
        { "my-registry.local/a", "my-registry.local", "a", "latest", NULL },
        { "[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar", NULL },
        { "[fe80::1]/foo", "[fe80::1]", "foo", "latest", NULL },
        { "Example.COM/foo", "Example.COM", "foo", "latest", NULL },
        { "Registry/foo", "Registry", "foo", "latest", NULL }, /* uppercase => registry */
        { "localhost:5000", "docker.io", "library/localhost", "5000", NULL }, /* docker too */
        { "busybox@" D64, "docker.io", "library/busybox", NULL, D64 },
        { "busybox:1@" D64, "docker.io", "library/busybox", "1", D64 },
        { "quay.io/a/b@" D64, "quay.io", "a/b", NULL, D64 },
        { "localhost:5000/x:y@" D64, "localhost:5000", "x", "y", D64 },
        { "a_b-c__d---e/f.g", "docker.io", "a_b-c__d---e/f.g", "latest", NULL },
        { "a.b-c/d", "a.b-c", "d", "latest", NULL }, /* '.' in the first component: registry */
        { "0/1", "docker.io", "0/1", "latest", NULL },
        { "docker:dind", "docker.io", "library/docker", "dind", NULL }, /* not a transport */
        { "docker://busybox", "docker.io", "library/busybox", "latest", NULL },
        { "docker://quay.io/a/b:c", "quay.io", "a/b", "c", NULL },
        { "docker://localhost:5000/x@" D64, "localhost:5000", "x", NULL, D64 },
        { "docker://docker.io/library/busybox:1", "docker.io", "library/busybox", "1", NULL },
        { "x:" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          "docker.io", "library/x",
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
          NULL }, /* 128-char tag */
};

static const char *const invalid[] = {
        "",
        ":",
        ":tag",
        "busybox:",
        "busybox@",
        "busybox@sha256:",
        "busybox@sha256:abc",
        "busybox@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "busybox@sha256:" HEX64 "0",
        "busybox@sha512:" HEX64 HEX64,
        "busybox@md5:0123456789abcdef0123456789abcdef",
        "busybox@" D64 "@" D64,
        "BusyBox",
        "docker.io/Library/busybox",
        "quay.io/A/b",
        "bu sy",
        " busybox",
        "busybox ",
        "busybox:la test",
        "busybox:.x",
        "busybox:-x",
        "busybox:a:b",
        "busybox:a/b",
        "/busybox",
        "busybox/",
        "a//b",
        "quay.io/",
        "quay.io//a",
        "-a",
        "a-",
        "a.",
        ".a",
        "_a",
        "a_",
        "a..b",
        "a___b",
        "a._b",
        "a-_b",
        "a_-b",
        "a:b/c",         /* first component "a:b" is a registry with a bad port */
        "localhost:0/x",
        "localhost:65536/x",
        "localhost:99999/x",
        "localhost:5000a/x",
        "localhost:/x",
        "-reg.io/x",
        "reg-.io/x",
        "reg..io/x",
        "reg_io.com/x",
        "[::1/x",
        "[]/x",
        "[::g]/x",
        "[fe80]/x",
        "[::1]:/x",
        "[::1]x/x",
        "::1/x",
        HEX64,            /* an image id, never a name */
        "docker://",
        "docker:///busybox",
        "docker://busybox:",
        "docker://BUSYBOX",
        "a\tb",
        "a\nb",
        "busybox:" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 129 */
        "oci:",
        "oci::tag",
        "oci:dir:",
        "oci:dir:bad tag",
        "oci:dir:-x",
        "oci:dir:x-",
        "oci:dir:a..b",
        "oci:dir:a---b",
        "oci-archive:",
        "oci-archive::x",
        "oci-archive:f.tar:",
        "docker-archive:",
        "docker-archive::busybox:1",
        "docker-archive:f.tar:",
        "docker-archive:f.tar:BusyBox",
        "docker-archive:f.tar:busybox:",
        "docker-archive:f.tar:busybox@" D64,
        "docker-archive:f.tar:busybox:1@" D64,
};

static void test_valid_docker(void)
{
        for (size_t i = 0; i < ARRAY_SIZE(valid_docker); i++) {
                _cleanup_(reference_free) struct reference r = { 0 };
                int k = reference_parse(valid_docker[i].in, &r);
                ok(k == 0 && r.transport == REF_DOCKER && streq_null(r.registry, valid_docker[i].registry) &&
                           streq_null(r.repository, valid_docker[i].repository) &&
                           streq_null(r.tag, valid_docker[i].tag) && streq_null(r.digest, valid_docker[i].digest) &&
                           !r.path && !r.name,
                   "valid docker reference '%s' (got %d: %s %s %s %s)", valid_docker[i].in, k,
                   r.registry ? r.registry : "-", r.repository ? r.repository : "-", r.tag ? r.tag : "-",
                   r.digest ? r.digest : "-");
        }
}

static void test_invalid(void)
{
        for (size_t i = 0; i < ARRAY_SIZE(invalid); i++) {
                struct reference r;
                memset(&r, 0xa5, sizeof(r));
                int k = reference_parse(invalid[i], &r);
                /* ret must be untouched on failure */
                bool untouched = true;
                for (size_t b = 0; b < sizeof(r); b++)
                        if (((unsigned char *)&r)[b] != 0xa5)
                                untouched = false;
                ok(k == -EINVAL && untouched, "invalid reference '%s' refused (got %d)", printable(invalid[i]), k);
        }
}

static void test_lengths(void)
{
        /* "docker.io/" + "library/" + repo: total name at most 255 characters. */
        char name[300];
        size_t fit = 255 - strlen("docker.io/library/");
        memset(name, 'a', fit);
        name[fit] = '\0';
        _cleanup_(reference_free) struct reference r = { 0 };
        ok(reference_parse(name, &r) == 0, "name of exactly 255 characters after normalization accepted");
        name[fit] = 'a';
        name[fit + 1] = '\0';
        struct reference r2 = { 0 };
        ok(reference_parse(name, &r2) == -EINVAL, "name of 256 characters after normalization refused");

        /* A huge input is refused without trouble. */
        size_t big = 1 << 20;
        _cleanup_free_ char *huge = xmalloc(big + 1);
        memset(huge, 'a', big);
        huge[big] = '\0';
        ok(reference_parse(huge, &r2) == -EINVAL, "1 MiB name refused");
        huge[0] = 'o', huge[1] = 'c', huge[2] = 'i', huge[3] = ':';
        ok(reference_parse(huge, &r2) == -EINVAL, "1 MiB oci path refused");
}

static const struct {
        const char *in;
        enum reference_transport t;
        const char *path, *name;
        /* docker-archive only: the parsed NAME */
        const char *registry, *repository, *tag;
} valid_transport[] = {
        { "oci:layout", REF_OCI, "layout", NULL, NULL, NULL, NULL },
        { "oci:/srv/images/busybox", REF_OCI, "/srv/images/busybox", NULL, NULL, NULL, NULL },
        { "oci:/srv/images/busybox:1.36", REF_OCI, "/srv/images/busybox", "1.36", NULL, NULL, NULL },
        { "oci:./bb:latest", REF_OCI, "./bb", "latest", NULL, NULL, NULL },
        { "oci:bb:busybox:latest", REF_OCI, "bb", "busybox:latest", NULL, NULL, NULL },
        { "oci:/a:b/c:d/layout:v1", REF_OCI, "/a:b/c:d/layout", "v1", NULL, NULL, NULL },
        { "oci:/a:b/layout", REF_OCI, "/a:b/layout", NULL, NULL, NULL, NULL },
        { "oci:/a/b:1/", REF_OCI, "/a/b:1/", NULL, NULL, NULL, NULL },
        { "oci:dir:a--b.c_d@e+f", REF_OCI, "dir", "a--b.c_d@e+f", NULL, NULL, NULL },
        { "oci:dir:V1", REF_OCI, "dir", "V1", NULL, NULL, NULL },
        { "oci-archive:bb.tar", REF_OCI_ARCHIVE, "bb.tar", NULL, NULL, NULL, NULL },
        { "oci-archive:/tmp/x/bb.tar:edge", REF_OCI_ARCHIVE, "/tmp/x/bb.tar", "edge", NULL, NULL, NULL },
        { "oci-archive:/tmp/a:b/bb.tar:edge", REF_OCI_ARCHIVE, "/tmp/a:b/bb.tar", "edge", NULL, NULL, NULL },
        { "docker-archive:bb.tar", REF_DOCKER_ARCHIVE, "bb.tar", NULL, NULL, NULL, NULL },
        { "docker-archive:/tmp/bb.tar:busybox:1", REF_DOCKER_ARCHIVE, "/tmp/bb.tar", "busybox:1", "docker.io",
          "library/busybox", "1" },
        { "docker-archive:/tmp/bb.tar:busybox", REF_DOCKER_ARCHIVE, "/tmp/bb.tar", "busybox", "docker.io",
          "library/busybox", "latest" },
        { "docker-archive:/tmp/bb.tar:myorg/app:2", REF_DOCKER_ARCHIVE, "/tmp/bb.tar", "myorg/app:2", "docker.io",
          "myorg/app", "2" },
        { "docker-archive:bb.tar:localhost:5000/a/b:v1", REF_DOCKER_ARCHIVE, "bb.tar", "localhost:5000/a/b:v1",
          "localhost:5000", "a/b", "v1" },
        { "docker-archive:bb.tar:quay.io/x/y", REF_DOCKER_ARCHIVE, "bb.tar", "quay.io/x/y", "quay.io", "x/y",
          "latest" },
};

static void test_transports(void)
{
        for (size_t i = 0; i < ARRAY_SIZE(valid_transport); i++) {
                _cleanup_(reference_free) struct reference r = { 0 };
                int k = reference_parse(valid_transport[i].in, &r);
                ok(k == 0 && r.transport == valid_transport[i].t && streq_null(r.path, valid_transport[i].path) &&
                           streq_null(r.name, valid_transport[i].name) &&
                           streq_null(r.registry, valid_transport[i].registry) &&
                           streq_null(r.repository, valid_transport[i].repository) &&
                           streq_null(r.tag, valid_transport[i].tag) && !r.digest,
                   "transport reference '%s' (got %d: path=%s name=%s)", valid_transport[i].in, k,
                   r.path ? r.path : "-", r.name ? r.name : "-");
        }

        static const char *const unsupported[] = {
                "dir:/tmp/x", "containers-storage:busybox", "docker-daemon:busybox:latest",
                "ostree:foo@/repo", "sif:/tmp/x.sif", "tarball:/tmp/x.tar",
        };
        for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++) {
                struct reference r = { 0 };
                int k = reference_parse(unsupported[i], &r);
                ok(k == -EPROTONOSUPPORT && !r.registry, "unsupported transport '%s' -> -EPROTONOSUPPORT (got %d)",
                   unsupported[i], k);
        }
}

static void test_normalize(void)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "busybox", "docker.io/library/busybox:latest" },
                { "busybox:1", "docker.io/library/busybox:1" },
                { "library/busybox:1", "docker.io/library/busybox:1" },
                { "docker.io/busybox", "docker.io/library/busybox:latest" },
                { "index.docker.io/library/busybox:2", "docker.io/library/busybox:2" },
                { "quay.io/a/b", "quay.io/a/b:latest" },
                { "localhost/x:v1", "localhost/x:v1" },
                { "localhost:5000/x", "localhost:5000/x:latest" },
                { "user/app", "docker.io/user/app:latest" },
                { "name@" D64, "docker.io/library/name@" D64 },
                { "name:t@" D64, "docker.io/library/name:t@" D64 },
                { "docker://alpine:3", "docker.io/library/alpine:3" },
                { "[::1]:5000/a", "[::1]:5000/a:latest" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_free_ char *full = NULL;
                int k = reference_normalize(cases[i].in, &full);
                ok(k == 0 && streq_null(full, cases[i].out), "normalize '%s' -> '%s' (got %d '%s')", cases[i].in,
                   cases[i].out, k, full ? full : "-");
        }

        static const char *const bad[] = { "Busybox", "oci:dir", "docker-archive:x.tar:busybox:1",
                                           "oci-archive:x.tar", "dir:/tmp", "" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char *full = NULL;
                int k = reference_normalize(bad[i], &full);
                ok(k == -EINVAL && !full, "normalize refuses '%s' (got %d)", bad[i], k);
        }

        /* Normalizing a normalized name is the identity. */
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_free_ char *again = NULL;
                int k = reference_normalize(cases[i].out, &again);
                ok(k == 0 && streq_null(again, cases[i].out), "normalize is idempotent on '%s'", cases[i].out);
        }
}

static void test_to_string(void)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "busybox", "docker.io/library/busybox:latest" },
                { "docker://quay.io/a/b@" D64, "quay.io/a/b@" D64 },
                { "oci:/srv/layout", "oci:/srv/layout" },
                { "oci:/srv/layout:1", "oci:/srv/layout:1" },
                { "oci-archive:x.tar:v2", "oci-archive:x.tar:v2" },
                { "docker-archive:x.tar", "docker-archive:x.tar" },
                { "docker-archive:x.tar:busybox:1", "docker-archive:x.tar:busybox:1" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                _cleanup_(reference_free) struct reference r = { 0 };
                _cleanup_free_ char *s = NULL;
                int k = reference_parse(cases[i].in, &r);
                if (k == 0)
                        s = reference_to_string(&r);
                ok(k == 0 && streq_null(s, cases[i].out), "to_string '%s' -> '%s' (got '%s')", cases[i].in,
                   cases[i].out, s ? s : "-");
        }
}

static void test_helpers(void)
{
        ok(reference_tag_is_valid("v1.2-rc_3"), "tag v1.2-rc_3 valid");
        ok(!reference_tag_is_valid(""), "empty tag invalid");
        ok(!reference_tag_is_valid(".x"), "tag .x invalid");
        ok(!reference_tag_is_valid(NULL), "NULL tag invalid");
        ok(reference_digest_is_valid(D64), "sha256 digest valid");
        ok(!reference_digest_is_valid("sha256:" HEX64 "00"), "long digest invalid");
        ok(!reference_digest_is_valid("sha384:" HEX64), "sha384 digest invalid");

        /* reference_free on a zeroed struct and twice in a row is harmless */
        struct reference r = { 0 };
        reference_free(&r);
        ok(reference_parse("quay.io/a/b:c", &r) == 0, "parse for double free");
        reference_free(&r);
        reference_free(&r);
        ok(!r.registry && !r.tag, "reference_free resets the struct");
        reference_free(NULL);
}

int main(void)
{
        test_valid_docker();
        test_invalid();
        test_lengths();
        test_transports();
        test_normalize();
        test_to_string();
        test_helpers();
        return tap_done();
}
