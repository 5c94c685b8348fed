#!/usr/bin/env bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# outrider in one go, on this machine (root): a small "cluster" of
# network-namespace pods, the agent, traffic from an enrolled pod to a
# proxy-mode and a kernel-mode service, what the pinned maps hold, and then
# everything removed again (on every exit path). Run by `make demo`.
#
# The pods can reach only each other (no default route), so nothing of the
# demo's traffic leaves the machine. OR_KEEP_STATE=1 keeps the generated
# config and the logs (their directory is printed at the end).
set -euo pipefail

cd "$(dirname "$0")/../.."
# shellcheck source=../../tests/e2e/lib/cluster.bash
source tests/e2e/lib/cluster.bash

VIP=10.96.0.10
VIP_K=10.96.0.20
VIP_WEB=10.96.0.30
step_no=0

bold='' plain=''
if [ -t 1 ]; then
	bold=$'\033[1m' plain=$'\033[0m'
fi

step()
{
	step_no=$((step_no + 1))
	printf '\n%s[%d] %s%s\n' "$bold" "$step_no" "$*" "$plain"
}

die()
{
	echo "demo: $*" >&2
	if [ -f "${OR_AGENT_LOG:-}" ]; then
		echo "--- agent log (last 20 lines)" >&2
		tail -n 20 "$OR_AGENT_LOG" >&2
	fi
	exit 1
}

# Shows a command, then runs it.
show()
{
	printf '$ %s\n' "$*"
	"$@"
}

cleanup()
{
	local rc=$?
	trap - EXIT
	step "Cleaning up: agent, pods, cgroups, pins"
	cluster_cleanup
	local left=""
	left+=$(ip netns list | awk '{ print $1 }' | grep "^ort${OR_ID:-none}-" || true)
	[ ! -e "${OR_PIN:-/nonexistent}" ] || left+=" $OR_PIN"
	[ ! -e "${OR_CG:-/nonexistent}" ] || left+=" $OR_CG"
	if [ -n "$left" ]; then
		echo "left behind: $left" >&2
		rc=1
	else
		echo "nothing left behind"
	fi
	exit "$rc"
}

if ! why=$(cluster_prereqs); then
	die "cannot run here: $why"
fi
for bin in outriderd outriderctl upstream orclient; do
	[ -x "$OR_BUILD/$bin" ] || die "$OR_BUILD/$bin is missing: run make all fixtures"
done

trap cleanup EXIT
trap 'exit 130' INT TERM

step "Creating a node bridge and five pods (network namespaces with their own cgroups)"
cluster_init
pod_add client 10.244.1.2 fd00:244:1::2
pod_add bystander 10.244.1.3
pod_add echo-1 10.244.1.11 fd00:244:1::11
pod_add echo-2 10.244.1.12 fd00:244:1::12
pod_add web-1 10.244.1.21
printf '  %-10s %-12s %s\n' POD IP ROLE \
	client 10.244.1.2 "enrolled (outrider.io/mode=enabled)" \
	bystander 10.244.1.3 "not labelled" \
	echo-1 10.244.1.11 "backend: upstream --http 8080" \
	echo-2 10.244.1.12 "backend: upstream --http 8080" \
	web-1 10.244.1.21 "enrolled backend of an HTTP service with strict mTLS"
echo "  netns ${OR_NS_PREFIX}-*, cgroups $OR_CG/*, no default route"

step "Starting the echo backends"
upstream_start echo-1 echo-1 --http 8080 --echo 9000
upstream_start echo-2 echo-2 --http 8080 --echo 9000
upstream_start web-1 web-1 --http 8080
show pod_exec client curl -sS --max-time 3 http://10.244.1.11:8080/

step "Writing the agent's config (from deploy/local/demo.yaml.in)"
sed -e "s|@NODE@|$OR_NODE_NAME|g" -e "s|@PIN_DIR@|$OR_PIN|g" -e "s|@CGROUP_ROOT@|$CG2|g" \
	-e "s|@NETNS@|/run/netns/$OR_NS_PREFIX|g" -e "s|@CGROUP@|$OR_CG|g" \
	-e "s|@STATE_DIR@|$OR_STATE/agent-state|g" \
	deploy/local/demo.yaml.in >"$OR_CONFIG"
echo "  $OR_CONFIG; its services:"
sed -n '/^services:/,$p' "$OR_CONFIG" | grep -v '^ *#' | sed 's/^/    /'
show "$OR_BUILD/outriderd" --config "$OR_CONFIG" --check

step "Starting outriderd (log: $OR_AGENT_LOG)"
agent_start "$OR_CONFIG"
agent_wait_ready 5000 client || die "the agent did not become ready"
grep -E 'msg="?(ready|pod captured)' "$OR_AGENT_LOG" | sed 's/^/  /' || true

step "Proxy mode: client -> http://$VIP/ six times (through the agent, round robin)"
for i in 1 2 3 4 5 6; do
	out=$(pod_exec client curl -sS --max-time 3 "http://$VIP/") || die "curl $VIP failed"
	echo "  request $i: $out"
done
echo "  (peer is the client pod's own address: the agent connects from inside its netns)"

step "The application sees the VIP as its peer (getpeername), not the agent"
show pod_exec client orclient "$VIP" 80

step "Kernel mode: client -> http://$VIP_K/ six times (connect4 picks the backend)"
for i in 1 2 3 4 5 6; do
	out=$(pod_exec client curl -sS --max-time 3 -w ' client_port=%{local_port}' "http://$VIP_K/") ||
		die "curl $VIP_K failed"
	echo "  request $i: ${out//$'\n'/}"
done
echo "  (the backend's peer port is the client's own port: no proxy in between)"

step "mTLS: client -> http://$VIP_WEB/ (HTTP service; web-1 is in the mesh, so the agent tunnels)"
for i in 1 2 3; do
	out=$(pod_exec client curl -sS --max-time 3 "http://$VIP_WEB/") || die "curl $VIP_WEB failed"
	echo "  request $i: $out"
done
echo "  (TLS 1.3 to web-1's :15008 under the client's SPIFFE identity; the app is reached"
echo "   over loopback inside web-1, hence peer=127.0.0.1; retries would show attempt=2)"
show ctl certs
sleep 1.1 # the agent copies its TLS counters into or_tls once a second
show ctl tls

step "Strict mTLS: plaintext from outside the mesh to web-1:8080 is refused in the kernel"
show pod_exec bystander curl -sS --max-time 3 http://10.244.1.21:8080/ || true
show ctl inbound

step "The unlabelled pod is not captured: it has no route to the VIP"
show pod_exec bystander orclient "$VIP" 80 || true
echo "$ bpftool cgroup show $(pod_cgroup bystander)   # nothing attached"
bpftool cgroup show "$(pod_cgroup bystander)"
echo "$ bpftool cgroup show $(pod_cgroup client)"
bpftool cgroup show "$(pod_cgroup client)"

step "What outriderctl reads from the pinned maps"
for what in services backends pods stats; do
	show ctl "$what"
	echo
done

step "What bpftool shows (BTF: fields by name)"
for map in or_services:30 or_backends:20; do
	echo "$ bpftool map dump pinned $OR_PIN/${map%:*} | head -n ${map#*:}"
	dump=$(bpftool map dump pinned "$OR_PIN/${map%:*}") || die "bpftool failed"
	head -n "${map#*:}" <<<"$dump"
done

step "Stopping the agent (SIGTERM): it drains and leaves its pins (the pods stay captured, fail-closed)"
agent_stop || die "the agent did not stop within 5 s"
echo "  exit status $OR_AGENT_STATUS; pins kept: $(find "$OR_PIN" -mindepth 1 2>/dev/null | wc -l)"
show ctl stats
step "Removing outrider from the node: outriderctl uninstall"
show ctl uninstall
echo "  pins left: $(find "$OR_PIN" -mindepth 1 2>/dev/null | wc -l)"
