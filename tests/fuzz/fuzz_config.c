// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the YAML config parser: any bytes must give either a
 * valid config that keeps the documented invariants, or -EINVAL/-ENOMEM with
 * no config and a NUL-terminated "fuzz.yaml:LINE: ..." message. ASan and
 * UBSan catch the rest (leaks included, at exit of each run).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			__builtin_trap(); \
	} while (0)

static void check_valid(const struct or_config *cfg)
{
	CHECK(cfg->node && cfg->node[0]);
	CHECK(cfg->pin_dir && cfg->pin_dir[0] == '/');
	CHECK(cfg->cgroup_root);
	CHECK(cfg->selector_key[0] && cfg->selector_value[0]);
	CHECK(cfg->max_connections >= 1 && cfg->max_connections <= 10000000);
	CHECK(cfg->workers <= 256);
	CHECK(cfg->trust_domain && cfg->trust_domain[0] &&
	      strspn(cfg->trust_domain, "abcdefghijklmnopqrstuvwxyz0123456789.-_") ==
		      strlen(cfg->trust_domain));
	CHECK(cfg->state_dir && cfg->state_dir[0] == '/');
	CHECK(!cfg->ca_cert == !cfg->ca_key);
	CHECK(!cfg->ca_cert || (cfg->ca_cert[0] == '/' && cfg->ca_key[0] == '/'));
	CHECK(cfg->svid_ttl_s >= 60 && cfg->svid_ttl_s <= 31536000);
	for (size_t i = 0; i < cfg->n_namespaces; i++) {
		CHECK(cfg->namespaces[i].name && cfg->namespaces[i].line > 0);
		CHECK(or_mtls_mode_name(cfg->namespaces[i].mtls)[0] != 'u');
	}
	for (size_t i = 0; i < cfg->n_pods; i++) {
		const struct or_pod_cfg *p = &cfg->pods[i];

		CHECK(p->name && p->namespace && p->node && p->service_account);
		CHECK(strlen(p->namespace) + 1 + strlen(p->name) <= 47);
		CHECK(p->ip.family == AF_INET);
		CHECK(p->ip6.family == 0 || p->ip6.family == AF_INET6);
		if (or_pod_local(cfg, p))
			CHECK(p->netns && p->cgroup);
		(void)or_pod_enrolled(cfg, p);
	}
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct or_svc_cfg *s = &cfg->services[i];

		CHECK(s->name && s->namespace && s->vip.family);
		CHECK(s->n_ports >= 1);
		CHECK(!(s->has_selector && s->n_endpoints));
		for (size_t j = 0; j < s->n_ports; j++)
			CHECK(s->ports[j].port && s->ports[j].target_port);
		for (size_t j = 0; j < s->n_endpoints; j++) {
			CHECK(s->endpoints[j].ip.family == s->vip.family);
			CHECK(s->endpoints[j].weight >= 1 && s->endpoints[j].weight <= 1000);
		}
		CHECK(s->policy.connect_timeout_ms >= 1);
		CHECK(or_lb_algo_name(s->policy.load_balancer)[0] != 'u');
		for (size_t j = 0; j < cfg->n_pods; j++)
			(void)or_labels_match(&cfg->pods[j].labels, &s->selector);
		CHECK(or_mtls_mode_name(or_svc_mtls(cfg, s))[0] != 'u');
		CHECK(!s->mtls_set || or_svc_mtls(cfg, s) == s->mtls);
		CHECK(!s->n_authz == !s->authz);
		for (size_t j = 0; j < s->n_authz; j++) {
			const struct or_authz_rule *r = &s->authz[j];

			CHECK(r->action == OR_AUTHZ_ALLOW || r->action == OR_AUTHZ_DENY);
			CHECK(r->line > 0 && r->n_ports <= OR_AUTHZ_MAX_PORTS);
			CHECK((r->match == OR_AUTHZ_ANY) == !r->value);
			if (r->match == OR_AUTHZ_EXACT || r->match == OR_AUTHZ_PREFIX)
				CHECK(strncmp(r->value, "spiffe://", 9) == 0 &&
				      strlen(r->value) <= 255);
			else if (r->match == OR_AUTHZ_NAMESPACE)
				CHECK(r->value[0]);
			else
				CHECK(r->match == OR_AUTHZ_ANY);
			for (size_t k = 0; k < r->n_ports; k++)
				CHECK(r->ports[k]);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct or_config *cfg = NULL;
	char err[256], tiny[5];
	int ret;

	/* A copy of exactly `size` bytes, so ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	ret = or_config_load_buf("fuzz.yaml", buf, size, &cfg, err, sizeof(err));
	if (ret == 0) {
		CHECK(cfg);
		check_valid(cfg);
		or_config_free(cfg);
	} else {
		CHECK(ret == -EINVAL || ret == -ENOMEM);
		CHECK(!cfg);
		CHECK(memchr(err, '\0', sizeof(err)));
		CHECK(ret == -ENOMEM || strncmp(err, "fuzz.yaml:", 10) == 0);
		/* The same failure into a buffer too small for it. */
		ret = or_config_load_buf("fuzz.yaml", buf, size, &cfg, tiny, sizeof(tiny));
		CHECK(ret != 0 && !cfg && tiny[sizeof(tiny) - 1] == '\0');
	}
	free(buf);
	return 0;
}
