/* SPDX-License-Identifier: Apache-2.0 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "pty.h"
#include "secprofile.h"
#include "spec.h"
#include "user.h"
#include "util.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Messages on the sync socket (SOCK_SEQPACKET: one message per send). */
enum { MSG_GO = 1, MSG_PTY = 2, MSG_ERROR = 3 };

struct msg {
        int type;
        int code;
        struct winsize ws;
        char text[1024];
};

struct child {
        int sock;
        const struct spawn_params *p;
        const struct exec_params *e;
        sigset_t oldmask;
};

static _Noreturn void fail(struct child *c, int code, const char *fmt, ...) _printf_(3, 4);
static _Noreturn void fail(struct child *c, int code, const char *fmt, ...)
{
        struct msg m = { .type = MSG_ERROR, .code = code };
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m.text, sizeof(m.text), fmt, ap);
        va_end(ap);
        send(c->sock, &m, sizeof(m), MSG_NOSIGNAL);
        _exit(code);
}

int spawn_status_to_exit(int status)
{
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return 125;
}

/* ---- paths inside the container's root ---- */

static int open_in_root(int rootfd, const char *path, int flags, uint64_t resolve)
{
        return util_openat2(rootfd, path, flags, resolve);
}

#define IN_ROOT (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

/* mkdir -p of path inside the root; returns an O_PATH fd of the directory. */
static int mkdir_in_root(int rootfd, const char *path, mode_t mode)
{
        int fd = open_in_root(rootfd, path, O_PATH | O_DIRECTORY, IN_ROOT);
        if (fd >= 0 || fd != -ENOENT)
                return fd;
        _cleanup_free_ char *copy = xstrdup(path);
        char *slash = strrchr(copy, '/');
        while (slash && slash > copy && slash[1] == '\0') {
                *slash = '\0';
                slash = strrchr(copy, '/');
        }
        const char *name = slash ? slash + 1 : copy;
        _cleanup_close_ int parent = -1;
        if (slash && slash != copy) {
                *slash = '\0';
                parent = mkdir_in_root(rootfd, copy, 0755);
        } else
                parent = open_in_root(rootfd, "", O_PATH | O_DIRECTORY, IN_ROOT);
        if (parent < 0)
                return parent;
        if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
                return -errno;
        return open_in_root(rootfd, path, O_PATH | O_DIRECTORY, IN_ROOT);
}

/* A file to mount over: the existing one (links resolved inside the root) or a new empty one. */
static int file_in_root(int rootfd, const char *path)
{
        int fd = open_in_root(rootfd, path, O_PATH, IN_ROOT);
        if (fd >= 0 || fd != -ENOENT)
                return fd;
        _cleanup_free_ char *dir = xstrdup(path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                int d = mkdir_in_root(rootfd, dir, 0755);
                if (d < 0)
                        return d;
                close(d);
        }
        /* O_CREAT follows a dangling link (resolv.conf -> ../run/...), still inside the root */
        fd = open_in_root(rootfd, path, O_RDONLY | O_CREAT | O_NOCTTY | O_NONBLOCK, IN_ROOT);
        if (fd < 0)
                return fd;
        close(fd);
        return open_in_root(rootfd, path, O_PATH, IN_ROOT);
}

/* A link in the image may point a mount target into the container's /proc or /sys (mounted
 * by then): mounting over those could hide masks or read-only paths, as runc learned. */
static bool on_kernel_fs(int rootfd, int fd)
{
        /* on the root's own filesystem (the container's view: attributes the kernel has
         * cached), it is neither, and asks the daemon nothing (statfs is a round trip each) */
        struct stat root, st;
        if (fstat(rootfd, &root) == 0 && fstat(fd, &st) == 0 && st.st_dev == root.st_dev)
                return false;
        struct statfs sf;
        return fstatfs(fd, &sf) == 0 && (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC);
}

static char *fdpath(int fd)
{
        return xasprintf("/proc/self/fd/%d", fd);
}

static int mount_fd(const char *src, int target_fd, const char *type, unsigned long flags, const char *data)
{
        _cleanup_free_ char *t = fdpath(target_fd);
        return mount(src, t, type, flags, data) < 0 ? -errno : 0;
}

/* Add attributes (MOUNT_ATTR_RDONLY, MOUNT_ATTR_NODEV) to the mount at path, as seen now. */
static int mount_add_attr(int rootfd, const char *path, bool recursive, uint64_t attr)
{
        _cleanup_close_ int fd = open_in_root(rootfd, path, O_PATH, IN_ROOT);
        if (fd < 0)
                return fd;
        struct mount_attr a = { .attr_set = attr };
        if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a)) == 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        /* before 5.12: remount the top mount, keeping its other flags */
        _cleanup_free_ char *t = fdpath(fd);
        struct statvfs sv;
        unsigned long keep = 0;
        if (statvfs(t, &sv) == 0)
                keep = sv.f_flag & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME);
        unsigned long add = (attr & MOUNT_ATTR_RDONLY ? MS_RDONLY : 0) | (attr & MOUNT_ATTR_NODEV ? MS_NODEV : 0);
        return mount(NULL, t, NULL, MS_BIND | MS_REMOUNT | keep | add, NULL) < 0 ? -errno : 0;
}

static int make_ro(int rootfd, const char *path, bool recursive)
{
        return mount_add_attr(rootfd, path, recursive, MOUNT_ATTR_RDONLY);
}

/* ---- the container's mounts ---- */

static const char *const masked_paths[] = {
        "proc/asound",        "proc/acpi",          "proc/kcore",          "proc/keys",
        "proc/latency_stats", "proc/timer_list",    "proc/timer_stats",    "proc/sched_debug",
        "proc/scsi",          "sys/firmware",       "sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
        "proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};

static void mount_proc(struct child *c, int rootfd)
{
        _cleanup_close_ int fd = mkdir_in_root(rootfd, "proc", 0555);
        if (fd < 0)
                fail(c, 125, "mount /proc: %s", strerror(-fd));
        int r = mount_fd("proc", fd, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (r < 0)
                fail(c, 125, "mount /proc: %s", strerror(-r));
        for (size_t i = 0; i < ARRAY_SIZE(readonly_paths); i++) {
                const char *p = readonly_paths[i];
                _cleanup_close_ int t = open_in_root(rootfd, p, O_PATH | O_NOFOLLOW, IN_ROOT | RESOLVE_NO_SYMLINKS);
                if (t < 0)
                        continue;
                _cleanup_free_ char *tp = fdpath(t);
                if (mount(tp, tp, NULL, MS_BIND | MS_REC, NULL) < 0)
                        fail(c, 125, "bind /%s: %m", p);
                r = make_ro(rootfd, p, true);
                if (r < 0)
                        fail(c, 125, "make /%s read-only: %s", p, strerror(-r));
        }
}

static void mask_paths(struct child *c, int rootfd)
{
        for (size_t i = 0; i < ARRAY_SIZE(masked_paths); i++) {
                const char *p = masked_paths[i];
                _cleanup_close_ int t = open_in_root(rootfd, p, O_PATH | O_NOFOLLOW, IN_ROOT | RESOLVE_NO_SYMLINKS);
                if (t < 0)
                        continue;
                struct stat st;
                if (fstat(t, &st) < 0)
                        continue;
                int r;
                if (S_ISDIR(st.st_mode))
                        r = mount_fd("tmpfs", t, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0k");
                else
                        r = mount_fd("/dev/null", t, NULL, MS_BIND, NULL);
                if (r < 0)
                        fail(c, 125, "mask /%s: %s", p, strerror(-r));
        }
}

static void mount_dev(struct child *c, int rootfd)
{
        _cleanup_close_ int fd = mkdir_in_root(rootfd, "dev", 0755);
        if (fd < 0)
                fail(c, 125, "mount /dev: %s", strerror(-fd));
        /* Device nodes are where a container reaches the host's hardware: unless privileged,
         * /dev is nodev like every other filesystem the container can write (so mknod gives
         * nothing usable), and the standard nodes are the host's own, bound in one by one. */
        bool privileged = c->p->cfg->privileged;
        int r = mount_fd("tmpfs", fd, "tmpfs", MS_NOSUID | MS_STRICTATIME | (privileged ? 0 : MS_NODEV),
                         "mode=755,size=65536k");
        if (r < 0)
                fail(c, 125, "mount /dev: %s", strerror(-r));
        _cleanup_close_ int dev = open_in_root(rootfd, "dev", O_PATH | O_DIRECTORY, IN_ROOT);
        if (dev < 0)
                fail(c, 125, "open /dev: %s", strerror(-dev));
        static const struct {
                const char *name;
                unsigned maj, min;
        } nodes[] = {
                { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
        };
        mode_t um = umask(0);
        for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
                if (privileged) {
                        if (mknodat(dev, nodes[i].name, S_IFCHR | 0666, makedev(nodes[i].maj, nodes[i].min)) < 0)
                                fail(c, 125, "mknod /dev/%s: %m", nodes[i].name);
                        continue;
                }
                _cleanup_close_ int t = openat(dev, nodes[i].name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
                if (t < 0)
                        fail(c, 125, "create /dev/%s: %m", nodes[i].name);
                _cleanup_free_ char *src = xasprintf("/dev/%s", nodes[i].name);
                struct stat st;
                if (stat(src, &st) < 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(nodes[i].maj, nodes[i].min))
                        fail(c, 125, "the host's %s is not the device it should be", src);
                r = mount_fd(src, t, NULL, MS_BIND, NULL);
                if (r < 0)
                        fail(c, 125, "bind %s: %s", src, strerror(-r));
        }
        umask(um);
        static const struct {
                const char *name, *target;
        } links[] = {
                { "ptmx", "pts/ptmx" },        { "fd", "/proc/self/fd" },     { "stdin", "/proc/self/fd/0" },
                { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" }, { "core", "/proc/kcore" },
        };
        for (size_t i = 0; i < ARRAY_SIZE(links); i++)
                if (symlinkat(links[i].target, dev, links[i].name) < 0)
                        fail(c, 125, "symlink /dev/%s: %m", links[i].name);
        if (mkdirat(dev, "pts", 0755) < 0 || mkdirat(dev, "shm", 01777) < 0 || mkdirat(dev, "mqueue", 0755) < 0)
                fail(c, 125, "mkdir in /dev: %m");
        _cleanup_close_ int pts = openat(dev, "pts", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = mount_fd("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        if (r < 0)
                fail(c, 125, "mount /dev/pts: %s", strerror(-r));
        _cleanup_close_ int shm = openat(dev, "shm", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = mount_fd("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
        if (r < 0)
                fail(c, 125, "mount /dev/shm: %s", strerror(-r));
        _cleanup_close_ int mq = openat(dev, "mqueue", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        /* mqueue follows the ipc namespace; not fatal where the kernel lacks it */
        mount_fd("mqueue", mq, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (c->p->cfg->tty) {
                int cf = openat(dev, "console", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (cf >= 0)
                        close(cf);
        }
}

static void mount_sys(struct child *c, int rootfd, bool cgroupns)
{
        _cleanup_close_ int fd = mkdir_in_root(rootfd, "sys", 0555);
        if (fd < 0)
                fail(c, 125, "mount /sys: %s", strerror(-fd));
        int r = mount_fd("sysfs", fd, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        if (r < 0)
                fail(c, 125, "mount /sys: %s", strerror(-r));
        if (!cgroupns || !c->p->cg)
                return;
        /* The container's own cgroups, read-only, as Docker shows them: with the cgroup
         * namespace each hierarchy's root is the container's cgroup. */
        _cleanup_close_ int cgd = open_in_root(rootfd, "sys/fs/cgroup", O_PATH | O_DIRECTORY, IN_ROOT | RESOLVE_NO_SYMLINKS);
        if (cgd < 0)
                return;
        const struct cgroup_hierarchy *h;
        size_t n = cgroup_hierarchies(c->p->cg, &h);
        bool v2_only = n == 1 && h[0].v2 && !*h[0].name;
        if (v2_only) {
                r = mount_fd("cgroup2", cgd, "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
                if (r < 0)
                        fail(c, 125, "mount /sys/fs/cgroup: %s", strerror(-r));
                return;
        }
        r = mount_fd("tmpfs", cgd, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=0k");
        if (r < 0)
                fail(c, 125, "mount /sys/fs/cgroup: %s", strerror(-r));
        _cleanup_close_ int t = open_in_root(rootfd, "sys/fs/cgroup", O_PATH | O_DIRECTORY, IN_ROOT | RESOLVE_NO_SYMLINKS);
        for (size_t i = 0; i < n; i++) {
                const char *name = *h[i].name ? h[i].name : "unified";
                if (mkdirat(t, name, 0755) < 0 && errno != EEXIST)
                        continue;
                _cleanup_close_ int d = openat(t, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (d < 0)
                        continue;
                unsigned long fl = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
                r = h[i].v2 ? mount_fd("cgroup2", d, "cgroup2", fl, NULL) : mount_fd("cgroup", d, "cgroup", fl, h[i].options);
                if (r < 0)
                        fail(c, 125, "mount /sys/fs/cgroup/%s: %s", name, strerror(-r));
        }
        r = make_ro(rootfd, "sys/fs/cgroup", false);
        if (r < 0)
                fail(c, 125, "make /sys/fs/cgroup read-only: %s", strerror(-r));
}

static void bind_file(struct child *c, int rootfd, const char *src, const char *target)
{
        _cleanup_close_ int t = file_in_root(rootfd, target);
        if (t < 0)
                fail(c, 125, "mount %s: %s", target, strerror(-t));
        struct stat st;
        if (fstat(t, &st) == 0 && S_ISDIR(st.st_mode))
                fail(c, 125, "mount %s: it is a directory in the image", target);
        if (on_kernel_fs(rootfd, t))
                fail(c, 125, "mount %s: it leads into /proc or /sys", target);
        int r = mount_fd(src, t, NULL, MS_BIND, NULL);
        if (r < 0)
                fail(c, 125, "mount %s: %s", target, strerror(-r));
}

static void mount_volumes(struct child *c, int rootfd)
{
        const struct container_config *cfg = c->p->cfg;
        for (size_t i = 0; i < cfg->n_volumes; i++) {
                const struct container_volume *v = &cfg->volumes[i];
                _cleanup_close_ int src = open(v->host, O_PATH | O_CLOEXEC);
                if (src < 0)
                        fail(c, 125, "volume %s: %m", v->host);
                struct stat st;
                if (fstat(src, &st) < 0)
                        fail(c, 125, "volume %s: %m", v->host);
                _cleanup_close_ int t = S_ISDIR(st.st_mode) ? mkdir_in_root(rootfd, v->ctr, 0755) : file_in_root(rootfd, v->ctr);
                if (t < 0)
                        fail(c, 125, "volume %s: mount point %s: %s", v->host, v->ctr, strerror(-t));
                if (on_kernel_fs(rootfd, t))
                        fail(c, 125, "volume %s: mount point %s is in /proc or /sys", v->host, v->ctr);
                _cleanup_free_ char *sp = fdpath(src);
                int r = mount_fd(sp, t, NULL, MS_BIND | MS_REC, NULL);
                if (r < 0)
                        fail(c, 125, "volume %s: bind to %s: %s", v->host, v->ctr, strerror(-r));
                if (!cfg->privileged && (r = mount_add_attr(rootfd, v->ctr, true, MOUNT_ATTR_NODEV)) < 0)
                        fail(c, 125, "volume %s: nodev: %s", v->host, strerror(-r));
                if (v->ro && (r = make_ro(rootfd, v->ctr, true)) < 0)
                        fail(c, 125, "volume %s: read-only: %s", v->host, strerror(-r));
        }
}

static void loopback_up(struct child *c)
{
        _cleanup_close_ int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                fail(c, 125, "network: socket: %m");
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                fail(c, 125, "network: lo: %m");
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                fail(c, 125, "network: bring lo up: %m");
}

static void setup_rootfs(struct child *c, bool cgroupns)
{
        const struct spawn_params *p = c->p;
        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                fail(c, 125, "make / private: %m");
        if (mount(p->rootfs, p->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
                fail(c, 125, "bind the container's root %s: %m", p->rootfs);
        _cleanup_close_ int rootfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                fail(c, 125, "open the container's root %s: %m", p->rootfs);
        /* nodev: a device node in the image, or one the container makes with CAP_MKNOD, must
         * not open the host's device (docker denies them with the devices cgroup; nodev holds
         * on cgroup v1, v2 and hybrid hosts alike) */
        if (!p->cfg->privileged) {
                int r = mount_add_attr(rootfd, "", true, MOUNT_ATTR_NODEV);
                if (r < 0)
                        fail(c, 125, "make the root nodev: %s", strerror(-r));
        }
        mount_proc(c, rootfd);
        mount_dev(c, rootfd);
        mount_sys(c, rootfd, cgroupns);
        mask_paths(c, rootfd);
        static const char *const etc[] = { "hosts", "hostname", "resolv.conf" };
        for (size_t i = 0; i < ARRAY_SIZE(etc); i++) {
                _cleanup_free_ char *src = xasprintf("%s/%s", p->dir, etc[i]);
                _cleanup_free_ char *dst = xasprintf("etc/%s", etc[i]);
                bind_file(c, rootfd, src, dst);
        }
        mount_volumes(c, rootfd);
        if (p->cfg->read_only) {
                int r = make_ro(rootfd, "", false);
                if (r < 0)
                        fail(c, 125, "make the root read-only: %s", strerror(-r));
        }
        if (fchdir(rootfd) < 0)
                fail(c, 125, "chdir to the root: %m");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                fail(c, 125, "pivot_root: %m");
        /* the old root is stacked under the new one: detach it */
        if (umount2(".", MNT_DETACH) < 0)
                fail(c, 125, "detach the old root: %m");
        if (chdir("/") < 0)
                fail(c, 125, "chdir /: %m");
}

/* ---- the process ---- */

/* Why a path could not be looked at, when the reason is not that it is absent: a root whose
 * filesystem went away (its store unmounted under a running container) says so. */
static _Noreturn void fail_stat(struct child *c, const char *name, const char *path, int err)
{
        if (err == ENOTCONN)
                fail(c, 126, "exec: \"%s\": stat %s: %s (the container's files are gone: was its store unmounted "
                             "while it ran? stop it, mount, start it again)",
                     name, path, strerror(err));
        fail(c, 126, "exec: \"%s\": stat %s: %s", name, path, strerror(err));
}

static char *find_exec(struct child *c, const char *name, char *const *env, int *ret_code)
{
        if (strchr(name, '/')) {
                struct stat st;
                if (stat(name, &st) < 0) {
                        *ret_code = errno == ENOENT || errno == ENOTDIR ? 127 : 126;
                        if (*ret_code == 126)
                                fail_stat(c, name, name, errno);
                        fail(c, *ret_code, "exec: \"%s\": stat %s: %s", name, name, strerror(errno));
                }
                return xstrdup(name);
        }
        const char *path = spec_env_get(env, "PATH");
        if (!path)
                path = SPEC_DEFAULT_PATH;
        _cleanup_free_ char *copy = xstrdup(path);
        char *save = NULL;
        int err = 0;
        _cleanup_free_ char *where = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *full = xasprintf("%s/%s", *d ? d : ".", name);
                struct stat st;
                if (stat(full, &st) == 0) {
                        if (S_ISREG(st.st_mode) && access(full, X_OK) == 0)
                                return TAKE_PTR(full);
                } else if (errno != ENOENT && errno != ENOTDIR && errno != EACCES && !err) {
                        err = errno;
                        where = TAKE_PTR(full);
                }
        }
        if (err)
                fail_stat(c, name, where, err);
        fail(c, 127, "exec: \"%s\": executable file not found in $PATH", name);
}

static _Noreturn void do_exec(struct child *c, char *const *args, char *const *env)
{
        int code = 0;
        _cleanup_free_ char *file = find_exec(c, args[0], env, &code);
        /* a fresh process: default dispositions (ignored ones survive exec), nothing blocked */
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        signal(sig, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* fds inherited from whoever ran ctfs do not reach the container */
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(file, args, env);
        int e = errno;
        fail(c, e == ENOENT ? 127 : 126, "exec: \"%s\": %s", args[0], strerror(e));
}

/* pid 1 with --init: reap every child, pass signals on to the command, exit as it does. */
static _Noreturn void init_loop(pid_t child)
{
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);
                if (sig < 0)
                        continue;
                if (sig == SIGCHLD) {
                        int status;
                        pid_t p;
                        while ((p = waitpid(-1, &status, WNOHANG)) > 0)
                                if (p == child)
                                        _exit(spawn_status_to_exit(status));
                        continue;
                }
                if (sig == SIGTTIN || sig == SIGTTOU || sig == SIGWINCH)
                        continue;
                kill(child, sig);
        }
}

/* Everything after the mounts: tty, user, working dir, init, capabilities, seccomp, exec. */
static _Noreturn void finish(struct child *c, const struct container_config *cfg, bool tty, const struct winsize *ws,
                             const int stdio[3], char *const *args, char **env, const char *cwd, const char *user_spec,
                             uint64_t caps, bool init, bool make_cwd)
{
        int r;
        if (tty) {
                int master, slave;
                char name[64];
                r = pty_open(&master, &slave, name, sizeof(name));
                if (r < 0)
                        fail(c, 125, "open a pty: %s", strerror(-r));
                if (ws && ws->ws_row)
                        ioctl(slave, TIOCSWINSZ, ws);
                struct msg m = { .type = MSG_PTY };
                r = pty_send_fd(c->sock, &m, sizeof(m), master);
                if (r < 0)
                        fail(c, 125, "send the pty: %s", strerror(-r));
                close(master);
                if (c->p && mount(name, "/dev/console", NULL, MS_BIND, NULL) < 0)
                        fail(c, 125, "bind /dev/console: %m");
                r = pty_make_controlling(slave);
                if (r < 0)
                        fail(c, 125, "set the controlling terminal: %s", strerror(-r));
                if (slave > 2)
                        close(slave);
        } else {
                /* move them out of the way first: a source may be one of 0..2 */
                int hi[3];
                for (int i = 0; i < 3; i++)
                        if ((hi[i] = fcntl(stdio[i], F_DUPFD_CLOEXEC, 10)) < 0)
                                fail(c, 125, "stdio: %m");
                for (int i = 0; i < 3; i++)
                        if (dup2(hi[i], i) < 0)
                                fail(c, 125, "stdio: %m");
                for (int i = 0; i < 3; i++)
                        close(hi[i]);
        }

        _cleanup_close_ int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
        struct user_ids u = { 0 };
        char *err = NULL;
        r = user_resolve_in_root(rootfd, user_spec, &u, &err);
        if (r < 0)
                fail(c, 125, "%s", err ? err : strerror(-r));
        if (!spec_env_get(env, "HOME")) {
                _cleanup_free_ char *h = xasprintf("HOME=%s", u.home);
                spec_env_set(&env, h);
        }
        if (cfg->hostname && !spec_env_get(env, "HOSTNAME")) { /* docker sets it too */
                _cleanup_free_ char *h = xasprintf("HOSTNAME=%s", cfg->hostname);
                spec_env_set(&env, h);
        }
        /* Docker creates a missing working directory for a container, not for an exec */
        if (make_cwd) {
                _cleanup_close_ int wd = mkdir_in_root(rootfd, cwd, 0755);
                if (wd < 0 || chdir(cwd) < 0)
                        fail(c, 125, "chdir to %s: %s", cwd, strerror(wd < 0 ? -wd : errno));
        } else if (chdir(cwd) < 0) {
                fail(c, 126, "chdir to %s: %m", cwd);
        }

        bool privileged = cfg->privileged;
        r = caps_drop_bounding(caps);
        if (r < 0)
                fail(c, 125, "drop capabilities: %s", strerror(-r));
        if (cfg->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                fail(c, 125, "no_new_privs: %m");
        if (!privileged) {
                /* the program the parent compiled (or found cached), else compile it here */
                const struct secprofile *sp = c->p ? c->p->seccomp : c->e ? c->e->seccomp : NULL;
                r = sp ? secprofile_load(sp) : secprofile_apply_default(caps);
                if (r < 0)
                        fail(c, 125, "load the seccomp profile: %s", strerror(-r));
        }
        if (setgroups(u.n_groups, u.groups) < 0)
                fail(c, 125, "setgroups: %m");
        if (setresgid(u.gid, u.gid, u.gid) < 0)
                fail(c, 125, "setgid %u: %m", (unsigned)u.gid);
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                fail(c, 125, "keepcaps: %m");
        if (setresuid(u.uid, u.uid, u.uid) < 0)
                fail(c, 125, "setuid %u: %m", (unsigned)u.uid);
        prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
        r = caps_set(caps);
        if (r < 0)
                fail(c, 125, "set capabilities: %s", strerror(-r));
        if (init) {
                pid_t child = fork();
                if (child < 0)
                        fail(c, 125, "fork: %m");
                if (child > 0) {
                        close(c->sock);
                        init_loop(child);
                }
                setpgid(0, 0);
                if (tty)
                        tcsetpgrp(0, getpid());
        }
        do_exec(c, args, env);
}

static _Noreturn void container_child(struct child *c)
{
        const struct spawn_params *p = c->p;
        const struct container_config *cfg = p->cfg;
        /* Until execve, this is the host's ctfs running inside the container's namespaces: not
         * dumpable, so no container process can open /proc/<pid>/exe (the host binary) or
         * ptrace it (runc's CVE-2019-5736). execve makes the container's command dumpable. */
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (p->die_with_parent)
                prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        struct msg m;
        ssize_t n = recv(c->sock, &m, sizeof(m), 0);
        if (n != (ssize_t)sizeof(m) || m.type != MSG_GO)
                _exit(125); /* the parent gave up */
        /* in the container's cgroup now: its cgroup namespace starts there */
        bool cgroupns = unshare(CLONE_NEWCGROUP) == 0;
        umask(022);
        if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
                fail(c, 125, "sethostname: %m");
        if (cfg->network == CONTAINER_NET_NONE)
                loopback_up(c);
        setup_rootfs(c, cgroupns);
        char **env = NULL;
        for (char **e = cfg->env; e && *e; e++)
                spec_env_set(&env, *e);
        if (!env)
                env = xcalloc(1, sizeof(char *));
        finish(c, cfg, cfg->tty, &m.ws, p->stdio, cfg->args, env, cfg->cwd, cfg->user, p->caps, cfg->init, true);
}

/* Parent side: wait for the child to exec (EOF), collecting a pty and errors on the way. */
static int parent_sync(int sock, pid_t pid, struct spawn_result *ret, int *ret_exit_code, char **ret_error)
{
        int pty = -1;
        struct msg m;
        bool failed = false;
        for (;;) {
                int fd = -1;
                ssize_t n = pty_recv_fd(sock, &m, sizeof(m), &fd);
                if (n <= 0)
                        break;
                if (m.type == MSG_PTY && fd >= 0) {
                        if (pty >= 0)
                                close(pty);
                        pty = fd;
                } else {
                        if (fd >= 0)
                                close(fd);
                        if (m.type == MSG_ERROR && !failed) {
                                failed = true;
                                m.text[sizeof(m.text) - 1] = '\0';
                                *ret_error = xstrdup(m.text);
                                *ret_exit_code = m.code;
                        }
                }
        }
        if (failed) {
                if (pty >= 0)
                        close(pty);
                int status;
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                return -EIO;
        }
        ret->pty_master = pty;
        return 0;
}

int spawn_container(const struct spawn_params *p, struct spawn_result *ret, int *ret_exit_code, char **ret_error)
{
        int sv[2];
        *ret_exit_code = 125;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                *ret_error = xasprintf("socketpair: %m");
                return -errno;
        }
        unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
        if (p->cfg->network == CONTAINER_NET_NONE)
                flags |= CLONE_NEWNET;
        struct child c = { .sock = sv[1], .p = p };
        /* Born in its cgroup on the unified hierarchy (CLONE_INTO_CGROUP, Linux 5.7): unlike a
         * write to cgroup.procs, this does not wait for an RCU grace period. */
        _cleanup_close_ int cgfd = p->cg ? cgroup_v2_open(p->cg) : -ENOENT;
        int pidfd = -1;
        struct clone_args ca = {
                .flags = flags | CLONE_PIDFD | (cgfd >= 0 ? CLONE_INTO_CGROUP : 0),
                .pidfd = (uint64_t)(uintptr_t)&pidfd,
                .exit_signal = SIGCHLD,
                .cgroup = cgfd >= 0 ? (uint64_t)cgfd : 0,
        };
        sigset_t all;
        sigfillset(&all);
        /* the child starts with every signal blocked and restores the caller's mask at exec */
        sigprocmask(SIG_SETMASK, &all, &c.oldmask);
        bool in_v2 = cgfd >= 0;
        pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
        if (pid < 0 && (errno == ENOSYS || errno == E2BIG || errno == EINVAL || errno == EPERM)) {
                /* an older kernel, or (EINVAL) a cgroup that cannot take it: clone, then join */
                in_v2 = false;
                pidfd = -1;
                pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
        }
        if (pid == 0) {
                close(sv[0]);
                container_child(&c);
        }
        int e = errno;
        sigprocmask(SIG_SETMASK, &c.oldmask, NULL);
        close(sv[1]);
        _cleanup_close_ int sock = sv[0];
        if (pid < 0) {
                *ret_error = xasprintf("clone: %s", strerror(e));
                return -e;
        }
        int r = p->cg ? cgroup_enter(p->cg, pid, in_v2) : 0;
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                if (pidfd >= 0)
                        close(pidfd);
                *ret_error = xasprintf("join the cgroup: %s", strerror(-r));
                return r;
        }
        ret->pid = pid;
        ret->pidfd = pidfd >= 0 ? pidfd : pidfd_open(pid, 0);
        container_pid_start_time(pid, &ret->pid_start);
        struct msg m = { .type = MSG_GO, .ws = p->ws };
        if (send(sock, &m, sizeof(m), MSG_NOSIGNAL) < 0) {
                /* it died already; its status tells */
        }
        r = parent_sync(sock, pid, ret, ret_exit_code, ret_error);
        if (r < 0) {
                if (ret->pidfd >= 0)
                        close(ret->pidfd);
                return r;
        }
        return 0;
}

int spawn_exec(const struct exec_params *e, struct spawn_result *ret, int *ret_exit_code, char **ret_error)
{
        *ret_exit_code = 125;
        _cleanup_close_ int pidfd = pidfd_open(e->pid, 0);
        if (pidfd < 0 || !container_pid_alive(e->pid, e->pid_start)) {
                *ret_error = xstrdup("the container is not running");
                return -ESRCH;
        }
        /* Children of this process are born in the container's pid namespace. */
        if (setns(pidfd, CLONE_NEWPID) < 0) {
                *ret_error = xasprintf("enter the pid namespace: %m");
                return -errno;
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                *ret_error = xasprintf("socketpair: %m");
                return -errno;
        }
        struct child c = { .sock = sv[1], .e = e };
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, &c.oldmask);
        pid_t pid = fork();
        if (pid == 0) {
                /* not dumpable until execve: see container_child */
                prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
                close(sv[0]);
                if (e->cg && cgroup_enter(e->cg, 0, false) < 0)
                        fail(&c, 125, "join the container's cgroup: %m");
                int nsflags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;
                if (setns(pidfd, nsflags) < 0 && setns(pidfd, nsflags & ~CLONE_NEWCGROUP) < 0)
                        fail(&c, 125, "enter the container's namespaces: %m");
                /* setns to a mount namespace puts us at its root: the container's / */
                if (chdir("/") < 0)
                        fail(&c, 125, "chdir /: %m");
                umask(022);
                char **env = NULL;
                for (char **x = e->env; x && *x; x++)
                        spec_env_set(&env, *x);
                if (!env)
                        env = xcalloc(1, sizeof(char *));
                finish(&c, e->cfg, e->tty, &e->ws, e->stdio, e->args, env, e->cwd, e->user, e->caps, false, false);
        }
        int err = errno;
        sigprocmask(SIG_SETMASK, &c.oldmask, NULL);
        close(sv[1]);
        _cleanup_close_ int sock = sv[0];
        if (pid < 0) {
                *ret_error = xasprintf("fork: %s", strerror(err));
                return -err;
        }
        ret->pid = pid;
        ret->pidfd = pidfd_open(pid, 0);
        container_pid_start_time(pid, &ret->pid_start);
        int r = parent_sync(sock, pid, ret, ret_exit_code, ret_error);
        if (r < 0) {
                if (ret->pidfd >= 0)
                        close(ret->pidfd);
                return r;
        }
        return 0;
}
