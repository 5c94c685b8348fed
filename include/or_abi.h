/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The contract between outrider's kernel programs (bpf/) and its userspace
 * (user/): pinned map keys and values, reason codes, constants.
 *
 * Every struct is plain fixed-width fields with explicit padding, so the
 * layout is the same for clang -target bpf and for the host compiler, and
 * each carries BTF so `bpftool map dump` prints fields by name.
 *
 * Addresses are always 16 bytes: an IPv4 address lives in addr[0] (network
 * byte order) with addr[1..3] zero, and `family` says which it is.
 */
#ifndef OR_ABI_H
#define OR_ABI_H

#ifdef __BPF__
/* vmlinux.h already defines the __u8..__u64 and __be16/__be32 types. */
#else
#include <linux/types.h>
#endif

/*
 * Bumped whenever a key or value below changes size or meaning. The agent
 * writes it into or_settings; a later agent that finds pinned maps with
 * another version knows they are not its own layout.
 */
#define OR_ABI_VERSION 4 /* 2: or_breakers; 3: or_inbound, or_tls, SVIDs in or_pods;
			  * 4: agent-down policy (flags in or_services, or_pods, or_settings),
			  *    or_stats sized OR_STATS_SLOTS */

/* Istio's port numbers, so operators feel at home. */
#define OR_PORT_OUTBOUND 15001 /* in pod netns: captured outbound traffic */
#define OR_PORT_INBOUND 15006  /* in pod netns: inbound plaintext */
#define OR_PORT_TUNNEL 15008   /* in pod netns: mTLS tunnel */
#define OR_PORT_ADMIN 15020    /* node: admin and /metrics */
#define OR_PORT_READY 15021    /* node: /healthz/ready */

#define OR_AF_INET 2   /* == AF_INET; spelled out so bpf/ needs no libc */
#define OR_AF_INET6 10 /* == AF_INET6 */
#define OR_PROTO_TCP 6 /* == IPPROTO_TCP */

#define OR_MAX_BACKENDS 64   /* per service, bounds the kernel's LB loop */
#define OR_NAME_LEN 48       /* "namespace/name", NUL-terminated */
#define OR_ID_LEN 160        /* a SPIFFE ID as shown in dumps (longer ones are cut) */
#define OR_MAX_SERVICES 4096 /* VIP:port entries */
#define OR_MAX_PODS 1024     /* enrolled pods per node */
#define OR_MAX_FLOWS 65536   /* in-flight original destinations */

/* or_svc_val.mode */
enum or_svc_mode {
	OR_MODE_PROXY = 0,  /* connect() redirected to the agent's :15001 */
	OR_MODE_KERNEL = 1, /* connect4/6 picks a backend and rewrites to it */
};

/*
 * Why the kernel did what it did with a connect() or a socket. Index into
 * or_stats. Append only: userspace prints them by these numbers.
 */
enum or_reason {
	OR_REASON_REDIRECTED = 0,     /* proxy-mode service: sent to the agent */
	OR_REASON_KERNEL_BALANCED,    /* kernel-mode service: rewritten to a backend */
	OR_REASON_PASS_NOT_SERVICE,   /* destination is not a mesh service */
	OR_REASON_PASS_NOT_TCP,       /* UDP or raw: left alone */
	OR_REASON_NO_BACKEND,         /* kernel mode, no backend: connect() refused */
	OR_REASON_FLOW_TABLE_FULL,    /* could not remember the original dst: passed */
	OR_REASON_ORIGDST_PUBLISHED,  /* sockops re-keyed the dst for the agent */
	OR_REASON_PEER_RESTORED,      /* getpeername() shown the service VIP */
	OR_REASON_ALL_EJECTED,        /* every endpoint ejected: connect() refused at once */
	OR_REASON_SKIPPED_EJECTED,    /* kernel LB passed over an ejected backend */
	OR_REASON_INBOUND_REFUSED,    /* plaintext to a strict mTLS pod port: refused */
	OR_REASON_INBOUND_PLAINTEXT,  /* plaintext to a permissive pod port: let through */
	OR_REASON_AGENT_DOWN_REFUSED, /* no agent, fail-closed pod: connect() refused at once */
	OR_REASON_AGENT_DOWN_FAIL_OPEN, /* no agent, fail-open pod: sent straight to an endpoint */
	OR_REASON_AGENT_DOWN_STRICT,  /* no agent, fail-open pod, strict mTLS service: refused */
	OR_REASON_MAX,
};

/* or_stats has room for reasons added later without a new map layout. */
#define OR_STATS_SLOTS 32
_Static_assert(OR_REASON_MAX <= OR_STATS_SLOTS, "or_stats slots");

/*
 * Agent down: the agent's in-pod listener is gone (it exited or was
 * killed), or or_settings says it stopped, or its heartbeat is older than
 * this. Then a captured connect() follows the pod's on_agent_down policy.
 */
#define OR_HEARTBEAT_TIMEOUT_NS (5ull * 1000000000ull)

/*
 * or_services: VIP:port:proto of a mesh service.
 * Writer: agent. Reader: connect4/6 (every connect() in an enrolled pod).
 */
struct or_svc_key {
	__u32 addr[4]; /* VIP, network byte order */
	__u16 port;    /* service port, host byte order */
	__u8 proto;    /* OR_PROTO_TCP */
	__u8 family;   /* OR_AF_INET or OR_AF_INET6 */
};
_Static_assert(sizeof(struct or_svc_key) == 20, "or_svc_key layout");

struct or_svc_val {
	__u32 svc_id;        /* key into or_backends, stable across reloads */
	__u8 mode;           /* enum or_svc_mode */
	__u8 flags;          /* OR_SVC_F_* */
	__u16 backend_count; /* valid slots in or_backends, <= OR_MAX_BACKENDS */
	__u32 total_weight;  /* sum of the backends' weights (kernel LB) */
	__u32 pad;
	char name[OR_NAME_LEN]; /* "namespace/name", for people reading dumps */
};
_Static_assert(sizeof(struct or_svc_val) == 64, "or_svc_val layout");

#define OR_SVC_F_MTLS_STRICT 0x1 /* strict mTLS: never failed open to plaintext */

/*
 * or_backends: the endpoints of a service, slots 0..backend_count-1.
 * Writer: agent. Reader: connect4/6 for kernel-mode services, outriderctl.
 */
struct or_backend_key {
	__u32 svc_id; /* or_svc_val.svc_id */
	__u32 slot;   /* 0 .. backend_count - 1 */
};
_Static_assert(sizeof(struct or_backend_key) == 8, "or_backend_key layout");

struct or_backend_val {
	__u32 addr[4]; /* endpoint address, network byte order */
	__u16 port;    /* endpoint port, host byte order */
	__u8 family;   /* OR_AF_INET or OR_AF_INET6 */
	__u8 pad;
	__u32 node_id; /* index of the endpoint's node in the agent's config */
	__u32 weight;  /* relative weight, >= 1 */
};
_Static_assert(sizeof(struct or_backend_val) == 28, "or_backend_val layout");

/*
 * or_breakers: outlier-detection state of each endpoint, by address.
 * Writer: agent, on every state change. Reader: connect4/6, which skips
 * ejected backends (kernel mode) and refuses a connect() at once when every
 * endpoint of the service is ejected (both modes).
 *
 * An endpoint counts as ejected while state == OR_BREAKER_OPEN and
 * until_ns lies ahead; once until_ns passes it is usable again even if the
 * agent is not there to say so.
 */
enum or_breaker_state {
	OR_BREAKER_CLOSED = 0,    /* healthy: takes traffic */
	OR_BREAKER_OPEN = 1,      /* ejected until until_ns */
	OR_BREAKER_HALF_OPEN = 2, /* ejection over: the next request is the probe */
};

struct or_breaker_key {
	__u32 addr[4]; /* endpoint address, network byte order */
	__u16 port;    /* endpoint port, host byte order */
	__u8 family;   /* OR_AF_INET or OR_AF_INET6 */
	__u8 pad;
};
_Static_assert(sizeof(struct or_breaker_key) == 20, "or_breaker_key layout");

struct or_breaker_val {
	__u8 state;      /* enum or_breaker_state */
	__u8 pad[3];
	__u32 consecutive_failures; /* 5xx, resets and connect failures in a row */
	__u64 until_ns;  /* CLOCK_MONOTONIC (bpf_ktime_get_ns) end of the ejection */
	__u32 ejections; /* times ejected; multiplies the ejection time */
	__u32 pad2;
};
_Static_assert(sizeof(struct or_breaker_val) == 24, "or_breaker_val layout");

/*
 * or_pods: enrolled pods of this node, keyed by their netns cookie.
 * Writer: agent. Reader: outriderctl (and identity lookups later).
 */
struct or_pod_val {
	__u32 addr[4];  /* pod IPv4 address, network byte order */
	__u32 addr6[4]; /* pod IPv6 address or all zero */
	__u32 identity; /* index of the pod's identity (service account) */
	__u32 flags;    /* OR_POD_F_* */
	char name[OR_NAME_LEN]; /* "namespace/name" */
	__u64 svid_not_before; /* the pod's current SVID, Unix seconds; 0 = none */
	__u64 svid_not_after;  /* Unix seconds */
	__u64 svid_renew_at;   /* Unix seconds: when the agent replaces it */
	char spiffe_id[OR_ID_LEN]; /* spiffe://<trust domain>/ns/<ns>/sa/<sa> */
};
_Static_assert(sizeof(struct or_pod_val) == 272, "or_pod_val layout");

#define OR_POD_F_FAIL_OPEN 0x1 /* on_agent_down: fail-open (else fail-closed) */

/*
 * or_inbound: the app ports of enrolled pods, and what plaintext arriving
 * there (not through the mTLS tunnel) gets.
 * Writer: agent. Reader: the pod netns' sk_lookup program.
 */
enum or_inbound_mode {
	OR_INBOUND_PERMISSIVE = 1, /* let through, counted */
	OR_INBOUND_STRICT = 2,     /* refused (connection refused), counted */
};

struct or_inbound_key {
	__u32 addr[4]; /* the pod's address, network byte order */
	__u16 port;    /* app port, host byte order */
	__u8 family;   /* OR_AF_INET or OR_AF_INET6 */
	__u8 pad;
};
_Static_assert(sizeof(struct or_inbound_key) == 20, "or_inbound_key layout");

struct or_inbound_val {
	__u8 mode; /* enum or_inbound_mode */
	__u8 pad[3];
};
_Static_assert(sizeof(struct or_inbound_val) == 4, "or_inbound_val layout");

/*
 * or_tls: node-wide mTLS counters (one entry, key 0), copied from the
 * agent every second so outriderctl can show them from the pins alone.
 * Writer: agent. Reader: outriderctl.
 */
#define OR_TLS_REASONS 12 /* failures by reason: see tls_reason_names in pinned.c */
struct or_tls_counters {
	__u64 handshakes;           /* completed, full */
	__u64 resumed;              /* completed, resumed */
	__u64 failures[OR_TLS_REASONS]; /* [0] other TLS errors, [1..] SVID refusals by enum or_svid_err */
	__u64 tunnels_in;           /* inbound tunnels established */
	__u64 tunnels_out;          /* outbound tunnels established */
	__u64 tunnels_out_failed;
	__u64 denied;               /* authorization: 403 */
	__u64 bad_request;          /* malformed CONNECT, or not a pod served: 400 */
	__u64 app_failed;           /* the app refused or did not answer: 502 */
};
_Static_assert(sizeof(struct or_tls_counters) == 8 * (2 + OR_TLS_REASONS + 6),
	       "or_tls_counters layout");

/*
 * or_cookie_dst (LRU): original destination of a redirected or balanced
 * socket, by socket cookie.
 * Writer: connect4/6. Readers: sockops (re-keys it for the agent),
 * getpeername4/6 (shows the VIP to the app). Deleted when the socket closes.
 */
struct or_dst {
	__u32 addr[4]; /* original destination, network byte order */
	__u16 port;    /* original destination port, host byte order */
	__u8 family;   /* OR_AF_INET or OR_AF_INET6 */
	__u8 flags;    /* OR_DST_F_* */
	__u32 svc_id;  /* service it matched */
};
_Static_assert(sizeof(struct or_dst) == 24, "or_dst layout");

#define OR_DST_F_VIA_AGENT 0x1 /* redirected to the agent (publish for accept) */

/*
 * or_origdst (LRU): original destination as the agent can find it on
 * accept(): by the client pod's netns cookie and the client's port.
 * Writer: sockops (active established). Reader: agent, which deletes it.
 */
struct or_origdst_key {
	__u64 netns_cookie; /* SO_NETNS_COOKIE of the pod netns */
	__u16 port;         /* client (source) port, host byte order */
	__u8 family;        /* family of the client socket */
	__u8 pad[5];
};
_Static_assert(sizeof(struct or_origdst_key) == 16, "or_origdst_key layout");

/*
 * or_settings: a single entry (key 0).
 * Writer: agent. Readers: kernel programs, outriderctl.
 */
struct or_settings {
	__u32 abi_version;  /* OR_ABI_VERSION of the agent that wrote it */
	__u16 outbound_port; /* in-pod listener port, host byte order */
	__u16 pad;
	__u64 heartbeat_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) of the last beat */
	__u32 agent_pid;    /* pid of the agent that owns the pins */
	__u32 flags;        /* OR_SETTINGS_F_* */
};
_Static_assert(sizeof(struct or_settings) == 24, "or_settings layout");

/* The agent stopped with no successor: agent down at once, no heartbeat wait. */
#define OR_SETTINGS_F_STOPPED 0x1

/* or_stats: PERCPU_ARRAY of OR_STATS_SLOTS, key enum or_reason, value __u64 count. */

#endif /* OR_ABI_H */
