#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# mTLS between node agents (issue 4): two agents on one machine, node-a and
# node-b (separate pin dirs and admin ports, one state_dir so one demo CA),
# every pod on the one bridge. A client on node-a calls services whose
# endpoints are on node-b: the agents carry it through a TLS 1.3 tunnel to
# <pod ip>:15008 under each pod's SPIFFE identity.
#
#   node-a  client    10.244.1.2   enrolled, spiffe://cluster.local/ns/default/sa/client
#           outsider  10.244.1.3   not enrolled: openssl s_client, plaintext curl
#   node-b  be        10.244.1.21  services web (http) and echo (tcp)
#           open      10.244.1.22  service web-plain, mtls: disabled
#           guarded   10.244.1.23  service guarded: deny namespace default on 8080
#           allowlist 10.244.1.24  service allowlist: allow only sa/tester
#           locked    10.244.1.25  service locked, mtls: strict
#           vault     10.244.1.26  namespace vault (mtls: strict), service vault-web
# Every node-b pod runs `upstream --http 8080 --echo 9000 --control 7000`.
# SVID renewal under load is in 76_mtls_renewal.bats.

load lib/cluster

CLIENT=10.244.1.2
OUTSIDER=10.244.1.3
BE=10.244.1.21
OPEN=10.244.1.22
GUARDED=10.244.1.23
ALLOWLIST=10.244.1.24
LOCKED=10.244.1.25
VAULT=10.244.1.26

VIP_WEB=10.96.0.80       # http :80 -> be:8080
VIP_ECHO=10.96.0.81      # tcp :9000 -> be:9000
VIP_PLAIN=10.96.0.82     # http :80 -> open:8080, mtls: disabled
VIP_GUARDED=10.96.0.83   # http :80 -> guarded:8080 (denied), tcp :9000 -> guarded:9000 (allowed)
VIP_ALLOWLIST=10.96.0.84 # http :80, tcp :9000 -> allowlist (only sa/tester may)
VIP_LOCKED=10.96.0.85    # http :80 -> locked:8080, mtls: strict
VIP_VAULT=10.96.0.86     # http :80 -> vault:8080, namespace vault is strict

TD=cluster.local
TESTER_ID=spiffe://$TD/ns/default/sa/tester

setup_file()
{
	local p
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	for p in openssl tcpdump timeout; do
		command -v "$p" >/dev/null || { echo "$p is not installed: run tests/deps.sh" >&2; return 1; }
	done
	cluster_init || return 1
	node_add node-b || { cluster_cleanup; return 1; }

	pod_add client $CLIENT || { cluster_cleanup; return 1; }
	pod_label client app=client outrider.io/mode=enabled
	pod_add outsider $OUTSIDER || { cluster_cleanup; return 1; }
	pod_label outsider app=outsider
	for p in be:$BE open:$OPEN guarded:$GUARDED allowlist:$ALLOWLIST locked:$LOCKED vault:$VAULT; do
		pod_add "${p%%:*}" "${p#*:}" || { cluster_cleanup; return 1; }
		pod_node "${p%%:*}" node-b
		pod_label "${p%%:*}" "app=${p%%:*}" outrider.io/mode=enabled
		upstream_start "${p%%:*}" "${p%%:*}" --http 8080 --echo 9000 \
			--control "$UPSTREAM_CONTROL_PORT" || { cluster_cleanup; return 1; }
	done
	pod_namespace vault vault

	cluster_namespaces <<EOF
namespaces:
  - {name: vault, mtls: strict}
EOF
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
  - name: web-plain
    vip: $VIP_PLAIN
    mtls: disabled
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: open}
  - name: guarded
    vip: $VIP_GUARDED
    ports:
      - {port: 80, target_port: 8080, protocol: http}
      - {port: 9000, protocol: tcp}
    selector: {app: guarded}
    authorization:
      - {action: deny, from: {namespace: default}, ports: [8080]}
  - name: allowlist
    vip: $VIP_ALLOWLIST
    ports:
      - {port: 80, target_port: 8080, protocol: http}
      - {port: 9000, protocol: tcp}
    selector: {app: allowlist}
    authorization:
      - {action: allow, from: {spiffe: "$TESTER_ID"}}
  - name: locked
    vip: $VIP_LOCKED
    mtls: strict
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: locked}
  - name: vault-web
    namespace: vault
    vip: $VIP_VAULT
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: vault}
EOF
	nodes_up node-a node-b || return 1

	# Client certificates for s_client, minted by hand (openssl, not the agent).
	mkdir "$OR_STATE/pki"
	local ca pki="$OR_STATE/pki"
	ca="$(ca_dir)/ca"
	cert_mint "$pki/tester" "$ca" "$TESTER_ID" &&
		ca_mint "$pki/other-ca" &&
		cert_mint "$pki/other-ca-tester" "$pki/other-ca" "$TESTER_ID" &&
		cert_mint "$pki/other-td" "$ca" "spiffe://other.example/ns/default/sa/tester" &&
		cert_mint "$pki/is-ca" "$ca" "$TESTER_ID" 'basicConstraints=critical,CA:TRUE' &&
		cert_mint "$pki/two-uris" "$ca" "$TESTER_ID" \
			"subjectAltName=URI:$TESTER_ID,URI:spiffe://$TD/ns/default/sa/other" &&
		cert_mint "$pki/http-uri" "$ca" "http://$TD/ns/default/sa/tester" &&
		cert_mint "$pki/no-uri" "$ca" "" || { cluster_cleanup; return 1; }
}
teardown_file() { cluster_cleanup; }
setup()
{
	e2e_setup
	PKI="$OR_STATE/pki"
}
teardown()
{
	e2e_teardown
	# A capture a failed test left behind.
	if [ -n "${CAPTURE_PID:-}" ]; then
		capture_stop "$CAPTURE_PID"
	fi
}

# ---- helpers ---------------------------------------------------------------

# b_metric NAME [LABEL=VALUE...]: a counter of node-b's agent.
b_metric() { on_node node-b metric "$@"; }

# b_metric_above N NAME [LABEL=VALUE...]: node-b's counter is above N.
b_metric_above()
{
	local n=$1
	shift
	[ "$(b_metric "$@")" -gt "$n" ]
}

# stat_of NODE REASON: one or_stats counter (`outriderctl --json stats`) of NODE's agent.
stat_of()
{
	on_node "$1" ctl --json stats | jq -er --arg k "$2" '.[$k] // .reasons[$k] // error("no \($k) in stats")'
}

# pcap_payloads FILE: one line per TCP segment with data in the capture:
# "SRC_IP SPORT DST_IP DPORT hh hh hh ..." (the TCP payload, IPv4).
pcap_payloads()
{
	tcpdump -r "$1" -nn -x 2>/dev/null | awk '
		function hex(s,   i, v) {
			v = 0
			for (i = 1; i <= length(s); i++)
				v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
			return v
		}
		function flush(   ihl, doff, i, out, sp, dp) {
			if (n == 0) return
			ihl = (hex(b[0]) % 16) * 4
			if (b[9] != "06") { n = 0; return }
			doff = int(hex(b[ihl + 12]) / 16) * 4
			sp = hex(b[ihl] b[ihl + 1]); dp = hex(b[ihl + 2] b[ihl + 3])
			if (ihl + doff < n) {
				out = hex(b[12]) "." hex(b[13]) "." hex(b[14]) "." hex(b[15]) " " sp " "
				out = out hex(b[16]) "." hex(b[17]) "." hex(b[18]) "." hex(b[19]) " " dp
				for (i = ihl + doff; i < n; i++) out = out " " b[i]
				print out
			}
			n = 0
		}
		/^[^ \t]/ { flush(); next }
		/^[ \t]+0x[0-9a-f]+:/ {
			for (i = 2; i <= NF; i++) {
				w = $i
				if (w !~ /^[0-9a-f]+$/) break
				b[n++] = substr(w, 1, 2)
				if (length(w) == 4) b[n++] = substr(w, 3, 2)
			}
		}
		END { flush() }'
}

# capture_summary FILE: what a reader of the capture would want to know.
capture_summary()
{
	echo "--- capture $1: $(tcpdump -r "$1" -nn 2>/dev/null | wc -l) packets"
	tcpdump -r "$1" -nn 2>/dev/null | head -n 30
}

# ---- the tunnel, as the client sees it -------------------------------------

@test "mtls: both agents enrolled their own pods, each with its SVID and a :15008 listener" {
	run on_node node-a ctl --json pods
	echo "node-a: $output"
	jq -e 'any(.[]; .name == "client" or .name == "default/client")' <<<"$output"
	jq -e 'all(.[]; .name != "be" and .name != "default/be")' <<<"$output"
	run on_node node-b ctl --json pods
	echo "node-b: $output"
	jq -e 'any(.[]; .name == "be" or .name == "default/be")' <<<"$output"
	jq -e 'all(.[]; .name != "client" and .name != "default/client")' <<<"$output"
	pod_listening client 15008
	pod_listening be 15008
	! pod_listening outsider 15008
	# One CA for both: made once, in the shared state_dir.
	[ -s "$(ca_dir)/ca.crt" ]
	[ "$(grep -c 'created a demo CA' "$OR_AGENT_LOG" "$(on_node node-b sh -c 'echo $OR_AGENT_LOG')" |
		awk -F: '{ s += $NF } END { print s }')" -eq 1 ]
}

@test "mtls: the listener presents the pod's SPIFFE ID, chained to the cluster CA" {
	local pem
	pem=$(tls_peer_cert outsider $BE "$PKI/tester")
	echo "$pem"
	[ -n "$pem" ]
	run openssl x509 -noout -ext subjectAltName,basicConstraints,keyUsage <<<"$pem"
	echo "$output"
	grep -q "URI:spiffe://$TD/ns/default/sa/be\$" <<<"$output"
	grep -q 'CA:FALSE' <<<"$output"
	grep -q 'Digital Signature' <<<"$output"
	# ECDSA P-256.
	openssl x509 -noout -text <<<"$pem" | grep -Eq 'ASN1 OID: prime256v1|NIST CURVE: P-256'
	# The one in the vault namespace says so.
	pem=$(tls_peer_cert outsider $VAULT "$PKI/tester")
	openssl x509 -noout -ext subjectAltName <<<"$pem" | grep -q "URI:spiffe://$TD/ns/vault/sa/vault\$"
}

@test "mtls: a client on node-a gets the answer of an HTTP service whose endpoint is on node-b" {
	local e0 e1
	e0=$(b_metric outrider_tunnels_total result=established)
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=be "* ]]
	e1=$(b_metric outrider_tunnels_total result=established)
	echo "node-b tunnels established $e0 -> $e1"
	[ "$e1" -gt "$e0" ]
}

@test "mtls: a client on node-a streams through a TCP service whose endpoint is on node-b" {
	local e0 e1
	e0=$(b_metric outrider_tunnels_total result=established)
	run pod_exec client orclient $VIP_ECHO 9000 --send 4M
	echo "$output"
	[ "$status" -eq 0 ]
	jq -se 'map(select(has("match")))[0] | .match and .received == 4194304' <<<"$output"
	e1=$(b_metric outrider_tunnels_total result=established)
	echo "node-b tunnels established $e0 -> $e1"
	[ "$e1" -eq $((e0 + 1)) ]
}

@test "mtls: the app on node-b sees the client pod's address, not the agent's" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	# Through the tunnel the app's peer is the far agent inside the pod (the
	# pod's own address or loopback), never another pod's address.
	[[ "$output" =~ peer=(127\.0\.0\.1|::ffff:127\.0\.0\.1|$BE|::ffff:$BE|::1): ]]
}

@test "mtls: handshakes are counted on both sides; later ones resume the session" {
	local f0 r0 f1 r1 i
	f0=$(b_metric outrider_tls_handshakes_total kind=full)
	r0=$(b_metric outrider_tls_handshakes_total kind=resumed)
	for i in 1 2 3 4; do
		run pod_exec client orclient $VIP_ECHO 9000 --send 1000
		[ "$status" -eq 0 ]
	done
	f1=$(b_metric outrider_tls_handshakes_total kind=full)
	r1=$(b_metric outrider_tls_handshakes_total kind=resumed)
	echo "node-b handshakes full $f0 -> $f1, resumed $r0 -> $r1"
	[ $((f1 + r1 - f0 - r0)) -ge 4 ]
	[ $((r1 - r0)) -ge 3 ]
}

# ---- on the wire -----------------------------------------------------------

@test "mtls: on the link between the pods, a TLS 1.3 handshake and no plaintext" {
	local cap="$OR_STATE/tunnel.pcap" marker="plaintext-marker-$OR_ID" payloads
	CAPTURE_PID=$(capture_start node "$cap" host $CLIENT and host $BE)

	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=be "* ]]
	run pod_exec client bash -c "exec 3<>/dev/tcp/$VIP_ECHO/9000 && printf '%s\n' '$marker' >&3 &&
		IFS= read -r -t 5 line <&3 && printf '%s\n' \"\$line\""
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$marker" ]

	capture_stop "$CAPTURE_PID"
	CAPTURE_PID=
	capture_summary "$cap"
	payloads=$(pcap_payloads "$cap")
	echo "--- TLS records at the start of each segment (src sport dst dport bytes...)"
	awk '{ l = $1 " " $2 " " $3 " " $4; for (i = 5; i <= NF && i < 5 + 48; i++) l = l " " $i; print l }' <<<"$payloads" | head -n 12
	# Traffic between the two pods went to :15008, and only there.
	grep -q " $BE 15008 " <<<"$payloads"
	! awk -v be=$BE '$3 == be && $4 != 15008 { bad = 1 } END { exit !bad }' <<<"$payloads"
	! tcpdump -r "$cap" -nn 2>/dev/null | grep -Eq "\.(8080|9000)[ :]"
	# Neither the answer, nor the request, nor the CONNECT in the clear.
	! grep -aq 'backend=' "$cap"
	! grep -aq "$marker" "$cap"
	! grep -aq 'CONNECT ' "$cap"
	! grep -aq 'GET / HTTP' "$cap"
	# ClientHello (record 16 03 0x, handshake type 01) offering TLS 1.3 only:
	# supported_versions (00 2b) = [03 04].
	awk -v be=$BE '$3 == be && $4 == 15008 && $5 == "16" && $6 == "03" && $10 == "01"' <<<"$payloads" |
		grep -q ' 00 2b 00 03 02 03 04'
	# ServerHello (16 03 03, type 02) choosing it: supported_versions = 03 04.
	awk -v be=$BE '$1 == be && $2 == 15008 && $5 == "16" && $6 == "03" && $7 == "03" && $10 == "02"' <<<"$payloads" |
		grep -q ' 00 2b 00 02 03 04'
	# And then only encrypted records (application_data, 17 03 03).
	awk -v be=$BE '$1 == be && $2 == 15008' <<<"$payloads" | grep -q ' 17 03 03 '
}

@test "mtls: mtls: disabled carries the service in plaintext, with no tunnel" {
	local cap="$OR_STATE/plain.pcap" payloads
	CAPTURE_PID=$(capture_start node "$cap" host $CLIENT and host $OPEN)
	run pod_exec client curl -sS --max-time 5 "http://$VIP_PLAIN/"
	echo "$output"
	capture_stop "$CAPTURE_PID"
	CAPTURE_PID=
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=open "* ]]
	capture_summary "$cap"
	payloads=$(pcap_payloads "$cap")
	grep -q " $OPEN 8080 " <<<"$payloads"
	! grep -q " $OPEN 15008 " <<<"$payloads"
	grep -aq 'backend=open' "$cap"
}

# ---- the listener, from outside the mesh -------------------------------------

# probe_refused CERT REASON: s_client to be:15008 with CERT gets no tunnel,
# the app sees nothing, and node-b counts one failure of REASON.
probe_refused()
{
	local cert=$1 reason=$2 n0 n1 c0 c1
	n0=$(b_metric outrider_tls_failures_total reason="$reason")
	c0=$(upstream_count be 8080)
	run tls_probe outsider $BE "$cert" "CONNECT $BE:8080 HTTP/1.1\r\nHost: $BE:8080\r\n\r\nGET / HTTP/1.1\r\nHost: be\r\nConnection: close\r\n\r\n"
	echo "$output"
	! grep -q '^HTTP/1.1 200' <<<"$output"
	! grep -q 'backend=' <<<"$output"
	c1=$(upstream_count be 8080)
	[ "$c1" -eq "$c0" ]
	# Counted when the agent sees the alert go out: at most a moment later.
	wait_until 2000 b_metric_above "$n0" outrider_tls_failures_total reason="$reason" || true
	n1=$(b_metric outrider_tls_failures_total reason="$reason")
	echo "node-b tls failures{$reason} $n0 -> $n1"
	[ "$n1" -eq $((n0 + 1)) ]
}

@test "mtls: s_client without a client certificate is refused (no_cert)" {
	probe_refused "" no_cert
}

@test "mtls: s_client with a certificate from another CA is refused (chain)" {
	probe_refused "$PKI/other-ca-tester" chain
}

@test "mtls: s_client with our CA but another trust domain is refused (trust_domain)" {
	probe_refused "$PKI/other-td" trust_domain
}

@test "mtls: s_client with a CA certificate as its leaf is refused (is_ca)" {
	probe_refused "$PKI/is-ca" is_ca
}

@test "mtls: s_client with two URI SANs, or none, is refused (uri_count)" {
	probe_refused "$PKI/two-uris" uri_count
	probe_refused "$PKI/no-uri" uri_count
}

@test "mtls: s_client with an http:// URI SAN is refused (not_spiffe)" {
	probe_refused "$PKI/http-uri" not_spiffe
}

@test "mtls: the listener speaks TLS 1.3 only" {
	local t0 t1
	t0=$(b_metric outrider_tunnels_total result=established)
	run tls_probe outsider $BE "$PKI/tester" "CONNECT $BE:8080 HTTP/1.1\r\n\r\n" -tls1_2
	echo "$output"
	[ "$status" -ne 0 ]
	! grep -q '^HTTP/1.1 200' <<<"$output"
	t1=$(b_metric outrider_tunnels_total result=established)
	[ "$t1" -eq "$t0" ]
}

@test "mtls: a valid client SVID and CONNECT <pod ip>:8080 -> 200, and the app answers" {
	local e0 e1
	e0=$(b_metric outrider_tunnels_total result=established)
	run tls_probe outsider $BE "$PKI/tester" "CONNECT $BE:8080 HTTP/1.1\r\nHost: $BE:8080\r\n\r\nGET / HTTP/1.1\r\nHost: be\r\nConnection: close\r\n\r\n"
	echo "$output"
	[ "$(grep -m1 '^HTTP/1.1 ' <<<"$output" | tr -d '\r')" = "HTTP/1.1 200 OK" ] ||
		grep -m1 '^HTTP/1.1 ' <<<"$output" | grep -q '^HTTP/1.1 200'
	grep -q '^backend=be ' <<<"$output"
	# The CONNECT's 200 first, then the app's own 200.
	[ "$(grep -c '^HTTP/1.1 200' <<<"$output")" -eq 2 ]
	e1=$(b_metric outrider_tunnels_total result=established)
	[ "$e1" -eq $((e0 + 1)) ]
}

@test "mtls: a valid client SVID streams bytes to an echo app through CONNECT" {
	run tls_probe outsider $BE "$PKI/tester" "CONNECT $BE:9000 HTTP/1.1\r\nHost: $BE:9000\r\n\r\nhello through the tunnel\n"
	echo "$output"
	grep -q '^HTTP/1.1 200' <<<"$output"
	grep -qx 'hello through the tunnel' <<<"$output"
}

@test "mtls: CONNECT to a pod this listener does not serve -> 400" {
	local b0 b1 c0 target
	b0=$(b_metric outrider_tunnels_total result=bad_request)
	for target in "$OPEN:8080" "$CLIENT:8080" "10.244.1.99:8080"; do
		c0=$(upstream_count open 8080)
		run tls_probe outsider $BE "$PKI/tester" "CONNECT $target HTTP/1.1\r\nHost: $target\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
		echo "CONNECT $target: $output"
		grep -m1 '^HTTP/1.1 ' <<<"$output" | grep -q '^HTTP/1.1 400'
		! grep -q 'backend=' <<<"$output"
		[ "$(upstream_count open 8080)" -eq "$c0" ]
	done
	b1=$(b_metric outrider_tunnels_total result=bad_request)
	echo "node-b bad_request $b0 -> $b1"
	[ "$b1" -eq $((b0 + 3)) ]
}

@test "mtls: a request that is not a CONNECT -> 400" {
	run tls_probe outsider $BE "$PKI/tester" "GET / HTTP/1.1\r\nHost: $BE:8080\r\n\r\n"
	echo "$output"
	grep -m1 '^HTTP/1.1 ' <<<"$output" | grep -q '^HTTP/1.1 400'
	! grep -q 'backend=' <<<"$output"
}

# ---- authorization -------------------------------------------------------------

@test "mtls: a deny rule (namespace default, port 8080): the client's request fails, the app sees nothing, counted" {
	local d0 d1
	upstream_reset guarded 8080
	d0=$(b_metric outrider_tunnels_total result=denied)
	run pod_exec client curl -sS --max-time 10 -o "$OR_STATE/denied.body" -w '%{http_code}' "http://$VIP_GUARDED/"
	echo "curl: $status, code $output, body: $(cat "$OR_STATE/denied.body" 2>/dev/null)"
	[ "$output" != 200 ]
	! grep -q 'backend=' "$OR_STATE/denied.body" 2>/dev/null
	[ "$(upstream_count guarded 8080)" -eq 0 ]
	d1=$(b_metric outrider_tunnels_total result=denied)
	echo "node-b denied $d0 -> $d1"
	[ "$d1" -gt "$d0" ]
	grep -q 'tunnel denied' "$(on_node node-b sh -c 'echo $OR_AGENT_LOG')"
}

@test "mtls: the deny rule is for port 8080 only: the same pod's echo port answers" {
	run pod_exec client orclient $VIP_GUARDED 9000 --send 64K
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "mtls: an allow rule for sa/tester: the tester gets in, the client (sa/client) does not" {
	local d0 d1
	upstream_reset allowlist 8080
	upstream_reset allowlist 9000
	d0=$(b_metric outrider_tunnels_total result=denied)
	run pod_exec client curl -sS --max-time 10 -w '\n%{http_code}' "http://$VIP_ALLOWLIST/"
	echo "client over http: $output"
	[ "$(tail -n1 <<<"$output")" != 200 ]
	! grep -q 'backend=' <<<"$output"
	run pod_exec client orclient $VIP_ALLOWLIST 9000 --send 1000 --timeout-ms 3000
	echo "client over tcp: $output"
	[ "$status" -ne 0 ]
	[ "$(upstream_count allowlist 8080)" -eq 0 ]
	[ "$(upstream_count allowlist 9000)" -eq 0 ]
	d1=$(b_metric outrider_tunnels_total result=denied)
	echo "node-b denied $d0 -> $d1"
	[ "$d1" -ge $((d0 + 2)) ]

	run tls_probe outsider $ALLOWLIST "$PKI/tester" "CONNECT $ALLOWLIST:8080 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	echo "tester: $output"
	grep -q '^backend=allowlist ' <<<"$output"
	[ "$(upstream_count allowlist 8080)" -eq 1 ]
}

@test "mtls: a denied CONNECT is answered 403 and the app sees nothing" {
	# The tester is in namespace default: denied on guarded:8080.
	upstream_reset guarded 8080
	run tls_probe outsider $GUARDED "$PKI/tester" "CONNECT $GUARDED:8080 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"
	echo "$output"
	grep -m1 '^HTTP/1.1 ' <<<"$output" | grep -q '^HTTP/1.1 403'
	! grep -q 'backend=' <<<"$output"
	[ "$(upstream_count guarded 8080)" -eq 0 ]
}

# ---- strict and permissive inbound ------------------------------------------------

@test "mtls: strict (service): the client still gets through the mesh" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_LOCKED/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=locked "* ]]
}

@test "mtls: strict (namespace): the client still gets through the mesh" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_VAULT/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=vault "* ]]
}

@test "mtls: strict (service): plaintext curl from an unenrolled pod is refused, and counted" {
	local r0 r1
	upstream_reset locked 8080
	r0=$(stat_of node-b inbound_refused)
	run pod_exec outsider curl -sS --max-time 5 "http://$LOCKED:8080/"
	echo "$output"
	[ "$status" -eq 7 ]
	[ "$(upstream_count locked 8080)" -eq 0 ]
	r1=$(stat_of node-b inbound_refused)
	echo "node-b inbound_refused $r0 -> $r1"
	[ "$r1" -gt "$r0" ]
}

@test "mtls: strict (namespace): plaintext curl from an unenrolled pod is refused" {
	run pod_exec outsider curl -sS --max-time 5 "http://$VAULT:8080/"
	echo "$output"
	[ "$status" -eq 7 ]
}

@test "mtls: strict: a port no service targets is left alone (the control port answers)" {
	run pod_exec outsider curl -sS --max-time 5 "http://$LOCKED:$UPSTREAM_CONTROL_PORT/count?port=8080"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "mtls: permissive: plaintext curl from an unenrolled pod is answered, and counted" {
	local p0 p1
	p0=$(stat_of node-b inbound_plaintext)
	run pod_exec outsider curl -sS --max-time 5 "http://$BE:8080/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=be peer=$OUTSIDER:"* || "$output" == "backend=be peer=::ffff:$OUTSIDER:"* ]]
	p1=$(stat_of node-b inbound_plaintext)
	echo "node-b inbound_plaintext $p0 -> $p1"
	[ "$p1" -gt "$p0" ]
}

# ---- outriderctl ---------------------------------------------------------------

@test "outriderctl certs: every enrolled pod with its SPIFFE ID and SVID expiry" {
	local now
	now=$(date +%s)
	run on_node node-b ctl --json certs
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e --arg id "spiffe://$TD/ns/default/sa/be" \
		'any(.[]; (.name == "be" or .name == "default/be") and .spiffe_id == $id)' <<<"$output"
	jq -e --arg id "spiffe://$TD/ns/vault/sa/vault" 'any(.[]; .spiffe_id == $id)' <<<"$output"
	# An expiry in the future, at most the default TTL (24 h) away, in any of
	# the usual shapes (seconds since the epoch, or seconds left).
	jq -e --argjson now "$now" 'all(.[];
		((.not_after // .expires // 0) > $now and (.not_after // .expires) <= $now + 86400 + 60)
		or ((.expires_in_s // .remaining_s // -1) > 0))' <<<"$output"
	run on_node node-b ctl certs
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "spiffe://$TD/ns/default/sa/be" <<<"$output"
	! grep -q "sa/client" <<<"$output"
}

@test "outriderctl tls: handshakes, failures by reason, denials" {
	run on_node node-b ctl --json tls
	echo "$output"
	[ "$status" -eq 0 ]
	# The tests above caused at least one of each.
	jq -e '[.. | objects | to_entries[] | select(.key == "no_cert" or .key == "chain" or .key == "trust_domain") | .value] | length == 3 and all(. >= 1)' <<<"$output"
	jq -e '[.. | objects | to_entries[] | select(.key == "denied") | .value] | any(. >= 1)' <<<"$output"
	jq -e '[.. | objects | to_entries[] | select(.key == "full" or .key == "handshakes") | .value] | any(. >= 1)' <<<"$output"
	run on_node node-b ctl tls
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q no_cert <<<"$output"
	grep -q trust_domain <<<"$output"
}

@test "mtls: after all of the above both agents still serve" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	on_node node-a agent_running
	on_node node-b agent_running
}
