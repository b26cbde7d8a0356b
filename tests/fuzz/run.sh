#!/bin/sh
# Runs libFuzzer targets of tests/fuzz/ for a while each, on their seed
# corpus and dictionary, and fails if any of them crashes.
#
#   tests/fuzz/run.sh [-k] [-j N] SECONDS TARGET...
#
# TARGET is the path of a built target (build-fuzz/tests/fuzz/fuzz_addr).
# Each runs for SECONDS (-max_total_time), N at a time (default 1),
# reading tests/fuzz/corpus/TARGET/ and adding what it finds to a scratch
# directory: the checked-in corpus is never changed.  A crashing input is
# kept as TARGET-crash-* in the current directory.  With -k the scratch
# corpora are kept in ./fuzz-corpus/TARGET/ and libFuzzer's output in
# ./fuzz-corpus/TARGET.log.  One line per target, then "fuzz: N passed,
# N failed".  Extra libFuzzer options may be given in FUZZ_FLAGS.
set -u

here=$(cd "$(dirname "$0")" && pwd)
keep=0 jobs=1
while [ $# -gt 0 ]; do
	case $1 in
	-k)	keep=1; shift ;;
	-j)	jobs=${2:-1}; shift 2 ;;
	*)	break ;;
	esac
done
if [ $# -lt 2 ] || ! [ "$jobs" -ge 1 ] 2>/dev/null; then
	echo "usage: $0 [-k] [-j N] SECONDS TARGET..." >&2
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
# The targets' own files go there too, so that one that crashes (and
# never runs its cleanup) leaves nothing behind.
TMPDIR=$scratch
export TMPDIR

# One target: its report in $scratch/NAME.out, 0 or 1 in NAME.rc.
run_one() {
	t=$1 name=$(basename "$1")
	out="$scratch/$name.out"
	if [ ! -x "$t" ]; then
		echo "fuzz: $name: FAILED: $t not built" >"$out"
		echo 1 >"$scratch/$name.rc"
		return
	fi
	work="$scratch/$name" log="$scratch/$name.log"
	if [ "$keep" -eq 1 ]; then
		work="fuzz-corpus/$name" log="fuzz-corpus/$name.log"
	fi
	mkdir -p "$work"
	dict=
	[ -f "$here/dict/$name.dict" ] && dict="-dict=$here/dict/$name.dict"
	# shellcheck disable=SC2086
	"$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix="./$name-" \
	    $dict ${FUZZ_FLAGS:-} "$work" "$here/corpus/$name" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	cov=$(grep -a -E '^#[0-9]+.*(cov|ft):' "$log" | tail -n 1 |
	    sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p')
	if [ "$rc" -eq 0 ]; then
		echo "fuzz: $name: ok, ${runs:-?} runs," \
		    "${cov:-no coverage line}" >"$out"
		echo 0 >"$scratch/$name.rc"
		return
	fi
	{
		echo "fuzz: $name: FAILED (exit $rc)"
		grep -a -E 'ERROR|SUMMARY|^fuzz:|#[0-9]+ in ' "$log" |
		    head -n 25
		ls ./"$name"-* 2>/dev/null | sed 's/^/fuzz:   input: /'
	} >"$out"
	echo 1 >"$scratch/$name.rc"
}

# In batches of $jobs; each target runs as long as the others.
pass=0 fail=0
set -- "$@" ""
while [ -n "$1" ]; do
	batch=
	n=0
	while [ -n "$1" ] && [ "$n" -lt "$jobs" ]; do
		run_one "$1" &
		batch="$batch $(basename "$1")"
		n=$((n + 1))
		shift
	done
	wait
	for name in $batch; do
		cat "$scratch/$name.out"
		if [ "$(cat "$scratch/$name.rc")" -eq 0 ]; then
			pass=$((pass + 1))
		else
			fail=$((fail + 1))
		fi
	done
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
