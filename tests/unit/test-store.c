/* SPDX-License-Identifier: Apache-2.0 */
/* The store (TAP): its layout, references, image resolution (names, short names, ids, prefixes),
 * verified blobs, objects published once, work directories and the locks prune respects. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "digest.h"
#include "image.h"
#include "store.h"
#include "tap.h"
#include "util.h"

static char dir[] = "/tmp/ctfs-test-store-XXXXXX";

#define ID1 "abcd1111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID2 "abcd2222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID3 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static bool is_dir_at(int dfd, const char *path)
{
        struct stat st;
        return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

static bool exists_at(int dfd, const char *path)
{
        return faccessat(dfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static void write_at(int dfd, const char *path, const char *data)
{
        int fd = openat(dfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        util_write_all(fd, data, strlen(data));
        close(fd);
}

static size_t count_entries(int dfd, const char *path)
{
        int fd = openat(dfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return (size_t)-1;
        DIR *d = fdopendir(fd);
        size_t n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
        closedir(d);
        return n;
}

/* A minimal image: what store_image_exists and store_list_images look at. */
static void fake_image(store *s, const char *id, int64_t created)
{
        _cleanup_free_ char *d = xasprintf("images/%s", id);
        _cleanup_free_ char *j = xasprintf("images/%s/image.json", id);
        _cleanup_free_ char *text = xasprintf("{\"id\":\"%s\",\"digest\":\"sha256:%s\",\"created\":%lld,\"size\":42,"
                                              "\"layers\":[]}",
                                              id, id, (long long)created);
        mkdirat(store_dirfd(s), d, 0755);
        write_at(store_dirfd(s), j, text);
}

static void test_open(void)
{
        /* the root and its missing parents are created */
        _cleanup_free_ char *root = xasprintf("%s/deep/er/root", dir);
        store *s = NULL;
        int r = store_open(root, &s);
        ok(r == 0 && s, "store_open creates a missing root (and its parents)");
        if (!s)
                return;
        static const char *const dirs[] = { "tmp", "objects", "objects/sha256", "blobs", "blobs/sha256",
                                            "layers", "images", "containers" };
        bool all = true;
        for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
                if (!is_dir_at(store_dirfd(s), dirs[i])) {
                        diag("missing %s", dirs[i]);
                        all = false;
                }
        ok(all, "store_open creates the layout (tmp, objects, blobs, layers, images, containers)");
        struct stat st;
        ok(stat(root, &st) == 0 && (st.st_mode & 07777) == 0700, "the root is private (0700)");
        ok(store_root(s)[0] == '/' && strstr(store_root(s), "/deep/er/root"), "store_root is absolute: %s",
           store_root(s));
        store_close(s);

        s = NULL;
        ok(store_open(root, &s) == 0 && s, "store_open of an existing store");
        store_close(s);

        /* $CTFS_ROOT when no root is given */
        _cleanup_free_ char *envroot = xasprintf("%s/from-env", dir);
        setenv("CTFS_ROOT", envroot, 1);
        s = NULL;
        ok(store_open(NULL, &s) == 0 && s && strstr(store_root(s), "/from-env"), "NULL root means $CTFS_ROOT");
        store_close(s);
        unsetenv("CTFS_ROOT");

        /* a root that cannot be a directory */
        _cleanup_free_ char *file = xasprintf("%s/a-file", dir);
        write_at(AT_FDCWD, file, "x");
        s = NULL;
        r = store_open(file, &s);
        ok(r < 0 && !s, "store_open of a regular file fails (%s)", strerror(-r));
}

static void test_refs(store *s)
{
        struct store_ref *refs;
        size_t n;
        ok(store_refs_load(s, &refs, &n) == 0 && n == 0, "no refs.json: no references");
        store_refs_free(refs, n);

        ok(store_ref_set(s, "localhost/foo:v1", ID2) == 0, "set a reference");
        ok(store_ref_set(s, "docker.io/library/busybox:latest", ID1) == 0, "set another");
        ok(store_ref_set(s, "docker.io/library/busybox:1", ID1) == 0, "and a second name for one image");
        ok(store_refs_load(s, &refs, &n) == 0 && n == 3, "three references");
        ok(n == 3 && !strcmp(refs[0].name, "docker.io/library/busybox:1") && !strcmp(refs[0].id, ID1) &&
                   !strcmp(refs[1].name, "docker.io/library/busybox:latest") && !strcmp(refs[2].name, "localhost/foo:v1") &&
                   !strcmp(refs[2].id, ID2),
           "loaded sorted by name, with their ids");
        store_refs_free(refs, n);

        _cleanup_free_ char *data = NULL;
        json_object *j = NULL;
        ok(util_read_file_at(store_dirfd(s), "refs.json", 1 << 20, &data, NULL) == 0 && (j = json_tokener_parse(data)) &&
                   json_object_is_type(j, json_type_object) && json_object_object_length(j) == 3,
           "refs.json is a JSON object with the three names");
        json_object_put(j);

        struct stat a, b;
        fstatat(store_dirfd(s), "refs.json", &a, 0);
        ok(store_ref_set(s, "localhost/foo:v1", ID2) == 0, "setting a reference to what it is");
        fstatat(store_dirfd(s), "refs.json", &b, 0);
        ok(a.st_ino == b.st_ino && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_mtim.tv_sec == b.st_mtim.tv_sec,
           "leaves refs.json alone (not rewritten)");

        ok(store_ref_set(s, "docker.io/library/busybox:1", NULL) == 0, "remove a reference");
        ok(store_ref_set(s, "no/such:name", NULL) == 0, "removing a missing reference is fine");
        ok(store_refs_load(s, &refs, &n) == 0 && n == 2 && strcmp(refs[0].name, "docker.io/library/busybox:1") != 0,
           "the removed name is gone, the others stay");
        store_refs_free(refs, n);

        ok(store_ref_set(s, "localhost/foo:v1", ID3) == 0 && store_refs_load(s, &refs, &n) == 0 && n == 2 &&
                   !strcmp(refs[1].id, ID3),
           "moving a name to another image");
        store_refs_free(refs, n);
        store_ref_set(s, "localhost/foo:v1", ID2);

        /* an entry that is not an id is ignored, not trusted */
        write_at(store_dirfd(s), "refs.json.bad", "");
        _cleanup_free_ char *orig = NULL;
        util_read_file_at(store_dirfd(s), "refs.json", 1 << 20, &orig, NULL);
        write_at(store_dirfd(s), "refs.json", "{\"a:b\":\"not-an-id\",\"c:d\":\"" ID1 "\"}");
        ok(store_refs_load(s, &refs, &n) == 0 && n == 1 && !strcmp(refs[0].name, "c:d"),
           "a reference to something that is not an id is skipped");
        store_refs_free(refs, n);
        write_at(store_dirfd(s), "refs.json", "[1,2]");
        ok(store_refs_load(s, &refs, &n) == -EBADMSG, "refs.json that is not an object: -EBADMSG");
        write_at(store_dirfd(s), "refs.json", orig);
        unlinkat(store_dirfd(s), "refs.json.bad", 0);
}

static void test_resolve(store *s)
{
        fake_image(s, ID1, 100);
        fake_image(s, ID2, 200);
        fake_image(s, ID3, 300);
        char id[DIGEST_HEX_LEN + 1];
        int r;

        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "docker.io/library/busybox:latest", id) == 0 && !strcmp(id, ID1), "full name");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "busybox", id) == 0 && !strcmp(id, ID1), "short name (docker.io/library/, :latest)");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "busybox:latest", id) == 0 && !strcmp(id, ID1), "short name with a tag");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "library/busybox", id) == 0 && !strcmp(id, ID1), "library/ name");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "localhost/foo:v1", id) == 0 && !strcmp(id, ID2), "localhost name");
        ok(store_resolve_image(s, "localhost/foo", id) == -ENOENT, "the name without its tag means :latest: -ENOENT");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, ID3, id) == 0 && !strcmp(id, ID3), "full id");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "sha256:" ID3, id) == 0 && !strcmp(id, ID3), "sha256:<id>");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "abcd1", id) == 0 && !strcmp(id, ID1), "unambiguous prefix");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "0123", id) == 0 && !strcmp(id, ID3), "prefix of 4 characters");
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "sha256:abcd2", id) == 0 && !strcmp(id, ID2), "sha256:<prefix>");
        r = store_resolve_image(s, "abcd", id);
        ok(r == -EEXIST, "ambiguous prefix: -EEXIST (%d)", r);
        ok(store_resolve_image(s, "012", id) == -ENOENT, "prefix shorter than 4: -ENOENT");
        ok(store_resolve_image(s, "ffff", id) == -ENOENT, "unknown id prefix: -ENOENT");
        ok(store_resolve_image(s, "ABCD1", id) == -ENOENT, "ids are lowercase hex: -ENOENT");
        ok(store_resolve_image(s, "nosuch", id) == -ENOENT, "unknown name: -ENOENT");
        ok(store_resolve_image(s, "", id) == -ENOENT, "empty: -ENOENT");
        ok(store_resolve_image(s, "sha256:", id) == -ENOENT, "sha256: alone: -ENOENT");
        ok(store_resolve_image(s, ID3 "0", id) == -ENOENT, "longer than an id: -ENOENT");

        /* an image directory without image.json is not an image (half published) */
        mkdirat(store_dirfd(s), "images/abcd3333cccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 0755);
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "abcd1", id) == 0 && !strcmp(id, ID1), "an incomplete image is not a candidate");
        ok(!store_image_exists(s, "abcd3333cccccccccccccccccccccccccccccccccccccccccccccccccccccccc") &&
                   store_image_exists(s, ID1),
           "store_image_exists needs image.json");
        unlinkat(store_dirfd(s), "images/abcd3333cccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
                 AT_REMOVEDIR);

        /* a name that looks like a hex prefix resolves as a name first */
        store_ref_set(s, "docker.io/library/abcd:latest", ID3);
        memset(id, 0, sizeof(id));
        ok(store_resolve_image(s, "abcd:latest", id) == 0 && !strcmp(id, ID3), "a name wins over an id prefix");
        store_ref_set(s, "docker.io/library/abcd:latest", NULL);

        struct store_image *imgs;
        size_t n;
        ok(store_list_images(s, &imgs, &n) == 0 && n == 3, "three images listed");
        size_t names1 = 0, names3 = 0;
        for (size_t i = 0; i < n; i++) {
                size_t k = 0;
                while (imgs[i].names[k])
                        k++;
                if (!strcmp(imgs[i].id, ID1))
                        names1 = k;
                if (!strcmp(imgs[i].id, ID3))
                        names3 = k;
        }
        ok(names1 == 1 && names3 == 0, "with their names (busybox:latest; none)");
        store_images_free(imgs, n);
}

static void test_blobs(store *s)
{
        static const char blob[] = "{\"schemaVersion\":2}";
        uint8_t d[DIGEST_LEN], wrong[DIGEST_LEN];
        digest_buf(blob, strlen(blob), d);
        memcpy(wrong, d, DIGEST_LEN);
        wrong[0] ^= 1;
        char hex[DIGEST_HEX_LEN + 1], whex[DIGEST_HEX_LEN + 1];
        digest_to_hex(d, hex);
        digest_to_hex(wrong, whex);
        size_t before = count_entries(store_dirfd(s), "blobs/sha256");
        ok(store_blob_put(s, blob, strlen(blob), wrong) == -EBADMSG, "blob with the wrong digest refused");
        _cleanup_free_ char *wrel = xasprintf("blobs/sha256/%s", whex);
        ok(!exists_at(store_dirfd(s), wrel) && count_entries(store_dirfd(s), "blobs/sha256") == before,
           "nothing written for it");
        ok(store_blob_put(s, blob, strlen(blob), d) == 0, "blob with its digest stored");
        ok(store_blob_put(s, blob, strlen(blob), d) == 0, "storing it again is fine");
        char *data = NULL;
        size_t len = 0;
        ok(store_blob_get(s, d, &data, &len) == 0 && len == strlen(blob) && !memcmp(data, blob, len),
           "blob read back");
        free(data);
        ok(store_blob_get(s, wrong, &data, &len) == -ENOENT, "missing blob: -ENOENT");
        _cleanup_free_ char *rel = xasprintf("blobs/sha256/%s", hex);
        struct stat st;
        ok(fstatat(store_dirfd(s), rel, &st, 0) == 0 && (st.st_mode & 0222) == 0, "blobs are read-only");
}

/* A complete temp file under tmp/ with data, as ingest leaves one; returns its relative path. */
static char *temp_file(store *s, const char *data)
{
        char *work = NULL;
        if (store_mkdtemp(s, &work) < 0)
                return NULL;
        char *rel = xasprintf("%s/obj", work);
        write_at(store_dirfd(s), rel, data);
        free(work);
        return rel;
}

static void test_objects(store *s)
{
        static const char data[] = "file contents\n";
        uint8_t d[DIGEST_LEN];
        digest_buf(data, strlen(data), d);
        char rel[96], hex[DIGEST_HEX_LEN + 1];
        store_object_relpath(d, rel);
        digest_to_hex(d, hex);
        _cleanup_free_ char *want = xasprintf("objects/sha256/%.2s/%s", hex, hex);
        ok(!strcmp(rel, want), "object path objects/sha256/<2 hex>/<hex>");
        ok(!store_object_exists(s, d), "not there yet");

        _cleanup_free_ char *t1 = temp_file(s, data);
        ok(t1 && store_object_publish(s, t1, d) == 1, "publish: new object (1)");
        ok(store_object_exists(s, d) && !exists_at(store_dirfd(s), t1), "the object is there, the temp file moved");
        int fd = store_object_open(s, d);
        char buf[64] = { 0 };
        ok(fd >= 0 && util_read_all(fd, buf, sizeof(buf) - 1) == (ssize_t)strlen(data) && !strcmp(buf, data),
           "object holds the bytes");
        struct stat st1, st2;
        if (fd >= 0) {
                fstat(fd, &st1);
                close(fd);
        }

        _cleanup_free_ char *t2 = temp_file(s, data);
        ok(t2 && store_object_publish(s, t2, d) == 0, "publish again: exists already (0)");
        ok(!exists_at(store_dirfd(s), t2), "the second temp file is removed");
        fd = store_object_open(s, d);
        ok(fd >= 0 && fstat(fd, &st2) == 0 && st1.st_ino == st2.st_ino, "the object was not replaced (same inode)");
        if (fd >= 0)
                close(fd);
        uint8_t missing[DIGEST_LEN] = { 0 };
        ok(store_object_open(s, missing) == -ENOENT, "missing object: -ENOENT");
}

static void test_work_and_locks(store *s)
{
        char *work = NULL;
        int fd = -1;
        ok(store_mkdtemp_locked(s, &work, &fd) == 0 && fd >= 0 && !strncmp(work, "tmp/", 4),
           "locked work directory under tmp/: %s", work ? work : "-");
        int other = openat(store_dirfd(s), work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ok(other >= 0 && flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK,
           "it is flock'ed: an exclusive lock is refused");
        char *plain = NULL;
        ok(store_mkdtemp(s, &plain) == 0, "an unlocked work directory (abandoned)");

        struct prune_result pr;
        ok(store_prune(s, &pr) == 0, "prune");
        ok(is_dir_at(store_dirfd(s), work), "prune leaves a locked work directory alone");
        ok(!exists_at(store_dirfd(s), plain), "prune removes an abandoned one");
        close(fd);
        ok(flock(other, LOCK_EX | LOCK_NB) == 0, "once its fd is closed, it is unlocked");
        close(other);
        ok(store_prune(s, &pr) == 0 && !exists_at(store_dirfd(s), work), "and prune removes it");
        free(work);
        free(plain);

        int l1 = store_lock(s);
        ok(l1 >= 0, "store_lock");
        int l2 = openat(store_dirfd(s), "lock", O_RDWR | O_CLOEXEC);
        ok(l2 >= 0 && flock(l2, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "the store lock is exclusive");
        close(l1);
        ok(flock(l2, LOCK_EX | LOCK_NB) == 0, "released when its fd is closed");
        close(l2);
}

/* Whole-file reads go to EOF: files in /proc report a size of 0. */
static void test_read_file(void)
{
        char *data = NULL;
        size_t len = 0;
        ok(util_read_file_at(AT_FDCWD, "/proc/self/mountinfo", 1 << 20, &data, &len) == 0 && len > 0 &&
                   strlen(data) == len && strstr(data, " / "),
           "util_read_file_at reads a /proc file to its end (%zu bytes)", len);
        free(data);
        ok(util_read_file_at(AT_FDCWD, "/proc/self/mountinfo", 16, &data, &len) == -EFBIG,
           "and refuses one longer than the limit");
        _cleanup_free_ char *p = xasprintf("%s/big", dir);
        char buf[10000];
        memset(buf, 'x', sizeof(buf));
        util_write_file_atomic_at(AT_FDCWD, p, buf, sizeof(buf), 0600);
        data = NULL;
        ok(util_read_file_at(AT_FDCWD, p, sizeof(buf), &data, &len) == 0 && len == sizeof(buf) && data[len] == '\0',
           "a regular file of exactly the limit reads whole and NUL-terminated");
        free(data);
        ok(util_read_file_at(AT_FDCWD, p, sizeof(buf) - 1, &data, &len) == -EFBIG, "one byte over the limit is refused");
}

int main(void)
{
        if (!mkdtemp(dir)) {
                printf("1..0 # SKIP cannot make a temporary directory\n");
                return 0;
        }
        _cleanup_free_ char *root = xasprintf("%s/root", dir);
        store *s;
        if (store_open(root, &s) < 0) {
                printf("1..0 # SKIP cannot open a store\n");
                return 0;
        }
        test_open();
        test_refs(s);
        test_resolve(s);
        test_blobs(s);
        test_objects(s);
        test_work_and_locks(s);
        test_read_file();
        store_close(s);
        util_rm_rf_at(AT_FDCWD, dir);
        return tap_done();
}
