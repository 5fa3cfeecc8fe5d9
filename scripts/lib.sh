# shellcheck shell=bash disable=SC2034
# Shared helpers for scripts/test and scripts/demo. Source it; it does not run anything.

# Debian packages the build, the tests and the demo need. libc6-dev is listed because gcc only
# recommends it and we install without recommends.
CTFS_PACKAGES=(
	meson ninja-build pkg-config gcc libc6-dev
	libfuse3-dev fuse3 liburing-dev libarchive-dev libjson-c-dev libcurl4-openssl-dev libssl-dev libseccomp-dev
	umoci skopeo busybox-static docker-registry attr jq python3 zstd
	clang libclang-rt-14-dev
	apache2-utils openssl ca-certificates
	xfsprogs
)

# The checkout's top directory (this file lives in scripts/).
CTFS_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# package_installed PKG: true when dpkg has PKG fully installed.
package_installed() {
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# ensure_packages PKG...: installs the ones that are missing, non-interactively. `apt-get update`
# runs at most once per process, and only when something is missing.
CTFS_APT_UPDATED=${CTFS_APT_UPDATED:-}
ensure_packages() {
	local missing=() p
	for p in "$@"; do
		package_installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	[[ $EUID -eq 0 ]] || die "missing packages (run as root to install them): ${missing[*]}"
	command -v apt-get >/dev/null || die "missing packages and no apt-get: ${missing[*]}"
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if [[ -z $CTFS_APT_UPDATED ]]; then
		apt-get update -q
		CTFS_APT_UPDATED=1
	fi
	# Stdin from /dev/null: CI has none, and no maintainer script may wait for an answer.
	apt-get install -y -q --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${missing[@]}" </dev/null
}

# setup_build DIR [MESON OPTIONS...]: configures DIR, or reconfigures it with these options when
# it already exists (so a changed option or meson.build always takes effect).
setup_build() {
	local dir=$1
	shift
	if [[ -f $dir/meson-private/coredata.dat ]]; then
		# A build dir from another meson version may refuse to reconfigure: start afresh.
		meson setup --reconfigure "$dir" "$@" || meson setup --wipe "$dir" "$@"
	else
		rm -rf "$dir"
		meson setup "$dir" "$@"
	fi
}
