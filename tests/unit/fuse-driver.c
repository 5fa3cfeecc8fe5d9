/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test driver for the FUSE daemon, independent of the CLI:
 *   fuse-driver mkstore ROOT            a store with the fixture image and container
 *   fuse-driver mount ROOT MNT [-f] [--debug]
 *   fuse-driver umount ROOT [MNT]
 *   fuse-driver find ROOT               prints the live mount point
 *   fuse-driver container ROOT NAME [UPPER]
 *                                       makes another container over the fixture image, prints its
 *                                       id; its record names UPPER (made here) as its upper dir, or
 *                                       the store's containers/<id>/upper
 */
#include <string.h>

#include "daemon.h"
#include "fs-fixture.h"

static int usage(void)
{
        fprintf(stderr, "usage: fuse-driver mkstore|mount|umount|find|container ROOT [ARGS]\n");
        return 2;
}

int main(int argc, char **argv)
{
        if (argc < 3)
                return usage();
        const char *cmd = argv[1], *root = argv[2];
        if (strcmp(cmd, "mkstore") == 0) {
                char id[DIGEST_HEX_LEN + 1], cid[DIGEST_HEX_LEN + 1];
                int r = fx_store(root, id, cid);
                if (r < 0) {
                        fprintf(stderr, "mkstore: %s\n", strerror(-r));
                        return 1;
                }
                printf("%s %s\n", id, cid);
                return 0;
        }
        store *s;
        int r = store_open(root, &s);
        if (r < 0) {
                fprintf(stderr, "cannot open store %s: %s\n", root, strerror(-r));
                return 1;
        }
        char *err = NULL;
        if (strcmp(cmd, "mount") == 0 && argc >= 4) {
                struct daemon_options o = { 0 };
                for (int i = 4; i < argc; i++) {
                        if (strcmp(argv[i], "-f") == 0)
                                o.foreground = true;
                        else if (strcmp(argv[i], "--debug") == 0)
                                o.debug = true;
                }
                r = daemon_mount(s, argv[3], &o, &err);
        } else if (strcmp(cmd, "umount") == 0) {
                r = daemon_umount(s, argc >= 4 ? argv[3] : NULL, &err);
        } else if (strcmp(cmd, "find") == 0) {
                char *mp = NULL;
                r = daemon_find(s, &mp);
                if (r == 0)
                        printf("%s\n", mp);
                free(mp);
        } else if (strcmp(cmd, "container") == 0 && argc >= 4) {
                char id[DIGEST_HEX_LEN + 1], cid[DIGEST_HEX_LEN + 1];
                fx_id("ctfs test image", id);
                fx_id(argv[3], cid);
                char path[1024], upath[2048], json[4096];
                snprintf(path, sizeof(path), "containers/%s", cid);
                r = util_mkdir_p_at(store_dirfd(s), path, 0700);
                tree *t = NULL;
                if (r == 0) {
                        snprintf(path, sizeof(path), "images/%s/tree", id);
                        r = tree_open(store_dirfd(s), path, &t);
                }
                if (r == 0) {
                        if (argc >= 5)
                                snprintf(upath, sizeof(upath), "%s", argv[4]);
                        else
                                snprintf(upath, sizeof(upath), "%s/containers/%s/upper", store_root(s), cid);
                        r = upper_create_dirs(upath, t);
                        tree_close(t);
                }
                if (r == 0) {
                        snprintf(json, sizeof(json), "{\"id\":\"%s\",\"name\":\"%s\",\"image\":\"%s\",\"upper\":\"%s\"}",
                                 cid, argv[3], id, upath);
                        snprintf(path, sizeof(path), "containers/%s/config.json", cid);
                        r = util_write_file_atomic_at(store_dirfd(s), path, json, strlen(json), 0644);
                }
                if (r == 0)
                        printf("%s\n", cid);
        } else {
                store_close(s);
                return usage();
        }
        if (r < 0)
                fprintf(stderr, "%s\n", err ? err : strerror(-r));
        free(err);
        store_close(s);
        return r < 0 ? 1 : 0;
}
