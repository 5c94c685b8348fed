#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Overload protection: what slow, greedy or abusive clients get, and that
# the agent stays up and serves again afterwards. Request head timeout
# (slowloris) and size limits, limits.buffer_bytes against max_body_bytes,
# accepting paused while out of fds, HTTP draining on SIGTERM, and memory
# shedding under a cgroup memory limit (the agent in a cgroup of its own).
# Topology: resilience_pods (client, be-1; tests/e2e/lib/cluster.bash).

load lib/cluster

VIP_WEB=10.96.0.62  # http: be-1:8080, max_body_bytes 16 MiB
VIP_503=10.96.0.63  # http: be-1:8081, always 503, retried
VIP_ECHO=10.96.0.64 # tcp: be-1:9000 echo
BE1=10.244.1.11
HEADER_TIMEOUT_MS=1000
BUFFER_BYTES=262144
MEM_LIMIT=$((48 * 1024 * 1024))

slowloris() { pod_exec client python3 "$OR_ROOT/tests/fixtures/slowloris.py" "$@"; }

# services_yaml BUFFER_BYTES: the services and limits of this file.
services_yaml()
{
	cluster_services <<EOF
services:
  - name: web
    vip: $VIP_WEB
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8080}]
    policy:
      retries: {max_body_bytes: 16777216}
  - name: web503
    vip: $VIP_503
    ports: [{port: 80, protocol: http}]
    endpoints: [{ip: $BE1, port: 8081}]
    policy:
      retries: {max_body_bytes: 16777216, budget: {percent: 100, min_retries_per_s: 1000}}
      outlier_detection: {consecutive_5xx: 0}
  - name: echo
    vip: $VIP_ECHO
    ports: [{port: 9000}]
    endpoints: [{ip: $BE1, port: 9000}]
limits: {header_timeout_ms: $HEADER_TIMEOUT_MS, buffer_bytes: $1}
drain_timeout_ms: 5000
EOF
}

setup_file()
{
	e2e_require || return 1
	[ -z "${OR_SKIP:-}" ] || return 0
	resilience_pods 1 || { cluster_cleanup; return 1; }
	services_yaml "$BUFFER_BYTES"
	resilience_agent_up
}

teardown_file()
{
	local v1
	v1=$(memcg_v1_dir)
	cluster_cleanup
	# The v1 memory cgroup of the last test lives outside $OR_CG (the agent is gone now).
	if [ -n "$v1" ] && [ -d "$v1" ]; then
		rmdir "$v1" 2>/dev/null || echo "cannot remove $v1" >&2
	fi
}
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# raw FILE: FILE's bytes to the web VIP; everything answered until the proxy closes.
raw()
{
	pod_exec client timeout 5 bash -c "exec 3<>/dev/tcp/$VIP_WEB/80 && cat '$1' >&3 && cat <&3"
}

# The agent's open fds, less its pooled upstream connections (established
# from the client pod's netns to be-1: they come and go with the pool).
agent_fds()
{
	local pid n pooled
	pid=$(agent_pid)
	n=$(ls "/proc/$pid/fd" | wc -l)
	pooled=$(pod_exec client ss -Htn state established "( dst $BE1 )" | wc -l)
	echo $((n - pooled))
}

# metric_is NAME OP VALUE: the metric compares so with VALUE now (for wait_until).
metric_is()
{
	local v
	v=$(metric "$1") || return 1
	test "$v" "$2" "$3"
}

agent_fds_le() { test "$(agent_fds)" -le "$1"; }

# The lowest fd number the agent does not use: with RLIMIT_NOFILE at it,
# the agent can open nothing.
agent_lowest_free_fd()
{
	local pid=$1 i=0
	while [ -e "/proc/$pid/fd/$i" ]; do
		i=$((i + 1))
	done
	echo "$i"
}

@test "overload: a request head not whole within header_timeout_ms -> 408 header_timeout, closed" {
	local before after
	before=$(metric outrider_overload_total reason=header_timeout)
	# Half a head, then nothing: the clock runs from the connection's start.
	run slowloris head "$VIP_WEB" 80
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e '.status == 408 and .reason == "header_timeout" and .connection == "close"
		and .closed and .elapsed_ms >= 900 and .elapsed_ms < 3000' <<<"$output"
	# A byte every 100 ms keeps nothing alive: it is the whole head that is due.
	run slowloris head "$VIP_WEB" 80 --trickle-ms 100 \
		--send 'GET / HTTP/1.1\r\nHost: a\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n'
	echo "$output"
	jq -e '.status == 408 and .reason == "header_timeout" and .closed
		and .elapsed_ms < 3000' <<<"$output"
	# Not a byte at all: the same.
	run slowloris head "$VIP_WEB" 80 --send ''
	echo "$output"
	jq -e '.status == 408 and .closed' <<<"$output"
	after=$(metric outrider_overload_total reason=header_timeout)
	[ "$after" -ge $((before + 3)) ]
	# None of it reached the upstream as a request, and the proxy still serves.
	run pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^backend=be-1 ]]
}

@test "overload: an idle keep-alive connection outlives header_timeout_ms; a slow next head does not" {
	# Idle twice the head timeout between requests: the idle timeout governs.
	run slowloris keepalive "$VIP_WEB" 80 --idle-ms $((2 * HEADER_TIMEOUT_MS))
	echo "$output"
	jq -e '.first == 200 and .second == 200' <<<"$output"
	# The next request dribbled in: its head is on the clock from its first byte.
	run slowloris keepalive "$VIP_WEB" 80 --idle-ms $((2 * HEADER_TIMEOUT_MS)) --trickle-ms 200
	echo "$output"
	jq -e '.first == 200 and .second == 408 and .reason == "header_timeout"
		and .second_ms >= 900 and .second_ms < 3000' <<<"$output"
}

@test "http: a response sent slowly to a client that half-closed arrives whole, then the close" {
	local t0 t1
	t0=$(_or_now_ms)
	# socat half-closes after the request; it exits when the proxy closes (or after 5 s).
	run pod_exec client sh -c "printf 'GET /drip HTTP/1.1\r\nHost: a\r\nx-fault: drip=5\r\n\r\n' |
		timeout 8 socat -t 5 - TCP:$VIP_WEB:80"
	t1=$(_or_now_ms)
	echo "$output; $((t1 - t0)) ms"
	[ "$status" -eq 0 ]
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 200 ]]
	grep -q '^backend=be-1 .*attempt=1' <<<"$output"
	[ $((t1 - t0)) -lt 4500 ]
}

@test "overload: 101 request headers -> 431 header_too_large, closed; 100 pass" {
	local f="$OR_STATE/raw-101" g="$OR_STATE/raw-100" before after i
	{
		printf 'GET / HTTP/1.1\r\nHost: a\r\n'
		for ((i = 1; i <= 100; i++)); do printf 'X-H%d: v\r\n' "$i"; done
		printf '\r\n'
	} >"$f"
	before=$(upstream_count be-1 8080)
	run raw "$f"
	echo "$output"
	after=$(upstream_count be-1 8080)
	[ "$status" -eq 0 ] # the proxy closed the connection
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 431 ]]
	grep -qi '^x-outrider-reason: header_too_large' <<<"$output"
	grep -qi '^connection: close' <<<"$output"
	[ "$after" -eq "$before" ]
	[ "$(metric outrider_overload_total reason=header_too_large)" -ge 1 ]

	{
		printf 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n'
		for ((i = 1; i <= 98; i++)); do printf 'X-H%d: v\r\n' "$i"; done
		printf '\r\n'
	} >"$g"
	run raw "$g"
	echo "$output"
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 200 ]]
}

@test "overload: buffer_bytes wins over max_body_bytes: a bigger body is streamed, never held or retried" {
	local before after
	head -c $((2 * BUFFER_BYTES)) /dev/zero | tr '\0' b >"$OR_STATE/body-big"
	head -c $((BUFFER_BYTES / 4)) /dev/zero | tr '\0' s >"$OR_STATE/body-small"
	before=$(metric outrider_overload_total reason=buffer_limit)
	# Always 503 upstream. A small PUT is held and retried (attempt 3)...
	run pod_exec client curl -sS --max-time 5 -X PUT --data-binary "@$OR_STATE/body-small" \
		"http://$VIP_503/"
	echo "$output"
	[[ "$output" =~ attempt=3 ]]
	# ... one over buffer_bytes (though under max_body_bytes) goes to one try only.
	run pod_exec client curl -sS --max-time 5 -X PUT --data-binary "@$OR_STATE/body-big" \
		"http://$VIP_503/"
	echo "$output"
	[[ "$output" =~ attempt=1 ]]
	# A big body still gets through whole.
	head -c $((8 * BUFFER_BYTES)) /dev/zero | tr '\0' c >"$OR_STATE/body-huge"
	run pod_exec client curl -sS --max-time 10 -w '\n%{http_code} %{size_upload}' \
		--data-binary "@$OR_STATE/body-huge" "http://$VIP_WEB/"
	echo "$output"
	[[ "$(tail -n1 <<<"$output")" == "200 $((8 * BUFFER_BYTES))" ]]
	after=$(metric outrider_overload_total reason=buffer_limit)
	[ "$after" -ge $((before + 2)) ]
	# Nothing held once they are done.
	wait_until 3000 metric_is outrider_buffered_bytes -lt $((4 * BUFFER_BYTES))
}

@test "overload: garbage from a peer gets an error or a close, never a crash" {
	local pid
	pid=$(agent_pid)
	head -c 200000 /dev/urandom >"$OR_STATE/garbage"
	# HTTP port, TCP port and the pod's mTLS tunnel port.
	run pod_exec client timeout 5 bash -c "exec 3<>/dev/tcp/$VIP_WEB/80 && cat '$OR_STATE/garbage' >&3; cat <&3 | head -c 200"
	echo "$output"
	[[ "$output" =~ ^HTTP/1\.1\ (400|431) ]]
	pod_exec client timeout 5 bash -c "exec 3<>/dev/tcp/$VIP_ECHO/9000 && cat '$OR_STATE/garbage' >&3; cat <&3 >/dev/null" || true
	pod_exec client timeout 5 bash -c "exec 3<>/dev/tcp/10.244.1.2/15008 && cat '$OR_STATE/garbage' >&3; cat <&3 >/dev/null" || true
	[ "$(agent_pid)" = "$pid" ]
	agent_running
	run pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/"
	[ "$status" -eq 0 ]
}

# held_count: connections in the client pod to its :15001 listener.
held_count() { [ "$(pod_exec client ss -Htn state established '( dport = :15001 )' | wc -l)" -ge "$1" ]; }

# reload_with YAML_TAIL: the services plus YAML_TAIL, in force (SIGHUP) before it returns.
reload_with()
{
	local n
	n=$(grep -c 'config in force' "$OR_AGENT_LOG")
	services_yaml "$BUFFER_BYTES"
	printf '%s\n' "$1" >>"$OR_STATE/services.yaml"
	cluster_config
	agent_reload
	wait_until 5000 test_log_count 'config in force' $((n + 1))
}
test_log_count() { [ "$(grep -c "$1" "$OR_AGENT_LOG")" -ge "$2" ]; }

@test "overload: over max_connections HTTP gets 503 max_connections, TCP a reset; both recover" {
	local h1 h2 before
	reload_with 'max_connections: 2'
	before=$(metric outrider_overload_total reason=max_connections)
	h1=$(pod_spawn client "$OR_STATE/logs/mc1" bash -c "exec 3<>/dev/tcp/$VIP_ECHO/9000; sleep 30")
	h2=$(pod_spawn client "$OR_STATE/logs/mc2" bash -c "exec 3<>/dev/tcp/$VIP_ECHO/9000; sleep 30")
	wait_until 3000 held_count 2
	run pod_exec client curl -sS --max-time 3 -D - "http://$VIP_WEB/"
	echo "$output"
	[[ "$(head -n1 <<<"$output")" =~ ^HTTP/1\.1\ 503 ]]
	grep -qi '^x-outrider-overloaded: true' <<<"$output"
	grep -qi '^x-outrider-reason: max_connections' <<<"$output"
	run pod_exec client orclient "$VIP_ECHO" 9000 --send 1000 --timeout-ms 3000
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(metric outrider_overload_total reason=max_connections)" -ge $((before + 2)) ]
	kill "$h1" "$h2"
	reload_with ''
	run pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^backend=be-1 ]]
}

@test "overload: out of fds, accepting pauses; every queued client is served once fds are back" {
	local pid base lim soft hard before after i codes
	pid=$(agent_pid)
	# Warm the pool, so that the baseline counts what stays open.
	pod_exec client curl -sS --max-time 3 -o /dev/null "http://$VIP_WEB/"
	base=$(agent_fds)
	before=$(metric outrider_overload_total reason=emfile)
	read -r soft hard < <(prlimit --pid "$pid" --nofile --noheadings --raw -o SOFT,HARD)
	lim=$(agent_lowest_free_fd "$pid")
	echo "fds $base, lowest free fd $lim, nofile $soft:$hard"
	prlimit --pid "$pid" --nofile="$lim:$hard"

	# 20 HTTP requests and 4 TCP streams, all at once: they wait in the backlog.
	pod_spawn client "$OR_STATE/logs/emfile-http" bash -c "
		for i in \$(seq 20); do
			curl -sS -o /dev/null -w '%{http_code}\n' --max-time 20 http://$VIP_WEB/ &
		done
		for i in 1 2 3 4; do
			orclient $VIP_ECHO 9000 --send 200000 --timeout-ms 20000 | tail -n1 &
		done
		wait; echo done" >/dev/null
	wait_until 5000 grep -q 'cannot accept, pausing the listener' "$OR_AGENT_LOG"
	sleep 1
	# Nobody was turned away meanwhile: they all still wait.
	run cat "$OR_STATE/logs/emfile-http"
	echo "while paused: $output"
	[ -z "$output" ]
	agent_running

	prlimit --pid "$pid" --nofile="$soft:$hard"
	wait_until 15000 grep -q '^done' "$OR_STATE/logs/emfile-http"
	cat "$OR_STATE/logs/emfile-http"
	codes=$(grep -c '^200$' "$OR_STATE/logs/emfile-http")
	[ "$codes" -eq 20 ]
	[ "$(grep -c '"match":true' "$OR_STATE/logs/emfile-http")" -eq 4 ]
	after=$(metric outrider_overload_total reason=emfile)
	echo "emfile pauses $before -> $after"
	[ "$after" -gt "$before" ]
	grep -c 'cannot accept, pausing the listener' "$OR_AGENT_LOG"
	# Once they are done, the agent holds no more fds than before.
	wait_until 5000 agent_fds_le "$base"
}

@test "overload: SIGTERM drains HTTP: idle keep-alive closes within a second, the request in flight ends with connection: close" {
	local py out
	py=$(pod_spawn client "$OR_STATE/logs/drain" python3 "$OR_ROOT/tests/fixtures/slowloris.py" \
		drain "$VIP_WEB" 80 --slow-header 'x-fault: delay=3000')
	wait_until 5000 grep -q '^ready first=200' "$OR_STATE/logs/drain"
	kill -TERM "$(agent_pid)"
	wait_until 8000 grep -q '^{' "$OR_STATE/logs/drain"
	out=$(grep '^{' "$OR_STATE/logs/drain")
	echo "$out"
	# Idle: closed within DRAIN_IDLE_MS (1 s), long before the slow one ends (3 s).
	jq -e '.idle_closed_ms >= 0 and .idle_closed_ms < 2000' <<<"$out"
	jq -e '.slow_status == 200 and (.slow_connection | ascii_downcase) == "close" and .slow_closed' <<<"$out"
	# With every connection gone, the agent ends well before drain_timeout_ms.
	agent_stop
	echo "exit status $OR_AGENT_STATUS"
}

# memcg_v1_dir: where the agent's cgroup goes in a v1 memory hierarchy:
# below this test's own memory cgroup ("" without such a hierarchy).
memcg_v1_dir()
{
	local mnt own
	mnt=$(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup" && $(i + 3) ~ /(^|,)memory(,|$)/) print $5; break } }' /proc/self/mountinfo | head -n1)
	own=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3 }' /proc/self/cgroup)
	[ -n "$mnt" ] && [ -n "$own" ] && [ -n "${OR_ID:-}" ] || return 0
	echo "$mnt${own%/}/outrider-test-$OR_ID-agent"
}

# The v2 memory controller for cgroups under $OR_CG, or the v1 memory
# hierarchy under this test's own memory cgroup: a cgroup for the agent with
# memory limit $MEM_LIMIT. Prints its directory; fails when neither exists.
memcg_make()
{
	local d
	if grep -qw memory "$CG2/cgroup.subtree_control" 2>/dev/null &&
		echo +memory >"$OR_CG/cgroup.subtree_control" 2>/dev/null; then
		d="$OR_CG/agent-mem"
		mkdir -p "$d" && echo "$MEM_LIMIT" >"$d/memory.max" || return 1
		echo 0 >"$d/memory.swap.max" 2>/dev/null || true
		echo "$d"
		return 0
	fi
	d=$(memcg_v1_dir)
	[ -n "$d" ] || return 1
	mkdir -p "$d" && echo "$MEM_LIMIT" >"$d/memory.limit_in_bytes" || return 1
	echo "$d"
}

# oom_kills DIR: how many times the OOM killer struck in that cgroup.
oom_kills()
{
	if [ -f "$1/memory.events" ]; then
		awk '$1 == "oom_kill" { print $2 }' "$1/memory.events"
	else
		awk '$1 == "oom_kill" { print $2 }' "$1/memory.oom_control"
	fi
}

@test "overload: near its cgroup memory limit the agent sheds new connections (503 memory) instead of being OOM-killed" {
	local cg pid hold
	# ASan keeps freed memory in quarantine (up to 256 MiB) and adds shadow
	# memory: a 48 MiB bound would measure the sanitizer, not the agent.
	if ldd "$OR_BUILD/outriderd" | grep -q libasan; then
		skip "the agent is built with AddressSanitizer (make test SANITIZE=1); the plain build runs this test"
	fi
	agent_stop || true
	cg=$(memcg_make) || skip "no memory cgroup controller to limit the agent with"
	echo "agent cgroup $cg, limit $MEM_LIMIT"
	# Buffers of up to 4 MiB a connection: a few dozen slow uploads would need far more.
	services_yaml $((4 * 1024 * 1024))
	cluster_config
	(echo "$BASHPID" >"$cg/cgroup.procs" && agent_start "$OR_CONFIG")
	agent_wait_ready 5000 client
	wait_until 3000 ready_get /healthz/ready -f
	pid=$(agent_pid)
	grep -q "$(basename "$cg")" "/proc/$pid/cgroup"
	pod_exec client curl -sS --max-time 3 -o /dev/null "http://$VIP_WEB/"
	echo "at rest: $(metric outrider_memory_working_set_bytes) of $(metric outrider_memory_limit_bytes)"
	[ "$(metric outrider_memory_limit_bytes)" -eq "$MEM_LIMIT" ]

	# 40 uploads each announcing 16 MiB, sending 4 MiB of it, then stalling:
	# 160 MiB wanted, held in buffers of up to 4 MiB.
	hold=$(pod_spawn client "$OR_STATE/logs/hold" python3 "$OR_ROOT/tests/fixtures/slowloris.py" \
		hold "$VIP_WEB" 80 --conns 40 --length $((16 << 20)) --send $((4 << 20)) --hold-s 8)
	wait_until 8000 metric_is outrider_memory_shedding -eq 1
	echo "shedding at: $(metric outrider_memory_working_set_bytes) of $MEM_LIMIT"
	# Newcomers meanwhile: 503 memory (or a reset), never a hang.
	run slowloris hold "$VIP_WEB" 80 --conns 10 --length 10 --send 10 --hold-s 2
	echo "$output"
	jq -e '(.reasons.memory // 0) + .reset + .eof == 10' <<<"$output"
	jq -e '(.reasons.memory // 0) >= 1' <<<"$output"
	# TCP ones: closed at once (reset, or refused when the reset beats connect()).
	run slowloris hold "$VIP_ECHO" 9000 --conns 3 --length 10 --send 10 --hold-s 2
	echo "tcp: $output"
	jq -e '.reset + .refused + .eof == 3' <<<"$output"
	wait_until 15000 grep -q '^{' "$OR_STATE/logs/hold"
	cat "$OR_STATE/logs/hold"
	echo "after: $(metric outrider_memory_working_set_bytes) of $MEM_LIMIT"
	# Alive and never OOM-killed.
	[ "$(agent_pid)" = "$pid" ]
	agent_running
	[ "$(oom_kills "$cg")" -eq 0 ]
	[ "$(metric outrider_overload_total reason=memory)" -ge 1 ]

	# The load is gone: it gets under the low-water mark and serves again.
	wait_until 15000 metric_is outrider_memory_shedding -eq 0
	run pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^backend=be-1 ]]
	[ "$(oom_kills "$cg")" -eq 0 ]
	agent_stop
}
