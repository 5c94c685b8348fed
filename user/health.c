// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "health.h"
#include "log.h"

struct or_health {
	struct or_ip ip;
	uint16_t port;
	pthread_mutex_t lock;
	struct or_breaker b;
	struct or_outlier_cfg cfg; /* of the last service that reported: for tick() */
	bool mirrored;             /* an or_breakers entry exists */
	struct or_health *next;
};

/* Creation and the list are main-thread only; each record has its own lock. */
static struct or_health *all;
static int breakers_fd = -1;

struct or_health *or_health_get(const struct or_ip *ip, uint16_t port)
{
	struct or_policy_cfg defaults;
	struct or_health *h;

	for (h = all; h; h = h->next)
		if (h->port == port && or_ip_eq(&h->ip, ip))
			return h;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ip = *ip;
	h->port = port;
	pthread_mutex_init(&h->lock, NULL);
	or_breaker_init(&h->b);
	or_policy_defaults(&defaults);
	h->cfg = defaults.outlier_detection;
	h->next = all;
	all = h;
	return h;
}

void or_health_set_map(int fd)
{
	breakers_fd = fd;
}

static void map_key(const struct or_health *h, struct or_breaker_key *k)
{
	memset(k, 0, sizeof(*k));
	or_ip_to_abi(&h->ip, k->addr);
	k->port = h->port;
	k->family = h->ip.family == AF_INET ? OR_AF_INET : OR_AF_INET6;
}

/* Under h->lock. Writes the breaker as the kernel should see it. */
static void mirror(struct or_health *h)
{
	struct or_breaker_key k;
	struct or_breaker_val v = {
		.state = h->b.state,
		.consecutive_failures = h->b.consecutive_5xx + h->b.consecutive_connect_failures,
		.until_ns = h->b.state == OR_BREAKER_OPEN ? h->b.until_ms * 1000000ull : 0,
		.ejections = h->b.ejections,
	};

	if (breakers_fd < 0)
		return;
	map_key(h, &k);
	if (bpf_map_update_elem(breakers_fd, &k, &v, BPF_ANY) == 0)
		h->mirrored = true;
}

bool or_health_usable(struct or_health *h, uint64_t now_ms)
{
	enum or_breaker_state s;

	if (!h)
		return true; /* a route of one address (or_routes_single): no outlier state */
	/* Unlocked read: a stale answer costs one more admit() that says no. */
	s = __atomic_load_n(&h->b.state, __ATOMIC_RELAXED);

	if (s == OR_BREAKER_CLOSED)
		return true;
	if (s == OR_BREAKER_OPEN)
		return __atomic_load_n(&h->b.until_ms, __ATOMIC_RELAXED) <= now_ms;
	return !__atomic_load_n(&h->b.probe_in_flight, __ATOMIC_RELAXED);
}

bool or_health_admit(struct or_health *h, uint64_t now_ms, bool *probe)
{
	enum or_breaker_event ev = OR_BREAKER_NONE;
	bool ok;

	*probe = false;
	if (!h)
		return true;
	pthread_mutex_lock(&h->lock);
	ok = or_breaker_admit(&h->b, now_ms, probe, &ev);
	if (ev != OR_BREAKER_NONE)
		mirror(h);
	pthread_mutex_unlock(&h->lock);
	return ok;
}

static const char *event_msg(enum or_breaker_event ev)
{
	switch (ev) {
	case OR_BREAKER_EJECTED:
		return "endpoint ejected";
	case OR_BREAKER_REEJECTED:
		return "endpoint probe failed; ejected again";
	case OR_BREAKER_PROBING:
		return "endpoint ejection over; probing";
	case OR_BREAKER_RESTORED:
		return "endpoint probe succeeded; restored";
	default:
		return NULL;
	}
}

void or_health_report(struct or_route *rt, int idx, enum or_outcome outcome, uint64_t now_ms)
{
	struct or_health *h = rt->eps[idx].health;
	const struct or_outlier_cfg *cfg = &rt->policy.outlier_detection;
	enum or_breaker_event ev;
	size_t ejected = 0;
	bool had_failures;
	const char *msg;

	if (!h)
		return;

	/* Others' states read unlocked: the percentage is a bound, not a count. */
	for (size_t i = 0; i < rt->n_eps; i++)
		if ((int)i != idx && or_breaker_ejected(&rt->eps[i].health->b, now_ms))
			ejected++;

	pthread_mutex_lock(&h->lock);
	h->cfg = *cfg;
	had_failures = h->b.consecutive_5xx || h->b.consecutive_connect_failures;
	ev = or_breaker_record(&h->b, outcome, cfg, now_ms,
			       or_outlier_may_eject(ejected, rt->n_eps, cfg->max_ejection_percent));
	if (ev != OR_BREAKER_NONE || outcome != OR_OUTCOME_SUCCESS || had_failures)
		mirror(h);
	pthread_mutex_unlock(&h->lock);

	if (ev == OR_BREAKER_EJECTED || ev == OR_BREAKER_REEJECTED)
		atomic_fetch_add(&rt->metrics->ejections, 1);
	msg = event_msg(ev);
	if (msg) {
		char ip[OR_IP_STRLEN];

		or_info(msg, "service=%s endpoint=%s:%u ejections=%u until_ms=%llu", rt->name,
			or_ip_str(&h->ip, ip, sizeof(ip)), h->port, h->b.ejections,
			(unsigned long long)(h->b.state == OR_BREAKER_OPEN ? h->b.until_ms - now_ms
									   : 0));
	}
}

void or_health_tick(uint64_t now_ms)
{
	for (struct or_health *h = all; h; h = h->next) {
		enum or_breaker_event ev;

		pthread_mutex_lock(&h->lock);
		ev = or_breaker_tick(&h->b, &h->cfg, now_ms);
		if (ev != OR_BREAKER_NONE)
			mirror(h);
		pthread_mutex_unlock(&h->lock);
	}
}

void or_health_sync(const struct or_routes *r)
{
	struct or_breaker_key k;

	if (breakers_fd < 0)
		return;
	for (struct or_health *h = all; h; h = h->next) {
		bool used = false;

		for (size_t i = 0; r && i < r->n && !used; i++)
			for (size_t j = 0; j < r->v[i].n_eps && !used; j++)
				used = r->v[i].eps[j].health == h;
		pthread_mutex_lock(&h->lock);
		if (used && !h->mirrored) {
			mirror(h);
		} else if (!used && h->mirrored) {
			map_key(h, &k);
			bpf_map_delete_elem(breakers_fd, &k);
			h->mirrored = false;
		}
		pthread_mutex_unlock(&h->lock);
	}
}

void or_health_free_all(void)
{
	while (all) {
		struct or_health *h = all;

		all = h->next;
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
}
