#!/bin/sh
# tern quick start.
#
#   contrib/quickstart.sh run    install what is missing, build, and run
#                                ternd in the foreground on its built-in
#                                configuration (127.0.0.1:2525, spool in
#                                ./tern-data)
#   contrib/quickstart.sh test   install what is missing, build, and run
#                                every test (make check)
#
# Builds in ./build.  Set CONFIGURE_FLAGS (e.g. --enable-sanitizers) to
# change how.  As root, missing Debian packages are installed with apt-get;
# otherwise the script names them and stops.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build="$top/build"

build_pkgs="gcc make autoconf automake pkg-config libevent-dev libssl-dev
libc-ares-dev libinih-dev libcrypt-dev check"
test_pkgs="python3 mandoc dnsmasq-base openssl pflogsumm dovecot-imapd bsd-mailx
mmdebstrap systemd-container debhelper lintian dpkg-dev fakeroot fail2ban
curl git git-email libmailtools-perl msmtp libauthen-sasl-perl
libio-socket-ssl-perl rspamd opendkim opendkim-tools python3-dkim
python3-milter dovecot-lmtpd haproxy prometheus"
# The fuzz targets (tests/fuzz/) are built with clang and its libFuzzer.
fuzz_pkgs="clang libclang-rt-14-dev"

usage() {
	echo "usage: $0 run|test" >&2
	exit 1
}

missing() {
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'install ok installed'; then
			echo "$p"
		fi
	done
}

install_pkgs() {
	# shellcheck disable=SC2086
	need=$(missing $*)
	[ -z "$need" ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "quickstart: missing Debian packages:" $need >&2
		echo "quickstart: run: sudo apt-get install" $need >&2
		exit 1
	fi
	echo "quickstart: installing" $need
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
}

do_build() {
	cd "$top"
	if [ ! -x configure ] || [ configure.ac -nt configure ] ||
	    [ Makefile.am -nt configure ]; then
		autoreconf -fi
	fi
	mkdir -p "$build"
	cd "$build"
	if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
		# shellcheck disable=SC2086
		"$top/configure" ${CONFIGURE_FLAGS:-} >/dev/null
	fi
	make -j"$(nproc)" >/dev/null
}

# The fuzz targets in a build of their own (./build-fuzz, clang and its
# sanitizers), each run for a short while on its seed corpus.
do_fuzz() {
	mkdir -p "$top/build-fuzz"
	cd "$top/build-fuzz"
	if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
		"$top/configure" --enable-fuzzing >/dev/null
	fi
	make -j"$(nproc)" fuzz-check FUZZ_JOBS="$(nproc)"
}

[ $# -eq 1 ] || usage
case "$1" in
run)
	install_pkgs $build_pkgs
	do_build
	cd "$top"
	exec "$build/src/ternd"
	;;
test)
	install_pkgs $build_pkgs $test_pkgs $fuzz_pkgs
	do_build
	cd "$build"
	rc=0
	make -j"$(nproc)" check || rc=$?
	for f in $(find tests -name '*.trs'); do
		if grep -q '^:test-result: \(FAIL\|ERROR\)' "$f"; then
			echo "==== ${f%.trs}.log"
			tail -n 60 "${f%.trs}.log"
		fi
	done
	# Test cases, summed over the Check suites and the e2e files.
	set -- $(cat $(find tests -name '*.log' ! -name test-suite.log) \
	    /dev/null | awk '
	    /^[0-9]+%: Checks: / {
		gsub(",", ""); p += $3 - $5 - $7; f += $5 + $7 }
	    /^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3 }
	    END { print p + 0, f + 0 }')
	pass=$1 fail=$2
	# Each fuzz target counts as one test; a build failure as one failed.
	frc=0
	(do_fuzz) >"$build/fuzz.log" 2>&1 || frc=$?
	grep '^fuzz: ' "$build/fuzz.log" || tail -n 30 "$build/fuzz.log"
	set -- $(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' \
	    "$build/fuzz.log") 0 0
	[ "$frc" -ne 0 ] && [ "$2" -eq 0 ] && set -- "$1" 1
	pass=$((pass + $1)) fail=$((fail + $2))
	if grep -q '^:test-result: \(FAIL\|ERROR\)' \
	    $(find tests -name '*.trs') /dev/null; then
		[ "$fail" -gt 0 ] || fail=1
	fi
	echo "tests: $pass passed, $fail failed"
	[ "$rc" -eq 0 ] && [ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
	;;
*)
	usage
	;;
esac
