#!/usr/bin/env python3
"""Concurrent use of files whose copy-up runs in the background (fs/upper_copy.h).

copyup-stress.py CTFS ROOT IMAGE REL SECONDS

Round after round for SECONDS, in a fresh container of IMAGE (made with `CTFS --root ROOT
create`): one thread appends numbered 4 KiB records to REL (its open starts the copy-up), one
reads random ranges (some across the image's size) and checks every byte against the image and
the records appended so far, one stats the file (its size never goes down), and once the
appends are done writes land below the image's size (each waits for its chunk only, which the
copy must then leave alone). At the end of a round the file must be the image's bytes with
those writes and every record in order, and the upper file must lose its mark. Prints one line per problem; exits 1 if there was any.
"""
import mmap
import os
import random
import subprocess
import sys
import threading
import time

ctfs, root, image, rel, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
mnt = None
with open(os.path.join(root, "mount.json")) as f:
    import json

    mnt = json.load(f)["mountpoint"]
img = os.path.join(mnt, "images", image, rel)
N = os.stat(img).st_size
img_fd = os.open(img, os.O_RDONLY)
REC = 4096
problems = []


def record(i):
    head = b"record %06d\n" % i
    return (head * (REC // len(head) + 1))[:REC]


def image_bytes(off, n):
    return os.pread(img_fd, n, off)


def fail(msg):
    problems.append(msg)
    print(msg, flush=True)


def one_round(k):
    cid = subprocess.run([ctfs, "--root", root, "create", image, "/bin/true"], check=True,
                         capture_output=True, text=True).stdout.strip()
    path = os.path.join(mnt, "containers", cid, rel)
    upper = os.path.join(root, "containers", cid, "upper", rel)
    appended = [0]  # records written so far
    done = threading.Event()
    opened = threading.Event()
    n_records = random.randint(8, 64)

    def appender():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        opened.set()
        for i in range(n_records):
            if os.write(fd, record(i)) != REC:
                fail(f"round {k}: short append")
            appended[0] = i + 1
            if random.random() < 0.3:
                time.sleep(random.random() * 0.002)
        os.close(fd)
        done.set()

    def reader():
        opened.wait()
        fd = os.open(path, os.O_RDONLY)
        while not done.is_set():
            before = appended[0]
            off = random.choice([random.randrange(0, N), max(0, N - random.randrange(1, 1 << 18))])
            n = random.randint(1, 1 << 18)
            data = os.pread(fd, n, off)
            below = data[:max(0, min(len(data), N - off))]
            if below != image_bytes(off, len(below)):
                fail(f"round {k}: read at {off} (+{len(below)}) differs from the image")
            above = data[len(below):]
            if above:
                start = max(off, N) - N
                want = b"".join(record(i) for i in range(appended[0] + 1))[start:start + len(above)]
                if above != want[:len(above)] or len(above) > (appended[0] + 1) * REC - start:
                    fail(f"round {k}: read of the appended part at {N + start} (+{len(above)}) is wrong "
                         f"({before}-{appended[0]} records written)")
        os.close(fd)

    def stater():
        opened.wait()
        last = 0
        while not done.is_set():
            size = os.stat(path).st_size
            if size < last:
                fail(f"round {k}: the size went down ({last} -> {size})")
            last = size

    threads = [threading.Thread(target=t) for t in (appender, reader, stater)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # writes below the image's size (in chunks the copy may not have reached yet; one at the
    # start of a chunk), each read back at once through the daemon (O_DIRECT: not the kernel's
    # cache) across the chunk's start: the written chunk from the upper file, the one before it
    # (maybe not opened) from the image
    CHUNK = 4 << 20
    woffs = sorted(set(random.sample(range(0, N - 4, 4), 2) + [random.randrange(1, max(2, N // CHUNK)) * CHUNK]))
    woffs = [w for w in woffs if w + 4 <= N]
    fd = os.open(path, os.O_WRONLY)
    direct = os.open(path, os.O_RDONLY | os.O_DIRECT)
    for woff in reversed(woffs):
        os.pwrite(fd, b"WXYZ", woff)
        start = woff - woff % CHUNK
        lo = max(0, start - 4096)
        hi = min(N, woff + 4)
        n = (hi - lo + 4095) // 4096 * 4096
        buf = mmap.mmap(-1, n)  # (O_DIRECT: aligned)
        got = bytes(buf[:os.preadv(direct, [buf], lo)])[:woff + 4 - lo]
        want = image_bytes(lo, woff - lo) + b"WXYZ"
        for other in woffs:
            if other > woff and other < woff + 4 or other < woff and other + 4 > lo:
                break
        else:
            if got != want:
                fail(f"round {k}: read back at once, {lo} (+{len(want)}) is not the image's bytes and the write at {woff}")
    os.close(direct)
    os.close(fd)
    want_size = N + n_records * REC
    if os.stat(path).st_size != want_size:
        fail(f"round {k}: size {os.stat(path).st_size}, want {want_size}")
    fd = os.open(path, os.O_RDONLY)
    pos = 0
    while pos < N:
        n = min(8 << 20, N - pos)
        got = os.pread(fd, n, pos)
        want = bytearray(image_bytes(pos, n))
        for woff in woffs:
            if pos <= woff < pos + n:
                lo = woff - pos
                want[lo:lo + 4] = b"WXYZ"[:max(0, min(4, n - lo))]
            if woff < pos < woff + 4:
                want[0:woff + 4 - pos] = b"WXYZ"[pos - woff:]
        if got != bytes(want):
            fail(f"round {k}: the image part at {pos} (+{n}) is wrong at the end")
            break
        pos += n
    tail = os.pread(fd, n_records * REC, N)
    if tail != b"".join(record(i) for i in range(n_records)):
        fail(f"round {k}: the appended records are wrong at the end")
    os.close(fd)
    for _ in range(600):
        try:
            os.getxattr(upper, "trusted.overlay.ctfs-copying")
        except OSError:
            break
        time.sleep(0.1)
    else:
        fail(f"round {k}: the upper file is still marked a minute later")
    subprocess.run([ctfs, "--root", root, "rm", "-f", cid], check=True, capture_output=True)


end = time.monotonic() + seconds
rounds = 0
while time.monotonic() < end or rounds == 0:
    one_round(rounds)
    rounds += 1
print(f"{rounds} rounds, {len(problems)} problems", flush=True)
sys.exit(1 if problems else 0)
