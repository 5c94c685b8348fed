#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# SIGTERM and SIGINT stop the agent cleanly (issue 7): it drains and exits 0,
# leaving its pins so the kernel keeps capturing (each pod's on_agent_down
# applies: fail-closed here, so connects are refused at once). `outriderctl
# uninstall` is what removes everything. Each test starts its own agent, so
# that it can see the exit status.

load lib/cluster

setup_file()
{
	e2e_require || return 1
	[ -n "${OR_SKIP:-}" ] && return 0
	e2e_pods_up || { cluster_cleanup; return 1; }
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; agent_stop >/dev/null 2>&1 || true; }

# Nothing of the agent is left in the kernel or in the pod.
assert_nothing_left()
{
	local left
	left=$(find "$OR_PIN" -mindepth 1 2>/dev/null || true)
	[ -z "$left" ] || { echo "left in $OR_PIN:"; echo "$left"; return 1; }
	left=$(bpftool cgroup show "$(pod_cgroup client)")
	[ -z "$left" ] || { echo "still attached to client: $left"; return 1; }
	if pod_listening client 15001; then
		echo "client still has a listener on 15001"
		return 1
	fi
	# Not captured any more: the VIP is unroutable from the pod.
	run pod_exec client orclient "$E2E_VIP" 80
	echo "$output"
	[ "$status" -eq 2 ]
}

start_and_check()
{
	agent_start "$OR_CONFIG"
	agent_wait_ready 5000 client
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/"
	echo "$output"
	[ "$status" -eq 0 ]
}

# Stopped, but the pins stay: the client is still captured, and refused at once.
assert_pins_kept()
{
	[ -e "$OR_PIN/or_services" ]
	[ -n "$(bpftool cgroup show "$(pod_cgroup client)")" ]
	[ "$(ctl --json stats | jq -r '.settings.stopped')" = true ]
	run pod_exec client orclient "$E2E_VIP" 80
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *'"errno":111'* ]]
}

@test "SIGTERM: the agent exits 0 within 5 s, the pods stay captured (fail-closed)" {
	start_and_check
	agent_stop TERM
	echo "exit status $OR_AGENT_STATUS"
	[ "$OR_AGENT_STATUS" -eq 0 ]
	assert_pins_kept
}

@test "SIGINT: the agent exits 0 within 5 s, the pods stay captured (fail-closed)" {
	start_and_check
	agent_stop INT
	echo "exit status $OR_AGENT_STATUS"
	[ "$OR_AGENT_STATUS" -eq 0 ]
	assert_pins_kept
}

@test "outriderctl uninstall: refused while the agent runs; after it, nothing is left" {
	start_and_check
	run ctl uninstall
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"still runs"* ]]
	agent_stop TERM
	[ "$OR_AGENT_STATUS" -eq 0 ]
	run ctl uninstall
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"removed 6 link pins"* ]]
	assert_nothing_left
}

@test "a new agent after a clean stop captures again" {
	start_and_check
	agent_stop TERM
	[ "$OR_AGENT_STATUS" -eq 0 ]
	start_and_check
	agent_stop TERM
	[ "$OR_AGENT_STATUS" -eq 0 ]
}
