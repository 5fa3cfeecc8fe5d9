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

/*
 * The same filter compiled once: libseccomp takes ~1 ms to build it, and it only changes with
 * the capabilities that matter to it (and the profile, libseccomp, the architecture). The BPF
 * program is kept in cache_dirfd (the store's cache/) as seccomp-<key>.bpf and read from there
 * the next time; cache_dirfd < 0 compiles without the cache. Prepared by the parent, loaded
 * by the container's process with secprofile_load().
 */
struct secprofile;
int secprofile_compile(int cache_dirfd, uint64_t caps, struct secprofile **ret);
int secprofile_load(const struct secprofile *p);
void secprofile_free(struct secprofile *p);
void secprofile_freep(struct secprofile **p);
