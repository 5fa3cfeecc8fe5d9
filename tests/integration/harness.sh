#!/bin/bash
# shellcheck disable=SC2016 # child scripts below are single-quoted on purpose
# Tests of the test harness itself, without ctfs: the fixture builders produce what the other
# tests rely on, treecmp finds every kind of difference (and none between equal trees), and
# lib.sh reports TAP correctly and cleans up mounts, processes and its temp dir.
. "$(dirname "$0")/lib.sh"
require_root

layout=$TMP/layout
ref=$TMP/ref/rootfs

# --- fx_oci_image + fx_umoci_unpack ----------------------------------------------------------

t_ok "fx_oci_image builds the multi-layer image" fx_oci_image "$layout" v1
t_ok "fx_umoci_unpack unpacks it" fx_umoci_unpack "$layout" v1 "$TMP/ref"

manifest=$layout/blobs/sha256/$(jq -r '.manifests[] | select(.annotations."org.opencontainers.image.ref.name" == "v1") | .digest' "$layout/index.json" | cut -d: -f2)
config=$layout/blobs/sha256/$(jq -r '.config.digest' "$manifest" | cut -d: -f2)
t_is "four layers" "$(jq '.layers | length' "$manifest")" 4
t_is "all gzip" "$(jq -r '[.layers[].mediaType] | unique | join(" ")' "$manifest")" \
	application/vnd.oci.image.layer.v1.tar+gzip
t_is "config cmd" "$(jq -c .config.Cmd "$config")" '["/bin/sh"]'

# layer_names N: the entry names of layer N (0-based), one per line.
layer_names() {
	local blob
	blob=$layout/blobs/sha256/$(jq -r ".layers[$1].digest" "$manifest" | cut -d: -f2)
	tar -tzf "$blob"
}
t_ok "layer 3 has whiteouts for a file and a dir" \
	grep -qx -e del/.wh.file-to-delete <(layer_names 2)
t_ok "layer 3 whiteouts the dir too" grep -qx del/.wh.dir-to-delete <(layer_names 2)
t_ok "layer 4 has an opaque whiteout" grep -qx opaque/.wh..wh..opq <(layer_names 3)

# Whiteouts, opaque dirs and type changes as umoci applied them.
t_fail "deleted file is gone" test -e "$ref/del/file-to-delete"
t_fail "deleted dir is gone" test -e "$ref/del/dir-to-delete"
t_is "kept file" "$(cat "$ref/del/keep")" kept
t_is "changed file" "$(cat "$ref/del/changed")" "changed in layer 3"
t_is "recreated dir has only the new content" "$(ls -A "$ref/recreated")" new1
t_is "opaque dir has only the new content" "$(ls -A "$ref/opaque")" new
t_is "dir replaced by a file" "$(stat -c %F "$ref/replace/dir-to-file")" "regular file"
t_is "file replaced by a dir" "$(ls -A "$ref/replace/file-to-dir")" inner
t_is "file replaced by a symlink" "$(readlink "$ref/replace/file-to-symlink")" ../links/a
t_is "dir replaced by a symlink" "$(readlink "$ref/replace/dir-to-symlink")" ../links

# Hardlinks.
ino() { stat -c %i "$1"; }
t_is "hardlink in one dir" "$(ino "$ref/links/a")" "$(ino "$ref/links/b")"
t_is "hardlink across dirs" "$(ino "$ref/links/a")" "$(ino "$ref/links2/c")"
t_is "hardlink set nlink" "$(stat -c %h "$ref/links/a")" 3
t_fail "first name of a set deleted" test -e "$ref/links/del-first"
t_is "rest of that set still linked" "$(ino "$ref/links/del-keep1")" "$(ino "$ref/links2/del-keep2")"
t_is "rest of that set: nlink 2" "$(stat -c %h "$ref/links/del-keep1")" 2
t_is "rest of that set: content" "$(cat "$ref/links2/del-keep2")" "first name deleted later"
t_fail "second name of a set deleted" test -e "$ref/links/set3-b"
t_is "other set: nlink 2" "$(stat -c %h "$ref/links2/set3-c")" 2

# Xattrs survive umoci repack/unpack.
t_is "user xattr" "$(getfattr --absolute-names --only-values -n user.test "$ref/xattr/file")" changed
t_is "binary xattr" "$(getfattr --absolute-names -e hex -n user.binary "$ref/xattr/file" | sed -n 's/^user.binary=//p')" 0x00ff00fe01
t_fail "xattr removed in layer 3" getfattr --absolute-names -n user.removed-later "$ref/xattr/file"
t_is "trusted xattr" "$(getfattr --absolute-names --only-values -n trusted.ctfs "$ref/xattr/file")" trusted-value
t_is "xattr on a dir" "$(getfattr --absolute-names --only-values -n user.on-dir "$ref/xattr/dir")" yes
t_is "security.capability" "$(getfattr --absolute-names -e base64 -n security.capability "$ref/xattr/ping" | sed -n 's/^security.capability=//p')" "$FX_CAP_BLOB"

# Special files, modes, owners.
t_is "char device" "$(stat -c '%F %t:%T' "$ref/special/null")" "character special file 1:3"
t_is "block device" "$(stat -c '%F %t:%T %a' "$ref/special/loop7")" "block special file 7:7 600"
t_is "big device numbers" "$(stat -c '%t:%T' "$ref/special/big-dev")" "1ff:fffff"
t_is "fifo" "$(stat -c '%F %a' "$ref/special/fifo")" "fifo 620"
t_is "setuid" "$(stat -c %a "$ref/modes/setuid")" 4755
t_is "setgid" "$(stat -c %a "$ref/modes/setgid")" 2755
t_is "all bits" "$(stat -c %a "$ref/modes/all-bits")" 7777
t_is "no bits" "$(stat -c %a "$ref/modes/none")" 0
t_is "sticky dir" "$(stat -c %a "$ref/modes/sticky")" 1777
t_is "setgid dir" "$(stat -c %a "$ref/modes/setgid-dir")" 2775
t_is "mode changed in layer 3" "$(stat -c %a "$ref/modes/group-write")" 600
t_is "odd owner (changed in layer 3)" "$(stat -c %u:%g "$ref/owners/file")" 2000:2000
t_is "owner past 2^21" "$(stat -c %u:%g "$ref/owners/big")" 3000000:3000001
t_is "owner of a symlink" "$(stat -c %u:%g "$ref/owners/link")" 4242:4343

# Names, sizes, symlinks.
t_ok "200-byte name" test -f "$ref/names/$FX_LONG_NAME"
t_ok "deep path" test -f "$ref/$FX_DEEP_DIR/$FX_LONG_NAME"
t_ok "non-UTF-8 name" test -f "$ref/names/$FX_BAD_NAME"
t_ok "name with tab and newline" test -f "$ref/names/$FX_ODD_NAME"
t_is "sparse file size" "$(stat -c %s "$ref/sizes/sparse")" 10485760
t_is "sparse file data" "$(tr -d '\0' <"$ref/sizes/sparse")" "in the middle"
t_is "sparse tar entry size" "$(stat -c %s "$ref/sizes/sparse-tar")" 20971520
t_is "sparse tar entry data" "$(tr -d '\0' <"$ref/sizes/sparse-tar")" dataend
t_is "empty file" "$(stat -c %s "$ref/sizes/empty")" 0
t_is "absolute symlink" "$(readlink "$ref/symlinks/absolute")" /bin/busybox
t_is "dangling symlink" "$(readlink "$ref/symlinks/dangling")" does/not/exist
t_is "1000-byte symlink target" "$(readlink "$ref/symlinks/long-target" | wc -c)" 1001
t_ok "busybox runs" "$ref/bin/busybox" true

# --- tar round trip: what the export tests do with `ctfs export` ------------------------------

tar -C "$ref" -c --xattrs --xattrs-include='*' --numeric-owner -f "$TMP/ref.tar" .
t_ok "fx_extract_tar of a GNU tar of the reference" fx_extract_tar "$TMP/ref.tar" "$TMP/roundtrip"
t_ok "treecmp: round trip is identical, dir mtimes too" "$TREECMP" --dir-mtime "$ref" "$TMP/roundtrip"

# --- transports --------------------------------------------------------------------------------

diff_ids=$(jq -r '.rootfs.diff_ids[]' "$config")

t_ok "fx_zstd_layout" fx_zstd_layout "$layout" "$TMP/zstd" v1
zmanifest=$TMP/zstd/blobs/sha256/$(jq -r '.manifests[0].digest' "$TMP/zstd/index.json" | cut -d: -f2)
t_is "zstd media types" "$(jq -r '[.layers[].mediaType] | unique | join(" ")' "$zmanifest")" \
	application/vnd.oci.image.layer.v1.tar+zstd
zsums=$(for d in $(jq -r '.layers[].digest' "$zmanifest" | cut -d: -f2); do
	printf 'sha256:%s\n' "$(zstd -dc "$TMP/zstd/blobs/sha256/$d" | sha256sum | cut -d' ' -f1)"
done)
t_is "zstd layers decompress to the same tars (diff_ids)" "$zsums" "$diff_ids"

t_ok "fx_docker_archive" fx_docker_archive "$layout" v1 "$TMP/docker.tar" busybox:1
t_is "docker-archive RepoTags as docker save writes them" \
	"$(tar -xOf "$TMP/docker.tar" manifest.json | jq -c '.[0].RepoTags')" '["busybox:1"]'
t_is "docker-archive repositories file" \
	"$(tar -xOf "$TMP/docker.tar" repositories | jq -c 'keys')" '["busybox"]'
dsums=$(for l in $(tar -xOf "$TMP/docker.tar" manifest.json | jq -r '.[0].Layers[]'); do
	printf 'sha256:%s\n' "$(tar -xOf "$TMP/docker.tar" "$l" | sha256sum | cut -d' ' -f1)"
done)
t_is "docker-archive layers are the diff_ids" "$dsums" "$diff_ids"
t_ok "skopeo reads the rewritten docker-archive" skopeo inspect "docker-archive:$TMP/docker.tar"

t_ok "fx_oci_archive" fx_oci_archive "$layout" v1 "$TMP/oci.tar"
t_is "oci-archive tag" \
	"$(tar -xOf "$TMP/oci.tar" index.json | jq -r '.manifests[0].annotations."org.opencontainers.image.ref.name"')" v1

# --- treecmp ---------------------------------------------------------------------------------

# A small tree with one of everything treecmp compares.
mk_small() {
	fx_busybox_rootfs "$1"
	(
		cd "$1"
		echo content >file
		ln file hard1
		mkdir d
		ln file d/hard2
		echo other >other
		setfattr -n user.x -v 1 file
		setfattr -n trusted.t -v 2 other
		setfattr -n security.capability -v "$FX_CAP_BLOB" bin/busybox
		ln -s target link
		mknod cdev c 1 5
		mknod bdev b 7 1
		mkfifo fifo
		echo s >suid && chmod 4755 suid
		echo x >"$FX_BAD_NAME"
		touch -d @1000000000 file other suid
		touch -h -d @1000000000 link
	)
}
mk_small "$TMP/small"

# mutated NAME CMD...: a fresh copy of the small tree with CMD run inside it.
mutated() {
	local dir=$TMP/mut-$1
	shift
	rm -rf "$dir"
	cp -a "$TMP/small" "$dir"
	(cd "$dir" && "$@")
}

# t_diff DESC REGEX MUTATION-NAME [TREECMP OPTIONS...]: treecmp must exit 1 and print a line
# matching REGEX.
t_diff() {
	local desc=$1 re=$2 dir=$TMP/mut-$3 rc=0
	shift 3
	"$TREECMP" "$@" "$TMP/small" "$dir" >"$T_OUT" 2>&1 || rc=$?
	if ((rc == 1)) && grep -qE -- "$re" "$T_OUT"; then
		ok "treecmp finds: $desc"
	else
		not_ok "treecmp finds: $desc"
		diag "  exit status $rc, expected 1 and a line matching /$re/"
		diag_file "$T_OUT"
	fi
}

cp -a "$TMP/small" "$TMP/same"
t_ok "treecmp: cp -a copy is identical" "$TREECMP" "$TMP/small" "$TMP/same"
t_status "treecmp: missing dir is an error (2)" 2 "$TREECMP" "$TMP/small" "$TMP/nonexistent"

mutated extra touch new-file
t_diff "an extra path" '^only in B: new-file \(file\)$' extra
mutated missing rm other
t_diff "a missing path" '^only in A: other \(file\)$' missing
mutated type sh -c 'rm fifo && touch fifo'
t_diff "a type" '^fifo: type: fifo != file$' type
mutated mode chmod u-s suid
t_diff "the setuid bit" '^suid: mode: 4755 != 0755$' mode
mutated uid chown 7 other
t_diff "a uid" '^other: uid: 0 != 7$' uid
mutated gid chgrp -h 9 link
t_diff "a symlink's gid" '^link: gid: 0 != 9$' gid
mutated content sh -c 'echo OTHER >other && touch -d @1000000000 other'
t_diff "content of the same size" '^other: sha256: ' content
mutated size sh -c 'echo longer >>other && touch -d @1000000000 other'
t_diff "a size" '^other: size: 6 != 13$' size
mutated target sh -c 'rm link && ln -s elsewhere link && touch -h -d @1000000000 link'
t_diff "a symlink target" "^link: symlink target: 'target' != 'elsewhere'$" target
mutated rdev sh -c 'rm cdev && mknod cdev c 1 7'
t_diff "a device number" '^cdev: rdev: 1:5 != 1:7$' rdev
mutated xval setfattr -n user.x -v 2 file
t_diff "an xattr value" "^file: xattr user.x: '1' != '2'$" xval
mutated xadd setfattr -n user.y -v 1 d
t_diff "an added xattr (on a dir)" '^d: xattr user.y: \(absent\) != ' xadd
mutated xdel setfattr -x security.capability bin/busybox
t_diff "a removed security.capability" '^bin/busybox: xattr security.capability: .* != \(absent\)$' xdel
mutated xtrusted setfattr -n trusted.t -v 3 other
t_diff "a trusted xattr" '^other: xattr trusted.t: ' xtrusted
mutated mtime touch -d @1000000001 other
t_diff "a file mtime" '^other: mtime: 1000000000 != 1000000001$' mtime
mutated lmtime touch -h -d @1000000001 link
t_diff "a symlink mtime" '^link: mtime: ' lmtime
t_ok "treecmp --no-mtime ignores it" "$TREECMP" --no-mtime "$TMP/small" "$TMP/mut-mtime"
mutated dmtime touch -d @1000000000 d
t_ok "treecmp ignores dir mtimes by default" "$TREECMP" "$TMP/small" "$TMP/mut-dmtime"
t_diff "a dir mtime with --dir-mtime" '^d: mtime: ' dmtime --dir-mtime
mutated unlink sh -c 'cp -p hard1 hard1.tmp && mv hard1.tmp hard1'
t_diff "a broken hardlink (nlink)" '^file: nlink: 3 != 2$' unlink
t_diff "a broken hardlink (groups)" '^d/hard2: hardlinks: \{d/hard2, file, hard1\} != \{d/hard2, file\}$' unlink
mutated relink sh -c 'rm other && ln file other'
t_diff "a new hardlink" '^d/hard2: hardlinks: \{d/hard2, file, hard1\} != \{d/hard2, file, hard1, other\}$' relink
rename_bad_name() { mv -- "$FX_BAD_NAME" "${FX_BAD_NAME%?}"$'\xfe'; }
mutated badname rename_bad_name
t_diff "a non-UTF-8 name" '^only in A: latin1-\\xe9t\\xe9-\\xff \(file\)$' badname
t_ok "treecmp --ignore-xattr" "$TREECMP" --ignore-xattr user.x "$TMP/small" "$TMP/mut-xval"
t_ok "treecmp --exclude" "$TREECMP" --exclude new-file "$TMP/small" "$TMP/mut-extra"
mutated root chmod 0700 .
t_diff "the root's mode" '^\.: mode: 0755 != 0700$' root
t_ok "treecmp --no-root" "$TREECMP" --no-root "$TMP/small" "$TMP/mut-root"

# --- lib.sh itself ---------------------------------------------------------------------------

# run_child SCRIPT: run a script that sources lib.sh; output in $TMP/child.out, status in $crc.
run_child() {
	printf '. %q\n%s\n' "$CTFS_SRC/tests/integration/lib.sh" "$1" >"$TMP/child.sh"
	crc=0
	bash "$TMP/child.sh" >"$TMP/child.out" 2>&1 </dev/null || crc=$?
}

run_child 'echo "tmp=$TMP"
mkdir "$TMP/m x" "$TMP/b"
mount -t tmpfs none "$TMP/m x"
mkdir "$TMP/m x/inner"
mount --bind "$TMP/b" "$TMP/m x/inner"
cd "$TMP/m x/inner"
sleep 1000 & bg_pid $!
echo "pid=$!"
t_ok "passes" true'
child_tmp=$(sed -n 's/^tmp=//p' "$TMP/child.out")
child_pid=$(sed -n 's/^pid=//p' "$TMP/child.out")
t_is "child passes" "$crc" 0
t_ok "child printed TAP" grep -qx 'ok 1 - passes' "$TMP/child.out"
t_ok "child printed the plan at the end" grep -qx '1\.\.1' "$TMP/child.out"
t_fail "child's mounts are gone" grep -q " $child_tmp" /proc/self/mountinfo
t_fail "child's temp dir is gone" test -e "$child_tmp"
t_fail "child's background process is gone" kill -0 "$child_pid"

run_child 't_ok "passes" true
t_ok "fails" false
t_fail "fails as expected" false
t_fail "crash is not a failure" sh -c "kill -SEGV \$\$"
t_is "differs" a b'
t_is "failing child exits 1" "$crc" 1
t_ok "not ok for t_ok" grep -qx 'not ok 2 - fails' "$TMP/child.out"
t_ok "ok for t_fail" grep -qx 'ok 3 - fails as expected' "$TMP/child.out"
t_ok "not ok for a crash under t_fail" grep -qx 'not ok 4 - crash is not a failure' "$TMP/child.out"
t_ok "not ok for t_is" grep -qx 'not ok 5 - differs' "$TMP/child.out"
t_ok "summary" grep -qx '# 2 passed, 3 failed' "$TMP/child.out"

run_child 't_ok "passes" true
false
t_ok "never reached" true'
t_is "child dying under set -e exits 1" "$crc" 1
t_ok "and reports it" grep -qx 'not ok 2 - test script exited with status 1' "$TMP/child.out"

run_child 'plan 3
t_ok "only one" true'
t_is "child missing its plan exits 1" "$crc" 1

run_child 'skip_all "not here"'
t_is "skip_all exits 0" "$crc" 0
t_is "skip_all prints a skip plan" "$(cat "$TMP/child.out")" "1..0 # SKIP not here"
