/* SPDX-License-Identifier: Apache-2.0 */
/* ctfs mount [DIR] [-f] [--debug] [--no-uring], ctfs umount [DIR] */
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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
        while ((opt = getopt_long(argc, argv, "f", opts, NULL)) >= 0)
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

int cmd_umount(struct cli *c, int argc, char **argv)
{
        if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
                return cli_usage_error("umount");
        store *s = cli_store(c);
        if (!s)
                return 1;
        char *err = NULL;
        int r = daemon_umount(s, argc == 2 ? argv[1] : NULL, &err);
        if (r < 0)
                return cli_fail(err, "umount: %s", strerror(-r));
        free(err);
        return 0;
}
