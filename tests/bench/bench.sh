#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make bench-quick: direct vs outrider proxy mode (L4 and HTTP) vs kernel mode,
# measured side by side in one run on one topology (a client pod and a
# server pod on one node bridge), with wrk from inside the client pod.
#
#   tests/bench/bench.sh quick      5 s per run (default)
#   BENCH_SECONDS=N                 another duration
#
# Writes build/bench/results.{md,csv} and build/bench/chart.png, and prints
# the table. This is a benchmark, not a test: it asserts nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OR_ROOT=$ROOT
OR_BUILD=${OR_BUILD:-$ROOT/build}
OR_NODE_NAME=node-a
export OR_ROOT OR_BUILD OR_NODE_NAME
# shellcheck source=../e2e/lib/cluster.bash
. "$ROOT/tests/e2e/lib/cluster.bash"

MODE=${1:-quick}
SECONDS_PER_RUN=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNS:-16}
OUT=$OR_BUILD/bench
mkdir -p "$OUT"

if ! why=$(cluster_prereqs); then
	echo "bench: cannot run here: $why" >&2
	exit 1
fi
trap cluster_cleanup EXIT
cluster_init

step=0
STEPS=10
progress()
{
	step=$((step + 1))
	printf '[%d/%d] %s\n' "$step" "$STEPS" "$*" >&2
}

progress "cluster: client pod and server pod on one node"
pod_add client 10.244.1.2
pod_add server 10.244.1.3
pod_label client outrider.io/mode=enabled app=client
pod_label server app=server
upstream_start server server --http 8080 >/dev/null
cluster_services <<'EOF'
services:
  - name: srv
    vip: 10.96.0.10
    mode: proxy
    ports: [{port: 80, target_port: 8080}]
    selector: {app: server}
  - name: srv-kernel
    vip: 10.96.0.20
    mode: kernel
    ports: [{port: 80, target_port: 8080}]
    selector: {app: server}
  - name: srv-http
    vip: 10.96.0.30
    mode: proxy
    ports: [{port: 80, target_port: 8080, protocol: http}]
    selector: {app: server}
EOF
cluster_config

progress "outriderd: starting (log level info, so logging costs nothing per request)"
agent_start "$OR_CONFIG" --log-level info
if ! wait_until 5000 sh -c "'$OR_BUILD/outriderctl' --pin-dir '$OR_PIN' --json pods | grep -q default/client"; then
	echo "bench: the agent did not enroll the client pod; log: $OR_AGENT_LOG" >&2
	cat "$OR_AGENT_LOG" >&2
	exit 1
fi

# run_wrk LABEL URL [wrk args...] -> "rps p50_ms p90_ms p99_ms" on stdout
run_wrk()
{
	local url=$1
	shift
	pod_exec client wrk -t1 -c"$CONNS" -d"${SECONDS_PER_RUN}s" --latency "$@" "$url" |
		awk '
		function ms(v) {
			if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
			if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
			if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
			return v
		}
		/^ +50%/ { p50 = ms($2) }
		/^ +90%/ { p90 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/^Requests\/sec:/ { rps = $2 }
		/Non-2xx|Socket errors/ { errs = errs $0 ";" }
		END {
			if (errs != "") print "wrk reported: " errs > "/dev/stderr"
			printf "%.0f %.3f %.3f %.3f\n", rps, p50, p90, p99
		}'
}

CSV=$OUT/results.csv
echo "load,path,requests_per_s,p50_ms,p90_ms,p99_ms" >"$CSV"

declare -A TARGET=(
	[direct]="http://10.244.1.3:8080/"
	[proxy]="http://10.96.0.10/"
	[kernel]="http://10.96.0.20/"
	[http]="http://10.96.0.30/"
)
for load in keepalive newconn; do
	for path in direct proxy http kernel; do
		args=()
		[ "$load" = newconn ] && args=(-H "Connection: close")
		progress "$load / $path: wrk -c$CONNS for ${SECONDS_PER_RUN}s"
		read -r rps p50 p90 p99 < <(run_wrk "${TARGET[$path]}" "${args[@]}")
		printf '      %s req/s, p50 %s ms, p99 %s ms\n' "$rps" "$p50" "$p99" >&2
		echo "$load,$path,$rps,$p50,$p90,$p99" >>"$CSV"
	done
done
STEPS=$step

agent_stop || true

# The table: every figure with its ratio to direct in the same run.
MD=$OUT/results.md
{
	echo "| load | path | req/s | × direct | p50 ms | p90 ms | p99 ms | p99 × direct |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	awk -F, 'NR > 1 {
		key = $1; if ($2 == "direct") { drps[key] = $3; dp99[key] = $6 }
		row[NR] = $0
	} END {
		for (i = 2; i <= NR; i++) {
			split(row[i], f, ",")
			printf "| %s | %s | %d | %.2f | %.3f | %.3f | %.3f | %.2f |\n",
				f[1] == "keepalive" ? "keep-alive" : "new connection per request",
				f[2], f[3], f[3] / drps[f[1]], f[4], f[5], f[6], f[6] / dp99[f[1]]
		}
	}' "$CSV"
	echo
	echo "Paths: direct = client pod to the server pod's IP; proxy = outrider proxy mode, L4"
	echo "(protocol: tcp); http = outrider proxy mode, HTTP/1.1 (protocol: http: per-request"
	echo "routing, retries, pooled upstream connections); kernel = outrider kernel mode (connect4 LB)."
	echo "wrk -t1 -c$CONNS, ${SECONDS_PER_RUN} s per run, HTTP/1.1 GET to tests/fixtures/upstream;"
	echo "$(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)."
	echo "Client, agent and server share these CPUs."
} >"$MD"

if command -v gnuplot >/dev/null; then
	awk -F, 'NR > 1 { printf "%s_%s %s %s\n", $1, $2, $3, $4 }' "$CSV" >"$OUT/chart.dat"
	gnuplot <<EOF
set terminal pngcairo size 900,420 font ",10"
set output "$OUT/chart.png"
set multiplot layout 1,2 title "outrider: direct vs proxy mode vs kernel mode (wrk -c$CONNS)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set xtics rotate by -30 noenhanced
set grid ytics
set yrange [0:*]
set title "requests/s (higher is better)"
plot "$OUT/chart.dat" using 2:xtic(1) notitle lc rgb "#3b7dd8"
set title "p50 latency, ms (lower is better)"
plot "$OUT/chart.dat" using 3:xtic(1) notitle lc rgb "#d8703b"
unset multiplot
EOF
fi

cat "$MD"
echo
echo "raw: $CSV  chart: $OUT/chart.png" >&2
