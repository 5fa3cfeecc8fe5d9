/* SPDX-License-Identifier: Apache-2.0 */
/* The container upper dir logic, without a mount: merged lookups, copy-up, whiteouts, opaque
 * dirs, redirects, metacopy, hardlink sets, and the on-disk format the kernel reads. */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs-fixture.h"
#include "tap.h"

static upper *u;
static store *s;
static tree *t;
static char upath[2048];

static struct upper_dir D(const char *path)
{
        /* resolve a directory of the merged view the way the daemon caches it */
        struct upper_dir d = { "", true, TREE_ROOT };
        struct upper_ent e;
        if (upper_lookup(u, NULL, NULL, &e) == 0) {
                d.merge = e.merge;
                d.lower = e.lower;
        }
        static char bufs[8][512];
        static int k;
        char *acc = bufs[k++ % 8];
        acc[0] = '\0';
        char copy[512];
        snprintf(copy, sizeof(copy), "%s", path);
        char *save = NULL;
        for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                struct upper_dir cur = d;
                cur.path = acc;
                if (upper_lookup(u, &cur, c, &e) < 0) {
                        d.merge = false;
                        break;
                }
                if (*acc)
                        strcat(acc, "/");
                strcat(acc, c);
                d.merge = e.merge;
                d.lower = e.lower;
        }
        d.path = acc;
        return d;
}

static int ulstat(const char *rel, struct stat *st)
{
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", upath, rel);
        return lstat(p, st);
}

static ssize_t ugetx(const char *rel, const char *name, char *buf, size_t n)
{
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", upath, rel);
        ssize_t r = lgetxattr(p, name, buf, n);
        if (r >= 0 && (size_t)r < n)
                buf[r] = '\0';
        return r;
}

static bool is_wh(const char *rel)
{
        struct stat st;
        return ulstat(rel, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

static bool exists(const char *dir, const char *name)
{
        struct upper_dir d = D(dir);
        struct upper_ent e;
        return upper_lookup(u, &d, name, &e) == 0;
}

static char *read_all(const char *dir, const char *name, bool *lower)
{
        struct upper_dir d = D(dir);
        int fd;
        bool lw;
        if (upper_open_file(u, &d, name, O_RDONLY, &fd, &lw) < 0)
                return NULL;
        if (lower)
                *lower = lw;
        size_t cap = 1 << 16, len = 0;
        char *buf = xmalloc(cap + 1);
        for (;;) {
                if (len == cap)
                        buf = xrealloc(buf, (cap *= 2) + 1);
                ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
                if (n <= 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = '\0';
        close(fd);
        return buf;
}

static bool listed(const char *dir, const char *name)
{
        struct upper_dir d = D(dir);
        struct upper_dirent *e;
        size_t n;
        if (upper_readdir(u, &d, &e, &n) < 0)
                return false;
        bool found = false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(e[i].name, name) == 0)
                        found = true;
        upper_dirents_free(e, n);
        return found;
}

/* Switch u to a new, empty container upper dir over the same image (tmpl/name/upper). */
static void fresh_upper(const char *tmpl, const char *name)
{
        upper_close(u);
        u = NULL;
        char dir[1024];
        snprintf(dir, sizeof(dir), "%s/%s", tmpl, name);
        mkdir(dir, 0700);
        snprintf(upath, sizeof(upath), "%s/upper", dir);
        int r = upper_create_dirs(upath, t);
        if (r == 0)
                r = upper_open(s, t, upath, &u);
        ok(r == 0, "a fresh upper dir %s (%s)", name, strerror(-r));
        if (r < 0)
                exit(tap_done() ? 1 : 1);
}

/* Start copying the object at objp into a new file tmpl/name (marked, named in the work dir
 * wfd): the copy, with a reference; *j and dst say where. */
enum { BIG_COPY = 128 << 20 };
static upper_copy *start_copy(upper_copies *cs, const char *tmpl, const char *name, const char *objp, int wfd,
                              struct upper_copy_job *j, char dst[1024])
{
        snprintf(dst, 1024, "%s/%s", tmpl, name);
        int obj = open(objp, O_RDONLY | O_CLOEXEC);
        int fd = open(dst, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
        uint8_t dg[DIGEST_LEN] = { 1 };
        struct stat st;
        memset(j, 0, sizeof(*j));
        if (obj < 0 || fd < 0 || ftruncate(fd, BIG_COPY) < 0 || fstat(fd, &st) < 0 ||
            upper_copy_prepare(fd, wfd, dg, BIG_COPY, j->entry) < 0)
                return NULL;
        j->obj = obj;
        j->fd = fd;
        j->work_fd = fcntl(wfd, F_DUPFD_CLOEXEC, 3);
        j->dev = st.st_dev;
        j->ino = st.st_ino;
        j->size = BIG_COPY;
        upper_copy_start(cs, j);
        return upper_copies_get(cs, st.st_dev, st.st_ino);
}

int main(void)
{
        if (geteuid() != 0) {
                printf("1..0 # SKIP needs root (trusted.* xattrs, chown, mknod)\n");
                return 0;
        }
        char tmpl[] = "/var/tmp/ctfs-test-upper-XXXXXX";
        if (!mkdtemp(tmpl))
                return 1;
        char root[512];
        snprintf(root, sizeof(root), "%s/root", tmpl);
        char id[DIGEST_HEX_LEN + 1], cid[DIGEST_HEX_LEN + 1];
        int r = fx_store(root, id, cid);
        ok(r == 0, "fixture store (%s)", strerror(-r));
        r = store_open(root, &s);
        ok(r == 0, "open store");
        r = store_image_open_tree(s, id, &t);
        ok(r == 0, "open image tree");
        snprintf(upath, sizeof(upath), "%s/containers/%s/upper", root, cid);
        r = upper_open(s, t, upath, &u);
        ok(r == 0, "upper_open (%s)", strerror(-r));
        struct upper_ent e;
        struct upper_dir d;

        /* the root: its attributes are the image root's, it merges the lower */
        r = upper_lookup(u, NULL, NULL, &e);
        ok(r == 0 && e.in_upper && e.merge && (e.st.st_mode & 07777) == 0755 && e.st.st_mtim.tv_sec == 1600000000,
           "root is the upper dir, merged, with the image root's attributes");

        /* lookups of lower entries */
        d = D("bin");
        r = upper_lookup(u, &d, "su", &e);
        ok(r == 0 && !e.in_upper && e.st.st_mode == (S_IFREG | 04755) && e.st.st_size == 9,
           "lower setuid file: mode and size");
        d = D("data");
        r = upper_lookup(u, &d, "hl1", &e);
        ok(r == 0 && e.st.st_nlink == 3, "lower hardlink set: nlink 3");
        ok(exists("", "bin") && !exists("", "nope"), "lookup of present and absent names");
        ok(listed("", "etc") && listed("usr/lib", "libx.so"), "readdir lists lower entries");
        {
                d = D("usr/lib");
                char *target = NULL;
                r = upper_readlink(u, &d, "libx.so", &target);
                ok(r == 0 && target && strcmp(target, "libx.so.1") == 0, "readlink of a lower symlink");
                free(target);
        }

        /* read-only open of a lower file serves the object, copies nothing */
        {
                bool lower = false;
                char *data = read_all("etc", "passwd", &lower);
                ok(data && strncmp(data, "root:x:0:0", 10) == 0 && lower, "read of a lower file comes from the object");
                free(data);
                struct stat st;
                ok(ulstat("etc", &st) < 0, "nothing was copied up by reading");
        }

        /* create in a lower dir copies the parent up, keeping its attributes */
        {
                int fd;
                d = D("etc");
                r = upper_create(u, &d, "new.conf", 0640, 1000, 1001, O_RDWR, &fd, &e);
                ok(r == 0 && e.in_upper && e.st.st_uid == 1000 && e.st.st_gid == 1001 &&
                           (e.st.st_mode & 07777) == 0640,
                   "create: owner and mode (%s)", strerror(-r));
                if (r == 0) {
                        ok(write(fd, "x=1\n", 4) == 4, "write to the created file");
                        close(fd);
                }
                struct stat st;
                ok(ulstat("etc", &st) == 0 && S_ISDIR(st.st_mode) && st.st_mtim.tv_sec != 1600000004,
                   "parent copied up (mtime changed by the create)");
                d = D("etc");
                r = upper_create(u, &d, "new.conf", 0640, 0, 0, O_RDWR, &fd, &e);
                ok(r == -EEXIST, "create of an existing name: EEXIST");
                r = upper_create(u, &d, "passwd", 0640, 0, 0, O_RDWR, &fd, &e);
                ok(r == -EEXIST, "create over a lower name: EEXIST");
                ok(listed("etc", "passwd") && listed("etc", "new.conf"), "merged readdir: lower and upper names");
        }

        /* unlink a lower file: a whiteout */
        {
                d = D("etc");
                r = upper_unlink(u, &d, "shadow");
                ok(r == 0 && is_wh("etc/shadow"), "unlink of a lower file leaves a 0/0 char device");
                ok(!exists("etc", "shadow") && !listed("etc", "shadow"), "whited-out name is gone");
                r = upper_unlink(u, &d, "shadow");
                ok(r == -ENOENT, "unlink again: ENOENT");
                r = upper_unlink(u, &d, "new.conf");
                struct stat st;
                ok(r == 0 && ulstat("etc/new.conf", &st) < 0, "unlink of an upper-only file removes it, no whiteout");
                d = D("");
                ok(upper_unlink(u, &d, "etc") == -EISDIR, "unlink of a dir: EISDIR");
                ok(upper_rmdir(u, &d, "etc") == -ENOTEMPTY, "rmdir of a non-empty lower dir: ENOTEMPTY");
                d = D("bin");
                ok(upper_rmdir(u, &d, "sh") == -ENOTDIR, "rmdir of a file: ENOTDIR");
        }

        /* a recreated file over a whiteout; a recreated dir over a whiteout is opaque */
        {
                int fd;
                d = D("etc");
                r = upper_create(u, &d, "shadow", 0600, 1000, 1001, O_RDWR, &fd, &e);
                ok(r == 0 && !is_wh("etc/shadow"), "create over a whiteout replaces it");
                if (r == 0)
                        close(fd);
                struct stat st;
                ok(ulstat("etc/shadow", &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0 &&
                           st.st_uid == 1000 && st.st_gid == 1001 && (st.st_mode & 07777) == 0600,
                   "  a new empty file with its owner and mode");
                ok(r == 0 && e.in_upper && !e.has_lower && !e.metacopy && e.st.st_ino == st.st_ino,
                   "  the entry returned is the upper file");
                struct stat vst;
                ok(upper_stat(u, &d, "shadow", &vst) == 0 && vst.st_ino == st.st_ino && vst.st_uid == 1000,
                   "upper_stat of an upper file");
                d = D("");
                ok(upper_stat(u, &d, "etc", &vst) == 0 && S_ISDIR(vst.st_mode), "upper_stat of a merged dir");
                ok(upper_stat(u, &d, "usr", &vst) == 0 && S_ISDIR(vst.st_mode) && vst.st_mtim.tv_sec == 1600000007,
                   "upper_stat of a lower dir");
                ok(upper_stat(u, NULL, NULL, &vst) == 0 && S_ISDIR(vst.st_mode), "upper_stat of the root");
                d = D("etc");
                ok(upper_create(u, &d, "shadow", 0600, 0, 0, O_RDWR, &fd, &e) == -EEXIST,
                   "create over the recreated file: EEXIST");
                char wpath[2100];
                snprintf(wpath, sizeof(wpath), "%.2040s/../work", upath);
                DIR *wd = opendir(wpath);
                int left = 0;
                for (struct dirent *de; wd && (de = readdir(wd));)
                        left += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
                if (wd)
                        closedir(wd);
                ok(wd && left == 0, "nothing left in the work dir (%d)", left);
                d = D("");
                r = upper_rmdir(u, &d, "tmp");
                ok(r == 0 && is_wh("tmp"), "rmdir of an empty lower dir: whiteout");
                d = D("opt/app");
                ok(upper_unlink(u, &d, "conf") == 0, "unlink opt/app/conf");
                d = D("opt/app/lib");
                ok(upper_unlink(u, &d, "mod") == 0, "unlink opt/app/lib/mod");
                d = D("opt/app");
                ok(upper_rmdir(u, &d, "lib") == 0, "rmdir opt/app/lib (now empty)");
                d = D("opt");
                ok(upper_rmdir(u, &d, "app") == 0 && is_wh("opt/app"), "rmdir opt/app: whiteouts cleared, dir whited out");
                r = upper_mkdir(u, &d, "app", 0700, 0, 0, &e);
                char v[8];
                ok(r == 0 && ugetx("opt/app", "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y' && !e.merge,
                   "mkdir over a whiteout: opaque dir");
                ok(!exists("opt/app", "conf") && !listed("opt/app", "lib"), "opaque dir hides the lower children");
                d = D("opt");
                ok(upper_mkdir(u, &d, "app", 0700, 0, 0, &e) == -EEXIST, "mkdir of an existing name: EEXIST");
        }

        /* .wh.* names are ordinary files */
        {
                int fd;
                d = D("bin");
                r = upper_create(u, &d, ".wh.sh", 0644, 0, 0, O_RDWR, &fd, &e);
                ok(r == 0, "create .wh.sh");
                if (r == 0)
                        close(fd);
                ok(exists("bin", "sh") && exists("bin", ".wh.sh") && listed("bin", ".wh.sh"),
                   ".wh.sh is an ordinary file and hides nothing");
        }

        /* metadata-only copy-up */
        {
                d = D("data");
                struct upper_attr a = { .valid = UPPER_SET_MODE, .mode = 0600 };
                r = upper_setattr(u, &d, "big", &a, &e);
                ok(r == 0 && (e.st.st_mode & 07777) == 0600 && e.st.st_size == FX_BIG_SIZE && e.metacopy,
                   "chmod of a big lower file: metacopy (%s)", strerror(-r));
                struct stat st;
                ok(ulstat("data/big", &st) == 0 && st.st_blocks < 64, "no data copied (%lld blocks)",
                   (long long)st.st_blocks);
                char v[256];
                ok(ugetx("data/big", "trusted.overlay.metacopy", v, sizeof(v)) == 0, "trusted.overlay.metacopy set");
                ok(ugetx("data/big", "trusted.overlay.redirect", v, sizeof(v)) > 0 && strcmp(v, "/data/big") == 0,
                   "redirect names the lower file");
                bool lower = false;
                char *data = read_all("data", "big", &lower);
                ok(data && lower && data[0] == 'a' && data[25] == 'z', "metacopy reads the lower data");
                free(data);
                d = D("usr/bin");
                struct upper_attr m = { .valid = UPPER_SET_MODE, .mode = 0750 };
                r = upper_setattr(u, &d, "ping", &m, &e);
                ssize_t n = upper_getxattr(u, &d, "ping", "security.capability", v, sizeof(v));
                ok(r == 0 && e.metacopy && n == 20, "copy-up keeps security.capability (set after the owner)");
                struct upper_attr o = { .valid = UPPER_SET_UID | UPPER_SET_GID, .uid = 5, .gid = 6 };
                r = upper_setattr(u, &d, "ping", &o, &e);
                ok(r == 0 && e.st.st_uid == 5 && e.st.st_gid == 6 && e.metacopy, "chown: metacopy");
                n = upper_getxattr(u, &d, "ping", "security.capability", v, sizeof(v));
                ok(n == -ENODATA, "chown drops security.capability, as on a local filesystem");
                struct upper_attr tm = { .valid = UPPER_SET_MTIME, .mtime = { 12345, 6 } };
                d = D("bin");
                r = upper_setattr(u, &d, "su", &tm, &e);
                ok(r == 0 && e.st.st_mtim.tv_sec == 12345 && e.st.st_mode == (S_IFREG | 04755),
                   "utimens: setuid kept, mtime set");
                d = D("usr/lib");
                r = upper_setxattr(u, &d, "libx.so.1", "user.x", "1", 1, 0);
                ok(r == 0, "setxattr on a lower file");
                ok(upper_getxattr(u, &d, "libx.so.1", "user.x", v, sizeof(v)) == 1, "getxattr after setxattr");
                ok(upper_setxattr(u, &d, "libx.so.1", "trusted.overlay.opaque", "y", 1, 0) == -EPERM,
                   "setxattr trusted.overlay.*: EPERM");
                ssize_t ln = upper_listxattr(u, &d, "libx.so.1", v, sizeof(v));
                bool ovl = false;
                for (ssize_t off = 0; off < ln; off += (ssize_t)strlen(v + off) + 1)
                        if (strncmp(v + off, "trusted.overlay.", 16) == 0)
                                ovl = true;
                ok(ln > 0 && !ovl, "listxattr hides trusted.overlay.*");
        }

        /* data copy-up on open for write; metacopy becomes a full copy in place */
        {
                d = D("data");
                int fd;
                bool lower;
                r = upper_open_file(u, &d, "big", O_RDWR, &fd, &lower);
                ok(r == 0 && !lower, "open for write of a metacopy");
                char v[8];
                ok(ugetx("data/big", "trusted.overlay.metacopy", v, sizeof(v)) < 0, "metacopy marker removed");
                if (r == 0) {
                        char buf[4];
                        ok(pread(fd, buf, 4, FX_BIG_SIZE - 4096) == 4 && buf[0] == 'A' + (FX_BIG_SIZE - 4096) % 26,
                           "data copied (tail)");
                        ok(pread(fd, buf, 4, 1 << 20) == 4 && buf[0] == 0, "hole reads as zeros");
                        close(fd);
                }
                struct stat st;
                ok(ulstat("data/big", &st) == 0 && st.st_blocks < 1024, "holes stayed holes (%lld blocks)",
                   (long long)st.st_blocks);
                d = D("etc");
                r = upper_open_file(u, &d, "passwd", O_WRONLY | O_TRUNC, &fd, &lower);
                ok(r == 0 && !lower, "open O_TRUNC of a lower file");
                if (r == 0)
                        close(fd);
                ok(ulstat("etc/passwd", &st) == 0 && st.st_size == 0, "truncated copy");
                char v2[16];
                ok(upper_getxattr(u, &d, "passwd", "user.comment", v2, sizeof(v2)) == 5, "xattrs came along");
                d = D("bin");
                struct upper_attr a = { .valid = UPPER_SET_SIZE, .size = 4 };
                r = upper_setattr(u, &d, "sh", &a, &e);
                char *data = read_all("bin", "sh", NULL);
                ok(r == 0 && e.st.st_size == 4 && data && strcmp(data, "#!/b") == 0, "truncate to 4 copies 4 bytes");
                free(data);
        }

        /* hardlinks: link to an image file keeps the set whole */
        {
                d = D("data");
                struct upper_dir dd = D("data");
                r = upper_link(u, &d, "hl1", &dd, "hl4", &e);
                ok(r == 0 && e.st.st_nlink == 4, "link to a lower hardlinked file: nlink 4 (%s, %d)", strerror(-r),
                   (int)e.st.st_nlink);
                struct stat a1, a2, a3, a4;
                ok(ulstat("data/hl1", &a1) == 0 && ulstat("data/sub/hl2", &a2) == 0 && ulstat("data/hl3", &a3) == 0 &&
                           ulstat("data/hl4", &a4) == 0 && a1.st_ino == a2.st_ino && a2.st_ino == a3.st_ino &&
                           a3.st_ino == a4.st_ino,
                   "every name of the set is one upper inode");
                int fd;
                bool lower;
                d = D("data/sub");
                r = upper_open_file(u, &d, "hl2", O_WRONLY, &fd, &lower);
                if (r == 0) {
                        ok(pwrite(fd, "CHANGED", 7, 0) == 7, "write through one name");
                        close(fd);
                }
                char *data = read_all("data", "hl3", NULL);
                ok(data && strncmp(data, "CHANGED", 7) == 0, "seen through another name");
                free(data);
                d = D("usr/lib");
                dd = D("");
                r = upper_link(u, &d, "libx.so.1", &dd, "libx-link", &e);
                ok(r == 0 && e.st.st_nlink == 2, "link to a lower single file");
                d = D("");
                ok(upper_link(u, &d, "etc", &dd, "etc2", &e) == -EPERM, "link to a dir: EPERM");
        }

        /* rename */
        {
                d = D("deep/a");
                struct upper_dir dd = D("");
                r = upper_rename(u, &d, "b", &dd, "moved", 0);
                ok(r == 0, "rename an image dir to another parent (%s)", strerror(-r));
                char v[256];
                ok(ugetx("moved", "trusted.overlay.redirect", v, sizeof(v)) > 0 && strcmp(v, "/deep/a/b") == 0,
                   "redirect to its lower path");
                ok(is_wh("deep/a/b"), "whiteout at the old name");
                ok(exists("moved/c", "leaf") && !exists("deep/a", "b"), "children follow; old name gone");
                char *data = read_all("moved/c", "leaf", NULL);
                ok(data && strcmp(data, "leaf\n") == 0, "contents under the moved dir");
                free(data);
                d = D("deep/a");
                dd = D("deep/a");
                r = upper_rename(u, &d, "sibling", &dd, "sib2", 0);
                ok(r == 0 && !exists("deep/a", "sibling"), "rename a lower file");
                data = read_all("deep/a", "sib2", NULL);
                ok(data && strcmp(data, "sib\n") == 0, "moved file keeps its data (metacopy)");
                free(data);
                d = D("");
                dd = D("");
                ok(upper_rename(u, &d, "bin", &dd, "usr", RENAME_NOREPLACE) == -EEXIST, "RENAME_NOREPLACE: EEXIST");
                ok(upper_rename(u, &d, "bin", &dd, "usr", 0) == -ENOTEMPTY, "rename over a non-empty dir: ENOTEMPTY");
                ok(upper_rename(u, &d, "bin", &dd, "libx-link", 0) == -ENOTDIR, "dir over a file: ENOTDIR");
                ok(upper_rename(u, &d, "libx-link", &dd, "bin", 0) == -EISDIR, "file over a dir: EISDIR");
                ok(upper_rename(u, &d, "nothing", &dd, "x", 0) == -ENOENT, "rename of a missing name: ENOENT");
                r = upper_rename(u, &d, "bin", &dd, "usr", RENAME_EXCHANGE);
                ok(r == 0 && exists("usr", "sh") && exists("bin", "lib"), "RENAME_EXCHANGE of two image dirs");
                r = upper_rename(u, &d, "bin", &dd, "usr", RENAME_EXCHANGE);
                ok(r == 0 && exists("bin", "sh") && exists("usr", "lib"), "and back");
                /* rename a pure upper dir over an empty lower dir: must hide the lower */
                r = upper_mkdir(u, &d, "fresh", 0755, 0, 0, &e);
                ok(r == 0, "mkdir fresh");
                struct upper_dir hd = D("home/user");
                ok(upper_unlink(u, &hd, "notes") == 0, "empty home/user");
                hd = D("home");
                r = upper_rename(u, &d, "fresh", &hd, "user", 0);
                ok(r == 0 && !exists("home/user", "notes"), "upper dir over an empty lower dir (%s)", strerror(-r));
                ok(is_wh("fresh") == false && !exists("", "fresh"), "source name gone without a whiteout");
                /* a file over a lower file, then the lower name reads the moved data */
                d = D("usr/lib");
                dd = D("etc");
                r = upper_rename(u, &d, "libx.so.1", &dd, "passwd", 0);
                data = read_all("etc", "passwd", NULL);
                ok(r == 0 && data && strcmp(data, "ELF-ish") == 0, "file over a lower file");
                free(data);
                ok(is_wh("usr/lib/libx.so.1"), "and a whiteout where it was");
        }

        /* special files */
        {
                d = D("dev");
                ok(upper_mknod(u, &d, "zero", S_IFCHR | 0666, makedev(0, 0), 0, 0, &e) == -EPERM,
                   "mknod 0/0 char device: EPERM (would be a whiteout)");
                r = upper_mknod(u, &d, "ttyX", S_IFCHR | 0620, makedev(4, 1), 0, 5, &e);
                ok(r == 0 && S_ISCHR(e.st.st_mode) && e.st.st_rdev == makedev(4, 1) && e.st.st_gid == 5,
                   "mknod char device");
                r = upper_mknod(u, &d, "pipe", S_IFIFO | 0600, 0, 0, 0, &e);
                ok(r == 0 && S_ISFIFO(e.st.st_mode), "mkfifo");
                r = upper_symlink(u, &d, "link", "/nonexistent/../etc", 0, 0, &e);
                ok(r == 0 && S_ISLNK(e.st.st_mode), "symlink");
                struct upper_attr a = { .valid = UPPER_SET_MODE, .mode = 0600 };
                ok(upper_setattr(u, &d, "link", &a, &e) == -EOPNOTSUPP, "chmod of a symlink: EOPNOTSUPP");
                struct upper_attr o = { .valid = UPPER_SET_UID, .uid = 7 };
                r = upper_setattr(u, &d, "null", &o, &e);
                ok(r == 0 && e.st.st_uid == 7 && e.st.st_rdev == makedev(1, 3), "chown of a lower device copies it up");
        }

        /* nothing escapes the upper dir through a symlink planted in it */
        {
                char outside[1024], link[4096];
                snprintf(outside, sizeof(outside), "%s/outside", tmpl);
                mkdir(outside, 0755);
                snprintf(link, sizeof(link), "%s/evil", upath);
                symlink(outside, link);
                struct upper_dir ed = { "evil", true, TREE_ROOT };
                int fd;
                r = upper_create(u, &ed, "pwned", 0644, 0, 0, O_RDWR, &fd, &e);
                if (r == 0)
                        close(fd);
                char p[4096];
                snprintf(p, sizeof(p), "%s/pwned", outside);
                struct stat st;
                ok(r < 0 && lstat(p, &st) < 0, "create under a symlinked upper dir fails (%s), nothing outside",
                   strerror(-r));
                r = upper_mkdir(u, &ed, "d", 0755, 0, 0, &e);
                snprintf(p, sizeof(p), "%s/d", outside);
                ok(r < 0 && lstat(p, &st) < 0, "mkdir under it fails too");
                d = D("");
                struct upper_attr a = { .valid = UPPER_SET_MODE, .mode = 0700 };
                r = upper_setattr(u, &d, "evil", &a, &e);
                ok(lstat(outside, &st) == 0 && (st.st_mode & 07777) == 0755, "chmod of the link does not reach its target");
                unlink(link);
        }

        /* everything persists: reopen the upper and look again */
        upper_close(u);
        r = upper_open(s, t, upath, &u);
        ok(r == 0 && exists("etc", "shadow") && !exists("deep/a", "b") && exists("moved/c", "leaf") &&
                   !exists("", "tmp"),
           "state survives reopening the upper dir");

        /* a fresh container: the names of a lower hardlink set under renamed image dirs join the
         * set when it is copied up */
        fresh_upper(tmpl, "c2");
        {
                d = D("data");
                r = upper_rename(u, &d, "sub", &d, "sub2", 0);
                ok(r == 0, "rename an image dir that holds a name of a hardlink set");
                d = D("");
                r = upper_rename(u, &d, "data", &d, "d2", 0);
                ok(r == 0, "rename its parent too");
                int fd;
                bool lower;
                d = D("d2");
                r = upper_open_file(u, &d, "hl1", O_WRONLY, &fd, &lower);
                ok(r == 0 && !lower, "open one name for writing (copy-up)");
                if (r == 0) {
                        ok(pwrite(fd, "NEW", 3, 0) == 3, "write through it");
                        close(fd);
                }
                char *data = read_all("d2/sub2", "hl2", NULL);
                ok(data && strncmp(data, "NEWdlinked", 10) == 0, "the name under the renamed dir sees the write");
                free(data);
                struct upper_ent e1, e2, e3;
                struct upper_dir d1 = D("d2"), ds = D("d2/sub2");
                ok(upper_lookup(u, &d1, "hl1", &e1) == 0 && upper_lookup(u, &ds, "hl2", &e2) == 0 &&
                           upper_lookup(u, &d1, "hl3", &e3) == 0 && e1.in_upper && e2.in_upper && e3.in_upper &&
                           e1.st.st_ino == e2.st.st_ino && e1.st.st_ino == e3.st.st_ino && e2.st.st_nlink == 3,
                   "one upper inode for the three names, nlink 3");
        }

        /* unlinking or replacing a name of a lower hardlink set: the others' nlink follows */
        fresh_upper(tmpl, "c3");
        {
                d = D("data");
                ok(upper_unlink(u, &d, "hl3") == 0, "unlink a lower name of a set");
                struct upper_dir ds = D("data/sub");
                ok(upper_lookup(u, &d, "hl1", &e) == 0 && e.st.st_nlink == 2 && upper_lookup(u, &ds, "hl2", &e) == 0 &&
                           e.st.st_nlink == 2,
                   "the other names show nlink 2 (%d)", (int)e.st.st_nlink);
                struct upper_dir db = D("bin");
                ok(upper_rename(u, &db, "su", &d, "hl1", 0) == 0, "rename over another name of the set");
                ok(upper_lookup(u, &ds, "hl2", &e) == 0 && e.st.st_nlink == 1, "the last name shows nlink 1 (%d)",
                   (int)e.st.st_nlink);
                char *data = read_all("data/sub", "hl2", NULL);
                ok(data && strcmp(data, "hardlinked\n") == 0, "and still reads the set's data");
                free(data);
        }

        /* xattr changes of lower files copy no data; image dirs renamed over an empty image dir
         * and over one emptied in the container */
        fresh_upper(tmpl, "c3b");
        {
                char v[64];
                struct stat st;
                d = D("data");
                r = upper_setxattr(u, &d, "big", "user.big", "1", 1, 0);
                ok(r == 0 && ugetx("data/big", "trusted.overlay.metacopy", v, sizeof(v)) == 0 &&
                           ulstat("data/big", &st) == 0 && st.st_blocks < 64,
                   "setxattr on a big lower file: a metacopy, no data copied (%s)", strerror(-r));
                bool lower = false;
                char *data = read_all("data", "big", &lower);
                ok(data && lower && data[0] == 'a' && data[25] == 'z', "  it reads the lower data");
                free(data);
                ok(upper_removexattr(u, &d, "big", "user.big") == 0 &&
                           upper_getxattr(u, &d, "big", "user.big", v, sizeof(v)) == -ENODATA,
                   "removexattr: the attribute is gone");
                ok(upper_removexattr(u, &d, "big", "user.big") == -ENODATA, "removexattr of an absent one: ENODATA");
                d = D("etc");
                r = upper_removexattr(u, &d, "passwd", "user.comment");
                ok(r == 0 && upper_getxattr(u, &d, "passwd", "user.comment", v, sizeof(v)) == -ENODATA &&
                           ugetx("etc/passwd", "trusted.overlay.metacopy", v, sizeof(v)) == 0,
                   "removexattr of a lower file's attribute: gone, a metacopy (%s)", strerror(-r));

                d = D("usr");
                struct upper_dir dd = D("");
                r = upper_rename(u, &d, "lib", &dd, "tmp", 0);
                ok(r == 0 && ugetx("tmp", "trusted.overlay.redirect", v, sizeof(v)) > 0 && strcmp(v, "/usr/lib") == 0 &&
                           is_wh("usr/lib"),
                   "an image dir over an empty image dir: redirect, whiteout at the old name (%s)", strerror(-r));
                ok(exists("tmp", "libx.so") && listed("tmp", "libx.so.1") && !exists("usr", "lib"),
                   "  its entries there, the old name gone");
                d = D("opt/app/lib");
                ok(upper_unlink(u, &d, "mod") == 0, "empty an image dir");
                d = D("deep/a/b");
                dd = D("opt/app");
                r = upper_rename(u, &d, "c", &dd, "lib", 0);
                ok(r == 0 && exists("opt/app/lib", "leaf") && !exists("opt/app/lib", "mod") &&
                           !listed("opt/app/lib", "mod") && !exists("deep/a/b", "c"),
                   "an image dir over an emptied image dir: its entries only (%s)", strerror(-r));
        }

        /* copy-ups of big files in the background (upper_copy.h) */
        fresh_upper(tmpl, "c4");
        {
                char *want = read_all("data", "big", NULL); /* the image's bytes */
                d = D("data");
                struct stat ist;
                ok(upper_stat(u, &d, "big", &ist) == 0, "stat of the image file");
                int fd;
                bool lower = true;
                r = upper_open_file(u, &d, "big", O_WRONLY, &fd, &lower);
                ok(r == 0 && !lower, "open a big image file for writing");
                upper_copy *c = r == 0 ? upper_copy_of(u, fd) : NULL;
                ok(upper_copy_wait(c) == 0, "its copy ends well");
                upper_copy_put(c);
                if (r == 0)
                        close(fd);
                char *got = read_all("data", "big", &lower);
                ok(!lower && got && want && memcmp(got, want, FX_BIG_SIZE) == 0, "the upper file holds the image's bytes");
                free(got);
                char v[256];
                ok(ugetx("data/big", COPY_MARK, v, sizeof(v)) < 0, "no mark left");
                struct stat st;
                ok(ulstat("data/big", &st) == 0 && st.st_mtim.tv_sec == ist.st_mtim.tv_sec &&
                           st.st_mtim.tv_nsec == ist.st_mtim.tv_nsec,
                   "the image's mtime (the copy is not a change)");
                free(want);
        }
        /* what a crash leaves: marked files with holes, named in the work dir; the next
         * upper_open copies them (tmpl/c5) */
        fresh_upper(tmpl, "c5");
        {
                char *want = read_all("data", "big", NULL);
                d = D("data");
                ok(upper_lookup(u, &d, "big", &e) == 0 && !e.in_upper, "the image file");
                const struct tree_inode *ti = tree_get(t, e.lower);
                char wpath[2048], p[4096], entry[6][COPY_ENTRY_MAX];
                snprintf(wpath, sizeof(wpath), "%s/c5/work", tmpl);
                int wfd = open(wpath, O_PATH | O_DIRECTORY | O_CLOEXEC);
                const char *names[6] = { "crashed", "removed", "finished", "orphan", "opened", "zero" };
                uint8_t nowhere[DIGEST_LEN];
                memset(nowhere, 0xee, sizeof(nowhere));
                for (int k = 0; k < 6; k++) {
                        snprintf(p, sizeof(p), "%s/%s", upath, names[k]);
                        int fd = open(p, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
                        ok(fd >= 0 && ftruncate(fd, FX_BIG_SIZE) == 0 &&
                                   upper_copy_prepare(fd, wfd, k == 3 ? nowhere : ti->digest, FX_BIG_SIZE, entry[k]) == 0,
                           "a marked file with holes, named in the work dir (%s)", names[k]);
                        struct timespec ts[2] = { { 1234, 0 }, { 1234, 5 } };
                        futimens(fd, ts);
                        if (k == 2)
                                fremovexattr(fd, COPY_MARK); /* its copy was done */
                        if (k == 5) {
                                /* a mark that says size 0, on a 64 MiB file whose object is gone:
                                 * the failed copy covers the file's size (its chunk states too) */
                                char m[128], hex[DIGEST_HEX_LEN + 1];
                                digest_to_hex(nowhere, hex);
                                int n = snprintf(m, sizeof(m), "%s 0", hex);
                                ok(ftruncate(fd, 64 << 20) == 0 && fsetxattr(fd, COPY_MARK, m, (size_t)n, 0) == 0,
                                   "  a 64 MiB file whose mark says size 0");
                        }
                        if (k == 4) {
                                /* the container had its (one) chunk opened, and wrote there */
                                char m[256];
                                ssize_t n = fgetxattr(fd, COPY_MARK, m, sizeof(m) - 4);
                                ok(n > 0 && pwrite(fd, "MINE", 4, 0) == 4 && (memcpy(m + n, " 01", 3), 1) &&
                                           fsetxattr(fd, COPY_MARK, m, (size_t)n + 3, 0) == 0,
                                   "  its mark names chunk 0 open, with a write there");
                        }
                        close(fd);
                }
                snprintf(p, sizeof(p), "%s/removed", upath);
                unlink(p);
                upper_close(u);
                u = NULL;
                ok(upper_open(s, t, upath, &u) == 0, "open the upper dir again");
                char *got = read_all("", "crashed", NULL);
                ok(got && want && memcmp(got, want, FX_BIG_SIZE) == 0, "the crashed copy was done: the image's bytes");
                free(got);
                char v[256];
                struct stat st;
                ok(ugetx("crashed", COPY_MARK, v, sizeof(v)) < 0, "  its mark removed");
                ok(ulstat("crashed", &st) == 0 && st.st_mtim.tv_sec == 1234 && st.st_mtim.tv_nsec == 5,
                   "  its mtime kept");
                for (int k = 0; k < 3; k++) {
                        snprintf(p, sizeof(p), "%s/%s", wpath, entry[k]);
                        ok(access(p, F_OK) < 0, "  no entry left in the work dir (%s)", names[k]);
                }
                got = read_all("", "finished", NULL);
                ok(got && got[0] == 0 && got[FX_BIG_SIZE - 1] == 0, "a file whose copy was done is left alone");
                free(got);
                got = read_all("", "opened", NULL);
                ok(got && memcmp(got, "MINE", 4) == 0 && got[FX_BIG_SIZE - 1] == 0 && want && want[FX_BIG_SIZE - 1] != 0,
                   "a chunk the container had opened is not copied over (its write stays, its holes too)");
                free(got);
                ok(ugetx("opened", COPY_MARK, v, sizeof(v)) < 0, "  its mark removed");
                /* its object gone: it stays marked, and a failed copy says how to read it */
                struct upper_dir top = D("");
                upper_copy *c = upper_copy_at(u, &top, "orphan");
                off_t sz = 0;
                int obj = 0;
                ok(c && upper_copy_reading(c, 0, &sz, &obj) && sz == FX_BIG_SIZE && obj < 0,
                   "a copy that cannot be done (no object): reads of its image part fail");
                ok(upper_copy_wait(c) == -EIO, "  and changes there fail with EIO");
                upper_copy_put(c);
                c = upper_copy_at(u, &top, "zero");
                ok(c && upper_copy_reading(c, 60 << 20, &sz, &obj) && sz == 64 << 20 && obj < 0 &&
                           upper_copy_open(c, 60 << 20, 1) == -EIO,
                   "a mark of size 0 on a bigger file: all of it fails the same way");
                upper_copy_put(c);
                ok(ugetx("orphan", COPY_MARK, v, sizeof(v)) > 0, "  it stays marked");
                snprintf(p, sizeof(p), "%s/%s", wpath, entry[3]);
                ok(access(p, F_OK) == 0, "  and named in the work dir, for the next try");
                close(wfd);
                free(want);
        }

        /* the copy thread itself, on a 128 MiB object: asked to stop (its container was
         * removed) it ends at its next chunk, without its fsync, still marked and named in the
         * work dir, for upper_copies_recover; given a deadline (the daemon exiting) it stops
         * there; a file unlinked meanwhile is not copied on */
        {
                char objp[1024], wdir[1024];
                snprintf(objp, sizeof(objp), "%s/obj", tmpl);
                snprintf(wdir, sizeof(wdir), "%s/c5/work", tmpl);
                int ofd = open(objp, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
                char *block = xmalloc(1 << 20);
                bool written = ofd >= 0;
                for (int k = 0; written && k < (BIG_COPY >> 20); k++) {
                        memset(block, 'a' + k % 26, 1 << 20);
                        written = pwrite(ofd, block, 1 << 20, (off_t)k << 20) == 1 << 20;
                }
                free(block);
                close(ofd);
                ok(written, "a %d MiB object", BIG_COPY >> 20);
                int wfd = open(wdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                char v[128], ep[2048], dst[1024];
                struct upper_copy_job j;
                upper_copies *cs = upper_copies_new();

                upper_copy *c = start_copy(cs, tmpl, "stopped", objp, wfd, &j, dst);
                upper_copies_stop(cs);
                ok(c && upper_copy_wait(c) == -EIO, "asked to stop, a copy ends without copying it all");
                upper_copy_put(c);
                ok(getxattr(dst, COPY_MARK, v, sizeof(v)) > 0, "  the file stays marked");
                snprintf(ep, sizeof(ep), "%s/%s", wdir, j.entry);
                ok(access(ep, F_OK) == 0, "  and named in the work dir");

                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
                c = start_copy(cs, tmpl, "deadline", objp, wfd, &j, dst);
                ok(upper_copies_finish(cs, ms) == 1, "a copy not done by the exit's deadline stops");
                ok(c && upper_copy_wait(c) == -EIO && getxattr(dst, COPY_MARK, v, sizeof(v)) > 0, "  marked");
                upper_copy_put(c);
                c = start_copy(cs, tmpl, "finished", objp, wfd, &j, dst);
                ok(upper_copies_finish(cs, ms + 60000) == 0, "one given time ends");
                ok(c && upper_copy_wait(c) == 0 && getxattr(dst, COPY_MARK, v, sizeof(v)) < 0, "  well, unmarked");
                upper_copy_put(c);

                c = start_copy(cs, tmpl, "unlinked", objp, wfd, &j, dst);
                int pfd = open(dst, O_PATH | O_CLOEXEC); /* to see its blocks afterwards */
                unlink(dst);
                upper_copy_put(c); /* (an open file would hold it, and its data is needed) */
                clock_gettime(CLOCK_MONOTONIC, &now);
                upper_copies_finish(cs, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 60000);
                struct stat ust;
                ok(fstat(pfd, &ust) == 0 && ust.st_blocks * 512 < BIG_COPY / 2,
                   "a file unlinked during its copy, open nowhere, is not copied on (%lld of %d MiB)",
                   (long long)(ust.st_blocks * 512) >> 20, BIG_COPY >> 20);
                ok(upper_copies_get(cs, j.dev, j.ino) == NULL, "  and its copy is let go");
                close(pfd);
                snprintf(ep, sizeof(ep), "%s/%s", wdir, j.entry);
                ok(access(ep, F_OK) < 0, "  nor named in the work dir");
                /* a write below the size waits for its chunks only: with the copy held after its
                 * first chunk (the test holds the lock it takes between chunks), the last chunk is
                 * copied and opened for the write (named in the mark), and the copy goes on
                 * around it */
                c = start_copy(cs, tmpl, "opened", objp, wfd, &j, dst);
                upper_copy_lock(c);
                off_t at = BIG_COPY - 100, end = 0;
                int o = -1;
                ok(c && upper_copy_open(c, at, 50) == 0, "a write below the size of a copy under way: its chunk opened");
                ok(upper_copy_active(c), "  before the copy's end");
                ok(!upper_copy_reading(c, at, &end, &o) && end == INT64_MAX, "  reads there from the upper file");
                ok(upper_copy_reading(c, 5 << 20, &end, &o) && o >= 0 && end == BIG_COPY - COPY_CHUNK,
                   "  elsewhere from the object, up to that chunk");
                int wr = open(dst, O_WRONLY | O_CLOEXEC);
                ok(wr >= 0 && pwrite(wr, "WRITTEN", 7, at) == 7, "  the write");
                close(wr);
                ssize_t vn = getxattr(dst, COPY_MARK, v, sizeof(v) - 1);
                v[vn > 0 ? vn : 0] = '\0';
                const char *bits = strrchr(v, ' ');
                unsigned b0 = 0, b1 = 0, b3 = 0;
                ok(bits && strlen(bits) == 9 && sscanf(bits, " %2x%2x%*2x%2x", &b0, &b1, &b3) == 3 && (b3 & 0x80) && b1 == 0,
                   "  the mark names the last chunk open, not the middle ones (%s)", bits ? bits : "none");
                upper_copy_unlock(c, NULL);
                ok(upper_copy_wait(c) == 0 && getxattr(dst, COPY_MARK, v, sizeof(v)) < 0, "  the copy ends, unmarked");
                upper_copy_put(c);
                {
                        char *obj_data = xmalloc(BIG_COPY), *file = xmalloc(BIG_COPY);
                        int ofd2 = open(objp, O_RDONLY | O_CLOEXEC), dfd = open(dst, O_RDONLY | O_CLOEXEC);
                        bool same = util_pread_all(ofd2, obj_data, BIG_COPY, 0) == BIG_COPY &&
                                    util_pread_all(dfd, file, BIG_COPY, 0) == BIG_COPY;
                        memcpy(obj_data + at, "WRITTEN", 7);
                        ok(same && memcmp(obj_data, file, BIG_COPY) == 0, "  the object's bytes with the write (not copied over)");
                        close(ofd2);
                        close(dfd);
                        free(obj_data);
                        free(file);
                }
                upper_copies_free(cs);
                close(wfd);
        }

        upper_close(u);
        tree_close(t);
        store_close(s);
        util_rm_rf_at(AT_FDCWD, tmpl);
        return tap_done();
}
