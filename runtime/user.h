/* SPDX-License-Identifier: Apache-2.0 */
/*
 * -u/--user: "name", "uid", "name:group", "uid:gid" (and mixes) resolved against the container's
 * /etc/passwd and /etc/group, the way Docker (libcontainer/user) does it:
 *   - a user name must exist in passwd; a numeric uid need not (then gid 0, home "/");
 *   - without a group, the passwd entry's gid; a group name must exist in group, a number need not;
 *   - supplementary groups: every group that lists the user's name as a member (when the user
 *     has a passwd entry), plus the primary gid.
 * The files are read through the container's root with RESOLVE_IN_ROOT, so no link in the image
 * can point the read outside it.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct user_ids {
        uid_t uid;
        gid_t gid;
        gid_t *groups; /* supplementary groups, without duplicates */
        size_t n_groups;
        char *home;    /* from passwd, else "/" */
        char *name;    /* from passwd, NULL when the uid has no entry */
};
void user_ids_free(struct user_ids *u);

/* From file contents (either may be NULL: a missing file). -ENOENT with *ret_error when a
 * name does not resolve, -EINVAL for a malformed spec. */
int user_resolve_buf(const char *spec, const char *passwd, const char *group, struct user_ids *ret,
                     char **ret_error);
/* From the files under rootfd (the container's root directory). */
int user_resolve_in_root(int rootfd, const char *spec, struct user_ids *ret, char **ret_error);

/* Open path (relative to the root) under rootfd, all symlinks resolved inside the root. */
int user_open_in_root(int rootfd, const char *path, int flags);
