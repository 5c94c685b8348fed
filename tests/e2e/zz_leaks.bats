#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Runs last: nothing the other files made is left. Under `bats tests/e2e`
# the files record their run ids in $BATS_RUN_TMPDIR/outrider-ids and these
# checks look for exactly those; run alone, they look for any id.
# Checking only: nothing here removes or ends anything.

load lib/cluster

setup_file()
{
	local ids_file="$BATS_RUN_TMPDIR/outrider-ids"
	if [ -s "$ids_file" ]; then
		OR_LEAK_RE="($(sort -u "$ids_file" | paste -sd'|'))"
	else
		OR_LEAK_RE='[0-9a-f]{6}'
	fi
	export OR_LEAK_RE
	CG2=$(cgroup2_mount)
	export CG2
}

@test "no test network namespace is left" {
	run bash -c "ip netns list | awk '{ print \$1 }' | grep -E '^ort${OR_LEAK_RE}-' || true"
	echo "$output"
	[ -z "$output" ]
}

@test "no test cgroup is left" {
	[ -n "$CG2" ] || skip "no cgroup2 mount"
	run bash -c "ls '$CG2' | grep -E '^outrider-test-${OR_LEAK_RE}\$' || true"
	echo "$output"
	[ -z "$output" ]
}

@test "no test pin directory is left" {
	run bash -c "ls /sys/fs/bpf 2>/dev/null | grep -E '^outrider-test-${OR_LEAK_RE}(-[a-z0-9-]+)?\$' || true"
	echo "$output"
	[ -z "$output" ]
}

@test "no test state directory is left" {
	run bash -c "ls '${TMPDIR:-/tmp}' | grep -E '^outrider-test-${OR_LEAK_RE}\$' || true"
	echo "$output"
	[ -z "$output" ]
}

@test "no process of the tests is left (agent or pod process)" {
	# The agent's command line names its config under the state dir; a pod
	# process lives in a test cgroup. Read /proc directly so that no helper
	# process carries the pattern in its own arguments.
	local p cmd cg left=""
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
		cg=$(cat "$p/cgroup" 2>/dev/null) || continue
		if [[ "$cmd" =~ outrider-test-${OR_LEAK_RE} ]] || [[ "$cg" =~ outrider-test-${OR_LEAK_RE} ]]; then
			left+="${p#/proc/}: $cmd"$'\n'
		fi
	done
	echo "$left"
	[ -z "$left" ]
}
