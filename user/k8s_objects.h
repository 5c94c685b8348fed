/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kubernetes API objects as outrider needs them, decoded from the API
 * server's JSON with json-c: v1 Pod, v1 Namespace, v1 Service and
 * discovery.k8s.io/v1 EndpointSlice, and watch events wrapping them. The
 * bytes come from the network: every field is checked, nothing is assumed,
 * and unknown fields (managedFields and the rest) are ignored.
 */
#ifndef OR_K8S_OBJECTS_H
#define OR_K8S_OBJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"

#define OR_K8S_MAX_PORTS 64
#define OR_K8S_MAX_ENDPOINTS 1000

struct or_k8s_meta {
	char *name;
	char *namespace;        /* NULL for cluster-scoped objects (Namespace) */
	char *uid;
	char *resource_version;
	struct or_labels labels;
	bool deleting;          /* metadata.deletionTimestamp is set */
};

struct or_k8s_pod {
	struct or_k8s_meta meta;
	char *node_name;        /* spec.nodeName, NULL while unscheduled */
	char *service_account;  /* spec.serviceAccountName, default "default" */
	struct or_ip ip;        /* status.podIPs: the first IPv4 (family 0 if none) */
	struct or_ip ip6;       /* ... and the first IPv6 */
	char *qos_class;        /* status.qosClass: Guaranteed | Burstable | BestEffort */
	char *phase;            /* status.phase */
	bool host_network;      /* spec.hostNetwork: never enrolled */
};

struct or_k8s_namespace {
	struct or_k8s_meta meta;
};

struct or_k8s_service_port {
	char *name;             /* may be NULL */
	uint16_t port;
	uint16_t target_port;   /* a number; 0 when targetPort is a name (resolved by the slice) */
	char *target_port_name; /* targetPort as a name, or NULL */
	enum or_protocol protocol; /* appProtocol "http" -> http; anything else (h2c too) -> tcp */
	bool tcp;               /* protocol is TCP (UDP/SCTP ports are skipped by callers) */
};

struct or_k8s_service {
	struct or_k8s_meta meta;
	struct or_ip cluster_ip;  /* spec.clusterIP; family 0 for None/headless or absent */
	struct or_ip cluster_ip6; /* dual stack: the other family's, from spec.clusterIPs
				     (IPv4 when the primary is IPv6) */
	struct or_k8s_service_port *ports;
	size_t n_ports;
	struct or_labels selector;
	bool has_selector;
};

struct or_k8s_endpoint {
	struct or_ip ip;        /* the first address of the endpoint */
	bool ready;             /* conditions.ready (absent counts as ready, per the API) */
	bool serving;
	bool terminating;
	char *node_name;
	char *target_pod;       /* targetRef.name when kind Pod */
};

struct or_k8s_slice_port {
	char *name;             /* matches the service port's name (may be NULL) */
	uint16_t port;
	bool tcp;
};

struct or_k8s_endpointslice {
	struct or_k8s_meta meta;
	char *service_name;     /* labels["kubernetes.io/service-name"] */
	int address_type;       /* AF_INET, AF_INET6, or 0 for FQDN (ignored) */
	struct or_k8s_endpoint *endpoints;
	size_t n_endpoints;
	struct or_k8s_slice_port *ports;
	size_t n_ports;
};

enum or_k8s_kind { OR_K8S_POD, OR_K8S_NAMESPACE, OR_K8S_SERVICE, OR_K8S_ENDPOINTSLICE };

struct or_k8s_object {
	enum or_k8s_kind kind;
	union {
		struct or_k8s_pod pod;
		struct or_k8s_namespace ns;
		struct or_k8s_service svc;
		struct or_k8s_endpointslice slice;
	};
};

/*
 * Decodes one object of `kind` from JSON text (buf, len; not necessarily
 * NUL-terminated). Returns 0 with *out filled (free with
 * or_k8s_object_free), or -EINVAL (-ENOMEM) with a reason in err; on
 * failure *out holds nothing to free.
 */
int or_k8s_decode(enum or_k8s_kind kind, const char *buf, size_t len, struct or_k8s_object *out,
		  char *err, size_t errlen);
void or_k8s_object_free(struct or_k8s_object *o);

enum or_k8s_event_type {
	OR_K8S_ADDED, OR_K8S_MODIFIED, OR_K8S_DELETED,
	OR_K8S_BOOKMARK, /* only metadata.resourceVersion is meaningful */
	OR_K8S_ERROR,    /* a Status: code (410 Gone -> relist) in error_code */
};

struct or_k8s_event {
	enum or_k8s_event_type type;
	struct or_k8s_object obj; /* for ADDED/MODIFIED/DELETED */
	char *resource_version;   /* BOOKMARK, and the object's for the others */
	int error_code;           /* ERROR: the Status code, e.g. 410 */
	char *error_message;
};

/* Decodes one watch event line ({"type":..., "object":...}). 0 or -EINVAL. */
int or_k8s_decode_event(enum or_k8s_kind kind, const char *buf, size_t len,
			struct or_k8s_event *out, char *err, size_t errlen);
void or_k8s_event_free(struct or_k8s_event *e);

/*
 * Decodes a list response ({"kind":"PodList","metadata":{"resourceVersion"},
 * "items":[...]}): calls cb for each item, and returns the list's
 * resourceVersion in *rv (malloc'd). The object is freed after cb returns;
 * a cb that keeps it copies *o and zeroes the fields it took.
 * Items that fail to decode are skipped and counted in *skipped.
 */
int or_k8s_decode_list(enum or_k8s_kind kind, const char *buf, size_t len,
		       int (*cb)(void *ctx, struct or_k8s_object *o), void *ctx, char **rv,
		       size_t *skipped, char *err, size_t errlen);

/* metadata.continue of a list page: malloc'd into *cont, NULL on the last page. 0 or -errno. */
int or_k8s_list_continue(const char *buf, size_t len, char **cont);

/*
 * A v1 Status body (an error response): its code and message (malloc'd,
 * may be NULL). 0, or -EINVAL when buf is not a Status.
 */
int or_k8s_decode_status(const char *buf, size_t len, int *code, char **message);

#endif
