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

/* Makes the enrolled set match the config: release first, then capture. */
static void reconcile_pods(struct or_agent *a)
{
	const struct or_config *cfg = a->cfg;
	struct or_enrolled **pp = &a->pods;
	uint16_t port = OR_PORT_OUTBOUND;

	while (*pp) {
		struct or_enrolled *e = *pp;
		const struct or_pod_cfg *pod = find_pod(cfg, e->key);

		struct or_pod_cfg here;

		if (pod && wants(a, pod) && or_enrolled_same(e, as_here(a, pod, &here))) {
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
	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct or_pod_cfg *pod = &cfg->pods[i];
		struct or_pod_cfg here;
		struct or_enrolled *e;
		char ip[OR_IP_STRLEN];

		if (!wants(a, pod) || is_enrolled(a, pod))
			continue;
		if (or_enroll(&a->bpf, as_here(a, pod, &here), port, a->ca, cfg->svid_ttl_s, &e)) {
			a->pods_pending = true;
			continue;
		}
		e->next = a->pods;
		a->pods = e;
		a->n_enrolled++;
		or_info("pod captured", "pod=%s ip=%s netns_cookie=%llu", e->name,
			or_ip_str(&pod->ip, ip, sizeof(ip)),
			(unsigned long long)e->pod->netns_cookie);
	}
	if (a->pods_pending && !ev_timer_active(&a->retry))
		ev_timer_start(a->loop, &a->retry, OR_RETRY_MS);
	sync_inbound(a);
}

/* Puts cfg in force (taking it over): routes, maps, then pods. */
static int apply(struct or_agent *a, struct or_config *cfg)
{
	struct or_routes *routes;
	int err;

	err = or_routes_build(cfg, &routes);
	if (err) {
		or_config_free(cfg);
		return err;
	}
	err = or_bpf_sync_routes(&a->bpf, routes);
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

static void on_signal(struct ev_loop *loop, struct ev_io *io, unsigned int revents)
{
	struct or_agent *a = container_of(io, struct or_agent, signal_io);
	struct signalfd_siginfo si;

	while (read(a->signal_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			or_info("reloading", "file=%s", a->config_path);
			reload(a);
		} else {
			or_info("stopping", "signal=%s", strsignal(si.ssi_signo));
			ev_loop_stop(loop);
		}
	}
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

			for (const struct or_enrolled *e = a->pods; e && !ours; e = e->next)
				ours = or_ip_eq(&ep->ip, &e->ip) || or_ip_eq(&ep->ip, &e->ip6);
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
	if (or_bpf_sync_inbound(&a->bpf, want, n))
		or_error("cannot write or_inbound", "entries=%zu", n);
out:
	free(want);
	or_routes_put(r);
}

static void on_heartbeat(struct ev_loop *loop, struct ev_timer *t)
{
	struct or_agent *a = container_of(t, struct or_agent, heartbeat);

	or_bpf_heartbeat(&a->bpf);
	or_health_tick(ev_now_ms(loop));
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

	/* With the API as a source: only once its state is in force. */
	return a->ready && (!a->kube || a->kube_applied);
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

int or_agent_start(struct or_agent *a, const char *config_path, const char *sidecar)
{
	struct or_config *cfg = NULL;
	unsigned int n_workers;
	char errbuf[512];
	sigset_t set;
	int err;

	memset(a, 0, sizeof(*a));
	a->config_path = config_path;
	a->sidecar = sidecar;
	a->signal_fd = -1;
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
	or_bpf_heartbeat(&a->bpf);
	or_health_set_map(a->bpf.breakers_fd);

	or_proxy.bpf = &a->bpf;
	atomic_store(&or_proxy.max_connections, cfg->max_connections);
	n_workers = cfg->workers ? cfg->workers : (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	err = or_workers_start(n_workers ? n_workers : 1);
	if (err) {
		or_error("cannot start workers", "err=\"%s\"", strerror(-err));
		goto fail_bpf;
	}
	ev_timer_init(&a->heartbeat, on_heartbeat);
	ev_timer_init(&a->retry, on_retry);
	ev_timer_init(&a->kube_settle, on_kube_settle);
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
					.ctx = a };
	err = or_admin_start(a->loop, &a->cfg->admin_ip, a->cfg->admin_port, &a->cfg->ready_ip,
			     a->cfg->ready_port, &hooks, &a->admin);
	if (err)
		goto fail_kube;
	a->ready = true;
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
	while (a->pods) {
		struct or_enrolled *e = a->pods;

		a->pods = e->next;
		or_unenroll(&a->bpf, e);
	}
	or_config_free(a->cfg);
	a->cfg = NULL;
fail_workers:
	or_workers_stop();
	or_routes_publish(NULL);
fail_bpf:
	or_bpf_close(&a->bpf, true);
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
	while (a->pods) {
		struct or_enrolled *e = a->pods;

		a->pods = e->next;
		or_unenroll(&a->bpf, e);
	}
	or_workers_stop();
	or_routes_publish(NULL);
	or_health_set_map(-1);
	or_bpf_close(&a->bpf, true);
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
