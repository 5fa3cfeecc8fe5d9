/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tree format: one file per layer index and per merged image tree, read through mmap so
 * that opening an image costs O(1) and a lookup O(log n).
 *
 * File layout (little-endian, all offsets from the start of the file):
 *   struct tree_header
 *   struct tree_inode   inodes[n_inodes]     index = inode number inside the tree, root = 0
 *   struct tree_dirent  dirents[n_dirents]   each directory's entries are contiguous, sorted
 *                                             by name (memcmp, then length)
 *   struct tree_xattr   xattrs[n_xattrs]     each inode's xattrs are contiguous
 *   char                strings[strings_size] names, link targets, xattr names and values
 *
 * Several dirents may name one inode: that is a hardlink set, and nlink counts them.
 * Nothing in a tree file is trusted: every accessor checks bounds, so a corrupt file gives an
 * error, never a crash.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "digest.h"

#define TREE_MAGIC "CTFSTRE1"
#define TREE_ROOT 0u
/*
 * The preferred I/O size (st_blksize) the mount gives image files, as network filesystems give
 * theirs (CIFS 1 MiB, Ceph 4 MiB): every read(2) through the mount costs a fixed amount more than
 * on the disk (the stacking of passthrough, a request to the daemon), so tools that size their
 * reads by it (cat, cp, Python's io) make fewer. Only a hint: the kernel keeps it for stat alone.
 */
#define TREE_FILE_BLKSIZE (1 << 20)

typedef uint32_t tree_ino;

/* Flags on an inode. Whiteouts and opaque markers only occur in layer indexes. */
enum {
        TREE_F_WHITEOUT = 1u << 0, /* this name deletes the same name in lower layers */
        TREE_F_OPAQUE = 1u << 1,   /* directory hides everything below it in lower layers */
        TREE_F_HLINK_REF = 1u << 2, /* hardlink to a path in a lower layer; target in str */
        TREE_F_IMPLICIT = 1u << 3, /* directory created only because an entry lies below it */
};

struct tree_header {
        char magic[8];
        uint32_t version;
        uint32_t n_inodes;
        uint32_t n_dirents;
        uint32_t n_xattrs;
        uint64_t strings_size;
        uint64_t total_size; /* the file's size, checked at open */
};

struct tree_inode {
        uint32_t mode; /* S_IFMT | permission bits, including setuid/setgid/sticky */
        uint32_t uid;
        uint32_t gid;
        uint32_t nlink;
        uint64_t size;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        uint32_t flags;
        uint64_t rdev;
        uint32_t parent; /* directories: the parent directory (the root is its own parent) */
        uint32_t xattr_first;
        uint32_t xattr_count;
        uint32_t a; /* directory: first dirent; symlink or HLINK_REF: string offset */
        uint32_t b; /* directory: dirent count; symlink or HLINK_REF: string length */
        uint32_t reserved;
        uint8_t digest[DIGEST_LEN]; /* regular file: sha256 of its bytes = the object key */
};

struct tree_dirent {
        uint32_t name_off;
        uint32_t name_len;
        uint32_t ino;
};

struct tree_xattr {
        uint32_t name_off;
        uint32_t name_len;
        uint32_t value_off;
        uint32_t value_len;
};

typedef struct tree tree;

/* Map a tree file (relative to dirfd). */
int tree_open(int dirfd, const char *path, tree **ret_tree);
/* Use a tree held in memory (tests, fuzzing); data must outlive the tree. */
int tree_open_mem(const void *data, size_t len, tree **ret_tree);
void tree_close(tree *t);
void tree_closep(tree **t);

uint32_t tree_count(const tree *t);
size_t tree_size(const tree *t);
/* NULL when ino is out of range. */
const struct tree_inode *tree_get(const tree *t, tree_ino ino);
/* -ENOENT, -ENOTDIR, -EIO (corrupt) */
int tree_lookup(const tree *t, tree_ino dir, const char *name, size_t name_len, tree_ino *ret_ino);
/* The same, and the entry's position in the directory's listing (tree_dir_entry's idx). */
int tree_lookup_at(const tree *t, tree_ino dir, const char *name, size_t name_len, tree_ino *ret_ino,
                   uint32_t *ret_idx);
/* Walk a relative path ("a/b/c", "" or "." for the root) without following symlinks. */
int tree_resolve(const tree *t, const char *path, tree_ino *ret_ino);
int tree_readlink(const tree *t, tree_ino ino, const char **ret_target, size_t *ret_len);
/* Entries of a directory by position, 0 <= idx < tree_dir_count(). */
uint32_t tree_dir_count(const tree *t, tree_ino dir);
int tree_dir_entry(const tree *t, tree_ino dir, uint32_t idx, const char **ret_name, size_t *ret_len,
                   tree_ino *ret_ino);
int tree_xattr_at(const tree *t, tree_ino ino, uint32_t idx, const char **ret_name, size_t *ret_name_len,
                  const void **ret_value, size_t *ret_value_len);
/* -ENODATA when absent. */
int tree_getxattr(const tree *t, tree_ino ino, const char *name, const void **ret_value, size_t *ret_len);
/* getxattr(2)'s answer for an entry's xattr: copied into buf, its length when size is 0,
 * -ERANGE when buf is too small, -ENODATA when there is none. */
ssize_t tree_getxattr_buf(const tree *t, tree_ino ino, const char *name, void *buf, size_t size);

/*
 * The builder: a mutable tree in memory, used to index a layer while its tar streams by and to
 * merge layers into an image tree. Paths are relative, already checked by the caller
 * (path_normalize in path.h): no "..", no empty components.
 */
typedef struct tbuild tbuild;
typedef struct tnode tnode;

struct tattr {
        uint32_t mode;
        uint32_t uid, gid;
        uint64_t size;
        int64_t mtime_sec;
        uint32_t mtime_nsec;
        uint64_t rdev;
        uint8_t digest[DIGEST_LEN];
};

tbuild *tbuild_new(void);
void tbuild_free(tbuild *b);
void tbuild_freep(tbuild **b);
/* Add or replace the entry at path (parents are created as implicit directories). A directory
 * added over an existing directory keeps its children and takes the new attributes. */
int tbuild_add(tbuild *b, const char *path, const struct tattr *a, const char *link_target,
               tnode **ret_node);
int tbuild_add_xattr(tbuild *b, tnode *n, const char *name, const void *value, size_t len);
/* A hardlink to an entry already in this builder; -ENOENT when target is not there. */
int tbuild_add_hardlink(tbuild *b, const char *path, const char *target);
/* A hardlink whose target lies in a lower layer: resolved when layers are merged. */
int tbuild_add_hardlink_ref(tbuild *b, const char *path, const char *target);
int tbuild_add_whiteout(tbuild *b, const char *path);
int tbuild_set_opaque(tbuild *b, const char *dir_path);
/* Apply a layer index on top of the builder with OCI semantics (whiteouts, opaque dirs,
 * replacement of dirs by files and back, hardlink references). */
int tbuild_apply_layer(tbuild *b, const tree *layer);
/* Serialize (atomically: temp file + rename) to dirfd/path. */
int tbuild_write(tbuild *b, int dirfd, const char *path);
/* Serialize into a malloc'd buffer. */
int tbuild_serialize(tbuild *b, void **ret_data, size_t *ret_len);
/* Number of distinct inodes currently in the builder. */
size_t tbuild_count(const tbuild *b);
