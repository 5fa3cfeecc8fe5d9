/* SPDX-License-Identifier: Apache-2.0 */
/* ctfs check [--repair] */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cli.h"
#include "image.h"

static void report(const char *problem, bool repaired, void *userdata)
{
        printf("%s%s\n", problem, repaired ? " (removed)" : "");
}

int cmd_check(struct cli *c, int argc, char **argv)
{
        static const struct option opts[] = { { "repair", no_argument, NULL, 'r' }, {} };
        bool repair = false;
        int o;
        while ((o = cli_getopt(argc, argv, "", opts)) >= 0)
                if (o == 'r')
                        repair = true;
                else
                        return cli_usage_error("check");
        if (optind != argc)
                return cli_usage_error("check");
        store *s = cli_store(c);
        if (!s)
                return 1;
        struct check_result res;
        int r = store_check(s, repair, report, NULL, &res);
        if (r < 0)
                return cli_error("check: %s", strerror(-r));
        if (repair) {
                /* what the repair left unreferenced goes the way prune sends it */
                struct prune_result pr;
                r = store_prune(s, &pr);
                if (r < 0)
                        return cli_error("check: prune: %s", strerror(-r));
                if (pr.layers || pr.objects || pr.images)
                        printf("removed %llu orphaned image%s, %llu layer%s, %llu object%s\n",
                               (unsigned long long)pr.images, pr.images == 1 ? "" : "s",
                               (unsigned long long)pr.layers, pr.layers == 1 ? "" : "s",
                               (unsigned long long)pr.objects, pr.objects == 1 ? "" : "s");
        }
        if (!c->quiet)
                printf("checked %llu objects, %llu layers, %llu images, %llu names, %llu containers: %llu problem%s%s\n",
                       (unsigned long long)res.objects, (unsigned long long)res.layers, (unsigned long long)res.images,
                       (unsigned long long)res.refs, (unsigned long long)res.containers,
                       (unsigned long long)res.problems, res.problems == 1 ? "" : "s",
                       repair && res.problems ? (res.repaired == res.problems ? ", all repaired" : ", some not repairable")
                                              : "");
        /* exit 1 when the store has problems that are still there */
        return res.problems > (repair ? res.repaired : 0) ? 1 : 0;
}
