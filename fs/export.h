/* SPDX-License-Identifier: Apache-2.0 */
/* The merged tree of an image or a container as a tar stream (like `docker export`). */
#pragma once

#include "store.h"

int export_image(store *s, const char *id, int out_fd, char **ret_error);
/* Everything under a directory (a container's view) as a tar stream, its root as "./": owners,
 * modes, times, xattrs, hardlinks; sockets are left out. */
int export_dir(int dirfd, int out_fd, char **ret_error);
