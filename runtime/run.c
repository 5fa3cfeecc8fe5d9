/* SPDX-License-Identifier: Apache-2.0 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/pidfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "cgroup.h"
#include "daemon.h"
#include "pty.h"
#include "secprofile.h"
#include "spawn.h"
#include "spec.h"
#include "util.h"

#define LOG_FILE "container.log"

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
}

int run_rootfs(store *s, const char *id, char **ret_path)
{
        _cleanup_free_ char *mnt = NULL;
        if (daemon_find(s, &mnt) < 0)
                return -ENOTCONN;
        char *path = xasprintf("%s/containers/%s", mnt, id);
        /* the daemon notices new records by itself; give it a moment */
        struct stat st;
        for (int i = 0; i < 200 && stat(path, &st) < 0; i++)
                sleep_ms(5);
        if (stat(path, &st) < 0) {
                int r = -errno;
                free(path);
                return r;
        }
        *ret_path = path;
        return 0;
}

/* hosts, hostname and resolv.conf in containers/<id>/, bind-mounted into the container. Written
 * again at every start, so not fsync'ed. */
static int write_etc_files(store *s, const struct container_config *cfg)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s", cfg->id);
        _cleanup_close_ int dfd = openat(store_dirfd(s), rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (dfd < 0)
                return -errno;
        const char *h = cfg->hostname ? cfg->hostname : "localhost";
        _cleanup_free_ char *hosts = xasprintf("127.0.0.1\tlocalhost\n"
                                               "::1\tlocalhost ip6-localhost ip6-loopback\n"
                                               "fe00::0\tip6-localnet\n"
                                               "ff00::0\tip6-mcastprefix\n"
                                               "ff02::1\tip6-allnodes\n"
                                               "ff02::2\tip6-allrouters\n"
                                               "127.0.1.1\t%s\n",
                                               h);
        int r = util_replace_file_at(dfd, "hosts", hosts, strlen(hosts), 0644);
        if (r < 0)
                return r;
        _cleanup_free_ char *hn = xasprintf("%s\n", h);
        r = util_replace_file_at(dfd, "hostname", hn, strlen(hn), 0644);
        if (r < 0)
                return r;
        _cleanup_free_ char *resolv = NULL;
        if (cfg->network == CONTAINER_NET_NONE || util_read_file_at(AT_FDCWD, "/etc/resolv.conf", 1 << 20, &resolv, NULL) < 0) {
                free(resolv);
                resolv = xstrdup("");
        }
        return util_replace_file_at(dfd, "resolv.conf", resolv, strlen(resolv), 0644);
}

/* The default seccomp profile for caps, from the store's cache/ when it was compiled before;
 * NULL (the child compiles it) when privileged or on an error. */
static struct secprofile *seccomp_for(store *s, const struct container_config *cfg, uint64_t caps)
{
        if (cfg->privileged)
                return NULL;
        if (mkdirat(store_dirfd(s), "cache", 0700) < 0 && errno != EEXIST)
                return NULL;
        _cleanup_close_ int dfd = openat(store_dirfd(s), "cache", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        struct secprofile *sp = NULL;
        if (secprofile_compile(dfd, caps, &sp) < 0)
                return NULL;
        return sp;
}

static int write_all_fd(int fd, const char *buf, size_t n)
{
        return util_write_all(fd, buf, n);
}

/*
 * A detached container's log keeps its two streams apart, as docker's does: after LOG_MAGIC,
 * frames of an 8-byte header (the stream, 1 stdout or 2 stderr, three zero bytes, the length
 * big-endian: docker's attach framing) and the bytes. A log from before has no LOG_MAGIC and is
 * the two streams as they came (and stays so when the container starts again).
 */
#define LOG_MAGIC "\0ctfslog"
#define LOG_MAGIC_LEN 8

/* Write what the stream wrote to the log, framed (one write: a frame is whole in the log; a
 * frame cut short by a failed write is taken back, so that the frames after it stay readable). */
static void log_frame(int log, int stream, const char *buf, size_t n)
{
        struct stat st;
        off_t before = fstat(log, &st) == 0 ? st.st_size : -1;
        unsigned char h[8] = { (unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                               (unsigned char)(n >> 8), (unsigned char)n };
        struct iovec iov[2] = { { h, sizeof(h) }, { (void *)buf, n } };
        size_t left = sizeof(h) + n;
        while (left > 0) {
                ssize_t w = writev(log, iov, 2);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        if (before >= 0)
                                (void)!ftruncate(log, before);
                        return;
                }
                left -= (size_t)w;
                for (int i = 0; i < 2 && w > 0; i++) {
                        size_t k = (size_t)w < iov[i].iov_len ? (size_t)w : iov[i].iov_len;
                        iov[i].iov_base = (char *)iov[i].iov_base + k;
                        iov[i].iov_len -= k;
                        w -= (ssize_t)k;
                }
        }
}

/* Whether the log (opened O_APPEND) is framed: a new one gets LOG_MAGIC now. */
static bool log_begin(int log)
{
        struct stat st;
        if (fstat(log, &st) < 0)
                return false;
        if (st.st_size == 0)
                return write_all_fd(log, LOG_MAGIC, LOG_MAGIC_LEN) == 0;
        char head[LOG_MAGIC_LEN];
        return pread(log, head, sizeof(head), 0) == LOG_MAGIC_LEN && memcmp(head, LOG_MAGIC, LOG_MAGIC_LEN) == 0;
}

/* Copy what is readable from in to out (as stream's frames when stream > 0); false at EOF or
 * error of in. */
static bool pump_stream(int in, int out, int stream)
{
        char buf[16384];
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return true;
        if (n <= 0)
                return false;
        if (out >= 0 && stream > 0)
                log_frame(out, stream, buf, (size_t)n);
        else if (out >= 0)
                write_all_fd(out, buf, (size_t)n);
        return true;
}

static bool pump(int in, int out) { return pump_stream(in, out, 0); }

static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGCONT, SIGWINCH, SIGCHLD };

struct monitor {
        store *s;
        struct container_config *cfg;
        int stdio[3];
        int out_fd;       /* where pty output goes (terminal or log), -1 without a tty */
        int in_fd;        /* where pty input comes from, -1 for none */
        bool attached;
        int notify_fd;    /* detached: the starter waits for one message here */
        bool framed;      /* out_fd is a framed log (LOG_MAGIC) */
        int log_in[2];    /* framed, without a tty: the read ends of the container's stdout and
                           * stderr pipes (-1: none) */
};

/* The message a detached starter gets: exit code (0 = started) and text. */
struct notify_msg {
        int code;
        char text[1024];
};

static void notify(struct monitor *m, int code, const char *text)
{
        if (m->notify_fd < 0)
                return;
        struct notify_msg msg = { .code = code };
        snprintf(msg.text, sizeof(msg.text), "%s", text ? text : "");
        util_write_all(m->notify_fd, &msg, sizeof(msg));
        close(m->notify_fd);
        m->notify_fd = -1;
}

static void record_exit(struct monitor *m, const struct container_state *running, int code, bool oom, const char *error)
{
        struct container_state st = running ? *running : (struct container_state){ 0 };
        st.status = CONTAINER_EXITED;
        st.exit_code = code;
        st.finished = now_ns();
        st.oom_killed = oom;
        st.error = (char *)error;
        st.monitor = 0;
        st.monitor_start = 0;
        container_state_save(m->s, m->cfg->id, &st);
}

/* --rm: the container goes as it ends; its exit code stays a while for a `wait` that sees it
 * go. */
static void remove_ended(store *s, const char *id, int code)
{
        container_exit_keep(s, id, code);
        container_remove(s, id);
}

/* Start and wait: returns the exit code (125 with *ret_error when setup failed). */
static int monitor_run(struct monitor *m, char **ret_error)
{
        struct container_config *cfg = m->cfg;
        int code = 125;
        _cleanup_free_ char *rootfs = NULL, *dir = container_dir(m->s, cfg->id);
        uint64_t caps = 0;
        const char *bad = NULL;
        cgroup *cg = NULL;
        _cleanup_(secprofile_freep) struct secprofile *sp = NULL;
        _cleanup_close_ int sfd = -1;
        int r = run_rootfs(m->s, cfg->id, &rootfs);
        if (r < 0) {
                *ret_error = r == -ENOTCONN ? xstrdup("the store is not mounted (ctfs mount)")
                                            : xasprintf("the container's view: %s", strerror(-r));
                goto fail;
        }
        if (caps_compute(cfg->privileged, cfg->cap_add, cfg->cap_drop, &caps, &bad) < 0) {
                *ret_error = xasprintf("unknown capability: %s", bad);
                goto fail;
        }
        r = write_etc_files(m->s, cfg);
        if (r < 0) {
                *ret_error = xasprintf("write /etc files: %s", strerror(-r));
                goto fail;
        }
        struct cgroup_limits lim = { .memory = cfg->memory, .pids = cfg->pids_limit, .nano_cpus = cfg->nano_cpus };
        r = cgroup_create(cfg->id, &lim, &cg, ret_error);
        if (r < 0)
                goto fail;

        sigset_t set, old;
        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&set, forwarded[i]);
        sigprocmask(SIG_BLOCK, &set, &old);
        sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);

        sp = seccomp_for(m->s, cfg, caps);
        struct spawn_params p = {
                .cfg = cfg, .rootfs = rootfs, .dir = dir, .caps = caps, .cg = cg, .seccomp = sp,
                .stdio = { m->stdio[0], m->stdio[1], m->stdio[2] },
                .die_with_parent = true,
        };
        if (cfg->tty && m->in_fd >= 0)
                pty_get_size(m->in_fd, &p.ws);
        if (cfg->tty && !p.ws.ws_row && m->out_fd >= 0)
                pty_get_size(m->out_fd, &p.ws);
        struct spawn_result sr = { .pidfd = -1, .pty_master = -1 };
        r = spawn_container(&p, &sr, &code, ret_error);
        if (r < 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                goto fail;
        }
        if (m->log_in[0] >= 0) { /* the container has the write ends: EOF is when it closes them */
                close(m->stdio[1]);
                close(m->stdio[2]);
        }
        struct container_state st = {
                .status = CONTAINER_RUNNING, .pid = sr.pid, .pid_start = sr.pid_start,
                .monitor = getpid(), .started = now_ns(),
        };
        container_pid_start_time(getpid(), &st.monitor_start);
        container_state_save(m->s, cfg->id, &st);
        notify(m, 0, NULL);

        bool raw = false;
        if (sr.pty_master >= 0 && m->attached && m->in_fd >= 0)
                raw = pty_raw(m->in_fd) > 0;
        int master = sr.pty_master;
        if (master >= 0)
                fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        int in = master >= 0 ? m->in_fd : -1;
        int lout = m->log_in[0], lerr = m->log_in[1];
        bool exited = false;
        while (!exited) {
                struct pollfd pf[6] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = sr.pidfd, .events = POLLIN },
                        { .fd = master, .events = POLLIN },
                        { .fd = in, .events = POLLIN },
                        { .fd = lout, .events = POLLIN },
                        { .fd = lerr, .events = POLLIN },
                };
                if (poll(pf, 6, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pf[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                int sig = (int)si.ssi_signo;
                                if (sig == SIGCHLD)
                                        continue;
                                if (sig == SIGWINCH) {
                                        struct winsize ws;
                                        if (master >= 0 && m->in_fd >= 0 && pty_get_size(m->in_fd, &ws))
                                                ioctl(master, TIOCSWINSZ, &ws);
                                        continue;
                                }
                                kill(sr.pid, sig);
                        }
                }
                if (pf[2].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump_stream(master, m->out_fd, m->framed ? 1 : 0))
                                master = -1; /* EIO: every slave fd is closed */
                if (pf[4].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump_stream(lout, m->out_fd, 1))
                                lout = -1;
                if (pf[5].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump_stream(lerr, m->out_fd, 2))
                                lerr = -1;
                if (pf[3].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump(in, sr.pty_master))
                                in = -1;
                if (pf[1].revents & POLLIN)
                        exited = true;
        }
        /* what the container wrote last (its pid namespace is gone: nothing writes more) */
        while (master >= 0 && pump_stream(master, m->out_fd, m->framed ? 1 : 0))
                ;
        for (int k = 0; k < 2; k++) {
                int fd = k == 0 ? lout : lerr;
                if (fd >= 0) {
                        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                        while (pump_stream(fd, m->out_fd, k + 1)) {
                                struct pollfd one = { .fd = fd, .events = POLLIN };
                                if (poll(&one, 1, 0) <= 0)
                                        break;
                        }
                }
        }
        int status = 0;
        while (waitpid(sr.pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (raw)
                pty_restore();
        if (sr.pty_master >= 0)
                close(sr.pty_master);
        close(sr.pidfd);
        code = spawn_status_to_exit(status);
        bool oom = cgroup_oom_killed(cg);
        cgroup_destroy(cg);
        cgroup_free(cg);
        sigprocmask(SIG_SETMASK, &old, NULL);
        record_exit(m, &st, code, oom, NULL);
        if (cfg->auto_remove)
                remove_ended(m->s, cfg->id, code);
        return code;
fail:
        if (cg) {
                cgroup_destroy(cg);
                cgroup_free(cg);
        }
        record_exit(m, NULL, code, false, *ret_error);
        notify(m, code, *ret_error);
        if (cfg->auto_remove)
                remove_ended(m->s, cfg->id, code);
        return code;
}

/* Held while starting, so two starts of one container do not race. */
static int lock_container(store *s, const char *id)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s", id);
        int fd = openat(store_dirfd(s), rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                close(fd);
                return r;
        }
        return fd;
}

int run_start(store *s, const char *id, const struct run_options *o, int *ret_exit_code, char **ret_error)
{
        *ret_exit_code = 125;
        struct container_config cfg = { 0 };
        int r = container_load(s, id, &cfg);
        if (r < 0) {
                *ret_error = xasprintf("load container %.12s: %s", id, strerror(-r));
                return r;
        }
        int lock = lock_container(s, id);
        if (lock < 0) {
                container_config_free(&cfg);
                /* (its monitor holds the lock while it runs) */
                struct container_state st;
                bool running = false;
                if (lock == -EBUSY && container_state_load(s, id, &st) == 0) {
                        running = st.status == CONTAINER_RUNNING;
                        container_state_free(&st);
                }
                *ret_error = running          ? xasprintf("container %.12s is already running", id)
                             : lock == -EBUSY ? xasprintf("container %.12s is being started", id)
                                              : xasprintf("container %.12s: %s", id, strerror(-lock));
                return lock;
        }
        struct container_state st;
        r = container_state_load(s, id, &st);
        if (r == 0 && st.status == CONTAINER_RUNNING) {
                container_state_free(&st);
                container_config_free(&cfg);
                close(lock);
                *ret_error = xasprintf("container %.12s is already running", id);
                return -EBUSY;
        }
        if (r == 0)
                container_state_free(&st);
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        struct monitor m = { .s = s, .cfg = &cfg, .out_fd = -1, .in_fd = -1, .notify_fd = -1, .log_in = { -1, -1 } };
        if (o->attach) {
                m.attached = true;
                m.stdio[0] = o->interactive ? STDIN_FILENO : devnull;
                m.stdio[1] = STDOUT_FILENO;
                m.stdio[2] = STDERR_FILENO;
                m.out_fd = STDOUT_FILENO;
                m.in_fd = o->interactive ? STDIN_FILENO : -1;
                char *err = NULL;
                int code = monitor_run(&m, &err);
                close(lock);
                container_config_free(&cfg);
                *ret_exit_code = code;
                if (err) {
                        *ret_error = err;
                        return -EIO;
                }
                return 0;
        }

        /* Detached: a monitor process waits for the container; we wait for it to start. */
        int pp[2];
        if (pipe2(pp, O_CLOEXEC) < 0) {
                r = -errno;
                close(lock);
                container_config_free(&cfg);
                *ret_error = xasprintf("pipe: %m");
                return r;
        }
        pid_t pid = fork();
        if (pid < 0) {
                r = -errno;
                close(pp[0]);
                close(pp[1]);
                close(lock);
                container_config_free(&cfg);
                *ret_error = xasprintf("fork: %m");
                return r;
        }
        if (pid == 0) {
                close(pp[0]);
                setsid();
                /* nothing of the caller's: a $(ctfs run -d) must not wait for the container */
                dup2(devnull, 0);
                dup2(devnull, 1);
                dup2(devnull, 2);
                _cleanup_free_ char *rel = xasprintf("containers/%s/" LOG_FILE, id);
                int logfd = openat(store_dirfd(s), rel, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
                if (logfd < 0)
                        logfd = devnull;
                m.stdio[0] = devnull;
                m.stdio[1] = logfd;
                m.stdio[2] = logfd;
                m.out_fd = logfd;
                m.framed = logfd != devnull && log_begin(logfd);
                int po[2], pe[2];
                if (m.framed && !cfg.tty && pipe2(po, O_CLOEXEC) == 0) {
                        if (pipe2(pe, O_CLOEXEC) == 0) {
                                m.stdio[1] = po[1];
                                m.stdio[2] = pe[1];
                                m.log_in[0] = po[0];
                                m.log_in[1] = pe[0];
                        } else {
                                close(po[0]);
                                close(po[1]);
                        }
                }
                m.notify_fd = pp[1];
                char *err = NULL;
                monitor_run(&m, &err);
                _exit(0);
        }
        close(pp[1]);
        close(lock);
        struct notify_msg msg = { .code = 125 };
        ssize_t n = util_read_all(pp[0], &msg, sizeof(msg));
        close(pp[0]);
        container_config_free(&cfg);
        if (n != (ssize_t)sizeof(msg)) {
                *ret_error = xstrdup("the monitor process died");
                return -EIO;
        }
        if (msg.code != 0) {
                msg.text[sizeof(msg.text) - 1] = '\0';
                *ret_error = xstrdup(msg.text);
                *ret_exit_code = msg.code;
                return -EIO;
        }
        *ret_exit_code = 0;
        return 0;
}

static int load_running(store *s, const char *id, struct container_config *cfg, struct container_state *st)
{
        int r = container_load(s, id, cfg);
        if (r < 0)
                return r;
        r = container_state_load(s, id, st);
        if (r < 0) {
                container_config_free(cfg);
                return r;
        }
        if (st->status != CONTAINER_RUNNING || !container_pid_alive(st->pid, st->pid_start)) {
                container_state_free(st);
                container_config_free(cfg);
                return -ESRCH;
        }
        return 0;
}

int run_exec(store *s, const char *id, const struct run_exec_options *o, int *ret_exit_code, char **ret_error)
{
        *ret_exit_code = 125;
        struct container_config cfg = { 0 };
        struct container_state st;
        int r = load_running(s, id, &cfg, &st);
        if (r < 0) {
                *ret_error = r == -ESRCH ? xasprintf("container %.12s is not running", id)
                                         : xasprintf("container %.12s: %s", id, strerror(-r));
                return r;
        }
        uint64_t caps = 0;
        const char *bad = NULL;
        caps_compute(cfg.privileged, cfg.cap_add, cfg.cap_drop, &caps, &bad);
        cgroup *cg = NULL;
        cgroup_open(cfg.id, &cg);
        char **env = NULL;
        for (char **e = cfg.env; e && *e; e++)
                spec_env_set(&env, *e);
        if (o->tty && !spec_env_get(env, "TERM"))
                spec_env_set(&env, "TERM=xterm");
        for (char **e = o->env; e && *e; e++)
                spec_env_set(&env, *e);
        _cleanup_close_ int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        _cleanup_(secprofile_freep) struct secprofile *sp = seccomp_for(s, &cfg, caps);
        struct exec_params e = {
                .cfg = &cfg, .pid = st.pid, .pid_start = st.pid_start, .cg = cg, .caps = caps, .seccomp = sp,
                .args = o->args, .env = env, .cwd = o->cwd ? o->cwd : cfg.cwd,
                .user = o->user ? o->user : cfg.user, .tty = o->tty,
                .stdio = { o->interactive ? STDIN_FILENO : devnull, STDOUT_FILENO, STDERR_FILENO },
        };
        if (o->tty && !pty_get_size(STDIN_FILENO, &e.ws))
                pty_get_size(STDOUT_FILENO, &e.ws);
        sigset_t set, old;
        sigemptyset(&set);
        for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
                sigaddset(&set, forwarded[i]);
        sigprocmask(SIG_BLOCK, &set, &old);
        _cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        struct spawn_result sr = { .pidfd = -1, .pty_master = -1 };
        r = spawn_exec(&e, &sr, ret_exit_code, ret_error);
        for (char **x = env; x && *x; x++)
                free(*x);
        free(env);
        cgroup_free(cg);
        container_state_free(&st);
        container_config_free(&cfg);
        if (r < 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                return r;
        }
        bool raw = sr.pty_master >= 0 && pty_raw(STDIN_FILENO) > 0;
        int master = sr.pty_master;
        if (master >= 0)
                fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        int in = master >= 0 && o->interactive ? STDIN_FILENO : -1;
        for (bool exited = false; !exited;) {
                struct pollfd pf[4] = {
                        { .fd = sfd, .events = POLLIN },
                        { .fd = sr.pidfd, .events = POLLIN },
                        { .fd = master, .events = POLLIN },
                        { .fd = in, .events = POLLIN },
                };
                if (poll(pf, 4, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (pf[0].revents & POLLIN) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                                int sig = (int)si.ssi_signo;
                                if (sig == SIGCHLD)
                                        continue;
                                if (sig == SIGWINCH) {
                                        struct winsize ws;
                                        if (master >= 0 && pty_get_size(STDIN_FILENO, &ws))
                                                ioctl(master, TIOCSWINSZ, &ws);
                                        continue;
                                }
                                kill(sr.pid, sig);
                        }
                }
                if (pf[2].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump(master, STDOUT_FILENO))
                                master = -1;
                if (pf[3].revents & (POLLIN | POLLHUP | POLLERR))
                        if (!pump(in, sr.pty_master))
                                in = -1;
                if (pf[1].revents & POLLIN)
                        exited = true;
        }
        while (master >= 0 && pump(master, STDOUT_FILENO))
                ;
        int status = 0;
        while (waitpid(sr.pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (raw)
                pty_restore();
        if (sr.pty_master >= 0)
                close(sr.pty_master);
        close(sr.pidfd);
        sigprocmask(SIG_SETMASK, &old, NULL);
        *ret_exit_code = spawn_status_to_exit(status);
        return 0;
}

int run_kill(store *s, const char *id, int sig)
{
        struct container_config cfg = { 0 };
        struct container_state st;
        int r = load_running(s, id, &cfg, &st);
        if (r < 0)
                return r;
        /* a pidfd pins the process: no signal reaches a recycled pid */
        _cleanup_close_ int pfd = pidfd_open(st.pid, 0);
        if (pfd < 0 || !container_pid_alive(st.pid, st.pid_start))
                r = -ESRCH;
        else if (pidfd_send_signal(pfd, sig, NULL, 0) < 0)
                r = -errno;
        container_state_free(&st);
        container_config_free(&cfg);
        return r;
}

static int64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the state file no longer says running (or its writer is gone); timeout_ms < 0
 * waits for ever. */
static int wait_recorded(store *s, const char *id, long timeout_ms, struct container_state *ret)
{
        int64_t deadline = mono_ms() + timeout_ms;
        for (;;) {
                struct container_state st;
                int r = container_state_load(s, id, &st);
                if (r < 0)
                        return r;
                if (st.status != CONTAINER_RUNNING) {
                        if (ret)
                                *ret = st;
                        else
                                container_state_free(&st);
                        return 0;
                }
                pid_t pid = st.pid;
                uint64_t start = st.pid_start;
                container_state_free(&st);
                int64_t left = timeout_ms < 0 ? 1000 : deadline - mono_ms();
                if (left <= 0)
                        return -ETIMEDOUT;
                /* sleep on the process itself while it runs, then poll for the record */
                _cleanup_close_ int pfd = pidfd_open(pid, 0);
                if (pfd >= 0 && container_pid_alive(pid, start)) {
                        struct pollfd pf = { .fd = pfd, .events = POLLIN };
                        poll(&pf, 1, (int)(left < 1000 ? left : 1000));
                } else
                        sleep_ms(5);
        }
}

int run_stop(store *s, const char *id, int timeout)
{
        struct container_config cfg = { 0 };
        int r = container_load(s, id, &cfg);
        if (r < 0)
                return r;
        int sig = cfg.stop_signal ? spec_parse_signal(cfg.stop_signal) : SIGTERM;
        if (sig <= 0)
                sig = SIGTERM;
        container_config_free(&cfg);
        r = run_kill(s, id, sig);
        if (r == -ESRCH)
                return 0; /* not running: nothing to do (docker stop says the same) */
        if (r < 0)
                return r;
        r = wait_recorded(s, id, timeout < 0 ? -1 : (long)timeout * 1000, NULL);
        if (r == -ETIMEDOUT) {
                r = run_kill(s, id, SIGKILL);
                if (r < 0 && r != -ESRCH)
                        return r;
                r = wait_recorded(s, id, 30000, NULL);
        }
        return r;
}

int run_wait(store *s, const char *id, int *ret_exit_code)
{
        struct container_state st;
        int r = wait_recorded(s, id, -1, &st);
        if (r < 0)
                return r;
        bool gone = st.status == CONTAINER_CREATED && !container_exists(s, id);
        *ret_exit_code = st.status == CONTAINER_CREATED ? 0 : st.exit_code;
        container_state_free(&st);
        /* removed as it ended (--rm): its exit code was kept for us */
        return gone ? container_exit_kept(s, id, ret_exit_code) : 0;
}

bool run_reap(store *s, const char *id)
{
        struct container_config cfg = { 0 };
        if (container_load(s, id, &cfg) < 0)
                return false;
        bool rm = cfg.auto_remove;
        container_config_free(&cfg);
        struct container_state st;
        if (!rm || container_state_load(s, id, &st) < 0)
                return false;
        /* ended; its monitor, which removes it, is gone (or about to remove it: then one of the
         * two removals finds nothing, and both keep the same exit code) */
        rm = st.status == CONTAINER_EXITED && !container_pid_alive(st.monitor, st.monitor_start);
        int code = st.exit_code;
        container_state_free(&st);
        if (!rm)
                return false;
        container_exit_keep(s, id, code);
        return run_remove(s, id, false) == 0;
}

int run_remove(store *s, const char *id, bool force)
{
        struct container_state st;
        int r = container_state_load(s, id, &st);
        if (r < 0)
                return r;
        bool running = st.status == CONTAINER_RUNNING;
        container_state_free(&st);
        if (running) {
                if (!force)
                        return -EBUSY;
                r = run_kill(s, id, SIGKILL);
                if (r < 0 && r != -ESRCH)
                        return r;
                r = wait_recorded(s, id, 30000, NULL);
                if (r < 0)
                        return r;
        }
        /* A container whose monitor was killed may have left its cgroup behind. */
        cgroup *cg = NULL;
        if (cgroup_open(id, &cg) == 0) {
                cgroup_destroy(cg);
                cgroup_free(cg);
        }
        r = container_remove(s, id);
        /* --rm's monitor may have removed it meanwhile */
        return r == -ENOENT ? 0 : r;
}

/* The log's bytes from buf to where it is read to: raw, or frames to their stream's fd. Returns
 * how many bytes were used (a frame cut short waits for the rest). */
struct log_reader {
        bool framed, known;
        char *buf;
        size_t len;
};

static int log_emit(struct log_reader *lr, int out_fd, int err_fd, bool last)
{
        size_t off = 0;
        if (!lr->known) {
                if (lr->len < LOG_MAGIC_LEN && !last)
                        return 0;
                lr->known = true;
                lr->framed = lr->len >= LOG_MAGIC_LEN && memcmp(lr->buf, LOG_MAGIC, LOG_MAGIC_LEN) == 0;
                if (lr->framed)
                        off = LOG_MAGIC_LEN;
        }
        int r = 0;
        if (!lr->framed) {
                r = util_write_all(out_fd, lr->buf, lr->len);
                off = lr->len;
        } else {
                while (r == 0 && lr->len - off >= 8) {
                        const unsigned char *h = (const unsigned char *)lr->buf + off;
                        size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
                        if (lr->len - off - 8 < n)
                                break;
                        r = util_write_all(h[0] == 2 ? err_fd : out_fd, lr->buf + off + 8, n);
                        off += 8 + n;
                }
        }
        memmove(lr->buf, lr->buf + off, lr->len - off);
        lr->len -= off;
        return r;
}

/* The next piece of the log after what lr holds: bytes read, 0 at its end, or -errno. */
static ssize_t log_more(struct log_reader *lr, int fd)
{
        lr->buf = xrealloc(lr->buf, lr->len + 65536);
        for (;;) {
                ssize_t n = read(fd, lr->buf + lr->len, 65536);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                lr->len += (size_t)n;
                return n;
        }
}

static int log_read(struct log_reader *lr, int fd, int out_fd, int err_fd)
{
        for (;;) {
                ssize_t n = log_more(lr, fd);
                if (n <= 0)
                        return (int)n;
                int r = log_emit(lr, out_fd, err_fd, false);
                if (r < 0)
                        return r;
        }
}

/* --tail: the last n lines of what is in the log now, each on its stream (a line is cut where
 * its stream wrote a newline). */
struct log_line {
        int stream;
        char *text;
        size_t len;
};

static int log_tail(struct log_reader *lr, int fd, int out_fd, int err_fd, long n)
{
        for (ssize_t k; (k = log_more(lr, fd)) != 0;)
                if (k < 0)
                        return (int)k;
        lr->known = true;
        lr->framed = lr->len >= LOG_MAGIC_LEN && memcmp(lr->buf, LOG_MAGIC, LOG_MAGIC_LEN) == 0;
        /* no more lines than the log has newlines, and two not ended */
        size_t most = 2;
        for (const char *p = lr->buf; (p = memchr(p, '\n', lr->len - (size_t)(p - lr->buf))); p++)
                most++;
        if ((size_t)n > most)
                n = (long)most;
        struct log_line *ring = n > 0 ? xcalloc((size_t)n, sizeof(*ring)) : NULL;
        size_t count = 0, off = lr->framed ? LOG_MAGIC_LEN : 0;
        struct log_line open[3] = { { 0 } }; /* a line each stream has begun */
        while (off < lr->len) {
                int stream = 1;
                size_t len = lr->len - off;
                if (lr->framed) {
                        if (lr->len - off < 8)
                                break;
                        const unsigned char *h = (const unsigned char *)lr->buf + off;
                        len = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
                        if (lr->len - off - 8 < len)
                                break;
                        stream = h[0] == 2 ? 2 : 1;
                        off += 8;
                }
                const char *p = lr->buf + off, *end = p + len;
                while (p < end) {
                        const char *nl = memchr(p, '\n', (size_t)(end - p));
                        size_t piece = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                        struct log_line *l = &open[stream];
                        l->text = xrealloc(l->text, l->len + piece);
                        memcpy(l->text + l->len, p, piece);
                        l->len += piece;
                        l->stream = stream;
                        if (nl) { /* a whole line: into the ring */
                                if (ring) {
                                        struct log_line *slot = &ring[count % (size_t)n];
                                        free(slot->text);
                                        *slot = *l;
                                } else {
                                        free(l->text);
                                }
                                count++;
                                *l = (struct log_line){ 0 };
                        }
                        p += piece;
                }
                off += len;
        }
        for (int k = 1; k < 3; k++) { /* a line not ended yet is the last of its stream */
                if (open[k].len && ring) {
                        struct log_line *slot = &ring[count % (size_t)n];
                        free(slot->text);
                        *slot = open[k];
                        count++;
                } else {
                        free(open[k].text);
                }
        }
        int r = 0;
        size_t first = ring && count > (size_t)n ? count - (size_t)n : 0;
        for (size_t i = first; i < count && ring; i++) {
                struct log_line *l = &ring[i % (size_t)n];
                if (r == 0)
                        r = util_write_all(l->stream == 2 ? err_fd : out_fd, l->text, l->len);
        }
        for (size_t i = 0; ring && i < (size_t)n; i++)
                free(ring[i].text);
        free(ring);
        /* what follows (-f) is read from here: a frame cut short stays for the next read */
        memmove(lr->buf, lr->buf + off, lr->len - off);
        lr->len -= off;
        return r;
}

int run_logs(store *s, const char *id, int out_fd, int err_fd, bool follow, long tail)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s/" LOG_FILE, id);
        _cleanup_close_ int fd = openat(store_dirfd(s), rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT)
                return -errno;
        struct log_reader lr = { 0 };
        int r = 0;
        if (tail >= 0 && fd >= 0 && (r = log_tail(&lr, fd, out_fd, err_fd, tail)) < 0) {
                free(lr.buf);
                return r;
        }
        for (;;) {
                if (fd >= 0 && (r = log_read(&lr, fd, out_fd, err_fd)) < 0)
                        break;
                if (!follow)
                        break;
                struct container_state st;
                r = container_state_load(s, id, &st);
                if (r < 0) {
                        r = r == -ENOENT ? 0 : r;
                        break;
                }
                bool running = st.status == CONTAINER_RUNNING;
                container_state_free(&st);
                if (!running) {
                        /* one last read: what it wrote before the state changed */
                        if (fd >= 0)
                                r = log_read(&lr, fd, out_fd, err_fd);
                        break;
                }
                if (fd < 0)
                        fd = openat(store_dirfd(s), rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                sleep_ms(50);
        }
        if (r == 0 && lr.len > 0)
                r = log_emit(&lr, out_fd, err_fd, true); /* (a plain log shorter than LOG_MAGIC) */
        free(lr.buf);
        return r;
}
