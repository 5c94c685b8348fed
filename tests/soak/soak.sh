#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make soak: does a node agent leak under a long mixed load with faults?
#
#   tests/soak/soak.sh          SOAK_SECONDS (default 600) of load, then a verdict
#
# Topology (tests/e2e/lib/cluster.bash), two "nodes" as in tests/e2e/75_mtls.bats:
#   node-a  client  10.244.1.2   enrolled; every load runs in it
#           be-1    10.244.1.11  not enrolled: endpoints of web and echo
#           be-2    10.244.1.12
#   node-b  srv-1   10.244.1.21  enrolled: endpoints of mesh-web and mesh-echo,
#           srv-2   10.244.1.22  mtls: strict (node-a's agent tunnels to node-b's)
# Every backend runs the fault-injecting upstream (tests/fixtures/upstream.c):
# HTTP on 8080, echo on 9000, its control port on 7000.
#   web        10.96.0.10:80   http -> be-*:8080     retries, per-try timeout,
#   mesh-web   10.96.0.20:80   http -> srv-*:8080    outlier detection
#   echo       10.96.0.11:9000 tcp  -> be-*:9000
#   mesh-echo  10.96.0.21:9000 tcp  -> srv-*:9000
#
# Loads, all at once for the whole run, from the client pod (tests/soak/load.sh):
#   ka, ka-mtls          wrk -t1 -c$SOAK_WRK_CONNS (8) keep-alive to web / mesh-web,
#                        each connection waiting SOAK_WRK_DELAY_MS (10) between requests
#   nc, nc-mtls          curl, a new connection per request, SOAK_NC_RATE (20) a second
#   l4, l4-mtls          orclient streams of 64 KiB, 1 MiB, 4 MiB to echo / mesh-echo,
#                        every byte checked, SOAK_L4_PAUSE (0.2) s apart
# Meanwhile:
#   faults   every SOAK_FAULT_PERIOD (10) s the next fault of a cycle is set on one
#            backend port through its control port, and cleared SOAK_FAULT_ON (5) s
#            later: 503 bursts, resets, delays past the per-try timeout, refused
#            connects; HTTP and echo ports, plain and mTLS backends
#   reloads  every SOAK_RELOAD_PERIOD (30) s both agents get SIGHUP for a config that
#            changed (web's load balancer flips; a spare service comes and goes)
#   SVIDs    svid_ttl_s is SOAK_SVID_TTL (120): renewed at half life, every minute
#
# Sampled every SOAK_SAMPLE s (5; 2 below 300 s of soak), for both agents:
# VmRSS, RssAnon, Threads (/proc/PID/status), open fds (/proc/PID/fd), and the
# agents' counters (/metrics). A progress line every SOAK_PROGRESS (15) s.
#
# The verdict. The first half of the run is warm-up (allocator arenas, pools,
# session caches fill up) and does not count. PASS when, for each agent:
#   1. it ran the whole time, /healthz/ready says 200 at the end, and once the
#      faults are cleared every service still answers through it;
#   2. RSS: the least-squares slope of VmRSS over the second half is at most
#      SOAK_RSS_SLOPE_MAX MiB/min (1.0);
#   3. fds: the median fd count of the last window is at most the median of the
#      window ending at the half-way mark plus SOAK_FD_SLACK (16); a window is
#      a tenth of the run, at least 3 samples (the count moves with the
#      connections in flight: medians, not single samples);
#   4. drain: once the load has stopped, its outrider_active_connections falls
#      to 0 within SOAK_DRAIN (15) s. A leak that fills up against a bound
#      (max_connections) during the warm-up would flatten both slopes; this
#      catches it whatever its size. (The gauge counts the connections of the
#      pods' services; node-b's inbound tunnels are not in it, only in its fds.)
# and every load completed some requests (else nothing was tested). Errors
# under faults are expected and reported, not judged. Exit status 0 on PASS,
# 1 on FAIL or when the run could not be set up, 2 on a bad setting.
#
# Results: $OR_BUILD/soak/soak.{md,csv,png}, copied to SOAK_RESULTS
# (default tests/soak/results; empty: nowhere). soak.csv has one row per
# sample. Everything the run made (namespaces, cgroups, pins, processes, by
# PID) goes on every exit path. The run's state dir is under
# $OR_BUILD/soak/tmp, not /tmp: ten minutes is long enough for something
# tidying /tmp/outrider-test-* to take it, and with it the library's list of
# PIDs to end (a copy of that list is kept too).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OR_ROOT=$ROOT
OR_BUILD=${OR_BUILD:-$ROOT/build}
OR_NODE_NAME="node-a"
export OR_ROOT OR_BUILD OR_NODE_NAME
# shellcheck source=../e2e/lib/cluster.bash
. "$ROOT/tests/e2e/lib/cluster.bash"
# shellcheck source=../bench/lib.bash
. "$ROOT/tests/bench/lib.bash"

SECS=${SOAK_SECONDS:-600}
if [ "$SECS" -ge 300 ]; then SAMPLE=${SOAK_SAMPLE:-5}; else SAMPLE=${SOAK_SAMPLE:-2}; fi
PROGRESS=${SOAK_PROGRESS:-15}
FAULT_PERIOD=${SOAK_FAULT_PERIOD:-10}
FAULT_ON=${SOAK_FAULT_ON:-5}
RELOAD_PERIOD=${SOAK_RELOAD_PERIOD:-30}
SVID_TTL=${SOAK_SVID_TTL:-120}
RSS_SLOPE_MAX=${SOAK_RSS_SLOPE_MAX:-1.0}
FD_SLACK=${SOAK_FD_SLACK:-16}
DRAIN=${SOAK_DRAIN:-15}
export SOAK_WRK_CONNS=${SOAK_WRK_CONNS:-8} SOAK_WRK_DELAY_MS=${SOAK_WRK_DELAY_MS:-10}
export SOAK_NC_RATE=${SOAK_NC_RATE:-20} SOAK_L4_PAUSE=${SOAK_L4_PAUSE:-0.2} SOAK_CHUNK=10
OUT=$OR_BUILD/soak
RESULTS=${SOAK_RESULTS-$ROOT/tests/soak/results}
NAME=soak
export TMPDIR=$OUT/tmp

for v in SECS SAMPLE PROGRESS FAULT_PERIOD FAULT_ON RELOAD_PERIOD SVID_TTL FD_SLACK DRAIN; do
	if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then
		echo "soak: $v=${!v}: want a whole number > 0" >&2
		exit 2
	fi
done
if [ "$SECS" -lt 20 ]; then
	echo "soak: SOAK_SECONDS=$SECS: want at least 20" >&2
	exit 2
fi

CLIENT_IP=10.244.1.2
VIP_WEB=10.96.0.10
VIP_ECHO=10.96.0.11
VIP_MWEB=10.96.0.20
VIP_MECHO=10.96.0.21
VIP_SPARE=10.96.0.99
declare -A POD_IP=([be-1]=10.244.1.11 [be-2]=10.244.1.12 [srv-1]=10.244.1.21 [srv-2]=10.244.1.22)

# The loads: name -> load.sh arguments (END and STOP follow).
LOADS=(ka ka-mtls nc nc-mtls l4 l4-mtls)
declare -A LOAD_ARGS=(
	[ka]="wrk http://$VIP_WEB"
	[ka-mtls]="wrk http://$VIP_MWEB"
	[nc]="curl http://$VIP_WEB"
	[nc-mtls]="curl http://$VIP_MWEB"
	[l4]="stream $VIP_ECHO 9000"
	[l4-mtls]="stream $VIP_MECHO 9000"
)
declare -A LOAD_WHAT=(
	[ka]="HTTP keep-alive, wrk -c$SOAK_WRK_CONNS, to web"
	[ka-mtls]="HTTP keep-alive, wrk -c$SOAK_WRK_CONNS, to mesh-web (mTLS)"
	[nc]="HTTP new connection per request, curl $SOAK_NC_RATE/s, to web"
	[nc-mtls]="HTTP new connection per request, curl $SOAK_NC_RATE/s, to mesh-web (mTLS)"
	[l4]="L4 echo streams, orclient, to echo"
	[l4-mtls]="L4 echo streams, orclient, to mesh-echo (mTLS)"
)

# The fault cycle: POD PORT SPEC, one at a time, each for FAULT_ON seconds.
# delay=1500 is past the HTTP services' per-try timeout (1000 ms); on an echo
# port it holds the first bytes back.
FAULTS=(
	"be-1 8080 status=503"
	"srv-1 8080 status=503"
	"be-2 9000 reset"
	"be-1 8080 reset"
	"srv-2 8080 delay=1500"
	"be-2 8080 refuse"
	"srv-1 9000 refuse"
	"be-1 9000 delay=1000"
	"srv-2 8080 reset"
	"be-2 8080 delay=1500"
	"srv-2 9000 reset"
	"srv-1 8080 refuse"
)

mkdir -p "$OUT" "$TMPDIR" ${RESULTS:+"$RESULTS"}
if ! why=$(cluster_prereqs); then
	echo "soak: cannot run here: $why" >&2
	exit 1
fi
for cmd in wrk curl jq awk; do
	if ! command -v "$cmd" >/dev/null; then
		echo "soak: $cmd is not installed (tests/deps.sh installs it)" >&2
		exit 1
	fi
done
for bin in outriderd outriderctl upstream orclient; do
	if [ ! -x "$OR_BUILD/$bin" ]; then
		echo "soak: $OR_BUILD/$bin is missing: run make all fixtures" >&2
		exit 1
	fi
done
# The agent may be rebuilt while a long run goes on; a failure then may be
# the new binary's, and the report says so.
AGENT_MTIME=$(stat -c %Y "$OR_BUILD/outriderd")

LOAD_PIDS=()
PIDS_COPY=""
on_exit()
{
	local pid
	for pid in "${LOAD_PIDS[@]}"; do
		_or_end_pid "$pid" -
	done
	# The state dir gone under us: cluster_cleanup still needs the PIDs.
	if [ -n "${OR_STATE:-}" ] && [ ! -s "$OR_STATE/pids" ] && [ -n "$PIDS_COPY" ]; then
		mkdir -p "$OR_STATE" && echo "$PIDS_COPY" >"$OR_STATE/pids"
	fi
	cluster_cleanup
}
trap on_exit EXIT
trap 'exit 130' INT TERM

note() { printf '      %s\n' "$*" >&2; }
say() { printf 'soak: %s\n' "$*" >&2; }
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
# mmss SECONDS: 10:05
mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# ---- setup -----------------------------------------------------------------------------

# soak_services VARIANT: a or b; what a reload flips between.
soak_services()
{
	local lb=round_robin spare=""
	if [ "$1" = b ]; then
		lb=least_request
		spare="
  - name: spare
    vip: $VIP_SPARE
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: be}"
	fi
	local policy="{load_balancer: $lb, timeout_ms: 5000, retries: {attempts: 2, per_try_timeout_ms: 1000}, outlier_detection: {consecutive_5xx: 5, consecutive_connect_failures: 5, interval_ms: 1000, base_ejection_time_ms: 3000}}"
	cluster_services <<EOF
services:
  - name: web
    vip: $VIP_WEB
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: be}
    policy: $policy
  - name: echo
    vip: $VIP_ECHO
    ports: [{port: 9000, protocol: tcp}]
    selector: {app: be}
  - name: mesh-web
    vip: $VIP_MWEB
    mtls: strict
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: srv}
    policy: $policy
  - name: mesh-echo
    vip: $VIP_MECHO
    mtls: strict
    ports: [{port: 9000, protocol: tcp}]
    selector: {app: srv}$spare
svid_ttl_s: $SVID_TTL
EOF
}

# Log level info: nothing is logged per connection or request.
_soak_agent_start() { agent_start "$OR_CONFIG" --log-level info; }

# agents_up: both node agents, each waited for until its pods are captured,
# :15008 listens in them and /healthz/ready says 200.
agents_up()
{
	local node pod
	for node in node-a node-b; do
		on_node "$node" cluster_config || return 1
	done
	if ! on_node node-b _soak_agent_start ||
		! on_node node-b agent_wait_ready 5000 srv-1 srv-2 ||
		! on_node node-a _soak_agent_start ||
		! on_node node-a agent_wait_ready 5000 client; then
		on_node node-a _or_node_dump
		on_node node-b _or_node_dump
		return 1
	fi
	for pod in client srv-1 srv-2; do
		if ! wait_until 5000 pod_listening "$pod" 15008; then
			echo "no mTLS listener (:15008) in pod $pod" >&2
			return 1
		fi
	done
	for node in node-a node-b; do
		if ! wait_until 3000 on_node "$node" ready_get /healthz/ready -f; then
			echo "$node: /healthz/ready never said 200" >&2
			on_node "$node" _or_node_dump
			return 1
		fi
	done
}

# services_answer: one request through each service from the client pod;
# prints what failed, returns 1 if anything did.
services_answer()
{
	local bad=0 body
	for vip in $VIP_WEB $VIP_MWEB; do
		body=$(pod_exec client curl -sS --max-time 5 "http://$vip/" 2>&1) || true
		if [[ "$body" != backend=* ]]; then
			echo "http://$vip/: $(head -c 120 <<<"$body" | tr '\n' ' ')"
			bad=1
		fi
	done
	for vip in $VIP_ECHO $VIP_MECHO; do
		if ! body=$(pod_exec client orclient "$vip" 9000 --send 64K --timeout-ms 5000 2>&1); then
			echo "$vip:9000: $(tr '\n' ' ' <<<"$body" | head -c 160)"
			bad=1
		fi
	done
	return $bad
}

T_SETUP=$(date +%s)
say "setup: client (node-a), be-1 be-2 (plain backends), srv-1 srv-2 (node-b, mTLS strict), two agents"
cluster_init
node_add node-b
pod_add client $CLIENT_IP
pod_label client app=client outrider.io/mode=enabled
for p in be-1 be-2 srv-1 srv-2; do
	pod_add "$p" "${POD_IP[$p]}"
	if [ "${p%-*}" = srv ]; then
		pod_node "$p" node-b
		pod_label "$p" app=srv outrider.io/mode=enabled
	else
		pod_label "$p" app=be
	fi
	upstream_start "$p" "$p" --http 8080 --echo 9000 --control "$UPSTREAM_CONTROL_PORT"
done
# As in the benchmark: the client opens thousands of connections a minute;
# its TIME-WAIT sockets must not use up its ports. The range stays above the
# agent's ports (150xx).
ip netns exec "$(pod_netns client)" sysctl -q -w net.ipv4.tcp_tw_reuse=1 \
	net.ipv4.ip_local_port_range="20000 65000"
VARIANT=a
soak_services $VARIANT
if ! agents_up; then
	say "the agents did not come up"
	exit 1
fi
if ! why=$(services_answer); then
	say "a service does not answer before the load:"
	note "$why"
	exit 1
fi
PID_A=$(on_node node-a agent_pid)
PID_B=$(on_node node-b agent_pid)
say "agents up: node-a pid $PID_A, node-b pid $PID_B ($(($(date +%s) - T_SETUP)) s); run $OR_ID, state in $OR_STATE (OR_KEEP_STATE=1 keeps it)"

# ---- sampling ------------------------------------------------------------------------------

# proc_sample PID: "rss_kib anon_kib threads fds", or "- - - -" when it is gone.
proc_sample()
{
	local pid=$1 st fds
	if ! _or_alive "$pid"; then
		echo "- - - -"
		return 0
	fi
	st=$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } /^Threads:/ { t = $2 }
		END { printf "%s %s %s", r, a, t }' "/proc/$pid/status" 2>/dev/null) || st="- - -"
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	echo "$st $fds"
}

# counters NODE: from its /metrics, "http http_5xx tcp_opened active
# tunnels_in reloads_ok reloads_failed handshakes" ("-" each when it does
# not answer).
counters()
{
	local text
	if ! text=$(on_node "$1" admin_get /metrics 2>/dev/null); then
		echo "- - - - - - - -"
		return 0
	fi
	awk '
		/^#/ || NF < 2 { next }
		{
			b = index($1, "{"); name = b ? substr($1, 1, b - 1) : $1; v = $NF
			if (name == "outrider_requests_total") { http += v; if ($0 ~ /response_code="5/) h5 += v }
			else if (name == "outrider_tcp_connections_opened_total") tcp += v
			else if (name == "outrider_active_connections") act += v
			else if (name == "outrider_tunnels_total") tun += v
			else if (name == "outrider_tls_handshakes_total") hs += v
			else if (name == "outrider_config_reloads_total") {
				if ($0 ~ /result="ok"/) rok += v; else rfail += v
			}
		}
		END { printf "%d %d %d %d %d %d %d %d\n", http, h5, tcp, act, tun, rok, rfail, hs }' <<<"$text"
}

# load_totals NAME: "ok err" so far, from its output.
load_totals()
{
	awk '/^ok=/ { split($1, a, "="); split($2, b, "="); ok += a[2]; err += b[2] }
		END { printf "%d %d\n", ok, err }' "$OR_STATE/logs/load-$1.log" 2>/dev/null || echo "0 0"
}

CSV=$OUT/$NAME.csv
echo "t_s,a_rss_kib,a_anon_kib,a_threads,a_fds,b_rss_kib,b_anon_kib,b_threads,b_fds,a_http_requests,a_http_5xx,a_tcp_opened,a_active_conns,b_active_conns,a_tunnels,b_tunnels,a_handshakes,b_handshakes,reloads_ok,reloads_failed,a_http_per_s,fault" >"$CSV"

# The idle baseline: both agents up, nothing flowing.
IDLE0_A_RSS=$(rss_mib "$PID_A") IDLE0_B_RSS=$(rss_mib "$PID_B")
read -r _ _ _ IDLE0_A_FDS <<<"$(proc_sample "$PID_A")"
read -r _ _ _ IDLE0_B_FDS <<<"$(proc_sample "$PID_B")"

PREV_HTTP=0 PREV_T=0 LAST=""
# sample T FAULT: one CSV row; sets LAST ("a_rss a_fds b_rss b_fds http h5
# tcp active tunnels_b reloads_ok reloads_failed"); returns 1 when an agent
# is gone.
sample()
{
	local t=$1 fault=$2 a b ca cb rate
	a=$(proc_sample "$PID_A")
	b=$(proc_sample "$PID_B")
	ca=$(counters node-a)
	cb=$(counters node-b)
	local ar aa at af br ba bt bf
	read -r ar aa at af <<<"$a"
	read -r br ba bt bf <<<"$b"
	local http h5 tcp act tun rok rfail hs bact btun bhs brok brfail
	read -r http h5 tcp act tun rok rfail hs <<<"$ca"
	read -r _ _ _ bact btun brok brfail bhs <<<"$cb"
	rate=-
	if [ "$http" != - ] && [ "$t" -gt "$PREV_T" ]; then
		rate=$(((http - PREV_HTTP) / (t - PREV_T)))
		PREV_HTTP=$http PREV_T=$t
	fi
	[ "$rok" = - ] || [ "$brok" = - ] || rok=$((rok + brok))
	[ "$rfail" = - ] || [ "$brfail" = - ] || rfail=$((rfail + brfail))
	echo "$t,$ar,$aa,$at,$af,$br,$ba,$bt,$bf,$http,$h5,$tcp,$act,$bact,$tun,$btun,$hs,$bhs,$rok,$rfail,$rate,\"$fault\"" >>"$CSV"
	LAST="$ar $af $br $bf $http $h5 $tcp $act $btun $rok $rfail"
	[ "$ar" != - ] && [ "$br" != - ]
}

# ---- faults and reloads ----------------------------------------------------------------------

FAULT_N=0 FAULT_NOW="" FAULT_ERRORS=0
fault_set()
{
	local pod port spec
	read -r pod port spec <<<"$1"
	if ! upstream_fault "$pod" "$port" "$spec" 2>/dev/null; then
		FAULT_ERRORS=$((FAULT_ERRORS + 1))
		note "could not set fault $spec on $pod:$port (control port)"
	fi
}

fault_next()
{
	local f=${FAULTS[FAULT_N % ${#FAULTS[@]}]}
	FAULT_N=$((FAULT_N + 1))
	fault_set "$f"
	FAULT_NOW=$f
}

fault_clear()
{
	[ -n "$FAULT_NOW" ] || return 0
	local pod port
	read -r pod port _ <<<"$FAULT_NOW"
	fault_set "$pod $port none"
	FAULT_NOW=""
}

RELOADS=0
reload()
{
	if [ "$VARIANT" = a ]; then VARIANT=b; else VARIANT=a; fi
	soak_services $VARIANT
	on_node node-a cluster_config
	on_node node-b cluster_config
	on_node node-a agent_reload || true
	on_node node-b agent_reload || true
	RELOADS=$((RELOADS + 1))
}

# ---- the run ---------------------------------------------------------------------------------

STOP=$OR_STATE/soak.stop
CPU0_A=$(ticks_of "$PID_A") CPU0_B=$(ticks_of "$PID_B")
T0_MS=$(now_ms)
END_S=$(((T0_MS + 999) / 1000 + SECS))
say "load for $(mmss "$SECS") (SOAK_SECONDS=$SECS): ${LOADS[*]}; a fault every $FAULT_PERIOD s for $FAULT_ON s; SIGHUP every $RELOAD_PERIOD s; sample every $SAMPLE s"
for l in "${LOADS[@]}"; do
	# Through a file, not $(...): the load stays a child of this shell.
	# shellcheck disable=SC2086 # LOAD_ARGS holds words
	pod_spawn client "$OR_STATE/logs/load-$l.log" \
		"$ROOT/tests/soak/load.sh" ${LOAD_ARGS[$l]} "$END_S" "$STOP" >"$OR_STATE/spawned"
	LOAD_PIDS+=("$(<"$OR_STATE/spawned")")
done
# Agents, upstreams and loads: everything long-lived is started by now.
PIDS_COPY=$(<"$OR_STATE/pids")

DEAD=""
next_sample=0 next_progress=$PROGRESS next_fault=$FAULT_PERIOD clear_at=-1 next_reload=$RELOAD_PERIOD
while :; do
	t_ms=$(($(now_ms) - T0_MS))
	t=$((t_ms / 1000))
	[ "$t" -le "$SECS" ] || break
	if [ ! -f "$OR_STATE/pods" ]; then
		say "the run's state dir $OR_STATE was removed by something else at $(mmss "$t"): nothing more can be measured; run again"
		exit 1
	fi
	if [ "$t" -ge "$clear_at" ] && [ "$clear_at" -ge 0 ]; then
		fault_clear
		clear_at=-1
	fi
	if [ "$t" -ge "$next_fault" ] && [ "$t" -lt "$SECS" ]; then
		fault_clear
		fault_next
		clear_at=$((t + FAULT_ON))
		next_fault=$((next_fault + FAULT_PERIOD))
	fi
	if [ "$t" -ge "$next_reload" ] && [ "$t" -lt "$SECS" ]; then
		reload
		next_reload=$((next_reload + RELOAD_PERIOD))
	fi
	if [ "$t" -ge "$next_sample" ]; then
		if ! sample "$t" "$FAULT_NOW"; then
			_or_alive "$PID_A" || DEAD+=" node-a"
			_or_alive "$PID_B" || DEAD+=" node-b"
			say "agent gone at $(mmss "$t"):$DEAD"
			break
		fi
		next_sample=$((next_sample + SAMPLE))
	fi
	if [ "$t" -ge "$next_progress" ] || [ "$t" -ge "$SECS" ]; then
		read -r ar af br bf http h5 tcp act btun rok rfail <<<"$LAST"
		cok=0 cerr=0
		for l in "${LOADS[@]}"; do
			read -r o e <<<"$(load_totals "$l")"
			cok=$((cok + o)) cerr=$((cerr + e))
		done
		printf '[%5s/%s] node-a %s MiB %s fds | node-b %s MiB %s fds | node-a: %s HTTP (%s 5xx), %s L4 conns, %s active | tunnels in %s | clients: %s ok, %s failed | reloads %s%s | %s\n' \
			"$(mmss "$t")" "$(mmss "$SECS")" "$(awk -v k="$ar" 'BEGIN { printf "%.1f", k / 1024 }')" "$af" \
			"$(awk -v k="$br" 'BEGIN { printf "%.1f", k / 1024 }')" "$bf" "$http" "$h5" "$tcp" "$act" "$btun" \
			"$cok" "$cerr" "$rok" "$([ "${rfail:-0}" = 0 ] || echo " ($rfail failed)")" \
			"${FAULT_NOW:+fault: $FAULT_NOW}" >&2
		next_progress=$((next_progress + PROGRESS))
	fi
	[ "$t" -lt "$SECS" ] || break
	# Wake on the next whole second of the run.
	sleep "$(awk -v ms=$(($(now_ms) - T0_MS)) 'BEGIN { r = 1000 - ms % 1000; printf "%.3f", r / 1000 }')"
done
RUN_S=$((($(now_ms) - T0_MS) / 1000))
CPU1_A=$(ticks_of "$PID_A") CPU1_B=$(ticks_of "$PID_B")

# ---- after the load ----------------------------------------------------------------------------

touch "$STOP"
fault_clear
# The loads end by themselves at END_S; a round may still be finishing.
for pid in "${LOAD_PIDS[@]}"; do
	for ((i = 0; i < 200; i++)); do
		_or_alive "$pid" || break
		sleep 0.1
	done
	_or_end_pid "$pid" -
done
LOAD_PIDS=()
declare -A LOK=() LERR=()
for l in "${LOADS[@]}"; do
	read -r LOK[$l] LERR[$l] <<<"$(load_totals "$l")"
done
# Every endpoint healthy again, and past any ejection (3 s, times the count).
for p in be-1 be-2 srv-1 srv-2; do
	upstream_fault "$p" 8080 none 2>/dev/null || true
	upstream_fault "$p" 9000 none 2>/dev/null || true
done

# Drain: with every client gone, no connection may stay open in an agent.
declare -A ACTIVE_LEFT=()
drained()
{
	local n
	for node in node-a node-b; do
		n=$(on_node "$node" metric outrider_active_connections 2>/dev/null) || n=-
		ACTIVE_LEFT[$node]=$n
	done
	[ "${ACTIVE_LEFT[node-a]}" = 0 ] && [ "${ACTIVE_LEFT[node-b]}" = 0 ]
}
DRAIN_MS=-
t_drain=$(now_ms)
if wait_until $((DRAIN * 1000)) drained; then
	DRAIN_MS=$(($(now_ms) - t_drain))
fi
drained || true
SS_A=$(pod_exec client ss -Htan 2>/dev/null | awk '{ print $1 }' | sort | uniq -c | sort -rn |
	awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')

declare -A ALIVE=() READY=()
FINAL_ANSWER=""
for node in node-a node-b; do
	pid=$PID_A
	[ "$node" = node-b ] && pid=$PID_B
	ALIVE[$node]=no
	READY[$node]=no
	if _or_alive "$pid"; then
		ALIVE[$node]=yes
		on_node "$node" ready_get /healthz/ready -f >/dev/null 2>&1 && READY[$node]=yes
	fi
done
if [ "${ALIVE[node-a]}" = yes ] && [ "${ALIVE[node-b]}" = yes ]; then
	# Outlier ejections from the last faults may still run; a few tries.
	for ((i = 0; i < 10; i++)); do
		if FINAL_ANSWER=$(services_answer); then
			FINAL_ANSWER=""
			break
		fi
		sleep 2
	done
fi
# The idle end: connections drain (pooled upstream ones stay, bounded per worker).
sleep 5
IDLE1_A_RSS=$(rss_mib "$PID_A") IDLE1_B_RSS=$(rss_mib "$PID_B")
read -r _ _ _ IDLE1_A_FDS <<<"$(proc_sample "$PID_A")"
read -r _ _ _ IDLE1_B_FDS <<<"$(proc_sample "$PID_B")"
COUNTERS_A=$(counters node-a)
COUNTERS_B=$(counters node-b)
LOG_ERRORS_A=$(grep -c 'level=error' "$OR_AGENT_LOG" 2>/dev/null || true)
LOG_ERRORS_B=$(grep -c 'level=error' "$(on_node node-b sh -c 'echo "$OR_AGENT_LOG"')" 2>/dev/null || true)
LOG_WARN_TOP=$( { grep -h 'level=\(warn\|error\)' "$OR_AGENT_LOG" "$(on_node node-b sh -c 'echo "$OR_AGENT_LOG"')" 2>/dev/null || true; } |
	sed -n 's/.*level=\([a-z]*\) msg="\([^"]*\)".*/\1: \2/p' | sort | uniq -c | sort -rn | head -n 8)
SVID_RENEWALS=$( { grep -h -c -i 'renew' "$OR_AGENT_LOG" "$(on_node node-b sh -c 'echo "$OR_AGENT_LOG"')" 2>/dev/null || true; } |
	awk '{ s += $1 } END { print s + 0 }')

# ---- analysis ----------------------------------------------------------------------------------

# stats COL: over the CSV's samples, "start half end slope n" of column COL
# (kib columns in MiB): start = first sample; half = median of the window
# ending at the half-way mark; end = median of the last window; slope =
# least-squares fit over the second half, per minute; n = its samples.
HALF=$((SECS / 2))
WIN=$((SECS / 10))
[ "$WIN" -ge $((3 * SAMPLE)) ] || WIN=$((3 * SAMPLE))
stats()
{
	awk -F, -v col="$1" -v half="$HALF" -v win="$WIN" -v last="$RUN_S" '
		function median(arr, n,    i, j, x) {
			for (i = 2; i <= n; i++) { x = arr[i]; for (j = i - 1; j >= 1 && arr[j] > x; j--) arr[j + 1] = arr[j]; arr[j + 1] = x }
			return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
		}
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; mib = col ~ /kib$/; next }
		$c == "-" || $c == "" { next }
		{
			t = $1; y = mib ? $c / 1024 : $c
			if (!have) { start = y; have = 1 }
			tmax = t
			ts[++n] = t; ys[n] = y
		}
		END {
			for (i = 1; i <= n; i++) {
				if (ts[i] > half - win && ts[i] <= half) h[++nh] = ys[i]
				if (ts[i] > tmax - win) e[++ne] = ys[i]
				if (ts[i] >= half) { x = ts[i] / 60; sx += x; sy += ys[i]; sxx += x * x; sxy += x * ys[i]; k++ }
			}
			slope = (k >= 2 && k * sxx - sx * sx != 0) ? (k * sxy - sx * sy) / (k * sxx - sx * sx) : 0
			icept = k ? (sy - slope * sx) / k : 0
			printf "%.2f %.2f %.2f %.3f %d %.4f\n", start, nh ? median(h, nh) : -1, ne ? median(e, ne) : -1, slope, k, icept
		}' "$CSV"
}

declare -A ST=()
FAILS=()
for node in a b; do
	for m in rss fds anon; do
		col=${node}_${m}
		[ "$m" = fds ] || col=${col}_kib
		read -r s h e sl k ic <<<"$(stats "$col")"
		ST[$node|$m|start]=$s ST[$node|$m|half]=$h ST[$node|$m|end]=$e
		ST[$node|$m|slope]=$sl ST[$node|$m|n]=$k ST[$node|$m|icept]=$ic
	done
done

gt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
for node in a b; do
	nn=node-$node
	if [ "${ALIVE[$nn]}" != yes ]; then
		FAILS+=("$nn's agent is gone")
	elif [ "${READY[$nn]}" != yes ]; then
		FAILS+=("$nn's /healthz/ready does not say 200")
	fi
	if [ "${ST[$node|rss|n]}" -lt 2 ]; then
		FAILS+=("$nn: too few samples in the second half to fit")
	elif gt "${ST[$node|rss|slope]}" "$RSS_SLOPE_MAX"; then
		FAILS+=("$nn: RSS grows ${ST[$node|rss|slope]} MiB/min over the second half (limit $RSS_SLOPE_MAX)")
	fi
	if gt "${ST[$node|fds|end]}" "$(awk -v h="${ST[$node|fds|half]}" -v s="$FD_SLACK" 'BEGIN { print h + s }')"; then
		FAILS+=("$nn: ${ST[$node|fds|end]} fds at the end against ${ST[$node|fds|half]} at half-way (slack $FD_SLACK)")
	fi
done
for nn in node-a node-b; do
	[ "${ACTIVE_LEFT[$nn]}" = 0 ] ||
		FAILS+=("$nn: ${ACTIVE_LEFT[$nn]} connections still active $DRAIN s after the load stopped (outrider_active_connections)")
done
[ -z "$FINAL_ANSWER" ] || FAILS+=("after the load, with faults cleared: $(tr '\n' ' ' <<<"$FINAL_ANSWER")")
for l in "${LOADS[@]}"; do
	[ "${LOK[$l]}" -gt 0 ] || FAILS+=("load $l completed nothing")
done
[ "$RUN_S" -ge "$SECS" ] || FAILS+=("the run stopped after $RUN_S of $SECS s")
VERDICT=PASS
[ ${#FAILS[@]} -eq 0 ] || VERDICT=FAIL
BINARY_NOTE=""
if [ "$(stat -c %Y "$OR_BUILD/outriderd" 2>/dev/null)" != "$AGENT_MTIME" ]; then
	BINARY_NOTE="build/outriderd was rebuilt during the run: the agents ran the binary from before; if this run failed oddly, run it again."
fi

# ---- report -------------------------------------------------------------------------------------

MD=$OUT/$NAME.md
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f%%", (a + b) ? 100 * b / (a + b) : 0 }'; }
# cpu_s TICKS0 TICKS1: "N s (P% of a CPU)" over the run.
cpu_s()
{
	if [ -z "$1" ] || [ -z "$2" ]; then
		echo "-"
		return 0
	fi
	awk -v a="$1" -v b="$2" -v t="$CLK_TCK" -v s="$RUN_S" \
		'BEGIN { c = (b - a) / t; printf "%.0f s (%.0f%% of a CPU)", c, s ? 100 * c / s : 0 }'
}
read -r CA_HTTP CA_5XX CA_TCP _ _ CA_ROK CA_RFAIL CA_HS <<<"$COUNTERS_A"
read -r _ _ _ _ CB_TUN CB_ROK CB_RFAIL CB_HS <<<"$COUNTERS_B"
{
	echo "**$VERDICT** — $(mmss "$RUN_S") of mixed load with faults against two agents (SOAK_SECONDS=$SECS), sampled every $SAMPLE s."
	echo
	echo "| agent | VmRSS MiB: start / half-way / end | RSS slope, 2nd half (limit) | RssAnon MiB: start / end | RssAnon slope | fds: start / half-way / end (slack) | fd slope, 2nd half | idle before / after: RSS MiB, fds | alive, ready |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
	for node in a b; do
		nn=node-$node
		i0r=IDLE0_${node^^}_RSS i0f=IDLE0_${node^^}_FDS i1r=IDLE1_${node^^}_RSS i1f=IDLE1_${node^^}_FDS
		printf '| %s | %s / %s / %s | %+.2f MiB/min (≤ %s) | %s / %s | %+.2f MiB/min | %.0f / %.0f / %.0f (+%s) | %+.1f /min | %s, %s → %s, %s | %s, %s |\n' \
			"$nn" "${ST[$node|rss|start]}" "${ST[$node|rss|half]}" "${ST[$node|rss|end]}" \
			"${ST[$node|rss|slope]}" "$RSS_SLOPE_MAX" "${ST[$node|anon|start]}" "${ST[$node|anon|end]}" \
			"${ST[$node|anon|slope]}" "${ST[$node|fds|start]}" "${ST[$node|fds|half]}" "${ST[$node|fds|end]}" \
			"$FD_SLACK" "${ST[$node|fds|slope]}" \
			"${!i0r:--}" "${!i0f:--}" "${!i1r:--}" "${!i1f:--}" \
			"${ALIVE[$nn]}" "${READY[$nn]}"
	done
	echo
	if [ "$VERDICT" = FAIL ]; then
		echo "Failed:"
		echo
		for f in "${FAILS[@]}"; do echo "- $f"; done
		echo
	fi
	echo "| load | what | completed | failed |"
	echo "|---|---|---:|---:|"
	for l in "${LOADS[@]}"; do
		echo "| $l | ${LOAD_WHAT[$l]} | ${LOK[$l]} | ${LERR[$l]} ($(pct "${LOK[$l]}" "${LERR[$l]}")) |"
	done
	echo
	echo "Agent counters at the end: node-a proxied $CA_HTTP HTTP requests ($CA_5XX answered 5xx) and"
	echo "opened $CA_TCP L4 connections; node-b took $CB_TUN mTLS tunnels in; TLS handshakes (full and"
	echo "resumed): node-a $CA_HS, node-b $CB_HS; SIGHUP reloads: $RELOADS sent to each agent, $((CA_ROK + CB_ROK)) applied"
	echo "($((CA_RFAIL + CB_RFAIL)) rejected); faults applied: $FAULT_N ($FAULT_ERRORS could not be set); SVID"
	echo "renewal log lines: $SVID_RENEWALS; error log lines: node-a ${LOG_ERRORS_A:-0}, node-b ${LOG_ERRORS_B:-0}."
	echo
	echo "Agent CPU over the run (utime + stime): node-a $(cpu_s "$CPU0_A" "$CPU1_A"), node-b $(cpu_s "$CPU0_B" "$CPU1_B")."
	echo
	echo "After the load: active connections node-a ${ACTIVE_LEFT[node-a]}, node-b ${ACTIVE_LEFT[node-b]}"
	echo "($([ "$DRAIN_MS" = - ] && echo "still not 0 after $DRAIN s" || echo "0 after $DRAIN_MS ms")); the client pod's TCP sockets then: ${SS_A:-none}."
	if [ -n "$LOG_WARN_TOP" ]; then
		echo
		echo "Most frequent warnings and errors in the agents' logs (both nodes):"
		echo
		echo '```'
		echo "$LOG_WARN_TOP"
		echo '```'
	fi
	echo
	echo "Criterion (tests/soak/soak.sh): the first half is warm-up. PASS when each agent ran"
	echo "throughout and is ready at the end, every service answers once faults are cleared,"
	echo "the least-squares slope of VmRSS over the second half is ≤ $RSS_SLOPE_MAX MiB/min, and"
	echo "the median fd count of the last $WIN s is ≤ that of the $WIN s up to half-way + $FD_SLACK,"
	echo "and once the load stops, outrider_active_connections falls to 0 within $DRAIN s."
	echo "Topology: client (node-a) → web/echo (be-1, be-2, plain) and mesh-web/mesh-echo"
	echo "(srv-1, srv-2 on node-b, mtls: strict). Faults, one at a time for $FAULT_ON s every"
	echo "$FAULT_PERIOD s, in turn: $(printf '%s; ' "${FAULTS[@]}" | sed 's/; $//')."
	echo "SIGHUP every $RELOAD_PERIOD s (web's load balancer flips, a service comes and goes);"
	echo "svid_ttl_s $SVID_TTL. Samples in soak.csv."
	echo
	echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC');"
	echo "\`tests/soak/soak.sh\` ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+changes'))."
	[ -z "$BINARY_NOTE" ] || { echo; echo "$BINARY_NOTE"; }
} >"$MD"

if command -v gnuplot >/dev/null; then
	gnuplot -e "out='$OUT/$NAME.png'; csv='$CSV'; half=$HALF/60.0; total=$SECS/60.0" \
		-e "ra0=${ST[a|rss|icept]}; ra1=${ST[a|rss|slope]}; rb0=${ST[b|rss|icept]}; rb1=${ST[b|rss|slope]}" \
		-e "fa0=${ST[a|fds|icept]}; fa1=${ST[a|fds|slope]}; fb0=${ST[b|fds|icept]}; fb1=${ST[b|fds|slope]}" \
		-e "subtitle='$VERDICT, $(mmss "$RUN_S") on $(nproc) CPUs, sampled every $SAMPLE s'" \
		"$ROOT/tests/soak/plot.gp" 2>"$OUT/$NAME.gnuplot.err" ||
		{ say "gnuplot failed:"; cat "$OUT/$NAME.gnuplot.err" >&2; }
	[ -f "$OUT/$NAME.png" ] && { echo; echo "![soak](tests/soak/results/$NAME.png)"; } >>"$MD"
fi

if [ -n "$RESULTS" ]; then
	cp "$MD" "$CSV" "$RESULTS/"
	[ -f "$OUT/$NAME.png" ] && cp "$OUT/$NAME.png" "$RESULTS/"
fi

cat "$MD"
echo
[ -z "$BINARY_NOTE" ] || say "$BINARY_NOTE"
say "$VERDICT after $(mmss "$RUN_S") (setup and checks: $(($(date +%s) - T_SETUP - RUN_S)) s); table $MD, samples $CSV, chart $OUT/$NAME.png${RESULTS:+ (copied to $RESULTS/)}"
[ "$VERDICT" = PASS ]
