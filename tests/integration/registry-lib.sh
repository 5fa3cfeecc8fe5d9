# shellcheck shell=bash disable=SC2034
# Helpers for the registry tests (registry*.sh). Source after lib.sh:
#
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/registry-lib.sh"
#
#   reg_start NAME [YAML]   start Debian's docker-registry on a free 127.0.0.1 port with storage
#                           in $TMP/reg-NAME (YAML: extra top-level config, e.g. an auth: block);
#                           sets REG (host:port) and REG_STORAGE; killed at exit
#   reg_push SRC DEST [SKOPEO ARGS...]  skopeo copy SRC (oci:DIR:TAG) to docker://$REG/DEST
#   reg_blob_path DIGEST    the registry's file for a blob (to tamper with)
#   free_port               a free TCP port on 127.0.0.1
#   wait_port PORT          until something listens there (5 s)
#   py_server NAME ARGS...  start tests/integration/NAME.py ARGS... in the background (killed at
#                           exit); it writes its port to $TMP/NAME.port, returned in PY_PORT
#
# Nothing here reaches beyond 127.0.0.1.

REG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Debian's python3 (the fixtures use only the standard library and openssl).
PYTHON=${PYTHON:-python3}
[[ -x /usr/bin/python3 ]] && PYTHON=/usr/bin/python3

free_port() {
	"$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
	local port=$1
	for _ in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "nothing listens on 127.0.0.1:$port" >&2
	return 1
}

# reg_start NAME [YAML] [TLS-CERT TLS-KEY]
reg_start() {
	local name=$1 extra=${2:-} cert=${3:-} key=${4:-} port
	port=$(free_port)
	REG_STORAGE=$TMP/reg-$name/storage
	mkdir -p "$REG_STORAGE"
	{
		cat <<-EOF
			version: 0.1
			log:
			  level: error
			  accesslog:
			    disabled: true
			storage:
			  filesystem:
			    rootdirectory: $REG_STORAGE
			  delete:
			    enabled: true
			http:
			  addr: 127.0.0.1:$port
		EOF
		if [[ -n $cert ]]; then
			printf '  tls:\n    certificate: %s\n    key: %s\n' "$cert" "$key"
		fi
		[[ -z $extra ]] || printf '%s\n' "$extra"
	} >"$TMP/reg-$name/config.yml"
	# A clean environment: the registry reads REGISTRY_* variables (REGISTRY_AUTH_FILE of the
	# tests, say) as configuration.
	env -i PATH="$PATH" docker-registry serve "$TMP/reg-$name/config.yml" >"$TMP/reg-$name/log" 2>&1 &
	bg_pid $!
	if ! wait_port "$port"; then
		diag_file "$TMP/reg-$name/log"
		bail_out "registry $name did not start"
	fi
	REG=127.0.0.1:$port
}

# reg_push SRC DEST [SKOPEO ARGS...]
reg_push() {
	local src=$1 dest=$2
	shift 2
	skopeo copy -q --dest-tls-verify=false "$@" "$src" "docker://$REG/$dest"
}

reg_blob_path() {
	local hex=${1#sha256:}
	echo "$REG_STORAGE/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
}

# py_server NAME ARGS...
py_server() {
	local name=$1
	shift
	rm -f "$TMP/$name.port"
	"$PYTHON" "$REG_DIR/$name.py" "$TMP/$name.port" "$@" >"$TMP/$name.log" 2>&1 &
	bg_pid $!
	for _ in $(seq 100); do
		[[ -s $TMP/$name.port ]] && break
		sleep 0.05
	done
	[[ -s $TMP/$name.port ]] || {
		diag_file "$TMP/$name.log"
		bail_out "$name did not start"
	}
	PY_PORT=$(cat "$TMP/$name.port")
}

# store_listing: every path in the store but tmp/, with size (to see that nothing changed).
store_listing() {
	(cd "$CTFS_ROOT" && find . -path ./tmp -prune -o -printf '%p %s\n' | sort)
}

# tmp_empty: the store's tmp/ holds nothing (no abandoned work directory).
tmp_empty() {
	[[ -z $(ls -A "$CTFS_ROOT/tmp" 2>/dev/null) ]]
}
