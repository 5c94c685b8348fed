#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# A bad config is named by file and line, and never replaces the config in
# force: neither on reload nor in part.

load lib/cluster

setup_file() { e2e_require && e2e_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

# line_of FILE FIXED-STRING: the first line number holding it.
line_of() { grep -nF -- "$2" "$1" | head -n1 | cut -d: -f1; }

@test "--check accepts the cluster's config" {
	run "$OR_BUILD/outriderd" --config "$OR_CONFIG" --check
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "--check: a bad VIP is named FILE:LINE" {
	local bad="$OR_STATE/bad-vip.yaml" line
	sed "s/vip: $E2E_VIP_K\$/vip: 10.96.0.300/" "$OR_CONFIG" >"$bad"
	line=$(line_of "$bad" "vip: 10.96.0.300")
	[ -n "$line" ]
	run "$OR_BUILD/outriderd" --config "$bad" --check
	echo "$output"
	[ "$status" -eq 1 ]
	grep -qF "$bad:$line:" <<<"$output"
}

@test "--check: an unknown mode is named FILE:LINE" {
	local bad="$OR_STATE/bad-mode.yaml" line
	sed "0,/mode: kernel/s//mode: warp/" "$OR_CONFIG" >"$bad"
	line=$(line_of "$bad" "mode: warp")
	[ -n "$line" ]
	run "$OR_BUILD/outriderd" --config "$bad" --check
	echo "$output"
	[ "$status" -eq 1 ]
	grep -qF "$bad:$line:" <<<"$output"
}

@test "--check: a YAML syntax error is named FILE:LINE" {
	local bad="$OR_STATE/bad-syntax.yaml"
	sed '0,/selector: {app: echo}/s//selector: {app: echo/' "$OR_CONFIG" >"$bad"
	run "$OR_BUILD/outriderd" --config "$bad" --check
	echo "$output"
	[ "$status" -eq 1 ]
	grep -qE "$bad:[0-9]+:" <<<"$output"
}

@test "bad config on reload: the log names the line; traffic flows on the old config" {
	local good="$OR_STATE/good.yaml" line
	cp "$OR_CONFIG" "$good"
	# Two changes: the client loses its label (valid on its own) and a VIP
	# further down is broken. Applying the file in part would release client.
	sed -e "0,/labels: {app: client, outrider.io\/mode: enabled}/s//labels: {app: client}/" \
		-e "s/vip: $E2E_VIP_K\$/vip: 10.96.0.300/" "$good" >"$OR_CONFIG.tmp"
	mv -f "$OR_CONFIG.tmp" "$OR_CONFIG"
	line=$(line_of "$OR_CONFIG" "vip: 10.96.0.300")
	grep -q 'labels: {app: client}$' "$OR_CONFIG"

	agent_reload
	if ! wait_until 2000 grep -qF "$OR_CONFIG:$line" "$OR_AGENT_LOG"; then
		echo "no '$OR_CONFIG:$line' in the agent log"
		return 1
	fi
	agent_running

	run pod_exec client sh -c "for i in 1 2 3; do curl -sS --max-time 3 http://$E2E_VIP/ || exit 1; done"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^backend=' <<<"$output")" -eq 3 ]
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP_K/"
	echo "$output"
	[ "$status" -eq 0 ]
	ctl_has_pod client
	ctl --json services | jq -e --arg v "$E2E_VIP_K" 'any(.[]; .vip == $v)'

	# The good file again: still serving.
	cp "$good" "$OR_CONFIG"
	agent_reload
	sleep 0.2
	agent_running
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/"
	[ "$status" -eq 0 ]
}
