/* SPDX-License-Identifier: Apache-2.0 */
/* Container commands: create, run, start, ps, logs, wait, stop, kill, rm, exec; and the
 * container half of inspect. Exit statuses follow docker: 125 when ctfs itself fails, else
 * the container's own (126 cannot execute, 127 not found, 128+N killed by signal N). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "cli.h"
#include "export.h"
#include "table.h"
#include "template.h"
#include "container.h"
#include "daemon.h"
#include "import.h"
#include "manifest.h"
#include "reference.h"
#include "registry.h"
#include "run.h"
#include "spec.h"
#include "util.h"

#define EXIT_CTFS 125

static void strv_push(char ***v, size_t *n, const char *s)
{
        *v = xrealloc(*v, (*n + 2) * sizeof(char *));
        (*v)[(*n)++] = xstrdup(s);
        (*v)[*n] = NULL;
}

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

/* ---- the store's mount ---- */

static int ensure_mounted(store *s)
{
        if (daemon_find(s, NULL) == 0)
                return 0;
        const char *env = getenv("CTFS_MNT");
        _cleanup_free_ char *mnt = env && *env ? xstrdup(env) : xasprintf("%s/mnt", store_root(s));
        fprintf(stderr, "ctfs: the store is not mounted: mounting it at %s\n", mnt);
        struct daemon_options o = { 0 };
        char *err = NULL;
        int r = daemon_mount(s, mnt, &o, &err);
        if (r < 0 && r != -EBUSY) {
                cli_fail(err, "mount %s: %s", mnt, strerror(-r));
                return r;
        }
        free(err);
        return 0;
}

/* `export CONTAINER`: its view (the store mounted if it is not) as a tar stream on fd. */
int cli_container_export(store *s, const char *id, int fd, char **ret_error)
{
        if (ensure_mounted(s) < 0)
                return -ENOTCONN;
        _cleanup_free_ char *root = NULL;
        int r = run_rootfs(s, id, &root);
        if (r < 0) {
                *ret_error = xasprintf("export: the container's view: %s", strerror(-r));
                return r;
        }
        _cleanup_close_ int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                r = -errno;
                *ret_error = xasprintf("export: %s: %s", root, strerror(errno));
                return r;
        }
        return export_dir(dfd, fd, ret_error);
}

/* ---- images ---- */

/* The image id for a reference, pulling it when it is missing (local transports, registries). */
static int image_for_run(struct cli *c, store *s, const char *what, char id[DIGEST_HEX_LEN + 1])
{
        if (store_resolve_image(s, what, id) == 0)
                return 0;
        struct reference ref;
        if (reference_parse(what, &ref) < 0) {
                cli_error("invalid reference format: %s", what);
                return -EINVAL;
        }
        struct import_result res = { 0 };
        char *err = NULL;
        int r;
        if (ref.transport == REF_DOCKER) {
                _cleanup_free_ char *name = reference_to_string(&ref);
                fprintf(stderr, "Unable to find image '%s' locally\n", name);
                struct registry_options ro = { 0 };
                r = cli_registry_pull(c, &ref, &ro, &res, &err);
                if (r < 0) {
                        cli_error("pull %s: %s", name, err ? err : strerror(-r));
                        free(err);
                }
        } else {
                r = import_pull(s, &ref, &res, &err);
                if (r < 0)
                        cli_fail(err, "pull %s: %s", what, strerror(-r));
        }
        reference_free(&ref);
        if (r < 0)
                return r;
        if (res.n_images == 0) {
                import_result_free(&res);
                cli_error("pull %s: no image", what);
                return -ENOENT;
        }
        memcpy(id, res.images[0].id, DIGEST_HEX_LEN + 1);
        import_result_free(&res);
        return 0;
}

static int load_image_config(store *s, const char *id, struct image_config *ret)
{
        uint8_t d[DIGEST_LEN];
        if (digest_parse_hex(id, d) < 0)
                return -EINVAL;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = store_blob_get(s, d, &text, &len);
        if (r < 0)
                return r;
        return image_config_parse(text, len, ret);
}

/* ---- create / run ---- */

struct create_opts {
        struct container_config cfg;
        char **env;
        size_t n_env;
        char **cap_add, **cap_drop;
        size_t n_add, n_drop;
        const char *entrypoint, *workdir, *user;
        bool detach;
        bool interactive;
        char *image;
        char **cmd;
};

static const char *lookup_env(const char *k)
{
        return getenv(k);
}

enum {
        OPT_NAME = 1000, OPT_RM, OPT_ENV_FILE, OPT_ENTRYPOINT, OPT_HOSTNAME, OPT_NETWORK, OPT_MEMORY,
        OPT_PIDS, OPT_CPUS, OPT_READ_ONLY, OPT_CAP_ADD, OPT_CAP_DROP, OPT_SECURITY_OPT, OPT_PRIVILEGED,
        OPT_INIT,
};

/* A boolean flag: --flag, --flag=true or --flag=false (docker takes them all). */
static bool flag_value(const char *cmd, const char *name, bool *ret)
{
        if (!optarg || !strcmp(optarg, "true") || !strcmp(optarg, "1"))
                *ret = true;
        else if (!strcmp(optarg, "false") || !strcmp(optarg, "0"))
                *ret = false;
        else {
                cli_error("%s: invalid value for --%s: %s (true or false)", cmd, name, optarg);
                return false;
        }
        return true;
}

/* Parse create/run options; returns 0, or the exit status after reporting. */
static int parse_create(const char *cmd, int argc, char **argv, struct create_opts *o)
{
        static const struct option opts[] = {
                { "name", required_argument, NULL, OPT_NAME },
                { "rm", optional_argument, NULL, OPT_RM },
                { "detach", optional_argument, NULL, 'd' },
                { "interactive", optional_argument, NULL, 'i' },
                { "tty", optional_argument, NULL, 't' },
                { "env", required_argument, NULL, 'e' },
                { "env-file", required_argument, NULL, OPT_ENV_FILE },
                { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, 'u' },
                { "entrypoint", required_argument, NULL, OPT_ENTRYPOINT },
                { "hostname", required_argument, NULL, 'h' },
                { "network", required_argument, NULL, OPT_NETWORK },
                { "net", required_argument, NULL, OPT_NETWORK },
                { "memory", required_argument, NULL, 'm' },
                { "pids-limit", required_argument, NULL, OPT_PIDS },
                { "cpus", required_argument, NULL, OPT_CPUS },
                { "read-only", optional_argument, NULL, OPT_READ_ONLY },
                { "volume", required_argument, NULL, 'v' },
                { "cap-add", required_argument, NULL, OPT_CAP_ADD },
                { "cap-drop", required_argument, NULL, OPT_CAP_DROP },
                { "security-opt", required_argument, NULL, OPT_SECURITY_OPT },
                { "privileged", optional_argument, NULL, OPT_PRIVILEGED },
                { "init", optional_argument, NULL, OPT_INIT },
                {},
        };
        struct container_config *cfg = &o->cfg;
        int opt;
        char *err = NULL;
        while ((opt = cli_getopt(argc, argv, "+dite:w:u:h:m:v:", opts)) >= 0) {
                switch (opt) {
                case OPT_NAME:
                        free(cfg->name);
                        cfg->name = xstrdup(optarg);
                        break;
                case OPT_RM:
                        if (!flag_value(cmd, "rm", &cfg->auto_remove))
                                return EXIT_CTFS;
                        break;
                case 'd':
                        if (!flag_value(cmd, "detach", &o->detach))
                                return EXIT_CTFS;
                        break;
                case 'i':
                        if (!flag_value(cmd, "interactive", &o->interactive))
                                return EXIT_CTFS;
                        break;
                case 't':
                        if (!flag_value(cmd, "tty", &cfg->tty))
                                return EXIT_CTFS;
                        break;
                case 'e': {
                        char **tmp = NULL;
                        if (spec_env_add(&tmp, optarg, lookup_env) < 0) {
                                strv_free(tmp);
                                cli_error("%s: invalid environment variable: %s", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        for (char **p = tmp; p && *p; p++)
                                strv_push(&o->env, &o->n_env, *p);
                        strv_free(tmp);
                        break;
                }
                case OPT_ENV_FILE: {
                        _cleanup_free_ char *text = NULL;
                        int r = util_read_file_at(AT_FDCWD, optarg, 16 << 20, &text, NULL);
                        if (r < 0) {
                                cli_error("%s: open env file %s: %s", cmd, optarg, strerror(-r));
                                return EXIT_CTFS;
                        }
                        char **tmp = NULL;
                        if (spec_env_file(&tmp, text, lookup_env, &err) < 0) {
                                cli_error("%s: %s: %s", cmd, optarg, err);
                                free(err);
                                strv_free(tmp);
                                return EXIT_CTFS;
                        }
                        for (char **p = tmp; p && *p; p++)
                                strv_push(&o->env, &o->n_env, *p);
                        strv_free(tmp);
                        break;
                }
                case 'w':
                        o->workdir = optarg;
                        break;
                case 'u':
                        o->user = optarg;
                        break;
                case OPT_ENTRYPOINT:
                        o->entrypoint = optarg;
                        break;
                case 'h':
                        free(cfg->hostname);
                        cfg->hostname = xstrdup(optarg);
                        break;
                case OPT_NETWORK:
                        if (!strcmp(optarg, "host") || !strcmp(optarg, "default"))
                                cfg->network = CONTAINER_NET_HOST;
                        else if (!strcmp(optarg, "none"))
                                cfg->network = CONTAINER_NET_NONE;
                        else {
                                cli_error("%s: unsupported network %s (host, none)", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        break;
                case 'm':
                        if (spec_parse_memory(optarg, &cfg->memory) < 0) {
                                cli_error("%s: invalid --memory %s (e.g. 64m, 1g)", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        /* (0: no limit) docker's minimum: less cannot even start a process */
                        if (cfg->memory > 0 && cfg->memory < 6 << 20) {
                                cli_error("%s: --memory %s: the minimum memory limit is 6MB", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        break;
                case OPT_PIDS: {
                        char *end;
                        long long v = strtoll(optarg, &end, 10);
                        if (*end || !*optarg || v < -1) {
                                cli_error("%s: invalid --pids-limit %s", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        cfg->pids_limit = v < 0 ? 0 : v;
                        break;
                }
                case OPT_CPUS: {
                        if (spec_parse_cpus(optarg, &cfg->nano_cpus) < 0) {
                                cli_error("%s: invalid --cpus %s", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        long n = sysconf(_SC_NPROCESSORS_ONLN);
                        if (n > 0 && cfg->nano_cpus > (int64_t)n * 1000000000) {
                                cli_error("%s: --cpus %s: the range of CPUs is from 0.01 to %ld.00, as there %s only %ld "
                                          "CPU%s available",
                                          cmd, optarg, n, n == 1 ? "is" : "are", n, n == 1 ? "" : "s");
                                return EXIT_CTFS;
                        }
                        break;
                }
                case OPT_READ_ONLY:
                        if (!flag_value(cmd, "read-only", &cfg->read_only))
                                return EXIT_CTFS;
                        break;
                case 'v': {
                        struct container_volume v;
                        if (spec_parse_volume(optarg, &v, &err) < 0) {
                                cli_error("%s: %s", cmd, err);
                                free(err);
                                return EXIT_CTFS;
                        }
                        char *real = realpath(v.host, NULL);
                        if (!real) {
                                cli_error("%s: volume %s: %m", cmd, v.host);
                                free(v.host);
                                free(v.ctr);
                                return EXIT_CTFS;
                        }
                        free(v.host);
                        v.host = real;
                        cfg->volumes = xrealloc(cfg->volumes, (cfg->n_volumes + 1) * sizeof(v));
                        cfg->volumes[cfg->n_volumes++] = v;
                        break;
                }
                case OPT_CAP_ADD:
                case OPT_CAP_DROP:
                        if (strcasecmp(optarg, "ALL") != 0 && caps_from_name(optarg) < 0) {
                                cli_error("%s: unknown capability: %s", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        if (opt == OPT_CAP_ADD)
                                strv_push(&o->cap_add, &o->n_add, optarg);
                        else
                                strv_push(&o->cap_drop, &o->n_drop, optarg);
                        break;
                case OPT_SECURITY_OPT:
                        if (!strcmp(optarg, "no-new-privileges") || !strcmp(optarg, "no-new-privileges:true") ||
                            !strcmp(optarg, "no-new-privileges=true"))
                                cfg->no_new_privileges = true;
                        else if (!strcmp(optarg, "no-new-privileges:false") || !strcmp(optarg, "no-new-privileges=false"))
                                cfg->no_new_privileges = false;
                        else {
                                cli_error("%s: unsupported --security-opt %s (no-new-privileges)", cmd, optarg);
                                return EXIT_CTFS;
                        }
                        break;
                case OPT_PRIVILEGED:
                        if (!flag_value(cmd, "privileged", &cfg->privileged))
                                return EXIT_CTFS;
                        break;
                case OPT_INIT:
                        if (!flag_value(cmd, "init", &cfg->init))
                                return EXIT_CTFS;
                        break;
                default:
                        cli_usage_error(cmd);
                        return EXIT_CTFS;
                }
        }
        if (optind >= argc) {
                cli_usage_error(cmd);
                return EXIT_CTFS;
        }
        if (cfg->name && !container_name_is_valid(cfg->name)) {
                cli_error("%s: invalid container name \"%s\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", cmd, cfg->name);
                return EXIT_CTFS;
        }
        o->image = argv[optind];
        o->cmd = argc > optind + 1 ? argv + optind + 1 : NULL;
        cfg->interactive = o->interactive;
        cfg->cap_add = TAKE_PTR(o->cap_add);
        cfg->cap_drop = TAKE_PTR(o->cap_drop);
        return 0;
}

static void create_opts_free(struct create_opts *o)
{
        container_config_free(&o->cfg);
        strv_free(o->env);
        strv_free(o->cap_add);
        strv_free(o->cap_drop);
}

/* Everything create does; 0 and the id in o->cfg.id, or the exit status. */
static int do_create(struct cli *c, const char *cmd, struct create_opts *o)
{
        store *s = cli_store(c);
        if (!s)
                return EXIT_CTFS;
        char id[DIGEST_HEX_LEN + 1];
        if (image_for_run(c, s, o->image, id) < 0)
                return EXIT_CTFS;
        struct image_config img = { 0 };
        int r = load_image_config(s, id, &img);
        if (r < 0) {
                cli_error("%s: image %.12s: config: %s", cmd, id, strerror(-r));
                return EXIT_CTFS;
        }
        struct container_config *cfg = &o->cfg;
        memcpy(cfg->image, id, sizeof(cfg->image));
        cfg->image_ref = xstrdup(o->image);
        if (img.stop_signal)
                cfg->stop_signal = xstrdup(img.stop_signal);
        struct spec_overrides ov = {
                .cmd = o->cmd, .entrypoint = o->entrypoint, .env = o->env, .workdir = o->workdir,
                .user = o->user, .hostname = cfg->hostname, .tty = cfg->tty,
        };
        char *err = NULL;
        /* HOSTNAME in the env needs the hostname, which defaults to the id: set after create */
        r = spec_build_process(&img, &ov, cfg, &err);
        image_config_free(&img);
        if (r < 0) {
                cli_error("%s: %s", cmd, err);
                free(err);
                return EXIT_CTFS;
        }
        if (ensure_mounted(s) < 0)
                return EXIT_CTFS;
        /* the name may be held by a --rm container its killed `run` left */
        char held[CONTAINER_ID_LEN + 1];
        if (cfg->name && container_resolve(s, cfg->name, held) == 0)
                run_reap(s, held);
        r = container_create(s, cfg, &err);
        if (r < 0) {
                cli_fail(err, "%s: %s", cmd, strerror(-r));
                return EXIT_CTFS;
        }
        return 0;
}

int cmd_create(struct cli *c, int argc, char **argv)
{
        struct create_opts o = { 0 };
        int rc = parse_create("create", argc, argv, &o);
        if (rc == 0)
                rc = do_create(c, "create", &o);
        if (rc == 0)
                printf("%s\n", o.cfg.id);
        create_opts_free(&o);
        return rc;
}

int cmd_run(struct cli *c, int argc, char **argv)
{
        struct create_opts o = { 0 };
        int rc = parse_create("run", argc, argv, &o);
        if (rc == 0)
                rc = do_create(c, "run", &o);
        if (rc != 0) {
                create_opts_free(&o);
                return rc;
        }
        store *s = cli_store(c);
        struct run_options ro = { .attach = !o.detach, .interactive = o.interactive };
        int code = EXIT_CTFS;
        char *err = NULL;
        fflush(stdout);
        int r = run_start(s, o.cfg.id, &ro, &code, &err);
        if (r < 0 || err) {
                /* exec errors (126, 127) are the container's failure, reported like docker */
                cli_fail(err, "run: %s", strerror(-r));
                create_opts_free(&o);
                return code ? code : EXIT_CTFS;
        }
        if (o.detach)
                printf("%s\n", o.cfg.id);
        create_opts_free(&o);
        return code;
}

/* ---- start / stop / kill / rm / wait / logs ---- */

static int resolve(store *s, const char *cmd, const char *what, char id[CONTAINER_ID_LEN + 1])
{
        int r = container_resolve(s, what, id);
        if (r == -ENOTUNIQ)
                cli_error("%s: multiple containers match %s", cmd, what);
        else if (r < 0)
                cli_error("%s: no such container: %s", cmd, what);
        return r;
}

int cmd_start(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "attach", no_argument, NULL, 'a' },
                                              { "interactive", no_argument, NULL, 'i' }, {} };
        bool attach = false, interactive = false;
        int o;
        while ((o = cli_getopt(argc, argv, "ai", opts)) >= 0)
                if (o == 'a')
                        attach = true;
                else if (o == 'i')
                        interactive = true;
                else
                        return cli_usage_error("start");
        attach = attach || interactive; /* docker: start -i attaches */
        if (optind >= argc)
                return cli_usage_error("start");
        if (attach && argc - optind > 1)
                return cli_error("start: you cannot start and attach multiple containers at once");
        store *s = cli_store(c);
        if (!s)
                return 1;
        if (ensure_mounted(s) < 0)
                return 1;
        int rc = 0;
        for (int i = optind; i < argc; i++) {
                char id[CONTAINER_ID_LEN + 1];
                if (resolve(s, "start", argv[i], id) < 0) {
                        rc = 1;
                        continue;
                }
                struct run_options ro = { .attach = attach, .interactive = interactive };
                int code = 0;
                char *err = NULL;
                int r = run_start(s, id, &ro, &code, &err);
                if (r == -EBUSY && !attach) {
                        free(err); /* already running: docker start says nothing either */
                        printf("%s\n", argv[i]);
                        continue;
                }
                if (r < 0 || err) {
                        cli_fail(err, "start %s: %s", argv[i], strerror(-r));
                        rc = attach ? (code ? code : EXIT_CTFS) : 1;
                        continue;
                }
                if (attach)
                        return code;
                printf("%s\n", argv[i]);
        }
        return rc;
}

/* stop, kill and rm: the operation on each named container in turn; the name is printed when
 * it worked, one error line when it did not (special_errno gets special_msg, ignore_errno is
 * success); the exit status is 1 when any failed. */
struct each_op {
        const char *verb;
        int (*op)(store *s, const char *id, const void *arg);
        const void *arg;
        int ignore_errno, special_errno;
        const char *special_msg; /* printf format taking the name the user gave */
};

static int for_each_container(store *s, int argc, char **argv, const struct each_op *e)
{
        int rc = 0;
        for (int i = optind; i < argc; i++) {
                char id[CONTAINER_ID_LEN + 1];
                if (resolve(s, e->verb, argv[i], id) < 0) {
                        rc = 1;
                        continue;
                }
                int r = e->op(s, id, e->arg);
                if (r < 0 && r != -e->ignore_errno) {
                        if (r == -e->special_errno && e->special_msg) {
                                _cleanup_free_ char *m = xasprintf(e->special_msg, argv[i]);
                                rc = cli_error("%s %s: %s", e->verb, argv[i], m);
                        } else
                                rc = cli_error("%s %s: %s", e->verb, argv[i], strerror(-r));
                        continue;
                }
                printf("%s\n", argv[i]);
        }
        return rc;
}

static int op_stop(store *s, const char *id, const void *arg) { return run_stop(s, id, *(const int *)arg); }
static int op_kill(store *s, const char *id, const void *arg) { return run_kill(s, id, *(const int *)arg); }
static int op_rm(store *s, const char *id, const void *arg) { return run_remove(s, id, *(const bool *)arg); }

int cmd_stop(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "time", required_argument, NULL, 't' },
                                              { "timeout", required_argument, NULL, 't' }, {} };
        int timeout = 10, o;
        while ((o = cli_getopt(argc, argv, "t:", opts)) >= 0) {
                if (o != 't')
                        return cli_usage_error("stop");
                char *end;
                long v = strtol(optarg, &end, 10);
                if (*end || !*optarg || v < -1 || v > 86400 * 365)
                        return cli_error("stop: invalid timeout %s", optarg);
                timeout = (int)v; /* -1: wait for as long as it takes, as docker's */
        }
        if (optind >= argc)
                return cli_usage_error("stop");
        store *s = cli_store(c);
        if (!s)
                return 1;
        const struct each_op e = { .verb = "stop", .op = op_stop, .arg = &timeout, .ignore_errno = ENOENT };
        return for_each_container(s, argc, argv, &e);
}

int cmd_kill(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "signal", required_argument, NULL, 's' }, {} };
        int sig = SIGKILL, o;
        while ((o = cli_getopt(argc, argv, "s:", opts)) >= 0) {
                if (o != 's')
                        return cli_usage_error("kill");
                sig = spec_parse_signal(optarg);
                if (sig < 0)
                        return cli_error("kill: invalid signal: %s", optarg);
        }
        if (optind >= argc)
                return cli_usage_error("kill");
        store *s = cli_store(c);
        if (!s)
                return 1;
        const struct each_op e = { .verb = "kill", .op = op_kill, .arg = &sig, .special_errno = ESRCH,
                                   .special_msg = "container %s is not running" };
        return for_each_container(s, argc, argv, &e);
}

int cmd_rm(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, {} };
        bool force = false;
        int o;
        while ((o = cli_getopt(argc, argv, "f", opts)) >= 0)
                if (o == 'f')
                        force = true;
                else
                        return cli_usage_error("rm");
        if (optind >= argc)
                return cli_usage_error("rm");
        store *s = cli_store(c);
        if (!s)
                return 1;
        const struct each_op e = { .verb = "rm", .op = op_rm, .arg = &force, .special_errno = EBUSY,
                                   .special_msg = "cannot remove a running container: stop it first or use rm -f" };
        return for_each_container(s, argc, argv, &e);
}

int cmd_wait(struct cli *c, int argc, char **argv)
{
        if (argc < 2)
                return cli_usage_error("wait");
        store *s = cli_store(c);
        if (!s)
                return 1;
        int rc = 0;
        for (int i = 1; i < argc; i++) {
                char id[CONTAINER_ID_LEN + 1];
                if (resolve(s, "wait", argv[i], id) < 0) {
                        rc = 1;
                        continue;
                }
                int code = 0;
                int r = run_wait(s, id, &code);
                if (r == -ENOENT) {
                        rc = cli_error("wait: no such container: %s", argv[i]);
                        continue;
                }
                if (r < 0) {
                        rc = cli_error("wait %s: %s", argv[i], strerror(-r));
                        continue;
                }
                printf("%d\n", code);
                fflush(stdout);
        }
        return rc;
}

int cmd_logs(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "follow", no_argument, NULL, 'f' },
                                              { "tail", required_argument, NULL, 'n' }, {} };
        bool follow = false;
        long tail = -1;
        int o;
        while ((o = cli_getopt(argc, argv, "fn:", opts)) >= 0)
                if (o == 'f')
                        follow = true;
                else if (o == 'n') {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (!strcmp(optarg, "all") || !strcmp(optarg, "-1"))
                                tail = -1;
                        else if (*end || !*optarg || v < 0)
                                return cli_error("logs: invalid --tail %s (a number of lines, or all)", optarg);
                        else
                                tail = v;
                } else
                        return cli_usage_error("logs");
        if (optind + 1 != argc)
                return cli_usage_error("logs");
        store *s = cli_store(c);
        if (!s)
                return 1;
        char id[CONTAINER_ID_LEN + 1];
        if (resolve(s, "logs", argv[optind], id) < 0)
                return 1;
        fflush(stdout);
        int r = run_logs(s, id, STDOUT_FILENO, STDERR_FILENO, follow, tail);
        if (r < 0)
                return cli_error("logs %s: %s", argv[optind], strerror(-r));
        return 0;
}

/* ---- exec ---- */

int cmd_exec(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "interactive", no_argument, NULL, 'i' }, { "tty", no_argument, NULL, 't' },
                { "env", required_argument, NULL, 'e' },   { "workdir", required_argument, NULL, 'w' },
                { "user", required_argument, NULL, 'u' },  {},
        };
        struct run_exec_options eo = { 0 };
        char **env = NULL;
        size_t n_env = 0;
        int o;
        while ((o = cli_getopt(argc, argv, "+ite:w:u:", opts)) >= 0) {
                switch (o) {
                case 'i':
                        eo.interactive = true;
                        break;
                case 't':
                        eo.tty = true;
                        break;
                case 'e': {
                        char **tmp = NULL;
                        if (spec_env_add(&tmp, optarg, lookup_env) < 0) {
                                strv_free(tmp);
                                strv_free(env);
                                cli_error("exec: invalid environment variable: %s", optarg);
                                return EXIT_CTFS;
                        }
                        for (char **p = tmp; p && *p; p++)
                                strv_push(&env, &n_env, *p);
                        strv_free(tmp);
                        break;
                }
                case 'w':
                        if (optarg[0] != '/') {
                                strv_free(env);
                                cli_error("exec: the working directory '%s' is invalid, it needs to be an absolute path", optarg);
                                return EXIT_CTFS;
                        }
                        eo.cwd = optarg;
                        break;
                case 'u':
                        eo.user = optarg;
                        break;
                default:
                        strv_free(env);
                        cli_usage_error("exec");
                        return EXIT_CTFS;
                }
        }
        if (argc - optind < 2) {
                strv_free(env);
                cli_usage_error("exec");
                return EXIT_CTFS;
        }
        store *s = cli_store(c);
        if (!s) {
                strv_free(env);
                return EXIT_CTFS;
        }
        char id[CONTAINER_ID_LEN + 1];
        if (resolve(s, "exec", argv[optind], id) < 0) {
                strv_free(env);
                return EXIT_CTFS;
        }
        eo.args = argv + optind + 1;
        eo.env = env;
        int code = EXIT_CTFS;
        char *err = NULL;
        fflush(stdout);
        int r = run_exec(s, id, &eo, &code, &err);
        strv_free(env);
        if (r < 0) {
                cli_fail(err, "exec: %s", strerror(-r));
                return code ? code : EXIT_CTFS;
        }
        return code;
}

/* ---- ps ---- */

static void fmt_status(const struct container_state *st, char *out, size_t len)
{
        char d[64];
        time_t now = time(NULL);
        switch (st->status) {
        case CONTAINER_CREATED:
                snprintf(out, len, "Created");
                break;
        case CONTAINER_RUNNING:
                fmt_duration((int64_t)now - st->started / 1000000000, d, sizeof(d));
                snprintf(out, len, "Up %s", d);
                break;
        case CONTAINER_EXITED:
                fmt_duration((int64_t)now - st->finished / 1000000000, d, sizeof(d));
                snprintf(out, len, "Exited (%d) %s ago", st->exit_code, d);
                break;
        }
}

static char *command_string(char **args, bool trunc)
{
        char *s = xstrdup("");
        for (char **p = args; p && *p; p++) {
                char *n = xasprintf("%s%s%s", s, p == args ? "" : " ", *p);
                free(s);
                s = n;
        }
        if (trunc && strlen(s) > 20) {
                char *n = xasprintf("\"%.19s…\"", s);
                free(s);
                return n;
        }
        char *n = xasprintf("\"%s\"", s);
        free(s);
        return n;
}

/* ps --filter KEY=VALUE: docker's name (a regular expression), id (a prefix), status, ancestor
 * (the image, as named or by id prefix). */
struct ps_filter {
        const char *key, *value;
};

static bool ps_match(store *s, const struct ps_filter *f, size_t n, const struct container_config *cfg,
                     const struct container_state *st)
{
        /* several values of one key: any of them; of different keys: all */
        static const char *const keys[] = { "name", "id", "status", "ancestor" };
        for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                bool any = false, hit = false;
                for (size_t i = 0; i < n; i++) {
                        if (strcmp(f[i].key, keys[k]) != 0)
                                continue;
                        any = true;
                        const char *v = f[i].value;
                        if (k == 0) { /* a regular expression, as docker's (checked when parsed) */
                                regex_t re;
                                if (cfg->name && regcomp(&re, v, REG_EXTENDED | REG_NOSUB) == 0) {
                                        hit = hit || regexec(&re, cfg->name, 0, NULL, 0) == 0;
                                        regfree(&re);
                                }
                        }
                        else if (k == 1)
                                hit = hit || !strncmp(cfg->id, v, strlen(v));
                        else if (k == 2)
                                hit = hit || !strcmp(container_status_name(st->status), v);
                        else {
                                /* the image as named (alpine, alpine:latest, docker.io/library/alpine)
                                 * or by id */
                                char img[DIGEST_HEX_LEN + 1];
                                hit = hit || (cfg->image_ref && !strcmp(cfg->image_ref, v)) ||
                                      (store_resolve_image(s, v, img) == 0 && !strcmp(img, cfg->image));
                        }
                }
                if (any && !hit)
                        return false;
        }
        return true;
}

/* The fields docker's ps --format has. */
static json_object *ps_fields(const struct container_config *cfg, const struct container_state *st, bool notrunc)
{
        json_object *o = json_object_new_object();
        char buf[128];
        snprintf(buf, sizeof(buf), "%.*s", notrunc ? 64 : 12, cfg->id);
        json_object_object_add(o, "ID", json_object_new_string(buf));
        json_object_object_add(o, "Image", json_object_new_string(cfg->image_ref ? cfg->image_ref : cfg->image));
        _cleanup_free_ char *cmd = command_string(cfg->args, !notrunc);
        json_object_object_add(o, "Command", json_object_new_string(cmd));
        time_t t = (time_t)(cfg->created / 1000000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
        json_object_object_add(o, "CreatedAt", json_object_new_string(buf));
        fmt_ago(cfg->created / 1000000000, buf, sizeof(buf));
        json_object_object_add(o, "RunningFor", json_object_new_string(buf));
        fmt_status(st, buf, sizeof(buf));
        json_object_object_add(o, "Status", json_object_new_string(buf));
        json_object_object_add(o, "State", json_object_new_string(container_status_name(st->status)));
        json_object_object_add(o, "Names", json_object_new_string(cfg->name ? cfg->name : ""));
        json_object_object_add(o, "Ports", json_object_new_string(""));
        json_object_object_add(o, "Labels", json_object_new_string(""));
        json_object_object_add(o, "Mounts", json_object_new_string(""));
        json_object_object_add(o, "Networks", json_object_new_string(cfg->network == CONTAINER_NET_NONE ? "none" : "host"));
        return o;
}

int cmd_ps(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "all", no_argument, NULL, 'a' },          { "quiet", no_argument, NULL, 'q' },
                { "no-trunc", no_argument, NULL, 'N' },     { "format", required_argument, NULL, 'F' },
                { "filter", required_argument, NULL, 'f' }, { "last", required_argument, NULL, 'n' },
                { "latest", no_argument, NULL, 'l' },       {},
        };
        bool all = false, quiet = false, notrunc = false;
        const char *format = NULL;
        struct ps_filter filters[16];
        size_t n_filters = 0;
        long last = -1;
        int o;
        while ((o = cli_getopt(argc, argv, "aqf:n:l", opts)) >= 0)
                if (o == 'a')
                        all = true;
                else if (o == 'q')
                        quiet = true;
                else if (o == 'N')
                        notrunc = true;
                else if (o == 'F')
                        format = optarg;
                else if (o == 'l')
                        last = 1;
                else if (o == 'n') {
                        char *end;
                        last = strtol(optarg, &end, 10);
                        if (*end || !*optarg || last < -1)
                                return cli_error("ps: invalid --last %s", optarg);
                        if (last <= 0)
                                last = -1; /* docker: 0 and -1 are no limit */
                } else if (o == 'f') {
                        char *eq = strchr(optarg, '=');
                        if (!eq || eq == optarg || n_filters == ARRAY_SIZE(filters))
                                return cli_error("ps: invalid --filter %s (KEY=VALUE)", optarg);
                        *eq = '\0';
                        if (strcmp(optarg, "name") && strcmp(optarg, "id") && strcmp(optarg, "status") &&
                            strcmp(optarg, "ancestor"))
                                return cli_error("ps: unsupported filter %s (name, id, status, ancestor)", optarg);
                        regex_t re;
                        if (!strcmp(optarg, "name") && regcomp(&re, eq + 1, REG_EXTENDED | REG_NOSUB) != 0)
                                return cli_error("ps: invalid filter 'name=%s': not a regular expression", eq + 1);
                        if (!strcmp(optarg, "name"))
                                regfree(&re);
                        static const char *const states = " created restarting running removing paused exited dead ";
                        _cleanup_free_ char *word = xasprintf(" %s ", eq + 1);
                        if (!strcmp(optarg, "status") && !strstr(states, word))
                                return cli_error("ps: invalid filter 'status=%s' (created, restarting, running, removing, "
                                                 "paused, exited, dead)",
                                                 eq + 1);
                        filters[n_filters++] = (struct ps_filter){ optarg, eq + 1 };
                } else
                        return cli_usage_error("ps");
        if (optind != argc)
                return cli_usage_error("ps");
        /* --filter status=, --last: not only the running ones, as docker's */
        for (size_t i = 0; i < n_filters; i++)
                all = all || !strcmp(filters[i].key, "status");
        all = all || last >= 0;
        /* as docker's: a template wins over -q, but "table" alone (the default table) does not */
        if (format && quiet && strcmp(format, "table") != 0)
                quiet = false;
        bool json = !quiet && format && !strcmp(format, "json"), table = false;
        _cleanup_free_ char *tmpl = !quiet && format && !json ? template_listing(format, &table) : NULL;
        format = json ? format : tmpl;
        table = table && tmpl;
        struct table *lines = table ? table_new_tabbed() : NULL; /* aligned at the end */
        store *s = cli_store(c);
        if (!s)
                return 1;
        char **ids;
        size_t n;
        int r = container_list(s, &ids, &n);
        if (r < 0)
                return cli_error("ps: %s", strerror(-r));
        static const char *const headers[] = { "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES", NULL };
        struct table *t = quiet || format ? NULL : table_new(headers);
        if (table) {
                static const char *const cols[][2] = {
                        { "ID", "CONTAINER ID" }, { "Image", "IMAGE" },       { "Command", "COMMAND" },
                        { "CreatedAt", "CREATED AT" }, { "RunningFor", "CREATED" }, { "Status", "STATUS" },
                        { "State", "STATE" },     { "Names", "NAMES" },       { "Ports", "PORTS" },
                        { "Labels", "LABELS" },   { "Mounts", "MOUNTS" },     { "Networks", "NETWORKS" },
                };
                char *text = NULL, *err = NULL;
                if (template_header(format, cols, ARRAY_SIZE(cols), &text, &err) < 0) {
                        container_ids_free(ids, n);
                        table_free(lines);
                        cli_error("ps: template: %s", err ? err : "cannot render");
                        free(err);
                        return 1;
                }
                table_add_tabbed(lines, text);
                free(text);
        }
        long shown = 0;
        for (size_t i = 0; i < n && (last < 0 || shown < last); i++) {
                struct container_config cfg = { 0 };
                struct container_state st;
                if (container_load(s, ids[i], &cfg) < 0)
                        continue;
                if (container_state_load(s, ids[i], &st) < 0) {
                        container_config_free(&cfg);
                        continue;
                }
                if (cfg.auto_remove && st.status == CONTAINER_EXITED && run_reap(s, ids[i])) {
                        container_state_free(&st);
                        container_config_free(&cfg);
                        continue; /* a --rm container its killed `run` left */
                }
                if ((all || st.status == CONTAINER_RUNNING) && ps_match(s, filters, n_filters, &cfg, &st)) {
                        shown++;
                        if (quiet)
                                printf("%.*s\n", notrunc ? 64 : 12, cfg.id);
                        else if (format) {
                                json_object *f = ps_fields(&cfg, &st, notrunc);
                                char *text = NULL, *err = NULL;
                                if (json)
                                        text = xstrdup(json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN |
                                                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
                                else if (template_render(format, f, &text, &err) < 0) {
                                        json_object_put(f);
                                        container_state_free(&st);
                                        container_config_free(&cfg);
                                        container_ids_free(ids, n);
                                        cli_error("ps: template: %s", err ? err : "cannot render");
                                        free(err);
                                        table_free(lines);
                                        return 1;
                                }
                                if (table)
                                        table_add_tabbed(lines, text);
                                else
                                        puts(text);
                                free(text);
                                json_object_put(f);
                        } else {
                                char created[64], status[96];
                                fmt_ago(cfg.created / 1000000000, created, sizeof(created));
                                fmt_status(&st, status, sizeof(status));
                                _cleanup_free_ char *cmd = command_string(cfg.args, !notrunc);
                                char idbuf[80];
                                snprintf(idbuf, sizeof(idbuf), "%.*s", notrunc ? 64 : 12, cfg.id);
                                table_addf(t, idbuf, cfg.image_ref ? cfg.image_ref : cfg.image, cmd, created, status,
                                           cfg.name ? cfg.name : "");
                        }
                }
                container_state_free(&st);
                container_config_free(&cfg);
        }
        container_ids_free(ids, n);
        if (t) {
                /* columns as wide as their widest cell, as docker's are */
                table_print(t, stdout, 1);
                table_free(t);
        }
        if (table)
                table_print_tabbed(lines, stdout);
        table_free(lines);
        return 0;
}

/* ---- inspect ---- */

static json_object *time_json(int64_t ns)
{
        if (ns <= 0)
                return json_object_new_string("0001-01-01T00:00:00Z");
        time_t t = (time_t)(ns / 1000000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char buf[64], out[96];
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(out, sizeof(out), "%s.%09lldZ", buf, (long long)(ns % 1000000000));
        return json_object_new_string(out);
}

static json_object *strv_json(char **v)
{
        json_object *a = json_object_new_array();
        for (char **p = v; p && *p; p++)
                json_object_array_add(a, json_object_new_string(*p));
        return a;
}

json_object *cli_container_inspect(store *s, const char *what)
{
        char id[CONTAINER_ID_LEN + 1];
        if (container_resolve(s, what, id) < 0)
                return NULL;
        struct container_config cfg = { 0 };
        struct container_state st;
        if (container_load(s, id, &cfg) < 0)
                return NULL;
        if (container_state_load(s, id, &st) < 0) {
                container_config_free(&cfg);
                return NULL;
        }
        json_object *o = json_object_new_object();
        json_object_object_add(o, "Id", json_object_new_string(cfg.id));
        json_object_object_add(o, "Created", time_json(cfg.created));
        json_object_object_add(o, "Path", json_object_new_string(cfg.args[0]));
        json_object_object_add(o, "Args", strv_json(cfg.args + 1));
        json_object *state = json_object_new_object();
        json_object_object_add(state, "Status", json_object_new_string(container_status_name(st.status)));
        json_object_object_add(state, "Running", json_object_new_boolean(st.status == CONTAINER_RUNNING));
        json_object_object_add(state, "OOMKilled", json_object_new_boolean(st.oom_killed));
        json_object_object_add(state, "Pid", json_object_new_int(st.status == CONTAINER_RUNNING ? st.pid : 0));
        json_object_object_add(state, "ExitCode", json_object_new_int(st.exit_code));
        json_object_object_add(state, "Error", json_object_new_string(st.error ? st.error : ""));
        json_object_object_add(state, "StartedAt", time_json(st.started));
        json_object_object_add(state, "FinishedAt", time_json(st.finished));
        json_object_object_add(o, "State", state);
        char img[80];
        snprintf(img, sizeof(img), "sha256:%s", cfg.image);
        json_object_object_add(o, "Image", json_object_new_string(img));
        _cleanup_free_ char *name = xasprintf("/%s", cfg.name ? cfg.name : "");
        json_object_object_add(o, "Name", json_object_new_string(name));
        _cleanup_free_ char *dir = container_dir(s, id);
        _cleanup_free_ char *logp = xasprintf("%s/container.log", dir);
        json_object_object_add(o, "LogPath", json_object_new_string(logp));
        json_object *hc = json_object_new_object();
        json_object *binds = json_object_new_array();
        for (size_t i = 0; i < cfg.n_volumes; i++) {
                _cleanup_free_ char *b = xasprintf("%s:%s%s", cfg.volumes[i].host, cfg.volumes[i].ctr,
                                                   cfg.volumes[i].ro ? ":ro" : "");
                json_object_array_add(binds, json_object_new_string(b));
        }
        json_object_object_add(hc, "Binds", binds);
        json_object_object_add(hc, "NetworkMode", json_object_new_string(cfg.network == CONTAINER_NET_NONE ? "none" : "host"));
        json_object_object_add(hc, "AutoRemove", json_object_new_boolean(cfg.auto_remove));
        json_object_object_add(hc, "CapAdd", strv_json(cfg.cap_add));
        json_object_object_add(hc, "CapDrop", strv_json(cfg.cap_drop));
        json_object_object_add(hc, "Privileged", json_object_new_boolean(cfg.privileged));
        json_object_object_add(hc, "ReadonlyRootfs", json_object_new_boolean(cfg.read_only));
        json_object *sec = json_object_new_array();
        if (cfg.no_new_privileges)
                json_object_array_add(sec, json_object_new_string("no-new-privileges"));
        json_object_object_add(hc, "SecurityOpt", sec);
        json_object_object_add(hc, "Init", json_object_new_boolean(cfg.init));
        json_object_object_add(hc, "Memory", json_object_new_int64(cfg.memory));
        json_object_object_add(hc, "NanoCpus", json_object_new_int64(cfg.nano_cpus));
        json_object_object_add(hc, "PidsLimit", json_object_new_int64(cfg.pids_limit));
        json_object_object_add(o, "HostConfig", hc);
        json_object *gd = json_object_new_object();
        json_object_object_add(gd, "Name", json_object_new_string("ctfs"));
        json_object *gdd = json_object_new_object();
        json_object_object_add(gdd, "UpperDir", json_object_new_string(cfg.upper ? cfg.upper : ""));
        json_object_object_add(gd, "Data", gdd);
        json_object_object_add(o, "GraphDriver", gd);
        json_object *cc = json_object_new_object();
        json_object_object_add(cc, "Hostname", json_object_new_string(cfg.hostname ? cfg.hostname : ""));
        json_object_object_add(cc, "User", json_object_new_string(cfg.user ? cfg.user : ""));
        json_object_object_add(cc, "Tty", json_object_new_boolean(cfg.tty));
        json_object_object_add(cc, "OpenStdin", json_object_new_boolean(cfg.interactive));
        json_object_object_add(cc, "Env", strv_json(cfg.env));
        /* as docker's: the entrypoint and the command apart (null when there is none) */
        json_object *ep = NULL, *cmd = NULL;
        for (size_t i = 0; cfg.args[i]; i++) {
                json_object **to = i < cfg.n_entrypoint ? &ep : &cmd;
                if (!*to)
                        *to = json_object_new_array();
                json_object_array_add(*to, json_object_new_string(cfg.args[i]));
        }
        json_object_object_add(cc, "Entrypoint", ep);
        json_object_object_add(cc, "Cmd", cmd);
        json_object_object_add(cc, "Image", json_object_new_string(cfg.image_ref ? cfg.image_ref : cfg.image));
        json_object_object_add(cc, "WorkingDir", json_object_new_string(cfg.cwd ? cfg.cwd : "/"));
        if (cfg.stop_signal)
                json_object_object_add(cc, "StopSignal", json_object_new_string(cfg.stop_signal));
        /* the image's labels, as docker shows them in a container's config */
        json_object *labels = json_object_new_object();
        struct image_config ic = { 0 };
        if (load_image_config(s, cfg.image, &ic) == 0) {
                for (size_t i = 0; i < ic.n_labels; i++)
                        json_object_object_add(labels, ic.label_keys[i], json_object_new_string(ic.label_values[i]));
                image_config_free(&ic);
        }
        json_object_object_add(cc, "Labels", labels);
        json_object_object_add(o, "Config", cc);
        container_state_free(&st);
        container_config_free(&cfg);
        return o;
}
