#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Limits that protect upstreams (issue 3): the retry budget against an
# upstream that always fails, and circuit breaker overflow (max_connections
# for TCP and HTTP, max_requests for HTTP).
# Topology: resilience_pods (client, be-1, be-2; tests/e2e/lib/cluster.bash),
# with the slow ports (8083) answering after 1500 ms here.

load lib/cluster

VIP_BUDGET=10.96.0.60  # http: be-1:8081, be-2:8081 (both 503); attempts 3, budget 20% / 1 per s
VIP_CB_TCP=10.96.0.61  # tcp :9000: be-1:9000 (echo); max_connections 2
VIP_CB_HTTP=10.96.0.62 # http: be-1:8083 (slow); max_connections 2
VIP_CB_REQ=10.96.0.63  # http: be-2:8083 (slow); max_requests 1

BE1=10.244.1.11
BE2=10.244.1.12
SLOW_MS=1500

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	cluster_init || return 1
	pod_add client 10.244.1.2 || { cluster_cleanup; return 1; }
	pod_label client app=client outrider.io/mode=enabled
	local i
	for i in 1 2; do
		pod_add "be-$i" "10.244.1.1$i" || { cluster_cleanup; return 1; }
		pod_label "be-$i" app=be
		fault_backend_start "be-$i" --fault "8083=delay=$SLOW_MS" || { cluster_cleanup; return 1; }
	done
	local quiet='outlier_detection: {consecutive_5xx: 0, consecutive_connect_failures: 0}'
	cluster_services <<EOF
services:
  - name: budget
    vip: $VIP_BUDGET
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8081}, {ip: $BE2, port: 8081}]
    policy:
      retries: {attempts: 3, backoff: {base_ms: 1, max_ms: 2}, budget: {percent: 20, min_retries_per_s: 1}}
      circuit_breaker: {max_retries: 1000}
      $quiet
  - name: cb-tcp
    vip: $VIP_CB_TCP
    ports: [{port: 9000, protocol: tcp}]
    endpoints: [{ip: $BE1, port: 9000}]
    policy:
      circuit_breaker: {max_connections: 2}
      $quiet
  - name: cb-http
    vip: $VIP_CB_HTTP
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8083}]
    policy:
      retries: {attempts: 0}
      circuit_breaker: {max_connections: 2}
      $quiet
  - name: cb-req
    vip: $VIP_CB_REQ
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE2, port: 8083}]
    policy:
      retries: {attempts: 0}
      circuit_breaker: {max_requests: 1}
      $quiet
EOF
	resilience_agent_up
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

count_of() { grep -c -- "$1" <<<"$2" || true; }

@test "retry budget: against an always-503 upstream, retries stay within the budget" {
	local r0 r1 x0 x1 up
	r0=$(metric outrider_retries_total service=default/budget)
	x0=$(metric outrider_retry_budget_exhausted_total service=default/budget)
	upstream_reset be-1 8081
	upstream_reset be-2 8081
	run pod_exec client sh -c "for i in \$(seq 60); do
		curl -s -o /dev/null --max-time 3 -w 'code=%{http_code}\n' http://$VIP_BUDGET/ || exit 1; done"
	[ "$status" -eq 0 ]
	r1=$(metric outrider_retries_total service=default/budget)
	x1=$(metric outrider_retry_budget_exhausted_total service=default/budget)
	up=$(($(upstream_count be-1 8081) + $(upstream_count be-2 8081)))
	echo "60 requests x (1 + 3 attempts) = 240 possible tries; upstreams saw $up"
	echo "retries $r0 -> $r1, budget exhausted $x0 -> $x1"
	[ "$(count_of '^code=503$' "$output")" -eq 60 ]
	# Some retries, far fewer than 60 x 3, and the budget said no.
	[ "$((r1 - r0))" -ge 1 ]
	[ "$((r1 - r0))" -lt 60 ]
	[ "$((x1 - x0))" -gt 0 ]
	# What reached the upstreams: every request once, plus the counted retries.
	[ "$up" -eq $((60 + r1 - r0)) ]
}

# agent_conns_at_least N: the client has N connections to its :15001 listener.
agent_conns_at_least()
{
	[ "$(pod_exec client ss -Htn state established '( dport = :15001 )' | wc -l)" -ge "$1" ]
}

# count_at_least POD PORT N: the upstream port has seen N requests (connections).
count_at_least()
{
	[ "$(upstream_count "$1" "$2")" -ge "$3" ]
}

# codes_200 N LOG...: the logs hold N lines "code=200" between them.
codes_200()
{
	local n=$1
	shift
	[ "$(cat "$@" 2>/dev/null | grep -c '^code=200$')" -eq "$n" ]
}

@test "circuit breaker: over max_connections a TCP connection is refused at once; it recovers when one ends" {
	local h1 h2 o0 o1 t0 t1
	upstream_reset be-1 9000
	h1=$(pod_spawn client "$OR_STATE/logs/held1" bash -c "exec 3<>/dev/tcp/$VIP_CB_TCP/9000; sleep 30")
	h2=$(pod_spawn client "$OR_STATE/logs/held2" bash -c "exec 3<>/dev/tcp/$VIP_CB_TCP/9000; sleep 30")
	wait_until 3000 agent_conns_at_least 2
	wait_until 3000 count_at_least be-1 9000 2
	o0=$(metric outrider_circuit_breaker_overflow_total service=default/cb-tcp limit=max_connections)

	t0=$(_or_now_ms)
	run pod_exec client orclient "$VIP_CB_TCP" 9000 --send 1000 --timeout-ms 3000
	t1=$(_or_now_ms)
	echo "$output; took $((t1 - t0)) ms"
	[ "$status" -ne 0 ]
	run jq -rs 'map(select(has("match")))[0].received // 0' <<<"$output"
	[ "$output" = 0 ]
	[ $((t1 - t0)) -lt 1000 ]
	o1=$(metric outrider_circuit_breaker_overflow_total service=default/cb-tcp limit=max_connections)
	echo "overflow $o0 -> $o1"
	[ "$((o1 - o0))" -ge 1 ]
	# Only the two held connections reached be-1.
	[ "$(upstream_count be-1 9000)" -eq 2 ]

	kill "$h1"
	wait_until 2000 pod_exec client orclient "$VIP_CB_TCP" 9000 --send 1000 --timeout-ms 1000
	kill "$h2"
}

# slow_request_bg VIP LOG: a request in the background; LOG gets "code=NNN".
slow_request_bg()
{
	pod_spawn client "$2" curl -sS --max-time 5 -o /dev/null -w 'code=%{http_code}\n' "http://$1/" >/dev/null
}

# overloaded_check VIP: one request that must be shed at once: 503 with
# x-outrider-overloaded: true, well before the slow upstream could answer.
overloaded_check()
{
	run pod_exec client curl -sS --max-time 5 -D - -o /dev/null -w 'time=%{time_total}\n' "http://$1/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 503 ]]
	grep -Eqi '^x-outrider-overloaded: *true' <<<"$output"
	# Not from an upstream.
	if grep -qi '^x-upstream:' <<<"$output"; then
		echo "an upstream answered"
		return 1
	fi
	[[ "$output" =~ time=([0-9.]+) ]]
	awk -v t="${BASH_REMATCH[1]}" 'BEGIN { exit !(t < 0.5) }'
}

@test "circuit breaker: over max_connections an HTTP request gets 503 with x-outrider-overloaded: true" {
	local o0 o1
	upstream_reset be-1 8083
	slow_request_bg "$VIP_CB_HTTP" "$OR_STATE/logs/slow1"
	slow_request_bg "$VIP_CB_HTTP" "$OR_STATE/logs/slow2"
	wait_until 3000 count_at_least be-1 8083 2
	o0=$(metric outrider_circuit_breaker_overflow_total service=default/cb-http limit=max_connections)

	overloaded_check "$VIP_CB_HTTP"

	o1=$(metric outrider_circuit_breaker_overflow_total service=default/cb-http limit=max_connections)
	echo "overflow $o0 -> $o1"
	[ "$((o1 - o0))" -ge 1 ]
	[ "$(upstream_count be-1 8083)" -eq 2 ]
	# The two requests within the limit were served.
	wait_until $((SLOW_MS + 3000)) codes_200 2 "$OR_STATE/logs/slow1" "$OR_STATE/logs/slow2"
}

@test "circuit breaker: over max_requests an HTTP request gets 503 with x-outrider-overloaded: true" {
	local o0 o1
	upstream_reset be-2 8083
	slow_request_bg "$VIP_CB_REQ" "$OR_STATE/logs/slow3"
	wait_until 3000 count_at_least be-2 8083 1
	o0=$(metric outrider_circuit_breaker_overflow_total service=default/cb-req limit=max_requests)

	overloaded_check "$VIP_CB_REQ"

	o1=$(metric outrider_circuit_breaker_overflow_total service=default/cb-req limit=max_requests)
	echo "overflow $o0 -> $o1"
	[ "$((o1 - o0))" -ge 1 ]
	[ "$(upstream_count be-2 8083)" -eq 1 ]
	wait_until $((SLOW_MS + 3000)) grep -q '^code=200$' "$OR_STATE/logs/slow3"
}
