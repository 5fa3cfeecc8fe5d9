/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Copy-ups of big files in the background (upper.c's copy-ups use it).
 *
 * Opening a container file that is still in the image for writing copies its data to the upper
 * dir first. For a file of COPY_BG_MIN bytes or more, on a filesystem without reflinks (not a
 * hardlinked one, nor one with file capabilities, which the copy's writes would drop), the open
 * does not wait for that copy: the upper file is made at its full size with no data (holes),
 * marked, and published as any copy-up, and a thread copies the object's bytes into it (in
 * chunks), fsyncs it and removes the mark.
 * While a file is being copied (in chunks of a few MiB):
 *   - reads of [0, size) come from the object (upper_copy_reading), which holds those bytes, so
 *     the file is never opened in passthrough mode; but in the chunks opened for writes;
 *   - writes at or past size go to the file (an append does not wait), under upper_copy_lock;
 *     the copy moves the file's mtime as it writes and puts back, after each chunk, the one
 *     the container last gave it (recorded by upper_copy_unlock), which stats show meanwhile
 *     (upper_copy_fix_stat);
 *   - a write below size waits for its chunks only (upper_copy_open): copied then (if the copy
 *     has not yet), on disk, and named in the mark, on disk too, before the write lands, so that
 *     a crash's recovery leaves them alone; every chunk copied by then is opened with them, so a
 *     writer going through the file waits for few such fsyncs. fsync does not wait: what the
 *     container wrote is in the upper file, what it did not is the object's;
 *   - whatever else changes [0, size) (a truncate, fallocate, SEEK_DATA/SEEK_HOLE, setting file
 *     capabilities) waits for the copy to end first (upper_copy_wait).
 *
 * Crashes: the mark is an xattr of the file, trusted.overlay.ctfs-copying = "<object digest in
 * hex> <size>[ <open chunks>]" (a bitmap in hex: chunk k is bit k % 8 of byte k / 8), set before
 * the file gets its name; before that too, a name in the work dir,
 * "copying-<handle type>-<file handle in hex>", is made (both metadata, in order on a journaling
 * filesystem), by which upper_copies_recover finds the file when the container is opened again
 * and copies it then (synchronously), but the open chunks (a ctfs from before chunks, which
 * reads only the first two fields, would copy over those too). The mark goes only after the copied
 * data is fsync'd. While
 * a mark is there the upper dir is not yet in the kernel overlayfs on-disk format: the daemon
 * gives the copies under way a few seconds at exit (upper_copies_finish), and the next mount
 * finishes the rest.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "digest.h"
#include "store.h"

#define COPY_BG_MIN (1 << 20)
#define COPY_CHUNK (4 << 20) /* what a copy copies at a time, and a write below the size waits for */
#define COPY_ENTRY_MAX 256
#define COPY_MARK "trusted.overlay.ctfs-copying"

typedef struct upper_copies upper_copies; /* a container's copies */
typedef struct upper_copy upper_copy;     /* one file's */

upper_copies *upper_copies_new(void);
/* Wait for every copy (to its end, unless stopped), then free. */
void upper_copies_free(upper_copies *cs);
/* Every copy stops at its next chunk (the container was removed); does not wait. What was not
 * copied is copied by upper_copies_recover if the container is opened again. */
void upper_copies_stop(upper_copies *cs);

/*
 * Copy data regions of src's [from, to) to the same offsets of dst (holes stay holes): 0 or
 * -errno. *buf: a bounce buffer for filesystems without copy_file_range (freed by the caller).
 */
int upper_copy_range(int src, int dst, off_t from, off_t to, char **buf);

/* Before publishing fd (a new upper file, size bytes of holes, in the work dir work_fd): mark it
 * and name it in the work dir (entry). -EOPNOTSUPP and the like when the filesystem has no file
 * handles: copy synchronously then. */
int upper_copy_prepare(int fd, int work_fd, const uint8_t digest[DIGEST_LEN], off_t size,
                       char entry[COPY_ENTRY_MAX]);
/* Undo upper_copy_prepare for a file that was not published. */
void upper_copy_abandon(int fd, int work_fd, const char *entry);
/* What a copy needs, all got before the file is published (nothing may fail after). */
struct upper_copy_job {
        int obj, fd, work_fd; /* the object, the upper file, a dup of the work dir: taken */
        dev_t dev;            /* the upper file's */
        ino_t ino;
        off_t size;
        char entry[COPY_ENTRY_MAX];
};
/* Copy j->obj's [0, size) into the upper file (published since upper_copy_prepare) in a
 * thread. */
void upper_copy_start(upper_copies *cs, const struct upper_copy_job *j);
/* Wait until deadline_ms (CLOCK_MONOTONIC, ms) for the copies under way; those not done then
 * stop (the next upper_copies_recover copies them). Returns how many stopped. */
int upper_copies_finish(upper_copies *cs, int64_t deadline_ms);

/* The copy under way into the file that fd (or dev/ino) is open on, with a reference, or NULL. */
upper_copy *upper_copy_find(upper_copies *cs, int fd);
upper_copy *upper_copies_get(upper_copies *cs, dev_t dev, ino_t ino);
/* Whether cs has copies at all (under way, or failed). */
bool upper_copies_busy(upper_copies *cs);
upper_copy *upper_copy_ref(upper_copy *c);
void upper_copy_put(upper_copy *c);
/* Whether the copy is under way, or failed (until the next mount): the file's reads and writes
 * go through upper_copy_reading and upper_copy_open. */
bool upper_copy_active(upper_copy *c);
/* Whether reads at off must come from *ret_obj (valid while the reference is held; -1: nowhere,
 * they fail with EIO) rather than the upper file; either way up to *ret_end (> off). Not the
 * upper file below the size until the copy is done (and for good if it failed), but in the
 * chunks opened for writes. */
bool upper_copy_reading(upper_copy *c, off_t off, off_t *ret_end, int *ret_obj);
/* Before a write of [off, off + len): make the chunks of it below the size writable (copied,
 * opened). 0, or -errno (-EIO: the copy failed or stopped there). */
int upper_copy_open(upper_copy *c, off_t off, off_t len);
/* Wait for the copy to end: 0, or its error (its data below its size is not all there). */
int upper_copy_wait(upper_copy *c);
/* Around a change of the file's mtime (a write past the copied part, utimens). mtime: what
 * the change made it (NULL or UTIME_NOW: now, as a write does; UTIME_OMIT: unchanged), which
 * the copy puts back after each chunk. */
void upper_copy_lock(upper_copy *c);
void upper_copy_unlock(upper_copy *c, const struct timespec *mtime);
/* A stat of the file as the container sees it while the copy runs: the mtime it gave the file
 * (not the copy's), and the blocks of the whole size. */
void upper_copy_fix_stat(upper_copy *c, struct stat *st);
void upper_copies_fix_stat(upper_copies *cs, struct stat *st);
/* upper_copy_wait for the file dev/ino, if a copy into it is under way. */
int upper_copies_wait(upper_copies *cs, dev_t dev, ino_t ino);

/* Copies a crash interrupted, named in the work dir: done now, synchronously (after waiting for
 * a daemon still ending, which holds the file's flock); those that cannot be done (no space, the
 * object gone) join cs as failed copies and are tried again next time. -errno when a marked
 * file could not be looked at: the container must not be served. */
int upper_copies_recover(upper_copies *cs, store *s, int work_fd);
