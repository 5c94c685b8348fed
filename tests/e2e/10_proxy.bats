#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Proxy mode: an enrolled pod's connect() to a service VIP goes to the
# agent's in-pod listener, and the agent connects to a backend from inside
# the pod's netns. Topology: tests/e2e/lib/cluster.bash (e2e_up).

load lib/cluster

setup_file() { e2e_require && e2e_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# backends_seen OUTPUT: the distinct backend names in curl output, sorted.
backends_seen()
{
	grep -o 'backend=[^ ]*' <<<"$1" | sort -u | sed 's/^backend=//' | tr '\n' ' ' | sed 's/ $//'
}

@test "proxy: enrolled pod -> curl http://VIP/ -> a backend answers" {
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^backend=echo-[123]\ peer= ]]
}

@test "proxy: repeated requests reach every backend" {
	run pod_exec client sh -c \
		"for i in \$(seq 30); do curl -sS --max-time 3 http://$E2E_VIP/ || exit 1; done"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^backend=' <<<"$output")" -eq 30 ]
	[ "$(backends_seen "$output")" = "echo-1 echo-2 echo-3" ]
}

@test "proxy: the backend sees the client pod's address" {
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ peer=10\.244\.1\.2:[0-9]+( |$) ]]
}

@test "proxy: IPv6 VIP answers, and repeated requests reach every backend" {
	run pod_exec client sh -c \
		"for i in \$(seq 30); do curl -gsS --max-time 3 'http://[$E2E_VIP6]/' || exit 1; done"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^backend=' <<<"$output")" -eq 30 ]
	[ "$(backends_seen "$output")" = "echo-1 echo-2 echo-3" ]
	# The upstream connection is IPv6 from the client pod's own address.
	[ "$(grep -c 'peer=fd00:244:1::2:' <<<"$output")" -eq 30 ]
}

@test "proxy: getpeername in the client shows the IPv4 VIP" {
	run pod_exec client orclient "$E2E_VIP" 80
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(jq -r .connect <<<"$output")" = ok ]
	[ "$(jq -r .peer <<<"$output")" = "$E2E_VIP:80" ]
}

@test "proxy: getpeername in the client shows the IPv6 VIP" {
	run pod_exec client orclient "$E2E_VIP6" 80
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(jq -r .peer <<<"$output")" = "[$E2E_VIP6]:80" ]
}

@test "proxy: 1 GiB sent through the proxy comes back intact" {
	local t0 t1
	t0=$(_or_now_ms)
	run pod_exec client orclient "$E2E_VIP" 9000 --send 1G --timeout-ms 10000
	t1=$(_or_now_ms)
	echo "$output"
	echo "took $((t1 - t0)) ms"
	[ "$status" -eq 0 ]
	[ "$(head -n1 <<<"$output" | jq -r .peer)" = "$E2E_VIP:9000" ]
	local result
	result=$(tail -n1 <<<"$output")
	[ "$(jq -r .sent <<<"$result")" = 1073741824 ]
	[ "$(jq -r .received <<<"$result")" = 1073741824 ]
	[ "$(jq -r .match <<<"$result")" = true ]
}

@test "proxy: HTTP keep-alive: several requests on one connection" {
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/a" "http://$E2E_VIP/b" "http://$E2E_VIP/c"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^backend=' <<<"$output")" -eq 3 ]
	# One connection, so one backend and one upstream port.
	[ "$(sort -u <<<"$output" | wc -l)" -eq 1 ]
}
