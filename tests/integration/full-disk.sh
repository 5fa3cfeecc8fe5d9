#!/bin/bash
# A full disk: the store on a small tmpfs. A pull that does not fit fails with a clear
# "no space" line and leaves nothing half-written; after space is freed everything works.
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
