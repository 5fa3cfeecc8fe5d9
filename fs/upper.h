/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's writable layer: the upper directory, in the kernel overlayfs on-disk format, over
 * the image's merged tree (the lower). Plain C, no FUSE: the daemon's view and the unit tests
 * call it the same way.
 *
 * On-disk format (what the kernel's overlayfs reads, so `mount -t overlay` with the image view
 * as lowerdir and a copy of the upper dir as upperdir shows the same tree):
 *   - a deleted lower name is a 0/0 character device (a whiteout);
 *   - a directory that hides its lower is marked `trusted.overlay.opaque=y`;
 *   - a directory moved away from its lower path carries `trusted.overlay.redirect=/lower/path`;
 *   - a file whose metadata changed but whose data did not is a metacopy: an upper file of the
 *     right size with no data blocks, `trusted.overlay.metacopy` (empty, the v1 format) and
 *     `trusted.overlay.redirect=/lower/path` naming the lower file that holds the data.
 *     We always write the redirect (also when the path did not change) so the data stays
 *     findable after renames. chmod/chown/utimens/xattr changes and renames of image files
 *     copy no data; data is copied when the file is opened for writing or truncated.
 *     The kernel reads this format with `metacopy=on,redirect_dir=on`.
 *   - not the kernel's: while a big file's data is being copied up in the background, the
 *     file (holes where the copy has not been) carries `trusted.overlay.ctfs-copying`, and the
 *     work dir names it (upper_copy.h); the kernel would read the holes.
 *
 * Every operation works relative to directory fds without following symlinks: path walks
 * inside the upper dir use openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), final components *at() with AT_SYMLINK_NOFOLLOW or
 * O_NOFOLLOW, and inode-changing calls that have no nofollow form go through an O_PATH fd of
 * the exact inode (/proc/self/fd/N). New entries are built in the work dir (a sibling "work"
 * of the upper dir, as overlayfs wants) and published with one rename, so a crash never leaves
 * a half-made entry (a root-owned file, a directory without its opaque mark) in the upper dir.
 * New regular files are the exception: an O_TMPFILE inode in the parent itself gets its owner
 * and mode while nameless, then linkat names it (over a whiteout: a name in the work dir and
 * one rename), which is as atomic and keeps inode allocation out of the work dir (see
 * upper_create).
 *
 * Thread safety: lookups, readdir, readlink and getxattr may run concurrently with each other;
 * anything that changes the upper dir must be serialized against everything else by the caller
 * (the view holds a per-container rwlock).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "store.h"
#include "tree.h"
#include "upper_copy.h"

typedef struct upper upper;

/* A directory of the merged view as the caller knows it (the view caches this per node). */
struct upper_dir {
        const char *path; /* relative to the container root, "" for the root */
        bool merge;       /* lower entries show through: not opaque and backed by a lower dir */
        tree_ino lower;   /* that lower dir */
};

/* One entry of the merged view. */
struct upper_ent {
        /* Merged attributes. When in_upper, st_dev/st_ino are the upper file's; otherwise
         * st_dev is 0 and st_ino is the lower tree inode. */
        struct stat st;
        bool in_upper;
        bool metacopy;  /* upper holds metadata only; the data is the lower's */
        bool has_lower; /* lower-only entries, metacopy files, merged directories */
        tree_ino lower; /* the lower inode (identity; for merged dirs, the lower dir) */
        bool merge;     /* directories: lower children show through */
};

struct upper_dirent {
        char *name;
        uint8_t type; /* DT_* */
};

enum {
        UPPER_SET_MODE = 1 << 0,
        UPPER_SET_UID = 1 << 1,
        UPPER_SET_GID = 1 << 2,
        UPPER_SET_SIZE = 1 << 3,
        UPPER_SET_ATIME = 1 << 4, /* atime.tv_nsec may be UTIME_NOW */
        UPPER_SET_MTIME = 1 << 5,
};

struct upper_attr {
        unsigned valid;
        mode_t mode;
        uid_t uid;
        gid_t gid;
        off_t size;
        struct timespec atime, mtime;
};

/* Create the upper and work directories of a new container ("<dir>/upper", "<dir>/work"),
 * the upper root taking the image root's mode, owner, times and xattrs (as overlayfs would
 * show the root). lower may be NULL. Existing directories are left alone. */
int upper_create_dirs(const char *upper_path, const tree *lower);

/* Open a container's upper dir (absolute path). lower is borrowed, may be NULL (no image);
 * the store is used to open objects (the data of lower files). */
int upper_open(store *s, const tree *lower, const char *upper_path, upper **ret);
void upper_close(upper *u);
void upper_closep(upper **u);

/* Entries are named by their parent dir and name; d == NULL means the container root. */
int upper_lookup(upper *u, const struct upper_dir *d, const char *name, struct upper_ent *ret);
/* The merged attributes of an entry (upper_lookup's st), without decoding which lower dir a
 * directory merges: for stat and permission checks. */
int upper_stat(upper *u, const struct upper_dir *d, const char *name, struct stat *ret);
/* The merged listing of a directory (no "." and ".."); whiteouts and hidden lower names are
 * left out. */
int upper_readdir(upper *u, const struct upper_dir *d, struct upper_dirent **ret, size_t *ret_n);
void upper_dirents_free(struct upper_dirent *e, size_t n);
int upper_readlink(upper *u, const struct upper_dir *d, const char *name, char **ret_target);

/* Open a regular file's data. Read-only opens of lower and metacopy files return the object
 * (*ret_lower = true); write opens and O_TRUNC copy the data up first, that of big files in the
 * background (see upper_copy_of). The fd never has O_APPEND (the kernel picks the offset of each
 * write). */
int upper_open_file(upper *u, const struct upper_dir *d, const char *name, int flags, int *ret_fd,
                    bool *ret_lower);
/* Create and open a new regular file (O_EXCL semantics: -EEXIST when the name exists). */
int upper_create(upper *u, const struct upper_dir *d, const char *name, mode_t mode, uid_t uid, gid_t gid,
                 int flags, int *ret_fd, struct upper_ent *ret);
int upper_mkdir(upper *u, const struct upper_dir *d, const char *name, mode_t mode, uid_t uid, gid_t gid,
                struct upper_ent *ret);
int upper_mknod(upper *u, const struct upper_dir *d, const char *name, mode_t mode, dev_t rdev, uid_t uid,
                gid_t gid, struct upper_ent *ret);
int upper_symlink(upper *u, const struct upper_dir *d, const char *name, const char *target, uid_t uid,
                  gid_t gid, struct upper_ent *ret);
/* A hardlink; a lower file is copied up first (metadata only) with its whole lower link set. */
int upper_link(upper *u, const struct upper_dir *sd, const char *sname, const struct upper_dir *d,
               const char *name, struct upper_ent *ret);
int upper_unlink(upper *u, const struct upper_dir *d, const char *name);
int upper_rmdir(upper *u, const struct upper_dir *d, const char *name);
/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. Never -EXDEV. */
int upper_rename(upper *u, const struct upper_dir *sd, const char *sname, const struct upper_dir *d,
                 const char *name, unsigned flags);
int upper_setattr(upper *u, const struct upper_dir *d, const char *name, const struct upper_attr *a,
                  struct upper_ent *ret);

/* Extended attributes. trusted.overlay.* is the format's own and is invisible and refused.
 * getxattr/listxattr: size 0 asks for the length; return the length or -errno. */
ssize_t upper_getxattr(upper *u, const struct upper_dir *d, const char *name, const char *xname, void *buf,
                       size_t size);
ssize_t upper_listxattr(upper *u, const struct upper_dir *d, const char *name, char *buf, size_t size);
int upper_setxattr(upper *u, const struct upper_dir *d, const char *name, const char *xname, const void *value,
                   size_t size, int flags);
int upper_removexattr(upper *u, const struct upper_dir *d, const char *name, const char *xname);

int upper_statfs(upper *u, struct statvfs *ret);
/* fstat of the upper dir itself (which upper dir this is). */
int upper_root_stat(upper *u, struct stat *ret);

/* The background copy of the data of the upper file fd is open on, while one is under way (with
 * a reference: upper_copy_put), or NULL. The rules for such a file are in upper_copy.h. */
upper_copy *upper_copy_of(upper *u, int fd);
/* The container was removed: its copies stop (upper_close does not wait for them to end). */
void upper_stop_copies(upper *u);
/* The copy into the entry's upper file, while one is under way (a reference), or NULL. */
upper_copy *upper_copy_at(upper *u, const struct upper_dir *d, const char *name);
/* The daemon is exiting: upper_copies_finish. */
int upper_finish_copies(upper *u, int64_t deadline_ms);
/* Incremented whenever a file's data is copied up: readers holding a lower fd reopen. */
uint64_t upper_copyup_gen(const upper *u);
