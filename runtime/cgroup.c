/* SPDX-License-Identifier: Apache-2.0 */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spec.h"
#include "util.h"

#define CGROUP_PARENT "ctfs"
#define CFS_PERIOD_US 100000

struct cgroup {
        struct cgroup_hierarchy *h;
        size_t n;
        int mem, pids, cpu; /* index of the hierarchy with the controller, -1 when none */
};

static bool has_controller(const char *opts, const char *ctl)
{
        size_t l = strlen(ctl);
        for (const char *p = opts; (p = strstr(p, ctl)); p += l)
                if ((p == opts || p[-1] == ',') && (p[l] == ',' || p[l] == '\0'))
                        return true;
        return false;
}

/* The controllers among v1 super options (drop rw, relatime, xattr, release_agent=...). */
static char *v1_controllers(const char *superopts)
{
        _cleanup_free_ char *copy = xstrdup(superopts);
        char *out = xstrdup("");
        char *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "rw") || !strcmp(t, "ro") || !strcmp(t, "relatime") || !strcmp(t, "noprefix") ||
                    !strcmp(t, "xattr") || !strcmp(t, "clone_children") || !strcmp(t, "cpuset_v2_mode") ||
                    !strncmp(t, "release_agent=", 14) || !strcmp(t, "nsdelegate"))
                        continue;
                char *n = xasprintf("%s%s%s", out, *out ? "," : "", t);
                free(out);
                out = n;
        }
        return out;
}

/* Undo mountinfo's octal escapes (\040 for a space, ...). */
static void unescape(char *s)
{
        char *w = s;
        for (char *r = s; *r; r++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
                    r[3] <= '7') {
                        *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                        r += 3;
                } else
                        *w++ = *r;
        }
        *w = '\0';
}

static void add_hierarchy(cgroup *cg, bool v2, const char *mnt, const char *opts, const char *id)
{
        for (size_t i = 0; i < cg->n; i++)
                if (cg->h[i].v2 == v2 && (v2 || !strcmp(cg->h[i].options, opts)))
                        return; /* the same hierarchy mounted twice */
        cg->h = xrealloc(cg->h, (cg->n + 1) * sizeof(*cg->h));
        const char *base = strrchr(mnt, '/');
        struct cgroup_hierarchy *h = &cg->h[cg->n];
        h->v2 = v2;
        h->mountpoint = xstrdup(mnt);
        h->name = xstrdup(base && strcmp(mnt, "/sys/fs/cgroup") != 0 ? base + 1 : "");
        h->options = xstrdup(opts);
        h->path = xasprintf("%s/" CGROUP_PARENT "/%s", mnt, id);
        cg->n++;
}

/* Which hierarchy carries memory, pids and cpu: v1 hierarchies first (on a hybrid host a
 * controller attached to v1 is not available on v2), then what the unified hierarchy offers. */
static void assign_controllers(cgroup *cg)
{
        cg->mem = cg->pids = cg->cpu = -1;
        int v2_mem = -1, v2_pids = -1, v2_cpu = -1;
        for (size_t i = 0; i < cg->n; i++) {
                struct cgroup_hierarchy *h = &cg->h[i];
                if (h->v2) {
                        _cleanup_free_ char *ctl = NULL, *rel = xasprintf("%s/cgroup.controllers", h->mountpoint);
                        if (util_read_file_at(AT_FDCWD, rel, 4096, &ctl, NULL) < 0)
                                continue;
                        char *nl = strchr(ctl, '\n');
                        if (nl)
                                *nl = '\0';
                        for (char *p = ctl; *p; p++)
                                if (*p == ' ')
                                        *p = ',';
                        if (v2_mem < 0 && has_controller(ctl, "memory"))
                                v2_mem = (int)i;
                        if (v2_pids < 0 && has_controller(ctl, "pids"))
                                v2_pids = (int)i;
                        if (v2_cpu < 0 && has_controller(ctl, "cpu"))
                                v2_cpu = (int)i;
                } else {
                        if (has_controller(h->options, "memory"))
                                cg->mem = (int)i;
                        if (has_controller(h->options, "pids"))
                                cg->pids = (int)i;
                        if (has_controller(h->options, "cpu"))
                                cg->cpu = (int)i;
                }
        }
        if (cg->mem < 0)
                cg->mem = v2_mem;
        if (cg->pids < 0)
                cg->pids = v2_pids;
        if (cg->cpu < 0)
                cg->cpu = v2_cpu;
}

int cgroup_parse_layout(const char *mountinfo, const char *id, cgroup **ret)
{
        cgroup *cg = xcalloc(1, sizeof(*cg));
        _cleanup_free_ char *copy = xstrdup(mountinfo);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *sep = strstr(line, " - ");
                if (!sep)
                        continue;
                char fstype[64], superopts[512], mnt[4096], root[4096];
                if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2)
                        continue;
                if (sscanf(sep + 3, "%63s %*s %511s", fstype, superopts) != 2)
                        continue;
                unescape(mnt);
                if (!strcmp(fstype, "cgroup2")) {
                        add_hierarchy(cg, true, mnt, "", id);
                } else if (!strcmp(fstype, "cgroup")) {
                        _cleanup_free_ char *ctl = v1_controllers(superopts);
                        if (has_controller(ctl, "memory") || has_controller(ctl, "pids") ||
                            has_controller(ctl, "cpu") || has_controller(ctl, "cpuacct"))
                                add_hierarchy(cg, false, mnt, ctl, id);
                }
        }
        assign_controllers(cg);
        *ret = cg;
        return 0;
}

static int discover(const char *id, cgroup **ret)
{
        /* proc files have no size: read to EOF (getdelim with a delimiter that never occurs) */
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return -errno;
        _cleanup_free_ char *text = NULL;
        size_t cap = 0;
        if (getdelim(&text, &cap, '\0', f) < 0 && !feof(f))
                return -EIO;
        return cgroup_parse_layout(text ? text : "", id, ret);
}

static void hierarchy_free(struct cgroup_hierarchy *h)
{
        free(h->mountpoint);
        free(h->name);
        free(h->options);
        free(h->path);
}

/* Keep the hierarchies marked in keep[], in order, and find the controllers again. */
static void keep_only(cgroup *cg, const bool *keep)
{
        size_t k = 0;
        for (size_t i = 0; i < cg->n; i++) {
                if (keep[i])
                        cg->h[k++] = cg->h[i];
                else
                        hierarchy_free(&cg->h[i]);
        }
        cg->n = k;
        assign_controllers(cg);
}

/*
 * The hierarchies a container joins. Joining a cgroup v1 hierarchy means writing the pid to
 * its cgroup.procs, and the first such write takes the kernel's cgroup_threadgroup_rwsem for
 * writing, which waits for an RCU grace period: 10-15 ms on a hybrid host, the biggest single
 * cost of a short run. So a container joins:
 *   - the unified (v2) hierarchy when it is mounted, always: it tracks the container's
 *     processes (cgroup.kill at the end) and costs nothing to join, because clone3's
 *     CLONE_INTO_CGROUP starts the container in it;
 *   - a v1 hierarchy only when it carries a controller for a limit that was asked for
 *     (memory for --memory, pids for --pids-limit, cpu for --cpus);
 *   - on a host without a unified hierarchy, one v1 hierarchy for tracking (pids if there, else
 *     the first) when no limit picked one.
 * Docker puts every container in every controller for accounting (cpuacct, memory usage); no
 * ctfs command reads those, and a container without a limit stays in its caller's v1 cgroups,
 * where the caller's own limits (if any) still apply. /sys/fs/cgroup in the container shows the
 * hierarchies it joined.
 */
void cgroup_select(cgroup *cg, const struct cgroup_limits *l)
{
        bool *keep = xcalloc(cg->n ? cg->n : 1, sizeof(bool));
        bool any_v2 = false, any = false;
        for (size_t i = 0; i < cg->n; i++)
                if (cg->h[i].v2)
                        keep[i] = any_v2 = any = true;
        if (l->memory > 0 && cg->mem >= 0)
                keep[cg->mem] = any = true;
        if (l->pids > 0 && cg->pids >= 0)
                keep[cg->pids] = any = true;
        if (l->nano_cpus > 0 && cg->cpu >= 0)
                keep[cg->cpu] = any = true;
        if (!any_v2 && !any && cg->n > 0)
                keep[cg->pids >= 0 ? cg->pids : 0] = true;
        keep_only(cg, keep);
        free(keep);
}

void cgroup_free(cgroup *cg)
{
        if (!cg)
                return;
        for (size_t i = 0; i < cg->n; i++)
                hierarchy_free(&cg->h[i]);
        free(cg->h);
        free(cg);
}

size_t cgroup_hierarchies(cgroup *cg, const struct cgroup_hierarchy **ret)
{
        *ret = cg->h;
        return cg->n;
}

static int write_file(const char *dir, const char *file, const char *value)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, file);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, value, strlen(value));
        if (n < 0)
                return -errno;
        return 0;
}

/* cgroup v2: let the children of dir use the controllers its own cgroup has. */
static void v2_enable(const char *dir, const char *ctl)
{
        _cleanup_free_ char *v = xasprintf("+%s", ctl);
        write_file(dir, "cgroup.subtree_control", v);
}

int cgroup_open(const char *id, cgroup **ret)
{
        cgroup *cg;
        int r = discover(id, &cg);
        if (r < 0)
                return r;
        /* the hierarchies it joined are those where its cgroup exists */
        bool *keep = xcalloc(cg->n ? cg->n : 1, sizeof(bool));
        for (size_t i = 0; i < cg->n; i++) {
                struct stat st;
                keep[i] = stat(cg->h[i].path, &st) == 0 && S_ISDIR(st.st_mode);
        }
        keep_only(cg, keep);
        free(keep);
        *ret = cg;
        return 0;
}

int cgroup_create(const char *id, const struct cgroup_limits *l, cgroup **ret, char **ret_error)
{
        cgroup *cg;
        int r = discover(id, &cg);
        if (r < 0)
                return r;
        cgroup_select(cg, l);
        for (size_t i = 0; i < cg->n; i++) {
                struct cgroup_hierarchy *h = &cg->h[i];
                _cleanup_free_ char *parent = xasprintf("%s/" CGROUP_PARENT, h->mountpoint);
                if (h->v2) {
                        static const char *const ctls[] = { "memory", "pids", "cpu" };
                        for (size_t k = 0; k < ARRAY_SIZE(ctls); k++) {
                                int idx = k == 0 ? cg->mem : k == 1 ? cg->pids : cg->cpu;
                                if (idx == (int)i)
                                        v2_enable(h->mountpoint, ctls[k]);
                        }
                }
                if (mkdir(parent, 0755) < 0 && errno != EEXIST)
                        goto fail_errno;
                if (h->v2) {
                        static const char *const ctls[] = { "memory", "pids", "cpu" };
                        for (size_t k = 0; k < ARRAY_SIZE(ctls); k++) {
                                int idx = k == 0 ? cg->mem : k == 1 ? cg->pids : cg->cpu;
                                if (idx == (int)i)
                                        v2_enable(parent, ctls[k]);
                        }
                }
                if (mkdir(h->path, 0755) < 0 && errno != EEXIST)
                        goto fail_errno;
        }
        char buf[64];
        if (l->memory > 0) {
                if (cg->mem < 0) {
                        r = -ENOTSUP;
                        *ret_error = xstrdup("--memory: no memory cgroup controller on this host");
                        goto fail;
                }
                struct cgroup_hierarchy *h = &cg->h[cg->mem];
                snprintf(buf, sizeof(buf), "%lld", (long long)l->memory);
                if (h->v2) {
                        r = write_file(h->path, "memory.max", buf);
                        if (r >= 0)
                                write_file(h->path, "memory.swap.max", "0");
                } else {
                        r = write_file(h->path, "memory.limit_in_bytes", buf);
                        /* memsw counts memory + swap: equal to the limit means no swap */
                        if (r >= 0)
                                write_file(h->path, "memory.memsw.limit_in_bytes", buf);
                }
                if (r < 0) {
                        *ret_error = xasprintf("--memory: set the limit in %s: %s", h->path, strerror(-r));
                        goto fail;
                }
        }
        if (l->pids > 0) {
                if (cg->pids < 0) {
                        r = -ENOTSUP;
                        *ret_error = xstrdup("--pids-limit: no pids cgroup controller on this host");
                        goto fail;
                }
                snprintf(buf, sizeof(buf), "%lld", (long long)l->pids);
                r = write_file(cg->h[cg->pids].path, "pids.max", buf);
                if (r < 0) {
                        *ret_error = xasprintf("--pids-limit: %s", strerror(-r));
                        goto fail;
                }
        }
        if (l->nano_cpus > 0) {
                if (cg->cpu < 0) {
                        r = -ENOTSUP;
                        *ret_error = xstrdup("--cpus: no cpu cgroup controller on this host");
                        goto fail;
                }
                struct cgroup_hierarchy *h = &cg->h[cg->cpu];
                long long quota = (long long)spec_cpu_quota(l->nano_cpus, CFS_PERIOD_US);
                if (h->v2) {
                        snprintf(buf, sizeof(buf), "%lld %d", quota, CFS_PERIOD_US);
                        r = write_file(h->path, "cpu.max", buf);
                } else {
                        snprintf(buf, sizeof(buf), "%d", CFS_PERIOD_US);
                        r = write_file(h->path, "cpu.cfs_period_us", buf);
                        snprintf(buf, sizeof(buf), "%lld", quota);
                        if (r >= 0)
                                r = write_file(h->path, "cpu.cfs_quota_us", buf);
                }
                if (r < 0) {
                        *ret_error = xasprintf("--cpus: %s", strerror(-r));
                        goto fail;
                }
        }
        *ret = cg;
        return 0;
fail_errno:
        r = -errno;
        *ret_error = xasprintf("create cgroup for %.12s: %s", id, strerror(errno));
fail:
        cgroup_destroy(cg);
        cgroup_free(cg);
        return r;
}

int cgroup_v2_open(cgroup *cg)
{
        for (size_t i = 0; i < cg->n; i++)
                if (cg->h[i].v2) {
                        int fd = open(cg->h[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        return fd < 0 ? -errno : fd;
                }
        return -ENOENT;
}

int cgroup_enter(cgroup *cg, pid_t pid, bool skip_v2)
{
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        for (size_t i = 0; i < cg->n; i++) {
                if (skip_v2 && cg->h[i].v2)
                        continue;
                int r = write_file(cg->h[i].path, "cgroup.procs", buf);
                if (r < 0)
                        return r;
        }
        return 0;
}

static long read_key(const char *dir, const char *file, const char *key)
{
        _cleanup_free_ char *path = xasprintf("%s/%s", dir, file), *data = NULL;
        if (util_read_file_at(AT_FDCWD, path, 1 << 16, &data, NULL) < 0)
                return -1;
        size_t kl = strlen(key);
        for (char *p = data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (!strncmp(p, key, kl) && p[kl] == ' ')
                        return strtol(p + kl + 1, NULL, 10);
        return -1;
}

bool cgroup_oom_killed(cgroup *cg)
{
        if (cg->mem < 0)
                return false;
        struct cgroup_hierarchy *h = &cg->h[cg->mem];
        return read_key(h->path, h->v2 ? "memory.events" : "memory.oom_control", "oom_kill") > 0;
}

static bool kill_all(const char *dir)
{
        _cleanup_free_ char *path = xasprintf("%s/cgroup.procs", dir), *data = NULL;
        if (util_read_file_at(AT_FDCWD, path, 1 << 20, &data, NULL) < 0)
                return false;
        bool any = false;
        for (char *p = data; *p;) {
                char *end;
                long pid = strtol(p, &end, 10);
                if (end == p)
                        break;
                if (pid > 0) {
                        kill((pid_t)pid, SIGKILL);
                        any = true;
                }
                p = end;
                while (*p == '\n')
                        p++;
        }
        return any;
}

int cgroup_destroy(cgroup *cg)
{
        int ret = 0;
        for (size_t i = 0; i < cg->n; i++)
                if (cg->h[i].v2)
                        write_file(cg->h[i].path, "cgroup.kill", "1");
        for (size_t i = 0; i < cg->n; i++) {
                struct cgroup_hierarchy *h = &cg->h[i];
                /* Tasks may take a moment to leave after SIGKILL: retry for up to 5 s. */
                for (int tries = 0;; tries++) {
                        if (rmdir(h->path) == 0 || errno == ENOENT)
                                break;
                        if (errno != EBUSY || tries >= 500) {
                                ret = -errno;
                                break;
                        }
                        kill_all(h->path);
                        struct timespec ts = { 0, 10 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        return ret;
}
