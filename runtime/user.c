/* SPDX-License-Identifier: Apache-2.0 */
#include "user.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

void user_ids_free(struct user_ids *u)
{
        free(u->groups);
        free(u->home);
        free(u->name);
        *u = (struct user_ids){ 0 };
}

static bool parse_id(const char *s, unsigned long *ret)
{
        if (!*s || *s == '-' || *s == '+')
                return false;
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || *end || v > UINT_MAX - 1) /* (uid_t)-1 is "no change" */
                return false;
        *ret = v;
        return true;
}

/* Split a line into at most n ':'-separated fields (in place). Returns the field count. */
static size_t split_fields(char *line, char **f, size_t n)
{
        size_t k = 0;
        f[k++] = line;
        for (char *p = line; *p && k < n; p++)
                if (*p == ':') {
                        *p = '\0';
                        f[k++] = p + 1;
                }
        return k;
}

struct pw_entry {
        char *name;
        unsigned long uid, gid;
        char *home;
};

/* Find a passwd entry by name (name != NULL) or uid; the first match wins. */
static bool passwd_find(const char *passwd, const char *name, unsigned long uid, struct pw_entry *e)
{
        if (!passwd)
                return false;
        _cleanup_free_ char *copy = xstrdup(passwd);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (*line == '#' || *line == '+' || *line == '-')
                        continue;
                char *f[7] = { 0 };
                size_t n = split_fields(line, f, 7);
                if (n < 4)
                        continue;
                unsigned long u, g;
                if (!parse_id(f[2], &u) || !parse_id(f[3], &g))
                        continue;
                if (name ? strcmp(f[0], name) != 0 : u != uid)
                        continue;
                e->name = xstrdup(f[0]);
                e->uid = u;
                e->gid = g;
                e->home = n >= 6 && *f[5] ? xstrdup(f[5]) : NULL;
                return true;
        }
        return false;
}

static void add_group(struct user_ids *u, gid_t g)
{
        for (size_t i = 0; i < u->n_groups; i++)
                if (u->groups[i] == g)
                        return;
        u->groups = xrealloc(u->groups, (u->n_groups + 1) * sizeof(gid_t));
        u->groups[u->n_groups++] = g;
}

/* Group by name: its gid. By member (user != NULL): add every group listing the user. */
static bool group_scan(const char *group, const char *gname, unsigned long *ret_gid, const char *member,
                       struct user_ids *u)
{
        if (!group)
                return false;
        bool found = false;
        _cleanup_free_ char *copy = xstrdup(group);
        char *save = NULL;
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (*line == '#' || *line == '+' || *line == '-')
                        continue;
                char *f[4] = { 0 };
                if (split_fields(line, f, 4) < 3)
                        continue;
                unsigned long g;
                if (!parse_id(f[2], &g))
                        continue;
                if (gname && !strcmp(f[0], gname) && !found) {
                        *ret_gid = g;
                        found = true;
                }
                if (member && f[3]) {
                        char *s2 = NULL;
                        for (char *m = strtok_r(f[3], ",", &s2); m; m = strtok_r(NULL, ",", &s2)) {
                                while (*m == ' ')
                                        m++;
                                size_t l = strlen(m);
                                while (l && (m[l - 1] == ' ' || m[l - 1] == '\r'))
                                        m[--l] = '\0';
                                if (!strcmp(m, member))
                                        add_group(u, (gid_t)g);
                        }
                }
        }
        return found;
}

int user_resolve_buf(const char *spec, const char *passwd, const char *group, struct user_ids *ret,
                     char **ret_error)
{
        struct user_ids u = { 0 };
        _cleanup_free_ char *uspec = xstrdup(spec && *spec ? spec : "0");
        char *gspec = strchr(uspec, ':');
        if (gspec)
                *gspec++ = '\0';
        if (!*uspec || (gspec && !*gspec)) {
                if (ret_error)
                        *ret_error = xasprintf("invalid user %s", spec);
                return -EINVAL;
        }
        unsigned long uid = 0, gid = 0;
        struct pw_entry pw = { 0 };
        bool numeric = parse_id(uspec, &uid);
        bool have_pw = passwd_find(passwd, numeric ? NULL : uspec, uid, &pw);
        if (!numeric && !have_pw) {
                if (ret_error)
                        *ret_error = xasprintf("unable to find user %s: no matching entries in passwd file", uspec);
                return -ENOENT;
        }
        if (have_pw) {
                uid = pw.uid;
                gid = pw.gid;
        }
        if (gspec) {
                if (!parse_id(gspec, &gid) && !group_scan(group, gspec, &gid, NULL, NULL)) {
                        free(pw.name);
                        free(pw.home);
                        if (ret_error)
                                *ret_error = xasprintf("unable to find group %s: no matching entries in group file",
                                                       gspec);
                        return -ENOENT;
                }
        }
        u.uid = (uid_t)uid;
        u.gid = (gid_t)gid;
        add_group(&u, u.gid);
        if (have_pw) {
                group_scan(group, NULL, NULL, pw.name, &u);
                u.home = pw.home;
                u.name = pw.name;
        }
        if (!u.home)
                u.home = xstrdup("/");
        *ret = u;
        return 0;
}

int user_open_in_root(int rootfd, const char *path, int flags)
{
        return util_openat2(rootfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

static char *read_in_root(int rootfd, const char *path)
{
        _cleanup_close_ int fd = user_open_in_root(rootfd, path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return NULL;
        struct stat st;
        /* passwd and group are small; a huge or odd file (a fifo, a device) is not read */
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (4 << 20))
                return NULL;
        char *data = xmalloc((size_t)st.st_size + 1);
        ssize_t n = util_read_all(fd, data, (size_t)st.st_size);
        if (n < 0) {
                free(data);
                return NULL;
        }
        data[n] = '\0';
        return data;
}

int user_resolve_in_root(int rootfd, const char *spec, struct user_ids *ret, char **ret_error)
{
        _cleanup_free_ char *passwd = read_in_root(rootfd, "etc/passwd");
        _cleanup_free_ char *group = read_in_root(rootfd, "etc/group");
        return user_resolve_buf(spec, passwd, group, ret, ret_error);
}
