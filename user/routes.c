// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "identity.h"
#include "log.h"
#include "routes.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct or_routes *current;

/* Stable ids: "ns/name:port" -> svc id, node name -> node id. Main thread only. */
struct id_table {
	char **names;
	size_t n, cap;
};
static struct id_table svc_ids, node_ids;

static int id_lookup(struct id_table *t, const char *name, uint32_t *id)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->names[i], name) == 0) {
			*id = i + 1;
			return 0;
		}
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		char **v = realloc(t->names, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->names = v;
		t->cap = cap;
	}
	t->names[t->n] = strdup(name);
	if (!t->names[t->n])
		return -ENOMEM;
	*id = ++t->n;
	return 0;
}

static int key_cmp(const struct or_ip *a, uint16_t ap, const struct or_ip *b, uint16_t bp)
{
	int c;

	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	c = memcmp(&a->v6, &b->v6, a->family == AF_INET ? 4 : 16);
	if (c)
		return c;
	return ap == bp ? 0 : (ap < bp ? -1 : 1);
}

static int route_cmp(const void *a, const void *b)
{
	const struct or_route *x = a, *y = b;

	return key_cmp(&x->vip, x->port, &y->vip, y->port);
}

struct or_route *or_routes_find(const struct or_routes *r, const struct or_ip *vip,
				      uint16_t port)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = key_cmp(vip, port, &r->v[mid].vip, r->v[mid].port);

		if (c == 0)
			return &r->v[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static void routes_free(struct or_routes *r)
{
	for (size_t i = 0; i < r->n; i++) {
		or_lb_free(&r->v[i].lb);
		for (size_t j = 0; j < r->v[i].n_eps; j++)
			free(r->v[i].eps[j].spiffe_id);
		free(r->v[i].eps);
		for (size_t k = 0; k < r->v[i].n_authz; k++)
			free(r->v[i].authz[k].value);
		free(r->v[i].authz);
		if (r->v[i].metrics) /* set last in build: the budget was initialised */
			or_budget_destroy(&r->v[i].budget);
	}
	free(r->v);
	free(r);
}

/*
 * Whether pod takes part in the mesh on its own node (so its node's agent
 * serves its :15008): the enrollment rule, asked as if we were that node.
 */
static bool pod_in_mesh(const struct or_config *cfg, const struct or_pod_cfg *pod)
{
	struct or_config as_its_node = *cfg;

	as_its_node.node = pod->node;
	return or_pod_enrolled(&as_its_node, pod);
}

/* A mesh pod's SPIFFE ID on ep, for the tunnel to check. 0 or -ENOMEM. */
static int mesh_identity(const struct or_config *cfg, const struct or_pod_cfg *pod,
			 struct or_route_ep *ep)
{
	char id[OR_SPIFFE_ID_MAX];

	if (!pod_in_mesh(cfg, pod) ||
	    or_spiffe_id(cfg->trust_domain, pod->namespace, pod->service_account, id, sizeof(id)))
		return 0;
	ep->spiffe_id = strdup(id);
	return ep->spiffe_id ? 0 : -ENOMEM;
}

/* The pod the config knows at this address, or NULL. */
static const struct or_pod_cfg *pod_at(const struct or_config *cfg, const struct or_ip *ip)
{
	for (size_t i = 0; i < cfg->n_pods; i++)
		if (or_ip_eq(&cfg->pods[i].ip, ip) || or_ip_eq(&cfg->pods[i].ip6, ip))
			return &cfg->pods[i];
	return NULL;
}

/* Endpoints of one service port: explicit ones, or the pods its selector picks. */
static int resolve_eps(const struct or_config *cfg, const struct or_svc_cfg *svc,
		       const struct or_port_cfg *port, struct or_route *rt)
{
	size_t cap = svc->has_selector ? cfg->n_pods : svc->n_endpoints;
	const struct or_pod_cfg *pod;
	uint32_t node_id;
	int err;

	rt->eps = calloc(cap ? cap : 1, sizeof(*rt->eps));
	if (!rt->eps)
		return -ENOMEM;
	if (!svc->has_selector) {
		for (size_t i = 0; i < svc->n_endpoints; i++) {
			const struct or_endpoint_cfg *e = &svc->endpoints[i];
			struct or_route_ep *ep = &rt->eps[rt->n_eps++];

			ep->ip = e->ip;
			ep->port = e->port ? e->port : port->target_port;
			ep->weight = e->weight ? e->weight : 1;
			ep->health = or_health_get(&ep->ip, ep->port);
			if (!ep->health)
				return -ENOMEM;
			/* An address that is a known mesh pod's is reached through its tunnel. */
			pod = pod_at(cfg, &ep->ip);
			if (pod) {
				err = mesh_identity(cfg, pod, ep);
				if (err)
					return err;
			}
			err = id_lookup(&node_ids, e->node ? e->node : "", &node_id);
			if (err)
				return err;
			ep->node_id = node_id;
		}
		return 0;
	}
	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct or_ip *ip;
		struct or_route_ep *ep;

		pod = &cfg->pods[i];
		ip = svc->vip.family == AF_INET6 ? &pod->ip6 : &pod->ip;

		if (strcmp(pod->namespace, svc->namespace) != 0 || !ip->family ||
		    !or_labels_match(&pod->labels, &svc->selector))
			continue;
		ep = &rt->eps[rt->n_eps++];
		ep->ip = *ip;
		ep->port = port->target_port;
		ep->weight = 1;
		err = mesh_identity(cfg, pod, ep);
		if (err)
			return err;
		ep->health = or_health_get(&ep->ip, ep->port);
		if (!ep->health)
			return -ENOMEM;
		err = id_lookup(&node_ids, pod->node, &node_id);
		if (err)
			return err;
		ep->node_id = node_id;
	}
	return 0;
}

/* The service's authorization rules, copied: the config may go first. */
static int copy_authz(const struct or_svc_cfg *svc, struct or_route *rt)
{
	if (!svc->n_authz)
		return 0;
	rt->authz = calloc(svc->n_authz, sizeof(*rt->authz));
	if (!rt->authz)
		return -ENOMEM;
	for (size_t k = 0; k < svc->n_authz; k++) {
		rt->authz[k] = svc->authz[k];
		rt->authz[k].value = NULL;
		rt->n_authz++;
		if (svc->authz[k].value) {
			rt->authz[k].value = strdup(svc->authz[k].value);
			if (!rt->authz[k].value)
				return -ENOMEM;
		}
	}
	return 0;
}

int or_routes_build(const struct or_config *cfg, struct or_routes **out)
{
	struct or_routes *r;
	size_t total = 0;
	uint32_t ignored;
	int err = -ENOMEM;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	atomic_init(&r->ref, 1);
	for (size_t i = 0; i < cfg->n_services; i++)
		total += cfg->services[i].n_ports;
	r->v = calloc(total ? total : 1, sizeof(*r->v));
	if (!r->v)
		goto fail;
	/* This node first, so it is node id 1 in every dump. */
	err = id_lookup(&node_ids, cfg->node, &ignored);
	if (err)
		goto fail;

	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct or_svc_cfg *svc = &cfg->services[i];

		for (size_t j = 0; j < svc->n_ports; j++) {
			struct or_route *rt = &r->v[r->n++];
			uint32_t *weights = NULL;
			char idname[OR_NAME_LEN + 8];

			rt->vip = svc->vip;
			rt->port = svc->ports[j].port;
			rt->mode = svc->mode;
			rt->protocol = svc->ports[j].protocol;
			rt->connect_timeout_ms = svc->policy.connect_timeout_ms;
			rt->policy = svc->policy;
			rt->mtls = or_svc_mtls(cfg, svc);
			err = copy_authz(svc, rt);
			if (err)
				goto fail;
			snprintf(rt->name, sizeof(rt->name), "%s/%s", svc->namespace, svc->name);
			snprintf(idname, sizeof(idname), "%s:%u", rt->name, rt->port);
			err = id_lookup(&svc_ids, idname, &rt->svc_id);
			if (err)
				goto fail;
			err = resolve_eps(cfg, svc, &svc->ports[j], rt);
			if (err)
				goto fail;
			if (rt->n_eps > OR_MAX_BACKENDS) {
				/* The kernel's bound, kept everywhere; the rest get no traffic. */
				or_warn("service has more endpoints than a service can hold; the "
					"rest are left out", "service=%s port=%u endpoints=%zu kept=%d",
					rt->name, rt->port, rt->n_eps, OR_MAX_BACKENDS);
				for (size_t k = OR_MAX_BACKENDS; k < rt->n_eps; k++)
					free(rt->eps[k].spiffe_id);
				rt->n_eps = OR_MAX_BACKENDS;
			}
			weights = calloc(rt->n_eps ? rt->n_eps : 1, sizeof(*weights));
			if (!weights) {
				err = -ENOMEM;
				goto fail;
			}
			for (size_t k = 0; k < rt->n_eps; k++)
				weights[k] = rt->eps[k].weight;
			err = or_lb_init(&rt->lb, svc->policy.load_balancer, weights, rt->n_eps);
			free(weights);
			if (err)
				goto fail;
			or_budget_init(&rt->budget, svc->policy.retries.budget_percent,
				       svc->policy.retries.budget_min_retries_per_s);
			rt->metrics = or_metrics_service(rt->name);
			if (!rt->metrics) {
				or_budget_destroy(&rt->budget);
				err = -ENOMEM;
				goto fail;
			}
		}
	}
	qsort(r->v, r->n, sizeof(*r->v), route_cmp);
	*out = r;
	return 0;
fail:
	routes_free(r);
	return err;
}

int or_routes_single(const char *name, const struct or_ip *ip, uint16_t port,
		     struct or_routes **out)
{
	static const uint32_t one = 1;
	struct or_routes *r;
	struct or_route *rt;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	atomic_init(&r->ref, 1);
	r->v = calloc(1, sizeof(*r->v));
	if (!r->v)
		goto fail;
	rt = &r->v[0];
	r->n = 1;
	rt->vip = *ip;
	rt->port = port;
	rt->mode = OR_SVC_PROXY;
	rt->protocol = OR_PROTOCOL_TCP;
	snprintf(rt->name, sizeof(rt->name), "%s", name);
	or_policy_defaults(&rt->policy);
	rt->connect_timeout_ms = rt->policy.connect_timeout_ms;
	rt->mtls = OR_MTLS_DISABLED;
	rt->eps = calloc(1, sizeof(*rt->eps));
	if (!rt->eps)
		goto fail;
	rt->eps[0].ip = *ip;
	rt->eps[0].port = port;
	rt->eps[0].weight = 1;
	rt->n_eps = 1;
	if (or_lb_init(&rt->lb, OR_LB_ROUND_ROBIN, &one, 1))
		goto fail;
	or_budget_init(&rt->budget, rt->policy.retries.budget_percent,
		       rt->policy.retries.budget_min_retries_per_s);
	rt->metrics = or_metrics_service(rt->name);
	if (!rt->metrics) {
		or_budget_destroy(&rt->budget);
		goto fail;
	}
	*out = r;
	return 0;
fail:
	routes_free(r);
	return -ENOMEM;
}

struct or_routes *or_routes_get(void)
{
	struct or_routes *r;

	pthread_mutex_lock(&current_lock);
	r = current;
	if (r)
		atomic_fetch_add(&r->ref, 1);
	pthread_mutex_unlock(&current_lock);
	return r;
}

void or_routes_put(struct or_routes *r)
{
	if (r && atomic_fetch_sub(&r->ref, 1) == 1)
		routes_free(r);
}

void or_routes_publish(struct or_routes *r)
{
	struct or_routes *old;

	pthread_mutex_lock(&current_lock);
	old = current;
	current = r;
	pthread_mutex_unlock(&current_lock);
	or_routes_put(old);
}
