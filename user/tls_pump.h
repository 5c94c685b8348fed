/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Moving bytes between a TLS connection and a plain socket, both
 * non-blocking, with half-closes passed on (close_notify <-> FIN). Shared
 * by both ends of a tunnel. The caller owns the fds, the SSL and the
 * buffers; this only moves bytes and says what to wait for.
 */
#ifndef OR_TLS_PUMP_H
#define OR_TLS_PUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>

#define OR_TLS_PUMP_BUF 65536

struct or_pbuf {
	char *buf; /* OR_TLS_PUMP_BUF bytes */
	size_t off, len;
};

struct or_tls_pump {
	SSL *ssl;
	int plain;              /* the plain socket, -1 while there is none */
	struct or_pbuf from_tls; /* decrypted, for the plain side */
	struct or_pbuf to_tls;   /* from the plain side (and our own heads), to encrypt */
	bool tls_eof;    /* close_notify or EOF from the TLS peer */
	bool plain_eof;  /* EOF from the plain side (or there will be none) */
	bool plain_shut; /* FIN passed to the plain side */
	bool tls_shut;   /* close_notify sent */
	int read_wants;  /* SSL_ERROR_WANT_READ/WRITE left by SSL_read, or 0 */
	int write_wants; /* the same for SSL_write */
};

/* Decrypts what is there into from_tls. 0, or -1 on a TLS error. */
int or_tls_pump_read(struct or_tls_pump *p);
/* Appends bytes to to_tls (before anything the plain side sends). 0 or -ENOSPC. */
int or_tls_pump_queue(struct or_tls_pump *p, const char *buf, size_t len);
/* Drops the first n bytes of from_tls (a head the caller consumed). */
void or_tls_pump_consume(struct or_tls_pump *p, size_t n);
/* Moves everything that can move both ways. 0, or -1 when the stream broke. */
int or_tls_pump_run(struct or_tls_pump *p);
/* Both directions are over: the caller may close. */
bool or_tls_pump_done(const struct or_tls_pump *p);
/* What to wait for (EV_READ/EV_WRITE) on the TLS socket and the plain one. */
void or_tls_pump_events(const struct or_tls_pump *p, unsigned int *net, unsigned int *plain);

#endif
