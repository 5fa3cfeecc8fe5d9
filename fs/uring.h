/* SPDX-License-Identifier: Apache-2.0 */
/*
 * FUSE over io_uring (Linux 6.14+): the kernel hands requests to the daemon through io_uring
 * commands instead of read(2) on /dev/fuse, in one queue per CPU (the CPU the caller made the
 * request on), each served by its own threads; the reply and the fetch of the next request are
 * one system call, and callers on different CPUs do not contend for one queue. Measured on a
 * 2-CPU VM, creating files from two or four processes at once: 10-30% faster than /dev/fuse;
 * one process alone: the same.
 *
 * libfuse 3.14 predates it. This module registers the queues, gives each request to
 * fuse_session_process_buf() as if it had been read from /dev/fuse, and takes the reply from
 * the session's I/O layer (passthrough.c), which offers every reply to uring_reply() before
 * writing it to /dev/fuse. FORGET and INTERRUPT stay on /dev/fuse (the kernel sends them
 * there), and notifications: the libfuse loop keeps reading /dev/fuse.
 *
 * Once INIT asked for io_uring, the kernel holds every new request back until each queue has
 * an entry: a queue thread that cannot register makes the kernel give up io_uring for the
 * connection (a REGISTER it refuses), and requests go on through /dev/fuse.
 *
 * A request is answered by its handler before the handler returns, on its thread (every
 * handler here does); one that is not gets EIO. A reply is committed when the handler has
 * returned, so a reply to a request the kernel no longer waits for cannot be told from one
 * it took (over /dev/fuse writev fails with ENOENT): over io_uring that happens only when
 * the connection is aborted, whose requests are all ended anyway.
 *
 * The kernel offers it in INIT only when the fuse module's parameter enable_uring is on;
 * uring_setup() turns it on (it only makes the kernel offer it; daemons that do not ask are
 * not affected).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct fuse_session;

/* Before the mount: the session the queues serve and whether to use io_uring when the kernel
 * offers it (want: also turn the module parameter on). */
void uring_setup(struct fuse_session *se, bool want);
/* While answering INIT, which offered io_uring: make the rings for the largest request
 * argument payload. false (and io_uring is not asked for) when they cannot be made. */
bool uring_prepare(size_t payload);
/* After the kernel took the INIT reply (ok: whether it did): start the queues' threads, or
 * free what uring_prepare made. */
void uring_start(bool ok);
/* Once the mount is gone: stop the queues' threads (each finishes the request it has). */
void uring_stop(void);
/* How many requests came through io_uring so far (the daemon logs it when it ends). */
unsigned long uring_requests(void);

/*
 * A reply the session writes (header in iov[0], then the arguments): when it answers a request
 * that came through io_uring it goes to that request's ring entry and the return is its length,
 * as writev(2) would return; else -1, and it goes to /dev/fuse.
 */
ssize_t uring_reply(const struct iovec *iov, int count);
/* The same for a reply of len bytes libfuse splices from the pipe fd: if this thread is
 * answering a request that came through io_uring, the bytes are read into its ring entry and
 * the return is len (or -errno); else -1. */
ssize_t uring_reply_splice(int fd, size_t len);
/* Where this thread's reply argument of up to size bytes goes when it answers a request that
 * came through io_uring (its ring entry's payload), else NULL. A reply whose argument was
 * written there (a READ's data, read straight from the file) is not copied again. */
void *uring_payload(size_t size);
