#!/bin/bash
# FUSE passthrough (Linux 6.9+): which opens the kernel serves from the backing file itself,
# seen in the daemon's --debug log (no READ or WRITE request reaches the daemon for them), and
# the rules that keep it correct: container files still in the image are read through the
# daemon (a copy-up must be able to move them under open readers) unless executed or ELF files
# opened read-only (programs and shared libraries, whose page cache every container then
# shares); a file that is executed, and readers that joined it or hold an ELF file, make data
# changes fail with ETXTBSY as for any running executable; writes that pass through still clear
# setuid and security.capability.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci busybox python3

kernel_has_passthrough() {
	local cfg
	cfg=$( (zcat /proc/config.gz || cat "/boot/config-$(uname -r)") 2>/dev/null) || return 1
	grep -qx 'CONFIG_FUSE_PASSTHROUGH=y' <<<"$cfg"
}
kernel_has_passthrough || skip_all "the kernel has no FUSE passthrough (CONFIG_FUSE_PASSTHROUGH, Linux 6.9+)"

chmod 0711 "$TMP"
MNT=$TMP/mnt
LOG=$TMP/daemon.log
fx_busybox_image "$TMP/layout" v1 >/dev/null
# 100 small ELF files (by their first bytes): each can be read and then written once
fx_elf() {
	mkdir -p "$1/elf"
	for i in $(seq 100); do { printf '\177ELF'; head -c 8188 /dev/urandom; } >"$1/elf/e$i"; done
}
_fx_bundle_edit "$TMP/layout" v1 "ELF files" fx_elf
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null || bail_out "cannot pull the fixture image"
head -c 3000000 /dev/urandom >"$TMP/big"

mkdir -p "$MNT"
"$CTFS" --root "$CTFS_ROOT" mount -f --debug "$MNT" >"$LOG" 2>&1 &
bg_pid $!
for _ in $(seq 100); do [[ -d $MNT/images ]] && break; sleep 0.1; done
t_ok "a debug mount answers" test -d "$MNT/images/localhost/layout:v1"
id=$(ctfs create localhost/layout:v1) || bail_out "cannot create a container"
id2=$(ctfs create localhost/layout:v1) || bail_out "cannot create a second container"
img=$MNT/images/localhost/layout:v1
C=$MNT/containers/$id
C2=$MNT/containers/$id2

# requests CMD...: run CMD, then count the READ and WRITE requests the daemon logged meanwhile
# (the daemon logs a request before it answers it, so all of CMD's are in the log). The page
# cache is dropped first: data the kernel cached for a FUSE inode would need no READ either.
requests() {
	local before
	sync
	echo 1 >/proc/sys/vm/drop_caches
	before=$(wc -l <"$LOG")
	"$@" >/dev/null || return 1
	tail -n +"$((before + 1))" "$LOG" | grep -cE 'opcode: (READ|WRITE) ' || true
}

# --- image views: every open passes through ----------------------------------------------------
t_is "reading an image file sends no READ" "$(requests cat "$img/bin/busybox")" 0
t_is "  and reads the image's bytes" "$(cmp "$img/bin/busybox" "$(command -v busybox)" && echo same)" same
t_is "reading it again from another process sends none" "$(requests md5sum "$img/bin/busybox")" 0

# --- containers ----------------------------------------------------------------------------------
# a container file still in the image is read through the daemon (positive control: the log
# shows the READs this test counts)
n=$(requests cat "$C/etc/passwd")
t_ok "a container file still in the image is read through the daemon" test "$n" -gt 0
t_is "executing a container file still in the image sends no READ" "$(requests "$C/bin/busybox" true)" 0
t_is "  nor from the second container" "$(requests "$C2/bin/busybox" true)" 0
# an ELF file opened read-only (a program, or a shared library ld.so maps) reads the image's
# object itself: every container shares its page cache
t_is "reading an ELF container file still in the image sends no READ" "$(requests cat "$C/bin/busybox")" 0
t_is "  nor from the second container" "$(requests md5sum "$C2/bin/busybox")" 0
t_is "  and reads the image's bytes" "$(cmp "$C/bin/busybox" "$(command -v busybox)" && echo same)" same

t_ok "create a container file" cp "$TMP/big" "$C/tmp/big"
t_is "  writing it sent no WRITE" "$(requests cp "$TMP/big" "$C/tmp/big2")" 0
t_is "  reading it sends no READ" "$(requests cat "$C/tmp/big2")" 0
t_is "  the upper file holds the data" "$(cmp "$TMP/big" "$CTFS_ROOT/containers/$id/upper/tmp/big2" && echo same)" same
t_is "appending sends no WRITE" "$(requests sh -c "echo tail >> '$C/tmp/big2'")" 0
t_is "  appended at the end" "$(tail -c 5 "$C/tmp/big2")" tail
t_is "  size" "$(stat -c %s "$C/tmp/big2")" 3000005

t_ok "a reader opened first sees a later writer's data (one backing file, opened read-write)" python3 -c "
import os
p = '$C/tmp/big2'
r = os.open(p, os.O_RDONLY)
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b'HEAD', 0)
assert os.pread(r, 4, 0) == b'HEAD', os.pread(r, 4, 0)
os.close(w); os.close(r)"
t_ok "shared writable mmap of a passed-through file" python3 -c "
import mmap, os
fd = os.open('$C/tmp/big2', os.O_RDWR)
m = mmap.mmap(fd, 4096, mmap.MAP_SHARED); m[0:5] = b'mmap!'; m.flush(); m.close(); os.close(fd)"
t_is "  visible to read(2)" "$(head -c 5 "$C/tmp/big2")" 'mmap!'
t_is "  and in the upper file" "$(head -c 5 "$CTFS_ROOT/containers/$id/upper/tmp/big2")" 'mmap!'

# a container file copied up after its data was read (cached) keeps working in cached mode
t_ok "copy-up of a file read before" sh -c "cat '$C/etc/passwd' >/dev/null && echo extra >> '$C/etc/passwd'"
t_like "  the copy has the appended line" "$(cat "$C/etc/passwd")" 'extra'

# writes that pass through clear setuid and file capabilities like any write by a user
cp "$(type -P true)" "$C/tmp/su" && chmod 4777 "$C/tmp/su"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$C/tmp/su"
t_ok "an unprivileged user writes to a setuid file" setpriv --reuid=65534 --regid=65534 --clear-groups sh -c "echo x >> '$C/tmp/su'"
t_is "  the setuid bit is gone" "$(stat -c %a "$C/tmp/su")" 777
t_is "  also in the upper dir" "$(stat -c %a "$CTFS_ROOT/containers/$id/upper/tmp/su")" 777
t_fail "  security.capability is gone" getfattr -n security.capability "$C/tmp/su"
# the daemon kills them itself (FUSE_HANDLE_KILLPRIV_V2): the kernel asks for no
# security.capability before each write(2) of a file it found clean
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
getxattrs() {
	local before
	before=$(wc -l <"$LOG")
	"$@" >/dev/null || return 1
	tail -n +"$((before + 1))" "$LOG" | grep -cE 'opcode: GETXATTR ' || true
}
n=$(getxattrs python3 -c "
import os
fd = os.open('$C/tmp/big2', os.O_WRONLY | os.O_APPEND)
for i in range(50):
    os.write(fd, b'x' * 100)
os.close(fd)")
t_ok "50 write(2) calls to a file ask for security.capability at most once, not each time ($n)" test "$n" -le 1
chmod 4777 "$C/tmp/su"
t_ok "an unprivileged truncate of a setuid file" nobody truncate -s 3 "$C/tmp/su"
t_is "  clears setuid" "$(stat -c %a "$C/tmp/su")" 777
chmod 4755 "$C/tmp/su"
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$C/tmp/su"
t_ok "root writes to a setuid file" sh -c "echo y >> '$C/tmp/su'"
t_is "  setuid stays (root has CAP_FSETID), as on any Linux filesystem" "$(stat -c %a "$C/tmp/su")" 4755
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= "$C/tmp/su"
t_ok "chown of a setuid file with a capability" chown 12:34 "$C/tmp/su"
t_is "  clears setuid, as on any Linux filesystem" "$(stat -c %a "$C/tmp/su")" 755
t_fail "  and security.capability" getfattr -n security.capability "$C/tmp/su"
chown 0:0 "$C/tmp/su"
chmod 2777 "$C/tmp/su"
t_ok "an unprivileged write to a setgid, group-executable file" nobody sh -c "echo z >> '$C/tmp/su'"
t_is "  clears setgid" "$(stat -c %a "$C/tmp/su")" 777
chmod 2666 "$C/tmp/su"
t_ok "an unprivileged write to a setgid file without group execute" nobody sh -c "echo z >> '$C/tmp/su'"
t_is "  keeps setgid (a locking mark, not a privilege)" "$(stat -c %a "$C/tmp/su")" 2666
f=$C2/etc/hostname
chmod 4777 "$f"
t_ok "an unprivileged write to a setuid file still in the image (a copy-up)" nobody sh -c "printf '' >> '$f'"
t_is "  clears setuid" "$(stat -c %a "$f")" 777

# --- an executed file's data may not change while it runs or joined readers remain -----------
# refused(p): every in-place change of p's data fails with ETXTBSY and leaves its size (the
# kernel's for a file being executed, the daemon's for one readers hold in passthrough)
cat >"$TMP/refused.py" <<'PYEOF'
import os
def refused(p):
    size = os.stat(p).st_size
    for how in ('open', 'truncating open', 'truncate'):
        try:
            if how == 'open':
                os.open(p, os.O_WRONLY)
            elif how == 'truncating open':
                os.open(p, os.O_WRONLY | os.O_TRUNC)
            else:
                os.truncate(p, 10)
            raise SystemExit(how + ' of ' + p + ' succeeded while it is held')
        except OSError as e:
            assert e.errno == 26, (how, e)
        assert os.stat(p).st_size == size, (how, 'changed the size', os.stat(p).st_size)
PYEOF
t_ok "a reader joins a running executable, which then exits" python3 -c "
import os, subprocess, sys, time
sys.path.insert(0, '$TMP')
from refused import refused
p = '$C2/bin/busybox'
run = subprocess.Popen([p, 'sleep', '1'])
time.sleep(0.3)
r = os.open(p, os.O_RDONLY)       # joins the executable's backing file
try:
    os.open(p, os.O_WRONLY)
    raise SystemExit('write-open while running succeeded')
except OSError as e:
    assert e.errno == 26, e       # ETXTBSY, from the kernel
run.wait()
refused(p)                        # ETXTBSY, from the daemon: a joined reader holds it
assert os.pread(r, 4, 0) == b'\x7fELF'
r2 = os.open(p, os.O_RDONLY)       # other readers and runs still work meanwhile
assert os.pread(r2, 4, 0) == b'\x7fELF'
os.close(r2)
subprocess.run([p, 'true'], check=True)
os.close(r)                       # (the kernel sends RELEASE after close returns: the daemon waits for it)
w = os.open(p, os.O_WRONLY)       # the copy-up happens now
os.pwrite(w, b'#!', 0)
os.close(w)
with open(p, 'rb') as f:
    assert f.read(2) == b'#!'"
t_is "  the image is unchanged" "$(head -c 4 "$img/bin/busybox" | od -An -c | tr -d ' ')" '177ELF'
t_is "  and the other container too" "$(head -c 4 "$C/bin/busybox" | od -An -c | tr -d ' ')" '177ELF'
# an ELF file only opened read-only, as ld.so opens a shared library, holds it the same way: its
# data may not change in place while that lasts (then it may), and a non-ELF file's may
id3=$(ctfs create localhost/layout:v1) || bail_out "cannot create a third container"
C3=$MNT/containers/$id3
t_ok "an ELF file held open read-only (never executed) refuses in-place changes with ETXTBSY until closed" python3 -c "
import os, sys
sys.path.insert(0, '$TMP')
from refused import refused
p = '$C3/bin/busybox'
r = os.open(p, os.O_RDONLY)
refused(p)
os.rename(p, '$C3/bin/bb2')       # names may still change: no data does
os.rename('$C3/bin/bb2', p)
assert os.pread(r, 4, 0) == b'\x7fELF'
os.close(r)                       # (the kernel sends RELEASE after close returns: the daemon waits for it)
w = os.open(p, os.O_WRONLY)
os.pwrite(w, b'#!', 0)
os.close(w)
with open(p, 'rb') as f:
    assert f.read(2) == b'#!'
q = '$C3/etc/passwd'
r = os.open(q, os.O_RDONLY)
w = os.open(q, os.O_WRONLY | os.O_APPEND)
os.write(w, b'more\n')
os.close(w)
assert os.pread(r, 1 << 16, 0).endswith(b'more\n'), 'a reader of a non-ELF file did not move to the copy'
os.close(r)"
t_is "  the image's busybox is unchanged" "$(head -c 4 "$img/bin/busybox" | od -An -c | tr -d ' ')" '177ELF'
# two processes opening one ELF file at the same instant (a pipeline starting: both load libc)
# both pass through: the second waits for the first's backing file instead of going cached
id4=$(ctfs create localhost/layout:v1) || bail_out "cannot create a container"
n=$(requests python3 -c "
import os, threading
def pair(p):
    b = threading.Barrier(2)
    def one():
        b.wait()
        fd = os.open(p, os.O_RDONLY)
        assert os.read(fd, 4) == b'\x7fELF'
        b.wait()
        os.close(fd)
    ts = [threading.Thread(target=one) for _ in range(2)]
    for t in ts: t.start()
    for t in ts: t.join()
for i in range(1, 101):
    pair('$MNT/containers/$id4/elf/e%d' % i)")
t_is "100 ELF files each opened by two threads at once: every open passes through (READs: $n)" "$n" 0
# read, closed, and written at once (patchelf's way): the write does not find the closed reader
# (the kernel sends the RELEASE after close(2) returned, maybe to another daemon thread)
t_ok "100 ELF files each read and closed, then opened for writing at once: never ETXTBSY" python3 -c "
import os
for i in range(1, 101):
    p = '$C3/elf/e%d' % i
    r = os.open(p, os.O_RDONLY)
    assert os.read(r, 4) == b'\x7fELF'
    os.close(r)
    w = os.open(p, os.O_WRONLY | os.O_TRUNC)
    os.write(w, b'#!/bin/sh\n')
    os.close(w)"

t_ok "umount" ctfs umount "$MNT"

# --- a mixed load on the per-node modes: nothing may fail with EIO, EBUSY or ETXTBSY ----------
t_ok "mount again, without --debug" ctfs mount "$MNT"
t_ok "5 s of image reads, runs of an image file, readers joining them, cached reads of image files in a container, and upper writes and re-reads, in parallel" python3 - "$img" "$C" <<'EOF'
import hashlib, os, subprocess, sys, time
img, c = sys.argv[1], sys.argv[2]
want = hashlib.sha256(open(img + '/bin/busybox', 'rb').read()).hexdigest()
end = time.time() + 5
def worker(kind, k):
    n = 0
    while time.time() < end:
        n += 1
        if kind == 'image-read':
            assert hashlib.sha256(open(img + '/bin/busybox', 'rb').read()).hexdigest() == want
        elif kind == 'run':
            subprocess.run([c + '/bin/busybox', 'true'], check=True)
        elif kind == 'join':
            with open(c + '/bin/busybox', 'rb') as f:
                assert f.read(4) == b'\x7fELF'
        elif kind == 'cached':
            with open(c + '/etc/passwd', 'rb') as f:
                assert b'root:' in f.read()
        elif kind == 'upper':
            p = '%s/tmp/mix-%d' % (c, k)
            data = os.urandom(4096 + n % 7919)
            with open(p, 'wb') as f:
                f.write(data)
            with open(p, 'rb') as f:
                assert f.read() == data
    os._exit(0)
pids = []
for k, kind in enumerate(['image-read', 'run', 'run', 'join', 'join', 'cached', 'upper', 'upper']):
    pid = os.fork()
    if pid == 0:
        try:
            worker(kind, k)
        except BaseException as e:
            print(kind, repr(e), file=sys.stderr)
            os._exit(1)
    pids.append(pid)
bad = [p for p in pids if os.waitpid(p, 0)[1] != 0]
sys.exit(1 if bad else 0)
EOF
t_ok "  umount" ctfs umount "$MNT"

# --- a store where the kernel refuses backing files: on overlayfs (a stacked filesystem) -------
mkdir -p "$TMP/ovl/lower" "$TMP/ovl/upper" "$TMP/ovl/work" "$TMP/ovl/store"
if mount -t overlay overlay -o "lowerdir=$TMP/ovl/lower,upperdir=$TMP/ovl/upper,workdir=$TMP/ovl/work" "$TMP/ovl/store"; then
	R2=$TMP/ovl/store/root
	"$CTFS" --root "$R2" pull -q "oci:$TMP/layout:v1" >/dev/null || bail_out "cannot pull into the overlay store"
	LOG=$TMP/daemon2.log
	MNT2=$TMP/mnt2
	mkdir -p "$MNT2"
	"$CTFS" --root "$R2" mount -f --debug "$MNT2" >"$LOG" 2>&1 &
	bg_pid $!
	for _ in $(seq 100); do [[ -d $MNT2/images ]] && break; sleep 0.1; done
	id3=$("$CTFS" --root "$R2" create localhost/layout:v1)
	C3=$MNT2/containers/$id3
	t_is "store on overlayfs: an image file reads right (through the daemon)" \
		"$(cmp "$MNT2/images/localhost/layout:v1/bin/busybox" "$(command -v busybox)" && echo same)" same
	t_ok "  a container file written and read back" sh -c "cp '$TMP/big' '$C3/tmp/big' && cmp '$TMP/big' '$C3/tmp/big'"
	t_ok "  executing a container file" "$C3/bin/busybox" true
	cat "$C3/tmp/big" >/dev/null
	before=$(wc -l <"$LOG")
	cat "$C3/tmp/big" >/dev/null
	t_is "  an upper file read again comes from the kernel's cache (keep_cache kept)" \
		"$(tail -n +"$((before + 1))" "$LOG" | grep -cE 'opcode: READ ' || true)" 0
	t_ok "  umount" "$CTFS" --root "$R2" umount "$MNT2"
	umount "$TMP/ovl/store"
else
	skip "store on overlayfs" "cannot mount an overlayfs here"
fi
