#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Retries and timeouts (issue 3): what the app sees when one endpoint
# refuses, answers 503 or is slow, and when every endpoint is slow.
# Topology: resilience_pods (client, be-1, be-2; tests/e2e/lib/cluster.bash).
# Outlier detection is off here, so every request meets the faulty endpoint
# as often as load balancing sends it there; the retry budget is wide open.

load lib/cluster

VIP_REFUSED=10.96.0.40  # http: be-1:8082 (refused), be-2:8080
VIP_REFUSED_TCP=10.96.0.41 # tcp :9000: be-1:9002 (refused), be-2:9000 (echo)
VIP_FLAKY=10.96.0.42    # http: be-1:8081 (503), be-2:8080
VIP_BODIES=10.96.0.43   # http: be-1:8081 (503), be-2:8080; max_body_bytes 1024
VIP_SLOW=10.96.0.44     # http: be-1:8083 (3 s), be-2:8080; per_try_timeout_ms 200
VIP_STUCK=10.96.0.45    # http: be-1:8083, be-2:8083 (3 s both); timeout_ms 500
VIP_OK=10.96.0.46       # http: be-2:8080

BE1=10.244.1.11
BE2=10.244.1.12

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	resilience_pods 2 || { cluster_cleanup; return 1; }
	local quiet='outlier_detection: {consecutive_5xx: 0, consecutive_connect_failures: 0}'
	local open_budget='budget: {percent: 100, min_retries_per_s: 1000}'
	cluster_services <<EOF
services:
  - name: refused-http
    vip: $VIP_REFUSED
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8082}, {ip: $BE2, port: 8080}]
    policy:
      connect_timeout_ms: 500
      retries: {attempts: 2, backoff: {base_ms: 1, max_ms: 5}, $open_budget}
      $quiet
  - name: refused-tcp
    vip: $VIP_REFUSED_TCP
    ports: [{port: 9000, protocol: tcp}]
    endpoints: [{ip: $BE1, port: 9002}, {ip: $BE2, port: 9000}]
    policy:
      connect_timeout_ms: 500
      retries: {attempts: 2, backoff: {base_ms: 1, max_ms: 5}, $open_budget}
      $quiet
  - name: flaky
    vip: $VIP_FLAKY
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8081}, {ip: $BE2, port: 8080}]
    policy:
      retries: {attempts: 2, backoff: {base_ms: 1, max_ms: 5}, $open_budget}
      $quiet
  - name: bodies
    vip: $VIP_BODIES
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8081}, {ip: $BE2, port: 8080}]
    policy:
      retries: {attempts: 2, backoff: {base_ms: 1, max_ms: 5}, $open_budget, max_body_bytes: 1024}
      $quiet
  - name: slow
    vip: $VIP_SLOW
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8083}, {ip: $BE2, port: 8080}]
    policy:
      timeout_ms: 5000
      retries: {attempts: 2, per_try_timeout_ms: 200, backoff: {base_ms: 1, max_ms: 5}, $open_budget}
      $quiet
  - name: stuck
    vip: $VIP_STUCK
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8083}, {ip: $BE2, port: 8083}]
    policy:
      timeout_ms: 500
      retries: {attempts: 2, backoff: {base_ms: 1, max_ms: 5}, $open_budget}
      $quiet
  - name: ok
    vip: $VIP_OK
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE2, port: 8080}]
EOF
	resilience_agent_up
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# requests N VIP [CURL ARGS...]: N requests in a row from the client, one
# connection each; prints each body followed by a line
# "code=NNN time=SECONDS". Fails only if curl itself fails.
requests()
{
	local n=$1 vip=$2
	shift 2
	pod_exec client sh -c 'n=$1 url=$2; shift 2
		for i in $(seq "$n"); do
			curl -sS --max-time 5 -w "code=%{http_code} time=%{time_total}\n" "$@" "$url" || exit 1
		done' requests "$n" "http://$vip/" "$@"
}

count_of() { grep -c -- "$1" <<<"$2" || true; }

@test "retries: a refused endpoint -> every HTTP request still succeeds via retry" {
	local r0 r1
	r0=$(metric outrider_retries_total service=default/refused-http)
	run requests 10 "$VIP_REFUSED"
	echo "$output"
	[ "$status" -eq 0 ]
	r1=$(metric outrider_retries_total service=default/refused-http)
	echo "retries $r0 -> $r1"
	[ "$(count_of '^code=200 ' "$output")" -eq 10 ]
	[ "$(count_of '^backend=be-2 ' "$output")" -eq 10 ]
	# Round robin sent some first tries to be-1, which refused: the answer
	# came from the second try.
	[ "$(count_of 'attempt=2$' "$output")" -ge 1 ]
	[ "$((r1 - r0))" -ge 1 ]
}

@test "retries: a refused endpoint -> every TCP connection is still carried (L4 retry)" {
	local f0 f1 i
	f0=$(metric outrider_upstream_connect_failures_total service=default/refused-tcp)
	for i in $(seq 10); do
		run pod_exec client orclient "$VIP_REFUSED_TCP" 9000 --send 10000 --timeout-ms 3000
		echo "$output"
		[ "$status" -eq 0 ]
		[ "$(tail -n1 <<<"$output" | jq -r .match)" = true ]
	done
	f1=$(metric outrider_upstream_connect_failures_total service=default/refused-tcp)
	echo "connect failures $f0 -> $f1"
	# The refused endpoint was tried (and the connection moved on).
	[ "$((f1 - f0))" -ge 1 ]
}

@test "retries: one of two backends answers 503 -> the client sees 200 every time, retries counted" {
	local r0 r1 c0 c1
	r0=$(metric outrider_retries_total service=default/flaky)
	c0=$(upstream_count be-1 8081)
	run requests 20 "$VIP_FLAKY"
	echo "$output"
	[ "$status" -eq 0 ]
	r1=$(metric outrider_retries_total service=default/flaky)
	c1=$(upstream_count be-1 8081)
	echo "retries $r0 -> $r1; be-1:8081 saw $c0 -> $c1"
	[ "$(count_of '^code=200 ' "$output")" -eq 20 ]
	[ "$(count_of '^backend=be-2 ' "$output")" -eq 20 ]
	# be-1 got its share of first tries; each of its 503s was retried and
	# counted, and the answers came from later tries.
	[ "$((c1 - c0))" -ge 5 ]
	[ "$((r1 - r0))" -eq "$((c1 - c0))" ]
	[ "$(count_of 'attempt=[2-9]$' "$output")" -ge 5 ]
}

@test "retries: a PUT over max_body_bytes is not retried; a small PUT is; a POST never" {
	local small="$OR_STATE/body-small" big="$OR_STATE/body-big" r0 r1 r2 r3
	head -c 100 /dev/zero | tr '\0' s >"$small"
	head -c 4096 /dev/zero | tr '\0' b >"$big"

	# Small PUT (idempotent, body buffered): the 503s are retried away.
	r0=$(metric outrider_retries_total service=default/bodies)
	run requests 20 "$VIP_BODIES" -X PUT --data-binary "@$small"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200 ' "$output")" -eq 20 ]
	r1=$(metric outrider_retries_total service=default/bodies)
	echo "small PUT: retries $r0 -> $r1"
	[ "$((r1 - r0))" -ge 1 ]

	# Big PUT: same method, but the body is over max_body_bytes, so it
	# cannot be replayed: be-1's 503 reaches the client as it is.
	run requests 20 "$VIP_BODIES" -X PUT --data-binary "@$big"
	echo "$output"
	[ "$status" -eq 0 ]
	r2=$(metric outrider_retries_total service=default/bodies)
	echo "big PUT: retries $r1 -> $r2"
	[ "$(count_of '^code=503 ' "$output")" -ge 1 ]
	[ "$(count_of '^code=200 ' "$output")" -ge 1 ]
	[ "$(count_of '^backend=be-1 .* attempt=1$' "$output")" -eq "$(count_of '^code=503 ' "$output")" ]
	[ "$r2" -eq "$r1" ]

	# Small POST: not idempotent and already sent, so not retried either.
	run requests 20 "$VIP_BODIES" -X POST --data-binary "@$small"
	echo "$output"
	[ "$status" -eq 0 ]
	r3=$(metric outrider_retries_total service=default/bodies)
	echo "small POST: retries $r2 -> $r3"
	[ "$(count_of '^code=503 ' "$output")" -ge 1 ]
	[ "$(count_of '^backend=be-1 .* attempt=1$' "$output")" -eq "$(count_of '^code=503 ' "$output")" ]
	[ "$r3" -eq "$r2" ]
}

@test "retries: a per-try timeout moves a slow request on to the other endpoint" {
	run requests 6 "$VIP_SLOW"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200 ' "$output")" -eq 6 ]
	# Nobody waited for be-1's 3 s: its tries were cut at 200 ms.
	[ "$(count_of '^backend=be-2 ' "$output")" -eq 6 ]
	[ "$(count_of '^backend=be-2 .* attempt=2$' "$output")" -ge 1 ]
	local slowest
	slowest=$(awk '/^code=/ { sub(/^time=/, "", $2); t = $2 + 0; if (t > m) m = t } END { print m + 0 }' <<<"$output")
	echo "slowest request: $slowest s"
	awk -v t="$slowest" 'BEGIN { exit !(t < 1.0) }'
}

@test "timeouts: every endpoint slower than timeout_ms -> 504 after about timeout_ms" {
	local t0 t1 n504_0 n504_1
	t0=$(metric outrider_request_timeouts_total service=default/stuck)
	n504_0=$(metric outrider_requests_total service=default/stuck response_code=504)
	run requests 1 "$VIP_STUCK"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ code=504\ time=([0-9.]+) ]]
	local took=${BASH_REMATCH[1]}
	echo "took $took s (timeout_ms 500, endpoints answer after 3000 ms)"
	awk -v t="$took" 'BEGIN { exit !(t >= 0.45 && t < 1.5) }'
	t1=$(metric outrider_request_timeouts_total service=default/stuck)
	n504_1=$(metric outrider_requests_total service=default/stuck response_code=504)
	echo "timeouts $t0 -> $t1, 504s $n504_0 -> $n504_1"
	[ "$((t1 - t0))" -eq 1 ]
	[ "$((n504_1 - n504_0))" -eq 1 ]
}

@test "http: keep-alive, chunked bodies and Expect: 100-continue pass through" {
	local big="$OR_STATE/body-200k"
	head -c 204800 /dev/urandom >"$big"
	run pod_exec client curl -sS --max-time 5 -w 'code=%{http_code} connects=%{num_connects}\n' \
		"http://$VIP_OK/a" "http://$VIP_OK/b" "http://$VIP_OK/c"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200 ' "$output")" -eq 3 ]
	[ "$(count_of '^backend=be-2 peer=10.244.1.2:[0-9]* attempt=1$' "$output")" -eq 3 ]
	# One client connection for the three (curl opened it for the first).
	[ "$(count_of 'connects=0' "$output")" -eq 2 ]

	run pod_exec client curl -sS --max-time 5 -w 'code=%{http_code}\n' -X PUT \
		-H 'Transfer-Encoding: chunked' -H 'Expect: 100-continue' --data-binary "@$big" "http://$VIP_OK/up"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(count_of '^code=200$' "$output")" -eq 1 ]
	[ "$(count_of '^backend=be-2 ' "$output")" -eq 1 ]
}
