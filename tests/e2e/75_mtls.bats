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
#   node-c  imposter  10.244.1.27  enrolled on a node without an agent: the
#                                  tests put `openssl s_server` on its :15008
#                                  to check what node-a's agent accepts as the
#                                  destination, service imposter
# Every node-b pod runs `upstream --http 8080 --echo 9000 --control 7000`.
# Later tests read counters earlier ones moved: run the file whole.
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
VIP_IMPOSTER=10.96.0.87  # http :80 -> imposter:8080 (node-c: no agent)
IMPOSTER=10.244.1.27

TD=cluster.local
TESTER_ID=spiffe://$TD/ns/default/sa/tester

# mtls_services GUARDED_ACTION LOCKED_MODE: the services, with the action
# of guarded's rule and the mtls mode of locked (the reload test flips them).
mtls_services()
{
	local guarded_action=$1 locked_mode=$2
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
      - {action: $guarded_action, from: {namespace: default}, ports: [8080]}
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
    mtls: $locked_mode
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: locked}
  - name: vault-web
    namespace: vault
    vip: $VIP_VAULT
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: vault}
  - name: imposter
    vip: $VIP_IMPOSTER
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: imposter}
    policy: {retries: {attempts: 0}}
EOF
}

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
	pod_add imposter $IMPOSTER || { cluster_cleanup; return 1; }
	pod_node imposter node-c
	pod_label imposter app=imposter outrider.io/mode=enabled

	cluster_namespaces <<EOF
namespaces:
  - {name: vault, mtls: strict}
EOF
	mtls_services deny strict
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
		cert_mint "$pki/no-uri" "$ca" "" &&
		cert_mint "$pki/imposter" "$ca" "spiffe://$TD/ns/default/sa/imposter" &&
		cert_mint "$pki/someone-else" "$ca" "spiffe://$TD/ns/default/sa/someone-else" &&
		cert_mint "$pki/other-ca-imposter" "$pki/other-ca" "spiffe://$TD/ns/default/sa/imposter" ||
		{ cluster_cleanup; return 1; }
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
	capture_stop
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

@test "mtls: the tunnel reaches the app over loopback inside its pod" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	# Through the tunnel the app's peer is the far agent, over loopback in
	# the pod (a documented gap: not the client pod's address), never
	# another pod's address.
	[[ "$output" =~ peer=(127\.0\.0\.1|::ffff:127\.0\.0\.1|::1): ]]
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
	capture_start node "$cap" host $CLIENT and host $BE

	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == "backend=be "* ]]
	run pod_exec client bash -c "exec 3<>/dev/tcp/$VIP_ECHO/9000 && printf '%s\n' '$marker' >&3 &&
		IFS= read -r -t 5 line <&3 && printf '%s\n' \"\$line\""
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$marker" ]

	capture_stop
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

@test "mtls: a service with mtls: disabled is carried in plaintext, with no tunnel" {
	local cap="$OR_STATE/plain.pcap" payloads
	capture_start node "$cap" host $CLIENT and host $OPEN
	run pod_exec client curl -sS --max-time 5 "http://$VIP_PLAIN/"
	echo "$output"
	capture_stop
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

@test "mtls: the listener speaks TLS 1.3 only (a TLS 1.2 hello fails, counted as tls)" {
	local t0 t1 f0 n0
	t0=$(b_metric outrider_tunnels_total result=established)
	f0=$(b_metric outrider_tls_failures_total reason=tls)
	n0=$(b_metric outrider_tls_failures_total reason=no_cert)
	run tls_probe outsider $BE "$PKI/tester" "CONNECT $BE:8080 HTTP/1.1\r\n\r\n" -tls1_2
	echo "$output"
	[ "$status" -ne 0 ]
	! grep -q '^HTTP/1.1 200' <<<"$output"
	grep -qi 'protocol version\|unsupported protocol' <<<"$output"
	t1=$(b_metric outrider_tunnels_total result=established)
	[ "$t1" -eq "$t0" ]
	# A failed handshake, but not for a missing certificate: the client
	# never got as far as sending one.
	wait_until 2000 b_metric_above "$f0" outrider_tls_failures_total reason=tls || true
	echo "node-b failures: tls $f0 -> $(b_metric outrider_tls_failures_total reason=tls)," \
		"no_cert $n0 -> $(b_metric outrider_tls_failures_total reason=no_cert)"
	[ "$(b_metric outrider_tls_failures_total reason=no_cert)" -eq "$n0" ]
	[ "$(b_metric outrider_tls_failures_total reason=tls)" -eq $((f0 + 1)) ]
}

@test "mtls: plaintext HTTP to :15008 gets nothing from the app, counted as tls" {
	local f0 n0 c0
	f0=$(b_metric outrider_tls_failures_total reason=tls)
	n0=$(b_metric outrider_tls_failures_total reason=no_cert)
	c0=$(upstream_count be 8080)
	run pod_exec outsider curl -sS --max-time 5 "http://$BE:15008/"
	echo "curl: $status $output"
	[ "$status" -ne 0 ]
	! grep -q 'backend=' <<<"$output"
	[ "$(upstream_count be 8080)" -eq "$c0" ]
	wait_until 2000 b_metric_above "$f0" outrider_tls_failures_total reason=tls || true
	echo "node-b failures: tls $f0 -> $(b_metric outrider_tls_failures_total reason=tls)," \
		"no_cert $n0 -> $(b_metric outrider_tls_failures_total reason=no_cert)"
	[ "$(b_metric outrider_tls_failures_total reason=no_cert)" -eq "$n0" ]
	[ "$(b_metric outrider_tls_failures_total reason=tls)" -eq $((f0 + 1)) ]
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

# ---- the destination's identity, as the source agent checks it --------------------

# imposter_start CERT: openssl s_server on imposter's :15008 presenting CERT,
# requiring a client certificate from the cluster CA, printing what it
# receives (stdin a FIFO held open: no EOF, no extra process). Sets
# IMPOSTER_PID; a child of the test, so imposter_stop reaps it.
imposter_start()
{
	local cert=$1 fifo="$OR_STATE/imposter.fifo"
	[ -p "$fifo" ] || mkfifo "$fifo"
	pod_spawn imposter "$OR_STATE/logs/imposter" bash -c 'exec openssl s_server "$@" 0<>"$0"' \
		"$fifo" -accept 15008 -tls1_3 -quiet -cert "$cert.crt" -key "$cert.key" \
		-CAfile "$(ca_dir)/ca.crt" -Verify 1 >"$OR_STATE/imposter.pid"
	IMPOSTER_PID=$(<"$OR_STATE/imposter.pid")
	wait_until 5000 pod_listening imposter 15008 || { cat "$OR_STATE/logs/imposter" >&2; return 1; }
}

imposter_stop()
{
	kill "$IMPOSTER_PID" 2>/dev/null || true
	wait "$IMPOSTER_PID" 2>/dev/null || true
	wait_until 5000 eval '! pod_listening imposter 15008'
}

@test "mtls: the source agent requires the destination's own SVID: another workload's gets no CONNECT" {
	imposter_start "$PKI/someone-else"
	run pod_exec client curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$VIP_IMPOSTER/"
	echo "curl: $status $output"
	sleep 0.2
	imposter_stop
	echo "--- s_server:"; cat "$OR_STATE/logs/imposter"
	# The proxy answers for the endpoint it could not reach safely.
	[ "$output" = 503 ]
	! grep -q CONNECT "$OR_STATE/logs/imposter"
	grep -q 'tunnel failed.*dest=10.244.1.27:8080' "$OR_AGENT_LOG"
}

@test "mtls: the source agent requires the destination's SVID from the cluster CA" {
	imposter_start "$PKI/other-ca-imposter"
	run pod_exec client curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://$VIP_IMPOSTER/"
	echo "curl: $status $output"
	sleep 0.2
	imposter_stop
	echo "--- s_server:"; cat "$OR_STATE/logs/imposter"
	# The proxy answers for the endpoint it could not reach safely.
	[ "$output" = 503 ]
	! grep -q CONNECT "$OR_STATE/logs/imposter"
}

@test "mtls: with the destination's own SVID, the CONNECT arrives (the control for the two above)" {
	imposter_start "$PKI/imposter"
	# s_server never answers the CONNECT: the client waits, then gives up.
	run pod_exec client curl -sS --max-time 3 -o /dev/null "http://$VIP_IMPOSTER/"
	echo "curl: $status $output"
	imposter_stop
	echo "--- s_server:"; cat "$OR_STATE/logs/imposter"
	grep -q "^CONNECT $IMPOSTER:8080 HTTP/1.1" "$OR_STATE/logs/imposter"
}

# ---- authorization -------------------------------------------------------------

@test "mtls: a deny rule (namespace default, port 8080): the HTTP client gets 403, the app sees nothing, counted once" {
	local d0 d1
	upstream_reset guarded 8080
	d0=$(b_metric outrider_tunnels_total result=denied)
	run pod_exec client curl -sS --max-time 10 -o "$OR_STATE/denied.body" -w '%{http_code}' "http://$VIP_GUARDED/"
	echo "curl: $status, code $output, body: $(cat "$OR_STATE/denied.body" 2>/dev/null)"
	[ "$status" -eq 0 ]
	[ "$output" = 403 ]
	! grep -q 'backend=' "$OR_STATE/denied.body"
	[ "$(upstream_count guarded 8080)" -eq 0 ]
	d1=$(b_metric outrider_tunnels_total result=denied)
	echo "node-b denied $d0 -> $d1"
	# A denial is final: not retried.
	[ "$d1" -eq $((d0 + 1)) ]
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
	[ "$(tail -n1 <<<"$output")" = 403 ]
	! grep -q 'backend=' <<<"$output"
	# Over TCP: the connection is reset, nothing comes back.
	run pod_exec client orclient $VIP_ALLOWLIST 9000 --send 1000 --timeout-ms 3000
	echo "client over tcp: $output"
	[ "$status" -ne 0 ]
	run jq -rs 'map(select(has("match")))[0].received // 0' <<<"$output"
	[ "$output" = 0 ]
	[ "$(upstream_count allowlist 8080)" -eq 0 ]
	[ "$(upstream_count allowlist 9000)" -eq 0 ]
	d1=$(b_metric outrider_tunnels_total result=denied)
	echo "node-b denied $d0 -> $d1"
	[ "$d1" -eq $((d0 + 2)) ]

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

@test "outriderctl inbound: each pod's app ports with their mode" {
	run on_node node-b ctl --json inbound
	echo "$output"
	[ "$status" -eq 0 ]
	local want
	for want in "$LOCKED 8080 strict" "$VAULT 8080 strict" "$BE 8080 permissive" \
		"$BE 9000 permissive" "$GUARDED 8080 permissive" "$ALLOWLIST 9000 permissive"; do
		set -- $want
		jq -e --arg ip "$1" --argjson port "$2" --arg mode "$3" \
			'any(.[]; .ip == $ip and .port == $port and .mode == $mode)' <<<"$output"
	done
	# No service targets the control port; node-a's client backs no service.
	jq -e --argjson p "$UPSTREAM_CONTROL_PORT" 'all(.[]; .port != $p)' <<<"$output"
	run on_node node-a ctl --json inbound
	echo "node-a: $output"
	[ "$(jq length <<<"$output")" -eq 0 ]
}

@test "outriderctl certs: every enrolled pod with its SPIFFE ID and SVID expiry" {
	local now
	now=$(date +%s)
	run on_node node-b ctl --json certs
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e --arg id "spiffe://$TD/ns/default/sa/be" \
		'any(.[]; (.name == "be" or .name == "default/be") and .spiffe_id == $id)' <<<"$output"
	jq -e --arg id "spiffe://$TD/ns/vault/sa/vault" 'any(.[]; .spiffe_id == $id)' <<<"$output"
	# Every pod of node-b, with an expiry in the future, at most the default
	# TTL (24 h) away, renewed at about half life.
	[ "$(jq length <<<"$output")" -eq 6 ]
	jq -e --argjson now "$now" 'all(.[];
		.not_after > $now and .not_after <= $now + 86400 + 60
		and .expires_in_s > 0 and .expires_in_s <= 86400 + 60
		and .not_before <= $now
		and .renew_at > $now and .renew_at < .not_after)' <<<"$output"
	run on_node node-b ctl certs
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q "spiffe://$TD/ns/default/sa/be" <<<"$output"
	! grep -q "sa/client" <<<"$output"
}

# tls_agrees NODE: `outriderctl tls` (written every second) says what /metrics says.
tls_agrees()
{
	local j r
	j=$(on_node "$1" ctl --json tls) || return 1
	for r in no_cert chain trust_domain is_ca uri_count not_spiffe; do
		[ "$(jq -r --arg r $r '.failures[$r]' <<<"$j")" = \
			"$(on_node "$1" metric outrider_tls_failures_total reason=$r)" ] || return 1
	done
	[ "$(jq -r .denied <<<"$j")" = "$(on_node "$1" metric outrider_tunnels_total result=denied)" ] &&
		[ "$(jq -r .bad_request <<<"$j")" = "$(on_node "$1" metric outrider_tunnels_total result=bad_request)" ] &&
		[ "$(jq -r .handshakes_resumed <<<"$j")" = "$(on_node "$1" metric outrider_tls_handshakes_total kind=resumed)" ] &&
		[ "$(jq -r .handshakes_full <<<"$j")" = "$(on_node "$1" metric outrider_tls_handshakes_total kind=full)" ]
}

@test "outriderctl tls: handshakes, failures by reason, denials" {
	run on_node node-b ctl --json tls
	echo "$output"
	[ "$status" -eq 0 ]
	# The tests above caused at least one of each.
	jq -e '.failures.no_cert >= 1 and .failures.chain >= 1 and .failures.trust_domain >= 1
		and .failures.is_ca >= 1 and .failures.uri_count >= 2 and .failures.not_spiffe >= 1' <<<"$output"
	jq -e '.denied >= 4 and .bad_request >= 4 and .tunnels_in >= 1 and .handshakes_full >= 1
		and .handshakes_resumed >= 1' <<<"$output"
	run on_node node-a ctl --json tls
	echo "node-a: $output"
	jq -e '.tunnels_out >= 1 and .tunnels_out_failed >= 1' <<<"$output"
	# The same numbers as /metrics, once the agent wrote them (every second).
	if ! wait_until 3000 tls_agrees node-b; then
		echo "--- /metrics of node-b:"
		on_node node-b admin_get /metrics | grep -E '^outrider_(tls|tunnels)'
		on_node node-b ctl --json tls
		return 1
	fi
	run on_node node-b ctl tls
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q no_cert <<<"$output"
	grep -q trust_domain <<<"$output"
}

# ---- config reload, agent restart ---------------------------------------------

# http_code_is POD URL CODE: curl from POD gets CODE.
http_code_is()
{
	[ "$(pod_exec "$1" curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$2")" = "$3" ]
}

# refused_plaintext POD URL: curl from POD is refused (exit 7).
refused_plaintext()
{
	local rc=0
	pod_exec "$1" curl -sS --max-time 5 -o /dev/null "$2" || rc=$?
	[ "$rc" -eq 7 ]
}

# reload_node_b GUARDED_ACTION LOCKED_MODE: node-b's config with those, and SIGHUP.
reload_node_b()
{
	mtls_services "$1" "$2"
	on_node node-b cluster_config && on_node node-b agent_reload
}

@test "mtls: authorization follows a reload of the destination's config, pooled tunnels included" {
	# guarded: deny -> allow.
	reload_node_b allow strict
	wait_until 5000 http_code_is client "http://$VIP_GUARDED/" 200
	run pod_exec client curl -sS --max-time 5 "http://$VIP_GUARDED/"
	echo "$output"
	[[ "$output" == "backend=guarded "* ]]
	# And back: the client's next requests are denied again, although the
	# HTTP proxy pools its tunnel to guarded (a rule added by a reload holds
	# for connections already open, as Istio's ztunnel does).
	reload_node_b deny strict
	if ! wait_until 5000 http_code_is client "http://$VIP_GUARDED/" 403; then
		run pod_exec client curl -sS --max-time 5 -w '\n%{http_code}' "http://$VIP_GUARDED/"
		echo "5 s after the deny was reloaded, the client still gets: $output"
		return 1
	fi
	on_node node-b agent_running
}

@test "mtls: strict mode follows a reload of the destination's config" {
	# locked: strict -> permissive: plaintext answered.
	reload_node_b deny permissive
	wait_until 5000 http_code_is outsider "http://$LOCKED:8080/" 200
	# And back to strict: refused again; the mesh still gets through.
	reload_node_b deny strict
	wait_until 5000 refused_plaintext outsider "http://$LOCKED:8080/"
	run pod_exec client curl -sS --max-time 5 "http://$VIP_LOCKED/"
	echo "$output"
	[[ "$output" == "backend=locked "* ]]
	on_node node-b agent_running
}

@test "mtls: node-b's agent restarts: the client's requests succeed again (stale sessions are no obstacle)" {
	# Sessions with node-b's listeners exist (earlier tests); the restarted
	# agent cannot resume them and must fall back to a full handshake.
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	[ "$status" -eq 0 ]
	on_node node-b agent_stop
	[ "$OR_AGENT_STATUS" -eq 0 ] || [ "$OR_AGENT_STATUS" -eq 127 ]
	on_node node-b agent_start "$(on_node node-b sh -c 'echo $OR_CONFIG')"
	on_node node-b agent_wait_ready 5000 be
	wait_until 5000 pod_listening be 15008
	local i
	for i in 1 2 3; do
		run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
		echo "$output"
		[ "$status" -eq 0 ]
		[[ "$output" == "backend=be "* ]]
		run pod_exec client orclient $VIP_ECHO 9000 --send 64K
		echo "$output"
		[ "$status" -eq 0 ]
	done
	# Same CA (state_dir), so the same trust: the new SVID still chains to it.
	tls_peer_cert outsider $BE "$PKI/tester" | openssl x509 -noout -ext subjectAltName |
		grep -q "URI:spiffe://$TD/ns/default/sa/be\$"
}

@test "mtls: after all of the above both agents still serve" {
	run pod_exec client curl -sS --max-time 5 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	on_node node-a agent_running
	on_node node-b agent_running
}
