#!/bin/bash
# Registry auth and transport security, against real docker-registry instances on 127.0.0.1:
# HTTP Basic (htpasswd), the Bearer token flow (the registry in token mode, token-server.py
# minting RS256 JWTs signed with openssl), credentials from --creds, auth.json (login/logout
# write it as podman does) and docker's config.json; wrong credentials are refused with one
# clear line; TLS with a private CA: refused by default, accepted with --cert-dir or
# --tls-verify=false.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/registry-lib.sh"
require_root
require_cmd docker-registry skopeo umoci jq openssl htpasswd

fx_busybox_image "$TMP/img" v1
second_layer() { echo "second layer" >"$1/second"; }
_fx_bundle_edit "$TMP/img" v1 "a second layer" second_layer
# Credentials come only from what each test gives.
export REGISTRY_AUTH_FILE=$TMP/auth.json
export HOME=$TMP/home XDG_RUNTIME_DIR=$TMP/xdg
mkdir -p "$HOME" "$XDG_RUNTIME_DIR"

# ---- HTTP Basic ----
htpasswd -Bbn alice s3cret >"$TMP/htpasswd" 2>/dev/null
reg_start basic "auth:
  htpasswd:
    realm: ctfs-basic
    path: $TMP/htpasswd"
BASIC=$REG
reg_push "oci:$TMP/img:v1" img:v1 --dest-creds alice:s3cret

CTFS_ROOT=$TMP/root-basic
t_fail "basic: anonymous pull refused" ctfs pull "$BASIC/img:v1"
t_like "basic: anonymous: one clear line" "$(cat "$T_OUT")" \
	"^ctfs: pull $BASIC/img:v1: manifest v1: unauthorized \(HTTP 401\): authentication required \(no credentials: use ctfs login\)$"
t_fail "basic: wrong password refused" ctfs pull --creds alice:wrong "$BASIC/img:v1"
t_like "basic: wrong password: one clear line" "$(cat "$T_OUT")" \
	"^ctfs: pull $BASIC/img:v1: manifest v1: unauthorized \(HTTP 401\): authentication required \(the credentials were refused\)$"
t_ok "basic: pull with --creds" ctfs pull --creds alice:s3cret "$BASIC/img:v1"
t_like "basic: pulled" "$T_OUT" ''
t_like "basic: two layers" "$(cat "$T_OUT")" ': 2 layers, 2 new$'

# login / logout
login() { ctfs login "$@"; }
t_fail "login: wrong password refused" login -u alice --password-stdin "$BASIC" <<<"nope"
t_like "login: wrong password: one clear line" "$(cat "$T_OUT")" \
	"^ctfs: login $BASIC: log in: unauthorized \(HTTP 401\): authentication required \(the credentials were refused\)$"
t_ok "login: nothing written after a refusal" test ! -e "$REGISTRY_AUTH_FILE"
t_ok "login: right password" login -u alice --password-stdin "$BASIC" <<<"s3cret"
t_like "login: says so" "$(cat "$T_OUT")" '^Login Succeeded!$'
t_is "login: auth.json mode 0600" "$(stat -c %a "$REGISTRY_AUTH_FILE")" 600
t_is "login: auth.json holds base64(user:password) under the registry" \
	"$(jq -r --arg r "$BASIC" '.auths[$r].auth' "$REGISTRY_AUTH_FILE" | base64 -d)" "alice:s3cret"
CTFS_ROOT=$TMP/root-basic2
t_ok "login: a pull uses the saved credentials" ctfs pull "$BASIC/img:v1"
t_ok "logout" ctfs logout "$BASIC"
t_like "logout: says so" "$(cat "$T_OUT")" "^Removed login credentials for $BASIC$"
t_is "logout: the entry is gone" "$(jq -c '.auths' "$REGISTRY_AUTH_FILE")" '{}'
t_fail "logout again: not logged in" ctfs logout "$BASIC"
t_like "logout again: one clear line" "$(cat "$T_OUT")" "^ctfs: logout $BASIC: not logged in"
CTFS_ROOT=$TMP/root-basic3
t_fail "after logout: pull refused" ctfs pull "$BASIC/img:v1"

# docker's config.json (when no REGISTRY_AUTH_FILE is set)
mkdir -p "$HOME/.docker"
jq -n --arg r "$BASIC" --arg a "$(printf alice:s3cret | base64)" '{auths: {($r): {auth: $a}}}' >"$HOME/.docker/config.json"
t_ok "docker config.json: pull" env -u REGISTRY_AUTH_FILE "$CTFS" --root "$CTFS_ROOT" pull "$BASIC/img:v1"
# $XDG_RUNTIME_DIR/containers/auth.json comes first
mkdir -p "$XDG_RUNTIME_DIR/containers"
jq -n --arg r "$BASIC" --arg a "$(printf alice:bad | base64)" '{auths: {($r): {auth: $a}}}' >"$XDG_RUNTIME_DIR/containers/auth.json"
CTFS_ROOT=$TMP/root-basic4
t_fail "containers auth.json comes before docker's" env -u REGISTRY_AUTH_FILE "$CTFS" --root "$CTFS_ROOT" pull "$BASIC/img:v1"
rm -f "$XDG_RUNTIME_DIR/containers/auth.json"
echo '{broken' >"$REGISTRY_AUTH_FILE"
t_fail "a broken auth file is an error" ctfs pull "$BASIC/img:v1"
t_like "broken auth file: names it" "$(cat "$T_OUT")" "read credentials from $REGISTRY_AUTH_FILE: not a valid auth file"
rm -f "$REGISTRY_AUTH_FILE"

# ---- Bearer tokens ----
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/token.key" -out "$TMP/token.crt" -days 2 \
	-subj /CN=ctfs-token-issuer 2>/dev/null
: >"$TMP/token.log"
py_server token-server "$TMP/token.key" "$TMP/token.crt" ctfs-issuer ctfs-registry bob hunter2 "$TMP/token.log"
TOKEN_PORT=$PY_PORT
reg_start bearer "auth:
  token:
    realm: http://127.0.0.1:$TOKEN_PORT/token
    service: ctfs-registry
    issuer: ctfs-issuer
    rootcertbundle: $TMP/token.crt"
BEARER=$REG
reg_push "oci:$TMP/img:v1" team/img:v1 --dest-creds bob:hunter2

CTFS_ROOT=$TMP/root-bearer
t_fail "bearer: anonymous pull refused" ctfs pull "$BEARER/team/img:v1"
t_like "bearer: anonymous: one clear line" "$(cat "$T_OUT")" \
	"^ctfs: pull $BEARER/team/img:v1: unauthorized: get token from http://127.0.0.1:$TOKEN_PORT/token: authentication required$"
t_fail "bearer: wrong password refused" ctfs pull --creds bob:wrong "$BEARER/team/img:v1"
t_like "bearer: wrong password: one clear line" "$(cat "$T_OUT")" \
	"^ctfs: pull $BEARER/team/img:v1: unauthorized: get token from http://127.0.0.1:$TOKEN_PORT/token: the credentials were refused: incorrect username or password$"
: >"$TMP/token.log"
t_ok "bearer: pull with --creds" ctfs pull --creds bob:hunter2 "$BEARER/team/img:v1"
t_like "bearer: both layers" "$(cat "$T_OUT")" ': 2 layers, 2 new$'
t_is "bearer: one token for the whole pull (reused across manifest, config and layers)" \
	"$(cat "$TMP/token.log")" "token user=bob scope=repository:team/img:pull ok=True"
t_ok "bearer: login" login -u bob -p hunter2 "$BEARER"
t_fail "bearer: login with a wrong password" login -u bob -p nope "$BEARER"
t_like "bearer: login refused: one clear line" "$(cat "$T_OUT")" "^ctfs: login $BEARER: unauthorized: get token"
CTFS_ROOT=$TMP/root-bearer2
t_ok "bearer: pull with the saved credentials" ctfs pull "$BEARER/team/img:v1"

# ---- TLS with a private CA ----
mkdir -p "$TMP/certs"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/ca.key" -out "$TMP/certs/ca.crt" -days 2 \
	-subj /CN=ctfs-test-ca 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$TMP/srv.key" -out "$TMP/srv.csr" -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$TMP/srv.ext"
openssl x509 -req -in "$TMP/srv.csr" -CA "$TMP/certs/ca.crt" -CAkey "$TMP/ca.key" -CAcreateserial \
	-out "$TMP/srv.crt" -days 2 -extfile "$TMP/srv.ext" 2>/dev/null
reg_start tls "" "$TMP/srv.crt" "$TMP/srv.key"
TLS=$REG
skopeo copy -q --dest-cert-dir "$TMP/certs" "oci:$TMP/img:v1" "docker://$TLS/img:v1"
CTFS_ROOT=$TMP/root-tls
t_fail "tls: an unknown CA is refused (no fallback to plain HTTP)" ctfs pull "$TLS/img:v1"
t_like "tls: says why" "$(cat "$T_OUT")" "^ctfs: pull $TLS/img:v1: ping https://$TLS/v2/: .*certificate.*--cert-dir"
t_ok "tls: --cert-dir with the CA" ctfs pull --cert-dir "$TMP/certs" "$TLS/img:v1"
CTFS_ROOT=$TMP/root-tls2
t_ok "tls: --tls-verify=false" ctfs pull --tls-verify=false "$TLS/img:v1"
