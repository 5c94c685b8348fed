// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kubernetes object decoding: the fixtures in tests/fixtures/k8s/ are shaped
 * like a real API server's output (managedFields and all) and every field the
 * header promises is checked; then a table of bad inputs, each of which must
 * come back -EINVAL with a message naming what was wrong, and nothing owned.
 * Run from the repository root (tests/run.sh does).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s_objects.h"

#define FIXTURES "tests/fixtures/k8s/"

static char *slurp(const char *name, size_t *len)
{
	char path[256];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), FIXTURES "%s", name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s (run from the repository root)", path);
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_gt(n, 0, "%s is empty", path);
	rewind(f);
	/* Exactly n bytes, no NUL after: the decoder must not need one. */
	buf = malloc((size_t)n);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read on %s", path);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static const char *ip_str(const struct or_ip *ip)
{
	static char bufs[4][OR_IP_STRLEN];
	static int i;

	i = (i + 1) % 4;
	return or_ip_str(ip, bufs[i], sizeof(bufs[i]));
}

static void decode_fixture(enum or_k8s_kind kind, const char *name, struct or_k8s_object *o)
{
	char err[256] = "";
	size_t len;
	char *buf = slurp(name, &len);
	int ret;

	ret = or_k8s_decode(kind, buf, len, o, err, sizeof(err));
	free(buf);
	cr_assert_eq(ret, 0, "%s: expected success, got %d: %s", name, ret, err);
	cr_assert_eq(o->kind, kind, "%s: kind %d, want %d", name, o->kind, kind);
}

static void assert_label(const struct or_labels *l, const char *key, const char *value)
{
	const char *v = or_labels_get(l, key);

	cr_assert_not_null(v, "label %s missing", key);
	cr_assert_str_eq(v, value, "label %s = %s, want %s", key, v, value);
}

static void assert_meta(const struct or_k8s_meta *m, const char *name, const char *ns,
			const char *uid, const char *rv, size_t n_labels)
{
	cr_assert_str_eq(m->name, name);
	if (ns)
		cr_assert_str_eq(m->namespace, ns);
	else
		cr_assert_null(m->namespace, "cluster-scoped object has a namespace");
	cr_assert_str_eq(m->uid, uid);
	cr_assert_str_eq(m->resource_version, rv);
	cr_assert_eq(m->labels.n, n_labels, "labels: %zu, want %zu", m->labels.n, n_labels);
}

/* ---- fixtures --------------------------------------------------------- */

Test(k8s_fixture, pod)
{
	struct or_k8s_object o;
	const struct or_k8s_pod *p = &o.pod;

	decode_fixture(OR_K8S_POD, "pod.json", &o);
	assert_meta(&p->meta, "checkout-7d9c6b5f4-x2x8q", "shop",
		    "3f1c2b7e-8a41-4c55-9a0e-6b2f1d7c9e10", "184467", 3);
	assert_label(&p->meta.labels, "app.kubernetes.io/name", "checkout");
	assert_label(&p->meta.labels, "outrider.io/mesh", "enabled");
	assert_label(&p->meta.labels, "pod-template-hash", "7d9c6b5f4");
	cr_assert_not(p->meta.deleting, "deleting without deletionTimestamp");
	cr_assert_str_eq(p->node_name, "node-a");
	cr_assert_str_eq(p->service_account, "checkout");
	cr_assert_eq(p->ip.family, AF_INET);
	cr_assert_str_eq(ip_str(&p->ip), "10.244.1.17");
	cr_assert_eq(p->ip6.family, AF_INET6);
	cr_assert_str_eq(ip_str(&p->ip6), "fd00:10:244:1::11");
	cr_assert_str_eq(p->qos_class, "Burstable");
	cr_assert_str_eq(p->phase, "Running");
	cr_assert_not(p->host_network);
	or_k8s_object_free(&o);
	cr_assert_null(o.pod.meta.name, "free leaves no dangling pointers");
}

Test(k8s_fixture, namespace)
{
	struct or_k8s_object o;

	decode_fixture(OR_K8S_NAMESPACE, "namespace.json", &o);
	assert_meta(&o.ns.meta, "shop", NULL, "b2d4f6a8-1c3e-4a5b-9d7f-0e2c4a6b8d10", "1523", 3);
	assert_label(&o.ns.meta.labels, "kubernetes.io/metadata.name", "shop");
	assert_label(&o.ns.meta.labels, "outrider.io/mesh", "enabled");
	assert_label(&o.ns.meta.labels, "team", "payments");
	cr_assert_not(o.ns.meta.deleting);
	or_k8s_object_free(&o);
}

Test(k8s_fixture, service)
{
	struct or_k8s_object o;
	const struct or_k8s_service *s = &o.svc;

	decode_fixture(OR_K8S_SERVICE, "service.json", &o);
	assert_meta(&s->meta, "checkout", "shop", "c7e9a1b3-5d6f-4e8a-b0c2-d4e6f8a0b2c4",
		    "184102", 2);
	cr_assert_eq(s->cluster_ip.family, AF_INET);
	cr_assert_str_eq(ip_str(&s->cluster_ip), "10.96.14.201");
	cr_assert_eq(s->cluster_ip6.family, AF_INET6);
	cr_assert_str_eq(ip_str(&s->cluster_ip6), "fd00:10:96::e1c9");
	cr_assert_eq(s->n_ports, 3);

	cr_assert_str_eq(s->ports[0].name, "http");
	cr_assert_eq(s->ports[0].port, 80);
	cr_assert_eq(s->ports[0].target_port, 0, "named targetPort gives number 0");
	cr_assert_str_eq(s->ports[0].target_port_name, "http");
	cr_assert_eq(s->ports[0].protocol, OR_PROTOCOL_HTTP);
	cr_assert(s->ports[0].tcp);

	cr_assert_str_eq(s->ports[1].name, "grpc");
	cr_assert_eq(s->ports[1].port, 9090);
	cr_assert_eq(s->ports[1].target_port, 9091);
	cr_assert_null(s->ports[1].target_port_name);
	cr_assert_eq(s->ports[1].protocol, OR_PROTOCOL_TCP, "h2c stays L4 for now");
	cr_assert(s->ports[1].tcp);

	cr_assert_str_eq(s->ports[2].name, "dns");
	cr_assert_eq(s->ports[2].port, 53);
	cr_assert_eq(s->ports[2].target_port, 5353);
	cr_assert_eq(s->ports[2].protocol, OR_PROTOCOL_TCP);
	cr_assert_not(s->ports[2].tcp, "UDP port marked tcp");

	cr_assert(s->has_selector);
	cr_assert_eq(s->selector.n, 1);
	assert_label(&s->selector, "app.kubernetes.io/name", "checkout");
	or_k8s_object_free(&o);
}

Test(k8s_fixture, endpointslice)
{
	struct or_k8s_object o;
	const struct or_k8s_endpointslice *sl = &o.slice;
	const struct or_k8s_endpoint *e;

	decode_fixture(OR_K8S_ENDPOINTSLICE, "endpointslice.json", &o);
	assert_meta(&sl->meta, "checkout-7xq2m", "shop", "e1f3a5b7-c9d1-4e3f-a5b7-c9d1e3f5a7b9",
		    "184470", 3);
	cr_assert_str_eq(sl->service_name, "checkout");
	cr_assert_eq(sl->address_type, AF_INET);
	cr_assert_eq(sl->n_endpoints, 3);

	e = &sl->endpoints[0];
	cr_assert_str_eq(ip_str(&e->ip), "10.244.1.17");
	cr_assert(e->ready && e->serving && !e->terminating);
	cr_assert_str_eq(e->node_name, "node-a");
	cr_assert_str_eq(e->target_pod, "checkout-7d9c6b5f4-x2x8q");

	e = &sl->endpoints[1];
	cr_assert_str_eq(ip_str(&e->ip), "10.244.2.9");
	cr_assert(!e->ready && !e->serving && !e->terminating, "endpoint 1 is not ready");
	cr_assert_str_eq(e->node_name, "node-b");
	cr_assert_str_eq(e->target_pod, "checkout-7d9c6b5f4-m4k7z");

	e = &sl->endpoints[2];
	cr_assert_str_eq(ip_str(&e->ip), "10.244.3.22");
	cr_assert(!e->ready && e->serving && e->terminating, "endpoint 2 is terminating");
	cr_assert_str_eq(e->node_name, "node-c");
	cr_assert_str_eq(e->target_pod, "checkout-5b8f9c7d6-q9w3e");

	cr_assert_eq(sl->n_ports, 3);
	cr_assert_str_eq(sl->ports[0].name, "http");
	cr_assert_eq(sl->ports[0].port, 8080);
	cr_assert(sl->ports[0].tcp);
	cr_assert_str_eq(sl->ports[1].name, "grpc");
	cr_assert_eq(sl->ports[1].port, 9091);
	cr_assert(sl->ports[1].tcp);
	cr_assert_str_eq(sl->ports[2].name, "dns");
	cr_assert_eq(sl->ports[2].port, 5353);
	cr_assert_not(sl->ports[2].tcp);
	or_k8s_object_free(&o);
}

struct list_seen {
	size_t n;
	char names[4][64];
	char ips[4][OR_IP_STRLEN];
	bool deleting[4];
};

static int collect_pod(void *ctx, struct or_k8s_object *o)
{
	struct list_seen *seen = ctx;

	cr_assert_eq(o->kind, OR_K8S_POD);
	cr_assert_lt(seen->n, 4, "too many items");
	snprintf(seen->names[seen->n], sizeof(seen->names[0]), "%s", o->pod.meta.name);
	or_ip_str(&o->pod.ip, seen->ips[seen->n], sizeof(seen->ips[0]));
	seen->deleting[seen->n] = o->pod.meta.deleting;
	seen->n++;
	return 0;
}

Test(k8s_fixture, podlist)
{
	struct list_seen seen = { 0 };
	char err[256] = "", *rv = NULL;
	size_t len, skipped = 99;
	char *buf = slurp("podlist.json", &len);
	int ret;

	ret = or_k8s_decode_list(OR_K8S_POD, buf, len, collect_pod, &seen, &rv, &skipped, err,
				 sizeof(err));
	free(buf);
	cr_assert_eq(ret, 0, "podlist: %d: %s", ret, err);
	cr_assert_str_eq(rv, "184500");
	cr_assert_eq(skipped, 0, "skipped %zu: %s", skipped, err);
	cr_assert_eq(seen.n, 3);
	cr_assert_str_eq(seen.names[0], "checkout-7d9c6b5f4-x2x8q");
	cr_assert_str_eq(seen.ips[0], "10.244.1.17");
	cr_assert_str_eq(seen.names[1], "checkout-7d9c6b5f4-m4k7z");
	cr_assert_str_eq(seen.ips[1], "10.244.2.9");
	cr_assert_str_eq(seen.names[2], "pending-1");
	cr_assert_str_eq(seen.ips[2], "-", "pending pod has no IP");
	free(rv);
}

/* The watch fixture is one event per line, as the API server streams them. */
Test(k8s_fixture, watch_stream)
{
	static const enum or_k8s_event_type want[] = { OR_K8S_ADDED, OR_K8S_MODIFIED,
						       OR_K8S_DELETED, OR_K8S_BOOKMARK,
						       OR_K8S_ERROR };
	size_t len, n = 0;
	char *buf = slurp("watch_pods.jsonl", &len);
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t llen = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
		struct or_k8s_event ev;
		char err[256] = "";
		int ret;

		cr_assert_lt(n, 5, "more events than expected");
		ret = or_k8s_decode_event(OR_K8S_POD, p, llen, &ev, err, sizeof(err));
		cr_assert_eq(ret, 0, "event %zu: %d: %s", n, ret, err);
		cr_assert_eq(ev.type, want[n], "event %zu: type %d", n, ev.type);
		switch (ev.type) {
		case OR_K8S_ADDED:
			cr_assert_str_eq(ev.resource_version, "184467");
			cr_assert_str_eq(ev.obj.pod.meta.name, "checkout-7d9c6b5f4-x2x8q");
			assert_label(&ev.obj.pod.meta.labels, "outrider.io/mesh", "enabled");
			break;
		case OR_K8S_MODIFIED:
			cr_assert_str_eq(ev.resource_version, "184501");
			assert_label(&ev.obj.pod.meta.labels, "outrider.io/mesh", "disabled");
			cr_assert_not(ev.obj.pod.meta.deleting);
			break;
		case OR_K8S_DELETED:
			cr_assert_str_eq(ev.resource_version, "184530");
			cr_assert(ev.obj.pod.meta.deleting, "deletionTimestamp not seen");
			cr_assert_str_eq(ip_str(&ev.obj.pod.ip6), "fd00:10:244:1::11");
			break;
		case OR_K8S_BOOKMARK:
			cr_assert_str_eq(ev.resource_version, "184612");
			cr_assert_null(ev.obj.pod.meta.name, "bookmark decoded as an object");
			break;
		case OR_K8S_ERROR:
			cr_assert_eq(ev.error_code, 410);
			cr_assert_str_eq(ev.error_message,
					 "too old resource version: 184000 (184467)");
			cr_assert_null(ev.resource_version);
			break;
		}
		or_k8s_event_free(&ev);
		n++;
		p += llen;
	}
	cr_assert_eq(n, 5);
	free(buf);
}

/* ---- semantics beyond the fixtures ------------------------------------ */

static void decode_str(enum or_k8s_kind kind, const char *json, struct or_k8s_object *o)
{
	char err[256] = "";
	int ret = or_k8s_decode(kind, json, strlen(json), o, err, sizeof(err));

	cr_assert_eq(ret, 0, "expected success, got %d: %s\n%s", ret, err, json);
}

Test(k8s_semantics, pod_defaults_and_old_podip)
{
	struct or_k8s_object o;

	decode_str(OR_K8S_POD,
		   "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"},"
		   "\"spec\":{\"hostNetwork\":true,\"nodeName\":\"\"},"
		   "\"status\":{\"podIP\":\"fd00::5\"}}",
		   &o);
	cr_assert_str_eq(o.pod.service_account, "default");
	cr_assert_null(o.pod.node_name, "empty nodeName means unscheduled");
	cr_assert(o.pod.host_network);
	cr_assert_eq(o.pod.ip.family, 0);
	cr_assert_str_eq(ip_str(&o.pod.ip6), "fd00::5");
	cr_assert_null(o.pod.meta.uid);
	cr_assert_null(o.pod.qos_class);
	or_k8s_object_free(&o);
}

Test(k8s_semantics, headless_service_no_selector)
{
	struct or_k8s_object o;

	decode_str(OR_K8S_SERVICE,
		   "{\"metadata\":{\"name\":\"db\",\"namespace\":\"n\"},"
		   "\"spec\":{\"clusterIP\":\"None\",\"clusterIPs\":[\"None\"],\"selector\":{},"
		   "\"ports\":[{\"port\":5432,\"name\":\"\"}]}}",
		   &o);
	cr_assert_eq(o.svc.cluster_ip.family, 0);
	cr_assert_eq(o.svc.cluster_ip6.family, 0);
	cr_assert_not(o.svc.has_selector, "an empty selector must not select every pod");
	cr_assert_eq(o.svc.n_ports, 1);
	cr_assert_null(o.svc.ports[0].name, "\"\" port name is no name");
	cr_assert_eq(o.svc.ports[0].target_port, 5432, "absent targetPort = port");
	cr_assert(o.svc.ports[0].tcp, "absent protocol = TCP");
	or_k8s_object_free(&o);
}

Test(k8s_semantics, slice_conditions_absent_and_fqdn)
{
	struct or_k8s_object o;

	decode_str(OR_K8S_ENDPOINTSLICE,
		   "{\"metadata\":{\"name\":\"s\",\"namespace\":\"n\"},\"addressType\":\"IPv6\","
		   "\"endpoints\":[{\"addresses\":[\"fd00::1\",\"fd00::2\"]},"
		   "{\"addresses\":[\"fd00::3\"],\"conditions\":{\"ready\":false},"
		   "\"targetRef\":{\"kind\":\"Node\",\"name\":\"x\"}}],\"ports\":null}",
		   &o);
	cr_assert_null(o.slice.service_name);
	cr_assert_eq(o.slice.address_type, AF_INET6);
	cr_assert_eq(o.slice.n_endpoints, 2);
	cr_assert_str_eq(ip_str(&o.slice.endpoints[0].ip), "fd00::1");
	cr_assert(o.slice.endpoints[0].ready, "absent ready counts as ready");
	cr_assert(o.slice.endpoints[0].serving);
	cr_assert_not(o.slice.endpoints[0].terminating);
	cr_assert_not(o.slice.endpoints[1].ready);
	cr_assert_not(o.slice.endpoints[1].serving, "absent serving follows ready");
	cr_assert_null(o.slice.endpoints[1].target_pod, "targetRef to a Node is no pod");
	cr_assert_eq(o.slice.n_ports, 0);
	or_k8s_object_free(&o);

	decode_str(OR_K8S_ENDPOINTSLICE,
		   "{\"metadata\":{\"name\":\"s\",\"namespace\":\"n\"},\"addressType\":\"FQDN\","
		   "\"endpoints\":[{\"addresses\":[\"db.example.com\"]}]}",
		   &o);
	cr_assert_eq(o.slice.address_type, 0);
	cr_assert_eq(o.slice.endpoints[0].ip.family, 0);
	or_k8s_object_free(&o);
}

Test(k8s_semantics, list_skips_bad_items)
{
	static const char json[] =
		"{\"kind\":\"NamespaceList\",\"apiVersion\":\"v1\","
		"\"metadata\":{\"resourceVersion\":\"9\"},\"items\":["
		"{\"metadata\":{\"name\":\"a\"}},"
		"{\"metadata\":{\"name\":5}},7,"
		"{\"metadata\":{\"name\":\"b\",\"labels\":{\"x\":\"y\"}}}]}";
	struct list_seen seen = { 0 };
	char err[256] = "", *rv = NULL;
	size_t skipped = 0;
	int ret;

	ret = or_k8s_decode_list(OR_K8S_NAMESPACE, json, strlen(json), NULL, &seen, &rv,
				 &skipped, err, sizeof(err));
	cr_assert_eq(ret, 0, "%d: %s", ret, err);
	cr_assert_eq(skipped, 2);
	cr_assert_str_eq(rv, "9");
	cr_assert(strstr(err, "items[1]: metadata.name"), "first skip not reported: %s", err);
	free(rv);
}

static int abort_cb(void *ctx, struct or_k8s_object *o)
{
	(*(int *)ctx)++;
	return -ENOSPC;
}

Test(k8s_semantics, list_callback_error_stops)
{
	static const char json[] = "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":["
				   "{\"metadata\":{\"name\":\"a\"}},"
				   "{\"metadata\":{\"name\":\"b\"}}]}";
	char err[256] = "", *rv = (char *)0x1;
	size_t skipped;
	int calls = 0, ret;

	ret = or_k8s_decode_list(OR_K8S_NAMESPACE, json, strlen(json), abort_cb, &calls, &rv,
				 &skipped, err, sizeof(err));
	cr_assert_eq(ret, -ENOSPC);
	cr_assert_eq(calls, 1);
	cr_assert_null(rv);
}

Test(k8s_semantics, slice_event_and_error_without_message)
{
	static const char mod[] =
		"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"EndpointSlice\",\"apiVersion\":"
		"\"discovery.k8s.io/v1\",\"metadata\":{\"name\":\"s\",\"namespace\":\"n\","
		"\"resourceVersion\":\"77\",\"labels\":{\"kubernetes.io/service-name\":\"web\"}},"
		"\"addressType\":\"IPv4\",\"endpoints\":[{\"addresses\":[\"10.0.0.1\"],"
		"\"conditions\":{\"ready\":false,\"terminating\":true}}]}}\r\n";
	static const char gone[] = "{\"type\":\"ERROR\",\"object\":{\"code\":500}}";
	struct or_k8s_event ev;
	char err[256] = "";
	int ret;

	ret = or_k8s_decode_event(OR_K8S_ENDPOINTSLICE, mod, strlen(mod), &ev, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(ev.type, OR_K8S_MODIFIED);
	cr_assert_str_eq(ev.resource_version, "77");
	cr_assert_str_eq(ev.obj.slice.service_name, "web");
	cr_assert(ev.obj.slice.endpoints[0].terminating);
	cr_assert_not(ev.obj.slice.endpoints[0].ready);
	or_k8s_event_free(&ev);

	ret = or_k8s_decode_event(OR_K8S_SERVICE, gone, strlen(gone), &ev, err, sizeof(err));
	cr_assert_eq(ret, 0, "%s", err);
	cr_assert_eq(ev.error_code, 500);
	cr_assert_null(ev.error_message);
	or_k8s_event_free(&ev);
}

/* ---- bad input -------------------------------------------------------- */

enum dec_fn { OBJ, EVENT, LIST };

struct bad_case {
	enum dec_fn fn;
	enum or_k8s_kind kind;
	const char *json;
	const char *frag; /* somewhere in the error message */
};

#define POD_MD "\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"}"
#define SVC(ports) "{" POD_MD ",\"spec\":{\"ports\":[" ports "]}}"
#define SLICE(rest) "{" POD_MD ",\"addressType\":\"IPv4\"," rest "}"

static const struct bad_case bad_cases[] = {
	/* framing */
	{ OBJ, OR_K8S_POD, "", "truncated" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":{\"name\":\"p\"", "truncated" },
	{ OBJ, OR_K8S_POD, "[]", "top level is array" },
	{ OBJ, OR_K8S_POD, "\"pod\"", "top level is string" },
	{ OBJ, OR_K8S_POD, "42 ", "top level is int" },
	{ OBJ, OR_K8S_POD, "42", "top level is int" },
	{ OBJ, OR_K8S_POD, "null", "top level is null" },
	{ OBJ, OR_K8S_POD, "{" POD_MD "} {}", "trailing data" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",}", "bad JSON" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":tru}", "bad JSON" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":{\"name\":\"p\",\"namespace\":\"n\"}", "truncated" },
	{ OBJ, OR_K8S_POD, "{\"a\":\"\\u0000\"," POD_MD ",\"spec\":{\"nodeName\":\"a\\u0000b\"}}",
	  "spec.nodeName: NUL byte" },
	/* kind and metadata */
	{ OBJ, OR_K8S_POD, "{\"kind\":\"Service\"," POD_MD "}", "kind: \"Service\"" },
	{ OBJ, OR_K8S_POD, "{\"kind\":7," POD_MD "}", "kind: expected string" },
	{ OBJ, OR_K8S_ENDPOINTSLICE,
	  "{\"apiVersion\":\"discovery.k8s.io/v1beta1\"," POD_MD ",\"addressType\":\"IPv4\"}",
	  "apiVersion" },
	{ OBJ, OR_K8S_POD, "{\"spec\":{}}", "metadata: missing" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":[]}", "metadata: expected object" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":{\"namespace\":\"n\"}}", "metadata.name: missing" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":{\"name\":5,\"namespace\":\"n\"}}",
	  "metadata.name: expected string, got int" },
	{ OBJ, OR_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"\"}}", "metadata.name: empty" },
	{ OBJ, OR_K8S_POD, "{\"metadata\":{\"name\":\"p\"}}", "metadata.namespace: missing" },
	{ OBJ, OR_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":1}}}",
	  "metadata.labels[\"x\"]: expected string" },
	{ OBJ, OR_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"a\",\"labels\":[\"x\"]}}",
	  "metadata.labels: expected object" },
	{ OBJ, OR_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":12}}",
	  "metadata.resourceVersion: expected string" },
	{ OBJ, OR_K8S_NAMESPACE, "{\"metadata\":{\"name\":\"a\",\"deletionTimestamp\":true}}",
	  "metadata.deletionTimestamp" },
	/* pod */
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"spec\":\"x\"}", "spec: expected object" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"spec\":{\"hostNetwork\":\"true\"}}",
	  "spec.hostNetwork: expected boolean" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"status\":{\"podIPs\":[{\"ip\":\"10.0.0.256\"}]}}",
	  "status.podIPs[0].ip: bad IP" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"status\":{\"podIPs\":[\"10.0.0.1\"]}}",
	  "status.podIPs[0]: expected object" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"status\":{\"podIPs\":{}}}",
	  "status.podIPs: expected array" },
	{ OBJ, OR_K8S_POD, "{" POD_MD ",\"status\":{\"podIP\":\"pod.local\"}}",
	  "status.podIP: bad IP" },
	/* service */
	{ OBJ, OR_K8S_SERVICE, "{" POD_MD "}", "spec: missing" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":0}"), "spec.ports[0].port: 0 out of range" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80},{\"port\":70000}"),
	  "spec.ports[1].port: 70000 out of range" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":-1}"), "out of range" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":99999999999999999999999}"), "out of range" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":\"80\"}"), "spec.ports[0].port: expected int" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80.0}"), "expected int, got double" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"name\":\"a\"}"), "spec.ports[0].port: missing" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80,\"targetPort\":0}"), "targetPort: 0 out" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80,\"targetPort\":true}"),
	  "targetPort: expected int or string" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80,\"targetPort\":\"\"}"), "targetPort: empty" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80,\"protocol\":6}"), "protocol: expected string" },
	{ OBJ, OR_K8S_SERVICE, SVC("{\"port\":80,\"appProtocol\":[]}"), "appProtocol" },
	{ OBJ, OR_K8S_SERVICE, SVC("7"), "spec.ports[0]: expected object" },
	{ OBJ, OR_K8S_SERVICE, "{" POD_MD ",\"spec\":{\"clusterIP\":\"10.96.0\"}}",
	  "spec.clusterIP: bad IP" },
	{ OBJ, OR_K8S_SERVICE, "{" POD_MD ",\"spec\":{\"clusterIPs\":[\"10.0.0.1\",1]}}",
	  "spec.clusterIPs[1]: expected string" },
	{ OBJ, OR_K8S_SERVICE, "{" POD_MD ",\"spec\":{\"selector\":{\"app\":null}}}",
	  "spec.selector[\"app\"]" },
	/* endpointslice */
	{ OBJ, OR_K8S_ENDPOINTSLICE, "{" POD_MD "}", "addressType: missing" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, "{" POD_MD ",\"addressType\":\"IPv5\"}", "addressType" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":[{\"addresses\":[]}]"),
	  "endpoints[0].addresses: missing or empty" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":[{}]"), "endpoints[0].addresses" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":[{\"addresses\":[\"fd00::1\"]}]"),
	  "not of the slice's addressType" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":[{\"addresses\":[\"1.2.3\"]}]"),
	  "endpoints[0].addresses[0]: bad IP" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":[{\"addresses\":[17]}]"),
	  "addresses[0]: expected string" },
	{ OBJ, OR_K8S_ENDPOINTSLICE,
	  SLICE("\"endpoints\":[{\"addresses\":[\"1.2.3.4\"],\"conditions\":{\"ready\":\"yes\"}}]"),
	  "endpoints[0].conditions.ready: expected boolean" },
	{ OBJ, OR_K8S_ENDPOINTSLICE,
	  SLICE("\"endpoints\":[{\"addresses\":[\"1.2.3.4\"],\"targetRef\":{\"kind\":\"Pod\"}}]"),
	  "endpoints[0].targetRef.name: missing" },
	{ OBJ, OR_K8S_ENDPOINTSLICE,
	  SLICE("\"endpoints\":[{\"addresses\":[\"1.2.3.4\"],\"nodeName\":1}]"),
	  "endpoints[0].nodeName: expected string" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"ports\":[{\"port\":70000}]"),
	  "ports[0].port: 70000 out of range" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"ports\":[{\"name\":\"http\"}]"),
	  "ports[0].port: missing" },
	{ OBJ, OR_K8S_ENDPOINTSLICE, SLICE("\"endpoints\":{}"), "endpoints: expected array" },
	/* events */
	{ EVENT, OR_K8S_POD, "{\"object\":{}}", "type: missing" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"UPDATED\",\"object\":{}}", "unknown event type" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"ADDED\"}", "object: missing" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"ADDED\",\"object\":[]}", "object: expected object" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"p\"}}}",
	  "object.metadata.namespace: missing" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{}}}",
	  "object.metadata.resourceVersion: missing" },
	{ EVENT, OR_K8S_POD,
	  "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Service\",\"metadata\":"
	  "{\"resourceVersion\":\"1\"}}}",
	  "kind" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"ERROR\",\"object\":{\"code\":\"410\"}}",
	  "object.code: expected int" },
	{ EVENT, OR_K8S_POD, "{\"type\":\"ADDED\",\"object\":{}}\n{\"type\":\"ADDED\"}",
	  "trailing data" },
	/* lists */
	{ LIST, OR_K8S_POD, "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"1\"}}",
	  "kind: \"ServiceList\"" },
	{ LIST, OR_K8S_POD, "{\"metadata\":{},\"items\":[]}", "metadata.resourceVersion: missing" },
	{ LIST, OR_K8S_POD, "{\"items\":[]}", "metadata: missing" },
	{ LIST, OR_K8S_POD, "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":{}}",
	  "items: expected array" },
	{ LIST, OR_K8S_POD, "[{\"metadata\":{\"resourceVersion\":\"1\"}}]", "top level is array" },
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

/*
 * Criterion may run each parameter in a re-executed worker where pointers into
 * the table move, so the parameter is the row's index, not the row.
 */
static size_t bad_rows[N_BAD];

ParameterizedTestParameters(k8s_bad, table)
{
	for (size_t i = 0; i < N_BAD; i++)
		bad_rows[i] = i;
	return cr_make_param_array(size_t, bad_rows, N_BAD);
}

static int count_cb(void *ctx, struct or_k8s_object *o)
{
	(*(size_t *)ctx)++;
	return 0;
}

/* Runs one decoder on (buf, len); asserts -EINVAL, frag in err, and nothing owned. */
static void expect_bad(enum dec_fn fn, enum or_k8s_kind kind, const char *buf, size_t len,
		       const char *frag)
{
	char err[512] = "", *rv = (char *)0x1;
	struct or_k8s_object o;
	struct or_k8s_event ev;
	size_t skipped, items = 0;
	int ret = 0;

	switch (fn) {
	case OBJ:
		ret = or_k8s_decode(kind, buf, len, &o, err, sizeof(err));
		cr_assert_null(o.pod.meta.name, "object left filled on failure");
		break;
	case EVENT:
		ret = or_k8s_decode_event(kind, buf, len, &ev, err, sizeof(err));
		cr_assert(!ev.resource_version && !ev.error_message && !ev.obj.pod.meta.name,
			  "event left filled on failure");
		break;
	case LIST:
		ret = or_k8s_decode_list(kind, buf, len, count_cb, &items, &rv, &skipped, err,
					 sizeof(err));
		cr_assert_null(rv, "resourceVersion returned on failure");
		break;
	}
	cr_assert_eq(ret, -EINVAL, "expected -EINVAL, got %d (%s) for\n%.*s", ret, err, (int)len,
		     buf);
	cr_assert(strstr(err, frag), "error should mention '%s': '%s'\n%.*s", frag, err, (int)len,
		  buf);
}

ParameterizedTest(size_t *row, k8s_bad, table)
{
	const struct bad_case *c = &bad_cases[*row];

	expect_bad(c->fn, c->kind, c->json, strlen(c->json), c->frag);
}

/* Builds {..."spec":{"ports":[{"port":1},... n times]}} */
static char *many_ports(size_t n, bool slice)
{
	size_t cap = 256 + n * 16, off;
	char *buf = malloc(cap);

	cr_assert_not_null(buf);
	off = (size_t)snprintf(buf, cap, "{" POD_MD ",%s\"ports\":[",
			       slice ? "\"addressType\":\"IPv4\"," : "\"spec\":{");
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(buf + off, cap - off, "%s{\"port\":%zu}", i ? "," : "",
					i + 1);
	snprintf(buf + off, cap - off, "]}%s", slice ? "" : "}");
	return buf;
}

Test(k8s_bad, port_limits)
{
	struct or_k8s_object o;
	char *buf;

	buf = many_ports(OR_K8S_MAX_PORTS, false);
	decode_str(OR_K8S_SERVICE, buf, &o);
	cr_assert_eq(o.svc.n_ports, OR_K8S_MAX_PORTS);
	or_k8s_object_free(&o);
	free(buf);

	buf = many_ports(OR_K8S_MAX_PORTS + 1, false);
	expect_bad(OBJ, OR_K8S_SERVICE, buf, strlen(buf), "spec.ports: 65 ports, at most 64");
	free(buf);

	buf = many_ports(OR_K8S_MAX_PORTS + 1, true);
	expect_bad(OBJ, OR_K8S_ENDPOINTSLICE, buf, strlen(buf), "ports: 65 ports, at most 64");
	free(buf);
}

Test(k8s_bad, endpoint_limit)
{
	size_t cap = 256 + (OR_K8S_MAX_ENDPOINTS + 1) * 40, off;
	struct or_k8s_object o;
	char *buf = malloc(cap);

	cr_assert_not_null(buf);
	for (size_t n = OR_K8S_MAX_ENDPOINTS; n <= OR_K8S_MAX_ENDPOINTS + 1; n++) {
		off = (size_t)snprintf(buf, cap,
				       "{" POD_MD ",\"addressType\":\"IPv4\",\"endpoints\":[");
		for (size_t i = 0; i < n; i++)
			off += (size_t)snprintf(buf + off, cap - off,
						"%s{\"addresses\":[\"10.%zu.%zu.1\"]}",
						i ? "," : "", i / 256, i % 256);
		snprintf(buf + off, cap - off, "]}");
		if (n == OR_K8S_MAX_ENDPOINTS) {
			decode_str(OR_K8S_ENDPOINTSLICE, buf, &o);
			cr_assert_eq(o.slice.n_endpoints, OR_K8S_MAX_ENDPOINTS);
			or_k8s_object_free(&o);
		} else {
			expect_bad(OBJ, OR_K8S_ENDPOINTSLICE, buf, strlen(buf),
				   "endpoints: 1001 endpoints, at most 1000");
		}
	}
	free(buf);
}

Test(k8s_bad, deep_nesting)
{
	size_t depth = 10000, off = 0;
	char *buf = malloc(depth * 6 + 64);

	cr_assert_not_null(buf);
	off += (size_t)sprintf(buf, "{" POD_MD ",\"x\":");
	for (size_t i = 0; i < depth; i++)
		off += (size_t)sprintf(buf + off, "[");
	for (size_t i = 0; i < depth; i++)
		off += (size_t)sprintf(buf + off, "]");
	sprintf(buf + off, "}");
	expect_bad(OBJ, OR_K8S_POD, buf, strlen(buf), "bad JSON");
	free(buf);
}

/* A NUL inside the given length, and a buffer with no NUL after it at all. */
Test(k8s_bad, nul_and_unterminated)
{
	static const char nul[] = "{\"metadata\":{\"name\":\"p\0\",\"namespace\":\"n\"}}";
	static const char good[] = "{\"metadata\":{\"name\":\"shop\"}}";
	struct or_k8s_object o;
	char err[256];
	char *buf;

	expect_bad(OBJ, OR_K8S_POD, nul, sizeof(nul) - 1, "NUL byte");

	buf = malloc(sizeof(good) - 1);
	cr_assert_not_null(buf);
	memcpy(buf, good, sizeof(good) - 1);
	cr_assert_eq(or_k8s_decode(OR_K8S_NAMESPACE, buf, sizeof(good) - 1, &o, err, sizeof(err)),
		     0, "%s", err);
	cr_assert_str_eq(o.ns.meta.name, "shop");
	or_k8s_object_free(&o);
	/* One byte short of the closing brace is truncated, not read past. */
	expect_bad(OBJ, OR_K8S_NAMESPACE, buf, sizeof(good) - 2, "truncated");
	free(buf);
}

Test(k8s_bad, bad_kind_and_tiny_err)
{
	struct or_k8s_object o;
	char err[4];

	cr_assert_eq(or_k8s_decode((enum or_k8s_kind)9, "{}", 2, &o, err, sizeof(err)), -EINVAL);
	cr_assert_eq(strlen(err), 3, "message truncated to the buffer");
	cr_assert_eq(or_k8s_decode(OR_K8S_POD, "[", 1, &o, NULL, 0), -EINVAL);
}
