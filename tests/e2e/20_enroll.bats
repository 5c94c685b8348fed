#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Enrollment by label: only labelled pods are captured; relabelling at run
# time (edit the file + SIGHUP) starts and stops capture within 1 s.

load lib/cluster

setup_file() { e2e_require && e2e_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

ENETUNREACH=101

# captured POD: a curl to the VIP from POD is answered.
captured()
{
	pod_exec "$1" curl -sS --max-time 0.5 "http://$E2E_VIP/" | grep -q '^backend='
}

# released POD: nothing of outrider is left for POD.
released()
{
	! pod_exec "$1" curl -sS --max-time 0.5 "http://$E2E_VIP/" &&
		[ -z "$(bpftool cgroup show "$(pod_cgroup "$1")")" ] &&
		! pod_listening "$1" 15001 &&
		! ctl_has_pod "$1"
}

# Shows each part of released() for a failure message.
explain_released()
{
	echo "curl: $(pod_exec "$1" curl -sS --max-time 0.5 "http://$E2E_VIP/" 2>&1)"
	echo "bpftool cgroup show: $(bpftool cgroup show "$(pod_cgroup "$1")" 2>&1)"
	echo "listeners on 15001: $(pod_exec "$1" ss -Hltn 'sport = :15001')"
	echo "outriderctl pods: $(ctl --json pods 2>&1)"
}

@test "unlabelled pod: connect to the VIP is not captured and fails (no route)" {
	run pod_exec client2 orclient "$E2E_VIP" 80
	echo "$output"
	[ "$status" -eq 2 ]
	[ "$(jq -r .errno <<<"$output")" = "$ENETUNREACH" ]
	run pod_exec client2 curl -sS --max-time 3 "http://$E2E_VIP/"
	echo "$output"
	[ "$status" -ne 0 ]
}

@test "unlabelled pod: bpftool cgroup show lists nothing on its cgroup" {
	run bpftool cgroup show "$(pod_cgroup client2)"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "unlabelled pod: not in outriderctl pods, no in-pod listener" {
	run ctl --json pods
	echo "$output"
	[ "$status" -eq 0 ]
	if ctl_has_pod client2; then
		echo "client2 is listed"
		return 1
	fi
	if pod_listening client2 15001; then
		echo "client2 has a listener on 15001"
		return 1
	fi
}

@test "enrolled pod: bpftool cgroup show lists connect, getpeername and sockops" {
	run bpftool cgroup show "$(pod_cgroup client)"
	echo "$output"
	[ "$status" -eq 0 ]
	# bpftool names attach types "connect4" or, in older versions,
	# "cgroup_inet4_connect"; accept either spelling.
	local t
	for t in '(connect4|inet4_connect)' '(connect6|inet6_connect)' \
		'(getpeername4|inet4_getpeername)' '(getpeername6|inet6_getpeername)' 'sock_ops'; do
		grep -qE "(^|[ _])$t( |$)" <<<"$output" || { echo "missing $t"; return 1; }
	done
}

@test "relabel: adding the label + SIGHUP starts capture within 1 s" {
	pod_label client2 app=client2 outrider.io/mode=enabled
	cluster_config
	agent_reload
	if ! wait_until 1000 captured client2; then
		explain_released client2
		return 1
	fi
	run bpftool cgroup show "$(pod_cgroup client2)"
	echo "$output"
	[ -n "$output" ]
	run pod_exec client2 orclient "$E2E_VIP" 80
	echo "$output"
	[ "$(jq -r .peer <<<"$output")" = "$E2E_VIP:80" ]
}

@test "relabel: removing the label + SIGHUP stops capture within 1 s, nothing left" {
	pod_label client2 app=client2 outrider.io/mode=enabled
	cluster_config
	agent_reload
	wait_until 2000 captured client2

	pod_label client2 app=client2
	cluster_config
	agent_reload
	if ! wait_until 1000 released client2; then
		explain_released client2
		return 1
	fi
	# The enrolled client is untouched by its neighbour's change.
	captured client
}

@test "namespace label enrolls its pods; outrider.io/mode=disabled opts one out" {
	cluster_namespaces <<'YAML'
namespaces:
  - {name: shop, labels: {outrider.io/mode: enabled}}
YAML
	pod_namespace client2 shop
	pod_label client2 app=client2
	cluster_config
	agent_reload
	if ! wait_until 2000 captured client2; then
		explain_released client2
		return 1
	fi

	pod_label client2 app=client2 outrider.io/mode=disabled
	cluster_config
	agent_reload
	if ! wait_until 2000 released client2; then
		explain_released client2
		return 1
	fi

	# Back to the file's starting point.
	cluster_namespaces </dev/null
	pod_namespace client2 default
	pod_label client2 app=client2
	cluster_config
	agent_reload
	wait_until 2000 released client2
}
