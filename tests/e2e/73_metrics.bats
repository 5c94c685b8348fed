#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Observability (issue 3): Prometheus text on admin_address /metrics,
# /healthz/ready on ready_address, and `outriderctl breakers`. Each run
# uses its own two loopback ports (OR_ADMIN_ADDR, OR_READY_ADDR).
# Topology: resilience_pods (client, be-1; tests/e2e/lib/cluster.bash).

load lib/cluster

VIP_WEB=10.96.0.70 # http: be-1:8080
VIP_TCP=10.96.0.71 # tcp :9000: be-1:9000 (echo)
BE1=10.244.1.11

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	resilience_pods 1 || { cluster_cleanup; return 1; }
	cluster_services <<EOF
services:
  - name: web
    vip: $VIP_WEB
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8080}]
  - name: plain
    vip: $VIP_TCP
    ports: [{port: 9000, protocol: tcp}]
    endpoints: [{ip: $BE1, port: 9000}]
EOF
	resilience_agent_up
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

@test "metrics: the config names this run's own admin and ready addresses" {
	grep -qx "admin_address: $OR_ADMIN_ADDR" "$OR_CONFIG"
	grep -qx "ready_address: $OR_READY_ADDR" "$OR_CONFIG"
	[ "$OR_ADMIN_ADDR" != 127.0.0.1:15020 ]
}

@test "metrics: /healthz/ready answers 200 on ready_address" {
	run ready_get /healthz/ready -o /dev/null -w '%{http_code}'
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = 200 ]
}

@test "metrics: /metrics is Prometheus text with every counter of issue 3" {
	local name
	run admin_get /metrics -D "$OR_STATE/metrics.head"
	[ "$status" -eq 0 ]
	cat "$OR_STATE/metrics.head"
	head -n1 "$OR_STATE/metrics.head" | grep -q '^HTTP/1\.[01] 200'
	grep -Eqi '^content-type: *text/plain' "$OR_STATE/metrics.head"
	for name in outrider_requests_total outrider_retries_total \
		outrider_retry_budget_exhausted_total outrider_ejections_total \
		outrider_circuit_breaker_overflow_total outrider_tcp_connections_opened_total \
		outrider_upstream_connect_failures_total outrider_request_timeouts_total; do
		if ! grep -Eq "^# TYPE $name counter\$" <<<"$output"; then
			echo "no '# TYPE $name counter' in:"
			echo "$output"
			return 1
		fi
	done
}

@test "metrics: HTTP requests are counted per service and response code" {
	local n0 n1
	n0=$(metric outrider_requests_total service=default/web response_code=200)
	run pod_exec client sh -c "for i in \$(seq 5); do curl -sS --max-time 3 http://$VIP_WEB/ || exit 1; done"
	echo "$output"
	[ "$status" -eq 0 ]
	n1=$(metric outrider_requests_total service=default/web response_code=200)
	echo "requests{200} $n0 -> $n1"
	[ "$((n1 - n0))" -eq 5 ]
}

@test "metrics: TCP connections opened are counted per service" {
	local c0 c1 i
	c0=$(metric outrider_tcp_connections_opened_total service=default/plain)
	for i in 1 2 3; do
		run pod_exec client orclient "$VIP_TCP" 9000 --send 1000
		[ "$status" -eq 0 ]
	done
	c1=$(metric outrider_tcp_connections_opened_total service=default/plain)
	echo "tcp opened $c0 -> $c1"
	[ "$((c1 - c0))" -eq 3 ]
}

@test "metrics: an unknown admin path is 404" {
	run admin_get /nope -o /dev/null -w '%{http_code}'
	echo "$output"
	[ "$output" = 404 ]
}

@test "outriderctl breakers: every endpoint, closed, with its fields (table and --json)" {
	run ctl breakers --json
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e 'type == "array"' <<<"$output"
	local e
	for e in 8080 9000; do
		jq -e --argjson p "$e" --arg ip "$BE1" 'any(.[]; .ip == $ip and .port == $p
			and .state == "closed" and .ejected_remaining_ms == 0
			and .consecutive_failures == 0 and .ejections == 0)' <<<"$output"
	done
	run ctl breakers
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "$BE1" <<<"$output"
	grep -qi closed <<<"$output"
}
