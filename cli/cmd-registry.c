/* SPDX-License-Identifier: Apache-2.0 */
/* Registry commands: pulls from registries (with progress), login, logout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cli.h"
#include "manifest.h"
#include "reference.h"
#include "registry.h"
#include "util.h"

/* ---- progress: docker-style lines, redrawn in place on a terminal ---- */

struct layer_line {
        char id[13];
        enum registry_layer_state state;
        bool seen;
        uint64_t bytes, total;
        struct timespec started;
};

struct progress_ui {
        FILE *out;
        struct layer_line *lines;
        size_t n;
        size_t drawn; /* lines printed by the last draw */
        struct timespec last;
        unsigned width;
};

static double since(const struct timespec *a)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (double)(now.tv_sec - a->tv_sec) + (double)(now.tv_nsec - a->tv_nsec) / 1e9;
}

static void draw(struct progress_ui *ui)
{
        if (ui->drawn)
                fprintf(ui->out, "\033[%zuA", ui->drawn);
        size_t drawn = 0;
        for (size_t i = 0; i < ui->n; i++) {
                struct layer_line *l = &ui->lines[i];
                if (!l->seen)
                        continue;
                char line[256];
                char a[32], b[32], rate[32];
                switch (l->state) {
                case REGISTRY_LAYER_WAITING:
                        snprintf(line, sizeof(line), "%s: Waiting", l->id);
                        break;
                case REGISTRY_LAYER_EXISTS:
                        snprintf(line, sizeof(line), "%s: Already exists", l->id);
                        break;
                case REGISTRY_LAYER_RETRYING:
                        snprintf(line, sizeof(line), "%s: Retrying", l->id);
                        break;
                case REGISTRY_LAYER_DONE:
                        snprintf(line, sizeof(line), "%s: Pull complete", l->id);
                        break;
                case REGISTRY_LAYER_FAILED:
                        snprintf(line, sizeof(line), "%s: Failed", l->id);
                        break;
                case REGISTRY_LAYER_DOWNLOADING: {
                        char bar[52];
                        size_t w = 40, fill = l->total ? (size_t)((double)l->bytes / (double)l->total * (double)w) : 0;
                        if (fill > w)
                                fill = w;
                        memset(bar, '=', fill);
                        if (fill < w)
                                bar[fill++] = '>';
                        memset(bar + fill, ' ', w - fill);
                        bar[w] = '\0';
                        fmt_size(l->bytes, a, sizeof(a));
                        fmt_size(l->total, b, sizeof(b));
                        double t = since(&l->started);
                        fmt_size(t > 0.05 ? (uint64_t)((double)l->bytes / t) : 0, rate, sizeof(rate));
                        snprintf(line, sizeof(line), "%s: Downloading [%s] %s/%s %s/s", l->id, bar, a, b, rate);
                        break;
                }
                default:
                        line[0] = '\0';
                }
                if (ui->width > 1 && strlen(line) >= ui->width)
                        line[ui->width - 1] = '\0';
                fprintf(ui->out, "\033[2K%s\n", line);
                drawn++;
        }
        ui->drawn = drawn;
        fflush(ui->out);
        clock_gettime(CLOCK_MONOTONIC, &ui->last);
}

static void on_progress(void *userdata, const struct registry_progress *p)
{
        struct progress_ui *ui = userdata;
        if (!ui->lines) {
                ui->n = p->n_layers;
                ui->lines = xcalloc(ui->n ? ui->n : 1, sizeof(*ui->lines));
        }
        if (p->layer >= ui->n)
                return;
        struct layer_line *l = &ui->lines[p->layer];
        enum registry_layer_state before = l->state;
        bool was_seen = l->seen;
        l->seen = true;
        snprintf(l->id, sizeof(l->id), "%.12s", p->digest && strlen(p->digest) > 7 ? p->digest + 7 : "");
        if (p->state == REGISTRY_LAYER_DOWNLOADING && (before != REGISTRY_LAYER_DOWNLOADING || !was_seen))
                clock_gettime(CLOCK_MONOTONIC, &l->started);
        l->state = p->state;
        l->bytes = p->bytes;
        l->total = p->total;
        /* state changes at once, byte counts ten times a second */
        if (before != p->state || !was_seen || since(&ui->last) >= 0.1)
                draw(ui);
}

int cli_registry_pull(struct cli *c, const struct reference *ref, struct registry_options *o,
                      struct import_result *ret, char **ret_error)
{
        store *s = cli_store(c);
        if (!s)
                return -EIO;
        struct progress_ui ui = { .out = stdout };
        if (!c->quiet && isatty(STDOUT_FILENO)) {
                struct winsize ws;
                if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
                        ui.width = ws.ws_col;
                _cleanup_free_ char *name = reference_to_string(ref);
                printf("Pulling %s\n", name);
                fflush(stdout);
                o->progress = on_progress;
                o->userdata = &ui;
        }
        int r = registry_pull(s, ref, o, ret, ret_error);
        if (ui.drawn)
                draw(&ui);
        free(ui.lines);
        return r;
}

/* ---- login / logout ---- */

/* "https://Quay.io/" -> "quay.io"; the registry (host[:port]) part must be valid. */
static char *login_key(const char *arg)
{
        _cleanup_free_ char *k = auth_normalize_key(arg);
        if (!k)
                return NULL;
        _cleanup_free_ char *probe = strchr(k, '/') ? xasprintf("%s", k) : xasprintf("%s/x", k);
        struct reference ref;
        if (reference_parse(probe, &ref) < 0)
                return NULL;
        size_t hl = strcspn(k, "/");
        bool same = ref.registry && strlen(ref.registry) == hl && !strncmp(ref.registry, k, hl);
        reference_free(&ref);
        return same ? TAKE_PTR(k) : NULL;
}

static char *read_line(FILE *f, bool echo)
{
        struct termios old, t;
        bool tty = !echo && isatty(fileno(f)) && tcgetattr(fileno(f), &old) == 0;
        if (tty) {
                t = old;
                t.c_lflag &= ~(tcflag_t)ECHO;
                tcsetattr(fileno(f), TCSAFLUSH, &t);
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n = getline(&line, &cap, f);
        if (tty) {
                tcsetattr(fileno(f), TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        if (n < 0) {
                free(line);
                return NULL;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                line[--n] = '\0';
        return line;
}

int cmd_login(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "username", required_argument, NULL, 'u' },
                { "password", required_argument, NULL, 'p' },
                { "password-stdin", no_argument, NULL, 'S' },
                { "tls-verify", optional_argument, NULL, 'T' },
                { "cert-dir", required_argument, NULL, 'C' },
                { "authfile", required_argument, NULL, 'A' },
                {},
        };
        struct registry_options o = { 0 };
        const char *user = NULL, *pass = NULL, *authfile = NULL;
        bool pass_stdin = false;
        int opt;
        while ((opt = cli_getopt(argc, argv, "u:p:", opts)) >= 0)
                switch (opt) {
                case 'u': user = optarg; break;
                case 'p': pass = optarg; break;
                case 'S': pass_stdin = true; break;
                case 'T':
                        if (optarg && strcmp(optarg, "true") && strcmp(optarg, "false"))
                                return cli_error("login: --tls-verify takes true or false");
                        o.insecure = optarg && !strcmp(optarg, "false");
                        break;
                case 'C': o.cert_dir = optarg; break;
                case 'A': authfile = optarg; break;
                default: return cli_usage_error("login");
                }
        if (optind + 1 != argc)
                return cli_usage_error("login");
        _cleanup_free_ char *key = login_key(argv[optind]);
        if (!key)
                return cli_error("login: invalid registry: %s", argv[optind]);
        if (pass && pass_stdin)
                return cli_error("login: --password and --password-stdin are mutually exclusive");
        _cleanup_free_ char *user_buf = NULL, *pass_buf = NULL;
        if (!user) {
                if (pass_stdin || !isatty(STDIN_FILENO))
                        return cli_error("login %s: no username (give -u USER)", key);
                fputs("Username: ", stderr);
                user = user_buf = read_line(stdin, true);
        }
        if (!user || !*user || strchr(user, ':'))
                return cli_error("login %s: invalid username", key);
        if (pass_stdin) {
                pass = pass_buf = read_line(stdin, true);
                if (!pass)
                        return cli_error("login %s: no password on stdin", key);
        } else if (!pass) {
                if (!isatty(STDIN_FILENO))
                        return cli_error("login %s: no password (use --password-stdin)", key);
                fputs("Password: ", stderr);
                pass = pass_buf = read_line(stdin, false);
        }
        if (!pass || !*pass)
                return cli_error("login %s: empty password", key);
        o.username = user;
        o.password = pass;
        _cleanup_free_ char *host = xstrndup(key, strcspn(key, "/"));
        bool needs_auth = true;
        char *err = NULL;
        int r = registry_login(host, &o, &needs_auth, &err);
        if (r >= 0) {
                _cleanup_free_ char *path = auth_default_path(authfile);
                r = auth_save(path, key, user, pass);
                if (r < 0) {
                        err = xasprintf("write %s: %s", path, r == -EINVAL ? "not a valid auth file" : strerror(-r));
                }
        }
        if (pass_buf)
                explicit_bzero(pass_buf, strlen(pass_buf));
        if (r < 0) {
                int rc = cli_error("login %s: %s", key, err ? err : strerror(-r));
                free(err);
                return rc;
        }
        if (!c->quiet)
                printf("Login Succeeded!\n");
        return 0;
}

int cmd_logout(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "authfile", required_argument, NULL, 'A' },
                { "all", no_argument, NULL, 'a' },
                {},
        };
        const char *authfile = NULL;
        bool all = false;
        int opt;
        while ((opt = cli_getopt(argc, argv, "a", opts)) >= 0)
                switch (opt) {
                case 'A': authfile = optarg; break;
                case 'a': all = true; break;
                default: return cli_usage_error("logout");
                }
        if (all ? optind != argc : optind + 1 != argc)
                return cli_usage_error("logout");
        _cleanup_free_ char *path = auth_default_path(authfile);
        if (all) {
                int r = auth_remove(path, NULL);
                if (r < 0 && r != -ENOENT)
                        return cli_error("logout: write %s: %s", path, strerror(-r));
                if (!c->quiet)
                        printf("Removed login credentials for all registries\n");
                return 0;
        }
        _cleanup_free_ char *key = login_key(argv[optind]);
        if (!key)
                return cli_error("logout: invalid registry: %s", argv[optind]);
        int r = auth_remove(path, key);
        if (r == -ENOENT)
                return cli_error("logout %s: not logged in (no entry in %s)", key, path);
        if (r < 0)
                return cli_error("logout %s: %s: %s", key, path, r == -EINVAL ? "not a valid auth file" : strerror(-r));
        if (!c->quiet)
                printf("Removed login credentials for %s\n", key);
        return 0;
}
