/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent's view of the Kubernetes API: one watcher thread per kind
 * (pods on this node; namespaces, services and EndpointSlices everywhere)
 * that lists, then watches from the list's resourceVersion with bookmarks,
 * forever: a 410 Gone relists, a dropped or broken stream reconnects from
 * the last resourceVersion seen after a jittered backoff, a malformed line
 * restarts the watch from the last good one. All through libcurl (one easy
 * handle per thread, in a multi handle so a stop wakes it at once) and
 * json-c (k8s_objects.c).
 *
 * The objects live in a store, one sorted array per kind, that the watchers
 * write and the agent's main thread reads under or_kube_lock. After each
 * change the fd from or_kube_fd becomes readable.
 */
#ifndef OR_KUBE_WATCH_H
#define OR_KUBE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k8s_objects.h"
#include "kubeconfig.h"

#define OR_KUBE_NKINDS 4

/* Per kind, since start: for /metrics and the log. */
struct or_kube_counters {
	uint64_t lists;      /* complete lists (all pages) */
	uint64_t watches;    /* watch requests made */
	uint64_t events;     /* ADDED, MODIFIED, DELETED applied */
	uint64_t relists;    /* lists after 410 Gone */
	uint64_t malformed;  /* lines or bodies that did not decode */
	uint64_t failures;   /* requests that failed: connect, TLS, HTTP status, dropped stream */
	uint64_t objects;    /* in the store now */
};

struct or_kube;

/*
 * Starts the watchers. creds are taken over (and zeroed in the caller's
 * struct). node selects the pods (spec.nodeName). Returns 0 or -errno.
 */
int or_kube_start(struct or_kube_creds *creds, const char *node, struct or_kube **out);
/* Stops the watchers (each wakes at once), frees the store. */
void or_kube_stop(struct or_kube *k);

/* Readable after the store changed; or_kube_changed() drains it. */
int or_kube_fd(const struct or_kube *k);
bool or_kube_changed(struct or_kube *k);
/* Every kind has been listed at least once. */
bool or_kube_synced(struct or_kube *k);

/* The store; read it between or_kube_lock and or_kube_unlock only. */
void or_kube_lock(struct or_kube *k);
void or_kube_unlock(struct or_kube *k);
size_t or_kube_count(const struct or_kube *k, enum or_k8s_kind kind);
const struct or_k8s_object *or_kube_at(const struct or_kube *k, enum or_k8s_kind kind, size_t i);
/* ns is NULL for namespaces. */
const struct or_k8s_object *or_kube_get(const struct or_kube *k, enum or_k8s_kind kind,
					const char *ns, const char *name);

void or_kube_counters(struct or_kube *k, enum or_k8s_kind kind, struct or_kube_counters *out);
const char *or_kube_kind_name(enum or_k8s_kind kind); /* "pods", "namespaces", ... */

#endif
