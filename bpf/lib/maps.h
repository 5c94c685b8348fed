/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The pinned maps shared by outrider's kernel programs and its agent. */
#ifndef OR_BPF_MAPS_H
#define OR_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "or_abi.h"

/* Writer: agent. Reader: connect4/6 on every connect() of an enrolled pod. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OR_MAX_SERVICES);
	__type(key, struct or_svc_key);
	__type(value, struct or_svc_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_services SEC(".maps");

/* Writer: agent. Reader: connect4/6 for kernel-mode services; outriderctl. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OR_MAX_SERVICES * 8);
	__type(key, struct or_backend_key);
	__type(value, struct or_backend_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_backends SEC(".maps");

/* Writer: agent (outlier detection). Reader: connect4/6. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OR_MAX_SERVICES * 8);
	__type(key, struct or_breaker_key);
	__type(value, struct or_breaker_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_breakers SEC(".maps");

/* Writer: agent. Reader: sk_lookup (inbound plaintext policy per pod port). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OR_MAX_PODS * 16);
	__type(key, struct or_inbound_key);
	__type(value, struct or_inbound_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_inbound SEC(".maps");

/* Writer: agent (every second). Reader: outriderctl. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct or_tls_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_tls SEC(".maps");

/* Writer: agent. Readers: connect4/6 (on_agent_down policy), outriderctl. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, OR_MAX_PODS);
	__type(key, __u64); /* netns cookie */
	__type(value, struct or_pod_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_pods SEC(".maps");

/* Writer: connect4/6. Readers: sockops, getpeername4/6. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OR_MAX_FLOWS);
	__type(key, __u64); /* socket cookie */
	__type(value, struct or_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_cookie_dst SEC(".maps");

/* Writer: sockops. Reader: agent on accept(), which deletes the entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, OR_MAX_FLOWS);
	__type(key, struct or_origdst_key);
	__type(value, struct or_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_origdst SEC(".maps");

/* Writer: agent (heartbeat, ABI version). Readers: kernel programs, outriderctl. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct or_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_settings SEC(".maps");

/* Writer: every program (per CPU). Reader: outriderctl stats, agent. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, OR_STATS_SLOTS);
	__type(key, __u32); /* enum or_reason */
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} or_stats SEC(".maps");

static __always_inline void or_count(enum or_reason reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&or_stats, &key);

	if (n)
		*n += 1; /* per-CPU slot: no other writer */
}

#endif /* OR_BPF_MAPS_H */
