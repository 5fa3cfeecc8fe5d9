/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FUSE passthrough (Linux 6.9+): for a file opened in passthrough mode the kernel reads,
 * writes and maps a backing file the daemon named (an object file, or an upper file) itself.
 * No READ or WRITE reaches the daemon, and the page cache is the backing file's: every image
 * and container view of one object shares it.
 *
 * libfuse 3.14 predates the feature, so this module speaks the parts of the protocol libfuse
 * does not: it is the session's I/O layer (fuse_session_custom_io), adds FUSE_PASSTHROUGH and
 * FUSE_HANDLE_KILLPRIV_V2 to the INIT reply when the kernel offers them, and a backing id to an
 * OPEN or CREATE reply the caller marked with pt_mark() (libfuse writes a reply on the replying
 * thread).
 *
 * The kernel's rule per inode: at a time, its open files are either all cached (the FUSE
 * inode's page cache) or all passthrough to one backing file; direct-I/O opens mix with both.
 * pt_open() keeps the counts that let it choose, per FUSE node id.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum pt_mode {
        PT_CACHED = 0,      /* the FUSE inode's page cache; data through the daemon */
        PT_PASSTHROUGH = 1, /* the kernel uses the backing file */
        PT_BUSY = 2,        /* refused: the node's open files use another backing file */
};

/* The session's I/O functions (struct fuse_custom_io). */
ssize_t pt_io_read(int fd, void *buf, size_t len, void *ud);
ssize_t pt_io_writev(int fd, struct iovec *iov, int count, void *ud);
ssize_t pt_io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len, unsigned flags, void *ud);

/* The /dev/fuse fd of the session, once mounted (backing files are registered on it). */
void pt_set_device(int fd);
/* Whether the kernel agreed to passthrough in INIT. */
bool pt_enabled(void);
/*
 * Whether the daemon kills setuid, setgid (with group execute) and security.capability
 * itself (FUSE_HANDLE_KILLPRIV_V2, offered with INIT when the kernel has it): the kernel no
 * longer sends a mode change before writes, and writes to a file it found clean cost no
 * GETXATTR each. The daemon must then kill them on writes, truncation and chown by callers
 * without CAP_FSETID; it does so when a caller other than root opens a file for writing or
 * truncates it (writes that pass through never reach the daemon), and chown in the upper dir
 * kills them as on any Linux filesystem.
 */
bool pt_killpriv(void);

/* What an open file's data is. */
enum pt_data {
        PT_IMAGE, /* an image file's object: never changes */
        PT_LOWER, /* a container file still in the image: a copy-up moves it to the upper dir
                   * (refused while opens pass through to the image's copy: pt_change_begin) */
        PT_UPPER, /* a container file in the upper dir */
};

/*
 * How the kernel should open node id's file, whose data is fd. want: start passthrough if the
 * node has no open files in cached mode (an open of a node whose files pass through joins
 * them whatever want says: the kernel requires it). For PT_PASSTHROUGH, *ret_backing is the
 * id to pass to pt_mark(). Every pt_open() but PT_BUSY is matched by one pt_close() with the
 * mode it returned.
 */
enum pt_mode pt_open(uint64_t id, int fd, bool want, enum pt_data data, int32_t *ret_backing);
void pt_close(uint64_t id, enum pt_mode m);
/*
 * Around a change of node id's data that may copy it up (an open for writing or truncating, a
 * truncate): -ETXTBSY while its open files pass through to the image's copy (which the change
 * would leave behind; it waits up to 100 ms for them to go, as the kernel releases a closed
 * file after close(2) returned), else 0, and no passthrough to the image's copy starts until
 * pt_change_end(), which follows every 0.
 */
int pt_change_begin(uint64_t id);
void pt_change_end(uint64_t id);

/* The next OPEN or CREATE reply written by this thread opens in passthrough to backing. */
void pt_mark(int32_t backing);
