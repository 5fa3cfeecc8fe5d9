/* SPDX-License-Identifier: Apache-2.0 */
/* Names that come from images are untrusted: normalize them before they reach the tree. */
#pragma once

#include <stddef.h>

/*
 * Normalize an archive member name into a relative path inside the image: strips a leading
 * "./" and "/" (absolute names are confined to the image root, as docker does), collapses
 * "//" and "/./", drops a trailing "/". Returns -EINVAL for any ".." component or an empty
 * component list that is not the root; an empty result ("") means the root itself.
 */
int path_normalize(const char *in, char **ret_path);
/* Last component and the parent part of a normalized path (parent "" for the root). */
const char *path_basename(const char *path);
char *path_dirname(const char *path);
