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

/*
 * Creates the pod's listeners inside its netns; fds in lfd[] (outbound v4,
 * v6, tunnel v4, v6), -1 where absent. Only the outbound IPv4 one is a must.
 */
static int make_listeners(int netns_fd, uint16_t port, const struct or_pod_cfg *pod,
			  int lfd[OR_ENROLL_LSN], uint64_t *cookie, const char *name)
{
	struct or_ip lo4, lo6, any4, any6;
	int err;

	or_ip_parse("127.0.0.1", &lo4);
	or_ip_parse("::1", &lo6);
	or_ip_parse("0.0.0.0", &any4);
	or_ip_parse("::", &any6);
	for (int i = 0; i < OR_ENROLL_LSN; i++)
		lfd[i] = -1;
	err = or_netns_enter(netns_fd);
	if (err)
		return err;
	lfd[0] = or_sock_listen(&lo4, port, OR_LISTEN_BACKLOG);
	if (lfd[0] < 0) {
		err = lfd[0];
		lfd[0] = -1;
		goto out;
	}
	err = or_sock_netns_cookie(lfd[0], cookie);
	if (err)
		goto out;
	lfd[1] = or_sock_listen(&lo6, port, OR_LISTEN_BACKLOG);
	if (lfd[1] < 0) {
		/* A pod without IPv6 still gets IPv4 capture. */
		or_warn("no IPv6 listener in pod", "pod=%s err=\"%s\"", name, strerror(-lfd[1]));
		lfd[1] = -1;
	}
	/* Tunnels from other agents arrive on the pod's own addresses. */
	lfd[2] = or_sock_listen(&pod->ip, OR_PORT_TUNNEL, OR_LISTEN_BACKLOG);
	if (lfd[2] < 0) {
		or_warn("no mTLS tunnel listener in pod", "pod=%s port=%u err=\"%s\"", name,
			OR_PORT_TUNNEL, strerror(-lfd[2]));
		lfd[2] = -1;
	}
	if (pod->ip6.family) {
		lfd[3] = or_sock_listen(&pod->ip6, OR_PORT_TUNNEL, OR_LISTEN_BACKLOG);
		if (lfd[3] < 0) {
			or_warn("no IPv6 mTLS tunnel listener in pod", "pod=%s err=\"%s\"", name,
				strerror(-lfd[3]));
			lfd[3] = -1;
		}
	}
	if (or_proxy.sidecar) {
		/* iptables REDIRECTs what comes in for the app here. */
		lfd[4] = or_sock_listen(&any4, OR_PORT_INBOUND, OR_LISTEN_BACKLOG);
		if (lfd[4] < 0) {
			err = lfd[4];
			lfd[4] = -1;
			goto out;
		}
		if (pod->ip6.family) {
			lfd[5] = or_sock_listen(&any6, OR_PORT_INBOUND, OR_LISTEN_BACKLOG);
			if (lfd[5] < 0) {
				or_warn("no IPv6 inbound listener in pod", "pod=%s err=\"%s\"", name,
					strerror(-lfd[5]));
				lfd[5] = -1;
			}
		}
	}
out:
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

int or_enroll(struct or_bpf *b, const struct or_pod_cfg *pod, uint16_t port,
	      const struct or_ca *ca, uint32_t ttl_s, struct or_enrolled **out)
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
	err = make_listeners(netns_fd, port, pod, lfd, &cookie, e->name);
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
	tls = ca ? mint_identity(ca, pod, ttl_s, time(NULL)) : NULL;
	if (ca && !tls) {
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
	if (err)
		goto fail_cgroup;

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
	or_bpf_pod_delete(b, cookie);
fail_links:
	or_bpf_detach(&e->links);
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

void or_unenroll(struct or_bpf *b, struct or_enrolled *e)
{
	/* Capture stops first, so nothing new is sent to listeners being closed. */
	or_bpf_detach(&e->links);
	if (e->cgroup_fd != -1)
		close(e->cgroup_fd);
	for (int i = 0; i < OR_ENROLL_LSN; i++) {
		if (!e->lsn[i])
			continue;
		or_workers_remove_listener(e->lsn[i]);
		or_listener_put(e->lsn[i]);
	}
	or_bpf_pod_delete(b, e->pod->netns_cookie);
	or_pod_rt_put(e->pod);
	free(e->key);
	free(e->netns_path);
	free(e->cgroup_path);
	free(e->ns);
	free(e->sa);
	free(e);
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
