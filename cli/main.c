/* SPDX-License-Identifier: Apache-2.0 */
/* ctfs: argument parsing and the command table. */
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static int cmd_version(struct cli *c, int argc, char **argv);
static int cmd_help(struct cli *c, int argc, char **argv);

static const struct command commands[] = {
        { "pull", cmd_pull,
          "pull [-q] [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [--cert-dir DIR] [--creds USER:PASS] "
          "[--authfile FILE] REFERENCE",
          "pull an image (NAME[:TAG|@DIGEST], docker://..., oci:DIR[:TAG], oci-archive:FILE[:TAG], "
          "docker-archive:FILE[:NAME:TAG])" },
        { "load", cmd_load, "load [-q] [-i FILE]", "load images from a docker or OCI archive (stdin by default)" },
        { "images", cmd_images, "images [-q] [--digests] [--format TEMPLATE|table TEMPLATE|json] [--no-trunc] [REPOSITORY[:TAG]]",
          "list images" },
        { "list", cmd_list, "list [-a] [-q] | list --images [OPTIONS]", "list containers (like ps), or images with --images" },
        { "tag", cmd_tag, "tag SOURCE TARGET", "give an image another name" },
        { "rmi", cmd_rmi, "rmi [-f] IMAGE...", "remove images (untag a name; delete when no name is left)" },
        { "inspect", cmd_inspect, "inspect [-f|--format TEMPLATE] [--type image|container] (IMAGE|CONTAINER)...",
          "show images' and containers' details as JSON, or through a Go template (-f '{{.State.Status}}')" },
        { "export", cmd_export, "export [-o FILE] CONTAINER|IMAGE", "write a container's (or an image's) merged tree as a tar stream" },
        { "prune", cmd_prune, "prune", "remove unnamed images, and layers and objects no image uses" },
        { "mount", cmd_mount, "mount [-f] [--debug] [--no-uring] [DIR]",
          "serve every image and container under DIR (else $CTFS_MNT, else <root>/mnt)" },
        { "umount", cmd_umount, "umount [-f|--force] [DIR]", "stop the daemon and unmount (-f: even with containers running)" },
        { "check", cmd_check, "check [--repair]",
          "verify every object, layer, image, name and container record; --repair removes what is broken" },
        { "system", cmd_system, "system df", "show store usage: shared and unique bytes" },
        { "login", cmd_login,
          "login [-u USER] [-p PASS | --password-stdin] [--tls-verify=false] [--cert-dir DIR] [--authfile FILE] REGISTRY",
          "log in to a registry (checks the credentials, then saves them in auth.json)" },
        { "logout", cmd_logout, "logout [--authfile FILE] (REGISTRY | --all)", "remove a registry's saved credentials" },
        { "create", cmd_create, "create [OPTIONS] IMAGE [COMMAND [ARG...]]",
          "create a container (options as for run) and print its id" },
        { "run", cmd_run,
          "run [--name NAME] [--rm] [-d] [-i] [-t] [-e KEY=VALUE] [--env-file FILE] [-w DIR] [-u USER[:GROUP]] "
          "[--entrypoint CMD] [--hostname NAME] [--network host|none] [-m BYTES] [--pids-limit N] [--cpus N] "
          "[--read-only] [-v HOST:CTR[:ro]] [--cap-add CAP] [--cap-drop CAP] [--security-opt no-new-privileges] "
          "[--privileged] [--init] IMAGE [COMMAND [ARG...]]",
          "run a command in a new container" },
        { "start", cmd_start, "start [-a] [-i] CONTAINER...", "start stopped containers (their changes kept)" },
        { "ps", cmd_ps,
          "ps [-a] [-q] [--no-trunc] [-f|--filter name=|id=|status=|ancestor=VALUE] [-n|--last N] [-l] "
          "[--format TEMPLATE|table TEMPLATE|json]",
          "list containers (running ones; -a all)" },
        { "stop", cmd_stop, "stop [-t SECONDS] CONTAINER...", "stop containers (SIGTERM, then SIGKILL after 10 s)" },
        { "kill", cmd_kill, "kill [-s SIGNAL] CONTAINER...", "send a signal to containers (SIGKILL by default)" },
        { "rm", cmd_rm, "rm [-f] CONTAINER...", "remove containers and their changes (-f: running ones too)" },
        { "exec", cmd_exec, "exec [-i] [-t] [-e KEY=VALUE] [-w DIR] [-u USER[:GROUP]] CONTAINER COMMAND [ARG...]",
          "run a command in a running container" },
        { "logs", cmd_logs, "logs [-f] [-n|--tail N|all] CONTAINER", "show the output of a detached container" },
        { "wait", cmd_wait, "wait CONTAINER...", "wait for containers to stop; print their exit codes" },
        { "version", cmd_version, "version", "show the version" },
        { "help", cmd_help, "help [COMMAND]", "show help" },
};

const struct command *cli_find(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (!strcmp(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

int cli_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fputs("ctfs: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return 1;
}

int cli_fail(char *msg, const char *fallback_fmt, ...)
{
        if (msg) {
                cli_error("%s", msg);
                free(msg);
                return 1;
        }
        va_list ap;
        va_start(ap, fallback_fmt);
        fputs("ctfs: ", stderr);
        vfprintf(stderr, fallback_fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        return 1;
}

static void print_help(const struct command *cmd) { printf("usage: ctfs %s\n\n%s\n", cmd->usage, cmd->summary); }

static char bad_flag[128];
static const char *bad_flag_why; /* what is wrong with it */

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
        int r = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (r != '?' && r != ':')
                return r;
        /* optopt: the short option (or a long one's value) it refused, 0 for an unknown long one;
         * argv[optind - 1]: the argument, but for a short option inside a cluster ("-aX"), which
         * leaves optind where it was */
        const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
        bool is_long = false;
        if (strncmp(arg, "--", 2) == 0) {
                size_t len = strcspn(arg + 2, "=");
                const struct option *lo = longopts;
                while (lo && lo->name && !(strlen(lo->name) == len && !strncmp(lo->name, arg + 2, len)))
                        lo++;
                /* unknown long one, or a known one with a wrong value (its own val in optopt) */
                is_long = optopt == 0 || (lo && lo->name && lo->val == optopt);
        }
        bool help = is_long && !strncmp(arg, "--help", 6) && (arg[6] == '\0' || arg[6] == '=');
        /* -h, where it is no flag of the command's own (run's -h is --hostname) */
        help = help || (!is_long && optopt == 'h' && !strchr(shortopts, 'h'));
        if (help && cli_find(argv[0])) { /* (after other flags: main looks at the first one) */
                print_help(cli_find(argv[0]));
                fflush(stdout);
                exit(0);
        }
        if (is_long) {
                snprintf(bad_flag, sizeof(bad_flag), "%.*s", (int)strcspn(arg, "="), arg);
                bad_flag_why = optopt == 0 ? "unknown flag" : strchr(arg, '=') ? "flag takes no value" : "flag needs an argument";
        } else {
                bool known = optopt > 0 && optopt < 256 && strchr(shortopts, optopt);
                snprintf(bad_flag, sizeof(bad_flag), "-%c", optopt > 0 && optopt < 256 ? optopt : '?');
                bad_flag_why = known ? "flag needs an argument" : "unknown flag";
                /* "-d=false", docker's short form of a value: getopt refuses the "=" (still inside
                 * the cluster, so optind may not have moved past it); only a long form with an
                 * optional value takes one here */
                const char *cur = optind < argc ? argv[optind] : "";
                const char *eqarg = arg[0] == '-' && arg[1] && arg[1] != '-' && arg[2] == '=' ? arg
                                    : cur[0] == '-' && cur[1] && cur[1] != '-' && cur[2] == '=' ? cur
                                                                                                : NULL;
                if (optopt == '=' && eqarg) {
                        const struct option *lo = longopts;
                        while (lo && lo->name && !(lo->val == eqarg[1] && lo->has_arg == optional_argument))
                                lo++;
                        snprintf(bad_flag, sizeof(bad_flag), "%.*s", (int)strcspn(eqarg, "="), eqarg);
                        bad_flag_why = lo && lo->name ? "flag takes no value (the long form does: --flag=true|false)"
                                                      : "flag takes no value";
                }
        }
        return r;
}

int cli_usage_error(const char *cmd)
{
        if (bad_flag[0]) {
                int r = cli_error("%s: %s: %s (see ctfs %s --help)", cmd, bad_flag_why, bad_flag, cmd);
                bad_flag[0] = '\0';
                return r;
        }
        const struct command *c = cli_find(cmd);
        return cli_error("usage: ctfs %s", c ? c->usage : cmd);
}

store *cli_store(struct cli *c)
{
        if (c->store)
                return c->store;
        int r = store_open(c->root, &c->store);
        if (r < 0) {
                const char *root = c->root ? c->root : getenv("CTFS_ROOT") ? getenv("CTFS_ROOT") : STORE_DEFAULT_ROOT;
                cli_error("open store %s: %s", root, strerror(-r));
                return NULL;
        }
        return c->store;
}

static int cmd_version(struct cli *c, int argc, char **argv)
{
        printf("ctfs version %s\n", CTFS_VERSION);
        return 0;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: ctfs [--root DIR] [--log-level LEVEL] [-q] COMMAND [ARGS...]\n\ncommands:\n");
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nThe store is --root, else $CTFS_ROOT, else %s.\n", STORE_DEFAULT_ROOT);
}

static int cmd_help(struct cli *c, int argc, char **argv)
{
        if (argc < 2) {
                usage(stdout);
                return 0;
        }
        const struct command *cmd = cli_find(argv[1]);
        if (!cmd)
                return cli_error("help: unknown command: %s", argv[1]);
        print_help(cmd);
        return 0;
}

int main(int argc, char **argv)
{
        /* Names in images are bytes; a UTF-8 locale lets libarchive pass them through unchanged. */
        if (!setlocale(LC_CTYPE, "C.UTF-8"))
                setlocale(LC_CTYPE, "");
        struct cli c = { 0 };
        static const struct option opts[] = {
                { "root", required_argument, NULL, 'r' },
                { "log-level", required_argument, NULL, 'l' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'v' },
                {},
        };
        int o;
        opterr = 0; /* errors are ours to print, on one line */
        while ((o = getopt_long(argc, argv, "+qh", opts, NULL)) >= 0) {
                switch (o) {
                case 'r':
                        c.root = optarg;
                        break;
                case 'l':
                        if (!strcmp(optarg, "error"))
                                util_log_level = LOG_ERR_LEVEL;
                        else if (!strcmp(optarg, "warn") || !strcmp(optarg, "warning"))
                                util_log_level = LOG_WARN_LEVEL;
                        else if (!strcmp(optarg, "info"))
                                util_log_level = LOG_INFO_LEVEL;
                        else if (!strcmp(optarg, "debug"))
                                util_log_level = LOG_DEBUG_LEVEL;
                        else
                                return cli_error("invalid --log-level %s (error, warn, info, debug)", optarg);
                        break;
                case 'q':
                        c.quiet = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'v':
                        return cmd_version(&c, 0, NULL);
                default:
                        return cli_error("unknown option %s (see ctfs help)", argv[optind - 1]);
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 1;
        }
        const struct command *cmd = cli_find(argv[optind]);
        if (!cmd)
                return cli_error("unknown command: %s (see ctfs help)", argv[optind]);
        argv += optind;
        argc -= optind;
        optind = 0; /* commands parse their own options with getopt again */
        if (argc >= 2 && !strcmp(argv[1], "--help")) {
                print_help(cmd);
                return 0;
        }
        int r = cmd->run(&c, argc, argv);
        if (c.store)
                store_close(c.store);
        if (fflush(stdout) != 0 && r == 0)
                r = cli_error("write output: %m");
        return r;
}
