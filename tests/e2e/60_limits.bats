#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Connect timeout, a refusing endpoint, and the connection limit: what the
# app sees when the agent cannot (or may not) carry its connection.
# Topology: one enrolled client, one echo backend, max_connections: 2.

load lib/cluster

VIP_HELD=10.96.0.30    # -> echo-1:9000, for holding connections open
VIP_DARK=10.96.0.31    # -> 10.244.1.99, an address nobody has: SYNs go unanswered
VIP_REFUSED=10.96.0.32 # -> echo-1:81, where nothing listens: refused

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	cluster_init || return 1
	pod_add client 10.244.1.2 || return 1
	pod_label client app=client outrider.io/mode=enabled
	pod_add echo-1 10.244.1.11 || return 1
	pod_label echo-1 app=echo
	upstream_start echo-1 echo-1 --http 8080 --echo 9000 || return 1
	cluster_services <<EOF
services:
  - name: held
    vip: $VIP_HELD
    ports: [{port: 9000}]
    selector: {app: echo}
  - name: dark
    vip: $VIP_DARK
    ports: [{port: 80}]
    endpoints: [{ip: 10.244.1.99, port: 8080}]
    policy: {connect_timeout_ms: 300}
  - name: refused
    vip: $VIP_REFUSED
    ports: [{port: 80}]
    endpoints: [{ip: 10.244.1.11, port: 81}]
max_connections: 2
EOF
	cluster_config || return 1
	agent_start "$OR_CONFIG" && agent_wait_ready 5000 client
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# established_to_agent: connections in the client pod to its :15001 listener.
established_to_agent()
{
	pod_exec client ss -Htn state established '( dport = :15001 )' | wc -l
}

# at_least_held N: N connections are held through the agent (re-run by wait_until).
at_least_held()
{
	[ "$(established_to_agent)" -ge "$1" ]
}

@test "limits: an endpoint that never answers is reset after connect_timeout_ms" {
	local t0 t1
	t0=$(_or_now_ms)
	run pod_exec client curl -sS --max-time 5 "http://$VIP_DARK/"
	t1=$(_or_now_ms)
	echo "$output; took $((t1 - t0)) ms"
	# Accepted by the agent, then reset when the upstream connect timed out:
	# curl reports the reset (56) or an empty reply (52), never its own timeout (28).
	[[ "$status" -eq 56 || "$status" -eq 52 ]]
	[ $((t1 - t0)) -ge 250 ]
	[ $((t1 - t0)) -lt 3000 ]
}

@test "limits: a refusing endpoint resets the app's connection at once" {
	local before after
	before=$(ctl --json stats | jq .redirected)
	run pod_exec client curl -sS --max-time 5 "http://$VIP_REFUSED/"
	echo "$output"
	after=$(ctl --json stats | jq .redirected)
	# The reset can land before curl counts itself connected (7), or after
	# (52, 56). Either way the agent carried it: captured, not unreachable.
	[[ "$status" -eq 7 || "$status" -eq 52 || "$status" -eq 56 ]]
	[ "$after" -eq $((before + 1)) ]
	! grep -qi unreachable <<<"$output"
}

@test "limits: over max_connections a new connection is refused; it recovers when one ends" {
	local h1 h2
	# Two long-lived connections through the agent (bash holds fd 3 open).
	h1=$(pod_spawn client "$OR_STATE/logs/held1" bash -c "exec 3<>/dev/tcp/$VIP_HELD/9000; sleep 60")
	h2=$(pod_spawn client "$OR_STATE/logs/held2" bash -c "exec 3<>/dev/tcp/$VIP_HELD/9000; sleep 60")
	wait_until 3000 at_least_held 2

	# A third gets through the kernel's handshake but the agent resets it.
	run pod_exec client orclient "$VIP_HELD" 9000 --send 1000 --timeout-ms 3000
	echo "$output"
	[ "$status" -ne 0 ]
	run jq -rs 'map(select(has("match")))[0].received // 0' <<<"$output"
	[ "$output" = 0 ]

	# One ends: the next connection is carried again.
	kill "$h1"
	wait_until 2000 pod_exec client orclient "$VIP_HELD" 9000 --send 1000 --timeout-ms 1000
	kill "$h2"
}

@test "limits: the agent still serves after all of the above" {
	run pod_exec client orclient "$VIP_HELD" 9000 --send 100000
	echo "$output"
	[ "$status" -eq 0 ]
}
