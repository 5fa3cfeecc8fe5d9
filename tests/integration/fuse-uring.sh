#!/bin/bash
# FUSE over io_uring (Linux 6.14+, fs/uring.h). Where the kernel has it, every other test of
# the suite already runs over it; this one checks that it is really in use and the ways back:
# requests come through one ring per thread, 4 threads for each CPU's queue (the rings'
# completion counters in /proc/PID/fdinfo move with the requests); large requests and replies
# are whole (1 MiB WRITEs, READs of up to 1 MiB read into the ring entry); umount stops the threads; and with
# `--no-uring`, or a kernel that refuses io_uring (kernel.io_uring_disabled=2), the daemon uses
# /dev/fuse alone and works the same.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci busybox jq
[[ -z ${CTFS_TEST_NO_URING:-} ]] || skip_all "CTFS_TEST_NO_URING is set: mounts keep to /dev/fuse"
[[ -e /sys/module/fuse/parameters/enable_uring ]] ||
	skip_all "the kernel has no FUSE over io_uring (CONFIG_FUSE_IO_URING, Linux 6.14+)"

MNT=$TMP/mnt
fx_busybox_image "$TMP/layout" v1 >/dev/null
# a big file that is not ELF: a container reads it through the daemon (ELF files pass through)
head -c 2500000 /dev/urandom >"$TMP/data.bin"
fx_data() { cp "$TMP/data.bin" "$1/data.bin"; }
_fx_bundle_edit "$TMP/layout" v1 "data file" fx_data
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null || bail_out "cannot pull the fixture image"
img=$MNT/images/localhost/layout:v1
BB=$(command -v busybox)

# cpu_list FILE: the CPUs of a sysfs list ("0-3,6"), one per line
cpu_list() {
	local r ranges
	IFS=, read -ra ranges <"$1"
	for r in "${ranges[@]}"; do
		if [[ $r == *-* ]]; then seq "${r%-*}" "${r#*-}"; else echo "$r"; fi
	done
}
# the kernel's queues, one per possible CPU: 4 threads each for an online CPU, else 1
cpus=$(cpu_list /sys/devices/system/cpu/possible | wc -l)
online=$(cpu_list /sys/devices/system/cpu/online | wc -l)
threads=$((4 * online + cpus - online))

daemon_pid() { jq -r .pid "$CTFS_ROOT/mount.json"; }
# ring_fds PID: the daemon's io_uring fds
ring_fds() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[[ $(readlink "$fd" 2>/dev/null) == "anon_inode:[io_uring]" ]] && echo "${fd##*/}"
	done
	return 0
}
# completions PID: completions the daemon consumed on all its rings (one per request)
completions() {
	local fd sum=0 n
	for fd in $(ring_fds "$1"); do
		n=$(awk '$1 == "CqHead:" { print $2 }' "/proc/$1/fdinfo/$fd")
		sum=$((sum + n))
	done
	echo "$sum"
}

t_ok "mount" ctfs mount "$MNT"
pid=$(daemon_pid)
id=$(ctfs create localhost/layout:v1) || bail_out "cannot create a container"
C=$MNT/containers/$id
t_is "the kernel offers io_uring: ctfs mount turned it on" "$(cat /sys/module/fuse/parameters/enable_uring)" Y
t_is "one ring per queue thread: 4 per online CPU" "$(ring_fds "$pid" | wc -l)" "$threads"
before=$(completions "$pid")
mkdir "$C/many" && for i in $(seq 200); do echo "$i" >"$C/many/f$i"; done
ls -l "$C/many" >/dev/null
after=$(completions "$pid")
# each file: a LOOKUP, a CREATE, a GETXATTR, a RELEASE at least
t_ok "200 new files: their requests came through io_uring ($((after - before)))" test $((after - before)) -ge 800
t_is "  and the files are there" "$(cat "$C/many/f1" "$C/many/f200")" "$(printf '1\n200')"

# large replies: a container file still in the image is read through the daemon, which
# reads it straight into the ring entry (READs of up to 1 MiB)
sync && echo 1 >/proc/sys/vm/drop_caches
before=$(completions "$pid")
t_ok "a container file still in the image reads whole through the ring" cmp "$C/data.bin" "$TMP/data.bin"
after=$(completions "$pid")
t_ok "  (its READs came through io_uring)" test $((after - before)) -ge $(($(stat -c %s "$TMP/data.bin") / 524288))
# large requests: writes to a file open in the FUSE inode's cache (a reader of the image's
# copy holds it open) come to the daemon as 1 MiB WRITEs
head -c 3000000 /dev/urandom >"$TMP/rnd"
exec 3<"$C/etc/passwd"
t_ok "1 MiB writes through the ring" dd if="$TMP/rnd" of="$C/etc/passwd" bs=1M conv=notrunc status=none
exec 3<&-
t_ok "  are whole" cmp "$TMP/rnd" <(head -c 3000000 "$C/etc/passwd")
t_ok "image view unchanged" cmp "$img/bin/busybox" "$BB"

t_ok "umount" ctfs umount "$MNT"
t_like "the daemon's log (root/daemon.log) has its start" "$(cat "$CTFS_ROOT/daemon.log")" "daemon $pid serving $MNT"
t_like "  and its end, with the requests that came over io_uring" "$(cat "$CTFS_ROOT/daemon.log")" "daemon $pid: the session ended .* [0-9]+ requests came over io_uring"
# (a zombie until its reaper takes it)
t_fail "  the daemon and its threads are gone" sh -c "ps -o stat= -p $pid | grep -qv Z"

# --- back to /dev/fuse -------------------------------------------------------------------------
t_ok "mount --no-uring" ctfs mount --no-uring "$MNT"
pid=$(daemon_pid)
t_is "  no ring" "$(ring_fds "$pid" | wc -l)" 0
t_is "  the container's files" "$(cat "$C/many/f7")" 7
t_ok "  new files" sh -c "echo x >'$C/many/new' && test \"\$(cat '$C/many/new')\" = x"
t_ok "  reads through the daemon" cmp "$C/data.bin" "$TMP/data.bin"
t_ok "umount" ctfs umount "$MNT"

# Queue threads that cannot use their rings: until every queue has an entry the kernel holds
# every request back, so the daemon must make it give up io_uring (the mount would hang). The
# fault: a preloaded syscall() that fails IORING_REGISTER_ENABLE_RINGS.
if command -v cc >/dev/null; then
	cat >"$TMP/shim.c" <<-'EOF'
		#define _GNU_SOURCE
		#include <dlfcn.h>
		#include <errno.h>
		#include <stdarg.h>
		#include <sys/syscall.h>
		long syscall(long n, ...)
		{
			va_list ap;
			va_start(ap, n);
			long a = va_arg(ap, long), b = va_arg(ap, long), c = va_arg(ap, long);
			long d = va_arg(ap, long), e = va_arg(ap, long), f = va_arg(ap, long);
			va_end(ap);
			static long (*real)(long, ...);
			if (!real)
				real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
			if (n == __NR_io_uring_register && b == 12 /* ENABLE_RINGS */) {
				errno = EBUSY;
				return -1;
			}
			return real(n, a, b, c, d, e, f);
		}
	EOF
	cc -shared -fPIC -o "$TMP/shim.so" "$TMP/shim.c" -ldl || bail_out "cannot build the fault shim"
	# (under ASan, whose runtime then is not first in the library list)
	t_ok "queues that cannot use io_uring: mount" timeout 20 env LD_PRELOAD="$TMP/shim.so" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$CTFS" --root "$CTFS_ROOT" mount "$MNT"
	pid=$(daemon_pid)
	t_ok "  the mount answers (the kernel went back to /dev/fuse)" timeout 10 cat "$C/many/f7"
	if ! timeout 5 cat "$C/many/f7" >/dev/null 2>&1; then
		# a hung mount: abort its connection (named by the mount's device minor, read from
		# mountinfo: a stat would hang too), or nothing could unmount it
		mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections
		dev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo | tail -n 1)
		[[ -z $dev ]] || echo 1 >"/sys/fs/fuse/connections/${dev#*:}/abort"
	fi
	t_ok "  reads" timeout 20 cmp "$C/data.bin" "$TMP/data.bin"
	t_is "  no request came through a ring" "$(completions "$pid")" 0
	t_ok "umount" ctfs umount "$MNT"
else
	skip "queues that cannot use io_uring" "no C compiler for the fault shim"
fi

old=$(cat /proc/sys/kernel/io_uring_disabled 2>/dev/null || echo none)
if [[ $old != none ]] && echo 2 >/proc/sys/kernel/io_uring_disabled 2>/dev/null; then
	t_ok "with io_uring refused by the kernel: mount" ctfs mount "$MNT"
	pid=$(daemon_pid)
	echo "$old" >/proc/sys/kernel/io_uring_disabled
	t_is "  no ring" "$(ring_fds "$pid" | wc -l)" 0
	t_ok "  the mount works: reads" cmp "$C/data.bin" "$TMP/data.bin"
	t_ok "  and creates" sh -c "echo y >'$C/many/new2' && test \"\$(cat '$C/many/new2')\" = y"
	t_ok "umount" ctfs umount "$MNT"
else
	skip "with io_uring refused by the kernel" "kernel.io_uring_disabled cannot be set here"
fi
