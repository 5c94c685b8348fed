#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Sidecar mode: `outriderd --sidecar NS/NAME` inside each pod's netns as
# uid 1337, traffic captured by iptables REDIRECT (deploy/sidecar/
# outrider-iptables.sh: outbound to 15001, inbound to 15006), original
# destination from SO_ORIGINAL_DST. The same proxy code, policies and mTLS
# tunnel as the node agent; no BPF. No node agent runs in this file.

load lib/cluster

setup_file() { e2e_require && sidecar_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown()
{
	local f
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		for f in "$OR_STATE"/logs/sidecar-*.log; do
			[ -f "$f" ] || continue
			echo "--- last 20 lines of $f"
			tail -n 20 "$f"
		done
	fi
}

VIP=10.96.0.10
IPTABLES_SH="$OR_ROOT/deploy/sidecar/outrider-iptables.sh"
READY_PORT=15021
ADMIN_PORT=15020

sidecar_config() # MTLS
{
	cat >"$OR_STATE/sidecar.yaml" <<EOF
node: $OR_NODE_NAME
pin_dir: $OR_PIN
state_dir: $OR_STATE/sidecar-state
admin_address: 127.0.0.1:$ADMIN_PORT
ready_address: 127.0.0.1:$READY_PORT
workers: 1
pods:
  - {name: client, namespace: default, labels: {app: client, outrider.io/mode: enabled}, ip: 10.244.1.2, service_account: client,
     netns: $(pod_netns_path client), cgroup: $(pod_cgroup client)}
  - {name: server, namespace: default, labels: {app: server, outrider.io/mode: enabled}, ip: 10.244.1.3, service_account: server,
     netns: $(pod_netns_path server), cgroup: $(pod_cgroup server)}
services:
  - name: web
    vip: $VIP
    ports: [{port: 80, target_port: 8080}]
    selector: {app: server}
    mtls: $1
EOF
}

# sidecar_start POD: iptables capture, then outriderd as uid 1337 in the pod.
# The pod gets a route for the service range (onto the isolated test bridge,
# as a real pod's default route would carry it): without one, connect()
# fails before netfilter sees the packet. The node netns routes nowhere.
sidecar_start()
{
	local pod=$1 pid
	ip -n "$(pod_netns "$pod")" route add 10.96.0.0/16 dev eth0 || return 1
	ip netns exec "$(pod_netns "$pod")" "$IPTABLES_SH" install || return 1
	pid=$(pod_spawn "$pod" "$OR_STATE/logs/sidecar-$pod.log" \
		setpriv --reuid 1337 --regid 1337 --clear-groups -- \
		"$OR_BUILD/outriderd" --sidecar "default/$pod" --config "$OR_STATE/sidecar.yaml" \
		--log-level debug)
	echo "$pid" >"$OR_STATE/sidecar-$pod.pid"
	wait_until 5000 sidecar_ready "$pod"
}

sidecar_ready() { [ "$(pod_exec "$1" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$READY_PORT/healthz/ready")" = 200 ]; }

sidecar_metric() # POD NAME [LABEL=VALUE]: summed over matching samples
{
	pod_exec "$1" curl -sS "http://127.0.0.1:$ADMIN_PORT/metrics" |
		awk -v n="$2" -v l="${3:-}" '$1 ~ "^" n "({|$)" && index($1, l) { s += $NF } END { print s + 0 }'
}

sidecar_up()
{
	[ -n "${OR_SKIP:-}" ] && return 0
	if cluster_init && pod_add client 10.244.1.2 && pod_add server 10.244.1.3 &&
		pod_add outsider 10.244.1.4 && upstream_start server server --http 8080 &&
		mkdir -p "$OR_STATE/sidecar-state" && chown 1337:1337 "$OR_STATE/sidecar-state" &&
		sidecar_config disabled && sidecar_start server && sidecar_start client; then
		return 0
	fi
	echo "--- sidecar_up failed" >&2
	tail -n 30 "$OR_STATE"/logs/sidecar-*.log >&2 2>/dev/null
	cluster_cleanup
	return 1
}

@test "sidecar: the client's request to the service VIP is proxied by both sidecars" {
	local out_before in_before
	out_before=$(sidecar_metric client outrider_tcp_connections_opened_total 'service="default/web"')
	in_before=$(sidecar_metric server outrider_tcp_connections_opened_total 'service="inbound"')
	run pod_exec client curl -sS --max-time 3 "http://$VIP/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == backend=server* ]]
	[ "$(sidecar_metric client outrider_tcp_connections_opened_total 'service="default/web"')" -eq $((out_before + 1)) ]
	[ "$(sidecar_metric server outrider_tcp_connections_opened_total 'service="inbound"')" -eq $((in_before + 1)) ]
}

@test "sidecar: runs as uid 1337 and loads no BPF program" {
	local pid
	pid=$(cat "$OR_STATE/sidecar-client.pid")
	[ "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" = 1337 ]
	! ls -l "/proc/$pid/fd" | grep -q 'anon_inode:bpf'
	[ ! -e "$OR_PIN" ]
}

@test "sidecar: an address no service has passes through (to the server pod directly)" {
	local before
	before=$(sidecar_metric client outrider_tcp_connections_opened_total 'service="passthrough"')
	run pod_exec client curl -sS --max-time 3 "http://10.244.1.3:8080/"
	echo "$output"
	[[ "$output" == backend=server* ]]
	[ "$(sidecar_metric client outrider_tcp_connections_opened_total 'service="passthrough"')" -eq $((before + 1)) ]
}

@test "sidecar: plaintext from a pod without a sidecar reaches the app when mtls is disabled" {
	run pod_exec outsider curl -sS --max-time 3 "http://10.244.1.3:8080/"
	echo "$output"
	[[ "$output" == backend=server* ]]
}

@test "sidecar mTLS (strict): the client goes through the tunnel; plaintext from outside is refused" {
	local before
	sidecar_config strict
	kill -HUP "$(cat "$OR_STATE/sidecar-client.pid")" "$(cat "$OR_STATE/sidecar-server.pid")"
	sleep 0.3
	before=$(sidecar_metric server outrider_tunnels_total 'result="established"')
	run pod_exec client curl -sS --max-time 3 "http://$VIP/"
	echo "$output"
	[[ "$output" == backend=server* ]]
	[ "$(sidecar_metric server outrider_tunnels_total 'result="established"')" -gt "$before" ]
	# The server's sidecar presented the server's SPIFFE identity.
	[ "$(sidecar_metric client outrider_tls_handshakes_total)" -ge 1 ]

	run pod_exec outsider curl -sS --max-time 3 "http://10.244.1.3:8080/"
	echo "$output"
	[ "$status" -ne 0 ]
	sidecar_config disabled
	kill -HUP "$(cat "$OR_STATE/sidecar-client.pid")" "$(cat "$OR_STATE/sidecar-server.pid")"
}

# keepalive_twice BETWEEN...: two requests on one connection from the client
# pod (bash /dev/tcp), with the command BETWEEN run in the middle; prints
# both status lines.
keepalive_twice()
{
	local between=$1
	pod_exec client bash -c '
		exec 3<>/dev/tcp/'"$VIP"'/80 || exit 1
		one() {
			local line len=0
			printf "GET / HTTP/1.1\r\nHost: web\r\n\r\n" >&3
			IFS= read -r -t 3 line <&3 || { echo "no status line"; return 1; }
			echo "${line%$'"'"'\r'"'"'}"
			while IFS= read -r -t 3 line <&3; do
				line=${line%$'"'"'\r'"'"'}
				[ -z "$line" ] && break
				case "${line,,}" in content-length:*) len=${line#*: } ;; esac
			done
			[ "$len" -gt 0 ] && dd bs=1 count="$len" status=none <&3 >/dev/null
			return 0
		}
		one && '"$between"' && one'
}

# broken_tunnels N: N tunnels to the server's sidecar, from a client with a
# valid SVID, each cut (killed) without TLS close_notify mid-stream.
broken_tunnels()
{
	local ca="$OR_STATE/sidecar-state/ca" cert="$OR_STATE/rogue" i pid
	[ -f "$cert.crt" ] || cert_mint "$cert" "$ca" spiffe://cluster.local/ns/default/sa/rogue || return 1
	for ((i = 0; i < $1; i++)); do
		{ printf 'CONNECT 10.244.1.3:8080 HTTP/1.1\r\nHost: 10.244.1.3:8080\r\n\r\n'; sleep 3; } |
			ip netns exec "$(pod_netns outsider)" openssl s_client -connect 10.244.1.3:15008 \
				-cert "$cert.crt" -key "$cert.key" -quiet >/dev/null 2>&1 &
		pid=$!
		sleep 0.3
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	return 0
}

@test "sidecar mTLS: tunnels cut mid-stream do not break another on the same worker" {
	sidecar_config strict
	kill -HUP "$(cat "$OR_STATE/sidecar-client.pid")" "$(cat "$OR_STATE/sidecar-server.pid")"
	sleep 0.3
	# Between two requests on one connection, other tunnels to the server's
	# sidecar end without close_notify, on the worker (there is one) that
	# also serves the open tunnel; OpenSSL queues an error for each.
	run keepalive_twice "$(declare -f broken_tunnels cert_mint pod_netns); OR_STATE=$OR_STATE OR_NS_PREFIX=$OR_NS_PREFIX broken_tunnels 3"
	echo "$output"
	[ "$(grep -c '^HTTP/1.1 200' <<<"$output")" -eq 2 ]
	sidecar_config disabled
	kill -HUP "$(cat "$OR_STATE/sidecar-client.pid")" "$(cat "$OR_STATE/sidecar-server.pid")"
}

@test "sidecar: SIGTERM ends it cleanly; with the rules removed, traffic flows direct" {
	local pid
	pid=$(cat "$OR_STATE/sidecar-client.pid")
	kill -TERM "$pid"
	wait_until 5000 bash -c "! kill -0 $pid 2>/dev/null"
	grep -q 'msg="stopped"' "$OR_STATE/logs/sidecar-client.log"
	ip netns exec "$(pod_netns client)" "$IPTABLES_SH" remove
	[ -z "$(ip netns exec "$(pod_netns client)" "$IPTABLES_SH" show)" ]
	run pod_exec client curl -sS --max-time 3 "http://10.244.1.3:8080/"
	[[ "$output" == backend=server* ]]
}
