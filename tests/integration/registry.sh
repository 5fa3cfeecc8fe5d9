#!/bin/bash
# Pulls from a real registry: Debian's docker-registry on 127.0.0.1, fixtures pushed with skopeo.
# The pulled trees (gzip and zstd layers) are identical to `umoci unpack` of the fixture; a second
# pull changes nothing; pulls by digest; a multi-platform index picks the host's platform, the
# one --platform names, or fails listing what it has; a tampered layer or config fails with the
# digest-mismatch line and leaves the store as it was; errors name the image and what the
# registry said.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry-lib.sh"
require_root
require_cmd docker-registry skopeo umoci jq

fx_oci_image "$TMP/img" v1
fx_umoci_unpack "$TMP/img" v1 "$TMP/ref"
fx_zstd_layout "$TMP/img" "$TMP/zimg" v1

reg_start main
reg_push "oci:$TMP/img:v1" fixture:v1
reg_push "oci:$TMP/zimg:v1" fixture-zstd:v1

# check_export NAME IMAGE: `ctfs export IMAGE`, untarred, is identical to the reference.
check_export() {
	local name=$1 image=$2 dst=$TMP/export-$1
	t_ok "$name: export" ctfs export "$image" -o "$dst.tar"
	t_ok "$name: export untars" fx_extract_tar "$dst.tar" "$dst"
	t_ok "$name: identical to umoci unpack" "$TREECMP" "$TMP/ref/rootfs" "$dst"
}

# ---- gzip layers, a second pull, docker:// ----
t_ok "pull from the registry (gzip layers)" ctfs pull "$REG/fixture:v1"
t_like "pull: one summary line" "$(cat "$T_OUT")" "^Pulled $REG/fixture:v1 \(sha256:[0-9a-f]{12}\): 4 layers, 4 new$"
t_like "pull: named registry/repository:tag" "$(ctfs images)" "$REG/fixture +v1 "
check_export gzip "$REG/fixture:v1"

before=$(store_listing)
t_ok "pull again" ctfs pull "docker://$REG/fixture:v1"
t_like "pull again: up to date" "$(cat "$T_OUT")" "^Image is up to date for $REG/fixture:v1 "
t_is "pull again: store unchanged" "$(store_listing)" "$before"
t_ok "pull again: no work directory left" tmp_empty

q_out=$(ctfs pull -q "$REG/fixture:v1" 2>&1)
t_like "pull -q: only the image id" "$q_out" '^sha256:[0-9a-f]{64}$'

# ---- zstd layers ----
CTFS_ROOT=$TMP/root-zstd
t_ok "pull zstd layers" ctfs pull "$REG/fixture-zstd:v1"
check_export zstd "$REG/fixture-zstd:v1"

# ---- by digest ----
CTFS_ROOT=$TMP/root-digest
digest=sha256:$(skopeo inspect -n --raw --tls-verify=false "docker://$REG/fixture:v1" | sha256sum | cut -d' ' -f1)
t_ok "pull by digest" ctfs pull "$REG/fixture@$digest"
t_like "by digest: named by digest" "$(ctfs images --digests)" "$REG/fixture +<none> +$digest "
check_export digest "$REG/fixture@$digest"
t_fail "pull by a digest the registry does not have" ctfs pull "$REG/fixture@sha256:$(printf '0%.0s' {1..64})"
t_like "unknown digest: one clear line" "$(cat "$T_OUT")" "^ctfs: pull $REG/fixture@sha256:0+: manifest sha256:0+: not found \(HTTP 404\): manifest unknown$"

# ---- errors name the image and what the registry said ----
t_fail "pull an unknown tag" ctfs pull "$REG/fixture:nope"
t_like "unknown tag: one clear line" "$(cat "$T_OUT")" "^ctfs: pull $REG/fixture:nope: manifest nope: not found \(HTTP 404\): manifest unknown$"
t_is "unknown tag: one line" "$(wc -l <"$T_OUT")" 1
t_fail "pull from a port nothing listens on" ctfs pull "127.0.0.1:$(free_port)/x:y"
t_like "no registry: says so" "$(cat "$T_OUT")" "^ctfs: pull 127.0.0.1:[0-9]+/x:y: ping http://127.0.0.1:[0-9]+/v2/: .*(connect|refused)"
t_fail "an invalid reference fails before any request" ctfs pull "$REG/Fixture:v1"
t_like "invalid reference: says so" "$(cat "$T_OUT")" "invalid reference format"

# ---- a multi-platform index ----
# Two images (amd64 and arm64/v8) that share their only layer, in an index written by hand.
fx_busybox_image "$TMP/multi" amd64
umoci config --image "$TMP/multi:amd64" --tag arm64 --architecture arm64
desc() { jq -c --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | {mediaType, digest, size}' "$TMP/multi/index.json"; }
jq -n --argjson a "$(desc amd64)" --argjson b "$(desc arm64)" '{schemaVersion: 2,
	mediaType: "application/vnd.oci.image.index.v1+json",
	manifests: [($a + {platform: {os: "linux", architecture: "amd64"}}),
	            ($b + {platform: {os: "linux", architecture: "arm64", variant: "v8"}})]}' >"$TMP/index.blob"
ihex=$(sha256sum "$TMP/index.blob" | cut -d' ' -f1)
cp "$TMP/index.blob" "$TMP/multi/blobs/sha256/$ihex"
jq -n --arg d "sha256:$ihex" --argjson s "$(stat -c %s "$TMP/index.blob")" '{schemaVersion: 2, manifests: [{
	mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
	annotations: {"org.opencontainers.image.ref.name": "multi"}}]}' >"$TMP/multi/index.json"
reg_push "oci:$TMP/multi:multi" multi:v1 --all

case $(uname -m) in
x86_64) host_arch=amd64 ;;
aarch64) host_arch=arm64 ;;
*) host_arch= ;;
esac
CTFS_ROOT=$TMP/root-multi
if [[ -n $host_arch ]]; then
	t_ok "index: pull picks the host's platform" ctfs pull "$REG/multi:v1"
	t_is "index: the host's image" "$(ctfs inspect "$REG/multi:v1" | jq -r '.[0].Architecture')" "$host_arch"
else
	skip "index: pull picks the host's platform" "host is neither amd64 nor arm64"
	skip "index: the host's image" "host is neither amd64 nor arm64"
fi
other=arm64
[[ $host_arch == arm64 ]] && other=amd64
t_ok "index: --platform linux/$other" ctfs pull --platform "linux/$other" "$REG/multi:v1"
t_is "index: --platform: that platform's image" "$(ctfs inspect "$REG/multi:v1" | jq -r '.[0].Architecture')" "$other"
if [[ -n $host_arch ]]; then
	t_like "index: the shared layer is not downloaded again" "$(cat "$T_OUT")" ": 1 layer, 0 new$"
else
	skip "index: the shared layer is not downloaded again" "host is neither amd64 nor arm64"
fi
t_fail "index: --platform with no match" ctfs pull --platform linux/riscv64 "$REG/multi:v1"
t_like "index: no match lists the platforms" "$(cat "$T_OUT")" \
	"^ctfs: pull $REG/multi:v1: no image for platform linux/riscv64 in v1 \(it has: linux/amd64, linux/arm64/v8\)$"
t_fail "index: an invalid --platform" ctfs pull --platform linux "$REG/multi:v1"

# ---- tampered blobs: the digest-mismatch line, and nothing published ----
# A two-layer image no store has, then the bytes of its last layer changed in the registry's
# storage: the first layer verifies, but it is published with the image or not at all.
fx_busybox_image "$TMP/tamper" v1
unique_file() { head -c 100000 /dev/urandom >"$1/unique"; }
_fx_bundle_edit "$TMP/tamper" v1 "a unique layer" unique_file
reg_push "oci:$TMP/tamper:v1" tamper:v1
mdigest=$(jq -r '.manifests[0].digest' "$TMP/tamper/index.json")
layer=$(jq -r '.layers[-1].digest' "$TMP/tamper/blobs/sha256/${mdigest#sha256:}")
config=$(jq -r '.config.digest' "$TMP/tamper/blobs/sha256/${mdigest#sha256:}")
flip_byte() { # FILE: change one byte in the middle
	local f=$1 size off byte
	size=$(stat -c %s "$f")
	off=$((size / 2))
	byte=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
	# shellcheck disable=SC2059 # the format is the octal escape of the new byte
	printf "$(printf '\\%03o' $(((byte + 1) % 256)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
cp "$(reg_blob_path "$layer")" "$TMP/layer.orig"
flip_byte "$(reg_blob_path "$layer")"
CTFS_ROOT=$TMP/root
before=$(store_listing)
t_fail "tampered layer: the pull fails" ctfs pull "$REG/tamper:v1"
t_like "tampered layer: digest mismatch line" "$(cat "$T_OUT")" \
	"^ctfs: pull $REG/tamper:v1: digest mismatch for $layer: expected $layer, got sha256:[0-9a-f]{64}$"
t_is "tampered layer: store unchanged" "$(store_listing)" "$before"
t_ok "tampered layer: no work directory left" tmp_empty
cp "$TMP/layer.orig" "$(reg_blob_path "$layer")"
cp "$(reg_blob_path "$config")" "$TMP/config.orig"
flip_byte "$(reg_blob_path "$config")"
t_fail "tampered config: the pull fails" ctfs pull "$REG/tamper:v1"
t_like "tampered config: digest mismatch line" "$(cat "$T_OUT")" \
	"^ctfs: pull $REG/tamper:v1: digest mismatch for $config: expected $config, got sha256:[0-9a-f]{64}$"
t_is "tampered config: store unchanged" "$(store_listing)" "$before"
cp "$TMP/config.orig" "$(reg_blob_path "$config")"
# The same tar compressed again, padded to the same size (a gzip comment): every entry, the size
# and the diffid check out, but the blob is not the one the manifest names.
python3 - "$TMP/layer.orig" "$(reg_blob_path "$layer")" <<-'PY'
	import gzip, struct, sys, zlib
	orig = open(sys.argv[1], "rb").read()
	tar = gzip.decompress(orig)
	c = zlib.compressobj(9, zlib.DEFLATED, -15)
	body = c.compress(tar) + c.flush()
	pad = len(orig) - len(body) - 10 - 8 - 1  # header, trailer, the comment's NUL
	assert pad >= 0
	hdr = b"\x1f\x8b\x08\x10" + b"\0" * 4 + b"\x02\xff" + b"c" * pad + b"\0"
	open(sys.argv[2], "wb").write(hdr + body + struct.pack("<II", zlib.crc32(tar), len(tar) & 0xFFFFFFFF))
PY
t_fail "recompressed layer: the pull fails" ctfs pull "$REG/tamper:v1"
t_like "recompressed layer: digest mismatch line" "$(cat "$T_OUT")" \
	"^ctfs: pull $REG/tamper:v1: digest mismatch for $layer: expected $layer, got sha256:[0-9a-f]{64}$"
t_is "recompressed layer: store unchanged" "$(store_listing)" "$before"
cp "$TMP/layer.orig" "$(reg_blob_path "$layer")"
t_ok "the untampered image pulls" ctfs pull "$REG/tamper:v1"
