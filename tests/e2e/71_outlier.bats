#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Outlier detection (issue 3): consecutive 5xx eject an endpoint, the agent
# mirrors it into the pinned or_breakers map, nothing reaches it until the
# ejection ends, then one probe decides. When every endpoint of a service is
# ejected the kernel fails connect() at once, in proxy and kernel mode.
# Topology: resilience_pods (client, be-1..be-4; tests/e2e/lib/cluster.bash).
# Retries are off on the services that eject, so every request is one try
# and the upstreams' counters tell exactly who got what.

load lib/cluster

VIP_OD=10.96.0.50      # http proxy: be-1:8080, be-2:8080; eject after 5 x 5xx for 1500 ms
VIP_OD_K=10.96.0.51    # kernel mode: the same endpoints
VIP_ALL=10.96.0.52     # http proxy: be-3:8081, be-4:8081 (both 503); max_ejection_percent 100
VIP_ALL_TCP=10.96.0.53 # tcp proxy: the same endpoints
VIP_ALL_K=10.96.0.54   # kernel mode: the same endpoints

BE1=10.244.1.11
BE3=10.244.1.13
BE4=10.244.1.14
ALL_CONNECT_TIMEOUT_MS=2000

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	resilience_pods 4 || { cluster_cleanup; return 1; }
	cluster_services <<EOF
services:
  - name: od
    vip: $VIP_OD
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: od}
    policy:
      retries: {attempts: 0}
      outlier_detection: {consecutive_5xx: 5, consecutive_connect_failures: 5, interval_ms: 100, base_ejection_time_ms: 1500, max_ejection_percent: 50}
  - name: od-k
    vip: $VIP_OD_K
    mode: kernel
    ports: [{port: 80, target_port: 8080}]
    selector: {app: od}
  - name: all
    vip: $VIP_ALL
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE3, port: 8081}, {ip: $BE4, port: 8081}]
    policy:
      connect_timeout_ms: $ALL_CONNECT_TIMEOUT_MS
      retries: {attempts: 0}
      outlier_detection: {consecutive_5xx: 2, interval_ms: 100, base_ejection_time_ms: 30000, max_ejection_percent: 100}
  - name: all-tcp
    vip: $VIP_ALL_TCP
    ports: [{port: 80, protocol: tcp}]
    endpoints: [{ip: $BE3, port: 8081}, {ip: $BE4, port: 8081}]
    policy: {connect_timeout_ms: $ALL_CONNECT_TIMEOUT_MS}
  - name: all-k
    vip: $VIP_ALL_K
    mode: kernel
    ports: [{port: 80}]
    endpoints: [{ip: $BE3, port: 8081}, {ip: $BE4, port: 8081}]
EOF
	# be-1 and be-2 serve od and od-k (selector), be-3 and be-4 serve "all".
	pod_label be-1 app=od
	pod_label be-2 app=od
	resilience_agent_up
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

count_of() { grep -c -- "$1" <<<"$2" || true; }

# ejection_over IP PORT: outriderctl shows no ejection time left.
ejection_over()
{
	[ "$(ctl_breaker "$1" "$2" | jq -r .ejected_remaining_ms)" = 0 ]
}

# od_requests N: N requests in a row to od; each body, then "code=NNN".
od_requests()
{
	pod_exec client sh -c "for i in \$(seq $1); do
		curl -sS --max-time 3 -w 'code=%{http_code}\n' http://$VIP_OD/ || exit 1; done"
}

@test "outlier: 5 consecutive 5xx eject an endpoint (or_breakers shows it); no traffic until the ejection ends; then one probe" {
	local i b e0 e1
	e0=$(metric outrider_ejections_total service=default/od)
	upstream_reset be-1 8080
	upstream_fault be-1 8080 status=503

	# Round robin: every other request meets be-1, until its 5th 503.
	for i in $(seq 30); do
		pod_exec client curl -s -o /dev/null --max-time 3 "http://$VIP_OD/" || true
		[ "$(upstream_count be-1 8080)" -lt 5 ] || break
	done
	[ "$(upstream_count be-1 8080)" -eq 5 ]

	# Ejected, in the pinned map (bpftool) and in outriderctl.
	bpftool map dump pinned "$OR_PIN/or_breakers"
	b=$(breaker_of "$BE1" 8080)
	echo "or_breakers: $b"
	[ "$(jq -r .state <<<"$b")" = 1 ]
	[ "$(jq -r .ejections <<<"$b")" = 1 ]
	[ "$(jq -r .until_ns <<<"$b")" -gt 0 ]
	b=$(ctl_breaker "$BE1" 8080)
	echo "outriderctl: $b"
	[ "$(jq -r .state <<<"$b")" = open ]
	[ "$(jq -r .ejections <<<"$b")" = 1 ]
	[ "$(jq -r .ejected_remaining_ms <<<"$b")" -gt 0 ]
	[ "$(jq -r .ejected_remaining_ms <<<"$b")" -le 1500 ]
	e1=$(metric outrider_ejections_total service=default/od)
	echo "ejections $e0 -> $e1"
	[ "$((e1 - e0))" -eq 1 ]

	# While ejected, nothing reaches be-1: not through the agent (od), not
	# through the kernel's balancer (od-k, same endpoints).
	upstream_reset be-1 8080
	run pod_exec client sh -c "for i in \$(seq 10); do
		curl -sS --max-time 3 -w 'code=%{http_code}\n' http://$VIP_OD/ || exit 1
		curl -sS --max-time 3 -w 'code=%{http_code}\n' http://$VIP_OD_K/ || exit 1
	done"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200$' "$output")" -eq 20 ]
	[ "$(count_of '^backend=be-2 ' "$output")" -eq 20 ]
	[ "$(upstream_count be-1 8080)" -eq 0 ]
	# (Still within the ejection, or the check above proved less.)
	[ "$(ctl_breaker "$BE1" 8080 | jq -r .ejected_remaining_ms)" -gt 0 ]

	# The ejection ends; be-1 still fails. Exactly one probe reaches it, it
	# fails, and be-1 is ejected again, for twice as long.
	wait_until 3000 ejection_over "$BE1" 8080
	sleep 0.2 # an interval_ms, and a margin
	upstream_reset be-1 8080
	run od_requests 10
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(upstream_count be-1 8080)" -eq 1 ]
	[ "$(count_of '^code=503$' "$output")" -eq 1 ]
	b=$(breaker_of "$BE1" 8080)
	echo "or_breakers: $b"
	[ "$(jq -r .state <<<"$b")" = 1 ]
	[ "$(jq -r .ejections <<<"$b")" = 2 ]
	b=$(ctl_breaker "$BE1" 8080)
	echo "outriderctl: $b"
	[ "$(jq -r .ejected_remaining_ms <<<"$b")" -gt 1500 ]
	[ "$(jq -r .ejected_remaining_ms <<<"$b")" -le 3000 ]

	# Healed: when the second ejection ends the probe succeeds, be-1 is
	# closed again and takes its share.
	upstream_fault be-1 8080 none
	wait_until 4000 ejection_over "$BE1" 8080
	sleep 0.2
	upstream_reset be-1 8080
	run od_requests 10
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200$' "$output")" -eq 10 ]
	[ "$(upstream_count be-1 8080)" -ge 2 ]
	b=$(ctl_breaker "$BE1" 8080)
	echo "outriderctl: $b"
	[ "$(jq -r .state <<<"$b")" = closed ]
	[ "$(jq -r .consecutive_failures <<<"$b")" = 0 ]
	[ "$(breaker_of "$BE1" 8080 | jq -r .state)" = 0 ]
}

@test "outlier: every endpoint ejected -> connect() fails at once with ECONNREFUSED, proxy and kernel mode" {
	local b s0 s1 vip line

	# One keep-alive connection, a request every 50 ms: be-3 and be-4
	# answer 503 until both are ejected (2 in a row each; max 100%); later
	# requests on that connection get the agent's own 503 saying why.
	run pod_exec client curl -sS --max-time 5 --rate 20/s \
		-w '\ncode=%{http_code} upstream=%header{x-upstream}\n' $(for i in $(seq 20); do echo "http://$VIP_ALL/"; done)
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=503 ' "$output")" -eq 20 ]
	[ "$(count_of '^code=503 upstream=be-3$' "$output")" -ge 2 ]
	[ "$(count_of '^code=503 upstream=be-4$' "$output")" -ge 2 ]
	[ "$(tail -n1 <<<"$output")" = "code=503 upstream=" ]
	line=$(grep -v '^$' <<<"$output" | tail -n2 | head -n1)
	echo "the agent's answer: $line"
	[[ "$line" != backend=* ]]
	grep -Eqi 'eject|healthy|endpoint' <<<"$line"

	bpftool map dump pinned "$OR_PIN/or_breakers"
	for b in "$BE3" "$BE4"; do
		[ "$(breaker_of "$b" 8081 | jq -r .state)" = 1 ]
	done

	# New connections: refused by the kernel at connect(), far sooner than
	# the connect timeout, whatever the service's mode.
	s0=$(ctl --json stats | jq .all_ejected)
	for vip in "$VIP_ALL" "$VIP_ALL_TCP" "$VIP_ALL_K"; do
		run pod_exec client curl -sS --max-time 5 -w 'time=%{time_total}\n' "http://$vip/"
		echo "$vip: curl exit $status: $output"
		[ "$status" -eq 7 ]
		[[ "$output" =~ time=([0-9.]+) ]]
		awk -v t="${BASH_REMATCH[1]}" -v limit="$ALL_CONNECT_TIMEOUT_MS" \
			'BEGIN { exit !(t * 1000 < limit / 10) }'

		run pod_exec client orclient "$vip" 80 --timeout-ms 5000
		echo "$vip: orclient: $output"
		[ "$status" -eq 2 ]
		[ "$(jq -r .errno <<<"$output")" = 111 ] # ECONNREFUSED
	done
	s1=$(ctl --json stats | jq .all_ejected)
	echo "all_ejected $s0 -> $s1"
	[ "$((s1 - s0))" -ge 6 ]
}
