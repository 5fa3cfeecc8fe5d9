/* SPDX-License-Identifier: Apache-2.0 */
/* The pure logic of create/run options: sizes, CPUs, environment, volumes, and the process a
 * container runs (image config + options), as Docker computes them. No I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "container.h"
#include "manifest.h"

/* "20m", "1g", "512k", "100b", "1048576" (binary units, case-insensitive) -> bytes. */
int spec_parse_memory(const char *s, int64_t *ret);
/* "0.5", "2", "1.25" -> nano CPUs (up to 9 decimals). */
int spec_parse_cpus(const char *s, int64_t *ret);
/* CFS quota for a period (us) from nano CPUs. */
int64_t spec_cpu_quota(int64_t nano_cpus, int64_t period_us);

/* Set KEY=VALUE in a NULL-terminated env vector, replacing an existing KEY. */
void spec_env_set(char ***env, const char *kv);
/* The value of KEY, or NULL. */
const char *spec_env_get(char *const *env, const char *key);
/*
 * An -e argument: "KEY=VALUE" is taken as is; "KEY" takes the value from lookup (the host's
 * environment; NULL means getenv) or is skipped when unset. -EINVAL for "" or "=x".
 */
int spec_env_add(char ***env, const char *arg, const char *(*lookup)(const char *key));
/* The lines of an --env-file: blank lines and '#' comments skipped, otherwise as -e. */
int spec_env_file(char ***env, const char *text, const char *(*lookup)(const char *key), char **ret_error);

/* -v HOST:CTR[:ro|rw]; both absolute. */
int spec_parse_volume(const char *s, struct container_volume *ret, char **ret_error);

struct spec_overrides {
        char **cmd;          /* CMD... from the command line, or NULL */
        const char *entrypoint; /* --entrypoint ("" clears it), or NULL */
        char **env;          /* -e / --env-file, already merged in order */
        const char *workdir; /* -w */
        const char *user;    /* -u */
        const char *hostname;
        bool tty;
};

/*
 * args = entrypoint + cmd (--entrypoint replaces the image's and drops its Cmd, as Docker
 * does; CMD arguments replace Cmd); env = image Env, then PATH default when missing,
 * HOSTNAME, TERM=xterm with a tty, then the overrides; cwd = -w, else WorkingDir, else "/";
 * user = -u, else User. img may be NULL. -EINVAL with *ret_error when there is no command.
 */
int spec_build_process(const struct image_config *img, const struct spec_overrides *o,
                       struct container_config *cfg, char **ret_error);

#define SPEC_DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* "TERM", "SIGTERM", "15", "sigkill" -> signal number; -EINVAL when unknown. */
int spec_parse_signal(const char *s);
