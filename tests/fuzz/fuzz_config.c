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
	for (size_t i = 0; i < cfg->n_namespaces; i++)
		CHECK(cfg->namespaces[i].name && cfg->namespaces[i].line > 0);
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
