/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The routing table the workers use: one entry per service VIP:port with
 * its resolved endpoints and load balancer. Built from a config on the main
 * thread, published whole, and read by workers through a reference, so a
 * reload never changes a table a connection is using.
 */
#ifndef OR_ROUTES_H
#define OR_ROUTES_H

#include <stdatomic.h>
#include <stdint.h>

#include "or_abi.h"
#include "authz.h"
#include "budget.h"
#include "config.h"
#include "lb.h"
#include "metrics.h"

struct or_health;

struct or_route_ep {
	struct or_ip ip;
	uint16_t port;
	uint32_t weight;
	uint32_t node_id;
	struct or_health *health; /* outlier state, shared by every route to this ip:port */
	char *spiffe_id; /* a pod in the mesh (any node): its SPIFFE ID; NULL otherwise */
};

struct or_route {
	struct or_ip vip;
	uint16_t port;
	uint32_t svc_id; /* stable for (namespace/name, port) for the agent's life */
	enum or_svc_mode_cfg mode;
	enum or_protocol protocol;
	char name[OR_NAME_LEN];
	uint32_t connect_timeout_ms;
	struct or_policy_cfg policy;
	struct or_svc_metrics *metrics; /* by service name, for the agent's life */
	struct or_budget budget;        /* retry budget of this service port */
	enum or_mtls_mode mtls;
	struct or_authz_rule *authz;    /* copies: the config may go before the routes */
	size_t n_authz;
	struct or_route_ep *eps;
	size_t n_eps;
	struct or_lb lb;
};

struct or_routes {
	_Atomic int ref;
	struct or_route *v; /* sorted by (family, vip, port) for or_routes_find */
	size_t n;
};

/*
 * Builds the table for cfg. Service ids and node ids come from tables kept
 * for the agent's life (main thread only). Returns 0 or -ENOMEM; *out
 * holds one reference.
 */
int or_routes_build(const struct or_config *cfg, struct or_routes **out);
struct or_route *or_routes_find(const struct or_routes *r, const struct or_ip *vip,
				      uint16_t port);

/*
 * A table of one route to one address, for connections no service claims
 * (sidecar mode: inbound to the app on loopback, and outbound passthrough):
 * L4, default policy, no outlier state, metrics under `name`. 0 or -ENOMEM;
 * *out holds one reference and the route is (*out)->v[0]. Any thread.
 */
int or_routes_single(const char *name, const struct or_ip *ip, uint16_t port,
		     struct or_routes **out);

/* The table in force: get takes a reference, put drops one. */
struct or_routes *or_routes_get(void);
void or_routes_put(struct or_routes *r);
/* Makes r the table in force, taking over the caller's reference. */
void or_routes_publish(struct or_routes *r);

#endif
