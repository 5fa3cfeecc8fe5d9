/* SPDX-License-Identifier: Apache-2.0 */
/* FUSE over io_uring on top of libfuse 3.14: see uring.h. */
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "util.h"

/* The kernel ABI (include/uapi/linux/fuse.h, protocol 7.42), which Debian 12's headers and
 * libfuse 3.14 do not have. */
struct ur_in_header {
        uint32_t len, opcode;
        uint64_t unique, nodeid;
        uint32_t uid, gid, pid;
        uint16_t total_extlen, padding;
};
struct ur_out_header {
        uint32_t len;
        int32_t error;
        uint64_t unique;
};
struct ur_ent_in_out {
        uint64_t flags;
        uint64_t commit_id; /* the request's, to give back with its reply */
        uint32_t payload_sz; /* bytes in the payload buffer, either way */
        uint32_t padding;
        uint64_t reserved;
};
#define UR_OP_IN_SZ 128
struct ur_req_header {
        char in_out[128];          /* fuse_in_header of a request, fuse_out_header of a reply */
        char op_in[UR_OP_IN_SZ];   /* the request's first argument (its per-opcode header) */
        struct ur_ent_in_out ent;
};
enum { UR_CMD_REGISTER = 1, UR_CMD_COMMIT_AND_FETCH = 2 };
struct ur_cmd_req { /* in the 80-byte command area of a 128-byte SQE */
        uint64_t flags;
        uint64_t commit_id;
        uint16_t qid;
        uint8_t padding[6];
};

/* Threads per queue (CPU), each with one ring entry: an entry is free only while its thread is
 * waiting, so a request never waits behind another one's disk I/O while a thread is idle. */
#define THREADS_PER_CPU 4
#define MAX_CPUS 4096
/* Room before the payload for the request's header and first argument, so that the request is
 * one buffer for libfuse without copying the payload; a page, so that the payload is aligned
 * as reads from a file opened O_DIRECT want it (a READ is read straight into it). */
#define ROOM 4096

enum { UD_FUSE = 1, UD_STOP = 2 };

struct ur_thread {
        struct ur_req_header hdr; /* registered with the kernel: stays put */
        struct iovec iov[2];
        struct io_uring ring;
        pthread_t thread;
        bool running;
        uint16_t qid;
        char *area; /* ROOM + payload bytes, mmap'd */
        size_t payload_size;
        uint64_t unique; /* the request being answered (0: none) */
        bool replied;    /* and its reply is in hdr and the payload */
};

static struct fuse_session *session;
static int device = -1; /* our own copy of the session's /dev/fuse fd: libfuse closes its copy
                         * when it unmounts, while a lazily unmounted busy mount still has
                         * requests to answer until uring_stop() */
static bool wanted;
static struct ur_thread *threads;
static unsigned nthreads;
static int stop_fd = -1;
static _Thread_local struct ur_thread *current;
static atomic_ulong requests;

unsigned long uring_requests(void) { return requests; }

/* How many CPUs a sysfs list ("0-3,6") names, 0 when unreadable; set[c] (if set) for each
 * CPU c below max. */
static unsigned cpu_list(const char *path, bool *set, unsigned max)
{
        char buf[512];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        unsigned count = 0;
        for (char *p = buf; *p && *p != '\n';) {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (end == p)
                        return 0;
                if (*end == '-') {
                        p = end + 1;
                        b = strtoul(p, &end, 10);
                        if (end == p || b < a)
                                return 0;
                }
                for (unsigned long c = a; set && c <= b && c < max; c++)
                        set[c] = true;
                count += (unsigned)(b - a + 1);
                p = *end == ',' ? end + 1 : end;
        }
        return count;
}

void uring_setup(struct fuse_session *se, bool want)
{
        session = se;
        wanted = want;
        if (!want)
                return;
        /* the kernel offers io_uring in INIT only with this on; it changes nothing for other
         * FUSE daemons, which do not ask for it */
        int fd = open("/sys/module/fuse/parameters/enable_uring", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                char c = 0;
                if (pread(fd, &c, 1, 0) == 1 && c != 'Y')
                        (void)!pwrite(fd, "Y", 1, 0);
                close(fd);
        }
}

static void free_threads(void)
{
        for (unsigned i = 0; i < nthreads; i++) {
                struct ur_thread *t = &threads[i];
                if (t->ring.ring_fd > 0)
                        io_uring_queue_exit(&t->ring);
                if (t->area)
                        munmap(t->area, ROOM + t->payload_size);
        }
        free(threads);
        threads = NULL;
        nthreads = 0;
        if (stop_fd >= 0)
                close(stop_fd);
        stop_fd = -1;
        if (device >= 0)
                close(device);
        device = -1;
}

bool uring_prepare(size_t payload)
{
        /* the kernel's queues: num_possible_cpus() of them, a request going to the one
         * numbered as the CPU it was made on */
        static bool online[MAX_CPUS];
        unsigned queues = cpu_list("/sys/devices/system/cpu/possible", NULL, MAX_CPUS);
        if (!wanted || !session || queues == 0 || queues > MAX_CPUS ||
            cpu_list("/sys/devices/system/cpu/online", online, MAX_CPUS) == 0)
                return false;
        /* a CPU that is not online makes no request: its queue needs only its one entry */
        nthreads = 0;
        for (unsigned q = 0; q < queues; q++)
                nthreads += online[q] ? THREADS_PER_CPU : 1;
        stop_fd = eventfd(0, EFD_CLOEXEC);
        device = fcntl(fuse_session_fd(session), F_DUPFD_CLOEXEC, 0);
        if (stop_fd < 0 || device < 0) {
                free_threads();
                return false;
        }
        threads = xcalloc(nthreads, sizeof(*threads));
        for (unsigned i = 0, q = 0, k = 0; i < nthreads; i++) {
                struct ur_thread *t = &threads[i];
                if (k == (online[q] ? THREADS_PER_CPU : 1u))
                        q++, k = 0;
                k++;
                t->qid = (uint16_t)q;
                t->payload_size = payload;
                t->area = mmap(NULL, ROOM + payload, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (t->area == MAP_FAILED) {
                        t->area = NULL;
                        free_threads();
                        return false;
                }
                t->iov[0] = (struct iovec){ .iov_base = &t->hdr, .iov_len = sizeof(t->hdr) };
                t->iov[1] = (struct iovec){ .iov_base = t->area + ROOM, .iov_len = payload };
                /* the thread enables it: with SINGLE_ISSUER the issuer is who enables it */
                struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
                                                      IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED };
                if (io_uring_queue_init_params(4, &t->ring, &p) < 0) {
                        t->ring.ring_fd = 0;
                        free_threads();
                        return false;
                }
        }
        return true;
}

static void queue_cmd(struct ur_thread *t, uint32_t op, uint64_t commit_id)
{
        struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring); /* 4 entries, at most 2 in use */
        io_uring_prep_rw(IORING_OP_URING_CMD, sqe, device, t->iov, 2, 0);
        sqe->cmd_op = op;
        sqe->user_data = UD_FUSE;
        /* the command: the 80 bytes from offset 48 of the 128-byte SQE */
        struct ur_cmd_req c = { .commit_id = commit_id, .qid = t->qid };
        unsigned char *area = (unsigned char *)(uintptr_t)((uintptr_t)sqe + offsetof(struct io_uring_sqe, cmd));
        memset(area, 0, 80);
        memcpy(area, &c, sizeof(c));
}

/* Give the request now in t's entry to libfuse; its reply lands in the entry (uring_reply). */
static void process(struct ur_thread *t)
{
        struct ur_in_header in;
        memcpy(&in, t->hdr.in_out, sizeof(in));
        uint32_t payload = t->hdr.ent.payload_sz;
        uint64_t commit = t->hdr.ent.commit_id;
        size_t op = in.len - sizeof(in) - payload;
        if (in.len < sizeof(in) + payload || payload > t->payload_size || op > UR_OP_IN_SZ) {
                /* not what the kernel sends: answer EIO rather than hang the caller */
                struct ur_out_header out = { .len = sizeof(out), .error = -EIO, .unique = in.unique };
                memcpy(t->hdr.in_out, &out, sizeof(out));
                t->hdr.ent.payload_sz = 0;
                queue_cmd(t, UR_CMD_COMMIT_AND_FETCH, commit);
                return;
        }
        char *start = t->area + ROOM - op - sizeof(in);
        memcpy(start, &in, sizeof(in));
        memcpy(start + sizeof(in), t->hdr.op_in, op);
        t->replied = false;
        t->unique = in.unique;
        current = t;
        struct fuse_buf buf = { .size = in.len, .mem = start };
        requests++;
        fuse_session_process_buf(session, &buf);
        current = NULL;
        t->unique = 0;
        if (!t->replied) {
                /* every handler here replies before it returns; one that did not (or whose
                 * reply libfuse failed to send) gets EIO rather than a caller waiting forever */
                struct ur_out_header out = { .len = sizeof(out), .error = -EIO, .unique = in.unique };
                memcpy(t->hdr.in_out, &out, sizeof(out));
                t->hdr.ent.payload_sz = 0;
        }
        queue_cmd(t, UR_CMD_COMMIT_AND_FETCH, commit);
}

/*
 * When a queue thread cannot serve: a REGISTER the kernel refuses (an entry without buffers),
 * from a ring of its own, so that the kernel gives up io_uring for the connection and goes on
 * with /dev/fuse. Until every queue has an entry the kernel holds every new request back, so a
 * queue left without one would hang the mount.
 */
static void give_up(void)
{
        struct io_uring ring;
        struct io_uring_params p = { .flags = IORING_SETUP_SQE128 };
        if (io_uring_queue_init_params(2, &ring, &p) < 0)
                return;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_rw(IORING_OP_URING_CMD, sqe, device, NULL, 0, 0);
        sqe->cmd_op = UR_CMD_REGISTER;
        struct io_uring_cqe *cqe;
        if (io_uring_submit_and_wait(&ring, 1) >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0)
                io_uring_cqe_seen(&ring, cqe);
        io_uring_queue_exit(&ring);
}

static void *thread_main(void *arg)
{
        struct ur_thread *t = arg;
        /* Not bound to the queue's CPU (libfuse binds them): on an otherwise idle 2-CPU
         * machine the scheduler then moves a lone caller to the idle CPU after every reply
         * (the woken caller's CPU is busy with this thread), a migration per request that
         * made 10,000 creates 12% slower than over /dev/fuse; unbound, they are as fast as
         * /dev/fuse there and, with callers on every CPU, within 10% of bound ones. */
        /* (liburing 2.3 declares io_uring_enable_rings but does not export it) */
        if (syscall(__NR_io_uring_register, t->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
                give_up();
                return NULL;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
        io_uring_prep_poll_add(sqe, stop_fd, POLLIN);
        sqe->user_data = UD_STOP;
        queue_cmd(t, UR_CMD_REGISTER, 0);
        bool registered = false; /* the kernel took the entry: a request came in it */
        for (;;) {
                int r = io_uring_submit_and_wait(&t->ring, 1);
                if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
                        if (!registered)
                                give_up();
                        break;
                }
                struct io_uring_cqe *cqe;
                if (io_uring_peek_cqe(&t->ring, &cqe) != 0)
                        continue;
                uint64_t ud = cqe->user_data;
                int res = cqe->res;
                io_uring_cqe_seen(&t->ring, cqe);
                if (ud != UD_FUSE || res == -ENOTCONN || res == -ECONNABORTED)
                        break; /* uring_stop, or the connection is gone */
                if (res < 0) {
                        if (!registered)
                                break; /* refused: the kernel goes on with /dev/fuse */
                        /* the kernel dropped the entry (a reply it could not match): a new
                         * one, or the kernel gives up io_uring if it refuses that too */
                        registered = false;
                        queue_cmd(t, UR_CMD_REGISTER, 0);
                        continue;
                }
                registered = true;
                process(t);
        }
        return NULL;
}

void uring_start(bool ok)
{
        if (!threads)
                return;
        if (!ok) {
                free_threads();
                return;
        }
        for (unsigned i = 0; i < nthreads; i++) {
                pthread_attr_t a;
                pthread_attr_init(&a);
                pthread_attr_setstacksize(&a, 1 << 20);
                threads[i].running = pthread_create(&threads[i].thread, &a, thread_main, &threads[i]) == 0;
                pthread_attr_destroy(&a);
                if (!threads[i].running)
                        give_up();
        }
}

void uring_stop(void)
{
        if (!threads)
                return;
        uint64_t one = 1;
        (void)!write(stop_fd, &one, sizeof(one));
        for (unsigned i = 0; i < nthreads; i++)
                if (threads[i].running)
                        pthread_join(threads[i].thread, NULL);
        free_threads();
}

ssize_t uring_reply(const struct iovec *iov, int count)
{
        struct ur_out_header h;
        if (count < 1 || iov[0].iov_len < sizeof(h))
                return -1;
        memcpy(&h, iov[0].iov_base, sizeof(h));
        /* a request is answered by the thread it came to, while it handles it */
        struct ur_thread *t = current;
        if (!t || h.unique == 0 || h.unique != t->unique || t->replied)
                return -1;
        /* the header, then every other byte into the payload */
        memcpy(t->hdr.in_out, &h, sizeof(h));
        size_t n = 0, total = sizeof(h);
        bool fits = true;
        for (int i = 0; i < count; i++) {
                const char *p = iov[i].iov_base;
                size_t len = iov[i].iov_len;
                if (i == 0)
                        p += sizeof(h), len -= sizeof(h);
                total += len;
                if (n + len > t->payload_size) {
                        fits = false;
                        continue;
                }
                if (p != t->area + ROOM + n) /* (else written in place: uring_payload) */
                        memcpy(t->area + ROOM + n, p, len);
                n += len;
        }
        if (!fits) { /* a reply larger than the kernel's own limit: it gets EIO */
                struct ur_out_header e = { .len = sizeof(e), .error = -EIO, .unique = h.unique };
                memcpy(t->hdr.in_out, &e, sizeof(e));
                n = 0;
        }
        t->hdr.ent.payload_sz = (uint32_t)n;
        t->replied = true;
        return (ssize_t)total;
}

void *uring_payload(size_t size)
{
        struct ur_thread *t = current;
        return t && t->unique != 0 && !t->replied && size <= t->payload_size ? t->area + ROOM : NULL;
}

ssize_t uring_reply_splice(int fd, size_t len)
{
        struct ur_thread *t = current;
        if (!t || t->unique == 0 || t->replied || len < sizeof(struct ur_out_header))
                return -1;
        /* libfuse splices a reply (header, then data) only while answering its request; on a
         * failure here the request gets EIO (see process) */
        struct ur_out_header h;
        if (util_read_all(fd, &h, sizeof(h)) != sizeof(h))
                return -EIO;
        size_t rest = len - sizeof(h);
        if (h.unique != t->unique || rest > t->payload_size)
                return -EIO;
        if (util_read_all(fd, t->area + ROOM, rest) != (ssize_t)rest)
                return -EIO;
        memcpy(t->hdr.in_out, &h, sizeof(h));
        t->hdr.ent.payload_sz = (uint32_t)rest;
        t->replied = true;
        return (ssize_t)len;
}
