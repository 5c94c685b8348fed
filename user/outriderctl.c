// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * outriderctl: a read-only view of an agent's pinned maps, as tables for
 * people or JSON for scripts. It needs the pins only, not a running agent,
 * so it also shows what a dead agent left behind.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "config.h"
#include "log.h"
#include "pinned.h"

#define EXIT_USAGE 2

struct ctl {
	const char *pin_dir;
	bool json;
	bool force; /* uninstall while an agent runs */
};

struct pod_row {
	__u64 cookie; /* key: netns cookie */
	struct or_pod_val v;
};

struct svc_row {
	struct or_svc_key k;
	struct or_svc_val v;
};

struct backend_row {
	struct or_backend_key k;
	struct or_backend_val v;
};

struct breaker_row {
	struct or_breaker_key k;
	struct or_breaker_val v;
};

struct inbound_row {
	struct or_inbound_key k;
	struct or_inbound_val v;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: outriderctl [--pin-dir DIR] [--json] COMMAND\n"
		"\n"
		"Shows what an outrider agent keeps in its pinned BPF maps. Reads the pins\n"
		"only, so it works with or without outriderd running.\n"
		"\n"
		"Commands:\n"
		"  pods       enrolled pods with their SPIFFE ID (or_pods)\n"
		"  certs      each enrolled pod's SVID: SPIFFE ID, expiry (UTC), time\n"
		"             left, time until the agent renews it (or_pods)\n"
		"  services   mesh services: VIP, port, mode, backends (or_services)\n"
		"  backends   service endpoints by service id and slot (or_backends)\n"
		"  breakers   outlier detection per endpoint: state, time left ejected,\n"
		"             consecutive failures, ejections so far (or_breakers)\n"
		"  inbound    pod app ports and what plaintext arriving outside the mTLS\n"
		"             tunnel gets: permissive (let in) or strict (refused) (or_inbound)\n"
		"  tls        mTLS counters: handshakes, failures by reason, tunnels,\n"
		"             authorization denials, bad requests, app failures (or_tls)\n"
		"  stats      kernel counters per reason (or_stats) and agent settings\n"
		"  uninstall  detaches every pod's programs and removes the pins, so\n"
		"             nothing of outrider is left in the kernel. The agent leaves\n"
		"             them when it stops (pods stay captured, its successor adopts\n"
		"             them); run this after stopping it for good. Refused while an\n"
		"             agent runs, unless --force\n"
		"\n"
		"Options (before or after the command):\n"
		"  --pin-dir DIR  the agent's pin directory (default %s)\n"
		"  --json         JSON for scripts instead of a table\n"
		"  --force        uninstall even while an agent runs\n"
		"  -h, --help     this text\n"
		"\n"
		"In --json, times are Unix seconds; certs' expires_in_s is negative once\n"
		"expired, and its times are null for a pod without an SVID.\n"
		"\n"
		"Exit status: 0 ok, 1 the maps could not be read, 2 bad usage.\n",
		OR_DEFAULT_PIN_DIR);
}

/* Tables: aligned, left-justified columns under a header row, plain ASCII. */

#define TABLE_MAX_COLS 8

struct table {
	size_t ncols;
	const char *hdr[TABLE_MAX_COLS];
	char **cells; /* nrows * ncols strings, owned */
	size_t nrows, cap;
};

/* Appends a row of t->ncols strings (copied). Returns 0 or -ENOMEM. */
static int table_add(struct table *t, const char *const *row)
{
	size_t i;

	if (t->nrows == t->cap) {
		size_t ncap = t->cap ? 2 * t->cap : 32;
		char **p = realloc(t->cells, ncap * t->ncols * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->cells = p;
		t->cap = ncap;
	}
	for (i = 0; i < t->ncols; i++) {
		char *s = strdup(row[i]);

		if (!s)
			goto err_free;
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
	return 0;

err_free:
	while (i--)
		free(t->cells[t->nrows * t->ncols + i]);
	return -ENOMEM;
}

static void table_print(const struct table *t, FILE *f)
{
	size_t width[TABLE_MAX_COLS];

	for (size_t c = 0; c < t->ncols; c++) {
		width[c] = strlen(t->hdr[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t n = strlen(t->cells[r * t->ncols + c]);

			if (n > width[c])
				width[c] = n;
		}
	}
	for (size_t r = 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = r ? t->cells[(r - 1) * t->ncols + c] : t->hdr[c];

			if (c + 1 < t->ncols)
				fprintf(f, "%-*s  ", (int)width[c], s);
			else
				fprintf(f, "%s\n", s);
		}
	}
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/*
 * A JSON string from len untrusted bytes. Bytes outside printable ASCII are
 * written as \u00XX, so the output stays valid JSON whatever the map holds.
 */
static void json_str(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c >= 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

static void json_name(FILE *f, const char name[OR_NAME_LEN])
{
	json_str(f, name, or_abi_name_len(name));
}

/* A SPIFFE ID field as a JSON string, or null when empty (no SVID). */
static void json_id_or_null(FILE *f, const char id[OR_ID_LEN])
{
	size_t n = or_abi_id_len(id);

	if (!n)
		fputs("null", f);
	else
		json_str(f, id, n);
}

/* An ABI address as a JSON string, or null when all zero. */
static void json_ip_or_null(FILE *f, __u8 family, const __u32 addr[4])
{
	char ip[OR_ABI_ADDR_STRLEN];

	if (or_abi_addr_is_zero(addr)) {
		fputs("null", f);
		return;
	}
	or_abi_ip_str(family, addr, false, ip, sizeof(ip));
	json_str(f, ip, strlen(ip));
}

static const char *ip_or_dash(__u8 family, const __u32 addr[4], char *buf, size_t len)
{
	if (or_abi_addr_is_zero(addr)) {
		snprintf(buf, len, "-");
		return buf;
	}
	return or_abi_ip_str(family, addr, true, buf, len);
}

static const char *map_hint(int err)
{
	switch (err) {
	case -ENOENT:
		return " (is outriderd running with this --pin-dir?)";
	case -EPERM:
	case -EACCES:
		return " (reading pinned maps needs root or CAP_BPF)";
	default:
		return "";
	}
}

/*
 * Opens map under the pin dir and checks its layout against or_abi.h,
 * explaining any failure on stderr. On success *fd is the caller's to close.
 */
static int open_map(const struct ctl *c, const char *map, int *fd)
{
	const struct or_map_layout *want = or_pinned_abi_layout(map);
	struct or_map_layout got;
	char path[4096];
	int err;

	if (or_pinned_path(c->pin_dir, map, path, sizeof(path)))
		snprintf(path, sizeof(path), "%s", map);
	err = or_pinned_open(c->pin_dir, map, fd);
	if (err) {
		fprintf(stderr, "outriderctl: %s: %s%s\n", path, strerror(-err), map_hint(err));
		return err;
	}
	err = or_pinned_check(*fd, map, &got);
	if (err == -EPROTO) {
		fprintf(stderr,
			"outriderctl: %s: map type %u, key %u bytes, value %u bytes; expected type %u, key %u, value %u (not the ABI this outriderctl was built for)\n",
			path, got.type, got.key_size, got.value_size, want->type, want->key_size,
			want->value_size);
	} else if (err) {
		fprintf(stderr, "outriderctl: %s: %s\n", path, strerror(-err));
	}
	if (err) {
		close(*fd);
		*fd = -1;
	}
	return err;
}

/* Copies a whole hash map into rows; explains failures on stderr. */
static int collect(const char *map, int fd, size_t key_size, size_t val_size, size_t rec_size,
		   size_t val_off, void **rows, size_t *n)
{
	int err = or_pinned_collect(fd, key_size, val_size, rec_size, val_off, rows, n);

	if (err == -EAGAIN)
		fprintf(stderr, "outriderctl: %s: map kept changing while read, try again\n", map);
	else if (err)
		fprintf(stderr, "outriderctl: %s: %s\n", map, strerror(-err));
	return err;
}

static int read_settings(const struct ctl *c, bool quiet, struct or_settings *s)
{
	__u32 key = 0;
	int fd = -1, err;

	if (quiet) {
		err = or_pinned_open(c->pin_dir, "or_settings", &fd);
		if (!err)
			err = or_pinned_check(fd, "or_settings", NULL);
	} else {
		err = open_map(c, "or_settings", &fd);
	}
	if (err)
		goto out_close;
	err = bpf_map_lookup_elem(fd, &key, s);
	if (err && !quiet)
		fprintf(stderr, "outriderctl: or_settings: %s\n", strerror(-err));
out_close:
	if (fd >= 0)
		close(fd);
	return err;
}

static void warn_abi(const struct ctl *c, const struct or_settings *s)
{
	if (s->abi_version && s->abi_version != OR_ABI_VERSION)
		fprintf(stderr,
			"outriderctl: warning: the pins under %s were written with ABI version %u, this outriderctl reads version %u; values may be misread\n",
			c->pin_dir, s->abi_version, OR_ABI_VERSION);
}

/*
 * For commands that do not need or_settings: warn about an ABI mismatch if
 * the settings can be read, stay quiet if not (the command's own maps are
 * what matters to it).
 */
static void check_abi(const struct ctl *c)
{
	struct or_settings s;

	if (!read_settings(c, true, &s))
		warn_abi(c, &s);
}

/* qsort, which must not see a NULL base even for zero elements. */
static void sort_rows(void *rows, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n)
		qsort(rows, n, size, cmp);
}

static int cmp_name(const char *a, const char *b)
{
	return strncmp(a, b, OR_NAME_LEN);
}

static int cmp_pod(const void *pa, const void *pb)
{
	const struct pod_row *a = pa, *b = pb;
	int d = cmp_name(a->v.name, b->v.name);

	if (d)
		return d;
	return a->cookie < b->cookie ? -1 : a->cookie > b->cookie;
}

static int cmp_svc(const void *pa, const void *pb)
{
	const struct svc_row *a = pa, *b = pb;
	int d = cmp_name(a->v.name, b->v.name);

	if (d)
		return d;
	if (a->k.port != b->k.port)
		return a->k.port < b->k.port ? -1 : 1;
	if (a->k.family != b->k.family)
		return a->k.family < b->k.family ? -1 : 1;
	return memcmp(a->k.addr, b->k.addr, sizeof(a->k.addr));
}

static int cmp_svc_id(const void *pa, const void *pb)
{
	const struct svc_row *a = pa, *b = pb;

	return a->v.svc_id < b->v.svc_id ? -1 : a->v.svc_id > b->v.svc_id;
}

static int cmp_backend(const void *pa, const void *pb)
{
	const struct backend_row *a = pa, *b = pb;

	if (a->k.svc_id != b->k.svc_id)
		return a->k.svc_id < b->k.svc_id ? -1 : 1;
	return a->k.slot < b->k.slot ? -1 : a->k.slot > b->k.slot;
}

static void pods_json(const struct pod_row *rows, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct pod_row *r = &rows[i];

		printf("%s\n  {\"netns_cookie\":%llu,\"name\":", i ? "," : "",
		       (unsigned long long)r->cookie);
		json_name(stdout, r->v.name);
		printf(",\"ip\":");
		json_ip_or_null(stdout, OR_AF_INET, r->v.addr);
		printf(",\"ip6\":");
		json_ip_or_null(stdout, OR_AF_INET6, r->v.addr6);
		printf(",\"identity\":%u,\"spiffe_id\":", r->v.identity);
		json_id_or_null(stdout, r->v.spiffe_id);
		printf("}");
	}
	printf("%s]\n", n ? "\n" : "");
}

static int pods_table(const struct pod_row *rows, size_t n)
{
	struct table t = { .ncols = 5, .hdr = { "NAME", "IP", "IP6", "IDENTITY", "NETNS-COOKIE" } };
	char name[OR_NAME_LEN + 1], ip[OR_ABI_ADDR_STRLEN], ip6[OR_ABI_ADDR_STRLEN];
	char id[OR_ID_LEN + 1], cookie[24];
	const char *row[] = { name, ip, ip6, id, cookie };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct pod_row *r = &rows[i];

		or_abi_name_str(r->v.name, name, sizeof(name));
		ip_or_dash(OR_AF_INET, r->v.addr, ip, sizeof(ip));
		ip_or_dash(OR_AF_INET6, r->v.addr6, ip6, sizeof(ip6));
		or_abi_id_str(r->v.spiffe_id, id, sizeof(id));
		snprintf(cookie, sizeof(cookie), "%llu", (unsigned long long)r->cookie);
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

/* Opens `map` (layout checked), reads every entry into *rows, closes it. */
static int read_map(const struct ctl *c, const char *map, size_t key_size, size_t val_size,
		    size_t rec_size, size_t val_off, void **rows, size_t *n)
{
	int fd, err;

	err = open_map(c, map, &fd);
	if (err)
		return err;
	err = collect(map, fd, key_size, val_size, rec_size, val_off, rows, n);
	close(fd);
	return err;
}

#define READ_MAP(c, map, rows, n, keyf) \
	read_map(c, map, sizeof((rows)->keyf), sizeof((rows)->v), sizeof(*(rows)), \
		 offsetof(__typeof__(*(rows)), v), (void **)&(rows), &(n))

static int cmd_pods(const struct ctl *c)
{
	struct pod_row *rows = NULL;
	size_t n = 0;
	int err;

	err = READ_MAP(c, "or_pods", rows, n, cookie);
	if (err)
		return err;
	check_abi(c);
	sort_rows(rows, n, sizeof(*rows), cmp_pod);
	if (c->json)
		pods_json(rows, n);
	else
		err = pods_table(rows, n);
	free(rows);
	return err;
}

/* "tcp", or the protocol number for one outrider does not name, into buf. */
static const char *proto_str(__u8 proto, char *buf, size_t len)
{
	const char *name = or_proto_name(proto);

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%u", proto);
	return buf;
}

static void services_json(const struct svc_row *rows, size_t n)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct svc_row *r = &rows[i];
		char vip[OR_ABI_ADDR_STRLEN], proto[8];

		or_abi_ip_str(r->k.family, r->k.addr, false, vip, sizeof(vip));
		printf("%s\n  {\"vip\":", i ? "," : "");
		json_str(stdout, vip, strlen(vip));
		printf(",\"port\":%u,\"proto\":\"%s\",\"svc_id\":%u,\"mode\":\"%s\","
		       "\"backend_count\":%u,\"total_weight\":%u,\"name\":",
		       r->k.port, proto_str(r->k.proto, proto, sizeof(proto)), r->v.svc_id,
		       or_svc_mode_name(r->v.mode), r->v.backend_count, r->v.total_weight);
		json_name(stdout, r->v.name);
		printf("}");
	}
	printf("%s]\n", n ? "\n" : "");
}

static int services_table(const struct svc_row *rows, size_t n)
{
	struct table t = { .ncols = 8,
			   .hdr = { "NAME", "VIP", "PORT", "PROTO", "MODE", "BACKENDS", "WEIGHT",
				    "SVC-ID" } };
	char name[OR_NAME_LEN + 1], vip[OR_ABI_ADDR_STRLEN], port[8], proto[8], mode[16];
	char backends[8], weight[16], id[16];
	const char *row[] = { name, vip, port, proto, mode, backends, weight, id };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct svc_row *r = &rows[i];

		or_abi_name_str(r->v.name, name, sizeof(name));
		or_abi_ip_str(r->k.family, r->k.addr, true, vip, sizeof(vip));
		snprintf(port, sizeof(port), "%u", r->k.port);
		proto_str(r->k.proto, proto, sizeof(proto));
		snprintf(mode, sizeof(mode), "%s", or_svc_mode_name(r->v.mode));
		snprintf(backends, sizeof(backends), "%u", r->v.backend_count);
		snprintf(weight, sizeof(weight), "%u", r->v.total_weight);
		snprintf(id, sizeof(id), "%u", r->v.svc_id);
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

static int cmd_services(const struct ctl *c)
{
	struct svc_row *rows = NULL;
	size_t n = 0;
	int err;

	err = READ_MAP(c, "or_services", rows, n, k);
	if (err)
		return err;
	check_abi(c);
	sort_rows(rows, n, sizeof(*rows), cmp_svc);
	if (c->json)
		services_json(rows, n);
	else
		err = services_table(rows, n);
	free(rows);
	return err;
}

/* The service owning svc_id in svcs (sorted by svc_id), or NULL. */
static const struct svc_row *find_svc(const struct svc_row *svcs, size_t n, __u32 svc_id)
{
	struct svc_row key = { .v.svc_id = svc_id };

	if (!n)
		return NULL;
	return bsearch(&key, svcs, n, sizeof(*svcs), cmp_svc_id);
}

static void backends_json(const struct backend_row *rows, size_t n, const struct svc_row *svcs,
			  size_t nsvc)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct backend_row *r = &rows[i];
		const struct svc_row *s = find_svc(svcs, nsvc, r->k.svc_id);
		char ip[OR_ABI_ADDR_STRLEN];

		or_abi_ip_str(r->v.family, r->v.addr, false, ip, sizeof(ip));
		printf("%s\n  {\"svc_id\":%u,\"slot\":%u,\"service\":", i ? "," : "", r->k.svc_id,
		       r->k.slot);
		if (s)
			json_name(stdout, s->v.name);
		else
			printf("null");
		printf(",\"ip\":");
		json_str(stdout, ip, strlen(ip));
		printf(",\"port\":%u,\"node_id\":%u,\"weight\":%u}", r->v.port, r->v.node_id,
		       r->v.weight);
	}
	printf("%s]\n", n ? "\n" : "");
}

static int backends_table(const struct backend_row *rows, size_t n, const struct svc_row *svcs,
			  size_t nsvc)
{
	struct table t = { .ncols = 6,
			   .hdr = { "SERVICE", "SVC-ID", "SLOT", "ADDRESS", "NODE-ID", "WEIGHT" } };
	char name[OR_NAME_LEN + 1], id[16], slot[16], addr[OR_ABI_ADDR_STRLEN], node[16];
	char weight[16];
	const char *row[] = { name, id, slot, addr, node, weight };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct backend_row *r = &rows[i];
		const struct svc_row *s = find_svc(svcs, nsvc, r->k.svc_id);

		if (s)
			or_abi_name_str(s->v.name, name, sizeof(name));
		else
			snprintf(name, sizeof(name), "-");
		snprintf(id, sizeof(id), "%u", r->k.svc_id);
		snprintf(slot, sizeof(slot), "%u", r->k.slot);
		or_abi_addr_str(r->v.family, r->v.addr, r->v.port, addr, sizeof(addr));
		snprintf(node, sizeof(node), "%u", r->v.node_id);
		snprintf(weight, sizeof(weight), "%u", r->v.weight);
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

static int cmd_backends(const struct ctl *c)
{
	struct backend_row *rows = NULL;
	struct svc_row *svcs = NULL;
	size_t n = 0, nsvc = 0;
	int err;

	err = READ_MAP(c, "or_backends", rows, n, k);
	if (err)
		return err;
	err = READ_MAP(c, "or_services", svcs, nsvc, k);
	if (err)
		goto out_free;
	check_abi(c);
	sort_rows(rows, n, sizeof(*rows), cmp_backend);
	sort_rows(svcs, nsvc, sizeof(*svcs), cmp_svc_id);
	if (c->json)
		backends_json(rows, n, svcs, nsvc);
	else
		err = backends_table(rows, n, svcs, nsvc);
	free(svcs);
out_free:
	free(rows);
	return err;
}

/* CLOCK_MONOTONIC now, the clock of bpf_ktime_get_ns(), or 0 if it cannot be read. */
static __u64 monotonic_ns(void)
{
	struct timespec now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return 0;
	return (__u64)now.tv_sec * 1000000000ull + now.tv_nsec;
}

static int cmp_breaker(const void *pa, const void *pb)
{
	const struct breaker_row *a = pa, *b = pb;
	int d;

	if (a->k.family != b->k.family)
		return a->k.family < b->k.family ? -1 : 1;
	/* Network byte order compares as the address reads. */
	d = memcmp(a->k.addr, b->k.addr, sizeof(a->k.addr));
	if (d)
		return d;
	return a->k.port < b->k.port ? -1 : a->k.port > b->k.port;
}

/* "850ms", "12.3s", "4m05s", "2h03m": time left in an ejection, for people. */
static const char *duration_str(__u64 ns, char *buf, size_t len)
{
	__u64 ms = ns / 1000000, s = ms / 1000;

	if (ms < 1000)
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	else if (s < 60)
		snprintf(buf, len, "%llu.%llus", (unsigned long long)s,
			 (unsigned long long)(ms % 1000) / 100);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)s / 60,
			 (unsigned long long)s % 60);
	else
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)s / 3600,
			 (unsigned long long)(s / 60) % 60);
	return buf;
}

static void breakers_json(const struct breaker_row *rows, size_t n, __u64 now)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct breaker_row *r = &rows[i];
		char ip[OR_ABI_ADDR_STRLEN];

		or_abi_ip_str(r->k.family, r->k.addr, false, ip, sizeof(ip));
		printf("%s\n  {\"ip\":", i ? "," : "");
		json_str(stdout, ip, strlen(ip));
		printf(",\"port\":%u,\"state\":\"%s\",\"ejected_remaining_ms\":%llu,"
		       "\"consecutive_failures\":%u,\"ejections\":%u}",
		       r->k.port, or_breaker_state_name(r->v.state),
		       (unsigned long long)(or_breaker_remaining_ns(&r->v, now) / 1000000),
		       r->v.consecutive_failures, r->v.ejections);
	}
	printf("%s]\n", n ? "\n" : "");
}

static int breakers_table(const struct breaker_row *rows, size_t n, __u64 now)
{
	struct table t = { .ncols = 5,
			   .hdr = { "ENDPOINT", "STATE", "EJECTED-FOR", "CONSECUTIVE-FAILURES",
				    "EJECTIONS" } };
	char addr[OR_ABI_ADDR_STRLEN], state[16], left[32], fails[16], ejections[16];
	const char *row[] = { addr, state, left, fails, ejections };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct breaker_row *r = &rows[i];
		__u64 rem = or_breaker_remaining_ns(&r->v, now);

		or_abi_addr_str(r->k.family, r->k.addr, r->k.port, addr, sizeof(addr));
		snprintf(state, sizeof(state), "%s", or_breaker_state_name(r->v.state));
		if (rem)
			duration_str(rem, left, sizeof(left));
		else
			snprintf(left, sizeof(left), "-");
		snprintf(fails, sizeof(fails), "%u", r->v.consecutive_failures);
		snprintf(ejections, sizeof(ejections), "%u", r->v.ejections);
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

static int cmd_breakers(const struct ctl *c)
{
	struct breaker_row *rows = NULL;
	size_t n = 0;
	__u64 now;
	int err;

	err = READ_MAP(c, "or_breakers", rows, n, k);
	if (err)
		return err;
	/* After the walk, so no entry looks ejected longer than it is. */
	now = monotonic_ns();
	if (!now) {
		err = -errno;
		fprintf(stderr, "outriderctl: reading the clock: %s\n", strerror(errno));
		goto out_free;
	}
	check_abi(c);
	sort_rows(rows, n, sizeof(*rows), cmp_breaker);
	if (c->json)
		breakers_json(rows, n, now);
	else
		err = breakers_table(rows, n, now);
out_free:
	free(rows);
	return err;
}

/*
 * Unix seconds t as ISO 8601 UTC ("2025-01-31T12:00:00Z") into buf, or
 * "@<seconds>" for a value no calendar date fits. Returns buf.
 */
static const char *utc_str(__u64 t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (tt < 0 || (__u64)tt != t || !gmtime_r(&tt, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "@%llu", (unsigned long long)t);
	return buf;
}

/* "45s", "4m05s", "23h59m", "3d04h": a time span in seconds, for people. */
static const char *secs_str(__u64 s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)s / 60,
			 (unsigned long long)s % 60);
	else if (s < 2 * 86400)
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)s / 3600,
			 (unsigned long long)(s / 60) % 60);
	else
		snprintf(buf, len, "%llud%02lluh", (unsigned long long)s / 86400,
			 (unsigned long long)(s / 3600) % 24);
	return buf;
}

/* Seconds from now until t (negative once past); t comes from a map, so clamp it. */
static long long secs_until(__u64 t, time_t now)
{
	if (t > (__u64)LLONG_MAX / 2)
		t = (__u64)LLONG_MAX / 2;
	return (long long)t - (long long)now;
}

/* Unix seconds as a JSON number, or null for 0 ("none" in or_pod_val). */
static void json_secs_or_null(FILE *f, __u64 t)
{
	if (t)
		fprintf(f, "%llu", (unsigned long long)t);
	else
		fputs("null", f);
}

static void certs_json(const struct pod_row *rows, size_t n, time_t now)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct pod_row *r = &rows[i];

		printf("%s\n  {\"name\":", i ? "," : "");
		json_name(stdout, r->v.name);
		printf(",\"spiffe_id\":");
		json_id_or_null(stdout, r->v.spiffe_id);
		printf(",\"not_before\":");
		json_secs_or_null(stdout, r->v.svid_not_before);
		printf(",\"not_after\":");
		json_secs_or_null(stdout, r->v.svid_not_after);
		printf(",\"renew_at\":");
		json_secs_or_null(stdout, r->v.svid_renew_at);
		printf(",\"expires_in_s\":");
		if (r->v.svid_not_after)
			printf("%lld}", secs_until(r->v.svid_not_after, now));
		else
			printf("null}");
	}
	printf("%s]\n", n ? "\n" : "");
}

/* Time left until t into buf: "23h59m", past_word once t has passed, "-" for none. */
static const char *left_str(__u64 t, time_t now, const char *past_word, char *buf, size_t len)
{
	long long left = secs_until(t, now);

	if (!t)
		snprintf(buf, len, "-");
	else if (left <= 0)
		snprintf(buf, len, "%s", past_word);
	else
		secs_str(left, buf, len);
	return buf;
}

static int certs_table(const struct pod_row *rows, size_t n, time_t now)
{
	struct table t = { .ncols = 5,
			   .hdr = { "NAME", "SPIFFE-ID", "NOT-AFTER", "EXPIRES-IN", "RENEW-IN" } };
	char name[OR_NAME_LEN + 1], id[OR_ID_LEN + 1], not_after[32], expires[32], renew[32];
	const char *row[] = { name, id, not_after, expires, renew };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct pod_row *r = &rows[i];

		or_abi_name_str(r->v.name, name, sizeof(name));
		or_abi_id_str(r->v.spiffe_id, id, sizeof(id));
		if (r->v.svid_not_after)
			utc_str(r->v.svid_not_after, not_after, sizeof(not_after));
		else
			snprintf(not_after, sizeof(not_after), "-");
		left_str(r->v.svid_not_after, now, "expired", expires, sizeof(expires));
		/* Past renew_at the agent replaces the SVID on its next tick. */
		left_str(r->v.svid_renew_at, now, "due", renew, sizeof(renew));
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

static int cmd_certs(const struct ctl *c)
{
	struct pod_row *rows = NULL;
	size_t n = 0;
	time_t now;
	int err;

	err = READ_MAP(c, "or_pods", rows, n, cookie);
	if (err)
		return err;
	now = time(NULL);
	if (now == (time_t)-1) {
		err = -errno;
		fprintf(stderr, "outriderctl: reading the clock: %s\n", strerror(errno));
		goto out_free;
	}
	check_abi(c);
	sort_rows(rows, n, sizeof(*rows), cmp_pod);
	if (c->json)
		certs_json(rows, n, now);
	else
		err = certs_table(rows, n, now);
out_free:
	free(rows);
	return err;
}

static int cmp_inbound(const void *pa, const void *pb)
{
	const struct inbound_row *a = pa, *b = pb;
	int d;

	if (a->k.family != b->k.family)
		return a->k.family < b->k.family ? -1 : 1;
	d = memcmp(a->k.addr, b->k.addr, sizeof(a->k.addr));
	if (d)
		return d;
	return a->k.port < b->k.port ? -1 : a->k.port > b->k.port;
}

/* The enrolled pod with address addr of family, or NULL. */
static const struct pod_row *find_pod(const struct pod_row *pods, size_t n, __u8 family,
				      const __u32 addr[4])
{
	if ((family != OR_AF_INET && family != OR_AF_INET6) || or_abi_addr_is_zero(addr))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const __u32 *a = family == OR_AF_INET6 ? pods[i].v.addr6 : pods[i].v.addr;

		if (!memcmp(a, addr, sizeof(pods[i].v.addr)))
			return &pods[i];
	}
	return NULL;
}

static void inbound_json(const struct inbound_row *rows, size_t n, const struct pod_row *pods,
			 size_t npods)
{
	printf("[");
	for (size_t i = 0; i < n; i++) {
		const struct inbound_row *r = &rows[i];
		const struct pod_row *p = find_pod(pods, npods, r->k.family, r->k.addr);
		char ip[OR_ABI_ADDR_STRLEN];

		or_abi_ip_str(r->k.family, r->k.addr, false, ip, sizeof(ip));
		printf("%s\n  {\"ip\":", i ? "," : "");
		json_str(stdout, ip, strlen(ip));
		printf(",\"port\":%u,\"mode\":\"%s\",\"pod\":", r->k.port,
		       or_inbound_mode_name(r->v.mode));
		if (p)
			json_name(stdout, p->v.name);
		else
			printf("null");
		printf("}");
	}
	printf("%s]\n", n ? "\n" : "");
}

static int inbound_table(const struct inbound_row *rows, size_t n, const struct pod_row *pods,
			 size_t npods)
{
	struct table t = { .ncols = 3, .hdr = { "POD-ADDRESS:PORT", "MODE", "POD" } };
	char addr[OR_ABI_ADDR_STRLEN], mode[16], name[OR_NAME_LEN + 1];
	const char *row[] = { addr, mode, name };
	int err = 0;

	for (size_t i = 0; i < n; i++) {
		const struct inbound_row *r = &rows[i];
		const struct pod_row *p = find_pod(pods, npods, r->k.family, r->k.addr);

		or_abi_addr_str(r->k.family, r->k.addr, r->k.port, addr, sizeof(addr));
		snprintf(mode, sizeof(mode), "%s", or_inbound_mode_name(r->v.mode));
		if (p)
			or_abi_name_str(p->v.name, name, sizeof(name));
		else
			snprintf(name, sizeof(name), "-");
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

/*
 * The enrolled pods, to name the owner of an address. Best effort: without
 * a readable or_pods the addresses are still worth showing, unnamed.
 */
static void collect_pods_quiet(const struct ctl *c, struct pod_row **rows, size_t *n)
{
	int fd, err;

	*rows = NULL;
	*n = 0;
	if (or_pinned_open(c->pin_dir, "or_pods", &fd))
		return;
	err = or_pinned_check(fd, "or_pods", NULL);
	if (!err)
		err = or_pinned_collect(fd, sizeof((*rows)->cookie), sizeof((*rows)->v),
					sizeof(**rows), offsetof(struct pod_row, v),
					(void **)rows, n);
	if (err) {
		*rows = NULL;
		*n = 0;
	}
	close(fd);
}

static int cmd_inbound(const struct ctl *c)
{
	struct inbound_row *rows = NULL;
	struct pod_row *pods;
	size_t n = 0, npods;
	int err;

	err = READ_MAP(c, "or_inbound", rows, n, k);
	if (err)
		return err;
	check_abi(c);
	collect_pods_quiet(c, &pods, &npods);
	sort_rows(rows, n, sizeof(*rows), cmp_inbound);
	if (c->json)
		inbound_json(rows, n, pods, npods);
	else
		err = inbound_table(rows, n, pods, npods);
	free(pods);
	free(rows);
	return err;
}

/* failures[i]'s name into buf: "chain", or "reason_10" for a slot newer than this build. */
static const char *tls_reason_str(unsigned int i, char *buf, size_t len)
{
	const char *name = or_tls_reason_name(i);

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "reason_%u", i);
	return buf;
}

/* Named slots always, unnamed ones only when something counted there. */
static bool tls_reason_shown(const struct or_tls_counters *t, unsigned int i)
{
	return or_tls_reason_name(i) || t->failures[i];
}

struct tls_counter {
	const char *name;
	__u64 value;
};

#define TLS_NCOUNTERS 8

/* or_tls_counters other than failures[], by the names --json and the table use. */
static void tls_counters(const struct or_tls_counters *t, struct tls_counter out[TLS_NCOUNTERS])
{
	const struct tls_counter c[TLS_NCOUNTERS] = {
		{ "handshakes_full", t->handshakes },
		{ "handshakes_resumed", t->resumed },
		{ "tunnels_in", t->tunnels_in },
		{ "tunnels_out", t->tunnels_out },
		{ "tunnels_out_failed", t->tunnels_out_failed },
		{ "denied", t->denied },
		{ "bad_request", t->bad_request },
		{ "app_failed", t->app_failed },
	};

	memcpy(out, c, sizeof(c));
}

static void tls_json(const struct or_tls_counters *t)
{
	struct tls_counter counters[TLS_NCOUNTERS];
	bool first = true;
	char name[24];

	tls_counters(t, counters);
	printf("{\n");
	for (size_t i = 0; i < TLS_NCOUNTERS; i++)
		printf("  \"%s\":%llu,\n", counters[i].name,
		       (unsigned long long)counters[i].value);
	printf("  \"failures\":{");
	for (unsigned int i = 0; i < OR_TLS_REASONS; i++) {
		if (!tls_reason_shown(t, i))
			continue;
		printf("%s\"%s\":%llu", first ? "" : ",", tls_reason_str(i, name, sizeof(name)),
		       (unsigned long long)t->failures[i]);
		first = false;
	}
	printf("}\n}\n");
}

static int tls_table(const struct or_tls_counters *t)
{
	struct table tab = { .ncols = 2, .hdr = { "COUNTER", "COUNT" } };
	struct tls_counter counters[TLS_NCOUNTERS];
	char name[24], count[24];
	const char *row[] = { name, count };
	int err = 0;

	tls_counters(t, counters);
	for (size_t i = 0; i < TLS_NCOUNTERS; i++) {
		snprintf(name, sizeof(name), "%s", counters[i].name);
		snprintf(count, sizeof(count), "%llu", (unsigned long long)counters[i].value);
		err = table_add(&tab, row);
		if (err)
			goto out_free;
	}
	table_print(&tab, stdout);
	table_free(&tab);

	tab = (struct table){ .ncols = 2, .hdr = { "FAILURE", "COUNT" } };
	for (unsigned int i = 0; i < OR_TLS_REASONS; i++) {
		if (!tls_reason_shown(t, i))
			continue;
		tls_reason_str(i, name, sizeof(name));
		snprintf(count, sizeof(count), "%llu", (unsigned long long)t->failures[i]);
		err = table_add(&tab, row);
		if (err)
			goto out_free;
	}
	printf("\n");
	table_print(&tab, stdout);
out_free:
	table_free(&tab);
	return err;
}

static int cmd_tls(const struct ctl *c)
{
	struct or_tls_counters t;
	__u32 key = 0;
	int fd, err;

	err = open_map(c, "or_tls", &fd);
	if (err)
		return err;
	err = bpf_map_lookup_elem(fd, &key, &t);
	if (err) {
		fprintf(stderr, "outriderctl: or_tls: %s\n", strerror(-err));
		goto out_close;
	}
	check_abi(c);
	if (c->json)
		tls_json(&t);
	else
		err = tls_table(&t);
out_close:
	close(fd);
	return err;
}

/* Milliseconds since the agent's last heartbeat, or -1 if it never beat. */
static long long heartbeat_age_ms(const struct or_settings *s)
{
	__u64 now_ns;

	if (!s->heartbeat_ns)
		return -1;
	now_ns = monotonic_ns();
	if (!now_ns)
		return -1;
	if (now_ns <= s->heartbeat_ns)
		return 0;
	return (now_ns - s->heartbeat_ns) / 1000000;
}

/* Reason i's name into buf: "redirected", or "reason_9" for one newer than this build. */
static const char *reason_str(unsigned int i, char *buf, size_t len)
{
	const char *name = or_reason_name(i);

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "reason_%u", i);
	return buf;
}

static void stats_json(const __u64 *counts, unsigned int n, const struct or_settings *s,
		       long long age)
{
	char name[24];

	printf("{\n");
	for (unsigned int i = 0; i < n; i++)
		printf("  \"%s\":%llu,\n", reason_str(i, name, sizeof(name)),
		       (unsigned long long)counts[i]);
	printf("  \"settings\":{\"abi_version\":%u,\"agent_pid\":%u,\"outbound_port\":%u,"
	       "\"stopped\":%s,\"heartbeat_age_ms\":",
	       s->abi_version, s->agent_pid, s->outbound_port,
	       s->flags & OR_SETTINGS_F_STOPPED ? "true" : "false");
	if (age < 0)
		printf("null}\n}\n");
	else
		printf("%lld}\n}\n", age);
}

static int stats_table(const __u64 *counts, unsigned int n, const struct or_settings *s,
		       long long age)
{
	struct table t = { .ncols = 2, .hdr = { "REASON", "COUNT" } };
	char name[24], count[24], abi[16], pid[16], port[8], hb[32];
	const char *row[] = { name, count };
	const char *settings[][2] = {
		{ "abi_version", abi },
		{ "agent_pid", pid },
		{ "outbound_port", port },
		{ "heartbeat_age", hb },
		{ "agent", s->flags & OR_SETTINGS_F_STOPPED ? "stopped"
			   : age < 0 ? "never started"
			   : age * 1000000ll > (long long)OR_HEARTBEAT_TIMEOUT_NS
				   ? "down (heartbeat stale)"
				   : "running" },
	};
	int err = 0;

	for (unsigned int i = 0; i < n; i++) {
		reason_str(i, name, sizeof(name));
		snprintf(count, sizeof(count), "%llu", (unsigned long long)counts[i]);
		err = table_add(&t, row);
		if (err)
			goto out_free;
	}
	table_print(&t, stdout);
	table_free(&t);

	t = (struct table){ .ncols = 2, .hdr = { "SETTING", "VALUE" } };
	snprintf(abi, sizeof(abi), "%u", s->abi_version);
	snprintf(pid, sizeof(pid), "%u", s->agent_pid);
	snprintf(port, sizeof(port), "%u", s->outbound_port);
	if (age < 0)
		snprintf(hb, sizeof(hb), "never");
	else
		snprintf(hb, sizeof(hb), "%lld ms", age);
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		err = table_add(&t, settings[i]);
		if (err)
			goto out_free;
	}
	printf("\n");
	table_print(&t, stdout);
out_free:
	table_free(&t);
	return err;
}

/* More reasons than this in or_stats is not an outrider map: do not print them all. */
#define STATS_MAX_REASONS 256

static int cmd_stats(const struct ctl *c)
{
	struct or_map_layout layout;
	struct or_settings s;
	__u64 *counts = NULL;
	unsigned int n, in_map;
	int fd, err;

	err = open_map(c, "or_stats", &fd);
	if (err)
		return err;
	err = read_settings(c, false, &s);
	if (err)
		goto out_close;
	warn_abi(c, &s);
	err = or_pinned_layout(fd, &layout);
	if (err) {
		fprintf(stderr, "outriderctl: or_stats: %s\n", strerror(-err));
		goto out_close;
	}
	/*
	 * Reasons are append only: an older agent's map may have fewer slots
	 * (the missing ones count 0), a newer one's more (shown by number).
	 */
	in_map = layout.max_entries < STATS_MAX_REASONS ? layout.max_entries : STATS_MAX_REASONS;
	n = in_map > OR_REASON_MAX ? in_map : OR_REASON_MAX;
	counts = calloc(n, sizeof(*counts));
	if (!counts) {
		err = -ENOMEM;
		goto out_close;
	}
	for (unsigned int i = 0; i < in_map; i++) {
		err = or_pinned_percpu_sum(fd, i, &counts[i]);
		if (err) {
			fprintf(stderr, "outriderctl: or_stats[%u]: %s\n", i, strerror(-err));
			goto out_free;
		}
	}
	/* Spare slots of the map (OR_STATS_SLOTS) show only once a newer agent counts there. */
	while (n > OR_REASON_MAX && !counts[n - 1])
		n--;
	if (c->json)
		stats_json(counts, n, &s, heartbeat_age_ms(&s));
	else
		err = stats_table(counts, n, &s, heartbeat_age_ms(&s));
out_free:
	free(counts);
out_close:
	close(fd);
	return err;
}

/* libbpf's print callback takes an enum; or_log_libbpf takes the same values as int. */
static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return or_log_libbpf(level, fmt, ap);
}

static int cmd_uninstall(const struct ctl *c)
{
	char links[PATH_MAX];
	struct or_settings s = {};
	struct stat st;
	int n_links, n_maps;

	if (stat(c->pin_dir, &st) == -1) {
		printf("nothing to remove: %s does not exist\n", c->pin_dir);
		return 0;
	}
	if (read_settings(c, true, &s) == 0 && !(s.flags & OR_SETTINGS_F_STOPPED) && s.agent_pid &&
	    (kill((pid_t)s.agent_pid, 0) == 0 || errno == EPERM) && !c->force) {
		fprintf(stderr,
			"outriderctl: uninstall: the agent (pid %u) still runs; stop it first, or --force\n",
			s.agent_pid);
		return -EBUSY;
	}
	/* Links first: with their pins gone, each detaches from its cgroup or netns. */
	snprintf(links, sizeof(links), "%s/links", c->pin_dir);
	n_links = or_pinned_remove_dir(links);
	n_maps = or_pinned_remove_dir(c->pin_dir);
	if (access(c->pin_dir, F_OK) == 0)
		fprintf(stderr, "outriderctl: %s is not empty: something else is pinned there\n",
			c->pin_dir);
	printf("removed %d link pins (programs detached) and %d map pins from %s\n", n_links,
	       n_maps, c->pin_dir);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(const struct ctl *c);
} commands[] = {
	{ "pods", cmd_pods },
	{ "certs", cmd_certs },
	{ "services", cmd_services },
	{ "backends", cmd_backends },
	{ "breakers", cmd_breakers },
	{ "inbound", cmd_inbound },
	{ "tls", cmd_tls },
	{ "stats", cmd_stats },
	{ "uninstall", cmd_uninstall },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pin-dir", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct ctl c = { .pin_dir = OR_DEFAULT_PIN_DIR };
	const char *cmd;
	int opt, err;

	/* getopt_long permutes argv, so the flags may also follow the command. */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (!optarg[0]) {
				fprintf(stderr, "outriderctl: --pin-dir needs a directory\n");
				return EXIT_USAGE;
			}
			c.pin_dir = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'f':
			c.force = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "outriderctl: option '%s' needs an argument\n",
				argv[optind - 1]);
			fprintf(stderr, "Try 'outriderctl --help'.\n");
			return EXIT_USAGE;
		default:
			fprintf(stderr, "outriderctl: bad option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "Try 'outriderctl --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "outriderctl: no command given\n\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "outriderctl: %s: unexpected argument '%s'\n", cmd,
			argv[optind + 1]);
		return EXIT_USAGE;
	}
	libbpf_set_print(libbpf_print);

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		err = commands[i].run(&c);
		if (fflush(stdout) == EOF && !err) {
			fprintf(stderr, "outriderctl: writing output: %s\n", strerror(errno));
			err = -EIO;
		}
		return err ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	fprintf(stderr,
		"outriderctl: unknown command '%s' (commands: pods, certs, services, backends, breakers, inbound, tls, stats, uninstall; see --help)\n",
		cmd);
	return EXIT_USAGE;
}
