#!/bin/bash
# Container views on a real mount: every write operation and its error codes, as root and as
# another user; the upper dir read back by the kernel's own overlayfs (same tree); persistence
# across umount and across a daemon killed with SIGKILL; concurrent writers and readers; a
# symlink-swap race that must not make the daemon touch anything outside the upper dir.
. "$(dirname "$0")/lib.sh"
require_root

DRIVER=${FUSE_DRIVER:-$(dirname "$CTFS")/../tests/fuse-driver}
[[ -x $DRIVER ]] || skip_all "no fuse-driver at $DRIVER"
fmount() { ctfs mount "$@"; }
fumount() { ctfs umount "$@"; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
chmod 0711 "$TMP"
MNT=$TMP/mnt

read -r image_id cid < <("$DRIVER" mkstore "$CTFS_ROOT") || bail_out "cannot make the fixture store"
upper=$CTFS_ROOT/containers/$cid/upper
t_ok "mount" fmount "$MNT"
img=$MNT/images/localhost/test:v1
C=$MNT/containers/$cid
t_is "containers/web is a symlink to the id" "$(readlink "$MNT/containers/web")" "$cid"
t_ok "the container shows the image" "$TREECMP" --no-root "$img" "$C"

# errno NAME CMD...: CMD fails and its message names the error.
errno_is() {
	local want=$1
	shift
	t_fail "$* fails with $want" "$@"
	t_like "  ($want)" "$(cat "$T_OUT")" "$want"
}
# py CODE: a small python program (for calls the shell has no tool for)
py() { python3 -c "$@"; }

# --- writes ----------------------------------------------------------------------------------
t_ok "create and write" sh -c "echo hello > '$C/etc/new'"
t_is "read back" "$(cat "$C/etc/new")" hello
t_ok "append (O_APPEND)" sh -c "echo more >> '$C/etc/new'"
t_is "appended" "$(cat "$C/etc/new")" $'hello\nmore'
errno_is "File exists" py "import os; os.open('$C/etc/new', os.O_WRONLY | os.O_CREAT | os.O_EXCL)"
t_ok "O_TRUNC of an image file" sh -c "echo short > '$C/etc/passwd'"
t_is "truncated and rewritten" "$(cat "$C/etc/passwd")" short
t_ok "truncate -s" truncate -s 3 "$C/etc/new"
t_is "truncated" "$(cat "$C/etc/new")" hel
t_ok "fallocate" fallocate -l 1M "$C/etc/new"
t_is "fallocated size" "$(stat -c %s "$C/etc/new")" 1048576
t_ok "fallocate -n (FALLOC_FL_KEEP_SIZE) past the end" fallocate -n -o 1M -l 1M "$C/etc/new"
t_is "  the size is kept, the blocks are there" "$(stat -c %s "$C/etc/new") $(($(stat -c %b "$C/etc/new") >= 4096))" "1048576 1"
t_ok "unlink an image file" rm "$C/bin/su"
errno_is "No such file" stat "$C/bin/su"
t_ok "mkdir -p" mkdir -p "$C/a/b/c"
t_ok "rmdir" rmdir "$C/a/b/c"
errno_is "not empty" rmdir "$C/etc"
errno_is "Not a directory" rmdir "$C/bin/sh"
errno_is "File exists" mkdir "$C/etc"
errno_is "Is a directory" sh -c "echo x > '$C/etc'"
errno_is "Not a directory" ls "$C/bin/sh/x"
# (python's os.rename, not mv: mv copies and unlinks on EXDEV, which would hide it)
t_ok "rename a file" py "import os; os.rename('$C/etc/new', '$C/etc/new2')"
errno_is "No such file" stat "$C/etc/new"
t_is "  the new name has the data" "$(head -c 3 "$C/etc/new2") $(stat -c %s "$C/etc/new2")" "hel 1048576"
t_ok "rename an image dir (never EXDEV)" py "import os; os.rename('$C/opt/app', '$C/app-moved')"
t_is "its contents moved" "$(cat "$C/app-moved/conf")" conf=1
errno_is "No such file" stat "$C/opt/app"
# (tmp is an empty dir of the image)
t_ok "rename an image dir over an empty image dir" py "import os; os.rename('$C/usr/lib', '$C/tmp')"
t_is "  the moved dir is there: its entries and mode" "$(ls "$C/tmp" | tr '\n' ' ')$(stat -c %a "$C/tmp")" "abs libx.so libx.so.1 755"
t_is "  its symlink" "$(readlink "$C/tmp/libx.so")" libx.so.1
errno_is "No such file" stat "$C/usr/lib"
errno_is "not empty" py "import os; os.rename('$C/home', '$C/data')"
t_ok "  both dirs unchanged" test -f "$C/home/user/notes" -a -f "$C/data/hl1"
cat >"$TMP/renameat2.py" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
flags = {"noreplace": 1, "exchange": 2}[sys.argv[1]]
if libc.renameat2(-100, sys.argv[2].encode(), -100, sys.argv[3].encode(), flags) != 0:
    print(os.strerror(ctypes.get_errno()))
    sys.exit(1)
EOF
renameat2() { python3 "$TMP/renameat2.py" "$@"; }
errno_is "File exists" renameat2 noreplace "$C/etc/new2" "$C/etc/passwd"
t_ok "RENAME_EXCHANGE of an image dir and an upper dir" renameat2 exchange "$C/deep" "$C/a"
t_ok "  exchanged" test -e "$C/a/a/b/c/leaf" -a -d "$C/deep/b"
# an image dir made empty in the container (its entry whited out) and another moved over it:
# the whiteout must not bring the old entry back, nor hide the moved ones
t_ok "empty an image dir in the container" rm "$C/app-moved/lib/mod"
t_ok "rename an image dir over it" py "import os; os.rename('$C/a/a/b/c', '$C/app-moved/lib')"
t_is "  only the moved dir's entries there" "$(ls -A "$C/app-moved/lib")" leaf
t_is "  with their data" "$(cat "$C/app-moved/lib/leaf")" leaf
errno_is "No such file" stat "$C/a/a/b/c"
t_ok "rename an image file to another dir (never EXDEV)" py "import os; os.rename('$C/a/a/sibling', '$C/etc/sibling')"
t_is "  its data" "$(cat "$C/etc/sibling")" sib
errno_is "No such file" stat "$C/a/a/sibling"
# An unlinked upper file's inode number comes back for the next file the upper dir gets (the
# copy-up of the hardlink set below): the new file must not take the old one's identity.
for i in $(seq 30); do echo "$i" >"$C/etc/f$i"; done
stat "$C"/etc/f* >/dev/null
rm "$C"/etc/f*
t_ok "link to an image file" ln "$C/data/hl1" "$C/data/hl9"
t_is "  the whole set: one inode, nlink 4" "$(stat -c '%i %h' "$C/data/hl1" "$C/data/sub/hl2" "$C/data/hl3" "$C/data/hl9" | sort -u | wc -l) $(stat -c %h "$C/data/hl9")" "1 4"
for i in $(seq 30); do echo "$i" >"$C/etc/g$i"; done
t_is "  new files after unlinks: each its own inode number" "$(stat -c %i "$C"/etc/g* "$C/data/hl1" | sort -u | wc -l)" 31
rm "$C"/etc/g*
t_ok "write through a link" sh -c "echo changed > '$C/data/hl9'"
t_is "  seen through the others" "$(cat "$C/data/hl1" "$C/data/sub/hl2")" $'changed\nchanged'
# every name of a hardlink set is one inode for the kernel: link counts and page cache shared
stat "$C/data/hl1" "$C/data/sub/hl2" "$C/data/hl3" >/dev/null # attributes cached by the kernel
t_ok "link again" ln "$C/data/hl1" "$C/data/hl10"
t_is "  nlink through another name, at once" "$(stat -c %h "$C/data/sub/hl2")" 5
t_ok "unlink a name" rm "$C/data/hl10"
t_is "  nlink through the others, at once" "$(stat -c %h "$C/data/sub/hl2") $(stat -c %h "$C/data/hl3")" "4 4"
t_ok "mmap through one name sees a write through another" py "
import mmap, os
a = os.open('$C/data/hl1', os.O_RDWR); b = os.open('$C/data/sub/hl2', os.O_RDWR)
m = mmap.mmap(a, 7, mmap.MAP_SHARED)
assert m[0:7] == b'changed', m[0:7]
os.pwrite(b, b'CHANGED', 0)
assert m[0:7] == b'CHANGED', m[0:7]
m[0:1] = b'X'; m.flush()
assert os.pread(b, 7, 0) == b'XHANGED', os.pread(b, 7, 0)
m.close(); os.close(a); os.close(b)"
t_is "  and read(2) through a third name" "$(cat "$C/data/hl3")" XHANGED
t_ok "symlink" ln -s ../etc/passwd "$C/bin/pw"
t_is "  target" "$(readlink "$C/bin/pw")" ../etc/passwd
t_ok "mkfifo" mkfifo "$C/fifo"
t_is "  a fifo" "$(stat -c %F "$C/fifo")" fifo
t_ok "mknod" mknod "$C/dev/tty9" c 4 9
t_is "  device numbers" "$(stat -c '%F %t %T' "$C/dev/tty9")" "character special file 4 9"
t_ok "mknod of a block device" mknod "$C/dev/loop1" b 7 1
t_is "  type and device numbers" "$(stat -c '%F %t %T' "$C/dev/loop1")" "block special file 7 1"
t_ok "chmod (setuid)" chmod 4711 "$C/bin/sh"
t_is "  mode" "$(stat -c %a "$C/bin/sh")" 4711
t_ok "security.capability of an image file" getfattr -n security.capability "$C/usr/bin/ping"
t_ok "chown" chown 12:34 "$C/usr/bin/ping"
t_is "  owner" "$(stat -c %u:%g "$C/usr/bin/ping")" 12:34
t_ok "utimens" py "import os; os.utime('$C/data/big', (1234567890, 1234567890), follow_symlinks=False)"
t_is "  mtime" "$(stat -c %Y "$C/data/big")" 1234567890
t_ok "  no data copied for a metadata change" test "$(stat -c %b "$upper/data/big")" -lt 64
# atime too, nanoseconds, and UTIME_OMIT (touch -a / -m leave the other time alone) and UTIME_NOW,
# on an image file: in the view and in the upper dir
t_ok "utimens with nanoseconds" py "import os; os.utime('$C/data/empty', ns=(1111111111222333444, 1234567890987654321))"
t_is "  atime and mtime, in the view and the upper dir" "$(stat -c '%.9X %.9Y' "$C/data/empty" "$upper/data/empty" | sort -u)" \
	"1111111111.222333444 1234567890.987654321"
t_ok "touch -a: atime only (mtime UTIME_OMIT)" touch -a -d @1500000000.5 "$C/data/empty"
t_is "  the mtime kept" "$(stat -c '%.9X %.9Y' "$C/data/empty" "$upper/data/empty" | sort -u)" \
	"1500000000.500000000 1234567890.987654321"
t_ok "touch -m: mtime only" touch -m -d @1500000001.25 "$C/data/empty"
t_is "  the atime kept" "$(stat -c '%.9X %.9Y' "$C/data/empty" "$upper/data/empty" | sort -u)" \
	"1500000000.500000000 1500000001.250000000"
t_ok "touch -m without a time: mtime UTIME_NOW, atime UTIME_OMIT" touch -m "$C/data/empty"
now=$(date +%s)
read -r atime mtime < <(stat -c '%.9X %Y' "$C/data/empty")
t_is "  the atime kept, the mtime now" "$atime $((mtime >= now - 5 && mtime <= now))" "1500000000.500000000 1"

# --- inode numbers stay while the kernel forgets and looks up again: a new file, a copied-up
# file, metadata-only copy-ups, a renamed image dir and a file in it, an image dir renamed over
# another, a copied-up hardlink set with a new name, an untouched image file -------------------
t_ok "usr/bin/ping and data/big are metacopies in the upper dir" getfattr -n trusted.overlay.metacopy "$upper/usr/bin/ping" "$upper/data/big"
inos=("$C/etc/new2" "$C/etc/passwd" "$C/usr/bin/ping" "$C/data/big" "$C/app-moved" "$C/app-moved/conf" "$C/tmp"
	"$C/tmp/libx.so.1" "$C/data/hl1" "$C/data/sub/hl2" "$C/data/hl3" "$C/data/hl9" "$C/etc/shadow")
stat -c '%i %n' "${inos[@]}" >"$TMP/ino.before"
sync
echo 3 >/proc/sys/vm/drop_caches
stat -c '%i %n' "${inos[@]}" >"$TMP/ino.after"
t_ok "container inode numbers are the same after the kernel dropped its inodes" diff "$TMP/ino.before" "$TMP/ino.after"
t_is "  the names of the hardlink set, looked up again, share one" "$(grep -c "^$(stat -c %i "$C/data/hl1") " "$TMP/ino.after")" 4
# container files keep their page cache across opens (every change goes through the kernel):
# a copy-up between opens, and truncation, must still never serve stale pages
cat "$C/etc/shadow" >/dev/null
t_is "the page cache of a container file is kept across opens" "$(fincore -b -n -o RES "$C/etc/shadow" | tr -d " ")" 4096
t_ok "reads after a copy-up through another fd see the written data, not cached lower pages" py "
import os
p = '$C/data/big'
size = 4 << 20
r1 = os.open(p, os.O_RDONLY)
lower = os.pread(r1, size, 0) # the lower data, now in the page cache
assert lower[:3] == b'abc' and len(lower) == size, lower[:3]
w = os.open(p, os.O_RDWR) # copies the data up
os.pwrite(w, b'XYZ', 0)
os.pwrite(w, b'tail', size - 4)
r2 = os.open(p, os.O_RDONLY)
assert os.pread(r2, 3, 0) == b'XYZ', os.pread(r2, 3, 0)
assert os.pread(r2, 4, size - 4) == b'tail'
assert os.pread(r2, size - 7, 3) == lower[3:size - 4], 'the copied data'
assert os.pread(r1, 3, 0) == b'XYZ', 'the fd opened before the copy-up'
os.close(w)
os.truncate(p, 10)
r3 = os.open(p, os.O_RDONLY)
assert os.pread(r3, 100, 0) == b'XYZ' + lower[3:10], os.pread(r3, 100, 0)
w = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(w, b'new')
os.close(w)
assert os.pread(r1, 100, 0) == b'new', os.pread(r1, 100, 0)
for fd in (r1, r2, r3):
    os.close(fd)"
t_is "  and a later open reads the same" "$(cat "$C/data/big")" new
# The first change of an image file an open fd reads being O_TRUNC (the copy-up keeps no data):
# the fd reads what was written, not the image's bytes (it did up to 03abc: the truncating
# copy-up did not move readers)
tc=$("$DRIVER" container "$CTFS_ROOT" trunc) || bail_out "cannot make a container"
t_ok "a reader of an image file sees it truncated and rewritten through another fd" py "
import os
for p in ('$MNT/containers/$tc/etc/passwd', '$MNT/containers/$tc/data/hl1'):
    r = os.open(p, os.O_RDONLY)
    old = os.pread(r, 100, 0) # (in the page cache now)
    assert len(old) > 3, old
    w = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(w, b'new')
    os.close(w)
    assert os.pread(r, 100, 0) == b'new', os.pread(r, 100, 0)
    os.close(r)"
t_ok "setxattr" setfattr -n user.k -v v "$C/etc/new2"
t_is "  getxattr" "$(getfattr --only-values -n user.k "$C/etc/new2")" v
t_ok "removexattr" setfattr -x user.k "$C/etc/new2"
errno_is "No such attribute" getfattr -n user.k "$C/etc/new2"
errno_is "No data available" py "import os; os.removexattr('$C/etc/new2', 'user.absent')"
t_ok "fsync" py "import os; fd = os.open('$C/etc/new2', os.O_RDWR); os.write(fd, b'x'); os.fsync(fd); os.close(fd)"
t_ok "statfs" stat -f "$C"
t_is "  the upper dir's filesystem: block size, blocks, inodes, name length" "$(stat -f -c '%S %b %c %l' "$C")" "$(stat -f -c '%S %b %c %l' "$upper")"
t_ok "shared writable mmap" py "
import mmap, os
fd = os.open('$C/etc/mm', os.O_RDWR | os.O_CREAT, 0o644); os.ftruncate(fd, 4096)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED); m[0:5] = b'mmap!'; m.flush(); m.close(); os.close(fd)"
t_is "  visible to read(2)" "$(head -c 5 "$C/etc/mm")" 'mmap!'
t_ok "a file named .wh.sh is ordinary" sh -c "echo x > '$C/bin/.wh.sh' && test -f '$C/bin/sh'"

# --- metadata changes of a big image file copy no data (the upper file is a metacopy: the
# image's size in a hole, and trusted.overlay.metacopy), and the view still reads the image's
# bytes; each in a fresh container (the first change is the one that copies up) ----------------
for op in chmod chown setfattr; do
	mc=$("$DRIVER" container "$CTFS_ROOT" "meta-$op") || bail_out "cannot make a container"
	M=$MNT/containers/$mc
	mu=$CTFS_ROOT/containers/$mc/upper
	case $op in
	chmod)
		t_ok "chmod of a 4 MiB image file" chmod 0600 "$M/data/big"
		t_is "  mode" "$(stat -c %a "$M/data/big")" 600
		;;
	chown)
		t_ok "chown of a 4 MiB image file" chown 12:34 "$M/data/big"
		t_is "  owner" "$(stat -c %u:%g "$M/data/big")" 12:34
		;;
	setfattr)
		t_ok "setxattr on a 4 MiB image file" setfattr -n user.big -v 1 "$M/data/big"
		t_is "  the attribute" "$(getfattr --absolute-names --only-values -n user.big "$M/data/big")" 1
		;;
	esac
	t_ok "  no data copied: a metacopy with no blocks" sh -c "getfattr -n trusted.overlay.metacopy '$mu/data/big' && test \$(stat -c %b '$mu/data/big') -lt 64"
	t_ok "  the view reads the image's bytes" cmp "$img/data/big" "$M/data/big"
done
# (in the last one) an image file's attribute removed: gone, and still no data copied
t_ok "removexattr of an attribute from the image" setfattr -x user.comment "$M/etc/passwd"
errno_is "No such attribute" getfattr -n user.comment "$M/etc/passwd"
t_ok "  a metacopy" getfattr -n trusted.overlay.metacopy "$mu/etc/passwd"
t_ok "  with the image's data" cmp "$img/etc/passwd" "$M/etc/passwd"

# --- fallocate of image files: a data change, so the data is copied up first; -n keeps the
# size; a punched hole reads zeros there, and the image's bytes around it --------------------
fa=$("$DRIVER" container "$CTFS_ROOT" falloc) || bail_out "cannot make a container"
F=$MNT/containers/$fa
t_ok "fallocate -n of a 4 MiB image file, to 8 MiB" fallocate -n -l 8M "$F/data/big"
t_is "  the size is kept, the blocks are there" "$(stat -c %s "$F/data/big") $(($(stat -c %b "$F/data/big") >= 16384))" "4194304 1"
t_ok "  the image's bytes" cmp "$img/data/big" "$F/data/big"
t_ok "punch a hole in the copied-up file" fallocate --punch-hole -o 4096 -l 8192 "$F/data/big"
t_is "  zeros there" "$(tail -c +4097 "$F/data/big" | head -c 8192 | tr -d '\0' | wc -c)" 0
t_ok "  the image's bytes before and after it" sh -c "cmp -n 4096 '$img/data/big' '$F/data/big' && cmp -i 12288 '$img/data/big' '$F/data/big'"
t_is "  the size is kept" "$(stat -c %s "$F/data/big")" 4194304

# --- another user ----------------------------------------------------------------------------
errno_is "Permission denied" nobody sh -c "echo x > '$C/etc/nobody'"
errno_is "Permission denied" nobody cat "$C/home/user/notes"
errno_is "Permission denied" nobody mkdir "$C/bin/x"
errno_is "Operation not permitted" nobody chmod 777 "$C/etc/new2"
# what only a file's owner (or root) may change, and changes without write permission
was=$(stat -c %u:%g:%a:%s:%Y "$C/etc/new2")
errno_is "Operation not permitted" nobody chown 65534 "$C/etc/new2"
errno_is "Operation not permitted" nobody /usr/bin/python3 -c "import os; os.utime('$C/etc/new2', (0, 0))"
errno_is "Permission denied" nobody touch "$C/etc/new2"
errno_is "Permission denied" nobody setfattr -n user.x -v 1 "$C/etc/new2"
errno_is "Permission denied" nobody truncate -s 0 "$C/etc/new2"
errno_is "Permission denied" nobody /usr/bin/python3 -c "import os; os.truncate('$C/etc/new2', 0)"
t_is "  the file is as it was" "$(stat -c %u:%g:%a:%s:%Y "$C/etc/new2")" "$was"
errno_is "No such attribute" getfattr -n user.x "$C/etc/new2"
t_ok "root makes a sticky dir" sh -c "mkdir -m 1777 '$C/shared' && echo root > '$C/shared/rootfile'"
t_ok "another user creates in it" nobody sh -c "echo x > '$C/shared/nobodyfile'"
t_is "  owned by that user" "$(stat -c %u:%g "$C/shared/nobodyfile")" 65534:65534
errno_is "Operation not permitted" nobody rm -f "$C/shared/rootfile"
# a setgid dir gives what another user makes in it the dir's group, and subdirs the setgid bit
# (as ext4 does)
t_ok "root makes a setgid dir of group 42" sh -c "mkdir '$C/sgid' && chown 0:42 '$C/sgid' && chmod 2777 '$C/sgid'"
t_ok "another user makes a file and a dir in it" nobody sh -c "umask 022; echo x > '$C/sgid/f' && mkdir '$C/sgid/d'"
t_is "  the file has the dir's group" "$(stat -c %u:%g:%a "$C/sgid/f")" 65534:42:644
t_is "  the subdir has the dir's group and the setgid bit" "$(stat -c %u:%g:%a "$C/sgid/d")" 65534:42:2755
t_is "  so in the upper dir" "$(stat -c %u:%g:%a "$upper/sgid/f" "$upper/sgid/d" | tr '\n' ' ')" "65534:42:644 65534:42:2755 "
# new files are made in their upper parent (O_TMPFILE, owner and mode set, then linkat), over a
# whiteout through the work dir: never visible with another owner or mode, nothing left behind
user1000() { setpriv --reuid=1000 --regid=1000 --clear-groups "$@"; }
t_ok "another user creates a file with umask 077" nobody sh -c "umask 077; echo x > '$C/shared/private'"
t_is "  owner and mode in the view" "$(stat -c %u:%g:%a "$C/shared/private")" 65534:65534:600
t_is "  and in the upper dir" "$(stat -c %u:%g:%a "$upper/shared/private")" 65534:65534:600
t_ok "the owner of an image file removes it (a whiteout)" user1000 rm "$C/home/user/notes"
t_is "  a whiteout in the upper dir" "$(stat -c %F:%t:%T "$upper/home/user/notes")" "character special file:0:0"
# (set -C: the shell opens with O_CREAT | O_EXCL)
t_ok "  and creates it again with O_EXCL" user1000 sh -c "set -C; umask 027; echo mine > '$C/home/user/notes'"
t_is "  owner and mode" "$(stat -c %u:%g:%a "$C/home/user/notes")" 1000:1000:640
t_is "  the whiteout replaced by the file" "$(stat -c %F:%u:%g:%a "$upper/home/user/notes")" "regular file:1000:1000:640"
t_is "  the new contents, not the image's" "$(cat "$C/home/user/notes")" mine
errno_is "File exists" user1000 sh -c "set -C; echo again > '$C/home/user/notes'"
t_is "nothing left in the work dir" "$(ls -A "$CTFS_ROOT/containers/$cid/work" | wc -l)" 0

# --- the kernel's overlayfs reads the same tree from the upper dir ---------------------------
cp -a "$upper" "$TMP/upper-copy"
mkdir -p "$TMP/ovl-work" "$TMP/ovl"
lower=${img//:/\\:}
if mount -t overlay overlay -o "lowerdir=$lower,upperdir=$TMP/upper-copy,workdir=$TMP/ovl-work,redirect_dir=on,metacopy=on" "$TMP/ovl" 2>"$T_OUT"; then
	ok "kernel overlayfs mounts the image view + a copy of the upper dir"
	t_ok "kernel overlayfs shows the same tree as the container view" "$TREECMP" "$TMP/ovl" "$C"
	umount "$TMP/ovl"
else
	not_ok "kernel overlayfs mounts the image view + a copy of the upper dir"
	diag_file "$T_OUT"
fi

# --- persistence -----------------------------------------------------------------------------
# The state kept is what the writes above left (metadata-only copy-ups, a copied-up hardlink set,
# symlinks, devices, a fifo, setgid and redirected dirs, whiteouts) and a new file written and
# fsync'd, with an xattr and a second name. Its copy (tar: contents, owners, modes, xattrs of
# every namespace, link targets, devices, hardlinks, mtimes) is compared with what a remount
# shows; and a listing of what treecmp does not compare: mtimes to the nanosecond, link counts.
t_ok "a new file written and fsync'd, with an xattr and a second name" py "
import os
fd = os.open('$C/etc/kept', os.O_WRONLY | os.O_CREAT, 0o640)
os.write(fd, b'kept'); os.fsync(fd); os.close(fd)
os.setxattr('$C/etc/kept', 'user.kept', b'yes')
os.link('$C/etc/kept', '$C/bin/kept')"
snapshot() { tar -C "$1" --xattrs --xattrs-include='*' -cf - . | fx_extract_tar - "$2"; }
listing() { find "$1" -printf '%P %y %n %T@\n' | sort; }
t_ok "a copy of the container's state" snapshot "$C" "$TMP/snap1"
t_ok "  the same tree" "$TREECMP" --dir-mtime "$C" "$TMP/snap1"
listing "$C" >"$TMP/before"
t_ok "umount" fumount
t_ok "mount again" fmount "$MNT"
# Reading ahead (on the new mount, before anything reads an image view: the daemon's last line
# counts the files it read ahead over its life, and those whose data it put into the kernel's
# cache of a container's file before the reader asked): a fresh container read whole, cold,
# has exactly the image's bytes.
ra=$("$DRIVER" container "$CTFS_ROOT" readahead) || bail_out "cannot create a container"
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
sync && echo 3 >/proc/sys/vm/drop_caches
t_ok "read every file of a new container, cold" sh -c "cd '$MNT/containers/$ra' && find . -type f -print0 | xargs -0 cat >/dev/null"
sync && echo 3 >/proc/sys/vm/drop_caches
sums "$MNT/containers/$ra" >"$TMP/ra.sums"
t_is "  and again: the same bytes as the image's" "$(sums "$img")" "$(cat "$TMP/ra.sums")"
t_ok "read every file of the first container, cold" sh -c "cd '$C' && find . -type f -print0 | xargs -0 cat >/dev/null"
# Containers made and removed while mounted: the daemon keeps a record of a removed one only
# while the kernel knows inodes of it (its last line counts the records it holds at the end),
# not for as long as it runs.
churn=0
for i in $(seq 30); do
	x=$("$DRIVER" container "$CTFS_ROOT" "churn$i") || bail_out "cannot make a container"
	cat "$MNT/containers/$x/etc/passwd" >/dev/null && mv "$CTFS_ROOT/containers/$x" "$CTFS_ROOT/tmp/churn$i" &&
		rm -rf "$CTFS_ROOT/tmp/churn$i" && churn=$((churn + 1))
	ls "$MNT/containers" >/dev/null
done
t_is "30 containers made, read and removed while mounted" "$churn" 30
sync && echo 2 >/proc/sys/vm/drop_caches
ls "$MNT/containers" >/dev/null
live=$(find "$CTFS_ROOT/containers" -mindepth 1 -maxdepth 1 -type d | wc -l)
t_ok "  umount" fumount
t_like "  the daemon read the image's files ahead of the containers' readers" "$(tail -1 "$CTFS_ROOT/daemon.log")" \
	" [1-9][0-9]* image files were read ahead \([1-9][0-9]* of them into the kernel's cache"
t_like "  and held records of the $live containers in the store only, none of the removed ones" \
	"$(tail -1 "$CTFS_ROOT/daemon.log")" ", $live container records held\$"
t_ok "  mount again" fmount "$MNT"
t_ok "everything is as it was after a remount (contents, xattrs, link targets, devices, mtimes, hardlinks)" \
	"$TREECMP" --dir-mtime "$TMP/snap1" "$C"
t_ok "  mtimes to the nanosecond, link counts" diff "$TMP/before" <(listing "$C")
t_ok "write and fsync a file" py "import os; fd = os.open('$C/durable', os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b'durable'); os.fsync(fd); os.close(fd)"
t_ok "more changes on this mount: an xattr, a chmod of an image file, an image dir renamed" sh -c \
	"setfattr -n user.after -v 1 '$C/durable' && chmod 0604 '$C/etc/shadow' && python3 -c \"import os; os.rename('$C/data/sub', '$C/data/sub2')\""
t_ok "a copy of the container's state" snapshot "$C" "$TMP/snap2"
t_ok "  the same tree" "$TREECMP" --dir-mtime "$C" "$TMP/snap2"
listing "$C" >"$TMP/before2"
kill -9 "$(jq -r .pid "$CTFS_ROOT/mount.json")"
sleep 0.3
t_ok "mount again after SIGKILL of the daemon" fmount "$MNT"
t_is "the fsync'd file is there" "$(cat "$C/durable")" durable
t_ok "and the rest too (contents, xattrs, link targets, devices, mtimes, hardlinks)" "$TREECMP" --dir-mtime "$TMP/snap2" "$C"
t_ok "  mtimes to the nanosecond, link counts" diff "$TMP/before2" <(listing "$C")

# --- concurrency -----------------------------------------------------------------------------
other=$("$DRIVER" container "$CTFS_ROOT" second)
sleep 1.1
tar -C "$img" --xattrs --xattrs-include='*' -cf "$TMP/img.tar" .
# what a reader of the other container must see: the image, as tar reads it (names, contents,
# owners, modes, mtimes to the nanosecond, xattrs; no atime, ctime or pid in the pax headers)
readtar() {
	tar -C "$1" --sort=name --format=posix --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
		--xattrs --xattrs-include='*' -cf - . | sha256sum
}
image_sum=$(readtar "$img")
mkdir "$C/x1" "$C/x2" "$C/x3"
(tar -C "$C/x1" --xattrs --xattrs-include='*' --numeric-owner -xf "$TMP/img.tar" 2>"$TMP/tar1.err") &
p1=$!
(tar -C "$C/x2" --xattrs --xattrs-include='*' --numeric-owner -xf "$TMP/img.tar" 2>"$TMP/tar2.err") &
p2=$!
(for _ in 1 2 3 4 5; do readtar "$MNT/containers/$other"; done >"$TMP/reads") &
p3=$!
# and two into the same dir: each replaces what the other made, and meets the races tar reports
# on any filesystem (ENOENT, EEXIST), so only the tree they leave is checked
(tar -C "$C/x3" --xattrs --xattrs-include='*' --numeric-owner -xf "$TMP/img.tar" 2>"$TMP/tar5.err") &
p5=$!
(tar -C "$C/x3" --xattrs --xattrs-include='*' --numeric-owner -xf "$TMP/img.tar" 2>"$TMP/tar6.err") &
p6=$!
(for _ in 1 2 3 4 5 6 7 8; do find "$C" -xdev >/dev/null 2>&1; done) &
p4=$!
rc=0
wait $p1 || rc=1
wait $p2 || rc=1
wait $p3 || rc=1
wait $p4 || true
wait $p5 $p6 || true
t_is "two tar -x into one container (four: two more into one dir), a find over it, and reads of another, in parallel" "$rc" 0
((rc == 0)) || diag "$(cat "$TMP/tar1.err" "$TMP/tar2.err")"
t_ok "the first extracted tree equals the image" "$TREECMP" --no-root "$img" "$C/x1"
t_ok "the second too" "$TREECMP" --no-root "$img" "$C/x2"
# (one tar can lose a hardlink to the other's race: link(2) while the other has unlinked the
# target to make it again; tar reports it, and the same race loses it on a local filesystem. Then
# a third tar -x, alone, must make the tree whole.)
if ! "$TREECMP" --no-root "$img" "$C/x3" >/dev/null 2>&1 && grep -q "Cannot hard link" "$TMP/tar5.err" "$TMP/tar6.err"; then
	diag "$(grep -h "Cannot hard link" "$TMP/tar5.err" "$TMP/tar6.err")"
	tar -C "$C/x3" --xattrs --xattrs-include='*' --numeric-owner -xf "$TMP/img.tar"
fi
t_ok "two tar -x of one archive into the same dir at once leave the archive's tree" "$TREECMP" --no-root "$img" "$C/x3"
t_is "the other container read the image's bytes each time" "$(sort -u "$TMP/reads")" "$image_sum"

# --- symlink swaps must not lead the daemon out of the upper dir -------------------------------
canary=$TMP/canary
mkdir -m 0700 "$canary"
mkdir -m 1777 "$C/race"
swapper() {
	local i
	for ((i = 0; i < 300; i++)); do
		mkdir -p "$C/race/d" 2>/dev/null
		mv -T "$C/race/d" "$C/race/old$i" 2>/dev/null
		ln -sfn "$canary" "$C/race/d" 2>/dev/null
		rm -f "$C/race/d" 2>/dev/null
	done
}
writer() {
	local i
	for ((i = 0; i < 300; i++)); do
		{ echo x >"$C/race/d/f$i"; } 2>/dev/null
		mkdir "$C/race/d/m$i" 2>/dev/null
		chmod 777 "$C/race/d" 2>/dev/null
		touch "$C/race/d/t$i" 2>/dev/null
	done
}
export -f swapper writer
export C canary
nobody bash -c swapper &
s1=$!
nobody bash -c writer &
s2=$!
wait $s1 $s2 || true
t_is "nothing appeared in the directory the symlinks pointed to" "$(ls -A "$canary" | wc -l)" 0
t_is "and its mode is unchanged" "$(stat -c %a "$canary")" 700

# --- containers created and removed while mounted ---------------------------------------------
third=$("$DRIVER" container "$CTFS_ROOT" third)
T=$MNT/containers/$third
t_ok "a container created while mounted appears" test -f "$T/etc/passwd"
t_is "  and its name" "$(readlink "$MNT/containers/third")" "$third"
echo data >"$T/etc/w"
cat >"$TMP/removed.py" <<'PYEOF'
import errno, os, subprocess, sys, time
T, store_dir, escape = sys.argv[1:4]
lower = os.open(T + "/etc/passwd", os.O_RDONLY)
upper = os.open(T + "/etc/w", os.O_RDWR)
d = os.open(T + "/etc", os.O_RDONLY | os.O_DIRECTORY)
os.pread(lower, 4, 0)
subprocess.run(["rm", "-rf", "--one-file-system", store_dir], check=True)
for _ in range(6): # the daemon watches the store: no waiting for a cache timeout (1 s)
    if not os.path.exists(T):
        break
    time.sleep(0.1)
else:
    sys.exit("the removed container is still there")
def fails(what, f, *a, **kw):
    try:
        f(*a, **kw)
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ESTALE):
            sys.exit("%s: %s (expected ENOENT or ESTALE)" % (what, e))
        return
    sys.exit("%s succeeded in a removed container" % what)
fails("create through an open dir", os.open, "new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=d)
fails("mkdir through an open dir", os.mkdir, "sub", dir_fd=d)
fails("symlink through an open dir", os.symlink, escape, "ln", dir_fd=d)
# readdir fails with ENOENT, which glibc reads as the end of a removed directory: empty
try:
    if os.listdir(d):
        sys.exit("the open dir of a removed container still lists entries")
except OSError as e:
    if e.errno not in (errno.ENOENT, errno.ESTALE):
        sys.exit("listing the open dir: %s" % e)
fails("rename through an open dir", os.rename, "passwd", "p2", src_dir_fd=d, dst_dir_fd=d)
fails("chmod through an open dir", os.chmod, "passwd", 0o777, dir_fd=d, follow_symlinks=False)
# open files: the data they hold may still be read or written (an unlinked file's rules), but
# nothing may crash or reach another path
for op in (lambda: os.pread(lower, 4, 0), lambda: os.pread(upper, 4, 0), lambda: os.pwrite(upper, b"x", 0),
           lambda: os.fstat(upper), lambda: os.fchmod(upper, 0o600), lambda: os.ftruncate(upper, 1),
           lambda: os.fsync(upper)):
    try:
        op()
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ESTALE, errno.EBADF):
            sys.exit("an open file of a removed container: %s" % e)
for fd in (lower, upper, d):
    os.close(fd)
PYEOF
t_ok "a removed container disappears at once; operations in it fail with ENOENT, open files are harmless" \
	python3 "$TMP/removed.py" "$T" "$CTFS_ROOT/containers/$third" "$canary"
t_fail "  its name is gone" test -e "$MNT/containers/third"
t_fail "  not listed" grep -qx "$third" <(ls "$MNT/containers")
t_fail "  nothing was made again in the store" test -e "$CTFS_ROOT/containers/$third"
t_is "  nor where the symlinks pointed" "$(ls -A "$canary" | wc -l)" 0
t_ok "the daemon still serves the other containers" test -f "$C/etc/new2"
again=$("$DRIVER" container "$CTFS_ROOT" third)
t_is "a container made again under the same id" "$again" "$third"
t_ok "  is served fresh (its own upper dir)" sh -c "test -f '$T/etc/passwd' && test ! -e '$T/etc/w'"
t_ok "  and writes go to its new upper dir" sh -c "echo new > '$T/etc/new3' && test -f '$CTFS_ROOT/containers/$third/upper/etc/new3'"

# --- a name given to a new container: the kernel caches symlink targets (FUSE_CAP_CACHE_SYMLINKS),
# so containers/<name> must be another inode once it points elsewhere, and must be asked for
# again at once (rm + create can be quicker than the store watcher)
layout=$TMP/layout
fx_oci_image "$layout" v1 >/dev/null 2>&1 || bail_out "cannot build the fixture image"
t_ok "pull an image for ctfs create" ctfs pull -q "oci:$layout:v1"
id1=$(ctfs create --name again localhost/layout:v1 /bin/true)
t_is "ctfs create --name: containers/again points to it" "$(readlink "$MNT/containers/again")" "$id1"
t_ok "  a path through it" test -f "$MNT/containers/again/bin/busybox"
for i in 1 2 3; do
	t_ok "ctfs rm again ($i)" ctfs rm again
	# a listing right away sees the change before the store watcher does
	ls "$MNT/containers" >/dev/null
	id2=$(ctfs create --name again localhost/layout:v1 /bin/true)
	t_is "  created again: containers/again points to the new id at once" "$(readlink "$MNT/containers/again")" "$id2"
	t_ok "  and paths through it work at once" sh -c "echo $i > '$MNT/containers/again/n' && test -f '$CTFS_ROOT/containers/$id2/upper/n'"
	sleep 0.2 # the watcher's turn (a cached name lives for a second without it)
	t_fail "  the old id is gone (the watcher saw it go, though the listing re-read the store first)" \
		test -e "$MNT/containers/$id1"
	id1=$id2
done
t_ok "ctfs rm the last one" ctfs rm again
ls "$MNT/containers" >/dev/null
t_fail "  the name is gone at once" test -e "$MNT/containers/again"

# --- a container made while mounted is opened by the store watcher before its first lookup (so
# that the lookup by ctfs run, or a cd right after ctfs create, does not wait for it), and a
# removed one's fds are given back (by the watcher, outside the view's lock)
dpid=$(jq -r .pid "$CTFS_ROOT/mount.json")
holds_fd_of() { ls -l "/proc/$dpid/fd" 2>/dev/null | grep -q "$1"; }
within_5s() { for _ in $(seq 50); do "$@" && return 0; sleep 0.1; done; return 1; }
id3=$(ctfs create localhost/layout:v1 /bin/true)
t_ok "a container made while mounted is opened before anything looks it up" within_5s holds_fd_of "$id3"
t_ok "  ctfs rm it" ctfs rm "$id3"
t_ok "  the daemon holds no fd of it any more" within_5s eval "! holds_fd_of $id3"
t_ok "  and serves the others" test -f "$C/etc/new2"

# --- a container whose record puts its upper dir outside the store: the daemon uses the record's
mkdir "$TMP/elsewhere"
far=$("$DRIVER" container "$CTFS_ROOT" far "$TMP/elsewhere/upper") || bail_out "cannot make a container"
t_ok "a container with its upper dir outside the store appears" within_5s test -f "$MNT/containers/$far/etc/passwd"
t_ok "  write in it" sh -c "echo far > '$MNT/containers/$far/etc/far'"
t_is "  the write is in the upper dir its record names" "$(cat "$TMP/elsewhere/upper/etc/far")" far
t_fail "  and not in the store's default place" test -e "$CTFS_ROOT/containers/$far/upper"

# --- copy-up by reflink: a store on XFS (reflink=1) clones the object instead of copying it ---
if command -v mkfs.xfs >/dev/null && command -v filefrag >/dev/null; then
	truncate -s 512M "$TMP/xfs.img"
	mkdir -p "$TMP/xfs" "$TMP/xmnt"
	if mkfs.xfs -q -m reflink=1 "$TMP/xfs.img" 2>"$T_OUT" && mount -o loop "$TMP/xfs.img" "$TMP/xfs" 2>>"$T_OUT"; then
		read -r _ xcid < <(CTFS_ROOT=$TMP/xfs/root "$DRIVER" mkstore "$TMP/xfs/root") || bail_out "cannot make the XFS store"
		XC=$TMP/xmnt/containers/$xcid
		xupper=$TMP/xfs/root/containers/$xcid/upper
		t_ok "mount a store on XFS" env CTFS_ROOT="$TMP/xfs/root" "$CTFS" --root "$TMP/xfs/root" mount "$TMP/xmnt"
		t_ok "append to a 4 MiB image file" sh -c "printf appended >> '$XC/data/big'"
		t_is "  size" "$(stat -c %s "$XC/data/big")" $(((4 << 20) + 8))
		t_is "  the end" "$(tail -c 12 "$XC/data/big")" "GHIJappended"
		t_is "  the start" "$(head -c 5 "$XC/data/big")" abcde
		t_like "  the copy shares its blocks with the store's object (FICLONE)" "$(filefrag -v "$xupper/data/big")" shared
		t_ok "  and a remount reads the same" sh -c "'$CTFS' --root '$TMP/xfs/root' umount '$TMP/xmnt' && '$CTFS' --root '$TMP/xfs/root' mount '$TMP/xmnt' && test \"\$(tail -c 12 '$XC/data/big')\" = GHIJappended"
		"$CTFS" --root "$TMP/xfs/root" umount "$TMP/xmnt"
		umount "$TMP/xfs"
	else
		skip "copy-up by reflink" "no XFS loop mount here: $(head -c 200 "$T_OUT" | tr '\n' ' ')"
	fi
else
	skip "copy-up by reflink" "no mkfs.xfs (xfsprogs) or filefrag"
fi

t_ok "umount" fumount
