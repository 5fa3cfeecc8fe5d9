/* SPDX-License-Identifier: Apache-2.0 */
/* ctfs mount [DIR] [-f] [--debug] [--no-uring], ctfs umount [-f] [DIR] */
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "container.h"
#include "daemon.h"
#include "util.h"

/* Mount point: DIR, else $CTFS_MNT, else <root>/mnt. */
static char *mountpoint_of(store *s, const char *arg)
{
        if (arg && *arg)
                return xstrdup(arg);
        const char *env = getenv("CTFS_MNT");
        if (env && *env)
                return xstrdup(env);
        return xasprintf("%s/mnt", store_root(s));
}

int cmd_mount(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "foreground", no_argument, NULL, 'f' },
                                               { "debug", no_argument, NULL, 'd' },
                                               { "no-uring", no_argument, NULL, 'U' },
                                               {} };
        struct daemon_options o = { 0 };
        int opt;
        while ((opt = cli_getopt(argc, argv, "f", opts)) >= 0)
                if (opt == 'f')
                        o.foreground = true;
                else if (opt == 'd')
                        o.debug = true;
                else if (opt == 'U')
                        o.no_uring = true;
                else
                        return cli_usage_error("mount");
        if (argc - optind > 1)
                return cli_usage_error("mount");
        store *s = cli_store(c);
        if (!s)
                return 1;
        _cleanup_free_ char *mp = mountpoint_of(s, optind < argc ? argv[optind] : NULL);
        char *err = NULL;
        int r = daemon_mount(s, mp, &o, &err);
        if (r < 0)
                return cli_fail(err, "mount: %s: %s", mp, strerror(-r));
        free(err);
        return 0;
}

/* The ids (12 digits) of the containers that run now, comma-separated, and how many; NULL when
 * none (or the store lists none). */
static char *running_containers(store *s, size_t *ret_n)
{
        char **ids = NULL;
        size_t n = 0, running = 0;
        *ret_n = 0;
        if (container_list(s, &ids, &n) < 0)
                return NULL;
        char *list = NULL;
        for (size_t i = 0; i < n; i++) {
                struct container_state st;
                if (container_state_load(s, ids[i], &st) < 0)
                        continue;
                bool up = st.status == CONTAINER_RUNNING;
                container_state_free(&st);
                if (!up)
                        continue;
                running++;
                if (running <= 5) {
                        char *next = xasprintf("%s%s%.12s", list ? list : "", list ? ", " : "", ids[i]);
                        free(list);
                        list = next;
                } else if (running == 6) {
                        char *next = xasprintf("%s, ...", list);
                        free(list);
                        list = next;
                }
        }
        container_ids_free(ids, n);
        *ret_n = running;
        return list;
}

int cmd_umount(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "force", no_argument, NULL, 'f' }, {} };
        bool force = false;
        int opt;
        while ((opt = cli_getopt(argc, argv, "f", opts)) >= 0)
                if (opt == 'f')
                        force = true;
                else
                        return cli_usage_error("umount");
        if (argc - optind > 1)
                return cli_usage_error("umount");
        store *s = cli_store(c);
        if (!s)
                return 1;
        /* The mount is the running containers' root: unmounting it under them would leave them
         * with files that answer "Transport endpoint is not connected" until they are stopped. */
        size_t n;
        _cleanup_free_ char *running = force ? NULL : running_containers(s, &n);
        if (running)
                return cli_error("umount: %zu container%s running on this store (%s): stop %s first, or umount "
                                 "--force to unmount under %s",
                                 n, n == 1 ? " is" : "s are", running, n == 1 ? "it" : "them", n == 1 ? "it" : "them");
        char *err = NULL;
        int r = daemon_umount(s, optind < argc ? argv[optind] : NULL, &err);
        if (r < 0)
                return cli_fail(err, "umount: %s", strerror(-r));
        free(err);
        return 0;
}
