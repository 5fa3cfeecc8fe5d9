/* SPDX-License-Identifier: Apache-2.0 */
/* The runtime's pure logic: user/group resolution, capability names and sets, option parsing
 * (memory, CPUs, volumes, signals), environment merging, the process built from an image,
 * which cgroup hierarchies a container joins. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "container.h"
#include "spec.h"
#include "tap.h"
#include "user.h"
#include "util.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                             "# a comment\n"
                             "daemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
                             "user:x:1000:1000:user:/home/user:/bin/sh\n"
                             "broken:x:notanumber:1::/:/bin/sh\n"
                             "short:x:1001\n"
                             "nohome:x:1002:1002\n";
static const char group[] = "root:x:0:\n"
                            "wheel:x:10:root,user\n"
                            "users:x:100: user , other\n"
                            "user:x:1000:\n"
                            "audio:x:29:other\n"
                            "staff:x:50:user\n";

static void test_user(void)
{
        struct user_ids u;
        char *err = NULL;
        ok(user_resolve_buf("user", passwd, group, &u, &err) == 0, "name resolves");
        ok(u.uid == 1000 && u.gid == 1000, "uid and primary gid from passwd");
        ok(!strcmp(u.home, "/home/user") && !strcmp(u.name, "user"), "home and name");
        bool g10 = false, g100 = false, g50 = false, g29 = false;
        for (size_t i = 0; i < u.n_groups; i++) {
                g10 |= u.groups[i] == 10;
                g100 |= u.groups[i] == 100;
                g50 |= u.groups[i] == 50;
                g29 |= u.groups[i] == 29;
        }
        ok(g10 && g100 && g50 && !g29, "supplementary groups from the member lists (spaces trimmed)");
        ok(u.n_groups == 4, "primary gid included once (%zu groups)", u.n_groups);
        user_ids_free(&u);

        ok(user_resolve_buf("1000", passwd, group, &u, NULL) == 0 && u.uid == 1000 && u.gid == 1000 &&
                   !strcmp(u.home, "/home/user"),
           "numeric uid with an entry takes its gid and home");
        user_ids_free(&u);
        ok(user_resolve_buf("4242", passwd, group, &u, NULL) == 0 && u.uid == 4242 && u.gid == 0 &&
                   !strcmp(u.home, "/") && !u.name && u.n_groups == 1,
           "numeric uid without an entry: gid 0, home /");
        user_ids_free(&u);
        ok(user_resolve_buf("user:staff", passwd, group, &u, NULL) == 0 && u.uid == 1000 && u.gid == 50,
           "user:group by names");
        user_ids_free(&u);
        ok(user_resolve_buf("1000:4343", passwd, group, &u, NULL) == 0 && u.gid == 4343, "uid:gid numbers");
        user_ids_free(&u);
        ok(user_resolve_buf("root:user", passwd, group, &u, NULL) == 0 && u.uid == 0 && u.gid == 1000,
           "root with another group");
        user_ids_free(&u);
        ok(user_resolve_buf("", passwd, group, &u, NULL) == 0 && u.uid == 0 && u.gid == 0 &&
                   !strcmp(u.home, "/root"),
           "empty spec is root");
        user_ids_free(&u);
        ok(user_resolve_buf(NULL, NULL, NULL, &u, NULL) == 0 && u.uid == 0 && !strcmp(u.home, "/"),
           "no passwd file: root, home /");
        user_ids_free(&u);

        err = NULL;
        ok(user_resolve_buf("nobody", passwd, group, &u, &err) == -ENOENT && err && strstr(err, "nobody"),
           "unknown name: ENOENT with a message (%s)", err ? err : "");
        free(err);
        err = NULL;
        ok(user_resolve_buf("user:nogroup", passwd, group, &u, &err) == -ENOENT && err, "unknown group");
        free(err);
        err = NULL;
        ok(user_resolve_buf("broken", passwd, group, &u, &err) == -ENOENT, "malformed entry is skipped");
        free(err);
        err = NULL;
        ok(user_resolve_buf("user:", passwd, group, &u, &err) == -EINVAL, "empty group part is invalid");
        free(err);
        err = NULL;
        ok(user_resolve_buf("-1", passwd, group, &u, &err) == -ENOENT, "negative uid is a (missing) name");
        free(err);
        ok(user_resolve_buf("nohome", passwd, group, &u, NULL) == 0 && !strcmp(u.home, "/"),
           "entry without a home field: /");
        user_ids_free(&u);
        err = NULL;
        ok(user_resolve_buf("4294967295", passwd, group, &u, &err) == -ENOENT, "uid -1 is not a uid");
        free(err);
}

static void test_caps(void)
{
        ok(caps_from_name("CAP_NET_ADMIN") == 12 && caps_from_name("net_admin") == 12 &&
                   caps_from_name("Net_Admin") == 12,
           "cap names, any case, with or without CAP_");
        ok(caps_from_name("CAP_CHOWN") == 0 && caps_from_name("SYS_ADMIN") == 21, "chown 0, sys_admin 21");
        ok(caps_from_name("NOPE") == -EINVAL && caps_from_name("") == -EINVAL && caps_from_name("CAP_") == -EINVAL,
           "unknown names refused");
        ok(!strcmp(caps_name(7), "CAP_SETUID") && caps_name(99) == NULL, "numbers to names");
        uint64_t c;
        const char *bad = NULL;
        ok(caps_compute(false, NULL, NULL, &c, &bad) == 0 && c == CAPS_DEFAULT && c == 0xa80425fbULL,
           "default set is docker's a80425fb");
        char *add[] = { "NET_ADMIN", NULL }, *drop[] = { "CAP_CHOWN", "net_raw", NULL };
        ok(caps_compute(false, add, drop, &c, &bad) == 0 &&
                   c == ((CAPS_DEFAULT | (1ULL << 12)) & ~1ULL & ~(1ULL << 13)),
           "add and drop");
        char *all[] = { "ALL", NULL }, *kill_only[] = { "KILL", NULL };
        ok(caps_compute(false, kill_only, all, &c, &bad) == 0 && c == (1ULL << 5), "drop ALL then add KILL");
        ok(caps_compute(false, all, NULL, &c, &bad) == 0 && c == caps_all(), "add ALL");
        ok(caps_compute(true, NULL, all, &c, &bad) == 0 && c == caps_all(), "privileged has everything");
        char *typo[] = { "NET_ADMN", NULL };
        ok(caps_compute(false, typo, NULL, &c, &bad) == -EINVAL && bad && !strcmp(bad, "NET_ADMN"),
           "a typo is reported by name");
}

static void test_spec(void)
{
        int64_t v;
        ok(spec_parse_memory("20m", &v) == 0 && v == 20 << 20, "20m");
        ok(spec_parse_memory("1G", &v) == 0 && v == 1LL << 30, "1G");
        ok(spec_parse_memory("512k", &v) == 0 && v == 512 << 10, "512k");
        ok(spec_parse_memory("64MiB", &v) == 0 && v == 64 << 20, "64MiB");
        ok(spec_parse_memory("1.5g", &v) == 0 && v == 3LL << 29, "1.5g");
        ok(spec_parse_memory("1000", &v) == 0 && v == 1000, "plain bytes");
        ok(spec_parse_memory("100b", &v) == 0 && v == 100, "100b");
        ok(spec_parse_memory("", &v) < 0 && spec_parse_memory("m", &v) < 0 && spec_parse_memory("-1m", &v) < 0 &&
                   spec_parse_memory("10x", &v) < 0 && spec_parse_memory("10mm", &v) < 0,
           "malformed sizes refused");
        ok(spec_parse_cpus("0.5", &v) == 0 && v == 500000000, "0.5 cpus");
        ok(spec_parse_cpus("2", &v) == 0 && v == 2000000000LL, "2 cpus");
        ok(spec_parse_cpus(".25", &v) == 0 && v == 250000000, ".25 cpus");
        ok(spec_parse_cpus("0", &v) == 0 && v == 0, "0 cpus: no limit, as docker's");
        ok(spec_parse_memory("0", &v) == 0 && v == 0, "memory 0: no limit, as docker's");
        ok(spec_parse_cpus("abc", &v) < 0 && spec_parse_cpus("1.2.3", &v) < 0 &&
                   spec_parse_cpus("-1", &v) < 0 && spec_parse_cpus("0.0000000001", &v) < 0,
           "bad cpus refused");
        ok(spec_cpu_quota(500000000, 100000) == 50000, "0.5 cpu = 50 ms per 100 ms");
        ok(spec_cpu_quota(1000, 100000) == 1000, "quota at least 1 ms");

        ok(spec_parse_signal("TERM") == SIGTERM && spec_parse_signal("SIGKILL") == SIGKILL &&
                   spec_parse_signal("usr1") == SIGUSR1 && spec_parse_signal("9") == 9,
           "signal names and numbers");
        ok(spec_parse_signal("NOPE") < 0 && spec_parse_signal("0") < 0 && spec_parse_signal("99") < 0,
           "bad signals refused");

        struct container_volume vol;
        char *err = NULL;
        ok(spec_parse_volume("/a:/b", &vol, &err) == 0 && !strcmp(vol.host, "/a") && !strcmp(vol.ctr, "/b") && !vol.ro,
           "volume rw");
        free(vol.host);
        free(vol.ctr);
        ok(spec_parse_volume("/a:/b:ro", &vol, &err) == 0 && vol.ro, "volume ro");
        free(vol.host);
        free(vol.ctr);
        ok(spec_parse_volume("named:/b", &vol, &err) == -EINVAL && err, "named volumes refused");
        free(err);
        err = NULL;
        ok(spec_parse_volume("/a:b", &vol, &err) == -EINVAL, "relative container path refused");
        free(err);
        err = NULL;
        ok(spec_parse_volume("/a:/b:rx", &vol, &err) == -EINVAL, "unknown mode refused");
        free(err);
        err = NULL;
        ok(spec_parse_volume("/a", &vol, &err) == -EINVAL, "one part refused");
        free(err);
}

static const char *fake_env(const char *k)
{
        return !strcmp(k, "FROM_HOST") ? "host-value" : NULL;
}

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

static void test_env(void)
{
        char **env = NULL;
        spec_env_set(&env, "A=1");
        spec_env_set(&env, "B=2");
        spec_env_set(&env, "A=3");
        ok(env[0] && !strcmp(env[0], "A=3") && !strcmp(env[1], "B=2") && !env[2], "set replaces in place");
        ok(!strcmp(spec_env_get(env, "B"), "2") && spec_env_get(env, "C") == NULL && spec_env_get(env, "") == NULL,
           "get");
        ok(spec_env_add(&env, "FROM_HOST", fake_env) == 0 && !strcmp(spec_env_get(env, "FROM_HOST"), "host-value"),
           "KEY alone takes the host's value");
        ok(spec_env_add(&env, "UNSET_ON_HOST", fake_env) == 0 && !spec_env_get(env, "UNSET_ON_HOST"),
           "KEY unset on the host is skipped");
        ok(spec_env_add(&env, "=x", fake_env) == -EINVAL && spec_env_add(&env, "", fake_env) == -EINVAL,
           "empty key refused");
        ok(spec_env_add(&env, "E=a=b", fake_env) == 0 && !strcmp(spec_env_get(env, "E"), "a=b"), "value with =");
        char *err = NULL;
        ok(spec_env_file(&env, "# comment\n\nF=file\r\n  G=g\nFROM_HOST\n", fake_env, &err) == 0 &&
                   !strcmp(spec_env_get(env, "F"), "file") && !strcmp(spec_env_get(env, "G"), "g"),
           "env file: comments, blank lines, CRLF, indentation");
        ok(spec_env_file(&env, "OK=1\n=bad\n", fake_env, &err) == -EINVAL && err && strstr(err, "line 2"),
           "env file error names the line");
        free(err);
        strv_free(env);

        /* the process from an image */
        char *img_env[] = { "PATH=/img/bin", "FOO=image", NULL };
        char *img_ep[] = { "/entry", "--flag", NULL };
        char *img_cmd[] = { "default", "cmd", NULL };
        struct image_config img = { .env = img_env, .entrypoint = img_ep, .cmd = img_cmd, .working_dir = "/work",
                                    .user = "user" };
        char *over_env[] = { "FOO=override", NULL };
        char *cmd[] = { "mine", NULL };
        struct spec_overrides o = { .env = over_env, .hostname = "box", .tty = true };
        struct container_config cfg = { 0 };
        ok(spec_build_process(&img, &o, &cfg, NULL) == 0, "build from image");
        ok(!strcmp(cfg.args[0], "/entry") && !strcmp(cfg.args[2], "default") && !cfg.args[4], "entrypoint + cmd");
        ok(!strcmp(spec_env_get(cfg.env, "FOO"), "override") && !strcmp(spec_env_get(cfg.env, "PATH"), "/img/bin") &&
                   !strcmp(spec_env_get(cfg.env, "HOSTNAME"), "box") && !strcmp(spec_env_get(cfg.env, "TERM"), "xterm"),
           "env: image, HOSTNAME, TERM with a tty, overrides last");
        ok(!strcmp(cfg.cwd, "/work") && !strcmp(cfg.user, "user"), "WorkingDir and User");
        container_config_free(&cfg);

        o = (struct spec_overrides){ .cmd = cmd, .workdir = "/w", .user = "0" };
        ok(spec_build_process(&img, &o, &cfg, NULL) == 0 && !strcmp(cfg.args[0], "/entry") &&
                   !strcmp(cfg.args[2], "mine") && !cfg.args[3] && !strcmp(cfg.cwd, "/w") && !strcmp(cfg.user, "0") &&
                   !spec_env_get(cfg.env, "TERM"),
           "CMD replaces Cmd, -w and -u override");
        container_config_free(&cfg);

        o = (struct spec_overrides){ .entrypoint = "/other" };
        ok(spec_build_process(&img, &o, &cfg, NULL) == 0 && !strcmp(cfg.args[0], "/other") && !cfg.args[1],
           "--entrypoint drops the image's Cmd");
        container_config_free(&cfg);

        o = (struct spec_overrides){ .entrypoint = "", .cmd = cmd };
        ok(spec_build_process(&img, &o, &cfg, NULL) == 0 && !strcmp(cfg.args[0], "mine") && !cfg.args[1],
           "--entrypoint '' clears it");
        container_config_free(&cfg);

        struct image_config empty = { 0 };
        o = (struct spec_overrides){ 0 };
        err = NULL;
        ok(spec_build_process(&empty, &o, &cfg, &err) == -EINVAL && err, "no command at all is an error");
        free(err);
        o = (struct spec_overrides){ .cmd = cmd };
        ok(spec_build_process(&empty, &o, &cfg, NULL) == 0 && !strcmp(spec_env_get(cfg.env, "PATH"), SPEC_DEFAULT_PATH) &&
                   !strcmp(cfg.cwd, "/") && !strcmp(cfg.user, ""),
           "defaults: PATH, cwd /, root");
        container_config_free(&cfg);
        o = (struct spec_overrides){ .cmd = cmd, .workdir = "relative" };
        err = NULL;
        ok(spec_build_process(&empty, &o, &cfg, &err) == -EINVAL, "relative -w refused");
        free(err);
}

static void test_names(void)
{
        ok(container_name_is_valid("web") && container_name_is_valid("a_b.c-d") && container_name_is_valid("9lives"),
           "valid names");
        ok(!container_name_is_valid("") && !container_name_is_valid("-x") && !container_name_is_valid("a/b") &&
                   !container_name_is_valid("a b") && !container_name_is_valid(".hidden"),
           "invalid names");
        char id[CONTAINER_ID_LEN + 1], id2[CONTAINER_ID_LEN + 1];
        container_new_id(id);
        container_new_id(id2);
        ok(strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64 && strcmp(id, id2) != 0, "ids: 64 random hex");
        ok(!container_name_is_valid(id), "a 64-hex name would look like an id");
        char *n = container_random_name();
        ok(container_name_is_valid(n) && strchr(n, '_'), "random names are valid (%s)", n);
        free(n);
}

/* The hierarchies joined, as "name name ..." (v2 root: "v2"). */
static char *joined(const char *mountinfo, const struct cgroup_limits *l)
{
        cgroup *cg = NULL;
        if (cgroup_parse_layout(mountinfo, "c0ffee", &cg) < 0)
                return xstrdup("error");
        cgroup_select(cg, l);
        const struct cgroup_hierarchy *h;
        size_t n = cgroup_hierarchies(cg, &h);
        char *out = xstrdup("");
        for (size_t i = 0; i < n; i++) {
                char *o = xasprintf("%s%s%s", out, i ? " " : "", *h[i].name ? h[i].name : "v2");
                free(out);
                out = o;
        }
        cgroup_free(cg);
        return out;
}

static void test_cgroup_select(void)
{
        /* a unified hierarchy with every controller, in a temp dir standing in for /sys/fs/cgroup */
        char dir[] = "/tmp/ctfs-test-cgroup.XXXXXX";
        if (!mkdtemp(dir)) {
                ok(false, "mkdtemp: %m");
                return;
        }
        char *ctl = xasprintf("%s/cgroup.controllers", dir);
        FILE *f = fopen(ctl, "w");
        if (f) {
                fputs("cpuset cpu io memory pids\n", f);
                fclose(f);
        }
        char *hybrid = xasprintf("30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n"
                                 "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
                                 "32 25 0:28 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory\n"
                                 "33 25 0:29 / /sys/fs/cgroup/pids rw shared:13 - cgroup cgroup rw,pids\n"
                                 "34 25 0:30 / /sys/fs/cgroup/systemd rw shared:14 - cgroup cgroup rw,xattr,name=systemd\n");
        char *v1 = xasprintf("31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
                             "32 25 0:28 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory\n"
                             "33 25 0:29 / /sys/fs/cgroup/pids rw shared:13 - cgroup cgroup rw,pids\n");
        char *v1_nopids = xasprintf("32 25 0:28 / /sys/fs/cgroup/memory rw shared:12 - cgroup cgroup rw,memory\n"
                                    "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n");
        char *v2 = xasprintf("30 25 0:26 / %s rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate\n", dir);
        const char *base = strrchr(dir, '/') + 1;
        struct cgroup_limits none = { 0 }, mem = { .memory = 1 << 26 }, pids_cpu = { .pids = 10, .nano_cpus = 500000000 };
        struct {
                const char *what, *mountinfo;
                const struct cgroup_limits *l;
                const char *want;
        } cases[] = {
                { "hybrid, no limits: the unified hierarchy only", hybrid, &none, "unified" },
                { "hybrid, --memory: and the v1 memory controller", hybrid, &mem, "unified memory" },
                { "hybrid, --pids-limit --cpus: and v1 cpu and pids", hybrid, &pids_cpu, "unified cpu,cpuacct pids" },
                { "v1, no limits: pids for tracking", v1, &none, "pids" },
                { "v1 without pids, no limits: the first for tracking", v1_nopids, &none, "memory" },
                { "v1, --memory: memory (it tracks too)", v1, &mem, "memory" },
                { "v2, no limits", v2, &none, base },
                { "v2, --memory: the same cgroup", v2, &mem, base },
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                char *got = joined(cases[i].mountinfo, cases[i].l);
                ok(!strcmp(got, cases[i].want), "cgroups: %s (%s)", cases[i].what, got);
                free(got);
        }
        unlink(ctl);
        rmdir(dir);
        free(ctl);
        free(hybrid);
        free(v1);
        free(v1_nopids);
        free(v2);
}

int main(void)
{
        test_user();
        test_caps();
        test_spec();
        test_env();
        test_names();
        test_cgroup_select();
        return tap_done();
}
