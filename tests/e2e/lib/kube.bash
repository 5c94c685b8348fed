# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# A stand-in Kubernetes API server (tests/fixtures/kube_apiserver.py) for the
# agent's list+watch client. Sourced after lib/cluster.bash; everything it
# makes is under $OR_STATE/kube/ and its process is recorded with
# _or_record_pid, so cluster_cleanup ends and removes it.
#
#   kube_init                     OR_ID/OR_STATE without cluster_init's netns
#                                 and cgroup (tests that need no pods); after
#                                 cluster_init it only makes $OR_STATE/kube
#   kube_certs                    a throwaway CA and a server certificate for
#                                 127.0.0.1 (ca.crt, server.crt, server.key)
#                                 and a bearer token (token)
#   kube_api_start                the server on two free loopback ports (kept
#                                 in $OR_STATE/kube/ports); exports
#                                 KUBE_API_URL (https) and KUBE_CONTROL (http)
#   kube_api_stop / kube_api_restart   TERM (then KILL) / stop + start on the
#                                 same ports, same objects and rv counter
#   kube_kubeconfig FILE [TOKEN]  a kubeconfig for it; the CA as a path
#                                 relative to FILE's directory
#   kube_curl PATH [CURL ARGS...] GET PATH from the API (CA + token)
#   kube_apply < JSON             create or replace one object; prints it
#   kube_delete KIND NS NAME      delete one ("" or - as NS: cluster-scoped)
#   kube_ctl PATH [JSON]          POST to the control API; prints the answer
#   kube_stats                    GET /stats
# Objects, printed as kubectl would send them (pipe into kube_apply):
#   kube_pod NAME NS NODE IP UID [LABEL=VAL ...]
#   kube_namespace NAME [LABEL=VAL ...]
#   kube_service NAME NS CLUSTERIP PORT TARGETPORT [SELECTOR_KEY=VAL ...]
#   kube_slice NAME NS SERVICE PORT [IP[:ready|:notready|:terminating][@NODE] ...]

KUBE_PYTHON=${KUBE_PYTHON:-/usr/bin/python3}
KUBE_FIXTURE=${KUBE_FIXTURE:-$OR_ROOT/tests/fixtures/kube_apiserver.py}
KUBE_BOOKMARK_INTERVAL=${KUBE_BOOKMARK_INTERVAL:-1.0}

kube_dir() { echo "$OR_STATE/kube"; }

# kube_init: a run id and state dir for tests that need the API server but
# no pods (cluster_cleanup removes it all, as after cluster_init).
kube_init()
{
	if [ -z "${OR_STATE:-}" ]; then
		if [ -z "${OR_ID:-}" ]; then
			OR_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
		fi
		OR_STATE="${TMPDIR:-/tmp}/outrider-test-${OR_ID}"
		export OR_ROOT OR_BUILD OR_ID OR_STATE
		if [ -n "${OR_IDS_FILE:-}" ]; then
			echo "$OR_ID" >>"$OR_IDS_FILE"
		fi
		mkdir "$OR_STATE" || return 1
		: >"$OR_STATE/pids"
	fi
	mkdir -p "$OR_STATE/kube"
}

# kube_certs: CA (ca.crt/ca.key), server certificate for IP:127.0.0.1 and
# DNS:localhost (server.crt/server.key), all P-256 for a day, and a token.
kube_certs()
{
	local d
	kube_init || return 1
	d=$(kube_dir)
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 1 \
		-subj "/CN=outrider-test-kube-ca" -keyout "$d/ca.key" -out "$d/ca.crt" \
		-addext 'basicConstraints=critical,CA:TRUE' \
		-addext 'keyUsage=critical,keyCertSign,cRLSign' 2>"$d/openssl.err" &&
		printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
			'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' \
			'subjectAltName=IP:127.0.0.1,DNS:localhost' >"$d/server.ext" &&
		openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
			-out "$d/server.key" 2>>"$d/openssl.err" &&
		openssl req -new -key "$d/server.key" -subj "/CN=kube-apiserver" \
			-out "$d/server.csr" 2>>"$d/openssl.err" &&
		openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -days 1 \
			-sha256 -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
			-extfile "$d/server.ext" -out "$d/server.crt" 2>>"$d/openssl.err" ||
		{ cat "$d/openssl.err" >&2; return 1; }
	od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$d/token"
}

# A loopback port is taken: something listens there, or it is one of this
# run's agent addresses.
_kube_port_used()
{
	if declare -F _or_addr_used >/dev/null && [ -n "${OR_ADMIN_ADDR:-}" ]; then
		_or_addr_used "$1"
	else
		_or_port_busy "$1"
	fi
}

# Two adjacent free ports in 10000..19999 (below the kernel's ephemeral
# range, apart from the agents' 20000..39999), derived from the run id.
_kube_pick_ports()
{
	local port i
	port=$((10000 + (16#$OR_ID % 5000) * 2))
	for ((i = 0; i < 200; i++)); do
		if ! _kube_port_used "$port" && ! _kube_port_used $((port + 1)); then
			echo "$port $((port + 1))"
			return 0
		fi
		port=$((port + 2))
		[ "$port" -lt 20000 ] || port=10000
	done
	echo "kube: no two free loopback ports" >&2
	return 1
}

_kube_export_urls()
{
	local api control
	read -r api control <"$(kube_dir)/ports" || return 1
	KUBE_API_URL="https://127.0.0.1:$api"
	KUBE_CONTROL="http://127.0.0.1:$control"
	export KUBE_API_URL KUBE_CONTROL
}

_kube_healthy()
{
	[ "$(curl -sS --max-time 1 "$KUBE_CONTROL/healthz" 2>/dev/null)" = ok ]
}

# kube_api_start: starts the server (certificates first, if not made yet)
# and waits until its control port answers.
kube_api_start()
{
	local d pid
	kube_init || return 1
	d=$(kube_dir)
	if [ ! -f "$d/server.crt" ] || [ ! -f "$d/token" ]; then
		kube_certs || return 1
	fi
	if [ ! -f "$d/ports" ]; then
		_kube_pick_ports >"$d/ports" || { rm -f "$d/ports"; return 1; }
	fi
	_kube_export_urls || return 1
	"$KUBE_PYTHON" "$KUBE_FIXTURE" --listen "${KUBE_API_URL#https://}" \
		--control "${KUBE_CONTROL#http://}" --cert "$d/server.crt" --key "$d/server.key" \
		--token "$(<"$d/token")" --state "$d/state.json" \
		--bookmark-interval "$KUBE_BOOKMARK_INTERVAL" \
		</dev/null >>"$d/apiserver.log" 2>&1 3>&- &
	pid=$!
	_or_record_pid "$pid" "kube-apiserver"
	echo "$pid" >"$d/apiserver.pid"
	if ! wait_until 5000 _kube_healthy; then
		echo "kube_api_start: the API server did not come up:" >&2
		tail -n 30 "$d/apiserver.log" >&2
		kube_api_stop
		return 1
	fi
}

# kube_api_stop: SIGTERM (watches end with their last chunk), up to 5 s,
# then SIGKILL.
kube_api_stop()
{
	local pidfile pid i
	pidfile="$(kube_dir)/apiserver.pid"
	pid=$(cat "$pidfile" 2>/dev/null) || return 0
	[ -n "$pid" ] || return 0
	if _or_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			_or_alive "$pid" || break
			sleep 0.05
		done
		if _or_alive "$pid"; then
			echo "kube_api_stop: $pid still running 5 s after SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

# kube_api_restart: the same ports, objects and rv counter; no event
# history (watches resuming from before now get 410).
kube_api_restart()
{
	kube_api_stop && kube_api_start
}

# kube_kubeconfig FILE [TOKEN]: a kubeconfig for the server with its token
# (or TOKEN) inline and the CA as a relative path (ca.crt when FILE is in
# $OR_STATE/kube, else a copy kube-ca.crt beside FILE).
kube_kubeconfig()
{
	local file=$1 token=${2:-} d dir ca
	d=$(kube_dir)
	[ -n "$token" ] || token=$(<"$d/token")
	dir=$(cd "$(dirname "$file")" && pwd) || return 1
	if [ "$dir" = "$(cd "$d" && pwd)" ]; then
		ca=ca.crt
	else
		ca=kube-ca.crt
		cp -f "$d/ca.crt" "$dir/$ca" || return 1
	fi
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: $ca
    server: $KUBE_API_URL
  name: outrider-test
contexts:
- context:
    cluster: outrider-test
    namespace: default
    user: outrider-agent
  name: outrider-test
current-context: outrider-test
preferences: {}
users:
- name: outrider-agent
  user:
    token: $token
EOF
}

# kube_curl PATH [CURL ARGS...]: the body of a GET from the API server.
kube_curl()
{
	local path=$1 d
	shift
	d=$(kube_dir)
	curl -sS --max-time 5 --cacert "$d/ca.crt" -H "Authorization: Bearer $(<"$d/token")" \
		"$@" "$KUBE_API_URL$path"
}

# kube_ctl PATH [JSON]: POST JSON (default {}) to the control API; prints
# the answer, fails on an error status.
kube_ctl()
{
	curl -sS --max-time 5 --fail-with-body -H 'Content-Type: application/json' \
		--data-binary "${2:-{\}}" "$KUBE_CONTROL$1"
}

kube_stats()
{
	curl -sS --max-time 5 --fail-with-body "$KUBE_CONTROL/stats"
}

# kube_apply < JSON: one object; prints it as stored.
kube_apply()
{
	curl -sS --max-time 5 --fail-with-body -H 'Content-Type: application/json' \
		--data-binary @- "$KUBE_CONTROL/apply"
}

kube_delete()
{
	local ns=$2
	[ "$ns" != - ] || ns=
	kube_ctl /delete "$(jq -cn --arg k "$1" --arg ns "$ns" --arg n "$3" \
		'{kind: $k, namespace: $ns, name: $n}')"
}

# K=V arguments -> a JSON object.
_kube_kv()
{
	jq -cn '[$ARGS.positional[] | capture("^(?<key>[^=]+)=(?<value>.*)$")] | from_entries' \
		--args "$@"
}

# kube_pod NAME NS NODE IP UID [LABEL=VAL ...]: Running, Ready, on NODE.
# IP may be "V4,V6" (dual stack: podIPs both) or "" (Pending, no IP);
# UID "" lets the server choose.
kube_pod()
{
	local name=$1 ns=$2 node=$3 ip=$4 uid=$5
	shift 5
	jq -n --arg name "$name" --arg ns "$ns" --arg node "$node" --arg ip "$ip" \
		--arg uid "$uid" --argjson labels "$(_kube_kv "$@")" \
		--arg now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
	($ip | split(",") | map(select(. != ""))) as $ips |
	def cond($t): {type: $t, status: "True", lastProbeTime: null, lastTransitionTime: $now};
	{
		kind: "Pod", apiVersion: "v1",
		metadata: ({name: $name, namespace: $ns, labels: $labels}
			+ (if $uid != "" then {uid: $uid} else {} end)),
		spec: {
			containers: [{
				name: "app",
				image: "registry.example.com/outrider-test/app:1.0",
				ports: [{name: "http", containerPort: 8080, protocol: "TCP"}],
				resources: {limits: {memory: "128Mi"}, requests: {cpu: "50m", memory: "64Mi"}},
				terminationMessagePath: "/dev/termination-log",
				terminationMessagePolicy: "File",
				imagePullPolicy: "IfNotPresent"
			}],
			restartPolicy: "Always",
			terminationGracePeriodSeconds: 30,
			dnsPolicy: "ClusterFirst",
			serviceAccountName: $name,
			serviceAccount: $name,
			nodeName: $node,
			securityContext: {},
			schedulerName: "default-scheduler"
		},
		status: (if ($ips | length) > 0 then {
			phase: "Running",
			conditions: [cond("Initialized"), cond("Ready"), cond("ContainersReady"),
				cond("PodScheduled")],
			hostIP: "192.168.56.11",
			hostIPs: [{ip: "192.168.56.11"}],
			podIP: $ips[0],
			podIPs: [$ips[] | {ip: .}],
			startTime: $now,
			containerStatuses: [{
				name: "app", state: {running: {startedAt: $now}}, lastState: {},
				ready: true, restartCount: 0,
				image: "registry.example.com/outrider-test/app:1.0",
				imageID: "registry.example.com/outrider-test/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
				containerID: "containerd://0000000000000000000000000000000000000000000000000000000000000000",
				started: true
			}],
			qosClass: "Burstable"
		} else {
			phase: "Pending",
			conditions: [cond("PodScheduled")],
			qosClass: "Burstable"
		} end)
	}'
}

# kube_namespace NAME [LABEL=VAL ...]
kube_namespace()
{
	local name=$1
	shift
	jq -n --arg name "$name" --argjson labels "$(_kube_kv "$@")" '{
		kind: "Namespace", apiVersion: "v1",
		metadata: {name: $name, labels: $labels}
	}'
}

# kube_service NAME NS CLUSTERIP PORT TARGETPORT [SELECTOR_KEY=VAL ...]: one
# TCP port "http"; TARGETPORT a number or a container port's name.
kube_service()
{
	local name=$1 ns=$2 vip=$3 port=$4 target=$5
	shift 5
	jq -n --arg name "$name" --arg ns "$ns" --arg vip "$vip" --argjson port "$port" \
		--arg target "$target" --argjson selector "$(_kube_kv "$@")" '{
		kind: "Service", apiVersion: "v1",
		metadata: {name: $name, namespace: $ns},
		spec: {
			ports: [{name: "http", protocol: "TCP", port: $port,
				targetPort: ($target | tonumber? // $target)}],
			selector: $selector,
			clusterIP: $vip,
			type: "ClusterIP",
			sessionAffinity: "None"
		}
	}'
}

# kube_slice NAME NS SERVICE PORT [ENDPOINT...]: ENDPOINT is
# IP[:ready|:notready|:terminating][@NODE] (default ready, no node).
kube_slice()
{
	local name=$1 ns=$2 svc=$3 port=$4
	shift 4
	jq -n --arg name "$name" --arg ns "$ns" --arg svc "$svc" --argjson port "$port" '
	def endpoint:
		(split("@") | {a: .[0], node: (.[1] // "")}) as $s |
		($s.a | split(":") | {ip: .[0], state: (.[1] // "ready")}) as $e |
		{
			addresses: [$e.ip],
			conditions: {
				ready: ($e.state == "ready"),
				serving: ($e.state != "notready"),
				terminating: ($e.state == "terminating")
			}
		} + (if $s.node != "" then {nodeName: $s.node} else {} end);
	{
		kind: "EndpointSlice", apiVersion: "discovery.k8s.io/v1",
		metadata: {
			name: $name, generateName: ($svc + "-"), namespace: $ns,
			labels: {
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
				"kubernetes.io/service-name": $svc
			}
		},
		addressType: "IPv4",
		endpoints: [$ARGS.positional[] | endpoint],
		ports: [{name: "http", protocol: "TCP", port: $port}]
	}' --args "$@"
}
