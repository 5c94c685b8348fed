#!/usr/bin/env bats
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# Map ABI versioning (issue 7): an agent that finds pinned maps of another
# layout migrates them when the layout only grew (same key, longer value,
# any size of table) and recreates them otherwise, saying which in its log.
# The pins here are made by hand with bpftool, in the layouts an older agent
# would have left:
#   or_stats     PERCPU_ARRAY of 12 slots (ABI 3) with counts  -> 32 slots, counts kept
#   or_breakers  value of 16 bytes (no ejection count) with an ejected endpoint
#                                                              -> 24 bytes, entry kept
#   or_services  value of 68 bytes (ours is 64: it shrank)     -> recreated, refilled
#   or_backends  another key size                              -> recreated, refilled

load lib/cluster

# An endpoint no service has: the agent leaves its breaker alone.
GONE_IP="10 244 1 99"
GONE_PORT="0x28 0x23" # 9000, host byte order

setup_file()
{
	e2e_require || return 1
	[ -n "${OR_SKIP:-}" ] && return 0
	e2e_pods_up || { cluster_cleanup; return 1; }
}
teardown_file() { cluster_cleanup; }
setup() { e2e_setup; }
teardown()
{
	e2e_teardown
	agent_stop INT >/dev/null 2>&1 || true
	ctl --force uninstall >/dev/null 2>&1 || true
}

old_pins()
{
	mkdir -p "$OR_PIN"
	bpftool map create "$OR_PIN/or_stats" type percpu_array key 4 value 8 entries 12 name or_stats
	# slot 0 (redirected): 1000 on every CPU; slot 11 (inbound_plaintext): 7
	bpftool map update pinned "$OR_PIN/or_stats" key 0 0 0 0 value 0xe8 3 0 0 0 0 0 0
	bpftool map update pinned "$OR_PIN/or_stats" key 11 0 0 0 value 7 0 0 0 0 0 0 0
	bpftool map create "$OR_PIN/or_breakers" type hash key 20 value 16 entries 32768 name or_breakers
	# open, 5 failures in a row, ejected until far in the future
	bpftool map update pinned "$OR_PIN/or_breakers" \
		key $GONE_IP 0 0 0 0 0 0 0 0 0 0 0 0 $GONE_PORT 2 0 \
		value 1 0 0 0 5 0 0 0 0 0 0 0 0 0 0 0x7f
	bpftool map create "$OR_PIN/or_services" type hash key 20 value 68 entries 4096 name or_services
	bpftool map create "$OR_PIN/or_backends" type hash key 12 value 28 entries 32768 name or_backends
}

@test "pinned maps of an older layout: grown ones migrated with their entries, others recreated" {
	old_pins
	agent_start "$OR_CONFIG"
	agent_wait_ready 5000 client

	# The log says what happened to each.
	grep -q 'msg="pinned map of another layout migrated" map=or_stats entries=12 dropped=0 value=8->8 max_entries=12->32' "$OR_AGENT_LOG"
	grep -q 'msg="pinned map of another layout migrated" map=or_breakers entries=1 dropped=0 value=16->24' "$OR_AGENT_LOG"
	grep -q 'msg="pinned map of another layout recreated empty: its entries are lost" map=or_services' "$OR_AGENT_LOG"
	grep -q 'msg="pinned map of another layout recreated empty: its entries are lost" map=or_backends' "$OR_AGENT_LOG"

	# The pins now have the current layout.
	[ "$(bpftool -j map show pinned "$OR_PIN/or_stats" | jq .max_entries)" -eq 32 ]
	[ "$(bpftool -j map show pinned "$OR_PIN/or_breakers" | jq .bytes_value)" -eq 24 ]
	[ "$(bpftool -j map show pinned "$OR_PIN/or_services" | jq .bytes_value)" -eq 64 ]

	# Counters survived (summed over CPUs), and kept counting.
	local ncpu
	ncpu=$(bpftool -j map dump pinned "$OR_PIN/or_stats" | jq '.[0].values | length')
	run ctl --json stats
	echo "$output"
	[ "$(jq .inbound_plaintext <<<"$output")" -eq $((7 * ncpu)) ]
	[ "$(jq .redirected <<<"$output")" -ge $((1000 * ncpu)) ]
	pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/" >/dev/null
	[ "$(ctl --json stats | jq .redirected)" -gt $((1000 * ncpu)) ]

	# The breaker entry survived: its 16 bytes, then zeros (ejections: 0).
	run ctl --json breakers
	echo "$output"
	jq -e 'any(.[]; .ip == "10.244.1.99" and .port == 9000 and .consecutive_failures == 5 and .ejections == 0)' <<<"$output"

	# Services and backends were refilled from the config: traffic flows.
	ctl --json services | jq -e 'length >= 1'
	run pod_exec client curl -sS --max-time 3 "http://$E2E_VIP/"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "pinned maps of the current layout are reused as they are" {
	agent_start "$OR_CONFIG"
	agent_wait_ready 5000 client
	local id
	id=$(bpftool -j map show pinned "$OR_PIN/or_breakers" | jq .id)
	agent_stop TERM
	: >"$OR_AGENT_LOG"
	agent_start "$OR_CONFIG"
	agent_wait_ready 5000 client
	[ "$(bpftool -j map show pinned "$OR_PIN/or_breakers" | jq .id)" -eq "$id" ]
	! grep -q 'pinned map of another layout' "$OR_AGENT_LOG"
}
