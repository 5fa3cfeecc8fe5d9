/* SPDX-License-Identifier: Apache-2.0 */
#include "spec.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

int spec_parse_memory(const char *s, int64_t *ret)
{
        if (!s || !isdigit((unsigned char)*s))
                return -EINVAL;
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (errno || v < 0)
                return -EINVAL;
        uint64_t mult = 1;
        if (*end) {
                switch (tolower((unsigned char)*end)) {
                case 'b':
                        mult = 1;
                        break;
                case 'k':
                        mult = 1ULL << 10;
                        break;
                case 'm':
                        mult = 1ULL << 20;
                        break;
                case 'g':
                        mult = 1ULL << 30;
                        break;
                case 't':
                        mult = 1ULL << 40;
                        break;
                default:
                        return -EINVAL;
                }
                end++;
                if (mult > 1 && tolower((unsigned char)*end) == 'i')
                        end++;
                if (mult > 1 && tolower((unsigned char)*end) == 'b')
                        end++;
                if (*end)
                        return -EINVAL;
        }
        double bytes = v * (double)mult;
        if (bytes >= 9.2e18 || (bytes < 1 && v != 0))
                return -ERANGE;
        *ret = (int64_t)bytes;
        return 0;
}

int spec_parse_cpus(const char *s, int64_t *ret)
{
        if (!s || !*s)
                return -EINVAL;
        int64_t whole = 0, frac = 0, scale = 1000000000;
        const char *p = s;
        if (!isdigit((unsigned char)*p) && *p != '.')
                return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
                whole = whole * 10 + (*p - '0');
                if (whole > 1000000)
                        return -ERANGE;
        }
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p) && p - s == 1)
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++) {
                        if (scale == 1)
                                return -EINVAL; /* more than 9 decimals */
                        scale /= 10;
                        frac += (*p - '0') * scale;
                }
        }
        if (*p)
                return -EINVAL;
        int64_t v = whole * 1000000000 + frac;
        if (v < 0)
                return -ERANGE;
        *ret = v;
        return 0;
}

int64_t spec_cpu_quota(int64_t nano_cpus, int64_t period_us)
{
        int64_t q = (int64_t)((__int128)nano_cpus * period_us / 1000000000);
        return q < 1000 ? 1000 : q; /* the kernel's minimum quota is 1 ms */
}

static size_t strv_len(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

const char *spec_env_get(char *const *env, const char *key)
{
        size_t kl = strlen(key);
        for (char *const *p = env; p && *p; p++)
                if (!strncmp(*p, key, kl) && (*p)[kl] == '=')
                        return *p + kl + 1;
        return NULL;
}

void spec_env_set(char ***env, const char *kv)
{
        const char *eq = strchr(kv, '=');
        size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
        size_t n = strv_len(*env);
        for (size_t i = 0; i < n; i++)
                if (!strncmp((*env)[i], kv, kl) && ((*env)[i][kl] == '=' || (*env)[i][kl] == '\0')) {
                        free((*env)[i]);
                        (*env)[i] = xstrdup(kv);
                        return;
                }
        *env = xrealloc(*env, (n + 2) * sizeof(char *));
        (*env)[n] = xstrdup(kv);
        (*env)[n + 1] = NULL;
}

int spec_env_add(char ***env, const char *arg, const char *(*lookup)(const char *key))
{
        if (!arg || !*arg || *arg == '=')
                return -EINVAL;
        const char *eq = strchr(arg, '=');
        /* a name with blanks in it ("A B=1", "export A=1", "A = 1") is refused, as by docker */
        if (strcspn(arg, " \t") < (eq ? (size_t)(eq - arg) : strlen(arg)))
                return -EINVAL;
        if (eq) {
                spec_env_set(env, arg);
                return 0;
        }
        const char *v = lookup ? lookup(arg) : getenv(arg);
        if (v) {
                _cleanup_free_ char *kv = xasprintf("%s=%s", arg, v);
                spec_env_set(env, kv);
        }
        return 0;
}

int spec_env_file(char ***env, const char *text, const char *(*lookup)(const char *key), char **ret_error)
{
        _cleanup_free_ char *copy = xstrdup(text);
        int lineno = 0;
        for (char *line = copy, *next; line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                lineno++;
                size_t l = strlen(line);
                if (l && line[l - 1] == '\r')
                        line[--l] = '\0';
                char *p = line;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p || *p == '#')
                        continue;
                if (spec_env_add(env, p, lookup) < 0) {
                        if (ret_error)
                                *ret_error = xasprintf("invalid environment variable on line %d: %s", lineno, p);
                        return -EINVAL;
                }
        }
        return 0;
}

/* Whether an absolute path names / once cleaned as docker cleans it ("/.", "/x/..", "//"). */
static bool clean_is_root(const char *path)
{
        int depth = 0;
        _cleanup_free_ char *copy = xstrdup(path);
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                if (!strcmp(c, "."))
                        continue;
                if (!strcmp(c, ".."))
                        depth = depth > 0 ? depth - 1 : 0;
                else
                        depth++;
        }
        return depth == 0;
}

int spec_parse_volume(const char *s, struct container_volume *ret, char **ret_error)
{
        _cleanup_free_ char *copy = xstrdup(s);
        char *parts[4] = { 0 };
        size_t n = 0;
        for (char *p = copy, *save = NULL, *tok; n < 4 && (tok = strtok_r(p, ":", &save)); p = NULL)
                parts[n++] = tok;
        bool ro = false;
        if (n == 3) {
                if (!strcmp(parts[2], "ro"))
                        ro = true;
                else if (strcmp(parts[2], "rw") != 0)
                        goto bad;
        } else if (n != 2)
                goto bad;
        if (parts[0][0] != '/') {
                if (ret_error)
                        *ret_error = xasprintf("invalid volume %s: the host path must be absolute (named volumes are not supported)", s);
                return -EINVAL;
        }
        if (parts[1][0] != '/')
                goto bad;
        if (clean_is_root(parts[1])) {
                if (ret_error)
                        *ret_error = xasprintf("invalid volume %s: the container path cannot be /", s);
                return -EINVAL;
        }
        ret->host = xstrdup(parts[0]);
        ret->ctr = xstrdup(parts[1]);
        ret->ro = ro;
        return 0;
bad:
        if (ret_error)
                *ret_error = xasprintf("invalid volume %s (HOST:CONTAINER[:ro])", s);
        return -EINVAL;
}

static char **strv_copy(char *const *v)
{
        size_t n = strv_len(v);
        char **c = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                c[i] = xstrdup(v[i]);
        return c;
}

static void strv_append(char ***v, char *const *more)
{
        size_t n = strv_len(*v), m = strv_len(more);
        *v = xrealloc(*v, (n + m + 1) * sizeof(char *));
        for (size_t i = 0; i < m; i++)
                (*v)[n + i] = xstrdup(more[i]);
        (*v)[n + m] = NULL;
}

int spec_build_process(const struct image_config *img, const struct spec_overrides *o,
                       struct container_config *cfg, char **ret_error)
{
        char **args = xcalloc(1, sizeof(char *));
        size_t n_entrypoint = 0;
        if (o->entrypoint) {
                if (*o->entrypoint) {
                        char *const ep[] = { (char *)o->entrypoint, NULL };
                        strv_append(&args, ep);
                        n_entrypoint = 1;
                }
                if (o->cmd)
                        strv_append(&args, o->cmd);
        } else {
                if (img && img->entrypoint) {
                        strv_append(&args, img->entrypoint);
                        n_entrypoint = strv_len(img->entrypoint);
                }
                if (o->cmd && o->cmd[0])
                        strv_append(&args, o->cmd);
                else if (img && img->cmd)
                        strv_append(&args, img->cmd);
        }
        if (!args[0]) {
                free(args);
                if (ret_error)
                        *ret_error = xstrdup("no command specified");
                return -EINVAL;
        }
        char **env = img && img->env ? strv_copy(img->env) : xcalloc(1, sizeof(char *));
        if (!spec_env_get(env, "PATH"))
                spec_env_set(&env, "PATH=" SPEC_DEFAULT_PATH);
        if (o->hostname) {
                _cleanup_free_ char *h = xasprintf("HOSTNAME=%s", o->hostname);
                spec_env_set(&env, h);
        }
        if (o->tty && !spec_env_get(env, "TERM"))
                spec_env_set(&env, "TERM=xterm");
        for (char **p = o->env; p && *p; p++)
                spec_env_set(&env, *p);
        const char *cwd = o->workdir && *o->workdir ? o->workdir
                          : img && img->working_dir   ? img->working_dir
                                                      : "/";
        if (cwd[0] != '/') {
                for (char **p = args; *p; p++)
                        free(*p);
                free(args);
                for (char **p = env; *p; p++)
                        free(*p);
                free(env);
                if (ret_error)
                        *ret_error = xasprintf("the working directory '%s' is invalid, it needs to be an absolute path", cwd);
                return -EINVAL;
        }
        cfg->args = args;
        cfg->n_entrypoint = n_entrypoint;
        cfg->env = env;
        cfg->cwd = xstrdup(cwd);
        cfg->user = xstrdup(o->user ? o->user : img && img->user ? img->user : "");
        cfg->tty = o->tty;
        return 0;
}

static const struct {
        const char *name;
        int sig;
} signals[] = {
        { "HUP", SIGHUP },   { "INT", SIGINT },     { "QUIT", SIGQUIT }, { "ILL", SIGILL },   { "TRAP", SIGTRAP },
        { "ABRT", SIGABRT }, { "IOT", SIGIOT },     { "BUS", SIGBUS },   { "FPE", SIGFPE },   { "KILL", SIGKILL },
        { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },   { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
        { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP },
        { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN },   { "TTOU", SIGTTOU }, { "URG", SIGURG },   { "XCPU", SIGXCPU },
        { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
        { "POLL", SIGPOLL }, { "PWR", SIGPWR },     { "SYS", SIGSYS },
};

int spec_parse_signal(const char *s)
{
        if (!s || !*s)
                return -EINVAL;
        if (isdigit((unsigned char)*s)) {
                char *end;
                long v = strtol(s, &end, 10);
                if (*end || v <= 0 || v >= _NSIG)
                        return -EINVAL;
                return (int)v;
        }
        const char *n = !strncasecmp(s, "SIG", 3) ? s + 3 : s;
        for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
                if (!strcasecmp(signals[i].name, n))
                        return signals[i].sig;
        if (!strncasecmp(n, "RTMIN", 5)) {
                int off = n[5] == '+' ? atoi(n + 6) : 0;
                if (SIGRTMIN + off <= SIGRTMAX)
                        return SIGRTMIN + off;
        }
        return -EINVAL;
}
