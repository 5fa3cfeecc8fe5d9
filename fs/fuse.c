/* SPDX-License-Identifier: Apache-2.0 */
/* The FUSE adapter: libfuse3 low-level requests → view.h. The only file that includes libfuse. */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "passthrough.h"
#include "uring.h"
#include "util.h"
#include "view.h"

/* READ requests at most this large: libfuse splices a reply (header + data) through a pipe
 * it can grow only to /proc/sys/fs/pipe-max-size (1 MiB by default); a 1 MiB READ does not fit
 * and falls back to malloc + pread + writev (page faults and munmap of a fresh 1 MiB buffer per
 * request: half of the daemon's time in a cold sequential read). */
#define MAX_READ 524288
/* The mount's readahead window: two MAX_READ requests in flight for a sequential reader. The
 * kernel gives a FUSE mount 128 KiB (1,024 READs for 256 MiB). */
#define READ_AHEAD_KB 1024
#define STR_(x) #x
#define STR(x) STR_(x)

static view *V(fuse_req_t req) { return fuse_req_userdata(req); }
/* The session, for notifications sent from request handlers. */
static struct fuse_session *session;
/* The kernel lists directories without OPENDIR/RELEASEDIR round trips (see op_opendir). */
static bool no_opendir;
/* An open file's handle: the view_file, with its pt_mode in the low bits (it is malloc'd). */
static view_file *F(struct fuse_file_info *fi) { return fi ? (view_file *)(uintptr_t)(fi->fh & ~(uint64_t)3) : NULL; }
static enum pt_mode M(struct fuse_file_info *fi) { return (enum pt_mode)(fi->fh & 3); }

/* The open flag of execve(2)'s opens (the kernel's __FMODE_EXEC). */
#define OPEN_EXEC 040

/* An ELF file's first bytes (a program or a shared library). */
static bool elf_magic(const void *p, size_t len) { return len >= 4 && memcmp(p, "\177ELF", 4) == 0; }

/* Whether a container file still in the image, whose object is fd, is opened read-only and is
 * an ELF file (a program or a shared library: what every process of a container maps). */
static bool elf_read(int fd, int flags)
{
        if (!pt_enabled() || (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
                return false;
        char magic[4];
        ssize_t n = pread(fd, magic, sizeof(magic), 0);
        return n > 0 && elf_magic(magic, (size_t)n);
}

/*
 * Fill fi for an open of node ino as f (flags: the open's), or return PT_BUSY. The kernel reads
 * and writes f's data itself (passthrough, see passthrough.h) when it is an image file, an
 * upper file, or an image file that a container executes or opens read-only as an ELF file
 * (its programs and the shared libraries they map): the kernel refuses to open a file being
 * executed for writing, and pt_change_begin() refuses to change one that such readers hold, so
 * no copy-up can come while they have it, and every container's processes share the object's
 * page cache (one copy of libc in memory, not one per container), as overlayfs shares the
 * lower file's. Other container files still in the image stay cached in the kernel and are
 * read through us: a copy-up must be able to move their data to the upper file under open
 * readers. Returns the mode to release.
 */
static enum pt_mode open_mode(view *v, fuse_ino_t ino, view_file *f, int flags, bool keep_cache,
                              struct fuse_file_info *fi)
{
        enum view_data kind;
        int fd = view_file_data(f, &kind);
        enum pt_data data = kind == VIEW_DATA_IMAGE ? PT_IMAGE : kind == VIEW_DATA_LOWER ? PT_LOWER : PT_UPPER;
        /* (a file being copied has holes where the copy has yet to write: reads come to us) */
        bool want = kind != VIEW_DATA_COPYING && (data != PT_LOWER || (flags & OPEN_EXEC) || elf_read(fd, flags));
        int32_t backing = 0;
        enum pt_mode m = pt_open(ino, fd, want, data, &backing);
        if (m == PT_PASSTHROUGH && data == PT_LOWER && !view_file_current(v, f)) {
                /* a copy-up came between view_open and now (pt_change_begin refuses them only
                 * from now on): this reader must read through us, to move to the copy */
                pt_close(ino, m);
                m = pt_open(ino, fd, false, data, &backing);
                if (m == PT_PASSTHROUGH) {
                        /* (joined another such reader, which backs off too: refused, as an
                         * open that would mix the copy with the image's is) */
                        pt_close(ino, m);
                        m = PT_BUSY;
                }
        }
        if (m == PT_BUSY)
                return m;
        fi->fh = (uint64_t)(uintptr_t)f | m;
        /* the kernel refuses keep_cache with passthrough; and an upper file's cached pages
         * may predate writes that passed through */
        fi->keep_cache = m == PT_CACHED && keep_cache && !(data == PT_UPPER && pt_enabled());
        if (m == PT_PASSTHROUGH)
                pt_mark(backing);
        return m;
}

/* Clear setuid, setgid and security.capability as the kernel would before a write by the
 * caller (FUSE_HANDLE_KILLPRIV_V2, see passthrough.h): 0, or -errno. */
static int kill_priv(fuse_req_t req, fuse_ino_t ino)
{
        if (!pt_killpriv() || fuse_req_ctx(req)->uid == 0)
                return 0;
        int r = view_kill_priv(V(req), ino);
        if (r > 0)
                /* the kernel's cached mode must not outlive the change (no write may follow to
                 * refresh it); attributes only, no page lock: safe from a handler */
                fuse_lowlevel_notify_inval_inode(session, ino, -1, 0);
        return r < 0 ? r : 0;
}

/* Whether an open with these flags may change the file's data (and so copy it up). */
static bool open_changes(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

static void fill_entry(struct fuse_entry_param *e, const struct view_entry *ve)
{
        memset(e, 0, sizeof(*e));
        e->ino = ve->id;
        e->generation = 1;
        e->attr = ve->st;
        e->attr_timeout = ve->attr_timeout;
        e->entry_timeout = ve->entry_timeout;
}

static void reply_entry(fuse_req_t req, int r, const struct view_entry *ve)
{
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        view *v = V(req); /* req is gone once replied to */
        struct fuse_entry_param e;
        fill_entry(&e, ve);
        if (fuse_reply_entry(req, &e) == -ENOENT)
                view_forget(v, ve->id, 1); /* the request was interrupted: no reference */
}

/* view_set_store: data for the kernel's cache of a file (an error means the kernel has no
 * such inode any more, or the mount is going: nothing to do) */
static void store_data(void *ud, uint64_t id, const void *data, size_t len)
{
        (void)ud;
        if (pt_enabled() && elf_magic(data, len))
                return; /* an ELF file is read through the object's cache (open_mode): unused here */
        struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
        bv.buf[0].mem = (void *)data;
        (void)fuse_lowlevel_notify_store(session, id, 0, &bv, 0);
}

static void op_init(void *ud, struct fuse_conn_info *conn)
{
        (void)ud;
        /* splice file data from the object files straight into the kernel */
        conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
        if (conn->capable & FUSE_CAP_SPLICE_READ)
                conn->want |= FUSE_CAP_SPLICE_READ;
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
        /* Every directory read is a READDIRPLUS: the entries come with their attributes,
         * which cost us nothing (the image's tree has them). libfuse asks for the kernel's
         * "auto" mode by default, in which only a directory's first buffer is READDIRPLUS and
         * the rest READDIR unless the reader stats the entries meanwhile: `find -printf` over
         * an image then cost a LOOKUP per entry (a cold walk 1.7-2x slower), and `find | xargs
         * cat` a LOOKUP per file before each OPEN. */
        if (conn->capable & FUSE_CAP_READDIRPLUS)
                conn->want |= FUSE_CAP_READDIRPLUS;
        conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
        if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
                conn->want |= FUSE_CAP_PARALLEL_DIROPS;
        if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
                conn->want |= FUSE_CAP_CACHE_SYMLINKS; /* a symlink's target never changes in place */
        no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
        /* We write as root, so the host would keep setuid bits on writes and chown by the
         * container: let the kernel's FUSE client clear them (it sends us a setattr). */
        conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
        /* No writeback cache: the small-file pattern (create, write, close) gains nothing from
         * it, since close() writes the dirty pages back at once (fuse_flush), and it would make
         * the kernel the owner of sizes, times and O_APPEND offsets, and send READs on
         * write-only opens. */
        conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
        /* 1 MiB writes (libfuse derives max_pages from max_write); reads of MAX_READ (see
         * there). The kernel caps the readahead we may ask for here at what its bdi has
         * (128 KiB); raise_readahead raises the bdi's read_ahead_kb once mounted. */
        conn->max_write = 1 << 20;
        conn->max_readahead = UINT32_MAX;
        conn->max_read = MAX_READ; /* must equal the max_read= mount option */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        struct view_entry ve;
        int r = view_lookup(V(req), parent, name, &ve);
        if (r == -ENOENT && ve.entry_timeout > 0) {
                struct fuse_entry_param e = { .ino = 0, .entry_timeout = ve.entry_timeout };
                fuse_reply_entry(req, &e); /* negative entry the kernel may cache */
                return;
        }
        reply_entry(req, r, &ve);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
        view_forget(V(req), ino, nlookup);
        fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
        for (size_t i = 0; i < count; i++)
                view_forget(V(req), forgets[i].ino, forgets[i].nlookup);
        fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        struct stat st;
        double t;
        int r = view_getattr(V(req), ino, F(fi), &st, &t);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, t);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
        unsigned valid = 0;
        if (to_set & FUSE_SET_ATTR_MODE)
                valid |= VIEW_SET_MODE;
        if (to_set & FUSE_SET_ATTR_UID)
                valid |= VIEW_SET_UID;
        if (to_set & FUSE_SET_ATTR_GID)
                valid |= VIEW_SET_GID;
        if (to_set & FUSE_SET_ATTR_SIZE)
                valid |= VIEW_SET_SIZE;
        if (to_set & FUSE_SET_ATTR_ATIME)
                valid |= VIEW_SET_ATIME;
        if (to_set & FUSE_SET_ATTR_MTIME)
                valid |= VIEW_SET_MTIME;
        if (to_set & FUSE_SET_ATTR_ATIME_NOW)
                valid |= VIEW_SET_ATIME_NOW;
        if (to_set & FUSE_SET_ATTR_MTIME_NOW)
                valid |= VIEW_SET_MTIME_NOW;
        struct stat st;
        double t;
        /* as for a running executable: open files that pass through to the image's copy of
         * the data would not see a truncation of the container's copy */
        int r = valid & VIEW_SET_SIZE ? pt_change_begin(ino) : 0;
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        r = valid ? view_setattr(V(req), ino, F(fi), attr, valid, &st, &t) : view_getattr(V(req), ino, F(fi), &st, &t);
        if (r == 0 && (valid & VIEW_SET_SIZE) && pt_killpriv() && fuse_req_ctx(req)->uid != 0) {
                /* ours to do with FUSE_HANDLE_KILLPRIV_V2 (see passthrough.h); the reply
                 * carries the new mode */
                r = view_kill_priv(V(req), ino);
                if (r >= 0)
                        r = view_getattr(V(req), ino, F(fi), &st, &t);
        }
        if (valid & VIEW_SET_SIZE)
                pt_change_end(ino);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_attr(req, &st, t);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
        char *target = NULL;
        int r = view_readlink(V(req), ino, &target);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_readlink(req, target);
        free(target);
}

static struct view_ctx ctx_of(fuse_req_t req)
{
        const struct fuse_ctx *c = fuse_req_ctx(req);
        return (struct view_ctx){ c->uid, c->gid };
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
        struct view_ctx c = ctx_of(req);
        struct view_entry ve;
        reply_entry(req, view_mknod(V(req), &c, parent, name, mode, rdev, &ve), &ve);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
        struct view_ctx c = ctx_of(req);
        struct view_entry ve;
        reply_entry(req, view_mkdir(V(req), &c, parent, name, mode, &ve), &ve);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
        struct view_ctx c = ctx_of(req);
        struct view_entry ve;
        reply_entry(req, view_symlink(V(req), &c, parent, name, link, &ve), &ve);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
        /* the new name is the same node as ino (see view.h): the kernel updates the inode's
         * link count from the reply, and every name shares its attributes and page cache */
        struct view_entry ve;
        reply_entry(req, view_link(V(req), ino, newparent, newname, &ve), &ve);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        fuse_reply_err(req, -view_unlink(V(req), parent, name));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
        fuse_reply_err(req, -view_rmdir(V(req), parent, name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
        fuse_reply_err(req, -view_rename(V(req), parent, name, newparent, newname, flags));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        view_file *f;
        bool keep;
        bool changes = open_changes(fi->flags);
        /* before view_open, which copies up (and truncates): ETXTBSY while open files pass
         * through to the image's copy, as for a running executable */
        int r = changes ? pt_change_begin(ino) : 0;
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        r = view_open(V(req), ino, fi->flags, &f, &keep);
        if (r < 0) {
                if (changes)
                        pt_change_end(ino);
                fuse_reply_err(req, -r);
                return;
        }
        enum pt_mode m = open_mode(V(req), ino, f, fi->flags, keep, fi);
        if (changes)
                pt_change_end(ino);
        if (m == PT_BUSY) { /* another open file passes through to the data before a copy-up */
                view_release(f);
                fuse_reply_err(req, ETXTBSY);
                return;
        }
        /* With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves it to us, and writes that pass
         * through never reach us: a caller other than root loses them when it opens for
         * writing (see passthrough.h). */
        if (changes) {
                r = kill_priv(req, ino);
                if (r < 0) {
                        pt_close(ino, m);
                        view_release(f);
                        fuse_reply_err(req, -r);
                        return;
                }
        }
        if (fuse_reply_open(req, fi) != 0) { /* interrupted: no file, no release */
                pt_close(ino, m);
                view_release(f);
        }
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
        struct view_ctx c = ctx_of(req);
        struct view_entry ve;
        view_file *f;
        int r = view_create(V(req), &c, parent, name, mode, fi->flags, &ve, &f);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        view *v = V(req);
        /* (a CREATE names a file the kernel did not find: one that appeared since is new,
         * so in the upper dir, and never passes through to the image's copy) */
        enum pt_mode m = open_mode(v, ve.id, f, fi->flags, false, fi);
        if (m == PT_BUSY) {
                view_release(f);
                view_forget(v, ve.id, 1);
                fuse_reply_err(req, ETXTBSY);
                return;
        }
        struct fuse_entry_param e;
        fill_entry(&e, &ve);
        if (fuse_reply_create(req, &e, fi) != 0) {
                pt_close(ve.id, m);
                view_release(f);
                view_forget(v, ve.id, 1);
        }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
        (void)ino;
        /* over io_uring: read straight into the ring entry (a splice would add a copy from the
         * pipe, and libfuse's buffer another) */
        char *dst = uring_payload(size);
        _cleanup_free_ char *mem = NULL;
        int fd = -1;
        if (!dst) {
                int r = view_read_fd(V(req), F(fi), off, size, &fd);
                if (r < 0) {
                        fuse_reply_err(req, -r);
                        return;
                }
                /* partly copied up, partly still the image's (a copy-up under way): read here */
                if (r > 0)
                        dst = mem = xmalloc(size);
        }
        if (dst) {
                ssize_t n = view_read(V(req), F(fi), dst, size, off);
                if (n < 0)
                        fuse_reply_err(req, (int)-n);
                else
                        fuse_reply_buf(req, dst, (size_t)n);
                return;
        }
        struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
        buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        buf.buf[0].fd = fd;
        buf.buf[0].pos = off;
        fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off, struct fuse_file_info *fi)
{
        /* a write that reaches us (cached mode) kills as the open did: a bit set since (an
         * unlinked file has no name left to change it through) */
        int r = kill_priv(req, ino);
        if (r < 0 && r != -ENOENT) {
                fuse_reply_err(req, -r);
                return;
        }
        int fd = view_write_begin(F(fi), off, fuse_buf_size(in));
        if (fd < 0) {
                fuse_reply_err(req, -fd);
                return;
        }
        struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
        out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        out.buf[0].fd = fd;
        out.buf[0].pos = off;
        ssize_t n = fuse_buf_copy(&out, in, 0);
        view_write_end(F(fi));
        if (n < 0)
                fuse_reply_err(req, (int)-n);
        else
                fuse_reply_write(req, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        pt_close(ino, M(fi));
        view_release(F(fi));
        fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
        (void)ino;
        fuse_reply_err(req, -view_fsync(F(fi), datasync));
}

/*
 * With no_opendir the first OPENDIR answers ENOSYS, and from then on the kernel opens
 * directories by itself (a warm find over an image was an OPENDIR and a RELEASEDIR per directory
 * and nothing else) and keeps every listing (FOPEN_CACHE_DIR), which it reads again when the
 * directory changed through it (its change counter moved) or we drop it: image directories never
 * change, a container's change only through the kernel, and the listings of the virtual ones
 * (images/, containers/), which change with the store, are dropped as soon as they are complete
 * (do_readdir), so that each listing asks again, as with OPENDIR.
 */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        if (no_opendir) {
                fuse_reply_err(req, ENOSYS);
                return;
        }
        view_dir *d;
        int r = view_opendir(V(req), ino, &d);
        if (r < 0) {
                fuse_reply_err(req, -r);
                return;
        }
        fi->fh = (uint64_t)(uintptr_t)d;
        if (view_dir_cacheable(d)) {
                /* the listing changes only through the kernel (see view.h) */
                fi->cache_readdir = 1;
                fi->keep_cache = 1;
        }
        if (fuse_reply_open(req, fi) == -ENOENT)
                view_releasedir(d);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi, bool plus)
{
        view *v = V(req);
        view_dir *d = (view_dir *)(uintptr_t)fi->fh, *own = NULL;
        if (!d) {
                /* no OPENDIR (see there): a cursor for this request; the position says where */
                int r = view_opendir(v, ino, &own);
                if (r < 0) {
                        fuse_reply_err(req, -r);
                        return;
                }
                d = own;
        }
        _cleanup_free_ char *buf = xmalloc(size);
        size_t used = 0;
        int err = 0;
        /* the lookups the entries count: given back should the reply not reach the kernel */
        _cleanup_free_ uint64_t *ids = NULL;
        size_t n_ids = 0, cap_ids = 0;
        for (;;) {
                const char *name;
                struct stat st;
                off_t next;
                int r = view_readdir(v, d, off, &name, &st, &next);
                if (r == -ENOENT)
                        break;
                if (r < 0) {
                        err = -r;
                        break;
                }
                size_t n;
                if (plus) {
                        struct fuse_entry_param e = { .attr = st };
                        struct view_entry ve;
                        bool looked_up = false;
                        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
                                r = view_lookup(v, view_dir_id(d), name, &ve);
                                if (r == -ENOENT) {
                                        off = next; /* gone since the listing was made */
                                        continue;
                                }
                                /* (another error: the name is listed without attributes, nodeid
                                 * 0, which the kernel lists and looks up when it is used) */
                                if (r == 0) {
                                        fill_entry(&e, &ve);
                                        looked_up = true;
                                }
                        }
                        n = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, next);
                        if (n > size - used) {
                                if (looked_up)
                                        view_forget(v, ve.id, 1);
                                break;
                        }
                        if (looked_up) {
                                if (n_ids == cap_ids) {
                                        cap_ids = cap_ids ? 2 * cap_ids : 64;
                                        ids = xrealloc(ids, cap_ids * sizeof(*ids));
                                }
                                ids[n_ids++] = ve.id;
                        }
                } else {
                        n = fuse_add_direntry(req, buf + used, size - used, name, &st, next);
                        if (n > size - used)
                                break;
                }
                used += n;
                off = next;
        }
        bool drop = no_opendir && !err && used == 0 && !view_dir_cacheable(d);
        if (!err && used == 0)
                view_readdir_end(v, d);
        view_releasedir(own);
        if (err && used == 0)
                fuse_reply_err(req, err);
        else if (fuse_reply_buf(req, buf, used) != 0) /* interrupted: the kernel has no entry */
                for (size_t i = 0; i < n_ids; i++)
                        view_forget(v, ids[i], 1);
        /* The empty reply makes the kernel's copy of a virtual directory's listing complete:
         * drop it. Should this come before the reader has marked its copy complete, that copy
         * lacks the dropped pages, and the next listing asks again all the same. No directory
         * lock is taken for this (only the listing's pages), so a handler may. */
        if (drop)
                fuse_lowlevel_notify_inval_inode(session, ino, 0, 0);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
        do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
        do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
        (void)ino;
        view_releasedir((view_dir *)(uintptr_t)fi->fh);
        fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
        (void)ino;
        (void)datasync;
        (void)fi;
        fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
        struct statvfs st;
        int r = view_statfs(V(req), ino, &st);
        if (r < 0)
                fuse_reply_err(req, -r);
        else
                fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
        fuse_reply_err(req, -view_setxattr(V(req), ino, name, value, size, flags));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
        _cleanup_free_ char *buf = size ? xmalloc(size) : NULL;
        ssize_t n = view_getxattr(V(req), ino, name, buf, size);
        if (n < 0)
                fuse_reply_err(req, (int)-n);
        else if (size == 0)
                fuse_reply_xattr(req, (size_t)n);
        else
                fuse_reply_buf(req, buf, (size_t)n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
        _cleanup_free_ char *buf = size ? xmalloc(size) : NULL;
        ssize_t n = view_listxattr(V(req), ino, buf, size);
        if (n < 0)
                fuse_reply_err(req, (int)-n);
        else if (size == 0)
                fuse_reply_xattr(req, (size_t)n);
        else
                fuse_reply_buf(req, buf, (size_t)n);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
        fuse_reply_err(req, -view_removexattr(V(req), ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
        (void)ino;
        fuse_reply_err(req, -view_fallocate(F(fi), mode, off, len));
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
        (void)ino;
        off_t r = view_lseek(F(fi), off, whence);
        if (r < 0)
                fuse_reply_err(req, (int)-r);
        else
                fuse_reply_lseek(req, r);
}

static const struct fuse_lowlevel_ops ops = {
        .init = op_init,
        .lookup = op_lookup,
        .forget = op_forget,
        .forget_multi = op_forget_multi,
        .getattr = op_getattr,
        .setattr = op_setattr,
        .readlink = op_readlink,
        .mknod = op_mknod,
        .mkdir = op_mkdir,
        .symlink = op_symlink,
        .link = op_link,
        .unlink = op_unlink,
        .rmdir = op_rmdir,
        .rename = op_rename,
        .open = op_open,
        .create = op_create,
        .read = op_read,
        .write_buf = op_write_buf,
        /* No .flush: nothing is kept per open file that close() would have to write. libfuse
         * answers the first FLUSH with ENOSYS and the kernel sends no more; it still writes
         * dirty mmap pages back at close() and reports their errors there. */
        .release = op_release,
        .fsync = op_fsync,
        .opendir = op_opendir,
        .readdir = op_readdir,
        .readdirplus = op_readdirplus,
        .releasedir = op_releasedir,
        .fsyncdir = op_fsyncdir,
        .statfs = op_statfs,
        .setxattr = op_setxattr,
        .getxattr = op_getxattr,
        .listxattr = op_listxattr,
        .removexattr = op_removexattr,
        .fallocate = op_fallocate,
        .lseek = op_lseek,
};

/* Every container's filesystem is this process: the OOM killer should pick others first, as
 * it does for dockerd (whose default is the same -500). Best effort: a caller without
 * CAP_SYS_RESOURCE may only raise it. */
static void lower_oom_score(void)
{
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                (void)!write(fd, "-500\n", 5);
                close(fd);
        }
}

static void raise_nofile(void)
{
        /* every open file in the mount holds an object or upper fd */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/*
 * The store watcher: images and containers that go away must leave the kernel's caches at
 * once, not after a timeout: a removed container must not answer under its name, and an image
 * tree stays mapped for as long as the kernel holds nodes of it (rmi could not free its space
 * while mounted). inotify tells us when refs.json or containers/ change; the view re-reads
 * them and names what went away; the kernel is told to drop those entries (and, for unused
 * ones, forgets their nodes). This runs in its own thread: an invalidation takes the parent
 * directory's lock in the kernel, which a request handler may not wait for.
 */
struct watcher {
        struct fuse_session *se;
        view *v;
        store *s;
        int stop; /* eventfd */
        pthread_t thread;
        bool running;
};

static void watch_gone(void *ud, uint64_t parent, const char *name)
{
        struct watcher *w = ud;
        fuse_lowlevel_notify_inval_entry(w->se, parent, name, strlen(name));
}

static void *watch_main(void *arg)
{
        struct watcher *w = arg;
        int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (in < 0)
                return NULL;
        _cleanup_free_ char *cdir = xasprintf("%s/containers", store_root(w->s));
        /* refs.json is replaced by rename; container dirs come and go inside containers/ */
        inotify_add_watch(in, store_root(w->s), IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_CREATE | IN_ONLYDIR);
        int cw = inotify_add_watch(in, cdir, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR);
        /* what the kernel may know from now on: the next refresh reports what went since */
        view_refresh(w->v, NULL, NULL);
        for (;;) {
                struct pollfd p[2] = { { .fd = w->stop, .events = POLLIN }, { .fd = in, .events = POLLIN } };
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents)
                        break;
                /* let a burst of changes (rm -r of a container) settle, then drain; short, as
                 * the refresh also opens new containers before their first lookup */
                usleep(3 * 1000);
                char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
                while (read(in, buf, sizeof(buf)) > 0)
                        ;
                if (cw < 0)
                        cw = inotify_add_watch(in, cdir, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR);
                view_refresh(w->v, watch_gone, w);
        }
        close(in);
        return NULL;
}

static void watch_start(struct watcher *w)
{
        w->stop = eventfd(0, EFD_CLOEXEC);
        if (w->stop < 0)
                return;
        w->running = pthread_create(&w->thread, NULL, watch_main, w) == 0;
}

static void watch_stop(struct watcher *w)
{
        if (w->running) {
                uint64_t one = 1;
                if (write(w->stop, &one, sizeof(one)) == sizeof(one))
                        pthread_join(w->thread, NULL);
                else
                        pthread_cancel(w->thread);
        }
        if (w->stop >= 0)
                close(w->stop);
}

/*
 * Raise the mount's readahead (its bdi, /sys/class/bdi/MAJ:MIN/read_ahead_kb, as some FUSE
 * servers do). Only after the kernel has processed our INIT reply, which lowers the window to
 * the max_readahead we answered: the first stat through the mount waits for that. Detached: if
 * the session ends before INIT, the stat may never return, and nothing waits for this thread.
 */
static void *readahead_main(void *arg)
{
        _cleanup_free_ char *mountpoint = arg;
        struct stat st;
        if (stat(mountpoint, &st) < 0 || st.st_ino != 1)
                return NULL;
        char path[64];
        snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
                char kb[16];
                int n = snprintf(kb, sizeof(kb), "%d\n", READ_AHEAD_KB);
                (void)!write(fd, kb, (size_t)n); /* a smaller window is slower, not wrong */
        }
        return NULL;
}

static void raise_readahead(const char *mountpoint)
{
        pthread_t t;
        pthread_attr_t a;
        char *mp = xstrdup(mountpoint);
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, readahead_main, mp) != 0)
                free(mp);
        pthread_attr_destroy(&a);
}

/*
 * A detached daemon's stdout goes to /dev/null, its stderr (libfuse's messages, the daemon's
 * start and end) to <root>/daemon.log, so that a daemon that went away leaves a trace. The log
 * starts over once it passes 1 MiB.
 */
static void detach_output(store *s)
{
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
                dup2(null, STDOUT_FILENO);
                dup2(null, STDERR_FILENO);
                close(null);
        }
        _cleanup_free_ char *path = xasprintf("%s/daemon.log", store_root(s));
        struct stat st;
        int flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
        if (stat(path, &st) == 0 && st.st_size > (1 << 20))
                flags |= O_TRUNC;
        int fd = open(path, flags, 0600);
        if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                close(fd);
        }
}

static void daemon_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void daemon_log(const char *fmt, ...)
{
        char when[64];
        time_t now = time(NULL);
        struct tm tm;
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s ", when);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
}

static void ready(int fd, const char *msg)
{
        if (fd < 0)
                return;
        util_write_all(fd, msg, strlen(msg));
        close(fd);
}

int daemon_serve(store *s, const char *mountpoint, const struct daemon_options *o, int ready_fd)
{
        raise_nofile();
        lower_oom_score();
        /* modes come from the kernel with the caller's umask already applied */
        umask(0);
        view *v;
        int r = view_new(s, &v);
        if (r < 0) {
                ready(ready_fd, "error: cannot set up the view\n");
                return r;
        }
        char *argv[] = { "ctfs", "-o", "allow_other,default_permissions,suid,dev,fsname=ctfs,subtype=ctfs,max_read=" STR(MAX_READ),
                         o && o->debug ? "-d" : NULL, NULL };
        struct fuse_args args = FUSE_ARGS_INIT(o && o->debug ? 4 : 3, argv);
        struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), v);
        fuse_opt_free_args(&args); /* the session keeps copies of what it needs */
        session = se;
        if (!se) {
                ready(ready_fd, "error: cannot create the FUSE session\n");
                view_free(v);
                return -EIO;
        }
        view_set_store(v, store_data, NULL);
        if (fuse_set_signal_handlers(se) < 0) {
                ready(ready_fd, "error: cannot install signal handlers\n");
                fuse_session_destroy(se);
                view_free(v);
                return -EIO;
        }
        uring_setup(se, !(o && o->no_uring)); /* before the mount, which sends INIT */
        if (fuse_session_mount(se, mountpoint) != 0) {
                char msg[4200];
                snprintf(msg, sizeof(msg), "error: cannot mount the FUSE filesystem at %s\n", mountpoint);
                ready(ready_fd, msg);
                fuse_remove_signal_handlers(se);
                fuse_session_destroy(se);
                view_free(v);
                return -EIO;
        }
        /* our own I/O layer, for passthrough (see passthrough.h) */
        const struct fuse_custom_io io = { .writev = pt_io_writev, .read = pt_io_read,
                                           .splice_receive = pt_io_splice, .splice_send = pt_io_splice };
        pt_set_device(fuse_session_fd(se));
        if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) {
                ready(ready_fd, "error: cannot set up the FUSE session's I/O\n");
                fuse_session_unmount(se);
                fuse_remove_signal_handlers(se);
                fuse_session_destroy(se);
                view_free(v);
                return -EIO;
        }
        r = daemon_record(s, mountpoint);
        if (r < 0) {
                ready(ready_fd, "error: cannot record the mount in the store\n");
                fuse_session_unmount(se);
                fuse_remove_signal_handlers(se);
                fuse_session_destroy(se);
                view_free(v);
                return r;
        }
        ready(ready_fd, "ok\n");
        if (!(o && o->debug) && !(o && o->foreground))
                detach_output(s);
        daemon_log("daemon %d serving %s%s", (int)getpid(), mountpoint, o && o->no_uring ? " (--no-uring)" : "");
        struct watcher w = { .se = se, .v = v, .s = s, .stop = -1 };
        watch_start(&w);
        raise_readahead(mountpoint);
        struct fuse_loop_config *cfg = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(cfg, 1);
        fuse_loop_cfg_set_idle_threads(cfg, 16);
        fuse_loop_cfg_set_max_threads(cfg, 64);
        r = fuse_session_loop_mt(se, cfg);
        daemon_log("daemon %d: the session ended (%s), %lu requests came over io_uring, %lu image files were read "
                   "ahead (%lu of them into the kernel's cache of a container's file), %zu container records held",
                   (int)getpid(), r == 0 ? "unmounted or signalled" : strerror(r < 0 ? -r : r), uring_requests(),
                   (unsigned long)view_prefetched(v), (unsigned long)view_stored(v), view_containers_held(v));
        fuse_loop_cfg_destroy(cfg);
        watch_stop(&w);
        daemon_unrecord(s);
        /* stores write to the session's fd, which unmount closes (a store never waits on a
         * request: see store_ahead) */
        view_stop_store(v);
        fuse_session_unmount(se);
        uring_stop();
        view_stop_prefetch(v);
        fuse_remove_signal_handlers(se);
        fuse_session_destroy(se);
        view_free(v);
        return r < 0 ? r : 0;
}
