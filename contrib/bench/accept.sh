#!/bin/sh
# Acceptance benchmark: ternd against Postfix on the same machine, in the
# same run.  See contrib/bench/README.
#
#   contrib/bench/accept.sh [all|rate|idle|latency]
#
#   rate     messages per second accepted (SMTP in, committed to the
#            spool, 250 answered) from smtp-source: ternd, then a private
#            Postfix instance, and the ratio tern/Postfix
#   idle     memory per idle SMTP session (after EHLO): ternd at
#            BENCH_IDLE sessions, Postfix at its process limit
#   latency  one client sending one message at a time: milliseconds from
#            the final "." of DATA to the 250, p50, p99 and max
#   all      all three (the default)
#
# Everything runs on loopback, in a temporary directory, and is stopped
# and removed at exit.  The system's own mail service is never touched.
# As root, missing Debian packages (postfix for smtp-source, python3) are
# installed with apt-get.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"

TERND=${BENCH_TERND:-${TERND:-$top/build/src/ternd}}
messages=${BENCH_MESSAGES:-5000}
clients=${BENCH_CLIENTS:-20}
size=${BENCH_SIZE:-4096}
warmup=${BENCH_WARMUP:-200}
lat_messages=${BENCH_LATENCY_MESSAGES:-1000}
reuse=${BENCH_REUSE:-no}
idle=${BENCH_IDLE:-10000}
pf_idle=${BENCH_POSTFIX_IDLE:-100}
idle_probes=${BENCH_IDLE_PROBES:-20}
pf_mode=${BENCH_POSTFIX_MODE:-hold}
servers=${BENCH_SERVERS:-tern postfix}
run_timeout=${BENCH_TIMEOUT:-180}
tmpbase=${BENCH_TMPDIR:-/var/tmp}
keep=${BENCH_KEEP:-no}

what=${1:-all}
case "$what" in
all|rate|idle|latency) ;;
*)	echo "usage: $0 [all|rate|idle|latency]" >&2; exit 1 ;;
esac
case "$pf_mode" in
hold|relay) ;;
*)	echo "bench: BENCH_POSTFIX_MODE must be hold or relay" >&2; exit 1 ;;
esac

T=
ternd_pid=
sink_pid=
dns_pid=
pf_started=
failed=

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$top/contrib/bench/lib.sh"

# Stop what we started, by pid or by the private instance's own command.
cleanup() {
	set +e
	[ -n "$ternd_pid" ] && stop_pid "$ternd_pid" ternd
	pf_stop
	[ -n "$sink_pid" ] && stop_pid "$sink_pid" smtp-sink
	[ -n "$dns_pid" ] && stop_pid "$dns_pid" "silent DNS server"
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

now() {
	date +%s.%N
}

# smtp-source with the benchmark's parameters: name port count rcpt.
source_run() {
	# shellcheck disable=SC2086
	timeout "$run_timeout" /usr/sbin/smtp-source $source_opts \
	    -s "$clients" -m "$3" -l "$size" -M client.bench.test \
	    -f sender@bench.test -t "$4" "127.0.0.1:$2" \
	    >>"$T/$1-source.out" 2>&1
}

# Timed run: name port count rcpt counter [pid].  Sets elapsed, rate,
# got (how many more messages the counter function finds than before)
# and, given a pid, ticks: its CPU time during the timed part, in clock
# ticks (the warm-up not included).
timed_run() {
	if [ "$warmup" -gt 0 ]; then
		source_run "$1" "$2" "$warmup" "$4" ||
		    die "$1: warm-up run failed:" \
		    "$(tail -n 3 "$T/$1-source.out")"
	fi
	before=$($5)
	[ -n "${6:-}" ] && c0=$(cpu_ticks "$6")
	t0=$(now)
	rc=0
	source_run "$1" "$2" "$3" "$4" || rc=$?
	t1=$(now)
	[ -n "${6:-}" ] && ticks=$(($(cpu_ticks "$6") - c0))
	got=$(($($5) - before))
	if [ "$rc" -eq 124 ]; then
		die "$1: smtp-source did not finish within ${run_timeout}s" \
		    "(stall?): $(tail -n 3 "$T/$1-source.out")"
	elif [ "$rc" -ne 0 ]; then
		die "$1: smtp-source failed (exit $rc):" \
		    "$(tail -n 3 "$T/$1-source.out")"
	fi
	elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	rate=$(awk -v n="$3" -v e="$elapsed" 'BEGIN { printf "%.1f", n / e }')
}

tern_count() {
	count_files "$T/tern/spool/queue" '*.env'
}

postfix_count() {
	count_files "$T/pf/queue/hold"
}

# ---------------------------------------------------------------- ternd

# A DNS server that never answers: a relayed message then waits in the
# queue for its MX lookup, so nothing but the acceptance is measured, as
# Postfix's hold mode measures it.  Sets dns_port.
start_silent_dns() {
	python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(86400)' >"$T/dns.port" &
	dns_pid=$!
	i=0
	while [ ! -s "$T/dns.port" ] && [ "$i" -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	dns_port=$(cat "$T/dns.port")
	[ -n "$dns_port" ] || die "the silent DNS server did not start"
}

# Relay mode: the smtp-sink both servers relay to, in turn.  Sets
# sink_port.
start_sink() {
	sink_port=$(free_port)
	sink_user=
	[ "$(id -u)" -eq 0 ] && sink_user="-u nobody"
	# shellcheck disable=SC2086
	/usr/sbin/smtp-sink $sink_user "127.0.0.1:$sink_port" 256 \
	    >"$T/sink.out" 2>&1 &
	sink_pid=$!
	wait_port "$sink_port" || die "smtp-sink did not start"
}

start_ternd() {
	[ -x "$TERND" ] || die "no ternd at $TERND (build it, or set TERND)"
	tern_port=$(free_port)
	start_silent_dns
	# Relay mode: everything to the sink, as Postfix's relayhost.
	tern_gateway=
	if [ "$pf_mode" = relay ]; then
		tern_gateway="gateway = 127.0.0.1:$sink_port
gateway_all = yes"
	fi
	mkdir -p "$T/tern"
	# As root, ternd drops to a user of its own: nobody will do here.
	run_as=
	if [ "$(id -u)" -eq 0 ]; then
		run_as="user = nobody"
		tern_spool_prepare "$T/tern/spool" nobody
	fi
	cat >"$T/tern/tern.ini" <<EOF
[main]
hostname = bench.test
spool = $T/tern/spool
log = stderr
shutdown_timeout = 5s
$run_as

[smtp]
listen = 127.0.0.1:$tern_port
max_connections = $((idle + clients + 100))
max_connections_per_ip = 0
local_domains = bench.test
relay_networks = 127.0.0.0/8

[local]
# Never the host's default mailbox root.
mailboxes = $T/tern/mail

[delivery]
dns_servers = 127.0.0.1:$dns_port
$tern_gateway
EOF
	"$TERND" -c "$T/tern/tern.ini" 2>"$T/ternd.log" &
	ternd_pid=$!
	wait_port "$tern_port" ||
	    die "ternd did not start: $(tail -n 5 "$T/ternd.log")"
	kill -0 "$ternd_pid" 2>/dev/null ||
	    die "ternd exited: $(tail -n 5 "$T/ternd.log")"
	say "ternd $ternd_pid on 127.0.0.1:$tern_port," \
	    "spool $T/tern/spool (nofile limit" \
	    "$(awk '/Max open files/ {print $4}' /proc/$ternd_pid/limits))"
}

ternd_alive() {
	kill -0 "$ternd_pid" 2>/dev/null ||
	    die "ternd died ($1): $(tail -n 5 "$T/ternd.log")"
}

# -------------------------------------------------------------- Postfix

# A private instance: own configuration, queue and data directories,
# listening on one loopback port, never delivering anywhere but to a
# local smtp-sink (relay mode) or nowhere at all (hold mode).
start_postfix() {
	if [ "$pf_mode" = relay ]; then
		pf_main_extra="relayhost = [127.0.0.1]:$sink_port"
	else
		# Every message goes to the hold queue once committed, so
		# nothing runs after the 250 (as for ternd, whose messages
		# wait for a DNS answer that never comes).  Flow control would
		# otherwise slow smtpd down when no queue manager takes
		# messages in.
		pf_main_extra="in_flow_delay = 0
smtpd_data_restrictions = check_client_access static:HOLD"
	fi
	pf_start
	pf_limit=$(postconf -c "$T/pf/etc" -h default_process_limit)
	say "postfix master $pf_master on 127.0.0.1:$pf_port" \
	    "(mode $pf_mode, smtpd process limit $pf_limit)"
}

# ---------------------------------------------------------------- tests

# One descriptor per session in ternd and in the client: raise the limit
# both inherit, or cut the test down to what fits.
raise_nofile() {
	want=$((idle + 200))
	hard=$(ulimit -Hn)
	[ "$hard" = unlimited ] && return 0
	[ "$hard" -ge "$want" ] && return 0
	if (ulimit -n "$want") 2>/dev/null; then
		ulimit -n "$want"
		return 0
	fi
	idle=$((hard - 200))
	say "open files hard limit is $hard and cannot be raised:" \
	    "measuring $idle idle sessions instead"
}

idle_tern() {
	say "tern: opening $idle idle sessions"
	python3 "$here/idle_sessions.py" -n "$idle" --port "$tern_port" \
	    --pid "$ternd_pid" --timeout 120 --probe "$idle_probes" >"$T/tern-idle.out" 2>&1 || true
	sed 's/^/  /' "$T/tern-idle.out"
	ternd_alive "idle sessions"
	tern_idle=$(sed -n 's/^RESULT //p' "$T/tern-idle.out")
	[ -n "$tern_idle" ] || die "tern: idle session test gave no result"
}

idle_postfix() {
	say "postfix: opening $pf_idle idle sessions"
	python3 "$here/idle_sessions.py" -n "$pf_idle" --port "$pf_port" \
	    --tree "$pf_master" --timeout 60 >"$T/postfix-idle.out" 2>&1 ||
	    true
	sed 's/^/  /' "$T/postfix-idle.out"
	pf_idle_res=$(sed -n 's/^RESULT //p' "$T/postfix-idle.out")
	[ -n "$pf_idle_res" ] || die "postfix: idle session test gave no result"
}

# User plus system CPU time of one process, in clock ticks.
cpu_ticks() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

rate_tern() {
	say "tern: $warmup warm-up + $messages timed messages"
	timed_run tern "$tern_port" "$messages" rcpt@relay.bench.test \
	    tern_count "$ternd_pid"
	ternd_alive "rate test"
	tern_cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" \
	    -v e="$elapsed" 'BEGIN { printf "ternd CPU %.1f s = %.0f%% of " \
	    "one core", t / hz, 100 * t / hz / e }')
	tern_elapsed=$elapsed
	tern_rate=$rate
	if [ "$pf_mode" = relay ]; then
		tern_check="relayed to smtp-sink; $tern_cpu"
	else
		tern_check="$got in the spool; $tern_cpu"
		[ "$got" -eq "$messages" ] ||
		    die "tern: expected $messages new messages in the" \
		    "spool, found $got"
	fi
	problems "$T/ternd.log" ternd
}

rate_postfix() {
	say "postfix: $warmup warm-up + $messages timed messages"
	timed_run postfix "$pf_port" "$messages" rcpt@relay.bench.test \
	    postfix_count
	pf_elapsed=$elapsed
	pf_rate=$rate
	problems "$T/pf/maillog" postfix
	if [ "$pf_mode" = hold ]; then
		pf_check="$got in the hold queue"
		[ "$got" -eq "$messages" ] ||
		    die "postfix: expected $messages new messages in the" \
		    "hold queue, found $got"
	else
		pf_check="relayed to smtp-sink"
	fi
}

# One client, one message at a time: name port count rcpt.  Over one
# connection (greeting and EHLO once) it runs a transaction per message,
# MAIL, RCPT, DATA and the message each waiting for the reply, and times
# the last step: from the write of the final ".", sent on its own after
# the message (TCP_NODELAY), to the end of the 250.  BENCH_WARMUP
# transactions come first and are not counted.  Sets lat_res to
#   RESULT sent=N p50=X p99=X max=X mean=X
# (milliseconds, nearest rank).  Fails when a reply is not the one due
# or does not come within 60 seconds.
latency_run() {
	rc=0
	python3 - "$2" "$warmup" "$3" "$size" "$4" >"$T/$1-latency.out" 2>&1 \
	    <<'EOF' || rc=$?
import socket, sys, time

port, warmup, count, size, rcpt = sys.argv[1:6]
port, warmup, count, size = int(port), int(warmup), int(count), int(size)

def reply(f, want, what):
    """One SMTP reply, all its lines; its code must be want."""
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("connection closed after %s" % what)
        if line[3:4] != b"-":
            break
    if not line.startswith(want):
        raise SystemExit("%s: %s" % (what, line.decode("ascii", "replace")
                                     .rstrip()))

# Lines of 78 octets and a shorter last one: size octets of body (one
# less when a line of one octet would be left), the CRLFs included.
line = b"x" * 76 + b"\r\n"
rest = size % len(line)
body = line * (size // len(line))
if rest >= 2:
    body += b"y" * (rest - 2) + b"\r\n"

sock = socket.create_connection(("127.0.0.1", port), 30)
sock.settimeout(60)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
f = sock.makefile("rb")
reply(f, b"220", "greeting")
sock.sendall(b"EHLO client.bench.test\r\n")
reply(f, b"250", "EHLO")
lat = []
for i in range(warmup + count):
    sock.sendall(b"MAIL FROM:<sender@bench.test>\r\n")
    reply(f, b"250", "MAIL")
    sock.sendall(("RCPT TO:<%d%s>\r\n" % (i, rcpt)).encode())
    reply(f, b"250", "RCPT")
    sock.sendall(b"DATA\r\n")
    reply(f, b"354", "DATA")
    sock.sendall(("From: <sender@bench.test>\r\nTo: <%d%s>\r\n"
                  "Subject: latency %d\r\nMessage-Id: <%d.%f@bench.test>\r\n"
                  "\r\n" % (i, rcpt, i, i, time.time())).encode() + body)
    t0 = time.perf_counter()
    sock.sendall(b".\r\n")
    reply(f, b"250", "end of data")
    if i >= warmup:
        lat.append((time.perf_counter() - t0) * 1000.0)
sock.sendall(b"QUIT\r\n")
reply(f, b"221", "QUIT")
lat.sort()
def pct(p):
    return lat[min(len(lat) - 1, int(len(lat) * p))]
print("RESULT sent=%d p50=%.2f p99=%.2f max=%.2f mean=%.2f" %
      (len(lat), pct(0.50), pct(0.99), lat[-1], sum(lat) / len(lat)))
EOF
	[ "$rc" -eq 0 ] || die "$1: the latency client failed (exit $rc):" \
	    "$(tail -n 3 "$T/$1-latency.out")"
	lat_res=$(sed -n 's/^RESULT //p' "$T/$1-latency.out")
	[ "$(field "$lat_res" sent)" = "$3" ] ||
	    die "$1: the latency client gave no result:" \
	    "$(tail -n 3 "$T/$1-latency.out")"
}

# The latency test of one server: name port counter.  Sets lat_line,
# lat_p50 and lat_p99.
latency_server() {
	say "$1: $warmup warm-up + $lat_messages timed messages, one at a time"
	before=$($3)
	latency_run "$1" "$2" "$lat_messages" rcpt@relay.bench.test
	if [ "$pf_mode" = relay ]; then
		# Relayed, they leave the queue: the client checked each 250.
		done_what="$((warmup + $(field "$lat_res" sent))) answered 250"
	else
		got=$(($($3) - before))
		[ "$got" -eq $((warmup + lat_messages)) ] ||
		    die "$1: expected $((warmup + lat_messages)) new" \
		    "messages committed, found $got"
		done_what="$got committed"
	fi
	fmt='%-8s %6d msgs  p50 %7.2f ms  p99 %7.2f ms  max %8.2f ms'
	fmt="$fmt  (mean %.2f ms; %s; load average %s)"
	# shellcheck disable=SC2059
	lat_line=$(printf "$fmt" "$1" "$lat_messages" "$(field "$lat_res" p50)" \
	    "$(field "$lat_res" p99)" "$(field "$lat_res" max)" \
	    "$(field "$lat_res" mean)" "$done_what" \
	    "$(cut -d' ' -f1-3 /proc/loadavg)")
	lat_p50=$(field "$lat_res" p50)
	lat_p99=$(field "$lat_res" p99)
}

# Whether the run includes a test: rate, idle or latency.
wants() {
	[ "$what" = all ] || [ "$what" = "$1" ]
}

# ----------------------------------------------------------------- main

install_pkgs
[ -d "$tmpbase" ] || die "no directory $tmpbase (BENCH_TMPDIR)"
T=$(mktemp -d "$tmpbase/tern-bench.XXXXXX")
# Postfix's daemons run as the postfix user and must reach their queue.
chmod 755 "$T"

if [ "$reuse" = yes ]; then
	source_opts="-N -d"
	conn_desc="one connection per session, reused (-d)"
else
	source_opts="-N"
	conn_desc="a new connection per message"
fi

say "$(nproc) CPUs; spools in $T ($(df -PT "$T" | awk 'NR == 2 {print $2}'))"
[ "$pf_mode" = relay ] && start_sink
if has tern; then
	wants idle && raise_nofile
	start_ternd
fi
has postfix && start_postfix

# Idle sessions first, while each server is fresh, so the figure is
# not hidden by memory an earlier test left in its heap.
if wants idle; then
	has tern && idle_tern
	has postfix && idle_postfix
	sleep 2
fi
# The lone client next, while the queues hold little: ternd's queued
# messages wait on DNS lookups, which would otherwise time out meanwhile.
if wants latency; then
	if has tern; then
		latency_server tern "$tern_port" tern_count
		tern_lat=$lat_line
		tern_p50=$lat_p50
		tern_p99=$lat_p99
	fi
	if has postfix; then
		latency_server postfix "$pf_port" postfix_count
		pf_lat=$lat_line
		pf_p50=$lat_p50
		pf_p99=$lat_p99
	fi
fi
if wants rate; then
	has tern && rate_tern
	has postfix && rate_postfix
fi

echo
if wants latency; then
	echo "== lone-client latency: $lat_messages messages of $size octets," \
	    "one at a time over one connection (a new transaction each);"
	echo "   time from sending the final \".\" of DATA to the 250," \
	    "after $warmup untimed"
	has tern && echo "$tern_lat"
	has postfix && echo "$pf_lat"
	if has tern && has postfix; then
		awk -v a="$tern_p50" -v b="$pf_p50" -v c="$tern_p99" \
		    -v d="$pf_p99" 'BEGIN { printf "ratio tern/postfix:" \
		    " p50 %.2f, p99 %.2f (below 1: tern answers sooner)\n",
		    a / b, c / d }'
	fi
fi
if wants rate; then
	echo "== acceptance: $messages messages of $size octets, $clients" \
	    "parallel sessions, $conn_desc"
	has tern && printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
	    tern "$messages" "$tern_elapsed" "$tern_rate" "$tern_check"
	has postfix && printf '%-8s %6d msgs in %8.3f s  %9.1f msgs/s  (%s)\n' \
	    postfix "$messages" "$pf_elapsed" "$pf_rate" "$pf_check"
	if has tern && has postfix; then
		awk -v a="$tern_rate" -v b="$pf_rate" \
		    'BEGIN { printf "ratio tern/postfix: %.2f\n", a / b }'
	fi
fi
if wants idle; then
	echo "== memory per idle session (after EHLO)"
	field() {
		echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
	}
	if has tern; then
		per=$(field "$tern_idle" per_session_kib)
		goal=$(awk -v p="$per" \
		    'BEGIN { print p <= 1 ? "met" : "missed" }')
		printf '%-8s %6d sessions  RSS %d -> %d KiB  %.2f KiB/session' \
		    tern "$(field "$tern_idle" sessions)" \
		    "$(field "$tern_idle" before_kib)" \
		    "$(field "$tern_idle" after_kib)" "$per"
		printf '  (%s failed, %s dropped; goal <= 1 KiB: %s)\n' \
		    "$(field "$tern_idle" failed)" \
		    "$(field "$tern_idle" dropped)" \
		    "$goal"
		if [ -n "$(field "$tern_idle" probes)" ]; then
			gmax=$(field "$tern_idle" greet_ms_max)
			tmax=$(field "$tern_idle" tx_ms_max)
			printf '%-8s %6d new clients meanwhile: greeted in' \
			    "" "$(field "$tern_idle" probes)"
			printf ' %s ms (max %s), transaction in %s ms (max %s)' \
			    "$(field "$tern_idle" greet_ms_p50)" "$gmax" \
			    "$(field "$tern_idle" tx_ms_p50)" "$tmax"
			printf '  (goals 10 and 50 ms: %s)\n' "$(awk \
			    -v g="$gmax" -v t="$tmax" 'BEGIN { print \
			    g <= 10 && t <= 50 ? "met" : "missed" }')"
		fi
	fi
	if has postfix; then
		printf '%-8s %6d sessions  Pss %d -> %d KiB  %.2f KiB/session' \
		    postfix "$(field "$pf_idle_res" sessions)" \
		    "$(field "$pf_idle_res" before_kib)" \
		    "$(field "$pf_idle_res" after_kib)" \
		    "$(field "$pf_idle_res" per_session_kib)"
		printf '  (one smtpd per session; limit %s)\n' "$pf_limit"
	fi
fi
exit 0
