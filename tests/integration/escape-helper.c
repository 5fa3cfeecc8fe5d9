/* SPDX-License-Identifier: Apache-2.0 */
/* The hostile program of tests/integration/escape.sh: built with `gcc -static` by the test and
 * added to a busybox image, it runs inside a container and tries what busybox cannot (raw
 * syscalls, tight races). It only reports what happened, one line per attempt:
 * "<what> <ERRNO NAME or ok>"; the test decides what is right.
 *
 *   esc syscalls HOSTPID          every escape syscall (keyctl, mount, unshare, ptrace, ...)
 *   esc chroot-escape PATH...     the classic double-chroot breakout, then stat each PATH
 *   esc devnode b|c MAJ MIN PATH  mknod, then open the node read-write
 *   esc race-swap DIR TARGET SECS swap DIR/d between a directory and a symlink to TARGET
 *   esc race-write DIR SECS       meanwhile write, create, rename, chmod ... below DIR/d/
 *   esc exe-scan SECS             look for a process whose executable is not in the container
 *                                 (a `ctfs exec` on its way in, runc's CVE-2019-5736)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <linux/kexec.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, long r)
{
        if (r < 0)
                printf("%s %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
        else
                printf("%s ok\n", what);
        fflush(stdout);
}

/* A syscall in a child, so that one that unexpectedly works (clone) or kills (int 0x80
 * without IA-32 emulation) cannot disturb the rest. */
static long in_child(long (*f)(void *), void *arg)
{
        int p[2];
        if (pipe(p) < 0)
                return -1;
        pid_t pid = fork();
        if (pid == 0) {
                errno = 0;
                long r = f(arg);
                int e[2] = { (int)r, errno };
                if (write(p[1], e, sizeof(e)) < 0)
                        _exit(1);
                _exit(0);
        }
        close(p[1]);
        int e[2];
        ssize_t n = read(p[0], e, sizeof(e));
        close(p[0]);
        int st;
        waitpid(pid, &st, 0);
        if (n != sizeof(e)) {
                errno = ENOSYS; /* the child died in the call */
                return -1;
        }
        errno = e[1];
        return e[0] < 0 ? -1 : 0;
}

static long do_clone_newuser(void *arg)
{
        (void)arg;
        long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (r == 0)
                _exit(0);
        if (r > 0)
                waitpid((pid_t)r, NULL, 0);
        return r;
}

static long do_clone3_newuser(void *arg)
{
        (void)arg;
        struct clone_args ca = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
        long r = syscall(SYS_clone3, &ca, sizeof(ca));
        if (r == 0)
                _exit(0);
        if (r > 0)
                waitpid((pid_t)r, NULL, 0);
        return r;
}

/* A new user namespace would give every capability inside it: try to use them. */
static long do_unshare_user(void *arg)
{
        (void)arg;
        if (unshare(CLONE_NEWUSER) < 0)
                return -1;
        /* it worked: the escape attempt goes on, and reports as "ok" only when it gets out */
        if (unshare(CLONE_NEWNS) < 0)
                return -1;
        if (mount("none", "/tmp", "tmpfs", 0, NULL) < 0)
                return -1;
        return 0;
}

static long do_unshare_mnt(void *arg)
{
        (void)arg;
        return unshare(CLONE_NEWNS);
}

#if defined(__x86_64__)
static long do_keyctl_ia32(void *arg)
{
        (void)arg;
        long r;
        /* keyctl is 288 in the i386 table: the 32-bit ABI must be filtered too */
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(288), "b"(KEYCTL_GET_KEYRING_ID), "c"(KEY_SPEC_SESSION_KEYRING), "d"(0) : "memory");
        if (r < 0 && r > -4096) {
                errno = (int)-r;
                return -1;
        }
        return r;
}
#endif

static int cmd_syscalls(pid_t host)
{
        report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
        report("add_key", syscall(SYS_add_key, "user", "ctfs-escape", "x", 1, KEY_SPEC_SESSION_KEYRING));
        report("request_key", syscall(SYS_request_key, "user", "ctfs-escape", NULL, KEY_SPEC_SESSION_KEYRING));
#if defined(__x86_64__)
        report("keyctl-ia32", in_child(do_keyctl_ia32, NULL));
#endif
        mkdir("/mnt", 0755);
        report("mount", mount("none", "/mnt", "tmpfs", 0, NULL));
        report("mount-bind", mount("/", "/mnt", NULL, MS_BIND, NULL));
        report("remount-proc-sys-rw", mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
        report("umount-proc-sys", umount2("/proc/sys", MNT_DETACH));
        report("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
        report("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
        report("pivot_root", syscall(SYS_pivot_root, ".", "."));
        report("unshare-user", in_child(do_unshare_user, NULL));
        report("unshare-mnt", in_child(do_unshare_mnt, NULL));
        report("clone-newuser", in_child(do_clone_newuser, NULL));
        report("clone3-newuser", in_child(do_clone3_newuser, NULL));
        int ns = open("/proc/1/ns/mnt", O_RDONLY | O_CLOEXEC);
        report("setns", ns < 0 ? -1 : setns(ns, 0));
        /* the "shocker" exploit: a handle of the root inode of an ext4 filesystem */
        struct {
                struct file_handle h;
                unsigned char b[8];
        } fh = { .h = { .handle_bytes = 8, .handle_type = 1 }, .b = { 2, 0, 0, 0, 0, 0, 0, 0 } };
        int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        report("open_by_handle_at", syscall(SYS_open_by_handle_at, root, &fh.h, O_RDONLY));
        int mnt_id;
        fh.h.handle_bytes = 8;
        report("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/etc", &fh.h, &mnt_id, 0));
        union bpf_attr ba = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1 };
        report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &ba, sizeof(ba)));
        /* invalid flags: harmless even where the call is allowed */
        report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
        report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0xdead0000UL));
        /* turning Ctrl-Alt-Del off is the one reboot command that does nothing to a host */
        report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
        report("init_module", syscall(SYS_init_module, NULL, 0, ""));
        report("finit_module", syscall(SYS_finit_module, -1, "", 0));
        report("swapon", syscall(SYS_swapon, "/nonexistent", 0));
        report("syslog", syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0));
        report("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
        report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
        report("sethostname", sethostname("escaped", 7));
#if defined(__x86_64__)
        report("iopl", syscall(SYS_iopl, 3));
#endif
        report("chroot-proc-1-root", chroot("/proc/1/root"));
        /* a process outside: its pid is not in this namespace */
        report("ptrace-host", ptrace(PTRACE_ATTACH, host, NULL, NULL));
        report("kill-host", kill(host, 0));
        char buf[8];
        struct iovec l = { buf, sizeof(buf) }, r = { (void *)0x400000, sizeof(buf) };
        report("process_vm_readv-host", process_vm_readv(host, &l, 1, &r, 1, 0));
        report("kcmp", syscall(SYS_kcmp, getpid(), 1, 0 /* KCMP_FILE */, 0, 0));
        return 0;
}

/* chroot into a subdirectory while the cwd stays outside it, climb, chroot there: on a host
 * whose old root is still reachable, this ends at the real /. */
static int cmd_chroot_escape(int argc, char **argv)
{
        mkdir("/tmp/.esc", 0700);
        if (chroot("/tmp/.esc") < 0) {
                report("chroot", -1);
                return 0;
        }
        for (int i = 0; i < 64; i++)
                if (chdir("..") < 0)
                        break;
        report("chroot-dot", chroot("."));
        for (int i = 0; i < argc; i++) {
                struct stat st;
                char what[4200];
                snprintf(what, sizeof(what), "stat %s", argv[i]);
                report(what, stat(argv[i], &st));
        }
        return 0;
}

static int cmd_devnode(const char *type, const char *maj, const char *min, const char *path)
{
        mode_t m = (*type == 'b' ? S_IFBLK : S_IFCHR) | 0600;
        unlink(path);
        report("mknod", mknod(path, m, makedev(atoi(maj), atoi(min))));
        int fd = open(path, O_RDWR | O_CLOEXEC);
        report("open", fd);
        if (fd >= 0) {
                char b[64] = { 0 };
                ssize_t n = read(fd, b, sizeof(b) - 1);
                report("read", n);
                if (n > 0) {
                        for (ssize_t i = 0; i < n; i++)
                                if ((unsigned char)b[i] < 0x20 || (unsigned char)b[i] > 0x7e)
                                        b[i] = '.';
                        printf("data %s\n", b);
                }
        }
        return 0;
}

static double now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int at(char *buf, size_t n, const char *dir, const char *name)
{
        return snprintf(buf, n, "%s/%s", dir, name);
}

static int cmd_race_swap(const char *dir, const char *target, double secs)
{
        char d[4096], s[4096], real[4096];
        at(d, sizeof(d), dir, "d");
        at(s, sizeof(s), dir, "s");
        at(real, sizeof(real), dir, "real");
        mkdir(d, 0777);
        symlink(target, s);
        unsigned long n = 0, ok = 0;
        double end = now() + secs;
        while (now() < end) {
                /* RENAME_EXCHANGE flips d between the directory and the symlink atomically */
                if (syscall(SYS_renameat2, AT_FDCWD, d, AT_FDCWD, s, 2 /* RENAME_EXCHANGE */) == 0)
                        ok++;
                n++;
                if (n % 64 == 0) {
                        /* and the plain way: move the dir away, put a link in its place */
                        struct stat st;
                        if (lstat(d, &st) == 0 && S_ISDIR(st.st_mode) && rename(d, real) == 0) {
                                if (symlink(target, d) == 0) {
                                        unlink(d);
                                        ok++;
                                }
                                rename(real, d);
                        }
                }
        }
        printf("swaps %lu ok %lu\n", n, ok);
        return 0;
}

static int cmd_race_write(const char *dir, double secs)
{
        char p[8192], q[8192], src[4096], dd[4096];
        at(dd, sizeof(dd), dir, "d");
        at(src, sizeof(src), dir, "src");
        int fd = open(src, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        unsigned long n = 0, ok = 0;
        double end = now() + secs;
        const char *prefix = "ctfs-race";
        while (now() < end) {
                unsigned long i = n++;
                int r = -1;
                switch (i % 12) {
                case 0:
                        snprintf(p, sizeof(p), "%s/%s-f%lu", dd, prefix, i);
                        fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                        if (fd >= 0) {
                                r = (int)write(fd, "pwned\n", 6);
                                close(fd);
                        }
                        break;
                case 1:
                        snprintf(p, sizeof(p), "%s/%s-m%lu", dd, prefix, i);
                        r = mkdir(p, 0777);
                        break;
                case 2:
                        snprintf(p, sizeof(p), "%s/%s-l%lu", dd, prefix, i);
                        r = symlink("/etc/shadow", p);
                        break;
                case 3:
                        snprintf(p, sizeof(p), "%s/%s-h%lu", dd, prefix, i);
                        r = link(src, p);
                        break;
                case 4:
                        snprintf(p, sizeof(p), "%s/%s-f%lu", dd, prefix, i - 4);
                        snprintf(q, sizeof(q), "%s/%s-r%lu", dd, prefix, i);
                        r = rename(p, q);
                        break;
                case 5:
                        r = chmod(dd, 0777);
                        break;
                case 6:
                        r = lchown(dd, 4242, 4242);
                        break;
                case 7:
                        snprintf(p, sizeof(p), "%s/%s-n%lu", dd, prefix, i);
                        r = mknod(p, S_IFIFO | 0666, 0);
                        break;
                case 8:
                        r = setxattr(dd, "user.ctfs-race", "x", 1, 0);
                        break;
                case 9:
                        r = setxattr(dd, "trusted.overlay.opaque", "y", 1, 0);
                        break;
                case 10:
                        r = utimensat(AT_FDCWD, dd, NULL, 0);
                        break;
                case 11:
                        snprintf(p, sizeof(p), "%s/%s-f%lu", dd, prefix, i - 11);
                        fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
                        if (fd >= 0) {
                                r = (int)write(fd, "more\n", 5);
                                close(fd);
                        }
                        break;
                }
                if (r >= 0)
                        ok++;
        }
        printf("writes %lu ok %lu\n", n, ok);
        return 0;
}

static int cmd_exe_scan(double secs)
{
        struct stat rootst;
        if (stat("/bin/busybox", &rootst) < 0 && stat("/", &rootst) < 0)
                return 1;
        unsigned long seen = 0, host = 0;
        double end = now() + secs;
        pid_t self = getpid();
        while (now() < end) {
                DIR *d = opendir("/proc");
                if (!d)
                        return 1;
                struct dirent *e;
                while ((e = readdir(d))) {
                        pid_t pid = atoi(e->d_name);
                        if (pid <= 0 || pid == self)
                                continue;
                        /* every other process counts as seen; a process still running the
                         * runtime's code is not dumpable, so its exe does not open */
                        seen++;
                        char p[64];
                        snprintf(p, sizeof(p), "/proc/%d/exe", pid);
                        int fd = open(p, O_PATH | O_CLOEXEC);
                        if (fd < 0)
                                continue;
                        struct stat st;
                        if (fstat(fd, &st) == 0 && st.st_dev != rootst.st_dev) {
                                char target[4096] = "";
                                ssize_t n = readlink(p, target, sizeof(target) - 1);
                                if (n > 0)
                                        target[n] = 0;
                                host++;
                                printf("host-exe pid %d %s\n", pid, target);
                                /* opening for write (no O_TRUNC: nothing is changed) is what
                                 * the overwrite needs */
                                char self_fd[64];
                                snprintf(self_fd, sizeof(self_fd), "/proc/self/fd/%d", fd);
                                int w = open(self_fd, O_WRONLY | O_CLOEXEC);
                                report("host-exe-open-write", w);
                                if (w >= 0)
                                        close(w);
                        }
                        close(fd);
                }
                closedir(d);
        }
        printf("exe-scan seen %lu host %lu\n", seen, host);
        return 0;
}

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        /* Some of these calls would change a host (mount, sethostname): only in the test's
         * image, which carries this marker. */
        if (access("/.ctfs-escape-image", F_OK) < 0) {
                fprintf(stderr, "esc: not in the escape test's image (no /.ctfs-escape-image); refusing\n");
                return 3;
        }
        if (argc >= 3 && !strcmp(argv[1], "syscalls"))
                return cmd_syscalls(atoi(argv[2]));
        if (argc >= 2 && !strcmp(argv[1], "chroot-escape"))
                return cmd_chroot_escape(argc - 2, argv + 2);
        if (argc == 6 && !strcmp(argv[1], "devnode"))
                return cmd_devnode(argv[2], argv[3], argv[4], argv[5]);
        if (argc == 5 && !strcmp(argv[1], "race-swap"))
                return cmd_race_swap(argv[2], argv[3], atof(argv[4]));
        if (argc == 4 && !strcmp(argv[1], "race-write"))
                return cmd_race_write(argv[2], atof(argv[3]));
        if (argc == 3 && !strcmp(argv[1], "exe-scan"))
                return cmd_exe_scan(atof(argv[2]));
        fprintf(stderr, "usage: esc syscalls HOSTPID | chroot-escape PATH... | devnode b|c MAJ MIN PATH | "
                        "race-swap DIR TARGET SECS | race-write DIR SECS | exe-scan SECS\n");
        return 2;
}
