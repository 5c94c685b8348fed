// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound capture for enrolled pods. Attached to each enrolled pod's cgroup:
 *
 *   cgroup/connect4, connect6   a connect() to a mesh service VIP is either
 *                               redirected to the agent's in-pod :15001
 *                               (proxy mode) or rewritten straight to a
 *                               backend (kernel mode)
 *   sockops                     once such a connection is established, the
 *                               original destination is re-keyed by
 *                               (netns cookie, client port), which is what
 *                               the agent can compute on accept()
 *   cgroup/getpeername4, 6      the app sees the VIP as its peer
 *
 * and to each enrolled pod's network namespace:
 *
 *   sk_lookup                   plaintext arriving at one of the pod's app
 *                               ports (not through the mTLS tunnel, which
 *                               ends on :15008 and reaches the app over
 *                               loopback) is refused for strict mTLS and
 *                               counted for permissive
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "or_abi.h"
#include "lib/maps.h"
#include "lib/lb.h"

#define ECONNREFUSED 111
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define AF_INET 2

/* Load-time knob: the agent's in-pod outbound listener port. */
const volatile __u16 outbound_port = OR_PORT_OUTBOUND;

/* Set on the or_dst when the agent's listener is reached over IPv4. */
#define OR_DST_F_AGENT_V4 0x2

static __always_inline int is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

/*
 * Whether the agent can take this connection: or_settings says it runs and
 * beat recently, and its listener exists in this pod's netns. The listener
 * is what makes a crash visible at once: the kernel closes it with the
 * agent, and a take-over hands the same socket on, so it never goes away.
 */
static __always_inline int or_agent_up(void *ctx, int agent_v4, __u64 now)
{
	struct bpf_sock_tuple t = {};
	const struct or_settings *s;
	struct bpf_sock *sk;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&or_settings, &zero);
	if (!s || (s->flags & OR_SETTINGS_F_STOPPED) ||
	    now - s->heartbeat_ns > OR_HEARTBEAT_TIMEOUT_NS)
		return 0;
	if (agent_v4) {
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons(outbound_port);
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = bpf_htons(outbound_port);
		sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/*
 * No agent to redirect to: the pod's on_agent_down policy. fail-open sends
 * the connection straight to an endpoint the kernel picks (as for a
 * kernel-mode service), but never for a strict mTLS service, which would
 * then be reached in plaintext. Returns like or_decide.
 */
static __always_inline int or_agent_down(void *ctx, const struct or_svc_key *key,
					 const struct or_svc_val *svc, __u64 now, __u32 *new_addr,
					 __u16 *new_port, int *rewritten)
{
	__u64 netns = bpf_get_netns_cookie(ctx);
	const struct or_pod_val *pod;
	struct or_backend_val be;

	pod = bpf_map_lookup_elem(&or_pods, &netns);
	if (!pod || !(pod->flags & OR_POD_F_FAIL_OPEN)) {
		or_count(OR_REASON_AGENT_DOWN_REFUSED);
		return -ECONNREFUSED;
	}
	if (svc->flags & OR_SVC_F_MTLS_STRICT) {
		or_count(OR_REASON_AGENT_DOWN_STRICT);
		return -ECONNREFUSED;
	}
	or_count(OR_REASON_AGENT_DOWN_FAIL_OPEN);
	/* No usable endpoint: the VIP as dialled (kube-proxy may serve it). */
	if (or_pick_backend(svc, now, &be) || be.family != key->family)
		return 0;
	__builtin_memcpy(new_addr, be.addr, 16);
	*new_port = be.port;
	*rewritten = 1;
	return 0;
}

/*
 * Looks the destination up and decides. Returns 0 to let connect() go on
 * (to *new_addr / *new_port when *rewritten is set), or -errno to fail it.
 * key->family says how the destination is to be matched; the caller turns
 * the backend or agent address back into its own socket family.
 */
static __always_inline int or_decide(void *ctx, const struct or_svc_key *key, __u32 *new_addr,
				     __u16 *new_port, int *rewritten, int agent_v4)
{
	struct or_backend_val be;
	const struct or_svc_val *svc;
	struct or_dst dst = {};
	__u64 cookie, now;

	svc = bpf_map_lookup_elem(&or_services, key);
	if (!svc) {
		or_count(OR_REASON_PASS_NOT_SERVICE);
		return 0;
	}

	__builtin_memcpy(dst.addr, key->addr, sizeof(dst.addr));
	dst.port = key->port;
	dst.family = key->family;
	dst.svc_id = svc->svc_id;

	now = bpf_ktime_get_ns();
	if (svc->mode == OR_MODE_KERNEL) {
		if (or_pick_backend(svc, now, &be) || be.family != key->family) {
			or_count(svc->backend_count ? OR_REASON_ALL_EJECTED : OR_REASON_NO_BACKEND);
			return -ECONNREFUSED;
		}
		__builtin_memcpy(new_addr, be.addr, 16);
		*new_port = be.port;
	} else {
		/*
		 * Every endpoint ejected: refuse now rather than let the app wait
		 * on the agent's connect timeouts. No backends at all is the
		 * agent's to answer (an HTTP service sends a 503 that says why).
		 */
		if (svc->backend_count && !or_healthy_weight(svc, now)) {
			or_count(OR_REASON_ALL_EJECTED);
			return -ECONNREFUSED;
		}
		if (!or_agent_up(ctx, agent_v4, now)) {
			int err = or_agent_down(ctx, key, svc, now, new_addr, new_port, rewritten);

			if (err || !*rewritten)
				return err;
			/* Straight to an endpoint: remembered so getpeername shows the VIP. */
			cookie = bpf_get_socket_cookie(ctx);
			bpf_map_update_elem(&or_cookie_dst, &cookie, &dst, BPF_ANY);
			return 0;
		}
		dst.flags = OR_DST_F_VIA_AGENT | (agent_v4 ? OR_DST_F_AGENT_V4 : 0);
		new_addr[0] = 0;
		new_addr[1] = 0;
		new_addr[2] = 0;
		new_addr[3] = 0;
		if (agent_v4)
			new_addr[0] = bpf_htonl(0x7f000001); /* 127.0.0.1 */
		else
			new_addr[3] = bpf_htonl(1); /* ::1 */
		*new_port = outbound_port;
	}

	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&or_cookie_dst, &cookie, &dst, BPF_ANY)) {
		/* Without the original dst the agent could not route it. */
		or_count(OR_REASON_FLOW_TABLE_FULL);
		return 0;
	}
	*rewritten = 1;
	or_count(svc->mode == OR_MODE_KERNEL ? OR_REASON_KERNEL_BALANCED : OR_REASON_REDIRECTED);
	return 0;
}

SEC("cgroup/connect4")
int or_connect4(struct bpf_sock_addr *ctx)
{
	struct or_svc_key key = {};
	__u32 addr[4] = {};
	__u16 port = 0;
	int rewritten = 0;
	int err;

	if (ctx->type != SOCK_STREAM) {
		or_count(OR_REASON_PASS_NOT_TCP);
		return 1;
	}
	key.addr[0] = ctx->user_ip4;
	key.port = bpf_ntohs((__u16)ctx->user_port);
	key.proto = OR_PROTO_TCP;
	key.family = OR_AF_INET;

	err = or_decide(ctx, &key, addr, &port, &rewritten, 1);
	if (err) {
		bpf_set_retval(err);
		return 0;
	}
	if (rewritten) {
		ctx->user_ip4 = addr[0];
		ctx->user_port = bpf_htons(port);
	}
	return 1;
}

SEC("cgroup/connect6")
int or_connect6(struct bpf_sock_addr *ctx)
{
	struct or_svc_key key = {};
	__u32 addr[4] = {};
	__u16 port = 0;
	int rewritten = 0;
	int mapped;
	int err;

	if (ctx->type != SOCK_STREAM) {
		or_count(OR_REASON_PASS_NOT_TCP);
		return 1;
	}
	key.addr[0] = ctx->user_ip6[0];
	key.addr[1] = ctx->user_ip6[1];
	key.addr[2] = ctx->user_ip6[2];
	key.addr[3] = ctx->user_ip6[3];
	key.port = bpf_ntohs((__u16)ctx->user_port);
	key.proto = OR_PROTO_TCP;
	key.family = OR_AF_INET6;

	/* An AF_INET6 socket dialling ::ffff:a.b.c.d is an IPv4 connection. */
	mapped = is_v4_mapped(key.addr);
	if (mapped) {
		key.addr[0] = key.addr[3];
		key.addr[2] = 0;
		key.addr[3] = 0;
		key.family = OR_AF_INET;
	}

	err = or_decide(ctx, &key, addr, &port, &rewritten, mapped);
	if (err) {
		bpf_set_retval(err);
		return 0;
	}
	if (!rewritten)
		return 1;
	if (mapped) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = addr[0];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = bpf_htons(port);
	return 1;
}

/* The app's connection to the agent is up: tell the agent where it was going. */
static __always_inline void or_publish_origdst(struct bpf_sock_ops *skops)
{
	struct or_origdst_key key = {};
	struct or_dst *dst;
	__u64 cookie;

	cookie = bpf_get_socket_cookie(skops);
	dst = bpf_map_lookup_elem(&or_cookie_dst, &cookie);
	if (!dst)
		return;
	/* Clean or_cookie_dst up when this socket closes. */
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	if (!(dst->flags & OR_DST_F_VIA_AGENT))
		return;

	key.netns_cookie = bpf_get_netns_cookie(skops);
	key.port = (__u16)skops->local_port;
	key.family = (dst->flags & OR_DST_F_AGENT_V4) ? OR_AF_INET : OR_AF_INET6;
	if (bpf_map_update_elem(&or_origdst, &key, dst, BPF_ANY) == 0)
		or_count(OR_REASON_ORIGDST_PUBLISHED);
	else
		or_count(OR_REASON_FLOW_TABLE_FULL);
}

SEC("sockops")
int or_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		or_publish_origdst(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE) {
			cookie = bpf_get_socket_cookie(skops);
			bpf_map_delete_elem(&or_cookie_dst, &cookie);
		}
		break;
	default:
		break;
	}
	return 1;
}

SEC("cgroup/getpeername4")
int or_getpeername4(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct or_dst *dst;

	dst = bpf_map_lookup_elem(&or_cookie_dst, &cookie);
	if (!dst || dst->family != OR_AF_INET)
		return 1;
	ctx->user_ip4 = dst->addr[0];
	ctx->user_port = bpf_htons(dst->port);
	or_count(OR_REASON_PEER_RESTORED);
	return 1;
}

SEC("cgroup/getpeername6")
int or_getpeername6(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct or_dst *dst;

	dst = bpf_map_lookup_elem(&or_cookie_dst, &cookie);
	if (!dst)
		return 1;
	if (dst->family == OR_AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = dst->addr[0];
	} else {
		ctx->user_ip6[0] = dst->addr[0];
		ctx->user_ip6[1] = dst->addr[1];
		ctx->user_ip6[2] = dst->addr[2];
		ctx->user_ip6[3] = dst->addr[3];
	}
	ctx->user_port = bpf_htons(dst->port);
	or_count(OR_REASON_PEER_RESTORED);
	return 1;
}

SEC("sk_lookup")
int or_sk_lookup(struct bpf_sk_lookup *ctx)
{
	struct or_inbound_key key = {};
	const struct or_inbound_val *v;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	if (ctx->family == AF_INET) {
		key.addr[0] = ctx->local_ip4;
		key.family = OR_AF_INET;
	} else {
		key.addr[0] = ctx->local_ip6[0];
		key.addr[1] = ctx->local_ip6[1];
		key.addr[2] = ctx->local_ip6[2];
		key.addr[3] = ctx->local_ip6[3];
		key.family = OR_AF_INET6;
	}
	key.port = (__u16)ctx->local_port; /* host byte order here */
	v = bpf_map_lookup_elem(&or_inbound, &key);
	if (!v)
		return SK_PASS;
	if (v->mode == OR_INBOUND_STRICT) {
		/* No socket for this lookup: the client gets connection refused. */
		or_count(OR_REASON_INBOUND_REFUSED);
		return SK_DROP;
	}
	or_count(OR_REASON_INBOUND_PLAINTEXT);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
