/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TLS for the tunnels between agents: TLS 1.3 only, one SSL_CTX per
 * workload identity (built once per SVID, never per connection), the
 * peer's SVID checked inside the handshake (so a bad peer fails it with an
 * alert rather than seeing a completed handshake), session tickets for
 * resumption, and kernel TLS used when the kernel has it.
 */
#ifndef OR_TLS_H
#define OR_TLS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <openssl/ssl.h>

#include "identity.h"

/* Handshake and verification counters, node-wide (for metrics and logs). */
struct or_tls_stats {
	_Atomic uint64_t handshakes;   /* completed */
	_Atomic uint64_t resumed;      /* of which resumed a session */
	_Atomic uint64_t failures[OR_SVID_ERR_MAX]; /* peer SVID refused, by reason */
	_Atomic uint64_t failures_tls; /* handshake failed for another reason */
};
extern struct or_tls_stats or_tls_stats;

#define OR_TLS_SESSIONS 32 /* resumable sessions kept per identity */

/* One workload identity: its SVID and the contexts that present it. */
struct or_tls_id {
	_Atomic int ref;
	struct or_svid *svid;
	SSL_CTX *server; /* presents the SVID, requires and checks the peer's */
	SSL_CTX *client; /* the same, dialling out; resumes sessions per destination */
	const struct or_ca *ca;
	pthread_mutex_t sess_lock;
	struct {
		char dest[64]; /* the destination pod's address */
		SSL_SESSION *s;
	} sess[OR_TLS_SESSIONS];
	unsigned int sess_next;
};

/* Probes kernel TLS once (setsockopt TCP_ULP "tls"); logs the outcome. */
bool or_tls_ktls_available(void);

/*
 * Builds the contexts for svid (which it takes over). Returns the
 * identity with one reference, or NULL (logged).
 */
struct or_tls_id *or_tls_id_new(const struct or_ca *ca, struct or_svid *svid);
void or_tls_id_get(struct or_tls_id *id);
void or_tls_id_put(struct or_tls_id *id);

/*
 * A client SSL for `dest` (the destination pod's address), resuming the last session with it
 * when there is one. NULL on failure.
 */
SSL *or_tls_client_new(struct or_tls_id *id, const char *dest);

/* The SPIFFE ID the handshake verified for this connection's peer, or NULL. */
const char *or_tls_peer_id(SSL *ssl);

/*
 * Counts a failed handshake under its reason: the SVID check already
 * counted its own refusals; a server that got no certificate counts no_cert;
 * anything else is a TLS failure.
 */
void or_tls_count_failure(SSL *ssl);

/* Text for the last OpenSSL error on this thread (and clears the queue). */
const char *or_tls_error(char *buf, size_t len);

#endif
