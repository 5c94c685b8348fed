/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The sending end of an mTLS tunnel: see tunnel_out.c. */
#ifndef OR_TUNNEL_OUT_H
#define OR_TUNNEL_OUT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pod.h"
#include "worker.h"

struct or_tunnel_out_stats {
	_Atomic uint64_t opened;
	_Atomic uint64_t established; /* 200 received */
	_Atomic uint64_t failed;      /* connect, handshake, identity or CONNECT refused */
};
extern struct or_tunnel_out_stats or_tunnel_out_stats;

/*
 * A tunnel from pod to ip:port (the destination pod's app port) through
 * ip:OR_PORT_TUNNEL. expect_id, when not NULL, is the SPIFFE ID the peer
 * must present. With http, a refusal by the destination's authorization
 * reaches the caller as an HTTP 403 response (final, not retried) rather
 * than a closed connection. Returns the caller's end of a socketpair
 * (non-blocking, owned by the caller), or -errno.
 */
int or_tunnel_open(struct or_worker *w, struct or_pod_rt *pod, const struct or_ip *ip,
		   uint16_t port, const char *expect_id, bool http);
void or_tunnel_out_close_all(struct or_worker *w);

#endif
