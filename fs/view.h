/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The namespace the daemon serves, without FUSE: node ids, lookups, attributes, directory
 * listings and the operations, so that unit tests drive it exactly as the FUSE adapter does.
 *
 *   /                               read-only
 *   /images/<registry>/<repo...>/<name>:<tag>/   an image's merged tree, read-only (EROFS)
 *   /containers/<id>/               a container: image tree + upper dir, writable
 *   /containers/<name> -> <id>      for named containers
 *
 * Node ids follow the FUSE rules: every successful lookup-like reply (lookup, create, mkdir,
 * mknod, symlink, link) counts one reference that view_forget() gives back; VIEW_ROOT_ID is
 * never forgotten. Inode numbers (st_ino) are stable for the life of the view: image entries
 * take theirs from the tree (hardlinks share one), container entries from their lower origin or
 * from a map of upper inodes. One inode is one node id, whatever name it is reached by: the
 * names of a hardlink set (in an image or a container, before and after copy-up) resolve to
 * the same id, so the kernel keeps one inode for them (link count, attributes, page cache). The list of images and containers is re-read when the store
 * changes (refs.json, containers/), so no remount is needed.
 *
 * Thread safety: every function may be called from several threads at once.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "store.h"

#define VIEW_ROOT_ID 1

typedef struct view view;
typedef struct view_file view_file;
typedef struct view_dir view_dir;

struct view_entry {
        uint64_t id; /* 0 with a negative entry (only from view_lookup with -ENOENT) */
        struct stat st;
        double entry_timeout;
        double attr_timeout;
};

/* Who asks: owner of new files, and the group rule for setgid directories. */
struct view_ctx {
        uid_t uid;
        gid_t gid;
};

int view_new(store *s, view **ret);
void view_free(view *v);
/* Image files read ahead so far (prefetch.h: a reader going through a directory's files). */
uint64_t view_prefetched(view *v);
/* Where the data of container files still in the image goes when they are read ahead: fn
 * puts len bytes at offset 0 into the kernel's cache of node id (FUSE_NOTIFY_STORE). Set once,
 * before the view serves. */
typedef void view_store_fn(void *ud, uint64_t id, const void *data, size_t len);
void view_set_store(view *v, view_store_fn *fn, void *ud);
/* No more stores from now on; returns once those under way have ended (before the session's
 * fd goes). */
void view_stop_store(view *v);
/* Stop reading ahead (its threads end). No request may be served meanwhile. */
void view_stop_prefetch(view *v);
/* Container files whose data view_set_store's function was given so far. */
uint64_t view_stored(view *v);
/* Containers the view keeps a record of: those in the store, and removed ones that the kernel
 * still knows inodes of (for tests and the daemon's end line). */
size_t view_containers_held(view *v);

/* -ENOENT fills ret as a negative entry (id 0) with the timeout to cache it for. */
int view_lookup(view *v, uint64_t parent, const char *name, struct view_entry *ret);
void view_forget(view *v, uint64_t id, uint64_t nlookup);
/* f may be NULL; with a file, the attributes come from it (also after unlink). */
int view_getattr(view *v, uint64_t id, view_file *f, struct stat *ret, double *ret_timeout);

enum {
        VIEW_SET_MODE = 1 << 0,
        VIEW_SET_UID = 1 << 1,
        VIEW_SET_GID = 1 << 2,
        VIEW_SET_SIZE = 1 << 3,
        VIEW_SET_ATIME = 1 << 4,
        VIEW_SET_MTIME = 1 << 5,
        VIEW_SET_ATIME_NOW = 1 << 6,
        VIEW_SET_MTIME_NOW = 1 << 7,
};
int view_setattr(view *v, uint64_t id, view_file *f, const struct stat *attr, unsigned valid, struct stat *ret,
                 double *ret_timeout);
int view_readlink(view *v, uint64_t id, char **ret_target);

int view_mknod(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode, dev_t rdev,
               struct view_entry *ret);
int view_mkdir(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode,
               struct view_entry *ret);
int view_symlink(view *v, const struct view_ctx *c, uint64_t parent, const char *name, const char *target,
                 struct view_entry *ret);
int view_link(view *v, uint64_t id, uint64_t newparent, const char *newname, struct view_entry *ret);
int view_unlink(view *v, uint64_t parent, const char *name);
int view_rmdir(view *v, uint64_t parent, const char *name);
int view_rename(view *v, uint64_t parent, const char *name, uint64_t newparent, const char *newname,
                unsigned flags);

/* Files. keep_cache: the kernel's cached data stays valid across opens: image files never
 * change, and every change to a container file goes through the kernel (one node per inode,
 * also for hardlinks; a copy-up copies the very data the kernel caches). */
int view_open(view *v, uint64_t id, int flags, view_file **ret, bool *ret_keep_cache);
int view_create(view *v, const struct view_ctx *c, uint64_t parent, const char *name, mode_t mode, int flags,
                struct view_entry *ret, view_file **ret_file);
/* The fd to read size bytes at off from (splice); valid until view_release. 1 when no one fd
 * has them (a copy-up under way, upper_copy.h, has copied part of them): use view_read. */
int view_read_fd(view *v, view_file *f, off_t off, size_t size, int *ret_fd);
ssize_t view_read(view *v, view_file *f, void *buf, size_t size, off_t off);
ssize_t view_write(view *v, view_file *f, const void *buf, size_t size, off_t off);
/* The fd to write size bytes to at off (for the FUSE adapter's buffer copies), or -errno;
 * every fd is followed by view_write_end once written. */
int view_write_begin(view_file *f, off_t off, size_t size);
void view_write_end(view_file *f);
int view_fsync(view_file *f, bool datasync);
int view_fallocate(view_file *f, int mode, off_t off, off_t len);
off_t view_lseek(view_file *f, off_t off, int whence);
void view_release(view_file *f);
/* What holds an open file's data, for the kernel to use it directly (passthrough): an image
 * file's object, a container file's image object (until a copy-up), or its upper file, or
 * (COPYING) an upper file whose data is still being copied: not the kernel's to use. */
enum view_data { VIEW_DATA_IMAGE, VIEW_DATA_LOWER, VIEW_DATA_UPPER, VIEW_DATA_COPYING };
int view_file_data(view_file *f, enum view_data *ret_kind);
/* Whether f, a container file opened while still in the image, still is: no copy-up in its
 * container since it was opened (else, or for other files, false). */
bool view_file_current(view *v, view_file *f);

/* Directories: positions are opaque cookies > 0; 0 starts. A view_dir is a cursor only: a
 * position from one handle goes on with another (the FUSE adapter lists directories without
 * opendir, with a new handle per request); every entry that does not change meanwhile comes
 * exactly once, whatever other readers of the directory do. */
int view_opendir(view *v, uint64_t id, view_dir **ret);
/* Entry at position off (0 = first): name, st (st_ino and the type bits of st_mode) and the
 * next position. -ENOENT at the end. The name is valid until the next call with d. */
int view_readdir(view *v, view_dir *d, off_t off, const char **ret_name, struct stat *ret_st, off_t *ret_next);
/* The directory a view_dir lists (for readdirplus lookups). */
uint64_t view_dir_id(view_dir *d);
/* The kernel may keep its listing: the root and image directories never change, and a
 * container's change only through the kernel, which drops a directory's cached listing when it
 * changes it. The others (images/, its prefix dirs, containers/) change with the store. */
bool view_dir_cacheable(view_dir *d);
void view_releasedir(view_dir *d);
/* A reader found the end (an empty reply): the snapshot kept for the directory may go (a later
 * reader at any position makes another). */
void view_readdir_end(view *v, view_dir *d);

ssize_t view_getxattr(view *v, uint64_t id, const char *name, void *buf, size_t size);
ssize_t view_listxattr(view *v, uint64_t id, char *buf, size_t size);
int view_setxattr(view *v, uint64_t id, const char *name, const void *value, size_t size, int flags);
int view_removexattr(view *v, uint64_t id, const char *name);
/* Before a write or truncation by a caller without CAP_FSETID: clear setuid, setgid (when
 * group-executable) and security.capability of a container file, as the kernel does. 1 when
 * something was cleared, 0 when there was nothing to clear. */
int view_kill_priv(view *v, uint64_t id);
int view_statfs(view *v, uint64_t id, struct statvfs *ret);

/* Re-read the store's names now (the daemon calls this when the store changes) and report
 * every name under images/ or containers/ that went away as (parent node id, name), so that
 * the kernel drops what it caches under it: its nodes are then forgotten, and an image tree no
 * name and no node uses any more is unmapped (rmi frees its space while mounted). Called
 * without any lock held; gone may call into the kernel. */
void view_refresh(view *v, void (*gone)(void *ud, uint64_t parent, const char *name), void *ud);
