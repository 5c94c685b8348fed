#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# At scale: the memory of one node agent with N enrolled pods against N
# sidecar pairs, and the time from label to capture.
#
#   tests/bench/scale.sh quick      N in 1 10 50 (default)
#   tests/bench/scale.sh full       N in 1 10 100
#   SCALE_PODS="1 10 100"           another list of N (at most 250)
#   SCALE_LABEL_N=10                pods enrolled during the label test
#   SCALE_LABEL_REPS=5              label/unlabel rounds in it
#
# For each N, on N netns pods (tests/e2e/lib/cluster.bash) labelled
# outrider.io/mode=enabled and one service whose endpoints they are:
#   agent_rss, agent_anon,        build/outriderd as the node agent, once
#   agent_fds                     outriderctl lists all N and their :15001 is up
#   haproxy_sidecars_rss, _anon   N haproxy (one per pod, in its netns), summed
#                                 over each one's process tree
#   outrider_sidecars_rss, _anon  N `outriderd --sidecar default/<pod>`; skipped
#                                 (note on stderr) while outriderd lacks --sidecar
# (_rss: VmRSS, which counts the pages every process shares, the binary and
# libc, once per process; _anon: RssAnon, heap and stacks, the memory each
# process costs of its own. Not Pss: it would depend on whatever else on the
# machine maps the same files, the caller's agent among them.)
# One phase at a time, so the agent's listeners and a sidecar's never compete
# for :15001 in a pod. At N = SCALE_LABEL_N, with the agent up: one more pod is
# labelled (pod_label, cluster_config, SIGHUP) and timed from the SIGHUP until
# outriderctl lists it and its :15001 listens, polled every 5 ms; median and max.
#
# CSV on stdout, one figure a row: scale,<what>,<N>,<value>,<unit>. Progress on
# stderr. Its own cluster run (own OR_ID), so it can run inside another's
# (tests/bench/bench.sh) without touching its pods; everything it made goes on
# exit, processes by PID only. A benchmark: it asserts nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The caller may be a cluster run of its own: take nothing of its state.
CALLER_ID=${OR_ID:-}
unset OR_ID CG2 OR_NS_PREFIX OR_NODE_NS OR_CG OR_PIN OR_STATE OR_CONFIG OR_AGENT_LOG \
	OR_ADMIN_ADDR OR_READY_ADDR OR_AGENT_PIDFILE OR_AGENT_STATE_DIR
OR_ROOT=$ROOT
OR_BUILD=${OR_BUILD:-$ROOT/build}
OR_NODE_NAME="node-a"
export OR_ROOT OR_BUILD OR_NODE_NAME
# shellcheck source=../e2e/lib/cluster.bash
. "$ROOT/tests/e2e/lib/cluster.bash"

MODE=${1:-quick}
case "$MODE" in
quick) DEFAULT_PODS="1 10 50" ;;
full) DEFAULT_PODS="1 10 100" ;;
*)
	echo "usage: $0 quick|full" >&2
	exit 2
	;;
esac
PODS_LIST=$(tr -s ', ' '\n' <<<"${SCALE_PODS:-$DEFAULT_PODS}" | grep . | sort -nu | tr '\n' ' ')
LABEL_N=${SCALE_LABEL_N:-10}
LABEL_REPS=${SCALE_LABEL_REPS:-5}
MAX_PODS=250 # one /24 for the pods, and one more for the label test

for n in $PODS_LIST $LABEL_N; do
	if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt "$MAX_PODS" ]; then
		echo "scale: '$n' is not a pod count in 1..$MAX_PODS" >&2
		exit 2
	fi
done

if ! why=$(cluster_prereqs); then
	echo "scale: cannot run here: $why" >&2
	exit 1
fi
for bin in outriderd outriderctl; do
	if [ ! -x "$OR_BUILD/$bin" ]; then
		echo "scale: $OR_BUILD/$bin is missing: run make all" >&2
		exit 1
	fi
done
HAVE_HAPROXY=1
command -v haproxy >/dev/null || HAVE_HAPROXY=0
HAVE_SIDECAR=0
help=$("$OR_BUILD/outriderd" --help 2>&1 || true)
if grep -q -- --sidecar <<<"$help"; then
	HAVE_SIDECAR=1
fi

# The figures go to the caller's stdout (fd 3; cluster.bash closes fd 3 in
# what it starts), everything else to stderr.
exec 3>&1 1>&2

# scale_cleanup: first every process this shell started and still has as a
# child (jobs -p, parent checked: by PID, never by name), all at once: a
# signal between a spawn and cluster.bash recording its PID (pod_spawn,
# agent_start) would otherwise leave that one running; then cluster_cleanup.
scale_cleanup()
{
	local - pid stat i alive
	local -a kids=() f=()
	set +e
	for pid in $(jobs -p); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		read -r -a f <<<"${stat##*) }"
		[ "${f[1]}" = "$$" ] && [ "${f[0]}" != Z ] && kids+=("$pid")
	done
	if [ "${#kids[@]}" -gt 0 ]; then
		kill -TERM "${kids[@]}" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			alive=0
			for pid in "${kids[@]}"; do
				_or_alive "$pid" && alive=1 && break
			done
			[ "$alive" = 1 ] || break
			sleep 0.05
		done
		for pid in "${kids[@]}"; do
			_or_alive "$pid" && kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		done
	fi
	cluster_cleanup
}
trap scale_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
while :; do
	OR_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	[ "$OR_ID" != "$CALLER_ID" ] && [ ! -e "${TMPDIR:-/tmp}/outrider-test-$OR_ID" ] && break
done
cluster_init

# The step count: pods + agent + haproxy + outrider sidecars per N, the label test.
ALL_N=$(tr ' ' '\n' <<<"$PODS_LIST $LABEL_N" | grep . | sort -nu | tr '\n' ' ')
step=0
STEPS=0
for n in $ALL_N; do
	STEPS=$((STEPS + 2))
	if [[ " $PODS_LIST " == *" $n "* ]]; then
		STEPS=$((STEPS + 2))
	fi
	[ "$n" != "$LABEL_N" ] || STEPS=$((STEPS + 1))
done
STEPS=$((STEPS + 1)) # cleanup
progress()
{
	step=$((step + 1))
	printf 'scale: [%d/%d] %s\n' "$step" "$STEPS" "$*" >&2
}
note() { printf 'scale:        %s\n' "$*" >&2; }

row() { printf 'scale,%s,%s,%s,%s\n' "$1" "$2" "$3" "$4" >&3; }

T_START=$(_or_now_ms)
note "run $OR_ID (state $OR_STATE, netns $OR_NS_PREFIX-*); N in $PODS_LIST"
VIP=10.96.0.50

# Pod i: p<i>, 10.244.1.<i+1>.
pod_name() { echo "p$1"; }
pod_addr() { echo "10.244.1.$(($1 + 1))"; }
CREATED=0 # pods p1..p$CREATED exist

cluster_services <<EOF
services:
  - name: scale
    namespace: default
    vip: $VIP
    mode: proxy
    ports: [{port: 80, target_port: 8080, protocol: tcp}]
    selector: {app: scale}
EOF

# pods_upto N: pods p1..pN exist and are labelled for enrollment.
pods_upto()
{
	local n=$1 i
	for ((i = CREATED + 1; i <= n; i++)); do
		pod_add "$(pod_name "$i")" "$(pod_addr "$i")"
	done
	((n <= CREATED)) || CREATED=$n
	for ((i = 1; i <= n; i++)); do
		pod_label "$(pod_name "$i")" app=scale outrider.io/mode=enabled
	done
}

# listening POD PORT: a TCP listener on PORT in POD's netns (nsenter: cheaper
# than ip netns exec, which remounts /sys).
listening()
{
	[ -n "$(nsenter --net="$(pod_netns_path "$1")" -- ss -Hltn "sport = :$2" 2>/dev/null)" ]
}

# listening_all N PORT: every one of p1..pN has a listener on PORT.
listening_all()
{
	local i
	for ((i = 1; i <= $1; i++)); do
		listening "$(pod_name "$i")" "$2" || return 1
	done
}

# ctl_pods: the names outriderctl lists, one a line, without the namespace
# (grep and sed, not jq: jq takes ~30 ms to start, ten times outriderctl).
ctl_pods()
{
	local out
	out=$(ctl --json pods) || return 1
	grep -o '"name": *"[^"]*"' <<<"$out" | sed 's/^"name": *"//; s/"$//; s/^.*\///'
}

# ctl_lists_all N: outriderctl lists every one of p1..pN.
ctl_lists_all()
{
	local got
	got=$(ctl_pods) || return 1
	awk -v n="$1" '/^p[0-9]+$/ { i = substr($0, 2) + 0; if (i >= 1 && i <= n && !seen[i]++) c++ }
		END { exit c != n }' <<<"$got"
}

# ctl_lists POD: outriderctl lists POD (as default/POD or POD); no process
# but outriderctl, as it runs in the label test's 5 ms poll.
ctl_lists()
{
	local out re
	out=$(ctl --json pods) || return 1
	re="\"name\":[[:space:]]*\"(default/)?$1\""
	[[ "$out" =~ $re ]]
}

# none_listening N PORT: none of p1..pN has a listener on PORT.
none_listening()
{
	local i
	for ((i = 1; i <= $1; i++)); do
		! listening "$(pod_name "$i")" "$2" || return 1
	done
}

# rss_kb PID / anon_kb PID: VmRSS / RssAnon of PID in kB, 0 once it is gone.
rss_kb()
{
	awk '/^VmRSS:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" \
		2>/dev/null || echo 0
}

anon_kb()
{
	awk '/^RssAnon:/ { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" \
		2>/dev/null || echo 0
}

# tree_pids PID: PID and all its descendants.
tree_pids()
{
	local pid=$1 c
	local -a kids=()
	echo "$pid"
	read -r -a kids < <(cat /proc/"$pid"/task/*/children 2>/dev/null) || true
	for c in "${kids[@]}"; do
		tree_pids "$c"
	done
}

# tree_sum_kb rss|anon PID...: the sum of that figure over those processes
# and their descendants.
tree_sum_kb()
{
	local what=$1 pid p sum=0
	shift
	for pid in "$@"; do
		for p in $(tree_pids "$pid"); do
			sum=$((sum + $("${what}_kb" "$p")))
		done
	done
	echo "$sum"
}

# stop_pids PID...: SIGTERM to all at once, then up to 5 s, then SIGKILL;
# reaps them. Only processes this script started (pod_spawn) get here.
stop_pids()
{
	local pid i alive
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for ((i = 0; i < 100; i++)); do
		alive=0
		for pid in "$@"; do
			_or_alive "$pid" && alive=1 && break
		done
		[ "$alive" = 1 ] || break
		sleep 0.05
	done
	for pid in "$@"; do
		if _or_alive "$pid"; then
			echo "scale: $pid still running 5 s after SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	done
}

agent_dump()
{
	echo "--- agent log $OR_AGENT_LOG (last 40 lines)" >&2
	tail -n 40 "$OR_AGENT_LOG" >&2 2>/dev/null || true
}

# measure_agent N: the agent with p1..pN enrolled; leaves it running.
measure_agent()
{
	local n=$1 pid t0 rss anon fds
	cluster_config
	t0=$(_or_now_ms)
	agent_start "$OR_CONFIG" --log-level info
	pid=$(agent_pid)
	if ! wait_until $((10000 + n * 200)) ctl_lists_all "$n" ||
		! wait_until $((5000 + n * 100)) listening_all "$n" 15001; then
		echo "scale: the agent did not enroll all $n pods" >&2
		agent_dump
		return 1
	fi
	note "all $n enrolled and listening after $(($(_or_now_ms) - t0)) ms"
	sleep "${SCALE_SETTLE:-0.3}"
	rss=$(rss_kb "$pid")
	anon=$(anon_kb "$pid")
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l) # ls /proc/PID/fd | wc -l
	note "agent pid $pid: VmRSS $rss kB, RssAnon $anon kB, $fds fds"
	row agent_rss "$n" "$rss" kB
	row agent_anon "$n" "$anon" kB
	row agent_fds "$n" "$fds" count
}

# sidecars N KIND: one sidecar of KIND (haproxy|outrider) in each of
# p1..pN, waits for all their :15001, prints the summed RSS; stops them.
sidecars()
{
	local n=$1 kind=$2 i pod peer cfg log t0 rss anon procs
	local -a pids=()
	t0=$(_or_now_ms)
	for ((i = 1; i <= n; i++)); do
		pod=$(pod_name "$i")
		peer=$(pod_addr $((i % n + 1)))
		log="$OR_STATE/logs/$kind-$pod.log"
		case "$kind" in
		haproxy)
			cfg="$OR_STATE/haproxy-$pod.cfg"
			cat >"$cfg" <<EOF
global
	nbthread 1
	maxconn 4096
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
listen out
	bind 127.0.0.1:15001
	server s $peer:8080
listen in
	bind :15006
	server app 127.0.0.1:8080
EOF
			# -db: foreground, one process (no master); -Ws would add one.
			pod_spawn "$pod" "$log" haproxy -db -f "$cfg" >"$OR_STATE/sidecar.pid"
			;;
		outrider)
			pod_spawn "$pod" "$log" "$OR_BUILD/outriderd" --sidecar "default/$pod" \
				--config "$OR_CONFIG" --log-level info >"$OR_STATE/sidecar.pid"
			;;
		esac
		pids+=("$(<"$OR_STATE/sidecar.pid")")
	done
	for ((i = 1; i <= n; i++)); do
		pod=$(pod_name "$i")
		if ! wait_until 10000 listening "$pod" 15001; then
			echo "scale: $kind sidecar in $pod has no :15001 listener; its log:" >&2
			cat "$OR_STATE/logs/$kind-$pod.log" >&2 || true
			stop_pids "${pids[@]}"
			return 1
		fi
	done
	note "$n $kind sidecars listening after $(($(_or_now_ms) - t0)) ms"
	sleep "${SCALE_SETTLE:-0.3}"
	rss=$(tree_sum_kb rss "${pids[@]}")
	anon=$(tree_sum_kb anon "${pids[@]}")
	procs=$(for i in "${pids[@]}"; do tree_pids "$i"; done | wc -l)
	note "$kind sidecars ($procs processes): VmRSS $rss kB in all, $((rss / n)) kB each;" \
		"RssAnon $anon kB in all, $((anon / n)) kB each"
	row "${kind}_sidecars_rss" "$n" "$rss" kB
	row "${kind}_sidecars_anon" "$n" "$anon" kB
	stop_pids "${pids[@]}"
}

# The label test's poller, run by bash inside the pod's netns and started
# before the SIGHUP, so neither its start nor outriderctl's counts: the
# listener from /proc/net/tcp{,6} (that netns's, read with builtins, no
# process per poll), outriderctl only once it listens; every 5 ms. Prints
# "armed" after its first poll, then "<EPOCHREALTIME in us> <polls>" once the
# pod is captured; fails 10 s after arming.
# shellcheck disable=SC2016 # expanded by the inner bash
CAPTURE_POLLER='
ctl=$1 pin=$2 pod=$3 polls=0 deadline=
re="\"name\":[[:space:]]*\"(default/)?$pod\""
while :; do
	polls=$((polls + 1))
	read -r -d "" tcp </proc/net/tcp || true
	read -r -d "" tcp6 </proc/net/tcp6 || true
	if [[ "$tcp" == *":3A99 00000000:0000 0A"* ||
		"$tcp6" == *":3A99 00000000000000000000000000000000:0000 0A"* ]] &&
		out=$("$ctl" --pin-dir "$pin" --json pods 2>/dev/null) && [[ "$out" =~ $re ]]; then
		t=${EPOCHREALTIME/[.,]/}
		echo "$t $polls"
		exit 0
	fi
	t=${EPOCHREALTIME/[.,]/}
	if [ -z "$deadline" ]; then
		deadline=$((t + 10000000))
		echo armed
	fi
	((t < deadline)) || exit 1
	sleep 0.005
done'

# released POD: neither listed nor listening.
released()
{
	! listening "$1" 15001 && ! ctl_lists "$1"
}

# label_test N: with the agent up and p1..pN enrolled, times the label of
# p(N+1) (added unlabelled) to its capture, LABEL_REPS times.
label_test()
{
	local n=$1 pod r t0 t1 us got agent log poller
	local -a times=()
	pod=$(pod_name $((n + 1)))
	agent=$(agent_pid)
	if ((n + 1 > CREATED)); then
		pod_add "$pod" "$(pod_addr $((n + 1)))"
		CREATED=$((n + 1))
	fi
	pod_label "$pod" app=scale
	cluster_config
	agent_reload
	if ! wait_until 5000 released "$pod"; then
		echo "scale: $pod is captured without its label" >&2
		return 1
	fi
	for ((r = 1; r <= LABEL_REPS; r++)); do
		pod_label "$pod" app=scale outrider.io/mode=enabled
		cluster_config
		log="$OR_STATE/logs/poller-$r.log"
		netns_spawn "$(pod_netns "$pod")" "$log" bash -c "$CAPTURE_POLLER" poller \
			"$OR_BUILD/outriderctl" "$OR_PIN" "$pod" >"$OR_STATE/poller.pid"
		poller=$(<"$OR_STATE/poller.pid")
		if ! wait_until 5000 grep -qx armed "$log"; then
			echo "scale: the label test's poller did not start: $(cat "$log")" >&2
			return 1
		fi
		# From the SIGHUP (builtin kill, no fork): the moment the agent's
		# source can see the label.
		t0=${EPOCHREALTIME/[.,]/}
		kill -HUP "$agent"
		if ! wait "$poller"; then
			echo "scale: $pod not captured 10 s after the label" >&2
			agent_dump
			return 1
		fi
		got=$(tail -n 1 "$log")
		read -r t1 _ <<<"$got"
		us=$((t1 - t0))
		times+=($(((us + 500) / 1000)))
		note "round $r: $((us / 1000)).$(printf '%03d' $((us % 1000))) ms"

		pod_label "$pod" app=scale
		cluster_config
		agent_reload
		if ! wait_until 5000 released "$pod"; then
			echo "scale: $pod still captured 5 s after its label went" >&2
			agent_dump
			return 1
		fi
	done
	local sorted median max
	sorted=$(printf '%s\n' "${times[@]}" | sort -n)
	max=$(tail -n 1 <<<"$sorted")
	median=$(awk '{ v[NR] = $1 } END {
		if (NR % 2) print v[(NR + 1) / 2]; else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }' \
		<<<"$sorted")
	row label_to_capture_median "$n" "$median" ms
	row label_to_capture_max "$n" "$max" ms
}

if [ "$HAVE_HAPROXY" = 0 ]; then
	echo "scale: haproxy is not installed: no haproxy_sidecars_rss rows" >&2
fi
if [ "$HAVE_SIDECAR" = 0 ]; then
	echo "scale: $OR_BUILD/outriderd has no --sidecar yet: no outrider_sidecars_rss rows" >&2
fi

for n in $ALL_N; do
	progress "N=$n: pods p1..p$n (netns, cgroup, veth)"
	pods_upto "$n"
	measure=0
	[[ " $PODS_LIST " != *" $n "* ]] || measure=1

	if [ "$measure" = 1 ]; then
		progress "N=$n: node agent with $n enrolled pods"
		measure_agent "$n"
	else
		progress "N=$n: node agent with $n enrolled pods (for the label test only)"
		cluster_config
		agent_start "$OR_CONFIG" --log-level info
		if ! wait_until $((10000 + n * 200)) ctl_lists_all "$n"; then
			echo "scale: the agent did not enroll all $n pods" >&2
			agent_dump
			exit 1
		fi
	fi
	if [ "$n" = "$LABEL_N" ]; then
		progress "N=$n: label to capture of one more pod, $LABEL_REPS rounds"
		label_test "$n"
		# p(N+1) is an ordinary pod of the next N from here on.
	fi
	if ! agent_stop; then
		echo "scale: the agent did not stop within 5 s" >&2
	fi
	# Its pins stay after a stop (pods captured): the sidecars below need them gone.
	ctl uninstall >/dev/null 2>&1 || true
	# Its listeners must be gone before a sidecar binds :15001.
	if ! wait_until 5000 none_listening "$n" 15001; then
		echo "scale: an agent :15001 listener outlived the agent" >&2
		exit 1
	fi
	[ "$measure" = 1 ] || continue

	if [ "$HAVE_HAPROXY" = 1 ]; then
		progress "N=$n: $n haproxy sidecars"
		sidecars "$n" haproxy
	else
		progress "N=$n: haproxy sidecars (skipped: no haproxy)"
	fi
	if [ "$HAVE_SIDECAR" = 1 ]; then
		progress "N=$n: $n outrider sidecars"
		sidecars "$n" outrider
	else
		progress "N=$n: outrider sidecars (skipped: no outriderd --sidecar)"
	fi
done

progress "cleanup"
scale_cleanup
note "done in $(($(_or_now_ms) - T_START)) ms"
