/* SPDX-License-Identifier: Apache-2.0 */
#include "manifest.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>

#include "util.h"

/* Real documents nest 5 deep; the cap keeps json-c's recursion bounded on hostile input. */
#define JSON_MAX_DEPTH 64
#define MEDIA_TYPE_MAX 255
#define PLATFORM_FIELD_MAX 64

static void json_putp(json_object **o)
{
        if (*o)
                json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

static void tokener_freep(json_tokener **t)
{
        if (*t)
                json_tokener_free(*t);
}

static void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

static void strv_freep(char ***v)
{
        strv_free(*v);
}

/* ---- JSON access ------------------------------------------------------------------------ */

/* Parse a whole document of the given top-level type; trailing bytes other than whitespace
 * (including a NUL) are an error, so the bytes that were hashed are the bytes that were read. */
static int json_load(const char *data, size_t len, size_t max, json_type type, json_object **ret)
{
        _cleanup_(tokener_freep) json_tokener *tok = NULL;
        _cleanup_json_ json_object *o = NULL;

        if (!data || len == 0)
                return -EINVAL;
        if (len > max || len > INT_MAX)
                return -EFBIG;

        tok = json_tokener_new_ex(JSON_MAX_DEPTH);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, data, (int)len);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return -EINVAL;
        for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
                if (!strchr(" \t\r\n", data[i]) || data[i] == '\0')
                        return -EINVAL;
        if (!json_object_is_type(o, type))
                return -EINVAL;
        *ret = TAKE_PTR(o);
        return 0;
}

/* A member of the given type; absent and null both give NULL. */
static int obj_get(json_object *o, const char *key, json_type type, json_object **ret)
{
        json_object *v = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(v, type))
                return -EINVAL;
        *ret = v;
        return 0;
}

/* A string without embedded NULs, which would make C see a different value than JSON. */
static int json_str(json_object *v, const char **ret)
{
        if (!v || !json_object_is_type(v, json_type_string))
                return -EINVAL;
        const char *s = json_object_get_string(v);
        int n = json_object_get_string_len(v);
        if (!s || n < 0 || strlen(s) != (size_t)n)
                return -EINVAL;
        *ret = s;
        return 0;
}

static int obj_get_str(json_object *o, const char *key, bool required, const char **ret)
{
        json_object *v;
        int k = obj_get(o, key, json_type_string, &v);
        if (k < 0)
                return k;
        if (!v) {
                if (required)
                        return -EINVAL;
                *ret = NULL;
                return 0;
        }
        return json_str(v, ret);
}

/* Like obj_get_str, but a copy, and "" becomes NULL when empty_is_null. */
static int obj_dup_str(json_object *o, const char *key, bool required, bool empty_is_null, char **ret)
{
        const char *s;
        int k = obj_get_str(o, key, required, &s);
        if (k < 0)
                return k;
        *ret = (s && !(empty_is_null && !*s)) ? xstrdup(s) : NULL;
        return 0;
}

/* An integer member; doubles ("1.0", "1e3") are refused, as are values json-c clamped. */
static int obj_get_int64(json_object *o, const char *key, bool *ret_present, int64_t *ret)
{
        json_object *v;
        int k = obj_get(o, key, json_type_int, &v);
        if (k < 0)
                return k;
        *ret_present = v != NULL;
        if (!v)
                return 0;
        int64_t x = json_object_get_int64(v);
        if (x == INT64_MAX && json_object_get_uint64(v) != (uint64_t)INT64_MAX)
                return -EINVAL;
        if (x == INT64_MIN)
                return -EINVAL;
        *ret = x;
        return 0;
}

static int schema_version(json_object *o, int64_t *ret)
{
        bool present;
        int k = obj_get_int64(o, "schemaVersion", &present, ret);
        if (k < 0)
                return k;
        return present ? 0 : -EINVAL;
}

/* A string array (or, with allow_string, a lone string) as a NULL-terminated vector. */
static int json_strv(json_object *v, size_t max, bool allow_string, char ***ret, size_t *ret_n)
{
        const char *s;
        int k;

        if (!v) {
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        if (allow_string && json_object_is_type(v, json_type_string)) {
                k = json_str(v, &s);
                if (k < 0)
                        return k;
                char **r = xcalloc(2, sizeof(char *));
                r[0] = xstrdup(s);
                *ret = r;
                *ret_n = 1;
                return 0;
        }
        if (!json_object_is_type(v, json_type_array))
                return -EINVAL;
        size_t n = json_object_array_length(v);
        if (n > max)
                return -EINVAL;
        _cleanup_(strv_freep) char **r = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
                k = json_str(json_object_array_get_idx(v, i), &s);
                if (k < 0)
                        return k;
                r[i] = xstrdup(s);
        }
        *ret = TAKE_PTR(r);
        *ret_n = n;
        return 0;
}

/* ---- media types and descriptors -------------------------------------------------------- */

static bool streq(const char *a, const char *b)
{
        return a && b && strcmp(a, b) == 0;
}

bool manifest_media_type_is_index(const char *mt)
{
        return streq(mt, MEDIA_TYPE_OCI_INDEX) || streq(mt, MEDIA_TYPE_DOCKER_MANIFEST_LIST);
}

bool manifest_media_type_is_manifest(const char *mt)
{
        return streq(mt, MEDIA_TYPE_OCI_MANIFEST) || streq(mt, MEDIA_TYPE_DOCKER_MANIFEST);
}

bool manifest_media_type_is_config(const char *mt)
{
        return streq(mt, MEDIA_TYPE_OCI_CONFIG) || streq(mt, MEDIA_TYPE_DOCKER_CONFIG);
}

bool manifest_media_type_is_layer(const char *mt)
{
        static const char *const layers[] = {
                MEDIA_TYPE_OCI_LAYER,         MEDIA_TYPE_OCI_LAYER_GZIP,         MEDIA_TYPE_OCI_LAYER_ZSTD,
                MEDIA_TYPE_OCI_LAYER_NONDIST, MEDIA_TYPE_OCI_LAYER_NONDIST_GZIP, MEDIA_TYPE_OCI_LAYER_NONDIST_ZSTD,
                MEDIA_TYPE_DOCKER_LAYER,      MEDIA_TYPE_DOCKER_LAYER_FOREIGN,
        };
        for (size_t i = 0; i < ARRAY_SIZE(layers); i++)
                if (streq(mt, layers[i]))
                        return true;
        return false;
}

static bool is_schema1(const char *mt)
{
        return streq(mt, MEDIA_TYPE_DOCKER_MANIFEST_V1) || streq(mt, MEDIA_TYPE_DOCKER_MANIFEST_V1_SIGNED);
}

/* RFC 6838 type "/" subtype with restricted-name characters; nothing a terminal interprets. */
static bool valid_media_type(const char *s)
{
        size_t n = strlen(s), slash = 0;
        if (n == 0 || n > MEDIA_TYPE_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '/') {
                        if (slash || i == 0 || i == n - 1)
                                return false;
                        slash = i;
                } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                             strchr("!#$&^_.+-", c)))
                        return false;
        }
        return slash != 0;
}

static bool valid_platform_field(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > PLATFORM_FIELD_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

static void desc_free(struct manifest_desc *d)
{
        free(d->media_type);
        free(d->platform_os);
        free(d->platform_arch);
        free(d->platform_variant);
        free(d->ref_name);
        memset(d, 0, sizeof(*d));
}

static void descs_free(struct manifest_desc *d, size_t n)
{
        if (!d)
                return;
        for (size_t i = 0; i < n; i++)
                desc_free(&d[i]);
        free(d);
}

static int parse_platform(json_object *p, struct manifest_desc *d)
{
        const char *os, *arch, *variant;
        int k;

        if ((k = obj_get_str(p, "os", true, &os)) < 0 || (k = obj_get_str(p, "architecture", true, &arch)) < 0 ||
            (k = obj_get_str(p, "variant", false, &variant)) < 0)
                return k;
        if (!valid_platform_field(os) || !valid_platform_field(arch))
                return -EINVAL;
        if (variant && *variant && !valid_platform_field(variant))
                return -EINVAL;
        d->platform_os = xstrdup(os);
        d->platform_arch = xstrdup(arch);
        d->platform_variant = (variant && *variant) ? xstrdup(variant) : NULL;
        return 0;
}

static int parse_desc(json_object *o, struct manifest_desc *ret)
{
        _cleanup_(desc_free) struct manifest_desc d = { 0 };
        json_object *platform, *annotations;
        const char *mt, *digest, *ref_name = NULL;
        bool present;
        int k;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EINVAL;
        if ((k = obj_get_str(o, "mediaType", true, &mt)) < 0)
                return k;
        if (!valid_media_type(mt))
                return -EINVAL;
        if ((k = obj_get_str(o, "digest", true, &digest)) < 0)
                return k;
        if (digest_parse(digest, d.digest) < 0)
                return -EINVAL;
        if ((k = obj_get_int64(o, "size", &present, &d.size)) < 0)
                return k;
        if (!present || d.size < 0)
                return -EINVAL;
        if ((k = obj_get(o, "platform", json_type_object, &platform)) < 0)
                return k;
        if (platform && (k = parse_platform(platform, &d)) < 0)
                return k;
        if ((k = obj_get(o, "annotations", json_type_object, &annotations)) < 0)
                return k;
        if (annotations && (k = obj_get_str(annotations, ANNOTATION_REF_NAME, false, &ref_name)) < 0)
                return k;

        d.media_type = xstrdup(mt);
        d.ref_name = ref_name ? xstrdup(ref_name) : NULL;
        *ret = d;
        memset(&d, 0, sizeof(d));
        return 0;
}

static int parse_desc_array(json_object *arr, size_t max, struct manifest_desc **ret, size_t *ret_n)
{
        size_t n = json_object_array_length(arr);
        int k;
        if (n > max)
                return -EINVAL;
        struct manifest_desc *d = xcalloc(n ? n : 1, sizeof(*d));
        for (size_t i = 0; i < n; i++) {
                k = parse_desc(json_object_array_get_idx(arr, i), &d[i]);
                if (k < 0) {
                        descs_free(d, n);
                        return k;
                }
        }
        *ret = d;
        *ret_n = n;
        return 0;
}

/* ---- sniffing, indexes, manifests ------------------------------------------------------- */

static int sniff_object(json_object *o)
{
        const char *mt;
        int64_t version;
        int k;

        if ((k = obj_get_str(o, "mediaType", false, &mt)) < 0)
                return k;
        if (mt) {
                if (manifest_media_type_is_index(mt))
                        return MANIFEST_DOC_INDEX;
                if (manifest_media_type_is_manifest(mt))
                        return MANIFEST_DOC_MANIFEST;
                if (is_schema1(mt) || streq(mt, "application/vnd.oci.artifact.manifest.v1+json"))
                        return -EPROTONOSUPPORT;
                return -EINVAL;
        }
        /* schema 1 has no mediaType in the document, only schemaVersion 1 and fsLayers. */
        if ((k = schema_version(o, &version)) < 0)
                return json_object_object_get_ex(o, "fsLayers", NULL) ? -EPROTONOSUPPORT : k;
        if (version == 1)
                return -EPROTONOSUPPORT;
        bool is_index = json_object_object_get_ex(o, "manifests", NULL);
        bool is_manifest = json_object_object_get_ex(o, "config", NULL) || json_object_object_get_ex(o, "layers", NULL);
        /* Both would let one blob be read as two different things: the reason OCI added mediaType. */
        if (is_index == is_manifest)
                return -EINVAL;
        return is_index ? MANIFEST_DOC_INDEX : MANIFEST_DOC_MANIFEST;
}

int manifest_sniff(const char *json, size_t len)
{
        _cleanup_json_ json_object *o = NULL;
        int k = json_load(json, len, MANIFEST_MAX_SIZE, json_type_object, &o);
        if (k < 0)
                return k;
        return sniff_object(o);
}

void manifest_index_free(struct manifest_index *idx)
{
        if (!idx)
                return;
        free(idx->media_type);
        descs_free(idx->manifests, idx->n_manifests);
        memset(idx, 0, sizeof(*idx));
}

int manifest_parse_index(const char *json, size_t len, struct manifest_index *ret)
{
        _cleanup_json_ json_object *o = NULL;
        _cleanup_(manifest_index_free) struct manifest_index idx = { 0 };
        json_object *arr;
        const char *mt;
        int64_t version;
        int k;

        if ((k = json_load(json, len, MANIFEST_MAX_SIZE, json_type_object, &o)) < 0)
                return k;
        if ((k = sniff_object(o)) < 0)
                return k;
        if (k != MANIFEST_DOC_INDEX)
                return -EINVAL;
        if ((k = schema_version(o, &version)) < 0)
                return k;
        if (version != 2)
                return -EINVAL;
        if ((k = obj_get_str(o, "mediaType", false, &mt)) < 0)
                return k;
        if ((k = obj_get(o, "manifests", json_type_array, &arr)) < 0)
                return k;
        if (!arr)
                return -EINVAL;
        if ((k = parse_desc_array(arr, MANIFEST_MAX_ENTRIES, &idx.manifests, &idx.n_manifests)) < 0)
                return k;
        idx.media_type = mt ? xstrdup(mt) : NULL;

        *ret = idx;
        memset(&idx, 0, sizeof(idx));
        return 0;
}

void manifest_free(struct manifest *m)
{
        if (!m)
                return;
        free(m->media_type);
        desc_free(&m->config);
        descs_free(m->layers, m->n_layers);
        memset(m, 0, sizeof(*m));
}

int manifest_parse(const char *json, size_t len, struct manifest *ret)
{
        _cleanup_json_ json_object *o = NULL;
        _cleanup_(manifest_free) struct manifest m = { 0 };
        json_object *config, *layers;
        const char *mt;
        int64_t version;
        int k;

        if ((k = json_load(json, len, MANIFEST_MAX_SIZE, json_type_object, &o)) < 0)
                return k;
        if ((k = sniff_object(o)) < 0)
                return k;
        if (k != MANIFEST_DOC_MANIFEST)
                return -EINVAL;
        if ((k = schema_version(o, &version)) < 0)
                return k;
        if (version != 2)
                return -EINVAL;
        if ((k = obj_get_str(o, "mediaType", false, &mt)) < 0)
                return k;
        m.kind = streq(mt, MEDIA_TYPE_DOCKER_MANIFEST) ? MANIFEST_KIND_DOCKER_V2 : MANIFEST_KIND_OCI;

        if ((k = obj_get(o, "config", json_type_object, &config)) < 0)
                return k;
        if (!config)
                return -EINVAL;
        if ((k = parse_desc(config, &m.config)) < 0)
                return k;
        if ((k = obj_get(o, "layers", json_type_array, &layers)) < 0)
                return k;
        if (!layers)
                return -EINVAL;
        if ((k = parse_desc_array(layers, MANIFEST_MAX_LAYERS, &m.layers, &m.n_layers)) < 0)
                return k;
        m.media_type = mt ? xstrdup(mt) : NULL;

        *ret = m;
        memset(&m, 0, sizeof(m));
        return 0;
}

int manifest_index_find_ref(const struct manifest_index *idx, const char *name, size_t *ret_i)
{
        if (!idx || idx->n_manifests == 0)
                return -ENOENT;
        if (!name) {
                if (idx->n_manifests != 1)
                        return -ENOTUNIQ;
                *ret_i = 0;
                return 0;
        }
        for (size_t i = 0; i < idx->n_manifests; i++)
                if (streq(idx->manifests[i].ref_name, name)) {
                        *ret_i = i;
                        return 0;
                }
        return -ENOENT;
}

/* ---- time ------------------------------------------------------------------------------- */

static bool digits(const char *s, size_t n, unsigned *ret)
{
        unsigned v = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        *ret = v;
        return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static bool is_leap(unsigned y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int manifest_parse_time(const char *s, int64_t *ret_seconds)
{
        static const unsigned mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        unsigned year, mon, day, hour, min, sec, oh = 0, om = 0;
        int sign = 0;

        if (!s || strlen(s) < 20)
                return -EINVAL;
        if (!digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) || s[7] != '-' ||
            !digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &hour) ||
            s[13] != ':' || !digits(s + 14, 2, &min) || s[16] != ':' || !digits(s + 17, 2, &sec))
                return -EINVAL;
        if (mon < 1 || mon > 12 || day < 1 || hour > 23 || min > 59 || sec > 60)
                return -EINVAL;
        if (day > mdays[mon - 1] + (mon == 2 && is_leap(year)))
                return -EINVAL;

        const char *p = s + 19;
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                while (*p >= '0' && *p <= '9')
                        p++;
        }
        if (*p == 'Z' || *p == 'z') {
                p++;
        } else if (*p == '+' || *p == '-') {
                sign = *p == '+' ? 1 : -1;
                if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
                        return -EINVAL;
                p += 6;
        } else
                return -EINVAL;
        if (*p)
                return -EINVAL;

        int64_t t = days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
        t -= sign * (int64_t)(oh * 3600 + om * 60);
        *ret_seconds = t;
        return 0;
}

/* ---- image config ----------------------------------------------------------------------- */

void image_config_free(struct image_config *c)
{
        if (!c)
                return;
        free(c->architecture);
        free(c->os);
        free(c->variant);
        free(c->user);
        free(c->working_dir);
        free(c->stop_signal);
        strv_free(c->env);
        strv_free(c->entrypoint);
        strv_free(c->cmd);
        strv_free(c->label_keys);
        strv_free(c->label_values);
        free(c->diff_ids);
        memset(c, 0, sizeof(*c));
}

static int parse_labels(json_object *labels, struct image_config *c)
{
        const char *s;
        int k;

        if (!labels)
                return 0;
        size_t n = (size_t)json_object_object_length(labels), i = 0;
        if (n > IMAGE_CONFIG_MAX_STRV)
                return -EINVAL;
        c->label_keys = xcalloc(n + 1, sizeof(char *));
        c->label_values = xcalloc(n + 1, sizeof(char *));
        json_object_object_foreach(labels, key, val)
        {
                if (i >= n)
                        return -EINVAL;
                if (!val) /* null value: docker drops the label */
                        continue;
                if ((k = json_str(val, &s)) < 0)
                        return k;
                c->label_keys[i] = xstrdup(key);
                c->label_values[i] = xstrdup(s);
                i++;
        }
        c->n_labels = i;
        return 0;
}

static int parse_diff_ids(json_object *o, struct image_config *c)
{
        json_object *rootfs, *ids;
        const char *type, *s;
        int k;

        if ((k = obj_get(o, "rootfs", json_type_object, &rootfs)) < 0)
                return k;
        if (!rootfs)
                return -EINVAL;
        if ((k = obj_get_str(rootfs, "type", true, &type)) < 0)
                return k;
        if (!streq(type, "layers"))
                return -EINVAL;
        if ((k = obj_get(rootfs, "diff_ids", json_type_array, &ids)) < 0)
                return k;
        if (!ids)
                return -EINVAL;
        size_t n = json_object_array_length(ids);
        if (n > MANIFEST_MAX_LAYERS)
                return -EINVAL;
        c->diff_ids = xcalloc(n ? n : 1, DIGEST_LEN);
        for (size_t i = 0; i < n; i++) {
                if ((k = json_str(json_object_array_get_idx(ids, i), &s)) < 0)
                        return k;
                if (digest_parse(s, c->diff_ids[i]) < 0)
                        return -EINVAL;
        }
        c->n_diff_ids = n;
        return 0;
}

int image_config_parse(const char *json, size_t len, struct image_config *ret)
{
        _cleanup_json_ json_object *o = NULL;
        _cleanup_(image_config_free) struct image_config c = { 0 };
        json_object *cfg, *v;
        const char *created;
        int k;

        if ((k = json_load(json, len, IMAGE_CONFIG_MAX_SIZE, json_type_object, &o)) < 0)
                return k;

        if ((k = obj_dup_str(o, "architecture", false, false, &c.architecture)) < 0 ||
            (k = obj_dup_str(o, "os", false, false, &c.os)) < 0 ||
            (k = obj_dup_str(o, "variant", false, true, &c.variant)) < 0)
                return k;
        if ((k = obj_get_str(o, "created", false, &created)) < 0)
                return k;
        if (created) {
                if ((k = manifest_parse_time(created, &c.created)) < 0)
                        return k;
                c.has_created = true;
        }

        if ((k = obj_get(o, "config", json_type_object, &cfg)) < 0)
                return k;
        if (cfg) {
                if ((k = obj_dup_str(cfg, "User", false, true, &c.user)) < 0 ||
                    (k = obj_dup_str(cfg, "WorkingDir", false, true, &c.working_dir)) < 0 ||
                    (k = obj_dup_str(cfg, "StopSignal", false, true, &c.stop_signal)) < 0)
                        return k;

                if ((k = obj_get(cfg, "Env", json_type_array, &v)) < 0 ||
                    (k = json_strv(v, IMAGE_CONFIG_MAX_STRV, false, &c.env, &c.n_env)) < 0)
                        return k;
                /* Docker's strslice: an array of strings or a single string. */
                v = NULL;
                json_object_object_get_ex(cfg, "Entrypoint", &v);
                if ((k = json_strv(v, IMAGE_CONFIG_MAX_STRV, true, &c.entrypoint, &c.n_entrypoint)) < 0)
                        return k;
                v = NULL;
                json_object_object_get_ex(cfg, "Cmd", &v);
                if ((k = json_strv(v, IMAGE_CONFIG_MAX_STRV, true, &c.cmd, &c.n_cmd)) < 0)
                        return k;

                if ((k = obj_get(cfg, "Labels", json_type_object, &v)) < 0 || (k = parse_labels(v, &c)) < 0)
                        return k;
        }

        if ((k = parse_diff_ids(o, &c)) < 0)
                return k;

        *ret = c;
        memset(&c, 0, sizeof(c));
        return 0;
}

/* ---- docker save manifest.json ---------------------------------------------------------- */

/* A member name inside the archive: relative and without "..", so no lookup can leave it. */
static bool valid_archive_path(const char *s)
{
        if (!*s || *s == '/')
                return false;
        for (const char *p = s; *p;) {
                const char *e = strchrnul(p, '/');
                if (e - p == 2 && p[0] == '.' && p[1] == '.')
                        return false;
                p = *e ? e + 1 : e;
        }
        return true;
}

static void save_entry_free(struct docker_save_entry *e)
{
        free(e->config);
        strv_free(e->repo_tags);
        strv_free(e->layers);
        memset(e, 0, sizeof(*e));
}

void docker_save_entries_free(struct docker_save_entry *e, size_t n)
{
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                save_entry_free(&e[i]);
        free(e);
}

static int parse_save_entry(json_object *o, struct docker_save_entry *ret)
{
        _cleanup_(save_entry_free) struct docker_save_entry e = { 0 };
        json_object *v;
        const char *config;
        int k;

        if (!o || !json_object_is_type(o, json_type_object))
                return -EINVAL;
        if ((k = obj_get_str(o, "Config", true, &config)) < 0)
                return k;
        if (!valid_archive_path(config))
                return -EINVAL;
        e.config = xstrdup(config);

        if ((k = obj_get(o, "RepoTags", json_type_array, &v)) < 0 ||
            (k = json_strv(v, MANIFEST_MAX_ENTRIES, false, &e.repo_tags, &e.n_repo_tags)) < 0)
                return k;
        if ((k = obj_get(o, "Layers", json_type_array, &v)) < 0)
                return k;
        if (!v)
                return -EINVAL;
        if ((k = json_strv(v, MANIFEST_MAX_LAYERS, false, &e.layers, &e.n_layers)) < 0)
                return k;
        for (size_t i = 0; i < e.n_layers; i++)
                if (!valid_archive_path(e.layers[i]))
                        return -EINVAL;

        *ret = e;
        memset(&e, 0, sizeof(e));
        return 0;
}

int docker_save_manifest_parse(const char *json, size_t len, struct docker_save_entry **ret, size_t *ret_n)
{
        _cleanup_json_ json_object *o = NULL;
        int k;

        if ((k = json_load(json, len, DOCKER_SAVE_MANIFEST_MAX_SIZE, json_type_array, &o)) < 0)
                return k;
        size_t n = json_object_array_length(o);
        if (n > MANIFEST_MAX_ENTRIES)
                return -EINVAL;
        struct docker_save_entry *e = xcalloc(n ? n : 1, sizeof(*e));
        for (size_t i = 0; i < n; i++) {
                k = parse_save_entry(json_object_array_get_idx(o, i), &e[i]);
                if (k < 0) {
                        docker_save_entries_free(e, n);
                        return k;
                }
        }
        *ret = e;
        *ret_n = n;
        return 0;
}

/* ---- platforms -------------------------------------------------------------------------- */

static const struct {
        const char *machine, *arch, *variant;
} machines[] = {
        { "x86_64", "amd64", NULL },     { "amd64", "amd64", NULL },       { "i386", "386", NULL },
        { "i486", "386", NULL },         { "i586", "386", NULL },          { "i686", "386", NULL },
        { "aarch64", "arm64", "v8" },    { "arm64", "arm64", "v8" },       { "armv8l", "arm", "v8" },
        { "armv7l", "arm", "v7" },       { "armv7", "arm", "v7" },         { "armv6l", "arm", "v6" },
        { "armv5tel", "arm", "v5" },     { "armv5tejl", "arm", "v5" },     { "armv5l", "arm", "v5" },
        { "ppc64le", "ppc64le", NULL },  { "ppc64", "ppc64", NULL },       { "s390x", "s390x", NULL },
        { "riscv64", "riscv64", NULL },  { "loongarch64", "loong64", NULL },
};

int platform_from_machine(const char *machine, const char **ret_arch, const char **ret_variant)
{
        for (size_t i = 0; machine && i < ARRAY_SIZE(machines); i++)
                if (strcmp(machine, machines[i].machine) == 0) {
                        *ret_arch = machines[i].arch;
                        *ret_variant = machines[i].variant;
                        return 0;
                }
        return -ENOENT;
}

void platform_host(const char **ret_os, const char **ret_arch, const char **ret_variant)
{
        struct utsname u;
        const char *arch, *variant = NULL;

        if (uname(&u) < 0 || platform_from_machine(u.machine, &arch, &variant) < 0) {
#if defined(__x86_64__)
                arch = "amd64";
#elif defined(__aarch64__)
                arch = "arm64", variant = "v8";
#elif defined(__arm__)
                arch = "arm", variant = "v7";
#elif defined(__i386__)
                arch = "386";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                arch = "ppc64le";
#elif defined(__s390x__)
                arch = "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
                arch = "riscv64";
#elif defined(__mips64) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                arch = "mips64le";
#elif defined(__mips64)
                arch = "mips64";
#else
                arch = "unknown";
#endif
        }
        *ret_os = "linux";
        *ret_arch = arch;
        *ret_variant = variant;
}

int platform_parse(const char *s, char **ret_os, char **ret_arch, char **ret_variant)
{
        if (!s)
                return -EINVAL;
        const char *a = strchr(s, '/');
        if (!a)
                return -EINVAL;
        const char *v = strchr(a + 1, '/');
        _cleanup_free_ char *os = xstrndup(s, (size_t)(a - s));
        _cleanup_free_ char *arch = v ? xstrndup(a + 1, (size_t)(v - a - 1)) : xstrdup(a + 1);
        _cleanup_free_ char *variant = v ? xstrdup(v + 1) : NULL;
        if (!valid_platform_field(os) || !valid_platform_field(arch) || (variant && !valid_platform_field(variant)))
                return -EINVAL;
        *ret_os = TAKE_PTR(os);
        *ret_arch = TAKE_PTR(arch);
        *ret_variant = TAKE_PTR(variant);
        return 0;
}

/* Aliases to GOARCH; an alias may imply a variant (armhf is arm/v7). */
static const char *norm_arch(const char *arch, const char **implied_variant)
{
        static const struct {
                const char *alias, *arch, *variant;
        } aliases[] = {
                { "aarch64", "arm64", NULL }, { "x86_64", "amd64", NULL }, { "x86-64", "amd64", NULL },
                { "i386", "386", NULL },      { "i686", "386", NULL },     { "armhf", "arm", "v7" },
                { "armel", "arm", "v6" },
        };
        *implied_variant = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
                if (strcasecmp(arch, aliases[i].alias) == 0) {
                        *implied_variant = aliases[i].variant;
                        return aliases[i].arch;
                }
        return arch;
}

/* "v8", "8", "v8.2", "8.2" as 800, 800, 802, 802; -1 when not a version. */
static int variant_version(const char *v)
{
        unsigned major = 0, minor = 0;
        size_t n = 0;
        if (!v)
                return -1;
        if (*v == 'v' || *v == 'V')
                v++;
        for (; *v >= '0' && *v <= '9' && n < 3; v++, n++)
                major = major * 10 + (unsigned)(*v - '0');
        if (n == 0 || major > 99)
                return -1;
        if (*v == '.') {
                v++;
                n = 0;
                for (; *v >= '0' && *v <= '9' && n < 2; v++, n++)
                        minor = minor * 10 + (unsigned)(*v - '0');
                if (n == 0)
                        return -1;
        }
        if (*v)
                return -1;
        return (int)(major * 100 + minor);
}

static bool empty(const char *s)
{
        return !s || !*s;
}

int platform_match(const char *want_os, const char *want_arch, const char *want_variant, const char *os,
                   const char *arch, const char *variant)
{
        const char *want_implied, *implied;

        if (!want_os || !want_arch || !os || !arch)
                return 0;
        if (strcasecmp(want_os, os) != 0)
                return 0;
        want_arch = norm_arch(want_arch, &want_implied);
        arch = norm_arch(arch, &implied);
        if (strcasecmp(want_arch, arch) != 0)
                return 0;
        if (empty(want_variant))
                want_variant = want_implied;
        if (empty(variant))
                variant = implied;

        bool is_arm64 = strcasecmp(arch, "arm64") == 0, is_arm = strcasecmp(arch, "arm") == 0,
             is_amd64 = strcasecmp(arch, "amd64") == 0;
        if (is_arm64 || is_arm || is_amd64) {
                /* Missing variants mean the baseline each ecosystem assumes (containerd's). */
                const char *dflt = is_arm64 ? "v8" : is_arm ? "v7" : "v1";
                int cand = variant_version(empty(variant) ? dflt : variant);
                if (is_amd64 && empty(want_variant))
                        /* Any level matches, the most widely runnable first. */
                        return cand >= 0 ? 10000 - cand : (!empty(variant) ? 1 : 0);
                int want = variant_version(empty(want_variant) ? dflt : want_variant);
                if (want < 0 || cand < 0)
                        return (!empty(want_variant) && !empty(variant) && strcasecmp(want_variant, variant) == 0)
                                       ? 10000
                                       : 0;
                if (cand > want || (is_arm && cand < 500))
                        return 0;
                /* Closest lower version first: v7 before v6 before v5. */
                return 10000 - (want - cand);
        }

        if (empty(want_variant))
                return empty(variant) ? 10000 : 5000;
        return (!empty(variant) && strcasecmp(want_variant, variant) == 0) ? 10000 : 0;
}

static bool platform_is_unknown(const struct manifest_desc *d)
{
        return !d->platform_os || !d->platform_arch || strcmp(d->platform_os, "unknown") == 0 ||
               strcmp(d->platform_arch, "unknown") == 0;
}

int manifest_index_pick(const struct manifest_index *idx, const char *os, const char *arch, const char *variant,
                        size_t *ret_i)
{
        const char *host_os, *host_arch, *host_variant;
        int best = 0;
        size_t best_i = 0;

        if (!idx)
                return -EINVAL;
        platform_host(&host_os, &host_arch, &host_variant);
        if (!os)
                os = host_os;
        if (!arch) {
                arch = host_arch;
                if (!variant)
                        variant = host_variant;
        }

        for (size_t i = 0; i < idx->n_manifests; i++) {
                const struct manifest_desc *d = &idx->manifests[i];
                if (platform_is_unknown(d))
                        continue;
                if (!manifest_media_type_is_manifest(d->media_type) && !manifest_media_type_is_index(d->media_type))
                        continue;
                int score = platform_match(os, arch, variant, d->platform_os, d->platform_arch, d->platform_variant);
                if (score > best) {
                        best = score;
                        best_i = i;
                }
        }
        if (best == 0)
                return -ENOENT;
        *ret_i = best_i;
        return 0;
}

char *manifest_index_platforms(const struct manifest_index *idx)
{
        _cleanup_free_ char *out = xstrdup("");
        size_t len = 0;

        for (size_t i = 0; idx && i < idx->n_manifests; i++) {
                const struct manifest_desc *d = &idx->manifests[i];
                if (platform_is_unknown(d))
                        continue;
                _cleanup_free_ char *p = xasprintf("%s/%s%s%s", d->platform_os, d->platform_arch,
                                                   d->platform_variant ? "/" : "",
                                                   d->platform_variant ? d->platform_variant : "");
                /* Skip duplicates: exact "p" between ", " separators. */
                bool dup = false;
                for (const char *s = out; *s;) {
                        const char *e = strstr(s, ", ");
                        size_t n = e ? (size_t)(e - s) : strlen(s);
                        if (n == strlen(p) && memcmp(s, p, n) == 0) {
                                dup = true;
                                break;
                        }
                        s = e ? e + 2 : s + n;
                }
                if (dup)
                        continue;
                size_t plen = strlen(p);
                out = xrealloc(out, len + (len ? 2 : 0) + plen + 1);
                if (len) {
                        memcpy(out + len, ", ", 2);
                        len += 2;
                }
                memcpy(out + len, p, plen + 1);
                len += plen;
        }
        return TAKE_PTR(out);
}
