#!/bin/bash
# The store lock: concurrent pulls, prunes, rmi and tags on one store leave it correct.
#
# At once, on one store: six pulls (three of image x, two of image y, which shares x's layers
# and adds one, and one of y from an OCI archive, which unpacks into a work directory first), a
# loop of `ctfs prune`, and a loop that pulls and removes a third image z. Afterwards every pull
# and every command has succeeded, each image exports identical to `umoci unpack`, refs.json
# is valid JSON naming only images that are there, every object holds the bytes its name is the
# digest of, and a last prune leaves nothing in tmp/.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci skopeo jq

_files() {
	local r=$1 d f
	mkdir -p "$r/data-$2"
	for d in $(seq -w 0 9); do
		mkdir "$r/data-$2/d$d"
		for f in $(seq -w 0 99); do
			printf '%s %s/%s\n' "$2" "$d" "$f" >"$r/data-$2/d$d/f$f"
		done
	done
	head -c $((4 * 1024 * 1024)) /dev/urandom >"$r/data-$2/random"
}
_x_layer() { _files "$1" x; }
_y_layer() { _files "$1" y; }
_z_layer() { _files "$1" z; }

fx_busybox_image "$TMP/x" v1
_fx_bundle_edit "$TMP/x" v1 "x's files" _x_layer
cp -a "$TMP/x" "$TMP/y"
_fx_bundle_edit "$TMP/y" v1 "y's files" _y_layer
fx_busybox_image "$TMP/z" v1
_fx_bundle_edit "$TMP/z" v1 "z's files" _z_layer
fx_oci_archive "$TMP/y" v1 "$TMP/y.tar"
for i in x y z; do fx_umoci_unpack "$TMP/$i" v1 "$TMP/ref-$i"; done
diag "fixtures took ${SECONDS}s"

ctfs images >/dev/null # the store exists before anything runs at once

# run_logged NAME CMD...: run CMD with its output in $TMP/log/NAME, its status in NAME.rc.
mkdir "$TMP/log"
run_logged() {
	local name=$1 rc=0
	shift
	"$@" >"$TMP/log/$name" 2>&1 || rc=$?
	echo "$rc" >"$TMP/log/$name.rc"
}

# The prune loop runs until the pulls are done (the stop file); it counts its rounds.
prune_loop() {
	local n=0 rc=0
	while [[ ! -e $TMP/stop ]]; do
		ctfs prune >/dev/null || rc=$?
		n=$((n + 1))
	done
	echo "$n prunes"
	return "$rc"
}

# z is pulled and removed over and over, meanwhile; it is there at the end.
z_loop() {
	local i
	for i in 1 2 3 4; do
		ctfs pull -q "oci:$TMP/z:v1" && ctfs tag localhost/z:v1 "z:$i" && ctfs rmi "z:$i" &&
			ctfs rmi localhost/z:v1 || return 1
	done
	ctfs pull -q "oci:$TMP/z:v1"
}

start=$SECONDS
run_logged prune prune_loop &
prune_pid=$!
bg_pid "$prune_pid"
pids=()
for i in 1 2 3; do
	run_logged "pull-x-$i" ctfs pull "oci:$TMP/x:v1" &
	pids+=($!)
done
for i in 1 2; do
	run_logged "pull-y-$i" ctfs pull "oci:$TMP/y:v1" &
	pids+=($!)
done
run_logged pull-y-archive ctfs pull "oci-archive:$TMP/y.tar:v1" &
pids+=($!)
run_logged z z_loop &
pids+=($!)
for p in "${pids[@]}"; do bg_pid "$p"; done
wait "${pids[@]}"
touch "$TMP/stop"
wait "$prune_pid"

for f in "$TMP"/log/*.rc; do
	name=$(basename "$f" .rc)
	if [[ $(cat "$f") == 0 ]]; then
		ok "$name succeeded"
	else
		not_ok "$name succeeded"
		diag "exit status $(cat "$f")"
		diag_file "$TMP/log/$name"
	fi
done
diag "$(cat "$TMP/log/prune") in $((SECONDS - start))s"
diag "$(grep -h 'Pulled\|up to date' "$TMP"/log/pull-* || true)"

t_ok "refs.json is valid JSON" jq -e 'type == "object"' "$CTFS_ROOT/refs.json"
t_is "refs.json names the three images" "$(jq -r 'keys[]' "$CTFS_ROOT/refs.json" | sort | tr '\n' ' ')" \
	"localhost/x:v1 localhost/y:v1 localhost/z:v1 "
for id in $(jq -r '.[]' "$CTFS_ROOT/refs.json"); do
	t_ok "reference to $id: the image is complete" \
		test -f "$CTFS_ROOT/images/$id/image.json" -a -f "$CTFS_ROOT/images/$id/tree"
done
t_is "three images" "$(ctfs images -q | wc -l)" 3
t_is "every object holds the bytes its name is the digest of" \
	"$(find "$CTFS_ROOT/objects" -type f -exec sha256sum {} + | awk '{ n = split($2, p, "/"); if (p[n] != $1) print $2 }')" ""

for i in x y z; do
	t_ok "$i: export" ctfs export -o "$TMP/$i.export.tar" "localhost/$i:v1"
	t_ok "$i: export untars" fx_extract_tar "$TMP/$i.export.tar" "$TMP/export-$i"
	t_ok "$i: identical to umoci unpack" "$TREECMP" "$TMP/ref-$i/rootfs" "$TMP/export-$i"
done

t_ok "a last prune" ctfs prune
t_is "no work left in tmp/" "$(ls -A "$CTFS_ROOT/tmp")" ""
t_is "prune kept the three images" "$(ctfs images -q | wc -l)" 3
export_same() { ctfs export localhost/x:v1 | cmp -s - "$TMP/x.export.tar"; }
t_ok "x still exports after the prune, the same" export_same
