// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target for the Kubernetes object decoders. The first byte picks
 * the kind (low two bits) and the decoder (the next bits mod 3: object,
 * watch event, list with its continue token and as a Status); the rest is the JSON, passed without a NUL after it.
 * Any bytes must give either a decoded value that keeps the header's
 * invariants, or an error with a NUL-terminated, non-empty reason and nothing
 * owned. ASan and UBSan catch the rest, leaks included.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "k8s_objects.h"

#define CHECK(cond)                     \
	do {                            \
		if (!(cond))            \
			__builtin_trap(); \
	} while (0)

static void check_labels(const struct or_labels *l)
{
	CHECK(!l->n == !l->v);
	for (size_t i = 0; i < l->n; i++)
		CHECK(l->v[i].key && l->v[i].value);
}

static void check_meta(const struct or_k8s_meta *m, bool namespaced)
{
	CHECK(m->name && m->name[0]);
	CHECK(namespaced ? m->namespace && m->namespace[0] : !m->namespace);
	check_labels(&m->labels);
}

static bool family_ok(const struct or_ip *ip)
{
	return ip->family == 0 || ip->family == AF_INET || ip->family == AF_INET6;
}

static void check_object(const struct or_k8s_object *o)
{
	switch (o->kind) {
	case OR_K8S_POD:
		check_meta(&o->pod.meta, true);
		CHECK(o->pod.service_account && o->pod.service_account[0]);
		CHECK(o->pod.ip.family == 0 || o->pod.ip.family == AF_INET);
		CHECK(o->pod.ip6.family == 0 || o->pod.ip6.family == AF_INET6);
		CHECK(!o->pod.node_name || o->pod.node_name[0]);
		break;
	case OR_K8S_NAMESPACE:
		check_meta(&o->ns.meta, false);
		break;
	case OR_K8S_SERVICE:
		check_meta(&o->svc.meta, true);
		CHECK(family_ok(&o->svc.cluster_ip));
		CHECK(o->svc.cluster_ip6.family == 0 || o->svc.cluster_ip6.family == AF_INET6);
		CHECK(o->svc.n_ports <= OR_K8S_MAX_PORTS && !o->svc.n_ports == !o->svc.ports);
		for (size_t i = 0; i < o->svc.n_ports; i++) {
			const struct or_k8s_service_port *p = &o->svc.ports[i];

			CHECK(p->port >= 1);
			CHECK(!p->target_port != !p->target_port_name);
			CHECK(!p->target_port_name || p->target_port_name[0]);
			CHECK(!p->name || p->name[0]);
			CHECK(p->protocol == OR_PROTOCOL_TCP || p->protocol == OR_PROTOCOL_HTTP);
		}
		check_labels(&o->svc.selector);
		CHECK(o->svc.has_selector == (o->svc.selector.n > 0));
		break;
	case OR_K8S_ENDPOINTSLICE:
		check_meta(&o->slice.meta, true);
		CHECK(o->slice.address_type == 0 || o->slice.address_type == AF_INET ||
		      o->slice.address_type == AF_INET6);
		CHECK(o->slice.n_endpoints <= OR_K8S_MAX_ENDPOINTS);
		CHECK(!o->slice.n_endpoints == !o->slice.endpoints);
		for (size_t i = 0; i < o->slice.n_endpoints; i++)
			CHECK(o->slice.endpoints[i].ip.family == o->slice.address_type);
		CHECK(o->slice.n_ports <= OR_K8S_MAX_PORTS && !o->slice.n_ports == !o->slice.ports);
		for (size_t i = 0; i < o->slice.n_ports; i++)
			CHECK(o->slice.ports[i].port >= 1);
		break;
	default:
		CHECK(0);
	}
}

static int list_cb(void *ctx, struct or_k8s_object *o)
{
	check_object(o);
	(*(size_t *)ctx)++;
	return 0;
}

static void check_err(const char *err, size_t errlen)
{
	CHECK(memchr(err, '\0', errlen) && err[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum or_k8s_kind kind;
	struct or_k8s_object o;
	struct or_k8s_event ev;
	char err[256], *rv, *buf;
	size_t len, items = 0, skipped;
	int ret;

	if (size < 1)
		return 0;
	kind = (enum or_k8s_kind)(data[0] & 3);
	/* An exact-size copy, so ASan sees any read past the end. */
	len = size - 1;
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, len);

	switch ((data[0] >> 2) % 3) {
	case 0:
		ret = or_k8s_decode(kind, buf, len, &o, err, sizeof(err));
		CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
		if (ret) {
			check_err(err, sizeof(err));
			CHECK(!o.pod.meta.name);
			break;
		}
		CHECK(o.kind == kind);
		check_object(&o);
		or_k8s_object_free(&o);
		break;
	case 1:
		ret = or_k8s_decode_event(kind, buf, len, &ev, err, sizeof(err));
		CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
		if (ret) {
			check_err(err, sizeof(err));
			CHECK(!ev.resource_version && !ev.error_message && !ev.obj.pod.meta.name);
			break;
		}
		CHECK(ev.obj.kind == kind);
		if (ev.type <= OR_K8S_DELETED)
			check_object(&ev.obj);
		else if (ev.type == OR_K8S_BOOKMARK)
			CHECK(ev.resource_version);
		else
			CHECK(ev.type == OR_K8S_ERROR && ev.error_code >= 0);
		or_k8s_event_free(&ev);
		break;
	default:
		/* The bytes as a list page's continue token, as an error Status, and as a list. */
		{
			char *cont = NULL, *msg = NULL;
			int code;

			ret = or_k8s_list_continue(buf, len, &cont);
			CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
			CHECK(!cont || (!ret && cont[0]));
			free(cont);
			ret = or_k8s_decode_status(buf, len, &code, &msg);
			CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
			CHECK(!ret || !msg);
			free(msg);
		}
		ret = or_k8s_decode_list(kind, buf, len, list_cb, &items, &rv, &skipped, err,
					 sizeof(err));
		CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
		if (ret) {
			check_err(err, sizeof(err));
			CHECK(!rv);
			break;
		}
		CHECK(rv);
		CHECK(!skipped == !err[0]);
		free(rv);
		break;
	}
	free(buf);
	return 0;
}
