# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# A small local "cluster" for outrider's end-to-end tests and demo: every pod
# is a network namespace with its own cgroup v2 directory, joined by a veth
# to a bridge that lives in a "node" namespace. Sourced by tests/e2e/*.bats
# and deploy/local/demo.sh.
#
# Nothing here can reach the outside: pods get an address on 10.244.1.0/24
# (and optionally fd00:244:1::/64) and no default route, so a connect() that
# outrider fails to capture fails with ENETUNREACH instead of leaving.
#
# Everything a run makes carries its id (OR_ID, six hex digits):
#   netns      ort<ID>-<pod>, ort<ID>-node (the bridge)
#   cgroups    $CG2/outrider-test-<ID>/<pod>
#   pins       /sys/fs/bpf/outrider-test-<ID> (other nodes: ...-<ID>-<suffix>)
#   state      ${TMPDIR:-/tmp}/outrider-test-<ID>/ (config, logs, pid list)
# cluster_cleanup removes all of it and ends only the processes this file
# started, by PID. It is safe to call twice and after a partial setup.
#
#   cluster_init                  make the ids, state dir and the node bridge
#   pod_add NAME IPV4 [IPV6]      a pod: netns, veth, addresses, cgroup
#   pod_label NAME [K=V ...]      its labels, for the rendered config
#   pod_namespace NAME NS         its Kubernetes namespace (default "default")
#   pod_exec NAME CMD...          run CMD in the pod (cgroup + netns)
#   pod_spawn NAME LOG CMD...     the same in the background, PID recorded
#   upstream_start POD NAME ARGS  build/upstream in POD, waits for "listening"
#   cluster_namespaces < YAML     the namespaces: section of the config
#   cluster_services < YAML       the services: section of the config
#   cluster_config [FILE]         render the agent's config (default $OR_CONFIG)
#   agent_start CONFIG [ARGS]     build/outriderd in the root netns and cgroup
#   agent_stop [SIG] / agent_reload   SIGTERM (waits up to 5 s) / SIGHUP
#   wait_until TIMEOUT_MS CMD...  poll CMD every 50 ms
#   cluster_cleanup               remove everything, end recorded processes
#
# More than one node (issue 4): every agent is a "node" of its own, all of
# them in the root netns, the pods of all nodes on the one bridge.
#   node_add NODE                 another node: pin dir $OR_PIN-<suffix>
#                                 (suffix: NODE without "node-"), its own
#                                 admin/ready ports, config, log and pid file
#   pod_node POD NODE             the node POD runs on (default: the node it
#                                 was added on, $OR_NODE_NAME)
#   on_node NODE CMD...           CMD for NODE's agent: OR_NODE_NAME, OR_PIN,
#                                 OR_CONFIG, OR_AGENT_LOG, OR_AGENT_PIDFILE,
#                                 OR_ADMIN_ADDR and OR_READY_ADDR are NODE's, so
#                                 cluster_config, agent_start/stop/running/
#                                 reload, agent_wait_ready, ctl, admin_get and
#                                 metric act on NODE (the first node: as is)
#   nodes_up NODE...              for each: config, agent, wait for its pods
#                                 (:15001, :15008) and /healthz/ready
#   netns_spawn NETNS LOG CMD...  CMD in a netns (no cgroup), PID recorded
#   capture_start WHERE FILE FILTER...  tcpdump into FILE on the bridge
#                                 (WHERE=node) or on a pod's eth0 (WHERE=POD),
#                                 a child of the caller: CAPTURE_PID, once it
#                                 captures (call it directly, not in $(...))
#   capture_stop [PID]            ends it (default $CAPTURE_PID); its packets
#                                 are in FILE after
#   ca_dir, ca_mint, cert_mint, tls_probe, tls_peer_cert   mTLS helpers:
#                                 the shared CA, certificates minted with
#                                 openssl, openssl s_client to a pod's :15008
#
# Resilience helpers (issue 3):
#   admin_get PATH / ready_get PATH   GET from the agent's admin / ready address
#   metric NAME [LABEL=VALUE ...]     sum of NAME's samples with those labels (0 if none)
#   upstream_fault POD PORT SPEC      set the fault of an upstream's port (control port)
#   upstream_count POD PORT / upstream_reset POD PORT   requests received / zero them
#   breakers_json                     or_breakers from bpftool as [{ip, port, state, ...}]
#   breaker_of IP PORT                one endpoint's entry of breakers_json ("null": none)
#   fault_backend_start POD [ARGS]    the upstream with the resilience tests' ports
#   resilience_pods N / resilience_agent_up   their topology: client + be-1..be-N
#
# Every run gets its own admin_address and ready_address on 127.0.0.1 (two
# free ports derived from the run id, OR_ADMIN_ADDR / OR_READY_ADDR, unless
# set before cluster_init), written into the config when the agent knows
# the keys (OR_ADMIN_ADDRESSES=auto|1|0), so agents of parallel runs never
# compete for :15020 and :15021.

OR_ROOT=${OR_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}
OR_BUILD=${OR_BUILD:-$OR_ROOT/build}
OR_NODE_NAME=${OR_NODE_NAME:-node-a}

# The cgroup2 mount point, from /proc/self/mountinfo (the filesystem type
# follows the " - " separator; the mount point is field 5).
cgroup2_mount()
{
	awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") { print $5; exit } break } }' \
		/proc/self/mountinfo
}

_or_now_ms()
{
	if [ -n "${EPOCHREALTIME:-}" ]; then
		local t=${EPOCHREALTIME/[.,]/}
		echo $((t / 1000))
	else
		date +%s%3N
	fi
}

# wait_until TIMEOUT_MS CMD...: runs CMD (quietly) every 50 ms until it
# succeeds (returns 0) or TIMEOUT_MS have passed (returns 1).
wait_until()
{
	local timeout_ms=$1
	shift
	local deadline=$(($(_or_now_ms) + timeout_ms))

	while :; do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		if [ "$(_or_now_ms)" -ge "$deadline" ]; then
			return 1
		fi
		sleep 0.05
	done
}

# Why this machine cannot run the cluster, on stdout; returns 1 if so.
cluster_prereqs()
{
	local cmd
	if [ "$(id -u)" != 0 ]; then
		echo "needs root (netns, cgroups, BPF)"
		return 1
	fi
	if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
		echo "bpffs is not mounted at /sys/fs/bpf"
		return 1
	fi
	if [ -z "$(cgroup2_mount)" ]; then
		echo "no cgroup2 mount in /proc/self/mountinfo"
		return 1
	fi
	for cmd in ip nsenter bpftool curl jq ss; do
		if ! command -v "$cmd" >/dev/null 2>&1; then
			echo "$cmd is not installed (tests/deps.sh installs it)"
			return 1
		fi
	done
	return 0
}

# cluster_init: picks the run id and makes the state dir and node bridge.
# Exports everything tests (separate processes under bats) need.
cluster_init()
{
	if [ -z "${OR_ID:-}" ]; then
		OR_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
	fi
	CG2=$(cgroup2_mount)
	OR_NS_PREFIX="ort${OR_ID}"
	OR_NODE_NS="${OR_NS_PREFIX}-node"
	OR_CG="$CG2/outrider-test-${OR_ID}"
	OR_PIN="/sys/fs/bpf/outrider-test-${OR_ID}"
	OR_STATE="${TMPDIR:-/tmp}/outrider-test-${OR_ID}"
	OR_CONFIG="$OR_STATE/outrider.yaml"
	OR_AGENT_LOG="$OR_STATE/agent.log"
	_or_pick_admin_addresses
	export OR_ROOT OR_BUILD OR_NODE_NAME OR_ID CG2 OR_NS_PREFIX OR_NODE_NS OR_CG \
		OR_PIN OR_STATE OR_CONFIG OR_AGENT_LOG OR_ADMIN_ADDR OR_READY_ADDR

	if [ -n "${OR_IDS_FILE:-}" ]; then
		echo "$OR_ID" >>"$OR_IDS_FILE"
	fi
	mkdir "$OR_STATE" || return 1
	mkdir "$OR_STATE/labels" "$OR_STATE/podns" "$OR_STATE/podnode" "$OR_STATE/logs" \
		"$OR_STATE/nodes"
	: >"$OR_STATE/pids"
	: >"$OR_STATE/pods"
	: >"$OR_STATE/namespaces.yaml"
	: >"$OR_STATE/services.yaml"
	mkdir -p "$OR_CG"

	ip netns add "$OR_NODE_NS" || return 1
	ip -n "$OR_NODE_NS" link set lo up
	ip -n "$OR_NODE_NS" link add br0 type bridge stp_state 0 forward_delay 0 || return 1
	ip -n "$OR_NODE_NS" link set br0 up
}

# A TCP port something listens on in the root netns.
_or_port_busy()
{
	[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
}

# OR_ADMIN_ADDR and OR_READY_ADDR: two adjacent free loopback ports in
# 20000..39999, derived from the run id (kept when set by the caller).
_or_pick_admin_addresses()
{
	local port i
	if [ -n "${OR_ADMIN_ADDR:-}" ] && [ -n "${OR_READY_ADDR:-}" ]; then
		return 0
	fi
	port=$((20000 + (16#$OR_ID % 10000) * 2))
	for ((i = 0; i < 200; i++)); do
		if ! _or_port_busy "$port" && ! _or_port_busy $((port + 1)); then
			break
		fi
		port=$((port + 2))
		[ "$port" -lt 40000 ] || port=20000
	done
	OR_ADMIN_ADDR="127.0.0.1:$port"
	OR_READY_ADDR="127.0.0.1:$((port + 1))"
}

# Whether to write admin_address/ready_address into the config: always (1),
# never (0), or when build/outriderd knows the keys (auto, the default).
_or_config_has_admin()
{
	case "${OR_ADMIN_ADDRESSES:-auto}" in
	1) return 0 ;;
	0) return 1 ;;
	*) grep -qa admin_address "$OR_BUILD/outriderd" 2>/dev/null ;;
	esac
}

pod_netns() { echo "${OR_NS_PREFIX}-$1"; }
pod_netns_path() { echo "/run/netns/${OR_NS_PREFIX}-$1"; }
pod_cgroup() { echo "$OR_CG/$1"; }
pod_ip() { awk -v n="$1" '$1 == n { print $2 }' "$OR_STATE/pods"; }
pod_ip6() { awk -v n="$1" '$1 == n && $3 != "-" { print $3 }' "$OR_STATE/pods"; }

# pod_add NAME IPV4 [IPV6]: a pod on the node bridge; no default route.
pod_add()
{
	local name=$1 ip4=$2 ip6=${3:-}
	local ns veth idx

	ns=$(pod_netns "$name")
	idx=$(($(wc -l <"$OR_STATE/pods") + 1))
	veth="vp${idx}" # the node side; pod names may be too long for IFNAMSIZ
	echo "$name $ip4 ${ip6:--}" >>"$OR_STATE/pods"
	: >"$OR_STATE/labels/$name"
	echo default >"$OR_STATE/podns/$name"
	echo "$OR_NODE_NAME" >"$OR_STATE/podnode/$name"

	ip netns add "$ns" || return 1
	ip -n "$OR_NODE_NS" link add "$veth" type veth peer name eth0 netns "$ns" || return 1
	ip -n "$OR_NODE_NS" link set "$veth" master br0 up || return 1
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$ip4/24" dev eth0 || return 1
	if [ -n "$ip6" ]; then
		ip -n "$ns" addr add "$ip6/64" dev eth0 nodad || return 1
	fi
	ip -n "$ns" link set eth0 up || return 1
	mkdir -p "$(pod_cgroup "$name")"
}

# pod_label NAME [KEY=VALUE ...]: replaces the pod's labels.
pod_label()
{
	local name=$1 kv
	shift
	: >"$OR_STATE/labels/$name"
	for kv in "$@"; do
		echo "$kv" >>"$OR_STATE/labels/$name"
	done
}

# pod_namespace NAME NS: the pod's Kubernetes namespace in the config.
pod_namespace()
{
	echo "$2" >"$OR_STATE/podns/$1"
}

# pod_exec NAME CMD...: CMD inside the pod's cgroup and netns, build/ on PATH.
pod_exec()
{
	local name=$1
	shift
	PATH="$OR_BUILD:$PATH" sh -c \
		'cg=$1 ns=$2; shift 2; echo $$ >"$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"' \
		pod_exec "$(pod_cgroup "$name")" "$(pod_netns_path "$name")" "$@"
}

# Start time of a process (clock ticks after boot), to tell a recorded PID
# from a reused one.
_or_starttime()
{
	local stat f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# Fields after the command name, which may hold spaces: state is
	# field 3, starttime field 22.
	read -r -a f <<<"${stat##*) }"
	echo "${f[19]}"
}

_or_record_pid()
{
	local pid=$1 tag=$2 st
	st=$(_or_starttime "$pid") || st=-
	echo "$pid $st $tag" >>"$OR_STATE/pids"
}

# pod_spawn NAME LOGFILE CMD...: pod_exec in the background; prints the PID.
pod_spawn()
{
	local name=$1 log=$2
	shift 2
	PATH="$OR_BUILD:$PATH" sh -c \
		'cg=$1 ns=$2; shift 2; echo $$ >"$cg/cgroup.procs" && exec nsenter --net="$ns" -- "$@"' \
		pod_spawn "$(pod_cgroup "$name")" "$(pod_netns_path "$name")" "$@" \
		</dev/null >"$log" 2>&1 3>&- &
	local pid=$!
	_or_record_pid "$pid" "pod:$name"
	echo "$pid"
}

# upstream_start POD NAME [--http PORT] [--echo PORT]: waits until it listens.
upstream_start()
{
	local pod=$1 name=$2
	shift 2
	local log="$OR_STATE/logs/upstream-$pod.log"
	pod_spawn "$pod" "$log" "$OR_BUILD/upstream" --name "$name" "$@" >/dev/null
	if ! wait_until 5000 grep -q '^listening' "$log"; then
		echo "upstream in $pod did not start:" >&2
		cat "$log" >&2
		return 1
	fi
}

# pod_listening POD PORT: something listens on TCP PORT inside the pod.
pod_listening()
{
	[ -n "$(pod_exec "$1" ss -Hltn "sport = :$2")" ]
}

# cluster_namespaces < YAML: the namespaces: section (empty: none).
cluster_namespaces()
{
	cat >"$OR_STATE/namespaces.yaml"
}

# cluster_services < YAML: the services: section (and anything after the
# pods) of the rendered config.
cluster_services()
{
	cat >"$OR_STATE/services.yaml"
}

_or_labels_yaml()
{
	local name=$1 kv out=""
	while IFS= read -r kv; do
		[ -n "$kv" ] || continue
		out="${out:+$out, }${kv%%=*}: ${kv#*=}"
	done <"$OR_STATE/labels/$name"
	echo "{$out}"
}

# cluster_config [FILE]: the agent's config for this cluster, written
# atomically (a reader never sees half a file).
cluster_config()
{
	local out=${1:-$OR_CONFIG}
	local name ip4 ip6
	{
		echo "# outrider test cluster $OR_ID (tests/e2e/lib/cluster.bash)"
		echo "node: $OR_NODE_NAME"
		echo "pin_dir: $OR_PIN"
		echo "cgroup_root: $CG2"
		# The demo CA and anything else the agent keeps: inside this run's state.
		echo "state_dir: ${OR_AGENT_STATE_DIR:-$OR_STATE/agent-state}"
		if _or_config_has_admin; then
			echo "admin_address: $OR_ADMIN_ADDR"
			echo "ready_address: $OR_READY_ADDR"
		fi
		cat "$OR_STATE/namespaces.yaml"
		echo "pods:"
		while read -r name ip4 ip6; do
			echo "  - name: $name"
			echo "    namespace: $(cat "$OR_STATE/podns/$name")"
			echo "    node: $(cat "$OR_STATE/podnode/$name" 2>/dev/null || echo "$OR_NODE_NAME")"
			echo "    labels: $(_or_labels_yaml "$name")"
			echo "    ip: $ip4"
			if [ "$ip6" != - ]; then
				echo "    ip6: $ip6"
			fi
			echo "    netns: $(pod_netns_path "$name")"
			echo "    cgroup: $(pod_cgroup "$name")"
			echo "    service_account: $name"
		done <"$OR_STATE/pods"
		cat "$OR_STATE/services.yaml"
	} >"$out.tmp" && mv -f "$out.tmp" "$out"
}

ctl()
{
	"$OR_BUILD/outriderctl" --pin-dir "$OR_PIN" "$@"
}

# ---- resilience helpers (issue 3) -------------------------------------------

# admin_get PATH [CURL ARGS...] / ready_get PATH [CURL ARGS...]: the body of
# a GET to the agent's admin / ready address (from the root netns, loopback).
admin_get()
{
	local path=$1
	shift
	curl -sS --max-time 3 "$@" "http://$OR_ADMIN_ADDR$path"
}

ready_get()
{
	local path=$1
	shift
	curl -sS --max-time 3 "$@" "http://$OR_READY_ADDR$path"
}

# metric NAME [LABEL=VALUE ...]: the sum of NAME's samples in /metrics whose
# labels include every LABEL="VALUE" given; 0 when there is none. Fails
# when /metrics cannot be read.
metric()
{
	local name=$1 text
	shift
	text=$(admin_get /metrics) || return 1
	awk -v name="$name" -v want="$*" '
		BEGIN { n = split(want, w, " "); sum = 0 }
		/^#/ || NF < 2 { next }
		{
			series = $1
			for (i = 2; i < NF; i++) series = series " " $i
			brace = index(series, "{")
			mname = brace ? substr(series, 1, brace - 1) : series
			if (mname != name) next
			labels = brace ? substr(series, brace) : ""
			for (i = 1; i <= n; i++) {
				eq = index(w[i], "=")
				pair = substr(w[i], 1, eq - 1) "=\"" substr(w[i], eq + 1) "\""
				if (index(labels, "{" pair) == 0 && index(labels, "," pair) == 0) next
			}
			sum += $NF
		}
		END { printf "%.0f\n", sum }' <<<"$text"
}

# The upstream fixture's control port (tests start it with --control this).
UPSTREAM_CONTROL_PORT=${UPSTREAM_CONTROL_PORT:-7000}

# upstream_ctl POD PATH: a GET to the upstream's control port inside POD.
upstream_ctl()
{
	pod_exec "$1" curl -sS --max-time 3 -f "http://127.0.0.1:$UPSTREAM_CONTROL_PORT$2"
}

# upstream_fault POD PORT SPEC: sets PORT's fault (see tests/fixtures/upstream.c).
upstream_fault()
{
	local out
	out=$(upstream_ctl "$1" "/fault?port=$2&spec=$3") && [ "$out" = ok ]
}

# upstream_count POD PORT: requests PORT received since start or upstream_reset.
upstream_count()
{
	upstream_ctl "$1" "/count?port=$2"
}

upstream_reset()
{
	upstream_ctl "$1" "/reset?port=$2" >/dev/null
}

# breakers_json: the or_breakers map, as bpftool shows it, flattened to
# [{ip, port, family, state, consecutive_failures, until_ns, ejections}]
# (IPv4 endpoints as dotted quads; an address is four network-order words).
breakers_json()
{
	bpftool -j map dump pinned "$OR_PIN/or_breakers" | jq -c '
		def ip4: (.[0] % 256 | tostring) + "." + ((.[0] / 256 | floor) % 256 | tostring) + "."
			+ ((.[0] / 65536 | floor) % 256 | tostring) + "." + ((.[0] / 16777216 | floor) % 256 | tostring);
		map(.formatted // .) | map({
			ip: (if .key.family == 2 then (.key.addr | ip4) else (.key.addr | tostring) end),
			port: .key.port, family: .key.family,
			state: .value.state, consecutive_failures: .value.consecutive_failures,
			until_ns: .value.until_ns, ejections: .value.ejections })'
}

# ctl_breaker IP PORT: that endpoint's entry of `outriderctl breakers --json`, or null.
ctl_breaker()
{
	ctl breakers --json | jq -c --arg ip "$1" --argjson port "$2" \
		'map(select(.ip == $ip and .port == $port)) | .[0]'
}

# breaker_of IP PORT: that endpoint's entry of breakers_json, or null.
breaker_of()
{
	breakers_json | jq -c --arg ip "$1" --argjson port "$2" \
		'map(select(.ip == $ip and .port == $port)) | .[0]'
}

# agent_start CONFIG [ARGS...]: the agent in the root netns and the caller's
# cgroup (never a pod's), logging to $OR_AGENT_LOG.
agent_start()
{
	local cfg=$1
	shift
	"$OR_BUILD/outriderd" --config "$cfg" --log-level debug "$@" \
		</dev/null >>"$OR_AGENT_LOG" 2>&1 3>&- &
	local pid=$!
	_or_record_pid "$pid" "agent:$OR_NODE_NAME"
	echo "$pid" >"${OR_AGENT_PIDFILE:-$OR_STATE/agent.pid}"
}

agent_pid() { cat "${OR_AGENT_PIDFILE:-$OR_STATE/agent.pid}" 2>/dev/null; }

# The process exists and is not a zombie.
_or_alive()
{
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat:0:1}" != Z ]
}

agent_running()
{
	local pid
	pid=$(agent_pid) && [ -n "$pid" ] && _or_alive "$pid"
}

agent_reload()
{
	kill -HUP "$(agent_pid)"
}

# agent_stop [SIGNAL]: SIGTERM (or SIGNAL), then up to 5 s for it to exit. Returns 0 when it
# exited in time. OR_AGENT_STATUS is its exit status when this shell started
# it, 127 when another process did.
agent_stop()
{
	local sig=${1:-TERM} pid i
	OR_AGENT_STATUS=127
	pid=$(agent_pid) || return 0
	[ -n "$pid" ] || return 0
	if _or_alive "$pid"; then
		kill -"$sig" "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			_or_alive "$pid" || break
			sleep 0.05
		done
		if _or_alive "$pid"; then
			echo "agent $pid still running 5 s after SIG$sig; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			rm -f "${OR_AGENT_PIDFILE:-$OR_STATE/agent.pid}"
			return 1
		fi
	fi
	wait "$pid" 2>/dev/null && OR_AGENT_STATUS=0 || OR_AGENT_STATUS=$?
	rm -f "${OR_AGENT_PIDFILE:-$OR_STATE/agent.pid}"
	return 0
}

# Ends one recorded process: SIGTERM, 5 s, SIGKILL. Skips a PID that now
# belongs to another process.
_or_end_pid()
{
	local pid=$1 st=$2 i now
	if ! _or_alive "$pid"; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	now=$(_or_starttime "$pid") || return 0
	if [ "$st" != - ] && [ "$now" != "$st" ]; then
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		_or_alive "$pid" || break
		sleep 0.05
	done
	if _or_alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null
		for ((i = 0; i < 20; i++)); do
			_or_alive "$pid" || break
			sleep 0.05
		done
	fi
	wait "$pid" 2>/dev/null || true
	return 0
}

# cluster_cleanup: removes whatever this run made; safe to call again.
cluster_cleanup()
{
	local - pid st tag ns d i
	set +e
	[ -n "${OR_ID:-}" ] || return 0

	# Processes first, newest first, the agent among them (SIGTERM lets it
	# remove its pins and links).
	if [ -f "${OR_STATE:-}/pids" ]; then
		while read -r pid st tag; do
			_or_end_pid "$pid" "$st"
		done < <(tac "$OR_STATE/pids")
		: >"$OR_STATE/pids"
	fi

	for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		case "$ns" in
		"ort${OR_ID}-"*) ip netns del "$ns" ;;
		esac
	done

	if [ -n "${OR_CG:-}" ] && [ -d "$OR_CG" ]; then
		# Deepest first: Kubernetes-shaped pods nest (kubepods.slice/...).
		while IFS= read -r d; do
			[ -d "$d" ] || continue
			# A process that just exited can linger in cgroup.procs briefly.
			for ((i = 0; i < 40; i++)); do
				rmdir "$d" 2>/dev/null && break
				sleep 0.05
			done
			[ -d "$d" ] && echo "cluster_cleanup: cannot remove $d: pids $(tr '\n' ' ' <"$d/cgroup.procs")" >&2
		done < <(find "$OR_CG" -mindepth 1 -depth -type d 2>/dev/null)
		rmdir "$OR_CG" 2>/dev/null || echo "cluster_cleanup: cannot remove $OR_CG" >&2
	fi

	case "${OR_PIN:-}" in
	/sys/fs/bpf/outrider-test-*) rm -rf "$OR_PIN" ;;
	esac
	# Other nodes' pin dirs (node_add): $OR_PIN-<suffix>.
	for d in "/sys/fs/bpf/outrider-test-${OR_ID}-"*; do
		[ -d "$d" ] && rm -rf "$d"
	done

	case "${OR_STATE:-}" in
	*/outrider-test-*)
		if [ "${OR_KEEP_STATE:-0}" = 1 ]; then
			echo "cluster_cleanup: kept $OR_STATE" >&2
		else
			rm -rf "$OR_STATE"
		fi
		;;
	esac
	return 0
}

# ---- more than one node (issue 4) -----------------------------------------
#
# The first node is the one cluster_init made ($OR_NODE_NAME, $OR_PIN,
# $OR_CONFIG, ...). node_add registers another in $OR_STATE/nodes/<NODE>
# ("suffix admin_addr ready_addr"); on_node runs a command with that node's
# settings in place of the first node's.

# pod_node POD NODE: the node the pod runs on, as cluster_config writes it.
pod_node()
{
	echo "$2" >"$OR_STATE/podnode/$1"
}

# pod_node_of POD: the node POD runs on.
pod_node_of()
{
	cat "$OR_STATE/podnode/$1" 2>/dev/null || echo "$OR_NODE_NAME"
}

_or_addr_used()
{
	local port=$1 f
	[ "127.0.0.1:$port" = "$OR_ADMIN_ADDR" ] || [ "127.0.0.1:$port" = "$OR_READY_ADDR" ] && return 0
	for f in "$OR_STATE/nodes"/*; do
		[ -f "$f" ] || continue
		grep -q -e " 127.0.0.1:$port\( \|\$\)" "$f" && return 0
	done
	_or_port_busy "$port"
}

# node_add NODE: another node with its own pin dir, admin and ready ports.
node_add()
{
	local node=$1 suffix port i
	suffix=${node#node-}
	if ! [[ "$suffix" =~ ^[a-z0-9][a-z0-9-]{0,15}$ ]]; then
		echo "node_add: '$node': want node-<a-z0-9-> (a short suffix for its pin dir)" >&2
		return 1
	fi
	if [ "$node" = "$OR_NODE_NAME" ] || [ -e "$OR_STATE/nodes/$node" ]; then
		echo "node_add: $node already exists" >&2
		return 1
	fi
	port=${OR_READY_ADDR##*:}
	port=$((port + 1))
	for ((i = 0; i < 200; i++)); do
		if ! _or_addr_used "$port" && ! _or_addr_used $((port + 1)); then
			break
		fi
		port=$((port + 2))
		[ "$port" -lt 40000 ] || port=20000
	done
	echo "$suffix 127.0.0.1:$port 127.0.0.1:$((port + 1))" >"$OR_STATE/nodes/$node"
}

# on_node NODE CMD...: CMD with NODE's agent settings (see the top of the file).
on_node()
{
	local node=$1 suffix admin ready
	shift
	if [ "$node" = "$OR_NODE_NAME" ]; then
		"$@"
		return
	fi
	if ! read -r suffix admin ready <"$OR_STATE/nodes/$node" 2>/dev/null; then
		echo "on_node: no node $node (node_add it)" >&2
		return 1
	fi
	local -x OR_NODE_NAME=$node
	local -x OR_PIN="$OR_PIN-$suffix"
	local -x OR_CONFIG="$OR_STATE/outrider-$suffix.yaml"
	local -x OR_AGENT_LOG="$OR_STATE/agent-$suffix.log"
	local -x OR_AGENT_PIDFILE="$OR_STATE/agent-$suffix.pid"
	local -x OR_ADMIN_ADDR=$admin
	local -x OR_READY_ADDR=$ready
	"$@"
}

# netns_spawn NETNS LOG CMD...: CMD in that netns (a name under /run/netns),
# in the caller's cgroup, in the background; prints the PID.
netns_spawn()
{
	local ns=$1 log=$2
	shift 2
	nsenter --net="/run/netns/$ns" -- "$@" </dev/null >"$log" 2>&1 3>&- &
	local pid=$!
	_or_record_pid "$pid" "netns:$ns"
	echo "$pid"
}

# capture_start WHERE FILE [FILTER...]: tcpdump writing FILE (pcap, each
# packet as it comes), on br0 in the node netns (WHERE=node) or on eth0 in a
# pod's netns (WHERE=POD). Sets CAPTURE_PID once it captures. Call it
# directly, not in $(...): tcpdump stays a child of the caller, who reaps it
# (an orphan would be left to PID 1, which may reap late).
capture_start()
{
	local where=$1 file=$2 ns dev log
	shift 2
	CAPTURE_PID=
	if [ "$where" = node ]; then
		ns=$OR_NODE_NS dev=br0
	else
		ns=$(pod_netns "$where") dev=eth0
	fi
	log="$file.log"
	# --immediate-mode: otherwise packets wait in the kernel's ring for up to
	# a second and may miss the file when the capture ends. -Z root: tcpdump
	# would drop to its own user, who cannot write in the state dir.
	netns_spawn "$ns" "$log" tcpdump -i "$dev" -nn -U --immediate-mode -s 0 -Z root \
		-w "$file" "$@" >"$file.pid"
	CAPTURE_PID=$(<"$file.pid")
	if ! wait_until 5000 grep -q 'listening on' "$log"; then
		echo "capture_start: tcpdump did not start:" >&2
		cat "$log" >&2
		capture_stop "$CAPTURE_PID"
		CAPTURE_PID=
		return 1
	fi
}

# capture_stop [PID]: ends the capture (SIGTERM: tcpdump writes out what it
# has), default $CAPTURE_PID, and reaps it.
capture_stop()
{
	local pid=${1:-${CAPTURE_PID:-}} i
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		_or_alive "$pid" || break
		sleep 0.05
	done
	wait "$pid" 2>/dev/null || true
	[ "$pid" != "${CAPTURE_PID:-}" ] || CAPTURE_PID=
}

# nodes_up NODE...: for each node in turn, its config (cluster_config under
# on_node), its agent, and a wait until the pods it enrolls (those on the
# node labelled with the selector, outrider.io/mode=enabled) are in its
# maps with :15001 and :15008 listening, and /healthz/ready says 200. On
# failure: every agent's log and config on stderr, and cleanup.
nodes_up()
{
	local node pod pods
	for node in "$@"; do
		pods=()
		while read -r pod _; do
			if [ "$(pod_node_of "$pod")" = "$node" ] &&
				grep -qx 'outrider.io/mode=enabled' "$OR_STATE/labels/$pod"; then
				pods+=("$pod")
			fi
		done <"$OR_STATE/pods"
		if ! on_node "$node" _or_node_up "${pods[@]}"; then
			for node in "$@"; do
				on_node "$node" _or_node_dump
			done
			cluster_cleanup
			return 1
		fi
	done
}

_or_node_up()
{
	local pod
	cluster_config && agent_start "$OR_CONFIG" && agent_wait_ready 5000 "$@" || return 1
	for pod in "$@"; do
		if ! wait_until 5000 pod_listening "$pod" 15008; then
			echo "$OR_NODE_NAME: no mTLS listener (:15008) in pod $pod" >&2
			return 1
		fi
	done
	if _or_config_has_admin && ! wait_until 3000 ready_get /healthz/ready -f; then
		echo "$OR_NODE_NAME: /healthz/ready never said 200" >&2
		return 1
	fi
}

_or_node_dump()
{
	echo "--- $OR_NODE_NAME: agent log $OR_AGENT_LOG" >&2
	tail -n 60 "$OR_AGENT_LOG" >&2 2>/dev/null
	echo "--- $OR_NODE_NAME: config $OR_CONFIG" >&2
	cat "$OR_CONFIG" >&2 2>/dev/null
}

# ---- mTLS helpers (issue 4) ---------------------------------------------
#
#   ca_dir                        where the agents keep the shared demo CA
#                                 (ca.crt, ca.key: the state_dir)
#   ca_mint OUT                   another CA: OUT.crt, OUT.key (self-signed P-256)
#   cert_mint OUT CA URI [EXT...] a leaf OUT.crt/OUT.key signed by CA.crt/CA.key
#   tls_probe POD IP CERT DATA    openssl s_client from POD to IP:15008
#   tls_peer_cert POD IP CERT     the certificate the listener at IP:15008 presents

OR_TRUST_DOMAIN=${OR_TRUST_DOMAIN:-cluster.local}

ca_dir() { echo "${OR_AGENT_STATE_DIR:-$OR_STATE/agent-state}"; }

# ca_mint OUT: a CA that is not the cluster's, valid for a day.
ca_mint()
{
	local out=$1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 1 \
		-subj "/O=outrider tests/CN=another CA" -keyout "$out.key" -out "$out.crt" \
		-addext 'basicConstraints=critical,CA:TRUE' \
		-addext 'keyUsage=critical,keyCertSign,cRLSign' 2>"$out.err" || { cat "$out.err" >&2; return 1; }
}

# cert_mint OUT CA URI [EXT...]: a P-256 leaf signed by CA (CA.crt, CA.key),
# valid for a day: URI as its only SAN ("" for no SAN), CA:FALSE, keyUsage
# digitalSignature, extendedKeyUsage clientAuth, serverAuth. Each EXT (an
# openssl extfile line, "name=value") replaces the line of that name or adds one.
cert_mint()
{
	local out=$1 ca=$2 uri=$3 e name
	shift 3
	local -a ext=(
		'basicConstraints=critical,CA:FALSE'
		'keyUsage=critical,digitalSignature'
		'extendedKeyUsage=clientAuth,serverAuth'
	)
	[ -z "$uri" ] || ext+=("subjectAltName=URI:$uri")
	for e in "$@"; do
		name=${e%%=*}
		local -a kept=()
		local x
		for x in "${ext[@]}"; do
			[ "${x%%=*}" = "$name" ] || kept+=("$x")
		done
		ext=("${kept[@]}" "$e")
	done
	printf '%s\n' "${ext[@]}" >"$out.ext"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out.key" 2>"$out.err" &&
		openssl req -new -key "$out.key" -subj "/O=outrider tests" -out "$out.csr" 2>>"$out.err" &&
		openssl x509 -req -in "$out.csr" -CA "$ca.crt" -CAkey "$ca.key" -days 1 -sha256 \
			-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
			-extfile "$out.ext" -out "$out.crt" 2>>"$out.err" || { cat "$out.err" >&2; return 1; }
}

# tls_probe POD IP CERT DATA [S_CLIENT ARGS...]: from POD, TLS 1.3 to
# IP:15008 trusting only the cluster CA (the agent's chain must verify),
# presenting CERT (CERT.crt, CERT.key; "" for none), writing DATA (printf
# %b: "\r\n" works), then reading until the agent closes (10 s at most).
# Prints what came back and s_client's complaints; its exit status.
tls_probe()
{
	local pod=$1 ip=$2 cert=$3 data=$4
	shift 4
	local -a args=(-connect "$ip:15008" -CAfile "$(ca_dir)/ca.crt" -verify_return_error -quiet)
	[ -z "$cert" ] || args+=(-cert "$cert.crt" -key "$cert.key")
	printf '%b' "$data" | pod_exec "$pod" timeout 10 openssl s_client "${args[@]}" "$@" 2>&1
}

# tls_peer_cert POD IP CERT: the PEM certificate the listener at IP:15008
# presents to a client with CERT.
tls_peer_cert()
{
	local pod=$1 ip=$2 cert=$3
	pod_exec "$pod" timeout 10 openssl s_client -connect "$ip:15008" \
		-CAfile "$(ca_dir)/ca.crt" -verify_return_error -cert "$cert.crt" -key "$cert.key" \
		</dev/null 2>/dev/null | openssl x509 2>/dev/null
}

# ---- the end-to-end topology ---------------------------------------------
#
# client (enrolled), client2 (not labelled), echo-1..3 running
# `upstream --http 8080 --echo 9000`; services echo (proxy, 10.96.0.10,
# 80->8080 and 9000->9000), echo6 (proxy, fd00:96::10, 80->8080) and echo-k
# (kernel, 10.96.0.20, 80->8080).

E2E_VIP=10.96.0.10
E2E_VIP6=fd00:96::10
E2E_VIP_K=10.96.0.20

# e2e_require: in setup_file. Missing root/bpffs/cgroup2 skips the file's
# tests (fails them with REQUIRE_BPF=1); missing binaries always fail.
e2e_require()
{
	local why bin
	if ! why=$(cluster_prereqs); then
		if [ "${REQUIRE_BPF:-0}" = 1 ]; then
			echo "REQUIRE_BPF=1 but $why" >&2
			return 1
		fi
		export OR_SKIP="$why"
		return 0
	fi
	for bin in outriderd outriderctl upstream orclient; do
		if [ ! -x "$OR_BUILD/$bin" ]; then
			echo "$OR_BUILD/$bin is missing: run make all fixtures" >&2
			return 1
		fi
	done
	# zz_leaks.bats checks exactly the ids this bats run used.
	if [ -n "${BATS_RUN_TMPDIR:-}" ]; then
		export OR_IDS_FILE="$BATS_RUN_TMPDIR/outrider-ids"
	fi
}

# e2e_setup: in setup(); skips when e2e_require found the machine unfit.
e2e_setup()
{
	if [ -n "${OR_SKIP:-}" ]; then
		skip "$OR_SKIP"
	fi
}

# e2e_teardown: in teardown(); after a failed test, the agent's last words.
e2e_teardown()
{
	local f node
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -f "${OR_AGENT_LOG:-}" ]; then
		echo "--- last 40 lines of $OR_AGENT_LOG"
		tail -n 40 "$OR_AGENT_LOG"
	fi
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -d "${OR_STATE:-}/nodes" ]; then
		for f in "$OR_STATE/nodes"/*; do
			[ -f "$f" ] || continue
			node=${f##*/}
			f=$(on_node "$node" sh -c 'echo "$OR_AGENT_LOG"')
			[ -f "$f" ] || continue
			echo "--- last 40 lines of $f ($node)"
			tail -n 40 "$f"
		done
	fi
}

e2e_services()
{
	cluster_services <<EOF
services:
  - name: echo
    namespace: default
    vip: $E2E_VIP
    mode: proxy
    ports:
      - {port: 80, target_port: 8080, protocol: tcp}
      - {port: 9000, target_port: 9000, protocol: tcp}
    selector: {app: echo}
  - name: echo6
    namespace: default
    vip: $E2E_VIP6
    mode: proxy
    ports:
      - {port: 80, target_port: 8080, protocol: tcp}
    selector: {app: echo}
  - name: echo-k
    namespace: default
    vip: $E2E_VIP_K
    mode: kernel
    ports:
      - {port: 80, target_port: 8080, protocol: tcp}
    selector: {app: echo}
EOF
}

# The pods and backends, without the agent.
e2e_pods_up()
{
	local i
	cluster_init || return 1
	pod_add client 10.244.1.2 fd00:244:1::2 || return 1
	pod_label client app=client outrider.io/mode=enabled
	pod_add client2 10.244.1.3 fd00:244:1::3 || return 1
	pod_label client2 app=client2
	for i in 1 2 3; do
		pod_add "echo-$i" "10.244.1.1$i" "fd00:244:1::1$i" || return 1
		pod_label "echo-$i" app=echo
		upstream_start "echo-$i" "echo-$i" --http 8080 --echo 9000 || return 1
	done
	e2e_services
	cluster_config
}

# agent_wait_ready [TIMEOUT_MS] POD...: the pods are in or_pods and their
# in-pod listener is up.
agent_wait_ready()
{
	local timeout=$1 pod deadline
	shift
	deadline=$(($(_or_now_ms) + timeout))
	for pod in "$@"; do
		until _or_pod_ready "$pod" >/dev/null 2>&1; do
			if ! agent_running; then
				echo "the agent exited before pod $pod was ready" >&2
				return 1
			fi
			if [ "$(_or_now_ms)" -ge "$deadline" ]; then
				echo "agent not ready for pod $pod within $timeout ms" >&2
				return 1
			fi
			sleep 0.05
		done
	done
}

# ctl_has_pod POD: outriderctl lists the pod (as "namespace/name" or "name").
ctl_has_pod()
{
	local ns
	ns=$(cat "$OR_STATE/podns/$1")
	ctl --json pods | jq -e --arg n "$1" --arg ns "$ns" \
		'any(.[]; .name == $n or .name == $ns + "/" + $n)' >/dev/null
}

_or_pod_ready()
{
	agent_running && ctl_has_pod "$1" && pod_listening "$1" 15001
}

# The whole e2e topology with a running agent; on failure shows why and
# cleans up (teardown_file cleans again, harmlessly).
e2e_up()
{
	if [ -n "${OR_SKIP:-}" ]; then
		return 0
	fi
	if e2e_pods_up && agent_start "$OR_CONFIG" && agent_wait_ready 5000 client; then
		return 0
	fi
	echo "--- e2e_up failed; agent log:" >&2
	tail -n 60 "$OR_AGENT_LOG" >&2 2>/dev/null
	echo "--- config:" >&2
	cat "$OR_CONFIG" >&2 2>/dev/null
	cluster_cleanup
	return 1
}

# ---- the resilience topology (issue 3) ------------------------------------
#
# client (enrolled, 10.244.1.2) and backends be-1..be-N (10.244.1.1N, label
# app=be), each running the fault-injecting upstream on fixed ports, so a
# service picks the behaviour of an endpoint by its port:
#   8080 http, healthy          8081 http, answers 503
#   8082 http, refused          8083 http, answers after 3000 ms
#   9000 echo                   9002 echo, refused
#   7000 control (UPSTREAM_CONTROL_PORT): upstream_fault / upstream_count
# Each file writes its services (cluster_services) and calls
# resilience_agent_up.

# fault_backend_start POD [UPSTREAM ARGS...]: extra --fault PORT=SPEC given
# here replace the defaults above (the last --fault for a port wins).
fault_backend_start()
{
	local pod=$1
	shift
	upstream_start "$pod" "$pod" --control "$UPSTREAM_CONTROL_PORT" \
		--http 8080 --http 8081 --http 8082 --http 8083 --echo 9000 --echo 9002 \
		--fault 8081=status=503 --fault 8082=refuse --fault 8083=delay=3000 \
		--fault 9002=refuse "$@"
}

# resilience_pods N: cluster_init, the client and be-1..be-N, backends started.
resilience_pods()
{
	local n=$1 i
	cluster_init || return 1
	pod_add client 10.244.1.2 || return 1
	pod_label client app=client outrider.io/mode=enabled
	for ((i = 1; i <= n; i++)); do
		pod_add "be-$i" "10.244.1.1$i" || return 1
		pod_label "be-$i" app=be
		fault_backend_start "be-$i" || return 1
	done
}

# resilience_agent_up: renders the config, starts the agent and waits until
# the client is captured and (when the agent has one) /healthz/ready says
# 200. On failure: the agent's log and config on stderr, and cleanup.
resilience_agent_up()
{
	if cluster_config && agent_start "$OR_CONFIG" && agent_wait_ready 5000 client &&
		{ ! _or_config_has_admin || wait_until 3000 ready_get /healthz/ready -f; }; then
		return 0
	fi
	echo "--- resilience_agent_up failed; agent log:" >&2
	tail -n 60 "$OR_AGENT_LOG" >&2 2>/dev/null
	echo "--- config:" >&2
	cat "$OR_CONFIG" >&2 2>/dev/null
	cluster_cleanup
	return 1
}
