#!/bin/bash
# A full disk: the store on a small tmpfs. A pull that does not fit fails with a clear
# "no space" line and leaves nothing half-written; after space is freed everything works.
# A container writing until the disk is full gets ENOSPC while the daemon and other containers
# stay healthy, and the space comes back when the file (or the container) is deleted.
. "$(dirname "$0")/lib.sh"
require_root

fx_busybox_image "$TMP/small" v1
# an image bigger than the store's filesystem: 48 MiB of random data in one layer
big_rootfs() { head -c $((48 << 20)) /dev/urandom >"$1/blob"; }
umoci init --layout "$TMP/big"
umoci new --image "$TMP/big:v1"
_fx_bundle_edit "$TMP/big" v1 "a big file" big_rootfs
_fx_config "$TMP/big" v1

mkdir -p "$TMP/fs"
mount -t tmpfs -o size=32m tmpfs "$TMP/fs"
export CTFS_ROOT=$TMP/fs/root

t_ok "a small image fits" ctfs pull -q "oci:$TMP/small:v1"
snap() { (cd "$CTFS_ROOT" && find . -path ./tmp -prune -o -printf '%p %s\n' | sort); }
before=$(snap)
t_fail "a pull that does not fit fails" ctfs pull "oci:$TMP/big:v1"
t_like "with a clear no-space error" "$(cat "$T_OUT")" '^ctfs: .*([Nn]o space left on device)'
t_is "on one line" "$(wc -l <"$T_OUT")" 1
t_is "the store is as it was" "$(snap)" "$before"
t_is "no work left in tmp/" "$(ls -A "$CTFS_ROOT/tmp")" ""
t_ok "the store passes check" ctfs check
t_ok "the small image still exports" ctfs export -o "$TMP/small.tar" localhost/small:v1

# free space: a bigger filesystem (tmpfs can grow in place)
mount -o remount,size=256m "$TMP/fs"
t_ok "after space is freed the pull completes" ctfs pull -q "oci:$TMP/big:v1"
t_ok "check passes" ctfs check
t_ok "export the big image" ctfs export -o "$TMP/big.tar" localhost/big:v1
mkdir -p "$TMP/big-x"
t_ok "untar" tar -xf "$TMP/big.tar" -C "$TMP/big-x"
fx_umoci_unpack "$TMP/big" v1 "$TMP/big-ref"
t_ok "the big image is exact" "$TREECMP" "$TMP/big-ref/rootfs" "$TMP/big-x"

# --- a container that fills the disk ------------------------------------------------------------
# The store on its own 64 MiB tmpfs: a container writing until the disk is full gets ENOSPC
# (its command fails with "No space left on device"); the daemon and another container stay
# healthy; once the file is deleted the space is back.
mkdir -p "$TMP/fs2"
mount -t tmpfs -o size=64m tmpfs "$TMP/fs2"
export CTFS_ROOT=$TMP/fs2/root
ctfs pull -q "oci:$TMP/small:v1" >/dev/null
ctfs mount >/dev/null
other=$(ctfs run -d localhost/small:v1 sleep 300)
free_before=$(df --output=avail -k "$TMP/fs2" | tail -1)
rc=0
out=$(timeout 60 "$CTFS" --root "$CTFS_ROOT" run --name filler localhost/small:v1 sh -c \
	'dd if=/dev/zero of=/fill bs=1M 2>&1; echo "dd exit $?"; ls -l /fill | awk "{ print \"size \" \$5 }"') || rc=$?
t_is "a container writing until the disk is full ends" "$rc" 0
t_like "  its write fails with ENOSPC" "$out" "No space left on device"
t_like "  dd exits nonzero" "$out" "dd exit [1-9]"
t_like "  after writing most of the disk" "$out" "size [0-9]{8}"
t_ok "the daemon still serves the other container" timeout 20 "$CTFS" --root "$CTFS_ROOT" exec "$other" cat /etc/passwd
t_fail "  whose writes fail too while the disk is full" timeout 20 "$CTFS" --root "$CTFS_ROOT" exec "$other" sh -c 'dd if=/dev/zero of=/more bs=1M count=8 && rm /more'
t_like "  with ENOSPC" "$(cat "$T_OUT")" "No space left on device"
timeout 20 "$CTFS" --root "$CTFS_ROOT" exec "$other" rm -f /more
t_ok "removing the filling container" timeout 20 "$CTFS" --root "$CTFS_ROOT" rm filler
t_is "  removes its upper dir" "$(ls "$CTFS_ROOT/containers" | wc -l)" 1
free_after=$(df --output=avail -k "$TMP/fs2" | tail -1)
t_ok "  and the space is back (${free_before} KiB free before, ${free_after} after)" test "$free_after" -ge "$((free_before - 4096))"
t_ok "a container fills the disk, deletes the file and writes again" timeout 60 "$CTFS" --root "$CTFS_ROOT" run --rm localhost/small:v1 sh -c \
	'dd if=/dev/zero of=/fill bs=1M 2>/dev/null; rm /fill && echo again >/after && cat /after && dd if=/dev/zero of=/f2 bs=1M count=16 2>/dev/null'
t_ok "the other container writes again" timeout 20 "$CTFS" --root "$CTFS_ROOT" exec "$other" sh -c 'echo fine >/fine && cat /fine'
t_ok "stop and remove it" timeout 30 "$CTFS" --root "$CTFS_ROOT" rm -f "$other"
t_ok "the store passes check" ctfs check
t_ok "umount" ctfs umount
