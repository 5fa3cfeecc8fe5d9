/* SPDX-License-Identifier: Apache-2.0 */
/* Starting, finding and stopping the FUSE daemon of a store. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define RECORD "mount.json"

/* Defined only when linked with a sanitizer runtime (see daemon_mount). */
extern void __lsan_do_leak_check(void) __attribute__((weak));

_printf_(2, 3) static void set_error(char **ret_error, const char *fmt, ...)
{
        if (!ret_error)
                return;
        va_list ap;
        va_start(ap, fmt);
        char *m = NULL;
        if (vasprintf(&m, fmt, ap) < 0)
                m = NULL;
        va_end(ap);
        free(*ret_error);
        *ret_error = m;
}

/* Start time of a process (field 22 of /proc/PID/stat), 0 when it does not exist. */
static unsigned long long proc_start(pid_t pid)
{
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        /* the command name may hold spaces and parentheses: fields start after the last ')' */
        char *p = strrchr(buf, ')');
        if (!p)
                return 0;
        p++;
        for (int field = 3; field < 22 && p; field++)
                p = strchr(p + 1, ' ');
        return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* Zombies still have a /proc entry: only a running (or sleeping) process counts. */
static bool proc_alive(pid_t pid, unsigned long long start)
{
        if (pid <= 0)
                return false;
        unsigned long long s = proc_start(pid);
        if (s == 0 || (start && s != start))
                return false;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        if (n <= 0)
                return false;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

struct record {
        pid_t pid;
        unsigned long long start;
        char *mountpoint;
};

static int record_read(store *s, struct record *ret)
{
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(store_dirfd(s), RECORD, 1 << 20, &data, NULL);
        if (r < 0)
                return r;
        json_object *j = json_tokener_parse(data);
        if (!j)
                return -EBADMSG;
        json_object *pid, *start, *mp;
        if (!json_object_object_get_ex(j, "pid", &pid) || !json_object_object_get_ex(j, "mountpoint", &mp) ||
            !json_object_get_string(mp)) {
                json_object_put(j);
                return -EBADMSG;
        }
        ret->pid = (pid_t)json_object_get_int(pid);
        ret->start = json_object_object_get_ex(j, "start", &start) ? (unsigned long long)json_object_get_int64(start) : 0;
        ret->mountpoint = xstrdup(json_object_get_string(mp));
        json_object_put(j);
        return 0;
}

int daemon_record(store *s, const char *mountpoint)
{
        json_object *j = json_object_new_object();
        json_object_object_add(j, "pid", json_object_new_int((int)getpid()));
        json_object_object_add(j, "start", json_object_new_int64((int64_t)proc_start(getpid())));
        json_object_object_add(j, "mountpoint", json_object_new_string(mountpoint));
        const char *text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY);
        int r = util_write_file_atomic_at(store_dirfd(s), RECORD, text, strlen(text), 0644);
        json_object_put(j);
        return r;
}

void daemon_unrecord(store *s)
{
        struct record rec;
        if (record_read(s, &rec) < 0)
                return;
        if (rec.pid == getpid())
                unlinkat(store_dirfd(s), RECORD, 0);
        free(rec.mountpoint);
}

/* Is path a mount point of a FUSE filesystem in our mount namespace? (Read from mountinfo, not
 * by asking the mount, which may be dead.) */
static bool fuse_mounted_at(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
        if (!f)
                return false;
        char *line = NULL;
        size_t cap = 0;
        bool found = false;
        while (!found && getline(&line, &cap, f) > 0) {
                /* id parent major:minor root mountpoint options... - fstype source superopts */
                char *save = NULL, *tok = strtok_r(line, " ", &save);
                char *mp = NULL;
                for (int field = 1; tok && field <= 5; field++, tok = field <= 5 ? strtok_r(NULL, " ", &save) : tok)
                        if (field == 5)
                                mp = tok;
                char *dash = save ? strstr(save, " - ") : NULL;
                if (!mp || !dash)
                        continue;
                /* unescape \040 and friends */
                char un[PATH_MAX];
                size_t k = 0;
                for (char *p = mp; *p && k < sizeof(un) - 1; p++) {
                        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
                                un[k++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
                                p += 3;
                        } else
                                un[k++] = *p;
                }
                un[k] = '\0';
                if (strcmp(un, path) == 0 && strncmp(dash + 3, "fuse", 4) == 0)
                        found = true;
        }
        free(line);
        return found;
}

int daemon_find(store *s, char **ret_mountpoint)
{
        struct record rec;
        int r = record_read(s, &rec);
        if (r < 0)
                return -ENOENT;
        if (!proc_alive(rec.pid, rec.start) || !fuse_mounted_at(rec.mountpoint)) {
                free(rec.mountpoint);
                return -ENOENT;
        }
        if (ret_mountpoint)
                *ret_mountpoint = rec.mountpoint;
        else
                free(rec.mountpoint);
        return 0;
}

/* Lock against a concurrent mount of the same store: flock on the store's root directory
 * itself, so that no file is added to the layout and pulls (which take "lock") don't wait. */
static int mount_lock(store *s)
{
        int fd = openat(store_dirfd(s), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
        return fd;
}

static int wait_answer(const char *mountpoint)
{
        /* the first stat goes through the new mount to the daemon */
        struct stat st;
        for (int i = 0; i < 500; i++) {
                if (stat(mountpoint, &st) == 0 && st.st_ino == 1)
                        return 0;
                usleep(10 * 1000);
        }
        return -ETIMEDOUT;
}

/* Close every fd above 2 but a and b. */
static void keep_only_fds(int a, int b)
{
        int lo = a < b ? a : b, hi = a < b ? b : a;
        unsigned ranges[3][2] = { { 3, lo > 3 ? (unsigned)lo - 1 : 0 },
                                  { (unsigned)lo + 1, hi > lo + 1 ? (unsigned)hi - 1 : 0 },
                                  { (unsigned)hi + 1, ~0U } };
        for (int i = 0; i < 3; i++) {
                if (ranges[i][1] < ranges[i][0])
                        continue;
                if (syscall(SYS_close_range, ranges[i][0], ranges[i][1], 0) == 0)
                        continue;
                /* (no close_range: Linux before 5.9) */
                unsigned last = ranges[i][1] == ~0U ? 65536 : ranges[i][1];
                for (unsigned fd = ranges[i][0]; fd <= last; fd++)
                        if ((int)fd != a && (int)fd != b)
                                close((int)fd);
        }
}

int daemon_mount(store *s, const char *mountpoint, const struct daemon_options *o, char **ret_error)
{
        struct daemon_options none = { 0 };
        if (!o)
                o = &none;
        if (!mountpoint || !*mountpoint) {
                set_error(ret_error, "mount: no mount point given");
                return -EINVAL;
        }
        struct stat st;
        if (stat(mountpoint, &st) < 0) {
                if (errno == ENOTCONN) {
                        /* a daemon that was killed left its mount: clear it away */
                        umount2(mountpoint, MNT_DETACH);
                } else if (errno == ENOENT) {
                        int r = util_mkdir_p_at(AT_FDCWD, mountpoint, 0755);
                        if (r < 0) {
                                set_error(ret_error, "mount: cannot create %s: %s", mountpoint, strerror(-r));
                                return r;
                        }
                } else {
                        int r = -errno;
                        set_error(ret_error, "mount: cannot use %s: %s", mountpoint, strerror(errno));
                        return r;
                }
        }
        _cleanup_free_ char *mp = realpath(mountpoint, NULL);
        if (!mp) {
                int r = -errno;
                set_error(ret_error, "mount: cannot resolve %s: %s", mountpoint, strerror(errno));
                return r;
        }
        if (stat(mp, &st) < 0 || !S_ISDIR(st.st_mode)) {
                set_error(ret_error, "mount: %s is not a directory", mp);
                return -ENOTDIR;
        }
        _cleanup_close_ int lock = mount_lock(s);
        if (lock < 0) {
                set_error(ret_error, "mount: cannot lock the store %s: %s", store_root(s), strerror(-lock));
                return lock;
        }
        _cleanup_free_ char *live = NULL;
        if (daemon_find(s, &live) == 0) {
                set_error(ret_error, "mount: the store %s is already mounted at %s", store_root(s), live);
                return -EBUSY;
        }
        /* a stale record names a mount whose daemon is gone: remove what is left of it */
        struct record rec;
        if (record_read(s, &rec) == 0) {
                if (fuse_mounted_at(rec.mountpoint))
                        umount2(rec.mountpoint, MNT_DETACH);
                unlinkat(store_dirfd(s), RECORD, 0);
                free(rec.mountpoint);
        }
        if (fuse_mounted_at(mp)) {
                set_error(ret_error, "mount: %s is already a FUSE mount point", mp);
                return -EBUSY;
        }

        if (o->foreground) {
                /* the record is written once mounted; the lock only guards the checks */
                close(TAKE_FD(lock));
                int r = daemon_serve(s, mp, o, -1);
                if (r < 0)
                        set_error(ret_error, "mount: cannot serve %s: %s", mp, strerror(-r));
                return r;
        }

        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                int r = -errno;
                set_error(ret_error, "mount: pipe: %s", strerror(errno));
                return r;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(p[0]);
                close(p[1]);
                set_error(ret_error, "mount: fork: %s", strerror(errno));
                return r;
        }
        if (pid == 0) {
                /* the first child only forks the daemon and exits, so the daemon is nobody's
                 * child here: the caller never has to reap it, and it outlives the caller */
                close(p[0]);
                close(lock);
                if (setsid() < 0)
                        _exit(1);
                pid_t d = fork();
                if (d < 0)
                        _exit(1);
                if (d > 0)
                        _exit(0);
                if (chdir("/") < 0)
                        _exit(1);
                /* nothing of the caller's but stdio (replaced once it serves): a pipe it holds
                 * (`ctfs export C | tar t` that mounted the store, a make job's) would stay open
                 * until the umount */
                keep_only_fds(store_dirfd(s), p[1]);
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (null >= 0) {
                        dup2(null, STDIN_FILENO);
                        close(null);
                }
                int r = daemon_serve(s, mp, o, p[1]);
                /* _exit skips LeakSanitizer's check at exit: run it here in sanitizer builds */
                if (__lsan_do_leak_check)
                        __lsan_do_leak_check();
                _exit(r < 0 ? 1 : 0);
        }
        close(p[1]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        char buf[4096];
        size_t len = 0;
        for (;;) {
                ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == sizeof(buf) - 1)
                        break;
        }
        close(p[0]);
        buf[len] = '\0';
        if (strncmp(buf, "ok", 2) != 0) {
                char *nl = strchr(buf, '\n');
                if (nl)
                        *nl = '\0';
                if (strncmp(buf, "error: ", 7) == 0)
                        set_error(ret_error, "mount: %s", buf + 7);
                else
                        set_error(ret_error, "mount: the daemon exited before mounting %s", mp);
                return -EIO;
        }
        int r = wait_answer(mp);
        if (r < 0) {
                set_error(ret_error, "mount: %s does not answer", mp);
                return r;
        }
        return 0;
}

int daemon_umount(store *s, const char *mountpoint, char **ret_error)
{
        struct record rec = { 0 };
        bool have = record_read(s, &rec) == 0;
        _cleanup_free_ _unused_ char *recmp = rec.mountpoint; /* frees it on return */
        _cleanup_free_ char *target = NULL;
        if (mountpoint) {
                target = realpath(mountpoint, NULL);
                if (!target) /* a dead mount cannot be resolved; take the name as given */
                        target = xstrdup(mountpoint);
        } else if (have) {
                target = xstrdup(rec.mountpoint);
        } else {
                set_error(ret_error, "umount: the store %s is not mounted", store_root(s));
                return -ENOENT;
        }
        bool ours = have && strcmp(target, rec.mountpoint) == 0;
        bool alive = ours && proc_alive(rec.pid, rec.start);
        if (umount2(target, 0) < 0) {
                int err = errno;
                if (err == EBUSY) {
                        set_error(ret_error, "umount: %s is busy", target);
                        return -EBUSY;
                }
                if (err != EINVAL || !alive) {
                        if (!fuse_mounted_at(target) && !alive) {
                                if (ours)
                                        unlinkat(store_dirfd(s), RECORD, 0);
                                set_error(ret_error, "umount: %s is not mounted", target);
                                return -ENOENT;
                        }
                        set_error(ret_error, "umount: %s: %s", target, strerror(err));
                        return -err;
                }
        }
        if (alive) {
                /* the daemon sees its device close and exits; give it a while, then insist */
                for (int i = 0; i < 1000 && proc_alive(rec.pid, rec.start); i++) {
                        if (i == 500)
                                kill(rec.pid, SIGTERM);
                        usleep(10 * 1000);
                }
                if (proc_alive(rec.pid, rec.start)) {
                        kill(rec.pid, SIGKILL);
                        for (int i = 0; i < 100 && proc_alive(rec.pid, rec.start); i++)
                                usleep(10 * 1000);
                }
        }
        if (ours) {
                struct record now;
                if (record_read(s, &now) == 0) {
                        if (now.pid == rec.pid)
                                unlinkat(store_dirfd(s), RECORD, 0);
                        free(now.mountpoint);
                }
        }
        return 0;
}
