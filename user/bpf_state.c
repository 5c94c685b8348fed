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
#include "pinned.h"

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

static int map_keys(int fd, size_t key_size, void **keys, size_t *n);

/*
 * A pinned map the skeleton cannot reuse (another layout), set aside before
 * the load so that libbpf creates ours; its entries are carried over after.
 */
struct old_map {
	struct bpf_map *map; /* ours */
	int fd;              /* the old one */
	struct bpf_map_info info;
};

static bool layout_same(const struct bpf_map *m, const struct bpf_map_info *i)
{
	return i->type == bpf_map__type(m) && i->key_size == bpf_map__key_size(m) &&
	       i->value_size == bpf_map__value_size(m) &&
	       i->max_entries == bpf_map__max_entries(m) && i->map_flags == bpf_map__map_flags(m);
}

/* Finds pinned maps of another layout and unpins them (keeping an fd). */
static size_t set_aside_old_maps(struct capture_bpf *skel, const char *pin_dir,
				 struct old_map *old, size_t max)
{
	struct bpf_map *m;
	size_t n = 0;

	bpf_object__for_each_map(m, skel->obj) {
		char path[PATH_MAX];
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		int fd;

		if (bpf_map__is_internal(m) || n == max)
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, bpf_map__name(m));
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue; /* not pinned yet: libbpf creates and pins it */
		if (bpf_obj_get_info_by_fd(fd, &info, &len) || layout_same(m, &info)) {
			close(fd);
			continue;
		}
		unlink(path);
		old[n++] = (struct old_map){ .map = m, .fd = fd, .info = info };
	}
	return n;
}

/*
 * Entries of an old map into ours. Only layouts that grew by appending
 * carry over (same type and key, value no smaller: zero-filled at the end;
 * any max_entries); anything else starts empty. The agent refills the
 * maps it owns from its config anyway; what is lost is state the kernel or
 * the agent gathered (breakers, counters, flows).
 */
static void migrate_map(struct old_map *o)
{
	struct bpf_map *m = o->map;
	__u32 ks = o->info.key_size, old_vs = o->info.value_size, new_vs = bpf_map__value_size(m);
	bool percpu = o->info.type == BPF_MAP_TYPE_PERCPU_ARRAY ||
		      o->info.type == BPF_MAP_TYPE_PERCPU_HASH ||
		      o->info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
	int ncpu = percpu ? libbpf_num_possible_cpus() : 1;
	size_t old_stride = percpu ? (old_vs + 7) / 8 * 8 : old_vs;
	size_t new_stride = percpu ? (new_vs + 7) / 8 * 8 : new_vs;
	char *key = NULL, *next = NULL, *ov = NULL, *nv = NULL;
	unsigned long copied = 0, dropped = 0;
	int nfd = bpf_map__fd(m);
	bool first = true;

	if (o->info.type != bpf_map__type(m) || ks != bpf_map__key_size(m) || old_vs > new_vs ||
	    ncpu <= 0) {
		or_warn("pinned map of another layout recreated empty: its entries are lost",
			"map=%s old_key=%u old_value=%u old_type=%u key=%u value=%u type=%u",
			bpf_map__name(m), ks, old_vs, o->info.type, bpf_map__key_size(m), new_vs,
			bpf_map__type(m));
		return;
	}
	key = calloc(1, ks);
	next = calloc(1, ks);
	ov = calloc(ncpu, old_stride);
	nv = calloc(ncpu, new_stride);
	if (!key || !next || !ov || !nv)
		goto out;
	while (bpf_map_get_next_key(o->fd, first ? NULL : key, next) == 0) {
		first = false;
		memcpy(key, next, ks);
		if (bpf_map_lookup_elem(o->fd, key, ov))
			continue;
		memset(nv, 0, (size_t)ncpu * new_stride);
		for (int c = 0; c < ncpu; c++)
			memcpy(nv + c * new_stride, ov + c * old_stride, old_vs);
		if (bpf_map_update_elem(nfd, key, nv, BPF_ANY))
			dropped++; /* past the new max_entries */
		else
			copied++;
	}
	or_warn("pinned map of another layout migrated", "map=%s entries=%lu dropped=%lu "
		"value=%u->%u max_entries=%u->%u",
		bpf_map__name(m), copied, dropped, old_vs, new_vs, o->info.max_entries,
		bpf_map__max_entries(m));
out:
	free(key);
	free(next);
	free(ov);
	free(nv);
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
	struct old_map old[16];
	size_t n_old;
	int err;

	b->skel = capture_bpf__open_opts(&opts);
	if (!b->skel)
		return -errno;
	b->skel->rodata->outbound_port = outbound_port;
	n_old = set_aside_old_maps(b->skel, b->pin_dir, old, sizeof(old) / sizeof(old[0]));
	err = capture_bpf__load(b->skel);
	for (size_t i = 0; i < n_old; i++) {
		if (!err)
			migrate_map(&old[i]);
		close(old[i].fd);
	}
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
	/* A previous agent's link pins stay: its pods are adopted (or_bpf_attach). */

	err = load_skel(b, outbound_port);
	if (err) {
		/* Not a layout question (those are migrated): start over with fresh maps. */
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

void or_bpf_close(struct or_bpf *b)
{
	if (!b->skel)
		return;
	capture_bpf__destroy(b->skel);
	b->skel = NULL;
}

/* "namespace/name" (as cut into OR_NAME_LEN) as its link dir under links/ names it. */
static void link_dir_name(const char *pod_name, char *out, size_t len)
{
	snprintf(out, len, "%s", pod_name);
	for (char *p = out; *p; p++)
		if (*p == '/')
			*p = '_';
}

/*
 * The previous agent's link at pin, when it is attached where it should be
 * (the same cgroup or netns, the same hook): its program is replaced by
 * ours in place, so capture never stops. NULL when there is none to keep.
 */
static struct bpf_link *adopt_link(const char *pin, struct bpf_program *prog, bool netns,
				   __u64 target)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	struct bpf_link *link;
	bool fits;

	if (access(pin, F_OK) == -1)
		return NULL;
	link = bpf_link__open(pin);
	if (!link) {
		unlink(pin);
		return NULL;
	}
	if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &len)) {
		fits = false;
	} else if (netns) {
		fits = info.type == BPF_LINK_TYPE_NETNS && info.netns.netns_ino == target &&
		       info.netns.attach_type == bpf_program__expected_attach_type(prog);
	} else {
		fits = info.type == BPF_LINK_TYPE_CGROUP && info.cgroup.cgroup_id == target &&
		       info.cgroup.attach_type == bpf_program__expected_attach_type(prog);
	}
	if (fits && bpf_link__update_program(link, prog) == 0)
		return link;
	/* Another pod's (the name was reused) or unusable: detach it. */
	bpf_link__unpin(link);
	bpf_link__destroy(link);
	return NULL;
}

int or_bpf_attach(struct or_bpf *b, const char *pod_name, int cgroup_fd, int netns_fd,
		  struct or_pod_links *out)
{
	struct stat cg, ns;
	char pin[PATH_MAX];
	int err = 0, adopted = 0;

	memset(out, 0, sizeof(*out));
	char dir[OR_NAME_LEN];

	/* "namespace/name" -> "namespace_name": one directory per pod. */
	link_dir_name(pod_name, dir, sizeof(dir));
	if ((size_t)snprintf(out->pin_dir, sizeof(out->pin_dir), "%s/links/%s", b->pin_dir, dir) >=
	    sizeof(out->pin_dir))
		return -ENAMETOOLONG;
	if (mkdir(out->pin_dir, 0700) == -1 && errno != EEXIST)
		return -errno;
	/* On cgroup2 a cgroup's id is its directory's inode number. */
	if (fstat(cgroup_fd, &cg) == -1 || fstat(netns_fd, &ns) == -1)
		return -errno;

	for (int i = 0; i < OR_PROG_MAX; i++) {
		bool is_netns = i == OR_PROG_SK_LOOKUP;
		struct bpf_program *prog = pod_prog(b->skel, i);

		snprintf(pin, sizeof(pin), "%s/%s", out->pin_dir, prog_names[i]);
		out->link[i] = adopt_link(pin, prog, is_netns, is_netns ? ns.st_ino : cg.st_ino);
		if (out->link[i]) {
			out->adopted[i] = true;
			adopted++;
			continue;
		}
		if (is_netns)
			out->link[i] = bpf_program__attach_netns(prog, netns_fd);
		else
			out->link[i] = bpf_program__attach_cgroup(prog, cgroup_fd);
		if (!out->link[i]) {
			err = -errno;
			goto fail;
		}
		err = bpf_link__pin(out->link[i], pin);
		if (err)
			goto fail;
	}
	return adopted;
fail:
	or_bpf_links_abandon(out);
	return err;
}

void or_bpf_links_abandon(struct or_pod_links *links)
{
	for (int i = 0; i < OR_PROG_MAX; i++) {
		if (!links->link[i])
			continue;
		if (!links->adopted[i])
			bpf_link__unpin(links->link[i]);
		bpf_link__destroy(links->link[i]);
		links->link[i] = NULL;
	}
}

void or_bpf_links_keep(struct or_pod_links *links)
{
	for (int i = 0; i < OR_PROG_MAX; i++) {
		if (!links->link[i])
			continue;
		/*
		 * For an fd-based link, destroy only closes our fd (it never
		 * unpins): the pin keeps the link, and so the capture.
		 */
		bpf_link__destroy(links->link[i]);
		links->link[i] = NULL;
	}
}

static bool wanted(const char *const *names, size_t n, const char *name, bool as_dir)
{
	char dir[OR_NAME_LEN];

	for (size_t i = 0; i < n; i++) {
		if (!as_dir) {
			if (strcmp(names[i], name) == 0)
				return true;
			continue;
		}
		link_dir_name(names[i], dir, sizeof(dir));
		if (strcmp(dir, name) == 0)
			return true;
	}
	return false;
}

int or_bpf_sweep(struct or_bpf *b, const char *const *names, size_t n)
{
	struct or_pod_val val;
	char links[PATH_MAX], dir[PATH_MAX];
	struct dirent *de;
	uint64_t *pods = NULL;
	size_t n_pods = 0;
	int removed = 0, pfd;
	DIR *d;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	snprintf(links, sizeof(links), "%s/links", b->pin_dir);
	d = opendir(links);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || wanted(names, n, de->d_name, true))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", links, de->d_name);
		if (or_pinned_remove_dir(dir)) {
			or_info("removed the links of a pod no longer served", "dir=%s", dir);
			removed++;
		}
	}
	if (d)
		closedir(d);
	pfd = bpf_map__fd(b->skel->maps.or_pods);
	if (map_keys(pfd, sizeof(*pods), (void **)&pods, &n_pods) == 0) {
		for (size_t i = 0; i < n_pods; i++) {
			if (bpf_map_lookup_elem(pfd, &pods[i], &val) == 0 &&
			    wanted(names, n, val.name, false))
				continue;
			bpf_map_delete_elem(pfd, &pods[i]);
		}
		free(pods);
	}
	return removed;
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

int or_bpf_sync_routes(struct or_bpf *b, const struct or_routes *r, bool prune)
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

		/* No agent, fail-open pod: still never plaintext to this one. */
		if (rt->mtls == OR_MTLS_STRICT)
			v.flags |= OR_SVC_F_MTLS_STRICT;
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
	if (!prune) {
		err = 0;
		goto out;
	}
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

int or_bpf_sync_inbound(struct or_bpf *b, const struct or_inbound_want *want, size_t n,
			bool prune)
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
	if (!prune)
		return 0;
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

int or_bpf_heartbeat(struct or_bpf *b, bool stopped)
{
	struct or_settings s = {
		.abi_version = OR_ABI_VERSION,
		.agent_pid = getpid(),
		.flags = stopped ? OR_SETTINGS_F_STOPPED : 0,
	};
	struct timespec ts;
	__u32 key = 0;

	if (!b->skel)
		return 0; /* sidecar mode: no kernel side */
	s.outbound_port = b->skel->rodata->outbound_port;
	if (stopped) {
		struct or_settings cur;

		/* Another agent started meanwhile and owns the pins: not ours to mark. */
		if (bpf_map_lookup_elem(bpf_map__fd(b->skel->maps.or_settings), &key, &cur) == 0 &&
		    cur.agent_pid && cur.agent_pid != s.agent_pid)
			return 0;
	}

	clock_gettime(CLOCK_MONOTONIC, &ts);
	s.heartbeat_ns = (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.or_settings), &key, &s, BPF_ANY))
		return -errno;
	return 0;
}
