#!/bin/bash
# A registry that misbehaves once (registry-proxy.py in front of a real docker-registry): a
# connection dropped mid-blob is resumed with a Range request into the same ingest stream; a
# stalled one times out and resumes; 429 (Retry-After: 1) and 503 are retried; blobs redirected
# to another origin are fetched without the Authorization header. Every pull ends with the exact
# tree `umoci unpack` makes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry-lib.sh"
require_root
require_cmd docker-registry skopeo umoci jq

# Two layers: the busybox rootfs and 2 MB of incompressible data (so that there is something
# to drop in the middle of).
fx_busybox_image "$TMP/img" v1
big_file() { head -c 2000000 /dev/urandom >"$1/big"; }
_fx_bundle_edit "$TMP/img" v1 "a big layer" big_file
fx_umoci_unpack "$TMP/img" v1 "$TMP/ref"
reg_start main
reg_push "oci:$TMP/img:v1" img:v1

# proxy MODES: a fresh proxy in front of the registry, its port in P, its log in $TMP/proxy.log.
proxy() {
	: >"$TMP/proxy.log"
	py_server registry-proxy "$REG" "$1" "$TMP/proxy.log"
	P=127.0.0.1:$PY_PORT
}

# pulled NAME IMAGE: IMAGE is in the current store and exports like umoci unpack.
pulled() {
	local name=$1 image=$2 dst=$TMP/export-$1
	t_ok "$name: export" ctfs export "$image" -o "$dst.tar"
	t_ok "$name: export untars" fx_extract_tar "$dst.tar" "$dst"
	t_ok "$name: identical to umoci unpack" "$TREECMP" "$TMP/ref/rootfs" "$dst"
	t_ok "$name: no work directory left" tmp_empty
}

# ---- a dropped connection: resumed where it stopped ----
CTFS_ROOT=$TMP/root-drop
proxy drop
t_ok "drop: the pull succeeds" ctfs pull "$P/img:v1"
t_like "drop: the blob was resumed with a Range request" "$(grep '/blobs/' "$TMP/proxy.log")" 'range=bytes=[1-9][0-9]*-'
pulled drop "$P/img:v1"
: >"$TMP/proxy.log"
t_ok "pull again" ctfs pull "$P/img:v1"
t_is "pull again: only the ping and the manifest" "$(cut -d' ' -f1,2 "$TMP/proxy.log")" "GET /v2/
GET /v2/img/manifests/v1"

# ---- layers download in parallel: two layers that take 1.5 s each take 1.5 s ----
CTFS_ROOT=$TMP/root-slow
proxy slow
start=$(date +%s%N)
t_ok "slow: the pull succeeds" ctfs pull "$P/img:v1"
ms=$((($(date +%s%N) - start) / 1000000))
t_like "slow: both layers were downloaded at once (${ms} ms)" "$ms" '^(1[5-9][0-9][0-9]|2[0-6][0-9][0-9])$'

# ---- a stalled connection: times out (CTFS_HTTP_TIMEOUT), resumes ----
CTFS_ROOT=$TMP/root-stall
proxy stall
start=$SECONDS
t_ok "stall: the pull succeeds" env CTFS_HTTP_TIMEOUT=2 "$CTFS" --root "$CTFS_ROOT" pull "$P/img:v1"
t_like "stall: resumed with a Range request" "$(grep '/blobs/' "$TMP/proxy.log")" 'range=bytes=[1-9][0-9]*-'
t_like "stall: gave up on the stalled connection within seconds" "$((SECONDS - start))" '^([0-9])$'
pulled stall "$P/img:v1"

# ---- 429 with Retry-After: 1 on the manifest, 503 on a blob ----
CTFS_ROOT=$TMP/root-429
proxy 429,503
start=$SECONDS
t_ok "429/503: the pull succeeds" ctfs pull "$P/img:v1"
t_is "429: the manifest was asked for twice" "$(grep -c '/manifests/v1' "$TMP/proxy.log")" 2
t_like "429: Retry-After was honoured" "$((SECONDS - start))" '^[1-9]'
pulled 429 "$P/img:v1"

# ---- redirects to another origin do not carry the credentials ----
CTFS_ROOT=$TMP/root-redirect
proxy redirect
t_fail "redirect: without credentials the proxy refuses" ctfs pull "$P/img:v1"
t_like "redirect: says what is missing" "$(cat "$T_OUT")" "unauthorized \(HTTP 401\): authentication required \(no credentials: use ctfs login\)$"
t_ok "redirect: the pull succeeds" ctfs pull --creds user:pass "$P/img:v1"
t_like "redirect: blobs were fetched from the other origin" "$(cat "$TMP/proxy.log")" 'redirected=1 host=localhost:'
t_is "redirect: never with the Authorization header" "$(grep -c 'host=localhost.*auth=yes' "$TMP/proxy.log")" 0
t_like "redirect: the registry itself got it" "$(cat "$TMP/proxy.log")" 'manifests/v1 host=127.0.0.1:[0-9]+ range=- auth=yes'
pulled redirect "$P/img:v1"

