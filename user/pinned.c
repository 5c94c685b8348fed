// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "addr.h"
#include "identity.h"
#include "pinned.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Mirrors bpf/lib/maps.h; a change there without one here fails or_pinned_check loudly. */
static const struct {
	const char *name;
	struct or_map_layout layout;
} abi_maps[] = {
	{ "or_services", { BPF_MAP_TYPE_HASH, sizeof(struct or_svc_key),
			   sizeof(struct or_svc_val), 0 } },
	{ "or_backends", { BPF_MAP_TYPE_HASH, sizeof(struct or_backend_key),
			   sizeof(struct or_backend_val), 0 } },
	{ "or_pods", { BPF_MAP_TYPE_HASH, sizeof(__u64), sizeof(struct or_pod_val), 0 } },
	{ "or_cookie_dst", { BPF_MAP_TYPE_LRU_HASH, sizeof(__u64), sizeof(struct or_dst), 0 } },
	{ "or_origdst", { BPF_MAP_TYPE_LRU_HASH, sizeof(struct or_origdst_key),
			  sizeof(struct or_dst), 0 } },
	{ "or_breakers", { BPF_MAP_TYPE_HASH, sizeof(struct or_breaker_key),
			   sizeof(struct or_breaker_val), 0 } },
	{ "or_inbound", { BPF_MAP_TYPE_HASH, sizeof(struct or_inbound_key),
			  sizeof(struct or_inbound_val), 0 } },
	{ "or_tls", { BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct or_tls_counters), 0 } },
	{ "or_settings", { BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct or_settings), 0 } },
	{ "or_stats", { BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(__u64), 0 } },
};

static const char *const reason_names[] = {
	[OR_REASON_REDIRECTED] = "redirected",
	[OR_REASON_KERNEL_BALANCED] = "kernel_balanced",
	[OR_REASON_PASS_NOT_SERVICE] = "pass_not_service",
	[OR_REASON_PASS_NOT_TCP] = "pass_not_tcp",
	[OR_REASON_NO_BACKEND] = "no_backend",
	[OR_REASON_FLOW_TABLE_FULL] = "flow_table_full",
	[OR_REASON_ORIGDST_PUBLISHED] = "origdst_published",
	[OR_REASON_PEER_RESTORED] = "peer_restored",
	[OR_REASON_ALL_EJECTED] = "all_ejected",
	[OR_REASON_SKIPPED_EJECTED] = "skipped_ejected",
	[OR_REASON_INBOUND_REFUSED] = "inbound_refused",
	[OR_REASON_INBOUND_PLAINTEXT] = "inbound_plaintext",
	[OR_REASON_AGENT_DOWN_REFUSED] = "agent_down_refused",
	[OR_REASON_AGENT_DOWN_FAIL_OPEN] = "agent_down_fail_open",
	[OR_REASON_AGENT_DOWN_STRICT] = "agent_down_strict",
};
_Static_assert(ARRAY_SIZE(reason_names) == OR_REASON_MAX, "a reason in or_abi.h has no name");

/*
 * or_tls_counters.failures[]: slot 0 is every TLS error that is not an SVID
 * refusal, slot i >= 1 counts enum or_svid_err i, named by or_svid_err_name()
 * (identity.h), the one table of those names.
 */
_Static_assert(OR_SVID_ERR_MAX <= OR_TLS_REASONS,
	       "or_tls_counters.failures has no slot for every or_svid_err");

int or_pinned_path(const char *pin_dir, const char *map, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", pin_dir, map);

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

int or_pinned_open(const char *pin_dir, const char *map, int *fd)
{
	char path[4096];
	int err, ret;

	err = or_pinned_path(pin_dir, map, path, sizeof(path));
	if (err)
		return err;
	/* libbpf >= 1.0: the low-level calls return -errno themselves. */
	ret = bpf_obj_get(path);
	if (ret < 0)
		return ret;
	*fd = ret;
	return 0;
}

int or_pinned_layout(int fd, struct or_map_layout *out)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	int err;

	memset(&info, 0, sizeof(info));
	err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		return err;
	out->type = info.type;
	out->key_size = info.key_size;
	out->value_size = info.value_size;
	out->max_entries = info.max_entries;
	return 0;
}

const struct or_map_layout *or_pinned_abi_layout(const char *map)
{
	for (size_t i = 0; i < ARRAY_SIZE(abi_maps); i++)
		if (strcmp(abi_maps[i].name, map) == 0)
			return &abi_maps[i].layout;
	return NULL;
}

int or_pinned_check(int fd, const char *map, struct or_map_layout *got)
{
	const struct or_map_layout *want = or_pinned_abi_layout(map);
	struct or_map_layout have;
	int err;

	if (!want)
		return -ENOENT;
	err = or_pinned_layout(fd, &have);
	if (err)
		return err;
	if (got)
		*got = have;
	if (have.type != want->type || have.key_size != want->key_size ||
	    have.value_size != want->value_size)
		return -EPROTO;
	if (want->max_entries && have.max_entries != want->max_entries)
		return -EPROTO;
	return 0;
}

int or_pinned_collect(int fd, size_t key_size, size_t val_size, size_t rec_size, size_t val_off,
		      void **recs, size_t *n)
{
	struct or_map_layout layout;
	size_t cap = 0, count = 0, steps = 0, limit;
	char *out = NULL, *cur = NULL, *next = NULL;
	bool have_cur = false;
	int err;

	if (!key_size || val_off < key_size || val_off + val_size > rec_size)
		return -EINVAL;
	err = or_pinned_layout(fd, &layout);
	if (err)
		return err;
	if (layout.key_size != key_size || layout.value_size != val_size)
		return -EPROTO;
	/*
	 * get_next_key from a key deleted meanwhile starts over at the first key,
	 * so a map under heavy churn could be walked forever: bound the steps.
	 */
	limit = 2 * (size_t)layout.max_entries + 1;

	cur = calloc(1, key_size);
	next = calloc(1, key_size);
	if (!cur || !next) {
		err = -ENOMEM;
		goto err_free;
	}
	for (;;) {
		err = bpf_map_get_next_key(fd, have_cur ? cur : NULL, next);
		if (err == -ENOENT)
			break; /* past the last key */
		if (err)
			goto err_free;
		if (++steps > limit) {
			err = -EAGAIN;
			goto err_free;
		}
		if (count == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			char *p = realloc(out, ncap * rec_size);

			if (!p) {
				err = -ENOMEM;
				goto err_free;
			}
			memset(p + cap * rec_size, 0, (ncap - cap) * rec_size);
			out = p;
			cap = ncap;
		}
		err = bpf_map_lookup_elem(fd, next, out + count * rec_size + val_off);
		if (!err) {
			memcpy(out + count * rec_size, next, key_size);
			count++;
		} else if (err != -ENOENT) { /* -ENOENT: deleted since get_next_key */
			goto err_free;
		}
		memcpy(cur, next, key_size);
		have_cur = true;
	}
	free(cur);
	free(next);
	if (!count) {
		free(out);
		out = NULL;
	}
	*recs = out;
	*n = count;
	return 0;

err_free:
	free(out);
	free(cur);
	free(next);
	return err;
}

int or_pinned_percpu_sum(int fd, __u32 key, __u64 *sum)
{
	__u64 *vals, total = 0;
	int ncpu, err;

	ncpu = libbpf_num_possible_cpus();
	if (ncpu < 0)
		return ncpu;
	/* One __u64 per possible CPU: the value is already 8-byte aligned. */
	vals = calloc(ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	err = bpf_map_lookup_elem(fd, &key, vals);
	if (err)
		goto out_free;
	for (int i = 0; i < ncpu; i++)
		total += vals[i];
	*sum = total;
out_free:
	free(vals);
	return err;
}

const char *or_reason_name(unsigned int reason)
{
	return reason < ARRAY_SIZE(reason_names) ? reason_names[reason] : NULL;
}

const char *or_tls_reason_name(unsigned int i)
{
	if (i == 0)
		return "tls";
	return i < OR_SVID_ERR_MAX ? or_svid_err_name(i) : NULL;
}

const char *or_inbound_mode_name(__u8 mode)
{
	switch (mode) {
	case OR_INBOUND_PERMISSIVE:
		return "permissive";
	case OR_INBOUND_STRICT:
		return "strict";
	default:
		return "unknown";
	}
}

const char *or_svc_mode_name(__u8 mode)
{
	switch (mode) {
	case OR_MODE_PROXY:
		return "proxy";
	case OR_MODE_KERNEL:
		return "kernel";
	default:
		return "unknown";
	}
}

const char *or_breaker_state_name(__u8 state)
{
	switch (state) {
	case OR_BREAKER_CLOSED:
		return "closed";
	case OR_BREAKER_OPEN:
		return "open";
	case OR_BREAKER_HALF_OPEN:
		return "half-open";
	default:
		return "unknown";
	}
}

__u64 or_breaker_remaining_ns(const struct or_breaker_val *v, __u64 now_ns)
{
	if (v->state != OR_BREAKER_OPEN || v->until_ns <= now_ns)
		return 0;
	return v->until_ns - now_ns;
}

const char *or_proto_name(__u8 proto)
{
	switch (proto) {
	case OR_PROTO_TCP:
		return "tcp";
	case 17: /* IPPROTO_UDP: not in the ABI yet, but readable if it appears */
		return "udp";
	default:
		return NULL;
	}
}

const char *or_abi_ip_str(__u8 family, const __u32 addr[4], bool bracket_v6, char *buf,
			  size_t len)
{
	char ip[OR_IP_STRLEN];
	struct or_ip oip;

	if (family != OR_AF_INET && family != OR_AF_INET6) {
		snprintf(buf, len, "-");
		return buf;
	}
	or_ip_from_abi(family, addr, &oip);
	or_ip_str(&oip, ip, sizeof(ip));
	if (family == OR_AF_INET6 && bracket_v6)
		snprintf(buf, len, "[%s]", ip);
	else
		snprintf(buf, len, "%s", ip);
	return buf;
}

const char *or_abi_addr_str(__u8 family, const __u32 addr[4], __u16 port, char *buf, size_t len)
{
	char ip[OR_ABI_ADDR_STRLEN];

	snprintf(buf, len, "%s:%u", or_abi_ip_str(family, addr, true, ip, sizeof(ip)), port);
	return buf;
}

bool or_abi_addr_is_zero(const __u32 addr[4])
{
	return !(addr[0] | addr[1] | addr[2] | addr[3]);
}

size_t or_abi_name_len(const char name[OR_NAME_LEN])
{
	return strnlen(name, OR_NAME_LEN);
}

size_t or_abi_id_len(const char id[OR_ID_LEN])
{
	return strnlen(id, OR_ID_LEN);
}

/* The first n bytes of a string field, printable ASCII only, into buf. */
static const char *field_str(const char *field, size_t n, char *buf, size_t len)
{
	size_t i;

	if (!len)
		return buf;
	if (!n) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (n > len - 1)
		n = len - 1;
	for (i = 0; i < n; i++) {
		unsigned char c = field[i];

		buf[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	buf[i] = 0;
	return buf;
}

const char *or_abi_name_str(const char name[OR_NAME_LEN], char *buf, size_t len)
{
	return field_str(name, or_abi_name_len(name), buf, len);
}

const char *or_abi_id_str(const char id[OR_ID_LEN], char *buf, size_t len)
{
	return field_str(id, or_abi_id_len(id), buf, len);
}

int or_pinned_remove_dir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			n += or_pinned_remove_dir(path);
		else if (unlink(path) == 0)
			n++;
	}
	closedir(d);
	rmdir(dir);
	return n;
}
