#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Malformed and smuggling-shaped requests sent through the HTTP proxy get a
# 400 and a closed connection, and never reach the upstream; a good request
# on a fresh connection still works afterwards.
# Topology: resilience_pods (client, be-1; tests/e2e/lib/cluster.bash).

load lib/cluster

VIP_WEB=10.96.0.74 # http: be-1:8080
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
EOF
	resilience_agent_up
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# raw_request FILE: sends FILE's bytes to the VIP from the client pod and
# prints everything the proxy answers until it closes (bash /dev/tcp, so
# the bytes go out exactly as written). Fails if the connection stays open.
raw_request()
{
	pod_exec client timeout 5 bash -c \
		"exec 3<>/dev/tcp/$VIP_WEB/80 && cat '$1' >&3 && cat <&3"
}

# expect_400 NAME BYTES: the request is refused with 400, the connection is
# closed by the proxy, and the upstream saw no request at all.
expect_400()
{
	local f="$OR_STATE/raw-$1" before after
	printf '%b' "$2" >"$f"
	before=$(upstream_count be-1 8080)
	run raw_request "$f"
	echo "$output"
	after=$(upstream_count be-1 8080)
	[ "$status" -eq 0 ] # cat returned: the proxy closed the connection
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 400 ]]
	grep -qi '^connection: close' <<<"$output"
	[ "$after" -eq "$before" ]
}

@test "http errors: Content-Length with Transfer-Encoding -> 400, closed" {
	expect_400 cl-te 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
}

@test "http errors: two Content-Length headers -> 400, closed" {
	expect_400 two-cl 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!'
}

@test "http errors: a bad chunk size -> 400, closed" {
	expect_400 bad-chunk 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'
}

@test "http errors: obs-fold -> 400, closed" {
	expect_400 obs-fold 'GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n'
}

@test "http errors: NUL in a header -> 400, closed" {
	expect_400 nul 'GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n'
}

@test "http errors: bare CR in a header -> 400, closed" {
	expect_400 bare-cr 'GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n'
}

@test "http errors: not HTTP at all -> 400, closed" {
	expect_400 garbage 'HELLO THERE\r\n\r\n'
}

@test "http errors: a head over 60 KiB -> 431, closed" {
	local f="$OR_STATE/raw-big-head"
	{
		printf 'GET / HTTP/1.1\r\nHost: a\r\nX-Big: '
		head -c 70000 /dev/zero | tr '\0' a
		printf '\r\n\r\n'
	} >"$f"
	run raw_request "$f"
	echo "${output:0:300}"
	[ "$status" -eq 0 ]
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 431 ]]
}

@test "http errors: the proxy still serves a good request afterwards" {
	run pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^backend=be-1 ]]
}

@test "http: a request followed by a half-close is still answered, then closed" {
	# socat sends the request, shuts its write side at stdin's EOF and
	# keeps reading: the answer must still come.
	run pod_exec client sh -c \
		"printf 'GET /half HTTP/1.1\r\nHost: a\r\n\r\n' | timeout 5 socat -t 4 - TCP:$VIP_WEB:80"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 200 ]]
	grep -q '^backend=be-1 ' <<<"$output"
}
