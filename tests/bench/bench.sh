#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench / make bench-quick: what a mesh costs, measured side by side in
# one run on one topology, against no mesh and against HAProxy sidecars.
#
#   tests/bench/bench.sh full       15 s per load (make bench, < 15 min)
#   tests/bench/bench.sh quick      2 s per load (make bench-quick, < 2 min)
#
# Topology: a client pod on node-a and a server pod on node-b, two "nodes"
# (two agents, as in tests/e2e/75_mtls.bats) on one machine. The server pod
# runs tests/fixtures/upstream (HTTP on [::]:8080) and `iperf3 -s` (5201).
# Service srv, ClusterIP 10.96.0.10: 80 -> 8080, 5201 -> 5201 (tcp).
#
# Scenarios, in turn:
#   direct        no mesh: client -> server pod IP:8080
#   kernel        outrider sidecar-less, kernel mode (connect4 LB) -> VIP
#   proxy         outrider sidecar-less, proxy mode, mtls: disabled
#   proxy-mtls    outrider sidecar-less, proxy mode, mtls: strict (the
#                 client's agent tunnels to node-b's agent on :15008)
#   sidecar       outriderd --sidecar in each pod, plaintext
#   sidecar-mtls  outriderd --sidecar in each pod, mTLS
#   haproxy       an HAProxy sidecar in each pod, plaintext
#   haproxy-mtls  HAProxy sidecars with mTLS (TLS 1.3, P-256,
#                 TLS_AES_128_GCM_SHA256: what outrider negotiates)
# Sidecars capture with deploy/sidecar/outrider-iptables.sh (istio-init's
# rules) and run as uid 1337; the node agents are stopped meanwhile.
#
# Loads, each from inside the client pod:
#   keepalive   wrk -t1 -c16, keep-alive HTTP/1.1 GETs
#   newconn     the same with "Connection: close": a connection per request
#   bulk        iperf3, one TCP stream to VIP:5201
#   openloop    build/openloop at a fixed rate (BENCH_RATE, 2000/s), 16
#               connections: latency up to p99.9 without coordinated omission
#
# Environment: BENCH_SECONDS (per load), BENCH_RATE, BENCH_CONNS (16),
# BENCH_SCENARIOS / BENCH_LOADS (space-separated subsets),
# BENCH_SIDECAR_WORKERS (outrider sidecar workers, 1), BENCH_SIDECAR_LOG (their
# --log-level, info), BENCH_SCALE_TIMEOUT,
# BENCH_BUSY_PCT (see "other_cpu"), BENCH_RESULTS (where to copy the results;
# empty: nowhere), BENCH_DEBUG=1 (CPU ticks and TIME-WAIT counts per load).
#
# Writes $OR_BUILD/bench/bench{,-quick}.{md,csv,png} and copies them to
# tests/bench/results/; prints the table. Progress goes to stderr. Then
# runs tests/bench/scale.sh (if there) and adds its rows. A benchmark, not
# a test: it asserts nothing, and a scenario that cannot run says why.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OR_ROOT=$ROOT
OR_BUILD=${OR_BUILD:-$ROOT/build}
OR_NODE_NAME="node-a"
export OR_ROOT OR_BUILD OR_NODE_NAME
# shellcheck source=../e2e/lib/cluster.bash
. "$ROOT/tests/e2e/lib/cluster.bash"
# shellcheck source=lib.bash
. "$ROOT/tests/bench/lib.bash"

MODE=${1:-quick}
case "$MODE" in
quick) SECS=${BENCH_SECONDS:-2} WARMUP=0.5 NAME=bench-quick SCALE_TIMEOUT=${BENCH_SCALE_TIMEOUT:-30} ;;
full) SECS=${BENCH_SECONDS:-15} WARMUP=1 NAME=bench SCALE_TIMEOUT=${BENCH_SCALE_TIMEOUT:-240} ;;
*)
	echo "usage: $0 quick|full" >&2
	exit 2
	;;
esac
RATE=${BENCH_RATE:-2000}
# A load during which other processes took this much of the machine's CPU
# capacity (in %: 5 = a tenth of one of 2 CPUs) gets its machine-wide
# figure flagged.
BUSY_PCT=${BENCH_BUSY_PCT:-5}
CONNS=${BENCH_CONNS:-16}
SIDECAR_WORKERS=${BENCH_SIDECAR_WORKERS:-1}
read -ra SCENARIOS <<<"${BENCH_SCENARIOS:-direct kernel proxy proxy-mtls sidecar sidecar-mtls haproxy haproxy-mtls}"
read -ra LOADS <<<"${BENCH_LOADS:-keepalive newconn bulk openloop}"
IPTABLES_SH=$ROOT/deploy/sidecar/outrider-iptables.sh
OUT=$OR_BUILD/bench
RESULTS=${BENCH_RESULTS-$ROOT/tests/bench/results}
T_START=$(date +%s)

CLIENT_IP=10.244.1.2
SERVER_IP=10.244.1.21
# For lib.bash's haproxy_config: the service, its endpoint, its ports.
# shellcheck disable=SC2034
BENCH_VIP=10.96.0.10 BENCH_SERVER_IP=$SERVER_IP BENCH_PORTS="80:8080 5201:5201"
# The outrider sidecars' admin and ready addresses, in their own pods.
declare -A SC_ADMIN=([client]=127.0.0.1:15020 [server]=127.0.0.1:15030)
declare -A SC_READY=([client]=127.0.0.1:15021 [server]=127.0.0.1:15031)

declare -A LOAD_LABEL=(
	[keepalive]="keep-alive HTTP"
	[newconn]="new connection per request"
	[bulk]="bulk TCP (Gbit/s; CPU per GB)"
	[openloop]="fixed rate $RATE/s"
)

mkdir -p "$OUT" ${RESULTS:+"$RESULTS"}
if ! why=$(cluster_prereqs); then
	echo "bench: cannot run here: $why" >&2
	exit 1
fi
for cmd in wrk iperf3 haproxy iptables setpriv openssl jq; do
	if ! command -v "$cmd" >/dev/null; then
		echo "bench: $cmd is not installed (tests/deps.sh installs it)" >&2
		exit 1
	fi
done
for bin in outriderd outriderctl upstream; do
	if [ ! -x "$OR_BUILD/$bin" ]; then
		echo "bench: $OR_BUILD/$bin is missing: run make all fixtures" >&2
		exit 1
	fi
done

# What this build can do; a scenario or load it cannot is reported, not run.
HAVE_SIDECAR=0
"$OR_BUILD/outriderd" --help 2>&1 | grep -q -- --sidecar && HAVE_SIDECAR=1
HAVE_OPENLOOP=0
[ -x "$OR_BUILD/openloop" ] && HAVE_OPENLOOP=1

on_exit()
{
	ticker_stop 2>/dev/null || true
	cluster_cleanup
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ---- progress ------------------------------------------------------------------

STEP=0
TOTAL=$((3 + ${#SCENARIOS[@]} * ${#LOADS[@]}))
progress()
{
	STEP=$((STEP + 1))
	printf '[%d/%d] %s\n' "$STEP" "$TOTAL" "$*" >&2
}
note() { printf '      %s\n' "$*" >&2; }

# ---- results -------------------------------------------------------------------
#
# R[scenario|load|key]: rps, gbps, p50, p90, p99, p999, errors, requests,
# bytes, seconds, cpu_client, cpu_server, cpu_machine (CPU seconds per 1000
# requests, per GB for bulk), status ("" or why there is no figure).
# RSS[scenario|process]: MiB at the end of the scenario.
declare -A R=() RSS=() PEER=() SKIP=()
CSV=$OUT/$NAME.csv
echo "kind,subject,param,value,unit" >"$CSV"
csv() { echo "$1,$2,$3,$4,$5" >>"$CSV"; }

# ---- setup -----------------------------------------------------------------------

progress "cluster: client pod (node-a), server pod (node-b), upstream and iperf3 server"
cluster_init
node_add node-b
pod_add client $CLIENT_IP
pod_label client app=client outrider.io/mode=enabled
pod_add server $SERVER_IP
pod_node server node-b
pod_label server app=server outrider.io/mode=enabled
# As on a load-test client: with a proxy in the path, wrk gets the whole
# answer before the FIN and closes first, so every request leaves a
# TIME-WAIT socket on its ephemeral port; at thousands of new connections a
# second the pod's port range (28k ports for 60 s) runs out within seconds
# and the later scenarios would measure that. Both are per-netns sysctls.
# The range stays above the proxies' ports (150xx), which must stay free.
for pod in client server; do
	ip netns exec "$(pod_netns $pod)" sysctl -q -w net.ipv4.tcp_tw_reuse=1 \
		net.ipv4.ip_local_port_range="20000 65000"
done
# upstream listens on [::] (dual stack): the sidecars reach it on 127.0.0.1.
upstream_start server server --http 8080
pod_spawn server "$OR_STATE/logs/iperf3.log" iperf3 -s -p 5201 >/dev/null
if ! wait_until 5000 pod_listening server 5201; then
	echo "bench: iperf3 -s in the server pod did not listen:" >&2
	cat "$OR_STATE/logs/iperf3.log" >&2
	exit 1
fi
PKI=$OR_STATE/pki
bench_pki "$PKI" client server
haproxy_openssl_conf "$PKI/openssl.cnf"
chmod 644 "$PKI/openssl.cnf"

# bench_services MODE MTLS: the service (and the CA, for agents and sidecars).
bench_services()
{
	cluster_services <<EOF
services:
  - name: srv
    namespace: default
    vip: $BENCH_VIP
    mode: $1
    mtls: $2
    ports:
      - {port: 80, target_port: 8080, protocol: tcp}
      - {port: 5201, target_port: 5201, protocol: tcp}
    selector: {app: server}
ca: {cert: $PKI/ca.crt, key: $PKI/ca.key}
EOF
}

# ---- the proxies of each scenario ----------------------------------------------------
#
# PROXY[client] / PROXY[server]: the PIDs whose CPU and RSS are the mesh's
# cost on each side (empty: none). URL and TARGET: where the loads go.
declare -A PROXY=()

# A stopped agent leaves its pins (the pods stay captured, fail-closed):
# the scenarios without outrider need them gone, so uninstall too.
agents_down()
{
	local node
	for node in node-a node-b; do
		on_node "$node" agent_stop >/dev/null 2>&1 || true
		on_node "$node" ctl uninstall >/dev/null 2>&1 || true
	done
}

# Log level info: nothing is logged per connection.
_bench_agent_start() { agent_start "$OR_CONFIG" --log-level info; }

# agents_up MODE MTLS: both node agents, fresh, with the service in MODE.
agents_up()
{
	local node pod
	agents_down
	bench_services "$1" "$2"
	for node in node-a node-b; do
		pod=client
		[ "$node" = node-b ] && pod=server
		if ! on_node "$node" cluster_config ||
			! on_node "$node" _bench_agent_start ||
			! on_node "$node" agent_wait_ready 5000 "$pod" ||
			! wait_until 5000 pod_listening "$pod" 15008 ||
			! wait_until 3000 on_node "$node" ready_get /healthz/ready -f; then
			on_node "$node" _or_node_dump
			return 1
		fi
	done
	PROXY[client]=$(on_node node-a agent_pid)
	PROXY[server]=$(on_node node-b agent_pid)
}

# capture_on / capture_off: istio-init's rules in both pods, and a route for
# the service range in the client (the pods have no default route, and
# connect() needs a route before OUTPUT's REDIRECT can apply).
capture_on()
{
	local pod
	for pod in client server; do
		ip netns exec "$(pod_netns "$pod")" "$IPTABLES_SH" install || return 1
	done
	ip -n "$(pod_netns client)" route replace 10.96.0.0/16 dev eth0
}

capture_off()
{
	local pod
	for pod in client server; do
		ip netns exec "$(pod_netns "$pod")" "$IPTABLES_SH" remove || true
	done
	ip -n "$(pod_netns client)" route del 10.96.0.0/16 2>/dev/null || true
}

# spawn_in POD LOG CMD...: pod_spawn, the PID in SPAWNED (a child of this shell).
spawn_in()
{
	local pod=$1 log=$2
	shift 2
	pod_spawn "$pod" "$log" "$@" >"$OR_STATE/spawned"
	SPAWNED=$(<"$OR_STATE/spawned")
}

stop_pid()
{
	[ -n "${1:-}" ] || return 0
	_or_end_pid "$1" -
}

haproxy_up()
{
	local tls=$1 pod
	for pod in client server; do
		haproxy_config "$OR_STATE/haproxy-$pod.cfg" "$tls" "$PKI" "$pod"
		if ! haproxy -c -q -f "$OR_STATE/haproxy-$pod.cfg" >"$OR_STATE/logs/haproxy-$pod.check" 2>&1; then
			cat "$OR_STATE/logs/haproxy-$pod.check" >&2
			return 1
		fi
	done
	capture_on || return 1
	for pod in client server; do
		spawn_in "$pod" "$OR_STATE/logs/haproxy-$pod.log" \
			env OPENSSL_CONF="$PKI/openssl.cnf" haproxy -db -f "$OR_STATE/haproxy-$pod.cfg"
		PROXY[$pod]=$SPAWNED
	done
	for pod in client server; do
		if ! wait_until 5000 pod_listening "$pod" 15001 || ! wait_until 5000 pod_listening "$pod" 15006; then
			echo "haproxy in $pod did not listen:" >&2
			cat "$OR_STATE/logs/haproxy-$pod.log" >&2
			return 1
		fi
	done
}

sidecars_up()
{
	local mtls=$1 pod cfg
	bench_services proxy "$mtls"
	printf 'workers: %s\n' "$SIDECAR_WORKERS" >>"$OR_STATE/services.yaml"
	capture_on || return 1
	for pod in client server; do
		cfg="$OR_STATE/sidecar-$pod.yaml"
		sidecar_config "$cfg" "$pod" "${SC_ADMIN[$pod]}" "${SC_READY[$pod]}" || return 1
		spawn_in "$pod" "$OR_STATE/logs/sidecar-$pod.log" \
			setpriv --reuid 1337 --regid 1337 --clear-groups \
			"$OR_BUILD/outriderd" --sidecar "default/$pod" --config "$cfg" --log-level ${BENCH_SIDECAR_LOG:-info}
		PROXY[$pod]=$SPAWNED
	done
	for pod in client server; do
		if ! wait_until 5000 pod_exec "$pod" curl -sf -o /dev/null "http://${SC_READY[$pod]}/healthz/ready"; then
			echo "outriderd --sidecar in $pod never said ready; its log:" >&2
			tail -n 30 "$OR_STATE/logs/sidecar-$pod.log" >&2
			return 1
		fi
	done
}

proxies_down()
{
	stop_pid "${PROXY[client]:-}"
	stop_pid "${PROXY[server]:-}"
}

# scenario_up NAME: its proxies running, URL/TARGET set; 1 (and the reason
# on stderr) when it cannot run.
scenario_up()
{
	PROXY=([client]="" [server]="")
	URL="http://$BENCH_VIP/"
	TARGET=$BENCH_VIP
	case "$1" in
	direct)
		agents_down
		URL="http://$SERVER_IP:8080/"
		TARGET=$SERVER_IP
		;;
	kernel) agents_up kernel disabled ;;
	proxy) agents_up proxy disabled ;;
	proxy-mtls) agents_up proxy strict ;;
	sidecar | sidecar-mtls)
		agents_down
		if [ "$1" = sidecar ]; then sidecars_up disabled; else sidecars_up strict; fi
		;;
	haproxy) agents_down && haproxy_up 0 ;;
	haproxy-mtls) agents_down && haproxy_up 1 ;;
	esac
}

scenario_down()
{
	case "$1" in
	kernel | proxy | proxy-mtls) agents_down ;;
	sidecar* | haproxy*)
		proxies_down
		capture_off
		;;
	esac
}

# ---- one load ------------------------------------------------------------------------

# our_ticks: the CPU time of everything this run started: the pods (load
# generators, servers, sidecars: their cgroups) and the node agents.
our_ticks()
{
	local t pid
	t=$(cgroup_ticks "$OR_CG")
	for pid in "$(on_node node-a agent_pid)" "$(on_node node-b agent_pid)"; do
		[ -n "$pid" ] || continue
		pid=$(ticks_of "$pid")
		t=$((t + ${pid:-0}))
	done
	echo "$t"
}

# measure SCENARIO LOAD: runs the load with CPU accounting around it.
measure()
{
	local s=$1 l=$2 k v c0 c1 s0 s1 m0 m1 i0 i1 o0 o1 w0 w1 kv key unit per
	c0=$(ticks_of "${PROXY[client]:-0}") s0=$(ticks_of "${PROXY[server]:-0}")
	m0=$(machine_ticks) i0=$(irq_ticks) o0=$(our_ticks) w0=${EPOCHREALTIME/[.,]/}
	ticker_start "$s/$l" "${PROXY[client]:-}" "${PROXY[server]:-}"
	case "$l" in
	keepalive) kv=$(load_wrk client "$URL" "$SECS" "$CONNS") ;;
	newconn) kv=$(load_wrk client "$URL" "$SECS" "$CONNS" -H "Connection: close") ;;
	bulk) kv=$(load_iperf3 client "$TARGET" 5201 "$SECS") ;;
	openloop) kv=$(load_openloop client "$URL" "$RATE" "$SECS" "$CONNS" "$WARMUP") ;;
	esac
	ticker_stop
	c1=$(ticks_of "${PROXY[client]:-0}") s1=$(ticks_of "${PROXY[server]:-0}")
	m1=$(machine_ticks) i1=$(irq_ticks) o1=$(our_ticks) w1=${EPOCHREALTIME/[.,]/}
	while IFS='=' read -r k v; do
		[ -n "$k" ] && R[$s|$l|$k]=$v
	done <<<"$kv"
	if [ -n "${R[$s|$l|failed]:-}" ]; then
		R[$s|$l|status]="failed: ${R[$s|$l|failed]}"
		note "${R[$s|$l|status]}"
		return 0
	fi
	# CPU seconds per 1000 requests (per GB for bulk).
	if [ "$l" = bulk ]; then
		per=$(awk -v b="${R[$s|$l|bytes]}" 'BEGIN { print b / 1e9 }') unit=s/GB
	else
		per=$(awk -v n="${R[$s|$l|cpu_requests]:-${R[$s|$l|requests]}}" 'BEGIN { print n / 1000 }') unit=s/1k_req
	fi
	cpu_per()
	{
		[ -n "$1" ] && [ -n "$2" ] || return 0
		awk -v a="$1" -v b="$2" -v t="$CLK_TCK" -v p="$per" 'BEGIN { if (p > 0) printf "%.4f", (b - a) / t / p }'
	}
	R[$s|$l|cpu_client]=$(cpu_per "$c0" "$c1")
	R[$s|$l|cpu_server]=$(cpu_per "$s0" "$s1")
	R[$s|$l|cpu_machine]=$(cpu_per "$m0" "$m1")
	R[$s|$l|cpu_unit]=$unit
	# The machine may be shared: CPU time that was neither this run's (its
	# pods, agents and interrupts) nor idle, in % of the machine's capacity
	# (CPUs x wall time). Large: the machine-wide figure is inflated.
	R[$s|$l|other_pct]=$(awk -v m=$((m1 - m0)) -v o=$((o1 - o0)) -v i=$((i1 - i0)) \
		-v cap="$(((w1 - w0) * CLK_TCK * NCPU / 1000000))" \
		'BEGIN { v = cap > 0 ? (m - o - i) * 100 / cap : 0; printf "%.0f", v < 0 ? 0 : v }')
	csv bench "$s/$l" other_cpu "${R[$s|$l|other_pct]}" "%"
	if [ -n "${BENCH_DEBUG:-}" ]; then
		note "ticks: machine $((m1 - m0)) ours $((o1 - o0)) irq $((i1 - i0)) client $((${c1:-0} - ${c0:-0})) server $((${s1:-0} - ${s0:-0}))"
		note "TIME-WAIT: client pod $(pod_exec client ss -Htan state time-wait | wc -l), server pod $(pod_exec server ss -Htan state time-wait | wc -l)"
	fi

	for key in rps gbps p50 p90 p99 p999 errors requests bytes seconds; do
		v=${R[$s|$l|$key]:-}
		if [ -z "$v" ] || [ "$v" = - ]; then
			continue
		fi
		case "$key" in
		rps) unit=req/s ;; gbps) unit=Gbit/s ;; p*) unit=ms ;; seconds) unit=s ;; *) unit=count ;;
		esac
		csv bench "$s/$l" "$key" "$v" "$unit"
	done
	for key in cpu_client cpu_server cpu_machine; do
		[ -n "${R[$s|$l|$key]}" ] && csv bench "$s/$l" "$key" "${R[$s|$l|$key]}" "${R[$s|$l|cpu_unit]}"
	done

	local busy=""
	[ "${R[$s|$l|other_pct]}" -lt "$BUSY_PCT" ] || busy=" (others: ${R[$s|$l|other_pct]}% of the machine's CPU capacity)"
	if [ "$l" = bulk ]; then
		note "${R[$s|$l|gbps]} Gbit/s, CPU s/GB: proxies ${R[$s|$l|cpu_client]:--}/${R[$s|$l|cpu_server]:--}, machine ${R[$s|$l|cpu_machine]}$busy"
	else
		note "${R[$s|$l|rps]} req/s, p50 ${R[$s|$l|p50]} p99 ${R[$s|$l|p99]} p99.9 ${R[$s|$l|p999]} ms, errors ${R[$s|$l|errors]}, CPU s/1k req: proxies ${R[$s|$l|cpu_client]:--}/${R[$s|$l|cpu_server]:--}, machine ${R[$s|$l|cpu_machine]}$busy"
	fi
}

# ---- the run -------------------------------------------------------------------------

progress "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); sidecar mode: $([ $HAVE_SIDECAR = 1 ] && echo yes || echo 'not in this build'); openloop: $([ $HAVE_OPENLOOP = 1 ] && echo yes || echo 'not built')"

for s in "${SCENARIOS[@]}"; do
	if [ "${s#sidecar}" != "$s" ] && [ $HAVE_SIDECAR = 0 ]; then
		SKIP[$s]="skipped: build/outriderd has no --sidecar yet"
	elif ! scenario_up "$s" 2>"$OR_STATE/logs/up-$s.err"; then
		cat "$OR_STATE/logs/up-$s.err" >&2
		SKIP[$s]="not run: its proxies did not come up ($(grep -m1 . "$OR_STATE/logs/up-$s.err" | cut -c1-80))"
		scenario_down "$s" 2>/dev/null || true
	else
		# Is the path what it claims to be? What the server saw says.
		body=$(pod_exec client curl -sS --max-time 3 "$URL" 2>&1) || true
		if [[ "$body" != backend=server* ]]; then
			SKIP[$s]="not run: a request to $URL got: $(head -c 80 <<<"$body")"
		else
			PEER[$s]=$(sed -n 's/.*peer=\([^ ]*\).*/\1/p' <<<"$body")
			# Warm up: sessions, pools, caches.
			pod_exec client wrk -t1 -c"$CONNS" -d1s "$URL" >/dev/null 2>&1 || true
		fi
	fi
	for l in "${LOADS[@]}"; do
		progress "$s $l${SKIP[$s]:+ — ${SKIP[$s]}}"
		if [ -n "${SKIP[$s]:-}" ]; then
			R[$s|$l|status]=${SKIP[$s]}
			continue
		fi
		if [ "$l" = openloop ] && [ $HAVE_OPENLOOP = 0 ]; then
			R[$s|$l|status]="skipped: build/openloop is not built yet"
			note "${R[$s|$l|status]}"
			continue
		fi
		measure "$s" "$l"
	done
	if [ -z "${SKIP[$s]:-}" ]; then
		for side in client server; do
			pid=${PROXY[$side]:-}
			[ -n "$pid" ] || continue
			RSS[$s|$side]=$(rss_mib "$pid")
			[ -n "${RSS[$s|$side]}" ] && csv rss "$s" "$side" "${RSS[$s|$side]}" MiB
		done
	fi
	[ -n "${SKIP[$s]:-}" ] && csv skipped "$s" - "\"${SKIP[$s]//\"/}\"" -
	scenario_down "$s"
done

# Everything of ours is gone before scale.sh builds its own.
trap - EXIT
cluster_cleanup
trap 'ticker_stop 2>/dev/null || true' EXIT

# ---- at scale (tests/bench/scale.sh, written apart) --------------------------------------

SCALE_ROWS=""
SCALE_NOTE=""
if [ -x "$ROOT/tests/bench/scale.sh" ]; then
	progress "scale: tests/bench/scale.sh $MODE (at most $SCALE_TIMEOUT s)"
	rc=0
	# In the background, so an interrupted bench ends it too (timeout passes
	# the TERM on; scale.sh cleans up after itself).
	timeout "$SCALE_TIMEOUT" "$ROOT/tests/bench/scale.sh" "$MODE" >"$OUT/$NAME.scale.out" &
	SCALE_PID=$!
	trap 'ticker_stop 2>/dev/null || true; kill -TERM $SCALE_PID 2>/dev/null; wait $SCALE_PID 2>/dev/null' EXIT
	wait $SCALE_PID || rc=$?
	trap 'ticker_stop 2>/dev/null || true' EXIT
	SCALE_ROWS=$(grep '^scale,' "$OUT/$NAME.scale.out" || true)
	[ -n "$SCALE_ROWS" ] && echo "$SCALE_ROWS" >>"$CSV"
	[ $rc -eq 0 ] || SCALE_NOTE="scale.sh exited with status $rc$([ $rc -eq 124 ] && echo " (stopped after $SCALE_TIMEOUT s)")"
	[ -z "$SCALE_NOTE" ] || note "$SCALE_NOTE"
else
	progress "scale: tests/bench/scale.sh is not there; no \"At scale\" table"
fi

# ---- the table ---------------------------------------------------------------------------

# fmt V: a figure or "—".
fmt() { [ -n "${1:-}" ] && [ "$1" != - ] && echo "$1" || echo "—"; }
# ratio A B: A / B to two decimals, or "—".
ratio()
{
	awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
		if (a == "" || b == "" || a == "-" || b == "-" || b + 0 == 0) { print "—"; exit }
		printf "%.2f\n", a / b }'
}
# busy_mark S L: "*" when others used the machine during that load.
busy_mark() { [ "${R[$1|$2|other_pct]:-0}" -lt "$BUSY_PCT" ] || echo " *"; }
ref_of() { case "$1" in *-mtls) echo haproxy-mtls ;; *) echo haproxy ;; esac; }

MD=$OUT/$NAME.md
CPU_MODEL=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
{
	echo "| load | scenario | rate | × direct | × HAProxy | p50 ms | p90 ms | p99 ms | p99.9 ms | p99 × direct | p99 × HAProxy | proxy CPU s/1k req, client / server side | machine CPU s/1k req | machine CPU × HAProxy |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for l in "${LOADS[@]}"; do
		for s in "${SCENARIOS[@]}"; do
			ref=$(ref_of "$s")
			st=${R[$s|$l|status]:-}
			if [ -n "$st" ]; then
				echo "| ${LOAD_LABEL[$l]} | $s | $st |||||||||||"
				continue
			fi
			rk=rps
			[ "$l" = bulk ] && rk=gbps
			cpu="—"
			if [ -n "${R[$s|$l|cpu_client]:-}" ]; then
				cpu="${R[$s|$l|cpu_client]} / ${R[$s|$l|cpu_server]:-—}"
			fi
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
				"${LOAD_LABEL[$l]}" "$s" "$(fmt "${R[$s|$l|$rk]:-}")${R[$s|$l|errors]:+$([ "${R[$s|$l|errors]}" != 0 ] && [ "$l" != bulk ] && echo " (${R[$s|$l|errors]} errors)")}" \
				"$(ratio "${R[$s|$l|$rk]:-}" "${R[direct|$l|$rk]:-}")" \
				"$(ratio "${R[$s|$l|$rk]:-}" "${R[$ref|$l|$rk]:-}")" \
				"$(fmt "${R[$s|$l|p50]:-}")" "$(fmt "${R[$s|$l|p90]:-}")" \
				"$(fmt "${R[$s|$l|p99]:-}")" "$(fmt "${R[$s|$l|p999]:-}")" \
				"$(ratio "${R[$s|$l|p99]:-}" "${R[direct|$l|p99]:-}")" \
				"$(ratio "${R[$s|$l|p99]:-}" "${R[$ref|$l|p99]:-}")" \
				"$cpu" "$(fmt "${R[$s|$l|cpu_machine]:-}")$(busy_mark "$s" "$l")" \
				"$(ratio "${R[$s|$l|cpu_machine]:-}" "${R[$ref|$l|cpu_machine]:-}")"
		done
	done
	echo
	echo "Memory at the end of each scenario (VmRSS, MiB):"
	echo
	echo "| scenario | client side | server side |"
	echo "|---|---:|---:|"
	for s in "${SCENARIOS[@]}"; do
		case "$s" in direct) continue ;; esac
		if [ -n "${SKIP[$s]:-}" ]; then
			echo "| $s | ${SKIP[$s]} ||"
		else
			echo "| $s | $(fmt "${RSS[$s|client]:-}") | $(fmt "${RSS[$s|server]:-}") |"
		fi
	done
	if [ -n "$SCALE_ROWS" ] || [ -n "$SCALE_NOTE" ]; then
		echo
		echo "At scale (tests/bench/scale.sh):"
		echo
		echo "| what | N | value | unit |"
		echo "|---|---:|---:|---|"
		awk -F, '{ printf "| %s | %s | %s | %s |\n", $2, $3, $4, $5 }' <<<"$SCALE_ROWS" | grep -v '^|  |' || true
		[ -z "$SCALE_NOTE" ] || echo "| $SCALE_NOTE ||||"
	fi
	echo
	echo "Scenarios: direct = client pod to the server pod's IP, no mesh; kernel = outrider"
	echo "kernel mode (connect4 rewrites the VIP); proxy = outrider proxy mode, one agent per"
	echo "node, mtls: disabled; proxy-mtls = the same, mtls: strict (node-a's agent tunnels"
	echo "to node-b's on :15008); sidecar(-mtls) = \`outriderd --sidecar\` in each pod"
	echo "($SIDECAR_WORKERS worker); haproxy(-mtls) = HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }') in"
	echo "each pod, mode tcp, nbthread 1. Sidecars capture with deploy/sidecar/outrider-iptables.sh"
	echo "(istio-init's nat REDIRECT rules) and run as uid 1337. mTLS everywhere: TLS 1.3,"
	echo "ECDSA P-256 certificates, TLS_AES_128_GCM_SHA256, group P-256. Every service is"
	echo "L4 (protocol: tcp); all but direct go to the ClusterIP."
	echo
	echo "Both pods run with net.ipv4.tcp_tw_reuse=1 and ports 20000-65000 (per-netns sysctls, as on"
	echo "a load-test client): behind a proxy wrk reads the whole answer before the FIN and closes"
	echo "first, and its TIME-WAIT sockets would otherwise use up the pod's ports within seconds."
	echo
	echo "Loads, from inside the client pod: keep-alive and new connection per request ="
	echo "wrk -t1 -c$CONNS, $SECS s, HTTP/1.1 GET (p50/p90/p99 are wrk's; wrk gives no p99.9);"
	echo "bulk = iperf3, one stream, $SECS s (proxy CPU per GB received); fixed rate ="
	echo "build/openloop --rate $RATE --connections $CONNS, $SECS s (all its percentiles"
	echo "are openloop's, measured from when each request was due). CPU = utime+stime of"
	echo "the proxy processes (node agents, sidecar outriderd, haproxy) and of the whole"
	echo "machine (everything but idle and iowait: softirq included, and so the client, the"
	echo "server and the kernel's network path), per 1000 requests (openloop: its warmup's too)."
	echo "× HAProxy: plaintext scenarios against haproxy, mTLS ones against haproxy-mtls."
	echo "\\* other processes (not this run's pods, agents or interrupts) took ≥ $BUSY_PCT% of the"
	echo "machine's CPU capacity during that load: its machine-wide figure is inflated by"
	echo "that much (\`other_cpu\` in the CSV, % of CPUs × time). Machine CPU is taken as CPUs"
	echo "× wall time minus /proc/stat's idle and iowait: the busy fields themselves are"
	echo "sampled at the tick and miss much of a light load's short bursts."
	echo "What the server saw as the peer: $(for s in "${SCENARIOS[@]}"; do [ -n "${PEER[$s]:-}" ] && printf '%s %s; ' "$s" "${PEER[$s]}"; done)"
	echo
	echo "Machine: $(nproc) CPUs ($CPU_MODEL), kernel $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC');"
	echo "\`tests/bench/bench.sh $MODE\` ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo '+changes'))."
	echo "Client, server, proxies and load generators share these CPUs."
} >"$MD"

# ---- the chart --------------------------------------------------------------------------------

if command -v gnuplot >/dev/null; then
	# Rows: loads; columns: scenarios ("?" = no figure). $1: what, $2: loads.
	dat()
	{
		local key=$1 l s v
		shift
		printf 'load'
		printf ' %s' "${SCENARIOS[@]}"
		echo
		for l in "$@"; do
			[[ " ${LOADS[*]} " == *" $l "* ]] || continue
			printf '"%s"' "${LOAD_LABEL[$l]%% (*}"
			for s in "${SCENARIOS[@]}"; do
				v=${R[$s|$l|$key]:-?}
				[ "$v" = - ] && v='?'
				printf ' %s' "$v"
			done
			echo
		done
	}
	dat rps keepalive newconn >"$OUT/$NAME.rps.dat"
	dat p99 keepalive newconn openloop >"$OUT/$NAME.p99.dat"
	dat gbps bulk >"$OUT/$NAME.gbps.dat"
	dat cpu_machine keepalive newconn openloop >"$OUT/$NAME.cpu.dat"
	n=$((${#SCENARIOS[@]} + 1))
	has()
	{
		# The last columns are the figures (a load's label has spaces).
		awk -v ns=${#SCENARIOS[@]} 'NR > 1 { for (i = NF - ns + 1; i <= NF; i++) if ($i != "?") f = 1 }
			END { print f + 0 }' "$1"
	}
	gnuplot -e "out='$OUT/$NAME.png'; base='$OUT/$NAME'; n=$n; subtitle='$MODE run, $SECS s per load, $(nproc) CPUs'" \
		-e "has_rps=$(has "$OUT/$NAME.rps.dat"); has_p99=$(has "$OUT/$NAME.p99.dat")" \
		-e "has_gbps=$(has "$OUT/$NAME.gbps.dat"); has_cpu=$(has "$OUT/$NAME.cpu.dat")" \
		"$ROOT/tests/bench/plot.gp" 2>"$OUT/$NAME.gnuplot.err" ||
		{ echo "bench: gnuplot failed:" >&2; cat "$OUT/$NAME.gnuplot.err" >&2; }
	echo >>"$MD"
	echo "![$NAME](tests/bench/results/$NAME.png)" >>"$MD"
fi

if [ -n "$RESULTS" ]; then
	cp "$MD" "$CSV" "$RESULTS/"
	[ -f "$OUT/$NAME.png" ] && cp "$OUT/$NAME.png" "$RESULTS/"
fi

cat "$MD"
echo
echo "bench: $MODE run took $(($(date +%s) - T_START)) s; table $MD, raw $CSV, chart $OUT/$NAME.png${RESULTS:+ (copied to $RESULTS/)}" >&2
