/* SPDX-License-Identifier: Apache-2.0 */
#include "container.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "upper.h"
#include "util.h"

static void strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

void container_config_free(struct container_config *c)
{
        free(c->name);
        free(c->image_ref);
        free(c->upper);
        strv_free(c->args);
        strv_free(c->env);
        free(c->cwd);
        free(c->user);
        free(c->hostname);
        for (size_t i = 0; i < c->n_volumes; i++) {
                free(c->volumes[i].host);
                free(c->volumes[i].ctr);
        }
        free(c->volumes);
        strv_free(c->cap_add);
        strv_free(c->cap_drop);
        free(c->stop_signal);
        *c = (struct container_config){ 0 };
}

void container_state_free(struct container_state *st)
{
        free(st->error);
        st->error = NULL;
}

const char *container_status_name(enum container_status s)
{
        switch (s) {
        case CONTAINER_CREATED:
                return "created";
        case CONTAINER_RUNNING:
                return "running";
        case CONTAINER_EXITED:
                return "exited";
        }
        return "unknown";
}

void container_new_id(char out[CONTAINER_ID_LEN + 1])
{
        uint8_t b[32];
        size_t got = 0;
        while (got < sizeof(b)) {
                ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        abort();
                }
                got += (size_t)n;
        }
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
        /* Docker avoids all-digit short ids (they parse as numbers); so do we. */
        bool digits = true;
        for (int i = 0; i < 12; i++)
                if (!isdigit((unsigned char)out[i]))
                        digits = false;
        if (digits)
                out[0] = 'a';
}

char *container_random_name(void)
{
        static const char *const left[] = {
                "admiring", "brave",   "clever",  "dazzling", "eager",    "focused",  "gallant", "happy",
                "inspiring", "jolly",  "keen",    "laughing", "modest",   "nifty",    "optimistic", "pensive",
                "quirky",   "relaxed", "serene",  "tender",   "upbeat",   "vibrant",  "wizardly", "zealous",
        };
        static const char *const right[] = {
                "babbage", "curie",   "darwin",   "einstein", "fermi",   "galois",  "hopper",  "hypatia",
                "johnson", "knuth",   "lovelace", "mccarthy", "noether", "pascal",  "ritchie", "shannon",
                "thompson", "torvalds", "turing", "wozniak",  "yalow",   "zuse",    "lamport", "dijkstra",
        };
        uint32_t r[2];
        if (getrandom(r, sizeof(r), 0) != sizeof(r))
                r[0] = (uint32_t)time(NULL), r[1] = (uint32_t)getpid();
        return xasprintf("%s_%s", left[r[0] % ARRAY_SIZE(left)], right[r[1] % ARRAY_SIZE(right)]);
}

bool container_name_is_valid(const char *name)
{
        size_t n = strlen(name);
        if (n == 0 || n > 128 || !isalnum((unsigned char)name[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)name[i]) && !strchr("_.-", name[i]))
                        return false;
        /* a 64-hex name would be mistaken for an id */
        if (n == CONTAINER_ID_LEN && strspn(name, "0123456789abcdef") == n)
                return false;
        return true;
}

char *container_dir(store *s, const char *id)
{
        return xasprintf("%s/containers/%s", store_root(s), id);
}

/* ---- JSON ---- */

static json_object *strv_to_json(char **v)
{
        json_object *a = json_object_new_array();
        for (char **p = v; p && *p; p++)
                json_object_array_add(a, json_object_new_string(*p));
        return a;
}

static char **strv_from_json(json_object *a)
{
        if (!a || !json_object_is_type(a, json_type_array))
                return NULL;
        size_t n = json_object_array_length(a);
        char **v = xcalloc(n + 1, sizeof(char *));
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(a, i));
                if (s)
                        v[k++] = xstrdup(s);
        }
        return v;
}

static void add_str(json_object *o, const char *k, const char *v)
{
        json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

static const char *get_str(json_object *o, const char *k)
{
        json_object *v;
        if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static char *dup_str(json_object *o, const char *k)
{
        const char *s = get_str(o, k);
        return s ? xstrdup(s) : NULL;
}

static int64_t get_int(json_object *o, const char *k)
{
        json_object *v;
        return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static bool get_bool(json_object *o, const char *k)
{
        json_object *v;
        return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

json_object *container_config_to_json(const struct container_config *c)
{
        json_object *o = json_object_new_object();
        add_str(o, "id", c->id);
        add_str(o, "name", c->name);
        add_str(o, "image", c->image);
        add_str(o, "image_ref", c->image_ref);
        add_str(o, "upper", c->upper);
        json_object_object_add(o, "created", json_object_new_int64(c->created));
        json_object *p = json_object_new_object();
        json_object_object_add(p, "args", strv_to_json(c->args));
        json_object_object_add(p, "entrypoint_args", json_object_new_int64((int64_t)c->n_entrypoint));
        json_object_object_add(p, "env", strv_to_json(c->env));
        add_str(p, "cwd", c->cwd);
        add_str(p, "user", c->user ? c->user : "");
        json_object_object_add(p, "tty", json_object_new_boolean(c->tty));
        json_object_object_add(p, "interactive", json_object_new_boolean(c->interactive));
        json_object_object_add(o, "process", p);
        json_object *op = json_object_new_object();
        add_str(op, "hostname", c->hostname);
        add_str(op, "network", c->network == CONTAINER_NET_NONE ? "none" : "host");
        json_object_object_add(op, "memory", json_object_new_int64(c->memory));
        json_object_object_add(op, "pids_limit", json_object_new_int64(c->pids_limit));
        json_object_object_add(op, "nano_cpus", json_object_new_int64(c->nano_cpus));
        json_object_object_add(op, "read_only", json_object_new_boolean(c->read_only));
        json_object *vols = json_object_new_array();
        for (size_t i = 0; i < c->n_volumes; i++) {
                json_object *v = json_object_new_object();
                add_str(v, "host", c->volumes[i].host);
                add_str(v, "container", c->volumes[i].ctr);
                json_object_object_add(v, "ro", json_object_new_boolean(c->volumes[i].ro));
                json_object_array_add(vols, v);
        }
        json_object_object_add(op, "volumes", vols);
        json_object_object_add(op, "cap_add", strv_to_json(c->cap_add));
        json_object_object_add(op, "cap_drop", strv_to_json(c->cap_drop));
        json_object_object_add(op, "no_new_privileges", json_object_new_boolean(c->no_new_privileges));
        json_object_object_add(op, "privileged", json_object_new_boolean(c->privileged));
        json_object_object_add(op, "init", json_object_new_boolean(c->init));
        json_object_object_add(op, "auto_remove", json_object_new_boolean(c->auto_remove));
        add_str(op, "stop_signal", c->stop_signal);
        json_object_object_add(o, "options", op);
        return o;
}

static int config_from_json(json_object *o, struct container_config *c)
{
        const char *id = get_str(o, "id");
        const char *image = get_str(o, "image");
        if (!id || strlen(id) != CONTAINER_ID_LEN || !image)
                return -EINVAL;
        snprintf(c->id, sizeof(c->id), "%s", id);
        snprintf(c->image, sizeof(c->image), "%s", image);
        c->name = dup_str(o, "name");
        c->image_ref = dup_str(o, "image_ref");
        c->upper = dup_str(o, "upper");
        c->created = get_int(o, "created");
        json_object *p, *op, *v;
        if (!json_object_object_get_ex(o, "process", &p) || !json_object_object_get_ex(o, "options", &op))
                return -EINVAL;
        c->args = json_object_object_get_ex(p, "args", &v) ? strv_from_json(v) : NULL;
        c->env = json_object_object_get_ex(p, "env", &v) ? strv_from_json(v) : NULL;
        if (!c->args || !c->args[0] || !c->env)
                return -EINVAL;
        int64_t ne = get_int(p, "entrypoint_args"); /* (0 in a record from before) */
        size_t nargs = 0;
        while (c->args[nargs])
                nargs++;
        c->n_entrypoint = ne > 0 && (size_t)ne <= nargs ? (size_t)ne : 0;
        c->cwd = dup_str(p, "cwd");
        c->user = dup_str(p, "user");
        c->tty = get_bool(p, "tty");
        c->interactive = get_bool(p, "interactive");
        c->hostname = dup_str(op, "hostname");
        const char *net = get_str(op, "network");
        c->network = net && !strcmp(net, "none") ? CONTAINER_NET_NONE : CONTAINER_NET_HOST;
        c->memory = get_int(op, "memory");
        c->pids_limit = get_int(op, "pids_limit");
        c->nano_cpus = get_int(op, "nano_cpus");
        c->read_only = get_bool(op, "read_only");
        if (json_object_object_get_ex(op, "volumes", &v) && json_object_is_type(v, json_type_array)) {
                size_t n = json_object_array_length(v);
                c->volumes = xcalloc(n, sizeof(*c->volumes));
                for (size_t i = 0; i < n; i++) {
                        json_object *e = json_object_array_get_idx(v, i);
                        const char *h = get_str(e, "host"), *t = get_str(e, "container");
                        if (!h || !t)
                                return -EINVAL;
                        c->volumes[c->n_volumes++] =
                                (struct container_volume){ xstrdup(h), xstrdup(t), get_bool(e, "ro") };
                }
        }
        c->cap_add = json_object_object_get_ex(op, "cap_add", &v) ? strv_from_json(v) : NULL;
        c->cap_drop = json_object_object_get_ex(op, "cap_drop", &v) ? strv_from_json(v) : NULL;
        c->no_new_privileges = get_bool(op, "no_new_privileges");
        c->privileged = get_bool(op, "privileged");
        c->init = get_bool(op, "init");
        c->auto_remove = get_bool(op, "auto_remove");
        c->stop_signal = dup_str(op, "stop_signal");
        if (!c->cwd)
                c->cwd = xstrdup("/");
        return 0;
}

json_object *container_state_to_json(const struct container_state *st)
{
        json_object *o = json_object_new_object();
        add_str(o, "status", container_status_name(st->status));
        json_object_object_add(o, "pid", json_object_new_int(st->pid));
        json_object_object_add(o, "pid_start", json_object_new_int64((int64_t)st->pid_start));
        json_object_object_add(o, "monitor", json_object_new_int(st->monitor));
        json_object_object_add(o, "monitor_start", json_object_new_int64((int64_t)st->monitor_start));
        json_object_object_add(o, "exit_code", json_object_new_int(st->exit_code));
        json_object_object_add(o, "started", json_object_new_int64(st->started));
        json_object_object_add(o, "finished", json_object_new_int64(st->finished));
        json_object_object_add(o, "oom_killed", json_object_new_boolean(st->oom_killed));
        if (st->error)
                add_str(o, "error", st->error);
        return o;
}

/* ---- /proc ---- */

int container_pid_start_time(pid_t pid, uint64_t *ret)
{
        if (pid <= 0)
                return -ESRCH;
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        ssize_t n = util_read_all(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return -ESRCH;
        buf[n] = '\0';
        /* the command name (field 2) may contain spaces and parentheses: skip to the last ')' */
        char *p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        p++;
        /* fields 3.. : state is field 3; starttime is field 22 */
        int field = 2;
        char *save = NULL;
        for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                field++;
                if (field == 3 && (*tok == 'Z' || *tok == 'X'))
                        return -ESRCH; /* a zombie is not running any more */
                if (field == 22) {
                        *ret = strtoull(tok, NULL, 10);
                        return 0;
                }
        }
        return -EIO;
}

bool container_pid_alive(pid_t pid, uint64_t start)
{
        uint64_t now;
        return container_pid_start_time(pid, &now) == 0 && now == start;
}

/* ---- records ---- */

static int write_json_at(int dirfd, const char *path, json_object *o, bool durable)
{
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        return (durable ? util_write_file_atomic_at : util_replace_file_at)(dirfd, path, text, strlen(text), 0644);
}

int container_create(store *s, struct container_config *cfg, char **ret_error)
{
        int dfd = store_dirfd(s);
        if (mkdirat(dfd, "containers", 0700) < 0 && errno != EEXIST)
                return -errno;
        if (cfg->name && !container_name_is_valid(cfg->name)) {
                if (ret_error)
                        *ret_error = xasprintf("invalid container name \"%s\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                                               cfg->name);
                return -EINVAL;
        }
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        container_new_id(cfg->id);
        /* the name first: one symlinkat in names/ (fs/store.h) decides who has it */
        if (cfg->name) {
                int r = store_name_claim(s, cfg->name, cfg->id);
                if (r < 0) {
                        if (ret_error)
                                *ret_error = r == -EEXIST
                                                     ? xasprintf("the container name \"%s\" is already in use", cfg->name)
                                                     : xasprintf("container name \"%s\": %s", cfg->name, strerror(-r));
                        return r;
                }
        } else {
                int r = -EEXIST;
                for (int tries = 0; tries < 100 && r == -EEXIST; tries++) {
                        free(cfg->name);
                        cfg->name = container_random_name();
                        if (tries > 10) {
                                char *n = xasprintf("%s%d", cfg->name, tries);
                                free(cfg->name);
                                cfg->name = n;
                        }
                        r = store_name_claim(s, cfg->name, cfg->id);
                }
                if (r < 0)
                        return r;
        }
        free(cfg->upper);
        cfg->upper = xasprintf("%s/containers/%s/upper", store_root(s), cfg->id);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cfg->created = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        if (!cfg->hostname)
                cfg->hostname = xstrndup(cfg->id, 12);

        /* Build the whole directory under tmp/, then one rename publishes it. */
        _cleanup_free_ char *tmp = NULL, *dst = xasprintf("containers/%s", cfg->id);
        int r = store_mkdtemp(s, &tmp);
        if (r < 0) {
                store_name_release(s, cfg->name, cfg->id);
                return r;
        }
        _cleanup_close_ int tfd = openat(dfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (tfd < 0) {
                r = -errno;
                goto fail;
        }
        if (fchmod(tfd, 0700) < 0) {
                r = -errno;
                goto fail;
        }
        {
                /* the upper root takes the image root's mode, owner and times (fs/upper.h) */
                _cleanup_(tree_closep) tree *t = NULL;
                r = store_image_open_tree(s, cfg->image, &t);
                if (r < 0)
                        goto fail;
                _cleanup_free_ char *up = xasprintf("%s/%s/upper", store_root(s), tmp);
                r = upper_create_dirs(up, t);
                if (r < 0)
                        goto fail;
        }
        json_object *o = container_config_to_json(cfg);
        /* The record is the one file that must survive a crash, unless the container goes with
         * its first exit anyway (--rm: after a power loss its record may be empty, which ps and
         * check skip and `ctfs rm ID` removes). No state.json reads as created. */
        r = write_json_at(tfd, "config.json", o, !cfg->auto_remove);
        json_object_put(o);
        if (r < 0)
                goto fail;
        if (renameat(dfd, tmp, dfd, dst) < 0) {
                r = -errno;
                goto fail;
        }
        return 0;
fail:
        util_rm_rf_at(dfd, tmp);
        store_name_release(s, cfg->name, cfg->id);
        return r;
}

int container_list(store *s, char ***ret_ids, size_t *ret_n)
{
        int fd = openat(store_dirfd(s), "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT) {
                        *ret_ids = NULL;
                        *ret_n = 0;
                        return 0;
                }
                return -errno;
        }
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        struct ent {
                char *id;
                int64_t created;
        } *es = NULL;
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (strlen(de->d_name) != CONTAINER_ID_LEN ||
                    strspn(de->d_name, "0123456789abcdef") != CONTAINER_ID_LEN)
                        continue;
                struct stat st;
                _cleanup_free_ char *rel = xasprintf("%s/config.json", de->d_name);
                if (fstatat(fd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                es = xrealloc(es, (n + 1) * sizeof(*es));
                es[n].id = xstrdup(de->d_name);
                es[n].created = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
                n++;
        }
        closedir(d);
        /* newest first: config.json is written once, at create time */
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && es[j].created > es[j - 1].created; j--) {
                        struct ent t = es[j];
                        es[j] = es[j - 1];
                        es[j - 1] = t;
                }
        char **ids = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                ids[i] = es[i].id;
        free(es);
        *ret_ids = ids;
        *ret_n = n;
        return 0;
}

void container_ids_free(char **ids, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(ids[i]);
        free(ids);
}

int container_load(store *s, const char *id, struct container_config *ret)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s/config.json", id);
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(store_dirfd(s), rel, 16 << 20, &data, NULL);
        if (r < 0)
                return r;
        json_object *o = json_tokener_parse(data);
        if (!o)
                return -EINVAL;
        struct container_config c = { 0 };
        r = config_from_json(o, &c);
        json_object_put(o);
        if (r < 0) {
                container_config_free(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int container_resolve(store *s, const char *what, char ret_id[CONTAINER_ID_LEN + 1])
{
        char **ids;
        size_t n;
        int r = container_list(s, &ids, &n);
        if (r < 0)
                return r;
        size_t len = strlen(what);
        int found = -1;
        bool ambiguous = false;
        /* exact id, then name, then id prefix (Docker's order) */
        for (size_t i = 0; i < n && found < 0; i++)
                if (!strcmp(ids[i], what))
                        found = (int)i;
        if (found < 0) {
                char id[CONTAINER_ID_LEN + 1];
                int k = store_name_lookup(s, what, id);
                for (size_t i = 0; k == 0 && i < n && found < 0; i++)
                        if (!strcmp(ids[i], id))
                                found = (int)i;
                for (size_t i = 0; k == -ENOSYS && i < n && found < 0; i++) {
                        /* a store from before names/: read the records */
                        struct container_config c = { 0 };
                        if (container_load(s, ids[i], &c) == 0 && c.name && !strcmp(c.name, what))
                                found = (int)i;
                        container_config_free(&c);
                }
        }
        if (found < 0 && len > 0 && len < CONTAINER_ID_LEN)
                for (size_t i = 0; i < n; i++)
                        if (!strncmp(ids[i], what, len)) {
                                if (found >= 0)
                                        ambiguous = true;
                                found = (int)i;
                        }
        if (found >= 0 && !ambiguous)
                memcpy(ret_id, ids[found], CONTAINER_ID_LEN + 1);
        container_ids_free(ids, n);
        return ambiguous ? -ENOTUNIQ : found < 0 ? -ENOENT : 0;
}

static int state_read(store *s, const char *id, struct container_state *ret);

int container_state_load(store *s, const char *id, struct container_state *ret)
{
        /* Whoever ran it records the end; if that process is gone too (killed), the container
         * ended unrecorded. While it lives it is about to record the exit: still running. The
         * record is read again once both are seen gone: the monitor may have written the end
         * and exited between the first read and the look at it (wait then said 255). */
        for (int look = 0;; look++) {
                struct container_state st;
                int r = state_read(s, id, &st);
                if (r < 0)
                        return r;
                if (st.status == CONTAINER_RUNNING && !container_pid_alive(st.pid, st.pid_start) &&
                    !container_pid_alive(st.monitor, st.monitor_start)) {
                        if (look == 0) {
                                container_state_free(&st);
                                continue;
                        }
                        st.status = CONTAINER_EXITED;
                        st.exit_code = 255;
                        if (!st.finished)
                                st.finished = st.started;
                }
                *ret = st;
                return 0;
        }
}

static int state_read(store *s, const char *id, struct container_state *ret)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s/state.json", id);
        _cleanup_free_ char *data = NULL;
        struct container_state st = { .status = CONTAINER_CREATED };
        int r = util_read_file_at(store_dirfd(s), rel, 1 << 20, &data, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        if (data && !*data) {
                /* replaced without fsync and emptied by a crash: it ended unrecorded */
                st.status = CONTAINER_EXITED;
                st.exit_code = 255;
        } else if (data) {
                json_object *o = json_tokener_parse(data);
                if (!o)
                        return -EINVAL;
                const char *status = get_str(o, "status");
                st.status = status && !strcmp(status, "running") ? CONTAINER_RUNNING
                            : status && !strcmp(status, "exited") ? CONTAINER_EXITED
                                                                   : CONTAINER_CREATED;
                st.pid = (pid_t)get_int(o, "pid");
                st.pid_start = (uint64_t)get_int(o, "pid_start");
                st.monitor = (pid_t)get_int(o, "monitor");
                st.monitor_start = (uint64_t)get_int(o, "monitor_start");
                st.exit_code = (int)get_int(o, "exit_code");
                st.started = get_int(o, "started");
                st.finished = get_int(o, "finished");
                st.oom_killed = get_bool(o, "oom_killed");
                st.error = dup_str(o, "error");
                json_object_put(o);
        }
        *ret = st;
        return 0;
}

int container_state_save(store *s, const char *id, const struct container_state *st)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s", id);
        _cleanup_close_ int fd = openat(store_dirfd(s), rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        json_object *o = container_state_to_json(st);
        /* Atomic but not fsync'ed: states change at every start and exit, and a state lost in a
         * crash reads as exited (container_state_load), which is what it is after a reboot. */
        int r = write_json_at(fd, "state.json", o, false);
        json_object_put(o);
        return r;
}

bool container_exists(store *s, const char *id)
{
        _cleanup_free_ char *rel = xasprintf("containers/%s", id);
        return faccessat(store_dirfd(s), rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int container_exit_keep(store *s, const char *id, int code)
{
        int dfd = store_dirfd(s);
        if (mkdirat(dfd, "exits", 0700) < 0 && errno != EEXIST)
                return -errno;
        _cleanup_close_ int efd = openat(dfd, "exits", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (efd < 0)
                return -errno;
        /* the old ones first */
        int scan = dup(efd);
        DIR *d = scan >= 0 ? fdopendir(scan) : NULL;
        if (!d && scan >= 0)
                close(scan);
        time_t now = time(NULL);
        for (struct dirent *de; d && (de = readdir(d));) {
                struct stat st;
                if (de->d_name[0] != '.' && fstatat(efd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                    st.st_mtime + CONTAINER_EXIT_KEEP_S < now)
                        unlinkat(efd, de->d_name, 0);
        }
        if (d)
                closedir(d);
        _cleanup_free_ char *tmp = xasprintf(".%s", id);
        _cleanup_free_ char *text = xasprintf("%d\n", code);
        _cleanup_close_ int fd = openat(efd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if (util_write_all(fd, text, strlen(text)) < 0 || renameat(efd, tmp, efd, id) < 0) {
                int r = -errno;
                unlinkat(efd, tmp, 0);
                return r;
        }
        return 0;
}

int container_exit_kept(store *s, const char *id, int *ret_code)
{
        _cleanup_free_ char *rel = xasprintf("exits/%s", id);
        _cleanup_free_ char *data = NULL;
        int r = util_read_file_at(store_dirfd(s), rel, 64, &data, NULL);
        if (r < 0)
                return r;
        char *end;
        long v = strtol(data, &end, 10);
        if (end == data || v < 0 || v > 255)
                return -EINVAL;
        *ret_code = (int)v;
        return 0;
}

int container_remove(store *s, const char *id)
{
        int dfd = store_dirfd(s);
        _cleanup_close_ int lock = store_lock(s);
        if (lock < 0)
                return lock;
        _cleanup_free_ char *rel = xasprintf("containers/%s", id);
        _cleanup_free_ char *tmp = NULL;
        struct container_config cfg = { 0 };
        bool named = container_load(s, id, &cfg) == 0 && cfg.name;
        int r = store_mkdtemp(s, &tmp);
        if (r < 0) {
                container_config_free(&cfg);
                return r;
        }
        /* One rename makes it disappear (the daemon sees it gone at once), then delete; its
         * name goes last (a crash in between leaves a link to nothing, which names nothing). */
        _cleanup_free_ char *dst = xasprintf("%s/c", tmp);
        if (renameat(dfd, rel, dfd, dst) < 0) {
                r = -errno;
                util_rm_rf_at(dfd, tmp);
                container_config_free(&cfg);
                return r;
        }
        if (named)
                store_name_release(s, cfg.name, id);
        container_config_free(&cfg);
        r = util_rm_rf_at(dfd, tmp);
        return r < 0 ? r : 0;
}
