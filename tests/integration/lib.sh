# shellcheck shell=bash disable=SC2034
# (SC2034: the variables here are for the scripts that source this file.)
# Shared helpers for the integration tests (tests/integration/*.sh). Source it first:
#
#   . "$(dirname "$0")/lib.sh"
#   require_root
#   fx_oci_image "$TMP/layout" v1
#   t_ok "pull an oci layout" ctfs pull "oci:$TMP/layout:v1"
#
# It provides:
#   TAP      plan N, ok DESC, not_ok DESC, skip DESC REASON, todo DESC REASON, diag MSG...,
#            bail_out MSG,
#            t_ok DESC CMD..., t_fail DESC CMD..., t_status DESC STATUS CMD...,
#            t_is DESC GOT EXPECTED, t_like DESC STRING REGEX; output of the last t_* command
#            is in "$T_OUT". Without `plan`, the plan is printed at the end. The exit status
#            is nonzero when a test failed, the plan was not met, or the script died.
#   env      TMP (a fresh dir under /var/tmp, removed at exit after unmounting whatever is
#            mounted below it), CTFS_ROOT=$TMP/root, CTFS (the binary), CTFS_SRC (checkout),
#            ctfs ARGS... (runs "$CTFS" --root "$CTFS_ROOT" ARGS...), bg_pid PID (killed at
#            exit), require_root, TREECMP (tests/integration/treecmp).
#   fixtures built with independent tools only (never ctfs): fx_busybox_rootfs,
#            fx_busybox_image, fx_oci_image, fx_zstd_layout, fx_docker_archive,
#            fx_oci_archive, fx_umoci_unpack, fx_extract_tar (see each one below).
#
# meson runs these with protocol 'tap'; meson (1.0) counts a nonzero exit as an error even
# for 77, so a skipped script prints "1..0 # SKIP reason" and exits 0.

set -euo pipefail
shopt -s inherit_errexit

CTFS_SRC=${CTFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
CTFS=${CTFS:-$CTFS_SRC/build/cli/ctfs}
TREECMP=$CTFS_SRC/tests/integration/treecmp
export CTFS_SRC CTFS
# Deterministic output from the tools we parse.
export LC_ALL=C

# ---------------------------------------------------------------------------------------------
# TAP

_t_count=0      # tests reported so far
_t_failed=0     # of which failed
_t_plan=        # the number given to `plan`, if any
_t_skip_all=    # set by skip_all: the plan line was "1..0 # SKIP"
_t_bailed=

plan() {
	_t_plan=$1
	echo "1..$1"
}

ok() {
	_t_count=$((_t_count + 1))
	echo "ok $_t_count - $*"
}

not_ok() {
	_t_count=$((_t_count + 1))
	_t_failed=$((_t_failed + 1))
	echo "not ok $_t_count - $*"
}

# todo DESC REASON: a known failure (a bug not fixed yet): "not ok … # TODO REASON", which TAP
# consumers (meson: expected failure) do not count as a failure, and neither does this script.
todo() {
	_t_count=$((_t_count + 1))
	echo "not ok $_t_count - $1 # TODO ${2:-}"
}

# skip DESC REASON: a test that could not run here.
skip() {
	_t_count=$((_t_count + 1))
	echo "ok $_t_count - $1 # SKIP ${2:-}"
}

# diag MSG...: comment lines: one per argument, and per line within an argument.
diag() {
	local arg line
	for arg in "$@"; do
		while IFS= read -r line; do
			echo "# $line"
		done <<<"$arg"
	done
}

# diag_file FILE [MAX LINES]: the tail of FILE as diagnostics.
diag_file() {
	[[ -s $1 ]] || return 0
	tail -n "${2:-40}" -- "$1" | while IFS= read -r line; do echo "#   $line"; done
}

bail_out() {
	_t_bailed=1
	echo "Bail out! $*"
	exit 1
}

# skip_all REASON: the whole script does not apply here.
skip_all() {
	_t_skip_all=1
	echo "1..0 # SKIP $*"
	exit 0
}

# t_ok DESC CMD...: CMD must succeed. Its stdout+stderr go to $T_OUT and are shown on failure.
t_ok() {
	local desc=$1 rc=0
	shift
	"$@" >"$T_OUT" 2>&1 || rc=$?
	if ((rc == 0)); then
		ok "$desc"
	else
		not_ok "$desc"
		diag "  command: $(_t_quote "$@")" "  exit status: $rc (expected 0)"
		diag_file "$T_OUT"
	fi
	return 0
}

# t_fail DESC CMD...: CMD must fail cleanly: exit status 1..125. A crash (killed by a signal,
# 128+N) or "cannot execute / not found" (126, 127) is not the failure a test expects.
t_fail() {
	local desc=$1 rc=0
	shift
	"$@" >"$T_OUT" 2>&1 || rc=$?
	if ((rc >= 1 && rc <= 125)); then
		ok "$desc"
	else
		not_ok "$desc"
		diag "  command: $(_t_quote "$@")" "  exit status: $rc (expected a failure, 1..125)"
		diag_file "$T_OUT"
	fi
	return 0
}

# t_status DESC STATUS CMD...: CMD must exit with exactly STATUS.
t_status() {
	local desc=$1 want=$2 rc=0
	shift 2
	"$@" >"$T_OUT" 2>&1 || rc=$?
	if ((rc == want)); then
		ok "$desc"
	else
		not_ok "$desc"
		diag "  command: $(_t_quote "$@")" "  exit status: $rc (expected $want)"
		diag_file "$T_OUT"
	fi
	return 0
}

# t_is DESC GOT EXPECTED
t_is() {
	if [[ $2 == "$3" ]]; then
		ok "$1"
	else
		not_ok "$1"
		diag "  got:      '$2'" "  expected: '$3'"
	fi
	return 0
}

# t_like DESC STRING REGEX (bash extended regex, unanchored)
t_like() {
	if [[ $2 =~ $3 ]]; then
		ok "$1"
	else
		not_ok "$1"
		diag "  got:      '$2'" "  expected to match: /$3/"
	fi
	return 0
}

_t_quote() {
	local out=() a
	for a in "$@"; do out+=("$(printf '%q' "$a")"); done
	echo "${out[*]}"
}

# ---------------------------------------------------------------------------------------------
# Environment, cleanup

require_root() {
	[[ $EUID -eq 0 ]] || skip_all "requires root"
}

# require_cmd CMD...: skips the whole script when a tool is missing.
require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip_all "requires $c"
	done
}

_t_bg_pids=()
# bg_pid PID: kill PID (TERM, then KILL) when the script exits.
bg_pid() {
	_t_bg_pids+=("$1")
}

# CTFS_TEST_NO_URING=1: mounts keep to /dev/fuse (ctfs mount --no-uring), so that a suite
# covers the daemon without FUSE over io_uring, as on kernels before 6.14.
ctfs() {
	if [[ ${1:-} == mount && -n ${CTFS_TEST_NO_URING:-} ]]; then
		"$CTFS" --root "$CTFS_ROOT" mount --no-uring "${@:2}"
	else
		"$CTFS" --root "$CTFS_ROOT" "$@"
	fi
}

# _t_mounts_below DIR: mount points at or below DIR, deepest first, one per line.
# /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
_t_mounts_below() {
	local dir=$1 mp
	while read -r _ _ _ _ mp _; do
		mp=$(printf '%b' "${mp//\\/\\0}")
		[[ $mp == "$dir" || $mp == "$dir"/* ]] && printf '%s\n' "$mp"
	done </proc/self/mountinfo | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# _t_unmount_below DIR: unmount everything below DIR: FUSE mounts with fusermount3 (which
# also makes the daemon exit), then umount, and a lazy umount for whatever is still busy.
_t_unmount_below() {
	local dir=$1 mp
	for _ in 1 2 3; do
		local any=
		while IFS= read -r mp; do
			[[ -n $mp ]] || continue
			any=1
			fusermount3 -u -q "$mp" 2>/dev/null || umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
		done < <(_t_mounts_below "$dir")
		[[ -n $any ]] || return 0
		sleep 0.2
	done
}

_t_kill_bg() {
	local pid alive
	((${#_t_bg_pids[@]})) || return 0
	for pid in "${_t_bg_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=
		for pid in "${_t_bg_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		[[ -n $alive ]] || break
		sleep 0.1
	done
	for pid in "${_t_bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
	# Reap our own children; other pids are not waitable, which is fine.
	for pid in "${_t_bg_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

_t_cleanup() {
	local rc=$?
	set +e
	trap - EXIT
	if [[ -n ${TMP:-} && -d $TMP ]]; then
		cd / || true
		# Unmount first (a FUSE daemon exits cleanly), then kill, then unmount again in case
		# a killed process had mounted something meanwhile.
		_t_unmount_below "$TMP"
		_t_kill_bg
		_t_unmount_below "$TMP"
		# a daemon that was just unmounted may still be writing its report
		[[ -z ${CTFS_SANITIZER_LOGS:-} || -n $_t_skip_all ]] || { sleep 1; _t_sanitizer_reports; }
		if [[ -n ${CTFS_KEEP_TMP:-} ]]; then
			diag "kept $TMP"
		elif [[ -n $(_t_mounts_below "$TMP") ]]; then
			# Never delete through a mount that refused to go away.
			diag "not removing $TMP: still mounted: $(_t_mounts_below "$TMP" | tr '\n' ' ')"
			rc=1
		else
			# Fixtures contain read-only and immutable-looking dirs; chattr is not used, so
			# making everything writable is enough for rm.
			chmod -R u+rwx "$TMP" 2>/dev/null
			rm -rf --one-file-system "$TMP"
		fi
	else
		_t_kill_bg
	fi
	[[ -n $_t_skip_all ]] && exit 0
	[[ -n $_t_bailed ]] && exit 1
	if ((rc != 0)); then
		# The script died under `set -e` (or exited nonzero) outside a t_* helper.
		not_ok "test script exited with status $rc"
	fi
	if [[ -z $_t_plan ]]; then
		echo "1..$_t_count"
	elif ((_t_plan != _t_count)); then
		diag "planned $_t_plan tests but ran $_t_count"
		_t_failed=$((_t_failed + 1))
	fi
	diag "$((_t_count - _t_failed)) passed, $_t_failed failed"
	((_t_failed == 0)) || exit 1
	exit 0
}
trap _t_cleanup EXIT
# A signal ends the script through the EXIT trap, so cleanup still happens.
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

TMP=$(mktemp -d /var/tmp/ctfs-test.XXXXXXXX)
T_OUT=$TMP/.t_out
: >"$T_OUT"
export TMP
export CTFS_ROOT=$TMP/root
# The default mount point is <root>/mnt; an inherited one would escape $TMP.
unset CTFS_MNT

# CTFS_SANITIZER_LOGS=1 (the asan-fuse suite): ctfs is built with ASan/UBSan. The FUSE daemon
# runs detached with stderr on /dev/null, so every sanitizer report, of the daemon and of each
# command, goes to a file under $TMP/sanitizer; any such file fails the script (at exit, once
# everything is unmounted and the daemon is gone).
if [[ -n ${CTFS_SANITIZER_LOGS:-} ]]; then
	mkdir -p "$TMP/sanitizer"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$TMP/sanitizer/asan"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$TMP/sanitizer/ubsan"
fi

# _t_sanitizer_reports: reports as a failed test, with their contents.
_t_sanitizer_reports() {
	[[ -n ${CTFS_SANITIZER_LOGS:-} && -d $TMP/sanitizer ]] || return 0
	local f files=()
	for f in "$TMP"/sanitizer/*; do [[ -e $f ]] && files+=("$f"); done
	if ((${#files[@]} == 0)); then
		ok "no sanitizer reports (daemon and commands)"
		return 0
	fi
	not_ok "no sanitizer reports (daemon and commands): ${#files[@]} report file(s)"
	for f in "${files[@]}"; do
		diag "$f:"
		diag_file "$f" 80
	done
}

# ---------------------------------------------------------------------------------------------
# Fixtures. Built only with independent tools (coreutils, busybox-static, umoci, skopeo, GNU
# tar, attr), never with ctfs, so that they can serve as the reference.

# The busybox-static binary (Debian's busybox-static installs it as /bin/busybox).
BUSYBOX=${BUSYBOX:-/bin/busybox}

# Applets linked into bin/ of a busybox rootfs.
FX_APPLETS=(sh ash ls cat echo true false id sleep env printf test "[" mkdir rmdir rm cp mv ln
	chmod chown touch stat head tail wc grep sed awk find xargs sort uniq tr cut date du df
	pwd readlink realpath basename dirname uname hostname whoami ps kill mount umount
	mknod mkfifo sync yes seq nproc)

# fx_busybox_rootfs DIR: a minimal root filesystem in DIR (created if needed): bin/busybox
# from busybox-static, bin/<applet> symlinks to it, etc/passwd and etc/group (root, user 1000,
# nobody), and the usual directories. All owned by root except home/user.
fx_busybox_rootfs() {
	local root=$1 a
	mkdir -p "$root"
	chmod 0755 "$root"
	(
		cd "$root"
		mkdir -p bin sbin etc dev proc sys root tmp var/tmp home/user usr/bin usr/sbin
		chmod 0755 bin sbin etc dev proc sys var home usr usr/bin usr/sbin
		chmod 0700 root
		chmod 1777 tmp var/tmp
		install -m 0755 "$BUSYBOX" bin/busybox
		for a in "${FX_APPLETS[@]}"; do ln -sfn busybox "bin/$a"; done
		cat >etc/passwd <<-'EOF'
			root:x:0:0:root:/root:/bin/sh
			user:x:1000:1000:user:/home/user:/bin/sh
			nobody:x:65534:65534:nobody:/nonexistent:/bin/false
		EOF
		cat >etc/group <<-'EOF'
			root:x:0:
			users:x:100:user
			user:x:1000:
			nogroup:x:65534:
		EOF
		echo ctfs-fixture >etc/hostname
		chmod 0644 etc/passwd etc/group etc/hostname
		chown 1000:1000 home/user
		chmod 0750 home/user
	)
}

# _fx_bundle_edit LAYOUT TAG DESC FUNC: unpack LAYOUT:TAG into a fresh bundle, run FUNC with
# the bundle's rootfs as its only argument, and repack the result as a new layer of TAG.
_fx_bundle_edit() {
	local layout=$1 tag=$2 desc=$3 func=$4 bundle
	bundle=$(mktemp -d "${TMP:-/var/tmp}/fx-bundle.XXXXXX")
	rmdir "$bundle"
	umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
	"$func" "$bundle/rootfs"
	umoci repack --image "$layout:$tag" --history.created_by "ctfs fixture: $desc" "$bundle" >/dev/null
	rm -rf "$bundle"
}

# fx_busybox_image LAYOUT TAG: a one-layer image (busybox rootfs) tagged TAG in the OCI
# layout LAYOUT (created when missing), with cmd /bin/sh and a PATH.
fx_busybox_image() {
	local layout=$1 tag=$2
	[[ -f $layout/oci-layout ]] || umoci init --layout "$layout"
	umoci new --image "$layout:$tag"
	_fx_bundle_edit "$layout" "$tag" "busybox rootfs" fx_busybox_rootfs
	_fx_config "$layout" "$tag"
}

_fx_config() {
	umoci config --image "$1:$2" \
		--config.cmd /bin/sh \
		--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		--config.workingdir / \
		--config.label org.ctfs.fixture=1 \
		--author "ctfs tests"
}

# The 200-byte name and the deep path of fx_oci_image (relative to the rootfs).
FX_LONG_NAME=$(printf 'n%.0s' {1..200})
FX_DEEP_DIR=names/deep$(printf '/%s' "$(printf 'd%.0s' {1..60})"{01..20})
# A name that is not UTF-8 (latin-1 bytes), and one with a space, a tab and a newline.
FX_BAD_NAME=$'latin1-\xe9t\xe9-\xff'
FX_ODD_NAME=$'odd name\twith\nnewline'
# security.capability for cap_net_raw+ep: a VFS_CAP_REVISION_2 blob (magic 0x02000001 with
# the effective flag, permitted = 1<<13, inheritable = 0), base64 for setfattr's 0s syntax.
FX_CAP_BLOB=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=

# Layer 2 of fx_oci_image: everything an image can carry.
_fx_layer_content() {
	local r=$1
	(
		cd "$r"

		# Targets of the deletions in layer 3.
		mkdir -p del/dir-to-delete/sub
		echo doomed >del/file-to-delete
		echo doomed >del/dir-to-delete/a
		echo doomed >del/dir-to-delete/sub/b
		echo kept >del/keep
		echo "will change" >del/changed

		# Removed and recreated with other content in layer 3 (umoci writes per-file
		# whiteouts for this), and made opaque in layer 4 (a real .wh..wh..opq).
		mkdir -p recreated/sub opaque/sub
		echo old >recreated/old1
		echo old >recreated/sub/old2
		echo old >opaque/old1
		echo old >opaque/sub/old2
		setfattr -n user.before -v opaque opaque

		# Type changes in layer 3.
		mkdir -p replace/dir-to-file/sub
		echo x >replace/dir-to-file/x
		echo y >replace/dir-to-file/sub/y
		echo file >replace/file-to-dir
		echo file >replace/file-to-symlink
		# umoci repack writes layer 3 as the new symlink replace/dir-to-symlink -> ../links
		# *followed by* the whiteout replace/dir-to-symlink/.wh.z (and dir-to-file/.wh.x
		# under the new regular file). Readers must ignore a whiteout whose parent is no
		# longer a directory. umoci unpack itself follows the symlink: were the entry named
		# like a file in links/ ("a"), umoci would delete links/a, so the name must stay
		# unique here (the hostile-layer tests cover the case with an explicit expectation).
		mkdir replace/dir-to-symlink
		echo z >replace/dir-to-symlink/z

		# Hardlinks: in one directory, across directories, and sets that lose a name in
		# layer 3 (the first name, which carries the content in the tar, and a later one).
		mkdir -p links links2
		echo "hardlinked content" >links/a
		ln links/a links/b
		ln links/a links2/c
		echo "first name deleted later" >links/del-first
		ln links/del-first links/del-keep1
		ln links/del-first links2/del-keep2
		echo "second name deleted later" >links/set3-a
		ln links/set3-a links/set3-b
		ln links/set3-a links2/set3-c
		chmod 0640 links/a
		chown 1000:100 links/a

		# Extended attributes: user.* (also a binary value), security.capability, trusted.*,
		# and on a directory. (No empty value: umoci drops those, Go's tar cannot write them.)
		mkdir -p xattr/dir
		echo x >xattr/file
		setfattr -n user.test -v value xattr/file
		setfattr -n user.binary -v 0x00ff00fe01 xattr/file
		setfattr -n user.removed-later -v 1 xattr/file
		setfattr -n trusted.ctfs -v trusted-value xattr/file
		setfattr -n user.on-dir -v yes xattr/dir
		cp "$BUSYBOX" xattr/ping
		if command -v setcap >/dev/null; then
			setcap cap_net_raw+ep xattr/ping
		else
			setfattr -n security.capability -v "$FX_CAP_BLOB" xattr/ping
		fi

		# Special files.
		mkdir special
		mknod special/null c 1 3
		mknod -m 0600 special/loop7 b 7 7
		mknod special/big-dev c 511 1048575
		mkfifo -m 0620 special/fifo

		# Modes.
		mkdir -p modes/sticky modes/setgid-dir modes/private
		echo s >modes/setuid
		chmod 4755 modes/setuid
		echo s >modes/setgid
		chmod 2755 modes/setgid
		echo s >modes/all-bits
		chmod 7777 modes/all-bits
		echo s >modes/none
		chmod 0000 modes/none
		echo s >modes/group-write
		chmod 0664 modes/group-write
		chmod 1777 modes/sticky
		chmod 2775 modes/setgid-dir
		chmod 0700 modes/private

		# Owners, also past 2^21 (does not fit a ustar octal field) and on a symlink.
		mkdir -p owners/dir
		echo o >owners/file
		chown 12345:54321 owners/file
		echo o >owners/big
		chown 3000000:3000001 owners/big
		chown 1000:100 owners/dir
		ln -s file owners/link
		chown -h 4242:4343 owners/link

		# Names: 200 bytes, a deep path (> 1200 bytes), not UTF-8, UTF-8, odd characters.
		mkdir -p names "$FX_DEEP_DIR"
		echo long >"names/$FX_LONG_NAME"
		mkdir "names/$FX_LONG_NAME.d"
		echo deep >"$FX_DEEP_DIR/$FX_LONG_NAME"
		echo bad >"names/$FX_BAD_NAME"
		echo utf8 >"names/héllo-wörld-✓"
		echo odd >"names/$FX_ODD_NAME"
		echo dot >names/.hidden
		echo dots >names/..dots

		# Sizes: sparse (10 MiB, a few bytes in the middle), empty, some random data.
		mkdir -p sizes/empty-dir
		truncate -s 10M sizes/sparse
		printf 'in the middle' | dd of=sizes/sparse bs=1 seek=$((5 * 1024 * 1024)) conv=notrunc status=none
		: >sizes/empty
		head -c 300000 /dev/urandom >sizes/random

		# Symlinks: absolute, relative, dangling, to a directory, to itself, escaping.
		mkdir symlinks
		ln -s /bin/busybox symlinks/absolute
		ln -s ../bin/busybox symlinks/relative
		ln -s does/not/exist symlinks/dangling
		ln -s ../names symlinks/to-dir
		ln -s self symlinks/self
		ln -s ../../../../../../etc/shadow symlinks/escaping
		ln -s "$(printf 't%.0s' {1..1000})" symlinks/long-target
	)
}

# Layer 3 of fx_oci_image: deletions, replacements, changes (made by umoci repack).
_fx_layer_changes() {
	local r=$1
	(
		cd "$r"
		rm del/file-to-delete
		rm -r del/dir-to-delete
		echo "changed in layer 3" >del/changed

		rm -r recreated
		mkdir recreated
		echo new >recreated/new1

		rm -r replace/dir-to-file
		echo "now a file" >replace/dir-to-file
		rm replace/file-to-dir
		mkdir replace/file-to-dir
		echo inner >replace/file-to-dir/inner
		rm replace/file-to-symlink
		ln -s ../links/a replace/file-to-symlink
		rm -r replace/dir-to-symlink
		ln -s ../links replace/dir-to-symlink

		rm links/del-first
		rm links/set3-b

		# Metadata-only changes: the file is carried again by this layer.
		setfattr -x user.removed-later xattr/file
		setfattr -n user.test -v changed xattr/file
		chmod 0600 modes/group-write
		chown 2000:2000 owners/file
	)
}

# Layer 4 of fx_oci_image, written with GNU tar and added verbatim (umoci never writes an
# opaque whiteout or a sparse tar entry itself): opaque/ made opaque with new content, and a
# sparse file in GNU tar's PAX sparse format.
_fx_raw_layer() {
	local layout=$1 tag=$2 stage
	stage=$(mktemp -d "${TMP:-/var/tmp}/fx-raw.XXXXXX")
	mkdir -p "$stage/opaque" "$stage/sizes"
	: >"$stage/opaque/.wh..wh..opq"
	echo "after opaque" >"$stage/opaque/new"
	truncate -s 20M "$stage/sizes/sparse-tar"
	printf 'data' | dd of="$stage/sizes/sparse-tar" bs=1 seek=$((3 * 1024 * 1024)) conv=notrunc status=none
	printf 'end' | dd of="$stage/sizes/sparse-tar" bs=1 seek=$((20 * 1024 * 1024 - 3)) conv=notrunc status=none
	chmod 0755 "$stage/opaque" "$stage/sizes"
	# --sort=name puts opaque/.wh..wh..opq before opaque/new, as OCI requires of whiteouts.
	tar -C "$stage" -cf "$stage.tar" --format=pax --sparse --sort=name --numeric-owner \
		--owner=0 --group=0 --xattrs --xattrs-include='*' opaque sizes/sparse-tar
	umoci raw add-layer --image "$layout:$tag" \
		--history.created_by "ctfs fixture: opaque dir and sparse tar entry" "$stage.tar"
	rm -rf "$stage" "$stage.tar"
}

# fx_oci_image LAYOUT TAG: a four-layer image tagged TAG in the OCI layout LAYOUT (created
# when missing), gzip layers:
#   1. the busybox rootfs (fx_busybox_rootfs)
#   2. every kind of entry: hardlinks (same dir, across dirs), xattrs (user.*, trusted.*,
#      security.capability), char/block devices, fifo, setuid/setgid/sticky, odd owners, a
#      200-byte name, a deep path, non-UTF-8 and odd names, sparse/empty files, symlinks
#   3. deletions (file, dir), a dir removed and recreated, dir->file, file->dir,
#      file->symlink, dir->symlink, names of hardlink sets deleted, metadata-only changes
#   4. (raw GNU tar) an opaque whiteout on opaque/, a sparse tar entry
# and a config with cmd /bin/sh. See _fx_layer_* for the exact paths.
fx_oci_image() {
	local layout=$1 tag=$2
	[[ -f $layout/oci-layout ]] || umoci init --layout "$layout"
	umoci new --image "$layout:$tag"
	_fx_bundle_edit "$layout" "$tag" "busybox rootfs" fx_busybox_rootfs
	_fx_bundle_edit "$layout" "$tag" "every kind of entry" _fx_layer_content
	_fx_bundle_edit "$layout" "$tag" "deletions and replacements" _fx_layer_changes
	_fx_raw_layer "$layout" "$tag"
	_fx_config "$layout" "$tag"
}

# fx_zstd_layout SRC DST TAG: copy SRC:TAG to the OCI layout DST:TAG with every layer
# recompressed as zstd (media type ...tar+zstd). The uncompressed tars, and so the diff_ids,
# are unchanged. Note: umoci 0.4.7 cannot unpack zstd layers; unpack SRC as the reference.
fx_zstd_layout() {
	skopeo copy -q --dest-compress-format zstd "oci:$1:$3" "oci:$2:$3"
}

# fx_docker_archive LAYOUT TAG FILE NAME:TAG: LAYOUT:TAG as a `docker save` tarball FILE
# (uncompressed layers). skopeo writes RepoTags fully qualified ("docker.io/library/busybox:1");
# `docker save` writes them as the user typed them ("busybox:1"), so RepoTags (and the legacy
# `repositories` file) are rewritten to exactly NAME:TAG as given.
fx_docker_archive() {
	local layout=$1 tag=$2 file=$3 ref=$4 stage
	rm -f "$file"
	skopeo copy -q "oci:$layout:$tag" "docker-archive:$file:$ref"
	stage=$(mktemp -d "${TMP:-/var/tmp}/fx-docker.XXXXXX")
	tar -C "$stage" -xf "$file"
	local name=${ref%:*} rtag=${ref##*:}
	jq -c --arg ref "$ref" '.[0].RepoTags = [$ref]' "$stage/manifest.json" >"$stage/manifest.json.new"
	mv "$stage/manifest.json.new" "$stage/manifest.json"
	if [[ -f $stage/repositories ]]; then
		jq -c --arg name "$name" --arg tag "$rtag" \
			'{($name): {($tag): (to_entries[0].value | to_entries[0].value)}}' \
			"$stage/repositories" >"$stage/repositories.new"
		mv "$stage/repositories.new" "$stage/repositories"
	fi
	# Same member order as skopeo wrote (manifest.json last), so streaming readers see the
	# layout they would see from skopeo or docker.
	tar -tf "$file" >"$stage.list"
	chmod 0444 "$stage/manifest.json" "$stage/repositories" 2>/dev/null || true
	tar -C "$stage" -cf "$file" --no-recursion --numeric-owner --owner=0 --group=0 \
		--mtime=@0 -T "$stage.list"
	rm -rf "$stage" "$stage.list"
}

# fx_oci_archive LAYOUT TAG FILE [ARCHIVE TAG]: LAYOUT:TAG as an OCI archive (a tar of an OCI
# layout) FILE whose image is tagged ARCHIVE TAG (default TAG).
fx_oci_archive() {
	rm -f "$3"
	skopeo copy -q "oci:$1:$2" "oci-archive:$3:${4:-$2}"
}

# fx_umoci_unpack LAYOUT TAG DIR: the reference tree of LAYOUT:TAG, as umoci applies the
# layers (whiteouts, opaque dirs, hardlinks), in DIR/rootfs. DIR must not exist.
fx_umoci_unpack() {
	umoci unpack --image "$1:$2" "$3" >/dev/null
}

# fx_extract_tar FILE DIR: extract a tar stream (FILE, or - for stdin) into DIR (created)
# keeping everything treecmp compares: owners, all mode bits, xattrs of every namespace,
# devices, hardlinks, mtimes. DIR gets the mode and owner of the stream's "./" entry, if any.
fx_extract_tar() {
	mkdir -p "$2"
	tar -C "$2" -x --numeric-owner --same-owner --same-permissions \
		--xattrs --xattrs-include='*' -f "$1"
}
