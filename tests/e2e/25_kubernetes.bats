#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# The agent with `kubernetes:` as its source: it lists and watches the
# stand-in API server (tests/fixtures/kube_apiserver.py, over HTTPS with a
# token), finds each labelled pod's cgroup in the kubelet's layouts (systemd
# and cgroupfs, real directories holding real processes in real netns pods)
# and captures it; services and EndpointSlices become or_services and
# or_backends. The API is then restarted, fed garbage, made to expire
# resource versions and to drop its streams, and the agent must ride it out.

load lib/cluster
load lib/kube

setup_file() { e2e_require && k8s_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown()
{
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -f "${OR_STATE:-}/kube/apiserver.log" ]; then
		echo "--- last 20 lines of the API server's log"
		tail -n 20 "$OR_STATE/kube/apiserver.log"
	fi
	e2e_teardown
}

VIP=10.96.0.10
ECHO_PORT=8080
UID_CLIENT=00000000-0000-4000-8000-000000000001
UID_CLIENT2=00000000-0000-4000-8000-000000000002
UID_ECHO1=00000000-0000-4000-8000-000000000011
UID_ECHO2=00000000-0000-4000-8000-000000000012
UID_SHOP=00000000-0000-4000-8000-000000000021
UID_LATE=00000000-0000-4000-8000-000000000031
UID_LONG=00000000-0000-4000-8000-000000000041
ENETUNREACH=101

# Pods here live where the kubelet puts them, not in $OR_CG/NAME.
pod_cgroup()
{
	if [ -f "$OR_STATE/podcg/$1" ]; then
		cat "$OR_STATE/podcg/$1"
	else
		echo "$OR_CG/$1"
	fi
}

# The pod-level cgroup directory for UID in a driver's layout (Burstable).
kubepods_dir() # DRIVER UID
{
	case $1 in
	systemd) echo "$OR_CG/k8s/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${2//-/_}.slice" ;;
	cgroupfs) echo "$OR_CG/k8s/kubepods/burstable/pod$2" ;;
	esac
}

# k8s_pod_add NAME IP DRIVER UID: a netns pod whose processes run in a
# container cgroup under the pod's kubelet directory, with a pause process.
k8s_pod_add()
{
	local name=$1 ip=$2 driver=$3 uid=$4 dir
	dir="$(kubepods_dir "$driver" "$uid")/cri-containerd-${name}.scope"
	mkdir -p "$OR_STATE/podcg"
	echo "$dir" >"$OR_STATE/podcg/$name"
	pod_add "$name" "$ip" || return 1
	pod_spawn "$name" /dev/null sleep 100000 >/dev/null
}

# api_pod NAME NS UID [LABEL=VALUE ...]: the pod as the API shows it.
api_pod()
{
	local name=$1 ns=$2 uid=$3
	shift 3
	kube_pod "$name" "$ns" "$OR_NODE_NAME" "$(pod_ip "$name")" "$uid" "$@" | kube_apply >/dev/null
}

api_echo_slice() # ENDPOINT...
{
	kube_slice echo-x7k2p default echo "$ECHO_PORT" "$@" | kube_apply >/dev/null
}

k8s_config()
{
	kube_kubeconfig "$OR_STATE/kube/kubeconfig"
	cat >"$OR_CONFIG" <<EOF
# outrider test cluster $OR_ID: everything else comes from the API
node: $OR_NODE_NAME
pin_dir: $OR_PIN
cgroup_root: $OR_CG/k8s
state_dir: $OR_STATE/agent-state
admin_address: $OR_ADMIN_ADDR
ready_address: $OR_READY_ADDR
kubernetes:
  kubeconfig: $OR_STATE/kube/kubeconfig
EOF
}

k8s_up()
{
	[ -n "${OR_SKIP:-}" ] && return 0
	if cluster_init && kube_api_start &&
		k8s_pod_add client 10.244.1.2 systemd "$UID_CLIENT" &&
		k8s_pod_add client2 10.244.1.3 cgroupfs "$UID_CLIENT2" &&
		k8s_pod_add echo-1 10.244.1.11 systemd "$UID_ECHO1" &&
		k8s_pod_add echo-2 10.244.1.12 cgroupfs "$UID_ECHO2" &&
		upstream_start echo-1 echo-1 --http "$ECHO_PORT" &&
		upstream_start echo-2 echo-2 --http "$ECHO_PORT" &&
		kube_namespace default | kube_apply >/dev/null &&
		api_pod client default "$UID_CLIENT" app=client outrider.io/mode=enabled &&
		api_pod client2 default "$UID_CLIENT2" app=client2 &&
		api_pod echo-1 default "$UID_ECHO1" app=echo &&
		api_pod echo-2 default "$UID_ECHO2" app=echo &&
		kube_service echo default "$VIP" 80 "$ECHO_PORT" app=echo | kube_apply >/dev/null &&
		api_echo_slice "10.244.1.11:ready@$OR_NODE_NAME" "10.244.1.12:ready@$OR_NODE_NAME" &&
		k8s_config && agent_start "$OR_CONFIG" && agent_wait_ready 10000 client; then
		return 0
	fi
	echo "--- k8s_up failed; agent log:" >&2
	tail -n 60 "$OR_AGENT_LOG" >&2 2>/dev/null
	cluster_cleanup
	return 1
}

# captured POD: a request from POD to the service VIP is answered by a backend.
captured()
{
	pod_exec "$1" curl -sS --max-time 0.5 "http://$VIP/" | grep -q '^backend='
}

# released POD: no capture program on its cgroup, no listener, not in or_pods.
released()
{
	[ -z "$(bpftool cgroup show "$(kubepods_dir_of "$1")")" ] &&
		! pod_listening "$1" 15001 && ! ctl_has_pod "$1"
}

kubepods_dir_of() { dirname "$(pod_cgroup "$1")"; }

backends_of() # VIP PORT: "ip:port" of the service's backends, sorted, one line
{
	local id
	id=$(ctl --json services | jq -er --arg v "$1" --argjson p "$2" \
		'.[] | select(.vip == $v and .port == $p) | .svc_id') || return 1
	ctl --json backends | jq -c --argjson id "$id" \
		'[.[] | select(.svc_id == $id) | "\(.ip):\(.port)"] | sort'
}

backends_are() # VIP PORT WANT
{
	[ "$(backends_of "$1" "$2")" = "$3" ]
}

metric_above() # NAME VALUE: the metric (summed over kinds) is now above VALUE
{
	[ "$(metric "$1")" -gt "$2" ]
}

# api_away_then_change: the API fails the agent's next requests (500s)
# while a pod changes and the history is compacted, so the agent comes
# back with a resource version the API no longer has (410).
api_away_then_change() # POD-APPLY-ARGS...
{
	kube_ctl /garbage '{"target":"status","count":12}' >/dev/null &&
		kube_ctl /drop >/dev/null &&
		api_pod "$@" &&
		kube_ctl /compact >/dev/null
}

no_service() { ! has_service "$@"; }

has_service() # VIP PORT
{
	ctl --json services | jq -e --arg v "$1" --argjson p "$2" \
		'any(.[]; .vip == $v and .port == $p)' >/dev/null
}

@test "the agent lists the API and turns it into maps: or_services, or_backends, or_pods" {
	run ready_get /healthz/ready -o /dev/null -w '%{http_code}'
	[ "$output" = 200 ]
	run backends_of "$VIP" 80
	echo "$output"
	[ "$output" = '["10.244.1.11:8080","10.244.1.12:8080"]' ]
	ctl --json services | jq -e --arg v "$VIP" \
		'any(.[]; .vip == $v and .port == 80 and .mode == "proxy" and .name == "default/echo")'
	ctl_has_pod client
	! ctl_has_pod client2
	# The counters say what was listed.
	[ "$(metric outrider_kubernetes_lists_total kind=pods)" -ge 1 ]
	[ "$(metric outrider_kubernetes_objects kind=pods)" -eq 4 ]
	[ "$(metric outrider_kubernetes_objects kind=endpointslices)" -eq 1 ]
}

@test "a labelled pod in the systemd layout is captured; its requests reach both backends" {
	local out seen=""
	# The programs sit on the pod-level directory the kubelet made.
	bpftool cgroup show "$(kubepods_dir systemd "$UID_CLIENT")" | grep -q connect4
	for _ in 1 2 3 4 5 6; do
		out=$(pod_exec client curl -sS --max-time 2 "http://$VIP/")
		seen="$seen ${out%%$'\n'*}"
	done
	echo "$seen"
	[[ "$seen" == *backend=echo-1* ]]
	[[ "$seen" == *backend=echo-2* ]]
}

@test "an unlabelled pod is not captured: the VIP has no route" {
	run pod_exec client2 orclient "$VIP" 80
	echo "$output"
	[ "$status" -eq 2 ]
	[ "$(jq -r .errno <<<"$output")" = "$ENETUNREACH" ]
	released client2
}

@test "label a pod through the API (cgroupfs layout): captured within 1 s; unlabel: released within 1 s" {
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 1000 captured client2
	bpftool cgroup show "$(kubepods_dir cgroupfs "$UID_CLIENT2")" | grep -q connect4
	ctl_has_pod client2

	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 1000 released client2
	run pod_exec client2 orclient "$VIP" 80
	[ "$(jq -r .errno <<<"$output")" = "$ENETUNREACH" ]
}

@test "opt in by namespace label, opt out by pod label" {
	k8s_pod_add shopper 10.244.1.21 systemd "$UID_SHOP"
	pod_namespace shopper shop
	kube_namespace shop | kube_apply >/dev/null
	api_pod shopper shop "$UID_SHOP" app=shopper
	sleep 0.3
	released shopper

	kube_namespace shop outrider.io/mode=enabled | kube_apply >/dev/null
	wait_until 1000 captured shopper
	ctl_has_pod shopper

	api_pod shopper shop "$UID_SHOP" app=shopper outrider.io/mode=disabled
	wait_until 1000 released shopper
}

@test "an endpoint that stops being ready leaves or_backends on that event, and comes back" {
	api_echo_slice "10.244.1.11:ready@$OR_NODE_NAME" "10.244.1.12:notready@$OR_NODE_NAME"
	wait_until 1000 backends_are "$VIP" 80 '["10.244.1.11:8080"]'
	for _ in 1 2 3 4; do
		run pod_exec client curl -sS --max-time 2 "http://$VIP/"
		[[ "$output" == backend=echo-1* ]]
	done

	api_echo_slice "10.244.1.11:ready@$OR_NODE_NAME" "10.244.1.12:ready@$OR_NODE_NAME"
	wait_until 1000 backends_are "$VIP" 80 '["10.244.1.11:8080","10.244.1.12:8080"]'
}

@test "service changes show in or_services: a new service, a port, a deletion" {
	kube_service web default 10.96.0.20 8000 "$ECHO_PORT" app=echo | kube_apply >/dev/null
	kube_slice web-m2n4q default web "$ECHO_PORT" "10.244.1.12:ready@$OR_NODE_NAME" |
		kube_apply >/dev/null
	wait_until 1000 backends_are 10.96.0.20 8000 '["10.244.1.12:8080"]'
	run pod_exec client curl -sS --max-time 2 "http://10.96.0.20:8000/"
	echo "$output"
	[[ "$output" == backend=echo-2* ]]

	kube_delete Service default web
	wait_until 1000 no_service 10.96.0.20 8000
	has_service "$VIP" 80
}

@test "a deleted pod is unenrolled and cleaned up" {
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 1000 captured client2
	kube_delete Pod default client2
	wait_until 1000 released client2
	[ ! -e "$OR_PIN/links/default_client2" ]
}

@test "a labelled pod whose cgroup is not there yet is retried, then captured" {
	pod_add late 10.244.1.31
	mkdir -p "$OR_STATE/podcg"
	echo "$(kubepods_dir cgroupfs "$UID_LATE")/cri-containerd-late.scope" >"$OR_STATE/podcg/late"
	rmdir "$OR_CG/late" 2>/dev/null || true
	api_pod late default "$UID_LATE" outrider.io/mode=enabled
	sleep 0.5
	! ctl_has_pod late
	[ "$(ready_get /healthz/ready -o /dev/null -w '%{http_code}')" = 200 ]

	mkdir -p "$(pod_cgroup late)"
	pod_spawn late /dev/null sleep 100000 >/dev/null
	wait_until 2000 captured late
}

listener_inode() # POD: the inode of its 15001 listener (changes if re-enrolled)
{
	pod_exec "$1" ss -Hltne 'sport = :15001' | grep -o 'ino:[0-9]*' | head -n1
}

@test "a pod whose namespace/name is longer than the maps' name field is captured once, not churned" {
	local long=checkout-with-a-rather-long-deployment-name-7d9c6b5f4-x2x8q ino
	k8s_pod_add "$long" 10.244.1.41 systemd "$UID_LONG"
	api_pod "$long" default "$UID_LONG" outrider.io/mode=enabled
	wait_until 2000 captured "$long"
	ino=$(listener_inode "$long")
	[ -n "$ino" ]
	# Other changes make the agent apply again; the pod must stay as it is.
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 1000 captured client2
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 1000 released client2
	[ "$(listener_inode "$long")" = "$ino" ]
	kube_delete Pod default "$long"
	wait_until 1000 bash -c "! ip netns exec $(pod_netns "$long") ss -Hltn 'sport = :15001' | grep -q ."
}

@test "dropped watch streams: the agent reconnects and misses no change" {
	local before
	before=$(metric outrider_kubernetes_failures_total)
	kube_ctl /drop >/dev/null
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 3000 captured client2
	[ "$(metric outrider_kubernetes_failures_total)" -gt "$before" ]
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
}

@test "garbage on a watch stream: counted, the watch restarts, later changes apply" {
	local before
	before=$(metric outrider_kubernetes_malformed_total)
	kube_ctl /garbage '{"target":"watch"}' >/dev/null
	wait_until 2000 metric_above outrider_kubernetes_malformed_total "$before"
	agent_running
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 3000 captured client2
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
}

@test "410 Gone: the agent relists, and a change made while it was away is applied" {
	local before
	before=$(metric outrider_kubernetes_relists_total)
	api_away_then_change client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 10000 captured client2
	wait_until 3000 metric_above outrider_kubernetes_relists_total "$before"
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
}

@test "garbage lists and 500s: retried with backoff, the state in force is kept meanwhile" {
	local before
	before=$(metric outrider_kubernetes_malformed_total)
	kube_ctl /garbage '{"target":"list","count":4}' >/dev/null
	api_away_then_change client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	# While the requests fail, the pods and services stay as they were.
	captured client
	backends_are "$VIP" 80 '["10.244.1.11:8080","10.244.1.12:8080"]'
	wait_until 15000 metric_above outrider_kubernetes_malformed_total "$before"
	wait_until 15000 captured client2
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
}

@test "the API server restarts: capture goes on while it is away, changes apply after" {
	kube_api_stop
	sleep 1
	captured client
	[ "$(ready_get /healthz/ready -o /dev/null -w '%{http_code}')" = 200 ]
	kube_api_restart
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 10000 captured client2
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
	# What it did, in its own words.
	grep -q 'msg="kubernetes: watch failed; reconnecting"' "$OR_AGENT_LOG"
	grep -q 'msg="kubernetes: relisted"' "$OR_AGENT_LOG"
}

@test "the API stops accepting our token: 401 is logged and counted, and retried until it works" {
	local d="$OR_STATE/kube" good before
	good=$(<"$d/token")
	before=$(metric outrider_kubernetes_failures_total)
	echo not-the-agents-token >"$d/token"
	kube_api_restart
	wait_until 5000 grep -q 'error="HTTP 401: Unauthorized"' "$OR_AGENT_LOG"
	[ "$(metric outrider_kubernetes_failures_total)" -gt "$before" ]
	agent_running
	captured client # the last state stays in force

	echo "$good" >"$d/token"
	kube_api_restart
	api_pod client2 default "$UID_CLIENT2" app=client2 outrider.io/mode=enabled
	wait_until 35000 captured client2
	api_pod client2 default "$UID_CLIENT2" app=client2
	wait_until 3000 released client2
}
