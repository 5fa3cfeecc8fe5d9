#!/bin/bash
# Load (issue 7): for CTFS_SOAK_SECONDS (default 20; longer by hand, see SECURITY.md) each:
#   1. 8 workers at once, each in a loop: `ctfs pull` (the same and different images, one of
#      them from an archive), `create` + `rm`, `run --rm` reading an image file, `run -d` +
#      `exec` + `rm -f`. Every command succeeds; afterwards `ctfs check` passes, every image
#      exports identical to `umoci unpack`, and no container, cgroup, mount or work dir is left.
#   2. two containers doing heavy parallel file I/O through the daemon (tests/integration/
#      fsstress.c, two processes each: create, write, append, truncate, rename, link, unlink,
#      fsync, mkdir/rmdir, every read checked against a model): they end with verified contents,
#      and the daemon has leaked no fd and grown no more than a tolerance (VmRSS).
. "$(dirname "$0")/lib.sh"
require_root
require_cmd gcc umoci skopeo jq

SOAK=${CTFS_SOAK_SECONDS:-20}
WORKERS=${CTFS_LOAD_WORKERS:-8}

# --- fixtures: x, y (x plus a layer), z (its own) -------------------------------------------------
gcc -static -O2 -o "$TMP/fsstress" "$CTFS_SRC/tests/integration/fsstress.c" 2>"$T_OUT" ||
	skip_all "cannot build a static helper: $(head -1 "$T_OUT")"
_files() {
	local r=$1 d f
	mkdir -p "$r/data-$2"
	for d in 0 1 2 3; do
		mkdir "$r/data-$2/d$d"
		for f in $(seq 0 24); do printf '%s %s/%s\n' "$2" "$d" "$f" >"$r/data-$2/d$d/f$f"; done
	done
	head -c $((1024 * 1024)) /dev/urandom >"$r/data-$2/random"
	echo "$2" >"$r/whoami"
}
_x_layer() { _files "$1" x; install -D -m 0755 "$TMP/fsstress" "$1/usr/bin/fsstress"; }
_y_layer() { _files "$1" y; }
_z_layer() { _files "$1" z; }
fx_busybox_image "$TMP/x" v1
_fx_bundle_edit "$TMP/x" v1 "x's files" _x_layer
cp -a "$TMP/x" "$TMP/y"
_fx_bundle_edit "$TMP/y" v1 "y's files" _y_layer
fx_busybox_image "$TMP/z" v1
_fx_bundle_edit "$TMP/z" v1 "z's files" _z_layer
fx_oci_archive "$TMP/z" v1 "$TMP/z.tar"
for i in x y z; do fx_umoci_unpack "$TMP/$i" v1 "$TMP/ref-$i"; done
diag "fixtures took ${SECONDS}s; soak ${SOAK}s per part, $WORKERS workers"

ctfs pull -q "oci:$TMP/x:v1" >/dev/null
t_ok "mount" ctfs mount
MNT=$CTFS_ROOT/mnt
daemon=$(jq -r .pid "$CTFS_ROOT/mount.json")
# The daemon's fds on files and directories. Each FUSE worker thread has a /dev/fuse clone fd
# and a splice pipe of its own: those come and go with the thread pool (libfuse bounds it), so
# they are not counted.
fds() { find "/proc/$daemon/fd" -mindepth 1 -not -lname '/dev/fuse' -not -lname 'pipe:*' | wc -l; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$daemon/status"; }
# cg_left: the cgroups of this test's containers still there (other tests' are not ours to
# judge): log/ids holds every id (or short id) the workers made.
cg_left() {
	find /sys/fs/cgroup -maxdepth 4 -type d -path '*/ctfs/*' 2>/dev/null |
		grep -F -f <(cut -c1-12 "$TMP/log/ids" | grep -E '^[0-9a-f]{12}$' | sed 's|^|/ctfs/|') || true
}
# fd_check DESC BEFORE AFTER: the daemon holds no more fds than before (2 of slack: the kernel
# may still hold a file it is about to release). A removed container's upper and work dir fds
# are given back (fs/view.c cont_release).
fd_check() {
	if (($3 <= $2 + 2)); then
		ok "$1 ($2 before, $3 after)"
	else
		not_ok "$1 ($2 before, $3 after)"
		diag "$(find "/proc/$daemon/fd" -lname '* (deleted)' | wc -l) fds of deleted files or dirs, e.g.:" \
			"$(find "/proc/$daemon/fd" -lname '* (deleted)' -printf '%l\n' | head -3)"
	fi
}

# --- 1. commands at once ---------------------------------------------------------------------------

mkdir "$TMP/log"
: >"$TMP/log/ids"
# worker N: one command after another until the time is up; each failure is logged with its
# output. Counts go to log/N.count, failures to log/N.fail.
worker() {
	set +e
	local n=$1 end=$((SECONDS + SOAK)) i=0 fail=0 img op out id
	local imgs=(x y z)
	while ((SECONDS < end)); do
		i=$((i + 1))
		img=${imgs[$(((n + i) % 3))]}
		op=$(((n * 7 + i) % 5))
		out=
		case $op in
		0) # pulls: the same image from its layout, z also from an archive
			if [[ $img == z && $((i % 2)) == 0 ]]; then
				out=$(ctfs pull -q "oci-archive:$TMP/z.tar:v1" 2>&1)
			else
				out=$(ctfs pull -q "oci:$TMP/$img:v1" 2>&1)
			fi ;;
		1) # create + rm (the image may not be pulled yet: pull first)
			out=$(ctfs pull -q "oci:$TMP/$img:v1" 2>&1 && id=$(ctfs create "localhost/$img:v1" true 2>&1) &&
				echo "$id" >>"$TMP/log/ids" && ctfs rm "$id" 2>&1) ;;
		2) # run --rm, reading a file of the image (the hostname is the short id)
			out=$(ctfs pull -q "oci:$TMP/$img:v1" 2>&1 &&
				ctfs run --rm "localhost/$img:v1" sh -c 'hostname >&2; cat /whoami' 2>>"$TMP/log/ids") &&
				[[ $(tail -1 <<<"$out") == "$img" ]] ;;
		3) # run -d, exec, rm -f
			out=$(ctfs pull -q "oci:$TMP/$img:v1" 2>&1 && id=$(ctfs run -d "localhost/$img:v1" sleep 30 2>&1) &&
				echo "$id" >>"$TMP/log/ids" &&
				ctfs exec "$id" sh -c "echo w$n > /w && cat /w /data-$img/d1/f7" 2>&1 && ctfs rm -f "$id" 2>&1) ;;
		4) # a writing container, removed at once
			out=$(ctfs pull -q "oci:$TMP/$img:v1" 2>&1 &&
				ctfs run --rm "localhost/$img:v1" sh -c 'hostname >&2; cp -r /data-'"$img"' /copy && cat /copy/d2/f3' 2>>"$TMP/log/ids") ;;
		esac
		local rc=$?
		if ((rc != 0)); then
			fail=$((fail + 1))
			{ echo "--- op $op on $img: exit $rc"; echo "$out" | tail -5; } >>"$TMP/log/$n.fail"
		fi
	done
	echo "$i $fail" >"$TMP/log/$n.count"
}
fds_before=$(fds)
pids=()
for n in $(seq "$WORKERS"); do
	worker "$n" &
	pids+=($!)
	bg_pid $!
done
wait "${pids[@]}"
total=0 failed=0
for n in $(seq "$WORKERS"); do
	read -r a b <"$TMP/log/$n.count" || { a=0 b=1; }
	total=$((total + a)) failed=$((failed + b))
done
t_is "$total commands by $WORKERS workers in ${SOAK}s: none failed" "$failed" 0
((failed == 0)) || diag "$(cat "$TMP"/log/*.fail 2>/dev/null | head -40)"

t_ok "ctfs check passes" ctfs check
t_is "no container left" "$(ctfs ps -a -q | wc -l) $(ls -A "$CTFS_ROOT/containers" 2>/dev/null | wc -l)" "0 0"
t_ok "the workers made containers" test "$(grep -cE '^[0-9a-f]{12}' "$TMP/log/ids")" -gt "$WORKERS"
t_is "no cgroup left" "$(cg_left)" ""
t_is "no mount left but the store's" "$(_t_mounts_below "$TMP")" "$MNT"
t_is "no work left in tmp/" "$(ls -A "$CTFS_ROOT/tmp")" ""
t_is "the three images" "$(jq -r 'keys[]' "$CTFS_ROOT/refs.json" | sort | tr '\n' ' ')" "localhost/x:v1 localhost/y:v1 localhost/z:v1 "
for i in x y z; do
	ctfs export -o "$TMP/$i.tar" "localhost/$i:v1" && fx_extract_tar "$TMP/$i.tar" "$TMP/export-$i"
	t_ok "$i exports identical to umoci unpack" "$TREECMP" "$TMP/ref-$i/rootfs" "$TMP/export-$i"
	t_ok "$i's view in the mount too" "$TREECMP" --no-root "$TMP/ref-$i/rootfs" "$MNT/images/localhost/$i:v1"
done
sleep 1 # the daemon drops what it held for removed containers
fd_check "the daemon holds no more fds than before" "$fds_before" "$(fds)"

# --- 2. heavy I/O in two containers ---------------------------------------------------------------

ctfs run --rm localhost/x:v1 fsstress /warm 1 1 >/dev/null 2>&1 # the daemon's caches, warm
fds_before=$(fds)
rss_before=$(rss_kib)
c1=$(ctfs run -d localhost/x:v1 sh -c "fsstress /s1 $SOAK 11 & p=\$!; fsstress /s2 $SOAK 12; r=\$?; wait \$p && exit \$r")
c2=$(ctfs run -d localhost/x:v1 sh -c "fsstress /s1 $SOAK 21 & p=\$!; fsstress /s2 $SOAK 22; r=\$?; wait \$p && exit \$r")
for c in "$c1" "$c2"; do
	rc=$(timeout $((SOAK + 120)) "$CTFS" --root "$CTFS_ROOT" wait "$c" 2>&1) || rc="wait failed: $rc"
	out=$(ctfs logs "$c" 2>&1)
	t_is "fsstress in ${c:0:12}: exit 0" "$rc" 0
	t_is "  both processes verified every file" "$(grep -c '^ops [0-9]* checked [1-9]' <<<"$out")" 2
	diag "$(tr '\n' ' ' <<<"$out")"
done
# the container's files once more, from the host through the view, after the processes exited
t_ok "the container view lists what fsstress left" sh -c "find '$MNT/containers/$c1/s1' '$MNT/containers/$c2/s2' -type f | wc -l | grep -qv '^0$'"
ctfs rm "$c1" "$c2" >/dev/null
sleep 1
fds_after=$(fds)
rss_after=$(rss_kib)
fd_check "no fd leaked in the daemon by the I/O load" "$fds_before" "$fds_after"
# The tolerance: 64 MiB (the kernel and glibc keep freed memory around; a leak of one buffer
# per operation would be far more over tens of thousands of operations).
t_ok "the daemon's memory did not grow (VmRSS ${rss_before} KiB before, ${rss_after} KiB after)" \
	test "$rss_after" -le "$((rss_before + 65536))"
t_ok "ctfs check passes at the end" ctfs check
t_ok "umount" ctfs umount
