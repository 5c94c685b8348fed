// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The registry of per-service counters and their Prometheus rendering.
 *
 * Services are a singly linked list that only grows until or_metrics_free_all():
 * a node is complete before it is published, so the renderer can walk a
 * snapshot of the head without holding the lock while it formats.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "overload.h"
#include "pinned.h"

struct svc_node {
	struct or_svc_metrics m; /* first: callers only ever see &node->m */
	struct svc_node *next;
};

struct or_overload_stats or_overload_stats;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct svc_node *registry;
static size_t registry_len;

struct or_svc_metrics *or_metrics_service(const char *name)
{
	struct svc_node *n;

	pthread_mutex_lock(&registry_lock);
	/*
	 * Names are stored cut to OR_NAME_LEN - 1 bytes, and looked up the
	 * same way, so an over-long name always finds its own entry.
	 */
	for (n = registry; n; n = n->next)
		if (strncmp(n->m.name, name, OR_NAME_LEN - 1) == 0)
			goto out_unlock;
	n = calloc(1, sizeof(*n));
	if (!n)
		goto out_unlock;
	snprintf(n->m.name, sizeof(n->m.name), "%s", name);
	n->next = registry;
	registry = n;
	registry_len++;
out_unlock:
	pthread_mutex_unlock(&registry_lock);
	return n ? &n->m : NULL;
}

void or_metrics_request(struct or_svc_metrics *m, int code)
{
	if (!m)
		return;
	/* Anything that is not a real status code counts as "no response". */
	if (code < 100 || code >= OR_METRICS_MAX_CODE)
		code = 0;
	atomic_fetch_add_explicit(&m->requests[code], 1, memory_order_relaxed);
}

void or_metrics_free_all(void)
{
	struct svc_node *n;

	pthread_mutex_lock(&registry_lock);
	n = registry;
	registry = NULL;
	registry_len = 0;
	pthread_mutex_unlock(&registry_lock);
	while (n) {
		struct svc_node *next = n->next;

		free(n);
		n = next;
	}
}

/* A growing text buffer; the first allocation failure sticks and is reported at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static bool sb_reserve(struct sbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 16384;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (!sb_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(b, n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

/* A label value between quotes, escaped as the exposition format asks: \\ \" \n. */
static void sb_label(struct sbuf *b, const char *v, size_t n)
{
	sb_putn(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		switch (v[i]) {
		case '\\':
			sb_putn(b, "\\\\", 2);
			break;
		case '"':
			sb_putn(b, "\\\"", 2);
			break;
		case '\n':
			sb_putn(b, "\\n", 2);
			break;
		default:
			sb_putn(b, &v[i], 1);
		}
	}
	sb_putn(b, "\"", 1);
}

static void sb_family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* `name{service="..."` with the brace left open for more labels. */
static void sb_svc_sample(struct sbuf *b, const char *name, const struct or_svc_metrics *m)
{
	sb_puts(b, name);
	sb_puts(b, "{service=");
	sb_label(b, m->name, strnlen(m->name, sizeof(m->name)));
}

enum value_kind {
	COUNTER_U64,
	GAUGE_I64,
	BY_CODE,  /* requests[]: one sample per response code seen */
	BY_LIMIT, /* cb_overflow[]: one sample per circuit breaker limit */
};

/* The per-service families with one sample per service, in the order they render. */
static const struct svc_family {
	const char *name;
	const char *help;
	enum value_kind kind;
	size_t off; /* of the field in struct or_svc_metrics */
} svc_families[] = {
	{ "outrider_tcp_connections_opened_total", "TCP connections accepted from applications.",
	  COUNTER_U64, offsetof(struct or_svc_metrics, tcp_opened) },
	{ "outrider_tcp_connections_closed_total", "TCP connections from applications that ended.",
	  COUNTER_U64, offsetof(struct or_svc_metrics, tcp_closed) },
	{ "outrider_requests_total",
	  "HTTP requests by the response code sent to the application; 0: none sent.", BY_CODE,
	  offsetof(struct or_svc_metrics, requests) },
	{ "outrider_retries_total", "Attempts after the first one, sent upstream.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, retries) },
	{ "outrider_retry_budget_exhausted_total",
	  "Retries not made because the retry budget was spent.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, budget_exhausted) },
	{ "outrider_ejections_total", "Endpoints ejected by outlier detection.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, ejections) },
	{ "outrider_upstream_connect_failures_total",
	  "Upstream connects that failed: refused, timed out or unreachable.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, connect_failures) },
	{ "outrider_request_timeouts_total", "Requests that ran out of time (504 sent).",
	  COUNTER_U64, offsetof(struct or_svc_metrics, timeouts) },
	{ "outrider_circuit_breaker_overflow_total",
	  "Connections, requests or retries refused because a circuit breaker limit was reached.",
	  BY_LIMIT, offsetof(struct or_svc_metrics, cb_overflow) },
	{ "outrider_active_connections", "Connections from applications open now.", GAUGE_I64,
	  offsetof(struct or_svc_metrics, active_connections) },
	{ "outrider_active_requests", "HTTP requests in flight now.", GAUGE_I64,
	  offsetof(struct or_svc_metrics, active_requests) },
	{ "outrider_pending_requests", "Upstream connects in progress now.", GAUGE_I64,
	  offsetof(struct or_svc_metrics, pending) },
	{ "outrider_tcp_sent_bytes_total", "Bytes sent to applications.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, bytes_sent) },
	{ "outrider_tcp_received_bytes_total", "Bytes received from applications.", COUNTER_U64,
	  offsetof(struct or_svc_metrics, bytes_received) },
};

static const char *const cb_limit_names[OR_CB_MAX] = {
	[OR_CB_MAX_CONNECTIONS] = "max_connections",
	[OR_CB_MAX_PENDING_REQUESTS] = "max_pending_requests",
	[OR_CB_MAX_REQUESTS] = "max_requests",
	[OR_CB_MAX_RETRIES] = "max_retries",
};

/* One sample per service (per code, per limit) of family f, under its HELP and TYPE. */
static void render_family(struct sbuf *b, const struct svc_family *f,
			  struct or_svc_metrics *const *svcs, size_t n)
{
	sb_family(b, f->name, f->kind == GAUGE_I64 ? "gauge" : "counter", f->help);
	for (size_t i = 0; i < n; i++) {
		char *field = (char *)svcs[i] + f->off;

		switch (f->kind) {
		case COUNTER_U64:
			sb_svc_sample(b, f->name, svcs[i]);
			sb_printf(b, "} %llu\n",
				  (unsigned long long)atomic_load_explicit(
					  (_Atomic uint64_t *)field, memory_order_relaxed));
			break;
		case GAUGE_I64:
			sb_svc_sample(b, f->name, svcs[i]);
			sb_printf(b, "} %lld\n",
				  (long long)atomic_load_explicit((_Atomic int64_t *)field,
								  memory_order_relaxed));
			break;
		case BY_CODE:
			for (int code = 0; code < OR_METRICS_MAX_CODE; code++) {
				uint64_t v = atomic_load_explicit(&svcs[i]->requests[code],
								  memory_order_relaxed);

				if (!v)
					continue;
				sb_svc_sample(b, f->name, svcs[i]);
				sb_printf(b, ",response_code=\"%d\"} %llu\n", code,
					  (unsigned long long)v);
			}
			break;
		case BY_LIMIT:
			for (int l = 0; l < OR_CB_MAX; l++) {
				uint64_t v = atomic_load_explicit(&svcs[i]->cb_overflow[l],
								  memory_order_relaxed);

				sb_svc_sample(b, f->name, svcs[i]);
				sb_printf(b, ",limit=\"%s\"} %llu\n", cb_limit_names[l],
					  (unsigned long long)v);
			}
			break;
		}
	}
}

/* A reason's counter is left out when it cannot be read: absent beats wrong. */
static void render_kernel(struct sbuf *b, int stats_fd)
{
	static const char name[] = "outrider_kernel_decisions_total";

	sb_family(b, name, "counter",
		  "What the kernel programs did with a connect() or socket, by reason (or_stats).");
	if (stats_fd < 0)
		return;
	for (unsigned int r = 0; r < OR_REASON_MAX; r++) {
		__u64 sum;

		if (or_pinned_percpu_sum(stats_fd, r, &sum))
			continue;
		sb_printf(b, "%s{reason=\"%s\"} %llu\n", name, or_reason_name(r),
			  (unsigned long long)sum);
	}
}

struct breaker_row {
	struct or_breaker_key k;
	struct or_breaker_val v;
};

static void render_ejected(struct sbuf *b, int breakers_fd)
{
	static const char name[] = "outrider_endpoints_ejected";
	struct breaker_row *rows = NULL;
	struct timespec ts;
	size_t n = 0, ejected = 0;
	__u64 now;

	sb_family(b, name, "gauge",
		  "Endpoints ejected now: or_breakers entries open with the ejection not over.");
	if (breakers_fd < 0 || clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return;
	now = (__u64)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if (or_pinned_collect(breakers_fd, sizeof(rows->k), sizeof(rows->v), sizeof(*rows),
			      offsetof(struct breaker_row, v), (void **)&rows, &n))
		return;
	for (size_t i = 0; i < n; i++)
		if (or_breaker_remaining_ns(&rows[i].v, now))
			ejected++;
	free(rows);
	sb_printf(b, "%s %zu\n", name, ejected);
}

static const char *const overload_reason_names[OR_OVERLOAD_MAX] = {
	[OR_OVERLOAD_HEADER_TIMEOUT] = "header_timeout",
	[OR_OVERLOAD_HEADER_TOO_LARGE] = "header_too_large",
	[OR_OVERLOAD_BUFFER_LIMIT] = "buffer_limit",
	[OR_OVERLOAD_EMFILE] = "emfile",
	[OR_OVERLOAD_MEMORY] = "memory",
	[OR_OVERLOAD_MAX_CONNECTIONS] = "max_connections",
};

/* Overload protection, node-wide (user/overload.c, the proxies, the workers). */
static void render_overload(struct sbuf *b)
{
	const struct or_overload_stats *o = &or_overload_stats;
	static const char total[] = "outrider_overload_total";
	int64_t buffered;

	or_overload_poll();
	buffered = atomic_load_explicit(&o->buffered_bytes, memory_order_relaxed);
	sb_family(b, total, "counter",
		  "Work turned away or paused to protect the agent, by reason.");
	for (int r = 0; r < OR_OVERLOAD_MAX; r++)
		sb_printf(b, "%s{reason=\"%s\"} %llu\n", total, overload_reason_names[r],
			  (unsigned long long)atomic_load_explicit(&o->total[r],
								   memory_order_relaxed));
	sb_family(b, "outrider_buffered_bytes", "gauge",
		  "Bytes of connection buffers the agent holds now.");
	sb_printf(b, "outrider_buffered_bytes %lld\n", (long long)(buffered > 0 ? buffered : 0));
	sb_family(b, "outrider_memory_working_set_bytes", "gauge",
		  "The agent's memory cgroup working set at the last reading (0: not read).");
	sb_printf(b, "outrider_memory_working_set_bytes %llu\n",
		  (unsigned long long)atomic_load_explicit(&o->memory_bytes, memory_order_relaxed));
	sb_family(b, "outrider_memory_limit_bytes", "gauge",
		  "The tightest memory limit of the agent's cgroup and its ancestors (0: none).");
	sb_printf(b, "outrider_memory_limit_bytes %llu\n",
		  (unsigned long long)atomic_load_explicit(&o->memory_limit, memory_order_relaxed));
	sb_family(b, "outrider_memory_shedding", "gauge",
		  "1 while new connections are shed over the memory high-water mark.");
	sb_printf(b, "outrider_memory_shedding %d\n",
		  atomic_load_explicit(&o->memory_shedding, memory_order_relaxed) ? 1 : 0);
}

static int cmp_svc(const void *pa, const void *pb)
{
	const struct or_svc_metrics *a = *(struct or_svc_metrics *const *)pa;
	const struct or_svc_metrics *b = *(struct or_svc_metrics *const *)pb;

	return strncmp(a->name, b->name, OR_NAME_LEN);
}

int or_metrics_render(const struct or_metrics_node *node, char **out, size_t *len)
{
	struct or_svc_metrics **svcs = NULL;
	struct sbuf b = { 0 };
	struct svc_node *head;
	size_t n = 0;

	/* Nodes never change once published: snapshot the head, format unlocked. */
	pthread_mutex_lock(&registry_lock);
	head = registry;
	if (registry_len) {
		svcs = malloc(registry_len * sizeof(*svcs));
		if (!svcs) {
			pthread_mutex_unlock(&registry_lock);
			return -ENOMEM;
		}
	}
	for (struct svc_node *s = head; s; s = s->next)
		svcs[n++] = &s->m;
	pthread_mutex_unlock(&registry_lock);
	if (n)
		qsort(svcs, n, sizeof(*svcs), cmp_svc);

	for (size_t i = 0; i < sizeof(svc_families) / sizeof(svc_families[0]); i++)
		render_family(&b, &svc_families[i], svcs, n);
	free(svcs);

	render_kernel(&b, node ? node->stats_map_fd : -1);
	render_ejected(&b, node ? node->breakers_map_fd : -1);
	sb_family(&b, "outrider_enrolled_pods", "gauge", "Pods of this node enrolled in the mesh.");
	sb_printf(&b, "outrider_enrolled_pods %llu\n",
		  (unsigned long long)(node ? node->enrolled_pods : 0));
	sb_family(&b, "outrider_config_reloads_total", "counter",
		  "Configuration reloads, by whether the new config was taken.");
	sb_printf(&b, "outrider_config_reloads_total{result=\"ok\"} %llu\n",
		  (unsigned long long)(node ? node->config_reloads_ok : 0));
	sb_printf(&b, "outrider_config_reloads_total{result=\"failed\"} %llu\n",
		  (unsigned long long)(node ? node->config_reloads_failed : 0));
	render_overload(&b);
	for (size_t i = 0; node && i < node->n_extra; i++) {
		const struct or_metric_sample *x = &node->extra[i];

		if (i == 0 || strcmp(node->extra[i - 1].name, x->name) != 0)
			sb_family(&b, x->name, x->type, x->help);
		if (x->label)
			sb_printf(&b, "%s{%s} %llu\n", x->name, x->label, (unsigned long long)x->value);
		else
			sb_printf(&b, "%s %llu\n", x->name, (unsigned long long)x->value);
	}

	if (b.oom || !b.p) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}
