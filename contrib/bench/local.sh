#!/bin/sh
# Local delivery benchmark: Maildir delivery throughput of ternd against
# Postfix's virtual(8) on the same machine, in the same run, and how long
# an SMTP session waits for a NOOP reply meanwhile.  See
# contrib/bench/README.
#
#   contrib/bench/local.sh
#
# smtp-source injects BENCH_MESSAGES messages over BENCH_SESSIONS parallel
# sessions into the server, all to one local mailbox.  The figure is the
# time from the first injection until the last message is in the
# Maildir's new/.  Meanwhile a probe client holds one more session open
# and sends NOOP every 10 ms, recording each reply's latency: a server
# whose event loop stalls on disk work answers late.
#
# Everything runs on loopback, in a temporary directory, and is stopped
# and removed at exit.  The system's own mail service is never touched.
# As root, missing Debian packages (postfix for smtp-source and the
# postfix command; python3) are installed with apt-get.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)

TERND=${BENCH_TERND:-${TERND:-$top/build/src/ternd}}
messages=${BENCH_MESSAGES:-2000}
sessions=${BENCH_SESSIONS:-20}
size=${BENCH_SIZE:-4096}
servers=${BENCH_SERVERS:-tern postfix}
run_timeout=${BENCH_TIMEOUT:-300}
interval=${BENCH_PROBE_MS:-10}
tmpbase=${BENCH_TMPDIR:-/var/tmp}
keep=${BENCH_KEEP:-no}

if [ $# -gt 0 ]; then
	echo "usage: $0 (settings in the environment, see" \
	    "contrib/bench/README)" >&2
	exit 1
fi
for v in "$messages" "$sessions" "$size" "$run_timeout" "$interval"; do
	case "$v" in
	''|*[!0-9]*)
		echo "bench: not a number: '$v'" >&2
		exit 1
		;;
	esac
done
if [ "$messages" -eq 0 ] || [ "$sessions" -eq 0 ] ||
    [ "$interval" -eq 0 ]; then
	echo "bench: BENCH_MESSAGES, BENCH_SESSIONS and BENCH_PROBE_MS" \
	    "must be above 0" >&2
	exit 1
fi

T=
ternd_pid=
pf_started=
failed=

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$top/contrib/bench/lib.sh"

cleanup() {
	rc=$?
	set +e
	[ "$rc" -ne 0 ] && failed=yes
	[ -n "$ternd_pid" ] && stop_pid "$ternd_pid" ternd
	pf_stop
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$keep" = yes ] || [ -n "$failed" ]; then
			echo "bench: kept $T (logs: ternd.log, pf/maillog," \
			    "*.out)" >&2
		else
			rm -rf "$T"
		fi
	fi
}
trap cleanup EXIT
trap 'failed=yes; exit 130' INT TERM HUP

# The user the servers deliver as, and who owns the mailboxes.
if [ "$(id -u)" -eq 0 ]; then
	mail_user=nobody
else
	mail_user=$(id -un)
fi

# ---------------------------------------------------------------- ternd

start_ternd() {
	tern_port=$(free_port)
	mkdir -p "$T/tern/mail"
	chown "$mail_user" "$T/tern/mail"
	run_as=
	[ "$(id -u)" -eq 0 ] && run_as="user = $mail_user"
	tern_spool_prepare "$T/tern/spool" "$mail_user"
	echo "rcpt@bench.test -" >"$T/tern/users"
	cat >"$T/tern/tern.ini" <<EOF
[main]
hostname = tern.bench.test
spool = $T/tern/spool
log = stderr
shutdown_timeout = 5s
$run_as

[smtp]
listen = 127.0.0.1:$tern_port
max_connections = $((sessions + 100))
max_connections_per_ip = 0
local_domains = bench.test
relay_networks = 127.0.0.0/8

[local]
users = $T/tern/users
mailboxes = $T/tern/mail
EOF
	"$TERND" -c "$T/tern/tern.ini" 2>"$T/ternd.log" &
	ternd_pid=$!
	wait_port "$tern_port" ||
	    die "ternd did not start: $(tail -n 5 "$T/ternd.log")"
	kill -0 "$ternd_pid" 2>/dev/null ||
	    die "ternd exited: $(tail -n 5 "$T/ternd.log")"
	tern_new="$T/tern/mail/bench.test/rcpt/new"
	say "ternd $ternd_pid on 127.0.0.1:$tern_port, Maildir $tern_new"
}

# -------------------------------------------------------------- Postfix

# A private instance delivering bench.test with virtual(8) into one
# Maildir; queue manager and delivery settings at Postfix's defaults.
start_postfix() {
	mkdir -p "$T/pf/etc" "$T/pf/mail"
	chown "$mail_user" "$T/pf/mail"
	echo "rcpt@bench.test rcpt/" >"$T/pf/etc/vmailbox"
	pf_main_extra="virtual_mailbox_domains = bench.test
virtual_mailbox_base = $T/pf/mail
virtual_mailbox_maps = texthash:$T/pf/etc/vmailbox
virtual_uid_maps = static:$(id -u "$mail_user")
virtual_gid_maps = static:$(id -g "$mail_user")"
	pf_master_extra="virtual   unix  -       n       n       -       -       virtual"
	pf_start
	pf_new="$T/pf/mail/rcpt/new"
	say "postfix master $pf_master on 127.0.0.1:$pf_port, Maildir $pf_new"
}

# ----------------------------------------------------------------- runs

# One run: name port new-dir pid.  A probe session sends NOOP every
# BENCH_PROBE_MS milliseconds from before the injection until the last
# message is in new/; smtp-source injects meanwhile.  Prints, in res,
#   RESULT status=S elapsed=X inject=X got=N noops=N p50=X p99=X max=X
# (milliseconds), status ok, timeout, died or source.
local_run() {
	python3 - "$2" "$3" "$messages" "$run_timeout" "$4" "$interval" \
	    "$T/$1-source.out" /usr/sbin/smtp-source -s "$sessions" \
	    -m "$messages" -l "$size" -M client.bench.test \
	    -f sender@bench.test -t rcpt@bench.test "127.0.0.1:$2" \
	    >"$T/$1-run.out" 2>&1 <<'EOF'
import os, socket, subprocess, sys, threading, time

port, newdir, want, limit, pid, every, out = sys.argv[1:8]
port, want, limit, pid = int(port), int(want), float(limit), int(pid)
every = int(every) / 1000.0

def delivered():
    try:
        return len(os.listdir(newdir))
    except OSError:
        return 0

def alive(p):
    try:
        os.kill(p, 0)
        return True
    except OSError:
        return False

def reply(f):
    """One SMTP reply, all its lines."""
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        if line[3:4] != b"-":
            return line

lat, stop, err = [], threading.Event(), []

def probe(sock):
    f = sock.makefile("rb")
    nxt = time.monotonic()
    try:
        while not stop.is_set():
            t = time.monotonic()
            sock.sendall(b"NOOP\r\n")
            if not reply(f).startswith(b"250"):
                raise RuntimeError("NOOP refused")
            lat.append((time.monotonic() - t) * 1000.0)
            nxt += every
            time.sleep(max(0.0, nxt - time.monotonic()))
        sock.sendall(b"QUIT\r\n")
    except Exception as e:
        err.append(str(e))

sock = socket.create_connection(("127.0.0.1", port), 10)
f = sock.makefile("rb")
reply(f)
sock.sendall(b"EHLO probe.bench.test\r\n")
reply(f)
th = threading.Thread(target=probe, args=(sock,))
th.start()
time.sleep(0.5)
base = delivered()
t0 = time.monotonic()
with open(out, "ab") as log:
    src = subprocess.Popen(sys.argv[8:], stdout=log, stderr=log)
rc, inject, status = None, None, None
while True:
    now = time.monotonic()
    got = delivered() - base
    if rc is None and src.poll() is not None:
        rc, inject = src.returncode, now - t0
    if got >= want:
        status = "ok"
        break
    if rc is not None and rc != 0:
        status = "source"
        break
    if not alive(pid):
        status = "died"
        break
    if now - t0 > limit:
        status = "timeout"
        break
    time.sleep(0.02)
elapsed = now - t0
stop.set()
th.join()
if rc is None:
    try:
        rc = src.wait(timeout=10 if status == "ok" else 0.1)
    except subprocess.TimeoutExpired:
        src.kill()
        rc = src.wait()
    inject = time.monotonic() - t0
if err and status == "ok":
    status = "probe"
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else 0.0
print("probe error: %s" % err[0] if err else "probe ok")
print("RESULT status=%s elapsed=%.3f inject=%.3f got=%d rc=%d noops=%d "
      "p50=%.2f p99=%.2f max=%.2f" % (status, elapsed, inject, got, rc,
      len(lat), pct(0.50), pct(0.99), lat[-1] if lat else 0.0))
EOF
	res=$(tail -n 1 "$T/$1-run.out")
}

# The run for one server: name port new-dir pid.  Sets line.
measure() {
	say "$1: $messages messages to one Maildir"
	local_run "$@"
	status=$(field "$res" status)
	case "$status" in
	ok) ;;
	*)
		die "$1: the run failed ($res): $(cat "$T/$1-run.out")" \
		    "$(tail -n 3 "$T/$1-source.out")"
		;;
	esac
	sleep 1
	n=$(find "$3" -type f | wc -l | tr -d ' ')
	[ "$n" -eq "$messages" ] ||
	    die "$1: $messages injected, $n in the Maildir"
	elapsed=$(field "$res" elapsed)
	rate=$(awk -v n="$messages" -v e="$elapsed" \
	    'BEGIN { printf "%.1f", n / e }')
	fmt='%-8s %6d msgs in %8.3f s  %8.1f msgs/s   NOOP p50 %7s ms'
	fmt="$fmt  p99 %7s ms  max %8s ms (%s NOOPs)"
	# shellcheck disable=SC2059
	line=$(printf "$fmt" "$1" "$messages" "$elapsed" "$rate" \
	    "$(field "$res" p50)" "$(field "$res" p99)" \
	    "$(field "$res" max)" "$(field "$res" noops)")
	eval "${1}_rate=\$rate"
}

# ----------------------------------------------------------------- main

if has tern && ! [ -x "$TERND" ]; then
	die "no ternd at $TERND (build it, or set BENCH_TERND)"
fi
install_pkgs
[ -d "$tmpbase" ] || die "no directory $tmpbase (BENCH_TMPDIR)"
T=$(mktemp -d "$tmpbase/tern-bench.XXXXXX")
chmod 755 "$T"

say "$(nproc) CPUs; spools and Maildirs in $T" \
    "($(df -PT "$T" | awk 'NR == 2 {print $2}'))"
has tern && start_ternd
has postfix && start_postfix

tern_line=
pf_line=
if has tern; then
	measure tern "$tern_port" "$tern_new" "$ternd_pid"
	tern_line=$line
fi
if has postfix; then
	measure postfix "$pf_port" "$pf_new" "$pf_master"
	pf_line=$line
fi

echo
echo "== local: $messages messages of $size octets to one Maildir," \
    "$sessions parallel sessions; a probe sends NOOP every ${interval} ms"
[ -n "$tern_line" ] && echo "$tern_line"
[ -n "$pf_line" ] && echo "$pf_line"
if has tern && has postfix; then
	# shellcheck disable=SC2154
	awk -v a="$tern_rate" -v b="$postfix_rate" \
	    'BEGIN { printf "ratio tern/postfix: %.2f\n", a / b }'
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
exit 0
