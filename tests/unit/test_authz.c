// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * L4 authorization decisions: deny rules first, then the allow list, and
 * allow when a service has no rules. Each case names the rule line that
 * should decide (0: no single rule did).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "authz.h"

#define ID_SHOP_WEB "spiffe://cluster.local/ns/shop/sa/web"
#define ID_SHOP_BATCH "spiffe://cluster.local/ns/shop/sa/batch"
#define ID_PAY_API "spiffe://cluster.local/ns/payments/sa/api"
#define ID_OTHER_TD "spiffe://other.example/ns/shop/sa/web"

#define RULE(act, m, v, ln, ...)                                                      \
	{                                                                             \
		.action = (act), .match = (m), .value = (char *)(v), .line = (ln),    \
		.ports = { __VA_ARGS__ },                                             \
		.n_ports = sizeof((uint16_t[]){ 0, ##__VA_ARGS__ }) / sizeof(uint16_t) - 1, \
	}

struct authz_case {
	const char *what;
	const struct or_authz_rule *rules;
	size_t n;
	const char *id;
	uint16_t port;
	bool allowed;
	int line;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* deny payments, allow shop on 8080 only, allow one exact ID anywhere */
static const struct or_authz_rule mixed[] = {
	RULE(OR_AUTHZ_DENY, OR_AUTHZ_NAMESPACE, "payments", 10),
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_PREFIX, "spiffe://cluster.local/ns/shop/", 11, 8080),
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_EXACT, ID_SHOP_BATCH, 12),
};

/* deny everyone on 22; nothing else */
static const struct or_authz_rule deny_port[] = {
	RULE(OR_AUTHZ_DENY, OR_AUTHZ_ANY, NULL, 20, 22, 2222),
};

/* allow anyone with an SVID */
static const struct or_authz_rule allow_any[] = {
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_ANY, NULL, 30),
};

/* the same peer both allowed and denied: deny wins, whatever the order */
static const struct or_authz_rule conflict[] = {
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_EXACT, ID_SHOP_WEB, 40),
	RULE(OR_AUTHZ_DENY, OR_AUTHZ_NAMESPACE, "shop", 41, 80),
};

static const struct or_authz_rule ns_rules[] = {
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_NAMESPACE, "shop", 50),
};

static const struct or_authz_rule prefix_plain[] = {
	RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_PREFIX, "spiffe://cluster.local/ns/sh", 60),
};

static const struct authz_case cases[] = {
	{ "no rules: allow", NULL, 0, ID_SHOP_WEB, 80, true, 0 },
	{ "no rules, no identity: allow", NULL, 0, NULL, 80, true, 0 },

	{ "deny by namespace", mixed, N(mixed), ID_PAY_API, 8080, false, 10 },
	{ "prefix allow on its port", mixed, N(mixed), ID_SHOP_WEB, 8080, true, 11 },
	{ "prefix allow, other port: no allow matches", mixed, N(mixed), ID_SHOP_WEB, 9090, false,
	  0 },
	{ "exact allow on any port", mixed, N(mixed), ID_SHOP_BATCH, 9090, true, 12 },
	{ "first matching allow decides", mixed, N(mixed), ID_SHOP_BATCH, 8080, true, 11 },
	{ "other trust domain, not on the allow list", mixed, N(mixed), ID_OTHER_TD, 8080, false,
	  0 },
	{ "deny, namespace in another trust domain", mixed, N(mixed),
	  "spiffe://other.example/ns/payments/sa/x", 1, false, 10 },

	{ "deny any on 22", deny_port, N(deny_port), ID_SHOP_WEB, 22, false, 20 },
	{ "deny any on 2222", deny_port, N(deny_port), ID_SHOP_WEB, 2222, false, 20 },
	{ "deny-only list, other port: allow", deny_port, N(deny_port), ID_SHOP_WEB, 80, true, 0 },

	{ "allow any", allow_any, N(allow_any), ID_PAY_API, 1, true, 30 },
	{ "allow any needs an identity", allow_any, N(allow_any), NULL, 1, false, 0 },
	{ "an empty identity is none", allow_any, N(allow_any), "", 1, false, 0 },

	{ "deny beats an earlier allow", conflict, N(conflict), ID_SHOP_WEB, 80, false, 41 },
	{ "deny off its port, allow decides", conflict, N(conflict), ID_SHOP_WEB, 443, true, 40 },

	{ "namespace match", ns_rules, N(ns_rules), ID_SHOP_WEB, 80, true, 50 },
	{ "namespace is a whole segment", ns_rules, N(ns_rules),
	  "spiffe://cluster.local/ns/shopping/sa/web", 80, false, 0 },
	{ "namespace is not a prefix of it", ns_rules, N(ns_rules),
	  "spiffe://cluster.local/ns/sho/sa/web", 80, false, 0 },
	{ "namespace must be the /ns/ segment", ns_rules, N(ns_rules),
	  "spiffe://cluster.local/sa/shop/ns/x", 80, false, 0 },
	{ "namespace right after the trust domain", ns_rules, N(ns_rules),
	  "spiffe://cluster.local/x/ns/shop/sa/web", 80, false, 0 },
	{ "namespace needs a trust domain", ns_rules, N(ns_rules), "spiffe:///ns/shop/sa/web", 80,
	  false, 0 },
	{ "namespace needs the scheme", ns_rules, N(ns_rules), "http://cluster.local/ns/shop/sa/w",
	  80, false, 0 },
	{ "namespace needs a '/' after it", ns_rules, N(ns_rules), "spiffe://td/ns/shop", 80,
	  false, 0 },

	{ "prefix is a plain string prefix", prefix_plain, N(prefix_plain),
	  "spiffe://cluster.local/ns/shipping/sa/x", 80, true, 60 },
	{ "prefix of nothing else", prefix_plain, N(prefix_plain),
	  "spiffe://cluster.local/ns/payments/sa/x", 80, false, 0 },
	{ "exact is exact", mixed + 2, 1, ID_SHOP_BATCH "x", 80, false, 0 },
};

Test(authz, table)
{
	for (size_t i = 0; i < N(cases); i++) {
		const struct authz_case *c = &cases[i];
		struct or_authz_decision d = or_authz_check(c->rules, c->n, c->id, c->port);

		cr_expect_eq(d.allowed, c->allowed, "%s: allowed=%d", c->what, d.allowed);
		cr_expect_eq(d.rule_line, c->line, "%s: decided by line %d, expected %d", c->what,
			     d.rule_line, c->line);
	}
}

/*
 * Plaintext let in by a permissive service has no identity: it could be
 * the peer a deny rule names, and no allow rule can vouch for it.
 */
Test(authz, no_identity_fails_closed)
{
	struct or_authz_decision d;

	d = or_authz_check(mixed, N(mixed), NULL, 8080);
	cr_expect_not(d.allowed);
	cr_expect_eq(d.rule_line, 10, "the deny rule decides");
	d = or_authz_check(deny_port, N(deny_port), NULL, 80);
	cr_expect(d.allowed, "a deny off its port does not apply");
	d = or_authz_check(ns_rules, N(ns_rules), NULL, 80);
	cr_expect_not(d.allowed);
	cr_expect_eq(d.rule_line, 0);
}

Test(authz, sixteen_ports)
{
	struct or_authz_rule r = RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_ANY, NULL, 70, 1, 2, 3, 4, 5, 6, 7,
				      8, 9, 10, 11, 12, 13, 14, 15, 65535);

	cr_assert_eq(r.n_ports, OR_AUTHZ_MAX_PORTS);
	for (uint16_t p = 1; p <= 15; p++)
		cr_expect(or_authz_check(&r, 1, ID_SHOP_WEB, p).allowed, "port %u", p);
	cr_expect(or_authz_check(&r, 1, ID_SHOP_WEB, 65535).allowed);
	cr_expect_not(or_authz_check(&r, 1, ID_SHOP_WEB, 16).allowed);
	cr_expect_not(or_authz_check(&r, 1, ID_SHOP_WEB, 0).allowed);
}

Test(authz, malformed_rules_never_allow)
{
	/* What the config parser never produces: a value missing, n_ports too large. */
	struct or_authz_rule r[] = {
		RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_EXACT, NULL, 80),
		RULE(OR_AUTHZ_ALLOW, OR_AUTHZ_ANY, NULL, 81, 443),
	};

	r[1].n_ports = 1000;
	cr_expect_not(or_authz_check(r, 1, ID_SHOP_WEB, 80).allowed);
	cr_expect_not(or_authz_check(r, 2, ID_SHOP_WEB, 80).allowed);
	cr_expect(or_authz_check(r, 2, ID_SHOP_WEB, 443).allowed);
}
