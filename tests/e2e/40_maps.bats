#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# What operators read: pinned maps through bpftool (BTF field names) and
# outriderctl (tables and --json).

load lib/cluster

setup_file() { e2e_require && e2e_up; }
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown() { e2e_teardown; }

svc_id_of() # VIP PORT
{
	ctl --json services | jq -er --arg vip "$1" --argjson port "$2" \
		'.[] | select(.vip == $vip and .port == $port) | .svc_id'
}

@test "bpftool map dump pinned or_services prints fields by name" {
	run bpftool map dump pinned "$OR_PIN/or_services"
	echo "$output" | head -n 40
	[ "$status" -eq 0 ]
	local f
	for f in svc_id backend_count mode; do
		grep -q "\"$f\"" <<<"$output" || { echo "no field $f"; return 1; }
	done
}

@test "bpftool map dump pinned or_backends prints fields by name" {
	run bpftool map dump pinned "$OR_PIN/or_backends"
	echo "$output" | head -n 40
	[ "$status" -eq 0 ]
	local f
	for f in weight port; do
		grep -q "\"$f\"" <<<"$output" || { echo "no field $f"; return 1; }
	done
}

@test "outriderctl services --json: every VIP:port with its mode and backends" {
	run ctl --json services
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e 'type == "array" and length == 4' <<<"$output"
	jq -e --arg v "$E2E_VIP" 'any(.[]; .vip == $v and .port == 80 and .proto == "tcp"
		and .mode == "proxy" and .backend_count == 3 and .total_weight == 3
		and (.name | endswith("echo")))' <<<"$output"
	jq -e --arg v "$E2E_VIP" 'any(.[]; .vip == $v and .port == 9000 and .mode == "proxy"
		and .backend_count == 3)' <<<"$output"
	jq -e --arg v "$E2E_VIP6" 'any(.[]; .vip == $v and .port == 80 and .mode == "proxy"
		and .backend_count == 3)' <<<"$output"
	jq -e --arg v "$E2E_VIP_K" 'any(.[]; .vip == $v and .port == 80 and .mode == "kernel"
		and .backend_count == 3 and (.name | endswith("echo-k")))' <<<"$output"
}

@test "outriderctl backends --json: the selected pods on their target ports" {
	local id80 id9000 id6
	id80=$(svc_id_of "$E2E_VIP" 80)
	id9000=$(svc_id_of "$E2E_VIP" 9000)
	id6=$(svc_id_of "$E2E_VIP6" 80)
	run ctl --json backends
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(jq -c --argjson id "$id80" '[.[] | select(.svc_id == $id) | "\(.ip):\(.port)/\(.weight)"] | sort' <<<"$output")" = \
		'["10.244.1.11:8080/1","10.244.1.12:8080/1","10.244.1.13:8080/1"]' ]
	[ "$(jq -c --argjson id "$id9000" '[.[] | select(.svc_id == $id) | "\(.ip):\(.port)"] | sort' <<<"$output")" = \
		'["10.244.1.11:9000","10.244.1.12:9000","10.244.1.13:9000"]' ]
	[ "$(jq -c --argjson id "$id6" '[.[] | select(.svc_id == $id) | "\(.ip) \(.port)"] | sort' <<<"$output")" = \
		'["fd00:244:1::11 8080","fd00:244:1::12 8080","fd00:244:1::13 8080"]' ]
	jq -e --argjson id "$id80" '[.[] | select(.svc_id == $id) | .slot] | sort == [0, 1, 2]' <<<"$output"
}

@test "outriderctl pods --json: the enrolled client, not the unlabelled pod" {
	run ctl --json pods
	echo "$output"
	[ "$status" -eq 0 ]
	jq -e 'type == "array" and length == 1' <<<"$output"
	jq -e '.[0] | (.name == "client" or .name == "default/client") and .ip == "10.244.1.2"
		and .ip6 == "fd00:244:1::2" and (.netns_cookie | type == "number")' <<<"$output"
}

@test "outriderctl stats --json: every counter, and traffic moves them" {
	run pod_exec client orclient "$E2E_VIP" 80
	[ "$status" -eq 0 ]
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP_K/"
	[ "$status" -eq 0 ]
	run ctl --json stats
	echo "$output"
	[ "$status" -eq 0 ]
	local k
	for k in redirected kernel_balanced pass_not_service pass_not_tcp no_backend \
		flow_table_full origdst_published peer_restored; do
		jq -e --arg k "$k" '.[$k] | type == "number"' <<<"$output" >/dev/null ||
			{ echo "no counter $k"; return 1; }
	done
	jq -e '.redirected >= 1 and .origdst_published >= 1 and .peer_restored >= 1
		and .kernel_balanced >= 1' <<<"$output"
}

@test "outriderctl without --json prints tables for people" {
	local what
	for what in services backends pods stats; do
		run ctl "$what"
		echo "$output"
		[ "$status" -eq 0 ]
		[ -n "$output" ]
	done
	run ctl services
	grep -q "$E2E_VIP" <<<"$output"
}
