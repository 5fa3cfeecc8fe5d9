/* SPDX-License-Identifier: Apache-2.0 */
/* The registry client's parsers: WWW-Authenticate challenges, registry error bodies,
 * auth.json / docker config.json, base64 (TAP). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "registry.h"
#include "tap.h"
#include "util.h"

static bool streq(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static void test_challenges(void)
{
        struct registry_challenge *c;
        size_t n;

        /* Docker Hub's */
        int r = registry_parse_challenges(
                "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\",scope=\"repository:library/busybox:pull\"",
                &c, &n);
        ok(r == 0 && n == 1, "bearer: one challenge");
        if (r == 0 && n == 1) {
                ok(streq(c[0].scheme, "bearer"), "bearer: scheme lowercased");
                ok(c[0].n_params == 3, "bearer: three parameters");
                ok(streq(registry_challenge_param(&c[0], "realm"), "https://auth.docker.io/token"), "bearer: realm");
                ok(streq(registry_challenge_param(&c[0], "SERVICE"), "registry.docker.io"),
                   "bearer: names are case-insensitive");
                ok(streq(registry_challenge_param(&c[0], "scope"), "repository:library/busybox:pull"), "bearer: scope");
                ok(registry_challenge_param(&c[0], "error") == NULL, "bearer: absent parameter is NULL");
                registry_challenges_free(c, n);
        }

        r = registry_parse_challenges("Basic realm=\"Registry Realm\"", &c, &n);
        ok(r == 0 && n == 1 && streq(c[0].scheme, "basic") && streq(registry_challenge_param(&c[0], "realm"), "Registry Realm"),
           "basic with a quoted realm");
        if (r == 0)
                registry_challenges_free(c, n);

        /* several challenges in one header, a token68 one, odd spacing, empty list elements */
        r = registry_parse_challenges(" ,Newauth realm=\"apps\", type=1 , title=\"Login to \\\"apps\\\"\", Basic realm=\"simple\",,"
                                      " Negotiate abc+/def==, Bearer",
                                      &c, &n);
        ok(r == 0 && n == 4, "four challenges in one header (got %zu)", r == 0 ? n : 0);
        if (r == 0 && n == 4) {
                ok(streq(c[0].scheme, "newauth") && c[0].n_params == 3, "newauth: three parameters");
                ok(streq(registry_challenge_param(&c[0], "type"), "1"), "newauth: token value");
                ok(streq(registry_challenge_param(&c[0], "title"), "Login to \"apps\""), "newauth: escapes in quotes");
                ok(streq(c[1].scheme, "basic") && streq(registry_challenge_param(&c[1], "realm"), "simple"), "basic after it");
                ok(streq(c[2].scheme, "negotiate") && streq(c[2].token68, "abc+/def==") && c[2].n_params == 0,
                   "token68 challenge");
                ok(streq(c[3].scheme, "bearer") && c[3].n_params == 0 && !c[3].token68, "bare scheme at the end");
        }
        if (r == 0)
                registry_challenges_free(c, n);

        /* unquoted URL (seen in the wild), spaces around '=' */
        r = registry_parse_challenges("Bearer realm = https://r.example/token?x=1 , service=svc", &c, &n);
        ok(r == 0 && n == 1 && streq(registry_challenge_param(&c[0], "realm"), "https://r.example/token?x=1") &&
                   streq(registry_challenge_param(&c[0], "service"), "svc"),
           "unquoted values and spaces around '='");
        if (r == 0)
                registry_challenges_free(c, n);

        /* a token68 that ends in '=' followed by another challenge */
        r = registry_parse_challenges("Foo abc=, Basic realm=x", &c, &n);
        ok(r == 0 && n == 2 && streq(c[0].token68, "abc=") && streq(c[1].scheme, "basic"), "token68 'abc=' then basic");
        if (r == 0)
                registry_challenges_free(c, n);

        r = registry_parse_challenges("", &c, &n);
        ok(r == 0 && n == 0, "empty header: no challenges");
        if (r == 0)
                registry_challenges_free(c, n);

        static const char *const bad[] = {
                "Bearer realm=\"unterminated",
                "Bearer realm=\"esc at end\\",
                "Bearer=realm",
                "Bearer realm=,service=x",
                "Bearer realm=\"x\" service=\"y\"", /* no comma between parameters */
                "Bearer realm=\"a\",=x",
                "\"quoted\" realm=x",
                "Bearer realm=\"ctl\x01\"",
                "Bearer realm=x\r\nInjected: yes",
                "Negotiate abc def",
                "Bearer ,realm=x junk junk",
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                c = NULL;
                n = 99;
                r = registry_parse_challenges(bad[i], &c, &n);
                ok(r == -EINVAL && c == NULL && n == 99, "malformed challenge %zu refused", i);
        }

        /* caps */
        char big[4096] = "";
        for (int i = 0; i < 40; i++)
                strcat(big, i ? ",p=1" : "Bearer p=1");
        r = registry_parse_challenges(big, &c, &n);
        ok(r == -EINVAL, "more than 32 parameters refused");
        big[0] = '\0';
        for (int i = 0; i < 20; i++)
                strcat(big, "Basic, ");
        r = registry_parse_challenges(big, &c, &n);
        ok(r == -EINVAL, "more than 16 challenges refused");
}

static void test_error_message(void)
{
        const char *b = "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"manifest unknown\",\"detail\":{\"Tag\":\"x\"}}]}";
        _cleanup_free_ char *m = registry_error_message(b, strlen(b));
        ok(streq(m, "manifest unknown"), "errors[0].message (object detail ignored)");
        b = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"denied\",\"detail\":\"no access to x\"}]}";
        _cleanup_free_ char *m2 = registry_error_message(b, strlen(b));
        ok(streq(m2, "denied: no access to x"), "string detail appended");
        b = "{\"details\":\"incorrect username or password\"}";
        _cleanup_free_ char *m3 = registry_error_message(b, strlen(b));
        ok(streq(m3, "incorrect username or password"), "token server 'details'");
        b = "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}";
        _cleanup_free_ char *m4 = registry_error_message(b, strlen(b));
        ok(streq(m4, "UNAUTHORIZED"), "code when there is no message");
        b = "{\"errors\":[{\"message\":\"line\\nbreak\\u001b[31m\"}]}";
        _cleanup_free_ char *m5 = registry_error_message(b, strlen(b));
        ok(m5 && !strpbrk(m5, "\n\x1b"), "control characters replaced");
        b = "<html>502 Bad Gateway</html>";
        ok(registry_error_message(b, strlen(b)) == NULL, "not JSON: NULL");
        ok(registry_error_message("", 0) == NULL, "empty: NULL");
        b = "{\"errors\":[]}";
        ok(registry_error_message(b, strlen(b)) == NULL, "no error in the list: NULL");
}

static void test_base64(void)
{
        static const struct {
                const char *plain, *b64;
        } v[] = { { "", "" },         { "f", "Zg==" },         { "fo", "Zm8=" },          { "foo", "Zm9v" },
                  { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" }, { "user:pass", "dXNlcjpwYXNz" } };
        for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
                _cleanup_free_ char *e = auth_base64_encode(v[i].plain, strlen(v[i].plain));
                ok(streq(e, v[i].b64), "base64 encode '%s'", v[i].plain);
                _cleanup_free_ char *d = NULL;
                size_t dl = 0;
                ok(auth_base64_decode(v[i].b64, strlen(v[i].b64), &d, &dl) == 0 && dl == strlen(v[i].plain) &&
                           !memcmp(d, v[i].plain, dl),
                   "base64 decode '%s'", v[i].b64);
        }
        static const char *const bad[] = { "Zg=", "Z===", "Zg==Zg==", "Zm9v\n", "Zm9*", "=Zm9" };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                char *d = NULL;
                ok(auth_base64_decode(bad[i], strlen(bad[i]), &d, NULL) == -EINVAL && !d, "base64 refuses bad input %zu", i);
        }
}

static int parse(const char *json, const char *reg, const char *repo, char **u, char **p)
{
        *u = *p = NULL;
        return auth_parse(json, strlen(json), reg, repo, u, p);
}

static void test_auth_parse(void)
{
        char *u, *p;
        /* podman's auth.json: dXNlcjpwYXNz = user:pass, b3RoZXI6c2VjcmV0 = other:secret,
         * bnM6bnNwYXNz = ns:nspass, aHViOmh1YnBhc3M6d2l0aDpjb2xvbnM= = hub:hubpass:with:colons */
        const char *f = "{\"auths\":{"
                        "\"127.0.0.1:5000\":{\"auth\":\"dXNlcjpwYXNz\"},"
                        "\"quay.io\":{\"auth\":\"b3RoZXI6c2VjcmV0\"},"
                        "\"quay.io/ns\":{\"auth\":\"bnM6bnNwYXNz\"},"
                        "\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnBhc3M6d2l0aDpjb2xvbnM=\"},"
                        "\"empty.io\":{\"auth\":\"\"},"
                        "\"helper.io\":{}"
                        "},\"credHelpers\":{\"x.io\":\"pass\"}}";
        ok(parse(f, "127.0.0.1:5000", "busybox", &u, &p) == 0 && streq(u, "user") && streq(p, "pass"), "host:port entry");
        free(u), free(p);
        ok(parse(f, "quay.io", "other/app", &u, &p) == 0 && streq(u, "other") && streq(p, "secret"), "registry entry");
        free(u), free(p);
        ok(parse(f, "quay.io", "ns/app", &u, &p) == 0 && streq(u, "ns") && streq(p, "nspass"),
           "the namespace entry is more specific");
        free(u), free(p);
        ok(parse(f, "quay.io", "nsx/app", &u, &p) == 0 && streq(u, "other"), "'ns' does not match 'nsx'");
        free(u), free(p);
        ok(parse(f, "docker.io", "library/busybox", &u, &p) == 0 && streq(u, "hub") && streq(p, "hubpass:with:colons"),
           "docker's legacy https://index.docker.io/v1/ key means docker.io; ':' in the password");
        free(u), free(p);
        ok(parse(f, "127.0.0.1:5001", "busybox", &u, &p) == -ENOENT && !u && !p, "other port: no entry");
        ok(parse(f, "empty.io", NULL, &u, &p) == -ENOENT, "empty auth: skipped");
        ok(parse(f, "helper.io", NULL, &u, &p) == -ENOENT, "entry without auth (credential helper): skipped");
        ok(parse("{}", "quay.io", NULL, &u, &p) == -ENOENT, "no auths: no entry");
        ok(parse("{\"auths\":null}", "quay.io", NULL, &u, &p) == -ENOENT, "null auths: no entry");
        ok(parse("{\"auths\":{\"quay.io\":{\"auth\":\"!!!!\"}}}", "quay.io", NULL, &u, &p) == -EINVAL, "bad base64 refused");
        ok(parse("{\"auths\":{\"quay.io\":{\"auth\":\"bm9jb2xvbg==\"}}}", "quay.io", NULL, &u, &p) == -EINVAL,
           "no ':' in the decoded auth refused");
        ok(parse("{\"auths\":[]}", "quay.io", NULL, &u, &p) == -EINVAL, "auths not an object refused");
        ok(parse("[1]", "quay.io", NULL, &u, &p) == -EINVAL, "not an object refused");
        ok(parse("{\"auths\":{", "quay.io", NULL, &u, &p) == -EINVAL, "truncated JSON refused");
        ok(parse("{\"auths\":{\"quay.io\":{\"auth\":\"dXNlcjpwYXNz\"}}} trailing", "quay.io", NULL, &u, &p) == -EINVAL,
           "trailing garbage refused");
        /* "echo user:pass | base64" leaves a newline in the password */
        ok(parse("{\"auths\":{\"r.io\":{\"auth\":\"dXNlcjpwYXNzCg==\"}}}", "r.io", NULL, &u, &p) == 0 && streq(p, "pass"),
           "trailing newline dropped from the password");
        free(u), free(p);

        _cleanup_free_ char *k1 = auth_normalize_key("https://Quay.io/v1/");
        ok(streq(k1, "Quay.io"), "normalize: scheme and path dropped");
        _cleanup_free_ char *k2 = auth_normalize_key("registry-1.docker.io/library");
        ok(streq(k2, "docker.io/library"), "normalize: docker.io alias with a namespace");
        _cleanup_free_ char *k3 = auth_normalize_key("localhost:5000/");
        ok(streq(k3, "localhost:5000"), "normalize: trailing '/'");
        ok(auth_normalize_key("") == NULL && auth_normalize_key("https://") == NULL, "normalize: empty keys");
}

static void test_auth_save(void)
{
        char dir[] = "/tmp/test-registry-XXXXXX";
        if (!mkdtemp(dir)) {
                ok(false, "mkdtemp");
                return;
        }
        _cleanup_free_ char *path = xasprintf("%s/sub/auth.json", dir);
        /* an existing file keeps its other fields and entries */
        ok(auth_save(path, "https://quay.io/", "u1", "p1") == 0, "save into a new file (and directory)");
        struct stat st;
        ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600");
        _cleanup_free_ char *sub = xasprintf("%s/sub", dir);
        ok(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700, "directory mode 0700");
        ok(auth_save(path, "127.0.0.1:5000", "u2", "p:2") == 0, "save a second entry");
        ok(auth_save(path, "quay.io", "u3", "p3") == 0, "replace the first one");
        char *u = NULL, *p = NULL;
        ok(auth_lookup(path, "quay.io", "x/y", &u, &p, NULL) == 0 && streq(u, "u3") && streq(p, "p3"), "lookup replaced");
        free(u), free(p);
        ok(auth_lookup(path, "127.0.0.1:5000", "x", &u, &p, NULL) == 0 && streq(u, "u2") && streq(p, "p:2"), "lookup second");
        free(u), free(p);
        ok(auth_save(path, "r.io", "user:colon", "p") == -EINVAL, "a ':' in the user name refused");
        ok(auth_remove(path, "https://quay.io") == 0, "remove by another spelling");
        ok(auth_lookup(path, "quay.io", NULL, &u, &p, NULL) == -ENOENT, "removed");
        ok(auth_remove(path, "quay.io") == -ENOENT, "remove again: -ENOENT");
        ok(auth_lookup(path, "127.0.0.1:5000", NULL, &u, &p, NULL) == 0, "the other entry stays");
        free(u), free(p);
        ok(auth_remove(path, NULL) == 0 && auth_lookup(path, "127.0.0.1:5000", NULL, &u, &p, NULL) == -ENOENT,
           "remove all");
        _cleanup_free_ char *bad = xasprintf("%s/bad.json", dir);
        FILE *fb = fopen(bad, "w");
        if (fb) {
                fputs("{not json", fb);
                fclose(fb);
        }
        char *which = NULL;
        ok(auth_lookup(bad, "quay.io", NULL, &u, &p, &which) == -EINVAL && streq(which, bad),
           "a broken auth file is an error naming the file");
        free(which);
        ok(auth_save(bad, "quay.io", "u", "p") == -EINVAL, "save refuses to overwrite a broken file");
        ok(auth_lookup("/nonexistent/auth.json", "quay.io", NULL, &u, &p, NULL) == -ENOENT, "missing file: no entry");
        util_rm_rf_at(AT_FDCWD, dir);
}

/* Plain HTTP without --tls-verify=false only for loopback registries: a name that merely looks
 * like one (a subdomain, a prefix) is not. */
static void test_loopback(void)
{
        static const struct {
                const char *registry;
                bool loopback;
        } v[] = {
                { "localhost", true },           { "localhost:5000", true },          { "LOCALHOST:5000", true },
                { "127.0.0.1:5000", true },      { "127.1.2.3", true },               { "[::1]:5000", true },
                { "[::1]", true },               { "localhost.example.com", false },  { "127.0.0.1.nip.io:5000", false },
                { "localhost-x:5000", false },   { "10.0.0.1:5000", false },          { "[::2]:5000", false },
                { "docker.io", false },          { "128.0.0.1", false },              { "0x7f000001", false },
        };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                ok(registry_is_loopback(v[i].registry) == v[i].loopback, "%s is %sloopback (plain HTTP %s)", v[i].registry,
                   v[i].loopback ? "" : "not ", v[i].loopback ? "allowed" : "refused");
}

int main(void)
{
        test_challenges();
        test_loopback();
        test_error_message();
        test_base64();
        test_auth_parse();
        test_auth_save();
        return tap_done();
}
