#!/bin/bash
# The container commands: create, run (options, exit codes, signals, pty), start, ps/list,
# inspect, logs, wait, stop, kill, rm, exec, and the image config (Entrypoint, Cmd, Env,
# WorkingDir, User) honoured.
. "$(dirname "$0")/lib.sh"
require_root
require_cmd python3 script

fx_busybox_image "$TMP/layout" v1
# v2: an image with Entrypoint, Env, WorkingDir, User, a StopSignal and a label of its own.
umoci tag --image "$TMP/layout:v1" v2 >/dev/null
umoci config --image "$TMP/layout:v2" --config.entrypoint /bin/echo --config.cmd from-cmd \
	--config.env GREETING=hello --config.workingdir /home/user --config.user user \
	--config.stopsignal SIGUSR1 --config.label org.example.kind=demo >/dev/null
ctfs pull -q "oci:$TMP/layout:v1" >/dev/null
ctfs pull -q "oci:$TMP/layout:v2" >/dev/null
IMG=localhost/layout:v1
ctfs mount >/dev/null 2>&1 || true

# run_out ARGS...: output (stdout+stderr) of `ctfs run ARGS` in $out, its status in $rc.
run_out() {
	rc=0
	out=$(ctfs run "$@" 2>&1) || rc=$?
}

# --- exit codes -------------------------------------------------------------------------------

run_out --rm "$IMG" true
t_is "exit 0" "$rc" 0
run_out --rm "$IMG" sh -c 'exit 3'
t_is "the container's own exit status (3)" "$rc" 3
run_out --rm "$IMG" /etc/passwd
t_is "cannot execute: 126" "$rc" 126
t_like "... with docker's message" "$out" 'exec: "/etc/passwd": [Pp]ermission denied'
run_out --rm "$IMG" no-such-command
t_is "not found: 127" "$rc" 127
t_like "... with docker's message" "$out" 'exec: "no-such-command": executable file not found in \$PATH'
run_out --rm "$IMG" /no/such/file
t_is "absolute path not found: 127" "$rc" 127
run_out --rm --no-such-option "$IMG" true
t_is "bad option: 125" "$rc" 125
t_is "... naming it" "$out" "ctfs: run: unknown flag: --no-such-option (see ctfs run --help)"
run_out --rm=true --read-only=false --init=true "$IMG" sh -c 'touch /w && echo ok'
t_is "boolean flags take =true and =false, as docker's" "$out" ok
t_is "... and --rm=true removes it" "$(ctfs ps -aq)" ""
run_out --rm -v "$TMP:/" "$IMG" true
t_is "a volume over / is refused: 125" "$rc" 125
t_is "... saying why" "$out" "ctfs: run: invalid volume $TMP:/: the container path cannot be /"
run_out --rm -v "$TMP://" "$IMG" true
t_is "... also written //" "$rc" 125
run_out --rm -v "$TMP:/." "$IMG" true
t_is "... or /." "$rc" 125
run_out --rm -v "$TMP:/bin/.." "$IMG" true
t_is "... or /bin/.." "$rc" 125
run_out -d=false "$IMG" true
t_is "-d=false: refused, saying the long form takes a value" "$out" "ctfs: run: flag takes no value (the long form does: --flag=true|false): -d (see ctfs run --help)"
run_out --rm -m 4m "$IMG" true
t_is "a memory limit under docker's 6MB minimum is refused: 125" "$rc" 125
t_like "... saying so" "$out" "the minimum memory limit is 6MB"
run_out --rm -m 0 --cpus 0 "$IMG" sh -c 'echo ok'
t_is "--memory 0 and --cpus 0: no limit, as docker's" "$out" ok
run_out --rm --cpus "$(($(nproc) + 1))" "$IMG" true
t_is "more CPUs than there are is refused: 125" "$rc" 125
t_like "... saying how many there are" "$out" "as there (is|are) only $(nproc) CPU"
printf 'A=1\nB = spaced\n' >"$TMP/bad.env"
run_out --rm --env-file "$TMP/bad.env" "$IMG" true
t_is "an env file with a blank in a name is refused: 125" "$rc" 125
t_like "... naming the line" "$out" "line 2: B = spaced"
printf '\n\n# c\nX Y=1\n' >"$TMP/bad2.env"
run_out --rm --env-file "$TMP/bad2.env" "$IMG" true
t_like "... counting blank lines too" "$out" "line 4: X Y=1"
run_out --rm -e "export X=1" "$IMG" true
t_is "... and so is -e with one" "$rc" 125
run_out --rm "$IMG" env
t_like "HOSTNAME is in the environment, as docker sets it" "$out" "(^|"$'\n'")HOSTNAME=[0-9a-f]{12}("$'\n'"|$)"
run_out --rm --hostname box -e HOSTNAME=mine "$IMG" env
t_like "... unless set" "$out" "(^|"$'\n'")HOSTNAME=mine("$'\n'"|$)"
run_out --rm localhost/no-such-image true
t_is "missing image: 125" "$rc" 125
run_out --rm -m 10m "$IMG" sh -c 'x=aaaaaaaaaaaaaaaa; while true; do x="$x$x"; done'
t_is "killed by SIGKILL: 137" "$rc" 137
run_out --rm --init "$IMG" sh -c 'kill -TERM $$; sleep 5'
t_is "killed by SIGTERM: 143" "$rc" 143
run_out --rm -w /nonexistent/dir "$IMG" pwd
t_is "-w creates a missing working directory" "$out" /nonexistent/dir

# --- image config and options -----------------------------------------------------------------

run_out --rm localhost/layout:v2
t_is "Entrypoint + Cmd" "$out" from-cmd
run_out --rm localhost/layout:v2 a b
t_is "arguments replace Cmd" "$out" "a b"
id=$(ctfs create localhost/layout:v2 a b)
t_is "inspect: the image's labels in Config.Labels, as docker's" "$(ctfs inspect -f '{{index .Config.Labels "org.example.kind"}}' "$id")" demo
t_is "inspect: Config.Entrypoint and Config.Cmd apart, as docker's" "$(ctfs inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Path}} {{json .Args}}' "$id")" '["/bin/echo"] ["a","b"] /bin/echo ["a","b"]'
ctfs rm "$id" >/dev/null
id=$(ctfs create "$IMG" true)
t_is "... an image without an entrypoint: null" "$(ctfs inspect -f '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$id")" 'null ["true"]'
ctfs rm "$id" >/dev/null
run_out --rm --entrypoint /bin/sh localhost/layout:v2 -c 'id -un; pwd; echo $GREETING $HOME'
t_is "User, WorkingDir, Env from the image; --entrypoint" "$out" $'user\n/home/user\nhello /home/user'
run_out --rm -u 0 -w / -e GREETING=bye -e NEW=1 --entrypoint sh localhost/layout:v2 -c 'id -u; pwd; echo $GREETING $NEW'
t_is "-u, -w, -e override the image" "$out" $'0\n/\nbye 1'
printf '# comment\nFROM_FILE=yes\n\nFROM_HOST\n' >"$TMP/envfile"
FROM_HOST=host-value run_out --rm --env-file "$TMP/envfile" "$IMG" sh -c 'echo $FROM_FILE $FROM_HOST'
t_is "--env-file (and KEY taken from the host)" "$out" "yes host-value"
run_out --rm "$IMG" sh -c 'echo $PATH; echo $HOSTNAME; echo $HOME'
t_like "default env: PATH, HOSTNAME, HOME" "$out" $'^/usr/sbin:/usr/bin:/sbin:/bin\n[0-9a-f]{12}\n/root$'
run_out --rm -i "$IMG" cat <<<piped
t_is "-i passes stdin" "$out" piped
run_out --rm "$IMG" cat <<<piped
t_is "without -i stdin is empty" "$out" ""

# --- signals to ctfs run are forwarded ---------------------------------------------------------

sig_test() { # SIGNAL INIT: run a container trapping SIGNAL, send it to ctfs run
	local sig=$1 rc=0
	shift
	rm -f "$TMP/sig.out" # (not the last test's "ready": the shell truncates it only once forked)
	"$CTFS" --root "$CTFS_ROOT" run --rm "$@" "$IMG" sh -c "trap 'echo got-$sig; exit 42' $sig; echo ready; while true; do sleep 0.1; done" >"$TMP/sig.out" 2>&1 &
	local pid=$!
	# (a signal that comes before the trap is set is dropped: pid 1 ignores what it does not
	# handle, and the loop would run on; a loaded machine may take seconds to start it)
	for _ in $(seq 600); do grep -qs ready "$TMP/sig.out" && break; sleep 0.1; done
	kill -"$sig" "$pid"
	wait "$pid" || rc=$?
	echo "$rc $(grep got "$TMP/sig.out")"
}
for sig in TERM INT HUP USR1 USR2 QUIT; do
	t_is "SIG$sig to ctfs run reaches the container" "$(sig_test $sig)" "42 got-$sig"
done
"$CTFS" --root "$CTFS_ROOT" run --rm --init "$IMG" sleep 30 >/dev/null 2>&1 &
pid=$!
sleep 1
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
t_is "--init forwards SIGTERM to the command (143)" "$rc" 143
run_out --rm --init "$IMG" sh -c 'ps -o pid=,comm= | head -2 | tr -s " "; (sleep 0.2 &); sleep 0.5; ps -o stat=,comm= | grep -c ^Z'
t_is "--init: pid 1 is the init, zombies are reaped" "$(echo $out)" "1 ctfs 2 sh 0"

# --- pty ----------------------------------------------------------------------------------------

cat >"$TMP/ptyharness.py" <<'PY'
import fcntl, os, pty, select, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
before = termios.tcgetattr(fd)
out = b""
def read_until(pat, t=10):
    global out
    end = time.time() + t
    while pat not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
read_until(b"ready")
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
os.kill(pid, 28)  # SIGWINCH, as the terminal would send it
time.sleep(0.3)
os.write(fd, b"typed\n")
read_until(b"EOF-MARK")
read_until(b"\xff", 2)
_, st = os.waitpid(pid, 0)
after = termios.tcgetattr(fd)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
print("status=%d" % os.waitstatus_to_exitcode(st))
print("restored=%s" % (before == after))
PY
out=$(python3 "$TMP/ptyharness.py" "$CTFS" --root "$CTFS_ROOT" run --rm -it "$IMG" sh -c 'tty; stty size; echo ready; read x; echo got:$x; stty size; echo EOF-MARK; exit 7')
t_like "-t: the container has a tty" "$out" $'/dev/pts/[0-9]+\n40 100\nready'
t_like "-i -t: input reaches it" "$out" "got:typed"
t_like "-t: window size changes are forwarded" "$out" $'\n50 120\nEOF-MARK'
t_like "-t: exit status kept" "$out" "status=7"
t_like "-t: the host terminal is restored" "$out" "restored=True"
out=$(script -qec "$CTFS --root $CTFS_ROOT run --rm -t $IMG sh -c 'test -t 0 && test -t 1 && echo tty-ok; ls -l /dev/console | cut -c1'" /dev/null | tr -d '\r')
t_like "-t through script(1): stdin/stdout are the tty, /dev/console is it" "$out" $'tty-ok\nc'
id=$(ctfs run -d --name bg "$IMG" sleep 30)
out=$(python3 "$TMP/ptyharness.py" "$CTFS" --root "$CTFS_ROOT" exec -it bg sh -c 'tty; echo ready; read x; echo got:$x; echo EOF-MARK')
t_like "exec -it: a tty in the container" "$out" $'/dev/pts/[0-9]+\nready'
t_like "exec -it: input reaches it" "$out" "got:typed"

# --- detached, ps, logs, exec, inspect ----------------------------------------------------------

t_like "run -d prints the id" "$id" "^[0-9a-f]{64}$"
out=$(ctfs ps)
t_like "ps shows it running" "$out" "${id:0:12} +localhost/layout:v1 +\"sleep 30\" +[A-Za-z0-9 ]+ago +Up [A-Za-z0-9 ]+ +bg"
t_like "ps has docker's columns" "$(head -1 <<<"$out")" "^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +NAMES"
# a long command is cut with "…" (three bytes, one column): the columns stay aligned
ctfs create --name long-cmd "$IMG" sh -c 'echo a command much longer than the column' >/dev/null
t_is "ps -a: columns aligned after a truncated command" "$(ctfs ps -a | python3 -c '
import sys
lines = sys.stdin.read().splitlines()
col = lines[0].index("NAMES")
row = [l for l in lines if l.endswith("long-cmd")][0]
print(row.index("long-cmd") == col, "…" in row)')" "True True"
ctfs rm long-cmd >/dev/null
t_is "ps -q" "$(ctfs ps -q)" "${id:0:12}"
t_is "ps --format, as docker's" "$(ctfs ps --format '{{.ID}} {{.Names}} {{.State}} {{.Command}}')" "${id:0:12} bg running \"sleep 30\""
t_is "ps --format 'table ...': a header, then the rows" "$(ctfs ps --format 'table {{.Names}}|{{.Status}}' | sed 's/|Up .*/|Up/')" $'NAMES|STATUS\nbg|Up'
t_is "ps --format with \\t, and 'table' aligned, as docker's" "$(ctfs ps --format 'table {{.Names}}\t{{.State}}')" $'NAMES   STATE\nbg      running'
t_is "ps --format table: the default table" "$(ctfs ps --format table | head -1 | awk '{print $1, $2}')" "CONTAINER ID"
t_is "ps -q --format TEMPLATE: the template wins, as docker's" "$(ctfs ps -q --format '{{.Names}}')" bg
t_is "ps -q --format table: the ids" "$(ctfs ps -q --format table)" "${id:0:12}"
rc=0; out=$(ctfs ps --filter status=bogus 2>&1) || rc=$?
t_like "ps --filter status= of no state: refused" "$rc:$out" "^1:ctfs: ps: invalid filter 'status=bogus'"
t_like "ps -h prints the usage, as docker's" "$(ctfs ps -h)" "^usage: ctfs ps "
t_is "ps --format json: one object a line" "$(ctfs ps --format json | jq -r '.Names + " " + .State')" "bg running"
ctfs create --name other-one "$IMG" true >/dev/null
t_is "ps --filter name= (a part of it)" "$(ctfs ps -a --filter name=ther --format '{{.Names}}')" other-one
t_is "... a regular expression, as docker's" "$(ctfs ps -a --filter 'name=^b[a-z]$' --format '{{.Names}}') $(ctfs ps -a --filter 'name=^other$' --format '{{.Names}}' | wc -l)" "bg 0"
rc=0; out=$(ctfs ps --filter 'name=(' 2>&1) || rc=$?
t_like "... a bad one refused" "$rc:$out" "^1:ctfs: ps: invalid filter 'name=\(': not a regular expression"
t_is "ps --filter status=created (all states)" "$(ctfs ps --filter status=created --format '{{.Names}}')" other-one
t_is "ps --filter id=" "$(ctfs ps --filter "id=${id:0:6}" --format '{{.Names}}')" bg
t_is "ps --filter ancestor= by image id" "$(ctfs ps --filter "ancestor=$(ctfs images -q "$IMG")" --format '{{.Names}}')" bg
rc=0; out=$(ctfs ps --filter stat=running 2>&1) || rc=$?
t_is "ps --filter with a misspelt key: refused" "$rc:$out" "1:ctfs: ps: unsupported filter stat (name, id, status, ancestor)"
t_is "ps --filter ancestor=" "$(ctfs ps -a --filter "ancestor=$IMG" --format '{{.Names}}' | sort | tr '\n' ' ')" "bg other-one "
t_is "ps -n 1 / -l: the newest, whatever its state" "$(ctfs ps -n 1 --format '{{.Names}}') $(ctfs ps -l --format '{{.Names}}')" "other-one other-one"
rc=0; out=$(ctfs ps --filter label=x 2>&1) || rc=$?
t_is "ps --filter of a key it does not know: refused" "$rc:$out" "1:ctfs: ps: unsupported filter label (name, id, status, ancestor)"
ctfs rm other-one >/dev/null
t_is "list = ps" "$(ctfs list -q)" "${id:0:12}"
t_is "inspect a container" "$(ctfs inspect bg | jq -r '.[0].State.Status, .[0].Name, .[0].Id')" $'running\n/bg\n'"$id"
t_like "inspect: pid and config" "$(ctfs inspect "${id:0:8}" | jq -c '[.[0].State.Pid > 0, .[0].Config.Cmd]')" '^\[true,\["sleep","30"\]\]$'
t_is "inspect -f, as docker's" "$(ctfs inspect -f '{{.State.Status}} {{.Name}} {{json .Config.Cmd}}' bg)" 'running /bg ["sleep","30"]'
t_is "inspect --format: range, if, index, a missing field" \
	"$(ctfs inspect --format '{{range .Config.Cmd}}<{{.}}>{{end}}{{if .State.Running}} up{{else}} down{{end}} {{index .Config.Cmd 1}} {{.Nope}}' bg)" \
	'<sleep><30> up 30 <no value>'
t_is "... a line for each" "$(ctfs inspect -f '{{.Name}}' bg "${id:0:12}")" $'/bg\n/bg'
t_like "... images too" "$(ctfs inspect -f '{{.Id}}' "$IMG")" '^sha256:[0-9a-f]{64}$'
rc=0; out=$(ctfs inspect -f '{{nope .Id}}' bg 2>&1) || rc=$?
t_is "... a bad template: status 1" "$rc" 1
t_is "... and one line saying why" "$out" 'ctfs: inspect: template: function "nope" not defined'
t_is "... eq, and, not, or, printf, with, pipes, parentheses" \
	"$(ctfs inspect -f '{{if eq .State.Status "running"}}up{{end}} {{if and .State.Running (not .State.OOMKilled)}}ok{{end}} {{or .Nope "dflt"}} {{printf "%s=%d" .Name .State.ExitCode}} {{with .State}}{{.Status}}{{end}} {{.Config.Cmd | json}} {{len (index .Config.Cmd 0)}}' bg)" \
	'up ok dflt /bg=0 running ["sleep","30"] 5'
t_is "... else if" "$(ctfs inspect -f '{{if .Nope}}a{{else if .State.Running}}b{{else}}c{{end}} {{if .Nope}}a{{else if .Nope}}b{{else}}c{{end}}' bg)" "b c"
t_is "... a quoted string with Go's escapes, and }} inside one" "$(ctfs inspect -f '{{join .Config.Cmd "\t"}}|{{"}}"}}' bg)" $'sleep\t30|}}'
rc=0; out=$(ctfs inspect -f '{{join .Config.Cmd .Nope}}' bg 2>&1) || rc=$?
t_is "... join without a separator: an error, not a crash" "$rc:$out" "1:ctfs: inspect: template: join takes a list and a separator"
rc=0; out=$(ctfs inspect --type image bg 2>&1) || rc=$?
t_is "inspect --type image of a container finds none" "$out" "ctfs: inspect: no such image: bg"
t_is "exec runs in the container" "$(ctfs exec bg sh -c 'cat /proc/1/cmdline | tr "\0" " "; hostname')" "sleep 30 ${id:0:12}"
# (pid 1 is the container's command; the exec'd shell and ps come next: no host process shows)
t_is "exec: same pid namespace" "$(ctfs exec bg ps -o pid=,args= | awk '$1 == 1 { print "pid 1:", $2, $3 } $1 > 16 { print "other:", $0 } END { print NR <= 4 }')" $'pid 1: sleep 30\n1'
t_is "exec: same capabilities and seccomp" "$(ctfs exec bg grep -E '^(CapEff|Seccomp):' /proc/self/status)" $'CapEff:\t00000000a80425fb\nSeccomp:\t2'
# the hierarchy the container is tracked in (the unified one when mounted: cgroup.c)
cg_line=$(grep -E ":/ctfs/$id$" /proc/$(ctfs inspect bg | jq .[0].State.Pid)/cgroup | head -1)
cg_hid=${cg_line%%:*}
t_is "exec: same cgroup" "$(ctfs exec bg sh -c "grep -E '^$cg_hid:' /proc/self/cgroup | cut -d: -f3")" "/"
t_like "... which is the container's" "$cg_line" "/ctfs/$id$"
t_is "exec -u -w -e" "$(ctfs exec -u user -w /tmp -e X=1 bg sh -c 'id -un; pwd; echo $X')" $'user\n/tmp\n1'
rc=0; ctfs exec bg sh -c 'exit 5' || rc=$?
t_is "exec: exit status" "$rc" 5
rc=0; ctfs exec bg nope >/dev/null 2>&1 || rc=$?
t_is "exec: not found is 127" "$rc" 127
t_is "exec -i" "$(ctfs exec -i bg cat <<<in)" in
# docker exec does not make a missing working directory (docker run does, above)
rc=0; out=$(ctfs exec -w /no/such/dir bg pwd 2>&1) || rc=$?
t_is "exec -w of a missing directory: 126, as docker exec" "$rc" 126
t_like "... saying why" "$out" "chdir to /no/such/dir: No such file or directory"
t_fail "... and makes no directory" ctfs exec bg test -e /no/such
# the mount is the running container's root: umount refuses, naming it
rc=0; out=$(ctfs umount 2>&1) || rc=$?
t_is "umount with a container running fails" "$rc" 1
t_like "... naming it, and how to go on" "$out" "1 container is running on this store \\(${id:0:12}\\): stop it first, or umount --force"
t_ok "... the store stays mounted" mountpoint -q "$CTFS_ROOT/mnt"
t_is "... and the container still works" "$(ctfs exec bg cat /etc/hostname)" "${id:0:12}"
rc=0; out=$(ctfs start -a bg 2>&1) || rc=$?
t_is "start -a of a running container fails: 125" "$rc" 125
t_like "... saying it runs" "$out" "is already running"
t_is "start of a running one succeeds, as docker's" "$(ctfs start bg)" bg
rc=0; out=$(ctfs start -a bg bg 2>&1) || rc=$?
t_like "start -a of two containers is refused, saying why" "$out" "cannot start and attach multiple containers at once"
t_fail "rm refuses a running container" ctfs rm bg
t_like "... saying so" "$(cat "$T_OUT")" "running"
t_ok "rm -f removes a running one" ctfs rm -f bg
t_is "... it is gone" "$(ctfs ps -aq)" ""
t_fail "... and its directory" test -e "$CTFS_ROOT/containers/$id"
rc=0; ctfs exec bg true >/dev/null 2>&1 || rc=$?
t_is "exec into a missing container is a ctfs error" "$rc" 125

id=$(ctfs run -d --name logger "$IMG" sh -c 'echo out; echo err >&2; echo ready; trap "" TERM; while true; do sleep 0.2; done')
for _ in $(seq 50); do ctfs logs logger | grep -q ready && break; sleep 0.1; done
t_is "logs: stdout of a detached container on stdout" "$(ctfs logs logger 2>/dev/null)" $'out\nready'
t_is "... its stderr on stderr, as docker's" "$(ctfs logs logger 2>&1 >/dev/null)" err
ctfs logs -f logger >"$TMP/follow" 2>"$TMP/follow.err" &
follow=$!
start=$(date +%s.%N)
t_ok "stop -t 2 of a process that ignores SIGTERM" ctfs stop -t 2 logger
elapsed=$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || awk "BEGIN{print $(date +%s.%N) - $start}")
t_like "... takes the timeout" "$elapsed" "^[23]\."
t_is "... then it was killed (137)" "$(ctfs inspect logger | jq .[0].State.ExitCode)" 137
t_like "ps -a: Exited (137)" "$(ctfs ps -a)" "Exited \(137\) [A-Za-z0-9 ]+ ago +logger"
t_is "ps without -a hides it" "$(ctfs ps -q)" ""
wait "$follow"
t_is "logs -f ends when the container stops" "$(cat "$TMP/follow")" $'out\nready'
t_is "... its stderr on stderr" "$(cat "$TMP/follow.err")" err
t_is "wait on an exited container" "$(ctfs wait logger)" 137
log=$CTFS_ROOT/containers/$(ctfs inspect -f '{{.Id}}' logger)/container.log
t_is "the log file is framed (docker's attach framing)" "$(head -c 8 "$log" | tail -c 7)" ctfslog
# much output on both streams: whole, each on its own
id=$(ctfs run -d "$IMG" sh -c 'seq 1 100000; seq 1 50000 >&2')
ctfs wait "$id" >/dev/null
t_is "logs of 100,000 lines on stdout and 50,000 on stderr: stdout whole" "$(ctfs logs "$id" 2>/dev/null | md5sum)" "$(seq 1 100000 | md5sum)"
t_is "... stderr whole" "$(ctfs logs "$id" 2>&1 >/dev/null | md5sum)" "$(seq 1 50000 | md5sum)"
t_is "logs --tail 3: the last three lines" "$(ctfs logs --tail 3 "$id" 2>&1)" $'49998\n49999\n50000'
t_is "logs -n 2: on their streams (nothing on stdout)" "$(ctfs logs -n 2 "$id" 2>/dev/null; echo "rc=$?")" "rc=0"
t_is "logs --tail 0: nothing" "$(ctfs logs --tail 0 "$id" 2>&1; echo "rc=$?")" "rc=0"
t_is "logs --tail of more lines than there are: all of them" "$(ctfs logs --tail 10000000000 "$id" 2>/dev/null | wc -l)" 100000
t_is "logs --tail all: everything" "$(ctfs logs --tail all "$id" 2>/dev/null | wc -l)" 100000
rc=0; out=$(ctfs logs --tail x "$id" 2>&1) || rc=$?
t_like "logs --tail x: refused" "$rc:$out" "^1:ctfs: logs: invalid --tail x"
ctfs rm "$id" >/dev/null
id=$(ctfs run -d -t "$IMG" sh -c 'echo tty-out; echo tty-err >&2')
ctfs wait "$id" >/dev/null
t_like "logs of a detached container with a tty: both streams, as the terminal had them" "$(ctfs logs "$id" 2>/dev/null | tr -d '\r')" $'tty-out\ntty-err'
ctfs rm "$id" >/dev/null
# a log from before the streams were kept apart reads as it is, all on stdout
printf 'old out\nold err\n' >"$log"
t_is "a plain log from before reads as it is" "$(ctfs logs logger 2>/dev/null)" $'old out\nold err'
ctfs rm logger >/dev/null

# stop of a container that honours the image's StopSignal (USR1 for v2)
# (pid 1 ignores a signal it has no handler for: wait until the trap is set)
id=$(ctfs run -d --entrypoint sh localhost/layout:v2 -c 'trap "exit 9" USR1; echo ready; while true; do sleep 0.1; done')
for _ in $(seq 50); do ctfs logs "$id" | grep -q ready && break; sleep 0.1; done
t_ok "stop sends the image's StopSignal" ctfs stop "$id"
t_is "... exit status 9" "$(ctfs wait "$id")" 9
ctfs rm "$id" >/dev/null

id=$(ctfs run -d "$IMG" sleep 30)
t_ok "kill -s USR1 (ignored by pid 1)" ctfs kill -s USR1 "$id"
t_is "... still running" "$(ctfs inspect "$id" | jq -r .[0].State.Status)" running
t_ok "kill (SIGKILL)" ctfs kill "$id"
t_is "wait prints 137" "$(ctfs wait "$id")" 137
t_fail "kill of a stopped container" ctfs kill "$id"
ctfs rm "$id" >/dev/null

# --- create / start: changes kept --------------------------------------------------------------

id=$(ctfs create --name keep "$IMG" sh -c 'cat /state 2>/dev/null; echo run >>/state; exit 4')
t_like "create prints the id" "$id" "^[0-9a-f]{64}$"
t_like "ps -a: Created" "$(ctfs ps -a)" "Created +keep"
t_ok "create: record has the store's fields" jq -e '.id and .name == "keep" and .image and (.upper | startswith("/"))' "$CTFS_ROOT/containers/$id/config.json"
rc=0; out=$(ctfs start -a keep) || rc=$?
t_is "start -a: first run" "$rc $out" "4 "
rc=0; out=$(ctfs start -a keep) || rc=$?
t_is "start -a again: the earlier change is still there" "$rc $out" "4 run"
t_is "start (detached) prints the name" "$(ctfs start keep)" keep
t_is "... and wait gives its status" "$(ctfs wait keep)" 4
t_is "its log has the output" "$(ctfs logs keep)" $'run\nrun'
t_is "the change is in the upper dir" "$(cat "$CTFS_ROOT/containers/$id/upper/state")" $'run\nrun\nrun'
run_out --name keep "$IMG" true
t_is "names are unique" "$rc" 125
t_like "... saying so" "$out" "already in use"
t_is "the name's link in names/ (the index create claims it with)" "$(readlink "$CTFS_ROOT/names/keep")" "$id"
t_ok "rm a stopped container" ctfs rm keep
t_fail "... record and upper dir gone" test -e "$CTFS_ROOT/containers/$id"
t_fail "... and its name's link" test -L "$CTFS_ROOT/names/keep"
# a link left by a crash (its container gone) names nothing: the name is free
ln -s "$(printf '%064d' 7)" "$CTFS_ROOT/names/crashed"
t_fail "a stale name link resolves to nothing" ctfs inspect crashed
id2=$(ctfs create --name crashed "$IMG" true)
t_is "... and its name can be taken" "$(readlink "$CTFS_ROOT/names/crashed")" "$id2"
t_is "... and resolves to the new container" "$(ctfs inspect crashed | jq -r '.[0].Id // .Id')" "$id2"
# a store from before names/: the index is built from the records, names stay taken
rm -rf "$CTFS_ROOT/names"
t_is "without names/, a name still resolves (from the records)" "$(ctfs inspect crashed | jq -r '.[0].Id // .Id')" "$id2"
run_out --name crashed "$IMG" true
t_like "... and stays taken (names/ built from the records)" "$out" "already in use"
t_is "... names/ is back" "$(readlink "$CTFS_ROOT/names/crashed")" "$id2"
t_ok "rm it" ctfs rm crashed

run_out --rm --name gone "$IMG" true
t_is "--rm removes the container at exit" "$(ctfs ps -aq)" ""
id=$(ctfs run -d --rm "$IMG" true)
t_is "run -d --rm: removed once it exits" "$(ctfs wait "$id" >/dev/null 2>&1; for _ in $(seq 50); do [ -e "$CTFS_ROOT/containers/$id" ] || break; sleep 0.1; done; ctfs ps -aq)" ""
# wait gets the exit status of a --rm container, which is removed as it ends
id=$(ctfs run -d --rm "$IMG" sh -c 'sleep 1; exit 5')
t_is "wait on a run -d --rm container: its exit status" "$(ctfs wait "$id")" 5
t_fail "... and it is gone" test -e "$CTFS_ROOT/containers/$id"
t_fail "... a later wait finds no container, as docker's" ctfs wait "$id"
id=$(ctfs run -d --rm "$IMG" sleep 30)
(sleep 1; ctfs kill "$id" >/dev/null) &
t_is "... killed while waited for: 137" "$(ctfs wait "$id")" 137
wait
rc=0; out=$(ctfs wait no-such-container 2>&1) || rc=$?
t_is "wait on no container fails" "$rc" 1
t_like "... saying so" "$out" "no such container: no-such-container"
run_out "$IMG" sh -c 'exit 0'
t_like "a container without --rm stays" "$(ctfs ps -a)" "Exited \(0\)"

# umount --force unmounts under a running container: its files are gone until it is started
# again on a mounted store
id=$(ctfs run -d --name under "$IMG" sleep 60)
t_ok "umount --force with a container running" ctfs umount --force
t_fail "... unmounted" mountpoint -q "$CTFS_ROOT/mnt"
rc=0; out=$(ctfs exec under cat /etc/hostname 2>&1) || rc=$?
t_is "... an exec into it then fails: 126" "$rc" 126
t_like "... saying its files are gone" "$out" "Transport endpoint is not connected \(the container's files are gone: was its store unmounted"
t_ok "... it can be stopped" ctfs stop -t 1 under
t_ok "mount again" ctfs mount
t_ok "... and starts again" ctfs start under
t_is "... with its files" "$(ctfs exec under cat /etc/hostname)" "${id:0:12}"
t_ok "rm -f it" ctfs rm -f under

# stop -t -1 waits for the stop signal to end it, however long (no SIGKILL)
ctfs run -d --name slow "$IMG" sh -c 'trap "sleep 2; exit 7" TERM; while :; do sleep 0.1; done' >/dev/null
sleep 0.5
t_ok "stop -t -1" ctfs stop -t -1 slow
t_is "... the stop signal ended it, after its 2 s (no SIGKILL)" "$(ctfs inspect slow | jq .[0].State.ExitCode)" 7
# an id prefix two containers share and no image has (of 33 ids, two begin with the same
# digit other than the images', but by a chance of about 1e-8)
ids=()
for _ in $(seq 33); do ids+=("$(ctfs create "$IMG" true)"); done
skip=$(ctfs images -q --no-trunc | sed 's/^sha256://' | cut -c1 | sort -u | tr -d '\n')
p=$(printf '%s\n' "${ids[@]}" | cut -c1 | grep -v "[${skip:-x}]" | sort | uniq -d | head -1)
rc=0; out=$(ctfs inspect "$p" 2>&1) || rc=$?
t_like "inspect of an id prefix two containers share says so" "$out" "multiple containers match $p"
ctfs rm "${ids[@]}" slow >/dev/null

# export CONTAINER: its merged tree (as docker export), what it wrote and not what it removed
id=$(ctfs create --name exp "$IMG" sh -c 'echo new >/added && ln /added /linked && rm /bin/ls && mkdir /d && echo x >/d/f')
t_ok "export of a container: its changes made" ctfs start -a exp
rc=0; ctfs export exp >"$TMP/exp.tar" || rc=$?
t_is "export CONTAINER" "$rc" 0
t_is "... lists what its view has" "$(tar -tf "$TMP/exp.tar" | sed 's|/$||' | sort)" \
	"$(cd "$CTFS_ROOT/mnt/containers/$id" && find . ! -type s | sort)"
t_is "... with the file it wrote" "$(tar -xOf "$TMP/exp.tar" ./added)" new
t_like "... the hardlink as one" "$(tar -tvf "$TMP/exp.tar" ./linked)" "link to \./added"
t_fail "... and not what it removed" tar -tf "$TMP/exp.tar" ./bin/ls
# (the image has no /etc/hosts: the runtime made one to mount its own on)
t_like "... the mount points the runtime made: empty, 0755, as docker's" "$(tar -tvf "$TMP/exp.tar" ./etc/hosts ./etc/resolv.conf)" '^-rwxr-xr-x .* 0 .*\./etc/hosts'$'\n''-rwxr-xr-x .* 0 .*\./etc/resolv\.conf$'
t_ok "export -o FILE of a container" ctfs export -o "$TMP/exp2.tar" exp
mkfifo "$TMP/fifo"
rc=0; out=$(ctfs export -o "$TMP/fifo" exp 2>&1) || rc=$?
t_is "export -o of a fifo (or a device): refused, as docker's" "$rc:$out" "1:ctfs: export: invalid output path $TMP/fifo: must be a regular file"
t_ok "... the fifo stays" test -p "$TMP/fifo"
ln -s exp3.tar "$TMP/exp-link.tar" && : >"$TMP/exp3.tar"
t_ok "export -o of a symlink" ctfs export -o "$TMP/exp-link.tar" exp
t_is "... writes its target, the link stays" "$(test -L "$TMP/exp-link.tar" && cmp "$TMP/exp3.tar" "$TMP/exp.tar" && echo ok)" ok
ctfs run --name deep "$IMG" sh -c 'mkdir -p /'"$(printf 'd/%.0s' $(seq 200))"' && echo bottom >/'"$(printf 'd/%.0s' $(seq 200))"'f'
t_is "export of a container with a tree 200 directories deep" "$(ctfs export deep | tar -tf - | grep -c '/f$')" 1
ctfs rm deep >/dev/null
t_is "... the same stream" "$(cmp "$TMP/exp.tar" "$TMP/exp2.tar" && echo same)" same
rc=0; out=$(ctfs export no-such-thing 2>&1 >/dev/null) || rc=$?
t_is "export of nothing: status 1" "$rc" 1
t_is "... one line" "$out" "ctfs: export: no such container or image: no-such-thing"
# a command that mounts the store itself: the daemon it starts keeps none of its fds (a pipe it
# writes to would never close)
t_ok "umount" ctfs umount
exec 7>"$TMP/fd7"
t_ok "export of a container from an unmounted store mounts it and ends" timeout 60 sh -c "'$CTFS' --root '$CTFS_ROOT' export exp 2>/dev/null | wc -c >/dev/null"
exec 7>&-
pid=$(jq -r .pid "$CTFS_ROOT/mount.json")
t_is "... and the daemon holds none of the caller's files" "$(ls -l /proc/$pid/fd | grep -c "$TMP/fd7")" 0
ctfs rm exp >/dev/null

# a `run --rm` killed by SIGKILL leaves its container: the next ps removes it, and its name is free
"$CTFS" --root "$CTFS_ROOT" run --rm --name killed "$IMG" sleep 60 >/dev/null 2>&1 &
runpid=$!
for _ in $(seq 50); do [[ $(ctfs ps -q --filter name=killed) ]] && break; sleep 0.1; done
kid=$(ctfs inspect -f '{{.Id}}' killed)
kill -KILL "$runpid"
wait "$runpid" 2>/dev/null || true
for _ in $(seq 50); do [[ $(ctfs inspect -f '{{.State.Status}}' "$kid" 2>/dev/null) == exited ]] && break; sleep 0.1; done
t_is "run --rm killed by SIGKILL: the next ps removes what it left" "$(ctfs ps -a -q --filter name=killed; echo "rc=$?")" "rc=0"
t_fail "... its record is gone" test -e "$CTFS_ROOT/containers/$kid"
"$CTFS" --root "$CTFS_ROOT" run --rm --name killed2 "$IMG" sleep 60 >/dev/null 2>&1 &
runpid=$!
for _ in $(seq 50); do [[ $(ctfs ps -q --filter name=killed2) ]] && break; sleep 0.1; done
kill -KILL "$runpid"
wait "$runpid" 2>/dev/null || true
for _ in $(seq 50); do [[ $(ctfs inspect -f '{{.State.Status}}' killed2 2>/dev/null) == exited ]] && break; sleep 0.1; done
t_is "... and its name is free again at once" "$(ctfs run --rm --name killed2 "$IMG" echo again)" again
