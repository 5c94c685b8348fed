/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent's configuration: parsed from YAML (libyaml), validated whole.
 * A config is either entirely valid or rejected with "file:line: reason",
 * so a bad reload never replaces the config in force.
 */
#ifndef OR_CONFIG_H
#define OR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "authz.h"

#define OR_DEFAULT_PIN_DIR "/sys/fs/bpf/outrider"
#define OR_DEFAULT_SELECTOR_KEY "outrider.io/mode"
#define OR_DEFAULT_SELECTOR_VALUE "enabled"
#define OR_OPT_OUT_VALUE "disabled"
/* On a namespace from the Kubernetes API (no entry in the file): `fail-open` or `fail-closed`. */
#define OR_LABEL_ON_AGENT_DOWN "outrider.io/on-agent-down"
#define OR_DEFAULT_MAX_CONNECTIONS 65536
#define OR_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define OR_DEFAULT_ADMIN_ADDRESS "127.0.0.1:15020"
#define OR_DEFAULT_READY_ADDRESS "127.0.0.1:15021"
#define OR_DEFAULT_TRUST_DOMAIN "cluster.local"
#define OR_DEFAULT_STATE_DIR "/var/lib/outrider"
#define OR_DEFAULT_SVID_TTL_S 86400
#define OR_MIN_SVID_TTL_S 60
#define OR_MAX_SVID_TTL_S 31536000
#define OR_DEFAULT_DRAIN_TIMEOUT_MS 5000
#define OR_MAX_DRAIN_TIMEOUT_MS 3600000
#define OR_DEFAULT_HEADER_TIMEOUT_MS 10000 /* a request head must arrive within this */
#define OR_DEFAULT_BUFFER_BYTES (1024 * 1024) /* per connection, each direction */

struct or_label {
	char *key;
	char *value;
};

struct or_labels {
	struct or_label *v;
	size_t n;
};

/* `mtls:` on a namespace entry or a service: what inbound plaintext meets. */
enum or_mtls_mode {
	OR_MTLS_DISABLED,   /* "disabled": plaintext, no tunnel */
	OR_MTLS_PERMISSIVE, /* "permissive": tunnel or plaintext, plaintext counted */
	OR_MTLS_STRICT,     /* "strict": tunnel only; plaintext from outside the mesh refused */
};

/* `on_agent_down:` on a namespace: what its pods' captured connects get while no agent runs. */
enum or_agent_down {
	OR_AGENT_DOWN_FAIL_CLOSED, /* "fail-closed" (default): connect() refused at once */
	OR_AGENT_DOWN_FAIL_OPEN,   /* "fail-open": connect() goes to the destination directly */
};

struct or_ns_cfg {
	char *name;
	struct or_labels labels;
	enum or_mtls_mode mtls; /* default permissive */
	enum or_agent_down on_agent_down;
	int line;
};

struct or_pod_cfg {
	char *name;
	char *namespace;       /* default "default" */
	char *node;            /* default: the config's node */
	struct or_labels labels;
	struct or_ip ip;       /* required, IPv4 */
	struct or_ip ip6;      /* optional, IPv6 (family 0 when absent) */
	char *netns;           /* netns file; required for pods of this node */
	char *cgroup;          /* cgroup v2 directory; required for pods of this node */
	char *service_account; /* default "default" */
	int line;
};

enum or_protocol {
	OR_PROTOCOL_TCP = 0,  /* "tcp": L4, retries on connect failure only */
	OR_PROTOCOL_HTTP = 1, /* "http": HTTP/1.1, per-request routing and retries */
};

struct or_port_cfg {
	uint16_t port;        /* service port */
	uint16_t target_port; /* default: port */
	enum or_protocol protocol;
	int line;
};

struct or_endpoint_cfg {
	struct or_ip ip;  /* same family as the service VIP */
	uint16_t port;    /* 0: the service port's target_port */
	char *node;       /* may be NULL */
	uint32_t weight;  /* 1..1000, default 1 */
	int line;
};

enum or_lb_algo {
	OR_LB_ROUND_ROBIN = 0, /* "round_robin": weighted, smooth */
	OR_LB_LEAST_REQUEST,   /* "least_request": power of two choices, weighted */
	OR_LB_RANDOM,          /* "random": weighted */
};

/* retries.retry_on, Envoy's names */
#define OR_RETRY_ON_CONNECT_FAILURE 0x01 /* "connect-failure": refused, unreachable, timed out */
#define OR_RETRY_ON_RESET 0x02           /* "reset": no (whole) response: reset, closed, per-try timeout */
#define OR_RETRY_ON_5XX 0x04             /* "5xx": any 5xx response, and everything "reset" covers */
#define OR_RETRY_ON_GATEWAY_ERROR 0x08   /* "gateway-error": 502, 503, 504 */
#define OR_RETRY_ON_RETRIABLE_STATUS 0x10 /* "retriable-status-codes": the listed codes */
#define OR_RETRY_ON_ALL 0x1f

#define OR_MAX_RETRIABLE_CODES 16

struct or_retry_cfg {
	uint32_t attempts;           /* retries after the first try, 0..10, default 2 */
	uint32_t retry_on;           /* OR_RETRY_ON_*, default all five */
	uint16_t retriable_status_codes[OR_MAX_RETRIABLE_CODES]; /* 100..599, default {503} */
	size_t n_retriable_status_codes;
	uint32_t per_try_timeout_ms; /* 0 = none (default), else 1..600000 */
	uint32_t backoff_base_ms;    /* 1..60000, default 25 */
	uint32_t backoff_max_ms;     /* >= base, <= 600000, default 250 */
	uint32_t budget_percent;     /* 0..100, default 20 */
	uint32_t budget_min_retries_per_s; /* 0..100000, default 10 */
	uint32_t max_body_bytes;     /* 0..16777216, default 65536 */
};

struct or_cb_cfg {
	uint32_t max_connections;      /* 1..10000000, default 1024 */
	uint32_t max_pending_requests; /* default 1024 */
	uint32_t max_requests;         /* default 1024 */
	uint32_t max_retries;          /* retries in flight at once, 0..10000000, default 3 */
};

struct or_outlier_cfg {
	uint32_t consecutive_5xx;              /* 0 = off, default 5 */
	uint32_t consecutive_connect_failures; /* 0 = off, default 5 */
	uint32_t interval_ms;                  /* 1..3600000, default 10000 */
	uint32_t base_ejection_time_ms;        /* 1..86400000, default 30000 */
	uint32_t max_ejection_percent;         /* 0..100, default 50 */
};

struct or_policy_cfg {
	uint32_t connect_timeout_ms; /* 1..600000, default 1000 */
	uint32_t timeout_ms;         /* HTTP: whole request, retries included; 0 = none; default 15000 */
	uint32_t idle_timeout_ms;    /* 0 = none; default 3600000 */
	enum or_lb_algo load_balancer;
	struct or_retry_cfg retries;
	struct or_cb_cfg circuit_breaker;
	struct or_outlier_cfg outlier_detection;
};

enum or_svc_mode_cfg { OR_SVC_PROXY = 0, OR_SVC_KERNEL = 1 }; /* == enum or_svc_mode */

struct or_svc_cfg {
	char *name;
	char *namespace; /* default "default" */
	struct or_ip vip;
	enum or_svc_mode_cfg mode;
	struct or_port_cfg *ports;
	size_t n_ports;
	bool has_selector; /* endpoints from pods matching selector ... */
	struct or_labels selector;
	struct or_endpoint_cfg *endpoints; /* ... or these, explicitly */
	size_t n_endpoints;
	struct or_policy_cfg policy;
	bool mtls_set;          /* `mtls:` given; otherwise the namespace's applies */
	enum or_mtls_mode mtls; /* as given; read it through or_svc_mtls() */
	struct or_authz_rule *authz; /* `authorization:`, in file order */
	size_t n_authz;
	int line;
};

struct or_config {
	char *path;        /* file it came from, for messages */
	char *node;        /* required */
	char *pin_dir;     /* default OR_DEFAULT_PIN_DIR */
	char *cgroup_root; /* "auto" (default) or a cgroup2 directory */
	char *selector_key;   /* from "key=value", default outrider.io/mode=enabled */
	char *selector_value;
	uint32_t max_connections; /* proxied connections at once, default 65536 */
	uint32_t workers;         /* epoll workers, 0 (default) = one per CPU */
	/*
	 * drain_timeout_ms: how long a stopping or replaced agent lets its
	 * established connections run before it closes them (default 5000).
	 */
	uint32_t drain_timeout_ms;
	bool drain_set; /* given (0 is a valid drain_timeout_ms) */
	/* limits: {header_timeout_ms, buffer_bytes}: overload protection */
	uint32_t header_timeout_ms; /* request head read deadline (slowloris), default 10000 */
	uint32_t buffer_bytes;      /* per connection and direction, default 1 MiB */
	struct or_ip admin_ip;    /* admin_address: /metrics, default 127.0.0.1:15020 */
	uint16_t admin_port;
	struct or_ip ready_ip;    /* ready_address: /healthz/ready, default 127.0.0.1:15021 */
	uint16_t ready_port;
	char *trust_domain; /* SPIFFE trust domain, default OR_DEFAULT_TRUST_DOMAIN */
	char *state_dir;    /* absolute, default OR_DEFAULT_STATE_DIR (the demo CA lives here) */
	char *ca_cert;      /* ca: {cert, key}: both absolute paths, or both NULL */
	char *ca_key;
	uint32_t svid_ttl_s; /* OR_MIN_SVID_TTL_S..OR_MAX_SVID_TTL_S, default 86400 */
	/*
	 * `kubernetes:` given: pods, namespaces, services and endpoints also come
	 * from the API (list + watch), added to what this file says.
	 */
	bool kubernetes;
	char *kube_config;  /* kubernetes.kubeconfig: absolute; NULL = in-cluster credentials */
	char *kube_context; /* kubernetes.context: NULL = the kubeconfig's current-context */
	char *text;         /* the file's bytes as parsed, so the config can be parsed again */
	size_t text_len;
	struct or_ns_cfg *namespaces;
	size_t n_namespaces;
	struct or_pod_cfg *pods;
	size_t n_pods;
	struct or_svc_cfg *services;
	size_t n_services;
};

/*
 * Parses and validates. On success returns 0 and *out owns a new config
 * (free with or_config_free). On failure returns -EINVAL (or -errno for an
 * unreadable file), leaves *out NULL and writes "FILE:LINE: reason" to err.
 */
int or_config_load_file(const char *path, struct or_config **out, char *err, size_t errlen);
/* The same from memory; `name` stands in for the file name in messages. */
int or_config_load_buf(const char *name, const char *buf, size_t len, struct or_config **out,
		       char *err, size_t errlen);
void or_config_free(struct or_config *cfg);

/* true when every selector label is present in `have` with the same value. */
bool or_labels_match(const struct or_labels *have, const struct or_labels *selector);
const char *or_labels_get(const struct or_labels *labels, const char *key);
void or_labels_free(struct or_labels *labels);
/* A deep copy into dst. 0, or -ENOMEM with what was copied left for or_labels_free. */
int or_labels_copy(struct or_labels *dst, const struct or_labels *src);

/*
 * Enrollment: the pod is on this node and either the pod carries the
 * selector label, or its namespace does and the pod does not carry
 * `<selector key>=disabled`.
 */
bool or_pod_enrolled(const struct or_config *cfg, const struct or_pod_cfg *pod);
bool or_pod_local(const struct or_config *cfg, const struct or_pod_cfg *pod);

const char *or_lb_algo_name(enum or_lb_algo algo);
const char *or_mtls_mode_name(enum or_mtls_mode mode);
const char *or_agent_down_name(enum or_agent_down mode);
/* The namespace's entry, or NULL when the config has none. */
const struct or_ns_cfg *or_config_namespace(const struct or_config *cfg, const char *name);
/*
 * A service's mTLS mode: its own `mtls:`, else its namespace entry's, else
 * permissive.
 */
enum or_mtls_mode or_svc_mtls(const struct or_config *cfg, const struct or_svc_cfg *svc);
/* The defaults above, for a service without a policy: block. */
void or_policy_defaults(struct or_policy_cfg *p);

#endif
