#!/bin/bash
# The FUSE daemon killed (SIGKILL) while containers run and write (issue 7, faults):
#   - the running containers' processes get an error (ENOTCONN, "Transport endpoint is not
#     connected") instead of hanging, and exit;
#   - `ctfs ps`, `stop`, `kill`, `rm -f`, `wait`, `logs` still answer within a bounded time;
#   - `ctfs mount` mounts again and restores every container view (running, stopped, created);
#   - everything a container fsync'd before the kill is there, with its content;
#   - containers run and start again; the store passes `ctfs check`.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd jq timeout

fx_busybox_image "$TMP/layout" v1
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null
IMG=localhost/layout:v1
MNT=$CTFS_ROOT/mnt
t_ok "mount" ctfs mount
daemon=$(jq -r .pid "$CTFS_ROOT/mount.json")

# A writer: each round writes a file, fsyncs it (dd conv=fsync), and only then says so on
# stdout (the log is on the host, not in the view). At the first failure it tries a write with
# the shell's own redirection, whose message names the errno, and exits 3.
# writer1 runs busybox from the image: when a page of its code is not in memory the kernel
# cannot read it from the dead mount and sends SIGBUS (exit 135), a clear end too.
# writer2 runs a copy of busybox on /dev (a tmpfs): only its file operations reach the dead
# mount, and they must fail with ENOTCONN.
writer='mkdir -p /data; i=0
while :; do
	i=$((i + 1))
	if ! echo "round $i" | $BB dd of=/data/f$i conv=fsync 2>/dev/null; then
		echo probe >/data/probe
		exit 3
	fi
	echo "synced $i"
done'
w1=$(ctfs run -d --name writer1 -e BB= "$IMG" sh -c "$writer")
w2=$(ctfs run -d --name writer2 -e BB=/dev/busybox "$IMG" sh -c "cp /bin/busybox /dev/busybox && exec /dev/busybox sh -c '$writer'")
idle=$(ctfs run -d --name idle "$IMG" sleep 1000)
created=$(ctfs create --name created "$IMG" true)
stopped=$(ctfs run -d --name stopped "$IMG" sh -c 'echo kept >/kept; sync; exit 0')
timeout 20 "$CTFS" --root "$CTFS_ROOT" wait stopped >/dev/null
for _ in $(seq 100); do
	[[ $(ctfs logs writer1 | grep -c synced) -ge 20 && $(ctfs logs writer2 | grep -c synced) -ge 20 ]] && break
	sleep 0.1
done
t_ok "the writers are writing" sh -c "ctfs() { \"$CTFS\" --root \"$CTFS_ROOT\" \"\$@\"; }; ctfs logs writer1 | grep -q 'synced 20'"

kill -KILL "$daemon"
t_ok "the daemon is gone" sh -c "for i in \$(seq 50); do kill -0 $daemon 2>/dev/null || exit 0; sleep 0.1; done; exit 1"

# --- no hang --------------------------------------------------------------------------------------

t_ok "ctfs ps answers within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" ps -a
t_ok "writer1 exits on its own within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" wait writer1
t_like "  with its error status (3) or killed by SIGBUS (135)" "$(cat "$T_OUT")" '^(3|135)$'
t_ok "writer2 exits on its own within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" wait writer2
t_is "  with its error status (3)" "$(cat "$T_OUT")" 3
# ENOTCONN once the connection is gone; ECONNABORTED for a request it was busy with; ECANCELED
# with FUSE over io_uring for a request caught in the dead daemon's ring teardown (seen once in
# CI, a clean error all the same)
t_like "  after ENOTCONN (or ECONNABORTED, ECANCELED)" "$(timeout 20 "$CTFS" --root "$CTFS_ROOT" logs writer2 2>&1 | tail -3)" \
	"can't create /data/probe: (Transport endpoint is not connected|Software caused connection abort|Operation canceled)"
t_ok "ctfs stop of a container on the dead mount, within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" stop -t 2 idle
t_ok "ctfs ps after that" timeout 20 "$CTFS" --root "$CTFS_ROOT" ps -a
t_is "  every container is still listed" "$(timeout 20 "$CTFS" --root "$CTFS_ROOT" ps -a -q | wc -l)" 5
# The log says which rounds were fsync'd; remember them before anything else happens.
for w in writer1 writer2; do
	timeout 20 "$CTFS" --root "$CTFS_ROOT" logs "$w" | awk '/^synced/ { print $2 }' >"$TMP/$w.synced"
done

# --- remount ---------------------------------------------------------------------------------------

t_ok "ctfs mount again, within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" mount
new=$(jq -r .pid "$CTFS_ROOT/mount.json")
t_ok "  a new daemon" test "$new" != "$daemon"
for id in "$w1" "$w2" "$idle" "$created" "$stopped"; do
	t_ok "the view of ${id:0:12} is served again" timeout 20 test -x "$MNT/containers/$id/bin/busybox"
done
t_is "what the stopped container wrote is there" "$(cat "$MNT/containers/$stopped/kept")" kept
for w in writer1 writer2; do
	[[ $w == writer1 ]] && id=$w1 || id=$w2
	n=$(wc -l <"$TMP/$w.synced")
	missing=0
	while read -r i; do
		[[ $(cat "$MNT/containers/$id/data/f$i" 2>/dev/null) == "round $i" ]] || missing=$((missing + 1))
	done <"$TMP/$w.synced"
	t_is "$w: all $n fsync'd files are there, with their content" "$missing" 0
done

t_ok "ctfs rm -f of every container, within 20 s" timeout 20 "$CTFS" --root "$CTFS_ROOT" rm -f writer1 writer2 idle
t_ok "a stopped container starts again and sees its files" \
	sh -c "timeout 20 '$CTFS' --root '$CTFS_ROOT' start -a stopped"
t_ok "a new container runs" timeout 20 "$CTFS" --root "$CTFS_ROOT" run --rm "$IMG" true
t_ok "the created one starts" timeout 20 "$CTFS" --root "$CTFS_ROOT" start -a created
t_ok "no container of the removed ones is left in the store" \
	test ! -e "$CTFS_ROOT/containers/$w1" -a ! -e "$CTFS_ROOT/containers/$w2" -a ! -e "$CTFS_ROOT/containers/$idle"
t_ok "ctfs check passes" ctfs check
