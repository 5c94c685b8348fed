// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "capture.skel.h"
#include "bpf_state.h"
#include "log.h"

static const char *const prog_names[OR_PROG_MAX] = {
	[OR_PROG_CONNECT4] = "connect4",
	[OR_PROG_CONNECT6] = "connect6",
	[OR_PROG_GETPEERNAME4] = "getpeername4",
	[OR_PROG_GETPEERNAME6] = "getpeername6",
	[OR_PROG_SOCKOPS] = "sockops",
	[OR_PROG_SK_LOOKUP] = "sk_lookup",
};

static struct bpf_program *pod_prog(struct capture_bpf *skel, enum or_pod_prog p)
{
	switch (p) {
	case OR_PROG_CONNECT4:
		return skel->progs.or_connect4;
	case OR_PROG_CONNECT6:
		return skel->progs.or_connect6;
	case OR_PROG_GETPEERNAME4:
		return skel->progs.or_getpeername4;
	case OR_PROG_GETPEERNAME6:
		return skel->progs.or_getpeername6;
	case OR_PROG_SK_LOOKUP:
		return skel->progs.or_sk_lookup;
	default:
		return skel->progs.or_sockops;
	}
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) == -1 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) == -1 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Pins need bpffs; mount it at /sys/fs/bpf when the node has not. */
static int ensure_bpffs(const char *pin_dir)
{
	struct statfs st;

	if (strncmp(pin_dir, "/sys/fs/bpf", 11) != 0)
		return 0;
	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") == -1)
		return -errno;
	or_info("mounted bpffs", "path=/sys/fs/bpf");
	return 0;
}

/* Removes pin_dir/links/<pod>/<prog> pins a previous agent left behind. */
static void remove_stale_links(const char *links_dir)
{
	struct dirent *pe, *le;
	char pod[PATH_MAX], pin[PATH_MAX];
	DIR *d, *pd;
	int n = 0;

	d = opendir(links_dir);
	if (!d)
		return;
	while ((pe = readdir(d))) {
		if (pe->d_name[0] == '.')
			continue;
		snprintf(pod, sizeof(pod), "%s/%s", links_dir, pe->d_name);
		pd = opendir(pod);
		if (!pd)
			continue;
		while ((le = readdir(pd))) {
			if (le->d_name[0] == '.')
				continue;
			snprintf(pin, sizeof(pin), "%s/%s", pod, le->d_name);
			if (unlink(pin) == 0)
				n++;
		}
		closedir(pd);
		rmdir(pod);
	}
	closedir(d);
	if (n)
		or_warn("removed stale link pins of a previous agent", "dir=%s links=%d", links_dir,
			n);
}

static void unlink_map_pins(const char *pin_dir)
{
	static const char *const maps[] = { "or_services", "or_backends", "or_breakers", "or_pods",
					    "or_inbound", "or_tls",
					    "or_cookie_dst", "or_origdst", "or_settings",
					    "or_stats" };
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_dir, maps[i]);
		unlink(path);
	}
}

static int load_skel(struct or_bpf *b, uint16_t outbound_port)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = b->pin_dir);
	int err;

	b->skel = capture_bpf__open_opts(&opts);
	if (!b->skel)
		return -errno;
	b->skel->rodata->outbound_port = outbound_port;
	err = capture_bpf__load(b->skel);
	if (err) {
		capture_bpf__destroy(b->skel);
		b->skel = NULL;
	}
	return err;
}

int or_bpf_open(struct or_bpf *b, const char *pin_dir, uint16_t outbound_port)
{
	char links[PATH_MAX];
	int err;

	memset(b, 0, sizeof(*b));
	b->origdst_fd = b->breakers_fd = b->stats_fd = -1;
	snprintf(b->pin_dir, sizeof(b->pin_dir), "%s", pin_dir);
	snprintf(links, sizeof(links), "%s/links", pin_dir);

	err = ensure_bpffs(pin_dir);
	if (err) {
		or_error("cannot mount bpffs", "path=/sys/fs/bpf err=\"%s\"", strerror(-err));
		return err;
	}
	err = mkdir_p(links);
	if (err) {
		or_error("cannot create pin dir", "dir=%s err=\"%s\"", links, strerror(-err));
		return err;
	}
	remove_stale_links(links);

	err = load_skel(b, outbound_port);
	if (err) {
		/*
		 * Most often a pinned map of another layout (an older agent):
		 * libbpf refuses to reuse it. Start over with fresh maps.
		 */
		or_warn("could not load with the pinned maps; recreating them", "dir=%s err=\"%s\"",
			pin_dir, strerror(-err));
		unlink_map_pins(pin_dir);
		err = load_skel(b, outbound_port);
	}
	if (err) {
		or_error("cannot load BPF programs", "err=\"%s\"", strerror(-err));
		return err;
	}
	b->origdst_fd = bpf_map__fd(b->skel->maps.or_origdst);
	b->breakers_fd = bpf_map__fd(b->skel->maps.or_breakers);
	b->stats_fd = bpf_map__fd(b->skel->maps.or_stats);
	return 0;
}

void or_bpf_close(struct or_bpf *b, bool unpin)
{
	char links[PATH_MAX];

	if (!b->skel)
		return;
	if (unpin) {
		bpf_object__unpin_maps(b->skel->obj, NULL);
		snprintf(links, sizeof(links), "%s/links", b->pin_dir);
		rmdir(links);
		rmdir(b->pin_dir);
	}
	capture_bpf__destroy(b->skel);
	b->skel = NULL;
}

int or_bpf_attach(struct or_bpf *b, const char *pod_name, int cgroup_fd, int netns_fd,
		  struct or_pod_links *out)
{
	char pin[PATH_MAX];
	int err = 0;

	memset(out, 0, sizeof(*out));
	/* "namespace/name" -> "namespace_name": one directory per pod. */
	snprintf(out->pin_dir, sizeof(out->pin_dir), "%s/links/%s", b->pin_dir, pod_name);
	for (char *p = out->pin_dir + strlen(b->pin_dir) + 7; *p; p++)
		if (*p == '/')
			*p = '_';
	if (mkdir(out->pin_dir, 0700) == -1 && errno != EEXIST)
		return -errno;

	for (int i = 0; i < OR_PROG_MAX; i++) {
		if (i == OR_PROG_SK_LOOKUP)
			out->link[i] = bpf_program__attach_netns(pod_prog(b->skel, i), netns_fd);
		else
			out->link[i] = bpf_program__attach_cgroup(pod_prog(b->skel, i), cgroup_fd);
		if (!out->link[i]) {
			err = -errno;
			goto fail;
		}
		snprintf(pin, sizeof(pin), "%s/%s", out->pin_dir, prog_names[i]);
		err = bpf_link__pin(out->link[i], pin);
		if (err)
			goto fail;
	}
	return 0;
fail:
	or_bpf_detach(out);
	return err;
}

void or_bpf_detach(struct or_pod_links *links)
{
	for (int i = 0; i < OR_PROG_MAX; i++) {
		if (!links->link[i])
			continue;
		bpf_link__unpin(links->link[i]);
		bpf_link__destroy(links->link[i]);
		links->link[i] = NULL;
	}
	if (links->pin_dir[0])
		rmdir(links->pin_dir);
}

struct svc_count {
	uint32_t svc_id;
	uint32_t count;
};

static int svc_count_cmp(const void *a, const void *b)
{
	const struct svc_count *x = a, *y = b;

	return x->svc_id == y->svc_id ? 0 : (x->svc_id < y->svc_id ? -1 : 1);
}

/* Collects every key of a map, so deleting does not disturb the walk. */
static int map_keys(int fd, size_t key_size, void **keys, size_t *n)
{
	size_t cap = 64;
	char *v = malloc(cap * key_size), *prev = NULL;

	*n = 0;
	if (!v)
		return -ENOMEM;
	for (;;) {
		if (*n == cap) {
			char *nv = realloc(v, cap * 2 * key_size);

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
			cap *= 2;
		}
		prev = *n ? v + (*n - 1) * key_size : NULL;
		if (bpf_map_get_next_key(fd, prev, v + *n * key_size))
			break;
		(*n)++;
	}
	*keys = v;
	return 0;
}

int or_bpf_sync_routes(struct or_bpf *b, const struct or_routes *r)
{
	struct svc_count *counts = NULL;
	struct or_backend_key *bkeys = NULL;
	struct or_svc_key *skeys = NULL;
	size_t n_skeys, n_bkeys;
	int err = -ENOMEM, sfd, bfd;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	sfd = bpf_map__fd(b->skel->maps.or_services);
	bfd = bpf_map__fd(b->skel->maps.or_backends);

	counts = calloc(r->n ? r->n : 1, sizeof(*counts));
	if (!counts)
		goto out;

	/* Backends first: a service never points at slots not written yet. */
	for (size_t i = 0; i < r->n; i++) {
		const struct or_route *rt = &r->v[i];

		counts[i].svc_id = rt->svc_id;
		counts[i].count = rt->n_eps;
		for (size_t s = 0; s < rt->n_eps; s++) {
			struct or_backend_key k = { .svc_id = rt->svc_id, .slot = s };
			struct or_backend_val v = {
				.port = rt->eps[s].port,
				.family = rt->eps[s].ip.family,
				.node_id = rt->eps[s].node_id,
				.weight = rt->eps[s].weight,
			};

			or_ip_to_abi(&rt->eps[s].ip, v.addr);
			if (bpf_map_update_elem(bfd, &k, &v, BPF_ANY)) {
				err = -errno;
				goto out;
			}
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct or_route *rt = &r->v[i];
		struct or_svc_key k = { .port = rt->port, .proto = OR_PROTO_TCP,
					.family = rt->vip.family };
		struct or_svc_val v = { .svc_id = rt->svc_id, .mode = rt->mode,
					.backend_count = rt->n_eps };

		for (size_t s = 0; s < rt->n_eps; s++)
			v.total_weight += rt->eps[s].weight;
		snprintf(v.name, sizeof(v.name), "%s", rt->name);
		or_ip_to_abi(&rt->vip, k.addr);
		if (bpf_map_update_elem(sfd, &k, &v, BPF_ANY)) {
			err = -errno;
			goto out;
		}
	}

	/* Then drop what the table no longer has. */
	err = map_keys(sfd, sizeof(*skeys), (void **)&skeys, &n_skeys);
	if (err)
		goto out;
	for (size_t i = 0; i < n_skeys; i++) {
		struct or_ip vip;

		or_ip_from_abi(skeys[i].family, skeys[i].addr, &vip);
		if (!or_routes_find(r, &vip, skeys[i].port))
			bpf_map_delete_elem(sfd, &skeys[i]);
	}
	qsort(counts, r->n, sizeof(*counts), svc_count_cmp);
	err = map_keys(bfd, sizeof(*bkeys), (void **)&bkeys, &n_bkeys);
	if (err)
		goto out;
	for (size_t i = 0; i < n_bkeys; i++) {
		struct svc_count want = { .svc_id = bkeys[i].svc_id };
		struct svc_count *c = bsearch(&want, counts, r->n, sizeof(*counts), svc_count_cmp);

		if (!c || bkeys[i].slot >= c->count)
			bpf_map_delete_elem(bfd, &bkeys[i]);
	}
	err = 0;
out:
	free(skeys);
	free(bkeys);
	free(counts);
	return err;
}

static int inbound_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct or_inbound_key));
}

int or_bpf_sync_inbound(struct or_bpf *b, const struct or_inbound_want *want, size_t n)
{
	struct or_inbound_key *keys = NULL, *sorted = NULL;
	size_t n_keys;
	int err, fd;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	fd = bpf_map__fd(b->skel->maps.or_inbound);

	for (size_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &want[i].key, &want[i].val, BPF_ANY))
			return -errno;
	err = map_keys(fd, sizeof(*keys), (void **)&keys, &n_keys);
	if (err)
		return err;
	sorted = malloc((n ? n : 1) * sizeof(*sorted));
	if (!sorted) {
		free(keys);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = want[i].key;
	qsort(sorted, n, sizeof(*sorted), inbound_cmp);
	for (size_t i = 0; i < n_keys; i++)
		if (!bsearch(&keys[i], sorted, n, sizeof(*sorted), inbound_cmp))
			bpf_map_delete_elem(fd, &keys[i]);
	free(sorted);
	free(keys);
	return 0;
}

int or_bpf_tls_update(struct or_bpf *b, const struct or_tls_counters *c)
{
	__u32 key = 0;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */

	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.or_tls), &key, c, BPF_ANY))
		return -errno;
	return 0;
}

int or_bpf_pod_update(struct or_bpf *b, uint64_t netns_cookie, const struct or_pod_val *val)
{
	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.or_pods), &netns_cookie, val, BPF_ANY))
		return -errno;
	return 0;
}

int or_bpf_pod_delete(struct or_bpf *b, uint64_t netns_cookie)
{
	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	if (bpf_map_delete_elem(bpf_map__fd(b->skel->maps.or_pods), &netns_cookie))
		return -errno;
	return 0;
}

int or_bpf_origdst_take(const struct or_bpf *b, const struct or_origdst_key *key,
			struct or_dst *dst)
{
	if (bpf_map_lookup_and_delete_elem(b->origdst_fd, key, dst))
		return -errno;
	return 0;
}

int or_bpf_heartbeat(struct or_bpf *b)
{
	struct or_settings s = {
		.abi_version = OR_ABI_VERSION,
		.agent_pid = getpid(),
	};
	struct timespec ts;
	__u32 key = 0;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	s.outbound_port = b->skel->rodata->outbound_port;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	s.heartbeat_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.or_settings), &key, &s, BPF_ANY))
		return -errno;
	return 0;
}
