/* SPDX-License-Identifier: Apache-2.0 */
#include "registry.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "auth.h"
#include "dlib-curl.h"
#include "digest.h"
#include "ingest.h"
#include "manifest.h"
#include "util.h"

/* skopeo's default: six blobs at once. */
#define DEFAULT_PARALLEL 6
#define MAX_PARALLEL 32
/* Failures in a row (without progress) before a request gives up. */
#define MAX_FAILURES 5
#define MAX_REDIRECTS 10
/* Retry-After beyond this is not worth waiting for in a pull. */
#define MAX_RETRY_AFTER 60
/* Error bodies are kept up to this size for the message. */
#define ERROR_BODY_MAX 65536
#define USER_AGENT "ctfs/" CTFS_VERSION

/* ============================== WWW-Authenticate ============================== */

static bool is_tchar(char c)
{
        return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token68_char(char c)
{
        return isalnum((unsigned char)c) || (c && strchr("-._~+/", c));
}

static bool is_ows(char c)
{
        return c == ' ' || c == '\t';
}

static char *lower_dup(const char *s, size_t n)
{
        char *d = xstrndup(s, n);
        for (char *p = d; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return d;
}

void registry_challenges_free(struct registry_challenge *c, size_t n)
{
        for (size_t i = 0; c && i < n; i++) {
                free(c[i].scheme);
                free(c[i].token68);
                for (size_t k = 0; k < c[i].n_params; k++) {
                        free(c[i].names[k]);
                        free(c[i].values[k]);
                }
                free(c[i].names);
                free(c[i].values);
        }
        free(c);
}

const char *registry_challenge_param(const struct registry_challenge *c, const char *name)
{
        for (size_t i = 0; i < c->n_params; i++)
                if (!strcasecmp(c->names[i], name))
                        return c->values[i];
        return NULL;
}

#define MAX_CHALLENGES 16
#define MAX_PARAMS 32

/* A parameter value at *pp: a quoted-string, or (leniently: servers send URLs unquoted) a run
 * of characters up to ',', whitespace or a quote. */
static int parse_value(const char **pp, char **ret)
{
        const char *p = *pp;
        if (*p == '"') {
                p++;
                size_t cap = strlen(p) + 1, n = 0;
                _cleanup_free_ char *v = xmalloc(cap);
                for (;;) {
                        char c = *p++;
                        if (c == '\0')
                                return -EINVAL; /* unterminated */
                        if (c == '"')
                                break;
                        if (c == '\\') {
                                c = *p++;
                                if (c == '\0')
                                        return -EINVAL;
                        }
                        if ((unsigned char)c < 0x20 && c != '\t')
                                return -EINVAL;
                        if (c == 0x7f)
                                return -EINVAL;
                        v[n++] = c;
                }
                v[n] = '\0';
                *ret = TAKE_PTR(v);
                *pp = p;
                return 0;
        }
        const char *start = p;
        while (*p && *p != ',' && !is_ows(*p) && *p != '"') {
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return -EINVAL;
                p++;
        }
        if (p == start)
                return -EINVAL;
        *ret = xstrndup(start, (size_t)(p - start));
        *pp = p;
        return 0;
}

/* Does an auth-param ("name" BWS "=") start at p? A token68 ("abc==") is not one. */
static bool param_starts(const char *p)
{
        const char *q = p;
        while (is_tchar(*q))
                q++;
        if (q == p)
                return false;
        while (is_ows(*q))
                q++;
        if (*q != '=')
                return false;
        q++;
        /* "name=" followed by more '=', the end or a comma is the tail of a token68 */
        while (is_ows(*q))
                q++;
        return *q != '=' && *q != '\0' && *q != ',';
}

int registry_parse_challenges(const char *header, struct registry_challenge **ret, size_t *ret_n)
{
        struct registry_challenge *cs = NULL;
        size_t n = 0;
        const char *p = header;
        int r = -EINVAL;
        for (const char *q = header; *q; q++)
                if ((unsigned char)*q < 0x20 && *q != '\t')
                        goto fail;
        for (;;) {
                while (is_ows(*p) || *p == ',')
                        p++;
                if (!*p)
                        break;
                const char *start = p;
                while (is_tchar(*p))
                        p++;
                if (p == start || n >= MAX_CHALLENGES)
                        goto fail;
                cs = xrealloc(cs, (n + 1) * sizeof(*cs));
                struct registry_challenge *c = &cs[n++];
                *c = (struct registry_challenge){ .scheme = lower_dup(start, (size_t)(p - start)) };
                if (*p == '\0' || *p == ',')
                        continue;
                if (!is_ows(*p))
                        goto fail; /* "Bearer=x", "Basic\"x\"" */
                while (is_ows(*p))
                        p++;
                if (*p == '\0' || *p == ',')
                        continue;
                if (!param_starts(p)) {
                        /* token68: the only thing after the scheme */
                        const char *t = p;
                        while (is_token68_char(*p))
                                p++;
                        if (p == t)
                                goto fail;
                        while (*p == '=')
                                p++;
                        c->token68 = xstrndup(t, (size_t)(p - t));
                        while (is_ows(*p))
                                p++;
                        if (*p != '\0' && *p != ',')
                                goto fail;
                        continue;
                }
                /* auth-params, until the end or a comma followed by something that is not a
                 * parameter (the next challenge's scheme) */
                for (;;) {
                        const char *ns = p;
                        while (is_tchar(*p))
                                p++;
                        size_t nl = (size_t)(p - ns);
                        while (is_ows(*p))
                                p++;
                        if (nl == 0 || *p != '=' || c->n_params >= MAX_PARAMS)
                                goto fail;
                        p++;
                        while (is_ows(*p))
                                p++;
                        char *v;
                        if (parse_value(&p, &v) < 0)
                                goto fail;
                        c->names = xrealloc(c->names, (c->n_params + 1) * sizeof(char *));
                        c->values = xrealloc(c->values, (c->n_params + 1) * sizeof(char *));
                        c->names[c->n_params] = lower_dup(ns, nl);
                        c->values[c->n_params] = v;
                        c->n_params++;
                        while (is_ows(*p))
                                p++;
                        if (*p == '\0')
                                break;
                        if (*p != ',')
                                goto fail;
                        const char *q = p;
                        while (is_ows(*q) || *q == ',')
                                q++;
                        if (!*q || !param_starts(q))
                                break; /* the outer loop takes the comma and what follows */
                        p = q;
                }
        }
        *ret = cs;
        *ret_n = n;
        return 0;
fail:
        registry_challenges_free(cs, n);
        return r;
}

/* ============================== errors ============================== */

static char *sanitize(const char *s)
{
        size_t n = strlen(s);
        if (n > 300)
                n = 300;
        char *d = xstrndup(s, n);
        for (char *p = d; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        /* trim */
        while (n > 0 && d[n - 1] == ' ')
                d[--n] = '\0';
        if (n == 0) {
                free(d);
                return NULL;
        }
        return d;
}

static const char *json_str(json_object *o, const char *key)
{
        json_object *v;
        if (o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
            json_object_get_string_len(v) > 0)
                return json_object_get_string(v);
        return NULL;
}

char *registry_error_message(const char *body, size_t len)
{
        if (!body || len == 0 || len > ERROR_BODY_MAX)
                return NULL;
        json_tokener *tok = json_tokener_new_ex(16);
        if (!tok)
                return NULL;
        json_object *j = json_tokener_parse_ex(tok, body, (int)len);
        bool bad = json_tokener_get_error(tok) != json_tokener_success;
        json_tokener_free(tok);
        if (bad || !j || !json_object_is_type(j, json_type_object)) {
                json_object_put(j);
                return NULL;
        }
        char *out = NULL;
        json_object *errors;
        if (json_object_object_get_ex(j, "errors", &errors) && json_object_is_type(errors, json_type_array) &&
            json_object_array_length(errors) > 0) {
                json_object *e = json_object_array_get_idx(errors, 0);
                const char *m = json_object_is_type(e, json_type_object) ? json_str(e, "message") : NULL;
                const char *code = json_object_is_type(e, json_type_object) ? json_str(e, "code") : NULL;
                const char *detail = json_object_is_type(e, json_type_object) ? json_str(e, "detail") : NULL;
                if (m && detail) {
                        _cleanup_free_ char *both = xasprintf("%s: %s", m, detail);
                        out = sanitize(both);
                } else if (m)
                        out = sanitize(m);
                else if (code)
                        out = sanitize(code);
        }
        static const char *const keys[] = { "details", "error_description", "error", "message" };
        for (size_t i = 0; !out && i < ARRAY_SIZE(keys); i++) {
                const char *m = json_str(j, keys[i]);
                if (m)
                        out = sanitize(m);
        }
        json_object_put(j);
        return out;
}

static const char *status_text(long status)
{
        switch (status) {
        case 400: return "bad request";
        case 401: return "unauthorized";
        case 403: return "access denied";
        case 404: return "not found";
        case 405: return "method not allowed";
        case 416: return "range not satisfiable";
        case 429: return "too many requests";
        case 500: return "internal server error";
        case 502: return "bad gateway";
        case 503: return "service unavailable";
        case 504: return "gateway timeout";
        default: return status >= 500 ? "server error" : status >= 400 ? "request refused" : "unexpected response";
        }
}

/* ============================== hosts ============================== */

/* "host[:port]" / "[v6]:port" -> host without brackets and port */
static char *registry_hostname(const char *registry)
{
        if (registry[0] == '[') {
                const char *e = strchr(registry, ']');
                return e ? xstrndup(registry + 1, (size_t)(e - registry - 1)) : xstrdup(registry);
        }
        return xstrndup(registry, strcspn(registry, ":/"));
}

static bool host_is_loopback(const char *host)
{
        if (!strcasecmp(host, "localhost"))
                return true;
        struct in_addr a4;
        struct in6_addr a6;
        if (inet_pton(AF_INET, host, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, host, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6);
        return false;
}

bool registry_is_loopback(const char *registry)
{
        _cleanup_free_ char *h = registry_hostname(registry);
        return host_is_loopback(h);
}

/* "scheme://host[:port]" of a URL, or NULL */
static char *url_origin(const char *url)
{
        const char *s = strstr(url, "://");
        if (!s)
                return NULL;
        s += 3;
        return xstrndup(url, (size_t)(s - url) + strcspn(s, "/?#"));
}

/* The host of a URL, for the plain-HTTP rule. */
static char *url_host(const char *url)
{
        _cleanup_free_ char *o = url_origin(url);
        if (!o)
                return NULL;
        const char *h = strstr(o, "://") + 3;
        const char *at = strrchr(h, '@');
        if (at)
                h = at + 1;
        return registry_hostname(h);
}

/* ============================== the client ============================== */

struct token {
        char *scope;
        char *value;
        time_t expires;
};

enum auth_scheme { AUTH_NONE, AUTH_BASIC, AUTH_BEARER };

struct reg {
        const struct registry_options *o;
        char *registry;   /* as in the reference */
        char *repository; /* NULL for login */
        char *host;       /* what URLs name: registry-1.docker.io for docker.io */
        char *base;       /* "https://host" or "http://host", chosen by the ping */
        char *scope;      /* "repository:<repo>:pull" */
        bool http_ok;
        char *user, *pass;
        /* TLS */
        char *ca_pem;
        size_t ca_len;
        char *client_cert, *client_key;
        long timeout;
        /* auth state, under lock */
        pthread_mutex_t lock;
        pthread_mutex_t token_lock; /* one token request at a time: the others reuse it */
        enum auth_scheme scheme;
        char *realm, *service;
        struct token *tokens;
        size_t n_tokens;
        atomic_int abort;
        /* progress */
        pthread_mutex_t progress_lock;
        size_t n_layers;
};

static void reg_free(struct reg *g)
{
        free(g->registry);
        free(g->repository);
        free(g->host);
        free(g->base);
        free(g->scope);
        free(g->user);
        if (g->pass)
                explicit_bzero(g->pass, strlen(g->pass));
        free(g->pass);
        free(g->ca_pem);
        free(g->client_cert);
        free(g->client_key);
        free(g->realm);
        free(g->service);
        for (size_t i = 0; i < g->n_tokens; i++) {
                free(g->tokens[i].scope);
                free(g->tokens[i].value);
        }
        free(g->tokens);
        pthread_mutex_destroy(&g->lock);
        pthread_mutex_destroy(&g->token_lock);
        pthread_mutex_destroy(&g->progress_lock);
}

static void append_file(char **buf, size_t *len, const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return;
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20))
                return;
        *buf = xrealloc(*buf, *len + (size_t)st.st_size + 2);
        ssize_t n = util_read_all(fd, *buf + *len, (size_t)st.st_size);
        if (n < 0)
                return;
        *len += (size_t)n;
        (*buf)[(*len)++] = '\n';
        (*buf)[*len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A certs.d directory: *.crt are CAs (added to the system's), *.cert + *.key a client
 * certificate (podman's and docker's layout). */
static int load_cert_dir(struct reg *g, const char *dir, bool required, char **ret_error)
{
        DIR *d = opendir(dir);
        if (!d) {
                if (!required && errno == ENOENT)
                        return 0;
                int r = -errno;
                *ret_error = xasprintf("cert dir %s: %s", dir, strerror(errno));
                return r;
        }
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.') {
                        names = xrealloc(names, (n + 1) * sizeof(char *));
                        names[n++] = xstrdup(de->d_name);
                }
        closedir(d);
        if (n)
                qsort(names, n, sizeof(char *), cmp_str);
        bool any_ca = false;
        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(names[i]);
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, names[i]);
                if (l > 4 && !strcmp(names[i] + l - 4, ".crt")) {
                        if (!any_ca) {
                                /* the system's CAs first: a private CA adds to them */
                                curl_version_info_data *vi = curl_version_info(CURLVERSION_NOW);
                                const char *sys = vi && vi->age >= 9 && vi->cainfo ? vi->cainfo
                                                                                   : "/etc/ssl/certs/ca-certificates.crt";
                                append_file(&g->ca_pem, &g->ca_len, sys);
                                any_ca = true;
                        }
                        append_file(&g->ca_pem, &g->ca_len, path);
                } else if (l > 5 && !strcmp(names[i] + l - 5, ".cert")) {
                        _cleanup_free_ char *key = xasprintf("%s/%.*s.key", dir, (int)(l - 5), names[i]);
                        if (access(key, R_OK) == 0 && !g->client_cert) {
                                g->client_cert = TAKE_PTR(path);
                                g->client_key = TAKE_PTR(key);
                        }
                }
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int reg_init(struct reg *g, const char *registry, const char *repository, const struct registry_options *o,
                    char **ret_error)
{
        *g = (struct reg){ .o = o };
        /* libcurl is loaded here, on the first request (dlib.h) */
        int lr = dlib_curl_load(ret_error);
        if (lr < 0)
                return lr;
        pthread_once(&curl_once, curl_init_once);
        pthread_mutex_init(&g->lock, NULL);
        pthread_mutex_init(&g->token_lock, NULL);
        pthread_mutex_init(&g->progress_lock, NULL);
        g->registry = xstrdup(registry);
        g->repository = repository ? xstrdup(repository) : NULL;
        /* docker.io is an alias: the API lives at registry-1.docker.io */
        g->host = xstrdup(!strcmp(registry, "docker.io") ? "registry-1.docker.io" : registry);
        g->http_ok = o->insecure || registry_is_loopback(registry);
        if (repository)
                g->scope = xasprintf("repository:%s:pull", repository);
        const char *t = getenv("CTFS_HTTP_TIMEOUT");
        g->timeout = t && atol(t) > 0 ? atol(t) : 30;
        if (o->username) {
                g->user = xstrdup(o->username);
                g->pass = xstrdup(o->password ? o->password : "");
        } else {
                _cleanup_free_ char *path = NULL;
                int r = auth_lookup(o->auth_file, registry, repository, &g->user, &g->pass, &path);
                if (r < 0 && r != -ENOENT) {
                        *ret_error = xasprintf("read credentials from %s: %s", path ? path : "the auth file",
                                          r == -EINVAL ? "not a valid auth file" : strerror(-r));
                        return r;
                }
        }
        if (o->cert_dir)
                return load_cert_dir(g, o->cert_dir, true, ret_error);
        static const char *const dirs[] = { "/etc/containers/certs.d", "/etc/docker/certs.d" };
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
                _cleanup_free_ char *d = xasprintf("%s/%s", dirs[i], registry);
                int r = load_cert_dir(g, d, false, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int xferinfo(void *p, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
        struct reg *g = p;
        return atomic_load(&g->abort) ? 1 : 0;
}

static CURL *reg_easy(struct reg *g)
{
        CURL *h = curl_easy_init();
        if (!h)
                abort();
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, g->timeout);
        /* a stalled connection: fewer than 1 byte a second for the timeout */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, g->timeout);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, g);
        if (g->o->insecure) {
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (g->ca_pem) {
                struct curl_blob b = { .data = g->ca_pem, .len = g->ca_len, .flags = CURL_BLOB_COPY };
                curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
        }
        if (g->client_cert) {
                curl_easy_setopt(h, CURLOPT_SSLCERT, g->client_cert);
                curl_easy_setopt(h, CURLOPT_SSLKEY, g->client_key);
        }
        return h;
}

static void curl_easy_cleanupp(CURL **h)
{
        if (*h)
                curl_easy_cleanup(*h);
}

/* ---- one HTTP exchange ---- */

struct xfer {
        CURL *h;
        struct reg *g;
        /* response headers */
        char *ctype, *dcd, *crange, *retry_after;
        char **auth;
        size_t n_auth;
        /* streaming: 2xx bodies go to sink */
        int (*sink)(void *ud, const void *p, size_t n);
        void *sink_ud;
        uint64_t range_from; /* what this request asked for */
        uint64_t delivered;  /* bytes given to the sink so far, across requests */
        uint64_t limit;      /* at most this many in all */
        bool body_started;
        uint64_t skip;
        /* buffered */
        char *buf;
        size_t len, max;
        int err; /* set by a callback that aborted the transfer */
        /* progress */
        void (*on_bytes)(void *ud, uint64_t delivered);
        void *on_bytes_ud;
};

static void xfer_reset_headers(struct xfer *x)
{
        free(x->ctype);
        free(x->dcd);
        free(x->crange);
        free(x->retry_after);
        x->ctype = x->dcd = x->crange = x->retry_after = NULL;
        for (size_t i = 0; i < x->n_auth; i++)
                free(x->auth[i]);
        free(x->auth);
        x->auth = NULL;
        x->n_auth = 0;
}

static void xfer_done(struct xfer *x)
{
        xfer_reset_headers(x);
        free(x->buf);
        x->buf = NULL;
        x->len = 0;
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *ud)
{
        struct xfer *x = ud;
        size_t n = size * nitems;
        if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
                /* a new response (after a 100 Continue, say) */
                xfer_reset_headers(x);
                return n;
        }
        const char *colon = memchr(data, ':', n);
        if (!colon)
                return n;
        size_t nl = (size_t)(colon - data);
        const char *v = colon + 1;
        size_t vl = n - nl - 1;
        while (vl && is_ows(*v))
                v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || is_ows(v[vl - 1])))
                vl--;
#define HDR(name) (nl == strlen(name) && !strncasecmp(data, name, nl))
        if (HDR("content-type")) {
                free(x->ctype);
                x->ctype = xstrndup(v, vl);
        } else if (HDR("docker-content-digest")) {
                free(x->dcd);
                x->dcd = xstrndup(v, vl);
        } else if (HDR("content-range")) {
                free(x->crange);
                x->crange = xstrndup(v, vl);
        } else if (HDR("retry-after")) {
                free(x->retry_after);
                x->retry_after = xstrndup(v, vl);
        } else if (HDR("www-authenticate") && x->n_auth < 8) {
                x->auth = xrealloc(x->auth, (x->n_auth + 1) * sizeof(char *));
                x->auth[x->n_auth++] = xstrndup(v, vl);
        }
#undef HDR
        return n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
        struct xfer *x = ud;
        size_t n = size * nmemb;
        long status = 0;
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
        if (x->sink && status >= 200 && status < 300) {
                if (!x->body_started) {
                        x->body_started = true;
                        if (x->range_from > 0) {
                                if (status == 206) {
                                        /* must continue exactly where we stopped */
                                        unsigned long long from;
                                        if (!x->crange || sscanf(x->crange, "bytes %llu-", &from) != 1 ||
                                            from != x->range_from) {
                                                x->err = -EPROTO;
                                                return 0;
                                        }
                                } else
                                        x->skip = x->range_from; /* the server sent it all again */
                        }
                }
                const char *p = data;
                size_t left = n;
                if (x->skip) {
                        size_t k = left < x->skip ? left : (size_t)x->skip;
                        p += k;
                        left -= k;
                        x->skip -= k;
                }
                if (!left)
                        return n;
                if (x->delivered + left > x->limit) {
                        x->err = -EFBIG;
                        return 0;
                }
                int r = x->sink(x->sink_ud, p, left);
                if (r < 0) {
                        x->err = r;
                        return 0;
                }
                x->delivered += left;
                if (x->on_bytes)
                        x->on_bytes(x->on_bytes_ud, x->delivered);
                return n;
        }
        bool ok = status >= 200 && status < 300;
        size_t max = ok ? x->max : ERROR_BODY_MAX;
        if (x->len + n > max) {
                if (ok) {
                        x->err = -EFBIG;
                        return 0;
                }
                n = max - x->len < n ? max - x->len : n;
                if (n == 0)
                        return size * nmemb; /* an error body: keep the start, drop the rest */
        }
        x->buf = xrealloc(x->buf, x->len + n + 1);
        memcpy(x->buf + x->len, data, n);
        x->len += n;
        x->buf[x->len] = '\0';
        return size * nmemb;
}

/* One request; CURLcode, the status in *ret_status. */
static CURLcode http_perform(struct xfer *x, const char *url, const char *accept, const char *authz, const char *userpwd,
                             long *ret_status, char errbuf[CURL_ERROR_SIZE])
{
        CURL *h = x->h;
        struct curl_slist *hdrs = NULL;
        _cleanup_free_ char *acc = accept ? xasprintf("Accept: %s", accept) : NULL;
        if (acc)
                hdrs = curl_slist_append(hdrs, acc);
        if (authz)
                hdrs = curl_slist_append(hdrs, authz);
        /* docker does not send it; some proxies mangle it */
        hdrs = curl_slist_append(hdrs, "Expect:");
        char range[64];
        if (x->sink && x->delivered > 0) {
                snprintf(range, sizeof(range), "%llu-", (unsigned long long)x->delivered);
                curl_easy_setopt(h, CURLOPT_RANGE, range);
        } else
                curl_easy_setopt(h, CURLOPT_RANGE, NULL);
        x->range_from = x->sink ? x->delivered : 0;
        x->body_started = false;
        x->skip = 0;
        x->err = 0;
        free(x->buf);
        x->buf = NULL;
        x->len = 0;
        xfer_reset_headers(x);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        if (userpwd) {
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
        } else {
                curl_easy_setopt(h, CURLOPT_USERPWD, NULL);
                curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE);
        }
        errbuf[0] = '\0';
        CURLcode rc = curl_easy_perform(h);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(h, CURLOPT_USERPWD, NULL);
        curl_slist_free_all(hdrs);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        *ret_status = status;
        return rc;
}

static const char *curl_message(CURLcode rc, const char *errbuf)
{
        return errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
}

static bool curl_retryable(CURLcode rc)
{
        switch (rc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_PARTIAL_FILE:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
        case CURLE_SSL_CONNECT_ERROR:
                return true;
        default:
                return false;
        }
}

static bool status_retryable(long s)
{
        return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

/* Milliseconds to wait before attempt number `failures` (1-based). */
static long backoff_ms(unsigned failures, const char *retry_after)
{
        if (retry_after) {
                char *end;
                long v = strtol(retry_after, &end, 10);
                if (end != retry_after && *end == '\0' && v >= 0)
                        return (v > MAX_RETRY_AFTER ? MAX_RETRY_AFTER : v) * 1000;
                struct tm tm = { 0 };
                /* the HTTP-date form: "Wed, 21 Oct 2015 07:28:00 GMT" */
                if (strptime(retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm)) {
                        long d = (long)(timegm(&tm) - time(NULL));
                        return (d < 0 ? 0 : d > MAX_RETRY_AFTER ? MAX_RETRY_AFTER : d) * 1000;
                }
        }
        long ms = 250L << (failures > 6 ? 6 : failures - 1);
        return ms > 8000 ? 8000 : ms;
}

static void sleep_ms(struct reg *g, long ms)
{
        while (ms > 0 && !atomic_load(&g->abort)) {
                long step = ms > 100 ? 100 : ms;
                struct timespec ts = { .tv_sec = 0, .tv_nsec = step * 1000000L };
                nanosleep(&ts, NULL);
                ms -= step;
        }
}

static bool url_allowed(struct reg *g, const char *url)
{
        if (!strncasecmp(url, "https://", 8))
                return true;
        if (strncasecmp(url, "http://", 7) != 0)
                return false;
        if (g->o->insecure)
                return true;
        _cleanup_free_ char *h = url_host(url);
        return h && host_is_loopback(h);
}

/* ---- auth ---- */

static char *basic_header(struct reg *g)
{
        _cleanup_free_ char *plain = xasprintf("%s:%s", g->user, g->pass);
        _cleanup_free_ char *b64 = auth_base64_encode(plain, strlen(plain));
        explicit_bzero(plain, strlen(plain));
        return xasprintf("Authorization: Basic %s", b64);
}

/* A cached, unexpired token for scope (a copy), or NULL. Caller holds g->lock. */
static char *token_get_locked(struct reg *g, const char *scope)
{
        time_t now = time(NULL);
        for (size_t i = 0; i < g->n_tokens; i++)
                if (!strcmp(g->tokens[i].scope, scope) && g->tokens[i].expires > now)
                        return xstrdup(g->tokens[i].value);
        return NULL;
}

static void token_drop(struct reg *g, const char *scope, const char *value)
{
        pthread_mutex_lock(&g->lock);
        for (size_t i = 0; i < g->n_tokens; i++)
                if (!strcmp(g->tokens[i].scope, scope) && (!value || !strcmp(g->tokens[i].value, value)))
                        g->tokens[i].expires = 0;
        pthread_mutex_unlock(&g->lock);
}

/* GET realm?service=..&scope=.. (with Basic credentials when we have some). */
static int fetch_token(struct reg *g, CURL *h, const char *scope, char **ret_token, char **ret_error)
{
        pthread_mutex_lock(&g->lock);
        _cleanup_free_ char *realm = g->realm ? xstrdup(g->realm) : NULL;
        _cleanup_free_ char *service = g->service ? xstrdup(g->service) : NULL;
        pthread_mutex_unlock(&g->lock);
        if (!realm) {
                *ret_error = xasprintf("the registry asked for a token but named no realm");
                return -EPROTO;
        }
        if (!url_allowed(g, realm)) {
                *ret_error = xasprintf("refusing to send credentials to the token server %s over plain HTTP", realm);
                return -EPERM;
        }
        char *url = xstrdup(realm);
        char sep = strchr(url, '?') ? '&' : '?';
        if (service) {
                char *e = curl_easy_escape(h, service, 0);
                char *n = xasprintf("%s%cservice=%s", url, sep, e);
                curl_free(e);
                free(url);
                url = n;
                sep = '&';
        }
        if (scope && *scope) {
                char *e = curl_easy_escape(h, scope, 0);
                char *n = xasprintf("%s%cscope=%s", url, sep, e);
                curl_free(e);
                free(url);
                url = n;
        }
        _cleanup_free_ char *userpwd = g->user ? xasprintf("%s:%s", g->user, g->pass) : NULL;
        struct xfer x = { .h = h, .g = g, .max = 1 << 20 };
        unsigned failures = 0;
        int r;
        for (;;) {
                char errbuf[CURL_ERROR_SIZE];
                long status;
                CURLcode rc = http_perform(&x, url, "application/json", NULL, userpwd, &status, errbuf);
                if (rc == CURLE_OK && status_retryable(status) && ++failures < MAX_FAILURES) {
                        sleep_ms(g, backoff_ms(failures, x.retry_after));
                        continue;
                }
                if (rc != CURLE_OK && curl_retryable(rc) && ++failures < MAX_FAILURES) {
                        sleep_ms(g, backoff_ms(failures, NULL));
                        continue;
                }
                if (rc != CURLE_OK) {
                        *ret_error = xasprintf("get token from %s: %s", realm, curl_message(rc, errbuf));
                        r = -EIO;
                        break;
                }
                if (status != 200) {
                        _cleanup_free_ char *m = registry_error_message(x.buf, x.len);
                        *ret_error = xasprintf("%s: get token from %s: %s%s%s", status_text(status), realm,
                                          status == 401 && g->user ? "the credentials were refused" : "",
                                          status == 401 && g->user && m ? ": " : "", m ? m : "");
                        r = status == 401 || status == 403 ? -EACCES : -EIO;
                        break;
                }
                json_object *j = x.buf ? json_tokener_parse(x.buf) : NULL;
                const char *t = j && json_object_is_type(j, json_type_object) ? json_str(j, "token") : NULL;
                if (!t && j && json_object_is_type(j, json_type_object))
                        t = json_str(j, "access_token");
                if (!t || strpbrk(t, "\r\n")) {
                        json_object_put(j);
                        *ret_error = xasprintf("get token from %s: no token in the answer", realm);
                        r = -EPROTO;
                        break;
                }
                int64_t expires_in = 60;
                json_object *e;
                if (json_object_object_get_ex(j, "expires_in", &e) && json_object_is_type(e, json_type_int) &&
                    json_object_get_int64(e) > 0)
                        expires_in = json_object_get_int64(e);
                pthread_mutex_lock(&g->lock);
                g->tokens = xrealloc(g->tokens, (g->n_tokens + 1) * sizeof(struct token));
                /* a little early, so a token does not expire in flight */
                g->tokens[g->n_tokens++] = (struct token){ .scope = xstrdup(scope ? scope : ""),
                                                           .value = xstrdup(t),
                                                           .expires = time(NULL) + (time_t)expires_in -
                                                                      (expires_in > 10 ? 5 : 0) };
                pthread_mutex_unlock(&g->lock);
                *ret_token = xstrdup(t);
                json_object_put(j);
                r = 0;
                break;
        }
        free(url);
        if (userpwd)
                explicit_bzero(userpwd, strlen(userpwd));
        xfer_done(&x);
        return r;
}

/* The Authorization header line for a request to the registry, or NULL for none. */
static int auth_header(struct reg *g, CURL *h, const char *scope, char **ret, char **ret_error)
{
        pthread_mutex_lock(&g->lock);
        enum auth_scheme s = g->scheme;
        pthread_mutex_unlock(&g->lock);
        *ret = NULL;
        if (s == AUTH_BASIC && g->user) {
                *ret = basic_header(g);
                return 0;
        }
        if (s != AUTH_BEARER)
                return 0;
        const char *sc = scope ? scope : "";
        pthread_mutex_lock(&g->token_lock);
        pthread_mutex_lock(&g->lock);
        _cleanup_free_ char *t = token_get_locked(g, sc);
        pthread_mutex_unlock(&g->lock);
        int r = 0;
        if (!t)
                r = fetch_token(g, h, sc, &t, ret_error);
        pthread_mutex_unlock(&g->token_lock);
        if (r < 0)
                return r;
        *ret = xasprintf("Authorization: Bearer %s", t);
        return 0;
}

/* Learn from a 401's challenges. true when retrying can help (new scheme, new token). */
static bool take_challenge(struct reg *g, char **hdrs, size_t n, const char *used_authz, char **scope)
{
        struct registry_challenge *bearer = NULL, *basic = NULL;
        struct registry_challenge *all[8] = { 0 };
        size_t counts[8] = { 0 };
        for (size_t i = 0; i < n && i < 8; i++) {
                if (registry_parse_challenges(hdrs[i], &all[i], &counts[i]) < 0)
                        continue;
                for (size_t k = 0; k < counts[i]; k++) {
                        if (!strcmp(all[i][k].scheme, "bearer") && !bearer)
                                bearer = &all[i][k];
                        else if (!strcmp(all[i][k].scheme, "basic") && !basic)
                                basic = &all[i][k];
                }
        }
        bool retry = false;
        if (bearer && registry_challenge_param(bearer, "realm")) {
                pthread_mutex_lock(&g->lock);
                bool was_bearer = g->scheme == AUTH_BEARER;
                g->scheme = AUTH_BEARER;
                free(g->realm);
                g->realm = xstrdup(registry_challenge_param(bearer, "realm"));
                free(g->service);
                const char *svc = registry_challenge_param(bearer, "service");
                g->service = svc ? xstrdup(svc) : NULL;
                pthread_mutex_unlock(&g->lock);
                const char *sc = registry_challenge_param(bearer, "scope");
                if (sc && scope && (!*scope || strcmp(sc, *scope))) {
                        free(*scope);
                        *scope = xstrdup(sc);
                        retry = true;
                } else if (!was_bearer || !used_authz)
                        retry = true;
                else if (used_authz && scope && *scope) {
                        /* the token we sent was refused: forget it and ask once more */
                        const char *tv = used_authz + strlen("Authorization: Bearer ");
                        token_drop(g, *scope, tv);
                        retry = true;
                }
        } else if (basic && g->user) {
                pthread_mutex_lock(&g->lock);
                bool was_basic = g->scheme == AUTH_BASIC;
                g->scheme = AUTH_BASIC;
                pthread_mutex_unlock(&g->lock);
                retry = !was_basic || !used_authz;
        }
        for (size_t i = 0; i < n && i < 8; i++)
                registry_challenges_free(all[i], counts[i]);
        return retry;
}

/* ---- requests with redirects, auth and retries ---- */

struct req {
        const char *path; /* below the base: "/v2/..." */
        const char *accept;
        const char *what; /* "manifest latest", "blob sha256:..." */
        size_t max;       /* buffered body limit */
        /* streaming */
        int (*sink)(void *ud, const void *p, size_t n);
        void *sink_ud;
        uint64_t limit;
        void (*on_bytes)(void *ud, uint64_t delivered);
        void (*on_retry)(void *ud);
        void *ud;
};

struct resp {
        long status;
        char *body;
        size_t len;
        char *dcd;
        uint64_t delivered;
};

static void resp_done(struct resp *r)
{
        free(r->body);
        free(r->dcd);
        *r = (struct resp){ 0 };
}

static int reg_request(struct reg *g, CURL *h, const struct req *q, struct resp *ret, char **ret_error)
{
        _cleanup_free_ char *start = xasprintf("%s%s", g->base, q->path);
        _cleanup_free_ char *url = xstrdup(start);
        _cleanup_free_ char *scope = g->scope ? xstrdup(g->scope) : NULL;
        struct xfer x = { .h = h,
                          .g = g,
                          .max = q->max,
                          .sink = q->sink,
                          .sink_ud = q->sink_ud,
                          .limit = q->limit ? q->limit : UINT64_MAX,
                          .on_bytes = q->on_bytes,
                          .on_bytes_ud = q->ud };
        unsigned failures = 0, redirects = 0, auth_tries = 0;
        int r;
        for (;;) {
                if (atomic_load(&g->abort)) {
                        r = -ECANCELED;
                        *ret_error = xasprintf("%s: cancelled", q->what);
                        break;
                }
                _cleanup_free_ char *origin = url_origin(url);
                bool same = origin && !strcmp(origin, g->base);
                _cleanup_free_ char *authz = NULL;
                if (same) {
                        r = auth_header(g, h, scope, &authz, ret_error);
                        if (r < 0)
                                break;
                }
                char errbuf[CURL_ERROR_SIZE];
                long status;
                uint64_t before = x.delivered;
                CURLcode rc = http_perform(&x, url, q->accept, authz, NULL, &status, errbuf);
                if (x.delivered > before)
                        failures = 0; /* progress: a new run of attempts */
                if (x.err) {
                        r = x.err;
                        if (r == -EFBIG)
                                *ret_error = q->sink ? xasprintf("%s: the registry sent more than the %llu bytes the manifest declares",
                                                            q->what, (unsigned long long)q->limit)
                                                     : xasprintf("%s: larger than %zu bytes", q->what, q->max);
                        else if (r == -EPROTO)
                                *ret_error = xasprintf("%s: the registry resumed at the wrong offset (%s)", q->what,
                                                  x.crange ? x.crange : "no Content-Range");
                        else if (r == -ECANCELED)
                                *ret_error = xasprintf("%s: cancelled", q->what);
                        else
                                *ret_error = NULL; /* the sink's own error: the caller knows it */
                        break;
                }
                if (rc == CURLE_ABORTED_BY_CALLBACK) {
                        r = -ECANCELED;
                        *ret_error = xasprintf("%s: cancelled", q->what);
                        break;
                }
                if (rc != CURLE_OK) {
                        if (curl_retryable(rc) && ++failures < MAX_FAILURES) {
                                if (q->on_retry)
                                        q->on_retry(q->ud);
                                sleep_ms(g, backoff_ms(failures, NULL));
                                free(url);
                                url = xstrdup(start);
                                continue;
                        }
                        *ret_error = xasprintf("%s: %s", q->what, curl_message(rc, errbuf));
                        r = rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
                        break;
                }
                if (status >= 300 && status < 400 && status != 304) {
                        char *loc = NULL;
                        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &loc);
                        if (!loc) {
                                *ret_error = xasprintf("%s: redirect (HTTP %ld) without a location", q->what, status);
                                r = -EPROTO;
                                break;
                        }
                        if (++redirects > MAX_REDIRECTS) {
                                *ret_error = xasprintf("%s: too many redirects", q->what);
                                r = -ELOOP;
                                break;
                        }
                        if (!url_allowed(g, loc)) {
                                *ret_error = xasprintf("%s: refusing a redirect to %.200s (plain HTTP to a host that is not loopback)",
                                                  q->what, loc);
                                r = -EPERM;
                                break;
                        }
                        char *n = xstrdup(loc);
                        free(url);
                        url = n;
                        continue;
                }
                if (status == 401 && same && auth_tries < 2 && take_challenge(g, x.auth, x.n_auth, authz, &scope)) {
                        auth_tries++;
                        continue;
                }
                if (status_retryable(status) && ++failures < MAX_FAILURES) {
                        if (q->on_retry)
                                q->on_retry(q->ud);
                        sleep_ms(g, backoff_ms(failures, x.retry_after));
                        free(url);
                        url = xstrdup(start);
                        continue;
                }
                if (status >= 200 && status < 300) {
                        *ret = (struct resp){ .status = status,
                                              .body = TAKE_PTR(x.buf),
                                              .len = x.len,
                                              .dcd = TAKE_PTR(x.dcd),
                                              .delivered = x.delivered };
                        r = 0;
                        break;
                }
                _cleanup_free_ char *m = registry_error_message(x.buf, x.len);
                const char *hint = "";
                if (status == 401)
                        hint = g->user ? " (the credentials were refused)" : " (no credentials: use ctfs login)";
                *ret_error = xasprintf("%s: %s (HTTP %ld)%s%s%s", q->what, status_text(status), status, m ? ": " : "",
                                  m ? m : "", hint);
                ret->status = status;
                r = status == 404 ? -ENOENT : status == 401 || status == 403 ? -EACCES : -EIO;
                break;
        }
        xfer_done(&x);
        return r;
}

/* GET /v2/ over HTTPS, or plain HTTP where allowed; learns the auth scheme. */
static int reg_ping(struct reg *g, CURL *h, char **ret_error)
{
        const char *schemes[] = { "https", g->http_ok ? "http" : NULL };
        _cleanup_free_ char *first_error = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(schemes) && schemes[i]; i++) {
                _cleanup_free_ char *url = xasprintf("%s://%s/v2/", schemes[i], g->host);
                struct xfer x = { .h = h, .g = g, .max = ERROR_BODY_MAX };
                unsigned failures = 0;
                for (;;) {
                        char errbuf[CURL_ERROR_SIZE];
                        long status;
                        CURLcode rc = http_perform(&x, url, NULL, NULL, NULL, &status, errbuf);
                        if (rc != CURLE_OK) {
                                /* a certificate that does not verify is an answer, not a reason
                                 * to fall back to plain HTTP */
                                bool verify_failed = rc == CURLE_PEER_FAILED_VERIFICATION;
                                if (!first_error)
                                        first_error = xasprintf("ping %s: %s", url, curl_message(rc, errbuf));
                                if (verify_failed && !g->o->insecure) {
                                        *ret_error = xasprintf("ping %s: %s (a private CA? see --cert-dir; or --tls-verify=false)",
                                                          url, curl_message(rc, errbuf));
                                        xfer_done(&x);
                                        return -EPERM;
                                }
                                if (i == 0 && schemes[1])
                                        break; /* try plain HTTP */
                                if ((rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT) &&
                                    ++failures < 3) {
                                        sleep_ms(g, backoff_ms(failures, NULL));
                                        continue;
                                }
                                *ret_error = xasprintf("ping %s: %s", url, curl_message(rc, errbuf));
                                xfer_done(&x);
                                return -EIO;
                        }
                        if (status_retryable(status) && ++failures < MAX_FAILURES) {
                                sleep_ms(g, backoff_ms(failures, x.retry_after));
                                continue;
                        }
                        g->base = xasprintf("%s://%s", schemes[i], g->host);
                        if (status == 401)
                                take_challenge(g, x.auth, x.n_auth, NULL, NULL);
                        else if (status != 200 && status != 404) {
                                /* 404: some registries serve the API but not the ping */
                                _cleanup_free_ char *m = registry_error_message(x.buf, x.len);
                                *ret_error = xasprintf("ping %s: %s (HTTP %ld)%s%s", url, status_text(status), status,
                                                  m ? ": " : "", m ? m : "");
                                xfer_done(&x);
                                return status == 403 ? -EACCES : -EIO;
                        }
                        xfer_done(&x);
                        return 0;
                }
                xfer_done(&x);
        }
        *ret_error = TAKE_PTR(first_error);
        return -EIO;
}

/* ============================== pulling ============================== */


static void progress(struct reg *g, size_t layer, const uint8_t *digest, enum registry_layer_state st, uint64_t bytes,
                     uint64_t total)
{
        if (!g->o->progress)
                return;
        char ds[DIGEST_STR_LEN] = "";
        if (digest)
                digest_to_str(digest, ds);
        struct registry_progress p = {
                .layer = layer, .n_layers = g->n_layers, .digest = ds, .state = st, .bytes = bytes, .total = total
        };
        pthread_mutex_lock(&g->progress_lock);
        g->o->progress(g->o->userdata, &p);
        pthread_mutex_unlock(&g->progress_lock);
}

/* A blob (manifest or config) into memory, checked against its digest. */
static int fetch_small(struct reg *g, CURL *h, const char *kind, const char *ref, const char *accept, size_t max,
                       const uint8_t *want, char **ret, size_t *ret_len, char **ret_dcd, char **ret_error)
{
        _cleanup_free_ char *path = xasprintf("/v2/%s/%s/%s", g->repository, kind, ref);
        _cleanup_free_ char *what = xasprintf("%s %s", !strcmp(kind, "blobs") ? "config" : "manifest", ref);
        struct req q = { .path = path, .accept = accept, .what = what, .max = max };
        struct resp rs = { 0 };
        int r = reg_request(g, h, &q, &rs, ret_error);
        if (r < 0)
                return r;
        uint8_t got[DIGEST_LEN];
        digest_buf(rs.body ? rs.body : "", rs.len, got);
        if (want && memcmp(want, got, DIGEST_LEN) != 0) {
                char w[DIGEST_STR_LEN], gs[DIGEST_STR_LEN];
                digest_to_str(want, w);
                digest_to_str(got, gs);
                *ret_error = xasprintf("digest mismatch for %s: expected %s, got %s", w, w, gs);
                resp_done(&rs);
                return -EBADMSG;
        }
        *ret = rs.body ? TAKE_PTR(rs.body) : xstrdup("");
        *ret_len = rs.len;
        if (ret_dcd)
                *ret_dcd = TAKE_PTR(rs.dcd);
        resp_done(&rs);
        return 0;
}

/* ---- layers: parallel downloads streamed into ingest ---- */

struct pull_ctx {
        struct reg *g;
        store *s;
        const struct manifest *m;
        const size_t *which;
        size_t n_which;
        const uint8_t (*diffids)[DIGEST_LEN];
        ingest_staged **staged; /* staged[k] for which[k] */
        pthread_mutex_t lock;
        size_t next;
        int error;
        char *error_msg;
};

struct ingest_job {
        store *s;
        int fd;
        const uint8_t *diffid;
        atomic_int r;
        char *err;
        ingest_staged *staged;
};

static void *ingest_thread(void *p)
{
        struct ingest_job *j = p;
        struct ingest_result res;
        char *err = NULL;
        /* (the blob's digest is download_layer's to check: it hashes it as it arrives) */
        int r = ingest_layer_stage(j->s, j->fd, NULL, j->diffid, &res, &j->staged, &err);
        j->err = err;
        atomic_store(&j->r, r < 0 ? r : 1);
        /* the writer sees EPIPE from now on */
        close(j->fd);
        j->fd = -1;
        return NULL;
}

struct layer_dl {
        struct reg *g;
        size_t index;
        const struct manifest_desc *d;
        int fd;
        struct ingest_job *job;
        digest_ctx *hash; /* of every byte that arrived: the blob's check, and what tells a corrupt
                             blob from a bad layer */
        bool discard;     /* ingest gave up: only hash the rest */
};

/* Errors of this machine rather than of the layer's contents. */
static bool local_error(int r)
{
        return r == -ENOSPC || r == -EDQUOT || r == -EROFS || r == -ENOMEM || r == -EMFILE || r == -ENFILE ||
               r == -EACCES || r == -EPERM;
}

static int sink_socket(void *ud, const void *p, size_t n)
{
        struct layer_dl *l = ud;
        const char *c = p;
        digest_update(l->hash, p, n);
        while (n > 0 && !l->discard) {
                ssize_t k = send(l->fd, c, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        int ir = atomic_load(&l->job->r);
                        /* ingest refused the contents before the end: finish the download
                         * (bounded by the declared size) only to learn whether the blob
                         * matches its digest, which says whose fault it is */
                        if ((r == -EPIPE || r == -ECONNRESET) && ir < 0 && !local_error(ir)) {
                                l->discard = true;
                                return 0;
                        }
                        return r;
                }
                c += k;
                n -= (size_t)k;
        }
        return 0;
}

static void layer_bytes(void *ud, uint64_t delivered)
{
        struct layer_dl *l = ud;
        progress(l->g, l->index, l->d->digest, REGISTRY_LAYER_DOWNLOADING, delivered, (uint64_t)l->d->size);
}

static void layer_retry(void *ud)
{
        struct layer_dl *l = ud;
        progress(l->g, l->index, l->d->digest, REGISTRY_LAYER_RETRYING, 0, (uint64_t)l->d->size);
}

/* Download layer i into a staged ingest (published later, with the image). */
static int download_layer(struct pull_ctx *c, CURL *h, size_t i, ingest_staged **ret_staged, char **ret_error)
{
        struct reg *g = c->g;
        const struct manifest_desc *d = &c->m->layers[i];
        char ds[DIGEST_STR_LEN];
        digest_to_str(d->digest, ds);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                int r = -errno;
                *ret_error = xasprintf("layer %s: socketpair: %s", ds, strerror(errno));
                return r;
        }
        struct ingest_job job = { .s = c->s, .fd = sv[1], .diffid = c->diffids[i] };
        pthread_t t;
        int e = pthread_create(&t, NULL, ingest_thread, &job);
        if (e != 0) {
                close(sv[0]);
                close(sv[1]);
                *ret_error = xasprintf("layer %s: start ingest: %s", ds, strerror(e));
                return -e;
        }
        _cleanup_(digest_freep) digest_ctx *hash = digest_new();
        struct layer_dl l = { .g = g, .index = i, .d = d, .fd = sv[0], .job = &job, .hash = hash };
        _cleanup_free_ char *path = xasprintf("/v2/%s/blobs/%s", g->repository, ds);
        _cleanup_free_ char *what = xasprintf("blob %s", ds);
        struct req q = { .path = path,
                         .what = what,
                         .sink = sink_socket,
                         .sink_ud = &l,
                         .limit = (uint64_t)d->size,
                         .on_bytes = layer_bytes,
                         .on_retry = layer_retry,
                         .ud = &l };
        struct resp rs = { 0 };
        char *derr = NULL;
        progress(g, i, d->digest, REGISTRY_LAYER_DOWNLOADING, 0, (uint64_t)d->size);
        int r = reg_request(g, h, &q, &rs, &derr);
        if (r >= 0 && rs.delivered != (uint64_t)d->size) {
                derr = xasprintf("blob %s: got %llu bytes, the manifest declares %lld", ds, (unsigned long long)rs.delivered,
                            (long long)d->size);
                r = -EBADMSG;
        }
        resp_done(&rs);
        /* EOF for ingest: it verifies what it got (a short stream never verifies) */
        close(sv[0]);
        pthread_join(t, NULL);
        if (r >= 0) {
                uint8_t got[DIGEST_LEN];
                digest_final(hash, got);
                if (memcmp(got, d->digest, DIGEST_LEN) != 0) {
                        char gs[DIGEST_STR_LEN];
                        digest_to_str(got, gs);
                        free(job.err);
                        ingest_staged_free(job.staged);
                        *ret_error = xasprintf("digest mismatch for %s: expected %s, got %s", ds, ds, gs);
                        return -EBADMSG;
                }
        }
        if (r < 0 && derr) {
                /* the download's failure explains the ingest's */
                free(job.err);
                ingest_staged_free(job.staged);
                *ret_error = derr;
                return r;
        }
        free(derr);
        int jr = atomic_load(&job.r);
        if (jr < 0) {
                *ret_error = job.err ? job.err : xasprintf("layer %s: ingest: %s", ds, strerror(-jr));
                return jr;
        }
        free(job.err);
        if (r < 0) {
                ingest_staged_free(job.staged);
                *ret_error = xasprintf("layer %s: %s", ds, strerror(-r));
                return r;
        }
        *ret_staged = job.staged;
        return 0;
}

static void *worker(void *p)
{
        struct pull_ctx *c = p;
        _cleanup_(curl_easy_cleanupp) CURL *h = reg_easy(c->g);
        for (;;) {
                pthread_mutex_lock(&c->lock);
                size_t k = c->next < c->n_which && !c->error ? c->next++ : SIZE_MAX;
                pthread_mutex_unlock(&c->lock);
                if (k == SIZE_MAX)
                        break;
                size_t i = c->which[k];
                char *err = NULL;
                ingest_staged *st = NULL;
                int r = download_layer(c, h, i, &st, &err);
                c->staged[k] = st; /* each worker writes its own slots */
                progress(c->g, i, c->m->layers[i].digest, r < 0 ? REGISTRY_LAYER_FAILED : REGISTRY_LAYER_DONE,
                         (uint64_t)c->m->layers[i].size, (uint64_t)c->m->layers[i].size);
                if (r < 0) {
                        pthread_mutex_lock(&c->lock);
                        /* the first real failure wins over the cancellations it causes */
                        if (!c->error || (c->error == -ECANCELED && r != -ECANCELED)) {
                                c->error = r;
                                free(c->error_msg);
                                c->error_msg = TAKE_PTR(err);
                        }
                        pthread_mutex_unlock(&c->lock);
                        atomic_store(&c->g->abort, 1);
                }
                free(err);
        }
        return NULL;
}

static int stage_layers(void *userdata, store *s, const size_t *which, size_t n_which, const uint8_t (*diffids)[DIGEST_LEN],
                        ingest_staged **ret_staged, char **ret_error)
{
        struct pull_ctx *c = userdata;
        c->s = s;
        c->staged = ret_staged;
        c->next = 0;
        c->error = 0;
        atomic_store(&c->g->abort, 0);
        c->which = which;
        c->n_which = n_which;
        c->diffids = diffids;
        for (size_t i = 0; i < c->m->n_layers; i++) {
                bool wanted = false;
                for (size_t k = 0; k < n_which && !wanted; k++)
                        wanted = which[k] == i;
                progress(c->g, i, c->m->layers[i].digest, wanted ? REGISTRY_LAYER_WAITING : REGISTRY_LAYER_EXISTS, 0,
                         (uint64_t)c->m->layers[i].size);
        }
        unsigned par = c->g->o->parallel ? c->g->o->parallel : DEFAULT_PARALLEL;
        if (par > MAX_PARALLEL)
                par = MAX_PARALLEL;
        if (par > n_which)
                par = (unsigned)n_which;
        pthread_t th[MAX_PARALLEL];
        unsigned started = 0;
        for (unsigned i = 0; i < par; i++) {
                if (pthread_create(&th[i], NULL, worker, c) != 0)
                        break;
                started++;
        }
        if (started == 0)
                worker(c);
        for (unsigned i = 0; i < started; i++)
                pthread_join(th[i], NULL);
        if (c->error < 0) {
                *ret_error = c->error_msg ? TAKE_PTR(c->error_msg) : xasprintf("download layers: %s", strerror(-c->error));
                return c->error;
        }
        return 0;
}

static char *platform_string(const char *os, const char *arch, const char *variant)
{
        return variant ? xasprintf("%s/%s/%s", os, arch, variant) : xasprintf("%s/%s", os, arch);
}

int registry_pull(store *s, const struct reference *ref, const struct registry_options *o, struct import_result *ret,
                  char **ret_error)
{
        if (ref->transport != REF_DOCKER || !ref->registry || !ref->repository) {
                *ret_error = xasprintf("not a registry reference");
                return -EINVAL;
        }
        struct reg g;
        int r = reg_init(&g, ref->registry, ref->repository, o, ret_error);
        _cleanup_(curl_easy_cleanupp) CURL *h = NULL;
        _cleanup_free_ char *mdata = NULL, *cdata = NULL, *dcd = NULL;
        size_t mlen = 0, clen = 0;
        struct manifest m = { 0 };
        if (r < 0)
                goto out;
        h = reg_easy(&g);
        r = reg_ping(&g, h, ret_error);
        if (r < 0)
                goto out;

        /* the manifest, by digest or by tag */
        uint8_t want[DIGEST_LEN];
        const char *mref = ref->digest ? ref->digest : ref->tag ? ref->tag : "latest";
        if (ref->digest && digest_parse(ref->digest, want) < 0) {
                *ret_error = xasprintf("invalid digest %s", ref->digest);
                r = -EINVAL;
                goto out;
        }
        r = fetch_small(&g, h, "manifests", mref, MANIFEST_ACCEPT, MANIFEST_MAX_SIZE, ref->digest ? want : NULL, &mdata,
                        &mlen, &dcd, ret_error);
        if (r < 0)
                goto out;
        if (!ref->digest && dcd && !strncmp(dcd, "sha256:", 7)) {
                /* by tag: the registry's Docker-Content-Digest must be what we got */
                uint8_t hd[DIGEST_LEN], got[DIGEST_LEN];
                digest_buf(mdata, mlen, got);
                if (digest_parse(dcd, hd) == 0 && memcmp(hd, got, DIGEST_LEN) != 0) {
                        char gs[DIGEST_STR_LEN];
                        digest_to_str(got, gs);
                        *ret_error = xasprintf("digest mismatch for manifest %s: expected %s, got %s", mref, dcd, gs);
                        r = -EBADMSG;
                        goto out;
                }
        }
        int kind = manifest_sniff(mdata, mlen);
        if (kind == -EPROTONOSUPPORT) {
                *ret_error = xasprintf("manifest %s: Docker schema 1 images are not supported", mref);
                r = kind;
                goto out;
        }
        if (kind == MANIFEST_DOC_INDEX) {
                struct manifest_index idx;
                r = manifest_parse_index(mdata, mlen, &idx);
                if (r < 0) {
                        *ret_error = xasprintf("manifest %s: invalid image index", mref);
                        goto out;
                }
                const char *os = o->os, *arch = o->arch, *variant = o->variant;
                const char *hos, *harch, *hvariant;
                platform_host(&hos, &harch, &hvariant);
                size_t k;
                r = manifest_index_pick(&idx, os, arch, variant, &k);
                if (r < 0) {
                        _cleanup_free_ char *offer = manifest_index_platforms(&idx);
                        _cleanup_free_ char *wanted = os || arch ? platform_string(os ? os : hos, arch ? arch : harch, variant)
                                                                 : platform_string(hos, harch, hvariant);
                        *ret_error = xasprintf("no image for platform %s in %s (it has: %s)", wanted, mref,
                                          *offer ? offer : "none");
                        manifest_index_free(&idx);
                        r = -ENOENT;
                        goto out;
                }
                uint8_t child[DIGEST_LEN];
                memcpy(child, idx.manifests[k].digest, DIGEST_LEN);
                manifest_index_free(&idx);
                free(mdata);
                mdata = NULL;
                /* a manifest we committed before is in the store, verified: no request */
                uint8_t got[DIGEST_LEN];
                if (store_blob_get(s, child, &mdata, &mlen) >= 0) {
                        digest_buf(mdata, mlen, got);
                        if (memcmp(got, child, DIGEST_LEN) != 0) {
                                free(mdata);
                                mdata = NULL;
                        }
                }
                if (!mdata) {
                        char cs[DIGEST_STR_LEN];
                        digest_to_str(child, cs);
                        r = fetch_small(&g, h, "manifests", cs, MANIFEST_ACCEPT, MANIFEST_MAX_SIZE, child, &mdata, &mlen,
                                        NULL, ret_error);
                        if (r < 0)
                                goto out;
                }
                if (manifest_sniff(mdata, mlen) != MANIFEST_DOC_MANIFEST) {
                        *ret_error = xasprintf("manifest %s: the index names something that is not an image manifest", mref);
                        r = -EINVAL;
                        goto out;
                }
        } else if (kind != MANIFEST_DOC_MANIFEST) {
                *ret_error = xasprintf("manifest %s: not an image manifest or index", mref);
                r = -EINVAL;
                goto out;
        }
        r = manifest_parse(mdata, mlen, &m);
        if (r < 0) {
                *ret_error = xasprintf("manifest %s: %s", mref,
                                  r == -EPROTONOSUPPORT ? "Docker schema 1 images are not supported" : "invalid image manifest");
                goto out;
        }
        if (!manifest_media_type_is_config(m.config.media_type)) {
                *ret_error = xasprintf("manifest %s: not a container image (config media type %s)", mref, m.config.media_type);
                r = -EMEDIUMTYPE;
                goto out;
        }
        for (size_t i = 0; i < m.n_layers; i++)
                if (!manifest_media_type_is_layer(m.layers[i].media_type)) {
                        char ds[DIGEST_STR_LEN];
                        digest_to_str(m.layers[i].digest, ds);
                        *ret_error = xasprintf("layer %s: unsupported media type %s", ds, m.layers[i].media_type);
                        r = -EMEDIUMTYPE;
                        goto out;
                }
        g.n_layers = m.n_layers;

        /* the config: from the store when the image is there (a pull that changes nothing) */
        char id[DIGEST_HEX_LEN + 1];
        digest_to_hex(m.config.digest, id);
        if (store_image_exists(s, id) && store_blob_get(s, m.config.digest, &cdata, &clen) >= 0) {
                uint8_t got[DIGEST_LEN];
                digest_buf(cdata, clen, got);
                if (memcmp(got, m.config.digest, DIGEST_LEN) != 0) {
                        free(cdata);
                        cdata = NULL;
                }
        }
        if (!cdata) {
                char cs[DIGEST_STR_LEN];
                digest_to_str(m.config.digest, cs);
                if ((uint64_t)m.config.size > IMAGE_CONFIG_MAX_SIZE) {
                        *ret_error = xasprintf("config %s: %lld bytes is too large", cs, (long long)m.config.size);
                        r = -EFBIG;
                        goto out;
                }
                r = fetch_small(&g, h, "blobs", cs, NULL, IMAGE_CONFIG_MAX_SIZE, m.config.digest, &cdata, &clen, NULL,
                                ret_error);
                if (r < 0)
                        goto out;
        }

        char *full = reference_to_string(ref);
        char **names = xcalloc(2, sizeof(char *));
        names[0] = full;
        struct pull_ctx c = { .g = &g, .m = &m };
        pthread_mutex_init(&c.lock, NULL);
        /* layers are staged, and published together with the image or not at all */
        struct import_layers layers = { .n = m.n_layers, .stage = stage_layers, .userdata = &c };
        struct import_result res = { 0 };
        r = import_image(s, mdata, mlen, cdata, clen, names, &layers, &res, ret_error);
        pthread_mutex_destroy(&c.lock);
        free(c.error_msg);
        if (r < 0) {
                import_result_free(&res);
                goto out;
        }
        *ret = res;
out:
        manifest_free(&m);
        reg_free(&g);
        return r;
}

int registry_login(const char *registry, const struct registry_options *o, bool *ret_needs_auth, char **ret_error)
{
        struct reg g;
        int r = reg_init(&g, registry, NULL, o, ret_error);
        _cleanup_(curl_easy_cleanupp) CURL *h = NULL;
        if (r < 0)
                goto out;
        h = reg_easy(&g);
        r = reg_ping(&g, h, ret_error);
        if (r < 0)
                goto out;
        *ret_needs_auth = g.scheme != AUTH_NONE;
        if (g.scheme == AUTH_NONE)
                goto out;
        if (!g.user) {
                *ret_error = xasprintf("no credentials given");
                r = -EINVAL;
                goto out;
        }
        if (g.scheme == AUTH_BEARER) {
                /* as docker login does: a token for no particular scope */
                _cleanup_free_ char *t = NULL;
                r = fetch_token(&g, h, "", &t, ret_error);
                goto out;
        }
        struct req q = { .path = "/v2/", .what = "log in", .max = ERROR_BODY_MAX };
        struct resp rs = { 0 };
        r = reg_request(&g, h, &q, &rs, ret_error);
        resp_done(&rs);
out:
        reg_free(&g);
        return r;
}
