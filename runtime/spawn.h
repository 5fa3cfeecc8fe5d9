/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Starting a container's process, and exec into a running one.
 *
 * spawn_container: clone into new mount, pid, uts, ipc (and net for --network none) namespaces;
 * the parent moves the child into the cgroup, then the child enters a new cgroup namespace,
 * makes / private, binds the container view onto itself, mounts /proc (Docker's masked and
 * read-only paths), a tmpfs /dev (standard nodes, devpts, shm, mqueue, fd links, no fuse),
 * /sys read-only (with the cgroup hierarchies read-only below it), the generated
 * /etc/hosts, /etc/hostname and /etc/resolv.conf and the volumes, every target resolved
 * inside the view (RESOLVE_IN_ROOT) so no link in the image leads a mount outside; then
 * pivot_root, detaches the old root, opens the pty in its own devpts, sets the user,
 * capabilities, seccomp and no_new_privs, and execs. Setup errors come back over a socket
 * with the exit status Docker would give (125; 126 cannot execute; 127 not found).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/types.h>

#include "cgroup.h"
#include "container.h"

struct secprofile;

struct spawn_params {
        const struct container_config *cfg;
        const char *rootfs;  /* host path of the container's view */
        const char *dir;     /* host path of containers/<id> (hosts, hostname, resolv.conf) */
        uint64_t caps;
        cgroup *cg;
        const struct secprofile *seccomp; /* the default profile, compiled; NULL: compile it in the child */
        int stdio[3];        /* the container's stdin/out/err when there is no tty */
        struct winsize ws;   /* initial pty size (0 = leave) */
        bool die_with_parent;
};

struct spawn_result {
        pid_t pid;
        int pidfd;
        uint64_t pid_start;
        int pty_master;      /* -1 without a tty */
};

/*
 * 0 and *ret filled when the process is running the container's command. On failure: -errno,
 * *ret_exit_code (125/126/127) and *ret_error; the child is reaped already.
 */
int spawn_container(const struct spawn_params *p, struct spawn_result *ret, int *ret_exit_code, char **ret_error);

struct exec_params {
        const struct container_config *cfg;
        pid_t pid;           /* the container's pid 1 */
        uint64_t pid_start;
        cgroup *cg;
        const struct secprofile *seccomp; /* as in spawn_params */
        uint64_t caps;
        char **args;
        char **env;          /* the full environment */
        const char *cwd;
        const char *user;
        bool tty;
        int stdio[3];
        struct winsize ws;
};

int spawn_exec(const struct exec_params *p, struct spawn_result *ret, int *ret_exit_code, char **ret_error);

/* Exit status as a shell reports it: the code, or 128+N for a signal. */
int spawn_status_to_exit(int status);
