#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Reliability (issue 7): an agent replaced while it runs (take-over), an
# agent stopped with SIGTERM and none after it, an agent killed or hung,
# and what the pods' connects meet meanwhile (on_agent_down).
#
#   client  10.244.1.2   enrolled, namespace default (fail-closed)
#   opener  10.244.1.3   enrolled, namespace relaxed (on_agent_down: fail-open)
#   be-1    10.244.1.11  upstream: echo :9000, http :8080, control :7000
#                        (not enrolled: plaintext, so the load is the agent's
#                        accept path, not TLS handshakes)
#   be-2    10.244.1.12  the same upstream; enrolled, so or_inbound guards
#                        its strict port
# Services:
#   10.96.0.90:9000 tcp  -> be-1:9000       echo (permissive)
#   10.96.0.91:80   http -> be-1:8080       web
#   10.96.0.92:9000 tcp  -> be-2:9000       locked, mtls: strict
# Each test starts its own agent(s) on the same pins; teardown stops them.

load lib/cluster

CLIENT=10.244.1.2
OPENER=10.244.1.3
BE1=10.244.1.11
BE2=10.244.1.12
VIP_ECHO=10.96.0.90
VIP_WEB=10.96.0.91
VIP_LOCKED=10.96.0.92

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	cluster_init || return 1
	pod_add client "$CLIENT" || { cluster_cleanup; return 1; }
	pod_label client app=client outrider.io/mode=enabled
	pod_add opener "$OPENER" || { cluster_cleanup; return 1; }
	pod_namespace opener relaxed
	pod_label opener app=opener outrider.io/mode=enabled
	pod_add be-1 "$BE1" || { cluster_cleanup; return 1; }
	pod_label be-1 app=be
	upstream_start be-1 be-1 --control "$UPSTREAM_CONTROL_PORT" --http 8080 --echo 9000 ||
		{ cluster_cleanup; return 1; }
	pod_add be-2 "$BE2" || { cluster_cleanup; return 1; }
	pod_label be-2 app=locked outrider.io/mode=enabled
	upstream_start be-2 be-2 --control "$UPSTREAM_CONTROL_PORT" --http 8080 --echo 9000 ||
		{ cluster_cleanup; return 1; }
	cluster_namespaces <<EOF
drain_timeout_ms: 8000
namespaces:
  - name: relaxed
    on_agent_down: fail-open
EOF
	cluster_services <<EOF
services:
  - name: echo
    vip: $VIP_ECHO
    ports: [{port: 9000, protocol: tcp}]
    endpoints: [{ip: $BE1, port: 9000}]
  - name: web
    vip: $VIP_WEB
    ports: [{port: 80, target_port: 8080, protocol: http}]
    endpoints: [{ip: $BE1, port: 8080}]
  - name: locked
    vip: $VIP_LOCKED
    mtls: strict
    ports: [{port: 9000, protocol: tcp}]
    endpoints: [{ip: $BE2, port: 9000}]
EOF
	cluster_config
}

teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }

teardown()
{
	e2e_teardown
	local pid
	for pid in ${AGENT_A:-} ${AGENT_B:-}; do
		kill -CONT "$pid" 2>/dev/null || true
	done
	for pid in ${AGENT_A:-} ${AGENT_B:-}; do
		if _or_alive "$pid"; then
			kill -INT "$pid" 2>/dev/null
			kill -INT "$pid" 2>/dev/null # the second cuts the drain short
			wait "$pid" 2>/dev/null || true
		fi
	done
	"$OR_BUILD/outriderctl" --pin-dir "$OR_PIN" --force uninstall >/dev/null 2>&1 || true
}

# start_agent VAR: an agent on the shared config; its pid in VAR.
start_agent()
{
	agent_start "$OR_CONFIG"
	printf -v "$1" '%s' "$(agent_pid)"
}

# The kernel's attachments on the client's cgroup: one line per hook (the
# program ids change when a new agent adopts the links; the hooks do not).
attachments() { bpftool -j cgroup show "$(pod_cgroup client)" | jq -r '.[] | .attach_type' | sort; }
# Link ids pinned for the client (survive a restart when adopted).
client_links() { bpftool -j link show | jq -r --arg cg "$(stat -c %i "$(pod_cgroup client)")" '.[] | select(.cgroup_id? == ($cg | tonumber)) | .id' | sort -n | tr '\n' ' '; }

stat_of() { ctl --json stats | jq -r --arg r "$1" '.[$r]'; }

# refused_at_once POD VIP: connect() fails with ECONNREFUSED within 500 ms.
refused_at_once()
{
	local t0 t1
	t0=$(_or_now_ms)
	run echo_once "$1" "$2"
	t1=$(_or_now_ms)
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *'"errno":111'* ]]
	[ $((t1 - t0)) -lt 500 ]
}

# echo_works POD: an exchange through the echo service succeeds.
echo_works() { echo_once "$1" "$VIP_ECHO" >/dev/null 2>&1; }

# echo_once POD VIP: one short exchange; prints orclient's status line.
echo_once() { pod_exec "$1" orclient "$2" 9000 --send 64 --timeout-ms 2000; }

@test "take-over under load: a new connection every ms and long streams, none refused or reset" {
	start_agent AGENT_A
	agent_wait_ready 5000 client
	local before links
	before=$(attachments)
	links=$(client_links)
	[ -n "$before" ] && [ -n "$links" ]

	# Long-lived streams: 64 bytes every 50 ms for 3 s, across the hand-over.
	local i streams=()
	for i in 1 2 3 4; do
		pod_exec client orclient "$VIP_ECHO" 9000 --pingpong 60 --pause-ms 50 \
			--timeout-ms 3000 >"$OR_STATE/stream.$i" 2>&1 &
		streams+=($!)
	done
	pod_exec client connloop "$VIP_ECHO" 9000 --interval-us 1000 --duration-ms 3000 \
		>"$OR_STATE/connloop.out" 2>"$OR_STATE/connloop.err" &
	local loop=$!
	sleep 0.8

	start_agent AGENT_B
	# A stops accepting once B serves the pods, drains its streams, exits 0.
	wait_until 5000 grep -q "take-over complete" "$OR_AGENT_LOG"
	wait "$loop" || true
	cat "$OR_STATE/connloop.out" "$OR_STATE/connloop.err"
	jq -e '.refused == 0 and .reset == 0 and .timeout == 0 and .other == 0 and .ok == .started and .started >= 2500' \
		"$OR_STATE/connloop.out"
	wait "${streams[@]}" || true
	for i in 1 2 3 4; do
		cat "$OR_STATE/stream.$i"
		tail -n1 "$OR_STATE/stream.$i" | jq -e '.end == "done" and .match == true and .rounds == 60'
	done
	wait_until 9000 bash -c "! kill -0 $AGENT_A 2>/dev/null"
	wait "$AGENT_A"
	AGENT_A=
	# B serves now, on the same attachments: nothing attached twice.
	[ "$(attachments)" = "$before" ]
	[ "$(client_links)" = "$links" ]
	run echo_once client "$VIP_ECHO"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ctl --json stats | jq -r '.settings.agent_pid')" = "$AGENT_B" ]
	grep -q "listeners_taken_over=" "$OR_AGENT_LOG"
}

@test "take-over: HTTP keep-alive load sees no error while the agent is replaced" {
	start_agent AGENT_A
	agent_wait_ready 5000 client
	pod_exec client openloop --url "http://$VIP_WEB/" --rate 400 --duration 3 \
		--connections 8 --warmup 0 --json --quiet >"$OR_STATE/ol.out" 2>&1 &
	local ol=$!
	sleep 1
	start_agent AGENT_B
	wait "$ol" || true
	cat "$OR_STATE/ol.out"
	jq -e '.errors.connect == 0 and .errors.read == 0 and .errors.status == 0 and .errors.timeout == 0 and .completed >= 1100' \
		"$OR_STATE/ol.out"
	wait_until 9000 bash -c "! kill -0 $AGENT_A 2>/dev/null"
	wait "$AGENT_A"
	AGENT_A=
}

@test "take-over in a DaemonSet (--when-replaced wait): the old agent idles, and its SIGTERM leaves the new one in charge" {
	agent_start "$OR_CONFIG" --when-replaced wait
	AGENT_A=$(agent_pid)
	agent_wait_ready 5000 client
	start_agent AGENT_B
	wait_until 5000 grep -q "replaced and drained: idle until SIGTERM" "$OR_AGENT_LOG"
	sleep 0.5
	# Still there (a container that exited would be restarted), holding no listener.
	kill -0 "$AGENT_A"
	pod_exec client ss -Hltnp | grep "pid=$AGENT_B,"
	! pod_exec client ss -Hltnp | grep "pid=$AGENT_A,"
	kill -TERM "$AGENT_A"
	local st=0
	wait "$AGENT_A" || st=$?
	echo "old agent's exit status: $st"
	[ "$st" -eq 0 ]
	AGENT_A=
	# B owns the pins: not marked stopped, and it serves.
	[ "$(ctl --json stats | jq -r '.settings.stopped')" = false ]
	[ "$(ctl --json stats | jq -r '.settings.agent_pid')" = "$AGENT_B" ]
	run echo_once client "$VIP_ECHO"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "SIGTERM with no successor: drains, exits 0, pins stay; fail-closed refuses at once" {
	start_agent AGENT_A
	agent_wait_ready 5000 client
	local links
	links=$(client_links)
	[ -n "$links" ]
	pod_exec client orclient "$VIP_ECHO" 9000 --pingpong 30 --pause-ms 50 \
		--timeout-ms 3000 >"$OR_STATE/stream" 2>&1 &
	local stream=$!
	sleep 0.3
	kill -TERM "$AGENT_A"
	sleep 0.2
	# Draining: not accepting; the kernel refuses at once (no wait in a backlog).
	refused_at_once client "$VIP_ECHO"
	# The established stream ran to its end.
	wait "$stream"
	cat "$OR_STATE/stream"
	tail -n1 "$OR_STATE/stream" | jq -e '.end == "done" and .match == true'
	wait_until 9000 bash -c "! kill -0 $AGENT_A 2>/dev/null"
	local st=0
	wait "$AGENT_A" || st=$?
	[ "$st" -eq 0 ]
	AGENT_A=
	# The kernel keeps capturing on the same links; the agent is marked stopped.
	[ "$(client_links)" = "$links" ]
	[ "$(ctl --json stats | jq -r '.settings.stopped')" = true ]
	[ "$(stat_of agent_down_refused)" -ge 1 ]

	# A new agent adopts the links (the same ids: no second attachment).
	start_agent AGENT_B
	wait_until 5000 bash -c "grep -q 'links_adopted=6' '$OR_AGENT_LOG'"
	[ "$(client_links)" = "$links" ]
	run echo_once client "$VIP_ECHO"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(ctl --json stats | jq -r '.settings.stopped')" = false ]
}

@test "SIGKILL: fail-closed refuses at once, fail-open goes direct, strict never in plaintext" {
	start_agent AGENT_A
	agent_wait_ready 5000 client opener be-2
	local links before_strict
	links=$(client_links)
	kill -KILL "$AGENT_A"
	wait "$AGENT_A" 2>/dev/null || true
	AGENT_A=

	# fail-closed (namespace default): refused at once.
	refused_at_once client "$VIP_ECHO"

	# fail-open (namespace relaxed): straight to the endpoint, which sees the pod itself.
	run echo_once opener "$VIP_ECHO"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"\"peer\":\"$VIP_ECHO:9000\""* ]] # getpeername still shows the VIP
	[ "$(stat_of agent_down_fail_open)" -ge 1 ]

	# ...but never to a strict mTLS service: refused, nothing reaches the app.
	before_strict=$(upstream_count be-2 9000)
	run echo_once opener "$VIP_LOCKED"
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *'"errno":111'* ]]
	[ "$(stat_of agent_down_strict)" -ge 1 ]
	# Plaintext straight at the strict pod port is refused by its sk_lookup too.
	run pod_exec opener orclient "$BE2" 9000 --send 64 --timeout-ms 2000
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(upstream_count be-2 9000)" = "$before_strict" ]

	# The restarted agent adopts the dead one's pins.
	start_agent AGENT_B
	wait_until 5000 bash -c "grep -q 'pod=default/client.*links_adopted=6' '$OR_AGENT_LOG'"
	[ "$(client_links)" = "$links" ]
	run echo_once client "$VIP_ECHO"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "a hung agent (stopped, no heartbeat): fail-closed refuses instead of hanging" {
	start_agent AGENT_A
	agent_wait_ready 5000 client
	kill -STOP "$AGENT_A"
	# OR_HEARTBEAT_TIMEOUT_NS is 5 s; the listener is still there meanwhile.
	sleep 6
	refused_at_once client "$VIP_ECHO"
	kill -CONT "$AGENT_A"
	# The next heartbeat (within a second) puts it back in charge.
	wait_until 3000 echo_works client
}

@test "stale pins of a dead agent: pods it served and this one does not are released" {
	# A serves a pod "ghost" too; it dies; B's config no longer has ghost.
	pod_add ghost 10.244.1.9
	pod_label ghost app=ghost outrider.io/mode=enabled
	cluster_config
	start_agent AGENT_A
	agent_wait_ready 5000 client ghost
	[ -n "$(bpftool cgroup show "$(pod_cgroup ghost)")" ]
	kill -KILL "$AGENT_A"
	wait "$AGENT_A" 2>/dev/null || true
	AGENT_A=
	pod_label ghost app=ghost
	cluster_config
	start_agent AGENT_B
	agent_wait_ready 5000 client
	wait_until 5000 bash -c "[ -z \"\$(bpftool cgroup show $(pod_cgroup ghost))\" ]"
	[ ! -e "$OR_PIN/links/default_ghost" ]
	! ctl_has_pod ghost
	ctl_has_pod client
	run echo_once client "$VIP_ECHO"
	[ "$status" -eq 0 ]
}

@test "config: on_agent_down: fail-open is refused where mtls is strict, with file and line" {
	cat >"$OR_STATE/bad.yaml" <<EOF
node: $OR_NODE_NAME
namespaces:
  - name: vault
    mtls: strict
    on_agent_down: fail-open
EOF
	run "$OR_BUILD/outriderd" --config "$OR_STATE/bad.yaml" --check
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"bad.yaml:3"* ]]
	[[ "$output" == *"fail-open is not allowed with mtls: strict"* ]]
}

@test "a restarted agent that cannot enroll a pod yet keeps its pins: captured, refused at once, then adopted" {
	start_agent AGENT_A
	agent_wait_ready 5000 client
	local links
	links=$(client_links)
	kill -KILL "$AGENT_A"
	wait "$AGENT_A" 2>/dev/null || true
	AGENT_A=
	# B's config points at a netns that is not there (yet): client stays pending.
	sed "s|netns: $(pod_netns_path client)\$|netns: /run/netns/$(pod_netns client)-later|" \
		"$OR_CONFIG" >"$OR_STATE/later.yaml"
	grep -q -- "-later" "$OR_STATE/later.yaml"
	agent_start "$OR_STATE/later.yaml"
	AGENT_B=$(agent_pid)
	wait_until 5000 grep -q 'msg="cannot enroll pod" pod=default/client' "$OR_AGENT_LOG"
	agent_wait_ready 5000 opener
	# Pending, not swept: still captured on the same links, so refused (fail-closed).
	[ "$(client_links)" = "$links" ]
	ctl_has_pod client
	refused_at_once client "$VIP_ECHO"
	# The pod is found (the config is right again): its links are adopted.
	cp "$OR_CONFIG" "$OR_STATE/later.yaml"
	kill -HUP "$AGENT_B"
	wait_until 5000 bash -c "grep -q 'pod=default/client.*links_adopted=6' '$OR_AGENT_LOG'"
	[ "$(client_links)" = "$links" ]
	wait_until 3000 echo_works client
}
