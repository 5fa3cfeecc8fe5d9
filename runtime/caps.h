/* SPDX-License-Identifier: Apache-2.0 */
/* Capabilities: names, Docker's default set, --cap-add/--cap-drop/--privileged, applying a set. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE
 * SYS_CHROOT KILL AUDIT_WRITE: what /proc/self/status shows as CapEff 00000000a80425fb. */
#define CAPS_DEFAULT UINT64_C(0x00000000a80425fb)

/* "NET_ADMIN", "CAP_NET_ADMIN", "net_admin" -> 12; -EINVAL when unknown. "ALL" is not a cap. */
int caps_from_name(const char *name);
/* "CAP_NET_ADMIN"; NULL when unknown. */
const char *caps_name(int cap);
/* The highest capability the running kernel knows (/proc/sys/kernel/cap_last_cap). */
int caps_last_cap(void);
/* All capabilities the kernel knows. */
uint64_t caps_all(void);

/*
 * The set for a container: privileged -> all; otherwise the default, minus drop, plus add, in
 * Docker's order (drop ALL first, then add; add ALL wins). Names as caps_from_name reads them.
 * -EINVAL with *ret_bad set to the offending name.
 */
int caps_compute(bool privileged, char *const *add, char *const *drop, uint64_t *ret_caps, const char **ret_bad);

/* Drop everything outside caps from the bounding set (needs CAP_SETPCAP). */
int caps_drop_bounding(uint64_t caps);
/* Effective = permitted = caps, inheritable and ambient empty (Docker since CVE-2022-24769). */
int caps_set(uint64_t caps);
