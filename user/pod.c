// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pod.h"

struct or_pod_rt *or_pod_rt_new(const char *name, int netns_fd, uint64_t netns_cookie)
{
	struct or_pod_rt *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	atomic_init(&p->ref, 1);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->netns_fd = netns_fd;
	p->netns_cookie = netns_cookie;
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
	free(p);
}

struct or_listener *or_listener_new(int fd, int family, struct or_pod_rt *pod)
{
	struct or_listener *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	atomic_init(&l->ref, 1);
	l->fd = fd;
	l->family = family;
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
