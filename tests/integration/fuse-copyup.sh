#!/bin/bash
# Copy-ups of big files in the background (fs/upper_copy.h), on a real mount: opening a big
# image file for writing in a container returns before its data is copied to the upper dir;
# meanwhile reads get the image's bytes, appends land at once, a write below the image's size
# waits for its chunk only, and other changes of the copied part (truncate) wait for the copy;
# the file's mtime is the container's, never the copy's; a daemon killed with SIGKILL mid-copy
# finishes the copy when the container is next used, around what the container wrote; a removed
# container's copy stops; umount waits for copies under way.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci busybox python3 getfattr setfattr sha256sum

BIG_MB=192
_big_file() {
	head -c $((BIG_MB << 20)) /dev/urandom >"$1/big"
	# big and with file capabilities: copied up at once (the copy's writes would drop them)
	head -c $((2 << 20)) /dev/urandom >"$1/bigcap"
	setfattr -n security.capability -v "$FX_CAP_BLOB" "$1/bigcap"
}
fx_busybox_image "$TMP/layout" v1 >/dev/null
_fx_bundle_edit "$TMP/layout" v1 "a big file" _big_file >/dev/null
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null || bail_out "cannot pull the fixture image"
rm -rf "$TMP/layout"
IMG=localhost/layout:v1

chmod 0711 "$TMP"
MNT=$TMP/mnt
t_ok "mount" ctfs mount "$MNT"
img=$MNT/images/$IMG
size=$(stat -c %s "$img/big")
sum=$(sha256sum <"$img/big" | cut -d' ' -f1)
imtime=$(stat -c %y "$img/big")

# fresh: a new container (the one before it removed: a copy of the big file each, on CI's disk)
fresh() {
	[[ -s $TMP/last ]] && { ctfs rm -f "$(cat "$TMP/last")" >/dev/null 2>&1 || true; }
	ctfs create "$IMG" /bin/true | tee "$TMP/last"
}
upper_of() { echo "$CTFS_ROOT/containers/$1/upper"; }
work_of() { echo "$CTFS_ROOT/containers/$1/work"; }
marked() { getfattr --absolute-names -n trusted.overlay.ctfs-copying "$1" >/dev/null 2>&1; }
# copied FILE: wait (up to 60 s) until the copy into the upper file FILE has ended
copied() {
	for _ in $(seq 600); do marked "$1" || return 0; sleep 0.1; done
	return 1
}
# first N bytes of FILE, hashed
head_sum() { head -c "$2" "$1" | sha256sum | cut -d' ' -f1; }
entries() { ls "$1" | grep -c '^copying-' || true; }
# opened0 FILE: FILE's mark names its first chunk open for writes (upper_copy.h)
opened0() {
	local m
	m=$(getfattr --absolute-names --only-values -n trusted.overlay.ctfs-copying "$1" 2>/dev/null) || { echo "no mark"; return 1; }
	echo "mark: $m"
	set -- $m
	(($# == 3 && 16#${3:0:2} & 1))
}

# --- an append does not wait for the copy -------------------------------------------------------
id=$(fresh)
C=$MNT/containers/$id
U=$(upper_of "$id")/big
t_ok "append to a ${BIG_MB} MiB image file" sh -c "printf END >> '$C/big'"
t_ok "  the open returned before the data was copied (the upper file is marked)" marked "$U"
t_is "  and named in the work dir (found again after a crash)" "$(entries "$(work_of "$id")")" 1
t_is "  the size is the image's and the append" "$(stat -c %s "$C/big")" $((size + 3))
amtime=$(stat -c %y "$C/big")
tail_sum=$(tail -c $((1 << 20)) "$img/big" | sha256sum | cut -d' ' -f1)
t_is "  meanwhile the part not yet copied reads as the image's" \
	"$(tail -c $(((1 << 20) + 3)) "$C/big" | head -c $((1 << 20)) | sha256sum | cut -d' ' -f1)" "$tail_sum"
t_is "  and the appended bytes are there" "$(tail -c 3 "$C/big")" END
t_ok "  (the copy was still under way then)" marked "$U"
t_ok "the copy ends" copied "$U"
t_is "  the upper file holds the image's bytes" "$(head_sum "$U" "$size")" "$sum"
t_is "  and the append" "$(tail -c 3 "$U")" END
t_is "  its entry in the work dir is gone" "$(entries "$(work_of "$id")")" 0
t_is "  the mtime is the append's, not the copy's" "$(stat -c %y "$C/big")" "$amtime"
t_is "  a fresh read through the mount agrees" "$(head_sum "$C/big" "$size")" "$sum"

# --- an open for writing that writes nothing leaves the image's mtime -----------------------------
id=$(fresh)
C=$MNT/containers/$id
t_ok "open a big image file read-write, write nothing" python3 -c "open('$C/big', 'r+b').close()"
t_ok "  the copy ends" copied "$(upper_of "$id")/big"
t_is "  the mtime is still the image's" "$(stat -c %y "$C/big")" "$imtime"
t_is "  the data too" "$(head_sum "$C/big" "$size")" "$sum"

# --- a write below the image's size waits for its chunk, other changes for the copy --------------
id=$(fresh)
C=$MNT/containers/$id
U=$(upper_of "$id")/big
t_ok "append, then write at offset 0 at once" sh -c "printf END >> '$C/big' && printf XYZ | dd of='$C/big' conv=notrunc status=none"
t_ok "  it did not wait for the whole copy: under way still, its mark names the written chunk open" opened0 "$U"
t_is "  the start is the write's" "$(head -c 3 "$C/big")" XYZ
t_is "  the rest the image's" "$(tail -c +4 "$C/big" | head -c $((size - 3)) | sha256sum | cut -d' ' -f1)" \
	"$(tail -c +4 "$img/big" | sha256sum | cut -d' ' -f1)"
t_is "  the end the append's" "$(tail -c 3 "$C/big")" END
t_ok "  the copy ends" copied "$U"
t_is "  the upper file: the write, the image's bytes around it (not copied over), the append" \
	"$(head -c 3 "$U")$(tail -c +4 "$U" | head -c $((size - 3)) | sha256sum | cut -d' ' -f1)$(tail -c 3 "$U")" \
	"XYZ$(tail -c +4 "$img/big" | sha256sum | cut -d' ' -f1)END"

id=$(fresh)
C=$MNT/containers/$id
t_ok "append, then truncate at once" sh -c "printf END >> '$C/big' && truncate -s 1000 '$C/big'"
t_is "  the size" "$(stat -c %s "$C/big")" 1000
t_is "  the image's first 1000 bytes (the copy did not write past the truncation)" \
	"$(sha256sum <"$C/big" | cut -d' ' -f1)" "$(head_sum "$img/big" 1000)"
t_is "  in the upper dir too" "$(stat -c %s "$(upper_of "$id")/big")" 1000

id=$(fresh)
C=$MNT/containers/$id
# (fsync does not wait: the SIGKILL below checks what it kept)

id=$(fresh)
C=$MNT/containers/$id
t_ok "append, then empty the file with O_TRUNC at once" sh -c "printf END >> '$C/big' && : > '$C/big'"
t_is "  empty" "$(stat -c %s "$C/big")" 0
t_is "  in the upper dir too" "$(stat -c %s "$(upper_of "$id")/big")" 0
t_ok "  not marked" sh -c "! getfattr --absolute-names -n trusted.overlay.ctfs-copying '$(upper_of "$id")/big' 2>/dev/null"

id=$(fresh)
C=$MNT/containers/$id
t_ok "open for writing, unlink at once, write at offset 0 and read through the open file" python3 -c "
import os
p = '$C/big'
fd = os.open(p, os.O_RDWR)
os.unlink(p)
assert os.pwrite(fd, b'XY', 0) == 2
assert os.pread(fd, 2, 0) == b'XY', 'the write'
want = os.pread(os.open('$img/big', os.O_RDONLY), 1 << 20, $size - (1 << 20))
assert os.pread(fd, 1 << 20, $size - (1 << 20)) == want, 'the image part'
assert os.fstat(fd).st_size == $size
os.close(fd)"

# --- file capabilities --------------------------------------------------------------------------------
id=$(fresh)
C=$MNT/containers/$id
t_ok "open a big image file with file capabilities read-write, write nothing" python3 -c "open('$C/bigcap', 'r+b').close()"
t_ok "  copied up at once, not in the background" sh -c "! getfattr --absolute-names -n trusted.overlay.ctfs-copying '$(upper_of "$id")/bigcap' 2>/dev/null"
t_ok "  its capabilities kept" getfattr -n security.capability "$C/bigcap"
t_ok "append to the big file, then give it file capabilities at once" sh -c "printf END >> '$C/big' && setfattr -n security.capability -v '$FX_CAP_BLOB' '$C/big'"
t_ok "  the copy ends" copied "$(upper_of "$id")/big"
t_ok "  the capabilities stay (set after the copy, which would have dropped them)" getfattr -n security.capability "$C/big"

# --- a removed container's copy stops (at its next chunk: test-upper checks that it does) ------------
LOG=$CTFS_ROOT/daemon.log
dpid=$(jq -r .pid "$CTFS_ROOT/mount.json")
id=$(fresh)
t_ok "append in a container, then remove it at once" sh -c "printf END >> '$MNT/containers/$id/big' && '$CTFS' --root '$CTFS_ROOT' rm -f $id >/dev/null"
holds_fd_of() { ls -l "/proc/$dpid/fd" 2>/dev/null | grep -q "$1"; }
gone=no
for _ in $(seq 100); do holds_fd_of "$id" || { gone=yes; break; }; sleep 0.1; done
t_is "  the daemon lets go of its files" "$gone" yes
t_ok "  and serves the others" test -f "$MNT/containers/$(fresh)/big"

# --- concurrent appends, reads, stats and writes on files being copied, round after round -------------
SOAK=${CTFS_COPYUP_SOAK_SECONDS:-5}
t_ok "for ${SOAK}s: appends, reads (checked byte for byte), stats and writes below the image's size (read back at once) on fresh copy-ups; the end result exact" \
	python3 "$(dirname "$0")/copyup-stress.py" "$CTFS" "$CTFS_ROOT" "$IMG" big "$SOAK"
diag "$(tail -1 "$T_OUT")"

# --- umount waits for copies under way --------------------------------------------------------------
id=$(fresh)
U=$(upper_of "$id")/big
stops=$(grep -c "stopped the background copy-up" "$LOG")
t_ok "append, then umount at once" sh -c "printf END >> '$MNT/containers/$id/big' && '$CTFS' --root '$CTFS_ROOT' umount '$MNT'"
# The daemon gives copies three seconds at exit, then leaves them to the next mount.
if [[ $(grep -c "stopped the background copy-up" "$LOG") == "$stops" ]]; then
	t_ok "  the copy was done before the daemon exited" sh -c "! getfattr --absolute-names -n trusted.overlay.ctfs-copying '$U' 2>/dev/null"
	t_is "  the upper file is whole" "$(head_sum "$U" "$size")" "$sum"
	t_is "  no entry left in the work dir" "$(entries "$(work_of "$id")")" 0
else
	diag "the copy took more than the three seconds the daemon waits at exit: left to the next mount"
	t_ok "  the copy not done at exit is still marked" marked "$U"
fi

# --- SIGKILL mid-copy: the copy is finished when the container is next used -----------------------
t_ok "mount again" ctfs mount "$MNT"
t_is "  the container of the umount reads whole" "$(head_sum "$MNT/containers/$id/big" "$size")" "$sum"
t_ok "  its upper file is not marked" sh -c "! getfattr --absolute-names -n trusted.overlay.ctfs-copying '$U' 2>/dev/null"
id=$(fresh)
C=$MNT/containers/$id
U=$(upper_of "$id")/big
t_ok "append, write at offset 0, fsync" python3 -c "
import os
fd = os.open('$C/big', os.O_RDWR | os.O_APPEND)
os.write(fd, b'END')
os.close(fd)
fd = os.open('$C/big', os.O_RDWR)
os.pwrite(fd, b'XYZ', 0)
os.fsync(fd)
os.close(fd)"
dpid=$(jq -r .pid "$CTFS_ROOT/mount.json")
kill -KILL "$dpid"
for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.05; done
umount -l "$MNT" 2>/dev/null || true
t_ok "  killed with SIGKILL mid-copy (the upper file is still marked, its first chunk open)" opened0 "$U"
t_ok "mount again" ctfs mount "$MNT"
img_rest=$(tail -c +4 "$img/big" | sha256sum | cut -d' ' -f1)
rest() { tail -c +4 "$1" | head -c $((size - 3)) | sha256sum | cut -d' ' -f1; }
t_is "  the file reads whole: the write (in its opened chunk, not copied over)" "$(head -c 3 "$C/big")" XYZ
t_is "  the image's bytes" "$(rest "$C/big")" "$img_rest"
t_is "  and the append" "$(tail -c 3 "$C/big")" END
t_ok "  the upper file is no longer marked" sh -c "! getfattr --absolute-names -n trusted.overlay.ctfs-copying '$U' 2>/dev/null"
t_is "  it holds the data itself" "$(head -c 3 "$U")$(rest "$U")" "XYZ$img_rest"
t_is "  no entry left in the work dir" "$(entries "$(work_of "$id")")" 0
t_ok "umount" ctfs umount "$MNT"
