/* SPDX-License-Identifier: Apache-2.0 */
#include "reference.h"

#include <errno.h>
#include <string.h>

#include "util.h"

#define DEFAULT_REGISTRY "docker.io"
#define LEGACY_REGISTRY "index.docker.io"
#define OFFICIAL_PREFIX "library/"
#define DEFAULT_TAG "latest"
/* distribution/reference NameTotalLengthMax, applied to "registry/repository". */
#define NAME_TOTAL_MAX 255
#define TAG_MAX 128
/* Nothing valid comes near this; it bounds the work done on hostile input. */
#define REFERENCE_INPUT_MAX 8192

static bool is_lower_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
        return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static bool is_hex_lower(char c)
{
        return is_digit(c) || (c >= 'a' && c <= 'f');
}

static bool has_upper(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (s[i] >= 'A' && s[i] <= 'Z')
                        return true;
        return false;
}

/* path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+ */
static bool valid_path_component(const char *s, size_t n)
{
        size_t i = 0;
        if (n == 0 || !is_lower_alnum(s[0]))
                return false;
        while (i < n) {
                if (is_lower_alnum(s[i])) {
                        i++;
                        continue;
                }
                if (s[i] == '.')
                        i++;
                else if (s[i] == '_')
                        i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
                else if (s[i] == '-')
                        while (i < n && s[i] == '-')
                                i++;
                else
                        return false;
                /* A separator is always followed by an alphanumeric run. */
                if (i >= n || !is_lower_alnum(s[i]))
                        return false;
        }
        return true;
}

static bool valid_repository(const char *s, size_t n)
{
        size_t start = 0;
        for (size_t i = 0; i <= n; i++) {
                if (i == n || s[i] == '/') {
                        if (!valid_path_component(s + start, i - start))
                                return false;
                        start = i + 1;
                }
        }
        return true;
}

/* domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
static bool valid_domain_component(const char *s, size_t n)
{
        if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
                return false;
        for (size_t i = 1; i + 1 < n; i++)
                if (!is_alnum(s[i]) && s[i] != '-')
                        return false;
        return true;
}

static bool valid_port(const char *s, size_t n)
{
        unsigned v = 0;
        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (!is_digit(s[i]))
                        return false;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        return v >= 1 && v <= 65535;
}

/* host [':' port], host := domain-name | IPv4 | '[' IPv6 ']' */
static bool valid_registry(const char *s, size_t n)
{
        size_t hostlen;
        if (n == 0)
                return false;
        if (s[0] == '[') {
                const char *close = memchr(s, ']', n);
                if (!close || close == s + 1)
                        return false;
                bool colon = false;
                for (const char *p = s + 1; p < close; p++) {
                        if (*p == ':')
                                colon = true;
                        else if (!is_digit(*p) && !((*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
                                return false;
                }
                if (!colon)
                        return false;
                hostlen = (size_t)(close - s) + 1;
        } else {
                const char *colon = memchr(s, ':', n);
                hostlen = colon ? (size_t)(colon - s) : n;
                size_t start = 0;
                for (size_t i = 0; i <= hostlen; i++) {
                        if (i == hostlen || s[i] == '.') {
                                if (!valid_domain_component(s + start, i - start))
                                        return false;
                                start = i + 1;
                        }
                }
        }
        if (hostlen == n)
                return true;
        if (s[hostlen] != ':')
                return false;
        return valid_port(s + hostlen + 1, n - hostlen - 1);
}

static bool valid_tag(const char *s, size_t n)
{
        if (n == 0 || n > TAG_MAX)
                return false;
        if (!is_alnum(s[0]) && s[0] != '_')
                return false;
        for (size_t i = 1; i < n; i++)
                if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
                        return false;
        return true;
}

bool reference_tag_is_valid(const char *tag)
{
        return tag && valid_tag(tag, strlen(tag));
}

bool reference_digest_is_valid(const char *d)
{
        if (!d || strncmp(d, "sha256:", 7) != 0 || strlen(d) != 7 + 64)
                return false;
        for (size_t i = 7; i < 7 + 64; i++)
                if (!is_hex_lower(d[i]))
                        return false;
        return true;
}

/*
 * ref.name of the OCI image layout (image-spec annotations.md), restricted to one component
 * since the path rule above leaves no '/' in it:
 * alphanum+ (separator alphanum+)*, separator := [-._:@+] | "--"
 */
static bool valid_oci_ref_name(const char *s)
{
        size_t i = 0, n = strlen(s);
        if (n == 0 || !is_alnum(s[0]))
                return false;
        while (i < n) {
                if (is_alnum(s[i])) {
                        i++;
                        continue;
                }
                if (s[i] == '-' && i + 1 < n && s[i + 1] == '-')
                        i += 2;
                else if (strchr("-._:@+", s[i]))
                        i++;
                else
                        return false;
                if (i >= n || !is_alnum(s[i]))
                        return false;
        }
        return true;
}

void reference_free(struct reference *r)
{
        if (!r)
                return;
        free(r->registry);
        free(r->repository);
        free(r->tag);
        free(r->digest);
        free(r->path);
        free(r->name);
        memset(r, 0, sizeof(*r));
}

/* A docker reference without transport: NAME[:TAG][@DIGEST]. */
static int parse_docker_name(const char *s, struct reference *ret)
{
        _cleanup_(reference_free) struct reference r = { .transport = REF_DOCKER };
        size_t n = strlen(s);

        if (n == 0 || n > REFERENCE_INPUT_MAX)
                return -EINVAL;

        /* distribution/reference: a 64-hex string is an image id, never a name. */
        if (n == 64 && strspn(s, "0123456789abcdef") == 64)
                return -EINVAL;

        /* Neither names nor tags contain '@', so the first one starts the digest. */
        const char *at = strchr(s, '@');
        size_t namelen = at ? (size_t)(at - s) : n;
        if (at) {
                if (!reference_digest_is_valid(at + 1))
                        return -EINVAL;
                r.digest = xstrdup(at + 1);
        }

        /* A tag follows the last ':' if it comes after the last '/' (else it is a port). */
        const char *colon = NULL, *slash = NULL;
        for (size_t i = 0; i < namelen; i++) {
                if (s[i] == ':')
                        colon = s + i;
                else if (s[i] == '/')
                        slash = s + i;
        }
        if (colon && (!slash || colon > slash)) {
                size_t taglen = namelen - (size_t)(colon + 1 - s);
                if (!valid_tag(colon + 1, taglen))
                        return -EINVAL;
                r.tag = xstrndup(colon + 1, taglen);
                namelen = (size_t)(colon - s);
        }
        if (namelen == 0)
                return -EINVAL;

        /* splitDockerDomain */
        const char *first_slash = memchr(s, '/', namelen);
        const char *rest = s;
        size_t restlen = namelen;
        if (first_slash) {
                size_t flen = (size_t)(first_slash - s);
                bool is_registry = memchr(s, '.', flen) || memchr(s, ':', flen) ||
                                   (flen == 9 && memcmp(s, "localhost", 9) == 0) || has_upper(s, flen);
                if (is_registry) {
                        if (!valid_registry(s, flen))
                                return -EINVAL;
                        if (flen == strlen(LEGACY_REGISTRY) && memcmp(s, LEGACY_REGISTRY, flen) == 0)
                                r.registry = xstrdup(DEFAULT_REGISTRY);
                        else
                                r.registry = xstrndup(s, flen);
                        rest = first_slash + 1;
                        restlen = namelen - flen - 1;
                }
        }
        if (!r.registry)
                r.registry = xstrdup(DEFAULT_REGISTRY);

        if (!valid_repository(rest, restlen))
                return -EINVAL;
        if (strcmp(r.registry, DEFAULT_REGISTRY) == 0 && !memchr(rest, '/', restlen))
                r.repository = xasprintf(OFFICIAL_PREFIX "%.*s", (int)restlen, rest);
        else
                r.repository = xstrndup(rest, restlen);

        if (strlen(r.registry) + 1 + strlen(r.repository) > NAME_TOTAL_MAX)
                return -EINVAL;

        if (!r.tag && !r.digest)
                r.tag = xstrdup(DEFAULT_TAG);

        *ret = r;
        memset(&r, 0, sizeof(r));
        return 0;
}

/* oci:DIR[:TAG], oci-archive:FILE[:TAG]: split at the first ':' after the last '/'. */
static int parse_oci(const char *s, enum reference_transport t, struct reference *ret)
{
        size_t n = strlen(s);
        if (n == 0 || n > REFERENCE_INPUT_MAX)
                return -EINVAL;

        const char *slash = strrchr(s, '/');
        const char *colon = strchr(slash ? slash + 1 : s, ':');
        size_t pathlen = colon ? (size_t)(colon - s) : n;
        if (pathlen == 0)
                return -EINVAL;
        if (colon && !valid_oci_ref_name(colon + 1))
                return -EINVAL;

        *ret = (struct reference){
                .transport = t,
                .path = xstrndup(s, pathlen),
                .name = colon ? xstrdup(colon + 1) : NULL,
        };
        return 0;
}

/* docker-archive:FILE[:NAME[:TAG]]: split at the first ':'; NAME is a docker reference. */
static int parse_docker_archive(const char *s, struct reference *ret)
{
        _cleanup_(reference_free) struct reference r = { 0 };
        size_t n = strlen(s);
        int k;

        if (n == 0 || n > REFERENCE_INPUT_MAX)
                return -EINVAL;

        const char *colon = strchr(s, ':');
        size_t pathlen = colon ? (size_t)(colon - s) : n;
        if (pathlen == 0)
                return -EINVAL;
        if (colon) {
                k = parse_docker_name(colon + 1, &r);
                if (k < 0)
                        return k;
                /* skopeo: the name of an image in an archive is NAME:TAG, never a digest. */
                if (r.digest)
                        return -EINVAL;
                r.name = xstrdup(colon + 1);
        }
        r.transport = REF_DOCKER_ARCHIVE;
        r.path = xstrndup(s, pathlen);

        *ret = r;
        memset(&r, 0, sizeof(r));
        return 0;
}

static bool starts_with(const char *s, const char *prefix)
{
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

int reference_parse(const char *s, struct reference *ret)
{
        /* skopeo transports that ctfs does not read: a clear error beats a misparse. */
        static const char *const unsupported[] = {
                "containers-storage:", "dir:", "docker-daemon:", "ostree:", "sif:", "tarball:",
        };

        if (!s || !ret)
                return -EINVAL;
        if (starts_with(s, "docker://"))
                return parse_docker_name(s + 9, ret);
        if (starts_with(s, "oci:"))
                return parse_oci(s + 4, REF_OCI, ret);
        if (starts_with(s, "oci-archive:"))
                return parse_oci(s + 12, REF_OCI_ARCHIVE, ret);
        if (starts_with(s, "docker-archive:"))
                return parse_docker_archive(s + 15, ret);
        for (size_t i = 0; i < ARRAY_SIZE(unsupported); i++)
                if (starts_with(s, unsupported[i]))
                        return -EPROTONOSUPPORT;
        return parse_docker_name(s, ret);
}

static char *docker_string(const struct reference *r)
{
        return xasprintf("%s/%s%s%s%s%s", r->registry, r->repository, r->tag ? ":" : "",
                         r->tag ? r->tag : "", r->digest ? "@" : "", r->digest ? r->digest : "");
}

char *reference_to_string(const struct reference *r)
{
        const char *prefix;
        switch (r->transport) {
        case REF_DOCKER:
                return docker_string(r);
        case REF_OCI:
                prefix = "oci";
                break;
        case REF_OCI_ARCHIVE:
                prefix = "oci-archive";
                break;
        case REF_DOCKER_ARCHIVE:
                prefix = "docker-archive";
                break;
        default:
                return xstrdup("");
        }
        return xasprintf("%s:%s%s%s", prefix, r->path ? r->path : "", r->name ? ":" : "",
                         r->name ? r->name : "");
}

int reference_normalize(const char *name, char **ret_full)
{
        _cleanup_(reference_free) struct reference r = { 0 };
        int k = reference_parse(name, &r);
        if (k < 0)
                return k == -EPROTONOSUPPORT ? -EINVAL : k;
        if (r.transport != REF_DOCKER)
                return -EINVAL;
        *ret_full = docker_string(&r);
        return 0;
}
