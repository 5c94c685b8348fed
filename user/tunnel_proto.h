/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The framing inside an mTLS tunnel, behind one interface so an HTTP/2
 * (HBONE, ztunnel-compatible) framing can follow. Today's framing is
 * HTTP/1.1 CONNECT: the client sends
 *     CONNECT 10.244.2.5:8080 HTTP/1.1\r\nHost: 10.244.2.5:8080\r\n\r\n
 * (IPv6 as [addr]:port), the server answers "HTTP/1.1 200 OK\r\n\r\n" and
 * both sides stream raw bytes after that; any other status ends it.
 * The parsers see bytes from peers: strict, bounded, fuzzed.
 */
#ifndef OR_TUNNEL_PROTO_H
#define OR_TUNNEL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

#define OR_TUNNEL_MAX_HEAD 8192

enum or_tunnel_parse {
	OR_TP_INCOMPLETE, /* need more bytes (and fewer than OR_TUNNEL_MAX_HEAD so far) */
	OR_TP_OK,         /* parsed; *consumed is the head's length */
	OR_TP_BAD,        /* malformed, or over OR_TUNNEL_MAX_HEAD: answer 400 and close */
};

struct or_tunnel_target {
	struct or_ip ip; /* IP literal only: no names */
	uint16_t port;   /* 1..65535 */
};

struct or_tunnel_framing {
	const char *name;
	/* Client: the request for target into buf; returns its length or -ENOSPC. */
	int (*build_request)(const struct or_tunnel_target *t, char *buf, size_t len);
	/* Server: parses the request head at the start of buf. */
	enum or_tunnel_parse (*parse_request)(const char *buf, size_t len,
					      struct or_tunnel_target *t, size_t *consumed,
					      const char **why);
	/* Server: the answer (200, 400, 403, 502, 503) into buf; length or -ENOSPC. */
	int (*build_response)(int status, char *buf, size_t len);
	/* Client: parses the answer head; *status set on OR_TP_OK. */
	enum or_tunnel_parse (*parse_response)(const char *buf, size_t len, int *status,
					       size_t *consumed);
};

extern const struct or_tunnel_framing or_tunnel_http1;

#endif
