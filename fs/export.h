/* SPDX-License-Identifier: Apache-2.0 */
/* The merged tree of an image as a tar stream (like `docker export`). */
#pragma once

#include "store.h"

int export_image(store *s, const char *id, int out_fd, char **ret_error);
