// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cgroup_find.h"
#include "kube_source.h"
#include "log.h"

/*
 * Where each pod to enroll was found on the node, by UID. Kept so that a
 * pod keeps the netns path it was enrolled with (the first PID of its
 * cgroup may change), until that path stops naming the same netns.
 */
struct found {
	char *uid;
	char *cgroup;
	char *netns;
	dev_t dev;
	ino_t ino;
	bool waiting_logged; /* "waiting for its cgroup" said once */
	bool seen;           /* still in the store at the last merge */
};

static struct found *found;
static size_t n_found, cap_found;

void or_kube_source_reset(void)
{
	for (size_t i = 0; i < n_found; i++) {
		free(found[i].uid);
		free(found[i].cgroup);
		free(found[i].netns);
	}
	free(found);
	found = NULL;
	n_found = cap_found = 0;
}

static struct found *found_get(const char *uid)
{
	for (size_t i = 0; i < n_found; i++)
		if (strcmp(found[i].uid, uid) == 0)
			return &found[i];
	if (n_found == cap_found) {
		size_t cap = cap_found ? cap_found * 2 : 16;
		struct found *nf = realloc(found, cap * sizeof(*nf));

		if (!nf)
			return NULL;
		found = nf;
		cap_found = cap;
	}
	memset(&found[n_found], 0, sizeof(found[0]));
	found[n_found].uid = strdup(uid);
	if (!found[n_found].uid)
		return NULL;
	return &found[n_found++];
}

static void found_clear(struct found *f)
{
	free(f->cgroup);
	free(f->netns);
	f->cgroup = f->netns = NULL;
}

/* Drops the entries of pods that left the store. */
static void found_prune(void)
{
	size_t j = 0;

	for (size_t i = 0; i < n_found; i++) {
		if (!found[i].seen) {
			found_clear(&found[i]);
			free(found[i].uid);
			continue;
		}
		found[i].seen = false;
		found[j++] = found[i];
	}
	n_found = j;
}

static const char *cgroup_root(const struct or_config *cfg)
{
	static char buf[PATH_MAX];

	if (cfg->cgroup_root && strcmp(cfg->cgroup_root, "auto") != 0)
		return cfg->cgroup_root;
	if (!buf[0] && or_cgroup2_root(NULL, buf, sizeof(buf)))
		return NULL;
	return buf;
}

/*
 * The pod's cgroup directory and netns path: remembered, or found now.
 * 0, -ENOENT (not there yet: wait), or -ENOMEM.
 */
static int locate(const struct or_config *cfg, const struct or_k8s_pod *p, const char **cg,
		  const char **netns)
{
	struct found *f = found_get(p->meta.uid);
	char dir[PATH_MAX], ns[64];
	const char *root;
	struct stat st;
	pid_t pid;
	int err;

	if (!f)
		return -ENOMEM;
	f->seen = true;
	if (f->netns && stat(f->netns, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino) {
		*cg = f->cgroup;
		*netns = f->netns;
		return 0;
	}
	found_clear(f);
	root = cgroup_root(cfg);
	if (!root)
		return -ENOENT;
	err = or_cgroup_find_pod(root, p->meta.uid, p->qos_class, dir, sizeof(dir));
	if (!err)
		err = or_cgroup_pod_pid(dir, &pid);
	if (!err)
		err = or_netns_path_of(pid, ns, sizeof(ns));
	if (!err && stat(ns, &st) != 0)
		err = -ENOENT;
	if (err) {
		if (!f->waiting_logged)
			or_info("kubernetes: pod waits for its cgroup and process",
				"pod=%s/%s uid=%s err=\"%s\"", p->meta.namespace, p->meta.name,
				p->meta.uid, strerror(-err));
		f->waiting_logged = true;
		return err == -ENOMEM ? -ENOMEM : -ENOENT;
	}
	f->cgroup = strdup(dir);
	f->netns = strdup(ns);
	if (!f->cgroup || !f->netns) {
		found_clear(f);
		return -ENOMEM;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->waiting_logged = false;
	*cg = f->cgroup;
	*netns = f->netns;
	return 0;
}

/* ---- copying into the config ---------------------------------------------- */

static int grow(void **v, size_t n, size_t elem)
{
	void *nv = realloc(*v, (n + 1) * elem);

	if (!nv)
		return -ENOMEM;
	*v = nv;
	memset((char *)nv + n * elem, 0, elem);
	return 0;
}

static int merge_namespaces(struct or_kube *k, struct or_config *cfg)
{
	size_t n = or_kube_count(k, OR_K8S_NAMESPACE);

	for (size_t i = 0; i < n; i++) {
		const struct or_k8s_namespace *kns = &or_kube_at(k, OR_K8S_NAMESPACE, i)->ns;
		struct or_ns_cfg *ns = NULL;

		for (size_t j = 0; j < cfg->n_namespaces && !ns; j++)
			if (strcmp(cfg->namespaces[j].name, kns->meta.name) == 0)
				ns = &cfg->namespaces[j];
		if (ns) {
			/* The file's entry sets mtls; the labels are the API's. */
			or_labels_free(&ns->labels);
		} else {
			if (grow((void **)&cfg->namespaces, cfg->n_namespaces, sizeof(*ns)))
				return -ENOMEM;
			ns = &cfg->namespaces[cfg->n_namespaces++];
			ns->mtls = OR_MTLS_PERMISSIVE;
			ns->name = strdup(kns->meta.name);
			if (!ns->name)
				return -ENOMEM;
		}
		if (or_labels_copy(&ns->labels, &kns->meta.labels))
			return -ENOMEM;
		/*
		 * Without a file entry, the namespace's label chooses the failure
		 * mode (permissive there, so fail-open is allowed).
		 */
		if (!ns->line) {
			const char *v = or_labels_get(&ns->labels, OR_LABEL_ON_AGENT_DOWN);

			ns->on_agent_down = v && strcmp(v, "fail-open") == 0
						    ? OR_AGENT_DOWN_FAIL_OPEN
						    : OR_AGENT_DOWN_FAIL_CLOSED;
		}
	}
	return 0;
}

static bool pod_named(const struct or_config *cfg, size_t upto, const char *ns, const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (!strcmp(cfg->pods[i].namespace, ns) && !strcmp(cfg->pods[i].name, name))
			return true;
	return false;
}

static void pod_drop_last(struct or_config *cfg)
{
	struct or_pod_cfg *pod = &cfg->pods[--cfg->n_pods];

	free(pod->name);
	free(pod->namespace);
	free(pod->node);
	or_labels_free(&pod->labels);
	free(pod->netns);
	free(pod->cgroup);
	free(pod->service_account);
	memset(pod, 0, sizeof(*pod));
}

static int merge_pods(struct or_kube *k, struct or_config *cfg, size_t *pending)
{
	size_t n = or_kube_count(k, OR_K8S_POD), file_pods = cfg->n_pods;

	for (size_t i = 0; i < n; i++) {
		const struct or_k8s_pod *p = &or_kube_at(k, OR_K8S_POD, i)->pod;
		const char *cg, *netns;
		struct or_pod_cfg *pod;
		int err;

		if (p->host_network || !p->ip.family || !p->node_name ||
		    strcmp(p->node_name, cfg->node) != 0 || !p->meta.uid ||
		    (p->phase && (!strcmp(p->phase, "Succeeded") || !strcmp(p->phase, "Failed"))) ||
		    pod_named(cfg, file_pods, p->meta.namespace, p->meta.name))
			continue;
		if (grow((void **)&cfg->pods, cfg->n_pods, sizeof(*pod)))
			return -ENOMEM;
		pod = &cfg->pods[cfg->n_pods++];
		pod->name = strdup(p->meta.name);
		pod->namespace = strdup(p->meta.namespace);
		pod->node = strdup(p->node_name);
		pod->service_account = strdup(p->service_account ? p->service_account : "default");
		pod->ip = p->ip;
		pod->ip6 = p->ip6;
		if (!pod->name || !pod->namespace || !pod->node || !pod->service_account ||
		    or_labels_copy(&pod->labels, &p->meta.labels))
			return -ENOMEM;
		if (!or_pod_enrolled(cfg, pod))
			continue; /* known, for the services it backs; not captured */
		err = locate(cfg, p, &cg, &netns);
		if (err == -ENOMEM)
			return err;
		if (err) {
			pod_drop_last(cfg);
			(*pending)++;
			continue;
		}
		pod->cgroup = strdup(cg);
		pod->netns = strdup(netns);
		if (!pod->cgroup || !pod->netns)
			return -ENOMEM;
	}
	return 0;
}

/* ---- services --------------------------------------------------------------- */

static int slice_cmp(const void *a, const void *b)
{
	const struct or_k8s_endpointslice *x = *(const struct or_k8s_endpointslice *const *)a;
	const struct or_k8s_endpointslice *y = *(const struct or_k8s_endpointslice *const *)b;
	int d = strcmp(x->meta.namespace, y->meta.namespace);

	return d ? d : strcmp(x->service_name ? x->service_name : "",
			      y->service_name ? y->service_name : "");
}

static bool vip_taken(const struct or_config *cfg, const struct or_ip *vip, uint16_t port)
{
	for (size_t i = 0; i < cfg->n_services; i++) {
		const struct or_svc_cfg *s = &cfg->services[i];

		if (!or_ip_eq(&s->vip, vip))
			continue;
		for (size_t j = 0; j < s->n_ports; j++)
			if (s->ports[j].port == port)
				return true;
	}
	return false;
}

static bool svc_in_file(const struct or_config *cfg, size_t upto, const char *ns,
			const char *name)
{
	for (size_t i = 0; i < upto; i++)
		if (!strcmp(cfg->services[i].namespace, ns) && !strcmp(cfg->services[i].name, name))
			return true;
	return false;
}

static bool same_name(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The ready endpoints of slices[0..n) for one port of one family. */
static int add_endpoints(struct or_svc_cfg *svc, const struct or_k8s_service_port *sp,
			 int family, const struct or_k8s_endpointslice *const *slices, size_t n)
{
	for (size_t s = 0; s < n; s++) {
		const struct or_k8s_endpointslice *sl = slices[s];
		uint16_t port = 0;

		if (sl->address_type != family)
			continue;
		for (size_t p = 0; p < sl->n_ports && !port; p++)
			if (sl->ports[p].tcp && same_name(sl->ports[p].name, sp->name))
				port = sl->ports[p].port;
		if (!port)
			continue;
		for (size_t e = 0; e < sl->n_endpoints; e++) {
			const struct or_k8s_endpoint *ke = &sl->endpoints[e];
			struct or_endpoint_cfg *ep;
			bool dup = false;

			if (!ke->ready || ke->ip.family != family)
				continue;
			for (size_t j = 0; j < svc->n_endpoints && !dup; j++)
				dup = or_ip_eq(&svc->endpoints[j].ip, &ke->ip) &&
				      svc->endpoints[j].port == port;
			if (dup)
				continue;
			if (grow((void **)&svc->endpoints, svc->n_endpoints, sizeof(*ep)))
				return -ENOMEM;
			ep = &svc->endpoints[svc->n_endpoints++];
			ep->ip = ke->ip;
			ep->port = port;
			ep->weight = 1;
			if (ke->node_name && !(ep->node = strdup(ke->node_name)))
				return -ENOMEM;
		}
	}
	return 0;
}

static int add_service_port(struct or_config *cfg, const struct or_k8s_service *ks,
			    const struct or_k8s_service_port *sp, const struct or_ip *vip,
			    const struct or_k8s_endpointslice *const *slices, size_t n_slices)
{
	struct or_svc_cfg *svc;

	if (vip_taken(cfg, vip, sp->port))
		return 0;
	if (grow((void **)&cfg->services, cfg->n_services, sizeof(*svc)))
		return -ENOMEM;
	svc = &cfg->services[cfg->n_services++];
	svc->name = strdup(ks->meta.name);
	svc->namespace = strdup(ks->meta.namespace);
	svc->ports = calloc(1, sizeof(*svc->ports));
	if (!svc->name || !svc->namespace || !svc->ports)
		return -ENOMEM;
	svc->n_ports = 1;
	svc->ports[0].port = sp->port;
	svc->ports[0].target_port = sp->target_port ? sp->target_port : sp->port;
	svc->ports[0].protocol = sp->protocol;
	svc->vip = *vip;
	svc->mode = OR_SVC_PROXY;
	svc->mtls = OR_MTLS_PERMISSIVE;
	or_policy_defaults(&svc->policy);
	return add_endpoints(svc, sp, vip->family, slices, n_slices);
}

static int merge_services(struct or_kube *k, struct or_config *cfg)
{
	size_t n = or_kube_count(k, OR_K8S_SERVICE), n_sl = or_kube_count(k, OR_K8S_ENDPOINTSLICE);
	size_t file_svcs = cfg->n_services;
	const struct or_k8s_endpointslice **slices;
	int err = 0;

	slices = calloc(n_sl ? n_sl : 1, sizeof(*slices));
	if (!slices)
		return -ENOMEM;
	for (size_t i = 0; i < n_sl; i++)
		slices[i] = &or_kube_at(k, OR_K8S_ENDPOINTSLICE, i)->slice;
	qsort(slices, n_sl, sizeof(*slices), slice_cmp);

	for (size_t i = 0; i < n && !err; i++) {
		const struct or_k8s_service *ks = &or_kube_at(k, OR_K8S_SERVICE, i)->svc;
		const struct or_ip *vips[2] = { &ks->cluster_ip, &ks->cluster_ip6 };
		struct or_k8s_endpointslice key = { .meta.namespace = ks->meta.namespace,
						    .service_name = ks->meta.name };
		const struct or_k8s_endpointslice *kp = &key, **first;
		size_t lo = 0, hi;

		if (svc_in_file(cfg, file_svcs, ks->meta.namespace, ks->meta.name))
			continue;
		/* The run of slices for this service. */
		first = bsearch(&kp, slices, n_sl, sizeof(*slices), slice_cmp);
		if (first) {
			lo = (size_t)(first - slices);
			while (lo > 0 && slice_cmp(&slices[lo - 1], &kp) == 0)
				lo--;
		}
		hi = lo;
		while (first && hi < n_sl && slice_cmp(&slices[hi], &kp) == 0)
			hi++;
		for (int f = 0; f < 2 && !err; f++) {
			if (!vips[f]->family)
				continue;
			for (size_t p = 0; p < ks->n_ports && !err; p++)
				if (ks->ports[p].tcp && ks->ports[p].port)
					err = add_service_port(cfg, ks, &ks->ports[p], vips[f],
							       slices + lo, hi - lo);
		}
	}
	free(slices);
	return err;
}

int or_kube_merge(struct or_kube *k, struct or_config *cfg, size_t *pending)
{
	int err;

	*pending = 0;
	or_kube_lock(k);
	err = merge_namespaces(k, cfg);
	if (!err)
		err = merge_pods(k, cfg, pending);
	if (!err)
		err = merge_services(k, cfg);
	or_kube_unlock(k);
	if (!err)
		found_prune();
	return err;
}
