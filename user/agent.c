// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "health.h"
#include "kube_source.h"
#include "kubeconfig.h"
#include "tls.h"
#include "tunnel_in.h"
#include "tunnel_out.h"
#include "metrics.h"
#include "log.h"
#include "netns.h"
#include "proxy.h"
#include "routes.h"
#include "worker.h"

#define OR_HEARTBEAT_MS 1000
#define OR_DRAIN_POLL_MS 50
#define OR_HO_TIMEOUT_MS 3000 /* a predecessor that does not answer by then is hung */
#define OR_HO_PENDING_MAX_MS 10000 /* a pod still not enrolled after this does not hold READY */

static void sync_inbound(struct or_agent *a);
#define OR_RETRY_MS 2000
#define OR_KUBE_SETTLE_MS 20   /* changes that arrive together are applied together */
#define OR_KUBE_PENDING_MS 250 /* a pod waiting for its cgroup is looked for again */
#define OR_KUBE_PENDING_MAX_MS 5000

/* "namespace/name" is key, whole (Kubernetes names may be long). */
static bool pod_is(const struct or_pod_cfg *pod, const char *key)
{
	size_t n = strlen(pod->namespace);

	return strncmp(key, pod->namespace, n) == 0 && key[n] == '/' &&
	       strcmp(key + n + 1, pod->name) == 0;
}

static const struct or_pod_cfg *find_pod(const struct or_config *cfg, const char *key)
{
	for (size_t i = 0; i < cfg->n_pods; i++)
		if (pod_is(&cfg->pods[i], key))
			return &cfg->pods[i];
	return NULL;
}

static bool is_enrolled(const struct or_agent *a, const struct or_pod_cfg *pod)
{
	for (const struct or_enrolled *e = a->pods; e; e = e->next)
		if (pod_is(pod, e->key))
			return true;
	return false;
}

/* Whether the agent serves pod: its rule, or in sidecar mode the one pod. */
static bool wants(const struct or_agent *a, const struct or_pod_cfg *pod)
{
	return a->sidecar ? pod_is(pod, a->sidecar) : or_pod_enrolled(a->cfg, pod);
}

/*
 * The pod as this agent enrolls it: in sidecar mode it is the agent's own
 * netns, and there is no cgroup to attach to (the file may name neither).
 */
static const struct or_pod_cfg *as_here(const struct or_agent *a, const struct or_pod_cfg *pod,
					struct or_pod_cfg *buf)
{
	if (!a->sidecar)
		return pod;
	*buf = *pod;
	buf->netns = (char *)"/proc/self/ns/net";
	buf->cgroup = (char *)"";
	return buf;
}

/* The pod's namespace says fail-open (only allowed where mTLS is not strict). */
static bool pod_fail_open(const struct or_config *cfg, const struct or_pod_cfg *pod)
{
	const struct or_ns_cfg *ns = or_config_namespace(cfg, pod->namespace);

	return ns && ns->on_agent_down == OR_AGENT_DOWN_FAIL_OPEN;
}

/*
 * Whether cfg is the whole desired state: with `kubernetes:`, only once the
 * API's objects are in it. Until then nothing a previous agent left is
 * removed, and a predecessor is not told to stop.
 */
static bool state_complete(const struct or_agent *a)
{
	return !a->cfg->kubernetes || (a->kube && or_kube_synced(a->kube));
}

static void ho_serve(struct or_agent *a);

/*
 * The desired state is in force: a predecessor may go once every pod is
 * served (or after OR_HO_PENDING_MAX_MS, not to wait on a pod that never
 * comes), and what a previous agent left for pods nobody wants goes.
 * Only once this agent is ready: until then a failed start leaves the
 * predecessor in charge.
 */
static void settle(struct or_agent *a)
{
	const char **names;
	char (*buf)[OR_NAME_LEN];
	size_t n = 0;

	if (!a->ready || !state_complete(a) || or_ho_handing(a->ho_srv))
		return;
	if (a->ho_active && (!a->pods_pending || ev_now_ms(a->loop) >= a->ho_deadline_ms)) {
		size_t unused = or_ho_client_done(&a->ho);

		a->ho_active = false;
		or_info("take-over complete: the previous agent stops accepting and drains",
			"unused_sockets=%zu pods_pending=%s", unused, a->pods_pending ? "yes" : "no");
	}
	ho_serve(a);
	names = calloc(a->cfg->n_pods + 1, sizeof(*names));
	buf = calloc(a->cfg->n_pods + 1, sizeof(*buf));
	if (names && buf) {
		/* As or_enrolled.name: "namespace/name" cut to the maps' size. */
		for (size_t i = 0; i < a->cfg->n_pods; i++) {
			const struct or_pod_cfg *pod = &a->cfg->pods[i];

			if (!wants(a, pod))
				continue;
			snprintf(buf[n], sizeof(buf[n]), "%s/%s", pod->namespace, pod->name);
			names[n] = buf[n];
			n++;
		}
		or_bpf_sweep(&a->bpf, names, n);
	}
	free(names);
	free(buf);
}

/*
 * The CA's files still hold the CA this agent signs with (or_ca_check).
 * Logged when that changes, not every time it is asked.
 */
static bool ca_usable(struct or_agent *a)
{
	char err[512];
	int ret;

	if (!a->ca)
		return false;
	ret = or_ca_check(a->ca, err, sizeof(err));
	if (ret && !a->ca_down)
		or_error("CA unavailable: no SVID is minted or renewed; each pod's current one "
			 "serves until it expires", "error=\"%s\"", err);
	else if (!ret && a->ca_down)
		or_info("CA available again: SVIDs are minted and renewed", "cert=%s",
			a->ca->cert_path);
	a->ca_down = ret != 0;
	return !ret;
}

/* Makes the enrolled set match the config: release first, then capture. */
static void reconcile_pods(struct or_agent *a)
{
	const struct or_config *cfg = a->cfg;
	struct or_enrolled **pp = &a->pods;
	struct or_enroll_opts opts = {
		.port = OR_PORT_OUTBOUND,
		.ca = a->ca,
		.ttl_s = cfg->svid_ttl_s,
		.ho = a->ho_active ? &a->ho : NULL,
	};

	/* A successor holds our sockets: pods and pins are its to change now. */
	if (a->draining || or_ho_handing(a->ho_srv))
		return;
	while (*pp) {
		struct or_enrolled *e = *pp;
		const struct or_pod_cfg *pod = find_pod(cfg, e->key);

		struct or_pod_cfg here;

		if (pod && wants(a, pod) && or_enrolled_same(e, as_here(a, pod, &here))) {
			if (or_enrolled_set_fail_open(&a->bpf, e, pod_fail_open(cfg, pod)))
				or_error("cannot write or_pods", "pod=%s", e->name);
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		or_info("pod released", "pod=%s reason=%s", e->name,
			!pod ? "removed" : wants(a, pod) ? "changed" : "not selected");
		or_unenroll(&a->bpf, e);
		a->n_enrolled--;
	}

	a->pods_pending = false;
	/* Asked once: it reads the CA's files (or_ca_check). */
	int ca_down = -1;

	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct or_pod_cfg *pod = &cfg->pods[i];
		struct or_pod_cfg here;
		struct or_enrolled *e;
		char ip[OR_IP_STRLEN];

		if (!wants(a, pod) || is_enrolled(a, pod))
			continue;
		if (ca_down < 0)
			ca_down = a->ca && !ca_usable(a);
		/* No identity to give it: it waits (retried) rather than go without. */
		if (ca_down) {
			a->pods_pending = true;
			continue;
		}
		opts.fail_open = pod_fail_open(cfg, pod);
		if (or_enroll(&a->bpf, as_here(a, pod, &here), &opts, &e)) {
			a->pods_pending = true;
			continue;
		}
		e->next = a->pods;
		a->pods = e;
		a->n_enrolled++;
		or_info("pod captured", "pod=%s ip=%s netns_cookie=%llu on_agent_down=%s "
			"listeners_taken_over=%u links_adopted=%u", e->name,
			or_ip_str(&pod->ip, ip, sizeof(ip)),
			(unsigned long long)e->pod->netns_cookie,
			e->fail_open ? "fail-open" : "fail-closed", e->n_inherited, e->n_adopted);
	}
	if (a->pods_pending && !ev_timer_active(&a->retry))
		ev_timer_start(a->loop, &a->retry, OR_RETRY_MS);
	sync_inbound(a);
	settle(a);
}

/* Puts cfg in force (taking it over): routes, maps, then pods. */
static int apply(struct or_agent *a, struct or_config *cfg)
{
	struct or_routes *routes;
	int err;

	/*
	 * With `kubernetes:` and the API not listed yet, cfg lacks the API's
	 * services: entries a previous agent wrote for them stay until it has
	 * them. While a successor holds our sockets the maps are its own.
	 */
	bool complete = !cfg->kubernetes || (a->kube && or_kube_synced(a->kube));

	err = or_routes_build(cfg, &routes);
	if (err) {
		or_config_free(cfg);
		return err;
	}
	err = or_ho_handing(a->ho_srv) ? 0 : or_bpf_sync_routes(&a->bpf, routes, complete);
	if (err) {
		or_error("cannot write service maps", "err=\"%s\"", strerror(-err));
		or_routes_put(routes);
		or_config_free(cfg);
		return err;
	}
	or_routes_publish(routes);
	atomic_fetch_add(&or_tunnel_policy_gen, 1); /* open tunnels re-check their rules */
	routes = or_routes_get();
	or_health_sync(routes);
	or_routes_put(routes);
	atomic_store(&or_proxy.max_connections, cfg->max_connections);
	atomic_store(&or_proxy.header_timeout_ms, cfg->header_timeout_ms);
	atomic_store(&or_proxy.buffer_bytes, cfg->buffer_bytes);
	or_config_free(a->cfg);
	a->cfg = cfg;
	reconcile_pods(a);
	if (a->kube)
		or_debug("desired state in force", "file=%s services=%zu pods=%zu namespaces=%zu",
			 cfg->path, cfg->n_services, cfg->n_pods, cfg->n_namespaces);
	else
		or_info("config in force", "file=%s services=%zu pods=%zu", cfg->path,
			cfg->n_services, cfg->n_pods);
	return 0;
}

/*
 * The config from the file plus, with `kubernetes:`, what the API says:
 * the one desired state apply() puts in force. Takes cfg; NULL on ENOMEM.
 */
static struct or_config *desired(struct or_agent *a, struct or_config *cfg)
{
	size_t pending = 0;

	/* Until every kind is listed, a partial view would drop services' endpoints. */
	if (!a->kube || !or_kube_synced(a->kube))
		return cfg;
	if (or_kube_merge(a->kube, cfg, &pending)) {
		or_error("kubernetes: out of memory building the desired state", "file=%s",
			 cfg->path);
		or_config_free(cfg);
		return NULL;
	}
	a->kube_pending = pending;
	if (!pending) {
		a->kube_pending_ms = OR_KUBE_PENDING_MS;
	} else if (!ev_timer_active(&a->kube_settle)) {
		/* Looked for again soon, then less often: 250 ms doubling to 5 s. */
		ev_timer_start(a->loop, &a->kube_settle, a->kube_pending_ms);
		a->kube_pending_ms = a->kube_pending_ms * 2 > OR_KUBE_PENDING_MAX_MS
					     ? OR_KUBE_PENDING_MAX_MS
					     : a->kube_pending_ms * 2;
	}
	return cfg;
}

/* The file's config in force again, with the API's objects as they are now. */
static void kube_rebuild(struct or_agent *a)
{
	struct or_config *cfg;
	char err[512];

	if (or_config_load_buf(a->cfg->path, a->cfg->text, a->cfg->text_len, &cfg, err,
			       sizeof(err))) {
		or_error("cannot parse the config in force again", "error=\"%s\"", err);
		return;
	}
	cfg = desired(a, cfg);
	if (cfg && apply(a, cfg) == 0) {
		a->kube_applies++;
		if (!a->kube_applied)
			or_info("kubernetes: synced; desired state in force",
				"services=%zu pods=%zu namespaces=%zu enrolled=%zu",
				a->cfg->n_services, a->cfg->n_pods, a->cfg->n_namespaces,
				a->n_enrolled);
		a->kube_applied = true;
	}
}

static void on_kube_settle(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_agent *a = container_of(t, struct or_agent, kube_settle);

	/* Until every kind is listed, a partial view would release pods. */
	if (!or_kube_synced(a->kube))
		return;
	kube_rebuild(a);
}

static void on_kube_change(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_agent *a = container_of(io, struct or_agent, kube_io);

	/*
	 * Applied OR_KUBE_SETTLE_MS after the first change of a burst; sooner
	 * than a pending pod's slower retry, and never pushed back by more.
	 */
	if (or_kube_changed(a->kube) &&
	    (!ev_timer_active(&a->kube_settle) ||
	     a->kube_settle.deadline_ms > ev_now_ms(loop) + OR_KUBE_SETTLE_MS))
		ev_timer_start(loop, &a->kube_settle, OR_KUBE_SETTLE_MS);
}

static int kube_start(struct or_agent *a)
{
	struct or_kube_creds creds;
	char err[512];
	int ret;

	if (a->cfg->kube_config)
		ret = or_kubeconfig_load(a->cfg->kube_config, a->cfg->kube_context, &creds, err,
					 sizeof(err));
	else
		ret = or_kube_in_cluster(NULL, &creds, err, sizeof(err));
	if (ret) {
		or_error("kubernetes: no credentials", "error=\"%s\"", err);
		return ret;
	}
	ret = or_kube_start(&creds, a->cfg->node, &a->kube);
	or_kube_creds_free(&creds);
	if (ret) {
		or_error("kubernetes: cannot start the watchers", "err=\"%s\"", strerror(-ret));
		return ret;
	}
	ret = ev_io_add(a->loop, &a->kube_io, or_kube_fd(a->kube), EV_READ, on_kube_change);
	if (ret) {
		or_kube_stop(a->kube);
		a->kube = NULL;
	}
	return ret;
}

static void kube_stop(struct or_agent *a)
{
	if (!a->kube)
		return;
	ev_io_del(a->loop, &a->kube_io);
	ev_timer_stop(a->loop, &a->kube_settle);
	or_kube_stop(a->kube);
	a->kube = NULL;
	or_kube_source_reset();
}

static bool same_opt_str(const char *x, const char *y)
{
	return (!x && !y) || (x && y && strcmp(x, y) == 0);
}

static void reload(struct or_agent *a)
{
	struct or_config *cfg;
	char err[512];

	if (or_config_load_file(a->config_path, &cfg, err, sizeof(err))) {
		or_error("config rejected; the config in force stays", "error=\"%s\"", err);
		a->reloads_failed++;
		return;
	}
	if (strcmp(cfg->pin_dir, a->cfg->pin_dir) != 0 || strcmp(cfg->node, a->cfg->node) != 0 ||
	    strcmp(cfg->trust_domain, a->cfg->trust_domain) != 0 ||
	    strcmp(cfg->state_dir, a->cfg->state_dir) != 0 ||
	    (cfg->ca_cert && (!a->cfg->ca_cert || strcmp(cfg->ca_cert, a->cfg->ca_cert))) ||
	    (!cfg->ca_cert && a->cfg->ca_cert) ||
	    !or_ip_eq(&cfg->admin_ip, &a->cfg->admin_ip) || cfg->admin_port != a->cfg->admin_port ||
	    !or_ip_eq(&cfg->ready_ip, &a->cfg->ready_ip) || cfg->ready_port != a->cfg->ready_port ||
	    cfg->kubernetes != a->cfg->kubernetes ||
	    !same_opt_str(cfg->kube_config, a->cfg->kube_config) ||
	    !same_opt_str(cfg->kube_context, a->cfg->kube_context)) {
		or_error("config rejected; the config in force stays",
			 "error=\"%s: node, pin_dir, admin_address, ready_address, trust_domain, "
			 "state_dir, ca and kubernetes cannot change without a restart\"",
			 a->config_path);
		or_config_free(cfg);
		a->reloads_failed++;
		return;
	}
	cfg = desired(a, cfg);
	if (!cfg || apply(a, cfg))
		a->reloads_failed++;
	else
		a->reloads_ok++;
}

/* Worker 0, every OR_HEARTBEAT_MS: or_settings says the agent is alive. */
static void beat(void *ctx)
{
	struct or_agent *a = ctx;

	pthread_mutex_lock(&a->beat_lock);
	if (a->beating)
		or_bpf_heartbeat(&a->bpf, false);
	pthread_mutex_unlock(&a->beat_lock);
}

/*
 * No more beats; with stopped, or_settings says so at once (no successor).
 * Under the lock, so no beat in flight overwrites it.
 */
static void stop_beating(struct or_agent *a, bool stopped)
{
	pthread_mutex_lock(&a->beat_lock);
	if (a->beating && stopped)
		or_bpf_heartbeat(&a->bpf, true);
	a->beating = false;
	pthread_mutex_unlock(&a->beat_lock);
}

static void on_drain(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_agent *a = container_of(t, struct or_agent, drain);
	uint32_t left = atomic_load(&or_proxy.active);

	if (left && ev_now_ms(loop) < a->drain_deadline_ms) {
		ev_timer_start(loop, t, OR_DRAIN_POLL_MS);
		return;
	}
	if (left)
		or_warn("drain timeout: closing the connections left", "connections=%u "
			"drain_timeout_ms=%u", left, a->cfg->drain_timeout_ms);
	else
		or_info("drained", "connections=0");
	if (a->replaced && a->wait_replaced) {
		/* Exiting would have the container restarted, and take over again. */
		or_workers_stop(); /* closes what the drain left */
		a->drained = true;
		or_info("replaced and drained: idle until SIGTERM", "pid=%d", getpid());
		return;
	}
	ev_loop_stop(loop);
}

/*
 * Stops taking new connections and lets the established ones run for
 * drain_timeout_ms. The pods stay captured (links and maps pinned).
 * replaced: a successor accepts on the same listeners and owns the pins
 * now; otherwise the kernel is told the agent is down, so each pod's
 * on_agent_down applies at once.
 */
static void begin_drain(struct or_agent *a, bool replaced)
{
	a->draining = true;
	a->replaced = replaced;
	a->ready = false;
	ev_timer_stop(a->loop, &a->heartbeat);
	ev_timer_stop(a->loop, &a->retry);
	kube_stop(a);
	or_ho_close(a->ho_srv);
	a->ho_srv = NULL;
	if (a->ho_active) /* a predecessor still waits for our READY: it carries on */
		or_ho_client_abort(&a->ho);
	a->ho_active = false;
	stop_beating(a, !replaced);
	if (replaced) {
		/* The successor answers on the admin addresses now. */
		or_admin_stop(a->admin);
		a->admin = NULL;
	}
	while (a->pods) {
		struct or_enrolled *e = a->pods;

		a->pods = e->next;
		or_enrolled_keep(e);
	}
	a->n_enrolled = 0;
	atomic_store(&or_proxy.draining, true);
	or_workers_drain();
	a->drain_deadline_ms = ev_now_ms(a->loop) + a->cfg->drain_timeout_ms;
	or_info("draining", "connections=%u drain_timeout_ms=%u replaced=%s pins=kept",
		atomic_load(&or_proxy.active), a->cfg->drain_timeout_ms, replaced ? "yes" : "no");
	ev_timer_start(a->loop, &a->drain, 0);
}

static void on_signal(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_agent *a = container_of(io, struct or_agent, signal_io);
	struct signalfd_siginfo si;

	while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			if (a->draining)
				continue; /* the config no longer matters */
			or_info("reloading", "file=%s", a->config_path);
			reload(a);
		} else if (a->draining && a->replaced && !a->drained && !a->term_seen) {
			/* The pod of a replaced agent is deleted: finish the drain, then exit. */
			a->term_seen = true;
			a->wait_replaced = false;
			or_info("draining on; exiting once drained", "signal=%s",
				strsignal(si.ssi_signo));
		} else if (a->draining) {
			if (!a->drained)
				or_info("stopping now: drain cut short", "signal=%s",
					strsignal(si.ssi_signo));
			ev_loop_stop(loop);
		} else {
			or_info("stopping", "signal=%s", strsignal(si.ssi_signo));
			begin_drain(a, false);
		}
	}
}

/* The successor (the handover socket's peer) serves every pod now. */
static void on_replaced(void *ctx, pid_t successor)
{
	struct or_agent *a = ctx;

	or_info("replaced by a new agent: no longer accepting", "successor_pid=%d",
		(int)successor);
	begin_drain(a, true);
}

/*
 * The successor went away before READY: what we left alone meanwhile
 * (maps, pods) is ours to bring in line again.
 */
static void on_abandoned(void *ctx)
{
	struct or_agent *a = ctx;
	struct or_routes *r = or_routes_get();

	if (r && or_bpf_sync_routes(&a->bpf, r, state_complete(a)))
		or_error("cannot write service maps", "after=\"an abandoned take-over\"");
	or_routes_put(r);
	reconcile_pods(a);
}

/* Every listener to hand a successor: the pods', then the admin ones. */
static size_t ho_collect(void *ctx, struct or_ho_item *items, size_t max)
{
	struct or_agent *a = ctx;
	size_t n = 0;

	for (const struct or_enrolled *e = a->pods; e; e = e->next) {
		for (int i = 0; i < OR_ENROLL_LSN; i++) {
			if (!e->lsn[i])
				continue;
			if (n < max) {
				items[n] = (struct or_ho_item){ .kind = OR_HO_POD, .slot = (uint8_t)i,
								.netns_cookie = e->pod->netns_cookie,
								.fd = e->lsn[i]->fd };
				snprintf(items[n].key, sizeof(items[n].key), "%s", e->key);
			}
			n++;
		}
	}
	for (int i = 0; i < 2; i++) {
		int fd = or_admin_listener_fd(a->admin, i == 0);

		if (fd < 0)
			continue;
		if (n < max)
			items[n] = (struct or_ho_item){ .kind = i == 0 ? OR_HO_ADMIN : OR_HO_HEALTH,
							.fd = fd };
		n++;
	}
	return n;
}

/* Where a successor finds us: started once any take-over of our own is done. */
static void ho_serve(struct or_agent *a)
{
	struct or_ho_hooks hooks = { .collect = ho_collect, .replaced = on_replaced,
				     .abandoned = on_abandoned, .ctx = a };
	int err;

	if (a->ho_srv || a->ho_active || a->draining || !a->ho_path[0])
		return;
	err = or_ho_listen(a->loop, a->ho_path, a->ho_who, a->cfg->pin_dir, &hooks,
			   &a->ho_srv);
	if (err)
		or_warn("no take-over socket: a new agent will start afresh", "path=%s err=\"%s\"",
			a->ho_path, strerror(-err));
}

/*
 * A predecessor's sockets, if one runs (same node, same pin_dir). 0 (taken
 * over or nobody there), or -errno when one runs but would not hand over.
 */
static int ho_fetch(struct or_agent *a)
{
	int err;

	/* Who takes over from whom: the node's agent, or in sidecar mode one pod's. */
	snprintf(a->ho_who, sizeof(a->ho_who), "%s%s%s", a->cfg->node,
		 a->sidecar ? "|sidecar:" : "", a->sidecar ? a->sidecar : "");
	if (or_ho_path(a->cfg->state_dir, a->ho_who, a->cfg->pin_dir, a->ho_path,
		       sizeof(a->ho_path))) {
		or_warn("state_dir path too long for the take-over socket", "state_dir=%s",
			a->cfg->state_dir);
		a->ho_path[0] = 0;
		return 0;
	}
	err = or_ho_fetch(a->ho_path, a->ho_who, a->cfg->pin_dir, OR_HO_TIMEOUT_MS, &a->ho);
	if (err == -ENOENT || err == -ECONNREFUSED)
		return 0; /* nobody there: start afresh */
	if (err) {
		/* An agent is there and keeps its sockets: ours could not even bind. */
		or_error("an agent runs and the take-over failed: not starting beside it",
			 "path=%s err=\"%s\"", a->ho_path, strerror(-err));
		return err;
	}
	a->ho_active = true;
	a->ho_deadline_ms = ev_now_ms(a->loop) + OR_HO_PENDING_MAX_MS;
	or_info("taking over from a running agent", "peer_pid=%d sockets=%zu", (int)a->ho.peer,
		a->ho.n);
	return 0;
}

/* The admin listeners the predecessor handed over (taken before pods settle), or -1. */
static int ho_admin_fd(void *ctx, bool metrics)
{
	struct or_agent *a = ctx;
	int fd = a->ho_admin_fd[metrics ? 0 : 1];

	a->ho_admin_fd[metrics ? 0 : 1] = -1;
	return fd;
}

/* The node's mTLS counters into or_tls, for outriderctl tls. */
static void write_tls_counters(struct or_agent *a)
{
	struct or_tls_counters c = {
		.handshakes = or_tls_stats.handshakes - or_tls_stats.resumed,
		.resumed = or_tls_stats.resumed,
		.tunnels_in = or_tunnel_stats.established,
		.tunnels_out = or_tunnel_out_stats.established,
		.tunnels_out_failed = or_tunnel_out_stats.failed,
		.denied = or_tunnel_stats.denied,
		.bad_request = or_tunnel_stats.bad_request,
		.app_failed = or_tunnel_stats.app_failed,
	};

	c.failures[0] = or_tls_stats.failures_tls;
	for (int r = 1; r < OR_SVID_ERR_MAX && r < OR_TLS_REASONS; r++)
		c.failures[r] = or_tls_stats.failures[r];
	or_bpf_tls_update(&a->bpf, &c);
}

/*
 * or_inbound: each enrolled pod's app ports (the endpoints it is for some
 * service) with the strictest mtls mode among those services.
 */
static void sync_inbound(struct or_agent *a)
{
	struct or_routes *r = or_routes_get();
	struct or_inbound_want *want = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; r && i < r->n; i++) {
		const struct or_route *rt = &r->v[i];
		uint8_t mode = rt->mtls == OR_MTLS_STRICT	  ? OR_INBOUND_STRICT
			       : rt->mtls == OR_MTLS_PERMISSIVE ? OR_INBOUND_PERMISSIVE
								  : 0;

		if (!mode)
			continue;
		for (size_t j = 0; j < rt->n_eps; j++) {
			const struct or_route_ep *ep = &rt->eps[j];
			struct or_inbound_key k = { .port = ep->port };
			bool ours = false;
			size_t m;

			/* Pods this agent wants, enrolled or not yet: strict holds meanwhile. */
			for (size_t p = 0; p < a->cfg->n_pods && !ours; p++) {
				const struct or_pod_cfg *pod = &a->cfg->pods[p];

				ours = wants(a, pod) && (or_ip_eq(&ep->ip, &pod->ip) ||
							 or_ip_eq(&ep->ip, &pod->ip6));
			}
			if (!ours)
				continue;
			or_ip_to_abi(&ep->ip, k.addr);
			k.family = ep->ip.family == AF_INET ? OR_AF_INET : OR_AF_INET6;
			for (m = 0; m < n; m++)
				if (memcmp(&want[m].key, &k, sizeof(k)) == 0)
					break;
			if (m < n) {
				if (mode > want[m].val.mode)
					want[m].val.mode = mode;
				continue;
			}
			if (n == cap) {
				struct or_inbound_want *nw;

				cap = cap ? cap * 2 : 16;
				nw = realloc(want, cap * sizeof(*want));
				if (!nw)
					goto out;
				want = nw;
			}
			want[n].key = k;
			want[n].val = (struct or_inbound_val){ .mode = mode };
			n++;
		}
	}
	if (or_bpf_sync_inbound(&a->bpf, want, n, state_complete(a)))
		or_error("cannot write or_inbound", "entries=%zu", n);
out:
	free(want);
	or_routes_put(r);
}

static void on_heartbeat(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_agent *a = container_of(t, struct or_agent, heartbeat);

	or_health_tick(ev_now_ms(loop));
	if (ca_usable(a))
		for (struct or_enrolled *e = a->pods; e; e = e->next)
			or_enrolled_renew(&a->bpf, e, a->ca, a->cfg->svid_ttl_s, time(NULL));
	write_tls_counters(a);
	ev_timer_start(loop, t, OR_HEARTBEAT_MS);
}

static void on_retry(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_agent *a = container_of(t, struct or_agent, retry);

	if (a->pods_pending)
		reconcile_pods(a);
}

static bool admin_ready(void *ctx)
{
	struct or_agent *a = ctx;

	/*
	 * With the API as a source: only once its state is in force. Not
	 * while a successor is taking over (its probe may reach us: the ready
	 * listener is shared), so it is its own readiness that counts.
	 */
	return a->ready && (!a->kube || a->kube_applied) && !or_ho_handing(a->ho_srv);
}

/* The watchers' counters, per kind; into s[0..room), returns how many. */
static size_t kube_samples(struct or_agent *a, struct or_metric_sample *s, size_t room)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
		{ "outrider_kubernetes_lists_total", "counter",
		  "Complete lists of a kind from the Kubernetes API.",
		  offsetof(struct or_kube_counters, lists) },
		{ "outrider_kubernetes_relists_total", "counter",
		  "Lists after a watch's resourceVersion expired (410 Gone).",
		  offsetof(struct or_kube_counters, relists) },
		{ "outrider_kubernetes_events_total", "counter",
		  "Watch events applied (added, modified, deleted).",
		  offsetof(struct or_kube_counters, events) },
		{ "outrider_kubernetes_failures_total", "counter",
		  "Failed API requests: connect, TLS, HTTP status, dropped stream.",
		  offsetof(struct or_kube_counters, failures) },
		{ "outrider_kubernetes_malformed_total", "counter",
		  "Responses and watch events that did not decode.",
		  offsetof(struct or_kube_counters, malformed) },
		{ "outrider_kubernetes_objects", "gauge", "Objects of a kind the agent holds.",
		  offsetof(struct or_kube_counters, objects) },
	};
	static char labels[OR_KUBE_NKINDS][32];
	struct or_kube_counters c[OR_KUBE_NKINDS];
	size_t n = 0;

	if (!a->kube || room < OR_KUBE_NKINDS * (sizeof(m) / sizeof(m[0])))
		return 0;
	for (int k = 0; k < OR_KUBE_NKINDS; k++) {
		or_kube_counters(a->kube, (enum or_k8s_kind)k, &c[k]);
		snprintf(labels[k], sizeof(labels[k]), "kind=\"%s\"", or_kube_kind_name(k));
	}
	/* Samples of one name together: the first gives HELP and TYPE. */
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		for (int k = 0; k < OR_KUBE_NKINDS; k++)
			s[n++] = (struct or_metric_sample){
				m[i].name, m[i].type, k ? NULL : m[i].help, labels[k],
				*(const uint64_t *)((const char *)&c[k] + m[i].off) };
	return n;
}

/* TLS and tunnel counters as /metrics samples (static: one admin thread). */
static void tls_samples(struct or_agent *a, struct or_metrics_node *out)
{
	static const char *const reason_labels[OR_SVID_ERR_MAX] = {
		[OR_SVID_NO_CERT] = "reason=\"no_cert\"",
		[OR_SVID_CHAIN] = "reason=\"chain\"",
		[OR_SVID_URI_COUNT] = "reason=\"uri_count\"",
		[OR_SVID_NOT_SPIFFE] = "reason=\"not_spiffe\"",
		[OR_SVID_TRUST_DOMAIN] = "reason=\"trust_domain\"",
		[OR_SVID_IS_CA] = "reason=\"is_ca\"",
		[OR_SVID_EXPIRED] = "reason=\"expired\"",
		[OR_SVID_NOT_YET_VALID] = "reason=\"not_yet_valid\"",
		[OR_SVID_KEY_USAGE] = "reason=\"key_usage\"",
	};
	static struct or_metric_sample s[64];
	static const char hs[] = "outrider_tls_handshakes_total", fl[] = "outrider_tls_failures_total",
			  tu[] = "outrider_tunnels_total";
	size_t n = 0;

	s[n++] = (struct or_metric_sample){ hs, "counter", "Completed mTLS handshakes, by kind.",
					    "kind=\"full\"",
					    or_tls_stats.handshakes - or_tls_stats.resumed };
	s[n++] = (struct or_metric_sample){ hs, "counter", NULL, "kind=\"resumed\"",
					    or_tls_stats.resumed };
	for (int r = 1; r < OR_SVID_ERR_MAX; r++)
		s[n++] = (struct or_metric_sample){ fl, "counter",
						    "Failed mTLS handshakes, by reason.",
						    reason_labels[r], or_tls_stats.failures[r] };
	s[n++] = (struct or_metric_sample){ fl, "counter", NULL, "reason=\"tls\"",
					    or_tls_stats.failures_tls };
	s[n++] = (struct or_metric_sample){ tu, "counter",
					    "Inbound tunnels (port 15008), by outcome.",
					    "result=\"established\"", or_tunnel_stats.established };
	s[n++] = (struct or_metric_sample){ tu, "counter", NULL, "result=\"denied\"",
					    or_tunnel_stats.denied };
	s[n++] = (struct or_metric_sample){ tu, "counter", NULL, "result=\"bad_request\"",
					    or_tunnel_stats.bad_request };
	s[n++] = (struct or_metric_sample){ tu, "counter", NULL, "result=\"app_failed\"",
					    or_tunnel_stats.app_failed };
	n += kube_samples(a, s + n, sizeof(s) / sizeof(s[0]) - n);
	out->extra = s;
	out->n_extra = n;
}

static void admin_node_metrics(void *ctx, struct or_metrics_node *out)
{
	struct or_agent *a = ctx;

	tls_samples(a, out);

	out->stats_map_fd = a->bpf.stats_fd;
	out->breakers_map_fd = a->bpf.breakers_fd;
	out->enrolled_pods = a->n_enrolled;
	out->config_reloads_ok = a->reloads_ok;
	out->config_reloads_failed = a->reloads_failed;
}

static int block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	/* Workers inherit the mask, so only the signalfd sees these. */
	return -pthread_sigmask(SIG_BLOCK, set, NULL);
}

int or_agent_start(struct or_agent *a, const char *config_path, const char *sidecar,
		   bool wait_replaced)
{
	struct or_config *cfg = NULL;
	unsigned int n_workers;
	char errbuf[512];
	sigset_t set;
	int err;

	memset(a, 0, sizeof(*a));
	a->config_path = config_path;
	a->sidecar = sidecar;
	a->wait_replaced = wait_replaced;
	a->signal_fd = -1;
	a->ho.sock = -1;
	a->ho_admin_fd[0] = a->ho_admin_fd[1] = -1;
	signal(SIGPIPE, SIG_IGN);

	err = or_config_load_file(config_path, &cfg, errbuf, sizeof(errbuf));
	if (err) {
		or_error("config rejected", "error=\"%s\"", errbuf);
		return err;
	}
	err = block_signals(&set);
	if (err)
		goto fail_cfg;
	a->loop = ev_loop_new();
	if (!a->loop) {
		err = -errno;
		goto fail_cfg;
	}
	a->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (a->signal_fd == -1) {
		err = -errno;
		goto fail_loop;
	}
	err = ev_io_add(a->loop, &a->signal_io, a->signal_fd, EV_READ, on_signal);
	if (err)
		goto fail_signal;
	err = or_netns_init();
	if (err)
		goto fail_signal;
	err = or_ca_load(cfg->ca_cert, cfg->ca_key, cfg->state_dir, cfg->trust_domain, &a->ca,
			 errbuf, sizeof(errbuf));
	if (err) {
		or_error("cannot load the CA", "error=\"%s\"", errbuf);
		goto fail_netns;
	}
	or_tls_ktls_available();
	if (sidecar) {
		/* iptables captures; the pod's traffic never meets a BPF program of ours. */
		a->bpf.origdst_fd = a->bpf.breakers_fd = a->bpf.stats_fd = -1;
		or_proxy.sidecar = true;
		if (geteuid() == 0)
			or_warn("sidecar mode as root: run as uid 1337, the uid the iptables "
				"rules let out uncaptured (deploy/sidecar/README.md)", "pod=%s",
				sidecar);
	} else {
		err = or_bpf_open(&a->bpf, cfg->pin_dir, OR_PORT_OUTBOUND);
		if (err)
			goto fail_netns;
	}
	/*
	 * The pins and (with a running predecessor) its listeners carry over:
	 * capture goes on while we start. Ours from now on.
	 */
	a->cfg = cfg; /* for ho_fetch; apply() takes it over below */
	err = ho_fetch(a);
	a->cfg = NULL;
	if (err)
		goto fail_bpf;
	if (a->ho_active) {
		a->ho_admin_fd[0] = or_ho_take(&a->ho, OR_HO_ADMIN, "", 0);
		a->ho_admin_fd[1] = or_ho_take(&a->ho, OR_HO_HEALTH, "", 0);
	}
	or_bpf_heartbeat(&a->bpf, false);
	or_health_set_map(a->bpf.breakers_fd);

	or_proxy.bpf = &a->bpf;
	atomic_store(&or_proxy.max_connections, cfg->max_connections);
	n_workers = cfg->workers ? cfg->workers : (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	pthread_mutex_init(&a->beat_lock, NULL);
	a->beating = true;
	err = or_workers_start(n_workers ? n_workers : 1, beat, a, OR_HEARTBEAT_MS);
	if (err) {
		or_error("cannot start workers", "err=\"%s\"", strerror(-err));
		goto fail_bpf;
	}
	ev_timer_init(&a->heartbeat, on_heartbeat);
	ev_timer_init(&a->retry, on_retry);
	ev_timer_init(&a->kube_settle, on_kube_settle);
	ev_timer_init(&a->drain, on_drain);
	a->kube_pending_ms = OR_KUBE_PENDING_MS;
	ev_timer_start(a->loop, &a->heartbeat, OR_HEARTBEAT_MS);
	err = apply(a, cfg); /* the file alone; the API's objects follow once listed */
	cfg = NULL; /* apply took it */
	if (err)
		goto fail_workers;
	if (a->cfg->kubernetes) {
		err = kube_start(a);
		if (err)
			goto fail_pods;
	}
	struct or_admin_hooks hooks = { .ready = admin_ready, .node_metrics = admin_node_metrics,
					.inherited_fd = ho_admin_fd, .ctx = a };
	err = or_admin_start(a->loop, &a->cfg->admin_ip, a->cfg->admin_port, &a->cfg->ready_ip,
			     a->cfg->ready_port, &hooks, &a->admin);
	if (err)
		goto fail_kube;
	a->ready = true;
	settle(a); /* a predecessor is told READY only now, and we serve successors */
	ho_serve(a);
	if (sidecar)
		or_info("ready", "mode=sidecar pod=%s workers=%u pid=%d", sidecar,
			or_workers_count(), getpid());
	else
		or_info("ready", "node=%s pin_dir=%s workers=%u pid=%d", a->cfg->node,
			a->cfg->pin_dir, or_workers_count(), getpid());
	return 0;

fail_kube:
	kube_stop(a);
fail_pods:
	/* Left as they were: captured, for the agent that starts next. */
	while (a->pods) {
		struct or_enrolled *e = a->pods;

		a->pods = e->next;
		or_enrolled_keep(e);
	}
	or_config_free(a->cfg);
	a->cfg = NULL;
fail_workers:
	or_workers_stop();
	or_routes_publish(NULL);
fail_bpf:
	/* A predecessor not told READY carries on; its sockets' copies close here. */
	if (a->ho_active)
		or_ho_client_abort(&a->ho);
	for (int i = 0; i < 2; i++)
		if (a->ho_admin_fd[i] != -1)
			close(a->ho_admin_fd[i]);
	or_bpf_close(&a->bpf);
fail_netns:
	or_ca_free(a->ca);
	a->ca = NULL;
	or_netns_fini();
fail_signal:
	close(a->signal_fd);
fail_loop:
	ev_loop_free(a->loop);
fail_cfg:
	or_config_free(cfg);
	return err;
}

int or_agent_run(struct or_agent *a)
{
	return ev_run(a->loop);
}

void or_agent_stop(struct or_agent *a)
{
	struct or_proxy_stats *s = &or_proxy.stats;

	a->ready = false;
	or_admin_stop(a->admin);
	a->admin = NULL;
	kube_stop(a);
	or_ho_close(a->ho_srv);
	a->ho_srv = NULL;
	if (a->ho_active)
		or_ho_client_abort(&a->ho);
	while (a->pods) { /* the loop failed without a drain: pods stay captured */
		struct or_enrolled *e = a->pods;

		a->pods = e->next;
		or_enrolled_keep(e);
	}
	stop_beating(a, !a->replaced);
	or_workers_stop();
	or_routes_publish(NULL);
	or_health_set_map(-1);
	or_bpf_close(&a->bpf);
	or_netns_fini();
	or_ca_free(a->ca);
	a->ca = NULL;
	or_health_free_all();
	or_metrics_free_all();
	or_info("stopped", "accepted=%llu completed=%llu no_origdst=%llu connect_failed=%llu "
		"connect_timeout=%llu refused_limit=%llu",
		(unsigned long long)s->accepted, (unsigned long long)s->completed,
		(unsigned long long)s->no_origdst, (unsigned long long)s->connect_failed,
		(unsigned long long)s->connect_timeout, (unsigned long long)s->refused_limit);
	close(a->signal_fd);
	ev_run_deferred(a->loop); /* the admin's frees: the loop has stopped */
	ev_loop_free(a->loop);
	or_config_free(a->cfg);
	a->cfg = NULL;
}
