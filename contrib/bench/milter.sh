#!/bin/sh
# Relay benchmark through content filters: relay.sh with every message
# of both servers (ternd and a private Postfix, in the same run) passing
# through the same milter.  See contrib/bench/README.
#
#   contrib/bench/milter.sh
#
# BENCH_FILTERS (default "none noop opendkim") names the runs, one
# relay.sh run each:
#   none      no filter: the baseline of the same moment
#   noop      noop_milter.c, built here on libmilter: asks for every
#             protocol step and answers "continue" to each, changes
#             nothing
#   opendkim  OpenDKIM signing every message (a 2048-bit RSA key made
#             with opendkim-genkey); relay.sh checks that every message
#             reaching the sink carries a DKIM-Signature
# Every other BENCH_ setting of relay.sh applies.  The filters listen on
# loopback, run from a temporary directory and are stopped at exit.  As
# root, missing Debian packages (libmilter-dev, a C compiler, opendkim,
# opendkim-tools, postfix, python3) are installed with apt-get.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)

filters=${BENCH_FILTERS:-none noop opendkim}
tmpbase=${BENCH_TMPDIR:-/var/tmp}
servers=${BENCH_SERVERS:-tern postfix}
keep=${BENCH_KEEP:-no}

if [ $# -gt 0 ]; then
	echo "usage: $0 (settings in the environment, see" \
	    "contrib/bench/README)" >&2
	exit 1
fi
for f in $filters; do
	case "$f" in
	none|noop|opendkim) ;;
	*)
		echo "bench: unknown filter '$f' in BENCH_FILTERS" \
		    "(none, noop, opendkim)" >&2
		exit 1
		;;
	esac
done

F=
filter_pid=
failed=

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$top/contrib/bench/lib.sh"

cleanup() {
	rc=$?
	set +e
	[ "$rc" -ne 0 ] && failed=yes
	[ -n "$filter_pid" ] && stop_pid "$filter_pid" filter
	if [ -n "$F" ] && [ -d "$F" ]; then
		if [ "$keep" = yes ] || [ -n "$failed" ]; then
			echo "bench: kept $F (filter logs, relay.sh outputs)" >&2
		else
			rm -rf "$F"
		fi
	fi
}
trap cleanup EXIT
trap 'failed=yes; exit 130' INT TERM HUP

bench_pkgs="libmilter-dev:/usr/include/libmilter/mfapi.h gcc:/usr/bin/cc
opendkim:/usr/sbin/opendkim opendkim-tools:/usr/sbin/opendkim-genkey"
install_pkgs

[ -d "$tmpbase" ] || die "no directory $tmpbase (BENCH_TMPDIR)"
F=$(mktemp -d "$tmpbase/tern-bench-milter.XXXXXX")
chmod 755 "$F"

# ------------------------------------------------------------- filters

start_noop() {
	cc -O2 -o "$F/noop_milter" "$top/contrib/bench/noop_milter.c" \
	    -lmilter -pthread 2>"$F/cc.out" ||
	    die "cannot build noop_milter: $(cat "$F/cc.out")"
	port=$(free_port)
	"$F/noop_milter" "inet:$port@127.0.0.1" >"$F/noop.out" 2>&1 &
	filter_pid=$!
	wait_port "$port" ||
	    die "noop_milter did not start: $(cat "$F/noop.out")"
	socket="inet:127.0.0.1:$port"
	expect=
	say "noop_milter $filter_pid on 127.0.0.1:$port"
}

# Signing for bench.test, the domain of smtp-source's sender and From.
start_opendkim() {
	mkdir -p "$F/dkim"
	/usr/sbin/opendkim-genkey -b 2048 -D "$F/dkim" -d bench.test \
	    -s bench >"$F/genkey.out" 2>&1 ||
	    die "opendkim-genkey failed: $(cat "$F/genkey.out")"
	port=$(free_port)
	cat >"$F/dkim/opendkim.conf" <<EOF
Syslog no
Background no
Mode s
Domain bench.test
Selector bench
KeyFile $F/dkim/bench.private
Socket inet:$port@127.0.0.1
PidFile $F/dkim/opendkim.pid
Canonicalization relaxed/simple
InternalHosts 127.0.0.1
RequireSafeKeys false
EOF
	/usr/sbin/opendkim -f -x "$F/dkim/opendkim.conf" \
	    >"$F/opendkim.out" 2>&1 &
	filter_pid=$!
	wait_port "$port" ||
	    die "opendkim did not start: $(cat "$F/opendkim.out")"
	socket="inet:127.0.0.1:$port"
	expect=DKIM-Signature
	say "opendkim $filter_pid on 127.0.0.1:$port, signing bench.test"
}

# ---------------------------------------------------------------- runs

summary=
for f in $filters; do
	socket=
	expect=
	case "$f" in
	noop)		start_noop ;;
	opendkim)	start_opendkim ;;
	esac
	say "relay run through filter: $f"
	BENCH_MILTER=$socket BENCH_EXPECT_HEADER=$expect \
	    BENCH_SERVERS=$servers BENCH_TMPDIR=$tmpbase BENCH_KEEP=$keep \
	    "$top/contrib/bench/relay.sh" 2>&1 | tee "$F/relay-$f.out"
	# The pipeline's status is tee's: look for relay.sh's own result.
	grep -q '^== relay:' "$F/relay-$f.out" ||
	    die "the relay run through $f failed (see above)"
	summary="$summary
$(printf '%-9s' "$f"): $(grep -E '^(tern|postfix) ' "$F/relay-$f.out" |
	    awk '{printf "%s %s msgs/s  ", $1, $7}')$(grep '^ratio' \
	    "$F/relay-$f.out" || true)"
	if [ -n "$filter_pid" ]; then
		stop_pid "$filter_pid" "$f"
		filter_pid=
	fi
done

echo
echo "== relay through filters (msgs/s; load average at the end of each" \
    "run in the lines above)"
echo "$summary" | sed '/^$/d'
exit 0
