/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The receiving end of an mTLS tunnel: <pod ip>:15008 inside each enrolled
 * pod's netns. TLS 1.3 handshake presenting the pod's SVID and checking
 * the peer's; the CONNECT target must be this pod (400 if not); the
 * services' authorization rules for that port decide (403, counted); then
 * the agent connects to the app inside the pod, answers 200, and streams.
 */
#ifndef OR_TUNNEL_IN_H
#define OR_TUNNEL_IN_H

#include <stdatomic.h>
#include <stdint.h>

#include "pod.h"
#include "worker.h"

struct or_tunnel_stats {
	_Atomic uint64_t accepted;
	_Atomic uint64_t bad_request;  /* malformed CONNECT, or not a pod served here: 400 */
	_Atomic uint64_t denied;       /* authorization: 403 */
	_Atomic uint64_t app_failed;   /* the app refused or did not answer: 502 */
	_Atomic uint64_t established;  /* 200 sent, streaming */
};
extern struct or_tunnel_stats or_tunnel_stats;

/*
 * Bumped by the agent when a new config is in force: tunnels already open
 * check their authorization again on their next bytes, so a deny added by
 * a reload also ends connections it now forbids.
 */
extern _Atomic uint64_t or_tunnel_policy_gen;

/* Takes the accepted fd from a tunnel listener; owns it afterwards. */
void or_tunnel_accept(struct or_worker *w, struct or_listener *l, int fd);
void or_tunnel_close_all(struct or_worker *w);

#endif
