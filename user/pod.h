/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the data path needs of an enrolled pod, shared by the enrollment
 * (main thread), the pod's listeners and its connections (workers):
 * refcounted, so a pod unenrolled mid-connection stays valid until the
 * last connection through it ends.
 */
#ifndef OR_POD_H
#define OR_POD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "or_abi.h"
#include "addr.h"

struct or_tls_id;

struct or_pod_rt {
	_Atomic int ref;
	char name[OR_NAME_LEN]; /* "namespace/name" */
	int netns_fd;           /* owned: closed with the last reference */
	uint64_t netns_cookie;
	struct or_ip ip, ip6;   /* the pod's addresses (ip6 family 0 when none) */
	pthread_mutex_t tls_lock;
	struct or_tls_id *tls;  /* its identity; replaced on renewal (tls_lock) */
};

enum or_listener_kind {
	OR_LSN_OUTBOUND, /* 127.0.0.1/[::1]:15001: captured outbound connections */
	OR_LSN_TUNNEL,   /* <pod ip>:15008: mTLS tunnels from other agents */
	OR_LSN_INBOUND,  /* sidecar mode, 0.0.0.0:15006: redirected inbound plaintext */
};

/* A pod's in-pod listener (127.0.0.1:15001 or [::1]:15001). */
struct or_listener {
	_Atomic int ref;
	int fd;     /* owned */
	int family; /* AF_INET or AF_INET6 */
	enum or_listener_kind kind;
	struct or_pod_rt *pod; /* holds a reference */
};

/* Takes netns_fd. Returns the pod with one reference, or NULL. */
struct or_pod_rt *or_pod_rt_new(const char *name, int netns_fd, uint64_t netns_cookie);
void or_pod_rt_get(struct or_pod_rt *p);
void or_pod_rt_put(struct or_pod_rt *p);
/* The pod's identity with a reference for the caller, or NULL. */
struct or_tls_id *or_pod_tls_get(struct or_pod_rt *p);
/* Installs a new identity (taking the caller's reference); drops the old one. */
void or_pod_tls_set(struct or_pod_rt *p, struct or_tls_id *id);

/* Takes fd and a new reference on pod. Returns the listener with one ref. */
struct or_listener *or_listener_new(int fd, int family, enum or_listener_kind kind,
				    struct or_pod_rt *pod);
void or_listener_get(struct or_listener *l);
void or_listener_put(struct or_listener *l);

#endif
