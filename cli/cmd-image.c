/* SPDX-License-Identifier: Apache-2.0 */
/* Image commands: pull, load, images, tag, rmi, inspect, export, prune, system df. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "template.h"
#include "container.h"
#include "export.h"
#include "image.h"
#include "import.h"
#include "manifest.h"
#include "reference.h"
#include "table.h"
#include "registry.h"
#include "util.h"

/* Error messages name entries of untrusted archives: escape control characters, so that a
 * name with a newline cannot make the one-line error two lines (or forge a second message). */
static char *one_line(char *msg)
{
        if (!msg)
                return NULL;
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
                n += *p < 0x20 || *p == 0x7f ? 4 : 1;
        char *out = xmalloc(n + 1), *o = out;
        for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
                if (*p == '\n' || *p == '\t' || *p == '\r') {
                        *o++ = '\\';
                        *o++ = *p == '\n' ? 'n' : *p == '\t' ? 't' : 'r';
                } else if (*p < 0x20 || *p == 0x7f)
                        o += sprintf(o, "\\x%02x", *p);
                else
                        *o++ = (char)*p;
        }
        *o = '\0';
        free(msg);
        return out;
}

static void report_import(struct cli *c, const struct import_result *res, const char *verb)
{
        if (c->quiet)
                return;
        for (size_t i = 0; i < res->n_images; i++) {
                const struct import_image *im = &res->images[i];
                const char *name = im->names && im->names[0] ? im->names[0] : NULL;
                if (!strcmp(verb, "load")) {
                        if (name)
                                for (char **n = im->names; *n; n++)
                                        printf("Loaded image: %s\n", *n);
                        else
                                printf("Loaded image ID: sha256:%s\n", im->id);
                } else if (im->existed)
                        printf("Image is up to date for %s (sha256:%.12s)\n", name ? name : "<none>", im->id);
                else
                        printf("Pulled %s (sha256:%.12s): %u layer%s, %u new\n", name ? name : "<none>", im->id,
                               im->layers, im->layers == 1 ? "" : "s", im->layers_ingested);
        }
}

int cmd_pull(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "quiet", no_argument, NULL, 'q' },
                { "platform", required_argument, NULL, 'P' },
                { "tls-verify", optional_argument, NULL, 'T' },
                { "cert-dir", required_argument, NULL, 'C' },
                { "creds", required_argument, NULL, 'c' },
                { "authfile", required_argument, NULL, 'A' },
                {},
        };
        struct registry_options ro = { 0 };
        _cleanup_free_ char *os = NULL, *arch = NULL, *variant = NULL, *user = NULL;
        const char *creds = NULL;
        int o;
        opterr = 0; /* the one-line usage error replaces getopt's own message */
        while ((o = cli_getopt(argc, argv, "q", opts)) >= 0)
                switch (o) {
                case 'q':
                        c->quiet = true;
                        break;
                case 'P':
                        free(os), free(arch), free(variant);
                        os = arch = variant = NULL;
                        if (platform_parse(optarg, &os, &arch, &variant) < 0)
                                return cli_error("pull: invalid --platform %s (want os/arch[/variant])", optarg);
                        break;
                case 'T':
                        if (optarg && strcmp(optarg, "true") && strcmp(optarg, "false"))
                                return cli_error("pull: --tls-verify takes true or false");
                        ro.insecure = optarg && !strcmp(optarg, "false");
                        break;
                case 'C':
                        ro.cert_dir = optarg;
                        break;
                case 'c':
                        creds = optarg;
                        break;
                case 'A':
                        ro.auth_file = optarg;
                        break;
                default:
                        return cli_usage_error("pull");
                }
        if (optind + 1 != argc)
                return cli_usage_error("pull");
        if (creds) {
                const char *colon = strchr(creds, ':');
                if (!colon || colon == creds)
                        return cli_error("pull: --creds takes USER:PASSWORD");
                user = xstrndup(creds, (size_t)(colon - creds));
                ro.username = user;
                ro.password = colon + 1;
        }
        ro.os = os;
        ro.arch = arch;
        ro.variant = variant;
        struct reference ref;
        if (reference_parse(argv[optind], &ref) < 0)
                return cli_error("pull: invalid reference format: %s", argv[optind]);
        store *s = cli_store(c);
        if (!s) {
                reference_free(&ref);
                return 1;
        }
        struct import_result res;
        char *err = NULL;
        int r;
        if (ref.transport == REF_DOCKER)
                r = cli_registry_pull(c, &ref, &ro, &res, &err);
        else
                r = import_pull(s, &ref, &res, &err);
        if (r < 0) {
                _cleanup_free_ char *name = reference_to_string(&ref);
                err = one_line(err);
                int rc = cli_error("pull %s: %s", name, err ? err : strerror(-r));
                free(err);
                reference_free(&ref);
                return rc;
        }
        report_import(c, &res, "pull");
        if (c->quiet)
                for (size_t i = 0; i < res.n_images; i++)
                        printf("sha256:%s\n", res.images[i].id);
        import_result_free(&res);
        reference_free(&ref);
        return 0;
}

int cmd_load(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "input", required_argument, NULL, 'i' },
                                              { "quiet", no_argument, NULL, 'q' }, {} };
        const char *input = NULL;
        int o;
        opterr = 0; /* the one-line usage error replaces getopt's own message */
        while ((o = cli_getopt(argc, argv, "i:q", opts)) >= 0)
                if (o == 'i')
                        input = optarg;
                else if (o == 'q')
                        c->quiet = true;
                else
                        return cli_usage_error("load");
        if (optind != argc)
                return cli_usage_error("load");
        _cleanup_close_ int fd = -1;
        if (input) {
                fd = open(input, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return cli_error("load: open %s: %m", input);
        } else {
                if (isatty(STDIN_FILENO))
                        return cli_error("load: no input (give -i FILE or pipe an archive to stdin)");
                fd = dup(STDIN_FILENO);
        }
        store *s = cli_store(c);
        if (!s)
                return 1;
        struct import_result res;
        char *err = NULL;
        int r = import_load(s, fd, &res, &err);
        if (r < 0)
                return cli_fail(one_line(err), "load: %s", strerror(-r));
        report_import(c, &res, "load");
        import_result_free(&res);
        return 0;
}

/* "docker.io/library/busybox:1" -> repository "docker.io/library/busybox", tag "1" */
static void split_name(const char *name, char **repo, char **tag)
{
        const char *at = strchr(name, '@');
        const char *slash = strrchr(name, '/');
        const char *colon = strrchr(slash ? slash : name, ':');
        if (at) {
                *repo = xstrndup(name, (size_t)(at - name));
                *tag = xstrdup("<none>");
        } else if (colon) {
                *repo = xstrndup(name, (size_t)(colon - name));
                *tag = xstrdup(colon + 1);
        } else {
                *repo = xstrdup(name);
                *tag = xstrdup("<none>");
        }
}

static int image_cmp(const void *a, const void *b)
{
        const struct store_image *x = a, *y = b;
        return x->created < y->created ? 1 : x->created > y->created ? -1 : strcmp(x->id, y->id);
}

/* images REPOSITORY[:TAG]: whether name (repo:tag) is one the argument names. */
static bool image_name_match(const char *name, const char *want)
{
        _cleanup_free_ char *repo = NULL, *tag = NULL, *wrepo = NULL, *wtag = NULL;
        split_name(name, &repo, &tag);
        split_name(want, &wrepo, &wtag);
        if (strcmp(repo, wrepo) != 0) {
                /* docker.io/library/x is "x" too */
                struct reference a, b;
                if (reference_parse(repo, &a) < 0)
                        return false;
                if (reference_parse(wrepo, &b) < 0) {
                        reference_free(&a);
                        return false;
                }
                /* (oci:DIR and the other local transports name no repository) */
                bool same = a.transport == REF_DOCKER && b.transport == REF_DOCKER && a.registry && b.registry &&
                            a.repository && b.repository && !strcmp(a.registry, b.registry) &&
                            !strcmp(a.repository, b.repository);
                reference_free(&a);
                reference_free(&b);
                if (!same)
                        return false;
        }
        return strchr(want, ':') == NULL || (strrchr(want, '/') && strchr(strrchr(want, '/'), ':') == NULL) ||
               !strcmp(tag, wtag);
}

int cmd_images(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "quiet", no_argument, NULL, 'q' },   { "digests", no_argument, NULL, 'd' },
                { "format", required_argument, NULL, 'f' }, { "no-trunc", no_argument, NULL, 'n' },
                { "images", no_argument, NULL, 'I' },  { "all", no_argument, NULL, 'a' }, {},
        };
        bool quiet = false, digests = false, json = false, notrunc = false, table = false;
        const char *format = NULL;
        int o;
        while ((o = cli_getopt(argc, argv, "qa", opts)) >= 0) {
                switch (o) {
                case 'q':
                        quiet = true;
                        break;
                case 'd':
                        digests = true;
                        break;
                case 'f':
                        format = optarg;
                        break;
                case 'n':
                        notrunc = true;
                        break;
                case 'I':
                case 'a':
                        break;
                default:
                        return cli_usage_error("images");
                }
        }
        if (argc - optind > 1)
                return cli_usage_error("images");
        const char *want = optind < argc ? argv[optind] : NULL;
        /* -q wins over --format; "table" alone is the default table; json: podman's array */
        json = !quiet && format && !strcmp(format, "json");
        _cleanup_free_ char *tmpl = !quiet && format && !json ? template_listing(format, &table) : NULL;
        format = tmpl;
        table = table && tmpl;
        struct table *lines = table ? table_new_tabbed() : NULL; /* aligned at the end */
        store *s = cli_store(c);
        if (!s)
                return 1;
        struct store_image *imgs;
        size_t n;
        int r = store_list_images(s, &imgs, &n);
        if (r < 0)
                return cli_error("images: %s", strerror(-r));
        qsort(imgs, n, sizeof(*imgs), image_cmp);
        if (json) {
                json_object *arr = json_object_new_array();
                for (size_t i = 0; i < n; i++) {
                        bool named = !want;
                        for (char **p = imgs[i].names; *p && !named; p++)
                                named = image_name_match(*p, want);
                        if (!named)
                                continue;
                        json_object *j = json_object_new_object();
                        json_object_object_add(j, "Id", json_object_new_string(imgs[i].id));
                        json_object_object_add(j, "Digest", json_object_new_string(imgs[i].digest));
                        json_object *names = json_object_new_array();
                        for (char **p = imgs[i].names; *p; p++)
                                json_object_array_add(names, json_object_new_string(*p));
                        json_object_object_add(j, "Names", names);
                        json_object_object_add(j, "Created", json_object_new_int64(imgs[i].created));
                        json_object_object_add(j, "Size", json_object_new_int64((int64_t)imgs[i].size));
                        json_object_array_add(arr, j);
                }
                puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(arr);
                store_images_free(imgs, n);
                return 0;
        }
        if (table) {
                static const char *const hcols[][2] = { { "ID", "IMAGE ID" },        { "Repository", "REPOSITORY" },
                                                        { "Tag", "TAG" },            { "Digest", "DIGEST" },
                                                        { "CreatedSince", "CREATED" }, { "CreatedAt", "CREATED AT" },
                                                        { "Size", "SIZE" } };
                char *text = NULL, *err = NULL;
                if (template_header(format, hcols, ARRAY_SIZE(hcols), &text, &err) < 0) {
                        store_images_free(imgs, n);
                        table_free(lines);
                        cli_error("images: template: %s", err ? err : "cannot render");
                        free(err);
                        return 1;
                }
                table_add_tabbed(lines, text);
                free(text);
        }
        static const char *const cols[] = { "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", NULL };
        static const char *const cols_d[] = { "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE", NULL };
        struct table *t = table_new(digests ? cols_d : cols);
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
                char size[32], ago[48], id[80];
                /* docker: a full id is "sha256:..." */
                snprintf(id, sizeof(id), "%s%.*s", notrunc ? "sha256:" : "", notrunc ? 64 : 12, imgs[i].id);
                if (quiet) {
                        bool named = !want;
                        for (char **p = imgs[i].names; *p && !named; p++)
                                named = image_name_match(*p, want);
                        if (named)
                                printf("%s\n", id);
                        continue;
                }
                fmt_size(imgs[i].size, size, sizeof(size));
                fmt_ago(imgs[i].created, ago, sizeof(ago));
                char *none[] = { NULL, NULL };
                char **names = imgs[i].names[0] ? imgs[i].names : none;
                for (char **p = names; p == names || *p; p++) {
                        if (want && (!*p || !image_name_match(*p, want)))
                                continue;
                        _cleanup_free_ char *repo = NULL, *tag = NULL;
                        if (*p)
                                split_name(*p, &repo, &tag);
                        else {
                                repo = xstrdup("<none>");
                                tag = xstrdup("<none>");
                        }
                        if (format) {
                                json_object *f = json_object_new_object();
                                json_object_object_add(f, "ID", json_object_new_string(id));
                                json_object_object_add(f, "Repository", json_object_new_string(repo));
                                json_object_object_add(f, "Tag", json_object_new_string(tag));
                                json_object_object_add(f, "Digest", json_object_new_string(imgs[i].digest));
                                json_object_object_add(f, "CreatedSince", json_object_new_string(ago));
                                char at[64];
                                time_t tt = (time_t)imgs[i].created;
                                struct tm tm;
                                gmtime_r(&tt, &tm);
                                strftime(at, sizeof(at), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
                                json_object_object_add(f, "CreatedAt", json_object_new_string(at));
                                json_object_object_add(f, "Size", json_object_new_string(size));
                                char *text = NULL, *err = NULL;
                                if (template_render(format, f, &text, &err) < 0) {
                                        rc = cli_error("images: template: %s", err ? err : "cannot render");
                                        free(err);
                                } else if (table)
                                        table_add_tabbed(lines, text);
                                else
                                        puts(text);
                                free(text);
                                json_object_put(f);
                                if (rc)
                                        break;
                        } else if (digests)
                                table_addf(t, repo, tag, imgs[i].digest, id, ago, size);
                        else
                                table_addf(t, repo, tag, id, ago, size);
                }
        }
        if (!quiet && !format)
                table_print(t, stdout, 1);
        table_free(t);
        if (table && rc == 0)
                table_print_tabbed(lines, stdout);
        table_free(lines);
        store_images_free(imgs, n);
        return rc;
}

int cmd_list(struct cli *c, int argc, char **argv)
{
        for (int i = 1; i < argc; i++)
                if (!strcmp(argv[i], "--images"))
                        return cmd_images(c, argc, argv);
        return cmd_ps(c, argc, argv);
}

int cmd_tag(struct cli *c, int argc, char **argv)
{
        if (argc != 3)
                return cli_usage_error("tag");
        store *s = cli_store(c);
        if (!s)
                return 1;
        char *err = NULL;
        int r = image_tag(s, argv[1], argv[2], &err);
        return r < 0 ? cli_fail(one_line(err), "tag: %s", strerror(-r)) : 0;
}

int cmd_rmi(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, {} };
        bool force = false;
        int o;
        opterr = 0; /* the one-line usage error replaces getopt's own message */
        while ((o = cli_getopt(argc, argv, "f", opts)) >= 0)
                if (o == 'f')
                        force = true;
                else
                        return cli_usage_error("rmi");
        if (optind >= argc)
                return cli_usage_error("rmi");
        store *s = cli_store(c);
        if (!s)
                return 1;
        int rc = 0;
        for (int i = optind; i < argc; i++) {
                char **untagged = NULL, *deleted = NULL, *err = NULL;
                int r = image_remove(s, argv[i], force, &untagged, &deleted, &err);
                if (r < 0) {
                        rc = cli_fail(one_line(err), "rmi %s: %s", argv[i], strerror(-r));
                        continue;
                }
                for (char **p = untagged; p && *p; p++) {
                        printf("Untagged: %s\n", *p);
                        free(*p);
                }
                free(untagged);
                if (deleted)
                        printf("Deleted: sha256:%s\n", deleted);
                free(deleted);
        }
        return rc;
}

static json_object *strv_json(char **v)
{
        if (!v)
                return NULL;
        json_object *a = json_object_new_array();
        for (char **p = v; *p; p++)
                json_object_array_add(a, json_object_new_string(*p));
        return a;
}

static json_object *inspect_one(store *s, const char *id)
{
        _cleanup_free_ char *info = NULL, *cfg_text = NULL, *man = NULL;
        _cleanup_free_ char *rel = xasprintf("images/%s/image.json", id);
        if (util_read_file_at(store_dirfd(s), rel, 16 << 20, &info, NULL) < 0)
                return NULL;
        json_object *ij = json_tokener_parse(info);
        if (!ij)
                return NULL;
        uint8_t cd[DIGEST_LEN], md[DIGEST_LEN];
        size_t clen = 0, mlen = 0;
        json_object *v;
        digest_parse_hex(id, cd);
        if (store_blob_get(s, cd, &cfg_text, &clen) < 0) {
                json_object_put(ij);
                return NULL;
        }
        if (json_object_object_get_ex(ij, "digest", &v) && digest_parse(json_object_get_string(v), md) == 0)
                store_blob_get(s, md, &man, &mlen);
        struct image_config cfg;
        if (image_config_parse(cfg_text, clen, &cfg) < 0) {
                json_object_put(ij);
                return NULL;
        }
        json_object *o = json_object_new_object();
        char idstr[DIGEST_STR_LEN + 8];
        snprintf(idstr, sizeof(idstr), "sha256:%s", id);
        json_object_object_add(o, "Id", json_object_new_string(idstr));
        json_object_object_add(o, "Digest", json_object_object_get_ex(ij, "digest", &v) ? json_object_get(v) : NULL);
        /* names */
        struct store_ref *refs;
        size_t n_refs;
        json_object *tags = json_object_new_array(), *rdig = json_object_new_array();
        if (store_refs_load(s, &refs, &n_refs) >= 0) {
                for (size_t i = 0; i < n_refs; i++)
                        if (!strcmp(refs[i].id, id)) {
                                json_object_array_add(tags, json_object_new_string(refs[i].name));
                                _cleanup_free_ char *repo = NULL, *tag = NULL;
                                split_name(refs[i].name, &repo, &tag);
                                if (json_object_object_get_ex(ij, "digest", &v)) {
                                        _cleanup_free_ char *rd = xasprintf("%s@%s", repo, json_object_get_string(v));
                                        json_object_array_add(rdig, json_object_new_string(rd));
                                }
                        }
                store_refs_free(refs, n_refs);
        }
        json_object_object_add(o, "RepoTags", tags);
        json_object_object_add(o, "RepoDigests", rdig);
        if (cfg.has_created) {
                char buf[64];
                time_t t = (time_t)cfg.created;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
                json_object_object_add(o, "Created", json_object_new_string(buf));
        }
        json_object_object_add(o, "Os", json_object_new_string(cfg.os ? cfg.os : ""));
        json_object_object_add(o, "Architecture", json_object_new_string(cfg.architecture ? cfg.architecture : ""));
        if (cfg.variant)
                json_object_object_add(o, "Variant", json_object_new_string(cfg.variant));
        json_object_object_add(o, "Size", json_object_object_get_ex(ij, "size", &v) ? json_object_get(v) : NULL);
        json_object *c = json_object_new_object();
        json_object_object_add(c, "User", json_object_new_string(cfg.user ? cfg.user : ""));
        json_object_object_add(c, "Env", strv_json(cfg.env));
        json_object_object_add(c, "Entrypoint", strv_json(cfg.entrypoint));
        json_object_object_add(c, "Cmd", strv_json(cfg.cmd));
        json_object_object_add(c, "WorkingDir", json_object_new_string(cfg.working_dir ? cfg.working_dir : ""));
        json_object *labels = json_object_new_object();
        for (size_t i = 0; i < cfg.n_labels; i++)
                json_object_object_add(labels, cfg.label_keys[i], json_object_new_string(cfg.label_values[i]));
        json_object_object_add(c, "Labels", labels);
        if (cfg.stop_signal)
                json_object_object_add(c, "StopSignal", json_object_new_string(cfg.stop_signal));
        json_object_object_add(o, "Config", c);
        json_object *rootfs = json_object_new_object();
        json_object_object_add(rootfs, "Type", json_object_new_string("layers"));
        json_object_object_add(rootfs, "Layers", json_object_object_get_ex(ij, "layers", &v) ? json_object_get(v) : NULL);
        json_object_object_add(o, "RootFS", rootfs);
        /* layer blobs with their sizes, from the manifest */
        struct manifest m;
        if (man && manifest_parse(man, mlen, &m) >= 0) {
                json_object *ls = json_object_new_array();
                for (size_t i = 0; i < m.n_layers; i++) {
                        json_object *l = json_object_new_object();
                        char ds[DIGEST_STR_LEN];
                        digest_to_str(m.layers[i].digest, ds);
                        json_object_object_add(l, "Digest", json_object_new_string(ds));
                        json_object_object_add(l, "MediaType", json_object_new_string(m.layers[i].media_type));
                        json_object_object_add(l, "Size", json_object_new_int64(m.layers[i].size));
                        json_object_array_add(ls, l);
                }
                json_object_object_add(o, "Layers", ls);
                manifest_free(&m);
        }
        image_config_free(&cfg);
        json_object_put(ij);
        return o;
}

int cmd_inspect(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "format", required_argument, NULL, 'f' },
                                              { "type", required_argument, NULL, 'T' }, {} };
        const char *format = NULL, *type = NULL;
        int opt;
        while ((opt = cli_getopt(argc, argv, "f:", opts)) >= 0)
                if (opt == 'f')
                        format = optarg;
                else if (opt == 'T')
                        type = optarg;
                else
                        return cli_usage_error("inspect");
        if (optind >= argc)
                return cli_usage_error("inspect");
        if (type && strcmp(type, "image") != 0 && strcmp(type, "container") != 0)
                return cli_error("inspect: unknown --type %s (image, container)", type);
        bool images = !type || !strcmp(type, "image"), containers = !type || !strcmp(type, "container");
        store *s = cli_store(c);
        if (!s)
                return 1;
        json_object *arr = json_object_new_array();
        int rc = 0;
        for (int i = optind; i < argc; i++) {
                char id[DIGEST_HEX_LEN + 1];
                json_object *o = images && store_resolve_image(s, argv[i], id) >= 0 ? inspect_one(s, id) : NULL;
                if (!o && containers)
                        o = cli_container_inspect(s, argv[i]);
                if (!o) {
                        char cid[CONTAINER_ID_LEN + 1];
                        if (containers && container_resolve(s, argv[i], cid) == -ENOTUNIQ)
                                rc = cli_error("inspect: multiple containers match %s", argv[i]);
                        else
                                rc = cli_error("inspect: no such %s: %s", !type ? "image or container" : type, argv[i]);
                        continue;
                }
                if (format) {
                        /* one line each, as docker prints them */
                        char *text = NULL, *err = NULL;
                        if (template_render(format, o, &text, &err) < 0) {
                                json_object_put(o);
                                json_object_put(arr);
                                cli_error("inspect: template: %s", err ? err : "cannot render");
                                free(err);
                                return 1;
                        }
                        puts(text);
                        free(text);
                        json_object_put(o);
                        continue;
                }
                json_object_array_add(arr, o);
        }
        if (!format && (json_object_array_length(arr) > 0 || rc == 0))
                puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(arr);
        return rc;
}

int cmd_export(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "output", required_argument, NULL, 'o' }, {} };
        const char *output = NULL;
        int o;
        opterr = 0; /* the one-line usage error replaces getopt's own message */
        while ((o = cli_getopt(argc, argv, "o:", opts)) >= 0)
                if (o == 'o')
                        output = optarg;
                else
                        return cli_usage_error("export");
        if (optind + 1 != argc)
                return cli_usage_error("export");
        store *s = cli_store(c);
        if (!s)
                return 1;
        /* a container's tree, as docker's export; else an image's */
        char cid[CONTAINER_ID_LEN + 1], id[DIGEST_HEX_LEN + 1];
        int cr = container_resolve(s, argv[optind], cid);
        if (cr == -ENOTUNIQ)
                return cli_error("export: multiple containers match %s", argv[optind]);
        if (cr < 0 && store_resolve_image(s, argv[optind], id) < 0)
                return cli_error("export: no such container or image: %s", argv[optind]);
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *tmp = NULL, *real = NULL;
        if (output) {
                /* a regular file, or none yet (as docker's): never a device, a fifo or a directory
                 * replaced by the rename below; a symlink's target is the file written */
                struct stat st;
                if (stat(output, &st) == 0) {
                        if (!S_ISREG(st.st_mode))
                                return cli_error("export: invalid output path %s: must be a regular file", output);
                        real = realpath(output, NULL);
                        if (!real)
                                return cli_error("export: %s: %m", output);
                        output = real;
                } else if (errno != ENOENT) {
                        return cli_error("export: %s: %m", output);
                }
                /* write next to the target and rename, so a failed export leaves no partial file */
                tmp = xasprintf("%s.tmp-%d", output, (int)getpid());
                fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0)
                        return cli_error("export: create %s: %m", output);
        } else {
                if (isatty(STDOUT_FILENO))
                        return cli_error("export: refusing to write a tar stream to a terminal (use -o FILE or a pipe)");
                fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        }
        char *err = NULL;
        int r = cr == 0 ? cli_container_export(s, cid, fd, &err) : export_image(s, id, fd, &err);
        if (r < 0) {
                if (tmp)
                        unlink(tmp);
                return cli_fail(one_line(err), "export: %s", strerror(-r));
        }
        if (tmp && rename(tmp, output) < 0) {
                unlink(tmp);
                return cli_error("export: rename to %s: %m", output);
        }
        return 0;
}

int cmd_prune(struct cli *c, int argc, char **argv)
{
        if (argc != 1 && !(argc == 2 && (!strcmp(argv[1], "-f") || !strcmp(argv[1], "--force"))))
                return cli_usage_error("prune");
        store *s = cli_store(c);
        if (!s)
                return 1;
        struct prune_result res;
        int r = store_prune(s, &res);
        if (r < 0)
                return cli_error("prune: %s", strerror(-r));
        char size[32];
        fmt_size(res.bytes, size, sizeof(size));
        if (!c->quiet)
                printf("Deleted %llu image%s, %llu layer%s, %llu object%s, %llu blob%s\nTotal reclaimed space: %s\n",
                       (unsigned long long)res.images, res.images == 1 ? "" : "s", (unsigned long long)res.layers,
                       res.layers == 1 ? "" : "s", (unsigned long long)res.objects, res.objects == 1 ? "" : "s",
                       (unsigned long long)res.blobs, res.blobs == 1 ? "" : "s", size);
        return 0;
}

int cmd_system(struct cli *c, int argc, char **argv)
{
        bool verbose = false;
        if (argc < 2 || strcmp(argv[1], "df") != 0)
                return cli_usage_error("system");
        for (int i = 2; i < argc; i++)
                if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
                        verbose = true;
                else
                        return cli_usage_error("system");
        store *s = cli_store(c);
        if (!s)
                return 1;
        struct df_result df;
        int r = store_df(s, &df);
        if (r < 0)
                return cli_error("system df: %s", strerror(-r));
        char logical[32], disk[32], saved[32];
        fmt_size(df.logical_bytes, logical, sizeof(logical));
        fmt_size(df.object_bytes, disk, sizeof(disk));
        fmt_size(df.logical_bytes > df.object_bytes ? df.logical_bytes - df.object_bytes : 0, saved, sizeof(saved));
        char n_img[24], n_lay[24], n_ctr[24], n_obj[24];
        snprintf(n_img, sizeof(n_img), "%llu", (unsigned long long)df.images);
        snprintf(n_lay, sizeof(n_lay), "%llu", (unsigned long long)df.layers);
        snprintf(n_ctr, sizeof(n_ctr), "%llu", (unsigned long long)df.containers);
        snprintf(n_obj, sizeof(n_obj), "%llu", (unsigned long long)df.objects);
        static const char *const cols[] = { "TYPE", "TOTAL", "SIZE", "ON DISK", "SAVED BY DEDUP", NULL };
        struct table *t = table_new(cols);
        table_addf(t, "Images", n_img, logical, disk, saved);
        table_addf(t, "Layers", n_lay, "", "", "");
        table_addf(t, "Containers", n_ctr, "", "", "");
        table_addf(t, "Objects", n_obj, "", disk, "");
        table_print(t, stdout, 1);
        table_free(t);
        if (verbose || df.n_images) {
                static const char *const icols[] = { "IMAGE", "IMAGE ID", "SIZE", "SHARED", "UNIQUE", NULL };
                t = table_new(icols);
                for (size_t i = 0; i < df.n_images; i++) {
                        struct df_image *im = &df.per_image[i];
                        char a[32], b[32], u[32], id[16];
                        fmt_size(im->size, a, sizeof(a));
                        fmt_size(im->shared, b, sizeof(b));
                        fmt_size(im->unique, u, sizeof(u));
                        snprintf(id, sizeof(id), "%.12s", im->id);
                        table_addf(t, im->names && im->names[0] ? im->names[0] : "<none>", id, a, b, u);
                }
                printf("\n");
                table_print(t, stdout, 1);
                table_free(t);
        }
        df_result_free(&df);
        return 0;
}
