#!/bin/bash
# Hostile layers never write outside the store, and a refused pull changes nothing.
#
# The corpus is written here, byte by byte, with Python's tarfile and hand-made headers (never
# with ctfs), and wrapped into OCI layouts whose blobs, configs, manifests and index.json are
# written by hand with correct digests (except where a digest is the point). A canary directory
# on the host is what the hostile entries aim at, through absolute names, `..` and symlinks.
#
# Refused cases: nonzero exit, exactly one line on stderr starting "ctfs: ", the store
# unchanged (tmp/ aside, which must be empty again too), the canary untouched.
# Confined cases (absolute names; a layer writing below what a lower layer made a symlink; a
# whiteout below a symlink; an archive member below a symlink that leaves the archive): the
# pull succeeds, the files appear inside the image (`ctfs export | tar -t`), and nothing
# outside: no exported name is absolute or has a `..`, and the canary is untouched.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd python3 jq tar

CANARY=$TMP/canary
mkdir -p "$CANARY/dir"
echo canary >"$CANARY/file"
echo canary >"$CANARY/dir/file"
export CANARY

# canary_state: everything about the canary a write through it would change.
canary_state() {
	find "$CANARY" -printf '%p %y %s %m %T@\n' | sort
	find "$CANARY" -type f -exec sha256sum {} + | sort
}
canary_before=$(canary_state)

# store_state: the store, work directories aside (names and sizes, as the issue asks).
store_state() {
	find "$CTFS_ROOT" -path '*/tmp' -prune -o -printf '%p %s\n' | sort
}

# ---------------------------------------------------------------------------------------------
# The corpus: one OCI layout per case under $TMP/corpus/<case>, image tagged "t".

cat >"$TMP/corpus.py" <<'PY'
import gzip, hashlib, io, json, os, platform, sys, tarfile

out = sys.argv[1]
canary = os.environ["CANARY"]
canary_rel = canary.lstrip("/")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x", "riscv64": "riscv64", "i686": "386"}.get(platform.machine(), platform.machine())

def sha(b):
    return hashlib.sha256(b).hexdigest()

# ---- tar members ----
def hdr(name, type=tarfile.REGTYPE, size=0, linkname="", mode=0o644, fmt=tarfile.PAX_FORMAT):
    ti = tarfile.TarInfo(name)
    ti.type = type
    ti.size = size
    ti.linkname = linkname
    ti.mode = mode
    ti.mtime = 1700000000
    ti.uid = ti.gid = 0
    return ti.tobuf(fmt, "utf-8", "surrogateescape")

def pad(b):
    return b + b"\0" * (-len(b) % 512)

def f(name, data=b"x\n", mode=0o644):
    return hdr(name, size=len(data), mode=mode) + pad(data)

def d(name, mode=0o755):
    return hdr(name, tarfile.DIRTYPE, mode=mode)

def sym(name, target):
    return hdr(name, tarfile.SYMTYPE, linkname=target, mode=0o777)

def hard(name, target):
    return hdr(name, tarfile.LNKTYPE, linkname=target)

END = b"\0" * 1024

def tar(*members, end=True):
    return b"".join(members) + (END if end else b"")

# ---- layouts ----
def layout(case, layers, diff_ids=None, edit=None, tag="t"):
    """layers: list of (uncompressed tar bytes, gzip?). edit(dir, digests) runs last."""
    root = os.path.join(out, case)
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs)
    def put(b):
        h = sha(b)
        with open(os.path.join(blobs, h), "wb") as fh:
            fh.write(b)
        return h
    descs, ids = [], []
    for data, gz in layers:
        blob = gzip.compress(data, mtime=0) if gz else data
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gz else "")
        descs.append({"mediaType": mt, "digest": "sha256:" + put(blob), "size": len(blob)})
        ids.append("sha256:" + sha(data))
    config = {
        "created": "2024-01-01T00:00:00Z", "architecture": ARCH, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids if diff_ids is not None else ids},
    }
    cb = json.dumps(config).encode()
    ch = put(cb)
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + ch, "size": len(cb)},
        "layers": descs,
    }
    mb = json.dumps(manifest).encode()
    mh = put(mb)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + mh, "size": len(mb),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(root, "index.json"), "w") as fh:
        json.dump(index, fh)
    with open(os.path.join(root, "oci-layout"), "w") as fh:
        json.dump({"imageLayoutVersion": "1.0.0"}, fh)
    if edit:
        edit(blobs, {"config": ch, "manifest": mh, "layers": [x["digest"][7:] for x in descs]})

def one(case, *members, gz=True):
    layout(case, [(tar(*members), gz)])

def corrupt(blobs, h):
    """Change the content of a blob, keeping its name (and so the digest it claims)."""
    p = os.path.join(blobs, h)
    b = bytearray(open(p, "rb").read())
    b[len(b) // 2] ^= 0x01
    open(p, "wb").write(bytes(b))

ok = f("ok-file", b"fine\n")

# A good base image, so that "the store is unchanged" compares a store with content.
layout("base", [(tar(d("etc"), f("etc/hostname", b"base\n"), ok), True)])

# -- confined: pulled, the files land inside the image
one("absolute", ok, f("/abs-file", b"abs\n"), f("/etc/abs", b"abs\n"),
    f(canary + "/file", b"pwned\n"), d(canary + "/newdir"), sym("/abs-link", canary + "/file"))
layout("symlink-lower", [
    (tar(ok, sym("esc", canary), sym("rel", "../../../../../../../../.." + canary)), True),
    (tar(f("esc/file", b"pwned\n"), d("esc/newdir"), f("rel/dir/file", b"pwned\n")), True)])

# -- refused
one("dotdot", ok, f("../../../../../../../../.." + canary + "/dotdot", b"pwned\n"))
one("dotdot-mid", ok, f("a/../../../../../../../../.." + canary + "/mid", b"pwned\n"))
one("dotdot-trailing", ok, d("a/b/.."))
one("dotdot-dir", ok, d("../../../../../../../../.." + canary + "/newdir"))
one("dotdot-newline", ok, f("evil\nname/../../../../../../../../.." + canary + "/nl", b"pwned\n"))
one("symlink-parent", ok, sym("esc", canary), f("esc/file", b"pwned\n"))
one("symlink-parent-rel", ok, sym("up", "../../../../../../../../.."), f("up" + canary + "/file", b"pwned\n"))
one("symlink-parent-deep", ok, d("a"), sym("a/esc", canary), f("a/esc/dir/file", b"pwned\n"))
one("symlink-parent-dir", ok, sym("esc", canary), d("esc/newdir"))
one("symlink-parent-symlink", ok, sym("esc", canary), sym("esc/link", "/etc/passwd"))
one("symlink-parent-hardlink", ok, sym("esc", canary), hard("esc/hl", "ok-file"))
one("symlink-parent-whiteout", ok, sym("esc", canary), f("esc/.wh.file", b""))
one("symlink-parent-opaque", ok, sym("esc", canary), f("esc/.wh..wh..opq", b""))
one("file-parent", ok, f("ok-file/child", b"pwned\n"))
one("hardlink-dotdot", ok, hard("evil", "../../etc/passwd"))
one("hardlink-dotdot-canary", ok, hard("evil", "../../../../../../../../.." + canary + "/file"))
one("hardlink-absolute", ok, hard("evil", canary + "/file"))
one("hardlink-missing", ok, hard("evil", "no/such/file"))
one("hardlink-via-symlink", ok, sym("esc", canary), hard("evil", "esc/file"))
one("hardlink-to-dir", ok, d("dir"), hard("evil", "dir"))
one("whiteout-dot", ok, f(".wh..", b""))
one("whiteout-dotdot", ok, f(".wh...", b""))
one("whiteout-dotdot-nested", ok, f("a/.wh...", b""))
one("whiteout-empty", ok, f(".wh.", b""))
one("whiteout-component", ok, f("a/.wh.../x", b"pwned\n"))
one("whiteout-component-opq", ok, f(".wh..wh..opq/x", b"pwned\n"))
one("whiteout-dotdot-path", ok, f(".wh.../../../../../../../../.." + canary + "/x", b"pwned\n"))
# Declared sizes: 64 GiB with 100 bytes of data, and 1 PiB (beyond any free space).
layout("gigantic", [(hdr("big", size=64 << 30) + b"y" * 100, True)])
layout("gigantic-plain", [(ok + hdr("big", size=64 << 30) + b"y" * 100, False)])
layout("gigantic-petabyte", [(ok + hdr("huge", size=1 << 50) + pad(b"y" * 100) + END, True)])
# A tar that ends in the middle of a file: plain, and as a gzip stream cut short.
layout("truncated", [(ok + hdr("cut", size=100000) + b"z" * 5000, False)])
def cut_gzip(blobs, h):
    p = os.path.join(blobs, h["layers"][0])
    b = open(p, "rb").read()
    open(p, "wb").write(b[: len(b) // 2])
layout("truncated-gzip", [(tar(ok, f("random", os.urandom(200000))), True)],
       edit=lambda blobs, h: cut_gzip(blobs, h))
layout("truncated-header-data", [(ok + f("cut", b"a" * 700)[:512 + 300], False)])
# Digests: a layer blob edited after the manifest was written (gzip and plain), a config
# whose diff_ids do not match, a config and a manifest edited after they were referenced.
layout("layer-digest", [(tar(ok, f("data", b"d" * 5000)), True)],
       edit=lambda blobs, h: corrupt(blobs, h["layers"][0]))
layout("layer-digest-plain", [(tar(ok, f("data", b"d" * 5000)), False)],
       edit=lambda blobs, h: corrupt(blobs, h["layers"][0]))
# The same tar compressed otherwise: the diff_id checks out, only the blob digest does not.
def recompress(blobs, h):
    p = os.path.join(blobs, h["layers"][0])
    data = gzip.decompress(open(p, "rb").read())
    open(p, "wb").write(gzip.compress(data, compresslevel=1, mtime=12345))
layout("layer-digest-recompressed", [(tar(ok, f("data", b"d" * 5000)), True)], edit=recompress)
layout("diff-ids", [(tar(ok), True)], diff_ids=["sha256:" + sha(tar(f("other")))])
layout("diff-ids-count", [(tar(ok), True)], diff_ids=[])
layout("config-digest", [(tar(ok), True)], edit=lambda blobs, h: corrupt(blobs, h["config"]))
layout("manifest-digest", [(tar(ok), True)], edit=lambda blobs, h: corrupt(blobs, h["manifest"]))
# A good first layer and a hostile second one: the pull is all or nothing.
layout("second-layer", [(tar(d("new"), f("new/file", os.urandom(5000))), True),
                        (tar(f("../../../../../../../../.." + canary + "/x", b"pwned\n")), True)])
layout("second-layer-digest", [(tar(d("new2"), f("new2/file", os.urandom(5000))), True),
                               (tar(f("other", os.urandom(5000))), True)],
       edit=lambda blobs, h: corrupt(blobs, h["layers"][1]))
# A hardlink whose target a lower layer deleted.
layout("hardlink-deleted", [(tar(f("victim", b"v\n")), True),
                            (tar(f(".wh.victim", b""), hard("evil", "victim")), True)])

# -- archives whose members try to leave the work directory
def archive(name, members):
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(tar(*members))
layer = tar(ok)
cfg = json.dumps({"architecture": ARCH, "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(layer)]}}).encode()
man = json.dumps([{"Config": "config.json", "RepoTags": ["hostile:1"], "Layers": ["l/layer.tar"]}]).encode()
archive("docker-dotdot.tar", [f("manifest.json", man), f("config.json", cfg),
                              f("../../../../../../../../.." + canary + "/x", b"pwned\n")])
archive("docker-symlink.tar", [f("manifest.json", man), f("config.json", cfg), d("l"),
                               sym("l/layer.tar", canary + "/file")])
archive("docker-symlink-dotdot.tar", [f("manifest.json", man), f("config.json", cfg), d("l"),
                                      sym("l/layer.tar", "../../../../../../../../.." + canary + "/file")])
archive("docker-symlink-parent.tar", [f("manifest.json", man), f("config.json", cfg),
                                      sym("l", canary), f("l/layer.tar", layer)])
PY
python3 "$TMP/corpus.py" "$TMP/corpus" || bail_out "could not write the hostile corpus"

# ---------------------------------------------------------------------------------------------

# exported_names IMAGE: the member names of `ctfs export IMAGE`, one per line.
exported_names() {
	ctfs export "$1" | tar -t
}

# no_escape NAMES: no name is absolute or has a ".." component.
no_escape() {
	! grep -E -e '^/' -e '(^|/)\.\.(/|$)' <<<"$1"
}

t_ok "pull a well-formed base image" ctfs pull "oci:$TMP/corpus/base:t"

# refused DESC REF: the pull fails with one "ctfs: " line on stderr and changes nothing.
refused() {
	local desc=$1 ref=$2 before after rc=0 err
	before=$(store_state)
	ctfs pull "$ref" >"$TMP/out" 2>"$TMP/err" || rc=$?
	err=$(cat "$TMP/err")
	if ((rc >= 1 && rc <= 125)); then
		ok "$desc: refused"
	else
		not_ok "$desc: refused"
		diag "exit status $rc" "stdout: $(cat "$TMP/out")" "stderr: $err"
	fi
	t_is "$desc: one line on stderr" "$(wc -l <"$TMP/err")" 1
	t_like "$desc: the line starts with 'ctfs: '" "$err" '^ctfs: .'
	diag "$desc: $err"
	after=$(store_state)
	if [[ $after == "$before" ]]; then
		ok "$desc: store unchanged"
	else
		not_ok "$desc: store unchanged"
		diag "$(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -20)"
	fi
	t_is "$desc: no work left in tmp/" "$(ls -A "$CTFS_ROOT/tmp")" ""
	t_is "$desc: canary untouched" "$(canary_state)" "$canary_before"
}

for c in dotdot dotdot-mid dotdot-trailing dotdot-dir dotdot-newline \
	symlink-parent symlink-parent-rel symlink-parent-deep symlink-parent-dir symlink-parent-symlink \
	symlink-parent-hardlink symlink-parent-opaque file-parent \
	hardlink-dotdot hardlink-dotdot-canary hardlink-absolute hardlink-missing hardlink-via-symlink \
	hardlink-to-dir hardlink-deleted \
	whiteout-dot whiteout-dotdot whiteout-dotdot-nested whiteout-empty whiteout-component \
	whiteout-component-opq whiteout-dotdot-path \
	gigantic gigantic-plain gigantic-petabyte truncated truncated-gzip truncated-header-data \
	layer-digest layer-digest-plain layer-digest-recompressed diff-ids diff-ids-count config-digest manifest-digest \
	second-layer second-layer-digest; do
	refused "$c" "oci:$TMP/corpus/$c:t"
done

for c in docker-dotdot docker-symlink docker-symlink-dotdot; do
	refused "$c" "docker-archive:$TMP/corpus/$c.tar"
done

# Absolute names are confined to the image root, as docker does.
t_ok "absolute names: pulled" ctfs pull "oci:$TMP/corpus/absolute:t"
names=$(exported_names localhost/absolute:t)
t_ok "absolute names: nothing outside the image" no_escape "$names"
t_ok "absolute names: /abs-file is inside" grep -qx ./abs-file <<<"$names"
t_ok "absolute names: /etc/abs is inside" grep -qx ./etc/abs <<<"$names"
t_ok "absolute names: the canary path is inside" grep -qx "./${CANARY#/}/file" <<<"$names"
t_ok "absolute names: the canary dir is inside" grep -qx "./${CANARY#/}/newdir/" <<<"$names"
t_is "absolute names: the confined file has the layer's content" \
	"$(ctfs export localhost/absolute:t | tar -xO "./${CANARY#/}/file")" pwned
t_is "absolute names: an absolute symlink is kept as it is, not followed" \
	"$(ctfs export localhost/absolute:t | tar -tv ./abs-link | sed 's/.* -> //')" "$CANARY/file"
t_is "absolute names: canary untouched" "$(canary_state)" "$canary_before"

# A lower layer makes esc a symlink to the canary (and rel one that climbs to it); the upper
# layer writes esc/file and rel/dir/file. The upper layer's tree has esc and rel as
# (implicit) directories, and OCI merge semantics let a directory replace a symlink: the
# image shows esc/ and rel/ as directories holding the new entries. Nothing is followed.
t_ok "entries below a lower layer's symlink: pulled" ctfs pull "oci:$TMP/corpus/symlink-lower:t"
names=$(exported_names localhost/symlink-lower:t)
t_ok "symlink in a lower layer: nothing outside the image" no_escape "$names"
t_is "symlink in a lower layer: replaced by a directory" \
	"$(grep -E '^\./(esc|rel)(/|$)' <<<"$names" | sort | tr '\n' ' ')" \
	"./esc/ ./esc/file ./esc/newdir/ ./rel/ ./rel/dir/ ./rel/dir/file "
t_is "symlink in a lower layer: esc is a directory in the export" \
	"$(ctfs export localhost/symlink-lower:t | tar -tv ./esc/ | head -n1 | cut -c1)" d
t_is "symlink in a lower layer: canary untouched" "$(canary_state)" "$canary_before"

# A whiteout below a symlink of the same layer deletes nothing and is ignored (umoci writes
# those below a directory it replaced by a symlink); the symlink itself is kept, not followed.
t_ok "whiteout below a symlink: pulled" ctfs pull "oci:$TMP/corpus/symlink-parent-whiteout:t"
names=$(exported_names localhost/symlink-parent-whiteout:t)
t_is "whiteout below a symlink: the image has the symlink, nothing below it" \
	"$(grep -E '^\./esc' <<<"$names")" ./esc
t_is "whiteout below a symlink: canary untouched" "$(canary_state)" "$canary_before"

# docker archives: a symlink whose target is outside the archive is dropped when the archive
# is unpacked (so l/ becomes a plain directory and l/layer.tar an ordinary member).
t_ok "archive member below an escaping symlink: pulled" \
	ctfs pull "docker-archive:$TMP/corpus/docker-symlink-parent.tar"
t_ok "archive member below an escaping symlink: nothing outside" \
	no_escape "$(exported_names docker.io/library/hostile:1)"
t_is "archive member below an escaping symlink: canary untouched" "$(canary_state)" "$canary_before"

# The refused pulls left the base image as it was.
t_is "base image still exports" "$(exported_names localhost/base:t | sort | tr '\n' ' ')" \
	"./ ./etc/ ./etc/hostname ./ok-file "
t_is "canary untouched at the end" "$(canary_state)" "$canary_before"
