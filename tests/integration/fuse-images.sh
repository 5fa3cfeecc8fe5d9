#!/bin/bash
# The FUSE daemon's image views on a real mount: an image pulled from an OCI layout (built by
# umoci, never by ctfs) reads exactly like `umoci unpack` of it; images are read-only; names
# appear and go away without a remount; the mount lifecycle (second mount refused, umount
# waits for the daemon, a killed daemon's mount is replaced); permissions for other users.
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

t_ok "mount" fmount "$MNT"
t_is "mount recorded in the store" "$(jq -r .mountpoint "$CTFS_ROOT/mount.json")" "$MNT"
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

# read-only
t_fail "create in an image" touch "$img/newfile"
t_like "EROFS" "$(cat "$T_OUT")" "Read-only file system"
t_fail "write to an image file" sh -c "echo x >> '$img/bin/busybox'"
t_fail "mkdir in an image" mkdir "$img/newdir"
t_fail "rm in an image" rm -f "$img/bin/busybox"
t_fail "chmod in an image" chmod 777 "$img/bin"
t_fail "setfattr in an image" setfattr -n user.x -v 1 "$img/bin"
t_fail "mkdir under images/" mkdir "$MNT/images/x"

# stable inode numbers and shared ones for hardlinks
ino1=$(stat -c %i "$img/bin/busybox")
echo 3 >/proc/sys/vm/drop_caches
t_is "inode numbers stay the same after the kernel drops its caches" "$(stat -c %i "$img/bin/busybox")" "$ino1"

# names come and go without a remount
t_ok "tag the image" ctfs tag localhost/layout:v1 127.0.0.1:5000/some/repo:t1
sleep 1.2
t_ok "the new name appears" test -d "$MNT/images/127.0.0.1:5000/some/repo:t1/bin"
t_ok "listed in its parent" grep -qx 'repo:t1' <(ls "$MNT/images/127.0.0.1:5000/some")
# each name is its own tree mapping in the daemon; a removed name's mapping goes once nothing uses
# it (rmi frees the space while mounted)
find "$MNT/images/127.0.0.1:5000/some/repo:t1" -ls >/dev/null
dpid=$(jq -r .pid "$CTFS_ROOT/mount.json")
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
