#!/bin/bash
# Every local transport imports the fixture image exactly: `ctfs export` of the image, untarred,
# is identical (treecmp: paths, types, modes, owners, sizes, contents, link targets, devices,
# xattrs, mtimes, hardlink structure) to `umoci unpack` of the same image.
#
# Each transport gets a store of its own, so that each one really ingests the layers (in a
# shared store the second pull would reuse the first one's layers and test nothing).
. "$(dirname "$0")/lib.sh"
require_root

fx_oci_image "$TMP/img" v1
fx_umoci_unpack "$TMP/img" v1 "$TMP/ref"
# umoci cannot unpack zstd layers; the zstd copy has the same tars, so the same reference.
fx_zstd_layout "$TMP/img" "$TMP/zimg" v1
fx_docker_archive "$TMP/img" v1 "$TMP/docker.tar" busybox:1
fx_oci_archive "$TMP/img" v1 "$TMP/oci.tar"

# use_store NAME: the following ctfs commands use a fresh store of their own.
use_store() {
	CTFS_ROOT=$TMP/root-$1
}

# check_export NAME: export the only image of the current store and compare it with the
# reference.
check_export() {
	local name=$1 id dst=$TMP/export-$1
	id=$(ctfs images -q 2>/dev/null || true)
	t_is "$name: one image in the store" "$(wc -w <<<"$id")" 1
	t_ok "$name: export" ctfs export "$id" -o "$dst.tar"
	t_ok "$name: export untars" fx_extract_tar "$dst.tar" "$dst"
	t_ok "$name: export is identical to umoci unpack" "$TREECMP" "$TMP/ref/rootfs" "$dst"
}

use_store oci
t_ok "pull oci:DIR:TAG" ctfs pull "oci:$TMP/img:v1"
t_like "oci: named localhost/<dir>:<tag>" "$(ctfs images)" 'localhost/img +v1 '
check_export oci

use_store zstd
t_ok "pull oci:DIR:TAG with zstd layers" ctfs pull "oci:$TMP/zimg:v1"
check_export zstd

use_store docker-archive
t_ok "pull docker-archive:FILE" ctfs pull "docker-archive:$TMP/docker.tar"
t_like "docker-archive: name normalized like docker" "$(ctfs images)" 'docker.io/library/busybox +1 '
check_export docker-archive

use_store oci-archive
t_ok "pull oci-archive:FILE:TAG" ctfs pull "oci-archive:$TMP/oci.tar:v1"
check_export oci-archive

use_store load-file
t_ok "load -i docker-archive" ctfs load -i "$TMP/docker.tar"
check_export load-file

use_store load-stdin
load_stdin() { ctfs load <"$1"; }
t_ok "load oci-archive from stdin" load_stdin "$TMP/oci.tar"
check_export load-stdin

# A second pull of the same image is a no-op and leaves the store as it was.
use_store oci
before=$(cd "$CTFS_ROOT" && find . -path ./tmp -prune -o -printf '%p %s %T@\n' | sort)
t_ok "pull again" ctfs pull "oci:$TMP/img:v1"
after=$(cd "$CTFS_ROOT" && find . -path ./tmp -prune -o -printf '%p %s %T@\n' | sort)
t_is "pull again: store unchanged" "$after" "$before"

# The layers of a local image are ingested side by side (one thread per CPU): one bad layer
# among them (its blob replaced by another layer's bytes) fails the pull with that layer's
# digest, and nothing of the others is published.
cp -a "$TMP/img" "$TMP/bad"
mdigest=$(jq -r '.manifests[0].digest' "$TMP/bad/index.json")
mapfile -t layers < <(jq -r '.layers[].digest' "$TMP/bad/blobs/sha256/${mdigest#sha256:}")
t_ok "the fixture has 3 layers or more" test "${#layers[@]}" -ge 3
mid=${layers[1]}
cp "$TMP/bad/blobs/sha256/${layers[0]#sha256:}" "$TMP/bad/blobs/sha256/${mid#sha256:}"
use_store bad
t_fail "pull with a bad middle layer fails" ctfs pull "oci:$TMP/bad:v1"
t_like "bad middle layer: one line naming its digest" "$(cat "$T_OUT")" \
	"^ctfs: pull oci:$TMP/bad:v1: digest mismatch for $mid: expected $mid, got sha256:[0-9a-f]{64}$"
t_is "bad middle layer: no image, layer or object published" \
	"$(cd "$CTFS_ROOT" && find images layers objects -type f 2>/dev/null | wc -l)" 0
t_is "bad middle layer: no work directory left" "$(find "$CTFS_ROOT/tmp" -mindepth 1 2>/dev/null | wc -l)" 0
t_ok "the good image pulls into that store" ctfs pull "oci:$TMP/img:v1"
check_export bad
