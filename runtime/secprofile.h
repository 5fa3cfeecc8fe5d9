/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The default seccomp profile: the essentials of Docker's default profile as a deny list.
 * The syscalls Docker's profile leaves out (kexec, reboot, keyctl, bpf, ptrace-like
 * process_vm_*, module loading, clock setting, swapon, ...) fail with EPERM, and the ones it
 * allows only with a capability (mount, umount, unshare and clone with namespace flags,
 * setns, perf_event_open, ...) fail with EPERM unless the container has that capability.
 * clone3 fails with ENOSYS without CAP_SYS_ADMIN (its flags cannot be inspected), so libcs fall
 * back to clone. Native, x86 and x32 ABIs on x86-64 are covered alike.
 */
#pragma once

#include <stdint.h>

/* Load the filter into the calling thread (and its future children). caps: the container's
 * capability set. Needs CAP_SYS_ADMIN or no_new_privs. */
int secprofile_apply_default(uint64_t caps);
