/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A container's cgroup, on cgroup v2, v1 and hybrid hosts. The layout is read from
 * /proc/self/mountinfo: the unified (cgroup2) hierarchy when mounted, and the v1 hierarchies
 * that carry memory, pids, cpu or cpuacct. The container's cgroup is "ctfs/<id>" below the
 * root of each hierarchy it joins (like Docker's cgroupfs driver puts "docker/<id>"); every
 * limit goes to the hierarchy that has its controller (memory may be on v1 while pids is on
 * v2, and so on). Which hierarchies a container joins: see cgroup_select().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct cgroup cgroup;

struct cgroup_limits {
        int64_t memory;    /* bytes; swap is limited to the same (no extra swap) */
        int64_t pids;      /* max tasks */
        int64_t nano_cpus; /* 1e9 = one CPU (CFS quota over a 100 ms period) */
};

/* One hierarchy the container is in (for mounting them inside the container). */
struct cgroup_hierarchy {
        bool v2;
        char *mountpoint; /* on the host, e.g. /sys/fs/cgroup/memory */
        char *name;       /* basename of the mount point: "memory", "unified", "" for a v2 root */
        char *options;    /* v1: the controllers ("memory", "cpu,cpuacct", "name=systemd") */
        char *path;       /* the container's cgroup directory (absolute host path) */
};

/* Create the cgroup in the hierarchies cgroup_select() picks and set the limits. An unavailable
 * controller is an error only when its limit is asked for. */
int cgroup_create(const char *id, const struct cgroup_limits *l, cgroup **ret, char **ret_error);
/* The cgroup of an existing container (nothing is created): the hierarchies where it exists. */
int cgroup_open(const char *id, cgroup **ret);
void cgroup_free(cgroup *cg);

/* Move pid into the cgroup in every hierarchy (but the unified one with skip_v2: clone3's
 * CLONE_INTO_CGROUP put it there). */
int cgroup_enter(cgroup *cg, pid_t pid, bool skip_v2);
/* An fd of the container's cgroup on the unified hierarchy (for CLONE_INTO_CGROUP), or -ENOENT
 * when it has none. */
int cgroup_v2_open(cgroup *cg);
/* Whether the kernel OOM-killed something in it. */
bool cgroup_oom_killed(cgroup *cg);
/* Kill what is left and remove the directories (retrying while tasks exit). Idempotent. */
int cgroup_destroy(cgroup *cg);

size_t cgroup_hierarchies(cgroup *cg, const struct cgroup_hierarchy **ret);

/* For tests: the layout described by a /proc/self/mountinfo text (v2 controllers are read from
 * <mount point>/cgroup.controllers), and dropping what a container with limits l does not join. */
int cgroup_parse_layout(const char *mountinfo, const char *id, cgroup **ret);
void cgroup_select(cgroup *cg, const struct cgroup_limits *l);
