#!/bin/bash
# Isolation of `ctfs run`, asserted from inside the container: namespaces, the root (the FUSE
# view, pivot_root, old root gone), /proc masks and read-only paths, /dev, /sys, /etc files,
# capabilities, seccomp, no_new_privs, --privileged, --network none, --read-only, volumes,
# users and groups, and the cgroup limits (memory, pids, cpus) on this host's cgroup layout.
. "$(dirname "$0")/lib.sh"
require_root

fx_busybox_image "$TMP/layout" v1
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null
IMG=localhost/layout:v1

# in CMD...: the output of a one-shot container (stderr included), exit status kept in $rc.
cin() {
	rc=0
	out=$(ctfs run --rm "$@" 2>&1) || rc=$?
}

# --- root, namespaces ------------------------------------------------------------------------

cin "$IMG" true
t_is "runs" "$rc" 0
t_like "run mounts the store when it is not mounted, saying so" "$out" "mounting it at $CTFS_ROOT/mnt"
cin "$IMG" sh -c 'mount | head -1; cat /proc/1/cmdline | tr "\0" " "; echo; readlink /proc/self/ns/mnt'
t_like "the root is the FUSE view" "$out" "^[^ ]+ on / type fuse"
t_like "the command is pid 1" "$out" $'\n''sh -c mount'
host_ns() { readlink "/proc/self/ns/$1"; }
for ns in mnt pid uts ipc cgroup; do
	cin "$IMG" readlink "/proc/self/ns/$ns"
	if [[ $ns == cgroup && ! -e /proc/self/ns/cgroup ]]; then skip "new $ns namespace" "no cgroup namespaces"; continue; fi
	t_like "new $ns namespace" "$out" "^$ns:\[[0-9]+\]$"
	[[ $out != "$(host_ns "$ns")" ]] && ok "$ns namespace differs from the host's" || not_ok "$ns namespace differs from the host's"
done
cin "$IMG" readlink /proc/self/ns/net
t_is "default network is the host's" "$out" "$(host_ns net)"
cin "$IMG" sh -c 'cut -d" " -f5 /proc/self/mountinfo'
t_fail "the old root is detached (no host mount point is visible)" grep -q -e "$TMP" -e '^/var' -e '^/work' -e '^/root' <<<"$out"
cin "$IMG" sh -c 'sleep 2 & sleep 0.3; ps -o pid=,comm= >/tmp/ps; echo $(cat /tmp/ps)'
t_is "only the container's processes are visible" "$out" "1 sh 2 sleep 4 ps"

# --- /proc ------------------------------------------------------------------------------------

cin "$IMG" sh -c 'for f in /proc/keys /proc/timer_list /proc/sched_debug /proc/kcore /proc/latency_stats; do [ -e $f ] && wc -c <$f; done | sort -u'
t_is "masked /proc files read as empty" "$out" 0
cin "$IMG" sh -c 'ls -A /proc/acpi /proc/scsi 2>/dev/null | grep -v : | grep -c .'
t_is "masked /proc dirs are empty" "$out" 0
cin "$IMG" sh -c 'echo 1 >/proc/sys/vm/drop_caches'
t_like "/proc/sys is read-only" "$out" "Read-only file system"
cin "$IMG" sh -c 'grep -E " /proc/(sys|bus|fs|irq|sysrq-trigger) " /proc/self/mountinfo | grep -vc " ro,"'
t_is "read-only paths are ro mounts" "$out" 0

# --- /dev, /sys, /etc -------------------------------------------------------------------------

cin "$IMG" sh -c 'ls /dev | tr "\n" " "'
t_is "/dev holds the standard nodes only" "$out" "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero "
cin "$IMG" sh -c 'test -e /dev/fuse || echo nofuse; stat -c "%t,%T %a" /dev/null /dev/zero /dev/urandom; readlink /dev/fd; readlink /dev/ptmx'
t_is "no /dev/fuse; char devices 0666; links" "$out" $'nofuse\n1,3 666\n1,5 666\n1,9 666\n/proc/self/fd\npts/ptmx'
cin "$IMG" sh -c 'echo hi >/dev/null && head -c 4 /dev/zero | wc -c && mount | grep -E " /dev/(pts|shm) "'
t_like "devpts and shm mounted" "$out" "devpts on /dev/pts.*shm on /dev/shm|shm on /dev/shm.*devpts on /dev/pts"
cin "$IMG" sh -c 'touch /sys/x 2>&1; mount | grep " /sys "'
t_like "/sys is read-only" "$out" "Read-only file system.*sysfs on /sys type sysfs \(ro"
cin --hostname box.example "$IMG" sh -c 'hostname; cat /etc/hostname; grep box /etc/hosts; mount | grep -c " /etc/\(hosts\|hostname\|resolv.conf\) "'
t_is "--hostname, /etc/hostname, /etc/hosts, bind mounts" "$out" $'box.example\nbox.example\n127.0.1.1\tbox.example\n3'
cin "$IMG" hostname
t_like "default hostname is the short id" "$out" "^[0-9a-f]{12}$"
id=$(ctfs create --name etcfiles "$IMG" true)
ctfs start -a etcfiles >/dev/null 2>&1
t_is "generated /etc/hosts is not written into the upper dir" "$(stat -c %s "$CTFS_ROOT/containers/$id/upper/etc/hosts" 2>/dev/null || echo 0)" 0
ctfs rm etcfiles >/dev/null

# --- capabilities, seccomp, no_new_privs ------------------------------------------------------

cin "$IMG" sh -c 'grep -E "^Cap(Eff|Bnd|Inh|Amb)" /proc/self/status'
t_is "docker's default capability set" "$out" $'CapInh:\t0000000000000000\nCapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000'
cin "$IMG" sh -c 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status'
t_is "seccomp filter on, no_new_privs off by default" "$out" $'NoNewPrivs:\t0\nSeccomp:\t2'
cin --security-opt no-new-privileges "$IMG" grep NoNewPrivs /proc/self/status
t_is "--security-opt no-new-privileges" "$out" $'NoNewPrivs:\t1'
cin "$IMG" sh -c 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t'
t_like "mount fails with EPERM" "$out" "Operation not permitted|[Pp]ermission denied"
cin "$IMG" busybox unshare -n true
t_like "unshare of a namespace fails with EPERM" "$out" "Operation not permitted"
cin --cap-add SYS_ADMIN "$IMG" sh -c 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted'
t_is "--cap-add SYS_ADMIN allows mount (seccomp follows the capabilities)" "$out" mounted
# The compiled filter is cached in the store (runtime/secprofile.h), one program per set of
# capabilities that changes it; a damaged cache file is compiled again, never trusted.
n_bpf() { find "$CTFS_ROOT/cache" -name 'seccomp-*.bpf' -size +0 | wc -l; }
t_is "seccomp programs cached: the default set and +SYS_ADMIN" "$(n_bpf)" 2
for f in "$CTFS_ROOT"/cache/seccomp-*.bpf; do : >"$f"; done
cin "$IMG" sh -c 'grep Seccomp: /proc/self/status; mkdir -p /mnt/t && mount -t tmpfs none /mnt/t'
t_like "an emptied cache: still filtered" "$out" $'^Seccomp:\t2\n.*(Operation not permitted|[Pp]ermission denied)'
for f in "$CTFS_ROOT"/cache/seccomp-*.bpf; do printf 'abc' >"$f"; done
cin "$IMG" busybox unshare -n true
t_like "a corrupt cache: still filtered" "$out" "Operation not permitted"
t_is "... and compiled again" "$(find "$CTFS_ROOT/cache" -name 'seccomp-*.bpf' -size +1k | wc -l)" 1
# a valid program made for other capabilities, put under the default's name, is not used
default_bpf=$(find "$CTFS_ROOT/cache" -name 'seccomp-*.bpf' -size +1k)
cin --cap-add SYS_ADMIN "$IMG" true
admin_bpf=$(find "$CTFS_ROOT/cache" -name 'seccomp-*.bpf' -size +1k ! -path "$default_bpf")
t_ok "  the +SYS_ADMIN program compiled again" test -n "$admin_bpf"
cp "$admin_bpf" "$default_bpf"
cin "$IMG" sh -c 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t'
t_like "the +SYS_ADMIN program under the default's name: not used" "$out" "Operation not permitted|[Pp]ermission denied"
t_ok "  the default program written again" bash -c "! cmp -s '$admin_bpf' '$default_bpf'"
cin --cap-drop ALL --cap-add CHOWN "$IMG" grep CapEff /proc/self/status
t_is "--cap-drop ALL --cap-add CHOWN" "$out" $'CapEff:\t0000000000000001'
cin --cap-drop NET_RAW --cap-drop chown "$IMG" grep CapEff /proc/self/status
t_is "--cap-drop two" "$out" $'CapEff:\t00000000a80405fa'
cin --cap-add NOT_A_CAP "$IMG" true
t_is "unknown capability is a ctfs error" "$rc" 125
cin --privileged "$IMG" sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status'
t_is "--privileged: every capability ctfs has, no seccomp" "$out" "$(grep CapBnd /proc/self/status | sed s/Bnd/Eff/)"$'\nSeccomp:\t0'
cin -u 1000 "$IMG" grep -E "^Cap(Eff|Bnd)" /proc/self/status
t_is "a non-root user has no effective capabilities" "$out" $'CapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb'

# --- users ------------------------------------------------------------------------------------

cin -u user "$IMG" sh -c 'id; echo $HOME; pwd'
t_is "-u name: uid, gid, groups, HOME" "$out" $'uid=1000(user) gid=1000(user) groups=100(users),1000(user)\n/home/user\n/'
cin -u 1000:100 "$IMG" id
t_like "-u uid:gid" "$out" "^uid=1000\(user\) gid=100\(users\)"
cin -u 4242 "$IMG" sh -c 'id -u; id -g; echo $HOME'
t_is "-u unknown uid: gid 0, HOME /" "$out" $'4242\n0\n/'
cin -u nosuchuser "$IMG" id
t_is "-u unknown name is a ctfs error" "$rc" 125
t_like "... saying so" "$out" "unable to find user nosuchuser"
# A passwd that is a link out of the root must be read inside the root.
fx_passwd_link() {
	echo "linked:x:777:777::/:/bin/sh" >"$1/etc/passwd.real"
	ln -sfn /../../../../etc/passwd.real "$1/etc/passwd"
}
_fx_bundle_edit "$TMP/layout" v1 "passwd link" fx_passwd_link
umoci tag --image "$TMP/layout:v1" v2 >/dev/null
ctfs pull -q "oci:$TMP/layout:v2" >/dev/null
cin -u linked localhost/layout:v2 id -u
t_is "a passwd symlink pointing out of the root resolves inside it" "$out" 777

# /etc files that are links in the image: resolved inside the root, never on the host, never
# into the container's /proc or /sys.
fx_resolv_link() { ln -sfn ../run/ctfs-test-resolv.conf "$1/etc/resolv.conf"; mkdir -p "$1/run"; }
umoci tag --image "$TMP/layout:v1" v3 >/dev/null
_fx_bundle_edit "$TMP/layout" v3 "resolv.conf link" fx_resolv_link
ctfs pull -q "oci:$TMP/layout:v3" >/dev/null
cin localhost/layout:v3 sh -c 'readlink /etc/resolv.conf; mount | grep -c " /run/ctfs-test-resolv.conf "'
t_is "a dangling /etc/resolv.conf link gets its target inside the root" "$out" $'../run/ctfs-test-resolv.conf\n1'
t_fail "... and nothing on the host" test -e /run/ctfs-test-resolv.conf
# link_refused TAG FILE TARGET: an image whose /etc/FILE is a link to TARGET (in /proc or /sys)
# does not run, and says why
link_refused() {
	local top=${3#/}
	top=${top%%/*}
	_fx_link() { ln -sfn "$LINK_TARGET" "$1/etc/$LINK_FILE"; }
	LINK_FILE=$2 LINK_TARGET=$3
	umoci tag --image "$TMP/layout:v1" "$1" >/dev/null
	_fx_bundle_edit "$TMP/layout" "$1" "$2 into $top" _fx_link
	ctfs pull -q "oci:$TMP/layout:$1" >/dev/null
	cin "localhost/layout:$1" true
	t_is "an /etc/$2 link into /$top is refused" "$rc" 125
	t_like "... saying why" "$out" "leads into /proc or /sys"
}
link_refused v4 hosts /proc/sys/kernel/hostname
link_refused v5 hostname /sys/kernel/uevent_seqnum
cin -v "$TMP:/proc/sys/kernel" "$IMG" true
t_is "a volume over /proc is refused" "$rc" 125

# --- network, read-only, volumes ---------------------------------------------------------------

cin --network none "$IMG" sh -c 'ls /sys/class/net | tr "\n" " "; ping -c1 -W1 127.0.0.1 >/dev/null && echo lo-up'
t_is "--network none: only lo, and it is up" "$out" "lo lo-up"
cin --read-only "$IMG" sh -c 'touch /x 2>&1; touch /tmp/x 2>&1; echo ok >/dev/shm/x && cat /dev/shm/x'
t_like "--read-only root" "$out" "Read-only file system.*ok"
mkdir -p "$TMP/vol"
echo from-host >"$TMP/vol/file"
cin -v "$TMP/vol:/data" "$IMG" sh -c 'cat /data/file; echo from-ctr >/data/new'
t_is "-v reads" "$out" from-host
t_is "-v writes through" "$(cat "$TMP/vol/new")" from-ctr
cin -v "$TMP/vol:/deep/data:ro" "$IMG" sh -c 'cat /deep/data/file; touch /deep/data/x 2>&1'
t_like "-v :ro" "$out" "from-host.*Read-only file system"
cin -v "$TMP/vol/file:/etc/motd:ro" "$IMG" cat /etc/motd
t_is "-v of a file" "$out" from-host
cin -v "relative:/x" "$IMG" true
t_is "a named volume is refused" "$rc" 125

# --- cgroups ----------------------------------------------------------------------------------

cin -m 20m "$IMG" sh -c 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'
t_is "--memory 20m: a memory hog is OOM-killed (137)" "$rc" 137
cin --pids-limit 10 "$IMG" sh -c 'for i in $(seq 20); do sleep 3 & done 2>&1; echo done'
t_like "--pids-limit 10: fork fails" "$out" "can't fork|Resource temporarily unavailable"
cin --cpus 0.5 "$IMG" sh -c 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/unified/cpu.max 2>/dev/null'
t_like "--cpus 0.5: CFS quota 50 ms per 100 ms" "$(echo $out)" "^(50000 100000|50000 100000)$"
cin --cpus 0.5 "$IMG" sh -c 'end=$(($(date +%s)+2)); while [ $(date +%s) -lt $end ]; do :; done; cat /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpu.stat'
t_like "--cpus 0.5: a busy loop is throttled (cpu.stat)" "$out" "nr_throttled [1-9]"
cin -m 64m --pids-limit 50 "$IMG" sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max'
t_is "limits visible in the container's own cgroup" "$(echo $out)" "67108864 50"
id=$(ctfs run -d "$IMG" sleep 30)
cg_dirs() { find /sys/fs/cgroup -maxdepth 4 -type d -path "*/ctfs/$id" 2>/dev/null; }
t_like "a running container has its cgroup" "$(cg_dirs)" "ctfs/$id"
# Which hierarchies a container joins (runtime/cgroup.c, cgroup_select): the unified one when it
# is mounted (born there with CLONE_INTO_CGROUP), a v1 one only for a limit it carries.
cg_of() { cat "/proc/$(ctfs inspect "$1" | jq .[0].State.Pid)/cgroup"; }
v1_with() { grep -E "^[0-9]+:([^:]*,)?$1(,[^:]*)?:" || true; }
if grep -q '^0::' /proc/self/cgroup && [[ -n $(findmnt -n -t cgroup2 -o TARGET 2>/dev/null) ]]; then
	t_like "no limits: in its cgroup on the unified hierarchy" "$(cg_of "$id")" "(^|"$'\n'")0::/ctfs/$id($|"$'\n'")"
	t_is "no limits: in no v1 hierarchy's cgroup" "$(cg_of "$id" | grep -v '^0::' | grep -c "/ctfs/$id" || true)" 0
else
	t_like "no limits: in one hierarchy's cgroup for tracking" "$(cg_of "$id")" "/ctfs/$id"
fi
ctfs kill "$id" >/dev/null
ctfs wait "$id" >/dev/null
t_is "the cgroup is gone after the container exits" "$(cg_dirs)" ""
ctfs rm "$id" >/dev/null
id=$(ctfs run -d -m 64m "$IMG" sleep 30)
cgs=$(cg_of "$id")
if [[ -n $(v1_with memory <<<"$cgs") ]]; then
	t_like "-m on a v1 memory controller: in its memory cgroup" "$(v1_with memory <<<"$cgs")" ":/ctfs/$id$"
else
	t_like "-m on the unified memory controller: in its cgroup" "$(grep '^0::' <<<"$cgs")" "^0::/ctfs/$id$"
fi
for ctl in pids cpu; do
	[[ -n $(v1_with $ctl <<<"$cgs") ]] || continue
	t_is "-m only: not in a v1 $ctl cgroup" "$(v1_with $ctl <<<"$cgs" | grep -c "/ctfs/$id" || true)" 0
done
if [[ -d /sys/fs/cgroup/unified ]] && mountpoint -q /sys/fs/cgroup/unified && [[ -n $(v1_with memory <<<"$cgs") ]]; then
	t_is "hybrid host: /sys/fs/cgroup in the container shows the hierarchies it joined" \
		"$(ctfs exec "$id" ls /sys/fs/cgroup | tr '\n' ' ')" "memory unified "
	cin "$IMG" ls /sys/fs/cgroup
	t_is "hybrid host, no limits: only the unified hierarchy" "$out" unified
fi
ctfs rm -f "$id" >/dev/null
t_is "-m: the cgroups are gone after rm -f" "$(cg_dirs)" ""
