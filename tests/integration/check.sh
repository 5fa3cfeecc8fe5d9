#!/bin/bash
# `ctfs check [--repair]`: a healthy store passes; a corrupt object, an unreadable layer index or
# image tree, a dangling name and a broken refs.json are each reported (exit 1); --repair
# removes what is broken, and pulling the image again restores it exactly.
. "$(dirname "$0")/lib.sh"
require_root

fx_busybox_image "$TMP/img" v1
fx_umoci_unpack "$TMP/img" v1 "$TMP/ref"
t_ok "pull" ctfs pull -q "oci:$TMP/img:v1"
t_ok "a fresh store passes check" ctfs check
t_like "check counts what it checked" "$(cat "$T_OUT")" 'checked [1-9][0-9]* objects, 1 layers, 1 images, 1 names, 0 containers: 0 problems'

# the biggest object is busybox itself
obj=$(find "$CTFS_ROOT/objects" -type f -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
printf 'x' | dd of="$obj" bs=1 seek=1000 conv=notrunc status=none
t_fail "a corrupt object fails check" ctfs check
t_like "it names the object" "$(cat "$T_OUT")" "object sha256:$(basename "$obj"): content does not match its digest"
t_fail "check --repair reports what is left to restore" ctfs check --repair
t_like "the corrupt object was removed" "$(cat "$T_OUT")" '\(removed\)'
t_like "it says how to restore the image" "$(cat "$T_OUT")" 'pull the image again'
t_ok "the object is gone" test ! -e "$obj"
t_ok "pull again restores the image" ctfs pull "oci:$TMP/img:v1"
t_ok "check passes after the pull" ctfs check
t_ok "export after repair" ctfs export -o "$TMP/e.tar" localhost/img:v1
t_ok "untar" fx_extract_tar "$TMP/e.tar" "$TMP/e"
t_ok "the restored image is identical to umoci unpack" "$TREECMP" "$TMP/ref/rootfs" "$TMP/e"

# an image tree cut short
id=$(ctfs images -q --no-trunc)
id=${id#sha256:}
tree=$CTFS_ROOT/images/$id/tree
cp "$tree" "$TMP/tree.bak"
truncate -s 100 "$tree"
t_fail "a truncated image tree fails check" ctfs check
t_like "it names the image" "$(cat "$T_OUT")" "image ${id:0:12}: tree is unreadable"
t_fail "export of the damaged image fails cleanly" ctfs export -o "$TMP/bad.tar" localhost/img:v1
t_ok "and leaves no file" test ! -e "$TMP/bad.tar"
cp "$TMP/tree.bak" "$tree"

# a corrupt layer index
idx=$(find "$CTFS_ROOT/layers" -name index | head -1)
printf 'garbage' >"$idx"
t_fail "a corrupt layer index fails check" ctfs check
t_like "it names the layer" "$(cat "$T_OUT")" 'layer sha256:[0-9a-f]+: index is unreadable'
ctfs check --repair >/dev/null || true
t_ok "pull again restores the layer" ctfs pull -q "oci:$TMP/img:v1"
t_ok "check passes" ctfs check

# names
cp "$CTFS_ROOT/refs.json" "$TMP/refs.bak"
jq '. + {"localhost/ghost:v1": "'"$(printf '%064d' 0)"'"}' "$TMP/refs.bak" >"$CTFS_ROOT/refs.json"
t_fail "a name pointing nowhere fails check" ctfs check
t_like "it names the name" "$(cat "$T_OUT")" 'name localhost/ghost:v1 points to an image that is not in the store'
t_ok "check --repair removes it" ctfs check --repair
t_is "the good name stays" "$(jq -r 'keys[]' "$CTFS_ROOT/refs.json")" "localhost/img:v1"
printf '[1,2' >"$CTFS_ROOT/refs.json"
t_fail "a broken refs.json fails check" ctfs check
t_ok "check --repair resets it" ctfs check --repair
t_ok "check passes" ctfs check

# the container names index (names/)
ctfs pull -q "oci:$TMP/img:v1" >/dev/null
cid=$(ctfs create --name named localhost/img:v1 true)
t_ok "check passes with a named container" ctfs check
rm "$CTFS_ROOT/names/named"
ln -s "$(printf '%064d' 9)" "$CTFS_ROOT/names/ghost"
t_fail "a names/ index that disagrees with the records fails check" ctfs check
t_like "it says so" "$(cat "$T_OUT")" 'names index \(names/\) disagrees with the records in 2 places'
t_ok "check --repair" ctfs check --repair
t_ok "check passes" ctfs check
t_fail "the name is still taken (names/ built again from the records)" ctfs create --name named localhost/img:v1 true
t_is "... and links to its container" "$(readlink "$CTFS_ROOT/names/named")" "$cid"
t_ok "rm it" ctfs rm "$cid"
