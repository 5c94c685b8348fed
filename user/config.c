// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * YAML configuration. libyaml builds the whole document as a node tree
 * (yaml_parser_load) so every value keeps its line; we then walk that tree
 * against a fixed schema and fill a struct or_config, stopping at the first
 * problem. Nothing is returned unless the whole file is valid, so a caller can
 * keep the config in force when a reload is rejected.
 *
 * The parser holds no state outside a struct cfg_ctx on the stack: two threads
 * may load configs at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "yaml_node.h"

#include "or_abi.h"
#include "config.h"

/*
 * Aliases let a small file describe a huge tree (`*big` repeated, each
 * expanding to another `*big` ...). The schema walk follows aliases, so bound
 * the number of nodes it may visit: far more than any real cluster config,
 * far less than an alias bomb.
 */
#define CFG_MAX_VISITS (1u << 20)
#define CFG_MAX_FILE (64u << 20)
#define CFG_PATH_LEN 160
#define CFG_SHOW_LEN 64

#define CFG_MAX_CONNECTIONS 10000000
#define CFG_MAX_WORKERS 256
#define CFG_MAX_HEADER_TIMEOUT_MS 600000
#define CFG_MIN_BUFFER_BYTES 65536
#define CFG_MAX_BUFFER_BYTES (64 * 1024 * 1024)
#define CFG_MAX_TIMEOUT_MS 600000
#define CFG_MAX_WEIGHT 1000
/* identity.h's OR_SPIFFE_ID_MAX less its NUL: the longest ID an SVID here carries. */
#define CFG_SPIFFE_ID_MAX 255
#define CFG_TRUST_DOMAIN_MAX 255
#define SPIFFE_SCHEME "spiffe://"

struct cfg_ctx {
	const char *file;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	char path[CFG_PATH_LEN]; /* "services[0].ports[1].port", for messages */
	size_t path_len;
	size_t visits;
	int admin_line; /* admin_address / ready_address, 0 when defaulted */
	int ready_line;
};


/*
 * User text echoed into an error: bounded and printable, because messages
 * end up in logfmt log lines and terminals.
 */
static const char *show(const char *s, size_t len, char *buf, size_t size)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (i < len) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static const char *show_node(const yaml_node_t *n, char *buf, size_t size)
{
	if (n->type != YAML_SCALAR_NODE) {
		snprintf(buf, size, "%s", node_kind(n));
		return buf;
	}
	return show((const char *)n->data.scalar.value, n->data.scalar.length, buf, size);
}

__attribute__((format(printf, 3, 4))) static int fail(struct cfg_ctx *c, int line,
						      const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s:%d: %s%s%s", c->file, line, c->path,
			 c->path_len ? ": " : "", msg);
	return -EINVAL;
}

static int fail_nomem(struct cfg_ctx *c)
{
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: out of memory", c->file);
	return -ENOMEM;
}

static void path_set_len(struct cfg_ctx *c, size_t saved, int added)
{
	size_t len = saved + (added > 0 ? (size_t)added : 0);

	/* snprintf truncated: keep the length in step with the buffer. */
	c->path_len = len < sizeof(c->path) ? len : sizeof(c->path) - 1;
}

static size_t path_push_key(struct cfg_ctx *c, const char *key)
{
	size_t saved = c->path_len;

	path_set_len(c, saved,
		     snprintf(c->path + saved, sizeof(c->path) - saved, "%s%s", saved ? "." : "",
			      key));
	return saved;
}

static size_t path_push_index(struct cfg_ctx *c, size_t i)
{
	size_t saved = c->path_len;

	path_set_len(c, saved, snprintf(c->path + saved, sizeof(c->path) - saved, "[%zu]", i));
	return saved;
}

static void path_pop(struct cfg_ctx *c, size_t saved)
{
	c->path_len = saved;
	c->path[saved] = '\0';
}

static int visit(struct cfg_ctx *c, const yaml_node_t *n)
{
	if (++c->visits > CFG_MAX_VISITS)
		return fail(c, node_line(n),
			    "configuration too large (more than %u nodes once aliases are expanded)",
			    CFG_MAX_VISITS);
	return 0;
}

static yaml_node_t *get_node(struct cfg_ctx *c, int index)
{
	return yaml_document_get_node(c->doc, index);
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       memcmp(n->data.scalar.value, s, len) == 0;
}

static bool scalar_is_nocase(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       strncasecmp((const char *)n->data.scalar.value, s, len) == 0;
}

/* YAML's null (`key:`, `~`, `null`): we treat a null value as an absent key. */
static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return n->data.scalar.length == 0 || scalar_is(n, "~") || scalar_is(n, "null") ||
	       scalar_is(n, "Null") || scalar_is(n, "NULL");
}

static size_t seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* ---- scalars ---------------------------------------------------------- */

/* Copies a scalar into *out (replacing what was there). */
static int take_str(struct cfg_ctx *c, const yaml_node_t *n, char **out)
{
	const char *v;
	size_t len;
	char *s;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected a string, got %s", node_kind(n));
	v = (const char *)n->data.scalar.value;
	len = n->data.scalar.length;
	if (is_null(n))
		len = 0;
	/* A "\0" escape would silently cut the string short everywhere else. */
	if (memchr(v, '\0', len))
		return fail(c, node_line(n), "contains a NUL character");
	s = strndup(v, len);
	if (!s)
		return fail_nomem(c);
	free(*out);
	*out = s;
	return 0;
}

/*
 * Plain decimal only: "010" would be octal to a YAML 1.1 reader, "1e3" a
 * float, "0x10" hex; rather than guess which one the author meant, refuse.
 * `what` names the expected kind in the message ("a port"), or NULL.
 */
static int take_uint(struct cfg_ctx *c, const yaml_node_t *n, uint64_t min, uint64_t max,
		     const char *what, uint64_t *out)
{
	char buf[CFG_SHOW_LEN];
	const char *v;
	uint64_t x = 0;
	size_t len, i;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected an integer, got %s", node_kind(n));
	v = (const char *)n->data.scalar.value;
	len = n->data.scalar.length;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || len == 0 ||
	    (len > 1 && v[0] == '0'))
		goto not_int;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			goto not_int;
		if (x > (UINT64_MAX - 9) / 10)
			goto range; /* every digit left only makes it larger */
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x < min || x > max)
		goto range;
	*out = x;
	return 0;

not_int:
	return fail(c, node_line(n), "'%s' is not an integer (plain decimal digits expected)",
		    show_node(n, buf, sizeof(buf)));
range:
	if (what)
		return fail(c, node_line(n), "%s is not %s (%llu-%llu)",
			    show_node(n, buf, sizeof(buf)), what, (unsigned long long)min,
			    (unsigned long long)max);
	return fail(c, node_line(n), "%s is out of range (%llu-%llu)",
		    show_node(n, buf, sizeof(buf)), (unsigned long long)min,
		    (unsigned long long)max);
}

static int take_u32(struct cfg_ctx *c, const yaml_node_t *n, uint32_t min, uint32_t max,
		    uint32_t *out)
{
	uint64_t v;
	int err = take_uint(c, n, min, max, NULL, &v);

	if (!err)
		*out = (uint32_t)v;
	return err;
}

static int take_port(struct cfg_ctx *c, const yaml_node_t *n, uint32_t min, uint16_t *out)
{
	uint64_t v;
	int err = take_uint(c, n, min, 65535, "a port", &v);

	if (!err)
		*out = (uint16_t)v;
	return err;
}

/* family: AF_INET, AF_INET6, or 0 for either. */
static int take_ip(struct cfg_ctx *c, const yaml_node_t *n, int family, struct or_ip *out)
{
	char text[OR_IP_STRLEN + 1], buf[CFG_SHOW_LEN];
	struct or_ip ip;
	size_t len;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected an IP address, got %s", node_kind(n));
	len = n->data.scalar.length;
	if (len >= sizeof(text) || memchr(n->data.scalar.value, '\0', len))
		goto bad;
	memcpy(text, n->data.scalar.value, len);
	text[len] = '\0';
	if (or_ip_parse(text, &ip))
		goto bad;
	if (family && ip.family != family)
		return fail(c, node_line(n), "%s is not an %s address",
			    show_node(n, buf, sizeof(buf)), family == AF_INET ? "IPv4" : "IPv6");
	*out = ip;
	return 0;
bad:
	return fail(c, node_line(n), "'%s' is not an IP address", show_node(n, buf, sizeof(buf)));
}

/* ---- name rules -------------------------------------------------------- */

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* RFC 1123 label, as Kubernetes names pods, services and namespaces. */
static bool dns_label_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* RFC 1123 subdomain (service accounts end up in SPIFFE IDs). */
static bool dns_subdomain_ok(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i < len; i++) {
		bool edge = i == 0 || i == len - 1 || s[i - 1] == '.' || s[i + 1] == '.';

		if (is_lower_alnum(s[i]))
			continue;
		if ((s[i] == '-' || s[i] == '.') && !edge)
			continue;
		return false;
	}
	return true;
}

static int take_dns_label(struct cfg_ctx *c, const yaml_node_t *n, char **out)
{
	char buf[CFG_SHOW_LEN];
	int err = take_str(c, n, out);

	if (err)
		return err;
	if (!dns_label_ok(*out))
		return fail(c, node_line(n),
			    "'%s' is not a DNS-1123 label (a-z, 0-9 and '-', 1-63 characters, alphanumeric at both ends)",
			    show(*out, strlen(*out), buf, sizeof(buf)));
	return 0;
}

static int take_nonempty(struct cfg_ctx *c, const yaml_node_t *n, char **out)
{
	int err = take_str(c, n, out);

	if (err)
		return err;
	if (!**out)
		return fail(c, node_line(n), "must not be empty");
	return 0;
}

static int take_abs_path(struct cfg_ctx *c, const yaml_node_t *n, char **out)
{
	char buf[CFG_SHOW_LEN];
	int err = take_str(c, n, out);

	if (err)
		return err;
	if ((*out)[0] != '/')
		return fail(c, node_line(n), "'%s' is not an absolute path",
			    show(*out, strlen(*out), buf, sizeof(buf)));
	if (strlen(*out) >= 4096)
		return fail(c, node_line(n), "path is longer than 4095 characters");
	return 0;
}

/* "namespace/name" is what the BPF maps store; it has to fit there. */
static int check_qualified_len(struct cfg_ctx *c, int line, const char *ns, const char *name)
{
	size_t len = strlen(ns) + 1 + strlen(name);

	if (len > OR_NAME_LEN - 1)
		return fail(c, line, "'%s/%s' is %zu characters, at most %d fit", ns, name, len,
			    OR_NAME_LEN - 1);
	return 0;
}

/* SPIFFE trust domain: a-z, 0-9, '.', '-', '_' (no uppercase: IDs compare exactly). */
static bool trust_domain_ok(const char *s, size_t len)
{
	if (len == 0 || len > CFG_TRUST_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

static bool spiffe_seg_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

static bool dot_segment(const char *seg, size_t len)
{
	return (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.');
}

/*
 * "spiffe://<trust domain>/<seg>/...": segments of [A-Za-z0-9._-], neither
 * empty nor "." or "..". With `prefix`, the last segment may be cut short
 * (or empty: a trailing '/'), but the trust domain must still end in '/':
 * "spiffe://cluster.local" as a prefix would also match cluster.local.evil.
 * Returns NULL or what is wrong.
 */
static const char *spiffe_check(const char *s, bool prefix)
{
	const size_t slen = strlen(SPIFFE_SCHEME);
	const char *td, *seg, *p;

	if (strlen(s) > CFG_SPIFFE_ID_MAX)
		return "is longer than 255 characters";
	if (strncmp(s, SPIFFE_SCHEME, slen) != 0)
		return "does not start with spiffe://";
	td = s + slen;
	p = strchr(td, '/');
	if (!p)
		return prefix ? "has no '/' after the trust domain" : "has no path";
	if (!trust_domain_ok(td, (size_t)(p - td)))
		return "has a bad trust domain (a-z, 0-9, '.', '-', '_')";
	for (seg = p + 1;; seg = p + 1) {
		for (p = seg; *p && *p != '/'; p++)
			if (!spiffe_seg_char(*p))
				return "has a character other than A-Z, a-z, 0-9, '.', '-', '_' in its path";
		if (!*p && prefix)
			return NULL;
		if (p == seg)
			return *p ? "has an empty path segment" : "ends with '/'";
		if (dot_segment(seg, (size_t)(p - seg)))
			return "has a '.' or '..' path segment";
		if (!*p)
			return NULL;
	}
}

static int take_trust_domain(struct cfg_ctx *c, const yaml_node_t *n, char **out)
{
	char buf[CFG_SHOW_LEN];
	int err = take_str(c, n, out);

	if (err)
		return err;
	if (!trust_domain_ok(*out, strlen(*out)))
		return fail(c, node_line(n),
			    "'%s' is not a SPIFFE trust domain (a-z, 0-9, '.', '-', '_', 1-255 characters)",
			    show(*out, strlen(*out), buf, sizeof(buf)));
	return 0;
}

static int take_mtls(struct cfg_ctx *c, const yaml_node_t *n, enum or_mtls_mode *out)
{
	static const enum or_mtls_mode modes[] = { OR_MTLS_DISABLED, OR_MTLS_PERMISSIVE,
						    OR_MTLS_STRICT };
	char buf[CFG_SHOW_LEN];

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected a string, got %s", node_kind(n));
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (scalar_is(n, or_mtls_mode_name(modes[i]))) {
			*out = modes[i];
			return 0;
		}
	}
	return fail(c, node_line(n), "'%s' is not an mtls mode (disabled, permissive, strict)",
		    show_node(n, buf, sizeof(buf)));
}

/* ---- duplicate detection ----------------------------------------------- */

/*
 * Duplicates are found by sorting, not by comparing every pair: aliases can
 * repeat one item many times, and the whole check stays O(n log n).
 */
struct dup {
	const char *s1, *s2;    /* string parts of the key, or NULL */
	unsigned char bin[20];  /* binary part of the key (address, port) */
	size_t idx;             /* position in the file's list */
	int line;
};

static int dup_key_cmp(const struct dup *a, const struct dup *b)
{
	int r;

	if (a->s1 && b->s1 && (r = strcmp(a->s1, b->s1)))
		return r;
	if (a->s2 && b->s2 && (r = strcmp(a->s2, b->s2)))
		return r;
	return memcmp(a->bin, b->bin, sizeof(a->bin));
}

static int dup_cmp(const void *pa, const void *pb)
{
	const struct dup *a = pa, *b = pb;
	int r = dup_key_cmp(a, b);

	if (r)
		return r;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/*
 * Sorts v and returns true when some key repeats; *first and *second are the
 * pair whose second occurrence comes earliest in the file, so the message is
 * the same whatever the sort did.
 */
static bool find_dup(struct dup *v, size_t n, const struct dup **first, const struct dup **second)
{
	size_t i, run = 0;
	bool found = false;

	if (n < 2)
		return false;
	qsort(v, n, sizeof(*v), dup_cmp);
	for (i = 1; i < n; i++) {
		if (dup_key_cmp(&v[run], &v[i])) {
			run = i;
			continue;
		}
		if (i != run + 1)
			continue; /* only a run's first two matter */
		if (!found || v[i].idx < (*second)->idx) {
			*first = &v[run];
			*second = &v[i];
			found = true;
		}
	}
	return found;
}

static void dup_set_ip(struct dup *d, const struct or_ip *ip, uint16_t port)
{
	uint32_t abi[4];

	or_ip_to_abi(ip, abi);
	memcpy(d->bin, abi, sizeof(abi));
	d->bin[16] = (unsigned char)ip->family;
	d->bin[17] = (unsigned char)(port >> 8);
	d->bin[18] = (unsigned char)port;
}

/* ---- generic walkers --------------------------------------------------- */

typedef int (*field_fn)(struct cfg_ctx *c, int field, const yaml_node_t *val, void *obj);

/*
 * Walks a mapping whose keys must come from `keys`. Unknown and repeated keys
 * are errors (libyaml accepts both); a null value means the key is absent.
 */
static int walk_map(struct cfg_ctx *c, const yaml_node_t *map, const char *const *keys,
		    int nkeys, field_fn fn, void *obj)
{
	uint32_t seen = 0;
	yaml_node_pair_t *pair;
	char buf[CFG_SHOW_LEN];

	if (map->type != YAML_MAPPING_NODE)
		return fail(c, node_line(map), "expected a mapping, got %s", node_kind(map));
	for (pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = get_node(c, pair->key), *v = get_node(c, pair->value);
		size_t saved;
		int i, err;

		if (!k || !v)
			return fail(c, node_line(map), "malformed document");
		err = visit(c, k);
		if (err)
			return err;
		if (k->type != YAML_SCALAR_NODE)
			return fail(c, node_line(k), "keys must be strings, got %s", node_kind(k));
		for (i = 0; i < nkeys; i++)
			if (scalar_is(k, keys[i]))
				break;
		if (i == nkeys) {
			char expected[256];
			size_t o = 0;

			expected[0] = '\0';
			for (int j = 0; j < nkeys && o < sizeof(expected); j++) {
				int w = snprintf(expected + o, sizeof(expected) - o, "%s%s",
						 j ? ", " : "", keys[j]);
				o += w > 0 ? (size_t)w : 0;
			}
			return fail(c, node_line(k), "unknown key '%s' (expected one of: %s)",
				    show_node(k, buf, sizeof(buf)), expected);
		}
		if (seen & (1u << i))
			return fail(c, node_line(k), "duplicate key '%s'", keys[i]);
		seen |= 1u << i;
		if (is_null(v))
			continue;
		saved = path_push_key(c, keys[i]);
		err = fn(c, i, v, obj);
		if (err)
			return err;
		path_pop(c, saved);
	}
	return 0;
}

typedef int (*item_fn)(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj);

/* Calls fn on each item of a list, with "[i]" on the path. */
static int walk_seq(struct cfg_ctx *c, const yaml_node_t *seq, item_fn fn, void *obj)
{
	yaml_node_item_t *it;
	size_t idx = 0;

	if (seq->type != YAML_SEQUENCE_NODE)
		return fail(c, node_line(seq), "expected a list, got %s", node_kind(seq));
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++, idx++) {
		yaml_node_t *item = get_node(c, *it);
		size_t saved;
		int err;

		if (!item)
			return fail(c, node_line(seq), "malformed document");
		err = visit(c, item);
		if (err)
			return err;
		saved = path_push_index(c, idx);
		err = fn(c, idx, item, obj);
		if (err)
			return err;
		path_pop(c, saved);
	}
	return 0;
}

/* Allocates a zeroed array for a list node's items; NULL (and 0) for none. */
static int alloc_items(struct cfg_ctx *c, const yaml_node_t *seq, size_t size, void **out,
		       size_t *n)
{
	size_t len;

	if (seq->type != YAML_SEQUENCE_NODE)
		return fail(c, node_line(seq), "expected a list, got %s", node_kind(seq));
	len = seq_len(seq);
	if (!len)
		return 0;
	*out = calloc(len, size);
	if (!*out)
		return fail_nomem(c);
	/* Items are zero, so or_config_free can free a half-filled array. */
	*n = len;
	return 0;
}

/* ---- labels ------------------------------------------------------------ */

void or_labels_free(struct or_labels *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int or_labels_copy(struct or_labels *dst, const struct or_labels *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (!src->n)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i].key = strdup(src->v[i].key);
		dst->v[i].value = strdup(src->v[i].value);
		dst->n++;
		if (!dst->v[i].key || !dst->v[i].value)
			return -ENOMEM; /* what was copied is dst's to free */
	}
	return 0;
}

/* A mapping of string -> string; a null value is the empty string. */
static int take_labels(struct cfg_ctx *c, const yaml_node_t *n, struct or_labels *out)
{
	const struct dup *first, *second;
	struct dup *dups = NULL;
	yaml_node_pair_t *pair;
	size_t len, i = 0;
	char buf[CFG_SHOW_LEN];
	int err = 0;

	if (n->type != YAML_MAPPING_NODE)
		return fail(c, node_line(n), "expected a mapping of labels, got %s", node_kind(n));
	or_labels_free(out);
	len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (!len)
		return 0;
	out->v = calloc(len, sizeof(*out->v));
	dups = calloc(len, sizeof(*dups));
	if (!out->v || !dups) {
		err = fail_nomem(c);
		goto out;
	}
	out->n = len;
	for (pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top; pair++, i++) {
		yaml_node_t *k = get_node(c, pair->key), *v = get_node(c, pair->value);

		if (!k || !v) {
			err = fail(c, node_line(n), "malformed document");
			goto out;
		}
		err = visit(c, k);
		if (err)
			goto out;
		if (k->type != YAML_SCALAR_NODE) {
			err = fail(c, node_line(k), "label keys must be strings, got %s",
				   node_kind(k));
			goto out;
		}
		err = take_str(c, k, &out->v[i].key);
		if (err)
			goto out;
		if (!out->v[i].key[0]) {
			err = fail(c, node_line(k), "label key must not be empty");
			goto out;
		}
		if (v->type != YAML_SCALAR_NODE) {
			err = fail(c, node_line(v), "value of label '%s' must be a string, got %s",
				   show(out->v[i].key, strlen(out->v[i].key), buf, sizeof(buf)),
				   node_kind(v));
			goto out;
		}
		err = take_str(c, v, &out->v[i].value);
		if (err)
			goto out;
		dups[i].s1 = out->v[i].key;
		dups[i].idx = i;
		dups[i].line = node_line(k);
	}
	if (find_dup(dups, len, &first, &second))
		err = fail(c, second->line, "duplicate label '%s' (first at line %d)",
			   show(second->s1, strlen(second->s1), buf, sizeof(buf)), first->line);
out:
	free(dups);
	return err;
}

/* ---- namespaces -------------------------------------------------------- */

enum { NS_NAME, NS_LABELS, NS_MTLS, NS_ON_AGENT_DOWN, NS_N };
static const char *const ns_keys[NS_N] = {
	[NS_NAME] = "name",
	[NS_LABELS] = "labels",
	[NS_MTLS] = "mtls",
	[NS_ON_AGENT_DOWN] = "on_agent_down",
};

static int take_agent_down(struct cfg_ctx *c, const yaml_node_t *n, enum or_agent_down *out)
{
	char buf[CFG_SHOW_LEN];

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected a string, got %s", node_kind(n));
	for (int m = OR_AGENT_DOWN_FAIL_CLOSED; m <= OR_AGENT_DOWN_FAIL_OPEN; m++) {
		if (scalar_is(n, or_agent_down_name(m))) {
			*out = m;
			return 0;
		}
	}
	return fail(c, node_line(n), "'%s' is not an on_agent_down mode (fail-closed, fail-open)",
		    show_node(n, buf, sizeof(buf)));
}

static int ns_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_ns_cfg *ns = obj;

	switch (field) {
	case NS_NAME:
		return take_dns_label(c, v, &ns->name);
	case NS_LABELS:
		return take_labels(c, v, &ns->labels);
	case NS_MTLS:
		return take_mtls(c, v, &ns->mtls);
	case NS_ON_AGENT_DOWN:
		return take_agent_down(c, v, &ns->on_agent_down);
	}
	return 0;
}

static int ns_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_ns_cfg *ns = &((struct or_config *)obj)->namespaces[idx];
	int err;

	ns->line = node_line(item);
	ns->mtls = OR_MTLS_PERMISSIVE;
	err = walk_map(c, item, ns_keys, NS_N, ns_field, ns);
	if (err)
		return err;
	if (!ns->name)
		return fail(c, ns->line, "name is required");
	/* Failing open would send plaintext where the namespace promised mTLS. */
	if (ns->mtls == OR_MTLS_STRICT && ns->on_agent_down == OR_AGENT_DOWN_FAIL_OPEN)
		return fail(c, ns->line,
			    "namespace %s: on_agent_down: fail-open is not allowed with mtls: strict",
			    ns->name);
	return 0;
}

/* ---- pods -------------------------------------------------------------- */

enum {
	POD_NAME,
	POD_NAMESPACE,
	POD_NODE,
	POD_LABELS,
	POD_IP,
	POD_IP6,
	POD_NETNS,
	POD_CGROUP,
	POD_SERVICE_ACCOUNT,
	POD_N
};
static const char *const pod_keys[POD_N] = {
	[POD_NAME] = "name",		 [POD_NAMESPACE] = "namespace", [POD_NODE] = "node",
	[POD_LABELS] = "labels",	 [POD_IP] = "ip",		[POD_IP6] = "ip6",
	[POD_NETNS] = "netns",		 [POD_CGROUP] = "cgroup",
	[POD_SERVICE_ACCOUNT] = "service_account",
};

static int pod_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_pod_cfg *pod = obj;
	char buf[CFG_SHOW_LEN];
	int err;

	switch (field) {
	case POD_NAME:
		return take_dns_label(c, v, &pod->name);
	case POD_NAMESPACE:
		return take_dns_label(c, v, &pod->namespace);
	case POD_NODE:
		return take_nonempty(c, v, &pod->node);
	case POD_LABELS:
		return take_labels(c, v, &pod->labels);
	case POD_IP:
		return take_ip(c, v, AF_INET, &pod->ip);
	case POD_IP6:
		return take_ip(c, v, AF_INET6, &pod->ip6);
	case POD_NETNS:
		return take_abs_path(c, v, &pod->netns);
	case POD_CGROUP:
		return take_abs_path(c, v, &pod->cgroup);
	case POD_SERVICE_ACCOUNT:
		err = take_str(c, v, &pod->service_account);
		if (err)
			return err;
		if (!dns_subdomain_ok(pod->service_account))
			return fail(c, node_line(v), "'%s' is not a valid service account name",
				    show(pod->service_account, strlen(pod->service_account), buf,
					 sizeof(buf)));
		return 0;
	}
	return 0;
}

static int default_str(struct cfg_ctx *c, char **field, const char *value)
{
	if (*field)
		return 0;
	*field = strdup(value);
	return *field ? 0 : fail_nomem(c);
}

static int pod_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_pod_cfg *pod = &((struct or_config *)obj)->pods[idx];
	int err;

	pod->line = node_line(item);
	err = walk_map(c, item, pod_keys, POD_N, pod_field, pod);
	if (err)
		return err;
	if (!pod->name)
		return fail(c, pod->line, "name is required");
	if (!pod->ip.family)
		return fail(c, pod->line, "ip is required");
	err = default_str(c, &pod->namespace, "default");
	if (!err)
		err = default_str(c, &pod->service_account, "default");
	if (err)
		return err;
	/* pod->node defaults to the top-level node, which may come later in the file. */
	return check_qualified_len(c, pod->line, pod->namespace, pod->name);
}

/* ---- services ---------------------------------------------------------- */

enum { PORT_PORT, PORT_TARGET_PORT, PORT_PROTOCOL, PORT_N };
static const char *const port_keys[PORT_N] = {
	[PORT_PORT] = "port",
	[PORT_TARGET_PORT] = "target_port",
	[PORT_PROTOCOL] = "protocol",
};

static int port_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_port_cfg *p = obj;
	char buf[CFG_SHOW_LEN];

	switch (field) {
	case PORT_PORT:
		return take_port(c, v, 1, &p->port);
	case PORT_TARGET_PORT:
		return take_port(c, v, 1, &p->target_port);
	case PORT_PROTOCOL:
		if (v->type != YAML_SCALAR_NODE)
			return fail(c, node_line(v), "expected a string, got %s", node_kind(v));
		/* Kubernetes spells it "TCP" (and appProtocol "HTTP"); accept any case. */
		if (scalar_is_nocase(v, "tcp")) {
			p->protocol = OR_PROTOCOL_TCP;
			return 0;
		}
		if (scalar_is_nocase(v, "http")) {
			p->protocol = OR_PROTOCOL_HTTP;
			return 0;
		}
		return fail(c, node_line(v), "protocol '%s' is not supported (tcp, http)",
			    show_node(v, buf, sizeof(buf)));
	}
	return 0;
}

static int port_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_port_cfg *p = &((struct or_svc_cfg *)obj)->ports[idx];
	int err;

	p->line = node_line(item);
	err = walk_map(c, item, port_keys, PORT_N, port_field, p);
	if (err)
		return err;
	if (!p->port)
		return fail(c, p->line, "port is required");
	if (!p->target_port)
		p->target_port = p->port;
	return 0;
}

enum { EP_IP, EP_PORT, EP_NODE, EP_WEIGHT, EP_N };
static const char *const ep_keys[EP_N] = {
	[EP_IP] = "ip",
	[EP_PORT] = "port",
	[EP_NODE] = "node",
	[EP_WEIGHT] = "weight",
};

static int ep_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_endpoint_cfg *ep = obj;

	switch (field) {
	case EP_IP:
		return take_ip(c, v, 0, &ep->ip);
	case EP_PORT:
		return take_port(c, v, 0, &ep->port);
	case EP_NODE:
		return take_nonempty(c, v, &ep->node);
	case EP_WEIGHT:
		return take_u32(c, v, 1, CFG_MAX_WEIGHT, &ep->weight);
	}
	return 0;
}

static int ep_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_endpoint_cfg *ep = &((struct or_svc_cfg *)obj)->endpoints[idx];
	int err;

	ep->line = node_line(item);
	ep->weight = 1;
	err = walk_map(c, item, ep_keys, EP_N, ep_field, ep);
	if (err)
		return err;
	if (!ep->ip.family)
		return fail(c, ep->line, "ip is required");
	return 0;
}

/* ---- policy ------------------------------------------------------------ */

/*
 * Ranges from config.h. Timeouts that cover a whole request or an idle
 * connection may be long (an hour of idle is the default), so they get a
 * day; per-try and connect timeouts stay within CFG_MAX_TIMEOUT_MS.
 */
#define CFG_MAX_LONG_TIMEOUT_MS 86400000
#define CFG_MAX_ATTEMPTS 10
#define CFG_MAX_BACKOFF_BASE_MS 60000
#define CFG_MAX_RETRIES_PER_S 100000
#define CFG_MAX_BODY_BYTES 16777216
#define CFG_MAX_CONSECUTIVE 10000000
#define CFG_MAX_INTERVAL_MS 3600000
#define CFG_MAX_EJECTION_MS 86400000
/* Envoy: an unset backoff max_interval is ten times the base (25 ms -> 250 ms). */
#define CFG_BACKOFF_MAX_FACTOR 10

#define RETRY_ON_N 5 /* retry_on conditions, one bit each */
_Static_assert(OR_RETRY_ON_ALL == (1u << RETRY_ON_N) - 1, "retry_on_names covers OR_RETRY_ON_ALL");

void or_policy_defaults(struct or_policy_cfg *p)
{
	memset(p, 0, sizeof(*p));
	p->connect_timeout_ms = OR_DEFAULT_CONNECT_TIMEOUT_MS;
	p->timeout_ms = 15000;
	p->idle_timeout_ms = 3600000;
	p->load_balancer = OR_LB_ROUND_ROBIN;
	p->retries.attempts = 2;
	p->retries.retry_on = OR_RETRY_ON_ALL;
	p->retries.retriable_status_codes[0] = 503;
	p->retries.n_retriable_status_codes = 1;
	p->retries.per_try_timeout_ms = 0;
	p->retries.backoff_base_ms = 25;
	p->retries.backoff_max_ms = 250;
	p->retries.budget_percent = 20;
	p->retries.budget_min_retries_per_s = 10;
	p->retries.max_body_bytes = 65536;
	p->circuit_breaker.max_connections = 1024;
	p->circuit_breaker.max_pending_requests = 1024;
	p->circuit_breaker.max_requests = 1024;
	p->circuit_breaker.max_retries = 3;
	p->outlier_detection.consecutive_5xx = 5;
	p->outlier_detection.consecutive_connect_failures = 5;
	p->outlier_detection.interval_ms = 10000;
	p->outlier_detection.base_ejection_time_ms = 30000;
	p->outlier_detection.max_ejection_percent = 50;
}

/*
 * The state of one walk over a policy: block: the policy being filled, and
 * the lines of the values checked against each other, so that a message
 * can name the right line once the whole block has been read.
 */
struct pol_parse {
	struct or_policy_cfg *pol;
	int timeout_line;  /* 0: timeout_ms not given */
	int per_try_line;  /* 0: per_try_timeout_ms not given */
	int base_line;     /* backoff.base_ms, 0 when not given */
	int max_line;      /* backoff.max_ms, 0 when not given */
	uint32_t retry_on; /* the list being read */
	int retry_on_line[RETRY_ON_N];
	int code_line[OR_MAX_RETRIABLE_CODES];
};

/* Indexed by bit number: OR_RETRY_ON_CONNECT_FAILURE is bit 0. */
static const char *const retry_on_names[RETRY_ON_N] = {
	"connect-failure", "reset", "5xx", "gateway-error", "retriable-status-codes",
};

static int retry_on_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *v, void *obj)
{
	struct pol_parse *pp = obj;
	char buf[CFG_SHOW_LEN];

	if (v->type != YAML_SCALAR_NODE)
		return fail(c, node_line(v), "expected a string, got %s", node_kind(v));
	for (int i = 0; i < RETRY_ON_N; i++) {
		if (!scalar_is(v, retry_on_names[i]))
			continue;
		/* Harmless, but almost always a typo for another condition. */
		if (pp->retry_on & (1u << i))
			return fail(c, node_line(v),
				    "duplicate retry_on entry '%s' (first at line %d)",
				    retry_on_names[i], pp->retry_on_line[i]);
		pp->retry_on |= 1u << i;
		pp->retry_on_line[i] = node_line(v);
		return 0;
	}
	return fail(c, node_line(v),
		    "'%s' is not a retry_on condition (connect-failure, reset, 5xx, gateway-error, retriable-status-codes)",
		    show_node(v, buf, sizeof(buf)));
}

static int code_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *v, void *obj)
{
	struct pol_parse *pp = obj;
	struct or_retry_cfg *r = &pp->pol->retries;
	uint64_t code;
	int err;

	err = take_uint(c, v, 100, 599, "an HTTP status code", &code);
	if (err)
		return err;
	/* At most OR_MAX_RETRIABLE_CODES, checked before the walk: pairwise is cheap. */
	for (size_t j = 0; j < idx; j++)
		if (r->retriable_status_codes[j] == code)
			return fail(c, node_line(v), "duplicate status code %u (first at line %d)",
				    (unsigned int)code, pp->code_line[j]);
	r->retriable_status_codes[idx] = (uint16_t)code;
	pp->code_line[idx] = node_line(v);
	return 0;
}

enum { BO_BASE, BO_MAX, BO_N };
static const char *const bo_keys[BO_N] = { [BO_BASE] = "base_ms", [BO_MAX] = "max_ms" };

static int bo_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct pol_parse *pp = obj;
	struct or_retry_cfg *r = &pp->pol->retries;

	switch (field) {
	case BO_BASE:
		pp->base_line = node_line(v);
		return take_u32(c, v, 1, CFG_MAX_BACKOFF_BASE_MS, &r->backoff_base_ms);
	case BO_MAX:
		pp->max_line = node_line(v);
		return take_u32(c, v, 1, CFG_MAX_TIMEOUT_MS, &r->backoff_max_ms);
	}
	return 0;
}

static int take_backoff(struct cfg_ctx *c, const yaml_node_t *v, struct pol_parse *pp)
{
	struct or_retry_cfg *r = &pp->pol->retries;
	uint64_t max;
	int err;

	/* An alias may repeat the block: only this walk's keys count. */
	pp->base_line = 0;
	pp->max_line = 0;
	err = walk_map(c, v, bo_keys, BO_N, bo_field, pp);
	if (err)
		return err;
	if (!pp->max_line) {
		max = (uint64_t)r->backoff_base_ms * CFG_BACKOFF_MAX_FACTOR;
		r->backoff_max_ms = max < CFG_MAX_TIMEOUT_MS ? (uint32_t)max : CFG_MAX_TIMEOUT_MS;
		return 0;
	}
	if (r->backoff_max_ms < r->backoff_base_ms)
		return fail(c, pp->max_line, "max_ms %u is less than base_ms %u%s",
			    r->backoff_max_ms, r->backoff_base_ms,
			    pp->base_line ? "" : " (the default)");
	return 0;
}

enum { BUD_PERCENT, BUD_MIN_PER_S, BUD_N };
static const char *const bud_keys[BUD_N] = {
	[BUD_PERCENT] = "percent",
	[BUD_MIN_PER_S] = "min_retries_per_s",
};

static int bud_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_retry_cfg *r = &((struct pol_parse *)obj)->pol->retries;

	switch (field) {
	case BUD_PERCENT:
		return take_u32(c, v, 0, 100, &r->budget_percent);
	case BUD_MIN_PER_S:
		return take_u32(c, v, 0, CFG_MAX_RETRIES_PER_S, &r->budget_min_retries_per_s);
	}
	return 0;
}

enum {
	RT_ATTEMPTS,
	RT_RETRY_ON,
	RT_CODES,
	RT_PER_TRY_TIMEOUT,
	RT_BACKOFF,
	RT_BUDGET,
	RT_MAX_BODY,
	RT_N
};
static const char *const rt_keys[RT_N] = {
	[RT_ATTEMPTS] = "attempts",
	[RT_RETRY_ON] = "retry_on",
	[RT_CODES] = "retriable_status_codes",
	[RT_PER_TRY_TIMEOUT] = "per_try_timeout_ms",
	[RT_BACKOFF] = "backoff",
	[RT_BUDGET] = "budget",
	[RT_MAX_BODY] = "max_body_bytes",
};

static int rt_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct pol_parse *pp = obj;
	struct or_retry_cfg *r = &pp->pol->retries;
	size_t n;
	int err;

	switch (field) {
	case RT_ATTEMPTS:
		return take_u32(c, v, 0, CFG_MAX_ATTEMPTS, &r->attempts);
	case RT_RETRY_ON:
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(c, node_line(v), "expected a list, got %s", node_kind(v));
		/* The list replaces the default; an empty one retries on nothing. */
		pp->retry_on = 0;
		err = walk_seq(c, v, retry_on_item, pp);
		if (!err)
			r->retry_on = pp->retry_on;
		return err;
	case RT_CODES:
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(c, node_line(v), "expected a list, got %s", node_kind(v));
		n = seq_len(v);
		if (n > OR_MAX_RETRIABLE_CODES)
			return fail(c, node_line(v), "%zu status codes, at most %d", n,
				    OR_MAX_RETRIABLE_CODES);
		r->n_retriable_status_codes = 0;
		err = walk_seq(c, v, code_item, pp);
		if (!err)
			r->n_retriable_status_codes = n;
		return err;
	case RT_PER_TRY_TIMEOUT:
		pp->per_try_line = node_line(v);
		return take_u32(c, v, 0, CFG_MAX_TIMEOUT_MS, &r->per_try_timeout_ms);
	case RT_BACKOFF:
		return take_backoff(c, v, pp);
	case RT_BUDGET:
		return walk_map(c, v, bud_keys, BUD_N, bud_field, pp);
	case RT_MAX_BODY:
		return take_u32(c, v, 0, CFG_MAX_BODY_BYTES, &r->max_body_bytes);
	}
	return 0;
}

enum { CB_MAX_CONNECTIONS, CB_MAX_PENDING, CB_MAX_REQUESTS, CB_MAX_RETRIES, CB_N };
static const char *const cb_keys[CB_N] = {
	[CB_MAX_CONNECTIONS] = "max_connections",
	[CB_MAX_PENDING] = "max_pending_requests",
	[CB_MAX_REQUESTS] = "max_requests",
	[CB_MAX_RETRIES] = "max_retries",
};

static int cb_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_cb_cfg *cb = &((struct pol_parse *)obj)->pol->circuit_breaker;

	switch (field) {
	case CB_MAX_CONNECTIONS:
		return take_u32(c, v, 1, CFG_MAX_CONNECTIONS, &cb->max_connections);
	case CB_MAX_PENDING:
		return take_u32(c, v, 1, CFG_MAX_CONNECTIONS, &cb->max_pending_requests);
	case CB_MAX_REQUESTS:
		return take_u32(c, v, 1, CFG_MAX_CONNECTIONS, &cb->max_requests);
	case CB_MAX_RETRIES:
		/* 0 is meaningful: the breaker then allows no retries at all. */
		return take_u32(c, v, 0, CFG_MAX_CONNECTIONS, &cb->max_retries);
	}
	return 0;
}

enum { OD_5XX, OD_CONNECT, OD_INTERVAL, OD_BASE_EJECTION, OD_MAX_PERCENT, OD_N };
static const char *const od_keys[OD_N] = {
	[OD_5XX] = "consecutive_5xx",
	[OD_CONNECT] = "consecutive_connect_failures",
	[OD_INTERVAL] = "interval_ms",
	[OD_BASE_EJECTION] = "base_ejection_time_ms",
	[OD_MAX_PERCENT] = "max_ejection_percent",
};

static int od_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_outlier_cfg *od = &((struct pol_parse *)obj)->pol->outlier_detection;

	switch (field) {
	case OD_5XX:
		return take_u32(c, v, 0, CFG_MAX_CONSECUTIVE, &od->consecutive_5xx);
	case OD_CONNECT:
		return take_u32(c, v, 0, CFG_MAX_CONSECUTIVE, &od->consecutive_connect_failures);
	case OD_INTERVAL:
		return take_u32(c, v, 1, CFG_MAX_INTERVAL_MS, &od->interval_ms);
	case OD_BASE_EJECTION:
		return take_u32(c, v, 1, CFG_MAX_EJECTION_MS, &od->base_ejection_time_ms);
	case OD_MAX_PERCENT:
		return take_u32(c, v, 0, 100, &od->max_ejection_percent);
	}
	return 0;
}

enum {
	POL_CONNECT_TIMEOUT,
	POL_TIMEOUT,
	POL_IDLE_TIMEOUT,
	POL_LOAD_BALANCER,
	POL_RETRIES,
	POL_CIRCUIT_BREAKER,
	POL_OUTLIER_DETECTION,
	POL_N
};
static const char *const pol_keys[POL_N] = {
	[POL_CONNECT_TIMEOUT] = "connect_timeout_ms",
	[POL_TIMEOUT] = "timeout_ms",
	[POL_IDLE_TIMEOUT] = "idle_timeout_ms",
	[POL_LOAD_BALANCER] = "load_balancer",
	[POL_RETRIES] = "retries",
	[POL_CIRCUIT_BREAKER] = "circuit_breaker",
	[POL_OUTLIER_DETECTION] = "outlier_detection",
};

static int pol_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	static const enum or_lb_algo algos[] = { OR_LB_ROUND_ROBIN, OR_LB_LEAST_REQUEST,
						 OR_LB_RANDOM };
	struct pol_parse *pp = obj;
	struct or_policy_cfg *pol = pp->pol;
	char buf[CFG_SHOW_LEN];

	switch (field) {
	case POL_CONNECT_TIMEOUT:
		return take_u32(c, v, 1, CFG_MAX_TIMEOUT_MS, &pol->connect_timeout_ms);
	case POL_TIMEOUT:
		pp->timeout_line = node_line(v);
		return take_u32(c, v, 0, CFG_MAX_LONG_TIMEOUT_MS, &pol->timeout_ms);
	case POL_IDLE_TIMEOUT:
		return take_u32(c, v, 0, CFG_MAX_LONG_TIMEOUT_MS, &pol->idle_timeout_ms);
	case POL_LOAD_BALANCER:
		if (v->type != YAML_SCALAR_NODE)
			return fail(c, node_line(v), "expected a string, got %s", node_kind(v));
		for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++) {
			if (scalar_is(v, or_lb_algo_name(algos[i]))) {
				pol->load_balancer = algos[i];
				return 0;
			}
		}
		return fail(c, node_line(v),
			    "'%s' is not a load balancer (round_robin, least_request, random)",
			    show_node(v, buf, sizeof(buf)));
	case POL_RETRIES:
		return walk_map(c, v, rt_keys, RT_N, rt_field, pp);
	case POL_CIRCUIT_BREAKER:
		return walk_map(c, v, cb_keys, CB_N, cb_field, pp);
	case POL_OUTLIER_DETECTION:
		return walk_map(c, v, od_keys, OD_N, od_field, pp);
	}
	return 0;
}

/* The policy: block; *pol already holds the defaults. */
static int take_policy(struct cfg_ctx *c, const yaml_node_t *v, struct or_policy_cfg *pol)
{
	struct pol_parse pp = { .pol = pol };
	const struct or_retry_cfg *r = &pol->retries;
	size_t saved;
	int err;

	err = walk_map(c, v, pol_keys, POL_N, pol_field, &pp);
	if (err)
		return err;
	/* A try that may outlast the whole request would never time out on its own. */
	if (r->per_try_timeout_ms && pol->timeout_ms && r->per_try_timeout_ms > pol->timeout_ms) {
		saved = path_push_key(c, "retries");
		path_push_key(c, "per_try_timeout_ms");
		if (pp.timeout_line)
			err = fail(c, pp.per_try_line, "%u is longer than timeout_ms %u (line %d)",
				   r->per_try_timeout_ms, pol->timeout_ms, pp.timeout_line);
		else
			err = fail(c, pp.per_try_line,
				   "%u is longer than timeout_ms %u (the default)",
				   r->per_try_timeout_ms, pol->timeout_ms);
		path_pop(c, saved);
	}
	return err;
}

/* ---- authorization ----------------------------------------------------- */

/* One rule being read: which `from` key set its match, and its ports' lines. */
struct rule_parse {
	struct or_authz_rule *rule;
	bool has_action;
	int from_key; /* FROM_*, or -1 */
	int port_line[OR_AUTHZ_MAX_PORTS];
};

enum { FROM_SPIFFE, FROM_SPIFFE_PREFIX, FROM_NAMESPACE, FROM_N };
static const char *const from_keys[FROM_N] = {
	[FROM_SPIFFE] = "spiffe",
	[FROM_SPIFFE_PREFIX] = "spiffe_prefix",
	[FROM_NAMESPACE] = "namespace",
};

static int from_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	static const enum or_authz_match matches[FROM_N] = {
		[FROM_SPIFFE] = OR_AUTHZ_EXACT,
		[FROM_SPIFFE_PREFIX] = OR_AUTHZ_PREFIX,
		[FROM_NAMESPACE] = OR_AUTHZ_NAMESPACE,
	};
	struct rule_parse *rp = obj;
	struct or_authz_rule *r = rp->rule;
	char buf[CFG_SHOW_LEN];
	const char *bad;
	int err;

	/* One peer match per rule; two would leave the reader guessing and-or-or. */
	if (rp->from_key >= 0)
		return fail(c, node_line(v), "'%s' and '%s' in one rule; use one per rule",
			    from_keys[rp->from_key], from_keys[field]);
	rp->from_key = field;
	r->match = matches[field];
	if (field == FROM_NAMESPACE)
		return take_dns_label(c, v, &r->value);
	err = take_str(c, v, &r->value);
	if (err)
		return err;
	bad = spiffe_check(r->value, field == FROM_SPIFFE_PREFIX);
	if (bad)
		return fail(c, node_line(v), "'%s' is not a SPIFFE ID%s: it %s",
			    show(r->value, strlen(r->value), buf, sizeof(buf)),
			    field == FROM_SPIFFE_PREFIX ? " prefix" : "", bad);
	return 0;
}

static int rule_port_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *v, void *obj)
{
	struct rule_parse *rp = obj;
	struct or_authz_rule *r = rp->rule;
	uint16_t port;
	int err;

	err = take_port(c, v, 1, &port);
	if (err)
		return err;
	/* At most OR_AUTHZ_MAX_PORTS, checked before the walk: pairwise is cheap. */
	for (size_t j = 0; j < idx; j++)
		if (r->ports[j] == port)
			return fail(c, node_line(v), "duplicate port %u (first at line %d)", port,
				    rp->port_line[j]);
	r->ports[idx] = port;
	rp->port_line[idx] = node_line(v);
	return 0;
}

enum { RULE_ACTION, RULE_FROM, RULE_PORTS, RULE_N };
static const char *const rule_keys[RULE_N] = {
	[RULE_ACTION] = "action",
	[RULE_FROM] = "from",
	[RULE_PORTS] = "ports",
};

static int rule_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct rule_parse *rp = obj;
	struct or_authz_rule *r = rp->rule;
	char buf[CFG_SHOW_LEN];
	size_t n;
	int err;

	switch (field) {
	case RULE_ACTION:
		if (v->type != YAML_SCALAR_NODE)
			return fail(c, node_line(v), "expected a string, got %s", node_kind(v));
		if (scalar_is(v, "allow"))
			r->action = OR_AUTHZ_ALLOW;
		else if (scalar_is(v, "deny"))
			r->action = OR_AUTHZ_DENY;
		else
			return fail(c, node_line(v), "'%s' is not an action (allow, deny)",
				    show_node(v, buf, sizeof(buf)));
		rp->has_action = true;
		return 0;
	case RULE_FROM:
		err = walk_map(c, v, from_keys, FROM_N, from_field, rp);
		if (err)
			return err;
		/* `from: {}` reads like "from nobody"; absent is how to say "anyone". */
		if (rp->from_key < 0)
			return fail(c, node_line(v),
				    "needs one of spiffe, spiffe_prefix, namespace (leave from out for any peer)");
		return 0;
	case RULE_PORTS:
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(c, node_line(v), "expected a list, got %s", node_kind(v));
		n = seq_len(v);
		/* An empty list reads like "no port"; absent is how to say "any port". */
		if (!n)
			return fail(c, node_line(v),
				    "must not be empty (leave ports out for any port)");
		if (n > OR_AUTHZ_MAX_PORTS)
			return fail(c, node_line(v), "%zu ports, at most %d", n,
				    OR_AUTHZ_MAX_PORTS);
		err = walk_seq(c, v, rule_port_item, rp);
		if (!err)
			r->n_ports = n;
		return err;
	}
	return 0;
}

static int rule_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_authz_rule *r = &((struct or_svc_cfg *)obj)->authz[idx];
	struct rule_parse rp = { .rule = r, .from_key = -1 };
	int err;

	r->line = node_line(item);
	err = walk_map(c, item, rule_keys, RULE_N, rule_field, &rp);
	if (err)
		return err;
	/* No default: a rule's whole point is its action. */
	if (!rp.has_action)
		return fail(c, r->line, "action is required (allow, deny)");
	return 0;
}

/* ---- services, continued ----------------------------------------------- */

enum {
	SVC_NAME,
	SVC_NAMESPACE,
	SVC_VIP,
	SVC_MODE,
	SVC_PORTS,
	SVC_SELECTOR,
	SVC_ENDPOINTS,
	SVC_POLICY,
	SVC_MTLS,
	SVC_AUTHORIZATION,
	SVC_N
};
static const char *const svc_keys[SVC_N] = {
	[SVC_NAME] = "name",	     [SVC_NAMESPACE] = "namespace", [SVC_VIP] = "vip",
	[SVC_MODE] = "mode",	     [SVC_PORTS] = "ports",	    [SVC_SELECTOR] = "selector",
	[SVC_ENDPOINTS] = "endpoints", [SVC_POLICY] = "policy",
	[SVC_MTLS] = "mtls",	     [SVC_AUTHORIZATION] = "authorization",
};

static int svc_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_svc_cfg *svc = obj;
	char buf[CFG_SHOW_LEN];
	int err;

	switch (field) {
	case SVC_NAME:
		return take_dns_label(c, v, &svc->name);
	case SVC_NAMESPACE:
		return take_dns_label(c, v, &svc->namespace);
	case SVC_VIP:
		return take_ip(c, v, 0, &svc->vip);
	case SVC_MODE:
		if (v->type != YAML_SCALAR_NODE)
			return fail(c, node_line(v), "expected a string, got %s", node_kind(v));
		if (scalar_is(v, "proxy"))
			svc->mode = OR_SVC_PROXY;
		else if (scalar_is(v, "kernel"))
			svc->mode = OR_SVC_KERNEL;
		else
			return fail(c, node_line(v), "'%s' is not a mode (proxy, kernel)",
				    show_node(v, buf, sizeof(buf)));
		return 0;
	case SVC_PORTS:
		err = alloc_items(c, v, sizeof(*svc->ports), (void **)&svc->ports, &svc->n_ports);
		if (!err)
			err = walk_seq(c, v, port_item, svc);
		if (!err && !svc->n_ports)
			err = fail(c, node_line(v), "must not be empty");
		return err;
	case SVC_SELECTOR:
		err = take_labels(c, v, &svc->selector);
		/* An empty selector selects nothing, as in a Kubernetes Service. */
		svc->has_selector = !err && svc->selector.n > 0;
		return err;
	case SVC_ENDPOINTS:
		err = alloc_items(c, v, sizeof(*svc->endpoints), (void **)&svc->endpoints,
				  &svc->n_endpoints);
		if (err)
			return err;
		/* or_backends has this many slots per service. */
		if (svc->n_endpoints > OR_MAX_BACKENDS)
			return fail(c, node_line(v), "%zu endpoints, at most %d", svc->n_endpoints,
				    OR_MAX_BACKENDS);
		return walk_seq(c, v, ep_item, svc);
	case SVC_POLICY:
		return take_policy(c, v, &svc->policy);
	case SVC_MTLS:
		svc->mtls_set = true;
		return take_mtls(c, v, &svc->mtls);
	case SVC_AUTHORIZATION:
		err = alloc_items(c, v, sizeof(*svc->authz), (void **)&svc->authz, &svc->n_authz);
		return err ? err : walk_seq(c, v, rule_item, svc);
	}
	return 0;
}

static int svc_check_endpoints(struct cfg_ctx *c, struct or_svc_cfg *svc)
{
	char vip[OR_IP_STRLEN], ip[OR_IP_STRLEN];
	size_t i, j, saved;
	int err = 0;

	for (i = 0; i < svc->n_endpoints && !err; i++) {
		const struct or_endpoint_cfg *ep = &svc->endpoints[i];

		saved = path_push_key(c, "endpoints");
		path_push_index(c, i);
		if (ep->ip.family != svc->vip.family) {
			err = fail(c, ep->line, "%s and the VIP %s are not the same address family",
				   or_ip_str(&ep->ip, ip, sizeof(ip)),
				   or_ip_str(&svc->vip, vip, sizeof(vip)));
		}
		/* Bounded by OR_MAX_BACKENDS, so pairwise is cheap. */
		for (j = 0; j < i && !err; j++) {
			if (or_ip_eq(&svc->endpoints[j].ip, &ep->ip) &&
			    svc->endpoints[j].port == ep->port)
				err = fail(c, ep->line,
					   "duplicate endpoint %s port %u (first at line %d)",
					   or_ip_str(&ep->ip, ip, sizeof(ip)), ep->port,
					   svc->endpoints[j].line);
		}
		path_pop(c, saved);
	}
	return err;
}

static int svc_item(struct cfg_ctx *c, size_t idx, const yaml_node_t *item, void *obj)
{
	struct or_svc_cfg *svc = &((struct or_config *)obj)->services[idx];
	int err;

	svc->line = node_line(item);
	or_policy_defaults(&svc->policy);
	svc->mtls = OR_MTLS_PERMISSIVE;
	err = walk_map(c, item, svc_keys, SVC_N, svc_field, svc);
	if (err)
		return err;
	if (!svc->name)
		return fail(c, svc->line, "name is required");
	if (!svc->vip.family)
		return fail(c, svc->line, "vip is required");
	if (!svc->n_ports)
		return fail(c, svc->line, "ports is required");
	if (svc->has_selector && svc->n_endpoints)
		return fail(c, svc->line,
			    "has both a selector and endpoints; endpoints come from one or the other");
	err = default_str(c, &svc->namespace, "default");
	if (err)
		return err;
	err = check_qualified_len(c, svc->line, svc->namespace, svc->name);
	if (err)
		return err;
	return svc_check_endpoints(c, svc);
}

/* ---- top level --------------------------------------------------------- */

enum {
	TOP_NODE,
	TOP_PIN_DIR,
	TOP_CGROUP_ROOT,
	TOP_SELECTOR,
	TOP_MAX_CONNECTIONS,
	TOP_WORKERS,
	TOP_DRAIN_TIMEOUT_MS,
	TOP_LIMITS,
	TOP_ADMIN_ADDRESS,
	TOP_READY_ADDRESS,
	TOP_TRUST_DOMAIN,
	TOP_STATE_DIR,
	TOP_CA,
	TOP_SVID_TTL_S,
	TOP_KUBERNETES,
	TOP_NAMESPACES,
	TOP_PODS,
	TOP_SERVICES,
	TOP_N
};
static const char *const top_keys[TOP_N] = {
	[TOP_NODE] = "node",
	[TOP_PIN_DIR] = "pin_dir",
	[TOP_CGROUP_ROOT] = "cgroup_root",
	[TOP_SELECTOR] = "selector",
	[TOP_MAX_CONNECTIONS] = "max_connections",
	[TOP_WORKERS] = "workers",
	[TOP_DRAIN_TIMEOUT_MS] = "drain_timeout_ms",
	[TOP_LIMITS] = "limits",
	[TOP_ADMIN_ADDRESS] = "admin_address",
	[TOP_READY_ADDRESS] = "ready_address",
	[TOP_TRUST_DOMAIN] = "trust_domain",
	[TOP_STATE_DIR] = "state_dir",
	[TOP_CA] = "ca",
	[TOP_SVID_TTL_S] = "svid_ttl_s",
	[TOP_KUBERNETES] = "kubernetes",
	[TOP_NAMESPACES] = "namespaces",
	[TOP_PODS] = "pods",
	[TOP_SERVICES] = "services",
};

static int take_selector(struct cfg_ctx *c, const yaml_node_t *v, struct or_config *cfg)
{
	char *s = NULL, *eq, buf[CFG_SHOW_LEN];
	int err;

	err = take_str(c, v, &s);
	if (err)
		return err;
	eq = strchr(s, '=');
	if (!eq || eq == s || !eq[1] || strchr(eq + 1, '=')) {
		err = fail(c, node_line(v), "'%s' is not a label selector (key=value)",
			   show(s, strlen(s), buf, sizeof(buf)));
		goto out;
	}
	*eq = '\0';
	free(cfg->selector_key);
	free(cfg->selector_value);
	cfg->selector_key = strdup(s);
	cfg->selector_value = strdup(eq + 1);
	if (!cfg->selector_key || !cfg->selector_value)
		err = fail_nomem(c);
out:
	free(s);
	return err;
}

/*
 * "IP:PORT" or "[IPv6]:PORT", port 1-65535 in plain decimal. A bare IPv6
 * address with a port ("::1:80") cannot be told from an address, so IPv6
 * needs the brackets, as in a URL. Returns 0, or -EINVAL with *why set.
 */
static int hostport_parse(const char *s, size_t len, struct or_ip *ip, uint16_t *port,
			  const char **why)
{
	char text[OR_IP_STRLEN + 1];
	const char *host, *p, *colon;
	size_t hlen, plen, i;
	uint32_t v = 0;

	*why = "not an address (IP:PORT or [IPv6]:PORT)";
	if (memchr(s, '\0', len))
		return -EINVAL;
	colon = memrchr(s, ':', len);
	if (!colon)
		return -EINVAL;
	host = s;
	hlen = (size_t)(colon - s);
	if (hlen && host[0] == '[') {
		if (hlen < 2 || host[hlen - 1] != ']')
			return -EINVAL;
		host++;
		hlen -= 2;
	} else if (memchr(host, ':', hlen)) {
		*why = "an IPv6 address needs brackets: [IPv6]:PORT";
		return -EINVAL;
	}
	if (!hlen || hlen >= sizeof(text))
		return -EINVAL;
	memcpy(text, host, hlen);
	text[hlen] = '\0';
	if (or_ip_parse(text, ip))
		return -EINVAL;
	if ((ip->family == AF_INET6) != (host != s)) {
		*why = "brackets are for IPv6 addresses only";
		return -EINVAL;
	}
	p = colon + 1;
	plen = len - (size_t)(p - s);
	*why = "the port is not 1-65535";
	if (!plen || plen > 5 || p[0] == '0')
		return -EINVAL;
	for (i = 0; i < plen; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int take_hostport(struct cfg_ctx *c, const yaml_node_t *n, struct or_ip *ip,
			 uint16_t *port)
{
	char buf[CFG_SHOW_LEN];
	const char *why;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, node_line(n), "expected an address, got %s", node_kind(n));
	if (hostport_parse((const char *)n->data.scalar.value, n->data.scalar.length, ip, port,
			   &why))
		return fail(c, node_line(n), "'%s': %s", show_node(n, buf, sizeof(buf)), why);
	return 0;
}

enum { CA_CERT, CA_KEY, CA_N };
static const char *const ca_keys[CA_N] = { [CA_CERT] = "cert", [CA_KEY] = "key" };

static int ca_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_config *cfg = obj;

	switch (field) {
	case CA_CERT:
		return take_abs_path(c, v, &cfg->ca_cert);
	case CA_KEY:
		return take_abs_path(c, v, &cfg->ca_key);
	}
	return 0;
}

enum { KUBE_KUBECONFIG, KUBE_CONTEXT, KUBE_N };
static const char *const kube_keys[KUBE_N] = {
	[KUBE_KUBECONFIG] = "kubeconfig",
	[KUBE_CONTEXT] = "context",
};

static int kube_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_config *cfg = obj;

	switch (field) {
	case KUBE_KUBECONFIG:
		return take_abs_path(c, v, &cfg->kube_config);
	case KUBE_CONTEXT:
		return take_nonempty(c, v, &cfg->kube_context);
	}
	return 0;
}

/* limits: {header_timeout_ms, buffer_bytes} */
enum { LIMITS_HEADER_TIMEOUT_MS, LIMITS_BUFFER_BYTES, LIMITS_N };
static const char *const limits_keys[LIMITS_N] = {
	[LIMITS_HEADER_TIMEOUT_MS] = "header_timeout_ms",
	[LIMITS_BUFFER_BYTES] = "buffer_bytes",
};

static int limits_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_config *cfg = obj;

	switch (field) {
	case LIMITS_HEADER_TIMEOUT_MS:
		return take_u32(c, v, 100, CFG_MAX_HEADER_TIMEOUT_MS, &cfg->header_timeout_ms);
	case LIMITS_BUFFER_BYTES:
		return take_u32(c, v, CFG_MIN_BUFFER_BYTES, CFG_MAX_BUFFER_BYTES,
				&cfg->buffer_bytes);
	}
	return 0;
}

/*
 * kubernetes: {} (in-cluster credentials) or {kubeconfig: PATH, context: NAME}.
 * A null value (`kubernetes:`) is an absent key, as everywhere in the file.
 */
static int take_kubernetes(struct cfg_ctx *c, const yaml_node_t *v, struct or_config *cfg)
{
	int err;

	cfg->kubernetes = true;
	err = walk_map(c, v, kube_keys, KUBE_N, kube_field, cfg);
	if (err)
		return err;
	if (cfg->kube_context && !cfg->kube_config)
		return fail(c, node_line(v), "context is given without kubeconfig");
	return 0;
}

/* ca: {cert, key}: both, or neither for the CA outriderd keeps in state_dir. */
static int take_ca(struct cfg_ctx *c, const yaml_node_t *v, struct or_config *cfg)
{
	int err = walk_map(c, v, ca_keys, CA_N, ca_field, cfg);

	if (err)
		return err;
	if (!cfg->ca_cert != !cfg->ca_key)
		return fail(c, node_line(v),
			    "%s is given without %s: give both, or neither for the CA in state_dir",
			    cfg->ca_cert ? "cert" : "key", cfg->ca_cert ? "key" : "cert");
	return 0;
}

static bool ip_unspecified(const struct or_ip *ip)
{
	static const struct in6_addr any6 = IN6ADDR_ANY_INIT;

	if (ip->family == AF_INET)
		return ip->v4.s_addr == htonl(INADDR_ANY);
	return memcmp(&ip->v6, &any6, sizeof(any6)) == 0;
}

/*
 * The two listeners must be able to bind at once: the same port on the
 * same address, or on a wildcard address (which, for "::" with Linux's
 * default bindv6only=0, covers IPv4 too), would fail at startup instead.
 */
static int check_listeners(struct cfg_ctx *c, struct or_config *cfg)
{
	char a[OR_IP_STRLEN], b[OR_IP_STRLEN];
	bool later_is_ready = c->ready_line >= c->admin_line;
	int line = later_is_ready ? c->ready_line : c->admin_line;
	int other = later_is_ready ? c->admin_line : c->ready_line;
	char where[32] = "the default";
	size_t saved;
	int err;

	if (cfg->admin_port != cfg->ready_port)
		return 0;
	if (!or_ip_eq(&cfg->admin_ip, &cfg->ready_ip) && !ip_unspecified(&cfg->admin_ip) &&
	    !ip_unspecified(&cfg->ready_ip))
		return 0;
	if (other)
		snprintf(where, sizeof(where), "line %d", other);
	saved = path_push_key(c, later_is_ready ? "ready_address" : "admin_address");
	err = fail(c, line, "%s port %u overlaps %s %s port %u (%s); they must differ",
		   or_ip_str(later_is_ready ? &cfg->ready_ip : &cfg->admin_ip, a, sizeof(a)),
		   cfg->admin_port, later_is_ready ? "admin_address" : "ready_address",
		   or_ip_str(later_is_ready ? &cfg->admin_ip : &cfg->ready_ip, b, sizeof(b)),
		   cfg->admin_port, where);
	path_pop(c, saved);
	return err;
}

static int top_field(struct cfg_ctx *c, int field, const yaml_node_t *v, void *obj)
{
	struct or_config *cfg = obj;
	int err;

	switch (field) {
	case TOP_NODE:
		return take_nonempty(c, v, &cfg->node);
	case TOP_PIN_DIR:
		return take_abs_path(c, v, &cfg->pin_dir);
	case TOP_CGROUP_ROOT:
		if (scalar_is(v, "auto"))
			return take_str(c, v, &cfg->cgroup_root);
		return take_abs_path(c, v, &cfg->cgroup_root);
	case TOP_SELECTOR:
		return take_selector(c, v, cfg);
	case TOP_MAX_CONNECTIONS:
		return take_u32(c, v, 1, CFG_MAX_CONNECTIONS, &cfg->max_connections);
	case TOP_WORKERS:
		return take_u32(c, v, 0, CFG_MAX_WORKERS, &cfg->workers);
	case TOP_DRAIN_TIMEOUT_MS:
		cfg->drain_set = true;
		return take_u32(c, v, 0, OR_MAX_DRAIN_TIMEOUT_MS, &cfg->drain_timeout_ms);
	case TOP_LIMITS:
		return walk_map(c, v, limits_keys, LIMITS_N, limits_field, cfg);
	case TOP_ADMIN_ADDRESS:
		c->admin_line = node_line(v);
		return take_hostport(c, v, &cfg->admin_ip, &cfg->admin_port);
	case TOP_READY_ADDRESS:
		c->ready_line = node_line(v);
		return take_hostport(c, v, &cfg->ready_ip, &cfg->ready_port);
	case TOP_TRUST_DOMAIN:
		return take_trust_domain(c, v, &cfg->trust_domain);
	case TOP_STATE_DIR:
		return take_abs_path(c, v, &cfg->state_dir);
	case TOP_CA:
		return take_ca(c, v, cfg);
	case TOP_SVID_TTL_S:
		return take_u32(c, v, OR_MIN_SVID_TTL_S, OR_MAX_SVID_TTL_S, &cfg->svid_ttl_s);
	case TOP_KUBERNETES:
		return take_kubernetes(c, v, cfg);
	case TOP_NAMESPACES:
		err = alloc_items(c, v, sizeof(*cfg->namespaces), (void **)&cfg->namespaces,
				  &cfg->n_namespaces);
		return err ? err : walk_seq(c, v, ns_item, cfg);
	case TOP_PODS:
		err = alloc_items(c, v, sizeof(*cfg->pods), (void **)&cfg->pods, &cfg->n_pods);
		return err ? err : walk_seq(c, v, pod_item, cfg);
	case TOP_SERVICES:
		err = alloc_items(c, v, sizeof(*cfg->services), (void **)&cfg->services,
				  &cfg->n_services);
		return err ? err : walk_seq(c, v, svc_item, cfg);
	}
	return 0;
}

/* Checks that need the whole file: the top-level node, and uniqueness. */
static int check_pods_node(struct cfg_ctx *c, struct or_config *cfg)
{
	int err = 0;

	for (size_t i = 0; i < cfg->n_pods && !err; i++) {
		struct or_pod_cfg *pod = &cfg->pods[i];
		size_t saved;

		err = default_str(c, &pod->node, cfg->node);
		if (err || !or_pod_local(cfg, pod))
			continue;
		/* The agent enters these for its own pods; other nodes' pods are only endpoints. */
		saved = path_push_key(c, "pods");
		path_push_index(c, i);
		if (!pod->netns)
			err = fail(c, pod->line, "netns is required for a pod on this node (%s)",
				   cfg->node);
		else if (!pod->cgroup)
			err = fail(c, pod->line, "cgroup is required for a pod on this node (%s)",
				   cfg->node);
		path_pop(c, saved);
	}
	return err;
}

/*
 * Each pod's SPIFFE ID, spiffe://<trust_domain>/ns/<ns>/sa/<sa>, has to fit
 * an SVID; the trust domain may come after the pods in the file.
 */
static int check_pods_spiffe(struct cfg_ctx *c, struct or_config *cfg)
{
	size_t base = strlen(SPIFFE_SCHEME) + strlen(cfg->trust_domain) + strlen("/ns//sa/");
	int err = 0;

	for (size_t i = 0; i < cfg->n_pods && !err; i++) {
		const struct or_pod_cfg *pod = &cfg->pods[i];
		size_t len = base + strlen(pod->namespace) + strlen(pod->service_account);
		size_t saved;

		if (len <= CFG_SPIFFE_ID_MAX)
			continue;
		saved = path_push_key(c, "pods");
		path_push_index(c, i);
		err = fail(c, pod->line,
			   "SPIFFE ID spiffe://%s/ns/%s/sa/%s would be %zu characters, at most %d",
			   cfg->trust_domain, pod->namespace, pod->service_account, len,
			   CFG_SPIFFE_ID_MAX);
		path_pop(c, saved);
	}
	return err;
}

static int check_unique(struct cfg_ctx *c, struct or_config *cfg)
{
	const struct dup *a, *b;
	size_t i, j, n, max;
	struct dup *v;
	char ip[OR_IP_STRLEN];
	int err = 0;

	max = cfg->n_namespaces > cfg->n_pods ? cfg->n_namespaces : cfg->n_pods;
	if (cfg->n_services > max)
		max = cfg->n_services;
	n = 0;
	for (i = 0; i < cfg->n_services; i++)
		n += cfg->services[i].n_ports;
	/* Each service port is one or_services entry: name the first that does not fit. */
	if (n > OR_MAX_SERVICES) {
		size_t k = OR_MAX_SERVICES;

		for (i = 0; k >= cfg->services[i].n_ports; i++)
			k -= cfg->services[i].n_ports;
		return fail(c, cfg->services[i].ports[k].line,
			    "services[%zu].ports[%zu]: %zu service ports, at most %d fit", i, k, n,
			    OR_MAX_SERVICES);
	}
	if (n > max)
		max = n;
	if (!max)
		return 0;
	v = calloc(max, sizeof(*v));
	if (!v)
		return fail_nomem(c);

	for (i = 0; i < cfg->n_namespaces; i++)
		v[i] = (struct dup){ .s1 = cfg->namespaces[i].name, .idx = i,
				     .line = cfg->namespaces[i].line };
	if (find_dup(v, cfg->n_namespaces, &a, &b)) {
		err = fail(c, b->line, "namespaces[%zu]: duplicate namespace %s (first at line %d)",
			   b->idx, b->s1, a->line);
		goto out;
	}

	for (i = 0; i < cfg->n_pods; i++)
		v[i] = (struct dup){ .s1 = cfg->pods[i].namespace, .s2 = cfg->pods[i].name,
				     .idx = i, .line = cfg->pods[i].line };
	if (find_dup(v, cfg->n_pods, &a, &b)) {
		err = fail(c, b->line, "pods[%zu]: duplicate pod %s/%s (first at line %d)", b->idx,
			   b->s1, b->s2, a->line);
		goto out;
	}

	for (i = 0; i < cfg->n_pods; i++) {
		v[i] = (struct dup){ .idx = i, .line = cfg->pods[i].line };
		dup_set_ip(&v[i], &cfg->pods[i].ip, 0);
	}
	if (find_dup(v, cfg->n_pods, &a, &b)) {
		err = fail(c, b->line, "pods[%zu]: ip %s is already used by pods[%zu] at line %d",
			   b->idx, or_ip_str(&cfg->pods[b->idx].ip, ip, sizeof(ip)), a->idx,
			   a->line);
		goto out;
	}

	n = 0;
	for (i = 0; i < cfg->n_pods; i++) {
		if (!cfg->pods[i].ip6.family)
			continue;
		v[n] = (struct dup){ .idx = i, .line = cfg->pods[i].line };
		dup_set_ip(&v[n++], &cfg->pods[i].ip6, 0);
	}
	if (find_dup(v, n, &a, &b)) {
		err = fail(c, b->line, "pods[%zu]: ip6 %s is already used by pods[%zu] at line %d",
			   b->idx, or_ip_str(&cfg->pods[b->idx].ip6, ip, sizeof(ip)), a->idx,
			   a->line);
		goto out;
	}

	for (i = 0; i < cfg->n_services; i++)
		v[i] = (struct dup){ .s1 = cfg->services[i].namespace, .s2 = cfg->services[i].name,
				     .idx = i, .line = cfg->services[i].line };
	if (find_dup(v, cfg->n_services, &a, &b)) {
		err = fail(c, b->line, "services[%zu]: duplicate service %s/%s (first at line %d)",
			   b->idx, b->s1, b->s2, a->line);
		goto out;
	}

	/* idx numbers the ports in file order; line is the port's own line. */
	n = 0;
	for (i = 0; i < cfg->n_services; i++) {
		for (j = 0; j < cfg->services[i].n_ports; j++) {
			v[n] = (struct dup){ .idx = n, .line = cfg->services[i].ports[j].line };
			dup_set_ip(&v[n++], &cfg->services[i].vip, cfg->services[i].ports[j].port);
		}
	}
	if (find_dup(v, n, &a, &b)) {
		size_t si = 0, pi = b->idx, fi = 0, fpi = a->idx;

		while (pi >= cfg->services[si].n_ports)
			pi -= cfg->services[si++].n_ports;
		while (fpi >= cfg->services[fi].n_ports)
			fpi -= cfg->services[fi++].n_ports;
		err = fail(c, b->line,
			   "services[%zu].ports[%zu]: %s port %u is already used by services[%zu].ports[%zu] at line %d",
			   si, pi, or_ip_str(&cfg->services[si].vip, ip, sizeof(ip)),
			   cfg->services[si].ports[pi].port, fi, fpi, a->line);
	}
out:
	free(v);
	return err;
}

static int default_hostport(struct cfg_ctx *c, struct or_ip *ip, uint16_t *port,
			    const char *value)
{
	const char *why;

	if (ip->family)
		return 0;
	/* Only a broken OR_DEFAULT_*_ADDRESS gets here. */
	if (hostport_parse(value, strlen(value), ip, port, &why))
		return fail(c, 1, "built-in default '%s': %s", value, why);
	return 0;
}

static int set_defaults(struct cfg_ctx *c, struct or_config *cfg)
{
	int err;

	err = default_str(c, &cfg->pin_dir, OR_DEFAULT_PIN_DIR);
	if (!err)
		err = default_str(c, &cfg->cgroup_root, "auto");
	if (!err)
		err = default_str(c, &cfg->selector_key, OR_DEFAULT_SELECTOR_KEY);
	if (!err)
		err = default_str(c, &cfg->selector_value, OR_DEFAULT_SELECTOR_VALUE);
	if (!cfg->max_connections)
		cfg->max_connections = OR_DEFAULT_MAX_CONNECTIONS;
	if (!cfg->drain_set)
		cfg->drain_timeout_ms = OR_DEFAULT_DRAIN_TIMEOUT_MS;
	if (!cfg->header_timeout_ms)
		cfg->header_timeout_ms = OR_DEFAULT_HEADER_TIMEOUT_MS;
	if (!cfg->buffer_bytes)
		cfg->buffer_bytes = OR_DEFAULT_BUFFER_BYTES;
	if (!err)
		err = default_str(c, &cfg->trust_domain, OR_DEFAULT_TRUST_DOMAIN);
	if (!err)
		err = default_str(c, &cfg->state_dir, OR_DEFAULT_STATE_DIR);
	if (!cfg->svid_ttl_s)
		cfg->svid_ttl_s = OR_DEFAULT_SVID_TTL_S;
	if (!err)
		err = default_hostport(c, &cfg->admin_ip, &cfg->admin_port,
				       OR_DEFAULT_ADMIN_ADDRESS);
	if (!err)
		err = default_hostport(c, &cfg->ready_ip, &cfg->ready_port,
				       OR_DEFAULT_READY_ADDRESS);
	return err;
}

static int load_root(struct cfg_ctx *c, const yaml_node_t *root, struct or_config *cfg)
{
	int err;

	/* "---" alone: libyaml puts the empty scalar after it; the file has nothing. */
	if (root->type == YAML_SCALAR_NODE && is_null(root))
		return fail(c, 1, "no configuration");
	if (root->type != YAML_MAPPING_NODE)
		return fail(c, node_line(root), "expected a mapping at the top level, got %s",
			    node_kind(root));
	err = walk_map(c, root, top_keys, TOP_N, top_field, cfg);
	if (err)
		return err;
	if (!cfg->node)
		return fail(c, node_line(root), "node is required");
	err = set_defaults(c, cfg);
	if (!err)
		err = check_listeners(c, cfg);
	if (!err)
		err = check_pods_node(c, cfg);
	if (!err)
		err = check_pods_spiffe(c, cfg);
	if (!err)
		err = check_unique(c, cfg);
	return err;
}

/* Reader errors carry a byte offset, not a mark: count the lines ourselves. */
static int offset_line(const char *buf, size_t len, size_t off)
{
	int line = 1;

	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++)
		line += buf[i] == '\n';
	return line;
}

static int yaml_fail(struct cfg_ctx *c, const yaml_parser_t *p, const char *buf, size_t len)
{
	int line;

	if (p->error == YAML_MEMORY_ERROR)
		return fail_nomem(c);
	if (p->error == YAML_READER_ERROR)
		line = offset_line(buf, len, p->problem_offset);
	else
		line = (int)p->problem_mark.line + 1;
	if (p->context)
		return fail(c, line, "%s (%s at line %d)", p->problem ? p->problem : "syntax error",
			    p->context, (int)p->context_mark.line + 1);
	return fail(c, line, "%s", p->problem ? p->problem : "syntax error");
}

int or_config_load_buf(const char *name, const char *buf, size_t len, struct or_config **out,
		       char *err, size_t errlen)
{
	struct cfg_ctx c = { .file = name ? name : "<config>", .err = err, .errlen = errlen };
	yaml_document_t doc, extra;
	struct or_config *cfg;
	yaml_parser_t parser;
	yaml_node_t *root;
	int ret;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!buf)
		len = 0;
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(c.file)) || !(cfg->text = malloc(len + 1))) {
		ret = fail_nomem(&c);
		goto err_cfg;
	}
	memcpy(cfg->text, buf ? buf : "", len);
	cfg->text[len] = '\0';
	cfg->text_len = len;
	if (!yaml_parser_initialize(&parser)) {
		ret = fail_nomem(&c);
		goto err_cfg;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""), len);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = yaml_fail(&c, &parser, buf, len);
		goto err_parser;
	}
	c.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root) {
		ret = fail(&c, 1, "no configuration");
		goto err_doc;
	}
	/* A second document would be silently ignored; say so instead. */
	if (!yaml_parser_load(&parser, &extra)) {
		ret = yaml_fail(&c, &parser, buf, len);
		goto err_doc;
	}
	root = yaml_document_get_root_node(&extra);
	if (root) {
		ret = fail(&c, node_line(root), "more than one YAML document");
		yaml_document_delete(&extra);
		goto err_doc;
	}
	yaml_document_delete(&extra);

	ret = load_root(&c, yaml_document_get_root_node(&doc), cfg);
	if (ret)
		goto err_doc;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	*out = cfg;
	return 0;

err_doc:
	yaml_document_delete(&doc);
err_parser:
	yaml_parser_delete(&parser);
err_cfg:
	or_config_free(cfg);
	return ret;
}

int or_config_load_file(const char *path, struct or_config **out, char *err, size_t errlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	FILE *f;
	int ret;

	*out = NULL;
	f = fopen(path, "re");
	if (!f) {
		ret = -errno;
		goto err_open;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			if (cap >= CFG_MAX_FILE) {
				ret = -EFBIG;
				goto err_read;
			}
			cap = cap ? cap * 2 : 16384;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				ret = -ENOMEM;
				goto err_read;
			}
			buf = nbuf;
		}
		errno = 0;
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				ret = errno ? -errno : -EIO; /* EISDIR for a directory */
				goto err_read;
			}
			break;
		}
	}
	fclose(f);
	ret = or_config_load_buf(path, buf, len, out, err, errlen);
	free(buf);
	return ret;

err_read:
	free(buf);
	fclose(f);
err_open:
	if (err && errlen)
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
	return ret;
}

void or_config_free(struct or_config *cfg)
{
	size_t i, j;

	if (!cfg)
		return;
	for (i = 0; i < cfg->n_namespaces; i++) {
		free(cfg->namespaces[i].name);
		or_labels_free(&cfg->namespaces[i].labels);
	}
	free(cfg->namespaces);
	for (i = 0; i < cfg->n_pods; i++) {
		struct or_pod_cfg *pod = &cfg->pods[i];

		free(pod->name);
		free(pod->namespace);
		free(pod->node);
		or_labels_free(&pod->labels);
		free(pod->netns);
		free(pod->cgroup);
		free(pod->service_account);
	}
	free(cfg->pods);
	for (i = 0; i < cfg->n_services; i++) {
		struct or_svc_cfg *svc = &cfg->services[i];

		free(svc->name);
		free(svc->namespace);
		free(svc->ports);
		or_labels_free(&svc->selector);
		for (j = 0; j < svc->n_endpoints; j++)
			free(svc->endpoints[j].node);
		free(svc->endpoints);
		for (j = 0; j < svc->n_authz; j++)
			free(svc->authz[j].value);
		free(svc->authz);
	}
	free(cfg->services);
	free(cfg->path);
	free(cfg->node);
	free(cfg->pin_dir);
	free(cfg->cgroup_root);
	free(cfg->selector_key);
	free(cfg->selector_value);
	free(cfg->trust_domain);
	free(cfg->state_dir);
	free(cfg->ca_cert);
	free(cfg->ca_key);
	free(cfg->kube_config);
	free(cfg->kube_context);
	free(cfg->text);
	free(cfg);
}

const char *or_labels_get(const struct or_labels *labels, const char *key)
{
	if (!labels || !key)
		return NULL;
	for (size_t i = 0; i < labels->n; i++)
		if (strcmp(labels->v[i].key, key) == 0)
			return labels->v[i].value;
	return NULL;
}

bool or_labels_match(const struct or_labels *have, const struct or_labels *selector)
{
	if (!selector)
		return true;
	for (size_t i = 0; i < selector->n; i++) {
		const char *v = or_labels_get(have, selector->v[i].key);

		if (!v || strcmp(v, selector->v[i].value) != 0)
			return false;
	}
	return true;
}

bool or_pod_local(const struct or_config *cfg, const struct or_pod_cfg *pod)
{
	return cfg && pod && cfg->node && pod->node && strcmp(cfg->node, pod->node) == 0;
}

static bool has_label(const struct or_labels *labels, const char *key, const char *value)
{
	const char *v = or_labels_get(labels, key);

	return v && value && strcmp(v, value) == 0;
}

bool or_pod_enrolled(const struct or_config *cfg, const struct or_pod_cfg *pod)
{
	if (!or_pod_local(cfg, pod))
		return false;
	if (has_label(&pod->labels, cfg->selector_key, cfg->selector_value))
		return true;
	if (has_label(&pod->labels, cfg->selector_key, OR_OPT_OUT_VALUE))
		return false;
	for (size_t i = 0; i < cfg->n_namespaces; i++) {
		const struct or_ns_cfg *ns = &cfg->namespaces[i];

		if (ns->name && pod->namespace && strcmp(ns->name, pod->namespace) == 0)
			return has_label(&ns->labels, cfg->selector_key, cfg->selector_value);
	}
	return false;
}

const char *or_lb_algo_name(enum or_lb_algo algo)
{
	switch (algo) {
	case OR_LB_ROUND_ROBIN:
		return "round_robin";
	case OR_LB_LEAST_REQUEST:
		return "least_request";
	case OR_LB_RANDOM:
		return "random";
	}
	return "unknown";
}

const char *or_mtls_mode_name(enum or_mtls_mode mode)
{
	switch (mode) {
	case OR_MTLS_DISABLED:
		return "disabled";
	case OR_MTLS_PERMISSIVE:
		return "permissive";
	case OR_MTLS_STRICT:
		return "strict";
	}
	return "unknown";
}

const char *or_agent_down_name(enum or_agent_down mode)
{
	return mode == OR_AGENT_DOWN_FAIL_OPEN ? "fail-open" : "fail-closed";
}

const struct or_ns_cfg *or_config_namespace(const struct or_config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_namespaces; i++)
		if (cfg->namespaces[i].name && strcmp(cfg->namespaces[i].name, name) == 0)
			return &cfg->namespaces[i];
	return NULL;
}

enum or_mtls_mode or_svc_mtls(const struct or_config *cfg, const struct or_svc_cfg *svc)
{
	const struct or_ns_cfg *ns;

	if (svc->mtls_set)
		return svc->mtls;
	ns = or_config_namespace(cfg, svc->namespace);
	return ns ? ns->mtls : OR_MTLS_PERMISSIVE;
}
