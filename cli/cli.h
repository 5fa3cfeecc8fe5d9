/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct cli {
        const char *root; /* --root, or NULL for $CTFS_ROOT / the default */
        bool quiet;
        store *store;     /* opened on first use by cli_store() */
};

struct command {
        const char *name;
        int (*run)(struct cli *c, int argc, char **argv);
        const char *usage;   /* "pull [-q] REFERENCE" */
        const char *summary; /* one line */
};

/* Errors: one lowercase line on stderr; return value is the exit status (1). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the error message a library call returned (and free it), or a fallback. */
int cli_fail(char *msg, const char *fallback_fmt, ...) __attribute__((format(printf, 2, 3)));
store *cli_store(struct cli *c);
const struct command *cli_find(const char *name);
/* A command's wrong arguments: the flag cli_getopt() could not take ("unknown flag: --x"), else
 * the usage line. */
int cli_usage_error(const char *cmd);
/* getopt_long() for commands (argv[0] is the command), remembering the flag it refused. */
struct option;
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* Output helpers */
void fmt_size(uint64_t bytes, char *out, size_t len);  /* docker style: 4.26MB */
void fmt_ago(int64_t when, char *out, size_t len);     /* "3 days ago" */
void fmt_duration(int64_t seconds, char *out, size_t len); /* "About a minute", "3 days" */

int cmd_pull(struct cli *c, int argc, char **argv);
int cmd_load(struct cli *c, int argc, char **argv);
int cmd_images(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_tag(struct cli *c, int argc, char **argv);
int cmd_rmi(struct cli *c, int argc, char **argv);
int cmd_inspect(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_prune(struct cli *c, int argc, char **argv);
int cmd_system(struct cli *c, int argc, char **argv);
int cmd_login(struct cli *c, int argc, char **argv);
int cmd_logout(struct cli *c, int argc, char **argv);

struct reference;
struct registry_options;
struct import_result;
/* A pull from a registry with progress on a terminal (cmd-registry.c). */
int cli_registry_pull(struct cli *c, const struct reference *ref, struct registry_options *o,
                      struct import_result *ret, char **ret_error);
int cmd_check(struct cli *c, int argc, char **argv);
int cmd_mount(struct cli *c, int argc, char **argv);
int cmd_umount(struct cli *c, int argc, char **argv);
/* Container commands (cmd-container.c). */
int cmd_create(struct cli *c, int argc, char **argv);
int cmd_run(struct cli *c, int argc, char **argv);
int cmd_start(struct cli *c, int argc, char **argv);
int cmd_ps(struct cli *c, int argc, char **argv);
int cmd_stop(struct cli *c, int argc, char **argv);
int cmd_kill(struct cli *c, int argc, char **argv);
int cmd_rm(struct cli *c, int argc, char **argv);
int cmd_wait(struct cli *c, int argc, char **argv);
int cmd_logs(struct cli *c, int argc, char **argv);
int cmd_exec(struct cli *c, int argc, char **argv);
struct json_object;
/* `export CONTAINER` (the container's merged tree) to fd. */
int cli_container_export(store *s, const char *id, int fd, char **ret_error);
/* A container's inspect JSON (new reference), or NULL when what names no container. */
struct json_object *cli_container_inspect(store *s, const char *what);
