// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enroll.h"
#include "log.h"
#include "netns.h"
#include "proxy.h"
#include "sock.h"
#include "tls.h"
#include "worker.h"

#define OR_LISTEN_BACKLOG 4096

/* A listener the previous agent handed over for this slot, if it is the right one. */
static int inherited(struct or_ho_client *ho, const char *key, int slot, uint64_t cookie,
		     const struct or_ip *ip, uint16_t port)
{
	int fd = or_ho_take(ho, OR_HO_POD, key, slot);
	uint64_t have = 0;

	if (fd == -1)
		return -1;
	if (or_sock_netns_cookie(fd, &have) || have != cookie ||
	    or_sock_is_listener(fd, ip, port)) {
		/* The pod was replaced under the same name: its own listener is due. */
		or_info("handed-over listener does not fit the pod; a new one replaces it",
			"pod=%s slot=%d", key, slot);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The pod's listeners inside its netns, taken over from the previous agent
 * (ho) where it handed them on, else created; fds in lfd[] (outbound v4,
 * v6, tunnel v4, v6, sidecar inbound v4, v6), -1 where absent. Only the
 * outbound IPv4 one (and in sidecar mode inbound IPv4) is a must.
 */
static int make_listeners(int netns_fd, uint16_t port, const struct or_pod_cfg *pod,
			  int lfd[OR_ENROLL_LSN], uint64_t *cookie, const char *key,
			  struct or_ho_client *ho, unsigned int *n_inherited)
{
	static const char *const what[OR_ENROLL_LSN] = {
		"outbound", "IPv6 outbound", "mTLS tunnel", "IPv6 mTLS tunnel", "inbound",
		"IPv6 inbound",
	};
	struct {
		struct or_ip ip;
		uint16_t port;
		bool want, must;
	} slot[OR_ENROLL_LSN] = {};
	int err;

	or_ip_parse("127.0.0.1", &slot[0].ip);
	or_ip_parse("::1", &slot[1].ip);
	slot[0].port = slot[1].port = port;
	slot[0].want = slot[0].must = slot[1].want = true;
	/* Tunnels from other agents arrive on the pod's own addresses. */
	slot[2].ip = pod->ip;
	slot[3].ip = pod->ip6;
	slot[2].port = slot[3].port = OR_PORT_TUNNEL;
	slot[2].want = true;
	slot[3].want = pod->ip6.family != 0;
	/* Sidecar mode: iptables REDIRECTs what comes in for the app here. */
	or_ip_parse("0.0.0.0", &slot[4].ip);
	or_ip_parse("::", &slot[5].ip);
	slot[4].port = slot[5].port = OR_PORT_INBOUND;
	slot[4].want = slot[4].must = or_proxy.sidecar;
	slot[5].want = or_proxy.sidecar && pod->ip6.family;

	*n_inherited = 0;
	for (int i = 0; i < OR_ENROLL_LSN; i++)
		lfd[i] = -1;
	err = or_netns_enter(netns_fd);
	if (err)
		return err;
	err = or_sock_netns_cookie_here(cookie);
	for (int i = 0; i < OR_ENROLL_LSN && !err; i++) {
		if (!slot[i].want)
			continue;
		lfd[i] = inherited(ho, key, i, *cookie, &slot[i].ip, slot[i].port);
		if (lfd[i] >= 0) {
			(*n_inherited)++;
			continue;
		}
		lfd[i] = or_sock_listen(&slot[i].ip, slot[i].port, OR_LISTEN_BACKLOG);
		if (lfd[i] >= 0)
			continue;
		if (slot[i].must)
			err = lfd[i];
		else /* a pod without IPv6 still gets IPv4 capture, and so on */
			or_warn("no listener in pod", "pod=%s listener=\"%s\" port=%u err=\"%s\"",
				key, what[i], slot[i].port, strerror(-lfd[i]));
		lfd[i] = -1;
	}
	or_netns_leave();
	if (err) {
		for (int i = 0; i < OR_ENROLL_LSN; i++) {
			if (lfd[i] != -1)
				close(lfd[i]);
			lfd[i] = -1;
		}
	}
	return err;
}

/* The pod's or_pods entry: addresses, name, and its current SVID. */
static int write_pod_entry(struct or_bpf *b, const struct or_enrolled *e)
{
	struct or_tls_id *tls = or_pod_tls_get(e->pod);
	struct or_pod_val val = {};
	int err;

	or_ip_to_abi(&e->ip, val.addr);
	or_ip_to_abi(&e->ip6, val.addr6);
	snprintf(val.name, sizeof(val.name), "%s", e->name);
	val.flags = e->fail_open ? OR_POD_F_FAIL_OPEN : 0;
	if (tls) {
		val.svid_not_before = tls->svid->not_before;
		val.svid_not_after = tls->svid->not_after;
		val.svid_renew_at = or_svid_renew_at(tls->svid);
		snprintf(val.spiffe_id, sizeof(val.spiffe_id), "%s", tls->svid->id);
	}
	err = or_bpf_pod_update(b, e->pod->netns_cookie, &val);
	or_tls_id_put(tls);
	return err;
}

/* A fresh SVID for the pod and the TLS contexts that present it. */
static struct or_tls_id *mint_identity(const struct or_ca *ca, const struct or_pod_cfg *pod,
				       uint32_t ttl_s, time_t now)
{
	struct or_svid *svid;
	int err;

	err = or_svid_mint(ca, pod->namespace, pod->service_account, ttl_s, now, &svid);
	if (err) {
		or_error("cannot mint SVID", "pod=%s/%s err=\"%s\"", pod->namespace, pod->name,
			 strerror(-err));
		return NULL;
	}
	return or_tls_id_new(ca, svid);
}

int or_enroll(struct or_bpf *b, const struct or_pod_cfg *pod, const struct or_enroll_opts *o,
	      struct or_enrolled **out)
{
	struct or_tls_id *tls;
	struct or_enrolled *e;
	uint64_t cookie = 0;
	int netns_fd = -1, lfd[OR_ENROLL_LSN] = { -1, -1, -1, -1, -1, -1 };
	const char *step = "allocate";
	int err = -ENOMEM;

	*out = NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->cgroup_fd = -1;
	snprintf(e->name, sizeof(e->name), "%s/%s", pod->namespace, pod->name);
	if (asprintf(&e->key, "%s/%s", pod->namespace, pod->name) < 0)
		e->key = NULL;
	e->netns_path = strdup(pod->netns);
	e->cgroup_path = strdup(pod->cgroup);
	e->ip = pod->ip;
	e->ip6 = pod->ip6;
	e->ns = strdup(pod->namespace);
	e->sa = strdup(pod->service_account);
	e->fail_open = o->fail_open;
	if (!e->key || !e->netns_path || !e->cgroup_path || !e->ns || !e->sa)
		goto fail_alloc;

	step = "open netns";
	if (!or_proxy.sidecar) /* sidecar mode: the agent's own netns, fd -1 */
		netns_fd = or_netns_open(pod->netns);
	if (netns_fd < 0 && !or_proxy.sidecar) {
		err = netns_fd;
		goto fail_alloc;
	}
	step = "create listeners";
	err = make_listeners(netns_fd, o->port, pod, lfd, &cookie, e->key, o->ho, &e->n_inherited);
	if (err) {
		if (netns_fd != -1)
			close(netns_fd);
		goto fail_alloc;
	}
	err = -ENOMEM;
	e->pod = or_pod_rt_new(e->name, netns_fd, cookie);
	if (!e->pod) {
		if (netns_fd != -1)
			close(netns_fd);
		goto fail_listeners;
	}
	e->pod->ip = pod->ip;
	e->pod->ip6 = pod->ip6;
	step = "mint SVID";
	tls = o->ca ? mint_identity(o->ca, pod, o->ttl_s, time(NULL)) : NULL;
	if (o->ca && !tls) {
		err = -EINVAL;
		goto fail_listeners;
	}
	or_pod_tls_set(e->pod, tls);
	for (int i = 0; i < OR_ENROLL_LSN; i++) {
		if (lfd[i] == -1)
			continue;
		e->lsn[i] = or_listener_new(lfd[i], i % 2 == 0 ? AF_INET : AF_INET6,
					    i < 2   ? OR_LSN_OUTBOUND
					    : i < 4 ? OR_LSN_TUNNEL
						    : OR_LSN_INBOUND,
					    e->pod);
		if (!e->lsn[i])
			goto fail_listeners;
		lfd[i] = -1;
	}

	if (or_proxy.sidecar)
		goto accept; /* iptables captures; no programs, no maps */
	step = "open cgroup";
	e->cgroup_fd = open(pod->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->cgroup_fd == -1) {
		err = -errno;
		goto fail_listeners;
	}
	step = "attach programs";
	err = or_bpf_attach(b, e->name, e->cgroup_fd, e->pod->netns_fd, &e->links);
	if (err < 0)
		goto fail_cgroup;
	e->n_adopted = (unsigned int)err;

	step = "write or_pods";
	err = write_pod_entry(b, e);
	if (err)
		goto fail_links;

accept:
	step = "start accepting";
	for (int i = 0; i < OR_ENROLL_LSN; i++) {
		if (!e->lsn[i])
			continue;
		err = or_workers_add_listener(e->lsn[i]);
		if (err)
			goto fail_workers;
	}
	*out = e;
	return 0;

fail_workers:
	for (int i = 0; i < OR_ENROLL_LSN; i++)
		if (e->lsn[i])
			or_workers_remove_listener(e->lsn[i]);
	if (!e->n_adopted) /* else the previous agent's entry: left as it was */
		or_bpf_pod_delete(b, cookie);
fail_links:
	/* What we attached goes; a previous agent's links stay as they were. */
	or_bpf_links_abandon(&e->links);
fail_cgroup:
	if (e->cgroup_fd != -1)
		close(e->cgroup_fd);
fail_listeners:
	for (int i = 0; i < OR_ENROLL_LSN; i++) {
		if (lfd[i] != -1)
			close(lfd[i]);
		or_listener_put(e->lsn[i]);
	}
	or_pod_rt_put(e->pod);
fail_alloc:
	or_error("cannot enroll pod", "pod=%s step=\"%s\" err=\"%s\"", e->name, step,
		 strerror(-err));
	free(e->key);
	free(e->netns_path);
	free(e->cgroup_path);
	free(e->ns);
	free(e->sa);
	free(e);
	return err;
}

/* Stops accepting on e's listeners and frees it; the links are dealt with already. */
static void enrolled_free(struct or_enrolled *e)
{
	if (e->cgroup_fd != -1)
		close(e->cgroup_fd);
	for (int i = 0; i < OR_ENROLL_LSN; i++) {
		if (!e->lsn[i])
			continue;
		or_workers_remove_listener(e->lsn[i]);
		or_listener_put(e->lsn[i]);
	}
	or_pod_rt_put(e->pod);
	free(e->key);
	free(e->netns_path);
	free(e->cgroup_path);
	free(e->ns);
	free(e->sa);
	free(e);
}

void or_unenroll(struct or_bpf *b, struct or_enrolled *e)
{
	/* Capture stops first, so nothing new is sent to listeners being closed. */
	or_bpf_detach(&e->links);
	or_bpf_pod_delete(b, e->pod->netns_cookie);
	enrolled_free(e);
}

bool or_enrolled_same(const struct or_enrolled *e, const struct or_pod_cfg *pod)
{
	return strcmp(e->netns_path, pod->netns) == 0 && strcmp(e->cgroup_path, pod->cgroup) == 0 &&
	       strcmp(e->ns, pod->namespace) == 0 && strcmp(e->sa, pod->service_account) == 0 &&
	       or_ip_eq(&e->ip, &pod->ip) && or_ip_eq(&e->ip6, &pod->ip6);
}

int or_enrolled_renew(struct or_bpf *b, struct or_enrolled *e, const struct or_ca *ca,
		      uint32_t ttl_s, time_t now)
{
	struct or_tls_id *cur = or_pod_tls_get(e->pod), *next;
	struct or_pod_cfg pod = { .namespace = e->ns, .service_account = e->sa };
	time_t due = cur ? or_svid_renew_at(cur->svid) : 0;

	or_tls_id_put(cur);
	if (!ca || (cur && now < due))
		return 0;
	next = mint_identity(ca, &pod, ttl_s, now);
	if (!next)
		return -ENOMEM; /* the old SVID serves until it expires; retried next tick */
	or_info("SVID renewed", "pod=%s id=\"%s\" not_after=%lld", e->name, next->svid->id,
		(long long)next->svid->not_after);
	/* Tunnels already up keep their session; new ones get the new SVID. */
	or_pod_tls_set(e->pod, next);
	return write_pod_entry(b, e);
}

int or_enrolled_set_fail_open(struct or_bpf *b, struct or_enrolled *e, bool fail_open)
{
	if (e->fail_open == fail_open)
		return 0;
	e->fail_open = fail_open;
	return write_pod_entry(b, e);
}

void or_enrolled_keep(struct or_enrolled *e)
{
	/* The links stay pinned, the or_pods entry stays: the next agent adopts both. */
	or_bpf_links_keep(&e->links);
	enrolled_free(e);
}
