# shellcheck shell=sh disable=SC2034,SC2154
# Shared pieces of the benchmarks in contrib/bench/, sourced by each
# script after it has set its own variables:
#
#   T          the run's temporary directory (set before pf_start)
#   servers    the servers to measure ("tern postfix" by default)
#   failed     set to yes by die, so that cleanup keeps $T
#
# The private Postfix instance (pf_start, pf_stop) has its own
# configuration, queue and data directories under $T/pf, listens on one
# loopback port and logs to $T/pf/maillog; a script adds what its run
# needs through pf_main_extra (main.cf lines) and pf_master_extra
# (master.cf lines).  The system's own mail service is never touched.

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

# Send SIGTERM to one process we started and wait (up to 10 s) for it to
# go; SIGKILL if it does not: pid name.
stop_pid() {
	kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1"
	i=0
	while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if kill -0 "$1" 2>/dev/null; then
		echo "bench: $2 did not stop on SIGTERM; killing it" >&2
		kill -KILL "$1"
	fi
	wait "$1" 2>/dev/null
}

# Missing Debian packages, installed as root: postfix (smtp-source,
# smtp-sink and the postfix command), python3 and the script's own
# bench_pkgs ("package:path-it-provides" words).
install_pkgs() {
	need=
	[ -x /usr/sbin/smtp-source ] && [ -x /usr/sbin/smtp-sink ] &&
	    [ -x /usr/sbin/postfix ] || need="$need postfix"
	command -v python3 >/dev/null 2>&1 || need="$need python3"
	for p in ${bench_pkgs:-}; do
		[ -e "${p#*:}" ] || need="$need ${p%%:*}"
	done
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

count_files() {
	find "$1" -type f -name "${2:-*}" 2>/dev/null | wc -l | tr -d ' '
}

# A field of a "RESULT k=v k=v" line: line key.
field() {
	echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# A process and everything below it: pid what.  what "cpu": their CPU
# time (user + system, in clock ticks), including children that have
# exited and were reaped (their time is in the parent's cutime and
# cstime); "pids": their pids, one "-p PID" each (for strace).
proc_tree() {
	python3 - "$1" "$2" <<'EOF'
import os, sys
stats = {}
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            with open("/proc/%s/stat" % name) as f:
                s = f.read()
        except OSError:
            continue
        # The command name may hold spaces; the fields after it do not.
        stats[int(name)] = s[s.rfind(")") + 2:].split()
children = {}
for pid, f in stats.items():
    children.setdefault(int(f[1]), []).append(pid)
total, pids, todo = 0, [], [int(sys.argv[1])]
while todo:
    pid = todo.pop()
    if pid in stats:
        f = stats[pid]
        total += sum(int(x) for x in f[11:15])
        pids.append(pid)
    todo.extend(children.get(pid, []))
if sys.argv[2] == "cpu":
    print(total)
else:
    print(" ".join("-p %d" % p for p in pids))
EOF
}

tree_cpu() {
	proc_tree "$1" cpu
}

# Log lines that speak of trouble, without their time stamps, counted:
# file name.
problems() {
	lines=$(sed 's/^[^]]*\]: //' "$1" | grep -v 'errors=0' |
	    grep -iE 'fatal|warn|error|fail|refused|timeout|denied' |
	    sort | uniq -c | sort -rn | head -n 10) || true
	if [ -n "$lines" ]; then
		say "$2 logged problems:"
		echo "$lines" | sed 's/^/  /'
	fi
}

# -------------------------------------------------------------- Postfix

# Messages the private Postfix still holds, outside the hold queue.
postfix_queued() {
	n=0
	for q in maildrop incoming active deferred; do
		n=$((n + $(count_files "$T/pf/queue/$q")))
	done
	echo "$n"
}

# Start the private instance.  Sets pf_port, pf_master and pf_started.
# Queue manager and delivery settings stay at Postfix's defaults unless
# pf_main_extra says otherwise.
pf_start() {
	pf_port=$(free_port)
	mkdir -p "$T/pf/etc" "$T/pf/queue" "$T/pf/data"
	chown postfix "$T/pf/data"
	chmod 700 "$T/pf/data"
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
${pf_main_extra:-}
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
${pf_master_extra:-}
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
}

# Stop the private instance if pf_start got as far as starting it; its
# master waits for its children, so give it a moment.
pf_stop() {
	[ -n "${pf_started:-}" ] || return 0
	postfix -c "$T/pf/etc" stop >/dev/null 2>&1
	i=0
	while [ -f "$T/pf/queue/pid/master.pid" ] &&
	    kill -0 "$(awk '{print $1}' "$T/pf/queue/pid/master.pid")" \
	    2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	pf_started=
}

# ---------------------------------------------------------------- ternd

# The spool as an installer leaves it for ternd started as root, which
# only checks maildrop/ (setgid, sticky, owned by the run-as user):
# spool user.
tern_spool_prepare() {
	[ "$(id -u)" -eq 0 ] || return 0
	mkdir -p "$1"
	install -d -o "$2" -g "$(id -gn "$2")" -m 3733 "$1/maildrop"
}
