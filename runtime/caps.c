/* SPDX-License-Identifier: Apache-2.0 */
#include "caps.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static const char *const cap_names[] = {
        "CAP_CHOWN",           "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
        "CAP_FSETID",          "CAP_KILL",          "CAP_SETGID",          "CAP_SETUID",
        "CAP_SETPCAP",         "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",       "CAP_NET_RAW",       "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",      "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",       "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
        "CAP_LEASE",           "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",     "CAP_SYSLOG",          "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",    "CAP_PERFMON",         "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
};

int caps_from_name(const char *name)
{
        if (!name)
                return -EINVAL;
        const char *n = !strncasecmp(name, "CAP_", 4) ? name + 4 : name;
        for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
                if (!strcasecmp(cap_names[i] + 4, n))
                        return (int)i;
        return -EINVAL;
}

const char *caps_name(int cap)
{
        if (cap < 0 || (size_t)cap >= ARRAY_SIZE(cap_names))
                return NULL;
        return cap_names[cap];
}

int caps_last_cap(void)
{
        static int last = -1;
        if (last >= 0)
                return last;
        last = (int)ARRAY_SIZE(cap_names) - 1;
        _cleanup_free_ char *data = NULL;
        if (util_read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", 64, &data, NULL) >= 0) {
                int v = atoi(data);
                if (v > 0 && v < 64)
                        last = v;
        }
        return last;
}

uint64_t caps_all(void)
{
        int last = caps_last_cap();
        return last >= 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1;
}

static bool is_all(const char *s)
{
        return !strcasecmp(s, "ALL") || !strcasecmp(s, "CAP_ALL");
}

int caps_compute(bool privileged, char *const *add, char *const *drop, uint64_t *ret_caps, const char **ret_bad)
{
        uint64_t caps = privileged ? caps_all() : CAPS_DEFAULT;
        /* Validate everything first, so a typo is reported even when privileged. */
        for (int pass = 0; pass < 2; pass++)
                for (char *const *p = pass ? add : drop; p && *p; p++)
                        if (!is_all(*p) && caps_from_name(*p) < 0) {
                                if (ret_bad)
                                        *ret_bad = *p;
                                return -EINVAL;
                        }
        if (!privileged) {
                for (char *const *p = drop; p && *p; p++)
                        caps = is_all(*p) ? 0 : caps & ~(UINT64_C(1) << caps_from_name(*p));
                for (char *const *p = add; p && *p; p++)
                        caps = is_all(*p) ? caps_all() : caps | (UINT64_C(1) << caps_from_name(*p));
        }
        *ret_caps = caps & caps_all();
        return 0;
}

int caps_drop_bounding(uint64_t caps)
{
        int last = caps_last_cap();
        for (int c = 0; c <= last; c++) {
                if (caps & (UINT64_C(1) << c))
                        continue;
                if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        }
        return 0;
}

int caps_set(uint64_t caps)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
        struct __user_cap_data_struct d[2] = { 0 };
        /* never more than we have (--privileged under a runtime that holds back some) */
        if (syscall(SYS_capget, &h, d) == 0)
                caps &= (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
        memset(d, 0, sizeof(d));
        d[0].effective = d[0].permitted = (uint32_t)caps;
        d[1].effective = d[1].permitted = (uint32_t)(caps >> 32);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}
