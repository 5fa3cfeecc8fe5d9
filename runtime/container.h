/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Container records and state.
 *
 *   containers/<id>/config.json   the record: id, name, image, upper (fields fs/store.c reads),
 *                                 created, the resolved process and the options. Written once,
 *                                 published with the whole directory by one rename.
 *   containers/<id>/state.json    status, pid (+ its start time), exit code, started/finished;
 *                                 replaced atomically (not fsync'ed) by whoever runs the
 *                                 container; missing until the first start (= created), empty
 *                                 after a crash that lost it (= exited 255).
 *   containers/<id>/upper/, work/ the container's changes (overlayfs format, fs/upper.h)
 *   containers/<id>/container.log output of detached containers
 *   containers/<id>/hosts, hostname, resolv.conf   bind-mounted into the container
 *
 * A recorded pid whose /proc/PID/stat start time differs (or that is gone) is not the
 * container's any more: such a container reads as exited.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

#define CONTAINER_ID_LEN 64

enum container_network { CONTAINER_NET_HOST = 0, CONTAINER_NET_NONE = 1 };

struct container_volume {
        char *host; /* absolute host path */
        char *ctr;  /* absolute path in the container */
        bool ro;
};

struct container_config {
        char id[CONTAINER_ID_LEN + 1];
        char *name;
        char image[65];   /* image id (hex) */
        char *image_ref;  /* as the user named it */
        char *upper;      /* absolute path of containers/<id>/upper */
        int64_t created;  /* ns since the epoch */

        /* the process, resolved from the image config and the options at create time */
        char **args;      /* NULL-terminated, at least one */
        size_t n_entrypoint; /* how many of them are the entrypoint (the rest: the command) */
        char **env;       /* NULL-terminated, KEY=VALUE */
        char *cwd;        /* absolute */
        char *user;       /* as given or from the image ("" = root) */
        bool tty;
        bool interactive; /* keep stdin open */

        /* options */
        char *hostname;
        enum container_network network;
        int64_t memory;      /* bytes, 0 = no limit */
        int64_t pids_limit;  /* 0 = no limit */
        int64_t nano_cpus;   /* 1e9 = one CPU, 0 = no limit */
        bool read_only;
        struct container_volume *volumes;
        size_t n_volumes;
        char **cap_add, **cap_drop; /* NULL-terminated or NULL */
        bool no_new_privileges;
        bool privileged;
        bool init;
        bool auto_remove;
        char *stop_signal; /* from the image, or NULL (SIGTERM) */
};
void container_config_free(struct container_config *c);

enum container_status { CONTAINER_CREATED = 0, CONTAINER_RUNNING = 1, CONTAINER_EXITED = 2 };

struct container_state {
        enum container_status status;
        pid_t pid;            /* the container's pid 1 (host pid) */
        uint64_t pid_start;   /* its start time (clock ticks after boot, /proc/PID/stat field 22) */
        pid_t monitor;        /* the process that waits for it */
        uint64_t monitor_start;
        int exit_code;
        int64_t started, finished; /* ns since the epoch, 0 = never */
        bool oom_killed;
        char *error;          /* why the last start failed, or NULL */
};
void container_state_free(struct container_state *st);

const char *container_status_name(enum container_status s);

/* 64 random hex digits. */
void container_new_id(char out[CONTAINER_ID_LEN + 1]);
/* A docker-style "adjective_surname" name. */
char *container_random_name(void);
/* Names: [a-zA-Z0-9][a-zA-Z0-9_.-]* (Docker's rule), at most 128 characters. */
bool container_name_is_valid(const char *name);

/*
 * Publish a new record: cfg->id, cfg->upper and cfg->created are filled in here, the name is
 * checked to be unique (a random one is given when cfg->name is NULL), under the store lock.
 * -EEXIST with *ret_error for a name in use.
 */
int container_create(store *s, struct container_config *cfg, char **ret_error);

/* Full id, unique id prefix, or name. -ENOENT, -ENOTUNIQ. */
int container_resolve(store *s, const char *what, char ret_id[CONTAINER_ID_LEN + 1]);
int container_load(store *s, const char *id, struct container_config *ret);
/* The state, with the liveness check applied (a gone pid reads as exited). */
int container_state_load(store *s, const char *id, struct container_state *ret);
int container_state_save(store *s, const char *id, const struct container_state *st);

/* All container ids, newest first. */
int container_list(store *s, char ***ret_ids, size_t *ret_n);
void container_ids_free(char **ids, size_t n);

/* Remove the record, upper dir and everything else of a container that is not running. */
int container_remove(store *s, const char *id);
/* Whether containers/<id> is there. */
bool container_exists(store *s, const char *id);

/* The exit code of a container removed as it ended (--rm), kept for `wait` in exits/<id> for
 * CONTAINER_EXIT_KEEP_S seconds (older ones go when another is kept). */
#define CONTAINER_EXIT_KEEP_S 600
int container_exit_keep(store *s, const char *id, int code);
/* -ENOENT: none kept. */
int container_exit_kept(store *s, const char *id, int *ret_code);

/* The JSON of config.json / state.json (for inspect), new references. */
struct json_object;
struct json_object *container_config_to_json(const struct container_config *c);
struct json_object *container_state_to_json(const struct container_state *st);

/* /proc/PID/stat start time; -ESRCH when the pid is gone. */
int container_pid_start_time(pid_t pid, uint64_t *ret);
/* True when pid is alive and still the process that started at start. */
bool container_pid_alive(pid_t pid, uint64_t start);

/* containers/<id> as an absolute path. */
char *container_dir(store *s, const char *id);
