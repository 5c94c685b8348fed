/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The L4 proxy: a connection the capture sent to a pod's :15001 is matched
 * to its original destination, routed to a service endpoint, and streamed
 * both ways (half-close propagated, resets passed on) by the worker that
 * accepted it.
 */
#ifndef OR_PROXY_H
#define OR_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bpf_state.h"
#include "worker.h"

#define OR_CONN_BUF (64 * 1024) /* per direction, allocated with the connection */

/* Counters the proxy keeps; read by the agent for logs (metrics later). */
struct or_proxy_stats {
	_Atomic uint64_t accepted;
	_Atomic uint64_t refused_limit;   /* over max_connections */
	_Atomic uint64_t no_origdst;      /* accepted, but no original destination */
	_Atomic uint64_t no_route;        /* destination is no longer a service */
	_Atomic uint64_t no_endpoint;     /* service without endpoints */
	_Atomic uint64_t connect_failed;  /* upstream refused / unreachable */
	_Atomic uint64_t connect_timeout; /* upstream did not answer in time */
	_Atomic uint64_t completed;
};

/* Shared by every worker; set up by the agent before workers start. */
struct or_proxy_ctx {
	const struct or_bpf *bpf;
	/*
	 * Sidecar mode: the agent lives in its one pod's netns, iptables
	 * REDIRECT captures (original destination from SO_ORIGINAL_DST), and
	 * there is no kernel side. Set before workers start.
	 */
	bool sidecar;
	_Atomic uint32_t max_connections;
	_Atomic uint32_t active; /* client connections and inbound tunnels being served */
	_Atomic uint32_t header_timeout_ms; /* limits.header_timeout_ms */
	_Atomic uint32_t buffer_bytes;      /* limits.buffer_bytes */
	/*
	 * The agent is draining (stopping, or replaced by a successor): HTTP
	 * connections close after the response in flight, idle ones at once.
	 */
	_Atomic bool draining;
	struct or_proxy_stats stats;
};

extern struct or_proxy_ctx or_proxy;

/* Takes the accepted fd from listener l; owns it afterwards in every case. */
void or_proxy_accept(struct or_worker *w, struct or_listener *l, int fd);
/*
 * Sidecar mode, :15006: a connection iptables redirected on its way into the
 * pod goes to the app on loopback, at the port it was sent to (refused when
 * a service that port backs is mtls strict: plaintext is not let in).
 */
void or_proxy_accept_inbound(struct or_worker *w, struct or_listener *l, int fd);
/* Closes every connection of w (worker shutdown). */
void or_proxy_close_all(struct or_worker *w);

#endif
