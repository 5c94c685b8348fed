// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pod.h"
#include "tls.h"

struct or_pod_rt *or_pod_rt_new(const char *name, int netns_fd, uint64_t netns_cookie)
{
	struct or_pod_rt *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	atomic_init(&p->ref, 1);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->netns_fd = netns_fd;
	p->netns_cookie = netns_cookie;
	pthread_mutex_init(&p->tls_lock, NULL);
	return p;
}

void or_pod_rt_get(struct or_pod_rt *p)
{
	atomic_fetch_add(&p->ref, 1);
}

void or_pod_rt_put(struct or_pod_rt *p)
{
	if (!p || atomic_fetch_sub(&p->ref, 1) != 1)
		return;
	close(p->netns_fd);
	or_tls_id_put(p->tls);
	pthread_mutex_destroy(&p->tls_lock);
	free(p);
}

struct or_tls_id *or_pod_tls_get(struct or_pod_rt *p)
{
	struct or_tls_id *id;

	pthread_mutex_lock(&p->tls_lock);
	id = p->tls;
	if (id)
		or_tls_id_get(id);
	pthread_mutex_unlock(&p->tls_lock);
	return id;
}

void or_pod_tls_set(struct or_pod_rt *p, struct or_tls_id *id)
{
	struct or_tls_id *old;

	pthread_mutex_lock(&p->tls_lock);
	old = p->tls;
	p->tls = id;
	pthread_mutex_unlock(&p->tls_lock);
	or_tls_id_put(old);
}

struct or_listener *or_listener_new(int fd, int family, enum or_listener_kind kind,
				    struct or_pod_rt *pod)
{
	struct or_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	atomic_init(&l->ref, 1);
	l->fd = fd;
	l->family = family;
	l->kind = kind;
	or_pod_rt_get(pod);
	l->pod = pod;
	return l;
}

void or_listener_get(struct or_listener *l)
{
	atomic_fetch_add(&l->ref, 1);
}

void or_listener_put(struct or_listener *l)
{
	if (!l || atomic_fetch_sub(&l->ref, 1) != 1)
		return;
	close(l->fd);
	or_pod_rt_put(l->pod);
	free(l);
}
