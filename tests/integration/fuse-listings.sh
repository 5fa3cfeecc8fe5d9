#!/bin/bash
# Directory listings on a real mount. The kernel opens directories without asking the daemon
# (no OPENDIR) and keeps every listing, so a warm walk of an image sends the daemon nothing;
# what must hold then: a listing never goes stale (images/ and containers/ follow the store at
# once, a container's directories every change made in them), large directories list whole in
# several requests, telldir/seekdir come back to the same entry, and readers in one directory
# that changes under them each see every unchanged entry exactly once.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd umoci busybox python3

chmod 0711 "$TMP"
MNT=$TMP/mnt
LOG=$TMP/daemon.log
fx_busybox_image "$TMP/layout" v1 >/dev/null
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null || bail_out "cannot pull the fixture image"

mkdir -p "$MNT"
"$CTFS" --root "$CTFS_ROOT" mount -f --debug "$MNT" >"$LOG" 2>&1 &
bg_pid $!
for _ in $(seq 100); do [[ -d $MNT/images ]] && break; sleep 0.1; done
t_ok "a debug mount answers" test -d "$MNT/images/localhost/layout:v1"
img=$MNT/images/localhost/layout:v1

# requests CMD...: run CMD, then print the requests the daemon logged meanwhile, one opcode a
# line (the daemon logs a request before it answers it)
requests() {
	local before
	before=$(wc -l <"$LOG")
	"$@" >/dev/null || return 1
	tail -n +"$((before + 1))" "$LOG" | grep -oE 'opcode: [A-Z_]+' | cut -d' ' -f2
}
walk() { (cd "$1" && find . -printf '%p %s %m %U %G %T@ %y %l\n'); }
# (find asks for statfs, which is not a directory request)
dirreqs() { requests "$@" | grep -v '^STATFS$' || true; }

# --- the kernel keeps listings --------------------------------------------------------------------
walk_to() { walk "$1" | sort >"$2"; }
reqs=$(dirreqs walk_to "$img" "$TMP/walk1" | sort | uniq -c | awk '{ print $2 "=" $1 }' | tr '\n' ' ')
t_like "a first walk of the image lists its directories" "$reqs" "READDIRPLUS"
# every listing is READDIRPLUS, whole directories too (bin/ takes several requests): the kernel's
# "auto" mode answered only a directory's first buffer with attributes and looked each further
# entry up, one LOOKUP per name ($(ls "$img/bin" | wc -l) in bin/)
t_is "  with every entry's attributes: no LOOKUP, no plain READDIR" "$(grep -oE '(LOOKUP|READDIR)=[0-9]+' <<<" $reqs" || true)" ""
# (a symlink's first readlink invalidates its atime in the kernel: the next lstat of each asks
# once more; from then on nothing does)
walk_to "$img" "$TMP/walk2"
t_is "a warm walk sends no request at all" "$(dirreqs walk_to "$img" "$TMP/walk2" | wc -l)" 0
t_ok "  and sees the same tree" cmp "$TMP/walk1" "$TMP/walk2"
t_is "  all of it" "$(wc -l <"$TMP/walk2")" "$(find "$img" | wc -l)"
t_is "no OPENDIR is ever sent after the first" "$(grep -cE 'opcode: OPENDIR ' "$LOG")" 1

# --- images/ follows the store --------------------------------------------------------------------
# after DIR...: list each DIR (the kernel's copy and its attributes are fresh), then run the rest
after() {
	while [[ $1 != -- ]]; do
		ls "$1" >/dev/null
		shift
	done
	shift
	"$@"
}
t_is "images/localhost lists the image" "$(ls "$MNT/images/localhost")" "layout:v1"
t_ok "tag it" after "$MNT/images/localhost" -- ctfs tag localhost/layout:v1 localhost/layout:v2
t_is "  the new name is listed at once" "$(ls "$MNT/images/localhost" | tr '\n' ' ')" "layout:v1 layout:v2 "
t_ok "tag it under a new registry" after "$MNT/images" -- ctfs tag localhost/layout:v1 example.org:5000/team/app:1
t_is "  images/ lists the registry at once" "$(ls "$MNT/images" | tr '\n' ' ')" "example.org:5000 localhost "
t_is "  and its prefix dirs" "$(ls "$MNT/images/example.org:5000/team")" "app:1"
t_ok "rmi the names" after "$MNT/images" "$MNT/images/localhost" -- ctfs rmi localhost/layout:v2 example.org:5000/team/app:1
t_is "  gone from the listing at once" "$(ls "$MNT/images/localhost")" "layout:v1"
t_is "  the registry too" "$(ls "$MNT/images")" "localhost"

# --- containers/ follows the store ----------------------------------------------------------------
t_is "containers/ is empty" "$(ls "$MNT/containers" | wc -l)" 0
id=$(after "$MNT/containers" -- ctfs create --name web localhost/layout:v1) || bail_out "cannot create a container"
t_is "a new container is listed at once, by id and name" "$(ls "$MNT/containers" | sort | tr '\n' ' ')" "$(printf '%s\n' "$id" web | sort | tr '\n' ' ')"
C=$MNT/containers/$id
t_ok "rm it" after "$MNT/containers" -- ctfs rm web
t_is "  gone from the listing at once" "$(ls "$MNT/containers" | wc -l)" 0
id=$(after "$MNT/containers" -- ctfs create --name web localhost/layout:v1) || bail_out "cannot create a container"
t_is "the name made again names the new container" "$(ls "$MNT/containers" | sort | tr '\n' ' ')" "$(printf '%s\n' "$id" web | sort | tr '\n' ' ')"
C=$MNT/containers/$id
t_ok "ctfs run --rm comes and goes" after "$MNT/containers" -- ctfs run --rm localhost/layout:v1 /bin/true
t_is "  and is not listed after" "$(ls "$MNT/containers" | wc -l)" 2

# --- a container's directories follow every change ------------------------------------------------
ls_is() { t_is "$1" "$(ls -A "$2" | tr '\n' ' ')" "$3"; }
ls "$C/etc" "$C/bin" >/dev/null
t_ok "create a file in an image directory" touch "$C/etc/zz-new"
t_like "  listed at once" "$(ls "$C/etc")" "zz-new"
t_ok "rename it" mv "$C/etc/zz-new" "$C/etc/zz-renamed"
t_is "  the listing has the new name only" "$(ls "$C/etc" | grep -c '^zz-')" 1
t_ok "move it to another directory" mv "$C/etc/zz-renamed" "$C/bin/zz-moved"
t_is "  both listings follow" "$(ls "$C/etc" | grep -c '^zz-') $(ls "$C/bin" | grep -c '^zz-moved$')" "0 1"
t_ok "unlink an image file" rm "$C/etc/passwd"
t_is "  not listed" "$(ls "$C/etc" | grep -c '^passwd$')" 0
t_ok "rename an image directory" mv "$C/etc" "$C/etc2"
t_is "  the root's listing follows" "$(ls "$C" | grep -cE '^etc2?$') $(ls "$C" | grep -c '^etc2$')" "1 1"
ls "$C/etc2" >/dev/null
t_ok "make the old name a new directory" mkdir "$C/etc"
ls_is "  empty" "$C/etc" ""
id2=$(ctfs create --name w2 localhost/layout:v1 /bin/sh -c 'echo hi >/etc/from-run; rm /etc/group; mkdir /home/new') ||
	bail_out "cannot create a second container"
C2=$MNT/containers/$id2
ls "$C2/etc" "$C2/home" >/dev/null
t_ok "a process in a container changes its directories (start -a)" ctfs start -a w2
t_is "  the host's listings follow at once" "$(ls "$C2/etc" | grep -cE '^(from-run|group)$') $(ls "$C2/home" | tr '\n' ' ')" "1 new user "

# --- large directories, telldir/seekdir, readers while the directory changes ----------------------
t_ok "3000 files in one directory" python3 -c "
import os
d = '$C/big'
os.mkdir(d)
for i in range(3000):
    open('%s/f%04d' % (d, i), 'w').close()"
t_is "  all listed, in several requests" "$(requests ls "$C/big" | grep -c '^READDIR' | awk '{ print ($1 > 1) }') $(ls "$C/big" | wc -l)" "1 3000"
t_ok "remove a third" sh -c "rm '$C'/big/f0*"
t_is "  2000 listed" "$(ls "$C/big" | wc -l)" 2000
cat >"$TMP/seekdir.py" <<'EOF'
import ctypes, ctypes.util, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64), ("d_reclen", ctypes.c_ushort),
                ("d_type", ctypes.c_ubyte), ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = libc.telldir.argtypes = libc.closedir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
d = libc.opendir(sys.argv[1].encode())
def names(k):
    out = []
    for _ in range(k):
        e = libc.readdir(d)
        if not e:
            break
        out.append(e.contents.d_name)
    return out
names(700)
pos = libc.telldir(d)
a = names(50)
names(300)
libc.seekdir(d, pos)
b = names(50)
libc.closedir(d)
assert len(a) == 50 and a == b, (a[:3], b[:3])
EOF
t_ok "telldir/seekdir come back to the same entry" python3 "$TMP/seekdir.py" "$C/big"
t_ok "four readers at once while files come and go: each sees every unchanged name once" python3 - "$C/big" <<'EOF'
import os, sys
d = sys.argv[1]
keep = set(n for n in os.listdir(d) if n.startswith('f1'))   # never touched below
its = [os.scandir(d) for _ in range(4)]
seen = [[] for _ in its]
alive = list(range(len(its)))
k = 0
while alive:
    for i in list(alive):
        for _ in range(37):
            e = next(its[i], None)
            if e is None:
                alive.remove(i)
                break
            seen[i].append(e.name)
    # change the directory between the readers' steps
    open('%s/n%05d' % (d, k), 'w').close()
    os.unlink('%s/f2%03d' % (d, k % 1000)) if os.path.exists('%s/f2%03d' % (d, k % 1000)) else None
    k += 1
for s in seen:
    names = [n for n in s if n in keep]
    assert len(names) == len(set(names)) == len(keep), (len(names), len(set(names)), len(keep))
EOF
# getdents(2) with small buffers (the kernel asks again from inside a reply), readers that stay
# open mid-way, others reading to the end, names removed behind a reader and added after its
# end: each reader gets every name that did not change exactly once, and none again after its
# end
cat >"$TMP/getdents.py" <<'EOF'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def getdents(fd, size):
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(217, fd, buf, size)
    assert n >= 0, os.strerror(ctypes.get_errno())
    out, p = [], 0
    while p < n:
        rl = int.from_bytes(buf.raw[p + 16:p + 18], 'little')
        out.append(buf.raw[p + 19:p + rl].split(b'\0')[0].decode())
        p += rl
    return out
def read(fd, size, most=None):
    got = []
    while most is None or len(got) < most:
        r = getdents(fd, size)
        if not r:
            break
        got += r
    return got
d = sys.argv[1]
for size in (512, 1024, 4096):
    sd = '%s/s%d' % (d, size)
    os.mkdir(sd)
    for i in range(1500):
        open('%s/f%04d' % (sd, i), 'w').close()
    a = os.open(sd, os.O_RDONLY | os.O_DIRECTORY)
    seen = read(a, size, 60)
    idle = [os.open(sd, os.O_RDONLY | os.O_DIRECTORY) for _ in range(6)]
    for f in idle:
        read(f, size, 10)                    # mid-way, kept open
    b = os.open(sd, os.O_RDONLY | os.O_DIRECTORY)
    assert len([n for n in read(b, size) if n.startswith('f')]) == 1500
    gone = [n for n in seen if n.startswith('f')][:20]
    for n in gone:
        os.unlink('%s/%s' % (sd, n))
    seen += read(a, size)
    names = [n for n in seen if n.startswith('f')]
    want = set('f%04d' % i for i in range(1500))
    assert len(names) == len(set(names)) == 1500, (size, len(names), len(set(names)))
    assert set(names) == want, (size, sorted(want - set(names))[:5])
    for i in range(50):
        open('%s/g%04d' % (sd, i), 'w').close()
    again = [n for n in read(b, size) if not n.startswith('g')]
    assert again == [], (size, again[:5])
    for f in idle + [a, b]:
        os.close(f)
EOF
t_ok "small getdents buffers, readers kept open mid-way, removals behind a reader, names added after an end: every unchanged name once, none again" python3 "$TMP/getdents.py" "$C"
t_is "a new listing shows the final state (the upper dir's)" "$(ls "$C/big" | md5sum)" "$(ls "$CTFS_ROOT/containers/$id/upper/big" | md5sum)"

t_ok "umount" ctfs umount "$MNT"
