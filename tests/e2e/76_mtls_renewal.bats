#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# SVID renewal under load (issue 4): with svid_ttl_s: 60 the agents renew
# every pod's SVID at half life, every ~30 s. For ~72 s a long-lived TCP
# stream through the tunnel and a steady stream of new connections (one
# HTTP request and one TCP connection every ~200 ms) cross at least two
# renewals on both nodes with zero failures. This file takes ~80 s.
#
#   node-a  client    10.244.1.2   enrolled
#           outsider  10.244.1.3   not enrolled: samples the SVIDs the listeners present
#   node-b  be        10.244.1.21  upstream --http 8080 --echo 9000

load lib/cluster

CLIENT=10.244.1.2
OUTSIDER=10.244.1.3
BE=10.244.1.21
VIP_WEB=10.96.0.90  # http :80 -> be:8080
VIP_ECHO=10.96.0.91 # tcp :9000 -> be:9000

TD=cluster.local
RUN_S=${MTLS_RENEWAL_RUN_S:-72} # > 2 x 30 s: two renewals at least, wherever the window falls

setup_file()
{
	local p
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	for p in openssl timeout; do
		command -v "$p" >/dev/null || { echo "$p is not installed: run tests/deps.sh" >&2; return 1; }
	done
	cluster_init || return 1
	node_add node-b || { cluster_cleanup; return 1; }
	pod_add client $CLIENT || { cluster_cleanup; return 1; }
	pod_label client app=client outrider.io/mode=enabled
	pod_add outsider $OUTSIDER || { cluster_cleanup; return 1; }
	pod_label outsider app=outsider
	pod_add be $BE || { cluster_cleanup; return 1; }
	pod_node be node-b
	pod_label be app=be outrider.io/mode=enabled
	upstream_start be be --http 8080 --echo 9000 || { cluster_cleanup; return 1; }
	cluster_services <<EOF
services:
  - name: web
    vip: $VIP_WEB
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: be}
  - name: echo
    vip: $VIP_ECHO
    ports: [{port: 9000, protocol: tcp}]
    selector: {app: be}
svid_ttl_s: 60
EOF
	nodes_up node-a node-b || return 1
	mkdir "$OR_STATE/pki"
	cert_mint "$OR_STATE/pki/tester" "$(ca_dir)/ca" "spiffe://$TD/ns/default/sa/tester" ||
		{ cluster_cleanup; return 1; }
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# svid_sample IP: "serial not_after_epoch" of the SVID the listener at IP:15008 presents.
svid_sample()
{
	local pem serial end
	pem=$(tls_peer_cert outsider "$1" "$OR_STATE/pki/tester") || return 1
	[ -n "$pem" ] || return 1
	serial=$(openssl x509 -noout -serial <<<"$pem") || return 1
	end=$(openssl x509 -noout -enddate <<<"$pem") || return 1
	echo "${serial#serial=} $(date -d "${end#notAfter=}" +%s)"
}

# failures NODE: every TLS failure and every failed inbound tunnel NODE counted.
failures()
{
	local tls bad app
	tls=$(on_node "$1" metric outrider_tls_failures_total) || return 1
	bad=$(on_node "$1" metric outrider_tunnels_total result=bad_request) || return 1
	app=$(on_node "$1" metric outrider_tunnels_total result=app_failed) || return 1
	echo $((tls + bad + app))
}

@test "renewal: the SVIDs the listeners present live 60 s" {
	local s now
	for ip in $BE $CLIENT; do
		s=$(svid_sample $ip)
		now=$(date +%s)
		echo "$ip: $s (now $now)"
		[ "${s#* }" -gt "$now" ]
		[ "${s#* }" -le $((now + 61)) ]
	done
}

@test "renewal: a long-lived stream and a new connection every 200 ms cross two renewals with zero failures" {
	local fa0 fb0 fa1 fb1 e0 e1 drip loop drip_status loop_status t_end ip s n_be n_client
	fa0=$(failures node-a)
	fb0=$(failures node-b)
	e0=$(on_node node-b metric outrider_tunnels_total result=established)

	# The stream: one TCP connection through the echo service for the whole
	# run, a line every 0.5 s, each echoed back intact within 5 s.
	# Both run as children of this shell (not in $(...)), so that it reaps them.
	pod_spawn client "$OR_STATE/logs/drip" bash -c '
		n=$(('"$RUN_S"' * 2))
		exec 3<>/dev/tcp/'"$VIP_ECHO"'/9000 || { echo "drip: cannot connect"; exit 1; }
		for ((i = 1; i <= n; i++)); do
			printf "drip %d %s\n" "$i" "$(date +%s)" >&3 || { echo "drip: write $i failed"; exit 1; }
			IFS= read -r -t 5 line <&3 || { echo "drip: no echo for line $i"; exit 1; }
			case "$line" in "drip $i "*) ;; *) echo "drip: line $i came back as \"$line\""; exit 1 ;; esac
			sleep 0.5
		done
		echo "drip ok $n"' >"$OR_STATE/drip.pid"
	drip=$(<"$OR_STATE/drip.pid")
	# The new connections: an HTTP request and a TCP connection every ~200 ms.
	pod_spawn client "$OR_STATE/logs/loop" bash -c '
		ok=0 fail=0 end=$((SECONDS + '"$RUN_S"'))
		while [ "$SECONDS" -lt "$end" ]; do
			if out=$(curl -sS --max-time 5 http://'"$VIP_WEB"'/ 2>&1) && [[ "$out" == "backend=be "* ]]; then
				ok=$((ok + 1))
			else
				fail=$((fail + 1)); echo "http failed at $(date +%T.%N): $out"
			fi
			if out=$(orclient '"$VIP_ECHO"' 9000 --send 4K --timeout-ms 5000 2>&1); then
				ok=$((ok + 1))
			else
				fail=$((fail + 1)); echo "tcp failed at $(date +%T.%N): $out"
			fi
			sleep 0.2
		done
		echo "loop ok=$ok fail=$fail"; [ "$fail" -eq 0 ]' >"$OR_STATE/loop.pid"
	loop=$(<"$OR_STATE/loop.pid")

	# Meanwhile: the SVIDs both listeners present, every ~4 s.
	: >"$OR_STATE/svids"
	t_end=$(($(_or_now_ms) + RUN_S * 1000))
	while [ "$(_or_now_ms)" -lt "$t_end" ]; do
		for ip in $BE $CLIENT; do
			s=$(svid_sample $ip) && echo "$ip $s" >>"$OR_STATE/svids"
		done
		sleep 4
	done
	# Both end on their own (a stalled drip within 5 s of its last line).
	drip_status=0 loop_status=0
	wait_until $(((RUN_S + 20) * 1000)) eval '! _or_alive $drip && ! _or_alive $loop' || true
	wait "$drip" || drip_status=$?
	wait "$loop" || loop_status=$?

	echo "--- drip (exit $drip_status)"; cat "$OR_STATE/logs/drip"
	echo "--- loop (exit $loop_status)"; tail -n 20 "$OR_STATE/logs/loop"
	echo "--- SVIDs seen (ip serial not_after)"; sort -u -k1,2 "$OR_STATE/svids" | sort -k3n
	[ "$drip_status" -eq 0 ]
	[ "$loop_status" -eq 0 ]
	grep -q "^drip ok $((RUN_S * 2))\$" "$OR_STATE/logs/drip"
	grep -q '^loop ok=[0-9]* fail=0$' "$OR_STATE/logs/loop"
	# ~2 connections per ~0.25 s for RUN_S seconds: at least 3 a second.
	n=$(sed -n 's/^loop ok=\([0-9]*\) .*/\1/p' "$OR_STATE/logs/loop")
	[ "$n" -ge $((RUN_S * 3)) ]

	# Two renewals (three SVIDs) on each node, seen from outside.
	n_be=$(awk -v ip=$BE '$1 == ip { print $2 }' "$OR_STATE/svids" | sort -u | wc -l)
	n_client=$(awk -v ip=$CLIENT '$1 == ip { print $2 }' "$OR_STATE/svids" | sort -u | wc -l)
	echo "distinct SVIDs: be $n_be, client $n_client"
	[ "$n_be" -ge 3 ]
	[ "$n_client" -ge 3 ]
	[ "$(grep -c 'SVID renewed.*pod=default/be\|SVID renewed.*pod=be ' "$(on_node node-b sh -c 'echo $OR_AGENT_LOG')")" -ge 2 ]
	[ "$(grep -c 'SVID renewed.*pod=default/client\|SVID renewed.*pod=client ' "$OR_AGENT_LOG")" -ge 2 ]

	# Nothing failed on either side; the tunnels were new ones each time.
	fa1=$(failures node-a)
	fb1=$(failures node-b)
	e1=$(on_node node-b metric outrider_tunnels_total result=established)
	echo "failures node-a $fa0 -> $fa1, node-b $fb0 -> $fb1; established $e0 -> $e1"
	[ "$fa1" -eq "$fa0" ]
	[ "$fb1" -eq "$fb0" ]
	[ $((e1 - e0)) -ge $((n / 2)) ]
}
