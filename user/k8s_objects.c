// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Decoding of the Kubernetes API objects outrider watches (see k8s_objects.h).
 * The JSON comes from the network: every field we read is type-checked and
 * range-checked, and a failure names the field ("spec.ports[2].port: ...").
 * Decoders build into the caller's zeroed struct and, on failure, free what
 * they built, so the caller never owns anything after an error.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "k8s_objects.h"

/* Real objects nest about 10 deep (managedFields); 64 leaves headroom. */
#define K8S_MAX_DEPTH 64

struct dec {
	char *err;
	size_t errlen;
};

static int __attribute__((format(printf, 3, 4))) fail(struct dec *d, int ret, const char *fmt,
						      ...)
{
	va_list ap;

	if (d->err && d->errlen) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static const char *type_name(const struct json_object *o)
{
	return o ? json_type_to_name(json_object_get_type(o)) : "null";
}

struct kind_info {
	const char *kind;
	const char *list_kind;
	const char *api_version;
	bool namespaced;
};

static const struct kind_info kinds[] = {
	[OR_K8S_POD] = { "Pod", "PodList", "v1", true },
	[OR_K8S_NAMESPACE] = { "Namespace", "NamespaceList", "v1", false },
	[OR_K8S_SERVICE] = { "Service", "ServiceList", "v1", true },
	[OR_K8S_ENDPOINTSLICE] = { "EndpointSlice", "EndpointSliceList", "discovery.k8s.io/v1",
				   true },
};

static bool kind_valid(enum or_k8s_kind kind)
{
	return (unsigned int)kind < sizeof(kinds) / sizeof(kinds[0]);
}

/* ---- parsing --------------------------------------------------------- */

/*
 * Parses (buf, len) into one JSON object. Only whitespace may follow it
 * (watch streams end each event with a newline). On success the caller owns
 * *out and must json_object_put() it.
 */
static int parse(struct dec *d, const char *buf, size_t len, struct json_object **out)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	int flags = JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS;
	size_t end;
	int ret;

	*out = NULL;
	if (!buf && len)
		return fail(d, -EINVAL, "no buffer");
	if (len > INT_MAX)
		return fail(d, -EINVAL, "JSON text too large (%zu bytes)", len);
	/* json-c treats a NUL byte as the end of input; refuse rather than guess. */
	if (len && memchr(buf, '\0', len))
		return fail(d, -EINVAL, "NUL byte in JSON text");

	tok = json_tokener_new_ex(K8S_MAX_DEPTH);
	if (!tok)
		return fail(d, -ENOMEM, "out of memory");
#ifdef JSON_TOKENER_VALIDATE_UTF8
	flags |= JSON_TOKENER_VALIDATE_UTF8;
#endif
	json_tokener_set_flags(tok, flags);
	root = json_tokener_parse_ex(tok, len ? buf : "", (int)len);
	jerr = json_tokener_get_error(tok);
	if (!root && jerr == json_tokener_continue) {
		/* A NUL ends a value that only the next byte could end ("null", "42"). */
		root = json_tokener_parse_ex(tok, "", 1);
		jerr = json_tokener_get_error(tok);
		if (!root && jerr != json_tokener_success) {
			ret = fail(d, -EINVAL, "truncated JSON");
			goto out_tok;
		}
		len = 0; /* what follows was the NUL we fed */
	}
	if (!root) {
		if (jerr == json_tokener_continue)
			ret = fail(d, -EINVAL, "truncated JSON");
		else if (jerr == json_tokener_success)
			ret = fail(d, -EINVAL, "top level is null, expected an object");
		else
			ret = fail(d, -EINVAL, "bad JSON at byte %zu: %s",
				   json_tokener_get_parse_end(tok), json_tokener_error_desc(jerr));
		goto out_tok;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!strchr(" \t\r\n", buf[end])) {
			ret = fail(d, -EINVAL, "trailing data at byte %zu", end);
			goto out_root;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		ret = fail(d, -EINVAL, "top level is %s, expected an object", type_name(root));
		goto out_root;
	}
	json_tokener_free(tok);
	*out = root;
	return 0;

out_root:
	json_object_put(root);
out_tok:
	json_tokener_free(tok);
	return ret;
}

/* ---- typed field access --------------------------------------------- */

/*
 * Looks up `key` in `obj` expecting `type`. Absent and JSON null both give
 * *out = NULL and 0 (the API server omits empty fields, but other clients
 * write null); any other type is -EINVAL naming path.key.
 */
static int field(struct dec *d, const struct json_object *obj, const char *path, const char *key,
		 enum json_type type, struct json_object **out)
{
	struct json_object *v = NULL;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, type))
		return fail(d, -EINVAL, "%s%s: expected %s, got %s", path, key,
			    json_type_to_name(type), type_name(v));
	*out = v;
	return 0;
}

/* A string without NUL bytes; *out borrows from the JSON tree. */
static int field_str(struct dec *d, const struct json_object *obj, const char *path,
		     const char *key, bool required, const char **out)
{
	struct json_object *v;
	int ret;

	*out = NULL;
	ret = field(d, obj, path, key, json_type_string, &v);
	if (ret)
		return ret;
	if (!v) {
		if (required)
			return fail(d, -EINVAL, "%s%s: missing", path, key);
		return 0;
	}
	if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v))
		return fail(d, -EINVAL, "%s%s: NUL byte in string", path, key);
	*out = json_object_get_string(v);
	return 0;
}

static int dup_str(struct dec *d, const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	if (!*out)
		return fail(d, -ENOMEM, "out of memory");
	return 0;
}

/* field_str, copied into *out (malloc'd, NULL when absent). */
static int field_strdup(struct dec *d, const struct json_object *obj, const char *path,
			const char *key, bool required, char **out)
{
	const char *s;
	int ret;

	*out = NULL;
	ret = field_str(d, obj, path, key, required, &s);
	if (ret)
		return ret;
	return dup_str(d, s, out);
}

/* An optional name: "" counts as absent, since the API writes unnamed ports as "". */
static int field_name(struct dec *d, const struct json_object *obj, const char *path,
		      const char *key, char **out)
{
	const char *s;
	int ret;

	*out = NULL;
	ret = field_str(d, obj, path, key, false, &s);
	if (ret)
		return ret;
	return dup_str(d, s && s[0] ? s : NULL, out);
}

static int field_bool(struct dec *d, const struct json_object *obj, const char *path,
		      const char *key, bool dflt, bool *out)
{
	struct json_object *v;
	int ret;

	*out = dflt;
	ret = field(d, obj, path, key, json_type_boolean, &v);
	if (ret)
		return ret;
	if (v)
		*out = json_object_get_boolean(v);
	return 0;
}

/* An integer in [min, max]; 1.0 and "80" are not integers. */
static int field_int(struct dec *d, const struct json_object *obj, const char *path,
		     const char *key, bool required, int64_t min, int64_t max, int64_t *out)
{
	struct json_object *v;
	int64_t n;
	int ret;

	*out = 0;
	ret = field(d, obj, path, key, json_type_int, &v);
	if (ret)
		return ret;
	if (!v) {
		if (required)
			return fail(d, -EINVAL, "%s%s: missing", path, key);
		return 0;
	}
	/* Values past INT64_MAX clamp to it, which is out of any range we accept. */
	n = json_object_get_int64(v);
	if (n < min || n > max)
		return fail(d, -EINVAL, "%s%s: %lld out of range %lld..%lld", path, key,
			    (long long)n, (long long)min, (long long)max);
	*out = n;
	return 0;
}

static int field_port(struct dec *d, const struct json_object *obj, const char *path,
		      const char *key, uint16_t *out)
{
	int64_t n;
	int ret;

	ret = field_int(d, obj, path, key, true, 1, 65535, &n);
	*out = (uint16_t)n;
	return ret;
}

static int parse_ip(struct dec *d, const char *path, const char *s, struct or_ip *out)
{
	if (or_ip_parse(s, out))
		return fail(d, -EINVAL, "%s: bad IP address \"%.64s\"", path, s);
	return 0;
}

/* ---- labels ---------------------------------------------------------- */

static void labels_free(struct or_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* A map of string -> string into *out (empty when absent). */
static int field_labels(struct dec *d, const struct json_object *obj, const char *path,
			const char *key, struct or_labels *out)
{
	struct json_object *map;
	size_t n;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = field(d, obj, path, key, json_type_object, &map);
	if (ret || !map)
		return ret;
	n = (size_t)json_object_object_length(map);
	if (!n)
		return 0;
	out->v = calloc(n, sizeof(*out->v));
	if (!out->v)
		return fail(d, -ENOMEM, "out of memory");

	json_object_object_foreach(map, k, v)
	{
		struct or_label *l = &out->v[out->n];

		if (!json_object_is_type(v, json_type_string)) {
			ret = fail(d, -EINVAL, "%s%s[\"%.64s\"]: expected string, got %s", path,
				   key, k, type_name(v));
			goto err;
		}
		if (strlen(json_object_get_string(v)) != (size_t)json_object_get_string_len(v)) {
			ret = fail(d, -EINVAL, "%s%s[\"%.64s\"]: NUL byte in string", path, key, k);
			goto err;
		}
		l->key = strdup(k);
		l->value = strdup(json_object_get_string(v));
		out->n++;
		if (!l->key || !l->value) {
			ret = fail(d, -ENOMEM, "out of memory");
			goto err;
		}
	}
	return 0;

err:
	labels_free(out);
	return ret;
}

/* ---- metadata -------------------------------------------------------- */

static void meta_free(struct or_k8s_meta *m)
{
	free(m->name);
	free(m->namespace);
	free(m->uid);
	free(m->resource_version);
	labels_free(&m->labels);
	memset(m, 0, sizeof(*m));
}

/* kind and apiVersion are checked when present: list items carry neither. */
static int check_type(struct dec *d, const struct json_object *root, const char *want_kind,
		      const char *want_api)
{
	const char *s;
	int ret;

	ret = field_str(d, root, "", "kind", false, &s);
	if (ret)
		return ret;
	if (s && strcmp(s, want_kind))
		return fail(d, -EINVAL, "kind: \"%.64s\", expected \"%s\"", s, want_kind);
	ret = field_str(d, root, "", "apiVersion", false, &s);
	if (ret)
		return ret;
	if (s && strcmp(s, want_api))
		return fail(d, -EINVAL, "apiVersion: \"%.64s\", expected \"%s\"", s, want_api);
	return 0;
}

static int decode_meta(struct dec *d, const struct json_object *root, bool namespaced,
		       struct or_k8s_meta *m)
{
	struct json_object *md, *del;
	const char *s;
	int ret;

	ret = field(d, root, "", "metadata", json_type_object, &md);
	if (ret)
		return ret;
	if (!md)
		return fail(d, -EINVAL, "metadata: missing");

	ret = field_str(d, md, "metadata.", "name", true, &s);
	if (ret)
		goto err;
	if (!s[0]) {
		ret = fail(d, -EINVAL, "metadata.name: empty");
		goto err;
	}
	ret = dup_str(d, s, &m->name);
	if (ret)
		goto err;
	if (namespaced) {
		ret = field_str(d, md, "metadata.", "namespace", true, &s);
		if (ret)
			goto err;
		if (!s[0]) {
			ret = fail(d, -EINVAL, "metadata.namespace: empty");
			goto err;
		}
		ret = dup_str(d, s, &m->namespace);
		if (ret)
			goto err;
	}
	ret = field_strdup(d, md, "metadata.", "uid", false, &m->uid);
	if (ret)
		goto err;
	ret = field_strdup(d, md, "metadata.", "resourceVersion", false, &m->resource_version);
	if (ret)
		goto err;
	ret = field_labels(d, md, "metadata.", "labels", &m->labels);
	if (ret)
		goto err;
	ret = field(d, md, "metadata.", "deletionTimestamp", json_type_string, &del);
	if (ret)
		goto err;
	m->deleting = del != NULL;
	return 0;

err:
	meta_free(m);
	return ret;
}

/* ---- Pod ------------------------------------------------------------- */

static void pod_free(struct or_k8s_pod *p)
{
	meta_free(&p->meta);
	free(p->node_name);
	free(p->service_account);
	free(p->qos_class);
	free(p->phase);
}

/* status.podIPs, or the older status.podIP when podIPs is absent. */
static int decode_pod_ips(struct dec *d, const struct json_object *status, struct or_k8s_pod *p)
{
	struct json_object *ips;
	char path[64];
	const char *s;
	struct or_ip ip;
	int ret;

	ret = field(d, status, "status.", "podIPs", json_type_array, &ips);
	if (ret)
		return ret;
	if (!ips) {
		ret = field_str(d, status, "status.", "podIP", false, &s);
		if (ret || !s || !s[0])
			return ret;
		ret = parse_ip(d, "status.podIP", s, &ip);
		if (ret)
			return ret;
		if (ip.family == AF_INET)
			p->ip = ip;
		else
			p->ip6 = ip;
		return 0;
	}
	for (size_t i = 0; i < json_object_array_length(ips); i++) {
		struct json_object *e = json_object_array_get_idx(ips, i);

		snprintf(path, sizeof(path), "status.podIPs[%zu]", i);
		if (!json_object_is_type(e, json_type_object))
			return fail(d, -EINVAL, "%s: expected object, got %s", path,
				    type_name(e));
		snprintf(path, sizeof(path), "status.podIPs[%zu].", i);
		ret = field_str(d, e, path, "ip", true, &s);
		if (ret)
			return ret;
		snprintf(path, sizeof(path), "status.podIPs[%zu].ip", i);
		ret = parse_ip(d, path, s, &ip);
		if (ret)
			return ret;
		if (ip.family == AF_INET && !p->ip.family)
			p->ip = ip;
		else if (ip.family == AF_INET6 && !p->ip6.family)
			p->ip6 = ip;
	}
	return 0;
}

static int decode_pod(struct dec *d, const struct json_object *root, struct or_k8s_pod *p)
{
	struct json_object *spec, *status;
	const char *sa;
	int ret;

	ret = decode_meta(d, root, true, &p->meta);
	if (ret)
		return ret;
	ret = field(d, root, "", "spec", json_type_object, &spec);
	if (ret)
		goto err;
	ret = field(d, root, "", "status", json_type_object, &status);
	if (ret)
		goto err;
	if (spec) {
		ret = field_strdup(d, spec, "spec.", "nodeName", false, &p->node_name);
		if (ret)
			goto err;
		if (p->node_name && !p->node_name[0]) {
			free(p->node_name);
			p->node_name = NULL;
		}
		ret = field_str(d, spec, "spec.", "serviceAccountName", false, &sa);
		if (ret)
			goto err;
		/* The deprecated spec.serviceAccount, still written by old clients. */
		if (!sa || !sa[0]) {
			ret = field_str(d, spec, "spec.", "serviceAccount", false, &sa);
			if (ret)
				goto err;
		}
		ret = dup_str(d, sa && sa[0] ? sa : "default", &p->service_account);
		if (ret)
			goto err;
		ret = field_bool(d, spec, "spec.", "hostNetwork", false, &p->host_network);
		if (ret)
			goto err;
	} else {
		ret = dup_str(d, "default", &p->service_account);
		if (ret)
			goto err;
	}
	if (status) {
		ret = decode_pod_ips(d, status, p);
		if (ret)
			goto err;
		ret = field_strdup(d, status, "status.", "qosClass", false, &p->qos_class);
		if (ret)
			goto err;
		ret = field_strdup(d, status, "status.", "phase", false, &p->phase);
		if (ret)
			goto err;
	}
	return 0;

err:
	pod_free(p);
	memset(p, 0, sizeof(*p));
	return ret;
}

/* ---- Service --------------------------------------------------------- */

static void service_free(struct or_k8s_service *s)
{
	meta_free(&s->meta);
	for (size_t i = 0; i < s->n_ports; i++) {
		free(s->ports[i].name);
		free(s->ports[i].target_port_name);
	}
	free(s->ports);
	labels_free(&s->selector);
}

/* "None" (headless) and "" leave *ip unset. */
static int cluster_ip(struct dec *d, const char *path, const char *s, struct or_ip *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (!s || !s[0] || !strcmp(s, "None"))
		return 0;
	return parse_ip(d, path, s, ip);
}

/* Decodes one element of an array into *elem (see decode_array). */
typedef int (*decode_elem_fn)(struct dec *d, const struct json_object *e, size_t i, void *elem,
			      void *arg);

/*
 * The array `key` of obj, every element an object, at most `max` of them,
 * each decoded by `each` into a calloc'd array of elem_size bytes at *out.
 * *count counts the elements handed to `each`, so that on a failure the
 * caller frees exactly what was filled. Absent or null: nothing, 0.
 */
static int decode_array(struct dec *d, const struct json_object *obj, const char *path,
			const char *key, size_t max, const char *what, size_t elem_size,
			void **out, size_t *count, decode_elem_fn each, void *arg)
{
	struct json_object *arr = NULL;
	size_t n;
	int ret;

	ret = field(d, obj, path, key, json_type_array, &arr);
	if (ret)
		return ret;
	n = arr ? json_object_array_length(arr) : 0;
	if (n > max)
		return fail(d, -EINVAL, "%s%s: %zu %s, at most %zu", path, key, n, what, max);
	if (!n)
		return 0;
	*out = calloc(n, elem_size);
	if (!*out)
		return fail(d, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(e, json_type_object))
			return fail(d, -EINVAL, "%s%s[%zu]: expected object, got %s", path, key, i,
				    type_name(e));
		(*count)++;
		ret = each(d, e, i, (char *)*out + i * elem_size, arg);
		if (ret)
			return ret;
	}
	return 0;
}

/* name, port and protocol: what a Service port and an EndpointSlice port share. */
static int decode_port_fields(struct dec *d, const struct json_object *e, const char *path,
			      char **name, uint16_t *port, bool *tcp)
{
	const char *s;
	int ret;

	ret = field_name(d, e, path, "name", name);
	if (ret)
		return ret;
	ret = field_port(d, e, path, "port", port);
	if (ret)
		return ret;
	ret = field_str(d, e, path, "protocol", false, &s);
	if (ret)
		return ret;
	/* UDP and SCTP ports are kept, marked, so callers see the whole service. */
	*tcp = !s || !strcmp(s, "TCP");
	return 0;
}

static int decode_service_port(struct dec *d, const struct json_object *e, size_t i,
			       struct or_k8s_service_port *sp)
{
	struct json_object *tp = NULL;
	const char *s;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "spec.ports[%zu].", i);
	ret = decode_port_fields(d, e, path, &sp->name, &sp->port, &sp->tcp);
	if (ret)
		return ret;

	ret = field_str(d, e, path, "appProtocol", false, &s);
	if (ret)
		return ret;
	/* h2c stays L4 until the HTTP proxy speaks HTTP/2. */
	sp->protocol = s && !strcmp(s, "http") ? OR_PROTOCOL_HTTP : OR_PROTOCOL_TCP;

	/* targetPort: int-or-string; absent means the same as port. */
	json_object_object_get_ex(e, "targetPort", &tp);
	if (!tp) {
		sp->target_port = sp->port;
	} else if (json_object_is_type(tp, json_type_int)) {
		int64_t n;

		ret = field_int(d, e, path, "targetPort", true, 1, 65535, &n);
		if (ret)
			return ret;
		sp->target_port = (uint16_t)n;
	} else if (json_object_is_type(tp, json_type_string)) {
		ret = field_str(d, e, path, "targetPort", true, &s);
		if (ret)
			return ret;
		if (!s[0])
			return fail(d, -EINVAL, "%stargetPort: empty", path);
		ret = dup_str(d, s, &sp->target_port_name);
		if (ret)
			return ret;
	} else {
		return fail(d, -EINVAL, "%stargetPort: expected int or string, got %s", path,
			    type_name(tp));
	}
	return 0;
}

static int each_service_port(struct dec *d, const struct json_object *e, size_t i, void *elem,
			     void *arg)
{
	return decode_service_port(d, e, i, elem);
}

static int decode_service(struct dec *d, const struct json_object *root, struct or_k8s_service *svc)
{
	struct json_object *spec, *ips;
	const char *s;
	char path[64];
	int ret;

	ret = decode_meta(d, root, true, &svc->meta);
	if (ret)
		return ret;
	ret = field(d, root, "", "spec", json_type_object, &spec);
	if (ret)
		goto err;
	if (!spec) {
		ret = fail(d, -EINVAL, "spec: missing");
		goto err;
	}

	ret = field_str(d, spec, "spec.", "clusterIP", false, &s);
	if (ret)
		goto err;
	ret = cluster_ip(d, "spec.clusterIP", s, &svc->cluster_ip);
	if (ret)
		goto err;
	ret = field(d, spec, "spec.", "clusterIPs", json_type_array, &ips);
	if (ret)
		goto err;
	for (size_t i = 0; ips && i < json_object_array_length(ips); i++) {
		struct json_object *e = json_object_array_get_idx(ips, i);
		struct or_ip ip;

		snprintf(path, sizeof(path), "spec.clusterIPs[%zu]", i);
		if (!json_object_is_type(e, json_type_string)) {
			ret = fail(d, -EINVAL, "%s: expected string, got %s", path, type_name(e));
			goto err;
		}
		ret = cluster_ip(d, path, json_object_get_string(e), &ip);
		if (ret)
			goto err;
		/* The primary family is clusterIP's; the other family rides in ip6. */
		if (svc->cluster_ip.family && ip.family != svc->cluster_ip.family &&
		    !svc->cluster_ip6.family)
			svc->cluster_ip6 = ip;
	}

	ret = decode_array(d, spec, "spec.", "ports", OR_K8S_MAX_PORTS, "ports",
			   sizeof(*svc->ports), (void **)&svc->ports, &svc->n_ports,
			   each_service_port, NULL);
	if (ret)
		goto err;

	ret = field_labels(d, spec, "spec.", "selector", &svc->selector);
	if (ret)
		goto err;
	/* An empty selector selects nothing (endpoints managed by hand), not everything. */
	svc->has_selector = svc->selector.n > 0;
	return 0;

err:
	service_free(svc);
	memset(svc, 0, sizeof(*svc));
	return ret;
}

/* ---- EndpointSlice --------------------------------------------------- */

static void slice_free(struct or_k8s_endpointslice *sl)
{
	meta_free(&sl->meta);
	free(sl->service_name);
	for (size_t i = 0; i < sl->n_endpoints; i++) {
		free(sl->endpoints[i].node_name);
		free(sl->endpoints[i].target_pod);
	}
	free(sl->endpoints);
	for (size_t i = 0; i < sl->n_ports; i++)
		free(sl->ports[i].name);
	free(sl->ports);
}

static int decode_endpoint(struct dec *d, const struct json_object *e, size_t i, int family,
			   struct or_k8s_endpoint *ep)
{
	struct json_object *addrs, *a, *cond, *ref;
	const char *s;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "endpoints[%zu].", i);
	ret = field(d, e, path, "addresses", json_type_array, &addrs);
	if (ret)
		return ret;
	if (!addrs || !json_object_array_length(addrs))
		return fail(d, -EINVAL, "%saddresses: missing or empty", path);
	a = json_object_array_get_idx(addrs, 0);
	if (!json_object_is_type(a, json_type_string))
		return fail(d, -EINVAL, "%saddresses[0]: expected string, got %s", path,
			    type_name(a));
	/* FQDN slices are kept (with no address) so callers can count and skip them. */
	if (family) {
		snprintf(path, sizeof(path), "endpoints[%zu].addresses[0]", i);
		ret = parse_ip(d, path, json_object_get_string(a), &ep->ip);
		if (ret)
			return ret;
		if (ep->ip.family != family)
			return fail(d, -EINVAL, "%s: \"%.64s\" is not of the slice's addressType",
				    path, json_object_get_string(a));
		snprintf(path, sizeof(path), "endpoints[%zu].", i);
	}

	/* Per the API: ready absent means ready, serving absent defers to ready. */
	ep->ready = true;
	ep->serving = true;
	ret = field(d, e, path, "conditions", json_type_object, &cond);
	if (ret)
		return ret;
	if (cond) {
		snprintf(path, sizeof(path), "endpoints[%zu].conditions.", i);
		ret = field_bool(d, cond, path, "ready", true, &ep->ready);
		if (ret)
			return ret;
		ret = field_bool(d, cond, path, "serving", ep->ready, &ep->serving);
		if (ret)
			return ret;
		ret = field_bool(d, cond, path, "terminating", false, &ep->terminating);
		if (ret)
			return ret;
		snprintf(path, sizeof(path), "endpoints[%zu].", i);
	}

	ret = field_strdup(d, e, path, "nodeName", false, &ep->node_name);
	if (ret)
		return ret;
	ret = field(d, e, path, "targetRef", json_type_object, &ref);
	if (ret || !ref)
		return ret;
	snprintf(path, sizeof(path), "endpoints[%zu].targetRef.", i);
	ret = field_str(d, ref, path, "kind", false, &s);
	if (ret)
		return ret;
	if (s && !strcmp(s, "Pod")) {
		ret = field_str(d, ref, path, "name", true, &s);
		if (ret)
			return ret;
		ret = dup_str(d, s, &ep->target_pod);
	}
	return ret;
}

/* arg: the slice's address family, which every endpoint address must have. */
static int each_endpoint(struct dec *d, const struct json_object *e, size_t i, void *elem,
			 void *arg)
{
	return decode_endpoint(d, e, i, *(int *)arg, elem);
}

static int decode_slice_port(struct dec *d, const struct json_object *e, size_t i,
			     struct or_k8s_slice_port *sp)
{
	char path[64];

	snprintf(path, sizeof(path), "ports[%zu].", i);
	return decode_port_fields(d, e, path, &sp->name, &sp->port, &sp->tcp);
}

static int each_slice_port(struct dec *d, const struct json_object *e, size_t i, void *elem,
			   void *arg)
{
	return decode_slice_port(d, e, i, elem);
}

static int decode_slice(struct dec *d, const struct json_object *root,
			struct or_k8s_endpointslice *sl)
{
	const char *s;
	int ret;

	ret = decode_meta(d, root, true, &sl->meta);
	if (ret)
		return ret;
	ret = dup_str(d, or_labels_get(&sl->meta.labels, "kubernetes.io/service-name"),
		      &sl->service_name);
	if (ret)
		goto err;

	ret = field_str(d, root, "", "addressType", true, &s);
	if (ret)
		goto err;
	if (!strcmp(s, "IPv4")) {
		sl->address_type = AF_INET;
	} else if (!strcmp(s, "IPv6")) {
		sl->address_type = AF_INET6;
	} else if (!strcmp(s, "FQDN")) {
		sl->address_type = 0;
	} else {
		ret = fail(d, -EINVAL, "addressType: \"%.64s\", expected IPv4, IPv6 or FQDN", s);
		goto err;
	}

	ret = decode_array(d, root, "", "endpoints", OR_K8S_MAX_ENDPOINTS, "endpoints",
			   sizeof(*sl->endpoints), (void **)&sl->endpoints, &sl->n_endpoints,
			   each_endpoint, &sl->address_type);
	if (ret)
		goto err;

	ret = decode_array(d, root, "", "ports", OR_K8S_MAX_PORTS, "ports", sizeof(*sl->ports),
			   (void **)&sl->ports, &sl->n_ports, each_slice_port, NULL);
	if (ret)
		goto err;
	return 0;

err:
	slice_free(sl);
	memset(sl, 0, sizeof(*sl));
	return ret;
}

/* ---- objects --------------------------------------------------------- */

/* Decodes root as `kind` into the zeroed *out; nothing is owned on failure. */
static int decode_tree(struct dec *d, enum or_k8s_kind kind, const struct json_object *root,
		       struct or_k8s_object *out)
{
	const struct kind_info *ki = &kinds[kind];
	int ret;

	memset(out, 0, sizeof(*out));
	out->kind = kind;
	ret = check_type(d, root, ki->kind, ki->api_version);
	if (ret)
		return ret;
	switch (kind) {
	case OR_K8S_POD:
		return decode_pod(d, root, &out->pod);
	case OR_K8S_NAMESPACE:
		return decode_meta(d, root, false, &out->ns.meta);
	case OR_K8S_SERVICE:
		return decode_service(d, root, &out->svc);
	case OR_K8S_ENDPOINTSLICE:
		return decode_slice(d, root, &out->slice);
	}
	return fail(d, -EINVAL, "unknown kind %d", (int)kind);
}

int or_k8s_decode(enum or_k8s_kind kind, const char *buf, size_t len, struct or_k8s_object *out,
		  char *err, size_t errlen)
{
	struct dec d = { err, errlen };
	struct json_object *root;
	int ret;

	memset(out, 0, sizeof(*out));
	out->kind = kind;
	if (errlen)
		err[0] = '\0';
	if (!kind_valid(kind))
		return fail(&d, -EINVAL, "unknown kind %d", (int)kind);
	ret = parse(&d, buf, len, &root);
	if (ret)
		return ret;
	ret = decode_tree(&d, kind, root, out);
	json_object_put(root);
	return ret;
}

void or_k8s_object_free(struct or_k8s_object *o)
{
	enum or_k8s_kind kind;

	if (!o)
		return;
	switch (o->kind) {
	case OR_K8S_POD:
		pod_free(&o->pod);
		break;
	case OR_K8S_NAMESPACE:
		meta_free(&o->ns.meta);
		break;
	case OR_K8S_SERVICE:
		service_free(&o->svc);
		break;
	case OR_K8S_ENDPOINTSLICE:
		slice_free(&o->slice);
		break;
	}
	kind = o->kind;
	memset(o, 0, sizeof(*o));
	o->kind = kind;
}

static const struct or_k8s_meta *obj_meta(const struct or_k8s_object *o)
{
	switch (o->kind) {
	case OR_K8S_POD:
		return &o->pod.meta;
	case OR_K8S_NAMESPACE:
		return &o->ns.meta;
	case OR_K8S_SERVICE:
		return &o->svc.meta;
	case OR_K8S_ENDPOINTSLICE:
		break;
	}
	return &o->slice.meta;
}

/* ---- watch events ---------------------------------------------------- */

static const char *const event_types[] = {
	[OR_K8S_ADDED] = "ADDED",
	[OR_K8S_MODIFIED] = "MODIFIED",
	[OR_K8S_DELETED] = "DELETED",
	[OR_K8S_BOOKMARK] = "BOOKMARK",
	[OR_K8S_ERROR] = "ERROR",
};

/* A v1 Status: {"kind":"Status","code":410,"message":"too old resource version: ..."}. */
static int decode_status(struct dec *d, const struct json_object *st, struct or_k8s_event *e)
{
	int64_t code;
	int ret;

	ret = field_int(d, st, "object.", "code", false, 0, INT_MAX, &code);
	if (ret)
		return ret;
	e->error_code = (int)code;
	return field_strdup(d, st, "object.", "message", false, &e->error_message);
}

/* A bookmark's object has only kind, apiVersion and metadata.resourceVersion. */
static int decode_bookmark(struct dec *d, enum or_k8s_kind kind, const struct json_object *obj,
			   struct or_k8s_event *e)
{
	struct json_object *md;
	int ret;

	ret = check_type(d, obj, kinds[kind].kind, kinds[kind].api_version);
	if (ret)
		return ret;
	ret = field(d, obj, "object.", "metadata", json_type_object, &md);
	if (ret)
		return ret;
	if (!md)
		return fail(d, -EINVAL, "object.metadata: missing");
	return field_strdup(d, md, "object.metadata.", "resourceVersion", true,
			    &e->resource_version);
}

int or_k8s_decode_event(enum or_k8s_kind kind, const char *buf, size_t len,
			struct or_k8s_event *out, char *err, size_t errlen)
{
	struct dec d = { err, errlen };
	struct json_object *root, *obj;
	const char *type;
	char msg[256];
	size_t t;
	int ret;

	memset(out, 0, sizeof(*out));
	out->obj.kind = kind;
	if (errlen)
		err[0] = '\0';
	if (!kind_valid(kind))
		return fail(&d, -EINVAL, "unknown kind %d", (int)kind);
	ret = parse(&d, buf, len, &root);
	if (ret)
		return ret;

	ret = field_str(&d, root, "", "type", true, &type);
	if (ret)
		goto out_root;
	for (t = 0; t < sizeof(event_types) / sizeof(event_types[0]); t++)
		if (!strcmp(type, event_types[t]))
			break;
	if (t == sizeof(event_types) / sizeof(event_types[0])) {
		ret = fail(&d, -EINVAL, "type: unknown event type \"%.64s\"", type);
		goto out_root;
	}
	out->type = (enum or_k8s_event_type)t;
	ret = field(&d, root, "", "object", json_type_object, &obj);
	if (ret)
		goto out_root;
	if (!obj) {
		ret = fail(&d, -EINVAL, "object: missing");
		goto out_root;
	}

	switch (out->type) {
	case OR_K8S_ERROR:
		ret = decode_status(&d, obj, out);
		break;
	case OR_K8S_BOOKMARK:
		ret = decode_bookmark(&d, kind, obj, out);
		break;
	default:
		ret = decode_tree(&d, kind, obj, &out->obj);
		if (ret) {
			/* Say where: the object's errors name paths inside it. */
			snprintf(msg, sizeof(msg), "%s", errlen ? err : "");
			fail(&d, ret, "object.%s", msg);
			break;
		}
		ret = dup_str(&d, obj_meta(&out->obj)->resource_version, &out->resource_version);
		break;
	}
	if (ret)
		or_k8s_event_free(out);

out_root:
	json_object_put(root);
	return ret;
}

void or_k8s_event_free(struct or_k8s_event *e)
{
	enum or_k8s_kind kind;

	if (!e)
		return;
	kind = e->obj.kind;
	or_k8s_object_free(&e->obj);
	free(e->resource_version);
	free(e->error_message);
	memset(e, 0, sizeof(*e));
	e->obj.kind = kind;
}

/* ---- lists ----------------------------------------------------------- */

int or_k8s_decode_list(enum or_k8s_kind kind, const char *buf, size_t len,
		       int (*cb)(void *ctx, struct or_k8s_object *o), void *ctx, char **rv,
		       size_t *skipped, char *err, size_t errlen)
{
	struct dec d = { err, errlen };
	struct json_object *root, *md, *items;
	char item_err[256], first_skip[320] = "";
	const char *s;
	size_t n;
	int ret;

	*rv = NULL;
	*skipped = 0;
	if (errlen)
		err[0] = '\0';
	if (!kind_valid(kind))
		return fail(&d, -EINVAL, "unknown kind %d", (int)kind);
	ret = parse(&d, buf, len, &root);
	if (ret)
		return ret;

	ret = check_type(&d, root, kinds[kind].list_kind, kinds[kind].api_version);
	if (ret)
		goto out_root;
	ret = field(&d, root, "", "metadata", json_type_object, &md);
	if (ret)
		goto out_root;
	if (!md) {
		ret = fail(&d, -EINVAL, "metadata: missing");
		goto out_root;
	}
	/* The list's resourceVersion is where the watch starts: no list without it. */
	ret = field_str(&d, md, "metadata.", "resourceVersion", true, &s);
	if (ret)
		goto out_root;
	ret = field(&d, root, "", "items", json_type_array, &items);
	if (ret)
		goto out_root;

	n = items ? json_object_array_length(items) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(items, i);
		struct dec id = { item_err, sizeof(item_err) };
		struct or_k8s_object o;

		if (!json_object_is_type(e, json_type_object)) {
			fail(&id, -EINVAL, "expected object, got %s", type_name(e));
			ret = -EINVAL;
		} else {
			ret = decode_tree(&id, kind, e, &o);
		}
		if (ret == -ENOMEM) {
			fail(&d, ret, "items[%zu]: %s", i, item_err);
			goto out_root;
		}
		if (ret) {
			if (!*skipped)
				snprintf(first_skip, sizeof(first_skip), "items[%zu]: %s", i,
					 item_err);
			(*skipped)++;
			continue;
		}
		ret = cb ? cb(ctx, &o) : 0;
		or_k8s_object_free(&o);
		if (ret < 0) {
			fail(&d, ret, "items[%zu]: callback failed (%d)", i, ret);
			goto out_root;
		}
	}
	ret = dup_str(&d, s, rv);
	/* On success err tells about the first skipped item, for the caller's log. */
	if (!ret && first_skip[0])
		fail(&d, 0, "%zu item(s) skipped, the first: %s", *skipped, first_skip);

out_root:
	json_object_put(root);
	return ret;
}

int or_k8s_list_continue(const char *buf, size_t len, char **cont)
{
	char err[64];
	struct dec d = { err, sizeof(err) };
	struct json_object *root, *md;
	const char *s = NULL;
	int ret;

	*cont = NULL;
	ret = parse(&d, buf, len, &root);
	if (ret)
		return ret;
	ret = field(&d, root, "", "metadata", json_type_object, &md);
	if (!ret && md)
		ret = field_str(&d, md, "metadata.", "continue", false, &s);
	if (!ret && s && *s)
		ret = dup_str(&d, s, cont);
	json_object_put(root);
	return ret;
}

int or_k8s_decode_status(const char *buf, size_t len, int *code, char **message)
{
	char err[64];
	struct dec d = { err, sizeof(err) };
	struct json_object *root;
	struct or_k8s_event e = {};
	const char *s = NULL;
	int ret;

	*code = 0;
	*message = NULL;
	ret = parse(&d, buf, len, &root);
	if (ret)
		return ret;
	ret = field_str(&d, root, "", "kind", true, &s);
	if (!ret && strcmp(s, "Status"))
		ret = -EINVAL;
	if (!ret)
		ret = decode_status(&d, root, &e);
	if (!ret) {
		*code = e.error_code;
		*message = e.error_message;
	} else {
		free(e.error_message);
	}
	json_object_put(root);
	return ret;
}
