#!/bin/sh
# Acceptance benchmark: ternd against Postfix on the same machine, in the
# same run.  See contrib/bench/README.
#
#   contrib/bench/accept.sh [all|rate|idle]
#
#   rate   messages per second accepted (SMTP in, committed to the spool,
#          250 answered) from smtp-source: ternd, then a private Postfix
#          instance, and the ratio tern/Postfix
#   idle   memory per idle SMTP session (after EHLO): ternd at
#          BENCH_IDLE sessions, Postfix at its process limit
#   all    both (the default)
#
# Everything runs on loopback, in a temporary directory, and is stopped
# and removed at exit.  The system's own mail service is never touched.
# As root, missing Debian packages (postfix for smtp-source, python3) are
# installed with apt-get.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"

TERND=${TERND:-$top/build/src/ternd}
messages=${BENCH_MESSAGES:-5000}
clients=${BENCH_CLIENTS:-20}
size=${BENCH_SIZE:-4096}
warmup=${BENCH_WARMUP:-200}
reuse=${BENCH_REUSE:-no}
idle=${BENCH_IDLE:-10000}
pf_idle=${BENCH_POSTFIX_IDLE:-100}
pf_mode=${BENCH_POSTFIX_MODE:-hold}
servers=${BENCH_SERVERS:-tern postfix}
run_timeout=${BENCH_TIMEOUT:-180}
tmpbase=${BENCH_TMPDIR:-/var/tmp}
keep=${BENCH_KEEP:-no}

what=${1:-all}
case "$what" in
all|rate|idle) ;;
*)	echo "usage: $0 [all|rate|idle]" >&2; exit 1 ;;
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

say() {
	echo "bench: $*"
}

die() {
	echo "bench: $*" >&2
	failed=yes
	exit 1
}

has() {
	case " $servers " in
	*" $1 "*) return 0 ;;
	esac
	return 1
}

# Stop what we started, by pid or by the private instance's own command.
cleanup() {
	set +e
	if [ -n "$ternd_pid" ] && kill -0 "$ternd_pid" 2>/dev/null; then
		kill -TERM "$ternd_pid"
		i=0
		while kill -0 "$ternd_pid" 2>/dev/null && [ "$i" -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$ternd_pid" 2>/dev/null; then
			echo "bench: ternd did not stop on SIGTERM;" \
			    "killing it" >&2
			kill -KILL "$ternd_pid"
		fi
		wait "$ternd_pid" 2>/dev/null
	fi
	if [ -n "$pf_started" ]; then
		postfix -c "$T/pf/etc" stop >/dev/null 2>&1
		# master waits for its children; give it a moment.
		i=0
		while [ -f "$T/pf/queue/pid/master.pid" ] &&
		    kill -0 "$(awk '{print $1}' "$T/pf/queue/pid/master.pid")" \
		    2>/dev/null && [ "$i" -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	if [ -n "$sink_pid" ]; then
		kill -TERM "$sink_pid" 2>/dev/null
		wait "$sink_pid" 2>/dev/null
	fi
	if [ -n "$dns_pid" ]; then
		kill -TERM "$dns_pid" 2>/dev/null
		wait "$dns_pid" 2>/dev/null
	fi
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

install_pkgs() {
	need=
	[ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/postfix ] ||
	    need="$need postfix"
	command -v python3 >/dev/null 2>&1 || need="$need python3"
	[ -z "$need" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing Debian packages:$need (run as root to install)"
	fi
	say "installing$need"
	echo "postfix postfix/main_mailer_type select No configuration" |
	    debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
}

free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

now() {
	date +%s.%N
}

# Wait until something accepts connections on 127.0.0.1:$1.
wait_port() {
	python3 - "$1" <<'EOF'
import socket, sys, time
end = time.monotonic() + 15
while time.monotonic() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
}

# smtp-source with the benchmark's parameters: name port count rcpt.
source_run() {
	# shellcheck disable=SC2086
	timeout "$run_timeout" /usr/sbin/smtp-source $source_opts \
	    -s "$clients" -m "$3" -l "$size" -M client.bench.test \
	    -f sender@bench.test -t "$4" "127.0.0.1:$2" \
	    >>"$T/$1-source.out" 2>&1
}

# Timed run: name port count rcpt counter.  Sets elapsed, rate and got
# (how many more messages the counter function finds than before).
timed_run() {
	if [ "$warmup" -gt 0 ]; then
		source_run "$1" "$2" "$warmup" "$4" ||
		    die "$1: warm-up run failed:" \
		    "$(tail -n 3 "$T/$1-source.out")"
	fi
	before=$($5)
	t0=$(now)
	rc=0
	source_run "$1" "$2" "$3" "$4" || rc=$?
	t1=$(now)
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

count_files() {
	find "$1" -type f -name "${2:-*}" 2>/dev/null | wc -l | tr -d ' '
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

start_ternd() {
	[ -x "$TERND" ] || die "no ternd at $TERND (build it, or set TERND)"
	tern_port=$(free_port)
	start_silent_dns
	mkdir -p "$T/tern"
	# As root, ternd drops to a user of its own: nobody will do here.
	run_as=
	if [ "$(id -u)" -eq 0 ]; then
		run_as="user = nobody"
		# As an installer does: ternd as root only checks maildrop/.
		mkdir -p "$T/tern/spool"
		install -d -o nobody -g "$(id -gn nobody)" -m 3733 \
		    "$T/tern/spool/maildrop"
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
	pf_port=$(free_port)
	mkdir -p "$T/pf/etc" "$T/pf/queue" "$T/pf/data"
	chown postfix "$T/pf/data"
	chmod 700 "$T/pf/data"
	if [ "$pf_mode" = relay ]; then
		sink_port=$(free_port)
		sink_user=
		[ "$(id -u)" -eq 0 ] && sink_user="-u nobody"
		# shellcheck disable=SC2086
		/usr/sbin/smtp-sink $sink_user "127.0.0.1:$sink_port" 256 \
		    >"$T/sink.out" 2>&1 &
		sink_pid=$!
		wait_port "$sink_port" || die "smtp-sink did not start"
		mode_cf="relayhost = [127.0.0.1]:$sink_port"
	else
		# Every message goes to the hold queue once committed, so
		# nothing runs after the 250 (as for ternd, whose messages
		# wait for a DNS answer that never comes).  Flow control would
		# otherwise slow smtpd down when no queue manager takes
		# messages in.
		mode_cf="in_flow_delay = 0
smtpd_data_restrictions = check_client_access static:HOLD"
	fi
	cat >"$T/pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $T/pf/queue
data_directory = $T/pf/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
maillog_file_prefixes = $T/pf
maillog_file = $T/pf/maillog
syslog_name = postfix-bench
biff = no
$mode_cf
EOF
	cat >"$T/pf/etc/master.cf" <<EOF
127.0.0.1:$pf_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	postfix -c "$T/pf/etc" check >"$T/pf/check.out" 2>&1 ||
	    die "postfix check failed: $(cat "$T/pf/check.out")" \
	    "$(tail -n 5 "$T/pf/maillog" 2>/dev/null)"
	pf_started=yes
	postfix -c "$T/pf/etc" start >"$T/pf/start.out" 2>&1 ||
	    die "postfix did not start: $(cat "$T/pf/start.out")" \
	    "$(tail -n 5 "$T/pf/maillog" 2>/dev/null)"
	wait_port "$pf_port" || die "postfix is not listening on $pf_port"
	pf_master=$(awk '{print $1}' "$T/pf/queue/pid/master.pid")
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
	    --pid "$ternd_pid" --timeout 120 >"$T/tern-idle.out" 2>&1 || true
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

# Log lines that speak of trouble, without their time stamps, counted.
problems() {
	lines=$(sed 's/^[^]]*\]: //' "$1" | grep -v 'errors=0' |
	    grep -iE 'fatal|warn|error|fail|refused|timeout|denied' |
	    sort | uniq -c | sort -rn | head -n 10) || true
	if [ -n "$lines" ]; then
		say "$2 logged problems:"
		echo "$lines" | sed 's/^/  /'
	fi
}

# User plus system CPU time of one process, in clock ticks.
cpu_ticks() {
	awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

rate_tern() {
	say "tern: $warmup warm-up + $messages timed messages"
	c0=$(cpu_ticks "$ternd_pid")
	timed_run tern "$tern_port" "$messages" rcpt@relay.bench.test \
	    tern_count
	ternd_alive "rate test"
	c1=$(cpu_ticks "$ternd_pid")
	tern_cpu=$(awk -v t="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" \
	    -v e="$elapsed" 'BEGIN { printf "ternd CPU %.1f s = %.0f%% of " \
	    "one core", t / hz, 100 * t / hz / e }')
	tern_elapsed=$elapsed
	tern_rate=$rate
	tern_check="$got in the spool; $tern_cpu"
	[ "$got" -eq "$messages" ] ||
	    die "tern: expected $messages new messages in the spool," \
	    "found $got"
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
if has tern; then
	[ "$what" != rate ] && raise_nofile
	start_ternd
fi
has postfix && start_postfix

# Idle sessions first, while each server is fresh, so the figure is
# not hidden by memory an earlier test left in its heap.
if [ "$what" != rate ]; then
	has tern && idle_tern
	has postfix && idle_postfix
	sleep 2
fi
if [ "$what" != idle ]; then
	has tern && rate_tern
	has postfix && rate_postfix
fi

echo
if [ "$what" != idle ]; then
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
if [ "$what" != rate ]; then
	echo "== memory per idle session (after EHLO)"
	field() {
		echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
	}
	if has tern; then
		per=$(field "$tern_idle" per_session_kib)
		goal=$(awk -v p="$per" \
		    'BEGIN { print p <= 8 ? "met" : "missed" }')
		printf '%-8s %6d sessions  RSS %d -> %d KiB  %.2f KiB/session' \
		    tern "$(field "$tern_idle" sessions)" \
		    "$(field "$tern_idle" before_kib)" \
		    "$(field "$tern_idle" after_kib)" "$per"
		printf '  (%s failed, %s dropped; goal <= 8 KiB: %s)\n' \
		    "$(field "$tern_idle" failed)" \
		    "$(field "$tern_idle" dropped)" \
		    "$goal"
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
