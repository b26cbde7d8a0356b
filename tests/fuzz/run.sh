#!/bin/sh
# Runs libFuzzer targets of tests/fuzz/ for a while each, on their seed
# corpus and dictionary, and fails if any of them crashes.
#
#   tests/fuzz/run.sh [-k] SECONDS TARGET...
#
# TARGET is the path of a built target (build-fuzz/tests/fuzz/fuzz_addr).
# Each runs for SECONDS (-max_total_time) on a scratch copy of
# tests/fuzz/corpus/TARGET/; the checked-in corpus is never changed.  A
# crashing input is kept as crash-* in the current directory.  With -k
# the scratch corpora are kept in ./fuzz-corpus/TARGET/ and libFuzzer's
# output in ./fuzz-corpus/TARGET.log.  One line per
# target, then "fuzz: N passed, N failed".  Extra libFuzzer options may be
# given in FUZZ_FLAGS.
set -u

here=$(cd "$(dirname "$0")" && pwd)
keep=0
if [ "${1:-}" = -k ]; then
	keep=1
	shift
fi
if [ $# -lt 2 ]; then
	echo "usage: $0 [-k] SECONDS TARGET..." >&2
	exit 2
fi
secs=$1
shift

# Targets that parse files write them under $TMPDIR: memory if it can be.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=/dev/shm
	export TMPDIR
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tern-fuzz-run.XXXXXX") || exit 1
trap 'rm -rf "$scratch"' EXIT INT TERM

pass=0 fail=0
for t in "$@"; do
	name=$(basename "$t")
	if [ ! -x "$t" ]; then
		echo "fuzz: $name: FAILED: $t not built"
		fail=$((fail + 1))
		continue
	fi
	work="$scratch/$name"
	[ "$keep" -eq 1 ] && work="fuzz-corpus/$name"
	mkdir -p "$work"
	seeds="$here/corpus/$name"
	dict=
	[ -f "$here/dict/$name.dict" ] && dict="-dict=$here/dict/$name.dict"
	log="$scratch/$name.log"
	[ "$keep" -eq 1 ] && log="fuzz-corpus/$name.log"
	# shellcheck disable=SC2086
	"$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="./$name-" \
	    $dict ${FUZZ_FLAGS:-} "$work" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -E '^#[0-9]+.*(cov|ft):' "$log" | tail -n 1 |
	    sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz: $name: ok, ${runs:-?} runs, ${cov:-no coverage line}"
		pass=$((pass + 1))
	else
		echo "fuzz: $name: FAILED (exit $rc)"
		grep -a -E 'ERROR|SUMMARY|^fuzz:|#[0-9]+ in ' "$log" | head -n 25
		ls ./"$name"-* 2>/dev/null | sed 's/^/fuzz:   input: /'
		fail=$((fail + 1))
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
