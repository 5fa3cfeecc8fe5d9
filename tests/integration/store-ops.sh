#!/bin/bash
# The image commands on a real store: images (table, -q, --digests, --no-trunc, --format json),
# list --images, tag, rmi (untag, several names, images a container uses, -f), inspect,
# export -o, prune, system df, help, version, and the one-line errors of bad usage. And the
# dedup invariant: an image with the same files as one in the store, layered differently, adds
# no object.
#
# Fixtures (umoci): a = the busybox rootfs in one layer; b = the same rootfs in two layers
# (bin/ first, the rest second); c = a (the same first layer) plus a layer of its own.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci jq

_bin_only() {
	fx_busybox_rootfs "$1"
	rm -rf "${1:?}"/{etc,home,root,tmp,var,dev,proc,sys,sbin,usr}
}
# The rest of the rootfs, bin/ left as it is: fx_busybox_rootfs over the bin-only tree would
# rewrite bin/ too (new mtimes), and a second layer holding the whole rootfs made in the same
# second as a's is a's layer, byte for byte (b then has one new layer, not two).
_the_rest() {
	local t
	t=$(mktemp -d "$TMP/rest.XXXXXX")
	fx_busybox_rootfs "$t"
	rm -rf "${t:?}/bin"
	cp -a "$t/." "$1/"
	rm -rf "$t"
}
_own_layer() {
	mkdir -p "$1/own"
	head -c 300000 /dev/urandom >"$1/own/random"
	echo "only in c" >"$1/own/note"
}
fx_busybox_image "$TMP/a" v1
umoci init --layout "$TMP/b"
umoci new --image "$TMP/b:v1"
_fx_bundle_edit "$TMP/b" v1 "bin only" _bin_only
_fx_bundle_edit "$TMP/b" v1 "the rest" _the_rest
_fx_config "$TMP/b" v1
cp -a "$TMP/a" "$TMP/c"
_fx_bundle_edit "$TMP/c" v1 "a layer of its own" _own_layer
fx_umoci_unpack "$TMP/a" v1 "$TMP/ref-a"
fx_umoci_unpack "$TMP/b" v1 "$TMP/ref-b"

# manifest_digest LAYOUT: the digest of the only manifest of an OCI layout.
manifest_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }

# one_error DESC CMD...: CMD fails with status 1 and exactly one "ctfs: " line on stderr.
one_error() {
	local desc=$1 rc=0
	shift
	"$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	t_is "$desc: exit status 1" "$rc" 1
	if [[ $(wc -l <"$TMP/err") == 1 && $(cat "$TMP/err") == "ctfs: "* ]]; then
		ok "$desc: one line on stderr"
	else
		not_ok "$desc: one line on stderr"
		diag_file "$TMP/err"
	fi
}

# bytes SIZE: a size as ctfs prints it (docker's decimal units: 1.98MB) in bytes.
bytes() {
	awk -v s="$1" 'BEGIN {
		n = s + 0; u = s; sub(/^[0-9.]+/, "", u)
		m["B"] = 1; m["kB"] = 1e3; m["MB"] = 1e6; m["GB"] = 1e9; m["TB"] = 1e12
		printf "%d\n", n * m[u] }'
}

count_objects() { find "$CTFS_ROOT/objects" -type f | wc -l; }
count_layers() { find "$CTFS_ROOT/layers" -mindepth 1 -maxdepth 1 | wc -l; }

# --- dedup: a and b hold the same files in different layers ----------------------------------

t_ok "pull a (one layer)" ctfs pull "oci:$TMP/a:v1"
objects_a=$(count_objects)
bytes_a=$(find "$CTFS_ROOT/objects" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
t_ok "pull b (the same files in two layers)" ctfs pull "oci:$TMP/b:v1"
t_like "b: two new layers" "$(cat "$T_OUT")" '2 layers, 2 new'
t_is "b adds no object: every file's content is in the store already" "$(count_objects)" "$objects_a"
t_is "three layers in the store" "$(count_layers)" 3
# export_b DIR: export b, untarred into DIR (and kept as DIR.tar).
export_b() {
	ctfs export localhost/b:v1 >"$1.tar" && fx_extract_tar "$1.tar" "$1"
}
t_ok "b exports" export_b "$TMP/xb"
t_ok "b's export is identical to umoci unpack" "$TREECMP" "$TMP/ref-b/rootfs" "$TMP/xb"

# system df: two images' worth of bytes shown, one on disk.
t_ok "system df" ctfs system df
df_out=$(cat "$T_OUT")
diag "$df_out"
read -r _ total shown disk saved < <(grep '^Images ' <<<"$df_out")
t_is "df: two images" "$total" 2
shown=$(bytes "$shown") disk=$(bytes "$disk") saved=$(bytes "$saved")
t_ok "df: on disk is about one copy (shown $shown, on disk $disk)" \
	awk -v s="$shown" -v d="$disk" 'BEGIN { exit !(d > 0.45 * s && d < 0.55 * s) }'
t_ok "df: on disk is what the objects take ($bytes_a bytes of content, $disk on disk)" \
	awk -v a="$bytes_a" -v d="$disk" 'BEGIN { exit !(d >= a && d < a * 1.1 + 65536) }'
t_ok "df: dedup saved bytes" test "$saved" -gt 0
for n in localhost/a:v1 localhost/b:v1; do
	read -r _ _ size shared unique < <(grep "^$n " <<<"$df_out")
	t_ok "df: $n shares its bytes (size $size, shared $shared)" test "$(bytes "$shared")" -gt 0
	t_is "df: $n has no unique bytes" "$unique" 0B
	t_is "df: $n shares all of them" "$shared" "$size"
done

t_ok "pull c (a plus a layer of its own)" ctfs pull "oci:$TMP/c:v1"
t_like "c: one new layer, the first reused" "$(cat "$T_OUT")" '2 layers, 1 new'
t_is "c adds its own objects only" "$(count_objects)" $((objects_a + 2))

ID_A=$(ctfs inspect localhost/a:v1 | jq -r '.[0].Id | ltrimstr("sha256:")')
ID_B=$(ctfs inspect localhost/b:v1 | jq -r '.[0].Id | ltrimstr("sha256:")')
ID_C=$(ctfs inspect localhost/c:v1 | jq -r '.[0].Id | ltrimstr("sha256:")')
t_like "ids are sha256 hex" "$ID_A $ID_B $ID_C" '^[0-9a-f]{64} [0-9a-f]{64} [0-9a-f]{64}$'

# --- images ----------------------------------------------------------------------------------

t_ok "images" ctfs images
table=$(cat "$T_OUT")
t_like "images: header" "$(head -n1 <<<"$table")" '^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$'
t_is "images: one row per name" "$(tail -n +2 <<<"$table" | wc -l)" 3
t_like "images: a's row" "$(grep '^localhost/a ' <<<"$table")" \
	"^localhost/a +v1 +${ID_A:0:12} +[A-Za-z0-9 ]+ago +[0-9.]+[kMG]?B$"
t_like "images: c's row" "$(grep '^localhost/c ' <<<"$table")" "^localhost/c +v1 +${ID_C:0:12} "
t_is "images -q: short ids" "$(ctfs images -q | sort)" \
	"$(printf '%s\n' "${ID_A:0:12}" "${ID_B:0:12}" "${ID_C:0:12}" | sort)"
t_is "images -q --no-trunc: full ids, as docker's" "$(ctfs images -q --no-trunc | sort)" \
	"$(printf 'sha256:%s\n' "$ID_A" "$ID_B" "$ID_C" | sort)"
t_like "images --no-trunc: full id in the table" "$(ctfs images --no-trunc | grep '^localhost/a ')" " sha256:$ID_A "
t_is "images REPOSITORY: that one's" "$(ctfs images -q localhost/a)" "${ID_A:0:12}"
t_is "images REPOSITORY:TAG" "$(ctfs images -q localhost/c:v1) $(ctfs images -q localhost/c:v2 | wc -l)" "${ID_C:0:12} 0"
t_is "images --format TEMPLATE, as docker's" "$(ctfs images --format '{{.Repository}}:{{.Tag}} {{.ID}}' localhost/a)" "localhost/a:v1 ${ID_A:0:12}"
t_is "images --format 'table ...': a header" "$(ctfs images --format 'table {{.Repository}}' localhost/a)" $'REPOSITORY\nlocalhost/a'
t_ok "images --digests" ctfs images --digests
t_like "images --digests: header" "$(head -n1 "$T_OUT")" '^REPOSITORY +TAG +DIGEST +IMAGE ID +CREATED +SIZE$'
t_like "images --digests: a's manifest digest" "$(grep '^localhost/a ' "$T_OUT")" \
	"^localhost/a +v1 +$(manifest_digest "$TMP/a") +${ID_A:0:12} "
t_ok "images --format json" ctfs images --format json
json=$(cat "$T_OUT")
t_is "json: three images" "$(jq length <<<"$json")" 3
t_is "json: a's names" "$(jq -c --arg id "$ID_A" '.[] | select(.Id == $id) | .Names' <<<"$json")" '["localhost/a:v1"]'
t_is "json: a's digest" "$(jq -r --arg id "$ID_A" '.[] | select(.Id == $id) | .Digest' <<<"$json")" \
	"$(manifest_digest "$TMP/a")"
t_is "json: sizes are numbers, a's and b's equal" \
	"$(jq -r --arg a "$ID_A" --arg b "$ID_B" '[.[] | select(.Id == $a or .Id == $b) | .Size] | unique | length' <<<"$json")" 1
t_ok "json: sizes and creation times are positive numbers" \
	jq -e 'all(.[]; (.Size | type == "number" and . > 0) and (.Created | type == "number" and . > 0))' <<<"$json"
t_like "list --images: the table's header" "$(ctfs list --images | head -n1)" '^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$'
t_is "list --images: the same images" "$(ctfs list --images --format json)" "$json"
t_is "list --images -q" "$(ctfs list --images -q | sort)" "$(ctfs images -q | sort)"

# --- inspect ---------------------------------------------------------------------------------

t_ok "inspect a" ctfs inspect localhost/a:v1
t_is "inspect: Id" "$(jq -r '.[0].Id' "$T_OUT")" "sha256:$ID_A"
t_is "inspect: RepoTags" "$(jq -c '.[0].RepoTags' "$T_OUT")" '["localhost/a:v1"]'
t_is "inspect: Config.Cmd" "$(jq -c '.[0].Config.Cmd' "$T_OUT")" '["/bin/sh"]'
t_is "inspect: Config.Env" "$(jq -c '.[0].Config.Env' "$T_OUT")" '["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]'
t_is "inspect: one layer" "$(jq '.[0].RootFS.Layers | length' "$T_OUT")" 1
t_is "inspect b: two layers" "$(ctfs inspect localhost/b:v1 | jq '.[0].RootFS.Layers | length')" 2
t_is "inspect c: two layers, the first a's" \
	"$(ctfs inspect localhost/c:v1 | jq -r '.[0].RootFS.Layers[0]')" \
	"$(ctfs inspect localhost/a:v1 | jq -r '.[0].RootFS.Layers[0]')"
t_is "inspect by short id" "$(ctfs inspect "${ID_B:0:12}" | jq -r '.[0].Id')" "sha256:$ID_B"
t_is "inspect by sha256:id" "$(ctfs inspect "sha256:$ID_C" | jq -r '.[0].Id')" "sha256:$ID_C"
t_is "inspect two images" "$(ctfs inspect localhost/a:v1 localhost/b:v1 | jq length)" 2
one_error "inspect a missing image" ctfs inspect no/such:image

# --- tag -------------------------------------------------------------------------------------

t_ok "tag with a short name" ctfs tag localhost/a:v1 busybox:mine
t_is "short names mean docker.io/library/" "$(jq -r '."docker.io/library/busybox:mine"' "$CTFS_ROOT/refs.json")" "$ID_A"
t_ok "tag by id, no tag" ctfs tag "${ID_A:0:8}" myrepo/x
t_is "no tag means latest" "$(jq -r '."docker.io/myrepo/x:latest"' "$CTFS_ROOT/refs.json")" "$ID_A"
t_like "images shows the new names" "$(ctfs images)" 'docker.io/library/busybox +mine +'"${ID_A:0:12}"
t_is "inspect shows every name" "$(ctfs inspect busybox:mine | jq -c '.[0].RepoTags')" \
	'["docker.io/library/busybox:mine","docker.io/myrepo/x:latest","localhost/a:v1"]'
t_ok "tag moves a name" ctfs tag localhost/b:v1 myrepo/x
t_is "the name now names b" "$(jq -r '."docker.io/myrepo/x:latest"' "$CTFS_ROOT/refs.json")" "$ID_B"
one_error "tag a missing image" ctfs tag no/such:image foo
one_error "tag with an invalid name" ctfs tag localhost/a:v1 'Bad:Name'
t_ok "refs.json stays valid JSON" jq -e 'type == "object"' "$CTFS_ROOT/refs.json"

# --- rmi -------------------------------------------------------------------------------------

t_ok "rmi one of two names" ctfs rmi busybox:mine
t_is "rmi one of two names: untagged only" "$(cat "$T_OUT")" "Untagged: docker.io/library/busybox:mine"
t_is "the image stays" "$(ctfs inspect "$ID_A" | jq -c '.[0].RepoTags')" '["localhost/a:v1"]'
ctfs tag localhost/a:v1 busybox:mine
one_error "rmi of an id with several names, without -f" ctfs rmi "${ID_A:0:12}"
t_like "the refusal says why" "$(cat "$TMP/err")" 'referenced by 2 names'
t_is "the refused image stays" "$(ctfs inspect "$ID_A" | jq '.[0].RepoTags | length')" 2
one_error "rmi of a missing image" ctfs rmi no/such:image

# A container record (the runtime is not there yet): the image it uses stays unless -f.
CID=$(printf '%s' "ctfs-test-container" | sha256sum | cut -d' ' -f1)
mkdir -p "$CTFS_ROOT/containers/$CID"
printf '{"id":"%s","image":"%s"}\n' "$CID" "$ID_C" >"$CTFS_ROOT/containers/$CID/config.json"
one_error "rmi of an image a container uses" ctfs rmi localhost/c:v1
t_like "the refusal names the container use" "$(cat "$TMP/err")" 'used by 1 container'
t_ok "prune keeps an image a container uses, even unnamed" ctfs prune
c_has_own() { ctfs export localhost/c:v1 | tar -t | grep -x ./own/random >/dev/null; }
t_ok "so c still exports" c_has_own
t_ok "rmi -f of an image a container uses" ctfs rmi -f localhost/c:v1
t_is "rmi -f: untagged, kept for the container (as docker does)" "$(cat "$T_OUT")" "Untagged: localhost/c:v1"
t_like "the image stays, unnamed" "$(ctfs images)" "<none> +<none> +${ID_C:0:12} "
t_ok "prune keeps it while the container exists" ctfs prune
t_ok "its tree is still there" test -f "$CTFS_ROOT/images/$ID_C/tree"
rm -rf "${CTFS_ROOT:?}/containers/$CID"

t_ok "rmi -f of an id with several names" ctfs rmi -f "$ID_A"
t_is "rmi -f: every name untagged" "$(grep -c '^Untagged: ' "$T_OUT")" 2
t_like "rmi -f: deleted" "$(cat "$T_OUT")" "Deleted: sha256:$ID_A"
t_is "a is removed; b stays, and c unnamed until prune" "$(ctfs images -q --no-trunc | sort)" "$(printf 'sha256:%s\n' "$ID_B" "$ID_C" | sort)"

# --- prune -----------------------------------------------------------------------------------

objects_before=$(count_objects)
layers_before=$(count_layers)
t_ok "prune" ctfs prune
prune_out=$(cat "$T_OUT")
diag "$prune_out"
t_like "prune: says what it freed" "$prune_out" '^Deleted 1 image, 2 layers, 2 objects'
reclaimed=$(sed -n 's/^Total reclaimed space: //p' <<<"$prune_out")
t_ok "prune: bytes reclaimed ($reclaimed) cover c's own layer" test "$(bytes "$reclaimed")" -ge 300000
t_is "prune: c's objects are gone, a's (which b uses) stay" "$(count_objects)" $((objects_before - 2))
t_is "prune: a's layer and c's are gone, b's two stay" "$(count_layers)" $((layers_before - 2))
t_is "prune: b's objects are intact" \
	"$(find "$CTFS_ROOT/objects" -type f -exec sha256sum {} + | awk '{ n = split($2, p, "/"); if (p[n] != $1) print $2 }')" ""
t_ok "prune: b still exports" export_b "$TMP/xb2"
t_ok "prune: b's export is still identical to umoci unpack" "$TREECMP" "$TMP/ref-b/rootfs" "$TMP/xb2"
t_ok "prune again" ctfs prune
t_like "prune again frees nothing" "$(cat "$T_OUT")" $'^Deleted 0 images, 0 layers, 0 objects, 0 blobs\nTotal reclaimed space: 0B'

# --- export -o -------------------------------------------------------------------------------

t_ok "export -o FILE" ctfs export -o "$TMP/b-o.tar" localhost/b:v1
t_is "export -o writes the same stream as stdout" "$(sha256sum <"$TMP/b-o.tar")" "$(sha256sum <"$TMP/xb2.tar")"
one_error "export -o of a missing image" ctfs export -o "$TMP/missing.tar" no/such:image
t_is "a failed export leaves no file" "$(find "$TMP" -maxdepth 1 -name 'missing.tar*' | wc -l)" 0
one_error "export -o into a missing directory" ctfs export -o "$TMP/no/such/dir/x.tar" localhost/b:v1
# A failure in the middle of the stream (an object gone from a copy of the store).
cp -a "$CTFS_ROOT" "$TMP/broken-root"
find "$TMP/broken-root/objects" -type f -size +100k -delete
one_error "export -o with an object missing" "$CTFS" --root "$TMP/broken-root" export -o "$TMP/broken.tar" localhost/b:v1
t_is "a failed export leaves no partial file" "$(find "$TMP" -maxdepth 1 -name 'broken.tar*' | wc -l)" 0

# --- help, version, usage --------------------------------------------------------------------

t_ok "help pull" ctfs help pull
t_like "help pull: usage line" "$(head -n1 "$T_OUT")" '^usage: ctfs pull '
t_ok "help" ctfs help
t_like "help lists the commands" "$(cat "$T_OUT")" 'images +list images'
t_ok "version" ctfs version
t_like "version" "$(cat "$T_OUT")" '^ctfs version [0-9]+\.[0-9]+\.[0-9]+'
one_error "unknown command" ctfs frobnicate
one_error "help for an unknown command" ctfs help frobnicate
one_error "tag with one argument" ctfs tag onlyone
t_like "bad usage names the usage" "$(cat "$TMP/err")" '^ctfs: usage: ctfs tag SOURCE TARGET$'
one_error "export without an image" ctfs export
one_error "rmi without an image" ctfs rmi
one_error "pull with two references" ctfs pull a b
one_error "images with an unknown option" ctfs images --frob
t_is "... naming it, as docker does" "$(cat "$TMP/err")" "ctfs: images: unknown flag: --frob (see ctfs images --help)"
one_error "ps with an unknown short option" ctfs ps -z
t_is "... naming it" "$(cat "$TMP/err")" "ctfs: ps: unknown flag: -z (see ctfs ps --help)"
one_error "stop -t without its value" ctfs stop -t
t_is "... saying so" "$(cat "$TMP/err")" "ctfs: stop: flag needs an argument: -t (see ctfs stop --help)"
one_error "a value for a flag that takes none" ctfs ps --all=yes
t_is "... saying so" "$(cat "$TMP/err")" "ctfs: ps: flag takes no value: --all (see ctfs ps --help)"
one_error "an unknown short flag in a cluster" ctfs ps --all -Xq
t_is "... names it" "$(cat "$TMP/err")" "ctfs: ps: unknown flag: -X (see ctfs ps --help)"
t_ok "--help after other flags succeeds" ctfs ps -a --help
t_like "... with the usage" "$(cat "$T_OUT")" '^usage: ctfs ps '
rc=0; out=$(ctfs images -q "oci:$TMP/a") || rc=$?
t_is "images oci:DIR names no image here (and does not crash)" "$rc:$out" "0:"
t_ok "COMMAND --help succeeds" ctfs wait --help
t_like "... with the usage on stdout" "$(cat "$T_OUT")" '^usage: ctfs wait CONTAINER'
one_error "images with a template it cannot run" ctfs images --format "{{nope}}"
one_error "system without df" ctfs system
one_error "pull of a missing layout" ctfs pull "oci:$TMP/no-such-layout:v1"
