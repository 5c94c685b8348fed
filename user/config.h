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

#define OR_DEFAULT_PIN_DIR "/sys/fs/bpf/outrider"
#define OR_DEFAULT_SELECTOR_KEY "outrider.io/mode"
#define OR_DEFAULT_SELECTOR_VALUE "enabled"
#define OR_OPT_OUT_VALUE "disabled"
#define OR_DEFAULT_MAX_CONNECTIONS 65536
#define OR_DEFAULT_CONNECT_TIMEOUT_MS 1000

struct or_label {
	char *key;
	char *value;
};

struct or_labels {
	struct or_label *v;
	size_t n;
};

struct or_ns_cfg {
	char *name;
	struct or_labels labels;
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

enum or_protocol { OR_PROTOCOL_TCP = 0 };

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

struct or_policy_cfg {
	uint32_t connect_timeout_ms; /* 1..600000, default 1000 */
	enum or_lb_algo load_balancer;
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

/*
 * Enrollment: the pod is on this node and either the pod carries the
 * selector label, or its namespace does and the pod does not carry
 * `<selector key>=disabled`.
 */
bool or_pod_enrolled(const struct or_config *cfg, const struct or_pod_cfg *pod);
bool or_pod_local(const struct or_config *cfg, const struct or_pod_cfg *pod);

const char *or_lb_algo_name(enum or_lb_algo algo);

#endif
