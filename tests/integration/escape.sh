#!/bin/bash
# Escapes: from inside containers, everything that tries to get out must fail (issue 7).
#
# The hostile program is tests/integration/escape-helper.c, built here with `gcc -static` and
# added to a busybox image (with the marker /.ctfs-escape-image it refuses to run without). It
# makes the syscalls busybox has no applet for and runs the tight races; it reports one line per
# attempt ("<what> <errno name|ok>") and this script decides what is right:
#   - escape syscalls (keyctl, mount, unshare/clone of a user namespace, setns, open_by_handle_at,
#     bpf, kexec, reboot, modules, ptrace of a host process, ...) fail with EPERM (clone3: ENOSYS,
#     so that libcs fall back to the filtered clone; a host pid: ESRCH, it is not visible);
#   - the classic double-chroot breakout ends in the container's own root;
#   - no path inside reaches the store or the host's root: /proc/*/root is the container's, the
#     mounts show no host path but the three generated /etc files, markers on the host and in
#     the store are found nowhere;
#   - /proc/sys, /proc/sysrq-trigger and /sys are read-only; the host's values are unchanged;
#   - no /dev/fuse, and a device node made with mknod (or carried by the image) gives no access
#     to the host's device;
#   - symlinks swapped against renames while another process writes through them: nothing on the
#     host outside the container's upper dir changes (the daemon never follows them on the host);
#   - no host executable (a `ctfs exec` on its way in) is reachable through /proc/<pid>/exe;
#   - --privileged is not a sandbox (SECURITY.md): it keeps every capability and no seccomp.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd gcc umoci

# --- fixtures ---------------------------------------------------------------------------------

gcc -static -O2 -o "$TMP/esc" "$CTFS_SRC/tests/integration/escape-helper.c" 2>"$T_OUT" ||
	skip_all "cannot build a static helper: $(head -1 "$T_OUT")"

R=$RANDOM$RANDOM
CANARY=$TMP/canary-$R
mkdir -p "$CANARY/dir"
echo canary >"$CANARY/file"
echo canary >"$CANARY/dir/file"
chmod 0700 "$CANARY"
HOST_MARKER=$TMP/host-marker-$R
echo host >"$HOST_MARKER"

# A loop device over a host file that holds a secret: what a device node must not reach.
LOOPDEV=
if command -v losetup >/dev/null; then
	head -c 1M /dev/zero >"$TMP/disk"
	printf 'HOSTSECRET' | dd of="$TMP/disk" conv=notrunc status=none
	LOOPDEV=$(losetup -f --show "$TMP/disk" 2>/dev/null) || LOOPDEV=
	[[ -n $LOOPDEV ]] && trap 'losetup -d "$LOOPDEV" 2>/dev/null; _t_cleanup' EXIT
fi
LOOP_MIN=
[[ -n $LOOPDEV ]] && LOOP_MIN=$((16#$(stat -c %T "$LOOPDEV")))

fx_escape_layer() {
	local r=$1
	install -D -m 0755 "$TMP/esc" "$r/usr/bin/esc"
	: >"$r/.ctfs-escape-image"
	# the host canary's path exists inside too: links to it resolve there
	mkdir -p "$r$CANARY"
	mkdir -p "$r/race" "$r/race-root" "$r/race-rel"
	# a block device node in the image itself, aimed at the host's loop device
	if [[ -n $LOOP_MIN ]]; then
		mkdir -p "$r/escape"
		mknod -m 0666 "$r/escape/loop" b 7 "$LOOP_MIN"
	fi
}
fx_busybox_image "$TMP/layout" v1
_fx_bundle_edit "$TMP/layout" v1 "escape helper" fx_escape_layer
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null
IMG=localhost/layout:v1
ctfs mount >/dev/null 2>&1
STORE_MARKER=$CTFS_ROOT/store-marker-$R
echo store >"$STORE_MARKER"

sleep 300 &
HOSTPID=$!
bg_pid "$HOSTPID"

# cin ARGS...: the output of `ctfs run --rm ARGS` (stderr included) in $out, status in $rc.
cin() {
	rc=0
	out=$(ctfs run --rm "$@" 2>&1) || rc=$?
}

# --- escape syscalls ---------------------------------------------------------------------------

cin "$IMG" esc syscalls "$HOSTPID"
declare -A want=(
	[keyctl]=EPERM [add_key]=EPERM [request_key]=EPERM [keyctl-ia32]=EPERM
	[mount]=EPERM [mount-bind]=EPERM [remount-proc-sys-rw]=EPERM [umount-proc-sys]=EPERM
	[fsopen]=EPERM [open_tree]=EPERM [pivot_root]=EPERM
	[unshare-user]=EPERM [unshare-mnt]=EPERM [clone-newuser]=EPERM [clone3-newuser]=ENOSYS
	[setns]=EPERM [open_by_handle_at]=EPERM [name_to_handle_at]=EPERM [bpf]=EPERM
	[kexec_load]=EPERM [kexec_file_load]=EPERM [reboot]=EPERM [init_module]=EPERM
	[finit_module]=EPERM [swapon]=EPERM [syslog]=EPERM [userfaultfd]=EPERM
	[perf_event_open]=EPERM [sethostname]=EPERM [iopl]=EPERM
	[ptrace-host]=ESRCH [kill-host]=ESRCH [process_vm_readv-host]=EPERM [kcmp]=EPERM
)
# The 32-bit ABI: a kernel without IA-32 emulation kills the caller (reported as ENOSYS).
[[ $(cat /proc/sys/abi/vsyscall32 2>/dev/null || echo 0) != 0 ]] || want[keyctl-ia32]='EPERM|ENOSYS'
[[ $(uname -m) == x86_64 ]] || unset 'want[keyctl-ia32]' 'want[iopl]'
t_is "the helper ran" "$rc" 0
for k in $(printf '%s\n' "${!want[@]}" | sort); do
	got=$(awk -v k="$k" '$1 == k { print $2 }' <<<"$out")
	if [[ $got =~ ^(${want[$k]})$ ]]; then
		ok "$k: $got"
	else
		not_ok "$k: ${got:-not reported} (expected ${want[$k]})"
	fi
done
t_ok "the host process is still there, untraced" sh -c "kill -0 $HOSTPID && grep -q '^TracerPid:.0' /proc/$HOSTPID/status"
t_is "the host's hostname is unchanged" "$(hostname)" "$(cat /proc/sys/kernel/hostname)"

cin "$IMG" sh -c "ls -d /proc/$HOSTPID 2>&1; kill -0 $HOSTPID 2>&1; busybox unshare -U -r id 2>&1"
t_like "the host process is not in this /proc, not signalled; busybox unshare -U fails" "$out" \
	"No such file.*(No such process|can't kill).*Operation not permitted"

# --- the root, the store, the host's / ---------------------------------------------------------

cin "$IMG" esc chroot-escape "$HOST_MARKER" "$STORE_MARKER" /proc/1/root"$HOST_MARKER" "$CTFS_ROOT" "$TMP/disk"
t_like "double chroot: the second chroot works (CAP_SYS_CHROOT) ..." "$out" "chroot-dot ok"
t_is "... and ends in the container's root: no host or store path" \
	"$(grep '^stat ' <<<"$out" | awk '{ print $NF }' | sort -u)" ENOENT

cin "$IMG" sh -c 'for p in / /proc/1/root/ /proc/self/root/ /proc/1/cwd/ /..; do stat -c "%d:%i" $p; done | sort -u | wc -l; readlink /proc/1/root'
t_is "/, /proc/1/root, /proc/self/root, /.. are one directory: the container's" "$out" $'1\n/'
cin "$IMG" find / \( -path /proc -o -path /sys \) -prune -o -name "*-marker-$R" -print
t_is "no file of the host or of the store is anywhere in the container" "$out" ""
cin "$IMG" ls /proc/1/root/
t_is "... nor below /proc/1/root" "$(grep -c marker <<<"$out")" 0

cin "$IMG" cat /proc/self/mountinfo
# "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER": as
# "FSTYPE ROOT MOUNTPOINT"
mi=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1), $4, $5; break } }' <<<"$out")
t_like "the root is this container's view, not the whole store" \
	"$(awk '$1 ~ /^fuse/ { print $2, $3 }' <<<"$mi")" '^/containers/[0-9a-f]{64} /$'
t_is "only one FUSE mount (no images/, no other container)" "$(awk '$1 ~ /^fuse/' <<<"$mi" | wc -l)" 1
# the bind mounts of the generated /etc files name their host path (as Docker's do); nothing else
t_is "host paths in the mount table: only the generated /etc/hosts, hostname, resolv.conf" \
	"$(awk '$2 ~ /^\/(var|tmp|work|home|root|srv|opt|run)\// { print $3 }' <<<"$mi" | sort | tr '\n' ' ')" \
	"/etc/hostname /etc/hosts /etc/resolv.conf "
t_is "no mount of the host's root or of the store root" \
	"$(awk -v s="$CTFS_ROOT" '$3 != "/etc/hosts" && $3 != "/etc/hostname" && $3 != "/etc/resolv.conf" && (index($2, s) == 1 || ($2 == "/" && $1 ~ /^(ext[234]|xfs|btrfs|overlay|zfs)$/))' <<<"$mi")" ""

# --- /proc/sys, /sys ----------------------------------------------------------------------------

core=$(cat /proc/sys/kernel/core_pattern)
cin "$IMG" sh -c 'for f in /proc/sys/kernel/core_pattern /proc/sys/kernel/hostname /proc/sys/vm/drop_caches /proc/sysrq-trigger /sys/kernel/uevent_helper /sys/class/net/lo/mtu /sys/fs/cgroup/unified/cgroup.procs /proc/1/root/proc/sys/kernel/modprobe; do if [ -e $f ]; then (echo "|/tmp/x" >$f) 2>&1 | grep -q "Read-only file system" && echo "$f ro" || echo "$f WRITABLE"; fi; done'
t_is "writes to /proc/sys, /proc/sysrq-trigger, /sys fail with EROFS" "$(grep -c WRITABLE <<<"$out")" 0
t_like "... (core_pattern and /sys among them)" "$out" "core_pattern ro.*/sys/.* ro"
t_is "the host's core_pattern is unchanged" "$(cat /proc/sys/kernel/core_pattern)" "$core"
cin "$IMG" sh -c 'mount -o remount,rw /proc/sys 2>&1; mount -o remount,rw /sys 2>&1; mount -t cgroup -o memory cgroup /mnt 2>&1'
t_is "remounting /proc/sys or /sys rw, mounting a cgroup (release_agent): EPERM" \
	"$(grep -ci 'Operation not permitted\|Permission denied' <<<"$out")" 3
[[ $(grep -ci 'Operation not permitted\|Permission denied' <<<"$out") == 3 ]] || diag "$out"

# --- devices ----------------------------------------------------------------------------------

cin "$IMG" sh -c 'test -e /dev/fuse && echo present || echo absent'
t_is "/dev/fuse is absent" "$out" absent
cin "$IMG" esc devnode c 10 229 /dev/fuse
# Docker allows mknod (CAP_MKNOD) and refuses the open in the device cgroup.
if [[ $out =~ (mknod E[A-Z]+|open E[A-Z]+) ]]; then
	ok "mknod c 10 229 gives no /dev/fuse (${BASH_REMATCH[0]})"
else
	not_ok "mknod c 10 229 gives no /dev/fuse"
	diag "$out"
fi
if [[ -n $LOOPDEV ]]; then
	cin "$IMG" esc devnode b 7 "$LOOP_MIN" /tmp/loop
	if [[ $out != *HOSTSECRET* && $out =~ (mknod E[A-Z]+|open E[A-Z]+) ]]; then
		ok "a block node made with mknod does not reach the host's device (${BASH_REMATCH[0]})"
	else
		not_ok "a block node made with mknod does not reach the host's device"
		diag "$out"
	fi
	cin "$IMG" sh -c 'head -c 10 /escape/loop 2>&1'
	if [[ $out != *HOSTSECRET* ]]; then
		ok "a block node carried by the image does not reach the host's device"
	else
		not_ok "a block node carried by the image does not reach the host's device"
		diag "$out"
	fi
	t_is "the host's loop device content is unchanged" "$(head -c 10 "$LOOPDEV")" HOSTSECRET
else
	skip "a block node does not reach the host's device" "no losetup"
fi

# --- symlinks swapped against writes ------------------------------------------------------------

# host_state: every file under $TMP but the container's own directory and the store's work dir,
# the canary in detail, and the host's /.
host_state() {
	local skip=$1
	find "$TMP" -xdev \( -path "$skip" -o -path "$CTFS_ROOT/tmp" -o -path "$T_OUT" -o -path "$TMP/log" \) -prune \
		-o -printf '%p %y %s %m %U:%G %T@\n' | sort
	find "$CANARY" -type f -exec sha256sum {} + | sort
	find "$CANARY" -printf '%p %y %m %U:%G %T@ %s\n' -exec getfattr -d -m - --absolute-names {} + 2>/dev/null | sort
	ls -A /
}
secs=${CTFS_ESCAPE_RACE_SECONDS:-4}
mkdir "$TMP/log"
id=$(ctfs create "$IMG" sh -c "
	esc race-swap /race $CANARY $secs & esc race-swap /race-root / $secs &
	esc race-swap /race-rel ../../../../../../../../..$CANARY $secs &
	esc race-write /race $secs & esc race-write /race-root $secs & esc race-write /race-rel $secs; wait")
before=$(host_state "$CTFS_ROOT/containers/$id")
rc=0
ctfs start -a "$id" >"$TMP/log/race.out" 2>&1 || rc=$?
after=$(host_state "$CTFS_ROOT/containers/$id")
t_is "the race ran" "$rc" 0
diag "$(tr '\n' ' ' <"$TMP/log/race.out")"
if [[ $before == "$after" ]]; then
	ok "nothing on the host outside the container's upper dir changed (canary, $TMP, /)"
else
	not_ok "nothing on the host outside the container's upper dir changed (canary, $TMP, /)"
	diag "$(diff <(echo "$before") <(echo "$after") | head -20)"
fi
upper=$CTFS_ROOT/containers/$id/upper
t_ok "the writes through the links landed inside the container (its own $CANARY and /)" \
	sh -c "ls '$upper$CANARY' | grep -q ctfs-race && ls '$upper' | grep -q ctfs-race"
t_is "no write named by the race is on the host outside the upper dir" \
	"$(find / -xdev -name 'ctfs-race-*' -not -path "$upper/*" -print -quit 2>/dev/null)" ""
t_is "the canary is untouched" "$(cat "$CANARY/file" "$CANARY/dir/file" | tr '\n' ' ')$(stat -c %a "$CANARY")" "canary canary 700"
ctfs rm "$id" >/dev/null

# --- the runtime's own binary, while `ctfs exec` enters -----------------------------------------

id=$(ctfs run -d "$IMG" esc exe-scan 3)
for _ in $(seq 10); do ctfs exec "$id" true >/dev/null 2>&1 || true; done
ctfs wait "$id" >/dev/null 2>&1 || true
out=$(ctfs logs "$id" 2>&1)
t_like "the scan ran" "$out" "exe-scan seen [1-9]"
if ! grep -q '^host-exe ' <<<"$out"; then
	ok "no host executable is reachable through /proc/<pid>/exe during ctfs exec"
elif ! grep -q '^host-exe-open-write ok' <<<"$out"; then
	not_ok "no host executable is reachable through /proc/<pid>/exe during ctfs exec"
	diag "$(grep host-exe <<<"$out" | sort -u | head -5)"
else
	not_ok "no host executable is reachable through /proc/<pid>/exe during ctfs exec: it opened for WRITING"
	diag "$(grep host-exe <<<"$out" | sort -u | head -5)"
fi
ctfs rm -f "$id" >/dev/null 2>&1

# --- --privileged is not a sandbox ----------------------------------------------------------------

cin --privileged "$IMG" esc syscalls "$HOSTPID"
t_like "--privileged keeps keyctl, mount, unshare (documented in SECURITY.md: not a sandbox)" "$out" \
	"keyctl ok.*mount ok.*unshare-user ok"
t_ok "SECURITY.md says so" grep -qi -- '--privileged.*not a sandbox\|not a sandbox.*--privileged' "$CTFS_SRC/SECURITY.md"
