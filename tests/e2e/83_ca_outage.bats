#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The CA unavailable while certificates expire (issue 7). The agents sign
# only while their CA's files hold the CA they started with (or_ca_check).
# With the key gone: no SVID is renewed; each pod's current one serves until
# it expires (svid_ttl_s: 60), then the tunnels fail closed, never falling
# back to plaintext. With the key back, renewal catches up at once.
# This file takes ~75 s.
#
#   node-a  client  10.244.1.2   enrolled
#   node-b  be      10.244.1.21  enrolled; upstream --http 8080 --echo 9000
# Services, mtls: strict: web (http :80 -> be:8080), echo (tcp :9000 -> be:9000);
# outlier detection off, so the failures while expired eject nothing.

load lib/cluster

CLIENT=10.244.1.2
BE=10.244.1.21
VIP_WEB=10.96.0.90
VIP_ECHO=10.96.0.91

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	cluster_init || return 1
	node_add node-b || { cluster_cleanup; return 1; }
	pod_add client $CLIENT || { cluster_cleanup; return 1; }
	pod_label client app=client outrider.io/mode=enabled
	pod_add be $BE || { cluster_cleanup; return 1; }
	pod_node be node-b
	pod_label be app=be outrider.io/mode=enabled
	upstream_start be be --http 8080 --echo 9000 --control "$UPSTREAM_CONTROL_PORT" ||
		{ cluster_cleanup; return 1; }
	cluster_services <<EOF
services:
  - name: web
    vip: $VIP_WEB
    mtls: strict
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: be}
    policy: {outlier_detection: {consecutive_5xx: 0, consecutive_connect_failures: 0}}
  - name: echo
    vip: $VIP_ECHO
    mtls: strict
    ports: [{port: 9000, protocol: tcp}]
    selector: {app: be}
    policy: {outlier_detection: {consecutive_5xx: 0, consecutive_connect_failures: 0}}
svid_ttl_s: 60
EOF
	nodes_up node-a node-b || return 1
}
teardown_file()
{
	[ -e "$(ca_dir)/ca.key.away" ] && mv "$(ca_dir)/ca.key.away" "$(ca_dir)/ca.key"
	cluster_cleanup
}
setup() { e2e_setup; }
teardown() { e2e_teardown; }

web() { pod_exec client curl -sS --max-time 3 -o /dev/null -w '%{http_code}' "http://$VIP_WEB/"; }
web_ok() { [ "$(web)" = 200 ]; }
echo_ok() { pod_exec client orclient "$VIP_ECHO" 9000 --send 1K --timeout-ms 3000 >/dev/null 2>&1; }
# not_after (Unix seconds) of POD's SVID, from or_pods on its node.
svid_end() { on_node "$2" ctl --json certs | jq -r --arg p "default/$1" '.[] | select(.name == $p) | .not_after'; }

@test "CA unavailable: the SVIDs serve until they expire, then the tunnels fail closed; the CA back, they renew" {
	local end0 end_be now requests conns
	[ "$(web)" = 200 ]
	end0=$(svid_end client node-a)
	end_be=$(svid_end be node-b)
	echo "client SVID ends $end0, be's $end_be"
	[ "$end0" -gt 0 ] && [ "$end_be" -gt 0 ]

	mv "$(ca_dir)/ca.key" "$(ca_dir)/ca.key.away"
	wait_until 3000 grep -q 'msg="CA unavailable' "$OR_AGENT_LOG"
	wait_until 3000 grep -q 'msg="CA unavailable' "$OR_STATE/agent-b.log"

	# Past half life (when they would be renewed) and before the end: still served.
	now=$(date +%s)
	sleep $((end0 - now - 20 > 0 ? end0 - now - 20 : 0))
	[ "$(svid_end client node-a)" = "$end0" ]
	[ "$(web)" = 200 ]
	echo_ok

	# Expired: refused, and nothing reached the app in plaintext.
	now=$(date +%s)
	sleep $(( (end0 > end_be ? end0 : end_be) - now + 2 ))
	requests=$(upstream_count be 8080)
	conns=$(upstream_count be 9000)
	run web
	echo "after expiry: $output"
	[ "$output" != 200 ]
	[ "$(upstream_count be 8080)" = "$requests" ]
	! echo_ok
	[ "$(upstream_count be 9000)" = "$conns" ]
	[ "$(on_node node-b metric outrider_tls_failures_total reason=expired)" -ge 1 ] ||
		[ "$(metric outrider_tls_failures_total reason=expired)" -ge 1 ]

	# The CA back: renewed at once, and served again.
	mv "$(ca_dir)/ca.key.away" "$(ca_dir)/ca.key"
	wait_until 5000 grep -q 'msg="CA available again' "$OR_AGENT_LOG"
	wait_until 8000 web_ok
	[ "$(svid_end client node-a)" -gt "$end0" ]
	[ "$(web)" = 200 ]
	echo_ok
}
