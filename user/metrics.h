/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Per-service counters, shared by every worker (atomics), kept for the
 * agent's life by service name so they survive reloads, and rendered as
 * Prometheus text for :15020/metrics. The circuit breaker's live counts
 * (active connections, pending, requests, retries in flight) live here too:
 * one source for both the limit check and the gauge.
 */
#ifndef OR_METRICS_H
#define OR_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "or_abi.h"

enum or_cb_limit {
	OR_CB_MAX_CONNECTIONS,
	OR_CB_MAX_PENDING_REQUESTS,
	OR_CB_MAX_REQUESTS,
	OR_CB_MAX_RETRIES,
	OR_CB_MAX,
};

#define OR_METRICS_MAX_CODE 600 /* response codes 0..599; 0 = no response */

struct or_svc_metrics {
	char name[OR_NAME_LEN]; /* "namespace/name" */
	_Atomic uint64_t tcp_opened;       /* outrider_tcp_connections_opened_total */
	_Atomic uint64_t tcp_closed;       /* outrider_tcp_connections_closed_total */
	_Atomic uint64_t requests[OR_METRICS_MAX_CODE]; /* outrider_requests_total{response_code} */
	_Atomic uint64_t retries;          /* outrider_retries_total */
	_Atomic uint64_t budget_exhausted; /* outrider_retry_budget_exhausted_total */
	_Atomic uint64_t ejections;        /* outrider_ejections_total */
	_Atomic uint64_t connect_failures; /* outrider_upstream_connect_failures_total */
	_Atomic uint64_t timeouts;         /* outrider_request_timeouts_total (504 sent) */
	_Atomic uint64_t cb_overflow[OR_CB_MAX]; /* outrider_circuit_breaker_overflow_total{limit} */
	_Atomic int64_t active_connections;      /* outrider_active_connections (gauge) */
	_Atomic int64_t pending;           /* connecting upstream (gauge, max_pending_requests) */
	_Atomic int64_t active_requests;   /* HTTP requests in flight (gauge, max_requests) */
	_Atomic int64_t active_retries;    /* retries in flight (gauge, max_retries) */
	_Atomic uint64_t bytes_sent;       /* outrider_tcp_sent_bytes_total (to the app) */
	_Atomic uint64_t bytes_received;   /* outrider_tcp_received_bytes_total (from the app) */
};

/* Why the agent turned work away or paused: outrider_overload_total{reason}. */
enum or_overload_reason {
	OR_OVERLOAD_HEADER_TIMEOUT,  /* "header_timeout": 408, no whole request head in time */
	OR_OVERLOAD_HEADER_TOO_LARGE, /* "header_too_large": 431, head over 60 KiB or 100 headers */
	OR_OVERLOAD_BUFFER_LIMIT,    /* "buffer_limit": a request buffer reached limits.buffer_bytes */
	OR_OVERLOAD_EMFILE,          /* "emfile": accepting paused, out of fds (or socket memory) */
	OR_OVERLOAD_MEMORY,          /* "memory": a connection shed over the memory high-water mark */
	OR_OVERLOAD_MAX_CONNECTIONS, /* "max_connections": a connection over max_connections */
	OR_OVERLOAD_MAX,
};

/* Node-wide overload state, written by the data path and user/overload.c. */
struct or_overload_stats {
	_Atomic uint64_t total[OR_OVERLOAD_MAX]; /* outrider_overload_total{reason} */
	_Atomic int64_t buffered_bytes;   /* outrider_buffered_bytes: connection buffers held now */
	_Atomic uint64_t memory_bytes;    /* outrider_memory_working_set_bytes, at the last reading */
	_Atomic uint64_t memory_limit;    /* outrider_memory_limit_bytes: the tightest; 0 = none */
	_Atomic int memory_shedding;      /* outrider_memory_shedding: 1 over the high-water mark */
};

extern struct or_overload_stats or_overload_stats;

static inline void or_overload_count(enum or_overload_reason r)
{
	atomic_fetch_add_explicit(&or_overload_stats.total[r], 1, memory_order_relaxed);
}

/*
 * The counters of a service, created on first use; the pointer stays valid
 * until or_metrics_free_all(). Thread-safe. NULL only on allocation failure.
 */
struct or_svc_metrics *or_metrics_service(const char *name);

/* Counts a response (code 100..599) or a request with no response (0). */
void or_metrics_request(struct or_svc_metrics *m, int code);

/* Node-wide inputs to the rendering, beyond the per-service counters. */
struct or_metrics_node {
	int stats_map_fd;       /* or_stats (per-CPU), or -1 */
	int breakers_map_fd;    /* or_breakers, or -1: outrider_endpoints_ejected gauge */
	uint64_t enrolled_pods;
	uint64_t config_reloads_ok;
	uint64_t config_reloads_failed;
	/* Counters kept elsewhere (TLS, tunnels): name, label or NULL, value. */
	struct or_metric_sample {
		const char *name;
		const char *type; /* "counter" / "gauge"; the first sample of a name gives HELP */
		const char *help;
		const char *label; /* `key="value"` or NULL */
		uint64_t value;
	} *extra;
	size_t n_extra;
};

/*
 * Renders everything as Prometheus text exposition (version 0.0.4) into a
 * malloc'd buffer (*out, *len). Returns 0 or -ENOMEM.
 */
int or_metrics_render(const struct or_metrics_node *node, char **out, size_t *len);

void or_metrics_free_all(void);

#endif
