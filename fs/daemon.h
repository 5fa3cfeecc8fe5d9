/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The FUSE daemon's life: mount the store's view at a directory, find a live mount, unmount.
 *
 * One daemon per store. It records itself in <root>/mount.json ({"pid", "start", "mountpoint"};
 * "start" is the process start time, so a recycled pid is not taken for the daemon) and removes
 * the record when it exits cleanly; a record whose process is gone is stale and ignored.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "store.h"

struct daemon_options {
        bool foreground; /* serve in this process; return when unmounted */
        bool debug;      /* libfuse logs every request on stderr (keeps stderr open) */
        bool no_uring;   /* requests through /dev/fuse only, never FUSE over io_uring (uring.h) */
};

/*
 * Mount the store at mountpoint (created when missing). Without foreground, returns once the
 * mount answers, the daemon running detached in the background. -EBUSY when the store is
 * already mounted. On failure *ret_error (if ret_error) gets a one-line message to print.
 */
int daemon_mount(store *s, const char *mountpoint, const struct daemon_options *o, char **ret_error);
/* Unmount (mountpoint NULL: where the record says) and wait for the daemon to exit. A daemon
 * that was killed leaves a dead mount: it is unmounted just the same. */
int daemon_umount(store *s, const char *mountpoint, char **ret_error);
/* The live mount of this store: 0 and its mountpoint, or -ENOENT. */
int daemon_find(store *s, char **ret_mountpoint);

/* Internal, between daemon.c and fuse.c (which, with uring.c, includes libfuse). */
int daemon_serve(store *s, const char *mountpoint, const struct daemon_options *o, int ready_fd);
int daemon_record(store *s, const char *mountpoint);
void daemon_unrecord(store *s);
