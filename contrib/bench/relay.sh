#!/bin/sh
# Relay benchmark: end-to-end throughput of ternd against Postfix on the
# same machine, in the same run.  See contrib/bench/README.
#
#   contrib/bench/relay.sh
#
# smtp-source injects BENCH_MESSAGES messages over BENCH_SESSIONS parallel
# sessions into the server, which relays every one of them to its own
# smtp-sink on loopback.  The figure is the time from the first injection
# until the sink has received the last message.  ternd relays through its
# gateway (gateway_all), Postfix through its relayhost.  BENCH_LOAD=cpu
# or fsync runs a competitor beside each timed run (stress-ng --cpu 2, or
# a loop of 4 KiB writes each synced beside the spools) and prints what
# it got done.
#
# Everything runs on loopback, in a temporary directory, and is stopped
# and removed at exit.  The system's own mail service is never touched.
# As root, missing Debian packages (postfix for smtp-source, smtp-sink and
# the postfix command; python3; stress-ng for BENCH_LOAD=cpu) are
# installed with apt-get.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)

TERND=${BENCH_TERND:-${TERND:-$top/build/src/ternd}}
messages=${BENCH_MESSAGES:-5000}
sessions=${BENCH_SESSIONS:-20}
size=${BENCH_SIZE:-4096}
warmup=${BENCH_WARMUP:-0}
reuse=${BENCH_REUSE:-no}
servers=${BENCH_SERVERS:-tern postfix}
run_timeout=${BENCH_TIMEOUT:-300}
stall=${BENCH_STALL:-30}
tmpbase=${BENCH_TMPDIR:-/var/tmp}
keep=${BENCH_KEEP:-no}
# yes: ternd serves metrics, and is measured twice, without and then with
# a scraper asking for /metrics every second.
scrape=${BENCH_SCRAPE:-no}
milter=${BENCH_MILTER:-}
# ternd's spool_sync: file (the default) or filesystem.
spool_sync=${BENCH_SPOOL_SYNC:-file}
# A competitor during each timed run: none, cpu (stress-ng --cpu 2) or
# fsync (4 KiB writes, each synced, in the run's temporary directory).
load=${BENCH_LOAD:-none}
expect_header=${BENCH_EXPECT_HEADER:-}
# Where the sinks keep their dumps: memory by default, since the next
# hop's disk is not the relay's.
sinkbase=${BENCH_SINK_TMPDIR:-/dev/shm}
# yes: also time smtp-source straight to an smtp-sink, no server between.
floor=${BENCH_FLOOR:-yes}
# N above 0: after the timed runs, N more messages through each server
# under strace -f -c, for its system calls a message (not timed).
syscalls=${BENCH_SYSCALLS:-0}

if [ $# -gt 0 ]; then
	echo "usage: $0 (settings in the environment, see" \
	    "contrib/bench/README)" >&2
	exit 1
fi
for v in "$messages" "$sessions" "$size" "$warmup" "$run_timeout" \
    "$stall" "$syscalls"; do
	case "$v" in
	''|*[!0-9]*)
		echo "bench: not a number: '$v'" >&2
		exit 1
		;;
	esac
done
bench_pkgs=
[ "$syscalls" -gt 0 ] && bench_pkgs="strace:/usr/bin/strace"
case "$load" in
none|fsync) ;;
cpu)	bench_pkgs="$bench_pkgs stress-ng:/usr/bin/stress-ng" ;;
*)
	echo "bench: BENCH_LOAD must be none, cpu or fsync" >&2
	exit 1
	;;
esac
if [ "$messages" -eq 0 ] || [ "$sessions" -eq 0 ]; then
	echo "bench: BENCH_MESSAGES and BENCH_SESSIONS must be above 0" >&2
	exit 1
fi

T=
SD=
run_pid=
ternd_pid=
pf_started=
tern_sink_pid=
postfix_sink_pid=
floor_sink_pid=
failed=
scraper_pid=
load_pid=
strace_pid=

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$top/contrib/bench/lib.sh"

# Stop what we started, by pid or by the private instance's own command.
cleanup() {
	rc=$?
	set +e
	[ "$rc" -ne 0 ] && failed=yes
	[ -n "$run_pid" ] && stop_pid "$run_pid" smtp-source
	[ -n "$scraper_pid" ] && stop_pid "$scraper_pid" scraper
	[ -n "$strace_pid" ] && stop_pid "$strace_pid" strace
	[ -n "$load_pid" ] && stop_pid "$load_pid" "the competing load"
	[ -n "$ternd_pid" ] && stop_pid "$ternd_pid" ternd
	pf_stop
	[ -n "$tern_sink_pid" ] && stop_pid "$tern_sink_pid" smtp-sink
	[ -n "$postfix_sink_pid" ] && stop_pid "$postfix_sink_pid" smtp-sink
	[ -n "$floor_sink_pid" ] && stop_pid "$floor_sink_pid" smtp-sink
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ "$keep" = yes ] || [ -n "$failed" ]; then
			echo "bench: kept $T (logs: ternd.log, pf/maillog," \
			    "*.out)" >&2
		else
			rm -rf "$T"
		fi
	fi
	if [ -n "$SD" ] && [ -d "$SD" ] && [ "$SD" != "$T" ]; then
		if [ "$keep" = yes ] || [ -n "$failed" ]; then
			echo "bench: kept $SD (sink dumps: sink-*/dump," \
			    "sink-*/count.out)" >&2
		else
			rm -rf "$SD"
		fi
	fi
}
trap cleanup EXIT
trap 'failed=yes; exit 130' INT TERM HUP

# Messages ternd still holds: its envelopes.
tern_queued() {
	count_files "$T/tern/spool/queue" '*.env'
}

# An smtp-sink for one server: name.  It counts messages (-c, one
# "sess=N quit=N mesg=N" record per event, each ended by a carriage
# return, on its stdout) and appends every message to one dump file (-D)
# so the recipients can be checked afterwards.  Sets sink_port.
start_sink() {
	sink_port=$(free_port)
	mkdir -p "$SD/sink-$1"
	sink_user=
	if [ "$(id -u)" -eq 0 ]; then
		sink_user="-u nobody"
		chown nobody "$SD/sink-$1"
	fi
	# The floor's sink keeps nothing: a relay receives without a dump.
	dump="-D $SD/sink-$1/dump"
	[ "$1" = floor ] && dump=
	# shellcheck disable=SC2086
	/usr/sbin/smtp-sink $sink_user -c $dump \
	    "127.0.0.1:$sink_port" 256 >"$SD/sink-$1/count.out" \
	    2>"$SD/sink-$1/stderr.out" &
	case "$1" in
	tern)	tern_sink_pid=$! ;;
	floor)	floor_sink_pid=$! ;;
	*)	postfix_sink_pid=$! ;;
	esac
	wait_port "$sink_port" ||
	    die "smtp-sink for $1 did not start:" \
	    "$(cat "$SD/sink-$1/stderr.out")"
}

# ---------------------------------------------------------------- ternd

start_ternd() {
	start_sink tern
	tern_sink_port=$sink_port
	tern_port=$(free_port)
	mkdir -p "$T/tern"
	# As root, ternd drops to a user of its own: nobody will do here.
	run_as=
	if [ "$(id -u)" -eq 0 ]; then
		run_as="user = nobody"
		tern_spool_prepare "$T/tern/spool" nobody
	fi
	metrics_line=
	if [ "$scrape" = yes ]; then
		metrics_port=$(free_port)
		metrics_line="metrics_listen = $metrics_port"
	fi
	cat >"$T/tern/tern.ini" <<EOF
[main]
hostname = bench.test
spool = $T/tern/spool
log = stderr
shutdown_timeout = 5s
spool_sync = $spool_sync
$run_as
$metrics_line

[smtp]
listen = 127.0.0.1:$tern_port
max_connections = $((sessions + 1000))
max_connections_per_ip = 0
local_domains = bench.test
relay_networks = 127.0.0.0/8

[local]
# Never the host's default mailbox root.
mailboxes = $T/tern/mail

[delivery]
gateway = 127.0.0.1:$tern_sink_port
gateway_all = yes
EOF
	# Both servers pass every message through the same filter.
	if [ -n "$milter" ]; then
		printf '\n[milter]\nsmtpd_milters = %s\n' "$milter" \
		    >>"$T/tern/tern.ini"
	fi
	"$TERND" -c "$T/tern/tern.ini" 2>"$T/ternd.log" &
	ternd_pid=$!
	wait_port "$tern_port" ||
	    die "ternd did not start: $(tail -n 5 "$T/ternd.log")"
	kill -0 "$ternd_pid" 2>/dev/null ||
	    die "ternd exited: $(tail -n 5 "$T/ternd.log")"
	say "ternd $ternd_pid on 127.0.0.1:$tern_port, relaying to" \
	    "smtp-sink on 127.0.0.1:$tern_sink_port"
}

# -------------------------------------------------------------- Postfix

# The private instance (lib.sh) relaying everything to its smtp-sink.
start_postfix() {
	start_sink postfix
	pf_sink_port=$sink_port
	pf_main_extra="relayhost = [127.0.0.1]:$pf_sink_port"
	if [ -n "$milter" ]; then
		pf_main_extra="$pf_main_extra
smtpd_milters = $milter"
	fi
	pf_start
	say "postfix master $pf_master on 127.0.0.1:$pf_port, relaying to" \
	    "smtp-sink on 127.0.0.1:$pf_sink_port (destination concurrency" \
	    "$(postconf -c "$T/pf/etc" -h default_destination_concurrency_limit))"
}

# ----------------------------------------------------------------- runs

# One run, timed: name port count rcpt pid.  Starts smtp-source, then
# watches the sink's counter until it has count more messages than when
# the run began.  Gives up when the run takes longer than BENCH_TIMEOUT,
# when the sink gets nothing new for BENCH_STALL seconds after the
# injection has ended, or when process pid (the server) is gone.  The
# result, in res, is
#   RESULT status=S elapsed=X inject=X got=N rc=N
# with status ok, timeout, stall, died or source (smtp-source failed).
# The watcher runs in the background so that a signal reaches the trap
# at once (the shell waits for a foreground command before it runs a
# trap); it ends smtp-source when it is told to stop.
relay_run() {
	# shellcheck disable=SC2086
	python3 - "$SD/sink-$1/count.out" "$3" "$run_timeout" "$stall" "$5" \
	    "$T/$1-source.out" /usr/sbin/smtp-source $source_opts \
	    -s "$sessions" -m "$3" -l "$size" -M client.bench.test \
	    -f sender@bench.test -t "$4" "127.0.0.1:$2" \
	    >"$T/$1-run.out" 2>&1 <<'EOF' &
import os, re, resource, signal, subprocess, sys, time

counter, want, limit, stall, pid, out = sys.argv[1:7]
want, limit, stall, pid = int(want), float(limit), float(stall), int(pid)
record = re.compile(rb"mesg=(\d+)\r")

def received():
    """The sink's message count: its last complete counter record."""
    try:
        with open(counter, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 256))
            found = record.findall(f.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0

def alive(p):
    try:
        os.kill(p, 0)
        return True
    except OSError:
        return False

src = None

def stop(signo, frame):
    if src is not None and src.poll() is None:
        src.kill()
        src.wait()
    sys.exit(1)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)

base = received()
t0 = time.monotonic()
with open(out, "ab") as log:
    src = subprocess.Popen(sys.argv[7:], stdout=log, stderr=log)
rc, inject, status = None, None, None
last, last_t = base, t0
while True:
    now = time.monotonic()
    got = received() - base
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
    if got != last:
        last, last_t = got, now
    if now - t0 > limit:
        status = "timeout"
        break
    if rc is not None and now - max(last_t, t0 + inject) > stall:
        status = "stall"
        break
    time.sleep(0.01)
elapsed = now - t0
if rc is None:
    # The sink has everything before smtp-source has said goodbye, or
    # the run is given up: let it finish, or end it.
    try:
        rc = src.wait(timeout=10 if status == "ok" else 0.1)
    except subprocess.TimeoutExpired:
        src.kill()
        rc = src.wait()
    inject = time.monotonic() - t0
# The CPU smtp-source used, the one child waited for.
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print("RESULT status=%s elapsed=%.3f inject=%.3f got=%d rc=%d srccpu=%.3f" %
      (status, elapsed, inject, got, rc, ru.ru_utime + ru.ru_stime))
EOF
	run_pid=$!
	wait "$run_pid" || true
	run_pid=
	res=$(tail -n 1 "$T/$1-run.out")
}

# Recipients the sink got for one run: name rcpt.  Prints "total
# distinct" of the recipients made from rcpt (smtp-source -N puts a
# sequence number in front of it).
sink_rcpts() {
	grep '^X-Rcpt-Args: ' "$SD/sink-$1/dump" 2>/dev/null | awk -v r="$2>" '
	substr($2, length($2) - length(r) + 1) == r {
		n++
		if (!($2 in seen))
			d++
		seen[$2] = 1
	}
	END { printf "%d %d\n", n, d }'
}

# The competitor of a timed run (BENCH_LOAD), started just before it:
# name.  cpu: stress-ng --cpu 2, two workers spinning at the servers'
# priority, which report their work when stopped (--metrics-brief).
# fsync: a loop writing 4 KiB to a file beside the spools and syncing
# it, which reports its loops when stopped.  Returns once the competitor
# is at work.  Sets load_pid.
load_start() {
	[ "$load" = none ] && return 0
	out="$T/load-$1.out"
	: >"$out"
	case "$load" in
	cpu)
		stress-ng --cpu 2 --metrics-brief >"$out" 2>&1 &
		load_pid=$!
		ready="dispatching hogs"
		;;
	fsync)
		python3 - "$T/load-$1.data" >"$out" 2>&1 <<'EOF' &
import os, signal, sys, time

stop = False

def on_term(signo, frame):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
block = b"x" * 4096
loops = 0
print("running", flush=True)
t0 = time.monotonic()
while not stop:
    os.write(fd, block)
    os.fsync(fd)
    loops += 1
    # Start the file anew every 64 MiB, so that it stays small.
    if loops % 16384 == 0:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
elapsed = time.monotonic() - t0
os.close(fd)
os.unlink(sys.argv[1])
print("RESULT loops=%d seconds=%.3f" % (loops, elapsed))
EOF
		load_pid=$!
		ready="running"
		;;
	esac
	i=0
	while ! grep -q "$ready" "$out" && [ "$i" -lt 100 ]; do
		kill -0 "$load_pid" 2>/dev/null ||
		    die "the competing load ($load) exited: $(cat "$out")"
		sleep 0.05
		i=$((i + 1))
	done
	grep -q "$ready" "$out" ||
	    die "the competing load ($load) did not start: $(cat "$out")"
}

# Stop the competitor right after the timed run: name.  Sets load_desc,
# what it got done meanwhile.
load_stop() {
	load_desc=
	[ "$load" = none ] && return 0
	stop_pid "$load_pid" "the competing load"
	load_pid=
	out="$T/load-$1.out"
	case "$load" in
	cpu)
		# After "cpu": bogo ops, real, user and system seconds.
		load_desc=$(awk '/metrc:.* cpu +[0-9]/ {
			for (i = 1; i < NF; i++)
				if ($i == "cpu")
					break
			printf "competitor stress-ng --cpu 2: %.2f CPUs, " \
			    "%.0f bogo ops/s", ($(i + 3) + $(i + 4)) / $(i + 2),
			    $(i + 1) / $(i + 2)
		}' "$out")
		;;
	fsync)
		r=$(sed -n 's/^RESULT //p' "$out")
		[ -n "$r" ] && load_desc=$(awk -v n="$(field "$r" loops)" \
		    -v s="$(field "$r" seconds)" 'BEGIN { printf "competitor " \
		    "fsync: %d loops of 4 KiB, %.1f loops/s", n, n / s }')
		;;
	esac
	[ -n "$load_desc" ] ||
	    die "$1: the competing load ($load) gave no figures:" \
	    "$(tail -n 3 "$out")"
}

# Until queued-function says 0, at most tries tenths of a second, and
# half a second more: queued-function tries.
wait_unqueued() {
	i=0
	while [ "$($1)" -ne 0 ] && [ "$i" -lt "$2" ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep 0.5
}

# Clock ticks (tree_cpu) as seconds, one decimal.
ticks_s() {
	awk -v t="$1" -v hz="$(getconf CLK_TCK)" \
	    'BEGIN { printf "%.1f", t / hz }'
}

# Warm-up (untimed) and timed run for one server: name port pid
# queued-function.  Sets elapsed, rate and check.
measure() {
	if [ "$warmup" -gt 0 ]; then
		say "$1: $warmup warm-up messages"
		relay_run "$1" "$2" "$warmup" warm@relay.bench.test "$3"
		[ "$(field "$res" status)" = ok ] ||
		    die "$1: warm-up failed ($res):" \
		    "$(tail -n 3 "$T/$1-source.out")"
	fi
	# The recipient's local part tells this run's messages at the sink.
	lp=${5:-rcpt}
	say "$1: $messages timed messages"
	load_start "$1"
	case "$1" in
	tern)	spid=$tern_sink_pid ;;
	*)	spid=$postfix_sink_pid ;;
	esac
	c0=$(tree_cpu "$3")
	s0=$(tree_cpu "$spid")
	relay_run "$1" "$2" "$messages" "$lp@relay.bench.test" "$3"
	c1=$(tree_cpu "$3")
	s1=$(tree_cpu "$spid")
	load_stop "$1"
	status=$(field "$res" status)
	got=$(field "$res" got)
	case "$status" in
	ok) ;;
	source)
		die "$1: smtp-source failed (exit $(field "$res" rc)):" \
		    "$(tail -n 3 "$T/$1-source.out")"
		;;
	died)
		die "$1: the server died during the run" \
		    "(see the logs)"
		;;
	timeout|stall)
		if [ "$status" = timeout ]; then
			why="gave up after ${run_timeout}s"
		else
			why="nothing more reached the sink for ${stall}s"
		fi
		if [ "$got" -eq 0 ]; then
			why="$why; the sink received nothing: $1 does not"
			why="$why relay (no delivery to the gateway?)"
		fi
		die "$1: $why; the sink has $got of $messages messages," \
		    "$($4) still queued"
		;;
	*)
		die "$1: the run gave no result: $res"
		;;
	esac
	elapsed=$(field "$res" elapsed)
	rate=$(awk -v n="$messages" -v e="$elapsed" \
	    'BEGIN { printf "%.1f", n / e }')
	cpu=$(ticks_s "$((c1 - c0))")
	# The sink only receives (and writes its dump): what one end of
	# these SMTP connections costs, for comparison.
	sink_cpu=$(ticks_s "$((s1 - s0))")
	# What else is on its way (duplicates) arrives within moments; and
	# the server should let go of every message it delivered.
	wait_unqueued "$4" 100
	queued=$($4)
	counts=$(sink_rcpts "$1" "$lp@relay.bench.test")
	total=${counts% *}
	distinct=${counts#* }
	if [ "$total" -ne "$messages" ] || [ "$distinct" -ne "$messages" ]
	then
		die "$1: injected $messages messages, the sink has $total" \
		    "recipients of this run ($distinct distinct)"
	fi
	check="injected in $(field "$res" inject) s; $total at the sink,"
	check="$check all distinct; CPU $cpu s; smtp-source CPU"
	check="$check $(awk -v c="$(field "$res" srccpu)" \
	    'BEGIN { printf "%.1f", c }') s; sink CPU $sink_cpu s"
	# A filter that was to mark every message (a signature) did.
	if [ -n "$expect_header" ]; then
		n=$(grep -c "^$expect_header:" "$SD/sink-$1/dump" || true)
		[ "$n" -eq $((messages + warmup)) ] ||
		    die "$1: $n of $((messages + warmup)) messages at the" \
		    "sink carry $expect_header"
		check="$check; all with $expect_header"
	fi
	[ -n "$load_desc" ] && check="$check; $load_desc"
	check="$check; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$queued" -ne 0 ]; then
		say "$1: warning: $queued messages still queued after" \
		    "delivery"
		check="$check; $queued still queued"
	fi
}

# The floor: the same run with no server, smtp-source straight to an
# smtp-sink of its own.  What the two ends cost is what any relay pays
# at least (it is a server to its clients and a client to the next
# hop).  Sets floor_line.
measure_floor() {
	start_sink floor
	say "floor: $messages timed messages, no server"
	s0=$(tree_cpu "$floor_sink_pid")
	relay_run floor "$sink_port" "$messages" rcpt@floor.bench.test \
	    "$floor_sink_pid"
	s1=$(tree_cpu "$floor_sink_pid")
	[ "$(field "$res" status)" = ok ] ||
	    die "floor: smtp-source to smtp-sink failed ($res):" \
	    "$(tail -n 3 "$T/floor-source.out")"
	floor_line=$(awk -v n="$messages" -v e="$(field "$res" elapsed)" \
	    -v src="$(field "$res" srccpu)" -v t="$((s1 - s0))" \
	    -v hz="$(getconf CLK_TCK)" 'BEGIN {
		sink = t / hz
		printf "%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (no server:" \
		    " smtp-source CPU %.1f s, sink CPU %.1f s; %.3f ms a" \
		    " message for the two ends)", "floor", n, e, n / e, src,
		    sink, (src + sink) * 1000 / n }')
}

# System calls a message, counted (never timed): name port pid
# queued-function.  BENCH_SYSCALLS more messages go through the server
# while strace -f -c follows the process pid and all below it (Postfix:
# master and its daemons, and those it starts meanwhile); the count
# ends once the server has let go of every one.  Sets syscalls_line.
count_syscalls() {
	pids=$(proc_tree "$3" pids)
	out="$T/$1-strace.out"
	# shellcheck disable=SC2086
	strace -f -c -o "$out" $pids 2>"$T/$1-strace.err" &
	strace_pid=$!
	i=0
	while ! grep -q attached "$T/$1-strace.err" && [ "$i" -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	sleep 0.5
	say "$1: $syscalls messages under strace"
	relay_run "$1" "$2" "$syscalls" "sc@relay.bench.test" "$3"
	[ "$(field "$res" status)" = ok ] ||
	    die "$1: the counted run failed ($res)"
	wait_unqueued "$4" 300
	kill -INT "$strace_pid"
	wait "$strace_pid" || true
	strace_pid=
	# "% time seconds usecs/call calls [errors] syscall", then a total.
	syscalls_line=$(awk -v n="$syscalls" -v who="$1" '
	$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
		calls[$NF] = $4
		if ($NF ~ /sync/)
			sync += $4
	}
	$NF == "total" { total = $4 }
	END {
		line = sprintf("%-8s %.1f system calls a message, %.2f of them" \
		    " syncs (", who, total / n, sync / n)
		sep = ""
		for (k in calls)
			if (k ~ /sync/) {
				line = line sprintf("%s%s %.2f", sep, k, calls[k] / n)
				sep = ", "
			}
		line = line "); most:"
		for (j = 0; j < 10; j++) {
			best = ""
			for (k in calls)
				if (best == "" || calls[k] + 0 > calls[best] + 0)
					best = k
			if (best == "")
				break
			line = line sprintf(" %s %.1f", best, calls[best] / n)
			delete calls[best]
		}
		print line
	}' "$out")
}

# A scraper as Prometheus is one: GET /metrics every second, the last
# answer kept and the good ones counted, until stopped.
start_scraper() {
	(
		n=0
		while :; do
			if curl -sf --max-time 5 -o "$T/metrics.last" \
			    "http://127.0.0.1:$metrics_port/metrics"; then
				n=$((n + 1))
				echo "$n" >"$T/scrapes"
			fi
			sleep 1
		done
	) &
	scraper_pid=$!
}

# ----------------------------------------------------------------- main

if has tern && ! [ -x "$TERND" ]; then
	die "no ternd at $TERND (build it, or set BENCH_TERND)"
fi
install_pkgs
[ -d "$tmpbase" ] || die "no directory $tmpbase (BENCH_TMPDIR)"
T=$(mktemp -d "$tmpbase/tern-bench.XXXXXX")
# Postfix's daemons run as the postfix user and must reach their queue.
chmod 755 "$T"
# The sinks' dumps (each message they receive) go to memory: on the
# spools' disk their writes would compete with the servers' syncs, the
# more so the faster the server, where a real next hop is another
# machine.  smtp-sink runs as nobody and writes below.
if [ -d "$sinkbase" ]; then
	SD=$(mktemp -d "$sinkbase/tern-bench-sink.XXXXXX")
else
	SD=$T
fi
chmod 755 "$SD"

if [ "$reuse" = yes ]; then
	source_opts="-N -d"
	conn_desc="one connection per session, reused (-d)"
else
	source_opts="-N"
	conn_desc="a new connection per message"
fi

say "$(nproc) CPUs; spools in $T ($(df -PT "$T" | awk 'NR == 2 {print $2}'));" \
    "sink dumps in $SD ($(df -PT "$SD" | awk 'NR == 2 {print $2}'))"
has tern && start_ternd
has postfix && start_postfix

if has tern; then
	measure tern "$tern_port" "$ternd_pid" tern_queued
	tern_elapsed=$elapsed
	tern_rate=$rate
	tern_check=$check
	if [ "$scrape" = yes ]; then
		start_scraper
		measure tern "$tern_port" "$ternd_pid" tern_queued scraped
		stop_pid "$scraper_pid" scraper || true
		scraper_pid=
		scraped_elapsed=$elapsed
		scraped_rate=$rate
		scraped_check=$check
		# Once more without, so that the order does not decide.
		measure tern "$tern_port" "$ternd_pid" tern_queued again
		again_elapsed=$elapsed
		again_rate=$rate
		again_check=$check
		scraped_check="$scraped_check; $(cat "$T/scrapes" 2>/dev/null ||
		    echo 0) scrapes of $(wc -c <"$T/metrics.last" \
		    2>/dev/null || echo 0) octets"
		# What one scrape costs ternd, idle: 1000 in a row.
		url="http://127.0.0.1:$metrics_port/metrics"
		set -- "$url"
		i=1
		while [ "$i" -lt 1000 ]; do
			set -- "$@" "$url"
			i=$((i + 1))
		done
		c0=$(tree_cpu "$ternd_pid")
		w0=$(date +%s.%N)
		curl -sf "$@" >/dev/null || die "scraping $url failed"
		w1=$(date +%s.%N)
		c1=$(tree_cpu "$ternd_pid")
		scrape_cost=$(awk -v t="$((c1 - c0))" -v w0="$w0" -v w1="$w1" \
		    -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "1000 scrapes" \
		    " in a row: %.3f ms of ternd CPU and %.3f ms of wall time" \
		    " each", t / hz, (w1 - w0) }')
	fi
	problems "$T/ternd.log" ternd
fi
if has postfix; then
	measure postfix "$pf_port" "$pf_master" postfix_queued
	pf_elapsed=$elapsed
	pf_rate=$rate
	pf_check=$check
	problems "$T/pf/maillog" postfix
fi
floor_line=
[ "$floor" = yes ] && measure_floor
tern_sc=
pf_sc=
if [ "$syscalls" -gt 0 ]; then
	if has tern; then
		count_syscalls tern "$tern_port" "$ternd_pid" tern_queued
		tern_sc=$syscalls_line
	fi
	if has postfix; then
		count_syscalls postfix "$pf_port" "$pf_master" postfix_queued
		pf_sc=$syscalls_line
	fi
fi

echo
echo "== relay: $messages messages of $size octets, $sessions parallel" \
    "sessions, $conn_desc, each server to its own smtp-sink; BENCH_LOAD=$load"
case "$load" in
cpu)	echo "   competing: stress-ng --cpu 2 during each timed run" ;;
fsync)	echo "   competing: 4 KiB written and synced in a loop, in $tmpbase," \
	    "during each timed run" ;;
esac
[ -n "$milter" ] && echo "   every message through the filter at $milter" \
    "(smtpd_milters, both servers)"
has tern && printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
    tern "$messages" "$tern_elapsed" "$tern_rate" "$tern_check"
if has tern && [ "$scrape" = yes ]; then
	printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
	    "tern+1s" "$messages" "$scraped_elapsed" "$scraped_rate" \
	    "$scraped_check"
	printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
	    tern "$messages" "$again_elapsed" "$again_rate" "$again_check"
	awk -v a="$scraped_rate" -v b="$tern_rate" -v c="$again_rate" \
	    'BEGIN { printf "scraping every second: %+.1f%% throughput " \
	    "against the mean of the runs without\n",
	    (a / ((b + c) / 2) - 1) * 100 }'
	echo "metrics: $scrape_cost"
fi
has postfix && printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
    postfix "$messages" "$pf_elapsed" "$pf_rate" "$pf_check"
[ -n "$floor_line" ] && echo "$floor_line"
if [ "$syscalls" -gt 0 ]; then
	echo "system calls, $syscalls more messages each under strace -f -c" \
	    "(every process of the server, not timed):"
	[ -n "$tern_sc" ] && echo "$tern_sc"
	[ -n "$pf_sc" ] && echo "$pf_sc"
fi
if has tern && has postfix; then
	awk -v a="$tern_rate" -v b="$pf_rate" -v l="$load" \
	    'BEGIN { printf "ratio tern/postfix: %.2f (BENCH_LOAD=%s)\n", a / b,
	    l }'
fi
exit 0
