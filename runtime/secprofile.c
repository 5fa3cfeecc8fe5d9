/* SPDX-License-Identifier: Apache-2.0 */
#include "secprofile.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define CAP(c) (UINT64_C(1) << (c))

static const struct {
        const char *name;
        uint64_t unless; /* allowed when the container has one of these capabilities */
} denied[] = {
        /* never in Docker's default profile (without extra capabilities) */
        { "acct", CAP(CAP_SYS_PACCT) },
        { "add_key", 0 },
        { "bpf", CAP(CAP_SYS_ADMIN) | CAP(CAP_BPF) },
        { "clock_adjtime", CAP(CAP_SYS_TIME) },
        { "clock_adjtime64", CAP(CAP_SYS_TIME) },
        { "clock_settime", CAP(CAP_SYS_TIME) },
        { "clock_settime64", CAP(CAP_SYS_TIME) },
        { "settimeofday", CAP(CAP_SYS_TIME) },
        { "stime", CAP(CAP_SYS_TIME) },
        { "adjtimex", CAP(CAP_SYS_TIME) },
        { "create_module", CAP(CAP_SYS_MODULE) },
        { "delete_module", CAP(CAP_SYS_MODULE) },
        { "finit_module", CAP(CAP_SYS_MODULE) },
        { "init_module", CAP(CAP_SYS_MODULE) },
        { "get_kernel_syms", 0 },
        { "query_module", 0 },
        { "get_mempolicy", CAP(CAP_SYS_NICE) },
        { "mbind", CAP(CAP_SYS_NICE) },
        { "set_mempolicy", CAP(CAP_SYS_NICE) },
        { "move_pages", CAP(CAP_SYS_NICE) },
        { "ioperm", CAP(CAP_SYS_RAWIO) },
        { "iopl", CAP(CAP_SYS_RAWIO) },
        { "kcmp", CAP(CAP_SYS_PTRACE) },
        { "process_vm_readv", CAP(CAP_SYS_PTRACE) },
        { "process_vm_writev", CAP(CAP_SYS_PTRACE) },
        { "kexec_file_load", CAP(CAP_SYS_BOOT) },
        { "kexec_load", CAP(CAP_SYS_BOOT) },
        { "reboot", CAP(CAP_SYS_BOOT) },
        { "keyctl", 0 },
        { "request_key", 0 },
        { "lookup_dcookie", CAP(CAP_SYS_ADMIN) },
        { "mount", CAP(CAP_SYS_ADMIN) },
        { "umount", CAP(CAP_SYS_ADMIN) },
        { "umount2", CAP(CAP_SYS_ADMIN) },
        { "pivot_root", CAP(CAP_SYS_ADMIN) },
        { "fsopen", CAP(CAP_SYS_ADMIN) },
        { "fsconfig", CAP(CAP_SYS_ADMIN) },
        { "fsmount", CAP(CAP_SYS_ADMIN) },
        { "fspick", CAP(CAP_SYS_ADMIN) },
        { "move_mount", CAP(CAP_SYS_ADMIN) },
        { "open_tree", CAP(CAP_SYS_ADMIN) },
        { "mount_setattr", CAP(CAP_SYS_ADMIN) },
        { "quotactl", CAP(CAP_SYS_ADMIN) },
        { "quotactl_fd", CAP(CAP_SYS_ADMIN) },
        { "setns", CAP(CAP_SYS_ADMIN) },
        { "unshare", CAP(CAP_SYS_ADMIN) },
        { "swapon", CAP(CAP_SYS_ADMIN) },
        { "swapoff", CAP(CAP_SYS_ADMIN) },
        { "sethostname", CAP(CAP_SYS_ADMIN) },
        { "setdomainname", CAP(CAP_SYS_ADMIN) },
        { "name_to_handle_at", CAP(CAP_SYS_ADMIN) },
        { "open_by_handle_at", CAP(CAP_DAC_READ_SEARCH) },
        { "perf_event_open", CAP(CAP_SYS_ADMIN) | CAP(CAP_PERFMON) },
        { "fanotify_init", CAP(CAP_SYS_ADMIN) },
        { "nfsservctl", 0 },
        { "sysfs", 0 },
        { "_sysctl", 0 },
        { "syslog", CAP(CAP_SYSLOG) },
        { "uselib", 0 },
        { "userfaultfd", CAP(CAP_SYS_PTRACE) },
        { "ustat", 0 },
        { "vm86", 0 },
        { "vm86old", 0 },
        { "vhangup", CAP(CAP_SYS_TTY_CONFIG) },
};

static void ctx_release(scmp_filter_ctx *c)
{
        if (*c)
                seccomp_release(*c);
}

/* The profile for caps, in a new filter context. */
static int build(uint64_t caps, scmp_filter_ctx *ret)
{
        _cleanup_(ctx_release) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        /* libseccomp sets no_new_privs by default; it is an option of its own here */
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r < 0)
                return r;
#if defined(__x86_64__)
        /* 32-bit and x32 binaries make syscalls through other ABIs: filter those too. */
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X86)) < 0 && r != -EEXIST)
                return r;
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_X32)) < 0 && r != -EEXIST)
                return r;
#elif defined(__aarch64__)
        if ((r = seccomp_arch_add(ctx, SCMP_ARCH_ARM)) < 0 && r != -EEXIST)
                return r;
#endif
        for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
                if (denied[i].unless & caps)
                        continue;
                int nr = seccomp_syscall_resolve_name(denied[i].name);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* not on this architecture */
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
                if (r < 0 && r != -EEXIST && r != -EDOM)
                        return r;
        }
        if (!(caps & CAP(CAP_SYS_ADMIN))) {
                /* clone may not create namespaces: one rule per flag (rules are OR'ed) */
                static const uint64_t flags[] = { CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
                                                  CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, 0x00000080 };
                for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                             SCMP_A0(SCMP_CMP_MASKED_EQ, flags[i], flags[i]));
                        if (r < 0)
                                return r;
                }
                /* clone3 takes its flags in a struct seccomp cannot read: ENOSYS makes libcs
                 * fall back to clone, which is filtered */
                int nr = seccomp_syscall_resolve_name("clone3");
                if (nr != __NR_SCMP_ERROR) {
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
                        if (r < 0 && r != -EDOM)
                                return r;
                }
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

int secprofile_apply_default(uint64_t caps)
{
        _cleanup_(ctx_release) scmp_filter_ctx ctx = NULL;
        int r = build(caps, &ctx);
        if (r < 0)
                return r;
        return seccomp_load(ctx);
}

/* ---- the compiled program, cached ---- */

struct secprofile {
        struct sock_filter *insns;
        unsigned short len;
};

void secprofile_free(struct secprofile *p)
{
        if (!p)
                return;
        free(p->insns);
        free(p);
}

void secprofile_freep(struct secprofile **p)
{
        secprofile_free(*p);
}

/* What decides the program: the profile (this table and the rules above, versioned by
 * SECPROFILE_VERSION), the capabilities that change it, libseccomp and the architecture. The
 * cache file is named by a hash of that description and starts with it (a NUL ends it), so a
 * file made for other inputs is never used, whatever the hash. */
#define SECPROFILE_VERSION 1
static char *describe(uint64_t caps)
{
        uint64_t relevant = CAP(CAP_SYS_ADMIN);
        for (size_t i = 0; i < ARRAY_SIZE(denied); i++)
                relevant |= denied[i].unless;
        const struct scmp_version *v = seccomp_version();
        char *desc = xasprintf("ctfs seccomp %d libseccomp %u.%u.%u arch %u caps %016llx\n", SECPROFILE_VERSION,
                               v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0,
                               (unsigned)seccomp_arch_native(), (unsigned long long)(caps & relevant));
        for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
                char *more = xasprintf("%s%s %016llx\n", desc, denied[i].name, (unsigned long long)denied[i].unless);
                free(desc);
                desc = more;
        }
        return desc;
}

static void cache_name(const char *desc, char out[80])
{
        uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
        for (const char *p = desc; *p; p++)
                h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
        snprintf(out, 80, "seccomp-%016llx.bpf", (unsigned long long)h);
}

static int from_bytes(char *data, size_t len, struct secprofile **ret)
{
        if (len == 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EINVAL;
        struct secprofile *p = xcalloc(1, sizeof(*p));
        p->insns = (struct sock_filter *)data;
        p->len = (unsigned short)(len / sizeof(struct sock_filter));
        *ret = p;
        return 0;
}

/* The program in a cache file made for desc, moved to the start of data. */
static int from_cache(const char *desc, char *data, size_t len, struct secprofile **ret)
{
        size_t n = strlen(desc) + 1;
        if (len < n || memcmp(data, desc, n) != 0)
                return -EINVAL;
        memmove(data, data + n, len - n);
        return from_bytes(data, len - n, ret);
}

int secprofile_compile(int cache_dirfd, uint64_t caps, struct secprofile **ret)
{
        _cleanup_free_ char *desc = describe(caps);
        char name[80];
        cache_name(desc, name);
        char *data = NULL;
        size_t len = 0;
        if (cache_dirfd >= 0 && util_read_file_at(cache_dirfd, name, 1 << 20, &data, &len) == 0) {
                if (from_cache(desc, data, len, ret) == 0)
                        return 0;
                free(data); /* emptied by a crash, or not ours: compile again */
        }
        _cleanup_(ctx_release) scmp_filter_ctx ctx = NULL;
        int r = build(caps, &ctx);
        if (r < 0)
                return r;
        /* libseccomp 2.5 exports to an fd only; the description goes first */
        _cleanup_close_ int fd = memfd_create("ctfs-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = util_write_all(fd, desc, strlen(desc) + 1);
        if (r < 0)
                return r;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        r = util_read_fd(fd, 1 << 20, &data, &len);
        if (r < 0)
                return r;
        /* best effort: the next run reads it instead of compiling (~1 ms) */
        if (cache_dirfd >= 0)
                util_replace_file_at(cache_dirfd, name, data, len, 0600);
        r = from_cache(desc, data, len, ret);
        if (r < 0)
                free(data);
        return r;
}

int secprofile_load(const struct secprofile *p)
{
        /* what seccomp_load() does for this filter: no flags, no no_new_privs */
        struct sock_fprog prog = { .len = p->len, .filter = p->insns };
        return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? -errno : 0;
}
