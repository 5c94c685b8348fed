#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Runs outrider's tests: tests/run.sh [unit|fuzz|e2e]   (no argument: all)
#
#   unit  every build/unit/test_* (Criterion); counts each test case
#   fuzz  every build/fuzz/fuzz_* for FUZZ_SECONDS (default 15) over a copy
#         of tests/fuzz/corpus/<name>/, so runs never grow the committed
#         corpus; counts each target. Crash inputs are kept in build/fuzz/artifacts/.
#   e2e   bats tests/e2e (root, real kernel); counts each test. Tests that
#         cannot run here are skipped, or fail when REQUIRE_BPF=1.
#
# The last line is "N passed, N failed"; exits 1 when anything failed.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-15}

passed=0
failed=0
skipped=0
failures=()

count_pass() { passed=$((passed + $1)); }
count_fail() # N WHAT
{
	failed=$((failed + $1))
	failures+=("$2")
}

header() { printf '\n=== %s\n' "$*"; }

run_unit()
{
	local src name bin out rc line tested passing failing crashing
	header "unit tests (Criterion)"
	for src in tests/unit/test_*.c; do
		[ -e "$src" ] || { echo "no unit tests"; return; }
		name=$(basename "$src" .c)
		bin="$BUILD/unit/$name"
		if [ ! -x "$bin" ]; then
			echo "FAIL $name: $bin is not built (make $bin)"
			count_fail 1 "unit/$name: not built"
			continue
		fi
		out=$("$bin" 2>&1)
		rc=$?
		line=$(sed 's/\x1b\[[0-9;]*m//g' <<<"$out" | grep -o 'Synthesis: .*' | tail -n1)
		if [[ "$line" =~ Tested:\ ([0-9]+).*Passing:\ ([0-9]+).*Failing:\ ([0-9]+).*Crashing:\ ([0-9]+) ]]; then
			tested=${BASH_REMATCH[1]}
			passing=${BASH_REMATCH[2]}
			failing=${BASH_REMATCH[3]}
			crashing=${BASH_REMATCH[4]}
		else
			tested=0 passing=0 failing=0 crashing=0
		fi
		if [ "$rc" -ne 0 ] || [ "$failing" -ne 0 ] || [ "$crashing" -ne 0 ] || [ "$tested" -eq 0 ]; then
			echo "$out"
			local bad=$((failing + crashing))
			[ "$bad" -gt 0 ] || bad=1
			count_pass "$passing"
			count_fail "$bad" "unit/$name: exit $rc, $line"
			echo "FAIL $name: exit $rc, ${line:-no synthesis}"
		else
			count_pass "$passing"
			echo "ok   $name: $passing of $tested"
		fi
	done
}

run_fuzz()
{
	local src name bin corpus tmp log rc args art
	header "fuzz smoke (libFuzzer, ${FUZZ_SECONDS}s per target)"
	for src in tests/fuzz/fuzz_*.c; do
		[ -e "$src" ] || { echo "no fuzz targets"; return; }
		name=$(basename "$src" .c)
		bin="$BUILD/fuzz/$name"
		if [ ! -x "$bin" ]; then
			echo "FAIL $name: $bin is not built (make $bin)"
			count_fail 1 "fuzz/$name: not built"
			continue
		fi
		corpus="tests/fuzz/corpus/${name#fuzz_}"
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/outrider-fuzz.XXXXXX")
		mkdir "$tmp/corpus" "$tmp/artifacts"
		if [ -d "$corpus" ]; then
			cp -R "$corpus/." "$tmp/corpus/"
		else
			echo "note: no seed corpus at $corpus"
		fi
		args=(-max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1
		      -artifact_prefix="$tmp/artifacts/")
		if [ -f "tests/fuzz/${name#fuzz_}.dict" ]; then
			args+=(-dict="tests/fuzz/${name#fuzz_}.dict")
		fi
		log="$tmp/log"
		"$bin" "${args[@]}" "$tmp/corpus" >"$log" 2>&1
		rc=$?
		if [ "$rc" -eq 0 ]; then
			count_pass 1
			echo "ok   $name: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n1)"
		else
			tail -n 40 "$log"
			mkdir -p "$BUILD/fuzz/artifacts"
			for art in "$tmp/artifacts"/*; do
				[ -e "$art" ] || continue
				cp "$art" "$BUILD/fuzz/artifacts/$name-$(basename "$art")"
				echo "kept $BUILD/fuzz/artifacts/$name-$(basename "$art")"
				echo "once fixed, keep it as a regression seed: cp '$BUILD/fuzz/artifacts/$name-$(basename "$art")' $corpus/"
			done
			count_fail 1 "fuzz/$name: exit $rc"
			echo "FAIL $name: exit $rc"
		fi
		rm -rf "$tmp"
	done
}

run_e2e()
{
	local log rc plan ok notok skip
	header "end-to-end tests (bats, real kernel)${REQUIRE_BPF:+, REQUIRE_BPF=$REQUIRE_BPF}"
	if ! command -v bats >/dev/null 2>&1; then
		count_fail 1 "e2e: bats is not installed (tests/deps.sh)"
		echo "FAIL bats is not installed"
		return
	fi
	log=$(mktemp "${TMPDIR:-/tmp}/outrider-bats.XXXXXX")
	bats --tap tests/e2e | tee "$log"
	rc=$?
	plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$log" | head -n1)
	skip=$(grep -cE '^ok [0-9]+ .*# skip' "$log")
	ok=$(grep -cE '^ok [0-9]+' "$log")
	ok=$((ok - skip))
	notok=$(grep -cE '^not ok [0-9]+' "$log")
	rm -f "$log"
	count_pass "$ok"
	skipped=$((skipped + skip))
	[ "$notok" -eq 0 ] || count_fail "$notok" "e2e: $notok bats test(s) failed"
	# Tests that never reported (bats itself failed) are failures too.
	if [ -n "$plan" ] && [ $((ok + skip + notok)) -lt "$plan" ]; then
		count_fail $((plan - ok - skip - notok)) "e2e: $((plan - ok - skip - notok)) test(s) did not report"
	elif [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
		count_fail 1 "e2e: bats exited $rc"
	fi
	if [ "$skip" -gt 0 ]; then
		echo "note: $skip e2e test(s) skipped (set REQUIRE_BPF=1 to make that a failure)"
	fi
}

case "${1:-all}" in
unit) run_unit ;;
fuzz) run_fuzz ;;
e2e) run_e2e ;;
all)
	run_unit
	run_fuzz
	run_e2e
	;;
*)
	echo "usage: $0 [unit|fuzz|e2e]" >&2
	exit 64
	;;
esac

header "summary"
for f in "${failures[@]}"; do
	echo "failed: $f"
done
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
