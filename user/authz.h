/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L4 authorization of tunnelled connections, Istio's AuthorizationPolicy
 * semantics reduced to what L4 can see: the peer's SPIFFE ID and the
 * destination port. Deny rules first: any match denies. Then, if the
 * service has allow rules, one must match; with none, everything is allowed.
 */
#ifndef OR_AUTHZ_H
#define OR_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum or_authz_action { OR_AUTHZ_ALLOW = 0, OR_AUTHZ_DENY = 1 };

enum or_authz_match {
	OR_AUTHZ_ANY = 0,    /* no `from`: every peer (with a valid SVID) */
	OR_AUTHZ_EXACT,      /* from: {spiffe: "spiffe://td/ns/x/sa/y"} */
	OR_AUTHZ_PREFIX,     /* from: {spiffe_prefix: "spiffe://td/ns/x/"} */
	OR_AUTHZ_NAMESPACE,  /* from: {namespace: x}: spiffe://<any td>/ns/x/sa/<any> */
};

#define OR_AUTHZ_MAX_PORTS 16

struct or_authz_rule {
	enum or_authz_action action;
	enum or_authz_match match;
	char *value;      /* the ID, prefix or namespace; NULL for ANY */
	uint16_t ports[OR_AUTHZ_MAX_PORTS]; /* target ports; n_ports 0 = any port */
	size_t n_ports;
	int line;
};

struct or_authz_decision {
	bool allowed;
	int rule_line; /* line of the deciding rule, 0 when none decided (default allow) */
};

/* Decides for peer `spiffe_id` connecting to `port` under rules[0..n). */
struct or_authz_decision or_authz_check(const struct or_authz_rule *rules, size_t n,
					const char *spiffe_id, uint16_t port);

#endif
