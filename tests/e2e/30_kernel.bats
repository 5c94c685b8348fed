#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Kernel mode: connect4 picks a backend and rewrites the destination to it;
# the agent never sees the connection.

load lib/cluster

setup_file() { e2e_require && e2e_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# 30 connections to the kernel-mode VIP; each prints the backend's body
# ("backend=NAME peer=IP:PORT") and then "local=IP:PORT" of curl's socket.
kernel_requests()
{
	pod_exec client sh -c "for i in \$(seq 30); do
		curl -sS --max-time 3 -w 'local=%{local_ip}:%{local_port}\n' http://$E2E_VIP_K/ || exit 1
	done"
}

stat_of() { ctl --json stats | jq -r ".$1"; }

@test "kernel mode: connections go straight to the backends" {
	run kernel_requests
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^backend=' <<<"$output")" -eq 30 ]
	# Straight to the backend: the peer the backend saw is the client's own
	# socket. Through the agent it would be another socket (another port).
	local mismatches
	mismatches=$(awk '/^backend=/ { split($2, p, "="); peer = p[2] }
		/^local=/ { sub(/^local=/, ""); if ($0 != peer) print peer " != " $0 }' <<<"$output")
	echo "$mismatches"
	[ -z "$mismatches" ]
}

@test "kernel mode: connections spread over all backends" {
	run kernel_requests
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -o 'backend=[^ ]*' <<<"$output" | sort -u | wc -l)" -eq 3 ]
}

@test "kernel mode: counted as kernel_balanced, not redirected" {
	local kb0 rd0 kb1 rd1
	kb0=$(stat_of kernel_balanced)
	rd0=$(stat_of redirected)
	run kernel_requests
	[ "$status" -eq 0 ]
	kb1=$(stat_of kernel_balanced)
	rd1=$(stat_of redirected)
	echo "kernel_balanced $kb0 -> $kb1, redirected $rd0 -> $rd1"
	[ "$((kb1 - kb0))" -ge 30 ]
	[ "$rd1" -eq "$rd0" ]
}

@test "kernel mode: getpeername in the client shows the VIP" {
	run pod_exec client orclient "$E2E_VIP_K" 80
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(jq -r .peer <<<"$output")" = "$E2E_VIP_K:80" ]
}
