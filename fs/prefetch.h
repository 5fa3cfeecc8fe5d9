/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading ahead across files. A directory's entries have consecutive inode numbers in an
 * image's tree (tree_build.c numbers them breadth first, in listing order), so a reader that
 * goes through a directory's files (find | xargs cat, tar -c, cp -r, grep -r) opens inodes in
 * ascending order. When the opens of one tree go up like that, starting on a file that is not
 * in the page cache, the next files' objects are read ahead in the background (the first
 * PREFETCH_FILE_BYTES of each, by POSIX_FADV_WILLNEED), so that their disk reads overlap the
 * FUSE round trips of the files before them instead of following them one by one. Opens in
 * any other order, or of files already cached, start nothing.
 *
 * Thread safety: every function may be called from several threads at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "tree.h"

#define PREFETCH_FILE_BYTES (512u * 1024) /* per file: more is the kernel's own readahead's */

typedef struct prefetch prefetch;

/* Start the background readers (objects are opened in store s). */
int prefetch_new(store *s, prefetch **ret);
/* Stop them (jobs not started are dropped) and free everything. */
void prefetch_free(prefetch *p);

/* Regular file ino of tree t was opened; fd is its object, open. key names the reader's
 * sequence (the tree it goes through: several readers of one tree are told apart by where
 * they are). t must stay mapped during the call only: the jobs copy what they need. With
 * to_store, each file read ahead for this reader is also given to the store function. */
void prefetch_opened(prefetch *p, const void *key, const tree *t, tree_ino ino, int fd, bool to_store);

/* Called by a prefetching thread for a file read ahead (its object open, its reads started)
 * of a reader that asked for it: key and ino as prefetch_opened had them. */
typedef void prefetch_store_fn(void *ud, const void *key, tree_ino ino, int fd, uint64_t size);
void prefetch_set_store(prefetch *p, prefetch_store_fn *fn, void *ud);

/* Objects read ahead so far (for tests and the daemon's end line). */
uint64_t prefetch_count(prefetch *p);
