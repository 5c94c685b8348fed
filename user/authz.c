// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * L4 authorization (see authz.h): deny rules first, then the allow list.
 *
 * A peer without an identity (spiffe_id NULL or empty: plaintext let in by a
 * permissive service) fails closed: it matches every deny rule, since it
 * could be the very peer a rule names, and no allow rule, since none of them
 * can vouch for it. Only a service without rules lets it through.
 */
#include <string.h>

#include "authz.h"

#define SPIFFE_SCHEME "spiffe://"

/* spiffe://<any trust domain>/ns/<ns>/...: is <ns> exactly `ns`? */
static bool namespace_is(const char *id, const char *ns)
{
	const size_t slen = strlen(SPIFFE_SCHEME), nslen = strlen(ns);
	const char *path;

	if (strncmp(id, SPIFFE_SCHEME, slen) != 0)
		return false;
	path = strchr(id + slen, '/');
	if (!path || path == id + slen)
		return false; /* no trust domain */
	if (strncmp(path, "/ns/", 4) != 0)
		return false;
	path += 4;
	return nslen && strncmp(path, ns, nslen) == 0 && path[nslen] == '/';
}

static bool peer_matches(const struct or_authz_rule *r, const char *id)
{
	if (r->match == OR_AUTHZ_ANY)
		return id != NULL;
	if (!id || !r->value)
		return false;
	switch (r->match) {
	case OR_AUTHZ_EXACT:
		return strcmp(id, r->value) == 0;
	case OR_AUTHZ_PREFIX:
		return strncmp(id, r->value, strlen(r->value)) == 0;
	case OR_AUTHZ_NAMESPACE:
		return namespace_is(id, r->value);
	case OR_AUTHZ_ANY:
		break;
	}
	return false;
}

static bool port_matches(const struct or_authz_rule *r, uint16_t port)
{
	size_t n = r->n_ports < OR_AUTHZ_MAX_PORTS ? r->n_ports : OR_AUTHZ_MAX_PORTS;

	if (!n)
		return true;
	for (size_t i = 0; i < n; i++)
		if (r->ports[i] == port)
			return true;
	return false;
}

struct or_authz_decision or_authz_check(const struct or_authz_rule *rules, size_t n,
					const char *spiffe_id, uint16_t port)
{
	struct or_authz_decision d = { .allowed = true, .rule_line = 0 };
	const char *id = spiffe_id && spiffe_id[0] ? spiffe_id : NULL;
	bool have_allow = false;
	size_t i;

	for (i = 0; i < n; i++) {
		const struct or_authz_rule *r = &rules[i];

		if (r->action != OR_AUTHZ_DENY || !port_matches(r, port))
			continue;
		/* Unidentified: the deny may be about this very peer. */
		if (!id || peer_matches(r, id)) {
			d.allowed = false;
			d.rule_line = r->line;
			return d;
		}
	}
	for (i = 0; i < n; i++) {
		const struct or_authz_rule *r = &rules[i];

		if (r->action != OR_AUTHZ_ALLOW)
			continue;
		have_allow = true;
		if (port_matches(r, port) && peer_matches(r, id)) {
			d.rule_line = r->line;
			return d;
		}
	}
	/* An allow list that nothing on it matched: no single rule decided. */
	if (have_allow)
		d.allowed = false;
	return d;
}
