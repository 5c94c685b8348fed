// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kubernetes API credentials, from a kubeconfig or from the pod's service
 * account. The kubeconfig is loaded whole as a libyaml node tree, so errors
 * carry a line number. Only three fixed levels get walked: the top-level lists,
 * one named entry, and that entry's body. Aliases therefore cannot make the
 * walk expensive.
 *
 * The meaning follows kubectl. Empty or null fields count as unset, and
 * unknown keys are ignored. A *-data field wins over its file twin. Relative
 * paths are resolved against the kubeconfig's own directory.
 *
 * Tokens and private keys pass through here. Every buffer that held the file
 * or a decoded secret is wiped before it is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "yaml_node.h"
#include <openssl/evp.h>

#include "kubeconfig.h"

#define KC_MAX_FILE (16u << 20)
#define KC_MAX_TOKEN (64u << 10)
#define KC_SHOW_LEN 96
#define KC_WHERE_LEN 128
#define KC_USE_INSTEAD "use a token, tokenFile or client certificate"

struct kc_ctx {
	const char *file;
	yaml_document_t *doc;
	char *dir; /* the kubeconfig's directory, absolute */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen,
							   const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Text that came from the file, the command line or the environment and now
 * goes into a message. Keep it bounded and printable, because messages end up
 * in logfmt lines and terminals.
 */
static const char *show(const char *s, char *buf, size_t size)
{
	size_t i, o = 0;

	for (i = 0; s[i] && o + 4 < size; i++) {
		unsigned char ch = (unsigned char)s[i];

		buf[o++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : '?';
	}
	if (s[i]) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void free_secret(char *s, size_t len)
{
	if (!s)
		return;
	explicit_bzero(s, len);
	free(s);
}

/*
 * Reads a whole file of at most `max` bytes into *out, NUL-terminated.
 * Returns 0 or -errno (-EFBIG when it is longer). The caller owns *out and
 * should free it with free_secret(*out, *len).
 */
static int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	ssize_t got;
	int fd, ret;

	*out = NULL;
	*out_len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	for (;;) {
		if (len + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;

			/* max + 1 bytes of data are enough to know it is too long. */
			if (ncap > max + 2)
				ncap = max + 2;
			/* Not realloc: it would leave an unwiped copy of a secret behind. */
			nbuf = malloc(ncap);
			if (!nbuf) {
				ret = -ENOMEM;
				goto err_buf;
			}
			if (buf)
				memcpy(nbuf, buf, len);
			free_secret(buf, cap);
			buf = nbuf;
			cap = ncap;
		}
		got = read(fd, buf + len, cap - len - 1);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			ret = -errno; /* EISDIR for a directory */
			goto err_buf;
		}
		if (got == 0)
			break;
		len += (size_t)got;
		if (len > max) {
			ret = -EFBIG;
			goto err_buf;
		}
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;

err_buf:
	free_secret(buf, cap);
	close(fd);
	return ret;
}

/* "dir/name" in a new string; it adds no second '/' when dir ends with one. */
static char *join(const char *dir, const char *name)
{
	size_t dl = strlen(dir);
	char *s;

	if (asprintf(&s, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name) == -1)
		return NULL;
	return s;
}

/*
 * The absolute directory of `path`, without symlinks resolved. kubectl uses
 * filepath.Abs the same way. Returns 0 or -errno; *dir is malloc'd.
 */
static int abs_dir(const char *path, char **dir)
{
	const char *slash = strrchr(path, '/'), *rel = path;
	size_t rel_len;
	char *cwd;

	*dir = NULL;
	if (path[0] == '/') {
		*dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
		return *dir ? 0 : -ENOMEM;
	}
	rel_len = slash ? (size_t)(slash - path) : 0;
	while (rel_len >= 2 && rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		rel_len -= 2;
		while (rel_len && *rel == '/')
			rel++, rel_len--;
	}
	if (rel_len == 1 && rel[0] == '.')
		rel_len = 0;
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return -errno;
	if (!rel_len) {
		*dir = cwd;
		return 0;
	}
	if (asprintf(dir, "%s/%.*s", cwd, (int)rel_len, rel) == -1)
		*dir = NULL;
	free(cwd);
	return *dir ? 0 : -ENOMEM;
}

/* ---- the YAML tree ---- */


/* Writes "FILE:LINE: msg" in the context's buffer, or "FILE: msg" when `at` is NULL. */
__attribute__((format(printf, 4, 5))) static int kc_fail(const struct kc_ctx *c, int ret,
							  const yaml_node_t *at, const char *fmt,
							  ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at)
		set_err(c->err, c->errlen, "%s:%d: %s", c->file, node_line(at), msg);
	else
		set_err(c->err, c->errlen, "%s: %s", c->file, msg);
	return ret;
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

static int yaml_fail(const struct kc_ctx *c, const yaml_parser_t *p, const char *buf, size_t len)
{
	const char *problem = p->problem ? p->problem : "syntax error";
	int line;

	if (p->error == YAML_MEMORY_ERROR)
		return kc_fail(c, -ENOMEM, NULL, "out of memory");
	if (p->error == YAML_READER_ERROR)
		line = offset_line(buf, len, p->problem_offset);
	else
		line = (int)p->problem_mark.line + 1;
	if (p->context)
		set_err(c->err, c->errlen, "%s:%d: %s (%s at line %d)", c->file, line, problem,
			p->context, (int)p->context_mark.line + 1);
	else
		set_err(c->err, c->errlen, "%s:%d: %s", c->file, line, problem);
	return -EINVAL;
}

/* YAML's null (`key:`, `~`, `null`) means unset, the same as for kubectl. */
static bool is_null(const yaml_node_t *n)
{
	const char *v;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       !memcmp(n->data.scalar.value, s, len);
}

/*
 * The value under `key` in `map`. It is NULL when map is no mapping, the key
 * is missing, or the value is null. *at, when wanted, gets the key's node,
 * the line to name in a message about that field.
 */
static yaml_node_t *map_get(const struct kc_ctx *c, const yaml_node_t *map, const char *key,
			    const yaml_node_t **at)
{
	yaml_node_pair_t *p;

	if (at)
		*at = NULL;
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *v;

		if (!scalar_is(k, key))
			continue;
		v = yaml_document_get_node(c->doc, p->value);
		if (!v || is_null(v))
			return NULL;
		if (at)
			*at = k;
		return v;
	}
	return NULL;
}

/*
 * A string field of `map`. *s points into the document. It is NULL when the
 * field is absent, null or "", because kubectl reads all three as unset.
 * `where` ("cluster \"prod\"") prefixes errors; *at, when wanted, gets the
 * key's node for a line.
 */
static int get_str(const struct kc_ctx *c, const yaml_node_t *map, const char *key,
		   const char *where, const char **s, const yaml_node_t **at)
{
	const yaml_node_t *k, *n = map_get(c, map, key, &k);

	*s = NULL;
	if (at)
		*at = k;
	if (!n)
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kc_fail(c, -EINVAL, k, "%s%s%s must be a string, not %s", where,
			       *where ? ": " : "", key, node_kind(n));
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return kc_fail(c, -EINVAL, k, "%s%s%s contains a NUL byte", where,
			       *where ? ": " : "", key);
	if (n->data.scalar.length)
		*s = (const char *)n->data.scalar.value;
	return 0;
}

/*
 * Finds the entry named `name` in the top-level list `list` ("clusters") and
 * sets *body to its `key` mapping ("cluster"). *body is NULL when the entry
 * has none. A missing name, a name given twice, or a list of the wrong shape
 * gives -EINVAL. `suffix` goes after the not-found message.
 */
static int find_named(const struct kc_ctx *c, const yaml_node_t *root, const char *list,
		      const char *key, const char *name, const char *suffix,
		      const yaml_node_t **body)
{
	const yaml_node_t *at, *seq = map_get(c, root, list, &at), *found = NULL;
	char shown[KC_SHOW_LEN];
	yaml_node_item_t *it;

	*body = NULL;
	if (seq && seq->type != YAML_SEQUENCE_NODE)
		return kc_fail(c, -EINVAL, at, "%s must be a list, not %s", list,
			       node_kind(seq));
	for (it = seq ? seq->data.sequence.items.start : NULL;
	     it && it < seq->data.sequence.items.top; it++) {
		const yaml_node_t *item = yaml_document_get_node(c->doc, *it);

		if (!item || item->type != YAML_MAPPING_NODE)
			return kc_fail(c, -EINVAL, item, "%s: each entry must be a mapping", list);
		if (!scalar_is(map_get(c, item, "name", NULL), name))
			continue;
		if (found)
			return kc_fail(c, -EINVAL, item, "%s \"%s\" is defined twice", key,
				       show(name, shown, sizeof(shown)));
		found = item;
	}
	if (!found)
		return kc_fail(c, -EINVAL, NULL, "%s \"%s\" not found%s", key,
			       show(name, shown, sizeof(shown)), suffix);
	*body = map_get(c, found, key, &at);
	if (*body && (*body)->type != YAML_MAPPING_NODE)
		return kc_fail(c, -EINVAL, at, "%s \"%s\": %s must be a mapping, not %s", key,
			       show(name, shown, sizeof(shown)), key, node_kind(*body));
	return 0;
}

/* ---- field values ---- */

static bool b64_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '+' || ch == '/';
}

/*
 * Decodes padded standard base64, the form Go's encoding/base64 writes. Line
 * breaks and spaces (from folded YAML) are skipped. EVP_DecodeBlock cannot be
 * trusted with the rest. It accepts '=' in the middle, and it counts padding
 * as zero bytes. So the alphabet and the padding are checked here, and the
 * padding is taken off the length. *out gets exactly *out_len bytes plus a NUL
 * that *out_len does not count. Returns 0, -EINVAL or -ENOMEM.
 */
static int b64_decode(const char *s, size_t len, char **out, size_t *out_len)
{
	size_t i, n = 0, pad = 0;
	char *clean, *dec;
	int got, ret;

	*out = NULL;
	*out_len = 0;
	if (len > KC_MAX_FILE)
		return -EINVAL;
	clean = malloc(len + 1);
	if (!clean)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')
			continue;
		if (ch == '=')
			pad++;
		else if (pad || !b64_char(ch))
			goto err_bad;
		clean[n++] = (char)ch;
	}
	if (!n || n % 4 || pad > 2)
		goto err_bad;
	dec = malloc(n / 4 * 3 + 1);
	if (!dec) {
		ret = -ENOMEM;
		goto err_clean;
	}
	got = EVP_DecodeBlock((unsigned char *)dec, (const unsigned char *)clean, (int)n);
	if (got < 0 || (size_t)got != n / 4 * 3) {
		free_secret(dec, n / 4 * 3 + 1);
		goto err_bad;
	}
	dec[got - pad] = '\0';
	*out = dec;
	*out_len = (size_t)got - pad;
	free_secret(clean, len + 1);
	return 0;

err_bad:
	ret = -EINVAL;
err_clean:
	free_secret(clean, len + 1);
	return ret;
}

/* A path field, made absolute against the kubeconfig's directory. */
static int get_path(const struct kc_ctx *c, const yaml_node_t *map, const char *key,
		    const char *where, char **out)
{
	const char *s;
	int ret;

	ret = get_str(c, map, key, where, &s, NULL);
	if (ret || !s)
		return ret;
	if (s[0] == '/') {
		*out = strdup(s);
	} else {
		while (s[0] == '.' && s[1] == '/') {
			s += 2;
			while (*s == '/')
				s++;
		}
		*out = join(c->dir, s);
	}
	return *out ? 0 : kc_fail(c, -ENOMEM, NULL, "out of memory");
}

/* A *-data field, base64-decoded. */
static int get_data(const struct kc_ctx *c, const yaml_node_t *map, const char *key,
		    const char *where, char **out, size_t *out_len)
{
	const yaml_node_t *n;
	const char *s;
	int ret;

	ret = get_str(c, map, key, where, &s, &n);
	if (ret || !s)
		return ret;
	ret = b64_decode(s, strlen(s), out, out_len);
	if (ret == -ENOMEM)
		return kc_fail(c, ret, NULL, "out of memory");
	if (ret)
		return kc_fail(c, ret, n, "%s: %s is not valid base64", where, key);
	return 0;
}

static int get_bool(const struct kc_ctx *c, const yaml_node_t *map, const char *key,
		    const char *where, bool *out)
{
	const yaml_node_t *k, *n = map_get(c, map, key, &k);

	*out = false;
	if (!n)
		return 0;
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (scalar_is(n, "true") || scalar_is(n, "True") || scalar_is(n, "TRUE")) {
			*out = true;
			return 0;
		}
		if (scalar_is(n, "false") || scalar_is(n, "False") || scalar_is(n, "FALSE"))
			return 0;
	}
	return kc_fail(c, -EINVAL, k, "%s: %s must be true or false", where, key);
}

/*
 * The API server's URL. It must be https: the service account token and
 * the client key are never sent in clear. One trailing '/' is dropped, so
 * callers can append "/api/...".
 */
static int get_server(const struct kc_ctx *c, const yaml_node_t *map, const char *where,
		      char **out)
{
	char shown[KC_SHOW_LEN];
	const yaml_node_t *n;
	const char *s;
	size_t len;
	int ret;

	ret = get_str(c, map, "server", where, &s, &n);
	if (ret)
		return ret;
	if (!s)
		return kc_fail(c, -EINVAL, NULL, "%s has no server", where);
	show(s, shown, sizeof(shown));
	if (!strncasecmp(s, "http://", 7))
		return kc_fail(c, -EINVAL, n,
			       "%s: server %s is plain http; outrider only talks TLS to the API "
			       "server, use https://",
			       where, shown);
	if (strncasecmp(s, "https://", 8))
		return kc_fail(c, -EINVAL, n, "%s: server %s must start with https://", where,
			       shown);
	if (!s[8] || s[8] == '/')
		return kc_fail(c, -EINVAL, n, "%s: server %s has no host", where, shown);
	if (has_ctl(s) || strchr(s, ' '))
		return kc_fail(c, -EINVAL, n, "%s: server %s contains a space or control character",
			       where, shown);
	len = strlen(s);
	if (s[len - 1] == '/')
		len--;
	*out = strndup(s, len);
	return *out ? 0 : kc_fail(c, -ENOMEM, NULL, "out of memory");
}

/* ---- kubeconfig sections ---- */

static int load_cluster(const struct kc_ctx *c, const yaml_node_t *body, const char *name,
			struct or_kube_creds *out)
{
	char shown[KC_SHOW_LEN], where[KC_WHERE_LEN];
	int ret;

	snprintf(where, sizeof(where), "cluster \"%s\"", show(name, shown, sizeof(shown)));
	ret = get_server(c, body, where, &out->server);
	if (!ret)
		ret = get_data(c, body, "certificate-authority-data", where, &out->ca_pem,
			       &out->ca_pem_len);
	/* As in kubectl, the data overrides the file. */
	if (!ret && !out->ca_pem)
		ret = get_path(c, body, "certificate-authority", where, &out->ca_file);
	if (!ret)
		ret = get_bool(c, body, "insecure-skip-tls-verify", where, &out->insecure);
	return ret;
}

static int refuse_plugins(const struct kc_ctx *c, const yaml_node_t *body, const char *where)
{
	const yaml_node_t *n;
	const char *user, *pass = NULL;
	int ret;

	if (map_get(c, body, "exec", &n))
		return kc_fail(c, -ENOTSUP, n,
			       "%s: exec credential plugins are not supported; " KC_USE_INSTEAD,
			       where);
	if (map_get(c, body, "auth-provider", &n))
		return kc_fail(c, -ENOTSUP, n,
			       "%s: auth-provider plugins are not supported; " KC_USE_INSTEAD,
			       where);
	ret = get_str(c, body, "username", where, &user, &n);
	if (!ret && !user)
		ret = get_str(c, body, "password", where, &pass, &n);
	if (ret)
		return ret;
	if (user || pass)
		return kc_fail(c, -ENOTSUP, n,
			       "%s: basic auth (username/password) is not supported, Kubernetes "
			       "removed it; " KC_USE_INSTEAD,
			       where);
	return 0;
}

static int load_user(const struct kc_ctx *c, const yaml_node_t *body, const char *name,
		     struct or_kube_creds *out)
{
	char shown[KC_SHOW_LEN], where[KC_WHERE_LEN];
	const yaml_node_t *n;
	bool has_cert, has_key;
	const char *token;
	int ret;

	snprintf(where, sizeof(where), "user \"%s\"", show(name, shown, sizeof(shown)));
	ret = refuse_plugins(c, body, where);
	if (ret)
		return ret;

	ret = get_str(c, body, "token", where, &token, &n);
	if (ret)
		return ret;
	if (token && has_ctl(token))
		return kc_fail(c, -EINVAL, n, "%s: token contains a control character", where);
	if (token && !(out->token = strdup(token)))
		return kc_fail(c, -ENOMEM, NULL, "out of memory");
	ret = get_path(c, body, "tokenFile", where, &out->token_file);
	if (!ret)
		ret = get_data(c, body, "client-certificate-data", where, &out->cert_pem,
			       &out->cert_pem_len);
	if (!ret && !out->cert_pem)
		ret = get_path(c, body, "client-certificate", where, &out->cert_file);
	if (!ret)
		ret = get_data(c, body, "client-key-data", where, &out->key_pem,
			       &out->key_pem_len);
	if (!ret && !out->key_pem)
		ret = get_path(c, body, "client-key", where, &out->key_file);
	if (ret)
		return ret;

	has_cert = out->cert_file || out->cert_pem;
	has_key = out->key_file || out->key_pem;
	if (has_cert && !has_key)
		return kc_fail(c, -EINVAL, NULL, "%s: client-certificate without client-key",
			       where);
	if (has_key && !has_cert)
		return kc_fail(c, -EINVAL, NULL, "%s: client-key without client-certificate",
			       where);
	return 0;
}

static int load_doc(const struct kc_ctx *c, const char *context, struct or_kube_creds *out)
{
	const yaml_node_t *root = yaml_document_get_root_node(c->doc);
	const yaml_node_t *ctx_body, *cluster_body, *user_body;
	char shown[KC_SHOW_LEN], where[KC_WHERE_LEN], suffix[KC_WHERE_LEN];
	const char *name, *cluster, *user;
	int ret;

	if (root && !is_null(root) && root->type != YAML_MAPPING_NODE)
		return kc_fail(c, -EINVAL, root, "expected a mapping at the top level, not %s",
			       node_kind(root));
	if (context && *context) {
		name = context;
	} else {
		ret = get_str(c, root, "current-context", "", &name, NULL);
		if (ret)
			return ret;
		if (!name)
			return kc_fail(c, -EINVAL, NULL,
				       "no context given and current-context is not set");
	}
	ret = find_named(c, root, "contexts", "context", name, "", &ctx_body);
	if (ret)
		return ret;

	show(name, shown, sizeof(shown));
	snprintf(where, sizeof(where), "context \"%s\"", shown);
	snprintf(suffix, sizeof(suffix), " (context \"%s\")", shown);
	ret = get_str(c, ctx_body, "cluster", where, &cluster, NULL);
	if (!ret && !cluster)
		ret = kc_fail(c, -EINVAL, NULL, "%s names no cluster", where);
	if (!ret)
		ret = get_str(c, ctx_body, "user", where, &user, NULL);
	if (!ret && !user)
		ret = kc_fail(c, -EINVAL, NULL, "%s names no user", where);
	if (!ret)
		ret = find_named(c, root, "clusters", "cluster", cluster, suffix, &cluster_body);
	if (!ret)
		ret = find_named(c, root, "users", "user", user, suffix, &user_body);
	if (!ret)
		ret = load_cluster(c, cluster_body, cluster, out);
	if (!ret)
		ret = load_user(c, user_body, user, out);
	if (ret)
		return ret;
	if (asprintf(&out->source, "%s (context %s)", c->file, shown) == -1) {
		out->source = NULL;
		return kc_fail(c, -ENOMEM, NULL, "out of memory");
	}
	return 0;
}

/* libyaml copied every scalar, keys and tokens included. Wipe them before freeing. */
static void scrub_doc(yaml_document_t *doc)
{
	yaml_node_t *n;

	for (n = doc->nodes.start; n && n < doc->nodes.top; n++)
		if (n->type == YAML_SCALAR_NODE)
			explicit_bzero(n->data.scalar.value, n->data.scalar.length);
}

int or_kubeconfig_load(const char *path, const char *context, struct or_kube_creds *out,
		       char *err, size_t errlen)
{
	struct kc_ctx c = { .file = path, .err = err, .errlen = errlen };
	yaml_parser_t parser;
	yaml_document_t doc;
	size_t len;
	char *buf;
	int ret;

	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	ret = read_file(path, KC_MAX_FILE, &buf, &len);
	if (ret) {
		set_err(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = abs_dir(path, &c.dir);
	if (ret) {
		kc_fail(&c, ret, NULL, "cannot resolve its directory: %s", strerror(-ret));
		goto err_buf;
	}
	if (!yaml_parser_initialize(&parser)) {
		ret = kc_fail(&c, -ENOMEM, NULL, "out of memory");
		goto err_dir;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	/* On failure yaml_parser_load has already freed the document. */
	if (!yaml_parser_load(&parser, &doc)) {
		ret = yaml_fail(&c, &parser, buf, len);
		goto err_parser;
	}
	c.doc = &doc;
	ret = load_doc(&c, context, out);
	scrub_doc(&doc);
	yaml_document_delete(&doc);
err_parser:
	yaml_parser_delete(&parser);
err_dir:
	free(c.dir);
err_buf:
	free_secret(buf, len);
	if (ret)
		or_kube_creds_free(out);
	return ret;
}

/* ---- in-cluster ---- */

static bool valid_port(const char *s)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > 65535)
			return false;
	}
	return v > 0;
}

/* A host that fits in a URL authority: nothing that would end it or smuggle userinfo. */
static bool valid_host(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || strchr("/?#@[]", ch))
			return false;
	}
	return true;
}

static int sa_file(const char *sa_dir, const char *name, char **out, char *err, size_t errlen)
{
	char shown[KC_SHOW_LEN];
	int ret;

	*out = join(sa_dir, name);
	if (!*out) {
		set_err(err, errlen, "in-cluster: out of memory");
		return -ENOMEM;
	}
	if (access(*out, R_OK) == -1) {
		ret = -errno;
		set_err(err, errlen, "in-cluster: %s: %s", show(*out, shown, sizeof(shown)),
			strerror(-ret));
		return ret;
	}
	return 0;
}

int or_kube_in_cluster(const char *sa_dir, struct or_kube_creds *out, char *err, size_t errlen)
{
	const char *host, *port;
	char shown[KC_SHOW_LEN];
	int ret;

	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	if (!sa_dir)
		sa_dir = OR_KUBE_SA_DIR;
	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host) {
		set_err(err, errlen, "not running in a pod: KUBERNETES_SERVICE_HOST is not set");
		return -ENOENT;
	}
	if (!port || !*port) {
		set_err(err, errlen, "not running in a pod: KUBERNETES_SERVICE_PORT is not set");
		return -ENOENT;
	}
	if (!valid_host(host)) {
		set_err(err, errlen, "in-cluster: KUBERNETES_SERVICE_HOST \"%s\" is not a host",
			show(host, shown, sizeof(shown)));
		return -EINVAL;
	}
	if (!valid_port(port)) {
		set_err(err, errlen, "in-cluster: KUBERNETES_SERVICE_PORT \"%s\" is not a port",
			show(port, shown, sizeof(shown)));
		return -EINVAL;
	}
	if (asprintf(&out->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port) == -1) {
		out->server = NULL;
		set_err(err, errlen, "in-cluster: out of memory");
		ret = -ENOMEM;
		goto err_creds;
	}
	ret = sa_file(sa_dir, "token", &out->token_file, err, errlen);
	if (!ret)
		ret = sa_file(sa_dir, "ca.crt", &out->ca_file, err, errlen);
	if (ret)
		goto err_creds;
	out->source = strdup("in-cluster");
	if (!out->source) {
		set_err(err, errlen, "in-cluster: out of memory");
		ret = -ENOMEM;
		goto err_creds;
	}
	return 0;

err_creds:
	or_kube_creds_free(out);
	return ret;
}

void or_kube_creds_free(struct or_kube_creds *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_pem);
	free_secret(c->token, c->token ? strlen(c->token) : 0);
	free(c->token_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_pem);
	free_secret(c->key_pem, c->key_pem_len);
	free(c->source);
	memset(c, 0, sizeof(*c));
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

int or_kube_creds_token(const struct or_kube_creds *c, char **out)
{
	size_t len, start, end;
	char *buf;
	int ret;

	*out = NULL;
	if (c->token) {
		*out = strdup(c->token);
		return *out ? 0 : -ENOMEM;
	}
	if (!c->token_file)
		return 0;
	ret = read_file(c->token_file, KC_MAX_TOKEN, &buf, &len);
	if (ret)
		return ret;
	for (start = 0; start < len && is_space(buf[start]); start++)
		;
	for (end = len; end > start && is_space(buf[end - 1]); end--)
		;
	buf[end] = '\0';
	/* Empty, a NUL inside, or a line break that would split the Authorization header. */
	if (start == end || strlen(buf + start) != end - start || has_ctl(buf + start)) {
		ret = -EINVAL;
		goto out_buf;
	}
	*out = strndup(buf + start, end - start);
	ret = *out ? 0 : -ENOMEM;
out_buf:
	free_secret(buf, len);
	return ret;
}
