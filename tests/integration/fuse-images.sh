#!/bin/bash
# The FUSE daemon's image views on a real mount: an image pulled from an OCI layout (built by
# umoci, never by ctfs) reads exactly like `umoci unpack` of it, mtimes to the nanosecond;
# every change to an image gives EROFS; names appear and go away without a remount; the daemon
# raises its open-file limit and keeps no fd per inode; the mount lifecycle (ctfs mount returns
# once the mount answers, second mount refused, umount waits for the daemon, a killed daemon's
# mount is replaced, -f stays in the foreground); permissions for other users.
. "$(dirname "$0")/lib.sh"
require_root

# ctfs mount/umount; the test driver checks daemon_find.
DRIVER=${FUSE_DRIVER:-$(dirname "$CTFS")/../tests/fuse-driver}
[[ -x $DRIVER ]] || skip_all "no fuse-driver at $DRIVER"
fmount() { ctfs mount "$@"; }
fumount() { ctfs umount "$@"; }
MNT=$TMP/mnt
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
chmod 0711 "$TMP" # other users must reach the mount point

layout=$TMP/layout
fx_oci_image "$layout" v1 >/dev/null 2>&1 || bail_out "cannot build the fixture image"
fx_umoci_unpack "$layout" v1 "$TMP/ref"
t_ok "pull the fixture image" ctfs pull -q "oci:$layout:v1"

# mounted with a low soft limit of open files: the daemon raises it to the hard limit (every
# open file in the mount holds an fd in the daemon)
hard_nofile=$(ulimit -Hn)
fmount_lowfd() ( ulimit -Sn 256 && fmount "$@" )
t_ok "mount (soft limit of open files 256)" fmount_lowfd "$MNT"
# ctfs mount returns once the mount answers: used at once, no retry. (These hold without the
# wait too: the kernel holds requests until the daemon answers INIT, and the mount and its
# record are made before ctfs mount waits; the --debug mount at the end checks the wait.)
t_is "  answers at once: the root is inode 1" "$(timeout 2 stat -c %i "$MNT")" 1
t_ok "  listed in mountinfo" grep -q " $MNT .* - fuse.ctfs " /proc/self/mountinfo
t_is "mount recorded in the store" "$(jq -r .mountpoint "$CTFS_ROOT/mount.json")" "$MNT"
dpid=$(jq -r .pid "$CTFS_ROOT/mount.json")
if [[ $hard_nofile == unlimited ]] || ((hard_nofile > 256)); then
	t_is "the daemon raised its soft limit of open files to the hard one" \
		"$(awk '/^Max open files/ { print $4, $5 }' "/proc/$dpid/limits")" "$hard_nofile $hard_nofile"
else
	skip "the daemon raises its limit of open files" "the hard limit here is $hard_nofile"
fi
t_fail "a second mount of the same store is refused" fmount "$TMP/mnt2"
t_like "with a clear message" "$(cat "$T_OUT")" "already mounted at $MNT"
t_is "driver finds the live mount" "$("$DRIVER" find "$CTFS_ROOT")" "$MNT"

img=$MNT/images/localhost/layout:v1
t_ok "the image is at images/localhost/layout:v1" test -d "$img"
# the kernel gives a FUSE mount 128 KiB of readahead; the daemon raises it once mounted
bdi_ra() { cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb"; }
for _ in 1 2 3 4 5 6 7 8 9 10; do [[ $(bdi_ra) == 1024 ]] && break; sleep 0.1; done
t_is "the mount reads ahead 1 MiB (two 512 KiB requests in flight)" "$(bdi_ra)" 1024
t_ok "image view equals umoci unpack (types, modes, owners, sizes, contents, xattrs, hardlinks)" \
	"$TREECMP" "$TMP/ref/rootfs" "$img"
# mtimes to the nanosecond, of directories too (treecmp compares whole seconds of files only);
# umoci writes whole seconds, the fixture's GNU tar layer (opaque/, sizes/sparse-tar) keeps
# sub-second ones
mtimes() { (cd "$1" && find . -printf '%p %T@\0' | sort -z | tr '\0' '\n'); }
t_like "  (the reference has sub-second mtimes)" "$(stat -c %y "$TMP/ref/rootfs/opaque/new")" '\.[0-9]*[1-9][0-9]* '
t_ok "  mtimes of every entry to the nanosecond" diff <(mtimes "$TMP/ref/rootfs") <(mtimes "$img")

# read-only: every change fails with EROFS (not some other error)
erofs() {
	local desc=$1
	shift
	t_fail "$desc" "$@"
	t_like "  EROFS" "$(cat "$T_OUT")" "Read-only file system"
}
erofs "create in an image" touch "$img/newfile"
erofs "write to an image file" sh -c "echo x >> '$img/bin/busybox'"
erofs "mkdir in an image" mkdir "$img/newdir"
erofs "rm in an image" rm -f "$img/bin/busybox"
erofs "rmdir in an image" rmdir "$img/sizes/empty-dir"
erofs "mv in an image" mv "$img/etc/hostname" "$img/etc/hostname2"
erofs "ln in an image" ln "$img/etc/hostname" "$img/etc/hostname2"
erofs "ln -s in an image" ln -s hostname "$img/etc/hostname2"
erofs "mknod in an image" mknod "$img/etc/null2" c 1 3
erofs "mkfifo in an image" mkfifo "$img/etc/fifo"
erofs "chmod in an image" chmod 777 "$img/bin"
erofs "chown in an image" chown 1:1 "$img/etc/hostname"
erofs "truncate an image file" truncate -s 0 "$img/etc/hostname"
erofs "truncate(2) an image file by its path" python3 -c "import os; os.truncate('$img/etc/hostname', 0)"
erofs "touch -d an image file" touch -d @0 "$img/etc/hostname"
erofs "setfattr in an image" setfattr -n user.x -v 1 "$img/bin"
erofs "setfattr -x in an image" setfattr -x user.test "$img/xattr/file"
erofs "mkdir under images/" mkdir "$MNT/images/x"
t_is "  the image is unchanged" "$(cat "$img/etc/hostname"; getfattr --absolute-names --only-values -n user.test "$img/xattr/file")" \
	$'ctfs-fixture\nchanged'

# image files give a preferred I/O size of 1 MiB (fewer read(2) calls through the mount for tools
# that size their reads by it, fs/tree.h), other entries ext4's
t_is "st_blksize: 1 MiB for an image file, 4 KiB for a directory" "$(stat -c %o "$img/bin/busybox" "$img/bin" | tr '\n' ' ')" "1048576 4096 "

# stable inode numbers and shared ones for hardlinks
ino1=$(stat -c %i "$img/bin/busybox")
echo 3 >/proc/sys/vm/drop_caches
t_is "inode numbers stay the same after the kernel drops its caches" "$(stat -c %i "$img/bin/busybox")" "$ino1"

# no fd per inode: the daemon's fds on files and dirs (not /dev/fuse, pipes, eventfds, io_uring)
# stay few while the kernel holds every inode of the image; each open file holds one, until closed
dfds() { find "/proc/$dpid/fd" -mindepth 1 -lname '/*' ! -lname '/dev/*' | wc -l; }
# fds_after N: the count once it is back to N (releases reach the daemon after close returns)
fds_after() {
	for _ in $(seq 20); do (($(dfds) == $1)) && break; sleep 0.1; done
	dfds
}
nent=$(find "$img" -ls | wc -l)
fds0=$(dfds)
t_ok "the daemon holds fewer than 16 fds after a walk stat-ing all $nent entries ($fds0)" \
	test "$fds0" -lt 16 -a "$nent" -gt 100
t_ok "  read every file" sh -c "find '$img' -type f -print0 | xargs -0 cat >/dev/null"
t_is "  as many after" "$(fds_after "$fds0")" "$fds0"
# (distinct contents: distinct objects)
hold7() {
	exec 3<"$img/bin/busybox" 4<"$img/etc/passwd" 5<"$img/etc/group" 6<"$img/sizes/random" \
		7<"$img/links/a" 8<"$img/del/changed" 9<"$img/opaque/new"
}
t_ok "  hold 7 image files open" hold7
fds7=$(dfds)
t_ok "  7 image files held open: 1 to 7 more ($fds0 -> $fds7)" test $((fds7 - fds0)) -ge 1 -a $((fds7 - fds0)) -le 7
exec 3<&- 4<&- 5<&- 6<&- 7<&- 8<&- 9<&-
t_is "  closed: as many as before" "$(fds_after "$fds0")" "$fds0"

# names come and go without a remount
t_ok "tag the image" ctfs tag localhost/layout:v1 127.0.0.1:5000/some/repo:t1
sleep 1.2
t_ok "the new name appears" test -d "$MNT/images/127.0.0.1:5000/some/repo:t1/bin"
t_ok "listed in its parent" grep -qx 'repo:t1' <(ls "$MNT/images/127.0.0.1:5000/some")
# each name is its own tree mapping in the daemon; a removed name's mapping goes once nothing uses
# it (rmi frees the space while mounted)
find "$MNT/images/127.0.0.1:5000/some/repo:t1" -ls >/dev/null
# (lowering it needs CAP_SYS_RESOURCE, which some sandboxes take away even from root)
if (((16#$(awk '/^CapEff/ { print $2 }' /proc/self/status) >> 24) & 1)); then
	t_is "the daemon asks the OOM killer to pick others first (as dockerd: -500)" "$(cat "/proc/$dpid/oom_score_adj")" -500
else
	skip "the daemon's oom_score_adj" "no CAP_SYS_RESOURCE here: the daemon may not lower it"
fi
tree_maps() { grep -c '/images/[0-9a-f]*/tree' "/proc/$dpid/maps" || true; }
# until_ok SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.1 s)
until_ok() {
	local i n=$(($1 * 10))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}
t_is "both names of the image are mapped" "$(tree_maps)" 2
t_ok "untag it" ctfs rmi 127.0.0.1:5000/some/repo:t1
t_ok "the name is gone at once (the daemon watches the store)" until_ok 2 test ! -e "$MNT/images/127.0.0.1:5000/some/repo:t1"
t_ok "its tree is unmapped, without a remount" until_ok 3 sh -c "test \$(grep -c '/images/[0-9a-f]*/tree' /proc/$dpid/maps) = 1"

# other users: permissions are checked by the kernel against the image's attributes
t_ok "another user reads a world-readable file" nobody cat "$img/bin/busybox"
t_ok "another user lists images/" nobody ls "$MNT/images/localhost"
t_fail "another user cannot read a 0000 root file" nobody cat "$img/modes/none"
t_like "  EACCES" "$(cat "$T_OUT")" "Permission denied"
t_fail "nor a 0600 root file" nobody cat "$img/modes/group-write"
t_like "  EACCES" "$(cat "$T_OUT")" "Permission denied"
t_fail "nor list a 0700 root dir" nobody ls "$img/modes/private"
t_like "  EACCES" "$(cat "$T_OUT")" "Permission denied"

# a busy mount is not pulled away; a killed daemon's mount is replaced by the next mount
(cd "$img" && sleep 3) &
sleep 0.5
t_fail "umount while busy fails" fumount
t_like "saying so" "$(cat "$T_OUT")" "busy"
wait
pid=$(jq -r .pid "$CTFS_ROOT/mount.json")
kill -9 "$pid"
sleep 0.3
t_fail "a killed daemon leaves a dead mount" stat "$img"
t_ok "mount again over the dead mount" fmount "$MNT"
t_ok "serves again" "$TREECMP" "$TMP/ref/rootfs" "$img"
# a reader going through a directory's files, from the disk: the daemon reads the next files'
# objects ahead (fs/prefetch.h; the daemon's last line counts them)
sync && echo 3 >/proc/sys/vm/drop_caches
t_ok "read every file, cold" sh -c "cd '$img' && find . -type f -print0 | xargs -0 cat >/dev/null"
t_ok "umount" fumount
t_like "  the daemon read image files ahead of the reader" "$(tail -1 "$CTFS_ROOT/daemon.log")" \
	" [1-9][0-9]* image files were read ahead"
t_fail "umount leaves no mount" grep -q " $MNT " /proc/self/mountinfo
t_fail "and no record" test -e "$CTFS_ROOT/mount.json"
t_fail "umount when not mounted fails" fumount

# -f: the process started is the daemon, in the foreground until unmounted
mopts=()
[[ -z ${CTFS_TEST_NO_URING:-} ]] || mopts=(--no-uring)
"$CTFS" --root "$CTFS_ROOT" mount -f "${mopts[@]}" "$MNT" >"$TMP/fg.log" 2>&1 &
fg=$!
bg_pid "$fg"
for _ in $(seq 100); do [[ $(stat -c %i "$MNT" 2>/dev/null) == 1 ]] && break; sleep 0.1; done
t_is "mount -f: the daemon is the process started" "$(jq -r .pid "$CTFS_ROOT/mount.json")" "$fg"
sleep 0.3
# (a process that exited stays a zombie until waited for: kill -0 would not tell)
t_like "  still running once the mount answers" "$(awk '{ print $3 }' "/proc/$fg/stat" 2>/dev/null)" '^[RSD]$'
t_ok "  umount" fumount
t_status "  then it exits, status 0" 0 wait "$fg"

# ctfs mount returns only once the mount answered it: by then the daemon has logged (--debug
# logs a request, and then its answer before sending it) the answer to a request of ctfs mount
# itself (its pid). Without the wait, ctfs mount would send none.
mount_debug() {
	sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$TMP/mount.pid" \
		"$CTFS" --root "$CTFS_ROOT" mount --debug "${mopts[@]}" "$MNT" >"$TMP/debug.log" 2>&1
	cp "$TMP/debug.log" "$TMP/debug-at-return.log"
}
t_ok "mount --debug" mount_debug
answered=$(awk -v pid="pid: $(cat "$TMP/mount.pid")" '
	/^unique: / && substr($0, length($0) - length(pid) + 1) == pid { asked[$2] = 1 }
	/^   unique: .*, success/ && ($2 in asked) { print "answered"; exit }' "$TMP/debug-at-return.log")
t_is "  it returned after the daemon answered a request of its own" "$answered" answered
t_ok "  umount" fumount
