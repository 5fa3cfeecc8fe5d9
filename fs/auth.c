/* SPDX-License-Identifier: Apache-2.0 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* Auth files are small; anything bigger is not one. */
#define AUTH_FILE_MAX ((size_t)4 << 20)

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *auth_base64_encode(const void *data, size_t len)
{
        const unsigned char *p = data;
        char *out = xmalloc((len + 2) / 3 * 4 + 1), *o = out;
        size_t i = 0;
        for (; i + 2 < len; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
                *o++ = b64chars[v >> 18 & 63];
                *o++ = b64chars[v >> 12 & 63];
                *o++ = b64chars[v >> 6 & 63];
                *o++ = b64chars[v & 63];
        }
        if (i < len) {
                uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
                *o++ = b64chars[v >> 18 & 63];
                *o++ = b64chars[v >> 12 & 63];
                *o++ = i + 1 < len ? b64chars[v >> 6 & 63] : '=';
                *o++ = '=';
        }
        *o = '\0';
        return out;
}

static int b64val(char c)
{
        const char *p = c ? strchr(b64chars, c) : NULL;
        return p ? (int)(p - b64chars) : -1;
}

int auth_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
        if (len % 4 != 0)
                return -EINVAL;
        char *out = xmalloc(len / 4 * 3 + 1);
        size_t n = 0;
        for (size_t i = 0; i < len; i += 4) {
                int v[4];
                bool last = i + 4 == len;
                for (int k = 0; k < 4; k++)
                        v[k] = b64val(s[i + k]);
                /* padding only at the very end: "xx==" or "xxx=" */
                bool pad2 = last && s[i + 2] == '=' && s[i + 3] == '=';
                bool pad1 = last && !pad2 && s[i + 3] == '=';
                if (v[0] < 0 || v[1] < 0 || (!pad2 && v[2] < 0) || (!pad1 && !pad2 && v[3] < 0)) {
                        free(out);
                        return -EINVAL;
                }
                uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (pad2 ? 0 : (uint32_t)v[2] << 6) |
                             (pad1 || pad2 ? 0 : (uint32_t)v[3]);
                out[n++] = (char)(x >> 16);
                if (!pad2)
                        out[n++] = (char)(x >> 8 & 0xff);
                if (!pad1 && !pad2)
                        out[n++] = (char)(x & 0xff);
        }
        out[n] = '\0';
        *ret = out;
        if (ret_len)
                *ret_len = n;
        return 0;
}

char *auth_normalize_key(const char *key)
{
        if (!key || !*key)
                return NULL;
        char *k;
        if (!strncmp(key, "http://", 7) || !strncmp(key, "https://", 8)) {
                /* docker's legacy form names a host only ("https://index.docker.io/v1/") */
                const char *h = strstr(key, "://") + 3;
                k = xstrndup(h, strcspn(h, "/"));
        } else {
                k = xstrdup(key);
                size_t n = strlen(k);
                while (n > 0 && k[n - 1] == '/')
                        k[--n] = '\0';
        }
        if (!*k) {
                free(k);
                return NULL;
        }
        const char *slash = strchr(k, '/');
        size_t hl = slash ? (size_t)(slash - k) : strlen(k);
        static const char *const aliases[] = { "index.docker.io", "registry-1.docker.io" };
        for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
                if (hl == strlen(aliases[i]) && !strncmp(k, aliases[i], hl)) {
                        char *n = xasprintf("docker.io%s", slash ? slash : "");
                        free(k);
                        return n;
                }
        return k;
}

/* How specifically key names registry/repository: 0 not at all, else 1 + the number of
 * repository components it covers. */
static size_t key_match(const char *key, const char *registry, const char *repository)
{
        size_t rl = strlen(registry);
        if (strncmp(key, registry, rl) != 0)
                return 0;
        if (key[rl] == '\0')
                return 1;
        if (key[rl] != '/' || !repository)
                return 0;
        const char *k = key + rl + 1;
        size_t kl = strlen(k);
        /* "ns" matches "ns/app", not "nsx/app" */
        if (strncmp(k, repository, kl) != 0 || (repository[kl] != '\0' && repository[kl] != '/'))
                return 0;
        size_t comps = 1;
        for (const char *p = k; *p; p++)
                comps += *p == '/';
        return 1 + comps;
}

int auth_parse(const char *json, size_t len, const char *registry, const char *repository, char **ret_user,
               char **ret_pass)
{
        if (len > AUTH_FILE_MAX)
                return -EFBIG;
        json_tokener *tok = json_tokener_new_ex(32);
        if (!tok)
                return -ENOMEM;
        json_object *root = json_tokener_parse_ex(tok, json, (int)len);
        bool bad = json_tokener_get_error(tok) != json_tokener_success;
        /* nothing but white space after the document */
        for (size_t i = json_tokener_get_parse_end(tok); !bad && i < len; i++)
                bad = !json[i] || !strchr(" \t\r\n", json[i]);
        json_tokener_free(tok);
        if (bad || !root) {
                json_object_put(root);
                return -EINVAL;
        }
        int r = -ENOENT;
        json_object *auths;
        _cleanup_free_ char *reg = NULL, *dec = NULL;
        if (!json_object_is_type(root, json_type_object)) {
                r = -EINVAL;
                goto out;
        }
        if (!json_object_object_get_ex(root, "auths", &auths) || json_object_is_type(auths, json_type_null))
                goto out;
        if (!json_object_is_type(auths, json_type_object)) {
                r = -EINVAL;
                goto out;
        }
        reg = auth_normalize_key(registry);
        if (!reg)
                goto out;
        const char *best = NULL;
        size_t best_score = 0;
        json_object_object_foreach(auths, key, val)
        {
                _cleanup_free_ char *k = auth_normalize_key(key);
                json_object *a;
                if (!k || !json_object_is_type(val, json_type_object) || !json_object_object_get_ex(val, "auth", &a) ||
                    !json_object_is_type(a, json_type_string) || json_object_get_string_len(a) == 0)
                        continue;
                size_t score = key_match(k, reg, repository);
                if (score > best_score) {
                        best_score = score;
                        best = json_object_get_string(a);
                }
        }
        if (!best)
                goto out;
        size_t dl;
        if (auth_base64_decode(best, strlen(best), &dec, &dl) < 0 || memchr(dec, '\0', dl)) {
                r = -EINVAL;
                goto out;
        }
        char *colon = strchr(dec, ':');
        if (!colon) {
                r = -EINVAL;
                goto out;
        }
        *ret_user = xstrndup(dec, (size_t)(colon - dec));
        /* a newline left by `echo user:pass | base64` is not part of the password */
        size_t pl = strlen(colon + 1);
        while (pl > 0 && (colon[pl] == '\n' || colon[pl] == '\r'))
                pl--;
        *ret_pass = xstrndup(colon + 1, pl);
        r = 0;
out:
        json_object_put(root);
        return r;
}

/* Reads an auth file the user may have symlinked into place. */
static int read_auth_file(const char *path, char **ret, size_t *ret_len)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        return util_read_fd(fd, AUTH_FILE_MAX, ret, ret_len);
}

static char *home_dir(void)
{
        const char *h = getenv("HOME");
        if (h && *h == '/')
                return xstrdup(h);
        struct passwd *pw = getpwuid(getuid());
        return pw && pw->pw_dir ? xstrdup(pw->pw_dir) : NULL;
}

char *auth_default_path(const char *auth_file)
{
        if (auth_file && *auth_file)
                return xstrdup(auth_file);
        const char *e = getenv("REGISTRY_AUTH_FILE");
        if (e && *e)
                return xstrdup(e);
        e = getenv("XDG_RUNTIME_DIR");
        if (e && *e == '/')
                return xasprintf("%s/containers/auth.json", e);
        return xasprintf("/run/containers/%u/auth.json", (unsigned)getuid());
}

int auth_lookup(const char *auth_file, const char *registry, const char *repository, char **ret_user, char **ret_pass,
                char **ret_path)
{
        char *paths[4] = { 0 };
        size_t n = 0;
        const char *env = getenv("REGISTRY_AUTH_FILE");
        if ((auth_file && *auth_file) || (env && *env))
                paths[n++] = auth_default_path(auth_file);
        else {
                paths[n++] = auth_default_path(NULL);
                _cleanup_free_ char *home = home_dir();
                if (home) {
                        paths[n++] = xasprintf("%s/.config/containers/auth.json", home);
                        paths[n++] = xasprintf("%s/.docker/config.json", home);
                }
        }
        int r = -ENOENT;
        for (size_t i = 0; i < n && r == -ENOENT; i++) {
                _cleanup_free_ char *data = NULL;
                size_t len;
                int k = read_auth_file(paths[i], &data, &len);
                if (k == -ENOENT || k == -ENOTDIR || k == -EACCES)
                        continue;
                if (k >= 0)
                        k = auth_parse(data, len, registry, repository, ret_user, ret_pass);
                if (k != -ENOENT) {
                        r = k;
                        if (r < 0 && ret_path)
                                *ret_path = xstrdup(paths[i]);
                }
        }
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        return r;
}

/* The file's JSON object, or a new empty one when it does not exist. */
static int load_for_update(const char *path, json_object **ret)
{
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_auth_file(path, &data, &len);
        if (r == -ENOENT) {
                *ret = json_object_new_object();
                return 0;
        }
        if (r < 0)
                return r;
        json_object *root = json_tokener_parse(data);
        if (!root || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                return -EINVAL;
        }
        *ret = root;
        return 0;
}

static int write_out(const char *path, json_object *root)
{
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                int r = util_mkdir_p_at(AT_FDCWD, dir, 0700);
                if (r < 0)
                        return r;
        }
        const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB |
                                                                        JSON_C_TO_STRING_NOSLASHESCAPE);
        _cleanup_free_ char *out = xasprintf("%s\n", text);
        return util_write_file_atomic_at(AT_FDCWD, path, out, strlen(out), 0600);
}

int auth_save(const char *path, const char *key, const char *user, const char *pass)
{
        _cleanup_free_ char *k = auth_normalize_key(key);
        if (!k || !user || strchr(user, ':'))
                return -EINVAL;
        json_object *root;
        int r = load_for_update(path, &root);
        if (r < 0)
                return r;
        json_object *auths;
        if (!json_object_object_get_ex(root, "auths", &auths) || !json_object_is_type(auths, json_type_object)) {
                auths = json_object_new_object();
                json_object_object_add(root, "auths", auths);
        }
        _cleanup_free_ char *plain = xasprintf("%s:%s", user, pass ? pass : "");
        _cleanup_free_ char *b64 = auth_base64_encode(plain, strlen(plain));
        json_object *entry = json_object_new_object();
        json_object_object_add(entry, "auth", json_object_new_string(b64));
        json_object_object_add(auths, k, entry);
        r = write_out(path, root);
        json_object_put(root);
        return r;
}

int auth_remove(const char *path, const char *key)
{
        _cleanup_free_ char *k = key ? auth_normalize_key(key) : NULL;
        if (key && !k)
                return -EINVAL;
        json_object *root;
        int r = load_for_update(path, &root);
        if (r < 0)
                return r;
        json_object *auths;
        if (!json_object_object_get_ex(root, "auths", &auths) || !json_object_is_type(auths, json_type_object)) {
                json_object_put(root);
                return key ? -ENOENT : 0;
        }
        if (key) {
                /* the entry may be spelled another way ("https://quay.io/v1/") */
                char *found = NULL;
                json_object_object_foreach(auths, name, val)
                {
                        (void)val;
                        _cleanup_free_ char *nk = auth_normalize_key(name);
                        if (nk && !strcmp(nk, k)) {
                                found = xstrdup(name);
                                break;
                        }
                }
                if (!found) {
                        json_object_put(root);
                        return -ENOENT;
                }
                json_object_object_del(auths, found);
                free(found);
        } else
                json_object_object_add(root, "auths", json_object_new_object());
        r = write_out(path, root);
        json_object_put(root);
        return r;
}
