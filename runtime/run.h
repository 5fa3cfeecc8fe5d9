/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Running containers: start (attached, or detached under a small monitor process), exec, stop,
 * kill, wait, remove. Whoever started a container waits for it: the `ctfs run`/`start -a`
 * process itself when attached, else a monitor forked off for it, which writes its output to
 * containers/<id>/container.log. Either one records the state (running, then the exit code),
 * forwards signals it receives to the container, removes the cgroup at the end and the whole
 * container with --rm.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "container.h"
#include "store.h"

/* The container's root: <mountpoint>/containers/<id> of the store's FUSE daemon. -ENOTCONN
 * when the store is not mounted. */
int run_rootfs(store *s, const char *id, char **ret_path);

struct run_options {
        bool attach;      /* wait here, the container's stdio is ours */
        bool interactive; /* stdin goes to the container (with attach) */
};

/*
 * Start a created or exited container. attach: returns its exit status in *ret_exit_code.
 * Detached: returns once the command runs (the monitor keeps going). On failure -errno,
 * *ret_error, and *ret_exit_code = 125 (ctfs failed), 126 (cannot execute) or 127 (not found).
 * -EBUSY when it is running already.
 */
int run_start(store *s, const char *id, const struct run_options *o, int *ret_exit_code, char **ret_error);

struct run_exec_options {
        char **args;
        char **env;        /* -e KEY=VALUE, added to the container's */
        const char *cwd;   /* NULL: the container's */
        const char *user;  /* NULL: the container's */
        bool interactive;
        bool tty;
};
/* Run a command in a running container and wait for it: its exit status in *ret_exit_code. */
int run_exec(store *s, const char *id, const struct run_exec_options *o, int *ret_exit_code, char **ret_error);

/* Signal the container's pid 1. -ESRCH when not running. */
int run_kill(store *s, const char *id, int sig);
/* Stop signal (the image's StopSignal or SIGTERM), then SIGKILL after timeout seconds (never
 * when it is -1); returns once the exit is recorded. */
int run_stop(store *s, const char *id, int timeout);
/* Wait until the container is not running; its exit code. */
int run_wait(store *s, const char *id, int *ret_exit_code);
/* Remove a --rm container that ended without its monitor removing it (`ctfs run --rm` killed
 * by SIGKILL), keeping its exit code for `wait`; true when it did. */
bool run_reap(store *s, const char *id);
/* Remove a container; a running one only with force (killed first). -EBUSY otherwise. */
int run_remove(store *s, const char *id, bool force);

/* The log of a detached container: what it wrote to stdout to out_fd, to stderr to err_fd (a
 * log from before the streams were kept apart: all to out_fd); tail >= 0: only its last tail
 * lines; follow: then what comes, until it stops. */
int run_logs(store *s, const char *id, int out_fd, int err_fd, bool follow, long tail);
